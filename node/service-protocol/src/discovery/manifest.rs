//! The endpoint manifest a deployment returns from `GET /discover`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::protocol::ProtocolVersion;
pub use restate_types::{HandlerType, ServiceType};

/// What a deployment offers: its services and the service protocol versions it speaks.
///
/// Parsed from the JSON manifest (versions v2 to v4 share these fields; unknown fields,
/// such as documentation, schemas and timeouts, are ignored for now).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointManifest {
    /// Manifest version the deployment answered with (2 to 4, from its content type).
    #[serde(skip)]
    pub manifest_version: u32,
    /// How the deployment wants to be invoked; absent means bidirectional streaming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_mode: Option<ProtocolMode>,
    /// Oldest service protocol version the deployment speaks.
    pub min_protocol_version: u32,
    /// Newest service protocol version the deployment speaks.
    pub max_protocol_version: u32,
    /// The services, each with its handlers.
    pub services: Vec<ServiceManifest>,
}

/// Transport mode a deployment declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProtocolMode {
    /// Both sides may write at once over HTTP/2 (request/response rounds work too).
    BidiStream,
    /// The runtime writes the whole request before the deployment answers.
    RequestResponse,
}

/// One service of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceManifest {
    /// Service name, the first path segment after `/invoke/`.
    pub name: String,
    /// Service kind.
    pub ty: ServiceType,
    /// Its handlers.
    pub handlers: Vec<HandlerManifest>,
}

/// One handler of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerManifest {
    /// Handler name, the path segment after the service name.
    pub name: String,
    /// Declared kind; absent for plain services and when it is the service kind's default
    /// (see [`HandlerManifest::effective_ty`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<HandlerType>,
}

/// Why a manifest body is not a valid endpoint manifest; `path` names the field
/// (e.g. `services[1].handlers[0].ty`, or `.` for the document itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field '{path}': {message}")]
pub struct ManifestError {
    /// JSON path of the offending field.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl EndpointManifest {
    /// Parses and checks a manifest body answered as manifest version `manifest_version`.
    ///
    /// Beyond the JSON shape, it checks that the protocol version range is not empty, that
    /// service names and handler names within a service are unique and non-empty, and that
    /// handler kinds fit their service kind.
    pub fn parse(manifest_version: u32, body: &[u8]) -> Result<EndpointManifest, ManifestError> {
        let deserializer = &mut serde_json::Deserializer::from_slice(body);
        let mut manifest: EndpointManifest = serde_path_to_error::deserialize(deserializer)
            .map_err(|err| ManifestError { path: err.path().to_string(), message: err.inner().to_string() })?;
        manifest.manifest_version = manifest_version;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceManifest> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The newest protocol version both this deployment and this crate speak.
    pub fn negotiate_protocol_version(&self) -> Option<ProtocolVersion> {
        ProtocolVersion::negotiate(self.min_protocol_version, self.max_protocol_version)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let fail = |path: String, message: String| Err(ManifestError { path, message });
        if self.min_protocol_version == 0 {
            return fail("minProtocolVersion".into(), "must be at least 1".into());
        }
        if self.min_protocol_version > self.max_protocol_version {
            return fail(
                "maxProtocolVersion".into(),
                format!("{} is below minProtocolVersion {}", self.max_protocol_version, self.min_protocol_version),
            );
        }
        let mut services = HashSet::new();
        for (i, service) in self.services.iter().enumerate() {
            if service.name.is_empty() {
                return fail(format!("services[{i}].name"), "is empty".into());
            }
            if !services.insert(service.name.as_str()) {
                return fail(format!("services[{i}].name"), format!("service '{}' is listed twice", service.name));
            }
            let mut handlers = HashSet::new();
            for (j, handler) in service.handlers.iter().enumerate() {
                if handler.name.is_empty() {
                    return fail(format!("services[{i}].handlers[{j}].name"), "is empty".into());
                }
                if !handlers.insert(handler.name.as_str()) {
                    return fail(
                        format!("services[{i}].handlers[{j}].name"),
                        format!("handler '{}' of service '{}' is listed twice", handler.name, service.name),
                    );
                }
                if let Some(ty) = handler.ty {
                    let fits = match service.ty {
                        ServiceType::Service => false,
                        ServiceType::VirtualObject => ty != HandlerType::Workflow,
                        ServiceType::Workflow => true,
                    };
                    if !fits {
                        return fail(
                            format!("services[{i}].handlers[{j}].ty"),
                            format!("a {ty} handler cannot belong to {} '{}'", service.ty, service.name),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

impl ServiceManifest {
    /// The handler called `name`.
    pub fn handler(&self, name: &str) -> Option<&HandlerManifest> {
        self.handlers.iter().find(|h| h.name == name)
    }
}

impl HandlerManifest {
    /// The handler's kind with the manifest defaults applied: `None` for plain services,
    /// `EXCLUSIVE` for undeclared virtual-object handlers, `WORKFLOW` for undeclared
    /// workflow handlers.
    pub fn effective_ty(&self, service_ty: ServiceType) -> Option<HandlerType> {
        service_ty.default_handler_type().map(|default| self.ty.unwrap_or(default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shape of what restate-sdk 0.13 answers (documentation and schemas shortened).
    const SDK_MANIFEST: &str = r#"{"maxProtocolVersion":7,"minProtocolVersion":5,"protocolMode":"BIDI_STREAM",
        "services":[
          {"handlers":[{"documentation":"doc","input":{"contentType":"application/json","required":true},
                        "name":"greet","output":{"contentType":"application/json"}}],
           "name":"Greeter","ty":"SERVICE"},
          {"handlers":[{"name":"add"},{"input":{},"name":"get","ty":"SHARED"}],
           "name":"Counter","ty":"VIRTUAL_OBJECT"}]}"#;

    #[test]
    fn parses_the_sdk_manifest() {
        let manifest = EndpointManifest::parse(4, SDK_MANIFEST.as_bytes()).unwrap();
        assert_eq!(manifest.manifest_version, 4);
        assert_eq!(manifest.protocol_mode, Some(ProtocolMode::BidiStream));
        assert_eq!((manifest.min_protocol_version, manifest.max_protocol_version), (5, 7));
        assert_eq!(manifest.negotiate_protocol_version(), Some(ProtocolVersion::V7));
        let greeter = manifest.service("Greeter").unwrap();
        assert_eq!(greeter.ty, ServiceType::Service);
        assert_eq!(greeter.handler("greet").unwrap().effective_ty(greeter.ty), None);
        let counter = manifest.service("Counter").unwrap();
        assert_eq!(counter.ty, ServiceType::VirtualObject);
        assert_eq!(counter.handler("add").unwrap().ty, None);
        assert_eq!(counter.handler("add").unwrap().effective_ty(counter.ty), Some(HandlerType::Exclusive));
        assert_eq!(counter.handler("get").unwrap().effective_ty(counter.ty), Some(HandlerType::Shared));
        assert!(manifest.service("Nope").is_none());
    }

    fn error_of(json: &str) -> ManifestError {
        EndpointManifest::parse(2, json.as_bytes()).unwrap_err()
    }

    #[test]
    fn errors_name_the_field() {
        let err = error_of(
            r#"{"minProtocolVersion":5,"maxProtocolVersion":7,"services":[{"name":"A","ty":"ACTOR","handlers":[]}]}"#,
        );
        assert_eq!(err.path, "services[0].ty");
        assert!(err.message.contains("unknown variant `ACTOR`"), "{err}");

        let err = error_of(r#"{"minProtocolVersion":5,"services":[]}"#);
        assert_eq!(err.path, ".");
        assert!(err.message.contains("missing field `maxProtocolVersion`"), "{err}");

        let err = error_of(
            r#"{"minProtocolVersion":5,"maxProtocolVersion":7,"services":[{"name":"A","ty":"SERVICE","handlers":[{"ty":"SHARED"}]}]}"#,
        );
        assert_eq!(err.path, "services[0].handlers[0]");
        assert!(err.message.contains("missing field `name`"), "{err}");

        let err = error_of(r#"{"minProtocolVersion":"5","maxProtocolVersion":7,"services":[]}"#);
        assert_eq!(err.path, "minProtocolVersion");

        let err = error_of("not json");
        assert_eq!(err.path, ".");
        assert!(err.to_string().starts_with("field '.': expected"), "{err}");
    }

    #[test]
    fn semantic_checks_name_the_field() {
        let err = error_of(r#"{"minProtocolVersion":7,"maxProtocolVersion":5,"services":[]}"#);
        assert_eq!(err.to_string(), "field 'maxProtocolVersion': 5 is below minProtocolVersion 7");

        let err = error_of(
            r#"{"minProtocolVersion":5,"maxProtocolVersion":7,"services":[
                {"name":"A","ty":"SERVICE","handlers":[]},{"name":"A","ty":"SERVICE","handlers":[]}]}"#,
        );
        assert_eq!(err.path, "services[1].name");

        let err = error_of(
            r#"{"minProtocolVersion":5,"maxProtocolVersion":7,"services":[
                {"name":"A","ty":"SERVICE","handlers":[{"name":"h","ty":"SHARED"}]}]}"#,
        );
        assert_eq!(
            err.to_string(),
            "field 'services[0].handlers[0].ty': a SHARED handler cannot belong to SERVICE 'A'"
        );

        let err = error_of(
            r#"{"minProtocolVersion":5,"maxProtocolVersion":7,"services":[
                {"name":"O","ty":"VIRTUAL_OBJECT","handlers":[{"name":"h"},{"name":"h"}]}]}"#,
        );
        assert_eq!(err.path, "services[0].handlers[1].name");
    }
}

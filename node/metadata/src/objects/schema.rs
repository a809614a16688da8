//! The service registry: registered deployments and the services they serve (key `schema`).
//!
//! A deployment is an endpoint (a URI) that serves services built with a Restate SDK.
//! Registering one records what its discovery answered; every service it declares then
//! points at it, with a revision that rises each time the service moves to another
//! deployment (or changes with a forced overwrite). The rules, as Restate applies them:
//!
//! - Registering a URI that is already registered, with identical services, headers and
//!   protocol versions, changes nothing and answers the existing id.
//! - Registering a URI that is already registered with anything different is refused
//!   unless forced; forcing overwrites that deployment in place (same id).
//! - A service that changes its type (e.g. SERVICE to VIRTUAL_OBJECT) is refused unless forced.
//! - Removing a deployment that is still the latest for some service is refused unless
//!   forced; forcing removes those services too.
//!
//! Everything here is pure: the admin API discovers, then applies these functions inside a
//! read-modify-write of the object.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Deployments by id and the service registry by service name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    #[serde(default)]
    pub deployments: BTreeMap<String, Deployment>,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceSchema>,
}

/// Shown instead of an additional header's value wherever the schema is answered.
pub const MASKED_HEADER_VALUE: &str = "***";

impl Schema {
    /// This schema with every deployment's additional header values masked (they often
    /// are credentials for the endpoint): what `metadata get` answers.
    pub fn masked(&self) -> Schema {
        let mut masked = self.clone();
        for deployment in masked.deployments.values_mut() {
            for value in deployment.additional_headers.values_mut() {
                *value = MASKED_HEADER_VALUE.to_owned();
            }
        }
        masked
    }

    /// Puts back, from `current`, the values of headers this schema has masked (a schema
    /// read with [`Schema::masked`], edited and written back keeps its secrets). A masked
    /// value with nothing stored to put back is an error naming the header.
    pub fn unmask_from(&mut self, current: Option<&Schema>) -> Result<(), String> {
        for (id, deployment) in &mut self.deployments {
            for (name, value) in &mut deployment.additional_headers {
                if value != MASKED_HEADER_VALUE {
                    continue;
                }
                let stored = current
                    .and_then(|c| c.deployments.get(id))
                    .and_then(|d| d.additional_headers.get(name))
                    .ok_or_else(|| {
                    format!(
                        "header '{name}' of deployment {id} has the masked value '{MASKED_HEADER_VALUE}' and no \
                             stored value to keep; write the real value"
                    )
                })?;
                *value = stored.clone();
            }
        }
        Ok(())
    }
}

/// One registered deployment, as its discovery described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// `dp_` followed by 26 characters (time-ordered, see [`new_deployment_id`]).
    pub id: String,
    /// The endpoint address, without a trailing `/`.
    pub uri: String,
    /// Headers sent with every request to the deployment (discovery and invocations).
    #[serde(default)]
    pub additional_headers: BTreeMap<String, String>,
    /// `BIDI_STREAM` or `REQUEST_RESPONSE` as the manifest declared it, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_mode: Option<String>,
    pub min_protocol_version: u32,
    pub max_protocol_version: u32,
    /// Reached over HTTP/1.1 (`use_http_11`, or discovery fell back to it) instead of
    /// cleartext HTTP/2 with prior knowledge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_http_11: bool,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The services this deployment declared, each with the revision it got here.
    pub services: Vec<DeployedService>,
}

/// A service as a deployment declared it, with the revision it got at registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedService {
    #[serde(flatten)]
    pub definition: ServiceDefinition,
    pub revision: u32,
}

/// A service: its name, kind and handlers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDefinition {
    pub name: String,
    pub ty: ServiceType,
    pub handlers: Vec<HandlerDefinition>,
}

/// A handler; `ty` is set for virtual-object and workflow handlers (defaults applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<HandlerType>,
}

/// The registry entry of a service: where its latest revision is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSchema {
    pub name: String,
    pub ty: ServiceType,
    pub handlers: Vec<HandlerDefinition>,
    pub deployment_id: String,
    /// 1 at first registration; +1 each time the service moves to another deployment or
    /// its definition is overwritten.
    pub revision: u32,
    /// A workflow's own `workflow_completion_retention` (set through `PATCH
    /// /services/{name}`; kept across registrations); `None`: `[worker]`'s default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_completion_retention_ms: Option<u64>,
}

pub use restate_types::{HandlerType, ServiceType};

/// What a registration request brings: the address and what discovery answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    pub uri: String,
    pub additional_headers: BTreeMap<String, String>,
    pub protocol_mode: Option<String>,
    pub min_protocol_version: u32,
    pub max_protocol_version: u32,
    pub use_http_11: bool,
    pub services: Vec<ServiceDefinition>,
}

/// How a registration changed the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationOutcome {
    /// A new deployment.
    Created,
    /// The URI was registered already, exactly so: nothing changed.
    Unchanged,
    /// The URI was registered already and was overwritten (forced).
    Overwritten,
}

/// The result of [`Schema::register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: String,
    pub outcome: RegistrationOutcome,
    /// Registry entries of the deployment's services, by name.
    pub services: Vec<ServiceSchema>,
    /// Services an overwrite dropped from the registry (the deployment no longer declares them).
    pub removed_services: Vec<String>,
}

/// The result of [`Schema::remove_deployment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub deployment: Deployment,
    /// Services removed from the registry with it (forced removal only).
    pub removed_services: Vec<String>,
}

/// Why a schema change is refused. [`SchemaError::kind`] says which HTTP-ish class it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("the deployment at {uri} is not registrable: {reason}")]
    Invalid { uri: String, reason: String },
    #[error("a deployment with URI {uri} is already registered ({id}) and {differences}; register it again with force (`restate deployments register --force {uri}`, or \"force\": true) to overwrite it")]
    DifferentDeployment { id: String, uri: String, differences: String },
    #[error("service '{service}' is a {current} (deployment {deployment_id}) but the deployment at {uri} declares it a {declared}; changing a service's type breaks its existing invocations and state, so it needs force (`--force`, or \"force\": true)")]
    ServiceTypeChange {
        service: String,
        current: ServiceType,
        declared: ServiceType,
        deployment_id: String,
        uri: String,
    },
    #[error("deployment '{id}' not found")]
    DeploymentNotFound { id: String },
    #[error("deployment {id} cannot move to {uri}: {reason}")]
    UpdateRefused { id: String, uri: String, reason: String },
    #[error("service '{name}' not found")]
    ServiceNotFound { name: String },
    #[error("service '{name}' is a {}; workflow_completion_retention applies to workflows only", .ty.as_str())]
    NotAWorkflow { name: String, ty: ServiceType },
    #[error("deployment {id} still serves the latest revision of {}; remove it with force (`restate deployments remove --force`, or `?force=true`) to remove those services too, or register a deployment that serves them first", .services.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", "))]
    DeploymentInUse { id: String, services: Vec<String> },
}

/// Classes of [`SchemaError`], for mapping to status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaErrorKind {
    /// The request itself is unusable (400).
    Invalid,
    /// Conflicts with what is registered; force would allow it (409).
    Conflict,
    /// Names something that does not exist (404).
    NotFound,
}

impl SchemaError {
    pub fn kind(&self) -> SchemaErrorKind {
        match self {
            SchemaError::Invalid { .. } | SchemaError::NotAWorkflow { .. } => SchemaErrorKind::Invalid,
            SchemaError::DifferentDeployment { .. }
            | SchemaError::ServiceTypeChange { .. }
            | SchemaError::DeploymentInUse { .. }
            | SchemaError::UpdateRefused { .. } => SchemaErrorKind::Conflict,
            SchemaError::DeploymentNotFound { .. } | SchemaError::ServiceNotFound { .. } => SchemaErrorKind::NotFound,
        }
    }
}

/// `uri` without trailing `/`: `http://svc:9080/` and `http://svc:9080` are one deployment.
pub fn normalize_uri(uri: &str) -> String {
    uri.trim().trim_end_matches('/').to_owned()
}

impl ServiceDefinition {
    /// Handlers sorted by name, each with its kind's default applied.
    fn normalized(mut self) -> ServiceDefinition {
        let default = self.ty.default_handler_type();
        for handler in &mut self.handlers {
            handler.ty = match self.ty {
                ServiceType::Service => None,
                _ => handler.ty.or(default),
            };
        }
        self.handlers.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }
}

impl NewDeployment {
    fn normalized(mut self) -> NewDeployment {
        self.uri = normalize_uri(&self.uri);
        self.services = self.services.into_iter().map(ServiceDefinition::normalized).collect();
        self.services.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }

    fn validate(&self) -> Result<(), SchemaError> {
        let invalid = |reason: String| Err(SchemaError::Invalid { uri: self.uri.clone(), reason });
        if self.uri.is_empty() {
            return invalid("the URI is empty".into());
        }
        if self.services.is_empty() {
            return invalid("it serves no services".into());
        }
        if self.min_protocol_version > self.max_protocol_version {
            return invalid(format!(
                "its protocol version range {}..={} is empty",
                self.min_protocol_version, self.max_protocol_version
            ));
        }
        let mut names = BTreeSet::new();
        for service in &self.services {
            if service.name.is_empty() {
                return invalid("a service has an empty name".into());
            }
            if !names.insert(service.name.as_str()) {
                return invalid(format!("service '{}' is declared twice", service.name));
            }
            let mut handlers = BTreeSet::new();
            for handler in &service.handlers {
                if !handlers.insert(handler.name.as_str()) {
                    return invalid(format!("handler '{}' of '{}' is declared twice", handler.name, service.name));
                }
            }
        }
        Ok(())
    }
}

impl Deployment {
    fn definitions(&self) -> Vec<ServiceDefinition> {
        self.services.iter().map(|s| s.definition.clone()).collect()
    }

    /// What differs between this registration and `new` (both normalized), in words;
    /// `None` when they are identical.
    fn differences(&self, new: &NewDeployment) -> Option<String> {
        let mut out = Vec::new();
        let old: BTreeMap<&str, &ServiceDefinition> =
            self.services.iter().map(|s| (s.definition.name.as_str(), &s.definition)).collect();
        let fresh: BTreeMap<&str, &ServiceDefinition> = new.services.iter().map(|s| (s.name.as_str(), s)).collect();
        let added: Vec<&str> = fresh.keys().filter(|n| !old.contains_key(*n)).copied().collect();
        let removed: Vec<&str> = old.keys().filter(|n| !fresh.contains_key(*n)).copied().collect();
        let changed: Vec<&str> =
            fresh.iter().filter(|(n, s)| old.get(*n).is_some_and(|o| o != *s)).map(|(n, _)| *n).collect();
        let list = |names: &[&str]| names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
        if !added.is_empty() {
            out.push(format!("now also declares {}", list(&added)));
        }
        if !removed.is_empty() {
            out.push(format!("no longer declares {}", list(&removed)));
        }
        if !changed.is_empty() {
            out.push(format!("changed the handlers or type of {}", list(&changed)));
        }
        if self.additional_headers != new.additional_headers {
            out.push("has different additional headers".into());
        }
        if (self.min_protocol_version, self.max_protocol_version)
            != (new.min_protocol_version, new.max_protocol_version)
        {
            out.push(format!(
                "speaks protocol versions {}..={} instead of {}..={}",
                new.min_protocol_version,
                new.max_protocol_version,
                self.min_protocol_version,
                self.max_protocol_version
            ));
        }
        if self.protocol_mode != new.protocol_mode {
            out.push("declares a different protocol mode".into());
        }
        if self.use_http_11 != new.use_http_11 {
            out.push(format!("is reached over {}", if new.use_http_11 { "HTTP/1.1" } else { "HTTP/2" }));
        }
        if out.is_empty() {
            None
        } else {
            Some(format!("the endpoint now {}", out.join("; ")))
        }
    }
}

impl Schema {
    pub fn deployment(&self, id: &str) -> Option<&Deployment> {
        self.deployments.get(id)
    }

    pub fn deployment_by_uri(&self, uri: &str) -> Option<&Deployment> {
        let uri = normalize_uri(uri);
        self.deployments.values().find(|d| d.uri == uri)
    }

    pub fn service(&self, name: &str) -> Option<&ServiceSchema> {
        self.services.get(name)
    }

    /// Names of the services whose latest revision deployment `id` serves.
    pub fn services_of(&self, id: &str) -> Vec<String> {
        self.services.values().filter(|s| s.deployment_id == id).map(|s| s.name.clone()).collect()
    }

    /// Registers `new` (see the module docs for the rules). `new_id` is used only if the
    /// URI is not registered yet, `created_at` only for a new deployment. On error the
    /// schema is unchanged; with outcome `Unchanged` it is unchanged too.
    pub fn register(
        &mut self,
        new: NewDeployment,
        force: bool,
        new_id: &str,
        created_at: &str,
    ) -> Result<Registration, SchemaError> {
        let new = new.normalized();
        new.validate()?;
        let existing = self.deployment_by_uri(&new.uri).cloned();
        if let Some(existing) = &existing {
            if !force {
                if let Some(differences) = existing.differences(&new) {
                    return Err(SchemaError::DifferentDeployment {
                        id: existing.id.clone(),
                        uri: new.uri.clone(),
                        differences,
                    });
                }
                // Identical: nothing to do, even if another deployment took over some of
                // its services since (forcing points them back here).
                return Ok(Registration {
                    id: existing.id.clone(),
                    outcome: RegistrationOutcome::Unchanged,
                    services: self.registry_entries(existing),
                    removed_services: vec![],
                });
            }
        }
        let id = existing.as_ref().map(|d| d.id.clone()).unwrap_or_else(|| new_id.to_owned());

        if !force {
            for service in &new.services {
                if let Some(current) = self.services.get(&service.name) {
                    if current.ty != service.ty {
                        return Err(SchemaError::ServiceTypeChange {
                            service: service.name.clone(),
                            current: current.ty,
                            declared: service.ty,
                            deployment_id: current.deployment_id.clone(),
                            uri: new.uri.clone(),
                        });
                    }
                }
            }
        }

        let before = self.clone();
        // Services an overwritten deployment no longer declares leave the registry when
        // they still point at it.
        let mut removed_services = Vec::new();
        if let Some(existing) = &existing {
            for old in existing.definitions() {
                let still_declared = new.services.iter().any(|s| s.name == old.name);
                if !still_declared && self.services.get(&old.name).is_some_and(|s| s.deployment_id == id) {
                    self.services.remove(&old.name);
                    removed_services.push(old.name);
                }
            }
        }
        let mut deployed = Vec::with_capacity(new.services.len());
        for service in &new.services {
            let revision = match self.services.get(&service.name) {
                None => 1,
                Some(current)
                    if current.deployment_id == id
                        && current.ty == service.ty
                        && current.handlers == service.handlers =>
                {
                    current.revision
                }
                Some(current) => current.revision + 1,
            };
            self.services.insert(
                service.name.clone(),
                ServiceSchema {
                    name: service.name.clone(),
                    ty: service.ty,
                    handlers: service.handlers.clone(),
                    deployment_id: id.clone(),
                    revision,
                    workflow_completion_retention_ms: self
                        .services
                        .get(&service.name)
                        .and_then(|current| current.workflow_completion_retention_ms),
                },
            );
            deployed.push(DeployedService { definition: service.clone(), revision });
        }
        let deployment = Deployment {
            id: id.clone(),
            uri: new.uri.clone(),
            additional_headers: new.additional_headers.clone(),
            protocol_mode: new.protocol_mode.clone(),
            min_protocol_version: new.min_protocol_version,
            max_protocol_version: new.max_protocol_version,
            use_http_11: new.use_http_11,
            created_at: existing.as_ref().map(|d| d.created_at.clone()).unwrap_or_else(|| created_at.to_owned()),
            services: deployed,
        };
        self.deployments.insert(id.clone(), deployment.clone());

        let outcome = match &existing {
            None => RegistrationOutcome::Created,
            Some(_) if *self == before => RegistrationOutcome::Unchanged,
            Some(_) => RegistrationOutcome::Overwritten,
        };
        Ok(Registration { id, outcome, services: self.registry_entries(&deployment), removed_services })
    }

    /// The registry entries of the services `deployment` declared; a service since taken
    /// over by another deployment is listed with that deployment's id and revision.
    fn registry_entries(&self, deployment: &Deployment) -> Vec<ServiceSchema> {
        deployment.services.iter().filter_map(|s| self.services.get(&s.definition.name).cloned()).collect()
    }

    /// Sets (or, with `None`, clears) workflow `name`'s own completion retention.
    pub fn set_workflow_completion_retention(
        &mut self,
        name: &str,
        retention_ms: Option<u64>,
    ) -> Result<&ServiceSchema, SchemaError> {
        let service =
            self.services.get_mut(name).ok_or_else(|| SchemaError::ServiceNotFound { name: name.to_owned() })?;
        if service.ty != ServiceType::Workflow && retention_ms.is_some() {
            return Err(SchemaError::NotAWorkflow { name: name.to_owned(), ty: service.ty });
        }
        service.workflow_completion_retention_ms = retention_ms;
        Ok(service)
    }

    /// Updates deployment `id` in place (`PATCH`/`PUT /deployments/{id}`): its URI,
    /// headers, HTTP version and protocol range become `new`'s, it keeps its id, so its
    /// services and every invocation running on it continue at the new address. The
    /// endpoint must declare the same services with the same handlers (the point is to
    /// reach the same code elsewhere); with `overwrite` their handlers may differ (a
    /// service's type still may not). Another deployment's URI is refused.
    pub fn update_deployment(
        &mut self,
        id: &str,
        new: NewDeployment,
        overwrite: bool,
    ) -> Result<Deployment, SchemaError> {
        let new = new.normalized();
        new.validate()?;
        let existing =
            self.deployments.get(id).cloned().ok_or_else(|| SchemaError::DeploymentNotFound { id: id.to_owned() })?;
        let refuse = |reason: String| SchemaError::UpdateRefused { id: id.to_owned(), uri: new.uri.clone(), reason };
        if let Some(other) = self.deployment_by_uri(&new.uri).filter(|d| d.id != id) {
            return Err(refuse(format!("that URI is deployment {}", other.id)));
        }
        let old: BTreeMap<&str, &ServiceDefinition> =
            existing.services.iter().map(|s| (s.definition.name.as_str(), &s.definition)).collect();
        let fresh: BTreeMap<&str, &ServiceDefinition> = new.services.iter().map(|s| (s.name.as_str(), s)).collect();
        if old.keys().ne(fresh.keys()) {
            let names = |m: &BTreeMap<&str, &ServiceDefinition>| m.keys().copied().collect::<Vec<_>>().join(", ");
            return Err(refuse(format!(
                "it declares services [{}], the deployment serves [{}]; register it as a new deployment instead",
                names(&fresh),
                names(&old)
            )));
        }
        for (name, service) in &fresh {
            let before = old[name];
            if before.ty != service.ty {
                return Err(refuse(format!(
                    "it declares '{name}' a {}, not a {}",
                    service.ty.as_str(),
                    before.ty.as_str()
                )));
            }
            if before != *service && !overwrite {
                return Err(refuse(format!(
                    "the handlers of '{name}' differ; pass overwrite (\"overwrite\": true) to accept them"
                )));
            }
        }
        let mut updated = existing.clone();
        updated.uri = new.uri.clone();
        updated.additional_headers = new.additional_headers.clone();
        updated.protocol_mode = new.protocol_mode.clone();
        updated.min_protocol_version = new.min_protocol_version;
        updated.max_protocol_version = new.max_protocol_version;
        updated.use_http_11 = new.use_http_11;
        for deployed in &mut updated.services {
            deployed.definition = fresh[deployed.definition.name.as_str()].clone();
            if let Some(entry) = self.services.get_mut(&deployed.definition.name).filter(|e| e.deployment_id == id) {
                entry.handlers = deployed.definition.handlers.clone();
            }
        }
        self.deployments.insert(id.to_owned(), updated.clone());
        Ok(updated)
    }

    /// Removes deployment `id`. Refused while it serves the latest revision of a service,
    /// unless `force`, which removes those services from the registry too.
    pub fn remove_deployment(&mut self, id: &str, force: bool) -> Result<Removal, SchemaError> {
        if !self.deployments.contains_key(id) {
            return Err(SchemaError::DeploymentNotFound { id: id.to_owned() });
        }
        let services = self.services_of(id);
        if !services.is_empty() && !force {
            return Err(SchemaError::DeploymentInUse { id: id.to_owned(), services });
        }
        for name in &services {
            self.services.remove(name);
        }
        let deployment = self.deployments.remove(id).expect("checked above");
        Ok(Removal { deployment, removed_services: services })
    }
}

/// A fresh deployment id: `dp_` and a ULID (26 Crockford base32 characters of 48 bits of
/// milliseconds since the Unix epoch followed by 80 random bits), so ids sort by creation time.
pub fn new_deployment_id() -> String {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0) as u64;
    deployment_id_from(millis, rand::random::<u128>())
}

fn deployment_id_from(millis: u64, random: u128) -> String {
    format!("dp_{}", ulid::Ulid::from_parts(millis, random))
}

pub use restate_types::time::format_rfc3339_millis;

/// Now as RFC 3339 in UTC with milliseconds, e.g. `2025-01-31T09:30:00.123Z`.
pub fn now_rfc3339() -> String {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0) as u64;
    format_rfc3339_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(name: &str, ty: Option<HandlerType>) -> HandlerDefinition {
        HandlerDefinition { name: name.into(), ty }
    }

    fn greeter() -> ServiceDefinition {
        ServiceDefinition { name: "Greeter".into(), ty: ServiceType::Service, handlers: vec![handler("greet", None)] }
    }

    fn counter() -> ServiceDefinition {
        ServiceDefinition {
            name: "Counter".into(),
            ty: ServiceType::VirtualObject,
            handlers: vec![handler("get", Some(HandlerType::Shared)), handler("add", None)],
        }
    }

    fn deployment(uri: &str, services: Vec<ServiceDefinition>) -> NewDeployment {
        NewDeployment {
            uri: uri.into(),
            additional_headers: BTreeMap::new(),
            protocol_mode: Some("BIDI_STREAM".into()),
            min_protocol_version: 5,
            max_protocol_version: 7,
            use_http_11: false,
            services,
        }
    }

    const T0: &str = "2025-01-01T00:00:00.000Z";

    #[test]
    fn first_registration_creates_the_deployment_and_its_services() {
        let mut schema = Schema::default();
        let r = schema.register(deployment("http://a:9080/", vec![greeter(), counter()]), false, "dp_1", T0).unwrap();
        assert_eq!(r.id, "dp_1");
        assert_eq!(r.outcome, RegistrationOutcome::Created);
        assert_eq!(r.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["Counter", "Greeter"]);
        assert!(r.services.iter().all(|s| s.revision == 1 && s.deployment_id == "dp_1"));

        let d = schema.deployment("dp_1").unwrap();
        assert_eq!(d.uri, "http://a:9080", "trailing slash dropped");
        assert_eq!(d.created_at, T0);
        // Handler defaults applied and handlers sorted.
        let c = schema.service("Counter").unwrap();
        assert_eq!(
            c.handlers,
            vec![handler("add", Some(HandlerType::Exclusive)), handler("get", Some(HandlerType::Shared))]
        );
        assert_eq!(schema.service("Greeter").unwrap().handlers, vec![handler("greet", None)]);
        assert_eq!(schema.services_of("dp_1"), ["Counter", "Greeter"]);
    }

    #[test]
    fn re_registering_identically_is_a_no_op_with_the_same_id() {
        let mut schema = Schema::default();
        schema.register(deployment("http://a:9080", vec![greeter(), counter()]), false, "dp_1", T0).unwrap();
        let before = schema.clone();
        // Handler order and an explicit default do not make it different.
        let mut reordered = counter();
        reordered.handlers.reverse();
        reordered.handlers[0].ty = Some(HandlerType::Exclusive);
        let r =
            schema.register(deployment("http://a:9080/", vec![reordered, greeter()]), false, "dp_2", "later").unwrap();
        assert_eq!(r.id, "dp_1");
        assert_eq!(r.outcome, RegistrationOutcome::Unchanged);
        assert_eq!(r.services.len(), 2);
        assert_eq!(schema, before);
        // Forcing an identical registration changes nothing either.
        let r = schema.register(deployment("http://a:9080", vec![greeter(), counter()]), true, "dp_3", "x").unwrap();
        assert_eq!((r.id.as_str(), r.outcome), ("dp_1", RegistrationOutcome::Unchanged));
        assert_eq!(schema, before);
    }

    #[test]
    fn different_services_at_the_same_uri_need_force() {
        let mut schema = Schema::default();
        schema.register(deployment("http://a:9080", vec![greeter(), counter()]), false, "dp_1", T0).unwrap();
        let before = schema.clone();
        let mut greeter2 = greeter();
        greeter2.handlers.push(handler("farewell", None));
        let err = schema.register(deployment("http://a:9080", vec![greeter2.clone()]), false, "dp_2", T0).unwrap_err();
        assert_eq!(err.kind(), SchemaErrorKind::Conflict);
        let text = err.to_string();
        assert!(text.contains("dp_1") && text.contains("http://a:9080"), "{text}");
        assert!(text.contains("no longer declares 'Counter'"), "{text}");
        assert!(text.contains("changed the handlers or type of 'Greeter'"), "{text}");
        assert!(text.contains("force"), "{text}");
        assert_eq!(schema, before, "a refused registration changes nothing");

        let mut headers = deployment("http://a:9080", vec![greeter(), counter()]);
        headers.additional_headers.insert("authorization".into(), "Bearer x".into());
        let err = schema.register(headers, false, "dp_2", T0).unwrap_err();
        assert!(err.to_string().contains("different additional headers"), "{err}");

        let r = schema.register(deployment("http://a:9080", vec![greeter2]), true, "dp_2", "later").unwrap();
        assert_eq!((r.id.as_str(), r.outcome), ("dp_1", RegistrationOutcome::Overwritten));
        assert_eq!(r.removed_services, ["Counter"]);
        assert!(schema.service("Counter").is_none());
        let g = schema.service("Greeter").unwrap();
        assert_eq!(g.revision, 2, "a changed definition is a new revision");
        assert_eq!(g.handlers.len(), 2);
        assert_eq!(schema.deployment("dp_1").unwrap().created_at, T0);
        assert_eq!(schema.deployments.len(), 1);
    }

    #[test]
    fn masked_headers_round_trip_without_losing_their_values() {
        let mut schema = Schema::default();
        let mut headers = deployment("http://a:9080", vec![greeter()]);
        headers.additional_headers.insert("authorization".into(), "Bearer s3cr3t".into());
        schema.register(headers, false, "dp_1", T0).unwrap();
        let shown = schema.masked();
        assert_eq!(shown.deployments["dp_1"].additional_headers["authorization"], MASKED_HEADER_VALUE);
        assert!(!serde_json::to_string(&shown).unwrap().contains("s3cr3t"));

        // Read masked, edited elsewhere, written back: the secret is kept.
        let mut edited = shown.clone();
        edited.deployments.get_mut("dp_1").unwrap().uri = "http://a:9081".into();
        edited.unmask_from(Some(&schema)).unwrap();
        assert_eq!(edited.deployments["dp_1"].additional_headers["authorization"], "Bearer s3cr3t");
        assert_eq!(edited.deployments["dp_1"].uri, "http://a:9081");

        // A masked value with nothing to put back is refused, naming the header.
        let err = shown.clone().unmask_from(None).unwrap_err();
        assert!(err.contains("'authorization'") && err.contains("dp_1"), "{err}");
    }

    #[test]
    fn a_service_moving_to_a_new_deployment_bumps_its_revision() {
        let mut schema = Schema::default();
        schema.register(deployment("http://a:9080", vec![greeter(), counter()]), false, "dp_1", T0).unwrap();
        let r = schema.register(deployment("http://b:9080", vec![greeter()]), false, "dp_2", T0).unwrap();
        assert_eq!((r.id.as_str(), r.outcome), ("dp_2", RegistrationOutcome::Created));
        let g = schema.service("Greeter").unwrap();
        assert_eq!((g.deployment_id.as_str(), g.revision), ("dp_2", 2));
        let c = schema.service("Counter").unwrap();
        assert_eq!((c.deployment_id.as_str(), c.revision), ("dp_1", 1));
        assert_eq!(schema.services_of("dp_1"), ["Counter"]);
        assert_eq!(schema.deployment("dp_2").unwrap().services[0].revision, 2);

        // Re-registering the old deployment unchanged leaves Greeter where it is...
        let r = schema.register(deployment("http://a:9080", vec![greeter(), counter()]), false, "dp_3", T0).unwrap();
        assert_eq!(r.outcome, RegistrationOutcome::Unchanged);
        assert_eq!(schema.service("Greeter").unwrap().deployment_id, "dp_2");
        assert_eq!(r.services.iter().find(|s| s.name == "Greeter").unwrap().deployment_id, "dp_2");
        // ...forcing it takes Greeter back, as revision 3.
        let r = schema.register(deployment("http://a:9080", vec![greeter(), counter()]), true, "dp_3", T0).unwrap();
        assert_eq!(r.outcome, RegistrationOutcome::Overwritten);
        let g = schema.service("Greeter").unwrap();
        assert_eq!((g.deployment_id.as_str(), g.revision), ("dp_1", 3));
        assert_eq!(schema.service("Counter").unwrap().revision, 1);
    }

    #[test]
    fn changing_a_service_type_needs_force() {
        let mut schema = Schema::default();
        schema.register(deployment("http://a:9080", vec![greeter()]), false, "dp_1", T0).unwrap();
        let as_object = ServiceDefinition { ty: ServiceType::VirtualObject, ..greeter() };
        let err = schema.register(deployment("http://b:9080", vec![as_object.clone()]), false, "dp_2", T0).unwrap_err();
        assert_eq!(err.kind(), SchemaErrorKind::Conflict);
        assert!(err.to_string().contains("'Greeter' is a SERVICE"), "{err}");
        assert!(err.to_string().contains("VIRTUAL_OBJECT"), "{err}");
        assert_eq!(schema.deployments.len(), 1);
        let r = schema.register(deployment("http://b:9080", vec![as_object]), true, "dp_2", T0).unwrap();
        assert_eq!(r.outcome, RegistrationOutcome::Created);
        let g = schema.service("Greeter").unwrap();
        assert_eq!((g.ty, g.revision), (ServiceType::VirtualObject, 2));
        assert_eq!(g.handlers, vec![handler("greet", Some(HandlerType::Exclusive))]);
    }

    #[test]
    fn invalid_deployments_are_refused() {
        let mut schema = Schema::default();
        let err = schema.register(deployment("http://a", vec![]), false, "dp_1", T0).unwrap_err();
        assert_eq!(err.kind(), SchemaErrorKind::Invalid);
        assert!(err.to_string().contains("serves no services"), "{err}");
        let err = schema.register(deployment("http://a", vec![greeter(), greeter()]), false, "dp_1", T0).unwrap_err();
        assert!(err.to_string().contains("'Greeter' is declared twice"), "{err}");
        assert_eq!(schema, Schema::default());
    }

    #[test]
    fn removing_a_deployment_that_still_serves_services_needs_force() {
        let mut schema = Schema::default();
        schema.register(deployment("http://a:9080", vec![greeter(), counter()]), false, "dp_1", T0).unwrap();
        schema.register(deployment("http://b:9080", vec![greeter()]), false, "dp_2", T0).unwrap();

        let err = schema.remove_deployment("dp_9", false).unwrap_err();
        assert_eq!(err.kind(), SchemaErrorKind::NotFound);
        assert_eq!(err.to_string(), "deployment 'dp_9' not found");

        let err = schema.remove_deployment("dp_1", false).unwrap_err();
        assert_eq!(err.kind(), SchemaErrorKind::Conflict);
        assert!(err.to_string().contains("'Counter'") && !err.to_string().contains("'Greeter'"), "{err}");
        assert!(schema.deployment("dp_1").is_some());

        // dp_2 serves Greeter's latest revision; dp_1 only Counter. Move Counter away and
        // dp_1 is removable without force.
        schema.register(deployment("http://c:9080", vec![counter()]), false, "dp_3", T0).unwrap();
        let removal = schema.remove_deployment("dp_1", false).unwrap();
        assert_eq!(removal.deployment.uri, "http://a:9080");
        assert!(removal.removed_services.is_empty());

        let removal = schema.remove_deployment("dp_3", true).unwrap();
        assert_eq!(removal.removed_services, ["Counter"]);
        assert!(schema.service("Counter").is_none());
        assert_eq!(schema.services.keys().collect::<Vec<_>>(), ["Greeter"]);
        assert_eq!(schema.deployments.keys().collect::<Vec<_>>(), ["dp_2"]);
    }

    #[test]
    fn schema_round_trips_through_json() {
        let mut schema = Schema::default();
        schema.register(deployment("http://a:9080", vec![greeter(), counter()]), false, "dp_1", T0).unwrap();
        let json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["services"]["Counter"]["ty"], "VIRTUAL_OBJECT");
        assert_eq!(json["services"]["Counter"]["handlers"][1]["ty"], "SHARED");
        assert_eq!(json["deployments"]["dp_1"]["services"][0]["name"], "Counter");
        assert_eq!(json["deployments"]["dp_1"]["services"][0]["revision"], 1);
        let back: Schema = serde_json::from_value(json).unwrap();
        assert_eq!(back, schema);
        let empty: Schema = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Schema::default());
    }

    #[test]
    fn deployment_ids_are_time_ordered() {
        let a = deployment_id_from(1_700_000_000_000, u128::MAX);
        let b = deployment_id_from(1_700_000_000_001, 0);
        assert!(a.starts_with("dp_") && a.len() == 29, "{a}");
        assert!(a < b, "{a} < {b}");
        assert!(a[3..].bytes().all(|c| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&c)));
        assert_ne!(new_deployment_id(), new_deployment_id());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_rfc3339_millis(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
        assert_eq!(now_rfc3339().len(), 24);
    }

    #[test]
    fn a_deployment_moves_in_place_and_refuses_other_services() {
        let mut schema = Schema::default();
        schema.register(deployment("http://a:9080", vec![greeter(), counter()]), false, "dp_a", T0).unwrap();
        schema.register(deployment("http://b:9080", vec![greeter()]), false, "dp_b", T0).unwrap();

        let moved = schema
            .update_deployment(
                "dp_a",
                NewDeployment { use_http_11: true, ..deployment("http://c:9080/", vec![counter(), greeter()]) },
                false,
            )
            .unwrap();
        assert_eq!((moved.id.as_str(), moved.uri.as_str(), moved.use_http_11), ("dp_a", "http://c:9080", true));
        assert_eq!(schema.deployment("dp_a").unwrap().uri, "http://c:9080");
        assert_eq!(schema.service("Counter").unwrap().deployment_id, "dp_a", "services stay with it");

        let err = schema
            .update_deployment("dp_a", deployment("http://b:9080", vec![greeter(), counter()]), false)
            .unwrap_err();
        assert!(err.to_string().contains("that URI is deployment dp_b"), "{err}");
        let err = schema.update_deployment("dp_a", deployment("http://d:9080", vec![greeter()]), false).unwrap_err();
        assert!(err.to_string().contains("register it as a new deployment"), "{err}");
        let mut changed = counter();
        changed.handlers.push(handler("reset", None));
        let err = schema
            .update_deployment("dp_a", deployment("http://d:9080", vec![greeter(), changed.clone()]), false)
            .unwrap_err();
        assert!(err.to_string().contains("handlers of 'Counter' differ"), "{err}");
        schema.update_deployment("dp_a", deployment("http://d:9080", vec![greeter(), changed]), true).unwrap();
        assert!(schema.service("Counter").unwrap().handlers.iter().any(|h| h.name == "reset"));
        assert_eq!(
            schema.update_deployment("dp_x", deployment("http://e", vec![greeter()]), false).unwrap_err().kind(),
            SchemaErrorKind::NotFound
        );
    }
}

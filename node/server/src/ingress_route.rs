//! What an ingress request asks for, decided from its method, path and the registered
//! services alone (pure). Every refusal carries the HTTP status and a message naming
//! the service, handler or path at fault.

use http::{Method, StatusCode};
use restate_metadata::objects::{HandlerType, Schema, ServiceType};

/// The handler an invocation targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub service: String,
    pub ty: ServiceType,
    /// Present exactly for virtual objects and workflows.
    pub key: Option<String>,
    pub handler: String,
    pub handler_ty: Option<HandlerType>,
}

impl Target {
    /// A workflow's run handler: one run per key.
    pub fn is_workflow_run(&self) -> bool {
        self.ty == ServiceType::Workflow
            && self.handler_ty.or(self.ty.default_handler_type()) == Some(HandlerType::Workflow)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IngressRequest {
    Health,
    /// Call and wait for the result, or (`send`) enqueue and answer with the id at once.
    Invoke {
        target: Target,
        send: bool,
    },
    Attach {
        invocation_id: String,
    },
    Output {
        invocation_id: String,
    },
    /// `GET /restate/workflow/{name}/{key}/attach`: waits for the workflow's run result.
    WorkflowAttach {
        workflow: String,
        key: String,
    },
    /// `GET /restate/workflow/{name}/{key}/output`: the run's result if it completed.
    WorkflowOutput {
        workflow: String,
        key: String,
    },
    /// `POST /restate/awakeables/{id}/resolve|reject` (also `/restate/a/...`): the body is
    /// the value, or the failure's message.
    CompleteAwakeable {
        awakeable_id: String,
        resolve: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal { status, message: message.into() }
}

/// Routes `method path` against `schema`.
pub(crate) fn route(method: &Method, path: &str, schema: &Schema) -> Result<IngressRequest, Refusal> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_decode(s).ok_or_else(|| {
                refuse(StatusCode::BAD_REQUEST, format!("path segment '{s}' is not valid percent-encoded UTF-8"))
            })
        })
        .collect::<Result<_, _>>()?;
    let parts: Vec<&str> = segments.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        ["restate", "health"] => expect(method, Method::GET, path).map(|_| IngressRequest::Health),
        ["restate", "invocation", id, "attach"] => {
            expect(method, Method::GET, path)?;
            Ok(IngressRequest::Attach { invocation_id: (*id).to_owned() })
        }
        ["restate", "invocation", id, "output"] => {
            expect(method, Method::GET, path)?;
            Ok(IngressRequest::Output { invocation_id: (*id).to_owned() })
        }
        ["restate", "workflow", workflow, key, action @ ("attach" | "output")] => {
            expect(method, Method::GET, path)?;
            let (workflow, key) = ((*workflow).to_owned(), (*key).to_owned());
            let is_workflow = schema.services.get(&workflow).map(|s| s.ty);
            if is_workflow != Some(ServiceType::Workflow) {
                let what = match is_workflow {
                    Some(ty) => format!("'{workflow}' is a {}, not a workflow", ty.as_str()),
                    None => format!("workflow '{workflow}' not found: no deployment registered for it"),
                };
                return Err(refuse(StatusCode::NOT_FOUND, what));
            }
            Ok(if *action == "attach" {
                IngressRequest::WorkflowAttach { workflow, key }
            } else {
                IngressRequest::WorkflowOutput { workflow, key }
            })
        }
        ["restate", "awakeables" | "a", id, action @ ("resolve" | "reject")] => {
            expect(method, Method::POST, path)?;
            Ok(IngressRequest::CompleteAwakeable { awakeable_id: (*id).to_owned(), resolve: *action == "resolve" })
        }
        ["restate", "awakeables" | "a", ..] => Err(refuse(
            StatusCode::NOT_FOUND,
            format!("unknown ingress path '{path}': complete an awakeable with POST /restate/awakeables/{{id}}/resolve or /reject"),
        )),
        ["restate", ..] => Err(refuse(StatusCode::NOT_FOUND, format!("unknown ingress path '{path}'"))),
        [] => Err(refuse(
            StatusCode::NOT_FOUND,
            "no service in the path: call /{Service}/{handler} or /{Object}/{key}/{handler}",
        )),
        [service, rest @ ..] => invoke(method, path, service, rest, schema),
    }
}

fn expect(method: &Method, wanted: Method, path: &str) -> Result<(), Refusal> {
    if *method == wanted {
        Ok(())
    } else {
        Err(refuse(StatusCode::METHOD_NOT_ALLOWED, format!("{path} accepts {wanted}, not {method}")))
    }
}

fn invoke(
    method: &Method,
    path: &str,
    service: &str,
    rest: &[&str],
    schema: &Schema,
) -> Result<IngressRequest, Refusal> {
    let Some(definition) = schema.services.get(service) else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            format!("service '{service}' not found: no deployment registered for it (register one with `restate deployments register <URL>`)"),
        ));
    };
    let keyed = definition.ty != ServiceType::Service;
    let (key, rest) = match (keyed, rest) {
        (true, [key, rest @ ..]) => (Some((*key).to_owned()), rest),
        (true, []) => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("'{service}' is a {}: call /{service}/{{key}}/{{handler}}", definition.ty.as_str()),
            ))
        }
        (false, rest) => (None, rest),
    };
    let (handler, send) = match rest {
        [handler] => (*handler, false),
        [handler, "send"] => (*handler, true),
        [] => {
            let shape = if keyed { "{key}/{handler}" } else { "{handler}" };
            return Err(refuse(StatusCode::NOT_FOUND, format!("no handler in the path: call /{service}/{shape}")));
        }
        _ => return Err(refuse(StatusCode::NOT_FOUND, format!("unknown ingress path '{path}'"))),
    };
    let Some(h) = definition.handlers.iter().find(|h| h.name == handler) else {
        let known: Vec<&str> = definition.handlers.iter().map(|h| h.name.as_str()).collect();
        return Err(refuse(
            StatusCode::NOT_FOUND,
            format!("service '{service}' has no handler '{handler}' (handlers: {})", known.join(", ")),
        ));
    };
    if *method != Method::POST {
        return Err(refuse(StatusCode::METHOD_NOT_ALLOWED, format!("invocations use POST, not {method} ({path})")));
    }
    let target =
        Target { service: service.to_owned(), ty: definition.ty, key, handler: handler.to_owned(), handler_ty: h.ty };
    Ok(IngressRequest::Invoke { target, send })
}

/// Decodes `%XX` escapes; `None` for a bad escape (a `%` not followed by two hex digits,
/// which the decoder would pass through as text) or bytes that are not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let escapes_valid = segment
        .split('%')
        .skip(1)
        .all(|after| after.len() >= 2 && after.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if !escapes_valid {
        return None;
    }
    percent_encoding::percent_decode_str(segment).decode_utf8().ok().map(|text| text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use restate_metadata::objects::{HandlerDefinition, ServiceSchema};

    fn schema() -> Schema {
        let mut schema = Schema::default();
        let service = |name: &str, ty, handlers: &[(&str, Option<HandlerType>)]| ServiceSchema {
            name: name.to_owned(),
            ty,
            handlers: handlers.iter().map(|(n, t)| HandlerDefinition { name: (*n).to_owned(), ty: *t }).collect(),
            deployment_id: "dp_1".into(),
            workflow_completion_retention_ms: None,
            revision: 1,
        };
        schema.services.insert("Greeter".into(), service("Greeter", ServiceType::Service, &[("greet", None)]));
        schema.services.insert(
            "Counter".into(),
            service(
                "Counter",
                ServiceType::VirtualObject,
                &[("add", Some(HandlerType::Exclusive)), ("get", Some(HandlerType::Shared))],
            ),
        );
        schema
    }

    #[test]
    fn services_objects_and_send_are_routed() {
        let s = schema();
        let Ok(IngressRequest::Invoke { target, send: false }) = route(&Method::POST, "/Greeter/greet", &s) else {
            panic!()
        };
        assert_eq!((target.service.as_str(), target.key, target.handler.as_str()), ("Greeter", None, "greet"));
        let Ok(IngressRequest::Invoke { target, send: true }) = route(&Method::POST, "/Counter/my%20key/add/send", &s)
        else {
            panic!()
        };
        assert_eq!(target.key.as_deref(), Some("my key"));
        assert_eq!(target.handler_ty, Some(HandlerType::Exclusive));
        assert_eq!(route(&Method::GET, "/restate/health", &s), Ok(IngressRequest::Health));
        assert_eq!(
            route(&Method::GET, "/restate/invocation/inv_1/attach", &s),
            Ok(IngressRequest::Attach { invocation_id: "inv_1".into() })
        );
    }

    #[test]
    fn awakeable_completions_are_routed() {
        let s = schema();
        assert_eq!(
            route(&Method::POST, "/restate/awakeables/sign_1abc/resolve", &s),
            Ok(IngressRequest::CompleteAwakeable { awakeable_id: "sign_1abc".into(), resolve: true })
        );
        assert_eq!(
            route(&Method::POST, "/restate/a/prom_1abc/reject", &s),
            Ok(IngressRequest::CompleteAwakeable { awakeable_id: "prom_1abc".into(), resolve: false })
        );
        let refusal = route(&Method::GET, "/restate/awakeables/sign_1abc/resolve", &s).unwrap_err();
        assert_eq!(refusal.status, StatusCode::METHOD_NOT_ALLOWED);
        let refusal = route(&Method::POST, "/restate/awakeables/sign_1abc/complete", &s).unwrap_err();
        assert_eq!(refusal.status, StatusCode::NOT_FOUND);
        assert!(refusal.message.contains("/resolve or /reject"), "{}", refusal.message);
    }

    #[test]
    fn every_refusal_names_what_is_wrong() {
        let s = schema();
        let cases = [
            (Method::POST, "/Nope/greet", StatusCode::NOT_FOUND, "service 'Nope' not found"),
            (Method::POST, "/Greeter/wave", StatusCode::NOT_FOUND, "no handler 'wave' (handlers: greet)"),
            (Method::POST, "/Counter/add", StatusCode::NOT_FOUND, "call /Counter/{key}/{handler}"),
            (Method::POST, "/Counter/k/inc", StatusCode::NOT_FOUND, "no handler 'inc' (handlers: add, get)"),
            (Method::POST, "/Counter", StatusCode::NOT_FOUND, "/Counter/{key}/{handler}"),
            (Method::GET, "/Greeter/greet", StatusCode::METHOD_NOT_ALLOWED, "use POST, not GET"),
            (Method::POST, "/restate/health", StatusCode::METHOD_NOT_ALLOWED, "accepts GET"),
            (Method::POST, "/Greeter/greet/extra/more", StatusCode::NOT_FOUND, "unknown ingress path"),
            (Method::POST, "/Greeter/gr%ZZ", StatusCode::BAD_REQUEST, "percent-encoded"),
            (Method::GET, "/restate/nothing", StatusCode::NOT_FOUND, "unknown ingress path"),
            (Method::POST, "/", StatusCode::NOT_FOUND, "no service in the path"),
        ];
        for (method, path, status, text) in cases {
            let refusal = route(&method, path, &s).unwrap_err();
            assert_eq!(refusal.status, status, "{method} {path}: {}", refusal.message);
            assert!(refusal.message.contains(text), "{method} {path}: {}", refusal.message);
        }
    }
}

//! What kind of service and handler a deployment declares: one definition for the
//! discovery manifest, the service registry and the partition state machine. The serde
//! form is the one Restate's manifest and admin API use (`SERVICE`, `VIRTUAL_OBJECT`,
//! `WORKFLOW`; `WORKFLOW`, `EXCLUSIVE`, `SHARED`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Kind of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceType {
    /// Stateless; invocations run concurrently.
    Service,
    /// Keyed state; one exclusive invocation per key at a time.
    VirtualObject,
    /// A virtual object whose `WORKFLOW` handler runs once per key.
    Workflow,
}

/// Kind of handler of a virtual object or workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HandlerType {
    /// The workflow's main handler (workflows only).
    Workflow,
    /// Holds the key's lock, may write state.
    Exclusive,
    /// Runs beside others on the same key, reads state only.
    Shared,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Service => "SERVICE",
            ServiceType::VirtualObject => "VIRTUAL_OBJECT",
            ServiceType::Workflow => "WORKFLOW",
        }
    }

    /// The kind of a handler that declares none: none for plain services, `EXCLUSIVE`
    /// for virtual objects, `WORKFLOW` for workflows.
    pub fn default_handler_type(self) -> Option<HandlerType> {
        match self {
            ServiceType::Service => None,
            ServiceType::VirtualObject => Some(HandlerType::Exclusive),
            ServiceType::Workflow => Some(HandlerType::Workflow),
        }
    }
}

impl HandlerType {
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerType::Workflow => "WORKFLOW",
            HandlerType::Exclusive => "EXCLUSIVE",
            HandlerType::Shared => "SHARED",
        }
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for HandlerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_display_use_restate_s_names() {
        assert_eq!(serde_json::to_string(&ServiceType::VirtualObject).unwrap(), "\"VIRTUAL_OBJECT\"");
        assert_eq!(serde_json::from_str::<HandlerType>("\"SHARED\"").unwrap(), HandlerType::Shared);
        assert_eq!(ServiceType::Workflow.to_string(), "WORKFLOW");
        assert_eq!(ServiceType::Service.default_handler_type(), None);
    }
}

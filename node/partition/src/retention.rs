//! Which completed invocations a purge forgets. Plain invocations (and their idempotency
//! keys) follow one cutoff; workflow runs (with their state and promises) follow the
//! workflow cutoff of their service, or the default one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The workflow part of a purge: cutoffs in ms since the UNIX epoch (completed before
/// the cutoff: forgotten).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkflowCutoffs {
    /// For workflow runs of services without their own; `None`: the invocations' cutoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ms: Option<u64>,
    /// Per workflow service (its `workflow_completion_retention`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_service: BTreeMap<String, u64>,
}

impl WorkflowCutoffs {
    /// Whether the purge carries no workflow cutoff (records written before they existed).
    pub fn is_none(&self) -> bool {
        self.default_ms.is_none() && self.by_service.is_empty()
    }

    /// The cutoff for a completed invocation of `service` (a workflow run or not), when
    /// `invocations_ms` is the plain invocations' one.
    pub fn cutoff_for(&self, service: &str, workflow_run: bool, invocations_ms: u64) -> u64 {
        if !workflow_run {
            return invocations_ms;
        }
        self.by_service.get(service).copied().or(self.default_ms).unwrap_or(invocations_ms)
    }

    /// The latest cutoff of all: records completed after it are kept by every rule.
    pub fn latest(&self, invocations_ms: u64) -> u64 {
        self.by_service.values().copied().chain(self.default_ms).fold(invocations_ms, u64::max)
    }
}

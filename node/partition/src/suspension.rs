//! What a suspended invocation waits on, as its SDK said when it suspended.

use serde::{Deserialize, Serialize};

use super::journal::{NotificationId, CANCEL_SIGNAL_ID};

/// The notifications a suspended invocation waits on: every id of the `Future` its SDK
/// suspended on (`SuspensionMessage.awaiting_on`, nested futures flattened; whatever
/// the combinator, a notification for any of them may let it continue).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Awaiting {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completions: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub named_signals: Vec<String>,
}

impl Awaiting {
    /// Whether `notification` is one this invocation waits on. The CANCEL signal always
    /// is: the SDK must see it whatever it awaits.
    pub fn wakes_for(&self, notification: &NotificationId) -> bool {
        match notification {
            NotificationId::Completion(id) => self.completions.contains(id),
            NotificationId::Signal(CANCEL_SIGNAL_ID) => true,
            NotificationId::Signal(index) => self.signals.contains(index),
            NotificationId::NamedSignal(name) => self.named_signals.contains(name),
        }
    }
}

//! The worker role: the partition processors of a node ([`processor`]). Each applies its
//! partition's log to the state machine of `restate-partition`; leaders run invocation
//! rounds against deployments through `restate-service-protocol`'s client.

pub mod processor;
pub mod trim_policy;

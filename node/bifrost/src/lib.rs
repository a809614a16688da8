//! Logs: the [`Loglet`] contract, its local implementation, and virtual logs on top.
//!
//! A loglet is the storage of one log segment: records numbered by contiguous LSNs from
//! `Lsn(1)`, appended durably, trimmed at the head, sealed at the tail. [`Loglet`] is
//! the contract every implementation keeps; [`LocalLoglet`] keeps it on the node's own
//! RocksDB and [`LocalLogletProvider`] hands out one shared handle per loglet.
//! [`LogletReadStream`] follows any loglet from an LSN onward, waiting at the tail.
//!
//! [`Bifrost`] joins loglets into virtual logs: one per `LogId`, a chain of segments kept
//! in the `Logs` metadata object, with virtual LSNs that run on across segments. It
//! reaches each segment's loglet through a [`LogletProvider`].

mod bifrost;
mod local_loglet;
mod loglet;
mod loglet_keys;
mod metrics;
mod provider;
pub mod replicated;
pub mod segment_math;

pub use bifrost::{Bifrost, BifrostError, LogDescription, LogReadBatch, LogTail, LogletProvider, SegmentDescription};
pub use local_loglet::LocalLoglet;
pub use loglet::{LogEntry, LogRecord, Loglet, LogletError, LogletReadStream, ReadBatch, TailState, TrimGap};
pub use metrics::{BifrostMetrics, LogletHostMetrics};
pub use provider::{ClusterLogletProvider, LocalLogletProvider};

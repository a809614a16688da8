//! Logs: the [`Loglet`] contract and its local implementation.
//!
//! A loglet is the storage of one log segment: records numbered by contiguous LSNs from
//! `Lsn(1)`, appended durably, trimmed at the head, sealed at the tail. [`Loglet`] is
//! the contract every implementation keeps; [`LocalLoglet`] keeps it on the node's own
//! RocksDB and [`LocalLogletProvider`] hands out one shared handle per loglet.
//! [`LogletReadStream`] follows any loglet from an LSN onward, waiting at the tail.

mod local_loglet;
mod loglet;
mod provider;

pub use local_loglet::LocalLoglet;
pub use loglet::{LogEntry, LogRecord, Loglet, LogletError, LogletReadStream, ReadBatch, TailState, TrimGap};
pub use provider::LocalLogletProvider;

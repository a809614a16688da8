//! Groundwork for the worker role: talking to service deployments built with a Restate SDK.
//!
//! - [`protocol`]: the service protocol's framing and messages (versions V5 to V7).
//! - [`discovery`](mod@discovery): `GET {deployment}/discover`, the endpoint manifest.
//! - [`invoke`](mod@invoke): one request/response invocation round, `POST {deployment}/invoke/...`.
//! - [`partition`]: the deterministic partition state machine over a partition's log
//!   (invocations, journals, virtual-object state and locks, idempotency, timers, outbox)
//!   and its stores (RocksDB, memory).
//!
//! Deployments are reached over HTTP/2 with prior knowledge (cleartext `http://` only, as
//! the SDKs' own servers speak no HTTP/1.1), through a [`DeploymentClient`].

mod client;
pub mod discovery;
pub mod invoke;
pub mod partition;
pub mod processor;
pub mod protocol;

pub use client::{DeploymentClient, DeploymentClientError};
pub use discovery::{discover, DiscoveryError, EndpointManifest};
pub use invoke::{invoke, InvocationResponse, InvokeError};

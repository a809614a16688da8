//! Talking to service deployments built with a Restate SDK.
//!
//! - [`protocol`]: the service protocol's framing and messages (versions V5 to V7); no
//!   networking, so the partition state machine can journal protocol messages.
//! - With the `client` feature (default): [`discovery`](mod@discovery) (`GET
//!   {deployment}/discover`, the endpoint manifest), [`invoke`](mod@invoke) (one
//!   request/response invocation round, `POST {deployment}/invoke/...`) and the
//!   [`DeploymentClient`] they share: HTTP/2 with prior knowledge (cleartext `http://`
//!   only, as the SDKs' own servers speak no HTTP/1.1).

pub mod protocol;

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
pub mod discovery;
#[cfg(feature = "client")]
pub mod invoke;
#[cfg(feature = "client")]
pub mod request_identity;

#[cfg(feature = "client")]
pub use client::{DeploymentClient, DeploymentClientError, HttpVersion};
#[cfg(feature = "client")]
pub use discovery::{discover, DiscoveryError, EndpointManifest};
#[cfg(feature = "client")]
pub use invoke::{invoke, InvocationResponse, InvokeError};
#[cfg(feature = "client")]
pub use request_identity::RequestSigner;

//! The process around the reconciler: leader election over a Lease ([`leader`]), the HTTP
//! endpoint with `/health`, `/ready` and `/metrics` ([`http`], [`metrics`]), and the
//! per-object retry delays after failed rounds ([`backoff`]).

pub mod backoff;
pub mod http;
pub mod leader;
pub mod metrics;

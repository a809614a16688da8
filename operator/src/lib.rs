//! The Restate Kubernetes operator: the `RestateCluster` CRD, pure builders of every object a
//! cluster owns, the reconcile loop ([`reconcile`]) that server-side applies them under one
//! field manager, provisions each cluster once and writes its status, and the process
//! around it ([`runtime`]: leader election, `/health` `/ready` `/metrics`, retry backoff).
//!
//! - [`crd`]: the resource's spec and status, and the CRD YAML (`crdgen`).
//! - [`names`]: object names, labels, stable pod DNS names and node addresses.
//! - [`config`]: the rendered `restate.toml` and the merge with the user's config.
//! - [`objects`]: ConfigMap, Services, StatefulSet, PodDisruptionBudget, ServiceAccount,
//!   NetworkPolicy, and the storage-format check's Job.
//! - [`replication`] and [`conditions`]: the replication-versus-nodes rule and status
//!   conditions; [`status`]: the status a reconcile round writes from what it observed.
//! - [`scale_in`]: the StatefulSet size while leaving nodes drain (pure).
//! - [`rolling`] and [`storage_check`]: a guarded roll's steps, and the check that a new
//!   image reads the cluster's data before any node restarts on it (pure).
//! - [`reconcile`]: the round, its finalizer (volume claims on deletion) and Events.

pub mod conditions;
pub mod config;
pub mod crd;
pub mod error;
pub mod names;
pub mod objects;
pub mod reconcile;
pub mod replication;
pub mod rolling;
pub mod runtime;
pub mod scale_in;
pub mod snapshot_schedule;
pub mod status;
pub mod storage;
pub mod storage_check;

pub use config::{OverriddenKey, RenderedConfig};
pub use crd::{RestateCluster, RestateClusterSpec, RestateClusterStatus};
pub use error::BuildError;
pub use objects::{owned_objects, BuildContext, OwnedObjects};

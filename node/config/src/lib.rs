//! Node configuration: a `restate.toml` file, `RESTATE_*` environment variables and CLI flags,
//! merged with precedence defaults < file < env < CLI flags.
//!
//! [`load`] is pure: the caller reads the file ([`ConfigFile::read`]) and the environment
//! ([`env_sources_from_process`]) and hands them over in [`ConfigSources`]. `load` checks every
//! value of every source against one schema of all keys, reports all problems at once as
//! [`ConfigErrors`] (each naming the key path and its source), and otherwise returns the typed
//! [`Config`] together with warnings and the winning [`Source`] of every key.
//!
//! Environment variables are `RESTATE_` + the key path in upper case, with `__` between
//! nesting levels and `_` for `-` (`RESTATE_ADMIN__BIND_ADDRESS` sets `admin.bind-address`).
//! Lists are JSON (`RESTATE_ROLES='["worker","admin"]'`). `RESTATE_CONFIG` names the file;
//! other unknown `RESTATE_*` variables are warnings, because orchestrators such as Kubernetes
//! inject variables like `RESTATE_PORT` that this program does not own. Unknown keys in the
//! file are errors.

mod duration;
mod env;
mod errors;
mod load;
mod model;
mod schema;
mod size;
mod sources;

#[cfg(test)]
mod load_tests;

pub use duration::parse_duration;
pub use env::{env_sources_from_process, env_var_for_key, key_for_env_var, CONFIG_FILE_ENV_VAR, ENV_PREFIX};
pub use errors::{ConfigErrors, ConfigProblem};
pub use load::{load, Loaded};
pub use model::{
    AdminOptions, BifrostOptions, Config, IngressOptions, InvocationOptions, InvokerOptions, LogFormat,
    MetadataClientOptions, MetadataServerOptions, NetworkingOptions, OnMaxAttempts, QueryEngineOptions,
    RetryPolicyOptions, SnapshotDestination, SnapshotOptions, WorkerOptions, REDACTED,
};
pub use size::parse_size;
pub use sources::{CliOverride, ConfigFile, ConfigSources, Source};

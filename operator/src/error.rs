//! Why an owned object could not be built.

/// A builder's failure. Both cases are the user's or the caller's to fix, never transient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Objects read from the API server always have these; a hand-made one may not.
    #[error("the RestateCluster has no {0}; builders need an object as the API server returns it")]
    MissingMetadata(&'static str),
    /// `spec.config` is not TOML.
    #[error("spec.config is not valid TOML: {0}")]
    InvalidConfig(String),
    /// A field of the spec the operator cannot build from (a name it uses itself, ...).
    #[error("{field}: {reason}")]
    InvalidSpec { field: String, reason: String },
}

impl BuildError {
    /// Short stable name of the variant, the `kind` label of the error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            BuildError::MissingMetadata(_) => "missing_metadata",
            BuildError::InvalidConfig(_) => "invalid_config",
            BuildError::InvalidSpec { .. } => "invalid_spec",
        }
    }
}

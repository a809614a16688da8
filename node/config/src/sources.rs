//! The inputs to `load` and where each setting came from.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a setting's value came from. Later sources override earlier ones:
/// `Default` < `File` < `Env` < `Cli`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    Default,
    /// The configuration file at this path.
    File(PathBuf),
    /// This environment variable, e.g. `RESTATE_NODE_NAME`.
    Env(String),
    /// This command-line flag, e.g. `--node-name`.
    Cli(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Cli(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A `restate.toml` already read into memory (so `load` stays free of I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// Shown in messages; not read by `load`.
    pub path: PathBuf,
    pub contents: String,
}

impl ConfigFile {
    pub fn read(path: impl AsRef<Path>) -> std::io::Result<ConfigFile> {
        let path = path.as_ref().to_path_buf();
        let contents = std::fs::read_to_string(&path)?;
        Ok(ConfigFile { path, contents })
    }
}

/// One command-line flag setting one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliOverride {
    /// Dotted key path, e.g. `node-name` or `admin.bind-address`; must be a known key.
    pub key: String,
    /// Text as typed, interpreted like an environment variable's value.
    pub value: String,
    /// The flag as the user wrote it, e.g. `--node-name`, for messages.
    pub flag: String,
}

impl CliOverride {
    pub fn new(key: impl Into<String>, value: impl Into<String>, flag: impl Into<String>) -> CliOverride {
        CliOverride { key: key.into(), value: value.into(), flag: flag.into() }
    }
}

/// Everything `load` reads. `env` is `(name, value)` pairs; names not starting with
/// `RESTATE_` and `RESTATE_CONFIG` are ignored. Within `env` and within `cli`, later entries
/// win over earlier ones for the same key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    pub file: Option<ConfigFile>,
    pub env: Vec<(String, String)>,
    pub cli: Vec<CliOverride>,
}

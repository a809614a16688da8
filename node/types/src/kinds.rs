use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// Which loglet implementation new log segments use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogProviderKind {
    /// Records live in the RocksDB of one node.
    #[default]
    Local,
    /// Records live on a raft group of log-servers.
    Replicated,
}

impl LogProviderKind {
    pub const ALL: [LogProviderKind; 2] = [LogProviderKind::Local, LogProviderKind::Replicated];
    pub fn as_str(self) -> &'static str {
        match self {
            LogProviderKind::Local => "local",
            LogProviderKind::Replicated => "replicated",
        }
    }
}

impl fmt::Display for LogProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogProviderKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| ParseError {
            what: "log provider",
            input: s.to_owned(),
            expected: "expected one of: local, replicated".to_owned(),
        })
    }
}

/// Where a metadata-server node keeps cluster metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MetadataServerKind {
    /// RocksDB of this node alone.
    #[default]
    Local,
    /// A raft group over the metadata-server nodes.
    Replicated,
}

impl MetadataServerKind {
    pub const ALL: [MetadataServerKind; 2] = [MetadataServerKind::Local, MetadataServerKind::Replicated];
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataServerKind::Local => "local",
            MetadataServerKind::Replicated => "replicated",
        }
    }
}

impl fmt::Display for MetadataServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MetadataServerKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| ParseError {
            what: "metadata server type",
            input: s.to_owned(),
            expected: "expected one of: local, replicated".to_owned(),
        })
    }
}

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// A node's identity in the cluster, stable across restarts: `N1`, `N2`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlainNodeId(pub u32);

impl PlainNodeId {
    pub fn with_generation(self, generation: u32) -> GenerationalNodeId {
        GenerationalNodeId { id: self, generation }
    }
}

impl fmt::Display for PlainNodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "N{}", self.0)
    }
}

impl FromStr for PlainNodeId {
    type Err = ParseError;
    /// Accepts `N3`, `n3` and `3`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix(['N', 'n']).unwrap_or(s);
        digits.parse::<u32>().ok().filter(|n| *n > 0).map(PlainNodeId).ok_or_else(|| ParseError {
            what: "node id",
            input: s.to_owned(),
            expected: "expected N<number> with number >= 1, e.g. N1".to_owned(),
        })
    }
}

/// One incarnation of a node: the generation rises every time the node starts, so an old
/// incarnation can always be told apart from the current one. Shown as `N1:3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GenerationalNodeId {
    pub id: PlainNodeId,
    pub generation: u32,
}

impl fmt::Display for GenerationalNodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id, self.generation)
    }
}

/// Version of a metadata value. The first stored version is 1; every write adds one.
/// Version 0 (the default) stands for "no value".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Version(pub u32);

impl Version {
    pub const FIRST: Version = Version(1);
    pub fn next(self) -> Version {
        Version(self.0.checked_add(1).expect("metadata version overflow"))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Log sequence number. LSN 0 is "before the first record"; the first record gets LSN 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const INVALID: Lsn = Lsn(0);
    pub const OLDEST: Lsn = Lsn(1);
    pub fn next(self) -> Lsn {
        Lsn(self.0 + 1)
    }
    pub fn prev(self) -> Lsn {
        Lsn(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A virtual log (one per partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogId(pub u32);

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One segment's loglet; unique in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogletId(pub u64);

impl fmt::Display for LogletId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartitionId(pub u16);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_round_trips_through_text() {
        assert_eq!("N7".parse::<PlainNodeId>().unwrap(), PlainNodeId(7));
        assert_eq!("n7".parse::<PlainNodeId>().unwrap(), PlainNodeId(7));
        assert_eq!("7".parse::<PlainNodeId>().unwrap(), PlainNodeId(7));
        assert_eq!(PlainNodeId(7).to_string(), "N7");
        assert_eq!(PlainNodeId(7).with_generation(3).to_string(), "N7:3");
        assert!("N0".parse::<PlainNodeId>().is_err());
        assert!("node1".parse::<PlainNodeId>().is_err());
    }
}

//! Where a node runs (`location = "region.zone"`, Restate's form) and how log copies must be
//! spread over locations (the replication property, `2` or `{zone: 2, node: 3}`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// A node's place: a region and, within it, a zone. Both empty: no location given.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Location {
    pub region: String,
    pub zone: String,
}

/// The levels a replication property can spread copies over, widest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocationScope {
    Region,
    Zone,
    Node,
}

impl LocationScope {
    pub const ALL: [LocationScope; 3] = [LocationScope::Region, LocationScope::Zone, LocationScope::Node];

    pub fn as_str(self) -> &'static str {
        match self {
            LocationScope::Region => "region",
            LocationScope::Zone => "zone",
            LocationScope::Node => "node",
        }
    }
}

impl Location {
    pub fn is_empty(&self) -> bool {
        self.region.is_empty() && self.zone.is_empty()
    }

    /// The domain of this location at `scope`, as text: `region`, or `region.zone` for
    /// `Zone` (and `Node`, which no spread asks for). Nodes without a location share the
    /// domain "".
    pub fn domain(&self, scope: LocationScope) -> String {
        match scope {
            LocationScope::Region => self.region.clone(),
            LocationScope::Zone | LocationScope::Node => self.to_string(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.region.is_empty(), self.zone.is_empty()) {
            (_, true) => f.write_str(&self.region),
            (_, false) => write!(f, "{}.{}", self.region, self.zone),
        }
    }
}

fn location_error(input: &str, why: &str) -> ParseError {
    ParseError {
        what: "location",
        input: input.to_owned(),
        expected: format!("{why}; expected \"region\" or \"region.zone\", e.g. \"eu-west-1.eu-west-1a\""),
    }
}

fn is_label(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl FromStr for Location {
    type Err = ParseError;
    /// `""` (no location), `region` or `region.zone`; each part letters, digits, `-`, `_`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(Location::default());
        }
        let mut parts = s.split('.');
        let region = parts.next().unwrap_or_default();
        let zone = parts.next().unwrap_or_default();
        if parts.next().is_some() {
            return Err(location_error(s, "more than two parts"));
        }
        if !is_label(region) || (s.contains('.') && !is_label(zone)) {
            return Err(location_error(s, "each part must be non-empty letters, digits, '-' or '_'"));
        }
        Ok(Location { region: region.to_owned(), zone: zone.to_owned() })
    }
}

impl Serialize for Location {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How many copies of every record, and over how many distinct regions and zones they must
/// be spread (0: no requirement at that scope). `{zone: 2, node: 3}`: three copies, in at
/// least two zones. Invariant (checked by parsing): `region <= zone <= node` where set, and
/// `node >= 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplicationProperty {
    pub region: u32,
    pub zone: u32,
    pub node: u32,
}

/// Largest count a replication property accepts at any scope.
pub const MAX_REPLICATION: u32 = 128;

impl ReplicationProperty {
    /// `n` copies, anywhere.
    pub const fn nodes(n: u32) -> Self {
        ReplicationProperty { region: 0, zone: 0, node: n }
    }

    /// A bare copy count (no region or zone given): written as a number (`3`), as stored
    /// configurations held it before locations existed.
    pub fn is_count(&self) -> bool {
        self.region == 0 && self.zone == 0
    }

    /// The required spread per scope: (scope, distinct domains), widest first, only where
    /// more than one is required.
    pub fn spread(&self) -> Vec<(LocationScope, u32)> {
        [(LocationScope::Region, self.region), (LocationScope::Zone, self.zone)]
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect()
    }

    /// The same spread with `node` copies (zone and region capped at `node`).
    pub fn with_nodes(&self, node: u32) -> Self {
        ReplicationProperty { region: self.region.min(node), zone: self.zone.min(node), node }
    }

    fn validate(self, input: &str) -> Result<Self, ParseError> {
        let error = |why: String| ParseError { what: "replication", input: input.to_owned(), expected: why };
        if self.node == 0 || self.node > MAX_REPLICATION {
            return Err(error(format!("node must be between 1 and {MAX_REPLICATION}, found {}", self.node)));
        }
        if self.zone > self.node {
            return Err(error(format!(
                "zone ({}) cannot exceed node ({}): copies in {} zones need at least {} copies",
                self.zone, self.node, self.zone, self.zone
            )));
        }
        if self.region > self.node {
            return Err(error(format!(
                "region ({}) cannot exceed node ({}): copies in {} regions need at least {} copies",
                self.region, self.node, self.region, self.region
            )));
        }
        if self.zone > 0 && self.region > self.zone {
            return Err(error(format!(
                "region ({}) cannot exceed zone ({}): every region holds at least one zone",
                self.region, self.zone
            )));
        }
        Ok(self)
    }
}

impl fmt::Display for ReplicationProperty {
    /// `3` for a plain count; `{zone: 2, node: 3}` otherwise (Restate's form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_count() {
            return write!(f, "{}", self.node);
        }
        f.write_str("{")?;
        if self.region > 0 {
            write!(f, "region: {}, ", self.region)?;
        }
        if self.zone > 0 {
            write!(f, "zone: {}, ", self.zone)?;
        }
        write!(f, "node: {}}}", self.node)
    }
}

impl FromStr for ReplicationProperty {
    type Err = ParseError;
    /// `3`, `{node: 3}`, `{zone: 2, node: 3}`, `{region: 2, zone: 2, node: 3}` (any order,
    /// spaces optional). Without `node`, as many copies as the widest count asks for.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |why: &str| ParseError {
            what: "replication",
            input: s.to_owned(),
            expected: format!("{why}; expected a number like 2 or a property like \"{{zone: 2, node: 3}}\""),
        };
        let text = s.trim();
        if let Ok(n) = text.parse::<u32>() {
            return ReplicationProperty::nodes(n).validate(s);
        }
        let inner = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| error("not a number and not in braces"))?;
        let mut property = ReplicationProperty { region: 0, zone: 0, node: 0 };
        for entry in inner.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, count) =
                entry.split_once(':').ok_or_else(|| error(&format!("'{entry}' is not 'scope: count'")))?;
            let (name, count) = (name.trim(), count.trim());
            let count: u32 =
                count.parse().map_err(|_| error(&format!("the count of {name} ('{count}') is not a whole number")))?;
            let slot = match name {
                "region" => &mut property.region,
                "zone" => &mut property.zone,
                "node" => &mut property.node,
                other => return Err(error(&format!("unknown scope '{other}' (known: region, zone, node)"))),
            };
            if *slot != 0 {
                return Err(error(&format!("{name} is given twice")));
            }
            if count == 0 {
                return Err(error(&format!("{name} must be at least 1")));
            }
            *slot = count;
        }
        if property.node == 0 {
            property.node = property.zone.max(property.region);
        }
        if property.node == 0 {
            return Err(error("no scope given"));
        }
        property.validate(s)
    }
}

impl Serialize for ReplicationProperty {
    /// A plain count as a number (what stored configurations held before locations existed),
    /// a property as its text.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_count() {
            serializer.serialize_u32(self.node)
        } else {
            serializer.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for ReplicationProperty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Count(u64),
            Text(String),
        }
        match Form::deserialize(deserializer)? {
            Form::Count(n) => u32::try_from(n)
                .map_err(|_| serde::de::Error::custom(format!("replication {n} is too large")))
                .and_then(|n| ReplicationProperty::nodes(n).validate(&n.to_string()).map_err(serde::de::Error::custom)),
            Form::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_print_in_restates_form() {
        let l: Location = "eu-west-1.eu-west-1a".parse().unwrap();
        assert_eq!((l.region.as_str(), l.zone.as_str()), ("eu-west-1", "eu-west-1a"));
        assert_eq!(l.to_string(), "eu-west-1.eu-west-1a");
        assert_eq!("us".parse::<Location>().unwrap().to_string(), "us");
        assert!("".parse::<Location>().unwrap().is_empty());
        for bad in ["a.b.c", ".a", "a.", "a b", "a..b"] {
            let e = bad.parse::<Location>().unwrap_err().to_string();
            assert!(e.contains("region.zone"), "{bad}: {e}");
        }
        assert_eq!(l.domain(LocationScope::Region), "eu-west-1");
        assert_eq!(l.domain(LocationScope::Zone), "eu-west-1.eu-west-1a");
    }

    #[test]
    fn replication_properties_parse_and_print() {
        let p: ReplicationProperty = "{zone: 2, node: 3}".parse().unwrap();
        assert_eq!(p, ReplicationProperty { region: 0, zone: 2, node: 3 });
        assert_eq!(p.to_string(), "{zone: 2, node: 3}");
        assert_eq!("{node:3,zone:2}".parse::<ReplicationProperty>().unwrap(), p);
        assert_eq!("2".parse::<ReplicationProperty>().unwrap(), ReplicationProperty::nodes(2));
        assert_eq!("{node: 2}".parse::<ReplicationProperty>().unwrap().to_string(), "2");
        assert_eq!(
            "{zone: 2}".parse::<ReplicationProperty>().unwrap(),
            ReplicationProperty { region: 0, zone: 2, node: 2 }
        );
        assert_eq!(
            "{region: 2, zone: 2, node: 3}".parse::<ReplicationProperty>().unwrap().to_string(),
            "{region: 2, zone: 2, node: 3}"
        );
        assert_eq!(p.spread(), vec![(LocationScope::Zone, 2)]);
        assert!(ReplicationProperty::nodes(3).is_count() && !p.is_count());
    }

    #[test]
    fn bad_replication_properties_say_what_is_wrong() {
        for (bad, says) in [
            ("{rack: 2, node: 3}", "unknown scope 'rack'"),
            ("{zone: 4, node: 3}", "zone (4) cannot exceed node (3)"),
            ("{zone: two}", "not a whole number"),
            ("{zone: 2, zone: 2}", "given twice"),
            ("{}", "no scope given"),
            ("zone: 2", "not in braces"),
            ("0", "between 1 and 128"),
            ("{node: 0}", "at least 1"),
            ("{region: 3, zone: 2, node: 3}", "region (3) cannot exceed zone (2)"),
        ] {
            let message = bad.parse::<ReplicationProperty>().unwrap_err().to_string();
            assert!(message.contains(says), "{bad}: {message}");
        }
    }

    #[test]
    fn stored_counts_stay_numbers_and_old_numbers_load() {
        assert_eq!(serde_json::to_string(&ReplicationProperty::nodes(2)).unwrap(), "2");
        let p: ReplicationProperty = serde_json::from_str("3").unwrap();
        assert_eq!(p, ReplicationProperty::nodes(3));
        let zoned = ReplicationProperty { region: 0, zone: 2, node: 3 };
        let text = serde_json::to_string(&zoned).unwrap();
        assert_eq!(text, "\"{zone: 2, node: 3}\"");
        assert_eq!(serde_json::from_str::<ReplicationProperty>(&text).unwrap(), zoned);
        assert!(serde_json::from_str::<ReplicationProperty>("0").is_err());
    }
}

//! Service protocol versions and their HTTP content types.

use std::fmt;

/// Prefix of every invocation content type; the version number follows it.
const CONTENT_TYPE_PREFIX: &str = "application/vnd.restate.invocation.v";

/// A service protocol version this crate implements.
///
/// The version is chosen per invocation through the request's `content-type`
/// (`application/vnd.restate.invocation.vN`); a deployment that accepts it answers with the
/// same content type, otherwise with `415`. Differences that matter on the wire:
/// - V5 is the first version with the command/notification journal (older ones are not
///   supported by current SDKs).
/// - V7 changed `SuspensionMessage` from flat `waiting_*` lists (V5, V6) to a `Future` tree,
///   and SDKs set the `REQUESTED_ACK` header flag on `ProposeRunCompletionMessage`.
///
/// V8 (ephemeral commands, whose notifications need a bidirectional stream) is not
/// implemented; `restate-sdk` 0.13 advertises V5 to V7 anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    V5 = 5,
    V6 = 6,
    V7 = 7,
}

impl ProtocolVersion {
    /// The oldest version implemented here.
    pub const MIN: ProtocolVersion = ProtocolVersion::V5;
    /// The newest version implemented here.
    pub const MAX: ProtocolVersion = ProtocolVersion::V7;
    /// Every implemented version, oldest first.
    pub const ALL: [ProtocolVersion; 3] = [ProtocolVersion::V5, ProtocolVersion::V6, ProtocolVersion::V7];

    /// The version number (5 for V5).
    pub const fn number(self) -> u32 {
        self as u32
    }

    /// The version with this number, if implemented.
    pub fn from_number(number: u32) -> Option<ProtocolVersion> {
        Self::ALL.into_iter().find(|v| v.number() == number)
    }

    /// The request and response content type, e.g. `application/vnd.restate.invocation.v5`.
    pub const fn content_type(self) -> &'static str {
        match self {
            ProtocolVersion::V5 => "application/vnd.restate.invocation.v5",
            ProtocolVersion::V6 => "application/vnd.restate.invocation.v6",
            ProtocolVersion::V7 => "application/vnd.restate.invocation.v7",
        }
    }

    /// The version a content type names, if it is an implemented invocation content type.
    /// Parameters after `;` and surrounding whitespace are ignored.
    pub fn from_content_type(content_type: &str) -> Option<ProtocolVersion> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        let number = essence.strip_prefix(CONTENT_TYPE_PREFIX)?;
        Self::from_number(number.parse().ok()?)
    }

    /// The highest version both sides support, given the inclusive range a deployment
    /// advertises in its manifest (`minProtocolVersion`, `maxProtocolVersion`); `None` when
    /// the ranges do not overlap.
    pub fn negotiate(advertised_min: u32, advertised_max: u32) -> Option<ProtocolVersion> {
        Self::ALL.into_iter().rev().find(|v| (advertised_min..=advertised_max).contains(&v.number()))
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V{}", self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_highest_common_version() {
        assert_eq!(ProtocolVersion::negotiate(5, 7), Some(ProtocolVersion::V7));
        assert_eq!(ProtocolVersion::negotiate(1, 6), Some(ProtocolVersion::V6));
        assert_eq!(ProtocolVersion::negotiate(5, 99), Some(ProtocolVersion::V7));
        assert_eq!(ProtocolVersion::negotiate(5, 5), Some(ProtocolVersion::V5));
        assert_eq!(ProtocolVersion::negotiate(1, 4), None);
        assert_eq!(ProtocolVersion::negotiate(8, 9), None);
        assert_eq!(ProtocolVersion::negotiate(7, 5), None, "an empty advertised range supports nothing");
    }

    #[test]
    fn content_types_round_trip() {
        for v in ProtocolVersion::ALL {
            assert_eq!(ProtocolVersion::from_content_type(v.content_type()), Some(v));
        }
        assert_eq!(
            ProtocolVersion::from_content_type("application/vnd.restate.invocation.v6; charset=x"),
            Some(ProtocolVersion::V6)
        );
        assert_eq!(ProtocolVersion::from_content_type("application/vnd.restate.invocation.v8"), None);
        assert_eq!(ProtocolVersion::from_content_type("application/json"), None);
    }
}

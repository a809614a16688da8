//! Snapshot ids: `snap_` + a lowercase ULID (26 characters of Crockford base32, 10 for the creation
//! time in milliseconds, so ids sort by creation time, and 16 for 80 random bits, so ids created in
//! the same millisecond, on any node, do not collide).

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

const PREFIX: &str = "snap_";
const MAX_ID_LEN: usize = 128;

pub fn new_snapshot_id() -> String {
    let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    snapshot_id_from(unix_ms, rand::rng().random())
}

/// The id for a creation time and 80 bits of randomness (the low 80 bits of `random`).
fn snapshot_id_from(unix_ms: u64, random: u128) -> String {
    format!("{PREFIX}{}", ulid::Ulid::from_parts(unix_ms, random).to_string().to_lowercase())
}

/// Snapshot ids become part of object keys and file names: only `[A-Za-z0-9_-]`, not empty, at most
/// 128 characters. Ids from `new_snapshot_id` always pass; the check guards ids from elsewhere (a
/// caller, or a metadata document read back from the repository).
pub(crate) fn check_snapshot_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("snapshot id '{id}' must have 1 to {MAX_ID_LEN} characters"));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(format!("snapshot id '{id}' contains {c:?}; only ASCII letters, digits, '_' and '-' are allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape() {
        let id = new_snapshot_id();
        assert!(id.starts_with("snap_"), "{id}");
        assert_eq!(id.len(), 5 + 26, "{id}");
        assert!(id[5..].bytes().all(|b| b"0123456789abcdefghjkmnpqrstvwxyz".contains(&b)), "{id}");
        check_snapshot_id(&id).unwrap();
    }

    #[test]
    fn ids_encode_time_then_randomness() {
        assert_eq!(snapshot_id_from(0, 0), "snap_00000000000000000000000000");
        assert_eq!(snapshot_id_from(1, 31), "snap_0000000001000000000000000z");
        // Only the low 80 bits of randomness are used.
        assert_eq!(snapshot_id_from(0, u128::MAX), "snap_0000000000zzzzzzzzzzzzzzzz");
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let earlier = snapshot_id_from(1_700_000_000_000, u128::MAX);
        let later = snapshot_id_from(1_700_000_000_001, 0);
        assert!(earlier < later, "{earlier} vs {later}");
    }

    #[test]
    fn ids_created_together_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_snapshot_id()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn ids_that_cannot_be_keys_are_rejected() {
        for bad in ["", "../etc", "a/b", "snap x", "ü", &"a".repeat(129)] {
            assert!(check_snapshot_id(bad).is_err(), "{bad:?}");
        }
        check_snapshot_id("custom-id_42").unwrap();
    }
}

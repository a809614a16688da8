//! Key layout of the node's `loglet` column family, shared by the local loglets and the
//! replicated loglets' on-disk index: every key starts with a prefix byte and the loglet
//! id (u64 big-endian), so one loglet's keys of one kind are one contiguous range.
//!
//! | prefix | key | value | owner |
//! |---|---|---|---|
//! | `r` | `r ++ loglet ++ lsn` | record | local loglet |
//! | `m` | `m ++ loglet ++ kind` | trim point / seal | local loglet |
//! | `x` | `x ++ loglet ++ first lsn` | raft index of the append | replicated loglet |
//! | `s` | `s ++ loglet` | applied index and state | replicated loglet |
//! | `l` | `l ++ loglet ++ lsn` | record carried by an old snapshot | replicated loglet |

use restate_types::LogletId;

pub(crate) const LOCAL_RECORD: u8 = b'r';
pub(crate) const LOCAL_META: u8 = b'm';
pub(crate) const REPLICATED_INDEX: u8 = b'x';
pub(crate) const REPLICATED_STATE: u8 = b's';
pub(crate) const REPLICATED_CARRIED: u8 = b'l';

/// `prefix ++ loglet ++ lsn`: keys of one loglet and prefix sort by LSN.
pub(crate) fn lsn_key(prefix: u8, loglet: LogletId, lsn: u64) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = prefix;
    key[1..9].copy_from_slice(&loglet.0.to_be_bytes());
    key[9..].copy_from_slice(&lsn.to_be_bytes());
    key
}

/// The LSN in an [`lsn_key`] of `prefix` and `loglet`, or `None` for any other key.
pub(crate) fn lsn_of(prefix: u8, loglet: LogletId, key: &[u8]) -> Option<u64> {
    let key: &[u8; 17] = key.try_into().ok()?;
    (key[0] == prefix && key[1..9] == loglet.0.to_be_bytes())
        .then(|| u64::from_be_bytes(key[9..].try_into().expect("8 bytes")))
}

/// `prefix ++ loglet ++ suffix` (per-loglet values that are not per LSN).
pub(crate) fn loglet_key<const N: usize>(prefix: u8, loglet: LogletId, suffix: [u8; N]) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + N);
    key.push(prefix);
    key.extend_from_slice(&loglet.0.to_be_bytes());
    key.extend_from_slice(&suffix);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_loglet_sort_by_lsn_and_never_match_another() {
        let a = LogletId(7);
        assert!(lsn_key(REPLICATED_INDEX, a, 2) < lsn_key(REPLICATED_INDEX, a, 10));
        assert!(lsn_key(REPLICATED_INDEX, a, 255) < lsn_key(REPLICATED_INDEX, a, 256));
        assert!(lsn_key(REPLICATED_INDEX, a, u64::MAX) < lsn_key(REPLICATED_INDEX, LogletId(8), 0));
        assert_eq!(lsn_of(REPLICATED_INDEX, a, &lsn_key(REPLICATED_INDEX, a, 42)), Some(42));
        assert_eq!(lsn_of(REPLICATED_INDEX, LogletId(8), &lsn_key(REPLICATED_INDEX, a, 42)), None);
        assert_eq!(lsn_of(REPLICATED_CARRIED, a, &lsn_key(REPLICATED_INDEX, a, 42)), None);
        let prefixes = [LOCAL_RECORD, LOCAL_META, REPLICATED_INDEX, REPLICATED_STATE, REPLICATED_CARRIED];
        let mut distinct = prefixes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), prefixes.len(), "every kind of key has its own prefix");
    }
}

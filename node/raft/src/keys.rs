//! Layout of raft state in the node's `raft` column family.
//!
//! Every key starts with the group id (u64 big-endian) and a kind byte, so one group's
//! state is one contiguous key range:
//! - `group ++ 0x01`            HardState (protobuf)
//! - `group ++ 0x02`            ConfState (protobuf)
//! - `group ++ 0x03`            the last snapshot (protobuf Snapshot, with its data)
//! - `group ++ 0x04 ++ index`   log entry at `index` (u64 big-endian, protobuf Entry)

pub(crate) const HARD_STATE: u8 = 0x01;
pub(crate) const CONF_STATE: u8 = 0x02;
pub(crate) const SNAPSHOT: u8 = 0x03;
pub(crate) const ENTRY: u8 = 0x04;

pub(crate) fn state_key(group: u64, kind: u8) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&group.to_be_bytes());
    key[8] = kind;
    key
}

pub(crate) fn entry_key(group: u64, index: u64) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[..8].copy_from_slice(&group.to_be_bytes());
    key[8] = ENTRY;
    key[9..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The group a key belongs to.
pub(crate) fn group_of(key: &[u8]) -> Option<u64> {
    key.get(..8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

pub(crate) fn index_of_entry_key(key: &[u8]) -> Option<u64> {
    (key.len() == 17 && key[8] == ENTRY).then(|| u64::from_be_bytes(key[9..].try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_sort_by_group_then_index() {
        assert!(entry_key(1, 2) < entry_key(1, 10));
        assert!(entry_key(1, u64::MAX) < entry_key(2, 0));
        assert!(state_key(1, SNAPSHOT)[..] < entry_key(1, 0)[..]);
        assert_eq!(index_of_entry_key(&entry_key(7, 42)), Some(42));
        assert_eq!(group_of(&entry_key(7, 42)), Some(7));
    }
}

//! The key layout of a partition's state, relative to the partition (stores add their own
//! prefix). One tag byte per kind of value, then big-endian numbers and length-prefixed
//! strings, so that every "all of X" read is one prefix scan in key order:
//!
//! | key | value |
//! | --- | --- |
//! | `a` | applied LSN (u64 BE) |
//! | `e` | [`LeaderEpoch`](super::LeaderEpoch) (JSON) |
//! | `n` | next inbox/outbox sequence number (u64 BE) |
//! | `i` id | [`InvocationRecord`](super::InvocationRecord) (JSON) |
//! | `x` id | empty: the invocation is running (`Invoked`, `Suspended` or `Paused`) |
//! | `k` id | a completed invocation's `InputCommand` entry, kept for restart-as-new until purged |
//! | `j` id index(u32) | journal entry (`type u16, flags u16, body`) |
//! | `s` service key state-key | user state value (raw) |
//! | `p` service key name | [`PromiseState`](super::promise::PromiseState) of a workflow's promise (JSON) |
//! | `l` service key | id of the invocation holding the key's exclusive lock |
//! | `q` service key seq(u64) | id of an invocation waiting in the key's inbox |
//! | `d` service handler key? idempotency-key | id of the invocation that owns it |
//! | `t` id completion(u32) | timer due time (u64 BE) |
//! | `o` seq(u64) | [`OutboxEntry`](super::OutboxEntry) (JSON) |
//! | `r` completed_at(u64) id | empty: completed invocations by completion time |
//!
//! Ids are the 24-byte binary form; strings are `u32 BE length ++ bytes`.

use super::ids::{InvocationId, INVOCATION_ID_LEN};
use super::record::IdempotencyKey;

pub const APPLIED_LSN: &[u8] = b"a";
pub const LEADER: &[u8] = b"e";
pub const NEXT_SEQ: &[u8] = b"n";
pub const INVOCATION: u8 = b'i';
pub const RUNNING: u8 = b'x';
pub const JOURNAL: u8 = b'j';
pub const STATE: u8 = b's';
pub const LOCK: u8 = b'l';
pub const INBOX: u8 = b'q';
pub const IDEMPOTENCY: u8 = b'd';
pub const TIMER: u8 = b't';
pub const OUTBOX: u8 = b'o';
pub const RETENTION: u8 = b'r';
pub const PROMISE: u8 = b'p';
pub const KEPT_INPUT: u8 = b'k';

struct KeyBuilder(Vec<u8>);

impl KeyBuilder {
    fn new(tag: u8) -> KeyBuilder {
        KeyBuilder(vec![tag])
    }
    fn id(mut self, id: &InvocationId) -> KeyBuilder {
        self.0.extend_from_slice(&id.to_bytes());
        self
    }
    fn str(mut self, s: &str) -> KeyBuilder {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn u32(mut self, n: u32) -> KeyBuilder {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn u64(mut self, n: u64) -> KeyBuilder {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn raw(mut self, bytes: &[u8]) -> KeyBuilder {
        self.0.extend_from_slice(bytes);
        self
    }
    fn build(self) -> Vec<u8> {
        self.0
    }
}

pub fn invocation(id: &InvocationId) -> Vec<u8> {
    KeyBuilder::new(INVOCATION).id(id).build()
}

pub fn kept_input(id: &InvocationId) -> Vec<u8> {
    KeyBuilder::new(KEPT_INPUT).id(id).build()
}

pub fn running(id: &InvocationId) -> Vec<u8> {
    KeyBuilder::new(RUNNING).id(id).build()
}

pub fn journal_prefix(id: &InvocationId) -> Vec<u8> {
    KeyBuilder::new(JOURNAL).id(id).build()
}

pub fn journal_entry(id: &InvocationId, index: u32) -> Vec<u8> {
    KeyBuilder::new(JOURNAL).id(id).u32(index).build()
}

pub fn state_prefix(service: &str, key: &str) -> Vec<u8> {
    KeyBuilder::new(STATE).str(service).str(key).build()
}

pub fn state(service: &str, key: &str, state_key: &[u8]) -> Vec<u8> {
    KeyBuilder::new(STATE).str(service).str(key).raw(state_key).build()
}

pub fn promise_prefix(service: &str, key: &str) -> Vec<u8> {
    KeyBuilder::new(PROMISE).str(service).str(key).build()
}

pub fn promise(service: &str, key: &str, name: &str) -> Vec<u8> {
    KeyBuilder::new(PROMISE).str(service).str(key).str(name).build()
}

pub fn lock(service: &str, key: &str) -> Vec<u8> {
    KeyBuilder::new(LOCK).str(service).str(key).build()
}

pub fn inbox_prefix(service: &str, key: &str) -> Vec<u8> {
    KeyBuilder::new(INBOX).str(service).str(key).build()
}

pub fn inbox(service: &str, key: &str, seq: u64) -> Vec<u8> {
    KeyBuilder::new(INBOX).str(service).str(key).u64(seq).build()
}

pub fn idempotency(key: &IdempotencyKey) -> Vec<u8> {
    let builder = KeyBuilder::new(IDEMPOTENCY).str(&key.service).str(&key.handler);
    // A marker byte tells "no key" from "empty key".
    let builder = match &key.key {
        None => builder.raw(&[0]),
        Some(k) => builder.raw(&[1]).str(k),
    };
    builder.raw(key.idempotency_key.as_bytes()).build()
}

pub fn timers_all() -> Vec<u8> {
    vec![TIMER]
}

pub fn timer_prefix(id: &InvocationId) -> Vec<u8> {
    KeyBuilder::new(TIMER).id(id).build()
}

pub fn timer(id: &InvocationId, completion_id: u32) -> Vec<u8> {
    KeyBuilder::new(TIMER).id(id).u32(completion_id).build()
}

pub fn outbox_all() -> Vec<u8> {
    vec![OUTBOX]
}

pub fn outbox(seq: u64) -> Vec<u8> {
    KeyBuilder::new(OUTBOX).u64(seq).build()
}

pub fn retention(completed_at_ms: u64, id: &InvocationId) -> Vec<u8> {
    KeyBuilder::new(RETENTION).u64(completed_at_ms).id(id).build()
}

/// The first key after every key that starts with `prefix` (`None`: no such key, the
/// prefix is all `0xFF`). Used as the exclusive upper bound of prefix scans.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Reads the id at `offset` of a key; `None` if the key is too short.
pub fn id_at(key: &[u8], offset: usize) -> Option<InvocationId> {
    let bytes: [u8; INVOCATION_ID_LEN] = key.get(offset..offset + INVOCATION_ID_LEN)?.try_into().ok()?;
    Some(InvocationId::from_bytes(bytes))
}

/// Reads a big-endian u32 at `offset`.
pub fn u32_at(key: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_be_bytes(key.get(offset..offset + 4)?.try_into().ok()?))
}

/// Reads a big-endian u64 at `offset`.
pub fn u64_at(key: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(offset..offset + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixes_keep_scopes_apart() {
        assert!(!state("ab", "c", b"x").starts_with(&state_prefix("a", "bc")));
        assert!(state("a", "bc", b"x").starts_with(&state_prefix("a", "bc")));
        let scoped = |key: Option<&str>| IdempotencyKey {
            service: "S".into(),
            handler: "h".into(),
            key: key.map(Into::into),
            idempotency_key: "k".into(),
        };
        assert_ne!(idempotency(&scoped(None)), idempotency(&scoped(Some(""))));
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"a"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        let id = InvocationId::new(u64::MAX, [0xFF; 16]);
        let key = journal_entry(&id, u32::MAX);
        assert!(key < prefix_end(&journal_prefix(&id)).unwrap());
        assert_eq!(id_at(&key, 1), Some(id));
        assert_eq!(u32_at(&key, 25), Some(u32::MAX));
    }
}

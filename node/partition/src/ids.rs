//! Invocation ids, partition keys and the mapping of partition keys to partitions.
//!
//! Everything here is a pure function of its inputs and must never change once data
//! exists: partition keys decide which partition (and so which log and RocksDB prefix)
//! holds an invocation or a virtual object's state.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of an invocation id's string form.
pub const INVOCATION_ID_PREFIX: &str = "inv_";

/// Length of an invocation id's binary form: partition key (8, big-endian) + uuid (16).
pub const INVOCATION_ID_LEN: usize = 24;

/// Base62 digits of the string form: 62^33 > 2^192 > 62^32.
const BASE62_DIGITS: usize = 33;
const BASE62_ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The identity of one invocation: the partition key that routes it, plus 16 bytes the
/// proposer chose (random for ingress requests, derived from the caller's id and journal
/// position for calls, so a replayed journal produces the same callee id).
///
/// String form: `inv_` followed by 33 base62 digits of the 24-byte binary form
/// ([`InvocationId::to_bytes`]); serde uses the string form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InvocationId {
    partition_key: u64,
    uuid: [u8; 16],
}

impl InvocationId {
    /// The id with this partition key and uuid.
    pub const fn new(partition_key: u64, uuid: [u8; 16]) -> InvocationId {
        InvocationId { partition_key, uuid }
    }

    /// The id of a new invocation of `service`/`handler`, routed as the ingress and the
    /// state machine (for calls) must both route it:
    /// - keyed targets (virtual objects, workflows): by `(service, key)`, so every
    ///   invocation on one key lands in the partition that holds the key's state and lock;
    /// - unkeyed targets with an idempotency key: by `(service, handler, idempotency key)`,
    ///   so a repeated request reaches the partition whose index knows the key;
    /// - otherwise by the uuid.
    pub fn for_target(
        service: &str,
        handler: &str,
        key: Option<&str>,
        idempotency_key: Option<&str>,
        uuid: [u8; 16],
    ) -> InvocationId {
        let partition_key = match (key, idempotency_key) {
            (Some(key), _) => partition_key(service, key),
            (None, Some(idempotency_key)) => {
                stable_hash(&[service.as_bytes(), handler.as_bytes(), idempotency_key.as_bytes()])
            }
            (None, None) => partition_key(service, &hex::encode(uuid)),
        };
        InvocationId { partition_key, uuid }
    }

    /// The id of a request with an idempotency key: the same for every repetition of
    /// `(service, handler, key, idempotency key)`, so a repeated request joins the first
    /// (the ingress submits with it; `AttachInvocationCommand` finds it by its target).
    pub fn for_idempotent_request(
        service: &str,
        handler: &str,
        key: Option<&str>,
        idempotency_key: &str,
    ) -> InvocationId {
        let uuid = InvocationId::derive_uuid(&[
            service.as_bytes(),
            handler.as_bytes(),
            key.unwrap_or("").as_bytes(),
            idempotency_key.as_bytes(),
        ]);
        InvocationId::for_target(service, handler, key, Some(idempotency_key), uuid)
    }

    /// The id of workflow `service`'s run for `key`: the same for every submission, so a
    /// repeated submission joins the existing run (a workflow's run handler runs once per
    /// key, until its result is purged after the retention).
    pub fn for_workflow_run(service: &str, key: &str) -> InvocationId {
        let uuid = InvocationId::derive_uuid(&[b"workflow-run", service.as_bytes(), key.as_bytes()]);
        InvocationId { partition_key: partition_key(service, key), uuid }
    }

    /// A uuid derived from `parts` (deterministic), for ids minted while applying a record.
    pub fn derive_uuid(parts: &[&[u8]]) -> [u8; 16] {
        let high = stable_hash_seeded(0x7265_7374_6174_6531, parts);
        let low = stable_hash_seeded(0x7265_7374_6174_6532, parts);
        let mut uuid = [0u8; 16];
        uuid[..8].copy_from_slice(&high.to_be_bytes());
        uuid[8..].copy_from_slice(&low.to_be_bytes());
        uuid
    }

    /// The partition key: [`partition_for`] maps it to the partition that owns the invocation.
    pub const fn partition_key(&self) -> u64 {
        self.partition_key
    }

    /// The proposer-chosen part.
    pub const fn uuid(&self) -> [u8; 16] {
        self.uuid
    }

    /// Binary form (also the order of ids in storage): partition key big-endian, then uuid.
    pub fn to_bytes(&self) -> [u8; INVOCATION_ID_LEN] {
        let mut out = [0u8; INVOCATION_ID_LEN];
        out[..8].copy_from_slice(&self.partition_key.to_be_bytes());
        out[8..].copy_from_slice(&self.uuid);
        out
    }

    /// Inverse of [`InvocationId::to_bytes`].
    pub fn from_bytes(bytes: [u8; INVOCATION_ID_LEN]) -> InvocationId {
        InvocationId {
            partition_key: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            uuid: bytes[8..].try_into().expect("16 bytes"),
        }
    }

    /// A deterministic seed for the SDK's random generator (`StartMessage.random_seed`).
    pub fn random_seed(&self) -> u64 {
        stable_hash(&[b"random-seed", &self.to_bytes()])
    }
}

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Long division of the 192-bit big-endian number by 62, least significant digit first.
        let mut number = self.to_bytes();
        let mut digits = [0u8; BASE62_DIGITS];
        for digit in digits.iter_mut().rev() {
            let mut remainder = 0u32;
            for byte in number.iter_mut() {
                let acc = remainder << 8 | *byte as u32;
                *byte = (acc / 62) as u8;
                remainder = acc % 62;
            }
            *digit = BASE62_ALPHABET[remainder as usize];
        }
        f.write_str(INVOCATION_ID_PREFIX)?;
        f.write_str(std::str::from_utf8(&digits).expect("base62 digits are ASCII"))
    }
}

impl fmt::Debug for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not an invocation id; says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not an invocation id: {reason} (expected 'inv_' followed by 33 base62 digits)")]
pub struct InvalidInvocationId {
    pub input: String,
    pub reason: String,
}

impl FromStr for InvocationId {
    type Err = InvalidInvocationId;

    fn from_str(input: &str) -> Result<InvocationId, InvalidInvocationId> {
        let invalid = |reason: String| InvalidInvocationId { input: input.to_owned(), reason };
        let digits = input
            .strip_prefix(INVOCATION_ID_PREFIX)
            .ok_or_else(|| invalid(format!("it does not start with '{INVOCATION_ID_PREFIX}'")))?;
        if digits.len() != BASE62_DIGITS {
            return Err(invalid(format!("it has {} digits", digits.len())));
        }
        let mut number = [0u8; INVOCATION_ID_LEN];
        for (position, c) in digits.bytes().enumerate() {
            let value = BASE62_ALPHABET
                .iter()
                .position(|a| *a == c)
                .ok_or_else(|| invalid(format!("{:?} at position {position} is not a base62 digit", c as char)))?;
            // number = number * 62 + value, big-endian, rejecting overflow past 192 bits.
            let mut carry = value as u32;
            for byte in number.iter_mut().rev() {
                let acc = *byte as u32 * 62 + carry;
                *byte = acc as u8;
                carry = acc >> 8;
            }
            if carry != 0 {
                return Err(invalid("the number exceeds 192 bits".into()));
            }
        }
        Ok(InvocationId::from_bytes(number))
    }
}

impl Serialize for InvocationId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InvocationId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<InvocationId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The partition key of `key_or_id` within `service`: [`stable_hash`] of both.
/// For a virtual object or workflow pass its key; for anything else see
/// [`InvocationId::for_target`].
pub fn partition_key(service: &str, key_or_id: &str) -> u64 {
    stable_hash(&[service.as_bytes(), key_or_id.as_bytes()])
}

/// The partition (index `0..num_partitions`) owning `partition_key`, when the key space
/// `0..=u64::MAX` is split into `num_partitions` contiguous ranges of nearly equal size:
/// partition `i` owns [`partition_key_range`]`(i, n)`. This is the split of
/// `PartitionTable::evenly_split(n)` in `restate-metadata` (partition `i` is
/// `PartitionId(i)`), so both agree on every key.
///
/// Panics if `num_partitions` is 0.
pub fn partition_for(partition_key: u64, num_partitions: u32) -> u32 {
    assert!(num_partitions > 0, "a cluster has at least one partition");
    let n = num_partitions as u128;
    // floor(key * n / 2^64) is the partition or the one before it (range starts are
    // rounded down); step forward when the key is at or past the next range's start.
    let candidate = ((partition_key as u128 * n) >> 64) as u32;
    if candidate + 1 < num_partitions && partition_key >= range_start(candidate + 1, n) {
        candidate + 1
    } else {
        candidate
    }
}

/// The inclusive range of partition keys partition `partition` owns among `num_partitions`.
///
/// Panics if `partition >= num_partitions`.
pub fn partition_key_range(partition: u32, num_partitions: u32) -> RangeInclusive<u64> {
    assert!(partition < num_partitions, "partition {partition} out of range for {num_partitions} partitions");
    let n = num_partitions as u128;
    let end = if partition + 1 == num_partitions { u64::MAX } else { range_start(partition + 1, n) - 1 };
    range_start(partition, n)..=end
}

fn range_start(partition: u32, n: u128) -> u64 {
    ((1u128 << 64) * partition as u128 / n) as u64
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A stable 64-bit hash of a sequence of byte strings: FNV-1a over each part preceded by
/// its length (so `("ab", "c")` and `("a", "bc")` differ), then the murmur3 64-bit
/// finalizer so the high bits, which choose the partition, are well mixed.
///
/// Fixed forever: it decides where stored data lives.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    stable_hash_seeded(FNV_OFFSET, parts)
}

fn stable_hash_seeded(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut hash = seed;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= *byte as u64;
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    };
    for part in parts {
        feed(&(part.len() as u64).to_le_bytes());
        feed(part);
    }
    fmix64(hash)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_form_round_trips_at_the_extremes() {
        for id in [
            InvocationId::new(0, [0; 16]),
            InvocationId::new(u64::MAX, [0xff; 16]),
            InvocationId::new(0x0123_4567_89ab_cdef, *b"0123456789abcdef"),
        ] {
            let text = id.to_string();
            assert!(text.starts_with("inv_") && text.len() == 4 + 33, "{text}");
            assert_eq!(text.parse::<InvocationId>().unwrap(), id);
            assert_eq!(InvocationId::from_bytes(id.to_bytes()), id);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<InvocationId>(&json).unwrap(), id);
        }
        assert_eq!(InvocationId::new(0, [0; 16]).to_string(), format!("inv_{}", "0".repeat(33)));
    }

    #[test]
    fn malformed_ids_are_rejected_with_the_reason() {
        let err = "abc".parse::<InvocationId>().unwrap_err();
        assert!(err.to_string().contains("does not start with 'inv_'"), "{err}");
        let err = "inv_123".parse::<InvocationId>().unwrap_err();
        assert!(err.to_string().contains("it has 3 digits"), "{err}");
        let err = format!("inv_{}-", "0".repeat(32)).parse::<InvocationId>().unwrap_err();
        assert!(err.to_string().contains("'-' at position 32"), "{err}");
        let err = format!("inv_{}", "z".repeat(33)).parse::<InvocationId>().unwrap_err();
        assert!(err.to_string().contains("exceeds 192 bits"), "{err}");
    }

    const PINNED_HASH: u64 = 0x6992_5ca3_e9c5_5788;
    const PINNED_ID: &str = "inv_00lBcKUCcfcSNVPHjjOsXEokrrSuoS6y6";

    #[test]
    fn hashes_are_pinned() {
        // Changing these moves stored keys to other partitions: never change them.
        assert_eq!(partition_key("Counter", "my-key"), partition_key("Counter", "my-key"));
        assert_ne!(partition_key("Counter", "a"), partition_key("Counte", "ra"));
        assert_eq!(stable_hash(&[]), fmix64(FNV_OFFSET));
        assert_eq!(stable_hash(&[b"Counter", b"my-key"]), PINNED_HASH, "pinned value");
        assert_eq!(InvocationId::new(0x0123_4567_89ab_cdef, *b"0123456789abcdef").to_string(), PINNED_ID);
    }

    #[test]
    fn ids_route_by_key_then_idempotency_key_then_uuid() {
        let uuid = [7u8; 16];
        let keyed = InvocationId::for_target("Counter", "add", Some("k"), Some("idem"), uuid);
        assert_eq!(keyed.partition_key(), partition_key("Counter", "k"));
        let a = InvocationId::for_target("Greeter", "greet", None, Some("idem"), [1; 16]);
        let b = InvocationId::for_target("Greeter", "greet", None, Some("idem"), [2; 16]);
        assert_eq!(a.partition_key(), b.partition_key(), "same idempotency key, same partition");
        let c = InvocationId::for_target("Greeter", "greet", None, None, [1; 16]);
        let d = InvocationId::for_target("Greeter", "greet", None, None, [2; 16]);
        assert_ne!(c.partition_key(), d.partition_key());
        assert_eq!(InvocationId::derive_uuid(&[b"x"]), InvocationId::derive_uuid(&[b"x"]));
        assert_ne!(InvocationId::derive_uuid(&[b"x"]), InvocationId::derive_uuid(&[b"y"]));
    }

    #[test]
    fn partition_ranges_tile_the_key_space_and_agree_with_partition_for() {
        for n in [1u32, 2, 3, 7, 24, 1000, 65535] {
            let mut next = 0u64;
            for p in 0..n {
                let range = partition_key_range(p, n);
                assert_eq!(*range.start(), next, "partition {p} of {n} starts where {} ended", p.wrapping_sub(1));
                for key in [*range.start(), *range.end(), range.start() / 2 + range.end() / 2] {
                    assert_eq!(partition_for(key, n), p, "key {key:#x} with {n} partitions");
                }
                next = range.end().wrapping_add(1);
                // The evenly_split formula of the partition table, inlined.
                let start = ((1u128 << 64) * p as u128 / n as u128) as u64;
                let end = ((1u128 << 64) * (p as u128 + 1) / n as u128 - 1) as u64;
                assert_eq!(range, start..=end);
                if n > 1000 && p > 3 {
                    break;
                }
            }
            if n <= 1000 {
                assert_eq!(next, 0, "the last range ends at u64::MAX");
            }
        }
        assert_eq!(partition_for(u64::MAX, 65535), 65534);
    }

    #[test]
    fn keys_spread_over_partitions() {
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[partition_for(partition_key("Counter", &format!("key-{i}")), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }
}

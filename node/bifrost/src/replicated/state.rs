//! The state a replicated loglet's raft group agrees on: its tail, trim point and seal,
//! and the deterministic commands that change it. Pure. The records themselves stay in
//! the raft log's entries (where to find them is the `records` module's business); this
//! state is small and fixed-size.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Records are numbered from 1 within the loglet (Bifrost maps them to virtual LSNs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogletState {
    /// Every record <= this is gone (0: nothing trimmed).
    pub trim_point: u64,
    /// LSN the next record gets.
    pub next_lsn: u64,
    pub sealed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Append(Vec<Bytes>),
    Seal,
    Trim(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Appended; the LSN of the last record.
    Appended(u64),
    /// The loglet is sealed; nothing was appended. Carries the tail.
    Sealed(u64),
    /// Seal done (or already): the tail (next LSN).
    SealedAt(u64),
    /// The trim point reached.
    Trimmed(u64),
    /// Refused with the reason; nothing changed.
    Refused(String),
}

const APPEND: u8 = 1;
const SEAL: u8 = 2;
const TRIM: u8 = 3;

impl Command {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Command::Append(records) => {
                out.put_u8(APPEND);
                out.put_u32(records.len() as u32);
                for r in records {
                    out.put_u32(r.len() as u32);
                    out.put_slice(r);
                }
            }
            Command::Seal => out.put_u8(SEAL),
            Command::Trim(lsn) => {
                out.put_u8(TRIM);
                out.put_u64(*lsn);
            }
        }
        out.freeze()
    }

    pub fn decode(mut bytes: &[u8]) -> Result<Command, String> {
        let truncated = || "truncated loglet command".to_owned();
        if bytes.is_empty() {
            return Err(truncated());
        }
        match bytes.get_u8() {
            APPEND => {
                if bytes.remaining() < 4 {
                    return Err(truncated());
                }
                let n = bytes.get_u32() as usize;
                let mut records = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    if bytes.remaining() < 4 {
                        return Err(truncated());
                    }
                    let len = bytes.get_u32() as usize;
                    if bytes.remaining() < len {
                        return Err(truncated());
                    }
                    records.push(Bytes::copy_from_slice(&bytes[..len]));
                    bytes.advance(len);
                }
                Ok(Command::Append(records))
            }
            SEAL => Ok(Command::Seal),
            TRIM if bytes.remaining() >= 8 => Ok(Command::Trim(bytes.get_u64())),
            other => Err(format!("unknown loglet command tag {other}")),
        }
    }
}

impl Outcome {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Outcome::Appended(v) => {
                out.put_u8(1);
                out.put_u64(*v);
            }
            Outcome::Sealed(v) => {
                out.put_u8(2);
                out.put_u64(*v);
            }
            Outcome::SealedAt(v) => {
                out.put_u8(3);
                out.put_u64(*v);
            }
            Outcome::Trimmed(v) => {
                out.put_u8(4);
                out.put_u64(*v);
            }
            Outcome::Refused(reason) => {
                out.put_u8(5);
                out.put_slice(reason.as_bytes());
            }
        }
        out.freeze()
    }

    pub fn decode(mut bytes: &[u8]) -> Result<Outcome, String> {
        if bytes.is_empty() {
            return Err("empty loglet outcome".into());
        }
        let tag = bytes.get_u8();
        if tag == 5 {
            return Ok(Outcome::Refused(String::from_utf8_lossy(bytes).into_owned()));
        }
        if bytes.remaining() < 8 {
            return Err("truncated loglet outcome".into());
        }
        let v = bytes.get_u64();
        Ok(match tag {
            1 => Outcome::Appended(v),
            2 => Outcome::Sealed(v),
            3 => Outcome::SealedAt(v),
            4 => Outcome::Trimmed(v),
            other => return Err(format!("unknown loglet outcome tag {other}")),
        })
    }
}

/// First byte of a snapshot in the current format (the state only). Snapshots written
/// before records moved to disk start with the next LSN (8 bytes, big-endian; its first
/// byte is 0 for any real loglet) and carry every untrimmed record.
const SNAPSHOT_FORMAT: u8 = 0xD2;

impl LogletState {
    pub fn new() -> LogletState {
        LogletState { next_lsn: 1, ..Default::default() }
    }

    pub fn apply(&mut self, command: &Command) -> Outcome {
        match command {
            Command::Append(_) if self.sealed => Outcome::Sealed(self.next_lsn),
            Command::Append(records) if records.is_empty() => {
                Outcome::Refused("an append needs at least one record".into())
            }
            Command::Append(records) => {
                self.next_lsn += records.len() as u64;
                Outcome::Appended(self.next_lsn - 1)
            }
            Command::Seal => {
                self.sealed = true;
                Outcome::SealedAt(self.next_lsn)
            }
            Command::Trim(lsn) if *lsn >= self.next_lsn => {
                Outcome::Refused(format!("cannot trim to LSN {lsn}: the last record is LSN {}", self.next_lsn - 1))
            }
            Command::Trim(lsn) if *lsn <= self.trim_point => Outcome::Trimmed(self.trim_point),
            Command::Trim(lsn) => {
                self.trim_point = *lsn;
                Outcome::Trimmed(*lsn)
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(18);
        out.put_u8(SNAPSHOT_FORMAT);
        out.put_u64(self.next_lsn);
        out.put_u64(self.trim_point);
        out.put_u8(u8::from(self.sealed));
        out.to_vec()
    }

    /// A snapshot: the state, and the records it carries (only snapshots written before
    /// records moved to disk carry any).
    pub fn decode(mut bytes: &[u8]) -> Result<(LogletState, Vec<(u64, Bytes)>), String> {
        if bytes.is_empty() {
            return Ok((LogletState::new(), Vec::new()));
        }
        let corrupt = || format!("corrupt loglet snapshot ({} bytes)", bytes.len());
        if bytes[0] == SNAPSHOT_FORMAT {
            if bytes.len() != 18 {
                return Err(corrupt());
            }
            bytes.advance(1);
            let next_lsn = bytes.get_u64();
            let trim_point = bytes.get_u64();
            let sealed = bytes.get_u8() == 1;
            return Ok((LogletState { trim_point, next_lsn, sealed }, Vec::new()));
        }
        if bytes.remaining() < 21 {
            return Err(corrupt());
        }
        let next_lsn = bytes.get_u64();
        let trim_point = bytes.get_u64();
        let sealed = bytes.get_u8() == 1;
        let n = bytes.get_u32();
        let mut records = Vec::with_capacity((n as usize).min(1 << 16));
        for _ in 0..n {
            if bytes.remaining() < 12 {
                return Err(corrupt());
            }
            let lsn = bytes.get_u64();
            let len = bytes.get_u32() as usize;
            if bytes.remaining() < len {
                return Err(corrupt());
            }
            records.push((lsn, Bytes::copy_from_slice(&bytes[..len])));
            bytes.advance(len);
        }
        Ok((LogletState { trim_point, next_lsn, sealed }, records))
    }

    /// The snapshot format written before records moved to disk (tests of the upgrade).
    #[cfg(test)]
    pub fn encode_with_records(&self, records: &[(u64, Bytes)]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_u64(self.next_lsn);
        out.put_u64(self.trim_point);
        out.put_u8(u8::from(self.sealed));
        out.put_u32(records.len() as u32);
        for (lsn, record) in records {
            out.put_u64(*lsn);
            out.put_u32(record.len() as u32);
            out.put_slice(record);
        }
        out.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_apply_deterministically_and_round_trip() {
        let mut state = LogletState::new();
        let append = Command::Append(vec![Bytes::from("a"), Bytes::from("bb")]);
        assert_eq!(Command::decode(&append.encode()).unwrap(), append);
        assert_eq!(state.apply(&append), Outcome::Appended(2));
        assert_eq!(
            state.apply(&Command::Trim(5)),
            Outcome::Refused("cannot trim to LSN 5: the last record is LSN 2".into())
        );
        assert_eq!(state.apply(&Command::Trim(1)), Outcome::Trimmed(1));
        assert_eq!(state.apply(&Command::Trim(0)), Outcome::Trimmed(1));
        assert_eq!(state.apply(&Command::Seal), Outcome::SealedAt(3));
        assert_eq!(state.apply(&Command::Append(vec![Bytes::from("c")])), Outcome::Sealed(3));
        let (back, records) = LogletState::decode(&state.encode()).unwrap();
        assert_eq!((back, records.len()), (state, 0));
        for outcome in [Outcome::Appended(7), Outcome::Refused("x".into()), Outcome::Trimmed(3)] {
            assert_eq!(Outcome::decode(&outcome.encode()).unwrap(), outcome);
        }
        assert!(Command::decode(&[1, 0, 0, 0, 9]).is_err());
    }

    #[test]
    fn snapshots_of_the_earlier_format_still_decode_with_their_records() {
        let state = LogletState { trim_point: 3, next_lsn: 6, sealed: false };
        let records = vec![(4, Bytes::from("four")), (5, Bytes::from("five"))];
        let (back, carried) = LogletState::decode(&state.encode_with_records(&records)).unwrap();
        assert_eq!((back, carried), (state, records));
        assert!(LogletState::decode(&[0xD2, 1]).is_err());
    }
}

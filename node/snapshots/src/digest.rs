//! Size and SHA-256 of a byte stream: what an upload is verified against and what a download must
//! match.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentDigest {
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes with sha256 {}", self.size, self.sha256)
    }
}

/// Accumulates a digest over chunks as they stream by.
#[derive(Default)]
pub(crate) struct DigestAccumulator {
    hasher: Sha256,
    size: u64,
}

impl DigestAccumulator {
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
    }

    pub(crate) fn finish(self) -> ContentDigest {
        ContentDigest { size: self.size, sha256: hex::encode(self.hasher.finalize()) }
    }
}

pub(crate) fn digest_of(bytes: &[u8]) -> ContentDigest {
    let mut accumulator = DigestAccumulator::default();
    accumulator.update(bytes);
    accumulator.finish()
}

/// Blocking: reads the whole file.
pub(crate) fn digest_of_file(path: &Path) -> io::Result<ContentDigest> {
    digest_of_reader(File::open(path)?)
}

/// Blocking: reads `reader` to its end.
pub(crate) fn digest_of_reader(mut reader: impl Read) -> io::Result<ContentDigest> {
    let mut accumulator = DigestAccumulator::default();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(accumulator.finish()),
            Ok(n) => accumulator.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sha256_values() {
        assert_eq!(
            digest_of(b""),
            ContentDigest {
                size: 0,
                sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()
            }
        );
        assert_eq!(
            digest_of(b"abc"),
            ContentDigest {
                size: 3,
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
            }
        );
    }

    #[test]
    fn chunked_digest_equals_whole_digest() {
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let mut accumulator = DigestAccumulator::default();
        for chunk in data.chunks(7_919) {
            accumulator.update(chunk);
        }
        assert_eq!(accumulator.finish(), digest_of(&data));
        assert_eq!(digest_of_reader(&data[..]).unwrap(), digest_of(&data));
    }
}

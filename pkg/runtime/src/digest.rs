//! sha256 content digests, and readers/writers that compute them on the fly.

use ring::digest::{Context, SHA256};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A `sha256:<64 hex>` digest, the only algorithm kite accepts.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// The text is not a sha256 digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a sha256 digest (sha256: and 64 lower-case hex digits)")]
pub struct InvalidDigest(pub String);

impl Digest {
    /// Parses `sha256:<hex>`.
    pub fn parse(text: &str) -> Result<Self, InvalidDigest> {
        let hex = text
            .strip_prefix("sha256:")
            .ok_or_else(|| InvalidDigest(text.to_string()))?;
        Self::from_hex(hex).map_err(|_| InvalidDigest(text.to_string()))
    }

    /// Parses bare hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, InvalidDigest> {
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self {
                hex: hex.to_string(),
            })
        } else {
            Err(InvalidDigest(hex.to_string()))
        }
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        let mut hasher = Hasher::new();
        hasher.update(data);
        hasher.finish()
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as `ctr` and `docker` show them.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(text: &str) -> Result<Self, InvalidDigest> {
        Self::parse(text)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An incremental sha256.
pub struct Hasher {
    context: Context,
    len: u64,
}

impl Hasher {
    /// A hasher with nothing fed yet.
    pub fn new() -> Self {
        Self {
            context: Context::new(&SHA256),
            len: 0,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.context.update(data);
        self.len += data.len() as u64;
    }

    /// How many bytes were fed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let bytes = self.context.finish();
        let mut hex = String::with_capacity(64);
        for b in bytes.as_ref() {
            hex.push_str(&format!("{b:02x}"));
        }
        Digest { hex }
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Reads the rest of the stream (so the digest covers all of it) and returns it.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let len = self.hasher.len();
        Ok((self.hasher.finish(), len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The digest and length of what was written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        let len = self.hasher.len();
        (self.hasher.finish(), len, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_sha256sum() {
        assert_eq!(
            Digest::of(b"foo").to_string(),
            "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
        let (d, n) = HashingReader::new(&b"foo"[..]).finish().unwrap();
        assert_eq!((d, n), (Digest::of(b"foo"), 3));
    }

    #[test]
    fn only_sha256_hex_parses() {
        assert!(Digest::parse("sha256:ABC").is_err());
        assert!(Digest::parse("sha512:00").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "0".repeat(64))).is_ok());
    }
}

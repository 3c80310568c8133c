//! Small helpers: randomness, hex, SHA-256, certificate validity arithmetic.

use rcgen::SerialNumber;
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};

/// Certificates are back-dated by this much to tolerate clock skew between nodes.
pub(crate) const BACKDATE: Duration = Duration::minutes(5);

/// `N` bytes from the system's secure random number generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::Random)?;
    Ok(buf)
}

/// A random positive 128-bit serial number.
pub(crate) fn random_serial() -> Result<SerialNumber> {
    let mut bytes = random_bytes::<16>()?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // keep all 16 bytes significant
    Ok(SerialNumber::from_slice(&bytes))
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Lower-case hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Whole days from `now` until `not_after`, rounded down: `-1` as soon as it has expired.
pub(crate) fn days_until(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (not_after - now).whole_seconds().div_euclid(86_400)
}

/// Current time, truncated to whole seconds (X.509 times have no fractions).
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_encodes_lower_case() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn sha256_hex_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn days_until_rounds_down_and_goes_negative_on_expiry() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(days_until(now + Duration::hours(36), now), 1);
        assert_eq!(days_until(now + Duration::hours(3), now), 0);
        assert_eq!(days_until(now - Duration::hours(3), now), -1);
    }
}

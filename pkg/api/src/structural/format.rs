//! The string `format`s a CRD schema may declare and how values are checked.
//!
//! kube-apiserver keeps only a fixed list of formats on string schemas (any
//! other is ignored) and checks values with go-openapi's strfmt rules; a
//! value that does not parse fails with
//! `<path> in body must be of type <format>: "<value>"`.

use base64::Engine;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

fn re(pattern: &str) -> regex::Regex {
    // The patterns are the constants below, exercised by the unit tests.
    regex::Regex::new(pattern).expect("a valid format pattern")
}

static DATE: LazyLock<regex::Regex> = LazyLock::new(|| re(r"^\d{4}-\d{2}-\d{2}$"));
static DATE_TIME: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$")
});
static EMAIL: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(
        r"^[^@\s]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$",
    )
});
static HOSTNAME: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(
        r"^[\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?(\.[\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?)*$",
    )
});
static UUID: LazyLock<regex::Regex> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID4: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static UUID5: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static MAC: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(
        r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{2}[:-]){7}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{2}[:-]){19}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{4}\.){2}([0-9A-Fa-f]{4})$",
    )
});
static DURATION: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(
        r"^(([+-]?\d+(\.\d*)?|[+-]?\.\d+)\s*(ns|us|µs|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|weeks?|sec|min|hr))+$",
    )
});
static HEX_COLOR: LazyLock<regex::Regex> =
    LazyLock::new(|| re(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGB_COLOR: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(
        r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$",
    )
});
static SSN: LazyLock<regex::Regex> = LazyLock::new(|| re(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"));
static OBJECT_ID: LazyLock<regex::Regex> = LazyLock::new(|| re(r"^[0-9a-fA-F]{24}$"));
static URI: LazyLock<regex::Regex> = LazyLock::new(|| re(r"^([A-Za-z][A-Za-z0-9+.-]*:|/)[^\s]*$"));

/// Whether a string schema with `format` keeps it (the formats kube-apiserver supports).
pub(crate) fn supported(format: &str) -> bool {
    matches!(
        format,
        "bsonobjectid"
            | "uri"
            | "email"
            | "hostname"
            | "ipv4"
            | "ipv6"
            | "cidr"
            | "mac"
            | "uuid"
            | "uuid3"
            | "uuid4"
            | "uuid5"
            | "isbn"
            | "isbn10"
            | "isbn13"
            | "creditcard"
            | "ssn"
            | "hexcolor"
            | "rgbcolor"
            | "byte"
            | "password"
            | "date"
            | "duration"
            | "datetime"
            | "date-time"
    )
}

/// Whether `value` is valid for the (supported) `format`.
pub(crate) fn valid(format: &str, value: &str) -> bool {
    match format {
        "date" => DATE.is_match(value),
        "datetime" | "date-time" => DATE_TIME.is_match(value),
        "email" => EMAIL.is_match(value),
        "hostname" => value.len() <= 255 && HOSTNAME.is_match(value),
        "ipv4" => value.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<Ipv6Addr>().is_ok(),
        "cidr" => cidr(value),
        "mac" => MAC.is_match(value),
        "uuid" => UUID.is_match(value),
        "uuid3" => UUID3.is_match(value),
        "uuid4" => UUID4.is_match(value),
        "uuid5" => UUID5.is_match(value),
        "byte" => base64::engine::general_purpose::STANDARD
            .decode(value)
            .is_ok(),
        "duration" => DURATION.is_match(value),
        "hexcolor" => HEX_COLOR.is_match(value),
        "rgbcolor" => RGB_COLOR.is_match(value),
        "ssn" => SSN.is_match(value),
        "bsonobjectid" => OBJECT_ID.is_match(value),
        "uri" => URI.is_match(value),
        // password, isbn and credit card numbers are not checked further here.
        _ => true,
    }
}

fn cidr(value: &str) -> bool {
    let Some((ip, bits)) = value.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => bits <= 32,
        Ok(IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn formats_accept_and_reject() {
        for (format, good, bad) in [
            ("date", "2024-01-31", "31/01/2024"),
            ("date-time", "2024-01-31T10:00:00Z", "yesterday"),
            ("email", "a@example.com", "nobody"),
            ("hostname", "example.com", "-bad-"),
            ("ipv4", "10.0.0.1", "10.0.0.256"),
            ("ipv6", "::1", "1.2.3.4"),
            ("cidr", "10.0.0.0/8", "10.0.0.0/33"),
            ("mac", "00:1a:2b:3c:4d:5e", "00:1a"),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123"),
            ("byte", "aGVsbG8=", "not base64!"),
            ("duration", "1h30m", "soon"),
            ("hexcolor", "#ff0000", "red"),
            ("uri", "https://example.com/x", "no scheme"),
        ] {
            assert!(valid(format, good), "{format} should accept {good}");
            assert!(!valid(format, bad), "{format} should reject {bad}");
        }
    }
}

//! `resource.Quantity`: parsing, comparison and the canonical form Kubernetes prints.
//!
//! A quantity is a decimal number with an optional suffix: a binary SI one
//! (`Ki`, `Mi`, ... `Ei`), a decimal SI one (`n`, `u`, `m`, `k`, `M`, ... `E`)
//! or a decimal exponent (`e3`, `E-2`). Like kube-apiserver, values are kept
//! at nano precision (finer values are rounded away from zero), capped at
//! 2^63-1, and printed canonically: `1000m` becomes `1`, `1024Mi` becomes
//! `1Gi`, `0.5` becomes `500m`.

use serde_json::Value;
use std::cmp::Ordering;
use std::fmt;

/// The message kube-apiserver gives for a string that is not a quantity.
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

const NANOS_PER_UNIT: i128 = 1_000_000_000;
/// The largest magnitude a quantity can hold, in nano units (2^63-1 units).
const MAX_NANOS: i128 = (i64::MAX as i128) * NANOS_PER_UNIT;

/// How a quantity is printed, taken from the suffix it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantityFormat {
    /// `Ki`, `Mi`, ... suffixes.
    BinarySi,
    /// `m`, `k`, `M`, ... suffixes or none.
    DecimalSi,
    /// `e3`-style exponents.
    DecimalExponent,
}

/// A parsed `resource.Quantity`.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    format: QuantityFormat,
}

/// Why a string is not a quantity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuantityError {
    /// The number or the suffix is malformed.
    Format,
    /// The suffix is not one Kubernetes knows.
    Suffix,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format => f.write_str(QUANTITY_FORMAT_ERROR),
            Self::Suffix => f.write_str("unable to parse quantity's suffix"),
        }
    }
}

impl std::error::Error for QuantityError {}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl Quantity {
    /// A quantity of `nanos` billionths in `format`, capped like Kubernetes caps.
    pub fn from_nanos(nanos: i128, format: QuantityFormat) -> Self {
        Self {
            nanos: nanos.clamp(-MAX_NANOS, MAX_NANOS),
            format,
        }
    }

    /// The value in billionths of a unit (`100m` is 100,000,000).
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in thousandths, rounded up (`0.5` is 500), as the scheduler counts CPU.
    pub fn milli_value(&self) -> i64 {
        let v = div_round_away(self.nanos, 1_000_000);
        i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
    }

    /// The value in units, rounded up (`1.5` is 2), as the scheduler counts bytes.
    pub fn value(&self) -> i64 {
        let v = div_round_away(self.nanos, NANOS_PER_UNIT);
        i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
    }

    /// The format the quantity prints in.
    pub fn format(&self) -> QuantityFormat {
        self.format
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Parses a JSON string or number the way the apiserver decodes a quantity.
    pub fn from_json(value: &Value) -> Result<Self, QuantityError> {
        match value {
            Value::String(s) => Self::parse(s),
            Value::Number(n) => Self::parse(&n.to_string()),
            _ => Err(QuantityError::Format),
        }
    }

    /// Parses `s` (`100m`, `1.5Gi`, `2e3`, `+1`, `-0.1`).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::Format);
        }
        let parts = split(s)?;
        let (base, exponent, format) = interpret_suffix(parts.suffix)?;
        // Digits of the mantissa and the power of ten that scales them into nanos.
        let mut digits: Vec<u8> = parts
            .int
            .bytes()
            .chain(parts.frac.bytes())
            .map(|b| b - b'0')
            .collect();
        let mut pow10: i64 = 9 - parts.frac.len() as i64;
        match base {
            Base::Ten => pow10 += i64::from(exponent),
            Base::Two => {
                for _ in 0..exponent {
                    double(&mut digits);
                }
            }
        }
        let magnitude = to_nanos(&digits, pow10);
        let nanos = if parts.negative {
            -magnitude
        } else {
            magnitude
        };
        Ok(Self { nanos, format })
    }

    /// The canonical text Kubernetes stores and prints for this quantity.
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let mut format = self.format;
        if format == QuantityFormat::BinarySi
            && (self.nanos.abs() < 1024 * NANOS_PER_UNIT || self.nanos % NANOS_PER_UNIT != 0)
        {
            format = QuantityFormat::DecimalSi;
        }
        match format {
            QuantityFormat::BinarySi => {
                let mut units = self.nanos / NANOS_PER_UNIT;
                let mut exp = 0;
                while units % 1024 == 0 && exp < 6 {
                    units /= 1024;
                    exp += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
                format!("{units}{suffix}")
            }
            QuantityFormat::DecimalSi | QuantityFormat::DecimalExponent => {
                let mut mantissa = self.nanos;
                let mut exp: i32 = -9;
                while mantissa % 10 == 0 {
                    mantissa /= 10;
                    exp += 1;
                }
                match exp.rem_euclid(3) {
                    1 => {
                        mantissa *= 10;
                        exp -= 1;
                    }
                    2 => {
                        mantissa *= 100;
                        exp -= 2;
                    }
                    _ => {}
                }
                let suffix = if format == QuantityFormat::DecimalExponent {
                    if exp == 0 {
                        String::new()
                    } else {
                        format!("e{exp}")
                    }
                } else {
                    match exp {
                        -9 => "n".into(),
                        -6 => "u".into(),
                        -3 => "m".into(),
                        0 => String::new(),
                        3 => "k".into(),
                        6 => "M".into(),
                        9 => "G".into(),
                        12 => "T".into(),
                        15 => "P".into(),
                        18 => "E".into(),
                        other => format!("e{other}"),
                    }
                };
                format!("{mantissa}{suffix}")
            }
        }
    }
}

/// Rewrites a JSON quantity in canonical form, leaving unparseable values alone.
pub fn canonicalize(value: &mut Value) {
    if let Ok(q) = Quantity::from_json(value) {
        *value = Value::String(q.canonical());
    }
}

fn div_round_away(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n < 0 {
        q - 1
    } else {
        q + 1
    }
}

struct Parts<'a> {
    negative: bool,
    int: &'a str,
    frac: &'a str,
    suffix: &'a str,
}

/// Splits `s` into sign, integer digits, fraction digits and suffix.
fn split(s: &str) -> Result<Parts<'_>, QuantityError> {
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut negative = false;
    if let Some(&c) = bytes.first()
        && (c == b'-' || c == b'+')
    {
        negative = c == b'-';
        pos = 1;
    }
    let digits_end = |from: usize| {
        let mut i = from;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits_end(pos);
    let int = &s[pos..int_end];
    pos = int_end;
    let mut frac = "";
    if pos < bytes.len() && bytes[pos] == b'.' {
        let end = digits_end(pos + 1);
        frac = &s[pos + 1..end];
        pos = end;
    }
    let suffix_start = pos;
    while pos < bytes.len() && b"eEinumkKMGTP".contains(&bytes[pos]) {
        pos += 1;
    }
    if pos < bytes.len() && (bytes[pos] == b'-' || bytes[pos] == b'+') {
        pos += 1;
    }
    if digits_end(pos) != bytes.len() {
        return Err(QuantityError::Format);
    }
    Ok(Parts {
        negative,
        int,
        frac,
        suffix: &s[suffix_start..],
    })
}

enum Base {
    Two,
    Ten,
}

fn interpret_suffix(suffix: &str) -> Result<(Base, i32, QuantityFormat), QuantityError> {
    let decimal = |e| Ok((Base::Ten, e, QuantityFormat::DecimalSi));
    let binary = |e| Ok((Base::Two, e, QuantityFormat::BinarySi));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let rest = suffix
                .strip_prefix(['e', 'E'])
                .ok_or(QuantityError::Suffix)?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Suffix);
            }
            // Exponents beyond a few hundred only saturate or vanish.
            let e: i32 = rest
                .parse::<i64>()
                .map_or(if rest.starts_with('-') { -1000 } else { 1000 }, |e| {
                    e.clamp(-1000, 1000) as i32
                });
            Ok((Base::Ten, e, QuantityFormat::DecimalExponent))
        }
    }
}

/// Multiplies a big-endian decimal digit vector by two.
fn double(digits: &mut Vec<u8>) {
    let mut carry = 0;
    for d in digits.iter_mut().rev() {
        let v = *d * 2 + carry;
        *d = v % 10;
        carry = v / 10;
    }
    if carry > 0 {
        digits.insert(0, carry);
    }
}

/// `digits * 10^pow10`, rounded away from zero and capped at [`MAX_NANOS`].
fn to_nanos(digits: &[u8], pow10: i64) -> i128 {
    let first = digits.iter().position(|&d| d != 0);
    let Some(first) = first else { return 0 };
    let digits = &digits[first..];
    let (kept, dropped): (&[u8], &[u8]) = if pow10 >= 0 {
        (digits, &[])
    } else {
        let cut = digits.len().saturating_sub(pow10.unsigned_abs() as usize);
        digits.split_at(cut)
    };
    let total_len = kept.len() as i64 + pow10.max(0);
    if total_len > 30 {
        return MAX_NANOS;
    }
    let mut n: i128 = 0;
    for &d in kept {
        n = n * 10 + i128::from(d);
    }
    for _ in 0..pow10.max(0) {
        n *= 10;
    }
    if dropped.iter().any(|&d| d != 0) {
        n += 1;
    }
    n.min(MAX_NANOS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, canonical: &str) {
        let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(q.canonical(), canonical, "canonical form of {input}");
    }

    #[test]
    fn canonical_forms_match_kubernetes() {
        for (input, canonical) in [
            ("0", "0"),
            ("0Mi", "0"),
            ("1", "1"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("0.5", "500m"),
            ("0.1", "100m"),
            ("100m", "100m"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1Ki", "1Ki"),
            ("512", "512"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("1E6", "1e6"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("123Mi", "123Mi"),
            ("1M", "1M"),
            ("5G", "5G"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("-1", "-1"),
            ("+2", "2"),
            ("-100m", "-100m"),
            ("1.", "1"),
            (".5", "500m"),
            ("0.1Ki", "102400m"),
            ("10Gi", "10Gi"),
            ("100Ti", "100Ti"),
            ("1Ei", "1Ei"),
            ("20Ei", "9223372036854775807"),
        ] {
            check(input, canonical);
        }
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        for input in [
            "", "abc", "1.2.3", "1Qi", "1K", "1e", "1 Gi", "1Gi1", "1e3.5", "--1",
        ] {
            assert!(Quantity::parse(input).is_err(), "{input} should not parse");
        }
        assert_eq!(
            Quantity::parse("x").map_err(|e| e.to_string()),
            Err(QUANTITY_FORMAT_ERROR.to_string())
        );
    }

    #[test]
    fn quantities_compare_by_value() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert!(q("500m") < q("1"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert!(q("1G") < q("1Gi"));
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("1.5").value(), 2);
        assert_eq!(Quantity::from_json(&serde_json::json!(2)).unwrap(), q("2"));
        assert_eq!(
            Quantity::from_json(&serde_json::json!(0.25)).unwrap(),
            q("250m")
        );
    }

    #[test]
    fn canonicalize_rewrites_json_values() {
        let mut v = serde_json::json!("2048Ki");
        canonicalize(&mut v);
        assert_eq!(v, "2Mi");
        let mut n = serde_json::json!(1);
        canonicalize(&mut n);
        assert_eq!(n, "1");
    }

    proptest! {
        #[test]
        fn canonical_form_round_trips(nanos in -MAX_NANOS..MAX_NANOS, f in 0..3u8) {
            let format = [QuantityFormat::BinarySi, QuantityFormat::DecimalSi, QuantityFormat::DecimalExponent][f as usize];
            let q = Quantity::from_nanos(nanos, format);
            let text = q.canonical();
            let back = Quantity::parse(&text).unwrap();
            prop_assert_eq!(back, q);
            prop_assert_eq!(back.canonical(), text);
        }

        #[test]
        fn integers_parse_to_their_value(n in any::<i64>()) {
            prop_assert_eq!(Quantity::parse(&n.to_string()).unwrap().nanos(), i128::from(n) * NANOS_PER_UNIT);
        }

        #[test]
        fn parsing_never_panics(s in "[-+]?[0-9.]{0,25}[eEinumkKMGTP]{0,2}[-+]?[0-9]{0,4}") {
            let _ = Quantity::parse(&s);
        }
    }
}

//! JSON text of `meta.v1.Time`, `MicroTime` and `Duration`, as Go prints them.

use std::fmt::Write as _;

/// RFC 3339 in UTC, e.g. `2024-01-02T03:04:05Z`, with `micros` fractional
/// digits when asked (`MicroTime`: `2024-01-02T03:04:05.000000Z`).
/// `None` outside years 0–9999, which Go's JSON encoding refuses too.
pub(super) fn rfc3339(seconds: i64, nanos: i32, micros: bool) -> Option<String> {
    let nanos = i64::from(nanos);
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    let secs = i64::try_from(total.div_euclid(1_000_000_000)).ok()?;
    let frac = total.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    );
    if micros {
        let _ = write!(out, ".{:06}", frac / 1000);
    }
    out.push('Z');
    Some(out)
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Go's `time.Duration.String()`: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`.
pub(super) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if nanos < 0 {
        out.push('-');
    }
    let u = nanos.unsigned_abs();
    if u < 1_000_000_000 {
        let (div, unit) = match u {
            0..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        push_fraction(&mut out, u, div);
        out.push_str(unit);
        return out;
    }
    let secs = u / 1_000_000_000;
    let (hours, minutes) = (secs / 3600, secs / 60 % 60);
    if hours > 0 {
        let _ = write!(out, "{hours}h{minutes}m");
    } else if minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    push_fraction(&mut out, u % 60_000_000_000, 1_000_000_000);
    out.push('s');
    out
}

/// `value / div` with the remainder as trimmed decimal digits (`1.5`, `2`).
fn push_fraction(out: &mut String, value: u64, div: u64) {
    let _ = write!(out, "{}", value / div);
    let rem = value % div;
    if rem == 0 {
        return;
    }
    let width = div.ilog10() as usize;
    let digits = format!("{rem:0width$}");
    out.push('.');
    out.push_str(digits.trim_end_matches('0'));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_like_go() {
        assert_eq!(rfc3339(0, 0, false).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_704_164_645, 0, false).unwrap(),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            rfc3339(1_709_210_096, 7_000, true).unwrap(),
            "2024-02-29T12:34:56.000007Z"
        );
        assert_eq!(rfc3339(-1, 0, false).unwrap(), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_800, 0, false), None);
    }

    #[test]
    fn durations_print_like_go() {
        for (nanos, text) in [
            (0, "0s"),
            (3_600_000_000_000, "1h0m0s"),
            (90_000_000_000, "1m30s"),
            (1_500_000_000, "1.5s"),
            (500_000_000, "500ms"),
            (1_500, "1.5µs"),
            (7, "7ns"),
            (-61_000_000_000, "-1m1s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
        ] {
            assert_eq!(go_duration(nanos), text, "{nanos}");
        }
    }
}

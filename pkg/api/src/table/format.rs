//! Cell formatting shared by the printers: ages, timestamps, placeholders,
//! label maps, container lists and JSON field access.
//!
//! `human_duration` follows apimachinery's `duration.HumanDuration`, the
//! function behind every AGE column.

use crate::selector::LabelSelector;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The placeholder for an absent value.
pub(crate) const NONE: &str = "<none>";
/// The placeholder for an absent timestamp or unknown state.
pub(crate) const UNKNOWN: &str = "<unknown>";

/// Elapsed time as kubectl prints it: `5s`, `2m30s`, `10m`, `3h5m`, `2d3h`, `45d`, `3y120d`.
pub fn human_duration(elapsed_seconds: i64) -> String {
    let seconds = elapsed_seconds;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp (`2024-05-01T10:00:00Z`,
/// fractions and offsets allowed), or `None` when malformed.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> { s.get(from..to)?.parse::<i64>().ok() };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", &after_dot[..digits]).parse().ok()?;
        rest = &after_dot[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 3600
                + rest.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some((days * 86400 + hour * 3600 + minute * 60 + second - offset) as f64 + fraction)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 UTC timestamp (`2024-05-01T10:00:00Z`) from Unix seconds.
pub(crate) fn format_rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The moment printers measure ages against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    now: f64,
}

impl Clock {
    pub(crate) fn new(now: SystemTime) -> Self {
        let now = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        Self { now }
    }

    /// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
    pub(crate) fn since(&self, timestamp: &Value) -> String {
        match timestamp.as_str().filter(|s| !s.is_empty()) {
            None => UNKNOWN.into(),
            Some(s) => match parse_timestamp(s) {
                Some(t) => human_duration(go_seconds(self.now - t)),
                None => UNKNOWN.into(),
            },
        }
    }

    /// The age of `metadata.creationTimestamp`.
    pub(crate) fn age(&self, obj: &Value) -> String {
        self.since(&obj["metadata"]["creationTimestamp"])
    }

    /// The time between two timestamps, as `HumanDuration(end.Sub(start))`.
    pub(crate) fn between(start: &str, end: &str) -> Option<String> {
        Some(human_duration(go_seconds(
            parse_timestamp(end)? - parse_timestamp(start)?,
        )))
    }
}

/// Go's `int(d.Seconds())`: truncation toward zero.
fn go_seconds(seconds: f64) -> i64 {
    seconds.trunc() as i64
}

/// A duration of whole seconds as `HumanDuration` prints it.
pub(crate) fn human_seconds(d: Duration) -> String {
    human_duration(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `creationTimestamp` as the `Created At` (`date`) columns show it.
pub(crate) fn created_at(obj: &Value) -> Value {
    let ts = obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_timestamp);
    // The zero time, as Go formats it, when unset.
    Value::String(ts.map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |t| format_rfc3339(t.floor() as i64),
    ))
}

/// The string at `value`, or `""`.
pub(crate) fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// The string at `value`, or `fallback` when absent or empty.
pub(crate) fn text_or(value: &Value, fallback: &str) -> String {
    value
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(fallback)
        .to_string()
}

/// The integer at `value`, or 0.
pub(crate) fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// The array at `value`, or an empty slice.
pub(crate) fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// The number of entries of the map at `value`.
pub(crate) fn map_len(value: &Value) -> i64 {
    value
        .as_object()
        .map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX))
}

/// `labels.FormatLabels`: `k=v,k2=v2` sorted by key, `<none>` when empty.
pub(crate) fn format_labels(value: &Value) -> String {
    let Some(map) = value.as_object().filter(|m| !m.is_empty()) else {
        return NONE.into();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// `LabelSelectorAsSelector(selector).String()`; empty for a nil selector.
pub(crate) fn selector_string(selector: &Value) -> String {
    LabelSelector::from_label_selector(selector)
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "<error>".into())
}

/// `metav1.FormatLabelSelector`: like [`selector_string`] but `<none>` when empty.
pub(crate) fn format_label_selector(selector: &Value) -> String {
    match LabelSelector::from_label_selector(selector) {
        Ok(s) if s.to_string().is_empty() => NONE.into(),
        Ok(s) => s.to_string(),
        Err(_) => "<error>".into(),
    }
}

/// The CONTAINERS and IMAGES cells of a pod template: names and images joined by commas.
pub(crate) fn container_cells(pod_spec: &Value) -> (String, String) {
    let containers = list(&pod_spec["containers"]);
    let names: Vec<&str> = containers
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c["image"].as_str().unwrap_or_default())
        .collect();
    (names.join(","), images.join(","))
}

/// `list` joined by commas, `a,b,c + N more...` past `max` entries.
pub(crate) fn with_more(list: &[String], total: usize, max: usize) -> String {
    let shown = list.iter().take(max).cloned().collect::<Vec<_>>().join(",");
    if total > max {
        format!("{shown} + {} more...", total - max)
    } else {
        shown
    }
}

/// Whether `conditions` holds one of `kind` with status `True`.
pub(crate) fn has_condition(conditions: &Value, kind: &str) -> bool {
    list(conditions)
        .iter()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// A `*bool` as printed: `<unset>` when absent.
pub(crate) fn bool_ptr(value: &Value) -> String {
    value
        .as_bool()
        .map_or_else(|| "<unset>".into(), |b| b.to_string())
}

/// An IntOrString as Go's `IntOrString.String()` prints it.
pub(crate) fn int_or_string(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A resource quantity as stored (already canonical), `0` when absent.
pub(crate) fn quantity(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".into(),
    }
}

/// `helper.GetAccessModesAsString`: `RWO,ROX,RWX,RWOP` in that order.
pub(crate) fn access_modes(modes: &Value) -> String {
    let modes = list(modes);
    let has = |m: &str| modes.iter().any(|v| v == m);
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_apimachinery() {
        let table = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (180, "3m"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (5 * 3600, "5h"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (7 * 86400, "7d"),
            (45 * 86400, "45d"),
            (729 * 86400, "729d"),
            ((3 * 365 + 120) * 86400, "3y120d"),
            (4 * 365 * 86400, "4y"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in table {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn timestamps_parse_and_format() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            parse_timestamp("2024-02-29T12:30:15Z"),
            Some(1_709_209_815.0)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T13:30:15+01:00"),
            Some(1_709_209_815.0)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T12:30:15.500000Z"),
            Some(1_709_209_815.5)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(format_rfc3339(1_709_209_815), "2024-02-29T12:30:15Z");
    }
}

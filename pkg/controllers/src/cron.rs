//! Cron schedules as Kubernetes CronJobs read them (the standard five fields,
//! the robfig/cron dialect): lists, ranges, steps, month and weekday names, `?`
//! for `*`, and the descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`,
//! `@daily`, `@midnight` and `@hourly`. When both day-of-month and day-of-week
//! are restricted a day matching either runs, otherwise both must match.
//! Times are computed on the wall clock of a time zone.

use k8s_openapi::jiff::civil::Date;
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day-of-month or day-of-week was `*` (or `?`): days match on both.
    any_day_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses one field into a bit set of `min..=max`; the flag says it was a star.
fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            let base = if names.len() == 12 { 1 } else { 0 };
            return Ok(u32::try_from(i).unwrap_or(0) + base);
        }
        s.parse::<u32>()
            .map_err(|_| format!("failed to parse int from {s}"))
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                Some(
                    s.parse::<u32>()
                        .map_err(|_| format!("failed to parse int from {s}"))?,
                ),
            ),
            None => (part, None),
        };
        let (start, end, is_star) = if range == "*" || range == "?" {
            (min, max, true)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?, false)
        } else {
            let v = value(range)?;
            // `5/15` means from 5 to the end, every 15.
            (v, if step.is_some() { max } else { v }, false)
        };
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err("step of range should be a positive number".to_string());
        }
        if start < min || end > max || start > end {
            return Err(format!(
                "end of range ({end}) above maximum ({max}): {part}"
            ));
        }
        if is_star && step == 1 {
            star = true;
        }
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    /// Parses a schedule; the error says why, as Kubernetes' message does.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(format!("unrecognized descriptor: {other}"));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {text}",
                fields.len()
            ));
        }
        let (minutes, _) = field(fields[0], 0, 59, &[])?;
        let (hours, _) = field(fields[1], 0, 23, &[])?;
        let (days, dom_star) = field(fields[2], 1, 31, &[])?;
        let (months, _) = field(fields[3], 1, 12, &MONTHS)?;
        // 7 is Sunday too.
        let (mut weekdays, dow_star) = field(fields[4], 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        Ok(Self {
            minutes,
            hours,
            days,
            months,
            weekdays,
            any_day_star: dom_star || dow_star,
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.any_day_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first scheduled time strictly after `after`, on `tz`'s wall clock.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = after.to_zoned(tz.clone()).datetime();
        // The next whole minute.
        let mut dt = local
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = dt.year().saturating_add(5);
        while dt.year() <= limit {
            if self.months & (1 << dt.month()) == 0 {
                let first = Date::new(dt.year(), dt.month(), 1).ok()?;
                dt = first.checked_add(1.month()).ok()?.at(0, 0, 0, 0);
                continue;
            }
            if !self.day_matches(dt.date()) {
                dt = dt.date().checked_add(1.day()).ok()?.at(0, 0, 0, 0);
                continue;
            }
            if self.hours & (1 << dt.hour()) == 0 {
                dt = dt
                    .date()
                    .at(0, 0, 0, 0)
                    .checked_add(i64::from(dt.hour() + 1).hours())
                    .ok()?;
                continue;
            }
            if self.minutes & (1 << dt.minute()) == 0 {
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            let at = tz.to_ambiguous_zoned(dt).compatible().ok()?.timestamp();
            if at > after {
                return Some(at);
            }
            dt = dt.checked_add(1.minute()).ok()?;
        }
        None
    }

    /// The latest scheduled time in `(earliest, now]` and how many there were
    /// (counting stops at `cap`).
    pub fn most_recent(
        &self,
        earliest: Timestamp,
        now: Timestamp,
        tz: &TimeZone,
        cap: usize,
    ) -> (Option<Timestamp>, usize) {
        let mut last = None;
        let mut count = 0;
        let mut t = earliest;
        while let Some(next) = self.next_after(t, tz) {
            if next > now {
                break;
            }
            last = Some(next);
            count += 1;
            if count >= cap {
                // Too many to walk: the latest is found from a recent point.
                let recent = now.checked_sub((7 * 24).hours()).unwrap_or(now).max(next);
                let (tail, _) = self.most_recent(recent, now, tz, usize::MAX);
                return (tail.or(last), count);
            }
            t = next;
        }
        (last, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule)
            .expect("schedule")
            .next_after(ts(after), &TimeZone::UTC)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn next_times_follow_the_fields() {
        let cases = [
            (
                "*/5 * * * *",
                "2026-01-01T00:03:10Z",
                "2026-01-01T00:05:00Z",
            ),
            ("0 * * * *", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"),
            ("@hourly", "2026-01-01T10:30:00Z", "2026-01-01T11:00:00Z"),
            ("@daily", "2026-01-01T10:30:00Z", "2026-01-02T00:00:00Z"),
            ("@weekly", "2026-01-01T10:30:00Z", "2026-01-04T00:00:00Z"),
            ("@monthly", "2026-01-31T10:30:00Z", "2026-02-01T00:00:00Z"),
            ("@yearly", "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            (
                "30 9 * * mon-fri",
                "2026-01-02T09:30:00Z",
                "2026-01-05T09:30:00Z",
            ),
            (
                "0 0 29 feb *",
                "2026-01-01T00:00:00Z",
                "2028-02-29T00:00:00Z",
            ),
            (
                "15,45 */6 * JAN,jul *",
                "2026-01-01T06:20:00Z",
                "2026-01-01T06:45:00Z",
            ),
            // Both day fields restricted: either matches (the 13th or a Friday).
            ("0 0 13 * 5", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            ("0 0 * * 7", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"),
            (
                "5/20 * * * *",
                "2026-01-01T00:06:00Z",
                "2026-01-01T00:25:00Z",
            ),
        ];
        for (schedule, after, want) in cases {
            assert_eq!(next(schedule, after), want, "{schedule} after {after}");
        }
    }

    #[test]
    fn time_zones_move_the_wall_clock() {
        let tz = TimeZone::get("Asia/Tokyo").expect("zoneinfo");
        let s = Schedule::parse("0 9 * * *").expect("schedule");
        // 08:00 in Tokyo: 09:00 there is midnight UTC.
        let at = s.next_after(ts("2025-12-31T23:00:00Z"), &tz).expect("next");
        assert_eq!(at.to_string(), "2026-01-01T00:00:00Z");
        let at = s.next_after(ts("2026-01-01T00:00:00Z"), &tz).expect("next");
        assert_eq!(at.to_string(), "2026-01-02T00:00:00Z");
    }

    #[test]
    fn bad_schedules_are_refused() {
        for bad in [
            "* * * *",
            "61 * * * *",
            "* * * * * *",
            "@every 5m",
            "*/0 * * * *",
            "a * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_most_recent_time_is_the_last_one_not_after_now() {
        let s = Schedule::parse("*/10 * * * *").expect("schedule");
        let (last, count) = s.most_recent(
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-01T00:35:00Z"),
            &TimeZone::UTC,
            100,
        );
        assert_eq!(
            last.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T00:30:00Z")
        );
        assert_eq!(count, 3);
        let (last, count) = Schedule::parse("* * * * *").expect("schedule").most_recent(
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-03T00:00:30Z"),
            &TimeZone::UTC,
            100,
        );
        assert_eq!(
            last.map(|t| t.to_string()).as_deref(),
            Some("2026-01-03T00:00:00Z")
        );
        assert_eq!(count, 100);
    }

    proptest! {
        #[test]
        fn next_is_after_and_matches_the_schedule(
            minute in 0u32..60, hour in 0u32..24, secs in 0i64..(4 * 365 * 86400),
        ) {
            let s = Schedule::parse(&format!("{minute} {hour} * * *")).expect("schedule");
            let after = Timestamp::from_second(1_767_225_600 + secs).expect("time");
            let at = s.next_after(after, &TimeZone::UTC).expect("next");
            prop_assert!(at > after);
            prop_assert!(at.as_second() - after.as_second() <= 86400);
            let dt = at.to_zoned(TimeZone::UTC).datetime();
            prop_assert_eq!((u32::try_from(dt.minute()).unwrap_or(99), u32::try_from(dt.hour()).unwrap_or(99)), (minute, hour));
        }
    }
}

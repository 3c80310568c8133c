//! `batch/v1` validation: Job and CronJob, and the standard cron schedule
//! parser CronJobs use (five fields or an `@hourly`-style descriptor).

use super::FieldError;
use super::meta::{selector_matches, validate_label_selector};
use super::names::max_len_error;
use super::pod::validate_pod_template;
use super::util::{child, get, has, immutable, int_of, non_negative, one_of, str_of};
use serde_json::Value;

/// Validates a Job (after its selector was generated) or a CronJob.
pub(crate) fn validate(kind: &str, obj: &Value) -> Vec<FieldError> {
    match kind {
        "Job" => job_spec(get(obj, "spec"), "spec", true),
        "CronJob" => cron_job(obj),
        _ => Vec::new(),
    }
}

/// Validates an update of a Job or CronJob.
pub(crate) fn validate_update(kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate(kind, new);
    if kind == "Job" {
        let (ns, os) = (get(new, "spec"), get(old, "spec"));
        immutable(&mut errs, ns, os, "selector", "spec");
        immutable(&mut errs, ns, os, "completionMode", "spec");
        immutable(&mut errs, ns, os, "podFailurePolicy", "spec");
        immutable(&mut errs, ns, os, "backoffLimitPerIndex", "spec");
        // Indexed jobs may scale completions together with parallelism.
        let elastic = str_of(ns, "completionMode") == "Indexed"
            && get(ns, "completions") == get(ns, "parallelism");
        if !elastic {
            immutable(&mut errs, ns, os, "completions", "spec");
        }
        // A suspended job that never started may change its pod template.
        let suspended = os.get("suspend").and_then(Value::as_bool) == Some(true)
            && old.pointer("/status/startTime").is_none_or(Value::is_null);
        if !suspended {
            immutable(&mut errs, ns, os, "template", "spec");
        }
    }
    errs
}

fn job_spec(spec: &Value, path: &str, needs_selector: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        non_negative(&mut errs, spec, f, path);
    }
    if let Some(ads) = int_of(spec, "activeDeadlineSeconds")
        && ads == 0
    {
        errs.push(FieldError::invalid(
            child(path, "activeDeadlineSeconds"),
            ads,
            "must be greater than 0",
        ));
    }
    one_of(
        &mut errs,
        spec,
        "completionMode",
        path,
        &["NonIndexed", "Indexed"],
        false,
    );
    if str_of(spec, "completionMode") == "Indexed" && !has(spec, "completions") {
        errs.push(FieldError::required(
            child(path, "completions"),
            "when completion mode is Indexed",
        ));
    }
    one_of(
        &mut errs,
        spec,
        "podReplacementPolicy",
        path,
        &["TerminatingOrFailed", "Failed"],
        false,
    );
    let selector = spec.get("selector").filter(|s| !s.is_null());
    match selector {
        None if needs_selector => errs.push(FieldError::required(child(path, "selector"), "")),
        None => {}
        Some(sel) => errs.extend(validate_label_selector(sel, &child(path, "selector"))),
    }
    let tp = child(path, "template");
    let tmpl = get(spec, "template");
    if let Some(sel) = selector {
        let labels = tmpl.pointer("/metadata/labels");
        if !selector_matches(sel, labels) {
            errs.push(FieldError::invalid(
                child(&tp, "metadata.labels"),
                labels.cloned().unwrap_or(Value::Null),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs.extend(validate_pod_template(tmpl, &tp));
    let restart = str_of(get(tmpl, "spec"), "restartPolicy");
    if restart != "OnFailure" && restart != "Never" {
        errs.push(FieldError::not_supported(
            child(&tp, "spec.restartPolicy"),
            restart,
            &["OnFailure", "Never"],
        ));
    }
    errs
}

fn cron_job(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.len() > 52 {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            max_len_error(52),
        ));
    }
    let spec = get(obj, "spec");
    let schedule = str_of(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else if schedule.contains("TZ") {
        errs.push(FieldError::invalid(
            "spec.schedule",
            schedule,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    } else if let Err(e) = parse_schedule(schedule) {
        errs.push(FieldError::invalid("spec.schedule", schedule, e));
    }
    one_of(
        &mut errs,
        spec,
        "concurrencyPolicy",
        "spec",
        &["Allow", "Forbid", "Replace"],
        true,
    );
    for f in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        non_negative(&mut errs, spec, f, "spec");
    }
    let tz = str_of(spec, "timeZone");
    if has(spec, "timeZone")
        && (tz.is_empty() || tz.contains(' ') || tz.starts_with('/') || tz.contains(".."))
    {
        errs.push(FieldError::invalid(
            "spec.timeZone",
            tz,
            "unknown time zone",
        ));
    }
    let jt = get(spec, "jobTemplate");
    errs.extend(super::meta::validate_template_meta(
        get(jt, "metadata"),
        "spec.jobTemplate.metadata",
    ));
    errs.extend(job_spec(get(jt, "spec"), "spec.jobTemplate.spec", false));
    errs
}

/// A parsed cron schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Five fields as bit sets (bit n set when value n matches).
    Fields {
        /// Minutes 0-59.
        minute: u64,
        /// Hours 0-23.
        hour: u64,
        /// Days of the month 1-31.
        day_of_month: u64,
        /// Months 1-12.
        month: u64,
        /// Days of the week 0-6, Sunday is 0.
        day_of_week: u64,
        /// Whether day-of-month or day-of-week was `*`/`?`: then both must match, else either.
        day_star: bool,
    },
    /// `@every <duration>`, in seconds.
    Every(u64),
}

impl Schedule {
    /// Whether the schedule fires at this minute (for [`Schedule::Fields`]).
    pub fn matches(
        &self,
        minute: u32,
        hour: u32,
        day_of_month: u32,
        month: u32,
        day_of_week: u32,
    ) -> bool {
        match self {
            Self::Fields {
                minute: mi,
                hour: h,
                day_of_month: dom,
                month: mo,
                day_of_week: dow,
                day_star,
            } => {
                let bit = |set: u64, v: u32| v < 64 && set & (1 << v) != 0;
                let day = if *day_star {
                    bit(*dom, day_of_month) && bit(*dow, day_of_week)
                } else {
                    bit(*dom, day_of_month) || bit(*dow, day_of_week)
                };
                bit(*mi, minute) && bit(*h, hour) && bit(*mo, month) && day
            }
            Self::Every(_) => false,
        }
    }
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses a standard cron schedule as CronJobs accept it; errors are worded like robfig/cron.
pub fn parse_schedule(spec: &str) -> Result<Schedule, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    if let Some(d) = spec.strip_prefix('@') {
        let fields = match d {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            _ => {
                if let Some(dur) = d.strip_prefix("every ") {
                    return parse_duration(dur).map(Schedule::Every).ok_or_else(|| {
                        format!("failed to parse duration {spec}: time: invalid duration \"{dur}\"")
                    });
                }
                return Err(format!("unrecognized descriptor: {spec}"));
            }
        };
        return parse_schedule(fields);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let minute = parse_field(fields[0], 0, 59, &[])?;
    let hour = parse_field(fields[1], 0, 23, &[])?;
    let day_of_month = parse_field(fields[2], 1, 31, &[])?;
    let month = parse_field(fields[3], 1, 12, MONTHS)?;
    let day_of_week = parse_field(fields[4], 0, 6, DAYS)?;
    let star = |f: &str| f.starts_with('*') || f.starts_with('?');
    Ok(Schedule::Fields {
        minute,
        hour,
        day_of_month,
        month,
        day_of_week,
        day_star: star(fields[2]) || star(fields[4]),
    })
}

fn parse_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for expr in field.split(',') {
        bits |= parse_range(expr, min, max, names)?;
    }
    Ok(bits)
}

fn parse_range(expr: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let slash: Vec<&str> = expr.split('/').collect();
    let hyphen: Vec<&str> = slash[0].split('-').collect();
    let (start, mut end);
    let single;
    if hyphen[0] == "*" || hyphen[0] == "?" {
        start = min;
        end = max;
        single = false;
    } else {
        start = parse_value(hyphen[0], names, expr)?;
        match hyphen.len() {
            1 => {
                end = start;
                single = true;
            }
            2 => {
                end = parse_value(hyphen[1], names, expr)?;
                single = false;
            }
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    }
    let step = match slash.len() {
        1 => 1,
        2 => {
            let s = parse_int(slash[1], expr)?;
            if single {
                end = max;
            }
            if s == 0 {
                return Err(format!("step of range should be a positive number: {expr}"));
            }
            s
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok(bits)
}

fn parse_value(s: &str, names: &[&str], expr: &str) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        // Months count from 1, days of the week from 0.
        return Ok(if names.len() == 12 {
            i as u32 + 1
        } else {
            i as u32
        });
    }
    parse_int(s, expr)
}

fn parse_int(s: &str, expr: &str) -> Result<u32, String> {
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {expr}")),
        Ok(n) => {
            u32::try_from(n).map_err(|_| format!("end of range ({n}) above maximum (63): {expr}"))
        }
        Err(_) => Err(format!(
            "failed to parse int from {s}: strconv.Atoi: parsing \"{s}\": invalid syntax"
        )),
    }
}

/// Parses a Go duration such as `1h30m` or `90s` into whole seconds.
fn parse_duration(s: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(spec: Value) -> Value {
        let mut j = json!({"metadata": {"name": "pi"}, "spec": spec});
        crate::defaults::apply("batch", "Job", &mut j);
        crate::defaults::job_selector(&mut j, "u1");
        j
    }

    fn tmpl(restart: &str) -> Value {
        json!({"spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "perl"}]}})
    }

    #[test]
    fn job_messages() {
        assert!(validate("Job", &job(json!({"template": tmpl("Never")}))).is_empty());
        let errs: Vec<String> = validate(
            "Job",
            &job(json!({"parallelism": -1, "template": tmpl("Always")})),
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            errs,
            [
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            ]
        );
    }

    #[test]
    fn job_updates() {
        let old = job(json!({"template": tmpl("Never")}));
        let mut new = old.clone();
        new["spec"]["completions"] = json!(3);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
        let errs: Vec<String> = validate_update("Job", &new, &old)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 2);
        assert_eq!(
            errs[0],
            "spec.completions: Invalid value: 3: field is immutable"
        );
        assert!(errs[1].starts_with("spec.template: Invalid value: "));
        assert!(errs[1].ends_with(": field is immutable"));
        let mut suspended = old.clone();
        suspended["spec"]["suspend"] = json!(true);
        let mut changed = suspended.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
        assert!(validate_update("Job", &changed, &suspended).is_empty());
    }

    #[test]
    fn cron_job_messages() {
        let cj = |schedule: &str| {
            let mut c = json!({"metadata": {"name": "c"}, "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": tmpl("OnFailure")}}}});
            crate::defaults::apply("batch", "CronJob", &mut c);
            validate("CronJob", &c)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert!(cj("*/5 * * * *").is_empty());
        assert!(cj("@hourly").is_empty());
        assert_eq!(cj(""), ["spec.schedule: Required value"]);
        assert_eq!(
            cj("* * *"),
            [
                "spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]"
            ]
        );
        assert_eq!(
            cj("70 * * * *"),
            [
                "spec.schedule: Invalid value: \"70 * * * *\": end of range (70) above maximum (59): 70"
            ]
        );
        assert_eq!(
            cj("TZ=UTC 0 * * * *"),
            [
                "spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
            ]
        );
    }

    #[test]
    fn schedules_match_times() {
        let s = parse_schedule("*/15 9-17 * * mon-fri").unwrap();
        assert!(s.matches(30, 10, 5, 3, 1));
        assert!(!s.matches(31, 10, 5, 3, 1));
        assert!(!s.matches(30, 10, 5, 3, 0));
        let s = parse_schedule("0 0 1 * 1").unwrap();
        assert!(s.matches(0, 0, 1, 6, 4) && s.matches(0, 0, 9, 6, 1));
        assert_eq!(
            parse_schedule("@every 1h30m").unwrap(),
            Schedule::Every(5400)
        );
        assert_eq!(
            parse_schedule("x * * * *").unwrap_err(),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse_schedule("@sometimes").unwrap_err(),
            "unrecognized descriptor: @sometimes"
        );
    }
}

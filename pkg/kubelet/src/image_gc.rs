//! Image garbage collection, as the kubelet's image manager does it: when
//! the file system holding the image store is at least `high_threshold`
//! percent full, images no container uses (running or exited) are removed,
//! least recently used first, until usage would be down to `low_threshold`;
//! then content no image refers to any more goes. Images younger than
//! `min_age` stay (they were probably pulled for a pod about to start).
//! Falling short is reported on the Node as `FreeDiskSpaceFailed`, and
//! repeated failures as `ImageGCFailed`, in kube's words.

use crate::Config;
use k8s_openapi::api::core::v1::ObjectReference;
use kite_client::Recorder;
use kite_client::events::WARNING;
use kite_runtime::Digest;
use kite_runtime::usage::DiskUsage;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How often usage is checked (kube's `ImageGCPeriod`).
const PERIOD: Duration = Duration::from_secs(300);

/// When images are collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Disk usage (percent) at which collection starts; 100 turns it off.
    pub high_threshold: u8,
    /// Disk usage (percent) collection tries to get down to.
    pub low_threshold: u8,
    /// Images detected more recently than this are never collected.
    pub min_age: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            high_threshold: 85,
            low_threshold: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

impl Policy {
    /// Checks how the thresholds relate, in kube's words.
    pub fn validate(&self) -> Result<(), String> {
        if self.low_threshold >= self.high_threshold && self.high_threshold != 100 {
            return Err(format!(
                "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {}",
                self.low_threshold, self.high_threshold
            ));
        }
        Ok(())
    }

    /// Sets the setting of kubelet argument `key` (`image-gc-high-threshold`,
    /// `image-gc-low-threshold`, `minimum-image-ttl-duration`); `Ok(false)`
    /// when `key` is not one of these.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let percent = |value: &str| -> Result<u8, String> {
            let n: i64 = value
                .parse()
                .map_err(|_| format!("invalid value {value:?} for kubelet argument {key}"))?;
            u8::try_from(n).ok().filter(|n| *n <= 100).ok_or_else(|| {
                let field = if key == "image-gc-high-threshold" {
                    "imageGCHighThresholdPercent"
                } else {
                    "imageGCLowThresholdPercent"
                };
                format!("invalid configuration: {field} (--{key}) {n} must be between 0 and 100, inclusive")
            })
        };
        match key {
            "image-gc-high-threshold" => self.high_threshold = percent(value)?,
            "image-gc-low-threshold" => self.low_threshold = percent(value)?,
            "minimum-image-ttl-duration" => {
                self.min_age = go_duration(value).ok_or_else(|| {
                    format!("invalid value {value:?} for kubelet argument {key}: want a duration such as 2m or 30s")
                })?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `90s`, `2m`, `1h30m`, `500ms`: Go durations as kubelet flags take them
/// (whole numbers per unit).
fn go_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut millis = 0u64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (scale, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        millis = millis.checked_add(n.checked_mul(scale)?)?;
    }
    Some(Duration::from_millis(millis))
}

/// Why a collection did not free what it should have.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system's usage cannot be read.
    #[error("failed to get image filesystem stats: {0}")]
    Usage(#[source] std::io::Error),
    /// Listing images or containers failed.
    #[error("{0}")]
    Runtime(String),
    /// Not enough images could be removed.
    #[error(
        "Failed to garbage collect required amount of images. Attempted to free {wanted} bytes, but only found {freed} bytes eligible to free."
    )]
    NotEnough {
        /// Bytes to free to get down to the low threshold.
        wanted: u64,
        /// Bytes freed.
        freed: u64,
    },
}

/// An image of the store, as collection sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Manifest digest: the image's identity.
    pub digest: Digest,
    /// Its names (one digest may carry several).
    pub names: Vec<String>,
    /// Bytes it takes.
    pub size: u64,
}

struct Record {
    first_detected: Instant,
    last_used: Option<Instant>,
}

/// What collection remembers between passes: when each image was first
/// seen and last seen in use (kept in memory, like kube's).
pub struct Collector {
    policy: Policy,
    records: HashMap<Digest, Record>,
}

impl Collector {
    /// A collector for `policy` that has seen nothing yet.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            records: HashMap::new(),
        }
    }

    /// Notes the images there are and those containers use at `now`.
    pub fn detect(&mut self, images: &[ImageInfo], in_use: &HashSet<Digest>, now: Instant) {
        let present: HashSet<&Digest> = images.iter().map(|i| &i.digest).collect();
        self.records.retain(|digest, _| present.contains(digest));
        for image in images {
            let record = self.records.entry(image.digest.clone()).or_insert(Record {
                first_detected: now,
                last_used: None,
            });
            if in_use.contains(&image.digest) {
                record.last_used = Some(now);
            }
        }
    }

    /// One pass at `now`: when `usage` is at or over the high threshold,
    /// removes unused images (with `remove`, least recently used first) until
    /// the low threshold would be reached. Returns the bytes freed.
    pub fn collect(
        &mut self,
        now: Instant,
        usage: DiskUsage,
        images: &[ImageInfo],
        in_use: &HashSet<Digest>,
        mut remove: impl FnMut(&ImageInfo) -> Result<(), String>,
    ) -> Result<u64, Error> {
        self.detect(images, in_use, now);
        if self.policy.high_threshold >= 100 || usage.capacity == 0 {
            return Ok(0);
        }
        let available = usage.available.min(usage.capacity);
        let percent = 100 - available.saturating_mul(100) / usage.capacity;
        if percent < u64::from(self.policy.high_threshold) {
            return Ok(0);
        }
        let wanted = (usage
            .capacity
            .saturating_mul(u64::from(100 - self.policy.low_threshold))
            / 100)
            .saturating_sub(available);
        tracing::info!(
            usage = percent,
            high_threshold = self.policy.high_threshold,
            low_threshold = self.policy.low_threshold,
            wanted,
            "disk usage on the image file system is over the high threshold; freeing images down to the low threshold"
        );
        let mut candidates: Vec<(&ImageInfo, &Record)> = images
            .iter()
            .filter(|i| !in_use.contains(&i.digest))
            .filter_map(|i| self.records.get(&i.digest).map(|r| (i, r)))
            .filter(|(_, r)| now.duration_since(r.first_detected) >= self.policy.min_age)
            .collect();
        // Least recently used first; never used counts as oldest; ties by detection.
        candidates.sort_by_key(|(_, r)| (r.last_used, r.first_detected));
        let mut freed = 0u64;
        let mut removed = Vec::new();
        for (image, _) in candidates {
            if freed >= wanted {
                break;
            }
            match remove(image) {
                Ok(()) => {
                    tracing::info!(image = %image.digest, size = image.size, "removed unused image");
                    freed = freed.saturating_add(image.size);
                    removed.push(image.digest.clone());
                }
                Err(error) => tracing::warn!(image = %image.digest, %error, "cannot remove image"),
            }
        }
        for digest in removed {
            self.records.remove(&digest);
        }
        if freed < wanted {
            return Err(Error::NotEnough { wanted, freed });
        }
        Ok(freed)
    }
}

/// Runs image collection at start and every few minutes for the kubelet of `config`.
pub async fn run(config: Config) {
    let recorder = Recorder::new(config.client.clone(), "kubelet", &config.node_name);
    let node = ObjectReference {
        kind: Some("Node".into()),
        name: Some(config.node_name.clone()),
        uid: Some(config.node_name.clone()),
        ..ObjectReference::default()
    };
    let collector = std::sync::Arc::new(std::sync::Mutex::new(Collector::new(config.image_gc)));
    let mut failed_before = false;
    // The first pass runs at start, as the kubelet's does: it records the
    // images there are (young ones stay for `min_age`) and frees space at once
    // on a node that booted with a full disk.
    let mut passes = tokio::time::interval(PERIOD);
    passes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        passes.tick().await;
        let runtime = config.runtime.clone();
        let collector = collector.clone();
        let pass = tokio::task::spawn_blocking(move || {
            let mut collector = collector
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pass(&mut collector, &runtime, Instant::now())
        })
        .await;
        let Ok(result) = pass else {
            continue;
        };
        if let Err(error) = &result {
            if failed_before {
                tracing::error!(%error, "image garbage collection failed multiple times in a row");
            } else {
                tracing::warn!(%error, "image garbage collection failed once");
            }
        }
        for (reason, message) in node_events(&result, failed_before) {
            recorder.publish(node.clone(), WARNING, reason, &message);
        }
        failed_before = result.is_err();
    }
}

/// The warning events on the Node for the outcome of a pass, as kube sends
/// them: every shortfall is `FreeDiskSpaceFailed`; a failure right after
/// another one is also `ImageGCFailed` (a first one may be a slow start).
fn node_events(result: &Result<u64, Error>, failed_before: bool) -> Vec<(&'static str, String)> {
    let Err(error) = result else {
        return Vec::new();
    };
    let message = error.to_string();
    let mut events = Vec::new();
    if matches!(error, Error::NotEnough { .. }) {
        events.push(("FreeDiskSpaceFailed", message.clone()));
    }
    if failed_before {
        events.push(("ImageGCFailed", message));
    }
    events
}

/// One collection over the real store and file system.
fn pass(
    collector: &mut Collector,
    runtime: &kite_runtime::Runtime,
    now: Instant,
) -> Result<u64, Error> {
    let store = runtime.store();
    let usage = kite_runtime::usage::disk_usage(store.root()).map_err(Error::Usage)?;
    let mut images: Vec<ImageInfo> = Vec::new();
    for image in store.list().map_err(|e| Error::Runtime(e.to_string()))? {
        match images.iter_mut().find(|i| i.digest == image.digest) {
            Some(known) => known.names.push(image.name),
            None => images.push(ImageInfo {
                digest: image.digest,
                names: vec![image.name],
                size: image.size,
            }),
        }
    }
    let in_use: HashSet<Digest> = runtime
        .images_in_use()
        .map_err(|e| Error::Runtime(e.to_string()))?
        .into_keys()
        .collect();
    let freed = collector.collect(now, usage, &images, &in_use, |image| {
        for name in &image.names {
            let reference = kite_runtime::Reference::parse(name).map_err(|e| e.to_string())?;
            runtime
                .remove_image(&reference)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    if freed.as_ref().is_ok_and(|n| *n > 0) || freed.is_err() {
        // Then the layers and blobs nothing refers to any more.
        if let Err(error) = store.prune() {
            tracing::warn!(%error, "cannot remove unreferenced image content");
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn image(n: u8, size: u64) -> ImageInfo {
        ImageInfo {
            digest: digest(n),
            names: vec![format!("docker.io/library/i{n}:latest")],
            size,
        }
    }

    /// A file system of 1000 bytes with `available` free.
    fn usage(available: u64) -> DiskUsage {
        DiskUsage {
            capacity: 1000,
            available,
        }
    }

    fn no_age() -> Policy {
        Policy {
            min_age: Duration::ZERO,
            ..Policy::default()
        }
    }

    #[test]
    fn below_the_high_threshold_nothing_is_removed() {
        let mut gc = Collector::new(no_age());
        let images = [image(1, 100)];
        let freed = gc
            .collect(Instant::now(), usage(160), &images, &HashSet::new(), |_| {
                panic!("nothing to remove at 84%")
            })
            .unwrap();
        assert_eq!(freed, 0);
    }

    #[test]
    fn least_recently_used_unused_images_go_first_down_to_the_low_threshold() {
        let mut gc = Collector::new(no_age());
        let start = Instant::now();
        let images = [image(1, 60), image(2, 60), image(3, 60), image(4, 500)];
        // Image 2 was used a while ago, 1 never: 1 is older in LRU order.
        gc.detect(&images, &HashSet::from([digest(2)]), start);
        let later = start + Duration::from_secs(10);
        let in_use = HashSet::from([digest(4)]);
        let mut removed = Vec::new();
        // 90% full: 1000 * 20% - 100 = 100 bytes to free.
        let freed = gc
            .collect(later, usage(100), &images, &in_use, |i| {
                removed.push(i.digest.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(freed, 120);
        assert_eq!(removed, vec![digest(1), digest(3)]);
    }

    #[test]
    fn images_in_use_or_too_young_stay_and_the_shortfall_is_worded_like_kube() {
        let mut gc = Collector::new(Policy::default());
        let now = Instant::now();
        let images = [image(1, 300), image(2, 300)];
        let in_use = HashSet::from([digest(1)]);
        let error = gc
            .collect(now, usage(0), &images, &in_use, |_| {
                panic!("in use or younger than 2 minutes")
            })
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Failed to garbage collect required amount of images. Attempted to free 200 bytes, but only found 0 bytes eligible to free."
        );
        // Old enough now: image 2 goes, 300 bytes are more than the 200 wanted.
        let freed = gc
            .collect(
                now + Duration::from_secs(121),
                usage(0),
                &images,
                &in_use,
                |i| {
                    assert_eq!(i.digest, digest(2));
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(freed, 300);
    }

    #[test]
    fn failed_removals_are_not_counted() {
        let mut gc = Collector::new(no_age());
        let images = [image(1, 500)];
        let error = gc
            .collect(Instant::now(), usage(0), &images, &HashSet::new(), |_| {
                Err("busy".into())
            })
            .unwrap_err();
        assert!(matches!(error, Error::NotEnough { freed: 0, .. }));
    }

    #[test]
    fn a_threshold_of_100_turns_collection_off() {
        let mut policy = Policy::default();
        assert!(policy.set("image-gc-high-threshold", "100").unwrap());
        let mut gc = Collector::new(policy);
        let images = [image(1, 500)];
        let freed = gc
            .collect(Instant::now(), usage(0), &images, &HashSet::new(), |_| {
                panic!("collection is off")
            })
            .unwrap();
        assert_eq!(freed, 0);
    }

    #[test]
    fn shortfalls_are_reported_and_repeated_failures_escalate() {
        let short = || {
            Err(Error::NotEnough {
                wanted: 10,
                freed: 2,
            })
        };
        let message = "Failed to garbage collect required amount of images. Attempted to free 10 bytes, but only found 2 bytes eligible to free.";
        assert!(node_events(&Ok(5), true).is_empty());
        assert_eq!(
            node_events(&short(), false),
            vec![("FreeDiskSpaceFailed", message.to_string())]
        );
        assert_eq!(
            node_events(&short(), true),
            vec![
                ("FreeDiskSpaceFailed", message.to_string()),
                ("ImageGCFailed", message.to_string())
            ]
        );
        let stats = || Err(Error::Usage(std::io::Error::other("gone")));
        assert!(node_events(&stats(), false).is_empty());
        assert_eq!(node_events(&stats(), true)[0].0, "ImageGCFailed");
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(go_duration("1h1s"), Some(Duration::from_secs(3601)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("5"), None);
        assert_eq!(go_duration(""), None);
    }
}

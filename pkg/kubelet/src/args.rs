//! The kubelet settings kite takes as `--kubelet-arg KEY=VALUE`, the way
//! k3s passes flags to its kubelet: the image GC thresholds (see
//! [`crate::image_gc`]) and `pod-max-pids`. Unknown keys are refused, so a
//! setting kite does not implement never passes silently.

use crate::image_gc::Policy;

/// The settings the kubelet arguments ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KubeletArgs {
    /// When unused images are removed.
    pub image_gc: Policy,
    /// The most processes a pod may have (`None`: no limit).
    pub pod_max_pids: Option<i64>,
}

impl KubeletArgs {
    /// The settings of `args` (`("image-gc-high-threshold", "90")`...); the
    /// error is kube's wording for a bad value, or names the unknown key.
    pub fn parse(args: &[(String, String)]) -> Result<Self, String> {
        let mut out = Self::default();
        for (key, value) in args {
            out.set(key, value)?;
        }
        out.image_gc.validate()?;
        Ok(out)
    }

    /// Checks one argument on its own (how the image GC thresholds relate is
    /// checked by [`KubeletArgs::parse`], once all are known).
    pub fn check(key: &str, value: &str) -> Result<(), String> {
        Self::default().set(key, value)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        if self.image_gc.set(key, value)? {
            return Ok(());
        }
        match key {
            "pod-max-pids" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("invalid value {value:?} for kubelet argument {key}"))?;
                // -1 (the default) and 0 mean no limit, as for the kubelet.
                self.pod_max_pids = (n > 0).then_some(n);
                Ok(())
            }
            other => Err(format!(
                "unknown kubelet argument {other:?} (kite's kubelet takes image-gc-high-threshold, image-gc-low-threshold, minimum-image-ttl-duration and pod-max-pids)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(pairs: &[(&str, &str)]) -> Result<KubeletArgs, String> {
        KubeletArgs::parse(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn kubelet_arguments_set_the_settings_and_bad_ones_are_refused() {
        assert_eq!(parse(&[]).unwrap(), KubeletArgs::default());
        let args = parse(&[
            ("image-gc-high-threshold", "90"),
            ("image-gc-low-threshold", "70"),
            ("minimum-image-ttl-duration", "1m30s"),
            ("pod-max-pids", "100"),
        ])
        .unwrap();
        assert_eq!(
            args.image_gc,
            Policy {
                high_threshold: 90,
                low_threshold: 70,
                min_age: Duration::from_secs(90)
            }
        );
        assert_eq!(args.pod_max_pids, Some(100));
        assert_eq!(parse(&[("pod-max-pids", "-1")]).unwrap().pod_max_pids, None);
        let check = |pairs: &[(&str, &str)], expected: &str| {
            let error = parse(pairs).unwrap_err();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        };
        check(
            &[("image-gc-low-threshold", "90")],
            "must be less than imageGCHighThresholdPercent",
        );
        check(
            &[("image-gc-high-threshold", "101")],
            "imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100",
        );
        check(
            &[("max-pods", "10")],
            "unknown kubelet argument \"max-pods\"",
        );
        check(&[("minimum-image-ttl-duration", "soon")], "want a duration");
        check(&[("pod-max-pids", "many")], "invalid value \"many\"");
        // Alone, a low threshold over the default high one is fine: the high one may follow.
        assert!(KubeletArgs::check("image-gc-low-threshold", "90").is_ok());
        assert!(KubeletArgs::check("image-gc-low-threshold", "x").is_err());
    }
}

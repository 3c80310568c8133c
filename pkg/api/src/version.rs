//! The `/version` document (`version.Info`).
//!
//! kubectl derives the server version from `gitVersion`, and the machine's
//! `/usr/bin/kubectl` dispatcher picks a matching client from it, so kite
//! reports the Kubernetes release it implements with a `+kite` suffix.

use serde::Serialize;

/// The Kubernetes minor version kite's API implements.
pub const KUBERNETES_MINOR: &str = "33";

/// The Kubernetes release kite's API implements, as `gitVersion` shows it.
pub const KUBERNETES_GIT_VERSION: &str = "v1.33.0+kite";

/// `version.Info` as served at `/version`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Major Kubernetes version.
    pub major: String,
    /// Minor Kubernetes version.
    pub minor: String,
    /// The full version string, e.g. `v1.33.0+kite`.
    pub git_version: String,
    /// The source commit kite was built from.
    pub git_commit: String,
    /// Whether the tree was clean.
    pub git_tree_state: String,
    /// When the binary was built (RFC 3339).
    pub build_date: String,
    /// The compiler that built the binary.
    pub go_version: String,
    /// Always `rustc`: there is no Go in kite.
    pub compiler: String,
    /// `os/arch`, e.g. `linux/amd64`.
    pub platform: String,
}

impl VersionInfo {
    /// The version document for this build; `commit` and `build_date` come from the binary.
    pub fn new(commit: &str, build_date: &str) -> Self {
        Self {
            major: "1".into(),
            minor: KUBERNETES_MINOR.into(),
            git_version: KUBERNETES_GIT_VERSION.into(),
            git_commit: commit.into(),
            git_tree_state: "clean".into(),
            build_date: build_date.into(),
            go_version: "n/a (rust)".into(),
            compiler: "rustc".into(),
            platform: format!("linux/{}", go_arch()),
        }
    }
}

/// The architecture name as Go (and so Kubernetes) spells it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_reports_kubernetes_1_33() {
        let info = VersionInfo::new("abc", "2026-01-01T00:00:00Z");
        let json = serde_json::to_value(&info).expect("json");
        assert_eq!(json["major"], "1");
        assert_eq!(json["minor"], "33");
        assert_eq!(json["gitVersion"], "v1.33.0+kite");
        assert!(
            json["platform"]
                .as_str()
                .is_some_and(|p| p.starts_with("linux/"))
        );
    }
}

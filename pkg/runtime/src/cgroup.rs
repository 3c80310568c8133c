//! Where containers' cgroups go: nested under the cgroup kite itself runs in.
//!
//! On cgroup v2 that is the process's one `0::<path>`. On v1 (and hybrid)
//! every controller has its own hierarchy and the process may sit at a
//! different path in each; the OCI `cgroupsPath` is one path for all of them,
//! so kite nests under its path in the memory hierarchy, the one whose limit
//! matters most (the same directory is created in the other hierarchies).

use std::path::{Path, PathBuf};

/// Which cgroup hierarchy the machine mounts at `/sys/fs/cgroup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy or hybrid: one hierarchy per controller.
    V1,
    /// The unified hierarchy only.
    V2,
}

impl CgroupVersion {
    /// Detects the version from the file system at `root` (normally `/sys/fs/cgroup`).
    pub fn detect(root: &Path) -> Self {
        if root.join("cgroup.controllers").exists() {
            Self::V2
        } else {
            Self::V1
        }
    }
}

/// The directory, relative to each hierarchy's root, that kite's containers go under:
/// `<own cgroup>/kite`. `proc_self_cgroup` is the text of `/proc/self/cgroup`.
pub fn parent_for(version: CgroupVersion, proc_self_cgroup: &str) -> PathBuf {
    let mut own = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let wanted = match version {
            CgroupVersion::V2 => controllers.is_empty(),
            CgroupVersion::V1 => controllers.split(',').any(|c| c == "memory"),
        };
        if wanted {
            own = Some(path.to_string());
        }
    }
    let own = own.unwrap_or_else(|| "/".to_string());
    // A container of ours starting another kite must not nest ever deeper.
    let own = own.split("/kite/").next().unwrap_or("/").to_string();
    Path::new(&own).join("kite")
}

/// `<parent>/<container id>`, the container's `cgroupsPath`.
pub fn container_path(parent: &Path, id: &str) -> PathBuf {
    parent.join(id)
}

/// The directories holding a container's cgroup, one per hierarchy that has it.
pub fn container_dirs(root: &Path, cgroups_path: &Path) -> Vec<PathBuf> {
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    match CgroupVersion::detect(root) {
        CgroupVersion::V2 => vec![root.join(rel)],
        CgroupVersion::V1 => std::fs::read_dir(root)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path().join(rel))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Limits the processes of cgroup `cgroup` (relative to each hierarchy, as a
/// `cgroupsPath` is) under `root` to `limit`, creating it if needed: a pod's
/// cgroup, which its containers' cgroups nest in. On cgroup v2 the `pids`
/// controller is enabled down the path first.
pub fn set_pids_limit(root: &Path, cgroup: &Path, limit: i64) -> std::io::Result<()> {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    let dir = match CgroupVersion::detect(root) {
        CgroupVersion::V1 => root.join("pids").join(rel),
        CgroupVersion::V2 => {
            let mut at = root.to_path_buf();
            for part in rel.components() {
                // Already enabled, or enabled higher up by the system: both fine.
                let _ = std::fs::write(at.join("cgroup.subtree_control"), "+pids");
                at.push(part);
                std::fs::create_dir_all(&at)?;
            }
            at
        }
    };
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("pids.max"), limit.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str =
        "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/0e11\n1:cpu,cpuacct:/\n0::/\n";

    #[test]
    fn v1_nests_under_the_memory_cgroup() {
        assert_eq!(
            parent_for(CgroupVersion::V1, HYBRID),
            PathBuf::from("/process_api/0e11/kite")
        );
    }

    #[test]
    fn v2_nests_under_the_unified_cgroup() {
        assert_eq!(
            parent_for(CgroupVersion::V2, "0::/system.slice/kite.service\n"),
            PathBuf::from("/system.slice/kite.service/kite")
        );
        assert_eq!(parent_for(CgroupVersion::V2, ""), PathBuf::from("/kite"));
    }

    #[test]
    fn a_kite_inside_a_kite_container_does_not_nest_deeper() {
        assert_eq!(
            parent_for(CgroupVersion::V2, "0::/a/kite/c1\n"),
            PathBuf::from("/a/kite")
        );
    }
}

//! Where the kubelet keeps things under `<data-dir>/agent`:
//!
//! ```text
//! images/                                  image tarballs imported at start
//! images/.imported.json                    which of them were imported already
//! pod-manifests/                           static pods, one Pod per file
//! pods/<uid>/state.json                    the pod's containers (see crate::state)
//! pods/<uid>/volumes/<name>/               its volumes (configMap, secret, emptyDir...)
//! pods/<uid>/etc/{hosts,hostname,resolv.conf}
//! pods/<uid>/containers/<name>/<attempt>   termination message files
//! logs/<namespace>_<pod>_<uid>/<container>/<attempt>.log   CRI logs (/var/log/pods)
//! ```

use std::path::{Path, PathBuf};

/// Paths of the kubelet's files.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root` (`<data-dir>/agent`).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// Image tarballs to import at start.
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    /// Static pod manifests.
    pub fn pod_manifests_dir(&self) -> PathBuf {
        self.root.join("pod-manifests")
    }

    /// Every pod's directory.
    pub fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }

    /// Where `Localhost` seccomp profiles are (the kubelet's `seccomp` directory).
    pub fn seccomp_dir(&self) -> PathBuf {
        self.root.join("seccomp")
    }

    /// One pod's directory.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    /// A pod's volume.
    pub fn volume_dir(&self, uid: &str, volume: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes").join(volume)
    }

    /// A pod's generated /etc files.
    pub fn etc_dir(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("etc")
    }

    /// The termination message file of one container instance.
    pub fn termination_file(&self, uid: &str, container: &str, attempt: i32) -> PathBuf {
        self.pod_dir(uid)
            .join("containers")
            .join(container)
            .join(attempt.to_string())
    }

    /// The pod's log directory.
    pub fn pod_logs_dir(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.root
            .join("logs")
            .join(format!("{namespace}_{name}_{uid}"))
    }

    /// The log of one container instance.
    pub fn log_file(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        container: &str,
        attempt: i32,
    ) -> PathBuf {
        self.pod_logs_dir(namespace, name, uid)
            .join(container)
            .join(format!("{attempt}.log"))
    }
}

//! Where kite keeps things on disk, in one place so every command agrees.

use std::path::{Path, PathBuf};

/// Whether the process runs as root (and so uses the system-wide paths).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `--data-dir`, or `/var/lib/kite` for root and `~/.kite` otherwise.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    if is_root() {
        PathBuf::from("/var/lib/kite")
    } else {
        home().join(".kite")
    }
}

/// The default admin kubeconfig path: `/etc/kite/kite.yaml`, or `~/.kube/kite.yaml` when not root.
pub fn default_kubeconfig() -> PathBuf {
    if is_root() {
        PathBuf::from("/etc/kite/kite.yaml")
    } else {
        home().join(".kube").join("kite.yaml")
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The layout of a data dir.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The layout rooted at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// `<data-dir>/server`: everything only servers keep.
    pub fn server(&self) -> PathBuf {
        self.root.join("server")
    }

    /// `<data-dir>/agent`: images, snapshots and containers of this node.
    pub fn agent(&self) -> PathBuf {
        self.root.join("agent")
    }

    /// `<data-dir>/storage`: local-path volumes, as an absolute path (it is
    /// written into hostPath volumes, which must be absolute).
    pub fn storage(&self) -> PathBuf {
        let dir = self.root.join("storage");
        std::path::absolute(&dir).unwrap_or(dir)
    }

    /// `<data-dir>/server/tls`: CAs, keys and certificates.
    pub fn tls(&self) -> PathBuf {
        self.server().join("tls")
    }

    /// `<data-dir>/server/token`: the join token.
    pub fn token(&self) -> PathBuf {
        self.server().join("token")
    }

    /// `<data-dir>/server/db/state.db`: the embedded datastore.
    pub fn database(&self) -> PathBuf {
        self.server().join("db").join("state.db")
    }

    /// `<data-dir>/server/cred/admin.kubeconfig`: the admin kubeconfig kept with the data.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.server().join("cred").join("admin.kubeconfig")
    }
}

//! Pod sandboxes: the network, IPC and UTS namespaces a pod's containers
//! share, kept alive without a pause container by bind-mounting their
//! `/proc/self/ns/*` files (as `ip netns add` does).
//!
//! ```text
//! <data-dir>/agent/sandboxes/<id>/net   the pod's network namespace
//!                                /ipc   its IPC namespace
//!                                /uts   its UTS namespace (host name = pod name)
//! ```
//!
//! [`create`] is the half that runs in the hidden single-threaded
//! `kite runtime sandbox` process (it unshares its own namespaces, which a
//! multi-threaded process cannot do); [`Sandbox`] is the caller's side.

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors setting up or removing a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Bringing up loopback failed.
    #[error("bringing up lo in the pod's network namespace: {0}")]
    Loopback(String),
}

/// What a sandbox shares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxOptions {
    /// The pod's host name (ignored with `host_network`, which keeps the node's).
    pub hostname: String,
    /// Use the node's network and UTS namespaces (`hostNetwork: true`).
    pub host_network: bool,
    /// Use the node's IPC namespace (`hostIPC: true`).
    pub host_ipc: bool,
}

/// The namespace files of a created sandbox (absent: the host's is used).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// The sandbox directory.
    pub dir: PathBuf,
    /// Network namespace file.
    pub network: Option<PathBuf>,
    /// IPC namespace file.
    pub ipc: Option<PathBuf>,
    /// UTS namespace file.
    pub uts: Option<PathBuf>,
}

const KINDS: [&str; 3] = ["net", "ipc", "uts"];

impl Sandbox {
    /// The sandbox at `dir` as it is on disk.
    pub fn at(dir: &Path) -> Self {
        let file = |kind: &str| Some(dir.join(kind)).filter(|p| is_bound(p));
        Self {
            dir: dir.to_path_buf(),
            network: file("net"),
            ipc: file("ipc"),
            uts: file("uts"),
        }
    }

    /// Whether the sandbox exists (its directory does).
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// The namespaces for a container of this pod to join.
    pub fn join(&self) -> crate::JoinNamespaces {
        crate::JoinNamespaces {
            network: self.network.clone(),
            ipc: self.ipc.clone(),
            uts: self.uts.clone(),
            pid: None,
        }
    }

    /// Unmounts the namespace files and removes the directory (the namespaces
    /// go when their last process does).
    pub fn remove(&self) -> Result<(), Error> {
        for kind in KINDS {
            let file = self.dir.join(kind);
            if is_bound(&file) {
                umount2(&file, MntFlags::MNT_DETACH).map_err(|source| Error::Sys {
                    what: format!("unmount {}", file.display()),
                    source,
                })?;
            }
        }
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io {
                what: format!("remove {}", self.dir.display()),
                source,
            }),
        }
    }
}

/// Creates the sandbox in `dir`: unshares this process's namespaces, sets the
/// host name, brings up loopback, and pins each namespace to a file. Must run
/// in a single-threaded process of its own; on error nothing is left behind.
pub fn create(dir: &Path, options: &SandboxOptions) -> Result<Sandbox, Error> {
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        what: format!("create {}", dir.display()),
        source,
    })?;
    let result = (|| {
        let mut flags = CloneFlags::empty();
        let mut kinds = Vec::new();
        if !options.host_network {
            flags |= CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS;
            kinds.extend(["net", "uts"]);
        }
        if !options.host_ipc {
            flags |= CloneFlags::CLONE_NEWIPC;
            kinds.push("ipc");
        }
        unshare(flags).map_err(|source| Error::Sys {
            what: "unshare".into(),
            source,
        })?;
        if !options.host_network {
            nix::unistd::sethostname(&options.hostname).map_err(|source| Error::Sys {
                what: format!("sethostname {}", options.hostname),
                source,
            })?;
            loopback_up()?;
        }
        for kind in kinds {
            let file = dir.join(kind);
            fs::write(&file, b"").map_err(|source| Error::Io {
                what: format!("create {}", file.display()),
                source,
            })?;
            let source = PathBuf::from(format!("/proc/self/ns/{kind}"));
            mount(
                Some(&source),
                &file,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| Error::Sys {
                what: format!("bind {} to {}", source.display(), file.display()),
                source: e,
            })?;
        }
        Ok(Sandbox::at(dir))
    })();
    if result.is_err() {
        let _ = Sandbox::at(dir).remove();
    }
    result
}

/// `ip link set lo up` in the (new) network namespace this process is in.
fn loopback_up() -> Result<(), Error> {
    let output = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .output()
        .map_err(|e| Error::Loopback(format!("running ip (iproute2): {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Loopback(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ))
    }
}

/// Whether `path` has something mounted on it (a pinned namespace).
fn is_bound(path: &Path) -> bool {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.to_string_lossy();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| mount_point == target)
}

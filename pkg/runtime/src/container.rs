//! Containers, from the caller's side: a bundle directory with an overlayfs
//! rootfs and a `config.json`, and the low-level runtime (`kite runtime ...`,
//! see [`crate::shim`]) run as a child process to create, start, kill and
//! delete it.
//!
//! ```text
//! <data-dir>/agent/containers/<id>/config.json   the OCI runtime spec
//!                                 /rootfs        overlayfs: image layers + upper
//!                                 /upper, /work  the container's own changes
//! <data-dir>/agent/runtime/<id>/                 libcontainer's state
//! ```

use crate::cgroup::{self, CgroupVersion};
use crate::crilog::Rotation;
use crate::monitor;
use crate::reference::Reference;
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::spec::{self, ContainerSpec, ImageConfig};
use crate::store::{self, Store, io_err};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// Errors managing containers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed (image not found, I/O).
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The spec cannot be built.
    #[error(transparent)]
    Spec(#[from] spec::Error),
    /// The container ID is not acceptable.
    #[error(
        "invalid container ID {0:?}: use 1-64 letters, digits, '_', '-' and '.', starting with a letter or digit"
    )]
    InvalidId(String),
    /// A container with that ID exists.
    #[error("container {0} already exists")]
    Exists(String),
    /// Mounting or unmounting the rootfs failed.
    #[error("{action} rootfs {path}: {source}")]
    Mount {
        /// `mount` or `unmount`.
        action: &'static str,
        /// The rootfs.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// The low-level runtime could not be started.
    #[error("running {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The low-level runtime reported a failure.
    #[error("kite runtime {operation} {id} failed ({status}){detail}")]
    Runtime {
        /// The operation.
        operation: &'static str,
        /// The container.
        id: String,
        /// How it exited.
        status: ExitStatus,
        /// Its error output, if captured.
        detail: String,
    },
    /// The sandbox could not be removed.
    #[error(transparent)]
    Sandbox(Box<crate::sandbox::Error>),
    /// An image cannot be removed while containers use it.
    #[error("cannot remove image {image}: it is in use by container {}", containers.join(", "))]
    ImageInUse {
        /// The image's name.
        image: String,
        /// The containers made from it.
        containers: Vec<String>,
    },
}

/// How a monitored container is set up.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonitorSettings {
    /// Give it a standard input FIFO ([`Runtime::stdin_path`]).
    pub stdin: bool,
    /// Log rotation limits.
    pub rotation: Rotation,
}

/// Whether process `pid` exists (zombies included).
fn process_alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits for process `pid` to end; false when it cannot be waited for (no
/// pidfd support), true once it has ended or if it never existed.
async fn wait_for_process(pid: i32) -> bool {
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    use tokio::io::{Interest, unix::AsyncFd};
    let Some(pid) = Pid::from_raw(pid) else {
        return true;
    };
    match pidfd_open(pid, PidfdFlags::NONBLOCK) {
        // Deprecated because an inner type could close or swap its fd while
        // registered; an OwnedFd moved into the AsyncFd cannot, and the safe
        // replacement is an `unsafe fn` this workspace forbids.
        #[allow(deprecated)]
        Ok(fd) => match AsyncFd::with_interest(fd, Interest::READABLE) {
            Ok(fd) => fd.readable().await.is_ok(),
            Err(_) => false,
        },
        Err(rustix::io::Errno::SRCH) => true,
        Err(_) => false,
    }
}

/// Result of container operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the runtime reaches its low-level half and where it puts cgroups.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The binary to re-execute (the kite binary).
    pub binary: PathBuf,
    /// Arguments before the operation (e.g. `["runtime"]`).
    pub prefix_args: Vec<OsString>,
    /// The cgroup directory containers go under, relative to each hierarchy.
    pub cgroup_parent: PathBuf,
}

impl RuntimeConfig {
    /// `binary runtime ...`, with containers' cgroups under this process's own cgroup.
    pub fn for_binary(binary: PathBuf) -> Self {
        let version = CgroupVersion::detect(Path::new("/sys/fs/cgroup"));
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Self {
            binary,
            prefix_args: vec!["runtime".into()],
            cgroup_parent: cgroup::parent_for(version, &own),
        }
    }
}

/// The container runtime over an image store.
#[derive(Clone, Debug)]
pub struct Runtime {
    store: Store,
    config: RuntimeConfig,
}

/// Where the container's standard streams go.
#[derive(Debug, Default)]
pub struct Stdio3 {
    /// Standard input (default: /dev/null).
    pub stdin: Option<Stdio>,
    /// Standard output (default: inherited).
    pub stdout: Option<Stdio>,
    /// Standard error (default: inherited).
    pub stderr: Option<Stdio>,
}

impl Runtime {
    /// A runtime over `store`.
    pub fn new(store: Store, config: RuntimeConfig) -> Self {
        Self { store, config }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The cgroup directory containers go under unless their spec says otherwise.
    pub fn cgroup_parent(&self) -> &Path {
        &self.config.cgroup_parent
    }

    /// The bundle directory of container `id`.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.store.containers_dir().join(id)
    }

    /// The container's `cgroupsPath`.
    pub fn cgroups_path(&self, id: &str) -> PathBuf {
        cgroup::container_path(&self.config.cgroup_parent, id)
    }

    /// Prepares container `id` from `image`: mounts its rootfs and writes its spec.
    /// Returns the bundle directory. On error nothing is left behind.
    pub fn prepare(&self, id: &str, image: &Reference, wanted: &ContainerSpec) -> Result<PathBuf> {
        check_id(id)?;
        let image = self.store.get(image)?;
        let config = ImageConfig::from_blob(&self.store.read_blob(&image.config)?)?;
        let bundle = self.bundle_dir(id);
        match fs::create_dir(&bundle) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.to_string()));
            }
            Err(e) => return Err(io_err("create", &bundle)(e).into()),
        }
        let result = (|| {
            let rootfs = bundle.join("rootfs");
            let upper = bundle.join("upper");
            let work = bundle.join("work");
            for dir in [&rootfs, &upper, &work] {
                fs::create_dir(dir).map_err(io_err("create", dir))?;
            }
            // overlayfs lists the top layer first.
            let lower: Vec<String> = image
                .layers
                .iter()
                .rev()
                .map(|l| self.store.snapshot_path(&l.diff_id).display().to_string())
                .collect();
            mount_overlay(&rootfs, &lower, &upper, &work)?;
            let cgroups_path = match &wanted.cgroup_parent {
                Some(parent) => cgroup::container_path(parent, id),
                None => self.cgroups_path(id),
            };
            let spec = spec::build(id, &config, wanted, &rootfs, &cgroups_path);
            let spec = match spec {
                Ok(spec) => spec,
                Err(e) => {
                    let _ = unmount(&rootfs);
                    return Err(e.into());
                }
            };
            let bytes = serde_json::to_vec_pretty(&spec).unwrap_or_default();
            store::write_atomic(&bundle.join("config.json"), &bytes).inspect_err(|_| {
                let _ = unmount(&rootfs);
            })?;
            self.record_image(&bundle, &image).inspect_err(|_| {
                let _ = unmount(&rootfs);
            })?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = store::remove_tree(&bundle);
            return Err(e);
        }
        Ok(bundle)
    }

    /// Runs container `id` in the foreground: streams its output, waits, and
    /// returns its exit code (128+N when killed by signal N). Its processes and
    /// cgroup are gone afterwards; with `remove` its bundle (and so its file
    /// system changes) too, otherwise [`Runtime::delete`] removes that later.
    pub fn run(
        &self,
        id: &str,
        image: &Reference,
        wanted: &ContainerSpec,
        stdio: Stdio3,
        remove: bool,
    ) -> Result<i32> {
        let bundle = self.prepare(id, image, wanted)?;
        let mut command = self.command(&["run", "--bundle"]);
        command.arg(&bundle).arg(id);
        command.stdin(stdio.stdin.unwrap_or_else(Stdio::null));
        if let Some(out) = stdio.stdout {
            command.stdout(out);
        }
        if let Some(err) = stdio.stderr {
            command.stderr(err);
        }
        let status = command.status().map_err(|source| Error::Spawn {
            binary: self.config.binary.clone(),
            source,
        });
        // A failed create can leave libcontainer's state behind: delete it (and so its cgroup).
        if status
            .as_ref()
            .is_ok_and(|s| s.code() == Some(125) || s.code().is_none())
        {
            self.forget(id);
        }
        let cleanup = if remove {
            self.remove_bundle(id)
        } else {
            self.unmount_rootfs(id)
        };
        let status = status?;
        cleanup?;
        // The low-level runtime exits with the container's code; 125 means it failed itself.
        match status.code() {
            Some(125) | None => Err(Error::Runtime {
                operation: "run",
                id: id.to_string(),
                status,
                detail: String::new(),
            }),
            Some(code) => Ok(code),
        }
    }

    /// Creates container `id` (its process waits for [`Runtime::start`]). The
    /// container's stdio is `stdio`; it keeps running when this process exits.
    pub fn create(
        &self,
        id: &str,
        image: &Reference,
        wanted: &ContainerSpec,
        stdio: Stdio3,
    ) -> Result<()> {
        let bundle = self.prepare(id, image, wanted)?;
        let mut command = self.command(&["create", "--bundle"]);
        command.arg(&bundle).arg(id);
        command.stdin(stdio.stdin.unwrap_or_else(Stdio::null));
        command.stdout(stdio.stdout.unwrap_or_else(Stdio::null));
        command.stderr(stdio.stderr.unwrap_or_else(Stdio::null));
        let result = command
            .status()
            .map_err(|source| Error::Spawn {
                binary: self.config.binary.clone(),
                source,
            })
            .and_then(|status| {
                if status.success() {
                    Ok(())
                } else {
                    Err(Error::Runtime {
                        operation: "create",
                        id: id.to_string(),
                        status,
                        detail: String::new(),
                    })
                }
            });
        if result.is_err() {
            self.forget(id);
            let _ = self.remove_bundle(id);
        }
        result
    }

    /// Starts a created container (deleting it if that fails).
    pub fn start(&self, id: &str) -> Result<()> {
        let result = self.simple("start", &["start"], id);
        if result.is_err() {
            let _ = self.delete(id, true);
        }
        result
    }

    /// Sends `signal` (e.g. `TERM`, `KILL`) to the container's init, or to all its processes.
    pub fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let mut args = vec!["kill", "--signal", signal];
        if all {
            args.push("--all");
        }
        self.simple("kill", &args, id)
    }

    /// The container's state as the low-level runtime reports it (JSON).
    pub fn state(&self, id: &str) -> Result<serde_json::Value> {
        let output = self
            .command(&["state"])
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                binary: self.config.binary.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(Error::Runtime {
                operation: "state",
                id: id.to_string(),
                status: output.status,
                detail: detail(&output.stderr),
            });
        }
        serde_json::from_slice(&output.stdout).map_err(|e| Error::Runtime {
            operation: "state",
            id: id.to_string(),
            status: output.status,
            detail: format!(": unparsable output: {e}"),
        })
    }

    /// Deletes the container (killing it first with `force`), its cgroup, rootfs mount and bundle.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        check_id(id)?;
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        let known = self.store.runtime_state_dir().join(id).exists();
        if known {
            self.simple("delete", &args, id)?;
        }
        self.remove_bundle(id)
    }

    /// Prepares container `id` and starts it under a monitor (see
    /// [`crate::monitor`]) that logs its output to `log` and records its exit;
    /// the container and its monitor keep running when this process exits.
    /// On error nothing is left behind.
    pub fn start_monitored(
        &self,
        id: &str,
        image: &Reference,
        wanted: &ContainerSpec,
        log: &Path,
        options: MonitorSettings,
    ) -> Result<monitor::Started> {
        let bundle = self.prepare(id, image, wanted)?;
        let mut command = self.command(&["monitor", "--bundle"]);
        command
            .arg(&bundle)
            .arg("--log")
            .arg(log)
            .arg("--log-max-size")
            .arg(options.rotation.max_size.to_string())
            .arg("--log-max-files")
            .arg(options.rotation.max_files.to_string());
        if options.stdin {
            command.arg("--stdin");
        }
        command.arg(id).stdin(Stdio::null());
        let output = command.output().map_err(|source| Error::Spawn {
            binary: self.config.binary.clone(),
            source,
        });
        let started = output.and_then(|output| {
            let line = String::from_utf8_lossy(&output.stdout);
            if output.status.success() && line.starts_with("started ") {
                monitor::read_record(&bundle, monitor::STARTED_FILE).ok_or_else(|| Error::Runtime {
                    operation: "monitor",
                    id: id.to_string(),
                    status: output.status,
                    detail: ": the monitor wrote no monitor.json".into(),
                })
            } else {
                Err(Error::Runtime {
                    operation: "monitor",
                    id: id.to_string(),
                    status: output.status,
                    detail: detail(&output.stderr),
                })
            }
        });
        if started.is_err() {
            self.forget(id);
            let _ = self.remove_bundle(id);
        }
        started
    }

    /// When the monitored container `id` started, if it did.
    pub fn started(&self, id: &str) -> Option<monitor::Started> {
        monitor::read_record(&self.bundle_dir(id), monitor::STARTED_FILE)
    }

    /// How the monitored container `id` exited, once it has. A container whose
    /// monitor died (a reboot, `kill -9`) without recording an exit and whose
    /// process is gone counts as exited with code 255, as containerd reports it.
    pub fn exited(&self, id: &str) -> Option<monitor::Exited> {
        let bundle = self.bundle_dir(id);
        if let Some(exited) = monitor::read_record(&bundle, monitor::EXITED_FILE) {
            return Some(exited);
        }
        let started: monitor::Started = monitor::read_record(&bundle, monitor::STARTED_FILE)?;
        if process_alive(started.monitor_pid) || process_alive(started.pid) {
            return None;
        }
        // The monitor may have written the record between the two reads.
        if let Some(exited) = monitor::read_record(&bundle, monitor::EXITED_FILE) {
            return Some(exited);
        }
        Some(monitor::Exited {
            exit_code: 255,
            signal: None,
            oom_killed: false,
            started_at: started.started_at.clone(),
            finished_at: started.started_at,
        })
    }

    /// Returns once the monitored container `id` has exited (see
    /// [`Runtime::exited`]), without polling: a pidfd of the monitor, then of
    /// the container's init should the monitor be gone first (`kill -9`),
    /// becomes readable when that process ends. Never returns when that
    /// cannot be known (a container never started, no pidfd support), so
    /// callers keep a slower periodic check beside it.
    pub async fn wait_exited(&self, id: &str) {
        let bundle = self.bundle_dir(id);
        if let Some(started) =
            monitor::read_record::<monitor::Started>(&bundle, monitor::STARTED_FILE)
        {
            for pid in [started.monitor_pid, started.pid] {
                if !wait_for_process(pid).await {
                    break;
                }
            }
            if self.exited(id).is_some() {
                return;
            }
        }
        std::future::pending().await
    }

    /// The FIFO feeding the standard input of a container started with `stdin`.
    pub fn stdin_path(&self, id: &str) -> PathBuf {
        self.bundle_dir(id).join(monitor::STDIN_FIFO)
    }

    /// The command that runs `args` in the running container `id` (`kubectl exec`):
    /// its standard streams are the process's, or with `console_socket` a
    /// terminal whose master side libcontainer sends to that socket. It exits
    /// with the process's code (125: the runtime failed).
    pub fn exec_command(
        &self,
        id: &str,
        args: &[String],
        env: &[String],
        console_socket: Option<&Path>,
    ) -> Command {
        let mut command = self.command(&["exec"]);
        for kv in env {
            command.arg("--env").arg(kv);
        }
        if let Some(socket) = console_socket {
            command.arg("--console-socket").arg(socket);
        }
        command.arg(id).arg("--").args(args);
        command
    }

    /// `<data-dir>/agent/sandboxes/<id>`.
    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.store.root().join("sandboxes").join(id)
    }

    /// Creates pod sandbox `id` (its namespaces) unless it exists.
    pub fn create_sandbox(&self, id: &str, options: &SandboxOptions) -> Result<Sandbox> {
        check_id(id)?;
        let dir = self.sandbox_dir(id);
        let existing = Sandbox::at(&dir);
        if existing.exists() {
            return Ok(existing);
        }
        let mut command = Command::new(&self.config.binary);
        command
            .args(&self.config.prefix_args)
            .arg("--root")
            .arg(self.store.runtime_state_dir())
            .args(["sandbox", "--hostname", &options.hostname]);
        if options.host_network {
            command.arg("--host-network");
        }
        if options.host_ipc {
            command.arg("--host-ipc");
        }
        let output = command
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                binary: self.config.binary.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(Error::Runtime {
                operation: "sandbox",
                id: id.to_string(),
                status: output.status,
                detail: detail(&output.stderr),
            });
        }
        Ok(Sandbox::at(&dir))
    }

    /// Removes pod sandbox `id` (nothing if it does not exist).
    pub fn remove_sandbox(&self, id: &str) -> Result<()> {
        check_id(id)?;
        Sandbox::at(&self.sandbox_dir(id))
            .remove()
            .map_err(|e| Error::Sandbox(Box::new(e)))
    }

    /// IDs of the sandboxes on disk.
    pub fn list_sandboxes(&self) -> Vec<String> {
        let dir = self.store.root().join("sandboxes");
        let mut ids: Vec<String> = fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// IDs of containers with a bundle directory.
    pub fn list(&self) -> Result<Vec<String>> {
        let dir = self.store.containers_dir();
        let mut ids: Vec<String> = fs::read_dir(&dir)
            .map_err(io_err("list", &dir))?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Removes the low-level runtime's state of a container that failed half-way.
    fn forget(&self, id: &str) {
        let state = self.store.runtime_state_dir().join(id);
        if state.exists() && self.simple("delete", &["delete", "--force"], id).is_err() {
            let _ = store::remove_tree(&state);
        }
    }

    fn unmount_rootfs(&self, id: &str) -> Result<()> {
        let rootfs = self.bundle_dir(id).join("rootfs");
        if is_mount_point(&rootfs) {
            unmount(&rootfs)?;
        }
        Ok(())
    }

    fn remove_bundle(&self, id: &str) -> Result<()> {
        self.unmount_rootfs(id)?;
        let bundle = self.bundle_dir(id);
        store::remove_tree(&bundle).map_err(io_err("remove", &bundle))?;
        Ok(())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.config.binary);
        command
            .args(&self.config.prefix_args)
            .arg("--root")
            .arg(self.store.runtime_state_dir())
            .args(args);
        command
    }

    fn simple(&self, operation: &'static str, args: &[&str], id: &str) -> Result<()> {
        let output = self
            .command(args)
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                binary: self.config.binary.clone(),
                source,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::Runtime {
                operation,
                id: id.to_string(),
                status: output.status,
                detail: detail(&output.stderr),
            })
        }
    }
}

fn detail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let last = text.lines().rev().find(|l| !l.trim().is_empty());
    last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
}

/// Container IDs: safe as a path component and a cgroup name.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

fn mount_overlay(rootfs: &Path, lower: &[String], upper: &Path, work: &Path) -> Result<()> {
    use nix::mount::{MsFlags, mount};
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|source| Error::Mount {
        action: "mount",
        path: rootfs.to_path_buf(),
        source,
    })
}

fn unmount(rootfs: &Path) -> Result<()> {
    nix::mount::umount2(rootfs, nix::mount::MntFlags::MNT_DETACH).map_err(|source| Error::Mount {
        action: "unmount",
        path: rootfs.to_path_buf(),
        source,
    })
}

/// Whether `path` is a mount point (its device differs from its parent's, or
/// /proc/self/mountinfo lists it).
fn is_mount_point(path: &Path) -> bool {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.to_string_lossy();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| unescape(mount_point) == target)
}

fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_checked() {
        assert!(check_id("t1").is_ok());
        assert!(check_id("web-1.a_b").is_ok());
        for bad in ["", "-x", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}

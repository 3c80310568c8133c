//! The low-level runtime: what `kite runtime ...` (a hidden subcommand of the
//! kite binary) does, through libcontainer.
//!
//! libcontainer forks and changes namespaces, which is only sound in a
//! single-threaded process, so these functions must run in a process of their
//! own (the kite binary re-executed, runc-style), never inside kite's tokio
//! runtime. [`crate::Runtime`] is the library side that spawns them.
//!
//! State lives under the `--root` directory (`<data-dir>/agent/runtime`), so
//! a container outlives the process that created it and a restarted kite can
//! find it again with `state`.

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{WaitStatus, waitpid};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Errors of the low-level runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libcontainer failed.
    #[error("container {id}: {source}")]
    Container {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: Box<libcontainer::error::LibcontainerError>,
    },
    /// The signal name or number is not known.
    #[error("unknown signal {0:?}")]
    Signal(String),
    /// Waiting for the container's process failed.
    #[error("waiting for container {id}: {source}")]
    Wait {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// The container has no process ID.
    #[error("container {0} has no process")]
    NoProcess(String),
}

/// One low-level operation.
#[derive(Clone, Debug)]
pub enum Operation {
    /// Creates the container from the bundle; its process waits for `start`.
    Create {
        /// The bundle directory (holds `config.json`).
        bundle: PathBuf,
    },
    /// Starts the user process of a created container.
    Start,
    /// Sends a signal to the container's init process (or to all of its processes).
    Kill {
        /// Signal name (`TERM`, `SIGKILL`) or number.
        signal: String,
        /// Signal every process in the container.
        all: bool,
    },
    /// Deletes a stopped container (or any, with `force`), with its cgroup.
    Delete {
        /// Kill it first if it still runs.
        force: bool,
    },
    /// Prints the container's state as JSON.
    State,
    /// Creates and starts the container, waits for it, deletes it, and exits with its code.
    Run {
        /// The bundle directory.
        bundle: PathBuf,
    },
}

/// The state `kite runtime state` prints.
#[derive(Debug, Serialize)]
pub struct StateReport {
    /// Container ID.
    pub id: String,
    /// `creating`, `created`, `running`, `stopped` or `paused`.
    pub status: String,
    /// Host PID of the init process, when there is one.
    pub pid: Option<i32>,
    /// Bundle directory.
    pub bundle: PathBuf,
}

/// Runs one operation on container `id` with state under `root`; returns the exit code for
/// the process (the container's own for [`Operation::Run`]).
pub fn execute(root: &Path, id: &str, operation: Operation) -> Result<i32, Error> {
    let err = |source| Error::Container {
        id: id.to_string(),
        source: Box::new(source),
    };
    match operation {
        Operation::Create { bundle } => {
            create(root, id, &bundle).map_err(err)?;
            Ok(0)
        }
        Operation::Start => {
            load(root, id).map_err(err)?.start().map_err(err)?;
            Ok(0)
        }
        Operation::Kill { signal, all } => {
            let signal = parse_signal(&signal)?;
            load(root, id)
                .map_err(err)?
                .kill(signal, all)
                .map_err(err)?;
            Ok(0)
        }
        Operation::Delete { force } => {
            load(root, id).map_err(err)?.delete(force).map_err(err)?;
            Ok(0)
        }
        Operation::State => {
            let report = state(root, id).map_err(err)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            Ok(0)
        }
        Operation::Run { bundle } => run(root, id, &bundle),
    }
}

/// The state of container `id`.
pub fn state(root: &Path, id: &str) -> Result<StateReport, libcontainer::error::LibcontainerError> {
    let container = load(root, id)?;
    let status = match container.status() {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    };
    Ok(StateReport {
        id: id.to_string(),
        status: status.to_string(),
        pid: container.pid().map(|p| p.as_raw()),
        bundle: container.bundle().clone(),
    })
}

fn create(
    root: &Path,
    id: &str,
    bundle: &Path,
) -> Result<Container, libcontainer::error::LibcontainerError> {
    ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .validate_id()?
        .with_root_path(root)?
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
}

fn load(root: &Path, id: &str) -> Result<Container, libcontainer::error::LibcontainerError> {
    let mut container = Container::load(root.join(id))?;
    container.refresh_status()?;
    Ok(container)
}

fn parse_signal(text: &str) -> Result<Signal, Error> {
    match text.parse::<i32>() {
        Ok(n) => Signal::try_from(n).map_err(|_| Error::Signal(text.to_string())),
        Err(_) => Signal::try_from(text).map_err(|_| Error::Signal(text.to_string())),
    }
}

/// Create, start, wait, delete: the foreground container `kite ctr run` shows.
fn run(root: &Path, id: &str, bundle: &Path) -> Result<i32, Error> {
    let err = |source| Error::Container {
        id: id.to_string(),
        source: Box::new(source),
    };
    let mut container = create(root, id, bundle).map_err(err)?;
    // libcontainer links its own nix: carry the PID over as a number.
    let pid = container
        .pid()
        .map(|p| nix::unistd::Pid::from_raw(p.as_raw()))
        .ok_or_else(|| Error::NoProcess(id.to_string()))?;
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(err(e));
    }
    // The init process is our child (libcontainer clones it as a sibling of its
    // intermediate process): wait for it here.
    let code = loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, signal, _)) => break 128 + signal as i32,
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(source) => {
                let _ = container.delete(true);
                return Err(Error::Wait {
                    id: id.to_string(),
                    source,
                });
            }
        }
    };
    // Kill anything the init left behind in the container, then remove it and its cgroup.
    container.delete(true).map_err(err)?;
    Ok(code)
}

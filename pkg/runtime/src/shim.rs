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
    /// The monitor could not start the container.
    #[error(transparent)]
    Monitor(Box<crate::monitor::Error>),
    /// The sandbox could not be set up.
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::Error),
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
    /// Runs another process in a running container, with this process's
    /// standard streams (or a terminal sent to `console_socket`); exits with its code.
    Exec(ExecOptions),
    /// Creates, starts and monitors the container (see [`crate::monitor`]);
    /// prints `started <pid>` once it runs.
    Monitor(crate::monitor::MonitorOptions),
}

/// A process to run in a container (`kubectl exec`).
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `KEY=value` pairs on top of the container's environment.
    pub env: Vec<String>,
    /// Give the process a terminal: libcontainer sends its master side to this
    /// Unix socket (the caller listens there).
    pub console_socket: Option<PathBuf>,
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
        Operation::Exec(options) => exec(root, id, &options),
        Operation::Monitor(options) => {
            let result = crate::monitor::run(root, id, &options, |started| {
                use std::io::Write;
                let mut out = std::io::stdout();
                let _ = writeln!(out, "started {}", started.pid);
                let _ = out.flush();
            });
            match result {
                Ok(_) => Ok(0),
                Err(e) => Err(Error::Monitor(Box::new(e))),
            }
        }
    }
}

/// Runs a process in the running container `id` and waits for it.
fn exec(root: &Path, id: &str, options: &ExecOptions) -> Result<i32, Error> {
    let err = |source| Error::Container {
        id: id.to_string(),
        source: Box::new(source),
    };
    let container = load(root, id).map_err(err)?;
    // The process runs as the container's user, as kubectl exec expects.
    let spec_path = container.bundle().join("config.json");
    let spec: serde_json::Value = std::fs::read(&spec_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let user = &spec["process"]["user"];
    let uid = user["uid"].as_u64().and_then(|u| u32::try_from(u).ok());
    let gid = user["gid"].as_u64().and_then(|g| u32::try_from(g).ok());
    let gids: Vec<u32> = user["additionalGids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_u64().and_then(|g| u32::try_from(g).ok()))
                .collect()
        })
        .unwrap_or_default();
    let env: std::collections::HashMap<String, String> = options
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(root)
        .map_err(err)?;
    let mut process_file = None;
    if let Some(socket) = &options.console_socket {
        // A terminal needs `process.terminal`, which only a process file sets.
        let mut process = spec["process"].clone();
        process["terminal"] = serde_json::Value::Bool(true);
        process["args"] = serde_json::json!(options.args);
        if let Some(list) = process["env"].as_array_mut() {
            for kv in &options.env {
                list.push(serde_json::Value::String(kv.clone()));
            }
        }
        let path = root
            .join(id)
            .join(format!("exec-{}.json", std::process::id()));
        std::fs::write(&path, serde_json::to_vec(&process).unwrap_or_default())
            .map_err(|e| err(libcontainer::error::LibcontainerError::OtherIO(e)))?;
        builder = builder.with_console_socket(Some(socket));
        process_file = Some(path);
    }
    let tenant = builder
        .as_tenant()
        .with_container_args(options.args.clone())
        .with_env(env)
        .with_user(uid)
        .with_group(gid)
        .with_additional_gids(gids)
        .with_process(process_file.as_ref())
        .with_detach(process_file.is_some());
    // libcontainer's intermediate process forks the exec'd process and exits:
    // as subreaper this process inherits it and can collect its exit status.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let pid = tenant.build();
    if let Some(path) = &process_file {
        let _ = std::fs::remove_file(path);
    }
    let pid = nix::unistd::Pid::from_raw(pid.map_err(err)?.as_raw());
    loop {
        match waitpid(nix::unistd::Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
            Ok(WaitStatus::Signaled(p, signal, _)) if p == pid => return Ok(128 + signal as i32),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(source) => {
                return Err(Error::Wait {
                    id: id.to_string(),
                    source,
                });
            }
        }
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

//! The container monitor: the process that owns one running container, as
//! conmon or containerd-shim do for other runtimes.
//!
//! `kite runtime monitor` runs in a session of its own (so it outlives kite),
//! creates the container with pipes for its output, starts it, writes the
//! output to the CRI log file, and when the container's init exits records how
//! (`exit.json` in the bundle, with `OOMKilled` read from the cgroup) and
//! exits itself. kite is free to restart meanwhile: everything it needs later
//! is in the bundle (`monitor.json` while running, `exit.json` afterwards).
//!
//! Single-threaded like the rest of [`crate::shim`]: libcontainer forks.

use crate::cgroup;
use crate::crilog::{self, Rotation, Stream};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What the monitor is asked to do.
#[derive(Clone, Debug)]
pub struct MonitorOptions {
    /// The bundle directory (holds `config.json`).
    pub bundle: PathBuf,
    /// The CRI log file the container's output goes to.
    pub log: PathBuf,
    /// Give the container a standard input others can write to (`<bundle>/stdin`,
    /// a FIFO), as `stdin: true` containers have; otherwise /dev/null.
    pub stdin: bool,
    /// Log rotation limits.
    pub rotation: Rotation,
}

/// `<bundle>/monitor.json`: written once the container runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    /// Host PID of the container's init process.
    pub pid: i32,
    /// PID of the monitor.
    pub monitor_pid: i32,
    /// When the container started (RFC 3339, nanoseconds).
    pub started_at: String,
}

/// `<bundle>/exit.json`: written when the container's init has exited.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Exited {
    /// Exit code (128 + N when killed by signal N).
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// When it started.
    pub started_at: String,
    /// When it exited.
    pub finished_at: String,
}

/// File names in the bundle.
pub const STARTED_FILE: &str = "monitor.json";
/// See [`Exited`].
pub const EXITED_FILE: &str = "exit.json";
/// The FIFO a `stdin` container reads.
pub const STDIN_FIFO: &str = "stdin";

/// Errors of the monitor before the container runs (afterwards it only logs).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libcontainer failed to create or start the container.
    #[error("container {id}: {source}")]
    Container {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: Box<libcontainer::error::LibcontainerError>,
    },
    /// Setting up pipes, files or the log failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The container has no process ID.
    #[error("container {0} has no process")]
    NoProcess(String),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Runs the monitor for container `id` (state under `root`): creates and starts
/// it, then calls `ready` with its [`Started`] record (the caller tells its own
/// parent and goes on), then copies output until the container exits.
pub fn run(
    root: &Path,
    id: &str,
    options: &MonitorOptions,
    ready: impl FnOnce(&Started),
) -> Result<Exited, Error> {
    // Out of kite's session and process group: a restart or a terminal's
    // signals must not reach the monitor.
    let _ = nix::unistd::setsid();
    // Processes the container's init leaves behind are reaped here, not by pid 1.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut log = crilog::Writer::open(&options.log, options.rotation)
        .map_err(io_error(format!("open log {}", options.log.display())))?;
    let (mut out_r, out_w) = io::pipe().map_err(io_error("pipe"))?;
    let (mut err_r, err_w) = io::pipe().map_err(io_error("pipe"))?;
    let stdin = open_stdin(&options.bundle, options.stdin)?;
    let container_err = |source| Error::Container {
        id: id.to_string(),
        source: Box::new(source),
    };
    let mut container = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .validate_id()
        .and_then(|b| b.with_root_path(root))
        .map_err(container_err)?
        .with_stdin(stdin.try_clone().map_err(io_error("stdin"))?)
        .with_stdout(out_w)
        .with_stderr(err_w)
        .as_init(&options.bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(container_err)?;
    let Some(pid) = container.pid().map(|p| Pid::from_raw(p.as_raw())) else {
        let _ = container.delete(true);
        return Err(Error::NoProcess(id.to_string()));
    };
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(container_err(e));
    }
    let started = Started {
        pid: pid.as_raw(),
        monitor_pid: std::process::id() as i32,
        started_at: crilog::timestamp(SystemTime::now()),
    };
    write_json(&options.bundle.join(STARTED_FILE), &started)
        .map_err(io_error("write monitor.json"))?;
    ready(&started);

    let status = copy_until_exit(pid, &mut out_r, &mut err_r, &mut log);
    let _ = log.flush_partial();
    let (exit_code, signal) = match status {
        Some(WaitStatus::Exited(_, code)) => (code, None),
        Some(WaitStatus::Signaled(_, signal, _)) => (128 + signal as i32, Some(signal as i32)),
        // Lost track of it (should not happen): report it as killed.
        _ => (137, Some(9)),
    };
    let exited = Exited {
        exit_code,
        signal,
        oom_killed: oom_killed(&options.bundle),
        started_at: started.started_at.clone(),
        finished_at: crilog::timestamp(SystemTime::now()),
    };
    write_json(&options.bundle.join(EXITED_FILE), &exited).map_err(io_error("write exit.json"))?;
    drop(stdin);
    Ok(exited)
}

fn open_stdin(bundle: &Path, wanted: bool) -> Result<File, Error> {
    if !wanted {
        return File::open("/dev/null").map_err(io_error("open /dev/null"));
    }
    let fifo = bundle.join(STDIN_FIFO);
    match nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::Error::EEXIST) => {}
        Err(e) => return Err(io_error(format!("mkfifo {}", fifo.display()))(e.into())),
    }
    // Read-write, so the container sees no end of input while nobody is attached.
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .map_err(io_error(format!("open {}", fifo.display())))
}

/// Copies the container's output to the log until its init exits and the
/// pipes are drained; returns how the init ended.
fn copy_until_exit(
    pid: Pid,
    out: &mut io::PipeReader,
    err: &mut io::PipeReader,
    log: &mut crilog::Writer,
) -> Option<WaitStatus> {
    let mut open = [true, true];
    let mut status = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if status.is_none() {
            status = reap(pid);
            if status.is_some() {
                // Processes the init left behind may hold the pipes: drain briefly.
                drain_deadline = Some(Instant::now() + Duration::from_millis(500));
            }
        }
        if !open[0] && !open[1] {
            if status.is_some() {
                return status;
            }
            // Output closed but the init still runs: just wait for it.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if drain_deadline.is_some_and(|d| Instant::now() >= d) {
            return status;
        }
        let ready = {
            let mut fds = Vec::new();
            if open[0] {
                fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
            }
            if open[1] {
                fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
            }
            let timeout = if status.is_some() { 50u16 } else { 200u16 };
            match poll(&mut fds, PollTimeout::from(timeout)) {
                Ok(0) | Err(_) => [false, false],
                Ok(_) => {
                    let hit = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                    let mut it = fds.iter();
                    let a = if open[0] {
                        it.next().is_some_and(hit)
                    } else {
                        false
                    };
                    let b = if open[1] {
                        it.next().is_some_and(hit)
                    } else {
                        false
                    };
                    [a, b]
                }
            }
        };
        for (i, (reader, stream)) in [(&mut *out, Stream::Stdout), (&mut *err, Stream::Stderr)]
            .into_iter()
            .enumerate()
        {
            if !ready[i] {
                continue;
            }
            match reader.read(&mut buf) {
                Ok(0) => open[i] = false,
                Ok(n) => {
                    // A full disk must not stop the container: drop the output.
                    let _ = log.write(stream, &buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => open[i] = false,
            }
        }
    }
}

/// The init's status once it has exited; reaps other orphans on the way (the
/// monitor is their subreaper).
fn reap(pid: Pid) -> Option<WaitStatus> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return None,
            Ok(status @ (WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _))) if p == pid => {
                return Some(status);
            }
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            // No children left: the init is gone without us seeing it.
            Err(_) => return Some(WaitStatus::Signaled(pid, nix::sys::signal::SIGKILL, false)),
        }
    }
}

/// Whether the OOM killer struck in the container's cgroup (v2 `memory.events`,
/// v1 `memory.oom_control`, both count `oom_kill`).
fn oom_killed(bundle: &Path) -> bool {
    let Ok(config) = fs::read(bundle.join("config.json")) else {
        return false;
    };
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&config) else {
        return false;
    };
    let Some(path) = spec["linux"]["cgroupsPath"].as_str() else {
        return false;
    };
    cgroup::container_dirs(Path::new("/sys/fs/cgroup"), Path::new(path))
        .iter()
        .flat_map(|dir| ["memory.events", "memory.oom_control"].map(|f| dir.join(f)))
        .filter_map(|file| fs::read_to_string(file).ok())
        .any(|text| oom_kill_count(&text) > 0)
}

fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("oom_kill "))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

fn write_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(value).unwrap_or_default())?;
    file.sync_all()?;
    fs::rename(tmp, path)
}

/// Reads `monitor.json` / `exit.json` of a bundle.
pub fn read_record<T: for<'de> Deserialize<'de>>(bundle: &Path, file: &str) -> Option<T> {
    serde_json::from_slice(&fs::read(bundle.join(file)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_are_counted_in_both_cgroup_versions() {
        let v2 = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kill_count(v2), 1);
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";
        assert_eq!(oom_kill_count(v1), 0);
    }

    #[test]
    fn records_round_trip_through_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let exited = Exited {
            exit_code: 137,
            signal: Some(9),
            oom_killed: true,
            started_at: "a".into(),
            finished_at: "b".into(),
        };
        write_json(&dir.path().join(EXITED_FILE), &exited).unwrap();
        let back: Exited = read_record(dir.path(), EXITED_FILE).unwrap();
        assert_eq!(back, exited);
        assert!(read_record::<Started>(dir.path(), STARTED_FILE).is_none());
    }
}

//! `kite runtime ...` (hidden): the low-level container runtime, runc-style.
//!
//! kite re-executes itself with this subcommand to create, start, kill and
//! delete containers: libcontainer forks and enters namespaces, which is only
//! sound in a single-threaded process, so this must never run inside the
//! tokio runtime. Exit code 125 means the runtime itself failed; `run` exits
//! with the container's code otherwise.

use crate::cli::{RuntimeArgs, RuntimeCommand};
use kite_runtime::shim::{self, Operation};
use std::process::ExitCode;

/// Exit code for a failure of the runtime itself (as runc and podman use it).
const RUNTIME_FAILED: u8 = 125;

/// Runs one operation and returns the process exit code.
pub fn run(args: RuntimeArgs) -> ExitCode {
    // libcontainer's own errors explain failures; its warnings (controllers this kernel
    // lacks) are noise on every run. RUST_LOG overrides.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let (id, operation) = match args.command {
        RuntimeCommand::Create { bundle, id } => (id, Operation::Create { bundle }),
        RuntimeCommand::Start { id } => (id, Operation::Start),
        RuntimeCommand::Kill { signal, all, id } => (id, Operation::Kill { signal, all }),
        RuntimeCommand::Delete { force, id } => (id, Operation::Delete { force }),
        RuntimeCommand::State { id } => (id, Operation::State),
        RuntimeCommand::Run { bundle, id } => (id, Operation::Run { bundle }),
        RuntimeCommand::Exec {
            env,
            console_socket,
            id,
            args,
        } => (
            id,
            Operation::Exec(shim::ExecOptions {
                args,
                env,
                console_socket,
            }),
        ),
        RuntimeCommand::Monitor {
            bundle,
            log,
            stdin,
            log_max_size,
            log_max_files,
            foreground,
            id,
        } => {
            if !foreground {
                return detach_monitor(&bundle);
            }
            (
                id,
                Operation::Monitor(kite_runtime::monitor::MonitorOptions {
                    bundle,
                    log,
                    stdin,
                    rotation: kite_runtime::crilog::Rotation {
                        max_size: log_max_size,
                        max_files: log_max_files,
                    },
                }),
            )
        }
        RuntimeCommand::Sandbox {
            hostname,
            host_network,
            host_ipc,
            dir,
        } => {
            let options = kite_runtime::sandbox::SandboxOptions {
                hostname,
                host_network,
                host_ipc,
            };
            return match kite_runtime::sandbox::create(&dir, &options) {
                Ok(_) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(RUNTIME_FAILED)
                }
            };
        }
    };
    if let Err(error) = std::fs::create_dir_all(&args.root) {
        eprintln!("error: cannot create {}: {error}", args.root.display());
        return ExitCode::from(RUNTIME_FAILED);
    }
    match shim::execute(&args.root, &id, operation) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(RUNTIME_FAILED)),
        Err(error) => {
            // The message already includes libcontainer's cause.
            eprintln!("error: {error}");
            ExitCode::from(RUNTIME_FAILED)
        }
    }
}

/// Runs the monitor in a detached copy of this process (`--foreground` added)
/// and exits once it reports the container started, so that the caller can
/// reap this process at once while the monitor lives on. The monitor's own
/// errors go to `<bundle>/monitor.log`, repeated here when it fails to start.
fn detach_monitor(bundle: &std::path::Path) -> ExitCode {
    use std::io::BufRead;
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(RUNTIME_FAILED)
    };
    let binary = match std::env::current_exe() {
        Ok(binary) => binary,
        Err(e) => return fail(format!("cannot find the kite binary: {e}")),
    };
    let log_path = bundle.join("monitor.log");
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
    {
        Ok(log) => log,
        Err(e) => return fail(format!("cannot open {}: {e}", log_path.display())),
    };
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // The container ID stays last.
    let id = args.pop().unwrap_or_default();
    args.push("--foreground".into());
    args.push(id);
    let mut child = match std::process::Command::new(binary)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return fail(format!("cannot start the monitor: {e}")),
    };
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    }
    if line.starts_with("started ") {
        print!("{line}");
        return ExitCode::SUCCESS;
    }
    let _ = child.wait();
    let detail = std::fs::read_to_string(&log_path).unwrap_or_default();
    let last = detail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("the monitor exited");
    eprintln!("{last}");
    ExitCode::from(RUNTIME_FAILED)
}

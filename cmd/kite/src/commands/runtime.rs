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

//! The `kite` binary: parses the command line and runs one subcommand.
//!
//! Each subcommand lives in `commands/`; components live in `pkg/*` and are
//! only wired together here.

// A binary has no public API: `pub` here means "used by sibling modules".
#![allow(unreachable_pub)]

mod cli;
mod commands;
mod config_file;
mod control_plane;
mod logging;
mod paths;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv = match config_file::expand_args(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(error) => return fail(&error),
    };
    let cli = match cli::Cli::command()
        .try_get_matches_from(argv)
        .and_then(|m| cli::Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(error) => return clap_error(error),
    };
    let result = match cli.command {
        // These two choose their own exit codes (a container's, or 125 for the runtime's own failure).
        cli::Command::Ctr(args) => return commands::ctr::run(args),
        cli::Command::Crictl(args) => return commands::crictl::run(args),
        cli::Command::Runtime(args) => return commands::runtime::run(args),
        cli::Command::Server(args) => commands::server::run(*args),
        cli::Command::Agent(args) => commands::agent::run(args),
        cli::Command::Kubectl(args) => commands::kubectl::run(args),
        cli::Command::Token(args) => commands::token::run(args),
        cli::Command::Certificate(args) => commands::certificate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Prints an error as one line and returns the failure exit code.
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}

/// Help and version go to stdout as usual; usage errors become one line.
fn clap_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let rendered = error.render().to_string();
            let line = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("error: invalid arguments");
            eprintln!("{line}");
            ExitCode::from(2)
        }
    }
}

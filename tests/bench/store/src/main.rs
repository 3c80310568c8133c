//! `kite-bench-store`: throughput and latency of kite-store against etcd 3.4.
//!
//! For each operation (create, compare-and-swap update, get, range over 10,000 keys, watch
//! delivery) and each number of concurrent callers (1, 16, 64), runs the operation for a
//! fixed time against kite-store (in-process, SQLite in a temp dir) and, with the `etcd`
//! feature, against a real etcd started on a free loopback port with its data in a temp
//! dir. Prints a Markdown table. Run it with `tests/bench/store.sh`.
//!
//! Reading the numbers: writes with one caller measure the disk's flush latency. On VMs
//! where waking a thread on an idle vCPU after an I/O completion waits for the next timer
//! tick, a flush costs ~4 ms unless something keeps the CPU busy (Go's spinning scheduler
//! does, for etcd); `TMPDIR=/dev/shm` takes the disk out and shows the stores' own cost.
//!
//! Arguments: `--seconds N` per measurement (default 2), `--quick` (1 and 16 callers only),
//! `--kite-only` (no etcd), `--only NAME` (operations whose name starts with NAME).

mod etcd_server;
mod stats;
mod target;
mod workload;

use std::time::Duration;

use stats::Row;
use target::Target;

/// Concurrent callers measured for every operation.
const CONCURRENCY: &[usize] = &[1, 16, 64];

fn main() {
    let mut seconds = 2.0;
    let mut concurrency = CONCURRENCY.to_vec();
    let mut kite_only = false;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage());
            }
            "--quick" => concurrency = vec![1, 16],
            "--kite-only" => kite_only = true,
            "--only" => {
                let name = args.next().unwrap_or_else(|| usage());
                only = Some(name);
            }
            _ => usage(),
        }
    }
    let per_cell = Duration::from_secs_f64(seconds);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => fail(&format!("cannot start the tokio runtime: {e}")),
    };
    runtime.block_on(async {
        let scratch = tempfile::tempdir_in(std::env::temp_dir())
            .unwrap_or_else(|e| fail(&format!("cannot create a temp dir: {e}")));
        let kite = Target::kite(&scratch.path().join("kite/state.db"));
        eprintln!(
            "kite-store: {}",
            scratch.path().join("kite/state.db").display()
        );
        let etcd = if kite_only {
            None
        } else {
            etcd_server::start(scratch.path()).await
        };
        let mut rows = Vec::new();
        let selected = workload::Operation::ALL.into_iter().filter(|op| {
            only.as_deref()
                .is_none_or(|name| op.name().starts_with(name))
        });
        for op in selected {
            for &callers in &concurrency {
                eprintln!("{} x{callers}: kite", op.name());
                let kite_stats = workload::run(&kite, op, callers, per_cell).await;
                let etcd_stats = match &etcd {
                    Some((_, target)) => {
                        eprintln!("{} x{callers}: etcd", op.name());
                        Some(workload::run(target, op, callers, per_cell).await)
                    }
                    None => None,
                };
                rows.push(Row {
                    operation: op.name(),
                    callers,
                    kite: kite_stats,
                    etcd: etcd_stats,
                });
            }
        }
        if let Some((server, _)) = etcd {
            server.stop();
        }
        println!("{}", stats::table(&rows));
    });
}

fn usage() -> ! {
    fail("usage: kite-bench-store [--seconds N] [--quick] [--kite-only] [--only OPERATION]")
}

fn fail(message: &str) -> ! {
    eprintln!("kite-bench-store: {message}");
    std::process::exit(2)
}

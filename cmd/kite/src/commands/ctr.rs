//! `kite ctr`: images and containers on this node, with k3s's `ctr` habits.

use crate::cli::{ContainersCommand, CtrArgs, CtrCommand, CtrRunArgs, ImagesCommand};
use crate::paths::{self, DataDir};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kite_runtime::container::Stdio3;
use kite_runtime::unpack::OverlayWhiteouts;
use kite_runtime::{ContainerSpec, Limits, Reference, Runtime, RuntimeConfig, Store};
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

/// Runs `kite ctr ...` and returns the exit code.
pub fn run(args: CtrArgs) -> ExitCode {
    let data_dir = DataDir::new(paths::data_dir(args.data_dir.as_deref()));
    let result = (|| {
        let store = Store::open(data_dir.agent()).with_context(|| {
            format!(
                "cannot open the image store in {}",
                data_dir.agent().display()
            )
        })?;
        match args.command {
            CtrCommand::Images(ImagesCommand::Import { files }) => import(&store, &files),
            CtrCommand::Images(ImagesCommand::Pull {
                reference,
                user,
                private_registry,
            }) => pull(&store, &reference, user.as_deref(), &private_registry),
            CtrCommand::Images(ImagesCommand::Ls { quiet }) => list(&store, quiet),
            CtrCommand::Images(ImagesCommand::Rm { refs }) => remove(&runtime(store)?, &refs),
            CtrCommand::Containers(ContainersCommand::Ls { quiet }) => {
                list_containers(&runtime(store)?, quiet)
            }
            CtrCommand::Containers(ContainersCommand::Rm { ids }) => {
                let runtime = runtime(store)?;
                for id in ids {
                    runtime
                        .delete(&id, true)
                        .with_context(|| format!("cannot remove container {id}"))?;
                    println!("{id}");
                }
                Ok(0)
            }
            CtrCommand::Run(args) => run_container(store, *args),
        }
    })();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(store: Store) -> Result<Runtime> {
    let binary = std::env::current_exe().context("cannot find the kite binary")?;
    Ok(Runtime::new(store, RuntimeConfig::for_binary(binary)))
}

fn import(store: &Store, files: &[std::path::PathBuf]) -> Result<i32> {
    let tty = std::io::stderr().is_terminal();
    for file in files {
        let (reader, size): (Box<dyn Read>, Option<u64>) = if file.as_os_str() == "-" {
            (Box::new(std::io::stdin().lock()), None)
        } else {
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let size = f.metadata().ok().map(|m| m.len());
            (Box::new(f), size)
        };
        let bar = if tty {
            let bar = size.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(short_name(file));
            Some(bar)
        } else {
            eprintln!("importing {}", file.display());
            None
        };
        let reader: Box<dyn Read> = match &bar {
            Some(bar) => Box::new(bar.wrap_read(reader)),
            None => reader,
        };
        let result = kite_runtime::import::import(store, reader, &OverlayWhiteouts);
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let images = result.with_context(|| format!("cannot import {}", file.display()))?;
        for image in images {
            println!("unpacking {} ({})...done", image.name, image.digest);
        }
    }
    Ok(0)
}

fn pull(store: &Store, text: &str, user: Option<&str>, registries: &Path) -> Result<i32> {
    let reference =
        Reference::parse(text).with_context(|| format!("cannot parse image name {text:?}"))?;
    let registries = kite_runtime::registries::Registries::load(registries)?;
    let mut secrets = Vec::new();
    if let Some(user) = user {
        let (name, password) = user
            .split_once(':')
            .context("--user must be USER:PASSWORD")?;
        secrets.push(kite_runtime::pull::Credential {
            server: reference.registry().to_string(),
            auth: kite_runtime::pull::Auth::Basic(name.into(), password.into()),
        });
    }
    let puller = kite_runtime::pull::Puller::new(registries);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let tty = std::io::stderr().is_terminal();
    let image = runtime.block_on(puller.pull(store, &reference, &secrets, &|digest, size| {
        if tty {
            eprintln!("{digest}: {} done", human_size(size));
        }
    }))?;
    println!(
        "{}: {} ({})",
        reference,
        image.digest,
        human_size(image.size)
    );
    Ok(0)
}

fn short_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn list(store: &Store, quiet: bool) -> Result<i32> {
    let images = store.list()?;
    if quiet {
        for image in images {
            println!("{}", image.name);
        }
        return Ok(0);
    }
    let rows: Vec<[String; 4]> = images
        .iter()
        .map(|i| {
            [
                i.name.clone(),
                i.media_type.clone(),
                i.digest.to_string(),
                human_size(i.size),
            ]
        })
        .collect();
    let header = ["REF", "TYPE", "DIGEST", "SIZE"].map(String::from);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        println!("{}", line.join(" ").trim_end());
    }
    Ok(0)
}

/// Sizes as ctr prints them: `1.9 MiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn remove(runtime: &Runtime, refs: &[String]) -> Result<i32> {
    for text in refs {
        let reference = Reference::parse(text)?;
        // An image a container (running or not) was made from stays.
        let image = runtime
            .remove_image(&reference)
            .with_context(|| format!("cannot remove {text}"))?;
        println!("{}", image.name);
    }
    Ok(0)
}

fn run_container(store: Store, args: CtrRunArgs) -> Result<i32> {
    if !paths::is_root() {
        bail!("kite ctr run needs root (it mounts overlayfs and creates namespaces and cgroups)");
    }
    let reference = Reference::parse(&args.image)?;
    let runtime = runtime(store)?;
    let spec = ContainerSpec {
        command: (!args.command.is_empty()).then(|| args.command.clone()),
        args: None,
        env: args.env,
        cwd: args.cwd,
        user: args.user,
        hostname: None,
        limits: Limits {
            memory: args.memory_limit,
            pids: args.pids_limit,
            cpu_quota: args.cpus.map(|c| (c * 100_000.0).round() as i64),
            cpu_period: args.cpus.map(|_| 100_000),
            cpu_shares: None,
        },
        host_network: args.net_host,
        ..ContainerSpec::default()
    };
    let stdio = Stdio3 {
        stdin: Some(std::process::Stdio::inherit()),
        ..Stdio3::default()
    };
    if args.detach {
        runtime
            .create(&args.id, &reference, &spec, Stdio3::default())
            .and_then(|()| runtime.start(&args.id))
            .with_context(|| format!("cannot run container {}", args.id))?;
        println!("{}", args.id);
        return Ok(0);
    }
    let code = runtime
        .run(&args.id, &reference, &spec, stdio, args.rm)
        .with_context(|| format!("cannot run container {}", args.id))?;
    Ok(code)
}

fn list_containers(runtime: &Runtime, quiet: bool) -> Result<i32> {
    let ids = runtime.list()?;
    if quiet {
        for id in ids {
            println!("{id}");
        }
        return Ok(0);
    }
    println!("{:<24} {:<10} PID", "CONTAINER", "STATUS");
    for id in ids {
        // A container run in the foreground without --rm has no runtime state left: it stopped.
        let (status, pid) = match runtime.state(&id) {
            Ok(state) => (
                state["status"].as_str().unwrap_or("unknown").to_string(),
                state["pid"]
                    .as_i64()
                    .map_or_else(|| "-".to_string(), |p| p.to_string()),
            ),
            Err(_) => ("stopped".to_string(), "-".to_string()),
        };
        println!("{id:<24} {status:<10} {pid}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_ctr() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2_150_400), "2.1 MiB");
    }
}

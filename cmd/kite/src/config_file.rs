//! `--config` files: YAML whose keys are the long flag names.
//!
//! Like k3s, the file is turned into command-line flags placed before the
//! user's own, so the precedence is: flags, then `KITE_*` environment
//! variables, then the file, then defaults. A repeatable flag given in both
//! the file and on the command line keeps the values of both.

use anyhow::{Result, bail};
use clap::CommandFactory;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The config file read when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/kite/config.yaml";

/// Returns `argv` with the config file's settings inserted after the subcommand.
pub fn expand_args(argv: Vec<OsString>) -> Result<Vec<OsString>> {
    let Some(sub_index) = argv
        .iter()
        .skip(1)
        .position(|a| a == "server" || a == "agent")
        .map(|i| i + 1)
    else {
        return Ok(argv);
    };
    // Only a subcommand in first position is one; `kite kubectl get server` is not.
    if sub_index != 1 {
        return Ok(argv);
    }
    let subcommand = argv[sub_index].to_string_lossy().into_owned();
    let (path, explicit) = match config_flag(&argv[sub_index + 1..]) {
        Some(path) => (path, true),
        None => match std::env::var_os("KITE_CONFIG_FILE").filter(|v| !v.is_empty()) {
            Some(path) => (PathBuf::from(path), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => return Ok(argv),
        Err(e) => bail!("--config: cannot read {}: {e}", path.display()),
    };
    let injected = flags_from_yaml(&subcommand, &path, &text)?;
    let mut out = argv;
    let tail = out.split_off(sub_index + 1);
    out.extend(injected);
    out.extend(tail);
    Ok(out)
}

/// The value of `-c`/`--config` among the subcommand's arguments, if given.
fn config_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            break;
        }
        if arg == "-c" || arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
        if let Some(value) = arg
            .strip_prefix("-c")
            .filter(|v| !v.is_empty() && !arg.starts_with("--"))
        {
            return Some(PathBuf::from(value.trim_start_matches('=')));
        }
    }
    None
}

/// Turns the YAML document into flags for `subcommand`, rejecting unknown keys.
fn flags_from_yaml(subcommand: &str, path: &Path, text: &str) -> Result<Vec<OsString>> {
    let document: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            // The parser's message carries a multi-line source excerpt; its first line says it all.
            let first = e.to_string();
            let first = first
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            anyhow::anyhow!("--config: {} is not valid YAML: {first}", path.display())
        })?
    };
    let serde_json::Value::Object(map) = document else {
        bail!(
            "--config: {} must be a mapping of flag names to values",
            path.display()
        );
    };
    let command = crate::cli::Cli::command();
    let Some(sub) = command.find_subcommand(subcommand) else {
        return Ok(Vec::new());
    };
    let mut flags = Vec::new();
    let mut seen = BTreeSet::new();
    for (key, value) in map {
        let Some(arg) = sub
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
        else {
            bail!(
                "--config: unknown key {key:?} in {} (keys are the long flag names of `kite {subcommand}`, e.g. tls-san)",
                path.display()
            );
        };
        seen.insert(key.clone());
        if arg
            .get_env()
            .is_some_and(|env| std::env::var_os(env).is_some())
        {
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        let repeatable = matches!(arg.get_action(), clap::ArgAction::Append);
        match value {
            serde_json::Value::Bool(on) if !takes_value => {
                if on {
                    flags.push(OsString::from(format!("--{key}")));
                }
            }
            serde_json::Value::Array(items) => {
                if !repeatable {
                    bail!(
                        "--config: key {key:?} in {} takes one value, not a list",
                        path.display()
                    );
                }
                for item in items {
                    flags.push(OsString::from(format!(
                        "--{key}={}",
                        scalar(&key, path, &item)?
                    )));
                }
            }
            other => {
                flags.push(OsString::from(format!(
                    "--{key}={}",
                    scalar(&key, path, &other)?
                )));
            }
        }
    }
    Ok(flags)
}

fn scalar(key: &str, path: &Path, value: &serde_json::Value) -> Result<String> {
    match value {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => bail!(
            "--config: key {key:?} in {} must be a string, number or list of them",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write");
        file
    }

    #[test]
    fn config_values_are_inserted_before_the_users_flags() {
        let file = write("https-listen-port: 7443\ntls-san:\n  - a.example\n  - 10.0.0.9\n");
        let path = file.path().to_string_lossy().into_owned();
        let out = expand_args(args(&[
            "kite",
            "server",
            "-c",
            &path,
            "--https-listen-port",
            "8443",
        ]))
        .expect("expand");
        assert_eq!(
            out,
            args(&[
                "kite",
                "server",
                "--https-listen-port=7443",
                "--tls-san=a.example",
                "--tls-san=10.0.0.9",
                "-c",
                &path,
                "--https-listen-port",
                "8443",
            ])
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let file = write("no-such-flag: 1\n");
        let path = file.path().to_string_lossy().into_owned();
        let error = expand_args(args(&["kite", "server", "--config", &path]))
            .expect_err("unknown key")
            .to_string();
        assert!(error.contains("unknown key \"no-such-flag\""), "{error}");
        assert!(error.contains(&path), "{error}");
    }

    #[test]
    fn an_explicit_missing_config_is_an_error_but_the_default_is_optional() {
        let error = expand_args(args(&["kite", "server", "--config=/nonexistent/kite.yaml"]))
            .expect_err("missing")
            .to_string();
        assert!(
            error.starts_with("--config: cannot read /nonexistent/kite.yaml"),
            "{error}"
        );
    }

    #[test]
    fn other_subcommands_are_left_alone() {
        let argv = args(&["kite", "kubectl", "get", "server"]);
        assert_eq!(expand_args(argv.clone()).expect("expand"), argv);
    }

    #[test]
    fn a_list_for_a_single_valued_flag_is_rejected() {
        let file = write("node-name: [a, b]\n");
        let path = file.path().to_string_lossy().into_owned();
        let error = expand_args(args(&["kite", "server", "-c", &path]))
            .expect_err("list")
            .to_string();
        assert!(error.contains("takes one value"), "{error}");
    }
}

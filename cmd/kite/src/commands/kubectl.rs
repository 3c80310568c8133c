//! `kite kubectl`: runs the kubectl on PATH with the admin kubeconfig.

use crate::cli::KubectlArgs;
use crate::paths;
use anyhow::{Result, bail};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// Replaces this process with kubectl.
pub fn run(args: KubectlArgs) -> Result<()> {
    let Some(kubectl) = find_on_path("kubectl") else {
        bail!(
            "kite kubectl: no `kubectl` on PATH; install it (e.g. `apt-get install kubectl`) \
             or use any kubectl with KUBECONFIG={}",
            paths::default_kubeconfig().display()
        );
    };
    let mut command = std::process::Command::new(&kubectl);
    command.args(&args.args);
    if std::env::var_os("KUBECONFIG").is_none() {
        let written = paths::default_kubeconfig();
        let kubeconfig = if written.exists() {
            written
        } else {
            paths::DataDir::new(paths::data_dir(None)).admin_kubeconfig()
        };
        command.env("KUBECONFIG", kubeconfig);
    }
    let error = command.exec();
    bail!("kite kubectl: cannot run {}: {error}", kubectl.display())
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

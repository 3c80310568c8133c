//! `kite certificate check`: a table of every certificate and its expiry.

use crate::cli::{CertificateArgs, CertificateCommand};
use crate::paths::{self, DataDir};
use anyhow::{Context, Result};

/// Runs a `kite certificate` subcommand.
pub fn run(args: CertificateArgs) -> Result<()> {
    match args.command {
        CertificateCommand::Check(args) => {
            let dir = DataDir::new(paths::data_dir(args.data_dir.as_deref())).tls();
            let certs = kite_pki::check(&dir)
                .with_context(|| format!("cannot read certificates in {}", dir.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "no certificates in {} (has `kite server` run with this --data-dir?)",
                dir.display()
            );
            print!("{}", kite_pki::render_table(&certs));
            Ok(())
        }
    }
}

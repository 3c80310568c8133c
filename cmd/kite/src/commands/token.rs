//! `kite token`: prints the join token agents use.

use crate::cli::DataDirArgs;
use crate::paths::{self, DataDir};
use anyhow::{Context, Result};

/// Prints `<data-dir>/server/token`.
pub fn run(args: DataDirArgs) -> Result<()> {
    let dir = DataDir::new(paths::data_dir(args.data_dir.as_deref()));
    let path = dir.token();
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the join token at {} (has `kite server` run with this --data-dir?)",
            path.display()
        )
    })?;
    println!("{}", token.trim());
    Ok(())
}

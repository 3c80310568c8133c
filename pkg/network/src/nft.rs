//! Running `nft -f -`: a script is one kernel transaction, applied whole or
//! not at all, which is what lets kite replace or patch its tables atomically.

use std::io::Write;
use std::process::{Command, Stdio};

/// Applies `script`; the error carries what `nft` printed.
pub fn apply(script: &str) -> std::io::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "nft: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

//! `kite crictl exec --tty`: the kubelet's terminal exec ([`kite_kubelet::tty`])
//! wired to this process's terminal, put in raw mode for the session so that
//! keys reach the container's terminal as typed.

use anyhow::{Context, Result, bail};
use kite_kubelet::server::{StreamIo, TerminalSize};
use kite_runtime::Runtime;
use rustix::termios::{self, OptionalActions, Termios};

/// Runs `command` in container `id` on a new terminal; returns its exit code.
pub(super) fn exec(runtime: &Runtime, id: &str, command: &[String], stdin: bool) -> Result<i32> {
    let input = std::io::stdin();
    if !termios::isatty(&input) {
        bail!("--tty needs a terminal on standard input");
    }
    let size = termios::tcgetwinsize(&input).ok();
    let saved = termios::tcgetattr(&input).context("cannot read the terminal's settings")?;
    let mut raw = saved.clone();
    raw.make_raw();
    termios::tcsetattr(&input, OptionalActions::Now, &raw)
        .context("cannot put the terminal in raw mode")?;
    let _restore = Restore(saved);
    let async_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (resize_tx, resize_rx) = tokio::sync::mpsc::channel(1);
    if let Some(size) = size {
        let _ = resize_tx.try_send(TerminalSize {
            width: size.ws_col,
            height: size.ws_row,
        });
    }
    let io = StreamIo {
        stdin: stdin.then(|| Box::new(tokio::io::stdin()) as _),
        stdout: Some(Box::new(tokio::io::stdout())),
        stderr: None,
        tty: true,
        resize: Some(resize_rx),
    };
    let code = async_runtime.block_on(kite_kubelet::tty::exec(runtime, id, command, io));
    // tokio's stdin reader blocks in a thread of its own: do not wait for it.
    async_runtime.shutdown_background();
    code.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Puts the terminal's settings back when the session ends, however it ends.
struct Restore(Termios);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
    }
}

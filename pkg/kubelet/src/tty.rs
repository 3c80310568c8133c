//! Exec with a terminal: `kite runtime exec --console-socket` has
//! libcontainer make the process's terminal and send its master side over a
//! Unix socket (SCM_RIGHTS); the session's stdin and stdout are then copied
//! to and from that master, and resize messages set its window size.

use crate::server::{BackendError, StreamIo, TerminalSize};
use kite_runtime::Runtime;
use rustix::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long the runtime may take to hand over the terminal.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `command` in container `id` on a new terminal; resolves to its exit code.
pub async fn exec(
    runtime: &Runtime,
    id: &str,
    command: &[String],
    io: StreamIo,
) -> Result<i32, BackendError> {
    let internal = |what: &str, e: &dyn std::fmt::Display| {
        BackendError::Internal(format!("exec with a terminal: {what}: {e}"))
    };
    let socket = SocketPath::new();
    let listener =
        tokio::net::UnixListener::bind(&socket.0).map_err(|e| internal("console socket", &e))?;
    let mut cmd = tokio::process::Command::from(runtime.exec_command(
        id,
        command,
        &["TERM=xterm".to_string()],
        Some(&socket.0),
    ));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| internal("cannot run kite runtime exec", &e))?;
    let accepted = tokio::select! {
        accepted = tokio::time::timeout(CONSOLE_TIMEOUT, listener.accept()) => accepted,
        status = child.wait() => {
            let mut message = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = stderr.read_to_string(&mut message).await;
            }
            return match status {
                Ok(s) if message.trim().is_empty() => Ok(s.code().unwrap_or(137)),
                _ => Err(BackendError::Internal(message.trim().to_string())),
            };
        }
    };
    let (stream, _) = accepted
        .map_err(|e| internal("console socket", &e))?
        .map_err(|e| internal("console socket", &e))?;
    drop(listener);
    let stream = stream
        .into_std()
        .map_err(|e| internal("console socket", &e))?;
    let master = tokio::task::spawn_blocking(move || receive_fd(stream))
        .await
        .map_err(|e| internal("console socket", &e))?
        .map_err(|e| internal("receiving the terminal", &e))?;
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| internal("terminal", &e));
    let reader = tokio::fs::File::from_std(std::fs::File::from(dup(&master)?));
    let mut writer = tokio::fs::File::from_std(std::fs::File::from(dup(&master)?));
    let StreamIo {
        stdin,
        stdout,
        resize,
        ..
    } = io;
    let resize_task = resize.map(|mut rx| {
        tokio::spawn(async move {
            while let Some(size) = rx.recv().await {
                set_size(&master, size);
            }
        })
    });
    let stdin_task = stdin.map(|mut from| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut writer).await;
            // Input ended: end of file for the terminal's reader (^D).
            let _ = writer.write_all(&[4]).await;
        })
    });
    let output = async move {
        let mut reader = reader;
        match stdout {
            Some(mut to) => {
                // The master reports EIO once the process and its children
                // closed the terminal: that is the end of output.
                let _ = tokio::io::copy(&mut reader, &mut to).await;
                let _ = to.shutdown().await;
            }
            None => {
                let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
            }
        }
    };
    let (status, ()) = tokio::join!(child.wait(), output);
    for task in [stdin_task, resize_task].into_iter().flatten() {
        task.abort();
    }
    let status = status.map_err(|e| internal("wait", &e))?;
    Ok(status.code().unwrap_or(137))
}

fn set_size(master: &OwnedFd, size: TerminalSize) {
    let winsize = rustix::termios::Winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    if let Err(error) = rustix::termios::tcsetwinsize(master, winsize) {
        tracing::debug!(%error, "cannot resize the terminal");
    }
}

/// Receives the one file descriptor libcontainer sends on the console socket.
fn receive_fd(stream: std::os::unix::net::UnixStream) -> std::io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    use std::mem::MaybeUninit;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CONSOLE_TIMEOUT))?;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut data = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut data)];
    recvmsg(&stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err(std::io::Error::other(
        "no terminal received on the console socket",
    ))
}

/// A console socket path, removed when dropped.
struct SocketPath(PathBuf);

impl SocketPath {
    fn new() -> Self {
        // Socket paths are limited to 108 bytes: the temporary directory, not the bundle.
        let name = format!("kite-console-{}.sock", rand::random::<u64>());
        Self(std::env::temp_dir().join(name))
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

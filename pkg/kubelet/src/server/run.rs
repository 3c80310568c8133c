//! `/run/{namespace}/{pod}/{container}?cmd=...`: the kubelet's non-streaming
//! exec. The command is the `cmd` parameter split on spaces (kube keeps this
//! legacy form for `/run`); the answer is the command's standard output
//! followed by its standard error, or a 500 naming the exit code, as the
//! kubelet's `RunInContainer` answers.

use super::http::{Body, full, text};
use super::query::Query;
use super::{Backend, ContainerRef, StreamIo};
use http::{Response, StatusCode, header};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// A writer that keeps everything written to it.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<u8>>>);

impl Collected {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl AsyncWrite for Collected {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs the request's command in `target` and answers with its output.
pub async fn serve(
    backend: Arc<dyn Backend>,
    target: ContainerRef,
    query: &Query,
) -> Response<Body> {
    let command: Vec<String> = query
        .get("cmd")
        .unwrap_or("")
        .split(' ')
        .filter(|part| !part.is_empty())
        .map(str::to_string)
        .collect();
    if command.is_empty() {
        return text(StatusCode::BAD_REQUEST, "missing cmd parameter");
    }
    let (stdout, stderr) = (Collected::default(), Collected::default());
    let io = StreamIo {
        stdin: None,
        stdout: Some(Box::new(stdout.clone())),
        stderr: Some(Box::new(stderr.clone())),
        tty: false,
        resize: None,
    };
    match backend.exec(target, command.clone(), io).await {
        Ok(0) => {
            let mut output = stdout.take();
            output.extend(stderr.take());
            let mut response = Response::new(full(output));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Ok(code) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "command '{}' exited with {code}: {}",
                command.join(" "),
                String::from_utf8_lossy(&stderr.take())
            ),
        ),
        Err(error) => super::http::error(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn what_is_written_is_kept() {
        let sink = Collected::default();
        let mut writer = sink.clone();
        writer.write_all(b"hello ").await.unwrap();
        writer.write_all(b"world").await.unwrap();
        assert_eq!(sink.take(), b"hello world");
        assert!(sink.take().is_empty());
    }
}

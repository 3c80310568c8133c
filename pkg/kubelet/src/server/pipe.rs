//! Byte streams multiplexed over one connection (SPDY streams, WebSocket
//! channels): what a handler reads is a channel of chunks the connection's
//! read loop fills, what it writes becomes packets queued for the
//! connection's write loop, with back-pressure from that queue.

use bytes::Bytes;
use futures::future::BoxFuture;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// The largest packet a writer queues.
const MAX_PACKET: usize = 32 * 1024;

/// What the write loop of a connection sends.
#[derive(Debug)]
pub enum Out<C> {
    /// Bytes on stream/channel `id`; `fin` ends the sender's side.
    Data {
        /// Stream ID or channel number.
        id: u32,
        /// The bytes.
        data: Bytes,
        /// Last packet of the stream.
        fin: bool,
    },
    /// A protocol frame of its own (SPDY control frames).
    Control(C),
    /// Close the connection once everything before is written.
    Close,
}

/// Reads one stream's incoming chunks as bytes; EOF when the sender goes.
pub struct PacketReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl PacketReader {
    /// A reader over `rx`.
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        Self {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl AsyncRead for PacketReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.chunk.is_empty() {
            match ready!(self.rx.poll_recv(cx)) {
                Some(chunk) => self.chunk = chunk,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.chunk.len().min(buf.remaining());
        let part = self.chunk.split_to(n);
        buf.put_slice(&part);
        Poll::Ready(Ok(()))
    }
}

type Permit<C> = Result<mpsc::OwnedPermit<Out<C>>, mpsc::error::SendError<()>>;

/// Writes to one stream as packets on the connection's queue; shutdown sends
/// the stream's end (`fin`).
pub struct PacketWriter<C: Send + 'static> {
    tx: mpsc::Sender<Out<C>>,
    id: u32,
    reserving: Option<BoxFuture<'static, Permit<C>>>,
}

impl<C: Send + 'static> PacketWriter<C> {
    /// A writer for stream `id` on the queue `tx`.
    pub fn new(tx: mpsc::Sender<Out<C>>, id: u32) -> Self {
        Self {
            tx,
            id,
            reserving: None,
        }
    }

    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<mpsc::OwnedPermit<Out<C>>>> {
        let tx = self.tx.clone();
        let future = self
            .reserving
            .get_or_insert_with(|| Box::pin(tx.reserve_owned()));
        let permit = ready!(future.as_mut().poll(cx));
        self.reserving = None;
        Poll::Ready(permit.map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe)))
    }
}

impl<C: Send + 'static> AsyncWrite for PacketWriter<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let permit = ready!(self.poll_permit(cx))?;
        let n = buf.len().min(MAX_PACKET);
        permit.send(Out::Data {
            id: self.id,
            data: Bytes::copy_from_slice(&buf[..n]),
            fin: false,
        });
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let permit = ready!(self.poll_permit(cx))?;
        permit.send(Out::Data {
            id: self.id,
            data: Bytes::new(),
            fin: true,
        });
        Poll::Ready(Ok(()))
    }
}

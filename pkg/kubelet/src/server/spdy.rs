//! SPDY/3.1 as Kubernetes streams use it (kubectl exec, attach and
//! port-forward before WebSocket, and inside the WebSocket port-forward
//! tunnel): the frame codec, header blocks compressed with zlib and the
//! SPDY/3 dictionary (one compression context per direction, each block
//! ended by a sync flush), and a server-side session that answers every
//! client stream with SYN_REPLY, routes DATA to it and answers PINGs.
//!
//! Flow control is not enforced (WINDOW_UPDATE is ignored and never sent):
//! Go's spdystream, the only peer, does not enforce it either.

use super::pipe::{Out, PacketReader, PacketWriter};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::collections::HashMap;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The SPDY/3 header compression dictionary (1423 bytes, as Go's spdystream has it).
pub const DICTIONARY: &[u8] = include_bytes!("spdy3.dict");

const VERSION: u16 = 3;
/// Frames larger than this are refused (the wire limit is 16 MiB).
const MAX_FRAME: usize = 1 << 24;
/// Decompressed header blocks larger than this are refused.
const MAX_HEADERS: usize = 1 << 20;

/// `FLAG_FIN`: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// `FLAG_UNIDIRECTIONAL` (SYN_STREAM): the receiver will not send.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// Header names (lower case) and values; a name may repeat.
pub type Headers = Vec<(String, String)>;

/// One SPDY/3.1 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// DATA.
    Data {
        /// Stream ID.
        stream: u32,
        /// FLAG_FIN.
        fin: bool,
        /// Payload.
        data: Bytes,
    },
    /// SYN_STREAM: a new stream.
    SynStream {
        /// Stream ID (odd from clients).
        stream: u32,
        /// The stream it belongs to (server push), usually 0.
        associated: u32,
        /// Priority, 0 (highest) to 7.
        priority: u8,
        /// FLAG_FIN, FLAG_UNIDIRECTIONAL.
        flags: u8,
        /// Its headers.
        headers: Headers,
    },
    /// SYN_REPLY: the stream is accepted.
    SynReply {
        /// Stream ID.
        stream: u32,
        /// FLAG_FIN.
        flags: u8,
        /// Its headers.
        headers: Headers,
    },
    /// RST_STREAM: the stream is aborted.
    RstStream {
        /// Stream ID.
        stream: u32,
        /// Status code (1 protocol error, 5 cancel, ...).
        status: u32,
    },
    /// SETTINGS: `(flags, id, value)` entries.
    Settings {
        /// FLAG_SETTINGS_CLEAR_SETTINGS.
        flags: u8,
        /// The settings.
        entries: Vec<(u8, u32, u32)>,
    },
    /// PING, echoed by the receiver.
    Ping {
        /// Its ID.
        id: u32,
    },
    /// GOAWAY: no new streams.
    GoAway {
        /// The last stream the sender accepted.
        last_good: u32,
        /// Status code.
        status: u32,
    },
    /// HEADERS: more headers for a stream.
    Headers {
        /// Stream ID.
        stream: u32,
        /// FLAG_FIN.
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// WINDOW_UPDATE.
    WindowUpdate {
        /// Stream ID.
        stream: u32,
        /// Window increase.
        delta: u32,
    },
    /// A control frame of a type SPDY/3.1 does not define (ignored, as the spec says).
    Unknown {
        /// Its type.
        kind: u16,
    },
}

impl Frame {
    /// The header value `name` of a SYN_STREAM, SYN_REPLY or HEADERS frame.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            Self::SynStream { headers, .. }
            | Self::SynReply { headers, .. }
            | Self::Headers { headers, .. } => header(headers, name),
            _ => None,
        }
    }
}

/// The first value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Writes frames; owns the sending direction's compression context.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// A fresh compression context primed with the dictionary.
    pub fn new() -> Self {
        let mut deflate = Compress::new(Compression::best(), true);
        // Fails only for a stream that already produced output.
        let _ = deflate.set_dictionary(DICTIONARY);
        Self { deflate }
    }

    /// Appends `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> io::Result<()> {
        if let Frame::Data { stream, fin, data } = frame {
            if data.len() >= MAX_FRAME {
                return Err(invalid("data frame too large"));
            }
            out.put_u32(stream & 0x7fff_ffff);
            out.put_u32((u32::from(*fin) << 24) | data.len() as u32);
            out.put_slice(data);
            return Ok(());
        }
        let (kind, flags, body) = match frame {
            Frame::Data { .. } => return Err(invalid("a data frame has no control header")),
            Frame::SynStream {
                stream,
                associated,
                priority,
                flags,
                headers,
            } => {
                let mut body = BytesMut::new();
                body.put_u32(stream & 0x7fff_ffff);
                body.put_u32(associated & 0x7fff_ffff);
                body.put_u8((priority & 0x7) << 5);
                body.put_u8(0);
                body.put_slice(&self.header_block(headers)?);
                (1, *flags, body)
            }
            Frame::SynReply {
                stream,
                flags,
                headers,
            } => {
                let mut body = BytesMut::new();
                body.put_u32(stream & 0x7fff_ffff);
                body.put_slice(&self.header_block(headers)?);
                (2, *flags, body)
            }
            Frame::RstStream { stream, status } => {
                let mut body = BytesMut::new();
                body.put_u32(stream & 0x7fff_ffff);
                body.put_u32(*status);
                (3, 0, body)
            }
            Frame::Settings { flags, entries } => {
                let mut body = BytesMut::new();
                body.put_u32(entries.len() as u32);
                for (flag, id, value) in entries {
                    body.put_u32((u32::from(*flag) << 24) | (id & 0x00ff_ffff));
                    body.put_u32(*value);
                }
                (4, *flags, body)
            }
            Frame::Ping { id } => {
                let mut body = BytesMut::new();
                body.put_u32(*id);
                (6, 0, body)
            }
            Frame::GoAway { last_good, status } => {
                let mut body = BytesMut::new();
                body.put_u32(last_good & 0x7fff_ffff);
                body.put_u32(*status);
                (7, 0, body)
            }
            Frame::Headers {
                stream,
                flags,
                headers,
            } => {
                let mut body = BytesMut::new();
                body.put_u32(stream & 0x7fff_ffff);
                body.put_slice(&self.header_block(headers)?);
                (8, *flags, body)
            }
            Frame::WindowUpdate { stream, delta } => {
                let mut body = BytesMut::new();
                body.put_u32(stream & 0x7fff_ffff);
                body.put_u32(delta & 0x7fff_ffff);
                (9, 0, body)
            }
            Frame::Unknown { kind } => (*kind, 0, BytesMut::new()),
        };
        if body.len() >= MAX_FRAME {
            return Err(invalid("control frame too large"));
        }
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        out.put_u32((u32::from(flags) << 24) | body.len() as u32);
        out.put_slice(&body);
        Ok(())
    }

    fn header_block(&mut self, headers: &Headers) -> io::Result<Vec<u8>> {
        // Repeated names travel as one pair with NUL-separated values.
        let mut merged: Vec<(String, String)> = Vec::new();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            match merged.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => {
                    v.push('\0');
                    v.push_str(value);
                }
                None => merged.push((name, value.clone())),
            }
        }
        let mut raw = BytesMut::new();
        raw.put_u32(merged.len() as u32);
        for (name, value) in &merged {
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        deflate(&mut self.deflate, &raw)
    }
}

fn deflate(deflate: &mut Compress, input: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() + 64);
    let mut consumed = 0;
    loop {
        let before = deflate.total_in();
        deflate
            .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        consumed += usize::try_from(deflate.total_in() - before).unwrap_or(0);
        // A sync flush is complete once output space is left over.
        if consumed == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64));
    }
}

/// Reads frames; owns the receiving direction's decompression context.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A fresh decompression context (the dictionary is supplied when asked for).
    pub fn new() -> Self {
        Self {
            inflate: Decompress::new(true),
        }
    }

    /// Takes one whole frame off the front of `buf`; `None` when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let length = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if buf.len() < 8 + length {
            return Ok(None);
        }
        let control = buf[0] & 0x80 != 0;
        let mut head = buf.split_to(8);
        let mut body = buf.split_to(length).freeze();
        if !control {
            let stream = head.get_u32() & 0x7fff_ffff;
            let flags = head[0];
            return Ok(Some(Frame::Data {
                stream,
                fin: flags & FLAG_FIN != 0,
                data: body,
            }));
        }
        let version = head.get_u16() & 0x7fff;
        let kind = head.get_u16();
        let flags = head[0];
        if version != VERSION {
            return Err(invalid(format!("unsupported SPDY version {version}")));
        }
        let need = |body: &Bytes, n: usize| {
            if body.len() < n {
                Err(invalid(format!("short control frame of type {kind}")))
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            1 => {
                need(&body, 10)?;
                let stream = body.get_u32() & 0x7fff_ffff;
                let associated = body.get_u32() & 0x7fff_ffff;
                let priority = body.get_u8() >> 5;
                let _slot = body.get_u8();
                let headers = self.header_block(&body)?;
                Frame::SynStream {
                    stream,
                    associated,
                    priority,
                    flags,
                    headers,
                }
            }
            2 | 8 => {
                need(&body, 4)?;
                let stream = body.get_u32() & 0x7fff_ffff;
                let headers = self.header_block(&body)?;
                if kind == 2 {
                    Frame::SynReply {
                        stream,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream,
                        flags,
                        headers,
                    }
                }
            }
            3 => {
                need(&body, 8)?;
                Frame::RstStream {
                    stream: body.get_u32() & 0x7fff_ffff,
                    status: body.get_u32(),
                }
            }
            4 => {
                need(&body, 4)?;
                let count = body.get_u32() as usize;
                need(&body, count.saturating_mul(8))?;
                let entries = (0..count)
                    .map(|_| {
                        let first = body.get_u32();
                        ((first >> 24) as u8, first & 0x00ff_ffff, body.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            6 => {
                need(&body, 4)?;
                Frame::Ping { id: body.get_u32() }
            }
            7 => {
                need(&body, 8)?;
                Frame::GoAway {
                    last_good: body.get_u32() & 0x7fff_ffff,
                    status: body.get_u32(),
                }
            }
            9 => {
                need(&body, 8)?;
                Frame::WindowUpdate {
                    stream: body.get_u32() & 0x7fff_ffff,
                    delta: body.get_u32() & 0x7fff_ffff,
                }
            }
            kind => Frame::Unknown { kind },
        };
        Ok(Some(frame))
    }

    fn header_block(&mut self, compressed: &[u8]) -> io::Result<Headers> {
        let raw = inflate(&mut self.inflate, compressed)?;
        let mut raw = Bytes::from(raw);
        let take = |raw: &mut Bytes| -> io::Result<String> {
            if raw.len() < 4 {
                return Err(invalid("truncated header block"));
            }
            let len = raw.get_u32() as usize;
            if raw.len() < len {
                return Err(invalid("truncated header block"));
            }
            String::from_utf8(raw.split_to(len).to_vec())
                .map_err(|_| invalid("header block is not UTF-8"))
        };
        if raw.len() < 4 {
            return Err(invalid("truncated header block"));
        }
        let count = raw.get_u32();
        let mut headers = Vec::new();
        for _ in 0..count {
            let name = take(&mut raw)?;
            let value = take(&mut raw)?;
            for value in value.split('\0') {
                headers.push((name.to_ascii_lowercase(), value.to_string()));
            }
        }
        Ok(headers)
    }
}

fn inflate(inflate: &mut Decompress, input: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 4 + 256);
    let mut consumed = 0;
    loop {
        let (before_in, before_out) = (inflate.total_in(), out.len());
        let result = inflate.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
        consumed += usize::try_from(inflate.total_in() - before_in).unwrap_or(0);
        match result {
            Ok(_) => {}
            Err(e) if e.needs_dictionary().is_some() => {
                inflate
                    .set_dictionary(DICTIONARY)
                    .map_err(|e| invalid(format!("header block: {e}")))?;
                continue;
            }
            Err(e) => return Err(invalid(format!("header block: {e}"))),
        }
        if out.len() > MAX_HEADERS {
            return Err(invalid("header block too large"));
        }
        let progressed = inflate.total_in() != before_in || out.len() != before_out;
        if consumed == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        } else if !progressed {
            return Err(invalid("header block: no progress"));
        }
    }
}

/// A stream a client opened, handed to the handler.
pub struct Stream {
    /// Its ID.
    pub id: u32,
    /// Its SYN_STREAM headers.
    pub headers: Headers,
    /// What the client sends on it (ends at its FIN).
    pub reader: PacketReader,
    /// Sends on it (shutdown sends FIN).
    pub writer: PacketWriter<Frame>,
}

impl Stream {
    /// The header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The server side of a SPDY connection.
pub struct Session {
    /// Streams as clients open them (already answered with SYN_REPLY).
    pub streams: mpsc::Receiver<Stream>,
    out: mpsc::Sender<Out<Frame>>,
}

impl Session {
    /// Serves SPDY on `io` (an upgraded connection or a tunnel).
    pub fn server<T>(io: T) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (streams_tx, streams) = mpsc::channel(16);
        tokio::spawn(write_loop(write, out_rx));
        tokio::spawn(read_loop(read, out_tx.clone(), streams_tx));
        Self {
            streams,
            out: out_tx,
        }
    }

    /// Ends the connection after everything queued so far is written.
    pub async fn close(self) {
        let _ = self.out.send(Out::Close).await;
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut write: W, mut rx: mpsc::Receiver<Out<Frame>>) {
    let mut encoder = Encoder::new();
    let mut buf = BytesMut::new();
    while let Some(out) = rx.recv().await {
        let frame = match out {
            Out::Data { id, data, fin } => Frame::Data {
                stream: id,
                fin,
                data,
            },
            Out::Control(frame) => frame,
            Out::Close => break,
        };
        if let Err(error) = encoder.encode(&frame, &mut buf) {
            tracing::debug!(%error, "spdy: cannot encode a frame");
            break;
        }
        // Write what is queued together; flush when the queue is empty.
        if write.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
        if rx.is_empty() && write.flush().await.is_err() {
            return;
        }
    }
    let _ = write.flush().await;
    let _ = write.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    out: mpsc::Sender<Out<Frame>>,
    streams: mpsc::Sender<Stream>,
) {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut inbound: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => match read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
            Err(error) => {
                tracing::debug!(%error, "spdy: bad frame; closing");
                let _ = out
                    .send(Out::Control(Frame::GoAway {
                        last_good: 0,
                        status: 1,
                    }))
                    .await;
                let _ = out.send(Out::Close).await;
                return;
            }
        };
        match frame {
            Frame::SynStream {
                stream,
                flags,
                headers,
                ..
            } => {
                let reply = Frame::SynReply {
                    stream,
                    flags: 0,
                    headers: Vec::new(),
                };
                if out.send(Out::Control(reply)).await.is_err() {
                    return;
                }
                let (tx, rx) = mpsc::channel(64);
                if flags & FLAG_FIN == 0 {
                    inbound.insert(stream, tx);
                }
                let handed = Stream {
                    id: stream,
                    headers,
                    reader: PacketReader::new(rx),
                    writer: PacketWriter::new(out.clone(), stream),
                };
                if streams.send(handed).await.is_err() {
                    // Nobody takes new streams any more: refuse it.
                    let _ = out
                        .send(Out::Control(Frame::RstStream { stream, status: 3 }))
                        .await;
                }
            }
            Frame::Data { stream, fin, data } => {
                if let Some(tx) = inbound.get(&stream) {
                    // A handler that dropped its reader just discards.
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        inbound.remove(&stream);
                    }
                }
                if fin {
                    inbound.remove(&stream);
                }
            }
            Frame::RstStream { stream, .. } => {
                inbound.remove(&stream);
            }
            Frame::Ping { id } => {
                let echoed = out.send(Out::Control(Frame::Ping { id })).await;
                if echoed.is_err() {
                    return;
                }
            }
            Frame::GoAway { .. } => return,
            Frame::Headers { stream, flags, .. } if flags & FLAG_FIN != 0 => {
                inbound.remove(&stream);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(frames: &[Frame]) -> Vec<Frame> {
        let mut encoder = Encoder::new();
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        for frame in frames {
            encoder.encode(frame, &mut buf).unwrap();
        }
        let mut out = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            out.push(frame);
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert!(DICTIONARY.starts_with(b"\0\0\0\x07options"));
        assert!(DICTIONARY.ends_with(b",*,enq=0."));
    }

    #[test]
    fn control_frames_round_trip_with_one_compression_context() {
        let frames = vec![
            Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: vec![("streamtype".into(), "error".into())],
            },
            Frame::SynStream {
                stream: 3,
                associated: 0,
                priority: 7,
                flags: FLAG_FIN,
                headers: vec![
                    ("streamtype".into(), "data".into()),
                    ("port".into(), "80".into()),
                    ("requestid".into(), "0".into()),
                ],
            },
            Frame::SynReply {
                stream: 3,
                flags: 0,
                headers: Vec::new(),
            },
            Frame::RstStream {
                stream: 5,
                status: 5,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536)],
            },
            Frame::Ping { id: 2 },
            Frame::GoAway {
                last_good: 3,
                status: 0,
            },
            Frame::WindowUpdate {
                stream: 1,
                delta: 1000,
            },
            Frame::Data {
                stream: 1,
                fin: true,
                data: Bytes::from_static(b"abc"),
            },
        ];
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn repeated_header_names_travel_nul_separated() {
        let frames = [Frame::Headers {
            stream: 1,
            flags: 0,
            headers: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
        }];
        let mut encoder = Encoder::new();
        let mut buf = BytesMut::new();
        encoder.encode(&frames[0], &mut buf).unwrap();
        // Decompress by hand: the block holds one pair "a" = "1\02".
        let mut inflate = Decompress::new(true);
        let raw = inflate_all(&mut inflate, &buf[12..]);
        assert_eq!(&raw[..4], &1u32.to_be_bytes());
        assert!(raw.windows(3).any(|w| w == b"1\x002"));
        assert_eq!(round_trip(&frames), frames);
    }

    fn inflate_all(d: &mut Decompress, input: &[u8]) -> Vec<u8> {
        inflate(d, input).unwrap()
    }

    #[test]
    fn partial_input_waits_for_the_rest() {
        let mut encoder = Encoder::new();
        let mut buf = BytesMut::new();
        encoder.encode(&Frame::Ping { id: 9 }, &mut buf).unwrap();
        let mut decoder = Decoder::new();
        let mut head = buf.split_to(5);
        assert_eq!(decoder.decode(&mut head).unwrap(), None);
        head.unsplit(buf);
        assert_eq!(
            decoder.decode(&mut head).unwrap(),
            Some(Frame::Ping { id: 9 })
        );
    }

    #[test]
    fn other_versions_are_refused() {
        let mut buf = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(Decoder::new().decode(&mut buf).is_err());
    }

    fn headers() -> impl Strategy<Value = Headers> {
        proptest::collection::vec(("[a-z][a-z0-9-]{0,12}", "[ -~]{0,40}"), 0..6).prop_map(|v| {
            // Names are unique per block on the wire.
            let mut seen = std::collections::HashSet::new();
            v.into_iter()
                .filter(|(n, _)| seen.insert(n.clone()))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn frames_round_trip(
            blocks in proptest::collection::vec(headers(), 1..8),
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            stream in 1u32..0x7fff_ffff,
        ) {
            let mut frames: Vec<Frame> = blocks
                .into_iter()
                .map(|headers| Frame::SynStream { stream, associated: 0, priority: 3, flags: 0, headers })
                .collect();
            frames.push(Frame::Data { stream, fin: false, data: Bytes::from(data) });
            prop_assert_eq!(round_trip(&frames), frames);
        }
    }

    #[tokio::test]
    async fn a_session_replies_to_streams_and_routes_data() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut session = Session::server(server);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let mut encoder = Encoder::new();
        let mut buf = BytesMut::new();
        for frame in [
            Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: vec![("streamtype".into(), "stdin".into())],
            },
            Frame::Data {
                stream: 1,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Ping { id: 1 },
        ] {
            encoder.encode(&frame, &mut buf).unwrap();
        }
        client_write.write_all(&buf).await.unwrap();
        let timeout = std::time::Duration::from_secs(5);
        let mut stream = tokio::time::timeout(timeout, session.streams.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stream.header("streamType"), Some("stdin"));
        let mut got = Vec::new();
        stream.reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        stream.writer.write_all(b"out").await.unwrap();
        stream.writer.shutdown().await.unwrap();
        session.close().await;
        let mut raw = Vec::new();
        tokio::time::timeout(timeout, client_read.read_to_end(&mut raw))
            .await
            .unwrap()
            .unwrap();
        let mut raw = BytesMut::from(&raw[..]);
        let mut decoder = Decoder::new();
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(&mut raw).unwrap() {
            frames.push(frame);
        }
        // The PING answer comes from the read loop, whenever it gets there.
        let pings = frames
            .iter()
            .filter(|f| **f == Frame::Ping { id: 1 })
            .count();
        assert_eq!(pings, 1);
        frames.retain(|f| !matches!(f, Frame::Ping { .. }));
        assert_eq!(
            frames,
            vec![
                Frame::SynReply {
                    stream: 1,
                    flags: 0,
                    headers: Vec::new()
                },
                Frame::Data {
                    stream: 1,
                    fin: false,
                    data: Bytes::from_static(b"out")
                },
                Frame::Data {
                    stream: 1,
                    fin: true,
                    data: Bytes::new()
                },
            ]
        );
    }
}

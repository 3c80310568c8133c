//! The WebSocket side of the kubelet API streams.
//!
//! Exec and attach speak Kubernetes' channel protocol (`v5.channel.k8s.io`
//! down to `channel.k8s.io`): every binary message starts with a channel
//! byte, 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds 255, a
//! close signal whose one byte names the channel the client has finished
//! sending on. Port-forward from kubectl 1.31 on tunnels SPDY through
//! binary messages (`SPDY/3.1+portforward.k8s.io`).

use super::http::{Body, full};
use super::pipe::{Out, PacketReader};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, Response, StatusCode, header};
use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// The exec/attach subprotocols the kubelet speaks, newest first.
pub const CHANNEL_PROTOCOLS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// The port-forward tunnel subprotocol (SPDY inside WebSocket).
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// The v5 close signal's channel.
pub const CLOSE_CHANNEL: u8 = 255;

/// Whether the request asks for a WebSocket upgrade.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The subprotocols the client offers, in its order.
pub fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The first protocol the client offers that `supported` has.
pub fn negotiate(offered: &[String], supported: &[&'static str]) -> Option<&'static str> {
    offered
        .iter()
        .find_map(|p| supported.iter().find(|s| **s == p.as_str()).copied())
}

/// The 101 answer accepting the upgrade with `protocol`; `None` without a key.
pub fn accept(headers: &HeaderMap, protocol: &str) -> Option<Response<Body>> {
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept.parse().ok()?);
    h.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol.parse().ok()?);
    Some(response)
}

/// A close frame with code 1000.
fn normal_close() -> Message {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// Splits a channel-protocol message into its channel and payload.
pub fn demux(message: &[u8]) -> Option<(u8, &[u8])> {
    let (channel, payload) = message.split_first()?;
    Some((*channel, payload))
}

/// A channel-protocol message.
pub fn mux(channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(payload.len() + 1);
    message.push(channel);
    message.extend_from_slice(payload);
    message
}

/// Runs the channel protocol on `ws`: returns readers for the `readable`
/// channels (what the client sends) and the queue writers of the others use.
pub fn channels<S>(
    ws: WebSocketStream<S>,
    readable: &[u8],
    v5: bool,
) -> (HashMap<u8, PacketReader>, mpsc::Sender<Out<()>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out<()>>(64);
    let mut readers = HashMap::new();
    let mut senders = HashMap::new();
    for channel in readable {
        let (tx, rx) = mpsc::channel(64);
        senders.insert(*channel, tx);
        readers.insert(*channel, PacketReader::new(rx));
    }
    tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            let message = match out {
                // A stream's end has no message of its own.
                Out::Data {
                    fin: true, data, ..
                } if data.is_empty() => continue,
                Out::Data { id, data, .. } => mux(id as u8, &data),
                Out::Control(()) => continue,
                Out::Close => break,
            };
            if sink.send(Message::Binary(message.into())).await.is_err() {
                return;
            }
        }
        // A normal closure (1000): clients read it as the end of every
        // stream; a close frame without a code (1005) is an error to them.
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((channel, payload)) = demux(&data) else {
                continue;
            };
            if v5 && channel == CLOSE_CHANNEL {
                if let Some(closed) = payload.first() {
                    senders.remove(closed);
                }
                continue;
            }
            if let Some(tx) = senders.get(&channel)
                && !payload.is_empty()
                && tx.send(Bytes::copy_from_slice(payload)).await.is_err()
            {
                senders.remove(&channel);
            }
        }
    });
    (readers, out_tx)
}

/// The byte stream a tunnel carries in binary messages, for a SPDY session.
pub fn tunnel<S>(ws: WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut read, mut write) = tokio::io::split(ours);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Binary(data) => {
                    let written = write.write_all(&data).await;
                    if written.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = write.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(32 * 1024);
        loop {
            buf.clear();
            match read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let data = buf.split().freeze();
                    if sink.send(Message::Binary(data)).await.is_err() {
                        return;
                    }
                }
            }
            buf.reserve(32 * 1024);
        }
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    });
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[test]
    fn the_clients_first_supported_protocol_wins() {
        let offered: Vec<String> = [
            "v6.channel.k8s.io",
            "v4.channel.k8s.io",
            "v5.channel.k8s.io",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            negotiate(&offered, &CHANNEL_PROTOCOLS),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(negotiate(&offered[..1], &CHANNEL_PROTOCOLS), None);
        let mut headers = HeaderMap::new();
        headers.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            "v5.channel.k8s.io, v4.channel.k8s.io".parse().unwrap(),
        );
        headers.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            "channel.k8s.io".parse().unwrap(),
        );
        assert_eq!(
            super::offered(&headers),
            ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"]
        );
    }

    #[test]
    fn accept_key_is_rfc6455s() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        let response = accept(&headers, "v5.channel.k8s.io").unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    proptest! {
        #[test]
        fn mux_and_demux_are_inverse(channel in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let message = mux(channel, &payload);
            prop_assert_eq!(demux(&message), Some((channel, &payload[..])));
        }
    }

    #[tokio::test]
    async fn channels_route_messages_and_v5_closes_stdin() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let server = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let (mut readers, out) = channels(server, &[0, 4], true);
        client
            .send(Message::Binary(mux(0, b"abc").into()))
            .await
            .unwrap();
        client
            .send(Message::Binary(mux(4, b"{}").into()))
            .await
            .unwrap();
        client
            .send(Message::Binary(vec![CLOSE_CHANNEL, 0].into()))
            .await
            .unwrap();
        let mut stdin = readers.remove(&0).unwrap();
        let mut got = Vec::new();
        let timeout = std::time::Duration::from_secs(5);
        tokio::time::timeout(timeout, stdin.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"abc");
        let mut stdout = super::super::pipe::PacketWriter::new(out.clone(), 1);
        stdout.write_all(b"out").await.unwrap();
        out.send(Out::Close).await.unwrap();
        let first = tokio::time::timeout(timeout, client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first, Message::Binary(mux(1, b"out").into()));
        let close = tokio::time::timeout(timeout, client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(close, Message::Close(_)));
    }
}

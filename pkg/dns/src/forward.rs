//! Forwarding names outside the cluster to the node's resolvers, with a
//! small cache of their answers. Upstream answers are relayed byte for
//! byte (with the client's ID); when no upstream answers, the caller sends
//! SERVFAIL.

use crate::wire;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream gets to answer.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound on how long an upstream answer is cached.
const MAX_CACHE_TTL: u32 = 30;
/// Cached answers at most (the cache is cleared when full).
const MAX_ENTRIES: usize = 4096;

/// The upstream resolvers in a resolv.conf, leaving out loopback addresses
/// (stubs such as systemd-resolved's, unreachable from pods' point of view
/// and a loop risk) and the addresses in `exclude` (the cluster DNS itself).
pub fn upstreams_from_resolv_conf(text: &str, exclude: &[IpAddr]) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        // Zone indexes (fe80::1%eth0) are not for us.
        .filter_map(|addr| addr.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified() && !exclude.contains(ip))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

type Key = (String, u16, u16);

/// Forwards queries to upstream resolvers in order, caching answers.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    cache: Mutex<HashMap<Key, (Vec<u8>, Instant)>>,
}

impl Forwarder {
    /// A forwarder to these resolvers (none: every forwarded query fails).
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Self {
            upstreams,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The upstream answer to `raw` (the client's query), with the client's
    /// ID; `None` when no upstream answered.
    pub async fn forward(&self, query: &wire::Query, raw: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let key = (query.name.to_ascii_lowercase(), query.qtype, query.qclass);
        if let Ok(cache) = self.cache.lock()
            && let Some((answer, expires)) = cache.get(&key)
            && *expires > Instant::now()
        {
            let mut answer = answer.clone();
            wire::set_id(&mut answer, query.id);
            return Some(answer);
        }
        for upstream in &self.upstreams {
            let result = if tcp {
                tokio::time::timeout(TIMEOUT, ask_tcp(*upstream, raw)).await
            } else {
                tokio::time::timeout(TIMEOUT, ask_udp(*upstream, raw)).await
            };
            match result {
                Ok(Ok(answer)) => {
                    self.remember(key, &answer);
                    let mut answer = answer;
                    wire::set_id(&mut answer, query.id);
                    return Some(answer);
                }
                Ok(Err(error)) => tracing::debug!(%upstream, %error, "upstream DNS failed"),
                Err(_) => tracing::debug!(%upstream, "upstream DNS timed out"),
            }
        }
        None
    }

    fn remember(&self, key: Key, answer: &[u8]) {
        let truncated = answer.get(2).is_some_and(|b| b & 0x02 != 0);
        let ttl = match wire::response_ttl(answer) {
            Some((wire::rcode::NOERROR, Some(ttl))) => ttl.min(MAX_CACHE_TTL),
            Some((wire::rcode::NOERROR | wire::rcode::NXDOMAIN, None)) => crate::zone::TTL,
            _ => 0,
        };
        if ttl == 0 || truncated {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
            let expires = Instant::now() + Duration::from_secs(u64::from(ttl));
            cache.insert(key, (answer.to_vec(), expires));
        }
    }
}

async fn ask_udp(upstream: SocketAddr, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    // A fresh ID per upstream query; answers with another ID are ignored.
    let id: u16 = rand_id();
    let mut query = raw.to_vec();
    wire::set_id(&mut query, id);
    socket.send(&query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        if wire::header_id(&buf[..n]) == Some(id) {
            return Ok(buf[..n].to_vec());
        }
    }
}

async fn ask_tcp(upstream: SocketAddr, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(raw.len()).map_err(std::io::Error::other)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(raw);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// An unpredictable query ID (from the std hasher's random keys).
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_stubs_and_the_cluster_dns_are_not_upstreams() {
        let conf = "# generated\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.43.0.10\n\
                    nameserver 192.168.1.1\nnameserver ::1\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\n";
        let upstreams = upstreams_from_resolv_conf(conf, &["10.43.0.10".parse().unwrap()]);
        assert_eq!(
            upstreams,
            vec![
                "192.168.1.1:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn upstream_answers_are_relayed_with_the_client_id_and_cached() {
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            // Answers once; the second query must come from the cache.
            let (n, from) = upstream.recv_from(&mut buf).await.unwrap();
            let query = wire::parse_query(&buf[..n]).unwrap();
            let response = wire::Response {
                answers: vec![wire::Record {
                    name: None,
                    ttl: 60,
                    data: wire::Rdata::A([192, 0, 2, 1].into()),
                }],
                ..Default::default()
            };
            let out = wire::encode(&query, &response, 512);
            upstream.send_to(&out, from).await.unwrap();
        });
        let mut raw = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        raw.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        let query = wire::parse_query(&raw).unwrap();
        let forwarder = Forwarder::new(vec![addr]);
        let run = async {
            let first = forwarder.forward(&query, &raw, false).await.unwrap();
            assert_eq!(&first[..2], &[0xab, 0xcd]);
            server.await.unwrap();
            let mut again = query.clone();
            again.id = 7;
            let second = forwarder.forward(&again, &raw, false).await.unwrap();
            assert_eq!(&second[..2], &[0, 7]);
            assert_eq!(second[2..], first[2..]);
        };
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn no_upstream_means_no_answer() {
        let raw = [0u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 1, 0, 1];
        let query = wire::parse_query(&raw).unwrap();
        let forwarder = Forwarder::new(Vec::new());
        assert_eq!(forwarder.forward(&query, &raw, false).await, None);
    }
}

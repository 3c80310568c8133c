//! Serving DNS over UDP and TCP: each query is answered from the current
//! [`Zone`] or forwarded upstream. An ExternalName's alias is followed, as
//! CoreDNS does: stub resolvers (glibc's, musl's) do not chase a CNAME
//! themselves, so an answer holding only the alias would leave them with
//! no address.

use crate::forward::Forwarder;
use crate::wire::{self, Query, Rdata, Response, rcode, rtype};
use crate::zone::{Answer, Zone};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// An idle TCP connection is closed after this long.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// At most this many tasks receive on the UDP socket.
const UDP_WORKERS: usize = 4;

/// What becomes of one message.
enum Reply {
    /// Answered at once (`None`: dropped unanswered).
    Now(Option<Vec<u8>>),
    /// Answered once an upstream has been asked.
    Later(Pending),
}

/// A reply waiting on an upstream resolver; each carries the size limit of
/// the answer.
enum Pending {
    /// A name outside the cluster, forwarded as it is.
    Forward(Query, usize),
    /// A cluster alias (`response`) whose out-of-cluster `target`'s
    /// addresses are added to it.
    Alias {
        query: Query,
        response: Response,
        target: String,
        limit: usize,
    },
}

/// Answers queries from a zone that the informers replace as the cluster changes.
#[derive(Debug)]
pub struct Server {
    zone: RwLock<Arc<Zone>>,
    forwarder: Forwarder,
    /// Who may ask (`None`: anyone). The server listens on the node address,
    /// so without this it would be an open resolver for the node's network.
    clients: Option<Vec<ipnet::IpNet>>,
}

impl Server {
    /// A server answering from `zone` and forwarding the rest with `forwarder`.
    pub fn new(zone: Zone, forwarder: Forwarder) -> Arc<Self> {
        Self::with_clients(zone, forwarder, None)
    }

    /// A server answering only queries from `clients` (`None`: from anyone);
    /// others are dropped unanswered, as a firewalled resolver would.
    pub fn with_clients(
        zone: Zone,
        forwarder: Forwarder,
        clients: Option<Vec<ipnet::IpNet>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            zone: RwLock::new(Arc::new(zone)),
            forwarder,
            clients,
        })
    }

    /// Whether a query from `address` is answered.
    pub fn accepts(&self, address: std::net::IpAddr) -> bool {
        let address = address.to_canonical();
        self.clients
            .as_ref()
            .is_none_or(|nets| address.is_loopback() || nets.iter().any(|n| n.contains(&address)))
    }

    /// Replaces the zone.
    pub fn set_zone(&self, zone: Zone) {
        if let Ok(mut current) = self.zone.write() {
            *current = Arc::new(zone);
        }
    }

    fn zone(&self) -> Arc<Zone> {
        match self.zone.read() {
            Ok(zone) => zone.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The answer to one message (`None`: not worth answering, e.g. a response).
    pub async fn handle(&self, raw: &[u8], tcp: bool) -> Option<Vec<u8>> {
        match self.reply(raw, tcp) {
            Reply::Now(answer) => answer,
            Reply::Later(pending) => Some(self.finish(pending, raw, tcp).await),
        }
    }

    async fn finish(&self, pending: Pending, raw: &[u8], tcp: bool) -> Vec<u8> {
        match pending {
            Pending::Forward(query, limit) => self.forward(&query, raw, tcp, limit).await,
            Pending::Alias {
                query,
                mut response,
                target,
                limit,
            } => {
                let asked = Query {
                    name: target.clone(),
                    rd: true,
                    edns: None,
                    qclass: wire::CLASS_IN,
                    ..query.clone()
                };
                let raw = wire::query_message(query.id, &target, query.qtype);
                if let Some(answer) = self.forwarder.forward(&asked, &raw, tcp).await
                    && let Some((rcode::NOERROR, records)) = wire::parse_answers(&answer)
                {
                    response.answers.extend(records);
                }
                wire::encode(&query, &response, limit)
            }
        }
    }

    /// What to do with one message, without waiting for anything: cluster
    /// names (nearly all of a pod's queries) are answered here and now.
    fn reply(&self, raw: &[u8], tcp: bool) -> Reply {
        let Some(query) = wire::parse_query(raw) else {
            let Some(id) = wire::header_id(raw) else {
                return Reply::Now(None);
            };
            if raw.get(2).is_some_and(|b| b & 0x80 != 0) {
                return Reply::Now(None);
            }
            return Reply::Now(Some(wire::error_response(id, rcode::FORMERR)));
        };
        let limit = if tcp { 65535 } else { query.udp_limit() };
        if query.opcode != 0 {
            return Reply::Now(Some(wire::error_response(query.id, rcode::NOTIMP)));
        }
        let zone = self.zone();
        match zone.lookup(&query) {
            Answer::Local(mut response) => {
                let Some(target) = alias_to_follow(&query, &response) else {
                    return Reply::Now(Some(wire::encode(&query, &response, limit)));
                };
                let asked = Query {
                    name: target.clone(),
                    ..query.clone()
                };
                match zone.lookup(&asked) {
                    // An alias of another cluster name: one step, no loops.
                    Answer::Local(found) if found.rcode == rcode::NOERROR => {
                        response
                            .answers
                            .extend(found.answers.into_iter().map(|mut record| {
                                record.name.get_or_insert_with(|| target.clone());
                                record
                            }));
                        Reply::Now(Some(wire::encode(&query, &response, limit)))
                    }
                    Answer::Local(_) => Reply::Now(Some(wire::encode(&query, &response, limit))),
                    Answer::Forward => Reply::Later(Pending::Alias {
                        query,
                        response,
                        target,
                        limit,
                    }),
                }
            }
            Answer::Forward => Reply::Later(Pending::Forward(query, limit)),
        }
    }

    async fn forward(&self, query: &Query, raw: &[u8], tcp: bool, limit: usize) -> Vec<u8> {
        match self.forwarder.forward(query, raw, tcp).await {
            Some(answer) if answer.len() <= limit => answer,
            // Too big for this client over UDP: let it retry over TCP.
            Some(_) => {
                let mut out = wire::encode(query, &wire::Response::default(), limit);
                if let Some(b) = out.get_mut(2) {
                    *b |= 0x02;
                }
                out
            }
            None => wire::encode(
                query,
                &wire::Response {
                    rcode: rcode::SERVFAIL,
                    ..Default::default()
                },
                limit,
            ),
        }
    }

    /// Serves both sockets until the future is dropped.
    pub async fn serve(self: Arc<Self>, udp: UdpSocket, tcp: TcpListener) {
        tokio::join!(self.clone().serve_udp(udp), self.serve_tcp(tcp));
    }

    /// Serves UDP with a worker per core sharing the socket, so the
    /// runtime's threads answer queries in parallel.
    async fn serve_udp(self: Arc<Self>, socket: UdpSocket) {
        let socket = Arc::new(socket);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(UDP_WORKERS));
        // Dropping the set (the server stopping) aborts the workers.
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers {
            set.spawn(self.clone().udp_worker(socket.clone()));
        }
        while set.join_next().await.is_some() {}
    }

    async fn udp_worker(self: Arc<Self>, socket: Arc<UdpSocket>) {
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(error) => {
                    tracing::debug!(%error, "DNS receive failed");
                    continue;
                }
            };
            if !self.accepts(from.ip()) {
                tracing::debug!(%from, "DNS query from outside the cluster dropped");
                continue;
            }
            let raw = &buf[..n];
            match self.reply(raw, false) {
                Reply::Now(None) => {}
                Reply::Now(Some(answer)) => {
                    if let Err(error) = socket.send_to(&answer, from).await {
                        tracing::debug!(%from, %error, "DNS answer not sent");
                    }
                }
                // Waiting on an upstream must not hold up the cluster's answers.
                Reply::Later(pending) => {
                    let (server, socket, raw) = (self.clone(), socket.clone(), raw.to_vec());
                    tokio::spawn(async move {
                        let answer = server.finish(pending, &raw, false).await;
                        if let Err(error) = socket.send_to(&answer, from).await {
                            tracing::debug!(%from, %error, "DNS answer not sent");
                        }
                    });
                }
            }
        }
    }

    async fn serve_tcp(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, from)) if self.accepts(from.ip()) => {
                    tokio::spawn(self.clone().serve_connection(stream));
                }
                Ok((_, from)) => {
                    tracing::debug!(%from, "DNS connection from outside the cluster closed");
                }
                Err(error) => {
                    tracing::debug!(%error, "DNS accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve_connection(self: Arc<Self>, mut stream: TcpStream) {
        loop {
            let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
                return;
            };
            let mut raw = vec![0u8; usize::from(len)];
            if !matches!(
                tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut raw)).await,
                Ok(Ok(_))
            ) {
                return;
            }
            let Some(answer) = self.handle(&raw, true).await else {
                continue;
            };
            let Ok(len) = u16::try_from(answer.len()) else {
                return;
            };
            let mut framed = len.to_be_bytes().to_vec();
            framed.extend_from_slice(&answer);
            if stream.write_all(&framed).await.is_err() {
                return;
            }
        }
    }
}

/// The target of an answer that is only an alias, for an address query.
fn alias_to_follow(query: &Query, response: &Response) -> Option<String> {
    if !matches!(query.qtype, rtype::A | rtype::AAAA) || response.rcode != rcode::NOERROR {
        return None;
    }
    match response.answers.as_slice() {
        [only] => match &only.data {
            Rdata::Cname(target) => Some(target.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_query(name: &str, qtype: u16) -> Vec<u8> {
        let mut out = vec![0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out
    }

    fn empty_zone() -> Zone {
        let none: [Arc<k8s_openapi::api::core::v1::Service>; 0] = [];
        let no_slices: [Arc<k8s_openapi::api::discovery::v1::EndpointSlice>; 0] = [];
        Zone::build("cluster.local", None, &none, &no_slices, 1)
    }

    #[tokio::test]
    async fn udp_and_tcp_answer_and_unknown_upstreams_servfail() {
        let server = Server::new(empty_zone(), Forwarder::new(Vec::new()));
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        tokio::spawn(server.serve(udp, tcp));
        let run = async {
            let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            client
                .send_to(&raw_query("dns-version.cluster.local", 16), udp_addr)
                .await
                .unwrap();
            let mut buf = [0u8; 512];
            let n = client.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..2], &[0, 9]);
            assert_eq!(buf[3] & 0xf, rcode::NOERROR);
            assert!(buf[..n].ends_with(b"\x051.1.0"));

            client
                .send_to(&raw_query("example.com", 1), udp_addr)
                .await
                .unwrap();
            client.recv(&mut buf).await.unwrap();
            assert_eq!(buf[3] & 0xf, rcode::SERVFAIL);

            let mut stream = TcpStream::connect(tcp_addr).await.unwrap();
            let q = raw_query("nope.cluster.local", 1);
            stream
                .write_all(&(q.len() as u16).to_be_bytes())
                .await
                .unwrap();
            stream.write_all(&q).await.unwrap();
            let len = stream.read_u16().await.unwrap();
            let mut answer = vec![0u8; usize::from(len)];
            stream.read_exact(&mut answer).await.unwrap();
            assert_eq!(answer[3] & 0xf, rcode::NXDOMAIN);
            assert_eq!(answer[2] & 0x04, 0x04, "authoritative");
        };
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap();
    }

    /// An upstream on loopback answering `db.example.test` with one address
    /// and every other name with NXDOMAIN.
    async fn stub_upstream() -> std::net::SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let query = wire::parse_query(&buf[..n]).unwrap();
                let mut response = Response::default();
                if query.name == "db.example.test" && query.qtype == rtype::A {
                    response.answers.push(wire::Record {
                        name: None,
                        ttl: 30,
                        data: Rdata::A("198.51.100.7".parse().unwrap()),
                    });
                } else {
                    response.rcode = rcode::NXDOMAIN;
                }
                let _ = socket
                    .send_to(&wire::encode(&query, &response, 512), from)
                    .await;
            }
        });
        addr
    }

    fn alias_zone() -> Zone {
        let services: Vec<Arc<k8s_openapi::api::core::v1::Service>> = [
            serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.43.0.20", "ports": [{"port": 80}]}}),
            serde_json::json!({"metadata": {"name": "out", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "db.example.test"}}),
            serde_json::json!({"metadata": {"name": "gone", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "nowhere.example.test"}}),
            serde_json::json!({"metadata": {"name": "in", "namespace": "default"},
                "spec": {"type": "ExternalName",
                         "externalName": "web.default.svc.cluster.local"}}),
        ]
        .into_iter()
        .map(|value| Arc::new(serde_json::from_value(value).unwrap()))
        .collect();
        let no_slices: [Arc<k8s_openapi::api::discovery::v1::EndpointSlice>; 0] = [];
        Zone::build("cluster.local", None, &services, &no_slices, 1)
    }

    async fn answers(server: &Server, name: &str, qtype: u16) -> (u8, Vec<wire::Record>) {
        let answer = server.handle(&raw_query(name, qtype), false).await.unwrap();
        wire::parse_answers(&answer).unwrap()
    }

    #[tokio::test]
    async fn external_name_aliases_are_followed_to_their_addresses() {
        let upstream = stub_upstream().await;
        let server = Server::new(alias_zone(), Forwarder::new(vec![upstream]));
        let cname = |target: &str| Rdata::Cname(target.to_string());
        let run = async {
            let (code, records) = answers(&server, "out.default.svc.cluster.local", rtype::A).await;
            assert_eq!(code, rcode::NOERROR);
            let data: Vec<_> = records.iter().map(|r| r.data.clone()).collect();
            assert_eq!(
                data,
                [
                    cname("db.example.test"),
                    Rdata::A("198.51.100.7".parse().unwrap())
                ]
            );
            assert_eq!(records[1].name.as_deref(), Some("db.example.test"));
            // A target the upstream does not know: the alias alone.
            let (code, records) =
                answers(&server, "gone.default.svc.cluster.local", rtype::A).await;
            assert_eq!(code, rcode::NOERROR);
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].data, cname("nowhere.example.test"));
            // A cluster target is answered from the zone.
            let (_, records) = answers(&server, "in.default.svc.cluster.local", rtype::A).await;
            let data: Vec<_> = records.iter().map(|r| r.data.clone()).collect();
            assert_eq!(
                data,
                [
                    cname("web.default.svc.cluster.local"),
                    Rdata::A("10.43.0.20".parse().unwrap())
                ]
            );
            // Other types get the alias only.
            let (_, records) = answers(&server, "out.default.svc.cluster.local", rtype::TXT).await;
            assert_eq!(records.len(), 1);
        };
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap();
    }

    #[test]
    fn only_cluster_and_node_addresses_are_answered() {
        let clients = vec![
            "10.42.0.0/16".parse().unwrap(),
            "192.0.2.10/32".parse().unwrap(),
        ];
        let server = Server::with_clients(empty_zone(), Forwarder::new(Vec::new()), Some(clients));
        for ok in [
            "10.42.3.7",
            "192.0.2.10",
            "127.0.0.1",
            "::1",
            "::ffff:10.42.0.5",
        ] {
            assert!(server.accepts(ok.parse().unwrap()), "{ok}");
        }
        for refused in ["192.0.2.11", "10.43.0.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!server.accepts(refused.parse().unwrap()), "{refused}");
        }
        let open = Server::new(empty_zone(), Forwarder::new(Vec::new()));
        assert!(open.accepts("8.8.8.8".parse().unwrap()));
    }

    #[tokio::test]
    async fn garbage_gets_formerr_and_responses_no_answer() {
        let server = Server::new(empty_zone(), Forwarder::new(Vec::new()));
        let answer = server.handle(&[1, 2, 1, 0, 0, 5], false).await.unwrap();
        assert_eq!(answer[3] & 0xf, rcode::FORMERR);
        assert_eq!(server.handle(&[1, 2, 0x81, 0, 0, 5], false).await, None);
        assert_eq!(server.handle(&[1], false).await, None);
    }
}

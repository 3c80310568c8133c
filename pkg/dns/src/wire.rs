//! The DNS wire format (RFC 1035), as much as a cluster DNS server needs:
//! parsing a query's header, question and EDNS size, and encoding answers.
//! Parsing never panics on malformed input: it returns `None`.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Record types kite answers.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Alias.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Reverse pointer.
    pub const PTR: u16 = 12;
    /// Text.
    pub const TXT: u16 = 16;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Service location.
    pub const SRV: u16 = 33;
    /// EDNS(0) pseudo-record.
    pub const OPT: u16 = 41;
    /// Any type.
    pub const ANY: u16 = 255;
}

/// Response codes.
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// The query could not be parsed.
    pub const FORMERR: u8 = 1;
    /// The server failed (no upstream answered).
    pub const SERVFAIL: u8 = 2;
    /// The name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// Not implemented (opcodes other than QUERY).
    pub const NOTIMP: u8 = 4;
    /// Refused.
    pub const REFUSED: u8 = 5;
}

/// The class IN.
pub const CLASS_IN: u16 = 1;
/// Largest UDP answer without EDNS.
pub const UDP_DEFAULT: usize = 512;
/// The UDP payload size kite advertises and honours at most (the DNS flag day value).
pub const UDP_MAX: usize = 1232;

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Message ID.
    pub id: u16,
    /// Opcode (0 is QUERY).
    pub opcode: u8,
    /// Recursion desired.
    pub rd: bool,
    /// The question name as sent (case kept), without the trailing dot.
    pub name: String,
    /// The question type.
    pub qtype: u16,
    /// The question class.
    pub qclass: u16,
    /// EDNS UDP payload size, when the query had an OPT record.
    pub edns: Option<u16>,
}

impl Query {
    /// The UDP payload size an answer to this query may use.
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(size) => usize::from(size).clamp(UDP_DEFAULT, UDP_MAX),
            None => UDP_DEFAULT,
        }
    }
}

/// Only the header's ID and opcode, for answering queries that do not parse.
pub fn header_id(message: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*message.first()?, *message.get(1)?]))
}

/// Parses a query with exactly one question.
pub fn parse_query(message: &[u8]) -> Option<Query> {
    let mut r = Reader {
        buf: message,
        pos: 0,
    };
    let id = r.u16()?;
    let flags = r.u16()?;
    if flags & 0x8000 != 0 {
        return None; // a response, not a query
    }
    let (qd, an, ns, ar) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    if qd != 1 {
        return None;
    }
    let name = r.name()?;
    let qtype = r.u16()?;
    let qclass = r.u16()?;
    for _ in 0..(u32::from(an) + u32::from(ns)) {
        r.skip_record()?;
    }
    let mut edns = None;
    for _ in 0..ar {
        r.name()?;
        let t = r.u16()?;
        let class = r.u16()?;
        r.u32()?;
        let len = usize::from(r.u16()?);
        r.take(len)?;
        if t == rtype::OPT {
            edns = Some(class);
        }
    }
    Some(Query {
        id,
        opcode: ((flags >> 11) & 0xf) as u8,
        rd: flags & 0x0100 != 0,
        name,
        qtype,
        qclass,
        edns,
    })
}

/// The smallest TTL of a response's answer records (`None` if it does not parse
/// or has none), and its rcode.
pub fn response_ttl(message: &[u8]) -> Option<(u8, Option<u32>)> {
    let (mut r, flags, an) = Reader::at_answers(message)?;
    let mut ttl: Option<u32> = None;
    for _ in 0..an {
        r.name()?;
        r.take(4)?;
        let t = r.u32()?;
        ttl = Some(ttl.map_or(t, |m| m.min(t)));
        let len = usize::from(r.u16()?);
        r.take(len)?;
    }
    Some(((flags & 0xf) as u8, ttl))
}

/// A recursive query for `name` (to resolve an alias's target upstream).
pub fn query_message(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    put_name(&mut out, name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// The address and alias records of a response's answer section, each with
/// its owner name, and its rcode; other record types are left out. `None`
/// when the message does not parse.
pub fn parse_answers(message: &[u8]) -> Option<(u8, Vec<Record>)> {
    let (mut r, flags, an) = Reader::at_answers(message)?;
    let mut records = Vec::new();
    for _ in 0..an {
        let owner = r.name()?;
        let (kind, class, ttl) = (r.u16()?, r.u16()?, r.u32()?);
        let len = usize::from(r.u16()?);
        let start = r.pos;
        let data = r.take(len)?;
        let data = match (kind, class, len) {
            (rtype::A, CLASS_IN, 4) => Rdata::A(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
            (rtype::AAAA, CLASS_IN, 16) => {
                let octets: [u8; 16] = data.try_into().ok()?;
                Rdata::Aaaa(Ipv6Addr::from(octets))
            }
            (rtype::CNAME, CLASS_IN, _) => {
                // The target may point back into the message (compression).
                let mut target = Reader {
                    buf: message,
                    pos: start,
                };
                Rdata::Cname(target.name()?)
            }
            _ => continue,
        };
        records.push(Record {
            name: Some(owner),
            ttl,
            data,
        });
    }
    Some(((flags & 0xf) as u8, records))
}

/// Sets a message's ID (for relaying upstream answers).
pub fn set_id(message: &mut [u8], id: u16) {
    if let Some(head) = message.get_mut(..2) {
        head.copy_from_slice(&id.to_be_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of a response past its header and questions, with the
    /// header's flags and answer count.
    fn at_answers(message: &'a [u8]) -> Option<(Self, u16, u16)> {
        let mut r = Reader {
            buf: message,
            pos: 0,
        };
        r.u16()?;
        let flags = r.u16()?;
        let (qd, an) = (r.u16()?, r.u16()?);
        r.take(4)?;
        for _ in 0..qd {
            r.name()?;
            r.take(4)?;
        }
        Some((r, flags, an))
    }
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn skip_record(&mut self) -> Option<()> {
        self.name()?;
        self.take(8)?;
        let len = usize::from(self.u16()?);
        self.take(len).map(|_| ())
    }
    /// A name, following compression pointers (at most 64 of them).
    fn name(&mut self) -> Option<String> {
        let mut labels: Vec<String> = Vec::new();
        let mut pos = self.pos;
        let mut resume = None;
        let mut jumps = 0;
        let mut total = 0usize;
        loop {
            let len = *self.buf.get(pos)?;
            match len & 0xc0 {
                0x00 => {
                    pos += 1;
                    if len == 0 {
                        break;
                    }
                    let label = self.buf.get(pos..pos + usize::from(len))?;
                    total += usize::from(len) + 1;
                    if total > 255 {
                        return None;
                    }
                    labels.push(label_text(label));
                    pos += usize::from(len);
                }
                0xc0 => {
                    let low = *self.buf.get(pos + 1)?;
                    if resume.is_none() {
                        resume = Some(pos + 2);
                    }
                    jumps += 1;
                    if jumps > 64 {
                        return None;
                    }
                    pos = (usize::from(len & 0x3f) << 8) | usize::from(low);
                }
                _ => return None,
            }
        }
        self.pos = resume.unwrap_or(pos);
        Some(labels.join("."))
    }
}

/// A label as text; bytes outside printable ASCII (and dots) are escaped as `\DDD`.
fn label_text(label: &[u8]) -> String {
    let mut out = String::with_capacity(label.len());
    for &b in label {
        if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:03}"));
        }
    }
    out
}

/// Record data kite encodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rdata {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Alias target.
    Cname(String),
    /// Name server.
    Ns(String),
    /// Reverse pointer target.
    Ptr(String),
    /// One text string.
    Txt(String),
    /// Service location.
    Srv {
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host.
        target: String,
    },
    /// Start of authority of the cluster zone.
    Soa {
        /// Primary name server.
        mname: String,
        /// Mailbox of the responsible person.
        rname: String,
        /// Serial.
        serial: u32,
        /// Negative-caching TTL (the "minimum" field).
        minimum: u32,
    },
}

impl Rdata {
    /// The record type of this data.
    pub fn rtype(&self) -> u16 {
        match self {
            Rdata::A(_) => rtype::A,
            Rdata::Aaaa(_) => rtype::AAAA,
            Rdata::Cname(_) => rtype::CNAME,
            Rdata::Ns(_) => rtype::NS,
            Rdata::Ptr(_) => rtype::PTR,
            Rdata::Txt(_) => rtype::TXT,
            Rdata::Srv { .. } => rtype::SRV,
            Rdata::Soa { .. } => rtype::SOA,
        }
    }
}

/// A resource record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Owner name; `None` means the question's name (encoded as a pointer to it).
    pub name: Option<String>,
    /// TTL in seconds.
    pub ttl: u32,
    /// The data.
    pub data: Rdata,
}

/// A response to encode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// Response code.
    pub rcode: u8,
    /// Authoritative answer.
    pub authoritative: bool,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Additional section.
    pub additional: Vec<Record>,
}

/// Encodes `response` to `query`, at most `limit` bytes: records that do not
/// fit are left out and the TC bit set (the client then asks over TCP).
pub fn encode(query: &Query, response: &Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query.id.to_be_bytes());
    let mut flags: u16 = 0x8000 | (u16::from(query.opcode & 0xf) << 11) | 0x0080;
    if response.authoritative {
        flags |= 0x0400;
    }
    if query.rd {
        flags |= 0x0100;
    }
    flags |= u16::from(response.rcode & 0xf);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    put_name(&mut out, &query.name);
    out.extend_from_slice(&query.qtype.to_be_bytes());
    out.extend_from_slice(&query.qclass.to_be_bytes());
    let opt_len = if query.edns.is_some() { 11 } else { 0 };
    let limit = limit.saturating_sub(opt_len);
    let mut truncated = false;
    let mut counts = [0u16; 3];
    for (i, section) in [&response.answers, &response.authority, &response.additional]
        .into_iter()
        .enumerate()
    {
        for record in section {
            let before = out.len();
            put_record(&mut out, record);
            if out.len() > limit {
                out.truncate(before);
                // Leaving out additional records needs no TC bit (RFC 2181 9).
                truncated |= i < 2;
                break;
            }
            counts[i] += 1;
        }
        if truncated {
            break;
        }
    }
    if query.edns.is_some() {
        out.push(0);
        out.extend_from_slice(&rtype::OPT.to_be_bytes());
        out.extend_from_slice(&(UDP_MAX as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    if truncated {
        out[2] |= 0x02;
    }
    out[6..8].copy_from_slice(&counts[0].to_be_bytes());
    out[8..10].copy_from_slice(&counts[1].to_be_bytes());
    let additional = counts[2] + u16::from(query.edns.is_some());
    out[10..12].copy_from_slice(&additional.to_be_bytes());
    out
}

/// A header-only error response (for queries that do not parse far enough).
pub fn error_response(id: u16, rcode: u8) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&(0x8080u16 | u16::from(rcode & 0xf)).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = unescape(label);
        let len = bytes.len().min(63);
        out.push(len as u8);
        out.extend_from_slice(&bytes[..len]);
    }
    out.push(0);
}

fn unescape(label: &str) -> Vec<u8> {
    let raw = label.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\'
            && let Some(digits) = label.get(i + 1..i + 4)
            && let Ok(b) = digits.parse::<u8>()
        {
            out.push(b);
            i += 4;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

fn put_record(out: &mut Vec<u8>, record: &Record) {
    match &record.name {
        None => out.extend_from_slice(&[0xc0, 12]),
        Some(name) => put_name(out, name),
    }
    out.extend_from_slice(&record.data.rtype().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&record.ttl.to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    match &record.data {
        Rdata::A(ip) => out.extend_from_slice(&ip.octets()),
        Rdata::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
        Rdata::Cname(n) | Rdata::Ns(n) | Rdata::Ptr(n) => put_name(out, n),
        Rdata::Txt(text) => {
            for chunk in text.as_bytes().chunks(255) {
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
        Rdata::Srv {
            priority,
            weight,
            port,
            target,
        } => {
            out.extend_from_slice(&priority.to_be_bytes());
            out.extend_from_slice(&weight.to_be_bytes());
            out.extend_from_slice(&port.to_be_bytes());
            put_name(out, target);
        }
        Rdata::Soa {
            mname,
            rname,
            serial,
            minimum,
        } => {
            put_name(out, mname);
            put_name(out, rname);
            for v in [*serial, 7200, 1800, 86400, *minimum] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    let len = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_bytes(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
        let mut out = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        put_name(&mut out, name);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        if edns {
            out.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        }
        out
    }

    #[test]
    fn a_query_parses_with_its_edns_size() {
        let q = parse_query(&query_bytes(
            "Web.default.svc.cluster.local",
            rtype::A,
            true,
        ))
        .expect("query");
        assert_eq!(q.id, 0x1234);
        assert!(q.rd);
        assert_eq!(q.name, "Web.default.svc.cluster.local");
        assert_eq!(q.edns, Some(4096));
        assert_eq!(q.udp_limit(), UDP_MAX);
    }

    #[test]
    fn answers_parse_back_with_owners_and_compressed_targets() {
        let query = parse_query(&query_message(7, "ext.example.test", rtype::A)).expect("query");
        assert!(query.rd);
        assert_eq!((query.id, query.qtype), (7, rtype::A));
        let response = Response {
            answers: vec![
                Record {
                    name: None,
                    ttl: 30,
                    data: Rdata::Cname("db.example.test".into()),
                },
                Record {
                    name: Some("db.example.test".into()),
                    ttl: 20,
                    data: Rdata::A(Ipv4Addr::new(198, 51, 100, 7)),
                },
                Record {
                    name: Some("db.example.test".into()),
                    ttl: 20,
                    data: Rdata::Txt("skipped".into()),
                },
            ],
            ..Default::default()
        };
        let mut message = encode(&query, &response, 512);
        let (code, records) = parse_answers(&message).expect("answers");
        assert_eq!(code, rcode::NOERROR);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].name.as_deref(), Some("ext.example.test"));
        assert_eq!(records[0].data, Rdata::Cname("db.example.test".into()));
        assert_eq!(records[1].data, Rdata::A(Ipv4Addr::new(198, 51, 100, 7)));
        assert_eq!(records[1].ttl, 20);
        // A CNAME target pointing at the question's name, compressed.
        message.truncate(12);
        message[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
        put_name(&mut message, "a.example.test");
        message.extend_from_slice(&[0, 1, 0, 1]);
        message.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 9, 0, 2, 0xc0, 14]);
        let (_, records) = parse_answers(&message).expect("compressed");
        assert_eq!(records[0].data, Rdata::Cname("example.test".into()));
        for len in 0..message.len() {
            assert_eq!(parse_answers(&message[..len]), None, "prefix {len}");
        }
    }

    #[test]
    fn malformed_queries_do_not_parse() {
        let good = query_bytes("a.b", rtype::A, false);
        for len in 0..good.len() {
            assert_eq!(parse_query(&good[..len]), None, "prefix {len}");
        }
        // A compression pointer to itself.
        let mut looped = good[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse_query(&looped), None);
    }

    #[test]
    fn answers_that_do_not_fit_are_truncated_with_tc() {
        let q = parse_query(&query_bytes("x.cluster.local", rtype::A, false)).expect("query");
        let answers = (0..100u8)
            .map(|i| Record {
                name: None,
                ttl: 5,
                data: Rdata::A(Ipv4Addr::new(10, 0, 0, i)),
            })
            .collect();
        let response = Response {
            answers,
            ..Default::default()
        };
        let udp = encode(&q, &response, UDP_DEFAULT);
        assert!(udp.len() <= UDP_DEFAULT);
        assert_eq!(udp[2] & 0x02, 0x02, "TC set");
        let tcp = encode(&q, &response, 65535);
        assert_eq!(tcp[2] & 0x02, 0);
        assert_eq!(u16::from_be_bytes([tcp[6], tcp[7]]), 100);
        assert_eq!(response_ttl(&tcp), Some((0, Some(5))));
    }
}

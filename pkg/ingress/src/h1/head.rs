//! Request and response heads: parsed in place with httparse and written
//! anew for the other side, with hop-by-hop headers dropped and the
//! X-Forwarded headers set.
//!
//! Only plain requests are taken: HTTP/1.1, origin-form, with a Host, no
//! upgrade, no `Expect`, and either no body, a valid Content-Length or
//! `Transfer-Encoding: chunked` alone. Anything else is [`Parsed::Other`]
//! and goes to the general (hyper) server, which knows every rule.

use super::framing::Framing;
use std::net::IpAddr;
use std::ops::Range;

/// Headers a head may have here; more go to the general server.
const MAX_HEADERS: usize = 64;
/// Connection-named headers remembered; more go to the general server.
const MAX_NAMED: usize = 8;

/// Headers for one connection only (RFC 9110 §7.6.1), never forwarded.
/// Transfer-Encoding and Content-Length are not among them here: bodies
/// are relayed with their framing as it is.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
];

/// Headers kite sets on requests, replacing what the client sent.
const REPLACED: [&str; 5] = [
    "host",
    "x-forwarded-for",
    "x-real-ip",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// What parsing a request head found.
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// Not for this path (see the module's comment).
    Other,
    /// A plain request whose head is the first `length` bytes.
    Request(Request),
}

/// A plain request, already written out for the endpoint.
pub struct Request {
    /// Bytes of the head in the client's buffer.
    pub length: usize,
    /// Where the Host header's value is in the buffer.
    pub host: Range<usize>,
    /// Where the path (without its query) is in the buffer.
    pub path: Range<usize>,
    /// How its body is delimited.
    pub body: Framing,
    /// The client asked to close the connection after this exchange.
    pub close: bool,
    /// A HEAD request (its response has no body).
    pub head: bool,
    /// Repeating it does no harm (RFC 9110 §9.2.2).
    pub idempotent: bool,
    /// The head for the endpoint.
    pub upstream: Vec<u8>,
}

/// Parses the request head at the start of `buffer` and writes it for the
/// endpoint (with `client` as X-Forwarded-For) into `upstream`'s buffer,
/// which the request takes.
pub fn parse_request(
    buffer: &[u8],
    client: IpAddr,
    scheme: &str,
    upstream: &mut Vec<u8>,
) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(target), Some(1)) = (request.method, request.path, request.version)
    else {
        return Parsed::Other;
    };
    if !target.starts_with('/') || method == "CONNECT" {
        return Parsed::Other;
    }
    let mut facts = Facts::default();
    let mut host = None;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Parsed::Other;
            }
            host = Some(header.value);
        } else if name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
            || !facts.note(name, header.value)
        {
            return Parsed::Other;
        }
    }
    let Some(host) = host.and_then(|h| std::str::from_utf8(h).ok()) else {
        return Parsed::Other;
    };
    if facts.upgrade || facts.chunked_invalid || (facts.chunked && facts.length.is_some()) {
        return Parsed::Other;
    }
    let body = match (facts.chunked, facts.length) {
        (true, _) => Framing::Chunked,
        (false, Some(0)) | (false, None) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
    };

    upstream.clear();
    upstream.extend_from_slice(method.as_bytes());
    upstream.push(b' ');
    upstream.extend_from_slice(target.as_bytes());
    upstream.extend_from_slice(b" HTTP/1.1\r\n");
    for header in request.headers.iter() {
        if forwarded(header.name, &facts) && !is_any(header.name, &REPLACED) {
            put_header(upstream, header.name.as_bytes(), header.value);
        }
    }
    let client = client.to_canonical().to_string();
    put_header(upstream, b"Host", host.as_bytes());
    put_header(upstream, b"X-Forwarded-For", client.as_bytes());
    put_header(upstream, b"X-Real-IP", client.as_bytes());
    put_header(upstream, b"X-Forwarded-Proto", scheme.as_bytes());
    put_header(upstream, b"X-Forwarded-Host", host.as_bytes());
    upstream.extend_from_slice(b"\r\n");
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Parsed::Request(Request {
        length,
        host: within(buffer, host.as_bytes()),
        path: within(buffer, path.as_bytes()),
        body,
        close: facts.close,
        head: method == "HEAD",
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
        upstream: std::mem::take(upstream),
    })
}

/// What parsing a response head found.
pub enum ParsedResponse {
    /// More bytes are needed.
    Partial,
    /// Not a response this path relays (or not HTTP at all).
    Invalid,
    /// A response whose head is the first `length` bytes.
    Response(Response),
}

/// An endpoint's response, its head written out for the client.
pub struct Response {
    /// Bytes of the head in the endpoint's buffer.
    pub length: usize,
    /// Its status.
    pub status: u16,
    /// How its body is delimited.
    pub body: Framing,
    /// The endpoint's connection can take another request afterwards.
    pub reusable: bool,
}

/// Parses the response head at the start of `buffer`, the answer to a
/// request (`head`: a HEAD request), and writes it for the client into
/// `out`; `close` adds `Connection: close` (the client's connection ends
/// after it). Informational (1xx) responses have [`Framing::Empty`].
pub fn parse_response(buffer: &[u8], head: bool, close: bool, out: &mut Vec<u8>) -> ParsedResponse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return ParsedResponse::Partial,
        Err(_) => return ParsedResponse::Invalid,
    };
    let (Some(version), Some(status)) = (response.version, response.code) else {
        return ParsedResponse::Invalid;
    };
    if status == 101 {
        return ParsedResponse::Invalid;
    }
    let mut facts = Facts::default();
    for header in response.headers.iter() {
        if !facts.note(header.name, header.value) {
            return ParsedResponse::Invalid;
        }
    }
    let bodiless = head || (100..200).contains(&status) || status == 204 || status == 304;
    let body = if bodiless {
        Framing::Empty
    } else if facts.chunked {
        Framing::Chunked
    } else if facts.chunked_invalid {
        Framing::UntilClose
    } else {
        match facts.length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let keep_alive = if version == 0 {
        facts.keep_alive
    } else {
        !facts.close
    };
    let close = close || body == Framing::UntilClose;
    let reason = response.reason.unwrap_or("");
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in response.headers.iter() {
        if forwarded(header.name, &facts) {
            put_header(out, header.name.as_bytes(), header.value);
        }
    }
    if close && !(100..200).contains(&status) {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    ParsedResponse::Response(Response {
        length,
        status,
        body,
        reusable: keep_alive && body != Framing::UntilClose && !facts.chunked_invalid,
    })
}

/// What the headers say about framing and the connection.
#[derive(Default)]
struct Facts<'a> {
    length: Option<u64>,
    chunked: bool,
    /// A Transfer-Encoding other than `chunked` alone, or a bad length.
    chunked_invalid: bool,
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    named: [Option<&'a str>; MAX_NAMED],
}

impl<'a> Facts<'a> {
    /// Notes one header; false if the head must go elsewhere.
    fn note(&mut self, name: &'a str, value: &'a [u8]) -> bool {
        if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
            else {
                return false;
            };
            if self.length.is_some_and(|m| m != n) {
                return false;
            }
            self.length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if self.chunked || !value.eq_ignore_ascii_case(b"chunked") {
                self.chunked_invalid = true;
                self.chunked = false;
            } else if !self.chunked_invalid {
                self.chunked = true;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            let Ok(value) = std::str::from_utf8(value) else {
                return false;
            };
            for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if token.eq_ignore_ascii_case("close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    self.keep_alive = true;
                } else if token.eq_ignore_ascii_case("upgrade") {
                    self.upgrade = true;
                } else {
                    let Some(slot) = self.named.iter_mut().find(|s| s.is_none()) else {
                        return false;
                    };
                    *slot = Some(token);
                }
            }
        }
        true
    }

    fn names(&self, name: &str) -> bool {
        self.named
            .iter()
            .flatten()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Whether a header goes on to the other side.
fn forwarded(name: &str, facts: &Facts<'_>) -> bool {
    !is_any(name, &HOP_BY_HOP) && !facts.names(name)
}

/// Where `part`, a slice of `buffer`, lies in it.
fn within(buffer: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buffer.as_ptr() as usize;
    start..start + part.len()
}

fn is_any(name: &str, list: &[&str]) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Parsed {
        parse_request(
            text.as_bytes(),
            "::ffff:192.0.2.7".parse().unwrap(),
            "http",
            &mut Vec::new(),
        )
    }

    #[test]
    fn plain_requests_are_rewritten_for_the_endpoint() {
        let text = "GET /a?b=1 HTTP/1.1\r\nHost: web.example\r\nConnection: keep-alive, X-Private\r\n\
                    X-Private: 1\r\nX-Forwarded-For: 6.6.6.6\r\nKeep-Alive: timeout=5\r\nAccept: */*\r\n\r\nNEXT";
        let Parsed::Request(r) = request(text) else {
            panic!("not plain")
        };
        assert_eq!(r.length, text.len() - 4);
        assert_eq!(r.body, Framing::Empty);
        assert!(!r.close && !r.head && r.idempotent);
        assert_eq!(
            String::from_utf8(r.upstream).unwrap(),
            "GET /a?b=1 HTTP/1.1\r\nAccept: */*\r\nHost: web.example\r\nX-Forwarded-For: 192.0.2.7\r\n\
             X-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: web.example\r\n\r\n"
        );
        assert_eq!(&text[r.host.clone()], "web.example");
        assert_eq!(&text[r.path.clone()], "/a");
    }

    #[test]
    fn bodies_keep_their_framing() {
        let Parsed::Request(r) = request(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        ) else {
            panic!()
        };
        assert_eq!(r.body, Framing::Length(5));
        assert!(r.close && !r.idempotent);
        assert!(
            String::from_utf8(r.upstream)
                .unwrap()
                .contains("Content-Length: 5\r\n")
        );
        let Parsed::Request(r) =
            request("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(r.body, Framing::Chunked);
    }

    #[test]
    fn unusual_requests_go_to_the_general_server() {
        for text in [
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(matches!(request(text), Parsed::Other), "{text}");
        }
        assert!(matches!(
            request("GET / HTTP/1.1\r\nHost: a\r\n"),
            Parsed::Partial
        ));
    }

    fn response(text: &str, head: bool, close: bool) -> (Response, String) {
        let mut out = Vec::new();
        let ParsedResponse::Response(r) = parse_response(text.as_bytes(), head, close, &mut out)
        else {
            panic!("not a response: {text}")
        };
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn responses_are_framed_as_rfc_9112_says() {
        let (r, out) = response(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhi",
            false,
            false,
        );
        assert_eq!(
            (r.status, r.body, r.reusable),
            (200, Framing::Length(2), true)
        );
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
        let (r, _) = response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", true, false);
        assert_eq!(r.body, Framing::Empty);
        let (r, _) = response(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\n",
            false,
            false,
        );
        assert_eq!(r.body, Framing::Empty);
        let (r, _) = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            false,
        );
        assert_eq!((r.body, r.reusable), (Framing::Chunked, true));
        let (r, out) = response("HTTP/1.1 200 OK\r\n\r\n", false, false);
        assert_eq!((r.body, r.reusable), (Framing::UntilClose, false));
        assert!(out.ends_with("Connection: close\r\n\r\n"));
        let (r, _) = response("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, false);
        assert!(!r.reusable);
        let (r, _) = response(
            "HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
            false,
            false,
        );
        assert!(r.reusable);
        let (r, _) = response(
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            false,
            false,
        );
        assert!(!r.reusable);
        let (_, out) = response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, true);
        assert!(out.ends_with("Connection: close\r\n\r\n"));
        let mut out = Vec::new();
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                false,
                false,
                &mut out
            ),
            ParsedResponse::Invalid
        ));
    }
}

//! nftables transactions sent straight to the kernel over nfnetlink, without
//! the `nft` binary. `nft` first reads the whole table into its cache (every
//! chain and set), which at 10,000 Services is over 100 ms before it sends
//! a single change; the kernel itself resolves chain and set names, so a
//! batch of a few changes costs what those changes cost.
//!
//! A [`Batch`] collects commands against existing tables (chains, rules, named
//! sets, map elements) and [`Batch::commit`] sends them as one transaction:
//! all of it applies or none does, as with `nft -f`. Building whole tables
//! with base chains stays with [`crate::nft`], where a script reads better.

pub mod attr;
pub mod expr;

use attr::Writer;
pub use expr::{Base, CmpOp, Expr, MetaKey, Verdict};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use std::io;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
/// Set in an error reply that carries extended-ack attributes.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NFPROTO_IPV4: u8 = 2;

const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_GETGEN: u16 = 16;

/// `nft`'s `ipv4_addr` type, for sets listed by `nft` as such.
const TYPE_IPV4_ADDR: u32 = 7;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NFT_SET_EVAL: u32 = 0x20;

/// One nftables transaction on `ip` family tables.
pub struct Batch {
    w: Writer,
    seq: u32,
    /// What each message did, by sequence number, for error messages.
    what: Vec<String>,
    set_ids: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty transaction.
    pub fn new() -> Self {
        let mut batch = Self {
            w: Writer::default(),
            seq: 0,
            what: Vec::new(),
            set_ids: 0,
        };
        let begin = batch.w.message(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            0,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        batch.w.end(begin);
        batch.what.push("starting the transaction".into());
        batch
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.what.len() == 1
    }

    /// How many commands were added.
    pub fn len(&self) -> usize {
        self.what.len() - 1
    }

    fn start(&mut self, msg: u16, flags: u16, what: String) -> attr::Open {
        self.seq += 1;
        self.what.push(what);
        self.w.message(
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            NLM_F_REQUEST | flags,
            self.seq,
            NFPROTO_IPV4,
            0,
        )
    }

    /// `add chain ip TABLE CHAIN` (no error if it exists).
    pub fn add_chain(&mut self, table: &str, chain: &str) {
        let m = self.start(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            format!("adding chain {chain}"),
        );
        self.w.str(1, table);
        self.w.str(3, chain);
        self.w.end(m);
    }

    /// `flush chain ip TABLE CHAIN`: removes its rules.
    pub fn flush_chain(&mut self, table: &str, chain: &str) {
        let m = self.start(NFT_MSG_DELRULE, 0, format!("flushing chain {chain}"));
        self.w.str(1, table);
        self.w.str(2, chain);
        self.w.end(m);
    }

    /// `delete chain ip TABLE CHAIN`.
    pub fn delete_chain(&mut self, table: &str, chain: &str) {
        let m = self.start(NFT_MSG_DELCHAIN, 0, format!("deleting chain {chain}"));
        self.w.str(1, table);
        self.w.str(3, chain);
        self.w.end(m);
    }

    /// Appends a rule made of `exprs` to `chain`.
    pub fn add_rule(&mut self, table: &str, chain: &str, exprs: &[Expr]) {
        let m = self.start(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            format!("adding a rule to chain {chain}"),
        );
        self.w.str(1, table);
        self.w.str(2, chain);
        let list = self.w.nest(4);
        for expr in exprs {
            expr.write(&mut self.w);
        }
        self.w.close(list);
        self.w.end(m);
    }

    /// `add set ip TABLE SET { type ipv4_addr; flags dynamic,timeout; timeout Ns; }`.
    pub fn add_address_timeout_set(&mut self, table: &str, set: &str, timeout_seconds: u32) {
        let m = self.start(NFT_MSG_NEWSET, NLM_F_CREATE, format!("adding set {set}"));
        self.set_ids += 1;
        self.w.str(1, table);
        self.w.str(2, set);
        self.w.u32(3, NFT_SET_TIMEOUT | NFT_SET_EVAL);
        self.w.u32(4, TYPE_IPV4_ADDR);
        self.w.u32(5, 4);
        self.w.u32(10, self.set_ids);
        self.w.u64(11, u64::from(timeout_seconds) * 1000);
        self.w.end(m);
    }

    /// `delete set ip TABLE SET`.
    pub fn delete_set(&mut self, table: &str, set: &str) {
        let m = self.start(NFT_MSG_DELSET, 0, format!("deleting set {set}"));
        self.w.str(1, table);
        self.w.str(2, set);
        self.w.end(m);
    }

    /// Adds `key : verdict` to a verdict map.
    pub fn add_map_element(&mut self, table: &str, map: &str, key: &[u8], verdict: &Verdict) {
        let m = self.start(
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE,
            format!("adding an element to map {map}"),
        );
        self.element_list(table, map, key, Some(verdict));
        self.w.end(m);
    }

    /// Removes the element with `key` from a set or map.
    pub fn delete_element(&mut self, table: &str, set: &str, key: &[u8]) {
        let m = self.start(
            NFT_MSG_DELSETELEM,
            0,
            format!("deleting an element of {set}"),
        );
        self.element_list(table, set, key, None);
        self.w.end(m);
    }

    fn element_list(&mut self, table: &str, set: &str, key: &[u8], verdict: Option<&Verdict>) {
        self.w.str(1, table);
        self.w.str(2, set);
        let elements = self.w.nest(3);
        let element = self.w.nest(1);
        expr::value(&mut self.w, 1, key);
        if let Some(verdict) = verdict {
            let data = self.w.nest(2);
            expr::write_verdict(&mut self.w, verdict);
            self.w.close(data);
        }
        self.w.close(element);
        self.w.close(elements);
    }

    /// Sends the transaction and waits for the kernel's answer.
    pub fn commit(mut self) -> io::Result<()> {
        let end = self.w.message(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            0,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        self.w.end(end);
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        socket.set_ext_ack(true)?;
        socket.set_cap_ack(true)?;
        // The kernel takes a batch only as one message; let the socket hold it.
        let size = self.w.buf.len() + 4096;
        if size > 200_000 {
            nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::SndBufForce, &size)
                .map_err(io::Error::from)?;
        }
        send_all(&socket, &self.w.buf)?;
        // The kernel handles a batch within the send, so every error reply is
        // queued before the answer to this request, which ends the wait.
        let sentinel = self.seq + 1;
        let mut probe = Writer::default();
        let m = probe.message(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
            NLM_F_REQUEST | NLM_F_ACK,
            sentinel,
            0,
            0,
        );
        probe.end(m);
        send_all(&socket, &probe.buf)?;
        let mut first_error: Option<io::Error> = None;
        loop {
            let mut buf = Vec::with_capacity(65536);
            socket.recv(&mut buf, 0)?;
            for reply in replies(&buf) {
                if reply.seq == sentinel {
                    if reply.kind == NLMSG_ERROR || reply.kind == NLMSG_DONE {
                        return match first_error {
                            Some(error) => Err(error),
                            None => Ok(()),
                        };
                    }
                    continue;
                }
                if reply.kind != NLMSG_ERROR {
                    continue;
                }
                let Some(code) = reply.error_code() else {
                    continue;
                };
                if code == 0 || first_error.is_some() {
                    continue;
                }
                let what = self
                    .what
                    .get(reply.seq as usize)
                    .map(String::as_str)
                    .unwrap_or("in the transaction");
                let cause = io::Error::from_raw_os_error(-code);
                let detail = reply
                    .extended_message()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                first_error = Some(io::Error::new(
                    cause.kind(),
                    format!("nftables: {what}: {cause}{detail}"),
                ));
            }
        }
    }
}

fn send_all(socket: &Socket, buf: &[u8]) -> io::Result<()> {
    let sent = socket.send(buf, 0)?;
    if sent != buf.len() {
        return Err(io::Error::other(format!(
            "nftables: sent {sent} of {} bytes",
            buf.len()
        )));
    }
    Ok(())
}

/// One netlink message of a reply.
struct Reply<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

impl Reply<'_> {
    /// The (negative) errno of an `NLMSG_ERROR`; 0 is an acknowledgement.
    fn error_code(&self) -> Option<i32> {
        let bytes: [u8; 4] = self.payload.get(..4)?.try_into().ok()?;
        Some(i32::from_ne_bytes(bytes))
    }

    /// The kernel's text for the error, if it sent one.
    fn extended_message(&self) -> Option<String> {
        if self.flags & NLM_F_ACK_TLVS == 0 {
            return None;
        }
        // errno, then the request's header (capped acks carry no payload).
        let mut rest = self.payload.get(4 + 16..)?;
        while rest.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
            let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
            if len < 4 || len > rest.len() {
                return None;
            }
            if kind == NLMSGERR_ATTR_MSG {
                let text = &rest[4..len];
                let text = text.split(|b| *b == 0).next().unwrap_or_default();
                return Some(String::from_utf8_lossy(text).into_owned());
            }
            rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        }
        None
    }
}

/// Splits a datagram into its messages.
fn replies(mut buf: &[u8]) -> Vec<Reply<'_>> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        out.push(Reply {
            kind: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: &buf[16..len],
        });
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

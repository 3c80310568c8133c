//! Netlink attributes (type-length-value, padded to four bytes) written into
//! one growing buffer, the way nfnetlink messages carry everything: integers
//! big-endian as nf_tables expects them, strings NUL-terminated, nested
//! attributes closed with their final length.

/// Marks an attribute whose payload is more attributes.
const NLA_F_NESTED: u16 = 0x8000;

/// A buffer of netlink messages being written.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

/// Where a nested attribute (or a message) started, to close it later.
#[derive(Clone, Copy)]
pub(crate) struct Open(usize);

impl Writer {
    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// An attribute holding `payload` as is.
    pub(crate) fn bytes(&mut self, kind: u16, payload: &[u8]) {
        let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    /// A big-endian 32-bit attribute.
    pub(crate) fn u32(&mut self, kind: u16, value: u32) {
        self.bytes(kind, &value.to_be_bytes());
    }

    /// A big-endian 64-bit attribute.
    pub(crate) fn u64(&mut self, kind: u16, value: u64) {
        self.bytes(kind, &value.to_be_bytes());
    }

    /// A NUL-terminated string attribute.
    pub(crate) fn str(&mut self, kind: u16, value: &str) {
        let mut payload = Vec::with_capacity(value.len() + 1);
        payload.extend_from_slice(value.as_bytes());
        payload.push(0);
        self.bytes(kind, &payload);
    }

    /// Starts a nested attribute; [`Writer::close`] ends it.
    pub(crate) fn nest(&mut self, kind: u16) -> Open {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        Open(at)
    }

    /// Ends the nested attribute started at `open`.
    pub(crate) fn close(&mut self, open: Open) {
        let len = u16::try_from(self.buf.len() - open.0).unwrap_or(u16::MAX);
        self.buf[open.0..open.0 + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Starts a netlink message with its nfgenmsg header; [`Writer::end`] ends it.
    pub(crate) fn message(
        &mut self,
        kind: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
    ) -> Open {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `end`
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        Open(at)
    }

    /// Ends the message started at `open`.
    pub(crate) fn end(&mut self, open: Open) {
        self.pad();
        let len = u32::try_from(self.buf.len() - open.0).unwrap_or(u32::MAX);
        self.buf[open.0..open.0 + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nests_carry_their_length() {
        let mut w = Writer::default();
        let outer = w.nest(2);
        w.str(1, "abc");
        w.u32(2, 1);
        w.close(outer);
        // nest header 4 + "abc\0" attr 8 + u32 attr 8
        assert_eq!(w.buf.len(), 20);
        assert_eq!(u16::from_ne_bytes([w.buf[0], w.buf[1]]), 20);
        assert_eq!(u16::from_ne_bytes([w.buf[2], w.buf[3]]), 2 | NLA_F_NESTED);
        assert_eq!(&w.buf[8..12], b"abc\0");
        assert_eq!(&w.buf[16..20], &[0, 0, 0, 1]);
    }
}

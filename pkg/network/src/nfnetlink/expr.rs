//! The nf_tables expressions kite's rules are made of, and their netlink
//! form. A rule is a list of these run in order by the kernel's nftables VM:
//! loads into registers (payload, meta, numgen, immediate), comparisons that
//! end the rule when they fail (cmp, lookup) and actions (nat, dynset, a
//! verdict written to the verdict register).

use super::attr::Writer;

/// The verdict register.
pub const REG_VERDICT: u32 = 0;
/// The first 16-byte data register.
pub const REG_1: u32 = 1;
/// The second 16-byte data register.
pub const REG_2: u32 = 2;

/// Which header a payload offset counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// The network (IP) header.
    Network = 1,
    /// The transport header.
    Transport = 2,
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// Equal.
    Eq = 0,
    /// Not equal.
    Neq = 1,
}

/// The packet metadata kite reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// The transport protocol number.
    L4Proto = 16,
}

/// Where a rule sends the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Run the chain, then come back.
    Jump(String),
    /// Continue in the chain and do not come back.
    Goto(String),
}

impl Verdict {
    fn code(&self) -> i32 {
        match self {
            Self::Jump(_) => -3,
            Self::Goto(_) => -4,
        }
    }

    fn chain(&self) -> &str {
        match self {
            Self::Jump(chain) | Self::Goto(chain) => chain,
        }
    }
}

/// One expression of a rule. Registers are [`REG_VERDICT`], [`REG_1`], [`REG_2`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// Loads `len` bytes at `offset` of a header into `dreg`.
    Payload {
        /// The header.
        base: Base,
        /// Bytes from its start.
        offset: u32,
        /// Bytes to load.
        len: u32,
        /// The register loaded.
        dreg: u32,
    },
    /// Loads packet metadata into `dreg`.
    Meta {
        /// What to load.
        key: MetaKey,
        /// The register loaded.
        dreg: u32,
    },
    /// Ends the rule unless `sreg op data` holds.
    Cmp {
        /// The register compared.
        sreg: u32,
        /// The comparison.
        op: CmpOp,
        /// What it is compared with.
        data: Vec<u8>,
    },
    /// `reg = (reg & mask) ^ xor` over `mask.len()` bytes.
    Bitwise {
        /// The register changed.
        reg: u32,
        /// The mask.
        mask: Vec<u8>,
        /// Then xor-ed with this.
        xor: Vec<u8>,
    },
    /// Writes `data` into `dreg`.
    Value {
        /// The register written.
        dreg: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Writes a verdict: the rule's action.
    Verdict(Verdict),
    /// A random number below `modulus` into `dreg`.
    Random {
        /// The bound.
        modulus: u32,
        /// The register written.
        dreg: u32,
    },
    /// Ends the rule unless `sreg` is in the named set.
    Lookup {
        /// The set's name.
        set: String,
        /// The register holding the key.
        sreg: u32,
    },
    /// Adds `sreg` to the named set or refreshes its timeout.
    Update {
        /// The set's name.
        set: String,
        /// The register holding the key.
        sreg: u32,
    },
    /// Destination NAT (IPv4) to the address in `addr` and the port in `port`.
    Dnat {
        /// The register holding the address.
        addr: u32,
        /// The register holding the port.
        port: u32,
    },
}

// Attribute numbers from linux/netfilter/nf_tables.h.
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
pub(crate) const NFTA_DATA_VALUE: u16 = 1;
pub(crate) const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Self::Payload { .. } => "payload",
            Self::Meta { .. } => "meta",
            Self::Cmp { .. } => "cmp",
            Self::Bitwise { .. } => "bitwise",
            Self::Value { .. } | Self::Verdict(_) => "immediate",
            Self::Random { .. } => "numgen",
            Self::Lookup { .. } => "lookup",
            Self::Update { .. } => "dynset",
            Self::Dnat { .. } => "nat",
        }
    }

    /// Writes the expression as one element of a rule's expression list.
    pub(crate) fn write(&self, w: &mut Writer) {
        let elem = w.nest(NFTA_LIST_ELEM);
        w.str(NFTA_EXPR_NAME, self.name());
        let data = w.nest(NFTA_EXPR_DATA);
        match self {
            Self::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                w.u32(1, *dreg);
                w.u32(2, *base as u32);
                w.u32(3, *offset);
                w.u32(4, *len);
            }
            Self::Meta { key, dreg } => {
                w.u32(1, *dreg);
                w.u32(2, *key as u32);
            }
            Self::Cmp { sreg, op, data } => {
                w.u32(1, *sreg);
                w.u32(2, *op as u32);
                value(w, 3, data);
            }
            Self::Bitwise { reg, mask, xor } => {
                w.u32(1, *reg);
                w.u32(2, *reg);
                w.u32(3, u32::try_from(mask.len()).unwrap_or(0));
                value(w, 4, mask);
                value(w, 5, xor);
            }
            Self::Value { dreg, data } => {
                w.u32(1, *dreg);
                value(w, 2, data);
            }
            Self::Verdict(verdict) => {
                w.u32(1, REG_VERDICT);
                let data = w.nest(2);
                write_verdict(w, verdict);
                w.close(data);
            }
            Self::Random { modulus, dreg } => {
                w.u32(1, *dreg);
                w.u32(2, *modulus);
                w.u32(3, 1); // NFT_NG_RANDOM
                w.u32(4, 0);
            }
            Self::Lookup { set, sreg } => {
                w.str(1, set);
                w.u32(2, *sreg);
            }
            Self::Update { set, sreg } => {
                w.str(1, set);
                w.u32(3, 1); // NFT_DYNSET_OP_UPDATE
                w.u32(4, *sreg);
            }
            Self::Dnat { addr, port } => {
                w.u32(1, 1); // NFT_NAT_DNAT
                w.u32(2, 2); // NFPROTO_IPV4
                w.u32(3, *addr);
                w.u32(5, *port);
            }
        }
        w.close(data);
        w.close(elem);
    }
}

/// `NFTA_DATA_VERDICT { code, chain }`.
pub(crate) fn write_verdict(w: &mut Writer, verdict: &Verdict) {
    let nest = w.nest(NFTA_DATA_VERDICT);
    w.u32(NFTA_VERDICT_CODE, verdict.code() as u32);
    w.str(NFTA_VERDICT_CHAIN, verdict.chain());
    w.close(nest);
}

/// An attribute holding `NFTA_DATA_VALUE { data }`.
pub(crate) fn value(w: &mut Writer, kind: u16, data: &[u8]) {
    let nest = w.nest(kind);
    w.bytes(NFTA_DATA_VALUE, data);
    w.close(nest);
}

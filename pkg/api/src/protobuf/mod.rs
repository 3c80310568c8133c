//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! decoded into the JSON object Kubernetes would see.
//!
//! client-go ≥ 1.32 (kubectl 1.32/1.33 included) sends built-in types as
//! protobuf from its typed clients: `kubectl create configmap|secret|
//! deployment|...`, `kubectl create token`, `kubectl auth can-i|whoami`.
//! kite stores and serves JSON, so the apiserver turns such bodies into
//! [`serde_json::Value`] with [`decode`] and carries on as for a JSON body;
//! responses stay JSON, which those clients also accept.
//!
//! A body is the 4-byte magic `k8s\0` and a `runtime.Unknown` message: the
//! object's `TypeMeta` and its own protobuf encoding (`raw`). The raw bytes are
//! decoded with a descriptor table of every Kubernetes message (field number →
//! JSON name, scalar kind or message, repeated, map) that `build.rs` generates
//! from the `k8s-pb` crate's sources; the JSON names come from the k8s-openapi
//! schemas of [`crate::schema`] (see `table.rs`). Well-known types get their
//! JSON forms: `Time`, `MicroTime`, `Duration`, `Quantity`, `IntOrString`,
//! `RawExtension`, `FieldsV1`, `[]byte` as base64.
//!
//! Go clients write every non-pointer field, zero values included
//! (`generateName: ""`, `generation: 0`); like Go's `omitempty` JSON, empty
//! strings are dropped unless the field is required, and zero numbers and
//! `false` are dropped where the Go field is a plain (non-pointer) value with
//! `omitempty` (see `table.rs` for the rule). Absent fields are omitted.
//!
//! Every [`ProtobufError`] means the client sent a bad body: the apiserver
//! answers it with 400 BadRequest (reason `BadRequest`) carrying the error's
//! message, as kube-apiserver does for undecodable bodies.

mod format;
mod message;
mod table;
mod wire;

use serde_json::Value;

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4 bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Deeper message nesting than this is rejected (a stack guard; real objects,
/// CRD schemas included, stay far below it).
const MAX_DEPTH: usize = 100;

/// Why a protobuf body could not be decoded: a client error (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("protobuf body does not start with the k8s\\0 magic prefix")]
    MissingMagic,
    /// The envelope or a message is not valid protobuf.
    #[error("malformed protobuf in {message}{}: {reason}", field_suffix(.field))]
    Malformed {
        /// The message being decoded, e.g. `io.k8s.api.core.v1.Pod`.
        message: String,
        /// The field being decoded, when known (its JSON name).
        field: Option<String>,
        /// What was wrong.
        reason: String,
    },
    /// The object carries neither an apiVersion/kind nor an expected kind.
    #[error("protobuf body has no apiVersion and kind")]
    MissingKind,
    /// No built-in message matches the object's kind.
    #[error("no protobuf message for kind {kind} in {api_version}")]
    UnknownKind {
        /// The body's (or expected) apiVersion.
        api_version: String,
        /// The body's (or expected) kind.
        kind: String,
    },
    /// The body's kind is not the one the endpoint takes.
    #[error("the object in the body ({got}) does not match the expected kind ({expected})")]
    KindMismatch {
        /// `apiVersion, Kind=...` of the body.
        got: String,
        /// `apiVersion, Kind=...` the endpoint expects.
        expected: String,
    },
    /// The envelope names a content encoding (such as gzip) kite does not take.
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedEncoding(String),
    /// A value is out of range (a timestamp outside years 0–9999, a NaN).
    #[error("invalid value in {message}.{field}: {reason}")]
    InvalidValue {
        /// The message holding the value.
        message: String,
        /// The field's JSON name.
        field: String,
        /// What was wrong.
        reason: String,
    },
    /// Embedded JSON (`RawExtension`, `FieldsV1`, CRD `JSON`) does not parse.
    #[error("invalid embedded JSON in {message}: {source}")]
    EmbeddedJson {
        /// The message holding the JSON, e.g. `io.k8s.apimachinery.pkg.runtime.RawExtension`.
        message: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Messages nest deeper than kite accepts.
    #[error("protobuf messages nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

fn field_suffix(field: &Option<String>) -> String {
    field.as_ref().map(|f| format!(".{f}")).unwrap_or_default()
}

/// Results of this module.
pub type Result<T, E = ProtobufError> = std::result::Result<T, E>;

/// Decodes a Kubernetes protobuf body into the object's JSON form.
///
/// `expected` is the (group, version, kind) the endpoint takes, e.g.
/// `("apps", "v1", "Deployment")`; it is used when the body carries no
/// `TypeMeta` and checked against it when it does (options kinds such as
/// `DeleteOptions` may come in any group version). The result has
/// `apiVersion` and `kind` set.
pub fn decode(body: &[u8], expected: Option<(&str, &str, &str)>) -> Result<Value> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    message::decode_unknown(rest, expected, 0)
}

/// Whether a `Content-Type` header value names Kubernetes protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

#[cfg(test)]
mod tests;

//! Messages to JSON: the `runtime.Unknown` envelope, generic messages driven
//! by the descriptor table, and the well-known types with JSON forms of their own.

use super::format;
use super::table::{Label, META_V1, Message, RawKind, Special, TABLE, Table, Zero};
use super::wire::{Raw, Reader};
use super::{MAGIC, MAX_DEPTH, ProtobufError, Result};
use base64::Engine as _;
use serde_json::{Map, Number, Value};

const UNKNOWN: &str = "io.k8s.apimachinery.pkg.runtime.Unknown";

/// Decodes a `runtime.Unknown` (the bytes after the magic) into its object.
pub(super) fn decode_unknown(
    bytes: &[u8],
    expected: Option<(&str, &str, &str)>,
    depth: usize,
) -> Result<Value> {
    let envelope = Envelope::parse(bytes)?;
    if !envelope.content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(
            envelope.content_encoding,
        ));
    }
    let (api_version, kind) = match (
        envelope.api_version.is_empty() && envelope.kind.is_empty(),
        expected,
    ) {
        (false, _) => (envelope.api_version, envelope.kind),
        (true, Some((group, version, kind))) => (api_version_of(group, version), kind.to_string()),
        (true, None) => return Err(ProtobufError::MissingKind),
    };
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version.as_str()),
    };
    let table = &*TABLE;
    let index = table.lookup(group, version, &kind);
    if let Some((eg, ev, ek)) = expected {
        let options = index.is_some_and(|i| table.messages[i].name.starts_with(META_V1));
        if kind != ek || (!options && (group != eg || version != ev)) {
            return Err(ProtobufError::KindMismatch {
                got: format!("{api_version}, Kind={kind}"),
                expected: format!("{}, Kind={ek}", api_version_of(eg, ev)),
            });
        }
    }
    let mut object = match envelope.content_type.as_str() {
        "" | super::CONTENT_TYPE => {
            let index = index.ok_or_else(|| ProtobufError::UnknownKind {
                api_version: api_version.clone(),
                kind: kind.clone(),
            })?;
            message(table, index, envelope.raw, depth + 1)?
        }
        ct if ct.starts_with("application/json") => embedded_json(UNKNOWN, envelope.raw)?,
        other => {
            return Err(malformed(
                UNKNOWN,
                Some("contentType"),
                format!("unsupported content type {other:?}"),
            ));
        }
    };
    if let Value::Object(map) = &mut object {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(object)
}

fn api_version_of(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// The fields of `runtime.Unknown`.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>> {
        let mut envelope = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
            content_type: String::new(),
        };
        let mut reader = Reader::new(bytes);
        while let Some((tag, value)) = reader.field().map_err(|r| malformed(UNKNOWN, None, r))? {
            let name = match tag {
                1 => "typeMeta",
                2 => "raw",
                3 => "contentEncoding",
                4 => "contentType",
                _ => continue,
            };
            let Raw::Len(data) = value else {
                return Err(malformed(
                    UNKNOWN,
                    Some(name),
                    "expected a length-delimited field",
                ));
            };
            match tag {
                1 => {
                    let mut meta = Reader::new(data);
                    while let Some((tag, value)) = meta
                        .field()
                        .map_err(|r| malformed(UNKNOWN, Some(name), r))?
                    {
                        match (tag, value) {
                            (1, Raw::Len(s)) => envelope.api_version = utf8(s),
                            (2, Raw::Len(s)) => envelope.kind = utf8(s),
                            (1 | 2, _) => {
                                return Err(malformed(UNKNOWN, Some(name), "expected a string"));
                            }
                            _ => {}
                        }
                    }
                }
                2 => envelope.raw = data,
                3 => envelope.content_encoding = utf8(data),
                _ => envelope.content_type = utf8(data),
            }
        }
        Ok(envelope)
    }
}

/// Decodes message `index` of the table.
pub(super) fn message(table: &Table, index: usize, bytes: &[u8], depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep);
    }
    let msg = &table.messages[index];
    match msg.special {
        Special::None => generic(table, msg, bytes, depth),
        special => well_known(table, msg, special, bytes, depth),
    }
}

fn generic(table: &Table, msg: &Message, bytes: &[u8], depth: usize) -> Result<Value> {
    let mut out = Map::new();
    let mut reader = Reader::new(bytes);
    while let Some((tag, raw)) = reader.field().map_err(|r| malformed(&msg.name, None, r))? {
        let Some(field) = msg.field(tag) else {
            continue; // unknown fields are skipped, as Go's decoder does
        };
        let ctx = |reason: &str| malformed(&msg.name, Some(&field.json), reason);
        match field.label {
            Label::Single if field.inline => {
                if let Value::Object(fields) =
                    scalar_or_message(table, msg, &field.json, field.kind, raw, depth)?
                {
                    out.extend(fields);
                }
            }
            Label::Single => {
                let value = scalar_or_message(table, msg, &field.json, field.kind, raw, depth)?;
                if field.zero == Zero::Drop && is_zero(&value) {
                    out.remove(&field.json);
                } else {
                    out.insert(field.json.clone(), value);
                }
            }
            Label::Repeated => {
                let slot = out
                    .entry(field.json.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(items) = slot else {
                    return Err(ctx("repeated field seen twice"));
                };
                match (raw, field.kind) {
                    (
                        Raw::Len(data),
                        RawKind::Bool | RawKind::Int32 | RawKind::Int64 | RawKind::Double,
                    ) => {
                        let mut packed = Reader::new(data);
                        while !packed.is_empty() {
                            let value = if field.kind == RawKind::Double {
                                Raw::Fixed64(packed.fixed64().map_err(ctx)?)
                            } else {
                                Raw::Varint(packed.varint().map_err(ctx)?)
                            };
                            items.push(scalar_or_message(
                                table,
                                msg,
                                &field.json,
                                field.kind,
                                value,
                                depth,
                            )?);
                        }
                    }
                    _ => items.push(scalar_or_message(
                        table,
                        msg,
                        &field.json,
                        field.kind,
                        raw,
                        depth,
                    )?),
                }
            }
            Label::Map => {
                let Raw::Len(entry) = raw else {
                    return Err(ctx("map entry is not length-delimited"));
                };
                let (key, value) = map_entry(table, msg, &field.json, field.kind, entry, depth)?;
                let slot = out
                    .entry(field.json.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = slot {
                    map.insert(key, value);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// One `map<string, V>` entry: key 1, value 2 (absent parts are zero values).
fn map_entry(
    table: &Table,
    msg: &Message,
    field: &str,
    kind: RawKind,
    entry: &[u8],
    depth: usize,
) -> Result<(String, Value)> {
    let mut key = String::new();
    let mut value = None;
    let mut reader = Reader::new(entry);
    while let Some((tag, raw)) = reader
        .field()
        .map_err(|r| malformed(&msg.name, Some(field), r))?
    {
        match (tag, raw) {
            (1, Raw::Len(s)) => key = utf8(s),
            (1, _) => return Err(malformed(&msg.name, Some(field), "map key is not a string")),
            (2, raw) => value = Some(scalar_or_message(table, msg, field, kind, raw, depth)?),
            _ => {}
        }
    }
    let value = match value {
        Some(value) => value,
        None => scalar_or_message(table, msg, field, kind, zero_raw(kind), depth)?,
    };
    Ok((key, value))
}

fn zero_raw(kind: RawKind) -> Raw<'static> {
    match kind {
        RawKind::Bool | RawKind::Int32 | RawKind::Int64 => Raw::Varint(0),
        RawKind::Double => Raw::Fixed64(0),
        RawKind::String | RawKind::Bytes | RawKind::Message(_) => Raw::Len(&[]),
    }
}

/// One value of a field.
fn scalar_or_message(
    table: &Table,
    msg: &Message,
    field: &str,
    kind: RawKind,
    raw: Raw<'_>,
    depth: usize,
) -> Result<Value> {
    let wrong = || {
        let expected = match kind {
            RawKind::String => "string",
            RawKind::Bytes => "bytes",
            RawKind::Message(_) => "message",
            RawKind::Bool => "bool",
            RawKind::Int32 => "int32",
            RawKind::Int64 => "int64",
            RawKind::Double => "double",
        };
        malformed(
            &msg.name,
            Some(field),
            format!(
                "wire type {:?} does not fit a {expected} field",
                raw.wire_type()
            ),
        )
    };
    Ok(match (kind, raw) {
        (RawKind::String, Raw::Len(data)) => Value::String(utf8(data)),
        (RawKind::Bytes, Raw::Len(data)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(data))
        }
        (RawKind::Message(index), Raw::Len(data)) => message(table, index, data, depth + 1)?,
        (RawKind::Bool, Raw::Varint(v)) => Value::Bool(v != 0),
        (RawKind::Int32, Raw::Varint(v)) => Value::from(v as i32),
        (RawKind::Int64, Raw::Varint(v)) => Value::from(v as i64),
        (RawKind::Double, Raw::Fixed64(bits)) => {
            let value = f64::from_bits(bits);
            Value::Number(
                Number::from_f64(value).ok_or_else(|| ProtobufError::InvalidValue {
                    message: msg.name.clone(),
                    field: field.to_string(),
                    reason: format!("{value} is not a JSON number"),
                })?,
            )
        }
        _ => return Err(wrong()),
    })
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// The scalar fields of a small well-known message, by tag.
struct Fields<'a> {
    varints: [Option<u64>; 4],
    bytes: [Option<&'a [u8]>; 4],
    /// Tag 2 repeated length-delimited values (`JSONSchemas`, `property`).
    repeated: Vec<&'a [u8]>,
}

fn fields<'a>(msg: &Message, bytes: &'a [u8]) -> Result<Fields<'a>> {
    let mut out = Fields {
        varints: [None; 4],
        bytes: [None; 4],
        repeated: Vec::new(),
    };
    let mut reader = Reader::new(bytes);
    while let Some((tag, raw)) = reader.field().map_err(|r| malformed(&msg.name, None, r))? {
        let Some(slot) = usize::try_from(tag).ok().filter(|t| *t < 4) else {
            continue;
        };
        match raw {
            Raw::Varint(v) => out.varints[slot] = Some(v),
            Raw::Len(data) => {
                if slot == 2 {
                    out.repeated.push(data);
                }
                out.bytes[slot] = Some(data);
            }
            Raw::Fixed32 | Raw::Fixed64(_) => {
                let field = msg.field(tag).map(|f| f.json.as_str());
                return Err(malformed(&msg.name, field, "unexpected fixed-width value"));
            }
        }
    }
    Ok(out)
}

fn well_known(
    table: &Table,
    msg: &Message,
    special: Special,
    bytes: &[u8],
    depth: usize,
) -> Result<Value> {
    let f = fields(msg, bytes)?;
    let int = |tag: usize| f.varints[tag].unwrap_or(0);
    let child = |name: &str| msg.fields.iter().find(|f| f.json == name).map(|f| f.kind);
    Ok(match special {
        Special::Time | Special::MicroTime => {
            if bytes.is_empty() {
                return Ok(Value::Null); // Go's zero time
            }
            let micro = special == Special::MicroTime;
            let text = format::rfc3339(int(1) as i64, int(2) as i32, micro).ok_or_else(|| {
                ProtobufError::InvalidValue {
                    message: msg.name.clone(),
                    field: "seconds".into(),
                    reason: format!("{} seconds is outside years 0-9999", int(1) as i64),
                }
            })?;
            Value::String(text)
        }
        Special::Duration => Value::String(format::go_duration(int(1) as i64)),
        Special::Quantity => match f.bytes[1] {
            Some(s) if !s.is_empty() => Value::String(utf8(s)),
            _ => Value::String("0".into()),
        },
        Special::IntOrString => match int(1) {
            1 => Value::String(f.bytes[3].map(utf8).unwrap_or_default()),
            _ => Value::from(int(2) as i32),
        },
        Special::RawExtension => match f.bytes[1] {
            Some(raw) if raw.starts_with(MAGIC) => {
                decode_unknown(&raw[MAGIC.len()..], None, depth + 1)?
            }
            Some(raw) if !raw.is_empty() => embedded_json(&msg.name, raw)?,
            _ => Value::Null,
        },
        Special::FieldsV1 | Special::Json => match f.bytes[1] {
            Some(raw) if !raw.is_empty() => embedded_json(&msg.name, raw)?,
            _ => Value::Null,
        },
        Special::Unknown => decode_unknown(bytes, None, depth + 1)?,
        Special::Items => generic(table, msg, bytes, depth)?
            .get_mut("items")
            .map(Value::take)
            .unwrap_or_else(|| Value::Array(Vec::new())),
        Special::SchemaOrBool => match (f.bytes[2], child("schema")) {
            (Some(schema), Some(RawKind::Message(i))) => message(table, i, schema, depth + 1)?,
            _ => Value::Bool(int(1) != 0),
        },
        Special::SchemaOrArray => {
            let schema = child("schema");
            match (f.repeated.is_empty(), f.bytes[1], schema) {
                (false, _, Some(RawKind::Message(i))) => Value::Array(
                    f.repeated
                        .iter()
                        .map(|s| message(table, i, s, depth + 1))
                        .collect::<Result<_>>()?,
                ),
                (true, Some(s), Some(RawKind::Message(i))) => message(table, i, s, depth + 1)?,
                _ => Value::Null,
            }
        }
        Special::SchemaOrStringArray => {
            match (f.repeated.is_empty(), f.bytes[1], child("schema")) {
                (false, _, _) => {
                    Value::Array(f.repeated.iter().map(|s| Value::String(utf8(s))).collect())
                }
                (true, Some(s), Some(RawKind::Message(i))) => message(table, i, s, depth + 1)?,
                _ => Value::Null,
            }
        }
        Special::None => generic(table, msg, bytes, depth)?,
    })
}

fn embedded_json(message: &str, raw: &[u8]) -> Result<Value> {
    serde_json::from_slice(raw).map_err(|source| ProtobufError::EmbeddedJson {
        message: message.to_string(),
        source,
    })
}

/// Go strings hold any bytes; its JSON encoder replaces invalid UTF-8 with U+FFFD.
fn utf8(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn malformed(message: &str, field: Option<&str>, reason: impl Into<String>) -> ProtobufError {
    ProtobufError::Malformed {
        message: message.to_string(),
        field: field.map(str::to_string),
        reason: reason.into(),
    }
}

//! Values the store hands out (key-values, watch events, outcomes of conditional writes)
//! and the small pure rules every backend shares: which revision a read is served at and
//! which keys a prefix covers.

use bytes::Bytes;

use crate::error::{Error, Result};

/// One key at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, e.g. `/registry/pods/default/web-0`.
    pub key: String,
    /// The stored bytes.
    pub value: Bytes,
    /// Revision of the create that started this key's current lifetime.
    pub create_revision: i64,
    /// Revision of the write that produced this value.
    pub mod_revision: i64,
    /// Lease id attached by the writer (0 for none). Stored, not expired, by this crate.
    pub lease: i64,
}

/// What a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A create or an update.
    Put,
    /// A delete.
    Delete,
}

/// One change seen by a watcher.
///
/// For `Put`, `kv` is the new value and `prev_kv` the value it replaced (`None` for a create).
/// For `Delete`, `kv` carries only the key and the delete's revision (as etcd does) and
/// `prev_kv` is the deleted value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    /// The revision of the write that produced this event.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

/// One page of a `list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    /// The revision the page was read at; pass it back to continue with the same snapshot.
    pub revision: i64,
    /// Live keys in key order.
    pub kvs: Vec<KeyValue>,
    /// Whether keys remain after the last one returned.
    pub more: bool,
    /// How many live keys the requested range holds in all (this page included), so
    /// `count - kvs.len()` keys remain.
    pub count: i64,
}

/// Result of a compare-and-swap update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The value was written at `revision`.
    Updated {
        /// The new revision.
        revision: i64,
    },
    /// The key's mod revision was not the expected one; nothing was written.
    Conflict {
        /// The store's revision when the update was refused.
        revision: i64,
        /// The key's current value, `None` if it does not exist.
        current: Option<KeyValue>,
    },
}

/// Result of a delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// A tombstone was written at `revision`.
    Deleted {
        /// The delete's revision.
        revision: i64,
        /// The value that was deleted.
        prev: KeyValue,
    },
    /// The key does not exist; nothing was written.
    NotFound {
        /// The store's revision when the delete was refused.
        revision: i64,
    },
    /// The key's mod revision was not the expected one; nothing was written.
    Conflict {
        /// The store's revision when the delete was refused.
        revision: i64,
        /// The key's current value.
        current: KeyValue,
    },
}

/// The revision a read asking for `requested` is served at (0 means the newest), or why
/// it cannot be served.
pub(crate) fn resolve_revision(requested: i64, current: i64, compact: i64) -> Result<i64> {
    if requested == 0 {
        return Ok(current);
    }
    if requested > current {
        return Err(Error::FutureRevision { requested, current });
    }
    if requested < compact {
        return Err(Error::Compacted {
            requested,
            compact_revision: compact,
        });
    }
    Ok(requested)
}

/// The half-open key range `[start, end)` holding exactly the keys that start with `prefix`
/// and sort after `start_after`. `end` is `None` when the range is unbounded above.
pub(crate) fn key_range(prefix: &str, start_after: Option<&str>) -> (String, Option<String>) {
    let mut start = prefix.to_owned();
    if let Some(after) = start_after {
        // The smallest string greater than `after` is `after` followed by NUL.
        let mut next = String::with_capacity(after.len() + 1);
        next.push_str(after);
        next.push('\0');
        if next > start {
            start = next;
        }
    }
    (start, prefix_end(prefix))
}

/// The smallest string greater than every string starting with `prefix`; `None` when no
/// such bound exists (empty prefix, or one made only of `char::MAX`). UTF-8 byte order is
/// code point order, so incrementing the last character that can be incremented works for
/// SQLite's binary text comparison as well as for Rust's `str` ordering.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if next == 0xD800 {
            next = 0xE000; // skip the surrogate gap
        }
        if let Some(next) = char::from_u32(next) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check_end(prefix: &str, expected: Option<&str>) {
        assert_eq!(prefix_end(prefix).as_deref(), expected, "prefix {prefix:?}");
    }

    #[test]
    fn prefix_end_increments_the_last_character() {
        check_end("", None);
        check_end("/registry/", Some("/registry0"));
        check_end("a", Some("b"));
        check_end("a\u{D7FF}", Some("a\u{E000}"));
        check_end("a\u{10FFFF}", Some("b"));
        check_end("\u{10FFFF}", None);
    }

    #[test]
    fn key_range_covers_exactly_the_prefixed_keys_after_the_start() {
        let (start, end) = key_range("a/", Some("a/b"));
        assert_eq!(start, "a/b\0");
        assert_eq!(end.as_deref(), Some("a0"));
        for key in ["a/b\0", "a/c", "a/\u{10FFFF}x"] {
            assert!(key >= start.as_str() && key < end.as_deref().unwrap_or("\u{10FFFF}"));
        }
        let (start, _) = key_range("b/", Some("a/z"));
        assert_eq!(start, "b/");
    }

    #[test]
    fn revision_zero_means_the_newest_and_bounds_are_checked() {
        assert_eq!(resolve_revision(0, 7, 3).ok(), Some(7));
        assert_eq!(resolve_revision(3, 7, 3).ok(), Some(3));
        assert!(matches!(
            resolve_revision(2, 7, 3),
            Err(Error::Compacted {
                requested: 2,
                compact_revision: 3
            })
        ));
        assert!(matches!(
            resolve_revision(8, 7, 3),
            Err(Error::FutureRevision {
                requested: 8,
                current: 7
            })
        ));
    }
}

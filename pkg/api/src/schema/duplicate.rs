//! Duplicate-key detection in raw JSON, for `fieldValidation=Strict|Warn`.
//!
//! `serde_json::Value` keeps only the last of duplicate keys, so duplicates
//! are found by a small scan over the bytes. Paths read like unknown-field
//! paths (`spec.replicas`, `spec.containers[0].name`); the caller reports each
//! as `duplicate field "<path>"` in the strict decoding error. YAML bodies are
//! checked by the YAML decoder instead.

use std::collections::HashSet;

/// Paths of keys that appear more than once in the same JSON object, in the
/// order the second occurrence is met. Malformed input stops the scan early
/// (the JSON decoder reports the syntax error).
pub fn duplicate_fields(raw_json: &[u8]) -> Vec<String> {
    let mut scanner = Scanner {
        bytes: raw_json,
        pos: 0,
        found: Vec::new(),
    };
    scanner.skip_ws();
    let _ = scanner.value("", 0);
    scanner.found
}

/// Nesting deeper than this is not scanned (the decoder rejects it anyway).
const MAX_DEPTH: usize = 10_000;

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    found: Vec<String>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    fn value(&mut self, path: &str, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.object(path, depth),
            b'[' => self.array(path, depth),
            b'"' => self.string().map(|_| ()),
            _ => {
                while matches!(self.peek(), Some(c) if !matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }

    fn object(&mut self, path: &str, depth: usize) -> Option<()> {
        self.pos += 1;
        let mut seen = HashSet::new();
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if !seen.insert(key) {
                self.found.push(child.clone());
            }
            self.skip_ws();
            if self.peek()? != b':' {
                return None;
            }
            self.pos += 1;
            self.skip_ws();
            self.value(&child, depth + 1)?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, path: &str, depth: usize) -> Option<()> {
        self.pos += 1;
        self.skip_ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        let mut index = 0usize;
        loop {
            self.skip_ws();
            self.value(&format!("{path}[{index}]"), depth + 1)?;
            index += 1;
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A JSON string, decoded (escapes included) by serde_json.
    fn string(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        loop {
            let c = self.peek()?;
            self.pos += 1;
            match c {
                b'\\' => {
                    // Skip the escaped byte; `\uXXXX` digits are plain bytes.
                    self.pos += 1;
                    escaped = true;
                }
                b'"' => break,
                _ => {}
            }
        }
        let raw = self.bytes.get(start..self.pos)?;
        if escaped {
            serde_json::from_slice(raw).ok()
        } else {
            // Without escapes the content between the quotes is the string.
            std::str::from_utf8(raw.get(1..raw.len() - 1)?)
                .ok()
                .map(str::to_string)
        }
    }
}

//! Field selectors: `a=b,c!=d,e==f` with `\,` `\=` `\\` escapes in values.
//!
//! Mirrors `k8s.io/apimachinery/pkg/fields`: terms are sorted by their text,
//! values are unescaped, and a field absent from an object reads as the empty
//! string. Which fields a kind accepts, and their values for an object, live
//! in `field_labels`.

use super::Error;
use std::collections::BTreeMap;
use std::fmt;

/// The selectable fields of one object: label → value. Absent fields read as `""`.
pub type FieldSet = BTreeMap<String, String>;

/// Whether a term wants equality or inequality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One `field op value` term.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Term {
    /// The field label, e.g. `spec.nodeName`.
    pub field: String,
    /// Equality or inequality.
    pub operator: FieldOperator,
    /// The unescaped value.
    pub value: String,
}

impl Term {
    /// Whether `fields` satisfy this term.
    pub fn matches(&self, fields: &FieldSet) -> bool {
        let actual = fields.get(&self.field).map_or("", String::as_str);
        (actual == self.value) == (self.operator == FieldOperator::Equals)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A field selector: the AND of its terms; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    terms: Vec<Term>,
}

impl Selector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector from terms, kept in the order given.
    pub fn from_terms(terms: Vec<Term>) -> Self {
        Self { terms }
    }

    /// Parses `a=b,c!=d`, as `fields.ParseSelector`.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let mut parts = split_terms(input);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, operator, raw)) = split_term(part) else {
                return Err(Error::InvalidFieldSelector(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                )));
            };
            let value = unescape_value(raw)?;
            terms.push(Term {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(Self { terms })
    }

    /// The terms, in parsed order.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Whether the selector restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether `fields` satisfy every term.
    pub fn matches(&self, fields: &FieldSet) -> bool {
        self.terms.iter().all(|t| t.matches(fields))
    }

    /// The value `field` must equal, if a term pins it.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }

    /// Rewrites every term's field and value through `convert` (`Selector.Transform`),
    /// failing on the first error, as the apiserver does with field label conversion.
    pub fn transform(
        &self,
        mut convert: impl FnMut(&str, &str) -> Result<(String, String), Error>,
    ) -> Result<Self, Error> {
        let terms = self
            .terms
            .iter()
            .map(|t| {
                let (field, value) = convert(&t.field, &t.value)?;
                Ok(Term {
                    field,
                    operator: t.operator,
                    value,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Self { terms })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Selector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// Splits at commas not preceded by a backslash; escapes stay in the pieces.
fn split_terms(input: &str) -> Vec<&str> {
    if input.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in input.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&input[start..i]);
            start = i + 1;
        }
    }
    terms.push(&input[start..]);
    terms
}

/// Splits at the first operator (`!=`, then `==`, then `=`, tried at each position).
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::Equals),
        ("=", FieldOperator::Equals),
    ];
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in OPERATORS {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

/// Escapes `\`, `,` and `=` so a literal can be used as a field selector value.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_value`]; unknown escapes and bare `,`/`=` are errors.
pub fn unescape_value(value: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(value.len());
    let mut in_slash = false;
    for c in value.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(Error::InvalidFieldSelector(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its number.
            ',' | '=' => {
                return Err(Error::InvalidFieldSelector(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(Error::InvalidFieldSelector(
            "invalid field selector: invalid escape sequence: \\".into(),
        ));
    }
    Ok(out)
}

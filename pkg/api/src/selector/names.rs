//! Helpers selector errors share with the rest of the crate.
//!
//! Label keys and values are checked by `crate::validation::names` (the same
//! words apimachinery uses); this module re-exports those checks under the
//! names the selector parser uses and adds Go's `%q` quoting.

pub(crate) use crate::validation::names::{
    is_qualified_name as qualified_name_errors, is_valid_label_value as label_value_errors,
};

/// A string quoted the way Go's `%q` quotes it.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_accept_prefixes_and_reject_bad_parts() {
        assert!(qualified_name_errors("app").is_empty());
        assert!(qualified_name_errors("example.com/My_name-1").is_empty());
        assert_eq!(
            qualified_name_errors("-a"),
            [
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        assert_eq!(
            qualified_name_errors("/a"),
            ["prefix part must be non-empty"]
        );
        let errs = qualified_name_errors("Ex.com/");
        assert_eq!(errs.len(), 3);
        assert!(errs[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert_eq!(errs[1], "name part must be non-empty");
        assert!(qualified_name_errors("a/b/c")[0].ends_with(
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
        assert_eq!(
            qualified_name_errors(&"a".repeat(64))[0],
            "name part must be no more than 63 characters"
        );
    }

    #[test]
    fn label_values_may_be_empty() {
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("v1.2_x").is_empty());
        assert_eq!(label_value_errors("a b").len(), 1);
        assert_eq!(
            label_value_errors(&"a".repeat(64)),
            ["must be no more than 63 characters"]
        );
    }

    #[test]
    fn go_quote_escapes_like_go() {
        assert_eq!(go_quote("a\"b\\c\n\x01"), r#""a\"b\\c\n\x01""#);
    }
}

//! Image references, normalised the way Docker and containerd do it.
//!
//! `busybox` is `docker.io/library/busybox:latest`, `me/app` is
//! `docker.io/me/app:latest`, `host:5000/x:tag` keeps its registry, and a
//! `@sha256:` digest pins the content (a tag beside it is kept for display).
//! The first path component is a registry when it contains a `.` or a `:`, or
//! is `localhost`.

use crate::digest::Digest;
use std::fmt;
use std::str::FromStr;

/// The registry short names resolve to.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// Errors parsing a reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The reference does not follow the grammar.
    #[error("invalid image reference {reference:?}: {reason}")]
    Invalid {
        /// The text given.
        reference: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A fully qualified image reference: registry, repository, tag and/or digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises `text`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::Invalid {
            reference: text.to_string(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        if text.len() > 4096 {
            return Err(invalid("too long"));
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (
                name,
                Some(
                    Digest::parse(digest)
                        .map_err(|_| invalid("digest must be sha256: and 64 hex digits"))?,
                ),
            ),
            None => (text, None),
        };
        // A tag follows the last ':' after the last '/' (a registry port comes before a '/').
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let split = last_slash + i;
                (&name[..split], Some(&name[split + 1..]))
            }
            None => (name, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(invalid(
                "tag must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            ));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, rest)
            }
            _ => (DEFAULT_REGISTRY, name),
        };
        if !valid_registry(registry) {
            return Err(invalid(
                "registry must be a host name with an optional port",
            ));
        }
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(invalid(
                "repository must be lower-case path components of letters, digits and separators ('.', '_', '__', '-')",
            ));
        }
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if registry.len() + 1 + repository.len() > 255 {
            return Err(invalid("repository name longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The registry host (and port), e.g. `docker.io` or `host:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when neither a tag nor a digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text)
    }
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
    host_ok && port_ok
}

/// A path component: alphanumerics separated by one `.`, one or two `_`, or any number of `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_lowercase() && !bytes[0].is_ascii_digit()
        || !bytes[bytes.len() - 1].is_ascii_lowercase() && !bytes[bytes.len() - 1].is_ascii_digit()
    {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn check(input: &str, expected: &str) {
        let parsed = Reference::parse(input).unwrap();
        assert_eq!(parsed.to_string(), expected, "{input}");
        // Normalising is idempotent.
        assert_eq!(Reference::parse(expected).unwrap(), parsed, "{expected}");
    }

    #[test]
    fn short_names_resolve_like_docker() {
        check("busybox", "docker.io/library/busybox:latest");
        check("busybox:1.36", "docker.io/library/busybox:1.36");
        check("me/app", "docker.io/me/app:latest");
        check("docker.io/busybox", "docker.io/library/busybox:latest");
        check(
            "index.docker.io/library/busybox:x",
            "docker.io/library/busybox:x",
        );
        check("localhost/app", "localhost/app:latest");
        check("host:5000/x:tag", "host:5000/x:tag");
        check(
            "registry.example.com/a/b/c:v1.2",
            "registry.example.com/a/b/c:v1.2",
        );
        check("a__b/c-d---e/f.g", "docker.io/a__b/c-d---e/f.g:latest");
    }

    #[test]
    fn digests_pin_content() {
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), D);
        check(&format!("host:5000/x:t@{D}"), &format!("host:5000/x:t@{D}"));
    }

    #[test]
    fn bad_references_are_rejected_with_a_reason() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "/busybox",
            "busybox@sha256:123",
            "busybox@md5:abc",
            "host:port/x",
            "a/b_-c",
            "busybox::1",
            "-a/b",
        ] {
            let err = Reference::parse(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid image reference"),
                "{bad}: {err}"
            );
        }
    }

    proptest! {
        #[test]
        fn normalised_references_parse_back_to_themselves(
            registry in prop::option::of("[a-z][a-z0-9]{0,8}\\.[a-z]{2,3}(:[1-9][0-9]{0,3})?"),
            path in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}([._-][a-z0-9]{1,4})?){0,3}",
            tag in prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        ) {
            let mut text = String::new();
            if let Some(r) = &registry { text.push_str(r); text.push('/'); }
            text.push_str(&path);
            if let Some(t) = &tag { text.push(':'); text.push_str(t); }
            let parsed = Reference::parse(&text).unwrap();
            prop_assert_eq!(parsed.tag(), Some(tag.as_deref().unwrap_or("latest")));
            prop_assert_eq!(Reference::parse(&parsed.to_string()).unwrap(), parsed);
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,80}") {
            let _ = Reference::parse(&text);
        }
    }
}

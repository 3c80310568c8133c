//! Join tokens: `K10<sha256 of the server CA PEM>::server:<secret>`, stored in
//! `<data-dir>/server/token`. The agent pins the server CA by the hash.

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fs::{PRIVATE, enforce_mode, read, read_optional, write_atomic};
use crate::util::{hex, random_bytes, sha256_hex};

/// Prefix of a full token.
pub const TOKEN_PREFIX: &str = "K10";
/// User name in server tokens.
pub const SERVER_USER: &str = "server";

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Lower-case hex SHA-256 of the server CA PEM file, when the token carries it.
    pub ca_hash: Option<String>,
    /// `server` unless the token says otherwise.
    pub username: String,
    /// The secret.
    pub password: String,
}

impl fmt::Display for Token {
    /// The full `K10<hash>::<user>:<password>` form when the CA hash is known, otherwise the
    /// bare password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ca_hash {
            Some(hash) => write!(
                f,
                "{TOKEN_PREFIX}{hash}::{}:{}",
                self.username, self.password
            ),
            None => f.write_str(&self.password),
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("ca_hash", &self.ca_hash)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses `K10<hash>::<user>:<password>` (or `K10<hash>::<password>`, user `server`) or a
/// bare secret (user `server`, no CA hash).
pub fn parse_token(token: &str) -> Result<Token> {
    parse(token).map_err(|reason| Error::InvalidToken {
        reason: reason.to_string(),
    })
}

fn parse(token: &str) -> Result<Token, &'static str> {
    let token = token.trim();
    if token.is_empty() {
        return Err("empty token");
    }
    if token.chars().any(char::is_whitespace) {
        return Err("token contains whitespace");
    }
    let full = token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once("::"));
    let Some((hash, creds)) = full else {
        return Ok(Token {
            ca_hash: None,
            username: SERVER_USER.to_string(),
            password: token.to_string(),
        });
    };
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("CA hash after K10 is not 64 hexadecimal digits (SHA-256)");
    }
    let (username, password) = creds.split_once(':').unwrap_or((SERVER_USER, creds));
    if username.is_empty() {
        return Err("empty user name");
    }
    if password.is_empty() {
        return Err("empty secret");
    }
    Ok(Token {
        ca_hash: Some(hash.to_ascii_lowercase()),
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// Lower-case hex SHA-256 of the bytes of a CA PEM file: the hash in a `K10` token.
pub fn ca_hash(ca_pem: &[u8]) -> String {
    sha256_hex(ca_pem)
}

/// Makes sure `<server_dir>/token` holds `K10<sha256 of ca_cert_path>::server:<secret>` with
/// mode 0600, and returns it.
///
/// `secret` is the `--token` value: a bare secret or a full token whose hash must match the
/// CA. Without it the existing token's secret is kept, or a random one (32 hex characters) is
/// made on first start. An existing token with the same hash and secret is reused as is.
pub fn ensure_token(
    server_dir: &Path,
    ca_cert_path: &Path,
    secret: Option<&str>,
) -> Result<String> {
    let hash = ca_hash(&read(ca_cert_path)?);
    let wanted = match secret {
        Some(s) => {
            let given = parse_token(s)?;
            if let Some(given_hash) = given.ca_hash.filter(|h| *h != hash) {
                return Err(Error::TokenCaMismatch {
                    ca: ca_cert_path.to_path_buf(),
                    given: given_hash,
                    actual: hash,
                });
            }
            Some(given.password)
        }
        None => None,
    };

    let path = server_dir.join("token");
    let existing = match read_optional(&path)? {
        Some(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| Error::InvalidTokenFile {
                path: path.clone(),
                reason: "file is not UTF-8 text".to_string(),
            })?;
            Some(parse(&text).map_err(|reason| Error::InvalidTokenFile {
                path: path.clone(),
                reason: reason.to_string(),
            })?)
        }
        None => None,
    };

    if let Some(existing) = &existing {
        let same_secret = wanted.as_ref().is_none_or(|w| *w == existing.password);
        if existing.ca_hash.as_deref() == Some(hash.as_str())
            && existing.username == SERVER_USER
            && same_secret
        {
            enforce_mode(&path, PRIVATE)?;
            return Ok(existing.to_string());
        }
    }

    let password = match wanted.or_else(|| existing.map(|t| t.password)) {
        Some(p) => p,
        None => hex(&random_bytes::<16>()?),
    };
    let token = Token {
        ca_hash: Some(hash),
        username: SERVER_USER.to_string(),
        password,
    }
    .to_string();
    write_atomic(&path, format!("{token}\n").as_bytes(), PRIVATE)?;
    tracing::info!(file = %path.display(), "wrote join token");
    Ok(token)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const HASH: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let server = dir.path().join("server");
        let ca = dir.path().join("server-ca.crt");
        std::fs::write(&ca, "abc").unwrap(); // sha256("abc") == HASH
        (dir, server, ca)
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_token_pins_the_ca_hash_and_is_reused() {
        let (_dir, server, ca) = setup();
        let first = ensure_token(&server, &ca, None).unwrap();
        let parsed = parse_token(&first).unwrap();
        assert_eq!(parsed.ca_hash.as_deref(), Some(HASH));
        assert_eq!(parsed.username, "server");
        assert_eq!(parsed.password.len(), 32);
        assert!(parsed.password.bytes().all(|b| b.is_ascii_hexdigit()));
        let file = server.join("token");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), first);

        assert_eq!(ensure_token(&server, &ca, None).unwrap(), first);
        assert_eq!(
            ensure_token(&server, &ca, Some(&parsed.password)).unwrap(),
            first
        );
        assert_eq!(ensure_token(&server, &ca, Some(&first)).unwrap(), first);
    }

    #[test]
    fn given_secret_is_used_and_replaces_the_old_one() {
        let (_dir, server, ca) = setup();
        ensure_token(&server, &ca, None).unwrap();
        let t = ensure_token(&server, &ca, Some("s3cret")).unwrap();
        assert_eq!(t, format!("K10{HASH}::server:s3cret"));
        assert_eq!(
            std::fs::read_to_string(server.join("token")).unwrap(),
            format!("{t}\n")
        );
        // a later start without --token keeps it
        assert_eq!(ensure_token(&server, &ca, None).unwrap(), t);
    }

    #[test]
    fn changed_ca_keeps_the_secret_and_updates_the_hash() {
        let (_dir, server, ca) = setup();
        ensure_token(&server, &ca, Some("s3cret")).unwrap();
        std::fs::write(&ca, "other").unwrap();
        let t = ensure_token(&server, &ca, None).unwrap();
        assert_eq!(t, format!("K10{}::server:s3cret", sha256_hex(b"other")));
    }

    #[test]
    fn full_token_with_wrong_hash_is_rejected() {
        let (_dir, server, ca) = setup();
        let wrong = format!("K10{}::server:x", "0".repeat(64));
        let err = ensure_token(&server, &ca, Some(&wrong)).unwrap_err();
        assert!(matches!(err, Error::TokenCaMismatch { .. }), "{err}");
    }

    #[test]
    fn corrupt_token_file_names_the_file() {
        let (_dir, server, ca) = setup();
        std::fs::create_dir_all(&server).unwrap();
        std::fs::write(server.join("token"), "K10nothex::server:x").unwrap();
        let err = ensure_token(&server, &ca, None).unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
        assert!(
            err.to_string().contains(&server.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn parse_token_round_trips() {
        let check = |input: &str, hash: Option<&str>, user: &str, pass: &str| {
            let t = parse_token(input).unwrap();
            assert_eq!(t.ca_hash.as_deref(), hash, "{input}");
            assert_eq!(t.username, user, "{input}");
            assert_eq!(t.password, pass, "{input}");
            assert_eq!(parse_token(&t.to_string()).unwrap(), t, "{input}");
        };
        check(
            &format!("K10{HASH}::server:abc"),
            Some(HASH),
            "server",
            "abc",
        );
        check(&format!("K10{HASH}::node:a:b"), Some(HASH), "node", "a:b");
        check(&format!("K10{HASH}::abc"), Some(HASH), "server", "abc");
        check(
            &format!("K10{}::server:abc", HASH.to_uppercase()),
            Some(HASH),
            "server",
            "abc",
        );
        check("plain-secret", None, "server", "plain-secret");
        check(
            "K10-looks-like-prefix",
            None,
            "server",
            "K10-looks-like-prefix",
        );
        assert_eq!(
            parse_token(&format!("K10{HASH}::server:abc"))
                .unwrap()
                .to_string(),
            format!("K10{HASH}::server:abc")
        );
        for bad in [
            "",
            "  ",
            "K10abc::server:x",
            &format!("K10{HASH}::server:"),
            "a b",
        ] {
            assert!(parse_token(bad).is_err(), "{bad:?} accepted");
        }
    }
}

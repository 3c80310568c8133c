//! Compact JWS (RFC 7515) with `ES256` on ring: signing and verifying the
//! service-account tokens. Only the signature and the JSON shape are checked
//! here; what the claims mean is `tokens.rs`'s business.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a token could not be signed or verified.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// The key is not an ECDSA P-256 PKCS#8 key.
    #[error("expected an ECDSA P-256 PKCS#8 key (\"BEGIN PRIVATE KEY\")")]
    Key,
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// The token is not `header.payload.signature` with JSON parts.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than ES256.
    #[error("unsupported signing algorithm {0:?}")]
    Algorithm(String),
    /// The signature does not verify.
    #[error("invalid signature")]
    Signature,
}

/// The service-account key: signs and verifies ES256 tokens.
pub(crate) struct Signer {
    key: EcdsaKeyPair,
    key_id: String,
}

impl Signer {
    /// Loads a PKCS#8 PEM ECDSA P-256 private key.
    pub(crate) fn from_pkcs8_pem(pem: &[u8]) -> Result<Self, JwtError> {
        let PrivateKeyDer::Pkcs8(der) =
            PrivateKeyDer::from_pem_slice(pem).map_err(|_| JwtError::Key)?
        else {
            return Err(JwtError::Key);
        };
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .map_err(|_| JwtError::Key)?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(key.public_key().as_ref());
        let key_id = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Ok(Self { key, key_id })
    }

    /// The `kid` header: unpadded base64url of the SHA-256 of the public key's DER.
    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    /// A signed token carrying `claims`.
    pub(crate) fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let header =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(|_| JwtError::Sign)?);
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|_| JwtError::Sign)?);
        let signing_input = format!("{header}.{payload}");
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| JwtError::Sign)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// The claims of `token` if this key signed it.
    pub(crate) fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let parsed = parse(token)?;
        let alg = parsed
            .header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("");
        if alg != "ES256" {
            return Err(JwtError::Algorithm(alg.to_string()));
        }
        let public =
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref());
        public
            .verify(parsed.signing_input.as_bytes(), &parsed.signature)
            .map_err(|_| JwtError::Signature)?;
        Ok(parsed.claims)
    }
}

/// A token split and decoded, not verified.
pub(crate) struct Parsed<'a> {
    /// The JOSE header.
    pub(crate) header: Value,
    /// The claims.
    pub(crate) claims: Value,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// Splits and decodes `token` without verifying it.
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, JwtError> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
    let (header, claims) = signing_input.split_once('.').ok_or(JwtError::Malformed)?;
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed)
    };
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
    let claims: Value =
        serde_json::from_slice(&decode(claims)?).map_err(|_| JwtError::Malformed)?;
    if !header.is_object() || !claims.is_object() {
        return Err(JwtError::Malformed);
    }
    Ok(Parsed {
        header,
        claims,
        signing_input,
        signature: decode(signature)?,
    })
}

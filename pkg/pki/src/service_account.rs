//! The service-account token signing key: ECDSA P-256 (JWT `ES256`), stored as PKCS#8 PEM
//! in `service.key` with its public half in `service.pub`.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use crate::ca::generate_key;
use crate::error::{Error, Result};
use crate::fs::{PRIVATE, PUBLIC, enforce_mode, read_optional, write_atomic};
use crate::pemfile::key_err;

/// The key that signs and verifies service-account tokens.
///
/// Sign with [`sign`](Self::sign) (or load [`private_key_der`](Self::private_key_der) into
/// ring's `EcdsaKeyPair` with `ECDSA_P256_SHA256_FIXED_SIGNING`); verify with
/// [`verify`](Self::verify) or ring's `UnparsedPublicKey` over
/// [`public_key_raw`](Self::public_key_raw) with `ECDSA_P256_SHA256_FIXED`.
pub struct ServiceAccountKey {
    private_pem: String,
    private_der: Vec<u8>,
    public_pem: String,
    public_der: Vec<u8>,
    key_id: String,
    signer: EcdsaKeyPair,
}

impl ServiceAccountKey {
    /// Loads `key_path` (creating it when missing) and keeps `pub_path` in step with it.
    pub(crate) fn ensure(key_path: &Path, pub_path: &Path) -> Result<Self> {
        let private_pem = match read_optional(key_path)? {
            Some(bytes) => {
                enforce_mode(key_path, PRIVATE)?;
                String::from_utf8(bytes).map_err(|_| key_err(key_path, "file is not UTF-8 text"))?
            }
            None => {
                let pem = generate_key(key_path)?.serialize_pem();
                write_atomic(key_path, pem.as_bytes(), PRIVATE)?;
                tracing::info!(file = %key_path.display(), "created service-account signing key");
                pem
            }
        };
        let key = Self::from_pem(key_path, private_pem)?;
        if read_optional(pub_path)?.as_deref() != Some(key.public_pem.as_bytes()) {
            write_atomic(pub_path, key.public_pem.as_bytes(), PUBLIC)?;
        }
        Ok(key)
    }

    fn from_pem(path: &Path, private_pem: String) -> Result<Self> {
        const WANT: &str = "expected an ECDSA P-256 PKCS#8 key (\"BEGIN PRIVATE KEY\")";
        let der = PrivateKeyDer::from_pem_slice(private_pem.as_bytes())
            .map_err(|e| key_err(path, e.to_string()))?;
        let PrivateKeyDer::Pkcs8(pkcs8) = der else {
            return Err(key_err(path, WANT));
        };
        let private_der = pkcs8.secret_pkcs8_der().to_vec();
        let signer = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &private_der,
            &SystemRandom::new(),
        )
        .map_err(|_| key_err(path, WANT))?;
        let rc_key = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &PKCS_ECDSA_P256_SHA256)
            .map_err(|_| key_err(path, WANT))?;
        let public_der = rc_key.subject_public_key_info();
        let key_id =
            URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &public_der));
        Ok(Self {
            private_pem,
            private_der,
            public_pem: rc_key.public_key_pem(),
            public_der,
            key_id,
            signer,
        })
    }

    /// The private key as PKCS#8 PEM (`service.key`).
    pub fn private_key_pem(&self) -> &str {
        &self.private_pem
    }

    /// The private key as PKCS#8 DER.
    pub fn private_key_der(&self) -> &[u8] {
        &self.private_der
    }

    /// The public key as SubjectPublicKeyInfo PEM (`service.pub`).
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_der
    }

    /// The public key as an uncompressed P-256 point (`04 || x || y`, 65 bytes): what ring's
    /// `UnparsedPublicKey` takes, and the source of a JWK's `x` and `y`.
    pub fn public_key_raw(&self) -> &[u8] {
        self.signer.public_key().as_ref()
    }

    /// The JWT `kid`: unpadded base64url of the SHA-256 of the public key's DER, as
    /// Kubernetes computes it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `message` for a JWS with `alg: ES256`: the 64-byte `r || s` signature.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.signer
            .sign(&SystemRandom::new(), message)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| Error::Sign)
    }

    /// Whether `signature` is a valid ES256 (`r || s`) signature of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.public_key_raw())
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_then_reused_and_signs_es256() {
        let dir = tempfile::tempdir().unwrap();
        let (k, p) = (
            dir.path().join("service.key"),
            dir.path().join("service.pub"),
        );
        let first = ServiceAccountKey::ensure(&k, &p).unwrap();
        std::fs::remove_file(&p).unwrap();
        let second = ServiceAccountKey::ensure(&k, &p).unwrap();
        assert_eq!(first.private_key_pem(), second.private_key_pem());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), first.public_key_pem());
        assert_eq!(first.key_id(), second.key_id());
        assert_eq!(first.public_key_raw().len(), 65);

        let sig = first.sign(b"header.payload").unwrap();
        assert_eq!(sig.len(), 64);
        assert!(second.verify(b"header.payload", &sig));
        assert!(!second.verify(b"header.payloaX", &sig));
    }

    #[test]
    fn non_p256_key_is_rejected_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("service.key");
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        std::fs::write(&k, ed.serialize_pem()).unwrap();
        let err = ServiceAccountKey::ensure(&k, &dir.path().join("service.pub")).unwrap_err();
        assert!(err.to_string().contains("service.key"), "{err}");
    }
}

//! `kite agent`: joins this machine to a server as a node.
//!
//! Joining starts as in k3s: the server's CA is fetched from `/cacerts`
//! and pinned by the hash carried in the join token, so a man in the middle
//! is caught before any credential is sent. Running the node itself
//! (kubelet, runtime, network) arrives with the node issue; until then the
//! agent stops after the CA check with a message saying so.

use crate::cli::AgentArgs;
use crate::logging;
use anyhow::{Context, Result, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Verifies the server against the token, then reports what is not built yet.
pub fn run(args: AgentArgs) -> Result<()> {
    logging::init(args.common.log_format, args.common.verbosity);
    let token = kite_pki::parse_token(&args.token).context("--token")?;
    let (host, port) = parse_server(&args.server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let ca_pem = runtime.block_on(fetch_cacerts(&host, port))?;
    match token.ca_hash.as_deref() {
        Some(expected) if expected != kite_pki::ca_hash(&ca_pem) => bail!(
            "--token: the CA of {} does not match the hash in the token; is this the right server?",
            args.server
        ),
        Some(_) => tracing::info!(server = %args.server, "server CA matches the join token"),
        None => {
            tracing::warn!("the token carries no CA hash; the server CA is trusted on first use")
        }
    }
    bail!(
        "kite agent: the node agent (kubelet, container runtime, pod network) is not part of this build yet; run `kite server` on this machine instead"
    )
}

fn parse_server(url: &str) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("--server: {url:?} must start with https://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => (
            host,
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .with_context(|| format!("--server: {port:?} is not a port"))?,
        ),
        _ => (authority, 6443),
    };
    if host.is_empty() {
        bail!("--server: {url:?} names no host");
    }
    Ok((
        host.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
    ))
}

/// GETs `/cacerts` over TLS without trusting the answer: the caller checks its hash.
async fn fetch_cacerts(host: &str, port: u16) -> Result<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedLater(provider)))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("--server: cannot connect to {host}:{port}"))?;
    let name = ServerName::try_from(host.to_string()).context("--server: bad host name")?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .with_context(|| format!("--server: TLS with {host}:{port} failed"))?;
    let request = format!("GET /cacerts HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .context("--server: request failed")?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response)
        .await
        .context("--server: reading the CA failed")?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("--server: malformed response to /cacerts")?;
    let head = String::from_utf8_lossy(&response[..split]);
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "--server: /cacerts answered {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(response[split + 4..].to_vec())
}

/// Accepts any server certificate for the one `/cacerts` request; the CA it
/// returns is checked against the token's hash before anything is trusted.
#[derive(Debug)]
struct PinnedLater(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for PinnedLater {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_give_host_and_port() {
        assert_eq!(
            parse_server("https://10.0.0.1:6443").expect("url"),
            ("10.0.0.1".into(), 6443)
        );
        assert_eq!(
            parse_server("https://kite.example").expect("url"),
            ("kite.example".into(), 6443)
        );
        assert_eq!(
            parse_server("https://[fd00::1]:7443/").expect("url"),
            ("fd00::1".into(), 7443)
        );
        assert!(parse_server("http://x:6443").is_err());
        assert!(parse_server("https://x:0").is_err());
    }
}

//! Tests of [`Pki::ensure`] and friends against real files in a temporary directory.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use time::Duration;
use x509_parser::certificate::X509Certificate;

use crate::check::check_at;
use crate::leaf::{San, cert_sans};
use crate::pemfile::{common_name, organizations};
use crate::pki::EnsureOptions;
use crate::*;

fn config(dir: &Path) -> PkiConfig {
    let mut c = PkiConfig::new(dir.join("tls"));
    c.hostnames = vec!["node1".into(), "Kite.Example.com".into()];
    c.ips = vec!["192.168.1.10".parse().unwrap(), "fd00::10".parse().unwrap()];
    c
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// DER of every certificate in a PEM file.
fn ders(path: &Path) -> Vec<Vec<u8>> {
    crate::pemfile::parse_certs(path, &read(path))
        .unwrap()
        .into_iter()
        .map(|c| c.to_vec())
        .collect()
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).unwrap().1
}

fn all_files(p: &PkiPaths) -> Vec<&Path> {
    vec![
        &p.server_ca_cert,
        &p.server_ca_key,
        &p.client_ca_cert,
        &p.client_ca_key,
        &p.service_key,
        &p.service_pub,
        &p.serving_cert,
        &p.serving_key,
        &p.admin_cert,
        &p.admin_key,
    ]
}

fn validity_days(cert: &X509Certificate<'_>) -> i64 {
    (cert.validity().not_after.to_datetime() - cert.validity().not_before.to_datetime())
        .whole_days()
}

#[test]
fn ensure_creates_every_file_with_the_right_modes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    let p = pki.paths();
    assert_eq!(mode(&p.tls_dir), 0o700);
    for key in [
        &p.server_ca_key,
        &p.client_ca_key,
        &p.service_key,
        &p.serving_key,
        &p.admin_key,
    ] {
        assert_eq!(mode(key), 0o600, "{}", key.display());
    }
    for public in [
        &p.server_ca_cert,
        &p.client_ca_cert,
        &p.service_pub,
        &p.serving_cert,
        &p.admin_cert,
    ] {
        assert_eq!(mode(public), 0o644, "{}", public.display());
    }
    // what Pki exposes is what is on disk
    assert_eq!(pki.server_ca_pem().as_bytes(), read(&p.server_ca_cert));
    assert_eq!(pki.client_ca_pem().as_bytes(), read(&p.client_ca_cert));
    assert_eq!(
        pki.serving_cert_chain_pem().as_bytes(),
        read(&p.serving_cert)
    );
    assert_eq!(pki.serving_key_pem().as_bytes(), read(&p.serving_key));
    assert_eq!(pki.admin_cert_pem().as_bytes(), read(&p.admin_cert));
    assert_eq!(pki.admin_key_pem().as_bytes(), read(&p.admin_key));
    assert_eq!(
        pki.service_account().private_key_pem().as_bytes(),
        read(&p.service_key)
    );
    assert_eq!(
        pki.service_account().public_key_pem().as_bytes(),
        read(&p.service_pub)
    );
    assert!(
        pki.service_account()
            .private_key_pem()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        pki.service_account()
            .public_key_pem()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    // no temporary files left behind
    let names: BTreeSet<String> = std::fs::read_dir(&p.tls_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
}

#[test]
fn cas_are_self_signed_ten_year_cas() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    for (path, prefix) in [
        (&pki.paths().server_ca_cert, "kite-server-ca@"),
        (&pki.paths().client_ca_cert, "kite-client-ca@"),
    ] {
        let der = &ders(path)[0];
        let ca = parse(der);
        assert!(ca.is_ca());
        let cn = common_name(ca.subject());
        assert!(cn.starts_with(prefix), "{cn}");
        assert!(cn[prefix.len()..].parse::<i64>().is_ok(), "{cn}");
        assert_eq!(common_name(ca.issuer()), cn);
        ca.verify_signature(None).unwrap();
        assert_eq!(validity_days(&ca), 3650);
    }
}

#[test]
fn serving_cert_has_every_san_and_is_signed_by_the_server_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    let chain = ders(&pki.paths().serving_cert);
    assert_eq!(
        chain.len(),
        2,
        "serving file holds the leaf and the server CA"
    );
    let ca_der = &ders(&pki.paths().server_ca_cert)[0];
    assert_eq!(&chain[1], ca_der);
    let (leaf, ca) = (parse(&chain[0]), parse(ca_der));

    let ip = |s: &str| San::Ip(s.parse().unwrap());
    let dns = |s: &str| San::Dns(s.to_string());
    let want: BTreeSet<San> = [
        dns("localhost"),
        dns("node1"),
        dns("kite.example.com"),
        dns("kubernetes"),
        dns("kubernetes.default"),
        dns("kubernetes.default.svc"),
        dns("kubernetes.default.svc.cluster.local"),
        ip("127.0.0.1"),
        ip("::1"),
        ip("10.43.0.1"),
        ip("192.168.1.10"),
        ip("fd00::10"),
    ]
    .into();
    assert_eq!(cert_sans(&leaf).unwrap(), want);

    leaf.verify_signature(Some(ca.public_key())).unwrap();
    assert!(
        leaf.verify_signature(Some(
            parse(&ders(&pki.paths().client_ca_cert)[0]).public_key()
        ))
        .is_err()
    );
    assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
    assert_eq!(common_name(leaf.subject()), "kube-apiserver");
    assert!(!leaf.is_ca());
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    assert_eq!(validity_days(&leaf), 365);
}

#[test]
fn admin_cert_is_system_admin_in_system_masters_signed_by_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    let der = &ders(&pki.paths().admin_cert)[0];
    let ca_der = &ders(&pki.paths().client_ca_cert)[0];
    let (admin, ca) = (parse(der), parse(ca_der));
    assert_eq!(common_name(admin.subject()), "system:admin");
    assert_eq!(organizations(admin.subject()), vec!["system:masters"]);
    admin.verify_signature(Some(ca.public_key())).unwrap();
    assert_eq!(admin.issuer().as_raw(), ca.subject().as_raw());
    let eku = admin.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert_eq!(validity_days(&admin), 365);
}

#[test]
fn second_ensure_reuses_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let first = Pki::ensure(&cfg).unwrap();
    let before: Vec<Vec<u8>> = all_files(first.paths()).into_iter().map(read).collect();
    let second = Pki::ensure(&cfg).unwrap();
    let after: Vec<Vec<u8>> = all_files(second.paths()).into_iter().map(read).collect();
    assert_eq!(before, after);
    assert_eq!(
        first.service_account().key_id(),
        second.service_account().key_id()
    );
}

#[test]
fn leaves_close_to_expiry_are_renewed_and_cas_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let short = Pki::ensure_with(
        &cfg,
        EnsureOptions {
            leaf_days: 30,
            ..Default::default()
        },
    )
    .unwrap();
    let p = short.paths().clone();
    assert_eq!(validity_days(&parse(&ders(&p.serving_cert)[0])), 30);
    let before: Vec<Vec<u8>> = all_files(&p).into_iter().map(read).collect();

    Pki::ensure(&cfg).unwrap();
    for (path, old) in all_files(&p).into_iter().zip(before) {
        let renewed = path == p.serving_cert.as_path() || path == p.admin_cert.as_path();
        assert_eq!(read(path) != old, renewed, "{}", path.display());
    }
    let serving = &ders(&p.serving_cert)[0];
    assert_eq!(validity_days(&parse(serving)), 365);
    parse(serving)
        .verify_signature(Some(parse(&ders(&p.server_ca_cert)[0]).public_key()))
        .unwrap();
    assert_eq!(validity_days(&parse(&ders(&p.admin_cert)[0])), 365);
}

#[test]
fn leaves_with_more_than_120_days_left_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let pki = Pki::ensure_with(
        &cfg,
        EnsureOptions {
            leaf_days: 121,
            ..Default::default()
        },
    )
    .unwrap();
    let before = read(&pki.paths().serving_cert);
    Pki::ensure(&cfg).unwrap();
    assert_eq!(read(&pki.paths().serving_cert), before);
}

#[test]
fn changed_sans_reissue_only_the_serving_cert() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let pki = Pki::ensure(&cfg).unwrap();
    let p = pki.paths().clone();
    let (serving, admin, key) = (
        read(&p.serving_cert),
        read(&p.admin_cert),
        read(&p.serving_key),
    );

    cfg.add_san("api.example.org");
    cfg.add_san("203.0.113.7");
    let pki = Pki::ensure(&cfg).unwrap();
    assert_ne!(read(&p.serving_cert), serving);
    assert_eq!(read(&p.admin_cert), admin);
    assert_eq!(read(&p.serving_key), key, "the serving key is kept");
    let sans = cert_sans(&parse(&ders(&p.serving_cert)[0])).unwrap();
    assert!(sans.contains(&San::Dns("api.example.org".into())));
    assert!(sans.contains(&San::Ip("203.0.113.7".parse().unwrap())));
    assert_eq!(
        pki.serving_cert_chain_pem().as_bytes(),
        read(&p.serving_cert)
    );

    // removing a name also reissues; the same set in another order does not
    let renewed = read(&p.serving_cert);
    cfg.hostnames.reverse();
    cfg.ips.reverse();
    Pki::ensure(&cfg).unwrap();
    assert_eq!(read(&p.serving_cert), renewed);
    cfg.hostnames.retain(|h| h != "api.example.org");
    Pki::ensure(&cfg).unwrap();
    assert_ne!(read(&p.serving_cert), renewed);
}

#[test]
fn leaf_from_another_ca_is_reissued() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let pa = Pki::ensure(&config(a.path())).unwrap();
    let pb = Pki::ensure(&config(b.path())).unwrap();
    std::fs::copy(&pb.paths().serving_cert, &pa.paths().serving_cert).unwrap();
    std::fs::copy(&pb.paths().serving_key, &pa.paths().serving_key).unwrap();
    let pa = Pki::ensure(&config(a.path())).unwrap();
    let leaf = &ders(&pa.paths().serving_cert)[0];
    parse(leaf)
        .verify_signature(Some(
            parse(&ders(&pa.paths().server_ca_cert)[0]).public_key(),
        ))
        .unwrap();
}

#[test]
fn missing_leaf_key_gets_a_new_key_and_cert() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let pki = Pki::ensure(&cfg).unwrap();
    let old = read(&pki.paths().admin_cert);
    std::fs::remove_file(&pki.paths().admin_key).unwrap();
    let pki = Pki::ensure(&cfg).unwrap();
    assert_ne!(read(&pki.paths().admin_cert), old);
    assert_eq!(mode(&pki.paths().admin_key), 0o600);
}

fn ensure_err(dir: &Path) -> String {
    Pki::ensure(&config(dir)).unwrap_err().to_string()
}

#[test]
fn corrupt_ca_cert_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    let p = pki.paths().clone();
    let good = read(&p.server_ca_cert);

    std::fs::write(&p.server_ca_cert, "garbage").unwrap();
    let err = ensure_err(dir.path());
    assert!(err.contains("server-ca.crt"), "{err}");

    std::fs::write(
        &p.server_ca_cert,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = ensure_err(dir.path());
    assert!(err.contains("server-ca.crt"), "{err}");

    std::fs::write(
        &p.server_ca_cert,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = ensure_err(dir.path());
    assert!(err.contains("server-ca.crt"), "{err}");

    // and the CA is not replaced behind the user's back
    std::fs::write(&p.server_ca_cert, &good).unwrap();
    Pki::ensure(&config(dir.path())).unwrap();
    assert_eq!(read(&p.server_ca_cert), good);
}

#[test]
fn bad_keys_are_errors_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    let p = pki.paths().clone();
    let server_key = read(&p.server_ca_key);

    std::fs::write(&p.server_ca_key, "not a key").unwrap();
    let err = ensure_err(dir.path());
    assert!(err.contains("server-ca.key"), "{err}");

    std::fs::copy(&p.client_ca_key, &p.server_ca_key).unwrap();
    let err = ensure_err(dir.path());
    assert!(
        err.contains("server-ca.key")
            && err.contains("server-ca.crt")
            && err.contains("does not match"),
        "{err}"
    );

    std::fs::write(&p.server_ca_key, &server_key).unwrap();
    std::fs::copy(&p.admin_key, &p.serving_key).unwrap();
    let err = ensure_err(dir.path());
    assert!(
        err.contains("serving-kube-apiserver.key") && err.contains("does not match"),
        "{err}"
    );
    std::fs::remove_file(&p.serving_key).unwrap();
    Pki::ensure(&config(dir.path())).unwrap();

    std::fs::remove_file(&p.client_ca_key).unwrap();
    let err = ensure_err(dir.path());
    assert!(
        err.contains("client-ca.key") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn a_leaf_in_place_of_a_ca_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    let p = pki.paths().clone();
    std::fs::copy(&p.admin_cert, &p.client_ca_cert).unwrap();
    std::fs::copy(&p.admin_key, &p.client_ca_key).unwrap();
    let err = ensure_err(dir.path());
    assert!(
        err.contains("client-ca.crt") && err.contains("not a certificate authority"),
        "{err}"
    );
}

#[test]
fn issued_certs_chain_to_the_right_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    let client_ca = ders(&pki.paths().client_ca_cert).remove(0);
    let server_ca = ders(&pki.paths().server_ca_cert).remove(0);

    let (cert, key) = pki
        .issue_client_cert("system:node:n1", &["system:nodes"], 100)
        .unwrap();
    let der = crate::pemfile::parse_certs(Path::new("mem"), cert.as_bytes())
        .unwrap()
        .remove(0);
    let c = parse(&der);
    assert_eq!(common_name(c.subject()), "system:node:n1");
    assert_eq!(organizations(c.subject()), vec!["system:nodes"]);
    c.verify_signature(Some(parse(&client_ca).public_key()))
        .unwrap();
    assert_eq!(validity_days(&c), 100);
    let kp = crate::pemfile::parse_key(Path::new("mem"), key.as_bytes()).unwrap();
    crate::pemfile::check_key_matches(&c, &kp, Path::new("c"), Path::new("k")).unwrap();

    let ips: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap()];
    let (cert, _key) = pki
        .issue_serving_cert("n1", &["n1".to_string()], &ips, 365)
        .unwrap();
    let der = crate::pemfile::parse_certs(Path::new("mem"), cert.as_bytes())
        .unwrap()
        .remove(0);
    let c = parse(&der);
    c.verify_signature(Some(parse(&server_ca).public_key()))
        .unwrap();
    let sans = cert_sans(&c).unwrap();
    assert_eq!(sans, [San::Dns("n1".into()), San::Ip(ips[0])].into());
    assert!(
        pki.issue_serving_cert("x", &["bad name".to_string()], &[], 1)
            .is_err()
    );
}

/// Runs a TLS handshake in memory: the client trusts the server CA and presents the admin
/// certificate; the server presents the serving chain and requires a client-CA certificate.
fn handshake(pki: &Pki, server_name: &str) -> Result<(), rustls::Error> {
    use rustls::pki_types::ServerName;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client_roots = RootCertStore::empty();
    client_roots.add(pki.client_ca_der()).unwrap();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
            .build()
            .unwrap();
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            pki.serving_cert_chain_der().unwrap(),
            pki.serving_key_der().unwrap(),
        )
        .unwrap();

    let mut server_roots = RootCertStore::empty();
    server_roots.add(pki.server_ca_der()).unwrap();
    let admin_chain =
        vec![CertificateDer::from_pem_slice(pki.admin_cert_pem().as_bytes()).unwrap()];
    let admin_key = PrivateKeyDer::from_pem_slice(pki.admin_key_pem().as_bytes()).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(server_roots)
        .with_client_auth_cert(admin_chain, admin_key)
        .unwrap();

    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut c = ClientConnection::new(Arc::new(client), name).unwrap();
    let mut s = ServerConnection::new(Arc::new(server)).unwrap();
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut slice = &buf[..];
        while !slice.is_empty() {
            s.read_tls(&mut slice).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut slice = &buf[..];
        while !slice.is_empty() {
            c.read_tls(&mut slice).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            let peer = s.peer_certificates().unwrap();
            assert_eq!(
                parse(&peer[0]).subject().to_string(),
                "O=system:masters, CN=system:admin"
            );
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn rustls_accepts_the_serving_and_admin_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    for name in [
        "localhost",
        "kubernetes.default.svc.cluster.local",
        "kite.example.com",
        "127.0.0.1",
        "::1",
        "10.43.0.1",
    ] {
        handshake(&pki, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(handshake(&pki, "evil.example").is_err());
}

#[test]
fn check_lists_every_certificate_with_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    assert_eq!(check(&pki.paths().tls_dir).unwrap().len(), 4);
    // a minute after issuance, as `kite certificate check` would run
    let now = time::OffsetDateTime::now_utc();
    let infos = check_at(&pki.paths().tls_dir, now + Duration::minutes(1)).unwrap();
    let files: Vec<&str> = infos.iter().map(|i| i.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "client-admin.crt",
            "client-ca.crt",
            "server-ca.crt",
            "serving-kube-apiserver.crt"
        ]
    );
    let by = |f: &str| infos.iter().find(|i| i.file == f).unwrap();
    assert_eq!(by("client-admin.crt").subject_cn, "system:admin");
    assert!(
        by("client-admin.crt")
            .issuer_cn
            .starts_with("kite-client-ca@")
    );
    assert_eq!(
        by("serving-kube-apiserver.crt").subject_cn,
        "kube-apiserver"
    );
    assert_eq!(by("serving-kube-apiserver.crt").days_remaining, 364);
    assert!(!by("serving-kube-apiserver.crt").is_ca);
    assert!(by("server-ca.crt").is_ca);
    assert_eq!(by("server-ca.crt").days_remaining, 3649);
    assert!(infos.iter().all(|i| i.status() == CertStatus::Ok));

    // seen 300 days later the leaves warn; 400 days later they have expired
    let later = check_at(&pki.paths().tls_dir, now + Duration::days(300)).unwrap();
    assert_eq!(by_status(&later), ["WARNING", "OK", "OK", "WARNING"]);
    let later = check_at(&pki.paths().tls_dir, now + Duration::days(400)).unwrap();
    assert_eq!(by_status(&later), ["EXPIRED", "OK", "OK", "EXPIRED"]);

    let table = render_table(&later);
    assert!((-36..=-35).contains(&later[0].days_remaining));
    assert!(
        table.contains(&format!(" {}d ", later[0].days_remaining)),
        "{table}"
    );
    assert!(table.contains("EXPIRED"), "{table}");
}

fn by_status(infos: &[CertInfo]) -> Vec<String> {
    infos.iter().map(|i| i.status().to_string()).collect()
}

#[test]
fn render_table_aligns_columns() {
    let t = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let info = |file: &str, cn: &str, days: i64| CertInfo {
        file: file.into(),
        subject_cn: cn.into(),
        issuer_cn: "kite-server-ca@1700000000".into(),
        not_before: t("2025-01-01T00:00:00Z"),
        not_after: t("2026-01-01T00:00:00Z"),
        days_remaining: days,
        is_ca: false,
    };
    let table = render_table(&[
        info("a.crt", "x", 364),
        info("serving-kube-apiserver.crt", "kube-apiserver", 5),
        info("b.crt", "y", -1),
    ]);
    let expected = "\
FILE                        SUBJECT         ISSUER                     EXPIRES               RESIDUAL  STATUS
a.crt                       x               kite-server-ca@1700000000  2026-01-01T00:00:00Z  364d      OK
serving-kube-apiserver.crt  kube-apiserver  kite-server-ca@1700000000  2026-01-01T00:00:00Z  5d        WARNING
b.crt                       y               kite-server-ca@1700000000  2026-01-01T00:00:00Z  -1d       EXPIRED
";
    assert_eq!(table, expected);
    // every column starts at the same offset on every line
    let lines: Vec<&str> = table.lines().collect();
    for col in ["SUBJECT", "ISSUER", "EXPIRES", "RESIDUAL", "STATUS"] {
        let at = lines[0].find(col).unwrap();
        for line in &lines[1..] {
            assert_eq!(&line[at - 2..at], "  ", "{col} in {line}");
            assert_ne!(line.as_bytes()[at], b' ', "{col} in {line}");
        }
    }
}

#[test]
fn check_reports_a_corrupt_file_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.crt"), "nope").unwrap();
    let err = check(dir.path()).unwrap_err().to_string();
    assert!(err.contains("broken.crt"), "{err}");
}

#[test]
fn token_hash_is_the_sha256_of_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    let server_dir = dir.path().join("server");
    let token = ensure_token(&server_dir, &pki.paths().server_ca_cert, None).unwrap();
    let want = crate::util::sha256_hex(&read(&pki.paths().server_ca_cert));
    assert_eq!(parse_token(&token).unwrap().ca_hash.unwrap(), want);
    assert_eq!(ca_hash(pki.server_ca_pem().as_bytes()), want);
    let again = ensure_token(&server_dir, &pki.paths().server_ca_cert, None).unwrap();
    assert_eq!(token, again);
}

#[test]
fn admin_kubeconfig_round_trips_the_pki_material() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(&config(dir.path())).unwrap();
    let path = dir.path().join("kite.yaml");
    write_kubeconfig(
        &path,
        0o600,
        "https://127.0.0.1:6443",
        pki.server_ca_pem(),
        pki.admin_cert_pem(),
        pki.admin_key_pem(),
    )
    .unwrap();
    let kc = Kubeconfig::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let decode = |s: &Option<String>| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_ref().unwrap())
            .unwrap()
    };
    assert_eq!(
        decode(&kc.clusters[0].cluster.certificate_authority_data),
        pki.server_ca_pem().as_bytes()
    );
    assert_eq!(
        decode(&kc.users[0].user.client_key_data),
        pki.admin_key_pem().as_bytes()
    );
    assert_eq!(mode(&path), 0o600);
}

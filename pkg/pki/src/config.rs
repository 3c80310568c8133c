//! [`PkiConfig`]: where the certificates live and which names the serving certificate covers.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// Inputs of [`Pki::ensure`](crate::Pki::ensure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiConfig {
    /// Directory holding every certificate and key (`<data-dir>/server/tls`); created with
    /// mode 0700.
    pub tls_dir: PathBuf,
    /// Extra DNS names for the apiserver serving certificate: the machine's hostname and the
    /// `--tls-san` names.
    pub hostnames: Vec<String>,
    /// Extra IP addresses for the apiserver serving certificate: node IP, advertise IP and the
    /// `--tls-san` addresses.
    pub ips: Vec<IpAddr>,
    /// Cluster DNS domain, `cluster.local` by default.
    pub cluster_domain: String,
    /// First address of the service CIDR (the `kubernetes` Service), `10.43.0.1` by default.
    pub service_ip: IpAddr,
}

impl PkiConfig {
    /// A configuration with the default domain and service IP and no extra names.
    pub fn new(tls_dir: impl Into<PathBuf>) -> Self {
        Self {
            tls_dir: tls_dir.into(),
            hostnames: Vec::new(),
            ips: Vec::new(),
            cluster_domain: "cluster.local".to_string(),
            service_ip: IpAddr::V4(Ipv4Addr::new(10, 43, 0, 1)),
        }
    }

    /// Adds one `--tls-san` value: an IP address (IPv6 may be bracketed) goes to
    /// [`ips`](Self::ips), anything else to [`hostnames`](Self::hostnames). Empty values
    /// are ignored; duplicates are harmless.
    pub fn add_san(&mut self, value: &str) {
        match classify_san(value) {
            Some(SanValue::Ip(ip)) => self.ips.push(ip),
            Some(SanValue::Name(name)) => self.hostnames.push(name),
            None => {}
        }
    }

    /// Builder form of [`add_san`](Self::add_san) for many values.
    #[must_use]
    pub fn with_sans<I, S>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for v in values {
            self.add_san(v.as_ref());
        }
        self
    }
}

/// Sorts `--tls-san` style values into DNS names and IP addresses (see
/// [`PkiConfig::add_san`]).
pub fn split_sans<I, S>(values: I) -> (Vec<String>, Vec<IpAddr>)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut names = Vec::new();
    let mut ips = Vec::new();
    for v in values {
        match classify_san(v.as_ref()) {
            Some(SanValue::Ip(ip)) => ips.push(ip),
            Some(SanValue::Name(name)) => names.push(name),
            None => {}
        }
    }
    (names, ips)
}

enum SanValue {
    Ip(IpAddr),
    Name(String),
}

fn classify_san(value: &str) -> Option<SanValue> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    let unbracketed = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    Some(match unbracketed.parse::<IpAddr>() {
        Ok(ip) => SanValue::Ip(ip),
        Err(_) => SanValue::Name(v.to_ascii_lowercase()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_sans_sorts_names_and_addresses() {
        let (names, ips) =
            split_sans(["Node1.Example.com", " 192.168.1.5 ", "[fd00::1]", "", "::2"]);
        assert_eq!(names, vec!["node1.example.com"]);
        assert_eq!(
            ips,
            vec![
                "192.168.1.5".parse::<IpAddr>().unwrap(),
                "fd00::1".parse().unwrap(),
                "::2".parse().unwrap()
            ]
        );
    }

    #[test]
    fn with_sans_fills_both_lists() {
        let c = PkiConfig::new("/tmp/x").with_sans(["a.example", "10.0.0.1"]);
        assert_eq!(c.hostnames, vec!["a.example"]);
        assert_eq!(c.ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.cluster_domain, "cluster.local");
        assert_eq!(c.service_ip, "10.43.0.1".parse::<IpAddr>().unwrap());
    }
}

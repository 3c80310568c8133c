//! Masquerading for pods: traffic from this node's pod CIDR to anywhere
//! outside the cluster CIDR leaves with the node's address. One nftables
//! table of its own (`ip kite-pod-network`), replaced whole in one `nft`
//! transaction, so a restart leaves nothing stale and other tables (the
//! service proxy's, the machine's firewall) are never touched.

use ipnet::Ipv4Net;

/// The table's name.
pub const TABLE: &str = "kite-pod-network";

/// The nft script that (re)creates the table.
pub fn script(pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net) -> String {
    format!(
        "table ip {TABLE}\n\
         delete table ip {TABLE}\n\
         table ip {TABLE} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {pod_cidr} ip daddr != {cluster_cidr} masquerade\n\
         \t}}\n\
         }}\n"
    )
}

/// Installs the table.
pub fn apply(pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net) -> std::io::Result<()> {
    crate::nft::apply(&script(pod_cidr, cluster_cidr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_replaces_only_its_own_table() {
        let text = script(
            "10.42.0.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
        );
        assert!(text.starts_with("table ip kite-pod-network\ndelete table ip kite-pod-network\n"));
        assert!(text.contains("ip saddr 10.42.0.0/24 ip daddr != 10.42.0.0/16 masquerade"));
    }
}

//! kite's pod network (the counterpart of flannel + the CNI bridge plugin in
//! k3s): the node's `/24` of the cluster CIDR (its `spec.podCIDR`) on a bridge
//! `kite0` that holds the first address, one veth pair per pod with the pod's
//! end as `eth0` and a default route via the bridge, addresses persisted on
//! disk ([`ipam`]), and masquerading for pod traffic that leaves the cluster
//! CIDR.
//!
//! Multi-node: pod CIDRs of other nodes will be reached through a VXLAN device
//! (`kite.vxlan`, UDP 8472) with a route per remote podCIDR and the VTEP
//! address and MAC published as Node annotations, like flannel's; the bridge,
//! IPAM and veth handling here stay as they are.
//!
//! Module map: [`ipam`] (addresses), [`links`] (netlink: bridge, veth, eth0),
//! [`masquerade`] (the nftables NAT table), [`nft`] (applying nft scripts),
//! [`nfnetlink`] (nftables transactions without the `nft` binary).

// Tests may unwrap; library code may not (checked by the non-test clippy pass).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod ipam;
pub mod links;
pub mod masquerade;
pub mod nfnetlink;
pub mod nft;

use ipnet::Ipv4Net;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

/// The bridge pods hang off.
pub const BRIDGE: &str = "kite0";

/// Errors of the pod network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node has no pod CIDR yet.
    #[error("the node has no pod CIDR yet (spec.podCIDR)")]
    NotConfigured,
    /// Addresses.
    #[error(transparent)]
    Ipam(#[from] ipam::Error),
    /// Links.
    #[error(transparent)]
    Links(#[from] links::Error),
}

/// What the pod network needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where its state lives (`<data-dir>/agent/network`).
    pub root: PathBuf,
    /// The whole cluster's pod range (`--cluster-cidr`).
    pub cluster_cidr: Ipv4Net,
    /// The node's address: its interface's MTU is the pods' MTU.
    pub node_ip: IpAddr,
}

struct Ready {
    handle: rtnetlink::Handle,
    bridge: u32,
    ipam: ipam::Allocator,
    mtu: u32,
}

/// The pod network of this node.
pub struct PodNetwork {
    config: Config,
    ready: Mutex<Option<Ready>>,
}

impl PodNetwork {
    /// The pod network described by `config`; [`PodNetwork::configure`] it
    /// once the node's pod CIDR is known.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            ready: Mutex::new(None),
        }
    }

    /// Sets up the bridge with `pod_cidr`'s gateway, forwarding and
    /// masquerading. Repeating it is harmless.
    pub async fn configure(&self, pod_cidr: Ipv4Net) -> Result<(), Error> {
        let mut ready = self.ready.lock().await;
        if ready
            .as_ref()
            .is_some_and(|r| r.ipam.range() == pod_cidr.trunc())
        {
            return Ok(());
        }
        let handle = links::connect()?;
        let mtu = uplink_mtu(&handle, self.config.node_ip).await;
        let ipam = ipam::Allocator::new(self.ipam_dir(pod_cidr), pod_cidr)?;
        let gateway = Ipv4Net::new(ipam.gateway(), pod_cidr.prefix_len())
            .unwrap_or_else(|_| pod_cidr.trunc());
        let bridge = links::ensure_bridge(&handle, BRIDGE, gateway, mtu).await?;
        if let Err(error) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
            tracing::warn!(%error, "cannot enable IPv4 forwarding; pods cannot leave the node");
        }
        if let Err(error) = masquerade::apply(pod_cidr.trunc(), self.config.cluster_cidr) {
            tracing::warn!(%error, "cannot install the masquerade rule; pods cannot reach outside the cluster");
        }
        tracing::info!(%pod_cidr, bridge = BRIDGE, mtu, "pod network ready");
        *ready = Some(Ready {
            handle,
            bridge,
            ipam,
            mtu,
        });
        Ok(())
    }

    /// Whether [`PodNetwork::configure`] has run.
    pub async fn is_configured(&self) -> bool {
        self.ready.lock().await.is_some()
    }

    /// Gives pod `uid`, whose network namespace is pinned at `netns`, its
    /// address and `eth0`; returns the address. Idempotent.
    pub async fn attach(&self, uid: &str, netns: &Path) -> Result<Ipv4Addr, Error> {
        let ready = self.ready.lock().await;
        let ready = ready.as_ref().ok_or(Error::NotConfigured)?;
        let ip = ready.ipam.allocate(uid)?;
        let link = links::PodLink {
            host_name: host_link_name(uid),
            address: Ipv4Net::new(ip, ready.ipam.range().prefix_len())
                .unwrap_or_else(|_| ready.ipam.range()),
            gateway: ready.ipam.gateway(),
            mtu: ready.mtu,
        };
        if let Err(error) = links::attach(&ready.handle, ready.bridge, netns, &link).await {
            // Nothing half-made stays: the address goes back, the link goes.
            let _ = links::detach(&ready.handle, &link.host_name).await;
            let _ = ready.ipam.release(uid);
            return Err(error.into());
        }
        Ok(ip)
    }

    /// The address pod `uid` holds, if any.
    pub async fn address(&self, uid: &str) -> Option<Ipv4Addr> {
        let ready = self.ready.lock().await;
        ready.as_ref()?.ipam.find(uid).ok().flatten()
    }

    /// Removes pod `uid`'s link and frees its address.
    pub async fn detach(&self, uid: &str) -> Result<(), Error> {
        let ready = self.ready.lock().await;
        let Some(ready) = ready.as_ref() else {
            return Ok(());
        };
        links::detach(&ready.handle, &host_link_name(uid)).await?;
        ready.ipam.release(uid)?;
        Ok(())
    }

    /// Frees the addresses (and links) of pods not in `keep`: pods deleted
    /// while kite was down.
    pub async fn release_all_but(&self, keep: &HashSet<String>) -> Result<(), Error> {
        let owners: Vec<String> = {
            let ready = self.ready.lock().await;
            let Some(ready) = ready.as_ref() else {
                return Ok(());
            };
            ready
                .ipam
                .in_use()?
                .into_iter()
                .map(|(_, owner)| owner)
                .filter(|owner| !keep.contains(owner))
                .collect()
        };
        for owner in owners {
            tracing::info!(uid = %owner, "releasing the address of a pod that no longer exists");
            self.detach(&owner).await?;
        }
        Ok(())
    }

    fn ipam_dir(&self, pod_cidr: Ipv4Net) -> PathBuf {
        self.config
            .root
            .join("ipam")
            .join(pod_cidr.trunc().to_string().replace('/', "_"))
    }
}

/// `veth` and 8 hex digits of a hash of the pod UID (interface names have 15
/// characters at most; the peer adds one while it is being moved).
pub fn host_link_name(uid: &str) -> String {
    // FNV-1a: stable across releases, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in uid.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("veth{hash:08x}")
}

/// The MTU of the interface holding `node_ip`; 1500 when that is loopback or
/// unknown.
async fn uplink_mtu(handle: &rtnetlink::Handle, node_ip: IpAddr) -> u32 {
    use futures::TryStreamExt;
    use rtnetlink::packet_route::address::AddressAttribute;
    use rtnetlink::packet_route::link::LinkAttribute;
    const DEFAULT: u32 = 1500;
    if node_ip.is_loopback() {
        return DEFAULT;
    }
    let mut addresses = handle.address().get().execute();
    let mut index = None;
    while let Ok(Some(message)) = addresses.try_next().await {
        if message.attributes.iter().any(
            |a| matches!(a, AddressAttribute::Address(ip) | AddressAttribute::Local(ip) if *ip == node_ip),
        ) {
            index = Some(message.header.index);
            break;
        }
    }
    let Some(index) = index else {
        return DEFAULT;
    };
    let mut links = handle.link().get().match_index(index).execute();
    if let Ok(Some(link)) = links.try_next().await {
        for attribute in link.attributes {
            if let LinkAttribute::Mtu(mtu) = attribute {
                return mtu;
            }
        }
    }
    DEFAULT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_link_names_fit_and_are_stable() {
        let name = host_link_name("6f1c1f64-8a5e-4a43-9d3e-0f3c2b1a0d9e");
        assert_eq!(name.len(), 12);
        assert_eq!(name, host_link_name("6f1c1f64-8a5e-4a43-9d3e-0f3c2b1a0d9e"));
        assert_ne!(name, host_link_name("6f1c1f64-8a5e-4a43-9d3e-0f3c2b1a0d9f"));
    }
}

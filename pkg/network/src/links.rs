//! The links of the pod network, over rtnetlink: the node's bridge (`kite0`,
//! holding the gateway address), and per pod a veth pair whose host end is a
//! bridge port and whose other end is the pod's `eth0`, with its address and
//! a default route via the gateway.
//!
//! Netlink talks to the network namespace its socket was opened in, so the
//! pod side runs on a short-lived thread that first enters the pod's
//! namespace and opens its own socket there (a thread that changed namespace
//! must not go back to a shared pool).

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Errors changing links.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink request failed.
    #[error("{what}: {source}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: rtnetlink::Error,
    },
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |source| Error::Netlink { what, source }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// A netlink handle in the calling thread's network namespace; its
/// connection runs on the current tokio runtime.
pub fn connect() -> Result<Handle, Error> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(io("netlink socket"))?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The index of link `name`, if it exists.
pub async fn index(handle: &Handle, name: &str) -> Result<Option<u32>, Error> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        // The kernel answers a name lookup of a missing link with ENODEV.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc_enodev() => Ok(None),
        Err(e) => Err(nl(format!("looking up link {name}"))(e)),
    }
}

fn libc_enodev() -> i32 {
    nix::errno::Errno::ENODEV as i32
}

/// Whether `address/prefix` is on link `index`.
async fn has_address(handle: &Handle, index: u32, address: Ipv4Addr) -> Result<bool, Error> {
    let mut addresses = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(message) = addresses
        .try_next()
        .await
        .map_err(nl("listing addresses"))?
    {
        let found = message.attributes.iter().any(|a| {
            matches!(a, AddressAttribute::Address(IpAddr::V4(ip)) | AddressAttribute::Local(IpAddr::V4(ip)) if *ip == address)
        });
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates (or keeps) bridge `name` with `gateway` (address and prefix of the
/// pod CIDR) and brings it up; returns its index.
pub async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    gateway: Ipv4Net,
    mtu: u32,
) -> Result<u32, Error> {
    let index = match index(handle, name).await? {
        Some(index) => index,
        None => {
            handle
                .link()
                .add(
                    LinkBridge::new(name)
                        .mtu(mtu)
                        .address(bridge_mac(gateway.addr()))
                        .build(),
                )
                .execute()
                .await
                .map_err(nl(format!("creating bridge {name}")))?;
            index(handle, name).await?.ok_or_else(|| Error::Io {
                what: format!("bridge {name}"),
                source: std::io::Error::other("created but not found"),
            })?
        }
    };
    if !has_address(handle, index, gateway.addr()).await? {
        handle
            .address()
            .add(index, IpAddr::V4(gateway.addr()), gateway.prefix_len())
            .execute()
            .await
            .map_err(nl(format!("adding {gateway} to {name}")))?;
    }
    // A bridge without an address of its own takes the lowest of its ports'
    // MACs, which changes as pods come and go and leaves stale ARP entries
    // for the gateway in every pod: pin it.
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .address(bridge_mac(gateway.addr()))
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("bringing {name} up")))?;
    Ok(index)
}

/// A locally administered MAC derived from the gateway address (stable
/// across restarts, different per node).
fn bridge_mac(gateway: Ipv4Addr) -> Vec<u8> {
    let [a, b, c, d] = gateway.octets();
    vec![0x0a, 0x58, a, b, c, d]
}

/// What a pod's interface gets.
#[derive(Clone, Debug)]
pub struct PodLink {
    /// The host end's name (a bridge port).
    pub host_name: String,
    /// The pod's address and the prefix of its CIDR.
    pub address: Ipv4Net,
    /// The default gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// The MTU of both ends.
    pub mtu: u32,
}

/// Gives the pod whose network namespace is pinned at `netns` its `eth0`:
/// a veth pair with the host end on bridge `bridge`. Idempotent: a pod that
/// already has `eth0` with its address is left as it is.
pub async fn attach(
    handle: &Handle,
    bridge: u32,
    netns: &Path,
    link: &PodLink,
) -> Result<(), Error> {
    let ns = std::fs::File::open(netns).map_err(io(format!("opening {}", netns.display())))?;
    let netns_path = netns.to_path_buf();
    let done = {
        let link = link.clone();
        in_namespace(netns_path.clone(), move |handle| async move {
            match index(&handle, "eth0").await? {
                Some(i) => has_address(&handle, i, link.address.addr()).await,
                None => Ok(false),
            }
        })
        .await?
    };
    if done && index(handle, &link.host_name).await?.is_some() {
        return Ok(());
    }
    // A stale host end (a pod set up halfway before a crash) goes first.
    if let Some(stale) = index(handle, &link.host_name).await? {
        handle
            .link()
            .del(stale)
            .execute()
            .await
            .map_err(nl(format!("removing stale {}", link.host_name)))?;
    }
    let peer = format!("{}p", link.host_name);
    handle
        .link()
        .add(LinkVeth::new(&link.host_name, &peer).mtu(link.mtu).build())
        .execute()
        .await
        .map_err(nl(format!("creating veth {}", link.host_name)))?;
    let host = index(handle, &link.host_name)
        .await?
        .ok_or_else(|| Error::Io {
            what: format!("veth {}", link.host_name),
            source: std::io::Error::other("created but not found"),
        })?;
    let peer_index = index(handle, &peer).await?.ok_or_else(|| Error::Io {
        what: format!("veth {peer}"),
        source: std::io::Error::other("created but not found"),
    })?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(peer_index)
                .setns_by_fd(ns.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("moving {peer} into the pod")))?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(host)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("adding {} to the bridge", link.host_name)))?;
    // Hairpin: a pod reaching itself through a Service IP gets its packets back.
    let hairpin = format!("/sys/class/net/{}/brport/hairpin_mode", link.host_name);
    if let Err(error) = std::fs::write(&hairpin, "1") {
        tracing::debug!(%error, "cannot enable hairpin mode");
    }
    let link = link.clone();
    in_namespace(netns_path, move |handle| async move {
        let eth = index(&handle, &peer).await?.ok_or_else(|| Error::Io {
            what: format!("{peer} in the pod"),
            source: std::io::Error::other("not found after the move"),
        })?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(eth).name("eth0").build())
            .execute()
            .await
            .map_err(nl("renaming the pod's interface to eth0"))?;
        handle
            .address()
            .add(
                eth,
                IpAddr::V4(link.address.addr()),
                link.address.prefix_len(),
            )
            .execute()
            .await
            .map_err(nl(format!("adding {} to eth0", link.address)))?;
        for i in [eth].into_iter().chain(index(&handle, "lo").await?) {
            handle
                .link()
                .set(LinkUnspec::new_with_index(i).up().build())
                .execute()
                .await
                .map_err(nl("bringing the pod's links up"))?;
        }
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(link.gateway)
            .output_interface(eth)
            .build();
        handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(nl(format!("adding the default route via {}", link.gateway)))?;
        Ok(())
    })
    .await
}

/// Removes the host end `host_name` (and with it the pod's `eth0`).
pub async fn detach(handle: &Handle, host_name: &str) -> Result<(), Error> {
    if let Some(i) = index(handle, host_name).await? {
        match handle.link().del(i).execute().await {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc_enodev() => {}
            Err(e) => return Err(nl(format!("removing {host_name}"))(e)),
        }
    }
    Ok(())
}

/// Runs `work` with a netlink handle inside the network namespace at `netns`,
/// on a thread of its own with its own small runtime.
async fn in_namespace<F, Fut, T>(netns: PathBuf, work: F) -> Result<T, Error>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, Error>>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kite-netns".into())
        .spawn(move || {
            let result = (|| {
                let file = std::fs::File::open(&netns)
                    .map_err(io(format!("opening {}", netns.display())))?;
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    Error::Io {
                        what: format!("entering {}", netns.display()),
                        source: e.into(),
                    }
                })?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(io("pod netlink runtime"))?;
                runtime.block_on(async move { work(connect()?).await })
            })();
            let _ = tx.send(result);
        })
        .map_err(io("spawning the netns thread"))?;
    rx.await.map_err(|_| Error::Io {
        what: "pod network setup".into(),
        source: std::io::Error::other("the netns thread ended without an answer"),
    })?
}

//! Pod addresses from the node's pod CIDR, kept on disk like the CNI
//! `host-local` plugin keeps them: one file per address in use, named by the
//! address and holding its owner (the pod UID). Files are created with
//! `O_EXCL`, so two allocations can never hand out the same address, and the
//! state survives restarts: an address is only free again once released.
//!
//! The network address, the gateway (the first host address, held by the
//! bridge) and the broadcast address are never handed out. Allocation goes
//! round-robin from the last address given, so a released address is not
//! reused at once (a late packet for an old pod should not reach a new one).

use ipnet::Ipv4Net;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Errors of the allocator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every address of the range is in use.
    #[error("no free address left in {0}")]
    Exhausted(Ipv4Net),
    /// The range is too small for pods.
    #[error("pod CIDR {0} is too small (needs at least /30)")]
    TooSmall(Ipv4Net),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

const LAST: &str = "last_reserved_ip";

/// The addresses of one pod CIDR.
#[derive(Clone, Debug)]
pub struct Allocator {
    dir: PathBuf,
    range: Ipv4Net,
}

impl Allocator {
    /// The allocator for `range` keeping its state in `dir`.
    pub fn new(dir: impl Into<PathBuf>, range: Ipv4Net) -> Result<Self, Error> {
        let range = range.trunc();
        if range.prefix_len() > 30 {
            return Err(Error::TooSmall(range));
        }
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        Ok(Self { dir, range })
    }

    /// The range.
    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// The gateway: the range's first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        first_host(self.range)
    }

    /// The address of `owner`, allocating one if it has none.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, Error> {
        if let Some(ip) = self.find(owner)? {
            return Ok(ip);
        }
        let first = u32::from(first_host(self.range)) + 1;
        let last = u32::from(self.range.broadcast()) - 1;
        let count = last - first + 1;
        let start = self
            .last_reserved()
            .map(u32::from)
            .filter(|ip| (first..=last).contains(ip))
            .map_or(first, |ip| if ip == last { first } else { ip + 1 });
        for offset in 0..count {
            let candidate = first + (start - first + offset) % count;
            let ip = Ipv4Addr::from(candidate);
            let path = self.dir.join(ip.to_string());
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(owner.as_bytes())
                        .map_err(io_err("write", &path))?;
                    let last_path = self.dir.join(LAST);
                    fs::write(&last_path, ip.to_string()).map_err(io_err("write", &last_path))?;
                    return Ok(ip);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &path)(e)),
            }
        }
        Err(Error::Exhausted(self.range))
    }

    /// The address `owner` holds, if any.
    pub fn find(&self, owner: &str) -> Result<Option<Ipv4Addr>, Error> {
        Ok(self
            .in_use()?
            .into_iter()
            .find_map(|(ip, who)| (who == owner).then_some(ip)))
    }

    /// Every address in use with its owner.
    pub fn in_use(&self) -> Result<Vec<(Ipv4Addr, String)>, Error> {
        let entries = fs::read_dir(&self.dir).map_err(io_err("read", &self.dir))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(ip) = name.parse::<Ipv4Addr>() else {
                continue;
            };
            let owner = fs::read_to_string(entry.path()).unwrap_or_default();
            out.push((ip, owner.trim().to_string()));
        }
        out.sort();
        Ok(out)
    }

    /// Frees whatever `owner` holds.
    pub fn release(&self, owner: &str) -> Result<(), Error> {
        for (ip, who) in self.in_use()? {
            if who == owner {
                let path = self.dir.join(ip.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove", &path)(e)),
                }
            }
        }
        Ok(())
    }

    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.dir.join(LAST))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

fn first_host(range: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()) + 1)
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_skip_network_gateway_and_broadcast() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Allocator::new(dir.path(), net("10.42.0.0/30")).unwrap();
        assert_eq!(ipam.gateway(), Ipv4Addr::new(10, 42, 0, 1));
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(10, 42, 0, 2));
        assert!(matches!(ipam.allocate("b"), Err(Error::Exhausted(_))));
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(10, 42, 0, 2));
    }

    #[test]
    fn state_survives_a_new_allocator() {
        let dir = tempfile::tempdir().unwrap();
        let a = Allocator::new(dir.path(), net("10.42.1.0/24")).unwrap();
        let ip = a.allocate("pod-1").unwrap();
        let b = Allocator::new(dir.path(), net("10.42.1.0/24")).unwrap();
        assert_eq!(b.find("pod-1").unwrap(), Some(ip));
        assert_ne!(b.allocate("pod-2").unwrap(), ip);
    }

    #[test]
    fn released_addresses_are_not_reused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Allocator::new(dir.path(), net("10.42.0.0/24")).unwrap();
        let first = ipam.allocate("a").unwrap();
        ipam.release("a").unwrap();
        assert_ne!(ipam.allocate("b").unwrap(), first);
    }

    proptest! {
        /// Against a model: owners never share an address, every address is
        /// a usable host of the range, and release frees exactly the owner's.
        #[test]
        fn allocations_follow_the_model(ops in proptest::collection::vec((0u8..12, any::<bool>()), 1..80)) {
            let dir = tempfile::tempdir().unwrap();
            let range = net("10.42.7.0/28");
            let ipam = Allocator::new(dir.path(), range).unwrap();
            let mut model: HashMap<String, Ipv4Addr> = HashMap::new();
            for (owner, allocate) in ops {
                let owner = format!("pod-{owner}");
                if allocate {
                    match ipam.allocate(&owner) {
                        Ok(ip) => {
                            prop_assert!(range.contains(&ip));
                            prop_assert!(ip != range.network() && ip != range.broadcast() && ip != ipam.gateway());
                            if let Some(known) = model.get(&owner) {
                                prop_assert_eq!(*known, ip);
                            }
                            prop_assert!(!model.iter().any(|(o, i)| *i == ip && *o != owner));
                            model.insert(owner.clone(), ip);
                        }
                        Err(Error::Exhausted(_)) => prop_assert_eq!(model.len(), 13),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                } else {
                    ipam.release(&owner).unwrap();
                    model.remove(&owner);
                }
                prop_assert_eq!(ipam.find(&owner).unwrap(), model.get(&owner).copied());
            }
        }
    }
}

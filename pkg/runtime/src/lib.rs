//! kite's container runtime: OCI images and containers that really run
//! (the counterpart of containerd + runc in k3s).
//!
//! Start with [`Store`] (the content-addressed image store under
//! `<data-dir>/agent`), [`import::import`] (docker-archive and OCI-layout
//! tarballs) and [`Runtime`] (containers on an overlayfs rootfs, run through
//! the low-level half in [`shim`], which the kite binary executes as the
//! hidden `kite runtime` subcommand in a single-threaded process of its own).
//!
//! Module map: [`reference`] parses image names, [`digest`] hashes content,
//! [`unpack`] applies layers and whiteouts, [`spec`] builds OCI runtime
//! specs, [`cgroup`] places containers' cgroups, [`pull`] fetches images
//! from registries configured by [`registries`], [`usage`] tells which
//! images containers use and how full the store's file system is.

// Tests may unwrap; library code may not (checked by the non-test clippy pass).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cgroup;
pub mod container;
pub mod crilog;
pub mod digest;
pub mod import;
pub mod monitor;
pub mod pull;
pub mod reference;
pub mod registries;
pub mod sandbox;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod store;
pub mod unpack;
pub mod usage;

pub use container::{Runtime, RuntimeConfig, Stdio3};
pub use digest::Digest;
pub use reference::Reference;
pub use spec::{ContainerSpec, JoinNamespaces, Limits, Mount};
pub use store::{Image, Store};

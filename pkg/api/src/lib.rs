//! Kubernetes API types and pure functions shared by kite's components.
//!
//! This crate has no IO and no async runtime, like kube-core: it holds the
//! wire shapes kite produces itself (such as [`Status`] error bodies and the
//! [`VersionInfo`] served at `/version`). Start at [`status`].

pub mod admission;
pub mod conversion;
pub mod defaults;
pub mod managed;
pub mod matching;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod status;
pub mod structural;
pub mod table;
pub mod taints;
pub mod validation;
pub mod version;
pub mod volume_binding;

pub use resources::{ResourceInfo, SubresourceInfo};
pub use status::{Status, StatusCause, StatusDetails, StatusReason};
pub use validation::{FieldError, FieldErrorType};
pub use version::VersionInfo;

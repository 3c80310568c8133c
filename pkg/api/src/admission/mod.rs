//! The mutating and validating admission steps kube-apiserver runs on pods
//! before they are stored, as pure functions over the pod and the objects the
//! step consults (the apiserver fetches those):
//!
//! - [`service_account`]: the `default` service account, its image pull
//!   secrets, and the projected API-access volume in every container;
//! - [`limit_range`]: default requests and limits from the namespace's
//!   LimitRanges, and their minimum, maximum and ratio checks;
//! - [`default_toleration_seconds`]: 300-second tolerations of the
//!   not-ready and unreachable NoExecute taints.
//! - [`resource_quota`]: what objects charge against ResourceQuotas, and
//!   the check that refuses what would go over them.
//! - [`default_storage_class`]: the default StorageClass for new
//!   PersistentVolumeClaims that name none;
//! - [`storage_object_in_use_protection`]: the finalizers that keep claims
//!   in use and bound volumes from going away.
//!
//! Kubernetes runs them in this order (LimitRanger, then ServiceAccount);
//! ResourceQuota validates every kind's creates after both.

pub mod default_storage_class;
pub mod default_toleration_seconds;
pub mod limit_range;
pub mod priority;
pub mod resource_quota;
pub mod service_account;
pub mod storage_object_in_use_protection;

//! Persistent storage: the PersistentVolume [`binder`] (claims to volumes,
//! releasing and reclaiming), the [`local_path`] provisioner that makes
//! volumes for the default `local-path` class, and [`protection`], which
//! holds back deleting claims in use and volumes still bound. The matching rules both use,
//! shared with the scheduler, are `kite_api::volume_binding`.

pub mod binder;
pub mod local_path;
pub mod protection;

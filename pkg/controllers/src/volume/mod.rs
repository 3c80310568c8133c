//! Persistent storage: the PersistentVolume [`binder`] (claims to volumes,
//! releasing and reclaiming) and the [`local_path`] provisioner that makes
//! volumes for the default `local-path` class. The matching rules both use,
//! shared with the scheduler, are `kite_api::volume_binding`.

pub mod binder;
pub mod local_path;

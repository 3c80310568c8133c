//! What the image store's content is used for: which image each container
//! was made from (`<bundle>/image.json`, written when it is prepared), image
//! removal that refuses images containers still use, and how full the file
//! system holding the store is (for the kubelet's image garbage collection).

use crate::container::{Error, Result, Runtime};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::Image;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The file in a container's bundle naming its image.
pub const IMAGE_FILE: &str = "image.json";

/// The image a container was made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageUse {
    /// The image's name when the container was made.
    pub name: String,
    /// Its manifest digest.
    pub digest: Digest,
}

/// Size and free space of a file system, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskUsage {
    /// Total size.
    pub capacity: u64,
    /// Free space unprivileged users may use.
    pub available: u64,
}

/// The usage of the file system holding `path`.
pub fn disk_usage(path: &Path) -> std::io::Result<DiskUsage> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(DiskUsage {
        capacity: stat.f_blocks.saturating_mul(stat.f_frsize),
        available: stat.f_bavail.saturating_mul(stat.f_frsize),
    })
}

impl Runtime {
    /// Records in `bundle` that its container uses `image`.
    pub(crate) fn record_image(&self, bundle: &Path, image: &Image) -> Result<()> {
        let record = ImageUse {
            name: image.name.clone(),
            digest: image.digest.clone(),
        };
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        Ok(crate::store::write_atomic(
            &bundle.join(IMAGE_FILE),
            &bytes,
        )?)
    }

    /// The image of every container that exists (running or not), by
    /// manifest digest: the containers made from it, sorted.
    pub fn images_in_use(&self) -> Result<BTreeMap<Digest, Vec<String>>> {
        let mut used: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for id in self.list()? {
            let path = self.bundle_dir(&id).join(IMAGE_FILE);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            match serde_json::from_slice::<ImageUse>(&bytes) {
                Ok(record) => used.entry(record.digest).or_default().push(id),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable image record");
                }
            }
        }
        Ok(used)
    }

    /// Removes image `reference` unless a container uses it and no other
    /// name keeps its content (then removing only a name frees nothing).
    pub fn remove_image(&self, reference: &Reference) -> Result<Image> {
        let store = self.store();
        let image = store.get(reference)?;
        let other_names = store
            .list()?
            .iter()
            .any(|i| i.digest == image.digest && i.name != image.name);
        if !other_names && let Some(users) = self.images_in_use()?.get(&image.digest) {
            return Err(Error::ImageInUse {
                image: image.name,
                containers: users.clone(),
            });
        }
        Ok(store.remove(reference)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_file_system_has_a_size() {
        let dir = tempfile::tempdir().unwrap();
        let usage = disk_usage(dir.path()).unwrap();
        assert!(usage.capacity > 0);
        assert!(usage.available <= usage.capacity);
    }
}

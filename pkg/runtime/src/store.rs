//! The content-addressed image store under `<data-dir>/agent/`.
//!
//! ```text
//! content/blobs/sha256/<hex>   manifests, configs and layer blobs, named by their digest
//! content/ingest/<tmp>/        blobs being imported (renamed into blobs/ once verified)
//! snapshots/<diff-id hex>/     each layer unpacked once, whiteouts in overlayfs form
//! images.json                  image name → manifest, config and layers
//! lock                         flock held while the index changes
//! ```
//!
//! Every file is written to a temporary name and renamed into place, so a
//! crash or a rejected import never leaves a half-written blob, snapshot or
//! index behind.

use crate::digest::Digest;
use crate::reference::Reference;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The index file cannot be parsed.
    #[error("image index {path} is corrupt: {source}")]
    CorruptIndex {
        /// The index file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// No image has that name.
    #[error("image {0} not found")]
    NotFound(String),
}

/// Result of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// One layer of an image, as the manifest and the config describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Digest of the blob as stored (compressed or not).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the config's `diff_id`); names the snapshot.
    pub diff_id: Digest,
    /// Media type of the blob.
    pub media_type: String,
    /// Size of the blob in bytes.
    pub size: u64,
}

/// An image in the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The normalised name, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// Digest of the manifest: the image's identity.
    pub digest: Digest,
    /// Media type of the manifest.
    pub media_type: String,
    /// Digest of the image config blob.
    pub config: Digest,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// Bytes of manifest, config and layer blobs.
    pub size: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: BTreeMap<String, Image>,
}

/// The store rooted at `<data-dir>/agent`.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// The exclusive lock on the store's index; released when dropped.
pub struct StoreLock {
    _lock: nix::fcntl::Flock<File>,
}

impl Store {
    /// Opens (creating if needed) the store at `root` (`<data-dir>/agent`).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let store = Self { root: root.into() };
        for dir in [
            store.blobs_dir(),
            store.ingest_dir(),
            store.snapshots_dir(),
            store.containers_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        Ok(store)
    }

    /// `<data-dir>/agent`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("content/blobs/sha256")
    }

    pub(crate) fn ingest_dir(&self) -> PathBuf {
        self.root.join("content/ingest")
    }

    pub(crate) fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// `<data-dir>/agent/containers`: one bundle directory per container.
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Where the low-level runtime keeps container state.
    pub fn runtime_state_dir(&self) -> PathBuf {
        self.root.join("runtime")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    /// The path of a blob.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether a blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The unpacked layer directory for a diff id.
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.snapshots_dir().join(diff_id.hex())
    }

    /// Reads a whole blob (manifests and configs).
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(io_err("read blob", &path))
    }

    /// Takes the store's exclusive lock.
    pub fn lock(&self) -> Result<StoreLock> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, errno)| Error::Io {
                action: "lock",
                path: path.clone(),
                source: io::Error::from(errno),
            },
        )?;
        Ok(StoreLock { _lock: lock })
    }

    fn read_index(&self) -> Result<Index> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| Error::CorruptIndex { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index).map_err(|source| Error::CorruptIndex {
            path: self.index_path(),
            source,
        })?;
        write_atomic(&self.index_path(), &bytes)
    }

    /// Every image, sorted by name.
    pub fn list(&self) -> Result<Vec<Image>> {
        Ok(self.read_index()?.images.into_values().collect())
    }

    /// The image called `reference` (normalised first), or by manifest digest.
    pub fn get(&self, reference: &Reference) -> Result<Image> {
        let index = self.read_index()?;
        let key = reference.to_string();
        if let Some(image) = index.images.get(&key) {
            return Ok(image.clone());
        }
        if let Some(digest) = reference.digest() {
            let name = reference.name();
            if let Some(image) = index
                .images
                .values()
                .find(|i| &i.digest == digest && i.name.starts_with(&name))
            {
                return Ok(image.clone());
            }
        }
        Err(Error::NotFound(key))
    }

    /// Adds or replaces images in the index. The caller holds the lock.
    pub(crate) fn put_images(&self, _lock: &StoreLock, images: &[Image]) -> Result<()> {
        let mut index = self.read_index()?;
        for image in images {
            index.images.insert(image.name.clone(), image.clone());
        }
        self.write_index(&index)
    }

    /// Removes an image name. Blobs and snapshots no other image uses are deleted too.
    pub fn remove(&self, reference: &Reference) -> Result<Image> {
        let lock = self.lock()?;
        let mut index = self.read_index()?;
        let image = self.get(reference)?;
        index.images.remove(&image.name);
        self.write_index(&index)?;
        self.collect_garbage(&lock, &index)?;
        Ok(image)
    }

    /// Deletes blobs and snapshots no image refers to any more (left behind
    /// by interrupted imports or pulls).
    pub fn prune(&self) -> Result<()> {
        let lock = self.lock()?;
        let index = self.read_index()?;
        self.collect_garbage(&lock, &index)
    }

    /// Deletes blobs and snapshots no image in `index` refers to.
    fn collect_garbage(&self, _lock: &StoreLock, index: &Index) -> Result<()> {
        let mut blobs = std::collections::HashSet::new();
        let mut snapshots = std::collections::HashSet::new();
        for image in index.images.values() {
            blobs.insert(image.digest.hex().to_string());
            blobs.insert(image.config.hex().to_string());
            for layer in &image.layers {
                blobs.insert(layer.digest.hex().to_string());
                snapshots.insert(layer.diff_id.hex().to_string());
            }
        }
        for (dir, keep) in [
            (self.blobs_dir(), &blobs),
            (self.snapshots_dir(), &snapshots),
        ] {
            let entries = fs::read_dir(&dir).map_err(io_err("list", &dir))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // Only finished, digest-named entries: imports in progress use other names.
                if name.len() != 64 || keep.contains(&name) {
                    continue;
                }
                let path = entry.path();
                let removed = if path.is_dir() {
                    remove_tree(&path)
                } else {
                    fs::remove_file(&path)
                };
                if let Err(e) = removed {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove unused content");
                }
            }
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
    file.write_all(bytes).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("sync", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename", path))
}

/// Removes a directory tree, making read-only directories writable first.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(path);
            fs::remove_dir_all(path)
        }
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::symlink_metadata(path)
        && meta.is_dir()
    {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o755));
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                make_writable(&entry.path());
            }
        }
    }
}

//! Importing image tarballs: docker-archive (`docker save`) and OCI layout,
//! plain, gzip or zstd (sniffed from the magic bytes, not the file name).
//!
//! The tarball is read once, front to back. Every file goes to a private
//! ingest directory while its sha256 is computed. Then the manifests are
//! resolved and *every* digest is checked: blob names, descriptor digests and
//! sizes, and each layer's uncompressed digest against the config's
//! `diff_ids` (while it is unpacked into a temporary snapshot). Only when all
//! of that passed are blobs and snapshots renamed into the store and the
//! index updated; on any error the ingest directory and temporary snapshots
//! are removed, so nothing half-imported stays behind.

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::reference::Reference;
use crate::store::{self, Image, Layer, Store, io_err};
use crate::unpack::{self, Whiteouts};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// Errors importing a tarball.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tarball cannot be read (truncated, corrupt compression, I/O).
    #[error("reading the tarball: {0} (truncated or corrupt?)")]
    Read(#[source] io::Error),
    /// Neither `manifest.json` nor `index.json` + `oci-layout` was found.
    #[error("not an image tarball: no manifest.json (docker-archive) or index.json (OCI layout)")]
    UnknownFormat,
    /// A JSON document is malformed.
    #[error("{file}: invalid JSON: {source}")]
    Json {
        /// The file in the tarball.
        file: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A file the manifests refer to is not in the tarball.
    #[error("{0} is referenced but not in the tarball")]
    Missing(String),
    /// Content does not match its digest.
    #[error("{what}: content has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The digest the manifest or config gives.
        expected: String,
        /// The digest of the content.
        actual: Digest,
    },
    /// Something else about the image is wrong.
    #[error("{0}")]
    Invalid(String),
    /// An image name cannot be parsed.
    #[error(transparent)]
    Reference(#[from] crate::reference::Error),
    /// A layer cannot be unpacked.
    #[error("layer {digest}: {source}")]
    Unpack {
        /// The layer blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: unpack::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Result of imports.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Media types kite writes for docker-archive images it converts.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// JSON files larger than this are not manifests.
const MAX_JSON: u64 = 8 << 20;

/// Compression of a stream, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// Sniffs the compression of the stream behind `reader` without consuming it.
    pub fn sniff(reader: &mut impl BufRead) -> io::Result<Self> {
        let head = reader.fill_buf()?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        })
    }
}

/// A reader that decompresses whatever `reader` holds.
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    Ok(match Compression::sniff(&mut reader)? {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(reader)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
        ),
    })
}

/// One file of the tarball, in the ingest directory.
#[derive(Clone)]
pub(crate) struct Ingested {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) tmp: PathBuf,
}

/// An import in progress: removes its temporary files when dropped.
pub(crate) struct Ingest {
    pub(crate) dir: PathBuf,
    snapshots: Vec<PathBuf>,
}

impl Ingest {
    /// A fresh private directory under the store's ingest area.
    pub(crate) fn new(store: &Store, what: &str) -> Result<Self> {
        let dir = store
            .ingest_dir()
            .join(format!("{what}-{}-{}", std::process::id(), unique()));
        fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir)(e))?;
        Ok(Self {
            dir,
            snapshots: Vec::new(),
        })
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = store::remove_tree(&self.dir);
        for snapshot in &self.snapshots {
            let _ = store::remove_tree(snapshot);
        }
    }
}

/// Imports every image in the tarball `reader` into `store`.
///
/// `whiteouts` writes overlayfs whiteouts (use [`unpack::OverlayWhiteouts`]).
pub fn import(store: &Store, reader: impl Read, whiteouts: &dyn Whiteouts) -> Result<Vec<Image>> {
    let ingest = Ingest::new(store, "import")?;
    let files = read_tarball(reader, &ingest.dir)?;
    store_files(store, ingest, &files, whiteouts)
}

/// Resolves the images an OCI layout or docker-archive's `files` hold, checks
/// every digest, unpacks new layers and publishes the images in the store.
/// Shared by tarball imports and registry pulls (which lay out what they
/// fetched as an OCI layout).
pub(crate) fn store_files(
    store: &Store,
    mut ingest: Ingest,
    files: &BTreeMap<String, Ingested>,
    whiteouts: &dyn Whiteouts,
) -> Result<Vec<Image>> {
    let resolved = if files.contains_key("index.json") && files.contains_key("oci-layout") {
        resolve_oci(files)?
    } else if files.contains_key("manifest.json") {
        resolve_docker(files, &ingest.dir)?
    } else {
        return Err(Error::UnknownFormat);
    };
    if resolved.is_empty() {
        return Err(Error::Invalid("the tarball names no image".into()));
    }

    // Unpack layers not yet in the store, checking their diff ids.
    let mut unpacked: HashMap<Digest, PathBuf> = HashMap::new();
    for image in &resolved {
        for layer in &image.layers {
            if store.snapshot_path(&layer.diff_id).is_dir() || unpacked.contains_key(&layer.diff_id)
            {
                continue;
            }
            let blob = &image.blobs[&layer.digest];
            let tmp =
                store
                    .snapshots_dir()
                    .join(format!("tmp-{}-{}", std::process::id(), unique()));
            ingest.snapshots.push(tmp.clone());
            fs::create_dir(&tmp).map_err(|e| io_err("create", &tmp)(e))?;
            let file = File::open(&blob.tmp).map_err(|e| io_err("open", &blob.tmp)(e))?;
            let mut hashed = HashingReader::new(decompress(file).map_err(Error::Read)?);
            unpack::unpack_layer(&mut hashed, &tmp, whiteouts).map_err(|source| Error::Unpack {
                digest: layer.digest.clone(),
                source,
            })?;
            let (diff_id, _) = hashed.finish().map_err(Error::Read)?;
            if diff_id != layer.diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("layer {} (uncompressed)", layer.digest),
                    expected: layer.diff_id.to_string(),
                    actual: diff_id,
                });
            }
            unpacked.insert(layer.diff_id.clone(), tmp);
        }
    }

    // Everything checked: move into place, then publish in the index.
    let lock = store.lock()?;
    for image in &resolved {
        for blob in image.blobs.values() {
            let dest = store.blob_path(&blob.digest);
            if !dest.exists() {
                fs::rename(&blob.tmp, &dest).map_err(|e| io_err("store blob", &dest)(e))?;
            }
        }
    }
    for (diff_id, tmp) in unpacked {
        let dest = store.snapshot_path(&diff_id);
        if !dest.exists() {
            fs::rename(&tmp, &dest).map_err(|e| io_err("store snapshot", &dest)(e))?;
        }
    }
    let images: Vec<Image> = resolved
        .into_iter()
        .flat_map(|r| {
            r.names.into_iter().map(move |name| Image {
                name,
                digest: r.manifest.clone(),
                media_type: r.media_type.clone(),
                config: r.config.clone(),
                layers: r.layers.clone(),
                size: r.size,
            })
        })
        .collect();
    store.put_images(&lock, &images)?;
    Ok(images)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    nanos ^ (NEXT.fetch_add(1, Ordering::Relaxed) << 32)
}

/// Reads every regular file of the tarball into `dir`, hashing it. Symlinks
/// (docker-archive deduplicates layers with them) point at their target's entry.
fn read_tarball(reader: impl Read, dir: &Path) -> Result<BTreeMap<String, Ingested>> {
    let mut archive = tar::Archive::new(decompress(reader).map_err(Error::Read)?);
    let mut files: BTreeMap<String, Ingested> = BTreeMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for (n, entry) in archive.entries().map_err(Error::Read)?.enumerate() {
        let mut entry = entry.map_err(Error::Read)?;
        let path = entry.path().map_err(Error::Read)?;
        let Some(name) = clean(&path) else { continue };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name().map_err(Error::Read)? {
                let base = if kind.is_symlink() {
                    Path::new(&name)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(target)
                } else {
                    target.into_owned()
                };
                if let Some(target) = clean(&base) {
                    links.push((name, target));
                }
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let tmp = dir.join(format!("{n}"));
        let file = File::create(&tmp).map_err(|e| io_err("create", &tmp)(e))?;
        let mut writer = HashingWriter::new(io::BufWriter::new(file));
        io::copy(&mut entry, &mut writer).map_err(Error::Read)?;
        let (digest, size, buffered) = writer.finish();
        buffered
            .into_inner()
            .map_err(|e| Error::Read(e.into_error()))?;
        if size != entry.header().size().map_err(Error::Read)? {
            return Err(Error::Read(io::ErrorKind::UnexpectedEof.into()));
        }
        files.insert(name, Ingested { digest, size, tmp });
    }
    for (name, target) in links {
        if let Some(found) = files.get(&target) {
            let copy = Ingested {
                digest: found.digest.clone(),
                size: found.size,
                tmp: found.tmp.clone(),
            };
            files.insert(name, copy);
        }
    }
    // A name that says which digest it has must have it.
    for (name, file) in &files {
        if let Some(hex) = name.strip_prefix("blobs/sha256/")
            && hex != file.digest.hex()
        {
            return Err(Error::DigestMismatch {
                what: name.clone(),
                expected: format!("sha256:{hex}"),
                actual: file.digest.clone(),
            });
        }
    }
    Ok(files)
}

/// A normalised relative path, or `None` for the root or one escaping it.
fn clean(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => parts.push(c.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// An image resolved from the tarball, not yet stored.
struct Resolved {
    names: Vec<String>,
    manifest: Digest,
    media_type: String,
    config: Digest,
    layers: Vec<Layer>,
    size: u64,
    blobs: HashMap<Digest, Ingested>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct IndexJson {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    #[serde(default)]
    media_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ConfigJson {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(file: &Ingested, what: &str) -> Result<T> {
    if file.size > MAX_JSON {
        return Err(Error::Invalid(format!(
            "{what} is too large for a JSON document"
        )));
    }
    let bytes = fs::read(&file.tmp).map_err(Error::Read)?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        file: what.to_string(),
        source,
    })
}

fn parse_digest(text: &str, what: &str) -> Result<Digest> {
    Digest::parse(text).map_err(|e| Error::Invalid(format!("{what}: {e}")))
}

/// The blob for a descriptor, checked against its digest and size.
fn blob<'a>(
    files: &'a BTreeMap<String, Ingested>,
    descriptor: &Descriptor,
    what: &str,
) -> Result<(Digest, &'a Ingested)> {
    let digest = parse_digest(&descriptor.digest, what)?;
    let path = format!("blobs/sha256/{}", digest.hex());
    let file = files
        .get(&path)
        .ok_or_else(|| Error::Missing(format!("{what} {digest}")))?;
    if file.size != descriptor.size {
        return Err(Error::Invalid(format!(
            "{what} {digest}: size {} in the tarball, {} in the manifest",
            file.size, descriptor.size
        )));
    }
    Ok((digest, file))
}

pub(crate) fn current_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        other => other,
    }
}

fn resolve_oci(files: &BTreeMap<String, Ingested>) -> Result<Vec<Resolved>> {
    let index: IndexJson = read_json(&files["index.json"], "index.json")?;
    let mut out = Vec::new();
    for top in &index.manifests {
        let name = top
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| top.annotations.get("org.opencontainers.image.ref.name"))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "index.json: manifest {} has no image name annotation \
                     (io.containerd.image.name or org.opencontainers.image.ref.name)",
                    top.digest
                ))
            })?;
        let reference = Reference::parse(name)?;
        let mut descriptor = top;
        let mut nested_blobs = Vec::new();
        let nested_index;
        if descriptor.media_type == OCI_INDEX || descriptor.media_type == DOCKER_LIST {
            let (digest, file) = blob(files, descriptor, "image index")?;
            nested_blobs.push((digest, file));
            nested_index = read_json::<IndexJson>(file, "image index")?;
            descriptor = nested_index
                .manifests
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == current_arch())
                })
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{reference}: no manifest for linux/{}",
                        current_arch()
                    ))
                })?;
        }
        let (manifest_digest, manifest_file) = blob(files, descriptor, "manifest")?;
        let manifest: ManifestJson = read_json(manifest_file, "manifest")?;
        let media_type = if manifest.media_type.is_empty() {
            descriptor.media_type.clone()
        } else {
            manifest.media_type.clone()
        };
        let mut blobs: HashMap<Digest, Ingested> = nested_blobs
            .into_iter()
            .map(|(d, f)| (d, f.clone()))
            .collect();
        blobs.insert(manifest_digest.clone(), manifest_file.clone());
        let (config_digest, config_file) = blob(files, &manifest.config, "config")?;
        blobs.insert(config_digest.clone(), config_file.clone());
        let config: ConfigJson = read_json(config_file, "config")?;
        let mut layers = Vec::new();
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(Error::Invalid(format!(
                "{reference}: the manifest has {} layers but the config {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let (digest, file) = blob(files, layer, "layer")?;
            blobs.insert(digest.clone(), file.clone());
            layers.push(Layer {
                digest,
                diff_id: parse_digest(diff_id, "config diff_id")?,
                media_type: layer.media_type.clone(),
                size: layer.size,
            });
        }
        let size = blobs.values().map(|b| b.size).sum();
        out.push(Resolved {
            names: vec![reference.to_string()],
            manifest: manifest_digest,
            media_type,
            config: config_digest,
            layers,
            size,
            blobs,
        });
    }
    Ok(out)
}

fn resolve_docker(files: &BTreeMap<String, Ingested>, ingest_dir: &Path) -> Result<Vec<Resolved>> {
    let entries: Vec<DockerManifestEntry> = read_json(&files["manifest.json"], "manifest.json")?;
    let mut out = Vec::new();
    for (n, entry) in entries.into_iter().enumerate() {
        let names = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|tag| Reference::parse(tag).map(|r| r.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if names.is_empty() {
            return Err(Error::Invalid(format!(
                "manifest.json: image {} has no RepoTags to name it",
                entry.config
            )));
        }
        let config_name = clean(Path::new(&entry.config)).unwrap_or_default();
        let config_file = files
            .get(&config_name)
            .ok_or_else(|| Error::Missing(entry.config.clone()))?;
        // `<hex>.json`: the name is the config's digest.
        if let Some(hex) = Path::new(&config_name)
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".json"))
            && Digest::from_hex(hex).is_ok()
            && hex != config_file.digest.hex()
        {
            return Err(Error::DigestMismatch {
                what: entry.config.clone(),
                expected: format!("sha256:{hex}"),
                actual: config_file.digest.clone(),
            });
        }
        let config: ConfigJson = read_json(config_file, &entry.config)?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(Error::Invalid(format!(
                "manifest.json: {} layers but the config has {} diff_ids",
                entry.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut blobs: HashMap<Digest, Ingested> = HashMap::new();
        blobs.insert(config_file.digest.clone(), config_file.clone());
        let mut layers = Vec::new();
        let mut layer_descriptors = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let file = files
                .get(&clean(Path::new(path)).unwrap_or_default())
                .ok_or_else(|| Error::Missing(path.clone()))?;
            let mut head = BufReader::new(File::open(&file.tmp).map_err(Error::Read)?);
            let media_type = match Compression::sniff(&mut head).map_err(Error::Read)? {
                Compression::None => "application/vnd.oci.image.layer.v1.tar",
                Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            blobs.insert(file.digest.clone(), file.clone());
            layer_descriptors.push(serde_json::json!({
                "mediaType": media_type, "digest": file.digest.to_string(), "size": file.size,
            }));
            layers.push(Layer {
                digest: file.digest.clone(),
                diff_id: parse_digest(diff_id, "config diff_id")?,
                media_type: media_type.to_string(),
                size: file.size,
            });
        }
        // docker-archive has no manifest blob: write the OCI manifest it implies.
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_file.digest.to_string(),
                       "size": config_file.size},
            "layers": layer_descriptors,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|source| Error::Json {
            file: "manifest".into(),
            source,
        })?;
        let digest = Digest::of(&bytes);
        let tmp = ingest_dir.join(format!("manifest-{n}"));
        fs::write(&tmp, &bytes).map_err(|e| io_err("write", &tmp)(e))?;
        let manifest_file = Ingested {
            digest: digest.clone(),
            size: bytes.len() as u64,
            tmp,
        };
        blobs.insert(digest.clone(), manifest_file);
        let size = blobs.values().map(|b| b.size).sum();
        out.push(Resolved {
            names,
            manifest: digest,
            media_type: OCI_MANIFEST.to_string(),
            config: config_file.digest.clone(),
            layers,
            size,
            blobs,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;

//! Unpacking one layer tar into its own snapshot directory.
//!
//! Each layer is unpacked on its own (not on top of its parents); the
//! container's rootfs stacks the layer directories with overlayfs. So a
//! whiteout does not delete anything here: it is turned into overlayfs's form,
//! which hides the path in the layers below when mounted:
//!
//! - `dir/.wh.name` becomes a character device 0:0 at `dir/name`;
//! - `dir/.wh..wh..opq` marks `dir` opaque (`trusted.overlay.opaque=y`).
//!
//! Paths are confined to the snapshot: `..` components are rejected and no
//! entry is written through a symlink, whatever the layer contains.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Errors unpacking a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tar stream cannot be read.
    #[error("reading layer: {0}")]
    Read(#[source] io::Error),
    /// An entry has a path that escapes the layer.
    #[error("layer entry {0:?} escapes the layer (absolute link target or `..`)")]
    UnsafePath(PathBuf),
    /// An entry would be written through a symlink.
    #[error("layer entry {0:?} is below a symlink")]
    BelowSymlink(PathBuf),
    /// Writing an entry failed.
    #[error("unpacking {path:?}: {source}")]
    Write {
        /// The entry.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// How whiteouts are written: the one place unpacking needs privileges.
pub trait Whiteouts {
    /// Hides `path` (in the layers below) from the mounted rootfs.
    fn whiteout(&self, path: &Path) -> io::Result<()>;
    /// Hides everything the layers below hold in directory `dir`.
    fn opaque(&self, dir: &Path) -> io::Result<()>;
}

/// Whiteouts as overlayfs reads them (needs root: mknod and trusted.* xattrs).
#[derive(Clone, Copy, Debug, Default)]
pub struct OverlayWhiteouts;

impl Whiteouts for OverlayWhiteouts {
    fn whiteout(&self, path: &Path) -> io::Result<()> {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(io::Error::from)
    }

    fn opaque(&self, dir: &Path) -> io::Result<()> {
        set_xattr(dir, "trusted.overlay.opaque", b"y")
    }
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .map_err(io::Error::from)
}

/// What unpacking found, for progress and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Entries written (files, directories, links, devices).
    pub entries: u64,
    /// Whiteouts and opaque markers applied.
    pub whiteouts: u64,
    /// Device and fifo entries skipped because the process is not root.
    pub skipped_devices: u64,
}

/// Unpacks the (already decompressed) tar `reader` into `dest`, which must exist.
pub fn unpack_layer(
    reader: impl Read,
    dest: &Path,
    whiteouts: &dyn Whiteouts,
) -> Result<Unpacked, Error> {
    let root = nix::unistd::geteuid().is_root();
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(root);
    archive.set_overwrite(true);
    let mut stats = Unpacked::default();
    for entry in archive.entries().map_err(Error::Read)? {
        let mut entry = entry.map_err(Error::Read)?;
        let raw = entry.path().map_err(Error::Read)?.into_owned();
        let Some(rel) = confine(&raw)? else {
            continue; // the layer root itself
        };
        let write_err = |source| Error::Write {
            path: rel.clone(),
            source,
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        ensure_dirs(dest, parent)?;
        let name = rel.file_name().unwrap_or(OsStr::new(""));
        let name_str = name.to_string_lossy();
        if name_str == ".wh..wh..opq" {
            whiteouts.opaque(&dest.join(parent)).map_err(write_err)?;
            stats.whiteouts += 1;
            continue;
        }
        if let Some(hidden) = name_str.strip_prefix(".wh.") {
            let target = dest.join(parent).join(hidden);
            remove_existing(&target).map_err(write_err)?;
            whiteouts.whiteout(&target).map_err(write_err)?;
            stats.whiteouts += 1;
            continue;
        }
        let target = dest.join(&rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if let Ok(meta) = fs::symlink_metadata(&target)
                && !meta.is_dir()
            {
                fs::remove_file(&target).map_err(write_err)?;
            }
        } else {
            remove_existing(&target).map_err(write_err)?;
        }
        if kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(Error::Read)?
                .ok_or_else(|| Error::UnsafePath(raw.clone()))?;
            let link = confine(&link)?.ok_or_else(|| Error::UnsafePath(raw.clone()))?;
            ensure_dirs(dest, link.parent().unwrap_or(Path::new("")))?;
            fs::hard_link(dest.join(link), &target).map_err(write_err)?;
        } else if (kind.is_character_special() || kind.is_block_special() || kind.is_fifo())
            && !root
        {
            stats.skipped_devices += 1;
            continue;
        } else {
            entry.unpack(&target).map_err(write_err)?;
        }
        stats.entries += 1;
    }
    Ok(stats)
}

/// The entry's path relative to the layer root; `None` for the root itself.
fn confine(path: &Path) -> Result<Option<PathBuf>, Error> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::UnsafePath(path.to_path_buf()));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Creates the directories of `rel` under `dest`, refusing to pass through symlinks.
fn ensure_dirs(dest: &Path, rel: &Path) -> Result<(), Error> {
    let mut current = dest.to_path_buf();
    for component in rel.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::BelowSymlink(rel.to_path_buf()));
            }
            Ok(_) => {
                // A file where a directory must be: the later entry wins.
                fs::remove_file(&current).map_err(|source| Error::Write {
                    path: rel.to_path_buf(),
                    source,
                })?;
                make_dir(&current, rel)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => make_dir(&current, rel)?,
            Err(source) => {
                return Err(Error::Write {
                    path: rel.to_path_buf(),
                    source,
                });
            }
        }
    }
    Ok(())
}

fn make_dir(path: &Path, rel: &Path) -> Result<(), Error> {
    fs::create_dir(path)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o755)))
        .map_err(|source| Error::Write {
            path: rel.to_path_buf(),
            source,
        })
}

fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => crate::store::remove_tree(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records whiteouts instead of creating devices and xattrs (no root needed).
    #[derive(Default)]
    pub(crate) struct RecordingWhiteouts {
        pub(crate) hidden: RefCell<Vec<PathBuf>>,
        pub(crate) opaque: RefCell<Vec<PathBuf>>,
    }

    impl Whiteouts for RecordingWhiteouts {
        fn whiteout(&self, path: &Path) -> io::Result<()> {
            self.hidden.borrow_mut().push(path.to_path_buf());
            Ok(())
        }
        fn opaque(&self, dir: &Path) -> io::Result<()> {
            self.opaque.borrow_mut().push(dir.to_path_buf());
            Ok(())
        }
    }

    pub(crate) enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8]),
        Link(&'a str, &'a str),
        Hard(&'a str, &'a str),
    }

    /// A tar built in memory from `entries`, with raw names (so `..` can be tested).
    pub(crate) fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            let (name, data, kind, link): (&str, &[u8], tar::EntryType, Option<&str>) = match entry
            {
                E::Dir(n) => (n, b"", tar::EntryType::Directory, None),
                E::File(n, d) => (n, d, tar::EntryType::Regular, None),
                E::Link(n, t) => (n, b"", tar::EntryType::Symlink, Some(t)),
                E::Hard(n, t) => (n, b"", tar::EntryType::Link, Some(t)),
            };
            header.set_entry_type(kind);
            header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            header.set_size(data.len() as u64);
            // Bypass set_path's own `..` check: the unpacker must defend itself.
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            if let Some(link) = link {
                let l = link.as_bytes();
                header.as_old_mut().linkname[..l.len()].copy_from_slice(l);
            }
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn files_dirs_and_links_are_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            E::Dir("./etc/"),
            E::File("etc/motd", b"hi"),
            E::File("bin/busybox", b"bb"),
            E::Link("bin/sh", "busybox"),
            E::Hard("bin/ash", "bin/busybox"),
        ]);
        let w = RecordingWhiteouts::default();
        let stats = unpack_layer(&tar[..], dir.path(), &w).unwrap();
        assert_eq!(stats.entries, 5);
        assert_eq!(fs::read(dir.path().join("etc/motd")).unwrap(), b"hi");
        assert_eq!(
            fs::read_link(dir.path().join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(fs::read(dir.path().join("bin/ash")).unwrap(), b"bb");
    }

    #[test]
    fn whiteouts_and_opaque_dirs_become_overlay_markers() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            E::File("etc/old", b"x"),
            E::File("etc/.wh.old", b""),
            E::File("var/cache/.wh..wh..opq", b""),
            E::File("var/cache/new", b"n"),
            E::File(".wh.tmp", b""),
        ]);
        let w = RecordingWhiteouts::default();
        let stats = unpack_layer(&tar[..], dir.path(), &w).unwrap();
        assert_eq!(stats.whiteouts, 3);
        assert_eq!(
            *w.hidden.borrow(),
            vec![dir.path().join("etc/old"), dir.path().join("tmp")]
        );
        assert_eq!(*w.opaque.borrow(), vec![dir.path().join("var/cache")]);
        // The whiteout replaced the file an earlier entry wrote; no `.wh.` file remains.
        assert!(!dir.path().join("etc/old").exists());
        assert!(!dir.path().join("etc/.wh.old").exists());
        assert_eq!(fs::read(dir.path().join("var/cache/new")).unwrap(), b"n");
    }

    #[test]
    fn entries_cannot_escape_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("layer");
        fs::create_dir(&inner).unwrap();
        let w = RecordingWhiteouts::default();
        let err = unpack_layer(&tar_of(&[E::File("../evil", b"x")])[..], &inner, &w).unwrap_err();
        assert!(matches!(err, Error::UnsafePath(_)), "{err}");
        let err = unpack_layer(
            &tar_of(&[E::Link("etc", "/etc"), E::File("etc/passwd", b"x")])[..],
            &inner,
            &w,
        )
        .unwrap_err();
        assert!(matches!(err, Error::BelowSymlink(_)), "{err}");
        assert!(!dir.path().join("evil").exists());
    }

    #[test]
    fn a_truncated_layer_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[E::File("big", &[7u8; 4096])]);
        let w = RecordingWhiteouts::default();
        assert!(unpack_layer(&tar[..1024], dir.path(), &w).is_err());
    }
}

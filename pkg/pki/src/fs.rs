//! File helpers: private directories, atomic writes with an exact mode, reads that name the file.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Mode of private keys, tokens and admin kubeconfigs.
pub(crate) const PRIVATE: u32 = 0o600;
/// Mode of certificates and public keys.
pub(crate) const PUBLIC: u32 = 0o644;

/// Creates `dir` (and its parents) and sets its mode to 0700.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| write_err(dir, source))?;
    fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(|source| write_err(dir, source))
}

/// Reads a whole file; `Ok(None)` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(read_err(path, source)),
    }
}

/// Reads a whole file that must exist.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| read_err(path, source))
}

/// Replaces `path` with `data` atomically (temporary file in the same directory, fsync,
/// rename), creating parent directories. The file ends up with exactly `mode`, whatever the
/// umask or the mode of the file it replaces.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        write_err(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    fs::create_dir_all(dir).map_err(|source| write_err(dir, source))?;

    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);

    let result = write_file(&tmp, data, mode).and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(path, source));
    }
    // Make the rename itself durable; failing to sync a directory is not worth an error.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_file(tmp: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    // The umask may have cleared bits of `mode`: set it explicitly.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(data)?;
    file.sync_all()
}

/// Sets the mode of an existing file to `mode` if it differs (keys copied around by hand
/// often end up world-readable).
pub(crate) fn enforce_mode(path: &Path, mode: u32) -> Result<()> {
    let meta = fs::metadata(path).map_err(|source| read_err(path, source))?;
    if meta.permissions().mode() & 0o7777 != mode {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "fixing file mode");
        fs::set_permissions(path, Permissions::from_mode(mode))
            .map_err(|source| write_err(path, source))?;
    }
    Ok(())
}

pub(crate) fn read_err(path: &Path, source: io::Error) -> Error {
    Error::Read {
        path: PathBuf::from(path),
        source,
    }
}

pub(crate) fn write_err(path: &Path, source: io::Error) -> Error {
    Error::Write {
        path: PathBuf::from(path),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn write_atomic_sets_exact_mode_when_replacing_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/file");
        write_atomic(&path, b"one", 0o644).unwrap();
        assert_eq!(mode(&path), 0o644);
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // no temporary files left behind
        let entries: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn private_dir_gets_mode_0700() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        fs::create_dir(&tls).unwrap();
        fs::set_permissions(&tls, Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&tls).unwrap();
        assert_eq!(mode(&tls), 0o700);
    }
}

//! Image tarballs dropped into `<data-dir>/agent/images/` (k3s's airgap
//! directory) are imported when the kubelet starts; ones imported before (same
//! name, size and modification time) are skipped.

use kite_runtime::Store;
use kite_runtime::unpack::OverlayWhiteouts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

const RECORD: &str = ".imported.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Imported {
    /// File name → `size:mtime` when it was imported.
    files: BTreeMap<String, String>,
}

/// Imports the tarballs in `dir` not imported before; returns how many were.
/// A broken tarball is reported and skipped (it is retried at the next start).
pub fn import_new(store: &Store, dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let record_path = dir.join(RECORD);
    let mut record: Imported = fs::read(&record_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut files: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    files.sort_by_key(|e| e.file_name());
    let mut imported = 0;
    for entry in files {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let stamp = format!("{}:{mtime}", meta.len());
        if record.files.get(&name) == Some(&stamp) {
            continue;
        }
        let result = fs::File::open(entry.path())
            .map_err(|e| e.to_string())
            .and_then(|file| {
                kite_runtime::import::import(store, io::BufReader::new(file), &OverlayWhiteouts)
                    .map_err(|e| e.to_string())
            });
        match result {
            Ok(images) => {
                for image in images {
                    tracing::info!(image = %image.name, file = %name, "imported image");
                }
                record.files.insert(name, stamp);
                imported += 1;
            }
            Err(error) => tracing::warn!(file = %name, %error, "cannot import image tarball"),
        }
    }
    if imported > 0 {
        fs::write(
            &record_path,
            serde_json::to_vec_pretty(&record).unwrap_or_default(),
        )?;
    }
    Ok(imported)
}

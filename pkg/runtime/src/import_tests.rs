//! Import tests on tarballs built in memory: good ones in every format and
//! compression, and broken ones that must be rejected leaving nothing behind.

use super::*;
use crate::unpack::tests::{E, RecordingWhiteouts, tar_of};
use std::io::Write;

fn sha(data: &[u8]) -> Digest {
    Digest::of(data)
}

fn outer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn layer() -> Vec<u8> {
    tar_of(&[
        E::Dir("bin/"),
        E::File("bin/busybox", b"#!fake"),
        E::Link("bin/sh", "busybox"),
        E::File("etc/.wh.gone", b""),
    ])
}

fn config(diff_ids: &[&Digest]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    }))
    .unwrap()
}

/// A docker-archive tarball of one image named `tag`.
fn docker_archive(tag: &str, layer: &[u8], diff_id: &Digest) -> Vec<u8> {
    let config = config(&[diff_id]);
    let config_name = format!("{}.json", sha(&config).hex());
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name, "RepoTags": [tag], "Layers": ["abc/layer.tar"],
    }]))
    .unwrap();
    outer(&[
        ("abc/layer.tar", layer),
        (&config_name, &config),
        ("manifest.json", &manifest),
    ])
}

/// An OCI layout tarball with a gzip layer.
fn oci_layout(name: &str, layer: &[u8]) -> Vec<u8> {
    let gz = gzip(layer);
    let config = config(&[&sha(layer)]);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": OCI_CONFIG, "digest": sha(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(&gz).to_string(), "size": gz.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha(&manifest).to_string(),
                       "size": manifest.len(),
                       "annotations": {"io.containerd.image.name": name}}],
    }))
    .unwrap();
    let blob = |d: &[u8]| format!("blobs/sha256/{}", sha(d).hex());
    outer(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &index),
        (&blob(&manifest), &manifest),
        (&blob(&config), &config),
        (&blob(&gz), &gz),
    ])
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("agent")).unwrap();
    (dir, store)
}

/// Nothing half-imported: no images, no blobs, no snapshots, an empty ingest dir.
fn assert_empty(store: &Store) {
    assert!(store.list().unwrap().is_empty());
    for dir in [store.blobs_dir(), store.snapshots_dir(), store.ingest_dir()] {
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{} holds {left:?}", dir.display());
    }
}

#[test]
fn a_docker_archive_is_imported_named_and_unpacked() {
    let (_dir, store) = store();
    let layer = layer();
    let w = RecordingWhiteouts::default();
    let images = import(
        &store,
        &docker_archive("busybox:latest", &layer, &sha(&layer))[..],
        &w,
    )
    .unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].name, "docker.io/library/busybox:latest");
    assert_eq!(images[0].layers[0].diff_id, sha(&layer));
    let listed = store.list().unwrap();
    assert_eq!(listed, images);
    let snapshot = store.snapshot_path(&sha(&layer));
    assert_eq!(fs::read(snapshot.join("bin/busybox")).unwrap(), b"#!fake");
    // The whiteout was written while unpacking into the temporary snapshot.
    let hidden = w.hidden.borrow();
    assert_eq!(hidden.len(), 1);
    assert!(hidden[0].ends_with("etc/gone"), "{hidden:?}");
    drop(hidden);
    assert!(store.has_blob(&images[0].digest) && store.has_blob(&images[0].config));
    // The same image again is a no-op that keeps one entry.
    import(
        &store,
        &docker_archive("busybox", &layer, &sha(&layer))[..],
        &w,
    )
    .unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn oci_layouts_import_plain_gzip_and_zstd() {
    let layer = layer();
    let plain = oci_layout("host:5000/app:v1", &layer);
    let zstd =
        ruzstd::encoding::compress_to_vec(&plain[..], ruzstd::encoding::CompressionLevel::Fastest);
    for tarball in [plain.clone(), gzip(&plain), zstd] {
        let (_dir, store) = store();
        let images = import(&store, &tarball[..], &RecordingWhiteouts::default()).unwrap();
        assert_eq!(images[0].name, "host:5000/app:v1");
        assert_eq!(
            images[0].layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert!(
            store
                .snapshot_path(&sha(&layer))
                .join("bin/sh")
                .symlink_metadata()
                .is_ok()
        );
    }
}

#[test]
fn removing_an_image_collects_its_content() {
    let (_dir, store) = store();
    let layer = layer();
    let w = RecordingWhiteouts::default();
    import(&store, &docker_archive("a:1", &layer, &sha(&layer))[..], &w).unwrap();
    import(&store, &docker_archive("b:1", &layer, &sha(&layer))[..], &w).unwrap();
    store.remove(&Reference::parse("a:1").unwrap()).unwrap();
    assert!(
        store.snapshot_path(&sha(&layer)).is_dir(),
        "b still uses the layer"
    );
    store.remove(&Reference::parse("b:1").unwrap()).unwrap();
    assert_empty(&store);
    assert!(matches!(
        store.remove(&Reference::parse("b:1").unwrap()),
        Err(store::Error::NotFound(_))
    ));
}

#[test]
fn a_truncated_tarball_is_rejected_and_nothing_kept() {
    let (_dir, store) = store();
    let layer = layer();
    let full = gzip(&oci_layout("x", &layer));
    let err = import(
        &store,
        &full[..full.len() / 2],
        &RecordingWhiteouts::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_empty(&store);
    let plain = docker_archive("x", &layer, &sha(&layer));
    let err = import(
        &store,
        &plain[..plain.len() - 3000],
        &RecordingWhiteouts::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Read(_) | Error::Missing(_)), "{err}");
    assert_empty(&store);
}

#[test]
fn a_layer_with_a_wrong_digest_is_rejected_and_nothing_kept() {
    let (_dir, store) = store();
    let layer = layer();
    let wrong = sha(b"something else");
    let err = import(
        &store,
        &docker_archive("x", &layer, &wrong)[..],
        &RecordingWhiteouts::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&wrong.to_string()), "{err}");
    assert_empty(&store);

    // An OCI blob whose content does not match its name.
    let good = oci_layout("x", &layer);
    let gz = gzip(&layer);
    let name = format!("blobs/sha256/{}", sha(&gz).hex());
    let mut archive = tar::Archive::new(&good[..]);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if path == name {
            data = gzip(&tar_of(&[E::File("evil", b"x")]));
        }
        files.push((path, data));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    let err = import(&store, &outer(&refs)[..], &RecordingWhiteouts::default()).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_empty(&store);
}

#[test]
fn unparsable_names_and_non_images_are_rejected() {
    let (_dir, store) = store();
    let layer = layer();
    let err = import(
        &store,
        &docker_archive("Bad Name", &layer, &sha(&layer))[..],
        &RecordingWhiteouts::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid image reference"), "{err}");
    assert_empty(&store);
    let err = import(
        &store,
        &outer(&[("hello.txt", b"hi")])[..],
        &RecordingWhiteouts::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnknownFormat), "{err}");
    assert_empty(&store);
}

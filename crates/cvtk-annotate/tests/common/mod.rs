//! Shared by the annotate tests: a small dataset on disk with a manifest, and
//! the annotation server on a loopback port.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

use cvtk_annotate::{app, Prediction, Store};
use cvtk_dataset::ClassificationDataset;

pub const LABELS: [&str; 3] = ["bowl", "cup", "plate"];

/// `root/<label>/<label>_<i>.png`, 4 per label, each label a colour; and a
/// split manifest at `root/../dishes.json`. Returns the manifest path.
pub fn dataset(dir: &Path) -> PathBuf {
    let root = dir.join("dishes");
    for (l, label) in LABELS.iter().enumerate() {
        std::fs::create_dir_all(root.join(label)).unwrap();
        for i in 0..4u32 {
            let mut px = [50u8, 50, 50];
            px[l] = 120 + 30 * i as u8;
            let img = image::RgbImage::from_fn(64, 48, |x, y| {
                if (x / 8 + y / 8) % 2 == 0 {
                    image::Rgb(px)
                } else {
                    image::Rgb([px[0] / 2, px[1] / 2, px[2] / 2])
                }
            });
            img.save(root.join(label).join(format!("{label}_{i}.png"))).unwrap();
        }
    }
    let mut ds = ClassificationDataset::create_from_dir("dishes", &root).unwrap();
    let split = ds.split(0.5, true, 0).unwrap();
    ds.set_split(split).unwrap();
    let manifest = dir.join("dishes.json");
    ds.to_manifest(&manifest).unwrap();
    manifest
}

/// Predictions that agree with the label except for ids 1 (confidently wrong)
/// and 6 (unsure).
pub fn predictions(manifest: &Path) -> HashMap<u64, Prediction> {
    let ds = ClassificationDataset::from_manifest(manifest).unwrap();
    ds.images()
        .iter()
        .map(|img| {
            let label = ds.labels()[img.label()].name.clone();
            let p = match img.id {
                1 => Prediction { label: "plate".into(), probability: 0.97 },
                6 => Prediction { label, probability: 0.41 },
                id => Prediction { label, probability: 0.9 + (id % 5) as f32 * 0.01 },
            };
            (img.id, p)
        })
        .collect()
}

/// Serves `manifest` on 127.0.0.1 (a thread of its own); returns its address.
pub fn start(manifest: &Path, predictions: HashMap<u64, Prediction>) -> SocketAddr {
    let store = Store::open(manifest, predictions).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || rt.block_on(async move { axum::serve(listener, app(store, true)).await.unwrap() }));
    addr
}

/// A raw HTTP/1.1 GET of `target` exactly as written (no URL normalisation, so
/// `..` reaches the server); returns the status code and the body.
pub fn raw_get(addr: SocketAddr, target: &str, host: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

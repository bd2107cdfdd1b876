//! The annotation server over real loopback HTTP: edits reach the manifest
//! (and `from_manifest`), undo, conflicts between tabs and with other writers,
//! concurrent edits, a read-only manifest, path traversal, the Host guard.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::common;
use crate::common::{dataset, predictions, raw_get, start};
use cvtk_dataset::ClassificationDataset;
use reqwest::blocking::Client;
use serde_json::{json, Value};

fn get(addr: SocketAddr, path: &str) -> Value {
    let r = Client::new().get(format!("http://{addr}{path}")).send().unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().unwrap()
}

fn post(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let r = Client::new().post(format!("http://{addr}{path}")).json(&body).send().unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn image(view: &Value, id: u64) -> Value {
    view["images"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone()
}

fn relabel(addr: SocketAddr, id: u64, from: &str, to: &str) -> (u16, Value) {
    post(addr, &format!("/api/images/{id}"), json!({ "expect": { "label": from, "excluded": false }, "label": to }))
}

#[test]
fn the_page_and_the_dataset_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dataset(dir.path());
    let addr = start(&manifest, predictions(&manifest));
    let page = Client::new().get(format!("http://{addr}/")).send().unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().unwrap().contains("<title>cvtk annotate</title>"));

    let view = get(addr, "/api/dataset");
    assert_eq!(view["name"], "dishes");
    assert_eq!(view["labels"], json!(["bowl", "cup", "plate"]));
    assert_eq!(view["images"].as_array().unwrap().len(), 12);
    assert_eq!(view["counts"], json!({ "bowl": 4, "cup": 4, "plate": 4 }));
    assert_eq!(view["has_model"], true);
    let parts: Vec<&str> = view["images"].as_array().unwrap().iter().map(|i| i["part"].as_str().unwrap()).collect();
    assert_eq!(parts.iter().filter(|p| **p == "train").count(), 6);
    // Doubt: the confident disagreement (id 1) first, then the unsure one (id 6).
    let mut by_doubt: Vec<(f64, u64)> = view["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["doubt"].as_f64().unwrap(), i["id"].as_u64().unwrap()))
        .collect();
    by_doubt.sort_by(|a, b| b.0.total_cmp(&a.0));
    assert_eq!((by_doubt[0].1, by_doubt[1].1), (1, 6), "{by_doubt:?}");
    assert!((by_doubt[0].0 - 1.97).abs() < 1e-6 && (by_doubt[1].0 - 0.59).abs() < 1e-6);

    // Thumbnails are small JPEGs with the image's aspect ratio; files are the files.
    let thumb = Client::new().get(format!("http://{addr}/api/images/0/thumb")).send().unwrap();
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    let t = image::load_from_memory(&thumb.bytes().unwrap()).unwrap();
    assert_eq!((t.width(), t.height()), (64, 48), "small images are not enlarged");
    let file = Client::new().get(format!("http://{addr}/api/images/0/file")).send().unwrap();
    assert_eq!(file.headers()["content-type"], "image/png");
    let on_disk = std::fs::read(dir.path().join("dishes/bowl/bowl_0.png")).unwrap();
    assert_eq!(file.bytes().unwrap().to_vec(), on_disk);
}

#[test]
fn edits_are_saved_to_the_manifest_and_undone() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dataset(dir.path());
    let addr = start(&manifest, HashMap::new());

    let (status, img) = relabel(addr, 2, "bowl", "cup");
    assert_eq!(status, 200, "{img}");
    assert_eq!((img["label"].as_str(), img["excluded"].as_bool()), (Some("cup"), Some(false)));
    let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
    assert_eq!(ds.labels()[ds.image(2).unwrap().label()].name, "cup", "saved at once");

    let (status, img) =
        post(addr, "/api/images/5", json!({ "expect": { "label": "cup", "excluded": false }, "excluded": true }));
    assert_eq!((status, img["excluded"].as_bool()), (200, Some(true)));
    let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
    assert_eq!((ds.len(), ds.excluded().len()), (11, 1));
    assert!(ds.image(5).is_none(), "an excluded image is out of the dataset");

    // A new label, used at once.
    let (status, labels) = post(addr, "/api/labels", json!({ "name": "chopsticks" }));
    assert_eq!((status, &labels["labels"]), (200, &json!(["bowl", "chopsticks", "cup", "plate"])));
    assert_eq!(relabel(addr, 9, "plate", "chopsticks").0, 200);
    let (status, err) = relabel(addr, 10, "plate", "fork");
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("unknown_label")));

    // Undo walks back: 9, then 5, then 2; then there is nothing left.
    let (status, img) = post(addr, "/api/undo", json!(null));
    assert_eq!((status, img["id"].as_u64(), img["label"].as_str()), (200, Some(9), Some("plate")));
    let (_, img) = post(addr, "/api/undo", json!(null));
    assert_eq!((img["id"].as_u64(), img["excluded"].as_bool()), (Some(5), Some(false)));
    let (_, img) = post(addr, "/api/undo", json!(null));
    assert_eq!((img["id"].as_u64(), img["label"].as_str()), (Some(2), Some("bowl")));
    let (status, err) = post(addr, "/api/undo", json!(null));
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("nothing_to_undo")));
    let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
    assert_eq!(ds.counts_per_label(), vec![4, 0, 4, 4]);
    assert!(ds.excluded().is_empty());
    // No temporary files left beside the manifest.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cvtk-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn two_tabs_and_another_program_do_not_lose_each_others_changes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dataset(dir.path());
    let addr = start(&manifest, HashMap::new());

    // Both tabs saw image 0 as a bowl. The first change wins; the second is a
    // conflict that tells the page the image's current state.
    assert_eq!(relabel(addr, 0, "bowl", "cup").0, 200);
    let (status, err) = relabel(addr, 0, "bowl", "plate");
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("conflict")));
    assert_eq!(err["image"]["label"], "cup");
    assert!(err["error"]["message"].as_str().unwrap().contains("changed elsewhere"));

    // Another program edits image 4 in the manifest meanwhile.
    let mut other = ClassificationDataset::from_manifest(&manifest).unwrap();
    other.set_label(4, 2).unwrap();
    other.to_manifest(&manifest).unwrap();
    // This server's next edit (of image 8) keeps that change.
    assert_eq!(relabel(addr, 8, "plate", "bowl").0, 200);
    let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
    let label = |id: u64| ds.labels()[ds.image(id).unwrap().label()].name.clone();
    assert_eq!((label(0), label(4), label(8)), ("cup".into(), "plate".into(), "bowl".into()));
    assert_eq!(image(&get(addr, "/api/dataset"), 4)["label"], "plate", "the page sees it too");

    // Undo of a change someone else changed since is refused, not forced.
    let mut other = ClassificationDataset::from_manifest(&manifest).unwrap();
    other.set_label(8, 1).unwrap();
    other.to_manifest(&manifest).unwrap();
    let (status, err) = post(addr, "/api/undo", json!(null));
    assert_eq!((status, err["image"]["label"].as_str()), (409, Some("cup")));

    // Twelve edits at once, from twelve threads: every one lands.
    let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
    let names = ds.label_names();
    let before: Vec<(u64, String)> = ds.images().iter().map(|i| (i.id, names[i.label()].clone())).collect();
    std::thread::scope(|s| {
        for (id, from) in &before {
            s.spawn(move || {
                let to = if from == "bowl" { "plate" } else { "bowl" };
                assert_eq!(relabel(addr, *id, from, to).0, 200);
            });
        }
    });
    let after = ClassificationDataset::from_manifest(&manifest).unwrap();
    for (id, from) in &before {
        let now = &names[after.image(*id).unwrap().label()];
        assert_ne!(now, from, "image {id} kept its old label");
    }
}

#[cfg(unix)]
#[test]
fn a_read_only_manifest_is_a_clear_error_and_nothing_is_lost() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dataset(dir.path());
    let addr = start(&manifest, HashMap::new());
    assert_eq!(relabel(addr, 3, "bowl", "cup").0, 200);
    let saved = std::fs::read(&manifest).unwrap();

    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (status, err) = relabel(addr, 7, "cup", "plate");
    assert_eq!((status, err["error"]["code"].as_str()), (403, Some("manifest_read_only")), "{err}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("read-only") && msg.contains("chmod"), "{msg}");
    assert_eq!(err["image"]["label"], "cup", "the page is told the image's real state");
    let (status, _) = post(addr, "/api/undo", json!(null));
    assert_eq!(status, 403);
    assert_eq!(std::fs::read(&manifest).unwrap(), saved, "the manifest is untouched");
    assert_eq!(image(&get(addr, "/api/dataset"), 7)["label"], "cup");

    // Writable again: the same edit works, and the undo that failed is still there.
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(relabel(addr, 7, "cup", "plate").0, 200);
    let (_, img) = post(addr, "/api/undo", json!(null));
    assert_eq!(img["id"], 7);
    let (_, img) = post(addr, "/api/undo", json!(null));
    assert_eq!((img["id"].as_u64(), img["label"].as_str()), (Some(3), Some("bowl")));
}

#[test]
fn only_the_datasets_images_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dataset(dir.path());
    std::fs::write(dir.path().join("secret.txt"), "password").unwrap();
    // A manifest entry pointing outside the dataset at a file that is not an image.
    let text = std::fs::read_to_string(&manifest).unwrap().replace("bowl/bowl_1.png", "../secret.txt");
    std::fs::write(&manifest, text).unwrap();
    let addr = start(&manifest, HashMap::new());
    let host = addr.to_string();
    assert_eq!(raw_get(addr, "/api/images/0/file", &host).0, 200);
    for target in [
        "/../secret.txt",
        "/../../../../etc/passwd",
        "/api/images/../../secret.txt",
        "/api/images/..%2F..%2Fsecret.txt/file",
        "/api/images/%2Fetc%2Fpasswd/file",
        "/api/images/0/../../../etc/passwd",
        "/api/images/0/file/../../secret.txt",
        "/api/images/-1/file",
        "/api/images/99/file",
        "/api/images/1.0/thumb",
        "/api/images/1/file",
        "/api/images/1/thumb",
        "//etc/passwd",
        "/etc/passwd",
        "/dishes/bowl/bowl_0.png",
        "/page.html",
    ] {
        let (status, body) = raw_get(addr, target, &host);
        assert_eq!(status, 404, "{target} gave {status}: {body}");
        assert!(!body.contains("password"), "{target} leaked the file");
    }
    // Asked for by another host name (DNS rebinding): refused.
    let (status, body) = raw_get(addr, "/api/dataset", "evil.example:80");
    assert_eq!(status, 403, "{body}");
    assert_eq!(raw_get(addr, "/api/dataset", &format!("localhost:{}", addr.port())).0, 200);
}

#[test]
fn malformed_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dataset(dir.path());
    let addr = start(&manifest, HashMap::new());
    let client = Client::new();
    for (body, content_type) in [
        ("{not json", "application/json"),
        (r#"{"label": "cup"}"#, "application/json"),
        (r#"{"expect": {"label": "bowl", "excluded": false}, "colour": 3}"#, "application/json"),
        (r#"{"expect": {"label": "bowl", "excluded": false}, "label": "cup"}"#, "text/plain"),
    ] {
        let r = client
            .post(format!("http://{addr}/api/images/0"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap();
        assert!((400..500).contains(&status), "{body}: {status}");
        assert_eq!(v["error"]["code"], "bad_request", "{body}: {v}");
    }
    let (status, v) = post(addr, "/api/labels", json!({ "name": "a/b" }));
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid")));
    let (status, v) = relabel(addr, 77, "bowl", "cup");
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(ClassificationDataset::from_manifest(&manifest).unwrap().counts_per_label(), vec![4, 4, 4]);
}

#[test]
fn undo_needs_a_json_body_so_a_cross_site_form_cannot_undo_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dataset(dir.path());
    let addr = start(&manifest, HashMap::new());
    assert_eq!(relabel(addr, 0, "bowl", "cup").0, 200);
    // What a form on any web page can send: no preflight, no JSON.
    for content_type in ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"] {
        let r = Client::new()
            .post(format!("http://{addr}/api/undo"))
            .header("content-type", content_type)
            .body("")
            .send()
            .unwrap();
        assert!((400..500).contains(&r.status().as_u16()), "{content_type}: {}", r.status());
    }
    let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
    assert_eq!(ds.labels()[ds.any_image(0).unwrap().label()].name, "cup", "the edit was undone");
    let (status, img) = post(addr, "/api/undo", json!({}));
    assert_eq!((status, img["label"].as_str()), (200, Some("bowl")));
}

#[test]
fn two_annotate_servers_on_one_manifest_lose_no_edit() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dataset(dir.path());
    let (a, b) = (start(&manifest, HashMap::new()), start(&manifest, HashMap::new()));
    let start_labels: Vec<String> = {
        let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
        (0..12).map(|id| ds.labels()[ds.any_image(id).unwrap().label()].name.clone()).collect()
    };
    // Each server cycles the labels of its own six images, four times over,
    // both at once.
    let run = |addr: SocketAddr, ids: std::ops::Range<u64>, labels: Vec<String>| {
        std::thread::spawn(move || {
            let mut labels = labels;
            for _ in 0..4 {
                for id in ids.clone() {
                    let from = labels[id as usize].clone();
                    let next = common::LABELS[(common::LABELS.iter().position(|l| *l == from).unwrap() + 1) % 3];
                    let (status, v) = relabel(addr, id, &from, next);
                    assert_eq!(status, 200, "{v}");
                    labels[id as usize] = next.to_string();
                }
            }
            labels
        })
    };
    let (ta, tb) = (run(a, 0..6, start_labels.clone()), run(b, 6..12, start_labels.clone()));
    let (la, lb) = (ta.join().unwrap(), tb.join().unwrap());
    let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
    for id in 0..12u64 {
        let expected = if id < 6 { &la[id as usize] } else { &lb[id as usize] };
        let on_disk = &ds.labels()[ds.any_image(id).unwrap().label()].name;
        assert_eq!(on_disk, expected, "image {id}: an edit was lost");
    }
}

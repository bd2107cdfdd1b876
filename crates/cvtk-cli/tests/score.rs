//! `cvtk score`: three shard processes together give one unsharded run's
//! rows; a run killed half-way is finished by a rerun that scores only what
//! was left; CSV and Parquet hold the same rows as JSON Lines; a manifest's
//! part and a list file are inputs too; bad images are rows with an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// `n` small gray PNGs in `dir/a`, `dir/b`, and one file that is not an image.
fn images(dir: &Path, n: u32) -> PathBuf {
    let root = dir.join("images");
    for i in 0..n {
        let sub = root.join(if i % 2 == 0 { "a" } else { "b" });
        std::fs::create_dir_all(&sub).unwrap();
        image::GrayImage::from_fn(20, 20, |x, y| image::Luma([((x * 7 + y * 3 + i * 11) % 256) as u8]))
            .save(sub.join(format!("{i:05}.png")))
            .unwrap();
    }
    std::fs::write(root.join("a").join("broken.png"), b"not an image").unwrap();
    root
}

fn model(dir: &Path) -> PathBuf {
    let (_, manifest) = split_colours(dir);
    let model = dir.join("model");
    train_small_cnn(&manifest, &model, 1, &[]);
    model
}

/// The rows of a JSON Lines output by index.
fn rows(files: &[PathBuf]) -> BTreeMap<u64, Value> {
    let mut out = BTreeMap::new();
    for f in files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let index = v["index"].as_u64().unwrap();
            assert!(out.insert(index, v).is_none(), "image {index} scored twice");
        }
    }
    out
}

fn score(args: &[&str]) -> Value {
    json(&cvtk(&[&["score"][..], args, &["--json"]].concat()))
}

fn same_rows(a: &BTreeMap<u64, Value>, b: &BTreeMap<u64, Value>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (i, (x, y)) in a.values().zip(b.values()).enumerate() {
        assert_eq!(x["path"], y["path"], "row {i}");
        assert_eq!(x["error"], y["error"], "row {i}");
        let labels = |v: &Value| v["top"].as_array().unwrap().iter().map(|t| t["label"].clone()).collect::<Vec<_>>();
        assert_eq!(labels(x), labels(y), "row {i}");
        for (p, q) in x["top"].as_array().unwrap().iter().zip(y["top"].as_array().unwrap()) {
            assert!((p["probability"].as_f64().unwrap() - q["probability"].as_f64().unwrap()).abs() < 1e-5, "row {i}");
        }
    }
}

#[test]
fn three_shard_processes_give_the_rows_of_one_unsharded_run_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let root = images(dir.path(), 90);
    let (m, r) = (model.to_str().unwrap(), root.to_str().unwrap());
    let all = dir.path().join("all.jsonl");
    let report = score(&[r, "--model", m, "--out", all.to_str().unwrap(), "--batch", "8"]);
    assert_eq!(
        (report["images"].as_u64(), report["scored"].as_u64(), report["failed"].as_u64()),
        (Some(91), Some(91), Some(1)),
        "{report}"
    );
    let one = rows(&[all]);
    let broken: Vec<&Value> = one.values().filter(|v| v["error"].is_string()).collect();
    assert_eq!(broken.len(), 1);
    assert!(broken[0]["path"].as_str().unwrap().ends_with("broken.png"));

    // Three processes at once, one thread each.
    let shards: Vec<PathBuf> = (0..3).map(|k| dir.path().join(format!("shard-{k}.jsonl"))).collect();
    let children: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(k, out)| {
            Command::new(env!("CARGO_BIN_EXE_cvtk"))
                .args(["score", r, "--model", m, "--out", out.to_str().unwrap(), "--shard", &format!("{k}/3")])
                .args(["--threads", "1", "--batch", "8"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let sharded = rows(&shards);
    same_rows(&one, &sharded);
    let sizes: Vec<usize> = shards.iter().map(|s| rows(std::slice::from_ref(s)).len()).collect();
    assert!(sizes.iter().all(|&n| n > 15), "shards of {sizes:?}");

    // CSV and Parquet hold the same rows.
    let csv = dir.path().join("all.csv");
    score(&[r, "--model", m, "--out", csv.to_str().unwrap()]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "index,id,path,label_1,probability_1,label_2,probability_2,label_3,probability_3,error"
    );
    assert_eq!(lines.count(), 91);
    let pq = dir.path().join("all.parquet");
    score(&[r, "--model", m, "--out", pq.to_str().unwrap()]);
    assert!(!dir.path().join("all.parquet.partial.jsonl").exists(), "the journal is removed");
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;
    let reader = SerializedFileReader::new(std::fs::File::open(&pq).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 91);
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let index = row.get_long(0).unwrap() as u64;
        let path = row.get_string(2).unwrap();
        assert_eq!(one[&index]["path"].as_str().unwrap(), path);
        if let Ok(label) = row.get_string(3) {
            assert_eq!(one[&index]["top"][0]["label"].as_str().unwrap(), label);
        }
    }
    // A finished Parquet file cannot be continued: a rerun says to --restart, which scores it again.
    let again = cvtk(&["score", r, "--model", m, "--out", pq.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("pass --restart"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let restarted = score(&[r, "--model", m, "--out", pq.to_str().unwrap(), "--restart"]);
    assert_eq!(restarted["scored"], 91);

    // A manifest's test part, and a list file (relative and absolute paths).
    let manifest = dir.path().join("m.json");
    let part = dir.path().join("test-part.jsonl");
    let report = score(&[manifest.to_str().unwrap(), "--part", "test", "--model", m, "--out", part.to_str().unwrap()]);
    assert_eq!(report["images"], 9, "{report}");
    assert!(rows(&[part]).values().all(|v| v["id"].is_u64()));
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("# images\nimages/a/00000.png\n\n{}/b/00001.png\n", r)).unwrap();
    let listed = dir.path().join("list.jsonl");
    let report = score(&[list.to_str().unwrap(), "--model", m, "--out", listed.to_str().unwrap()]);
    assert_eq!((report["images"].as_u64(), report["failed"].as_u64()), (Some(2), Some(0)), "{report}");

    // URLs in a list: downloaded and scored like files; a missing one is a row with an error.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let mut server = Command::new(&python)
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory", r])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the venv's python (make setup)");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::blocking::get(format!("{base}/a/00000.png")).is_err() {
        assert!(Instant::now() < deadline, "python -m http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let urls = dir.path().join("urls.txt");
    std::fs::write(&urls, format!("{base}/a/00000.png\n{base}/b/00001.png\n{base}/missing.png\n")).unwrap();
    // By default only public addresses are fetched: every loopback URL is a row with an error.
    let refused = dir.path().join("refused.jsonl");
    let report = score(&[urls.to_str().unwrap(), "--model", m, "--out", refused.to_str().unwrap()]);
    assert_eq!((report["images"].as_u64(), report["failed"].as_u64()), (Some(3), Some(3)), "{report}");
    for row in rows(&[refused]).values() {
        let e = row["error"].as_str().unwrap();
        assert!(e.contains("only 80 and 443") || e.contains("not a public address"), "{e}");
    }
    let fetched = dir.path().join("urls.jsonl");
    let report =
        score(&[urls.to_str().unwrap(), "--model", m, "--out", fetched.to_str().unwrap(), "--allow-private-urls"]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!((report["images"].as_u64(), report["failed"].as_u64()), (Some(3), Some(1)), "{report}");
    let by_url = rows(&[fetched]);
    assert!(by_url[&2]["error"].as_str().unwrap().contains("404"), "{}", by_url[&2]);
    // The same images as files and as URLs get the same scores.
    let local = rows(&[listed]);
    assert_eq!(by_url[&0]["top"], local[&0]["top"]);
    assert_eq!(by_url[&1]["top"], local[&1]["top"]);
}

#[test]
fn a_run_killed_half_way_is_finished_by_a_rerun_without_rescoring() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let root = images(dir.path(), 3000);
    let out = dir.path().join("scores.jsonl");
    let args = ["score", root.to_str().unwrap(), "--model", model.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args(args)
        .args(["--batch", "4", "--threads", "1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL) once a few hundred rows are on disk.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = std::fs::read_to_string(&out).map(|t| t.lines().count()).unwrap_or(0);
        if n >= 300 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = std::fs::read_to_string(&out).unwrap().lines().filter(|l| l.ends_with('}')).count() as u64;
    assert!(before < 3001, "killed after the end");

    let report = json(&cvtk(&[&args[..], &["--json"]].concat()));
    assert_eq!(report["already_done"].as_u64().unwrap(), before, "{report}");
    assert_eq!(report["scored"].as_u64().unwrap(), 3001 - before, "only what was left is scored: {report}");
    let all = rows(std::slice::from_ref(&out));
    assert_eq!(all.len(), 3001);
    assert_eq!(all.keys().copied().collect::<Vec<_>>(), (0..3001).collect::<Vec<_>>());
    // A second rerun has nothing left to do.
    let again = json(&cvtk(&[&args[..], &["--json"]].concat()));
    assert_eq!((again["already_done"].as_u64(), again["scored"].as_u64()), (Some(3001), Some(0)), "{again}");
}

#[test]
fn a_rerun_with_another_model_or_top_is_refused_and_restart_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let first = model(dir.path());
    // The same network retrained: new weights, so other scores.
    let second = dir.path().join("model-2");
    train_small_cnn(&dir.path().join("m.json"), &second, 1, &[]);
    let root = images(dir.path(), 6);
    let (r, out) = (root.to_str().unwrap(), dir.path().join("scores.jsonl"));
    let o = out.to_str().unwrap();
    let report = score(&[r, "--model", first.to_str().unwrap(), "--out", o]);
    assert_eq!(report["scored"], 7, "{report}");
    let old = std::fs::read_to_string(&out).unwrap();
    // Same model and options: continued (nothing left to do).
    assert_eq!(score(&[r, "--model", first.to_str().unwrap(), "--out", o])["already_done"], 7);
    for (what, args) in [
        ("another model", vec![r, "--model", second.to_str().unwrap(), "--out", o]),
        ("another --top", vec![r, "--model", first.to_str().unwrap(), "--out", o, "--top", "1"]),
    ] {
        let out_ = cvtk(&[&["score"][..], &args].concat());
        let err = String::from_utf8_lossy(&out_.stderr);
        assert_eq!(out_.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("--restart"), "{what}: {err}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), old, "{what}: the output was touched");
    }
    let report = score(&[r, "--model", second.to_str().unwrap(), "--out", o, "--restart"]);
    assert_eq!((report["scored"].as_u64(), report["already_done"].as_u64()), (Some(7), Some(0)), "{report}");
    // An output from before runs were recorded (no record beside it) is not continued blindly.
    std::fs::remove_file(dir.path().join("scores.jsonl.cvtk-score.json")).unwrap();
    let again = cvtk(&["score", r, "--model", second.to_str().unwrap(), "--out", o]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no run record"));
}

#[test]
fn without_a_model_score_uses_the_pretrained_networks_imagenet_labels_and_counts_failures_apart() {
    let dir = tempfile::tempdir().unwrap();
    let root = images(dir.path(), 3);
    let out = dir.path().join("imagenet.jsonl");
    let text = cvtk(&["score", root.to_str().unwrap(), "--out", out.to_str().unwrap(), "--top", "2"]);
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("scored 3 of 4 images") && stdout.contains("1 could not be scored"), "{stdout}");
    let rows = rows(std::slice::from_ref(&out));
    assert_eq!(rows.len(), 4);
    // The same labels and probabilities as `cvtk predict` with the pretrained network.
    let predicted = cvtk(&["predict", root.to_str().unwrap(), "--top", "2", "--json"]);
    let predicted: Vec<Value> = serde_json::from_slice(&predicted.stdout).unwrap();
    for (row, p) in rows.values().zip(&predicted) {
        assert_eq!(row["path"], p["path"]);
        assert_eq!(row["error"].is_null(), p.get("error").is_none(), "{row} {p}");
        assert_eq!(row["top"].as_array().unwrap().len(), if row["error"].is_null() { 2 } else { 0 });
        for (a, b) in row["top"].as_array().unwrap().iter().zip(p["top"].as_array().unwrap()) {
            assert_eq!(a["label"], b["label"]);
            assert!((a["probability"].as_f64().unwrap() - b["probability"].as_f64().unwrap()).abs() < 1e-5);
        }
    }
    // The same output with a trained model is another model: refused, not mixed.
    let model = model(dir.path());
    let again =
        cvtk(&["score", root.to_str().unwrap(), "--out", out.to_str().unwrap(), "--model", model.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("ImageNet classifier"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

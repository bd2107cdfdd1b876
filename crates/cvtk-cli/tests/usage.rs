//! Usage errors: every typed flag of every command refuses a bad value with
//! exit status 2 (the README's promise), says which flag and why, prints
//! nothing on stdout and writes nothing; and `--help` of every command agrees
//! with the README on which commands have `--json`.

use std::path::Path;

use crate::common::{cvtk, cvtk_in, split_colours};

/// `cvtk ARGS` must be a usage error naming `says`, with stdout empty.
fn refused(home: &Path, args: &[&str], says: &str) {
    let out = cvtk_in(home, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "cvtk {}: {stderr}", args.join(" "));
    assert!(stderr.contains(says), "cvtk {}: stderr does not say '{says}': {stderr}", args.join(" "));
    assert!(out.stdout.is_empty(), "cvtk {}: stdout: {}", args.join(" "), String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_bad_value_of_every_typed_flag_of_every_command_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, manifest) = split_colours(dir.path());
    let (folder, manifest) = (folder.to_str().unwrap(), manifest.to_str().unwrap());
    let home = dir.path().join("home");
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let model = dir.path().join("no-model");
    let m = model.to_str().unwrap();
    let files: Vec<String> =
        ["s.jsonl", "scores.txt", "x.onnx"].iter().map(|f| out.join(f).to_str().unwrap().to_string()).collect();
    let (jsonl, txt, onnx) = (files[0].as_str(), files[1].as_str(), files[2].as_str());
    let batch = [
        "k8s-batch",
        "job",
        "--out",
        o,
        "--claim",
        "c",
        "--input",
        "/data/in",
        "--output",
        "/data/out",
        "--shards",
        "2",
    ];
    let with =
        |base: &[&str], more: &[&str]| -> Vec<String> { base.iter().chain(more).map(|s| (*s).to_string()).collect() };
    let cases: Vec<(Vec<String>, &str)> = vec![
        // Devices, engines, base models: typed on every command that takes them.
        (with(&["train", manifest, "--out", o], &["--device", "gpu"]), "--device"),
        (with(&["train", manifest, "--out", o], &["--base-model", "resnet9"]), "--base-model"),
        (with(&["train", manifest, "--out", o], &["--engine", "tensorrt"]), "--engine"),
        (with(&["train", manifest, "--out", o], &["--classifier", "knn"]), "--classifier"),
        (with(&["train", manifest, "--out", o], &["--lr-per-mb", "fast"]), "--lr-per-mb"),
        (with(&["train", manifest, "--out", o], &["--mb-size", "0"]), "--mb-size"),
        // Checked by the library's config, before any training.
        (with(&["train", manifest, "--out", o], &["--momentum", "2"]), "momentum"),
        (
            with(&["train", manifest, "--out", o], &["--calibrate", "--calibration-fraction", "0.9"]),
            "calibration_holdout",
        ),
        (with(&["train", manifest, "--out", o], &["--classifier", "svm", "--c=-1"]), "invalid c:"),
        (with(&["train", manifest, "--out", o], &["--base-model", "small-cnn", "--image-size", "3"]), "--image-size"),
        (with(&["predict", folder], &["--device", "cuda:x"]), "--device"),
        (with(&["predict", folder], &["--base-model", "vgg16"]), "--base-model"),
        (with(&["predict", folder], &["--engine", "tensorrt"]), "--engine"),
        (with(&["predict", folder], &["--top", "0"]), "--top"),
        (with(&["evaluate", manifest, "--model", m], &["--split", "validation"]), "--split"),
        (with(&["evaluate", manifest, "--model", m], &["--device", "gpu"]), "--device"),
        (with(&["evaluate", manifest, "--model", m], &["--mb-size", "0"]), "--mb-size"),
        (with(&["score", manifest, "--out", jsonl], &["--part", "validation"]), "--part"),
        (with(&["score", manifest], &["--out", txt]), "--out"),
        (with(&["score", manifest, "--out", jsonl], &["--shard", "4/4"]), "--shard"),
        (with(&["score", manifest, "--out", jsonl], &["--batch", "0"]), "--batch"),
        (with(&["score", manifest, "--out", jsonl], &["--top", "0"]), "--top"),
        (with(&["score", manifest, "--out", jsonl], &["--device", "gpu"]), "--device"),
        (with(&["serve", "--model", m], &["--device", "gpu"]), "--device"),
        (with(&["serve", "--model", m], &["--engine", "tensorrt"]), "--engine"),
        (with(&["serve", "--model", m], &["--max-batch", "0"]), "max_batch"),
        (with(&["serve", "--model", m], &["--no-auth", "--host", "0.0.0.0"]), "loopback"),
        (with(&["annotate", manifest], &["--device", "gpu"]), "--device"),
        (with(&["annotate", manifest], &["--engine", "tensorrt"]), "--engine"),
        (with(&["export", "--out", onnx], &["--format", "tflite"]), "--format"),
        (with(&["export", "--out", onnx], &["--device", "gpu"]), "--device"),
        (with(&["augment", manifest, "--pipeline", "flip_crop", "--out", o], &["--part", "validation"]), "--part"),
        (with(&["dataset", "split", folder, "--out", o], &["--train-size", "1.5"]), "--train-size"),
        (with(&["health", "http://127.0.0.1:9/health"], &["--timeout", "0"]), "--timeout"),
        (with(&["deploy", "create", "digits", "--model", m], &["--device", "gpu"]), "--device"),
        (with(&["deploy", "create", "Digits!", "--model", m], &[]), "invalid deployment name"),
        // The service flags after `--` are `cvtk serve`'s, refused alike.
        (with(&["deploy", "create", "digits", "--model", m, "--"], &["--max-batch", "0"]), "max_batch"),
        (with(&["deploy", "create", "digits", "--model", m, "--"], &["--engine", "tensorrt"]), "--engine"),
        (with(&["deploy", "score", "digits", "a.png"], &["--resize", "224"]), "--resize"),
        (with(&["deploy", "show"], &["Digits!"]), "invalid deployment name"),
        (with(&["deploy"], &batch).into_iter().chain(with(&[], &["--format", "xml"])).collect(), "--format"),
        (with(&["deploy"], &batch).into_iter().chain(with(&[], &["--memory", "lots"])).collect(), "--memory"),
        (with(&["deploy"], &batch).into_iter().chain(with(&[], &["--shards", "0"])).collect(), "--shards"),
        (
            with(
                &["deploy", "k8s-batch", "job", "--out", o, "--claim", "c", "--output", "/data/out"],
                &["--shards", "2", "--input", "in"],
            ),
            "/data",
        ),
        (with(&["deploy", "k8s", "digits", "--out", o], &["--memory-limit", "lots"]), "--memory-limit"),
        (with(&["deploy", "k8s", "digits", "--out", o], &["--min-replicas", "5", "--max-replicas", "2"]), "replicas"),
        (with(&["deploy", "k8s", "digits", "--out", o], &["--cpu-limit", "0"]), "--cpu-limit"),
    ];
    for (args, says) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&home, &args, says);
    }
    assert!(!out.exists(), "a refused command wrote {}", out.display());
    // Under --json the error is JSON, and still a usage error.
    let json = cvtk_in(&home, &["deploy", "create", "digits", "--model", m, "--json", "--", "--max-batch", "0"]);
    assert_eq!(json.status.code(), Some(2));
    let e: serde_json::Value = serde_json::from_slice(&json.stderr).expect("a JSON error on stderr");
    assert!(e["error"].as_str().unwrap().contains("max_batch"), "{e}");
}

/// The leaf commands under `prefix` (`cvtk deploy` has subcommands) with
/// their `--help`.
fn leaf_commands(prefix: &[String]) -> Vec<(String, String)> {
    let mut args: Vec<&str> = prefix.iter().map(String::as_str).collect();
    args.push("--help");
    let help = String::from_utf8(cvtk(&args).stdout).unwrap();
    let subs: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    if subs.is_empty() {
        return vec![(prefix.join(" "), help)];
    }
    subs.iter().flat_map(|s| leaf_commands(&[prefix.to_vec(), vec![s.clone()]].concat())).collect()
}

#[test]
fn every_command_but_serve_and_annotate_has_json_as_the_readme_says() {
    let readme = std::fs::read_to_string(crate::browser::repo().join("README.md")).unwrap();
    assert!(
        readme.contains("all but `serve` and `annotate` (which run until\nstopped) have `--json`"),
        "the README's claim changed: update this test with it"
    );
    let leaves = leaf_commands(&[]);
    assert!(leaves.len() >= 20, "{leaves:?}");
    // The flag itself, at the start of its line of the options list.
    let without: Vec<&str> = leaves
        .iter()
        .filter(|(_, help)| !help.lines().any(|l| l.trim_start().starts_with("--json")))
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(without, ["annotate", "serve"], "commands without --json");
}

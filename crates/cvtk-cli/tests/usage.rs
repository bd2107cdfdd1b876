//! Usage errors as a user meets them: exit status 2, the message on stderr,
//! nothing on stdout, nothing written, JSON under `--json`. The whole matrix
//! (every typed flag of every command, and which commands have `--json`) runs
//! in process in src/main.rs's tests; these are the real runs behind it.

use crate::common::cvtk_in;

#[test]
fn usage_errors_exit_2_with_stdout_empty_and_json_under_json() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let out = dir.path().join("out");
    let (o, model) = (out.to_str().unwrap(), dir.path().join("no-model"));
    let m = model.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        // Refused by clap (it exited 1 before --split was typed).
        (&["evaluate", "d.json", "--model", m, "--split", "validation"], "--split"),
        // Refused by the library's config, before anything is printed (train
        // printed "training a fine-tuned classifier ..." first).
        (&["train", "d.json", "--out", o, "--momentum", "2"], "momentum"),
        (&["serve", "--model", m, "--max-batch", "0"], "max_batch"),
        (&["deploy", "create", "digits", "--model", m, "--", "--max-batch", "0"], "max_batch"),
    ];
    for (args, says) in cases {
        let run = cvtk_in(&home, args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "cvtk {}: {stderr}", args.join(" "));
        assert!(stderr.contains(says), "cvtk {}: {stderr}", args.join(" "));
        assert!(run.stdout.is_empty(), "cvtk {}: {}", args.join(" "), String::from_utf8_lossy(&run.stdout));
    }
    // Under --json the error is JSON on stderr, still a usage error: from
    // clap, and from flags a command parses itself.
    for args in [
        &["evaluate", "d.json", "--model", m, "--split", "validation", "--json"][..],
        &["deploy", "create", "digits", "--model", m, "--json", "--", "--max-batch", "0"][..],
    ] {
        let run = cvtk_in(&home, args);
        assert_eq!(run.status.code(), Some(2), "cvtk {}", args.join(" "));
        let e: serde_json::Value = serde_json::from_slice(&run.stderr).expect("a JSON error on stderr");
        assert!(e["error"].as_str().is_some_and(|t| !t.starts_with("error:")), "{e}");
    }
    assert!(!out.exists() && !home.join("deployments").exists(), "a refused command wrote");
}

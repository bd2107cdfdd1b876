//! The README's command tour, as a new user runs it: every `cvtk` line of the
//! README's "The `cvtk` program" block, in order, from an empty folder outside
//! the checkout, with the `cvtk` program copied to a folder of its own and an
//! environment holding only PATH and HOME (as `templates/app` runs with
//! `env -i`). Each line must exit 0. What a user brings is made first: the
//! pretrained weights installed with `cvtk weights install` into the fresh
//! HOME, the sample data where `cvtk sample-data` downloads it (copied from
//! this checkout's download, to spare the test the network), a photo, a
//! folder of photos and a query file.
//!
//! The few changes to the lines are listed in [`EDITS`], each with its
//! reason, and lines that cannot run here are listed in [`SKIPPED`]: a
//! line that is neither run nor listed fails the test, so the README and the
//! test cannot drift apart.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use crate::browser::repo;

/// `(line prefix, from, to, why)`: a README line starting with the prefix
/// runs with `from` replaced by `to`.
const EDITS: &[(&str, &str, &str, &str)] = &[
    ("cvtk sample-data", "--per-class 60", "--per-class 15", "fewer images keep the test short"),
    ("cvtk loadtest", "--concurrency 32 --duration 30", "--concurrency 4 --duration 2", "a short load test"),
    (
        "cvtk deploy docker",
        " --build",
        "",
        "the container phase of make test builds the image (it needs podman and the base image as root)",
    ),
    (
        "cvtk annotate",
        "cvtk annotate digits.json",
        "cvtk annotate digits.json --port 0",
        "a free port: tests run side by side",
    ),
];

/// `(line prefix, why)`: README lines this test does not run.
const SKIPPED: &[(&str, &str)] = &[
    ("cargo build", "the build is this test's own: it runs the program cargo built"),
    ("cvtk weights install resnet50", "no registry ships ResNet weights; installing Lite0's is checked instead"),
];

/// The tour's lines: the README's code block after "## The `cvtk` program",
/// comments removed.
fn tour_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = &readme[readme.find("## The `cvtk` program").expect("the README has the tour")..];
    let block = section.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    block.lines().map(|l| l.split(" # ").next().unwrap().trim().to_string()).filter(|l| !l.is_empty()).collect()
}

/// Splits a command line as a shell would for these lines: words, and
/// double-quoted strings as one word.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// A user's machine: an empty folder to work in, a HOME, and the program in
/// a folder of its own on PATH.
struct Machine {
    _dir: tempfile::TempDir,
    work: PathBuf,
    home: PathBuf,
    bin: PathBuf,
}

impl Machine {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (work, home, bin) = (dir.path().join("work"), dir.path().join("home"), dir.path().join("bin"));
        for d in [&work, &home, &bin] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::copy(env!("CARGO_BIN_EXE_cvtk"), bin.join("cvtk")).unwrap();
        Machine { _dir: dir, work, home, bin }
    }

    /// `cvtk ARGS` in the work folder, with only PATH and HOME set.
    fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new(self.bin.join("cvtk"));
        c.args(args)
            .current_dir(&self.work)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()))
            .env("HOME", &self.home);
        c
    }

    fn run(&self, args: &[String]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }
}

/// What a user brings: weights installed into HOME, the sample data where
/// `cvtk sample-data` downloads it, a photo, a folder of photos, a query file.
fn bring(m: &Machine) {
    let weights: Vec<PathBuf> = std::fs::read_dir(repo().join("weights"))
        .expect("no weights/ in the checkout: run `make setup`")
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("efficientnet-lite0-"))
        .collect();
    assert_eq!(weights.len(), 1, "efficientnet-lite0 weights in weights/: run `make setup`");
    let installed = m.run(&["weights".into(), "install".into(), weights[0].display().to_string()]);
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    let data = m.home.join(".cvtk/data");
    std::fs::create_dir_all(&data).unwrap();
    let csv = repo().join("sample_data/downloads/mnist_5k.csv.gz");
    assert!(csv.is_file(), "{} missing: run `make setup`", csv.display());
    std::fs::copy(&csv, data.join("mnist_5k.csv.gz")).unwrap();
    // The tour finds it there, in HOME, not in the checkout (which the program also searches).
    let probe = m.run(&["sample-data", "mnist-5k", "--out", "probe", "--per-class", "1", "--json"].map(String::from));
    let probe: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    assert_eq!(probe["data_dir"], data.to_str().unwrap(), "{probe}");

    // A photo (a real one when the venv has scikit-image's, else a drawn one) and a folder of them.
    let photo = match crate::common::skimage_photo("chelsea.png") {
        Some(p) => image::open(p).unwrap().to_rgb8(),
        None => image::RgbImage::from_fn(300, 200, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])),
    };
    photo.save(m.work.join("photo.jpg")).unwrap();
    std::fs::create_dir_all(m.work.join("photos/more")).unwrap();
    photo.save(m.work.join("photos/cat.jpg")).unwrap();
    image::imageops::flip_horizontal(&photo).save(m.work.join("photos/more/cat-flipped.png")).unwrap();
    let query_images = m.work.join("bowls");
    std::fs::create_dir_all(&query_images).unwrap();
    photo.save(query_images.join("a.png")).unwrap();
    std::fs::write(m.work.join("queries.json"), r#"{"bowl": ["./bowls"], "cat": ["./photos"]}"#).unwrap();
}

/// A tour line that runs until stopped (`cvtk annotate`): started, its page
/// fetched once, then stopped.
fn run_server_line(m: &Machine, args: &[String]) {
    let mut child = m.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().to_string();
    let page = if url.starts_with("http://127.0.0.1:") {
        reqwest::blocking::get(&url).map(|r| r.status())
    } else {
        Ok(reqwest::StatusCode::IM_A_TEAPOT)
    };
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        matches!(page, Ok(s) if s.is_success()),
        "`{}` printed {line:?} and its page answered {page:?}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_readme_tour_runs_from_an_empty_folder_with_only_the_installed_program() {
    let m = Machine::new();
    bring(&m);
    let listed = m.run(&["weights".into(), "list".into(), "--json".into()]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let lite0 = listed["architectures"].as_array().unwrap().iter().find(|a| a["architecture"] == "efficientnet-lite0");
    assert!(
        lite0.unwrap()["weights"].as_str().unwrap().starts_with(m.home.join(".cvtk/weights").to_str().unwrap()),
        "the tour must use the weights installed into HOME, not the checkout's: {listed}"
    );

    let mut cleanup = DeleteOnDrop(&m, false);
    let lines = tour_lines();
    assert!(lines.len() > 20, "the README's tour: {lines:?}");
    for line in &lines {
        if let Some((_, why)) = SKIPPED.iter().find(|(prefix, _)| line.starts_with(prefix)) {
            eprintln!("skipped: {line}  ({why})");
            continue;
        }
        assert!(line.starts_with("cvtk "), "a tour line that is neither run nor listed in SKIPPED: {line}");
        let mut edited = line.clone();
        for (prefix, from, to, _) in EDITS.iter().filter(|(prefix, ..)| line.starts_with(prefix)) {
            assert!(edited.contains(from), "EDITS for '{prefix}' expects '{from}' in: {line}");
            edited = edited.replace(from, to);
        }
        let args: Vec<String> = words(&edited).into_iter().skip(1).collect();
        let started = Instant::now();
        if args[0] == "annotate" {
            run_server_line(&m, &args);
        } else {
            if args[..2] == ["deploy", "create"] {
                cleanup.1 = true;
            }
            let out = m.run(&args);
            assert!(
                out.status.success(),
                "`{edited}` failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if args[..2] == ["deploy", "delete"] {
                cleanup.1 = false;
            }
        }
        eprintln!("{:5.1} s  {edited}", started.elapsed().as_secs_f64());
    }
    // What the tour made, where a user would look for it.
    for made in ["digits.json", "aug", "model/model.json", "svm-model/model.json", "report/report.html", "scores.jsonl"]
    {
        assert!(m.work.join(made).exists(), "the tour made no {made}");
    }
    assert!(m.home.join(".cvtk/data/mnist_5k.csv.gz").is_file());
}

/// Deletes the tour's deployment if the test stops between create and delete.
struct DeleteOnDrop<'a>(&'a Machine, bool);

impl Drop for DeleteOnDrop<'_> {
    fn drop(&mut self) {
        if self.1 {
            let _ = self.0.run(&["deploy".into(), "delete".into(), "digits".into()]);
        }
    }
}

#[test]
fn tour_lines_split_as_a_shell_would() {
    assert_eq!(
        words(r#"cvtk train d.json --lr-per-mb "0.01*4,0.001*2" --out m"#),
        ["cvtk", "train", "d.json", "--lr-per-mb", "0.01*4,0.001*2", "--out", "m"]
    );
    assert_eq!(words(r#"a "" b"#), ["a", "", "b"]);
}

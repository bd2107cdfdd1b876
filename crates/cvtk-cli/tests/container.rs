//! The container image from `cvtk deploy docker --build`, built here offline
//! on the Debian base that `scripts/make-base-image.sh` makes, then run from
//! its own file system: `podman run` cannot start containers on every machine
//! (not on the ones CI uses), so the test mounts the image (`podman mount`)
//! and runs its entrypoint, user and environment, read from the image, with
//! `chroot`. It serves `/ready`, passes its own HEALTHCHECK and scores an
//! image as `cvtk predict` does on this machine.
//!
//! Needs podman, mmdebstrap and the base image (`make test-setup` installs
//! them as root), and root for `podman mount` and `chroot`. Without them it
//! fails and says what to install: it never passes without building.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().unwrap_or_else(|e| {
        panic!("podman is not installed ({e}): run `make test-setup` as root, or apt-get install podman mmdebstrap")
    });
    assert!(out.status.success(), "podman {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Removes what the test made in podman's store, and stops the server.
struct Cleanup {
    image: String,
    container: Option<String>,
    server: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        if let Some(c) = &self.container {
            let _ = Command::new("podman").args(["umount", c]).output();
            let _ = Command::new("podman").args(["rm", "-f", c]).output();
        }
        let _ = Command::new("podman").args(["rmi", "-f", &self.image]).output();
    }
}

/// `args` with the value after `flag` replaced.
fn with_value(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let at = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} not in {args:?}"));
    let mut args = args.to_vec();
    args[at + 1] = value.to_string();
    args
}

/// `command` run inside the image's file system as its user, with its
/// environment (and `extra`) only.
fn in_image(root: &Path, user: &str, env: &[String], extra: &[String], command: &[String]) -> Command {
    let mut c = Command::new("chroot");
    c.arg(format!("--userspec={user}")).arg(root).args(["/usr/bin/env", "-i"]).args(env).args(extra).args(command);
    c
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[test]
fn the_image_builds_offline_and_its_entrypoint_serves_and_scores_like_cvtk_predict() {
    assert!(
        Command::new("podman").arg("info").output().is_ok_and(|o| o.status.success()),
        "podman does not answer: run `make test-setup` as root (it installs podman and mmdebstrap), or apt-get install podman mmdebstrap"
    );
    let base = cvtk_deploy::artifacts::DEFAULT_BASE_IMAGE;
    assert!(
        Command::new("podman").args(["image", "exists", base]).status().is_ok_and(|s| s.success()),
        "no base image {base}: run scripts/make-base-image.sh (make test-setup does)"
    );

    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = split_colours(dir.path());
    let model = dir.path().join("model");
    train_small_cnn(&manifest, &model, 1, &[]);
    let picture = dir.path().join("probe.png");
    image::RgbImage::from_fn(28, 28, |x, y| image::Rgb([(x * 9) as u8, (y * 9) as u8, 200])).save(&picture).unwrap();
    let predicted =
        json(&cvtk(&["predict", "--model", model.to_str().unwrap(), "--json", "--all", picture.to_str().unwrap()]));
    let want: Vec<f64> =
        predicted[0]["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();

    let image = format!("localhost/cvtk-container-test-{}:latest", std::process::id());
    let mut cleanup = Cleanup { image: image.clone(), container: None, server: None };
    let context = dir.path().join("context");
    let built = cvtk(&[
        "deploy",
        "docker",
        "probe",
        "--model",
        model.to_str().unwrap(),
        "--out",
        context.to_str().unwrap(),
        "--image",
        &image,
        "--build",
        "--builder",
        "podman",
        "--json",
    ]);
    assert!(built.status.success(), "deploy docker --build failed: {}", String::from_utf8_lossy(&built.stderr));
    let built: serde_json::Value = serde_json::from_slice(&built.stdout).unwrap();
    assert_eq!(built["built"], true, "{built}");
    let size = built["size_bytes"].as_u64().unwrap();
    assert!(size < 1_000_000_000, "the image is {size} bytes");
    assert!(podman(&["image", "exists", &image]).is_empty());

    let inspected: serde_json::Value = serde_json::from_str(&podman(&["image", "inspect", &image])).unwrap();
    let config = &inspected[0]["Config"];
    let entrypoint = strings(&config["Entrypoint"]);
    let env = strings(&config["Env"]);
    let user = config["User"].as_str().unwrap().to_string();
    assert_eq!(user, "65534:65534");
    // podman keeps the health check beside the config, docker inside it.
    let health = strings(&inspected[0]["Healthcheck"]["Test"]);
    assert_eq!(health[0], "CMD", "{health:?}");

    let container = podman(&["create", &image]);
    cleanup.container = Some(container.clone());
    let root = PathBuf::from(podman(&["mount", &container]));
    // No Python in the image; the libraries it carries are libtorch's CPU ones.
    assert!(!root.join("usr/bin/python3").exists());
    assert!(root.join("usr/local/lib/cvtk/libtorch_cpu.so").is_file());
    assert!(!std::fs::read_dir(root.join("usr/local/lib/cvtk")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("torch_cuda")));

    // The entrypoint, on a free loopback port instead of 0.0.0.0:8080.
    let mut serve = with_value(&with_value(&entrypoint, "--host", "127.0.0.1"), "--port", "0");
    serve.extend(["--addr-file".to_string(), "/tmp/addr".to_string()]);
    let key = cvtk_deploy::generate_key();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    cleanup.server = Some(
        in_image(&root, &user, &env, &[format!("CVTK_SERVICE_KEY={key}")], &serve)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let addr_file = root.join("tmp/addr");
    let start = Instant::now();
    let url = loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            if !a.trim().is_empty() {
                break a.trim().to_string();
            }
        }
        let exited = cleanup.server.as_mut().unwrap().try_wait().unwrap();
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        assert!(exited.is_none(), "the entrypoint exited ({exited:?}):\n{log}");
        assert!(start.elapsed() < Duration::from_secs(120), "no address after 2 minutes:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let url = if url.starts_with("http") { url } else { format!("http://{url}") };
    let client = cvtk_deploy::Client::new(&url, Some(key)).unwrap();
    let start = Instant::now();
    while !client.ready() {
        assert!(start.elapsed() < Duration::from_secs(120), "{url}/ready never answered");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The image's own health check, against the port it now listens on.
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    let check: Vec<String> = health[1..].iter().map(|a| a.replace(":8080", &format!(":{port}"))).collect();
    let status = in_image(&root, &user, &env, &[], &check).status().unwrap();
    assert!(status.success(), "HEALTHCHECK {check:?} failed");

    let scored = client.score_files(&[&picture], true).unwrap();
    let scored = serde_json::to_value(&scored[0]).unwrap();
    let got: Vec<f64> = scored["scores"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(got.len(), want.len(), "{scored}");
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "the image scored {got:?}, cvtk predict {want:?}");
    }
    assert_eq!(scored["label"], predicted[0]["top"][0]["label"]);
}

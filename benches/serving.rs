//! Serving: requests per second and p50/p99 latency at concurrency 1, 8 and
//! 32 on loopback, `cvtk serve` (on its default engine, onnxruntime on the
//! CPU, and on `--engine torch`) against TorchServe 0.12 serving the same
//! ResNet-18 weights, and against the in-process ceiling (the network alone on
//! ready batches, with no decoding and no HTTP, on the default engine).
//!
//! Both services get the same JPEGs (0.2-0.4 MP photos, POSTed raw, one per
//! request) from the same load generator ([`cvtk::deploy::LoadTest`]), the same
//! batching (at most 16 images, waiting at most 5 ms), one model worker with 2
//! threads, and are measured alternately, round after round. TorchServe runs
//! its stock `image_classifier` handler on the eager model, as its own
//! ResNet-18 example does; `cvtk serve` runs as `cvtk deploy create` starts it.
//!
//! `cargo bench --bench serving` (or `make bench`, which builds the `cvtk`
//! program first) prints a Markdown table; without `--bench` (as `cargo test`
//! runs it) it makes one short round at concurrency 8, so the benchmark cannot
//! rot. Before timing, it checks that both services give the same class
//! probabilities for the same input tensor.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use cvtk::core::StorageContext;
use cvtk::dataset::{ImageLoader, LoaderConfig};
use cvtk::deploy::{DeployConfig, Deployment, ServeConfig};
use cvtk::loadtest::{LoadTest, LoadTestReport, LoadTestStop, Payload};
use cvtk::model::{compile, Architecture, BaseModel, Classifier, Device, EngineChoice, Scorer, TransferModel};

const THREADS: usize = 2;
const MAX_BATCH: usize = 16;
const MAX_DELAY_MS: u64 = 5;
const IMAGES: usize = 32;

/// TorchServe in its own process group, stopped (with its workers) on drop.
struct TorchServe {
    child: Child,
    log: PathBuf,
}

impl TorchServe {
    fn start(root: &Path, dir: &Path) -> anyhow::Result<Self> {
        let java = Command::new("java").arg("-version").output();
        if !java.is_ok_and(|o| o.status.success()) {
            bail!("TorchServe needs Java 17: run 'apt-get install openjdk-17-jre-headless'");
        }
        let venv_bin = root.join(".venv/bin");
        let path = std::env::join_paths(
            std::iter::once(venv_bin.clone())
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
        )?;
        let log = dir.join("torchserve.out");
        let out = std::fs::File::create(&log)?;
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new(venv_bin.join("torchserve"))
                .args(["--start", "--foreground", "--ncs", "--disable-token-auth", "--ts-config", "config.properties"])
                .current_dir(dir)
                .env("PATH", path)
                .env("OMP_NUM_THREADS", THREADS.to_string())
                .env("LOG_LOCATION", dir.join("logs"))
                .env("METRICS_LOCATION", dir.join("logs"))
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out),
            0,
        )
        .spawn()
        .context("cannot start TorchServe; `make test-setup` installs it into .venv")?;
        Ok(TorchServe { child, log })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for TorchServe {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// A port `p` with `p + 1` and `p + 2` free too (TorchServe's three listeners).
fn free_ports() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind("127.0.0.1:0")?;
        let p = first.local_addr()?.port();
        if p < 65000
            && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 2)).is_ok()
        {
            return Ok(p);
        }
    }
    bail!("found no three free ports in a row on 127.0.0.1")
}

/// POSTs `image` raw, with its content type, to `url`; the JSON answer.
fn post(url: &str, key: Option<&str>, image: &[u8]) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let content_type = image::guess_format(image)?.to_mime_type();
    let mut req = client.post(url).header("content-type", content_type).body(image.to_vec());
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let answer = req.send()?;
    let status = answer.status();
    let text = answer.text()?;
    ensure!(status.is_success(), "{url} answered {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("{url} answered {text:?}, not JSON"))
}

/// The class probabilities in cvtk's answer to `?add_softmax=true`.
fn probabilities(answer: &serde_json::Value) -> anyhow::Result<Vec<f64>> {
    let scores = answer["results"][0]["scores"].as_array().context("cvtk's answer has no scores")?;
    scores.iter().map(|v| v.as_f64().context("a score is not a number")).collect()
}

/// `jpeg` decoded, squashed to `size` x `size` and encoded as PNG.
fn square_png(jpeg: &[u8], size: u32) -> anyhow::Result<Vec<u8>> {
    let img = image::load_from_memory(jpeg)?.to_rgb8();
    let img = image::imageops::resize(&img, size, size, image::imageops::FilterType::Triangle);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

fn load(
    url: &str,
    key: Option<&str>,
    images: &[Vec<u8>],
    concurrency: usize,
    seconds: f64,
) -> anyhow::Result<LoadTestReport> {
    let report = LoadTest {
        endpoint: url.to_string(),
        payload: Payload::Raw,
        key: key.map(str::to_string),
        images: images.to_vec(),
        concurrency,
        stop: LoadTestStop::Duration(Duration::from_secs_f64(seconds)),
        request_timeout: Duration::from_secs(120),
        ..LoadTest::default()
    }
    .run()?;
    ensure!(report.ok > 0 && report.errors.is_empty(), "{url}: {}", report.summary());
    Ok(report)
}

/// Images per second of the service's work done in this process: decode and
/// resize each JPEG, then score batches of `MAX_BATCH`; and of the network
/// alone on a ready batch.
fn ceiling(classifier: &dyn Scorer, images: &[Vec<u8>], seconds: f64) -> anyhow::Result<(f64, f64)> {
    let loader = ImageLoader::new(LoaderConfig { threads: 1, ..classifier.loader_config() })?;
    let batch = |k: usize| -> anyhow::Result<cvtk::dataset::ImageBatch> {
        let decoded: Vec<_> = (0..MAX_BATCH)
            .map(|j| loader.load_image_bytes(&images[(k * MAX_BATCH + j) % images.len()], "bench image"))
            .collect::<Result<_, _>>()?;
        Ok(loader.to_batch(&decoded)?)
    };
    let timed = |step: &dyn Fn(usize) -> anyhow::Result<()>| -> anyhow::Result<f64> {
        step(0)?;
        let (mut k, start) = (0, Instant::now());
        while start.elapsed().as_secs_f64() < seconds {
            step(k)?;
            k += 1;
        }
        Ok((k * MAX_BATCH) as f64 / start.elapsed().as_secs_f64())
    };
    let end_to_end = timed(&|k| {
        let out = classifier.score_images(&batch(k)?)?;
        ensure!(out.len() == MAX_BATCH);
        Ok(())
    })?;
    let ready = batch(0)?;
    let network = timed(&|_| {
        let out = classifier.score_images(&ready)?;
        ensure!(out.len() == MAX_BATCH);
        Ok(())
    })?;
    Ok((end_to_end, network))
}

/// `--profile CONCURRENCY SECONDS [CVTK SERVE FLAGS...]`: only `cvtk serve`
/// under load, its process id printed first and 3 s given to attach
/// `perf record -p PID`.
fn profile(service: &cvtk::deploy::DeploymentRecord, images: &[Vec<u8>], args: &[String]) -> anyhow::Result<()> {
    let concurrency: usize = args.first().context("--profile CONCURRENCY SECONDS")?.parse()?;
    let seconds: f64 = args.get(1).context("SECONDS")?.parse()?;
    println!("cvtk serve: pid {}", service.pid);
    std::thread::sleep(Duration::from_secs(3));
    let key = service.key()?;
    let report = load(&format!("{}/score", service.url), Some(&key), images, concurrency, seconds)?;
    println!("{}", report.summary());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // `cvtk serve` inherits this; libtorch's default is the core count anyway.
    std::env::set_var("OMP_NUM_THREADS", THREADS.to_string());
    tch::set_num_threads(THREADS as i32);
    let (concurrencies, rounds, seconds): (&[usize], usize, f64) =
        if full { (&[1, 8, 32], 3, 8.0) } else { (&[8], 1, 1.0) };

    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let photos = dir.join("photos");
    common::write_photos_between(root, &photos, IMAGES, 0.2, 0.4)?;
    let images: Vec<Vec<u8>> = cvtk::loadtest::read_images(&photos, IMAGES)?.into_iter().map(|(_, b)| b).collect();
    let mean_kb = images.iter().map(Vec::len).sum::<usize>() as f64 / images.len() as f64 / 1024.0;

    // The weights, TorchServe's archive and config.
    let port = free_ports()?;
    let ts_dir = dir.join("torchserve");
    std::fs::create_dir_all(&ts_dir)?;
    let ts_dir_arg = ts_dir.to_str().context("temp path")?;
    let prepare = ["prepare", ts_dir_arg, &port.to_string(), &MAX_BATCH.to_string(), &MAX_DELAY_MS.to_string()];
    common::python_peer(root, "serving_torchserve.py", &prepare, Some(THREADS))?;

    // cvtk: the same weights with their ImageNet head, saved as a model folder.
    let weights = ts_dir.join("resnet18.pth");
    let model = TransferModel::imagenet(&BaseModel::new(Architecture::Resnet18, Some(weights)), Device::Cpu)?;
    let model_dir = dir.join("model");
    model.save(&model_dir)?;

    let storage = StorageContext::under(dir.join("home"));
    let profiling = args.iter().position(|a| a == "--profile").map(|i| &args[i + 1..]);
    let mut serve = ServeConfig {
        port: 0,
        max_batch: MAX_BATCH,
        max_delay: Duration::from_millis(MAX_DELAY_MS),
        ..ServeConfig::default()
    };
    // --profile C S [--decode-threads N] [--max-batch N] [--max-delay-ms N]
    let flags: Vec<&String> =
        profiling.into_iter().flat_map(|a| a.iter().skip(2)).filter(|a| *a != "--bench").collect();
    for pair in flags.chunks(2) {
        let value = |i: usize| pair.get(i).and_then(|v| v.parse::<u64>().ok());
        match (pair[0].as_str(), value(1)) {
            ("--decode-threads", Some(n)) => serve.decode_threads = n as usize,
            ("--max-batch", Some(n)) => serve.max_batch = n as usize,
            ("--max-delay-ms", Some(n)) => serve.max_delay = Duration::from_millis(n),
            (flag, _) => anyhow::bail!("--profile takes --decode-threads, --max-batch or --max-delay-ms N, not {flag}"),
        }
    }
    let config = DeployConfig { device: "cpu".into(), serve: serve.clone(), ..DeployConfig::default() };
    let service = Deployment::new("bench", &model_dir, config).deploy(&storage)?;
    if let Some(profile_args) = profiling {
        let result = profile(&service, &images, profile_args);
        service.delete(&storage)?;
        return result;
    }
    let torch_config = DeployConfig {
        device: "cpu".into(),
        serve: ServeConfig { engine: EngineChoice::Torch, ..serve },
        ..DeployConfig::default()
    };
    let torch_service = Deployment::new("bench-torch", &model_dir, torch_config).deploy(&storage);
    let torch_service = match torch_service {
        Ok(s) => s,
        Err(e) => {
            service.delete(&storage)?;
            return Err(e.into());
        }
    };
    let torchserve = TorchServe::start(root, &ts_dir)?;
    let result = (|| -> anyhow::Result<()> {
        let key = service.key()?;
        let cvtk_url = format!("{}/score", service.url);
        let torch_key = torch_service.key()?;
        let torch_url = format!("{}/score", torch_service.url);
        for (url, want) in [(&service.url, "onnxruntime"), (&torch_service.url, "torch")] {
            let ready: serde_json::Value = reqwest::blocking::get(format!("{url}/ready"))?.json()?;
            ensure!(ready["engine"] == want, "{url} scores with {ready}, not {want}");
        }
        let ts_url = format!("http://127.0.0.1:{port}/predictions/resnet18");
        // TorchServe loads its worker after the listener is up: wait for a 200.
        let deadline = Instant::now() + Duration::from_secs(180);
        while let Err(e) = post(&ts_url, None, &images[0]) {
            if Instant::now() > deadline {
                bail!("TorchServe did not answer within 180 s: {e}\n{}", torchserve.log_tail());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        // Same answers: on 256x256 PNGs both services feed the network the same
        // tensor (lossless decoding, no resampling, the same centre crop), so
        // their class probabilities must match. (On the JPEGs, the two
        // decoders' rounding alone moves these random weights' near-tied top
        // classes.)
        let mut worst = 0f64;
        for (i, image) in images.iter().take(8).enumerate() {
            let png = square_png(image, 256)?;
            let ours = probabilities(&post(&format!("{cvtk_url}?add_softmax=true"), Some(&key), &png)?)?;
            let theirs = post(&ts_url, None, &png)?;
            let top5 = theirs.as_object().context("TorchServe's answer is not a map")?;
            ensure!(top5.len() == 5, "TorchServe answered {theirs}");
            for (class, p) in top5 {
                let (class, p): (usize, f64) = (class.parse()?, p.as_f64().context("a probability")?);
                let ours = *ours.get(class).context("class index out of range")?;
                worst = worst.max((ours - p).abs() / p);
            }
            ensure!(worst < 0.01, "image {i}: cvtk's and TorchServe's probabilities differ by {:.1}%", 100.0 * worst);
        }
        for (url, k) in [(&cvtk_url, Some(key.as_str())), (&torch_url, Some(torch_key.as_str())), (&ts_url, None)] {
            load(url, k, &images, 8, seconds.min(2.0))?;
        }

        let mut ceilings = (Vec::new(), Vec::new(), Vec::new());
        let torch_model = cvtk::model::load_classifier(&model_dir, Device::Cpu)?;
        let scorer = compile(&model, EngineChoice::Auto)?;
        let engine = scorer.engine();
        let mut rows: Vec<[Vec<LoadTestReport>; 3]> =
            concurrencies.iter().map(|_| [Vec::new(), Vec::new(), Vec::new()]).collect();
        for _ in 0..rounds {
            let (e2e, network) = ceiling(&scorer, &images, seconds)?;
            ceilings.0.push(e2e);
            ceilings.1.push(network);
            ceilings.2.push(ceiling(&*torch_model, &images, seconds)?.1);
            for (i, &c) in concurrencies.iter().enumerate() {
                rows[i][0].push(load(&cvtk_url, Some(&key), &images, c, seconds)?);
                rows[i][1].push(load(&torch_url, Some(&torch_key), &images, c, seconds)?);
                rows[i][2].push(load(&ts_url, None, &images, c, seconds)?);
            }
        }
        let sequential = common::median(ceilings.0);
        let network = common::median(ceilings.1);
        let torch_network = common::median(ceilings.2);
        println!(
            "serving: ResNet-18 (the same weights in both), {IMAGES} JPEGs of 0.2-0.4 MP (mean {mean_kb:.0} KB) POSTed raw, \
             one per request, on 127.0.0.1; batches of at most {MAX_BATCH} waiting at most {MAX_DELAY_MS} ms; one model \
             worker with {THREADS} threads each; {rounds} rounds of about {seconds} s per service and concurrency, \
             alternating; medians. On 256x256 PNGs (the same tensor in both) \
             their class probabilities agreed within {:.2}%.\n",
            100.0 * worst
        );
        println!(
            "Ceiling: the network alone in this process ({engine}, cvtk's default), on a ready batch of {MAX_BATCH}: \
             {network:.1} images/s (libtorch: {torch_network:.1}). \
             The service's whole work in this process, one step after the other (decode and resize {MAX_BATCH} JPEGs \
             on one thread, then score them): {sequential:.1} images/s.\n"
        );
        println!(
            "| concurrency | cvtk serve req/s | p50 ms | p99 ms | cvtk serve --engine torch req/s | p99 ms \
             | TorchServe req/s | p50 ms | p99 ms | cvtk / TorchServe | cvtk / ceiling |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for (&c, [ours, torch, theirs]) in concurrencies.iter().zip(rows) {
            let stat = |r: &[LoadTestReport], f: fn(&LoadTestReport) -> f64| common::median(r.iter().map(f).collect());
            let (rate, p50, p99) = (
                stat(&ours, |r| r.requests_per_s),
                stat(&ours, |r| r.latency_ms.p50),
                stat(&ours, |r| r.latency_ms.p99),
            );
            let (ts_rate, ts_p50, ts_p99) = (
                stat(&theirs, |r| r.requests_per_s),
                stat(&theirs, |r| r.latency_ms.p50),
                stat(&theirs, |r| r.latency_ms.p99),
            );
            let (torch_rate, torch_p99) = (stat(&torch, |r| r.requests_per_s), stat(&torch, |r| r.latency_ms.p99));
            println!(
                "| {c} | {rate:.1} | {p50:.1} | {p99:.1} | {torch_rate:.1} | {torch_p99:.1} | {ts_rate:.1} | {ts_p50:.1} \
                 | {ts_p99:.1} | {:.2}x | {:.2}x |",
                rate / ts_rate,
                rate / network
            );
        }
        Ok(())
    })();
    let stopped = service.delete(&storage).and(torch_service.delete(&storage));
    drop(torchserve);
    result?;
    stopped?;
    Ok(())
}

//! `make soak`: `cvtk serve` for a minute under 32 honest clients and hostile
//! ones at the same time, on loopback. The hostile ones: 200 connections that
//! send half a request head and then nothing, 100 that send one byte of the
//! HTTP/2 preface, 100 that send the preface and SETTINGS and then idle (all
//! reconnecting when closed, together more than the server's
//! `--max-connections 256`), bodies declared at 80 MB, 30 MB JSON bodies of
//! 15 million tiny list items, decompression bombs in every image format,
//! and on `/v2` requests for 300,000 outputs and 30 MB of tiny parameters. It reports what the honest
//! clients got (answered, p50/p99, statuses), every 5xx that is not a 503 with
//! `Retry-After` (there must be none), what each abuser got, and the server's
//! peak memory. Exits non-zero if a server error, a wrong answer to an
//! abuser, or an honest client never served shows up.
//!
//! ```sh
//! make soak                                   # builds, then runs this for 60 s
//! target/release/examples/soak --seconds 60 --json soak.json
//! ```
//! docs/deployment.md quotes a run.

#[path = "../crates/cvtk-deploy/tests/support/bombs.rs"]
mod bombs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use cvtk::loadtest::{LoadTest, LoadTestStop, Payload};
use cvtk::model::{Architecture, BaseModel, Classifier, Device, TransferModel};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Soak `cvtk serve` with honest and hostile clients at once.
#[derive(Parser)]
struct Args {
    /// How long, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Honest clients, each sending one request at a time.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Half-open connections kept open at once.
    #[arg(long, default_value_t = 200)]
    half_open: usize,
    /// Connections stalled in HTTP/2 (one byte of its preface; or the preface
    /// and SETTINGS, then idle) kept open at once, of each kind.
    #[arg(long, default_value_t = 100)]
    stalled_http2: usize,
    /// The service's connection cap; all the abusive connections together
    /// exceed it.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// The model to serve; by default an EfficientNet-Lite0 at 224x224
    /// (random weights: the soak is about the service, not the answers).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The service's header timeout, in seconds (how soon half-open
    /// connections are closed).
    #[arg(long, default_value_t = 2)]
    header_timeout_s: u64,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Default, Serialize)]
struct Abuse {
    sent: u64,
    expected_answer: u64,
    /// Connections closed before their request head was read: at the
    /// connection cap, a new connection takes the slot of one that has not
    /// sent a whole request yet (the documented behaviour, not a wrong answer).
    closed_before_the_head: u64,
    other: u64,
}

#[derive(Serialize)]
struct Report {
    seconds: u64,
    engine: String,
    honest: cvtk::loadtest::LoadTestReport,
    half_open_opened: u64,
    half_open_closed_by_server: u64,
    stalled_http2_opened: u64,
    stalled_http2_closed_by_server: u64,
    v2_outputs: Abuse,
    v2_parameters: Abuse,
    declared_oversize: Abuse,
    amplifying_json: Abuse,
    bombs: Abuse,
    server_rss_before_mib: f64,
    server_peak_mib: f64,
}

/// A field of `/proc/PID/status`, in MiB.
fn proc_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc (Linux only)")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kb / 1024.0)
}

/// The `cvtk` program built beside this example.
fn cvtk_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("no target folder")?;
    let cvtk = dir.join("cvtk");
    if !cvtk.is_file() {
        bail!("{} is missing; build it first (make soak does)", cvtk.display());
    }
    Ok(cvtk)
}

struct Server {
    child: Child,
    url: String,
    key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(model: &Path, dir: &Path, args: &Args) -> anyhow::Result<Server> {
    let key = cvtk::deploy::generate_key();
    let key_file = dir.join("key");
    cvtk::core::write_atomic_private(&key_file, key.as_bytes())?;
    let addr_file = dir.join("addr");
    let child = Command::new(cvtk_exe()?)
        .args(["serve", "--model"])
        .arg(model)
        .arg("--key-file")
        .arg(&key_file)
        .args(["--port", "0", "--device", "cpu", "--header-timeout-s", &args.header_timeout_s.to_string()])
        .args(["--max-connections", &args.max_connections.to_string(), "--model-name", "soak"])
        .arg("--addr-file")
        .arg(&addr_file)
        .stderr(Stdio::null())
        .spawn()
        .context("starting cvtk serve")?;
    let mut server = Server { child, url: String::new(), key };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(url) = std::fs::read_to_string(&addr_file) {
            if cvtk::deploy::Client::new(&url, None)?.ready() {
                server.url = url;
                return Ok(server);
            }
        }
        if let Some(status) = server.child.try_wait()? {
            bail!("cvtk serve exited ({status}) before it was ready");
        }
        if Instant::now() > deadline {
            bail!("cvtk serve was not ready within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Honest request bodies: photos-like JPEGs of a few sizes.
fn honest_images() -> Vec<Vec<u8>> {
    (0..16u32)
        .map(|i| {
            let (w, h) = (200 + 40 * (i % 4), 160 + 30 * (i % 3));
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 3 + i * 11) as u8, (y * 5 + i * 7) as u8, ((x ^ y) + i) as u8])
            });
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Jpeg).expect("JPEG encoding");
            out.into_inner()
        })
        .collect()
}

/// A connection that sends `bytes` (half a request head, say), then waits for
/// the server to close it; counts both. Reconnects until `stop`.
async fn half_open(
    addr: String,
    bytes: &'static [u8],
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut c) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let _ = c.write_all(bytes).await;
        let mut buf = [0u8; 512];
        loop {
            tokio::select! {
                r = c.read(&mut buf) => match r {
                    Ok(0) | Err(_) => { closed.fetch_add(1, Ordering::Relaxed); break; }
                    Ok(_) => continue,
                },
                () = tokio::time::sleep(Duration::from_millis(250)) => {
                    if stop.load(Ordering::Relaxed) { return; }
                }
            }
        }
    }
}

/// Sends `body` (as `content_type`) again and again until `stop`, counting
/// answers with `expected` status.
async fn repeat(
    client: reqwest::Client,
    url: String,
    key: String,
    bodies: Vec<(&'static str, Vec<u8>)>,
    expected: u16,
    stop: Arc<AtomicBool>,
) -> Abuse {
    let mut tally = Abuse::default();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let (content_type, body) = &bodies[i % bodies.len()];
        i += 1;
        tally.sent += 1;
        let r =
            client.post(&url).bearer_auth(&key).header("content-type", *content_type).body(body.clone()).send().await;
        match r {
            Ok(r) if r.status().as_u16() == expected => tally.expected_answer += 1,
            _ => tally.other += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tally
}

/// Declares an 80 MB body, sends 64 KiB of it, and waits (up to 5 s) for the answer.
async fn declared_oversize(addr: String, key: String, stop: Arc<AtomicBool>) -> Abuse {
    let mut tally = Abuse::default();
    while !stop.load(Ordering::Relaxed) {
        tally.sent += 1;
        let answered = async {
            let mut c = TcpStream::connect(&addr).await.ok()?;
            let head = format!(
                "POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: image/png\r\nContent-Length: 80000000\r\n\r\n"
            );
            if c.write_all(head.as_bytes()).await.is_err() {
                return Some(None);
            }
            let _ = c.write_all(&[0u8; 64 << 10]).await;
            let mut buf = [0u8; 64];
            let n = c.read(&mut buf).await.unwrap_or(0);
            Some(if n == 0 { None } else { Some(buf[..n].starts_with(b"HTTP/1.1 413")) })
        };
        match tokio::time::timeout(Duration::from_secs(5), answered).await {
            Ok(Some(Some(true))) => tally.expected_answer += 1,
            Ok(Some(None)) => tally.closed_before_the_head += 1,
            Ok(Some(Some(false))) => {
                tally.other += 1;
                eprintln!("soak: a body declared at 80 MB got an answer other than 413");
            }
            Ok(None) => {
                tally.other += 1;
                eprintln!("soak: cannot connect to the service");
            }
            Err(_) => {
                tally.other += 1;
                eprintln!("soak: a body declared at 80 MB got no answer within 5 s");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tally
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let work = tempfile::tempdir()?;
    let model = match &args.model {
        Some(m) => m.clone(),
        None => {
            let dir = work.path().join("model");
            let base = BaseModel::new(Architecture::EfficientnetLite0, None);
            let labels = vec!["a".into(), "b".into(), "c".into()];
            TransferModel::new_seeded(labels, &base, Some(224), Device::Cpu, 0)?.save(&dir)?;
            dir
        }
    };
    let server = start_server(&model, work.path(), &args)?;
    let pid = server.child.id();
    let engine = reqwest::blocking::get(format!("{}/ready", server.url))?.json::<serde_json::Value>()?["engine"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let rss_before = proc_mib(pid, "VmRSS")?;
    let addr = server.url.trim_start_matches("http://").to_string();
    let score_url = format!("{}/score", server.url);
    eprintln!(
        "soak: {} s of cvtk serve ({engine}) at {} (--max-connections {}) under {} honest clients, {} half-open \
         connections, 2 x {} stalled in HTTP/2, oversize, amplifying, bomb and /v2 bodies",
        args.seconds, server.url, args.max_connections, args.clients, args.half_open, args.stalled_http2
    );

    // The abusers, on a runtime of their own.
    let stop = Arc::new(AtomicBool::new(false));
    let (opened, closed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    for _ in 0..args.half_open {
        let head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Ty";
        runtime.spawn(half_open(addr.clone(), head, stop.clone(), opened.clone(), closed.clone()));
    }
    let (h2_opened, h2_closed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let preface_and_settings = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    for bytes in [&b"P"[..], &preface_and_settings[..]] {
        for _ in 0..args.stalled_http2 {
            runtime.spawn(half_open(addr.clone(), bytes, stop.clone(), h2_opened.clone(), h2_closed.clone()));
        }
    }
    let mut amplifying = String::with_capacity(30_000_002);
    amplifying.push('[');
    for i in 0..15_000_000 {
        amplifying.push_str(if i == 0 { "1" } else { ",1" });
    }
    amplifying.push(']');
    let amplifying = vec![("application/json", amplifying.into_bytes())];
    use image::ImageFormat as F;
    let bomb_bodies: Vec<(&'static str, Vec<u8>)> = [F::Png, F::Jpeg, F::Gif, F::Bmp, F::Tiff, F::WebP]
        .into_iter()
        .map(|f| ("application/octet-stream", bombs::bomb(f, 60_000)))
        .collect();
    let key = server.key.clone();
    let oversize = runtime.spawn(declared_oversize(addr.clone(), key.clone(), stop.clone()));
    let amplify = runtime.spawn(repeat(client.clone(), score_url.clone(), key.clone(), amplifying, 400, stop.clone()));
    // /v2: 300,000 outputs (refused at once), and 30 MB of tiny parameter
    // values around one image (skipped; the image is scored).
    let infer_url = format!("{}/v2/models/soak/infer", server.url);
    let image = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&honest_images()[0])
    };
    let input = format!(r#"[{{"name":"image","datatype":"BYTES","shape":[1],"data":["{image}"]}}]"#);
    let mut outputs = format!(r#"{{"inputs":{input},"outputs":["#);
    outputs.push_str(&vec![r#"{"name":"label"}"#; 300_000].join(","));
    outputs.push_str("]}");
    let mut parameters = String::from(r#"{"parameters":{"#);
    parameters.push_str(&vec![r#""p":1"#; 5_000_000].join(","));
    parameters.push_str(&format!(r#"}},"inputs":{input}}}"#));
    let json = "application/json";
    let v2_outputs = runtime.spawn(repeat(
        client.clone(),
        infer_url.clone(),
        key.clone(),
        vec![(json, outputs.into_bytes())],
        400,
        stop.clone(),
    ));
    let v2_parameters = runtime.spawn(repeat(
        client.clone(),
        infer_url,
        key.clone(),
        vec![(json, parameters.into_bytes())],
        200,
        stop.clone(),
    ));
    let bomb = runtime.spawn(repeat(client, score_url.clone(), key.clone(), bomb_bodies, 413, stop.clone()));

    // The honest clients, on this thread, for the whole time.
    let honest = LoadTest {
        endpoint: server.url.clone(),
        payload: Payload::Json,
        key: Some(key),
        images: honest_images(),
        concurrency: args.clients,
        stop: LoadTestStop::Duration(Duration::from_secs(args.seconds)),
        batch: 1,
        request_timeout: Duration::from_secs(30),
    }
    .run()?;
    stop.store(true, Ordering::Relaxed);
    let (declared_oversize, amplifying_json, bombs, v2_outputs, v2_parameters) =
        runtime.block_on(async { (oversize.await, amplify.await, bomb.await, v2_outputs.await, v2_parameters.await) });
    let report = Report {
        seconds: args.seconds,
        engine,
        honest,
        half_open_opened: opened.load(Ordering::Relaxed),
        half_open_closed_by_server: closed.load(Ordering::Relaxed),
        stalled_http2_opened: h2_opened.load(Ordering::Relaxed),
        stalled_http2_closed_by_server: h2_closed.load(Ordering::Relaxed),
        v2_outputs: v2_outputs?,
        v2_parameters: v2_parameters?,
        declared_oversize: declared_oversize?,
        amplifying_json: amplifying_json?,
        bombs: bombs?,
        server_rss_before_mib: rss_before,
        server_peak_mib: proc_mib(pid, "VmHWM")?,
    };
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(server);

    let h = &report.honest;
    println!("soak: {} s, cvtk serve with {}", report.seconds, report.engine);
    println!(
        "  honest clients ({}): {} requests, {} answered 200 ({:.1}/s), p50 {:.0} ms, p99 {:.0} ms, statuses {:?}",
        h.concurrency, h.requests, h.ok, h.requests_per_s, h.latency_ms.p50, h.latency_ms.p99, h.status_counts
    );
    println!("  server errors (5xx other than 503 with Retry-After): {}", h.server_errors);
    println!(
        "  half-open connections: {} opened, {} closed by the server",
        report.half_open_opened, report.half_open_closed_by_server
    );
    println!(
        "  connections stalled in HTTP/2 (one byte, or preface and SETTINGS): {} opened, {} closed by the server",
        report.stalled_http2_opened, report.stalled_http2_closed_by_server
    );
    for (what, a, answer) in [
        ("declared 80 MB bodies", &report.declared_oversize, "413"),
        ("30 MB amplifying JSON bodies", &report.amplifying_json, "400"),
        ("decompression bombs", &report.bombs, "413"),
        ("/v2 requests for 300,000 outputs", &report.v2_outputs, "400"),
        ("/v2 bodies of 30 MB of tiny parameters", &report.v2_parameters, "200"),
    ] {
        let closed = if a.closed_before_the_head > 0 {
            format!(
                ", {} closed before their head was read (taken for a new connection at the cap)",
                a.closed_before_the_head
            )
        } else {
            String::new()
        };
        println!("  {what}: {} sent, {} answered {answer}{closed}, {} otherwise", a.sent, a.expected_answer, a.other);
    }
    println!(
        "  server memory: {:.0} MiB resident when ready, {:.0} MiB peak",
        report.server_rss_before_mib, report.server_peak_mib
    );
    if let Some(path) = &args.json {
        cvtk::core::write_json_atomic(path, &report)?;
    }
    let abuse_failed =
        [&report.declared_oversize, &report.amplifying_json, &report.bombs, &report.v2_outputs, &report.v2_parameters]
            .iter()
            .any(|a| a.other > 0);
    if h.server_errors > 0 || h.ok == 0 || abuse_failed {
        bail!("the soak found failures (see above)");
    }
    Ok(())
}

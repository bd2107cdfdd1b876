//! `cvtk serve`: the REST scoring service for one model folder.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use cvtk_deploy::{generate_key, ServeConfig, UrlPolicy};

/// Arguments of `cvtk serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model folder to serve (written by `cvtk train`).
    #[arg(long)]
    model: PathBuf,
    /// Address to bind: 127.0.0.1 for this machine only, 0.0.0.0 for all.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// A service key clients send as `Authorization: Bearer KEY` (repeat for several).
    #[arg(long = "key", env = "CVTK_SERVICE_KEY", value_delimiter = ',')]
    keys: Vec<String>,
    /// A file holding the service key (first line).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Serve without a key (loopback addresses only).
    #[arg(long)]
    no_auth: bool,
    /// Device for the model: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Dynamic batching: most images per forward pass.
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// Dynamic batching: milliseconds to wait for more requests (0 = off).
    #[arg(long, default_value_t = 2)]
    max_delay_ms: u64,
    /// Requests decoded at the same time (0 = one per core); more wait their turn.
    #[arg(long, default_value_t = 0)]
    decode_threads: usize,
    /// Requests waiting for the model at most; more get 503.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Seconds one request may take, waiting included; over it gets 504.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    /// Largest request body, in MiB; larger gets 413.
    #[arg(long, default_value_t = 32)]
    max_body_mb: usize,
    /// Most images in one request.
    #[arg(long, default_value_t = 256)]
    max_images: usize,
    /// Allow `image_url` items from this host (repeat; `*.example.com` for sub-domains). Off by default.
    #[arg(long = "allow-url-host")]
    allow_url_hosts: Vec<String>,
    /// Largest image download for `image_url`, in MiB.
    #[arg(long, default_value_t = 20)]
    url_max_mb: u64,
    /// Seconds allowed per `image_url` download.
    #[arg(long, default_value_t = 10)]
    url_timeout_s: u64,
    /// Write the bound URL (http://IP:PORT) to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

/// Runs `cvtk serve` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.model.join("model.json").is_file() {
        bail!("{} is not a model folder (no model.json); train one with `cvtk train`", args.model.display());
    }
    let mut keys: Vec<String> = args.keys.iter().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
    if let Some(f) = &args.key_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read the key file {}", f.display()))?;
        let key = text.lines().next().unwrap_or("").trim().to_string();
        if key.is_empty() {
            bail!("the key file {} is empty", f.display());
        }
        keys.push(key);
    }
    if keys.is_empty() && !args.no_auth {
        let key = generate_key();
        eprintln!("cvtk serve: no --key given; clients must send: Authorization: Bearer {key}");
        keys.push(key);
    }
    let config = ServeConfig {
        host: args.host,
        port: args.port,
        keys,
        auth_disabled: args.no_auth,
        max_body_bytes: args.max_body_mb.saturating_mul(1 << 20),
        max_images_per_request: args.max_images,
        queue_capacity: args.queue,
        request_timeout: Duration::from_secs(args.timeout_s),
        max_batch: args.max_batch,
        max_delay: Duration::from_millis(args.max_delay_ms),
        decode_threads: args.decode_threads,
        urls: UrlPolicy {
            allow_hosts: args.allow_url_hosts,
            max_bytes: args.url_max_mb.saturating_mul(1 << 20),
            timeout: Duration::from_secs(args.url_timeout_s),
        },
        ..ServeConfig::default()
    };
    let device = cvtk_model::resolve_device(Some(&args.device))?;
    cvtk_deploy::serve(config, &args.model, device, args.addr_file)?;
    Ok(())
}

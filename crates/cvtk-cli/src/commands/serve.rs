//! `cvtk serve`: the REST scoring service for one model folder, from flags or
//! from a service file (`--config`, what `cvtk deploy create` writes).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use cvtk_deploy::{generate_key, ServeConfig, ServiceSpec, UrlPolicy};

/// Arguments of `cvtk serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A service file (JSON: model_dir, device, addr_file, serve settings), as `cvtk deploy create` writes
    /// it; instead of the flags.
    #[arg(long, conflicts_with_all = ["model", "addr_file"])]
    config: Option<PathBuf>,
    /// The model folder to serve (written by `cvtk train`).
    #[arg(long, required_unless_present = "config")]
    model: Option<PathBuf>,
    /// Device for the model: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[command(flatten)]
    settings: ServeSettings,
    /// Write the bound URL (http://IP:PORT) to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

/// The service's settings as flags; `cvtk deploy create NAME --model DIR -- FLAGS` takes them too.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeSettings {
    /// Address to bind: 127.0.0.1 for this machine only, 0.0.0.0 for all.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// A service key clients send as `Authorization: Bearer KEY` (repeat for several).
    #[arg(long = "key", env = "CVTK_SERVICE_KEY", value_delimiter = ',', hide_env_values = true)]
    pub keys: Vec<String>,
    /// A file holding the service key (first line).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Serve without a key (loopback addresses only).
    #[arg(long)]
    pub no_auth: bool,
    /// Dynamic batching: most images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// Dynamic batching: milliseconds to wait for more requests (0 = off).
    #[arg(long, default_value_t = 2)]
    pub max_delay_ms: u64,
    /// Requests decoded at the same time (0 = one per core); more wait their turn.
    #[arg(long, default_value_t = 0)]
    pub decode_threads: usize,
    /// Requests waiting for the model at most; more get 503.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Seconds one request may take, waiting included; over it gets 504.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
    /// Largest request body, in MiB; larger gets 413.
    #[arg(long, default_value_t = 32)]
    pub max_body_mb: usize,
    /// Most images in one request.
    #[arg(long, default_value_t = 256)]
    pub max_images: usize,
    /// Allow `image_url` items from this host (repeat; `*.example.com` for sub-domains). Off by default.
    #[arg(long = "allow-url-host")]
    pub allow_url_hosts: Vec<String>,
    /// Largest image download for `image_url`, in MiB.
    #[arg(long, default_value_t = 20)]
    pub url_max_mb: u64,
    /// Seconds allowed per `image_url` download.
    #[arg(long, default_value_t = 10)]
    pub url_timeout_s: u64,
    /// Images waiting for or in the model at most, all requests together; more get 503.
    #[arg(long, default_value_t = 1024)]
    pub max_queued_images: usize,
    /// Connections open at once at most; more are closed at once.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a connection gets to send a request's headers (also when idle between requests).
    #[arg(long, default_value_t = 10)]
    pub header_timeout_s: u64,
    /// Scoring engine: auto (onnxruntime on the CPU when its library loads,
    /// else torch), torch, or onnxruntime. If the one asked for cannot run,
    /// the service stays up and /ready answers 503 with the reason.
    #[arg(long, default_value = "auto")]
    pub engine: cvtk_model::EngineChoice,
}

impl ServeSettings {
    /// The settings as the library's [`ServeConfig`].
    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            host: self.host.clone(),
            port: self.port,
            keys: self.keys.clone(),
            key_file: self.key_file.clone(),
            auth_disabled: self.no_auth,
            max_body_bytes: self.max_body_mb.saturating_mul(1 << 20),
            max_images_per_request: self.max_images,
            queue_capacity: self.queue,
            request_timeout: Duration::from_secs(self.timeout_s),
            max_batch: self.max_batch,
            max_delay: Duration::from_millis(self.max_delay_ms),
            decode_threads: self.decode_threads,
            urls: UrlPolicy {
                allow_hosts: self.allow_url_hosts.clone(),
                max_bytes: self.url_max_mb.saturating_mul(1 << 20),
                timeout: Duration::from_secs(self.url_timeout_s),
            },
            engine: self.engine,
            max_connections: self.max_connections,
            max_queued_images: self.max_queued_images,
            header_timeout: Duration::from_secs(self.header_timeout_s),
            ..ServeConfig::default()
        }
    }
}

/// Runs `cvtk serve` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let spec = match (&args.config, &args.model) {
        (Some(file), _) => ServiceSpec::read(file)?,
        (None, Some(model)) => {
            if !cvtk_model::is_model_dir(model) {
                bail!("{} is not a model folder (no model.json); train one with `cvtk train`", model.display());
            }
            let mut serve = args.settings.config();
            if serve.keys.iter().all(|k| k.trim().is_empty()) && serve.key_file.is_none() && !serve.auth_disabled {
                let key = generate_key();
                eprintln!("cvtk serve: no --key given; clients must send: Authorization: Bearer {key}");
                serve.keys = vec![key];
            }
            ServiceSpec {
                model_dir: model.clone(),
                device: args.device.clone(),
                addr_file: args.addr_file.clone(),
                serve,
            }
        }
        (None, None) => bail!("give --model DIR or --config FILE"),
    };
    spec.run()?;
    Ok(())
}

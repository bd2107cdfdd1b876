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
    device: cvtk_model::DeviceChoice,
    #[command(flatten)]
    settings: ServeSettings,
    /// Write the bound URL (http://IP:PORT) to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

/// The library's defaults, which the flags below show and start from: each
/// default is written once, on [`ServeConfig`].
fn defaults() -> ServeConfig {
    ServeConfig::default()
}

/// A duration in whole milliseconds, for a flag's default.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The service's settings as flags; `cvtk deploy create NAME --model DIR -- FLAGS` takes them too.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeSettings {
    /// Address to bind: 127.0.0.1 for this machine only, 0.0.0.0 for all.
    #[arg(long, default_value_t = defaults().host)]
    pub host: String,
    /// Port to bind (0 picks a free one).
    #[arg(long, default_value_t = defaults().port)]
    pub port: u16,
    /// Retired: a key on the command line is visible in `ps`.
    #[arg(long = "key", hide = true, value_parser = crate::secret::refuse("--key-file", "CVTK_SERVICE_KEY"))]
    pub key_on_command_line: Option<String>,
    /// A file holding the service key clients send as `Authorization: Bearer KEY` (first line). Or set
    /// CVTK_SERVICE_KEY (several keys comma-separated). Without either, a key is generated and written to a
    /// file whose path is printed.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Serve without a key (loopback addresses only).
    #[arg(long)]
    pub no_auth: bool,
    /// Dynamic batching: most images per forward pass.
    #[arg(long, default_value_t = defaults().max_batch)]
    pub max_batch: usize,
    /// Dynamic batching: milliseconds to wait for more requests (0 = off).
    #[arg(long, default_value_t = millis(defaults().max_delay))]
    pub max_delay_ms: u64,
    /// Requests decoded at the same time (0 = one per core); more wait their turn.
    #[arg(long, default_value_t = defaults().decode_threads)]
    pub decode_threads: usize,
    /// Requests waiting for the model at most; more get 503.
    #[arg(long, default_value_t = defaults().queue_capacity)]
    pub queue: usize,
    /// Seconds one request may take, waiting included; over it gets 504.
    #[arg(long, default_value_t = defaults().request_timeout.as_secs())]
    pub timeout_s: u64,
    /// Largest request body, in MiB; larger gets 413.
    #[arg(long, default_value_t = defaults().max_body_bytes >> 20)]
    pub max_body_mb: usize,
    /// Most images in one request.
    #[arg(long, default_value_t = defaults().max_images_per_request)]
    pub max_images: usize,
    /// Allow `image_url` items from this host (repeat; `*.example.com` for sub-domains). Off by default.
    #[arg(long = "allow-url-host")]
    pub allow_url_hosts: Vec<String>,
    /// Largest image download for `image_url`, in MiB.
    #[arg(long, default_value_t = defaults().urls.max_bytes >> 20)]
    pub url_max_mb: u64,
    /// Fetch `image_url`s from private, loopback and link-local addresses and any port too (by default only
    /// public addresses on ports 80 and 443, so an allowed name cannot point into this network).
    #[arg(long)]
    pub allow_private_urls: bool,
    /// Seconds allowed per `image_url` download.
    #[arg(long, default_value_t = defaults().urls.timeout.as_secs())]
    pub url_timeout_s: u64,
    /// Memory all image decodings together may take, in MiB (an 8-bit RGBA image takes 11 bytes a pixel
    /// while it decodes); more wait for it. At least what the largest image allowed takes (64 Mi pixels:
    /// 704 MiB).
    #[arg(long, default_value_t = defaults().decode_memory_bytes >> 20)]
    pub decode_memory_mb: u64,
    /// Images waiting for or in the model at most, all requests together; more get 503.
    #[arg(long, default_value_t = defaults().max_queued_images)]
    pub max_queued_images: usize,
    /// Connections open at once at most; at the limit a new one takes the slot of the oldest with no
    /// request in flight, and is closed at once only when every open one has a request in flight.
    #[arg(long, default_value_t = defaults().max_connections)]
    pub max_connections: usize,
    /// Seconds a connection may go with no request in flight (sending half a request head, an HTTP/2
    /// preface, pings, or nothing) before it is closed: on opening and after each response.
    #[arg(long, default_value_t = defaults().header_timeout.as_secs())]
    pub header_timeout_s: u64,
    /// Scoring engine: auto (onnxruntime on the CPU when its library loads,
    /// else torch), torch, or onnxruntime. If the one asked for cannot run,
    /// the service stays up and /ready answers 503 with the reason.
    #[arg(long, default_value_t = defaults().engine)]
    pub engine: cvtk_model::EngineChoice,
    /// Test-time augmentation: none, or flip (each image and its mirror image, scores averaged); by
    /// default what the model was trained with (`cvtk train --tta`).
    #[arg(long)]
    pub tta: Option<cvtk_model::TtaMode>,
    /// The model's name in the Open Inference Protocol routes (/v2/models/NAME). The rule: a deployment's
    /// name (`cvtk deploy create NAME`, the image of `cvtk deploy docker NAME`, KServe's NAME), else the
    /// model folder's name.
    #[arg(long, env = "CVTK_MODEL_NAME")]
    pub model_name: Option<String>,
    /// The model's version there; by default, the stamp of its weights file (new with every save).
    #[arg(long)]
    pub model_version: Option<String>,
}

impl ServeSettings {
    /// The settings as the library's [`ServeConfig`].
    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            host: self.host.clone(),
            port: self.port,
            keys: cvtk_deploy::keys_from_env(),
            key_file: self.key_file.clone(),
            auth_disabled: self.no_auth,
            max_body_bytes: self.max_body_mb.saturating_mul(1 << 20),
            max_images_per_request: self.max_images,
            queue_capacity: self.queue,
            request_timeout: Duration::from_secs(self.timeout_s),
            max_batch: self.max_batch,
            max_delay: Duration::from_millis(self.max_delay_ms),
            decode_threads: self.decode_threads,
            decode_memory_bytes: self.decode_memory_mb.saturating_mul(1 << 20),
            urls: UrlPolicy {
                allow_hosts: self.allow_url_hosts.clone(),
                max_bytes: self.url_max_mb.saturating_mul(1 << 20),
                timeout: Duration::from_secs(self.url_timeout_s),
                allow_private: self.allow_private_urls,
            },
            engine: self.engine,
            tta: self.tta,
            max_connections: self.max_connections,
            max_queued_images: self.max_queued_images,
            header_timeout: Duration::from_secs(self.header_timeout_s),
            model_name: self.model_name.clone(),
            model_version: self.model_version.clone(),
            ..ServeConfig::default()
        }
    }
}

/// Where a generated key is kept: `~/.cvtk/keys/serve-PORT.key` (the
/// process id for port 0).
fn generated_key_file(port: u16) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute());
    let Some(home) = home else {
        bail!("no key given and no HOME to keep a generated one in; pass --key-file FILE or set CVTK_SERVICE_KEY");
    };
    let name = if port == 0 { format!("serve-pid{}.key", std::process::id()) } else { format!("serve-{port}.key") };
    Ok(home.join(".cvtk").join("keys").join(name))
}

/// Runs `cvtk serve` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let spec = match (&args.config, &args.model) {
        (Some(file), _) => ServiceSpec::read(file)?,
        (None, Some(model)) => {
            let mut serve = args.settings.config();
            serve.check_settings().map_err(crate::output::usage_error)?;
            if !cvtk_model::is_model_dir(model) {
                bail!("{} is not a model folder (no model.json); train one with `cvtk train`", model.display());
            }
            if serve.keys.is_empty() && serve.key_file.is_none() && !serve.auth_disabled {
                // A new key goes to a file only the user can read, never to
                // the terminal (or a container's log).
                // (The atomic writer creates the folder.)
                let file = generated_key_file(serve.port)?;
                // The file is named for the port: a server already on it
                // keeps its key there. Refuse before replacing it.
                if serve.port != 0 {
                    if let Err(source) = std::net::TcpListener::bind((serve.host.as_str(), serve.port)) {
                        let addr = format!("{}:{}", serve.host, serve.port);
                        bail!(
                            "{} (the key file {} of the service there is left as it is)",
                            cvtk_deploy::Error::Listen { addr, source },
                            file.display()
                        );
                    }
                }
                cvtk_core::write_atomic_private(&file, generate_key().as_bytes())?;
                eprintln!(
                    "cvtk serve: no key given; generated one in {} (send it as 'Authorization: Bearer KEY')",
                    file.display()
                );
                serve.key_file = Some(file);
            }
            ServiceSpec {
                model_dir: model.clone(),
                device: args.device.to_string(),
                addr_file: args.addr_file.clone(),
                serve,
            }
        }
        (None, None) => bail!("give --model DIR or --config FILE"),
    };
    spec.run()?;
    Ok(())
}

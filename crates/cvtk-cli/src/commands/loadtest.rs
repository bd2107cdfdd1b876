//! `cvtk loadtest`: concurrent load against a scoring service.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use cvtk_deploy::get_deployment;
use cvtk_loadtest::{read_images, LoadTest, LoadTestStop, Payload};

use super::deploy::Home;
use crate::output::print_json;

/// Arguments of `cvtk loadtest`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service's URL (http://host:port), or the full URL of another
    /// scoring route (e.g. TorchServe's http://host:port/predictions/NAME, with --raw).
    #[arg(long, required_unless_present = "deployment", conflicts_with = "deployment")]
    endpoint: Option<String>,
    /// Send each image as the request body (image/jpeg, ...) instead of cvtk's JSON.
    #[arg(long)]
    raw: bool,
    /// A recorded deployment to test instead of --endpoint (its key is used).
    #[arg(long)]
    deployment: Option<String>,
    /// A file holding the service key (first line); or set CVTK_SERVICE_KEY.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Retired: a key on the command line is visible in `ps`.
    #[arg(long = "key", hide = true, value_parser = crate::secret::refuse("--key-file", "CVTK_SERVICE_KEY"))]
    key_on_command_line: Option<String>,
    /// A folder of images to send (searched recursively).
    #[arg(long)]
    images: PathBuf,
    /// At most this many images are read from --images.
    #[arg(long, default_value_t = 256)]
    max_images: usize,
    /// Clients sending at the same time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Stop after this many seconds.
    #[arg(long, conflicts_with = "requests", required_unless_present = "requests")]
    duration: Option<f64>,
    /// Stop after this many requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Images per request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Seconds allowed per request.
    #[arg(long, default_value_t = 30.0)]
    timeout_s: f64,
    /// Write a latency plot (.png or .svg).
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    home: Home,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `cvtk loadtest`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let given = crate::secret::read(args.key_file.as_deref(), "CVTK_SERVICE_KEY")?;
    let (endpoint, key) = match (&args.endpoint, &args.deployment) {
        (Some(e), _) => (e.clone(), given),
        (None, Some(name)) => {
            let r = get_deployment(&args.home.storage(), name)?;
            let key = match given {
                Some(k) => k,
                None => r.key()?,
            };
            (r.url, Some(key))
        }
        (None, None) => bail!("give --endpoint URL or --deployment NAME"),
    };
    let stop = match (args.duration, args.requests) {
        (Some(s), _) if s.is_finite() && s > 0.0 => LoadTestStop::Duration(Duration::from_secs_f64(s)),
        (Some(s), _) => bail!("--duration {s} must be a positive number of seconds"),
        (None, Some(n)) => LoadTestStop::Requests(n),
        (None, None) => bail!("give --duration SECONDS or --requests N"),
    };
    if !(args.timeout_s.is_finite() && args.timeout_s > 0.0) {
        bail!("--timeout-s must be positive");
    }
    let images = read_images(&args.images, args.max_images)?.into_iter().map(|(_, b)| b).collect();
    let test = LoadTest {
        endpoint,
        payload: if args.raw { Payload::Raw } else { Payload::Json },
        key,
        images,
        concurrency: args.concurrency,
        stop,
        batch: args.batch,
        request_timeout: Duration::from_secs_f64(args.timeout_s),
    };
    let report = test.run()?;
    if let Some(p) = &args.plot {
        report.write_latency_plot(p)?;
    }
    if args.json {
        return print_json(&report);
    }
    println!("{}", report.summary());
    if let Some(p) = &args.plot {
        println!("latency plot: {}", p.display());
    }
    Ok(())
}

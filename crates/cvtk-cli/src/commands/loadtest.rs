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
    #[arg(long, default_value_t = 1, value_parser = crate::output::at_least_one)]
    batch: usize,
    /// Seconds allowed per request.
    #[arg(long, default_value_t = 30.0)]
    timeout_s: f64,
    /// Write a latency plot (.png or .svg).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Fail (exit 1) when more than this share of the requests (0 to 1) got no 200: 503s from a full
    /// service, other statuses and connection errors alike. Without it, the run fails only when no
    /// request succeeded.
    #[arg(long)]
    max_error_rate: Option<f64>,
    #[command(flatten)]
    home: Home,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `cvtk loadtest`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let given = cvtk_deploy::client_key(args.key_file.as_deref())?;
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
    if let Some(r) = args.max_error_rate.filter(|r| !(0.0..=1.0).contains(r)) {
        bail!("--max-error-rate {r} must be a share from 0 to 1 (0.01 is 1%)");
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
        print_json(&report)?;
    } else {
        println!("{}", report.summary());
        if let Some(p) = &args.plot {
            println!("latency plot: {}", p.display());
        }
    }
    verdict(&report, args.max_error_rate)
}

/// The run's outcome: an error when no request succeeded, or when the share
/// that did not passes `max_error_rate`.
fn verdict(report: &cvtk_loadtest::LoadTestReport, max_error_rate: Option<f64>) -> anyhow::Result<()> {
    let failed = report.requests.saturating_sub(report.ok);
    if report.ok == 0 {
        let why = if report.errors.is_empty() {
            "no request was sent".to_string()
        } else {
            let kinds: Vec<String> = report.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            kinds.join(", ")
        };
        bail!(
            "no request succeeded ({why}); the latencies above are of failures. Check the endpoint and the key \
             (--key-file or CVTK_SERVICE_KEY)"
        );
    }
    if let Some(most) = max_error_rate {
        let rate = failed as f64 / report.requests as f64;
        if rate > most {
            bail!(
                "{failed} of {} requests ({:.1}%) got no 200, more than --max-error-rate {most} ({:.1}%)",
                report.requests,
                rate * 100.0,
                most * 100.0
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(requests: u64, ok: u64, errors: &[(&str, u64)]) -> cvtk_loadtest::LoadTestReport {
        cvtk_loadtest::LoadTestReport {
            requests,
            ok,
            errors: errors.iter().map(|(k, n)| ((*k).to_string(), *n)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_load_test_fails_when_nothing_succeeded_or_the_error_rate_passes_the_threshold_given() {
        let e = verdict(&report(10, 0, &[("http_401", 10)]), None).unwrap_err().to_string();
        assert!(e.contains("no request succeeded") && e.contains("http_401: 10"), "{e}");
        assert!(verdict(&report(0, 0, &[]), None).unwrap_err().to_string().contains("no request was sent"));
        // 3 of 100 failed: fine without a threshold and under 5%, a failure over 1%.
        let some = report(100, 97, &[("http_503", 3)]);
        assert!(verdict(&some, None).is_ok() && verdict(&some, Some(0.05)).is_ok());
        let e = verdict(&some, Some(0.01)).unwrap_err().to_string();
        assert!(e.contains("3 of 100 requests (3.0%)") && e.contains("--max-error-rate 0.01"), "{e}");
    }
}

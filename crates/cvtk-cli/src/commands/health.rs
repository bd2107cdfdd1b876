//! `cvtk health URL`: whether a scoring service answers, as an exit status;
//! the container image's HEALTHCHECK (it has no curl).

use std::time::Duration;

use anyhow::bail;

/// Arguments of `cvtk health`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The URL to GET, e.g. http://127.0.0.1:8080/health (or /ready: the model is loaded).
    url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3.0, value_parser = crate::output::positive_seconds)]
    timeout: f64,
    /// Print JSON: the URL and its status code.
    #[arg(long)]
    json: bool,
}

/// Runs `cvtk health`: exit status 0 when the URL answers 2xx.
pub fn run(args: Args) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs_f64(args.timeout)).build()?;
    match client.get(&args.url).send() {
        Ok(r) if r.status().is_success() => {
            if args.json {
                return crate::output::print_json(
                    &serde_json::json!({ "url": args.url, "status": r.status().as_u16() }),
                );
            }
            println!("{} answers {}", args.url, r.status());
            Ok(())
        }
        Ok(r) => bail!("{} answers {}", args.url, r.status()),
        Err(e) => bail!("{} does not answer: {e}", args.url),
    }
}

//! `cvtk`: the command-line program. It parses arguments, calls the cvtk crates
//! and prints; no logic lives here that a library user would need.
//!
//! Exit codes: 0 success, 1 runtime error (the message says what to do next),
//! 2 usage error (bad flags or arguments).

mod commands;
mod output;
mod secret;

use std::process::ExitCode;

use clap::Parser;

/// Image classification by transfer learning: datasets, models, evaluation, deployment.
#[derive(Parser, Debug)]
#[command(
    name = "cvtk",
    version,
    about = "Image classification by transfer learning: datasets, augmentation, models, evaluation, deployment",
    long_about = None,
    propagate_version = true,
    after_help = "The workflow: sample-data (or your own folder per label) -> dataset split -> augment -> train -> \
                  evaluate -> deploy create -> loadtest. Every subcommand has --help; most have --json.\n\
                  Exit codes: 0 success, 1 runtime error (the message says what to do next), 2 usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    init_logging();
    // A deployment's server: `cvtk deploy create` starts this program again
    // to run the service (cvtk_deploy::Deployment::deploy).
    cvtk_deploy::serve_if_deployed();
    let json = asked_for_json(std::env::args_os().skip(1));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e, json),
    };
    // Long work shows indicatif bars on stderr (when it is a terminal).
    cvtk_core::progress::set_reporter(cvtk_core::progress::TerminalProgress);
    match commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // Flags parsed by a command itself (`deploy create -- FLAGS`), or a
        // value the library's config refused: a usage error.
        Err(e) => match e.downcast_ref::<clap::Error>() {
            Some(usage) => clap_error(usage, json),
            // A program that asked for JSON gets its error as JSON too, on
            // stderr, so that stdout holds only what the command printed.
            None if json => {
                eprintln!("{}", serde_json::json!({ "error": error_message(&e) }));
                ExitCode::from(1)
            }
            None => {
                eprintln!("error: {}", error_message(&e));
                ExitCode::from(1)
            }
        },
    }
}

/// A usage error (exit 2; help and version exit 0 on stdout), as JSON on
/// stderr when the command line asked for JSON.
fn clap_error(e: &clap::Error, json: bool) -> ExitCode {
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    if json && e.use_stderr() {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        eprintln!("{}", serde_json::json!({ "error": first.strip_prefix("error: ").unwrap_or(first) }));
    } else {
        let _ = e.print();
    }
    ExitCode::from(code)
}

/// Whether the command line has `--json` as a flag: before any `--`, after
/// which arguments are passed on (to `cvtk serve`, say). Clap has parsed it
/// already, so a `--json` there is the flag.
fn asked_for_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.take_while(|a| a != "--").any(|a| a == "--json")
}

/// The error and its causes on one line, each cause once: the library errors
/// already print their source (an I/O error after the path), so a cause whose
/// text is there already is not repeated.
fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Logs go to stderr through `tracing`; `RUST_LOG` sets the level (default: warnings).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal, and not there when NO_COLOR is set
    // (no-color.org): a log piped to a file or another program gets plain
    // text, not escape codes.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !no_color;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_asked_for_by_the_flag_before_any_double_dash() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>().into_iter();
        assert!(asked_for_json(args(&["train", "d", "--json"])));
        assert!(!asked_for_json(args(&["train", "d"])));
        assert!(!asked_for_json(args(&["deploy", "create", "x", "--", "--json"])));
    }

    #[test]
    fn train_help_states_the_defaults_the_library_uses() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let help = cli.find_subcommand_mut("train").unwrap().render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let schedule = cvtk_model::LrSchedule::default();
        assert!(
            help.contains(&format!("\"{schedule}\", the original's {}-epoch schedule", schedule.epochs())),
            "{help}"
        );
        for arch in cvtk_model::Architecture::ALL {
            let name = arch.name().trim_start_matches("efficientnet-");
            let size = arch.default_image_size();
            let said = help.contains(&format!("{size} for {name}"))
                || (name.starts_with("resnet")
                    && help.contains(&format!("{size} for efficientnet-lite0 and the resnets")))
                || (name == "lite0" && help.contains(&format!("{size} for efficientnet-lite0")));
            assert!(said, "--image-size's help does not give {} for {}: {help}", size, arch.name());
        }
    }

    /// What `cvtk ARGS` exits with, run in this process (parsing, then the
    /// command), and its error text.
    fn outcome(args: &[&str]) -> (u8, String) {
        let argv = std::iter::once("cvtk").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Err(e) => (u8::try_from(e.exit_code()).unwrap_or(2), e.to_string()),
            Ok(cli) => match commands::run(cli.command) {
                Ok(()) => (0, String::new()),
                Err(e) => match e.downcast_ref::<clap::Error>() {
                    Some(ce) => (u8::try_from(ce.exit_code()).unwrap_or(2), ce.to_string()),
                    None => (1, error_message(&e)),
                },
            },
        }
    }

    /// Every typed flag of every command refuses a bad value as a usage
    /// error (exit 2) naming the flag or field, before any work: nothing is
    /// written. In process, so the 48 cases take milliseconds;
    /// `tests/usage.rs` checks the exit status and stdout of real runs.
    #[test]
    fn a_bad_value_of_every_typed_flag_of_every_command_is_a_usage_error_that_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let (data, manifest, out, model, home) = (p("data"), p("m.json"), p("out"), p("no-model"), p("home"));
        let (jsonl, txt, onnx) = (p("out/s.jsonl"), p("out/scores.txt"), p("out/x.onnx"));
        let (d, m, o, md, h) = (data.as_str(), manifest.as_str(), out.as_str(), model.as_str(), home.as_str());
        let (jsonl, txt, onnx) = (jsonl.as_str(), txt.as_str(), onnx.as_str());
        let batch = ["deploy", "k8s-batch", "job", "--out", o, "--claim", "c", "--output", "/data/out"];
        let train = ["train", m, "--out", o];
        let cases: Vec<(Vec<&str>, Vec<&str>, &str)> = vec![
            // Devices, engines, base models: typed on every command that takes them.
            (train.to_vec(), vec!["--device", "gpu"], "--device"),
            (train.to_vec(), vec!["--base-model", "resnet9"], "--base-model"),
            (train.to_vec(), vec!["--engine", "tensorrt"], "--engine"),
            (train.to_vec(), vec!["--classifier", "knn"], "--classifier"),
            (train.to_vec(), vec!["--lr-per-mb", "fast"], "--lr-per-mb"),
            (train.to_vec(), vec!["--mb-size", "0"], "--mb-size"),
            // Checked by the library's config, before any work.
            (train.to_vec(), vec!["--momentum", "2"], "invalid momentum"),
            (train.to_vec(), vec!["--calibrate", "--calibration-fraction", "0.9"], "calibration_holdout"),
            (train.to_vec(), vec!["--classifier", "svm", "--c=-1"], "invalid c:"),
            (train.to_vec(), vec!["--base-model", "small-cnn", "--image-size", "3"], "--image-size"),
            (vec!["predict", d], vec!["--device", "cuda:x"], "--device"),
            (vec!["predict", d], vec!["--base-model", "vgg16"], "--base-model"),
            (vec!["predict", d], vec!["--engine", "tensorrt"], "--engine"),
            (vec!["predict", d], vec!["--top", "0"], "--top"),
            (vec!["audit", d], vec!["--folds", "1"], "--folds"),
            (vec!["audit", d], vec!["--base-model", "resnet9"], "--base-model"),
            (vec!["audit", d], vec!["--device", "gpu"], "--device"),
            (vec!["audit", d], vec!["--engine", "tensorrt"], "--engine"),
            (vec!["evaluate", m, "--model", md], vec!["--split", "validation"], "--split"),
            (vec!["evaluate", m, "--model", md], vec!["--device", "gpu"], "--device"),
            (vec!["evaluate", m, "--model", md], vec!["--mb-size", "0"], "--mb-size"),
            (vec!["score", m, "--out", jsonl], vec!["--part", "validation"], "--part"),
            (vec!["score", m], vec!["--out", txt], "--out"),
            (vec!["score", m, "--out", jsonl], vec!["--shard", "4/4"], "--shard"),
            (vec!["score", m, "--out", jsonl], vec!["--batch", "0"], "--batch"),
            (vec!["score", m, "--out", jsonl], vec!["--top", "0"], "--top"),
            (vec!["score", m, "--out", jsonl], vec!["--device", "gpu"], "--device"),
            (vec!["serve", "--model", md], vec!["--device", "gpu"], "--device"),
            (vec!["serve", "--model", md], vec!["--engine", "tensorrt"], "--engine"),
            (vec!["serve", "--model", md], vec!["--max-batch", "0"], "max_batch"),
            (vec!["serve", "--model", md], vec!["--no-auth", "--host", "0.0.0.0"], "loopback"),
            (vec!["annotate", m], vec!["--device", "gpu"], "--device"),
            (vec!["annotate", m], vec!["--engine", "tensorrt"], "--engine"),
            (vec!["export", "--out", onnx], vec!["--format", "tflite"], "--format"),
            (vec!["export", "--out", onnx], vec!["--device", "gpu"], "--device"),
            (vec!["augment", m, "--pipeline", "flip_crop", "--out", o], vec!["--part", "validation"], "--part"),
            (vec!["dataset", "split", d, "--out", o], vec!["--train-size", "1.5"], "--train-size"),
            (vec!["health", "http://127.0.0.1:9/health"], vec!["--timeout", "0"], "--timeout"),
            (vec!["deploy", "create", "digits", "--model", md, "--home", h], vec!["--device", "gpu"], "--device"),
            (vec!["deploy", "create", "Digits!", "--model", md, "--home", h], vec![], "invalid deployment name"),
            // The service flags after `--` are `cvtk serve`'s, refused alike.
            (
                vec!["deploy", "create", "digits", "--model", md, "--home", h, "--"],
                vec!["--max-batch", "0"],
                "max_batch",
            ),
            (vec!["deploy", "create", "digits", "--model", md, "--home", h, "--"], vec!["--engine", "x"], "--engine"),
            (vec!["deploy", "score", "digits", "a.png", "--home", h], vec!["--resize", "224"], "--resize"),
            (vec!["deploy", "show", "--home", h], vec!["Digits!"], "invalid deployment name"),
            (batch.to_vec(), vec!["--input", "/data/in", "--shards", "2", "--format", "xml"], "--format"),
            (batch.to_vec(), vec!["--input", "/data/in", "--shards", "2", "--memory", "lots"], "--memory"),
            (batch.to_vec(), vec!["--input", "/data/in", "--shards", "0"], "--shards"),
            (batch.to_vec(), vec!["--input", "in", "--shards", "2"], "/data"),
            (
                vec!["deploy", "k8s", "digits", "--out", o, "--home", h],
                vec!["--memory-limit", "lots"],
                "--memory-limit",
            ),
            (
                vec!["deploy", "k8s", "digits", "--out", o, "--home", h],
                vec!["--min-replicas", "5", "--max-replicas", "2"],
                "replicas",
            ),
            (vec!["deploy", "k8s", "digits", "--out", o, "--home", h], vec!["--cpu-limit", "0"], "--cpu-limit"),
        ];
        for (base, bad, says) in &cases {
            let args: Vec<&str> = base.iter().chain(bad.iter()).copied().collect();
            let (code, text) = outcome(&args);
            assert_eq!(code, 2, "cvtk {}: {text}", args.join(" "));
            assert!(text.contains(says), "cvtk {}: the error does not say '{says}': {text}", args.join(" "));
        }
        assert!(!dir.path().join("out").exists() && !dir.path().join("home").exists(), "a refused command wrote");
    }

    /// The leaf commands under `cmd`, with their paths (`deploy create`).
    fn leaves(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|c| c.get_name() != "help").collect();
        if subs.is_empty() {
            out.push((path.trim().to_string(), cmd.clone()));
        }
        for sub in subs {
            leaves(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_command_but_serve_and_annotate_has_json_as_the_readme_says() {
        use clap::CommandFactory;
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        assert!(
            readme.contains("all but `serve` and `annotate` (which run until\nstopped) have `--json`"),
            "the README's claim changed: update this test with it"
        );
        let mut all = Vec::new();
        leaves(&Cli::command(), "", &mut all);
        assert!(all.len() >= 20, "{:?}", all.iter().map(|(p, _)| p).collect::<Vec<_>>());
        let without: Vec<&str> = all
            .iter()
            .filter(|(_, c)| !c.get_arguments().any(|a| a.get_long() == Some("json")))
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(without, ["annotate", "serve"], "commands without --json");
    }
}

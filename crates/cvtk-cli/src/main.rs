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
    cvtk_dataset::progress::set_reporter(cvtk_dataset::progress::TerminalProgress);
    match commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // Flags parsed by a command itself (`deploy create -- FLAGS`), or a
        // value the library's config refused: a usage error.
        Err(e) if e.downcast_ref::<clap::Error>().is_some() => {
            e.downcast_ref::<clap::Error>().map_or(ExitCode::from(2), |ce| clap_error(ce, json))
        }
        Err(e) if json => {
            // A program that asked for JSON gets its error as JSON too, on
            // stderr, so that stdout holds only what the command printed.
            eprintln!("{}", serde_json::json!({ "error": error_message(&e) }));
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {}", error_message(&e));
            ExitCode::from(1)
        }
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
}

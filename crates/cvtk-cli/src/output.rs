//! Printing helpers shared by the subcommands: JSON for scripts, text for people.

use serde::Serialize;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A flag's value that the library refused (a config's check): a usage error,
/// so `cvtk` exits 2 as it does for values clap itself refuses.
pub fn usage_error(e: impl std::fmt::Display) -> clap::Error {
    clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n"))
}

/// A count flag that must be at least 1 (`--batch`, `--mb-size`, ...).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A number of seconds above zero.
pub fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        Ok(_) => Err("must be a positive number of seconds".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A fraction strictly between 0 and 1.
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        Ok(_) => Err("must be between 0 and 1 (exclusive)".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A deployment's name ([`cvtk_deploy::check_name`]): it becomes a Kubernetes
/// name and a folder.
pub fn deployment_name(s: &str) -> Result<String, String> {
    cvtk_deploy::check_name(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

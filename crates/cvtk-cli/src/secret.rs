//! Secrets (service keys, image-search keys) come from a file or the
//! environment, never from the command line, where every user of the machine
//! sees them (`ps`, `/proc/PID/cmdline`, shell history); and cvtk never prints
//! them. A hidden flag under the old name refuses with what to do instead.

use std::path::Path;

/// A value parser for the retired `--key`-style flags: always refuses (a usage
/// error, exit code 2), saying where the secret goes instead and without
/// repeating the value. `file_flag` and `env` name the alternatives.
pub fn refuse(file_flag: &'static str, env: &'static str) -> Refuse {
    Refuse { file_flag, env }
}

/// See [`refuse`].
#[derive(Clone, Copy, Debug)]
pub struct Refuse {
    file_flag: &'static str,
    env: &'static str,
}

impl clap::builder::TypedValueParser for Refuse {
    type Value = String;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        _value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let flag = arg.and_then(|a| a.get_long()).unwrap_or("key");
        Err(clap::Error::raw(
            clap::error::ErrorKind::ValueValidation,
            format!(
                "--{flag} is not taken: a key on the command line is visible to every user of this machine (ps); \
                 put it in a file and pass {} FILE, or set {}\n",
                self.file_flag, self.env
            ),
        ))
    }
}

/// The secret from `file` (its first line) or else the environment variable
/// `env`; None when neither gives a non-empty one.
pub fn read(file: Option<&Path>, env: &str) -> anyhow::Result<Option<String>> {
    if let Some(file) = file {
        return Ok(Some(cvtk_deploy::read_key_file(file)?));
    }
    Ok(std::env::var(env).ok().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()))
}

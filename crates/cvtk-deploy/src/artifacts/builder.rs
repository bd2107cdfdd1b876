//! The container tool that builds an image from a context: podman, buildah or
//! docker, whichever answers first (a docker client without a running engine
//! does not answer).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Tried in this order when no tool is named.
pub const CANDIDATES: [&str; 3] = ["podman", "buildah", "docker"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Podman,
    Buildah,
    Docker,
}

/// A container tool that answered.
#[derive(Clone, Debug)]
pub struct Builder {
    program: PathBuf,
    kind: Kind,
}

impl Builder {
    /// `program` when given, otherwise the first of [`CANDIDATES`] that
    /// answers; `Err` says why each one did not.
    pub fn find(program: Option<&Path>) -> Result<Builder, String> {
        let candidates: Vec<PathBuf> = match program {
            Some(p) => vec![p.to_path_buf()],
            None => CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        let mut why = Vec::new();
        for program in candidates {
            let name = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let kind = if name.contains("podman") {
                Kind::Podman
            } else if name.contains("buildah") {
                Kind::Buildah
            } else {
                Kind::Docker
            };
            let probe: &[&str] = match kind {
                Kind::Podman => &["info", "--format", "{{.Version.Version}}"],
                Kind::Buildah => &["version"],
                Kind::Docker => &["info", "--format", "{{.ServerVersion}}"],
            };
            match Command::new(&program).args(probe).output() {
                Ok(o) if o.status.success() => return Ok(Builder { program, kind }),
                Ok(o) => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    why.push(format!("{name}: {}", err.lines().next().unwrap_or("no answer").trim()))
                }
                Err(e) => why.push(format!("{name}: {e}")),
            }
        }
        Err(why.join("; "))
    }

    /// The tool's program name, as run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Whether `image` is in the tool's local store.
    pub fn has_image(&self, image: &str) -> bool {
        let args: &[&str] = match self.kind {
            Kind::Podman => &["image", "exists", image],
            Kind::Buildah => &["inspect", "--type", "image", image],
            Kind::Docker => &["image", "inspect", image],
        };
        Command::new(&self.program).args(args).output().map(|o| o.status.success()).unwrap_or(false)
    }

    /// Builds `context` into `image`, the tool's own output going to this
    /// process's stderr. podman and buildah build with chroot isolation
    /// (works unprivileged and inside other containers) and in Docker's image
    /// format, which keeps the HEALTHCHECK.
    pub fn build(&self, image: &str, context: &Path) -> Result<(), String> {
        let mut command = Command::new(&self.program);
        match self.kind {
            Kind::Podman => command.args(["build", "--isolation", "chroot", "--format", "docker"]),
            Kind::Buildah => command.args(["bud", "--isolation", "chroot", "--format", "docker"]),
            Kind::Docker => command.arg("build"),
        };
        let status =
            command.arg("-t").arg(image).arg(context).stdout(std::process::Stdio::from(std::io::stderr())).status();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("{} build failed ({s}); see its output above", self.program.display())),
            Err(e) => Err(format!("cannot run {}: {e}", self.program.display())),
        }
    }

    /// The image's size in bytes, as the tool reports it.
    pub fn image_size(&self, image: &str) -> Option<u64> {
        let args: &[&str] = match self.kind {
            Kind::Podman | Kind::Docker => &["image", "inspect", "--format", "{{.Size}}", image],
            Kind::Buildah => return None,
        };
        let out = Command::new(&self.program).args(args).output().ok().filter(|o| o.status.success())?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }
}

//! [`Deployment`]: runs a scoring server as a background process and records it
//! under the storage context, the counterpart of the original's
//! `AMLDeployment` (deploy, list_deployment, is_existing_service, delete,
//! delete_if_service_exist, score_image).
//!
//! Each deployment has a folder `<persistent>/deployments/NAME/` holding
//! `deployment.json` (the record), `serve.json` (the [`ServiceSpec`] its server
//! runs), `key` (the service key, mode 0600) and `server.log` (the service's
//! output). The settings travel as that typed file, not as command-line flags.
//!
//! The server is the deploying program itself when it calls
//! [`serve_if_deployed`] first in `main` (the `cvtk` program does): `deploy`
//! starts it again with `CVTK_SERVE_SPEC=serve.json`, and that call runs the
//! service, so a program built on this crate deploys without the `cvtk`
//! program installed. Otherwise (or with [`DeployConfig::server_exe`] or
//! `$CVTK_EXE`) the server is `cvtk serve --config serve.json`.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cvtk_core::StorageContext;
use serde::{Deserialize, Serialize};

use crate::api::{ItemResult, Parameters};
use crate::{generate_key, Client, Error, ImageInput, Result, ServeConfig};

/// Everything a scoring server needs, as one file: the model, the device and
/// the service's settings. What a deployment writes as `serve.json` and
/// `cvtk serve --config FILE` runs ([`ServiceSpec::run`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// The model folder to serve.
    pub model_dir: PathBuf,
    /// Device for the model: `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Where to write the bound URL once listening, if anywhere.
    #[serde(default)]
    pub addr_file: Option<PathBuf>,
    /// How the service listens, authenticates, limits and batches.
    pub serve: ServeConfig,
}

impl ServiceSpec {
    /// Reads a spec file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Record { path: path.to_path_buf(), reason: e.to_string() })
    }

    /// Writes it atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(cvtk_core::write_json_atomic(path, self)?)
    }

    /// Checks the settings and runs the service until SIGTERM or Ctrl-C
    /// ([`crate::serve`]).
    pub fn run(&self) -> Result<()> {
        let config = self.serve.check()?;
        let device: cvtk_model::DeviceChoice =
            self.device.parse().map_err(|e: cvtk_model::Error| Error::config("device", e.to_string()))?;
        crate::serve(config, &self.model_dir, device, self.addr_file.clone())
    }
}

/// The environment variable that hands a program started by
/// [`Deployment::deploy`] the service file it is to run.
pub const SERVE_SPEC_ENV: &str = "CVTK_SERVE_SPEC";

/// Whether this program called [`serve_if_deployed`]: it can then be its own
/// deployments' server.
static ENTRY_POINT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The server entry point of a program that deploys: call it first in
/// `main` (a plain `fn main`, before any async runtime starts: the service
/// runs its own). In a process [`Deployment::deploy`] started, it runs the service
/// it was handed until SIGTERM or Ctrl-C and exits (status 1, the error on
/// stderr, if the service cannot run); anywhere else it returns at once, and
/// from then on `deploy` starts this very program as the server.
///
/// ```no_run
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     cvtk_deploy::serve_if_deployed();
///     let config = cvtk_deploy::DeployConfig::default();
///     let record = cvtk_deploy::Deployment::new("digits", "model", config)
///         .deploy(&cvtk_core::StorageContext::default())?;
///     println!("{}", record.url);
///     Ok(())
/// }
/// ```
pub fn serve_if_deployed() {
    ENTRY_POINT.store(true, std::sync::atomic::Ordering::Relaxed);
    let Some(spec) = std::env::var_os(SERVE_SPEC_ENV).filter(|s| !s.is_empty()) else { return };
    // The service's warnings and errors go to its log (stderr), as `cvtk
    // serve`'s do, unless the program set up its own logging already.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
    let code = match ServiceSpec::read(Path::new(&spec)).and_then(|s| s.run()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// How a deployment is started.
#[derive(Clone, Debug, PartialEq)]
pub struct DeployConfig {
    /// Device for the model (`cpu`, `cuda`, `cuda:N`, `auto`). By default, `auto`.
    pub device: String,
    /// The `cvtk` program to run as the server. By default, `$CVTK_EXE`; else
    /// the deploying program itself when it called [`serve_if_deployed`];
    /// else a `cvtk` next to (or one folder above) the running program, else
    /// `cvtk` on `PATH`.
    pub server_exe: Option<PathBuf>,
    /// The service's settings: address (by default `127.0.0.1`, port 0 for a
    /// free one), limits and batching. The deployment makes its key.
    pub serve: ServeConfig,
    /// How long to wait for `/ready`. By default, 120 s.
    pub ready_timeout: Duration,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            device: "auto".into(),
            server_exe: None,
            serve: ServeConfig { port: 0, ..ServeConfig::default() },
            ready_timeout: Duration::from_secs(120),
        }
    }
}

/// A model to deploy under a name: the counterpart of `AMLDeployment(...)`.
#[derive(Clone, Debug)]
pub struct Deployment {
    name: String,
    model_dir: PathBuf,
    config: DeployConfig,
}

/// What is recorded about a running deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// The deployment's name.
    pub name: String,
    /// Its base URL (`http://IP:PORT`); scoring is `POST {url}/score`.
    pub url: String,
    /// The service's process id.
    pub pid: u32,
    /// Which process that id named when it was recorded: the boot's id and
    /// the process's start time (Linux's `/proc`), so that a pid reused by
    /// another process (after a reboot, or once the server exited) is never
    /// signalled. None in records from before it was kept: the process's
    /// executable is compared instead.
    #[serde(default)]
    pub process: Option<String>,
    /// The model folder it serves.
    pub model_dir: PathBuf,
    /// When it was started (seconds since the Unix epoch).
    pub created_unix: u64,
    /// The file holding its service key.
    pub key_file: PathBuf,
    /// Its log.
    pub log_file: PathBuf,
    /// The program that runs it.
    pub server_exe: PathBuf,
    /// The name its model answers to under `/v2/models/NAME` (the
    /// deployment's unless `--model-name` said otherwise). None in records
    /// from before it was kept: [`Self::v2_model_name`] gives the
    /// deployment's name then.
    #[serde(default)]
    pub model_name: Option<String>,
}

/// Whether a recorded deployment is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    /// The process runs and `/health` answers.
    Running,
    /// The process runs but `/health` does not answer.
    Unresponsive,
    /// The process is gone.
    Dead,
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeploymentStatus::Running => "running",
            DeploymentStatus::Unresponsive => "unresponsive",
            DeploymentStatus::Dead => "dead",
        })
    }
}

/// Children started by this process, kept so they can be reaped (a dead child
/// of a living parent stays a zombie until waited for).
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn reap() {
    if let Ok(mut children) = CHILDREN.lock() {
        children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }
}

/// Checks a deployment name: it becomes a Kubernetes object name and a folder.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName { name: name.to_string() })
    }
}

fn record_dir(storage: &StorageContext, name: &str) -> PathBuf {
    storage.deployments_dir().join(name)
}

fn record_path(storage: &StorageContext, name: &str) -> PathBuf {
    record_dir(storage, name).join("deployment.json")
}

/// Finds the `cvtk` program (see [`DeployConfig::server_exe`]).
pub(crate) fn find_server_exe(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Error::config("server_exe", format!("{} is not a file", p.display())))
        };
    }
    if let Some(p) = std::env::var_os("CVTK_EXE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let name = format!("cvtk{}", std::env::consts::EXE_SUFFIX);
    if let Ok(me) = std::env::current_exe() {
        if me.file_name().is_some_and(|n| n == name.as_str()) {
            return Ok(me);
        }
        // target/release/cvtk beside target/release/examples/x or target/debug/deps/x.
        for dir in me.ancestors().skip(1).take(2) {
            let candidate = dir.join(&name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(found) = std::env::split_paths(&path).map(|d| d.join(&name)).find(|p| p.is_file()) {
            return Ok(found);
        }
    }
    Err(Error::config(
        "server_exe",
        "cannot find the cvtk program; build it (`cargo build --release -p cvtk-cli`) and put it on PATH, or set CVTK_EXE",
    ))
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n");
    if tail.is_empty() {
        format!("(log {} is empty)", path.display())
    } else {
        format!("log {}:\n{tail}", path.display())
    }
}

impl Deployment {
    /// A deployment of the model in `model_dir` under `name`.
    pub fn new(name: impl Into<String>, model_dir: impl Into<PathBuf>, config: DeployConfig) -> Self {
        Deployment { name: name.into(), model_dir: model_dir.into(), config }
    }

    /// Starts the service in the background, waits until `/ready` answers and
    /// records it. A dead deployment of the same name is replaced; a running
    /// one is an error.
    pub fn deploy(&self, storage: &StorageContext) -> Result<DeploymentRecord> {
        check_name(&self.name)?;
        if !cvtk_model::is_model_dir(&self.model_dir) {
            return Err(Error::config(
                "model_dir",
                format!(
                    "{} is not a cvtk model folder (no model.json); train one with `cvtk train`",
                    self.model_dir.display()
                ),
            ));
        }
        let model_dir = self.model_dir.canonicalize().map_err(|e| Error::io("cannot resolve", &self.model_dir, e))?;
        if let Ok(old) = get_deployment(storage, &self.name) {
            match old.status() {
                DeploymentStatus::Dead => old.remove_files(storage)?,
                _ => return Err(Error::AlreadyRunning { name: self.name.clone(), url: old.url }),
            }
        }
        if std::env::var_os(SERVE_SPEC_ENV).is_some_and(|s| !s.is_empty()) {
            return Err(Error::config(
                "server_exe",
                format!(
                    "this process was started to serve a deployment ({SERVE_SPEC_ENV} is set) and deploys \
                     instead: call cvtk_deploy::serve_if_deployed() first in main"
                ),
            ));
        }
        // This program is its own server when it has the entry point and
        // nothing else was asked for.
        let itself = self.config.server_exe.is_none()
            && std::env::var_os("CVTK_EXE").is_none_or(|v| v.is_empty())
            && ENTRY_POINT.load(std::sync::atomic::Ordering::Relaxed);
        // A program replaced on disk since it started (rebuilt, upgraded)
        // cannot be started again: then `cvtk` serves, as for any other.
        let me = std::env::current_exe().ok().filter(|p| p.is_file());
        let (exe, itself) = match me {
            Some(me) if itself => (me, true),
            _ => (find_server_exe(self.config.server_exe.as_deref())?, false),
        };
        let dir = record_dir(storage, &self.name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let key_file = dir.join("key");
        cvtk_core::write_atomic_private(&key_file, generate_key().as_bytes())?;
        let addr_file = dir.join("address");
        let _ = std::fs::remove_file(&addr_file);
        let spec = ServiceSpec {
            model_dir: model_dir.clone(),
            device: self.config.device.clone(),
            addr_file: Some(addr_file.clone()),
            // The model answers under /v2/models/NAME, NAME the deployment's, as in its image and on KServe.
            serve: ServeConfig {
                keys: Vec::new(),
                key_file: Some(key_file.clone()),
                model_name: self.config.serve.model_name.clone().or_else(|| Some(self.name.clone())),
                ..self.config.serve.clone()
            },
        };
        // Refused here, with the field named, rather than by a server that exits.
        spec.serve.check()?;
        let spec_file = dir.join("serve.json");
        spec.write(&spec_file)?;
        let log_file = dir.join("server.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .map_err(|e| Error::io("cannot open", &log_file, e))?;
        let log2 = log.try_clone().map_err(|e| Error::io("cannot open", &log_file, e))?;
        let mut cmd = Command::new(&exe);
        if itself {
            cmd.env(SERVE_SPEC_ENV, &spec_file);
        } else {
            cmd.arg("serve").arg("--config").arg(&spec_file).env_remove(SERVE_SPEC_ENV);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log2));
        // Its own process group: a Ctrl-C in the deploying terminal leaves it running.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| Error::StartFailed {
            name: self.name.clone(),
            reason: format!("cannot run {}: {e}", exe.display()),
        })?;
        let pid = child.id();
        let started = Instant::now();
        let fail = |child: &mut Child, reason: String| {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            Error::StartFailed { name: self.name.clone(), reason }
        };
        let url = loop {
            if let Ok(Some(status)) = child.try_wait() {
                let reason = format!("the service exited ({status}); {}", log_tail(&log_file));
                let _ = std::fs::remove_dir_all(&dir);
                return Err(Error::StartFailed { name: self.name.clone(), reason });
            }
            if started.elapsed() > self.config.ready_timeout {
                let reason = format!("not ready after {:?}; {}", self.config.ready_timeout, log_tail(&log_file));
                return Err(fail(&mut child, reason));
            }
            if let Ok(url) = std::fs::read_to_string(&addr_file) {
                let client = match Client::new(url.trim(), None) {
                    Ok(c) => c,
                    Err(e) => return Err(fail(&mut child, e.to_string())),
                };
                if client.ready() {
                    break url.trim().to_string();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let record = DeploymentRecord {
            name: self.name.clone(),
            url,
            pid,
            process: process_identity(pid),
            model_dir,
            created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            key_file,
            log_file,
            server_exe: exe,
            model_name: spec.serve.model_name.clone(),
        };
        let path = record_path(storage, &self.name);
        if let Err(e) = cvtk_core::write_json_atomic(&path, &record) {
            return Err(fail(&mut child, e.to_string()));
        }
        if let Ok(mut children) = CHILDREN.lock() {
            children.push(child);
        }
        tracing::info!("deployed {} at {} (pid {pid})", record.name, record.url);
        Ok(record)
    }
}

/// Whether process `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    reap();
    let Ok(raw) = i32::try_from(pid) else { return false };
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None).is_err() {
        return false;
    }
    // A zombie still has a pid; /proc says so (state Z), where there is a /proc.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// Which process `pid` is: this boot's id and the process's start time in
/// clock ticks since boot (`/proc/PID/stat`, field 22); None where there is no
/// `/proc` or no such process.
fn process_identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) start at field 3.
    let (_, rest) = stat.rsplit_once(") ")?;
    let started = rest.split_whitespace().nth(22 - 3)?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(format!("{}:{started}", boot.trim()))
}

impl DeploymentRecord {
    /// The name the model answers to under `/v2/models/NAME`.
    pub fn v2_model_name(&self) -> &str {
        self.model_name.as_deref().unwrap_or(&self.name)
    }

    /// The Open Inference Protocol's infer URL of the model.
    pub fn v2_infer_url(&self) -> String {
        format!("{}/v2/models/{}/infer", self.url, self.v2_model_name())
    }

    /// Whether the recorded process still runs and is still this
    /// deployment's server, not another process that got its pid.
    fn process_is_ours(&self) -> bool {
        if !process_alive(self.pid) {
            return false;
        }
        // Without /proc (macOS, say) there is nothing to compare: a live pid is taken as the server.
        if !Path::new("/proc/self/stat").exists() {
            return true;
        }
        match &self.process {
            Some(recorded) => process_identity(self.pid).as_deref() == Some(recorded.as_str()),
            None => {
                // A program replaced since it started (a rebuild, an upgrade) reads "PATH (deleted)".
                let exe = std::fs::read_link(format!("/proc/{}/exe", self.pid)).ok().map(|p| {
                    let text = p.to_string_lossy().into_owned();
                    PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text))
                });
                let recorded = std::fs::canonicalize(&self.server_exe).ok().or_else(|| Some(self.server_exe.clone()));
                exe.is_some() && exe == recorded
            }
        }
    }

    /// The service key.
    pub fn key(&self) -> Result<String> {
        Ok(std::fs::read_to_string(&self.key_file)
            .map_err(|e| Error::io("cannot read the key file", &self.key_file, e))?
            .trim()
            .to_string())
    }

    /// Whether the process runs and answers.
    pub fn status(&self) -> DeploymentStatus {
        if !self.process_is_ours() {
            return DeploymentStatus::Dead;
        }
        match Client::new(&self.url, None) {
            Ok(c) if c.health() => DeploymentStatus::Running,
            _ => DeploymentStatus::Unresponsive,
        }
    }

    /// A client of this deployment, with its key.
    pub fn client(&self) -> Result<Client> {
        Client::new(&self.url, Some(self.key()?))
    }

    /// Scores one image (path, URL or bytes), optionally resized first: the
    /// original's `score_image`.
    pub fn score_image(
        &self,
        image: impl Into<ImageInput>,
        resize_dims: Option<(u32, u32)>,
        parameters: Parameters,
    ) -> Result<ItemResult> {
        self.client()?.score_image(image, resize_dims, parameters)
    }

    /// Stops the service (SIGTERM, then SIGKILL after 10 s) and removes its
    /// record. A process that is no longer this deployment's server (its pid
    /// reused) is left alone; only the record goes.
    pub fn delete(&self, storage: &StorageContext) -> Result<()> {
        if self.process_is_ours() {
            stop_process(self.pid, Duration::from_secs(10), || self.process_is_ours());
        } else if process_alive(self.pid) {
            tracing::warn!(
                "{}: process {} is no longer this deployment's server (its pid was reused); not signalling it",
                self.name,
                self.pid
            );
        }
        self.remove_files(storage)
    }

    fn remove_files(&self, storage: &StorageContext) -> Result<()> {
        let dir = record_dir(storage, &self.name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove", dir, e)),
        }
    }
}

/// SIGTERM, then SIGKILL after `grace`, to `pid` while `ours` says it is
/// still the process meant.
fn stop_process(pid: u32, grace: Duration, ours: impl Fn() -> bool) {
    use nix::sys::signal::{kill, Signal};
    let Ok(raw) = i32::try_from(pid) else { return };
    let target = nix::unistd::Pid::from_raw(raw);
    if !ours() {
        return;
    }
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !ours() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    tracing::warn!("process {pid} ignored SIGTERM for {grace:?}; killing it");
    let _ = kill(target, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while process_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The recorded deployment `name`.
pub fn get_deployment(storage: &StorageContext, name: &str) -> Result<DeploymentRecord> {
    check_name(name)?;
    let path = record_path(storage, name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound { name: name.to_string() }),
        Err(e) => return Err(Error::io("cannot read", path, e)),
    };
    serde_json::from_str(&text).map_err(|e| Error::Record { path, reason: e.to_string() })
}

/// Every recorded deployment with its status, by name: the original's
/// `list_deployment`. Unreadable records are skipped with a warning.
pub fn list_deployments(storage: &StorageContext) -> Result<Vec<(DeploymentRecord, DeploymentStatus)>> {
    let dir = storage.deployments_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list", dir, e)),
    };
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        match get_deployment(storage, &name) {
            Ok(r) => {
                let s = r.status();
                out.push((r, s));
            }
            Err(e) => tracing::warn!("skipping deployment folder {name}: {e}"),
        }
    }
    Ok(out)
}

/// Whether a deployment `name` is recorded and its process alive.
pub fn is_existing_service(storage: &StorageContext, name: &str) -> bool {
    get_deployment(storage, name).is_ok_and(|r| r.status() != DeploymentStatus::Dead)
}

/// Deletes deployment `name` if it is recorded; true if there was one.
pub fn delete_if_service_exist(storage: &StorageContext, name: &str) -> Result<bool> {
    match get_deployment(storage, name) {
        Ok(r) => r.delete(storage).map(|()| true),
        Err(Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_kubernetes_names() {
        for ok in ["a", "flowers", "mnist-1", "a-b-c"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "Flowers", "1abc", "a_b", "a/b", "../x", "a-", &"a".repeat(64)] {
            assert!(matches!(check_name(bad), Err(Error::InvalidName { .. })), "{bad}");
        }
    }

    #[test]
    fn unknown_deployments_are_not_found_and_listing_an_empty_store_is_empty() {
        let tmp = std::env::temp_dir().join(format!("cvtk-deploy-test-{}", std::process::id()));
        let storage = StorageContext::under(&tmp);
        assert!(matches!(get_deployment(&storage, "nothing"), Err(Error::NotFound { .. })));
        assert!(!is_existing_service(&storage, "nothing"));
        assert!(!delete_if_service_exist(&storage, "nothing").unwrap());
        assert!(list_deployments(&storage).unwrap().is_empty());
    }

    #[test]
    fn a_record_whose_process_is_gone_is_dead() {
        // A child that has exited and been reaped: its pid is free.
        let mut child = Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let r = DeploymentRecord {
            name: "x".into(),
            url: "http://127.0.0.1:1".into(),
            pid: child.id(),
            process: None,
            model_dir: PathBuf::new(),
            created_unix: 0,
            key_file: PathBuf::new(),
            log_file: PathBuf::new(),
            server_exe: PathBuf::new(),
            model_name: None,
        };
        assert_eq!(r.status(), DeploymentStatus::Dead);
        assert_eq!(r.v2_infer_url(), "http://127.0.0.1:1/v2/models/x/infer", "an old record: the deployment's name");
    }

    #[test]
    fn a_pid_reused_by_another_process_is_dead_and_never_signalled() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = StorageContext::under(tmp.path());
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let record = |process: Option<String>| DeploymentRecord {
            name: "x".into(),
            url: "http://127.0.0.1:1".into(),
            pid,
            process,
            model_dir: PathBuf::new(),
            created_unix: 0,
            key_file: PathBuf::new(),
            log_file: PathBuf::new(),
            server_exe: PathBuf::from("/nonexistent/cvtk"),
            model_name: None,
        };
        let identity = process_identity(pid).expect("/proc on Linux");
        // Recorded as another process (another boot, or the server that had this pid before).
        for stranger in [record(Some(format!("{identity}0"))), record(None)] {
            assert_eq!(stranger.status(), DeploymentStatus::Dead);
            stranger.delete(&storage).unwrap();
            assert!(child.try_wait().unwrap().is_none(), "a process that was not the server was signalled");
        }
        // Recorded as this very process: stopped.
        record(Some(identity)).delete(&storage).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{status}");
    }

    #[test]
    fn private_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        cvtk_core::write_atomic_private(&p, b"secret").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "secret");
        // Replacing a world-readable file still leaves it owner-only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            cvtk_core::write_atomic_private(&p, b"new").unwrap();
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}

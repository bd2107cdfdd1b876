//! [`ServeConfig`]: how the scoring service listens, authenticates, limits and
//! batches, checked once into a [`ValidServeConfig`] that the service runs on;
//! [`UrlPolicy`]: whether and where it may fetch `image_url`s. Both serialise
//! (durations in milliseconds), so a deployment hands its server a typed file
//! rather than command-line flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cvtk_http::is_loopback;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Durations as whole milliseconds in files.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// The scoring service's default [`ServeConfig::max_pixels`]: 64 Mi pixels.
pub const DEFAULT_SERVE_MAX_PIXELS: u64 = 64 << 20;

/// Memory an 8-bit RGBA image takes per pixel while it decodes: the
/// decoder's buffer (4 bytes) twice (turning it upright by its EXIF
/// orientation copies it) and the 3-byte RGB copy made from it. An image is
/// charged `2 x (its decoded colour type's bytes) + 3` bytes a pixel against
/// [`ServeConfig::decode_memory_bytes`] (35 for 32-bit float RGBA); the
/// budget must hold the largest image at this rate.
pub const DECODE_BYTES_PER_PIXEL: u64 = 11;

/// Whether and where the service fetches images given by URL.
///
/// Off by default: a scoring server that fetches any URL it is handed is a
/// server-side request forgery hole. Turned on by listing the hosts allowed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlPolicy {
    /// Hosts (exact names, or `*.example.com` for sub-domains) whose URLs may be
    /// fetched. By default, none: `image_url` items get an error.
    pub allow_hosts: Vec<String>,
    /// Largest download accepted. By default, 20 MiB.
    pub max_bytes: u64,
    /// Time limit per download, connection included. By default, 10 s.
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    /// Fetch from private, loopback and link-local addresses and any port
    /// too. By default, false: an allowed host name is resolved, and only
    /// public addresses on ports 80 and 443 are fetched, with no proxy, so a
    /// name that resolves into the service's own network (or to a cloud
    /// metadata address) is refused. Turn on only for hosts inside a network
    /// the service is meant to reach.
    pub allow_private: bool,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        UrlPolicy {
            allow_hosts: Vec::new(),
            max_bytes: 20 << 20,
            timeout: Duration::from_secs(10),
            allow_private: false,
        }
    }
}

impl UrlPolicy {
    /// Whether any URL may be fetched at all.
    pub fn enabled(&self) -> bool {
        !self.allow_hosts.is_empty()
    }

    /// Whether `host` is on the allow-list.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow_hosts.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            match a.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => host == a,
            }
        })
    }
}

/// The scoring service's settings. Every field has a documented default.
/// Serialised (as a deployment's `serve.json`), the keys themselves are left
/// out: only [`Self::key_file`] travels.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to bind. By default, `127.0.0.1` (loopback only).
    pub host: String,
    /// Port to bind; 0 picks a free one. By default, 8080.
    pub port: u16,
    /// Service keys, any of which is accepted as `Authorization: Bearer KEY`.
    /// By default, none: with no [`Self::key_file`] either,
    /// [`ServeConfig::check`] refuses that unless `auth_disabled` is set.
    #[serde(skip)]
    pub keys: Vec<String>,
    /// A file whose first line is one more service key, read by
    /// [`ServeConfig::check`]. By default, none.
    pub key_file: Option<PathBuf>,
    /// Serve without a key. Only allowed on a loopback address. By default, false.
    pub auth_disabled: bool,
    /// Largest request body, in bytes; larger gets 413. By default, 32 MiB.
    pub max_body_bytes: usize,
    /// Largest number of images in one request. By default, 256.
    pub max_images_per_request: usize,
    /// Requests waiting for the model at most; more get 503 with Retry-After.
    /// By default, 64.
    pub queue_capacity: usize,
    /// Time limit for one request, waiting included; over it gets 504.
    /// By default, 30 s.
    #[serde(rename = "request_timeout_ms", with = "millis")]
    pub request_timeout: Duration,
    /// Dynamic batching: the most images scored in one forward pass. By
    /// default, 16 (larger CPU batches measured no faster; see docs/deployment.md).
    /// A request larger than this is still scored whole.
    pub max_batch: usize,
    /// Dynamic batching: how long the model waits for more requests to fill a
    /// batch. Zero turns batching off (each request is its own batch). By
    /// default, 2 ms.
    #[serde(rename = "max_delay_ms", with = "millis")]
    pub max_delay: Duration,
    /// Requests decoded at the same time; 0 means one per core. More requests
    /// wait for a slot, so decoding never crowds the model's threads off the
    /// cores. By default, 0.
    pub decode_threads: usize,
    /// Largest decoded image, in pixels (a decompression-bomb guard, checked
    /// from the header before decoding). By default,
    /// [`DEFAULT_SERVE_MAX_PIXELS`] (64 Mi pixels, an 8192 x 8192 image: far
    /// past any camera's; [`DECODE_BYTES_PER_PIXEL`] x that, 704 MiB, while
    /// it decodes as 8-bit RGBA).
    pub max_pixels: u64,
    /// Memory all decodings in flight may take together, in bytes, whatever
    /// `decode_threads` is: each image holds its share (see
    /// [`DECODE_BYTES_PER_PIXEL`]; at most the whole budget, so one larger
    /// image decodes alone) while it decodes, and waits until that much is
    /// free. At least `max_pixels` x [`DECODE_BYTES_PER_PIXEL`]. By default,
    /// 1 GiB (one 8-bit image of the largest size, or hundreds of photos, at
    /// once).
    pub decode_memory_bytes: u64,
    /// Fetching `image_url`s. By default, off.
    pub urls: UrlPolicy,
    /// Images waiting for or in the model at most, all requests together
    /// (each a decoded tensor: 0.6 MB at 224x224 RGB); a request that would
    /// pass it gets 503 with Retry-After. By default, 1024. At least
    /// `max_images_per_request`.
    pub max_queued_images: usize,
    /// Connections open at once at most; one more is closed at once. By
    /// default, 1024 (keep it under the process's file-descriptor limit).
    pub max_connections: usize,
    /// Time a connection gets to send a whole request head, also while idle
    /// between keep-alive requests; then it is closed. By default, 10 s.
    #[serde(rename = "header_timeout_ms", with = "millis")]
    pub header_timeout: Duration,
    /// The scoring engine. By default, `auto`: onnxruntime on the CPU when
    /// its library loads, libtorch otherwise (see [`cvtk_model::EngineChoice`]).
    /// When the engine asked for cannot run, the service stays up and
    /// `/ready` answers 503 with the reason.
    pub engine: cvtk_model::EngineChoice,
    /// Test-time augmentation. By default, None: what the model folder
    /// records (`cvtk train --tta`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tta: Option<cvtk_model::TtaMode>,
    /// The model's name in the Open Inference Protocol routes
    /// (`/v2/models/NAME/...`). By default, [`model_name_of`] the model
    /// folder (`"model"` for a classifier handed over in memory).
    pub model_name: Option<String>,
    /// The model's version there. By default, [`model_version_of`] the model
    /// folder (`"1"` for a classifier handed over in memory).
    pub model_version: Option<String>,
}

/// The default protocol name of the model in `dir`: its folder's name, in
/// the characters a URL path segment keeps as they are (others become `_`).
pub fn model_name_of(dir: &std::path::Path) -> String {
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        "model".into()
    } else {
        clean
    }
}

/// The default protocol version of the model in `dir`: the stamp of the
/// weights file its `model.json` names, which changes with every save (so a
/// retrained model has a new version), or `"1"` if it cannot be read.
pub fn model_version_of(dir: &std::path::Path) -> String {
    let weights = std::fs::read_to_string(dir.join("model.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("weights_file").and_then(|w| w.as_str()).map(str::to_string));
    weights
        .and_then(|w| w.strip_prefix("weights-").and_then(|w| w.split(['-', '.']).next()).map(str::to_string))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "1".into())
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            keys: Vec::new(),
            key_file: None,
            auth_disabled: false,
            max_body_bytes: 32 << 20,
            max_images_per_request: 256,
            queue_capacity: 64,
            request_timeout: Duration::from_secs(30),
            max_batch: 16,
            max_delay: Duration::from_millis(2),
            decode_threads: 0,
            max_pixels: DEFAULT_SERVE_MAX_PIXELS,
            decode_memory_bytes: 1 << 30,
            urls: UrlPolicy::default(),
            max_connections: 1024,
            max_queued_images: 1024,
            header_timeout: Duration::from_secs(10),
            engine: cvtk_model::EngineChoice::Auto,
            tta: None,
            model_name: None,
            model_version: None,
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys.
        f.debug_struct("ServeConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("keys", &format!("<{} keys>", self.keys.len()))
            .field("key_file", &self.key_file)
            .field("auth_disabled", &self.auth_disabled)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_images_per_request", &self.max_images_per_request)
            .field("queue_capacity", &self.queue_capacity)
            .field("request_timeout", &self.request_timeout)
            .field("max_batch", &self.max_batch)
            .field("max_delay", &self.max_delay)
            .field("decode_threads", &self.decode_threads)
            .field("max_pixels", &self.max_pixels)
            .field("decode_memory_bytes", &self.decode_memory_bytes)
            .field("urls", &self.urls)
            .field("max_connections", &self.max_connections)
            .field("max_queued_images", &self.max_queued_images)
            .field("header_timeout", &self.header_timeout)
            .field("engine", &self.engine)
            .field("tta", &self.tta)
            .field("model_name", &self.model_name)
            .field("model_version", &self.model_version)
            .finish()
    }
}

/// A [`ServeConfig`] whose every field was checked and whose key file was
/// read ([`ServeConfig::check`]): what the service runs on.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidServeConfig(ServeConfig);

impl ValidServeConfig {
    /// Fills in the protocol name and version of the model in `dir` where
    /// they were not given ([`model_name_of`], [`model_version_of`]).
    pub fn with_model_identity(self, dir: &std::path::Path) -> Self {
        let mut c = self.0;
        c.model_name = c.model_name.or_else(|| Some(model_name_of(dir)));
        c.model_version = c.model_version.or_else(|| Some(model_version_of(dir)));
        ValidServeConfig(c)
    }
}

impl std::ops::Deref for ValidServeConfig {
    type Target = ServeConfig;
    fn deref(&self) -> &ServeConfig {
        &self.0
    }
}

/// The first line of a key file, trimmed; an error when it is unreadable or empty.
pub fn read_key_file(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read the key file", path, e))?;
    let key = text.lines().next().unwrap_or("").trim().to_string();
    if key.is_empty() {
        return Err(Error::config(
            "key_file",
            format!("the key file {} is empty; put the key on its first line", path.display()),
        ));
    }
    Ok(key)
}

impl ServeConfig {
    /// Reads [`Self::key_file`] into the keys and checks every field; the
    /// error names the first bad one.
    pub fn check(&self) -> Result<ValidServeConfig> {
        let mut checked = self.clone();
        checked.keys = checked.keys.iter().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
        if let Some(f) = &self.key_file {
            checked.keys.push(read_key_file(f)?);
        }
        checked.validate()?;
        Ok(ValidServeConfig(checked))
    }

    fn validate(&self) -> Result<()> {
        if self.keys.is_empty() && !self.auth_disabled {
            return Err(Error::config(
                "keys",
                "no service key; pass --key-file FILE or set CVTK_SERVICE_KEY (or --no-auth on a loopback address)",
            ));
        }
        if let Some(k) =
            self.keys.iter().find(|k| k.len() < 16 || k.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(Error::config(
                "keys",
                format!(
                    "a key of {} characters; keys need 16 or more printable characters without spaces",
                    k.chars().count()
                ),
            ));
        }
        self.check_settings()
    }

    /// Checks every setting but the keys (which [`Self::check`] reads from
    /// files and the environment): what a command line can get wrong, so a
    /// command can refuse its flags before it starts anything.
    pub fn check_settings(&self) -> Result<()> {
        if self.host.trim().is_empty() {
            return Err(Error::config("host", "empty; use 127.0.0.1 for this machine only, 0.0.0.0 for all"));
        }
        if self.auth_disabled && !is_loopback(&self.host) {
            return Err(Error::config(
                "auth_disabled",
                format!("serving without a key is only allowed on a loopback address, not {}; give a key", self.host),
            ));
        }
        let positive = [
            ("max_body_bytes", self.max_body_bytes),
            ("max_images_per_request", self.max_images_per_request),
            ("queue_capacity", self.queue_capacity),
            ("max_batch", self.max_batch),
            ("max_connections", self.max_connections),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::config(field, "must be at least 1"));
        }
        if self.max_queued_images < self.max_images_per_request {
            return Err(Error::config(
                "max_queued_images",
                format!(
                    "{} is fewer than the {} images one request may hold (max_images_per_request)",
                    self.max_queued_images, self.max_images_per_request
                ),
            ));
        }
        if self.header_timeout.is_zero() {
            return Err(Error::config("header_timeout", "must be more than zero"));
        }
        for (field, value) in [("model_name", &self.model_name), ("model_version", &self.model_version)] {
            if let Some(v) = value {
                if v.is_empty()
                    || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    || v == "."
                    || v == ".."
                {
                    return Err(Error::config(
                        field,
                        format!("'{v}' must be letters, digits, '-', '_' or '.' (it is a URL path segment)"),
                    ));
                }
            }
        }
        if self.request_timeout.is_zero() {
            return Err(Error::config("request_timeout", "must be more than zero"));
        }
        if self.max_delay > Duration::from_secs(1) {
            return Err(Error::config(
                "max_delay",
                format!("{:?} is over 1 s; batching delays are a few milliseconds", self.max_delay),
            ));
        }
        if self.max_pixels == 0 {
            return Err(Error::config("max_pixels", "must be at least 1"));
        }
        let largest = self.max_pixels.saturating_mul(DECODE_BYTES_PER_PIXEL);
        if self.decode_memory_bytes < largest {
            return Err(Error::config(
                "decode_memory_bytes",
                format!(
                    "{} MiB cannot decode the largest image allowed ({} pixels take {} MiB); raise the decode \
                     memory (--decode-memory-mb) or lower max_pixels",
                    self.decode_memory_bytes >> 20,
                    self.max_pixels,
                    largest.div_ceil(1 << 20)
                ),
            ));
        }
        if self.urls.enabled() && (self.urls.max_bytes == 0 || self.urls.timeout.is_zero()) {
            return Err(Error::config("urls", "max_bytes and timeout must be more than zero"));
        }
        Ok(())
    }
}

/// The environment variable holding service keys, comma-separated.
pub const SERVICE_KEY_ENV: &str = "CVTK_SERVICE_KEY";

/// The service keys in [`SERVICE_KEY_ENV`] (comma-separated, trimmed, empty
/// ones dropped): every key a service accepts; a client sends the first.
pub fn keys_from_env() -> Vec<String> {
    std::env::var(SERVICE_KEY_ENV)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// The key a client sends: `key_file`'s first line, else the first key of
/// [`SERVICE_KEY_ENV`]; None when neither gives one.
pub fn client_key(key_file: Option<&Path>) -> Result<Option<String>> {
    match key_file {
        Some(file) => read_key_file(file).map(Some),
        None => Ok(keys_from_env().into_iter().next()),
    }
}

/// A new random service key: 32 bytes from rand's thread generator (a CSPRNG
/// seeded by the operating system), as 64 hex digits.
pub fn generate_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed() -> ServeConfig {
        ServeConfig { keys: vec![generate_key()], ..ServeConfig::default() }
    }

    #[test]
    fn defaults_with_a_key_are_valid() {
        keyed().check().unwrap();
    }

    #[test]
    fn no_key_is_refused_unless_auth_is_explicitly_off_on_loopback() {
        let e = ServeConfig::default().check().unwrap_err().to_string();
        assert!(e.contains("--key-file"), "{e}");
        ServeConfig { auth_disabled: true, ..ServeConfig::default() }.check().unwrap();
        let e = ServeConfig { auth_disabled: true, host: "0.0.0.0".into(), ..ServeConfig::default() }
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("loopback"), "{e}");
    }

    #[test]
    fn short_keys_and_zero_limits_are_refused_by_field() {
        let short = ServeConfig { keys: vec!["abc".into()], ..ServeConfig::default() };
        assert!(matches!(short.check(), Err(Error::InvalidConfig { field: "keys", .. })));
        for (cfg, field) in [
            (ServeConfig { queue_capacity: 0, ..keyed() }, "queue_capacity"),
            (ServeConfig { max_pixels: 1 << 20, decode_memory_bytes: 4 << 20, ..keyed() }, "decode_memory_bytes"),
            (ServeConfig { max_batch: 0, ..keyed() }, "max_batch"),
            (ServeConfig { max_body_bytes: 0, ..keyed() }, "max_body_bytes"),
            (ServeConfig { request_timeout: Duration::ZERO, ..keyed() }, "request_timeout"),
            (ServeConfig { max_delay: Duration::from_secs(5), ..keyed() }, "max_delay"),
        ] {
            match cfg.check() {
                Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_config_file_round_trips_without_the_keys_and_reads_its_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "k-0123456789abcdef-from-file\n").unwrap();
        let cfg = ServeConfig {
            keys: vec!["never-written-0123456789".into()],
            key_file: Some(key_file.clone()),
            max_delay: Duration::from_millis(7),
            urls: UrlPolicy { allow_hosts: vec!["images.example.com".into()], ..UrlPolicy::default() },
            ..ServeConfig::default()
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(!json.contains("never-written"), "keys stay out of files: {json}");
        assert!(json.contains("\"max_delay_ms\":7"), "{json}");
        let back: ServeConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ServeConfig { keys: Vec::new(), ..cfg });
        assert_eq!(back.check().unwrap().keys, vec!["k-0123456789abcdef-from-file".to_string()]);
        assert!(format!("{:?}", back.check().unwrap()).contains("<1 keys>"), "keys are never printed");
        std::fs::write(&key_file, "\n").unwrap();
        assert!(back.check().unwrap_err().to_string().contains("is empty"));
        let e = serde_json::from_str::<ServeConfig>(r#"{"max_batc": 3}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn url_allow_list_matches_hosts_and_wildcard_subdomains() {
        let p =
            UrlPolicy { allow_hosts: vec!["images.example.com".into(), "*.cdn.org".into()], ..UrlPolicy::default() };
        assert!(p.allows("images.example.com") && p.allows("IMAGES.example.com."));
        assert!(p.allows("a.cdn.org") && p.allows("a.b.cdn.org"));
        assert!(!p.allows("cdn.org") && !p.allows("evil.com") && !p.allows("images.example.com.evil.com"));
        assert!(!UrlPolicy::default().enabled());
    }

    #[test]
    fn generated_keys_are_long_and_distinct() {
        let (a, b) = (generate_key(), generate_key());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}

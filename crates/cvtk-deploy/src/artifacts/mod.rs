//! Container and cluster artifacts: a container build context for a model,
//! built into an image with no Python on a Debian base ([`build_docker_image`],
//! the original's `build_docker_image`; [`libraries`] finds the shared
//! libraries it carries, `builder` the tool that builds it), and Kubernetes
//! manifests ([`write_k8s_manifests`], [`write_k8s_batch_job`]) to scale past
//! one machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::deployment::{check_name, find_server_exe};
use crate::{Error, Result};

/// The port the service listens on inside a container.
pub const CONTAINER_PORT: u16 = 8080;

mod builder;
pub mod libraries;

pub use builder::CANDIDATES as CONTAINER_TOOLS;

/// The base image a context builds on unless told otherwise: Debian bookworm
/// made from Debian's packages by `scripts/make-base-image.sh` (mmdebstrap,
/// then `podman import`), so that building needs no container registry.
pub const DEFAULT_BASE_IMAGE: &str = "localhost/debian-base:bookworm";

/// The shell commands that make `image`, a `localhost/...:SUITE` base image,
/// from Debian's packages, in any folder, for `tool` (the container tool
/// that builds: `podman`, `buildah` or `docker`): what
/// `scripts/make-base-image.sh` does, for users who have only the cvtk
/// program. Installing the two tools needs root; the image is made by the
/// user who builds, since podman and buildah keep images per user
/// (mmdebstrap then works without root, in a user namespace). The tag names
/// the Debian suite (bookworm unless it is one word of lowercase letters).
/// One command a line.
pub fn base_image_recipe(image: &str, tool: &str) -> String {
    let suite = image
        .rsplit_once(':')
        .map(|(_, tag)| tag)
        .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_lowercase()))
        .unwrap_or("bookworm");
    let import = if tool == "docker" { "docker import" } else { "podman import" };
    format!(
        "sudo apt-get install -y mmdebstrap uidmap {}\n\
         t=$(mktemp -d) && mmdebstrap --variant=minbase {suite} \"$t/base.tar\" && {import} \"$t/base.tar\" {image}; rm -rf \"$t\"",
        if tool == "docker" { "docker.io" } else { "podman" }
    )
}

/// Where the image keeps the shared libraries it carries.
const IMAGE_LIB_DIR: &str = "/usr/local/lib/cvtk";

/// How the Docker build context is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerOptions {
    /// Image tag. By default, `cvtk-NAME:latest`.
    pub image: Option<String>,
    /// The `cvtk` program copied into the image. By default, found as for
    /// deployments: `$CVTK_EXE`, else a `cvtk` beside (or one folder above)
    /// the running program, else `cvtk` on `PATH`.
    pub server_exe: Option<PathBuf>,
    /// Base image: any Debian-like image whose glibc and libstdc++ are at
    /// least as new as the machine that built `cvtk` (Debian bookworm or
    /// newer for a build on bookworm). By default, [`DEFAULT_BASE_IMAGE`].
    pub base_image: String,
    /// Build the image after writing the context. By default, false.
    pub build: bool,
    /// The container tool. By default, the first of podman, buildah and
    /// docker that answers ([`CONTAINER_TOOLS`]).
    pub builder: Option<PathBuf>,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions {
            image: None,
            server_exe: None,
            base_image: DEFAULT_BASE_IMAGE.into(),
            build: false,
            builder: None,
        }
    }
}

/// What [`build_docker_image`] did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DockerBuild {
    /// The build context folder.
    pub context: PathBuf,
    /// The image tag.
    pub image: String,
    /// Whether the image was built.
    pub built: bool,
    /// The tool that built it, or how to build it.
    pub note: String,
    /// The scoring engine the image carries (onnxruntime, or why libtorch).
    pub engine: String,
    /// The shared libraries the context carries in `lib/`, by name.
    pub libraries: Vec<String>,
    /// The built image's size in bytes, as the tool reports it.
    pub size_bytes: Option<u64>,
}

/// The default image tag of deployment `name`.
pub fn default_image(name: &str) -> String {
    format!("cvtk-{name}:latest")
}

/// Copies a model folder for an image: all of it but the record of the
/// images it was trained on (`training-images-*.json`), whose paths name the
/// training machine's files and which serving never reads.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io("cannot create", to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io("cannot list", from, e))? {
        let entry = entry.map_err(|e| Error::io("cannot list", from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("training-images-") && name.ends_with(".json") {
            continue;
        }
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| Error::io("cannot copy", &src, e))?;
        }
    }
    Ok(())
}

/// Puts `src` at `dst`: a hard link where both are on one file system (the
/// libraries are hundreds of megabytes and never edited), a copy otherwise.
fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    if dst.symlink_metadata().is_ok() {
        std::fs::remove_file(dst).map_err(|e| Error::io("cannot replace", dst, e))?;
    }
    if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst).map_err(|e| Error::io("cannot copy", src, e))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    Ok(cvtk_core::write_atomic(path, text.as_bytes())?)
}

/// The Dockerfile for a context holding `cvtk`, `lib/` and `model/`, for
/// deployment `name` (the model's name under `/v2/models/`).
pub fn dockerfile(name: &str, options: &DockerOptions) -> String {
    format!(
        r#"# Built by `cvtk deploy docker`: the cvtk program, the shared libraries it
# needs that a Debian base lacks (lib/: libtorch's CPU libraries, libgomp,
# onnxruntime) and the model. No Python, and nothing fetched while building.
# The service key is not in the image: pass it at run time, e.g.
#   docker run -e CVTK_SERVICE_KEY=... -p {port}:{port} IMAGE
FROM {base}
COPY lib/ {lib}/
COPY cvtk /usr/local/bin/cvtk
COPY model /model
ENV LD_LIBRARY_PATH={lib} \
    CVTK_ONNXRUNTIME_LIB={lib}/{ort_lib} \
    CVTK_MODEL_NAME={name} \
    RUST_LOG=info
USER 65534:65534
EXPOSE {port}
HEALTHCHECK --interval=15s --timeout=3s CMD ["cvtk", "health", "http://127.0.0.1:{port}/health"]
ENTRYPOINT ["cvtk", "serve", "--model", "/model", "--host", "0.0.0.0", "--port", "{port}", "--device", "cpu"]
"#,
        base = options.base_image,
        lib = IMAGE_LIB_DIR,
        port = CONTAINER_PORT,
        ort_lib = ORT_LIB,
    )
}

/// The onnxruntime library's name in the context's `lib/`.
const ORT_LIB: &str = "libonnxruntime.so";

/// Puts the onnxruntime library this program loads into `lib` and the model's
/// ONNX graph into `model_out` (so the container need not build it at start);
/// what it could not do is said in the returned note.
fn add_onnxruntime(lib: &Path, model_out: &Path) -> Result<String> {
    let library = match cvtk_model::engine::onnxruntime_library() {
        Ok(l) => l,
        Err(e) => return Ok(format!("the image will score with libtorch: {e}")),
    };
    link_or_copy(&library, &lib.join(ORT_LIB))?;
    let graph = cvtk_model::load_classifier(model_out, tch::Device::Cpu)
        .and_then(|m| m.export_onnx())
        .and_then(|g| g.write(&model_out.join(cvtk_model::onnx::MODEL_ONNX)));
    Ok(match graph {
        Ok(()) => format!("engine onnxruntime ({} in lib/)", library.display()),
        Err(e) => format!("engine onnxruntime; the ONNX graph is built at start ({e})"),
    })
}

/// Puts `found`, the shared libraries `exe` needs beyond the system's
/// ([`libraries::bundled_libraries`]), into `lib`; where `exe` names
/// libtorch's CUDA shim, `libtorch.so` is a link to libtorch_cpu.so, already
/// loaded, so the image carries no CUDA library. Returns the names.
fn add_libraries(exe: &Path, found: BTreeMap<String, PathBuf>, lib: &Path) -> Result<Vec<String>> {
    for (name, path) in &found {
        link_or_copy(path, &lib.join(name))?;
    }
    let mut names: Vec<String> = found.into_keys().collect();
    if libraries::needs_cuda_shim(exe)? && names.iter().any(|n| n == libraries::CPU_TORCH) {
        let shim = lib.join(libraries::CUDA_SHIM);
        if shim.symlink_metadata().is_ok() {
            std::fs::remove_file(&shim).map_err(|e| Error::io("cannot replace", &shim, e))?;
        }
        std::os::unix::fs::symlink(libraries::CPU_TORCH, &shim).map_err(|e| Error::io("cannot link", &shim, e))?;
        names.push(libraries::CUDA_SHIM.to_string());
    }
    Ok(names)
}

/// Writes a Docker build context for deployment `name` of `model_dir` into
/// `out` (Dockerfile, the `cvtk` program, the shared libraries it needs, the
/// model), then, when [`DockerOptions::build`] is set, builds it with the first
/// container tool that answers. A build asked for that cannot happen is an
/// error that says why.
pub fn build_docker_image(name: &str, model_dir: &Path, out: &Path, options: &DockerOptions) -> Result<DockerBuild> {
    check_name(name)?;
    if !cvtk_model::is_model_dir(model_dir) {
        return Err(Error::config(
            "model_dir",
            format!("{} is not a cvtk model folder (no model.json)", model_dir.display()),
        ));
    }
    // The context's model/ is replaced: an --out that is (or holds, or is
    // inside) the model folder would delete the trained model.
    if cvtk_core::paths_overlap(model_dir, out) {
        return Err(Error::config(
            "out",
            format!(
                "the build context {} overlaps the model folder {}; writing it would replace the model. Pick a folder outside it, e.g. {}-docker",
                out.display(),
                model_dir.display(),
                model_dir.display()
            ),
        ));
    }
    let image = options.image.clone().unwrap_or_else(|| default_image(name));
    // Find the tool before writing hundreds of megabytes.
    let builder = if options.build {
        let builder = builder::Builder::find(options.builder.as_deref()).map_err(|why| Error::ImageBuild {
            image: image.clone(),
            reason: format!(
                "no container tool answers ({why}); install podman (apt-get install podman), or drop --build and build the context elsewhere"
            ),
        })?;
        if options.base_image.starts_with("localhost/") && !builder.has_image(&options.base_image) {
            return Err(Error::ImageBuild {
                image,
                reason: format!(
                    "the base image {} is not in {}'s store. Make it from Debian's packages (about 30 s, nothing \
                     from a container registry), in any folder, as the user who builds:\n{}\nor pass --base-image \
                     with an image you have",
                    options.base_image,
                    builder.program().display(),
                    base_image_recipe(
                        &options.base_image,
                        &builder.program().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                    )
                ),
            });
        }
        Some(builder)
    } else {
        None
    };
    let exe = find_server_exe(options.server_exe.as_deref())?;
    let found = libraries::bundled_libraries(&exe)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io("cannot create", out, e))?;
    let model_out = out.join("model");
    if model_out.exists() {
        std::fs::remove_dir_all(&model_out).map_err(|e| Error::io("cannot replace", &model_out, e))?;
    }
    copy_dir(model_dir, &model_out)?;
    let lib = out.join("lib");
    if lib.exists() {
        std::fs::remove_dir_all(&lib).map_err(|e| Error::io("cannot replace", &lib, e))?;
    }
    std::fs::create_dir_all(&lib).map_err(|e| Error::io("cannot create", &lib, e))?;
    let libraries = add_libraries(&exe, found, &lib)?;
    let engine = add_onnxruntime(&lib, &model_out)?;
    link_or_copy(&exe, &out.join("cvtk"))?;
    write(&out.join("Dockerfile"), &dockerfile(name, options))?;
    write(&out.join(".dockerignore"), "*\n!cvtk\n!model\n!lib\n")?;
    let mut result = DockerBuild {
        context: out.to_path_buf(),
        image: image.clone(),
        built: false,
        note: String::new(),
        engine,
        libraries,
        size_bytes: None,
    };
    let Some(builder) = builder else {
        result.note = format!(
            "not built; build it with: cvtk deploy docker {name} --out {} --build (or podman build -t {image} {})",
            out.display(),
            out.display()
        );
        return Ok(result);
    };
    builder.build(&image, out).map_err(|reason| Error::ImageBuild { image: image.clone(), reason })?;
    result.built = true;
    result.size_bytes = builder.image_size(&image);
    result.note = format!(
        "built {image} with {}; run: {} run -e CVTK_SERVICE_KEY=KEY -p {CONTAINER_PORT}:{CONTAINER_PORT} {image}",
        builder.program().display(),
        builder.program().display()
    );
    Ok(result)
}

/// Kubernetes settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sOptions {
    /// The container image. By default, `cvtk-NAME:latest`.
    pub image: Option<String>,
    /// The service key, stored in a Secret. Required.
    pub key: String,
    /// Fewest replicas. By default, 1.
    pub min_replicas: u32,
    /// Most replicas the autoscaler may run. By default, 4.
    pub max_replicas: u32,
    /// Target average CPU use that triggers scaling, in percent. By default, 70.
    pub cpu_target_percent: u32,
    /// CPU requested per replica. By default, `"1"`.
    pub cpu_request: String,
    /// Memory requested per replica. By default, `"2Gi"`.
    pub memory_request: String,
    /// Memory limit per replica. By default, `"4Gi"`. At least twice the
    /// decoding memory: the model, the queued images and the request bodies
    /// take the rest.
    pub memory_limit: String,
    /// CPU limit per replica, in whole cores; also the service's decoding
    /// threads (`--decode-threads`), so decoding never counts cores the pod
    /// does not have. By default, 2.
    pub cpu_limit: u32,
    /// Memory all decodings together may take, in MiB (`--decode-memory-mb`).
    /// By default, 1024.
    pub decode_memory_mb: u64,
    /// Write a KServe `InferenceService` (a custom-container predictor
    /// running the image, which speaks the Open Inference Protocol) instead
    /// of the Deployment, Service and HorizontalPodAutoscaler, which KServe
    /// makes itself. The Secret is written either way. By default, false.
    pub kserve: bool,
}

impl Default for K8sOptions {
    fn default() -> Self {
        K8sOptions {
            image: None,
            key: String::new(),
            min_replicas: 1,
            max_replicas: 4,
            cpu_target_percent: 70,
            cpu_request: "1".into(),
            memory_request: "2Gi".into(),
            memory_limit: "4Gi".into(),
            cpu_limit: 2,
            decode_memory_mb: 1024,
            kserve: false,
        }
    }
}

/// The manifests as (file name, object) pairs.
pub fn k8s_objects(name: &str, options: &K8sOptions) -> Result<Vec<(&'static str, serde_json::Value)>> {
    check_name(name)?;
    if options.key.len() < 16 {
        return Err(Error::config("key", "the service key must be set (16 or more characters)"));
    }
    if options.min_replicas == 0 || options.max_replicas < options.min_replicas {
        return Err(Error::config(
            "replicas",
            format!("min {} and max {}: need 1 <= min <= max", options.min_replicas, options.max_replicas),
        ));
    }
    if !(1..=100).contains(&options.cpu_target_percent) {
        return Err(Error::config("cpu_target_percent", format!("{} is not in 1..=100", options.cpu_target_percent)));
    }
    if options.cpu_limit == 0 {
        return Err(Error::config("cpu_limit", "must be at least 1 core"));
    }
    let limit_mib = quantity_mib(&options.memory_limit, "memory_limit")?;
    if quantity_mib(&options.memory_request, "memory_request")? > limit_mib {
        return Err(Error::config(
            "memory_request",
            format!(
                "{} is more than the memory limit {}; Kubernetes refuses that",
                options.memory_request, options.memory_limit
            ),
        ));
    }
    if quantity_millicores(&options.cpu_request, "cpu_request")? > u64::from(options.cpu_limit) * 1000 {
        return Err(Error::config(
            "cpu_request",
            format!(
                "{} is more than the CPU limit {}; Kubernetes refuses that",
                options.cpu_request, options.cpu_limit
            ),
        ));
    }
    let min_decode_mib = (crate::DEFAULT_SERVE_MAX_PIXELS * crate::DECODE_BYTES_PER_PIXEL) >> 20;
    if options.decode_memory_mb < min_decode_mib || options.decode_memory_mb * 2 > limit_mib {
        return Err(Error::config(
            "decode_memory_mb",
            format!(
                "{} MiB of decoding memory does not fit: it must be at least {min_decode_mib} MiB (the largest \
                 image) and at most half the memory limit {} ({} MiB)",
                options.decode_memory_mb,
                options.memory_limit,
                limit_mib / 2
            ),
        ));
    }
    let image = options.image.clone().unwrap_or_else(|| default_image(name));
    let labels = json!({ "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "cvtk" });
    let secret_name = format!("{name}-key");
    // After the image's entrypoint (`cvtk serve --model /model ...`): the key
    // from the Secret's file, and decoding sized to the pod's limits.
    let serve_args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = extra.iter().map(|s| (*s).to_string()).collect();
        args.extend(
            [
                "--key-file",
                KEY_FILE,
                "--decode-threads",
                &options.cpu_limit.to_string(),
                "--decode-memory-mb",
                &options.decode_memory_mb.to_string(),
            ]
            .map(str::to_string),
        );
        args
    };
    let resources = json!({
        "requests": { "cpu": options.cpu_request, "memory": options.memory_request },
        "limits": { "cpu": options.cpu_limit.to_string(), "memory": options.memory_limit },
    });
    // Group-readable: the pod's fsGroup (the image's group) owns the file.
    // KServe has no pod-level fsGroup (see container_security_with_user), so
    // there the file is readable by the container's users, as a Secret's
    // files usually are; no other container shares the pod's volume.
    let key_volume = |mode: u32| json!({ "name": "key", "secret": { "secretName": secret_name, "defaultMode": mode, "items": [{ "key": "key", "path": "key" }] } });
    let mounts = json!([
        { "name": "key", "mountPath": KEY_DIR, "readOnly": true },
        { "name": "tmp", "mountPath": "/tmp" },
    ]);
    let probe = |path: &str, delay: u32| json!({ "httpGet": { "path": path, "port": "http" }, "initialDelaySeconds": delay, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3 });
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": secret_name, "labels": labels },
        "type": "Opaque",
        "stringData": { "key": options.key },
    });
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "replicas": options.min_replicas,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "automountServiceAccountToken": false,
                    "securityContext": pod_security(),
                    "containers": [{
                        "name": "cvtk",
                        "image": image,
                        "args": serve_args(&[]),
                        "ports": [{ "name": "http", "containerPort": CONTAINER_PORT }],
                        "readinessProbe": probe("/ready", 5),
                        "livenessProbe": probe("/health", 15),
                        "resources": resources,
                        "securityContext": container_security(),
                        "volumeMounts": mounts,
                    }],
                    "volumes": [key_volume(0o440), { "name": "tmp", "emptyDir": { "sizeLimit": "256Mi" } }],
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "selector": labels,
            "ports": [{ "name": "http", "port": 80, "targetPort": "http" }],
        },
    });
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "minReplicas": options.min_replicas,
            "maxReplicas": options.max_replicas,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": options.cpu_target_percent } } }],
        },
    });
    if options.kserve {
        let v2_probe = json!({ "httpGet": { "path": "/v2/health/ready", "port": CONTAINER_PORT }, "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3 });
        let isvc = json!({
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "predictor": {
                    "minReplicas": options.min_replicas,
                    "maxReplicas": options.max_replicas,
                    "scaleMetric": "cpu",
                    "scaleTarget": options.cpu_target_percent,
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": "kserve-container",
                        "image": image,
                        // The model answers as NAME under /v2/models/.
                        "args": serve_args(&["--model-name", name]),
                        "ports": [{ "containerPort": CONTAINER_PORT, "protocol": "TCP" }],
                        "readinessProbe": v2_probe,
                        "resources": resources,
                        "securityContext": container_security_with_user(),
                        "volumeMounts": mounts,
                    }],
                    "volumes": [key_volume(0o444), { "name": "tmp", "emptyDir": { "sizeLimit": "256Mi" } }],
                },
            },
        });
        return Ok(vec![("secret.yaml", secret), ("inferenceservice.yaml", isvc)]);
    }
    Ok(vec![("secret.yaml", secret), ("deployment.yaml", deployment), ("service.yaml", service), ("hpa.yaml", hpa)])
}

/// Where the manifests mount the service key's Secret, and its file there.
const KEY_DIR: &str = "/var/run/secrets/cvtk";
const KEY_FILE: &str = "/var/run/secrets/cvtk/key";

/// The user the image runs as (`USER` in the Dockerfile).
const IMAGE_USER: u32 = 65534;

/// A pod security context that Pod Security "restricted" admits: not root,
/// the runtime's default seccomp profile, and the Secret's files readable by
/// the image's group.
fn pod_security() -> serde_json::Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": IMAGE_USER,
        "runAsGroup": IMAGE_USER,
        "fsGroup": IMAGE_USER,
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// A container security context that Pod Security "restricted" admits, with
/// a read-only root file system (the service writes only to `/tmp`, an
/// emptyDir).
fn container_security() -> serde_json::Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// [`container_security`] with the user and group in it too: for KServe,
/// whose Knative webhook refuses a pod-level security context unless the
/// cluster enables `kubernetes.podspec-securitycontext`, but takes these at
/// the container's level.
fn container_security_with_user() -> serde_json::Value {
    let mut sc = container_security();
    sc["runAsUser"] = json!(IMAGE_USER);
    sc["runAsGroup"] = json!(IMAGE_USER);
    sc
}

/// Checks a Kubernetes memory quantity (`4Gi`, `4096Mi`, `1.5Gi`, `4G`,
/// `500M`, bytes), for a command line's parser: the quantity as written, or
/// what is wrong with it.
pub fn check_memory_quantity(q: &str) -> std::result::Result<String, String> {
    quantity_mib(q, "memory").map(|_| q.trim().to_string()).map_err(|e| match e {
        Error::InvalidConfig { reason, .. } => reason,
        e => e.to_string(),
    })
}

/// A Kubernetes memory quantity (`4Gi`, `4096Mi`, `1.5Gi`, `4G`, `500M`,
/// bytes) in MiB; `field` names it in the error.
fn quantity_mib(q: &str, field: &'static str) -> Result<u64> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (number, unit) = q.split_at(split);
    let factor: f64 = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => 0.0,
    };
    match number.parse::<f64>() {
        Ok(n) if factor > 0.0 && n.is_finite() && n >= 0.0 => Ok((n * factor / 1024f64.powi(2)) as u64),
        _ => Err(Error::config(field, format!("'{q}' is not a memory quantity; write it as 4Gi, 4096Mi or 4G"))),
    }
}

/// A Kubernetes CPU quantity (`1`, `1.5`, `500m`) in millicores.
fn quantity_millicores(q: &str, field: &'static str) -> Result<u64> {
    let q = q.trim();
    let parsed = match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok(),
        None => q.parse::<f64>().ok().map(|c| c * 1000.0),
    };
    match parsed {
        Some(m) if m.is_finite() && m > 0.0 => Ok(m.round() as u64),
        _ => Err(Error::config(field, format!("'{q}' is not a CPU quantity; write it as 1, 1.5 or 500m"))),
    }
}

/// A batch scoring run on Kubernetes: an Indexed Job of `shards` pods, pod
/// `K` running `cvtk score INPUT --shard K/N` on the image from
/// `cvtk deploy docker`, reading and writing a volume the user names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOptions {
    /// The container image. By default, `cvtk-NAME:latest`.
    pub image: Option<String>,
    /// Shards (pods), at least 1.
    pub shards: u32,
    /// Pods running at once. By default, all shards.
    pub parallelism: Option<u32>,
    /// The PersistentVolumeClaim holding the input and the outputs, mounted at `/data`.
    pub claim: String,
    /// What to score, a path under `/data` (a folder, a manifest or a list file).
    pub input: String,
    /// The folder (under `/data`) the shards' outputs go to, as `part-K.EXT`.
    pub output: String,
    /// The outputs' format: `jsonl`, `csv` or `parquet`. By default, `jsonl`.
    pub format: String,
    /// Labels kept per image. By default, 3.
    pub top: u32,
    /// CPUs per pod (also its scoring threads). By default, 1.
    pub cpu: u32,
    /// Memory per pod (request and limit). By default, `"2Gi"`.
    pub memory: String,
    /// Retries of a failed shard (each continues its output). By default, 3.
    pub retries_per_shard: u32,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            image: None,
            shards: 1,
            parallelism: None,
            claim: String::new(),
            input: String::new(),
            output: String::new(),
            format: "jsonl".into(),
            top: 3,
            cpu: 1,
            memory: "2Gi".into(),
            retries_per_shard: 3,
        }
    }
}

/// The Indexed Job of a batch scoring run, as (file name, object).
pub fn k8s_batch_job(name: &str, options: &BatchOptions) -> Result<(&'static str, serde_json::Value)> {
    check_name(name)?;
    if options.shards == 0 || options.cpu == 0 || options.top == 0 {
        return Err(Error::config("shards", "shards, cpu and top must be at least 1"));
    }
    if options.parallelism.is_some_and(|p| p == 0 || p > options.shards) {
        return Err(Error::config("parallelism", "must be between 1 and the number of shards"));
    }
    if !matches!(options.format.as_str(), "jsonl" | "csv" | "parquet") {
        return Err(Error::config("format", format!("'{}': use jsonl, csv or parquet", options.format)));
    }
    for (field, value) in [("claim", &options.claim), ("input", &options.input), ("output", &options.output)] {
        if value.trim().is_empty() {
            return Err(Error::config(field, "required: the volume claim, and the input and output paths on it"));
        }
    }
    for (field, value) in [("input", &options.input), ("output", &options.output)] {
        if !value.starts_with("/data") {
            return Err(Error::config(field, format!("'{value}' must be under /data, where the claim is mounted")));
        }
    }
    let image = options.image.clone().unwrap_or_else(|| default_image(name));
    let labels = json!({ "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "cvtk", "app.kubernetes.io/component": "batch-score" });
    let n = options.shards;
    let out = format!("{}/part-$(JOB_COMPLETION_INDEX).{}", options.output.trim_end_matches('/'), options.format);
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "completionMode": "Indexed",
            "completions": n,
            "parallelism": options.parallelism.unwrap_or(n),
            // Each shard retries on its own; a retry continues its output.
            "backoffLimitPerIndex": options.retries_per_shard,
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "securityContext": pod_security(),
                    "containers": [{
                        "name": "score",
                        "image": image,
                        "command": ["cvtk"],
                        "args": [
                            "score", options.input, "--model", "/model", "--out", out,
                            "--shard", format!("$(JOB_COMPLETION_INDEX)/{n}"),
                            "--threads", options.cpu.to_string(), "--top", options.top.to_string(), "--device", "cpu",
                        ],
                        "env": [{
                            "name": "JOB_COMPLETION_INDEX",
                            "valueFrom": { "fieldRef": { "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']" } },
                        }],
                        "volumeMounts": [{ "name": "data", "mountPath": "/data" }, { "name": "tmp", "mountPath": "/tmp" }],
                        "resources": {
                            "requests": { "cpu": options.cpu.to_string(), "memory": options.memory },
                            "limits": { "cpu": options.cpu.to_string(), "memory": options.memory },
                        },
                        "securityContext": container_security(),
                    }],
                    "volumes": [
                        { "name": "data", "persistentVolumeClaim": { "claimName": options.claim } },
                        { "name": "tmp", "emptyDir": { "sizeLimit": "256Mi" } },
                    ],
                },
            },
        },
    });
    Ok(("job.yaml", job))
}

/// Writes the Indexed Job of a batch scoring run as `out/job.yaml`.
pub fn write_k8s_batch_job(name: &str, out: &Path, options: &BatchOptions) -> Result<PathBuf> {
    let (file, job) = k8s_batch_job(name, options)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io("cannot create", out, e))?;
    let yaml = serde_norway::to_string(&job).map_err(|e| Error::config("manifest", e.to_string()))?;
    let path = out.join(file);
    write(
        &path,
        &format!(
            "# {file}: batch scoring job {name} ({} shards); apply with: kubectl apply -f {}\n{yaml}",
            options.shards,
            path.display()
        ),
    )?;
    Ok(path)
}

/// Writes the Secret, Deployment, Service and HorizontalPodAutoscaler of
/// deployment `name` (or, with [`K8sOptions::kserve`], the Secret and a
/// KServe InferenceService) as YAML files in `out` (the Secret
/// owner-readable only); `kubectl apply -f out/` creates them. Returns the
/// files.
pub fn write_k8s_manifests(name: &str, out: &Path, options: &K8sOptions) -> Result<Vec<PathBuf>> {
    let objects = k8s_objects(name, options)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io("cannot create", out, e))?;
    let mut files = Vec::new();
    for (file, object) in objects {
        let yaml = serde_norway::to_string(&object).map_err(|e| Error::config("manifest", e.to_string()))?;
        let text =
            format!("# {file} for cvtk deployment {name}; apply with: kubectl apply -f {}\n{yaml}", out.display());
        let path = out.join(file);
        if file == "secret.yaml" {
            cvtk_core::write_atomic_private(&path, text.as_bytes())?;
        } else {
            write(&path, &text)?;
        }
        files.push(path);
    }
    Ok(files)
}

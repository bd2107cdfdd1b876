//! Docker build contexts and Kubernetes manifests: written, parsed back, and
//! checked field by field.

use std::path::Path;

use cvtk_deploy::artifacts::{
    base_image_recipe, build_docker_image, k8s_batch_job, k8s_objects, write_k8s_batch_job, write_k8s_manifests,
    BatchOptions, DockerOptions, K8sOptions, DEFAULT_BASE_IMAGE,
};
use serde_json::Value;

const KEY: &str = "k8s-test-key-0123456789";

fn model_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.json"), "{}").unwrap();
    std::fs::write(dir.join("weights-1.safetensors"), b"weights").unwrap();
    dir
}

fn read_yaml(path: &Path) -> Value {
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn kubernetes_manifests_parse_back_with_probes_scaling_and_the_key_as_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let options = K8sOptions { key: KEY.into(), max_replicas: 6, ..K8sOptions::default() };
    let files = write_k8s_manifests("flowers", tmp.path(), &options).unwrap();
    let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(names, ["secret.yaml", "deployment.yaml", "service.yaml", "hpa.yaml"]);

    let secret = read_yaml(&files[0]);
    assert_eq!((secret["kind"].as_str(), secret["stringData"]["key"].as_str()), (Some("Secret"), Some(KEY)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let d = read_yaml(&files[1]);
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["metadata"]["name"], "flowers");
    assert_eq!(d["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "cvtk-flowers:latest");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
    let pod = &d["spec"]["template"]["spec"];
    key_from_the_secret_file(pod, &secret);
    restricted(pod);
    // Decoding sized to the pod: a thread per core of the CPU limit, and a
    // memory budget within the memory limit.
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(
        args,
        ["--key-file", "/var/run/secrets/cvtk/key", "--decode-threads", "2", "--decode-memory-mb", "1024"]
    );
    assert_eq!(c["resources"]["limits"]["cpu"], "2");
    assert_eq!(c["resources"]["limits"]["memory"], "4Gi");
    assert!(c["resources"]["requests"]["cpu"].is_string());

    let svc = read_yaml(&files[2]);
    assert_eq!(svc["kind"], "Service");
    assert_eq!(svc["spec"]["selector"], d["spec"]["selector"]["matchLabels"]);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");

    let hpa = read_yaml(&files[3]);
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "flowers");
    assert_eq!((hpa["spec"]["minReplicas"].as_u64(), hpa["spec"]["maxReplicas"].as_u64()), (Some(1), Some(6)));
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);
}

/// The key reaches the container as a file from the Secret (`--key-file`),
/// never as an environment variable (which `kubectl describe`, crash dumps and
/// child processes see).
fn key_from_the_secret_file(pod: &Value, secret: &Value) {
    let c = &pod["containers"][0];
    assert!(c.get("env").is_none_or(|e| !e.to_string().contains("secretKeyRef")), "the key in the environment: {c}");
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "key").expect("a key volume");
    assert_eq!(volume["secret"]["secretName"], secret["metadata"]["name"]);
    let mount = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == "key").expect("the key mounted");
    assert_eq!((mount["mountPath"].as_str(), mount["readOnly"].as_bool()), (Some("/var/run/secrets/cvtk"), Some(true)));
    let args = c["args"].as_array().unwrap();
    let at = args.iter().position(|a| a == "--key-file").expect("--key-file in the args");
    assert_eq!(args[at + 1], "/var/run/secrets/cvtk/key");
}

/// Checks a pod spec against the Pod Security Standard "restricted" (the
/// checks of Kubernetes' pod-security admission, as of v1.30), and more: no
/// service-account token, a read-only root file system.
fn restricted(pod: &Value) {
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(pod.get(host).is_none_or(|v| v == false), "{host} set: {pod}");
    }
    assert_eq!(pod["automountServiceAccountToken"], false, "the service-account token is mounted: {pod}");
    let allowed =
        ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
    for v in pod["volumes"].as_array().into_iter().flatten() {
        let kinds: Vec<&String> = v.as_object().unwrap().keys().filter(|k| *k != "name").collect();
        assert!(kinds.iter().all(|k| allowed.contains(&k.as_str())), "volume type {kinds:?} not allowed: {v}");
    }
    let pod_sc = &pod["securityContext"];
    for c in pod["containers"].as_array().unwrap() {
        let sc = &c["securityContext"];
        let either = |k: &str| if sc.get(k).is_some() { &sc[k] } else { &pod_sc[k] };
        assert_eq!(either("runAsNonRoot"), true, "runAsNonRoot: {c}");
        assert!(either("runAsUser").as_u64().is_none_or(|u| u != 0), "runs as root: {c}");
        assert!(
            matches!(either("seccompProfile")["type"].as_str(), Some("RuntimeDefault" | "Localhost")),
            "seccompProfile: {c}"
        );
        assert_eq!(sc["allowPrivilegeEscalation"], false, "allowPrivilegeEscalation: {c}");
        assert!(sc.get("privileged").is_none_or(|v| v == false), "privileged: {c}");
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]), "capabilities: {c}");
        let added = sc["capabilities"]["add"].as_array().cloned().unwrap_or_default();
        assert!(added.iter().all(|a| a == "NET_BIND_SERVICE"), "capabilities added: {c}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "readOnlyRootFilesystem: {c}");
        let ports = c["ports"].as_array().cloned().unwrap_or_default();
        assert!(ports.iter().all(|p| p.get("hostPort").is_none()), "hostPort: {c}");
    }
}

#[test]
fn kubernetes_options_are_checked() {
    let ok = K8sOptions { key: KEY.into(), ..K8sOptions::default() };
    // Decoding memory that the memory limit cannot hold twice, or under the largest image's.
    for bad in [
        K8sOptions { memory_limit: "1Gi".into(), ..ok.clone() },
        K8sOptions { decode_memory_mb: 256, ..ok.clone() },
        K8sOptions { memory_limit: "lots".into(), ..ok.clone() },
        K8sOptions { cpu_limit: 0, ..ok.clone() },
        // A request over its limit: Kubernetes refuses the pod.
        K8sOptions { memory_limit: "1536Mi".into(), decode_memory_mb: 704, ..ok.clone() },
        K8sOptions { cpu_request: "3".into(), ..ok.clone() },
        K8sOptions { cpu_request: "lots".into(), ..ok.clone() },
    ] {
        assert!(k8s_objects("x", &bad).is_err(), "{bad:?}");
    }
    assert!(k8s_objects("x", &K8sOptions { memory_limit: "4096Mi".into(), ..ok.clone() }).is_ok());
    assert!(k8s_objects("x", &K8sOptions { memory_limit: "2.5Gi".into(), cpu_request: "500m".into(), ..ok.clone() })
        .is_ok());
    assert!(k8s_objects("Bad_Name", &ok).is_err());
    assert!(k8s_objects("x", &K8sOptions { key: "short".into(), ..ok.clone() }).is_err());
    assert!(k8s_objects("x", &K8sOptions { min_replicas: 5, max_replicas: 2, ..ok.clone() }).is_err());
    assert!(k8s_objects("x", &K8sOptions { cpu_target_percent: 0, ..ok }).is_err());
}

fn docker_options(builder: &str) -> DockerOptions {
    DockerOptions {
        server_exe: Some(std::env::current_exe().unwrap()),
        builder: Some(builder.into()),
        ..DockerOptions::default()
    }
}

#[test]
fn docker_context_holds_the_program_its_cpu_libraries_the_model_and_a_dockerfile_without_python() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    // The record of the training images names the training machine's files: it stays out of the image.
    std::fs::write(model.join("training-images-1.json"), r#"{"root": "/home/someone/photos"}"#).unwrap();
    let out = tmp.path().join("ctx");
    let built = build_docker_image("flowers", &model, &out, &docker_options("podman")).unwrap();
    assert!(!out.join("model/training-images-1.json").exists(), "the training images' record went into the image");
    assert!(!built.built && built.size_bytes.is_none());
    assert_eq!(built.image, "cvtk-flowers:latest");
    assert!(built.note.contains("--build"), "{}", built.note);
    assert!(out.join("cvtk").is_file());
    assert_eq!(std::fs::read(out.join("model/weights-1.safetensors")).unwrap(), b"weights");
    let dockerfile = std::fs::read_to_string(out.join("Dockerfile")).unwrap();
    for needed in [
        &format!("FROM {DEFAULT_BASE_IMAGE}"),
        "LD_LIBRARY_PATH=/usr/local/lib/cvtk",
        "COPY model /model",
        "CVTK_ONNXRUNTIME_LIB=/usr/local/lib/cvtk/libonnxruntime.so",
        "COPY lib/ /usr/local/lib/cvtk/",
        "\"serve\"",
        // The model answers under /v2/models/flowers, the deployment's name.
        "CVTK_MODEL_NAME=flowers",
        "EXPOSE 8080",
        "HEALTHCHECK --interval=15s --timeout=3s CMD [\"cvtk\", \"health\", \"http://127.0.0.1:8080/health\"]",
    ] {
        assert!(dockerfile.contains(needed), "{needed} missing:\n{dockerfile}");
    }
    for absent in ["pip", "python", "RUN ", "http://download", KEY] {
        assert!(!dockerfile.contains(absent), "{absent} in:\n{dockerfile}");
    }
    // The onnxruntime library this program scores with travels in lib/.
    let lib = std::fs::read(out.join("lib/libonnxruntime.so")).unwrap();
    let loaded = std::fs::read(cvtk_model::engine::onnxruntime_library().unwrap()).unwrap();
    assert!(lib == loaded, "lib/libonnxruntime.so is not the library in use");
    assert!(built.engine.starts_with("engine onnxruntime"), "{}", built.engine);
    // libtorch's CPU libraries, and libtorch.so as a link to libtorch_cpu.so:
    // no CUDA library, no Python.
    for needed in ["libtorch_cpu.so", "libc10.so", "libgomp.so.1"] {
        assert!(out.join("lib").join(needed).is_file(), "{needed} missing: {:?}", built.libraries);
        assert!(built.libraries.iter().any(|l| l == needed), "{:?}", built.libraries);
    }
    assert_eq!(std::fs::read_link(out.join("lib/libtorch.so")).unwrap(), Path::new("libtorch_cpu.so"));
    let names: Vec<String> =
        std::fs::read_dir(out.join("lib")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!names.iter().any(|n| n.contains("cuda") && !n.starts_with("libcudart")), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("cublas") || n.contains("cudnn") || n.contains("python")), "{names:?}");
    let bytes: u64 = names.iter().map(|n| std::fs::symlink_metadata(out.join("lib").join(n)).unwrap().len()).sum();
    assert!(bytes < 700 << 20, "lib/ holds {bytes} bytes: {names:?}");
    assert!(std::fs::read_to_string(out.join(".dockerignore")).unwrap().contains("!lib"));
    // Writing it again replaces it in place.
    build_docker_image("flowers", &model, &out, &docker_options("podman")).unwrap();
}

fn fake_tool(dir: &Path, name: &str, script: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path.to_str().unwrap().to_string()
}

#[test]
fn the_base_image_recipe_names_the_suite_and_the_builders_import() {
    let podman = base_image_recipe(DEFAULT_BASE_IMAGE, "podman");
    assert!(podman.contains("mmdebstrap --variant=minbase bookworm") && podman.contains("podman import"), "{podman}");
    assert!(podman.contains("mktemp") && !podman.contains("/tmp/"), "a fixed name in /tmp: {podman}");
    let docker = base_image_recipe("localhost/debian-base:trixie", "docker");
    assert!(
        docker.contains("minbase trixie") && docker.contains("docker import") && !docker.contains("podman"),
        "{docker}"
    );
    assert!(docker.ends_with(" localhost/debian-base:trixie; rm -rf \"$t\""), "{docker}");
}

#[test]
fn a_build_that_cannot_happen_is_an_error_that_says_why_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let build = |tool: &str, out: &str| {
        let options = DockerOptions { build: true, ..docker_options(tool) };
        build_docker_image("a", &model, &tmp.path().join(out), &options).unwrap_err().to_string()
    };
    let missing = build("/nonexistent/podman", "c1");
    assert!(missing.contains("no container tool answers") && missing.contains("apt-get install podman"), "{missing}");
    // A docker client whose engine does not answer.
    let docker = fake_tool(tmp.path(), "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1");
    let no_engine = build(&docker, "c2");
    assert!(no_engine.contains("Cannot connect"), "{no_engine}");
    // A podman that answers but lacks the base image.
    let podman = fake_tool(tmp.path(), "podman", "[ \"$1\" = info ] && exit 0; exit 1");
    let no_base = build(&podman, "c3");
    assert!(
        no_base.contains(DEFAULT_BASE_IMAGE) && no_base.contains(&base_image_recipe(DEFAULT_BASE_IMAGE, "podman")),
        "{no_base}"
    );
    assert!(!no_base.contains("scripts/"), "a script of the checkout, which an installed cvtk lacks: {no_base}");
    for out in ["c1", "c2", "c3"] {
        assert!(!tmp.path().join(out).exists(), "{out} written");
    }
}

#[test]
fn a_folder_without_a_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let e = build_docker_image("a", tmp.path(), &tmp.path().join("c"), &docker_options("podman")).unwrap_err();
    assert!(e.to_string().contains("model.json"), "{e}");
}

#[test]
fn a_build_context_that_overlaps_the_model_folder_is_refused_and_the_model_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let before: Vec<_> = std::fs::read_dir(&model).unwrap().map(|e| e.unwrap().file_name()).collect();
    let options = docker_options("podman");
    // The model folder itself, a folder inside it, and the folder holding it
    // as `model` (the context's model/ would be the model).
    let parent = tmp.path().join("ctx");
    std::fs::create_dir_all(&parent).unwrap();
    let as_model = parent.join("model");
    copy_tree(&model, &as_model);
    for (m, out) in [(&model, model.clone()), (&model, model.join("ctx")), (&as_model, parent.clone())] {
        let e = build_docker_image("a", m, &out, &options).unwrap_err().to_string();
        assert!(e.contains("overlaps the model folder"), "{e}");
    }
    let after: Vec<_> = std::fs::read_dir(&model).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after);
    assert!(cvtk_model::is_model_dir(&as_model));
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Runs the venv's `kubernetes-validate --strict` on `files`; fails loudly
/// when the tool is missing (`make test-setup` installs it).
fn kubernetes_validate(files: &[std::path::PathBuf]) -> String {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/kubernetes-validate");
    assert!(tool.is_file(), "{} missing: run `make test-setup` (requirements-test.txt installs it)", tool.display());
    let out = std::process::Command::new(&tool).arg("--strict").args(files).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubernetes-validate refused the manifests:\n{text}");
    text
}

#[test]
fn every_manifest_passes_kubernetes_validate_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let options = K8sOptions { key: KEY.into(), ..K8sOptions::default() };
    let files = write_k8s_manifests("flowers", &tmp.path().join("plain"), &options).unwrap();
    let text = kubernetes_validate(&files);
    assert_eq!(text.matches("passed for resource").count(), 4, "{text}");
}

#[test]
fn the_kserve_inference_service_runs_the_image_with_the_protocol_probe_and_its_container_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let options =
        K8sOptions { key: KEY.into(), kserve: true, min_replicas: 2, max_replicas: 5, ..K8sOptions::default() };
    let files = write_k8s_manifests("flowers", tmp.path(), &options).unwrap();
    let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(names, ["secret.yaml", "inferenceservice.yaml"], "KServe makes the Deployment and Service itself");
    let isvc = read_yaml(&files[1]);
    assert_eq!(
        (isvc["apiVersion"].as_str(), isvc["kind"].as_str()),
        (Some("serving.kserve.io/v1beta1"), Some("InferenceService"))
    );
    let predictor = &isvc["spec"]["predictor"];
    assert_eq!((predictor["minReplicas"].as_u64(), predictor["maxReplicas"].as_u64()), (Some(2), Some(5)));
    let c = &predictor["containers"][0];
    assert_eq!(c["name"], "kserve-container");
    assert_eq!(c["image"], "cvtk-flowers:latest");
    assert_eq!((c["args"][0].as_str(), c["args"][1].as_str()), (Some("--model-name"), Some("flowers")));
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/v2/health/ready");
    let secret = read_yaml(&files[0]);
    key_from_the_secret_file(predictor, &secret);
    restricted(predictor);
    // Knative refuses a pod-level security context by default: the user is the container's.
    assert!(predictor.get("securityContext").is_none(), "{predictor}");
    assert_eq!(c["securityContext"]["runAsUser"], 65534);
    // kubernetes-validate knows no KServe schema (it says so and passes the
    // file unchecked): the predictor's container is a core/v1 Container, so
    // it is validated inside a Pod; the Secret as it is.
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "flowers-predictor-check" },
        "spec": { "containers": [c], "volumes": predictor["volumes"] },
    });
    let pod_file = tmp.path().join("predictor-container-as-pod.yaml");
    std::fs::write(&pod_file, serde_norway::to_string(&pod).unwrap()).unwrap();
    let text = kubernetes_validate(&[files[0].clone(), pod_file]);
    assert_eq!(text.matches("passed for resource").count(), 2, "{text}");
}

#[test]
fn the_batch_job_is_indexed_one_shard_per_pod_and_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let options = BatchOptions {
        shards: 8,
        parallelism: Some(4),
        claim: "photos".into(),
        input: "/data/catalogue".into(),
        output: "/data/scores".into(),
        cpu: 2,
        ..BatchOptions::default()
    };
    let file = write_k8s_batch_job("catalogue", tmp.path(), &options).unwrap();
    let job = read_yaml(&file);
    assert_eq!((job["apiVersion"].as_str(), job["kind"].as_str()), (Some("batch/v1"), Some("Job")));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!((spec["completions"].as_u64(), spec["parallelism"].as_u64()), (Some(8), Some(4)));
    let pod = &spec["template"]["spec"];
    restricted(pod);
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "photos");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "cvtk-catalogue:latest");
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(
        args,
        [
            "score",
            "/data/catalogue",
            "--model",
            "/model",
            "--out",
            "/data/scores/part-$(JOB_COMPLETION_INDEX).jsonl",
            "--shard",
            "$(JOB_COMPLETION_INDEX)/8",
            "--threads",
            "2",
            "--top",
            "3",
            "--device",
            "cpu"
        ]
    );
    assert_eq!(c["env"][0]["name"], "JOB_COMPLETION_INDEX");
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/data");
    let text = kubernetes_validate(&[file]);
    assert!(text.contains("passed for resource job/catalogue"), "{text}");
    for bad in [
        BatchOptions { shards: 0, ..options.clone() },
        BatchOptions { parallelism: Some(9), ..options.clone() },
        BatchOptions { input: "/elsewhere".into(), ..options.clone() },
        BatchOptions { format: "xlsx".into(), ..options.clone() },
        BatchOptions { claim: String::new(), ..options.clone() },
    ] {
        assert!(k8s_batch_job("catalogue", &bad).is_err(), "{bad:?}");
    }
}

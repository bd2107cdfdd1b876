//! `cvtk deploy`: start, list, show, score and delete local deployments, and
//! write Docker and Kubernetes artifacts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use cvtk_core::StorageContext;
use cvtk_deploy::api::{ItemResult, Parameters};
use cvtk_deploy::artifacts::{
    build_docker_image, write_k8s_batch_job, write_k8s_manifests, BatchOptions, DockerOptions, K8sOptions,
};
use cvtk_deploy::{
    delete_if_service_exist, get_deployment, list_deployments, DeployConfig, Deployment, DeploymentStatus,
};
use serde::Serialize;

use super::serve::ServeSettings;
use crate::output::print_json;

/// `cvtk serve` flags given to `deploy create` after `--`.
#[derive(Parser, Debug)]
#[command(no_binary_name = true, name = "cvtk deploy create ... --")]
struct ServeFlags {
    #[command(flatten)]
    settings: ServeSettings,
}

/// Where deployments are recorded.
#[derive(clap::Args, Debug)]
pub struct Home {
    /// Where deployments are recorded (default $CVTK_HOME, else ~/.cvtk).
    #[arg(long, env = "CVTK_HOME", global = true)]
    home: Option<PathBuf>,
}

impl Home {
    /// The storage context with this home.
    pub fn storage(&self) -> StorageContext {
        match &self.home {
            Some(h) => StorageContext::new().with_persistent(h),
            None => StorageContext::new(),
        }
    }
}

/// `cvtk deploy` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Start a model as a local background service and record it.
    Create {
        /// The deployment's name (lowercase letters, digits, '-').
        #[arg(value_parser = crate::output::deployment_name)]
        name: String,
        /// The model folder to serve.
        #[arg(long)]
        model: PathBuf,
        /// Address to bind.
        #[arg(long, default_value_t = deploy_defaults().serve.host)]
        host: String,
        /// Port (0 picks a free one).
        #[arg(long, default_value_t = deploy_defaults().serve.port)]
        port: u16,
        /// Device for the model: auto, cpu, cuda, cuda:N.
        #[arg(long, default_value = "auto")]
        device: cvtk_model::DeviceChoice,
        /// Seconds to wait for the model to load.
        #[arg(long, default_value_t = deploy_defaults().ready_timeout.as_secs())]
        ready_timeout_s: u64,
        /// More `cvtk serve` flags, after `--` (e.g. -- --max-batch 16).
        #[arg(last = true)]
        serve_args: Vec<String>,
        #[command(flatten)]
        home: Home,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List recorded deployments and whether they run.
    List {
        #[command(flatten)]
        home: Home,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a deployment's endpoint, key and how to call it with curl.
    Show {
        /// The deployment's name.
        #[arg(value_parser = crate::output::deployment_name)]
        name: String,
        #[command(flatten)]
        home: Home,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Score images with a deployment over HTTP.
    Score {
        /// The deployment's name.
        #[arg(value_parser = crate::output::deployment_name)]
        name: String,
        /// Image files or http(s) URLs.
        #[arg(required = true)]
        images: Vec<String>,
        /// Resize each image to WIDTHxHEIGHT before sending.
        #[arg(long, value_parser = parse_dims)]
        resize: Option<(u32, u32)>,
        #[command(flatten)]
        home: Home,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a deployment and remove its record.
    Delete {
        /// The deployment's name.
        #[arg(value_parser = crate::output::deployment_name)]
        name: String,
        #[command(flatten)]
        home: Home,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a container build context for a deployment's model (the program, the libraries it
    /// needs, the model; no Python), and with --build build it with podman, buildah or docker.
    #[command(after_help = docker_help())]
    Docker {
        /// The deployment's name (its model is used unless --model is given).
        #[arg(value_parser = crate::output::deployment_name)]
        name: String,
        /// The build context folder to write.
        #[arg(long)]
        out: PathBuf,
        /// The model folder (default: the recorded deployment's).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Image tag (default cvtk-NAME:latest).
        #[arg(long)]
        image: Option<String>,
        /// Build the image after writing the context.
        #[arg(long)]
        build: bool,
        /// The image to build on: Debian-like, with a glibc as new as this machine's.
        #[arg(long, default_value = cvtk_deploy::artifacts::DEFAULT_BASE_IMAGE)]
        base_image: String,
        /// The container tool (default: the first of podman, buildah, docker that answers).
        #[arg(long)]
        builder: Option<PathBuf>,
        #[command(flatten)]
        home: Home,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a Kubernetes Indexed Job that scores a folder, manifest or list on a volume in N shards
    /// (`cvtk score --shard K/N` per pod, on the image from `deploy docker`).
    #[command(name = "k8s-batch")]
    K8sBatch {
        /// The job's name.
        #[arg(value_parser = crate::output::deployment_name)]
        name: String,
        /// The folder to write job.yaml into.
        #[arg(long)]
        out: PathBuf,
        /// Shards: pods, each scoring one part of the input.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        shards: u32,
        /// Pods running at once (default: all shards).
        #[arg(long)]
        parallelism: Option<u32>,
        /// The PersistentVolumeClaim holding the input and the outputs; mounted at /data.
        #[arg(long)]
        claim: String,
        /// What to score, under /data: a folder, a manifest (.json) or a list file.
        #[arg(long)]
        input: String,
        /// The folder under /data for the outputs, part-K.FORMAT per shard.
        #[arg(long)]
        output: String,
        /// The outputs' format: jsonl, csv or parquet.
        #[arg(long, default_value = "jsonl")]
        format: cvtk_score::Format,
        /// Container image (default cvtk-NAME:latest).
        #[arg(long)]
        image: Option<String>,
        /// CPUs (and scoring threads) per pod.
        #[arg(long, default_value_t = BatchOptions::default().cpu, value_parser = clap::value_parser!(u32).range(1..))]
        cpu: u32,
        /// Memory per pod (a Kubernetes quantity).
        #[arg(long, default_value_t = BatchOptions::default().memory, value_parser = cvtk_deploy::artifacts::check_memory_quantity)]
        memory: String,
        /// Labels kept per image.
        #[arg(long, default_value_t = BatchOptions::default().top, value_parser = clap::value_parser!(u32).range(1..))]
        top: u32,
        /// Print JSON: the job file written and where the outputs go.
        #[arg(long)]
        json: bool,
    },
    /// Write Kubernetes manifests (Deployment, Service, HorizontalPodAutoscaler, Secret).
    K8s {
        /// The deployment's name.
        #[arg(value_parser = crate::output::deployment_name)]
        name: String,
        /// The folder to write the manifests into.
        #[arg(long)]
        out: PathBuf,
        /// Container image (default cvtk-NAME:latest).
        #[arg(long)]
        image: Option<String>,
        /// A file holding the service key for the Secret (first line), or set CVTK_SERVICE_KEY; by default,
        /// the recorded deployment's key, else a new one.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Retired: a key on the command line is visible in `ps`.
        #[arg(long = "key", hide = true, value_parser = crate::secret::refuse("--key-file", "CVTK_SERVICE_KEY"))]
        key_on_command_line: Option<String>,
        /// Write a KServe InferenceService (Open Inference Protocol, custom container) and the Secret,
        /// instead of the Deployment, Service and autoscaler.
        #[arg(long)]
        kserve: bool,
        /// Fewest replicas.
        #[arg(long, default_value_t = K8sOptions::default().min_replicas)]
        min_replicas: u32,
        /// Most replicas.
        #[arg(long, default_value_t = K8sOptions::default().max_replicas)]
        max_replicas: u32,
        /// Average CPU use (percent) the autoscaler aims at.
        #[arg(long, default_value_t = K8sOptions::default().cpu_target_percent)]
        cpu_target: u32,
        /// CPU limit per replica, in cores; also the service's decoding threads.
        #[arg(long, default_value_t = K8sOptions::default().cpu_limit, value_parser = clap::value_parser!(u32).range(1..))]
        cpu_limit: u32,
        /// Memory limit per replica (a Kubernetes quantity); at least twice the decoding memory.
        #[arg(long, default_value_t = K8sOptions::default().memory_limit, value_parser = cvtk_deploy::artifacts::check_memory_quantity)]
        memory_limit: String,
        /// Memory all image decodings of a replica may take together, in MiB (at least 704).
        #[arg(long, default_value_t = K8sOptions::default().decode_memory_mb)]
        decode_memory_mb: u64,
        #[command(flatten)]
        home: Home,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Listed {
    name: String,
    url: String,
    pid: u32,
    status: DeploymentStatus,
    model_dir: PathBuf,
}

/// The library's defaults of a local deployment, which `deploy create`'s
/// flags show and start from.
fn deploy_defaults() -> DeployConfig {
    DeployConfig::default()
}

/// `--resize WIDTHxHEIGHT`, each at least 1.
fn parse_dims(s: &str) -> Result<(u32, u32), String> {
    let usage = || format!("'{s}' is not WIDTHxHEIGHT, e.g. 224x224");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(usage)?;
    match (w.trim().parse::<u32>(), h.trim().parse::<u32>()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(usage()),
    }
}

/// `cvtk deploy docker --help`'s end: how to make the default base image.
fn docker_help() -> String {
    let recipe = cvtk_deploy::artifacts::base_image_recipe(cvtk_deploy::artifacts::DEFAULT_BASE_IMAGE, "podman");
    format!(
        "The default base image, {}, is made from Debian's packages, nothing fetched from a container registry; in \
         any folder, as the user who builds:\n  {}\n(In a cvtk checkout, `make base-image` does the same.)",
        cvtk_deploy::artifacts::DEFAULT_BASE_IMAGE,
        recipe.replace('\n', "\n  ")
    )
}

/// An artifact writer's error: a setting it refused came from a flag (a usage
/// error, exit 2), except the key, which comes from a file or the
/// environment; anything else (writing files) is a runtime error.
fn flag_error(e: cvtk_deploy::Error) -> anyhow::Error {
    match &e {
        cvtk_deploy::Error::InvalidConfig { field, .. } if *field != "key" => crate::output::usage_error(e).into(),
        _ => e.into(),
    }
}

/// Runs a `cvtk deploy` subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create { name, model, host, port, device, ready_timeout_s, serve_args, home, json } => {
            // A bad serve flag is a usage error (exit 2), as on `cvtk serve`.
            let flags = ServeFlags::try_parse_from(&serve_args)?;
            let serve = cvtk_deploy::ServeConfig { host, port, ..flags.settings.config() };
            serve.check_settings().map_err(crate::output::usage_error)?;
            let config = DeployConfig {
                device: device.to_string(),
                serve,
                ready_timeout: Duration::from_secs(ready_timeout_s),
                ..DeployConfig::default()
            };
            let record = Deployment::new(&name, &model, config).deploy(&home.storage())?;
            if json {
                return print_json(&record);
            }
            println!("deployed {} at {} (pid {})", record.name, record.url, record.pid);
            println!("see how to call it: cvtk deploy show {}", record.name);
        }
        Command::List { home, json } => {
            let all = list_deployments(&home.storage())?;
            let listed: Vec<Listed> = all
                .into_iter()
                .map(|(r, status)| Listed { name: r.name, url: r.url, pid: r.pid, status, model_dir: r.model_dir })
                .collect();
            if json {
                return print_json(&listed);
            }
            if listed.is_empty() {
                println!("no deployments (create one with `cvtk deploy create NAME --model DIR`)");
            }
            for l in &listed {
                println!("{:<20} {:<12} {:<28} pid {:<8} {}", l.name, l.status, l.url, l.pid, l.model_dir.display());
            }
        }
        Command::Show { name, home, json } => {
            let r = get_deployment(&home.storage(), &name)?;
            let status = r.status();
            // The key itself is never printed (it would end up in terminals,
            // logs and screenshots): its file is.
            let key_file = r.key_file.display().to_string();
            if json {
                #[derive(Serialize)]
                struct Shown<'a> {
                    name: &'a str,
                    url: &'a str,
                    scoring_url: String,
                    v2_infer_url: String,
                    key_file: &'a str,
                    status: DeploymentStatus,
                    pid: u32,
                    model_dir: &'a std::path::Path,
                    log_file: &'a std::path::Path,
                }
                return print_json(&Shown {
                    name: &r.name,
                    url: &r.url,
                    scoring_url: format!("{}/score", r.url),
                    v2_infer_url: r.v2_infer_url(),
                    key_file: &key_file,
                    status,
                    pid: r.pid,
                    model_dir: &r.model_dir,
                    log_file: &r.log_file,
                });
            }
            println!(
                "name:     {}\nstatus:   {status}\nendpoint: {}/score\nkey file: {key_file}\nmodel:    {}\nlog:      {}",
                r.name,
                r.url,
                r.model_dir.display(),
                r.log_file.display()
            );
            let auth = format!("-H \"Authorization: Bearer $(cat '{key_file}')\"");
            println!("\nscore an image with curl:");
            println!(
                "  curl -s {auth} -H 'Content-Type: image/jpeg' --data-binary @IMAGE.jpg '{}/score?add_softmax=true'",
                r.url
            );
            println!("or with the original package's JSON payload:");
            println!("  echo \"[{{\\\"image_in_base64\\\": \\\"$(base64 -w0 IMAGE.jpg)\\\", \\\"parameters\\\": {{\\\"add_softmax\\\": true}}}}]\" | curl -s {auth} -H 'Content-Type: application/json' --data-binary @- {}/score", r.url);
            println!("or with the Open Inference Protocol (KServe v2; the model answers as '{}'):", r.v2_model_name());
            println!(
                "  echo \"{{\\\"inputs\\\": [{{\\\"name\\\": \\\"image\\\", \\\"datatype\\\": \\\"BYTES\\\", \\\"shape\\\": [1], \\\"data\\\": [\\\"$(base64 -w0 IMAGE.jpg)\\\"]}}]}}\" | curl -s {auth} -H 'Content-Type: application/json' --data-binary @- {}",
                r.v2_infer_url()
            );
        }
        Command::Score { name, images, resize, home, json } => {
            let r = get_deployment(&home.storage(), &name)?;
            if r.status() == DeploymentStatus::Dead {
                bail!("deployment '{name}' is not running (its process is gone); delete it and create it again");
            }
            let dims = resize;
            let client = r.client()?;
            let results: Vec<(String, ItemResult)> = images
                .iter()
                .map(|img| Ok((img.clone(), client.score_image(img.as_str(), dims, Parameters { add_softmax: true })?)))
                .collect::<anyhow::Result<_>>()?;
            if json {
                #[derive(Serialize)]
                struct Scored<'a> {
                    image: &'a str,
                    #[serde(flatten)]
                    result: &'a ItemResult,
                }
                let out: Vec<Scored> = results.iter().map(|(i, r)| Scored { image: i, result: r }).collect();
                return print_json(&out);
            }
            for (img, result) in results {
                match result {
                    ItemResult::Scored(s) => println!("{img}: {} ({:.2}%)", s.label, 100.0 * s.score),
                    ItemResult::Failed { error } => println!("{img}: error: {error}"),
                }
            }
        }
        Command::Delete { name, home, json } => {
            if delete_if_service_exist(&home.storage(), &name)? {
                if json {
                    return print_json(&serde_json::json!({ "deleted": name }));
                }
                println!("deleted {name}");
            } else {
                bail!("no deployment named '{name}' (see `cvtk deploy list`)");
            }
        }
        Command::Docker { name, out, model, image, build, base_image, builder, home, json } => {
            let model = match model {
                Some(m) => m,
                None => get_deployment(&home.storage(), &name)
                    .map(|r| r.model_dir)
                    .with_context(|| format!("no --model given and no deployment '{name}' recorded"))?,
            };
            let options = DockerOptions { image, build, base_image, builder, ..DockerOptions::default() };
            let built = build_docker_image(&name, &model, &out, &options)?;
            if json {
                return print_json(&built);
            }
            println!(
                "build context: {}\nimage: {}\n{}\nscoring: {}\nlibraries: {}",
                built.context.display(),
                built.image,
                built.note,
                built.engine,
                built.libraries.join(", ")
            );
            if let Some(size) = built.size_bytes {
                println!("image size: {:.0} MB", size as f64 / 1e6);
            }
        }
        Command::K8sBatch {
            name,
            out,
            shards,
            parallelism,
            claim,
            input,
            output,
            format,
            image,
            cpu,
            memory,
            top,
            json,
        } => {
            let options = BatchOptions {
                image,
                shards,
                parallelism,
                claim,
                input,
                output,
                format: format.to_string(),
                top,
                cpu,
                memory,
                ..BatchOptions::default()
            };
            let file = write_k8s_batch_job(&name, &out, &options).map_err(flag_error)?;
            if json {
                return print_json(&serde_json::json!({
                    "job": file,
                    "outputs": format!("{}/part-K.{}", options.output.trim_end_matches('/'), options.format),
                    "claim": options.claim,
                    "shards": options.shards,
                }));
            }
            println!("wrote {}", file.display());
            println!("run it:      kubectl apply -f {}", file.display());
            println!("watch it:    kubectl get job {name} -w   (and: kubectl get pods -l job-name={name})");
            println!(
                "its outputs: {}/part-K.{} on claim {}, one per shard",
                options.output, options.format, options.claim
            );
        }
        Command::K8s {
            name,
            out,
            image,
            key_file,
            min_replicas,
            max_replicas,
            cpu_target,
            cpu_limit,
            memory_limit,
            decode_memory_mb,
            home,
            json,
            kserve,
            ..
        } => {
            let key = match cvtk_deploy::client_key(key_file.as_deref())? {
                Some(k) => k,
                None => match get_deployment(&home.storage(), &name) {
                    Ok(r) => r.key()?,
                    Err(_) => cvtk_deploy::generate_key(),
                },
            };
            let options = K8sOptions {
                image,
                key,
                min_replicas,
                max_replicas,
                cpu_target_percent: cpu_target,
                cpu_limit,
                memory_limit,
                decode_memory_mb,
                kserve,
                ..K8sOptions::default()
            };
            let files = write_k8s_manifests(&name, &out, &options).map_err(flag_error)?;
            if json {
                return print_json(&files);
            }
            for f in &files {
                println!("wrote {}", f.display());
            }
            println!("apply with: kubectl apply -f {}", out.display());
        }
    }
    Ok(())
}

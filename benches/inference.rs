//! Inference speed: ResNet-18, ResNet-50 and EfficientNet-Lite0 at batch 1 and
//! 16, images per second, cvtk's engines (libtorch through tch, plain and
//! fused, eval mode, no grad; and onnxruntime on cvtk's own ONNX export, the
//! default on the CPU, through the classifier's scoring call, in a process of
//! its own as each Python peer gets) against
//! PyTorch eager, TorchScript (`torch.jit.freeze` + `optimize_for_inference`)
//! and Python's onnxruntime on PyTorch's ONNX export, all from the same
//! weights file and the same input, 2 threads each, alternating.
//!
//! `cargo bench --bench inference` (or `make bench`) prints a Markdown table;
//! without `--bench` (as `cargo test` runs it) it runs ResNet-18 at batch 1
//! briefly, so the benchmark cannot rot. Before timing, it checks that each of
//! cvtk's engines gives PyTorch's logits for the same weights (max abs
//! difference < 1e-3).

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context};
use cvtk::dataset::ImageBatch;
use cvtk::model::nets::resnet::fused::FusedResnet;
use cvtk::model::weights::{load_into, read_state_dict};
use cvtk::model::{compile, Architecture, BaseModel, Engine, EngineChoice, Scorer, TransferModel};
use tch::{nn, Device, Kind, Tensor};

const THREADS: usize = 2;

fn python(root: &Path, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    common::python_peer(root, "inference_peers.py", args, Some(THREADS))
}

fn read_f32(path: &Path, shape: &[i64]) -> anyhow::Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Tensor::f_from_data_size(&bytes, shape, Kind::Float)?)
}

/// Images per second of `forward` at `batch`, for about `seconds`.
fn rate(
    forward: &dyn Fn(&Tensor) -> anyhow::Result<Tensor>,
    input: &Tensor,
    batch: i64,
    seconds: f64,
) -> anyhow::Result<f64> {
    let x = input.narrow(0, 0, batch);
    tch::no_grad(|| -> anyhow::Result<f64> {
        for _ in 0..3 {
            let _ = forward(&x)?;
        }
        let (mut n, start) = (0i64, Instant::now());
        while start.elapsed().as_secs_f64() < seconds {
            let y = forward(&x)?;
            ensure!(y.size()[0] == batch);
            n += batch;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    })
}

/// Images per second of cvtk's classifier call on `batch` images of `input`,
/// for about `seconds`.
fn rate_classifier(model: &dyn Scorer, input: &Tensor, batch: i64, seconds: f64) -> anyhow::Result<f64> {
    let x = input.narrow(0, 0, batch).contiguous();
    let data = Vec::<f32>::try_from(x.flatten(0, -1))?;
    let images = ImageBatch::new(data, [batch as usize, 3, 224, 224])?;
    for _ in 0..3 {
        model.score_images(&images)?;
    }
    let (mut n, start) = (0i64, Instant::now());
    while start.elapsed().as_secs_f64() < seconds {
        ensure!(model.score_images(&images)?.len() == batch as usize);
        n += batch;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// `--profile ARCH BATCH SECONDS`: only cvtk's scoring path on random weights,
/// for `perf record` (no Python, nothing else in the process).
fn profile(args: &[String]) -> anyhow::Result<()> {
    let arch: Architecture = args.first().context("--profile ARCH BATCH SECONDS")?.parse()?;
    let batch: i64 = args.get(1).context("BATCH")?.parse()?;
    let seconds: f64 = args.get(2).context("SECONDS")?.parse()?;
    let vs = nn::VarStore::new(Device::Cpu);
    let net = arch.build(&vs.root(), Some(1000));
    let fused = FusedResnet::from_vars(arch, &vs.variables(), "", true)?;
    let input = Tensor::randn([batch, 3, 224, 224], (Kind::Float, Device::Cpu));
    let forward = |x: &Tensor| -> anyhow::Result<Tensor> {
        match &fused {
            Some(f) => Ok(f.forward(x)?),
            None => Ok(net.forward_t(x, false)),
        }
    };
    let r = rate(&forward, &input, batch, seconds)?;
    println!("{arch} batch {batch}: {r:.1} images/s");
    Ok(())
}

/// `--profile-ort ARCH BATCH SECONDS [WEIGHTS [INPUT]]`: only cvtk's
/// onnxruntime engine, in a process of its own (the ImageNet classifier of
/// `WEIGHTS`, random weights without; on `INPUT`, a `[16, 3, 224, 224]`
/// float32 file, random without): what the table's cvtk onnxruntime column
/// runs, and what `perf record` should watch. Prints one JSON line.
fn profile_ort(args: &[String]) -> anyhow::Result<()> {
    let arch: Architecture = args.first().context("--profile-ort ARCH BATCH SECONDS [WEIGHTS [INPUT]]")?.parse()?;
    let batch: i64 = args.get(1).context("BATCH")?.parse()?;
    let seconds: f64 = args.get(2).context("SECONDS")?.parse()?;
    let weights = args.get(3).map(std::path::PathBuf::from);
    let model = TransferModel::imagenet(&BaseModel::new(arch, weights), Device::Cpu)?;
    let classifier = compile(&model, EngineChoice::Onnxruntime)?;
    ensure!(classifier.engine() == Engine::Onnxruntime);
    let input = match args.get(4) {
        Some(path) => read_f32(Path::new(path), &[16, 3, 224, 224])?,
        None => Tensor::randn([16, 3, 224, 224], (Kind::Float, Device::Cpu)),
    };
    let r = rate_classifier(&classifier, &input, batch, seconds)?;
    println!("{}", serde_json::json!({ "arch": arch.name(), "batch": batch, "images_per_second": r }));
    Ok(())
}

/// cvtk's onnxruntime engine in a fresh process, as each Python peer runs:
/// images per second.
fn ort_in_own_process(arch: Architecture, batch: i64, seconds: f64, dir: &Path) -> anyhow::Result<f64> {
    let weights = dir.join(format!("{}.pth", arch.name()));
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--profile-ort", arch.name(), &batch.to_string(), &seconds.to_string()])
        .arg(&weights)
        .arg(dir.join("input.bin"))
        .output()?;
    ensure!(out.status.success(), "cvtk onnxruntime run failed: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout)?;
    let v: serde_json::Value = serde_json::from_str(line.lines().last().context("no output")?)?;
    v["images_per_second"].as_f64().context("no images_per_second")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    tch::set_num_threads(THREADS as i32);
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        return profile(&args[i + 1..]);
    }
    if let Some(i) = args.iter().position(|a| a == "--profile-ort") {
        return profile_ort(&args[i + 1..]);
    }
    let full = args.iter().any(|a| a == "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let archs: &[Architecture] = if full {
        &[Architecture::Resnet18, Architecture::Resnet50, Architecture::EfficientnetLite0]
    } else {
        &[Architecture::Resnet18]
    };
    let (batches, rounds, seconds): (&[i64], usize, f64) = if full { (&[1, 16], 3, 3.0) } else { (&[1], 1, 0.2) };
    let engines = ["eager", "jit", "onnxruntime"];
    println!(
        "inference: 224x224, {THREADS} threads, {rounds} rounds of about {seconds} s per engine, alternating; images/s\n"
    );
    println!(
        "| model | batch | cvtk torch plain | cvtk torch fused | cvtk onnxruntime | PyTorch eager | TorchScript frozen \
         | Python onnxruntime | cvtk onnxruntime / Python onnxruntime | cvtk onnxruntime / best peer |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &arch in archs {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().to_str().context("temp path")?;
        let lite = BaseModel::pretrained(Architecture::EfficientnetLite0).ok().and_then(|b| b.weights);
        let mut prepare = vec!["prepare", arch.name(), dir];
        let lite_path;
        if arch == Architecture::EfficientnetLite0 {
            lite_path = lite.context("EfficientNet-Lite0 weights missing; run `make test-setup`")?;
            prepare.push(lite_path.to_str().context("weights path")?);
        }
        python(root, &prepare)?;
        let weights = tmp.path().join(format!("{}.pth", arch.name()));
        let vs = nn::VarStore::new(Device::Cpu);
        let net = arch.build(&vs.root(), Some(1000));
        load_into(&vs, read_state_dict(&weights)?, &weights, &[])?;
        let input = read_f32(&tmp.path().join("input.bin"), &[16, 3, 224, 224])?;
        let expected = read_f32(&tmp.path().join("logits.bin"), &[16, 1000])?;
        let vars: std::collections::HashMap<String, Tensor> = vs.variables();
        let fused = FusedResnet::from_vars(arch, &vars, "", true)?;
        let plain = |x: &Tensor| -> anyhow::Result<Tensor> { Ok(net.forward_t(x, false)) };
        let fast = |x: &Tensor| -> anyhow::Result<Tensor> {
            match &fused {
                Some(f) => Ok(f.forward(x)?),
                None => Ok(net.forward_t(x, false)),
            }
        };
        for (name, forward) in [("plain", &plain as &dyn Fn(&Tensor) -> anyhow::Result<Tensor>), ("fused", &fast)] {
            let got = tch::no_grad(|| forward(&input))?;
            let diff = (&got - &expected).abs().max().double_value(&[]);
            ensure!(diff < 1e-3, "{arch} ({name}): cvtk's logits differ from PyTorch's by {diff:e}");
        }
        // cvtk's onnxruntime engine: the ImageNet classifier of these weights.
        let model = TransferModel::imagenet(&BaseModel::new(arch, Some(weights.clone())), Device::Cpu)?;
        let classifier = compile(&model, EngineChoice::Onnxruntime)?;
        ensure!(classifier.engine() == Engine::Onnxruntime);
        {
            let data = Vec::<f32>::try_from(input.flatten(0, -1))?;
            let rows = classifier.score_images(&ImageBatch::new(data, [16, 3, 224, 224])?)?;
            let got = Tensor::from_slice(&rows.concat()).reshape([16, 1000]);
            let diff = (&got - &expected).abs().max().double_value(&[]);
            ensure!(diff < 1e-3, "{arch} (onnxruntime): cvtk's logits differ from PyTorch's by {diff:e}");
        }
        for &batch in batches {
            let (mut ours, mut ours_fused, mut ours_ort) = (Vec::new(), Vec::new(), Vec::new());
            let mut theirs: Vec<Vec<f64>> = vec![Vec::new(); engines.len()];
            for _ in 0..rounds {
                ours.push(rate(&plain, &input, batch, seconds)?);
                ours_fused.push(rate(&fast, &input, batch, seconds)?);
                ours_ort.push(ort_in_own_process(arch, batch, seconds, tmp.path())?);
                for (i, engine) in engines.iter().enumerate() {
                    let v = python(
                        root,
                        &[
                            "run",
                            arch.name(),
                            dir,
                            engine,
                            &batch.to_string(),
                            &seconds.to_string(),
                            &THREADS.to_string(),
                        ],
                    )?;
                    theirs[i].push(common::images_per_second(&v)?);
                }
            }
            let (ours, fused_rate, ort_rate) =
                (common::median(ours), common::median(ours_fused), common::median(ours_ort));
            let peers: Vec<f64> = theirs.into_iter().map(common::median).collect();
            let best = peers.iter().copied().fold(0.0, f64::max);
            ensure!(ours > 0.0 && best > 0.0, "a rate was not positive");
            println!(
                "| {arch} | {batch} | {ours:.1} | {fused_rate:.1} | {ort_rate:.1} | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2}x |",
                peers[0],
                peers[1],
                peers[2],
                ort_rate / peers[2],
                ort_rate / best
            );
        }
    }
    Ok(())
}

//! Which engine scores: libtorch (`tch`, the training graph or the fused
//! ResNet) or onnxruntime (the model's ONNX export, [`crate::onnx`]).
//!
//! A model scores with libtorch; [`crate::compile`] makes it a
//! [`crate::Scorer`] for the engine chosen, once. [`EngineChoice::Auto`] (the
//! default) picks onnxruntime on the CPU when its library can be loaded and
//! libtorch on CUDA; when onnxruntime cannot be loaded, or cannot run the
//! model, it falls back to libtorch with a log line, at that moment. Asking for
//! [`EngineChoice::Onnxruntime`] without it is an error that says how to
//! install it. Training always runs on libtorch.
//!
//! The library (`libonnxruntime.so`, from PyPI's `onnxruntime` wheel, which
//! `make setup` installs) is found, in order: `$CVTK_ONNXRUNTIME_LIB`; the path
//! recorded when this program was built (`make setup` writes it into
//! `.cargo/config.toml`); beside the running program (or in its `lib/`); then
//! the system's library search path. `CVTK_ONNXRUNTIME_LIB=none` turns it off.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use cvtk_dataset::ImageBatch;
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::{Error, Result};

/// Which engine a model should score with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// onnxruntime on the CPU when its library loads, else libtorch.
    #[default]
    Auto,
    /// libtorch, always.
    Torch,
    /// onnxruntime (CPU); an error when its library cannot be loaded.
    Onnxruntime,
}

impl std::str::FromStr for EngineChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(EngineChoice::Auto),
            "torch" => Ok(EngineChoice::Torch),
            "onnxruntime" | "ort" => Ok(EngineChoice::Onnxruntime),
            other => Err(Error::InvalidConfig {
                field: "engine",
                reason: format!("'{other}' is not one of auto, torch, onnxruntime"),
            }),
        }
    }
}

impl std::fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Torch => "torch",
            EngineChoice::Onnxruntime => "onnxruntime",
        })
    }
}

/// The engine a model scores with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// libtorch.
    Torch,
    /// onnxruntime.
    Onnxruntime,
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Torch => "torch",
            Engine::Onnxruntime => "onnxruntime",
        })
    }
}

/// The onnxruntime version cvtk is built for (`ort`'s API level).
pub const ONNXRUNTIME_VERSION: &str = "1.31";

/// Where the onnxruntime library is looked for, in order (see the module
/// documentation).
/// `CVTK_ONNXRUNTIME_LIB=none` turns onnxruntime off.
pub fn onnxruntime_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("CVTK_ONNXRUNTIME_LIB").filter(|p| !p.is_empty()) {
        if p == "none" {
            return out;
        }
        out.push(PathBuf::from(p));
    }
    if let Some(p) = option_env!("CVTK_ONNXRUNTIME_LIB").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        for d in [dir.clone(), dir.join("lib"), dir.join("../lib")] {
            out.push(d.join("libonnxruntime.so"));
        }
    }
    out.push(PathBuf::from("libonnxruntime.so"));
    out
}

/// The loaded onnxruntime, or why it could not be loaded.
static RUNTIME: OnceLock<std::result::Result<(ort::environment::Environment, PathBuf), String>> = OnceLock::new();

/// The onnxruntime environment, loading the library on first use; the error
/// says where it looked and how to install it.
pub fn onnxruntime() -> Result<&'static ort::environment::Environment> {
    let loaded = RUNTIME.get_or_init(|| {
        let mut tried = Vec::new();
        for path in onnxruntime_candidates() {
            // A bare name goes to the system's search path; a path must exist.
            if path.components().count() > 1 && !path.is_file() {
                tried.push(format!("{} (missing)", path.display()));
                continue;
            }
            match ort::init_from(&path) {
                Ok(builder) => {
                    let env = builder.with_name("cvtk").build().map_err(|e| first_line(&e.to_string()))?;
                    tracing::info!("onnxruntime loaded from {}", path.display());
                    return Ok((env, path));
                }
                Err(e) => tried.push(format!("{} ({})", path.display(), first_line(&e.to_string()))),
            }
        }
        Err(format!(
            "cannot load onnxruntime {ONNXRUNTIME_VERSION} (tried {}); run `make setup` (it installs PyPI's \
             onnxruntime into .venv), or point CVTK_ONNXRUNTIME_LIB at libonnxruntime.so, or use --engine torch",
            tried.join(", ")
        ))
    });
    loaded.as_ref().map(|(env, _)| env).map_err(|e| Error::Engine(e.clone()))
}

/// The onnxruntime library file in use (loading it if needed), for
/// deployment artifacts that ship it beside `cvtk`.
pub fn onnxruntime_library() -> Result<PathBuf> {
    onnxruntime()?;
    let (_, path) = RUNTIME.get().and_then(|r| r.as_ref().ok()).ok_or_else(|| Error::Engine("not loaded".into()))?;
    // A bare name was found on the search path: ask the dynamic loader's
    // view of the process for the file.
    if path.components().count() > 1 {
        return Ok(path.canonicalize().unwrap_or_else(|_| path.clone()));
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|f| f.contains("libonnxruntime.so"))
        .map(PathBuf::from)
        .ok_or_else(|| Error::Engine(format!("cannot tell where {} was loaded from", path.display())))
}

/// Whether onnxruntime can be loaded here.
pub fn onnxruntime_available() -> bool {
    onnxruntime().is_ok()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn ort_err(e: impl std::fmt::Display) -> Error {
    Error::Engine(first_line(&e.to_string()))
}

impl EngineChoice {
    /// The engine this choice gives on `device`: libtorch on CUDA, and for
    /// `Auto` on the CPU, onnxruntime when it loads (with one warning when it
    /// does not).
    pub fn resolve(self, device: Device) -> Result<Engine> {
        static WARNED: AtomicBool = AtomicBool::new(false);
        match (self, device) {
            (EngineChoice::Torch, _) => Ok(Engine::Torch),
            (EngineChoice::Onnxruntime, Device::Cpu) => onnxruntime().map(|_| Engine::Onnxruntime),
            (EngineChoice::Onnxruntime, d) => Err(Error::InvalidConfig {
                field: "engine",
                reason: format!("onnxruntime runs on the CPU here, not {d:?}; use --engine torch for the GPU"),
            }),
            (EngineChoice::Auto, Device::Cpu) => match onnxruntime() {
                Ok(_) => Ok(Engine::Onnxruntime),
                Err(e) => {
                    if !WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!("scoring with libtorch: {e}");
                    }
                    Ok(Engine::Torch)
                }
            },
            (EngineChoice::Auto, _) => Ok(Engine::Torch),
        }
    }
}

impl EngineChoice {
    /// The onnxruntime session this choice gives on `device` over the graph
    /// `graph` makes (read at its output `output`), or None where libtorch
    /// runs: for `Torch`, on CUDA, and under `Auto` when onnxruntime cannot be
    /// loaded or cannot run the graph (then "`doing` with libtorch" is logged,
    /// naming `what`). Asked for by name, a graph that cannot be made (a
    /// weights file that cannot be read) is that error, and a session
    /// onnxruntime refuses is an [`Error::Engine`]. What [`crate::compile`]
    /// and [`crate::Featurizer::compile`] decide with, once.
    pub(crate) fn session(
        self,
        device: Device,
        output: &str,
        doing: &str,
        what: &str,
        graph: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Option<OrtSession>> {
        if self.resolve(device)? == Engine::Torch {
            return Ok(None);
        }
        let session = graph().and_then(|g| match OrtSession::new(&g, output) {
            Err(Error::Engine(e)) => Err(Error::Engine(e)),
            Err(e) => Err(Error::Engine(format!("onnxruntime cannot run {what}: {e}"))),
            ok => ok,
        });
        match session {
            Ok(s) => Ok(Some(s)),
            Err(e) if self == EngineChoice::Auto => {
                tracing::warn!("{doing} with libtorch: onnxruntime cannot run {what}: {e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Threads each engine may use for one batch; 0 (the default) means one per
/// core. See [`set_threads`].
static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Limits the threads both engines use to score a batch (libtorch's intra-op
/// pool now; onnxruntime's for sessions built after this call): for running
/// several scoring processes side by side on one machine. 0 means one per
/// core.
pub fn set_threads(n: usize) {
    THREADS.store(n, std::sync::atomic::Ordering::Relaxed);
    if n > 0 {
        tch::set_num_threads(i32::try_from(n).unwrap_or(i32::MAX));
    }
}

/// The threads a session gets: [`set_threads`]'s, else one per core.
fn threads() -> usize {
    match THREADS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// An onnxruntime session over one model's graph. Runs one batch at a time.
pub(crate) struct OrtSession {
    session: Mutex<ort::session::Session>,
    output: String,
}

impl std::fmt::Debug for OrtSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtSession").field("output", &self.output).finish_non_exhaustive()
    }
}

impl OrtSession {
    /// A session over the ONNX `bytes`, reading the output `output`.
    pub fn new(bytes: &[u8], output: &str) -> Result<Self> {
        let env = onnxruntime()?;
        let threads = threads();
        let session = ort::session::Session::builder(env)
            .map_err(ort_err)?
            .with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)
            .map_err(ort_err)?
            .with_intra_threads(threads)
            .map_err(ort_err)?
            .commit_from_memory(bytes)
            .map_err(ort_err)?;
        let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        if !names.contains(&output) {
            return Err(Error::InvalidInput(format!(
                "the ONNX graph has no output '{output}' (it has {}); it was not exported by cvtk for this model: \
                 delete {} from the model folder and cvtk rebuilds it",
                if names.is_empty() { "none".to_string() } else { names.join(", ") },
                crate::onnx::MODEL_ONNX
            )));
        }
        Ok(OrtSession { session: Mutex::new(session), output: output.to_string() })
    }

    /// The outputs `names` of a batch, each as its shape and values.
    pub fn run_outputs(&self, batch: &ImageBatch, names: &[&str]) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let shape: Vec<i64> = batch.shape().iter().map(|&d| d as i64).collect();
        let input = ort::value::TensorRef::from_array_view((shape, batch.data())).map_err(ort_err)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(ort::inputs![input]).map_err(ort_err)?;
        names
            .iter()
            .map(|name| {
                let output = outputs
                    .get(*name)
                    .ok_or_else(|| Error::InvalidInput(format!("the ONNX graph gave no output '{name}'")))?;
                let (shape, data) = output.try_extract_tensor::<f32>().map_err(ort_err)?;
                Ok((shape.iter().map(|&d| d.max(0) as usize).collect(), data.to_vec()))
            })
            .collect()
    }

    /// The output rows of a batch, the batch's values handed over without a copy.
    pub fn run(&self, batch: &ImageBatch) -> Result<Vec<Vec<f32>>> {
        let shape: Vec<i64> = batch.shape().iter().map(|&d| d as i64).collect();
        let input = ort::value::TensorRef::from_array_view((shape, batch.data())).map_err(ort_err)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(ort::inputs![input]).map_err(ort_err)?;
        let output = outputs
            .get(self.output.as_str())
            .ok_or_else(|| Error::InvalidInput(format!("the ONNX graph gave no output '{}'", self.output)))?;
        let (shape, data) = output.try_extract_tensor::<f32>().map_err(ort_err)?;
        let cols = shape.get(1).copied().unwrap_or(1).max(1) as usize;
        Ok(data.chunks(cols).map(<[f32]>::to_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_choices_parse_and_torch_is_always_torch() {
        assert_eq!("auto".parse::<EngineChoice>().unwrap(), EngineChoice::Auto);
        assert_eq!("onnxruntime".parse::<EngineChoice>().unwrap(), EngineChoice::Onnxruntime);
        let e = "tensorrt".parse::<EngineChoice>().unwrap_err().to_string();
        assert!(e.contains("auto, torch, onnxruntime"), "{e}");
        assert_eq!(EngineChoice::Torch.resolve(Device::Cpu).unwrap(), Engine::Torch);
        assert_eq!(EngineChoice::Auto.resolve(Device::Cuda(0)).unwrap(), Engine::Torch);
        assert!(EngineChoice::Onnxruntime.resolve(Device::Cuda(0)).is_err());
    }

    #[test]
    fn a_graph_with_flip_baked_in_scores_as_cvtk_does_with_flip() {
        use crate::{Architecture, BaseModel, Classifier, Scorer, TransferModel, TtaMode};
        let base = BaseModel::new(Architecture::Resnet18, None);
        let model = TransferModel::new_seeded(vec!["a".into(), "b".into()], &base, Some(64), Device::Cpu, 3).unwrap();
        let data: Vec<f32> = (0..2 * 3 * 64 * 64).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let batch = ImageBatch::new(data, [2, 3, 64, 64]).unwrap();
        let want = crate::tta::scores(TtaMode::Flip, &batch, |b| model.score_images(b)).unwrap();
        let plain = model.score_images(&batch).unwrap();
        let graph = model.export_onnx_tta(TtaMode::Flip).unwrap();
        let got = OrtSession::new(graph.bytes(), crate::onnx::SCORES).unwrap().run(&batch).unwrap();
        let diff = |a: &[Vec<f32>], b: &[Vec<f32>]| {
            a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
        };
        assert!(diff(&got, &want) < 1e-4, "{got:?} vs {want:?}");
        assert!(diff(&plain, &want) > 1e-3, "the test input must tell the two apart");
        // The maps too: the graph's averaged maps are tta::class_maps'.
        let want = crate::tta::class_maps(TtaMode::Flip, &batch, |b| model.class_maps(b)).unwrap();
        let (w, b) = model.head_for_test();
        let graph = model
            .backbone_for_test()
            .export(&["a".into(), "b".into()], crate::ModelKind::Dnn, model.score_kind(), w, b, true, TtaMode::Flip)
            .unwrap();
        let s = OrtSession::new(graph.bytes(), crate::onnx::CLASS_MAPS).unwrap();
        let out = s.run_outputs(&batch, &[crate::onnx::CLASS_MAPS]).unwrap();
        let flat: Vec<f32> = want.iter().flat_map(|m| m.values.clone()).collect();
        let d = out[0].1.iter().zip(&flat).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(d < 1e-3, "maps differ by {d}");
    }

    #[test]
    fn a_graph_without_the_output_asked_for_is_refused_when_loaded_not_a_panic_when_scoring() {
        use crate::{Architecture, BaseModel, Classifier, TransferModel};
        let base = BaseModel::new(Architecture::SmallCnn, None);
        let model = TransferModel::new_seeded(vec!["a".into(), "b".into()], &base, None, Device::Cpu, 1).unwrap();
        let graph = model.export_onnx().unwrap();
        assert!(OrtSession::new(graph.bytes(), crate::onnx::SCORES).is_ok());
        let e = OrtSession::new(graph.bytes(), "logits_of_another_exporter").expect_err("refused").to_string();
        assert!(e.contains("no output 'logits_of_another_exporter'") && e.contains(crate::onnx::SCORES), "{e}");
    }
}

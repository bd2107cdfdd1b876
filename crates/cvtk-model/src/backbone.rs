//! [`Backbone`]: a network with its weights, its input settings and its
//! scoring path, shared by the fine-tuned classifier (with a head) and the
//! SVM's featurizer (without one), so both load, score and save the same way.

use std::path::{Path, PathBuf};

use cvtk_dataset::{ImageBatch, LoaderConfig};
use tch::{nn, Device, Tensor};

use crate::base::{check_input, BaseModel};
use crate::calibration::TemperatureFit;
use crate::explain::{ClassMaps, Heatmap};
use crate::model_dir::{ModelMeta, Training};
use crate::nets::resnet::fused::FusedCache;
use crate::nets::Network;
use crate::onnx::graph::Vars;
use crate::onnx::{Head, InputContract, OnnxMetadata, OnnxModel};
use crate::weights::load_into;
use crate::{Architecture, Error, Result};

/// A network, its weights and how its inputs are loaded.
pub(crate) struct Backbone {
    pub arch: Architecture,
    pub loader: LoaderConfig,
    /// The weights file it started from, for the record.
    pub base_weights: Option<PathBuf>,
    pub vs: nn::VarStore,
    pub net: Network,
    /// Scoring's batch-norm-folded copy of `net` (ResNets on the CPU).
    fused: FusedCache,
    /// The model folder and weights file it was loaded from, and the weights'
    /// version then (the folder's `model.onnx` describes those weights only).
    pub folder: Option<(PathBuf, String, i64)>,
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("arch", &self.arch)
            .field("loader", &self.loader)
            .field("device", &self.vs.device())
            .finish()
    }
}

impl Backbone {
    /// `base`'s network with its weights, taking `image_size` inputs (None:
    /// the network's own), on `device`, with a head of `num_classes` if given
    /// (replacing the file's; new weights drawn from `seed`).
    pub fn new(
        base: &BaseModel,
        image_size: Option<u32>,
        num_classes: Option<i64>,
        device: Device,
        seed: u64,
    ) -> Result<Self> {
        let loader = base.loader_config(image_size);
        if loader.width < base.arch.min_image_size() {
            return Err(Error::InvalidConfig {
                field: "image_size",
                reason: format!("{} is below {}'s minimum of {}", loader.width, base.arch, base.arch.min_image_size()),
            });
        }
        loader.validate()?;
        let vs = nn::VarStore::new(device);
        let net = base.build_seeded(&vs, num_classes, false, Some(seed))?;
        Ok(Self::from_built(base.arch, loader, base.weights.clone(), vs, net))
    }

    /// A backbone over an already built network.
    pub fn from_built(
        arch: Architecture,
        loader: LoaderConfig,
        base_weights: Option<PathBuf>,
        vs: nn::VarStore,
        net: Network,
    ) -> Self {
        Backbone { arch, loader, base_weights, vs, net, fused: FusedCache::default(), folder: None }
    }

    /// Rebuilds a model folder's network (with a head of `num_classes` if
    /// given) from its tensors; tensors under the `skip` prefixes are not the
    /// network's (an SVM's, say).
    pub fn from_parts(
        dir: &Path,
        meta: &ModelMeta,
        tensors: Vec<(String, Tensor)>,
        device: Device,
        num_classes: Option<i64>,
        skip: &[&str],
    ) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        // Initialised (then overwritten) under the generator's lock, so
        // loading a model cannot shift a seeded build on another thread.
        let net = {
            let _rng = crate::torch_rng_lock();
            meta.arch.build(&vs.root(), num_classes)
        };
        load_into(&vs, tensors, &dir.join(&meta.weights_file), skip).map_err(|e| Error::ModelFile {
            path: dir.to_path_buf(),
            reason: format!("weights do not fit model.json ({} labels, {}): {e}", meta.labels.len(), meta.arch),
        })?;
        let mut backbone = Self::from_built(meta.arch, meta.loader.clone(), meta.base_weights.clone(), vs, net);
        backbone.folder = Some((dir.to_path_buf(), meta.weights_file.clone(), backbone.version()));
        Ok(backbone)
    }

    /// The sum of the variables' version counters: it changes whenever a
    /// weight changes in place (an optimiser step, a statistics update).
    pub fn version(&self) -> i64 {
        self.vs.variables().values().map(Tensor::internal_version).sum()
    }

    /// The variables by name.
    pub fn vars(&self) -> Vars {
        self.vs.variables()
    }

    /// Checks that a loader's batch fits the network's input before an engine
    /// sees it (onnxruntime's graph has a fixed image size).
    pub fn check_batch(&self, images: &ImageBatch) -> Result<()> {
        crate::scorer::check_batch(&self.loader, images)
    }

    /// What the weights are, for an export's `cvtk.source`: `FILE sha256:HEX`
    /// of the weights file it was loaded from while they are unchanged, else
    /// `in memory`.
    pub fn weights_id(&self) -> Result<String> {
        match &self.folder {
            Some((dir, file, v)) if *v == self.version() => {
                use sha2::Digest;
                let path = dir.join(file);
                let bytes = std::fs::read(&path).map_err(|e| Error::io("cannot read", path.clone(), e))?;
                let hex: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
                Ok(format!("{file} sha256:{hex}"))
            }
            _ => Ok("in memory".into()),
        }
    }

    /// This backbone, then the linear head `w` `[labels, features]`, `b`, as
    /// an exported classifier of `labels` whose raw scores are `score_kind`;
    /// with `maps`, the graph also outputs the class activation maps
    /// ([`crate::onnx::CLASS_MAPS`]); with `tta`, it scores each image with
    /// its mirror image and averages.
    #[allow(clippy::too_many_arguments)]
    pub fn export(
        &self,
        labels: &[String],
        model_kind: crate::ModelKind,
        score_kind: cvtk_core::ScoreKind,
        w: Tensor,
        b: Tensor,
        maps: bool,
        tta: crate::TtaMode,
    ) -> Result<OnnxModel> {
        let metadata = OnnxMetadata {
            format: crate::onnx::METADATA_FORMAT,
            model_kind,
            architecture: self.arch,
            labels: labels.to_vec(),
            input: InputContract::of(&self.loader),
            score_kind,
            source: self.weights_id()?,
        };
        let bytes = crate::onnx::build(
            self.arch,
            &self.vars(),
            &self.loader,
            Head::Linear { w, b, maps, tta },
            Some(&metadata),
        )?;
        Ok(OnnxModel::new(metadata, bytes).with_tta(tta))
    }

    /// The graph onnxruntime scores a classifier with: the model folder's
    /// `model.onnx` when it is the export of these very weights (same file,
    /// same SHA-256, same labels and input); otherwise a fresh `export`, kept
    /// as the folder's `model.onnx` when the weights are the folder's and the
    /// folder is writable. A missing, corrupt or stale file is rebuilt, never
    /// trusted.
    pub fn classifier_graph(&self, labels: &[String], export: impl FnOnce() -> Result<OnnxModel>) -> Result<Vec<u8>> {
        let Some((dir, _, _)) = self.folder.as_ref().filter(|(_, _, v)| *v == self.version()) else {
            return Ok(export()?.bytes().to_vec());
        };
        let path = dir.join(crate::onnx::MODEL_ONNX);
        if path.exists() {
            let source = self.weights_id()?;
            match OnnxModel::read(&path).and_then(|m| {
                m.check_fits(&path, labels, &self.loader)?;
                if !m.tta().is_none() {
                    // The engines apply test-time augmentation themselves.
                    return Err(Error::Onnx {
                        path: path.clone(),
                        reason: format!("it has test-time augmentation ({}) baked in by cvtk export", m.tta()),
                    });
                }
                if m.metadata().source != source {
                    return Err(Error::Onnx {
                        path: path.clone(),
                        reason: format!("made from {}, not from {source}", m.metadata().source),
                    });
                }
                Ok(m)
            }) {
                Ok(m) => return Ok(m.bytes().to_vec()),
                Err(e) => tracing::warn!("rebuilding the model's ONNX graph: {e}"),
            }
        }
        let fresh = export()?;
        if let Err(e) = fresh.write(&path) {
            tracing::info!("keeping the ONNX graph in memory only: {e}");
        }
        Ok(fresh.bytes().to_vec())
    }

    /// Outputs of a `[N, C, H, W]` batch in eval mode, on the CPU: logits
    /// with a head, pooled features without one.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        check_input(self.arch, images)?;
        let xs = images.f_to_device(self.vs.device())?;
        if let Some(out) = self.fused.with(self.arch, &self.vs, |net| net.forward(&xs))? {
            return Ok(out);
        }
        Ok(tch::no_grad(|| self.net.forward_t(&xs, false)).f_to_device(Device::Cpu)?)
    }

    /// The last feature map of a loader's batch in eval mode, `[N, C, h, w]`
    /// on the backbone's device (never the fused copy: the map is the
    /// training graph's), without gradients.
    fn feature_map(&self, images: &ImageBatch) -> Result<Tensor> {
        self.check_batch(images)?;
        let xs = crate::tensor::images_tensor(images)?.f_to_device(self.vs.device())?;
        tch::no_grad(|| self.net.feature_map_t(&xs, false)).ok_or_else(|| crate::onnx::no_map(self.arch))
    }

    /// A linear head's weight and bias as float32 on this backbone's device.
    fn head_here(&self, w: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
        let dev = self.vs.device();
        Ok((w.f_to_device(dev)?.f_to_kind(tch::Kind::Float)?, b.f_to_device(dev)?.f_to_kind(tch::Kind::Float)?))
    }

    /// The class activation maps of a batch under the linear head `w`
    /// `[labels, C]`, `b` `[labels]`: the head on each cell of the last
    /// feature map, without its bias, and the scores (the head on the pooled
    /// map), per image.
    pub fn class_maps(&self, images: &ImageBatch, w: &Tensor, b: &Tensor) -> Result<Vec<ClassMaps>> {
        let map = self.feature_map(images)?;
        let [n, _, h, wd] = <[i64; 4]>::try_from(map.size()).map_err(|s| Error::Torch(format!("map {s:?}")))?;
        let (w, b) = self.head_here(w, b)?;
        let (maps, scores) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
            let maps = Tensor::f_einsum("kc,nchw->nkhw", &[&w, &map], None::<i64>)?;
            let scores = head_scores(&map, &w, &b)?;
            Ok((maps, scores))
        })?;
        let k = w.size()[0];
        let flat = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(Vec::<f32>::try_from(&t.f_to_device(Device::Cpu)?.f_contiguous()?.f_flatten(0, -1)?)?)
        };
        let shape = [n, k, h, wd].map(|d| d as usize);
        ClassMaps::split(flat(&scores)?, flat(&maps)?, shape)
    }

    /// Grad-CAM maps of a batch under the head `w`, `b` on the last feature
    /// map: per image, the positive part of the map's channels weighted by
    /// the mean gradient of the score of label `targets[i]`.
    pub fn grad_cam(&self, images: &ImageBatch, w: &Tensor, b: &Tensor, targets: &[usize]) -> Result<Vec<Heatmap>> {
        let map = self.feature_map(images)?;
        let size = map.size();
        if targets.len() as i64 != size[0] || targets.iter().any(|&t| t as i64 >= w.size()[0]) {
            return Err(Error::InvalidInput(format!(
                "Grad-CAM: {} targets for {} images (labels 0..{})",
                targets.len(),
                size[0],
                w.size()[0]
            )));
        }
        let (w, b) = self.head_here(w, b)?;
        let a = map.f_detach()?.set_requires_grad(true);
        let scores = head_scores(&a, &w, &b)?;
        let idx: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
        let idx = Tensor::f_from_slice(&idx)?.f_view([-1, 1])?.f_to_device(self.vs.device())?;
        let picked = scores.f_gather(1, &idx, false)?.f_sum(tch::Kind::Float)?;
        let grads = Tensor::f_run_backward(&[&picked], &[&a], false, false)?;
        let grad = grads.first().ok_or_else(|| Error::Torch("no gradient".into()))?;
        let cam = tch::no_grad(|| -> Result<Tensor> {
            let alpha = grad.f_mean_dim([2i64, 3].as_slice(), true, tch::Kind::Float)?;
            Ok(alpha.f_mul(&a)?.f_sum_dim_intlist([1i64].as_slice(), false, tch::Kind::Float)?.f_relu()?)
        })?;
        let (h, wd) = (size[2] as usize, size[3] as usize);
        let values = Vec::<f32>::try_from(&cam.f_to_device(Device::Cpu)?.f_contiguous()?.f_flatten(0, -1)?)?;
        Ok(values.chunks((h * wd).max(1)).map(|v| Heatmap { height: h, width: wd, values: v.to_vec() }).collect())
    }

    /// [`Self::forward`] of a loader's batch, as rows.
    pub fn forward_rows(&self, images: &ImageBatch) -> Result<Vec<Vec<f32>>> {
        crate::tensor::rows(&self.forward(&crate::tensor::images_tensor(images)?)?)
    }

    /// Every variable, sorted by name.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// The device it runs on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The model-folder metadata of a classifier over `labels` on this
    /// backbone (the weights file is named when saving).
    pub fn meta(&self, labels: &[String], training: Training, calibration: Option<TemperatureFit>) -> ModelMeta {
        ModelMeta {
            labels: labels.to_vec(),
            arch: self.arch,
            loader: self.loader.clone(),
            weights_file: String::new(),
            base_weights: self.base_weights.clone(),
            training,
            calibration,
            training_images: None,
            tta: crate::TtaMode::None,
        }
    }

    /// The weights file it started from, or `random initialisation`.
    pub fn source(&self) -> String {
        self.base_weights.as_ref().map_or("random initialisation".to_string(), |w| w.display().to_string())
    }
}

/// The linear head `w`, `b` on the global average of feature maps `map`:
/// the scores the maps explain.
fn head_scores(map: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(crate::nets::pool(map).f_matmul(&w.f_tr()?)?.f_add(b)?)
}

//! [`Backbone`]: a network with its weights, its input settings and its
//! scoring path, shared by the fine-tuned classifier (with a head) and the
//! SVM's featurizer (without one), so both load, score and save the same way.

use std::path::{Path, PathBuf};

use cvtk_dataset::{ImageBatch, LoaderConfig};
use tch::{nn, Device, Tensor};

use crate::base::{check_input, BaseModel};
use crate::calibration::TemperatureFit;
use crate::model_dir::{ModelMeta, Training};
use crate::nets::resnet::fused::FusedCache;
use crate::nets::Network;
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
        Backbone { arch, loader, base_weights, vs, net, fused: FusedCache::default() }
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
        Ok(Self::from_built(meta.arch, meta.loader.clone(), meta.base_weights.clone(), vs, net))
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
        }
    }

    /// The weights file it started from, or `random initialisation`.
    pub fn source(&self) -> String {
        self.base_weights.as_ref().map_or("random initialisation".to_string(), |w| w.display().to_string())
    }
}

//! [`Featurizer`]: a pretrained backbone without its head: images in,
//! features out, for the SVM.

use cvtk_core::progress::Progress;
use cvtk_dataset::{ClassificationDataset, ImageBatch, ImageLoader, LoaderConfig};
use ndarray::Array2;
use tch::{Device, Tensor};

use crate::backbone::Backbone;
use crate::base::BaseModel;
use crate::engine::{Engine, EngineChoice, OrtSession};
use crate::onnx::{Head, FEATURES};
use crate::{Error, Result};

/// A pretrained backbone without its classifier: images in, features out
/// (512 for ResNet-18/34, 2048 for ResNet-50+, 1280 for EfficientNet-Lite).
#[derive(Debug)]
pub struct Featurizer {
    pub(crate) backbone: Backbone,
    /// The onnxruntime session over the features graph, when
    /// [`Featurizer::compile`] chose onnxruntime.
    session: Option<OrtSession>,
}

impl Featurizer {
    /// The backbone of `base` with its weights, taking `image_size` inputs.
    /// It featurizes with libtorch until [`Self::compile`]d for another engine.
    pub fn new(base: &BaseModel, image_size: Option<u32>, device: Device) -> Result<Self> {
        let mut backbone = Backbone::new(base, image_size, None, device, 0)?;
        backbone.vs.freeze();
        Ok(Self::from_backbone(backbone))
    }

    /// The network of the model saved in `dir`, without its head: a
    /// fine-tuned network's backbone (features it learned on the model's
    /// labels), or the featurizer an SVM was trained on. It featurizes with
    /// libtorch until [`Self::compile`]d.
    pub fn of_model(dir: impl AsRef<std::path::Path>, device: Device) -> Result<Self> {
        let dir = dir.as_ref();
        let (meta, tensors) = crate::model_dir::read_model_dir(dir)?;
        let head = match meta.kind() {
            crate::ModelKind::Svm => "svm.".to_string(),
            crate::ModelKind::Dnn => format!("{}.", meta.arch.head_name()),
        };
        let mut backbone = Backbone::from_parts(dir, &meta, tensors, device, None, &[head.as_str()])?;
        backbone.vs.freeze();
        Ok(Self::from_backbone(backbone))
    }

    /// A featurizer over a frozen backbone, on libtorch.
    pub(crate) fn from_backbone(backbone: Backbone) -> Self {
        Featurizer { backbone, session: None }
    }

    /// This featurizer featurizing with `choice` on its device, decided now
    /// as [`crate::compile`] decides for a classifier: for onnxruntime its
    /// features graph is built once here (its weights never change); under
    /// [`EngineChoice::Auto`] a graph onnxruntime cannot run is a logged
    /// fall-back to libtorch. The SVM trained on it scores with libtorch
    /// until compiled itself.
    pub fn compile(mut self, choice: EngineChoice) -> Result<Self> {
        let b = &self.backbone;
        self.session = choice.session(b.device(), FEATURES, "featurizing", &b.arch.to_string(), || {
            crate::onnx::build(b.arch, &b.vars(), &b.loader, Head::Features, None)
        })?;
        Ok(self)
    }

    /// What decides the features this featurizer gives, as 64 hex digits
    /// (SHA-256): the architecture, the loader's settings (image size,
    /// resizing, normalisation, colour), the engine, the device, and the
    /// weights' values. Two
    /// featurizers with the same fingerprint give the same features for the
    /// same image file, so features can be cached under it.
    pub fn fingerprint(&self) -> Result<String> {
        use sha2::Digest;
        let b = &self.backbone;
        let mut hash = sha2::Sha256::new();
        // The device too: CUDA's kernels round differently from the CPU's.
        hash.update(format!("cvtk features 1\n{}\n{:?}\n{:?}\n", b.arch, self.engine(), b.device()).as_bytes());
        // What the loader does to pixels; not its threads or size limit.
        let l = &b.loader;
        let input = (l.width, l.height, &l.resize, &l.normalization, &l.color);
        hash.update(serde_json::to_vec(&input).map_err(|e| Error::InvalidInput(e.to_string()))?);
        let mut vars: Vec<(String, Tensor)> = b.vars().into_iter().collect();
        vars.sort_by(|x, y| x.0.cmp(&y.0));
        for (name, t) in vars {
            hash.update(name.as_bytes());
            let t = t.f_to_kind(tch::Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?;
            let values = Vec::<f32>::try_from(&t.f_flatten(0, -1)?)?;
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            hash.update(&bytes);
        }
        Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The engine that featurizes.
    pub fn engine(&self) -> Engine {
        if self.session.is_some() {
            Engine::Onnxruntime
        } else {
            Engine::Torch
        }
    }

    /// The network's architecture.
    pub fn arch(&self) -> crate::Architecture {
        self.backbone.arch
    }

    /// Feature size.
    pub fn dim(&self) -> usize {
        self.backbone.net.feature_dim() as usize
    }

    /// How images are loaded for it.
    pub fn loader_config(&self) -> &LoaderConfig {
        &self.backbone.loader
    }

    /// Features of a batch tensor, `[N, dim]` on the CPU.
    pub fn features_tensor(&self, images: &Tensor) -> Result<Tensor> {
        self.backbone.forward(images)
    }

    /// Features of a loader's batch, `[N, dim]`.
    pub fn features_batch(&self, images: &ImageBatch) -> Result<Array2<f32>> {
        self.backbone.check_batch(images)?;
        let rows = match &self.session {
            Some(session) => session.run(images)?,
            None => self.backbone.forward_rows(images)?,
        };
        let n = rows.len();
        Array2::from_shape_vec((n, self.dim()), rows.into_iter().flatten().collect())
            .map_err(|e| Error::InvalidInput(e.to_string()))
    }

    /// Features of every image of `dataset`, in dataset order, as `[n, dim]`,
    /// reporting progress.
    pub fn features(&self, dataset: &ClassificationDataset, batch_size: usize) -> Result<Array2<f32>> {
        Ok(self.features_and_tta(dataset, batch_size, crate::TtaMode::None)?.0)
    }

    /// [`Self::features`], and with test-time augmentation `tta` also each
    /// image's features averaged with its mirror image's (what a linear head
    /// scores as it scores the two averaged), in one pass.
    pub fn features_and_tta(
        &self,
        dataset: &ClassificationDataset,
        batch_size: usize,
        tta: crate::TtaMode,
    ) -> Result<(Array2<f32>, Option<Array2<f32>>)> {
        let loader = ImageLoader::new(self.backbone.loader.clone())?;
        let mut averaged = (!tta.is_none()).then(|| Array2::<f32>::zeros((dataset.len(), self.dim())));
        let mut out = Array2::<f32>::zeros((dataset.len(), self.dim()));
        let progress = Progress::start(dataset.len() as u64, "featurizing");
        let mut row = 0;
        for batch in loader.batches(dataset, batch_size.max(1), None, 0) {
            let batch = batch?;
            let f = self.features_batch(&batch.images)?;
            let n = f.nrows();
            if let Some(avg) = averaged.as_mut() {
                let both = (&f + &self.features_batch(&crate::tta::flip_batch(&batch.images)?)?) / 2.0;
                for (i, r) in both.outer_iter().enumerate() {
                    avg.row_mut(row + i).assign(&r);
                }
            }
            for r in f.outer_iter() {
                out.row_mut(row).assign(&r);
                row += 1;
            }
            progress.inc(n as u64);
        }
        Ok((out, averaged))
    }
}

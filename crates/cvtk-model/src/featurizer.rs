//! [`Featurizer`]: a pretrained backbone without its head: images in,
//! features out, for the SVM.

use cvtk_dataset::progress::Progress;
use cvtk_dataset::{ClassificationDataset, ImageBatch, ImageLoader, LoaderConfig};
use ndarray::Array2;
use tch::{Device, Tensor};

use crate::backbone::Backbone;
use crate::base::BaseModel;
use crate::engine::{Engine, EngineChoice};
use crate::onnx::{Head, FEATURES};
use crate::{Error, Result};

/// A pretrained backbone without its classifier: images in, features out
/// (512 for ResNet-18/34, 2048 for ResNet-50+, 1280 for EfficientNet-Lite).
#[derive(Debug)]
pub struct Featurizer {
    pub(crate) backbone: Backbone,
}

impl Featurizer {
    /// The backbone of `base` with its weights, taking `image_size` inputs.
    /// It featurizes with [`EngineChoice::Auto`] (onnxruntime on the CPU when
    /// it loads): its weights never change, so the graph is built once.
    pub fn new(base: &BaseModel, image_size: Option<u32>, device: Device) -> Result<Self> {
        let mut backbone = Backbone::new(base, image_size, None, device, 0)?;
        backbone.vs.freeze();
        Ok(Featurizer { backbone })
    }

    /// Chooses the engine that featurizes.
    pub fn set_engine(&self, choice: EngineChoice) {
        self.backbone.engine.set(choice);
    }

    /// The engine that featurizes now.
    pub fn engine(&self) -> Result<Engine> {
        self.backbone.engine()
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
        let b = &self.backbone;
        let rows = b.score_rows(
            images,
            FEATURES,
            || crate::onnx::build(b.arch, &b.vars(), &b.loader, Head::Features, None),
            || b.forward_rows(images),
        )?;
        let n = rows.len();
        Array2::from_shape_vec((n, self.dim()), rows.into_iter().flatten().collect())
            .map_err(|e| Error::InvalidInput(e.to_string()))
    }

    /// Features of every image of `dataset`, in dataset order, as `[n, dim]`,
    /// reporting progress.
    pub fn features(&self, dataset: &ClassificationDataset, batch_size: usize) -> Result<Array2<f32>> {
        let loader = ImageLoader::new(self.backbone.loader.clone())?;
        let mut out = Array2::<f32>::zeros((dataset.len(), self.dim()));
        let progress = Progress::start(dataset.len() as u64, "featurizing");
        let mut row = 0;
        for batch in loader.batches(dataset, batch_size.max(1), None, 0) {
            let batch = batch?;
            let f = self.features_batch(&batch.images)?;
            let n = f.nrows();
            for r in f.outer_iter() {
                out.row_mut(row).assign(&r);
                row += 1;
            }
            progress.inc(n as u64);
        }
        Ok(out)
    }
}

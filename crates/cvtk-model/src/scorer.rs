//! [`Scorer`]: what scores images (labels, the input contract, raw scores of
//! a batch and what they are), and [`Compiled`], a classifier made into one
//! for an engine, once.
//!
//! Nothing here takes or returns a libtorch type: evaluation, serving and
//! batch scoring take a `&dyn Scorer`, so their tests run on a fake one. A
//! [`Classifier`] is a scorer on libtorch (the engine training uses);
//! [`compile`] gives a scorer on the engine asked for, the way tract's
//! `into_optimized()?.into_runnable()?` gives a runnable plan: the engine is
//! chosen when the value is made and never switched inside it, and a fall-back
//! from onnxruntime to libtorch is decided and logged there.

use std::ops::Deref;
use std::path::Path;

use cvtk_core::first_max;
use cvtk_core::progress::Progress;
use cvtk_core::{ScoreKind, Scores};
use cvtk_dataset::{ClassificationDataset, ImageBatch, ImageInfo, ImageLoader, Label, LoaderConfig};
use serde::Serialize;

use crate::engine::{Engine, EngineChoice, OrtSession};
use crate::explain::{ClassMaps, Heatmap};
use crate::{Classifier, Error, Result};

/// One image's prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The predicted label.
    pub label: String,
    /// Its probability.
    pub probability: f32,
    /// Every label's probability, in label order (calibrated: see
    /// [`Scorer::score_kind`]).
    pub probabilities: Vec<f32>,
    /// The raw scores the probabilities came from, in label order.
    pub raw: Vec<f32>,
    /// What the raw scores are.
    pub raw_kind: ScoreKind,
}

/// What scores images: labels, how images must be loaded, raw scores of a
/// batch and their kind. The provided methods score a dataset, one file, or
/// turn a row of raw scores into a [`Prediction`].
pub trait Scorer {
    /// Label names, in score-column order.
    fn labels(&self) -> &[String];
    /// How images must be loaded for this scorer (its input contract).
    fn loader_config(&self) -> LoaderConfig;
    /// Raw scores of a batch made by [`Self::loader_config`]'s loader: one row
    /// per image, one value per label, of kind [`Self::score_kind`].
    fn score_images(&self, images: &ImageBatch) -> Result<Vec<Vec<f32>>>;
    /// What [`Self::score_images`] returns (logits, or decision values for an
    /// SVM) and the temperature that turns it into calibrated probabilities.
    fn score_kind(&self) -> ScoreKind;
    /// The engine that scores.
    fn engine(&self) -> Engine;
    /// A one-line description (architecture, input size, weights it started from).
    fn describe(&self) -> String;

    /// Each image's raw scores and class activation maps, one map per label
    /// ([`crate::explain`]). The default: this scorer has none.
    fn class_maps(&self, images: &ImageBatch) -> Result<Vec<ClassMaps>> {
        let _ = images;
        Err(Error::InvalidInput(format!("{} has no class activation maps", self.describe())))
    }

    /// Grad-CAM maps of a batch on its last feature map, for label
    /// `targets[i]` of image `i` ([`crate::explain`]). The default: this
    /// scorer cannot make them.
    fn grad_cam(&self, images: &ImageBatch, targets: &[usize]) -> Result<Vec<Heatmap>> {
        let _ = (images, targets);
        Err(Error::InvalidInput(format!("{} has no Grad-CAM maps", self.describe())))
    }

    /// Raw scores of every image of `dataset` in dataset order, in batches of
    /// `batch_size`, with their [`ScoreKind`] (so [`Scores::probabilities`]
    /// gives calibrated probabilities), reporting progress.
    fn score_dataset(&self, dataset: &ClassificationDataset, batch_size: usize) -> Result<Scores> {
        // True labels by name, in this scorer's label order (map_labels
        // checked that every image's label has one).
        let map = map_labels(dataset, self.labels())?;
        let true_labels: Vec<usize> =
            dataset.images().iter().map(|i| map.get(i.label()).copied().flatten().unwrap_or_default()).collect();
        let loader = ImageLoader::new(self.loader_config())?;
        let batches = loader.batches(dataset, batch_size, None, 0);
        let progress = Progress::start(dataset.len() as u64, "scoring");
        let mut values = Vec::with_capacity(dataset.len());
        let mut ids = Vec::with_capacity(dataset.len());
        for batch in batches {
            let batch = batch?;
            values.extend(self.score_images(&batch.images)?);
            progress.inc(batch.ids.len() as u64);
            ids.extend(batch.ids);
        }
        Ok(Scores { labels: self.labels().to_vec(), ids, true_labels, values, kind: self.score_kind() })
    }

    /// Predicts the label of one image file, with calibrated probabilities.
    fn predict(&self, image: &Path) -> Result<Prediction> {
        let loader = ImageLoader::new(self.loader_config())?;
        let batch = loader.load_batch(&[image])?;
        let raw = self.score_images(&batch)?.into_iter().next().unwrap_or_default();
        Ok(self.prediction(raw))
    }

    /// The prediction that one row of raw scores (of [`Self::score_kind`]) makes.
    fn prediction(&self, raw: Vec<f32>) -> Prediction {
        let raw_kind = self.score_kind();
        let probabilities = raw_kind.probabilities(&raw);
        let best = first_max(&probabilities);
        Prediction {
            label: self.labels().get(best).cloned().unwrap_or_default(),
            probability: probabilities.get(best).copied().unwrap_or(0.0),
            probabilities,
            raw,
            raw_kind,
        }
    }
}

/// A classifier compiled for one engine: libtorch runs the classifier itself,
/// onnxruntime a session over its scores graph built once, here. `M` is
/// whatever holds the classifier (`&TransferModel`, `Box<dyn Classifier>`),
/// so a borrowed one scores for a moment and an owned one for a service's
/// life.
pub struct Compiled<M> {
    model: M,
    engine: Engine,
    session: Option<OrtSession>,
    /// onnxruntime's session over the graph with class maps, built on the
    /// first explanation (or why it could not be).
    maps_session: std::sync::OnceLock<std::result::Result<OrtSession, String>>,
    /// The test-time augmentation it scores with.
    tta: crate::TtaMode,
}

impl<M> std::fmt::Debug for Compiled<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("engine", &self.engine).finish_non_exhaustive()
    }
}

/// `model` compiled for `choice` on its device ([`EngineChoice::resolve`]):
/// for onnxruntime, the session over the model's scores graph is built now
/// (the model folder's `model.onnx` when it is the export of these weights).
/// Under [`EngineChoice::Auto`] a session that cannot be built is a logged
/// fall-back to libtorch; asked for by name, it is an [`Error::Engine`].
///
/// ```no_run
/// use cvtk_model::{compile, load_classifier, Device, EngineChoice, Scorer};
/// # fn main() -> cvtk_model::Result<()> {
/// let scorer = compile(load_classifier("model".as_ref(), Device::Cpu)?, EngineChoice::Auto)?;
/// println!("{} on {}", scorer.describe(), scorer.engine());
/// # Ok(()) }
/// ```
pub fn compile<M>(model: M, choice: EngineChoice) -> Result<Compiled<M>>
where
    M: Deref,
    M::Target: Classifier,
{
    let session =
        choice.session(model.device(), crate::onnx::SCORES, "scoring", &model.describe(), || model.scores_graph())?;
    let engine = if session.is_some() { Engine::Onnxruntime } else { Engine::Torch };
    let tta = model.tta();
    Ok(Compiled { model, engine, session, maps_session: std::sync::OnceLock::new(), tta })
}

impl<M> Compiled<M>
where
    M: Deref,
    M::Target: Classifier,
{
    /// The classifier it scores with (its calibration, training record, ...).
    pub fn model(&self) -> &M::Target {
        &self.model
    }

    /// The classifier back.
    pub fn into_model(self) -> M {
        self.model
    }

    /// Scores with test-time augmentation `mode` instead of the one the
    /// classifier was trained with ([`Classifier::tta`]).
    pub fn with_tta(mut self, mode: crate::TtaMode) -> Self {
        self.tta = mode;
        self
    }

    /// The test-time augmentation it scores with.
    pub fn tta(&self) -> crate::TtaMode {
        self.tta
    }
}

impl<M> Scorer for Compiled<M>
where
    M: Deref,
    M::Target: Classifier,
{
    fn labels(&self) -> &[String] {
        self.model.labels()
    }

    fn loader_config(&self) -> LoaderConfig {
        self.model.loader_config()
    }

    fn score_images(&self, images: &ImageBatch) -> Result<Vec<Vec<f32>>> {
        crate::tta::scores(self.tta, images, |images| {
            let Some(session) = &self.session else {
                return self.model.score_images(images);
            };
            // onnxruntime's graph has a fixed image size: check before it sees one.
            check_batch(&self.model.loader_config(), images)?;
            session.run(images)
        })
    }

    fn score_kind(&self) -> ScoreKind {
        self.model.score_kind()
    }

    fn engine(&self) -> Engine {
        self.engine
    }

    fn describe(&self) -> String {
        match self.tta {
            crate::TtaMode::None => self.model.describe(),
            mode => format!("{}; test-time augmentation: {mode}", self.model.describe()),
        }
    }

    fn class_maps(&self, images: &ImageBatch) -> Result<Vec<ClassMaps>> {
        crate::tta::class_maps(self.tta, images, |images| self.engine_class_maps(images))
    }

    fn grad_cam(&self, images: &ImageBatch, targets: &[usize]) -> Result<Vec<Heatmap>> {
        // Gradients are libtorch's, whichever engine scores.
        crate::tta::grad_cam(self.tta, images, targets, |b, t| self.model.grad_cam(b, t))
    }
}

impl<M> Compiled<M>
where
    M: Deref,
    M::Target: Classifier,
{
    /// Class maps on this engine, without test-time augmentation.
    fn engine_class_maps(&self, images: &ImageBatch) -> Result<Vec<ClassMaps>> {
        if self.session.is_none() {
            return self.model.class_maps(images);
        }
        check_batch(&self.model.loader_config(), images)?;
        let session = self.maps_session.get_or_init(|| {
            self.model
                .export_onnx_with_maps()
                .and_then(|graph| OrtSession::new(graph.bytes(), crate::onnx::CLASS_MAPS))
                .map_err(|e| e.to_string())
        });
        let session = session.as_ref().map_err(|e| Error::InvalidInput(e.clone()))?;
        let mut outputs = session.run_outputs(images, &[crate::onnx::SCORES, crate::onnx::CLASS_MAPS])?.into_iter();
        let (Some((_, scores)), Some((shape, maps))) = (outputs.next(), outputs.next()) else {
            return Err(Error::InvalidInput("the ONNX graph gave no class maps".into()));
        };
        let [n, k, h, w] = <[usize; 4]>::try_from(shape)
            .map_err(|s| Error::InvalidInput(format!("class maps of shape {s:?}, not [N, labels, h, w]")))?;
        ClassMaps::split(scores, maps, [n, k, h, w])
    }
}

/// Checks that a loader's batch has the shape `loader` makes, before an
/// engine sees it.
pub(crate) fn check_batch(loader: &LoaderConfig, images: &ImageBatch) -> Result<()> {
    let [_, c, h, w] = images.shape();
    let l = loader;
    if (c, h, w) != (l.color.channels(), l.height as usize, l.width as usize) {
        return Err(Error::InvalidInput(format!(
            "expected [N, {}, {}, {}] images for this model, got {:?}",
            l.color.channels(),
            l.height,
            l.width,
            images.shape()
        )));
    }
    Ok(())
}

/// For each of `dataset`'s label indices, the index of the label with the same
/// name in `model_labels` (None for a label the model lacks and no image uses).
/// An image whose label the model does not know is an error naming the image.
pub(crate) fn map_labels(dataset: &ClassificationDataset, model_labels: &[String]) -> Result<Vec<Option<usize>>> {
    let names = dataset.label_names();
    let map: Vec<Option<usize>> = names.iter().map(|n| model_labels.iter().position(|l| l == n)).collect();
    if let Some(i) = dataset.images().iter().find(|i| map.get(i.label()).copied().flatten().is_none()) {
        return Err(Error::InvalidInput(format!(
            "image {} has label '{}', which the model does not know (its labels: {})",
            i.path.display(),
            names.get(i.label()).cloned().unwrap_or_default(),
            model_labels.join(", ")
        )));
    }
    Ok(map)
}

/// The prediction for every image of `dataset`, its excluded images too when
/// `include_excluded` (what the annotation page shows), scored under the
/// scorer's labels whatever the dataset's own are: `(image id, prediction)`,
/// in dataset order.
pub fn predict_dataset(
    scorer: &dyn Scorer,
    dataset: &ClassificationDataset,
    include_excluded: bool,
    batch_size: usize,
) -> Result<Vec<(u64, Prediction)>> {
    let excluded: &[ImageInfo] = if include_excluded { dataset.excluded() } else { &[] };
    // Every image under the scorer's first label: the dataset's labels may
    // hold ones the model never saw, and only the scores matter here.
    let images: Vec<ImageInfo> =
        dataset.images().iter().chain(excluded).map(|i| ImageInfo { labels: vec![0], ..i.clone() }).collect();
    let labels: Vec<Label> = scorer.labels().iter().map(|name| Label { name: name.clone() }).collect();
    let all = ClassificationDataset::from_parts(dataset.name(), labels, images)?;
    let scores = scorer.score_dataset(&all, batch_size)?;
    Ok(scores.ids.into_iter().zip(scores.values).map(|(id, raw)| (id, scorer.prediction(raw))).collect())
}

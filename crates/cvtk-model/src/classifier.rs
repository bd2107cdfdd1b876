//! The [`Classifier`] trait that [`crate::TransferModel`] and
//! [`crate::SvmClassifier`] implement, so evaluation, serving and the CLI never
//! care which one they hold, and [`Prediction`]s.

use std::path::Path;

use cvtk_dataset::progress::Progress;
use cvtk_dataset::{first_max, ClassificationDataset, ImageBatch, ImageInfo, ImageLoader, Label, LoaderConfig};
use cvtk_dataset::{ScoreKind, Scores};
use serde::Serialize;
use tch::Device;

use crate::calibration::TemperatureFit;
use crate::engine::{Engine, EngineChoice};
use crate::model_dir::ModelKind;
use crate::onnx::OnnxModel;
use crate::trained_on::TrainingImages;
use crate::{Error, Result};

/// One image's prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The predicted label.
    pub label: String,
    /// Its probability.
    pub probability: f32,
    /// Every label's probability, in label order (calibrated: see
    /// [`Classifier::score_kind`]).
    pub probabilities: Vec<f32>,
    /// The raw scores the probabilities came from, in label order.
    pub raw: Vec<f32>,
    /// What the raw scores are.
    pub raw_kind: ScoreKind,
}

/// A trained classifier over the user's labels.
pub trait Classifier: Send {
    /// Label names, in score-column order.
    fn labels(&self) -> &[String];
    /// How images must be loaded for this classifier.
    fn loader_config(&self) -> LoaderConfig;
    /// Raw scores of a batch made by [`Self::loader_config`]'s loader: one row
    /// per image, one value per label, of kind [`Self::score_kind`].
    fn score_images(&self, images: &ImageBatch) -> Result<Vec<Vec<f32>>>;
    /// What [`Self::score_images`] returns (logits, or decision values for an
    /// SVM) and the temperature that turns it into calibrated probabilities.
    fn score_kind(&self) -> ScoreKind;
    /// The temperature fit behind [`Self::score_kind`], if the classifier was
    /// calibrated.
    fn calibration(&self) -> Option<&TemperatureFit> {
        None
    }
    /// Saves the classifier into a model folder.
    fn save(&self, dir: &Path) -> Result<()>;
    /// The device it runs on.
    fn device(&self) -> Device;
    /// What kind of classifier (`dnn` or `svm`).
    fn kind(&self) -> ModelKind;
    /// Train and evaluation accuracy per epoch, for models trained in epochs.
    fn train_eval_accs(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        None
    }
    /// The images it was trained on, when cvtk trained it and recorded them
    /// (None for the pretrained network, and for model folders written
    /// before cvtk recorded them). [`TrainingImages::find_in`] says which
    /// images of a dataset are among them: an accuracy on those is not a test
    /// accuracy. An error is a record that cannot be read.
    fn training_images(&self) -> Result<Option<std::sync::Arc<TrainingImages>>> {
        Ok(None)
    }
    /// A one-line description (architecture, input size, weights it started from).
    fn describe(&self) -> String;
    /// The engine that scores now ([`EngineChoice::resolve`] of the chosen one).
    fn engine(&self) -> Result<Engine> {
        Ok(Engine::Torch)
    }
    /// Chooses the engine that scores. Models start with
    /// [`EngineChoice::Auto`]; training and the evaluations during it run on
    /// libtorch whatever the choice.
    fn set_engine(&self, _choice: EngineChoice) {}
    /// The model as an ONNX graph that scores without cvtk ([`crate::onnx`]).
    fn export_onnx(&self) -> Result<OnnxModel> {
        Err(Error::InvalidInput(format!("{} cannot be exported to ONNX", self.describe())))
    }
    /// Gets ready to score: loads the engine now (an onnxruntime session is
    /// built from the model's graph) rather than at the first batch, so a
    /// service knows before it says it is ready.
    fn prepare(&self) -> Result<()> {
        self.engine().map(|_| ())
    }

    /// Raw scores of every image of `dataset` in dataset order, in batches of
    /// `batch_size`, with their [`ScoreKind`] (so [`Scores::probabilities`]
    /// gives calibrated probabilities), reporting progress.
    fn score_dataset(&self, dataset: &ClassificationDataset, batch_size: usize) -> Result<Scores> {
        // True labels by name, in this classifier's label order (map_labels
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
/// model's labels whatever the dataset's own are: `(image id, prediction)`,
/// in dataset order.
pub fn predict_dataset(
    model: &dyn Classifier,
    dataset: &ClassificationDataset,
    include_excluded: bool,
    batch_size: usize,
) -> Result<Vec<(u64, Prediction)>> {
    let excluded: &[ImageInfo] = if include_excluded { dataset.excluded() } else { &[] };
    // Every image under the model's first label: the dataset's labels may hold
    // ones the model never saw, and only the scores matter here.
    let images: Vec<ImageInfo> =
        dataset.images().iter().chain(excluded).map(|i| ImageInfo { labels: vec![0], ..i.clone() }).collect();
    let labels: Vec<Label> = model.labels().iter().map(|name| Label { name: name.clone() }).collect();
    let all = ClassificationDataset::from_parts(dataset.name(), labels, images)?;
    let scores = model.score_dataset(&all, batch_size)?;
    Ok(scores.ids.into_iter().zip(scores.values).map(|(id, raw)| (id, model.prediction(raw))).collect())
}

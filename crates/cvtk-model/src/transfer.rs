//! [`TransferModel`]: a pretrained network whose head is replaced by one for the
//! user's labels and fine-tuned. Counterpart of the original package's
//! `CNTKTLModel`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cvtk_core::progress::Progress;
use cvtk_dataset::{ClassificationDataset, ImageBatch, ImageLoader, ImageTransform, LoaderConfig};
use serde::{Deserialize, Serialize};
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor};

use crate::backbone::Backbone;
use crate::base::BaseModel;
use crate::calibration::{fit_temperature, TemperatureFit};
use crate::classifier::Classifier;
use crate::engine::Engine;
use crate::explain::{ClassMaps, Heatmap};
use crate::model_dir::{read_model_dir_of_kind, save_model_dir, ModelKind, ModelMeta, Training};
use crate::onnx::OnnxModel;
use crate::scorer::{map_labels, Scorer};
use crate::tensor::{images_tensor, labels_tensor};
use crate::tensorboard::EventWriter;
use crate::trained_on::{Record, TrainingImages};
use crate::{Architecture, Error, LrSchedule, Result};
use cvtk_core::ScoreKind;

/// A function called after each epoch with its statistics and the epoch count.
pub type EpochCallback = Arc<dyn Fn(&EpochStats, usize) + Send + Sync>;

/// How [`TransferModel::train`] trains: the hyperparameters of the original's
/// `CNTKTLModel.train`, and cvtk's additions. What training reports to (a
/// callback, TensorBoard) is [`TrainHooks`]; its progress goes to the
/// installed [`cvtk_core::progress`] reporter.
#[derive(Clone)]
pub struct TrainConfig {
    /// Learning rate of each epoch; its length is the number of epochs. By
    /// default, the original's `[0.05]*7 + [0.005]*7 + [0.0005]` (15 epochs).
    pub lr_per_mb: LrSchedule,
    /// Minibatch size. By default, 32.
    pub mb_size: usize,
    /// SGD momentum. By default, 0.9.
    pub momentum: f64,
    /// L2 weight decay. By default, 1e-4.
    pub weight_decay: f64,
    /// Train only the new head, keeping the pretrained backbone fixed. By default, false.
    pub freeze_backbone: bool,
    /// Seed of the head's initialisation, dropout and the data order. By default, 0.
    pub seed: u64,
    /// Augmentation applied per image per epoch while loading. By default, none.
    pub augmentation: Option<Arc<dyn ImageTransform>>,
    /// Decoding threads; 0 means one per core. By default, 0.
    pub loader_threads: usize,
    /// Recompute batch norm's running statistics as the average over one pass
    /// of the training images (as PyTorch's `swa_utils.update_bn`), so
    /// eval-mode scores describe the new images rather than lag behind them
    /// (EfficientNet-Lite's momentum is 0.01): after every epoch that is
    /// evaluated (so each `eval_acc` measures the model as it would be saved at
    /// that point), and after the last epoch. Skipped with a frozen backbone.
    /// By default, true.
    pub recalibrate_batch_norm: bool,
    /// Hold out this fraction of the training images (stratified by label),
    /// train on the rest, and fit a temperature on the held-out part after
    /// training ([`TransferModel::calibrate`]), so the model's probabilities
    /// match how often it is right. Between 0 and 0.5. By default, none: no
    /// temperature scaling, probabilities are the softmax of the logits.
    pub calibration_holdout: Option<f64>,
}

impl std::fmt::Debug for TrainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainConfig")
            .field("lr_per_mb", &self.lr_per_mb)
            .field("mb_size", &self.mb_size)
            .field("momentum", &self.momentum)
            .field("weight_decay", &self.weight_decay)
            .field("freeze_backbone", &self.freeze_backbone)
            .field("seed", &self.seed)
            .field("augmentation", &self.augmentation.is_some())
            .field("loader_threads", &self.loader_threads)
            .field("recalibrate_batch_norm", &self.recalibrate_batch_norm)
            .field("calibration_holdout", &self.calibration_holdout)
            .finish()
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            lr_per_mb: LrSchedule::default(),
            mb_size: 32,
            momentum: 0.9,
            weight_decay: 1e-4,
            freeze_backbone: false,
            seed: 0,
            augmentation: None,
            loader_threads: 0,
            recalibrate_batch_norm: true,
            calibration_holdout: None,
        }
    }
}

/// A [`TrainConfig`] whose every field was checked ([`TrainConfig::check`]):
/// what training runs on, so it never sees an unchecked value.
#[derive(Clone, Debug)]
pub struct ValidTrainConfig(TrainConfig);

impl std::ops::Deref for ValidTrainConfig {
    type Target = TrainConfig;
    fn deref(&self) -> &TrainConfig {
        &self.0
    }
}

impl TrainConfig {
    /// Checks every field; the error names the first bad one.
    pub fn check(&self) -> Result<ValidTrainConfig> {
        let bad = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        self.lr_per_mb.check()?;
        if self.mb_size == 0 {
            return bad("mb_size", "must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", format!("{} is not in [0, 1)", self.momentum));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", format!("{} is not a non-negative number", self.weight_decay));
        }
        if let Some(f) = self.calibration_holdout {
            if !(f > 0.0 && f <= 0.5) {
                return bad("calibration_holdout", format!("{f} is not a fraction in (0, 0.5], e.g. 0.1"));
            }
        }
        Ok(ValidTrainConfig(self.clone()))
    }
}

/// What training reports to, besides the history it returns. By default,
/// nothing.
#[derive(Clone, Default)]
pub struct TrainHooks {
    /// Called after each epoch with its statistics and the epoch count (the
    /// CLI prints the original's line).
    pub on_epoch: Option<EpochCallback>,
    /// Folder for TensorBoard event files (loss, accuracies, learning rate per epoch).
    pub tensorboard_logdir: Option<PathBuf>,
}

impl std::fmt::Debug for TrainHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainHooks")
            .field("on_epoch", &self.on_epoch.is_some())
            .field("tensorboard_logdir", &self.tensorboard_logdir)
            .finish()
    }
}

/// What one epoch of training measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy measured during the epoch (with augmentation and dropout).
    pub train_acc: f64,
    /// Accuracy on the evaluation set after the epoch, if one was given.
    pub eval_acc: Option<f64>,
    /// Training images per second, loading included.
    pub samples_per_sec: f64,
    /// Seconds the epoch took.
    pub seconds: f64,
}

impl EpochStats {
    /// The line the original printed after each epoch, its `metric` named
    /// for what it is, the training error rate, e.g.
    /// `Finished Epoch[3 of 15]: [Training] loss = 0.412 * 41, error rate = 12.20% * 41 3.1s (13.2 samples/s); eval error rate 9.09%`.
    pub fn summary_line(&self, epochs: usize, samples: usize) -> String {
        format!(
            "Finished Epoch[{} of {epochs}]: [Training] loss = {:.6} * {samples}, error rate = {:.2}% * {samples} {:.1}s ({:.1} samples/s){}",
            self.epoch,
            self.loss,
            100.0 * (1.0 - self.train_acc),
            self.seconds,
            self.samples_per_sec,
            self.eval_acc.map(|a| format!("; eval error rate {:.2}%", 100.0 * (1.0 - a))).unwrap_or_default()
        )
    }
}

/// A network fine-tuned for the user's labels.
pub struct TransferModel {
    labels: Vec<String>,
    backbone: Backbone,
    history: Vec<EpochStats>,
    /// The temperature fitted by [`Self::calibrate`], if any.
    calibration: Option<TemperatureFit>,
    /// The images it was trained on.
    trained_on: Record,
    /// The test-time augmentation it is calibrated and scored with.
    tta: crate::TtaMode,
}

impl std::fmt::Debug for TransferModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferModel").field("labels", &self.labels).field("backbone", &self.backbone).finish()
    }
}

impl TransferModel {
    /// A model for `labels` on `base`'s network (its pretrained weights loaded,
    /// the 1000-class head replaced by one of `labels.len()` outputs), taking
    /// `image_size` x `image_size` inputs (None: the network's own size). The new
    /// weights are initialised from seed 0; see [`Self::new_seeded`].
    pub fn new(labels: Vec<String>, base: &BaseModel, image_size: Option<u32>, device: Device) -> Result<Self> {
        Self::new_seeded(labels, base, image_size, device, 0)
    }

    /// [`Self::new`] with the seed of the new weights' initialisation.
    pub fn new_seeded(
        labels: Vec<String>,
        base: &BaseModel,
        image_size: Option<u32>,
        device: Device,
        seed: u64,
    ) -> Result<Self> {
        if labels.len() < 2 {
            return Err(Error::InvalidConfig {
                field: "labels",
                reason: format!("a classifier needs at least 2 labels, got {}", labels.len()),
            });
        }
        let backbone = Backbone::new(base, image_size, Some(labels.len() as i64), device, seed)?;
        Ok(Self::from_backbone(labels, backbone))
    }

    fn from_backbone(labels: Vec<String>, backbone: Backbone) -> Self {
        TransferModel {
            labels,
            backbone,
            history: Vec::new(),
            calibration: None,
            trained_on: Record::None,
            tta: crate::TtaMode::None,
        }
    }

    /// The pretrained network as it is, ImageNet head included: a classifier of
    /// the 1000 ImageNet classes (named as in `tch::vision::imagenet::CLASSES`,
    /// the few repeated names made unique with a ` (2)`), reading images as
    /// [`BaseModel::imagenet_loader_config`] says, ready to save and serve.
    /// `base` must have weights.
    pub fn imagenet(base: &BaseModel, device: Device) -> Result<Self> {
        let (mut vs, net) = base.imagenet_classifier(device)?;
        vs.unfreeze();
        let mut seen = std::collections::HashMap::new();
        let labels = tch::vision::imagenet::CLASSES
            .iter()
            .map(|name| {
                let n = seen.entry(*name).or_insert(0);
                *n += 1;
                if *n == 1 {
                    name.to_string()
                } else {
                    format!("{name} ({n})")
                }
            })
            .collect();
        let backbone = Backbone::from_built(base.arch, base.imagenet_loader_config(), base.weights.clone(), vs, net);
        Ok(Self::from_backbone(labels, backbone))
    }

    /// Scores (and calibrates, when trained after this call with a
    /// calibration hold-out) with test-time augmentation `mode`; saved in the
    /// model folder, so that [`crate::load_scorer`] scores with it too.
    pub fn set_tta(&mut self, mode: crate::TtaMode) {
        self.tta = mode;
    }

    /// The architecture.
    pub fn arch(&self) -> Architecture {
        self.backbone.arch
    }

    /// The training history, one entry per epoch trained.
    pub fn history(&self) -> &[EpochStats] {
        &self.history
    }

    /// Train and evaluation accuracy per epoch (the original's `train_eval_accs`).
    pub fn train_eval_accs(&self) -> (Vec<f64>, Vec<f64>) {
        (self.history.iter().map(|h| h.train_acc).collect(), self.history.iter().filter_map(|h| h.eval_acc).collect())
    }

    /// Logits of a batch tensor, `[N, labels]` on the CPU.
    pub fn score_tensor(&self, images: &Tensor) -> Result<Tensor> {
        self.backbone.forward(images)
    }

    /// Fits the temperature that calibrates this model's probabilities on
    /// `held_out` (labelled images it was not trained on) and keeps it: from
    /// then on [`Scorer::score_kind`] carries it and [`Classifier::save`]
    /// writes it. Which label scores highest does not change.
    pub fn calibrate(&mut self, held_out: &ClassificationDataset, batch_size: usize) -> Result<&TemperatureFit> {
        // On the scores it will give: with its test-time augmentation.
        let scores = crate::tta::Tta::new(&*self, self.tta).score_dataset(held_out, batch_size.max(1))?;
        let fit = fit_temperature(&scores.values, &scores.true_labels)?;
        tracing::info!(
            "temperature {:.3} fitted on {} held-out images (negative log-likelihood {:.4} -> {:.4})",
            fit.temperature,
            fit.images,
            fit.nll_before,
            fit.nll_after
        );
        Ok(self.calibration.insert(fit))
    }

    /// Fine-tunes on `train_set`, evaluating on `eval_set` after each epoch if
    /// given: [`Self::train_with`] without hooks.
    pub fn train(
        &mut self,
        train_set: &ClassificationDataset,
        config: &TrainConfig,
        eval_set: Option<&ClassificationDataset>,
    ) -> Result<&[EpochStats]> {
        self.train_with(train_set, config, eval_set, &TrainHooks::default())
    }

    /// Fine-tunes on `train_set`, evaluating on `eval_set` after each epoch if
    /// given, and reporting each epoch to `hooks`. Labels are matched by name,
    /// so the datasets may have been split from one with other label indices;
    /// an image whose label the model does not know is an error. With
    /// [`TrainConfig::calibration_holdout`], part of `train_set` is held out of
    /// training and calibrates the model afterwards.
    ///
    /// Training and the evaluations during it run on libtorch (the model's
    /// own [`Scorer`]); [`crate::compile`] the trained model for another engine.
    pub fn train_with(
        &mut self,
        train_set: &ClassificationDataset,
        config: &TrainConfig,
        eval_set: Option<&ClassificationDataset>,
        hooks: &TrainHooks,
    ) -> Result<&[EpochStats]> {
        let cfg = config.check()?;
        let train_set = self.relabel(train_set)?;
        let eval_set = eval_set.map(|e| self.relabel(e)).transpose()?;
        if train_set.is_empty() {
            return Err(Error::InvalidInput("the training set is empty".into()));
        }
        let (train_set, held_out) = match cfg.calibration_holdout {
            Some(fraction) => {
                let split = train_set.split(1.0 - fraction, true, cfg.seed).map_err(|e| {
                    Error::InvalidInput(format!(
                        "cannot hold out {fraction} of the {} training images for calibration: {e}",
                        train_set.len()
                    ))
                })?;
                tracing::info!("{} training images held out for calibration", split.test.len());
                (train_set.subset(&split.train)?, Some(train_set.subset(&split.test)?))
            }
            None => (train_set, None),
        };
        let _rng = crate::torch_rng_lock();
        let recalibrate = cfg.recalibrate_batch_norm && !cfg.freeze_backbone;
        let mut statistics_fresh = false;
        let device = self.backbone.device();
        let head_prefix = format!("{}.", self.backbone.arch.head_name());
        if cfg.freeze_backbone {
            for (name, var) in self.backbone.vs.variables() {
                if !name.starts_with(&head_prefix) {
                    let _ = var.set_requires_grad(false);
                }
            }
        }
        let schedule = cfg.lr_per_mb.rates().to_vec();
        let mut opt = tch::nn::Sgd { momentum: cfg.momentum, dampening: 0.0, wd: cfg.weight_decay, nesterov: false }
            .build(&self.backbone.vs, schedule[0])?;
        let mut loader =
            ImageLoader::new(LoaderConfig { threads: cfg.loader_threads, ..self.backbone.loader.clone() })?;
        if let Some(t) = &cfg.augmentation {
            loader = loader.with_transform(t.clone());
        }
        let mut tb = hooks.tensorboard_logdir.as_deref().map(EventWriter::create).transpose()?;
        let epochs = schedule.len();
        let first_epoch = self.history.len();
        for (e, &lr) in schedule.iter().enumerate() {
            let epoch = first_epoch + e + 1;
            // Each epoch draws from its own seed, so the batch-norm passes
            // between epochs (which run dropout) do not shift the next epoch.
            tch::manual_seed(cvtk_dataset::mix_seed(cfg.seed, epoch as u64, 0) as i64);
            opt.set_lr(lr);
            let start = Instant::now();
            let progress = Progress::start(train_set.len() as u64, format!("epoch {}/{epochs}", e + 1));
            let (mut loss_sum, mut correct, mut seen) = (0f64, 0i64, 0usize);
            let batches = loader.batches(&train_set, cfg.mb_size, Some(cfg.seed), epoch as u64);
            // Decode the next batches on another thread while this one trains.
            std::thread::scope(|scope| -> Result<()> {
                let (tx, rx) = std::sync::mpsc::sync_channel(2);
                scope.spawn(move || {
                    for b in batches {
                        let stop = b.is_err();
                        if tx.send(b).is_err() || stop {
                            break;
                        }
                    }
                });
                for batch in rx {
                    let batch = batch?;
                    if batch.ids.len() == 1 && train_set.len() > 1 {
                        // Batch norm cannot estimate a variance from one image
                        // (it would store NaN statistics): skip a lone last image.
                        tracing::debug!("skipping a final batch of one image");
                        continue;
                    }
                    let xs = images_tensor(&batch.images)?.f_to_device(device)?;
                    let ys = labels_tensor(&batch.labels)?.f_to_device(device)?;
                    let net = &self.backbone.net;
                    let logits = if cfg.freeze_backbone {
                        let f = tch::no_grad(|| net.features_t(&xs, false));
                        net.head_t(&f, true)
                    } else {
                        net.forward_t(&xs, true)
                    };
                    let loss = logits.f_log_softmax(-1, Kind::Float)?.f_nll_loss(
                        &ys,
                        None::<Tensor>,
                        tch::Reduction::Mean,
                        -100,
                    )?;
                    opt.backward_step(&loss);
                    let n = batch.ids.len();
                    let l = loss.double_value(&[]);
                    if !l.is_finite() {
                        return Err(Error::Diverged { epoch, loss: l });
                    }
                    loss_sum += l * n as f64;
                    correct += logits.argmax(-1, false).eq_tensor(&ys).sum(Kind::Int64).int64_value(&[]);
                    seen += n;
                    progress.inc(n as u64);
                    progress.set_message(format!("epoch {}/{epochs} loss {:.3}", e + 1, loss_sum / seen as f64));
                }
                Ok(())
            })?;
            progress.finish();
            if let Some((name, _)) =
                self.backbone.vs.variables().into_iter().find(|(_, v)| v.isfinite().all().int64_value(&[]) == 0)
            {
                tracing::error!("{name} is no longer finite after epoch {epoch}");
                return Err(Error::Diverged { epoch, loss: f64::NAN });
            }
            let seconds = start.elapsed().as_secs_f64();
            // Evaluate the model as it would be saved now: with recalibrated
            // batch-norm statistics.
            statistics_fresh = false;
            let eval_acc = match &eval_set {
                Some(ev) => {
                    if recalibrate {
                        statistics_fresh = self.recalibrate_batch_norm(&train_set, &cfg)?;
                    }
                    Some(self.score_dataset(ev, cfg.mb_size.max(16))?.accuracy())
                }
                None => None,
            };
            let stats = EpochStats {
                epoch,
                lr,
                loss: loss_sum / seen.max(1) as f64,
                train_acc: correct as f64 / seen.max(1) as f64,
                eval_acc,
                samples_per_sec: seen as f64 / seconds.max(1e-9),
                seconds,
            };
            tracing::info!("{}", stats.summary_line(epochs, seen));
            if let Some(f) = &hooks.on_epoch {
                f(&stats, epochs);
            }
            if let Some(w) = tb.as_mut() {
                let mut values = vec![("loss", stats.loss), ("accuracy/train", stats.train_acc), ("learning_rate", lr)];
                if let Some(a) = eval_acc {
                    values.push(("accuracy/eval", a));
                }
                w.scalars(epoch as i64, &values)?;
            }
            self.history.push(stats);
        }
        if recalibrate && !statistics_fresh {
            self.recalibrate_batch_norm(&train_set, &cfg)?;
        }
        // The images the weights were fitted on (not those held out to calibrate).
        self.trained_on.add(&train_set);
        if let Some(held_out) = &held_out {
            self.calibrate(held_out, cfg.mb_size.max(16))?;
        }
        if cfg.freeze_backbone {
            for (_, var) in self.backbone.vs.variables() {
                let _ = var.set_requires_grad(true);
            }
        }
        Ok(&self.history[first_epoch..])
    }

    /// Sets every batch-norm layer's running mean and variance to their
    /// average over the batches of `train_set` (no augmentation). Each batch
    /// runs in training mode after the statistics are zeroed, so a layer's
    /// updated statistics are exactly momentum times that batch's, whatever
    /// the momentum. Returns whether there was anything to recalibrate.
    fn recalibrate_batch_norm(&mut self, train_set: &ClassificationDataset, cfg: &ValidTrainConfig) -> Result<bool> {
        let Some(m) = self.backbone.arch.batch_norm_momentum() else { return Ok(false) };
        let stats: Vec<Tensor> = self
            .backbone
            .vs
            .variables()
            .into_iter()
            .filter(|(n, _)| n.ends_with("running_mean") || n.ends_with("running_var"))
            .map(|(_, t)| t)
            .collect();
        if stats.is_empty() {
            return Ok(false);
        }
        let saved: Vec<Tensor> = stats.iter().map(Tensor::copy).collect();
        let mut sums: Vec<Tensor> = stats.iter().map(Tensor::zeros_like).collect();
        let loader = ImageLoader::new(LoaderConfig { threads: cfg.loader_threads, ..self.backbone.loader.clone() })?;
        let device = self.backbone.device();
        let mut batches = 0f64;
        let result = tch::no_grad(|| -> Result<()> {
            for batch in loader.batches(train_set, cfg.mb_size, None, 0) {
                let batch = batch?;
                if batch.ids.len() < 2 {
                    continue;
                }
                for t in &stats {
                    let _ = t.shallow_clone().f_zero_()?;
                }
                let _ = self.backbone.net.forward_t(&images_tensor(&batch.images)?.f_to_device(device)?, true);
                for (sum, t) in sums.iter_mut().zip(&stats) {
                    *sum = sum.f_add(&t.f_div_scalar(m)?)?;
                }
                batches += 1.0;
            }
            Ok(())
        });
        let ok = result.is_ok() && batches > 0.0;
        tch::no_grad(|| -> Result<()> {
            for ((t, sum), old) in stats.iter().zip(&sums).zip(&saved) {
                let value = if ok { sum.f_div_scalar(batches)? } else { old.shallow_clone() };
                t.shallow_clone().f_copy_(&value)?;
            }
            Ok(())
        })?;
        result?;
        if ok {
            tracing::info!("batch-norm statistics recalibrated over {} batches", batches);
        }
        Ok(ok)
    }

    /// A dataset whose label indices follow this model's label order.
    fn relabel(&self, ds: &ClassificationDataset) -> Result<ClassificationDataset> {
        let map = map_labels(ds, &self.labels)?;
        let labels = self.labels.iter().map(|n| cvtk_dataset::Label { name: n.clone() }).collect();
        let images = ds
            .images()
            .iter()
            .map(|i| cvtk_dataset::ImageInfo {
                labels: i.labels.iter().filter_map(|l| map.get(*l).copied().flatten()).collect(),
                ..i.clone()
            })
            .collect();
        Ok(ClassificationDataset::from_parts(ds.name(), labels, images)?)
    }

    pub(crate) fn tensors(&self) -> Vec<(String, Tensor)> {
        self.backbone.tensors()
    }

    /// Rebuilds a model from a model folder's parts.
    pub(crate) fn from_parts(
        dir: &Path,
        meta: ModelMeta,
        tensors: Vec<(String, Tensor)>,
        device: Device,
    ) -> Result<Self> {
        let Training::Epochs(history) = &meta.training else {
            return Err(Error::ModelFile {
                path: dir.to_path_buf(),
                reason: "model.json does not hold a network's training history".into(),
            });
        };
        let history = history.clone();
        let trained_on = meta.training_record(dir);
        let backbone = Backbone::from_parts(dir, &meta, tensors, device, Some(meta.labels.len() as i64), &[])?;
        Ok(TransferModel {
            labels: meta.labels,
            backbone,
            history,
            calibration: meta.calibration,
            trained_on,
            tta: meta.tta,
        })
    }

    /// Loads a model saved by [`Classifier::save`], onto `device`.
    pub fn load(dir: impl AsRef<Path>, device: Device) -> Result<Self> {
        let dir = dir.as_ref();
        let (meta, tensors) = read_model_dir_of_kind(dir, ModelKind::Dnn)?;
        Self::from_parts(dir, meta, tensors, device)
    }
}

impl Scorer for TransferModel {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn loader_config(&self) -> LoaderConfig {
        self.backbone.loader.clone()
    }

    fn score_images(&self, images: &ImageBatch) -> Result<Vec<Vec<f32>>> {
        self.backbone.check_batch(images)?;
        self.backbone.forward_rows(images)
    }

    fn score_kind(&self) -> ScoreKind {
        ScoreKind::Logits { temperature: self.calibration.as_ref().map_or(1.0, |c| c.temperature) }
    }

    fn engine(&self) -> Engine {
        Engine::Torch
    }

    fn class_maps(&self, images: &ImageBatch) -> Result<Vec<ClassMaps>> {
        let (w, b) = self.head()?;
        self.backbone.class_maps(images, &w, &b)
    }

    fn grad_cam(&self, images: &ImageBatch, targets: &[usize]) -> Result<Vec<Heatmap>> {
        let (w, b) = self.head()?;
        self.backbone.grad_cam(images, &w, &b, targets)
    }

    fn describe(&self) -> String {
        let b = &self.backbone;
        format!(
            "fine-tuned {} ({}x{} input, {} epochs, from {}{})",
            b.arch,
            b.loader.width,
            b.loader.height,
            self.history.len(),
            b.source(),
            self.calibration.as_ref().map(|c| format!("; temperature {:.3}", c.temperature)).unwrap_or_default()
        )
    }
}

impl TransferModel {
    #[cfg(test)]
    pub(crate) fn head_for_test(&self) -> (Tensor, Tensor) {
        self.head().expect("a head")
    }

    #[cfg(test)]
    pub(crate) fn backbone_for_test(&self) -> &Backbone {
        &self.backbone
    }

    /// The head's weight `[labels, features]` and bias `[labels]`.
    fn head(&self) -> Result<(Tensor, Tensor)> {
        let head = self.backbone.arch.head_name();
        let vars = self.backbone.vars();
        let weight = |name: String| {
            vars.get(&name).map(Tensor::shallow_clone).ok_or_else(|| Error::InvalidInput(format!("no {name}")))
        };
        Ok((weight(format!("{head}.weight"))?, weight(format!("{head}.bias"))?))
    }
}

impl Classifier for TransferModel {
    fn export_onnx(&self) -> Result<OnnxModel> {
        let (w, b) = self.head()?;
        self.backbone.export(&self.labels, ModelKind::Dnn, self.score_kind(), w, b, false, crate::TtaMode::None)
    }

    fn export_onnx_tta(&self, tta: crate::TtaMode) -> Result<OnnxModel> {
        let (w, b) = self.head()?;
        self.backbone.export(&self.labels, ModelKind::Dnn, self.score_kind(), w, b, false, tta)
    }

    fn export_onnx_with_maps(&self) -> Result<OnnxModel> {
        let (w, b) = self.head()?;
        self.backbone.export(&self.labels, ModelKind::Dnn, self.score_kind(), w, b, true, crate::TtaMode::None)
    }

    fn scores_graph(&self) -> Result<Vec<u8>> {
        self.backbone.classifier_graph(&self.labels, || self.export_onnx())
    }

    fn calibration(&self) -> Option<&TemperatureFit> {
        self.calibration.as_ref()
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut meta =
            self.backbone.meta(&self.labels, Training::Epochs(self.history.clone()), self.calibration.clone());
        meta.tta = self.tta;
        save_model_dir(dir, meta, &self.tensors(), &self.trained_on)
    }

    fn device(&self) -> Device {
        self.backbone.device()
    }

    fn kind(&self) -> ModelKind {
        ModelKind::Dnn
    }

    fn tta(&self) -> crate::TtaMode {
        self.tta
    }

    fn train_eval_accs(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        (!self.history.is_empty()).then(|| TransferModel::train_eval_accs(self))
    }

    fn training_images(&self) -> Result<Option<Arc<TrainingImages>>> {
        self.trained_on.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_line_names_its_error_rates_as_error_rates() {
        let stats = EpochStats {
            epoch: 3,
            lr: 0.01,
            loss: 0.412,
            train_acc: 0.878,
            eval_acc: Some(0.9091),
            samples_per_sec: 13.2,
            seconds: 3.1,
        };
        let line = stats.summary_line(15, 41);
        assert!(line.contains("error rate = 12.20% * 41") && line.ends_with("eval error rate 9.09%"), "{line}");
        assert!(!line.contains("metric"), "{line}");
    }

    #[test]
    fn rejects_each_bad_field() {
        let cases: Vec<(TrainConfig, &str)> = vec![
            (TrainConfig { lr_per_mb: vec![].into(), ..Default::default() }, "lr_per_mb"),
            (TrainConfig { lr_per_mb: vec![0.1, -1.0].into(), ..Default::default() }, "lr_per_mb"),
            (TrainConfig { lr_per_mb: vec![f64::NAN].into(), ..Default::default() }, "lr_per_mb"),
            (TrainConfig { mb_size: 0, ..Default::default() }, "mb_size"),
            (TrainConfig { momentum: 1.5, ..Default::default() }, "momentum"),
            (TrainConfig { weight_decay: -1.0, ..Default::default() }, "weight_decay"),
            (TrainConfig { calibration_holdout: Some(0.0), ..Default::default() }, "calibration_holdout"),
            (TrainConfig { calibration_holdout: Some(0.7), ..Default::default() }, "calibration_holdout"),
        ];
        for (cfg, field) in cases {
            match cfg.check() {
                Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert_eq!(TrainConfig::default().check().unwrap().lr_per_mb.epochs(), 15);
    }
}

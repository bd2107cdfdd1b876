//! `cvtk train`: fine-tune a network (`--classifier dnn`) or fit a linear SVM on
//! its features (`--classifier svm`), and save the model folder.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cvtk_dataset::ClassificationDataset;
use cvtk_model::{
    Architecture, BaseModel, Classifier, Compiled, DeviceChoice, EngineChoice, EpochCallback, EpochStats, Featurizer,
    LrSchedule, Scorer, SvmClassifier, SvmParams, SvmSolver, TrainConfig, TrainHooks, TransferModel,
};
use serde::Serialize;

use crate::output::print_json;

/// Which classifier to train.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassifierKind {
    /// Fine-tune the network (the original's CNTKTLModel).
    Dnn,
    /// A linear SVM on the network's features (the original's ScikitClassifier).
    Svm,
}

/// Options that pick and load a base network, shared by train and predict.
#[derive(clap::Args, Debug, Clone)]
pub struct BaseModelArgs {
    /// Base network: efficientnet-lite0 (default, pretrained), efficientnet-lite1/2,
    /// resnet18/34/50/101/152 (bring torchvision weights), small-cnn.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub base_model: Architecture,
    /// Weights file (.pth from torchvision, .pt, .safetensors); default: found by
    /// name in $CVTK_WEIGHTS_DIR, ./weights, ~/.cvtk/weights.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Start from random weights instead of pretrained ones.
    #[arg(long, conflicts_with = "weights")]
    pub random_init: bool,
    /// Device: auto (CUDA when available), cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

impl BaseModelArgs {
    /// The base model these options name.
    pub fn base_model(&self) -> anyhow::Result<BaseModel> {
        Ok(BaseModel::resolve(self.base_model, self.weights.clone(), self.random_init)?)
    }

    /// The device.
    pub fn device(&self) -> anyhow::Result<tch::Device> {
        Ok(self.device.resolve()?)
    }

    /// The base network as it is, a classifier of the 1000 ImageNet classes
    /// scoring with `engine` (what predict and score use without --model),
    /// and the base model it came from.
    pub fn imagenet_classifier(
        &self,
        engine: EngineArgs,
    ) -> anyhow::Result<(BaseModel, Compiled<Box<dyn Classifier>>)> {
        let base = self.base_model()?;
        let model = cvtk_model::TransferModel::imagenet(&base, self.device()?)?;
        Ok((base, engine.tta(cvtk_model::compile(Box::new(model) as Box<dyn Classifier>, engine.engine)?)))
    }
}

/// The scoring engine option, shared by every command that scores.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct EngineArgs {
    /// Scoring engine: auto (onnxruntime on the CPU when its library loads,
    /// else torch; torch on CUDA), torch, or onnxruntime. Training itself
    /// always runs on torch.
    #[arg(long, default_value = "auto")]
    pub engine: EngineChoice,
    /// Test-time augmentation: none, or flip (average the scores of each image and its mirror image).
    /// Scoring commands default to what the model was trained with; `cvtk train --tta flip` calibrates
    /// on it and records it in the model folder.
    #[arg(long)]
    pub tta: Option<cvtk_model::TtaMode>,
}

impl EngineArgs {
    /// `scorer` with the test-time augmentation asked for, if any (else the
    /// model folder's).
    pub fn tta<M>(&self, scorer: cvtk_model::Compiled<M>) -> cvtk_model::Compiled<M>
    where
        M: std::ops::Deref,
        M::Target: Classifier,
    {
        match self.tta {
            Some(mode) => scorer.with_tta(mode),
            None => scorer,
        }
    }
}

/// Arguments of `cvtk train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A manifest with a split (trains on train, reports on test), or a folder (trains on all).
    dataset: PathBuf,
    /// dnn: fine-tune the network; svm: linear SVM on its features.
    #[arg(long, value_enum, default_value = "dnn")]
    classifier: ClassifierKind,
    #[command(flatten)]
    base: BaseModelArgs,
    /// Engine that scores once training is done (the accuracies printed) and
    /// computes the SVM's features; fine-tuning itself runs on torch.
    #[command(flatten)]
    engine: EngineArgs,
    /// Learning rate per epoch, comma-separated, with Python-like repeats. Without it or --epochs:
    /// "0.05*7,0.005*7,0.0005", the original's 15-epoch schedule.
    #[arg(long)]
    lr_per_mb: Option<LrSchedule>,
    /// Epochs at --lr, the last third at a tenth of it (instead of --lr-per-mb).
    #[arg(long, conflicts_with = "lr_per_mb")]
    epochs: Option<usize>,
    /// Learning rate for --epochs.
    #[arg(long, default_value_t = 0.01, requires = "epochs")]
    lr: f64,
    /// Minibatch size.
    #[arg(long, default_value_t = 32, value_parser = crate::output::at_least_one)]
    mb_size: usize,
    /// Input size in pixels (square). Default: the network's own: 224 for efficientnet-lite0 and the
    /// resnets, 240 for lite1, 260 for lite2, 28 for small-cnn.
    #[arg(long)]
    image_size: Option<u32>,
    /// Train only the new head.
    #[arg(long)]
    freeze_backbone: bool,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Seed of initialisation, dropout and data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write TensorBoard event files here.
    #[arg(long)]
    tensorboard: Option<PathBuf>,
    /// Keep batch norm's running statistics as training left them (no recalibration pass).
    #[arg(long)]
    no_recalibrate_bn: bool,
    /// Calibrate the network's probabilities: hold out --calibration-fraction of the
    /// training images, train on the rest, and fit a temperature on them. (An SVM's
    /// probabilities are always calibrated, by cross-fitting on its training features.)
    #[arg(long)]
    calibrate: bool,
    /// The fraction of training images --calibrate holds out.
    #[arg(long, default_value_t = 0.1, requires = "calibrate")]
    calibration_fraction: f64,
    /// Augment training images on the fly with this pipeline: a JSON or TOML file, or a built-in one
    /// (flip_crop, photo; see `cvtk augment`).
    #[arg(long)]
    augment: Option<PathBuf>,
    /// SVM regularisation C.
    #[arg(long, default_value_t = 1.0)]
    c: f64,
    /// SVM solver: dual-cd (scales linearly) or linfa (SMO, n^2 memory).
    #[arg(long, value_enum, default_value = "dual-cd")]
    solver: SolverArg,
    /// The model folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

/// SVM solver choice.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SolverArg {
    /// Dual coordinate descent.
    DualCd,
    /// linfa-svm's SMO.
    Linfa,
}

#[derive(Serialize)]
struct Summary {
    model_dir: PathBuf,
    classifier: &'static str,
    base_model: String,
    base_weights: Option<PathBuf>,
    labels: Vec<String>,
    train_images: usize,
    eval_images: usize,
    history: Vec<EpochStats>,
    train_accuracy: f64,
    eval_accuracy: Option<f64>,
    /// What the model's raw scores are and the temperature that calibrates them.
    score_kind: cvtk_core::ScoreKind,
    calibration: Option<cvtk_model::TemperatureFit>,
}

impl Args {
    /// The fine-tuning settings these flags give, but the augmentation pipeline.
    fn train_config_without_augmentation(&self) -> TrainConfig {
        let lr_per_mb = match (&self.lr_per_mb, self.epochs) {
            (Some(s), _) => s.clone(),
            (None, Some(n)) => LrSchedule::step(self.lr, n),
            (None, None) => LrSchedule::default(),
        };
        TrainConfig {
            recalibrate_batch_norm: !self.no_recalibrate_bn,
            calibration_holdout: self.calibrate.then_some(self.calibration_fraction),
            lr_per_mb,
            mb_size: self.mb_size,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            freeze_backbone: self.freeze_backbone,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }

    /// The fine-tuning settings these flags give, with `--augment`'s pipeline.
    fn train_config(&self) -> anyhow::Result<TrainConfig> {
        let augmentation = match &self.augment {
            Some(p) => Some(Arc::new(cvtk_augment::Pipeline::open(p)?) as Arc<dyn cvtk_dataset::ImageTransform>),
            None => None,
        };
        Ok(TrainConfig { augmentation, ..self.train_config_without_augmentation() })
    }

    /// The SVM's settings these flags give.
    fn svm_params(&self) -> SvmParams {
        SvmParams {
            c: self.c,
            solver: match self.solver {
                SolverArg::DualCd => SvmSolver::DualCd,
                SolverArg::Linfa => SvmSolver::Linfa,
            },
            seed: self.seed,
            ..SvmParams::default()
        }
    }
}

/// Runs `cvtk train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.augment.is_some() && matches!(args.classifier, ClassifierKind::Svm) {
        anyhow::bail!("--augment applies to fine-tuning (--classifier dnn); for an SVM, write augmented copies first with `cvtk augment`");
    }
    // The settings the library checks, refused as a usage error before any work.
    match args.classifier {
        ClassifierKind::Dnn => args.train_config_without_augmentation().check().map(|_| ()),
        ClassifierKind::Svm => args.svm_params().check().map(|_| ()),
    }
    .map_err(crate::output::usage_error)?;
    let arch = args.base.base_model;
    if let Some(size) = args.image_size.filter(|&s| s < arch.min_image_size()) {
        let least = arch.min_image_size();
        let e = format!("--image-size {size} is below {arch}'s minimum of {least} pixels");
        return Err(crate::output::usage_error(e).into());
    }
    let ds = ClassificationDataset::open(&args.dataset)?;
    let (train, eval): (ClassificationDataset, Option<ClassificationDataset>) = match ds.split_info() {
        Some(_) => (ds.train()?, Some(ds.test()?)),
        None => {
            if !args.json {
                eprintln!(
                    "note: {} has no split; training on all {} images (make one with `cvtk dataset split`)",
                    args.dataset.display(),
                    ds.len()
                );
            }
            (ds.clone(), None)
        }
    };
    let labels = ds.label_names();
    // A label the classifier never sees cannot be learnt; a label of one
    // image cannot be both learnt and tested.
    let in_train = train.counts_per_label();
    let in_all = ds.counts_per_label();
    let unseen: Vec<String> = labels
        .iter()
        .zip(in_train.iter().zip(&in_all))
        // A label with no images at all (added in `cvtk annotate`, or all its
        // images excluded) is left to the classifier as before.
        .filter(|(_, (t, all))| **all > 0 && (**t == 0 || (**all == 1 && eval.is_some())))
        .map(|(name, (t, all))| {
            if *t == 0 {
                format!("'{name}' (no training image of its {all})")
            } else {
                format!("'{name}' (a single image)")
            }
        })
        .collect();
    if !unseen.is_empty() {
        anyhow::bail!(
            "cannot train: label {} — every label needs images in the training part, and one to test it on; add \
             images (a label of one image cannot be in both parts), or re-split: cvtk dataset split {m} --out {m} \
             --stratify, with a larger --train-size",
            unseen.join(", "),
            m = args.dataset.display()
        );
    }
    let base = args.base.base_model()?;
    let device = args.base.device()?;
    if !args.json {
        println!(
            "training a {} classifier on {} ({}) with {} images of {} labels{}, on {device:?}",
            if args.classifier == ClassifierKind::Dnn { "fine-tuned" } else { "linear SVM" },
            base.arch,
            base.weights.as_ref().map(|w| w.display().to_string()).unwrap_or_else(|| "random init".into()),
            train.len(),
            labels.len(),
            eval.as_ref().map(|e| format!(", evaluating on {}", e.len())).unwrap_or_default()
        );
    }
    let (classifier, history): (Box<dyn Classifier>, Vec<EpochStats>) = match args.classifier {
        ClassifierKind::Dnn => {
            let quiet = args.json;
            let cfg = args.train_config()?;
            let hooks = TrainHooks {
                tensorboard_logdir: args.tensorboard.clone(),
                on_epoch: (!quiet).then(|| {
                    let n = train.len();
                    Arc::new(move |s: &EpochStats, epochs: usize| println!("{}", s.summary_line(epochs, n)))
                        as EpochCallback
                }),
            };
            let mut model = TransferModel::new_seeded(labels.clone(), &base, args.image_size, device, args.seed)?;
            model.set_tta(args.engine.tta.unwrap_or_default());
            model.train_with(&train, &cfg, eval.as_ref(), &hooks)?;
            let history = model.history().to_vec();
            (Box::new(model), history)
        }
        ClassifierKind::Svm => {
            let params = args.svm_params();
            let featurizer = Featurizer::new(&base, args.image_size, device)?.compile(args.engine.engine)?;
            let tta = args.engine.tta.unwrap_or_default();
            (Box::new(SvmClassifier::fit_with(featurizer, &train, &params, tta)?), Vec::new())
        }
    };
    classifier.save(&args.out).with_context(|| format!("saving the model to {}", args.out.display()))?;
    let scorer = cvtk_model::compile(&*classifier, args.engine.engine)?;
    let train_accuracy = scorer.score_dataset(&train, args.mb_size.max(16))?.accuracy();
    let eval_accuracy = match &eval {
        Some(e) => Some(scorer.score_dataset(e, args.mb_size.max(16))?.accuracy()),
        None => None,
    };
    let summary = Summary {
        model_dir: args.out.clone(),
        classifier: if args.classifier == ClassifierKind::Dnn { "dnn" } else { "svm" },
        base_model: base.arch.to_string(),
        base_weights: base.weights.clone(),
        labels,
        train_images: train.len(),
        eval_images: eval.as_ref().map_or(0, ClassificationDataset::len),
        history,
        train_accuracy,
        eval_accuracy,
        score_kind: classifier.score_kind(),
        calibration: classifier.calibration().cloned(),
    };
    if args.json {
        return print_json(&summary);
    }
    println!("train accuracy {:.2}%", 100.0 * train_accuracy);
    if let Some(a) = eval_accuracy {
        println!("test accuracy {:.2}% ({} images)", 100.0 * a, summary.eval_images);
    }
    if let Some(c) = &summary.calibration {
        println!(
            "probabilities calibrated: temperature {:.4} from {} images (negative log-likelihood {:.4} -> {:.4})",
            c.temperature, c.images, c.nll_before, c.nll_after
        );
    }
    println!("model saved to {}", args.out.display());
    Ok(())
}

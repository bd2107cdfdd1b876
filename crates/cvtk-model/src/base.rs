//! [`BaseModel`]: a pretrained network, loaded from its weights file, usable as
//! an ImageNet classifier or as the starting point of a [`crate::Architecture`]-based model.

use std::path::{Path, PathBuf};

use cvtk_dataset::{ImageLoader, LoaderConfig, ResizeMode};
use serde::Serialize;
use tch::{nn, Device, Tensor};

use crate::nets::Network;
use crate::weights::{load_into, read_state_dict};
use crate::{weights_search_dirs, Architecture, Error, Result};

/// Which device to run on, as a user names it: `auto` (CUDA when available,
/// else the CPU), `cpu`, `cuda` or `cuda:N`. Parsing checks the name only (a
/// command line's usage error); [`DeviceChoice::resolve`] checks the machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceChoice {
    /// CUDA when available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The GPU of this index.
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad =
            || Error::InvalidConfig { field: "device", reason: format!("'{s}' is not one of auto, cpu, cuda, cuda:N") };
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => s.strip_prefix("cuda:").and_then(|i| i.parse().ok()).map(DeviceChoice::Cuda).ok_or_else(bad),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceChoice {
    /// The device on this machine: asking for CUDA without a GPU, or for a GPU
    /// it does not have, is an error.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(index) => {
                if !tch::Cuda::is_available() {
                    return Err(Error::InvalidConfig {
                        field: "device",
                        reason: "CUDA was asked for but no GPU is available; use --device cpu".into(),
                    });
                }
                if index >= tch::Cuda::device_count() as usize {
                    return Err(Error::InvalidConfig { field: "device", reason: format!("there is no GPU {index}") });
                }
                Ok(Device::Cuda(index))
            }
        }
    }
}

/// Picks the device: `None` means CUDA when available, else CPU; otherwise
/// `"cpu"`, `"cuda"` or `"cuda:N"` ([`DeviceChoice`]). Asking for CUDA without
/// a GPU is an error.
pub fn resolve_device(name: Option<&str>) -> Result<Device> {
    name.map_or(Ok(DeviceChoice::Auto), str::parse::<DeviceChoice>)?.resolve()
}

/// A base network and the weights file it starts from.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseModel {
    /// The architecture.
    pub arch: Architecture,
    /// The weights file; `None` means random initialisation.
    pub weights: Option<PathBuf>,
}

/// One ImageNet class with its probability.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImagenetPrediction {
    /// Class index (0..1000).
    pub index: usize,
    /// Class name, from `tch::vision::imagenet::CLASSES`.
    pub label: String,
    /// Softmax probability.
    pub score: f32,
}

impl BaseModel {
    /// A base model with explicit weights (or none, for random initialisation).
    pub fn new(arch: Architecture, weights: Option<PathBuf>) -> Self {
        BaseModel { arch, weights }
    }

    /// The architecture with its pretrained weights, found in
    /// [`weights_search_dirs`] by file name. An error says where it looked.
    pub fn pretrained(arch: Architecture) -> Result<Self> {
        let dirs = weights_search_dirs();
        match arch.find_weights(&dirs) {
            Some(w) => Ok(BaseModel { arch, weights: Some(w) }),
            None => Err(Error::WeightsNotFound {
                arch: arch.name().into(),
                searched: dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// The base model a user's choices name: `weights` if given (the file
    /// must exist), random initialisation if asked for (or for the small CNN,
    /// which has no pretrained weights), else the installed pretrained weights
    /// ([`Self::pretrained`]).
    pub fn resolve(arch: Architecture, weights: Option<PathBuf>, random_init: bool) -> Result<Self> {
        match (weights, random_init) {
            (Some(w), _) => {
                if !w.is_file() {
                    return Err(Error::Weights { path: w, reason: "does not exist".into() });
                }
                Ok(BaseModel::new(arch, Some(w)))
            }
            (None, true) => Ok(BaseModel::new(arch, None)),
            (None, false) if arch == Architecture::SmallCnn => Ok(BaseModel::new(arch, None)),
            (None, false) => BaseModel::pretrained(arch),
        }
    }

    /// Checks that `file` holds weights for the architecture its name says
    /// ([`Architecture::of_weights_file`]) by loading them into that network,
    /// then copies it into `dir` (atomically, synced), where
    /// [`weights_search_dirs`] finds it: `~/.cvtk/weights` for
    /// `cvtk weights install`. Returns the architecture and the new path.
    pub fn install_weights(file: &Path, dir: &Path) -> Result<(Architecture, PathBuf)> {
        let name = file.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let arch = Architecture::of_weights_file(name).ok_or_else(|| Error::Weights {
            path: file.to_path_buf(),
            reason: format!(
                "its name names no architecture; name it ARCH-ANYTHING.pth (or .pt, .safetensors) with ARCH one of {}",
                crate::ARCHITECTURE_NAMES.join(", ")
            ),
        })?;
        if !file.is_file() {
            return Err(Error::Weights { path: file.to_path_buf(), reason: "does not exist".into() });
        }
        let vs = nn::VarStore::new(Device::Cpu);
        BaseModel::new(arch, Some(file.to_path_buf())).build(&vs, Some(1000), true)?;
        let dest = dir.join(name);
        let bytes =
            std::fs::read(file).map_err(|e| Error::Weights { path: file.to_path_buf(), reason: e.to_string() })?;
        cvtk_core::write_atomic(&dest, &bytes)?;
        Ok((arch, dest))
    }

    /// A loader matching the network: its input size, channels and normalisation.
    pub fn loader_config(&self, image_size: Option<u32>) -> LoaderConfig {
        let size = image_size.unwrap_or_else(|| self.arch.default_image_size());
        LoaderConfig {
            width: size,
            height: size,
            resize: ResizeMode::Squash,
            normalization: self.arch.normalization(),
            color: self.arch.color(),
            ..LoaderConfig::default()
        }
    }

    /// The loader for the ImageNet head: the network's input size with
    /// torchvision's evaluation transform (`Resize(256)` + `CenterCrop(224)`
    /// at 224, i.e. the central 87.5%) instead of squashing the whole image.
    pub fn imagenet_loader_config(&self) -> LoaderConfig {
        LoaderConfig { resize: ResizeMode::CenterCrop { crop_fraction: 0.875 }, ..self.loader_config(None) }
    }

    /// [`Self::build_seeded`] without a seed.
    pub fn build(&self, vs: &nn::VarStore, num_classes: Option<i64>, keep_file_head: bool) -> Result<Network> {
        self.build_seeded(vs, num_classes, keep_file_head, None)
    }

    /// Builds the network under `vs`'s root with a head of `num_classes` (if
    /// any) and loads the weights; the head is skipped when its size differs
    /// from the file's (a new head for the user's labels). New weights are
    /// drawn from `seed` when given. Holds the process's libtorch random
    /// generator meanwhile, so a network built (or trained) on another thread
    /// at the same time cannot shift what this one draws.
    pub fn build_seeded(
        &self,
        vs: &nn::VarStore,
        num_classes: Option<i64>,
        keep_file_head: bool,
        seed: Option<u64>,
    ) -> Result<Network> {
        let net = {
            let _rng = crate::torch_rng_lock();
            if let Some(seed) = seed {
                tch::manual_seed(seed as i64);
            }
            self.arch.build(&vs.root(), num_classes)
        };
        if let Some(w) = &self.weights {
            load_weights_file(vs, w, self.arch, keep_file_head)?;
        }
        Ok(net)
    }

    /// Loads the network with its 1000-class ImageNet head, on `device`.
    pub fn imagenet_classifier(&self, device: Device) -> Result<(nn::VarStore, Network)> {
        if self.weights.is_none() {
            return Err(Error::InvalidConfig {
                field: "weights",
                reason: "an ImageNet classifier needs pretrained weights".into(),
            });
        }
        let mut vs = nn::VarStore::new(device);
        let net = self.build(&vs, Some(1000), true)?;
        vs.freeze();
        Ok((vs, net))
    }

    /// Classifies image files with the ImageNet head: the `top` most likely
    /// classes of each, with their probabilities, and the raw logits. Scores
    /// with `engine` ([`crate::TransferModel::imagenet`] is the model).
    pub fn predict_imagenet(
        &self,
        images: &[PathBuf],
        top: usize,
        device: Device,
        engine: crate::EngineChoice,
    ) -> Result<Vec<(Vec<ImagenetPrediction>, Vec<f32>)>> {
        use crate::Scorer;
        let model = crate::compile(Box::new(crate::TransferModel::imagenet(self, device)?), engine)?;
        let loader = ImageLoader::new(model.loader_config())?;
        let mut out = Vec::new();
        for chunk in images.chunks(16) {
            for raw in model.score_images(&loader.load_batch(chunk)?)? {
                let probs = cvtk_core::ScoreKind::LOGITS.probabilities(&raw);
                let preds = cvtk_core::top_k(&probs, top)
                    .into_iter()
                    .map(|i| ImagenetPrediction {
                        index: i,
                        label: tch::vision::imagenet::CLASSES.get(i).copied().unwrap_or("?").to_string(),
                        score: probs[i],
                    })
                    .collect();
                out.push((preds, raw));
            }
        }
        Ok(out)
    }
}

/// Loads a weights file into `vs`, skipping the classifier head unless `keep_head`.
pub(crate) fn load_weights_file(vs: &nn::VarStore, path: &Path, arch: Architecture, keep_head: bool) -> Result<()> {
    let tensors = read_state_dict(path)?;
    let head = format!("{}.", arch.head_name());
    let skip: Vec<&str> = if keep_head { vec![] } else { vec![head.as_str()] };
    load_into(vs, tensors, path, &skip)
}

/// Checks that a batch fits the network's input before running it (libtorch
/// would abort on a wrong shape).
pub(crate) fn check_input(arch: Architecture, xs: &Tensor) -> Result<()> {
    let size = xs.size();
    let channels = arch.color().channels() as i64;
    if size.len() != 4 || size[1] != channels {
        return Err(Error::InvalidInput(format!("expected a [N, {channels}, H, W] batch for {arch}, got {size:?}")));
    }
    let min = i64::from(arch.min_image_size());
    if size[2] < min || size[3] < min {
        return Err(Error::InvalidInput(format!(
            "{arch} needs images of at least {min}x{min} pixels, got {}x{}",
            size[3], size[2]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolving_a_base_model_follows_the_users_choice() {
        let missing = BaseModel::resolve(Architecture::Resnet18, Some("/nonexistent/r18.pth".into()), false);
        assert!(missing.unwrap_err().to_string().contains("does not exist"));
        assert_eq!(BaseModel::resolve(Architecture::Resnet50, None, true).unwrap().weights, None);
        assert_eq!(BaseModel::resolve(Architecture::SmallCnn, None, false).unwrap().weights, None);
        let file = tempfile::NamedTempFile::new().unwrap();
        let given = BaseModel::resolve(Architecture::Resnet18, Some(file.path().to_path_buf()), true).unwrap();
        assert_eq!(given.weights.as_deref(), Some(file.path()), "a given file wins over random init");
    }
}

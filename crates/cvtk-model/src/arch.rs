//! [`Architecture`]: the base networks cvtk knows. What each needs (input size
//! and channels, normalisation, feature size, head name) is kept beside its
//! network in [`crate::nets`]; here are the names and the weights files cvtk
//! looks for.

use std::path::{Path, PathBuf};

use cvtk_dataset::{ColorMode, Normalization};
use serde::{Deserialize, Serialize};
use tch::nn;

use crate::nets::{efficientnet_lite, resnet, small_cnn, NetSpec, Network};
use crate::{Error, Result};

/// A base network. Counterpart of the original package's `base_model_name`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// ResNet-18 (torchvision).
    Resnet18,
    /// ResNet-34 (torchvision).
    Resnet34,
    /// ResNet-50 (torchvision).
    Resnet50,
    /// ResNet-101 (torchvision).
    Resnet101,
    /// ResNet-152 (torchvision).
    Resnet152,
    /// EfficientNet-Lite0: the default, pretrained weights installed by setup.
    #[default]
    EfficientnetLite0,
    /// EfficientNet-Lite1.
    EfficientnetLite1,
    /// EfficientNet-Lite2.
    EfficientnetLite2,
    /// A small CNN for 28x28 grayscale images, trained from scratch.
    SmallCnn,
}

/// Names accepted by [`Architecture::from_name`].
pub const ARCHITECTURE_NAMES: &[&str] = &[
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "efficientnet-lite0",
    "efficientnet-lite1",
    "efficientnet-lite2",
    "small-cnn",
];

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Architecture {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

impl Architecture {
    /// Every architecture.
    pub const ALL: [Architecture; 9] = [
        Architecture::Resnet18,
        Architecture::Resnet34,
        Architecture::Resnet50,
        Architecture::Resnet101,
        Architecture::Resnet152,
        Architecture::EfficientnetLite0,
        Architecture::EfficientnetLite1,
        Architecture::EfficientnetLite2,
        Architecture::SmallCnn,
    ];

    /// The architecture called `name` (see [`ARCHITECTURE_NAMES`]).
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| Error::UnknownArchitecture { name: name.to_string(), known: ARCHITECTURE_NAMES.join(", ") })
    }

    /// The facts kept beside the architecture's network.
    pub(crate) fn spec(self) -> &'static NetSpec {
        match self {
            Architecture::Resnet18 => &resnet::RESNET18,
            Architecture::Resnet34 => &resnet::RESNET34,
            Architecture::Resnet50 => &resnet::RESNET50,
            Architecture::Resnet101 => &resnet::RESNET101,
            Architecture::Resnet152 => &resnet::RESNET152,
            Architecture::EfficientnetLite0 => &efficientnet_lite::LITE0,
            Architecture::EfficientnetLite1 => &efficientnet_lite::LITE1,
            Architecture::EfficientnetLite2 => &efficientnet_lite::LITE2,
            Architecture::SmallCnn => &small_cnn::SMALL_CNN,
        }
    }

    /// The name, e.g. `resnet50`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Features produced by the backbone (512 for ResNet-18/34, 2048 for
    /// ResNet-50+, 1280 for EfficientNet-Lite, 1024 for the small CNN).
    pub fn feature_dim(self) -> i64 {
        self.spec().feature_dim
    }

    /// The input size the network was trained at (square).
    pub fn default_image_size(self) -> u32 {
        self.spec().default_image_size
    }

    /// Input channels.
    pub fn color(self) -> ColorMode {
        self.spec().color
    }

    /// The input normalisation its weights expect.
    pub fn normalization(self) -> Normalization {
        self.spec().normalization
    }

    /// The classifier's parameter prefix (`fc`, `_fc`, `fc2`).
    pub fn head_name(self) -> &'static str {
        self.spec().head_name
    }

    /// The momentum of the network's batch-norm running statistics (PyTorch's
    /// convention), or None for a network without batch norm.
    pub fn batch_norm_momentum(self) -> Option<f64> {
        self.spec().batch_norm_momentum
    }

    /// The smallest input side the network accepts.
    pub fn min_image_size(self) -> u32 {
        self.spec().min_image_size
    }

    /// A ResNet's blocks, or None for other networks.
    pub fn resnet_blocks(self) -> Option<resnet::Blocks> {
        self.spec().resnet_blocks
    }

    /// Builds the network under `p`; with `num_classes`, with a head of that size.
    pub fn build(self, p: &nn::Path, num_classes: Option<i64>) -> Network {
        (self.spec().build)(p, num_classes)
    }

    /// The file-name prefix of its ImageNet weights: torchvision's (`resnet50-`
    /// as in `resnet50-0676ba61.pth`) or the EfficientNet-Lite package's.
    pub fn weights_prefix(self) -> String {
        format!("{}-", self.name())
    }

    /// Whether `file` (a file name) is named as this architecture's weights:
    /// torchvision's `NAME-HASH.pth`, or `NAME.pth` / `NAME.pt` / `NAME.safetensors`.
    pub fn names_weights_file(self, file: &str) -> bool {
        let ext_ok = [".pth", ".pt", ".safetensors"].iter().any(|e| file.ends_with(e));
        let stem = file.rsplit_once('.').map(|(s, _)| s).unwrap_or(file);
        ext_ok && (file.starts_with(&self.weights_prefix()) || stem == self.name())
    }

    /// The architecture whose weights `file` (a file name) is named as, the
    /// longest name first (`resnet101-...` is not `resnet10`'s).
    pub fn of_weights_file(file: &str) -> Option<Architecture> {
        let mut all = Architecture::ALL;
        all.sort_by_key(|a| std::cmp::Reverse(a.name().len()));
        all.into_iter().find(|a| a.names_weights_file(file))
    }

    /// Looks for this architecture's weights in `dirs`, by file name: torchvision's
    /// `NAME-HASH.pth`, or `NAME.pth` / `NAME.pt` / `NAME.safetensors`.
    pub fn find_weights(self, dirs: &[PathBuf]) -> Option<PathBuf> {
        let is_weights = |p: &Path| p.file_name().and_then(|f| f.to_str()).is_some_and(|f| self.names_weights_file(f));
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut found: Vec<PathBuf> =
                entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| is_weights(p)).collect();
            found.sort();
            if let Some(p) = found.into_iter().next() {
                return Some(std::fs::canonicalize(&p).unwrap_or(p));
            }
        }
        None
    }
}

/// Folders searched for pretrained weights, in order: `$CVTK_WEIGHTS_DIR`,
/// `./weights`, `~/.cvtk/weights` (the storage context's), and the `weights/`
/// folder of the cvtk checkout this program was built from (where `make setup`
/// puts the EfficientNet-Lite0 file).
pub fn weights_search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("CVTK_WEIGHTS_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("weights"));
    dirs.push(cvtk_core::StorageContext::default().weights_dir());
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights"));
    dirs
}

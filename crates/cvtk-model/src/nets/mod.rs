//! The networks, one module per architecture, each holding the facts cvtk
//! needs about it (a [`NetSpec`]: input size, channels and normalisation,
//! feature size, head name, batch-norm momentum) beside its constructor.
//! Every constructor returns a [`Network`]: a feature extractor and, when a
//! class count is given, a linear head; without one, the backbone alone (what
//! the SVM's featurizer uses).

pub mod efficientnet_lite;
pub mod resnet;
pub mod small_cnn;

use cvtk_dataset::{ColorMode, Normalization};
use tch::nn::{self, Init, ModuleT};
use tch::Tensor;

/// What cvtk needs to know about an architecture, kept beside its network.
#[derive(Clone, Copy)]
pub(crate) struct NetSpec {
    /// The name (`resnet50`, `efficientnet-lite0`, ...).
    pub name: &'static str,
    /// Features the backbone produces.
    pub feature_dim: i64,
    /// The input size it was trained at (square).
    pub default_image_size: u32,
    /// The smallest input side it accepts.
    pub min_image_size: u32,
    /// Input channels.
    pub color: ColorMode,
    /// The input normalisation its weights expect.
    pub normalization: Normalization,
    /// The classifier's parameter prefix.
    pub head_name: &'static str,
    /// The momentum of its batch-norm running statistics (PyTorch's
    /// convention), or None without batch norm.
    pub batch_norm_momentum: Option<f64>,
    /// Builds it under a path, with a head of `num_classes` if given.
    pub build: fn(&nn::Path, Option<i64>) -> Network,
    /// For a ResNet, its blocks (which its fused inference copy follows).
    pub resnet_blocks: Option<resnet::Blocks>,
    /// Writes the backbone (pooled features) as ONNX ops after the input
    /// `x` of `(height, width)` pixels; returns the features' name.
    pub onnx: OnnxEmitter,
}

/// See [`NetSpec::onnx`].
pub(crate) type OnnxEmitter =
    fn(&mut crate::onnx::graph::GraphBuilder, &crate::onnx::graph::Vars, &str, (i64, i64)) -> crate::Result<String>;

/// PyTorch's default initialisation of `Conv2d` and `Linear` weights,
/// `kaiming_uniform_(a=sqrt(5))`: uniform in +-1/sqrt(fan_in). (tch's default
/// uses the ReLU gain, sqrt(6) times wider, which leaves eval-mode batch-norm
/// statistics far behind a randomly initialised network's activations.)
pub(crate) const TORCH_DEFAULT_INIT: Init = Init::Kaiming {
    dist: nn::init::NormalOrUniform::Uniform,
    fan: nn::init::FanInOut::FanIn,
    non_linearity: nn::init::NonLinearity::ExplicitGain(0.577_350_269_189_625_8), // sqrt(1/3)
};

/// PyTorch's batch-norm initialisation: weight 1, bias 0. (tch draws the weight
/// uniformly from [0, 1]; at a mean of 0.5 per layer, the eval-mode signal of a
/// randomly initialised deep network vanishes and every image gets the same
/// prediction.)
pub(crate) fn torch_batch_norm() -> nn::BatchNormConfig {
    nn::BatchNormConfig { ws_init: Init::Const(1.0), bs_init: Init::Const(0.0), ..Default::default() }
}

/// A linear layer initialised as PyTorch's `nn.Linear` (weights and bias
/// uniform in +-1/sqrt(in_dim)).
pub(crate) fn torch_linear(p: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    nn::linear(p, in_dim, out_dim, nn::LinearConfig { ws_init: TORCH_DEFAULT_INIT, ..Default::default() })
}

/// A backbone with an optional classifier head. A network that ends in
/// global average pooling keeps its last feature map reachable
/// ([`Network::feature_map_t`]): the class activation maps of
/// [`crate::explain`] are the head applied to it, cell by cell.
pub struct Network {
    /// Pooled features, or for a pooled network the feature map before its
    /// global average pooling.
    features: Box<dyn ModuleT + Send>,
    pooled: bool,
    feature_dim: i64,
    head: Option<nn::Linear>,
    dropout: f64,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("feature_dim", &self.feature_dim).field("head", &self.head.is_some()).finish()
    }
}

impl Network {
    /// A network whose `features` give `[N, feature_dim]` rows directly (no
    /// feature map: a flattening layer comes first).
    pub(crate) fn new(features: impl ModuleT + 'static, feature_dim: i64, head: Option<nn::Linear>) -> Self {
        Network { features: Box::new(features), pooled: false, feature_dim, head, dropout: 0.0 }
    }

    /// A network whose `map` gives `[N, feature_dim, h, w]` feature maps,
    /// globally average-pooled into its features.
    pub(crate) fn pooled(map: impl ModuleT + 'static, feature_dim: i64, head: Option<nn::Linear>) -> Self {
        Network { features: Box::new(map), pooled: true, feature_dim, head, dropout: 0.0 }
    }

    /// Dropout applied to the features before the head, in training only.
    pub(crate) fn with_dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }

    /// Number of features the backbone produces (the head's input size).
    pub fn feature_dim(&self) -> i64 {
        self.feature_dim
    }

    /// Whether the network has a classifier head.
    pub fn has_head(&self) -> bool {
        self.head.is_some()
    }

    /// Pooled features `[N, feature_dim]`.
    pub fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = self.features.forward_t(xs, train);
        match self.pooled {
            true => pool(&out),
            false => out,
        }
    }

    /// The last feature map `[N, feature_dim, h, w]`, whose global average
    /// is [`Self::features_t`]; None for a network without one (the small
    /// CNN flattens before its hidden layer).
    pub fn feature_map_t(&self, xs: &Tensor, train: bool) -> Option<Tensor> {
        self.pooled.then(|| self.features.forward_t(xs, train))
    }

    /// The head applied to features (with dropout in training); the features
    /// themselves when there is no head.
    pub fn head_t(&self, features: &Tensor, train: bool) -> Tensor {
        match &self.head {
            Some(h) => features.dropout(self.dropout, train).apply(h),
            None => features.shallow_clone(),
        }
    }

    /// Logits `[N, classes]` (features when there is no head).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.head_t(&self.features_t(xs, train), train)
    }
}

/// Global average pooling of `[N, C, h, w]` into `[N, C]`.
pub(crate) fn pool(map: &Tensor) -> Tensor {
    map.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound_of(t: &Tensor) -> f64 {
        t.abs().max().double_value(&[])
    }

    #[test]
    fn random_initialisation_matches_the_reference_implementations() {
        // Under the generator's lock, as every seeded build: a seed set
        // without it lands between another test's seed and its draws.
        let _rng = crate::torch_rng_lock();
        tch::manual_seed(0);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _lite = efficientnet_lite::efficientnet_lite(&(vs.root() / "lite"), 0, Some(10));
        let _resnet = resnet::resnet18(&(vs.root() / "resnet"), Some(10));
        let v = vs.variables();
        // Lite stem: PyTorch's Conv2d default, U(+-1/sqrt(3*3*3)).
        let stem = bound_of(&v["lite._conv_stem.weight"]);
        assert!(stem <= 1.0 / 27f64.sqrt() + 1e-6 && stem > 0.9 / 27f64.sqrt(), "{stem}");
        // Heads: PyTorch's Linear default, U(+-1/sqrt(in)).
        assert!(bound_of(&v["lite._fc.weight"]) <= 1.0 / 1280f64.sqrt() + 1e-6);
        assert!(bound_of(&v["resnet.fc.bias"]) <= 1.0 / 512f64.sqrt() + 1e-6);
        // torchvision's ResNet conv1: normal with std sqrt(2 / fan_out) = sqrt(2 / (64*7*7)).
        let std = v["resnet.conv1.weight"].std(true).double_value(&[]);
        let expected = (2.0 / (64.0 * 49.0f64)).sqrt();
        assert!((std / expected - 1.0).abs() < 0.05, "{std} vs {expected}");
        // Batch norm: weight 1, bias 0, running statistics 0 and 1.
        for k in ["lite._blocks.3._bn1", "resnet.layer2.0.bn1"] {
            assert!(v[&format!("{k}.weight")].eq(1.0).all().int64_value(&[]) == 1, "{k}.weight");
            assert!(v[&format!("{k}.bias")].eq(0.0).all().int64_value(&[]) == 1, "{k}.bias");
            assert!(v[&format!("{k}.running_var")].eq(1.0).all().int64_value(&[]) == 1, "{k}.running_var");
        }
    }
}

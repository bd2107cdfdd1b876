//! A small convolutional network for 28x28 grayscale images (MNIST-sized),
//! trained from scratch: the LeNet-style network of tch's MNIST example
//! (two 5x5 convolutions with max pooling, a 1024-unit hidden layer, dropout).

use cvtk_dataset::{ColorMode, Normalization};
use tch::nn;

use super::{torch_linear, NetSpec, Network, TORCH_DEFAULT_INIT};
use crate::onnx::graph::{ConvShape, GraphBuilder, Vars};

/// The small CNN's facts: 28x28 gray inputs on a 0..1 scale, an `fc2` head, no
/// batch norm.
pub(crate) const SMALL_CNN: NetSpec = NetSpec {
    name: "small-cnn",
    feature_dim: 1024,
    default_image_size: 28,
    min_image_size: 28,
    color: ColorMode::Gray,
    normalization: Normalization::UNIT,
    head_name: "fc2",
    batch_norm_momentum: None,
    build: small_cnn,
    resnet_blocks: None,
    onnx,
};

/// The feature extractor as ONNX ops: conv, pool, ReLU twice, then the
/// 1024-unit hidden layer. Returns the features' name.
fn onnx(g: &mut GraphBuilder, vars: &Vars, x: &str, _size: (i64, i64)) -> crate::Result<String> {
    let mut x = g.conv_vars(vars, x, "conv1", ConvShape::new(1, 0))?;
    x = g.max_pool(&x, 2, 2, 0);
    x = g.relu(&x);
    x = g.conv_vars(vars, &x, "conv2", ConvShape::new(1, 0))?;
    x = g.max_pool(&x, 2, 2, 0);
    x = g.relu(&x);
    x = g.flatten(&x);
    x = g.linear_vars(vars, &x, "fc1")?;
    Ok(g.relu(&x))
}

/// A convolution initialised as PyTorch's `nn.Conv2d` (bias too).
fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64) -> nn::Conv2D {
    let bound = 1.0 / ((c_in * k * k) as f64).sqrt();
    nn::conv2d(
        p,
        c_in,
        c_out,
        k,
        nn::ConvConfig {
            ws_init: TORCH_DEFAULT_INIT,
            bs_init: nn::Init::Uniform { lo: -bound, up: bound },
            ..Default::default()
        },
    )
}

/// The small CNN; with `num_classes`, an `fc2` head (without, 1024 features).
/// Expects `[N, 1, 28, 28]`.
pub fn small_cnn(p: &nn::Path, num_classes: Option<i64>) -> Network {
    let conv1 = conv(p / "conv1", 1, 32, 5);
    let conv2 = conv(p / "conv2", 32, 64, 5);
    let fc1 = torch_linear(p / "fc1", 1024, 1024);
    let features = nn::func_t(move |xs, _train| {
        xs.apply(&conv1)
            .max_pool2d_default(2)
            .relu()
            .apply(&conv2)
            .max_pool2d_default(2)
            .relu()
            .flatten(1, -1)
            .apply(&fc1)
            .relu()
    });
    let head = num_classes.map(|n| torch_linear(p / "fc2", 1024, n));
    Network::new(features, 1024, head).with_dropout(0.5)
}

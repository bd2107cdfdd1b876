//! A small convolutional network for 28x28 grayscale images (MNIST-sized),
//! trained from scratch: the LeNet-style network of tch's MNIST example
//! (two 5x5 convolutions with max pooling, a 1024-unit hidden layer, dropout).

use tch::nn;

use super::{torch_linear, Network, TORCH_DEFAULT_INIT};

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

/// The small CNN; with `num_classes`, an `fc2` head. Expects `[N, 1, 28, 28]`.
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

/// The small CNN without its classifier: 1024 features.
pub fn small_cnn_no_final_layer(p: &nn::Path) -> Network {
    small_cnn(p, None)
}

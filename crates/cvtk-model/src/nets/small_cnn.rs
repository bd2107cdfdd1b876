//! A small convolutional network for 28x28 grayscale images (MNIST-sized),
//! trained from scratch: the LeNet-style network of tch's MNIST example
//! (two 5x5 convolutions with max pooling, a 1024-unit hidden layer, dropout).

use tch::nn;

use super::Network;

/// The small CNN; with `num_classes`, an `fc2` head. Expects `[N, 1, 28, 28]`.
pub fn small_cnn(p: &nn::Path, num_classes: Option<i64>) -> Network {
    let conv1 = nn::conv2d(p / "conv1", 1, 32, 5, Default::default());
    let conv2 = nn::conv2d(p / "conv2", 32, 64, 5, Default::default());
    let fc1 = nn::linear(p / "fc1", 1024, 1024, Default::default());
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
    let head = num_classes.map(|n| nn::linear(p / "fc2", 1024, n, Default::default()));
    Network::new(features, 1024, head).with_dropout(0.5)
}

/// The small CNN without its classifier: 1024 features.
pub fn small_cnn_no_final_layer(p: &nn::Path) -> Network {
    small_cnn(p, None)
}

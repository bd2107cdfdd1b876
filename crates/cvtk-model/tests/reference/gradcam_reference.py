"""Captum's Grad-CAM, the reference of cvtk's (crates/cvtk-model/tests/explain.rs).

Usage: python gradcam_reference.py ARCH OUT_DIR [WEIGHTS]

Writes into OUT_DIR:
  ARCH.pth      the state dict (ResNet-18: torchvision 0.26.0, random weights,
                batch-norm statistics calibrated on random batches as in
                make_reference.py); for efficientnet-lite0, WEIGHTS (the real
                ImageNet file) is used as it is
  input.bin     a [2, 3, 224, 224] float32 input, little endian: smooth random
                images (so maps have structure), normalised
  targets.json  the label each image's map is of: image 0's predicted label,
                and label 7 for image 1
  gradcam.bin   captum 0.9.0 LayerGradCam on the last feature map (ResNet:
                layer4; Lite: the ReLU6 after the head convolution), with
                relu_attributions=True: [2, h, w] float32
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
from captum.attr import LayerGradCam  # noqa: E402

arch, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)

if arch == "resnet18":
    import torchvision

    model = torchvision.models.resnet18()
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 224, 224))
    torch.save(model.state_dict(), f"{out}/{arch}.pth")
    model.eval()
    net, layer = model, model.layer4
elif arch == "efficientnet-lite0":
    from efficientnet_lite_pytorch import EfficientNet

    lite = EfficientNet.from_name(arch)
    lite.load_state_dict(torch.load(sys.argv[3], map_location="cpu"))
    lite.eval()

    class Lite(torch.nn.Module):
        """The Lite network with its last ReLU6 as a module of its own (the
        package reuses one ReLU6 module for the stem and the head, and Captum
        hooks a module, not a call)."""

        def __init__(self, m):
            super().__init__()
            self.m = m
            self.last = torch.nn.ReLU6()

        def forward(self, x):
            m = self.m
            x = m._swish(m._bn0(m._conv_stem(x)))
            for block in m._blocks:
                x = block(x, drop_connect_rate=None)
            x = self.last(m._bn1(m._conv_head(x)))
            return m._fc(m._avg_pooling(x).flatten(1))

    net = Lite(lite).eval()
    layer = net.last
else:
    raise SystemExit(f"unknown arch {arch}")

# Smooth random images: noise at 1/16 resolution, upsampled, normalised.
x = torch.nn.functional.interpolate(torch.randn(2, 3, 14, 14), size=(224, 224), mode="bilinear")
with torch.no_grad():
    logits = net(x)
    if arch == "efficientnet-lite0":
        # The wrapper is the package's model.
        assert torch.allclose(logits, lite(x), atol=1e-4), (logits - lite(x)).abs().max()
targets = [int(logits[0].argmax()), 7]
maps = LayerGradCam(net, layer).attribute(x, target=targets, relu_attributions=True)
x.numpy().astype("<f4").tofile(f"{out}/input.bin")
maps[:, 0].detach().numpy().astype("<f4").tofile(f"{out}/gradcam.bin")
json.dump({"targets": targets, "shape": list(maps[:, 0].shape)}, open(f"{out}/targets.json", "w"))

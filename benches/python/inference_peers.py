"""The Python peers of benches/inference.rs: PyTorch eager, TorchScript
(torch.jit.freeze + optimize_for_inference) and onnxruntime on an ONNX export,
all from the same weights file.

Usage:
  inference_peers.py prepare ARCH DIR [LITE_WEIGHTS]
      writes DIR/ARCH.pth (the weights cvtk loads too; ResNets random with
      calibrated batch norm, Lite0 the real ImageNet file), DIR/ARCH.onnx,
      DIR/input.bin (a [16, 3, 224, 224] float32 batch) and DIR/logits.bin
      (eager logits for it, [16, 1000]).
  inference_peers.py run ARCH DIR ENGINE BATCH SECONDS THREADS
      ENGINE: eager | jit | onnxruntime. Times forward passes on the first
      BATCH images of input.bin for about SECONDS after a warm-up; prints one
      JSON line {"images": N, "seconds": S}.
"""
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import torch  # noqa: E402

SIZE = 224


def build(arch, lite_weights=None):
    if arch.startswith("resnet"):
        import torchvision

        return getattr(torchvision.models, arch)()
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(arch)
    if lite_weights:
        model.load_state_dict(torch.load(lite_weights, map_location="cpu"))
    return model


def calibrated(arch, lite_weights=None):
    """The network from seed 0 in eval mode; a ResNet's random weights get
    batch-norm statistics from two random batches, so eval mode is not the
    identity."""
    torch.manual_seed(0)
    model = build(arch, lite_weights)
    if arch.startswith("resnet"):
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        with torch.no_grad():
            for _ in range(2):
                model(torch.randn(4, 3, SIZE, SIZE))
    return model.eval()


def prepare(arch, out, lite_weights=None):
    model = calibrated(arch, lite_weights)
    torch.save(model.state_dict(), f"{out}/{arch}.pth")
    x = torch.randn(16, 3, SIZE, SIZE)
    x.numpy().astype("<f4").tofile(f"{out}/input.bin")
    with torch.no_grad():
        model(x).numpy().astype("<f4").tofile(f"{out}/logits.bin")
        torch.onnx.export(
            model,
            (x[:1],),
            f"{out}/{arch}.onnx",
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def run(arch, out, engine, batch, seconds, threads):
    torch.set_num_threads(threads)
    x = torch.from_numpy(np.fromfile(f"{out}/input.bin", dtype="<f4").reshape(16, 3, SIZE, SIZE)[:batch].copy())
    if engine == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(f"{out}/{arch}.onnx", so, providers=["CPUExecutionProvider"])
        feed = {"input": x.numpy()}
        step = lambda: sess.run(None, feed)  # noqa: E731
    else:
        model = build(arch)
        model.load_state_dict(torch.load(f"{out}/{arch}.pth", map_location="cpu"))
        model.eval()
        if engine == "jit":
            with torch.no_grad():
                model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))

        def step():
            with torch.no_grad():
                return model(x)

    for _ in range(3):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += batch
    print(json.dumps({"images": n, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        run(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]))

"""The TorchServe peer of benches/serving.rs: ResNet-18 packed as TorchServe's
own ResNet-18 example packs it (an eager `ResNet` subclass, the weights as a
state dict, the stock `image_classifier` handler), with batching configured
like cvtk's service.

Usage:
  serving_torchserve.py prepare DIR PORT BATCH_SIZE MAX_DELAY_MS
      writes DIR/resnet18.pth (seed-0 weights with calibrated batch norm, the
      file cvtk serves too), DIR/store/resnet18.mar and DIR/config.properties
      (inference on 127.0.0.1:PORT, management PORT+1, metrics PORT+2, no token
      authorisation, one worker, BATCH_SIZE and MAX_DELAY_MS).
Start it with `torchserve --start --foreground --ncs --ts-config
DIR/config.properties` in DIR, with OMP_NUM_THREADS set.
"""
import json
import os
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402

from inference_peers import calibrated  # noqa: E402

MODEL_PY = '''from torchvision.models.resnet import BasicBlock, ResNet


class ImageClassifier(ResNet):
    def __init__(self):
        super().__init__(BasicBlock, [2, 2, 2, 2])
'''


def prepare(out, port, batch_size, max_delay_ms):
    torch.save(calibrated("resnet18").state_dict(), f"{out}/resnet18.pth")
    with open(f"{out}/model.py", "w") as f:
        f.write(MODEL_PY)
    store = f"{out}/store"
    os.makedirs(store, exist_ok=True)
    archiver = os.path.join(os.path.dirname(sys.executable), "torch-model-archiver")
    subprocess.run(
        [archiver, "--model-name", "resnet18", "--version", "1.0", "--model-file", f"{out}/model.py",
         "--serialized-file", f"{out}/resnet18.pth", "--handler", "image_classifier",
         "--export-path", store, "--force"],
        check=True,
    )
    models = {"resnet18": {"1.0": {
        "defaultVersion": True, "marName": "resnet18.mar", "minWorkers": 1, "maxWorkers": 1,
        "batchSize": batch_size, "maxBatchDelay": max_delay_ms, "responseTimeout": 120,
    }}}
    with open(f"{out}/config.properties", "w") as f:
        f.write("\n".join([
            f"inference_address=http://127.0.0.1:{port}",
            f"management_address=http://127.0.0.1:{port + 1}",
            f"metrics_address=http://127.0.0.1:{port + 2}",
            "disable_token_authorization=true",
            "install_py_dep_per_model=false",
            f"model_store={store}",
            "load_models=resnet18.mar",
            "default_workers_per_model=1",
            f"models={json.dumps(models)}",
            "",
        ]))


if __name__ == "__main__":
    prepare(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))

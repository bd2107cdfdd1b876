"""Drives a running `cvtk serve` with Triton's standard Open Inference Protocol
client (tritonclient.http) and prints what it got as JSON.

Usage: oip_client.py URL KEY_FILE MODEL_NAME IMAGE...

The images are model-sized gray PNGs. They are sent twice: as encoded
images (a BYTES tensor, in the binary extension, as the client does by
default), and as the preprocessed FP32 tensor built from the input contract
that the model's metadata states (no cvtk code involved).
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from PIL import Image


def main():
    url, key_file, model, *files = sys.argv[1:]
    key = open(key_file).read().strip()
    headers = {"Authorization": f"Bearer {key}"}
    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    out = {
        "live": client.is_server_live(headers=headers),
        "ready": client.is_server_ready(headers=headers),
        "model_ready": client.is_model_ready(model, headers=headers),
    }
    meta = client.get_model_metadata(model, headers=headers)
    out["metadata"] = meta
    n = len(files)

    encoded = np.array([open(f, "rb").read() for f in files], dtype=np.object_)
    image = httpclient.InferInput("image", [n], "BYTES")
    image.set_data_from_numpy(encoded)
    result = client.infer(model, [image], headers=headers)
    out["bytes_probabilities"] = result.as_numpy("probabilities").tolist()
    out["bytes_labels"] = [b.decode() for b in result.as_numpy("label").reshape(-1)]

    contract = meta["parameters"]["input_contract"]
    assert contract["layout"] == "NCHW" and contract["color"] == "gray", contract
    h, w = contract["height"], contract["width"]
    mean = np.float32(contract["mean"][0])
    std = np.float32(contract["std"][0])
    planes = []
    for f in files:
        pixels = np.asarray(Image.open(f).convert("L"), dtype=np.float32)
        assert pixels.shape == (h, w), pixels.shape
        planes.append(((pixels - mean) / std)[None, :, :])
    tensor = np.stack(planes).astype(np.float32)
    inp = httpclient.InferInput("input", list(tensor.shape), "FP32")
    inp.set_data_from_numpy(tensor)
    # JSON outputs this time (binary_data=False), the other form of the protocol.
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=False)]
    result = client.infer(model, [inp], outputs=outputs, headers=headers)
    out["tensor_probabilities"] = result.as_numpy("probabilities").tolist()

    try:
        client.infer("no-such-model", [image], headers=headers)
        out["unknown_model_error"] = None
    except Exception as e:  # InferenceServerException
        out["unknown_model_error"] = str(e)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

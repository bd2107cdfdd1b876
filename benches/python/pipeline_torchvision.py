"""The torchvision peer of benches/pipeline.rs: an ImageFolder of JPEGs through
a DataLoader (Pillow), Resize(256) + CenterCrop(224) + ToTensor + Normalize, in
batches, with the same number of workers as cvtk's loader threads.

Usage: pipeline_torchvision.py ROOT WORKERS BATCH PASSES
One untimed pass warms the workers and the page cache; then PASSES timed passes.
Prints one JSON line: {"images": N, "seconds": S, "checksum": C}.
"""
import json
import sys
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def main():
    root, workers, batch, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    tf = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    ds = datasets.ImageFolder(root, transform=tf)
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=False, persistent_workers=workers > 0)
    for x, _ in loader:  # warm-up pass
        pass
    n, checksum = 0, 0.0
    start = time.perf_counter()
    for _ in range(passes):
        for x, _ in loader:
            assert x.shape[1:] == (3, 224, 224)
            n += x.shape[0]
            checksum += float(x[:, :, 112, 112].sum())
    seconds = time.perf_counter() - start
    print(json.dumps({"images": n, "seconds": seconds, "checksum": checksum}))


if __name__ == "__main__":
    main()

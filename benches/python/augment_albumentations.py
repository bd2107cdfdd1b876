"""The albumentations peer of benches/augment.rs: the same pipelines on the
same images, timed over the augmentation loop only (decoding excluded).

Usage: augment_albumentations.py PIPELINE THREADS REPEATS IMAGE...
Prints one JSON line: {"images": N, "seconds": S}.
"""
import json
import sys
import time

import cv2
import numpy as np
from PIL import Image

import albumentations as A


def pipeline(name):
    flip_crop = [
        A.HorizontalFlip(p=0.5),
        # imgaug's Crop(percent=(0, 0.1)): each side by 0-10%, resized back.
        A.CropAndPad(percent=(-0.1, 0.0), keep_size=True, sample_independently=True, p=1.0),
    ]
    if name == "flip_crop":
        return A.Compose(flip_crop)
    if name == "photo":
        return A.Compose(
            flip_crop
            + [
                A.Affine(rotate=(-15, 15), border_mode=cv2.BORDER_REFLECT_101, p=1.0),
                A.MultiplicativeNoise(multiplier=(0.8, 1.2), per_channel=False, elementwise=False, p=1.0),
                A.GaussianBlur(sigma_limit=(0.1, 1.0), blur_limit=0, p=1.0),
            ]
        )
    raise SystemExit(f"unknown pipeline {name}")


def main():
    name, threads, repeats, paths = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    cv2.setNumThreads(threads)
    transform = pipeline(name)
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    transform(image=images[0])  # warm-up
    start = time.perf_counter()
    n = 0
    for _ in range(repeats):
        for img in images:
            out = transform(image=img)["image"]
            n += 1
    seconds = time.perf_counter() - start
    assert out.ndim == 3
    print(json.dumps({"images": n, "seconds": seconds}))


if __name__ == "__main__":
    main()

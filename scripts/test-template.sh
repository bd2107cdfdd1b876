#!/usr/bin/env bash
# The downstream-project check that `make test` runs: templates/app is copied out
# of this checkout and built only with the steps of "Use cvtk from your own crate"
# (README.md), then its binary runs with an empty environment, scoring a dataset
# with pretrained weights installed outside the checkout (`cvtk weights install`
# into a fresh HOME). Fails loudly at the first step that does not hold.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -x "$root/.venv/bin/python" ] || { echo "no .venv: run make setup first" >&2; exit 1; }

# 1. The template, anywhere, its cvtk paths pointed at the checkout.
cp -r "$root/templates/app" "$work/app"
sed -i "s#\"../../crates/cvtk-build\"#\"$root/crates/cvtk-build\"#; s#\"../..\"#\"$root\"#" "$work/app/Cargo.toml"
# 2. Where libtorch and onnxruntime are: the cargo config cvtk's setup writes.
mkdir -p "$work/app/.cargo"
"$root/scripts/write-cargo-config.sh" "$root/.venv/bin/python" > "$work/app/.cargo/config.toml"
# 3. The versions cvtk is tested with.
cp "$root/Cargo.lock" "$work/app/Cargo.lock"
# 4. Build. The target folder is cvtk's, so dependencies `make test` compiled are reused.
(cd "$work/app" && CARGO_TARGET_DIR="$root/target" cargo build --offline --bin app)
app="$root/target/debug/app"

# Weights outside the checkout: a fresh HOME's ~/.cvtk/weights. CVTK_BIN is
# the cvtk that `make test` has just built; a build of cvtk-cli alone would
# resolve other features and recompile its dependencies.
cvtk=${CVTK_BIN:-}
if [ -z "$cvtk" ]; then
  cargo build --quiet --locked -p cvtk-cli --bin cvtk --manifest-path "$root/Cargo.toml"
  cvtk="$root/target/debug/cvtk"
fi
[ -x "$cvtk" ] || { echo "no cvtk program at $cvtk" >&2; exit 1; }
home="$work/home"
mkdir -p "$home"
HOME="$home" "$cvtk" weights install "$root"/weights/efficientnet-lite0-*.pth
"$cvtk" sample-data mnist-5k --out "$work/digits" --classes 0,1,2,3 --per-class 30 >/dev/null

# Run it with nothing in the environment but PATH and HOME, from an empty folder.
mkdir -p "$work/run"
out=$(cd "$work/run" && env -i PATH=/usr/bin:/bin HOME="$home" "$app" "$work/digits")
echo "$out"
grep -q "^weights: $home/.cvtk/weights/efficientnet-lite0-" <<<"$out" \
  || { echo "FAIL: the app did not use the weights installed under \$HOME/.cvtk/weights" >&2; exit 1; }
accuracy=$(sed -n 's/^accuracy: //p' <<<"$out")
awk -v a="$accuracy" 'BEGIN { exit !(a > 0.6) }' \
  || { echo "FAIL: accuracy '$accuracy' on 4 digits is not above 0.6" >&2; exit 1; }
echo "template OK: built out of tree, ran with env -i, accuracy $accuracy"

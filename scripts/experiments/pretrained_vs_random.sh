#!/usr/bin/env bash
# Fine-tuning the pretrained default (EfficientNet-Lite0, ImageNet weights) vs the
# same network from random initialisation, same budget, on 4-class subsets of
# the sample data; then the SVM on the pretrained features. Prints a Markdown
# table (docs/models.md quotes it). Takes about 15 minutes on 2 cores.
# Usage: scripts/experiments/pretrained_vs_random.sh [OUT_DIR [DATASET...]]
#   DATASET: fashion-distinct, fashion-lookalike, mnist-digits (default: all three)
# Setup mirrors a plain PyTorch transfer-learning loop: 112x112 input, SGD
# momentum 0.9, weight decay 1e-4, batch 32, lr [0.01]*7 + [0.001]*7 + [0.0001],
# first 100 training and first 100 test images per class.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-outputs/experiments/pretrained_vs_random}
cvtk=target/release/cvtk
scripts/fetch-sample-data.sh mnist fashion-mnist >/dev/null
mkdir -p "$out"
schedule="0.01*7,0.001*7,0.0001"
printf '| dataset | classes | pretrained (fine-tuned) | random init (same budget) | SVM on pretrained features |\n|---|---|---|---|---|\n'
source scripts/experiments/datasets.sh
run() { # name
  local name=$1 classes d="$out/$1"
  classes=$(classes_of "$name")
  subset_named "$name" "$d"
  local acc=()
  for init in pretrained random; do
    local flag=""; [ "$init" = random ] && flag="--random-init"
    "$cvtk" train "$d/manifest.json" --image-size 112 --lr-per-mb "$schedule" --mb-size 32 --seed 0 $flag --out "$d/model-$init" --json > "$d/train-$init.json"
    acc+=("$(python3 -c "import json;print('%.2f%%' % (100*json.load(open('$d/train-$init.json'))['eval_accuracy']))")")
  done
  "$cvtk" train "$d/manifest.json" --classifier svm --image-size 112 --out "$d/model-svm" --json > "$d/train-svm.json"
  acc+=("$(python3 -c "import json;print('%.2f%%' % (100*json.load(open('$d/train-svm.json'))['eval_accuracy']))")")
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$classes" "${acc[0]}" "${acc[1]}" "${acc[2]}"
}
shift || true
wanted=("${@:-fashion-distinct fashion-lookalike mnist-digits}")
for name in ${wanted[@]}; do
  case "$name" in
    fashion-distinct | fashion-lookalike | mnist-digits) run "$name" ;;
    *) echo "unknown dataset $name" >&2; exit 2 ;;
  esac
done

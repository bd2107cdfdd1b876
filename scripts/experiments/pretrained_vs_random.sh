#!/usr/bin/env bash
# Fine-tuning the pretrained default (EfficientNet-Lite0, ImageNet weights) vs the
# same network from random initialisation, same budget, on 4-class subsets of
# the sample data; then the SVM on the pretrained features. Prints a Markdown
# table (docs/models.md quotes it). Takes about 15 minutes on 2 cores.
# Usage: scripts/experiments/pretrained_vs_random.sh [OUT_DIR [DATASET...]]
#   DATASET: fashion-distinct, fashion-lookalike, mnist-digits (default: all three)
# Setup mirrors the PyTorch reference in shared/VERIFIED.md: 112x112 input, SGD
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
run() { # name source-prefix classes
  local name=$1 src=$2 classes=$3 d="$out/$1"
  rm -rf "$d" && mkdir -p "$d"
  "$cvtk" sample-data "$src-train" --out "$d/train" --classes "$classes" --per-class 100 >/dev/null
  "$cvtk" sample-data "$src-test" --out "$d/test" --classes "$classes" --per-class 100 >/dev/null
  # One manifest whose split is exactly: train = the training files, test = the test files.
  mkdir -p "$d/all"
  for c in ${classes//,/ }; do mkdir -p "$d/all/$c"; cp "$d/train/$c"/*.png "$d/all/$c/"; for f in "$d/test/$c"/*.png; do cp "$f" "$d/all/$c/test_$(basename "$f")"; done; done
  "$cvtk" dataset info "$d/all" --json > "$d/info.json"
  python3 - "$d" <<'PY'
import json, sys
d = sys.argv[1]
import subprocess
subprocess.run(["target/release/cvtk", "dataset", "split", f"{d}/all", "--train-size", "0.5", "--out", f"{d}/manifest.json"], check=True, capture_output=True)
m = json.load(open(f"{d}/manifest.json"))
train = [i["id"] for i in m["images"] if not i["name"].startswith("test_")]
test = [i["id"] for i in m["images"] if i["name"].startswith("test_")]
m["split"].update({"train": train, "test": test, "stratify": False, "train_size": len(train) / len(m["images"])})
json.dump(m, open(f"{d}/manifest.json", "w"), indent=1)
PY
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
    fashion-distinct) run fashion-distinct fashion-mnist T-shirt_top,Trouser,Sneaker,Bag ;;
    fashion-lookalike) run fashion-lookalike fashion-mnist T-shirt_top,Pullover,Coat,Shirt ;;
    mnist-digits) run mnist-digits mnist 0,1,2,3 ;;
    *) echo "unknown dataset $name" >&2; exit 2 ;;
  esac
done

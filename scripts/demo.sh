#!/usr/bin/env bash
# The main job, run by `make demo` after setup. Today: sample data -> dataset ->
# stratified split -> fine-tune the pretrained default -> evaluate (plots, HTML
# report) -> predict. Later steps (augment, deploy, load-test) join as they land.
# Usage: scripts/demo.sh [--data DIR] [--classifier dnn|svm] [--base-model NAME]
#        [--weights FILE] [--device cpu|cuda] [--epochs N]
# (default: 4 digits of MNIST, 60 images each, EfficientNet-Lite0 fine-tuned)
set -euo pipefail
cd "$(dirname "$0")/.."
cvtk=target/release/cvtk
out=outputs/demo
data=""
train_args=()
epochs=6
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --classifier|--base-model|--weights|--device) train_args+=("$1" "$2"); shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    *) echo "unknown option $1 (usage: scripts/demo.sh [--data DIR] [--classifier dnn|svm] [--base-model NAME] [--weights FILE] [--device cpu|cuda] [--epochs N])" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"

echo "== 1. create a dataset"
if [ -z "$data" ]; then
  data=$out/digits
  rm -rf "$data"
  "$cvtk" sample-data mnist-5k --out "$data" --classes 0,1,2,3 --per-class 60
fi
"$cvtk" dataset info "$data"

echo
echo "== 1b. split it (stratified, 66% train)"
"$cvtk" dataset split "$data" --train-size 0.66 --stratify --seed 0 --out "$out/dataset.json"

echo
echo "== 4-5. define the model on a pretrained network and train it"
"$cvtk" train "$out/dataset.json" --image-size 112 --epochs "$epochs" --lr 0.01 "${train_args[@]}" --tensorboard "$out/tensorboard" --out "$out/model"

echo
echo "== 6. evaluate: accuracy, confusion matrix, PR/ROC curves, plots and the HTML report"
"$cvtk" evaluate "$out/dataset.json" --model "$out/model" --report "$out/report"

echo
echo "== predict a few test images"
test_images=$(python3 -c "import json,sys; m=json.load(open('$out/dataset.json')); root=m.get('root','.'); import os; base=os.path.join(os.path.dirname('$out/dataset.json'), root); ids=set(m['split']['test'][:3]); print(' '.join(os.path.join(base, i['path']) for i in m['images'] if i['id'] in ids))")
"$cvtk" predict --model "$out/model" $test_images --top 2

echo
echo "== done. Results are in $out/:"
echo "   images:      $data"
echo "   manifest:    $out/dataset.json (the dataset and its split; read it with 'cvtk dataset info')"
echo "   model:       $out/model (model.json + weights; use it with 'cvtk predict --model')"
echo "   report:      $out/report/report.html (open it in a browser; plots beside it as PNG and SVG)"
echo "   tensorboard: $out/tensorboard (tensorboard --logdir $out/tensorboard)"

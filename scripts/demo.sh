#!/usr/bin/env bash
# The main job, run by `make demo` after setup. Today: sample data -> dataset ->
# stratified split -> summary. Later steps (augment, train, evaluate, deploy,
# load-test) join here as they land.
# Usage: scripts/demo.sh [--data DIR]   (default: 4 digits of MNIST, 60 images each)
set -euo pipefail
cd "$(dirname "$0")/.."
cvtk=target/release/cvtk
out=outputs/demo
data=""
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    *) echo "unknown option $1 (usage: scripts/demo.sh [--data DIR])" >&2; exit 2 ;;
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
echo "== done. Results are in $out/:"
echo "   images:   $data"
echo "   manifest: $out/dataset.json (the dataset and its split; read it with 'cvtk dataset info')"

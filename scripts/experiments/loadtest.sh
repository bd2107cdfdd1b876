#!/usr/bin/env bash
# Deploys a model locally and load-tests it on loopback, as docs/deployment.md
# reports, with the service's peak memory (VmHWM) after each concurrency.
# Usage: [ENGINE=torch|onnxruntime] scripts/experiments/loadtest.sh [OUT] [BASE_MODEL] [SECONDS]
#   BASE_MODEL: small-cnn (trained from scratch, 28x28 gray; default) or
#   efficientnet-lite0 (pretrained default, 224x224 RGB).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-outputs/loadtest}
BASE=${2:-small-cnn}
SECONDS_=${3:-30}
CVTK=target/release/cvtk
[ -x "$CVTK" ] || cargo build --release -p cvtk-cli
export CVTK_HOME="$OUT/home"
mkdir -p "$OUT"
if [ ! -d "$OUT/digits" ]; then
  "$CVTK" sample-data mnist-5k --out "$OUT/digits" --per-class 50
fi
MODEL="$OUT/model-$BASE"
if [ ! -f "$MODEL/model.json" ]; then
  case "$BASE" in
    small-cnn) "$CVTK" train "$OUT/digits" --base-model small-cnn --random-init --epochs 3 --lr 0.05 --device cpu --out "$MODEL" ;;
    *) "$CVTK" train "$OUT/digits" --base-model "$BASE" --epochs 1 --lr 0.01 --image-size 224 --device cpu --out "$MODEL" ;;
  esac
fi
NAME="loadtest-${BASE//[^a-z0-9]/-}"
"$CVTK" deploy delete "$NAME" >/dev/null 2>&1 || true
"$CVTK" deploy create "$NAME" --model "$MODEL" --device cpu -- ${ENGINE:+--engine "$ENGINE"}
PID=$("$CVTK" deploy show "$NAME" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
curl -s "$("$CVTK" deploy show "$NAME" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])')/ready"; echo
trap '"$CVTK" deploy delete "$NAME" >/dev/null 2>&1 || true' EXIT
for c in 1 8 32; do
  echo "== concurrency $c, $SECONDS_ s"
  "$CVTK" loadtest --deployment "$NAME" --images "$OUT/digits" --max-images 200 --concurrency "$c" \
    --duration "$SECONDS_" --plot "$OUT/latency-$BASE-c$c.png" --json > "$OUT/loadtest-$BASE-c$c.json"
  python3 - "$OUT/loadtest-$BASE-c$c.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_ms"]
print(f"requests {r['requests']}, ok {r['ok']}, {r['requests_per_s']:.1f} req/s, p50 {l['p50']:.1f} ms, "
      f"p90 {l['p90']:.1f} ms, p99 {l['p99']:.1f} ms, max {l['max']:.1f} ms, 5xx other than 503: {r['server_errors']}, "
      f"errors {r['errors']}")
PY
  echo "service peak memory: $(grep VmHWM /proc/$PID/status | awk '{printf "%.0f MB", $2 / 1024}')"
done

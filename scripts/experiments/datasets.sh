# Sourced by the experiment scripts: builds the 4-class sample-data subsets the
# docs measure on. Needs target/release/cvtk and the sample data.
#
# subset NAME SOURCE CLASSES DIR: the first 100 training and the first 100
# test images per class of SOURCE (mnist or fashion-mnist), as one folder per
# label in DIR/all and a manifest DIR/manifest.json whose split is exactly
# train = the training files, test = the test files.
subset() {
  local name=$1 src=$2 classes=$3 d=$4 cvtk=${CVTK:-target/release/cvtk}
  rm -rf "$d" && mkdir -p "$d"
  "$cvtk" sample-data "$src-train" --out "$d/train" --classes "$classes" --per-class 100 >/dev/null
  "$cvtk" sample-data "$src-test" --out "$d/test" --classes "$classes" --per-class 100 >/dev/null
  mkdir -p "$d/all"
  for c in ${classes//,/ }; do
    mkdir -p "$d/all/$c"
    cp "$d/train/$c"/*.png "$d/all/$c/"
    for f in "$d/test/$c"/*.png; do cp "$f" "$d/all/$c/test_$(basename "$f")"; done
  done
  "$cvtk" dataset split "$d/all" --train-size 0.5 --overwrite --out "$d/manifest.json" >/dev/null
  python3 - "$d/manifest.json" <<'PY'
import json, sys
path = sys.argv[1]
m = json.load(open(path))
train = [i["id"] for i in m["images"] if not i["name"].startswith("test_")]
test = [i["id"] for i in m["images"] if i["name"].startswith("test_")]
m["split"].update({"train": train, "test": test, "stratify": False, "train_size": len(train) / len(m["images"])})
json.dump(m, open(path, "w"), indent=1)
PY
}

# subset_named NAME DIR: the subsets by the names the docs use.
subset_named() {
  case "$1" in
    fashion-distinct) subset "$1" fashion-mnist T-shirt_top,Trouser,Sneaker,Bag "$2" ;;
    fashion-lookalike) subset "$1" fashion-mnist T-shirt_top,Pullover,Coat,Shirt "$2" ;;
    mnist-digits) subset "$1" mnist 0,1,2,3 "$2" ;;
    *) echo "unknown dataset $1" >&2; return 2 ;;
  esac
}

# classes_of NAME: the classes of a named subset.
classes_of() {
  case "$1" in
    fashion-distinct) echo T-shirt_top,Trouser,Sneaker,Bag ;;
    fashion-lookalike) echo T-shirt_top,Pullover,Coat,Shirt ;;
    mnist-digits) echo 0,1,2,3 ;;
  esac
}

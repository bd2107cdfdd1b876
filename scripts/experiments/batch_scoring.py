"""docs/deployment.md's batch-scoring figures: `cvtk score` over 1,000 and
100,000 generated images in one process (images/s and peak memory, which must
stay flat), then 1 vs 2 shard processes with one thread each.

Usage: .venv/bin/python scripts/experiments/batch_scoring.py [OUT]
(needs target/release/cvtk: `make build`). Prints a Markdown table.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CVTK = ROOT / "target/release/cvtk"
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "outputs/experiments/batch-scoring")


def images(folder: Path, n: int):
    """n 28x28 gray PNGs (random patterns), under two sub-folders."""
    if folder.is_dir() and sum(1 for _ in folder.rglob("*.png")) == n:
        return
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    for label in "ab":
        (folder / label).mkdir(parents=True)
    for i in range(n):
        px = rng.integers(0, 256, (28, 28), dtype=np.uint8)
        Image.fromarray(px, "L").save(folder / "ab"[i % 2] / f"{i:06d}.png")


def run(args, processes=1):
    """Runs `processes` copies of `cvtk score args` (each with its own
    shard when more than one); wall seconds and the largest child's peak RSS."""
    start = time.perf_counter()
    children = []
    for k in range(processes):
        extra = ["--shard", f"{k}/{processes}"] if processes > 1 else []
        out = args["out"].with_name(f"{args['out'].stem}-{k}of{processes}.jsonl")
        out.unlink(missing_ok=True)
        cmd = [str(CVTK), "score", str(args["input"]), "--model", str(args["model"]), "--out", str(out),
               "--threads", str(args["threads"]), "--json", *extra]
        children.append(subprocess.Popen(cmd, stdout=subprocess.PIPE))
    reports = [json.loads(c.communicate()[0]) for c in children]
    wall = time.perf_counter() - start
    assert all(c.returncode == 0 for c in children)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    scored = sum(r["scored"] for r in reports)
    return wall, scored, peak_mib


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    images(OUT / "train", 400)
    model = OUT / "model"
    if not (model / "model.json").exists():
        subprocess.run([str(CVTK), "dataset", "split", str(OUT / "train"), "--out", str(OUT / "train.json"), "--overwrite"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([str(CVTK), "train", str(OUT / "train.json"), "--base-model", "small-cnn", "--random-init",
                        "--epochs", "1", "--device", "cpu", "--out", str(model)], check=True, stdout=subprocess.DEVNULL)
    print(f"cvtk score, small CNN (28x28 gray), {os.cpu_count()} cores; peak = largest process's VmHWM\n")
    print("| run | images | processes x threads | wall s | images/s | peak MiB |")
    print("|---|---|---|---|---|---|")
    for n in (1_000, 100_000):
        images(OUT / f"gen{n}", n)
        # Peak memory is per process and cumulative over children: measure
        # each configuration in a fresh interpreter so maxima do not carry over.
        for processes, threads in ([(1, 0)] if n == 1_000 else [(1, 0), (1, 1), (2, 1)]):
            args = {"input": OUT / f"gen{n}", "model": model, "out": OUT / f"scores{n}.jsonl", "threads": threads}
            wall, scored, peak = run_fresh(args, processes)
            label = "one process" if processes == 1 else f"{processes} shards"
            print(f"| {label} | {scored:,} | {processes} x {threads or 'all'} | {wall:.1f} | {scored / wall:,.0f} | {peak:.0f} |")


def run_fresh(args, processes):
    """`run` in a child interpreter, so RUSAGE_CHILDREN starts at zero."""
    code = (
        "import sys, json; sys.path.insert(0, %r); import batch_scoring as b; from pathlib import Path; "
        "a = json.loads(sys.argv[1]); a = {k: (Path(v) if k != 'threads' else v) for k, v in a.items()}; "
        "print(json.dumps(b.run(a, int(sys.argv[2]))))" % str(Path(__file__).parent)
    )
    payload = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in args.items()})
    out = subprocess.run([sys.executable, "-c", code, payload, str(processes)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`make test`: every phase timed, a breakdown at the end, and a time budget.

Runs the phases below in order (setup, fmt, one build that is also clippy's
pass, the test binaries, the container test, the doctests, the template),
prints how long each took (each test binary on its own line), writes the table
to target/test-times.txt and fails, naming the phase, when the whole run took
longer than the budget. The budget is checked against the time CI allows.

    python3 scripts/test.py                  # what `make test` runs
    CVTK_TEST_BUDGET_S=60 python3 scripts/test.py   # a smaller budget (say, to see it fire)

Clippy runs as the compiler of the workspace's own crates in the test build
(RUSTC_WORKSPACE_WRAPPER=clippy-driver, as `cargo clippy` does it), so its lints
are checked on every target while the code is compiled once, instead of a
check pass and then a build of the same code. Every cargo phase sets the same
variables, so none of them rebuilds what another built.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# CI runs `make test` on a 2-core machine and stops it at 90 minutes.
CI_LIMIT_S = 90 * 60
# A fresh clone took 20 minutes on a 2-core AMD EPYC (docs/contributing.md);
# the budget leaves room for a slower machine, and at most half of CI's limit
# may be budgeted, so that a run at the budget still lands with a margin.
DEFAULT_BUDGET_S = 40 * 60

# The container test builds an image with podman; it is timed on its own line.
CONTAINER_FILTER = "container::"


def budget_s() -> int:
    text = os.environ.get("CVTK_TEST_BUDGET_S", str(DEFAULT_BUDGET_S))
    try:
        budget = int(text)
    except ValueError:
        sys.exit(f"CVTK_TEST_BUDGET_S={text!r} is not a whole number of seconds")
    if not 0 < budget <= CI_LIMIT_S // 2:
        sys.exit(
            f"CVTK_TEST_BUDGET_S={budget} s: the budget must be more than 0 and at most half of "
            f"CI's limit ({CI_LIMIT_S} s), so that a run within it lands on a slower machine too"
        )
    return budget


def cargo_env() -> dict:
    """The environment of every cargo phase: clippy-driver compiles the workspace's crates."""
    env = dict(os.environ)
    driver = None
    if shutil.which("rustup"):
        r = subprocess.run(["rustup", "which", "clippy-driver"], capture_output=True, text=True)
        if r.returncode == 0:
            driver = r.stdout.strip()
    driver = driver or shutil.which("clippy-driver")
    if not driver:
        sys.exit("clippy is missing: run `rustup component add clippy` (make test lints every target with it)")
    env["RUSTC_WORKSPACE_WRAPPER"] = driver
    # What `cargo clippy -- -D warnings` passes to clippy-driver.
    env["CLIPPY_ARGS"] = "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
    # The cvtk program this build made, for the template check (a build of
    # cvtk-cli alone would resolve other features and compile its dependencies again).
    env["CVTK_BIN"] = str(ROOT / "target/debug/cvtk")
    return env


class Run:
    def __init__(self, budget: int):
        self.budget = budget
        self.start = time.monotonic()
        self.rows: list[tuple[str, float]] = []  # (phase, seconds)
        self.crossed: str | None = None  # the phase in which the budget ran out

    def record(self, name: str, seconds: float) -> None:
        self.rows.append((name, seconds))
        if self.crossed is None and time.monotonic() - self.start > self.budget:
            self.crossed = name

    def phase(self, name: str, cmd: list[str], env: dict | None = None) -> None:
        print(f"\n==> {name}: {' '.join(cmd)}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        self.record(name, time.monotonic() - t0)
        if rc != 0:
            self.fail(f"phase '{name}' failed (exit {rc})")

    def test_phase(self, name: str, cmd: list[str], env: dict, binaries: dict) -> None:
        """Runs cargo test, timing each test binary from its `Running` line to the next."""
        print(f"\n==> {name}: {' '.join(cmd)}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
        running = re.compile(r"^\s+Running (.+) \((\S+)\)$")
        current, since, timed = None, t0, 0.0
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            m = running.match(line.rstrip("\n"))
            if m:
                now = time.monotonic()
                if current:
                    self.record(current, now - since)
                    timed += now - since
                current, since = describe(m.group(1), m.group(2), binaries), now
        rc = proc.wait()
        if current:
            self.record(current, time.monotonic() - since)
            timed += time.monotonic() - since
        # Cargo's own start (and any build the previous phase left undone).
        self.record(f"{name}: cargo itself", time.monotonic() - t0 - timed)
        if rc != 0:
            self.fail(f"phase '{name}' failed (exit {rc})")

    def table(self) -> str:
        total = time.monotonic() - self.start
        width = max(len(n) for n, _ in self.rows) if self.rows else 10
        lines = [f"{'phase':<{width}}  {'seconds':>8}  {'share':>6}"]
        for name, s in self.rows:
            lines.append(f"{name:<{width}}  {s:8.1f}  {100 * s / max(total, 1e-9):5.1f}%")
        lines.append(f"{'total':<{width}}  {total:8.1f}  (budget {self.budget} s, CI's limit {CI_LIMIT_S} s)")
        return "\n".join(lines)

    def report(self) -> None:
        text = self.table()
        print("\n==> make test, phase by phase (wall time)\n" + text, flush=True)
        out = ROOT / "target/test-times.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")

    def fail(self, why: str) -> None:
        self.report()
        sys.exit(f"\nmake test FAILED: {why}")

    def check_budget(self) -> None:
        total = time.monotonic() - self.start
        if total <= self.budget:
            return
        slowest = sorted(self.rows, key=lambda r: -r[1])[:3]
        names = ", ".join(f"'{n}' {s:.0f} s" for n, s in slowest)
        # The table is printed already.
        sys.exit(
            f"\nmake test FAILED: the run took {total:.0f} s, over its budget of {self.budget} s; "
            f"the budget ran out during '{self.crossed}'. The slowest phases: {names}. Make the slow "
            f"tests smaller or share their build (docs/contributing.md says how); CI stops at {CI_LIMIT_S} s."
        )


def describe(source: str, path: str, binaries: dict) -> str:
    """`cvtk-deploy tests/tests.rs` for the binary at `path`."""
    name = Path(path).name
    package = binaries.get(name)
    return f"test {package} {source}" if package else f"test {source} ({name})"


def package_name(package_id: str) -> str:
    """`path+file:///r/crates/cvtk-deploy#0.1.0` -> cvtk-deploy; `path+file:///r#cvtk@0.1.0` -> cvtk."""
    url, _, fragment = package_id.partition("#")
    return fragment.split("@")[0] if "@" in fragment else url.rstrip("/").rsplit("/", 1)[-1]


def test_binaries(env: dict, cmd: list[str]) -> dict:
    """File name of each test binary -> its package, from cargo's JSON messages (built already)."""
    r = subprocess.run(
        cmd + ["--no-run", "--message-format=json"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    out = {}
    for line in r.stdout.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            out[Path(msg["executable"]).name] = package_name(msg["package_id"])
    return out


def main() -> None:
    run = Run(budget_s())
    make = ["make", "--no-print-directory"]
    # Setup, in the order `make test-setup` runs it.
    run.phase("setup: venv, libtorch, sample data, weights", make + ["setup"])
    run.phase("setup: test references (requirements-test.txt)", make + ["test-venv"])
    run.phase("setup: chromium, playwright-core", make + ["browser-deps"])
    run.phase("setup: podman, base image", make + ["container-deps"])
    run.phase("fmt", ["cargo", "fmt", "--all", "--", "--check"])
    env = cargo_env()
    tests = ["cargo", "test", "--workspace", "--all-targets", "--locked"]
    # One build of every target, linted by clippy as it compiles; --timings
    # leaves target/cargo-timings/cargo-timing.html (what each crate cost).
    run.phase("build + clippy (every target)", tests + ["--no-run", "--timings"], env)
    binaries = test_binaries(env, tests)
    run.test_phase("tests", tests + ["--no-fail-fast", "--", "--skip", CONTAINER_FILTER], env, binaries)
    run.phase(
        "container test (podman build)",
        ["cargo", "test", "--workspace", "--locked", "--test", "integration", "--", CONTAINER_FILTER],
        env,
    )
    run.phase("doctests", ["cargo", "test", "--workspace", "--doc", "--locked"], env)
    run.phase("template (out-of-tree build, env -i run)", make + ["template-test"], env)
    run.report()
    run.check_budget()
    print("\nmake test passed", flush=True)


if __name__ == "__main__":
    main()

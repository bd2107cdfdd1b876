# cvtk: two commands matter. `make demo` sets up what the demo runs and runs the
# main job (no root, no browser); `make test` adds what the tests need and runs
# the whole suite (CI runs exactly this).
# Setup is idempotent: a second run downloads nothing.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Bump a stamp's suffix when requirements change shape (a new file, say).
VENV_STAMP := $(VENV)/.cvtk-venv-5
TEST_VENV_STAMP := $(VENV)/.cvtk-test-venv-1
CARGO_CONFIG := .cargo/config.toml
CARGO ?= cargo
ARGS ?=

.PHONY: all setup test-setup venv test-venv sample-data weights browser-deps container-deps base-image template-test build demo mnist-webservice soak test lint bench clean help

all: build

help:
	@echo "make demo   - install what the demo runs (venv, libtorch, sample data, weights), build, run the main job"
	@echo "make test   - that, the test references, chromium and podman, then fmt, clippy and the whole suite, timed (what CI runs)"
	@echo "make base-image - the container base image from Debian's packages (scripts/make-base-image.sh)"
	@echo "make build  - release build of the cvtk program and the examples (target/release/)"
	@echo "make mnist-webservice - the MNIST tutorial: train, serve, score 10,000 test images over HTTP"
	@echo "make bench  - side-by-side benchmarks against the Python stack"
	@echo "make soak   - one minute of cvtk serve under 32 honest and many hostile clients (ARGS=\"--seconds N\")"

# requirements.txt: libtorch for tch and onnxruntime, all that cvtk runs on.
# requirements-test.txt: the Python references the tests and benchmarks compare
# against (torchvision, scikit-learn, ...); never used at run time, so the demo
# does not install them.
$(VENV_STAMP): requirements.txt
	@command -v python3 >/dev/null || { echo "python3 is required (to install libtorch from PyPI)"; exit 1; }
	@[ -x $(PY) ] || python3 -m venv $(VENV) || { echo "python3 -m venv failed: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

$(TEST_VENV_STAMP): $(VENV_STAMP) requirements-test.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	@touch $@

venv: $(VENV_STAMP)
test-venv: $(TEST_VENV_STAMP)

$(CARGO_CONFIG): $(VENV_STAMP) scripts/write-cargo-config.sh
	@mkdir -p .cargo
	scripts/write-cargo-config.sh $(PY) > $@.tmp && mv $@.tmp $@

sample-data: $(VENV_STAMP)
	scripts/fetch-sample-data.sh mnist-5k

weights: $(VENV_STAMP)
	scripts/fetch-weights.sh

# Browser tests: Debian's chromium (installed when missing, as root; as another
# user, a warning, and the browser tests fail saying what to install) and
# playwright-core from npm (never a browser download of its own).
BROWSER_STAMP := tests/browser/node_modules/.cvtk-installed
$(BROWSER_STAMP): tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

browser-deps: $(BROWSER_STAMP)
	@command -v chromium >/dev/null || [ -x "$${CHROMIUM:-}" ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; \
	  else echo "WARNING: the browser tests need Debian's chromium, and installing it needs root: run 'sudo apt-get install chromium' (or set CHROMIUM=/path/to/chromium); until then those tests fail, saying so"; fi; }

# Container test (crates/cvtk-cli/tests/container.rs): podman and mmdebstrap
# from Debian (installed when missing, as root), and a base image made from
# Debian's packages, since no container registry is assumed reachable. As
# another user, a warning where either step cannot be done, and that one test
# fails saying what is missing; the rest of the suite still runs.
container-deps:
	@command -v podman >/dev/null && command -v mmdebstrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman mmdebstrap >/dev/null; \
	  else echo "WARNING: the container test needs podman and mmdebstrap: run 'sudo apt-get install podman mmdebstrap'; it will fail until then"; fi; }
	@if command -v podman >/dev/null && command -v mmdebstrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then scripts/make-base-image.sh; \
	  else scripts/make-base-image.sh || echo "WARNING: could not make the container base image as $$(id -un) (see above); the container test will fail until 'make base-image' succeeds for this user"; fi; fi

base-image:
	scripts/make-base-image.sh

# What the demo and the examples need: nothing here needs root or a browser.
setup: venv $(CARGO_CONFIG) sample-data weights

# What the tests need on top: the Python references, the browser, podman.
test-setup: setup test-venv browser-deps container-deps

# One cargo invocation for the program and the examples, so dependencies are
# compiled once with one set of features.
build: setup
	$(CARGO) build --release --locked -p cvtk -p cvtk-cli --bins --examples

# The main job: examples/image_classification.rs (the notebook's steps) on the
# sample data; ARGS passes options through, e.g. ARGS="--classifier svm".
demo: build
	target/release/examples/image_classification $(ARGS)

mnist-webservice: build
	scripts/fetch-sample-data.sh mnist
	target/release/examples/mnist_webservice $(ARGS)

# examples/soak.rs: cvtk serve under honest and hostile clients at once;
# docs/deployment.md quotes a run.
soak: build
	target/release/examples/soak $(ARGS)

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# scripts/test.py runs test-setup, fmt, one build of every target that clippy
# lints as it compiles, the tests, the doctests and the template check, times
# each phase (each test binary on its own line), prints the table (also in
# target/test-times.txt) and fails when the run is over its budget (40 min).
test:
	python3 scripts/test.py

# templates/app built out of tree against this checkout, as docs/guide.md says,
# then run with an empty environment (scripts/test-template.sh).
template-test: setup
	scripts/test-template.sh

# Every benchmark, then their tables into docs/benchmarks.md and docs/augmentation.md.
# serving runs the cvtk program it finds beside the benchmark: build it first.
BENCHES := pipeline inference training svm serving augment audit tta
bench: setup test-venv
	$(CARGO) build --release --locked -p cvtk-cli --bins
	@mkdir -p outputs/bench
	@for b in $(BENCHES); do \
	  echo "== cargo bench --bench $$b"; \
	  $(CARGO) bench --locked --bench $$b > outputs/bench/$$b.md || exit 1; \
	  cat outputs/bench/$$b.md; \
	done
	$(PY) scripts/update-benchmarks-doc.py docs/benchmarks.md \
	  pipeline=outputs/bench/pipeline.md inference=outputs/bench/inference.md \
	  training=outputs/bench/training.md svm=outputs/bench/svm.md \
	  serving=outputs/bench/serving.md audit=outputs/bench/audit.md tta=outputs/bench/tta.md
	$(PY) scripts/update-benchmarks-doc.py docs/augmentation.md augment=outputs/bench/augment.md

clean:
	$(CARGO) clean
	rm -rf outputs sample_data/generated

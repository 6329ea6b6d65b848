# Watchtower make targets. `make test` is the one command CI runs (.ci/run): it installs what
# the tests need (Debian's prometheus, a Python venv with the OpenTelemetry SDK) and runs every
# Rust and Python test, and type-checks the fuzz targets. Stack targets (docker-*, helm/kind)
# live in mk/stack.mk, benchmark targets in mk/bench.mk, fuzzing in mk/fuzz.mk.
SHELL := /bin/bash
CARGO ?= cargo
VENV ?= .venv
PY := $(VENV)/bin/python
export WATCHTOWER_PYTHON := $(abspath $(PY))
export WATCHTOWER_BIN := $(abspath target/debug/watchtower)

.PHONY: build run test test-env test-rust test-py test-py-sdk-latest lint fmt

build:
	$(CARGO) build --release

run:
	$(CARGO) run --release -- run $(if $(CONFIG),--config $(CONFIG),)

test-env:
	./.ci/setup-test-env.sh $(VENV)

test: test-env
	$(CARGO) build --bins
	$(MAKE) test-rust test-py test-py-sdk-latest fuzz-check

# --workspace: the gateway's tests and the benchmark tools' own (benches/tools/tests)
test-rust:
	$(CARGO) nextest run --workspace --no-fail-fast

test-py:
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q tests/py

# test-data/generate.py against the newest OpenTelemetry Python SDK too
# (test-data/requirements-latest.txt, installed by test-env beside the pinned one).
test-py-sdk-latest:
	PATH="$(abspath $(VENV))/bin:$$PATH" PYTHONPATH="$(abspath $(VENV))/otel-sdk-latest" \
		$(PY) -m pytest -q tests/py/test_generator.py tests/py/test_generator_sdk.py

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

-include mk/*.mk

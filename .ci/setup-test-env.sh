#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine: Debian's prometheus (real
# remote-write target for end-to-end tests) and a Python venv with the OpenTelemetry SDK and
# the tools the static stack checks use. Idempotent: a second run is quick.
set -euo pipefail
VENV="${1:-.venv}"
if ! command -v prometheus >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # the package starts a system service on :9090; tests start their own instance
  ($SUDO systemctl stop prometheus 2>/dev/null || $SUDO service prometheus stop 2>/dev/null || true)
fi
# nss_wrapper serves a test DNS name with several A records (tests/runs_replicas.rs)
if ! ls /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -qq --no-install-recommends libnss-wrapper >/dev/null \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends libnss-wrapper >/dev/null; }
fi
# the zpages page is tested in Debian's headless chromium, driven by selenium
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/py/requirements.txt
if [ -f tests/py/requirements-nodeps.txt ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r tests/py/requirements-nodeps.txt
fi
# The OpenTelemetry Node.js SDK (tests/otlp_json_node_sdk.rs), at the versions of
# tests/node/package-lock.json, into the ignored tests/node/node_modules.
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -f tests/node/node_modules/.package-lock.json ] \
  || [ tests/node/package-lock.json -nt tests/node/node_modules/.package-lock.json ]; then
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi
# The newest OpenTelemetry Python SDK beside the pinned one, for the generator's
# compatibility run (`make test-py-sdk-latest`): a --target directory inside the venv, put in
# front of the venv's packages with PYTHONPATH. Reinstalled only when its requirements change.
LATEST="$VENV/otel-sdk-latest"
if ! cmp -s test-data/requirements-latest.txt "$LATEST/.requirements" 2>/dev/null; then
  rm -rf "$LATEST"
  "$VENV/bin/pip" install -q --disable-pip-version-check --target "$LATEST" -r test-data/requirements-latest.txt
  cp test-data/requirements-latest.txt "$LATEST/.requirements"
fi

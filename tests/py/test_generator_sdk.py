"""generate.py under whichever OpenTelemetry Python SDK is on the path: the pinned one
(test-data/requirements.txt) in `make test-py`, the newest (test-data/requirements-latest.txt,
put in front with PYTHONPATH) in `make test-py-sdk-latest`. Log exporters of SDK 1.45+ return
`LogRecordExportResult`; the generator must still count a successful log export as sent."""
import json
import os
import subprocess
import sys

from otlp_capture import start_capture_server

import generate


def _pinned(root, name):
    for line in (root / "test-data" / name).read_text().splitlines():
        if line.startswith("opentelemetry-sdk=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"no opentelemetry-sdk pin in {name}")


def test_the_expected_sdk_is_loaded(root):
    latest = "otel-sdk-latest" in os.environ.get("PYTHONPATH", "")
    want = _pinned(root, "requirements-latest.txt" if latest else "requirements.txt")
    out = subprocess.run([sys.executable, "-c", "import opentelemetry.sdk.version as v; print(v.__version__)"],
                         capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    assert out == want


def test_success_is_recognised_for_every_result_enum():
    from opentelemetry.sdk._logs import export as logs_export
    from opentelemetry.sdk.metrics.export import MetricExportResult
    from opentelemetry.sdk.trace.export import SpanExportResult

    enums = [SpanExportResult, MetricExportResult]
    enums += [getattr(logs_export, n) for n in ("LogExportResult", "LogRecordExportResult") if hasattr(logs_export, n)]
    for enum in enums:
        assert generate.succeeded(enum.SUCCESS), enum
        assert not generate.succeeded(enum.FAILURE), enum
    assert not generate.succeeded(None)


def test_logs_arrive_and_the_generator_exits_0(root, tmp_path):
    srv, cap, url = start_capture_server()
    manifest = tmp_path / "m.json"
    try:
        r = subprocess.run(
            [sys.executable, str(root / "test-data/generate.py"), "--protocol", "http", "--endpoint", url,
             "--rate", "0", "--metric-interval", "60", "--count", "20", "--seed", "3", "-q",
             "--manifest", str(manifest)],
            capture_output=True, text=True, timeout=90)
        logs = cap.log_records()
    finally:
        srv.shutdown()
    assert r.returncode == 0, r.stderr
    m = json.loads(manifest.read_text())
    assert m["log_records_total"] > 0
    assert len(logs) == m["log_records_total"]

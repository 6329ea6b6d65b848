"""End to end: generate.py -> Watchtower (grpc and http receivers) -> otlphttp exporter -> a capture
server decoding OTLP/HTTP. Everything in the manifest must arrive, exactly once."""
import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import free_port
from e2e_checks import check_errors_and_exceptions, check_logs, check_metrics, check_traces, wait_for
from otlp_capture import start_capture_server

CONFIG = """
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
exporters:
  otlphttp/capture: {{ endpoint: "{capture}", retry_on_failure: {{ initial_interval: 100ms }} }}
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
service:
  extensions: [health_check]
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlphttp/capture] }}
    metrics: {{ receivers: [otlp], exporters: [otlphttp/capture] }}
    logs: {{ receivers: [otlp], exporters: [otlphttp/capture] }}
"""
RESOURCE = {"service.namespace": "shop", "test.run.id": "e2e"}


def _get(url, timeout=1.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


@pytest.fixture(scope="module", params=["grpc", "http"])
def e2e(request, root, watchtower_bin, tmp_path_factory):
    protocol = request.param
    tmp = tmp_path_factory.mktemp(f"e2e-{protocol}")
    srv, cap, capture_url = start_capture_server()
    proc, ports = None, None
    # free ports are picked then released: another process may grab one first, so a start that
    # fails with "Address already in use" is retried on new ports
    for _attempt in range(3):
        ports = {k: free_port() for k in ("grpc", "http", "health", "metrics")}
        cfg = tmp / "config.yaml"
        cfg.write_text(CONFIG.format(capture=capture_url, **ports))
        log = open(tmp / "watchtower.log", "w+")
        proc = subprocess.Popen([watchtower_bin, "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while proc.poll() is None:
            try:
                if _get(f"http://127.0.0.1:{ports['health']}/")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "health endpoint never answered 200"
            time.sleep(0.1)
        if proc.poll() is None:
            break
        if "Address already in use" not in (tmp / "watchtower.log").read_text():
            break
    try:
        assert proc.poll() is None, f"watchtower exited ({proc.returncode}):\n{(tmp / 'watchtower.log').read_text()}"
        endpoint = f"127.0.0.1:{ports['grpc']}" if protocol == "grpc" else f"http://127.0.0.1:{ports['http']}"
        manifest_path = tmp / "manifest.json"
        seed = 1234 if protocol == "grpc" else 4321
        r = subprocess.run(
            [sys.executable, str(root / "test-data/generate.py"), "--protocol", protocol, "--endpoint", endpoint,
             "--count", "40", "--seed", str(seed), "--rate", "0", "--error-rate", "0.25", "--metric-interval", "60",
             "--service-namespace", RESOURCE["service.namespace"], "--resource-attr", f"test.run.id={RESOURCE['test.run.id']}",
             "--manifest", str(manifest_path), "-q"],
            capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"generator failed (export errors?):\n{r.stderr[-3000:]}"
        manifest = json.loads(manifest_path.read_text())
        wait_for(cap, manifest, timeout=20)
        try:
            self_metrics = _get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=3)[1]
        except OSError as e:
            self_metrics = f"<unreachable: {e}>"
        yield {"manifest": manifest, "cap": cap, "self_metrics": self_metrics, "protocol": protocol}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        srv.shutdown()
        log.close()


def test_every_trace_arrives_from_all_three_services(e2e):
    assert not e2e["cap"].errors, e2e["cap"].errors
    check_traces(e2e["manifest"], e2e["cap"])


def test_every_log_record_arrives_with_its_trace_id(e2e):
    check_logs(e2e["manifest"], e2e["cap"])


def test_error_and_exception_counts_match(e2e):
    m = e2e["manifest"]
    assert m["errors"] > 0 and m["exceptions_total"] > 0
    check_errors_and_exceptions(m, e2e["cap"])


def test_metric_points_arrive(e2e):
    check_metrics(e2e["manifest"], e2e["cap"], RESOURCE)


def _metric_sum(text, name, **labels):
    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        lbl = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(lbl.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            found = True
    return total if found else None


def test_gateway_self_metrics_count_the_run(e2e):
    m, text = e2e["manifest"], e2e["self_metrics"]
    assert _metric_sum(text, "otelcol_receiver_accepted_spans_total", receiver="otlp") == m["spans_total"], text[:2000]
    assert _metric_sum(text, "otelcol_receiver_accepted_log_records_total", receiver="otlp") == m["log_records_total"]
    assert _metric_sum(text, "otelcol_exporter_sent_spans_total", exporter="otlphttp/capture") == m["spans_total"]
    assert _metric_sum(text, "otelcol_exporter_sent_log_records_total", exporter="otlphttp/capture") == m["log_records_total"]

"""The generator itself, straight into the OTLP/HTTP capture server (no gateway)."""
import json
import subprocess
import sys

from otlp_capture import start_capture_server


def run_gen(root, endpoint, tmp_path, *extra, protocol="http", name="m.json"):
    manifest = tmp_path / name
    cmd = [sys.executable, str(root / "test-data/generate.py"), "--protocol", protocol, "--endpoint", endpoint,
           "--rate", "0", "--metric-interval", "60", "-q", "--manifest", str(manifest), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    return json.loads(manifest.read_text())


def test_seed_makes_runs_reproducible(root, tmp_path):
    srv, cap, url = start_capture_server()
    try:
        a = run_gen(root, url, tmp_path, "--count", "15", "--seed", "42", "--error-rate", "0.3", name="a.json")
        b = run_gen(root, url, tmp_path, "--count", "15", "--seed", "42", "--error-rate", "0.3", name="b.json")
        c = run_gen(root, url, tmp_path, "--count", "15", "--seed", "43", "--error-rate", "0.3", name="c.json")
    finally:
        srv.shutdown()
    assert a["trace_ids"] == b["trace_ids"] and len(set(a["trace_ids"])) == 15
    assert [t["failure"] for t in a["traces"]] == [t["failure"] for t in b["traces"]]
    assert a["exceptions_by_type"] == b["exceptions_by_type"]
    assert not set(a["trace_ids"]) & set(c["trace_ids"])


def test_new_exception_scenario_adds_an_unseen_type(root, tmp_path):
    srv, cap, url = start_capture_server()
    try:
        base = run_gen(root, url, tmp_path, "--count", "60", "--seed", "5", "--error-rate", "0.2", name="base.json")
        new = run_gen(root, url, tmp_path, "--count", "60", "--seed", "5", "--error-rate", "0.2",
                      "--scenario", "new-exception", name="new.json")
        spans = cap.spans()
    finally:
        srv.shutdown()
    unseen = set(new["exceptions_by_type"]) - set(base["exceptions_by_type"])
    assert unseen == {"payments.fx.CurrencyConversionError"}
    # recorded per the semantic conventions: exception event + ERROR status on that span
    events = [(sp, e) for _, sp in spans for e in sp.events if e.name == "exception"]
    ev = [(sp, {kv.key: kv.value.string_value for kv in e.attributes}) for sp, e in events]
    conv = [(sp, a) for sp, a in ev if a["exception.type"] == "payments.fx.CurrencyConversionError"]
    assert len(conv) == new["exceptions_by_type"]["payments.fx.CurrencyConversionError"]
    for sp, a in conv:
        assert sp.status.code == 2  # STATUS_CODE_ERROR
        assert a["exception.message"] and "convert_currency" in a["exception.stacktrace"]


def test_payment_timeout_is_a_burst(root, tmp_path):
    srv, cap, url = start_capture_server()
    try:
        m = run_gen(root, url, tmp_path, "--count", "50", "--seed", "9", "--error-rate", "0",
                    "--scenario", "payment-timeout")
    finally:
        srv.shutdown()
    idx = [t["index"] for t in m["traces"] if t["failure"] == "payment-timeout"]
    assert idx and min(idx) >= 15 and max(idx) < 30  # the middle of the run, nowhere else
    assert m["exceptions_by_service"] == {"payment-service": {"payments.gateway.PaymentProviderTimeoutError": len(idx)}}


def test_manifest_matches_what_the_sdk_sent(root, tmp_path):
    """The manifest is exact: checked against the capture server without a gateway in between
    (the same checks test_generator_e2e.py applies through Watchtower)."""
    from e2e_checks import (check_errors_and_exceptions, check_logs, check_metrics, check_traces,
                            wait_for)

    srv, cap, url = start_capture_server()
    try:
        m = run_gen(root, url, tmp_path, "--count", "30", "--seed", "11", "--error-rate", "0.3",
                    "--service-namespace", "shop", "--resource-attr", "test.run.id=r1")
        wait_for(cap, m, timeout=5)
        check_traces(m, cap)
        check_logs(m, cap)
        check_errors_and_exceptions(m, cap)
        check_metrics(m, cap, {"service.namespace": "shop", "test.run.id": "r1"})
        assert m["errors"] > 0 and m["exceptions_total"] > 0
    finally:
        srv.shutdown()

"""Compare what arrived at the capture server with the generator's manifest."""
from collections import Counter, defaultdict

STATUS_ERROR = 2


def wait_for(cap, manifest, timeout=20.0):
    """Poll until the capture holds as many spans and log records as the manifest and the final
    metric points arrived (exporters batch asynchronously)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans, logs = len(cap.spans()), len(cap.log_records())
        points = sum(_points(m) for _, _, m in cap.metrics())
        want_points = sum(manifest["metrics"]["points_exported_by_service"].values())
        if spans >= manifest["spans_total"] and logs >= manifest["log_records_total"] and points >= want_points:
            time.sleep(0.5)  # let any duplicate (which would be a bug) land too
            return
        time.sleep(0.2)


def _points(metric):
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def check_traces(manifest, cap):
    services = set(manifest["services"])
    by_trace = defaultdict(set)
    per_service = Counter()
    seen = set()
    for svc, sp in cap.spans():
        key = (sp.trace_id.hex(), sp.span_id.hex())
        assert key not in seen, f"duplicate span {key}"
        seen.add(key)
        by_trace[sp.trace_id.hex()].add(svc)
        per_service[svc] += 1
    missing = [t for t in manifest["trace_ids"] if by_trace.get(t) != services]
    assert not missing, f"{len(missing)} traces without spans from all of {sorted(services)}: {missing[:3]}"
    assert set(by_trace) == set(manifest["trace_ids"]), "spans arrived for trace ids not in the manifest"
    assert dict(per_service) == manifest["spans_by_service"]


def check_logs(manifest, cap):
    ids = set(manifest["trace_ids"])
    per_service = Counter()
    for svc, lr in cap.log_records():
        per_service[svc] += 1
        assert lr.trace_id.hex() in ids, f"log record without a manifest trace id: {lr.body}"
        assert len(lr.span_id) == 8 and lr.span_id != b"\0" * 8
    assert dict(per_service) == manifest["log_records_by_service"]


def check_errors_and_exceptions(manifest, cap):
    error_spans = Counter()
    by_type, by_service = Counter(), defaultdict(Counter)
    failed_traces = set()
    for svc, sp in cap.spans():
        if sp.status.code == STATUS_ERROR:
            error_spans[svc] += 1
        for ev in sp.events:
            if ev.name != "exception":
                continue
            attrs = {kv.key: kv.value.string_value for kv in ev.attributes}
            assert attrs.get("exception.message") and attrs.get("exception.stacktrace"), attrs
            assert sp.status.code == STATUS_ERROR
            by_type[attrs["exception.type"]] += 1
            by_service[svc][attrs["exception.type"]] += 1
            failed_traces.add(sp.trace_id.hex())
    assert {s: error_spans.get(s, 0) for s in manifest["services"]} == manifest["error_spans_by_service"]
    assert dict(by_type) == manifest["exceptions_by_type"]
    assert {s: dict(c) for s, c in by_service.items()} == manifest["exceptions_by_service"]
    want_failed = {t["trace_id"] for t in manifest["traces"] if t["error"]}
    assert failed_traces == want_failed and len(want_failed) == manifest["errors"]


def check_metrics(manifest, cap, resource_attrs=None):
    points = Counter()
    latest = defaultdict(dict)  # (svc, metric) -> {attrs: (time, value)}
    for svc, res, m in cap.metrics():
        for k, v in (resource_attrs or {}).items():
            assert res.get(k) == v, (svc, k, res.get(k))
        points[svc] += _points(m)
        kind = m.WhichOneof("data")
        for dp in getattr(m, kind).data_points:
            key = tuple(sorted((kv.key, str(kv.value)) for kv in dp.attributes))
            value = dp.count if kind == "histogram" else (dp.as_int if dp.HasField("as_int") else dp.as_double)
            prev = latest[(svc, m.name)].get(key)
            if prev is None or dp.time_unix_nano >= prev[0]:
                latest[(svc, m.name)][key] = (dp.time_unix_nano, value)
    mm = manifest["metrics"]
    assert dict(points) == {s: n for s, n in mm["points_exported_by_service"].items() if n}
    total = lambda svc, name: sum(v for _, v in latest[(svc, name)].values())  # noqa: E731
    for svc in manifest["services"]:
        assert total(svc, "http.server.request.count") == mm["requests_by_service"][svc], svc
        assert total(svc, "http.server.duration") == mm["duration_records_by_service"][svc], svc
        assert total(svc, "http.server.error.count") == mm["errors_by_service"][svc], svc

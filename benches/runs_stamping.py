#!/usr/bin/env python3
"""End-to-end cost of open test runs on the data path (`make bench-runs`; standard library only).

The gateway (release build) forwards traces to a sink at the maximum rate loadgen reaches
(4 connections, 200 spans per request) for BENCH_DURATION s (default 10) in three states,
measured alternately: no run open; 100 open runs whose 16-key `match` filters the data misses
(the index is consulted, nothing is stamped); 1 open run matching everything (every request is
decoded, stamped and re-encoded). Reports spans/s and gateway CPU s per million spans to
target/bench/runs_stamping.json.
"""

import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import run as bench  # noqa: E402

DURATION = float(os.environ.get("BENCH_DURATION", "10"))


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def measure(state):
    sink = bench.Sink(f"runs-{state}-sink")
    try:
        exp = bench.otlp_exporter("sink", sink.grpc)
        pipes = "    traces: { receivers: [otlp], processors: [batch], exporters: [otlp/sink] }"
        gw = bench.Gateway(f"runs-{state}", exp, pipes)
        # the runs extension: rewrite the config and restart with it
        gw.stop()
        with open(gw.config) as f:
            text = f.read()
        text = text.replace("extensions:\n  health_check:", "extensions:\n  runs: { max_runs: 200 }\n  health_check:")
        text = text.replace("extensions: [health_check]", "extensions: [health_check, runs]")
        with open(gw.config, "w") as f:
            f.write(text)
        gw.proc = bench.spawn(f"runs-{state}-gateway", [bench.BIN, "run", "--config", gw.config])
        bench.wait_http(f"http://127.0.0.1:{gw.health}/", gw.proc)
        base = f"http://127.0.0.1:{gw.health}/runs"
        if state == "100_runs_16_keys_no_match":
            for i in range(100):
                post(base, {"id": f"r{i}", "match": {f"filter.{k}": f"run-{i}" for k in range(16)}})
        elif state == "1_run_match_all":
            post(base, {"id": "all"})
        try:
            row = bench.run_gateway_scenario(f"runs-{state}", [sink], gw, "traces", DURATION,
                                             bench.MAX_LOAD, "traces")
            row["state"] = state
            return row
        finally:
            gw.stop()
    finally:
        sink.stop()


def main():
    os.makedirs(bench.LOGS, exist_ok=True)
    rows = []
    for state in ("no_runs", "100_runs_16_keys_no_match", "1_run_match_all"):
        r = measure(state)
        bench.log(f"{state}: {r['items_per_s']} spans/s, {r['cpu_s_per_million']} CPU s per million, lost {r['lost']}")
        rows.append({k: r[k] for k in ("state", "items_per_s", "cpu_s_per_million", "cpu_percent", "lost")})
    with open(os.path.join(bench.OUT, "runs_stamping.json"), "w") as f:
        json.dump(rows, f, indent=2)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    try:
        main()
    finally:
        for c in list(bench.CHILDREN):
            bench.stop(c)

#!/usr/bin/env python3
"""Passthrough with and without zpages, alternating in one session (run after `make bench`
has built target/release/watchtower and target/release/watchtower-bench; uses benches/run.py's
sink, loadgen and scenario code).

Variants, each a 1-sink passthrough at max rate (benches/run.py MAX_LOAD), run in rounds
A, B, C, A, B, C, ...:
  base        no zpages extension (tap points present: one atomic load, no viewer)
  zpages      zpages on with the recent-data ring (as in the built-in config), no viewer
  tap_viewer  zpages on, one `/api/v1/tap` viewer reading every item as fast as it can
Writes target/bench/zpages_ab.json and prints the medians and ratios to base.
Environment: BENCH_DURATION (s, default 8), ROUNDS (default 3).
"""

import json
import os
import statistics
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import run  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = float(os.environ.get("BENCH_DURATION", "8"))


class ZGateway(run.Gateway):
    """run.Gateway with the zpages extension."""

    def __init__(self, name, exporters_yaml, pipelines_yaml):
        self.grpc, self.http, self.health, self.metrics, self.zpages = (run.free_port() for _ in range(5))
        cfg = f"""receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:{self.grpc}" }}
      http: {{ endpoint: "127.0.0.1:{self.http}" }}
processors:
  batch: {{ timeout: 200ms, send_batch_size: 8192 }}
exporters:
{exporters_yaml}
extensions:
  health_check: {{ endpoint: "127.0.0.1:{self.health}" }}
  zpages: {{ endpoint: "127.0.0.1:{self.zpages}", recent: {{ max_bytes: 16MiB }} }}
service:
  extensions: [health_check, zpages]
  telemetry:
    metrics: {{ address: "127.0.0.1:{self.metrics}" }}
    logs: {{ level: warn }}
  pipelines:
{pipelines_yaml}
"""
        self.config = os.path.join(run.OUT, f"{name}.yaml")
        with open(self.config, "w") as f:
            f.write(cfg)
        self.proc = run.spawn(f"{name}-gateway", [run.BIN, "run", "--config", self.config])
        run.wait_http(f"http://127.0.0.1:{self.health}/", self.proc)
        time.sleep(0.3)
        self.idle_rss_kib = run.status_kib(self.proc.pid, "VmRSS")


def viewer(port, stop, counts):
    """Reads the tap stream until `stop`; counts items and lost items."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/tap", timeout=30) as r:
        while not stop.is_set():
            line = r.readline()
            if not line:
                break
            v = json.loads(line)
            if "signal" in v:
                counts["items"] += 1
            elif "gap" in v:
                counts["lost"] += v["gap"]["lost_items"]


def one(variant, i):
    name = f"zpages_ab-{variant}-{i}"
    sink = run.Sink(f"{name}-sink")
    try:
        exps = run.otlp_exporter("sink1", sink.grpc)
        pipes = "    traces: { receivers: [otlp], processors: [batch], exporters: [otlp/sink1] }"
        gw = run.Gateway(name, exps, pipes) if variant == "base" else ZGateway(name, exps, pipes)
        stop, counts, t = threading.Event(), {"items": 0, "lost": 0}, None
        try:
            if variant == "tap_viewer":
                t = threading.Thread(target=viewer, args=(gw.zpages, stop, counts), daemon=True)
                t.start()
                time.sleep(0.3)
            row = run.run_gateway_scenario(name, [sink], gw, "traces", DURATION, run.MAX_LOAD, "traces")
            if t:
                stop.set()
                row["viewer_items"] = counts["items"]
                row["viewer_lost_items"] = counts["lost"]
            row["variant"] = variant
            return row
        finally:
            gw.stop()
    finally:
        sink.stop()


def main():
    os.makedirs(run.LOGS, exist_ok=True)
    variants = ["base", "zpages", "tap_viewer"]
    rows = []
    for i in range(ROUNDS):
        for v in variants:
            r = one(v, i)
            run.log(f"{v} round {i}: {r['items_per_s']} items/s, {r['cpu_s_per_million']} CPU-s/M, "
                    f"p99 {r['p99_ms']} ms, lost {r['lost']}"
                    + (f", viewer {r.get('viewer_items')} shown / {r.get('viewer_lost_items')} lost" if v == "tap_viewer" else ""))
            rows.append(r)
    med = {}
    for v in variants:
        rs = [r for r in rows if r["variant"] == v]
        med[v] = {k: statistics.median(r[k] for r in rs) for k in ("items_per_s", "cpu_s_per_million", "p99_ms")}
        med[v]["lost"] = sum(r["lost"] for r in rs)
    for v in variants:
        med[v]["throughput_ratio_to_base"] = round(med[v]["items_per_s"] / med["base"]["items_per_s"], 3)
        med[v]["cpu_ratio_to_base"] = round(med[v]["cpu_s_per_million"] / med["base"]["cpu_s_per_million"], 3)
    out = {"machine": run.machine(), "duration_s": DURATION, "rounds": ROUNDS, "medians": med, "rows": rows}
    with open(os.path.join(run.OUT, "zpages_ab.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(med, indent=2))


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in list(run.CHILDREN):
            run.stop(p)

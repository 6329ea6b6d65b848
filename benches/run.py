#!/usr/bin/env python3
"""End-to-end benchmark driver for `make bench` (Python 3 standard library only).

Starts `watchtower-bench sink`(s), the gateway (release build) and `watchtower-bench loadgen` as
child processes on free 127.0.0.1 ports, bounds every step in time, reads the gateway's CPU time
(/proc/<pid>/stat utime+stime) and peak RSS (/proc/<pid>/status VmHWM), and writes
target/bench/results.json and target/bench/results.md.

Scenarios (BENCHMARKS.md): baseline, passthrough, durable_passthrough (docs/durable.md), fanout3, filter, transform, prw, loki, slow_destination, steady_10k.
Environment: BENCH_DURATION (s, default 10), BENCH_STEADY_DURATION (default 30),
BENCH_ONLY (comma list of scenario names), BENCH_BIN (the gateway, default target/release/watchtower; not WATCHTOWER_BIN, which the top Makefile points at the debug build), BENCH_TOOLS_BIN (sink and loadgen, default target/release/watchtower-bench: the benches/tools crate).
"""

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("BENCH_BIN", os.path.join(ROOT, "target/release/watchtower"))
TOOLS_BIN = os.environ.get("BENCH_TOOLS_BIN", os.path.join(ROOT, "target/release/watchtower-bench"))
OUT = os.path.join(ROOT, "target/bench")
LOGS = os.path.join(OUT, "logs")
DURATION = float(os.environ.get("BENCH_DURATION", "10"))
STEADY_DURATION = float(os.environ.get("BENCH_STEADY_DURATION", "30"))
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
TOTAL_BUDGET = float(os.environ.get("BENCH_BUDGET", "480"))  # seconds for all scenarios
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# load shape for the max-rate scenarios
MAX_LOAD = ["--connections", "4", "--items-per-request", "200", "--attributes", "8",
            "--services", "5", "--pool", "64"]

T0 = time.monotonic()
CHILDREN = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[bench {time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def spawn(name, args):
    out = open(os.path.join(LOGS, f"{name}.log"), "wb")
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    CHILDREN.append(p)
    return p


def stop(p, grace=5.0):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
    if p in CHILDREN:
        CHILDREN.remove(p)


def http_get(url, timeout=1.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def wait_http(url, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before {url} answered")
        try:
            if http_get(url)[0] == 200:
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # fields 14 and 15 (utime, stime); rest[0] is field 3
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


class Sink:
    def __init__(self, name, latency_ms=0):
        self.name = name
        self.grpc, self.http, self.prw, self.loki, self.stats = (free_port() for _ in range(5))
        args = [TOOLS_BIN, "sink", "--grpc", f"127.0.0.1:{self.grpc}", "--http", f"127.0.0.1:{self.http}",
                "--prw", f"127.0.0.1:{self.prw}", "--loki", f"127.0.0.1:{self.loki}",
                "--stats", f"127.0.0.1:{self.stats}", "--quiet"]
        if latency_ms:
            args += ["--latency-ms", str(latency_ms)]
        self.proc = spawn(name, args)
        wait_http(f"http://127.0.0.1:{self.stats}/", self.proc)

    def counts(self):
        return json.loads(http_get(f"http://127.0.0.1:{self.stats}/counts")[1])

    def stop(self):
        stop(self.proc)


class Gateway:
    def __init__(self, name, exporters_yaml, pipelines_yaml, storage_dir=None, processors_yaml=""):
        self.grpc, self.http, self.health, self.metrics = (free_port() for _ in range(4))
        # durable queues (docs/durable.md): a file_storage extension on the real disk under target/
        storage = (f'\n  file_storage: {{ directory: "{storage_dir}", fsync: group }}'
                   if storage_dir else "")
        ext_names = "health_check, file_storage" if storage_dir else "health_check"
        cfg = f"""receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:{self.grpc}" }}
      http: {{ endpoint: "127.0.0.1:{self.http}" }}
processors:
  batch: {{ timeout: 200ms, send_batch_size: 8192 }}
{processors_yaml}
exporters:
{exporters_yaml}
extensions:
  health_check: {{ endpoint: "127.0.0.1:{self.health}" }}{storage}
service:
  extensions: [{ext_names}]
  telemetry:
    metrics: {{ address: "127.0.0.1:{self.metrics}" }}
    logs: {{ level: warn }}
  pipelines:
{pipelines_yaml}
"""
        self.config = os.path.join(OUT, f"{name}.yaml")
        with open(self.config, "w") as f:
            f.write(cfg)
        v = subprocess.run([BIN, "validate", "--config", self.config], capture_output=True,
                           text=True, timeout=30)
        if v.returncode != 0:
            raise Unsupported((v.stdout + v.stderr).strip())
        self.proc = spawn(f"{name}-gateway", [BIN, "run", "--config", self.config])
        wait_http(f"http://127.0.0.1:{self.health}/", self.proc)
        time.sleep(0.3)
        self.idle_rss_kib = status_kib(self.proc.pid, "VmRSS")

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def rss_kib(self):
        return status_kib(self.proc.pid, "VmRSS")

    def hwm_kib(self):
        return status_kib(self.proc.pid, "VmHWM")

    def stop(self):
        stop(self.proc, grace=10)


class Unsupported(Exception):
    pass


def loadgen(name, endpoint, signal_, duration, extra):
    out = os.path.join(OUT, f"{name}-loadgen.json")
    args = [TOOLS_BIN, "loadgen", "--endpoint", endpoint, "--signal", signal_, "--duration",
            str(duration), "--json", out, "--quiet"] + extra
    p = spawn(f"{name}-loadgen", args)
    return p, out


def finish_loadgen(p, out, duration):
    try:
        p.wait(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        stop(p)
        raise RuntimeError("loadgen did not stop in time")
    if p in CHILDREN:
        CHILDREN.remove(p)
    with open(out) as f:
        return json.load(f)


def wait_delivered(sinks, key, want, timeout=20.0):
    """Waits until every sink has `want` items of `key` or the counts stop moving for 2 s."""
    deadline = time.monotonic() + timeout
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        got = [s.counts()[key]["items"] for s in sinks]
        if all(g >= want for g in got):
            return got
        if got != last:
            last, stable_since = got, time.monotonic()
        elif time.monotonic() - stable_since > 2.0:
            return got
        time.sleep(0.1)
    return [s.counts()[key]["items"] for s in sinks]


def mib(kib):
    return None if kib is None else round(kib / 1024, 1)


def rnd(v, n=3):
    return None if v is None else round(v, n)


def run_gateway_scenario(name, sinks, gw, signal_, duration, load, key, healthy=None,
                         translated=False):
    """Drives load through `gw`; returns the scenario row (without ratios)."""
    healthy = healthy if healthy is not None else sinks
    rss_samples = []
    cpu0 = gw.cpu()
    t_start = time.monotonic()
    p, out = loadgen(name, f"127.0.0.1:{gw.grpc}", signal_, duration, load)
    while p.poll() is None and time.monotonic() - t_start < duration + 60:
        rss_samples.append(gw.rss_kib() or 0)
        time.sleep(0.5)
    cpu_load = gw.cpu() - cpu0
    wall = time.monotonic() - t_start
    rep = finish_loadgen(p, out, duration)
    accepted = rep["items"]["accepted"]
    delivered = wait_delivered(healthy, key, accepted if not translated else 1 << 62)
    cpu_total = gw.cpu() - cpu0
    row = {
        "name": name,
        "items_per_s": rnd(min(delivered) / rep["elapsed_s"], 0) if not translated else rnd(rep["items_per_s"]["accepted"], 0),
        "cpu_s_per_million": rnd(cpu_total / (accepted / 1e6)) if accepted else None,
        "cpu_percent": rnd(100.0 * cpu_load / wall, 2),
        "peak_rss_mib": mib(gw.hwm_kib()),
        "p99_ms": rnd(rep["latency_ms"]["p99"]),
        "lost": None if translated else sum(accepted - d for d in delivered),
        "accepted_items": accepted,
        "delivered_items": delivered,
        "refused_requests": rep["requests"]["refused"],
        "failed_requests": rep["requests"]["failed"],
        "p50_ms": rnd(rep["latency_ms"]["p50"]),
        "idle_rss_mib": mib(gw.idle_rss_kib),
        "avg_rss_mib": mib(sum(rss_samples) / len(rss_samples)) if rss_samples else None,
        "duration_s": rnd(rep["elapsed_s"], 2),
        "gateway_cpu_s": rnd(cpu_total),
    }
    return row


def scenario_baseline():
    s = Sink("baseline-sink")
    try:
        cpu0 = cpu_seconds(s.proc.pid)
        p, out = loadgen("baseline", f"127.0.0.1:{s.grpc}", "traces", DURATION, MAX_LOAD)
        rep = finish_loadgen(p, out, DURATION)
        got = wait_delivered([s], "traces", rep["items"]["accepted"])
        return {
            "name": "baseline",
            "items_per_s": rnd(got[0] / rep["elapsed_s"], 0),
            "cpu_s_per_million": None,
            "cpu_percent": None,
            "peak_rss_mib": None,
            "p99_ms": rnd(rep["latency_ms"]["p99"]),
            "lost": rep["items"]["accepted"] - got[0],
            "accepted_items": rep["items"]["accepted"],
            "delivered_items": got,
            "p50_ms": rnd(rep["latency_ms"]["p50"]),
            "sink_cpu_s_per_million": rnd((cpu_seconds(s.proc.pid) - cpu0) / (got[0] / 1e6)) if got[0] else None,
            "duration_s": rnd(rep["elapsed_s"], 2),
            "note": "loadgen -> sink directly; no gateway, so no gateway CPU/RSS",
        }
    finally:
        s.stop()


def otlp_exporter(name, sink_port, extra=""):
    return f'  otlp/{name}: {{ endpoint: "127.0.0.1:{sink_port}", tls: {{ insecure: true }}, compression: none{extra} }}'


def fsync_stats(gw):
    """(count, sum in s) of the gateway's durable fsync histogram, or None."""
    try:
        text = http_get(f"http://127.0.0.1:{gw.metrics}/metrics")[1]
        if isinstance(text, bytes):
            text = text.decode()
        vals = {}
        for line in text.splitlines():
            for k in ("watchtower_durable_queue_fsync_duration_seconds_count",
                      "watchtower_durable_queue_fsync_duration_seconds_sum"):
                if line.startswith(k):
                    vals[k] = vals.get(k, 0.0) + float(line.rsplit(" ", 1)[1])
        # no series before the first fsync
        return (vals.get("watchtower_durable_queue_fsync_duration_seconds_count", 0.0),
                vals.get("watchtower_durable_queue_fsync_duration_seconds_sum", 0.0))
    except Exception:
        return None


def scenario_fanout(name, n, down=0, duration=None, load=None, durable=False, processors=None):
    duration = duration or DURATION
    sinks = [Sink(f"{name}-sink{i + 1}") for i in range(n - down)]
    dead_ports = [free_port() for _ in range(down)]
    storage_dir = None
    if durable:
        storage_dir = os.path.join(OUT, f"{name}-wal")
        subprocess.run(["rm", "-rf", storage_dir], check=False)
    queue = ", sending_queue: { storage: file_storage, max_bytes: 1GiB }" if durable else ""
    try:
        exps = [otlp_exporter(f"sink{i + 1}", s.grpc, queue) for i, s in enumerate(sinks)]
        # an optional destination: never makes the receiver wait, drops (and counts) when full
        exps += [otlp_exporter(f"down{i + 1}", port,
                               ", sending_queue: { full_policy: drop_newest, queue_size: 100 }, "
                               "retry_on_failure: { initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 5s }")
                 for i, port in enumerate(dead_ports)]
        names = [f"otlp/sink{i + 1}" for i in range(len(sinks))] + [f"otlp/down{i + 1}" for i in range(down)]
        procs = processors or {}
        proc_ids = ", ".join(list(procs) + ["batch"])
        pipes = f"    traces: {{ receivers: [otlp], processors: [{proc_ids}], exporters: [{', '.join(names)}] }}"
        procs_yaml = "\n".join(f"  {k}:\n{v}" for k, v in procs.items())
        gw = Gateway(name, "\n".join(exps), pipes, storage_dir, procs_yaml)
        try:
            fsync0 = fsync_stats(gw) if durable else None
            row = run_gateway_scenario(name, sinks, gw, "traces", duration, load or MAX_LOAD, "traces")
            if procs:
                # spans a filter dropped on purpose are not lost
                filtered = scrape_sum(gw, "otelcol_processor_filter_spans_filtered_total")
                row["filtered"] = filtered
                if row.get("lost") is not None:
                    row["lost"] -= filtered
            if durable:
                row["note"] = "passthrough load through a durable queue (file_storage, fsync: group)"
                fsync1 = fsync_stats(gw)
                if fsync0 and fsync1:
                    n = fsync1[0] - fsync0[0]
                    reqs = row["accepted_items"] / 200.0  # MAX_LOAD: 200 spans per request
                    row["fsyncs_per_s"] = rnd(n / row["duration_s"], 0) if row["duration_s"] else None
                    row["requests_per_fsync"] = rnd(reqs / n, 2) if n else None
                    row["fsync_mean_ms"] = rnd((fsync1[1] - fsync0[1]) / n * 1e3, 3) if n else None
                    row["note"] += (f"; {row['fsyncs_per_s']} fsyncs/s, {row['requests_per_fsync']} requests "
                                    f"per fsync, fsync mean {row['fsync_mean_ms']} ms")
            if down:
                row["note"] = (f"{down} of {n} destinations down (connection refused, drop_newest queue); "
                               "items_per_s and lost are for the healthy sinks")
            return row
        finally:
            gw.stop()
    finally:
        for s in sinks:
            s.stop()


# OTTL processors (docs/processing.md): the request is decoded once, processed, re-encoded once.
# The filter drops loadgen's /healthz server spans; its counter is read so loss stays exact.
FILTER_YAML = (
    "    traces:\n"
    "      span:\n"
    "        - 'attributes[\"http.route\"] == \"/healthz\" and kind == SPAN_KIND_SERVER'\n"
    "        - 'IsMatch(name, \"^health\")'"
)
TRANSFORM_YAML = (
    "    trace_statements:\n"
    "      - context: span\n"
    "        statements:\n"
    "          - 'set(attributes[\"deployment.environment\"], \"bench\")'\n"
    "          - 'replace_pattern(name, \"[0-9]+\", \"N\")'\n"
    "          - 'delete_key(attributes, \"nonexistent\")'"
)


def scrape_sum(gw, name):
    """Sum of a counter over its label sets in the gateway's self-metrics (0 if absent)."""
    try:
        _, body = http_get(f"http://127.0.0.1:{gw.metrics}/metrics", timeout=5.0)
    except Exception:
        return 0
    total = 0
    for line in body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def scenario_filter():
    row = scenario_fanout("filter", 1, processors={"filter/health": FILTER_YAML})
    row["note"] = (f"passthrough load through a filter processor (2 OTTL conditions per span); it dropped "
                   f"{row.get('filtered')} loadgen /healthz server spans, not counted as lost")
    return row


def scenario_transform():
    row = scenario_fanout("transform", 1, processors={"transform": TRANSFORM_YAML})
    row["note"] = "passthrough load through a transform processor (3 OTTL statements per span)"
    return row


def scenario_steady():
    load = ["--rate", "10000", "--connections", "1", "--items-per-request", "100",
            "--attributes", "8", "--services", "5", "--pool", "64"]
    row = scenario_fanout("steady_10k", 1, duration=STEADY_DURATION, load=load)
    row["note"] = "10,000 spans/s in requests of 100 spans (the Collector testbed's Trace10kSPS shape)"
    return row


def scenario_translated(name, exporter_yaml, exporter_id, signal_, key):
    s = Sink(f"{name}-sink")
    try:
        pipes = f"    {signal_}: {{ receivers: [otlp], processors: [batch], exporters: [{exporter_id}] }}"
        gw = Gateway(name, exporter_yaml.format(s=s), pipes)
        try:
            row = run_gateway_scenario(name, [s], gw, signal_, DURATION, MAX_LOAD, key,
                                       translated=(key == "prw"))
            c = s.counts()[key]
            if key == "prw":
                row["note"] = (f"items are OTLP data points accepted; the sink received {c['items']} "
                               f"samples+histograms in {c['series']} series ({c['requests']} requests): "
                               "translation changes counts, so loss is not computed")
                row["delivered_items"] = [c["items"]]
            else:
                row["note"] = f"sink received {c['items']} entries in {c['streams']} streams ({c['requests']} pushes)"
            return row
        finally:
            gw.stop()
    finally:
        s.stop()


SCENARIOS = [
    ("baseline", scenario_baseline),
    ("passthrough", lambda: scenario_fanout("passthrough", 1)),
    ("durable_passthrough", lambda: scenario_fanout("durable_passthrough", 1, durable=True)),
    ("fanout3", lambda: scenario_fanout("fanout3", 3)),
    ("filter", scenario_filter),
    ("transform", scenario_transform),
    ("prw", lambda: scenario_translated(
        "prw", '  prometheusremotewrite: {{ endpoint: "http://127.0.0.1:{s.prw}/api/v1/write" }}',
        "prometheusremotewrite", "metrics", "prw")),
    ("loki", lambda: scenario_translated(
        "loki", '  loki: {{ endpoint: "http://127.0.0.1:{s.loki}/loki/api/v1/push" }}',
        "loki", "logs", "loki")),
    ("slow_destination", lambda: scenario_fanout("slow_destination", 3, down=1)),
    ("steady_10k", scenario_steady),
]


def empty_row(name, note):
    return {"name": name, "items_per_s": None, "cpu_s_per_million": None, "cpu_percent": None,
            "peak_rss_mib": None, "p99_ms": None, "lost": None, "ratio_to_baseline": None,
            "note": note}


def machine():
    model, cores = None, os.cpu_count()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    def cmd(args):
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip()
        except Exception:
            return None
    pressure = None
    try:
        with open("/proc/pressure/cpu") as f:
            pressure = float(f.readline().split()[1].split("=")[1])  # "some avg10"
    except (OSError, ValueError, IndexError):
        pass
    return {"cores": cores, "cpu_model": model, "cpu_pressure_some_avg10": pressure, "memory_gib": mem, "kernel": platform.release(),
            "rustc": cmd(["rustc", "--version"]), "commit": cmd(["git", "rev-parse", "--short", "HEAD"]),
            "loadavg_at_start": os.getloadavg()[0],
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def add_ratios(rows):
    base = next((r for r in rows if r["name"] == "baseline" and r.get("items_per_s")), None)
    fan = next((r for r in rows if r["name"] == "fanout3" and r.get("items_per_s")), None)
    passthrough = next((r for r in rows if r["name"] == "passthrough" and r.get("cpu_s_per_million")), None)
    for r in rows:
        if base and r.get("items_per_s") is not None and r["name"] != "steady_10k":
            r["ratio_to_baseline"] = rnd(r["items_per_s"] / base["items_per_s"])
            if r.get("p99_ms") is not None and base.get("p99_ms"):
                r["p99_ratio_to_baseline"] = rnd(r["p99_ms"] / base["p99_ms"], 2)
        else:
            r.setdefault("ratio_to_baseline", None)
        if r["name"] in ("fanout3", "filter", "transform") and passthrough and r.get("cpu_s_per_million"):
            r["cpu_ratio_to_passthrough"] = rnd(r["cpu_s_per_million"] / passthrough["cpu_s_per_million"], 2)
        if r["name"] == "slow_destination" and fan and r.get("items_per_s"):
            r["healthy_rate_vs_fanout3"] = rnd(r["items_per_s"] / fan["items_per_s"])


def goals(rows):
    by = {r["name"]: r for r in rows}
    out = []
    def check(label, ok, detail):
        out.append({"goal": label, "met": ok, "detail": detail})
    p = by.get("passthrough", {})
    if p.get("ratio_to_baseline") is not None:
        check("passthrough >= 80% of baseline, no loss", p["ratio_to_baseline"] >= 0.8 and p["lost"] == 0,
              f"{p['ratio_to_baseline'] * 100:.0f}% of baseline, lost {p['lost']}")
    if p.get("cpu_s_per_million") is not None:
        check("passthrough <= 0.5 CPU-s per million spans", p["cpu_s_per_million"] <= 0.5,
              f"{p['cpu_s_per_million']} CPU-s per million ({1 / p['cpu_s_per_million']:.2f}M spans/s per core)")
    d = by.get("durable_passthrough", {})
    if d.get("items_per_s") and p.get("items_per_s"):
        check("durable_passthrough >= 70% of passthrough, no loss",
              d["items_per_s"] >= 0.7 * p["items_per_s"] and d.get("lost") == 0,
              f"{d['items_per_s'] / p['items_per_s'] * 100:.0f}% of passthrough, lost {d.get('lost')}")
    f = by.get("fanout3", {})
    if f.get("cpu_ratio_to_passthrough") is not None:
        check("fanout3 CPU per span < 1.5x passthrough", f["cpu_ratio_to_passthrough"] < 1.5,
              f"{f['cpu_ratio_to_passthrough']}x")
    g = by.get("steady_10k", {})
    if g.get("cpu_percent") is not None:
        check("steady 10k spans/s <= 2% of a core", g["cpu_percent"] <= 2.0, f"{g['cpu_percent']}%")
        check("steady 10k spans/s <= 10 MiB RSS", g["peak_rss_mib"] <= 10.0, f"peak {g['peak_rss_mib']} MiB, avg {g.get('avg_rss_mib')} MiB")
    idle = [r["idle_rss_mib"] for r in rows if r.get("idle_rss_mib") is not None]
    if idle:
        check("idle RSS < 10 MiB", max(idle) < 10.0, f"{min(idle)}-{max(idle)} MiB after start")
    s = by.get("slow_destination", {})
    if s.get("healthy_rate_vs_fanout3") is not None:
        check("healthy sinks keep >= 95% of fanout3 rate with one destination down",
              s["healthy_rate_vs_fanout3"] >= 0.95, f"{s['healthy_rate_vs_fanout3'] * 100:.0f}%")
    return out


def micro():
    """Criterion estimates from target/criterion, if `cargo bench` ran."""
    base = os.path.join(ROOT, "target/criterion")
    res = []
    if not os.path.isdir(base):
        return res
    for dirpath, _dirs, files in os.walk(base):
        if os.path.basename(dirpath) == "new" and "estimates.json" in files and "benchmark.json" in files:
            try:
                with open(os.path.join(dirpath, "benchmark.json")) as f:
                    b = json.load(f)
                with open(os.path.join(dirpath, "estimates.json")) as f:
                    e = json.load(f)
            except (OSError, ValueError):
                continue
            ns = e["mean"]["point_estimate"]
            row = {"id": b.get("full_id"), "mean_ns": round(ns, 1)}
            tp = b.get("throughput") or {}
            if "Elements" in tp:
                row["items_per_s"] = round(tp["Elements"] / (ns / 1e9))
            res.append(row)
    return sorted(res, key=lambda r: r["id"] or "")


def fmt(v, suffix=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}{suffix}" if abs(v) < 1000 else f"{v:,.0f}{suffix}"
    if isinstance(v, int):
        return f"{v:,}{suffix}"
    return str(v)


def markdown(res):
    m = res["machine"]
    lines = [f"# Watchtower benchmark results", "",
             f"Machine: {m['cores']} cores, {m['cpu_model']}, {m['memory_gib']} GiB, kernel {m['kernel']}, "
             f"{m['rustc']}, commit {m['commit']}, {m['date']} (load average at start {m['loadavg_at_start']:.2f}, "
             f"CPU pressure some/avg10 {m.get('cpu_pressure_some_avg10')}%: other processes were competing for the cores).",
             "", "| scenario | items/s delivered | x baseline | gateway CPU-s / M items | gateway CPU % | "
             "peak RSS MiB | idle RSS MiB | p99 ms (x baseline) | lost |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["scenarios"]:
        p99 = fmt(r.get("p99_ms"))
        if r.get("p99_ratio_to_baseline") is not None and r["name"] != "baseline":
            p99 += f" ({r['p99_ratio_to_baseline']}x)"
        lines.append(f"| {r['name']} | {fmt(r.get('items_per_s'))} | {fmt(r.get('ratio_to_baseline'))} | "
                     f"{fmt(r.get('cpu_s_per_million'))} | {fmt(r.get('cpu_percent'))} | {fmt(r.get('peak_rss_mib'))} | "
                     f"{fmt(r.get('idle_rss_mib'))} | {p99} | {fmt(r.get('lost'))} |")
    notes = [f"- {r['name']}: {r['note']}" for r in res["scenarios"] if r.get("note")]
    if notes:
        lines += ["", "Notes:"] + notes
    if res["goals"]:
        lines += ["", "| goal | met | measured |", "|---|---|---|"]
        for g in res["goals"]:
            lines.append(f"| {g['goal']} | {'yes' if g['met'] else '**no**'} | {g['detail']} |")
    if res.get("micro"):
        lines += ["", "Micro-benchmarks (criterion, mean):", "", "| benchmark | time | items/s |", "|---|---:|---:|"]
        for b in res["micro"]:
            t = b["mean_ns"]
            ts = f"{t / 1000:.1f} us" if t >= 1000 else f"{t:.0f} ns"
            lines.append(f"| {b['id']} | {ts} | {fmt(b.get('items_per_s'))} |")
    return "\n".join(lines) + "\n"


def main():
    os.makedirs(LOGS, exist_ok=True)
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} not found: run `cargo build --release` first")
    if not os.access(TOOLS_BIN, os.X_OK):
        sys.exit(f"{TOOLS_BIN} not found: run `cargo build --release -p watchtower-bench` first")
    res = {"machine": machine(), "settings": {"duration_s": DURATION, "steady_duration_s": STEADY_DURATION,
                                               "load": " ".join(MAX_LOAD), "protocol": "grpc"},
           "scenarios": []}
    for name, fn in SCENARIOS:
        if ONLY and name not in ONLY:
            continue
        if time.monotonic() - T0 > TOTAL_BUDGET:
            res["scenarios"].append(empty_row(name, "skipped: the benchmark time budget ran out"))
            continue
        log(f"scenario {name}")
        try:
            row = fn()
        except Unsupported as e:
            row = empty_row(name, ("not available in this build: " + (str(e).splitlines() or [""])[0])[:300])
        except Exception as e:  # a failed scenario is reported, never fatal for the rest
            row = empty_row(name, f"failed: {e}"[:300])
        finally:
            for p in list(CHILDREN):
                stop(p)
        log(f"  -> {json.dumps(row)}")
        res["scenarios"].append(row)
    add_ratios(res["scenarios"])
    res["goals"] = goals(res["scenarios"])
    res["micro"] = micro()
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    md = markdown(res)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {OUT}/results.json and results.md")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in list(CHILDREN):
            stop(p)

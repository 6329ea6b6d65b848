#!/usr/bin/env python3
"""Sidecar efficiency benchmark (`make bench-sidecar`; Python 3 standard library only).

The Collector testbed's Trace10kSPS shape: 10,000 spans/s in requests of 100 spans over ONE
connection, for 30 s, sent by `watchtower-bench loadgen` to a gateway that forwards to a
`watchtower-bench sink`. Measured from /proc: the gateway's CPU time over the load window as % of
one core, its average and peak RSS, and its idle cost (CPU % and RSS over an idle window after
start). Two pipelines, each over gRPC and over OTLP/HTTP, measured alternately in one session:

  passthrough  otlp receiver -> batch -> otlp exporter (the testbed's pipeline)
  sidecar      the sidecar example's pipeline and environment (helm/examples/sidecar.yaml):
               memory_limiter, resource (stamps two attributes: decode + re-encode), batch ->
               otlphttp; the allocator without per-thread caches, freed pages returned
               over ~1 s

Also measured under the same load, once per protocol and round (SIDECAR_FLOOR=0 skips it):
`watchtower-bench floor`, a do-nothing endpoint on the gateway's HTTP libraries (hyper over a
current-thread tokio runtime) that reads each body and answers success: what the kernel and the
libraries cost for this traffic, so the gateway's own share is its figure minus the floor's.

Writes target/bench/sidecar.json and target/bench/sidecar.md. Environment: BENCH_BIN,
BENCH_TOOLS_BIN (as for benches/run.py),
SIDECAR_DURATION (s, default 30), SIDECAR_IDLE (s, default 10), SIDECAR_ROUNDS (default 1),
SIDECAR_WORKERS (tokio worker threads to compare, default "0,1": the default and one),
SIDECAR_PIPELINES (default "passthrough,sidecar"), SIDECAR_ENV (extra gateway environment,
"K=V,K=V"), SIDECAR_TAG (output file name, default "sidecar"), SIDECAR_BINS (gateway builds to
compare, "label=path,label=path"; a path may end in "|K=V;K=V" for environment of that build
alone, e.g. "lean=target/release/watchtower|_RJEM_MALLOC_CONF=tcache:false"; each case runs
every build back to back, so A and B alternate in one session; default: BENCH_BIN alone).

RSS is reported whole and split into anonymous memory (heap, stacks) and file-backed pages (the
executable's code and read-only data mapped from the binary; RssAnon / RssFile of
/proc/<pid>/status). The gateway runs from a private copy of its binary whose page cache is
dropped before it starts, as when a new pod reads its image: how much of the executable a
running process keeps mapped depends on how the file came into the page cache (pages read ahead
or copied arrive in large folios, mapped whole), so a warm, shared cache gives other figures.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import run as bench  # noqa: E402  (the shared process helpers of `make bench`)

DURATION = float(os.environ.get("SIDECAR_DURATION", "30"))
IDLE = float(os.environ.get("SIDECAR_IDLE", "10"))
ROUNDS = int(os.environ.get("SIDECAR_ROUNDS", "1"))
# tokio worker threads: 0 = the runtime's default (one per core), 1 = a sidecar whose CPU limit
# is below one core
WORKERS = [int(w) for w in os.environ.get("SIDECAR_WORKERS", "0,1").split(",")]
# extra environment for the gateway, e.g. "MALLOC_ARENA_MAX=1" (comma-separated K=V)
GATEWAY_ENV = dict(kv.split("=", 1) for kv in os.environ.get("SIDECAR_ENV", "").split(",") if "=" in kv)
BINS = [tuple(kv.split("=", 1)) for kv in os.environ.get("SIDECAR_BINS", "").split(",") if "=" in kv] \
    or [("", bench.BIN)]
FLOOR = os.environ.get("SIDECAR_FLOOR", "1") != "0"
PIPELINE_NAMES = [p for p in os.environ.get("SIDECAR_PIPELINES", "passthrough,sidecar").split(",") if p]
LOAD = ["--rate", "10000", "--connections", "1", "--items-per-request", "100",
        "--attributes", "8", "--services", "5", "--pool", "64"]

PIPELINES = {
    "passthrough": (
        lambda s: f'  otlp/sink: {{ endpoint: "127.0.0.1:{s.grpc}", tls: {{ insecure: true }}, compression: none }}',
        "    traces: { receivers: [otlp], processors: [batch], exporters: [otlp/sink] }",
        "",
        {},
    ),
    "sidecar": (
        lambda s: f'  otlphttp/gateway: {{ endpoint: "http://127.0.0.1:{s.http}", compression: none }}',
        "    traces: { receivers: [otlp], processors: [memory_limiter, resource, batch], exporters: [otlphttp/gateway] }",
        """  memory_limiter: { check_interval: 1s, limit_mib: 60, spike_limit_mib: 15 }
  resource:
    attributes:
      - { key: deployment.environment.name, value: staging, action: upsert }
      - { key: service.namespace, value: shop, action: insert }
""",
        # the example's container environment
        {"_RJEM_MALLOC_CONF": "tcache:false,dirty_decay_ms:1000"},
    ),
}


def config_text(name, exporters_yaml, pipelines_yaml, processors_yaml, ports):
    grpc, http, health, metrics = ports
    # as helm/examples/sidecar.yaml: admission budgets below the memory_limiter's soft limit
    admission = "    admission: { request_limit_mib: 32, waiting_limit_mib: 8 }\n" if "memory_limiter" in processors_yaml else ""
    return f"""receivers:
  otlp:
{admission}    protocols:
      grpc: {{ endpoint: "127.0.0.1:{grpc}" }}
      http: {{ endpoint: "127.0.0.1:{http}" }}
processors:
  batch: {{ timeout: 200ms, send_batch_size: 8192 }}
{processors_yaml}exporters:
{exporters_yaml}
extensions:
  health_check: {{ endpoint: "127.0.0.1:{health}" }}
service:
  extensions: [health_check]
  telemetry:
    metrics: {{ address: "127.0.0.1:{metrics}" }}
    logs: {{ level: warn }}
  pipelines:
{pipelines_yaml}
"""


def cold_copy(src, dst):
    """Copies the gateway binary to `dst` and drops the copy's pages from the page cache."""
    import shutil
    shutil.copy2(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return dst


class Gw:
    def __init__(self, name, text_fn, workers, binary, env=None):
        self.grpc, self.http, self.health, self.metrics = (bench.free_port() for _ in range(4))
        self.config = os.path.join(bench.OUT, f"{name}.yaml")
        with open(self.config, "w") as f:
            f.write(text_fn((self.grpc, self.http, self.health, self.metrics)))
        # tokio reads TOKIO_WORKER_THREADS; in a pod with a CPU limit below one core the
        # runtime already sizes itself to 1 worker (available_parallelism follows cgroup cpu.max)
        extra = dict(GATEWAY_ENV, **(env or {}))
        binary, _, own_env = binary.partition("|")
        extra.update(kv.split("=", 1) for kv in own_env.split(";") if "=" in kv)
        if workers:
            extra["TOKIO_WORKER_THREADS"] = str(workers)
        binary = self.binary = cold_copy(binary, os.path.join(bench.OUT, f"{name}-watchtower"))
        saved = {k: os.environ.get(k) for k in extra}
        os.environ.update(extra)
        try:
            self.proc = bench.spawn(f"{name}-gateway", [binary, "run", "--config", self.config])
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        bench.wait_http(f"http://127.0.0.1:{self.health}/", self.proc)

    def cpu(self):
        return bench.cpu_seconds(self.proc.pid)

    def rss(self):
        return bench.status_kib(self.proc.pid, "VmRSS")

    def rss_split(self):
        return bench.status_kib(self.proc.pid, "RssAnon"), bench.status_kib(self.proc.pid, "RssFile")

    def stop(self):
        bench.stop(self.proc, grace=10)
        os.remove(self.binary)


def under_load(name, endpoint, protocol, cpu_seconds, sample):
    """Runs the testbed load against `endpoint` for DURATION; after the first second
    (connection set-up) measures `cpu_seconds()` over the window as % of one core and calls
    `sample()` every 0.5 s. Returns (cpu %, samples, loadgen report)."""
    out = os.path.join(bench.OUT, f"{name}-loadgen.json")
    p = bench.spawn(f"{name}-loadgen", [bench.TOOLS_BIN, "loadgen", "--endpoint", endpoint,
                                        "--protocol", protocol, "--signal", "traces",
                                        "--duration", str(DURATION), "--json", out, "--quiet"] + LOAD)
    time.sleep(1.0)
    c0, t0 = cpu_seconds(), time.monotonic()
    samples = []
    while p.poll() is None and time.monotonic() - t0 < DURATION - 1.5:
        samples.append(sample())
        time.sleep(0.5)
    cpu = 100.0 * (cpu_seconds() - c0) / (time.monotonic() - t0)
    return cpu, samples, bench.finish_loadgen(p, out, DURATION)


def measure(pipeline, protocol, workers, rnd, build=("", None)):
    label, binary = build
    name = f"sidecar-{pipeline}-{protocol}-w{workers or 'auto'}-{rnd}" + (f"-{label}" if label else "")
    exp, pipes, procs, env = PIPELINES[pipeline]
    sink = bench.Sink(f"{name}-sink")
    try:
        gw = Gw(name, lambda ports: config_text(name, exp(sink), pipes, procs, ports), workers, binary or bench.BIN, env)
        try:
            # idle: nothing sent
            time.sleep(1.0)
            c0, t0 = gw.cpu(), time.monotonic()
            time.sleep(IDLE)
            idle_cpu = 100.0 * (gw.cpu() - c0) / (time.monotonic() - t0)
            idle_rss = gw.rss()
            idle_split = gw.rss_split()
            endpoint = f"127.0.0.1:{gw.grpc}" if protocol == "grpc" else f"http://127.0.0.1:{gw.http}"
            cpu, sampled, rep = under_load(name, endpoint, protocol, gw.cpu,
                                           lambda: (gw.rss(), gw.rss_split()))
            samples, split = [r for r, _ in sampled], [sp for _, sp in sampled]
            got = bench.wait_delivered([sink], "traces", rep["items"]["accepted"])
            idle_anon, idle_file = idle_split
            return {
                "build": label, "pipeline": pipeline, "protocol": protocol, "round": rnd,
                "workers": workers or os.cpu_count(),
                "spans_per_s": round(rep["items_per_s"]["accepted"]),
                "cpu_percent_of_core": round(cpu, 2),
                "avg_rss_mib": bench.mib(sum(samples) / len(samples)) if samples else None,
                "avg_rss_anon_mib": bench.mib(sum(a for a, _ in split) / len(split)) if split else None,
                "avg_rss_file_mib": bench.mib(sum(f for _, f in split) / len(split)) if split else None,
                "peak_rss_mib": bench.mib(bench.status_kib(gw.proc.pid, "VmHWM")),
                "idle_cpu_percent": round(idle_cpu, 3),
                "idle_rss_mib": bench.mib(idle_rss),
                "idle_rss_anon_mib": bench.mib(idle_anon),
                "idle_rss_file_mib": bench.mib(idle_file),
                "lost": rep["items"]["accepted"] - got[0],
                "refused_requests": rep["requests"]["refused"],
            }
        finally:
            gw.stop()
    finally:
        sink.stop()


def wait_port(port, proc, timeout=10.0):
    import socket
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def measure_floor(protocol, rnd):
    """`watchtower-bench floor` under the same load: CPU and RSS of the libraries alone."""
    name = f"sidecar-floor-{protocol}-{rnd}"
    port = bench.free_port()
    proc = bench.spawn(f"{name}-floor", [bench.TOOLS_BIN, "floor", "--listen", f"127.0.0.1:{port}"])
    try:
        wait_port(port, proc)
        endpoint = f"127.0.0.1:{port}" if protocol == "grpc" else f"http://127.0.0.1:{port}"
        cpu, samples, rep = under_load(name, endpoint, protocol, lambda: bench.cpu_seconds(proc.pid),
                                       lambda: bench.status_kib(proc.pid, "VmRSS"))
        return {
            "build": "floor", "pipeline": "floor", "protocol": protocol, "round": rnd, "workers": 1,
            "spans_per_s": round(rep["items_per_s"]["accepted"]),
            "cpu_percent_of_core": round(cpu, 2),
            "avg_rss_mib": bench.mib(sum(samples) / len(samples)) if samples else None,
            "avg_rss_anon_mib": bench.mib(bench.status_kib(proc.pid, "RssAnon")),
            "avg_rss_file_mib": bench.mib(bench.status_kib(proc.pid, "RssFile")),
            "peak_rss_mib": bench.mib(bench.status_kib(proc.pid, "VmHWM")),
            "idle_cpu_percent": None, "idle_rss_mib": None, "idle_rss_anon_mib": None,
            "idle_rss_file_mib": None, "lost": None,
            "refused_requests": rep["requests"]["refused"],
        }
    finally:
        bench.stop(proc)


def symbol_order_match(binary):
    """(listed, found): how many names of build/symbol-order.txt the binary defines. The names
    are mangled with the crate's metadata hash, which changes with any dependency or feature
    change: a stale list links the steady-state code apart and costs resident memory."""
    path = os.path.join(bench.ROOT, "build", "symbol-order.txt")
    try:
        listed = {line.strip() for line in open(path) if line.strip()}
        out = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    defined = {line.split()[-1] for line in out.splitlines() if line.split()}
    return len(listed), len(listed & defined)


def main():
    os.makedirs(bench.LOGS, exist_ok=True)
    for label, binary in BINS:
        m = symbol_order_match(binary.split("|")[0])
        if m and m[1] < 0.95 * m[0]:
            bench.log(f"WARNING: {label}: only {m[1]} of the {m[0]} names in build/symbol-order.txt are in "
                      f"this binary; the list is stale for it (run `make symbol-order`, then rebuild)")
    rows = []
    for rnd in range(ROUNDS):
        for pipeline in PIPELINE_NAMES:
            for workers in WORKERS:
                for protocol in ("grpc", "http"):
                    for build in BINS:
                        bench.log(f"{pipeline} over {protocol}, workers {workers or 'auto'} {build[0]} (round {rnd + 1})")
                        r = measure(pipeline, protocol, workers, rnd + 1, build)
                        bench.log(json.dumps(r))
                        rows.append(r)
        if FLOOR:
            for protocol in ("grpc", "http"):
                bench.log(f"floor over {protocol} (round {rnd + 1})")
                r = measure_floor(protocol, rnd + 1)
                bench.log(json.dumps(r))
                rows.append(r)
    tag = os.environ.get("SIDECAR_TAG", "sidecar")
    with open(os.path.join(bench.OUT, f"{tag}.json"), "w") as f:
        json.dump({"duration_s": DURATION, "idle_s": IDLE, "load": LOAD, "env": GATEWAY_ENV,
                   "builds": [{"label": lb, "path": p} for lb, p in BINS], "rows": rows}, f, indent=2)
    lines = ["| build | pipeline | workers | protocol | spans/s | CPU % of a core | avg RSS MiB (anon + file) | peak RSS MiB | idle CPU % | idle RSS MiB (anon + file) | lost |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    def v(x):
        return "-" if x is None else x

    for r in rows:
        idle = "-" if r["idle_rss_mib"] is None else \
            f"{r['idle_rss_mib']} ({r['idle_rss_anon_mib']} + {r['idle_rss_file_mib']})"
        lines.append(f"| {r['build'] or '-'} | {r['pipeline']} | {r['workers']} | {r['protocol']} | {r['spans_per_s']} | {r['cpu_percent_of_core']} | "
                     f"{r['avg_rss_mib']} ({r['avg_rss_anon_mib']} + {r['avg_rss_file_mib']}) | {r['peak_rss_mib']} | {v(r['idle_cpu_percent'])} | "
                     f"{idle} | {v(r['lost'])} |")
    with open(os.path.join(bench.OUT, f"{tag}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    try:
        main()
    finally:
        for c in list(bench.CHILDREN):
            bench.stop(c)

#!/usr/bin/env python3
"""Regenerates build/symbol-order.txt, the link order of the code the steady state runs
(`make symbol-order`; needs valgrind and a release build; Python 3 standard library only).

Why: the kernel maps an executable's code in 64 KiB windows around each page that runs
("fault-around"), so the resident memory of a running gateway is set by how many windows its
steady-state code is spread over, not by how much code it runs. Measured on the release build
before this file existed: the request path ran 1,058 functions holding 1.1 MiB of code, spread
over 677 pages and 115 windows, so 7.4 MiB of the executable stayed resident. Linked first and
together (lld's `--symbol-ordering-file`, passed by build.rs for release builds), the same code
spans about 20 windows.

How: the release gateway runs under callgrind with instrumentation off while it starts, then
on from the moment it is ready (first connections included) while `loadgen` sends traces, metrics and logs over OTLP/gRPC and OTLP/HTTP through a
pipeline that uses the components a sidecar and a gateway run on the request path
(memory_limiter, resource, batch, the otlp and otlphttp exporters). Every function of the
executable that ran is written, most expensive first, as its mangled symbol name. Names that a
later change removes or renames are skipped by the linker (`--no-warn-symbol-ordering`): a
stale file costs resident memory, never correctness. Regenerate it after large changes to the
request path and after any change of dependencies or their features (the mangled names carry
each crate's metadata hash, so such a change renames every function: `benches/sidecar.py` warns
when fewer than 95% of the names are found in the binary it measures), and compare with
`make bench-sidecar`.

Environment: BENCH_BIN (the release gateway), SYMBOL_ORDER_SECONDS (load per protocol and
signal, default 4), SYMBOL_ORDER_WORKERS (tokio worker threads of each profiled run, default
"1,0": a sidecar's one thread, then the default), SYMBOL_ORDER_OUT (default build/symbol-order.txt).
"""

import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import run as bench  # noqa: E402  (the shared process helpers of `make bench`)

SECONDS = float(os.environ.get("SYMBOL_ORDER_SECONDS", "4"))
# tokio worker threads of each profiled run, in order: 1 = a sidecar (current-thread
# scheduler), 0 = the default (one worker per CPU)
WORKERS = [int(w) for w in os.environ.get("SYMBOL_ORDER_WORKERS", "1,0").split(",") if w.strip()]
OUT = os.environ.get("SYMBOL_ORDER_OUT", os.path.join(bench.ROOT, "build/symbol-order.txt"))


def config(ports, sink):
    grpc, http, health = ports
    return f"""receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:{grpc}" }}
      http: {{ endpoint: "127.0.0.1:{http}" }}
processors:
  memory_limiter: {{ check_interval: 1s, limit_mib: 200, spike_limit_mib: 50 }}
  resource:
    attributes:
      - {{ key: deployment.environment.name, value: staging, action: upsert }}
  batch: {{ timeout: 200ms, send_batch_size: 8192 }}
exporters:
  otlp/sink: {{ endpoint: "127.0.0.1:{sink.grpc}", tls: {{ insecure: true }}, compression: none }}
  otlphttp/sink: {{ endpoint: "http://127.0.0.1:{sink.http}", compression: none }}
extensions:
  health_check: {{ endpoint: "127.0.0.1:{health}" }}
service:
  extensions: [health_check]
  telemetry:
    logs: {{ level: warn }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [memory_limiter, batch], exporters: [otlp/sink] }}
    traces/sidecar: {{ receivers: [otlp], processors: [memory_limiter, resource, batch], exporters: [otlphttp/sink] }}
    metrics: {{ receivers: [otlp], processors: [memory_limiter, batch], exporters: [otlp/sink] }}
    logs: {{ receivers: [otlp], processors: [memory_limiter, batch], exporters: [otlphttp/sink] }}
"""


def executed_functions(path, obj):
    """Mangled names of `obj`'s functions in a callgrind profile, by self cost (descending)."""
    names, objs = {}, {}
    cost = collections.Counter()

    def resolve(value, table):
        m = re.match(r"\((\d+)\)(?: (.*))?$", value)
        if not m:
            return value
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1))

    ob = fn = cob = None
    after_calls = False
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("ob="):
                ob, cob = resolve(line[3:], objs), None
            elif line.startswith("fn="):
                fn, cob = (ob, resolve(line[3:], names)), None
                cost[fn] += 0
            elif line.startswith("cob="):
                cob = resolve(line[4:], objs)
            elif line.startswith("cfn="):
                cost[(cob or ob, resolve(line[4:], names))] += 0
            elif line.startswith("calls="):
                after_calls = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if after_calls:  # the cost line of a call: inclusive, not this function's
                    after_calls, cob = False, None
                elif fn is not None:
                    parts = line.split()
                    if len(parts) >= 2 and parts[1].isdigit():
                        cost[fn] += int(parts[1])
    ranked = sorted(((c, f[1]) for f, c in cost.items() if f[0] == obj and f[1]), key=lambda x: -x[0])
    out, seen = [], set()
    for _, name in ranked:
        name = re.sub(r"'\d+$", "", name)  # callgrind's recursion-depth suffix
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def profile(workers):
    """Runs the gateway under callgrind with `workers` tokio threads (0: the default) while
    loadgen sends; returns the executable's functions that ran, most expensive first."""
    work = tempfile.mkdtemp(prefix="symbol-order-")
    # a private copy: callgrind names objects by path, and the sink must not share it
    exe = os.path.join(work, "watchtower")
    shutil.copy2(bench.BIN, exe)
    sink = bench.Sink("symbol-order-sink")
    ports = (bench.free_port(), bench.free_port(), bench.free_port())
    cfg = os.path.join(work, "gateway.yaml")
    with open(cfg, "w") as f:
        f.write(config(ports, sink))
    out_file = os.path.join(work, "callgrind.out")
    saved = os.environ.pop("TOKIO_WORKER_THREADS", None)
    if workers:
        os.environ["TOKIO_WORKER_THREADS"] = str(workers)
    try:
        gw = bench.spawn(f"symbol-order-gateway-w{workers}", [
            "valgrind", "--tool=callgrind", "--demangle=no", "--instr-atstart=no",
            f"--callgrind-out-file={out_file}", exe, "run", "--config", cfg])
    finally:
        os.environ.pop("TOKIO_WORKER_THREADS", None)
        if saved is not None:
            os.environ["TOKIO_WORKER_THREADS"] = saved
    try:
        bench.wait_http(f"http://127.0.0.1:{ports[2]}/", gw, timeout=120)
        load = ["--rate", "1000", "--connections", "1", "--items-per-request", "100",
                "--attributes", "8", "--services", "5", "--pool", "64", "--quiet"]
        # on from the moment the gateway is ready: the first connections and first-use set-up
        # (accepting a client, connecting to a destination) run once, after the start-up
        # pages are released, and each such function left out of the list would map a 64 KiB
        # window of start-up code back in around it
        subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, stdout=subprocess.DEVNULL)
        for proto, endpoint in (("grpc", f"127.0.0.1:{ports[0]}"), ("http", f"http://127.0.0.1:{ports[1]}")):
            subprocess.run([bench.TOOLS_BIN, "loadgen", "--endpoint", endpoint, "--protocol", proto,
                            "--signal", "traces", "--duration", "2"] + load, check=True,
                           stdout=subprocess.DEVNULL)
        for sig in ("traces", "metrics", "logs"):
            for proto, endpoint in (("grpc", f"127.0.0.1:{ports[0]}"), ("http", f"http://127.0.0.1:{ports[1]}")):
                bench.log(f"{sig} over {proto}, {workers or 'default'} worker threads")
                subprocess.run([bench.TOOLS_BIN, "loadgen", "--endpoint", endpoint, "--protocol", proto,
                                "--signal", sig, "--duration", str(SECONDS)] + load, check=True,
                               stdout=subprocess.DEVNULL)
        time.sleep(1.0)
        subprocess.run(["callgrind_control", "-d", str(gw.pid)], check=True, stdout=subprocess.DEVNULL)
        time.sleep(1.0)
    finally:
        bench.stop(gw, grace=30)
        sink.stop()
    dumps = sorted(p for p in os.listdir(work) if p.startswith("callgrind.out") and os.path.getsize(os.path.join(work, p)))
    if not dumps:
        sys.exit("symbol_order: callgrind wrote no profile")
    names = []
    for d in dumps:
        for n in executed_functions(os.path.join(work, d), exe):
            if n not in names:
                names.append(n)
    shutil.rmtree(work, ignore_errors=True)
    bench.log(f"{len(names)} functions ran with {workers or 'default'} worker threads")
    return names


def main():
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("symbol_order: needs valgrind (apt-get install -y valgrind)")
    os.makedirs(bench.LOGS, exist_ok=True)
    names = []
    # the sidecar's shape first (one thread: the current-thread scheduler), then a gateway's
    # (worker threads): the second run adds only the code the first did not run
    for workers in WORKERS:
        for n in profile(workers):
            if n not in names:
                names.append(n)
    if len(names) < 200:
        sys.exit(f"symbol_order: only {len(names)} functions ran; is the load reaching the gateway?")
    with open(OUT, "w") as f:
        f.write("\n".join(names) + "\n")
    bench.log(f"{len(names)} functions written to {os.path.relpath(OUT, bench.ROOT)}")


if __name__ == "__main__":
    try:
        main()
    finally:
        for c in list(bench.CHILDREN):
            bench.stop(c)

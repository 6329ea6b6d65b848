# Benchmarks (BENCHMARKS.md). `make bench`: release build, criterion micro-benchmarks (short), then the
# end-to-end scenarios (benches/run.py: sinks, gateway and loadgen as child processes on
# loopback), writing target/bench/results.json and target/bench/results.md. Each step is
# bounded in time; the whole run takes about 5-10 minutes once the release build exists.
.PHONY: bench bench-micro bench-e2e bench-sidecar bench-runs bench-build

# the gateway and the instruments (`watchtower-bench`: loadgen, sink; the benches/tools crate)
bench-build:
	$(CARGO) build --release -p watchtower --bin watchtower -p watchtower-bench --bin watchtower-bench

BENCH_PYTHON ?= python3
BENCH_MICRO_ARGS ?= --warm-up-time 0.5 --measurement-time 1 --noplot

bench: bench-build
	-$(MAKE) bench-micro
	$(MAKE) bench-e2e

bench-micro:
	timeout 240 $(CARGO) bench -p watchtower-bench --bench hot_paths -- $(BENCH_MICRO_ARGS)

bench-e2e:
	timeout 540 $(BENCH_PYTHON) benches/run.py

# Sidecar efficiency (docs/replicas.md): 10k spans/s in 100-span requests over one connection,
# gRPC and OTLP/HTTP side by side, CPU % of a core, RSS and idle cost (~3 minutes).
bench-sidecar: bench-build
	timeout 600 $(BENCH_PYTHON) benches/sidecar.py

# Test runs on the data path (docs/replicas.md): CPU per million spans with no run, 100
# non-matching runs and one matching run.
bench-runs: bench-build
	timeout 300 $(BENCH_PYTHON) benches/runs_stamping.py

# The link order of the steady-state code (build/symbol-order.txt, read by build.rs for release
# builds; docs/ARCHITECTURE.md "Resident memory"): runs the release gateway under valgrind's
# callgrind while loadgen sends every signal over both protocols (~3 minutes).
.PHONY: symbol-order
symbol-order: bench-build
	command -v valgrind >/dev/null || apt-get install -y valgrind
	timeout 900 $(BENCH_PYTHON) benches/symbol_order.py

# Benchmarks (BENCHMARKS.md). `make bench`: release build, criterion micro-benchmarks (short), then the
# end-to-end scenarios (benches/run.py: sinks, gateway and loadgen as child processes on
# loopback), writing target/bench/results.json and target/bench/results.md. Each step is
# bounded in time; the whole run takes about 5-10 minutes once the release build exists.
.PHONY: bench bench-micro bench-e2e

BENCH_PYTHON ?= python3
BENCH_MICRO_ARGS ?= --warm-up-time 0.5 --measurement-time 1 --noplot

bench:
	$(CARGO) build --release --bin watchtower
	-$(MAKE) bench-micro
	$(MAKE) bench-e2e

bench-micro:
	timeout 240 $(CARGO) bench --bench hot_paths -- $(BENCH_MICRO_ARGS)

bench-e2e:
	timeout 540 $(BENCH_PYTHON) benches/run.py

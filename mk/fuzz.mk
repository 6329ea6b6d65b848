# Fuzzing (issue 7 point 8). `make fuzz` runs every cargo-fuzz target for FUZZ_SECONDS each
# (needs a nightly toolchain and cargo-fuzz: `rustup toolchain install nightly` and
# `cargo install cargo-fuzz`). `make fuzz-build` only builds them (what CI may do).
# `make fuzz-smoke` replays the same harnesses on stable (it also runs in `make test`).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= wire json gzip record config prw loki
FUZZ_TOOLCHAIN ?= +nightly

.PHONY: fuzz fuzz-build fuzz-smoke

fuzz-build:
	cd fuzz && $(CARGO) $(FUZZ_TOOLCHAIN) fuzz build

fuzz:
	@command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is not installed: cargo install cargo-fuzz (and a nightly toolchain)"; exit 2; }
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t && \
		$(CARGO) $(FUZZ_TOOLCHAIN) fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

fuzz-smoke:
	$(CARGO) test --test fuzz_harness_smoke

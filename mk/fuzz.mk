# Fuzzing (docs/durable.md "Fuzzing"). `make fuzz` runs every fuzz target for FUZZ_SECONDS each:
# with cargo-fuzz (nightly, AddressSanitizer) when it is installed, otherwise `fuzz-stable`:
# the same libFuzzer targets built by the stable toolchain with SanitizerCoverage (coverage-
# guided, debug assertions and overflow checks on, no ASan). `make fuzz-build` only builds
# them. `make fuzz-smoke` replays the same harnesses without libFuzzer (it runs in `make test`).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= wire json gzip record config prw loki
FUZZ_TOOLCHAIN ?= +nightly
FUZZ_TRIPLE ?= x86_64-unknown-linux-gnu
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks

.PHONY: fuzz fuzz-build fuzz-check fuzz-stable fuzz-stable-build fuzz-smoke

# `make test` type-checks every fuzz target (stable, no instrumentation, nothing run), so a
# change that breaks a target fails CI. fuzz/Cargo.lock pins the dependencies; it is not
# `--locked`, so a dependency added to the main crate only adds its entry (commit it).
fuzz-check:
	cd fuzz && $(CARGO) check --bins

fuzz:
	@if command -v cargo-fuzz >/dev/null; then \
		cd fuzz && for t in $(FUZZ_TARGETS); do mkdir -p corpus/$$t && \
			$(CARGO) $(FUZZ_TOOLCHAIN) fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
		done; \
	else $(MAKE) fuzz-stable; fi

fuzz-build:
	@if command -v cargo-fuzz >/dev/null; then cd fuzz && $(CARGO) $(FUZZ_TOOLCHAIN) fuzz build; \
	else $(MAKE) fuzz-stable-build; fi

fuzz-stable-build:
	cd fuzz && RUSTFLAGS="$(FUZZ_RUSTFLAGS)" CARGO_TARGET_DIR=target/stable \
		$(CARGO) build --release --target $(FUZZ_TRIPLE) --bins

fuzz-stable: fuzz-stable-build
	cd fuzz && for t in $(FUZZ_TARGETS); do mkdir -p corpus/$$t artifacts/$$t && \
		./target/stable/$(FUZZ_TRIPLE)/release/$$t corpus/$$t -artifact_prefix=artifacts/$$t/ \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

fuzz-smoke:
	$(CARGO) test --test fuzz_harness_smoke

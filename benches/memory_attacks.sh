#!/usr/bin/env bash
# Memory attack figures (docs/memory.md): runs tests/memory_attacks.rs against two gateway
# binaries, alternating A and B, and prints each attack's peak and settled RSS, the time
# the queues took to drain and the time until a normal request was accepted again.
#
#   benches/memory_attacks.sh BEFORE_BIN AFTER_BIN [SCALE] [ROUNDS]
#
# BEFORE is measured with WATCHTOWER_ATTACK_FIGURES_ONLY=1 (its assertions are expected to
# fail); "accept_again_ms=never" means still refused 120 s after the queues drained.
set -euo pipefail
before=${1:?before binary}
after=${2:?after binary}
scale=${3:-4}
rounds=${4:-1}
filter='test(large_bodies) | test(idle_http2) | test(idle_grpc)'
cargo nextest run --test memory_attacks --no-run >/dev/null
for r in $(seq "$rounds"); do
  for side in before after; do
    bin=$before; figures=1
    [ "$side" = after ] && bin=$after && figures=0
    WATCHTOWER_BIN=$bin WATCHTOWER_ATTACK_SCALE=$scale WATCHTOWER_ATTACK_FIGURES_ONLY=$figures \
      cargo nextest run --test memory_attacks --no-capture --no-fail-fast -E "$filter" 2>&1 \
      | grep -E '^ATTACK' | sed "s/^/round=$r side=$side scale=$scale /" || true
  done
done

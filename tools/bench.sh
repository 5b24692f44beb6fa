#!/usr/bin/env bash
# Throughput and latency benchmark of the local onebox (3 replicas per partition): runs
# pegasus_bench (N concurrent clients, writes then reads) against table temp, and reports the
# replica servers' CPU time per operation (summed over the three processes) and their RSS.
# Figures are reported, never asserted.
# Usage: tools/bench.sh [--clients N] [--ops N] [--value-size B]   (defaults: 64, 200000, 1024)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pegasus-rs/target}
cd "$ROOT"
cargo build --release --bin pegasus_bench --bin pegasus_server >/dev/null
META="127.0.0.1:$(( ${META_PORT_BASE:-34600} + 1 ))"
if ! "$CARGO_TARGET_DIR/release/pegasus_server" probe "$META" temp >/dev/null 2>&1; then
    ./run.sh start_onebox
fi
ONEBOX=${ONEBOX_DIR:-$ROOT/onebox}
pids=$(cat "$ONEBOX"/replica*/pegasus_server.pid 2>/dev/null | paste -sd, -)
args=("$@")
has() { local a; for a in "${args[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
has --clients || args+=(--clients 64)
has --ops || args+=(--ops 200000)
has --value-size || args+=(--value-size 1024)
exec "$CARGO_TARGET_DIR/release/pegasus_bench" "$META" temp "${args[@]}" --pids "$pids"

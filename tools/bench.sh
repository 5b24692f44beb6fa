#!/usr/bin/env bash
# Throughput and latency benchmark of the local onebox (3 replicas per partition): runs
# pegasus_bench (N concurrent clients, writes then reads) against table temp. Figures are
# reported, never asserted. Usage: tools/bench.sh [--clients N] [--ops N] [--value-size B]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pegasus-rs/target}
cd "$ROOT"
cargo build --release --bin pegasus_bench --bin pegasus_server >/dev/null
META="127.0.0.1:$(( ${META_PORT_BASE:-34600} + 1 ))"
if ! "$CARGO_TARGET_DIR/release/pegasus_server" probe "$META" temp >/dev/null 2>&1; then
    ./run.sh start_onebox
fi
"$CARGO_TARGET_DIR/release/pegasus_bench" "$META" temp "$@"

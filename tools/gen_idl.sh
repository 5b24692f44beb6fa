#!/usr/bin/env bash
# Regenerates the Rust thrift bindings in src/idl/ from idl/*.thrift with the
# Apache Thrift 0.17 compiler, then applies mechanical fix-ups:
#   * `use crate::<m>;` -> `use crate::idl::<m>;` (bindings live under crate::idl)
#   * `dsn.layer2` (file name with a dot) -> module `dsn_layer2`
#   * list pre-allocation capped so a hostile list size cannot reserve huge memory
#   * a one-line provenance header.
# idl/dsn.thrift is skipped: src/idl/dsn.rs is hand-written (placeholder types).
# Usage: tools/gen_idl.sh   (env THRIFT=/path/to/thrift to override the compiler)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
THRIFT="${THRIFT:-thrift}"
OUT_DIR="$ROOT/src/idl"

if ! "$THRIFT" --version | grep -q '0\.17\.0'; then
    echo "gen_idl.sh: need Apache Thrift 0.17.0, found: $("$THRIFT" --version)" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$OUT_DIR"

cd "$ROOT"
for src in idl/*.thrift; do
    name="$(basename "$src" .thrift)"
    [ "$name" = "dsn" ] && continue
    mod="${name//./_}"
    "$THRIFT" --gen rs -out "$tmp" "$src"
    gen="$tmp/$name.rs"
    {
        echo "// Generated from idl/$name.thrift by tools/gen_idl.sh; do not edit."
        sed -E \
            -e 's/^use crate::dsn\.layer2;/use crate::idl::dsn_layer2;/' \
            -e 's/^use crate::([A-Za-z0-9_]+);/use crate::idl::\1;/' \
            -e 's/dsn\.layer2::/dsn_layer2::/g' \
            -e 's/Vec::with_capacity\((list_ident|set_ident)\.size as usize\)/Vec::with_capacity(\1.size.clamp(0, 64) as usize)/g' \
            "$gen"
    } > "$OUT_DIR/$mod.rs"
    echo "generated src/idl/$mod.rs"
done

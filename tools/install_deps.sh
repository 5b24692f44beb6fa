#!/usr/bin/env bash
# Installs what building pegasus-rs and running its tests need on a Debian
# machine. Safe to run again: it checks first and installs only what is
# missing, so it returns in a second or two when everything is present.
#
#   tools/install_deps.sh           build deps + compat test deps
#   tools/install_deps.sh --build   only what `cargo build` needs
#   tools/install_deps.sh --zookeeper  only Debian's zookeeper (and a JRE), for
#                                   onebox clusters with several meta servers
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_ONLY=0
ZK_ONLY=0
case "${1:-}" in
    "") ;;
    --build) BUILD_ONLY=1 ;;
    --zookeeper) ZK_ONLY=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install_deps.sh: unknown option $1" >&2; exit 1 ;;
esac

log() { echo "install_deps: $*"; }

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
want_pkg() {
    pkg_installed "$1" || missing+=("$1")
}

if [ $ZK_ONLY -eq 1 ]; then
    # The server runs from the package's jars (run.sh starts it with java).
    want_pkg zookeeper
else
    # The RocksDB crate compiles C++ and generates its bindings with bindgen,
    # which loads libclang.
    if ! command -v c++ >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
        want_pkg build-essential
    fi
    want_pkg clang
    want_pkg libclang-dev
    if [ $BUILD_ONLY -eq 0 ] && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        want_pkg python3-venv
    fi
    # Java compat tests: a JDK and Maven.
    if [ $BUILD_ONLY -eq 0 ] && ! command -v javac >/dev/null 2>&1; then
        want_pkg default-jdk-headless
    fi
    if [ $BUILD_ONLY -eq 0 ] && ! command -v mvn >/dev/null 2>&1; then
        want_pkg maven
    fi
    # Clusters with several metas keep their state in ZooKeeper: installed here, before the
    # tests, rather than by run.sh in the middle of a run.
    if [ $BUILD_ONLY -eq 0 ]; then
        want_pkg zookeeper
    fi
fi

if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install_deps: please install: ${missing[*]} (no apt-get here)" >&2
        exit 1
    fi
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "install_deps: need root to install ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    log "installing ${missing[*]}"
    # A mirror or name lookup that fails for a moment should not fail a CI run: three tries.
    for try in 1 2 3; do
        if "${sudo[@]}" apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
                --no-install-recommends "${missing[@]}"; then
            break
        fi
        if [ "$try" -eq 3 ]; then
            echo "install_deps: apt-get could not install ${missing[*]}" >&2
            exit 1
        fi
        log "apt-get failed (try $try of 3); trying again in $((try * 15)) s"
        sleep $((try * 15))
    done
fi

if [ $ZK_ONLY -eq 1 ]; then
    log "ok"
    exit 0
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "install_deps: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi

[ $BUILD_ONLY -eq 1 ] && exit 0

# Python compat tests: their own venv with pinned packages.
if [ -f "$ROOT/compat-tests/python/setup.sh" ]; then
    bash "$ROOT/compat-tests/python/setup.sh"
fi

# The HDFS backup test: Hadoop's MiniDFSCluster, its jars from Maven Central into the project's
# Maven cache (reused by later runs).
if [ -f "$ROOT/tools/minidfs/pom.xml" ]; then
    log "resolving the MiniDFSCluster launcher (tools/minidfs)"
    "$ROOT/tools/minidfs.sh" build
fi

# Go compat tests: `make go-test` builds them against the upstream Go client of the shared
# clients folder (the module proxy refuses it); `go test` fetches the other modules itself.
if [ -f "$ROOT/compat-tests/go/go.mod" ] && ! command -v go >/dev/null 2>&1; then
    echo "install_deps: go not found; the Go compat tests cannot run" >&2
    exit 1
fi
log "ok"

#!/usr/bin/env bash
# Creates ./.venv and installs the pinned pypegasus3 test dependencies (idempotent; used by CI).
set -euo pipefail
cd "$(dirname "$0")"
here="$(pwd)"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
# Importing pypegasus writes pegasus.log into the cwd, so check it from a scratch directory.
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
   || ! (cd "$(mktemp -d)" && "$here/.venv/bin/python" -c 'import pypegasus.pgclient, pytest') >/dev/null 2>&1; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$want" > "$stamp"
fi

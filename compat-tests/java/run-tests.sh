#!/usr/bin/env bash
# run-tests.sh: runs the Java-client compat suite (`make java-test`). Installs the unmodified
# upstream Java client from the shared clients folder into a local Maven repository outside the
# repo (reused between runs), then runs `mvn -q test`, which starts and stops its own onebox,
# and prints the suite's summary.
#
# Environment:
#   SHARED_CLIENTS   folder holding java/pegasus-client-2.6.0-SNAPSHOT.{jar,pom}; relative paths are
#                    taken from the repository root (default ../shared/clients)
#   M2_REPO          the local Maven repository (default $HOME/.cache/pegasus-rs/m2)
#   MVN              the Maven command (default mvn)
#   JAVA_TEST_ARGS   extra Maven arguments, e.g. "-Dtest=T02MultiTest"
#   PEGASUS_SERVER_BIN, PEGASUS_KEEP_ONEBOX=1, CARGO_TARGET_DIR: passed to the suite
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLIENT_VERSION=2.6.0-SNAPSHOT
SHARED_CLIENTS=${SHARED_CLIENTS:-../shared/clients}
case "$SHARED_CLIENTS" in
    /*) shared=$SHARED_CLIENTS ;;
    *) shared=$ROOT/$SHARED_CLIENTS ;;
esac
shared=$(realpath -m "$shared")
M2_REPO=${M2_REPO:-$HOME/.cache/pegasus-rs/m2}
MVN=${MVN:-mvn}
JAVA_TEST_ARGS=${JAVA_TEST_ARGS:-}

fail() {
    echo "== Java client compat tests: FAILED: $*" >&2
    exit 1
}

jar=$shared/java/pegasus-client-$CLIENT_VERSION.jar
pom=$shared/java/pegasus-client-$CLIENT_VERSION.pom
[ -f "$jar" ] && [ -f "$pom" ] ||
    fail "no upstream Java client at $shared/java (pegasus-client-$CLIENT_VERSION.jar and .pom); set SHARED_CLIENTS to the folder holding java/"
command -v java >/dev/null || fail "java is not on the PATH"
command -v "$MVN" >/dev/null || fail "$MVN (Maven) is not on the PATH"

mkdir -p "$M2_REPO"
installed=$M2_REPO/org/apache/pegasus/pegasus-client/$CLIENT_VERSION
if cmp -s "$jar" "$installed/pegasus-client-$CLIENT_VERSION.jar" &&
    cmp -s "$pom" "$installed/pegasus-client-$CLIENT_VERSION.pom"; then
    echo "== pegasus-client $CLIENT_VERSION already in $M2_REPO"
else
    echo "== installing $jar into $M2_REPO"
    (cd "$HERE" && "$MVN" -q -B -Dstyle.color=never -Dmaven.repo.local="$M2_REPO" install:install-file \
        -Dfile="$jar" -DpomFile="$pom") || fail "mvn install:install-file failed"
fi

echo "== Java client compat tests (pegasus-client $CLIENT_VERSION from $shared/java)"
rm -f "$HERE/target/rscompat-logs/summary.txt"
rc=0
# shellcheck disable=SC2086 # JAVA_TEST_ARGS is a list of arguments
(cd "$HERE" && "$MVN" -q -B -Dstyle.color=never -Dmaven.repo.local="$M2_REPO" test $JAVA_TEST_ARGS) || rc=$?
if [ -f "$HERE/target/rscompat-logs/summary.txt" ]; then
    cat "$HERE/target/rscompat-logs/summary.txt"
fi
echo "== logs: $HERE/target/rscompat-logs (suite.log, run_sh.log, onebox/), $HERE/target/surefire-reports"
[ $rc -eq 0 ] || fail "mvn test exited $rc"
echo "== Java client compat tests: passed"

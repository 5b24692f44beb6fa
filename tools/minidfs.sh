#!/usr/bin/env bash
# A real HDFS on loopback for the HDFS block-service test: builds tools/minidfs (Hadoop's
# MiniDFSCluster, jars from Maven Central into $M2_REPO) and runs one NameNode and one DataNode
# in the foreground, printing "READY <rpc port>" once they serve; also lists and reads files
# through Hadoop's own client, so a test checks what was stored without our HDFS client.
#   tools/minidfs.sh build              resolve and compile only
#   tools/minidfs.sh run <port> <dir>   run, keeping its data under <dir>
#   tools/minidfs.sh ls <uri> <path>    "<relative path> <size>" per file, recursively
#   tools/minidfs.sh cat <uri> <path>   one file to stdout
#   tools/minidfs.sh put <uri> <path>   replace one file with stdin
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
M2_REPO=${M2_REPO:-$HOME/.cache/pegasus-rs/m2}
MVN=${MVN:-mvn}
proj="$here/minidfs"

build() {
    if [ ! -f "$proj/target/classpath.txt" ] || [ ! -d "$proj/target/classes/pegasusrs" ] \
        || [ "$proj/src/main/java/pegasusrs/MiniDfs.java" -nt "$proj/target/classes/pegasusrs/MiniDfs.class" ]; then
        (cd "$proj" && "$MVN" -q -B -Dmaven.repo.local="$M2_REPO" package \
            dependency:build-classpath -Dmdep.outputFile=target/classpath.txt) >&2
    fi
}

case "${1:-}" in
build) build ;;
run | ls | cat | put)
    [ $# -eq 3 ] || { echo "usage: $0 $1 <port|uri> <dir|path>" >&2; exit 2; }
    build
    [ "$1" = run ] && mkdir -p "$3"
    exec java -Xmx512m -cp "$proj/target/classes:$(cat "$proj/target/classpath.txt")" \
        -Dlog4j.configuration=none pegasusrs.MiniDfs "$@"
    ;;
*) echo "usage: $0 build | run <port> <dir> | ls|cat|put <uri> <path>" >&2; exit 2 ;;
esac

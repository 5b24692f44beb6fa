#!/usr/bin/env bash
# run.sh: start, stop, list and clear a local pegasus-rs cluster ("onebox").
# The subcommands and their flags follow Apache Pegasus's run.sh so that
# existing habits and scripts keep working; `./run.sh help` lists them.
#
# Environment:
#   ONEBOX_DIR           where instance directories live (default: <repo>/onebox)
#   META_PORT_BASE       meta i listens on META_PORT_BASE+i (default 34600)
#   REPLICA_PORT_BASE    replica j listens on REPLICA_PORT_BASE+j (default 34800)
#   ONEBOX_HOST          address put into server_list (default 127.0.0.1)
#   PEGASUS_SERVER_BIN   server binary to run (default: built by cargo)
#   CARGO_TARGET_DIR     cargo's output dir (default ~/.cache/pegasus-rs/target)
#   ONEBOX_WAIT_SECONDS  how long start_onebox waits for readiness (default 60)
#   ONEBOX_SKIP_PROBE    set to 1 to skip the `pegasus_server probe` check
#   ZK_PORT              port of the onebox's ZooKeeper server (default 22181)
#   ONEBOX_ZOOKEEPER     1: use ZooKeeper even with one meta; 0: never (default:
#                        only when start_onebox runs more than one meta)
#   ZK_SESSION_TIMEOUT_MS  the metas' ZooKeeper session timeout (default 10000)

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pegasus-rs/target}
ONEBOX_DIR=${ONEBOX_DIR:-$ROOT/onebox}
META_PORT_BASE=${META_PORT_BASE:-34600}
REPLICA_PORT_BASE=${REPLICA_PORT_BASE:-34800}
ONEBOX_HOST=${ONEBOX_HOST:-127.0.0.1}
ONEBOX_WAIT_SECONDS=${ONEBOX_WAIT_SECONDS:-60}
ONEBOX_SKIP_PROBE=${ONEBOX_SKIP_PROBE:-0}
ZK_PORT=${ZK_PORT:-22181}
ONEBOX_ZOOKEEPER=${ONEBOX_ZOOKEEPER:-}
ZK_SESSION_TIMEOUT_MS=${ZK_SESSION_TIMEOUT_MS:-10000}
CONFIG_TEMPLATE=${CONFIG_TEMPLATE:-$ROOT/conf/config.ini}
CLUSTER_NAME=onebox
STOP_GRACE_SECONDS=10
# Marks a directory as created by this script, so clear_onebox never
# removes a directory it did not make.
MARKER=.pegasus-onebox
PID_FILE=pegasus_server.pid
LOG_FILE=pegasus_server.log

# Make ONEBOX_DIR absolute with symlinks resolved: pid checks compare it
# with the working directory the kernel reports for each process.
ONEBOX_DIR=$(realpath -m -- "$ONEBOX_DIR") || { echo "ERROR: bad ONEBOX_DIR" >&2; exit 1; }

die() {
    echo "ERROR: $*" >&2
    exit 1
}

is_number() {
    [[ "${1:-}" =~ ^[0-9]+$ ]]
}

is_positive() {
    [[ "${1:-}" =~ ^[1-9][0-9]*$ ]]
}

for var in META_PORT_BASE REPLICA_PORT_BASE ONEBOX_WAIT_SECONDS ZK_PORT ZK_SESSION_TIMEOUT_MS; do
    is_positive "${!var}" || die "$var must be a positive number, not \"${!var}\""
done

#####################
## helpers
#####################

# Prints the path of the server binary, building it when none is found.
find_server_bin() {
    if [ -n "${PEGASUS_SERVER_BIN:-}" ]; then
        [ -x "$PEGASUS_SERVER_BIN" ] || die "PEGASUS_SERVER_BIN=$PEGASUS_SERVER_BIN is not an executable file"
        echo "$PEGASUS_SERVER_BIN"
        return
    fi
    local candidate
    for candidate in "$CARGO_TARGET_DIR/release/pegasus_server" "$ROOT/target/release/pegasus_server"; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return
        fi
    done
    echo "INFO: no pegasus_server binary found, building it" >&2
    "$ROOT/tools/install_deps.sh" --build >&2 || die "installing build dependencies failed"
    (cd "$ROOT" && cargo build --release) >&2 || die "cargo build --release failed"
    [ -x "$CARGO_TARGET_DIR/release/pegasus_server" ] || die "build did not produce $CARGO_TARGET_DIR/release/pegasus_server"
    echo "$CARGO_TARGET_DIR/release/pegasus_server"
}

meta_port() { echo $((META_PORT_BASE + $1)); }
replica_port() { echo $((REPLICA_PORT_BASE + $1)); }

# Comma separated host:port list of metas 1..$1.
meta_server_list() {
    local i list=""
    for i in $(seq "$1"); do
        list="${list:+$list,}$ONEBOX_HOST:$(meta_port "$i")"
    done
    echo "$list"
}

# Instance directories of the onebox, metas first, each group in numeric order.
list_instance_dirs() {
    local role
    for role in meta replica; do
        find "$ONEBOX_DIR" -mindepth 1 -maxdepth 1 -type d -name "${role}[0-9]*" 2>/dev/null |
            sed "s|.*/$role||" | grep -E '^[0-9]+$' | sort -n | sed "s|^|$ONEBOX_DIR/$role|"
    done
}

instance_role() { basename "$1" | sed 's/[0-9]*$//'; }

# The RPC port of an instance, read back from its config.ini.
instance_port() {
    local dir=$1 role
    role=$(instance_role "$dir")
    awk -v sec="[apps.$role]" '
        /^[ \t]*\[/ { gsub(/[ \t]/, ""); insec = ($0 == sec); next }
        insec && /^[ \t]*ports[ \t]*=/ { sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t\r]*$/, ""); print; exit }
    ' "$dir/config.ini" 2>/dev/null
}

# Prints the pid of a running instance and succeeds, or fails when the
# instance is not running. A pid is trusted only if that process still
# works in the instance directory (guards against reused pids) and is not
# a zombie.
instance_pid() {
    local dir=$1 pid state cwd
    [ -f "$dir/$PID_FILE" ] || return 1
    pid=$(cat "$dir/$PID_FILE" 2>/dev/null)
    is_number "$pid" || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [ -d "/proc/$pid" ]; then
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
        [ "$state" != "Z" ] || return 1
        cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
        [ "$cwd" = "$dir" ] || return 1
    fi
    echo "$pid"
}

# Succeeds when something accepts TCP connections on host:port.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# Writes an instance's config.ini from the template.
write_instance_config() {
    local dir=$1 mport=$2 rport=$3 metas=$4 app=$5 partitions=$6
    [ -f "$CONFIG_TEMPLATE" ] || die "config template $CONFIG_TEMPLATE not found"
    {
        echo "; Generated by run.sh from $CONFIG_TEMPLATE; start_onebox rewrites it."
        sed -e "s|%{meta.port}|$mport|g" \
            -e "s|%{replica.port}|$rport|g" \
            -e "s|%{meta.server.list}|$metas|g" \
            -e "s|%{cluster.name}|$CLUSTER_NAME|g" \
            -e "s|%{app.name}|$app|g" \
            -e "s|%{partition.count}|$partitions|g" \
            -e "s|%{meta.state.service.type}|$STATE_SERVICE_TYPE|g" \
            -e "s|%{lock.service.type}|$LOCK_SERVICE_TYPE|g" \
            -e "s|%{lock.root}|$LOCK_ROOT|g" \
            -e "s|%{zk.server.list}|$ZK_SERVER_LIST|g" \
            -e "s|%{zk.timeout.ms}|$ZK_SESSION_TIMEOUT_MS|g" \
            "$CONFIG_TEMPLATE"
        # Extra [replication] keys for tests (e.g. PEGASUS_EXTRA_REPLICATION="max_mutation_count_in_prepare_list = 100").
        if [ -n "${PEGASUS_EXTRA_REPLICATION:-}" ]; then
            printf '\n[replication]\n%s\n' "$PEGASUS_EXTRA_REPLICATION"
        fi
    } >"$dir/config.ini.tmp" || die "cannot write $dir/config.ini"
    if grep -nE '^[^;#]*%{' "$dir/config.ini.tmp" >&2; then
        die "$CONFIG_TEMPLATE has a placeholder run.sh does not know (lines above)"
    fi
    mv "$dir/config.ini.tmp" "$dir/config.ini"
}

# Starts one instance in its directory; data then lands in <dir>/data.
start_instance() {
    local dir=$1 bin=$2 role name pid
    role=$(instance_role "$dir")
    name=$(basename "$dir")
    if pid=$(instance_pid "$dir"); then
        echo "INFO: $name is already running (pid $pid)"
        return 1
    fi
    [ -f "$dir/config.ini" ] || die "$dir/config.ini not found; run start_onebox first"
    ln -sfn "$bin" "$dir/pegasus_server"
    (
        cd "$dir" || exit 1
        echo "=== $(date '+%Y-%m-%d %H:%M:%S') starting $name: pegasus_server config.ini -app_list $role" >>"$LOG_FILE"
        # ONEBOX_LAUNCH_WRAPPER (tests): a command that execs its arguments in place, e.g.
        # "nsenter -t <pid> -m --" to run the server in a mount namespace of the test's own.
        # shellcheck disable=SC2086
        nohup ${ONEBOX_LAUNCH_WRAPPER:-} "$dir/pegasus_server" config.ini -app_list "$role" >>"$LOG_FILE" 2>&1 </dev/null &
        echo $! >"$PID_FILE"
    )
    pid=$(cat "$dir/$PID_FILE")
    echo "INFO: started $name (pid $pid, port $(instance_port "$dir"))"
}

# Stops the given instance directories: SIGTERM to all, then SIGKILL to
# those still alive after STOP_GRACE_SECONDS.
stop_instances() {
    local dir pid alive deadline=$((SECONDS + STOP_GRACE_SECONDS))
    local -a dirs=()
    for dir in "$@"; do
        if pid=$(instance_pid "$dir"); then
            kill -TERM "$pid" 2>/dev/null
            dirs+=("$dir")
        else
            rm -f "$dir/$PID_FILE"
        fi
    done
    [ ${#dirs[@]} -gt 0 ] || return 0
    while :; do
        alive=0
        for dir in "${dirs[@]}"; do
            instance_pid "$dir" >/dev/null && alive=1
        done
        [ $alive -eq 1 ] || break
        if [ $SECONDS -ge $deadline ]; then
            for dir in "${dirs[@]}"; do
                if pid=$(instance_pid "$dir"); then
                    echo "WARN: $(basename "$dir") did not stop in ${STOP_GRACE_SECONDS}s, killing pid $pid"
                    kill -KILL "$pid" 2>/dev/null
                fi
            done
            sleep 0.2
            break
        fi
        sleep 0.1
    done
    for dir in "${dirs[@]}"; do
        rm -f "$dir/$PID_FILE"
        echo "INFO: stopped $(basename "$dir")"
    done
}

# Prints the last lines of an instance's log, for failures.
show_log_tail() {
    local f
    for f in "$1/$LOG_FILE" "$1"/data/log/*.log; do
        [ -f "$f" ] && [ ! -L "$f" ] || continue
        echo "----- last lines of $f -----" >&2
        tail -n 20 "$f" >&2 2>/dev/null
    done
    echo "-----" >&2
}

# Fails (after showing its log) if one of the instances has exited.
check_alive() {
    local dir
    for dir in "$@"; do
        if ! instance_pid "$dir" >/dev/null; then
            echo "ERROR: $(basename "$dir") exited" >&2
            show_log_tail "$dir"
            return 1
        fi
    done
}

# Waits until every instance's port accepts TCP connections.
wait_ports() {
    local deadline=$1 dir
    shift
    for dir in "$@"; do
        until port_open 127.0.0.1 "$(instance_port "$dir")"; do
            check_alive "$dir" || return 1
            if [ "$(date +%s)" -ge "$deadline" ]; then
                echo "ERROR: $(basename "$dir") does not accept connections on port $(instance_port "$dir")" >&2
                show_log_tail "$dir"
                return 1
            fi
            sleep 0.2
        done
    done
}

# Waits until the table is fully served. Uses `pegasus_server probe
# <meta list> <table>` when the binary has it: exit 0 means served, 1 (or
# a timeout) means not yet. Exit 2, any other code or a usage message means
# the binary has no probe; then the port check already done plus a short
# sleep has to do.
wait_table() {
    local bin=$1 metas=$2 app=$3 deadline=$4
    shift 4
    local rc out
    if [ "$ONEBOX_SKIP_PROBE" != "1" ]; then
        while :; do
            out=$(timeout 10 "$bin" probe "$metas" "$app" 2>&1 </dev/null)
            rc=$?
            if [ $rc -eq 0 ]; then
                echo "INFO: table $app is served"
                return 0
            fi
            if grep -qi 'usage' <<<"$out" || { [ $rc -ne 1 ] && [ $rc -ne 124 ]; }; then
                break
            fi
            check_alive "$@" || return 1
            if [ "$(date +%s)" -ge "$deadline" ]; then
                echo "ERROR: table $app not fully served after ${ONEBOX_WAIT_SECONDS}s; last probe said:" >&2
                echo "$out" >&2
                return 1
            fi
            sleep 1
        done
    fi
    echo "INFO: no table probe available; waiting 3s for table $app to be assigned"
    sleep 3
    check_alive "$@"
}

# Parses "-m N" / "-r N" (both allowed) into META_ID / REPLICA_ID.
parse_instance_args() {
    local cmd=$1
    shift
    META_ID=0
    REPLICA_ID=0
    SLEEP=1
    while [ $# -gt 0 ]; do
        case "$1" in
            -h|--help) "usage_$cmd"; exit 0 ;;
            -m|--meta_id) META_ID=${2:-}; shift ;;
            -r|--replica_id) REPLICA_ID=${2:-}; shift ;;
            -s|--sleep)
                [ "$cmd" = restart_onebox_instance ] || { echo "ERROR: unknown option \"$1\""; "usage_$cmd"; exit 1; }
                SLEEP=${2:-}; shift ;;
            *) echo "ERROR: unknown option \"$1\""; echo; "usage_$cmd"; exit 1 ;;
        esac
        shift
    done
    is_number "$META_ID" || die "meta id must be a number"
    is_number "$REPLICA_ID" || die "replica id must be a number"
    is_number "$SLEEP" || die "sleep must be a number of seconds"
    if [ "$META_ID" = 0 ] && [ "$REPLICA_ID" = 0 ]; then
        die "no meta_id or replica_id set"
    fi
}

# Fills SELECTED with the chosen instance directories; fails if one does not exist.
select_instance_dirs() {
    SELECTED=()
    if [ "$META_ID" != 0 ]; then
        [ -d "$ONEBOX_DIR/meta$META_ID" ] || die "invalid meta_id $META_ID: $ONEBOX_DIR/meta$META_ID does not exist"
        SELECTED+=("$ONEBOX_DIR/meta$META_ID")
    fi
    if [ "$REPLICA_ID" != 0 ]; then
        [ -d "$ONEBOX_DIR/replica$REPLICA_ID" ] || die "invalid replica_id $REPLICA_ID: $ONEBOX_DIR/replica$REPLICA_ID does not exist"
        SELECTED+=("$ONEBOX_DIR/replica$REPLICA_ID")
    fi
}

# Scale out: start_onebox_instance -r N with N one past the last replica server creates
# replica<N> (port REPLICA_PORT_BASE+N) with replica1's configuration.
add_replica_instance() {
    local n=$1 last=0 dir
    for dir in "$ONEBOX_DIR"/replica*; do
        [ -d "$dir" ] || continue
        local i=${dir##*replica}
        is_number "$i" && [ "$i" -gt "$last" ] && last=$i
    done
    [ "$last" -ge 1 ] && [ "$n" -eq $((last + 1)) ] || return 0
    [ -f "$ONEBOX_DIR/replica1/config.ini" ] || return 0
    mkdir -p "$ONEBOX_DIR/replica$n" || die "cannot create $ONEBOX_DIR/replica$n"
    sed -e "s|^\(\s*ports = \)$(replica_port 1)\s*$|\1$(replica_port "$n")|" \
        "$ONEBOX_DIR/replica1/config.ini" >"$ONEBOX_DIR/replica$n/config.ini" ||
        die "cannot write $ONEBOX_DIR/replica$n/config.ini"
    echo "INFO: added replica$n (port $(replica_port "$n")) to the onebox"
}

#####################
## ZooKeeper (for onebox with several metas)
#####################

ZK_DIR=$ONEBOX_DIR/zookeeper
# Defaults for the embedded store; use_zookeeper switches them.
STATE_SERVICE_TYPE=meta_state_service_simple
LOCK_SERVICE_TYPE=distributed_lock_service_simple
LOCK_ROOT=
ZK_SERVER_LIST=

use_zookeeper() {
    STATE_SERVICE_TYPE=meta_state_service_zookeeper
    LOCK_SERVICE_TYPE=distributed_lock_service_zookeeper
    LOCK_ROOT=/pegasus/$CLUSTER_NAME/lock
    ZK_SERVER_LIST=127.0.0.1:$ZK_PORT
}

# Succeeds when a ZooKeeper server answers "imok" on 127.0.0.1:$1.
zk_ok() {
    local reply
    reply=$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf ruok >&3 && head -c 4 <&3" 2>/dev/null)
    [ "$reply" = imok ]
}

# The java class path of Debian's zookeeper package.
zk_classpath() {
    local cp=/usr/share/java/zookeeper.jar
    # a logger binding, so the server's log is not thrown away
    [ -f /usr/share/java/slf4j-simple.jar ] && cp=$cp:/usr/share/java/slf4j-simple.jar
    echo "$cp"
}

ensure_zookeeper_installed() {
    if [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1; then
        return 0
    fi
    echo "INFO: ZooKeeper is not installed; installing Debian's zookeeper package"
    "$ROOT/tools/install_deps.sh" --zookeeper ||
        die "cannot install ZooKeeper (Debian package 'zookeeper'); install it, or run one meta (-m 1)"
    [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1 ||
        die "the zookeeper package did not provide /usr/share/java/zookeeper.jar and java"
}

# Starts the onebox's ZooKeeper server on 127.0.0.1:$ZK_PORT (data in $ZK_DIR) unless it
# already runs, and waits until it answers.
start_zookeeper() {
    local pid
    if pid=$(instance_pid "$ZK_DIR"); then
        if zk_ok "$ZK_PORT"; then
            echo "INFO: zookeeper is already running (pid $pid, port $ZK_PORT)"
            return 0
        fi
    elif port_open 127.0.0.1 "$ZK_PORT"; then
        die "port $ZK_PORT is in use by another process; set ZK_PORT to a free port for this onebox's ZooKeeper"
    fi
    ensure_zookeeper_installed
    mkdir -p "$ZK_DIR/data" || die "cannot create $ZK_DIR"
    {
        echo "# Generated by run.sh: the onebox's standalone ZooKeeper server."
        echo "tickTime=2000"
        echo "initLimit=10"
        echo "syncLimit=5"
        echo "dataDir=$ZK_DIR/data"
        echo "clientPort=$ZK_PORT"
        echo "clientPortAddress=127.0.0.1"
        echo "maxClientCnxns=0"
        echo "admin.enableServer=false"
        echo "4lw.commands.whitelist=ruok,srvr,stat"
        echo "autopurge.purgeInterval=1"
    } >"$ZK_DIR/zoo.cfg" || die "cannot write $ZK_DIR/zoo.cfg"
    if pid=$(instance_pid "$ZK_DIR"); then
        # started by an earlier run and not answering yet
        wait_zookeeper "$pid" 0 && return 0
        die "zookeeper (pid $pid) does not answer on 127.0.0.1:$ZK_PORT (log: $ZK_DIR/zookeeper.log)"
    fi
    local attempt
    for attempt in 1 2 3; do
        launch_zookeeper || die "cannot start zookeeper in $ZK_DIR"
        pid=$(cat "$ZK_DIR/$PID_FILE")
        echo "INFO: started zookeeper (pid $pid, port $ZK_PORT, data in $ZK_DIR/data, attempt $attempt)"
        wait_zookeeper "$pid" 1 && return 0
        # A server that exits before it answers gets two more tries: the log says why.
        echo "WARNING: zookeeper attempt $attempt failed" >&2
        sleep 2
    done
    zookeeper_diagnostics >&2
    die "zookeeper did not start after 3 attempts (log: $ZK_DIR/zookeeper.log)"
}

# Starts the ZooKeeper JVM as a child of this shell (so its exit status can be
# collected), with its working directory in $ZK_DIR, and records its pid.
launch_zookeeper() {
    local cp
    cp=$(zk_classpath)
    echo "=== $(date '+%Y-%m-%d %H:%M:%S') starting zookeeper on port $ZK_PORT" >>"$ZK_DIR/zookeeper.log" ||
        return 1
    # A small, plain JVM: no hsperfdata files in the shared temp directory, no container
    # probing, one GC thread set.
    (cd "$ZK_DIR" && exec nohup java -Xmx256m -XX:-UsePerfData -XX:-UseContainerSupport \
        -XX:+UseSerialGC -Djava.io.tmpdir="$ZK_DIR" \
        -cp "$cp" -Dzookeeper.log.dir="$ZK_DIR" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZK_DIR/zoo.cfg" \
        >>"$ZK_DIR/zookeeper.log" 2>&1 </dev/null) &
    echo $! >"$ZK_DIR/$PID_FILE"
}

# True when process $1 exists and is not a zombie.
process_running() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
    [ "$state" != "Z" ]
}

# Waits up to 60 s for the ZooKeeper server (pid $1) to answer. $2 = 1 when the
# process is this shell's child: its exit status is then reported.
wait_zookeeper() {
    local pid=$1 child=$2 deadline rc
    deadline=$((SECONDS + 60))
    until zk_ok "$ZK_PORT"; do
        if ! process_running "$pid"; then
            rc=unknown
            if [ "$child" -eq 1 ]; then
                wait "$pid" 2>/dev/null
                rc=$?
                [ "$rc" -gt 128 ] && rc="$rc (signal $(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128))))"
            fi
            sleep 0.5
            {
                echo "ERROR: zookeeper (pid $pid) exited with status $rc before answering; its log:"
                tail -n 30 "$ZK_DIR/zookeeper.log"
                echo "-----"
            } >&2
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "ERROR: zookeeper does not answer on 127.0.0.1:$ZK_PORT after 60s (log: $ZK_DIR/zookeeper.log)" >&2
            kill -KILL "$pid" 2>/dev/null
            return 1
        fi
        sleep 0.3
    done
    return 0
}

# What the machine looks like when ZooKeeper cannot start.
zookeeper_diagnostics() {
    echo "--- java: $(command -v java) $(java -version 2>&1 | head -n 1)"
    echo "--- class path: $(zk_classpath)"
    echo "--- disk: $(df -h "$ZK_DIR" 2>/dev/null | tail -n 1)"
    echo "--- memory: $(free -m 2>/dev/null | awk '/^Mem:/ {print $7 " MiB available"}')"
    echo "--- limits: processes $(ulimit -u), open files $(ulimit -n), virtual memory $(ulimit -v)"
}

stop_zookeeper() {
    [ -d "$ZK_DIR" ] || return 0
    stop_instances "$ZK_DIR"
}

# True when the onebox's metas were configured for ZooKeeper.
onebox_uses_zookeeper() {
    grep -qs '^[[:space:]]*meta_state_service_type[[:space:]]*=[[:space:]]*meta_state_service_zookeeper' "$ONEBOX_DIR"/meta*/config.ini
}

#####################
## subcommands
#####################

usage() {
    cat <<EOF
usage: run.sh <command> [<args>]

Command list:
   help                      print this help
   start_onebox              start a local cluster (onebox)
   stop_onebox               stop the onebox
   list_onebox               list the onebox instances
   clear_onebox              stop the onebox and remove its data
   start_onebox_instance     start one onebox instance
   stop_onebox_instance      stop one onebox instance
   restart_onebox_instance   restart one onebox instance
   start_zk                  start the onebox's ZooKeeper server (data kept)
   stop_zk                   stop the onebox's ZooKeeper server

'run.sh <command> -h' prints the options of a command.
Onebox directory: $ONEBOX_DIR
EOF
}

usage_start_onebox() {
    cat <<EOF
Options for subcommand 'start_onebox':
   -h|--help                   print this help
   -m|--meta_count <num>       meta server count, default 1; more than one
                               starts a ZooKeeper server on ZK_PORT (22181)
                               and elects a leader through it
   -r|--replica_count <num>    replica server count, default 3
   -a|--app_name <str>         table created on first start, default temp
   -p|--partition_count <num>  its partition count, default 8
   -w|--wait_healthy           wait for the table to be served (always done)
   -s|--server_path <path>     server binary, or the directory holding it
                               (same as PEGASUS_SERVER_BIN)
EOF
}

run_start_onebox() {
    local metas_n=1 replicas_n=3 app=temp partitions=8
    while [ $# -gt 0 ]; do
        case "$1" in
            -h|--help) usage_start_onebox; exit 0 ;;
            -m|--meta_count) metas_n=${2:-}; shift ;;
            -r|--replica_count) replicas_n=${2:-}; shift ;;
            -a|--app_name) app=${2:-}; shift ;;
            -p|--partition_count) partitions=${2:-}; shift ;;
            -w|--wait_healthy) ;;
            -s|--server_path)
                # Upstream passes the directory holding pegasus_server; a file works too.
                PEGASUS_SERVER_BIN=${2:-}
                [ -d "$PEGASUS_SERVER_BIN" ] && PEGASUS_SERVER_BIN=$PEGASUS_SERVER_BIN/pegasus_server
                shift ;;
            *) echo "ERROR: unknown option \"$1\""; echo; usage_start_onebox; exit 1 ;;
        esac
        shift
    done
    is_positive "$metas_n" || die "meta count must be a number >= 1"
    is_positive "$replicas_n" || die "replica count must be a number >= 1"
    is_positive "$partitions" || die "partition count must be a number >= 1"
    [[ "$app" =~ ^[A-Za-z0-9_.-]+$ ]] || die "invalid app name \"$app\""

    local dir
    local -a existing=()
    mapfile -t existing < <(list_instance_dirs)
    for dir in "${existing[@]}"; do
        if instance_pid "$dir" >/dev/null; then
            die "$(basename "$dir") of $ONEBOX_DIR is running; stop_onebox first"
        fi
    done

    local zk=0
    case "$ONEBOX_ZOOKEEPER" in
        1) zk=1 ;;
        0) [ "$metas_n" -eq 1 ] || die "ONEBOX_ZOOKEEPER=0 allows only one meta server" ;;
        "") [ "$metas_n" -gt 1 ] && zk=1 ;;
        *) die "ONEBOX_ZOOKEEPER must be 0 or 1" ;;
    esac

    local bin metas i port
    bin=$(find_server_bin) || exit 1
    metas=$(meta_server_list "$metas_n")
    local -a dirs=()
    for i in $(seq "$metas_n"); do dirs+=("$ONEBOX_DIR/meta$i"); done
    for i in $(seq "$replicas_n"); do dirs+=("$ONEBOX_DIR/replica$i"); done

    for port in $(for i in $(seq "$metas_n"); do meta_port "$i"; done) \
        $(for i in $(seq "$replicas_n"); do replica_port "$i"; done); do
        if port_open 127.0.0.1 "$port"; then
            die "port $port is already in use (another cluster? see META_PORT_BASE / REPLICA_PORT_BASE)"
        fi
    done

    mkdir -p "$ONEBOX_DIR" || die "cannot create $ONEBOX_DIR"
    touch "$ONEBOX_DIR/$MARKER"
    if [ $zk -eq 1 ]; then
        start_zookeeper
        use_zookeeper
    fi
    for i in $(seq "$metas_n"); do
        dir=$ONEBOX_DIR/meta$i
        mkdir -p "$dir"
        write_instance_config "$dir" "$(meta_port "$i")" "$REPLICA_PORT_BASE" "$metas" "$app" "$partitions"
    done
    for i in $(seq "$replicas_n"); do
        dir=$ONEBOX_DIR/replica$i
        mkdir -p "$dir"
        write_instance_config "$dir" "$META_PORT_BASE" "$(replica_port "$i")" "$metas" "$app" "$partitions"
    done
    echo "INFO: starting onebox in $ONEBOX_DIR with $metas_n meta(s), $replicas_n replica(s); server_list = $metas"
    for dir in "${dirs[@]}"; do
        start_instance "$dir" "$bin" || { stop_instances "${dirs[@]}"; exit 1; }
    done

    local deadline=$(($(date +%s) + ONEBOX_WAIT_SECONDS))
    if ! wait_ports "$deadline" "${dirs[@]}" || ! wait_table "$bin" "$metas" "$app" "$deadline" "${dirs[@]}"; then
        echo "ERROR: onebox did not become ready; stopping it" >&2
        stop_instances "${dirs[@]}"
        exit 1
    fi
    echo "INFO: onebox is ready: meta server(s) $metas, table $app${ZK_SERVER_LIST:+, zookeeper $ZK_SERVER_LIST}"
}

usage_stop_onebox() {
    echo "Options for subcommand 'stop_onebox':"
    echo "   -h|--help         print this help"
}

run_stop_onebox() {
    case "${1:-}" in
        "") ;;
        -h|--help) usage_stop_onebox; exit 0 ;;
        *) echo "ERROR: unknown option \"$1\""; echo; usage_stop_onebox; exit 1 ;;
    esac
    local -a dirs=()
    mapfile -t dirs < <(list_instance_dirs)
    [ ${#dirs[@]} -gt 0 ] && stop_instances "${dirs[@]}"
    stop_zookeeper
}

usage_list_onebox() {
    echo "Options for subcommand 'list_onebox':"
    echo "   -h|--help         print this help"
}

run_list_onebox() {
    case "${1:-}" in
        "") ;;
        -h|--help) usage_list_onebox; exit 0 ;;
        *) echo "ERROR: unknown option \"$1\""; echo; usage_list_onebox; exit 1 ;;
    esac
    local dir pid
    local -a existing=()
    mapfile -t existing < <(list_instance_dirs)
    printf '%-12s %-8s %-8s %-8s %s\n' INSTANCE PORT PID STATUS DIR
    for dir in "${existing[@]}"; do
        if pid=$(instance_pid "$dir"); then
            printf '%-12s %-8s %-8s %-8s %s\n' "$(basename "$dir")" "$(instance_port "$dir")" "$pid" running "$dir"
        else
            printf '%-12s %-8s %-8s %-8s %s\n' "$(basename "$dir")" "$(instance_port "$dir")" - stopped "$dir"
        fi
    done
    if [ -f "$ZK_DIR/zoo.cfg" ]; then
        local zport
        zport=$(sed -n 's/^clientPort=//p' "$ZK_DIR/zoo.cfg")
        if pid=$(instance_pid "$ZK_DIR"); then
            printf '%-12s %-8s %-8s %-8s %s\n' zookeeper "$zport" "$pid" running "$ZK_DIR"
        else
            printf '%-12s %-8s %-8s %-8s %s\n' zookeeper "$zport" - stopped "$ZK_DIR"
        fi
    fi
}

usage_clear_onebox() {
    echo "Options for subcommand 'clear_onebox':"
    echo "   -h|--help         print this help"
}

run_clear_onebox() {
    case "${1:-}" in
        "") ;;
        -h|--help) usage_clear_onebox; exit 0 ;;
        *) echo "ERROR: unknown option \"$1\""; echo; usage_clear_onebox; exit 1 ;;
    esac
    [ -d "$ONEBOX_DIR" ] || return 0
    if [ ! -f "$ONEBOX_DIR/$MARKER" ]; then
        die "$ONEBOX_DIR was not created by run.sh (no $MARKER file); not removing it"
    fi
    run_stop_onebox
    rm -rf "$ONEBOX_DIR"
    echo "INFO: removed $ONEBOX_DIR"
}

usage_start_onebox_instance() {
    echo "Options for subcommand 'start_onebox_instance':"
    echo "   -h|--help              print this help"
    echo "   -m|--meta_id <num>     start meta server with this id"
    echo "   -r|--replica_id <num>  start replica server with this id; one past the last"
    echo "                          adds a replica server to the onebox (scale out)"
}

# Starts the selected instances and waits for their ports.
run_start_onebox_instance() {
    parse_instance_args start_onebox_instance "$@"
    [ "$REPLICA_ID" != 0 ] && [ ! -d "$ONEBOX_DIR/replica$REPLICA_ID" ] && add_replica_instance "$REPLICA_ID"
    select_instance_dirs
    local -a dirs=("${SELECTED[@]}")
    local bin dir rc=0
    bin=$(find_server_bin) || exit 1
    if [ "$META_ID" != 0 ] && onebox_uses_zookeeper && [ -f "$ZK_DIR/zoo.cfg" ]; then
        ZK_PORT=$(sed -n 's/^clientPort=//p' "$ZK_DIR/zoo.cfg")
        start_zookeeper
    fi
    for dir in "${dirs[@]}"; do
        start_instance "$dir" "$bin" || rc=1
    done
    wait_ports $(($(date +%s) + ONEBOX_WAIT_SECONDS)) "${dirs[@]}" || exit 1
    return $rc
}

usage_stop_onebox_instance() {
    echo "Options for subcommand 'stop_onebox_instance':"
    echo "   -h|--help              print this help"
    echo "   -m|--meta_id <num>     stop meta server with this id"
    echo "   -r|--replica_id <num>  stop replica server with this id"
}

run_stop_onebox_instance() {
    parse_instance_args stop_onebox_instance "$@"
    select_instance_dirs
    local -a dirs=("${SELECTED[@]}")
    local dir rc=0
    local -a running=()
    for dir in "${dirs[@]}"; do
        if instance_pid "$dir" >/dev/null; then
            running+=("$dir")
        else
            echo "INFO: $(basename "$dir") is not running"
            rc=1
        fi
    done
    [ ${#running[@]} -eq 0 ] || stop_instances "${running[@]}"
    return $rc
}

usage_restart_onebox_instance() {
    echo "Options for subcommand 'restart_onebox_instance':"
    echo "   -h|--help              print this help"
    echo "   -m|--meta_id <num>     restart meta server with this id"
    echo "   -r|--replica_id <num>  restart replica server with this id"
    echo "   -s|--sleep <num>       seconds between stop and start, default 1"
}

run_restart_onebox_instance() {
    parse_instance_args restart_onebox_instance "$@"
    local -a args=(-m "$META_ID" -r "$REPLICA_ID")
    local pause=$SLEEP
    # Not running is fine for a restart: it just gets started.
    run_stop_onebox_instance "${args[@]}" || true
    echo "INFO: sleeping ${pause}s"
    sleep "$pause"
    run_start_onebox_instance "${args[@]}"
}

# start_zk / stop_zk: upstream's subcommand names, here for the onebox's own ZooKeeper (the
# port is the one the onebox was configured with, else ZK_PORT).
onebox_zk_port() {
    if [ -f "$ZK_DIR/zoo.cfg" ]; then
        ZK_PORT=$(sed -n 's/^clientPort=//p' "$ZK_DIR/zoo.cfg")
    fi
}

run_start_zk() {
    case "${1:-}" in
        -h|--help) echo "Options for subcommand 'start_zk': -h|--help (uses the onebox's ZooKeeper dir and port)"; return 0 ;;
        "") ;;
        *) die "start_zk takes no arguments" ;;
    esac
    onebox_zk_port
    start_zookeeper
}

run_stop_zk() {
    case "${1:-}" in
        -h|--help) echo "Options for subcommand 'stop_zk': -h|--help"; return 0 ;;
        "") ;;
        *) die "stop_zk takes no arguments" ;;
    esac
    if ! instance_pid "$ZK_DIR" >/dev/null; then
        echo "INFO: zookeeper is not running"
        return 0
    fi
    stop_zookeeper
}

#####################
## main
#####################

cmd=${1:-help}
[ $# -gt 0 ] && shift
case "$cmd" in
    help|-h|--help) usage ;;
    start_onebox) run_start_onebox "$@" ;;
    stop_onebox) run_stop_onebox "$@" ;;
    list_onebox) run_list_onebox "$@" ;;
    clear_onebox) run_clear_onebox "$@" ;;
    start_onebox_instance) run_start_onebox_instance "$@" ;;
    stop_onebox_instance) run_stop_onebox_instance "$@" ;;
    restart_onebox_instance) run_restart_onebox_instance "$@" ;;
    start_zk) run_start_zk "$@" ;;
    stop_zk) run_stop_zk "$@" ;;
    *) echo "ERROR: unknown command \"$cmd\""; echo; usage; exit 1 ;;
esac

# Helpers for the coordinator's multi-process tests (sourced, bash).
#
# Every test gets its own temporary directory, free loopback ports, and a trap that kills
# exactly the processes it started (by pid) and removes the directory. Binaries come from
# $COORD_BIN_DIR (set by ctest: the build's coordinator/ directory).
#
#   start_node NAME ADDRESS [flags...]   starts aethex-coordinator; log in $T/NAME.log
#   wait_log NAME PATTERN SECONDS        waits until NAME's log matches PATTERN
#   leader_json                          aethexctl --json cluster status on every member
#   leader_id / leader_address           from that status
#   kill9 NAME / restart NAME            kill -9 / start again with the same flags

set -u
: "${COORD_BIN_DIR:?set COORD_BIN_DIR to the coordinator directory of a build}"
COORD="$COORD_BIN_DIR/aethex-coordinator"
CTL="$COORD_BIN_DIR/aethexctl"
WRITER="$COORD_BIN_DIR/coord_writer"
T=$(mktemp -d /tmp/aethex-coord-test.XXXXXX)
declare -A PIDS ARGS GEN
MEMBERS=""
TEST_START=$(date +%s)

log() { echo "[$(( $(date +%s) - TEST_START ))s] $*"; }

cleanup() {
    local name
    for name in "${!PIDS[@]}"; do
        kill -9 "${PIDS[$name]}" 2>/dev/null || true
    done
    [ -n "${WRITER_PID:-}" ] && kill -9 "$WRITER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "logs kept in $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    local f
    for f in "$T"/*.log; do
        [ -f "$f" ] || continue
        echo "---- $(basename "$f") (last 25 lines)"
        tail -n 25 "$f"
    done
    exit 1
}

# A free TCP port on 127.0.0.1 (bound then released; the kernel does not hand it out again
# at once, and parallel tests each get their own).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_node() {
    local name=$1; shift
    ARGS[$name]="$*"
    GEN[$name]=$(( ${GEN[$name]:-0} + 1 ))
    # shellcheck disable=SC2086
    "$COORD" --data-dir "$T/$name" --http 127.0.0.1:0 "$@" >>"$T/$name.log" 2>&1 &
    PIDS[$name]=$!
    echo "=== start ${GEN[$name]} pid ${PIDS[$name]}" >>"$T/$name.log"
}

restart() {
    local name=$1
    # shellcheck disable=SC2086
    start_node "$name" ${ARGS[$name]}
}

kill9() {
    local name=$1
    kill -9 "${PIDS[$name]}" 2>/dev/null || true
    wait "${PIDS[$name]}" 2>/dev/null || true
    unset "PIDS[$name]"
}

stop_node() {
    local name=$1
    kill -TERM "${PIDS[$name]}" 2>/dev/null || true
    wait "${PIDS[$name]}" 2>/dev/null
    local rc=$?
    unset "PIDS[$name]"
    return $rc
}

# Counts lines matching PATTERN in NAME's log since its last start.
count_log_since_start() {
    local name=$1 pattern=$2
    awk -v g="=== start ${GEN[$name]} " 'index($0, g) == 1 { on = 1; next } on' "$T/$name.log" |
        grep -c -- "$pattern" || true
}

wait_log() {
    local name=$1 pattern=$2 secs=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        if [ "$(count_log_since_start "$name" "$pattern")" -gt 0 ]; then return 0; fi
        sleep 0.1
    done
    fail "$name: no '$pattern' in its log within ${secs}s"
}

ctl() { "$CTL" --coordinator "$MEMBERS" "$@"; }

# Prints "ID ADDRESS" of the leader, or nothing.
leader() {
    ctl --json --timeout-ms "${LEADER_TIMEOUT_MS:-1500}" cluster status 2>/dev/null |
        python3 -c 'import json,sys
try:
    d = json.load(sys.stdin)
    if d["leader"]["id"] != "0": print(d["leader"]["id"], d["leader"]["address"])
except Exception: pass'
}

# Waits until NAME's dqlite node itself knows the leader: asked alone, it answers LEADER with
# the leader only once it has heard from it since it started (raft forgets the leader on
# restart), i.e. once the leader's connection to it is up and it takes part in the quorum.
wait_heard() {
    local name=$1 secs=$2 i
    for ((i = 0; i < secs * 4; i++)); do
        "$CTL" --coordinator "${ADDRS[$name]}" --timeout-ms 250 cluster status >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    fail "$name: its node did not hear from a leader within ${secs}s"
}

# As leader, with less overhead (no python), for timing loops.
leader_fast() {
    ctl --timeout-ms "${LEADER_TIMEOUT_MS:-400}" cluster status 2>/dev/null | awk '$4 == "*" { print $1, $2 }'
}

# The name of the node listening on ADDRESS.
name_of() {
    local addr=$1 name
    for name in "${!ADDRS[@]}"; do
        [ "${ADDRS[$name]}" = "$addr" ] && { echo "$name"; return; }
    done
}

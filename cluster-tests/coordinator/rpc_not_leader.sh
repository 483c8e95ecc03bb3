#!/bin/bash
# coordinator.rpc_not_leader: an edge that reaches a follower is sent to the leader. Two
# coordinators (the second joins), each with rpc-listen at the same port offset from its
# dqlite address (+1 here: docs/coordinator.md "Edges and RPC"). coord_rpc_probe configured
# with the FOLLOWER's RPC address only registers, authorises and looks up successfully: every
# request was answered NotLeader by the follower and re-sent to the leader; the follower's
# registry stays empty and the leader logs the edge.
source "$(dirname "$0")/lib.sh" || exit 1

PROBE="$COORD_BIN_DIR/coord_rpc_probe"
# Two free ports P and P+1 (dqlite, rpc) per node.
free_pair() {
    python3 -c 'import socket, random
while True:
    p = random.randint(20000, 60000)
    try:
        a = socket.socket(); a.bind(("127.0.0.1", p)); b = socket.socket(); b.bind(("127.0.0.1", p + 1))
        a.close(); b.close(); print(p); break
    except OSError:
        pass'
}
P1=$(free_pair)
P2=$(free_pair)
[ "$P1" != "$P2" ] || P2=$(free_pair)
MEMBERS=127.0.0.1:$P1
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/secret"
start_node n1 --address "127.0.0.1:$P1" --rpc-listen "127.0.0.1:$((P1 + 1))" --cluster-secret-file "$T/secret"
wait_log n1 "rpc listening" 30
start_node n2 --address "127.0.0.1:$P2" --join "127.0.0.1:$P1" --rpc-listen "127.0.0.1:$((P2 + 1))" \
    --cluster-secret-file "$T/secret"
wait_log n2 "rpc listening" 40
# n2 must know the leader (its READY poll) before it can name it.
wait_log n2 "ready .*leader=127.0.0.1:$P1" 10

ctl channels create demo --owner alice >/dev/null || fail "channels create"
KEY=$(ctl keys create demo 2>/dev/null) || fail "keys create"
PROBE_TIMEOUT_MS=15000 "$PROBE" "127.0.0.1:$((P2 + 1))" "$T/secret" edge-a \
    register:eu:http://127.0.0.1:8080 "authorize:$KEY" lookup:demo >"$T/p.out" 2>&1 ||
    fail "probe via the follower: $(cat "$T/p.out")"
cat "$T/p.out"
grep -q "^register OK" "$T/p.out" || fail "register through the follower"
grep -q "^authorize OK" "$T/p.out" || fail "authorize through the follower"
grep -q "^lookup OK origin=edge-a" "$T/p.out" || fail "lookup through the follower"
[ "$(count_log_since_start n1 "edge=edge-a registered")" -ge 1 ] || fail "the leader did not register the edge"
[ "$(count_log_since_start n2 "edge=edge-a registered")" = 0 ] || fail "the follower registered the edge"
log "a follower's NotLeader led the edge to the leader"
stop_node n2 || fail "n2 did not stop cleanly"
stop_node n1 || fail "n1 did not stop cleanly"
log "PASS"

#!/bin/bash
# coordinator.rpc_failover: the edge RPC across a leader change. Three coordinators with
# rpc-listen at port offset +1; an edge (coord_rpc_probe) given all three RPC addresses
# registers and authorises a publish on the leader (following NotLeader if it lands on a
# follower). Then the leader is killed with -9 (and edge-a with it: its probe has ended).
# Within a few seconds another edge, given all three addresses (one now dead), registers on
# the NEW leader and authorises the same channel: the new leader's registry started empty,
# edge-a never re-registered there (not healthy), so the stale live row is ended and a new
# stream starts on edge-b. Bounded: < 60 s.
source "$(dirname "$0")/lib.sh" || exit 1

PROBE="$COORD_BIN_DIR/coord_rpc_probe"
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
declare -A ADDRS PORT
for n in n1 n2 n3; do
    while :; do
        p=$(free_pair)
        dup=0
        for m in "${!PORT[@]}"; do [ $(( p - PORT[$m] )) -ge -1 ] && [ $(( p - PORT[$m] )) -le 1 ] && dup=1; done
        [ $dup = 0 ] && break
    done
    PORT[$n]=$p
    ADDRS[$n]=127.0.0.1:$p
done
MEMBERS="${ADDRS[n1]},${ADDRS[n2]},${ADDRS[n3]}"
RPCS="127.0.0.1:$((PORT[n1] + 1)),127.0.0.1:$((PORT[n2] + 1)),127.0.0.1:$((PORT[n3] + 1))"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/secret"
rpcflags() { echo "--rpc-listen 127.0.0.1:$((PORT[$1] + 1)) --cluster-secret-file $T/secret"; }

# shellcheck disable=SC2046
start_node n1 --address "${ADDRS[n1]}" $(rpcflags n1)
wait_log n1 " ready " 20
# shellcheck disable=SC2046
start_node n2 --address "${ADDRS[n2]}" --join "${ADDRS[n1]},${ADDRS[n3]}" $(rpcflags n2)
# shellcheck disable=SC2046
start_node n3 --address "${ADDRS[n3]}" --join "${ADDRS[n1]},${ADDRS[n2]}" $(rpcflags n3)
wait_log n2 " ready " 30
wait_log n3 " ready " 30
log "cluster of 3 up, rpc on $RPCS"

ctl channels create demo --owner alice >/dev/null || fail "channels create"
KEY=$(ctl keys create demo 2>/dev/null) || fail "keys create"
probe() { PROBE_TIMEOUT_MS=15000 "$PROBE" "$RPCS" "$T/secret" "$@"; }

probe edge-a register:eu:http://127.0.0.1:8080 "authorize:$KEY" heartbeat >"$T/p1.out" 2>&1 ||
    fail "probe 1: $(cat "$T/p1.out")"
S1=$(sed -n 's/^authorize OK .* stream=\([^ ]*\)$/\1/p' "$T/p1.out")
[ -n "$S1" ] || fail "authorize before failover: $(cat "$T/p1.out")"
read -r lid laddr < <(leader)
L=$(name_of "$laddr")
[ -n "$L" ] || fail "no leader"
[ "$(count_log_since_start "$L" "edge=edge-a registered")" -ge 1 ] || fail "the leader $L did not register edge-a"
log "edge-a registered and authorised stream=$S1 on the leader $L"

kill9 "$L"
log "kill -9 leader $L"
t0=$(date +%s)
ok=0
for _ in $(seq 20); do
    probe edge-b register:us:http://127.0.0.1:8081 "authorize:$KEY" >"$T/p2.out" 2>&1
    if grep -q "^authorize OK" "$T/p2.out"; then ok=1; break; fi
    sleep 0.5
done
[ $ok = 1 ] || fail "no authorisation after the failover: $(cat "$T/p2.out")"
S2=$(sed -n 's/^authorize OK .* stream=\([^ ]*\)$/\1/p' "$T/p2.out")
[ "$S2" != "$S1" ] || fail "the new leader reused the stale stream"
read -r nid naddr < <(leader)
N=$(name_of "$naddr")
[ -n "$N" ] && [ "$N" != "$L" ] || fail "no new leader"
[ "$(count_log_since_start "$N" "edge=edge-b registered")" -ge 1 ] || fail "the new leader $N did not register edge-b"
q() { ctl query "$1" | tail -n +2; }
[ "$(q "SELECT status FROM streams WHERE id = '$S1'")" = ended ] || fail "stale stream $S1 not ended"
[ "$(q "SELECT status FROM streams WHERE id = '$S2'")" = live ] || fail "new stream $S2 not live"
[ "$(q "SELECT e.name FROM streams s JOIN edges e ON e.id = s.origin_edge_id WHERE s.id = '$S2'")" = edge-b ] ||
    fail "new stream's origin is not edge-b"
log "after $(( $(date +%s) - t0 ))s: edge-b registered on the new leader $N, stream=$S2; stale $S1 ended"
log "PASS"

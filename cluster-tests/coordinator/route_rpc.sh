#!/bin/bash
# coordinator.route_rpc: routing from the leader's edge registry, with edges that register and
# heartbeat over the real edge RPC (coord_rpc_probe speaks it with the cluster secret):
# edge-a (eu) publishes channel `demo` with a key made by aethexctl, edge-b (us) only serves.
#   - a viewer in us (CIDR) goes to edge-b, ?region=eu to edge-a (the origin), a region with
#     no edge to the origin's region; /api/v1/edges says the registry answers;
#   - a follower (n2, joined to n1) routes the same from its database snapshot (the leader
#     persists heartbeats), /api/v1/edges source "database";
#   - edge-b stops heartbeating (killed): the next requests of us viewers go to edge-a, on the
#     leader and then on the follower;
#   - edge-a stops too: 503 no_edge.
source "$(dirname "$0")/lib.sh" || exit 1
PROBE="$COORD_BIN_DIR/coord_rpc_probe"
[ -x "$PROBE" ] || fail "coord_rpc_probe not built"

DQ=127.0.0.1:$(free_port)
RPC=127.0.0.1:$(free_port)
MEMBERS=$DQ
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/secret"
start_node n1 --address "$DQ" --rpc-listen "$RPC" --cluster-secret-file "$T/secret"
wait_log n1 "rpc listening on $RPC" 30
HTTP=$(sed -n 's/.*http listening on \([0-9.:]*\).*/\1/p' "$T/n1.log" | tail -1)
[ -n "$HTTP" ] || fail "no http address in the log"
URL="http://$HTTP"
DQ2=127.0.0.1:$(free_port)
start_node n2 --address "$DQ2" --join "$DQ"
wait_log n2 " ready " 40
HTTP2=$(sed -n 's/.*http listening on \([0-9.:]*\).*/\1/p' "$T/n2.log" | tail -1)
[ -n "$HTTP2" ] || fail "no http address in n2's log"
URL2="http://$HTTP2"
js() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

ctl channels create demo --owner alice >/dev/null || fail "channels create"
KEY=$(ctl keys create demo laptop 2>/dev/null) || fail "keys create"
ctl regions add 127.0.0.0/8 us >/dev/null || fail "regions add"

# Each probe heartbeats every 0.5 s for about 15 s (the probe's own bound is 20 s).
beats() { local i; for ((i = 0; i < 30; i++)); do printf '%s sleep:500 ' "$1"; done; }
# shellcheck disable=SC2046
"$PROBE" "$RPC" "$T/secret" edge-a register:eu:http://edge-a.test:8080 "authorize:$KEY" \
    $(beats heartbeat) >"$T/a.out" 2>&1 &
PIDS[probe_a]=$!
# shellcheck disable=SC2046
"$PROBE" "$RPC" "$T/secret" edge-b register:us:http://edge-b.test:8080 $(beats heartbeat) \
    >"$T/b.out" 2>&1 &
PIDS[probe_b]=$!
for ((i = 0; i < 100; i++)); do
    grep -q "^authorize OK" "$T/a.out" && grep -q "^register OK" "$T/b.out" && break
    sleep 0.1
done
grep -q "^authorize OK .*slug=demo" "$T/a.out" || fail "edge-a not authorised: $(cat "$T/a.out")"

location() { curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "${BASE:-$URL}$1"; }
wait_location() { # PATH EXPECTED SECONDS
    local got i
    for ((i = 0; i < $3 * 10; i++)); do
        got=$(location "$1")
        [ "$got" = "$2" ] && return 0
        sleep 0.1
    done
    fail "GET $1: '$got', expected '$2' within $3 s"
}
# 127.0.0.1 is in us (regions refresh every 5 s).
wait_location /live/demo/index.m3u8 "302 http://edge-b.test:8080/live/demo/index.m3u8" 8
wait_location '/live/demo/index.m3u8?region=eu' "302 http://edge-a.test:8080/live/demo/index.m3u8" 1
wait_location '/live/demo/index.m3u8?region=sa' "302 http://edge-a.test:8080/live/demo/index.m3u8" 1
curl -s "$URL/api/v1/route?channel=demo" | js '
assert d["edge_id"] == "edge-b" and d["origin_edge_id"] == "edge-a" and d["viewer_region_source"] == "cidr", d' ||
    fail "/api/v1/route: $(curl -s "$URL/api/v1/route?channel=demo")"
curl -s "$URL/api/v1/edges" | js '
assert d["source"] == "registry", d
assert sorted(x["id"] for x in d["edges"]) == ["edge-a", "edge-b"] and all(x["healthy"] for x in d["edges"]), d' ||
    fail "/api/v1/edges: $(curl -s "$URL/api/v1/edges")"
log "edges registered over RPC: us viewers -> edge-b, eu and unknown regions -> the origin edge-a"

# The follower: the same answers from the database (heartbeats persisted by the leader).
BASE=$URL2 wait_location /live/demo/index.m3u8 "302 http://edge-b.test:8080/live/demo/index.m3u8" 8
BASE=$URL2 wait_location '/live/demo/index.m3u8?region=eu' "302 http://edge-a.test:8080/live/demo/index.m3u8" 2
curl -s "$URL2/api/v1/edges" | js '
assert d["source"] == "database", d
assert sorted(x["id"] for x in d["edges"]) == ["edge-a", "edge-b"], d' ||
    fail "follower /api/v1/edges: $(curl -s "$URL2/api/v1/edges")"
log "the follower routes the same from its database snapshot"

# Kill edge-b: within the 3 s health threshold the next us viewer goes to edge-a.
kill -9 "${PIDS[probe_b]}"; wait "${PIDS[probe_b]}" 2>/dev/null; unset "PIDS[probe_b]"
t0=$(date +%s%N)
wait_location /live/demo/index.m3u8 "302 http://edge-a.test:8080/live/demo/index.m3u8" 6
log "edge-b killed: us viewers routed to edge-a after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
BASE=$URL2 wait_location /live/demo/index.m3u8 "302 http://edge-a.test:8080/live/demo/index.m3u8" 6
log "... and on the follower after $(( ($(date +%s%N) - t0) / 1000000 )) ms"

# Kill edge-a too: no edge.
kill -9 "${PIDS[probe_a]}"; wait "${PIDS[probe_a]}" 2>/dev/null; unset "PIDS[probe_a]"
for ((i = 0; i < 60; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/live/demo/index.m3u8")" = 503 ] && break
    sleep 0.1
done
curl -s "$URL/live/demo/index.m3u8" | js 'assert d["error"]["code"] == "no_edge", d' ||
    fail "no healthy edge: $(curl -s -i "$URL/live/demo/index.m3u8")"
log "both edges gone: 503 no_edge"
echo PASS

#!/bin/bash
# coordinator.rpc_authorize: the edge RPC against a real single-node coordinator.
# aethexctl creates a channel (and its owner) and a stream key; coord_rpc_probe, speaking the
# RPC as an edge with the cluster secret, registers and authorises a publish with the key
# (ids back, stream live with this edge as origin), is refused a wrong key, SQL-looking and
# empty keys, a revoked key, and a channel already live on another healthy edge; EndStream
# records the duration; a rotated key works; revoking a live channel's key pushes KeyRevoked
# to its origin edge; a wrong cluster secret never gets in; the listener survives garbage.
source "$(dirname "$0")/lib.sh" || exit 1

PROBE="$COORD_BIN_DIR/coord_rpc_probe"
DQ=127.0.0.1:$(free_port)
RPC=127.0.0.1:$(free_port)
MEMBERS=$DQ
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/secret"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/wrong-secret"
start_node n1 --address "$DQ" --rpc-listen "$RPC" --cluster-secret-file "$T/secret"
wait_log n1 "rpc listening on $RPC" 30

probe() { PROBE_TIMEOUT_MS=${PROBE_TIMEOUT_MS:-15000} "$PROBE" "$RPC" "$T/secret" "$@"; }
q() { ctl query "$1" | tail -n +2; }

# A channel and its owner, twice (the second is a no-op).
ctl channels create demo --owner alice | grep -q "channel demo created" || fail "channels create"
ctl channels create demo --owner alice | grep -q "already exists" || fail "channels create again"
[ "$(q "SELECT count(*) FROM users WHERE username = 'alice'")" = 1 ] || fail "owner not created once"

KEY=$(ctl keys create demo laptop 2>"$T/keys.err") || fail "keys create: $(cat "$T/keys.err")"
[[ $KEY =~ ^[0-9a-f]{64}$ ]] || fail "key is not 64 hex digits: '$KEY'"
grep -q "shown once" "$T/keys.err" || fail "keys create did not say the key is shown once"
ctl --json keys list demo >"$T/list.json" || fail "keys list"
grep -q "$KEY" "$T/list.json" && fail "keys list shows the key"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["keys"]) == 1 and d["keys"][0]["label"] == "laptop", d' "$T/list.json" ||
    fail "keys list --json: $(cat "$T/list.json")"
# Only SHA-256 of the key bytes is stored.
want_hash=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest())' "$KEY")
[ "$(q "SELECT lower(hex(key_hash)) FROM stream_keys")" = "$want_hash" ] || fail "stored hash is not SHA-256(key bytes)"
ctl keys create nosuch >/dev/null 2>&1 && fail "keys create for an absent channel succeeded"
log "channel, owner and key created; keys list shows no key"

# Authorise, refusals, lookup, end.
WRONG=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
probe edge-a register:eu:http://127.0.0.1:8080 "authorize:$KEY" "authorize:$WRONG" \
    "authorize:' OR 1=1 --" "authorize:'; DROP TABLE stream_keys; --" "authorize:" \
    lookup:demo sleep:1200 >"$T/p1.out" 2>&1 || fail "probe 1: $(cat "$T/p1.out")"
cat "$T/p1.out"
grep -q "^register OK" "$T/p1.out" || fail "register"
STREAM=$(sed -n 's/^authorize OK channel=[^ ]* slug=demo stream=\([^ ]*\)$/\1/p' "$T/p1.out")
[ -n "$STREAM" ] || fail "authorize with the key: $(cat "$T/p1.out")"
[ "$(grep -c "^authorize EBADKEY" "$T/p1.out")" = 4 ] || fail "wrong/SQL-looking/empty keys not all refused with EBADKEY"
grep -q "^lookup OK origin=edge-a hls=http://127.0.0.1:8080 stream=$STREAM" "$T/p1.out" || fail "lookup"
[ "$(q "SELECT s.status || ' ' || e.name || ' ' || c.is_live FROM streams s JOIN edges e ON e.id = s.origin_edge_id JOIN channels c ON c.id = s.channel_id WHERE s.id = '$STREAM'")" = "live edge-a 1" ] ||
    fail "stream row not live on edge-a: $(q "SELECT * FROM streams")"
[ "$(q "SELECT count(*) FROM stream_keys WHERE last_used_at IS NOT NULL")" = 1 ] || fail "last_used_at not set"
[ "$(q "SELECT count(*) FROM stream_keys")" = 1 ] || fail "a refused key changed stream_keys"
log "authorised stream=$STREAM; wrong, SQL-looking and empty keys refused"

# Live on edge-a (heartbeating) -> edge-b is refused with ELIVE.
probe edge-a register:eu:http://127.0.0.1:8080 "authorize:$KEY" heartbeat:demo:x:"$STREAM" sleep:900 \
    heartbeat sleep:900 heartbeat sleep:900 heartbeat >"$T/pa.out" 2>&1 &
PA=$!
for _ in $(seq 50); do grep -q "^authorize OK" "$T/pa.out" && break; sleep 0.1; done
grep -q "^authorize OK .*stream=$STREAM" "$T/pa.out" || fail "edge-a re-authorise (same stream): $(cat "$T/pa.out")"
probe edge-b register:us:http://127.0.0.1:8081 "authorize:$KEY" >"$T/pb.out" 2>&1 || fail "probe b: $(cat "$T/pb.out")"
grep -q "^authorize ELIVE" "$T/pb.out" || fail "edge-b not refused while live on edge-a: $(cat "$T/pb.out")"
wait $PA || fail "probe a: $(cat "$T/pa.out")"
log "a second edge is refused while the channel is live on a healthy edge"

probe edge-a "end:$STREAM" "end:$STREAM" "end:cnosuchstream00000000000" >"$T/p2.out" 2>&1 || fail "probe 2: $(cat "$T/p2.out")"
cat "$T/p2.out"
dur=$(sed -n '1s/^end OK duration=\([0-9]*\)$/\1/p' "$T/p2.out")
[ -n "$dur" ] && [ "$dur" -ge 1 ] || fail "EndStream duration: $(cat "$T/p2.out")"
[ "$(sed -n '2p' "$T/p2.out")" = "end OK duration=$dur" ] || fail "EndStream twice is not idempotent"
grep -q "^end ENOENT" "$T/p2.out" || fail "EndStream of an unknown stream"
[ "$(q "SELECT status || ' ' || duration_seconds || ' ' || (ended_at IS NOT NULL) FROM streams WHERE id = '$STREAM'")" = "ended $dur 1" ] ||
    fail "stream row not ended: $(q "SELECT * FROM streams")"
[ "$(q "SELECT is_live FROM channels WHERE slug = 'demo'")" = 0 ] || fail "channel still live"
log "EndStream: duration ${dur}s recorded"

# Revoke -> refused; rotate -> the new key works, the old one not.
ctl keys revoke demo | grep -q "revoked 1 key" || fail "keys revoke"
probe edge-a register:eu:http://127.0.0.1:8080 "authorize:$KEY" >"$T/p3.out" 2>&1 || fail "probe 3"
grep -q "^authorize EBADKEY" "$T/p3.out" || fail "revoked key not refused: $(cat "$T/p3.out")"
NEW=$(ctl keys rotate demo 2>/dev/null) || fail "keys rotate"
probe edge-a register:eu:http://127.0.0.1:8080 "authorize:$NEW" "authorize:$KEY" >"$T/p4.out" 2>&1 || fail "probe 4"
grep -q "^authorize OK" "$T/p4.out" || fail "rotated key refused: $(cat "$T/p4.out")"
grep -q "^authorize EBADKEY" "$T/p4.out" || fail "old key accepted after rotate"
log "revoked key refused; rotated key accepted"

# Revoking the key of a live channel pushes KeyRevoked to its origin edge.
probe edge-a register:eu:http://127.0.0.1:8080 "authorize:$NEW" heartbeat sleep:800 heartbeat \
    sleep:800 heartbeat sleep:800 heartbeat sleep:800 heartbeat >"$T/p7.out" 2>&1 &
P7=$!
for _ in $(seq 50); do grep -q "^authorize OK" "$T/p7.out" && break; sleep 0.1; done
grep -q "^authorize OK" "$T/p7.out" || fail "authorize before revoke: $(cat "$T/p7.out")"
ctl keys revoke demo >/dev/null || fail "keys revoke (live)"
wait $P7 || fail "probe 7: $(cat "$T/p7.out")"
new_hash=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest())' "$NEW")
grep -q "^push KEY_REVOKED channel=c[0-9a-f]* hash=$new_hash" "$T/p7.out" ||
    fail "no KeyRevoked push to the origin: $(cat "$T/p7.out")"
log "revoking a live channel's key pushed KeyRevoked (SHA-256 of the key bytes) to its origin"

# A wrong cluster secret never gets in; garbage on the port does not hurt the listener.
PROBE_TIMEOUT_MS=2500 "$PROBE" "$RPC" "$T/wrong-secret" edge-x register:eu:http://x >"$T/p5.out" 2>&1 &&
    fail "a wrong secret got in: $(cat "$T/p5.out")"
grep -q "register OK" "$T/p5.out" && fail "a wrong secret registered"
python3 - "$RPC" <<'PY' || fail "garbage peer"
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
for data in (b"\xff\xff\xff\xff", b"GET / HTTP/1.1\r\n\r\n", b"\x00\x00\x00\x04\x08\x01\x10\x0a"):
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(data)
    s.settimeout(5)
    try:
        while s.recv(4096):
            pass
    except socket.timeout:
        sys.exit("not closed")
    s.close()
PY
probe edge-a register:eu:http://127.0.0.1:8080 >"$T/p6.out" 2>&1 || fail "probe after garbage"
grep -q "^register OK" "$T/p6.out" || fail "listener broken after garbage"
log "wrong secret kept out; garbage, huge length, unauthenticated request each closed; listener fine"

# /metrics counts what happened.
HTTP=$(sed -n 's/.*http listening on \([0-9.:]*\).*/\1/p' "$T/n1.log" | tail -1)
python3 - "$HTTP" <<'PY' || fail "/metrics"
import sys, urllib.request
m = {}
for line in urllib.request.urlopen("http://%s/metrics" % sys.argv[1], timeout=5).read().decode().splitlines():
    if line and not line.startswith("#"):
        k, v = line.rsplit(" ", 1)
        m[k] = float(v)
assert m['aethex_coordinator_publish_authorizations_total{result="ok"}'] >= 4, m
assert m['aethex_coordinator_publish_authorizations_total{result="refused"}'] >= 7, m
assert m["aethex_coordinator_rpc_auth_failures_total"] >= 3, m
assert m["aethex_coordinator_streams_ended_total"] == 1, m
assert m["aethex_coordinator_key_revoked_pushes_total"] >= 1, m
assert m["aethex_coordinator_heartbeats_total"] >= 5, m
PY
log "/metrics: authorisations, refusals, auth failures, stream ends, pushes, heartbeats counted"

stop_node n1 || fail "coordinator did not stop cleanly"
log "PASS"

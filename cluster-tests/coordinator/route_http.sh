#!/bin/bash
# coordinator.route_http: the watch redirect and the routing API of a real single-node
# coordinator (docs/routing.md), with edges, channels and live streams written into its
# database by go-dqlite's shell (an independent client) and heartbeats kept fresh by a loop
# like an edge's, CIDR regions added with aethexctl:
#   - GET /live/<slug>/index.m3u8 -> 302 to the right edge per region (CIDR of the caller,
#     ?region= override, the origin's region when the viewer's has none), no-store, CORS;
#   - GET /api/v1/route JSON; unknown / not-live channel 404 JSON; bad input 400; POST 405;
#   - an edge whose heartbeats stop is no longer chosen; every edge full -> the origin;
#     no healthy edge -> 503 JSON with Retry-After;
#   - GET /api/v1/edges, aethexctl regions/edges/streams (text and --json), /metrics;
#   - every `$ curl` example of docs/routing.md runs and succeeds.
source "$(dirname "$0")/lib.sh" || exit 1
command -v dqlite >/dev/null || fail "go-dqlite's shell (/usr/bin/dqlite) is not installed"
command -v curl >/dev/null || fail "curl is not installed"
DOCS="$(dirname "$0")/../../docs/routing.md"

declare -A ADDRS
ADDRS[n1]=127.0.0.1:$(free_port)
MEMBERS=${ADDRS[n1]}
start_node n1 --address "${ADDRS[n1]}"
wait_log n1 " ready " 20
HTTP=$(sed -n 's/.*http listening on \([0-9.:]*\).*/\1/p' "$T/n1.log" | tail -1)
[ -n "$HTTP" ] || fail "no http address in the log"
export COORD_HTTP="http://$HTTP"

# go-dqlite's shell; a write refused as "database is locked" (the heartbeat loop below is
# another writer, and dqlite refuses a second writer at once) is retried.
go() {
    local i out
    for ((i = 0; i < 50; i++)); do
        if out=$(timeout 15 dqlite -s "$MEMBERS" aethex "$@" 2>&1); then
            [ -n "$out" ] && echo "$out"
            return 0
        fi
        echo "$out" | grep -q "database is locked" || { echo "$out" >&2; return 1; }
        sleep 0.1
    done
    echo "$out" >&2
    return 1
}
now_ms() { date +%s%3N; }
js() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

# ---- the platform's rows: 5 edges in 3 regions, 3 channels (2 live) -----------------------
go "INSERT INTO users (id, supabase_id, username, email) VALUES ('u1', 's1', 'alice', 'a@example.test')" ||
    fail "insert user"
edge() { # edge ID NAME REGION CAPACITY VIEWERS
    go "INSERT INTO edges (id, name, region, rpc_address, rtmp_url, hls_base_url, capacity_viewers,
        viewers, live_streams, last_heartbeat_at)
        VALUES ('$1', '$2', '$3', '127.0.0.1:1', 'rtmp://$2.test/live', 'http://$2.test:8080/', $4, $5, 0, $(now_ms))" ||
        fail "insert edge $2"
}
edge e1 eu-1 eu 100 50
edge e2 eu-2 eu 100 10
edge e3 us-1 us 100 20
edge e4 us-2 us 1000 900
edge e5 ap-1 ap 0 5 # capacity 0: unlimited
for ch in alice bob carol; do
    go "INSERT INTO channels (id, user_id, name, slug) VALUES ('c-$ch', 'u1', '$ch TV', '$ch')" ||
        fail "insert channel $ch"
done
go "INSERT INTO streams (id, channel_id, title, stream_key, status, origin_edge_id, started_at)
    VALUES ('s-alice', 'c-alice', 'Alice live', 'k-alice', 'live', 'e1', $(now_ms))" || fail "stream alice"
go "INSERT INTO streams (id, channel_id, title, stream_key, status) VALUES ('s-bob', 'c-bob', 'Bob later', 'k-bob', 'scheduled')" ||
    fail "stream bob"
go "INSERT INTO streams (id, channel_id, title, stream_key, status, origin_edge_id, started_at)
    VALUES ('s-carol', 'c-carol', 'Carol live', 'k-carol', 'live', 'e4', $(now_ms))" || fail "stream carol"

# Heartbeats, once a second, for the edges named in $T/beating (as the leader would persist).
echo "eu-1 eu-2 us-1 us-2 ap-1" >"$T/beating"
(
    while :; do
        names=$(sed "s/\([^ ]*\)/'\1'/g; s/ /, /g" "$T/beating")
        [ -n "$names" ] && timeout 5 dqlite -s "$MEMBERS" aethex \
            "UPDATE edges SET last_heartbeat_at = $(date +%s%3N) WHERE name IN ($names)" >/dev/null 2>&1
        sleep 1
    done
) &
PIDS[heartbeats]=$!

# ---- regions with aethexctl ------------------------------------------------------------------
ctl regions add 127.0.0.0/8 eu >/dev/null || fail "regions add 127.0.0.0/8"
ctl --json regions add 10.0.0.0/8 us | js 'assert d == {"done": "regions add", "cidr": "10.0.0.0/8", "region": "us"}, d' ||
    fail "regions add --json"
ctl regions add 2001:DB8::/32 ap >/dev/null || fail "regions add v6"
ctl regions add 10.0.0.0/8 ap >/dev/null || fail "regions add again (move)"
ctl regions add 10.0.0.0/8 us >/dev/null || fail "regions add again (move back)"
ctl regions add 192.0.2.0/24 tmp >/dev/null && ctl regions remove 192.0.2.0/24 | grep -q "removed 192.0.2.0/24" ||
    fail "regions remove"
ctl --json regions remove 192.0.2.0/24 >"$T/out"; rc=$?
[ $rc = 1 ] && js 'assert d["error"]["code"] == "not_found", d' <"$T/out" || fail "remove absent: rc $rc $(cat "$T/out")"
ctl regions add 10.1.0.0/8 us >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "did you mean 10.0.0.0/8" "$T/err" || fail "bad CIDR: rc $rc $(cat "$T/err")"
ctl regions add 10.0.0.0/40 us 2>"$T/err" >/dev/null; [ $? = 2 ] || fail "a /40 IPv4 block was accepted"
ctl --json regions list | js 'assert d["regions"] == [{"cidr": "10.0.0.0/8", "region": "us"}, {"cidr": "127.0.0.0/8", "region": "eu"}, {"cidr": "2001:db8::/32", "region": "ap"}], d' ||
    fail "regions list: $(ctl regions list)"
ctl regions list | grep -q "^127.0.0.0/8 .* eu$" || fail "regions list text"
log "aethexctl regions add/remove/list; bad CIDRs refused with a clear message"

# ---- routing ---------------------------------------------------------------------------------
# Wait until the coordinator's view has the regions (refreshed every 5 s) and the channels.
for ((i = 0; i < 100; i++)); do
    src=$(curl -s "$COORD_HTTP/api/v1/route?channel=alice" | js 'print(d.get("viewer_region_source"))' 2>/dev/null)
    [ "$src" = cidr ] && break
    sleep 0.1
done
[ "$src" = cidr ] || fail "the view never learned the regions: $(curl -s "$COORD_HTTP/api/v1/route?channel=alice")"

location() { curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$COORD_HTTP$1"; }
expect_location() { # PATH CODE URL
    local got
    got=$(location "$1")
    [ "$got" = "$2 $3" ] || fail "GET $1: got '$got', expected '$2 $3'"
}
# 127.0.0.1 is in 127.0.0.0/8 -> eu; eu-2 is the less utilised eu edge (10% vs 50%).
expect_location /live/alice/index.m3u8 302 http://eu-2.test:8080/live/alice/index.m3u8
curl -s -D "$T/h" -o /dev/null "$COORD_HTTP/live/alice/index.m3u8"
grep -qi '^cache-control: no-store' "$T/h" || fail "no Cache-Control: no-store: $(cat "$T/h")"
grep -qi '^access-control-allow-origin: \*' "$T/h" || fail "no CORS header: $(cat "$T/h")"
# ?region= overrides the CIDR table.
expect_location '/live/alice/index.m3u8?region=us' 302 http://us-1.test:8080/live/alice/index.m3u8
expect_location '/live/alice/index.m3u8?region=ap' 302 http://ap-1.test:8080/live/alice/index.m3u8
# A region without edges: the origin's region (alice: eu-1 in eu; carol: us-2 in us).
expect_location '/live/alice/index.m3u8?region=sa' 302 http://eu-2.test:8080/live/alice/index.m3u8
expect_location '/live/carol/index.m3u8?region=sa' 302 http://us-1.test:8080/live/carol/index.m3u8
log "302 per region: CIDR, ?region= override, origin's region as fallback; no-store, CORS"

curl -s "$COORD_HTTP/api/v1/route?channel=alice&region=us" | js '
assert d == {"channel": "alice", "edge_id": "us-1", "region": "us",
             "url": "http://us-1.test:8080/live/alice/index.m3u8", "origin_edge_id": "eu-1",
             "viewer_region": "us", "viewer_region_source": "query", "tier": "viewer_region"}, d' ||
    fail "/api/v1/route JSON: $(curl -s "$COORD_HTTP/api/v1/route?channel=alice&region=us")"

expect_error() { # PATH CODE ERROR_CODE [METHOD]
    local code
    code=$(curl -s -o "$T/body" -w '%{http_code}' -X "${4:-GET}" "$COORD_HTTP$1")
    [ "$code" = "$2" ] || fail "$1: HTTP $code, expected $2: $(cat "$T/body")"
    js 'assert list(d) == ["error"] and d["error"]["code"] == "'"$3"'" and d["error"]["message"], d' <"$T/body" ||
        fail "$1: body $(cat "$T/body")"
}
expect_error /live/nobody/index.m3u8 404 channel_not_live
expect_error /live/bob/index.m3u8 404 channel_not_live # scheduled, not live
expect_error '/api/v1/route?channel=nobody' 404 channel_not_live
expect_error '/api/v1/route?channel=bob' 404 channel_not_live
expect_error /api/v1/route 400 bad_channel
expect_error '/api/v1/route?channel=a%2Fb' 400 bad_channel
expect_error '/live/a%2Fb/index.m3u8' 400 bad_channel
expect_error "/live/$(printf 'x%.0s' {1..65})/index.m3u8" 400 bad_channel
expect_error '/live/alice/index.m3u8?region=e%20u' 400 bad_region
expect_error /live/alice/index.m3u8 405 method_not_allowed POST
expect_error /live/alice/other.m3u8 404 not_found
log "unknown and not-live channels 404 JSON; bad slugs and regions 400; POST 405"

curl -s "$COORD_HTTP/api/v1/edges" | js '
e = {x["id"]: x for x in d["edges"]}
assert sorted(e) == ["ap-1", "eu-1", "eu-2", "us-1", "us-2"], e
assert all(x["healthy"] for x in e.values()), e
assert e["us-2"]["capacity"] == 1000 and e["us-2"]["viewers"] == 900 and e["ap-1"]["region"] == "ap", e' ||
    fail "/api/v1/edges: $(curl -s "$COORD_HTTP/api/v1/edges")"
ctl --json edges | js '
e = {x["id"]: x for x in d["edges"]}
assert sorted(e) == ["ap-1", "eu-1", "eu-2", "us-1", "us-2"] and all(x["healthy"] for x in e.values()), e' ||
    fail "aethexctl edges --json: $(ctl --json edges)"
ctl edges | grep -q "^eu-2 .* eu .* healthy .* 10/100 " || fail "aethexctl edges: $(ctl edges)"
ctl --json streams | js '
s = [(x["channel"], x["status"], x["origin_edge_id"]) for x in d["streams"]]
assert sorted(s) == [("alice", "live", "eu-1"), ("carol", "live", "us-2")], s' ||
    fail "aethexctl streams --json: $(ctl --json streams)"
ctl streams | grep -q "alice .* live .* eu-1" || fail "aethexctl streams: $(ctl streams)"
log "/api/v1/edges, aethexctl edges and streams (text, json)"

# ---- health and capacity -----------------------------------------------------------------------
# eu-2 stops beating: within the health threshold (3 s) plus a refresh (1 s), eu goes to eu-1.
echo "eu-1 us-1 us-2 ap-1" >"$T/beating"
for ((i = 0; i < 100; i++)); do
    got=$(location '/live/alice/index.m3u8?region=eu')
    [ "$got" = "302 http://eu-1.test:8080/live/alice/index.m3u8" ] && break
    sleep 0.1
done
[ "$got" = "302 http://eu-1.test:8080/live/alice/index.m3u8" ] || fail "a silent eu-2 is still chosen: $got"
curl -s "$COORD_HTTP/api/v1/edges" | js 'e = {x["id"]: x["healthy"] for x in d["edges"]}; assert e["eu-2"] is False and e["eu-1"], e' ||
    fail "eu-2 still healthy in /api/v1/edges"
log "an edge whose heartbeats stop is no longer chosen (after $((i / 10)).$((i % 10)) s)"

# Every edge full (ap-1 draining): the origin itself takes the viewer.
go "UPDATE edges SET viewers = capacity_viewers WHERE capacity_viewers > 0" || fail "fill edges"
go "UPDATE edges SET status = 'draining' WHERE name = 'ap-1'" || fail "drain ap-1"
for ((i = 0; i < 50; i++)); do
    tier=$(curl -s "$COORD_HTTP/api/v1/route?channel=alice&region=us" | js 'print(d.get("tier"), d.get("edge_id"))' 2>/dev/null)
    [ "$tier" = "origin eu-1" ] && break
    sleep 0.1
done
[ "$tier" = "origin eu-1" ] || fail "all full: expected the origin, got '$tier'"
# No healthy edge at all: 503 with the one error shape and Retry-After.
: >"$T/beating"
for ((i = 0; i < 100; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$COORD_HTTP/live/alice/index.m3u8")
    [ "$code" = 503 ] && break
    sleep 0.1
done
expect_error /live/alice/index.m3u8 503 no_edge
expect_error '/api/v1/route?channel=alice' 503 no_edge
curl -s -D "$T/h" -o /dev/null "$COORD_HTTP/live/alice/index.m3u8"
grep -qi '^retry-after: 2' "$T/h" || fail "no Retry-After on 503: $(cat "$T/h")"
log "every edge full -> the origin; no healthy edge -> 503 no_edge"

curl -s "$COORD_HTTP/metrics" >"$T/metrics"
grep -q '^aethex_coordinator_route_decisions_total{tier="viewer_region"} [1-9]' "$T/metrics" &&
    grep -q '^aethex_coordinator_route_no_edge_total [1-9]' "$T/metrics" &&
    grep -q '^aethex_coordinator_route_region_blocks 3$' "$T/metrics" ||
    fail "route metrics: $(grep route "$T/metrics")"

# ---- the examples of docs/routing.md run as written -------------------------------------------
echo "eu-1 eu-2 us-1 us-2 ap-1" >"$T/beating"
go "UPDATE edges SET viewers = 0, status = 'up'" || fail "reset edges"
sleep 2.5
n=0
while IFS= read -r cmd; do
    out=$(eval "$cmd" 2>&1) || fail "docs example failed: $cmd -> $out"
    n=$((n + 1))
done < <(sed -n 's/^    \$ \(curl .*\)$/\1/p' "$DOCS")
[ "$n" -ge 3 ] || fail "expected at least 3 curl examples in docs/routing.md, ran $n"
log "ran the $n curl examples of docs/routing.md"
echo "PASS"

#!/bin/bash
# coordinator.aethexctl: every aethexctl command against real coordinators, in text and
# --json, and its errors: a node added by hand (add -> spare, promote -> voter, remove),
# read-only query refusals, an unreachable cluster and a cluster without a leader (bounded
# time, exit 3), usage errors (exit 2).
source "$(dirname "$0")/lib.sh" || exit 1

declare -A ADDRS
ADDRS[n1]=127.0.0.1:$(free_port)
ADDRS[n2]=127.0.0.1:$(free_port)
MEMBERS=${ADDRS[n1]}
start_node n1 --address "${ADDRS[n1]}"
wait_log n1 " ready " 20
# n2 joins nobody by itself: a dqlite node with id 77 that waits to be added by hand.
start_node n2 --address "${ADDRS[n2]}" --node-id 77 --migrate-timeout-ms 120000
wait_log n2 "dqlite node started" 10

js() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
expect_exit() { # expect_exit CODE cmd...
    local want=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    [ "$got" = "$want" ] || fail "'$*' exited $got, expected $want; out: $(cat "$T/out") err: $(cat "$T/err")"
}

# status, text and JSON
out=$(ctl cluster status) || fail "cluster status"
echo "$out" | head -1 | grep -q "^ID .*ADDRESS .*ROLE .*LEADER" || fail "status header: $out"
echo "$out" | grep -q "^1 .*${ADDRS[n1]} .*voter .*\*" || fail "status row: $out"
ctl --json cluster status | js 'assert d["leader"] == {"id": "1", "address": "'"${ADDRS[n1]}"'"}, d; assert len(d["nodes"]) == 1' ||
    fail "status --json"
log "cluster status (text, json)"

# add -> spare, promote -> voter; n2 then finds the schema applied and reports ready
ctl --json cluster add 77 "${ADDRS[n2]}" | js 'assert d == {"done": "add", "id": "77", "address": "'"${ADDRS[n2]}"'"}, d' ||
    fail "cluster add --json"
ctl --json cluster status | js 'n = {x["id"]: x["role"] for x in d["nodes"]}; assert n == {"1": "voter", "77": "spare"}, n' ||
    fail "after add: $(ctl cluster status)"
ctl cluster promote 77 | grep -q "node 77 is now a voter" || fail "cluster promote"
ctl --json cluster status | js 'n = {x["id"]: x["role"] for x in d["nodes"]}; assert n == {"1": "voter", "77": "voter"}, n' ||
    fail "after promote: $(ctl cluster status)"
wait_log n2 " ready " 20
log "cluster add (spare) and promote (voter); the added node becomes ready"
ctl --json cluster promote 77 standby | js 'assert d["role"] == "standby", d' || fail "promote standby"
ctl --json cluster promote 77 voter | js 'assert d["role"] == "voter", d' || fail "promote voter"
expect_exit 1 ctl cluster add 78 "${ADDRS[n2]}" # the address is taken by node 77
log "promote to standby and back; a second node on a taken address is refused (exit 1)"

# query: text, json, blobs as hex, refusals
ctl query "SELECT 1 AS one, 'a|b' AS s, NULL AS n, x'00ff' AS b" >"$T/q.txt" || fail "query text"
[ "$(cat "$T/q.txt")" = "$(printf 'one|s|n|b\n1|a|b|NULL|x'"'"'00ff'"'"'')" ] || fail "query text: $(cat "$T/q.txt")"
ctl --json query "SELECT 1 AS one, 'a' AS s, NULL AS n, x'00ff' AS b, 2.5 AS f" |
    js 'assert d == {"columns": ["one", "s", "n", "b", "f"], "rows": [[1, "a", None, "00ff", 2.5]]}, d' ||
    fail "query --json"
expect_exit 1 ctl query "DELETE FROM users"
grep -q "not a read" "$T/err" || fail "refusal message: $(cat "$T/err")"
expect_exit 1 ctl --json query "DELETE FROM users RETURNING id"
js 'assert d["error"]["code"] == "not_read_only", d' <"$T/out" || fail "json refusal: $(cat "$T/out")"
expect_exit 1 ctl query "SELECT 1; DROP TABLE users"
expect_exit 1 ctl query "SELECT * FROM no_such_table"
ctl query "SELECT count(*) FROM users" >/dev/null || fail "users table gone?"
log "query (text, json); writes, several statements and unknown tables refused (exit 1)"

# usage errors
expect_exit 2 "$CTL" --coordinator "${ADDRS[n1]}" cluster frobnicate
expect_exit 2 "$CTL" --coordinator "${ADDRS[n1]}" cluster remove notanumber
expect_exit 2 "$CTL" --coordinator "localhost:1" cluster status
expect_exit 2 "$CTL" --bogus
expect_exit 2 "$CTL" --json --coordinator "${ADDRS[n1]}" cluster promote 77 king
js 'assert d["error"]["code"] == "usage", d' <"$T/out" || fail "json usage error: $(cat "$T/out")"
log "usage errors (exit 2)"

# unreachable: bounded, exit 3, clear message
dead=127.0.0.1:$(free_port)
t0=$(date +%s%3N)
expect_exit 3 "$CTL" --coordinator "$dead" --timeout-ms 1500 cluster status
[ $(( $(date +%s%3N) - t0 )) -lt 5000 ] || fail "unreachable cluster: took too long"
grep -q "connection refused\|unreachable\|no leader" "$T/err" || fail "unreachable message: $(cat "$T/err")"
expect_exit 3 "$CTL" --coordinator "$dead" --json --timeout-ms 1500 query "SELECT 1"
js 'assert d["error"]["code"] in ("no_leader", "timeout"), d' <"$T/out" || fail "json unreachable: $(cat "$T/out")"
log "unreachable cluster: exit 3 within the timeout"

# no leader: two voters, one killed -> no quorum
kill9 n2
t0=$(date +%s%3N)
for _ in 1 2 3 4 5 6 7 8 9 10; do # the old leader steps down after an election timeout
    "$CTL" --coordinator "${ADDRS[n1]}" --timeout-ms 1000 cluster status >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" = 3 ] && break
    sleep 0.5
done
[ "$rc" = 3 ] || fail "no quorum but status exited $rc: $(cat "$T/out")"
grep -q "no leader\|no answer" "$T/err" || fail "no-leader message: $(cat "$T/err")"
[ $(( $(date +%s%3N) - t0 )) -lt 15000 ] || fail "no-leader detection took too long"
log "no quorum: exit 3 ($(cat "$T/err"))"

# quorum back, then remove node 77
restart n2
wait_log n2 " ready " 30
ctl cluster remove 77 | grep -q "removed node 77" || fail "cluster remove"
ctl --json cluster status | js 'assert [x["id"] for x in d["nodes"]] == ["1"], d' || fail "after remove"
log "cluster remove"
log "PASS"

#!/bin/bash
# coordinator.go_dqlite_interop: go-dqlite's shell (/usr/bin/dqlite, Debian go-dqlite, an
# independent client nobody here wrote) against a database our coordinator created:
#   - it reads the schema_version rows our migrator wrote;
#   - it writes into our tables, and our constraints (foreign keys, CHECKs) hold for it;
#   - we read its writes (aethexctl query), it reads ours (coord_writer, our write queue);
#   - a delete through it cascades as docs/schema.md says, and we see the cascade.
# Shell conventions checked here: `dqlite -s HOST:PORT DB "SQL"`; statements starting with
# SELECT are run as queries and print rows as `a|b`, others are executed; exit status 1 on
# error with "Error: ..." on stderr.
source "$(dirname "$0")/lib.sh" || exit 1
command -v dqlite >/dev/null || fail "go-dqlite's shell (/usr/bin/dqlite) is not installed"

declare -A ADDRS
ADDRS[n1]=127.0.0.1:$(free_port)
MEMBERS=${ADDRS[n1]}
start_node n1 --address "${ADDRS[n1]}"
wait_log n1 " ready " 20

go() { timeout 15 dqlite -s "$MEMBERS" aethex "$@"; }

# 1. It reads what our migrator wrote.
out=$(go "SELECT version FROM schema_version ORDER BY version") || fail "go shell: select failed"
[ "$(echo "$out" | tr '\n' ' ')" = "1 2 3 " ] || fail "go shell saw schema_version '$out'"
log "go shell reads our schema_version: $(echo "$out" | tr '\n' ' ')"

# 2. It writes into our tables.
go "INSERT INTO users (id, supabase_id, username, email) VALUES ('g1', 'gs1', 'gopher', 'g@example.test')" ||
    fail "go shell: insert user"
go "INSERT INTO channels (id, user_id, name, slug, tags) VALUES ('gc1', 'g1', 'Gopher TV', 'gopher-tv', '[\"go\"]')" ||
    fail "go shell: insert channel"
go "INSERT INTO streams (id, channel_id, title, stream_key) VALUES ('gs1', 'gc1', 'hello', 'sk-g1')" ||
    fail "go shell: insert stream"
# Our constraints hold for an independent client too.
if go "INSERT INTO channels (user_id, name, slug) VALUES ('nobody', 'x', 'x')" 2>"$T/fk.err"; then
    fail "go shell: a channel of a missing user was accepted"
fi
grep -q "FOREIGN KEY" "$T/fk.err" || fail "go shell: expected a FOREIGN KEY error, got: $(cat "$T/fk.err")"
if go "UPDATE users SET is_creator = 2 WHERE id = 'g1'" 2>"$T/check.err"; then
    fail "go shell: is_creator = 2 was accepted"
fi
grep -q "CHECK" "$T/check.err" || fail "go shell: expected a CHECK error, got: $(cat "$T/check.err")"
log "go shell writes; foreign keys and CHECKs refuse its bad rows"

# 3. We see its writes, with our defaults filled in.
ctl --json query "SELECT u.username, c.slug, c.tags, c.is_live, c.language, s.status,
                         c.created_at > 1700000000000 AS fresh
                  FROM channels c JOIN users u ON u.id = c.user_id
                  JOIN streams s ON s.channel_id = c.id WHERE u.id = 'g1'" >"$T/q.json" ||
    fail "aethexctl query failed"
python3 - "$T/q.json" <<'PY' || fail "aethexctl saw the wrong rows: $(cat "$T/q.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["columns"] == ["username", "slug", "tags", "is_live", "language", "status", "fresh"], d
assert d["rows"] == [["gopher", "gopher-tv", "[\"go\"]", 0, "en", "scheduled", 1]], d
PY
log "aethexctl reads the go shell's rows"

# 4. It sees our writes (our client's write queue).
"$WRITER" --coordinator "$MEMBERS" --prefix ours --count 5 >"$T/writer.out" 2>"$T/writer.log" ||
    fail "coord_writer failed"
[ "$(grep -c '^ack ' "$T/writer.out")" = 5 ] || fail "coord_writer: $(cat "$T/writer.out")"
out=$(go "SELECT id FROM users WHERE id LIKE 'ours-%' ORDER BY id") || fail "go shell: select ours"
[ "$(echo "$out" | tr '\n' ' ')" = "ours-1 ours-2 ours-3 ours-4 ours-5 " ] ||
    fail "go shell saw '$out' instead of our 5 rows"
log "go shell reads the 5 rows our client wrote"

# 5. A delete through it cascades; we see the result.
go "DELETE FROM users WHERE id = 'g1'" || fail "go shell: delete"
out=$(ctl query "SELECT (SELECT count(*) FROM channels WHERE id = 'gc1') + (SELECT count(*) FROM streams WHERE id = 'gs1') AS left_over") ||
    fail "aethexctl: count after cascade"
[ "$(echo "$out" | tail -1)" = 0 ] || fail "cascade left rows: $out"
log "a delete by the go shell cascades to channels and streams"

# 6. Its view of the cluster is ours.
out=$(go .cluster) || fail "go shell: .cluster"
echo "$out" | grep -q "^1|${ADDRS[n1]}|voter" || fail "go shell .cluster: $out"
log "PASS"

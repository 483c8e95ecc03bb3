#!/bin/bash
# coordinator.migrations_concurrent: three aethex-coordinator processes started at the same
# instant on empty data dirs (node 1 bootstraps, the other two join it while it is still
# electing itself and migrating). Every migration must be applied exactly once: one
# schema_version row per version, and one "migration applied" log line per version across
# all three nodes; the two others wait for the leader and report the same version. Then all
# three restart at once on their data: nothing is applied again. Done twice (fresh clusters).
source "$(dirname "$0")/lib.sh" || exit 1

LATEST=3 # the number of migrations in coordinator/src/schema.c

for round in 1 2; do
    declare -A ADDRS=()
    for n in a$round b$round c$round; do ADDRS[$n]=127.0.0.1:$(free_port); done
    A=a$round B=b$round C=c$round
    MEMBERS="${ADDRS[$A]},${ADDRS[$B]},${ADDRS[$C]}"
    start_node "$A" --address "${ADDRS[$A]}"
    start_node "$B" --address "${ADDRS[$B]}" --join "${ADDRS[$A]},${ADDRS[$C]}"
    start_node "$C" --address "${ADDRS[$C]}" --join "${ADDRS[$A]},${ADDRS[$B]}"
    for n in "$A" "$B" "$C"; do wait_log "$n" " ready " 40; done

    applied=0
    for n in "$A" "$B" "$C"; do
        k=$(count_log_since_start "$n" "migration applied")
        applied=$((applied + k))
        [ "$(count_log_since_start "$n" "schema at version $LATEST")" = 1 ] ||
            fail "$n did not report schema version $LATEST"
    done
    [ "$applied" = "$LATEST" ] || fail "round $round: $applied 'migration applied' lines, expected $LATEST"
    out=$(ctl query "SELECT count(*) || ' ' || count(DISTINCT version) || ' ' || min(version) || ' ' || max(version) FROM schema_version") ||
        fail "round $round: query schema_version"
    [ "$(echo "$out" | tail -1)" = "$LATEST $LATEST 1 $LATEST" ] ||
        fail "round $round: schema_version holds '$(echo "$out" | tail -1)'"
    log "round $round: 3 nodes started at once; $LATEST migrations applied exactly once"

    # All three stop and start again at once: nothing to apply.
    for n in "$A" "$B" "$C"; do kill -TERM "${PIDS[$n]}"; done
    for n in "$A" "$B" "$C"; do
        wait "${PIDS[$n]}" || fail "$n: exit status $? after SIGTERM"
        unset "PIDS[$n]"
    done
    for n in "$A" "$B" "$C"; do restart "$n"; done
    for n in "$A" "$B" "$C"; do wait_log "$n" " ready " 40; done
    for n in "$A" "$B" "$C"; do
        [ "$(count_log_since_start "$n" "migration applied")" = 0 ] || fail "$n applied a migration again"
    done
    out=$(ctl query "SELECT count(*) FROM schema_version") || fail "query after restart"
    [ "$(echo "$out" | tail -1)" = "$LATEST" ] || fail "schema_version rows after restart: $out"
    log "round $round: restarted together, nothing applied again"
    for n in "$A" "$B" "$C"; do stop_node "$n" || fail "$n: non-zero exit after SIGTERM"; done
done
log "PASS"

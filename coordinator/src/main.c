/*
 * aethex-coordinator: an embedded dqlite node, joined to its cluster and migrated through
 * our own dqlite client, with /metrics over HTTP on the coordinator's libuv loop.
 *
 * The process has two threads: dqlite's (the node: raft and SQL, on dqlite's own loop) and
 * ours (the libuv loop below: signals, HTTP, and the dqlite clients, which reach the node
 * over TCP like any other client). Its life, one phase after the other (docs/coordinator.md):
 *
 *   START    config, node id (data-dir/node-id), dqlite node started, HTTP listening
 *     |
 *   JOIN     only with --join and when not yet a voter: CLUSTER, then ADD and ASSIGN voter
 *     |      on the leader, retried until join-timeout-ms
 *   MIGRATE  if this node is the leader: run the migrator (schema.h) through the client;
 *     |      otherwise wait until the leader has brought schema_version to the latest
 *   READY    poll LEADER and CLUSTER every second, for /metrics and leader-change logs
 *     |
 *   STOPPING SIGTERM/SIGINT (or a fatal error): close HTTP and clients, dqlite_node_stop
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "aethex/common/alloc.h"
#include "aethex/common/clock.h"
#include "aethex/common/error.h"
#include "aethex/common/log.h"
#include "aethex/coordinator/config.h"
#include "aethex/coordinator/dqlite_client.h"
#include "aethex/coordinator/schema.h"
#include "coord_rpc.h"
#include "coordinator_internal.h"
#include "route_view.h"

#define LOG "coordinator"
#define RETRY_MS 250         /* between join / migrate attempts */
#define POLL_MS 1000         /* READY: LEADER + CLUSTER */
#define CTL_TIMEOUT_MS 3000  /* one membership request */
#define MIG_TIMEOUT_MS 15000 /* one migration step */

enum phase { PHASE_START, PHASE_JOIN, PHASE_MIGRATE, PHASE_READY, PHASE_STOPPING };

struct coordinator {
    coord_config_t cfg;
    uv_loop_t *loop;
    uint64_t id;
    coord_node_t *node;
    coord_http_t *http;
    coord_rpc_t *rpc; /* edge RPC (rpc.c), from READY on when rpc-listen is set */
    coord_route_view_t *route_view; /* routing: edges, live channels, regions (in memory) */
    coord_dqlite_client_t *ctl; /* membership calls, no database */
    coord_dqlite_client_t *db;  /* database COORD_DB_NAME */
    uv_signal_t sigterm, sigint;
    uv_timer_t timer;
    void (*on_timer)(struct coordinator *c);
    enum phase phase;
    int exit_code;
    uint64_t deadline; /* uv_now of the current phase's end */
    int clients_open;
    char last_error[AX_ERRMSG_LEN];

    coord_dqlite_req_t req; /* join / migrate / poll: one at a time */
    coord_migrator_t mig;

    /* What /metrics reports. */
    uint64_t started_ms;
    uint64_t leader_id;
    char leader_address[COORD_DQLITE_ADDRESS_MAX + 1];
    uint32_t members[3]; /* by role */
    int is_leader;
    int ready;
    int64_t schema_version;
    uint64_t migrations_applied;
    uint64_t join_attempts;
    uint64_t leader_changes;
};

static void stop(struct coordinator *c, int exit_code);
static void join_step(struct coordinator *c);
static void migrate_tick(struct coordinator *c);
static void poll_tick(struct coordinator *c);

/* ---- helpers ------------------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t)
{
    struct coordinator *c = ax_container_of(t, struct coordinator, timer);
    void (*fn)(struct coordinator *) = c->on_timer;
    c->on_timer = NULL;
    if (fn && c->phase != PHASE_STOPPING)
        fn(c);
}

static void later(struct coordinator *c, uint64_t ms, void (*fn)(struct coordinator *))
{
    c->on_timer = fn;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static int past_deadline(struct coordinator *c)
{
    return uv_now(c->loop) >= c->deadline;
}

static const char *role_name(coord_dqlite_role_t r)
{
    switch (r) {
    case COORD_DQLITE_VOTER:
        return "voter";
    case COORD_DQLITE_STANDBY:
        return "standby";
    case COORD_DQLITE_SPARE:
        return "spare";
    }
    return "unknown";
}

/* A failure that a retry may fix: a leader change, a lock, a timeout, an unknown outcome. */
static int retryable(int status)
{
    return status == AX_EBUSY || status == AX_EUNKNOWN || status == AX_ETIMEDOUT ||
           status == AX_ENOLEADER || status == AX_ECONNRESET || status == AX_EAGAIN;
}

static void note_error(struct coordinator *c, const char *what, coord_dqlite_req_t *req, int status)
{
    snprintf(c->last_error, sizeof c->last_error, "%s: %s%s%.180s", what, ax_err_name(status),
             req->errmsg[0] ? ": " : "", req->errmsg);
}

/* ---- JOIN --------------------------------------------------------------------------------- */

static void join_retry(struct coordinator *c)
{
    if (past_deadline(c)) {
        AX_LOG_E(LOG, "node=%" PRIu64 " join failed after %u ms: %s", c->id, c->cfg.join_timeout_ms,
                 c->last_error);
        stop(c, 1);
        return;
    }
    later(c, RETRY_MS, join_step);
}

static void migrate_start(struct coordinator *c);

static void on_assigned(coord_dqlite_req_t *req, int status)
{
    struct coordinator *c = req->data;
    if (c->phase != PHASE_JOIN)
        return;
    if (status != 0) {
        /* AX_EUNKNOWN included: the next CLUSTER tells whether the assignment happened. */
        note_error(c, "assign voter", req, status);
        AX_LOG_W(LOG, "node=%" PRIu64 " join: %s", c->id, c->last_error);
        join_retry(c);
        return;
    }
    AX_LOG_I(LOG, "node=%" PRIu64 " joined the cluster as a voter", c->id);
    migrate_start(c);
}

static void assign_voter(struct coordinator *c)
{
    int rv = coord_dqlite_assign(&c->req, c->ctl, c->id, COORD_DQLITE_VOTER, on_assigned);
    if (rv != 0) {
        snprintf(c->last_error, sizeof c->last_error, "assign: %s", ax_strerror(rv));
        join_retry(c);
    }
}

static void on_added(coord_dqlite_req_t *req, int status)
{
    struct coordinator *c = req->data;
    if (c->phase != PHASE_JOIN)
        return;
    if (status != 0) {
        note_error(c, "add", req, status);
        AX_LOG_W(LOG, "node=%" PRIu64 " join: %s", c->id, c->last_error);
        join_retry(c);
        return;
    }
    AX_LOG_I(LOG, "node=%" PRIu64 " added to the cluster at %s", c->id, c->cfg.address);
    assign_voter(c);
}

static void on_join_cluster(coord_dqlite_req_t *req, int status)
{
    struct coordinator *c = req->data;
    if (c->phase != PHASE_JOIN)
        return;
    if (status != 0) {
        note_error(c, "cluster", req, status);
        join_retry(c);
        return;
    }
    for (uint32_t i = 0; i < req->nnodes; i++) {
        if (req->nodes[i].id != c->id)
            continue;
        if (req->nodes[i].role == COORD_DQLITE_VOTER) {
            AX_LOG_I(LOG, "node=%" PRIu64 " already a voter of the cluster", c->id);
            migrate_start(c);
        } else {
            AX_LOG_I(LOG, "node=%" PRIu64 " member as %s: assigning voter", c->id,
                     role_name(req->nodes[i].role));
            assign_voter(c);
        }
        return;
    }
    int rv = coord_dqlite_add(&c->req, c->ctl, c->id, c->cfg.address, on_added);
    if (rv != 0) {
        snprintf(c->last_error, sizeof c->last_error, "add: %s", ax_strerror(rv));
        join_retry(c);
    }
}

static void join_step(struct coordinator *c)
{
    c->join_attempts++;
    c->req.timeout_ms = CTL_TIMEOUT_MS;
    int rv = coord_dqlite_cluster(&c->req, c->ctl, on_join_cluster);
    if (rv != 0) {
        snprintf(c->last_error, sizeof c->last_error, "cluster: %s", ax_strerror(rv));
        join_retry(c);
    }
}

/* ---- MIGRATE ------------------------------------------------------------------------------ */

static void rpc_leader(void *data, bool *is_leader, const char **leader_address)
{
    struct coordinator *c = data;
    *is_leader = c->is_leader != 0;
    *leader_address = c->leader_address;
}

static void ready(struct coordinator *c)
{
    c->phase = PHASE_READY;
    c->ready = 1;
    /* The edge RPC starts once the schema is in place, so no request meets a missing table. */
    if (c->cfg.rpc_listen[0] != '\0' && c->rpc == NULL) {
        char err[AX_ERRMSG_LEN] = "";
        if (coord__rpc_start(c->loop, &c->cfg, c->id, c->db, rpc_leader, c, &c->rpc, err) != 0) {
            AX_LOG_E(LOG, "node=%" PRIu64 " rpc: %s", c->id, err);
            stop(c, 1);
            return;
        }
        if (c->route_view) /* routing */
            coord__route_view_set_registry(c->route_view, coord__rpc_edges(c->rpc));
    }
    AX_LOG_I(LOG, "node=%" PRIu64 " ready address=%s schema_version=%" PRId64 " leader=%s", c->id,
             c->cfg.address, c->schema_version, c->leader_address[0] ? c->leader_address : "?");
    later(c, 0, poll_tick);
}

static void migrate_fail(struct coordinator *c)
{
    AX_LOG_E(LOG, "node=%" PRIu64 " migration failed: %s", c->id, c->last_error);
    stop(c, 1);
}

static void migrate_retry(struct coordinator *c)
{
    if (past_deadline(c)) {
        AX_LOG_E(LOG, "node=%" PRIu64 " schema not ready after %u ms: %s", c->id,
                 c->cfg.migrate_timeout_ms, c->last_error);
        stop(c, 1);
        return;
    }
    later(c, RETRY_MS, migrate_tick);
}

static void migrate_run(struct coordinator *c);

static void on_migrate_step(coord_dqlite_req_t *req, int status)
{
    struct coordinator *c = req->data;
    if (c->phase != PHASE_MIGRATE)
        return;
    coord_migrator_state_t st = c->mig.state;
    if (status == 0) {
        int64_t version = 0;
        if (st == COORD_MIGRATOR_READ_VERSION) {
            const coord_dqlite_rows_t *rows = req->rows;
            if (!rows || rows->nrows != 1 || rows->ncols < 1 ||
                coord_dqlite_rows_at(rows, 0, 0)->type != COORD_DQLITE_INTEGER) {
                snprintf(c->last_error, sizeof c->last_error,
                         "read version: unexpected result shape");
                migrate_fail(c);
                return;
            }
            version = coord_dqlite_rows_at(rows, 0, 0)->i;
            c->schema_version = version;
        }
        if (st == COORD_MIGRATOR_APPLY) {
            const coord_migration_t *m = &coord_schema_migrations[c->mig.current];
            c->migrations_applied++;
            c->schema_version = m->version;
            AX_LOG_I(LOG, "node=%" PRIu64 " migration applied version=%d name=\"%s\"", c->id,
                     m->version, m->name);
        }
        int rv = coord_migrator_done(&c->mig, version);
        if (rv != 0) {
            snprintf(c->last_error, sizeof c->last_error,
                     "database schema_version %" PRId64 " is newer than this binary's %d", version,
                     coord_schema_latest_version());
            migrate_fail(c);
            return;
        }
        migrate_run(c);
        return;
    }
    /* APPLY refused on its first call (the schema_version INSERT) by a constraint: another
     * node applied this version first. Locks, leader changes and unknown outcomes: the next
     * READ_VERSION tells what happened. Any other database error is a bug in our SQL. */
    int lost_race = st == COORD_MIGRATOR_APPLY && status == AX_EDB && req->failed_call == 0 &&
                    (req->db_code & 0xff) == 19 /* SQLITE_CONSTRAINT */;
    int again = lost_race || retryable(status);
    note_error(c, coord_migrator_state_name(st), req, status);
    if (lost_race)
        AX_LOG_I(LOG, "node=%" PRIu64 " migration %d already applied by another node", c->id,
                 c->mig.current + 1);
    else
        AX_LOG_W(LOG, "node=%" PRIu64 " migration step %s: %s%s", c->id,
                 coord_migrator_state_name(st), c->last_error, again ? " (retrying)" : "");
    coord_migrator_failed(&c->mig, again);
    if (c->mig.state == COORD_MIGRATOR_FAILED) {
        migrate_fail(c);
        return;
    }
    migrate_retry(c); /* re-check leadership first */
}

static void migrate_run(struct coordinator *c)
{
    coord_migrator_step_t st;
    coord_migrator_step(&c->mig, ax_clock_wall_ms(ax_clock_system()), &st);
    c->req.timeout_ms = MIG_TIMEOUT_MS;
    int rv = 0;
    switch (st.state) {
    case COORD_MIGRATOR_ENSURE_TABLE:
        rv = coord_dqlite_exec_sql(&c->req, c->db, st.sql, NULL, 0, on_migrate_step);
        break;
    case COORD_MIGRATOR_READ_VERSION:
        rv = coord_dqlite_query_sql(&c->req, c->db, st.sql, NULL, 0, on_migrate_step);
        break;
    case COORD_MIGRATOR_APPLY: {
        /* One write item: the schema_version record first (the re-check), then the DDL. */
        enum { MAX_CALLS = 256 };
        coord_dqlite_call_t calls[MAX_CALLS];
        coord_dqlite_value_t params[3] = {
            coord_dqlite_int(st.migration->version),
            coord_dqlite_text(st.migration->name),
            coord_dqlite_int(st.applied_at_ms),
        };
        uint32_t n = 0;
        calls[n++] =
            (coord_dqlite_call_t){.sql = coord_migrator_record_sql, .params = params, .nparams = 3};
        for (size_t i = 0; st.migration->stmts[i]; i++) {
            AX_ASSERT(n < MAX_CALLS);
            calls[n++] = (coord_dqlite_call_t){.sql = st.migration->stmts[i]};
        }
        rv = coord_dqlite_write(&c->req, c->db, calls, n, on_migrate_step);
        break;
    }
    case COORD_MIGRATOR_DONE:
        AX_LOG_I(LOG,
                 "node=%" PRIu64 " schema at version %" PRId64 " (%" PRIu64
                 " migrations applied by this node)",
                 c->id, c->schema_version, c->migrations_applied);
        ready(c);
        return;
    case COORD_MIGRATOR_FAILED:
    case COORD_MIGRATOR_STATE_COUNT:
        migrate_fail(c);
        return;
    }
    if (rv != 0) {
        snprintf(c->last_error, sizeof c->last_error, "%s: %s", coord_migrator_state_name(st.state),
                 ax_strerror(rv));
        migrate_fail(c);
    }
}

static void on_follower_version(coord_dqlite_req_t *req, int status)
{
    struct coordinator *c = req->data;
    if (c->phase != PHASE_MIGRATE)
        return;
    int64_t version = 0;
    if (status == 0 && req->rows && req->rows->nrows == 1 && req->rows->ncols >= 1 &&
        coord_dqlite_rows_at(req->rows, 0, 0)->type == COORD_DQLITE_INTEGER) {
        version = coord_dqlite_rows_at(req->rows, 0, 0)->i;
    } else if (status != 0 && status != AX_EDB) {
        /* AX_EDB is "no such table: schema_version": the leader has not started yet. */
        note_error(c, "wait for schema", req, status);
    }
    c->schema_version = version;
    if (version > coord_schema_latest_version()) {
        snprintf(c->last_error, sizeof c->last_error,
                 "database schema_version %" PRId64 " is newer than this binary's %d", version,
                 coord_schema_latest_version());
        migrate_fail(c);
        return;
    }
    if (version == coord_schema_latest_version()) {
        AX_LOG_I(LOG, "node=%" PRIu64 " schema at version %" PRId64 " (applied by the leader)",
                 c->id, version);
        ready(c);
        return;
    }
    snprintf(c->last_error, sizeof c->last_error,
             "leader has not migrated yet (version %" PRId64 ")", version);
    migrate_retry(c);
}

static void on_migrate_leader(coord_dqlite_req_t *req, int status)
{
    struct coordinator *c = req->data;
    if (c->phase != PHASE_MIGRATE)
        return;
    if (status != 0 || req->node.id == 0) {
        if (status != 0)
            note_error(c, "leader", req, status);
        else
            snprintf(c->last_error, sizeof c->last_error, "no leader yet");
        migrate_retry(c);
        return;
    }
    c->leader_id = req->node.id;
    snprintf(c->leader_address, sizeof c->leader_address, "%s", req->node.address);
    c->is_leader = req->node.id == c->id;
    int rv;
    c->req.timeout_ms = CTL_TIMEOUT_MS;
    if (c->is_leader) {
        /* Only the leader migrates; its migrator resumes wherever it stopped (READ_VERSION
         * after a retryable failure). */
        migrate_run(c);
        return;
    }
    rv = coord_dqlite_query_sql(&c->req, c->db,
                                "SELECT COALESCE(MAX(version), 0) FROM schema_version", NULL, 0,
                                on_follower_version);
    if (rv != 0) {
        snprintf(c->last_error, sizeof c->last_error, "wait for schema: %s", ax_strerror(rv));
        migrate_retry(c);
    }
}

static void migrate_tick(struct coordinator *c)
{
    c->req.timeout_ms = CTL_TIMEOUT_MS;
    int rv = coord_dqlite_leader(&c->req, c->ctl, on_migrate_leader);
    if (rv != 0) {
        snprintf(c->last_error, sizeof c->last_error, "leader: %s", ax_strerror(rv));
        migrate_retry(c);
    }
}

static void migrate_start(struct coordinator *c)
{
    c->phase = PHASE_MIGRATE;
    c->deadline = uv_now(c->loop) + c->cfg.migrate_timeout_ms;
    coord_migrator_init(&c->mig, coord_schema_latest_version());
    migrate_tick(c);
}

/* ---- READY -------------------------------------------------------------------------------- */

static void on_poll_cluster(coord_dqlite_req_t *req, int status)
{
    struct coordinator *c = req->data;
    if (c->phase != PHASE_READY)
        return;
    if (status == 0) {
        uint32_t m[3] = {0, 0, 0};
        for (uint32_t i = 0; i < req->nnodes; i++)
            if ((unsigned)req->nodes[i].role < 3)
                m[req->nodes[i].role]++;
        if (memcmp(m, c->members, sizeof m) != 0)
            AX_LOG_I(LOG, "node=%" PRIu64 " cluster voters=%u standbys=%u spares=%u", c->id, m[0],
                     m[1], m[2]);
        memcpy(c->members, m, sizeof m);
    }
    later(c, POLL_MS, poll_tick);
}

static void on_poll_leader(coord_dqlite_req_t *req, int status)
{
    struct coordinator *c = req->data;
    if (c->phase != PHASE_READY)
        return;
    uint64_t id = status == 0 ? req->node.id : 0;
    if (id != c->leader_id) {
        c->leader_changes++;
        if (id)
            AX_LOG_I(LOG, "node=%" PRIu64 " leader is now node=%" PRIu64 " address=%s%s", c->id, id,
                     req->node.address, id == c->id ? " (this node)" : "");
        else
            AX_LOG_W(LOG, "node=%" PRIu64 " no leader: %s", c->id,
                     status ? ax_strerror(status) : "none elected");
    }
    c->leader_id = id;
    snprintf(c->leader_address, sizeof c->leader_address, "%s", id ? req->node.address : "");
    c->is_leader = id != 0 && id == c->id;
    c->req.timeout_ms = CTL_TIMEOUT_MS;
    if (coord_dqlite_cluster(&c->req, c->ctl, on_poll_cluster) != 0)
        later(c, POLL_MS, poll_tick);
}

static void poll_tick(struct coordinator *c)
{
    c->req.timeout_ms = CTL_TIMEOUT_MS;
    if (coord_dqlite_leader(&c->req, c->ctl, on_poll_leader) != 0)
        later(c, POLL_MS, poll_tick);
}

/* ---- /metrics ----------------------------------------------------------------------------- */

static int client_metrics(ax_buf_t *b, struct coordinator *c)
{
    static const struct {
        const char *name, *help;
        size_t offset;
    } families[] = {
        {"requests", "dqlite client messages sent.", offsetof(coord_dqlite_stats_t, requests)},
        {"connects", "dqlite client connections that reached the leader.",
         offsetof(coord_dqlite_stats_t, connects)},
        {"retries", "dqlite client requests re-sent after a safe failure.",
         offsetof(coord_dqlite_stats_t, retries)},
        {"unknown_outcomes", "dqlite client writes whose outcome could not be known.",
         offsetof(coord_dqlite_stats_t, unknown)},
        {"protocol_errors", "dqlite client connections closed for a malformed reply.",
         offsetof(coord_dqlite_stats_t, protocol_errors)},
    };
    coord_dqlite_stats_t s[2] = {{0}, {0}};
    if (c->ctl)
        coord_dqlite_client_stats(c->ctl, &s[0]);
    if (c->db)
        coord_dqlite_client_stats(c->db, &s[1]);
    for (size_t i = 0; i < AX_ARRAY_SIZE(families); i++) {
        uint64_t v0, v1;
        memcpy(&v0, (const char *)&s[0] + families[i].offset, sizeof v0);
        memcpy(&v1, (const char *)&s[1] + families[i].offset, sizeof v1);
        int rv = ax_buf_printf(b,
                     "# HELP aethex_coordinator_db_%s_total %s\n"
                     "# TYPE aethex_coordinator_db_%s_total counter\n"
                     "aethex_coordinator_db_%s_total{client=\"ctl\"} %" PRIu64 "\n"
                     "aethex_coordinator_db_%s_total{client=\"db\"} %" PRIu64 "\n",
                     families[i].name, families[i].help, families[i].name, families[i].name, v0,
                     families[i].name, v1);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int render_metrics(coord_http_t *http, ax_buf_t *b)
{
    struct coordinator *c = coord__http_data(http);
    uint64_t up_s = (uv_now(c->loop) - c->started_ms) / 1000;
    METRIC(b, "aethex_coordinator_info", "gauge", "Node identity (value is always 1).",
           "aethex_coordinator_info{node_id=\"%" PRIu64 "\",address=\"%s\"} 1\n", c->id,
           c->cfg.address);
    METRIC(b, "aethex_coordinator_uptime_seconds", "gauge", "Seconds since start.",
           "aethex_coordinator_uptime_seconds %" PRIu64 "\n", up_s);
    METRIC(b, "aethex_coordinator_ready", "gauge", "1 once joined and migrated.",
           "aethex_coordinator_ready %d\n", c->ready);
    METRIC(b, "aethex_coordinator_is_leader", "gauge", "1 while this node is the raft leader.",
           "aethex_coordinator_is_leader %d\n", c->is_leader);
    METRIC(b, "aethex_coordinator_leader_id", "gauge", "Node id of the leader (0: none known).",
           "aethex_coordinator_leader_id %" PRIu64 "\n", c->leader_id);
    METRIC(b, "aethex_coordinator_leader_changes_total", "counter",
           "Leader changes this node observed.",
           "aethex_coordinator_leader_changes_total %" PRIu64 "\n", c->leader_changes);
    METRIC(b, "aethex_coordinator_cluster_members", "gauge", "Cluster members by role.",
           "aethex_coordinator_cluster_members{role=\"voter\"} %u\n"
           "aethex_coordinator_cluster_members{role=\"standby\"} %u\n"
           "aethex_coordinator_cluster_members{role=\"spare\"} %u\n",
           c->members[0], c->members[1], c->members[2]);
    METRIC(b, "aethex_coordinator_schema_version", "gauge", "schema_version last seen.",
           "aethex_coordinator_schema_version %" PRId64 "\n", c->schema_version);
    METRIC(b, "aethex_coordinator_migrations_applied_total", "counter",
           "Migrations this node applied.",
           "aethex_coordinator_migrations_applied_total %" PRIu64 "\n", c->migrations_applied);
    METRIC(b, "aethex_coordinator_join_attempts_total", "counter", "Join attempts.",
           "aethex_coordinator_join_attempts_total %" PRIu64 "\n", c->join_attempts);
    METRIC(b, "aethex_coordinator_http_requests_total", "counter", "HTTP requests served.",
           "aethex_coordinator_http_requests_total %" PRIu64 "\n", coord__http_requests(http));
    int rv = client_metrics(b, c);
    return rv != 0 ? rv : coord__rpc_metrics(c->rpc, b); /* edge RPC */
}

/* ---- start and stop ----------------------------------------------------------------------- */

static void finish_stop(struct coordinator *c)
{
    /* Clients are gone: nothing talks to the node any more. dqlite_node_stop blocks until the
     * node's thread has finished its in-flight requests and exited. */
    coord__node_stop_free(c->node);
    c->node = NULL;
    AX_LOG_I(LOG, "node=%" PRIu64 " stopped", c->id);
    /* h2o's context keeps timers on the loop: end the loop explicitly. */
    uv_stop(c->loop);
}

static void on_client_closed(coord_dqlite_client_t *cl)
{
    struct coordinator *c = coord_dqlite_client_data(cl);
    if (--c->clients_open == 0)
        finish_stop(c);
}

static void stop(struct coordinator *c, int exit_code)
{
    if (c->phase == PHASE_STOPPING)
        return;
    c->phase = PHASE_STOPPING;
    c->exit_code = exit_code;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_close((uv_handle_t *)&c->sigterm, NULL);
    uv_close((uv_handle_t *)&c->sigint, NULL);
    coord__http_stop(c->http);
    if (c->route_view) /* routing: the registry goes with the RPC */
        coord__route_view_set_registry(c->route_view, NULL);
    coord__rpc_stop(c->rpc); /* before the db client: its requests get AX_ECANCELED */
    c->rpc = NULL;
    coord__route_view_stop(c->route_view); /* routing */
    c->clients_open = (c->ctl != NULL) + (c->db != NULL);
    if (c->clients_open == 0) {
        finish_stop(c);
        return;
    }
    if (c->ctl)
        coord_dqlite_client_close(c->ctl, on_client_closed);
    if (c->db)
        coord_dqlite_client_close(c->db, on_client_closed);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct coordinator *c = s->data;
    AX_LOG_I(LOG, "node=%" PRIu64 " stopping on %s", c->id,
             signum == SIGTERM ? "SIGTERM" : "SIGINT");
    stop(c, 0);
}

static int new_client(struct coordinator *c, const char *database, coord_dqlite_client_t **out,
                      char *errmsg)
{
    coord_dqlite_client_config_t cfg;
    coord_dqlite_client_config_default(&cfg);
    /* Ask the join members first: a fresh node knows no leader until it has joined. */
    const char *members[COORD_CONFIG_MAX_JOIN + 1];
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->cfg.njoin; i++)
        members[n++] = c->cfg.join[i];
    members[n++] = c->cfg.address;
    cfg.members = members;
    cfg.nmembers = n;
    cfg.database = database;
    cfg.connect_timeout_ms = 1000;
    cfg.data = c;
    /* A migration is one write item of every statement of it (plus the record). */
    size_t most = 0, bytes = 0;
    for (size_t i = 0; i < coord_schema_migration_count; i++) {
        size_t k = 0, b = 0;
        for (; coord_schema_migrations[i].stmts[k]; k++)
            b += strlen(coord_schema_migrations[i].stmts[k]) + 64;
        most = k + 1 > most ? k + 1 : most;
        bytes = b > bytes ? b : bytes;
    }
    if (cfg.limits.max_item_calls < most)
        cfg.limits.max_item_calls = (uint32_t)most;
    if (cfg.limits.max_group_bytes < 2 * bytes)
        cfg.limits.max_group_bytes = (uint32_t)(2 * bytes);
    int rv = coord_dqlite_client_new(c->loop, &cfg, out);
    if (rv != 0)
        snprintf(errmsg, AX_ERRMSG_LEN, "dqlite client: %s", ax_strerror(rv));
    return rv;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a peer node that stops must not kill us (DEPENDENCIES.md) */
    static struct coordinator co;
    struct coordinator *c = &co;
    char err[AX_ERRMSG_LEN] = "";
    int help = 0;
    coord_config_default(&c->cfg);
    if (coord_config_parse_args(&c->cfg, argc, argv, &help, err) != 0) {
        fprintf(stderr, "aethex-coordinator: %s\n%s", err, coord_config_usage());
        return 2;
    }
    if (help) {
        fputs(coord_config_usage(), stdout);
        return 0;
    }
    ax_log_set_level(c->cfg.log_level);

    int fresh = 0;
    if (coord__node_resolve_id(c->cfg.data_dir, c->cfg.node_id, c->cfg.njoin > 0, c->cfg.address,
                               &c->id, &fresh, err) != 0) {
        AX_LOG_E(LOG, "%s", err);
        return 1;
    }
    coord_node_config_t ncfg = {
        .id = c->id,
        .address = c->cfg.address,
        .data_dir = c->cfg.data_dir,
        .network_latency_ms = c->cfg.network_latency_ms,
        .snapshot_threshold = c->cfg.snapshot_threshold,
        .snapshot_trailing = c->cfg.snapshot_trailing,
    };
    if (coord__node_start(&ncfg, &c->node, err) != 0) {
        AX_LOG_E(LOG, "node=%" PRIu64 " %s", c->id, err);
        return 1;
    }
    AX_LOG_I(LOG, "node=%" PRIu64 " dqlite node started address=%s data_dir=%s%s", c->id,
             c->cfg.address, c->cfg.data_dir,
             fresh ? (c->cfg.njoin ? " (new, joining)" : " (new, bootstrapping)") : "");

    c->loop = uv_default_loop();
    c->started_ms = uv_now(c->loop);
    uv_timer_init(c->loop, &c->timer);
    uv_signal_init(c->loop, &c->sigterm);
    uv_signal_init(c->loop, &c->sigint);
    c->sigterm.data = c->sigint.data = c;
    uv_signal_start(&c->sigterm, on_signal, SIGTERM);
    uv_signal_start(&c->sigint, on_signal, SIGINT);
    c->req.data = c;

    if (new_client(c, NULL, &c->ctl, err) != 0 || new_client(c, COORD_DB_NAME, &c->db, err) != 0) {
        AX_LOG_E(LOG, "node=%" PRIu64 " %s", c->id, err);
        stop(c, 1);
    } else if (c->cfg.http[0] != '\0' &&
               coord__http_start(c->loop, c->cfg.http, render_metrics, c, &c->http, err) != 0) {
        AX_LOG_E(LOG, "node=%" PRIu64 " %s", c->id, err);
        stop(c, 1);
    } else {
        if (c->http)
            AX_LOG_I(LOG, "node=%" PRIu64 " http listening on %s", c->id,
                     coord__http_address(c->http));
        /* routing: refreshed from the database in the background (docs/routing.md) */
        if (c->http && coord__route_view_new(c->loop, c->db, ax_clock_system(), NULL,
                                             &c->route_view) == 0)
            coord__http_set_route_view(c->http, c->route_view);
        if (c->cfg.njoin > 0) {
            c->phase = PHASE_JOIN;
            c->deadline = uv_now(c->loop) + c->cfg.join_timeout_ms;
            join_step(c);
        } else {
            migrate_start(c);
        }
    }
    uv_run(c->loop, UV_RUN_DEFAULT);
    if (c->node) { /* the loop ended without the stop path (should not happen) */
        coord__node_stop_free(c->node);
        c->node = NULL;
    }
    return c->exit_code;
}

/*
 * Our asynchronous client of the dqlite wire protocol, on a caller-owned libuv loop.
 *
 * Debian's libdqlite 1.11 has no public client, so the coordinator speaks the protocol
 * itself (docs/protocol-dqlite.md). One client keeps ONE connection, always to the current
 * leader, and runs its requests strictly one after another on it (the server handles one
 * request per connection at a time). Use one client for writes and, if reads must not wait
 * behind writes, a second client for reads.
 *
 * What it does:
 *   - connect: handshake, leader discovery (ask any configured member LEADER, follow the
 *     answer to the leader), OPEN the database, learn every member's address (CLUSTER);
 *   - SQL: exec / query of prepared statements (coord_dqlite_stmt_t) or of SQL text, with
 *     parameters always bound (never spliced into SQL); typed rows accumulated across the
 *     server's ROWS batches up to a named limit;
 *   - writes through one group-commit queue (coord_dqlite_write): every item submitted while a
 *     transaction is in flight goes into the next BEGIN ... COMMIT, so many rows cost one Raft
 *     round; an item of several statements is atomic (a SAVEPOINT inside the group);
 *   - membership: LEADER, CLUSTER, ADD, ASSIGN, REMOVE;
 *   - a deadline per request (uv timer); on leader or connection loss it finds the new leader
 *     and retries what is safe to retry.
 *
 * Outcomes (the `status` of every callback):
 *   0               success: for a write, committed by a Raft quorum.
 *   AX_EDB          the database refused the statement (syntax error, constraint violation,
 *                   ...): req->db_code holds SQLite's extended result code and req->errmsg
 *                   SQLite's message ("UNIQUE constraint failed: users.email"). Nothing of
 *                   that statement (or of that write item) was committed.
 *   AX_EBUSY        SQLITE_BUSY / "database is locked" (another connection holds the write
 *                   lock). Only plain exec reports it; the write queue retries it itself.
 *   AX_EUNKNOWN     a write (exec, write item, ADD/ASSIGN/REMOVE) reached the server and then
 *                   the leader or the connection was lost, or its deadline passed, before the
 *                   answer (or, in a group, SQLite reported an I/O, disk-full or memory error
 *                   that may have ended the transaction under it): it may or may not have
 *                   been committed. NEVER reported as success.
 *   AX_ETIMEDOUT    the deadline passed and the request is known not to have taken effect
 *                   (a read, or a write that was never sent).
 *   AX_ENOLEADER    the deadline passed while no member knew a leader, none answered, or
 *                   the one that called itself leader refused as "not leader".
 *   AX_EMSGSIZE     a query's result passed max_result_rows or max_result_bytes; the rest was
 *                   drained and dropped.
 *   AX_EPROTO       a malformed or oversized reply; the connection was closed. The request
 *                   did not take effect (a write that might have is AX_EUNKNOWN instead).
 *   AX_ECANCELED    the client was closed before the request finished. For a write that
 *                   had already been sent this also means "outcome unknown".
 *   AX_ENOMEM       out of memory while handling the reply.
 * Safe retries, done inside the client until the deadline and never visible as a status: a
 * read on any connection or leader loss; a write that was never written to the socket; a
 * write refused with "not leader" (SQLite code 10250, refused before executing); a write
 * group rolled back before its COMMIT was sent.
 *
 * Callback contract (STYLE 5): every call taking a `coord_dqlite_done_cb` either returns a
 * negative AX_E* code and never calls it, or returns 0 and calls it exactly once, later,
 * from the loop (never from inside the submitting call). coord_dqlite_client_close()
 * delivers AX_ECANCELED to every request still pending.
 *
 * Order: write items run in submission order among themselves, and so do all other requests
 * among themselves; the two streams interleave (one write group, then one other request...).
 * A request submitted from a callback sees everything that callback's request committed.
 * Never send BEGIN/COMMIT/ROLLBACK through exec: transactions belong to the write queue.
 *
 * Threading: everything here runs on the loop thread that owns `loop`, and only there.
 */
#ifndef AETHEX_COORDINATOR_DQLITE_CLIENT_H
#define AETHEX_COORDINATOR_DQLITE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "aethex/common/error.h"
#include "aethex/common/util.h"

typedef struct coord_dqlite_client coord_dqlite_client_t;
typedef struct coord_dqlite_stmt coord_dqlite_stmt_t;
typedef struct coord_dqlite_req coord_dqlite_req_t;

/* ---- values ------------------------------------------------------------------------------ */

/* Value types; the numbers are the protocol's type codes. */
typedef enum {
    COORD_DQLITE_INTEGER = 1,
    COORD_DQLITE_FLOAT = 2,
    COORD_DQLITE_TEXT = 3,
    COORD_DQLITE_BLOB = 4,
    COORD_DQLITE_NULL = 5,
    COORD_DQLITE_UNIXTIME = 9, /* rows only: an INTEGER in a DATETIME/DATE/TIMESTAMP column */
    COORD_DQLITE_ISO8601 = 10, /* TEXT in a DATETIME/DATE/TIMESTAMP column; as a param: text */
    COORD_DQLITE_BOOLEAN = 11, /* INTEGER in a BOOLEAN column; as a param: 0 or 1 */
} coord_dqlite_type_t;

/*
 * One value: a parameter to bind or a column of a row.
 * As a parameter, `s` is borrowed for the submitting call only (it is encoded at once). TEXT
 * and ISO8601 must not contain a NUL byte (the protocol's text is NUL-terminated): the call
 * fails with AX_EINVAL instead of silently truncating.
 * In a row, `s` points into the result (valid while the rows are) and TEXT/ISO8601 values
 * are also NUL-terminated at s.base[s.len].
 */
typedef struct coord_dqlite_value {
    coord_dqlite_type_t type;
    union {
        int64_t i;    /* INTEGER, UNIXTIME */
        double f;     /* FLOAT */
        bool b;       /* BOOLEAN */
        ax_slice_t s; /* TEXT, ISO8601, BLOB */
    };
} coord_dqlite_value_t;

static inline coord_dqlite_value_t coord_dqlite_int(int64_t v)
{
    return (coord_dqlite_value_t){.type = COORD_DQLITE_INTEGER, .i = v};
}
static inline coord_dqlite_value_t coord_dqlite_float(double v)
{
    return (coord_dqlite_value_t){.type = COORD_DQLITE_FLOAT, .f = v};
}
static inline coord_dqlite_value_t coord_dqlite_bool(bool v)
{
    return (coord_dqlite_value_t){.type = COORD_DQLITE_BOOLEAN, .b = v};
}
static inline coord_dqlite_value_t coord_dqlite_null(void)
{
    return (coord_dqlite_value_t){.type = COORD_DQLITE_NULL};
}
/* `s` is NUL-terminated; borrowed. */
static inline coord_dqlite_value_t coord_dqlite_text(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0')
        n++;
    return (coord_dqlite_value_t){.type = COORD_DQLITE_TEXT, .s = AX_SLICE(s, n)};
}
static inline coord_dqlite_value_t coord_dqlite_text_n(const void *p, size_t n)
{
    return (coord_dqlite_value_t){.type = COORD_DQLITE_TEXT, .s = AX_SLICE(p, n)};
}
static inline coord_dqlite_value_t coord_dqlite_iso8601(const char *s)
{
    coord_dqlite_value_t v = coord_dqlite_text(s);
    v.type = COORD_DQLITE_ISO8601;
    return v;
}
static inline coord_dqlite_value_t coord_dqlite_blob(const void *p, size_t n)
{
    return (coord_dqlite_value_t){.type = COORD_DQLITE_BLOB, .s = AX_SLICE(p, n)};
}

/*
 * A query's result: `nrows` rows of `ncols` values, row-major. All of it is owned by the
 * client and borrowed by the callback: valid only until the callback returns. Copy out what
 * you keep.
 */
typedef struct coord_dqlite_rows {
    uint32_t ncols;
    uint32_t nrows;
    const char *const *names;           /* ncols column names, NUL-terminated */
    const coord_dqlite_value_t *values; /* nrows * ncols */
} coord_dqlite_rows_t;

static inline const coord_dqlite_value_t *coord_dqlite_rows_at(const coord_dqlite_rows_t *r,
                                                               uint32_t row, uint32_t col)
{
    return &r->values[(size_t)row * r->ncols + col];
}

/* What an exec (or the last statement of a write item) reported. */
typedef struct coord_dqlite_result {
    uint64_t last_insert_id;
    uint64_t rows_affected;
} coord_dqlite_result_t;

/* ---- cluster ----------------------------------------------------------------------------- */

#define COORD_DQLITE_ADDRESS_MAX 255 /* longest "host:port" we accept or keep */

typedef enum {
    COORD_DQLITE_VOTER = 0,
    COORD_DQLITE_STANDBY = 1,
    COORD_DQLITE_SPARE = 2,
} coord_dqlite_role_t;

typedef struct coord_dqlite_node {
    uint64_t id; /* 0 in a LEADER answer: no leader known */
    coord_dqlite_role_t role;
    char address[COORD_DQLITE_ADDRESS_MAX + 1];
} coord_dqlite_node_t;

/* ---- requests ---------------------------------------------------------------------------- */

typedef void (*coord_dqlite_done_cb)(coord_dqlite_req_t *req, int status);

/*
 * A request, provided by the caller (as uv_write_t is): it must outlive its callback, and may
 * be freed or reused from inside the callback. Zero it before first use (`= {0}`), set `data`
 * and (optionally) `timeout_ms`, then submit; the client fills the rest. Results are read in
 * the callback. One request is in at most one call at a time.
 */
struct coord_dqlite_req {
    void *data;          /* user context; never touched by the client */
    uint32_t timeout_ms; /* deadline from submission; 0: the client's request_timeout_ms */

    /* Filled by the client; valid in the callback. */
    coord_dqlite_client_t *client;
    coord_dqlite_result_t result;     /* exec, exec_sql, write */
    const coord_dqlite_rows_t *rows;  /* query, query_sql: borrowed for the callback */
    coord_dqlite_node_t node;         /* leader */
    const coord_dqlite_node_t *nodes; /* cluster: nnodes entries, borrowed for the callback */
    uint32_t nnodes;
    uint64_t db_code;           /* SQLite extended code of a FAILURE reply, else 0 */
    uint32_t failed_call;       /* write item: index of the call that failed */
    char errmsg[AX_ERRMSG_LEN]; /* "" on success; context otherwise */

    struct coord_dqlite__op *op_; /* private */
};

/* ---- client ------------------------------------------------------------------------------ */

/* Every limit the client enforces. coord_dqlite_limits_default() fills sane values. */
typedef struct coord_dqlite_limits {
    uint32_t max_message_bytes; /* one server message body (header-declared, checked first) */
    uint32_t max_result_rows;   /* rows of one query, across all its ROWS batches */
    uint64_t max_result_bytes;  /* decoded bytes of one query (values + names + text/blobs) */
    uint32_t max_columns;       /* columns of one result */
    uint32_t max_nodes;         /* entries of a CLUSTER reply, and addresses remembered */
    uint32_t max_pending;       /* requests submitted and not yet called back */
    uint32_t max_sql_bytes;     /* SQL text of one statement */
    uint32_t max_request_bytes; /* one encoded request (SQL + params) */
    uint32_t max_params;        /* parameters of one statement (the protocol allows 255) */
    uint32_t max_group_items;   /* write items packed into one transaction */
    uint32_t max_group_bytes;   /* encoded requests packed into one transaction */
    uint32_t max_item_calls;    /* statements in one write item */
} coord_dqlite_limits_t;

void coord_dqlite_limits_default(coord_dqlite_limits_t *l);

typedef struct coord_dqlite_client_config {
    /* Members to ask for the leader, "a.b.c.d:port" or "[v6]:port" (numeric only: no DNS on
     * the loop). The array and its strings are copied. At least one. */
    const char *const *members;
    uint32_t nmembers;
    /* Database to OPEN, copied. NULL: no database (membership calls only, e.g. aethexctl). */
    const char *database;
    /* Statements run after OPEN on EVERY new connection, before any request: settings that
     * live per connection, which a reconnect would silently lose. Copied. Default:
     * {"PRAGMA foreign_keys = ON"} (SQLite leaves foreign keys, and so ON DELETE CASCADE,
     * off unless each connection asks). Ignored without `database`. A refusal fails the
     * connect attempt (the member is skipped, as if it did not answer). */
    const char *const *session_sql;
    uint32_t nsession_sql;
    uint32_t connect_timeout_ms; /* one TCP connect + handshake attempt to one member */
    uint32_t request_timeout_ms; /* default deadline of a request, from submission */
    uint32_t backoff_min_ms;     /* wait after a full round of members found no leader, */
    uint32_t backoff_max_ms;     /* doubling up to this */
    coord_dqlite_limits_t limits;
    void *data; /* user context: coord_dqlite_client_data() */
} coord_dqlite_client_config_t;

/* Fills defaults: no members, no database, session_sql {"PRAGMA foreign_keys = ON"},
 * connect 2 s, request 10 s, backoff 20..1000 ms, coord_dqlite_limits_default(). */
void coord_dqlite_client_config_default(coord_dqlite_client_config_t *cfg);

/*
 * Creates a client on `loop` (must outlive the client). `cfg` and everything it points to is
 * copied. Nothing connects until the first request. Returns 0, AX_EINVAL (no member, bad
 * address, bad limits) or AX_ENOMEM; on failure nothing is left allocated and *out is NULL.
 */
int coord_dqlite_client_new(uv_loop_t *loop, const coord_dqlite_client_config_t *cfg,
                            coord_dqlite_client_t **out);

typedef void (*coord_dqlite_client_close_cb)(coord_dqlite_client_t *c);

/*
 * Closes the client: the connection and timers close, every pending request is called back
 * with AX_ECANCELED (from the loop, after this returns), then `cb` (may be NULL) fires, and
 * then the client and every statement of it are freed: do not use them after `cb`. New
 * requests after close fail at once with AX_ECLOSED. Calling it twice is a bug. May be called
 * from inside any callback of the client.
 */
void coord_dqlite_client_close(coord_dqlite_client_t *c, coord_dqlite_client_close_cb cb);

void *coord_dqlite_client_data(const coord_dqlite_client_t *c);

/* The last connection-level problem ("connect 127.0.0.1:9001: connection refused"), for logs. */
const char *coord_dqlite_client_errmsg(const coord_dqlite_client_t *c);

/* The connection's lifecycle (state table in dqlite_client.c). */
typedef enum {
    COORD_DQLITE_STATE_IDLE,       /* no connection, nothing to do */
    COORD_DQLITE_STATE_CONNECTING, /* TCP connect to a candidate member */
    COORD_DQLITE_STATE_HANDSHAKE,  /* version sent, LEADER asked */
    COORD_DQLITE_STATE_OPENING,    /* on the leader: OPEN, then CLUSTER */
    COORD_DQLITE_STATE_READY,      /* on the leader, requests flow */
    COORD_DQLITE_STATE_BACKOFF,    /* a round found no leader; waiting to retry */
    COORD_DQLITE_STATE_CLOSING,
    COORD_DQLITE_STATE_CLOSED,
    COORD_DQLITE_STATE_COUNT
} coord_dqlite_state_t;

coord_dqlite_state_t coord_dqlite_client_state(const coord_dqlite_client_t *c);
const char *coord_dqlite_state_name(coord_dqlite_state_t st);

/* The leader this client is connected to ("" when none), borrowed until the next loop turn. */
const char *coord_dqlite_client_leader_address(const coord_dqlite_client_t *c);

/* Counters for logs and /metrics. */
typedef struct coord_dqlite_stats {
    uint64_t requests;        /* messages sent */
    uint64_t connects;        /* connections that reached READY */
    uint64_t leader_changes;  /* READY on a different address than the previous READY */
    uint64_t retries;         /* requests re-sent after a safe failure */
    uint64_t groups;          /* write transactions committed */
    uint64_t items;           /* write items committed */
    uint64_t unknown;         /* requests reported AX_EUNKNOWN */
    uint64_t protocol_errors; /* connections closed for a malformed reply */
} coord_dqlite_stats_t;
void coord_dqlite_client_stats(const coord_dqlite_client_t *c, coord_dqlite_stats_t *out);

/* ---- statements -------------------------------------------------------------------------- */

/*
 * A prepared statement handle of `c`. `sql` (one statement) is copied. Nothing is sent now:
 * the client PREPAREs it on the server before its first use on each connection (statements
 * do not survive a reconnect; the client re-prepares them itself), so a syntax error shows up
 * as AX_EDB from the first request that uses it (or from coord_dqlite_prepare). Returns 0,
 * AX_EINVAL (empty or longer than max_sql_bytes), AX_ECLOSED or AX_ENOMEM.
 */
int coord_dqlite_stmt_new(coord_dqlite_client_t *c, const char *sql, coord_dqlite_stmt_t **out);

/* Frees the handle (and FINALIZEs it on the server in the background). NULL does nothing.
 * It must not be used by a pending request. Not after the client's close callback. */
void coord_dqlite_stmt_free(coord_dqlite_stmt_t *stmt);

/* Prepares `stmt` on the leader now, so errors in its SQL show up early: 0 or AX_EDB. */
int coord_dqlite_prepare(coord_dqlite_req_t *req, coord_dqlite_stmt_t *stmt,
                         coord_dqlite_done_cb cb);

/* ---- SQL --------------------------------------------------------------------------------- */

/*
 * One statement with its parameters: either `stmt` (a handle of the same client) or, when
 * `stmt` is NULL, `sql` (one statement, parsed by the server each time). Everything is
 * borrowed for the submitting call: it is encoded at once.
 */
typedef struct coord_dqlite_call {
    coord_dqlite_stmt_t *stmt;
    const char *sql;
    const coord_dqlite_value_t *params;
    uint32_t nparams;
} coord_dqlite_call_t;

/*
 * Autocommit exec of one statement, outside the write queue (DDL, one-off writes). Result in
 * req->result. A write: see AX_EUNKNOWN and AX_EBUSY above. `params` borrowed.
 * Returns 0 or, without calling back: AX_EINVAL (bad value, too many params, NUL in text),
 * AX_EMSGSIZE (request over max_request_bytes), AX_ENOSPC (max_pending), AX_ECLOSED,
 * AX_ENOMEM. The same returns hold for every submitting call below.
 */
int coord_dqlite_exec(coord_dqlite_req_t *req, coord_dqlite_stmt_t *stmt,
                      const coord_dqlite_value_t *params, uint32_t nparams,
                      coord_dqlite_done_cb cb);
/* As coord_dqlite_exec with SQL text (copied). With parameters it must be ONE statement;
 * without, several statements separated by ';' run in order (e.g. a schema). */
int coord_dqlite_exec_sql(coord_dqlite_req_t *req, coord_dqlite_client_t *c, const char *sql,
                          const coord_dqlite_value_t *params, uint32_t nparams,
                          coord_dqlite_done_cb cb);

/*
 * Runs a read-only statement and accumulates all its rows (every ROWS batch) into
 * req->rows, borrowed for the callback. Past max_result_rows/max_result_bytes: AX_EMSGSIZE.
 * Retried on leader/connection loss until the deadline. A statement that yields no columns
 * (an INSERT) is refused by the server (AX_EDB): use exec.
 */
int coord_dqlite_query(coord_dqlite_req_t *req, coord_dqlite_stmt_t *stmt,
                       const coord_dqlite_value_t *params, uint32_t nparams,
                       coord_dqlite_done_cb cb);
int coord_dqlite_query_sql(coord_dqlite_req_t *req, coord_dqlite_client_t *c, const char *sql,
                           const coord_dqlite_value_t *params, uint32_t nparams,
                           coord_dqlite_done_cb cb);

/*
 * The write queue: submits one write item of `ncalls` statements (1..max_item_calls), all
 * encoded at once (`calls` and everything it points to borrowed). Items run in submission
 * order. Every item submitted while a transaction is in flight joins the next one:
 *
 *   BEGIN IMMEDIATE; [SAVEPOINT;] item calls...; [RELEASE;] ...next items...; COMMIT
 *
 * (up to max_group_items / max_group_bytes per transaction; the item statements are
 * pipelined in one write). An item is atomic: if one of its statements fails (AX_EDB,
 * req->failed_call says which), that item alone fails and none of it is committed; the
 * other items still commit (when the failed item had several statements, the client rolls
 * the group back and re-runs the others at once). Each item's callback fires after its
 * group's COMMIT answered: 0 means committed, and req->result is the last call's result.
 * A group lost before COMMIT was sent, refused as "not leader" or "database is locked", is
 * rolled back and re-run by the client (safe); a COMMIT sent without an answer makes every
 * item of that group AX_EUNKNOWN. Statement handles are PREPAREd before the group starts,
 * so a statement that uses a table created earlier in the same group must be SQL text
 * (`sql`), not a handle. `ncalls` of 0 is AX_EINVAL.
 */
int coord_dqlite_write(coord_dqlite_req_t *req, coord_dqlite_client_t *c,
                       const coord_dqlite_call_t *calls, uint32_t ncalls, coord_dqlite_done_cb cb);

/* ---- membership (no database needed) ----------------------------------------------------- */

/* The leader as the cluster reports it: req->node (id, address). */
int coord_dqlite_leader(coord_dqlite_req_t *req, coord_dqlite_client_t *c, coord_dqlite_done_cb cb);

/* Every member with its role: req->nodes / req->nnodes, borrowed for the callback. */
int coord_dqlite_cluster(coord_dqlite_req_t *req, coord_dqlite_client_t *c,
                         coord_dqlite_done_cb cb);

/* ADD node `id` at `address` (copied) as a spare (then ASSIGN it a role). A write. */
int coord_dqlite_add(coord_dqlite_req_t *req, coord_dqlite_client_t *c, uint64_t id,
                     const char *address, coord_dqlite_done_cb cb);

/* ASSIGN `role` to node `id`. A write. */
int coord_dqlite_assign(coord_dqlite_req_t *req, coord_dqlite_client_t *c, uint64_t id,
                        coord_dqlite_role_t role, coord_dqlite_done_cb cb);

/* REMOVE node `id` from the cluster. A write. */
int coord_dqlite_remove(coord_dqlite_req_t *req, coord_dqlite_client_t *c, uint64_t id,
                        coord_dqlite_done_cb cb);

/* ---- for the node ----------------------------------------------------------------------- */

/*
 * A connect function for the embedded node: dqlite_node_set_connect_func(node,
 * coord_dqlite_node_connect, arg). It connects to "a.b.c.d:port" or "[v6]:port" with
 * TCP_NODELAY set (libdqlite's default connect leaves Nagle on, which cost 3-node commits
 * 2.5-7x and ~50 ms at p99 in bench/dqlite/RESULTS.md) and gives up after `arg`
 * milliseconds (`(void *)(uintptr_t)ms`; NULL: 5000) instead of the kernel's minutes.
 * Blocking: libdqlite calls it on a libuv threadpool thread (the one exception to "loop
 * thread only" in this header). Returns 0 with the connected, blocking socket in *fd, or a
 * negative AX_E* code (libdqlite only checks for nonzero).
 */
int coord_dqlite_node_connect(void *arg, const char *address, int *fd);

#endif /* AETHEX_COORDINATOR_DQLITE_CLIENT_H */

/*
 * The dqlite client: one TCP connection to the leader, requests run one at a time on it,
 * leader discovery, per-request deadlines, safe retries and the group-commit write queue.
 * Contracts are in dqlite_client.h; the wire format in dqlite_proto.c; the design (and why
 * each failure maps to the outcome it does) in docs/protocol-dqlite.md.
 *
 * Everything that touches a user callback runs from a loop callback (the kick timer, a read,
 * the deadline tick, the close path), never from inside a submitting call (STYLE 5).
 */
#include "aethex/coordinator/dqlite_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aethex/common/alloc.h"
#include "aethex/common/log.h"
#include "aethex/common/sm.h"
#include "dqlite_proto.h"

#define LOG "dqlite"
#define TICK_MS 10        /* deadline resolution */
#define MAX_FOLLOW_HOPS 3 /* LEADER answers followed from one member before giving up on it */
#define READ_CHUNK 65536
#define WRITE_HOLD_MIN_MS 1 /* after "database is locked", wait before retrying a group */
#define WRITE_HOLD_MAX_MS 100

/* ---- the connect state table (STYLE 9) --------------------------------------------------
 *
 *            request queued                 connected
 *   IDLE ------------------> CONNECTING ------------------> HANDSHAKE
 *    ^                        ^  |  ^  refused/timeout:       |  version + LEADER sent
 *    |                        |  |  |  next member           |
 *    |                        |  |  +-- answer names another -+  (follow, at most 3 hops)
 *    |        round failed:   |  v       member
 *    |        no member knew  | BACKOFF                       | answer names this member
 *    |        a leader        |  (timer, doubling)            v
 *    |                        +------------------------ OPENING  OPEN db, CLUSTER
 *    |   lost, nothing queued        lost, work queued        | DB + SERVERS
 *    +----------------------------- READY <-------------------+
 *                                     | lost before answering anything (a node that calls
 *                                     v itself leader but refuses as "not leader"): BACKOFF
 *
 *   any state --coord_dqlite_client_close--> CLOSING --handles closed--> CLOSED
 */
static const struct ax_sm_conf state_conf[COORD_DQLITE_STATE_COUNT] = {
    [COORD_DQLITE_STATE_IDLE] = {"idle", AX_SM_BIT(COORD_DQLITE_STATE_CONNECTING) |
                                             AX_SM_BIT(COORD_DQLITE_STATE_CLOSING)},
    [COORD_DQLITE_STATE_CONNECTING] = {"connecting", AX_SM_BIT(COORD_DQLITE_STATE_CONNECTING) |
                                                         AX_SM_BIT(COORD_DQLITE_STATE_HANDSHAKE) |
                                                         AX_SM_BIT(COORD_DQLITE_STATE_BACKOFF) |
                                                         AX_SM_BIT(COORD_DQLITE_STATE_CLOSING)},
    [COORD_DQLITE_STATE_HANDSHAKE] = {"handshake", AX_SM_BIT(COORD_DQLITE_STATE_CONNECTING) |
                                                       AX_SM_BIT(COORD_DQLITE_STATE_OPENING) |
                                                       AX_SM_BIT(COORD_DQLITE_STATE_BACKOFF) |
                                                       AX_SM_BIT(COORD_DQLITE_STATE_CLOSING)},
    [COORD_DQLITE_STATE_OPENING] = {"opening", AX_SM_BIT(COORD_DQLITE_STATE_CONNECTING) |
                                                   AX_SM_BIT(COORD_DQLITE_STATE_READY) |
                                                   AX_SM_BIT(COORD_DQLITE_STATE_BACKOFF) |
                                                   AX_SM_BIT(COORD_DQLITE_STATE_CLOSING)},
    [COORD_DQLITE_STATE_READY] = {"ready", AX_SM_BIT(COORD_DQLITE_STATE_CONNECTING) |
                                               AX_SM_BIT(COORD_DQLITE_STATE_IDLE) |
                                               AX_SM_BIT(COORD_DQLITE_STATE_BACKOFF) |
                                               AX_SM_BIT(COORD_DQLITE_STATE_CLOSING)},
    [COORD_DQLITE_STATE_BACKOFF] = {"backoff", AX_SM_BIT(COORD_DQLITE_STATE_CONNECTING) |
                                                   AX_SM_BIT(COORD_DQLITE_STATE_IDLE) |
                                                   AX_SM_BIT(COORD_DQLITE_STATE_CLOSING)},
    [COORD_DQLITE_STATE_CLOSING] = {"closing", AX_SM_BIT(COORD_DQLITE_STATE_CLOSED)},
    [COORD_DQLITE_STATE_CLOSED] = {"closed", 0},
};

/* ---- types ------------------------------------------------------------------------------ */

struct list {
    struct list *prev, *next;
};

static void list_init(struct list *l)
{
    l->prev = l->next = l;
}
static bool list_empty(const struct list *l)
{
    return l->next == l;
}
static void list_remove(struct list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = e;
}
static void list_push_back(struct list *l, struct list *e)
{
    e->prev = l->prev;
    e->next = l;
    l->prev->next = e;
    l->prev = e;
}
static void list_push_front(struct list *l, struct list *e)
{
    e->next = l->next;
    e->prev = l;
    l->next->prev = e;
    l->next = e;
}

enum op_kind {
    OP_EXEC,
    OP_EXEC_SQL,
    OP_QUERY,
    OP_QUERY_SQL,
    OP_PREPARE,
    OP_FINALIZE, /* internal: no req */
    OP_WRITE,
    OP_LEADER,
    OP_CLUSTER,
    OP_ADD,
    OP_ASSIGN,
    OP_REMOVE,
};

/* One statement of a request, encoded at submission: SQL and params live in op->body. */
struct call_enc {
    coord_dqlite_stmt_t *stmt; /* NULL: sql_* below */
    uint32_t sql_off, sql_len;
    uint32_t par_off, par_len;
};

struct coord_dqlite__op {
    struct list link;
    coord_dqlite_client_t *c;
    coord_dqlite_req_t *req; /* NULL for internal ops */
    coord_dqlite_done_cb cb;
    enum op_kind kind;
    bool is_write;
    bool sent;              /* a state-changing message went to the socket this attempt */
    uint64_t deadline;      /* uv_now() milliseconds */
    ax_buf_t body;          /* owned: SQL text and params tuples of the calls */
    struct call_enc *calls; /* owned */
    uint32_t ncalls;
    uint64_t id;      /* ADD/ASSIGN/REMOVE node id */
    uint64_t role;    /* ASSIGN */
    uint32_t stmt_id; /* FINALIZE */
    uint64_t gen;     /* FINALIZE: the connection the statement lives on */
    /* Write item progress inside a group. */
    uint32_t call_i;
    bool item_failed;
    int item_status;
};

struct coord_dqlite_stmt {
    struct list link;
    coord_dqlite_client_t *c;
    char *sql; /* owned */
    size_t sql_len;
    uint32_t id;  /* server id on connection `gen` */
    uint64_t gen; /* 0: not prepared on any connection */
};

struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    coord_dqlite_client_t *c;
    ax_buf_t rbuf;
    bool closing;
    char rd[READ_CHUNK];
};

struct wreq {
    uv_write_t w;
    size_t len;
    uint8_t data[];
};

enum run_kind { RUN_OP, RUN_GROUP };

/* Group phases: BEGIN; per item [SAVEPOINT] calls [RELEASE]; COMMIT (or ROLLBACK). */
enum gphase { G_PREPARE, G_BEGIN, G_BODY, G_COMMIT, G_ROLLBACK };

enum after_rollback { AFTER_RETRY, AFTER_RETRY_HOLD, AFTER_FAIL, AFTER_UNKNOWN };

/* What is in flight on the connection: at most one request, or one write group. */
struct run {
    bool busy;
    enum run_kind kind;
    uint8_t expect; /* reply type expected besides FAILURE */
    struct coord_dqlite__op *op;
    bool preparing;
    struct coord_dqlite__rows rows;
    bool rows_live;
    coord_dqlite_node_t *nodes; /* owned during the callback */
    uint32_t nnodes;
    /* group */
    struct coord_dqlite__op **items; /* owned array, max_group_items */
    uint32_t nitems;
    uint32_t item;                            /* PREPARE scan / BODY reply cursor: item index */
    uint32_t pos;                             /* BODY reply cursor: position inside the item */
    uint32_t body_left;                       /* BODY replies still to come */
    bool f_unknown, f_hold, f_fatal, f_rerun; /* what BODY replies asked for */
    enum gphase gphase;
    bool commit_sent;
    enum after_rollback after;
    uint64_t fail_code;
    char fail_msg[AX_ERRMSG_LEN];
};

struct coord_dqlite_client {
    uv_loop_t *loop;
    coord_dqlite_client_config_t cfg; /* members/database replaced by the owned copies */
    char (*members)[COORD_DQLITE_ADDRESS_MAX + 1]; /* owned: configured, then learned */
    uint32_t nmembers, members_cap;
    char *database;     /* owned, or NULL */
    char **session_sql; /* owned: run after OPEN on every connection */
    uint32_t nsession_sql, session_i;
    ax_sm_t sm;
    struct conn *conn; /* current connection, or NULL */
    uint64_t gen;      /* connection generation; statements remember theirs */
    bool answered;     /* the current connection answered a request (READY only) */
    uint32_t db_id;
    uv_timer_t kick, tick, attempt, backoff;
    int handles; /* open uv handles, including connections still closing */
    /* The connect round. */
    uint32_t round_start, round_tried;
    int hops;
    char target[COORD_DQLITE_ADDRESS_MAX + 1];
    uint32_t backoff_ms;
    char leader[COORD_DQLITE_ADDRESS_MAX + 1];
    char last_leader[COORD_DQLITE_ADDRESS_MAX + 1];
    /* Work. */
    struct list others, writes, stmts;
    uint32_t npending;
    bool last_was_other;
    uint64_t write_hold_until;
    uint32_t write_hold_ms;
    struct run run;
    ax_buf_t scratch;
    coord_dqlite_stats_t stats;
    char errmsg[AX_ERRMSG_LEN];
    coord_dqlite_client_close_cb close_cb;
    bool closing;
};

static void schedule(coord_dqlite_client_t *c);
static void conn_lost(coord_dqlite_client_t *c, bool proto, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void attempt_failed(coord_dqlite_client_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void try_next_member(coord_dqlite_client_t *c);
static void run_op_send(coord_dqlite_client_t *c);
static void group_finish(coord_dqlite_client_t *c, int status);
static void finish_close(coord_dqlite_client_t *c);

/* ---- defaults ---------------------------------------------------------------------------- */

void coord_dqlite_limits_default(coord_dqlite_limits_t *l)
{
    l->max_message_bytes = 16u << 20;
    l->max_result_rows = 1000000;
    l->max_result_bytes = 64u << 20;
    l->max_columns = 256;
    l->max_nodes = 64;
    l->max_pending = 65536;
    l->max_sql_bytes = 1u << 20;
    l->max_request_bytes = 4u << 20;
    l->max_params = COORD_DQLITE__MAX_PARAMS;
    l->max_group_items = 1000;
    l->max_group_bytes = 4u << 20;
    l->max_item_calls = 256;
}

static const char *const default_session_sql[] = {"PRAGMA foreign_keys = ON"};

void coord_dqlite_client_config_default(coord_dqlite_client_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->session_sql = default_session_sql;
    cfg->nsession_sql = AX_ARRAY_SIZE(default_session_sql);
    cfg->connect_timeout_ms = 2000;
    cfg->request_timeout_ms = 10000;
    cfg->backoff_min_ms = 20;
    cfg->backoff_max_ms = 1000;
    coord_dqlite_limits_default(&cfg->limits);
}

/* ---- small helpers ----------------------------------------------------------------------- */

static void set_errmsg(char *dst, const char *fmt, va_list ap)
{
    vsnprintf(dst, AX_ERRMSG_LEN, fmt, ap);
}

static void req_errmsg(coord_dqlite_req_t *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void req_errmsg(coord_dqlite_req_t *req, const char *fmt, ...)
{
    if (req == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    set_errmsg(req->errmsg, fmt, ap);
    va_end(ap);
}

/* "host:port" with a numeric IPv4 host, or "[v6]:port". */
static int parse_address(const char *addr, struct sockaddr_storage *out)
{
    size_t n = strlen(addr);
    if (n == 0 || n > COORD_DQLITE_ADDRESS_MAX)
        return AX_EINVAL;
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0')
        return AX_EINVAL;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535)
        return AX_EINVAL;
    char host[COORD_DQLITE_ADDRESS_MAX + 1];
    size_t hl = (size_t)(colon - addr);
    memcpy(host, addr, hl);
    host[hl] = '\0';
    memset(out, 0, sizeof *out);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)out) == 0 ? 0 : AX_EINVAL;
    }
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ? 0 : AX_EINVAL;
}

static bool has_member(const coord_dqlite_client_t *c, const char *addr)
{
    for (uint32_t i = 0; i < c->nmembers; i++)
        if (strcmp(c->members[i], addr) == 0)
            return true;
    return false;
}

static void add_member(coord_dqlite_client_t *c, const char *addr)
{
    if (addr[0] == '\0' || strlen(addr) > COORD_DQLITE_ADDRESS_MAX || has_member(c, addr) ||
        c->nmembers >= c->members_cap)
        return;
    snprintf(c->members[c->nmembers++], COORD_DQLITE_ADDRESS_MAX + 1, "%s", addr);
}

static coord_dqlite_state_t state(const coord_dqlite_client_t *c)
{
    return (coord_dqlite_state_t)ax_sm_state(&c->sm);
}

static void move(coord_dqlite_client_t *c, coord_dqlite_state_t next)
{
    ax_sm_move(&c->sm, next);
}

static uint64_t now_ms(const coord_dqlite_client_t *c)
{
    return uv_now(c->loop);
}

/* SQLite's primary code is the low byte of the extended code. */
static uint64_t primary(uint64_t code)
{
    return code & 0xff;
}

/* ---- op lifecycle ------------------------------------------------------------------------ */

static void op_free(struct coord_dqlite__op *op)
{
    ax_buf_close(&op->body);
    ax_free(op->calls);
    ax_free(op);
}

/*
 * Calls the op's callback once and frees the op. The request no longer refers to the op when
 * its callback runs, so the callback may reuse or free the request.
 */
static void op_complete(coord_dqlite_client_t *c, struct coord_dqlite__op *op, int status)
{
    AX_PRE(c->npending > 0 || op->req == NULL);
    if (op->req != NULL) {
        c->npending--;
        coord_dqlite_req_t *req = op->req;
        coord_dqlite_done_cb cb = op->cb;
        req->op_ = NULL;
        if (status == AX_EUNKNOWN)
            c->stats.unknown++;
        if (status != 0 && req->errmsg[0] == '\0')
            snprintf(req->errmsg, sizeof req->errmsg, "%s", ax_strerror(status));
        op_free(op);
        cb(req, status);
        return;
    }
    op_free(op);
}

static struct list *queue_of(coord_dqlite_client_t *c, struct coord_dqlite__op *op)
{
    return op->kind == OP_WRITE ? &c->writes : &c->others;
}

/* Puts an op back at the front of its queue for a safe retry, with its progress reset. */
static void op_requeue(coord_dqlite_client_t *c, struct coord_dqlite__op *op)
{
    op->sent = false;
    op->call_i = 0;
    op->item_failed = false;
    op->item_status = 0;
    if (op->req != NULL) {
        op->req->errmsg[0] = '\0';
        op->req->db_code = 0;
        op->req->failed_call = 0;
    }
    c->stats.retries++;
    list_push_front(queue_of(c, op), &op->link);
}

/*
 * Decides what a lost in-flight op becomes: a write that went out cannot be known; a
 * malformed reply is reported (retrying could loop on a broken server); an op past its
 * deadline times out; everything else is retried.
 */
static void op_settle_lost(coord_dqlite_client_t *c, struct coord_dqlite__op *op, bool proto,
                           bool write_sent, const char *why)
{
    if (op->req == NULL) {
        op_free(op); /* FINALIZE: the statement died with the connection */
        return;
    }
    if (op->is_write && write_sent) {
        req_errmsg(op->req, "outcome unknown: %s", why);
        op_complete(c, op, AX_EUNKNOWN);
    } else if (proto) {
        req_errmsg(op->req, "%s", why);
        op_complete(c, op, AX_EPROTO);
    } else if (now_ms(c) >= op->deadline) {
        req_errmsg(op->req, "timed out: %s", why);
        op_complete(c, op, AX_ETIMEDOUT);
    } else {
        op_requeue(c, op);
    }
}

static void run_clear(coord_dqlite_client_t *c)
{
    struct run *r = &c->run;
    if (r->rows_live) {
        coord_dqlite__rows_close(&r->rows);
        r->rows_live = false;
    }
    ax_free(r->nodes);
    r->nodes = NULL;
    r->nnodes = 0;
    r->busy = false;
    r->op = NULL;
    r->nitems = 0;
    r->preparing = false;
}

/* Settles whatever is in flight after the connection went away. */
static void settle_inflight(coord_dqlite_client_t *c, bool proto, const char *why)
{
    struct run *r = &c->run;
    if (!r->busy)
        return;
    if (r->kind == RUN_OP) {
        struct coord_dqlite__op *op = r->op;
        bool sent = op->sent;
        run_clear(c);
        op_settle_lost(c, op, proto, sent, why);
        return;
    }
    /* A group: nothing is committed before COMMIT is sent, so until then every item can be
     * re-run; after it, the items' fate is unknown (those that already failed keep their
     * own, definite, error). Requeue in reverse so the front keeps submission order. */
    uint32_t n = r->nitems;
    /* A statement error that may have ended the transaction under us means statements
     * after it may have autocommitted: as unknown as a COMMIT without an answer. */
    bool commit_sent = r->commit_sent || r->f_unknown;
    struct coord_dqlite__op *items[n > 0 ? n : 1];
    memcpy(items, r->items, n * sizeof *items);
    run_clear(c);
    if (commit_sent) {
        for (uint32_t i = 0; i < n; i++) {
            if (items[i]->item_failed)
                op_complete(c, items[i], items[i]->item_status);
            else
                op_settle_lost(c, items[i], proto, true, why);
        }
        return;
    }
    for (uint32_t i = n; i-- > 0;) {
        if (now_ms(c) >= items[i]->deadline || proto)
            op_settle_lost(c, items[i], proto, false, why);
        else
            op_requeue(c, items[i]);
    }
}

/* ---- connection I/O ---------------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *conn = h->data;
    coord_dqlite_client_t *c = conn->c;
    ax_buf_close(&conn->rbuf);
    ax_free(conn);
    c->handles--;
    if (c->closing && c->handles == 0)
        finish_close(c);
}

/* Detaches and closes the current connection (asynchronously). */
static void conn_close(coord_dqlite_client_t *c)
{
    struct conn *conn = c->conn;
    if (conn == NULL)
        return;
    c->conn = NULL;
    conn->closing = true;
    uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
}

static void on_write(uv_write_t *w, int status)
{
    struct wreq *wr = ax_container_of(w, struct wreq, w);
    struct conn *conn = w->handle->data;
    ax_free(wr);
    if (status < 0 && !conn->closing && conn->c->conn == conn && !conn->c->closing)
        conn_lost(conn->c, false, "write to %s: %s", conn->c->target, uv_strerror(status));
}

/* Sends what is in c->scratch on the current connection. */
static int send_scratch(coord_dqlite_client_t *c)
{
    AX_PRE(c->conn != NULL);
    struct wreq *wr = ax_malloc(sizeof *wr + c->scratch.len);
    if (wr == NULL)
        return AX_ENOMEM;
    wr->len = c->scratch.len;
    memcpy(wr->data, c->scratch.base, c->scratch.len);
    uv_buf_t buf = uv_buf_init((char *)wr->data, (unsigned)wr->len);
    int rv = uv_write(&wr->w, (uv_stream_t *)&c->conn->tcp, &buf, 1, on_write);
    if (rv != 0) {
        ax_free(wr);
        return rv;
    }
    c->stats.requests++;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *conn = h->data;
    *buf = uv_buf_init(conn->rd, sizeof conn->rd);
}

static void on_message(coord_dqlite_client_t *c, const struct coord_dqlite__msg *m);

/*
 * libdqlite 1.11 leaves Nagle's algorithm on for client connections, so when it answers a
 * pipelined write group its second small reply waits for our ACK of the first, and Linux
 * delays that ACK up to 40 ms: every group paid ~40 ms (measured: bench/dqlite/RESULTS.md).
 * Asking for an immediate ACK after each read (TCP_QUICKACK is not sticky) removes the stall.
 */
static void ack_now(struct conn *conn)
{
#ifdef TCP_QUICKACK
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno((const uv_handle_t *)&conn->tcp, &fd) == 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
    (void)conn;
#endif
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *conn = s->data;
    coord_dqlite_client_t *c = conn->c;
    if (conn->closing || c->conn != conn || c->closing)
        return;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (state(c) == COORD_DQLITE_STATE_READY)
            conn_lost(c, false, "connection to %s: %s", c->target, uv_strerror((int)nread));
        else
            attempt_failed(c, "%s: %s", c->target, uv_strerror((int)nread));
        return;
    }
    ack_now(conn);
    int rv = ax_buf_append(&conn->rbuf, conn->rd, (size_t)nread);
    if (rv != 0) {
        conn_lost(c, true, "read buffer: %s", ax_strerror(rv));
        return;
    }
    /* Whole messages only; each may close the connection, so check before the next. */
    while (c->conn == conn && !c->closing) {
        struct coord_dqlite__msg m;
        long n = coord_dqlite__msg_parse(conn->rbuf.base, conn->rbuf.len,
                                         c->cfg.limits.max_message_bytes, &m);
        if (n == 0)
            break;
        if (n < 0) {
            if (state(c) == COORD_DQLITE_STATE_READY) {
                conn_lost(c, true, "reply from %s: body over max_message_bytes %u", c->target,
                          c->cfg.limits.max_message_bytes);
            } else {
                c->stats.protocol_errors++;
                attempt_failed(c, "reply from %s: body over max_message_bytes", c->target);
            }
            return;
        }
        on_message(c, &m);
        /* The connection (and its buffer) stays allocated until its close callback. */
        ax_buf_consume(&conn->rbuf, (size_t)n);
    }
}

/* ---- connecting -------------------------------------------------------------------------- */

static void on_attempt_timeout(uv_timer_t *t)
{
    coord_dqlite_client_t *c = t->data;
    attempt_failed(c, "%s: no answer within connect_timeout_ms %u", c->target,
                   c->cfg.connect_timeout_ms);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *conn = req->handle->data;
    coord_dqlite_client_t *c = conn->c;
    if (conn->closing || c->conn != conn || c->closing)
        return;
    if (status < 0) {
        attempt_failed(c, "connect %s: %s", c->target, uv_strerror(status));
        return;
    }
    move(c, COORD_DQLITE_STATE_HANDSHAKE);
    int rv = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    ax_buf_reset(&c->scratch);
    if (rv == 0)
        rv = coord_dqlite__encode_handshake(&c->scratch);
    if (rv == 0)
        rv = coord_dqlite__encode_leader(&c->scratch);
    if (rv == 0)
        rv = send_scratch(c);
    if (rv != 0)
        attempt_failed(c, "handshake with %s: %s", c->target, ax_strerror(rv));
}

static void connect_to(coord_dqlite_client_t *c, const char *addr)
{
    move(c, COORD_DQLITE_STATE_CONNECTING);
    snprintf(c->target, sizeof c->target, "%s", addr);
    struct sockaddr_storage sa;
    if (parse_address(addr, &sa) != 0) {
        attempt_failed(c, "bad member address \"%s\"", addr);
        return;
    }
    struct conn *conn = ax_malloc(sizeof *conn);
    if (conn == NULL) {
        attempt_failed(c, "connect %s: out of memory", addr);
        return;
    }
    conn->c = c;
    conn->closing = false;
    ax_buf_init(&conn->rbuf, (size_t)c->cfg.limits.max_message_bytes + 2 * READ_CHUNK);
    int rv = uv_tcp_init(c->loop, &conn->tcp);
    if (rv != 0) {
        ax_free(conn);
        attempt_failed(c, "connect %s: %s", addr, uv_strerror(rv));
        return;
    }
    conn->tcp.data = conn;
    c->handles++;
    c->conn = conn;
    c->gen++;
    uv_tcp_nodelay(&conn->tcp, 1);
    uv_timer_start(&c->attempt, on_attempt_timeout, c->cfg.connect_timeout_ms, 0);
    rv = uv_tcp_connect(&conn->connect, &conn->tcp, (const struct sockaddr *)&sa, on_connect);
    if (rv != 0)
        attempt_failed(c, "connect %s: %s", addr, uv_strerror(rv));
}

static void start_round(coord_dqlite_client_t *c)
{
    /* Ask the last leader first: after a blip it is the likeliest answer. */
    c->round_start = 0;
    for (uint32_t i = 0; i < c->nmembers; i++)
        if (c->last_leader[0] != '\0' && strcmp(c->members[i], c->last_leader) == 0)
            c->round_start = i;
    c->round_tried = 0;
    try_next_member(c);
}

static void on_backoff(uv_timer_t *t)
{
    coord_dqlite_client_t *c = t->data;
    if (c->closing)
        return;
    if (c->npending == 0) {
        move(c, COORD_DQLITE_STATE_IDLE);
        return;
    }
    move(c, COORD_DQLITE_STATE_CONNECTING);
    start_round(c);
}

static void try_next_member(coord_dqlite_client_t *c)
{
    if (c->round_tried >= c->nmembers) {
        /* Nobody knew a leader: wait, doubling, then ask everyone again. */
        move(c, COORD_DQLITE_STATE_BACKOFF);
        uv_timer_start(&c->backoff, on_backoff, c->backoff_ms, 0);
        c->backoff_ms =
            c->backoff_ms * 2 > c->cfg.backoff_max_ms ? c->cfg.backoff_max_ms : c->backoff_ms * 2;
        return;
    }
    uint32_t i = (c->round_start + c->round_tried) % c->nmembers;
    c->round_tried++;
    c->hops = 0;
    connect_to(c, c->members[i]);
}

static void attempt_failed(coord_dqlite_client_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_errmsg(c->errmsg, fmt, ap);
    va_end(ap);
    AX_LOG_D(LOG, "%s", c->errmsg);
    uv_timer_stop(&c->attempt);
    conn_close(c);
    if (c->closing)
        return;
    try_next_member(c);
}

static void became_ready(coord_dqlite_client_t *c)
{
    uv_timer_stop(&c->attempt);
    c->answered = false;
    move(c, COORD_DQLITE_STATE_READY);
    snprintf(c->leader, sizeof c->leader, "%s", c->target);
    c->stats.connects++;
    if (c->last_leader[0] != '\0' && strcmp(c->last_leader, c->leader) != 0)
        c->stats.leader_changes++;
    if (strcmp(c->last_leader, c->leader) != 0)
        AX_LOG_I(LOG, "leader=%s connected", c->leader);
    snprintf(c->last_leader, sizeof c->last_leader, "%s", c->leader);
    schedule(c);
}

static void send_or_fail_attempt(coord_dqlite_client_t *c, int rv, const char *what)
{
    if (rv == 0)
        rv = send_scratch(c);
    if (rv != 0)
        attempt_failed(c, "%s to %s: %s", what, c->target, ax_strerror(rv));
}

static void send_cluster(coord_dqlite_client_t *c)
{
    ax_buf_reset(&c->scratch);
    send_or_fail_attempt(c, coord_dqlite__encode_cluster(&c->scratch), "CLUSTER");
}

/* A reply while connecting: LEADER's answer, then OPEN's and CLUSTER's. */
static void on_connect_message(coord_dqlite_client_t *c, const struct coord_dqlite__msg *m)
{
    if (m->type == COORD_DQLITE__RESP_FAILURE) {
        uint64_t code = 0;
        ax_slice_t msg = AX_SLICE_LIT("");
        if (coord_dqlite__decode_failure(m->body, &code, &msg) != 0)
            c->stats.protocol_errors++;
        const char *what = state(c) == COORD_DQLITE_STATE_HANDSHAKE ? "LEADER"
                           : c->session_i > 0 ? c->session_sql[c->session_i - 1]
                                              : "OPEN";
        attempt_failed(c, "%s refused %s: %.*s (%llu)", c->target, what,
                       (int)(msg.len > 160 ? 160 : msg.len), (const char *)msg.base,
                       (unsigned long long)code);
        return;
    }
    if (state(c) == COORD_DQLITE_STATE_HANDSHAKE) {
        uint64_t id;
        ax_slice_t addr;
        if (m->type != COORD_DQLITE__RESP_SERVER ||
            coord_dqlite__decode_server(m->body, &id, &addr) != 0 ||
            addr.len > COORD_DQLITE_ADDRESS_MAX) {
            c->stats.protocol_errors++;
            attempt_failed(c, "%s: malformed LEADER reply", c->target);
            return;
        }
        if (id == 0 || addr.len == 0) {
            attempt_failed(c, "%s knows no leader", c->target);
            return;
        }
        char leader[COORD_DQLITE_ADDRESS_MAX + 1];
        memcpy(leader, addr.base, addr.len);
        leader[addr.len] = '\0';
        add_member(c, leader);
        if (strcmp(leader, c->target) != 0) {
            /* Follow the answer to the leader; a bounded number of hops per member. */
            if (c->hops >= MAX_FOLLOW_HOPS) {
                attempt_failed(c, "%s: leader keeps moving", c->target);
                return;
            }
            c->hops++;
            uv_timer_stop(&c->attempt);
            conn_close(c);
            connect_to(c, leader);
            return;
        }
        move(c, COORD_DQLITE_STATE_OPENING);
        if (c->database == NULL) {
            send_cluster(c);
            return;
        }
        ax_buf_reset(&c->scratch);
        send_or_fail_attempt(
            c, coord_dqlite__encode_open(&c->scratch, AX_SLICE(c->database, strlen(c->database))),
            "OPEN");
        return;
    }
    /* OPENING: DB (when a database is configured), the session statements, then SERVERS. */
    if (m->type == COORD_DQLITE__RESP_DB || m->type == COORD_DQLITE__RESP_RESULT) {
        int rv;
        if (m->type == COORD_DQLITE__RESP_DB) {
            rv = coord_dqlite__decode_db(m->body, &c->db_id);
            c->session_i = 0;
        } else {
            coord_dqlite_result_t res;
            rv = c->session_i > 0 ? coord_dqlite__decode_result(m->body, &res) : AX_EPROTO;
        }
        if (rv != 0) {
            c->stats.protocol_errors++;
            attempt_failed(c, "%s: malformed reply type %u while opening", c->target, m->type);
            return;
        }
        if (c->session_i < c->nsession_sql) {
            /* Per-connection settings (PRAGMA foreign_keys...) die with each connection. */
            const char *sql = c->session_sql[c->session_i++];
            ax_buf_reset(&c->scratch);
            send_or_fail_attempt(
                c,
                coord_dqlite__encode_sql_req(&c->scratch, COORD_DQLITE__REQ_EXEC_SQL, c->db_id,
                                             AX_SLICE(sql, strlen(sql)), AX_SLICE(NULL, 0)),
                "session SQL");
            return;
        }
        send_cluster(c);
        return;
    }
    if (m->type == COORD_DQLITE__RESP_SERVERS) {
        coord_dqlite_node_t *nodes;
        uint32_t n;
        int rv = coord_dqlite__decode_servers(m->body, c->cfg.limits.max_nodes, &nodes, &n);
        if (rv != 0) {
            c->stats.protocol_errors++;
            attempt_failed(c, "%s: CLUSTER reply: %s", c->target, ax_strerror(rv));
            return;
        }
        for (uint32_t i = 0; i < n; i++)
            add_member(c, nodes[i].address);
        ax_free(nodes);
        became_ready(c);
        return;
    }
    c->stats.protocol_errors++;
    attempt_failed(c, "%s: unexpected reply type %u while connecting", c->target, m->type);
}

/* ---- losing the connection ---------------------------------------------------------------- */

static void conn_lost(coord_dqlite_client_t *c, bool proto, const char *fmt, ...)
{
    char why[AX_ERRMSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    set_errmsg(why, fmt, ap);
    va_end(ap);
    snprintf(c->errmsg, sizeof c->errmsg, "%s", why);
    if (proto)
        c->stats.protocol_errors++;
    if (state(c) != COORD_DQLITE_STATE_READY) {
        /* Still connecting: this member failed, try the next. */
        attempt_failed(c, "%s", why);
        return;
    }
    AX_LOG_W(LOG, "leader=%s connection closed: %s", c->target, why);
    conn_close(c);
    c->leader[0] = '\0';
    if (!c->answered) {
        /* Lost before answering anything: reconnecting at once could spin against a node
         * that keeps calling itself leader and refusing. Settle, then wait. */
        move(c, COORD_DQLITE_STATE_BACKOFF);
        settle_inflight(c, proto, why);
        if (c->closing)
            return;
        uv_timer_start(&c->backoff, on_backoff, c->backoff_ms, 0);
        c->backoff_ms =
            c->backoff_ms * 2 > c->cfg.backoff_max_ms ? c->cfg.backoff_max_ms : c->backoff_ms * 2;
        return;
    }
    move(c, COORD_DQLITE_STATE_IDLE);
    /* Callbacks may submit, close, or free requests; the state above is already true. */
    settle_inflight(c, proto, why);
    if (c->closing)
        return;
    if (state(c) == COORD_DQLITE_STATE_IDLE && c->npending > 0) {
        move(c, COORD_DQLITE_STATE_CONNECTING);
        start_round(c);
    }
}

/* ---- running single requests ------------------------------------------------------------- */

static int encode_call(coord_dqlite_client_t *c, const struct coord_dqlite__op *op,
                       const struct call_enc *call, bool query)
{
    ax_slice_t params = AX_SLICE(op->body.base + call->par_off, call->par_len);
    if (call->stmt != NULL)
        return coord_dqlite__encode_stmt_req(
            &c->scratch, query ? COORD_DQLITE__REQ_QUERY : COORD_DQLITE__REQ_EXEC, c->db_id,
            call->stmt->id, params);
    return coord_dqlite__encode_sql_req(
        &c->scratch, query ? COORD_DQLITE__REQ_QUERY_SQL : COORD_DQLITE__REQ_EXEC_SQL, c->db_id,
        AX_SLICE(op->body.base + call->sql_off, call->sql_len), params);
}

static bool needs_prepare(const coord_dqlite_client_t *c, const coord_dqlite_stmt_t *s)
{
    return s != NULL && s->gen != c->gen;
}

static int encode_prepare(coord_dqlite_client_t *c, const coord_dqlite_stmt_t *s)
{
    return coord_dqlite__encode_prepare(&c->scratch, c->db_id, AX_SLICE(s->sql, s->sql_len));
}

/* Sends the next message of the single op in flight. */
static void run_op_send(coord_dqlite_client_t *c)
{
    struct run *r = &c->run;
    struct coord_dqlite__op *op = r->op;
    int rv = 0;
    bool state_changing = false;
    ax_buf_reset(&c->scratch);
    r->preparing = false;
    switch (op->kind) {
    case OP_EXEC:
    case OP_QUERY:
    case OP_PREPARE:
        if (needs_prepare(c, op->calls[0].stmt) || op->kind == OP_PREPARE) {
            r->preparing = true;
            r->expect = COORD_DQLITE__RESP_STMT;
            rv = encode_prepare(c, op->calls[0].stmt);
            break;
        }
        /* fall through */
    case OP_EXEC_SQL:
    case OP_QUERY_SQL: {
        bool query = op->kind == OP_QUERY || op->kind == OP_QUERY_SQL;
        r->expect = query ? COORD_DQLITE__RESP_ROWS : COORD_DQLITE__RESP_RESULT;
        state_changing = !query;
        if (query && !r->rows_live) {
            coord_dqlite__rows_init(&r->rows, c->cfg.limits.max_result_rows,
                                    c->cfg.limits.max_result_bytes, c->cfg.limits.max_columns);
            r->rows_live = true;
        }
        rv = encode_call(c, op, &op->calls[0], query);
        break;
    }
    case OP_FINALIZE:
        r->expect = COORD_DQLITE__RESP_EMPTY;
        rv = coord_dqlite__encode_finalize(&c->scratch, c->db_id, op->stmt_id);
        break;
    case OP_LEADER:
        r->expect = COORD_DQLITE__RESP_SERVER;
        rv = coord_dqlite__encode_leader(&c->scratch);
        break;
    case OP_CLUSTER:
        r->expect = COORD_DQLITE__RESP_SERVERS;
        rv = coord_dqlite__encode_cluster(&c->scratch);
        break;
    case OP_ADD:
        r->expect = COORD_DQLITE__RESP_EMPTY;
        state_changing = true;
        rv = coord_dqlite__encode_add(&c->scratch, op->id, AX_SLICE(op->body.base, op->body.len));
        break;
    case OP_ASSIGN:
        r->expect = COORD_DQLITE__RESP_EMPTY;
        state_changing = true;
        rv = coord_dqlite__encode_assign(&c->scratch, op->id, op->role);
        break;
    case OP_REMOVE:
        r->expect = COORD_DQLITE__RESP_EMPTY;
        state_changing = true;
        rv = coord_dqlite__encode_remove(&c->scratch, op->id);
        break;
    case OP_WRITE:
        AX_ASSERT(!"write items run in groups");
    }
    if (rv == 0)
        rv = send_scratch(c);
    if (rv != 0) {
        /* Nothing went out: the op can still be settled as never sent. */
        run_clear(c);
        req_errmsg(op->req, "send: %s", ax_strerror(rv));
        if (rv == AX_ENOMEM || rv == AX_EMSGSIZE || rv == AX_EINVAL)
            op_complete(c, op, rv);
        else
            op_requeue(c, op), conn_lost(c, false, "write: %s", ax_strerror(rv));
        return;
    }
    if (state_changing)
        op->sent = true;
}

/* What a FAILURE reply to a single request becomes. */
static void run_op_failure(coord_dqlite_client_t *c, uint64_t code, ax_slice_t msg)
{
    struct run *r = &c->run;
    struct coord_dqlite__op *op = r->op;
    bool write = op->is_write && op->sent;
    if (op->req != NULL) {
        op->req->db_code = code;
        req_errmsg(op->req, "%.*s", (int)msg.len, (const char *)msg.base);
    }
    if (code == COORD_DQLITE__SQLITE_IOERR_NOT_LEADER) {
        /* Refused before executing anything: safe to retry on the new leader. */
        op->sent = false;
        conn_lost(c, false, "%s is no longer the leader", c->target);
        return;
    }
    if (primary(code) == COORD_DQLITE__SQLITE_IOERR && !r->preparing) {
        /* Leadership lost (or a Raft I/O error) while executing. */
        if (write) {
            conn_lost(c, false, "%.*s (%llu)", (int)msg.len, (const char *)msg.base,
                      (unsigned long long)code);
        } else {
            op->sent = false;
            conn_lost(c, false, "read failed on %s: %.*s", c->target, (int)msg.len,
                      (const char *)msg.base);
        }
        return;
    }
    run_clear(c);
    if (op->req == NULL) {
        op_free(op);
    } else {
        int st = (primary(code) == COORD_DQLITE__SQLITE_BUSY ||
                  primary(code) == COORD_DQLITE__SQLITE_LOCKED)
                     ? AX_EBUSY
                     : AX_EDB;
        op_complete(c, op, st);
    }
    schedule(c);
}

static void run_op_reply(coord_dqlite_client_t *c, const struct coord_dqlite__msg *m)
{
    struct run *r = &c->run;
    struct coord_dqlite__op *op = r->op;
    coord_dqlite_req_t *req = op->req;
    int rv = 0;
    if (r->preparing) {
        uint32_t db, id;
        uint64_t nparams;
        rv = coord_dqlite__decode_stmt(m->body, &db, &id, &nparams);
        if (rv != 0)
            goto proto;
        op->calls[0].stmt->id = id;
        op->calls[0].stmt->gen = c->gen;
        if (op->kind == OP_PREPARE) {
            run_clear(c);
            op_complete(c, op, 0);
            schedule(c);
            return;
        }
        run_op_send(c);
        return;
    }
    switch (op->kind) {
    case OP_EXEC:
    case OP_EXEC_SQL:
        rv = coord_dqlite__decode_result(m->body, &req->result);
        break;
    case OP_QUERY:
    case OP_QUERY_SQL:
        rv = coord_dqlite__rows_feed(&r->rows, m->body);
        if (rv == AX_ENOMEM) {
            /* The rest of the result is still on its way: drop the connection rather
             * than try to resynchronise. */
            req_errmsg(req, "out of memory decoding rows");
            run_clear(c);
            op_complete(c, op, AX_ENOMEM);
            conn_lost(c, false, "out of memory decoding rows");
            return;
        }
        if (rv != 0)
            goto proto;
        if (!r->rows.done)
            return; /* another ROWS batch follows */
        if (r->rows.overflow) {
            req_errmsg(req, "result over max_result_rows %u or max_result_bytes %llu",
                       c->cfg.limits.max_result_rows,
                       (unsigned long long)c->cfg.limits.max_result_bytes);
            run_clear(c);
            op_complete(c, op, AX_EMSGSIZE);
            schedule(c);
            return;
        }
        req->rows = &r->rows.pub;
        break;
    case OP_FINALIZE:
    case OP_ADD:
    case OP_ASSIGN:
    case OP_REMOVE:
        rv = coord_dqlite__decode_empty(m->body);
        break;
    case OP_LEADER: {
        ax_slice_t addr;
        rv = coord_dqlite__decode_server(m->body, &req->node.id, &addr);
        if (rv == 0 && addr.len > COORD_DQLITE_ADDRESS_MAX)
            rv = AX_EPROTO;
        if (rv == 0) {
            memcpy(req->node.address, addr.base, addr.len);
            req->node.address[addr.len] = '\0';
            req->node.role = COORD_DQLITE_VOTER;
        }
        break;
    }
    case OP_CLUSTER:
        rv = coord_dqlite__decode_servers(m->body, c->cfg.limits.max_nodes, &r->nodes, &r->nnodes);
        if (rv == AX_ENOMEM) {
            /* The whole reply was read: the connection is still in step, keep it. */
            req_errmsg(req, "out of memory decoding CLUSTER");
            run_clear(c);
            op_complete(c, op, AX_ENOMEM);
            schedule(c);
            return;
        }
        if (rv == 0) {
            req->nodes = r->nodes;
            req->nnodes = r->nnodes;
            for (uint32_t i = 0; i < r->nnodes; i++)
                add_member(c, r->nodes[i].address);
        }
        break;
    case OP_PREPARE:
    case OP_WRITE:
        rv = AX_EPROTO;
        break;
    }
    if (rv != 0)
        goto proto;
    /* The rows/nodes stay alive in c->run through the callback, then go. */
    r->busy = false;
    r->op = NULL;
    op_complete(c, op, 0);
    if (!r->busy)
        run_clear(c);
    schedule(c);
    return;

proto:
    conn_lost(c, true, "malformed reply type %u from %s", m->type, c->target);
}

/* ---- running write groups ----------------------------------------------------------------
 *
 * A group is four steps, so that N statements cost about three round trips, not N + 2:
 *
 *   PREPARE   each statement handle not yet prepared on this connection, one at a time
 *             (their ids are needed to encode EXEC); a bad statement fails its item alone;
 *   BEGIN IMMEDIATE   alone: it takes the write lock now, so "database is locked" can only
 *             come here (nothing to undo) and never from a statement inside the transaction
 *             (SQLite may roll a transaction back by itself on SQLITE_BUSY, and statements
 *             pipelined after that would run in autocommit);
 *   BODY      every item's [SAVEPOINT] statements [RELEASE], written at once; the server
 *             answers them in order and the replies are matched with a cursor;
 *   COMMIT    alone, only once every BODY reply is in and none asks for a rollback.
 *
 * A multi-statement item failing in BODY cannot be undone alone any more (its RELEASE was
 * already pipelined): the group is rolled back, the failed item reports its error and the
 * others are re-run. A statement error that may have rolled the transaction back under us
 * (SQLITE_IOERR, FULL, NOMEM) makes every other item AX_EUNKNOWN.
 */

static bool item_has_savepoint(const struct coord_dqlite__op *op)
{
    return op->ncalls > 1;
}

/* Replies BODY expects from one item: [SAVEPOINT] calls [RELEASE]. */
static uint32_t item_replies(const struct coord_dqlite__op *op)
{
    return op->ncalls + (item_has_savepoint(op) ? 2 : 0);
}

static int encode_const(coord_dqlite_client_t *c, const char *sql)
{
    return coord_dqlite__encode_sql_req(&c->scratch, COORD_DQLITE__REQ_EXEC_SQL, c->db_id,
                                        AX_SLICE(sql, strlen(sql)), AX_SLICE(NULL, 0));
}

static void group_send_const(coord_dqlite_client_t *c, enum gphase ph, const char *sql)
{
    struct run *r = &c->run;
    r->gphase = ph;
    r->expect = COORD_DQLITE__RESP_RESULT;
    ax_buf_reset(&c->scratch);
    int rv = encode_const(c, sql);
    if (rv == 0)
        rv = send_scratch(c);
    if (rv != 0) {
        conn_lost(c, false, "write %s: %s", sql, ax_strerror(rv));
        return;
    }
    if (ph == G_COMMIT)
        r->commit_sent = true;
}

static void item_fail(struct coord_dqlite__op *op, uint32_t call, uint64_t code, ax_slice_t msg)
{
    if (op->item_failed)
        return; /* the first failure of an item is the one reported */
    op->item_failed = true;
    op->item_status = AX_EDB;
    op->req->db_code = code;
    op->req->failed_call = call;
    req_errmsg(op->req, "%.*s", (int)msg.len, (const char *)msg.base);
}

/* PREPARE the next statement of the group not yet prepared on this connection, or move on
 * to BEGIN IMMEDIATE when there is none. */
static void group_prepare_next(coord_dqlite_client_t *c)
{
    struct run *r = &c->run;
    for (; r->item < r->nitems; r->item++) {
        struct coord_dqlite__op *op = r->items[r->item];
        if (op->item_failed)
            continue;
        for (; op->call_i < op->ncalls; op->call_i++) {
            if (!needs_prepare(c, op->calls[op->call_i].stmt))
                continue;
            r->gphase = G_PREPARE;
            r->expect = COORD_DQLITE__RESP_STMT;
            ax_buf_reset(&c->scratch);
            int rv = encode_prepare(c, op->calls[op->call_i].stmt);
            if (rv == 0)
                rv = send_scratch(c);
            if (rv != 0)
                conn_lost(c, false, "write PREPARE: %s", ax_strerror(rv));
            return;
        }
    }
    bool live = false;
    for (uint32_t i = 0; i < r->nitems; i++)
        live = live || !r->items[i]->item_failed;
    if (!live) {
        group_finish(c, AX_EDB); /* every item failed to prepare: no transaction ran */
        return;
    }
    group_send_const(c, G_BEGIN, "BEGIN IMMEDIATE");
}

/* Writes every live item's messages in one go and sets up the reply cursor. */
static void group_send_body(coord_dqlite_client_t *c)
{
    struct run *r = &c->run;
    ax_buf_reset(&c->scratch);
    int rv = 0;
    r->body_left = 0;
    for (uint32_t i = 0; i < r->nitems && rv == 0; i++) {
        struct coord_dqlite__op *op = r->items[i];
        if (op->item_failed)
            continue;
        if (item_has_savepoint(op))
            rv = encode_const(c, "SAVEPOINT ax_item");
        for (uint32_t k = 0; k < op->ncalls && rv == 0; k++)
            rv = encode_call(c, op, &op->calls[k], false);
        if (rv == 0 && item_has_savepoint(op))
            rv = encode_const(c, "RELEASE ax_item");
        r->body_left += item_replies(op);
    }
    if (rv == 0 && r->body_left == 0) {
        group_send_const(c, G_COMMIT, "COMMIT");
        return;
    }
    if (rv == 0)
        rv = send_scratch(c);
    if (rv != 0) {
        conn_lost(c, false, "write group: %s", ax_strerror(rv));
        return;
    }
    c->stats.requests += r->body_left - 1; /* send_scratch counted one */
    r->gphase = G_BODY;
    r->expect = COORD_DQLITE__RESP_RESULT;
    r->item = 0;
    r->pos = 0;
    r->f_unknown = r->f_hold = r->f_fatal = r->f_rerun = false;
    while (r->item < r->nitems && r->items[r->item]->item_failed)
        r->item++;
}

static void group_finish(coord_dqlite_client_t *c, int status)
{
    struct run *r = &c->run;
    uint32_t n = r->nitems;
    struct coord_dqlite__op *items[n > 0 ? n : 1];
    memcpy(items, r->items, n * sizeof *items);
    run_clear(c);
    if (status == 0) {
        c->stats.groups++;
        c->write_hold_ms = 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (items[i]->item_failed) {
            op_complete(c, items[i], items[i]->item_status);
        } else {
            if (status == 0)
                c->stats.items++;
            op_complete(c, items[i], status);
        }
    }
    schedule(c);
}

/* After ROLLBACK answered (or failed: then no transaction was left to roll back). */
static void group_after_rollback(coord_dqlite_client_t *c)
{
    struct run *r = &c->run;
    if (r->after == AFTER_FAIL || r->after == AFTER_UNKNOWN) {
        bool unknown = r->after == AFTER_UNKNOWN;
        for (uint32_t i = 0; i < r->nitems; i++) {
            struct coord_dqlite__op *op = r->items[i];
            if (op->item_failed)
                continue;
            op->item_failed = true;
            op->item_status = unknown ? AX_EUNKNOWN : AX_EDB;
            op->req->db_code = r->fail_code;
            req_errmsg(op->req, "%s: %s",
                       unknown ? "outcome unknown, transaction broken" : "transaction rolled back",
                       r->fail_msg);
        }
        group_finish(c, unknown ? AX_EUNKNOWN : AX_EDB);
        return;
    }
    if (r->after == AFTER_RETRY_HOLD) {
        uint32_t ms = c->write_hold_ms == 0 ? WRITE_HOLD_MIN_MS : c->write_hold_ms * 2;
        c->write_hold_ms = ms > WRITE_HOLD_MAX_MS ? WRITE_HOLD_MAX_MS : ms;
        c->write_hold_until = now_ms(c) + c->write_hold_ms;
    }
    /* Items that failed on their own keep their (definite: rolled back) error; the others
     * did nothing wrong and run again, in their order, at the front of the queue. */
    uint32_t n = r->nitems;
    struct coord_dqlite__op *items[n > 0 ? n : 1];
    memcpy(items, r->items, n * sizeof *items);
    char why[AX_ERRMSG_LEN];
    snprintf(why, sizeof why, "%s", r->fail_msg);
    run_clear(c);
    for (uint32_t i = n; i-- > 0;) {
        if (items[i]->item_failed) {
            continue;
        } else if (now_ms(c) >= items[i]->deadline) {
            req_errmsg(items[i]->req, "timed out: %s", why);
            op_complete(c, items[i], AX_ETIMEDOUT);
        } else {
            op_requeue(c, items[i]);
        }
    }
    for (uint32_t i = 0; i < n; i++)
        if (items[i]->item_failed)
            op_complete(c, items[i], items[i]->item_status);
    schedule(c);
}

static void group_rollback(coord_dqlite_client_t *c, enum after_rollback after)
{
    c->run.after = after;
    group_send_const(c, G_ROLLBACK, "ROLLBACK");
}

static void group_note(struct run *r, uint64_t code, ax_slice_t msg)
{
    if (r->fail_msg[0] != '\0')
        return;
    r->fail_code = code;
    snprintf(r->fail_msg, sizeof r->fail_msg, "%.*s", (int)(msg.len > 200 ? 200 : msg.len),
             (const char *)msg.base);
}

/* Codes that fail one statement and leave the transaction open (SQLite's statement rollback
 * under the default ON CONFLICT ABORT): the item fails, the group goes on. */
static bool statement_level(uint64_t code)
{
    switch (primary(code)) {
    case COORD_DQLITE__SQLITE_ERROR:
    case COORD_DQLITE__SQLITE_TOOBIG:
    case COORD_DQLITE__SQLITE_CONSTRAINT:
    case COORD_DQLITE__SQLITE_MISMATCH:
    case COORD_DQLITE__SQLITE_RANGE:
        return true;
    default:
        return false;
    }
}

/* Errors after which SQLite may have rolled the whole transaction back by itself. */
static bool may_auto_rollback(uint64_t code)
{
    return primary(code) == COORD_DQLITE__SQLITE_IOERR ||
           primary(code) == COORD_DQLITE__SQLITE_FULL ||
           primary(code) == COORD_DQLITE__SQLITE_NOMEM;
}

/* One BODY reply: `ok` with `res`, or a failure `code`/`msg`. */
static void group_body_reply(coord_dqlite_client_t *c, bool ok, uint64_t code, ax_slice_t msg,
                             const coord_dqlite_result_t *res)
{
    struct run *r = &c->run;
    AX_ASSERT(r->item < r->nitems && r->body_left > 0);
    struct coord_dqlite__op *op = r->items[r->item];
    bool sp = item_has_savepoint(op);
    bool is_call = !sp || (r->pos > 0 && r->pos <= op->ncalls);
    uint32_t call = sp ? r->pos - 1 : r->pos;
    if (ok) {
        if (is_call)
            op->req->result = *res;
    } else if (is_call && statement_level(code)) {
        item_fail(op, call, code, msg);
        if (sp)
            r->f_rerun = true;
    } else if (may_auto_rollback(code)) {
        r->f_unknown = true;
        group_note(r, code, msg);
    } else if (primary(code) == COORD_DQLITE__SQLITE_BUSY ||
               primary(code) == COORD_DQLITE__SQLITE_LOCKED) {
        r->f_hold = true; /* "checkpoint in progress": the statement did not run */
        group_note(r, code, msg);
    } else {
        r->f_fatal = true;
        group_note(r, code, msg);
    }
    /* Advance the cursor to the next expected reply. */
    r->body_left--;
    if (++r->pos >= item_replies(op)) {
        r->pos = 0;
        r->item++;
        while (r->item < r->nitems && r->items[r->item]->item_failed && r->item < r->nitems)
            r->item++;
    }
    if (r->body_left > 0)
        return;
    if (r->f_unknown)
        group_rollback(c, AFTER_UNKNOWN);
    else if (r->f_fatal)
        group_rollback(c, AFTER_FAIL);
    else if (r->f_hold)
        group_rollback(c, AFTER_RETRY_HOLD);
    else if (r->f_rerun)
        group_rollback(c, AFTER_RETRY);
    else
        group_send_const(c, G_COMMIT, "COMMIT");
}

static void group_start(coord_dqlite_client_t *c)
{
    struct run *r = &c->run;
    r->busy = true;
    r->kind = RUN_GROUP;
    r->nitems = 0;
    r->item = 0;
    r->commit_sent = false;
    r->f_unknown = r->f_hold = r->f_fatal = r->f_rerun = false;
    r->fail_msg[0] = '\0';
    r->fail_code = 0;
    size_t bytes = 0;
    while (!list_empty(&c->writes) && r->nitems < c->cfg.limits.max_group_items) {
        struct coord_dqlite__op *op =
            ax_container_of(c->writes.next, struct coord_dqlite__op, link);
        /* Encoded size: the item's SQL and params plus headers, ids and padding. */
        size_t cost = op->body.len + (size_t)op->ncalls * 32 + 96;
        if (r->nitems > 0 && bytes + cost > c->cfg.limits.max_group_bytes)
            break;
        bytes += cost;
        list_remove(&op->link);
        op->call_i = 0;
        op->item_failed = false;
        r->items[r->nitems++] = op;
    }
    group_prepare_next(c);
}

static void group_failure(coord_dqlite_client_t *c, uint64_t code, ax_slice_t msg)
{
    struct run *r = &c->run;
    if (code == COORD_DQLITE__SQLITE_IOERR_NOT_LEADER) {
        /* Refused before executing (CHECK_LEADER), COMMIT included: the open transaction
         * dies with the connection and the group runs again on the new leader. */
        r->commit_sent = false;
        conn_lost(c, false, "%s is no longer the leader", c->target);
        return;
    }
    switch (r->gphase) {
    case G_PREPARE: {
        struct coord_dqlite__op *op = r->items[r->item];
        if (!statement_level(code)) {
            conn_lost(c, false, "PREPARE: %.*s (%llu)", (int)msg.len, (const char *)msg.base,
                      (unsigned long long)code);
            return;
        }
        item_fail(op, op->call_i, code, msg);
        r->item++;
        group_prepare_next(c);
        return;
    }
    case G_BEGIN:
        group_note(r, code, msg);
        if (primary(code) == COORD_DQLITE__SQLITE_BUSY ||
            primary(code) == COORD_DQLITE__SQLITE_LOCKED) {
            /* Another connection holds the write lock: nothing started, wait and retry. */
            r->after = AFTER_RETRY_HOLD;
            group_after_rollback(c);
        } else {
            group_rollback(c, AFTER_FAIL);
        }
        return;
    case G_BODY:
        group_body_reply(c, false, code, msg, NULL);
        return;
    case G_COMMIT:
        if (may_auto_rollback(code)) {
            /* Leadership lost during the Raft round: the commit may or may not stand. */
            conn_lost(c, false, "COMMIT: %.*s (%llu)", (int)msg.len, (const char *)msg.base,
                      (unsigned long long)code);
            return;
        }
        r->commit_sent = false;
        group_note(r, code, msg);
        group_rollback(c,
                       primary(code) == COORD_DQLITE__SQLITE_BUSY ? AFTER_RETRY_HOLD : AFTER_FAIL);
        return;
    case G_ROLLBACK:
        group_after_rollback(c);
        return;
    }
}

static void group_reply(coord_dqlite_client_t *c, const struct coord_dqlite__msg *m)
{
    struct run *r = &c->run;
    coord_dqlite_result_t res;
    int rv;
    if (r->gphase == G_PREPARE) {
        uint32_t db, id;
        uint64_t np;
        rv = coord_dqlite__decode_stmt(m->body, &db, &id, &np);
        if (rv != 0)
            goto proto;
        struct coord_dqlite__op *op = r->items[r->item];
        op->calls[op->call_i].stmt->id = id;
        op->calls[op->call_i].stmt->gen = c->gen;
        op->call_i++;
        group_prepare_next(c);
        return;
    }
    rv = coord_dqlite__decode_result(m->body, &res);
    if (rv != 0)
        goto proto;
    switch (r->gphase) {
    case G_BEGIN:
        group_send_body(c);
        return;
    case G_BODY:
        group_body_reply(c, true, 0, AX_SLICE(NULL, 0), &res);
        return;
    case G_COMMIT:
        group_finish(c, 0);
        return;
    case G_ROLLBACK:
        group_after_rollback(c);
        return;
    case G_PREPARE:
        break;
    }
proto:
    conn_lost(c, true, "malformed reply type %u from %s", m->type, c->target);
}

/* The connection did useful work: only now is the reconnect backoff reset, so that a node
 * that accepts connections but refuses everything cannot make us spin. */
static void mark_answered(coord_dqlite_client_t *c)
{
    if (c->answered)
        return;
    c->answered = true;
    c->backoff_ms = c->cfg.backoff_min_ms ? c->cfg.backoff_min_ms : 1;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static void on_message(coord_dqlite_client_t *c, const struct coord_dqlite__msg *m)
{
    if (state(c) != COORD_DQLITE_STATE_READY) {
        on_connect_message(c, m);
        return;
    }
    struct run *r = &c->run;
    if (!r->busy) {
        conn_lost(c, true, "unexpected reply type %u from %s", m->type, c->target);
        return;
    }
    if (m->type == COORD_DQLITE__RESP_FAILURE) {
        uint64_t code;
        ax_slice_t msg;
        if (coord_dqlite__decode_failure(m->body, &code, &msg) != 0) {
            conn_lost(c, true, "malformed FAILURE from %s", c->target);
            return;
        }
        if (primary(code) != COORD_DQLITE__SQLITE_IOERR)
            mark_answered(c);
        if (r->kind == RUN_GROUP)
            group_failure(c, code, msg);
        else
            run_op_failure(c, code, msg);
        return;
    }
    if (m->type != r->expect) {
        conn_lost(c, true, "reply type %u from %s, expected %u", m->type, c->target, r->expect);
        return;
    }
    mark_answered(c);
    if (r->kind == RUN_GROUP)
        group_reply(c, m);
    else
        run_op_reply(c, m);
}

/* Runs the next piece of work if the connection is ready and free. */
static void process(coord_dqlite_client_t *c)
{
    while (!c->closing) {
        coord_dqlite_state_t st = state(c);
        if (st == COORD_DQLITE_STATE_IDLE) {
            /* Internal FINALIZEs alone need no connection: their statements died with it. */
            if (c->npending == 0)
                return;
            move(c, COORD_DQLITE_STATE_CONNECTING);
            start_round(c);
            return;
        }
        if (st != COORD_DQLITE_STATE_READY || c->run.busy)
            return;
        bool writes_ready = !list_empty(&c->writes) && now_ms(c) >= c->write_hold_until;
        bool others_ready = !list_empty(&c->others);
        if (others_ready && (!writes_ready || !c->last_was_other)) {
            struct coord_dqlite__op *op =
                ax_container_of(c->others.next, struct coord_dqlite__op, link);
            list_remove(&op->link);
            c->last_was_other = true;
            if (op->kind == OP_FINALIZE && op->gen != c->gen) {
                op_free(op); /* that statement died with its connection */
                continue;
            }
            c->run.busy = true;
            c->run.kind = RUN_OP;
            c->run.op = op;
            run_op_send(c);
            return;
        }
        if (writes_ready) {
            c->last_was_other = false;
            group_start(c);
        }
        return;
    }
}

static void on_kick(uv_timer_t *t)
{
    process(t->data);
}

static void schedule(coord_dqlite_client_t *c)
{
    if (c->closing)
        return;
    uv_timer_start(&c->kick, on_kick, 0, 0);
}

/* ---- deadlines ---------------------------------------------------------------------------- */

static void expire_queue(coord_dqlite_client_t *c, struct list *q, uint64_t now)
{
    struct list *e = q->next;
    while (e != q && !c->closing) {
        struct coord_dqlite__op *op = ax_container_of(e, struct coord_dqlite__op, link);
        e = e->next;
        if (op->req == NULL || now < op->deadline)
            continue;
        list_remove(&op->link);
        if (state(c) == COORD_DQLITE_STATE_READY) {
            req_errmsg(op->req, "timed out waiting in the queue");
            op_complete(c, op, AX_ETIMEDOUT);
        } else {
            req_errmsg(op->req, "no leader: %s", c->errmsg);
            op_complete(c, op, AX_ENOLEADER);
        }
        /* A callback may have removed or added ops: restart from the front. */
        e = q->next;
    }
}

static void on_tick(uv_timer_t *t)
{
    coord_dqlite_client_t *c = t->data;
    uint64_t now = now_ms(c);
    expire_queue(c, &c->others, now);
    expire_queue(c, &c->writes, now);
    if (c->closing)
        return;
    struct run *r = &c->run;
    if (r->busy) {
        uint64_t first = UINT64_MAX;
        if (r->kind == RUN_OP) {
            if (r->op->req != NULL)
                first = r->op->deadline;
        } else {
            for (uint32_t i = 0; i < r->nitems; i++)
                if (r->items[i]->deadline < first)
                    first = r->items[i]->deadline;
        }
        if (now >= first)
            conn_lost(c, false, "request to %s passed its deadline", c->target);
    }
    if (c->closing)
        return;
    if (c->npending == 0)
        uv_timer_stop(&c->tick);
    else if (!list_empty(&c->writes))
        schedule(c); /* a write hold may have ended */
}

/* ---- client lifecycle --------------------------------------------------------------------- */

int coord_dqlite_client_new(uv_loop_t *loop, const coord_dqlite_client_config_t *cfg,
                            coord_dqlite_client_t **out)
{
    *out = NULL;
    if (loop == NULL || cfg == NULL || cfg->nmembers == 0 || cfg->members == NULL)
        return AX_EINVAL;
    const coord_dqlite_limits_t *l = &cfg->limits;
    if (l->max_message_bytes < 64 || l->max_columns == 0 || l->max_group_items == 0 ||
        l->max_item_calls == 0 || l->max_params > COORD_DQLITE__MAX_PARAMS || l->max_pending == 0 ||
        cfg->request_timeout_ms == 0 || cfg->connect_timeout_ms == 0)
        return AX_EINVAL;
    for (uint32_t i = 0; i < cfg->nmembers; i++) {
        struct sockaddr_storage sa;
        if (cfg->members[i] == NULL || parse_address(cfg->members[i], &sa) != 0)
            return AX_EINVAL;
    }
    if (cfg->database != NULL &&
        (cfg->database[0] == '\0' || strlen(cfg->database) > COORD_DQLITE_ADDRESS_MAX))
        return AX_EINVAL;
    /* Without a database there is no SQL session: session_sql is ignored. */
    uint32_t nsession = cfg->database != NULL ? cfg->nsession_sql : 0;
    if (nsession > 0 && cfg->session_sql == NULL)
        return AX_EINVAL;
    for (uint32_t i = 0; i < nsession; i++)
        if (cfg->session_sql[i] == NULL || cfg->session_sql[i][0] == '\0' ||
            strlen(cfg->session_sql[i]) > l->max_sql_bytes)
            return AX_EINVAL;

    coord_dqlite_client_t *c = ax_calloc(1, sizeof *c);
    if (c == NULL)
        return AX_ENOMEM;
    c->loop = loop;
    c->cfg = *cfg;
    c->cfg.members = NULL;
    c->cfg.database = NULL;
    c->cfg.session_sql = NULL;
    c->members_cap = cfg->nmembers + l->max_nodes;
    c->members = ax_calloc(c->members_cap, sizeof *c->members);
    if (c->members == NULL)
        goto fail_after_alloc;
    for (uint32_t i = 0; i < cfg->nmembers; i++)
        add_member(c, cfg->members[i]);
    if (cfg->database != NULL) {
        c->database = ax_strndup(cfg->database, strlen(cfg->database));
        if (c->database == NULL)
            goto fail_after_members;
    }
    if (nsession > 0) {
        c->session_sql = ax_calloc(nsession, sizeof *c->session_sql);
        if (c->session_sql == NULL)
            goto fail_after_database;
        for (uint32_t i = 0; i < nsession; i++) {
            c->session_sql[i] = ax_strndup(cfg->session_sql[i], strlen(cfg->session_sql[i]));
            if (c->session_sql[i] == NULL)
                goto fail_after_session;
            c->nsession_sql = i + 1;
        }
    }
    c->run.items = ax_calloc(l->max_group_items, sizeof *c->run.items);
    if (c->run.items == NULL)
        goto fail_after_session;
    ax_buf_init(&c->scratch, (size_t)l->max_request_bytes + 1024);
    ax_sm_init(&c->sm, state_conf, COORD_DQLITE_STATE_COUNT, COORD_DQLITE_STATE_IDLE);
    list_init(&c->others);
    list_init(&c->writes);
    list_init(&c->stmts);
    c->backoff_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : 1;
    /* Timers cannot fail to initialise on a live loop (libuv only fills the struct). */
    uv_timer_t *timers[] = {&c->kick, &c->tick, &c->attempt, &c->backoff};
    for (size_t i = 0; i < AX_ARRAY_SIZE(timers); i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = c;
        c->handles++;
    }
    *out = c;
    return 0;

fail_after_session:
    for (uint32_t i = 0; i < c->nsession_sql; i++)
        ax_free(c->session_sql[i]);
    ax_free(c->session_sql);
fail_after_database:
    ax_free(c->database);
fail_after_members:
    ax_free(c->members);
fail_after_alloc:
    ax_free(c);
    return AX_ENOMEM;
}

static void on_timer_closed(uv_handle_t *h)
{
    coord_dqlite_client_t *c = h->data;
    c->handles--;
    if (c->handles == 0)
        finish_close(c);
}

static void finish_close(coord_dqlite_client_t *c)
{
    /* Everything still pending learns the client is gone. */
    if (c->run.busy) {
        struct run *r = &c->run;
        uint32_t n = r->kind == RUN_GROUP ? r->nitems : 1;
        struct coord_dqlite__op *ops[n > 0 ? n : 1];
        if (r->kind == RUN_GROUP)
            memcpy(ops, r->items, n * sizeof *ops);
        else
            ops[0] = r->op;
        run_clear(c);
        for (uint32_t i = 0; i < n; i++) {
            req_errmsg(ops[i]->req, "client closed");
            op_complete(c, ops[i], AX_ECANCELED);
        }
    }
    struct list *queues[] = {&c->others, &c->writes};
    for (size_t q = 0; q < AX_ARRAY_SIZE(queues); q++) {
        while (!list_empty(queues[q])) {
            struct coord_dqlite__op *op =
                ax_container_of(queues[q]->next, struct coord_dqlite__op, link);
            list_remove(&op->link);
            req_errmsg(op->req, "client closed");
            op_complete(c, op, AX_ECANCELED);
        }
    }
    run_clear(c);
    move(c, COORD_DQLITE_STATE_CLOSED);
    if (c->close_cb != NULL)
        c->close_cb(c);
    while (!list_empty(&c->stmts)) {
        coord_dqlite_stmt_t *s = ax_container_of(c->stmts.next, coord_dqlite_stmt_t, link);
        list_remove(&s->link);
        ax_free(s->sql);
        ax_free(s);
    }
    ax_buf_close(&c->scratch);
    ax_free(c->run.items);
    for (uint32_t i = 0; i < c->nsession_sql; i++)
        ax_free(c->session_sql[i]);
    ax_free(c->session_sql);
    ax_free(c->database);
    ax_free(c->members);
    ax_free(c);
}

void coord_dqlite_client_close(coord_dqlite_client_t *c, coord_dqlite_client_close_cb cb)
{
    AX_PRE(!c->closing);
    c->closing = true;
    c->close_cb = cb;
    move(c, COORD_DQLITE_STATE_CLOSING);
    conn_close(c);
    uv_timer_t *timers[] = {&c->kick, &c->tick, &c->attempt, &c->backoff};
    for (size_t i = 0; i < AX_ARRAY_SIZE(timers); i++) {
        uv_timer_stop(timers[i]);
        uv_close((uv_handle_t *)timers[i], on_timer_closed);
    }
}

void *coord_dqlite_client_data(const coord_dqlite_client_t *c)
{
    return c->cfg.data;
}

const char *coord_dqlite_client_errmsg(const coord_dqlite_client_t *c)
{
    return c->errmsg;
}

coord_dqlite_state_t coord_dqlite_client_state(const coord_dqlite_client_t *c)
{
    return state(c);
}

const char *coord_dqlite_state_name(coord_dqlite_state_t st)
{
    if ((unsigned)st >= COORD_DQLITE_STATE_COUNT)
        return "invalid";
    return state_conf[st].name;
}

const char *coord_dqlite_client_leader_address(const coord_dqlite_client_t *c)
{
    return state(c) == COORD_DQLITE_STATE_READY ? c->leader : "";
}

void coord_dqlite_client_stats(const coord_dqlite_client_t *c, coord_dqlite_stats_t *out)
{
    *out = c->stats;
}

/* ---- submitting --------------------------------------------------------------------------- */

static int op_new(coord_dqlite_req_t *req, coord_dqlite_client_t *c, coord_dqlite_done_cb cb,
                  enum op_kind kind, bool is_write, uint32_t ncalls, struct coord_dqlite__op **out)
{
    if (req == NULL || c == NULL || cb == NULL)
        return AX_EINVAL;
    if (c->closing)
        return AX_ECLOSED;
    if (c->npending >= c->cfg.limits.max_pending)
        return AX_ENOSPC;
    struct coord_dqlite__op *op = ax_calloc(1, sizeof *op);
    if (op == NULL)
        return AX_ENOMEM;
    if (ncalls > 0) {
        op->calls = ax_calloc(ncalls, sizeof *op->calls);
        if (op->calls == NULL) {
            ax_free(op);
            return AX_ENOMEM;
        }
    }
    list_init(&op->link);
    op->c = c;
    op->req = req;
    op->cb = cb;
    op->kind = kind;
    op->is_write = is_write;
    op->ncalls = ncalls;
    ax_buf_init(&op->body, c->cfg.limits.max_request_bytes);
    uint32_t timeout = req->timeout_ms ? req->timeout_ms : c->cfg.request_timeout_ms;
    op->deadline = now_ms(c) + timeout;
    *out = op;
    return 0;
}

/* Resets the request's result fields and queues the op. Never calls back. */
static int op_submit(coord_dqlite_client_t *c, struct coord_dqlite__op *op)
{
    coord_dqlite_req_t *req = op->req;
    req->client = c;
    memset(&req->result, 0, sizeof req->result);
    req->rows = NULL;
    memset(&req->node, 0, sizeof req->node);
    req->nodes = NULL;
    req->nnodes = 0;
    req->db_code = 0;
    req->failed_call = 0;
    req->errmsg[0] = '\0';
    req->op_ = op;
    list_push_back(queue_of(c, op), &op->link);
    c->npending++;
    if (!uv_is_active((uv_handle_t *)&c->tick))
        uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
    schedule(c);
    return 0;
}

/* Encodes one call (SQL text, params) into op->body. */
static int encode_call_body(coord_dqlite_client_t *c, struct coord_dqlite__op *op,
                            struct call_enc *enc, coord_dqlite_stmt_t *stmt, const char *sql,
                            const coord_dqlite_value_t *params, uint32_t nparams)
{
    if (nparams > c->cfg.limits.max_params || (nparams > 0 && params == NULL))
        return AX_EINVAL;
    if (stmt != NULL) {
        if (stmt->c != c)
            return AX_EINVAL;
        enc->stmt = stmt;
    } else {
        if (sql == NULL)
            return AX_EINVAL;
        size_t len = strlen(sql);
        if (len == 0 || len > c->cfg.limits.max_sql_bytes)
            return len == 0 ? AX_EINVAL : AX_EMSGSIZE;
        enc->sql_off = (uint32_t)op->body.len;
        enc->sql_len = (uint32_t)len;
        int rv = ax_buf_append(&op->body, sql, len);
        if (rv != 0)
            return rv;
    }
    enc->par_off = (uint32_t)op->body.len;
    int rv = coord_dqlite__encode_params(&op->body, params, nparams);
    if (rv != 0)
        return rv;
    enc->par_len = (uint32_t)(op->body.len - enc->par_off);
    return 0;
}

static int submit_call(coord_dqlite_req_t *req, coord_dqlite_client_t *c, enum op_kind kind,
                       bool is_write, coord_dqlite_stmt_t *stmt, const char *sql,
                       const coord_dqlite_value_t *params, uint32_t nparams,
                       coord_dqlite_done_cb cb)
{
    struct coord_dqlite__op *op;
    int rv = op_new(req, c, cb, kind, is_write, 1, &op);
    if (rv != 0)
        return rv;
    rv = encode_call_body(c, op, &op->calls[0], stmt, sql, params, nparams);
    if (rv != 0) {
        op_free(op);
        return rv;
    }
    return op_submit(c, op);
}

int coord_dqlite_exec(coord_dqlite_req_t *req, coord_dqlite_stmt_t *stmt,
                      const coord_dqlite_value_t *params, uint32_t nparams, coord_dqlite_done_cb cb)
{
    if (stmt == NULL)
        return AX_EINVAL;
    return submit_call(req, stmt->c, OP_EXEC, true, stmt, NULL, params, nparams, cb);
}

int coord_dqlite_exec_sql(coord_dqlite_req_t *req, coord_dqlite_client_t *c, const char *sql,
                          const coord_dqlite_value_t *params, uint32_t nparams,
                          coord_dqlite_done_cb cb)
{
    if (sql == NULL)
        return AX_EINVAL;
    return submit_call(req, c, OP_EXEC_SQL, true, NULL, sql, params, nparams, cb);
}

int coord_dqlite_query(coord_dqlite_req_t *req, coord_dqlite_stmt_t *stmt,
                       const coord_dqlite_value_t *params, uint32_t nparams,
                       coord_dqlite_done_cb cb)
{
    if (stmt == NULL)
        return AX_EINVAL;
    return submit_call(req, stmt->c, OP_QUERY, false, stmt, NULL, params, nparams, cb);
}

int coord_dqlite_query_sql(coord_dqlite_req_t *req, coord_dqlite_client_t *c, const char *sql,
                           const coord_dqlite_value_t *params, uint32_t nparams,
                           coord_dqlite_done_cb cb)
{
    if (sql == NULL)
        return AX_EINVAL;
    return submit_call(req, c, OP_QUERY_SQL, false, NULL, sql, params, nparams, cb);
}

int coord_dqlite_prepare(coord_dqlite_req_t *req, coord_dqlite_stmt_t *stmt,
                         coord_dqlite_done_cb cb)
{
    if (stmt == NULL)
        return AX_EINVAL;
    return submit_call(req, stmt->c, OP_PREPARE, false, stmt, NULL, NULL, 0, cb);
}

int coord_dqlite_write(coord_dqlite_req_t *req, coord_dqlite_client_t *c,
                       const coord_dqlite_call_t *calls, uint32_t ncalls, coord_dqlite_done_cb cb)
{
    if (c == NULL || calls == NULL || ncalls == 0)
        return AX_EINVAL;
    if (ncalls > c->cfg.limits.max_item_calls)
        return AX_EINVAL;
    struct coord_dqlite__op *op;
    int rv = op_new(req, c, cb, OP_WRITE, true, ncalls, &op);
    if (rv != 0)
        return rv;
    for (uint32_t i = 0; i < ncalls && rv == 0; i++)
        rv = encode_call_body(c, op, &op->calls[i], calls[i].stmt, calls[i].sql, calls[i].params,
                              calls[i].nparams);
    if (rv == 0 && op->body.len > c->cfg.limits.max_group_bytes)
        rv = AX_EMSGSIZE;
    if (rv != 0) {
        op_free(op);
        return rv;
    }
    return op_submit(c, op);
}

int coord_dqlite_leader(coord_dqlite_req_t *req, coord_dqlite_client_t *c, coord_dqlite_done_cb cb)
{
    struct coord_dqlite__op *op;
    int rv = op_new(req, c, cb, OP_LEADER, false, 0, &op);
    return rv != 0 ? rv : op_submit(c, op);
}

int coord_dqlite_cluster(coord_dqlite_req_t *req, coord_dqlite_client_t *c, coord_dqlite_done_cb cb)
{
    struct coord_dqlite__op *op;
    int rv = op_new(req, c, cb, OP_CLUSTER, false, 0, &op);
    return rv != 0 ? rv : op_submit(c, op);
}

int coord_dqlite_add(coord_dqlite_req_t *req, coord_dqlite_client_t *c, uint64_t id,
                     const char *address, coord_dqlite_done_cb cb)
{
    struct sockaddr_storage sa;
    if (address == NULL || id == 0 || parse_address(address, &sa) != 0)
        return AX_EINVAL;
    struct coord_dqlite__op *op;
    int rv = op_new(req, c, cb, OP_ADD, true, 0, &op);
    if (rv != 0)
        return rv;
    op->id = id;
    rv = ax_buf_append(&op->body, address, strlen(address));
    if (rv != 0) {
        op_free(op);
        return rv;
    }
    return op_submit(c, op);
}

int coord_dqlite_assign(coord_dqlite_req_t *req, coord_dqlite_client_t *c, uint64_t id,
                        coord_dqlite_role_t role, coord_dqlite_done_cb cb)
{
    if (id == 0 || (unsigned)role > COORD_DQLITE_SPARE)
        return AX_EINVAL;
    struct coord_dqlite__op *op;
    int rv = op_new(req, c, cb, OP_ASSIGN, true, 0, &op);
    if (rv != 0)
        return rv;
    op->id = id;
    op->role = role;
    return op_submit(c, op);
}

int coord_dqlite_remove(coord_dqlite_req_t *req, coord_dqlite_client_t *c, uint64_t id,
                        coord_dqlite_done_cb cb)
{
    if (id == 0)
        return AX_EINVAL;
    struct coord_dqlite__op *op;
    int rv = op_new(req, c, cb, OP_REMOVE, true, 0, &op);
    if (rv != 0)
        return rv;
    op->id = id;
    return op_submit(c, op);
}

/* ---- statements --------------------------------------------------------------------------- */

int coord_dqlite_stmt_new(coord_dqlite_client_t *c, const char *sql, coord_dqlite_stmt_t **out)
{
    *out = NULL;
    if (c == NULL || sql == NULL)
        return AX_EINVAL;
    if (c->closing)
        return AX_ECLOSED;
    size_t len = strlen(sql);
    if (len == 0 || len > c->cfg.limits.max_sql_bytes)
        return AX_EINVAL;
    coord_dqlite_stmt_t *s = ax_calloc(1, sizeof *s);
    if (s == NULL)
        return AX_ENOMEM;
    s->sql = ax_strndup(sql, len);
    if (s->sql == NULL) {
        ax_free(s);
        return AX_ENOMEM;
    }
    s->sql_len = len;
    s->c = c;
    list_init(&s->link);
    list_push_back(&c->stmts, &s->link);
    *out = s;
    return 0;
}

void coord_dqlite_stmt_free(coord_dqlite_stmt_t *s)
{
    if (s == NULL)
        return;
    coord_dqlite_client_t *c = s->c;
    /* Finalize on the server when it lives on the current connection; if this allocation
     * fails the statement just lives until the connection closes. */
    if (!c->closing && s->gen != 0 && s->gen == c->gen && c->conn != NULL) {
        struct coord_dqlite__op *op = ax_calloc(1, sizeof *op);
        if (op != NULL) {
            list_init(&op->link);
            op->c = c;
            op->kind = OP_FINALIZE;
            op->stmt_id = s->id;
            op->gen = s->gen;
            op->deadline = UINT64_MAX;
            ax_buf_init(&op->body, 0);
            list_push_back(&c->others, &op->link);
            schedule(c);
        }
    }
    list_remove(&s->link);
    ax_free(s->sql);
    ax_free(s);
}

/* ---- the node's connect function ----------------------------------------------------------- */

int coord_dqlite_node_connect(void *arg, const char *address, int *fd)
{
    int timeout_ms = arg != NULL ? (int)(uintptr_t)arg : 5000;
    struct sockaddr_storage sa;
    if (address == NULL || fd == NULL || parse_address(address, &sa) != 0)
        return AX_EINVAL;
    socklen_t len =
        sa.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int s = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    int one = 1;
    /* Raft messages are small and latency-bound: without this, a follower's next message
     * waits for the delayed ACK of the previous one (bench/dqlite/RESULTS.md). */
    (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Non-blocking connect with a deadline: libdqlite calls this on libuv's process-wide
     * threadpool, which a connect to a dead host would otherwise hold for minutes. */
    int flags = fcntl(s, F_GETFL, 0);
    int rv = 0;
    if (flags < 0 || fcntl(s, F_SETFL, flags | O_NONBLOCK) != 0) {
        rv = -errno;
        goto fail;
    }
    if (connect(s, (const struct sockaddr *)&sa, len) != 0) {
        if (errno != EINPROGRESS) {
            rv = -errno;
            goto fail;
        }
        struct pollfd p = {.fd = s, .events = POLLOUT};
        int n;
        do
            n = poll(&p, 1, timeout_ms);
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
            rv = n == 0 ? AX_ETIMEDOUT : -errno;
            goto fail;
        }
        int err = 0;
        socklen_t elen = sizeof err;
        if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
            rv = err != 0 ? -err : -errno;
            goto fail;
        }
    }
    if (fcntl(s, F_SETFL, flags) != 0) { /* libdqlite expects a blocking socket */
        rv = -errno;
        goto fail;
    }
    *fd = s;
    return 0;

fail:
    close(s);
    return rv != 0 ? rv : AX_EIO;
}

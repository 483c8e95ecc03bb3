/*
 * coordinator.dqlite_client_fake: the client's failure rules against a scripted fake dqlite
 * server on the same loop, where every misbehaviour can be produced on purpose: a connection
 * dropped after a write was sent (outcome unknown), "not leader" (safe retry), silence (the
 * deadline), malformed replies (protocol error, connection closed, client keeps working).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "ax_test.h"

#include "aethex/common/util.h"
#include "aethex/coordinator/dqlite_client.h"
#include "dqlite_proto.h"

enum mode {
    FAKE_OK,              /* answers everything */
    FAKE_DROP_EXEC,       /* closes the connection on every EXEC_SQL that is not BEGIN */
    FAKE_DROP_QUERY_ONCE, /* closes the connection on the first QUERY_SQL only */
    FAKE_NOT_LEADER_ONCE, /* first EXEC_SQL: FAILURE 10250 */
    FAKE_SILENT_EXEC,     /* never answers EXEC_SQL or QUERY_SQL */
    FAKE_GARBAGE_ROWS,    /* first QUERY_SQL: a ROWS reply with a bad type code */
    FAKE_OVERSIZED,       /* first QUERY_SQL: a header declaring 4 GiB */
    FAKE_DROP_COMMIT,     /* closes the connection on COMMIT */
    FAKE_DROP_BEGIN_ONCE, /* closes the connection on the first BEGIN */
    FAKE_CHAOS,           /* seeded random faults on every reply (see chaos_request) */
    FAKE_LYING_LEADER,    /* calls itself leader, refuses every query as "not leader" */
};

#define CHAOS_IDS 4096

struct fake {
    uv_loop_t *loop;
    uv_tcp_t listener;
    char addr[64];
    enum mode mode;
    int connections;
    int exec_sql, query_sql, begins, commits, pragmas;
    bool fired; /* the one-shot misbehaviour happened */
    /* FAKE_CHAOS: what the "database" really did, to judge the client's reports. */
    uint64_t rng;
    int committed[CHAOS_IDS]; /* times each id was committed */
};

struct fake_conn {
    uv_tcp_t tcp;
    struct fake *f;
    ax_buf_t in;
    bool handshaken;
    bool stalled;          /* FAKE_CHAOS: stopped answering */
    bool in_tx;            /* FAKE_CHAOS: a transaction is open */
    int tx_ids[CHAOS_IDS]; /* ids inserted in the open transaction */
    int ntx;
};

static void fc_closed(uv_handle_t *h)
{
    /* An open transaction dies with its connection: nothing of it was committed. */
    struct fake_conn *fc = h->data;
    ax_buf_close(&fc->in);
    test_free(fc);
}

static void fc_close(struct fake_conn *fc)
{
    if (!uv_is_closing((uv_handle_t *)&fc->tcp))
        uv_close((uv_handle_t *)&fc->tcp, fc_closed);
}

struct fw {
    uv_write_t w;
    uint8_t *data;
};

static void fw_done(uv_write_t *w, int status)
{
    (void)status;
    struct fw *x = ax_container_of(w, struct fw, w);
    test_free(x->data);
    test_free(x);
}

static void fc_send(struct fake_conn *fc, ax_buf_t *b)
{
    struct fw *x = test_malloc(sizeof *x);
    x->data = test_malloc(b->len);
    memcpy(x->data, b->base, b->len);
    uv_buf_t buf = uv_buf_init((char *)x->data, (unsigned)b->len);
    assert_int_equal(uv_write(&x->w, (uv_stream_t *)&fc->tcp, &buf, 1, fw_done), 0);
}

static void reply_result(struct fake_conn *fc)
{
    ax_buf_t b;
    ax_buf_init(&b, 1 << 16);
    size_t off;
    coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_RESULT, &off);
    coord_dqlite__put_u64(&b, 7);
    coord_dqlite__put_u64(&b, 1);
    coord_dqlite__msg_end(&b, off);
    fc_send(fc, &b);
    ax_buf_close(&b);
}

static void reply_rows(struct fake_conn *fc, uint8_t type)
{
    ax_buf_t b;
    ax_buf_init(&b, 1 << 16);
    size_t off;
    coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_ROWS, &off);
    coord_dqlite__put_u64(&b, 1);
    coord_dqlite__put_text(&b, AX_SLICE_LIT("x"));
    uint8_t hdr[8] = {type};
    ax_buf_append(&b, hdr, 8);
    coord_dqlite__put_u64(&b, 1);
    coord_dqlite__put_u64(&b, COORD_DQLITE__ROWS_DONE);
    coord_dqlite__msg_end(&b, off);
    fc_send(fc, &b);
    ax_buf_close(&b);
}

static void reply_failure(struct fake_conn *fc, uint64_t code, const char *msg)
{
    ax_buf_t b;
    ax_buf_init(&b, 1 << 16);
    size_t off;
    coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_FAILURE, &off);
    coord_dqlite__put_u64(&b, code);
    coord_dqlite__put_text(&b, AX_SLICE(msg, strlen(msg)));
    coord_dqlite__msg_end(&b, off);
    fc_send(fc, &b);
    ax_buf_close(&b);
}

/* ---- FAKE_CHAOS -----------------------------------------------------------------------
 *
 * A server that does the work (keeps a record of which ids it committed) but mangles the
 * replies at random: correct, FAILURE with a real code, connection closed, truncated,
 * garbage, a flipped bit, the wrong type, or silence. Requests are the client's own, so they
 * are parsed without checks. The test then checks every report against the record.
 * It never forges a FAILURE out of another reply: the protocol has no checksum, so a reply
 * corrupted into a well-formed FAILURE is indistinguishable from a real refusal.
 */
static uint32_t chaos_rand(struct fake *f, uint32_t n)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return (uint32_t)(f->rng % n);
}

/* The int64 first parameter of an EXEC_SQL body (db, sql text, params tuple), or -1. */
static int chaos_param_id(const struct coord_dqlite__msg *m)
{
    const uint8_t *p = m->body.base + 8;
    size_t sql = strlen((const char *)p);
    size_t off = 8 + coord_dqlite__pad8(sql + 1);
    if (off + 16 > m->body.len || m->body.base[off] != 1)
        return -1;
    return (int)ax_rd_le64(m->body.base + off + 8);
}

static void chaos_commit(struct fake_conn *fc)
{
    for (int i = 0; i < fc->ntx; i++)
        fc->f->committed[fc->tx_ids[i]]++;
    fc->ntx = 0;
    fc->in_tx = false;
}

static bool chaos_request(struct fake_conn *fc, const struct coord_dqlite__msg *m)
{
    struct fake *f = fc->f;
    if (fc->stalled)
        return true;
    ax_buf_t b;
    ax_buf_init(&b, 1 << 16);
    size_t off = 0;
    bool setup = m->type == COORD_DQLITE__REQ_LEADER || m->type == COORD_DQLITE__REQ_OPEN;
    const char *sql = m->type == COORD_DQLITE__REQ_EXEC_SQL ? (const char *)m->body.base + 8 : "";
    setup = setup || strncmp(sql, "PRAGMA", 6) == 0;
    /* Faults: 0 ok, 1 failure, 2 close, 3 truncate, 4 garbage, 5 bit flip, 6 wrong type,
     * 7 silence. Connection setup fails rarely, so that work gets done. */
    uint32_t fault = chaos_rand(f, 100);
    fault = fault < (setup ? 95u : 90u) ? 0 : 1 + chaos_rand(f, 7);
    static const uint64_t codes[] = {COORD_DQLITE__SQLITE_IOERR_NOT_LEADER,
                                     COORD_DQLITE__SQLITE_IOERR_LEADERSHIP_LOST, 5, 2067, 1};
    uint64_t code = codes[chaos_rand(f, AX_ARRAY_SIZE(codes))];
    /* A FAILURE other than 10506 means the request did not run. */
    bool runs = fault != 1 || code == COORD_DQLITE__SQLITE_IOERR_LEADERSHIP_LOST;

    switch (m->type) {
    case COORD_DQLITE__REQ_LEADER:
        coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_SERVER, &off);
        coord_dqlite__put_u64(&b, 1);
        coord_dqlite__put_text(&b, AX_SLICE(f->addr, strlen(f->addr)));
        break;
    case COORD_DQLITE__REQ_OPEN:
        coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_DB, &off);
        coord_dqlite__put_u64(&b, 0);
        break;
    case COORD_DQLITE__REQ_CLUSTER:
        coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_SERVERS, &off);
        coord_dqlite__put_u64(&b, 1);
        coord_dqlite__put_u64(&b, 1);
        coord_dqlite__put_text(&b, AX_SLICE(f->addr, strlen(f->addr)));
        coord_dqlite__put_u64(&b, 0);
        break;
    case COORD_DQLITE__REQ_QUERY_SQL:
        coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_ROWS, &off);
        coord_dqlite__put_u64(&b, 1);
        coord_dqlite__put_text(&b, AX_SLICE_LIT("x"));
        for (int i = 0; i < 3; i++) {
            uint8_t hdr[8] = {COORD_DQLITE_INTEGER};
            ax_buf_append(&b, hdr, 8);
            coord_dqlite__put_u64(&b, (uint64_t)i);
        }
        coord_dqlite__put_u64(&b, COORD_DQLITE__ROWS_DONE);
        break;
    case COORD_DQLITE__REQ_EXEC_SQL: {
        int id = chaos_param_id(m);
        if (runs) {
            if (strncmp(sql, "BEGIN", 5) == 0) {
                fc->in_tx = true;
                fc->ntx = 0;
            } else if (strcmp(sql, "COMMIT") == 0) {
                chaos_commit(fc);
            } else if (strcmp(sql, "ROLLBACK") == 0) {
                fc->in_tx = false;
                fc->ntx = 0;
            } else if (id >= 0 && id < CHAOS_IDS) {
                if (fc->in_tx)
                    fc->tx_ids[fc->ntx++] = id;
                else
                    f->committed[id]++;
            }
        }
        coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_RESULT, &off);
        coord_dqlite__put_u64(&b, 1);
        coord_dqlite__put_u64(&b, 1);
        break;
    }
    default:
        fail_msg("chaos server: unexpected request type %u", m->type);
    }
    coord_dqlite__msg_end(&b, off);

    bool open = true;
    switch (fault) {
    case 0:
        fc_send(fc, &b);
        break;
    case 1:
        reply_failure(fc, code, "chaos");
        break;
    case 2:
        fc_close(fc);
        open = false;
        break;
    case 3:
        b.len = 1 + chaos_rand(f, (uint32_t)b.len - 1);
        fc_send(fc, &b);
        fc_close(fc);
        open = false;
        break;
    case 4:
        ax_buf_reset(&b);
        for (uint32_t i = 0, n = 8 + 8 * chaos_rand(f, 6); i < n; i++)
            ax_buf_put_u8(&b, (uint8_t)chaos_rand(f, 256));
        b.base[0] = (uint8_t)((b.len - 8) / 8);
        b.base[1] = b.base[2] = b.base[3] = 0;
        b.base[4] = (uint8_t)(1 + chaos_rand(f, 10)); /* never FAILURE (see above) */
        fc_send(fc, &b);
        break;
    case 5:
        if (b.len > 8)
            b.base[8 + chaos_rand(f, (uint32_t)b.len - 8)] ^= (uint8_t)(1u << chaos_rand(f, 8));
        fc_send(fc, &b);
        break;
    case 6:
        /* Another reply type, never FAILURE (see above). */
        b.base[4] = (uint8_t)(1 + (b.base[4] - 1 + 1 + chaos_rand(f, 8)) % 10);
        fc_send(fc, &b);
        break;
    default:
        fc->stalled = true;
        break;
    }
    ax_buf_close(&b);
    return open;
}

/* Handles one request; returns false when the connection was closed. */
static bool fake_request(struct fake_conn *fc, const struct coord_dqlite__msg *m)
{
    struct fake *f = fc->f;
    if (f->mode == FAKE_CHAOS)
        return chaos_request(fc, m);
    ax_buf_t b;
    ax_buf_init(&b, 1 << 16);
    size_t off;
    bool open = true;
    switch (m->type) {
    case COORD_DQLITE__REQ_LEADER:
        coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_SERVER, &off);
        coord_dqlite__put_u64(&b, 1);
        coord_dqlite__put_text(&b, AX_SLICE(f->addr, strlen(f->addr)));
        coord_dqlite__msg_end(&b, off);
        fc_send(fc, &b);
        break;
    case COORD_DQLITE__REQ_OPEN:
        coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_DB, &off);
        coord_dqlite__put_u64(&b, 0);
        coord_dqlite__msg_end(&b, off);
        fc_send(fc, &b);
        break;
    case COORD_DQLITE__REQ_CLUSTER:
        coord_dqlite__msg_begin(&b, COORD_DQLITE__RESP_SERVERS, &off);
        coord_dqlite__put_u64(&b, 1);
        coord_dqlite__put_u64(&b, 1);
        coord_dqlite__put_text(&b, AX_SLICE(f->addr, strlen(f->addr)));
        coord_dqlite__put_u64(&b, 0);
        coord_dqlite__msg_end(&b, off);
        fc_send(fc, &b);
        break;
    case COORD_DQLITE__REQ_EXEC_SQL: {
        const char *sql = (const char *)m->body.base + 8;
        if (strncmp(sql, "PRAGMA", 6) == 0) {
            f->pragmas++; /* the client's per-connection session SQL */
            reply_result(fc);
            break;
        }
        bool begin = strncmp(sql, "BEGIN", 5) == 0, commit = strcmp(sql, "COMMIT") == 0;
        f->exec_sql++;
        f->begins += begin;
        f->commits += commit;
        if ((f->mode == FAKE_DROP_EXEC && !begin) || (f->mode == FAKE_DROP_COMMIT && commit) ||
            (f->mode == FAKE_DROP_BEGIN_ONCE && begin && !f->fired)) {
            f->fired = true;
            fc_close(fc);
            open = false;
        } else if (f->mode == FAKE_NOT_LEADER_ONCE && !f->fired) {
            f->fired = true;
            reply_failure(fc, COORD_DQLITE__SQLITE_IOERR_NOT_LEADER, "not leader");
        } else if (f->mode != FAKE_SILENT_EXEC) {
            reply_result(fc);
        }
        break;
    }
    case COORD_DQLITE__REQ_QUERY_SQL:
        f->query_sql++;
        if (f->mode == FAKE_DROP_QUERY_ONCE && !f->fired) {
            f->fired = true;
            fc_close(fc);
            open = false;
        } else if (f->mode == FAKE_LYING_LEADER) {
            reply_failure(fc, COORD_DQLITE__SQLITE_IOERR_NOT_LEADER, "not leader");
        } else if (f->mode == FAKE_GARBAGE_ROWS && !f->fired) {
            f->fired = true;
            reply_rows(fc, 7); /* 7 is no value type */
        } else if (f->mode == FAKE_OVERSIZED && !f->fired) {
            f->fired = true;
            static const uint8_t hdr[8] = {0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0};
            ax_buf_append(&b, hdr, 8);
            fc_send(fc, &b);
        } else if (f->mode != FAKE_SILENT_EXEC) {
            reply_rows(fc, COORD_DQLITE_INTEGER);
        }
        break;
    default:
        fail_msg("fake server: unexpected request type %u", m->type);
    }
    ax_buf_close(&b);
    return open;
}

static void fc_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    (void)h;
    buf->base = test_malloc(n);
    buf->len = n;
}

static void fc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct fake_conn *fc = s->data;
    if (nread < 0) {
        fc_close(fc);
    } else if (nread > 0) {
        ax_buf_append(&fc->in, buf->base, (size_t)nread);
        if (!fc->handshaken && fc->in.len >= 8) {
            assert_int_equal(ax_rd_le64(fc->in.base), 1);
            ax_buf_consume(&fc->in, 8);
            fc->handshaken = true;
        }
        while (fc->handshaken) {
            struct coord_dqlite__msg m;
            long n = coord_dqlite__msg_parse(fc->in.base, fc->in.len, 1 << 20, &m);
            if (n <= 0)
                break;
            if (!fake_request(fc, &m))
                break;
            ax_buf_consume(&fc->in, (size_t)n);
        }
    }
    test_free(buf->base);
}

static void fake_on_connection(uv_stream_t *server, int status)
{
    assert_int_equal(status, 0);
    struct fake *f = server->data;
    struct fake_conn *fc = test_calloc(1, sizeof *fc);
    fc->f = f;
    ax_buf_init(&fc->in, 1 << 20);
    uv_tcp_init(f->loop, &fc->tcp);
    fc->tcp.data = fc;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&fc->tcp), 0);
    f->connections++;
    uv_read_start((uv_stream_t *)&fc->tcp, fc_alloc, fc_read);
}

static void fake_start(struct fake *f, uv_loop_t *loop, enum mode mode)
{
    memset(f, 0, sizeof *f);
    f->loop = loop;
    f->mode = mode;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(loop, &f->listener);
    f->listener.data = f;
    assert_int_equal(uv_tcp_bind(&f->listener, (const struct sockaddr *)&sa, 0), 0);
    int len = sizeof sa;
    uv_tcp_getsockname(&f->listener, (struct sockaddr *)&sa, &len);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    assert_int_equal(uv_listen((uv_stream_t *)&f->listener, 16, fake_on_connection), 0);
}

/* ---- the test harness ---------------------------------------------------------------- */

struct env {
    uv_loop_t loop;
    struct fake fake;
    coord_dqlite_client_t *c;
    int closed;
};

struct call {
    coord_dqlite_req_t req;
    int status;
    int done;
};

static void on_done(coord_dqlite_req_t *req, int status)
{
    struct call *k = ax_container_of(req, struct call, req);
    k->status = status;
    k->done++;
}

static void on_closed(coord_dqlite_client_t *c)
{
    struct env *e = coord_dqlite_client_data(c);
    e->closed++;
}

static void run_until(struct env *e, const int *counter, int want)
{
    uint64_t start = uv_now(&e->loop);
    while (*counter < want && uv_now(&e->loop) - start < 10000)
        uv_run(&e->loop, UV_RUN_ONCE);
    if (*counter < want)
        fail_msg("timed out waiting for a callback");
}

static void env_open(struct env *e, enum mode mode, uint32_t timeout_ms)
{
    memset(e, 0, sizeof *e);
    uv_loop_init(&e->loop);
    fake_start(&e->fake, &e->loop, mode);
    coord_dqlite_client_config_t cfg;
    coord_dqlite_client_config_default(&cfg);
    const char *members[] = {e->fake.addr};
    cfg.members = members;
    cfg.nmembers = 1;
    cfg.database = "db";
    cfg.request_timeout_ms = timeout_ms;
    cfg.backoff_min_ms = 5;
    cfg.backoff_max_ms = 40;
    cfg.data = e;
    assert_ax_err(coord_dqlite_client_new(&e->loop, &cfg, &e->c), 0);
}

static void close_fake_conns(uv_handle_t *h, void *arg)
{
    struct env *e = arg;
    if (uv_is_closing(h) || h->type != UV_TCP)
        return;
    if ((uv_tcp_t *)h == &e->fake.listener)
        uv_close(h, NULL);
    else if (h->data != NULL && ((struct fake_conn *)h->data)->f == &e->fake)
        fc_close(h->data);
}

static void env_close(struct env *e)
{
    coord_dqlite_client_close(e->c, on_closed);
    run_until(e, &e->closed, 1);
    uv_walk(&e->loop, close_fake_conns, e);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
}

static void exec_sql(struct env *e, struct call *k)
{
    memset(k, 0, sizeof *k);
    assert_ax_err(
        coord_dqlite_exec_sql(&k->req, e->c, "INSERT INTO t VALUES (1)", NULL, 0, on_done), 0);
}

static void query_sql(struct env *e, struct call *k)
{
    memset(k, 0, sizeof *k);
    assert_ax_err(coord_dqlite_query_sql(&k->req, e->c, "SELECT x FROM t", NULL, 0, on_done), 0);
}

/* A write whose connection drops after it was sent is reported unknown, never success. */
static void fake__dropped_write_is_unknown(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, FAKE_DROP_EXEC, 5000);
    struct call k;
    exec_sql(&e, &k);
    run_until(&e, &k.done, 1);
    assert_ax_err(k.status, AX_EUNKNOWN);
    assert_non_null(strstr(k.req.errmsg, "outcome unknown"));
    assert_int_equal(e.fake.exec_sql, 1); /* and it was not re-sent */
    coord_dqlite_stats_t st;
    coord_dqlite_client_stats(e.c, &st);
    assert_int_equal(st.unknown, 1);
    env_close(&e);
}

/* A read whose connection drops is retried on a new connection and succeeds. */
static void fake__dropped_read_is_retried(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, FAKE_DROP_QUERY_ONCE, 5000);
    struct call k;
    query_sql(&e, &k);
    run_until(&e, &k.done, 1);
    assert_ax_err(k.status, 0);
    assert_int_equal(e.fake.query_sql, 2);
    assert_int_equal(e.fake.connections, 2);
    assert_int_equal(e.fake.pragmas, 2); /* foreign keys re-enabled on the new connection */
    env_close(&e);
}

/* "not leader" means the write never ran: the client reconnects and re-sends it. */
static void fake__not_leader_write_is_retried(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, FAKE_NOT_LEADER_ONCE, 5000);
    struct call k;
    exec_sql(&e, &k);
    run_until(&e, &k.done, 1);
    assert_ax_err(k.status, 0);
    assert_int_equal(k.req.result.last_insert_id, 7);
    assert_int_equal(e.fake.exec_sql, 2);
    coord_dqlite_stats_t st;
    coord_dqlite_client_stats(e.c, &st);
    assert_true(st.retries >= 1);
    env_close(&e);
}

/* Silence past the deadline: a sent write is unknown, a read times out. */
static void fake__deadline_unknown_write_timed_out_read(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, FAKE_SILENT_EXEC, 150);
    struct call w, r;
    exec_sql(&e, &w);
    run_until(&e, &w.done, 1);
    assert_ax_err(w.status, AX_EUNKNOWN);
    query_sql(&e, &r);
    run_until(&e, &r.done, 1);
    assert_ax_err(r.status, AX_ETIMEDOUT);
    env_close(&e);
}

/* A malformed reply closes the connection with AX_EPROTO; the next request reconnects. */
static void fake__garbage_reply_closes_connection(void **state)
{
    (void)state;
    enum mode modes[] = {FAKE_GARBAGE_ROWS, FAKE_OVERSIZED};
    for (size_t i = 0; i < AX_ARRAY_SIZE(modes); i++) {
        struct env e;
        env_open(&e, modes[i], 5000);
        struct call k, k2;
        query_sql(&e, &k);
        run_until(&e, &k.done, 1);
        assert_ax_err(k.status, AX_EPROTO);
        coord_dqlite_stats_t st;
        coord_dqlite_client_stats(e.c, &st);
        assert_int_equal(st.protocol_errors, 1);
        query_sql(&e, &k2);
        run_until(&e, &k2.done, 1);
        assert_ax_err(k2.status, 0);
        assert_int_equal(e.fake.connections, 2);
        env_close(&e);
    }
}

/* A group whose COMMIT went out unanswered: every item is unknown. */
static void fake__dropped_commit_makes_items_unknown(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, FAKE_DROP_COMMIT, 5000);
    coord_dqlite_call_t call = {.sql = "INSERT INTO t VALUES (1)"};
    struct call k[3];
    memset(k, 0, sizeof k);
    for (int i = 0; i < 3; i++)
        assert_ax_err(coord_dqlite_write(&k[i].req, e.c, &call, 1, on_done), 0);
    for (int i = 0; i < 3; i++) {
        run_until(&e, &k[i].done, 1);
        assert_ax_err(k[i].status, AX_EUNKNOWN);
    }
    assert_int_equal(e.fake.commits, 1); /* one transaction for all three */
    env_close(&e);
}

/* A group lost before COMMIT is re-run whole on a new connection. */
static void fake__group_lost_before_commit_is_rerun(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, FAKE_DROP_BEGIN_ONCE, 5000);
    coord_dqlite_call_t call = {.sql = "INSERT INTO t VALUES (1)"};
    struct call k[2];
    memset(k, 0, sizeof k);
    for (int i = 0; i < 2; i++)
        assert_ax_err(coord_dqlite_write(&k[i].req, e.c, &call, 1, on_done), 0);
    for (int i = 0; i < 2; i++) {
        run_until(&e, &k[i].done, 1);
        assert_ax_err(k[i].status, 0);
    }
    assert_int_equal(e.fake.begins, 2);
    assert_int_equal(e.fake.commits, 1);
    env_close(&e);
}

struct chaos_call {
    struct call k;
    int id;   /* -1 for reads */
    int kind; /* 0 exec, 1 write item, 2 query, 3 cluster */
};

/* Under seeded random reply faults, every request is called back exactly once, no write
 * is reported committed unless the server committed it, no write reported as failed was
 * committed, and nothing is committed twice. */
static void fake__chaos_never_lies(void **state)
{
    (void)state;
    enum { N = 400, WAVE = 12 };
    static struct chaos_call calls[N];
    memset(calls, 0, sizeof calls);
    struct env e;
    env_open(&e, FAKE_CHAOS, 500);
    /* A failure replays from its seed: AX_CHAOS_SEED=<n> overrides the default. */
    const char *seed = getenv("AX_CHAOS_SEED");
    e.fake.rng = seed != NULL ? strtoull(seed, NULL, 0) | 1 : 0x9e3779b97f4a7c15ull;
    print_message("chaos seed %llu\n", (unsigned long long)e.fake.rng);
    int done = 0;
    for (int base = 0; base < N; base += WAVE) {
        for (int i = base; i < base + WAVE && i < N; i++) {
            struct chaos_call *cc = &calls[i];
            cc->kind = (int)(e.fake.rng % 4);
            e.fake.rng = e.fake.rng * 6364136223846793005ull + 1442695040888963407ull;
            cc->id = cc->kind <= 1 ? i : -1;
            coord_dqlite_value_t v = coord_dqlite_int(i);
            coord_dqlite_call_t call = {
                .sql = "INSERT INTO t VALUES (?)", .params = &v, .nparams = 1};
            int rv;
            switch (cc->kind) {
            case 0:
                rv = coord_dqlite_exec_sql(&cc->k.req, e.c, call.sql, &v, 1, on_done);
                break;
            case 1:
                rv = coord_dqlite_write(&cc->k.req, e.c, &call, 1, on_done);
                break;
            case 2:
                rv = coord_dqlite_query_sql(&cc->k.req, e.c, "SELECT x FROM t", NULL, 0, on_done);
                break;
            default:
                rv = coord_dqlite_cluster(&cc->k.req, e.c, on_done);
                break;
            }
            assert_ax_err(rv, 0);
        }
        for (int i = base; i < base + WAVE && i < N; i++)
            run_until(&e, &calls[i].k.done, 1);
    }
    int ok = 0, unknown = 0;
    for (int i = 0; i < N; i++) {
        struct chaos_call *cc = &calls[i];
        int st = cc->k.status;
        assert_int_equal(cc->k.done, 1);
        done++;
        if (cc->id < 0) {
            if (st != 0 && st != AX_EDB && st != AX_EBUSY && st != AX_ETIMEDOUT &&
                st != AX_ENOLEADER && st != AX_EPROTO && st != AX_EMSGSIZE)
                fail_msg("read %d: unexpected %s", i, ax_err_name(st));
            ok += st == 0;
            continue;
        }
        int committed = e.fake.committed[cc->id];
        assert_true(committed <= 1);
        if (st == 0) {
            ok++;
            if (committed != 1)
                fail_msg("write %d reported committed, server never committed it", i);
        } else if (st == AX_EUNKNOWN) {
            unknown++;
        } else if (st == AX_EDB || st == AX_EBUSY || st == AX_ETIMEDOUT || st == AX_ENOLEADER ||
                   st == AX_EPROTO) {
            if (committed != 0)
                fail_msg("write %d reported %s but the server committed it", i, ax_err_name(st));
        } else {
            fail_msg("write %d: unexpected %s (%s)", i, ax_err_name(st), cc->k.req.errmsg);
        }
    }
    assert_int_equal(done, N);
    print_message("chaos: %d ok, %d unknown of %d; %d connections\n", ok, unknown, N,
                  e.fake.connections);
    /* The faults must not have stopped all progress, nor made everything unknown. */
    assert_true(ok > N / 10);
    env_close(&e);
}

/* A node that calls itself leader yet refuses everything is retried with backoff, not in
 * a tight loop, until the deadline. */
static void fake__lying_leader_is_retried_with_backoff(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, FAKE_LYING_LEADER, 400);
    struct call k;
    query_sql(&e, &k);
    run_until(&e, &k.done, 1);
    /* Waiting between attempts (no leader) or in flight when the deadline came. */
    assert_true(k.status == AX_ENOLEADER || k.status == AX_ETIMEDOUT);
    /* Backoff 5, 10, 20, 40, 40... ms: about a dozen connections in 400 ms, not thousands. */
    assert_true(e.fake.connections >= 3);
    assert_true(e.fake.connections <= 20);
    env_close(&e);
}

/* The node's connect function returns a blocking socket with TCP_NODELAY, or an error. */
static void fake__node_connect_sets_nodelay(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, FAKE_OK, 1000);
    int fd = -1;
    assert_int_equal(coord_dqlite_node_connect(NULL, e.fake.addr, &fd), 0);
    int v = 0;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    assert_int_not_equal(v, 0);
    close(fd);
    assert_ax_err(coord_dqlite_node_connect(NULL, "localhost:1", &fd), AX_EINVAL);
    /* Nothing listens on port 1 of loopback: refused at once, not after the deadline. */
    assert_true(coord_dqlite_node_connect((void *)(uintptr_t)2000, "127.0.0.1:1", &fd) < 0);
    env_close(&e);
}

/* Bad arguments fail at once and never call back. */
static void fake__bad_arguments_fail_now(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, FAKE_OK, 5000);
    struct call k = {0};
    coord_dqlite_value_t v = {.type = COORD_DQLITE_UNIXTIME};
    assert_ax_err(coord_dqlite_exec_sql(&k.req, e.c, "SELECT ?", &v, 1, on_done), AX_EINVAL);
    assert_ax_err(coord_dqlite_exec_sql(&k.req, e.c, "", NULL, 0, on_done), AX_EINVAL);
    assert_ax_err(coord_dqlite_write(&k.req, e.c, NULL, 0, on_done), AX_EINVAL);
    assert_ax_err(coord_dqlite_add(&k.req, e.c, 2, "not an address", on_done), AX_EINVAL);
    assert_ax_err(coord_dqlite_assign(&k.req, e.c, 2, (coord_dqlite_role_t)9, on_done), AX_EINVAL);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    assert_int_equal(k.done, 0);
    assert_int_equal(coord_dqlite_client_state(e.c), COORD_DQLITE_STATE_IDLE);
    env_close(&e);
}

static uv_loop_t oom_loop;
static coord_dqlite_client_t *oom_client;
static int oom_closed;

static void oom_on_closed(coord_dqlite_client_t *c)
{
    (void)c;
    oom_closed++;
}

static int oom_new(void)
{
    coord_dqlite_client_config_t cfg;
    coord_dqlite_client_config_default(&cfg);
    const char *members[] = {"127.0.0.1:1", "[::1]:2"};
    cfg.members = members;
    cfg.nmembers = 2;
    cfg.database = "db";
    return coord_dqlite_client_new(&oom_loop, &cfg, &oom_client);
}

static void oom_cleanup(void)
{
    if (oom_client != NULL) {
        coord_dqlite_client_close(oom_client, oom_on_closed);
        uv_run(&oom_loop, UV_RUN_DEFAULT);
        oom_client = NULL;
    }
}

/* Creating a client fails cleanly with AX_ENOMEM at every allocation. */
static void fake__client_new_out_of_memory_sweep(void **state)
{
    (void)state;
    uv_loop_init(&oom_loop);
    AX_OOM_SWEEP(oom_new(), oom_cleanup());
    assert_int_equal(oom_closed, 1);
    assert_int_equal(uv_loop_close(&oom_loop), 0);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fake__dropped_write_is_unknown),
        cmocka_unit_test(fake__dropped_read_is_retried),
        cmocka_unit_test(fake__not_leader_write_is_retried),
        cmocka_unit_test(fake__deadline_unknown_write_timed_out_read),
        cmocka_unit_test(fake__garbage_reply_closes_connection),
        cmocka_unit_test(fake__dropped_commit_makes_items_unknown),
        cmocka_unit_test(fake__group_lost_before_commit_is_rerun),
        cmocka_unit_test(fake__chaos_never_lies),
        cmocka_unit_test(fake__lying_leader_is_retried_with_backoff),
        cmocka_unit_test(fake__node_connect_sets_nodelay),
        cmocka_unit_test(fake__bad_arguments_fail_now),
        cmocka_unit_test(fake__client_new_out_of_memory_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

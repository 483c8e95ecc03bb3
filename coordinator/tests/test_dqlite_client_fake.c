/*
 * coordinator.dqlite_client_fake: the client's failure rules against a scripted fake dqlite
 * server on the same loop, where every misbehaviour can be produced on purpose: a connection
 * dropped after a write was sent (outcome unknown), "not leader" (safe retry), silence (the
 * deadline), malformed replies (protocol error, connection closed, client keeps working).
 */
#include <string.h>

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
};

struct fake {
    uv_loop_t *loop;
    uv_tcp_t listener;
    char addr[64];
    enum mode mode;
    int connections;
    int exec_sql, query_sql, begins, commits, pragmas;
    bool fired; /* the one-shot misbehaviour happened */
};

struct fake_conn {
    uv_tcp_t tcp;
    struct fake *f;
    ax_buf_t in;
    bool handshaken;
};

static void fc_closed(uv_handle_t *h)
{
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

/* Handles one request; returns false when the connection was closed. */
static bool fake_request(struct fake_conn *fc, const struct coord_dqlite__msg *m)
{
    struct fake *f = fc->f;
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
    assert_ax_err(coord_dqlite_exec_sql(&k->req, e->c, "INSERT INTO t VALUES (1)", NULL, 0,
                                        on_done),
                  0);
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
    assert_ax_err(coord_dqlite_assign(&k.req, e.c, 2, (coord_dqlite_role_t)9, on_done),
                  AX_EINVAL);
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
        cmocka_unit_test(fake__bad_arguments_fail_now),
        cmocka_unit_test(fake__client_new_out_of_memory_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * coordinator.dqlite_client (integration): our client against REAL dqlite nodes started in
 * this process through libdqlite's public node API (each node runs its own thread and loop),
 * on 127.0.0.1 with free ports and data dirs under a mkdtemp dir.
 */
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dqlite.h>
#include <uv.h>

#include "ax_test.h"

#include "aethex/common/util.h"
#include "aethex/coordinator/dqlite_client.h"

#define MAX_NODES 3
#define WAIT_MS 20000

struct node {
    dqlite_node *n;
    char addr[64];
    char dir[256];
    bool running;
};

struct fixture {
    char root[64];
    struct node nodes[MAX_NODES];
    uv_loop_t loop;
    coord_dqlite_client_t *c;
    int closed;
};

/* A free TCP port on 127.0.0.1 (bind port 0, read it back, release it). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void node_start(struct fixture *f, int i)
{
    struct node *nd = &f->nodes[i];
    if (nd->addr[0] == '\0') {
        snprintf(nd->addr, sizeof nd->addr, "127.0.0.1:%d", free_port());
        char root[sizeof f->root]; /* a copy: gcc cannot tell root and dir do not overlap */
        memcpy(root, f->root, sizeof root);
        snprintf(nd->dir, sizeof nd->dir, "%s/node%d", root, i + 1);
        assert_int_equal(mkdir(nd->dir, 0700), 0);
    }
    assert_int_equal(dqlite_node_create((dqlite_node_id)(i + 1), nd->addr, nd->dir, &nd->n), 0);
    assert_int_equal(dqlite_node_set_bind_address(nd->n, nd->addr), 0);
    /* Raft links with TCP_NODELAY and a connect deadline (our connect function). */
    assert_int_equal(dqlite_node_set_connect_func(nd->n, coord_dqlite_node_connect, NULL), 0);
    assert_int_equal(dqlite_node_start(nd->n), 0);
    nd->running = true;
}

static void node_stop(struct fixture *f, int i)
{
    struct node *nd = &f->nodes[i];
    if (!nd->running)
        return;
    dqlite_node_stop(nd->n);
    dqlite_node_destroy(nd->n);
    nd->n = NULL;
    nd->running = false;
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        rm_rf(p);
    }
    closedir(d);
    rmdir(path);
}

/* ---- running the loop until something happened ------------------------------------------ */

static void on_guard(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop until *counter >= want or WAIT_MS pass; asserts it got there. */
static void run_until(struct fixture *f, const int *counter, int want)
{
    bool expired = false;
    uv_timer_t guard;
    uv_timer_init(&f->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, WAIT_MS, 0);
    while (*counter < want && !expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (*counter < want)
        fail_msg("timed out waiting: %d of %d callbacks", *counter, want);
}

static void sleep_loop(struct fixture *f, uint64_t ms)
{
    bool expired = false;
    uv_timer_t guard;
    uv_timer_init(&f->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, ms, 0);
    while (!expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* One request slot that records its outcome. */
struct call {
    coord_dqlite_req_t req;
    int status;
    int done;
    uint32_t nrows, ncols;
    int64_t sum;
    coord_dqlite_value_t first[8]; /* values of the first row (text copied below) */
    char text[8][128];
    uint8_t blob[8][16];
    uint32_t nnodes;
    coord_dqlite_node_t nodes[MAX_NODES];
};

static void on_done(coord_dqlite_req_t *req, int status)
{
    struct call *k = ax_container_of(req, struct call, req);
    k->status = status;
    k->done++;
    if (status == 0 && req->rows != NULL) {
        const coord_dqlite_rows_t *r = req->rows;
        k->nrows = r->nrows;
        k->ncols = r->ncols;
        for (uint32_t i = 0; i < r->nrows; i++)
            if (coord_dqlite_rows_at(r, i, 0)->type == COORD_DQLITE_INTEGER)
                k->sum += coord_dqlite_rows_at(r, i, 0)->i;
        for (uint32_t j = 0; r->nrows > 0 && j < r->ncols && j < 8; j++) {
            k->first[j] = *coord_dqlite_rows_at(r, 0, j);
            if (k->first[j].type == COORD_DQLITE_TEXT || k->first[j].type == COORD_DQLITE_ISO8601)
                snprintf(k->text[j], sizeof k->text[j], "%s", (const char *)k->first[j].s.base);
            if (k->first[j].type == COORD_DQLITE_BLOB && k->first[j].s.len <= 16)
                memcpy(k->blob[j], k->first[j].s.base, k->first[j].s.len);
        }
    }
    if (status == 0 && req->nodes != NULL) {
        k->nnodes = req->nnodes;
        for (uint32_t i = 0; i < req->nnodes && i < MAX_NODES; i++)
            k->nodes[i] = req->nodes[i];
    }
}

/* Per-key row counts of "SELECT k, count(*) ... GROUP BY k". */
static int inflight_count[256];
static void on_rows_counted(coord_dqlite_req_t *req, int status)
{
    struct call *k = ax_container_of(req, struct call, req);
    memset(inflight_count, 0, sizeof inflight_count);
    if (status == 0)
        for (uint32_t i = 0; i < req->rows->nrows; i++) {
            int64_t key = coord_dqlite_rows_at(req->rows, i, 0)->i;
            if (key >= 0 && key < 256)
                inflight_count[key] = (int)coord_dqlite_rows_at(req->rows, i, 1)->i;
        }
    k->status = status;
    k->done++;
}

/* A counter shared by many calls. */
static int group_done;
static int group_ok;
static void on_group_done(coord_dqlite_req_t *req, int status)
{
    (void)req;
    group_done++;
    if (status == 0)
        group_ok++;
}

static void on_closed(coord_dqlite_client_t *c)
{
    struct fixture *f = coord_dqlite_client_data(c);
    f->closed++;
}

static void client_open(struct fixture *f, int member, uint32_t timeout_ms,
                        const coord_dqlite_limits_t *limits)
{
    coord_dqlite_client_config_t cfg;
    coord_dqlite_client_config_default(&cfg);
    const char *members[] = {f->nodes[member].addr};
    cfg.members = members;
    cfg.nmembers = 1;
    cfg.database = "test";
    cfg.request_timeout_ms = timeout_ms;
    cfg.connect_timeout_ms = 1000;
    cfg.data = f;
    if (limits != NULL)
        cfg.limits = *limits;
    assert_ax_err(coord_dqlite_client_new(&f->loop, &cfg, &f->c), 0);
}

static void client_close(struct fixture *f)
{
    if (f->c == NULL)
        return;
    coord_dqlite_client_close(f->c, on_closed);
    f->c = NULL;
    run_until(f, &f->closed, 1);
}

static int setup_common(void **state, int nnodes)
{
    struct fixture *f = test_calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/aethex-dqc-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    for (int i = 0; i < nnodes; i++)
        node_start(f, i);
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static int setup1(void **state)
{
    return setup_common(state, 1);
}

static int setup3(void **state)
{
    return setup_common(state, 3);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    client_close(f);
    for (int i = MAX_NODES - 1; i >= 0; i--)
        node_stop(f, i);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    int rv = uv_loop_close(&f->loop);
    rm_rf(f->root);
    test_free(f);
    return rv == 0 ? 0 : -1;
}

static void exec_ok(struct fixture *f, const char *sql)
{
    struct call k = {0};
    assert_ax_err(coord_dqlite_exec_sql(&k.req, f->c, sql, NULL, 0, on_done), 0);
    run_until(f, &k.done, 1);
    if (k.status != 0)
        fail_msg("%s: %s (%s)", sql, ax_err_name(k.status), k.req.errmsg);
}

static const char *evil = "'); DROP TABLE t;--";

/* Bound parameters of every type go in, and come back typed, verbatim. */
static void client__insert_and_query_every_type(void **state)
{
    struct fixture *f = *state;
    client_open(f, 0, 10000, NULL);
    exec_ok(f, "CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB, n TEXT, d DATETIME, "
               "flag BOOLEAN)");
    coord_dqlite_stmt_t *ins;
    assert_ax_err(coord_dqlite_stmt_new(f->c, "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", &ins),
                  0);
    coord_dqlite_value_t p[] = {
        coord_dqlite_int(-42),   coord_dqlite_float(2.5),
        coord_dqlite_text(evil), coord_dqlite_blob("\x00\x01\xff", 3),
        coord_dqlite_null(),     coord_dqlite_iso8601("2026-11-26 09:00:00"),
        coord_dqlite_bool(true),
    };
    struct call k = {0};
    assert_ax_err(coord_dqlite_exec(&k.req, ins, p, AX_ARRAY_SIZE(p), on_done), 0);
    /* Submitting never calls back from inside the call. */
    assert_int_equal(k.done, 0);
    run_until(f, &k.done, 1);
    assert_ax_err(k.status, 0);
    assert_int_equal(k.req.result.rows_affected, 1);
    assert_int_equal(k.req.result.last_insert_id, 1);
    assert_string_equal(coord_dqlite_client_leader_address(f->c), f->nodes[0].addr);
    assert_int_equal(coord_dqlite_client_state(f->c), COORD_DQLITE_STATE_READY);

    struct call q = {0};
    coord_dqlite_value_t w = coord_dqlite_text(evil);
    assert_ax_err(
        coord_dqlite_query_sql(&q.req, f->c, "SELECT * FROM t WHERE s = ?", &w, 1, on_done), 0);
    run_until(f, &q.done, 1);
    assert_ax_err(q.status, 0);
    assert_int_equal(q.nrows, 1);
    assert_int_equal(q.ncols, 7);
    assert_int_equal(q.first[0].type, COORD_DQLITE_INTEGER);
    assert_int_equal(q.first[0].i, -42);
    assert_int_equal(q.first[1].type, COORD_DQLITE_FLOAT);
    assert_true(q.first[1].f == 2.5);
    assert_int_equal(q.first[2].type, COORD_DQLITE_TEXT);
    assert_string_equal(q.text[2], evil);
    assert_int_equal(q.first[3].type, COORD_DQLITE_BLOB);
    assert_int_equal(q.first[3].s.len, 3);
    assert_memory_equal(q.blob[3], "\x00\x01\xff", 3);
    assert_int_equal(q.first[4].type, COORD_DQLITE_NULL);
    assert_int_equal(q.first[5].type, COORD_DQLITE_ISO8601);
    assert_string_equal(q.text[5], "2026-11-26 09:00:00");
    assert_int_equal(q.first[6].type, COORD_DQLITE_BOOLEAN);
    assert_true(q.first[6].b);

    /* The table survived the SQL-looking string. */
    struct call n = {0};
    assert_ax_err(coord_dqlite_query_sql(&n.req, f->c, "SELECT count(*) FROM t", NULL, 0, on_done),
                  0);
    run_until(f, &n.done, 1);
    assert_ax_err(n.status, 0);
    assert_int_equal(n.sum, 1);
    coord_dqlite_stmt_free(ins);
}

/* A result bigger than one server batch is accumulated across ROWS messages. */
static void client__many_rows_span_batches(void **state)
{
    struct fixture *f = *state;
    client_open(f, 0, 10000, NULL);
    exec_ok(f, "CREATE TABLE r (k INTEGER, pad TEXT)");
    coord_dqlite_stmt_t *ins;
    assert_ax_err(coord_dqlite_stmt_new(f->c, "INSERT INTO r VALUES (?, ?)", &ins), 0);
    enum { ITEMS = 20, CALLS = 100 };
    static struct call items[ITEMS];
    memset(items, 0, sizeof items);
    coord_dqlite_value_t params[CALLS][2];
    coord_dqlite_call_t calls[CALLS];
    int64_t want = 0;
    group_done = group_ok = 0;
    for (int i = 0; i < ITEMS; i++) {
        for (int j = 0; j < CALLS; j++) {
            int64_t k = (int64_t)i * CALLS + j;
            want += k;
            params[j][0] = coord_dqlite_int(k);
            params[j][1] = coord_dqlite_text("a row long enough that 2000 of them span pages");
            calls[j] = (coord_dqlite_call_t){.stmt = ins, .params = params[j], .nparams = 2};
        }
        assert_ax_err(coord_dqlite_write(&items[i].req, f->c, calls, CALLS, on_group_done), 0);
    }
    run_until(f, &group_done, ITEMS);
    assert_int_equal(group_ok, ITEMS);
    struct call q = {0};
    assert_ax_err(coord_dqlite_query_sql(&q.req, f->c, "SELECT k, pad FROM r", NULL, 0, on_done),
                  0);
    run_until(f, &q.done, 1);
    assert_ax_err(q.status, 0);
    assert_int_equal(q.nrows, ITEMS * CALLS);
    assert_int_equal(q.sum, want);
    coord_dqlite_stats_t st;
    coord_dqlite_client_stats(f->c, &st);
    assert_true(st.groups < ITEMS); /* items submitted together shared transactions */
    coord_dqlite_stmt_free(ins);
}

/* A result past max_result_rows is refused with AX_EMSGSIZE and the client keeps working. */
static void client__result_over_limit(void **state)
{
    struct fixture *f = *state;
    coord_dqlite_limits_t l;
    coord_dqlite_limits_default(&l);
    l.max_result_rows = 100;
    client_open(f, 0, 10000, &l);
    exec_ok(f, "CREATE TABLE big (k INTEGER)");
    exec_ok(f, "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 1000) "
               "INSERT INTO big SELECT x FROM s");
    struct call q = {0};
    assert_ax_err(coord_dqlite_query_sql(&q.req, f->c, "SELECT k FROM big", NULL, 0, on_done), 0);
    run_until(f, &q.done, 1);
    assert_ax_err(q.status, AX_EMSGSIZE);
    struct call q2 = {0};
    assert_ax_err(
        coord_dqlite_query_sql(&q2.req, f->c, "SELECT k FROM big WHERE k <= 10", NULL, 0, on_done),
        0);
    run_until(f, &q2.done, 1);
    assert_ax_err(q2.status, 0);
    assert_int_equal(q2.sum, 55);
}

/* SQL errors come back as AX_EDB with SQLite's own message and code. */
static void client__errors_carry_sqlite_message(void **state)
{
    struct fixture *f = *state;
    client_open(f, 0, 10000, NULL);
    struct call k = {0};
    assert_ax_err(coord_dqlite_exec_sql(&k.req, f->c, "CREATE TABL oops (x)", NULL, 0, on_done), 0);
    run_until(f, &k.done, 1);
    assert_ax_err(k.status, AX_EDB);
    assert_non_null(strstr(k.req.errmsg, "syntax error"));

    exec_ok(f, "CREATE TABLE u (email TEXT UNIQUE NOT NULL)");
    coord_dqlite_value_t v = coord_dqlite_text("a@b.c");
    struct call a = {0}, b = {0};
    assert_ax_err(coord_dqlite_exec_sql(&a.req, f->c, "INSERT INTO u VALUES (?)", &v, 1, on_done),
                  0);
    run_until(f, &a.done, 1);
    assert_ax_err(a.status, 0);
    assert_ax_err(coord_dqlite_exec_sql(&b.req, f->c, "INSERT INTO u VALUES (?)", &v, 1, on_done),
                  0);
    run_until(f, &b.done, 1);
    assert_ax_err(b.status, AX_EDB);
    assert_int_equal(b.req.db_code & 0xff, 19); /* SQLITE_CONSTRAINT */
    assert_non_null(strstr(b.req.errmsg, "UNIQUE constraint failed"));

    /* A prepared statement with bad SQL fails on coord_dqlite_prepare. */
    coord_dqlite_stmt_t *bad;
    assert_ax_err(coord_dqlite_stmt_new(f->c, "SELECT nope FROM nowhere", &bad), 0);
    struct call p = {0};
    assert_ax_err(coord_dqlite_prepare(&p.req, bad, on_done), 0);
    run_until(f, &p.done, 1);
    assert_ax_err(p.status, AX_EDB);
    assert_non_null(strstr(p.req.errmsg, "no such table"));
    coord_dqlite_stmt_free(bad);

    /* Text with a NUL inside is refused at once, and nothing is called back. */
    coord_dqlite_value_t nul = coord_dqlite_text_n("a\0b", 3);
    struct call z = {0};
    assert_ax_err(coord_dqlite_exec_sql(&z.req, f->c, "INSERT INTO u VALUES (?)", &nul, 1, on_done),
                  AX_EINVAL);
    sleep_loop(f, 20);
    assert_int_equal(z.done, 0);
}

/* Foreign keys are enforced (and cascade) on every connection the client opens. */
static void client__foreign_keys_on_every_connection(void **state)
{
    struct fixture *f = *state;
    client_open(f, 0, 10000, NULL);
    exec_ok(f, "CREATE TABLE parent (id INTEGER PRIMARY KEY)");
    exec_ok(f, "CREATE TABLE child (pid INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE)");
    exec_ok(f, "INSERT INTO parent VALUES (1)");
    exec_ok(f, "INSERT INTO child VALUES (1)");
    struct call orphan = {0};
    coord_dqlite_value_t v = coord_dqlite_int(99);
    assert_ax_err(
        coord_dqlite_exec_sql(&orphan.req, f->c, "INSERT INTO child VALUES (?)", &v, 1, on_done),
        0);
    run_until(f, &orphan.done, 1);
    assert_ax_err(orphan.status, AX_EDB);
    assert_non_null(strstr(orphan.req.errmsg, "FOREIGN KEY constraint failed"));
    exec_ok(f, "DELETE FROM parent WHERE id = 1");
    struct call q = {0};
    assert_ax_err(
        coord_dqlite_query_sql(&q.req, f->c, "SELECT count(*) FROM child", NULL, 0, on_done), 0);
    run_until(f, &q.done, 1);
    assert_ax_err(q.status, 0);
    assert_int_equal(q.sum, 0); /* cascaded */
}

/* In one group, a failing item is rolled back alone; a multi-statement item is atomic. */
static void client__write_items_fail_alone(void **state)
{
    struct fixture *f = *state;
    client_open(f, 0, 10000, NULL);
    exec_ok(f, "CREATE TABLE w (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    struct call k[5];
    memset(k, 0, sizeof k);
    coord_dqlite_value_t a[] = {coord_dqlite_int(1), coord_dqlite_text("one")};
    coord_dqlite_value_t b[] = {coord_dqlite_int(2), coord_dqlite_null()}; /* NOT NULL fails */
    coord_dqlite_value_t c1[] = {coord_dqlite_int(3), coord_dqlite_text("three")};
    coord_dqlite_value_t c2[] = {coord_dqlite_int(1), coord_dqlite_text("dup")}; /* PK fails */
    coord_dqlite_value_t d[] = {coord_dqlite_int(4), coord_dqlite_text("four")};
    const char *ins = "INSERT INTO w VALUES (?, ?)";
    coord_dqlite_call_t ca = {.sql = ins, .params = a, .nparams = 2};
    coord_dqlite_call_t cb = {.sql = ins, .params = b, .nparams = 2};
    coord_dqlite_call_t cc[] = {{.sql = ins, .params = c1, .nparams = 2},
                                {.sql = ins, .params = c2, .nparams = 2}};
    coord_dqlite_call_t cd = {.sql = ins, .params = d, .nparams = 2};
    assert_ax_err(coord_dqlite_write(&k[0].req, f->c, &ca, 1, on_done), 0);
    assert_ax_err(coord_dqlite_write(&k[1].req, f->c, &cb, 1, on_done), 0);
    assert_ax_err(coord_dqlite_write(&k[2].req, f->c, cc, 2, on_done), 0);
    assert_ax_err(coord_dqlite_write(&k[3].req, f->c, &cd, 1, on_done), 0);
    /* A statement handle that cannot be prepared fails its item before the transaction. */
    coord_dqlite_stmt_t *bad;
    assert_ax_err(coord_dqlite_stmt_new(f->c, "INSERT INTO nowhere VALUES (?)", &bad), 0);
    coord_dqlite_value_t e = coord_dqlite_int(5);
    coord_dqlite_call_t ce[] = {{.sql = ins, .params = d, .nparams = 2},
                                {.stmt = bad, .params = &e, .nparams = 1}};
    assert_ax_err(coord_dqlite_write(&k[4].req, f->c, ce, 2, on_done), 0);
    for (int i = 0; i < 5; i++)
        run_until(f, &k[i].done, 1);
    assert_ax_err(k[4].status, AX_EDB);
    assert_int_equal(k[4].req.failed_call, 1);
    assert_non_null(strstr(k[4].req.errmsg, "no such table"));
    coord_dqlite_stmt_free(bad);
    assert_ax_err(k[0].status, 0);
    assert_ax_err(k[1].status, AX_EDB);
    assert_non_null(strstr(k[1].req.errmsg, "NOT NULL"));
    assert_ax_err(k[2].status, AX_EDB);
    assert_int_equal(k[2].req.failed_call, 1);
    assert_ax_err(k[3].status, 0);
    struct call q = {0};
    assert_ax_err(
        coord_dqlite_query_sql(&q.req, f->c, "SELECT k FROM w ORDER BY k", NULL, 0, on_done), 0);
    run_until(f, &q.done, 1);
    assert_ax_err(q.status, 0);
    assert_int_equal(q.nrows, 2); /* 1 and 4: item 3's first row was rolled back with it */
    assert_int_equal(q.sum, 5);
}

/* Closing cancels what is pending, then calls the close callback; the loop closes clean. */
static void client__close_cancels_pending(void **state)
{
    struct fixture *f = *state;
    client_open(f, 0, 10000, NULL);
    struct call k = {0};
    assert_ax_err(coord_dqlite_query_sql(&k.req, f->c, "SELECT 1", NULL, 0, on_done), 0);
    coord_dqlite_client_close(f->c, on_closed);
    struct call late = {0};
    assert_ax_err(coord_dqlite_query_sql(&late.req, f->c, "SELECT 1", NULL, 0, on_done),
                  AX_ECLOSED);
    f->c = NULL;
    run_until(f, &f->closed, 1);
    assert_int_equal(k.done, 1);
    assert_ax_err(k.status, AX_ECANCELED);
    assert_int_equal(late.done, 0);
}

/* With no member answering, a request fails with AX_ENOLEADER at its deadline. */
static void client__no_member_answers(void **state)
{
    struct fixture *f = *state;
    snprintf(f->nodes[1].addr, sizeof f->nodes[1].addr, "127.0.0.1:%d", free_port());
    client_open(f, 1, 400, NULL);
    struct call k = {0};
    assert_ax_err(coord_dqlite_query_sql(&k.req, f->c, "SELECT 1", NULL, 0, on_done), 0);
    run_until(f, &k.done, 1);
    assert_ax_err(k.status, AX_ENOLEADER);
    assert_non_null(strstr(coord_dqlite_client_errmsg(f->c), "connection refused"));
}

/* Bootstrap node 1, ADD + ASSIGN voter nodes 2 and 3; CLUSTER lists 3 voters; a client that
 * only knows a follower finds the leader; stopping the leader, the client finds the new one;
 * REMOVE of the stopped node leaves a cluster of two. */
static void client__cluster_membership_and_failover(void **state)
{
    struct fixture *f = *state;
    client_open(f, 0, 15000, NULL);
    for (int i = 1; i < 3; i++) {
        struct call add = {0}, assign = {0};
        assert_ax_err(coord_dqlite_add(&add.req, f->c, (uint64_t)i + 1, f->nodes[i].addr, on_done),
                      0);
        run_until(f, &add.done, 1);
        assert_ax_err(add.status, 0);
        assert_ax_err(
            coord_dqlite_assign(&assign.req, f->c, (uint64_t)i + 1, COORD_DQLITE_VOTER, on_done),
            0);
        run_until(f, &assign.done, 1);
        if (assign.status != 0)
            fail_msg("assign %d: %s", i + 1, assign.req.errmsg);
    }
    struct call cl = {0};
    assert_ax_err(coord_dqlite_cluster(&cl.req, f->c, on_done), 0);
    run_until(f, &cl.done, 1);
    assert_ax_err(cl.status, 0);
    assert_int_equal(cl.nnodes, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cl.nodes[i].role, COORD_DQLITE_VOTER);
    exec_ok(f, "CREATE TABLE c (k INTEGER)");
    client_close(f);
    f->closed = 0;

    /* A client that knows only node 3 (a follower) follows the LEADER answer to node 1. */
    client_open(f, 2, 15000, NULL);
    struct call ld = {0};
    assert_ax_err(coord_dqlite_leader(&ld.req, f->c, on_done), 0);
    run_until(f, &ld.done, 1);
    assert_ax_err(ld.status, 0);
    assert_int_equal(ld.req.node.id, 1);
    assert_string_equal(ld.req.node.address, f->nodes[0].addr);
    assert_string_equal(coord_dqlite_client_leader_address(f->c), f->nodes[0].addr);
    /* A prepared statement: after the failover the client prepares it again by itself. */
    coord_dqlite_stmt_t *ins;
    assert_ax_err(coord_dqlite_stmt_new(f->c, "INSERT INTO c VALUES (?)", &ins), 0);
    coord_dqlite_value_t one = coord_dqlite_int(1);
    coord_dqlite_call_t w1 = {.stmt = ins, .params = &one, .nparams = 1};
    struct call k1 = {0};
    assert_ax_err(coord_dqlite_write(&k1.req, f->c, &w1, 1, on_done), 0);
    run_until(f, &k1.done, 1);
    assert_ax_err(k1.status, 0);

    /* Writes in flight when the leader stops: each is committed exactly once if reported 0,
     * absent if reported failed, at most once if unknown. */
    exec_ok(f, "CREATE TABLE inflight (k INTEGER)");
    enum { FLY = 60 };
    static struct call fly[FLY];
    memset(fly, 0, sizeof fly);
    group_done = group_ok = 0;
    /* Small groups, several of them under way when the node goes. */
    for (int i = 0; i < FLY; i++) {
        coord_dqlite_value_t v = coord_dqlite_int(i);
        coord_dqlite_call_t w = {
            .sql = "INSERT INTO inflight VALUES (?)", .params = &v, .nparams = 1};
        assert_ax_err(coord_dqlite_write(&fly[i].req, f->c, &w, 1, on_done), 0);
        if (i % 6 == 5)
            uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    for (int i = 0; i < 3; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);

    /* Stop the leader: the next write and read go to whichever node wins the election. */
    node_stop(f, 0);
    for (int i = 0; i < FLY; i++)
        run_until(f, &fly[i].done, 1);
    struct call rows = {0};
    assert_ax_err(coord_dqlite_query_sql(&rows.req, f->c,
                                         "SELECT k, count(*) FROM inflight GROUP BY k", NULL, 0,
                                         on_rows_counted),
                  0);
    run_until(f, &rows.done, 1);
    assert_ax_err(rows.status, 0);
    int committed = 0, unknown = 0;
    for (int i = 0; i < FLY; i++) {
        int n = inflight_count[i];
        assert_true(n <= 1);
        if (fly[i].status == 0) {
            committed++;
            assert_int_equal(n, 1);
        } else if (fly[i].status == AX_EUNKNOWN) {
            unknown++;
        } else {
            if (n != 0)
                fail_msg("write %d reported %s but is there", i, ax_err_name(fly[i].status));
        }
    }
    print_message("in flight at leader stop: %d committed, %d unknown of %d\n", committed, unknown,
                  FLY);
    assert_true(committed + unknown >= 1);
    coord_dqlite_value_t two = coord_dqlite_int(2);
    coord_dqlite_call_t w2 = {.stmt = ins, .params = &two, .nparams = 1};
    struct call k2 = {0};
    assert_ax_err(coord_dqlite_write(&k2.req, f->c, &w2, 1, on_done), 0);
    run_until(f, &k2.done, 1);
    if (k2.status != 0)
        fail_msg("write after failover: %s: %s", ax_err_name(k2.status), k2.req.errmsg);
    struct call q = {0};
    assert_ax_err(coord_dqlite_query_sql(&q.req, f->c, "SELECT k FROM c", NULL, 0, on_done), 0);
    run_until(f, &q.done, 1);
    assert_ax_err(q.status, 0);
    assert_int_equal(q.nrows, 2);
    assert_int_equal(q.sum, 3);
    const char *leader = coord_dqlite_client_leader_address(f->c);
    assert_true(strcmp(leader, f->nodes[1].addr) == 0 || strcmp(leader, f->nodes[2].addr) == 0);
    coord_dqlite_stats_t st;
    coord_dqlite_client_stats(f->c, &st);
    assert_true(st.leader_changes >= 1);
    coord_dqlite_stmt_free(ins);

    /* REMOVE the stopped node: the two left form the cluster. */
    struct call rm = {0}, cl2 = {0};
    assert_ax_err(coord_dqlite_remove(&rm.req, f->c, 1, on_done), 0);
    run_until(f, &rm.done, 1);
    if (rm.status != 0)
        fail_msg("remove: %s: %s", ax_err_name(rm.status), rm.req.errmsg);
    assert_ax_err(coord_dqlite_cluster(&cl2.req, f->c, on_done), 0);
    run_until(f, &cl2.done, 1);
    assert_ax_err(cl2.status, 0);
    assert_int_equal(cl2.nnodes, 2);
    for (uint32_t i = 0; i < cl2.nnodes; i++)
        assert_true(cl2.nodes[i].id != 1);
}

/* Two clients writing at once ("database is locked" for whoever comes second): the write
 * queue rolls back, waits and re-runs, so every item commits exactly once. */
static void client__concurrent_writers_all_commit(void **state)
{
    struct fixture *f = *state;
    client_open(f, 0, 15000, NULL);
    exec_ok(f, "CREATE TABLE cw (who INTEGER, k INTEGER, UNIQUE (who, k))");
    coord_dqlite_client_t *first = f->c;
    client_open(f, 0, 15000, NULL);
    coord_dqlite_client_t *second = f->c;
    enum { PER = 300 };
    static struct call items[2][PER];
    memset(items, 0, sizeof items);
    group_done = group_ok = 0;
    for (int k = 0; k < PER; k++) {
        for (int who = 0; who < 2; who++) {
            coord_dqlite_value_t p[] = {coord_dqlite_int(who), coord_dqlite_int(k)};
            coord_dqlite_call_t call = {
                .sql = "INSERT INTO cw VALUES (?, ?)", .params = p, .nparams = 2};
            assert_ax_err(coord_dqlite_write(&items[who][k].req, who ? second : first, &call, 1,
                                             on_group_done),
                          0);
        }
        /* Let both queues commit a few groups while more items arrive. */
        if (k % 50 == 49)
            uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    run_until(f, &group_done, 2 * PER);
    assert_int_equal(group_ok, 2 * PER);
    struct call q = {0};
    assert_ax_err(coord_dqlite_query_sql(&q.req, f->c, "SELECT count(*) FROM cw", NULL, 0, on_done),
                  0);
    run_until(f, &q.done, 1);
    assert_ax_err(q.status, 0);
    assert_int_equal(q.sum, 2 * PER);
    coord_dqlite_stats_t a, b;
    coord_dqlite_client_stats(first, &a);
    coord_dqlite_client_stats(second, &b);
    assert_int_equal(a.items + b.items, 2 * PER);
    print_message("groups %llu+%llu retries %llu+%llu\n", (unsigned long long)a.groups,
                  (unsigned long long)b.groups, (unsigned long long)a.retries,
                  (unsigned long long)b.retries);
    coord_dqlite_client_close(first, on_closed);
    run_until(f, &f->closed, 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(client__insert_and_query_every_type, setup1, teardown),
        cmocka_unit_test_setup_teardown(client__many_rows_span_batches, setup1, teardown),
        cmocka_unit_test_setup_teardown(client__result_over_limit, setup1, teardown),
        cmocka_unit_test_setup_teardown(client__errors_carry_sqlite_message, setup1, teardown),
        cmocka_unit_test_setup_teardown(client__write_items_fail_alone, setup1, teardown),
        cmocka_unit_test_setup_teardown(client__foreign_keys_on_every_connection, setup1, teardown),
        cmocka_unit_test_setup_teardown(client__close_cancels_pending, setup1, teardown),
        cmocka_unit_test_setup_teardown(client__concurrent_writers_all_commit, setup1, teardown),
        cmocka_unit_test_setup_teardown(client__no_member_answers, setup1, teardown),
        cmocka_unit_test_setup_teardown(client__cluster_membership_and_failover, setup3, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

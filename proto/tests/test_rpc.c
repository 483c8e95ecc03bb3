/* proto.rpc: server and clients in one loop (rpc_server.c, rpc_client.c, rpc_conn.c). */
#include "ax_test.h"

#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/proto/rpc.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"

struct fixture;

struct srv {
    struct fixture *f;
    proto_rpc_server_t *s;
    const char *leader; /* non-NULL: answer every request NotLeader -> leader */
    bool hold;          /* do not answer (for timeouts) */
    int requests, ups, downs;
    uint64_t last_conn;
    bool closed;
};

struct cli {
    struct fixture *f;
    proto_rpc_client_t *c;
    int ups, downs, pushes;
    uint32_t last_push;
    bool closed;
};

struct raw {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uint8_t out[64];
    size_t nout;
    bool eof, closed;
    size_t nread;
};

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    struct srv srv[2];
    struct cli cli[2];
    int calls_done;
    int last_status;
    char last_payload[64];
};

/* ---- server ----------------------------------------------------------------------------- */

static void on_request(proto_rpc_server_t *s, const proto_rpc_peer_t *peer,
                       const proto_rpc_envelope_t *req)
{
    struct srv *sv = proto_rpc_server_data(s);
    sv->requests++;
    if (sv->hold)
        return;
    if (sv->leader != NULL) {
        assert_int_equal(proto_rpc_server_respond_not_leader(s, peer->conn_id, req->request_id,
                                                             req->method, sv->leader),
                         0);
        return;
    }
    /* Echo the payload, prefixed with the server's address, so tests know who answered. */
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%s|%.*s", proto_rpc_server_address(s), (int)req->payload.len,
                     (const char *)req->payload.base);
    assert_int_equal(proto_rpc_server_respond(s, peer->conn_id, req->request_id, req->method, 0,
                                              NULL, AX_SLICE(buf, (size_t)n)),
                     0);
}

static void on_conn(proto_rpc_server_t *s, const proto_rpc_peer_t *peer, bool up)
{
    struct srv *sv = proto_rpc_server_data(s);
    if (up) {
        sv->ups++;
        sv->last_conn = peer->conn_id;
        assert_string_equal(peer->client_id, "edge-test");
    } else {
        sv->downs++;
    }
}

static void start_server(struct fixture *f, int i, const char *address, const char *secret)
{
    struct srv *sv = &f->srv[i];
    memset(sv, 0, sizeof *sv);
    sv->f = f;
    proto_rpc_server_config_t cfg;
    proto_rpc_server_config_default(&cfg);
    cfg.address = address;
    cfg.server_id = i == 0 ? "coord-0" : "coord-1";
    cfg.secret = (const uint8_t *)secret;
    cfg.secret_len = strlen(secret);
    cfg.limits.handshake_timeout_ms = 300;
    cfg.on_request = on_request;
    cfg.on_conn = on_conn;
    cfg.data = sv;
    char err[AX_ERRMSG_LEN];
    assert_int_equal(proto_rpc_server_new(&f->loop, &cfg, &sv->s, err), 0);
}

static void on_server_closed(proto_rpc_server_t *s)
{
    struct srv *sv = proto_rpc_server_data(s);
    sv->closed = true;
}

/* ---- client ----------------------------------------------------------------------------- */

static void on_state(proto_rpc_client_t *c, bool connected, const char *address,
                     const char *server_id)
{
    struct cli *cl = proto_rpc_client_data(c);
    (void)address;
    (void)server_id;
    if (connected)
        cl->ups++;
    else
        cl->downs++;
}

static void on_push(proto_rpc_client_t *c, uint32_t method, ax_slice_t payload)
{
    struct cli *cl = proto_rpc_client_data(c);
    (void)payload;
    cl->pushes++;
    cl->last_push = method;
}

static void start_client(struct fixture *f, int i, const char *const *addrs, uint32_t n,
                         const char *secret)
{
    struct cli *cl = &f->cli[i];
    memset(cl, 0, sizeof *cl);
    cl->f = f;
    proto_rpc_client_config_t cfg;
    proto_rpc_client_config_default(&cfg);
    cfg.addresses = addrs;
    cfg.naddresses = n;
    cfg.client_id = "edge-test";
    cfg.secret = (const uint8_t *)secret;
    cfg.secret_len = strlen(secret);
    cfg.connect_timeout_ms = 500;
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 40;
    cfg.on_state = on_state;
    cfg.on_push = on_push;
    cfg.data = cl;
    char err[AX_ERRMSG_LEN];
    assert_int_equal(proto_rpc_client_new(&f->loop, &cfg, &cl->c, err), 0);
}

static void on_client_closed(proto_rpc_client_t *c)
{
    struct cli *cl = proto_rpc_client_data(c);
    cl->closed = true;
}

static void on_call(proto_rpc_call_t *call, int status)
{
    struct fixture *f = call->data;
    f->calls_done++;
    f->last_status = status;
    snprintf(f->last_payload, sizeof f->last_payload, "%.*s", (int)call->payload.len,
             (const char *)call->payload.base);
}

/* ---- raw peer --------------------------------------------------------------------------- */

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    static char buf[4096];
    (void)n;
    *b = uv_buf_init(buf, sizeof buf);
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct raw *r = s->data;
    (void)b;
    if (n > 0)
        r->nread += (size_t)n;
    if (n < 0)
        r->eof = true;
}

static void raw_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

static void raw_connected(uv_connect_t *c, int status)
{
    struct raw *r = c->data;
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
    uv_buf_t b = uv_buf_init((char *)r->out, (unsigned)r->nout);
    uv_write(&r->write, (uv_stream_t *)&r->tcp, &b, 1, raw_written);
}

static void raw_closed(uv_handle_t *h)
{
    struct raw *r = h->data;
    r->closed = true;
}

static void raw_send(struct fixture *f, struct raw *r, const char *address, const void *bytes,
                     size_t n)
{
    memset(r, 0, sizeof *r);
    memcpy(r->out, bytes, n);
    r->nout = n;
    struct sockaddr_in sa;
    const char *colon = strrchr(address, ':');
    char host[64];
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    uv_ip4_addr(host, atoi(colon + 1), &sa);
    uv_tcp_init(&f->loop, &r->tcp);
    r->tcp.data = r;
    r->connect.data = r;
    uv_tcp_connect(&r->connect, &r->tcp, (struct sockaddr *)&sa, raw_connected);
}

/* ---- loop helpers ----------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until `cond` holds or `ms` pass (then fails). */
#define RUN_UNTIL(f, cond, ms)                                                                     \
    do {                                                                                           \
        uint64_t end_ = uv_now(&(f)->loop) + (ms);                                                 \
        while (!(cond)) {                                                                          \
            if (uv_now(&(f)->loop) > end_)                                                         \
                fail_msg("timed out waiting for %s", #cond);                                       \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        }                                                                                          \
    } while (0)

/* Runs the loop for `ms` (to show that something does NOT happen). */
static void run_for(struct fixture *f, uint64_t ms)
{
    uint64_t end = uv_now(&f->loop) + ms;
    while (uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 5, 5);
    *state = f;
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 2; i++) {
        if (f->cli[i].c != NULL && !f->cli[i].closed) {
            proto_rpc_client_close(f->cli[i].c, on_client_closed);
            RUN_UNTIL(f, f->cli[i].closed, 2000);
        }
        if (f->srv[i].s != NULL && !f->srv[i].closed) {
            proto_rpc_server_close(f->srv[i].s, on_server_closed);
            RUN_UNTIL(f, f->srv[i].closed, 2000);
        }
    }
    uv_walk(&f->loop, close_walk, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void connect_one(struct fixture *f)
{
    start_server(f, 0, "127.0.0.1:0", SECRET);
    const char *addr = proto_rpc_server_address(f->srv[0].s);
    start_client(f, 0, &addr, 1, SECRET);
    RUN_UNTIL(f, f->cli[0].ups == 1 && f->srv[0].ups == 1, 3000);
}

/* ---- tests ------------------------------------------------------------------------------ */

/* A client with the right secret authenticates and a call is answered. */
static void rpc__auth_and_call(void **state)
{
    struct fixture *f = *state;
    connect_one(f);
    assert_true(proto_rpc_client_connected(f->cli[0].c));
    proto_rpc_call_t call = {.data = f};
    assert_int_equal(proto_rpc_call(&call, f->cli[0].c, AETHEX__METHOD__METHOD_PING,
                                    AX_SLICE_LIT("hi"), on_call),
                     0);
    assert_int_equal(f->calls_done, 0); /* never called back from inside the call */
    RUN_UNTIL(f, f->calls_done == 1, 2000);
    assert_int_equal(f->last_status, 0);
    assert_non_null(strstr(f->last_payload, "|hi"));
}

/* A wrong secret never authenticates: the client refuses the server's proof and retries
 * with backoff; the server never reports the connection up. */
static void rpc__wrong_secret_never_connects(void **state)
{
    struct fixture *f = *state;
    start_server(f, 0, "127.0.0.1:0", SECRET);
    const char *addr = proto_rpc_server_address(f->srv[0].s);
    start_client(f, 0, &addr, 1, "a-different-secret-of-enough-length!!");
    run_for(f, 300);
    assert_int_equal(f->cli[0].ups, 0);
    assert_int_equal(f->srv[0].ups, 0);
    proto_rpc_client_stats_t st;
    proto_rpc_client_stats(f->cli[0].c, &st);
    assert_true(st.attempts >= 2); /* it retried */
    assert_non_null(strstr(proto_rpc_client_errmsg(f->cli[0].c), "prove"));
    proto_rpc_call_t call = {.data = f};
    assert_ax_err(
        proto_rpc_call(&call, f->cli[0].c, AETHEX__METHOD__METHOD_PING, AX_SLICE_LIT(""), on_call),
        AX_ENOLEADER);
}

/* A peer that sends a wrong Auth proof is closed by the server, counted as an auth failure. */
static void rpc__wrong_proof_closed_by_server(void **state)
{
    struct fixture *f = *state;
    connect_one(f);
    /* Hello{version 1, client_id "x", client_nonce 32 zero bytes}, then an Auth with a zero
     * proof (the server's nonce is never looked at). */
    const uint8_t hello[] = {0x08, 0x01, 0x12, 0x01, 'x', 0x1a, 0x20};
    uint8_t bytes[64] = {0};
    size_t en = 0;
    uint8_t *env = bytes + 4;
    env[en++] = 0x10; /* method HELLO */
    env[en++] = 0x01;
    env[en++] = 0x2a; /* payload */
    env[en++] = (uint8_t)(sizeof hello + 32);
    memcpy(env + en, hello, sizeof hello);
    en += sizeof hello + 32;
    ax_wr_be32(bytes, (uint32_t)en);
    size_t n = 4 + en;
    struct raw r;
    raw_send(f, &r, proto_rpc_server_address(f->srv[0].s), bytes, n);
    RUN_UNTIL(f, r.nread > 0, 2000); /* the Challenge */
    /* Now an Auth frame with a zero proof. */
    uint8_t auth[4 + 4 + 34] = {0, 0, 0, 38, 0x10, 0x03, 0x2a, 34, 0x0a, 32};
    uv_buf_t b = uv_buf_init((char *)auth, sizeof auth);
    uv_write(&r.write, (uv_stream_t *)&r.tcp, &b, 1, raw_written);
    RUN_UNTIL(f, r.eof, 2000);
    proto_rpc_server_stats_t st;
    proto_rpc_server_stats(f->srv[0].s, &st);
    assert_int_equal(st.auth_failures, 1);
    uv_close((uv_handle_t *)&r.tcp, raw_closed);
    RUN_UNTIL(f, r.closed, 1000);
}

/* Garbage, a huge length prefix and an unauthenticated request each close their own
 * connection, while the authenticated client keeps working. */
static void rpc__bad_peers_do_not_disturb_others(void **state)
{
    struct fixture *f = *state;
    connect_one(f);
    const char *addr = proto_rpc_server_address(f->srv[0].s);
    struct raw garbage, huge, unauth;
    raw_send(f, &garbage, addr, "\x00\x00\x00\x05GARBAGE!", 12);
    raw_send(f, &huge, addr, "\xff\xff\xff\xf0", 4);
    /* REGISTER_EDGE request before any Hello. */
    raw_send(f, &unauth, addr, "\x00\x00\x00\x04\x08\x01\x10\x0a", 8);
    RUN_UNTIL(f, garbage.eof && huge.eof && unauth.eof, 3000);
    assert_int_equal(f->srv[0].requests, 0);
    proto_rpc_server_stats_t st;
    proto_rpc_server_stats(f->srv[0].s, &st);
    assert_int_equal(st.auth_failures, 3);
    /* The good client is untouched. */
    assert_int_equal(f->cli[0].downs, 0);
    proto_rpc_call_t call = {.data = f};
    assert_int_equal(proto_rpc_call(&call, f->cli[0].c, AETHEX__METHOD__METHOD_PING,
                                    AX_SLICE_LIT("ok"), on_call),
                     0);
    RUN_UNTIL(f, f->calls_done == 1, 2000);
    assert_int_equal(f->last_status, 0);
    uv_close((uv_handle_t *)&garbage.tcp, raw_closed);
    uv_close((uv_handle_t *)&huge.tcp, raw_closed);
    uv_close((uv_handle_t *)&unauth.tcp, raw_closed);
    RUN_UNTIL(f, garbage.closed && huge.closed && unauth.closed, 1000);
}

/* A peer that connects and says nothing is closed after the handshake timeout. */
static void rpc__silent_peer_times_out(void **state)
{
    struct fixture *f = *state;
    start_server(f, 0, "127.0.0.1:0", SECRET);
    struct raw r;
    raw_send(f, &r, proto_rpc_server_address(f->srv[0].s), "", 0);
    RUN_UNTIL(f, r.eof, 2000); /* handshake_timeout_ms is 300 here */
    uv_close((uv_handle_t *)&r.tcp, raw_closed);
    RUN_UNTIL(f, r.closed, 1000);
}

/* A call the server never answers fails with AX_ETIMEDOUT at its deadline. */
static void rpc__call_times_out(void **state)
{
    struct fixture *f = *state;
    connect_one(f);
    f->srv[0].hold = true;
    proto_rpc_call_t call = {.data = f, .timeout_ms = 100};
    assert_int_equal(
        proto_rpc_call(&call, f->cli[0].c, AETHEX__METHOD__METHOD_PING, AX_SLICE_LIT(""), on_call),
        0);
    uint64_t t0 = uv_now(&f->loop);
    RUN_UNTIL(f, f->calls_done == 1, 2000);
    assert_ax_err(f->last_status, AX_ETIMEDOUT);
    assert_true(uv_now(&f->loop) - t0 >= 90);
}

/* A follower's NotLeader sends the call on to the leader, transparently. */
static void rpc__follows_not_leader(void **state)
{
    struct fixture *f = *state;
    start_server(f, 0, "127.0.0.1:0", SECRET); /* leader */
    start_server(f, 1, "127.0.0.1:0", SECRET); /* follower */
    f->srv[1].leader = proto_rpc_server_address(f->srv[0].s);
    const char *addr = proto_rpc_server_address(f->srv[1].s);
    start_client(f, 0, &addr, 1, SECRET);
    RUN_UNTIL(f, f->cli[0].ups == 1, 3000);
    proto_rpc_call_t call = {.data = f};
    assert_int_equal(proto_rpc_call(&call, f->cli[0].c, AETHEX__METHOD__METHOD_REGISTER_EDGE,
                                    AX_SLICE_LIT("reg"), on_call),
                     0);
    RUN_UNTIL(f, f->calls_done == 1, 3000);
    assert_int_equal(f->last_status, 0);
    char want[64];
    snprintf(want, sizeof want, "%s|reg", proto_rpc_server_address(f->srv[0].s));
    assert_string_equal(f->last_payload, want);
    assert_int_equal(f->srv[1].requests, 1);
    assert_int_equal(f->srv[0].requests, 1);
    assert_string_equal(proto_rpc_client_address(f->cli[0].c),
                        proto_rpc_server_address(f->srv[0].s));
}

/* When the server goes away: the pending call gets AX_ECONNRESET, new calls fail fast with
 * AX_ENOLEADER, and the client reconnects by itself when a server is back on the address. */
static void rpc__reconnects_after_server_loss(void **state)
{
    struct fixture *f = *state;
    connect_one(f);
    char addr[64];
    snprintf(addr, sizeof addr, "%s", proto_rpc_server_address(f->srv[0].s));
    f->srv[0].hold = true;
    proto_rpc_call_t call = {.data = f, .timeout_ms = 5000};
    assert_int_equal(
        proto_rpc_call(&call, f->cli[0].c, AETHEX__METHOD__METHOD_PING, AX_SLICE_LIT(""), on_call),
        0);
    RUN_UNTIL(f, f->srv[0].requests == 1, 2000);
    proto_rpc_server_close(f->srv[0].s, on_server_closed);
    RUN_UNTIL(f, f->srv[0].closed && f->calls_done == 1 && f->cli[0].downs == 1, 2000);
    assert_ax_err(f->last_status, AX_ECONNRESET);
    proto_rpc_call_t call2 = {.data = f};
    assert_ax_err(
        proto_rpc_call(&call2, f->cli[0].c, AETHEX__METHOD__METHOD_PING, AX_SLICE_LIT(""), on_call),
        AX_ENOLEADER);
    run_for(f, 100); /* a few failed rounds with backoff */
    start_server(f, 0, addr, SECRET);
    RUN_UNTIL(f, f->cli[0].ups == 2, 3000);
    assert_int_equal(proto_rpc_call(&call2, f->cli[0].c, AETHEX__METHOD__METHOD_PING,
                                    AX_SLICE_LIT("again"), on_call),
                     0);
    RUN_UNTIL(f, f->calls_done == 2, 2000);
    assert_int_equal(f->last_status, 0);
}

/* Pushes reach the client's on_push. */
static void rpc__push_reaches_client(void **state)
{
    struct fixture *f = *state;
    connect_one(f);
    assert_int_equal(proto_rpc_server_push(f->srv[0].s, f->srv[0].last_conn,
                                           AETHEX__METHOD__METHOD_KICK_PUBLISHER,
                                           AX_SLICE_LIT("\x0a\x01x")),
                     0);
    RUN_UNTIL(f, f->cli[0].pushes == 1, 2000);
    assert_int_equal(f->cli[0].last_push, AETHEX__METHOD__METHOD_KICK_PUBLISHER);
    assert_ax_err(proto_rpc_server_push(f->srv[0].s, 9999, AETHEX__METHOD__METHOD_KEY_REVOKED,
                                        AX_SLICE_LIT("")),
                  AX_ENOENT);
}

/* Closing the client cancels its pending calls, after close returned. */
static void rpc__close_cancels_pending(void **state)
{
    struct fixture *f = *state;
    connect_one(f);
    f->srv[0].hold = true;
    proto_rpc_call_t call = {.data = f};
    assert_int_equal(
        proto_rpc_call(&call, f->cli[0].c, AETHEX__METHOD__METHOD_PING, AX_SLICE_LIT(""), on_call),
        0);
    proto_rpc_client_close(f->cli[0].c, on_client_closed);
    assert_int_equal(f->calls_done, 0);
    RUN_UNTIL(f, f->cli[0].closed, 2000);
    assert_int_equal(f->calls_done, 1);
    assert_ax_err(f->last_status, AX_ECANCELED);
}

/* Bad configurations are refused with AX_EINVAL. */
static void rpc__bad_config_refused(void **state)
{
    struct fixture *f = *state;
    proto_rpc_server_config_t sc;
    proto_rpc_server_config_default(&sc);
    sc.server_id = "x";
    sc.secret = (const uint8_t *)"short";
    sc.secret_len = 5;
    sc.on_request = on_request;
    proto_rpc_server_t *s;
    assert_ax_err(proto_rpc_server_new(&f->loop, &sc, &s, NULL), AX_EINVAL);
    proto_rpc_client_config_t cc;
    proto_rpc_client_config_default(&cc);
    const char *bad = "localhost:1";
    cc.addresses = &bad;
    cc.naddresses = 1;
    cc.client_id = "x";
    cc.secret = (const uint8_t *)SECRET;
    cc.secret_len = strlen(SECRET);
    proto_rpc_client_t *c;
    char err[AX_ERRMSG_LEN];
    assert_ax_err(proto_rpc_client_new(&f->loop, &cc, &c, err), AX_EINVAL);
    assert_null(c);
}

static uint64_t fixed_rand(ax_rand_t *r)
{
    (void)r;
    return 1000; /* jitter factor 1.0: the full step */
}

/* With nobody listening, attempts are paced by the backoff (min 50 ms, max 100 ms, injected
 * randomness): a few attempts in half a second, never a busy loop. */
static void rpc__backoff_paces_reconnects(void **state)
{
    struct fixture *f = *state;
    ax_rand_t r = {fixed_rand, NULL};
    proto_rpc_client_config_t cc;
    proto_rpc_client_config_default(&cc);
    const char *addr = "127.0.0.1:1";
    cc.addresses = &addr;
    cc.naddresses = 1;
    cc.client_id = "edge-test";
    cc.secret = (const uint8_t *)SECRET;
    cc.secret_len = strlen(SECRET);
    cc.backoff_min_ms = 50;
    cc.backoff_max_ms = 100;
    cc.rand = &r;
    cc.data = &f->cli[0];
    f->cli[0].f = f;
    assert_int_equal(proto_rpc_client_new(&f->loop, &cc, &f->cli[0].c, NULL), 0);
    run_for(f, 500);
    proto_rpc_client_stats_t st;
    proto_rpc_client_stats(f->cli[0].c, &st);
    /* Waits 50, 100, 100, ...: at most 1 + 500/50 attempts, at least 3 even on a slow box. */
    assert_true(st.attempts >= 3);
    assert_true(st.attempts <= 7);
    assert_int_equal(st.connects, 0);
    assert_false(proto_rpc_client_connected(f->cli[0].c));
}

/* A connection arriving while memory is out is closed, and the listener keeps accepting. */
static void rpc__accept_without_memory_closes_and_goes_on(void **state)
{
    struct fixture *f = *state;
    start_server(f, 0, "127.0.0.1:0", SECRET);
    const char *addr = proto_rpc_server_address(f->srv[0].s);
    struct raw r;
    ax_fail_after(0);
    raw_send(f, &r, addr, "", 0);
    RUN_UNTIL(f, r.eof, 2000);
    ax_fail_after(-1);
    uv_close((uv_handle_t *)&r.tcp, raw_closed);
    RUN_UNTIL(f, r.closed, 1000);
    start_client(f, 0, &addr, 1, SECRET);
    RUN_UNTIL(f, f->cli[0].ups == 1, 3000);
}

static void run_nowait(struct fixture *f)
{
    for (int i = 0; i < 10; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Creating a server or a client fails cleanly with AX_ENOMEM at every allocation. */
static void rpc__new_oom_sweep(void **state)
{
    struct fixture *f = *state;
    proto_rpc_server_config_t sc;
    proto_rpc_server_config_default(&sc);
    sc.server_id = "coord-0";
    sc.secret = (const uint8_t *)SECRET;
    sc.secret_len = strlen(SECRET);
    sc.on_request = on_request;
    proto_rpc_server_t *s = NULL;
    AX_OOM_SWEEP(proto_rpc_server_new(&f->loop, &sc, &s, NULL),
                 (s != NULL ? (proto_rpc_server_close(s, NULL), s = NULL) : NULL, run_nowait(f)));
    proto_rpc_client_config_t cc;
    proto_rpc_client_config_default(&cc);
    const char *addr = "127.0.0.1:1";
    cc.addresses = &addr;
    cc.naddresses = 1;
    cc.client_id = "edge-test";
    cc.secret = (const uint8_t *)SECRET;
    cc.secret_len = strlen(SECRET);
    proto_rpc_client_t *c = NULL;
    AX_OOM_SWEEP(proto_rpc_client_new(&f->loop, &cc, &c, NULL),
                 (c != NULL ? (proto_rpc_client_close(c, NULL), c = NULL) : NULL, run_nowait(f)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(rpc__auth_and_call, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__wrong_secret_never_connects, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__wrong_proof_closed_by_server, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__bad_peers_do_not_disturb_others, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__silent_peer_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__call_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__follows_not_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__reconnects_after_server_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__push_reaches_client, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__close_cancels_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__bad_config_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__new_oom_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__backoff_paces_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(rpc__accept_without_memory_closes_and_goes_on, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

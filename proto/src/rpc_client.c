/*
 * The RPC client: one authenticated connection to the leader coordinator, reconnecting
 * forever with capped exponential backoff and jitter, calls with deadlines, NotLeader
 * redirects, pushes.
 *
 *                  +------------+  TCP up, Hello sent  +-----------+  AuthOk   +-------+
 *   new ---------->| CONNECTING |--------------------->| HANDSHAKE |---------->| READY |
 *                  +------------+                      +-----------+           +-------+
 *                     ^    |  failed: next address (immediately)   |               |
 *                     |    +---------------------------------------+  lost, or     |
 *                     |    round of addresses all failed                NotLeader  |
 *                     |    v                                            (redirect) |
 *                  +---------+                                                     |
 *                  | BACKOFF |<-------- (never: a lost READY retries at once) -----+
 *                  +---------+
 *   any --close--> CLOSING --handles closed--> CLOSED (calls canceled, close_cb, freed)
 *
 * A call is sent only in READY; it is answered, times out, fails with AX_ECONNRESET when
 * the connection it was sent on is lost, or is re-sent after a NotLeader redirect.
 * Callbacks that a connection loss or close causes are deferred to a zero-delay timer
 * ("sweep") so that none fires inside a submitting call.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "aethex/common/alloc.h"
#include "aethex/common/log.h"
#include "aethex/common/sm.h"
#include "rpc_internal.h"

enum {
    CLIENT_CONNECTING,
    CLIENT_HANDSHAKE,
    CLIENT_READY,
    CLIENT_BACKOFF,
    CLIENT_CLOSING,
    CLIENT_CLOSED,
    CLIENT_STATE_COUNT
};

static const struct ax_sm_conf client_states[CLIENT_STATE_COUNT] = {
    [CLIENT_CONNECTING] = {"connecting", AX_SM_BIT(CLIENT_CONNECTING) |
                                             AX_SM_BIT(CLIENT_HANDSHAKE) |
                                             AX_SM_BIT(CLIENT_BACKOFF) | AX_SM_BIT(CLIENT_CLOSING)},
    [CLIENT_HANDSHAKE] = {"handshake", AX_SM_BIT(CLIENT_CONNECTING) | AX_SM_BIT(CLIENT_READY) |
                                           AX_SM_BIT(CLIENT_BACKOFF) | AX_SM_BIT(CLIENT_CLOSING)},
    [CLIENT_READY] = {"ready", AX_SM_BIT(CLIENT_CONNECTING) | AX_SM_BIT(CLIENT_CLOSING)},
    [CLIENT_BACKOFF] = {"backoff", AX_SM_BIT(CLIENT_CONNECTING) | AX_SM_BIT(CLIENT_CLOSING)},
    [CLIENT_CLOSING] = {"closing", AX_SM_BIT(CLIENT_CLOSED)},
    [CLIENT_CLOSED] = {"closed", 0},
};

#define MAX_REDIRECTS 3 /* NotLeader hops one call may follow */

struct proto_rpc__call {
    proto_rpc_call_t *call;
    proto_rpc_call_cb cb;
    uint64_t request_id;
    uint64_t deadline; /* clock ms */
    uint32_t method;
    uint8_t *req; /* owned: the request payload, kept for a re-send */
    size_t req_len;
    bool sent;
    bool done; /* result decided, callback pending in the sweep */
    int result;
    unsigned redirects;
    struct proto_rpc__call *prev, *next;
};

struct cconn {
    struct proto_rpc__conn conn;
    uv_connect_t connect;
    proto_rpc_client_t *client;
    bool ready;
};

struct proto_rpc_client {
    uv_loop_t *loop;
    ax_sm_t sm;
    proto_rpc_client_config_t cfg; /* pointers below are owned copies */
    char addresses[PROTO_RPC_MAX_ADDRESSES][PROTO_RPC_MAX_ADDRESS + 1];
    uint32_t naddresses;
    char redirect[PROTO_RPC_MAX_ADDRESS + 1]; /* tried next, once */
    char client_id[PROTO_RPC_MAX_ID + 1];
    uint8_t secret[PROTO_RPC_MAX_SECRET];
    size_t secret_len;
    ax_rand_splitmix_t own_rand;

    uint32_t next_address;
    uint32_t attempts_in_round;
    uint32_t backoff_round;
    char attempt_address[PROTO_RPC_MAX_ADDRESS + 1];

    uv_timer_t backoff_timer;
    uv_timer_t sweep_timer;
    struct cconn *cur;
    int conns_closing; /* cconns whose handles are still closing */
    int handles;       /* the two timers, while open */
    uint8_t client_nonce[PROTO_RPC_NONCE_LEN];
    char server_id[PROTO_RPC_MAX_ID + 1];
    char address[PROTO_RPC_MAX_ADDRESS + 1]; /* of the READY connection */

    uint64_t next_request_id;
    struct proto_rpc__call *calls, *calls_tail;
    uint32_t ncalls;

    proto_rpc_client_close_cb close_cb;
    proto_rpc_client_stats_t stats;
    char errmsg[AX_ERRMSG_LEN];
};

void proto_rpc_client_config_default(proto_rpc_client_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->connect_timeout_ms = 2000;
    cfg->call_timeout_ms = 5000;
    cfg->backoff_min_ms = 100;
    cfg->backoff_max_ms = 5000;
    proto_rpc_limits_default(&cfg->limits);
}

static uint64_t now_ms(proto_rpc_client_t *c)
{
    return ax_clock_now_ms(c->cfg.clock);
}

static void start_attempt(proto_rpc_client_t *c);
static void finish_close(proto_rpc_client_t *c);

/* ---- calls ------------------------------------------------------------------------------ */

static void unlink_call(proto_rpc_client_t *c, struct proto_rpc__call *op)
{
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        c->calls = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    else
        c->calls_tail = op->prev;
    op->prev = op->next = NULL;
    c->ncalls--;
}

/* Unlinks and frees `op`, then calls back. `payload` borrowed for the callback. */
static void finish_call(proto_rpc_client_t *c, struct proto_rpc__call *op, int status,
                        ax_slice_t payload, const char *errmsg)
{
    unlink_call(c, op);
    proto_rpc_call_t *call = op->call;
    proto_rpc_call_cb cb = op->cb;
    ax_free(op->req);
    ax_free(op);
    call->op_ = NULL;
    call->payload = payload;
    if (errmsg != NULL && status != 0)
        snprintf(call->errmsg, sizeof call->errmsg, "%s", errmsg);
    else if (status != 0)
        snprintf(call->errmsg, sizeof call->errmsg, "%s: %s", proto_rpc_method_name(call->method),
                 ax_strerror(status));
    else
        call->errmsg[0] = '\0';
    cb(call, status);
}

static void arm_sweep(proto_rpc_client_t *c);

static void on_sweep(uv_timer_t *t)
{
    proto_rpc_client_t *c = t->data;
    uint64_t now = now_ms(c);
    /* Collect first: a callback may submit new calls or close the client. */
    for (struct proto_rpc__call *op = c->calls, *next; op != NULL; op = next) {
        next = op->next;
        if (!op->done && op->deadline <= now) {
            op->done = true;
            op->result = op->sent ? AX_ETIMEDOUT : AX_ENOLEADER;
            if (op->sent)
                c->stats.timeouts++;
        }
    }
    for (;;) {
        struct proto_rpc__call *op = c->calls;
        while (op != NULL && !op->done)
            op = op->next;
        if (op == NULL)
            break;
        finish_call(c, op, op->result, AX_SLICE("", 0), NULL);
    }
    arm_sweep(c);
}

/* Arms the sweep timer for the earliest deadline (or now, if a result is waiting). */
static void arm_sweep(proto_rpc_client_t *c)
{
    if (ax_sm_state(&c->sm) >= CLIENT_CLOSING)
        return;
    uint64_t now = now_ms(c), earliest = UINT64_MAX;
    for (struct proto_rpc__call *op = c->calls; op != NULL; op = op->next) {
        uint64_t d = op->done ? now : op->deadline;
        if (d < earliest)
            earliest = d;
    }
    if (earliest == UINT64_MAX) {
        uv_timer_stop(&c->sweep_timer);
        return;
    }
    uv_timer_start(&c->sweep_timer, on_sweep, earliest > now ? earliest - now : 0, 0);
}

static int send_call(proto_rpc_client_t *c, struct proto_rpc__call *op)
{
    proto_rpc_envelope_t env = {.request_id = op->request_id,
                                .method = op->method,
                                .payload = AX_SLICE(op->req, op->req_len)};
    int rv = proto_rpc__conn_send(&c->cur->conn, &env);
    if (rv == 0) {
        op->sent = true;
        c->stats.calls++;
    }
    return rv;
}

int proto_rpc_call(proto_rpc_call_t *call, proto_rpc_client_t *c, uint32_t method,
                   ax_slice_t payload, proto_rpc_call_cb cb)
{
    AX_PRE(call != NULL && cb != NULL && call->op_ == NULL);
    if (ax_sm_state(&c->sm) >= CLIENT_CLOSING)
        return AX_ECLOSED;
    if (method < AETHEX__METHOD__METHOD_REGISTER_EDGE)
        return AX_EINVAL;
    if (ax_sm_state(&c->sm) != CLIENT_READY || c->cur == NULL || c->cur->conn.dead)
        return AX_ENOLEADER;
    if (c->ncalls >= c->cfg.limits.max_pending_calls)
        return AX_ENOSPC;
    if (payload.len + 64 > c->cfg.limits.max_frame)
        return AX_EMSGSIZE;
    struct proto_rpc__call *op = ax_calloc(1, sizeof *op);
    if (op == NULL)
        return AX_ENOMEM;
    if (payload.len > 0) {
        op->req = ax_malloc(payload.len);
        if (op->req == NULL) {
            ax_free(op);
            return AX_ENOMEM;
        }
        memcpy(op->req, payload.base, payload.len);
        op->req_len = payload.len;
    }
    op->call = call;
    op->cb = cb;
    op->method = method;
    op->request_id = ++c->next_request_id;
    op->deadline = now_ms(c) + (call->timeout_ms ? call->timeout_ms : c->cfg.call_timeout_ms);
    int rv = send_call(c, op);
    if (rv < 0) {
        ax_free(op->req);
        ax_free(op);
        return rv;
    }
    call->client = c;
    call->method = method;
    call->payload = AX_SLICE("", 0);
    call->errmsg[0] = '\0';
    call->op_ = op;
    op->prev = c->calls_tail;
    if (c->calls_tail != NULL)
        c->calls_tail->next = op;
    else
        c->calls = op;
    c->calls_tail = op;
    c->ncalls++;
    arm_sweep(c);
    return 0;
}

/* ---- connection ------------------------------------------------------------------------- */

static void on_cconn_closed(struct proto_rpc__conn *conn)
{
    struct cconn *cc = ax_container_of(conn, struct cconn, conn);
    proto_rpc_client_t *c = cc->client;
    proto_rpc__conn_release(conn);
    ax_free(cc);
    c->conns_closing--;
    /* The client is freed by whichever closes last: this connection or the timers. */
    if (ax_sm_state(&c->sm) == CLIENT_CLOSING && c->conns_closing == 0 && c->handles == 0)
        finish_close(c);
}

static void schedule_next(proto_rpc_client_t *c, bool immediate);

static void on_cconn_dead(struct proto_rpc__conn *conn, int err, const char *why)
{
    struct cconn *cc = ax_container_of(conn, struct cconn, conn);
    proto_rpc_client_t *c = cc->client;
    c->conns_closing++;
    if (c->cur != cc)
        return;
    c->cur = NULL;
    int st = ax_sm_state(&c->sm);
    if (st == CLIENT_CLOSING)
        return;
    if (cc->ready) {
        if (err == 0) /* we closed it: following a NotLeader redirect */
            AX_LOG_I("rpc", "client=%s left %s: %s", c->client_id, conn->peer, why);
        else
            AX_LOG_W("rpc", "client=%s connection to %s lost: %s", c->client_id, conn->peer, why);
        snprintf(c->errmsg, sizeof c->errmsg, "%.100s: %.140s", c->address, why);
        c->address[0] = '\0';
        /* Calls already on the wire may or may not have run: the caller decides. */
        for (struct proto_rpc__call *op = c->calls; op != NULL; op = op->next)
            if (op->sent && !op->done) {
                op->done = true;
                op->result = AX_ECONNRESET;
            }
        arm_sweep(c);
        if (c->cfg.on_state != NULL)
            c->cfg.on_state(c, false, conn->peer, c->server_id);
        if (ax_sm_state(&c->sm) == CLIENT_CLOSING) /* closed from on_state */
            return;
        c->attempts_in_round = 0;
        schedule_next(c, true);
        return;
    }
    if (err != 0) {
        snprintf(c->errmsg, sizeof c->errmsg, "%.100s: %.140s", c->attempt_address, why);
        AX_LOG_D("rpc", "client=%s attempt %s failed: %s", c->client_id, c->attempt_address, why);
    }
    schedule_next(c, c->redirect[0] != '\0' || c->attempts_in_round < c->naddresses);
}

static int on_cconn_frame(struct proto_rpc__conn *conn, const proto_rpc_envelope_t *env, char *why)
{
    struct cconn *cc = ax_container_of(conn, struct cconn, conn);
    proto_rpc_client_t *c = cc->client;
    int st = ax_sm_state(&c->sm);
    if (!cc->ready) {
        if (st != CLIENT_HANDSHAKE || env->push) {
            snprintf(why, AX_ERRMSG_LEN, "unexpected frame before the handshake");
            return AX_EPROTO;
        }
        if (env->method == AETHEX__METHOD__METHOD_CHALLENGE && env->status == 0 &&
            c->server_id[0] == '\0') {
            Aethex__Challenge *ch = aethex__challenge__unpack(proto_rpc_allocator(),
                                                              env->payload.len, env->payload.base);
            if (ch == NULL) {
                snprintf(why, AX_ERRMSG_LEN, "malformed Challenge");
                return AX_EPROTO;
            }
            size_t sidlen = strlen(ch->server_id);
            uint8_t want[PROTO_RPC_PROOF_LEN];
            int rv = 0;
            if (ch->version != PROTO_RPC_VERSION || sidlen == 0 || sidlen > PROTO_RPC_MAX_ID ||
                ch->nonce.len != PROTO_RPC_NONCE_LEN) {
                snprintf(why, AX_ERRMSG_LEN, "bad Challenge");
                rv = AX_EPROTO;
            } else {
                proto_rpc_proof(c->secret, c->secret_len, true, c->client_nonce,
                                AX_SLICE(ch->server_id, sidlen), want);
                if (ch->server_proof.len != PROTO_RPC_PROOF_LEN ||
                    sodium_memcmp(ch->server_proof.data, want, PROTO_RPC_PROOF_LEN) != 0) {
                    snprintf(why, AX_ERRMSG_LEN,
                             "server failed to prove the cluster secret (wrong secret?)");
                    rv = AX_EACCES;
                }
            }
            if (rv == 0) {
                memcpy(c->server_id, ch->server_id, sidlen + 1);
                uint8_t proof[PROTO_RPC_PROOF_LEN];
                proto_rpc_proof(c->secret, c->secret_len, false, ch->nonce.data,
                                AX_SLICE(c->client_id, strlen(c->client_id)), proof);
                Aethex__Auth a = AETHEX__AUTH__INIT;
                a.client_proof.data = proof;
                a.client_proof.len = sizeof proof;
                uint8_t buf[64];
                size_t n = aethex__auth__pack(&a, buf);
                proto_rpc_envelope_t out = {.method = AETHEX__METHOD__METHOD_AUTH,
                                            .payload = AX_SLICE(buf, n)};
                rv = proto_rpc__conn_send(conn, &out);
            }
            aethex__challenge__free_unpacked(ch, proto_rpc_allocator());
            return rv;
        }
        if (env->method == AETHEX__METHOD__METHOD_AUTH && env->status == 0 &&
            c->server_id[0] != '\0') {
            uv_timer_stop(&conn->timer);
            cc->ready = true;
            ax_sm_move(&c->sm, CLIENT_READY);
            snprintf(c->address, sizeof c->address, "%s", c->attempt_address);
            c->backoff_round = 0;
            c->attempts_in_round = 0;
            c->stats.connects++;
            c->errmsg[0] = '\0';
            AX_LOG_I("rpc", "client=%s connected to server=%s at %s", c->client_id, c->server_id,
                     c->address);
            /* Calls waiting after a NotLeader redirect go out now, in order. */
            for (struct proto_rpc__call *op = c->calls; op != NULL; op = op->next)
                if (!op->sent && !op->done && send_call(c, op) < 0) {
                    op->done = true;
                    op->result = AX_ECONNRESET;
                }
            arm_sweep(c);
            if (c->cfg.on_state != NULL)
                c->cfg.on_state(c, true, c->address, c->server_id);
            return 0;
        }
        snprintf(why, AX_ERRMSG_LEN, "handshake refused: method %s status %s",
                 proto_rpc_method_name(env->method), env->status ? ax_err_name(env->status) : "0");
        return env->status < 0 ? env->status : AX_EPROTO;
    }
    if (env->push) {
        if (c->cfg.on_push != NULL)
            c->cfg.on_push(c, env->method, env->payload);
        return 0;
    }
    struct proto_rpc__call *op = c->calls;
    while (op != NULL && op->request_id != env->request_id)
        op = op->next;
    if (op == NULL || op->done || !op->sent)
        return 0; /* a response to a call that timed out: dropped */
    if (env->method != op->method) {
        snprintf(why, AX_ERRMSG_LEN, "response to request %llu has method %s, not %s",
                 (unsigned long long)env->request_id, proto_rpc_method_name(env->method),
                 proto_rpc_method_name(op->method));
        return AX_EPROTO;
    }
    if (env->status == AX_ENOTLEADER) {
        Aethex__NotLeader *nl =
            aethex__not_leader__unpack(proto_rpc_allocator(), env->payload.len, env->payload.base);
        const char *leader = nl != NULL ? nl->leader_rpc_address : "";
        struct sockaddr_storage ss;
        if (leader[0] == '\0' || proto_rpc__parse_address(leader, &ss) < 0 ||
            ++op->redirects > MAX_REDIRECTS) {
            finish_call(c, op, AX_ENOLEADER, AX_SLICE("", 0),
                        leader[0] ? "not leader: too many redirects or a bad address"
                                  : "not leader, and no leader known");
        } else {
            /* The request was refused before it ran: send it again to the leader. */
            snprintf(c->redirect, sizeof c->redirect, "%s", leader);
            c->stats.not_leader++;
            for (struct proto_rpc__call *o = c->calls; o != NULL; o = o->next)
                if (o == op)
                    o->sent = false;
            AX_LOG_I("rpc", "client=%s %s is not the leader: following to %s", c->client_id,
                     c->address, leader);
            if (nl != NULL)
                aethex__not_leader__free_unpacked(nl, proto_rpc_allocator());
            proto_rpc__conn_close(conn, 0, "following the leader");
            return 0;
        }
        if (nl != NULL)
            aethex__not_leader__free_unpacked(nl, proto_rpc_allocator());
        return 0;
    }
    char err[AX_ERRMSG_LEN];
    snprintf(err, sizeof err, "%.*s", (int)(env->error.len < 200 ? env->error.len : 200),
             (const char *)env->error.base);
    finish_call(c, op, env->status, env->payload, err[0] ? err : NULL);
    return 0;
}

static void on_attempt_timeout(uv_timer_t *t)
{
    struct proto_rpc__conn *conn = t->data;
    proto_rpc__conn_close(conn, AX_ETIMEDOUT, "connect/handshake timed out");
}

static void on_connect(uv_connect_t *req, int status)
{
    struct cconn *cc = req->data;
    proto_rpc_client_t *c = cc->client;
    if (cc->conn.dead)
        return;
    if (status < 0) {
        proto_rpc__conn_close(&cc->conn, AX_ECONNRESET, uv_strerror(status));
        return;
    }
    proto_rpc__conn_set_peer(&cc->conn);
    uv_tcp_nodelay(&cc->conn.tcp, 1);
    int rv = proto_rpc__conn_start(&cc->conn);
    if (rv < 0) {
        proto_rpc__conn_close(&cc->conn, AX_ECONNRESET, uv_strerror(rv));
        return;
    }
    ax_sm_move(&c->sm, CLIENT_HANDSHAKE);
    c->server_id[0] = '\0';
    randombytes_buf(c->client_nonce, sizeof c->client_nonce);
    Aethex__Hello h = AETHEX__HELLO__INIT;
    h.version = PROTO_RPC_VERSION;
    h.client_id = c->client_id;
    h.client_nonce.data = c->client_nonce;
    h.client_nonce.len = sizeof c->client_nonce;
    uint8_t buf[160];
    size_t n = aethex__hello__pack(&h, buf);
    proto_rpc_envelope_t env = {.method = AETHEX__METHOD__METHOD_HELLO,
                                .payload = AX_SLICE(buf, n)};
    rv = proto_rpc__conn_send(&cc->conn, &env);
    if (rv < 0)
        proto_rpc__conn_close(&cc->conn, rv, "sending Hello");
}

static void start_attempt(proto_rpc_client_t *c)
{
    if (ax_sm_state(&c->sm) != CLIENT_CONNECTING)
        ax_sm_move(&c->sm, CLIENT_CONNECTING);
    if (c->redirect[0] != '\0') {
        snprintf(c->attempt_address, sizeof c->attempt_address, "%s", c->redirect);
        c->redirect[0] = '\0';
    } else {
        snprintf(c->attempt_address, sizeof c->attempt_address, "%s",
                 c->addresses[c->next_address % c->naddresses]);
        c->next_address = (c->next_address + 1) % c->naddresses;
        c->attempts_in_round++;
    }
    c->stats.attempts++;
    struct sockaddr_storage ss;
    proto_rpc__parse_address(c->attempt_address, &ss); /* checked when it was stored */
    struct cconn *cc = ax_calloc(1, sizeof *cc);
    if (cc == NULL) {
        snprintf(c->errmsg, sizeof c->errmsg, "out of memory connecting");
        schedule_next(c, false);
        return;
    }
    cc->client = c;
    cc->conn.on_frame = on_cconn_frame;
    cc->conn.on_dead = on_cconn_dead;
    cc->conn.on_closed = on_cconn_closed;
    cc->connect.data = cc;
    c->cur = cc;
    int rv = proto_rpc__conn_init(&cc->conn, c->loop, &c->cfg.limits);
    if (rv == 0)
        rv = uv_timer_start(&cc->conn.timer, on_attempt_timeout, c->cfg.connect_timeout_ms, 0);
    if (rv == 0)
        rv = uv_tcp_connect(&cc->connect, &cc->conn.tcp, (struct sockaddr *)&ss, on_connect);
    if (rv < 0)
        proto_rpc__conn_close(&cc->conn, AX_ECONNRESET, uv_strerror(rv));
}

static void on_backoff_timer(uv_timer_t *t)
{
    proto_rpc_client_t *c = t->data;
    if (ax_sm_state(&c->sm) >= CLIENT_CLOSING || c->cur != NULL)
        return;
    start_attempt(c);
}

/* Next attempt: at once (next address, a redirect, a lost connection), or after backoff when
 * a whole round of addresses failed. Always from the timer, never re-entrantly. */
static void schedule_next(proto_rpc_client_t *c, bool immediate)
{
    uint32_t wait = 0;
    if (!immediate) {
        wait = proto_rpc_backoff_ms(c->cfg.backoff_min_ms, c->cfg.backoff_max_ms, c->backoff_round,
                                    ax_rand_u64(c->cfg.rand));
        if (c->backoff_round < 32)
            c->backoff_round++;
        c->attempts_in_round = 0;
        ax_sm_move(&c->sm, CLIENT_BACKOFF);
        AX_LOG_D("rpc", "client=%s no coordinator reachable (%s); retrying in %u ms", c->client_id,
                 c->errmsg, wait);
    } else if (ax_sm_state(&c->sm) != CLIENT_CONNECTING) {
        ax_sm_move(&c->sm, CLIENT_CONNECTING);
    }
    uv_timer_start(&c->backoff_timer, on_backoff_timer, wait, 0);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

int proto_rpc_client_new(uv_loop_t *loop, const proto_rpc_client_config_t *cfg,
                         proto_rpc_client_t **out, char *errmsg)
{
    *out = NULL;
    char dummy[AX_ERRMSG_LEN];
    if (errmsg == NULL)
        errmsg = dummy;
    if (cfg->naddresses == 0 || cfg->naddresses > PROTO_RPC_MAX_ADDRESSES) {
        snprintf(errmsg, AX_ERRMSG_LEN, "rpc client: 1..%d addresses", PROTO_RPC_MAX_ADDRESSES);
        return AX_EINVAL;
    }
    for (uint32_t i = 0; i < cfg->naddresses; i++) {
        struct sockaddr_storage ss;
        if (cfg->addresses[i] == NULL || proto_rpc__parse_address(cfg->addresses[i], &ss) < 0) {
            snprintf(errmsg, AX_ERRMSG_LEN, "rpc client: bad address '%s' (want ip:port)",
                     cfg->addresses[i] ? cfg->addresses[i] : "");
            return AX_EINVAL;
        }
    }
    if (cfg->client_id == NULL || cfg->client_id[0] == '\0' ||
        strlen(cfg->client_id) > PROTO_RPC_MAX_ID) {
        snprintf(errmsg, AX_ERRMSG_LEN, "rpc client: client id of 1..%d bytes", PROTO_RPC_MAX_ID);
        return AX_EINVAL;
    }
    if (cfg->secret == NULL || cfg->secret_len < PROTO_RPC_MIN_SECRET ||
        cfg->secret_len > PROTO_RPC_MAX_SECRET) {
        snprintf(errmsg, AX_ERRMSG_LEN, "cluster secret: %d..%d bytes", PROTO_RPC_MIN_SECRET,
                 PROTO_RPC_MAX_SECRET);
        return AX_EINVAL;
    }
    if (cfg->limits.max_frame < 64 || cfg->limits.max_frame > PROTO_RPC_MAX_FRAME_LIMIT ||
        cfg->limits.max_pending_calls == 0 || cfg->connect_timeout_ms == 0 ||
        cfg->call_timeout_ms == 0 || cfg->backoff_min_ms == 0 ||
        cfg->backoff_max_ms < cfg->backoff_min_ms ||
        cfg->limits.max_write_queue < cfg->limits.max_frame + PROTO_RPC_FRAME_HEADER) {
        snprintf(errmsg, AX_ERRMSG_LEN, "rpc client: bad limits or timeouts");
        return AX_EINVAL;
    }
    proto_rpc_client_t *c = ax_calloc(1, sizeof *c);
    if (c == NULL)
        return AX_ENOMEM;
    c->loop = loop;
    c->cfg = *cfg;
    for (uint32_t i = 0; i < cfg->naddresses; i++)
        snprintf(c->addresses[i], sizeof c->addresses[i], "%s", cfg->addresses[i]);
    c->naddresses = cfg->naddresses;
    c->cfg.addresses = NULL;
    snprintf(c->client_id, sizeof c->client_id, "%s", cfg->client_id);
    c->cfg.client_id = c->client_id;
    memcpy(c->secret, cfg->secret, cfg->secret_len);
    c->secret_len = cfg->secret_len;
    c->cfg.secret = NULL;
    if (c->cfg.clock == NULL)
        c->cfg.clock = ax_clock_system();
    if (c->cfg.rand == NULL) {
        uint64_t seed;
        randombytes_buf(&seed, sizeof seed);
        ax_rand_splitmix_init(&c->own_rand, seed);
        c->cfg.rand = &c->own_rand.rand;
    }
    ax_sm_init(&c->sm, client_states, CLIENT_STATE_COUNT, CLIENT_CONNECTING);
    uv_timer_init(loop, &c->backoff_timer);
    uv_timer_init(loop, &c->sweep_timer);
    c->backoff_timer.data = c;
    c->sweep_timer.data = c;
    c->handles = 2;
    *out = c;
    /* The first attempt starts from the loop, like every later one. */
    uv_timer_start(&c->backoff_timer, on_backoff_timer, 0, 0);
    return 0;
}

static void finish_close(proto_rpc_client_t *c)
{
    ax_sm_move(&c->sm, CLIENT_CLOSED);
    while (c->calls != NULL)
        finish_call(c, c->calls, AX_ECANCELED, AX_SLICE("", 0), "rpc client closed");
    if (c->close_cb != NULL)
        c->close_cb(c);
    sodium_memzero(c->secret, sizeof c->secret);
    ax_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    proto_rpc_client_t *c = h->data;
    if (--c->handles == 0 && c->conns_closing == 0)
        finish_close(c);
}

void proto_rpc_client_close(proto_rpc_client_t *c, proto_rpc_client_close_cb cb)
{
    if (c == NULL)
        return;
    AX_PRE(ax_sm_state(&c->sm) < CLIENT_CLOSING);
    ax_sm_move(&c->sm, CLIENT_CLOSING);
    c->close_cb = cb;
    if (c->cur != NULL)
        proto_rpc__conn_close(&c->cur->conn, 0, "client closing");
    uv_close((uv_handle_t *)&c->backoff_timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->sweep_timer, on_timer_closed);
}

void *proto_rpc_client_data(const proto_rpc_client_t *c)
{
    return c->cfg.data;
}

bool proto_rpc_client_connected(const proto_rpc_client_t *c)
{
    return ax_sm_state(&c->sm) == CLIENT_READY;
}

const char *proto_rpc_client_address(const proto_rpc_client_t *c)
{
    return c->address;
}

const char *proto_rpc_client_errmsg(const proto_rpc_client_t *c)
{
    return c->errmsg;
}

void proto_rpc_client_stats(const proto_rpc_client_t *c, proto_rpc_client_stats_t *out)
{
    *out = c->stats;
}

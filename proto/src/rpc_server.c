/*
 * The RPC server: listener, per-connection handshake, dispatch, responses and pushes.
 *
 * A connection's lifecycle:
 *
 *   +-------+ Hello ok  +-----------+ Auth ok   +-------+
 *   | HELLO |---------->| CHALLENGE |---------->| READY |-- requests, responses, pushes
 *   +-------+           +-----------+           +-------+
 *       |                     |                     |
 *       +---------------------+---------------------+--> DEAD (anything wrong, EOF, kick,
 *                                                         handshake timeout) -> freed after
 *                                                         its handles closed
 *
 * Before READY nothing reaches the application: a request frame there is an
 * "unauthenticated frame" and closes that connection (logged once with the peer address).
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "aethex/common/alloc.h"
#include "aethex/common/log.h"
#include "aethex/common/sm.h"
#include "rpc_internal.h"

enum { SCONN_HELLO, SCONN_CHALLENGE, SCONN_READY, SCONN_DEAD, SCONN_STATE_COUNT };

static const struct ax_sm_conf sconn_states[SCONN_STATE_COUNT] = {
    [SCONN_HELLO] = {"hello", AX_SM_BIT(SCONN_CHALLENGE) | AX_SM_BIT(SCONN_DEAD)},
    [SCONN_CHALLENGE] = {"challenge", AX_SM_BIT(SCONN_READY) | AX_SM_BIT(SCONN_DEAD)},
    [SCONN_READY] = {"ready", AX_SM_BIT(SCONN_DEAD)},
    [SCONN_DEAD] = {"dead", 0},
};

struct sconn {
    struct proto_rpc__conn conn;
    proto_rpc_server_t *server;
    ax_sm_t sm;
    uint64_t id;
    uint8_t nonce[PROTO_RPC_NONCE_LEN];
    char client_id[PROTO_RPC_MAX_ID + 1];
    struct sconn *prev, *next;
};

struct proto_rpc_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    proto_rpc_server_config_t cfg; /* strings below are owned copies */
    char *server_id;               /* owned */
    uint8_t secret[PROTO_RPC_MAX_SECRET];
    size_t secret_len;
    char address[PROTO_RPC_MAX_ADDRESS + 1];
    struct sconn *conns; /* every open connection */
    uint64_t next_id;
    bool closing;
    bool listener_closed;
    uv_tcp_t reject; /* accepts-and-closes a connection we have no memory for */
    bool reject_busy;
    proto_rpc_server_close_cb close_cb;
    proto_rpc_server_stats_t stats;
};

void proto_rpc_server_config_default(proto_rpc_server_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->address = "127.0.0.1:0";
    proto_rpc_limits_default(&cfg->limits);
}

static int parse_address(const char *address, struct sockaddr_storage *ss)
{
    char host[PROTO_RPC_MAX_ADDRESS + 1];
    const char *colon = strrchr(address, ':');
    if (colon == NULL || strlen(address) > PROTO_RPC_MAX_ADDRESS)
        return AX_EINVAL;
    const char *h = address;
    size_t hl = (size_t)(colon - address);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || port > 65535)
        return AX_EINVAL;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return AX_EINVAL;
}

int proto_rpc__parse_address(const char *address, struct sockaddr_storage *ss)
{
    return parse_address(address, ss);
}

static void set_err(char *errmsg, const char *fmt, const char *a)
{
    if (errmsg != NULL)
        snprintf(errmsg, AX_ERRMSG_LEN, fmt, a);
}

static void maybe_finish_close(proto_rpc_server_t *s);

static void unlink_conn(proto_rpc_server_t *s, struct sconn *sc)
{
    if (sc->prev != NULL)
        sc->prev->next = sc->next;
    else
        s->conns = sc->next;
    if (sc->next != NULL)
        sc->next->prev = sc->prev;
    sc->prev = sc->next = NULL;
}

static void on_sconn_closed(struct proto_rpc__conn *c)
{
    struct sconn *sc = ax_container_of(c, struct sconn, conn);
    proto_rpc_server_t *s = sc->server;
    unlink_conn(s, sc);
    s->stats.connections--;
    proto_rpc__conn_release(c);
    sodium_memzero(sc->nonce, sizeof sc->nonce);
    ax_free(sc);
    maybe_finish_close(s);
}

static void on_sconn_dead(struct proto_rpc__conn *c, int err, const char *why)
{
    struct sconn *sc = ax_container_of(c, struct sconn, conn);
    proto_rpc_server_t *s = sc->server;
    int st = ax_sm_state(&sc->sm);
    ax_sm_move(&sc->sm, SCONN_DEAD);
    /* One line per closed connection, with the peer: a protocol problem is a warning, a
     * peer that hung up or a close we asked for is not. */
    if (err == 0 || err == AX_ECONNRESET)
        AX_LOG_I("rpc", "server=%s peer=%s client=%s closed in %s: %s", s->server_id, c->peer,
                 sc->client_id[0] ? sc->client_id : "-", sconn_states[st].name, why);
    else
        AX_LOG_W("rpc", "server=%s peer=%s client=%s closed in %s: %s: %s", s->server_id, c->peer,
                 sc->client_id[0] ? sc->client_id : "-", sconn_states[st].name, ax_err_name(err),
                 why);
    if (st != SCONN_READY && err != 0 && err != AX_ECONNRESET)
        s->stats.auth_failures++;
    else if (st == SCONN_READY && err != 0 && err != AX_ECONNRESET)
        s->stats.protocol_errors++;
    if (st == SCONN_READY && s->cfg.on_conn != NULL) {
        proto_rpc_peer_t peer = {sc->id, sc->client_id, c->peer};
        s->cfg.on_conn(s, &peer, false);
    }
}

static int on_handshake_frame(struct sconn *sc, const proto_rpc_envelope_t *env, char *why)
{
    proto_rpc_server_t *s = sc->server;
    if (env->push || env->status != 0) {
        snprintf(why, AX_ERRMSG_LEN, "unexpected frame during handshake");
        return AX_EPROTO;
    }
    if (ax_sm_state(&sc->sm) == SCONN_HELLO) {
        if (env->method != AETHEX__METHOD__METHOD_HELLO) {
            snprintf(why, AX_ERRMSG_LEN, "unauthenticated frame (method %s) before Hello",
                     proto_rpc_method_name(env->method));
            return AX_EACCES;
        }
        Aethex__Hello *h =
            aethex__hello__unpack(proto_rpc_allocator(), env->payload.len, env->payload.base);
        if (h == NULL) {
            snprintf(why, AX_ERRMSG_LEN, "malformed Hello");
            return AX_EPROTO;
        }
        size_t idlen = strlen(h->client_id);
        int rv = 0;
        if (h->version != PROTO_RPC_VERSION) {
            snprintf(why, AX_ERRMSG_LEN, "Hello: unsupported version %u", h->version);
            rv = AX_EPROTO;
        } else if (idlen == 0 || idlen > PROTO_RPC_MAX_ID) {
            snprintf(why, AX_ERRMSG_LEN, "Hello: client_id of %zu bytes (1..%d)", idlen,
                     PROTO_RPC_MAX_ID);
            rv = AX_EPROTO;
        } else if (h->client_nonce.len != PROTO_RPC_NONCE_LEN) {
            snprintf(why, AX_ERRMSG_LEN, "Hello: client_nonce of %zu bytes", h->client_nonce.len);
            rv = AX_EPROTO;
        }
        if (rv < 0) {
            aethex__hello__free_unpacked(h, proto_rpc_allocator());
            return rv;
        }
        memcpy(sc->client_id, h->client_id, idlen + 1);
        uint8_t proof[PROTO_RPC_PROOF_LEN];
        proto_rpc_proof(s->secret, s->secret_len, true, h->client_nonce.data,
                        AX_SLICE(s->server_id, strlen(s->server_id)), proof);
        aethex__hello__free_unpacked(h, proto_rpc_allocator());
        randombytes_buf(sc->nonce, sizeof sc->nonce);

        Aethex__Challenge ch = AETHEX__CHALLENGE__INIT;
        ch.version = PROTO_RPC_VERSION;
        ch.server_id = s->server_id;
        ch.nonce.data = sc->nonce;
        ch.nonce.len = sizeof sc->nonce;
        ch.server_proof.data = proof;
        ch.server_proof.len = sizeof proof;
        uint8_t buf[256];
        size_t n = aethex__challenge__pack(&ch, buf); /* ids are <= 64 bytes: fits */
        proto_rpc_envelope_t out = {.method = AETHEX__METHOD__METHOD_CHALLENGE,
                                    .payload = AX_SLICE(buf, n)};
        ax_sm_move(&sc->sm, SCONN_CHALLENGE);
        rv = proto_rpc__conn_send(&sc->conn, &out);
        if (rv < 0)
            snprintf(why, AX_ERRMSG_LEN, "sending Challenge");
        return rv;
    }
    /* SCONN_CHALLENGE: expect Auth. */
    if (env->method != AETHEX__METHOD__METHOD_AUTH) {
        snprintf(why, AX_ERRMSG_LEN, "unauthenticated frame (method %s) before Auth",
                 proto_rpc_method_name(env->method));
        return AX_EACCES;
    }
    Aethex__Auth *a =
        aethex__auth__unpack(proto_rpc_allocator(), env->payload.len, env->payload.base);
    if (a == NULL) {
        snprintf(why, AX_ERRMSG_LEN, "malformed Auth");
        return AX_EPROTO;
    }
    uint8_t want[PROTO_RPC_PROOF_LEN];
    proto_rpc_proof(s->secret, s->secret_len, false, sc->nonce,
                    AX_SLICE(sc->client_id, strlen(sc->client_id)), want);
    bool ok = a->client_proof.len == PROTO_RPC_PROOF_LEN &&
              sodium_memcmp(a->client_proof.data, want, PROTO_RPC_PROOF_LEN) == 0;
    aethex__auth__free_unpacked(a, proto_rpc_allocator());
    if (!ok) {
        snprintf(why, AX_ERRMSG_LEN, "authentication failed (wrong cluster secret?)");
        return AX_EACCES;
    }
    uv_timer_stop(&sc->conn.timer);
    Aethex__AuthOk ok_msg = AETHEX__AUTH_OK__INIT;
    ok_msg.server_id = s->server_id;
    uint8_t buf[128];
    size_t n = aethex__auth_ok__pack(&ok_msg, buf);
    proto_rpc_envelope_t out = {.method = AETHEX__METHOD__METHOD_AUTH, .payload = AX_SLICE(buf, n)};
    int rv = proto_rpc__conn_send(&sc->conn, &out);
    if (rv < 0) {
        snprintf(why, AX_ERRMSG_LEN, "sending AuthOk");
        return rv;
    }
    ax_sm_move(&sc->sm, SCONN_READY);
    s->stats.authenticated++;
    AX_LOG_I("rpc", "server=%s peer=%s client=%s authenticated", s->server_id, sc->conn.peer,
             sc->client_id);
    if (s->cfg.on_conn != NULL) {
        proto_rpc_peer_t peer = {sc->id, sc->client_id, sc->conn.peer};
        s->cfg.on_conn(s, &peer, true);
    }
    return 0;
}

static int on_sconn_frame(struct proto_rpc__conn *c, const proto_rpc_envelope_t *env, char *why)
{
    struct sconn *sc = ax_container_of(c, struct sconn, conn);
    proto_rpc_server_t *s = sc->server;
    if (ax_sm_state(&sc->sm) != SCONN_READY)
        return on_handshake_frame(sc, env, why);
    if (env->push || env->status != 0 || env->method < AETHEX__METHOD__METHOD_REGISTER_EDGE) {
        snprintf(why, AX_ERRMSG_LEN, "unexpected frame (method %s%s)",
                 proto_rpc_method_name(env->method), env->push ? ", push" : "");
        return AX_EPROTO;
    }
    s->stats.requests++;
    proto_rpc_peer_t peer = {sc->id, sc->client_id, c->peer};
    s->cfg.on_request(s, &peer, env);
    return 0;
}

static void on_handshake_timeout(uv_timer_t *t)
{
    struct proto_rpc__conn *c = t->data;
    struct sconn *sc = ax_container_of(c, struct sconn, conn);
    proto_rpc__conn_close(&sc->conn, AX_ETIMEDOUT, "handshake timed out");
}

static void on_reject_closed(uv_handle_t *h)
{
    proto_rpc_server_t *s = h->data;
    s->reject_busy = false;
    maybe_finish_close(s);
}

static void on_connection(uv_stream_t *l, int status)
{
    proto_rpc_server_t *s = l->data;
    if (status < 0 || s->closing)
        return;
    struct sconn *sc = ax_calloc(1, sizeof *sc);
    if (sc == NULL) {
        /* libuv stops watching the listener until the pending connection is accepted: take
         * it with the spare handle and close it, so the listener keeps working. */
        AX_LOG_E("rpc", "server=%s out of memory accepting a connection", s->server_id);
        if (!s->reject_busy && uv_tcp_init(s->loop, &s->reject) == 0) {
            s->reject_busy = true;
            s->reject.data = s;
            uv_accept(l, (uv_stream_t *)&s->reject);
            uv_close((uv_handle_t *)&s->reject, on_reject_closed);
        }
        return;
    }
    sc->server = s;
    sc->id = ++s->next_id;
    ax_sm_init(&sc->sm, sconn_states, SCONN_STATE_COUNT, SCONN_HELLO);
    sc->conn.on_frame = on_sconn_frame;
    sc->conn.on_dead = on_sconn_dead;
    sc->conn.on_closed = on_sconn_closed;
    sc->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = sc;
    s->conns = sc;
    s->stats.connections++;
    s->stats.accepted++;
    int rv = proto_rpc__conn_init(&sc->conn, s->loop, &s->cfg.limits);
    if (rv == 0)
        rv = uv_accept(l, (uv_stream_t *)&sc->conn.tcp);
    if (rv == 0) {
        proto_rpc__conn_set_peer(&sc->conn);
        if (s->stats.connections > s->cfg.limits.max_connections) {
            proto_rpc__conn_close(&sc->conn, AX_ENOSPC, "too many connections");
            return;
        }
        uv_tcp_nodelay(&sc->conn.tcp, 1);
        rv = uv_timer_start(&sc->conn.timer, on_handshake_timeout,
                            s->cfg.limits.handshake_timeout_ms, 0);
    }
    if (rv == 0)
        rv = proto_rpc__conn_start(&sc->conn);
    if (rv < 0)
        proto_rpc__conn_close(&sc->conn, rv, uv_strerror(rv));
}

int proto_rpc_server_new(uv_loop_t *loop, const proto_rpc_server_config_t *cfg,
                         proto_rpc_server_t **out, char *errmsg)
{
    *out = NULL;
    struct sockaddr_storage ss;
    if (cfg->address == NULL || parse_address(cfg->address, &ss) < 0) {
        set_err(errmsg, "rpc listen address '%s': want ip:port", cfg->address ? cfg->address : "");
        return AX_EINVAL;
    }
    if (cfg->server_id == NULL || cfg->server_id[0] == '\0' ||
        strlen(cfg->server_id) > PROTO_RPC_MAX_ID) {
        set_err(errmsg, "rpc server id: %s", "1..64 bytes");
        return AX_EINVAL;
    }
    if (cfg->secret == NULL || cfg->secret_len < PROTO_RPC_MIN_SECRET ||
        cfg->secret_len > PROTO_RPC_MAX_SECRET) {
        set_err(errmsg, "cluster secret: %s", "32..1024 bytes");
        return AX_EINVAL;
    }
    if (cfg->on_request == NULL || cfg->limits.max_frame < 64 ||
        cfg->limits.max_frame > PROTO_RPC_MAX_FRAME_LIMIT || cfg->limits.max_connections == 0 ||
        cfg->limits.max_write_queue < cfg->limits.max_frame + PROTO_RPC_FRAME_HEADER) {
        set_err(errmsg, "rpc server: %s", "bad limits or no on_request");
        return AX_EINVAL;
    }
    proto_rpc_server_t *s = ax_calloc(1, sizeof *s);
    if (s == NULL)
        return AX_ENOMEM;
    s->loop = loop;
    s->cfg = *cfg;
    s->server_id = ax_strndup(cfg->server_id, strlen(cfg->server_id));
    if (s->server_id == NULL) {
        ax_free(s);
        return AX_ENOMEM;
    }
    s->cfg.server_id = s->server_id;
    s->cfg.address = NULL;
    s->cfg.secret = NULL;
    memcpy(s->secret, cfg->secret, cfg->secret_len);
    s->secret_len = cfg->secret_len;
    int rv = uv_tcp_init(loop, &s->listener);
    if (rv < 0) {
        ax_free(s->server_id);
        ax_free(s);
        return rv;
    }
    s->listener.data = s;
    rv = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (rv < 0) {
        set_err(errmsg, "rpc listen: %s", uv_strerror(rv));
        /* The listener is a live handle: free the server once it has closed. */
        s->closing = true;
        proto_rpc_server_close(s, NULL);
        return rv;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    char host[INET6_ADDRSTRLEN] = "?";
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
    if (bound.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&bound, host, sizeof host);
        snprintf(s->address, sizeof s->address, "[%s]:%u", host,
                 ntohs(((struct sockaddr_in6 *)&bound)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&bound, host, sizeof host);
        snprintf(s->address, sizeof s->address, "%s:%u", host,
                 ntohs(((struct sockaddr_in *)&bound)->sin_port));
    }
    *out = s;
    return 0;
}

static void maybe_finish_close(proto_rpc_server_t *s)
{
    if (!s->closing || !s->listener_closed || s->conns != NULL || s->reject_busy)
        return;
    if (s->close_cb != NULL)
        s->close_cb(s);
    sodium_memzero(s->secret, sizeof s->secret);
    ax_free(s->server_id);
    ax_free(s);
}

static void on_listener_closed(uv_handle_t *h)
{
    proto_rpc_server_t *s = h->data;
    s->listener_closed = true;
    maybe_finish_close(s);
}

void proto_rpc_server_close(proto_rpc_server_t *s, proto_rpc_server_close_cb cb)
{
    if (s == NULL)
        return;
    s->closing = true;
    s->close_cb = cb;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (struct sconn *sc = s->conns, *next; sc != NULL; sc = next) {
        next = sc->next;
        proto_rpc__conn_close(&sc->conn, 0, "server closing");
    }
}

void *proto_rpc_server_data(const proto_rpc_server_t *s)
{
    return s->cfg.data;
}

const char *proto_rpc_server_address(const proto_rpc_server_t *s)
{
    return s->address;
}

static struct sconn *find_conn(proto_rpc_server_t *s, uint64_t conn_id)
{
    for (struct sconn *sc = s->conns; sc != NULL; sc = sc->next)
        if (sc->id == conn_id)
            return ax_sm_state(&sc->sm) == SCONN_READY ? sc : NULL;
    return NULL;
}

int proto_rpc_server_respond(proto_rpc_server_t *s, uint64_t conn_id, uint64_t request_id,
                             uint32_t method, int32_t status, const char *error, ax_slice_t payload)
{
    struct sconn *sc = find_conn(s, conn_id);
    if (sc == NULL)
        return AX_ENOENT;
    proto_rpc_envelope_t env = {
        .request_id = request_id,
        .method = method,
        .status = status > 0 ? AX_EINVAL : status,
        .error = error != NULL ? AX_SLICE(error, strnlen(error, 1024)) : AX_SLICE("", 0),
        .payload = payload,
    };
    return proto_rpc__conn_send(&sc->conn, &env);
}

int proto_rpc_server_respond_not_leader(proto_rpc_server_t *s, uint64_t conn_id,
                                        uint64_t request_id, uint32_t method,
                                        const char *leader_rpc_address)
{
    Aethex__NotLeader nl = AETHEX__NOT_LEADER__INIT;
    char addr[PROTO_RPC_MAX_ADDRESS + 1] = "";
    if (leader_rpc_address != NULL)
        snprintf(addr, sizeof addr, "%s", leader_rpc_address);
    nl.leader_rpc_address = addr;
    uint8_t buf[PROTO_RPC_MAX_ADDRESS + 16];
    size_t n = aethex__not_leader__pack(&nl, buf);
    return proto_rpc_server_respond(s, conn_id, request_id, method, AX_ENOTLEADER,
                                    addr[0] ? "not the leader" : "not the leader; no leader known",
                                    AX_SLICE(buf, n));
}

int proto_rpc_server_push(proto_rpc_server_t *s, uint64_t conn_id, uint32_t method,
                          ax_slice_t payload)
{
    struct sconn *sc = find_conn(s, conn_id);
    if (sc == NULL)
        return AX_ENOENT;
    proto_rpc_envelope_t env = {.method = method, .payload = payload, .push = true};
    return proto_rpc__conn_send(&sc->conn, &env);
}

int proto_rpc_server_kick(proto_rpc_server_t *s, uint64_t conn_id)
{
    struct sconn *sc = find_conn(s, conn_id);
    if (sc == NULL)
        return AX_ENOENT;
    proto_rpc__conn_close(&sc->conn, 0, "kicked");
    return 0;
}

void proto_rpc_server_stats(const proto_rpc_server_t *s, proto_rpc_server_stats_t *out)
{
    *out = s->stats;
}

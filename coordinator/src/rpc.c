/*
 * The coordinator's side of the edge RPC (coord_rpc.h).
 *
 * Only the leader answers requests that touch the registry or the database; a follower
 * answers NotLeader with the leader's RPC address, derived by convention: every coordinator
 * listens for RPC on the host of its dqlite address, at the same port offset from its dqlite
 * port (9001 -> 9101 with the defaults of run.sh). The dqlite LEADER answer gives the
 * leader's dqlite address; the offset gives its RPC address (docs/coordinator.md).
 *
 * AuthorizePublish, as a state table (one `struct op` per request):
 *
 *   KEY     SELECT the key's channel by SHA-256(key), not revoked      -> AX_EBADKEY if none
 *    |
 *   LIVE    SELECT the channel's live streams and their origin edges   -> AX_ELIVE if one is
 *    |      (same edge: answer with that stream, idempotent)              on another healthy edge
 *   WRITE   one write item: end stale live rows, INSERT the stream with this edge as origin,
 *    |      channels.is_live = 1, stream_keys.last_used_at
 *   reply   {channel_id, channel_slug, stream_id}; registry origin set
 *
 * The registry's origin is set before WRITE, so a second publisher racing on another edge
 * is refused at LIVE from memory; a failed WRITE clears it again.
 *
 * EndStream: SELECT the stream -> write (ended, ended_at, duration_seconds; the channel is
 * no longer live unless another live stream of it exists) -> reply {duration_seconds}.
 */
#include "coord_rpc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "aethex/common/alloc.h"
#include "aethex/common/log.h"
#include "aethex/proto/rpc.h"
#include "coordinator_internal.h"

#define LOG "rpc"
#define FLUSH_MS 1000      /* heartbeats persisted at most this often */
#define DB_TIMEOUT_MS 5000 /* one database step of a request */
#define MAX_KEY_LEN 256    /* a stream key as typed: 64 hex or 43 base64url chars in practice */
#define ID_LEN 25          /* 'c' + 24 hex, like the schema's default ids */

struct coord_rpc {
    uv_loop_t *loop;
    proto_rpc_server_t *server; /* NULL once closed */
    coord_dqlite_client_t *db;
    coord_edges_t *edges;
    coord_rpc_leader_fn leader;
    void *leader_data;
    char node[32];
    int port_offset;  /* rpc port - dqlite port; INT32_MIN when unknown */
    uv_timer_t flush; /* heartbeats -> edges rows */
    bool flush_open;
    bool stopping;
    int pending;          /* database requests in flight */
    bool flush_inflight;  /* one heartbeat flush at a time */
    bool revoke_inflight; /* one revocation poll at a time */
    bool revoke_known;    /* revoked_after holds the newest revocation seen */
    int64_t revoked_after;
    uint64_t flushed_ms; /* registry clock of the last flush */
    uint64_t heartbeats;
    uint64_t authorized, refused, ended, revoked_pushes; /* for /metrics */
};

enum op_kind { OP_AUTHORIZE, OP_END, OP_PERSIST, OP_REGISTER, OP_REVOKE };
enum op_step {
    STEP_KEY,
    STEP_LIVE,
    STEP_WRITE,
    STEP_END_READ,
    STEP_END_WRITE,
    STEP_PERSIST,
    STEP_REVOKED
};

struct op {
    coord_rpc_t *r;
    coord_dqlite_req_t req;
    enum op_kind kind;
    enum op_step step;
    uint64_t conn_id, request_id;
    uint32_t method;
    char edge_id[COORD_EDGES_ID_MAX + 1];
    char key_id[COORD_EDGES_ID_MAX + 1];
    char channel_id[COORD_EDGES_ID_MAX + 1];
    char channel_slug[COORD_EDGES_ID_MAX + 1];
    char channel_name[128];
    char stream_id[COORD_EDGES_ID_MAX + 1];
    uint8_t key_hash[crypto_hash_sha256_BYTES];
    int64_t now_ms;
    int64_t duration_s;
    bool origin_set;
};

static void maybe_free(coord_rpc_t *r);

static void leader_now(coord_rpc_t *r, bool *is_leader, const char **addr)
{
    *is_leader = false;
    *addr = "";
    r->leader(r->leader_data, is_leader, addr);
}

static int addr_port(const char *a)
{
    const char *colon = strrchr(a, ':');
    return colon ? atoi(colon + 1) : -1;
}

/* The leader's RPC address by the port-offset convention, into `out` ("" if unknown). */
static void leader_rpc_address(coord_rpc_t *r, const char *leader, char *out, size_t cap)
{
    out[0] = '\0';
    const char *colon = strrchr(leader, ':');
    if (leader[0] == '\0' || colon == NULL || r->port_offset == INT32_MIN)
        return;
    int port = atoi(colon + 1) + r->port_offset;
    if (port <= 0 || port > 65535)
        return;
    snprintf(out, cap, "%.*s:%d", (int)(colon - leader), leader, port);
}

static void new_id(char out[ID_LEN + 1])
{
    uint8_t b[12];
    randombytes_buf(b, sizeof b);
    out[0] = 'c';
    sodium_bin2hex(out + 1, ID_LEN, b, sizeof b);
}

static void respond(coord_rpc_t *r, uint64_t conn, uint64_t req, uint32_t method, int status,
                    const char *error, const ProtobufCMessage *msg)
{
    if (r->server == NULL)
        return;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (msg != NULL && proto_rpc_pack(msg, &buf, &len) < 0) {
        status = AX_ENOMEM;
        error = "out of memory";
    }
    int rv = proto_rpc_server_respond(r->server, conn, req, method, status, error,
                                      AX_SLICE(buf ? buf : (uint8_t *)"", len));
    if (rv < 0 && rv != AX_ENOENT)
        AX_LOG_W(LOG, "node=%s respond %s: %s", r->node, proto_rpc_method_name(method),
                 ax_strerror(rv));
    ax_free(buf);
}

static void op_free(struct op *op)
{
    coord_rpc_t *r = op->r;
    ax_free(op);
    r->pending--;
    maybe_free(r);
}

static void op_fail(struct op *op, int status, const char *why)
{
    coord_rpc_t *r = op->r;
    if (op->origin_set)
        coord_edges_clear_origin(r->edges, op->stream_id);
    if (op->method == AETHEX__METHOD__METHOD_AUTHORIZE_PUBLISH)
        r->refused++;
    AX_LOG_W(LOG, "node=%s edge=%s %s refused: %s: %s", r->node, op->edge_id,
             proto_rpc_method_name(op->method), ax_err_name(status), why);
    respond(r, op->conn_id, op->request_id, op->method, status, why, NULL);
    op_free(op);
}

/* ---- AuthorizePublish ------------------------------------------------------------------- */

static void on_op_step(coord_dqlite_req_t *req, int status);

static int submit_query(struct op *op, const char *sql, const coord_dqlite_value_t *params,
                        uint32_t n)
{
    op->req = (coord_dqlite_req_t){.data = op, .timeout_ms = DB_TIMEOUT_MS};
    return coord_dqlite_query_sql(&op->req, op->r->db, sql, params, n, on_op_step);
}

static int submit_write(struct op *op, const coord_dqlite_call_t *calls, uint32_t n)
{
    op->req = (coord_dqlite_req_t){.data = op, .timeout_ms = DB_TIMEOUT_MS};
    return coord_dqlite_write(&op->req, op->r->db, calls, n, on_op_step);
}

static void authorize_write(struct op *op)
{
    coord_rpc_t *r = op->r;
    op->now_ms = (int64_t)ax_clock_wall_ms(ax_clock_system());
    char stream_key[COORD_EDGES_ID_MAX + 8];
    snprintf(stream_key, sizeof stream_key, "live-%s", op->stream_id);
    const char *title = op->channel_name[0] ? op->channel_name : op->channel_slug;
    coord_dqlite_value_t end_stale[] = {coord_dqlite_int(op->now_ms), coord_dqlite_int(op->now_ms),
                                        coord_dqlite_text(op->channel_id)};
    coord_dqlite_value_t ins[] = {
        coord_dqlite_text(op->stream_id), coord_dqlite_text(op->channel_id),
        coord_dqlite_text(title),         coord_dqlite_text(stream_key),
        coord_dqlite_int(op->now_ms),     coord_dqlite_text(op->edge_id)};
    coord_dqlite_value_t live[] = {coord_dqlite_text(op->channel_id)};
    coord_dqlite_value_t used[] = {coord_dqlite_int(op->now_ms), coord_dqlite_text(op->key_id)};
    const coord_dqlite_call_t calls[] = {
        {.sql = "UPDATE streams SET status = 'ended', ended_at = ?,"
                " duration_seconds = MAX(0, (? - COALESCE(started_at, 0)) / 1000)"
                " WHERE channel_id = ? AND status = 'live'",
         .params = end_stale,
         .nparams = 3},
        {.sql = "INSERT INTO streams (id, channel_id, title, status, stream_key, started_at,"
                " origin_edge_id) VALUES (?, ?, ?, 'live', ?, ?,"
                " (SELECT id FROM edges WHERE name = ?))",
         .params = ins,
         .nparams = 6},
        {.sql = "UPDATE channels SET is_live = 1 WHERE id = ?", .params = live, .nparams = 1},
        {.sql = "UPDATE stream_keys SET last_used_at = ? WHERE id = ?",
         .params = used,
         .nparams = 2},
    };
    op->step = STEP_WRITE;
    int rv = submit_write(op, calls, AX_ARRAY_SIZE(calls));
    if (rv < 0)
        op_fail(op, AX_EDB, ax_strerror(rv));
    (void)r;
}

static void authorize_reply(struct op *op)
{
    Aethex__AuthorizePublishReply rep = AETHEX__AUTHORIZE_PUBLISH_REPLY__INIT;
    rep.channel_id = op->channel_id;
    rep.channel_slug = op->channel_slug;
    rep.stream_id = op->stream_id;
    op->r->authorized++;
    AX_LOG_I(LOG, "node=%s edge=%s channel=%s stream=%s publish authorised", op->r->node,
             op->edge_id, op->channel_slug, op->stream_id);
    respond(op->r, op->conn_id, op->request_id, op->method, 0, NULL, &rep.base);
    op_free(op);
}

static void copy_text(char *dst, size_t cap, const coord_dqlite_value_t *v)
{
    if (v->type == COORD_DQLITE_TEXT || v->type == COORD_DQLITE_ISO8601)
        snprintf(dst, cap, "%.*s", (int)v->s.len, (const char *)v->s.base);
    else
        dst[0] = '\0';
}

/*
 * Keys revoked since the last poll (aethexctl writes the database directly, so the leader
 * polls): a live channel whose origin edge is connected here gets a KeyRevoked push naming
 * the channel and SHA-256 of the key bytes, and the edge stops a publisher using that key.
 * The first poll only learns the newest revocation (no clock comparison between hosts).
 */
static void on_revoked_rows(coord_rpc_t *r, const coord_dqlite_rows_t *rows)
{
    for (uint32_t i = 0; rows != NULL && i < rows->nrows; i++) {
        const coord_dqlite_value_t *at = coord_dqlite_rows_at(rows, i, 3);
        if (at->type == COORD_DQLITE_INTEGER && at->i > r->revoked_after)
            r->revoked_after = at->i;
        if (!r->revoke_known)
            continue;
        char cid[COORD_EDGES_ID_MAX + 1], slug[COORD_EDGES_ID_MAX + 1];
        copy_text(cid, sizeof cid, coord_dqlite_rows_at(rows, i, 0));
        copy_text(slug, sizeof slug, coord_dqlite_rows_at(rows, i, 1));
        const coord_dqlite_value_t *hash = coord_dqlite_rows_at(rows, i, 2);
        coord_origin_t o;
        coord_edge_info_t e;
        if (r->server == NULL || coord_edges_origin(r->edges, slug, &o) != 0 ||
            coord_edges_find(r->edges, o.edge_id, &e) != 0 || !e.connected)
            continue;
        Aethex__KeyRevoked k = AETHEX__KEY_REVOKED__INIT;
        k.channel_id = cid;
        if (hash->type == COORD_DQLITE_BLOB && hash->s.len == 32) {
            k.key_hash.data = (uint8_t *)hash->s.base;
            k.key_hash.len = 32;
        }
        uint8_t buf[160];
        size_t n = aethex__key_revoked__pack(&k, buf);
        int rv = proto_rpc_server_push(r->server, e.conn_id, AETHEX__METHOD__METHOD_KEY_REVOKED,
                                       AX_SLICE(buf, n));
        r->revoked_pushes += rv == 0;
        AX_LOG_I(LOG, "node=%s edge=%s channel=%s key revoked: KeyRevoked pushed%s", r->node,
                 e.edge_id, slug, rv == 0 ? "" : " (connection gone)");
    }
    r->revoke_known = true;
}

static void on_op_step(coord_dqlite_req_t *req, int status)
{
    struct op *op = req->data;
    coord_rpc_t *r = op->r;
    if (status != 0) {
        char why[AX_ERRMSG_LEN];
        snprintf(why, sizeof why, "database: %s%s%.160s", ax_err_name(status),
                 req->errmsg[0] ? ": " : "", req->errmsg);
        if (op->kind == OP_REVOKE) {
            r->revoke_inflight = false;
            op_free(op);
            return;
        }
        if (op->kind == OP_PERSIST || op->kind == OP_REGISTER) {
            if (status != AX_ECANCELED)
                AX_LOG_W(LOG, "node=%s persist edges: %s", r->node, why);
            if (op->kind == OP_PERSIST)
                r->flush_inflight = false;
            op_free(op);
            return;
        }
        op_fail(op, status == AX_ECANCELED ? AX_ECANCELED : AX_EDB, why);
        return;
    }
    switch (op->step) {
    case STEP_REVOKED:
        on_revoked_rows(r, req->rows);
        r->revoke_inflight = false;
        op_free(op);
        return;
    case STEP_PERSIST:
        if (op->kind == OP_PERSIST)
            r->flush_inflight = false;
        op_free(op);
        return;
    case STEP_KEY: {
        if (req->rows == NULL || req->rows->nrows == 0) {
            op_fail(op, AX_EBADKEY, "unknown or revoked stream key");
            return;
        }
        copy_text(op->key_id, sizeof op->key_id, coord_dqlite_rows_at(req->rows, 0, 0));
        copy_text(op->channel_id, sizeof op->channel_id, coord_dqlite_rows_at(req->rows, 0, 1));
        copy_text(op->channel_slug, sizeof op->channel_slug, coord_dqlite_rows_at(req->rows, 0, 2));
        copy_text(op->channel_name, sizeof op->channel_name, coord_dqlite_rows_at(req->rows, 0, 3));
        const coord_dqlite_value_t *susp = coord_dqlite_rows_at(req->rows, 0, 4);
        if ((susp->type == COORD_DQLITE_INTEGER && susp->i != 0) ||
            (susp->type == COORD_DQLITE_BOOLEAN && susp->b)) {
            op_fail(op, AX_EACCES, "channel suspended");
            return;
        }
        /* Memory first: another healthy edge already publishing this channel. */
        coord_origin_t o;
        if (coord_edges_origin(r->edges, op->channel_slug, &o) == 0 &&
            strcmp(o.edge_id, op->edge_id) != 0 && coord_edges_healthy(r->edges, o.edge_id)) {
            char why[160];
            snprintf(why, sizeof why, "channel already live on edge %s", o.edge_id);
            op_fail(op, AX_ELIVE, why);
            return;
        }
        coord_dqlite_value_t p[] = {coord_dqlite_text(op->channel_id)};
        op->step = STEP_LIVE;
        int rv = submit_query(op,
                              "SELECT s.id, e.name FROM streams s LEFT JOIN edges e"
                              " ON e.id = s.origin_edge_id"
                              " WHERE s.channel_id = ? AND s.status = 'live'",
                              p, 1);
        if (rv < 0)
            op_fail(op, AX_EDB, ax_strerror(rv));
        return;
    }
    case STEP_LIVE: {
        for (uint32_t i = 0; req->rows != NULL && i < req->rows->nrows; i++) {
            char sid[COORD_EDGES_ID_MAX + 1], ename[COORD_EDGES_ID_MAX + 1];
            copy_text(sid, sizeof sid, coord_dqlite_rows_at(req->rows, i, 0));
            copy_text(ename, sizeof ename, coord_dqlite_rows_at(req->rows, i, 1));
            if (strcmp(ename, op->edge_id) == 0) {
                /* The same edge asks again (its publisher reconnected): same stream. */
                snprintf(op->stream_id, sizeof op->stream_id, "%s", sid);
                coord_edges_set_origin(r->edges, op->channel_slug, op->channel_id, op->stream_id,
                                       op->edge_id);
                authorize_reply(op);
                return;
            }
            if (ename[0] != '\0' && coord_edges_healthy(r->edges, ename)) {
                char why[160];
                snprintf(why, sizeof why, "channel already live on edge %s", ename);
                op_fail(op, AX_ELIVE, why);
                return;
            }
        }
        /* Stale live rows (their edge is gone or silent) are ended by the write below. */
        new_id(op->stream_id);
        if (coord_edges_set_origin(r->edges, op->channel_slug, op->channel_id, op->stream_id,
                                   op->edge_id) == 0)
            op->origin_set = true;
        authorize_write(op);
        return;
    }
    case STEP_WRITE:
        op->origin_set = false; /* committed: the origin stays */
        authorize_reply(op);
        return;
    case STEP_END_READ: {
        if (req->rows == NULL || req->rows->nrows == 0) {
            op_fail(op, AX_ENOENT, "no such stream");
            return;
        }
        const coord_dqlite_value_t *started = coord_dqlite_rows_at(req->rows, 0, 0);
        copy_text(op->channel_id, sizeof op->channel_id, coord_dqlite_rows_at(req->rows, 0, 1));
        char st[16];
        copy_text(st, sizeof st, coord_dqlite_rows_at(req->rows, 0, 2));
        const coord_dqlite_value_t *dur = coord_dqlite_rows_at(req->rows, 0, 3);
        coord_edges_clear_origin(r->edges, op->stream_id);
        if (strcmp(st, "live") != 0) {
            /* Already ended (a retried EndStream): same answer, nothing written. */
            op->duration_s = dur->type == COORD_DQLITE_INTEGER ? dur->i : 0;
            Aethex__EndStreamReply rep = AETHEX__END_STREAM_REPLY__INIT;
            rep.duration_seconds = op->duration_s;
            respond(r, op->conn_id, op->request_id, op->method, 0, NULL, &rep.base);
            op_free(op);
            return;
        }
        op->now_ms = (int64_t)ax_clock_wall_ms(ax_clock_system());
        int64_t s0 = started->type == COORD_DQLITE_INTEGER ? started->i : op->now_ms;
        op->duration_s = op->now_ms > s0 ? (op->now_ms - s0) / 1000 : 0;
        coord_dqlite_value_t up[] = {coord_dqlite_int(op->now_ms), coord_dqlite_int(op->duration_s),
                                     coord_dqlite_text(op->stream_id)};
        coord_dqlite_value_t ch[] = {coord_dqlite_text(op->channel_id),
                                     coord_dqlite_text(op->channel_id)};
        const coord_dqlite_call_t calls[] = {
            {.sql = "UPDATE streams SET status = 'ended', ended_at = ?, duration_seconds = ?"
                    " WHERE id = ? AND status = 'live'",
             .params = up,
             .nparams = 3},
            {.sql = "UPDATE channels SET is_live = 0 WHERE id = ? AND NOT EXISTS"
                    " (SELECT 1 FROM streams WHERE channel_id = ? AND status = 'live')",
             .params = ch,
             .nparams = 2},
        };
        op->step = STEP_END_WRITE;
        int rv = submit_write(op, calls, AX_ARRAY_SIZE(calls));
        if (rv < 0)
            op_fail(op, AX_EDB, ax_strerror(rv));
        return;
    }
    case STEP_END_WRITE: {
        Aethex__EndStreamReply rep = AETHEX__END_STREAM_REPLY__INIT;
        rep.duration_seconds = op->duration_s;
        r->ended++;
        AX_LOG_I(LOG, "node=%s edge=%s stream=%s ended duration=%" PRId64 "s", r->node, op->edge_id,
                 op->stream_id, op->duration_s);
        respond(r, op->conn_id, op->request_id, op->method, 0, NULL, &rep.base);
        op_free(op);
        return;
    }
    }
}

static struct op *op_new(coord_rpc_t *r, enum op_kind kind, const proto_rpc_peer_t *peer,
                         const proto_rpc_envelope_t *env)
{
    struct op *op = ax_xcalloc(1, sizeof *op);
    op->r = r;
    op->kind = kind;
    if (peer != NULL) {
        op->conn_id = peer->conn_id;
        snprintf(op->edge_id, sizeof op->edge_id, "%s", peer->client_id);
    }
    if (env != NULL) {
        op->request_id = env->request_id;
        op->method = env->method;
    }
    r->pending++;
    return op;
}

static void handle_authorize(coord_rpc_t *r, const proto_rpc_peer_t *peer,
                             const proto_rpc_envelope_t *env, const Aethex__AuthorizePublish *m)
{
    struct op *op = op_new(r, OP_AUTHORIZE, peer, env);
    /* A key is 32 random bytes shown as 64 hex digits (aethexctl keys create); anything else
     * (empty, too long, not hex: "' OR 1=1 --") is refused here, before the database. */
    uint8_t raw[COORD_RPC_KEY_BYTES];
    size_t klen = strnlen(m->key, MAX_KEY_LEN + 1), rawlen = 0;
    const char *end = NULL;
    if (klen != 2 * COORD_RPC_KEY_BYTES ||
        sodium_hex2bin(raw, sizeof raw, m->key, klen, NULL, &rawlen, &end) != 0 ||
        rawlen != sizeof raw || *end != '\0') {
        op_fail(op, AX_EBADKEY, "not a stream key (64 hex digits)");
        return;
    }
    if (coord_edges_find_conn(r->edges, peer->conn_id, &(coord_edge_info_t){0}) != 0) {
        op_fail(op, AX_EBADSTATE, "edge not registered on this connection: register first");
        return;
    }
    /* Only SHA-256(key) is stored; the key itself goes nowhere (not even the log). */
    crypto_hash_sha256(op->key_hash, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    coord_dqlite_value_t p[] = {coord_dqlite_blob(op->key_hash, sizeof op->key_hash)};
    op->step = STEP_KEY;
    int rv = submit_query(op,
                          "SELECT k.id, c.id, c.slug, c.name, c.is_suspended"
                          " FROM stream_keys k JOIN channels c ON c.id = k.channel_id"
                          " WHERE k.key_hash = ? AND k.revoked_at IS NULL",
                          p, 1);
    if (rv < 0)
        op_fail(op, AX_EDB, ax_strerror(rv));
}

static void handle_end(coord_rpc_t *r, const proto_rpc_peer_t *peer,
                       const proto_rpc_envelope_t *env, const Aethex__EndStream *m)
{
    struct op *op = op_new(r, OP_END, peer, env);
    if (m->stream_id[0] == '\0' || strlen(m->stream_id) > COORD_EDGES_ID_MAX) {
        op_fail(op, AX_EINVAL, "stream_id missing or too long");
        return;
    }
    snprintf(op->stream_id, sizeof op->stream_id, "%s", m->stream_id);
    coord_dqlite_value_t p[] = {coord_dqlite_text(op->stream_id)};
    op->step = STEP_END_READ;
    int rv = submit_query(
        op, "SELECT started_at, channel_id, status, duration_seconds FROM streams WHERE id = ?", p,
        1);
    if (rv < 0)
        op_fail(op, AX_EDB, ax_strerror(rv));
}

/* ---- registry and persistence ----------------------------------------------------------- */

static void persist_edge(coord_rpc_t *r, const coord_edge_info_t *e, const char *rpc_address)
{
    struct op *op = op_new(r, OP_REGISTER, NULL, NULL);
    op->step = STEP_PERSIST;
    int64_t now = (int64_t)ax_clock_wall_ms(ax_clock_system());
    coord_dqlite_value_t p[] = {
        coord_dqlite_text(e->edge_id),
        coord_dqlite_text(e->region),
        coord_dqlite_text(rpc_address),
        coord_dqlite_text(e->rtmp_url),
        coord_dqlite_text(e->hls_base_url),
        coord_dqlite_int(e->capacity_viewers),
        coord_dqlite_int(now),
    };
    const coord_dqlite_call_t call = {
        .sql = "INSERT INTO edges (name, region, rpc_address, rtmp_url, hls_base_url,"
               " capacity_viewers, status, last_heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, 'up', ?)"
               " ON CONFLICT (name) DO UPDATE SET region = excluded.region,"
               " rpc_address = excluded.rpc_address, rtmp_url = excluded.rtmp_url,"
               " hls_base_url = excluded.hls_base_url,"
               " capacity_viewers = excluded.capacity_viewers, status = 'up',"
               " last_heartbeat_at = excluded.last_heartbeat_at",
        .params = p,
        .nparams = AX_ARRAY_SIZE(p),
    };
    /* Not the heartbeat flush: a register is rare and is never skipped. */
    op->req = (coord_dqlite_req_t){.data = op, .timeout_ms = DB_TIMEOUT_MS};
    op->kind = OP_PERSIST;
    if (coord_dqlite_write(&op->req, r->db, &call, 1, on_op_step) < 0) {
        AX_LOG_W(LOG, "node=%s persist edge=%s: not queued", r->node, e->edge_id);
        r->pending--;
        ax_free(op);
    }
}

/* Once a second on the leader: one write item of every edge that beat since the last one
 * (the write queue packs them into one transaction). Never waits: a flush still in flight
 * makes this tick a no-op. */
static void on_flush(uv_timer_t *t)
{
    coord_rpc_t *r = t->data;
    bool is_leader;
    const char *la;
    leader_now(r, &is_leader, &la);
    if (r->stopping)
        return;
    if (!is_leader) {
        /* Leadership moved: edges now report to the new leader, and a stale registry here
         * would make routing on this node see every edge as silent. Forget it; the database
         * snapshot (followers' source) takes over. */
        size_t n = coord_edges_count(r->edges);
        if (n > 0) {
            while (coord_edges_count(r->edges) > 0) {
                coord_edge_info_t e;
                coord_edges_at(r->edges, 0, &e);
                coord_edges_forget(r->edges, e.edge_id);
            }
            AX_LOG_I(LOG, "node=%s not the leader: registry of %zu edge(s) cleared", r->node, n);
        }
        r->revoke_known = false;
        return;
    }
    if (!r->revoke_inflight && r->server != NULL) {
        struct op *op = op_new(r, OP_REVOKE, NULL, NULL);
        op->step = STEP_REVOKED;
        coord_dqlite_value_t p[] = {coord_dqlite_int(r->revoked_after)};
        /* The first poll asks only for the newest revocation so far. */
        const char *sql = r->revoke_known
                              ? "SELECT c.id, c.slug, k.key_hash, k.revoked_at FROM stream_keys k"
                                " JOIN channels c ON c.id = k.channel_id WHERE k.revoked_at > ?"
                                " ORDER BY k.revoked_at LIMIT 256"
                              : "SELECT NULL, NULL, NULL, COALESCE(MAX(revoked_at), 0)"
                                " FROM stream_keys WHERE ? IS NOT NULL";
        if (submit_query(op, sql, p, 1) < 0)
            op_free(op);
        else
            r->revoke_inflight = true;
    }
    if (r->flush_inflight)
        return;
    uint64_t since = r->flushed_ms;
    size_t n = coord_edges_count(r->edges), k = 0;
    coord_dqlite_value_t params[64][4];
    coord_dqlite_call_t calls[64];
    int64_t wall = (int64_t)ax_clock_wall_ms(ax_clock_system());
    uint64_t newest = since;
    for (size_t i = 0; i < n && k < AX_ARRAY_SIZE(calls); i++) {
        coord_edge_info_t e;
        coord_edges_at(r->edges, i, &e);
        if (e.last_heartbeat_ms <= since)
            continue;
        if (e.last_heartbeat_ms > newest)
            newest = e.last_heartbeat_ms;
        params[k][0] = coord_dqlite_int(e.viewers);
        params[k][1] = coord_dqlite_int(e.live_streams);
        params[k][2] = coord_dqlite_int(
            wall - (int64_t)(ax_clock_now_ms(ax_clock_system()) - e.last_heartbeat_ms));
        params[k][3] = coord_dqlite_text(e.edge_id);
        calls[k] = (coord_dqlite_call_t){
            .sql = "UPDATE edges SET viewers = ?, live_streams = ?, last_heartbeat_at = ?,"
                   " status = 'up' WHERE name = ?",
            .params = params[k],
            .nparams = 4,
        };
        k++;
    }
    if (k == 0)
        return;
    struct op *op = op_new(r, OP_PERSIST, NULL, NULL);
    op->step = STEP_PERSIST;
    op->req = (coord_dqlite_req_t){.data = op, .timeout_ms = DB_TIMEOUT_MS};
    if (coord_dqlite_write(&op->req, r->db, calls, (uint32_t)k, on_op_step) < 0) {
        r->pending--;
        ax_free(op);
        return;
    }
    r->flush_inflight = true;
    r->flushed_ms = newest;
}

static void handle_register(coord_rpc_t *r, const proto_rpc_peer_t *peer,
                            const proto_rpc_envelope_t *env, const Aethex__RegisterEdge *m)
{
    if (strcmp(m->edge_id, peer->client_id) != 0) {
        respond(r, peer->conn_id, env->request_id, env->method, AX_EINVAL,
                "edge_id differs from the authenticated client id", NULL);
        return;
    }
    coord_edge_reg_t reg = {
        .edge_id = m->edge_id,
        .region = m->region,
        .hls_base_url = m->hls_base_url,
        .chat_url = m->chat_url,
        .rtmp_url = m->rtmp_url,
        .capacity_viewers = m->capacity_viewers,
        .capacity_streams = m->capacity_streams,
    };
    bool changed = false;
    char err[AX_ERRMSG_LEN];
    int rv = coord_edges_register(r->edges, &reg, peer->conn_id, &changed, err);
    if (rv < 0) {
        respond(r, peer->conn_id, env->request_id, env->method, rv, err, NULL);
        return;
    }
    coord_edge_info_t e;
    coord_edges_find(r->edges, m->edge_id, &e);
    AX_LOG_I(LOG, "node=%s edge=%s registered region=%s hls=%s capacity=%u peer=%s", r->node,
             e.edge_id, e.region, e.hls_base_url, e.capacity_viewers, peer->address);
    /* The row is written always (cheap, rare): a new leader may have an old one. */
    persist_edge(r, &e, peer->address);
    Aethex__RegisterEdgeReply rep = AETHEX__REGISTER_EDGE_REPLY__INIT;
    rep.heartbeat_interval_ms = COORD_EDGES_DEFAULT_HEARTBEAT_MS;
    rep.edge_timeout_ms = COORD_EDGES_DEFAULT_TIMEOUT_MS;
    rep.coordinator_id = r->node;
    respond(r, peer->conn_id, env->request_id, env->method, 0, NULL, &rep.base);
}

static void handle_heartbeat(coord_rpc_t *r, const proto_rpc_peer_t *peer,
                             const proto_rpc_envelope_t *env, const Aethex__Heartbeat *m)
{
    size_t n = m->n_channels < 4096 ? m->n_channels : 4096;
    coord_edge_channel_t *chs = n ? ax_xcalloc(n, sizeof *chs) : NULL;
    for (size_t i = 0; i < n; i++)
        chs[i] = (coord_edge_channel_t){m->channels[i]->channel_slug, m->channels[i]->channel_id,
                                        m->channels[i]->stream_id, m->channels[i]->viewers,
                                        m->channels[i]->origin};
    const char *id = m->edge_id[0] ? m->edge_id : peer->client_id;
    int rv = coord_edges_heartbeat(r->edges, id, peer->conn_id, m->load, m->viewers, chs, n);
    ax_free(chs);
    r->heartbeats++;
    if (rv < 0) {
        respond(r, peer->conn_id, env->request_id, env->method, AX_EBADSTATE,
                "unknown edge: register again", NULL);
        return;
    }
    Aethex__HeartbeatReply rep = AETHEX__HEARTBEAT_REPLY__INIT;
    respond(r, peer->conn_id, env->request_id, env->method, 0, NULL, &rep.base);
}

static void handle_lookup(coord_rpc_t *r, const proto_rpc_peer_t *peer,
                          const proto_rpc_envelope_t *env, const Aethex__LookupChannel *m)
{
    coord_origin_t o;
    coord_edge_info_t e;
    if (coord_edges_origin(r->edges, m->channel_slug, &o) != 0 ||
        coord_edges_find(r->edges, o.edge_id, &e) != 0) {
        respond(r, peer->conn_id, env->request_id, env->method, AX_ENOENT,
                "channel not live (no origin known)", NULL);
        return;
    }
    Aethex__LookupChannelReply rep = AETHEX__LOOKUP_CHANNEL_REPLY__INIT;
    rep.channel_id = (char *)o.channel_id;
    rep.stream_id = (char *)o.stream_id;
    rep.origin_edge_id = (char *)o.edge_id;
    rep.origin_hls_base_url = (char *)e.hls_base_url;
    respond(r, peer->conn_id, env->request_id, env->method, 0, NULL, &rep.base);
}

/* ---- dispatch --------------------------------------------------------------------------- */

#define UNPACK(type, fn)                                                                           \
    type *m = fn(proto_rpc_allocator(), env->payload.len, env->payload.base);                      \
    if (m == NULL) {                                                                               \
        respond(r, peer->conn_id, env->request_id, env->method, AX_EPROTO,                         \
                "malformed request payload", NULL);                                                \
        return;                                                                                    \
    }

static void on_request(proto_rpc_server_t *s, const proto_rpc_peer_t *peer,
                       const proto_rpc_envelope_t *env)
{
    coord_rpc_t *r = proto_rpc_server_data(s);
    if (env->method == AETHEX__METHOD__METHOD_PING) {
        respond(r, peer->conn_id, env->request_id, env->method, 0, NULL, NULL);
        return;
    }
    bool is_leader;
    const char *la;
    leader_now(r, &is_leader, &la);
    if (!is_leader) {
        char addr[PROTO_RPC_MAX_ADDRESS + 1];
        leader_rpc_address(r, la, addr, sizeof addr);
        proto_rpc_server_respond_not_leader(s, peer->conn_id, env->request_id, env->method, addr);
        return;
    }
    ProtobufCAllocator *a = proto_rpc_allocator();
    switch (env->method) {
    case AETHEX__METHOD__METHOD_REGISTER_EDGE: {
        UNPACK(Aethex__RegisterEdge, aethex__register_edge__unpack);
        handle_register(r, peer, env, m);
        aethex__register_edge__free_unpacked(m, a);
        return;
    }
    case AETHEX__METHOD__METHOD_HEARTBEAT: {
        UNPACK(Aethex__Heartbeat, aethex__heartbeat__unpack);
        handle_heartbeat(r, peer, env, m);
        aethex__heartbeat__free_unpacked(m, a);
        return;
    }
    case AETHEX__METHOD__METHOD_AUTHORIZE_PUBLISH: {
        UNPACK(Aethex__AuthorizePublish, aethex__authorize_publish__unpack);
        handle_authorize(r, peer, env, m);
        aethex__authorize_publish__free_unpacked(m, a);
        return;
    }
    case AETHEX__METHOD__METHOD_END_STREAM: {
        UNPACK(Aethex__EndStream, aethex__end_stream__unpack);
        handle_end(r, peer, env, m);
        aethex__end_stream__free_unpacked(m, a);
        return;
    }
    case AETHEX__METHOD__METHOD_LOOKUP_CHANNEL: {
        UNPACK(Aethex__LookupChannel, aethex__lookup_channel__unpack);
        handle_lookup(r, peer, env, m);
        aethex__lookup_channel__free_unpacked(m, a);
        return;
    }
    default:
        respond(r, peer->conn_id, env->request_id, env->method, AX_ENOTSUP, "unknown method", NULL);
    }
}

static void on_conn(proto_rpc_server_t *s, const proto_rpc_peer_t *peer, bool up)
{
    coord_rpc_t *r = proto_rpc_server_data(s);
    if (!up)
        coord_edges_disconnected(r->edges, peer->conn_id);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

int coord__rpc_start(uv_loop_t *loop, const coord_config_t *cfg, uint64_t node_id,
                     coord_dqlite_client_t *db, coord_rpc_leader_fn leader, void *data,
                     coord_rpc_t **out, char *errmsg)
{
    *out = NULL;
    if (sodium_init() < 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "libsodium: init failed");
        return AX_EIO;
    }
    uint8_t secret[PROTO_RPC_MAX_SECRET];
    size_t secret_len = 0;
    if (cfg->cluster_secret_file[0] != '\0') {
        int rv = proto_rpc_secret_load(cfg->cluster_secret_file, secret, &secret_len, errmsg);
        if (rv < 0)
            return rv;
    } else {
        secret_len = strlen(cfg->cluster_secret);
        memcpy(secret, cfg->cluster_secret, secret_len);
    }
    coord_rpc_t *r = ax_xcalloc(1, sizeof *r);
    r->loop = loop;
    r->db = db;
    r->leader = leader;
    r->leader_data = data;
    snprintf(r->node, sizeof r->node, "%" PRIu64, node_id);
    coord_edges_config_t ecfg;
    coord_edges_config_default(&ecfg);
    if (coord_edges_new(&ecfg, &r->edges) < 0) {
        ax_free(r);
        return AX_ENOMEM;
    }
    proto_rpc_server_config_t scfg;
    proto_rpc_server_config_default(&scfg);
    scfg.address = cfg->rpc_listen;
    scfg.server_id = r->node;
    scfg.secret = secret;
    scfg.secret_len = secret_len;
    scfg.on_request = on_request;
    scfg.on_conn = on_conn;
    scfg.data = r;
    int rv = proto_rpc_server_new(loop, &scfg, &r->server, errmsg);
    sodium_memzero(secret, sizeof secret);
    if (rv < 0) {
        coord_edges_free(r->edges);
        ax_free(r);
        return rv;
    }
    int rpc_port = addr_port(proto_rpc_server_address(r->server));
    int db_port = addr_port(cfg->address);
    r->port_offset =
        addr_port(cfg->rpc_listen) == 0 || db_port <= 0 ? INT32_MIN : rpc_port - db_port;
    uv_timer_init(loop, &r->flush);
    r->flush.data = r;
    r->flush_open = true;
    uv_timer_start(&r->flush, on_flush, FLUSH_MS, FLUSH_MS);
    AX_LOG_I(LOG, "node=%s rpc listening on %s", r->node, proto_rpc_server_address(r->server));
    *out = r;
    return 0;
}

coord_edges_t *coord__rpc_edges(coord_rpc_t *r)
{
    return r ? r->edges : NULL;
}

const char *coord__rpc_address(const coord_rpc_t *r)
{
    return r->server ? proto_rpc_server_address(r->server) : "";
}

int coord__rpc_metrics(const coord_rpc_t *r, ax_buf_t *b)
{
    proto_rpc_server_stats_t st = {0};
    if (r != NULL && r->server != NULL)
        proto_rpc_server_stats(r->server, &st);
    size_t known = r ? coord_edges_count(r->edges) : 0, healthy = 0;
    for (size_t i = 0; i < known; i++) {
        coord_edge_info_t e;
        coord_edges_at(r->edges, i, &e);
        healthy += e.healthy;
    }
    METRIC(b, "aethex_coordinator_rpc_connections", "gauge", "Open edge RPC connections.",
           "aethex_coordinator_rpc_connections %u\n", st.connections);
    METRIC(b, "aethex_coordinator_rpc_accepted_total", "counter", "RPC connections accepted.",
           "aethex_coordinator_rpc_accepted_total %" PRIu64 "\n", st.accepted);
    METRIC(b, "aethex_coordinator_rpc_auth_failures_total", "counter",
           "RPC connections closed before authenticating (bad proof, bad frame, timeout).",
           "aethex_coordinator_rpc_auth_failures_total %" PRIu64 "\n", st.auth_failures);
    METRIC(b, "aethex_coordinator_rpc_protocol_errors_total", "counter",
           "Authenticated RPC connections closed for a bad frame.",
           "aethex_coordinator_rpc_protocol_errors_total %" PRIu64 "\n", st.protocol_errors);
    METRIC(b, "aethex_coordinator_rpc_requests_total", "counter", "RPC requests received.",
           "aethex_coordinator_rpc_requests_total %" PRIu64 "\n", st.requests);
    METRIC(b, "aethex_coordinator_edges", "gauge", "Edges in the registry, by health.",
           "aethex_coordinator_edges{health=\"healthy\"} %zu\n"
           "aethex_coordinator_edges{health=\"unhealthy\"} %zu\n",
           healthy, known - healthy);
    METRIC(b, "aethex_coordinator_live_channels", "gauge", "Live channels with a known origin.",
           "aethex_coordinator_live_channels %zu\n", r ? coord_edges_origin_count(r->edges) : 0);
    METRIC(b, "aethex_coordinator_heartbeats_total", "counter", "Edge heartbeats received.",
           "aethex_coordinator_heartbeats_total %" PRIu64 "\n", r ? r->heartbeats : 0);
    METRIC(b, "aethex_coordinator_publish_authorizations_total", "counter",
           "AuthorizePublish answers.",
           "aethex_coordinator_publish_authorizations_total{result=\"ok\"} %" PRIu64 "\n"
           "aethex_coordinator_publish_authorizations_total{result=\"refused\"} %" PRIu64 "\n",
           r ? r->authorized : 0, r ? r->refused : 0);
    METRIC(b, "aethex_coordinator_streams_ended_total", "counter", "EndStream writes.",
           "aethex_coordinator_streams_ended_total %" PRIu64 "\n", r ? r->ended : 0);
    METRIC(b, "aethex_coordinator_key_revoked_pushes_total", "counter",
           "KeyRevoked pushes sent to origin edges.",
           "aethex_coordinator_key_revoked_pushes_total %" PRIu64 "\n", r ? r->revoked_pushes : 0);
    return 0;
}

static void maybe_free(coord_rpc_t *r)
{
    if (!r->stopping || r->server != NULL || r->flush_open || r->pending > 0)
        return;
    coord_edges_free(r->edges);
    ax_free(r);
}

static void on_server_closed(proto_rpc_server_t *s)
{
    coord_rpc_t *r = proto_rpc_server_data(s);
    r->server = NULL;
    maybe_free(r);
}

static void on_flush_closed(uv_handle_t *h)
{
    coord_rpc_t *r = h->data;
    r->flush_open = false;
    maybe_free(r);
}

void coord__rpc_stop(coord_rpc_t *r)
{
    if (r == NULL || r->stopping)
        return;
    r->stopping = true;
    uv_close((uv_handle_t *)&r->flush, on_flush_closed);
    proto_rpc_server_close(r->server, on_server_closed);
}

/*
 * Coordinator mode: the edge's RPC client (proto/: follows the leader, reconnects with
 * backoff), registration, heartbeats, publish authorisation, EndStream, origin lookups for
 * the relay, and the coordinator's pushes (KickPublisher, KeyRevoked).
 *
 * The connection:
 *
 *   +--------------+ authenticated  +-------------+ RegisterEdge ok +------------+
 *   | DISCONNECTED | -------------> | REGISTERING | --------------> | REGISTERED |
 *   +--------------+                +-------------+                 +------------+
 *          ^   connection lost (the client reconnects by itself)          |
 *          +-------------------------------+------------------------------+
 *                                          | Heartbeat answered EBADSTATE (a new leader
 *                                          v that does not know us): register again
 *
 * Nothing the viewers see depends on this connection: live streams keep being packaged and
 * served while it is down; heartbeats simply stop (the coordinator judges edges by
 * heartbeat age). Register is sent on every connection, since a new leader knows nothing
 * of us; the first heartbeat follows at once and carries the streams still live here.
 *
 * A publish authorisation (struct auth):
 *
 *   +---------+ registered  +----------+ reply   +------+
 *   | WAITING | ----------> | IN_FLIGHT| ------> | DONE | (edge_rtmp_conn_authorized)
 *   +---------+             +----------+         +------+
 *        |  authorize-timeout-ms with no connection: "no coordinator reachable"
 *        +-----------------------------------------> DONE
 *
 * A publisher that leaves while IN_FLIGHT orphans its auth: if the answer still says yes,
 * the stream is ended at once (EndStream), so the coordinator never keeps a stream live that
 * nobody publishes. EndStreams that cannot be sent (no connection) wait in a bounded queue
 * and go out after the next registration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "aethex/common/log.h"
#include "aethex/common/sm.h"
#include "aethex/proto/rpc.h"

#include "edge_internal.h"

#define COORD_TICK_MS 250
#define COORD_MAX_ENDS 256 /* EndStreams queued while disconnected */
#define COORD_ID_MAX 64

enum coord_state { COORD_DISCONNECTED, COORD_REGISTERING, COORD_REGISTERED, COORD_STATE_COUNT };

static const struct ax_sm_conf coord_states[COORD_STATE_COUNT] = {
    [COORD_DISCONNECTED] = {"disconnected", AX_SM_BIT(COORD_REGISTERING)},
    [COORD_REGISTERING] = {"registering",
                           AX_SM_BIT(COORD_REGISTERED) | AX_SM_BIT(COORD_DISCONNECTED)},
    [COORD_REGISTERED] = {"registered",
                          AX_SM_BIT(COORD_DISCONNECTED) | AX_SM_BIT(COORD_REGISTERING)},
};

enum auth_state { AUTH_WAITING, AUTH_IN_FLIGHT, AUTH_DONE, AUTH_STATE_COUNT };

static const struct ax_sm_conf auth_states[AUTH_STATE_COUNT] = {
    [AUTH_WAITING] = {"waiting", AX_SM_BIT(AUTH_IN_FLIGHT) | AX_SM_BIT(AUTH_DONE)},
    [AUTH_IN_FLIGHT] = {"in_flight", AX_SM_BIT(AUTH_DONE) | AX_SM_BIT(AUTH_WAITING)},
    [AUTH_DONE] = {"done", 0},
};

struct auth {
    proto_rpc_call_t call;
    h2o_linklist_t link; /* in coord->auths */
    struct edge_coord *coord;
    struct rtmp_conn *conn; /* NULL once orphaned */
    ax_sm_t sm;
    uint64_t deadline_ms;
    uint8_t *payload; /* owned, packed AuthorizePublish */
    size_t payload_len;
};

struct rpc_op { /* a fire-and-forget call: register, heartbeat, end stream, lookup */
    proto_rpc_call_t call;
    struct edge_coord *coord;
    edge_coord_origin_cb origin_cb;
    char channel[EDGE_CHANNEL_MAX + 1];
    char stream_id[COORD_ID_MAX + 1];
};

struct edge_coord {
    uv_timer_t tick;
    bool tick_ready;
    bool tick_closed, client_closed;
    struct edge *edge;
    proto_rpc_client_t *client; /* owned */
    ax_sm_t sm;
    uint64_t last_heartbeat_ms;
    uint32_t heartbeat_ms;
    bool heartbeat_in_flight;
    h2o_linklist_t auths;
    uint32_t pending_ops;
    char ends[COORD_MAX_ENDS][COORD_ID_MAX + 1]; /* stream ids waiting for a connection */
    uint32_t nends;
    bool closing;
    uint8_t secret[PROTO_RPC_MAX_SECRET];
    size_t secret_len;
};

bool edge_coord_enabled(const struct edge *e)
{
    return e->cfg.coordinator[0] != '\0';
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* --- calls ------------------------------------------------------------------------------ */

static void op_done(struct rpc_op *op)
{
    op->coord->pending_ops--;
    ax_free(op);
}

static int submit(struct edge_coord *co, struct rpc_op *op, uint32_t method,
                  const ProtobufCMessage *msg, proto_rpc_call_cb cb)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = proto_rpc_pack(msg, &buf, &len);
    if (rc == 0) {
        op->call.data = op;
        rc = proto_rpc_call(&op->call, co->client, method, AX_SLICE(buf, len), cb);
    }
    ax_free(buf);
    if (rc == 0)
        co->pending_ops++;
    return rc;
}

static void send_heartbeat(struct edge_coord *co);
static void flush_auths(struct edge_coord *co);
static void flush_ends(struct edge_coord *co);

static void on_register(proto_rpc_call_t *call, int status)
{
    struct rpc_op *op = call->data;
    struct edge_coord *co = op->coord;
    if (status == 0 && ax_sm_state(&co->sm) == COORD_REGISTERING) {
        Aethex__RegisterEdgeReply *r = aethex__register_edge_reply__unpack(
            proto_rpc_allocator(), call->payload.len, call->payload.base);
        co->heartbeat_ms = 1000;
        if (r) {
            if (r->heartbeat_interval_ms >= 100 && r->heartbeat_interval_ms <= 60000)
                co->heartbeat_ms = r->heartbeat_interval_ms;
            AX_LOG_I("edge coord", "registered with %s as %s (heartbeat %u ms)",
                     r->coordinator_id && r->coordinator_id[0] ? r->coordinator_id : "?",
                     co->edge->cfg.edge_id, co->heartbeat_ms);
            aethex__register_edge_reply__free_unpacked(r, proto_rpc_allocator());
        }
        ax_sm_move(&co->sm, COORD_REGISTERED);
        send_heartbeat(co);
        flush_auths(co);
        flush_ends(co);
    } else if (status != 0 && status != AX_ECANCELED) {
        AX_LOG_W("edge coord", "register: %s (%s); retrying on the next tick",
                 ax_strerror(status), call->errmsg);
        if (ax_sm_state(&co->sm) == COORD_REGISTERING)
            co->last_heartbeat_ms = 0; /* tick retries */
    }
    op_done(op);
}

static void do_register(struct edge_coord *co)
{
    struct edge *e = co->edge;
    Aethex__RegisterEdge m = AETHEX__REGISTER_EDGE__INIT;
    char rtmp_url[128];
    snprintf(rtmp_url, sizeof rtmp_url, "rtmp://%s:%d/live", e->cfg.rtmp.host, e->cfg.rtmp.port);
    m.edge_id = e->cfg.edge_id;
    m.region = e->cfg.region;
    m.hls_base_url = e->cfg.public_hls_url;
    m.chat_url = e->cfg.chat_url;
    m.capacity_viewers = e->cfg.capacity_viewers;
    m.capacity_streams = e->cfg.capacity_streams;
    m.rtmp_url = rtmp_url;
    struct rpc_op *op = ax_xcalloc(1, sizeof *op);
    op->coord = co;
    int rc = submit(co, op, AETHEX__METHOD__METHOD_REGISTER_EDGE, &m.base, on_register);
    if (rc < 0) {
        AX_LOG_W("edge coord", "register: %s", ax_strerror(rc));
        ax_free(op);
    }
    co->last_heartbeat_ms = edge_now_ms(e);
}

static void on_heartbeat(proto_rpc_call_t *call, int status)
{
    struct rpc_op *op = call->data;
    struct edge_coord *co = op->coord;
    co->heartbeat_in_flight = false;
    if (status == 0) {
        co->edge->m.coord_heartbeats++;
    } else if (status != AX_ECANCELED) {
        co->edge->m.coord_heartbeat_errors++;
        if (status == AX_EBADSTATE && ax_sm_state(&co->sm) == COORD_REGISTERED) {
            AX_LOG_I("edge coord", "coordinator does not know this edge: registering again");
            ax_sm_move(&co->sm, COORD_REGISTERING);
            do_register(co);
        } else {
            AX_LOG_D("edge coord", "heartbeat: %s (%s)", ax_strerror(status), call->errmsg);
        }
    }
    op_done(op);
}

/* Heartbeat contents, gathered from the RTMP side (origins) and the viewer counter. */
struct hb_build {
    struct edge *edge;
    Aethex__ChannelLoad *loads;
    Aethex__ChannelLoad **ptrs;
    char (*slugs)[EDGE_CHANNEL_MAX + 1];
    char (*cids)[COORD_ID_MAX + 1];
    char (*sids)[COORD_ID_MAX + 1];
    size_t n, cap;
};

static Aethex__ChannelLoad *hb_find(struct hb_build *b, const char *slug)
{
    for (size_t i = 0; i < b->n; i++)
        if (!strcmp(b->slugs[i], slug))
            return &b->loads[i];
    if (b->n == b->cap)
        return NULL;
    size_t i = b->n++;
    Aethex__ChannelLoad init = AETHEX__CHANNEL_LOAD__INIT;
    b->loads[i] = init;
    copy_str(b->slugs[i], sizeof b->slugs[i], slug);
    b->cids[i][0] = b->sids[i][0] = '\0';
    b->loads[i].channel_slug = b->slugs[i];
    b->loads[i].channel_id = b->cids[i];
    b->loads[i].stream_id = b->sids[i];
    b->ptrs[i] = &b->loads[i];
    return &b->loads[i];
}

static void hb_origin(void *arg, const char *slug, const char *channel_id, const char *stream_id)
{
    struct hb_build *b = arg;
    Aethex__ChannelLoad *l = hb_find(b, slug);
    if (!l)
        return;
    size_t i = (size_t)(l - b->loads);
    copy_str(b->cids[i], sizeof b->cids[i], channel_id);
    copy_str(b->sids[i], sizeof b->sids[i], stream_id);
    l->origin = true;
}

static void hb_viewers(void *arg, const char *slug, uint32_t n)
{
    struct hb_build *b = arg;
    Aethex__ChannelLoad *l = hb_find(b, slug);
    if (l)
        l->viewers = n;
}

static void send_heartbeat(struct edge_coord *co)
{
    struct edge *e = co->edge;
    co->last_heartbeat_ms = edge_now_ms(e);
    if (co->heartbeat_in_flight || ax_sm_state(&co->sm) != COORD_REGISTERED)
        return;
    struct hb_build b = {.edge = e, .cap = 4096};
    size_t want = e->nchannels + 2u * e->cfg.max_channels;
    if (want < b.cap)
        b.cap = want ? want : 1;
    b.loads = ax_xcalloc(b.cap, sizeof *b.loads);
    b.ptrs = ax_xcalloc(b.cap, sizeof *b.ptrs);
    b.slugs = ax_xcalloc(b.cap, sizeof *b.slugs);
    b.cids = ax_xcalloc(b.cap, sizeof *b.cids);
    b.sids = ax_xcalloc(b.cap, sizeof *b.sids);
    edge_rtmp_each_publisher(e, hb_origin, &b);
    edge_viewers_each(e, hb_viewers, &b);
    Aethex__Heartbeat m = AETHEX__HEARTBEAT__INIT;
    m.edge_id = e->cfg.edge_id;
    m.viewers = edge_viewers_count(e, NULL);
    float load = 0;
    if (e->cfg.capacity_viewers)
        load = (float)m.viewers / (float)e->cfg.capacity_viewers;
    if (e->cfg.capacity_streams) {
        float s = (float)edge_channel_count_live(e) / (float)e->cfg.capacity_streams;
        if (s > load)
            load = s;
    }
    m.load = load > 1 ? 1 : load;
    m.n_channels = b.n;
    m.channels = b.ptrs;
    struct rpc_op *op = ax_xcalloc(1, sizeof *op);
    op->coord = co;
    int rc = submit(co, op, AETHEX__METHOD__METHOD_HEARTBEAT, &m.base, on_heartbeat);
    if (rc < 0) {
        ax_free(op);
        e->m.coord_heartbeat_errors++;
    } else {
        co->heartbeat_in_flight = true;
    }
    ax_free(b.loads);
    ax_free(b.ptrs);
    ax_free(b.slugs);
    ax_free(b.cids);
    ax_free(b.sids);
}

/* --- end stream ------------------------------------------------------------------------- */

static void queue_end(struct edge_coord *co, const char *stream_id)
{
    if (co->nends == COORD_MAX_ENDS) {
        AX_LOG_W("edge coord", "stream=%s end not reported: queue full", stream_id);
        return;
    }
    copy_str(co->ends[co->nends++], COORD_ID_MAX + 1, stream_id);
}

static void on_end_stream(proto_rpc_call_t *call, int status)
{
    struct rpc_op *op = call->data;
    struct edge_coord *co = op->coord;
    if (status == 0) {
        Aethex__EndStreamReply *r = aethex__end_stream_reply__unpack(
            proto_rpc_allocator(), call->payload.len, call->payload.base);
        AX_LOG_I("edge coord", "stream=%s ended (duration %lld s)", op->stream_id,
                 r ? (long long)r->duration_seconds : -1LL);
        if (r)
            aethex__end_stream_reply__free_unpacked(r, proto_rpc_allocator());
    } else if (status == AX_ENOLEADER || status == AX_ECONNRESET || status == AX_ETIMEDOUT) {
        /* Ending twice is harmless (the coordinator keeps the first end): retry later. */
        if (!co->closing)
            queue_end(co, op->stream_id);
    } else if (status != AX_ECANCELED) {
        AX_LOG_W("edge coord", "stream=%s end: %s (%s)", op->stream_id, ax_strerror(status),
                 call->errmsg);
    }
    op_done(op);
}

static int send_end(struct edge_coord *co, const char *stream_id, const char *reason)
{
    struct edge *e = co->edge;
    Aethex__EndStream m = AETHEX__END_STREAM__INIT;
    struct rpc_op *op = ax_xcalloc(1, sizeof *op);
    op->coord = co;
    copy_str(op->stream_id, sizeof op->stream_id, stream_id);
    m.stream_id = op->stream_id;
    m.reason = (char *)(reason ? reason : "publisher left");
    m.edge_id = e->cfg.edge_id;
    int rc = submit(co, op, AETHEX__METHOD__METHOD_END_STREAM, &m.base, on_end_stream);
    if (rc < 0)
        ax_free(op);
    else
        e->m.coord_end_streams++;
    return rc;
}

static void flush_ends(struct edge_coord *co)
{
    uint32_t n = co->nends;
    char ids[COORD_MAX_ENDS][COORD_ID_MAX + 1];
    memcpy(ids, co->ends, sizeof ids[0] * n);
    co->nends = 0;
    for (uint32_t i = 0; i < n; i++)
        if (send_end(co, ids[i], "publisher left") < 0)
            queue_end(co, ids[i]);
}

void edge_coord_end_stream(struct edge *e, const char *stream_id, const char *reason)
{
    struct edge_coord *co = e->coord;
    if (!co || !stream_id || !stream_id[0])
        return;
    if (co->closing) {
        AX_LOG_W("edge coord", "stream=%s end not reported: stopping", stream_id);
        return;
    }
    if (ax_sm_state(&co->sm) != COORD_REGISTERED || send_end(co, stream_id, reason) < 0)
        queue_end(co, stream_id);
}

/* --- authorisation ---------------------------------------------------------------------- */

static void auth_free(struct auth *a)
{
    h2o_linklist_unlink(&a->link);
    ax_free(a->payload);
    ax_free(a);
}

static void auth_answer(struct auth *a, int status, const char *slug, const char *cid,
                        const char *sid, const char *why)
{
    struct edge *e = a->coord->edge;
    ax_sm_move(&a->sm, AUTH_DONE);
    struct rtmp_conn *conn = a->conn;
    if (status == 0)
        e->m.coord_authorize_ok++;
    else if (status == AX_EBADKEY || status == AX_ELIVE)
        e->m.coord_authorize_refused++;
    else
        e->m.coord_authorize_failed++;
    if (!conn) {
        /* The publisher left while we asked: a yes must not leave the stream live. */
        if (status == 0 && sid && sid[0])
            edge_coord_end_stream(e, sid, "publisher left before authorisation");
    } else {
        edge_rtmp_conn_authorized(conn, status, slug, cid, sid, why);
    }
    auth_free(a);
}

static void on_authorize(proto_rpc_call_t *call, int status)
{
    struct auth *a = call->data;
    struct edge_coord *co = a->coord;
    if (status == AX_ENOLEADER && !co->closing &&
        edge_now_ms(co->edge) < a->deadline_ms) {
        /* Not sent (or refused with NotLeader and no leader found): wait for a connection. */
        ax_sm_move(&a->sm, AUTH_WAITING);
        return;
    }
    if (status == 0) {
        Aethex__AuthorizePublishReply *r = aethex__authorize_publish_reply__unpack(
            proto_rpc_allocator(), call->payload.len, call->payload.base);
        if (!r || !r->channel_slug || !edge_channel_name_valid(AX_SLICE(
                                          r->channel_slug, strlen(r->channel_slug)))) {
            if (r)
                aethex__authorize_publish_reply__free_unpacked(r, proto_rpc_allocator());
            auth_answer(a, AX_EPROTO, NULL, NULL, NULL, "coordinator answer malformed");
            return;
        }
        auth_answer(a, 0, r->channel_slug, r->channel_id, r->stream_id, NULL);
        aethex__authorize_publish_reply__free_unpacked(r, proto_rpc_allocator());
        return;
    }
    if (status == AX_EBADKEY)
        auth_answer(a, status, NULL, NULL, NULL,
                    "unknown or revoked stream key (NetStream.Publish.BadName)");
    else if (status == AX_ELIVE)
        auth_answer(a, status, NULL, NULL, NULL,
                    "stream already live on another edge (NetStream.Publish.Rejected)");
    else if (status == AX_ECANCELED)
        auth_answer(a, status, NULL, NULL, NULL, "server is stopping");
    else
        auth_answer(a, status, NULL, NULL, NULL,
                    "no coordinator reachable (NetStream.Publish.Rejected)");
}

static void auth_try(struct auth *a)
{
    struct edge_coord *co = a->coord;
    uint64_t now = edge_now_ms(co->edge);
    if (ax_sm_state(&co->sm) != COORD_REGISTERED)
        return; /* stays WAITING */
    memset(&a->call, 0, sizeof a->call);
    a->call.data = a;
    uint64_t left = a->deadline_ms > now ? a->deadline_ms - now : 1;
    a->call.timeout_ms = (uint32_t)(left < 100 ? 100 : left);
    int rc = proto_rpc_call(&a->call, co->client, AETHEX__METHOD__METHOD_AUTHORIZE_PUBLISH,
                            AX_SLICE(a->payload, a->payload_len), on_authorize);
    if (rc == 0) {
        ax_sm_move(&a->sm, AUTH_IN_FLIGHT);
        return;
    }
    if (rc != AX_ENOLEADER)
        auth_answer(a, rc, NULL, NULL, NULL, "no coordinator reachable");
}

static void flush_auths(struct edge_coord *co)
{
    h2o_linklist_t *n, *next;
    for (n = co->auths.next; n != &co->auths; n = next) {
        next = n->next;
        struct auth *a = H2O_STRUCT_FROM_MEMBER(struct auth, link, n);
        if (ax_sm_state(&a->sm) == AUTH_WAITING)
            auth_try(a);
    }
}

int edge_coord_authorize(struct edge *e, struct rtmp_conn *conn, ax_slice_t key)
{
    struct edge_coord *co = e->coord;
    if (!co || co->closing)
        return AX_ECANCELED;
    char keybuf[EDGE_KEY_MAX + 1];
    if (key.len == 0 || key.len > EDGE_KEY_MAX)
        return AX_EBADKEY;
    memcpy(keybuf, key.base, key.len);
    keybuf[key.len] = '\0';
    Aethex__AuthorizePublish m = AETHEX__AUTHORIZE_PUBLISH__INIT;
    m.key = keybuf;
    m.edge_id = e->cfg.edge_id;
    struct auth *a = ax_xcalloc(1, sizeof *a);
    int rc = proto_rpc_pack(&m.base, &a->payload, &a->payload_len);
    memset(keybuf, 0, sizeof keybuf);
    if (rc < 0) {
        ax_free(a);
        return rc;
    }
    a->coord = co;
    a->conn = conn;
    a->deadline_ms = edge_now_ms(e) + e->cfg.authorize_timeout_ms;
    ax_sm_init(&a->sm, auth_states, AUTH_STATE_COUNT, AUTH_WAITING);
    h2o_linklist_insert(&co->auths, &a->link);
    auth_try(a);
    return 0;
}

void edge_coord_authorize_cancel(struct edge *e, struct rtmp_conn *conn)
{
    struct edge_coord *co = e->coord;
    if (!co)
        return;
    h2o_linklist_t *n, *next;
    for (n = co->auths.next; n != &co->auths; n = next) {
        next = n->next;
        struct auth *a = H2O_STRUCT_FROM_MEMBER(struct auth, link, n);
        if (a->conn != conn)
            continue;
        a->conn = NULL;
        if (ax_sm_state(&a->sm) == AUTH_WAITING) {
            ax_sm_move(&a->sm, AUTH_DONE);
            auth_free(a);
        }
        /* IN_FLIGHT: orphaned; the answer is handled in auth_answer. */
    }
}

/* --- origin lookup ---------------------------------------------------------------------- */

static void on_lookup(proto_rpc_call_t *call, int status)
{
    struct rpc_op *op = call->data;
    struct edge *e = op->coord->edge;
    const char *url = NULL;
    Aethex__LookupChannelReply *r = NULL;
    if (status == 0) {
        r = aethex__lookup_channel_reply__unpack(proto_rpc_allocator(), call->payload.len,
                                                 call->payload.base);
        if (!r)
            status = AX_EPROTO;
        else if (r->origin_edge_id && !strcmp(r->origin_edge_id, e->cfg.edge_id))
            status = AX_ENOENT; /* "us", but nobody publishes here: not live */
        else
            url = r->origin_hls_base_url;
    }
    if (status != 0 && status != AX_ENOENT && status != AX_ECANCELED)
        AX_LOG_W("edge coord", "channel=%s lookup: %s (%s)", op->channel, ax_strerror(status),
                 call->errmsg);
    op->origin_cb(e, op->channel, status, url);
    if (r)
        aethex__lookup_channel_reply__free_unpacked(r, proto_rpc_allocator());
    op_done(op);
}

int edge_coord_lookup_origin(struct edge *e, const char *channel, edge_coord_origin_cb cb)
{
    struct edge_coord *co = e->coord;
    if (!co || co->closing)
        return AX_ENOTSUP;
    Aethex__LookupChannel m = AETHEX__LOOKUP_CHANNEL__INIT;
    struct rpc_op *op = ax_xcalloc(1, sizeof *op);
    op->coord = co;
    op->origin_cb = cb;
    copy_str(op->channel, sizeof op->channel, channel);
    m.channel_slug = op->channel;
    int rc = submit(co, op, AETHEX__METHOD__METHOD_LOOKUP_CHANNEL, &m.base, on_lookup);
    if (rc < 0)
        ax_free(op);
    return rc;
}

/* --- client events ---------------------------------------------------------------------- */

static void on_state(proto_rpc_client_t *c, bool connected, const char *address,
                     const char *server_id)
{
    struct edge_coord *co = proto_rpc_client_data(c);
    if (connected) {
        AX_LOG_I("edge coord", "connected to %s (%s)", address, server_id);
        if (ax_sm_state(&co->sm) != COORD_REGISTERING)
            ax_sm_move(&co->sm, COORD_REGISTERING);
        do_register(co);
        return;
    }
    if (ax_sm_state(&co->sm) != COORD_DISCONNECTED) {
        AX_LOG_W("edge coord", "lost the coordinator at %s: %s; streams keep playing, "
                 "reconnecting", address && address[0] ? address : "?",
                 proto_rpc_client_errmsg(c));
        ax_sm_move(&co->sm, COORD_DISCONNECTED);
    }
    co->heartbeat_in_flight = false;
}

static void on_push(proto_rpc_client_t *c, uint32_t method, ax_slice_t payload)
{
    struct edge_coord *co = proto_rpc_client_data(c);
    struct edge *e = co->edge;
    if (method == AETHEX__METHOD__METHOD_KICK_PUBLISHER) {
        Aethex__KickPublisher *k =
            aethex__kick_publisher__unpack(proto_rpc_allocator(), payload.len, payload.base);
        if (!k)
            return;
        char reason[128];
        snprintf(reason, sizeof reason, "kicked by the coordinator: %s",
                 k->reason && k->reason[0] ? k->reason : "no reason given");
        e->m.coord_kicks += edge_rtmp_kick_matching(e, k->stream_id, k->channel_id, NULL, reason);
        aethex__kick_publisher__free_unpacked(k, proto_rpc_allocator());
    } else if (method == AETHEX__METHOD__METHOD_KEY_REVOKED) {
        Aethex__KeyRevoked *k =
            aethex__key_revoked__unpack(proto_rpc_allocator(), payload.len, payload.base);
        if (!k)
            return;
        const uint8_t *hash = k->key_hash.len == 32 ? k->key_hash.data : NULL;
        e->m.coord_kicks +=
            edge_rtmp_kick_matching(e, NULL, k->channel_id, hash, "stream key revoked");
        aethex__key_revoked__free_unpacked(k, proto_rpc_allocator());
    }
}

static void on_tick(uv_timer_t *t)
{
    struct edge_coord *co = ax_container_of(t, struct edge_coord, tick);
    uint64_t now = edge_now_ms(co->edge);
    /* Authorisations that waited for a connection too long: "no coordinator reachable". */
    h2o_linklist_t *n, *next;
    for (n = co->auths.next; n != &co->auths; n = next) {
        next = n->next;
        struct auth *a = H2O_STRUCT_FROM_MEMBER(struct auth, link, n);
        if (ax_sm_state(&a->sm) != AUTH_WAITING)
            continue;
        if (now >= a->deadline_ms)
            auth_answer(a, AX_ETIMEDOUT, NULL, NULL, NULL,
                        "no coordinator reachable (NetStream.Publish.Rejected)");
        else
            auth_try(a); /* registered again, or the leader is known by now */
    }
    int st = ax_sm_state(&co->sm);
    if (st == COORD_REGISTERED && now - co->last_heartbeat_ms >= co->heartbeat_ms)
        send_heartbeat(co);
    else if (st == COORD_REGISTERING && now - co->last_heartbeat_ms >= 2000)
        do_register(co);
}

int edge_coord_start(struct edge *e)
{
    if (!edge_coord_enabled(e))
        return 0;
    edge_config_t *cfg = &e->cfg;
    if (!cfg->edge_id[0] || !cfg->region[0]) {
        AX_LOG_E("edge coord", "coordinator mode needs --edge-id and --region");
        return AX_EINVAL;
    }
    struct edge_coord *co = ax_xcalloc(1, sizeof *co);
    co->edge = e;
    ax_sm_init(&co->sm, coord_states, COORD_STATE_COUNT, COORD_DISCONNECTED);
    h2o_linklist_init_anchor(&co->auths);
    co->heartbeat_ms = 1000;
    char err[AX_ERRMSG_LEN] = "";
    if (cfg->cluster_secret_file[0]) {
        int rc = proto_rpc_secret_load(cfg->cluster_secret_file, co->secret, &co->secret_len, err);
        if (rc < 0) {
            AX_LOG_E("edge coord", "cluster secret file %s: %s", cfg->cluster_secret_file,
                     err[0] ? err : ax_strerror(rc));
            ax_free(co);
            return rc;
        }
    } else if (cfg->cluster_secret[0]) {
        co->secret_len = strlen(cfg->cluster_secret);
        memcpy(co->secret, cfg->cluster_secret, co->secret_len);
    } else {
        AX_LOG_E("edge coord", "coordinator mode needs --cluster-secret-file (or --cluster-secret)");
        ax_free(co);
        return AX_EINVAL;
    }
    if (!cfg->public_hls_url[0])
        snprintf(cfg->public_hls_url, sizeof cfg->public_hls_url, "http://%s:%d", cfg->http.host,
                 cfg->http.port);
    /* "ip:port[,ip:port...]" */
    char list[EDGE_PATH_LEN];
    copy_str(list, sizeof list, cfg->coordinator);
    const char *addrs[PROTO_RPC_MAX_ADDRESSES];
    uint32_t naddrs = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        if (naddrs == PROTO_RPC_MAX_ADDRESSES) {
            AX_LOG_E("edge coord", "more than %d coordinator addresses", PROTO_RPC_MAX_ADDRESSES);
            ax_free(co);
            return AX_EINVAL;
        }
        addrs[naddrs++] = tok;
    }
    proto_rpc_client_config_t cc;
    proto_rpc_client_config_default(&cc);
    cc.addresses = addrs;
    cc.naddresses = naddrs;
    cc.client_id = cfg->edge_id;
    cc.secret = co->secret;
    cc.secret_len = co->secret_len;
    cc.call_timeout_ms = 5000;
    cc.on_state = on_state;
    cc.on_push = on_push;
    cc.data = co;
    int rc = proto_rpc_client_new(e->loop, &cc, &co->client, err);
    if (rc < 0) {
        AX_LOG_E("edge coord", "rpc client: %s", err[0] ? err : ax_strerror(rc));
        ax_free(co);
        return rc;
    }
    uv_timer_init(e->loop, &co->tick);
    co->tick_ready = true;
    e->coord = co;
    uv_timer_start(&co->tick, on_tick, COORD_TICK_MS, COORD_TICK_MS);
    AX_LOG_I("edge coord", "coordinator mode: edge %s region %s, coordinators %s, public %s",
             cfg->edge_id, cfg->region, cfg->coordinator, cfg->public_hls_url);
    return 0;
}

bool edge_coord_idle(const struct edge *e)
{
    return !e->coord || e->coord->pending_ops == 0 || e->coord->closing;
}

/* The struct goes when both the client and the tick timer have closed (STYLE 3). */
static void maybe_free(struct edge_coord *co)
{
    if (!co->client_closed || !co->tick_closed)
        return;
    while (!h2o_linklist_is_empty(&co->auths))
        auth_free(H2O_STRUCT_FROM_MEMBER(struct auth, link, co->auths.next));
    if (co->edge->coord == co)
        co->edge->coord = NULL;
    ax_free(co);
}

static void on_client_closed(proto_rpc_client_t *c)
{
    /* Every call the close cancelled has been answered (and its op freed) by now. */
    struct edge_coord *co = proto_rpc_client_data(c);
    co->client = NULL;
    co->client_closed = true;
    maybe_free(co);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct edge_coord *co = ax_container_of((uv_timer_t *)h, struct edge_coord, tick);
    co->tick_closed = true;
    maybe_free(co);
}

void edge_coord_stop(struct edge *e)
{
    struct edge_coord *co = e->coord;
    if (!co || co->closing)
        return;
    co->closing = true;
    if (co->nends)
        AX_LOG_W("edge coord", "%u stream end(s) not reported: no coordinator", co->nends);
    /* Publishes still waiting are refused by the RTMP stop path (their conns close): no
     * answer goes to a connection from here on. */
    for (h2o_linklist_t *n = co->auths.next; n != &co->auths; n = n->next)
        H2O_STRUCT_FROM_MEMBER(struct auth, link, n)->conn = NULL;
    /* Both close their handles now (uv_close), so the final walk over the loop's handles
     * in main.c finds them closing already. */
    uv_close((uv_handle_t *)&co->tick, on_tick_closed);
    proto_rpc_client_close(co->client, on_client_closed);
}

size_t edge_coord_metrics(struct edge *e, char *buf, size_t off, size_t cap)
{
    struct edge_metrics *m = &e->m;
    int st = e->coord ? ax_sm_state(&e->coord->sm) : -1;
    off = edge_metrics_append(
        buf, off, cap,
        "# HELP aethex_edge_coordinator_registered 1 while registered with a coordinator.\n"
        "# TYPE aethex_edge_coordinator_registered gauge\n"
        "aethex_edge_coordinator_registered %d\n"
        "# HELP aethex_edge_authorize_total Publish authorisations by outcome.\n"
        "# TYPE aethex_edge_authorize_total counter\n"
        "aethex_edge_authorize_total{result=\"ok\"} %llu\n"
        "aethex_edge_authorize_total{result=\"refused\"} %llu\n"
        "aethex_edge_authorize_total{result=\"failed\"} %llu\n"
        "# HELP aethex_edge_heartbeats_total Heartbeats answered.\n"
        "# TYPE aethex_edge_heartbeats_total counter\n"
        "aethex_edge_heartbeats_total %llu\n"
        "# HELP aethex_edge_heartbeat_errors_total Heartbeats not sent or failed.\n"
        "# TYPE aethex_edge_heartbeat_errors_total counter\n"
        "aethex_edge_heartbeat_errors_total %llu\n"
        "# HELP aethex_edge_end_streams_total EndStream calls sent.\n"
        "# TYPE aethex_edge_end_streams_total counter\n"
        "aethex_edge_end_streams_total %llu\n"
        "# HELP aethex_edge_coordinator_kicks_total Publishers stopped by the coordinator.\n"
        "# TYPE aethex_edge_coordinator_kicks_total counter\n"
        "aethex_edge_coordinator_kicks_total %llu\n",
        st == COORD_REGISTERED ? 1 : 0, (unsigned long long)m->coord_authorize_ok,
        (unsigned long long)m->coord_authorize_refused,
        (unsigned long long)m->coord_authorize_failed, (unsigned long long)m->coord_heartbeats,
        (unsigned long long)m->coord_heartbeat_errors, (unsigned long long)m->coord_end_streams,
        (unsigned long long)m->coord_kicks);
    return off;
}

static int hexval(uint8_t c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

void edge_coord_key_hash(ax_slice_t key, uint8_t out[32])
{
    /* As the coordinator stores it (aethexctl keys create): a key is 32 random bytes shown as
     * 64 hex digits, and the hash is over the bytes. Anything else is hashed as typed. */
    uint8_t raw[EDGE_KEY_MAX / 2];
    bool hex = key.len > 0 && key.len % 2 == 0 && key.len / 2 <= sizeof raw;
    for (size_t i = 0; hex && i < key.len / 2; i++) {
        int hi = hexval(key.base[2 * i]), lo = hexval(key.base[2 * i + 1]);
        if (hi < 0 || lo < 0)
            hex = false;
        else
            raw[i] = (uint8_t)(hi << 4 | lo);
    }
    if (hex)
        SHA256(raw, key.len / 2, out);
    else
        SHA256(key.base, key.len, out);
}

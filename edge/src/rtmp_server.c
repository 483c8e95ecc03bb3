/*
 * The RTMP listener: one media_rtmp_session per TCP connection, all on the edge's loop.
 *
 * A connection's life (the socket side; the protocol side is the session's own table in
 * media/src/rtmp_session.c):
 *
 *   +------+  protocol error, reject, stop  +----------+  shutdown cb, or 2 s  +---------+
 *   | OPEN | -----------------------------> | FLUSHING | --------------------> | CLOSING |
 *   +------+  (output still to send)        +----------+                      +---------+
 *      |                                                                          |
 *      +-- EOF, read/write error, timeout, nothing to flush --------------------->+
 *                                                        uv_close -> on_closed: freed
 *
 * | state    | reading        | writes          | leaves when                                  |
 * |----------|----------------|-----------------|----------------------------------------------|
 * | OPEN     | yes (paused    | queued from the | the session fails or closes, the peer hangs  |
 * |          |  under backpr.)| session output  | up, a deadline passes, the edge stops         |
 * | FLUSHING | no             | draining, then  | uv_shutdown completes or 2 s pass            |
 * |          |                | uv_shutdown     |                                              |
 * | CLOSING  | no             | cancelled       | uv_close's callback: memory freed there       |
 *
 * The reason a connection closed is logged exactly once, on leaving OPEN.
 * Deadlines (a 250 ms sweep, not a timer per connection): HANDSHAKE/CONNECTING/CONNECTED
 * must reach PUBLISHING within rtmp-handshake-ms; no byte for rtmp-idle-ms closes.
 * Backpressure: when the output not yet written by the kernel exceeds rtmp-max-output,
 * reading stops until it falls under half of that.
 */
#include <stdio.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "aethex/common/log.h"
#include "aethex/common/sm.h"

#include "edge_internal.h"

#define FLUSH_DEADLINE_MS 2000
#define READ_BUF_SIZE 65536

enum conn_state { CONN_OPEN, CONN_FLUSHING, CONN_CLOSING, CONN_STATE_COUNT };

static const struct ax_sm_conf conn_states[CONN_STATE_COUNT] = {
    [CONN_OPEN] = {"open", AX_SM_BIT(CONN_FLUSHING) | AX_SM_BIT(CONN_CLOSING)},
    [CONN_FLUSHING] = {"flushing", AX_SM_BIT(CONN_CLOSING)},
    [CONN_CLOSING] = {"closing", 0},
};

struct rtmp_conn {
    uv_tcp_t tcp;
    struct edge *edge;
    media_rtmp_session_t *session; /* owned */
    ax_sm_t sm;
    h2o_linklist_t link;          /* in edge->rtmp_conns */
    struct edge_channel *channel; /* set while publishing */
    char channel_name[EDGE_CHANNEL_MAX + 1];
    char peer[64];
    uint64_t accepted_ms;
    uint64_t last_read_ms;
    uint64_t flush_deadline_ms;
    size_t out_pending; /* bytes in uv_write requests not yet completed */
    bool reading;
    bool published; /* reached PUBLISHING at least once */
    bool rejected;  /* we refused its publish: feed() then fails */
    bool authorizing; /* coordinator mode: AuthorizePublish in flight (PUBLISH_PENDING) */
    char channel_id[65]; /* coordinator mode, while publishing */
    char stream_id[65];
    uint8_t key_hash[32]; /* SHA-256 of the key: KeyRevoked names it */
    uv_shutdown_t shutdown_req;
};

struct conn_write {
    uv_write_t req;
    struct rtmp_conn *conn;
    size_t len;
    uint8_t data[];
};

static uint8_t read_buf[READ_BUF_SIZE]; /* one loop: reads are consumed synchronously */

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void conn_close(struct rtmp_conn *c, const char *reason, bool error, bool flush);

static const char *chan_or_dash(const struct rtmp_conn *c)
{
    return c->channel_name[0] ? c->channel_name : "-";
}

/* The publish of `c` is over (unpublish, connection gone, kicked): the channel goes IDLE and,
 * in coordinator mode, the stream is ended with the coordinator. */
static void publish_done(struct rtmp_conn *c, const char *reason)
{
    if (c->authorizing) {
        edge_coord_authorize_cancel(c->edge, c);
        c->authorizing = false;
    }
    if (c->channel) {
        edge_channel_publish_end(c->channel, c);
        c->channel = NULL;
    }
    if (c->stream_id[0]) {
        edge_coord_end_stream(c->edge, c->stream_id, reason);
        c->stream_id[0] = '\0';
        c->channel_id[0] = '\0';
    }
}

static void on_closed(uv_handle_t *h)
{
    struct rtmp_conn *c = ax_container_of((uv_tcp_t *)h, struct rtmp_conn, tcp);
    media_rtmp_session_free(c->session);
    c->edge->m.rtmp_active--;
    free(c);
}

static void do_close(struct rtmp_conn *c)
{
    if (ax_sm_state(&c->sm) == CONN_CLOSING)
        return;
    ax_sm_move(&c->sm, CONN_CLOSING);
    h2o_linklist_unlink(&c->link);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_write(uv_write_t *req, int status)
{
    struct conn_write *w = ax_container_of(req, struct conn_write, req);
    struct rtmp_conn *c = w->conn;
    c->out_pending -= w->len;
    if (status == 0)
        c->edge->m.rtmp_bytes_out += w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        conn_close(c, uv_strerror(status), true, false);
        return;
    }
    /* Resume reading once the peer has taken enough of what we owe it. */
    if (ax_sm_state(&c->sm) == CONN_OPEN && !c->reading &&
        c->out_pending <= c->edge->cfg.rtmp_max_output / 2) {
        if (uv_read_start((uv_stream_t *)&c->tcp, NULL, on_read) == 0)
            c->reading = true;
    }
}

/* Takes whatever the session has to say and queues it. The session's output is only valid
 * until the next call on the session, so it is copied once into the write request. */
static int flush_output(struct rtmp_conn *c)
{
    ax_slice_t out = media_rtmp_session_output(c->session);
    if (out.len == 0)
        return 0;
    struct conn_write *w = malloc(sizeof *w + out.len);
    if (!w)
        return AX_ENOMEM;
    memcpy(w->data, out.base, out.len);
    w->len = out.len;
    w->conn = c;
    media_rtmp_session_output_consume(c->session, out.len);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        return rc;
    }
    c->out_pending += w->len;
    return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    struct rtmp_conn *c = ax_container_of(req, struct rtmp_conn, shutdown_req);
    do_close(c);
}

/*
 * Leaves OPEN: logs `reason` once, detaches from the channel, and either closes at once or
 * flushes what the session still has to send (an error status, an unpublish notice) first.
 */
static void conn_close(struct rtmp_conn *c, const char *reason, bool error, bool flush)
{
    struct edge *e = c->edge;
    if (ax_sm_state(&c->sm) != CONN_OPEN) {
        if (!flush && ax_sm_state(&c->sm) == CONN_FLUSHING)
            do_close(c);
        return;
    }
    media_rtmp_stats_t st;
    media_rtmp_session_stats(c->session, &st);
    ax_log(error ? AX_LOG_WARN : AX_LOG_INFO, "edge rtmp",
           "peer=%s channel=%s closed: %s (state=%s bytes_in=%llu video_frames=%llu "
           "audio_frames=%llu)",
           c->peer, chan_or_dash(c), reason,
           media_rtmp_state_name(media_rtmp_session_state(c->session)),
           (unsigned long long)st.bytes_in, (unsigned long long)st.video_frames,
           (unsigned long long)st.audio_frames);
    if (error)
        e->m.rtmp_closed_error++;
    publish_done(c, reason);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    if (flush && flush_output(c) == 0 && c->out_pending > 0) {
        ax_sm_move(&c->sm, CONN_FLUSHING);
        c->flush_deadline_ms = edge_now_ms(e) + FLUSH_DEADLINE_MS;
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) == 0)
            return;
    }
    do_close(c);
}

void edge_rtmp_conn_kick(struct rtmp_conn *c, const char *reason)
{
    if (ax_sm_state(&c->sm) != CONN_OPEN)
        return;
    media_rtmp_session_stop(c->session);
    conn_close(c, reason, false, true);
}

uint64_t edge_rtmp_conn_idle_ms(const struct rtmp_conn *c, uint64_t now)
{
    return now > c->last_read_ms ? now - c->last_read_ms : 0;
}

/* --- session callbacks ------------------------------------------------------------------ */

static int on_connect(media_rtmp_session_t *s, const media_rtmp_connect_info_t *info)
{
    struct rtmp_conn *c = media_rtmp_session_data(s);
    /* The OBS server URL is rtmp://host/live; anything else is a misconfigured client. */
    if (!ax_slice_eq_cstr(info->app, "live")) {
        AX_LOG_I("edge rtmp", "peer=%s connect refused: app '%.*s' is not 'live'", c->peer,
                 (int)(info->app.len > 64 ? 64 : info->app.len), (const char *)info->app.base);
        return AX_EACCES;
    }
    AX_LOG_D("edge rtmp", "peer=%s connected app=live", c->peer);
    return 0;
}

static void reject(struct rtmp_conn *c, int code, const char *why)
{
    c->edge->m.publish_rejected++;
    c->rejected = true;
    AX_LOG_W("edge rtmp", "peer=%s channel=%s publish refused: %s", c->peer, chan_or_dash(c), why);
    media_rtmp_session_publish_reject(c->session, code, why);
}

static void on_publish(media_rtmp_session_t *s, ax_slice_t app, ax_slice_t key)
{
    (void)app;
    struct rtmp_conn *c = media_rtmp_session_data(s);
    /* OBS and ffmpeg may append "?param=..." to the stream name: the key is what precedes. */
    const uint8_t *q = memchr(key.base, '?', key.len);
    if (q)
        key.len = (size_t)(q - key.base);
    struct edge *e = c->edge;
    if (e->stopping) {
        reject(c, AX_ECANCELED, "server is stopping");
        return;
    }
    if (c->channel || c->authorizing) {
        reject(c, AX_EBADSTATE, "already publishing on this connection");
        return;
    }
    if (edge_coord_enabled(e)) {
        /* Ask the coordinator; the session stays PUBLISH_PENDING until it answers
         * (edge_rtmp_conn_authorized). The key goes only into the RPC, hashed here for a
         * later KeyRevoked. */
        if (key.len == 0 || key.len > EDGE_KEY_MAX) {
            reject(c, AX_EBADKEY, "unknown or revoked stream key (NetStream.Publish.BadName)");
            return;
        }
        edge_coord_key_hash(key, c->key_hash);
        int arc = edge_coord_authorize(e, c, key);
        if (arc < 0) {
            reject(c, arc == AX_EBADKEY ? AX_EBADKEY : AX_ECANCELED,
                   "no coordinator reachable (NetStream.Publish.Rejected)");
            return;
        }
        c->authorizing = true;
        AX_LOG_D("edge rtmp", "peer=%s publish pending: asking the coordinator", c->peer);
        return;
    }
    /* The playlist URL names the channel, never the key: the key is never logged. */
    ax_slice_t name;
    const char *mapped = NULL;
    if (e->cfg.accept_any_key) {
        if (!edge_channel_name_valid(key)) {
            reject(c, AX_EBADKEY, "stream key must be 1..64 of [A-Za-z0-9_-] (accept-any-key)");
            return;
        }
        name = key;
    } else {
        mapped = edge_keys_lookup(&e->keys, key);
        if (!mapped) {
            reject(c, AX_EBADKEY, "unknown stream key");
            return;
        }
        name = AX_SLICE(mapped, strlen(mapped));
    }
    memcpy(c->channel_name, name.base, name.len);
    c->channel_name[name.len] = '\0';
    struct edge_channel *ch = edge_channel_find(e, name, true);
    if (!ch) {
        reject(c, AX_ENOSPC, "too many channels on this edge");
        return;
    }
    int rc = edge_channel_publish_begin(ch, c);
    if (rc == AX_ELIVE) {
        reject(c, AX_ELIVE, "stream already live: another publisher holds this key");
        return;
    }
    if (rc < 0) {
        reject(c, rc, ax_strerror(rc));
        return;
    }
    c->channel = ch;
    rc = media_rtmp_session_publish_accept(s);
    if (rc < 0) {
        edge_channel_publish_end(ch, c);
        c->channel = NULL;
        return;
    }
    c->published = true;
    e->m.publish_accepted++;
    AX_LOG_I("edge rtmp", "peer=%s channel=%s publish started", c->peer, c->channel_name);
}

static void on_unpublish(media_rtmp_session_t *s)
{
    struct rtmp_conn *c = media_rtmp_session_data(s);
    if (!c->channel && !c->authorizing)
        return;
    AX_LOG_I("edge rtmp", "peer=%s channel=%s unpublished", c->peer, c->channel_name);
    publish_done(c, "publisher unpublished");
}

static void on_video_config(media_rtmp_session_t *s, const media_avc_config_t *cfg)
{
    struct rtmp_conn *c = media_rtmp_session_data(s);
    if (c->channel)
        edge_channel_on_video_config(c->channel, cfg);
}

static void on_audio_config(media_rtmp_session_t *s, const media_aac_config_t *cfg)
{
    struct rtmp_conn *c = media_rtmp_session_data(s);
    if (c->channel)
        edge_channel_on_audio_config(c->channel, cfg);
}

static void on_frame(media_rtmp_session_t *s, const media_frame_t *f)
{
    struct rtmp_conn *c = media_rtmp_session_data(s);
    if (f->track < MEDIA_TRACK_COUNT)
        c->edge->m.frames_in[f->track]++;
    if (c->channel)
        edge_channel_on_frame(c->channel, f);
}

static void on_metadata(media_rtmp_session_t *s, const media_rtmp_metadata_t *md)
{
    struct rtmp_conn *c = media_rtmp_session_data(s);
    AX_LOG_I("edge rtmp", "peer=%s channel=%s metadata %.0fx%.0f@%.2f encoder=%.*s", c->peer,
             chan_or_dash(c), md->width, md->height, md->framerate,
             (int)(md->encoder.len > 64 ? 64 : md->encoder.len), (const char *)md->encoder.base);
}

/* Outside feed(): the session's answer must be flushed (and, after a refusal, the connection
 * closed) by us. */
static void after_async(struct rtmp_conn *c, const char *why)
{
    if (ax_sm_state(&c->sm) != CONN_OPEN)
        return;
    if (c->rejected || media_rtmp_session_state(c->session) == MEDIA_RTMP_STATE_CLOSED) {
        const char *msg = media_rtmp_session_errmsg(c->session);
        conn_close(c, why ? why : (msg && msg[0] ? msg : "publish refused"), false, true);
        return;
    }
    int rc = flush_output(c);
    if (rc < 0)
        conn_close(c, ax_strerror(rc), true, false);
}

void edge_rtmp_conn_authorized(struct rtmp_conn *c, int status, const char *slug,
                               const char *channel_id, const char *stream_id, const char *why)
{
    struct edge *e = c->edge;
    c->authorizing = false;
    if (ax_sm_state(&c->sm) != CONN_OPEN ||
        media_rtmp_session_state(c->session) != MEDIA_RTMP_STATE_PUBLISH_PENDING) {
        /* Gone or withdrawn meanwhile: a yes must not leave the stream live. */
        if (status == 0)
            edge_coord_end_stream(e, stream_id, "publisher left before authorisation");
        return;
    }
    if (status != 0) {
        /* BadName for a key the coordinator does not accept; Rejected for everything else
         * (already live elsewhere, no coordinator reachable). */
        reject(c, status == AX_EBADKEY ? AX_EBADKEY : (status == AX_ELIVE ? AX_ELIVE : AX_ECANCELED),
               why ? why : ax_strerror(status));
        after_async(c, "publish refused");
        return;
    }
    size_t n = strlen(slug);
    memcpy(c->channel_name, slug, n + 1);
    snprintf(c->channel_id, sizeof c->channel_id, "%s", channel_id ? channel_id : "");
    snprintf(c->stream_id, sizeof c->stream_id, "%s", stream_id ? stream_id : "");
    struct edge_channel *ch = edge_channel_find(e, AX_SLICE(slug, n), true);
    int rc = ch ? edge_channel_publish_begin(ch, c) : AX_ENOSPC;
    if (rc < 0) {
        /* The coordinator may have answered with the stream already live here (the same
         * channel, another connection): that one must not be ended on our behalf. */
        for (h2o_linklist_t *l = e->rtmp_conns.next; l != &e->rtmp_conns; l = l->next) {
            struct rtmp_conn *o = H2O_STRUCT_FROM_MEMBER(struct rtmp_conn, link, l);
            if (o != c && !strcmp(o->stream_id, c->stream_id))
                c->stream_id[0] = '\0';
        }
        reject(c, rc == AX_ELIVE ? AX_ELIVE : rc,
               rc == AX_ELIVE ? "stream already live: another publisher holds this key"
                              : (rc == AX_ENOSPC ? "too many channels on this edge" : ax_strerror(rc)));
        publish_done(c, "refused by the edge");
        after_async(c, "publish refused");
        return;
    }
    c->channel = ch;
    rc = media_rtmp_session_publish_accept(c->session);
    if (ax_sm_state(&c->sm) != CONN_OPEN)
        return;
    if (rc < 0) {
        publish_done(c, "publish failed");
        after_async(c, media_rtmp_session_errmsg(c->session));
        return;
    }
    c->published = true;
    e->m.publish_accepted++;
    AX_LOG_I("edge rtmp", "peer=%s channel=%s stream=%s publish started (authorised)", c->peer,
             c->channel_name, c->stream_id);
    after_async(c, NULL);
}

void edge_rtmp_each_publisher(struct edge *e,
                              void (*fn)(void *arg, const char *slug, const char *channel_id,
                                         const char *stream_id),
                              void *arg)
{
    for (h2o_linklist_t *n = e->rtmp_conns.next; n != &e->rtmp_conns; n = n->next) {
        struct rtmp_conn *c = H2O_STRUCT_FROM_MEMBER(struct rtmp_conn, link, n);
        if (c->channel && ax_sm_state(&c->sm) == CONN_OPEN)
            fn(arg, c->channel_name, c->channel_id, c->stream_id);
    }
}

unsigned edge_rtmp_kick_matching(struct edge *e, const char *stream_id, const char *channel_id,
                                 const uint8_t *key_hash, const char *reason)
{
    unsigned n = 0;
    h2o_linklist_t *node, *next;
    for (node = e->rtmp_conns.next; node != &e->rtmp_conns; node = next) {
        next = node->next;
        struct rtmp_conn *c = H2O_STRUCT_FROM_MEMBER(struct rtmp_conn, link, node);
        if (ax_sm_state(&c->sm) != CONN_OPEN || (!c->channel && !c->authorizing))
            continue;
        bool match = false;
        if (stream_id && stream_id[0] && !strcmp(stream_id, c->stream_id))
            match = true;
        else if ((!stream_id || !stream_id[0]) && channel_id && channel_id[0] &&
                 !strcmp(channel_id, c->channel_id))
            match = !key_hash || !memcmp(key_hash, c->key_hash, sizeof c->key_hash);
        else if (key_hash && (!channel_id || !channel_id[0]))
            match = !memcmp(key_hash, c->key_hash, sizeof c->key_hash);
        if (!match)
            continue;
        AX_LOG_W("edge rtmp", "peer=%s channel=%s stream=%s %s", c->peer, chan_or_dash(c),
                 c->stream_id[0] ? c->stream_id : "-", reason);
        edge_rtmp_conn_kick(c, reason);
        n++;
    }
    return n;
}

/* --- socket side ------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct rtmp_conn *c = ax_container_of((uv_tcp_t *)stream, struct rtmp_conn, tcp);
    struct edge *e = c->edge;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "peer closed the connection" : uv_strerror((int)nread),
                   nread != UV_EOF && !c->published, false);
        return;
    }
    c->last_read_ms = edge_now_ms(e);
    e->m.rtmp_bytes_in += (uint64_t)nread;
    int rc = media_rtmp_session_feed(c->session, (const uint8_t *)buf->base, (size_t)nread);
    if (ax_sm_state(&c->sm) != CONN_OPEN)
        return; /* closed from a callback */
    if (rc < 0 && c->rejected) {
        conn_close(c, "publish refused", false, true);
        return;
    }
    if (rc < 0) {
        char reason[AX_ERRMSG_LEN + 32];
        snprintf(reason, sizeof reason, "%s: %s", ax_err_name(rc),
                 media_rtmp_session_errmsg(c->session));
        conn_close(c, reason, true, true);
        return;
    }
    if (media_rtmp_session_state(c->session) == MEDIA_RTMP_STATE_CLOSED) {
        const char *msg = media_rtmp_session_errmsg(c->session);
        conn_close(c, msg && msg[0] ? msg : "session closed", false, true);
        return;
    }
    rc = flush_output(c);
    if (rc < 0) {
        conn_close(c, ax_strerror(rc), true, false);
        return;
    }
    if (c->out_pending > e->cfg.rtmp_max_output && c->reading) {
        uv_read_stop(stream);
        c->reading = false;
        e->m.rtmp_backpressure++;
        AX_LOG_D("edge rtmp", "peer=%s channel=%s reading paused: %zu bytes unsent", c->peer,
                 chan_or_dash(c), c->out_pending);
    }
}

static void fill_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    if (uv_random(NULL, NULL, buf, len, 0, NULL) != 0)
        memset(buf, 0x5a, len);
}

static void refuse(struct edge *e, uv_tcp_t *tcp)
{
    e->m.rtmp_refused++;
    uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct edge *e = ax_container_of((uv_tcp_t *)server, struct edge, rtmp_listener);
    if (status < 0) {
        AX_LOG_W("edge rtmp", "accept: %s", uv_strerror(status));
        return;
    }
    struct rtmp_conn *c = ax_xcalloc(1, sizeof *c);
    uv_tcp_init(e->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    if (e->stopping || e->m.rtmp_active >= e->cfg.max_rtmp_conns) {
        AX_LOG_W("edge rtmp", "connection refused: %s",
                 e->stopping ? "stopping" : "max-rtmp-conns reached");
        refuse(e, &c->tcp);
        return;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    media_rtmp_session_config_t cfg;
    media_rtmp_session_config_default(&cfg);
    cfg.limits.max_chunk_size = e->cfg.rtmp_max_chunk_size;
    cfg.limits.max_message_len = e->cfg.rtmp_max_message_len;
    cfg.cb.on_connect = on_connect;
    cfg.cb.on_publish = on_publish;
    cfg.cb.on_unpublish = on_unpublish;
    cfg.cb.on_metadata = on_metadata;
    cfg.cb.on_video_config = on_video_config;
    cfg.cb.on_audio_config = on_audio_config;
    cfg.cb.on_frame = on_frame;
    cfg.data = c;
    cfg.epoch_ms = (uint32_t)(edge_now_ms(e) - e->started_ms);
    cfg.random = fill_random;
    int rc = media_rtmp_session_new(&cfg, &c->session);
    if (rc < 0) {
        AX_LOG_E("edge rtmp", "peer=%s session: %s", c->peer, ax_strerror(rc));
        refuse(e, &c->tcp);
        return;
    }
    c->edge = e;
    ax_sm_init(&c->sm, conn_states, CONN_STATE_COUNT, CONN_OPEN);
    c->accepted_ms = c->last_read_ms = edge_now_ms(e);
    uv_tcp_nodelay(&c->tcp, 1);
    /* The kernel's keepalive probes find a peer whose network died without a FIN, on top
     * of rtmp-idle-ms (which only sees silence, not death). */
    uv_tcp_keepalive(&c->tcp, 1, 30);
    h2o_linklist_insert(&e->rtmp_conns, &c->link);
    e->m.rtmp_accepted++;
    e->m.rtmp_active++;
    AX_LOG_D("edge rtmp", "peer=%s accepted", c->peer);
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_close(c, uv_strerror(rc), true, false);
        return;
    }
    c->reading = true;
}

int edge_rtmp_start(struct edge *e)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(e->cfg.rtmp.host, e->cfg.rtmp.port, (struct sockaddr_in *)&addr);
    if (rc < 0)
        rc = uv_ip6_addr(e->cfg.rtmp.host, e->cfg.rtmp.port, (struct sockaddr_in6 *)&addr);
    if (rc < 0) {
        AX_LOG_E("edge rtmp", "listen address %s: %s", e->cfg.rtmp.host, uv_strerror(rc));
        return rc;
    }
    uv_tcp_init(e->loop, &e->rtmp_listener);
    e->rtmp_listening = true;
    rc = uv_tcp_bind(&e->rtmp_listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&e->rtmp_listener, 128, on_connection);
    if (rc < 0) {
        AX_LOG_E("edge rtmp", "listen %s:%d: %s", e->cfg.rtmp.host, e->cfg.rtmp.port,
                 uv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&e->rtmp_listener, (struct sockaddr *)&bound, &len);
    e->cfg.rtmp.port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    AX_LOG_I("edge rtmp", "listening on %s:%d", e->cfg.rtmp.host, e->cfg.rtmp.port);
    return 0;
}

void edge_rtmp_stop(struct edge *e)
{
    if (e->rtmp_listening) {
        uv_close((uv_handle_t *)&e->rtmp_listener, NULL);
        e->rtmp_listening = false;
    }
    h2o_linklist_t *node, *next;
    for (node = e->rtmp_conns.next; node != &e->rtmp_conns; node = next) {
        next = node->next;
        struct rtmp_conn *c = H2O_STRUCT_FROM_MEMBER(struct rtmp_conn, link, node);
        if (ax_sm_state(&c->sm) != CONN_OPEN)
            continue;
        if (media_rtmp_session_state(c->session) == MEDIA_RTMP_STATE_PUBLISHING)
            media_rtmp_session_stop(c->session); /* NetStream.Unpublish.Success */
        conn_close(c, "server stopping", false, true);
    }
}

void edge_rtmp_close_all(struct edge *e)
{
    while (!h2o_linklist_is_empty(&e->rtmp_conns)) {
        struct rtmp_conn *c = H2O_STRUCT_FROM_MEMBER(struct rtmp_conn, link, e->rtmp_conns.next);
        if (ax_sm_state(&c->sm) == CONN_OPEN)
            conn_close(c, "server stopped", false, false);
        else
            do_close(c);
    }
}

void edge_rtmp_sweep(struct edge *e, uint64_t now)
{
    h2o_linklist_t *node, *next;
    for (node = e->rtmp_conns.next; node != &e->rtmp_conns; node = next) {
        next = node->next;
        struct rtmp_conn *c = H2O_STRUCT_FROM_MEMBER(struct rtmp_conn, link, node);
        if (ax_sm_state(&c->sm) == CONN_FLUSHING) {
            if (now >= c->flush_deadline_ms)
                do_close(c);
            continue;
        }
        if (ax_sm_state(&c->sm) != CONN_OPEN)
            continue;
        media_rtmp_state_t st = media_rtmp_session_state(c->session);
        if (st != MEDIA_RTMP_STATE_PUBLISHING && !c->published &&
            now - c->accepted_ms >= e->cfg.rtmp_handshake_ms) {
            char reason[96];
            snprintf(reason, sizeof reason, "not publishing %u ms after accept (state %s)",
                     e->cfg.rtmp_handshake_ms, media_rtmp_state_name(st));
            conn_close(c, reason, true, false);
            continue;
        }
        if (c->reading && now - c->last_read_ms >= e->cfg.rtmp_idle_ms) {
            char reason[64];
            snprintf(reason, sizeof reason, "idle for %u ms", e->cfg.rtmp_idle_ms);
            conn_close(c, reason, true, false);
        }
    }
}

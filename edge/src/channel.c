/*
 * Channels: who publishes, the CMAF/LL-HLS stream (media/hls.h), and the HTTP requests
 * held for blocking playlist reloads.
 *
 * A channel's life:
 *
 *   +------+ publish  +------+ unpublish / publisher gone  +-------+ channel-linger-ms  +-------+
 *   | NEW  | -------> | LIVE | --------------------------> | IDLE  | -----------------> | FREED |
 *   +------+          +------+ <-------------------------- +-------+                    +-------+
 *                              publish (same key): the playlists continue, next segment
 *                              carries EXT-X-DISCONTINUITY
 *
 * | state | publisher | HLS stream                     | requests                           |
 * |-------|-----------|--------------------------------|------------------------------------|
 * | NEW   | none      | none                           | 404                                |
 * | LIVE  | one conn  | fed frame by frame             | served; blocking reloads held      |
 * | IDLE  | none      | parts closed (discontinuity()) | served from the ring; holds wait   |
 * |       |           |                                | for the next publish or time out   |
 * | FREED | -         | freed: waiters get ECANCELED   | answered 503 by the waiter cb       |
 *
 * A second publisher while LIVE is refused (AX_ELIVE): the first keeps the channel.
 *
 * URLs: /live/<channel>/index.m3u8 is the master playlist; renditions live under
 * /live/<channel>/<rendition>/ with media/'s names (index.m3u8, init-<g>.mp4, seg-<n>.m4s,
 * part-<n>.<i>.m4s). Rendition names carry the stream's instance id ("video-k3x9q1"), so a
 * URL never names two different byte strings even when a channel is dropped and created
 * again: that is what makes "immutable, max-age=1 year" on parts and segments true.
 *
 * Held requests (struct hold) live in the request's h2o pool, so a viewer that goes away
 * before the answer is cleaned up by the pool's dispose hook; every other path (media
 * ready, timeout, stream freed, edge stopping) answers exactly once and unlinks first.
 */
#include <stdio.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/clock.h"
#include "aethex/common/error.h"
#include "aethex/common/log.h"
#include "aethex/media/hls.h"

#include "edge_internal.h"

#define CC_IMMUTABLE "public, max-age=31536000, immutable"
#define CC_PLAYLIST "public, max-age=1"
#define CC_BLOCKING "public, max-age=6"
#define CC_MASTER "public, max-age=2"
#define CC_MISSING "no-cache"
#define RENDITION_NAME_MAX 32
#define RENDITION_WITHDRAWN "this rendition was withdrawn: use another one from the master playlist"
/* A publish that ended waits this long at most for its transcoder's last frames before the
 * playlists move on (discontinuity); normally the flush takes well under 200 ms. */
#define TRANSCODE_DRAIN_MAX_MS 5000

/* A transcoded rung of the current (or last) publish. */
struct rung {
    media_hls_rendition_t *r; /* owned by hls */
    bool active;              /* false once the worker dropped it */
    char label[16];           /* "480p" */
    uint64_t frames;          /* packaged */
};

struct edge_channel {
    h2o_linklist_t link; /* in edge->channels */
    struct edge *edge;
    struct rtmp_conn *publisher; /* borrowed; NULL when nobody publishes */
    uint32_t publishes;          /* accepted publishes so far */
    uint64_t idle_since_ms;
    media_hls_stream_t *hls;      /* owned; created at the first publish */
    media_hls_rendition_t *video; /* owned by hls; added at the first AVC config */
    media_hls_rendition_t *audio; /* owned by hls; added at the first AAC config */
    char id[16];                  /* stream instance id used in rendition names */
    bool media_error_logged;      /* one log line per publish for refused media */
    /* Transcoding (transcode.c runs the worker). */
    struct edge_transcode *tc; /* owned: the worker of this publish; NULL when none */
    bool tc_decided;           /* admission decided for this publish */
    bool tc_pending;           /* started, rungs not known yet: masters wait */
    bool tc_draining;          /* publish ended: discontinuity waits for on_done */
    uint64_t tc_drain_since_ms;
    uint8_t *tc_src; /* owned: the source avcC the worker was started with */
    size_t tc_src_len;
    bool tc_admitted; /* admitted; the worker starts at the first keyframe */
    media_transcode_rung_t tc_sel[MEDIA_TRANSCODE_MAX_RUNGS];
    size_t tc_nsel;
    unsigned nrungs;
    struct rung rung[MEDIA_TRANSCODE_MAX_RUNGS];
    h2o_linklist_t starting; /* struct hold: masters asked before any rendition */
    uint64_t http_requests;
    uint64_t http_bytes;
    char name[EDGE_CHANNEL_MAX + 1];
};

enum hold_kind { HOLD_MASTER, HOLD_PLAYLIST, HOLD_RESOURCE };

struct hold {
    media_hls_waiter_t w; /* first: media/ calls back with &w */
    struct edge *edge;
    h2o_req_t *req;
    struct edge_channel *ch;
    media_hls_rendition_t *r;
    enum hold_kind kind;
    media_hls_resource_t res;
    media_hls_skip_t skip;
    bool blocking; /* had _HLS_msn: cacheable a little longer */
    bool await_first;        /* playlist: waiting for the rendition's first segment */
    media_hls_params_t want; /* ... then served as asked */
    bool active;   /* queued, timer linked, in edge->holds */
    h2o_timeout_entry_t timeout;
    h2o_linklist_t link;   /* in edge->holds */
    h2o_linklist_t chlink; /* in ch->starting: a master waiting for the first rendition */
};

static void channel_discontinuity(struct edge_channel *ch);
static void transcode_orphan(struct edge_channel *ch);
static bool transcode_admit(struct edge_channel *ch, const media_avc_config_t *cfg);
static void wake_starting(struct edge_channel *ch);

static uint64_t channel_hold_ms(const edge_config_t *c, const media_hls_config_t *h)
{
    if (c->hold_timeout_ms)
        return c->hold_timeout_ms;
    uint32_t target_s = h->target_duration_s;
    if (target_s == 0)
        target_s = (3 * h->segment_target_ms + 1999) / 2000; /* ceil(1.5 * target) */
    return 3ull * target_s * 1000; /* the spec suggests answering 503 after 3 targets */
}

static void hls_config(const edge_config_t *c, media_hls_config_t *h)
{
    media_hls_config_default(h);
    h->segment_target_ms = c->segment_ms;
    h->part_target_ms = c->part_ms < c->segment_ms ? c->part_ms : c->segment_ms;
    h->window_segments = c->window_segments < 3 ? 3 : c->window_segments;
    h->retain_segments = c->retain_segments;
}

int edge_channel_start(struct edge *e)
{
    media_hls_config_t h;
    hls_config(&e->cfg, &h);
    h2o_linklist_init_anchor(&e->holds);
    h2o_timeout_init(e->loop, &e->hold_timeout, channel_hold_ms(&e->cfg, &h));
    e->hold_timeout_ready = true;
    AX_LOG_D("edge channel", "blocking reload hold timeout %llu ms",
             (unsigned long long)channel_hold_ms(&e->cfg, &h));
    return 0;
}

const char *edge_channel_name(const struct edge_channel *ch)
{
    return ch->name;
}

struct edge_channel *edge_channel_find(struct edge *e, ax_slice_t name, bool create)
{
    if (!edge_channel_name_valid(name))
        return NULL;
    for (h2o_linklist_t *n = e->channels.next; n != &e->channels; n = n->next) {
        struct edge_channel *ch = H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, n);
        if (ax_slice_eq_cstr(name, ch->name))
            return ch;
    }
    if (!create || e->nchannels >= e->cfg.max_channels)
        return NULL;
    struct edge_channel *ch = ax_xcalloc(1, sizeof *ch);
    ch->edge = e;
    memcpy(ch->name, name.base, name.len);
    ch->idle_since_ms = edge_now_ms(e);
    h2o_linklist_init_anchor(&ch->starting);
    h2o_linklist_insert(&e->channels, &ch->link);
    e->nchannels++;
    AX_LOG_D("edge channel", "channel=%s created", ch->name);
    return ch;
}

static void make_id(char *out, size_t size)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    static uint64_t seq;
    uint64_t v = ax_clock_wall_ms(ax_clock_system()) * 16 + (seq++ & 15);
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = digits[v % 36];
        v /= 36;
    } while (v && n < sizeof tmp);
    size_t i = 0;
    for (; i < n && i + 1 < size; i++)
        out[i] = tmp[n - 1 - i];
    out[i] = '\0';
}

int edge_channel_publish_begin(struct edge_channel *ch, struct rtmp_conn *conn)
{
    struct edge *e = ch->edge;
    if (ch->publisher) {
        /* An encoder that reconnects after a network cut often comes back before the edge
         * has noticed the old connection is dead (no FIN ever arrived). A publisher that
         * has sent nothing for publisher-takeover-ms is that ghost: the new one replaces it.
         * A publisher that is still sending keeps the channel. */
        uint64_t idle = edge_rtmp_conn_idle_ms(ch->publisher, edge_now_ms(e));
        if (e->cfg.publisher_takeover_ms == 0 || idle < e->cfg.publisher_takeover_ms)
            return AX_ELIVE;
        AX_LOG_W("edge channel", "channel=%s stale publisher (silent %llu ms) replaced", ch->name,
                 (unsigned long long)idle);
        edge_rtmp_conn_kick(ch->publisher, "replaced by a new publisher (was silent)");
        if (ch->publisher)
            return AX_ELIVE;
    }
    if (!ch->hls) {
        media_hls_config_t h;
        hls_config(&e->cfg, &h);
        int rc = media_hls_stream_new(&h, &ch->hls);
        if (rc < 0) {
            AX_LOG_E("edge channel", "channel=%s hls stream: %s", ch->name, ax_strerror(rc));
            return rc;
        }
        make_id(ch->id, sizeof ch->id);
        ch->video = ch->audio = NULL;
    } else {
        AX_LOG_I("edge channel",
                 "channel=%s publisher reconnected: playlists continue after a "
                 "discontinuity",
                 ch->name);
    }
    if (ch->tc) {
        /* The last publish's worker is still flushing: its frames would land in the new
         * timeline. Let it finish unheard, and close the old timeline now. */
        transcode_orphan(ch);
        channel_discontinuity(ch);
    }
    ch->tc_decided = false;
    ch->publisher = conn;
    ch->publishes++;
    ch->media_error_logged = false;
    return 0;
}

void edge_channel_publish_end(struct edge_channel *ch, struct rtmp_conn *conn)
{
    if (ch->publisher != conn)
        return;
    ch->publisher = NULL;
    ch->idle_since_ms = edge_now_ms(ch->edge);
    if (ch->tc) {
        /* The rungs still owe the frames in the worker's queue and encoders: the timeline
         * closes once they are packaged (on_tc_done), so every rendition ends at the same
         * frame and the next publish's segments keep the same numbers everywhere. */
        ch->tc_pending = false;
        wake_starting(ch);
        edge_transcode_finish(ch->tc);
        ch->tc_draining = true;
        ch->tc_drain_since_ms = edge_now_ms(ch->edge);
        return;
    }
    channel_discontinuity(ch);
}

static void channel_discontinuity(struct edge_channel *ch)
{
    /* Close the open part and segment so that everything received is served, and start a
     * new timeline for whoever publishes next (EXT-X-DISCONTINUITY). */
    if (ch->hls && media_hls_stream_discontinuity(ch->hls) < 0) {
        AX_LOG_E("edge channel", "channel=%s discontinuity: out of memory; dropping the stream",
                 ch->name);
        media_hls_stream_free(ch->hls);
        ch->hls = NULL;
        ch->video = ch->audio = NULL;
        ch->nrungs = 0;
    }
}

static void serve_master(struct edge *e, struct edge_channel *ch, h2o_req_t *req, struct hold *h);
static void hold_deactivate(struct hold *h);

/* The first rendition exists: the masters that waited for it now wait for its first part. */
static void wake_starting(struct edge_channel *ch)
{
    if (ch->tc_pending)
        return; /* on_tc_ready (or failed) wakes them */
    while (!h2o_linklist_is_empty(&ch->starting)) {
        struct hold *h = H2O_STRUCT_FROM_MEMBER(struct hold, chlink, ch->starting.next);
        hold_deactivate(h);
        serve_master(ch->edge, ch, h->req, NULL);
    }
}

static void media_error(struct edge_channel *ch, const char *what, int rc)
{
    ch->edge->m.media_errors++;
    if (ch->media_error_logged)
        return;
    ch->media_error_logged = true;
    AX_LOG_W("edge channel",
             "channel=%s %s refused: %s (further errors of this publish are "
             "only counted)",
             ch->name, what, ax_strerror(rc));
}

static media_hls_rendition_t *add_rendition(struct edge_channel *ch, media_track_t track)
{
    char name[RENDITION_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s-%s", track == MEDIA_TRACK_VIDEO ? "video" : "audio", ch->id);
    media_hls_rendition_config_t rc = {.name = name, .track = track, .bandwidth_hint = 0};
    media_hls_rendition_t *r = NULL;
    int err = media_hls_stream_add_rendition(ch->hls, &rc, &r);
    if (err < 0) {
        media_error(ch, "rendition", err);
        return NULL;
    }
    return r;
}

/* --- transcoding ------------------------------------------------------------------------ */

/* Stops listening to the channel's worker: it flushes and is closed when done. */
static void transcode_orphan(struct edge_channel *ch)
{
    if (!ch->tc)
        return;
    edge_transcode_finish(ch->tc);
    edge_transcode_set_data(ch->tc, NULL);
    ch->tc = NULL;
    ch->tc_pending = ch->tc_draining = false;
}

static void transcode_close(struct edge_channel *ch)
{
    if (!ch->tc)
        return;
    edge_transcode_close(ch->tc);
    ch->tc = NULL;
    ch->tc_pending = false;
}

/* Withdraws rung `i`'s rendition: players on it get a 404 for its playlist and switch to
 * another rendition; what it produced stays fetchable until the next publish. */
static void rendition_withdraw(struct edge_channel *ch, media_hls_rendition_t *r, const char *why)
{
    if (!r || media_hls_rendition_ended(r))
        return;
    media_hls_rendition_end(r);
    AX_LOG_I("edge transcode", "channel=%s rendition %s withdrawn (%s)", ch->name,
             media_hls_rendition_name(r), why);
}

static void rung_end(struct edge_channel *ch, unsigned i, const char *why)
{
    ch->rung[i].active = false;
    rendition_withdraw(ch, ch->rung[i].r, why);
}

static void rungs_end(struct edge_channel *ch, const char *why)
{
    for (unsigned i = 0; i < ch->nrungs; i++)
        rung_end(ch, i, why);
}

/* A new publish: renditions withdrawn during an earlier one are forgotten (their viewers have
 * long moved on), which frees their memory and their slots. */
static void rungs_forget_ended(struct edge_channel *ch)
{
    if (!ch->hls)
        return;
    for (size_t i = media_hls_stream_rendition_count(ch->hls); i-- > 0;) {
        media_hls_rendition_t *r = media_hls_stream_rendition_at(ch->hls, i);
        if (!media_hls_rendition_ended(r))
            continue;
        for (unsigned k = 0; k < ch->nrungs; k++)
            if (ch->rung[k].r == r)
                ch->rung[k].r = NULL;
        media_hls_stream_remove_rendition(ch->hls, r);
    }
}

static void on_tc_ready(struct edge_transcode *t, const edge_transcode_rung_t *rungs, unsigned n)
{
    struct edge_channel *ch = edge_transcode_data(t);
    if (!ch)
        return;
    ch->tc_pending = false;
    if (!ch->hls) {
        wake_starting(ch);
        return;
    }
    char desc[160] = "";
    size_t off = 0;
    /* The last publish's rungs. A publisher that comes back with the same ladder continues
     * the same renditions (matched by label); the rest are withdrawn below. A new rendition
     * gets a name never used in this stream (the publish number after the first publish:
     * a withdrawn rendition's URLs must not come back with other bytes behind them), and
     * media/ numbers its segments like the source's. */
    struct rung old[MEDIA_TRANSCODE_MAX_RUNGS];
    unsigned nold = ch->nrungs;
    memcpy(old, ch->rung, sizeof old);
    ch->nrungs = 0;
    for (unsigned i = 0; i < n && i < MEDIA_TRANSCODE_MAX_RUNGS; i++) {
        struct rung *g = &ch->rung[i];
        memset(g, 0, sizeof *g);
        snprintf(g->label, sizeof g->label, "%up", rungs[i].height);
        for (unsigned k = 0; k < nold && !g->r; k++)
            if (old[k].r && !media_hls_rendition_ended(old[k].r) &&
                strcmp(old[k].label, g->label) == 0) {
                g->r = old[k].r;
                old[k].r = NULL;
            }
        if (!g->r) {
            /* "4096p" at most, a 15-character id, a 10-digit count: 32 characters. */
            char name[RENDITION_NAME_MAX + 1];
            if (ch->publishes > 1)
                snprintf(name, sizeof name, "%.5s-%.15s-%u", g->label, ch->id, ch->publishes);
            else
                snprintf(name, sizeof name, "%.5s-%.15s", g->label, ch->id);
            media_hls_rendition_config_t rc = {
                .name = name, .track = MEDIA_TRACK_VIDEO, .bandwidth_hint = rungs[i].kbps * 1000};
            int err = media_hls_stream_add_rendition(ch->hls, &rc, &g->r);
            if (err < 0) {
                media_error(ch, "rung rendition", err);
                g->r = NULL;
            }
        }
        if (g->r) {
            int err = media_hls_rendition_set_video_config(g->r, &rungs[i].avc);
            if (err < 0) {
                media_error(ch, "rung video config", err);
                media_hls_rendition_end(g->r);
                g->r = NULL;
            }
        }
        g->active = g->r != NULL;
        ch->nrungs = i + 1;
        if (off < sizeof desc)
            off += (size_t)snprintf(desc + off, sizeof desc - off, "%s%ux%u %uk", i ? ", " : "",
                                    rungs[i].width, rungs[i].height, rungs[i].kbps);
    }
    for (unsigned k = 0; k < nold; k++)
        rendition_withdraw(ch, old[k].r, "not in this ladder");
    AX_LOG_I("edge transcode", "channel=%s transcoding: %s", ch->name, desc);
    ch->tc_pending = false;
    wake_starting(ch);
}

static void on_tc_frame(struct edge_transcode *t, unsigned rung, const media_frame_t *f)
{
    struct edge_channel *ch = edge_transcode_data(t);
    if (!ch || rung >= ch->nrungs || !ch->rung[rung].r || !ch->hls)
        return;
    struct rung *g = &ch->rung[rung];
    int rc = media_hls_rendition_push(g->r, f, ax_clock_wall_ms(ax_clock_system()));
    if (rc < 0) {
        media_error(ch, "rung frame", rc);
        return;
    }
    g->frames++;
    ch->edge->m.transcode_frames++;
}

static void on_tc_dropped(struct edge_transcode *t, unsigned rung)
{
    struct edge_channel *ch = edge_transcode_data(t);
    if (!ch || rung >= ch->nrungs)
        return;
    rung_end(ch, rung, "the transcoder fell behind real time");
}

static void on_tc_failed(struct edge_transcode *t)
{
    struct edge_channel *ch = edge_transcode_data(t);
    if (!ch) {
        edge_transcode_close(t);
        return;
    }
    bool draining = ch->tc_draining;
    transcode_close(ch);
    ch->tc_draining = false;
    rungs_end(ch, "the transcoder failed");
    wake_starting(ch);
    if (draining)
        channel_discontinuity(ch);
}

static void on_tc_done(struct edge_transcode *t)
{
    struct edge_channel *ch = edge_transcode_data(t);
    if (!ch) {
        edge_transcode_close(t); /* an orphan: nobody listens */
        return;
    }
    bool draining = ch->tc_draining;
    transcode_close(ch);
    ch->tc_draining = false;
    if (draining)
        channel_discontinuity(ch);
}

static const edge_transcode_cbs_t tc_cbs = {
    .on_ready = on_tc_ready,
    .on_frame = on_tc_frame,
    .on_dropped = on_tc_dropped,
    .on_failed = on_tc_failed,
    .on_done = on_tc_done,
};

/*
 * The source's video config arrived. The first one of a publish decides: transcoding on,
 * rungs below the source, and admission (--max-transcodes, and no worker fell behind in
 * the last EDGE_TRANSCODE_OVERLOAD_MS). A refused stream is served source-only and the
 * streams already transcoding keep their ladders. A later, different config (the encoder
 * changed resolution) stops this publish's transcode. Rungs of the last publish that this
 * one does not continue are withdrawn (rung_end); those withdrawn earlier are forgotten.
 */
static void transcode_config(struct edge_channel *ch, const media_avc_config_t *cfg)
{
    if (ch->tc_decided) {
        if (ch->tc && (cfg->record.len != ch->tc_src_len ||
                       memcmp(cfg->record.base, ch->tc_src, ch->tc_src_len) != 0)) {
            AX_LOG_W("edge transcode",
                     "channel=%s source config changed: transcoding stopped for this publish",
                     ch->name);
            transcode_orphan(ch);
            rungs_end(ch, "the source changed resolution or codec settings");
        }
        return;
    }
    ch->tc_decided = true;
    rungs_forget_ended(ch);
    if (!transcode_admit(ch, cfg))
        rungs_end(ch, "this publish is not transcoded");
}

/* Starts this publish's transcoder when the edge transcodes, the source has rungs below it
 * and the host has room; true when it started. */
static bool transcode_admit(struct edge_channel *ch, const media_avc_config_t *cfg)
{
    struct edge *e = ch->edge;
    if (!e->cfg.transcode || e->cfg.nladder == 0)
        return false;
    media_transcode_rung_t want[EDGE_LADDER_MAX], sel[MEDIA_TRANSCODE_MAX_RUNGS];
    memset(want, 0, sizeof want);
    for (uint32_t i = 0; i < e->cfg.nladder; i++) {
        want[i].width = e->cfg.ladder[i].width;
        want[i].height = e->cfg.ladder[i].height;
        want[i].bitrate_kbps = e->cfg.ladder[i].kbps;
        snprintf(want[i].preset, sizeof want[i].preset, "%s", e->cfg.x264_preset);
    }
    int n = media_transcode_ladder_select(cfg->width, cfg->height, want, e->cfg.nladder, sel);
    if (n < 0) {
        AX_LOG_E("edge transcode", "channel=%s ladder refused for a %ux%u source: %s; source only",
                 ch->name, cfg->width, cfg->height, ax_strerror(n));
        return false;
    }
    if (n == 0) {
        AX_LOG_I("edge transcode", "channel=%s source %ux%u: no rung below it, source only",
                 ch->name, cfg->width, cfg->height);
        return false;
    }
    unsigned cap = e->cfg.max_transcodes ? e->cfg.max_transcodes : uv_available_parallelism();
    size_t running = edge_transcode_count(e);
    uint64_t now = edge_now_ms(e);
    if (running >= cap) {
        e->m.transcodes_refused++;
        AX_LOG_W("edge transcode",
                 "channel=%s transcode refused: %zu of %u running (max-transcodes); served "
                 "source-only",
                 ch->name, running, cap);
        return false;
    }
    if (e->transcode_last_drop_ms && now - e->transcode_last_drop_ms < EDGE_TRANSCODE_OVERLOAD_MS) {
        e->m.transcodes_refused++;
        AX_LOG_W("edge transcode",
                 "channel=%s transcode refused: a worker fell behind %llu ms ago (out of CPU); "
                 "served source-only",
                 ch->name, (unsigned long long)(now - e->transcode_last_drop_ms));
        return false;
    }
    if (edge_transcode_start(e, ch->name, cfg, sel, (size_t)n, &tc_cbs, ch, &ch->tc) < 0) {
        ch->tc = NULL;
        return false;
    }
    e->m.transcodes_started++;
    ch->tc_pending = true;
    ax_free(ch->tc_src);
    ch->tc_src = ax_xmalloc(cfg->record.len ? cfg->record.len : 1);
    memcpy(ch->tc_src, cfg->record.base, cfg->record.len);
    ch->tc_src_len = cfg->record.len;
    return true;
}

void edge_channel_on_video_config(struct edge_channel *ch, const media_avc_config_t *cfg)
{
    if (!ch->hls)
        return;
    if (!ch->video && !(ch->video = add_rendition(ch, MEDIA_TRACK_VIDEO)))
        return;
    int rc = media_hls_rendition_set_video_config(ch->video, cfg);
    if (rc < 0)
        media_error(ch, "video config", rc);
    else
        AX_LOG_I("edge channel", "channel=%s video %ux%u %s", ch->name, cfg->width, cfg->height,
                 media_hls_rendition_codecs(ch->video));
    if (rc == 0)
        transcode_config(ch, cfg);
    wake_starting(ch);
}

void edge_channel_on_audio_config(struct edge_channel *ch, const media_aac_config_t *cfg)
{
    if (!ch->hls)
        return;
    if (!ch->audio && !(ch->audio = add_rendition(ch, MEDIA_TRACK_AUDIO)))
        return;
    int rc = media_hls_rendition_set_audio_config(ch->audio, cfg);
    wake_starting(ch);
    if (rc < 0)
        media_error(ch, "audio config", rc);
    else
        AX_LOG_I("edge channel", "channel=%s audio %u Hz %u ch %s", ch->name, cfg->sample_rate,
                 cfg->channels, media_hls_rendition_codecs(ch->audio));
}

void edge_channel_on_frame(struct edge_channel *ch, const media_frame_t *f)
{
    media_hls_rendition_t *r = f->track == MEDIA_TRACK_VIDEO ? ch->video : ch->audio;
    if (!r)
        return; /* no codec config yet: nothing can be packaged */
    int rc = media_hls_rendition_push(r, f, ax_clock_wall_ms(ax_clock_system()));
    if (rc < 0)
        media_error(ch, f->track == MEDIA_TRACK_VIDEO ? "video frame" : "audio frame", rc);
    /* After the source rendition: transcoding never delays it. */
    if (ch->tc && f->track == MEDIA_TRACK_VIDEO && edge_transcode_push(ch->tc, f) < 0)
        ch->edge->m.transcode_frames_lost++;
}

/* --- serving ---------------------------------------------------------------------------- */

static void unref_part(void *p)
{
    media_part_unref(p);
}

/* Sends `part` (a reference the caller owns, taken here): its pieces go to h2o as they are,
 * and the reference is dropped when h2o is done with the request. */
static void send_part(struct edge_channel *ch, h2o_req_t *req, media_part_t *part,
                      const char *content_type, const char *cache_control)
{
    size_t n = media_part_iov_count(part);
    h2o_iovec_t *bufs = h2o_mem_alloc_pool(&req->pool, (n ? n : 1) * sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        ax_slice_t s = media_part_iov(part, i);
        bufs[i] = h2o_iovec_init(s.base, s.len);
    }
    edge_http_on_done(req, unref_part, part);
    ch->http_requests++;
    ch->http_bytes += media_part_size(part);
    edge_http_send(ch->edge, req, 200, content_type, cache_control, bufs, n);
}

static void hold_deactivate(struct hold *h)
{
    if (!h->active)
        return;
    h->active = false;
    media_hls_waiter_cancel(&h->w);
    h2o_timeout_unlink(&h->timeout);
    h2o_linklist_unlink(&h->link);
    if (h2o_linklist_is_linked(&h->chlink))
        h2o_linklist_unlink(&h->chlink);
    h->edge->m.holds_active--;
}

static void hold_answer_error(struct hold *h, int status, const char *reason)
{
    hold_deactivate(h);
    edge_http_send_error(h->edge, h->req, status, reason, "no-store");
}

static void on_hold_dispose(void *p)
{
    /* The request is gone (viewer hung up, connection closed) before we answered. */
    hold_deactivate(p);
}

static void on_hold_timeout(h2o_timeout_entry_t *entry)
{
    struct hold *h = H2O_STRUCT_FROM_MEMBER(struct hold, timeout, entry);
    h->edge->m.holds_timed_out++;
    if (h->kind == HOLD_PLAYLIST && h->await_first) {
        /* The first segment takes longer than the hold timeout (a GOP longer than it):
         * the playlist as it is (parts only) is better than nothing. */
        media_part_t *part = NULL;
        hold_deactivate(h);
        if (media_hls_rendition_playlist(h->r, h->skip, &part) == 0) {
            send_part(h->ch, h->req, part,
                      media_hls_rendition_content_type(h->r, MEDIA_HLS_RES_PLAYLIST), CC_PLAYLIST);
            return;
        }
        edge_http_send_error(h->edge, h->req, 503, "the stream is starting", "no-store");
        return;
    }
    AX_LOG_D("edge http", "channel=%s blocking request timed out", h->ch->name);
    hold_answer_error(h, 503, "the requested media did not appear in time");
}

static void serve_master(struct edge *e, struct edge_channel *ch, h2o_req_t *req, struct hold *h);
static void serve_playlist(struct edge *e, struct edge_channel *ch, h2o_req_t *req,
                           media_hls_rendition_t *r, const media_hls_params_t *p, struct hold *h);
static void serve_resource(struct edge *e, struct edge_channel *ch, h2o_req_t *req,
                           media_hls_rendition_t *r, const media_hls_resource_t *res,
                           struct hold *h);

static void on_hold_ready(media_hls_waiter_t *w, int status)
{
    struct hold *h = (struct hold *)w;
    h->active = false; /* the waiter already left media/'s queue */
    h2o_timeout_unlink(&h->timeout);
    h2o_linklist_unlink(&h->link);
    h->edge->m.holds_active--;
    if (status == AX_ECANCELED) {
        edge_http_send_error(h->edge, h->req, 503, "stream closed", "no-store");
        return;
    }
    if (status < 0) {
        edge_http_send_error(h->edge, h->req, 404,
                             h->kind == HOLD_PLAYLIST ? RENDITION_WITHDRAWN
                                                      : "this part will never exist",
                             CC_MISSING);
        return;
    }
    h->edge->m.holds_answered++;
    if (h->kind == HOLD_PLAYLIST && h->await_first) {
        /* The first segment is there: now the request as it was asked (a blocking one
         * may wait further, under a new hold). */
        h->await_first = false;
        serve_playlist(h->edge, h->ch, h->req, h->r, &h->want, NULL);
        return;
    }
    /* Serve again with the same hold: in the rare case the media is still not there (master
     * waiting for the audio config), the request is queued once more under the same timer
     * budget only if it has not expired. */
    media_hls_params_t p = {.skip = h->skip};
    switch (h->kind) {
    case HOLD_MASTER:
        serve_master(h->edge, h->ch, h->req, h);
        break;
    case HOLD_PLAYLIST:
        serve_playlist(h->edge, h->ch, h->req, h->r, &p, h);
        break;
    case HOLD_RESOURCE:
        serve_resource(h->edge, h->ch, h->req, h->r, &h->res, h);
        break;
    }
}

/* Returns a hold for `req` (reusing `h` when re-queueing), not yet active. */
static struct hold *hold_for(struct edge *e, struct edge_channel *ch, h2o_req_t *req,
                             struct hold *h)
{
    if (h)
        return h;
    h = h2o_mem_alloc_shared(&req->pool, sizeof *h, on_hold_dispose);
    memset(h, 0, sizeof *h);
    h->edge = e;
    h->req = req;
    h->ch = ch;
    h->w.data = h;
    return h;
}

/* `rc` is what wait_* returned for `h`: 1 ready now, 0 queued, < 0 an error to answer. */
static bool hold_queued(struct edge *e, struct hold *h, int rc, bool fresh)
{
    if (rc != 0)
        return false;
    h->active = true;
    e->m.holds_active++;
    h2o_linklist_insert(&e->holds, &h->link);
    if (fresh || !h2o_timeout_is_linked(&h->timeout)) {
        h->timeout.cb = on_hold_timeout;
        h2o_timeout_link(e->loop, &e->hold_timeout, &h->timeout);
    }
    return true;
}

static void serve_master(struct edge *e, struct edge_channel *ch, h2o_req_t *req, struct hold *h)
{
    media_hls_rendition_t *r = ch->video ? ch->video : ch->audio;
    if (!r || ch->tc_pending) {
        /* Publishing, but no codec config yet (the first hundred milliseconds of a
         * publish), or the transcoder's rungs are not known yet (a master without them
         * would hide them for the player's whole session): wait for the first rendition and
         * the rungs, then for the first part. */
        bool fresh = h == NULL;
        h = hold_for(e, ch, req, h);
        h->kind = HOLD_MASTER;
        h2o_linklist_insert(&ch->starting, &h->chlink);
        hold_queued(e, h, 0, fresh);
        return;
    }
    media_part_t *part = NULL;
    int rc = AX_EAGAIN;
    if (!h) {
        /* Until the lead rendition has its first part, the set of renditions may still grow
         * (the audio config usually follows the video one by a few ms): a master rendered
         * now could leave audio out for good. Players get it with the first part. */
        media_hls_rendition_stats_t st;
        media_hls_rendition_stats(r, &st);
        if (st.parts > 0 || st.segments > 0)
            rc = media_hls_stream_master(ch->hls, &part);
    } else {
        rc = media_hls_stream_master(ch->hls, &part);
    }
    if (rc == 0) {
        send_part(ch, req, part, "application/vnd.apple.mpegurl", CC_MASTER);
        return;
    }
    if (rc != AX_EAGAIN || h) {
        /* Already waited once (or out of memory): the publisher sent media without one of
         * the configs it announced. */
        edge_http_send_error(e, req, 503, rc == AX_EAGAIN ? "stream is starting" : ax_strerror(rc),
                             "no-store");
        return;
    }
    h = hold_for(e, ch, req, NULL);
    h->kind = HOLD_MASTER;
    h->r = r;
    media_hls_params_t p = {.has_msn = true, .msn = 0, .has_part = true, .part = 0};
    rc = media_hls_rendition_wait_playlist(r, &h->w, &p, on_hold_ready);
    if (hold_queued(e, h, rc, true))
        return;
    if (rc == 1 && media_hls_stream_master(ch->hls, &part) == 0) {
        send_part(ch, req, part, "application/vnd.apple.mpegurl", CC_MASTER);
        return;
    }
    edge_http_send_error(e, req, 503, "stream is starting", "no-store");
}

static void serve_playlist(struct edge *e, struct edge_channel *ch, h2o_req_t *req,
                           media_hls_rendition_t *r, const media_hls_params_t *p, struct hold *h)
{
    const char *ctype = media_hls_rendition_content_type(r, MEDIA_HLS_RES_PLAYLIST);
    bool fresh = h == NULL;
    media_hls_rendition_stats_t st;
    media_hls_rendition_stats(r, &st);
    if (fresh && st.segments == 0 && !media_hls_rendition_ended(r)) {
        /* A playlist is served once it lists a complete segment: hls.js takes one with parts
         * only for an empty level (LEVEL_EMPTY_ERROR, retried a second later) and ffmpeg's
         * HLS demuxer fails on it. So in a rendition's first seconds (at most one GOP) any
         * playlist request, blocking or not, waits for the first segment. */
        h = hold_for(e, ch, req, NULL);
        h->kind = HOLD_PLAYLIST;
        h->r = r;
        h->skip = p->skip;
        h->await_first = true;
        h->want = *p;
        /* The first segment and the next segment's first part: a player starting there has
         * the part after its start listed, not only hinted. Before the rendition's first part
         * the segment it lands in is not known: wait for that part first (msn 0 part 0 is
         * reached by any part), then come back here. */
        media_hls_params_t first = {.has_msn = true, .has_part = true};
        if (st.last_part >= 0)
            first.msn = st.last_msn + 1;
        int rc = media_hls_rendition_wait_playlist(r, &h->w, &first, on_hold_ready);
        if (hold_queued(e, h, rc, true))
            return;
        if (rc < 0 && rc != AX_ETOOFAR) {
            edge_http_send_error(e, req, rc == AX_ENOENT ? 404 : 503,
                                 rc == AX_ENOENT ? RENDITION_WITHDRAWN : ax_strerror(rc),
                                 rc == AX_ENOENT ? CC_MISSING : "no-store");
            return;
        }
        fresh = false; /* ready now (the stream ended): render it below */
    }
    if (fresh) {
        int rc = 1;
        if (p->has_msn) {
            h = hold_for(e, ch, req, NULL);
            h->kind = HOLD_PLAYLIST;
            h->r = r;
            h->skip = p->skip;
            h->blocking = true;
            rc = media_hls_rendition_wait_playlist(r, &h->w, p, on_hold_ready);
            if (rc == AX_ETOOFAR && p->has_part) {
                /* A part beyond the spec's Advance Part Limit in (or just after) the newest
                 * segment. hls.js asks that when it switches levels and the target's rendition
                 * report says LAST-PART=0: it then takes the part index of the level it
                 * leaves (`parseInt(LAST-PART) || lastPartIndex`), which for a transcoded rung
                 * can be several parts ahead. A 400 makes it give the level up; holding for
                 * the farthest part the limit allows answers it a little early instead, and
                 * it asks again. A far-ahead segment is still a 400. */
                media_hls_rendition_stats_t st;
                media_hls_rendition_stats(r, &st);
                if (st.last_part >= 0 && p->msn <= st.last_msn + 1) {
                    media_hls_params_t near = *p;
                    near.msn = st.last_msn;
                    near.part = (uint32_t)st.last_part + 3;
                    rc = media_hls_rendition_wait_playlist(r, &h->w, &near, on_hold_ready);
                    if (hold_queued(e, h, rc, true))
                        return;
                }
            }
            if (hold_queued(e, h, rc, true))
                return;
        }
        if (rc == AX_ETOOFAR || rc == AX_EINVAL) {
            edge_http_send_error(e, req, 400, "_HLS_msn/_HLS_part too far ahead", "no-store");
            return;
        }
        if (rc == AX_ENOSPC) {
            edge_http_send_error(e, req, 503, "too many blocking requests", "no-store");
            return;
        }
    }
    media_part_t *part = NULL;
    int rc = media_hls_rendition_playlist(r, p->skip, &part);
    if (rc == 0) {
        send_part(ch, req, part, ctype, h && h->blocking ? CC_BLOCKING : CC_PLAYLIST);
        return;
    }
    if (rc == AX_ENOENT) {
        edge_http_send_error(e, req, 404, RENDITION_WITHDRAWN, CC_MISSING);
        return;
    }
    /* AX_EAGAIN here: the stream ended before its first part (a rendition without any waits
     * for its first segment above). */
    edge_http_send_error(e, req, 503, "playlist not available", "no-store");
}

static void serve_resource(struct edge *e, struct edge_channel *ch, h2o_req_t *req,
                           media_hls_rendition_t *r, const media_hls_resource_t *res,
                           struct hold *h)
{
    media_part_t *part = NULL;
    int rc = media_hls_rendition_get(r, res, &part);
    if (rc == AX_EAGAIN) {
        bool fresh = h == NULL;
        h = hold_for(e, ch, req, h);
        h->kind = HOLD_RESOURCE;
        h->r = r;
        h->res = *res;
        rc = media_hls_rendition_wait_resource(r, &h->w, res, on_hold_ready);
        if (hold_queued(e, h, rc, fresh))
            return;
        if (rc == 1)
            rc = media_hls_rendition_get(r, res, &part);
    }
    switch (rc) {
    case 0:
        send_part(ch, req, part, media_hls_rendition_content_type(r, res->kind), CC_IMMUTABLE);
        return;
    case AX_ENOSPC:
        edge_http_send_error(e, req, 503, "too many blocking requests", "no-store");
        return;
    case AX_EGONE:
        edge_http_send_error(e, req, 404, "no longer available", CC_MISSING);
        return;
    default:
        edge_http_send_error(e, req, 404, "not found", CC_MISSING);
        return;
    }
}

int edge_channel_serve(struct edge *e, h2o_req_t *req, ax_slice_t channel, ax_slice_t rest,
                       ax_slice_t query)
{
    if (e->stopping) {
        edge_http_send_error(e, req, 503, "server stopping", "no-store");
        return 0;
    }
    struct edge_channel *ch = edge_channel_find(e, channel, false);
    if (!ch || !ch->hls) {
        /* Not published here: another edge is the origin (relay.c), when we relay. */
        if (edge_relay_enabled(e))
            return edge_relay_serve(e, req, channel, rest, query);
        edge_http_send_error(e, req, 404, "no such stream", CC_MISSING);
        return 0;
    }
    if (ax_slice_eq_cstr(rest, "index.m3u8")) {
        serve_master(e, ch, req, NULL);
        return 0;
    }
    const uint8_t *slash = memchr(rest.base, '/', rest.len);
    if (!slash) {
        edge_http_send_error(e, req, 404, "not found", CC_MISSING);
        return 0;
    }
    ax_slice_t rname = AX_SLICE(rest.base, (size_t)(slash - rest.base));
    ax_slice_t file = AX_SLICE(slash + 1, rest.len - rname.len - 1);
    media_hls_rendition_t *r = media_hls_stream_rendition(ch->hls, rname);
    media_hls_resource_t res;
    if (!r || memchr(file.base, '/', file.len) || media_hls_resource_parse(file, &res) < 0) {
        edge_http_send_error(e, req, 404, "not found", CC_MISSING);
        return 0;
    }
    if (res.kind == MEDIA_HLS_RES_PLAYLIST) {
        media_hls_params_t p;
        int rc = media_hls_params_parse(query, NULL, &p);
        if (rc < 0) {
            edge_http_send_error(e, req, 400, "bad _HLS_ parameters", "no-store");
            return 0;
        }
        serve_playlist(e, ch, req, r, &p, NULL);
        return 0;
    }
    serve_resource(e, ch, req, r, &res, NULL);
    return 0;
}

/* --- life and death --------------------------------------------------------------------- */

static void rendition_totals(const struct edge_channel *ch, uint64_t *segments, uint64_t *parts)
{
    *segments = *parts = 0;
    if (!ch->hls)
        return;
    for (size_t i = 0; i < media_hls_stream_rendition_count(ch->hls); i++) {
        media_hls_rendition_stats_t st;
        media_hls_rendition_stats(media_hls_stream_rendition_at(ch->hls, i), &st);
        *segments += st.segments;
        *parts += st.parts;
    }
}

static void channel_free(struct edge_channel *ch)
{
    struct edge *e = ch->edge;
    uint64_t segs, parts;
    rendition_totals(ch, &segs, &parts);
    e->m.segments += segs; /* keep the counters monotonic past the channel */
    e->m.parts += parts;
    while (!h2o_linklist_is_empty(&ch->starting))
        hold_answer_error(H2O_STRUCT_FROM_MEMBER(struct hold, chlink, ch->starting.next), 503,
                          "stream closed");
    transcode_close(ch); /* joins the worker: it is done or finishing its last frame */
    ax_free(ch->tc_src);
    /* Waiters fire with AX_ECANCELED from inside: their requests get a 503. */
    media_hls_stream_free(ch->hls);
    h2o_linklist_unlink(&ch->link);
    e->nchannels--;
    ax_free(ch);
}

void edge_channel_sweep(struct edge *e, uint64_t now)
{
    h2o_linklist_t *n, *next;
    for (n = e->channels.next; n != &e->channels; n = next) {
        next = n->next;
        struct edge_channel *ch = H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, n);
        if (ch->tc_draining && now - ch->tc_drain_since_ms >= TRANSCODE_DRAIN_MAX_MS) {
            AX_LOG_W("edge transcode", "channel=%s worker still flushing after %u ms: moving on",
                     ch->name, TRANSCODE_DRAIN_MAX_MS);
            transcode_orphan(ch);
            channel_discontinuity(ch);
        }
        if (!ch->publisher && !ch->tc_draining &&
            now - ch->idle_since_ms >= e->cfg.channel_linger_ms) {
            AX_LOG_I("edge channel", "channel=%s dropped after %u ms without a publisher", ch->name,
                     e->cfg.channel_linger_ms);
            channel_free(ch);
        }
    }
}

void edge_channel_release_holds(struct edge *e)
{
    if (!e->hold_timeout_ready)
        return;
    while (!h2o_linklist_is_empty(&e->holds)) {
        struct hold *h = H2O_STRUCT_FROM_MEMBER(struct hold, link, e->holds.next);
        hold_answer_error(h, 503, "server stopping");
    }
}

void edge_channel_free_all(struct edge *e)
{
    edge_channel_release_holds(e);
    while (!h2o_linklist_is_empty(&e->channels))
        channel_free(H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, e->channels.next));
    if (e->hold_timeout_ready) {
        h2o_timeout_dispose(e->loop, &e->hold_timeout);
        e->hold_timeout_ready = false;
    }
}

size_t edge_channel_count_live(const struct edge *e)
{
    size_t n = 0;
    for (h2o_linklist_t *l = e->channels.next; l != &e->channels; l = l->next)
        if (H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, l)->publisher)
            n++;
    return n;
}

size_t edge_channel_metrics(struct edge *e, char *buf, size_t off, size_t cap)
{
    uint64_t segs = e->m.segments, parts = e->m.parts;
    for (h2o_linklist_t *l = e->channels.next; l != &e->channels; l = l->next) {
        uint64_t s, p;
        rendition_totals(H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, l), &s, &p);
        segs += s;
        parts += p;
    }
    off = edge_metrics_append(buf, off, cap,
                              "# HELP aethex_edge_segments_total Segments completed.\n"
                              "# TYPE aethex_edge_segments_total counter\n"
                              "aethex_edge_segments_total %llu\n"
                              "# HELP aethex_edge_parts_total LL-HLS parts completed.\n"
                              "# TYPE aethex_edge_parts_total counter\n"
                              "aethex_edge_parts_total %llu\n",
                              (unsigned long long)segs, (unsigned long long)parts);
    off = edge_metrics_append(buf, off, cap,
                              "# HELP aethex_edge_channel_live 1 while the channel has a "
                              "publisher.\n# TYPE aethex_edge_channel_live gauge\n");
    for (h2o_linklist_t *l = e->channels.next; l != &e->channels; l = l->next) {
        struct edge_channel *ch = H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, l);
        off = edge_metrics_append(buf, off, cap, "aethex_edge_channel_live{channel=\"%s\"} %d\n",
                                  ch->name, ch->publisher ? 1 : 0);
    }
    off =
        edge_metrics_append(buf, off, cap,
                            "# HELP aethex_edge_transcode_rung_frames_total Frames packaged "
                            "per transcoded rung.\n# TYPE aethex_edge_transcode_rung_frames_total "
                            "counter\n");
    for (h2o_linklist_t *l = e->channels.next; l != &e->channels; l = l->next) {
        struct edge_channel *ch = H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, l);
        for (unsigned i = 0; i < ch->nrungs; i++)
            off = edge_metrics_append(
                buf, off, cap,
                "aethex_edge_transcode_rung_frames_total{channel=\"%s\",rung=\"%s\"} %llu\n",
                ch->name, ch->rung[i].label, (unsigned long long)ch->rung[i].frames);
    }
    off = edge_metrics_append(buf, off, cap,
                              "# HELP aethex_edge_transcode_rung_active 1 while the rung is "
                              "transcoded (0: dropped or the publish ended).\n"
                              "# TYPE aethex_edge_transcode_rung_active gauge\n");
    for (h2o_linklist_t *l = e->channels.next; l != &e->channels; l = l->next) {
        struct edge_channel *ch = H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, l);
        for (unsigned i = 0; i < ch->nrungs; i++)
            off = edge_metrics_append(
                buf, off, cap, "aethex_edge_transcode_rung_active{channel=\"%s\",rung=\"%s\"} %d\n",
                ch->name, ch->rung[i].label, ch->tc && ch->rung[i].active ? 1 : 0);
    }
    off = edge_metrics_append(buf, off, cap,
                              "# HELP aethex_edge_channel_requests_total Media requests served "
                              "per channel.\n# TYPE aethex_edge_channel_requests_total counter\n");
    for (h2o_linklist_t *l = e->channels.next; l != &e->channels; l = l->next) {
        struct edge_channel *ch = H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, l);
        off = edge_metrics_append(buf, off, cap,
                                  "aethex_edge_channel_requests_total{channel=\"%s\"} %llu\n",
                                  ch->name, (unsigned long long)ch->http_requests);
    }
    off = edge_metrics_append(buf, off, cap,
                              "# HELP aethex_edge_channel_bytes_total Media bytes served per "
                              "channel.\n# TYPE aethex_edge_channel_bytes_total counter\n");
    for (h2o_linklist_t *l = e->channels.next; l != &e->channels; l = l->next) {
        struct edge_channel *ch = H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, l);
        off = edge_metrics_append(buf, off, cap,
                                  "aethex_edge_channel_bytes_total{channel=\"%s\"} %llu\n",
                                  ch->name, (unsigned long long)ch->http_bytes);
    }
    return off;
}

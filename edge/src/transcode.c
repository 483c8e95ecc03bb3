/*
 * One transcoding worker per transcoded stream (docs/edge.md "Transcoding").
 *
 *   loop thread                                     worker thread (owns the transcoder)
 *   -----------                                     -----------------------------------
 *   edge_transcode_push(frame)  --in queue-->       media_transcoder_new (first), push,
 *     (payload copied once into an item;             on_frame: copy into an out item
 *      bounded: EDGE_TRANSCODE_QUEUE_*)              drop_rung when behind real time
 *   on_async: drain the WHOLE out queue  <--out queue + uv_async_send--
 *     -> ready / frame / dropped / failed / done callbacks (channel.c)
 *
 * Both queues are singly linked lists under one mutex; each side takes the whole list at
 * once (uv_async_send coalesces, so one wakeup may carry many items). The loop never waits
 * on the worker, except in edge_transcode_close(), which cancels and joins: the worker then
 * finishes at most the frame it is encoding.
 *
 * Worker life:
 *
 *   +----------+ transcoder open  +---------+ FLUSH item / cancel  +------+ joined  +-------+
 *   | STARTING | ---------------> | RUNNING | -------------------> | DONE | ------> | CLOSED |
 *   +----------+                  +---------+                      +------+         +-------+
 *        |  open failed (FAILED item)                                 ^
 *        +------------------------------------------------------------+
 *
 * The out queue has no limit of its own: every item in it comes from a frame that passed
 * the in queue's limits, and the loop empties it at every wakeup.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "aethex/common/log.h"

#include "edge_internal.h"

enum item_kind {
    ITEM_FRAME,   /* in: a source video frame; out: a rung's frame */
    ITEM_FLUSH,   /* in: end of stream */
    ITEM_READY,   /* out: the transcoder is open; rungs follow in the item */
    ITEM_DROPPED, /* out: a rung was dropped (worker behind) */
    ITEM_FAILED,  /* out: the transcoder could not open or failed for good */
    ITEM_DONE,    /* out: flushed; the worker has returned or is returning */
};

struct item {
    struct item *next;
    enum item_kind kind;
    int rung;                                               /* out FRAME, DROPPED */
    uint64_t enq_ns;                                        /* in FRAME: uv_hrtime() when queued */
    media_frame_t f;                                        /* FRAME: f.data points into data[] */
    uint32_t nrungs;                                        /* READY */
    edge_transcode_rung_t rungs[MEDIA_TRANSCODE_MAX_RUNGS]; /* READY: avc slices into data[] */
    char msg[AX_ERRMSG_LEN];                                /* FAILED */
    size_t len;
    uint8_t data[];
};

struct item_queue {
    struct item *head, **tail;
    uint32_t frames;
    size_t bytes;
};

struct edge_transcode {
    h2o_linklist_t link; /* in edge->transcodes */
    struct edge *edge;
    edge_transcode_cbs_t cb;
    void *data;
    char channel[EDGE_CHANNEL_MAX + 1];
    /* Worker-only after start. */
    media_transcoder_t *tc;
    media_transcode_rung_t rungs[MEDIA_TRANSCODE_MAX_RUNGS];
    size_t nrungs;
    media_avc_config_t src; /* slices into src_record */
    uint8_t *src_record;    /* owned */
    char x264_params[MEDIA_TRANSCODE_X264_PARAMS_LEN];
    uint64_t last_drop_ns;
    unsigned active_rungs;
    struct item_queue *out_batch; /* worker: items made during one push, posted after it */
    /* Shared, under mu. */
    uv_mutex_t mu;
    uv_cond_t cv;
    struct item_queue in, out;
    bool cancel;
    /* Loop-only. */
    uv_thread_t thread;
    uv_async_t async;
    bool thread_started, joined, closing, done, need_keyframe;
};

/* The transcoder's entry points: the module's (edge_transcode_load) or, in tests, the
 * statically linked ones (edge_transcode_use_ops). One per process, set before any worker. */
static const media_transcode_ops_t *ops;

void edge_transcode_use_ops(const media_transcode_ops_t *o)
{
    ops = o;
}

bool edge_transcode_loaded(void)
{
    return ops != NULL;
}

int edge_transcode_load(const char *path, char *err, size_t errlen)
{
    char def[EDGE_PATH_LEN];
    if (!path || !path[0]) {
        /* Next to the executable: build/edge/ in a build tree, the same directory when
         * installed. */
        ssize_t n = readlink("/proc/self/exe", def, sizeof def - 1);
        if (n <= 0) {
            snprintf(err, errlen, "transcoder module: cannot find the executable's directory");
            return AX_ENOENT;
        }
        def[n] = '\0';
        char *slash = strrchr(def, '/');
        size_t dir = slash ? (size_t)(slash - def) + 1 : 0;
        if (dir + sizeof EDGE_TRANSCODE_MODULE > sizeof def) {
            snprintf(err, errlen, "transcoder module: executable path too long");
            return AX_EMSGSIZE;
        }
        memcpy(def + dir, EDGE_TRANSCODE_MODULE, sizeof EDGE_TRANSCODE_MODULE);
        path = def;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "transcoder module: %s", dlerror());
        return AX_ENOENT;
    }
    const media_transcode_ops_t *o = dlsym(h, MEDIA_TRANSCODE_OPS_SYMBOL);
    if (!o || o->version != MEDIA_TRANSCODE_OPS_VERSION || o->size != sizeof *o) {
        snprintf(err, errlen, "transcoder module %.200s: %s", path,
                 o ? "built for another version of aethex-edge" : "not a transcoder module");
        dlclose(h);
        return AX_EINVAL;
    }
    o->set_log_level((int)ax_log_get_level());
    /* Never unloaded: worker threads and libav* keep pointers into it until exit. */
    ops = o;
    AX_LOG_I("edge transcode", "transcoder module loaded: %s", path);
    return 0;
}

static void queue_init(struct item_queue *q)
{
    q->head = NULL;
    q->tail = &q->head;
    q->frames = 0;
    q->bytes = 0;
}

static void queue_put(struct item_queue *q, struct item *it)
{
    it->next = NULL;
    *q->tail = it;
    q->tail = &it->next;
    if (it->kind == ITEM_FRAME) {
        q->frames++;
        q->bytes += it->len;
    }
}

static void queue_free(struct item_queue *q)
{
    while (q->head) {
        struct item *it = q->head;
        q->head = it->next;
        ax_free(it);
    }
    queue_init(q);
}

static struct item *item_new(enum item_kind kind, size_t len)
{
    struct item *it = ax_xmalloc(sizeof *it + len);
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->len = len;
    return it;
}

/* --- worker thread ---------------------------------------------------------------------- */

static void post(struct edge_transcode *t, struct item *it)
{
    uv_mutex_lock(&t->mu);
    queue_put(&t->out, it);
    uv_mutex_unlock(&t->mu);
    uv_async_send(&t->async);
}

static void on_rung_frame(media_transcoder_t *tc, unsigned rung, const media_frame_t *f)
{
    struct edge_transcode *t = ops->transcoder_data(tc);
    struct item *it = item_new(ITEM_FRAME, f->data.len);
    it->rung = (int)rung;
    it->f = *f;
    memcpy(it->data, f->data.base, f->data.len);
    it->f.data = AX_SLICE(it->data, f->data.len);
    /* Batched: one lock and one wakeup per source frame, not per rung frame. */
    queue_put(t->out_batch, it);
}

static void post_failed(struct edge_transcode *t, const char *fmt, const char *why)
{
    struct item *it = item_new(ITEM_FAILED, 0);
    snprintf(it->msg, sizeof it->msg, fmt, why);
    post(t, it);
}

/*
 * Opens the transcoder at the first keyframe. Its composition offset is the source's reorder
 * delay; the rungs must not reorder deeper (x264 veryfast delays 2 frames), or their decode
 * times would start before the source's first frame, which the packager's timeline cannot
 * place: their first segment would be lost and segment numbers would no longer line up. So
 * a source without B-frames gets rungs without, one frame of delay gets one B-frame.
 */
static bool worker_open(struct edge_transcode *t, const media_frame_t *first)
{
    double frame_ms =
        t->src.fps_num && t->src.fps_den ? 1000.0 * t->src.fps_den / t->src.fps_num : 1000.0 / 30;
    double delay = first->cts / frame_ms;
    if (delay < 0.5)
        snprintf(t->x264_params, sizeof t->x264_params, "%s:bframes=0",
                 MEDIA_TRANSCODE_X264_DEFAULT_PARAMS);
    else if (delay < 1.5)
        snprintf(t->x264_params, sizeof t->x264_params, "%s:bframes=1",
                 MEDIA_TRANSCODE_X264_DEFAULT_PARAMS);
    media_transcode_config_t cfg = {
        .source = &t->src,
        .rungs = t->rungs,
        .nrungs = t->nrungs,
        .on_frame = on_rung_frame,
        .data = t,
        .x264_params = t->x264_params[0] ? t->x264_params : NULL,
    };
    char err[AX_ERRMSG_LEN] = "";
    int rc = ops->transcoder_new(&cfg, &t->tc, err);
    if (rc < 0) {
        post_failed(t, "transcoder: %s", err[0] ? err : ax_strerror(rc));
        return false;
    }
    unsigned n = ops->transcoder_rung_count(t->tc);
    size_t bytes = 0;
    for (unsigned i = 0; i < n; i++) {
        media_transcode_rung_info_t info;
        ops->transcoder_rung(t->tc, i, &info);
        bytes += info.avc.record.len;
    }
    struct item *it = item_new(ITEM_READY, bytes);
    it->nrungs = n;
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        media_transcode_rung_info_t info;
        ops->transcoder_rung(t->tc, i, &info);
        edge_transcode_rung_t *r = &it->rungs[i];
        r->width = info.rung.width;
        r->height = info.rung.height;
        r->kbps = info.rung.bitrate_kbps;
        r->avc = info.avc;
        /* Rebase the record and its parameter-set slices onto the item's copy. */
        uint8_t *copy = it->data + off;
        memcpy(copy, info.avc.record.base, info.avc.record.len);
        r->avc.record = AX_SLICE(copy, info.avc.record.len);
        for (unsigned k = 0; k < info.avc.nsps; k++)
            r->avc.sps[k].base = copy + (info.avc.sps[k].base - info.avc.record.base);
        for (unsigned k = 0; k < info.avc.npps; k++)
            r->avc.pps[k].base = copy + (info.avc.pps[k].base - info.avc.record.base);
        off += info.avc.record.len;
    }
    t->active_rungs = n;
    post(t, it);
    return true;
}

/* Behind real time: the frame being taken waited longer than EDGE_TRANSCODE_MAX_LAG_MS, or
 * the queue holds more than EDGE_TRANSCODE_MAX_BACKLOG frames. After a drop the backlog
 * needs time to drain, so the next decision waits EDGE_TRANSCODE_DROP_COOLDOWN_MS. */
static void maybe_drop(struct edge_transcode *t, const struct item *it, uint32_t backlog)
{
    uint64_t now = uv_hrtime();
    uint64_t age_ms = (now - it->enq_ns) / 1000000;
    if (age_ms <= EDGE_TRANSCODE_MAX_LAG_MS && backlog <= EDGE_TRANSCODE_MAX_BACKLOG)
        return;
    if (t->last_drop_ns && now - t->last_drop_ns < EDGE_TRANSCODE_DROP_COOLDOWN_MS * 1000000ull)
        return;
    int rung = ops->transcoder_drop_rung(t->tc);
    if (rung < 0)
        return;
    t->last_drop_ns = now;
    t->active_rungs--;
    struct item *d = item_new(ITEM_DROPPED, 0);
    d->rung = rung;
    snprintf(d->msg, sizeof d->msg, "frame waited %llu ms, %u queued", (unsigned long long)age_ms,
             backlog);
    post(t, d);
}

static void post_batch(struct edge_transcode *t, struct item_queue *batch)
{
    if (!batch->head)
        return;
    uv_mutex_lock(&t->mu);
    *t->out.tail = batch->head;
    t->out.tail = batch->tail;
    uv_mutex_unlock(&t->mu);
    queue_init(batch);
    uv_async_send(&t->async);
}

static void worker_main(void *arg)
{
    struct edge_transcode *t = arg;
    bool open = false, failed = false;
    struct item_queue batch;
    queue_init(&batch);
    t->out_batch = &batch;
    for (;;) {
        uv_mutex_lock(&t->mu);
        while (!t->in.head && !t->cancel)
            uv_cond_wait(&t->cv, &t->mu);
        if (t->cancel) {
            uv_mutex_unlock(&t->mu);
            break;
        }
        struct item *it = t->in.head;
        t->in.head = it->next;
        if (!t->in.head)
            t->in.tail = &t->in.head;
        if (it->kind == ITEM_FRAME) {
            t->in.frames--;
            t->in.bytes -= it->len;
        }
        uint32_t backlog = t->in.frames;
        uv_mutex_unlock(&t->mu);

        if (it->kind == ITEM_FLUSH) {
            ax_free(it);
            if (open && !failed)
                ops->transcoder_flush(t->tc);
            post_batch(t, &batch);
            post(t, item_new(ITEM_DONE, 0));
            break;
        }
        if (!open && !failed && it->kind == ITEM_FRAME && it->f.keyframe) {
            open = worker_open(t, &it->f);
            failed = !open;
        }
        if (open && !failed && t->active_rungs > 0) {
            maybe_drop(t, it, backlog);
            if (t->active_rungs > 0) {
                int rc = ops->transcoder_push(t->tc, &it->f);
                /* Malformed frames are skipped by the transcoder; the rest is fatal. */
                if (rc == AX_ENOMEM || rc == AX_EIO || rc == AX_EBADSTATE) {
                    failed = true;
                    post_batch(t, &batch);
                    post_failed(t, "transcoder: %s", ops->transcoder_errmsg(t->tc));
                }
            }
        }
        ax_free(it);
        post_batch(t, &batch);
    }
    queue_free(&batch);
}

/* --- loop thread ------------------------------------------------------------------------ */

static void on_async(uv_async_t *a)
{
    struct edge_transcode *t = ax_container_of(a, struct edge_transcode, async);
    uv_mutex_lock(&t->mu);
    struct item *list = t->out.head;
    queue_init(&t->out);
    uv_mutex_unlock(&t->mu);
    while (list) {
        struct item *it = list;
        list = it->next;
        if (!t->closing) {
            switch (it->kind) {
            case ITEM_READY:
                t->cb.on_ready(t, it->rungs, it->nrungs);
                break;
            case ITEM_FRAME:
                t->cb.on_frame(t, (unsigned)it->rung, &it->f);
                break;
            case ITEM_DROPPED:
                t->edge->m.transcode_rungs_dropped++;
                t->edge->transcode_last_drop_ms = edge_now_ms(t->edge);
                AX_LOG_W("edge transcode", "channel=%s behind real time (%s): rung %d dropped",
                         t->channel, it->msg, it->rung);
                t->cb.on_dropped(t, (unsigned)it->rung);
                break;
            case ITEM_FAILED:
                AX_LOG_E("edge transcode", "channel=%s %s; serving the source only", t->channel,
                         it->msg);
                t->cb.on_failed(t);
                break;
            case ITEM_DONE:
                t->done = true;
                t->cb.on_done(t);
                break;
            case ITEM_FLUSH:
                break;
            }
        }
        ax_free(it);
    }
}

int edge_transcode_start(struct edge *e, const char *channel, const media_avc_config_t *src,
                         const media_transcode_rung_t *rungs, size_t nrungs,
                         const edge_transcode_cbs_t *cb, void *data, struct edge_transcode **out)
{
    if (!ops) {
        AX_LOG_E("edge transcode", "channel=%s no transcoder loaded", channel);
        return AX_ENOTSUP;
    }
    struct edge_transcode *t = ax_xcalloc(1, sizeof *t);
    t->edge = e;
    t->cb = *cb;
    t->data = data;
    snprintf(t->channel, sizeof t->channel, "%s", channel);
    memcpy(t->rungs, rungs, nrungs * sizeof *rungs);
    t->nrungs = nrungs;
    t->src = *src;
    t->src_record = ax_xmalloc(src->record.len ? src->record.len : 1);
    memcpy(t->src_record, src->record.base, src->record.len);
    t->src.record = AX_SLICE(t->src_record, src->record.len);
    for (unsigned k = 0; k < src->nsps; k++)
        t->src.sps[k].base = t->src_record + (src->sps[k].base - src->record.base);
    for (unsigned k = 0; k < src->npps; k++)
        t->src.pps[k].base = t->src_record + (src->pps[k].base - src->record.base);
    queue_init(&t->in);
    queue_init(&t->out);
    uv_mutex_init(&t->mu);
    uv_cond_init(&t->cv);
    uv_async_init(e->loop, &t->async, on_async);
    h2o_linklist_insert(&e->transcodes, &t->link);
    int rc = uv_thread_create(&t->thread, worker_main, t);
    if (rc != 0) {
        AX_LOG_E("edge transcode", "channel=%s worker thread: %s", channel, uv_strerror(rc));
        edge_transcode_close(t);
        return rc;
    }
    t->thread_started = true;
    *out = t;
    return 0;
}

void *edge_transcode_data(const struct edge_transcode *t)
{
    return t->data;
}

void edge_transcode_set_data(struct edge_transcode *t, void *data)
{
    t->data = data;
}

int edge_transcode_push(struct edge_transcode *t, const media_frame_t *f)
{
    if (t->closing || f->track != MEDIA_TRACK_VIDEO)
        return 0;
    if (t->need_keyframe && !f->keyframe)
        return AX_ENOSPC;
    uv_mutex_lock(&t->mu);
    bool full = t->in.frames >= EDGE_TRANSCODE_QUEUE_FRAMES ||
                t->in.bytes + f->data.len > EDGE_TRANSCODE_QUEUE_BYTES;
    uv_mutex_unlock(&t->mu);
    if (full) {
        /* The decoder cannot use what follows a lost frame: wait for the next keyframe. */
        t->need_keyframe = true;
        return AX_ENOSPC;
    }
    t->need_keyframe = false;
    struct item *it = item_new(ITEM_FRAME, f->data.len);
    it->f = *f;
    memcpy(it->data, f->data.base, f->data.len);
    it->f.data = AX_SLICE(it->data, f->data.len);
    it->enq_ns = uv_hrtime();
    uv_mutex_lock(&t->mu);
    queue_put(&t->in, it);
    uv_cond_signal(&t->cv);
    uv_mutex_unlock(&t->mu);
    return 0;
}

void edge_transcode_finish(struct edge_transcode *t)
{
    if (t->closing)
        return;
    uv_mutex_lock(&t->mu);
    queue_put(&t->in, item_new(ITEM_FLUSH, 0));
    uv_cond_signal(&t->cv);
    uv_mutex_unlock(&t->mu);
}

bool edge_transcode_done(const struct edge_transcode *t)
{
    return t->done;
}

static void on_async_closed(uv_handle_t *h)
{
    struct edge_transcode *t = ax_container_of((uv_async_t *)h, struct edge_transcode, async);
    uv_mutex_destroy(&t->mu);
    uv_cond_destroy(&t->cv);
    ax_free(t->src_record);
    ax_free(t);
}

void edge_transcode_close(struct edge_transcode *t)
{
    if (t->closing)
        return;
    t->closing = true;
    uv_mutex_lock(&t->mu);
    t->cancel = true;
    uv_cond_signal(&t->cv);
    uv_mutex_unlock(&t->mu);
    if (t->thread_started && !t->joined) {
        uv_thread_join(&t->thread);
        t->joined = true;
    }
    if (t->tc)
        ops->transcoder_free(t->tc);
    t->tc = NULL;
    queue_free(&t->in);
    queue_free(&t->out);
    h2o_linklist_unlink(&t->link);
    uv_close((uv_handle_t *)&t->async, on_async_closed);
}

void edge_transcode_close_all(struct edge *e)
{
    while (!h2o_linklist_is_empty(&e->transcodes)) {
        struct edge_transcode *t =
            H2O_STRUCT_FROM_MEMBER(struct edge_transcode, link, e->transcodes.next);
        if (t->cb.on_closing)
            t->cb.on_closing(t);
        edge_transcode_close(t);
    }
}

size_t edge_transcode_count(const struct edge *e)
{
    size_t n = 0;
    for (h2o_linklist_t *l = e->transcodes.next; l != &e->transcodes; l = l->next)
        n++;
    return n;
}

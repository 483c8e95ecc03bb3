/*
 * The packager: streams, renditions, the per-rendition ring of segments and parts, and the
 * waiters of blocking requests. Design, timestamps and cutting rules: docs/media-hls.md.
 *
 * Cutting, in short. A video frame's duration is known when the next video frame arrives, so
 * each video frame F is handled in two steps: F's arrival fixes the previous sample's
 * duration and decides whether F starts a new part (and segment); F's payload is then copied
 * into the open part and F becomes the pending sample. A part is closed when one more frame
 * of the estimated duration (the smaller of the last two intervals) would not fit in the
 * part target; when a frame is later than estimated, the closing sample's duration is clamped
 * so that the part (and the segment) never exceeds its declared target, leaving a gap of a
 * few milliseconds in the decode timeline rather than an over-long part. AAC frames have a
 * fixed length, so audio parts close the moment they are full.
 */
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "hls_internal.h"

#define AAC_FRAME 1024u
#define HLS_AUDIO_EARLY_MS 250
#define VIDEO_DEFAULT_DUR (MEDIA_CMAF_VIDEO_TIMESCALE / 30)

void media_hls_config_default(media_hls_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->segment_target_ms = 2000;
    cfg->target_duration_s = 0;
    cfg->part_target_ms = 500;
    cfg->part_hold_back_ms = 0;
    cfg->window_segments = 12;
    cfg->retain_segments = 2;
    cfg->limits.max_frame_bytes = 4u << 20;
    cfg->limits.max_samples_per_part = 256;
    cfg->limits.max_renditions = 8;
    cfg->limits.max_waiters = 100000;
    cfg->limits.max_query_len = 2048;
}

static int resolve_config(const media_hls_config_t *in, media_hls_config_t *c)
{
    *c = *in;
    if (c->segment_target_ms < 200 || c->segment_target_ms > 30000)
        return AX_EINVAL;
    if (c->part_target_ms < 100 || c->part_target_ms > c->segment_target_ms)
        return AX_EINVAL;
    if (c->target_duration_s == 0)
        c->target_duration_s = (c->segment_target_ms * 3 / 2 + 999) / 1000;
    if (c->target_duration_s > 60 || (uint64_t)c->target_duration_s * 1000 < c->segment_target_ms)
        return AX_EINVAL;
    if (c->part_hold_back_ms == 0)
        c->part_hold_back_ms = 3 * c->part_target_ms;
    if (c->part_hold_back_ms < 3 * c->part_target_ms)
        return AX_EINVAL; /* PART-HOLD-BACK is at least three part targets (LL-HLS 4.4.3.8) */
    if (c->window_segments < 3 || c->window_segments > 1000 || c->retain_segments > 100)
        return AX_EINVAL;
    const media_hls_limits_t *l = &c->limits;
    if (l->max_frame_bytes < 1024 || l->max_frame_bytes > (64u << 20) ||
        l->max_samples_per_part < 8 || l->max_samples_per_part > 4096 || l->max_renditions < 1 ||
        l->max_renditions > HLS_MAX_RENDITIONS || l->max_waiters < 1 || l->max_query_len < 64)
        return AX_EINVAL;
    return 0;
}

int media_hls_stream_new(const media_hls_config_t *cfg, media_hls_stream_t **out)
{
    *out = NULL;
    media_hls_config_t c;
    int rv = resolve_config(cfg, &c);
    if (rv != 0)
        return rv;
    media_hls_stream_t *s = ax_calloc(1, sizeof(*s));
    if (s == NULL)
        return AX_ENOMEM;
    s->cfg = c;
    s->r = ax_calloc(c.limits.max_renditions, sizeof(*s->r));
    if (s->r == NULL) {
        ax_free(s);
        return AX_ENOMEM;
    }
    s->out_base = HLS_TIMELINE_SLACK_MS;
    s->version = 1;
    *out = s;
    return 0;
}

/* --- waiters ------------------------------------------------------------------------- */

static void list_unlink(media_hls_waiter_t **head, media_hls_waiter_t **tail, media_hls_waiter_t *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        *head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else if (tail != NULL)
        *tail = w->prev;
    w->prev = w->next = NULL;
}

static void list_push(media_hls_waiter_t **head, media_hls_waiter_t **tail, media_hls_waiter_t *w)
{
    w->next = NULL;
    w->prev = *tail;
    if (*tail != NULL)
        (*tail)->next = w;
    else
        *head = w;
    *tail = w;
}

/* The waiters list has no tail pointer of its own: new waiters go to the front. */
static void waiters_push(media_hls_rendition_t *r, media_hls_waiter_t *w)
{
    w->prev = NULL;
    w->next = r->waiters;
    if (r->waiters != NULL)
        r->waiters->prev = w;
    r->waiters = w;
}

struct hls_segment *media_hls__segment(const media_hls_rendition_t *r, uint64_t msn)
{
    if (msn < r->first_msn || msn >= r->next_msn)
        return NULL;
    struct hls_segment *g = &r->ring[msn % r->nslots];
    return g->in_use && g->msn == msn ? g : NULL;
}

static struct hls_segment *open_seg(const media_hls_rendition_t *r)
{
    return r->seg_open ? &r->ring[(r->next_msn - 1) % r->nslots] : NULL;
}

bool media_hls__latest_part(const media_hls_rendition_t *r, uint64_t *msn, uint32_t *part)
{
    struct hls_segment *g = open_seg(r);
    if (g != NULL && g->nparts > 0) {
        *msn = g->msn;
        *part = g->nparts - 1;
        return true;
    }
    if (r->any_complete) {
        g = media_hls__segment(r, r->last_complete);
        if (g != NULL && g->nparts > 0) {
            *msn = g->msn;
            *part = g->nparts - 1;
            return true;
        }
    }
    return false;
}

/* 1 ready, 0 keep waiting, < 0 the status to deliver (it never will be). */
static int waiter_state(const media_hls_rendition_t *r, const media_hls_waiter_t *w)
{
    if (!w->exact) {
        if (r->s->ended)
            return 1;
        if (r->ended)
            return AX_ENOENT; /* its playlist is gone (404), not final */
        if (w->part < 0)
            return r->any_complete && r->last_complete >= w->msn ? 1 : 0;
        uint64_t m;
        uint32_t p;
        if (!media_hls__latest_part(r, &m, &p))
            return 0;
        return m > w->msn || (m == w->msn && (int64_t)p >= w->part) ? 1 : 0;
    }
    struct hls_segment *g = media_hls__segment(r, w->msn);
    if (g != NULL) {
        if (w->part < 0 ? g->complete : (uint32_t)w->part < g->nparts)
            return 1;
        if (g->complete)
            return AX_ENOENT;
    } else if (w->msn < r->first_msn) {
        return AX_ENOENT;
    }
    return r->s->ended || r->ended ? AX_ENOENT : 0;
}

/* Fires every waiter whose wait is over; with `all` < 0, every waiter with that status. */
static void fire_ready(media_hls_rendition_t *r, int all)
{
    media_hls_waiter_t *w = r->waiters;
    while (w != NULL) {
        media_hls_waiter_t *next = w->next;
        int st = all < 0 ? all : waiter_state(r, w);
        if (st != 0) {
            list_unlink(&r->waiters, NULL, w);
            w->status = st == 1 ? 0 : st;
            w->where = 2;
            list_push(&r->firing, &r->firing_tail, w);
        }
        w = next;
    }
    /* Callbacks may cancel waiters still on the firing list or queue new ones (which go to
     * r->waiters and wait for the next change), so pop one at a time. */
    while (r->firing != NULL) {
        w = r->firing;
        list_unlink(&r->firing, &r->firing_tail, w);
        w->where = 0;
        w->r = NULL;
        r->nwaiters--;
        w->cb(w, w->status);
    }
}

void media_hls_waiter_cancel(media_hls_waiter_t *w)
{
    if (w == NULL || w->where == 0 || w->r == NULL)
        return;
    media_hls_rendition_t *r = w->r;
    if (w->where == 1)
        list_unlink(&r->waiters, NULL, w);
    else
        list_unlink(&r->firing, &r->firing_tail, w);
    w->where = 0;
    w->r = NULL;
    r->nwaiters--;
}

static void changed(media_hls_rendition_t *r)
{
    r->s->version++;
    if (r->waiters != NULL)
        fire_ready(r, 0);
}

/* --- renditions ----------------------------------------------------------------------- */

static void free_rendition(media_hls_rendition_t *r)
{
    if (r == NULL)
        return;
    if (r->ring != NULL) {
        for (uint32_t i = 0; i < r->nslots; i++) {
            struct hls_segment *g = &r->ring[i];
            for (uint32_t k = 0; k < g->nparts; k++)
                media_part_unref(g->parts[k].bytes);
            media_part_unref(g->whole);
        }
        ax_free(r->ring[0].parts);
    }
    ax_free(r->ring);
    for (uint32_t i = 0; i < r->nslabs; i++)
        ax_free(r->slab[i]);
    for (int i = 0; i < HLS_INIT_GENS; i++)
        media_part_unref(r->init[i]);
    media_part_unref(r->cache[0]);
    media_part_unref(r->cache[1]);
    ax_free(r->samples);
    ax_free(r->config_bytes);
    ax_buf_close(&r->scratch);
    ax_free(r);
}

void media_hls_stream_free(media_hls_stream_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nr; i++)
        fire_ready(s->r[i], AX_ECANCELED);
    for (size_t i = 0; i < s->nr; i++)
        free_rendition(s->r[i]);
    media_part_unref(s->master);
    ax_free(s->r);
    ax_free(s);
}

int media_hls_stream_remove_rendition(media_hls_stream_t *s, media_hls_rendition_t *r)
{
    size_t i = 0;
    while (i < s->nr && s->r[i] != r)
        i++;
    if (i == s->nr)
        return AX_ENOENT;
    if (r == s->lead)
        return AX_EBUSY;
    fire_ready(r, AX_ENOENT);
    for (; i + 1 < s->nr; i++) {
        s->r[i] = s->r[i + 1];
        s->r[i]->index = i;
    }
    s->nr--;
    s->version++;
    free_rendition(r);
    return 0;
}

static bool valid_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > HLS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

int media_hls_stream_add_rendition(media_hls_stream_t *s, const media_hls_rendition_config_t *rc,
                                   media_hls_rendition_t **out)
{
    *out = NULL;
    if (rc->name == NULL || !valid_name(rc->name) ||
        (rc->track != MEDIA_TRACK_VIDEO && rc->track != MEDIA_TRACK_AUDIO))
        return AX_EINVAL;
    if (media_hls_stream_rendition(s, AX_SLICE(rc->name, strlen(rc->name))) != NULL)
        return AX_EEXIST;
    if (s->nr >= s->cfg.limits.max_renditions)
        return AX_ENOSPC;
    const media_hls_config_t *c = &s->cfg;
    media_hls_rendition_t *r = ax_calloc(1, sizeof(*r));
    if (r == NULL)
        return AX_ENOMEM;
    r->s = s;
    memcpy(r->name, rc->name, strlen(rc->name) + 1);
    r->track = rc->track;
    r->bandwidth_hint = rc->bandwidth_hint;
    r->timescale = rc->track == MEDIA_TRACK_VIDEO ? MEDIA_CMAF_VIDEO_TIMESCALE : 48000;
    ax_buf_init(&r->scratch, 128 * 1024);
    /* The window, the retained segments, the one in progress and a spare. */
    r->nslots = c->window_segments + c->retain_segments + 2;
    /* A segment is at most TARGETDURATION long and parts are cut short only at the segment's
     * end, on a full part or on an audio gap; past this many parts the segment is cut. */
    r->max_parts = 2 * ((c->target_duration_s * 1000 + c->part_target_ms - 1) / c->part_target_ms) + 4;
    r->ring = ax_calloc(r->nslots, sizeof(*r->ring));
    r->samples = ax_calloc(c->limits.max_samples_per_part, sizeof(*r->samples));
    struct hls_part_rec *recs = r->ring ? ax_calloc((size_t)r->nslots * r->max_parts, sizeof(*recs)) : NULL;
    if (r->ring == NULL || r->samples == NULL || recs == NULL) {
        ax_free(recs);
        if (r->ring != NULL)
            r->ring[0].parts = NULL;
        free_rendition(r);
        return AX_ENOMEM;
    }
    for (uint32_t i = 0; i < r->nslots; i++)
        r->ring[i].parts = recs + (size_t)i * r->max_parts;
    r->slab_estimate = 64 * 1024;
    r->st.last_part = -1;
    r->index = s->nr;
    s->r[s->nr++] = r;
    if (r->track == MEDIA_TRACK_VIDEO && s->lead == NULL)
        s->lead = r;
    s->version++;
    *out = r;
    return 0;
}

media_hls_rendition_t *media_hls_stream_rendition(const media_hls_stream_t *s, ax_slice_t name)
{
    for (size_t i = 0; i < s->nr; i++)
        if (ax_slice_eq_cstr(name, s->r[i]->name))
            return s->r[i];
    return NULL;
}

size_t media_hls_stream_rendition_count(const media_hls_stream_t *s)
{
    return s->nr;
}

media_hls_rendition_t *media_hls_stream_rendition_at(const media_hls_stream_t *s, size_t i)
{
    return i < s->nr ? s->r[i] : NULL;
}

const char *media_hls_rendition_name(const media_hls_rendition_t *r)
{
    return r->name;
}

media_track_t media_hls_rendition_track(const media_hls_rendition_t *r)
{
    return r->track;
}

const char *media_hls_rendition_codecs(const media_hls_rendition_t *r)
{
    return r->codecs;
}

/* --- ring: segments and parts ---------------------------------------------------------- */

static void evict_oldest(media_hls_rendition_t *r)
{
    struct hls_segment *g = &r->ring[r->first_msn % r->nslots];
    if (g->in_use && g->msn == r->first_msn) {
        for (uint32_t k = 0; k < g->nparts; k++) {
            r->st.ring_bytes -= media_part_size(g->parts[k].bytes);
            media_part_unref(g->parts[k].bytes);
            g->parts[k].bytes = NULL;
        }
        media_part_unref(g->whole);
        g->whole = NULL;
        g->nparts = 0;
        g->in_use = false;
    }
    r->first_msn++;
}

static int64_t ticks_to_ms(uint64_t t, uint32_t ts)
{
    return (int64_t)(t * 1000 / ts);
}

/*
 * A video rendition whose first segment starts after the lead's first one (a transcoded rung
 * added mid-stream, e.g. for a publisher's second session) takes the lead's numbers for it:
 * the lead segment that starts at the same time gives its media sequence number and its
 * discontinuity sequence, so that a number means the same time span in every rendition.
 * Keyframes of a rung are at the source's keyframe times, so the starts are equal.
 */
static void align_with_lead(media_hls_rendition_t *r, uint64_t start)
{
    const media_hls_rendition_t *lead = r->s->lead;
    if (lead == NULL || lead == r || r->track != MEDIA_TRACK_VIDEO || r->next_msn != 0 ||
        lead->timescale != r->timescale)
        return;
    for (uint64_t m = lead->first_msn; m < lead->next_msn; m++) {
        const struct hls_segment *g = media_hls__segment(lead, m);
        uint64_t d = g == NULL ? UINT64_MAX : g->start > start ? g->start - start : start - g->start;
        if (d <= HLS_ALIGN_SLACK_TICKS) {
            r->first_msn = r->next_msn = m;
            r->disc_seq = g->disc_seq;
            r->next_discontinuity = false;
            return;
        }
    }
}

static void open_segment(media_hls_rendition_t *r, uint64_t start)
{
    media_hls_stream_t *s = r->s;
    align_with_lead(r, start);
    if (r->next_msn - r->first_msn == r->nslots)
        evict_oldest(r);
    struct hls_segment *g = &r->ring[r->next_msn % r->nslots];
    struct hls_part_rec *parts = g->parts;
    memset(g, 0, sizeof(*g));
    g->parts = parts;
    g->msn = r->next_msn++;
    g->timescale = r->timescale;
    g->start = start;
    g->pdt_ms = s->anchor_wall_ms + (ticks_to_ms(start, r->timescale) - s->anchor_media_ms);
    g->discontinuity = r->next_discontinuity;
    if (g->discontinuity)
        r->disc_seq++;
    g->disc_seq = r->disc_seq;
    g->init_gen = r->init_gen;
    g->in_use = true;
    r->seg_open = true;
    r->next_discontinuity = false;
    r->config_changed = false;
    if (r == s->lead) {
        struct hls_boundary *b = &s->bnd[s->bseq % HLS_BOUNDARIES];
        b->timeline = s->timeline;
        b->ms = ticks_to_ms(start, r->timescale);
        s->bseq++;
    }
}

static void reset_part(media_hls_rendition_t *r)
{
    for (uint32_t i = 0; i < r->nslabs; i++)
        ax_free(r->slab[i]);
    r->nslabs = 0;
    r->nsamples = 0;
    r->part_payload = 0;
    r->part_open = false;
    r->part_pending = false;
}

/* Seals the open part into a media_part_t and appends it to the open segment. On AX_ENOMEM the
 * part's frames are lost (the next part's tfdt keeps the timeline right). */
static int close_part(media_hls_rendition_t *r)
{
    struct hls_segment *g = open_seg(r);
    if (!r->part_open || r->nsamples == 0 || g == NULL) {
        reset_part(r);
        return 0;
    }
    AX_PRE(!r->part_pending);
    bool styp = g->nparts == 0;
    size_t hsize = media_cmaf__fragment_header_size(r->track, styp, r->nsamples);
    media_part_t *p;
    int rv = media_hls__part_new(1 + r->nslabs, r->nslabs, hsize, &p);
    if (rv != 0) {
        reset_part(r);
        return rv;
    }
    uint64_t dur = 0;
    for (uint32_t i = 0; i < r->nsamples; i++)
        dur += r->samples[i].duration;
    media_cmaf__write_fragment_header(p->inl, r->track, styp, ++r->part_seq, r->part_start,
                                      r->samples, r->nsamples, r->part_payload);
    p->iov[0] = AX_SLICE(p->inl, hsize);
    for (uint32_t i = 0; i < r->nslabs; i++) {
        p->iov[1 + i] = AX_SLICE(r->slab[i], r->slab_len[i]);
        p->own[i] = r->slab[i];
    }
    media_hls__part_seal(p);
    struct hls_part_rec *rec = &g->parts[g->nparts++];
    rec->bytes = p;
    rec->duration = (uint32_t)dur;
    rec->independent = r->part_independent;
    g->duration += dur;
    g->bytes += p->size;
    g->frames += r->nsamples;
    r->slab_estimate = r->part_payload + r->part_payload / 4 + 4096;
    r->nslabs = 0; /* the slabs now belong to the part */
    r->nsamples = 0;
    r->part_payload = 0;
    r->part_open = false;
    r->st.parts++;
    r->st.ring_bytes += p->size;
    changed(r);
    return 0;
}

static void close_segment(media_hls_rendition_t *r)
{
    struct hls_segment *g = open_seg(r);
    if (g == NULL)
        return;
    r->seg_open = false;
    if (g->nparts == 0) {
        /* Nothing survived (an allocation failed): the msn is reused. */
        g->in_use = false;
        r->next_msn--;
        if (g->discontinuity) {
            r->disc_seq--;
            r->next_discontinuity = true;
        }
        return;
    }
    g->complete = true;
    r->any_complete = true;
    r->last_complete = g->msn;
    r->st.segments++;
    changed(r);
}

static void open_part(media_hls_rendition_t *r, uint64_t start, bool independent)
{
    r->part_open = true;
    r->part_start = start;
    r->part_independent = independent;
    r->nsamples = 0;
    r->part_payload = 0;
}

/* True when a frame of `len` bytes cannot join the open part. */
static bool part_full(const media_hls_rendition_t *r, size_t len)
{
    if (r->nsamples >= r->s->cfg.limits.max_samples_per_part)
        return true;
    if (r->nslabs == HLS_MAX_SLABS && r->slab_cap[r->nslabs - 1] - r->slab_len[r->nslabs - 1] < len)
        return true;
    return false;
}

/* The one copy of a frame's payload: into the open part's current slab. */
static int append_payload(media_hls_rendition_t *r, ax_slice_t d)
{
    uint32_t n = r->nslabs;
    if (n == 0 || r->slab_cap[n - 1] - r->slab_len[n - 1] < d.len) {
        AX_PRE(n < HLS_MAX_SLABS);
        size_t cap = d.len > r->slab_estimate ? d.len : r->slab_estimate;
        uint8_t *b = ax_malloc(cap);
        if (b == NULL)
            return AX_ENOMEM;
        r->slab[n] = b;
        r->slab_cap[n] = cap;
        r->slab_len[n] = 0;
        r->nslabs = ++n;
    }
    memcpy(r->slab[n - 1] + r->slab_len[n - 1], d.base, d.len);
    r->slab_len[n - 1] += d.len;
    r->part_payload += d.len;
    return 0;
}

/* Closes the open part and segment, giving a pending video sample `dur` ticks. */
static void flush(media_hls_rendition_t *r)
{
    if (r->part_pending) {
        uint64_t dur = r->last_dur ? r->last_dur : VIDEO_DEFAULT_DUR;
        struct hls_segment *g = open_seg(r);
        uint64_t limit = r->part_start + r->part_target;
        if (g != NULL && g->start + r->td_max < limit)
            limit = g->start + r->td_max;
        if (r->last_dts + dur > limit)
            dur = limit - r->last_dts;
        r->samples[r->nsamples - 1].duration = (uint32_t)dur;
        r->end = r->last_dts + dur;
        r->part_pending = false;
    }
    close_part(r);
    close_segment(r);
    r->started = false;
}

/* --- timeline ------------------------------------------------------------------------- */

static void derive_targets(media_hls_rendition_t *r)
{
    const media_hls_config_t *c = &r->s->cfg;
    r->seg_target = (uint64_t)c->segment_target_ms * r->timescale / 1000;
    r->part_target = (uint64_t)c->part_target_ms * r->timescale / 1000;
    r->td_max = (uint64_t)c->target_duration_s * r->timescale;
}

/* Maps a publisher timestamp onto the stream's output timeline (ms), anchoring the timeline
 * and PROGRAM-DATE-TIME on its first frame. */
static int64_t map_ms(media_hls_stream_t *s, int64_t in_ms, uint64_t wall_ms)
{
    if (!s->mapped) {
        s->mapped = true;
        s->in_base = in_ms;
    }
    int64_t out = in_ms - s->in_base + s->out_base;
    if (!s->anchored) {
        s->anchored = true;
        s->anchor_wall_ms = (int64_t)wall_ms;
        s->anchor_media_ms = out;
    }
    return out;
}

int media_hls_stream_discontinuity(media_hls_stream_t *s)
{
    int64_t max_end = 0;
    for (size_t i = 0; i < s->nr; i++) {
        media_hls_rendition_t *r = s->r[i];
        if (r->ended)
            continue;
        bool had = r->started || r->seg_open;
        flush(r);
        if (had || r->next_msn > 0)
            r->next_discontinuity = true;
        int64_t e = (int64_t)((r->end * 1000 + r->timescale - 1) / r->timescale);
        if (e > max_end)
            max_end = e;
        r->waiting_lead = false;
        r->unled = false;
    }
    s->timeline++;
    s->mapped = false;
    s->anchored = false;
    s->out_base = max_end + HLS_TIMELINE_SLACK_MS;
    s->version++;
    return 0;
}

int media_hls_stream_end(media_hls_stream_t *s)
{
    if (s->ended)
        return 0;
    for (size_t i = 0; i < s->nr; i++)
        flush(s->r[i]);
    s->ended = true;
    s->version++;
    for (size_t i = 0; i < s->nr; i++)
        if (s->r[i]->waiters != NULL)
            fire_ready(s->r[i], 0);
    return 0;
}

int media_hls_rendition_end(media_hls_rendition_t *r)
{
    if (r->ended || r->s->ended)
        return 0;
    flush(r);
    r->ended = true;
    changed(r);
    return 0;
}

bool media_hls_rendition_ended(const media_hls_rendition_t *r)
{
    return r->ended;
}

/* --- configs -------------------------------------------------------------------------- */

static int install_config(media_hls_rendition_t *r, const struct cmaf_track_info *ti,
                          ax_slice_t bytes)
{
    if (r->has_config && bytes.len == r->config_len &&
        memcmp(bytes.base, r->config_bytes, bytes.len) == 0)
        return 0;
    uint8_t *copy = ax_malloc(bytes.len);
    if (copy == NULL)
        return AX_ENOMEM;
    memcpy(copy, bytes.base, bytes.len);
    int rv = media_cmaf__write_init(ti, &r->scratch);
    media_part_t *p = NULL;
    if (rv == 0)
        rv = media_hls__part_new(1, 0, r->scratch.len, &p);
    if (rv != 0) {
        ax_free(copy);
        return rv;
    }
    memcpy(p->inl, r->scratch.base, r->scratch.len);
    p->iov[0] = AX_SLICE(p->inl, r->scratch.len);
    media_hls__part_seal(p);

    bool had = r->has_config;
    if (had && r->track == MEDIA_TRACK_AUDIO && ti->timescale != r->timescale) {
        /* Every timestamp of the open segment is in the old sample rate: close it now. */
        flush(r);
        r->next_discontinuity = true;
    }
    uint32_t gen = r->init_count++;
    media_part_t **slot = &r->init[gen % HLS_INIT_GENS];
    if (*slot != NULL)
        r->st.ring_bytes -= media_part_size(*slot);
    media_part_unref(*slot);
    *slot = p;
    r->st.ring_bytes += p->size;
    r->init_gen = gen;
    ax_free(r->config_bytes);
    r->config_bytes = copy;
    r->config_len = bytes.len;
    if (r->track == MEDIA_TRACK_AUDIO && ti->timescale != r->timescale) {
        r->end = r->end * ti->timescale / r->timescale;
        r->timescale = ti->timescale;
    }
    derive_targets(r);
    r->has_config = true;
    if (had) {
        r->config_changed = true;
        r->next_discontinuity = true;
    }
    r->s->version++;
    return 0;
}

int media_hls_rendition_set_video_config(media_hls_rendition_t *r, const media_avc_config_t *c)
{
    if (r->track != MEDIA_TRACK_VIDEO)
        return AX_EINVAL;
    if (c->nal_length_size != 1 && c->nal_length_size != 2 && c->nal_length_size != 4)
        return AX_EBADDATA;
    if (c->width == 0 || c->height == 0 || c->width > 16384 || c->height > 16384 ||
        c->nsps == 0 || c->npps == 0 || c->record.len < 7)
        return AX_EBADDATA;
    if (c->record.len > 65536)
        return AX_EMSGSIZE;
    struct cmaf_track_info ti = {
        .track = MEDIA_TRACK_VIDEO,
        .timescale = MEDIA_CMAF_VIDEO_TIMESCALE,
        .width = c->width,
        .height = c->height,
        .avcc = c->record,
    };
    int rv = install_config(r, &ti, c->record);
    if (rv != 0)
        return rv;
    r->width = c->width;
    r->height = c->height;
    r->fps_num = c->fps_num;
    r->fps_den = c->fps_den;
    media_cmaf__avc_codec_string(c->profile_idc, c->profile_compat, c->level_idc, r->codecs,
                                 sizeof(r->codecs));
    return 0;
}

int media_hls_rendition_set_audio_config(media_hls_rendition_t *r, const media_aac_config_t *c)
{
    if (r->track != MEDIA_TRACK_AUDIO)
        return AX_EINVAL;
    if (c->sample_rate < 7350 || c->sample_rate > 96000 || c->channels < 1 || c->channels > 7 ||
        c->asc.len < 2 || c->object_type == 0)
        return AX_EBADDATA;
    if (c->asc.len > 64)
        return AX_EMSGSIZE;
    struct cmaf_track_info ti = {
        .track = MEDIA_TRACK_AUDIO,
        .timescale = c->sample_rate,
        .sample_rate = c->sample_rate,
        .channels = c->channels == 7 ? 8 : c->channels,
        .asc = c->asc,
    };
    int rv = install_config(r, &ti, c->asc);
    if (rv != 0)
        return rv;
    r->sample_rate = c->sample_rate;
    r->channels = ti.channels;
    media_cmaf__aac_codec_string(c->object_type, r->codecs, sizeof(r->codecs));
    return 0;
}

/* --- frames --------------------------------------------------------------------------- */

static int drop(media_hls_rendition_t *r)
{
    r->st.frames_dropped++;
    return 0;
}

static int add_sample(media_hls_rendition_t *r, const media_frame_t *f, uint32_t dur, int32_t cto,
                      bool sync)
{
    int rv = append_payload(r, f->data);
    if (rv != 0)
        return rv;
    struct cmaf_sample *sm = &r->samples[r->nsamples++];
    sm->size = (uint32_t)f->data.len;
    sm->duration = dur;
    sm->cto = cto;
    sm->sync = sync;
    r->st.frames_in++;
    r->st.bytes_in += f->data.len;
    return 0;
}

static int push_video(media_hls_rendition_t *r, const media_frame_t *f, uint64_t wall_ms)
{
    if (f->cts < -60000 || f->cts > 60000)
        return drop(r); /* a minute of reordering is no real encoder's */
    int64_t out_ms = map_ms(r->s, f->dts, wall_ms);
    if (out_ms < 0)
        return drop(r);
    /* CMAF wants a video fragment's first sample presented at its decode time: with B-frames
     * the first keyframe has a positive composition offset (the reorder delay). Decode times
     * are shifted later by that delay, taken once per timeline from the first keyframe, and
     * composition offsets lowered by it (signed, trun version 1), so presentation times, and
     * A/V sync, are exactly the source's and each segment's tfdt is its first frame's pts. */
    if (!r->started && f->keyframe && (!r->shift_set || r->timeline != r->s->timeline)) {
        r->cto_shift = f->cts > 0 && f->cts < 10000 ? f->cts * 90 : 0;
        r->timeline = r->s->timeline;
        r->shift_set = true;
    }
    uint64_t dts = (uint64_t)out_ms * 90 + (uint64_t)r->cto_shift;
    int32_t cto = f->cts * 90 - r->cto_shift;
    struct hls_segment *g = open_seg(r);

    if (!r->started || !r->part_pending) {
        if (!f->keyframe || dts < r->end)
            return drop(r);
        if (g != NULL) {
            close_part(r);
            close_segment(r);
        }
        open_segment(r, dts);
        open_part(r, dts, true);
        r->started = true;
        r->last_dur = 0;
    } else {
        if (dts <= r->last_dts)
            return drop(r);
        uint64_t dur = dts - r->last_dts;
        uint64_t est = r->last_dur && r->last_dur < dur ? r->last_dur : dur;
        uint64_t elapsed = dts - g->start;
        bool cut_seg = (f->keyframe && (elapsed + est / 2 >= r->seg_target || r->config_changed)) ||
                       elapsed + est > r->td_max || g->nparts + 1 >= r->max_parts;
        bool forced = cut_seg && !f->keyframe;
        bool cut_part = cut_seg || dts - r->part_start + est > r->part_target ||
                        part_full(r, f->data.len);
        uint64_t d = dur;
        if (cut_part) {
            uint64_t limit = r->part_start + r->part_target;
            if (g->start + r->td_max < limit)
                limit = g->start + r->td_max;
            if (r->last_dts + d > limit)
                d = limit - r->last_dts; /* clamp: see the comment at the top */
        }
        r->samples[r->nsamples - 1].duration = (uint32_t)d;
        r->end = r->last_dts + d;
        r->part_pending = false;
        r->last_dur = (uint32_t)dur;
        if (cut_part) {
            int rv = close_part(r);
            if (cut_seg) {
                close_segment(r);
                if (forced)
                    r->st.forced_cuts++;
                open_segment(r, dts);
            }
            open_part(r, dts, f->keyframe);
            if (rv != 0) {
                r->started = false;
                return rv;
            }
        }
    }
    int rv = add_sample(r, f, 0, cto, f->keyframe);
    if (rv != 0) {
        /* The frame is lost; its successors cannot decode: wait for the next keyframe. */
        r->started = false;
        return rv;
    }
    r->last_dts = dts;
    r->part_pending = true;
    return 0;
}

/* The next lead boundary of this timeline at or before `ms` (consumed), or false. */
static bool take_boundary(media_hls_rendition_t *r, int64_t ms, int64_t half_frame_ms)
{
    media_hls_stream_t *s = r->s;
    if (s->bseq - r->bseq > HLS_BOUNDARIES)
        r->bseq = s->bseq - HLS_BOUNDARIES;
    bool took = false;
    while (r->bseq < s->bseq) {
        const struct hls_boundary *b = &s->bnd[r->bseq % HLS_BOUNDARIES];
        if (b->timeline < s->timeline) {
            r->bseq++;
            continue;
        }
        if (b->timeline > s->timeline || ms + half_frame_ms < b->ms)
            break;
        r->bseq++;
        took = true;
    }
    return took;
}

static int push_audio(media_hls_rendition_t *r, const media_frame_t *f, uint64_t wall_ms)
{
    media_hls_stream_t *s = r->s;
    int64_t out_ms = map_ms(s, f->dts, wall_ms);
    if (out_ms < 0)
        return drop(r);
    const uint64_t frame = AAC_FRAME;
    uint64_t at = (uint64_t)out_ms * r->timescale / 1000;
    int64_t half_ms = (int64_t)(frame * 500 / r->timescale);
    bool led = s->lead != NULL && !r->unled;

    if (!r->started) {
        if (at + frame / 2 < r->end)
            return drop(r);
        /* The first audio segment may start a little before the lead's first segment (whose
         * start is its first frame's presentation time, after the B-frame delay): audio
         * captured with the first picture is kept. */
        if (led && !take_boundary(r, out_ms, half_ms + HLS_AUDIO_EARLY_MS)) {
            /* Wait for the lead video's first cut of this timeline, but not forever: an
             * audio-only publish (or a video rendition fed nothing) cuts on its own. */
            if (!r->waiting_lead) {
                r->waiting_lead = true;
                r->wait_since_ms = out_ms;
            }
            if (out_ms - r->wait_since_ms < 2 * (int64_t)s->cfg.target_duration_s * 1000)
                return drop(r);
            r->unled = true;
        }
        r->waiting_lead = false;
        if (at < r->end)
            at = r->end;
        if (r->seg_open)
            flush(r);
        open_segment(r, at);
        r->started = true;
    } else {
        struct hls_segment *g = open_seg(r);
        int64_t diff = (int64_t)at - (int64_t)r->end;
        if (diff < -(int64_t)frame / 2)
            return drop(r); /* going backwards */
        if (diff > (int64_t)frame / 2) {
            close_part(r); /* a gap: the next part's tfdt carries it */
        } else {
            at = r->end;
        }
        bool cut = r->config_changed || at + frame - g->start > r->td_max ||
                   g->nparts + 1 >= r->max_parts;
        if (led)
            cut = take_boundary(r, ticks_to_ms(at, r->timescale), half_ms) || cut;
        else
            cut = cut || at - g->start + frame / 2 >= r->seg_target;
        if (cut) {
            close_part(r);
            close_segment(r);
            open_segment(r, at);
        }
    }
    if (r->part_open && part_full(r, f->data.len))
        close_part(r);
    if (!r->part_open)
        open_part(r, at, true);
    int rv = add_sample(r, f, (uint32_t)frame, 0, true);
    if (rv != 0)
        return rv; /* the frame is lost; the next one resynchronises */
    r->end = at + frame;
    if (r->end + frame - r->part_start > r->part_target ||
        r->nsamples >= s->cfg.limits.max_samples_per_part)
        return close_part(r);
    return 0;
}

int media_hls_rendition_push(media_hls_rendition_t *r, const media_frame_t *f, uint64_t wall_ms)
{
    if (r->s->ended || r->ended)
        return AX_ECLOSED;
    if (f->track != r->track)
        return AX_EINVAL;
    if (!r->has_config)
        return AX_EBADSTATE;
    if (f->data.len > r->s->cfg.limits.max_frame_bytes)
        return AX_EMSGSIZE;
    if (f->data.len == 0)
        return drop(r);
    if (r->track == MEDIA_TRACK_VIDEO)
        return push_video(r, f, wall_ms);
    return push_audio(r, f, wall_ms);
}

/* --- serving -------------------------------------------------------------------------- */

int media_hls_rendition_get(media_hls_rendition_t *r, const media_hls_resource_t *res,
                            media_part_t **out)
{
    *out = NULL;
    bool ended = r->s->ended || r->ended;
    switch (res->kind) {
    case MEDIA_HLS_RES_INIT:
        if (!r->has_config || res->init_gen >= r->init_count)
            return AX_ENOENT;
        if (res->init_gen + HLS_INIT_GENS < r->init_count)
            return AX_EGONE;
        *out = media_part_ref(r->init[res->init_gen % HLS_INIT_GENS]);
        return 0;
    case MEDIA_HLS_RES_SEGMENT: {
        struct hls_segment *g = media_hls__segment(r, res->msn);
        if (g != NULL && g->complete) {
            if (g->whole == NULL) {
                media_part_t *kids[g->nparts];
                for (uint32_t i = 0; i < g->nparts; i++)
                    kids[i] = g->parts[i].bytes;
                int rv = media_hls__part_new_composite(kids, g->nparts, &g->whole);
                if (rv != 0)
                    return rv;
            }
            *out = media_part_ref(g->whole);
            return 0;
        }
        if (res->msn < r->first_msn && r->next_msn > 0)
            return AX_EGONE;
        if (ended)
            return AX_ENOENT;
        if (g != NULL || res->msn == r->next_msn)
            return AX_EAGAIN;
        return res->msn < r->next_msn ? AX_ENOENT : AX_ETOOFAR;
    }
    case MEDIA_HLS_RES_PART: {
        struct hls_segment *g = media_hls__segment(r, res->msn);
        if (g != NULL && res->part < g->nparts) {
            *out = media_part_ref(g->parts[res->part].bytes);
            return 0;
        }
        if (res->part >= r->max_parts)
            return AX_ENOENT;
        if (g != NULL && g->complete)
            return AX_ENOENT;
        if (res->msn < r->first_msn && r->next_msn > 0)
            return AX_EGONE;
        if (ended)
            return AX_ENOENT;
        if (g != NULL)
            return res->part <= g->nparts + 3 ? AX_EAGAIN : AX_ETOOFAR;
        if (res->msn == r->next_msn)
            return res->part <= 3 ? AX_EAGAIN : AX_ETOOFAR;
        return res->msn < r->next_msn ? AX_ENOENT : AX_ETOOFAR;
    }
    default:
        return AX_EINVAL;
    }
}

static int enqueue(media_hls_rendition_t *r, media_hls_waiter_t *w, uint64_t msn, int64_t part,
                   bool exact, media_hls_wait_cb cb)
{
    if (w->where != 0 || cb == NULL)
        return AX_EINVAL;
    if (r->nwaiters >= r->s->cfg.limits.max_waiters)
        return AX_ENOSPC;
    w->r = r;
    w->cb = cb;
    w->msn = msn;
    w->part = part;
    w->exact = exact;
    w->status = 0;
    w->where = 1;
    waiters_push(r, w);
    r->nwaiters++;
    return 0;
}

int media_hls_rendition_wait_playlist(media_hls_rendition_t *r, media_hls_waiter_t *w,
                                      const media_hls_params_t *p, media_hls_wait_cb cb)
{
    if (w->where != 0)
        return AX_EINVAL;
    if (r->ended && !r->s->ended)
        return AX_ENOENT;
    if (!p->has_msn || r->s->ended)
        return 1;
    media_hls_waiter_t probe = {.r = r, .msn = p->msn, .part = p->has_part ? (int64_t)p->part : -1};
    if (waiter_state(r, &probe) == 1)
        return 1;
    /* The spec's 400 rule (6.2.5.2): more than two segments past the last one in the
     * playlist, or more than the Advance Part Limit (3) parts past its last part. */
    uint64_t m;
    uint32_t lp;
    bool has = media_hls__latest_part(r, &m, &lp);
    int64_t last = has ? (int64_t)m : (r->any_complete ? (int64_t)r->last_complete : -1);
    if ((int64_t)p->msn > last + 2)
        return AX_ETOOFAR;
    if (p->has_part) {
        if (p->part >= r->max_parts)
            return AX_ETOOFAR;
        if (has && p->msn == m && p->part > lp + 3)
            return AX_ETOOFAR;
    }
    return enqueue(r, w, p->msn, probe.part, false, cb);
}

int media_hls_rendition_wait_resource(media_hls_rendition_t *r, media_hls_waiter_t *w,
                                      const media_hls_resource_t *res, media_hls_wait_cb cb)
{
    if (w->where != 0)
        return AX_EINVAL;
    if (res->kind != MEDIA_HLS_RES_SEGMENT && res->kind != MEDIA_HLS_RES_PART)
        return AX_EINVAL;
    media_part_t *p;
    int rv = media_hls_rendition_get(r, res, &p);
    if (rv == 0) {
        media_part_unref(p);
        return 1;
    }
    if (rv != AX_EAGAIN)
        return rv;
    return enqueue(r, w, res->msn, res->kind == MEDIA_HLS_RES_PART ? (int64_t)res->part : -1, true,
                   cb);
}

int media_hls_rendition_playlist(media_hls_rendition_t *r, media_hls_skip_t skip,
                                 media_part_t **out)
{
    *out = NULL;
    if (r->ended && !r->s->ended)
        return AX_ENOENT;
    uint64_t m;
    uint32_t p;
    if (!media_hls__latest_part(r, &m, &p))
        return AX_EAGAIN;
    int k = skip == MEDIA_HLS_SKIP_NO ? 0 : 1;
    if (r->cache[k] == NULL || r->cache_version[k] != r->s->version) {
        media_part_t *np;
        int rv = media_hls__render_media(r, k == 1, &np);
        if (rv != 0)
            return rv;
        media_part_unref(r->cache[k]);
        r->cache[k] = np;
        r->cache_version[k] = r->s->version;
    }
    *out = media_part_ref(r->cache[k]);
    return 0;
}

int media_hls_stream_master(media_hls_stream_t *s, media_part_t **out)
{
    *out = NULL;
    if (s->nr == 0)
        return AX_EAGAIN;
    for (size_t i = 0; i < s->nr; i++)
        if (!s->r[i]->has_config && !s->r[i]->ended)
            return AX_EAGAIN;
    if (s->master == NULL || s->master_version != s->version) {
        media_part_t *np;
        int rv = media_hls__render_master(s, &np);
        if (rv != 0)
            return rv;
        media_part_unref(s->master);
        s->master = np;
        s->master_version = s->version;
    }
    *out = media_part_ref(s->master);
    return 0;
}

void media_hls_rendition_stats(const media_hls_rendition_t *r, media_hls_rendition_stats_t *st)
{
    *st = r->st;
    uint64_t m;
    uint32_t p;
    if (media_hls__latest_part(r, &m, &p)) {
        st->last_msn = m;
        st->last_part = p;
    } else {
        st->last_msn = r->next_msn;
        st->last_part = -1;
    }
    st->first_msn = r->first_msn;
    uint64_t first_listed = r->first_msn;
    uint32_t w = r->s->cfg.window_segments;
    if (r->any_complete && r->last_complete + 1 > w && r->last_complete + 1 - w > first_listed)
        first_listed = r->last_complete + 1 - w;
    struct hls_segment *g = media_hls__segment(r, first_listed);
    st->discontinuity_seq = g != NULL ? g->disc_seq : r->disc_seq;
    st->waiters = r->nwaiters;
}

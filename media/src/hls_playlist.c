/*
 * Rendering of media playlists (RFC 8216 + draft-pantos-hls-rfc8216bis LL-HLS) and of the
 * master playlist. Rendered text is cached by the caller (hls_stream.c) per stream version,
 * so a change costs one render however many viewers ask.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "hls_internal.h"

#define PLAYLIST_LIMIT (1u << 20)

struct out {
    ax_buf_t b;
    int err;
};

static void pr(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pr(struct out *o, const char *fmt, ...)
{
    if (o->err != 0)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        o->err = AX_EMSGSIZE;
        return;
    }
    o->err = ax_buf_append(&o->b, line, (size_t)n);
}

static int finish(struct out *o, media_part_t **out)
{
    *out = NULL;
    int rv = o->err;
    media_part_t *p = NULL;
    if (rv == 0)
        rv = media_hls__part_new(1, 0, o->b.len, &p);
    if (rv == 0) {
        memcpy(p->inl, o->b.base, o->b.len);
        p->iov[0] = AX_SLICE(p->inl, o->b.len);
        media_hls__part_seal(p);
        *out = p;
    }
    ax_buf_close(&o->b);
    return rv;
}

static double secs(uint64_t ticks, uint32_t ts)
{
    return (double)ticks / (double)ts;
}

static int64_t ms_of(uint64_t ticks, uint32_t ts)
{
    return (int64_t)(ticks * 1000 / ts);
}

int media_hls__render_media(media_hls_rendition_t *r, bool skip, media_part_t **res)
{
    const media_hls_stream_t *s = r->s;
    const media_hls_config_t *c = &s->cfg;
    struct out o = {.err = 0};
    ax_buf_init(&o.b, PLAYLIST_LIMIT);

    /* The window: the last window_segments complete segments, then the one in progress. */
    uint64_t first = r->first_msn;
    if (r->any_complete && r->last_complete + 1 > c->window_segments &&
        r->last_complete + 1 - c->window_segments > first)
        first = r->last_complete + 1 - c->window_segments;
    uint64_t end_msn = r->next_msn; /* exclusive */
    const struct hls_segment *g0 = media_hls__segment(r, first);
    while (g0 == NULL && first < end_msn)
        g0 = media_hls__segment(r, ++first);
    if (g0 == NULL) {
        ax_buf_close(&o.b);
        return AX_EAGAIN;
    }

    /* The live edge: the end of the newest part. */
    int64_t edge_ms = 0;
    for (uint64_t m = first; m < end_msn; m++) {
        const struct hls_segment *g = media_hls__segment(r, m);
        if (g != NULL && g->nparts > 0)
            edge_ms = ms_of(g->start + g->duration, g->timescale);
    }
    int64_t skip_until_ms = 6 * (int64_t)c->target_duration_s * 1000;
    int64_t parts_from_ms = edge_ms - 3 * (int64_t)c->target_duration_s * 1000;

    /* Delta update (6.2.5.1): skip the leading complete segments that end more than
     * CAN-SKIP-UNTIL before the live edge. */
    uint64_t nskip = 0;
    if (skip) {
        for (uint64_t m = first; m < end_msn; m++) {
            const struct hls_segment *g = media_hls__segment(r, m);
            if (g == NULL || !g->complete ||
                edge_ms - ms_of(g->start + g->duration, g->timescale) < skip_until_ms)
                break;
            nskip++;
        }
    }

    pr(&o, "#EXTM3U\n#EXT-X-VERSION:%d\n", skip ? 9 : 6);
    pr(&o, "#EXT-X-TARGETDURATION:%u\n", c->target_duration_s);
    pr(&o, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=%.1f,PART-HOLD-BACK=%.3f\n",
       (double)skip_until_ms / 1000.0, c->part_hold_back_ms / 1000.0);
    pr(&o, "#EXT-X-PART-INF:PART-TARGET=%.3f\n", c->part_target_ms / 1000.0);
    pr(&o, "#EXT-X-MEDIA-SEQUENCE:%llu\n", (unsigned long long)first);
    /* The first listed segment's own tag is folded into this number (and not emitted). */
    pr(&o, "#EXT-X-DISCONTINUITY-SEQUENCE:%llu\n", (unsigned long long)g0->disc_seq);
    if (nskip > 0)
        pr(&o, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%llu\n", (unsigned long long)nskip);

    uint32_t map_gen = UINT32_MAX;
    for (uint64_t m = first + nskip; m < end_msn; m++) {
        const struct hls_segment *g = media_hls__segment(r, m);
        /* A segment just opened has nothing to list yet: no tag may dangle after the last
         * segment (the preload hint already names its first part). */
        if (g == NULL || (!g->complete && g->nparts == 0))
            continue;
        if (g->discontinuity && m != first)
            pr(&o, "#EXT-X-DISCONTINUITY\n");
        if (g->init_gen != map_gen) {
            pr(&o, "#EXT-X-MAP:URI=\"init-%u.mp4\"\n", g->init_gen);
            map_gen = g->init_gen;
        }
        char pdt[32];
        media_hls__format_pdt(g->pdt_ms, pdt);
        pr(&o, "#EXT-X-PROGRAM-DATE-TIME:%s\n", pdt);
        if (!g->complete || ms_of(g->start, g->timescale) >= parts_from_ms) {
            for (uint32_t k = 0; k < g->nparts; k++)
                pr(&o, "#EXT-X-PART:DURATION=%.5f,URI=\"part-%llu.%u.m4s\"%s\n",
                   secs(g->parts[k].duration, g->timescale), (unsigned long long)m, k,
                   g->parts[k].independent ? ",INDEPENDENT=YES" : "");
        }
        if (g->complete)
            pr(&o, "#EXTINF:%.5f,\nseg-%llu.m4s\n", secs(g->duration, g->timescale),
               (unsigned long long)m);
    }
    if (!s->ended) {
        const struct hls_segment *cur = r->seg_open ? media_hls__segment(r, r->next_msn - 1) : NULL;
        if (cur != NULL)
            pr(&o, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-%llu.%u.m4s\"\n",
               (unsigned long long)cur->msn, cur->nparts);
        else
            pr(&o, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-%llu.0.m4s\"\n",
               (unsigned long long)r->next_msn);
    }
    for (size_t i = 0; i < s->nr; i++) {
        const media_hls_rendition_t *x = s->r[i];
        uint64_t lm;
        uint32_t lp;
        if (x == r || x->ended || !media_hls__latest_part(x, &lm, &lp))
            continue;
        /* Part 0 of a new segment is reported as the last part of the segment before it (one
         * part older, still true of the rendition). hls.js reads LAST-PART with
         * `parseInt(..) || lastPartIndex`: a 0 makes it take the part index of the level it
         * leaves, which for a lagging rendition (a transcoded rung) is parts ahead of
         * anything that exists, and its switch waits for it. Asked for the part after the
         * reported one, the server answers at once (it is in an older segment). */
        if (lp == 0 && lm > 0) {
            const struct hls_segment *pg = media_hls__segment(x, lm - 1);
            if (pg != NULL && pg->complete && pg->nparts > 0) {
                lm -= 1;
                lp = pg->nparts - 1;
            }
        }
        pr(&o, "#EXT-X-RENDITION-REPORT:URI=\"../%s/index.m3u8\",LAST-MSN=%llu,LAST-PART=%u\n",
           x->name, (unsigned long long)lm, lp);
    }
    if (s->ended)
        pr(&o, "#EXT-X-ENDLIST\n");
    return finish(&o, res);
}

/* Peak and average bit rates over the complete segments in the ring. */
static void bitrates(const media_hls_rendition_t *r, uint64_t *peak, uint64_t *avg)
{
    double pk = 0, bits = 0, secs_total = 0;
    for (uint64_t m = r->first_msn; m < r->next_msn; m++) {
        const struct hls_segment *g = media_hls__segment(r, m);
        if (g == NULL || !g->complete || g->duration == 0)
            continue;
        double d = secs(g->duration, g->timescale);
        double b = (double)g->bytes * 8.0;
        if (b / d > pk)
            pk = b / d;
        bits += b;
        secs_total += d;
    }
    if (secs_total > 0) {
        *peak = (uint64_t)pk + 1;
        *avg = (uint64_t)(bits / secs_total) + 1;
        return;
    }
    uint64_t guess = r->bandwidth_hint;
    if (guess == 0)
        guess = r->track == MEDIA_TRACK_VIDEO ? 3000000 : 160000;
    *peak = *avg = guess;
}

static double frame_rate(const media_hls_rendition_t *r)
{
    if (r->fps_num > 0 && r->fps_den > 0)
        return (double)r->fps_num / r->fps_den;
    double frames = 0, d = 0;
    for (uint64_t m = r->first_msn; m < r->next_msn; m++) {
        const struct hls_segment *g = media_hls__segment(r, m);
        if (g != NULL && g->complete) {
            frames += g->frames;
            d += secs(g->duration, g->timescale);
        }
    }
    return d > 0 ? frames / d : 0;
}

int media_hls__render_master(media_hls_stream_t *s, media_part_t **res)
{
    struct out o = {.err = 0};
    ax_buf_init(&o.b, PLAYLIST_LIMIT);
    pr(&o, "#EXTM3U\n#EXT-X-VERSION:6\n");

    const media_hls_rendition_t *audio = NULL;
    uint64_t a_peak = 0, a_avg = 0;
    bool any_video = false;
    for (size_t i = 0; i < s->nr; i++) {
        const media_hls_rendition_t *r = s->r[i];
        if (r->ended)
            continue;
        if (r->track == MEDIA_TRACK_VIDEO) {
            any_video = true;
            continue;
        }
        pr(&o,
           "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"%s\",DEFAULT=%s,AUTOSELECT=YES,"
           "CHANNELS=\"%u\",URI=\"%s/index.m3u8\"\n",
           r->name, audio == NULL ? "YES" : "NO", r->channels, r->name);
        uint64_t pk, av;
        bitrates(r, &pk, &av);
        if (audio == NULL || pk > a_peak) {
            a_peak = pk;
            a_avg = av;
        }
        if (audio == NULL)
            audio = r;
    }
    /* Variants tallest first (the source, then the rungs down), whatever order they were
     * added in: players that start with the first entry start with the source, and the
     * order does not change with measured bit rates. Stable: ties keep their order. */
    const media_hls_rendition_t *order[HLS_MAX_RENDITIONS];
    size_t n = 0;
    for (size_t i = 0; i < s->nr && n < HLS_MAX_RENDITIONS; i++) {
        const media_hls_rendition_t *r = s->r[i];
        if (r->ended || (any_video && r->track != MEDIA_TRACK_VIDEO))
            continue;
        size_t k = n++;
        while (k > 0 && order[k - 1]->height < r->height) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = r;
    }
    for (size_t i = 0; i < n; i++) {
        const media_hls_rendition_t *r = order[i];
        uint64_t pk, av;
        bitrates(r, &pk, &av);
        if (r->track == MEDIA_TRACK_VIDEO) {
            pk += a_peak;
            av += a_avg;
        }
        pr(&o, "#EXT-X-STREAM-INF:BANDWIDTH=%llu,AVERAGE-BANDWIDTH=%llu,CODECS=\"%s%s%s\"",
           (unsigned long long)pk, (unsigned long long)av, r->codecs,
           r->track == MEDIA_TRACK_VIDEO && audio != NULL ? "," : "",
           r->track == MEDIA_TRACK_VIDEO && audio != NULL ? audio->codecs : "");
        if (r->track == MEDIA_TRACK_VIDEO) {
            pr(&o, ",RESOLUTION=%ux%u", r->width, r->height);
            double fps = frame_rate(r);
            if (fps > 0)
                pr(&o, ",FRAME-RATE=%.3f", fps);
            if (audio != NULL)
                pr(&o, ",AUDIO=\"audio\"");
        }
        pr(&o, "\n%s/index.m3u8\n", r->name);
    }
    return finish(&o, res);
}

/*
 * Channels: the publisher attachment and (once media/hls.h lands) the packager and the
 * held blocking-reload requests. Skeleton: registry and publish rules only.
 */
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "aethex/common/log.h"

#include "edge_internal.h"

struct edge_channel {
    h2o_linklist_t link;            /* in edge->channels */
    struct edge *edge;
    struct rtmp_conn *publisher;    /* borrowed; NULL when nobody publishes */
    uint32_t publishes;             /* publishes so far: > 0 means the next one is a
                                     * discontinuity */
    uint64_t idle_since_ms;
    char name[EDGE_CHANNEL_MAX + 1];
};

int edge_channel_start(struct edge *e)
{
    (void)e;
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
    h2o_linklist_insert(&e->channels, &ch->link);
    e->nchannels++;
    AX_LOG_I("edge channel", "channel=%s created", ch->name);
    return ch;
}

int edge_channel_publish_begin(struct edge_channel *ch, struct rtmp_conn *conn)
{
    if (ch->publisher)
        return AX_ELIVE;
    ch->publisher = conn;
    ch->publishes++;
    return 0;
}

void edge_channel_publish_end(struct edge_channel *ch, struct rtmp_conn *conn)
{
    if (ch->publisher != conn)
        return;
    ch->publisher = NULL;
    ch->idle_since_ms = edge_now_ms(ch->edge);
}

void edge_channel_on_video_config(struct edge_channel *ch, const media_avc_config_t *cfg)
{
    (void)ch;
    (void)cfg;
}

void edge_channel_on_audio_config(struct edge_channel *ch, const media_aac_config_t *cfg)
{
    (void)ch;
    (void)cfg;
}

void edge_channel_on_frame(struct edge_channel *ch, const media_frame_t *f)
{
    (void)ch;
    (void)f;
}

static void channel_free(struct edge_channel *ch)
{
    h2o_linklist_unlink(&ch->link);
    ch->edge->nchannels--;
    ax_free(ch);
}

void edge_channel_sweep(struct edge *e, uint64_t now)
{
    h2o_linklist_t *n, *next;
    for (n = e->channels.next; n != &e->channels; n = next) {
        next = n->next;
        struct edge_channel *ch = H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, n);
        if (!ch->publisher && now - ch->idle_since_ms >= e->cfg.channel_linger_ms) {
            AX_LOG_I("edge channel", "channel=%s dropped after %u ms without a publisher",
                     ch->name, e->cfg.channel_linger_ms);
            channel_free(ch);
        }
    }
}

void edge_channel_release_holds(struct edge *e)
{
    (void)e;
}

void edge_channel_free_all(struct edge *e)
{
    while (!h2o_linklist_is_empty(&e->channels))
        channel_free(H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, e->channels.next));
}

int edge_channel_serve(struct edge *e, h2o_req_t *req, ax_slice_t channel, ax_slice_t rest,
                       ax_slice_t query)
{
    (void)rest;
    (void)query;
    struct edge_channel *ch = edge_channel_find(e, channel, false);
    if (!ch) {
        edge_http_send_error(e, req, 404, "no such channel", "no-cache");
        return 0;
    }
    edge_http_send_error(e, req, 404, "not found", "no-cache");
    return 0;
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
    for (h2o_linklist_t *l = e->channels.next; l != &e->channels; l = l->next) {
        struct edge_channel *ch = H2O_STRUCT_FROM_MEMBER(struct edge_channel, link, l);
        off = edge_metrics_append(buf, off, cap, "aethex_edge_channel_live{channel=\"%s\"} %d\n",
                                  ch->name, ch->publisher ? 1 : 0);
    }
    return off;
}

/*
 * Viewer counting for heartbeats and /metrics.
 *
 * A viewer is a distinct HTTP connection (h2o's connection id) that asked for a channel's
 * media (any /live/<channel>/... request, local or relayed) recently. Two buckets of
 * EDGE_VIEWER_WINDOW_MS / 2 each: `cur` fills now, `prev` is the half-window before; they
 * rotate every half window. viewers = |prev| + |cur not in prev|, i.e. the connections seen
 * in the last 5 to 10 s. An LL-HLS player reloads its playlist every part (~0.3 s) and a
 * classic one every target duration (2 s), so every player shows up in every bucket; one
 * that stops watching leaves the count within 10 s.
 *
 * Why connections rather than client addresses: behind NAT (and on loopback in tests) many
 * viewers share one address, while one player keeps its connection (HTTP/2: exactly one;
 * HTTP/1.1: hls.js keeps one or two). A player that reconnects counts twice for at most one
 * window. Counting in-flight requests instead would miss every player between two reloads.
 *
 * Memory: two open-addressing sets of 8-byte ids per channel, at most EDGE_VIEWERS_MAX_SET
 * entries each (past it the count saturates rather than grow).
 */
#include <string.h>

#include "aethex/common/alloc.h"

#include "edge_internal.h"

#define EDGE_VIEWERS_MAX_SET 65536

struct idset {
    uint64_t *slots; /* owned; 0 = empty */
    uint32_t cap;    /* power of two */
    uint32_t n;
};

struct vchan {
    h2o_linklist_t link;
    struct idset cur, prev;
    uint32_t cur_new; /* entries of cur not in prev */
    char name[EDGE_CHANNEL_MAX + 1];
};

struct edge_viewers {
    h2o_linklist_t chans;
    uint32_t nchans;
    uint64_t rotated_ms;
};

static uint32_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static bool idset_has(const struct idset *s, uint64_t id)
{
    if (!s->cap)
        return false;
    for (uint32_t i = hash64(id) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == id)
            return true;
        if (s->slots[i] == 0)
            return false;
    }
}

/* Returns true when `id` was added (not present before). */
static bool idset_add(struct idset *s, uint64_t id)
{
    if (idset_has(s, id))
        return false;
    if ((s->n + 1) * 2 > s->cap) {
        if (s->cap >= EDGE_VIEWERS_MAX_SET * 2)
            return false; /* saturated */
        uint32_t ncap = s->cap ? s->cap * 2 : 16;
        uint64_t *old = s->slots;
        uint32_t ocap = s->cap;
        s->slots = ax_xcalloc(ncap, sizeof *s->slots);
        s->cap = ncap;
        s->n = 0;
        for (uint32_t i = 0; i < ocap; i++)
            if (old[i])
                idset_add(s, old[i]);
        ax_free(old);
    }
    for (uint32_t i = hash64(id) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == 0) {
            s->slots[i] = id;
            s->n++;
            return true;
        }
    }
}

static void idset_clear(struct idset *s)
{
    ax_free(s->slots);
    memset(s, 0, sizeof *s);
}

int edge_viewers_start(struct edge *e)
{
    struct edge_viewers *v = ax_xcalloc(1, sizeof *v);
    h2o_linklist_init_anchor(&v->chans);
    v->rotated_ms = edge_now_ms(e);
    e->viewers = v;
    return 0;
}

void edge_viewers_seen(struct edge *e, ax_slice_t channel, uint64_t conn_id)
{
    struct edge_viewers *v = e->viewers;
    if (!v || !edge_channel_name_valid(channel))
        return;
    uint64_t id = conn_id | (1ULL << 63); /* never 0 */
    struct vchan *c = NULL;
    for (h2o_linklist_t *n = v->chans.next; n != &v->chans; n = n->next) {
        struct vchan *x = H2O_STRUCT_FROM_MEMBER(struct vchan, link, n);
        if (ax_slice_eq_cstr(channel, x->name)) {
            c = x;
            break;
        }
    }
    if (!c) {
        /* Requests may name channels that do not exist: the set of names is bounded. */
        if (v->nchans >= 2 * e->cfg.max_channels)
            return;
        v->nchans++;
        c = ax_xcalloc(1, sizeof *c);
        memcpy(c->name, channel.base, channel.len);
        h2o_linklist_insert(&v->chans, &c->link);
    }
    if (idset_add(&c->cur, id) && !idset_has(&c->prev, id))
        c->cur_new++;
}

static uint32_t vchan_count(const struct vchan *c)
{
    return c->prev.n + c->cur_new;
}

uint32_t edge_viewers_count(struct edge *e, const char *channel)
{
    struct edge_viewers *v = e->viewers;
    uint32_t total = 0;
    if (!v)
        return 0;
    for (h2o_linklist_t *n = v->chans.next; n != &v->chans; n = n->next) {
        struct vchan *c = H2O_STRUCT_FROM_MEMBER(struct vchan, link, n);
        if (!channel)
            total += vchan_count(c);
        else if (!strcmp(channel, c->name))
            return vchan_count(c);
    }
    return total;
}

void edge_viewers_each(struct edge *e, void (*fn)(void *arg, const char *channel, uint32_t n),
                       void *arg)
{
    struct edge_viewers *v = e->viewers;
    if (!v)
        return;
    for (h2o_linklist_t *n = v->chans.next; n != &v->chans; n = n->next) {
        struct vchan *c = H2O_STRUCT_FROM_MEMBER(struct vchan, link, n);
        uint32_t k = vchan_count(c);
        if (k)
            fn(arg, c->name, k);
    }
}

void edge_viewers_sweep(struct edge *e, uint64_t now)
{
    struct edge_viewers *v = e->viewers;
    if (!v || now - v->rotated_ms < EDGE_VIEWER_WINDOW_MS / 2)
        return;
    v->rotated_ms = now;
    h2o_linklist_t *n, *next;
    for (n = v->chans.next; n != &v->chans; n = next) {
        next = n->next;
        struct vchan *c = H2O_STRUCT_FROM_MEMBER(struct vchan, link, n);
        idset_clear(&c->prev);
        c->prev = c->cur;
        memset(&c->cur, 0, sizeof c->cur);
        c->cur_new = 0;
        if (c->prev.n == 0) {
            h2o_linklist_unlink(&c->link);
            v->nchans--;
            ax_free(c);
        }
    }
}

void edge_viewers_free(struct edge *e)
{
    struct edge_viewers *v = e->viewers;
    if (!v)
        return;
    while (!h2o_linklist_is_empty(&v->chans)) {
        struct vchan *c = H2O_STRUCT_FROM_MEMBER(struct vchan, link, v->chans.next);
        idset_clear(&c->prev);
        idset_clear(&c->cur);
        h2o_linklist_unlink(&c->link);
        ax_free(c);
    }
    ax_free(v);
    e->viewers = NULL;
}

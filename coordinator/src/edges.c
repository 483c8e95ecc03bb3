/*
 * The in-memory edge registry (edges.h). Edges are few (tens): a flat array, searched
 * linearly. Live channels may be many: a chained hash on the slug, so the watch redirect's
 * origin lookup is O(1).
 */
#include "aethex/coordinator/edges.h"

#include <stdio.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/util.h"

#define ORIGIN_BUCKETS 4096

struct edge {
    char *edge_id, *region, *hls_base_url, *chat_url, *rtmp_url; /* owned */
    uint32_t capacity_viewers, capacity_streams;
    uint32_t viewers, live_streams, load_permille;
    bool connected;
    uint64_t conn_id;
    uint64_t registered_ms, last_heartbeat_ms;
};

struct origin {
    char slug[COORD_EDGES_ID_MAX + 1];
    char channel_id[COORD_EDGES_ID_MAX + 1];
    char stream_id[COORD_EDGES_ID_MAX + 1];
    char edge_id[COORD_EDGES_ID_MAX + 1];
    uint64_t since_ms;
    struct origin *next; /* bucket chain */
};

struct coord_edges {
    coord_edges_config_t cfg;
    struct edge *edges; /* owned, nedges used of cap */
    size_t nedges, cap;
    struct origin *buckets[ORIGIN_BUCKETS];
    size_t norigins;
};

void coord_edges_config_default(coord_edges_config_t *cfg)
{
    cfg->clock = NULL;
    cfg->edge_timeout_ms = COORD_EDGES_DEFAULT_TIMEOUT_MS;
    cfg->max_edges = 256;
    cfg->max_origins = 65536;
}

int coord_edges_new(const coord_edges_config_t *cfg, coord_edges_t **out)
{
    *out = NULL;
    if (cfg->edge_timeout_ms == 0 || cfg->max_edges == 0 || cfg->max_origins == 0)
        return AX_EINVAL;
    coord_edges_t *e = ax_calloc(1, sizeof *e);
    if (e == NULL)
        return AX_ENOMEM;
    e->cfg = *cfg;
    if (e->cfg.clock == NULL)
        e->cfg.clock = ax_clock_system();
    *out = e;
    return 0;
}

static void edge_release(struct edge *x)
{
    ax_free(x->edge_id);
    ax_free(x->region);
    ax_free(x->hls_base_url);
    ax_free(x->chat_url);
    ax_free(x->rtmp_url);
}

void coord_edges_free(coord_edges_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->nedges; i++)
        edge_release(&e->edges[i]);
    ax_free(e->edges);
    for (size_t b = 0; b < ORIGIN_BUCKETS; b++)
        for (struct origin *o = e->buckets[b], *next; o != NULL; o = next) {
            next = o->next;
            ax_free(o);
        }
    ax_free(e);
}

static struct edge *find(const coord_edges_t *e, const char *edge_id)
{
    for (size_t i = 0; i < e->nedges; i++)
        if (strcmp(e->edges[i].edge_id, edge_id) == 0)
            return &e->edges[i];
    return NULL;
}

static bool is_healthy(const coord_edges_t *e, const struct edge *x)
{
    uint64_t now = ax_clock_now_ms(e->cfg.clock);
    return now < x->last_heartbeat_ms || now - x->last_heartbeat_ms < e->cfg.edge_timeout_ms;
}

static void fill(const coord_edges_t *e, const struct edge *x, coord_edge_info_t *out)
{
    *out = (coord_edge_info_t){
        .edge_id = x->edge_id,
        .region = x->region,
        .hls_base_url = x->hls_base_url,
        .chat_url = x->chat_url,
        .rtmp_url = x->rtmp_url,
        .capacity_viewers = x->capacity_viewers,
        .capacity_streams = x->capacity_streams,
        .viewers = x->viewers,
        .live_streams = x->live_streams,
        .load_permille = x->load_permille,
        .connected = x->connected,
        .conn_id = x->conn_id,
        .registered_ms = x->registered_ms,
        .last_heartbeat_ms = x->last_heartbeat_ms,
        .healthy = is_healthy(e, x),
    };
}

/* A printable identifier: no spaces, quotes, slashes or control bytes (they end up in URLs,
 * logs and JSON). */
static bool valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)s[n];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' || ch == '/' ||
            n >= COORD_EDGES_ID_MAX)
            return false;
    }
    return n > 0;
}

static bool valid_url(const char *s, bool required)
{
    size_t n = strlen(s);
    if (n == 0)
        return !required;
    if (n > COORD_EDGES_URL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '"' ||
            s[i] == '\\')
            return false;
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0 ||
           strncmp(s, "ws://", 5) == 0 || strncmp(s, "wss://", 6) == 0 ||
           strncmp(s, "rtmp://", 7) == 0;
}

static bool str_changed(const char *old, const char *now)
{
    return old == NULL || strcmp(old, now) != 0;
}

int coord_edges_register(coord_edges_t *e, const coord_edge_reg_t *reg, uint64_t conn_id,
                         bool *changed, char *errmsg)
{
    const char *chat = reg->chat_url ? reg->chat_url : "";
    const char *rtmp = reg->rtmp_url ? reg->rtmp_url : "";
    const char *bad = NULL;
    if (reg->edge_id == NULL || !valid_id(reg->edge_id))
        bad = "edge_id";
    else if (reg->region == NULL || !valid_id(reg->region))
        bad = "region";
    else if (reg->hls_base_url == NULL || !valid_url(reg->hls_base_url, true) ||
             strncmp(reg->hls_base_url, "http", 4) != 0)
        bad = "hls_base_url";
    else if (!valid_url(chat, false))
        bad = "chat_url";
    else if (!valid_url(rtmp, false))
        bad = "rtmp_url";
    if (bad != NULL) {
        snprintf(errmsg, AX_ERRMSG_LEN, "register edge: bad %s", bad);
        return AX_EINVAL;
    }
    struct edge *x = find(e, reg->edge_id);
    bool fresh = x == NULL;
    if (fresh) {
        if (e->nedges >= e->cfg.max_edges) {
            snprintf(errmsg, AX_ERRMSG_LEN, "register edge: %u edges already (max_edges)",
                     e->cfg.max_edges);
            return AX_ENOSPC;
        }
        if (e->nedges == e->cap) {
            size_t ncap = e->cap ? e->cap * 2 : 8;
            struct edge *n = ax_realloc(e->edges, ncap * sizeof *n);
            if (n == NULL)
                return AX_ENOMEM;
            e->edges = n;
            e->cap = ncap;
        }
    }
    /* Copy everything first, so that a failure leaves the old entry whole. */
    struct edge nx = {0};
    nx.edge_id = ax_strndup(reg->edge_id, strlen(reg->edge_id));
    nx.region = ax_strndup(reg->region, strlen(reg->region));
    nx.hls_base_url = ax_strndup(reg->hls_base_url, strlen(reg->hls_base_url));
    nx.chat_url = ax_strndup(chat, strlen(chat));
    nx.rtmp_url = ax_strndup(rtmp, strlen(rtmp));
    if (!nx.edge_id || !nx.region || !nx.hls_base_url || !nx.chat_url || !nx.rtmp_url) {
        edge_release(&nx);
        return AX_ENOMEM;
    }
    nx.capacity_viewers = reg->capacity_viewers;
    nx.capacity_streams = reg->capacity_streams;
    nx.connected = true;
    nx.conn_id = conn_id;
    nx.registered_ms = nx.last_heartbeat_ms = ax_clock_now_ms(e->cfg.clock);
    bool diff = fresh || str_changed(x->region, nx.region) ||
                str_changed(x->hls_base_url, nx.hls_base_url) ||
                str_changed(x->rtmp_url, nx.rtmp_url) || x->capacity_viewers != nx.capacity_viewers;
    if (!fresh) {
        nx.viewers = x->viewers;
        nx.live_streams = x->live_streams;
        nx.load_permille = x->load_permille;
        edge_release(x);
    } else {
        x = &e->edges[e->nedges++];
    }
    *x = nx;
    if (changed != NULL)
        *changed = diff;
    return 0;
}

static size_t slug_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % ORIGIN_BUCKETS;
}

static struct origin *origin_find(const coord_edges_t *e, const char *slug)
{
    for (struct origin *o = e->buckets[slug_hash(slug)]; o != NULL; o = o->next)
        if (strcmp(o->slug, slug) == 0)
            return o;
    return NULL;
}

int coord_edges_set_origin(coord_edges_t *e, const char *slug, const char *channel_id,
                           const char *stream_id, const char *edge_id)
{
    if (!valid_id(slug) || !valid_id(channel_id) || !valid_id(stream_id) || !valid_id(edge_id))
        return AX_EINVAL;
    struct origin *o = origin_find(e, slug);
    if (o == NULL) {
        if (e->norigins >= e->cfg.max_origins)
            return AX_ENOSPC;
        o = ax_calloc(1, sizeof *o);
        if (o == NULL)
            return AX_ENOMEM;
        size_t b = slug_hash(slug);
        o->next = e->buckets[b];
        e->buckets[b] = o;
        e->norigins++;
        snprintf(o->slug, sizeof o->slug, "%s", slug);
    }
    snprintf(o->channel_id, sizeof o->channel_id, "%s", channel_id);
    snprintf(o->stream_id, sizeof o->stream_id, "%s", stream_id);
    snprintf(o->edge_id, sizeof o->edge_id, "%s", edge_id);
    o->since_ms = ax_clock_now_ms(e->cfg.clock);
    return 0;
}

static void origin_unlink(coord_edges_t *e, struct origin *o)
{
    struct origin **pp = &e->buckets[slug_hash(o->slug)];
    while (*pp != o)
        pp = &(*pp)->next;
    *pp = o->next;
    e->norigins--;
    ax_free(o);
}

int coord_edges_clear_origin(coord_edges_t *e, const char *stream_id)
{
    for (size_t b = 0; b < ORIGIN_BUCKETS; b++)
        for (struct origin *o = e->buckets[b]; o != NULL; o = o->next)
            if (strcmp(o->stream_id, stream_id) == 0) {
                origin_unlink(e, o);
                return 0;
            }
    return AX_ENOENT;
}

int coord_edges_origin(const coord_edges_t *e, const char *slug, coord_origin_t *out)
{
    struct origin *o = origin_find(e, slug);
    if (o == NULL)
        return AX_ENOENT;
    *out = (coord_origin_t){o->slug, o->channel_id, o->stream_id, o->edge_id, o->since_ms};
    return 0;
}

size_t coord_edges_origin_count(const coord_edges_t *e)
{
    return e->norigins;
}

int coord_edges_heartbeat(coord_edges_t *e, const char *edge_id, uint64_t conn_id, float load,
                          uint32_t viewers, const coord_edge_channel_t *channels, size_t nchannels)
{
    struct edge *x = find(e, edge_id);
    if (x == NULL || !x->connected || x->conn_id != conn_id)
        return AX_ENOENT;
    x->last_heartbeat_ms = ax_clock_now_ms(e->cfg.clock);
    x->viewers = viewers;
    /* NaN and out-of-range loads from a peer are clamped, never trusted. */
    x->load_permille = !(load > 0.0f) ? 0 : load >= 1.0f ? 1000 : (uint32_t)(load * 1000.0f);
    uint32_t live = 0;
    for (size_t i = 0; i < nchannels; i++) {
        const coord_edge_channel_t *ch = &channels[i];
        if (!ch->origin)
            continue;
        live++;
        /* A new leader learns the origins from heartbeats: its map starts empty. */
        struct origin *o = ch->channel_slug ? origin_find(e, ch->channel_slug) : NULL;
        if (o == NULL && ch->channel_slug && ch->channel_id && ch->stream_id)
            coord_edges_set_origin(e, ch->channel_slug, ch->channel_id, ch->stream_id, edge_id);
    }
    x->live_streams = live;
    return 0;
}

void coord_edges_disconnected(coord_edges_t *e, uint64_t conn_id)
{
    for (size_t i = 0; i < e->nedges; i++)
        if (e->edges[i].connected && e->edges[i].conn_id == conn_id) {
            e->edges[i].connected = false;
            e->edges[i].conn_id = 0;
        }
}

int coord_edges_forget(coord_edges_t *e, const char *edge_id)
{
    struct edge *x = find(e, edge_id);
    if (x == NULL)
        return AX_ENOENT;
    for (size_t b = 0; b < ORIGIN_BUCKETS; b++)
        for (struct origin *o = e->buckets[b], *next; o != NULL; o = next) {
            next = o->next;
            if (strcmp(o->edge_id, edge_id) == 0)
                origin_unlink(e, o);
        }
    edge_release(x);
    size_t i = (size_t)(x - e->edges);
    memmove(x, x + 1, (e->nedges - i - 1) * sizeof *x);
    e->nedges--;
    return 0;
}

int coord_edges_find(const coord_edges_t *e, const char *edge_id, coord_edge_info_t *out)
{
    struct edge *x = find(e, edge_id);
    if (x == NULL)
        return AX_ENOENT;
    fill(e, x, out);
    return 0;
}

int coord_edges_find_conn(const coord_edges_t *e, uint64_t conn_id, coord_edge_info_t *out)
{
    for (size_t i = 0; i < e->nedges; i++)
        if (e->edges[i].connected && e->edges[i].conn_id == conn_id) {
            fill(e, &e->edges[i], out);
            return 0;
        }
    return AX_ENOENT;
}

bool coord_edges_healthy(const coord_edges_t *e, const char *edge_id)
{
    struct edge *x = find(e, edge_id);
    return x != NULL && is_healthy(e, x);
}

size_t coord_edges_count(const coord_edges_t *e)
{
    return e->nedges;
}

void coord_edges_at(const coord_edges_t *e, size_t i, coord_edge_info_t *out)
{
    AX_PRE(i < e->nedges);
    fill(e, &e->edges[i], out);
}

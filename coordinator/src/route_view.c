/*
 * The routing view (route_view.h, docs/routing.md). Three snapshots, each replaced whole
 * when a refresh answers: edges, live channels (sorted by slug for a binary search) and the
 * region table. A request only reads them: routing never waits on the database, and any
 * coordinator, leader or follower, answers from its own copy. A refresh that fails keeps the
 * previous snapshot (logged when the state changes, not every second).
 */
#include "route_view.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/log.h"

#define LOG "coordinator"

enum { Q_EDGES, Q_CHANNELS, Q_REGIONS, Q_COUNT };

static const char *const query_sql[Q_COUNT] = {
    "SELECT name, region, hls_base_url, capacity_viewers, viewers, live_streams, status,"
    " last_heartbeat_at FROM edges ORDER BY name",
    "SELECT c.slug, c.id, s.id, e.name FROM streams s JOIN channels c ON c.id = s.channel_id"
    " LEFT JOIN edges e ON e.id = s.origin_edge_id WHERE s.status = 'live'"
    " ORDER BY s.started_at",
    "SELECT cidr, region FROM regions ORDER BY id",
};
static const char *const query_name[Q_COUNT] = {"edges", "channels", "regions"};

struct refresh {
    coord_dqlite_req_t req;
    struct coord_route_view *view;
    int kind;
    bool in_flight;
    bool failing; /* the last attempt failed (log on change only) */
    bool ever_ok;
    uint64_t ok, failed;
};

struct coord_route_view {
    uv_loop_t *loop;
    coord_dqlite_client_t *db; /* borrowed */
    ax_clock_t *clock;
    ax_rand_t *rand;
    ax_rand_splitmix_t own_rand;
    uv_timer_t timer;
    bool timer_open, stopped;
    uint64_t ticks;
    struct refresh q[Q_COUNT];

    coord_view_edge_t *edges; /* owned */
    size_t nedges;
    uint64_t edges_at_wall;         /* wall ms when the edges snapshot was taken */
    coord_route_edge_t *scratch;    /* owned: nedges entries for coord_route_pick */
    coord_view_channel_t *channels; /* owned, sorted by slug */
    size_t nchannels;
    coord_regions_t *regions; /* owned */

    /* The leader's edge registry (edges.h), borrowed; preferred while it knows edges. */
    const coord_edges_t *registry;
    coord_route_edge_t *reg_scratch; /* owned: reg_cap entries */
    size_t reg_cap;
    coord_view_edge_t *reg_edges; /* owned: the registry as coord_view_edge_t, for listings */

    uint64_t routed[COORD_ROUTE_TIER_COUNT];
    uint64_t no_edge, unknown_channel, bad_rows;
};

/* ---- snapshots ------------------------------------------------------------------------------ */

int coord__route_view_set_edges(coord_route_view_t *v, const coord_view_edge_t *edges, size_t n)
{
    if (n > COORD_VIEW_EDGES_MAX)
        n = COORD_VIEW_EDGES_MAX;
    coord_view_edge_t *copy = n ? ax_malloc(n * sizeof *copy) : NULL;
    coord_route_edge_t *scratch = n ? ax_malloc(n * sizeof *scratch) : NULL;
    if (n && (!copy || !scratch)) {
        ax_free(copy);
        ax_free(scratch);
        return AX_ENOMEM;
    }
    if (n)
        memcpy(copy, edges, n * sizeof *copy);
    ax_free(v->edges);
    ax_free(v->scratch);
    v->edges = copy;
    v->scratch = scratch;
    v->nedges = n;
    v->edges_at_wall = ax_clock_wall_ms(v->clock);
    return 0;
}

static int cmp_channel(const void *a, const void *b)
{
    return strcmp(((const coord_view_channel_t *)a)->slug, ((const coord_view_channel_t *)b)->slug);
}

int coord__route_view_set_channels(coord_route_view_t *v, const coord_view_channel_t *ch, size_t n)
{
    if (n > COORD_VIEW_CHANNELS_MAX)
        n = COORD_VIEW_CHANNELS_MAX;
    coord_view_channel_t *copy = n ? ax_malloc(n * sizeof *copy) : NULL;
    if (n && !copy)
        return AX_ENOMEM;
    if (n) {
        memcpy(copy, ch, n * sizeof *copy);
        /* A stable order, then keep the last row of each slug (the newest live stream). */
        qsort(copy, n, sizeof *copy, cmp_channel);
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            if (w > 0 && strcmp(copy[w - 1].slug, copy[i].slug) == 0)
                copy[w - 1] = copy[i];
            else
                copy[w++] = copy[i];
        }
        n = w;
    }
    ax_free(v->channels);
    v->channels = copy;
    v->nchannels = n;
    return 0;
}

void coord__route_view_set_regions(coord_route_view_t *v, coord_regions_t *regions)
{
    coord_regions_free(v->regions);
    v->regions = regions;
}

/* ---- refresh from dqlite -------------------------------------------------------------------- */

/* Copies a TEXT value into buf (cap bytes with the NUL). NULL gives "". false if it does not
 * fit or is not text: the row is skipped (bytes from the database never reach an assert). */
static bool text_of(const coord_dqlite_value_t *val, char *buf, size_t cap)
{
    if (val->type == COORD_DQLITE_NULL) {
        buf[0] = '\0';
        return true;
    }
    if ((val->type != COORD_DQLITE_TEXT && val->type != COORD_DQLITE_ISO8601) ||
        val->s.len >= cap || memchr(val->s.base, '\0', val->s.len))
        return false;
    memcpy(buf, val->s.base, val->s.len);
    buf[val->s.len] = '\0';
    return true;
}

static bool uint_of(const coord_dqlite_value_t *val, uint64_t max, uint64_t *out)
{
    if (val->type == COORD_DQLITE_NULL) {
        *out = 0;
        return true;
    }
    if (val->type != COORD_DQLITE_INTEGER && val->type != COORD_DQLITE_UNIXTIME)
        return false;
    *out = val->i < 0 ? 0 : ((uint64_t)val->i > max ? max : (uint64_t)val->i);
    return true;
}

static int load_edges(coord_route_view_t *v, const coord_dqlite_rows_t *rows)
{
    if (rows->ncols != 8)
        return AX_EPROTO;
    size_t n = rows->nrows < COORD_VIEW_EDGES_MAX ? rows->nrows : COORD_VIEW_EDGES_MAX;
    coord_view_edge_t *e = n ? ax_calloc(n, sizeof *e) : NULL;
    if (n && !e)
        return AX_ENOMEM;
    size_t w = 0;
    for (uint32_t r = 0; r < n; r++) {
        coord_view_edge_t *x = &e[w];
        uint64_t cap, viewers, live, hb;
        if (!text_of(coord_dqlite_rows_at(rows, r, 0), x->id, sizeof x->id) ||
            !text_of(coord_dqlite_rows_at(rows, r, 1), x->region, sizeof x->region) ||
            !text_of(coord_dqlite_rows_at(rows, r, 2), x->hls_base_url, sizeof x->hls_base_url) ||
            !uint_of(coord_dqlite_rows_at(rows, r, 3), UINT32_MAX, &cap) ||
            !uint_of(coord_dqlite_rows_at(rows, r, 4), UINT32_MAX, &viewers) ||
            !uint_of(coord_dqlite_rows_at(rows, r, 5), UINT32_MAX, &live) ||
            !text_of(coord_dqlite_rows_at(rows, r, 6), x->status, sizeof x->status) ||
            !uint_of(coord_dqlite_rows_at(rows, r, 7), UINT64_MAX, &hb) || x->id[0] == '\0') {
            v->bad_rows++;
            continue;
        }
        x->capacity = (uint32_t)cap;
        x->viewers = (uint32_t)viewers;
        x->live_streams = (uint32_t)live;
        x->last_heartbeat_wall_ms = hb;
        w++;
    }
    int rv = coord__route_view_set_edges(v, e, w);
    ax_free(e);
    return rv;
}

static int load_channels(coord_route_view_t *v, const coord_dqlite_rows_t *rows)
{
    if (rows->ncols != 4)
        return AX_EPROTO;
    size_t n = rows->nrows < COORD_VIEW_CHANNELS_MAX ? rows->nrows : COORD_VIEW_CHANNELS_MAX;
    coord_view_channel_t *c = n ? ax_calloc(n, sizeof *c) : NULL;
    if (n && !c)
        return AX_ENOMEM;
    size_t w = 0;
    for (uint32_t r = 0; r < n; r++) {
        coord_view_channel_t *x = &c[w];
        if (!text_of(coord_dqlite_rows_at(rows, r, 0), x->slug, sizeof x->slug) ||
            !text_of(coord_dqlite_rows_at(rows, r, 1), x->channel_id, sizeof x->channel_id) ||
            !text_of(coord_dqlite_rows_at(rows, r, 2), x->stream_id, sizeof x->stream_id) ||
            !text_of(coord_dqlite_rows_at(rows, r, 3), x->origin_edge_id,
                     sizeof x->origin_edge_id) ||
            coord_route_check_slug(x->slug, strlen(x->slug)) != 0) {
            v->bad_rows++; /* a slug no URL can name is not routable anyway */
            continue;
        }
        w++;
    }
    int rv = coord__route_view_set_channels(v, c, w);
    ax_free(c);
    return rv;
}

static int load_regions(coord_route_view_t *v, const coord_dqlite_rows_t *rows)
{
    if (rows->ncols != 2)
        return AX_EPROTO;
    coord_regions_t *t = NULL;
    int rv = coord_regions_new(&t);
    for (uint32_t r = 0; rv == 0 && r < rows->nrows; r++) {
        char cidr[COORD_CIDR_TEXT_MAX], region[COORD_REGIONS_NAME_MAX + 1];
        coord_cidr_t c;
        if (!text_of(coord_dqlite_rows_at(rows, r, 0), cidr, sizeof cidr) ||
            !text_of(coord_dqlite_rows_at(rows, r, 1), region, sizeof region) ||
            coord_cidr_parse(cidr, strlen(cidr), &c, NULL) != 0) {
            v->bad_rows++;
            continue;
        }
        rv = coord_regions_add(t, &c, region);
        if (rv == AX_EINVAL) {
            v->bad_rows++;
            rv = 0;
        }
    }
    if (rv != 0) {
        coord_regions_free(t);
        return rv;
    }
    coord_regions_seal(t);
    coord__route_view_set_regions(v, t);
    return 0;
}

static void on_refreshed(coord_dqlite_req_t *req, int status)
{
    struct refresh *q = ax_container_of(req, struct refresh, req);
    coord_route_view_t *v = q->view;
    q->in_flight = false;
    if (v->stopped)
        return;
    if (status == 0) {
        switch (q->kind) {
        case Q_EDGES:
            status = load_edges(v, req->rows);
            break;
        case Q_CHANNELS:
            status = load_channels(v, req->rows);
            break;
        default:
            status = load_regions(v, req->rows);
            break;
        }
    }
    if (status == 0) {
        q->ok++;
        if (q->failing)
            AX_LOG_I(LOG, "route: %s refresh works again", query_name[q->kind]);
        q->failing = false;
        q->ever_ok = true;
        return;
    }
    q->failed++;
    /* Before the first success (the schema may not be migrated yet) this is expected. */
    if (!q->failing && q->ever_ok)
        AX_LOG_W(LOG, "route: %s refresh failed: %s%s%.160s (keeping the last snapshot)",
                 query_name[q->kind], ax_err_name(status), req->errmsg[0] ? ": " : "", req->errmsg);
    q->failing = true;
}

static void refresh(coord_route_view_t *v, int kind)
{
    struct refresh *q = &v->q[kind];
    if (q->in_flight || !v->db)
        return;
    memset(&q->req, 0, sizeof q->req);
    q->req.timeout_ms = COORD_VIEW_QUERY_TIMEOUT_MS;
    int rv = coord_dqlite_query_sql(&q->req, v->db, query_sql[kind], NULL, 0, on_refreshed);
    if (rv == 0)
        q->in_flight = true;
    else
        q->failed++;
}

static void on_tick(uv_timer_t *t)
{
    coord_route_view_t *v = ax_container_of(t, coord_route_view_t, timer);
    if (v->stopped)
        return;
    refresh(v, Q_EDGES);
    refresh(v, Q_CHANNELS);
    if (v->ticks % (COORD_VIEW_REGIONS_REFRESH_MS / COORD_VIEW_EDGES_REFRESH_MS) == 0)
        refresh(v, Q_REGIONS);
    v->ticks++;
}

int coord__route_view_new(uv_loop_t *loop, coord_dqlite_client_t *db, ax_clock_t *clock,
                          ax_rand_t *rand, coord_route_view_t **out)
{
    coord_route_view_t *v = ax_calloc(1, sizeof *v);
    *out = NULL;
    if (!v)
        return AX_ENOMEM;
    v->loop = loop;
    v->db = db;
    v->clock = clock;
    if (rand) {
        v->rand = rand;
    } else {
        ax_rand_splitmix_init(&v->own_rand, ax_clock_now_ms(clock) ^ (uint64_t)(uintptr_t)v);
        v->rand = &v->own_rand.rand;
    }
    for (int k = 0; k < Q_COUNT; k++) {
        v->q[k].view = v;
        v->q[k].kind = k;
    }
    if (db) {
        uv_timer_init(loop, &v->timer);
        v->timer_open = true;
        uv_timer_start(&v->timer, on_tick, 0, COORD_VIEW_EDGES_REFRESH_MS);
    }
    *out = v;
    return 0;
}

void coord__route_view_free(coord_route_view_t *v)
{
    if (!v)
        return;
    AX_PRE(v->stopped);
    ax_free(v->edges);
    ax_free(v->scratch);
    ax_free(v->channels);
    coord_regions_free(v->regions);
    ax_free(v->reg_scratch);
    ax_free(v->reg_edges);
    ax_free(v);
}

void coord__route_view_stop(coord_route_view_t *v)
{
    if (!v || v->stopped)
        return;
    v->stopped = true;
    if (v->timer_open) {
        uv_timer_stop(&v->timer);
        uv_close((uv_handle_t *)&v->timer, NULL);
    }
}

/* ---- answers -------------------------------------------------------------------------------- */

/*
 * The wall time at which the snapshot's heartbeat ages are judged. Normally now. When the
 * snapshot has not been refreshed for COORD_VIEW_FRESH_MS (a leader election, the database
 * unreachable), the clock is held at the snapshot's time + COORD_VIEW_FRESH_MS, for up to
 * COORD_VIEW_HOLD_MS: heartbeats we cannot see are not heartbeats that stopped, so an
 * election does not make every edge look dead; a longer outage does.
 */
static uint64_t snapshot_wall(const coord_route_view_t *v)
{
    uint64_t wall = ax_clock_wall_ms(v->clock);
    if (v->edges_at_wall == 0 || wall <= v->edges_at_wall)
        return wall;
    uint64_t age = wall - v->edges_at_wall;
    if (age <= COORD_VIEW_FRESH_MS || age > COORD_VIEW_HOLD_MS)
        return wall;
    return v->edges_at_wall + COORD_VIEW_FRESH_MS;
}

bool coord__route_view_edge_healthy(const coord_route_view_t *v, const coord_view_edge_t *e)
{
    uint64_t wall = snapshot_wall(v);
    if (e->last_heartbeat_wall_ms == 0)
        return false;
    return e->last_heartbeat_wall_ms >= wall ||
           wall - e->last_heartbeat_wall_ms < COORD_ROUTE_HEALTHY_MS;
}

void coord__route_view_set_registry(coord_route_view_t *v, const coord_edges_t *registry)
{
    v->registry = registry;
    if (!registry) { /* nothing to route from there any more: release its scratch */
        ax_free(v->reg_scratch);
        ax_free(v->reg_edges);
        v->reg_scratch = NULL;
        v->reg_edges = NULL;
        v->reg_cap = 0;
    }
}

/* Room for n registry edges in the scratch arrays. 0 or AX_ENOMEM. */
static int reserve_registry(coord_route_view_t *v, size_t n)
{
    if (n <= v->reg_cap)
        return 0;
    coord_route_edge_t *s = ax_realloc(v->reg_scratch, n * sizeof *s);
    if (!s)
        return AX_ENOMEM;
    v->reg_scratch = s;
    coord_view_edge_t *e = ax_realloc(v->reg_edges, n * sizeof *e);
    if (!e)
        return AX_ENOMEM;
    v->reg_edges = e;
    v->reg_cap = n;
    return 0;
}

static size_t registry_count(const coord_route_view_t *v)
{
    return v->registry ? coord_edges_count(v->registry) : 0;
}

/* The registry's last heartbeat (now_ms scale) on the wall clock, as the database keeps it. */
static uint64_t registry_wall(const coord_route_view_t *v, uint64_t hb_ms)
{
    uint64_t now = ax_clock_now_ms(v->clock), wall = ax_clock_wall_ms(v->clock);
    uint64_t age = now > hb_ms ? now - hb_ms : 0;
    return wall > age ? wall - age : 1;
}

const coord_view_edge_t *coord__route_view_edges(coord_route_view_t *v, size_t *n,
                                                 uint64_t *wall_now_ms)
{
    *wall_now_ms = ax_clock_wall_ms(v->clock);
    size_t rn = registry_count(v);
    if (rn > 0 && reserve_registry(v, rn) == 0) {
        for (size_t i = 0; i < rn; i++) {
            coord_edge_info_t info;
            coord_edges_at(v->registry, i, &info);
            coord_view_edge_t *e = &v->reg_edges[i];
            memset(e, 0, sizeof *e);
            snprintf(e->id, sizeof e->id, "%s", info.edge_id);
            snprintf(e->region, sizeof e->region, "%s", info.region);
            snprintf(e->hls_base_url, sizeof e->hls_base_url, "%s", info.hls_base_url);
            snprintf(e->status, sizeof e->status, "%s", info.draining ? "draining" : "up");
            e->capacity = info.capacity_viewers;
            e->viewers = info.viewers;
            e->live_streams = info.live_streams;
            e->load_permille = info.load_permille;
            e->last_heartbeat_wall_ms = registry_wall(v, info.last_heartbeat_ms);
        }
        *n = rn;
        return v->reg_edges;
    }
    *n = v->nedges;
    return v->edges;
}

const char *coord__route_view_edges_source(const coord_route_view_t *v)
{
    return registry_count(v) > 0 ? "registry" : "database";
}

/* Routing from the leader's registry: its edges and origins are fresher than the database's
 * (heartbeats arrive here first). Returns what coord_route_pick returns, or AX_ENOMEM (the
 * caller then uses the database snapshot). */
static int route_registry(coord_route_view_t *v, const char *origin, coord_route_answer_t *a)
{
    size_t n = coord_edges_count(v->registry);
    if (reserve_registry(v, n) != 0)
        return AX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        coord_edge_info_t info;
        coord_edges_at(v->registry, i, &info);
        v->reg_scratch[i] = (coord_route_edge_t){
            .id = info.edge_id,
            .region = info.region,
            .last_heartbeat_ms = info.last_heartbeat_ms, /* the registry's clock = ours */
            .capacity = info.capacity_viewers ? info.capacity_viewers : UINT32_MAX,
            .viewers = info.viewers,
            .load_permille = info.load_permille,
            .draining = info.draining,
        };
    }
    coord_route_result_t res;
    int rv =
        coord_route_pick(v->reg_scratch, n, origin, a->viewer_region[0] ? a->viewer_region : NULL,
                         NULL, v->clock, v->rand, &res);
    if (rv != 0)
        return rv;
    coord_edge_info_t info;
    coord_edges_at(v->registry, res.index, &info);
    a->tier = res.tier;
    snprintf(a->edge_id, sizeof a->edge_id, "%s", info.edge_id);
    snprintf(a->edge_region, sizeof a->edge_region, "%s", info.region);
    size_t blen = strlen(info.hls_base_url);
    while (blen > 0 && info.hls_base_url[blen - 1] == '/')
        blen--;
    snprintf(a->url, sizeof a->url, "%.*s/live/%s/index.m3u8", (int)blen, info.hls_base_url,
             a->channel);
    return 0;
}

static const coord_view_channel_t *find_channel(const coord_route_view_t *v, const char *slug)
{
    size_t lo = 0, hi = v->nchannels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->channels[mid].slug, slug);
        if (c == 0)
            return &v->channels[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const char *peer_region(const coord_route_view_t *v, const struct sockaddr *peer)
{
    if (!peer || !v->regions)
        return NULL;
    uint8_t addr[16] = {0};
    if (peer->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
        return coord_regions_lookup(v->regions, 4, addr);
    }
    if (peer->sa_family == AF_INET6) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(addr, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
        if (memcmp(addr, mapped, sizeof mapped) == 0) {
            memmove(addr, addr + 12, 4);
            memset(addr + 4, 0, 12);
            return coord_regions_lookup(v->regions, 4, addr);
        }
        return coord_regions_lookup(v->regions, 6, addr);
    }
    return NULL;
}

int coord__route_view_route(coord_route_view_t *v, const char *slug, size_t slug_len,
                            const char *region, size_t region_len, const struct sockaddr *peer,
                            coord_route_answer_t *a)
{
    memset(a, 0, sizeof *a);
    a->tier = COORD_ROUTE_TIER_COUNT;
    AX_PRE(coord_route_check_slug(slug, slug_len) == 0);
    memcpy(a->channel, slug, slug_len);
    a->channel[slug_len] = '\0';
    if (region) {
        if (coord_route_check_region(region, region_len) != 0)
            return AX_EINVAL;
        memcpy(a->viewer_region, region, region_len);
        a->viewer_region[region_len] = '\0';
        a->region_source = COORD_VIEW_REGION_QUERY;
    } else {
        const char *r = peer_region(v, peer);
        if (r) {
            snprintf(a->viewer_region, sizeof a->viewer_region, "%s", r);
            a->region_source = COORD_VIEW_REGION_CIDR;
        }
    }

    /* The channel's origin: the registry's (set by AuthorizePublish on the leader) first,
     * else the database snapshot's. */
    coord_origin_t o;
    const coord_view_channel_t *ch = NULL;
    if (v->registry && coord_edges_origin(v->registry, a->channel, &o) == 0) {
        snprintf(a->origin_edge_id, sizeof a->origin_edge_id, "%s", o.edge_id);
    } else if ((ch = find_channel(v, a->channel)) != NULL) {
        snprintf(a->origin_edge_id, sizeof a->origin_edge_id, "%s", ch->origin_edge_id);
    } else {
        v->unknown_channel++;
        return a->status = AX_ENOENT;
    }
    if (registry_count(v) > 0) {
        int rrv = route_registry(v, a->origin_edge_id, a);
        if (rrv == 0) {
            v->routed[a->tier]++;
            return a->status = 0;
        }
        if (rrv != AX_ENOMEM) {
            v->no_edge++;
            return a->status = AX_EAGAIN;
        }
    }

    /* The view keeps wall-clock heartbeats (they come from the database, written by another
     * node); routing wants them on its clock's now_ms scale. */
    uint64_t now = ax_clock_now_ms(v->clock), wall = snapshot_wall(v);
    for (size_t i = 0; i < v->nedges; i++) {
        const coord_view_edge_t *e = &v->edges[i];
        uint64_t hb = 0; /* never beat: as old as it gets */
        if (e->last_heartbeat_wall_ms >= wall)
            hb = now;
        else if (e->last_heartbeat_wall_ms != 0 && wall - e->last_heartbeat_wall_ms < now)
            hb = now - (wall - e->last_heartbeat_wall_ms);
        v->scratch[i] = (coord_route_edge_t){
            .id = e->id,
            .region = e->region,
            .last_heartbeat_ms = hb,
            .capacity = e->capacity ? e->capacity : UINT32_MAX, /* 0: unlimited */
            .viewers = e->viewers,
            .load_permille = e->load_permille,
            /* Only "up" edges take new viewers; a draining or down edge keeps its own. */
            .draining = strcmp(e->status, "up") != 0 && e->status[0] != '\0',
        };
        if (e->last_heartbeat_wall_ms == 0)
            v->scratch[i].draining = true; /* registered, never beat: not routable yet */
    }
    coord_route_result_t res;
    int rv = coord_route_pick(v->scratch, v->nedges, a->origin_edge_id,
                              a->viewer_region[0] ? a->viewer_region : NULL, NULL, v->clock,
                              v->rand, &res);
    if (rv != 0) {
        v->no_edge++;
        return a->status = AX_EAGAIN;
    }
    const coord_view_edge_t *e = &v->edges[res.index];
    a->tier = res.tier;
    v->routed[res.tier]++;
    snprintf(a->edge_id, sizeof a->edge_id, "%s", e->id);
    snprintf(a->edge_region, sizeof a->edge_region, "%s", e->region);
    size_t blen = strlen(e->hls_base_url);
    while (blen > 0 && e->hls_base_url[blen - 1] == '/')
        blen--;
    snprintf(a->url, sizeof a->url, "%.*s/live/%s/index.m3u8", (int)blen, e->hls_base_url,
             a->channel);
    return a->status = 0;
}

int coord__route_view_metrics(const coord_route_view_t *v, ax_buf_t *b)
{
    int rv = 0;
    rv |= ax_buf_printf(b, "# HELP aethex_coordinator_route_decisions_total Viewers routed, by tier.\n"
                 "# TYPE aethex_coordinator_route_decisions_total counter\n");
    for (int t = 0; t < COORD_ROUTE_TIER_COUNT; t++)
        rv |= ax_buf_printf(b, "aethex_coordinator_route_decisions_total{tier=\"%s\"} %" PRIu64 "\n",
                  coord_route_tier_name((coord_route_tier_t)t), v->routed[t]);
    rv |= ax_buf_printf(b,
              "# TYPE aethex_coordinator_route_no_edge_total counter\n"
              "aethex_coordinator_route_no_edge_total %" PRIu64 "\n"
              "# TYPE aethex_coordinator_route_unknown_channel_total counter\n"
              "aethex_coordinator_route_unknown_channel_total %" PRIu64 "\n",
              v->no_edge, v->unknown_channel);
    size_t healthy = 0;
    for (size_t i = 0; i < v->nedges; i++)
        healthy += coord__route_view_edge_healthy(v, &v->edges[i]);
    rv |= ax_buf_printf(b,
              "# TYPE aethex_coordinator_route_edges gauge\n"
              "aethex_coordinator_route_edges{health=\"healthy\"} %zu\n"
              "aethex_coordinator_route_edges{health=\"unhealthy\"} %zu\n"
              "# TYPE aethex_coordinator_route_live_channels gauge\n"
              "aethex_coordinator_route_live_channels %zu\n"
              "# TYPE aethex_coordinator_route_region_blocks gauge\n"
              "aethex_coordinator_route_region_blocks %zu\n"
              "# TYPE aethex_coordinator_route_bad_rows_total counter\n"
              "aethex_coordinator_route_bad_rows_total %" PRIu64 "\n",
              healthy, v->nedges - healthy, v->nchannels, coord_regions_count(v->regions),
              v->bad_rows);
    uint64_t wall = ax_clock_wall_ms(v->clock);
    rv |= ax_buf_printf(b,
              "# HELP aethex_coordinator_route_snapshot_age_ms Age of the edges snapshot from the "
              "database.\n# TYPE aethex_coordinator_route_snapshot_age_ms gauge\n"
              "aethex_coordinator_route_snapshot_age_ms %" PRIu64 "\n",
              v->edges_at_wall && wall > v->edges_at_wall ? wall - v->edges_at_wall : 0);
    rv |= ax_buf_printf(b, "# TYPE aethex_coordinator_route_refreshes_total counter\n");
    for (int k = 0; k < Q_COUNT; k++)
        rv |=
            ax_buf_printf(b,
                "aethex_coordinator_route_refreshes_total{table=\"%s\",result=\"ok\"} %" PRIu64 "\n"
                "aethex_coordinator_route_refreshes_total{table=\"%s\",result=\"failed\"} "
                "%" PRIu64 "\n",
                query_name[k], v->q[k].ok, query_name[k], v->q[k].failed);
    return rv ? AX_ENOMEM : 0;
}

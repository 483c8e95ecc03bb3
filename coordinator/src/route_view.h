/*
 * The coordinator's in-memory view for routing (docs/routing.md): edges, live channels and
 * the CIDR region table, refreshed asynchronously from dqlite by timers on the coordinator's
 * loop (never waited on by a request), and the routing answer the HTTP handlers give.
 * Internal to coordinator/src/. Loop thread only.
 */
#ifndef AETHEX_COORDINATOR_ROUTE_VIEW_H
#define AETHEX_COORDINATOR_ROUTE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#include "aethex/common/clock.h"
#include "aethex/common/error.h"
#include "aethex/common/rand.h"
#include "aethex/common/util.h"
#include "aethex/coordinator/cidr.h"
#include "aethex/coordinator/dqlite_client.h"
#include "aethex/coordinator/edges.h"
#include "aethex/coordinator/route.h"

#define COORD_VIEW_EDGES_MAX 4096          /* edges kept (rows past it are dropped, logged) */
#define COORD_VIEW_CHANNELS_MAX 100000     /* live channels kept */
#define COORD_VIEW_EDGES_REFRESH_MS 1000   /* edges and live channels from dqlite */
#define COORD_VIEW_REGIONS_REFRESH_MS 5000 /* the regions table from dqlite */
#define COORD_VIEW_FRESH_MS 2000           /* a snapshot older than this: heartbeat ages are held */
#define COORD_VIEW_HOLD_MS 15000           /* ... for at most this long after the snapshot */
#define COORD_VIEW_QUERY_TIMEOUT_MS 2000   /* one refresh query */
#define COORD_VIEW_ID_MAX 64               /* edge ids, channel and stream ids */
#define COORD_VIEW_URL_MAX 255             /* an edge's public HLS base URL */
#define COORD_VIEW_ROUTE_URL_MAX (COORD_VIEW_URL_MAX + COORD_ROUTE_SLUG_MAX + 32)

typedef struct coord_route_view coord_route_view_t;

/* One edge as the view knows it. */
typedef struct coord_view_edge {
    char id[COORD_VIEW_ID_MAX + 1]; /* edges.name = RegisterEdge.edge_id */
    char region[COORD_VIEW_ID_MAX + 1];
    char hls_base_url[COORD_VIEW_URL_MAX + 1];
    char status[16];   /* "up", "draining", "down" */
    uint32_t capacity; /* viewers; 0: unlimited (aethex.proto) */
    uint32_t viewers;
    uint32_t live_streams;
    uint32_t load_permille;          /* 0..1000 */
    uint64_t last_heartbeat_wall_ms; /* Unix ms; 0: never */
} coord_view_edge_t;

/* One live channel. */
typedef struct coord_view_channel {
    char slug[COORD_ROUTE_SLUG_MAX + 1];
    char channel_id[COORD_VIEW_ID_MAX + 1];
    char stream_id[COORD_VIEW_ID_MAX + 1];
    char origin_edge_id[COORD_VIEW_ID_MAX + 1]; /* "" when unknown */
} coord_view_channel_t;

/*
 * A view on `loop`. With `db` (borrowed; must outlive the view's stop), timers refresh edges
 * and live channels every COORD_VIEW_EDGES_REFRESH_MS and regions every
 * COORD_VIEW_REGIONS_REFRESH_MS; without, only the setters below fill it (tests). `clock`
 * (must outlive the view) judges heartbeat ages; `rand` (may be NULL: a splitmix seeded from
 * the clock) spreads viewers among equal edges. Returns 0 or AX_ENOMEM.
 */
int coord__route_view_new(uv_loop_t *loop, coord_dqlite_client_t *db, ax_clock_t *clock,
                          ax_rand_t *rand, coord_route_view_t **out);

/* Stops the timers; callbacks of queries in flight are ignored from now on. The memory is
 * kept until the process ends (as the HTTP listener's is). NULL does nothing. */
void coord__route_view_stop(coord_route_view_t *v);

/* Frees a stopped view once its timer has closed (the loop ran after stop). For tests: the
 * coordinator keeps its view until the process ends. NULL does nothing. */
void coord__route_view_free(coord_route_view_t *v);

/* Replace the content (copied) as a refresh would: for tests and for the edge registry. */
int coord__route_view_set_edges(coord_route_view_t *v, const coord_view_edge_t *edges, size_t n);
int coord__route_view_set_channels(coord_route_view_t *v, const coord_view_channel_t *ch, size_t n);
/* `regions` is taken (sealed); NULL empties the table. */
void coord__route_view_set_regions(coord_route_view_t *v, coord_regions_t *regions);

/* Where the viewer's region came from. */
typedef enum {
    COORD_VIEW_REGION_NONE,  /* unknown: no ?region= and no CIDR match */
    COORD_VIEW_REGION_QUERY, /* ?region= */
    COORD_VIEW_REGION_CIDR,  /* the regions table */
} coord_view_region_source_t;

/* A routing answer. */
typedef struct coord_route_answer {
    int status; /* 0; AX_ENOENT: unknown or not-live channel; AX_EAGAIN: no edge can take it */
    char channel[COORD_ROUTE_SLUG_MAX + 1];
    char edge_id[COORD_VIEW_ID_MAX + 1];
    char edge_region[COORD_VIEW_ID_MAX + 1];
    char url[COORD_VIEW_ROUTE_URL_MAX + 1]; /* <hls_base_url>/live/<slug>/index.m3u8 */
    char origin_edge_id[COORD_VIEW_ID_MAX + 1];
    char viewer_region[COORD_ROUTE_REGION_MAX + 1];
    coord_view_region_source_t region_source;
    coord_route_tier_t tier;
} coord_route_answer_t;

/*
 * Routes one viewer of channel `slug` (valid: coord_route_check_slug; borrowed). `region`
 * (borrowed, `region_len` bytes; NULL: none given) overrides the CIDR lookup of `peer`
 * (borrowed; may be NULL). Fills *a (a->status says the outcome) and returns a->status, or
 * AX_EINVAL for a bad region name (nothing routed).
 */
int coord__route_view_route(coord_route_view_t *v, const char *slug, size_t slug_len,
                            const char *region, size_t region_len, const struct sockaddr *peer,
                            coord_route_answer_t *a);

/*
 * The leader's edge registry (edges.h; borrowed, must outlive the view; NULL: none). While it
 * knows edges, routing uses its edges and origins instead of the database snapshot (they are
 * fresher: heartbeats arrive there first); a channel it does not know is still looked up in
 * the snapshot. Its clock must be the view's (same now_ms scale). NULL also releases the
 * scratch memory kept for it.
 */
void coord__route_view_set_registry(coord_route_view_t *v, const coord_edges_t *registry);

/* The edges as known now (borrowed until the next call, refresh or setter), with the view's
 * wall clock now for heartbeat ages: the registry's when it knows edges, else the snapshot. */
const coord_view_edge_t *coord__route_view_edges(coord_route_view_t *v, size_t *n,
                                                 uint64_t *wall_now_ms);

/* "registry" or "database": where coord__route_view_edges() reads from now. */
const char *coord__route_view_edges_source(const coord_route_view_t *v);

/* True when `e` is healthy now (heartbeat age < COORD_ROUTE_HEALTHY_MS). */
bool coord__route_view_edge_healthy(const coord_route_view_t *v, const coord_view_edge_t *e);

/* Appends the view's Prometheus metrics (aethex_coordinator_route_*) to `out`. */
int coord__route_view_metrics(const coord_route_view_t *v, ax_buf_t *out);

/* http.c: the routes GET /live/<slug>/index.m3u8, /api/v1/route and /api/v1/edges answer
 * from `view` (borrowed; must outlive the listener); before this call they answer 503. */
struct coord_http;
void coord__http_set_route_view(struct coord_http *http, coord_route_view_t *view);

#endif /* AETHEX_COORDINATOR_ROUTE_VIEW_H */

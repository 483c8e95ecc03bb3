/*
 * Viewer routing: which edge serves a viewer of a live channel (docs/routing.md).
 *
 * Pure: no sockets, no database, no clock of its own. The caller hands in a snapshot of the
 * edges it knows (the coordinator's in-memory registry), the channel's origin edge, the
 * viewer's region, a clock (heartbeat age) and a random source (spreading among equals), and
 * gets one edge back or "no edge". A test drives it with ax_clock_manual_t and a seeded
 * ax_rand_splitmix_t and replays any decision exactly.
 *
 * The decision, in order (the first tier with a candidate wins):
 *
 *   1 VIEWER_REGION  edges of the viewer's region      } healthy (heartbeat age <
 *   2 ORIGIN_REGION  edges of the origin edge's region } healthy_ms), not draining, and
 *   3 ANY_REGION     every other edge                  } spare capacity (viewers < capacity)
 *   4 ORIGIN         the origin itself when healthy, even when full (it already holds every
 *                    byte of the stream: one more viewer there beats a failure), unless the
 *                    policy says origin_overflow = false
 *   -  no edge       AX_ENOENT
 *
 * Inside a tier, the least utilised edge wins (viewers / capacity, in buckets of
 * util_bucket_permille so that edges within a few percent count as equals, then the edge's
 * reported load); among equals the random source picks one, so that a burst of viewers
 * between two heartbeats spreads instead of herding onto one edge. Without a random source
 * the smallest id wins (fully deterministic).
 *
 * Threading: any thread; nothing is kept between calls.
 */
#ifndef AETHEX_COORDINATOR_ROUTE_H
#define AETHEX_COORDINATOR_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/clock.h"
#include "aethex/common/error.h"
#include "aethex/common/rand.h"

/* An edge whose last heartbeat is older than this is not routed to (edges beat every 1 s). */
#define COORD_ROUTE_HEALTHY_MS 3000
/* Utilisation within this many permille counts as equal load (then the random source picks). */
#define COORD_ROUTE_UTIL_BUCKET_PERMILLE 50
/* Longest region name and channel slug accepted anywhere on the routing path. */
#define COORD_ROUTE_REGION_MAX 32
#define COORD_ROUTE_SLUG_MAX 64

/* One edge as routing sees it. Strings are borrowed for the call. */
typedef struct coord_route_edge {
    const char *id;             /* the edge's id (unique) */
    const char *region;         /* its region */
    uint64_t last_heartbeat_ms; /* on the injected clock's now_ms() scale */
    uint32_t capacity;          /* viewers it accepts; 0 accepts none */
    uint32_t viewers;           /* viewers it reported */
    uint32_t load_permille;     /* its reported load (CPU), 0..1000; tie-break after viewers */
    bool draining;              /* it asked for no new viewers */
} coord_route_edge_t;

typedef struct coord_route_policy {
    uint32_t healthy_ms;           /* COORD_ROUTE_HEALTHY_MS */
    uint32_t util_bucket_permille; /* COORD_ROUTE_UTIL_BUCKET_PERMILLE; 0 or 1: exact */
    bool origin_overflow;          /* tier 4 (true) */
} coord_route_policy_t;

void coord_route_policy_default(coord_route_policy_t *p);

typedef enum {
    COORD_ROUTE_VIEWER_REGION,
    COORD_ROUTE_ORIGIN_REGION,
    COORD_ROUTE_ANY_REGION,
    COORD_ROUTE_ORIGIN,
    COORD_ROUTE_TIER_COUNT,
} coord_route_tier_t;

/* "viewer_region", "origin_region", "any_region", "origin". */
const char *coord_route_tier_name(coord_route_tier_t t);

typedef struct coord_route_result {
    size_t index;            /* into the `edges` array given */
    coord_route_tier_t tier; /* why it was chosen */
    size_t origin_index;     /* the origin among `edges`, or SIZE_MAX when absent */
} coord_route_result_t;

/*
 * Picks the edge for one viewer of a channel whose origin edge is `origin_id` (borrowed;
 * NULL or "" when the origin is unknown: tiers 2 and 4 are skipped). `viewer_region` is
 * borrowed; NULL or "" when unknown (tier 1 skipped). `edges` (n of them) are borrowed.
 * `policy` NULL: the defaults. `rand` NULL: ties go to the smallest id.
 * Returns 0 with *out filled, or AX_ENOENT when no edge can take the viewer (out->tier is
 * then COORD_ROUTE_TIER_COUNT and out->origin_index still says whether the origin was seen).
 */
int coord_route_pick(const coord_route_edge_t *edges, size_t n, const char *origin_id,
                     const char *viewer_region, const coord_route_policy_t *policy,
                     ax_clock_t *clock, ax_rand_t *rand, coord_route_result_t *out);

/* True when `e` is healthy at `now_ms` under `policy` (heartbeat age < healthy_ms; a
 * heartbeat "from the future", as after a clock step, counts as fresh). */
bool coord_route_edge_healthy(const coord_route_edge_t *e, uint64_t now_ms,
                              const coord_route_policy_t *policy);

/*
 * Validates a channel slug from a URL: 1..COORD_ROUTE_SLUG_MAX bytes of [A-Za-z0-9_-] (a
 * URL name: nothing to escape, no dots, so no path tricks). Returns 0 or AX_EINVAL.
 */
int coord_route_check_slug(const char *s, size_t len);

/* Validates a region name: 1..COORD_ROUTE_REGION_MAX bytes of [A-Za-z0-9_.-]. 0 or AX_EINVAL. */
int coord_route_check_region(const char *s, size_t len);

/* ---- HTTP request parts (pure; fuzz.coord_http_path) ------------------------------------- */

#define COORD_ROUTE_PATH_MAX 1024 /* longest request path (with query) looked at */

/*
 * Parses a watch path "/live/<slug>/index.m3u8" (`path` of `len` bytes, borrowed, without
 * the query string). On success *slug points into `path` and *slug_len is its length (a valid
 * slug, coord_route_check_slug). Returns 0, AX_ENOENT (not a watch path: another resource),
 * or AX_EINVAL (a watch path with a bad slug: empty, too long, bad characters).
 */
int coord_route_parse_live_path(const char *path, size_t len, const char **slug, size_t *slug_len);

/*
 * Finds parameter `name` in a query string ("a=1&b=2", without the '?'; borrowed). On success
 * *value and *value_len point into `query` (raw: not percent-decoded; our values never need it,
 * and a '%' fails their validation). The first occurrence wins. Returns 0, AX_ENOENT (absent)
 * or AX_EINVAL (longer than COORD_ROUTE_PATH_MAX).
 */
int coord_route_query_param(const char *query, size_t len, const char *name, const char **value,
                            size_t *value_len);

#endif /* AETHEX_COORDINATOR_ROUTE_H */

/*
 * Viewer routing (route.h, docs/routing.md): tiers, then least utilised, then a random pick
 * among equals. Pure: everything it needs is in its arguments.
 */
#include "aethex/coordinator/route.h"

#include <string.h>

void coord_route_policy_default(coord_route_policy_t *p)
{
    p->healthy_ms = COORD_ROUTE_HEALTHY_MS;
    p->util_bucket_permille = COORD_ROUTE_UTIL_BUCKET_PERMILLE;
    p->origin_overflow = true;
}

const char *coord_route_tier_name(coord_route_tier_t t)
{
    static const char *const names[COORD_ROUTE_TIER_COUNT] = {"viewer_region", "origin_region",
                                                              "any_region", "origin"};
    return (unsigned)t < COORD_ROUTE_TIER_COUNT ? names[t] : "none";
}

bool coord_route_edge_healthy(const coord_route_edge_t *e, uint64_t now_ms,
                              const coord_route_policy_t *policy)
{
    if (e->last_heartbeat_ms >= now_ms)
        return true;
    return now_ms - e->last_heartbeat_ms < policy->healthy_ms;
}

static bool str_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static bool nonempty(const char *s)
{
    return s && s[0] != '\0';
}

/* Viewers per capacity in buckets; an edge with no capacity never gets here (no spare). */
static uint64_t util_bucket(const coord_route_edge_t *e, const coord_route_policy_t *p)
{
    uint64_t permille = e->capacity ? (uint64_t)e->viewers * 1000u / e->capacity : 1000u;
    return p->util_bucket_permille > 1 ? permille / p->util_bucket_permille : permille;
}

/* -1: a is better, 1: b is better, 0: equals (the random source decides). */
static int compare_load(const coord_route_edge_t *a, const coord_route_edge_t *b,
                        const coord_route_policy_t *p)
{
    uint64_t ua = util_bucket(a, p), ub = util_bucket(b, p);
    if (ua != ub)
        return ua < ub ? -1 : 1;
    if (a->load_permille != b->load_permille)
        return a->load_permille < b->load_permille ? -1 : 1;
    return 0;
}

static bool in_tier(const coord_route_edge_t *e, coord_route_tier_t tier, const char *viewer_region,
                    const char *origin_region)
{
    switch (tier) {
    case COORD_ROUTE_VIEWER_REGION:
        return str_eq(e->region, viewer_region);
    case COORD_ROUTE_ORIGIN_REGION:
        return str_eq(e->region, origin_region);
    case COORD_ROUTE_ANY_REGION:
        return true;
    default:
        return false;
    }
}

int coord_route_pick(const coord_route_edge_t *edges, size_t n, const char *origin_id,
                     const char *viewer_region, const coord_route_policy_t *policy,
                     ax_clock_t *clock, ax_rand_t *rand, coord_route_result_t *out)
{
    coord_route_policy_t defaults;
    if (!policy) {
        coord_route_policy_default(&defaults);
        policy = &defaults;
    }
    uint64_t now = ax_clock_now_ms(clock);
    out->index = SIZE_MAX;
    out->tier = COORD_ROUTE_TIER_COUNT;
    out->origin_index = SIZE_MAX;

    const char *origin_region = NULL;
    if (nonempty(origin_id)) {
        for (size_t i = 0; i < n; i++) {
            if (str_eq(edges[i].id, origin_id)) {
                out->origin_index = i;
                origin_region = edges[i].region;
                break;
            }
        }
    }
    if (!nonempty(viewer_region))
        viewer_region = NULL;
    if (!nonempty(origin_region))
        origin_region = NULL;

    for (coord_route_tier_t tier = COORD_ROUTE_VIEWER_REGION; tier <= COORD_ROUTE_ANY_REGION;
         tier++) {
        if ((tier == COORD_ROUTE_VIEWER_REGION && !viewer_region) ||
            (tier == COORD_ROUTE_ORIGIN_REGION && !origin_region))
            continue;
        size_t best = SIZE_MAX;
        uint32_t equals = 0; /* how many equals `best` has met so far (reservoir sampling) */
        for (size_t i = 0; i < n; i++) {
            const coord_route_edge_t *e = &edges[i];
            if (!nonempty(e->id) || e->draining || e->viewers >= e->capacity ||
                !coord_route_edge_healthy(e, now, policy) ||
                !in_tier(e, tier, viewer_region, origin_region))
                continue;
            if (best == SIZE_MAX) {
                best = i;
                equals = 1;
                continue;
            }
            int c = compare_load(e, &edges[best], policy);
            if (c < 0) {
                best = i;
                equals = 1;
            } else if (c == 0) {
                /* One pass, uniform among equals: replace with probability 1/(k+1). */
                equals++;
                if (rand ? ax_rand_below(rand, equals) == 0 : strcmp(e->id, edges[best].id) < 0)
                    best = i;
            }
        }
        if (best != SIZE_MAX) {
            out->index = best;
            out->tier = tier;
            return 0;
        }
    }

    if (policy->origin_overflow && out->origin_index != SIZE_MAX) {
        const coord_route_edge_t *o = &edges[out->origin_index];
        if (!o->draining && coord_route_edge_healthy(o, now, policy)) {
            out->index = out->origin_index;
            out->tier = COORD_ROUTE_ORIGIN;
            return 0;
        }
    }
    return AX_ENOENT;
}

static int check_chars(const char *s, size_t len, size_t max, const char *extra)
{
    if (!s || len == 0 || len > max)
        return AX_EINVAL;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
            continue;
        if (ch != '\0' && strchr(extra, ch))
            continue;
        return AX_EINVAL;
    }
    return 0;
}

int coord_route_check_slug(const char *s, size_t len)
{
    return check_chars(s, len, COORD_ROUTE_SLUG_MAX, "_-");
}

int coord_route_check_region(const char *s, size_t len)
{
    return check_chars(s, len, COORD_ROUTE_REGION_MAX, "_.-");
}

int coord_route_parse_live_path(const char *path, size_t len, const char **slug, size_t *slug_len)
{
    static const char prefix[] = "/live/";
    static const char suffix[] = "/index.m3u8";
    const size_t plen = sizeof prefix - 1, slen = sizeof suffix - 1;
    *slug = NULL;
    *slug_len = 0;
    if (!path || len < plen || memcmp(path, prefix, plen) != 0)
        return AX_ENOENT;
    if (len > COORD_ROUTE_PATH_MAX)
        return AX_EINVAL;
    if (len < plen + slen || memcmp(path + len - slen, suffix, slen) != 0)
        return AX_ENOENT;
    const char *s = path + plen;
    size_t n = len - plen - slen;
    if (coord_route_check_slug(s, n) != 0)
        return AX_EINVAL;
    *slug = s;
    *slug_len = n;
    return 0;
}

int coord_route_query_param(const char *query, size_t len, const char *name, const char **value,
                            size_t *value_len)
{
    *value = NULL;
    *value_len = 0;
    if (!query)
        return AX_ENOENT;
    if (len > COORD_ROUTE_PATH_MAX)
        return AX_EINVAL;
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && query[end] != '&')
            end++;
        /* One "key[=value]" in [i, end). */
        if (end - i >= nlen && memcmp(query + i, name, nlen) == 0 &&
            (end - i == nlen || query[i + nlen] == '=')) {
            size_t v = i + nlen + (end - i > nlen ? 1 : 0);
            *value = query + v;
            *value_len = end - v;
            return 0;
        }
        i = end + 1;
    }
    return AX_ENOENT;
}

/*
 * coordinator.route: which edge a viewer is sent to (route.h), on a manual clock.
 */
#include "ax_test.h"

#include <stdio.h>
#include <string.h>

#include "aethex/common/clock.h"
#include "aethex/common/rand.h"
#include "aethex/coordinator/route.h"

struct fixture {
    ax_clock_manual_t clock;
    ax_rand_splitmix_t rand;
    coord_route_edge_t edges[32];
    char ids[32][16];
    size_t n;
};

static int setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof *f);
    ax_clock_manual_init(&f->clock, 1000000, 1700000000000ull);
    ax_rand_splitmix_init(&f->rand, 42);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    test_free(*state);
    return 0;
}

static coord_route_edge_t *add(struct fixture *f, const char *id, const char *region,
                               uint32_t capacity, uint32_t viewers)
{
    coord_route_edge_t *e = &f->edges[f->n];
    snprintf(f->ids[f->n], sizeof f->ids[f->n], "%s", id);
    *e = (coord_route_edge_t){.id = f->ids[f->n],
                              .region = region,
                              .last_heartbeat_ms = f->clock.now,
                              .capacity = capacity,
                              .viewers = viewers};
    f->n++;
    return e;
}

static const char *pick(struct fixture *f, const char *origin, const char *region,
                        coord_route_tier_t *tier)
{
    coord_route_result_t r;
    int rv =
        coord_route_pick(f->edges, f->n, origin, region, NULL, &f->clock.clock, &f->rand.rand, &r);
    if (tier)
        *tier = r.tier;
    if (rv != 0) {
        assert_ax_err(rv, AX_ENOENT);
        return NULL;
    }
    assert_true(r.index < f->n);
    return f->edges[r.index].id;
}

static void beat_all(struct fixture *f)
{
    for (size_t i = 0; i < f->n; i++)
        f->edges[i].last_heartbeat_ms = f->clock.now;
}

/* A viewer goes to an edge of their own region, even when the origin is elsewhere. */
static void route__viewer_region_first(void **state)
{
    struct fixture *f = *state;
    add(f, "eu-1", "eu", 100, 0);
    add(f, "us-1", "us", 100, 0);
    add(f, "ap-1", "ap", 100, 0);
    coord_route_tier_t tier;
    assert_string_equal(pick(f, "eu-1", "us", &tier), "us-1");
    assert_int_equal(tier, COORD_ROUTE_VIEWER_REGION);
    assert_string_equal(pick(f, "eu-1", "ap", &tier), "ap-1");
    assert_string_equal(pick(f, "us-1", "eu", &tier), "eu-1");
}

/* With no edge in the viewer's region, the origin's region is preferred over any other. */
static void route__origin_region_when_viewer_region_has_none(void **state)
{
    struct fixture *f = *state;
    add(f, "eu-origin", "eu", 100, 90);
    add(f, "eu-2", "eu", 100, 50);
    add(f, "us-1", "us", 100, 0); /* emptier, but not the origin's region */
    coord_route_tier_t tier;
    assert_string_equal(pick(f, "eu-origin", "sa", &tier), "eu-2");
    assert_int_equal(tier, COORD_ROUTE_ORIGIN_REGION);
    /* An unknown viewer region behaves the same. */
    assert_string_equal(pick(f, "eu-origin", NULL, &tier), "eu-2");
    assert_string_equal(pick(f, "eu-origin", "", &tier), "eu-2");
}

/* Without an edge in the viewer's or origin's region, any healthy edge with room is used. */
static void route__any_region_last_before_origin(void **state)
{
    struct fixture *f = *state;
    add(f, "eu-origin", "eu", 10, 10); /* full */
    add(f, "us-1", "us", 100, 80);
    add(f, "ap-1", "ap", 100, 20);
    coord_route_tier_t tier;
    assert_string_equal(pick(f, "eu-origin", "sa", &tier), "ap-1");
    assert_int_equal(tier, COORD_ROUTE_ANY_REGION);
}

/* The least utilised edge of a tier wins: viewers relative to capacity, not absolute. */
static void route__least_utilised_wins(void **state)
{
    struct fixture *f = *state;
    add(f, "a", "eu", 1000, 400); /* 40% */
    add(f, "b", "eu", 100, 70);   /* 70% */
    add(f, "c", "eu", 200, 20);   /* 10% */
    assert_string_equal(pick(f, NULL, "eu", NULL), "c");
    f->edges[2].viewers = 190; /* 95% */
    assert_string_equal(pick(f, NULL, "eu", NULL), "a");
}

/* Reported load breaks a tie in utilisation. */
static void route__load_breaks_utilisation_ties(void **state)
{
    struct fixture *f = *state;
    add(f, "a", "eu", 100, 10)->load_permille = 700;
    add(f, "b", "eu", 100, 11)->load_permille = 200; /* same 5% bucket, less CPU */
    assert_string_equal(pick(f, NULL, "eu", NULL), "b");
}

/* Equal edges share viewers through the random source; the same seed picks the same edges. */
static void route__equals_spread_by_seeded_rand(void **state)
{
    struct fixture *f = *state;
    add(f, "a", "eu", 100, 0);
    add(f, "b", "eu", 100, 0);
    add(f, "c", "eu", 100, 0);
    int count[3] = {0, 0, 0};
    char first[64] = "";
    for (int i = 0; i < 3000; i++) {
        const char *id = pick(f, NULL, "eu", NULL);
        count[id[0] - 'a']++;
        if (i < 60)
            first[i] = id[0];
    }
    for (int k = 0; k < 3; k++)
        assert_in_range(count[k], 800, 1200);
    /* Replay from the same seed: the same sequence. */
    ax_rand_splitmix_init(&f->rand, 42);
    for (int i = 0; i < 60; i++)
        assert_int_equal(pick(f, NULL, "eu", NULL)[0], first[i]);
    /* Without a random source, the smallest id wins every time. */
    coord_route_result_t r;
    assert_ax_err(coord_route_pick(f->edges, f->n, NULL, "eu", NULL, &f->clock.clock, NULL, &r), 0);
    assert_string_equal(f->edges[r.index].id, "a");
}

/* A full edge (viewers == capacity), a zero-capacity edge and a draining edge get nobody. */
static void route__full_and_draining_edges_are_skipped(void **state)
{
    struct fixture *f = *state;
    add(f, "full", "eu", 50, 50);
    add(f, "zero", "eu", 0, 0);
    add(f, "drain", "eu", 100, 0)->draining = true;
    add(f, "ok", "eu", 100, 99);
    for (int i = 0; i < 20; i++)
        assert_string_equal(pick(f, NULL, "eu", NULL), "ok");
    f->edges[3].viewers = 100;
    assert_null(pick(f, NULL, "eu", NULL));
}

/* The origin takes the viewer as a last resort when every edge is full; not when it is dead. */
static void route__origin_is_the_last_resort(void **state)
{
    struct fixture *f = *state;
    add(f, "origin", "eu", 10, 10);
    add(f, "us-1", "us", 10, 10);
    coord_route_tier_t tier;
    assert_string_equal(pick(f, "origin", "us", &tier), "origin");
    assert_int_equal(tier, COORD_ROUTE_ORIGIN);
    /* The policy can forbid it. */
    coord_route_policy_t p;
    coord_route_policy_default(&p);
    p.origin_overflow = false;
    coord_route_result_t r;
    assert_ax_err(coord_route_pick(f->edges, f->n, "origin", "us", &p, &f->clock.clock, NULL, &r),
                  AX_ENOENT);
    assert_int_equal(r.origin_index, 0);
    /* A dead origin is nobody's last resort: no edge. */
    ax_clock_manual_advance(&f->clock, COORD_ROUTE_HEALTHY_MS);
    f->edges[1].last_heartbeat_ms = f->clock.now;
    assert_null(pick(f, "origin", "us", &tier));
    assert_int_equal(tier, COORD_ROUTE_TIER_COUNT);
}

/* An edge is healthy until its heartbeat is COORD_ROUTE_HEALTHY_MS old, then expires. */
static void route__edges_expire_by_heartbeat_age(void **state)
{
    struct fixture *f = *state;
    add(f, "a", "eu", 100, 0);
    add(f, "b", "eu", 100, 50);
    assert_string_equal(pick(f, NULL, "eu", NULL), "a");
    ax_clock_manual_advance(&f->clock, COORD_ROUTE_HEALTHY_MS - 1);
    f->edges[1].last_heartbeat_ms = f->clock.now;
    assert_string_equal(pick(f, NULL, "eu", NULL), "a"); /* 2999 ms old: still healthy */
    ax_clock_manual_advance(&f->clock, 1);
    assert_string_equal(pick(f, NULL, "eu", NULL), "b"); /* 3000 ms: expired */
    ax_clock_manual_advance(&f->clock, COORD_ROUTE_HEALTHY_MS);
    assert_null(pick(f, NULL, "eu", NULL));
    /* A heartbeat brings it back at once. */
    f->edges[0].last_heartbeat_ms = f->clock.now;
    assert_string_equal(pick(f, NULL, "eu", NULL), "a");
}

/*
 * A simulated hour: 20 edges in 3 regions beat every second; every 10 minutes one region loses
 * an edge (it stops beating) and later it returns. Every second a viewer in each region is
 * routed and the answer is checked against the rules: never a stale, full or draining edge;
 * always the viewer's region while it has room.
 */
static void route__a_simulated_hour_of_heartbeats(void **state)
{
    struct fixture *f = *state;
    static const char *const regions[3] = {"eu", "us", "ap"};
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "%s-%d", regions[i % 3], i);
        add(f, id, regions[i % 3], 1000, (uint32_t)(i * 37 % 900));
    }
    bool dead[20] = {false};
    uint64_t decisions = 0;
    for (int sec = 0; sec < 3600; sec++) {
        ax_clock_manual_advance(&f->clock, 1000);
        int victim = (sec / 600) * 3 % 20; /* one edge per 10 minutes goes silent ... */
        for (int i = 0; i < 20; i++) {
            dead[i] = (i == victim) && (sec % 600) < 300; /* ... for 5 minutes */
            if (!dead[i]) {
                f->edges[i].last_heartbeat_ms = f->clock.now;
                f->edges[i].viewers = (uint32_t)((i * 37 + sec) % 1000);
            }
        }
        for (int r = 0; r < 3; r++) {
            coord_route_result_t res;
            int rv = coord_route_pick(f->edges, f->n, "eu-0", regions[r], NULL, &f->clock.clock,
                                      &f->rand.rand, &res);
            assert_ax_err(rv, 0);
            decisions++;
            const coord_route_edge_t *e = &f->edges[res.index];
            int idx = (int)res.index;
            /* Silent for more than the threshold: never chosen. */
            if (dead[idx])
                assert_true(f->clock.now - e->last_heartbeat_ms < COORD_ROUTE_HEALTHY_MS);
            assert_true(e->viewers < e->capacity || res.tier == COORD_ROUTE_ORIGIN);
            /* Some edge of each region always has room here: the viewer's region is used. */
            assert_int_equal(res.tier, COORD_ROUTE_VIEWER_REGION);
            assert_string_equal(e->region, regions[r]);
        }
    }
    assert_int_equal(decisions, 3 * 3600);
    beat_all(f);
}

/* No edges at all, or only unknown ids: no edge, and the origin is reported absent. */
static void route__no_edges_is_a_clear_no(void **state)
{
    struct fixture *f = *state;
    coord_route_result_t r;
    assert_ax_err(coord_route_pick(f->edges, 0, "x", "eu", NULL, &f->clock.clock, NULL, &r),
                  AX_ENOENT);
    assert_int_equal(r.origin_index, SIZE_MAX);
    assert_string_equal(coord_route_tier_name(r.tier), "none");
    add(f, "a", "eu", 1, 0);
    assert_string_equal(pick(f, "missing-origin", "us", NULL), "a");
}

/* Slugs and region names are checked by length and character set. */
static void route__slug_and_region_validation(void **state)
{
    (void)state;
    assert_ax_err(coord_route_check_slug("alice_live-2", 12), 0);
    assert_ax_err(coord_route_check_slug("", 0), AX_EINVAL);
    assert_ax_err(coord_route_check_slug("a/b", 3), AX_EINVAL);
    assert_ax_err(coord_route_check_slug("..", 2), AX_EINVAL);
    assert_ax_err(coord_route_check_slug("a%20", 4), AX_EINVAL);
    assert_ax_err(coord_route_check_slug("a\0b", 3), AX_EINVAL);
    char longs[COORD_ROUTE_SLUG_MAX + 2];
    memset(longs, 'a', sizeof longs);
    assert_ax_err(coord_route_check_slug(longs, COORD_ROUTE_SLUG_MAX), 0);
    assert_ax_err(coord_route_check_slug(longs, COORD_ROUTE_SLUG_MAX + 1), AX_EINVAL);
    assert_ax_err(coord_route_check_region("eu-west.1", 9), 0);
    assert_ax_err(coord_route_check_region("eu west", 7), AX_EINVAL);
    assert_ax_err(coord_route_check_region(longs, COORD_ROUTE_REGION_MAX + 1), AX_EINVAL);
}

static int live(const char *p, char *slug)
{
    const char *s;
    size_t n;
    int rv = coord_route_parse_live_path(p, strlen(p), &s, &n);
    if (rv == 0) {
        memcpy(slug, s, n);
        slug[n] = '\0';
    }
    return rv;
}

/* Watch paths give their slug; other paths are not ours; a bad slug is a bad request. */
static void route__parses_watch_paths(void **state)
{
    (void)state;
    char slug[COORD_ROUTE_SLUG_MAX + 1];
    assert_ax_err(live("/live/alice/index.m3u8", slug), 0);
    assert_string_equal(slug, "alice");
    assert_ax_err(live("/live/a-b_C9/index.m3u8", slug), 0);
    assert_string_equal(slug, "a-b_C9");
    assert_ax_err(live("/metrics", slug), AX_ENOENT);
    assert_ax_err(live("/live/alice/seg1.m4s", slug), AX_ENOENT);
    assert_ax_err(live("/live/index.m3u8", slug), AX_ENOENT);
    assert_ax_err(live("/live//index.m3u8", slug), AX_EINVAL);
    assert_ax_err(live("/live/../index.m3u8", slug), AX_EINVAL);
    assert_ax_err(live("/live/a/b/index.m3u8", slug), AX_EINVAL);
    assert_ax_err(live("/live/a%2Fb/index.m3u8", slug), AX_EINVAL);
    char longp[COORD_ROUTE_PATH_MAX + 32];
    snprintf(longp, sizeof longp, "/live/%0*d/index.m3u8", COORD_ROUTE_SLUG_MAX + 1, 0);
    assert_ax_err(live(longp, slug), AX_EINVAL);
}

static const char *param(const char *q, const char *name)
{
    static char out[64];
    const char *v;
    size_t n;
    if (coord_route_query_param(q, strlen(q), name, &v, &n) != 0)
        return NULL;
    memcpy(out, v, n);
    out[n] = '\0';
    return out;
}

/* Query parameters are found by exact name; the first wins; a bare key has an empty value. */
static void route__finds_query_parameters(void **state)
{
    (void)state;
    assert_string_equal(param("channel=alice&region=eu", "channel"), "alice");
    assert_string_equal(param("channel=alice&region=eu", "region"), "eu");
    assert_string_equal(param("regionx=1&region=us&region=eu", "region"), "us");
    assert_string_equal(param("region", "region"), "");
    assert_string_equal(param("a=1&&region=", "region"), "");
    assert_null(param("channel=alice", "region"));
    assert_null(param("", "region"));
    assert_null(param("reg=eu", "region"));
}

int main(void)
{
    ax_test_use_cmocka_allocator();
#define T(name) cmocka_unit_test_setup_teardown(route__##name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(viewer_region_first),
        T(origin_region_when_viewer_region_has_none),
        T(any_region_last_before_origin),
        T(least_utilised_wins),
        T(load_breaks_utilisation_ties),
        T(equals_spread_by_seeded_rand),
        T(full_and_draining_edges_are_skipped),
        T(origin_is_the_last_resort),
        T(edges_expire_by_heartbeat_age),
        T(a_simulated_hour_of_heartbeats),
        T(no_edges_is_a_clear_no),
        T(slug_and_region_validation),
        T(parses_watch_paths),
        T(finds_query_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

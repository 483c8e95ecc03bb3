/*
 * coordinator.route_view: the coordinator's routing view (route_view.h) without a database:
 * snapshots set as a refresh would set them, a manual clock, a seeded random source.
 */
#include "ax_test.h"

#include <arpa/inet.h>
#include <string.h>

#include "../src/route_view.h"

struct fixture {
    uv_loop_t loop;
    ax_clock_manual_t clock;
    ax_rand_splitmix_t rand;
    coord_route_view_t *view;
};

static const uint64_t WALL = 1790000000000ull;

static coord_view_edge_t edge(const char *id, const char *region, uint32_t cap, uint32_t viewers,
                              uint64_t hb)
{
    coord_view_edge_t e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", id);
    snprintf(e.region, sizeof e.region, "%s", region);
    snprintf(e.hls_base_url, sizeof e.hls_base_url, "http://%s.test:8080/", id);
    snprintf(e.status, sizeof e.status, "up");
    e.capacity = cap;
    e.viewers = viewers;
    e.last_heartbeat_wall_ms = hb;
    return e;
}

static int setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    ax_clock_manual_init(&f->clock, 5000000, WALL);
    ax_rand_splitmix_init(&f->rand, 7);
    assert_ax_err(coord__route_view_new(&f->loop, NULL, &f->clock.clock, &f->rand.rand, &f->view),
                  0);
    coord_view_edge_t e[] = {
        edge("eu-1", "eu", 100, 50, WALL), edge("eu-2", "eu", 100, 10, WALL),
        edge("us-1", "us", 100, 20, WALL), edge("ap-1", "ap", 0, 5000, WALL),
        edge("new", "eu", 100, 0, 0), /* registered, never beat */
    };
    assert_ax_err(coord__route_view_set_edges(f->view, e, AX_ARRAY_SIZE(e)), 0);
    coord_view_channel_t ch[] = {
        {"alice", "c1", "s-old", "us-1"},
        {"carol", "c3", "s3", ""},
        {"alice", "c1", "s1", "eu-1"}, /* the later row of a slug wins */
    };
    assert_ax_err(coord__route_view_set_channels(f->view, ch, AX_ARRAY_SIZE(ch)), 0);
    coord_regions_t *t;
    assert_ax_err(coord_regions_new(&t), 0);
    coord_cidr_t c;
    assert_ax_err(coord_cidr_parse("10.0.0.0/8", 10, &c, NULL), 0);
    assert_ax_err(coord_regions_add(t, &c, "us"), 0);
    assert_ax_err(coord_cidr_parse("2001:db8::/32", 13, &c, NULL), 0);
    assert_ax_err(coord_regions_add(t, &c, "ap"), 0);
    coord_regions_seal(t);
    coord__route_view_set_regions(f->view, t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    coord__route_view_stop(f->view);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    coord__route_view_free(f->view);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    test_free(f);
    return 0;
}

static int route(struct fixture *f, const char *slug, const char *region, const char *ip,
                 coord_route_answer_t *a)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr *sa = NULL;
    if (ip && strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
        sa = (struct sockaddr *)s6;
    } else if (ip) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
        sa = (struct sockaddr *)s4;
    }
    return coord__route_view_route(f->view, slug, strlen(slug), region, region ? strlen(region) : 0,
                                   sa, a);
}

/* The caller's address picks the region; ?region= overrides it; the URL is the edge's base
 * (trailing slash dropped) plus the watch path. */
static void route_view__region_from_cidr_or_query(void **state)
{
    struct fixture *f = *state;
    coord_route_answer_t a;
    assert_ax_err(route(f, "alice", NULL, "10.2.3.4", &a), 0);
    assert_string_equal(a.edge_id, "us-1");
    assert_string_equal(a.url, "http://us-1.test:8080/live/alice/index.m3u8");
    assert_string_equal(a.viewer_region, "us");
    assert_int_equal(a.region_source, COORD_VIEW_REGION_CIDR);
    assert_string_equal(a.origin_edge_id, "eu-1");
    assert_ax_err(route(f, "alice", NULL, "::ffff:10.9.9.9", &a), 0); /* dual-stack peer */
    assert_string_equal(a.edge_id, "us-1");
    assert_ax_err(route(f, "alice", NULL, "2001:db8::5", &a), 0);
    assert_string_equal(a.edge_id, "ap-1"); /* capacity 0 is unlimited */
    assert_ax_err(route(f, "alice", "eu", "10.2.3.4", &a), 0);
    assert_string_equal(a.edge_id, "eu-2");
    assert_int_equal(a.region_source, COORD_VIEW_REGION_QUERY);
    /* No region known: the origin's region. */
    assert_ax_err(route(f, "alice", NULL, "192.0.2.1", &a), 0);
    assert_string_equal(a.edge_id, "eu-2");
    assert_int_equal(a.region_source, COORD_VIEW_REGION_NONE);
    assert_int_equal(a.tier, COORD_ROUTE_ORIGIN_REGION);
    assert_ax_err(route(f, "alice", "e u", NULL, &a), AX_EINVAL);
}

/* Unknown channels are AX_ENOENT; a channel without a known origin still routes. */
static void route_view__unknown_channel_and_unknown_origin(void **state)
{
    struct fixture *f = *state;
    coord_route_answer_t a;
    assert_ax_err(route(f, "nobody", "eu", NULL, &a), AX_ENOENT);
    assert_int_equal(a.status, AX_ENOENT);
    assert_ax_err(route(f, "carol", "us", NULL, &a), 0);
    assert_string_equal(a.edge_id, "us-1");
    assert_string_equal(a.origin_edge_id, "");
}

/* A refresh that brings the same rows: the database's heartbeats did not move. */
static void refresh_same(struct fixture *f)
{
    size_t n;
    uint64_t wall;
    const coord_view_edge_t *e = coord__route_view_edges(f->view, &n, &wall);
    assert_ax_err(coord__route_view_set_edges(f->view, e, n), 0);
}

/* Heartbeat ages are wall-clock (they come from the database): an edge silent for the
 * threshold is skipped; an edge that never beat is never chosen; none healthy: AX_EAGAIN. */
static void route_view__stale_edges_and_no_edge(void **state)
{
    struct fixture *f = *state;
    coord_route_answer_t a;
    ax_clock_manual_advance(&f->clock, COORD_ROUTE_HEALTHY_MS - 1);
    refresh_same(f);
    assert_ax_err(route(f, "alice", "us", NULL, &a), 0);
    assert_string_equal(a.edge_id, "us-1");
    ax_clock_manual_advance(&f->clock, 1);
    refresh_same(f);
    assert_ax_err(route(f, "alice", "us", NULL, &a), AX_EAGAIN);
    assert_int_equal(a.status, AX_EAGAIN);
    size_t n;
    uint64_t wall;
    const coord_view_edge_t *e = coord__route_view_edges(f->view, &n, &wall);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_false(coord__route_view_edge_healthy(f->view, &e[i]));
    ax_buf_t b;
    ax_buf_init(&b, 1 << 16);
    assert_ax_err(coord__route_view_metrics(f->view, &b), 0);
    assert_ax_err(ax_buf_put_u8(&b, 0), 0);
    assert_non_null(strstr((char *)b.base, "aethex_coordinator_route_no_edge_total 1\n"));
    assert_non_null(
        strstr((char *)b.base, "aethex_coordinator_route_edges{health=\"unhealthy\"} 5"));
    ax_buf_close(&b);
    coord__route_view_set_edges(f->view, NULL, 0); /* cmocka checks leaks per test body */
}

/* While the snapshot cannot be refreshed (a leader election), heartbeat ages are held at the
 * snapshot's time + COORD_VIEW_FRESH_MS: edges stay routable for up to COORD_VIEW_HOLD_MS,
 * then everything expires. */
static void route_view__an_outage_holds_heartbeat_ages(void **state)
{
    struct fixture *f = *state;
    coord_route_answer_t a;
    ax_clock_manual_advance(&f->clock, 10000); /* no refresh for 10 s */
    assert_ax_err(route(f, "alice", "us", NULL, &a), 0);
    assert_string_equal(a.edge_id, "us-1");
    size_t n;
    uint64_t wall;
    const coord_view_edge_t *e = coord__route_view_edges(f->view, &n, &wall);
    assert_true(coord__route_view_edge_healthy(f->view, &e[0]));
    ax_clock_manual_advance(&f->clock, COORD_VIEW_HOLD_MS - 10000);
    assert_ax_err(route(f, "alice", "us", NULL, &a), 0); /* exactly the hold: still held */
    ax_clock_manual_advance(&f->clock, 1);
    assert_ax_err(route(f, "alice", "us", NULL, &a), AX_EAGAIN);
    assert_false(coord__route_view_edge_healthy(f->view, &e[0]));
}

/* A draining or down edge takes no new viewer. */
static void route_view__draining_edges_take_nobody(void **state)
{
    struct fixture *f = *state;
    coord_view_edge_t e[] = {edge("eu-1", "eu", 100, 90, WALL), edge("eu-2", "eu", 100, 0, WALL)};
    snprintf(e[1].status, sizeof e[1].status, "draining");
    assert_ax_err(coord__route_view_set_edges(f->view, e, 2), 0);
    coord_route_answer_t a;
    for (int i = 0; i < 10; i++) {
        assert_ax_err(route(f, "alice", "eu", NULL, &a), 0);
        assert_string_equal(a.edge_id, "eu-1");
    }
    /* cmocka checks leaks per test body: free what this body allocated. */
    coord__route_view_set_edges(f->view, NULL, 0);
}

/* With the leader's registry set and knowing edges, its edges and origins are used (fresher
 * than the database); a channel it does not know still routes from the snapshot; an edge
 * whose heartbeats stop in the registry expires on the shared clock. */
static void route_view__registry_is_preferred(void **state)
{
    struct fixture *f = *state;
    coord_edges_config_t cfg;
    coord_edges_config_default(&cfg);
    cfg.clock = &f->clock.clock;
    coord_edges_t *reg = NULL;
    assert_ax_err(coord_edges_new(&cfg, &reg), 0);
    coord__route_view_set_registry(f->view, reg);
    coord_route_answer_t a;
    /* An empty registry (a follower's, or a fresh leader's): the snapshot answers. */
    assert_ax_err(route(f, "alice", "us", NULL, &a), 0);
    assert_string_equal(a.edge_id, "us-1");
    char err[AX_ERRMSG_LEN];
    coord_edge_reg_t r1 = {"eu-9", "eu", "http://eu-9.test:80", "", "", 10, 0};
    coord_edge_reg_t r2 = {"us-9", "us", "http://us-9.test:80/", "", "", 0, 0};
    assert_ax_err(coord_edges_register(reg, &r1, 1, NULL, err), 0);
    assert_ax_err(coord_edges_register(reg, &r2, 2, NULL, err), 0);
    assert_ax_err(coord_edges_set_origin(reg, "dave", "c4", "s4", "eu-9"), 0);
    assert_ax_err(route(f, "dave", "us", NULL, &a), 0);
    assert_string_equal(a.edge_id, "us-9");
    assert_string_equal(a.url, "http://us-9.test:80/live/dave/index.m3u8");
    assert_string_equal(a.origin_edge_id, "eu-9");
    /* alice is not in the registry: its origin comes from the snapshot (eu-1, unknown to
     * the registry), the edges from the registry. */
    assert_ax_err(route(f, "alice", "eu", NULL, &a), 0);
    assert_string_equal(a.edge_id, "eu-9");
    assert_string_equal(a.origin_edge_id, "eu-1");
    size_t n;
    uint64_t wall;
    const coord_view_edge_t *e = coord__route_view_edges(f->view, &n, &wall);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].id, "eu-9");
    assert_true(coord__route_view_edge_healthy(f->view, &e[0]));
    assert_string_equal(coord__route_view_edges_source(f->view), "registry");
    /* us-9 keeps beating, eu-9 falls silent: 3 s later us viewers of dave still go to us-9,
     * eu viewers too (eu-9 expired), and with us-9 full... */
    for (int i = 0; i < 3; i++) {
        ax_clock_manual_advance(&f->clock, 1000);
        assert_ax_err(coord_edges_heartbeat(reg, "us-9", 2, 0.1f, 3, NULL, 0), 0);
    }
    assert_ax_err(route(f, "dave", "eu", NULL, &a), 0);
    assert_string_equal(a.edge_id, "us-9");
    assert_int_equal(a.tier, COORD_ROUTE_ANY_REGION);
    /* ... and with no healthy edge in the registry: no edge (not the stale snapshot). */
    ax_clock_manual_advance(&f->clock, COORD_ROUTE_HEALTHY_MS);
    assert_ax_err(route(f, "dave", "eu", NULL, &a), AX_EAGAIN);
    coord__route_view_set_registry(f->view, NULL);
    coord_edges_free(reg);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
#define T(name) cmocka_unit_test_setup_teardown(route_view__##name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(region_from_cidr_or_query), T(unknown_channel_and_unknown_origin),
        T(stale_edges_and_no_edge),   T(draining_edges_take_nobody),
        T(registry_is_preferred),     T(an_outage_holds_heartbeat_ages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

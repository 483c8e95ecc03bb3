/* coordinator.edges: the in-memory edge registry (edges.c), on a manual clock. */
#include "ax_test.h"

#include <string.h>

#include "aethex/coordinator/edges.h"

struct fixture {
    ax_clock_manual_t clock;
    coord_edges_t *e;
    char err[AX_ERRMSG_LEN];
};

/* cmocka 1.1 checks for leaks after the test body, before teardown: each test builds and
 * frees its fixture inside the body (TEST below). */
static struct fixture *start(void)
{
    struct fixture *f = test_calloc(1, sizeof *f);
    ax_clock_manual_init(&f->clock, 1000, 0);
    coord_edges_config_t cfg;
    coord_edges_config_default(&cfg);
    cfg.clock = &f->clock.clock;
    cfg.max_edges = 3;
    assert_int_equal(coord_edges_new(&cfg, &f->e), 0);
    return f;
}

static void finish(struct fixture *f)
{
    coord_edges_free(f->e);
    test_free(f);
}

#define TEST(name)                                                                                 \
    static void name##_body(struct fixture *f);                                                    \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        struct fixture *f = start();                                                               \
        name##_body(f);                                                                            \
        finish(f);                                                                                 \
    }                                                                                              \
    static void name##_body(struct fixture *f)

static coord_edge_reg_t reg(const char *id, const char *region)
{
    return (coord_edge_reg_t){.edge_id = id,
                              .region = region,
                              .hls_base_url = "http://127.0.0.1:8080",
                              .capacity_viewers = 100};
}

/* A registered edge is healthy until its heartbeat is older than the timeout. */
TEST(edges__health_by_heartbeat_age)
{
    coord_edge_reg_t r = reg("edge-a", "eu");
    bool changed = false;
    assert_int_equal(coord_edges_register(f->e, &r, 7, &changed, f->err), 0);
    assert_true(changed);
    assert_true(coord_edges_healthy(f->e, "edge-a"));
    ax_clock_manual_advance(&f->clock, 2999);
    assert_true(coord_edges_healthy(f->e, "edge-a"));
    ax_clock_manual_advance(&f->clock, 1);
    assert_false(coord_edges_healthy(f->e, "edge-a"));
    assert_int_equal(coord_edges_heartbeat(f->e, "edge-a", 7, 0.25f, 12, NULL, 0), 0);
    coord_edge_info_t info;
    assert_int_equal(coord_edges_find(f->e, "edge-a", &info), 0);
    assert_true(info.healthy);
    assert_int_equal(info.viewers, 12);
    assert_int_equal(info.load_permille, 250);
    assert_int_equal(info.last_heartbeat_ms, 4000);
    assert_string_equal(info.region, "eu");
}

/* A heartbeat from an unknown edge, or on another connection, asks it to register again. */
TEST(edges__unknown_heartbeat_refused)
{
    assert_ax_err(coord_edges_heartbeat(f->e, "nobody", 1, 0, 0, NULL, 0), AX_ENOENT);
    coord_edge_reg_t r = reg("edge-a", "eu");
    assert_int_equal(coord_edges_register(f->e, &r, 7, NULL, f->err), 0);
    assert_ax_err(coord_edges_heartbeat(f->e, "edge-a", 8, 0, 0, NULL, 0), AX_ENOENT);
    coord_edges_disconnected(f->e, 7);
    assert_ax_err(coord_edges_heartbeat(f->e, "edge-a", 7, 0, 0, NULL, 0), AX_ENOENT);
    coord_edge_info_t info;
    assert_int_equal(coord_edges_find(f->e, "edge-a", &info), 0);
    assert_false(info.connected);
}

/* Re-registering with the same fields reports no change; a new region does. */
TEST(edges__reregister_reports_changes)
{
    coord_edge_reg_t r = reg("edge-a", "eu");
    bool changed;
    assert_int_equal(coord_edges_register(f->e, &r, 1, &changed, f->err), 0);
    assert_int_equal(coord_edges_register(f->e, &r, 2, &changed, f->err), 0);
    assert_false(changed);
    r.region = "us";
    assert_int_equal(coord_edges_register(f->e, &r, 2, &changed, f->err), 0);
    assert_true(changed);
    assert_int_equal(coord_edges_count(f->e), 1);
}

/* Bad fields and too many edges are refused with a message. */
TEST(edges__bad_register_refused)
{
    coord_edge_reg_t r = reg("edge a", "eu");
    assert_ax_err(coord_edges_register(f->e, &r, 1, NULL, f->err), AX_EINVAL);
    assert_non_null(strstr(f->err, "edge_id"));
    r = reg("edge-a", "");
    assert_ax_err(coord_edges_register(f->e, &r, 1, NULL, f->err), AX_EINVAL);
    r = reg("edge-a", "eu");
    r.hls_base_url = "javascript:alert(1)";
    assert_ax_err(coord_edges_register(f->e, &r, 1, NULL, f->err), AX_EINVAL);
    assert_non_null(strstr(f->err, "hls_base_url"));
    const char *ids[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        r = reg(ids[i], "eu");
        assert_int_equal(coord_edges_register(f->e, &r, (uint64_t)i + 1, NULL, f->err), 0);
    }
    r = reg("d", "eu");
    assert_ax_err(coord_edges_register(f->e, &r, 9, NULL, f->err), AX_ENOSPC);
}

/* Origins: set by authorisation, found by slug, cleared by stream, relearned from heartbeats. */
TEST(edges__origin_by_slug)
{
    coord_edge_reg_t r = reg("edge-a", "eu");
    assert_int_equal(coord_edges_register(f->e, &r, 1, NULL, f->err), 0);
    assert_int_equal(coord_edges_set_origin(f->e, "demo", "c1", "s1", "edge-a"), 0);
    coord_origin_t o;
    assert_int_equal(coord_edges_origin(f->e, "demo", &o), 0);
    assert_string_equal(o.edge_id, "edge-a");
    assert_string_equal(o.stream_id, "s1");
    assert_int_equal(coord_edges_clear_origin(f->e, "s1"), 0);
    assert_ax_err(coord_edges_origin(f->e, "demo", &o), AX_ENOENT);
    coord_edge_channel_t ch = {"demo", "c1", "s2", 5, true};
    assert_int_equal(coord_edges_heartbeat(f->e, "edge-a", 1, 0.1f, 5, &ch, 1), 0);
    assert_int_equal(coord_edges_origin(f->e, "demo", &o), 0);
    assert_string_equal(o.stream_id, "s2");
    coord_edge_info_t info;
    coord_edges_at(f->e, 0, &info);
    assert_int_equal(info.live_streams, 1);
    assert_int_equal(coord_edges_forget(f->e, "edge-a"), 0);
    assert_int_equal(coord_edges_origin_count(f->e), 0);
    assert_int_equal(coord_edges_count(f->e), 0);
}

/* Registering fails cleanly with AX_ENOMEM at every allocation. */
TEST(edges__register_oom_sweep)
{
    coord_edge_reg_t r = reg("edge-a", "eu");
    AX_OOM_SWEEP(coord_edges_register(f->e, &r, 1, NULL, f->err), (void)0);
    assert_int_equal(coord_edges_count(f->e), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edges__health_by_heartbeat_age),
        cmocka_unit_test(edges__unknown_heartbeat_refused),
        cmocka_unit_test(edges__reregister_reports_changes),
        cmocka_unit_test(edges__bad_register_refused),
        cmocka_unit_test(edges__origin_by_slug),
        cmocka_unit_test(edges__register_oom_sweep),
    };
    ax_test_use_cmocka_allocator();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* edge.viewers: viewer counting (edge/src/viewers.c) on a fake clock. */
#include "ax_test.h"

#include <string.h>

#include "edge_internal.h"

static uint64_t fake_now;

uint64_t edge_now_ms(struct edge *e)
{
    (void)e;
    return fake_now;
}

struct fixture {
    struct edge e;
};

static int setup(void **state)
{
    ax_test_use_cmocka_allocator();
    struct fixture *f = test_calloc(1, sizeof *f);
    edge_config_default(&f->e.cfg);
    f->e.cfg.max_channels = 4;
    fake_now = 1000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    test_free(f);
    return 0;
}

static void seen(struct fixture *f, const char *ch, uint64_t conn)
{
    edge_viewers_seen(&f->e, AX_SLICE(ch, strlen(ch)), conn);
}

struct sum {
    uint32_t channels, viewers;
};

static void add(void *arg, const char *channel, uint32_t n)
{
    (void)channel;
    struct sum *s = arg;
    s->channels++;
    s->viewers += n;
}

/* One connection reloading many times is one viewer; two connections are two. */
static void viewers__distinct_connections_count_once(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(edge_viewers_start(&f->e), 0);
    for (int i = 0; i < 10; i++)
        seen(f, "alpha", 7);
    seen(f, "alpha", 8);
    seen(f, "beta", 7);
    assert_int_equal(edge_viewers_count(&f->e, "alpha"), 2);
    assert_int_equal(edge_viewers_count(&f->e, "beta"), 1);
    assert_int_equal(edge_viewers_count(&f->e, NULL), 3);
    struct sum s = {0};
    edge_viewers_each(&f->e, add, &s);
    assert_int_equal(s.channels, 2);
    assert_int_equal(s.viewers, 3);
    edge_viewers_free(&f->e);
}

/* A viewer still reloading stays counted across rotations; one that stopped is gone within
 * the window (two half-window rotations). */
static void viewers__leavers_drop_out_within_the_window(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(edge_viewers_start(&f->e), 0);
    seen(f, "alpha", 1);
    seen(f, "alpha", 2);
    fake_now += EDGE_VIEWER_WINDOW_MS / 2;
    edge_viewers_sweep(&f->e, fake_now);
    assert_int_equal(edge_viewers_count(&f->e, "alpha"), 2); /* previous bucket */
    seen(f, "alpha", 1);                                      /* 1 keeps watching */
    assert_int_equal(edge_viewers_count(&f->e, "alpha"), 2); /* not counted twice */
    fake_now += EDGE_VIEWER_WINDOW_MS / 2;
    edge_viewers_sweep(&f->e, fake_now);
    assert_int_equal(edge_viewers_count(&f->e, "alpha"), 1);
    fake_now += EDGE_VIEWER_WINDOW_MS / 2;
    edge_viewers_sweep(&f->e, fake_now);
    fake_now += EDGE_VIEWER_WINDOW_MS / 2;
    edge_viewers_sweep(&f->e, fake_now);
    assert_int_equal(edge_viewers_count(&f->e, "alpha"), 0);
    assert_int_equal(edge_viewers_count(&f->e, NULL), 0);
    edge_viewers_free(&f->e);
}

/* Requests naming many channels cannot grow the table past 2 x max-channels names, and many
 * connections on one channel grow its set (rehashing keeps every id). */
static void viewers__bounded_and_growing(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(edge_viewers_start(&f->e), 0);
    char name[16];
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "ch%d", i);
        seen(f, name, 1);
    }
    struct sum s = {0};
    edge_viewers_each(&f->e, add, &s);
    assert_int_equal(s.channels, 2 * f->e.cfg.max_channels);
    for (uint64_t c = 1; c <= 1000; c++)
        seen(f, "ch0", c);
    assert_int_equal(edge_viewers_count(&f->e, "ch0"), 1000);
    seen(f, "bad/name", 5);
    assert_int_equal(edge_viewers_count(&f->e, "bad/name"), 0);
    edge_viewers_free(&f->e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(viewers__distinct_connections_count_once, setup, teardown),
        cmocka_unit_test_setup_teardown(viewers__leavers_drop_out_within_the_window, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(viewers__bounded_and_growing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

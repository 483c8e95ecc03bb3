#include "aethex/common/clock.h"

#include <time.h>

#include "aethex/common/util.h"

static uint64_t read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t system_now(ax_clock_t *c)
{
    (void)c;
    return read_clock(CLOCK_MONOTONIC);
}

static uint64_t system_wall(ax_clock_t *c)
{
    (void)c;
    return read_clock(CLOCK_REALTIME);
}

static ax_clock_t system_clock = {system_now, system_wall, NULL};

ax_clock_t *ax_clock_system(void)
{
    return &system_clock;
}

static uint64_t manual_now(ax_clock_t *c)
{
    return ax_container_of(c, ax_clock_manual_t, clock)->now;
}

static uint64_t manual_wall(ax_clock_t *c)
{
    return ax_container_of(c, ax_clock_manual_t, clock)->wall;
}

void ax_clock_manual_init(ax_clock_manual_t *m, uint64_t now_ms, uint64_t wall_ms)
{
    m->clock.now_ms = manual_now;
    m->clock.wall_ms = manual_wall;
    m->clock.data = NULL;
    m->now = now_ms;
    m->wall = wall_ms;
}

void ax_clock_manual_advance(ax_clock_manual_t *m, uint64_t ms)
{
    m->now += ms;
    m->wall += ms;
}

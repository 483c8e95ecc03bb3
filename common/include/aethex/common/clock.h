/*
 * Injected time, so that routing, heartbeat expiry, retries and timeouts can run a simulated
 * hour in a millisecond in tests. Production code uses ax_clock_system().
 */
#ifndef AETHEX_COMMON_CLOCK_H
#define AETHEX_COMMON_CLOCK_H

#include <stdint.h>

typedef struct ax_clock ax_clock_t;
struct ax_clock {
    uint64_t (*now_ms)(ax_clock_t *clock); /* monotonic milliseconds */
    uint64_t (*wall_ms)(ax_clock_t *clock); /* Unix epoch milliseconds */
    void *data;
};

/* The process's real clocks (CLOCK_MONOTONIC / CLOCK_REALTIME). Never freed. */
ax_clock_t *ax_clock_system(void);

static inline uint64_t ax_clock_now_ms(ax_clock_t *c)
{
    return c->now_ms(c);
}
static inline uint64_t ax_clock_wall_ms(ax_clock_t *c)
{
    return c->wall_ms(c);
}

/* A manual clock for tests: both readings return what ax_clock_manual_set() last stored. */
typedef struct ax_clock_manual {
    ax_clock_t clock;
    uint64_t now;
    uint64_t wall;
} ax_clock_manual_t;

void ax_clock_manual_init(ax_clock_manual_t *m, uint64_t now_ms, uint64_t wall_ms);
void ax_clock_manual_advance(ax_clock_manual_t *m, uint64_t ms);

#endif /* AETHEX_COMMON_CLOCK_H */

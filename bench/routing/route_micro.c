/*
 * bench/routing/route_micro: the routing decision alone, without HTTP: per request one CIDR
 * longest-prefix lookup (1,000 random IPv4/IPv6 blocks) and one coord_route_pick over 21
 * edges in 3 regions, with a seeded random source. Prints decisions per second on one core.
 *
 *   route_micro [N]     (N decisions, default 2,000,000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aethex/common/clock.h"
#include "aethex/common/rand.h"
#include "aethex/coordinator/cidr.h"
#include "aethex/coordinator/route.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    ax_clock_manual_t clock;
    ax_clock_manual_init(&clock, 1000000, 1790000000000ull);
    ax_rand_splitmix_t rand;
    ax_rand_splitmix_init(&rand, 1);
    static const char *const regions[3] = {"eu", "us", "ap"};
    static char ids[21][16];
    coord_route_edge_t edges[21];
    for (int i = 0; i < 21; i++) {
        snprintf(ids[i], sizeof ids[i], "%s-%d", regions[i % 3], i);
        edges[i] = (coord_route_edge_t){.id = ids[i],
                                        .region = regions[i % 3],
                                        .last_heartbeat_ms = clock.now,
                                        .capacity = 1000u + 100u * (unsigned)i,
                                        .viewers = (uint32_t)(i * 37 % 900)};
    }
    coord_regions_t *t = NULL;
    if (coord_regions_new(&t) != 0)
        return 1;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 1000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        coord_cidr_t c;
        memset(&c, 0, sizeof c);
        c.family = i % 4 == 3 ? 6 : 4;
        c.prefix_len = c.family == 4 ? (uint8_t)(8 + x % 17) : 48;
        memcpy(c.addr, &x, 8);
        if (c.family == 6)
            c.addr[0] = 0x20, c.addr[1] = 0x01;
        /* clear host bits */
        for (unsigned b = c.prefix_len; b < (c.family == 4 ? 32u : 128u); b++)
            c.addr[b / 8] &= (uint8_t) ~(0x80 >> (b % 8));
        coord_regions_add(t, &c, regions[i % 3]);
    }
    coord_regions_seal(t);
    long found = 0, picked[COORD_ROUTE_TIER_COUNT + 1] = {0};
    double t0 = now_s();
    for (long k = 0; k < n; k++) {
        uint8_t addr[16] = {0};
        uint64_t a = ax_rand_u64(&rand.rand);
        memcpy(addr, &a, 4);
        const char *r = coord_regions_lookup(t, 4, addr);
        found += r != NULL;
        coord_route_result_t res;
        int rv = coord_route_pick(edges, 21, "eu-0", r, NULL, &clock.clock, &rand.rand, &res);
        picked[rv == 0 ? res.tier : COORD_ROUTE_TIER_COUNT]++;
    }
    double dt = now_s() - t0;
    printf("RESULT target=route_micro decisions=%ld seconds=%.3f decisions_per_s=%.0f "
           "ns_per_decision=%.0f "
           "cidr_matched=%ld viewer_region=%ld origin_region=%ld\n",
           n, dt, (double)n / dt, dt / (double)n * 1e9, found, picked[COORD_ROUTE_VIEWER_REGION],
           picked[COORD_ROUTE_ORIGIN_REGION]);
    coord_regions_free(t);
    return 0;
}

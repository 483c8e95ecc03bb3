/*
 * Injected randomness for non-cryptographic choices (backoff jitter, tie-breaking in
 * routing), so a test can replay a failure from a seed. Cryptographic randomness (nonces,
 * stream keys) never comes from here: it comes from libsodium's randombytes_buf().
 */
#ifndef AETHEX_COMMON_RAND_H
#define AETHEX_COMMON_RAND_H

#include <stdint.h>

typedef struct ax_rand ax_rand_t;
struct ax_rand {
    uint64_t (*next_u64)(ax_rand_t *r); /* uniformly distributed 64-bit values */
    void *data;
};

static inline uint64_t ax_rand_u64(ax_rand_t *r)
{
    return r->next_u64(r);
}

/* A value in [0, n) (n > 0); the modulo bias is negligible for the small n we use. */
static inline uint64_t ax_rand_below(ax_rand_t *r, uint64_t n)
{
    return n == 0 ? 0 : r->next_u64(r) % n;
}

/* splitmix64: a seeded generator, storage the caller provides. Deterministic per seed. */
typedef struct ax_rand_splitmix {
    ax_rand_t rand;
    uint64_t state;
} ax_rand_splitmix_t;

static inline uint64_t ax_rand__splitmix_next(ax_rand_t *r)
{
    ax_rand_splitmix_t *s = (ax_rand_splitmix_t *)r; /* rand is the first member */
    uint64_t z = (s->state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline void ax_rand_splitmix_init(ax_rand_splitmix_t *s, uint64_t seed)
{
    s->rand.next_u64 = ax_rand__splitmix_next;
    s->rand.data = NULL;
    s->state = seed;
}

#endif /* AETHEX_COMMON_RAND_H */

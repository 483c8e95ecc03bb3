/*
 * A bounds-checked MSB-first bit reader for H.264 RBSP and AAC AudioSpecificConfig.
 *
 * Internal to media/src. The reader never reads past `len`: a read beyond the end sets the
 * sticky `overrun` flag and yields zeros, so a parser can read a run of fields and check
 * once (media__br_error() turns it into AX_EBADDATA). With `strip_epb`, H.264
 * emulation-prevention bytes (the 0x03 in 00 00 03, ITU-T H.264 7.4.1) are dropped on the
 * fly as bytes are fetched, so no unescaped copy of the NAL unit is ever made.
 */
#ifndef AETHEX_MEDIA_BITREADER_H
#define AETHEX_MEDIA_BITREADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/error.h"

struct bitreader {
    const uint8_t *p;
    size_t len;
    size_t pos;     /* next raw byte to fetch */
    unsigned zeros; /* consecutive 0x00 bytes fetched so far (EPB detection) */
    uint32_t cur;   /* the current byte */
    unsigned left;  /* bits of `cur` not consumed yet */
    bool strip_epb;
    bool overrun;
};

static inline void media__br_init(struct bitreader *br, const uint8_t *p, size_t len,
                                  bool strip_epb)
{
    br->p = p;
    br->len = len;
    br->pos = 0;
    br->zeros = 0;
    br->cur = 0;
    br->left = 0;
    br->strip_epb = strip_epb;
    br->overrun = false;
}

/* Loads the next byte into `cur`; false (and `overrun`) at the end of the input. */
static inline bool media__br_fetch(struct bitreader *br)
{
    if (br->pos >= br->len) {
        br->overrun = true;
        return false;
    }
    uint8_t b = br->p[br->pos++];
    if (br->strip_epb && br->zeros >= 2 && b == 0x03) {
        /* 00 00 03 xx: the 03 is not part of the RBSP. */
        br->zeros = 0;
        if (br->pos >= br->len) {
            br->overrun = true;
            return false;
        }
        b = br->p[br->pos++];
    }
    br->zeros = b == 0 ? br->zeros + 1 : 0;
    br->cur = b;
    br->left = 8;
    return true;
}

/* Reads one bit (0 after an overrun). */
static inline uint32_t media__br_u1(struct bitreader *br)
{
    if (br->left == 0 && !media__br_fetch(br))
        return 0;
    br->left--;
    return (br->cur >> br->left) & 1;
}

/* Reads `n` bits, 0 <= n <= 32, most significant first (0 after an overrun). */
static inline uint32_t media__br_u(struct bitreader *br, unsigned n)
{
    uint64_t v = 0;
    while (n > 0) {
        if (br->left == 0 && !media__br_fetch(br))
            return 0;
        unsigned take = n < br->left ? n : br->left;
        br->left -= take;
        v = (v << take) | ((br->cur >> br->left) & ((1u << take) - 1));
        n -= take;
    }
    return (uint32_t)v;
}

/* Skips `n` bits. */
static inline void media__br_skip(struct bitreader *br, unsigned n)
{
    while (n > 32) {
        media__br_u(br, 32);
        n -= 32;
    }
    media__br_u(br, n);
}

/*
 * Reads an unsigned exp-Golomb code ue(v) (H.264 9.1). Codes with more than 31 leading
 * zeros cannot be represented in 32 bits and no conforming syntax element needs them: they
 * mark the input as bad (returns UINT32_MAX and sets `overrun`).
 */
static inline uint32_t media__br_ue(struct bitreader *br)
{
    unsigned zeros = 0;
    while (media__br_u1(br) == 0) {
        if (br->overrun || ++zeros > 31) {
            br->overrun = true;
            return UINT32_MAX;
        }
    }
    if (zeros == 0)
        return 0;
    return (uint32_t)(((uint64_t)1 << zeros) - 1 + media__br_u(br, zeros));
}

/* Reads a signed exp-Golomb code se(v) (H.264 9.1.1). */
static inline int32_t media__br_se(struct bitreader *br)
{
    uint32_t k = media__br_ue(br);
    if (br->overrun)
        return 0;
    /* k = 2|v| - (v > 0): odd codes are positive. */
    int64_t v = (int64_t)((k + 1) / 2);
    return (int32_t)((k & 1) ? v : -v);
}

/* AX_EBADDATA when any read so far ran past the end (or hit an unrepresentable code). */
static inline int media__br_error(const struct bitreader *br)
{
    return br->overrun ? AX_EBADDATA : 0;
}

#endif /* AETHEX_MEDIA_BITREADER_H */

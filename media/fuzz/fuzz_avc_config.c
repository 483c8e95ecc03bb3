/*
 * fuzz.avc_config: AVCDecoderConfigurationRecord + SPS parsing of arbitrary bytes, and the
 * AVCC NAL unit check over the same bytes.
 *
 * Invariants checked, beyond "no crash" and "no read past the input" (ASan):
 * - the result is 0 or one of the documented codes, and a failure leaves *out zeroed;
 * - on success every SPS/PPS slice lies inside the input, is non-empty and has the right
 *   NAL type; the counts, NAL length size, dimensions, chroma format, bit depth and rate are
 *   in range; the profile is the SPS's; the codec string is avc1. + 6 hex digits;
 * - parsing is deterministic (a second parse gives the same struct);
 * - media_avc_check_nalus accepts exactly the inputs a plain walk of the lengths accepts.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "aethex/common/error.h"
#include "aethex/media/flv.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static int inside(ax_slice_t s, const uint8_t *base, size_t len)
{
    return s.len <= len && s.base >= base && (size_t)(s.base - base) <= len - s.len;
}

static int is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* The reference walk for media_avc_check_nalus: 1 when well formed, idr set on type 5. */
static int walk_nalus(const uint8_t *p, size_t n, unsigned size, int *idr)
{
    size_t pos = 0;
    *idr = 0;
    if (n == 0)
        return 0;
    while (pos < n) {
        if (n - pos < size)
            return 0;
        uint64_t len = 0;
        for (unsigned i = 0; i < size; i++)
            len = len << 8 | p[pos + i];
        pos += size;
        if (len == 0 || len > n - pos)
            return 0;
        if ((p[pos] & 0x1f) == 5)
            *idr = 1;
        pos += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    media_avc_config_t c;
    int rv = media_avc_config_parse(AX_SLICE(data, size), &c);
    if (rv != 0) {
        CHECK(rv == AX_EBADDATA || rv == AX_EMSGSIZE || rv == AX_ENOTSUP);
        CHECK(is_zero(&c, sizeof c));
    } else {
        CHECK(c.record.base == data && c.record.len == size);
        CHECK(c.nal_length_size == 1 || c.nal_length_size == 2 || c.nal_length_size == 4);
        CHECK(c.nsps >= 1 && c.nsps <= MEDIA_AVC_MAX_PARAM_SETS);
        CHECK(c.npps <= MEDIA_AVC_MAX_PARAM_SETS);
        for (unsigned i = 0; i < c.nsps; i++) {
            CHECK(inside(c.sps[i], data, size) && c.sps[i].len > 0);
            CHECK((c.sps[i].base[0] & 0x1f) == 7);
        }
        for (unsigned i = 0; i < c.npps; i++) {
            CHECK(inside(c.pps[i], data, size) && c.pps[i].len > 0);
            CHECK((c.pps[i].base[0] & 0x1f) == 8);
        }
        CHECK(c.sps[0].len >= 2 && c.sps[0].base[1] == c.profile_idc);
        CHECK(c.width >= 1 && c.width <= MEDIA_AVC_MAX_DIMENSION);
        CHECK(c.height >= 1 && c.height <= MEDIA_AVC_MAX_DIMENSION);
        CHECK(c.chroma_format_idc <= 3);
        CHECK(c.bit_depth_luma >= 8 && c.bit_depth_luma <= 14);
        CHECK((c.fps_num == 0) == (c.fps_den == 0));
        char s[32], want[32];
        media_avc_codec_string(&c, s, sizeof s);
        snprintf(want, sizeof want, "avc1.%02x%02x%02x", c.profile_idc, c.profile_compat,
                 c.level_idc);
        CHECK(strlen(s) == 11 && strcmp(s, want) == 0);
        media_avc_config_t again;
        CHECK(media_avc_config_parse(AX_SLICE(data, size), &again) == 0);
        CHECK(memcmp(&again, &c, sizeof c) == 0);
    }

    static const unsigned sizes[] = {1, 2, 4};
    for (unsigned i = 0; i < 3; i++) {
        bool idr = true;
        int ref_idr;
        int ok = walk_nalus(data, size, sizes[i], &ref_idr);
        rv = media_avc_check_nalus(AX_SLICE(data, size), (uint8_t)sizes[i], &idr);
        CHECK(rv == 0 || rv == AX_EBADDATA);
        CHECK((rv == 0) == ok);
        if (ok)
            CHECK(idr == (ref_idr != 0));
    }
    return 0;
}

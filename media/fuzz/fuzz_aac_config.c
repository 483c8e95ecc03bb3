/*
 * fuzz.aac_config: AudioSpecificConfig parsing of arbitrary bytes.
 *
 * Invariants checked, beyond "no crash" and "no read past the input" (ASan):
 * - the result is 0, AX_EBADDATA or AX_ENOTSUP, and a failure leaves *out zeroed;
 * - on success the object type is one of the AAC family, the rate is in range and matches
 *   the sampling index table unless the index is 15 (explicit), the channel configuration
 *   is 1..7, asc is the input, and the codec string is mp4a.40.<object type>;
 * - the result depends only on the leading bits: appending a byte never changes a success.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/common/error.h"
#include "aethex/media/flv.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static const uint32_t rates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                   22050, 16000, 12000, 11025, 8000,  7350};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    media_aac_config_t c;
    int rv = media_aac_config_parse(AX_SLICE(data, size), &c);
    if (rv != 0) {
        CHECK(rv == AX_EBADDATA || rv == AX_ENOTSUP);
        CHECK(c.object_type == 0 && c.sample_rate == 0 && c.channels == 0 && c.asc.base == NULL);
        return 0;
    }
    switch (c.object_type) {
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 17:
    case 23:
    case 29:
    case 39:
        break;
    default:
        CHECK(0);
    }
    CHECK(c.sample_rate >= 1 && c.sample_rate <= MEDIA_AAC_MAX_SAMPLE_RATE);
    CHECK(c.sampling_index <= 12 || c.sampling_index == 15);
    if (c.sampling_index <= 12)
        CHECK(c.sample_rate == rates[c.sampling_index]);
    CHECK(c.channels >= 1 && c.channels <= 7);
    CHECK(c.asc.base == data && c.asc.len == size);
    char s[32], want[32];
    media_aac_codec_string(&c, s, sizeof s);
    snprintf(want, sizeof want, "mp4a.40.%u", (unsigned)c.object_type);
    CHECK(strcmp(s, want) == 0);

    uint8_t *longer = malloc(size + 1);
    CHECK(longer != NULL);
    memcpy(longer, data, size);
    longer[size] = 0xa5;
    media_aac_config_t c2;
    CHECK(media_aac_config_parse(AX_SLICE(longer, size + 1), &c2) == 0);
    CHECK(c2.object_type == c.object_type && c2.sample_rate == c.sample_rate &&
          c2.channels == c.channels && c2.sampling_index == c.sampling_index);
    free(longer);
    return 0;
}

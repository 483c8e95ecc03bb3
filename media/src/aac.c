/*
 * AAC AudioSpecificConfig (ISO 14496-3 1.6.2.1), as carried in an FLV AAC sequence header.
 *
 * Only the fields the packager needs are read: audio object type (with the escape to 6 more
 * bits, 1.6.2.1.1), sampling frequency (table index or an explicit 24-bit rate) and channel
 * configuration. Explicit hierarchical SBR/PS signalling (object type 5 or 29 followed by the
 * extension sampling frequency and the core object type) is read past and accepted; what
 * follows (GASpecificConfig, backward-compatible extensions) is not needed and ignored.
 */
#include <stdio.h>
#include <string.h>

#include "aethex/common/error.h"
#include "aethex/media/flv.h"

#include "bitreader.h"

#define AOT_ESCAPE 31
#define AOT_SBR 5
#define AOT_PS 29
#define AOT_ER_BSAC 22
#define SF_INDEX_EXPLICIT 15

/* Table 1.18: samplingFrequencyIndex 0..12; 13 and 14 are reserved. */
static const uint32_t sample_rates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                          22050, 16000, 12000, 11025, 8000,  7350};

/* Object types an AAC decoder (ffmpeg's, browsers' MSE) handles: refuse the rest. */
static bool aot_supported(uint32_t aot)
{
    switch (aot) {
    case 1:  /* AAC Main */
    case 2:  /* AAC LC */
    case 3:  /* AAC SSR */
    case 4:  /* AAC LTP */
    case 5:  /* SBR (HE-AAC) */
    case 17: /* ER AAC LC */
    case 23: /* ER AAC LD */
    case 29: /* PS (HE-AAC v2) */
    case 39: /* ER AAC ELD */
        return true;
    default:
        return false;
    }
}

/* GetAudioObjectType() (1.6.2.1.1). */
static uint32_t read_aot(struct bitreader *br)
{
    uint32_t aot = media__br_u(br, 5);
    if (aot == AOT_ESCAPE)
        aot = 32 + media__br_u(br, 6);
    return aot;
}

/* samplingFrequencyIndex [+ samplingFrequency]; 0 when reserved or out of range. */
static uint32_t read_sample_rate(struct bitreader *br, uint8_t *index)
{
    uint32_t i = media__br_u(br, 4);
    *index = (uint8_t)i;
    if (i == SF_INDEX_EXPLICIT) {
        uint32_t rate = media__br_u(br, 24);
        return rate <= MEDIA_AAC_MAX_SAMPLE_RATE ? rate : 0;
    }
    return i < AX_ARRAY_SIZE(sample_rates) ? sample_rates[i] : 0;
}

int media_aac_config_parse(ax_slice_t asc, media_aac_config_t *out)
{
    memset(out, 0, sizeof *out);
    struct bitreader brs, *br = &brs;
    media__br_init(br, asc.base, asc.len, false);

    uint32_t aot = read_aot(br);
    uint8_t sf_index;
    uint32_t rate = read_sample_rate(br, &sf_index);
    uint32_t channels = media__br_u(br, 4);
    int rv = media__br_error(br);
    if (rv < 0)
        return rv;
    if (aot == 0 || rate == 0)
        return AX_EBADDATA;
    if (aot == AOT_SBR || aot == AOT_PS) {
        /* Explicit hierarchical signalling: extension rate, then the core object type. */
        uint8_t ext_index;
        if (read_sample_rate(br, &ext_index) == 0 && !br->overrun)
            return AX_EBADDATA;
        uint32_t core = read_aot(br);
        if (core == AOT_ER_BSAC)
            media__br_u(br, 4); /* extensionChannelConfiguration */
        rv = media__br_error(br);
        if (rv < 0)
            return rv;
        if (core == 0)
            return AX_EBADDATA;
    }
    if (!aot_supported(aot))
        return AX_ENOTSUP;
    /* 0 means "defined in a program_config_element" (1.6.3.4): not supported. 8+ neither. */
    if (channels == 0 || channels > 7)
        return AX_ENOTSUP;

    out->object_type = (uint8_t)aot;
    out->sampling_index = sf_index;
    out->sample_rate = rate;
    out->channels = (uint8_t)channels;
    out->asc = asc;
    return 0;
}

void media_aac_codec_string(const media_aac_config_t *c, char *out, size_t size)
{
    snprintf(out, size, "mp4a.40.%u", (unsigned)c->object_type);
}

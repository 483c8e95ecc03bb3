/*
 * H.264: the AVCDecoderConfigurationRecord (ISO 14496-15 5.2.4.1.1), the sequence parameter
 * set it carries (ITU-T H.264 7.3.2.1.1, VUI in E.1.1) and AVCC NAL unit sequences.
 *
 * The SPS is read straight out of the record with a bit reader that drops
 * emulation-prevention bytes as it goes, so nothing is copied or allocated.
 */
#include <stdio.h>
#include <string.h>

#include "aethex/common/error.h"
#include "aethex/media/flv.h"

#include "bitreader.h"

#define NAL_TYPE_IDR 5
#define NAL_TYPE_SPS 7
#define NAL_TYPE_PPS 8

/* H.264 7.4.2.1.1 value ranges. */
#define SPS_MAX_ID 31
#define SPS_MAX_BIT_DEPTH_MINUS8 6
#define SPS_MAX_LOG2_MINUS4 12
#define SPS_MAX_POC_CYCLE 255
#define SPS_MAX_REF_FRAMES 16

/* Profiles whose SPS carries chroma_format_idc, bit depths and scaling lists (7.3.2.1.1). */
static bool profile_has_chroma_info(uint32_t profile_idc)
{
    switch (profile_idc) {
    case 100: /* High */
    case 110: /* High 10 */
    case 122: /* High 4:2:2 */
    case 244: /* High 4:4:4 Predictive */
    case 44:  /* CAVLC 4:4:4 Intra */
    case 83:  /* Scalable Baseline */
    case 86:  /* Scalable High */
    case 118: /* Multiview High */
    case 128: /* Stereo High */
    case 138: /* Multiview Depth High */
    case 139:
    case 134:
    case 135:
    case 144: /* High 4:4:4 (2005, withdrawn): ffmpeg still reads it this way */
        return true;
    default:
        return false;
    }
}

/*
 * Profiles whose record may carry the chroma/bit-depth extension: ISO 14496-15 (2017+)
 * 5.3.3.1.2 says all but Baseline, Main and Extended (the 2004 text listed 100/110/122/144;
 * ffmpeg writes it for 244 too).
 */
static bool profile_has_extension(uint32_t profile_idc)
{
    return profile_idc != 66 && profile_idc != 77 && profile_idc != 88;
}

/* scaling_list() (7.3.2.1.1.1): only parsed to get past it. */
static void skip_scaling_list(struct bitreader *br, unsigned size)
{
    int32_t last = 8, next = 8;
    for (unsigned j = 0; j < size && !br->overrun; j++) {
        if (next != 0) {
            int32_t delta = media__br_se(br);
            if (delta < -128 || delta > 127) {
                br->overrun = true; /* out of range: treat as malformed */
                return;
            }
            next = (last + delta + 256) % 256;
        }
        last = next == 0 ? last : next;
    }
}

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* vui_parameters() up to and including timing_info (E.1.1); the rest is not needed. */
static int parse_vui(struct bitreader *br, media_avc_config_t *out)
{
    if (media__br_u1(br)) {            /* aspect_ratio_info_present_flag */
        if (media__br_u(br, 8) == 255) /* aspect_ratio_idc == Extended_SAR */
            media__br_skip(br, 32);    /* sar_width, sar_height */
    }
    if (media__br_u1(br))           /* overscan_info_present_flag */
        media__br_u1(br);           /* overscan_appropriate_flag */
    if (media__br_u1(br)) {         /* video_signal_type_present_flag */
        media__br_skip(br, 4);      /* video_format, video_full_range_flag */
        if (media__br_u1(br))       /* colour_description_present_flag */
            media__br_skip(br, 24); /* primaries, transfer, matrix */
    }
    if (media__br_u1(br)) { /* chroma_loc_info_present_flag */
        media__br_ue(br);
        media__br_ue(br);
    }
    if (media__br_u1(br)) { /* timing_info_present_flag */
        uint32_t num_units_in_tick = media__br_u(br, 32);
        uint32_t time_scale = media__br_u(br, 32);
        media__br_u1(br); /* fixed_frame_rate_flag */
        int rv = media__br_error(br);
        if (rv < 0)
            return rv;
        /*
         * One frame lasts two ticks (E.2.1, and how x264/ffmpeg write it): fps =
         * time_scale / (2 * num_units_in_tick). Zero is forbidden by the spec; rather than
         * refuse a stream for a frame-rate hint we report "unknown".
         */
        if (num_units_in_tick != 0 && time_scale != 0) {
            uint64_t den = 2 * (uint64_t)num_units_in_tick;
            uint64_t g = gcd_u64(time_scale, den);
            if (den / g <= UINT32_MAX) {
                out->fps_num = (uint32_t)(time_scale / g);
                out->fps_den = (uint32_t)(den / g);
            }
        }
    }
    return media__br_error(br);
}

/* Parses one SPS NAL unit (with its 1-byte header) into `out`'s SPS-derived fields. */
static int parse_sps(ax_slice_t nal, media_avc_config_t *out)
{
    struct bitreader brs, *br = &brs;
    media__br_init(br, nal.base, nal.len, true);

    uint32_t hdr = media__br_u(br, 8);
    if ((hdr & 0x80) != 0 || (hdr & 0x1f) != NAL_TYPE_SPS)
        return AX_EBADDATA;
    uint32_t profile_idc = media__br_u(br, 8);
    media__br_skip(br, 16); /* constraint_set flags + reserved, level_idc */
    if (media__br_ue(br) > SPS_MAX_ID)
        return AX_EBADDATA;

    uint32_t chroma_format_idc = 1, separate_colour_plane = 0;
    uint32_t bit_depth_luma = 8;
    if (profile_has_chroma_info(profile_idc)) {
        chroma_format_idc = media__br_ue(br);
        if (chroma_format_idc > 3)
            return AX_EBADDATA;
        if (chroma_format_idc == 3)
            separate_colour_plane = media__br_u1(br);
        uint32_t luma_minus8 = media__br_ue(br);
        uint32_t chroma_minus8 = media__br_ue(br);
        if (luma_minus8 > SPS_MAX_BIT_DEPTH_MINUS8 || chroma_minus8 > SPS_MAX_BIT_DEPTH_MINUS8)
            return AX_EBADDATA;
        bit_depth_luma = 8 + luma_minus8;
        media__br_u1(br);       /* qpprime_y_zero_transform_bypass_flag */
        if (media__br_u1(br)) { /* seq_scaling_matrix_present_flag */
            unsigned lists = chroma_format_idc != 3 ? 8 : 12;
            for (unsigned i = 0; i < lists; i++) {
                if (media__br_u1(br)) /* seq_scaling_list_present_flag[i] */
                    skip_scaling_list(br, i < 6 ? 16 : 64);
            }
        }
    }
    if (media__br_ue(br) > SPS_MAX_LOG2_MINUS4) /* log2_max_frame_num_minus4 */
        return AX_EBADDATA;
    uint32_t poc_type = media__br_ue(br);
    if (poc_type == 0) {
        if (media__br_ue(br) > SPS_MAX_LOG2_MINUS4) /* log2_max_pic_order_cnt_lsb_minus4 */
            return AX_EBADDATA;
    } else if (poc_type == 1) {
        media__br_u1(br); /* delta_pic_order_always_zero_flag */
        media__br_se(br); /* offset_for_non_ref_pic */
        media__br_se(br); /* offset_for_top_to_bottom_field */
        uint32_t cycle = media__br_ue(br);
        if (cycle > SPS_MAX_POC_CYCLE)
            return AX_EBADDATA;
        for (uint32_t i = 0; i < cycle && !br->overrun; i++)
            media__br_se(br); /* offset_for_ref_frame[i] */
    } else if (poc_type != 2) {
        return AX_EBADDATA;
    }
    if (media__br_ue(br) > SPS_MAX_REF_FRAMES) /* max_num_ref_frames */
        return AX_EBADDATA;
    media__br_u1(br); /* gaps_in_frame_num_value_allowed_flag */
    uint32_t width_mbs_minus1 = media__br_ue(br);
    uint32_t height_map_units_minus1 = media__br_ue(br);
    uint32_t frame_mbs_only = media__br_u1(br);
    if (!frame_mbs_only)
        media__br_u1(br); /* mb_adaptive_frame_field_flag */
    media__br_u1(br);     /* direct_8x8_inference_flag */
    uint32_t crop_left = 0, crop_right = 0, crop_top = 0, crop_bottom = 0;
    if (media__br_u1(br)) { /* frame_cropping_flag */
        crop_left = media__br_ue(br);
        crop_right = media__br_ue(br);
        crop_top = media__br_ue(br);
        crop_bottom = media__br_ue(br);
    }
    int rv = media__br_error(br);
    if (rv < 0)
        return rv;

    /* Dimensions (7.4.2.1.1): sizes in macroblocks, then the crop in chroma-sampled units. */
    const uint32_t max_mbs = MEDIA_AVC_MAX_DIMENSION / 16;
    uint32_t field_factor = 2 - frame_mbs_only;
    if (width_mbs_minus1 >= max_mbs || height_map_units_minus1 >= max_mbs / field_factor)
        return AX_EMSGSIZE;
    uint32_t coded_w = (width_mbs_minus1 + 1) * 16;
    uint32_t coded_h = field_factor * (height_map_units_minus1 + 1) * 16;
    uint32_t chroma_array_type = separate_colour_plane ? 0 : chroma_format_idc;
    uint32_t sub_w = chroma_array_type == 3 ? 1 : 2;
    uint32_t sub_h = chroma_array_type == 1 ? 2 : 1;
    uint32_t crop_unit_x = chroma_array_type == 0 ? 1 : sub_w;
    uint32_t crop_unit_y = chroma_array_type == 0 ? field_factor : sub_h * field_factor;
    /* Each crop offset is below coded size / crop unit, so the products cannot overflow. */
    if (crop_left >= coded_w || crop_right >= coded_w || crop_top >= coded_h ||
        crop_bottom >= coded_h)
        return AX_EBADDATA;
    uint32_t crop_w = crop_unit_x * (crop_left + crop_right);
    uint32_t crop_h = crop_unit_y * (crop_top + crop_bottom);
    if (crop_w >= coded_w || crop_h >= coded_h)
        return AX_EBADDATA;

    out->width = coded_w - crop_w;
    out->height = coded_h - crop_h;
    out->chroma_format_idc = (uint8_t)chroma_format_idc;
    out->bit_depth_luma = (uint8_t)bit_depth_luma;
    out->fps_num = 0;
    out->fps_den = 0;
    if (media__br_u1(br)) /* vui_parameters_present_flag */
        return parse_vui(br, out);
    return media__br_error(br);
}

/* Reads `count` u16-length-prefixed parameter sets of NAL type `type` at *pos. */
static int read_param_sets(ax_slice_t rec, size_t *pos, unsigned count, unsigned type,
                           ax_slice_t *sets, uint8_t *nsets)
{
    for (unsigned i = 0; i < count; i++) {
        if (rec.len - *pos < 2)
            return AX_EBADDATA;
        size_t n = ax_rd_be16(rec.base + *pos);
        *pos += 2;
        if (n == 0 || rec.len - *pos < n)
            return AX_EBADDATA;
        if ((rec.base[*pos] & 0x1f) != type || (rec.base[*pos] & 0x80) != 0)
            return AX_EBADDATA;
        if (i < MEDIA_AVC_MAX_PARAM_SETS)
            sets[i] = AX_SLICE(rec.base + *pos, n);
        *pos += n;
    }
    *nsets = (uint8_t)count;
    return 0;
}

int media_avc_config_parse(ax_slice_t rec, media_avc_config_t *out)
{
    memset(out, 0, sizeof *out);
    /* configurationVersion, profile, compatibility, level, lengthSizeMinusOne, numOfSPS. */
    if (rec.len < 6)
        return AX_EBADDATA;
    const uint8_t *p = rec.base;
    if (p[0] != 1)
        return AX_EBADDATA;
    /* The reserved bits ('111111' and '111') are not checked: some muxers write zeros. */
    unsigned length_size = (p[4] & 0x03) + 1u;
    if (length_size == 3)
        return AX_EBADDATA;
    unsigned nsps = p[5] & 0x1f;
    if (nsps == 0)
        return AX_EBADDATA;
    size_t pos = 6;
    int rv = read_param_sets(rec, &pos, nsps, NAL_TYPE_SPS, out->sps, &out->nsps);
    if (rv < 0)
        goto fail;
    if (pos >= rec.len) {
        rv = AX_EBADDATA;
        goto fail;
    }
    unsigned npps = rec.base[pos++];
    rv = read_param_sets(rec, &pos, npps, NAL_TYPE_PPS, out->pps, &out->npps);
    if (rv < 0)
        goto fail;
    if (out->nsps > MEDIA_AVC_MAX_PARAM_SETS || out->npps > MEDIA_AVC_MAX_PARAM_SETS) {
        rv = AX_ENOTSUP;
        goto fail;
    }
    /*
     * High-profile records may end with chroma_format, bit depths and SPS extensions (ISO
     * 14496-15 5.2.4.1.1). Older muxers leave it out, so it is optional; when present it must
     * be whole. Its values repeat the SPS's and are not used. Bytes after it are ignored.
     */
    if (pos < rec.len && profile_has_extension(p[1])) {
        if (rec.len - pos < 4) {
            rv = AX_EBADDATA;
            goto fail;
        }
        unsigned next = rec.base[pos + 3];
        pos += 4;
        for (unsigned i = 0; i < next; i++) {
            if (rec.len - pos < 2 || rec.len - pos - 2 < ax_rd_be16(rec.base + pos)) {
                rv = AX_EBADDATA;
                goto fail;
            }
            pos += 2 + (size_t)ax_rd_be16(rec.base + pos);
        }
    }

    out->profile_idc = p[1];
    out->profile_compat = p[2];
    out->level_idc = p[3];
    out->nal_length_size = (uint8_t)length_size;
    out->record = rec;
    rv = parse_sps(out->sps[0], out);
    if (rv < 0)
        goto fail;
    /* The record's profile must be the SPS's (ISO 14496-15 5.3.3.1.2). */
    if (out->sps[0].len < 2 || out->sps[0].base[1] != out->profile_idc) {
        rv = AX_EBADDATA;
        goto fail;
    }
    return 0;

fail:
    memset(out, 0, sizeof *out);
    return rv;
}

int media_avc_check_nalus(ax_slice_t nalus, uint8_t nal_length_size, bool *has_idr)
{
    *has_idr = false;
    if (nal_length_size != 1 && nal_length_size != 2 && nal_length_size != 4)
        return AX_EINVAL;
    if (nalus.len == 0)
        return AX_EBADDATA;
    size_t pos = 0;
    while (pos < nalus.len) {
        if (nalus.len - pos < nal_length_size)
            return AX_EBADDATA;
        uint32_t n;
        switch (nal_length_size) {
        case 1:
            n = nalus.base[pos];
            break;
        case 2:
            n = ax_rd_be16(nalus.base + pos);
            break;
        default:
            n = ax_rd_be32(nalus.base + pos);
            break;
        }
        pos += nal_length_size;
        if (n == 0 || nalus.len - pos < n)
            return AX_EBADDATA;
        if ((nalus.base[pos] & 0x1f) == NAL_TYPE_IDR)
            *has_idr = true;
        pos += n;
    }
    return 0;
}

void media_avc_codec_string(const media_avc_config_t *c, char *out, size_t size)
{
    snprintf(out, size, "avc1.%02x%02x%02x", c->profile_idc, c->profile_compat, c->level_idc);
}

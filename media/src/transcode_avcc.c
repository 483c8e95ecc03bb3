/*
 * Annex-B <-> AVCC conversions for the transcoder (see transcode_internal.h).
 *
 * libavcodec's libx264 wrapper writes Annex-B everywhere, including the global header
 * (extradata) it builds with AV_CODEC_FLAG_GLOBAL_HEADER; media_frame_t and the CMAF
 * packager want length-prefixed NAL units and an avcC record.
 */
#include "transcode_internal.h"

#include "aethex/common/error.h"

/*
 * Finds the next start code at or after `from`. Sets *sc_start to where the start code
 * begins (including a leading zero byte of a 4-byte code) and returns the index of the
 * first byte after it, or returns 0 when there is none.
 */
static size_t next_start_code(const uint8_t *p, size_t len, size_t from, size_t *sc_start)
{
    for (size_t i = from; i + 3 <= len; i++) {
        if (p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1) {
            *sc_start = (i > from && p[i - 1] == 0) ? i - 1 : i;
            return i + 3;
        }
    }
    return 0;
}

/* Calls `fn` for every NAL unit of an Annex-B stream; stops at the first error. */
static int each_nal(ax_slice_t in, int (*fn)(ax_slice_t nal, void *arg), void *arg)
{
    size_t sc, pos = next_start_code(in.base, in.len, 0, &sc);
    if (pos == 0)
        return AX_EBADDATA;
    for (size_t i = 0; i < sc; i++)
        if (in.base[i] != 0)
            return AX_EBADDATA;
    int count = 0;
    while (pos != 0) {
        size_t next_sc = in.len;
        size_t next = next_start_code(in.base, in.len, pos, &next_sc);
        if (next == 0)
            next_sc = in.len;
        /* The last byte of a NAL unit is never 0x00 (H.264 7.4.1): strip trailing_zero_8bits. */
        size_t end = next_sc;
        while (end > pos && in.base[end - 1] == 0)
            end--;
        if (end <= pos)
            return AX_EBADDATA;
        int rv = fn(AX_SLICE(in.base + pos, end - pos), arg);
        if (rv < 0)
            return rv;
        count++;
        pos = next;
    }
    return count;
}

static int append_avcc(ax_slice_t nal, void *arg)
{
    ax_buf_t *out = arg;
    if (nal.len > UINT32_MAX)
        return AX_EMSGSIZE;
    int rv = ax_buf_put_be32(out, (uint32_t)nal.len);
    if (rv == 0)
        rv = ax_buf_append(out, nal.base, nal.len);
    return rv;
}

int media_transcode__annexb_to_avcc(ax_slice_t in, ax_buf_t *out)
{
    return each_nal(in, append_avcc, out);
}

struct param_sets {
    ax_slice_t sps[MEDIA_AVC_MAX_PARAM_SETS];
    ax_slice_t pps[MEDIA_AVC_MAX_PARAM_SETS];
    unsigned nsps, npps;
};

static int collect_param_set(ax_slice_t nal, void *arg)
{
    struct param_sets *ps = arg;
    uint8_t type = nal.base[0] & 0x1f;
    if (type != 7 && type != 8)
        return 0;
    if (nal.len > 0xffff)
        return AX_EBADDATA;
    if (type == 7) {
        if (ps->nsps == MEDIA_AVC_MAX_PARAM_SETS || nal.len < 4)
            return AX_EBADDATA;
        ps->sps[ps->nsps++] = nal;
    } else {
        if (ps->npps == MEDIA_AVC_MAX_PARAM_SETS)
            return AX_EBADDATA;
        ps->pps[ps->npps++] = nal;
    }
    return 0;
}

int media_transcode__avcc_record(ax_slice_t annexb, ax_buf_t *out)
{
    struct param_sets ps = {0};
    int rv = each_nal(annexb, collect_param_set, &ps);
    if (rv < 0)
        return rv;
    if (ps.nsps == 0 || ps.npps == 0)
        return AX_EBADDATA;

    /* ISO 14496-15 5.2.4.1.1: version, profile, compatibility, level from the first SPS. */
    const uint8_t *sps0 = ps.sps[0].base;
    uint8_t head[6] = {1, sps0[1], sps0[2], sps0[3], 0xfc | 3, (uint8_t)(0xe0 | ps.nsps)};
    rv = ax_buf_append(out, head, sizeof head);
    for (unsigned i = 0; rv == 0 && i < ps.nsps; i++) {
        rv = ax_buf_put_be16(out, (uint16_t)ps.sps[i].len);
        if (rv == 0)
            rv = ax_buf_append(out, ps.sps[i].base, ps.sps[i].len);
    }
    if (rv == 0)
        rv = ax_buf_put_u8(out, (uint8_t)ps.npps);
    for (unsigned i = 0; rv == 0 && i < ps.npps; i++) {
        rv = ax_buf_put_be16(out, (uint16_t)ps.pps[i].len);
        if (rv == 0)
            rv = ax_buf_append(out, ps.pps[i].base, ps.pps[i].len);
    }
    uint8_t profile = sps0[1];
    if (rv == 0 && (profile == 100 || profile == 110 || profile == 122 || profile == 244)) {
        /* chroma_format_idc 1, bit_depth_luma/chroma 8, no SPS extensions: what we encode. */
        uint8_t tail[4] = {0xfc | 1, 0xf8 | 0, 0xf8 | 0, 0};
        rv = ax_buf_append(out, tail, sizeof tail);
    }
    return rv;
}

int media_transcode__check_avcc(ax_slice_t in, uint8_t nal_length_size)
{
    if (nal_length_size != 1 && nal_length_size != 2 && nal_length_size != 4)
        return AX_EBADDATA;
    if (in.len == 0)
        return AX_EBADDATA;
    size_t pos = 0;
    while (pos < in.len) {
        if (in.len - pos < nal_length_size)
            return AX_EBADDATA;
        uint32_t n = 0;
        for (unsigned i = 0; i < nal_length_size; i++)
            n = (n << 8) | in.base[pos + i];
        pos += nal_length_size;
        if (n == 0 || n > in.len - pos)
            return AX_EBADDATA;
        pos += n;
    }
    return 0;
}

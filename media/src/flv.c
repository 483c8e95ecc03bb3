/*
 * FLV tag bodies (Adobe FLV v10.1, E.4.2 AUDIODATA / E.4.3 VIDEODATA) and FLV files (E.2
 * header, E.3 body, E.4.1 tag header).
 */
#include <string.h>

#include "aethex/common/error.h"
#include "aethex/media/flv.h"

#define FLV_VIDEO_FRAME_INFO 5
#define FLV_TAG_HEADER_SIZE 11
#define FLV_PREV_TAG_SIZE 4
#define FLV_FILE_HEADER_SIZE 9

static int parse_video(ax_slice_t in, media_flv_video_t *out);
static int parse_audio(ax_slice_t in, media_flv_audio_t *out);

int media_flv_parse_video(ax_slice_t in, media_flv_video_t *out)
{
    int rv = parse_video(in, out);
    if (rv < 0)
        memset(out, 0, sizeof *out);
    return rv;
}

int media_flv_parse_audio(ax_slice_t in, media_flv_audio_t *out)
{
    int rv = parse_audio(in, out);
    if (rv < 0)
        memset(out, 0, sizeof *out);
    return rv;
}

static int parse_video(ax_slice_t in, media_flv_video_t *out)
{
    memset(out, 0, sizeof *out);
    if (in.len < 1)
        return AX_EBADDATA;
    uint8_t frame_type = in.base[0] >> 4;
    /* Enhanced RTMP sets the top bit (IsExHeader) and a FourCC follows: not supported yet. */
    if (frame_type & 0x8)
        return AX_ENOTSUP;
    if (frame_type < 1 || frame_type > FLV_VIDEO_FRAME_INFO)
        return AX_EBADDATA;
    out->frame_type = frame_type;
    out->codec_id = in.base[0] & 0x0f;
    /* A video info/command frame carries a UI8 instead of a payload, whatever the codec. */
    if (out->codec_id != MEDIA_FLV_CODEC_AVC || frame_type == FLV_VIDEO_FRAME_INFO) {
        out->body = AX_SLICE(in.base + 1, in.len - 1);
        return 0;
    }
    /* AVCVIDEOPACKET: AVCPacketType UI8, CompositionTime SI24. */
    if (in.len < 5)
        return AX_EBADDATA;
    uint8_t type = in.base[1];
    if (type > MEDIA_FLV_AVC_END_OF_SEQUENCE)
        return AX_EBADDATA;
    out->avc_packet_type = type;
    uint32_t cts = ax_rd_be24(in.base + 2);
    out->cts = (int32_t)(cts ^ 0x800000u) - 0x800000; /* sign-extend 24 bits */
    out->body = AX_SLICE(in.base + 5, in.len - 5);
    return 0;
}

static int parse_audio(ax_slice_t in, media_flv_audio_t *out)
{
    memset(out, 0, sizeof *out);
    if (in.len < 1)
        return AX_EBADDATA;
    uint8_t b = in.base[0];
    out->sound_format = b >> 4;
    out->sound_rate = (b >> 2) & 3;
    out->sound_size = (b >> 1) & 1;
    out->sound_type = b & 1;
    /* Enhanced RTMP v2 uses SoundFormat 9 (reserved in v10.1) for its extended header. */
    if (out->sound_format == MEDIA_FLV_SOUND_EX_HEADER)
        return AX_ENOTSUP;
    if (out->sound_format != MEDIA_FLV_SOUND_AAC) {
        out->body = AX_SLICE(in.base + 1, in.len - 1);
        return 0;
    }
    /* AACAUDIODATA: AACPacketType UI8. */
    if (in.len < 2)
        return AX_EBADDATA;
    if (in.base[1] > 1)
        return AX_EBADDATA;
    out->aac_packet_type = in.base[1];
    out->body = AX_SLICE(in.base + 2, in.len - 2);
    return 0;
}

int media_flv_file_header(ax_slice_t in, bool *has_audio, bool *has_video)
{
    *has_audio = false;
    *has_video = false;
    /* Check what has arrived so far, so garbage is refused before waiting for more. */
    static const uint8_t sig[4] = {'F', 'L', 'V', 1};
    size_t n = in.len < sizeof sig ? in.len : sizeof sig;
    if (n > 0 && memcmp(in.base, sig, n) != 0)
        return AX_EBADDATA;
    if (in.len < FLV_FILE_HEADER_SIZE)
        return AX_EAGAIN;
    uint8_t flags = in.base[4];
    if (flags & 0xfa) /* TypeFlagsReserved must be 0 */
        return AX_EBADDATA;
    uint32_t data_offset = ax_rd_be32(in.base + 5);
    if (data_offset < FLV_FILE_HEADER_SIZE)
        return AX_EBADDATA;
    if (data_offset > MEDIA_FLV_FILE_MAX_HEADER_SIZE)
        return AX_EMSGSIZE;
    size_t need = (size_t)data_offset + FLV_PREV_TAG_SIZE;
    if (in.len < need)
        return AX_EAGAIN;
    if (ax_rd_be32(in.base + data_offset) != 0) /* PreviousTagSize0 is always 0 */
        return AX_EBADDATA;
    *has_audio = (flags & 0x04) != 0;
    *has_video = (flags & 0x01) != 0;
    return (int)need;
}

int media_flv_file_tag(ax_slice_t in, uint32_t max_tag_size, media_flv_tag_t *out)
{
    memset(out, 0, sizeof *out);
    if (in.len < 1)
        return AX_EAGAIN;
    uint8_t type = in.base[0];
    if (type & 0xc0) /* Reserved UB2 must be 0 */
        return AX_EBADDATA;
    if (type & 0x20) /* Filter: encrypted or pre-processed (FLV 10.1 E.4.1) */
        return AX_ENOTSUP;
    if (in.len < FLV_TAG_HEADER_SIZE)
        return AX_EAGAIN;
    uint32_t size = ax_rd_be24(in.base + 1);
    if (size > max_tag_size)
        return AX_EMSGSIZE;
    if (ax_rd_be24(in.base + 8) != 0) /* StreamID is always 0 */
        return AX_EBADDATA;
    size_t total = FLV_TAG_HEADER_SIZE + (size_t)size + FLV_PREV_TAG_SIZE;
    if (in.len < total)
        return AX_EAGAIN;
    if (ax_rd_be32(in.base + FLV_TAG_HEADER_SIZE + size) != FLV_TAG_HEADER_SIZE + size)
        return AX_EBADDATA;
    out->type = type & 0x1f;
    out->timestamp = ((uint32_t)in.base[7] << 24) | ax_rd_be24(in.base + 4);
    out->body = AX_SLICE(in.base + FLV_TAG_HEADER_SIZE, size);
    return (int)total;
}

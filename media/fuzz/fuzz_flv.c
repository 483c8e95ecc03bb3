/*
 * fuzz.flv: an FLV file (or, when the header is refused, a bare tag stream) read tag by tag,
 * each tag body parsed as VIDEODATA/AUDIODATA, sequence headers parsed as configurations and
 * AVC NAL units checked; plus the whole input parsed as one video and one audio body.
 *
 * Invariants checked, beyond "no crash" and "no read past the input" (ASan):
 * - every result is > 0 or a documented error code; consumed bytes never exceed the input;
 * - every output slice (tag body, video/audio body, SPS/PPS, ASC) lies inside its input,
 *   and a tag body is exactly what the tag consumed minus its 15 bytes of framing;
 * - video/audio bodies are suffixes of the tag body (the header is what precedes them);
 * - incremental reading: the same header or tag with its last byte missing asks for more
 *   (AX_EAGAIN), never a different answer.
 */
#include <stdint.h>
#include <string.h>

#include "aethex/common/error.h"
#include "aethex/media/flv.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define MAX_TAG (1u << 20)

static int inside(ax_slice_t s, ax_slice_t in)
{
    if (s.len == 0 && s.base == NULL)
        return 1;
    return s.len <= in.len && s.base >= in.base && (size_t)(s.base - in.base) <= in.len - s.len;
}

static int is_suffix(ax_slice_t s, ax_slice_t in)
{
    return inside(s, in) && s.base + s.len == in.base + in.len;
}

static void check_video(ax_slice_t body, uint8_t *nal_length_size)
{
    media_flv_video_t v;
    int rv = media_flv_parse_video(body, &v);
    if (rv != 0) {
        CHECK(rv == AX_EBADDATA || rv == AX_ENOTSUP);
        CHECK(v.body.base == NULL && v.frame_type == 0);
        return;
    }
    CHECK(v.frame_type >= 1 && v.frame_type <= 5);
    CHECK(is_suffix(v.body, body));
    CHECK(v.cts >= -8388608 && v.cts <= 8388607);
    if (v.codec_id != MEDIA_FLV_CODEC_AVC || v.frame_type == 5) {
        CHECK(v.body.len + 1 == body.len);
        return;
    }
    CHECK(v.body.len + 5 == body.len && v.avc_packet_type <= 2);
    if (v.avc_packet_type == MEDIA_FLV_AVC_SEQUENCE_HEADER) {
        media_avc_config_t c;
        if (media_avc_config_parse(v.body, &c) == 0) {
            CHECK(inside(c.sps[0], v.body) && inside(c.pps[0], v.body));
            CHECK(c.width > 0 && c.height > 0);
            *nal_length_size = c.nal_length_size;
        }
    } else if (v.avc_packet_type == MEDIA_FLV_AVC_NALU) {
        bool idr;
        rv = media_avc_check_nalus(v.body, *nal_length_size, &idr);
        CHECK(rv == 0 || rv == AX_EBADDATA);
    }
}

static void check_audio(ax_slice_t body)
{
    media_flv_audio_t a;
    int rv = media_flv_parse_audio(body, &a);
    if (rv != 0) {
        CHECK(rv == AX_EBADDATA || rv == AX_ENOTSUP);
        CHECK(a.body.base == NULL);
        return;
    }
    CHECK(is_suffix(a.body, body));
    CHECK(a.sound_rate <= 3 && a.sound_size <= 1 && a.sound_type <= 1);
    if (a.sound_format != MEDIA_FLV_SOUND_AAC) {
        CHECK(a.body.len + 1 == body.len);
        return;
    }
    CHECK(a.body.len + 2 == body.len && a.aac_packet_type <= 1);
    if (a.aac_packet_type == 0) {
        media_aac_config_t c;
        if (media_aac_config_parse(a.body, &c) == 0)
            CHECK(c.asc.base == a.body.base && c.asc.len == a.body.len && c.channels >= 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ax_slice_t in = AX_SLICE(data, size);
    uint8_t nal_length_size = 4;

    check_video(in, &nal_length_size);
    check_audio(in);

    bool has_audio, has_video;
    int rv = media_flv_file_header(in, &has_audio, &has_video);
    size_t pos = 0;
    if (rv > 0) {
        CHECK((size_t)rv <= size && rv >= 13);
        bool a2, v2;
        CHECK(media_flv_file_header(AX_SLICE(data, (size_t)rv - 1), &a2, &v2) == AX_EAGAIN);
        pos = (size_t)rv;
    } else {
        CHECK(rv == AX_EAGAIN || rv == AX_EBADDATA || rv == AX_EMSGSIZE);
        CHECK(!has_audio && !has_video);
    }

    while (pos < size) {
        ax_slice_t rest = AX_SLICE(data + pos, size - pos);
        media_flv_tag_t tag;
        rv = media_flv_file_tag(rest, MAX_TAG, &tag);
        if (rv <= 0) {
            CHECK(rv == AX_EAGAIN || rv == AX_EBADDATA || rv == AX_EMSGSIZE || rv == AX_ENOTSUP);
            CHECK(tag.body.base == NULL);
            break;
        }
        CHECK((size_t)rv <= rest.len && rv >= 15);
        CHECK(inside(tag.body, rest) && tag.body.base == rest.base + 11);
        CHECK(tag.body.len + 15 == (size_t)rv && tag.body.len <= MAX_TAG);
        CHECK(tag.type < 32);
        media_flv_tag_t t2;
        CHECK(media_flv_file_tag(AX_SLICE(rest.base, (size_t)rv - 1), MAX_TAG, &t2) == AX_EAGAIN);
        if (tag.type == 9)
            check_video(tag.body, &nal_length_size);
        else if (tag.type == 8)
            check_audio(tag.body);
        pos += (size_t)rv;
    }
    return 0;
}

/*
 * media.flv: FLV VIDEODATA/AUDIODATA bodies and the FLV file header/tag reader.
 *
 * The tag bodies below are the first bytes of real ffmpeg 5.1 FLV tags (libx264 + native
 * AAC, see media/fuzz/make_seeds_flv.sh); whole files are exercised by the fuzz corpus replay
 * and by media.flv_file_ffprobe.
 */
#include "ax_test.h"

#include <string.h>

#include "aethex/media/flv.h"

/* A heap copy of exactly `n` bytes, so ASan sees any read past the end. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

static bool slice_inside(ax_slice_t s, const uint8_t *base, size_t len)
{
    return s.base >= base && s.len <= len && (size_t)(s.base - base) <= len - s.len;
}

/* The AVC sequence header tag body ffmpeg writes for 1280x720 High (record shortened). */
static const uint8_t video_seq[] = {0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64, 0x00, 0x1f, 0xff};
/* A keyframe: AVC NALU, cts 80 ms (two B-frames at 25 fps), then AVCC units. */
static const uint8_t video_key[] = {0x17, 0x01, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00,
                                    0x02, 0x09, 0x10, 0x00, 0x00, 0x00, 0x01, 0x65};
/* A B-frame with a negative composition offset (-40 ms), as after an edit list shift. */
static const uint8_t video_b_neg[] = {0x27, 0x01, 0xff, 0xff, 0xd8, 0x00, 0x00, 0x00, 0x01, 0x01};

/* An AVC keyframe gives type, codec, packet type, cts and the NAL units that follow. */
static void video__avc_keyframe(void **state)
{
    (void)state;
    media_flv_video_t v;
    assert_ax_err(media_flv_parse_video(AX_SLICE(video_key, sizeof video_key), &v), 0);
    assert_int_equal(v.frame_type, 1);
    assert_int_equal(v.codec_id, MEDIA_FLV_CODEC_AVC);
    assert_int_equal(v.avc_packet_type, MEDIA_FLV_AVC_NALU);
    assert_int_equal(v.cts, 80);
    assert_ptr_equal(v.body.base, video_key + 5);
    assert_int_equal(v.body.len, sizeof video_key - 5);
    bool idr;
    assert_ax_err(media_avc_check_nalus(v.body, 4, &idr), 0);
    assert_true(idr);
}

/* The 24-bit composition time is signed. */
static void video__negative_cts_is_sign_extended(void **state)
{
    (void)state;
    media_flv_video_t v;
    assert_ax_err(media_flv_parse_video(AX_SLICE(video_b_neg, sizeof video_b_neg), &v), 0);
    assert_int_equal(v.frame_type, 2);
    assert_int_equal(v.cts, -40);
    uint8_t extremes[] = {0x27, 0x01, 0x80, 0x00, 0x00, 0x00};
    assert_ax_err(media_flv_parse_video(AX_SLICE(extremes, sizeof extremes), &v), 0);
    assert_int_equal(v.cts, -8388608);
    extremes[2] = 0x7f;
    extremes[3] = extremes[4] = 0xff;
    assert_ax_err(media_flv_parse_video(AX_SLICE(extremes, sizeof extremes), &v), 0);
    assert_int_equal(v.cts, 8388607);
}

/* A sequence header's body is the record; end of sequence has an empty body. */
static void video__sequence_header_and_end(void **state)
{
    (void)state;
    media_flv_video_t v;
    assert_ax_err(media_flv_parse_video(AX_SLICE(video_seq, sizeof video_seq), &v), 0);
    assert_int_equal(v.avc_packet_type, MEDIA_FLV_AVC_SEQUENCE_HEADER);
    assert_int_equal(v.body.len, 5);
    assert_int_equal(v.body.base[0], 1);
    static const uint8_t eos[] = {0x17, 0x02, 0x00, 0x00, 0x00};
    assert_ax_err(media_flv_parse_video(AX_SLICE(eos, sizeof eos), &v), 0);
    assert_int_equal(v.avc_packet_type, MEDIA_FLV_AVC_END_OF_SEQUENCE);
    assert_int_equal(v.body.len, 0);
}

/* Other codecs and info frames are parsed, not refused: the body is all after byte 0. */
static void video__other_codecs_and_info_frames(void **state)
{
    (void)state;
    media_flv_video_t v;
    static const uint8_t h263[] = {0x22, 0x00, 0x00, 0x84};
    assert_ax_err(media_flv_parse_video(AX_SLICE(h263, sizeof h263), &v), 0);
    assert_int_equal(v.codec_id, 2);
    assert_int_equal(v.frame_type, 2);
    assert_ptr_equal(v.body.base, h263 + 1);
    assert_int_equal(v.body.len, 3);
    static const uint8_t info[] = {0x57, 0x01};
    assert_ax_err(media_flv_parse_video(AX_SLICE(info, sizeof info), &v), 0);
    assert_int_equal(v.frame_type, 5);
    assert_int_equal(v.codec_id, 7);
    assert_int_equal(v.body.len, 1);
    for (uint8_t ft = 1; ft <= 5; ft++) {
        uint8_t b[] = {(uint8_t)(ft << 4 | 7), 1, 0, 0, 0, 0};
        assert_ax_err(media_flv_parse_video(AX_SLICE(b, sizeof b), &v), 0);
        assert_int_equal(v.frame_type, ft);
    }
}

/* Empty or truncated bodies, frame types 0/6/7 and AVC packet types > 2 are malformed. */
static void video__malformed_bodies_are_refused(void **state)
{
    (void)state;
    media_flv_video_t v;
    for (size_t n = 0; n < 5; n++) {
        uint8_t *p = exact_copy(video_key, n);
        assert_ax_err(media_flv_parse_video(AX_SLICE(p, n), &v), AX_EBADDATA);
        assert_null(v.body.base);
        free(p);
    }
    static const uint8_t bad[][5] = {
        {0x07, 0x01, 0, 0, 0}, /* frame type 0 */
        {0x67, 0x01, 0, 0, 0}, /* frame type 6 */
        {0x77, 0x01, 0, 0, 0}, /* frame type 7 */
        {0x17, 0x03, 0, 0, 0}, /* AVC packet type 3 */
        {0x17, 0xff, 0, 0, 0},
    };
    for (size_t i = 0; i < AX_ARRAY_SIZE(bad); i++) {
        assert_ax_err(media_flv_parse_video(AX_SLICE(bad[i], 5), &v), AX_EBADDATA);
        /* Found by fuzz.flv: fields read before the error must not be left behind. */
        assert_int_equal(v.frame_type, 0);
        assert_int_equal(v.codec_id, 0);
    }
}

/* An Enhanced RTMP extended video header (HEVC, AV1 via FourCC) is refused as unsupported. */
static void video__enhanced_rtmp_is_unsupported(void **state)
{
    (void)state;
    media_flv_video_t v;
    static const uint8_t hvc1[] = {0x90, 'h', 'v', 'c', '1', 0x01};
    assert_ax_err(media_flv_parse_video(AX_SLICE(hvc1, sizeof hvc1), &v), AX_ENOTSUP);
}

/* An AAC sequence header and raw frame give packet type and body; the flags are split. */
static void audio__aac(void **state)
{
    (void)state;
    media_flv_audio_t a;
    static const uint8_t seq[] = {0xaf, 0x00, 0x12, 0x10, 0x56, 0xe5, 0x00};
    assert_ax_err(media_flv_parse_audio(AX_SLICE(seq, sizeof seq), &a), 0);
    assert_int_equal(a.sound_format, MEDIA_FLV_SOUND_AAC);
    assert_int_equal(a.sound_rate, 3);
    assert_int_equal(a.sound_size, 1);
    assert_int_equal(a.sound_type, 1);
    assert_int_equal(a.aac_packet_type, 0);
    assert_ptr_equal(a.body.base, seq + 2);
    assert_int_equal(a.body.len, 5);
    media_aac_config_t c;
    assert_ax_err(media_aac_config_parse(a.body, &c), 0);
    assert_int_equal(c.sample_rate, 44100);
    static const uint8_t raw[] = {0xae, 0x01, 0x21, 0x10, 0x04};
    assert_ax_err(media_flv_parse_audio(AX_SLICE(raw, sizeof raw), &a), 0);
    assert_int_equal(a.aac_packet_type, 1);
    assert_int_equal(a.sound_type, 0);
    assert_int_equal(a.body.len, 3);
    static const uint8_t raw_empty[] = {0xaf, 0x01};
    assert_ax_err(media_flv_parse_audio(AX_SLICE(raw_empty, sizeof raw_empty), &a), 0);
    assert_int_equal(a.body.len, 0);
}

/* Other formats pass with the body after byte 0; format 9 (Enhanced RTMP) is unsupported. */
static void audio__other_formats(void **state)
{
    (void)state;
    media_flv_audio_t a;
    static const uint8_t mp3[] = {0x2f, 0xff, 0xfb};
    assert_ax_err(media_flv_parse_audio(AX_SLICE(mp3, sizeof mp3), &a), 0);
    assert_int_equal(a.sound_format, 2);
    assert_int_equal(a.body.len, 2);
    static const uint8_t ex[] = {0x90, 'O', 'p', 'u', 's'};
    assert_ax_err(media_flv_parse_audio(AX_SLICE(ex, sizeof ex), &a), AX_ENOTSUP);
}

/* Empty bodies, a missing AAC packet type and packet types > 1 are malformed. */
static void audio__malformed_bodies_are_refused(void **state)
{
    (void)state;
    media_flv_audio_t a;
    uint8_t *p = exact_copy((const uint8_t *)"\xaf", 1);
    assert_ax_err(media_flv_parse_audio(AX_SLICE(p, 0), &a), AX_EBADDATA);
    assert_ax_err(media_flv_parse_audio(AX_SLICE(p, 1), &a), AX_EBADDATA);
    free(p);
    static const uint8_t bad[] = {0xaf, 0x02, 0x00};
    assert_ax_err(media_flv_parse_audio(AX_SLICE(bad, sizeof bad), &a), AX_EBADDATA);
    assert_null(a.body.base);
    assert_int_equal(a.sound_format, 0);
}

static const uint8_t file_header[] = {'F', 'L', 'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0};

/* The file header gives 13 bytes and the audio/video flags; a prefix asks for more. */
static void file__header(void **state)
{
    (void)state;
    bool has_audio, has_video;
    assert_int_equal(
        media_flv_file_header(AX_SLICE(file_header, sizeof file_header), &has_audio, &has_video),
        13);
    assert_true(has_audio);
    assert_true(has_video);
    for (size_t n = 0; n < sizeof file_header; n++) {
        uint8_t *p = exact_copy(file_header, n);
        assert_ax_err(media_flv_file_header(AX_SLICE(p, n), &has_audio, &has_video), AX_EAGAIN);
        assert_false(has_audio);
        free(p);
    }
    uint8_t video_only[sizeof file_header];
    memcpy(video_only, file_header, sizeof file_header);
    video_only[4] = 0x01;
    assert_int_equal(
        media_flv_file_header(AX_SLICE(video_only, sizeof video_only), &has_audio, &has_video), 13);
    assert_false(has_audio);
    assert_true(has_video);
}

/* A longer DataOffset is skipped, up to MEDIA_FLV_FILE_MAX_HEADER_SIZE. */
static void file__header_with_extra_bytes(void **state)
{
    (void)state;
    bool a, v;
    uint8_t h[16] = {'F', 'L', 'V', 1, 0x04, 0, 0, 0, 12, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0};
    assert_int_equal(media_flv_file_header(AX_SLICE(h, sizeof h), &a, &v), 16);
    assert_ax_err(media_flv_file_header(AX_SLICE(h, 15), &a, &v), AX_EAGAIN);
    ax_wr_be32(h + 5, MEDIA_FLV_FILE_MAX_HEADER_SIZE + 1);
    assert_ax_err(media_flv_file_header(AX_SLICE(h, sizeof h), &a, &v), AX_EMSGSIZE);
}

/* Garbage is refused as soon as the byte that shows it has arrived. */
static void file__bad_headers_are_refused(void **state)
{
    (void)state;
    bool a, v;
    assert_ax_err(media_flv_file_header(AX_SLICE("G", 1), &a, &v), AX_EBADDATA);
    assert_ax_err(media_flv_file_header(AX_SLICE("FLX", 3), &a, &v), AX_EBADDATA);
    uint8_t h[sizeof file_header];
#define WITH(i, val, err)                                                                          \
    do {                                                                                           \
        memcpy(h, file_header, sizeof h);                                                          \
        h[i] = (val);                                                                              \
        assert_ax_err(media_flv_file_header(AX_SLICE(h, sizeof h), &a, &v), err);                  \
    } while (0)
    WITH(3, 2, AX_EBADDATA);    /* version 2 */
    WITH(4, 0x08, AX_EBADDATA); /* reserved flag bits */
    WITH(4, 0x80, AX_EBADDATA);
    WITH(8, 8, AX_EBADDATA);  /* DataOffset < 9 */
    WITH(12, 1, AX_EBADDATA); /* PreviousTagSize0 != 0 */
    WITH(5, 1, AX_EMSGSIZE);  /* DataOffset 16 MiB */
#undef WITH
}

/* Builds a tag: header, body and the PreviousTagSize after it. Returns its length. */
static size_t make_tag(uint8_t *out, uint8_t type, uint32_t ts, const uint8_t *body, size_t n)
{
    out[0] = type;
    ax_wr_be24(out + 1, (uint32_t)n);
    ax_wr_be24(out + 4, ts & 0xffffff);
    out[7] = (uint8_t)(ts >> 24);
    ax_wr_be24(out + 8, 0);
    if (n > 0)
        memcpy(out + 11, body, n);
    ax_wr_be32(out + 11 + n, (uint32_t)(11 + n));
    return 11 + n + 4;
}

/* A tag gives its type, timestamp (with the extended byte) and body; prefixes ask for more. */
static void file__tag(void **state)
{
    (void)state;
    uint8_t t[64];
    size_t n = make_tag(t, 9, 0x12345678, video_key, sizeof video_key);
    media_flv_tag_t tag;
    assert_int_equal(media_flv_file_tag(AX_SLICE(t, n), 1 << 20, &tag), (int)n);
    assert_int_equal(tag.type, 9);
    assert_int_equal(tag.timestamp, 0x12345678);
    assert_ptr_equal(tag.body.base, t + 11);
    assert_int_equal(tag.body.len, sizeof video_key);
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *p = exact_copy(t, cut);
        assert_ax_err(media_flv_file_tag(AX_SLICE(p, cut), 1 << 20, &tag), AX_EAGAIN);
        assert_null(tag.body.base);
        free(p);
    }
    /* An empty body and unknown types are returned as they are. */
    n = make_tag(t, 15, 7, NULL, 0);
    assert_int_equal(media_flv_file_tag(AX_SLICE(t, n), 1 << 20, &tag), 15);
    assert_int_equal(tag.type, 15);
    assert_int_equal(tag.body.len, 0);
    /* Two tags back to back: only the first is consumed. */
    size_t n1 = make_tag(t, 8, 0, (const uint8_t *)"\xaf\x01\x21", 3);
    size_t n2 = make_tag(t + n1, 9, 33, video_b_neg, sizeof video_b_neg);
    assert_int_equal(media_flv_file_tag(AX_SLICE(t, n1 + n2), 1 << 20, &tag), (int)n1);
    assert_int_equal(media_flv_file_tag(AX_SLICE(t + n1, n2), 1 << 20, &tag), (int)n2);
    assert_int_equal(tag.timestamp, 33);
}

/* A tag larger than the caller's limit is refused from its header alone. */
static void file__oversized_tag_is_refused_early(void **state)
{
    (void)state;
    uint8_t t[64];
    size_t n = make_tag(t, 9, 0, video_key, sizeof video_key);
    media_flv_tag_t tag;
    assert_ax_err(media_flv_file_tag(AX_SLICE(t, 11), sizeof video_key - 1, &tag), AX_EMSGSIZE);
    assert_int_equal(media_flv_file_tag(AX_SLICE(t, n), sizeof video_key, &tag), (int)n);
}

/* Reserved bits, encrypted tags, a stream id and a wrong PreviousTagSize are refused. */
static void file__bad_tags_are_refused(void **state)
{
    (void)state;
    uint8_t t[64];
    media_flv_tag_t tag;
    size_t n = make_tag(t, 9, 0, video_key, sizeof video_key);
    uint8_t saved[64];
    memcpy(saved, t, n);
#define WITH(i, val, err)                                                                          \
    do {                                                                                           \
        memcpy(t, saved, n);                                                                       \
        t[i] = (val);                                                                              \
        assert_ax_err(media_flv_file_tag(AX_SLICE(t, n), 1 << 20, &tag), err);                     \
    } while (0)
    WITH(0, 0x49, AX_EBADDATA); /* reserved bit */
    WITH(0, 0x89, AX_EBADDATA);
    WITH(0, 0x29, AX_ENOTSUP); /* Filter: encrypted */
    WITH(10, 1, AX_EBADDATA);  /* StreamID */
    WITH(8, 1, AX_EBADDATA);
    WITH(n - 1, 0, AX_EBADDATA); /* PreviousTagSize */
    WITH(n - 4, 1, AX_EBADDATA);
#undef WITH
    /* The reserved and filter bits are judged from the first byte alone. */
    assert_ax_err(media_flv_file_tag(AX_SLICE("\x29", 1), 1 << 20, &tag), AX_ENOTSUP);
    assert_ax_err(media_flv_file_tag(AX_SLICE("\xc9", 1), 1 << 20, &tag), AX_EBADDATA);
}

/* A whole small file reads back tag by tag to the end with nothing left over. */
static void file__walk(void **state)
{
    (void)state;
    uint8_t f[256];
    memcpy(f, file_header, sizeof file_header);
    size_t n = sizeof file_header;
    n += make_tag(f + n, 9, 0, video_seq, sizeof video_seq);
    n += make_tag(f + n, 9, 0, video_key, sizeof video_key);
    n += make_tag(f + n, 8, 23, (const uint8_t *)"\xaf\x01\x21\x10", 4);
    n += make_tag(f + n, 9, 40, video_b_neg, sizeof video_b_neg);
    bool a, v;
    int rv = media_flv_file_header(AX_SLICE(f, n), &a, &v);
    assert_int_equal(rv, 13);
    size_t pos = (size_t)rv;
    const uint8_t types[] = {9, 9, 8, 9};
    size_t count = 0;
    while (pos < n) {
        media_flv_tag_t tag;
        rv = media_flv_file_tag(AX_SLICE(f + pos, n - pos), 1 << 20, &tag);
        assert_true(rv > 0);
        assert_true(slice_inside(tag.body, f, n));
        assert_true(count < sizeof types);
        assert_int_equal(tag.type, types[count]);
        count++;
        pos += (size_t)rv;
    }
    assert_int_equal(pos, n);
    assert_int_equal(count, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(video__avc_keyframe),
        cmocka_unit_test(video__negative_cts_is_sign_extended),
        cmocka_unit_test(video__sequence_header_and_end),
        cmocka_unit_test(video__other_codecs_and_info_frames),
        cmocka_unit_test(video__malformed_bodies_are_refused),
        cmocka_unit_test(video__enhanced_rtmp_is_unsupported),
        cmocka_unit_test(audio__aac),
        cmocka_unit_test(audio__other_formats),
        cmocka_unit_test(audio__malformed_bodies_are_refused),
        cmocka_unit_test(file__header),
        cmocka_unit_test(file__header_with_extra_bytes),
        cmocka_unit_test(file__bad_headers_are_refused),
        cmocka_unit_test(file__tag),
        cmocka_unit_test(file__oversized_tag_is_refused_early),
        cmocka_unit_test(file__bad_tags_are_refused),
        cmocka_unit_test(file__walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * CMAF boxes (cmaf.c): the init segment and the fragment header, read back with a small box
 * walker that checks every size nests exactly.
 */
#define _GNU_SOURCE /* memmem */
#include "ax_test.h"

#include <string.h>

#include "aethex/common/util.h"
#include "hls_internal.h"
#include "hls_test_source.h"

/* Finds the child box `type` inside [p, p+len) (skipping `skip` header bytes of the parent's
 * payload); returns its start or NULL. Every size is checked against its container. */
static const uint8_t *child(const uint8_t *p, size_t len, const char *type, size_t *out_len)
{
    size_t at = 0;
    while (at + 8 <= len) {
        uint32_t sz = ax_rd_be32(p + at);
        assert_true(sz >= 8 && at + sz <= len);
        if (memcmp(p + at + 4, type, 4) == 0) {
            *out_len = sz;
            return p + at;
        }
        at += sz;
    }
    assert_int_equal(at, len); /* the children fill their parent exactly */
    return NULL;
}

/* Walks a path of container boxes ("moov/trak/mdia"), returning the last box. */
static const uint8_t *path(const uint8_t *p, size_t len, const char *const *types, size_t n,
                           size_t *out_len)
{
    const uint8_t *b = p;
    size_t bl = len;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = child(i == 0 ? b : b + 8, i == 0 ? bl : bl - 8, types[i], &bl);
        assert_non_null(c);
        b = c;
    }
    *out_len = bl;
    return b;
}

static ax_buf_t video_init(void)
{
    struct cmaf_track_info ti = {
        .track = MEDIA_TRACK_VIDEO,
        .timescale = MEDIA_CMAF_VIDEO_TIMESCALE,
        .width = 1280,
        .height = 720,
        .avcc = AX_SLICE(hls_test_avcc, sizeof(hls_test_avcc)),
    };
    ax_buf_t b;
    ax_buf_init(&b, 4096);
    assert_ax_err(media_cmaf__write_init(&ti, &b), 0);
    return b;
}

/* The video init segment: ftyp with CMAF brands, then moov with mvhd, one trak (tkhd
 * 1280x720, mdhd at 90 kHz, hdlr vide, avc1 carrying our avcC) and mvex/trex. */
static void cmaf__video_init_segment_boxes(void **state)
{
    (void)state;
    ax_buf_t b = video_init();
    size_t n;
    const uint8_t *ftyp = child(b.base, b.len, "ftyp", &n);
    assert_non_null(ftyp);
    assert_memory_equal(ftyp + 8, "iso6", 4);
    assert_non_null(memmem(ftyp, n, "cmfc", 4));
    const uint8_t *moov = child(b.base, b.len, "moov", &n);
    assert_non_null(moov);
    assert_int_equal(ftyp + ax_rd_be32(ftyp), moov);
    assert_int_equal(moov + n, b.base + b.len);

    const char *tkhd_p[] = {"moov", "trak", "tkhd"};
    const uint8_t *tkhd = path(b.base, b.len, tkhd_p, 3, &n);
    assert_int_equal(n, 92);
    assert_int_equal(ax_rd_be32(tkhd + 8 + 4 + 8), 1); /* track_ID */
    assert_int_equal(ax_rd_be32(tkhd + n - 8), 1280u << 16);
    assert_int_equal(ax_rd_be32(tkhd + n - 4), 720u << 16);

    const char *mdhd_p[] = {"moov", "trak", "mdia", "mdhd"};
    const uint8_t *mdhd = path(b.base, b.len, mdhd_p, 4, &n);
    assert_int_equal(ax_rd_be32(mdhd + 8 + 4 + 8), 90000);
    const char *hdlr_p[] = {"moov", "trak", "mdia", "hdlr"};
    const uint8_t *hdlr = path(b.base, b.len, hdlr_p, 4, &n);
    assert_memory_equal(hdlr + 16, "vide", 4);

    const char *stsd_p[] = {"moov", "trak", "mdia", "minf", "stbl", "stsd"};
    const uint8_t *stsd = path(b.base, b.len, stsd_p, 6, &n);
    assert_int_equal(ax_rd_be32(stsd + 12), 1);
    const uint8_t *avc1 = stsd + 16;
    assert_memory_equal(avc1 + 4, "avc1", 4);
    uint32_t avc1_len = ax_rd_be32(avc1);
    assert_int_equal(16 + avc1_len, n);
    assert_int_equal(ax_rd_be16(avc1 + 8 + 24), 1280);
    assert_int_equal(ax_rd_be16(avc1 + 8 + 26), 720);
    size_t cl;
    const uint8_t *avcc = child(avc1 + 86, avc1_len - 86, "avcC", &cl);
    assert_non_null(avcc);
    assert_int_equal(cl, 8 + sizeof(hls_test_avcc));
    assert_memory_equal(avcc + 8, hls_test_avcc, sizeof(hls_test_avcc));
    /* Empty sample tables (all samples are in fragments). */
    const char *stbl_p[] = {"moov", "trak", "mdia", "minf", "stbl"};
    const uint8_t *stbl = path(b.base, b.len, stbl_p, 5, &n);
    const char *need[] = {"stts", "stsc", "stsz", "stco"};
    for (size_t i = 0; i < 4; i++) {
        size_t l;
        const uint8_t *t = child(stbl + 8, n - 8, need[i], &l);
        assert_non_null(t);
        assert_int_equal(ax_rd_be32(t + 12), 0);
    }
    const char *trex_p[] = {"moov", "mvex", "trex"};
    const uint8_t *trex = path(b.base, b.len, trex_p, 3, &n);
    assert_int_equal(ax_rd_be32(trex + 12), 1);
    assert_int_equal(ax_rd_be32(trex + 16), 1);
    ax_buf_close(&b);
}

/* The audio init segment: soun handler, timescale = sample rate, mp4a with the channel count
 * and rate, and an esds whose DecoderSpecificInfo is our AudioSpecificConfig. */
static void cmaf__audio_init_carries_asc(void **state)
{
    (void)state;
    struct cmaf_track_info ti = {
        .track = MEDIA_TRACK_AUDIO,
        .timescale = 44100,
        .sample_rate = 44100,
        .channels = 2,
        .asc = AX_SLICE(hls_test_asc, sizeof(hls_test_asc)),
    };
    ax_buf_t b;
    ax_buf_init(&b, 4096);
    assert_ax_err(media_cmaf__write_init(&ti, &b), 0);
    size_t n;
    const char *mdhd_p[] = {"moov", "trak", "mdia", "mdhd"};
    const uint8_t *mdhd = path(b.base, b.len, mdhd_p, 4, &n);
    assert_int_equal(ax_rd_be32(mdhd + 20), 44100);
    const char *smhd_p[] = {"moov", "trak", "mdia", "minf", "smhd"};
    path(b.base, b.len, smhd_p, 5, &n);
    const char *stsd_p[] = {"moov", "trak", "mdia", "minf", "stbl", "stsd"};
    const uint8_t *stsd = path(b.base, b.len, stsd_p, 6, &n);
    const uint8_t *mp4a = stsd + 16;
    assert_memory_equal(mp4a + 4, "mp4a", 4);
    assert_int_equal(ax_rd_be16(mp4a + 8 + 16), 2);
    assert_int_equal(ax_rd_be32(mp4a + 8 + 24), 44100u << 16);
    size_t el;
    const uint8_t *esds = child(mp4a + 36, ax_rd_be32(mp4a) - 36, "esds", &el);
    assert_non_null(esds);
    const uint8_t *dsi = memmem(esds, el, "\x05\x02", 2);
    assert_non_null(dsi);
    assert_memory_equal(dsi + 2, hls_test_asc, sizeof(hls_test_asc));
    assert_int_equal(esds[12], 0x03);
    assert_int_equal(esds[13] + 14, el); /* ES descriptor length covers the rest */
    ax_buf_close(&b);
}

/* A fragment header: styp, moof(mfhd seq, traf(tfhd base-is-moof, tfdt v1, trun v1 with
 * per-sample duration/size/flags/signed offsets)), mdat header, data offset to the payload. */
static void cmaf__fragment_header_layout(void **state)
{
    (void)state;
    struct cmaf_sample s[3] = {
        {.size = 1000, .duration = 3000, .cto = 6000, .sync = true},
        {.size = 200, .duration = 3000, .cto = -3000, .sync = false},
        {.size = 300, .duration = 2970, .cto = 0, .sync = false},
    };
    size_t hs = media_cmaf__fragment_header_size(MEDIA_TRACK_VIDEO, true, 3);
    uint8_t h[512];
    assert_true(hs <= sizeof(h));
    media_cmaf__write_fragment_header(h, MEDIA_TRACK_VIDEO, true, 7, UINT64_C(0x123456789), s, 3, 1500);
    assert_memory_equal(h + 4, "styp", 4);
    const uint8_t *moof = h + 24;
    uint32_t moof_len = ax_rd_be32(moof);
    assert_memory_equal(moof + 4, "moof", 4);
    assert_int_equal(24 + moof_len + 8, hs);
    size_t n;
    const uint8_t *mfhd = child(moof + 8, moof_len - 8, "mfhd", &n);
    assert_int_equal(ax_rd_be32(mfhd + 12), 7);
    const uint8_t *traf = child(moof + 8, moof_len - 8, "traf", &n);
    size_t tl = n;
    const uint8_t *tfhd = child(traf + 8, tl - 8, "tfhd", &n);
    assert_int_equal(ax_rd_be32(tfhd + 8) & 0xffffff, 0x020000);
    assert_int_equal(ax_rd_be32(tfhd + 12), 1);
    const uint8_t *tfdt = child(traf + 8, tl - 8, "tfdt", &n);
    assert_int_equal(tfdt[8], 1);
    assert_int_equal(ax_rd_be64(tfdt + 12), UINT64_C(0x123456789));
    const uint8_t *trun = child(traf + 8, tl - 8, "trun", &n);
    assert_int_equal(trun[8], 1);
    assert_int_equal(ax_rd_be32(trun + 8) & 0xffffff, 0x000f01);
    assert_int_equal(ax_rd_be32(trun + 12), 3);
    assert_int_equal(ax_rd_be32(trun + 16), moof_len + 8);
    const uint8_t *e = trun + 20;
    assert_int_equal(ax_rd_be32(e + 16 + 0), 3000);
    assert_int_equal(ax_rd_be32(e + 16 + 4), 200);
    assert_int_equal(ax_rd_be32(e + 0 + 8), 0x02000000);
    assert_int_equal(ax_rd_be32(e + 16 + 8), 0x01010000);
    assert_int_equal((int32_t)ax_rd_be32(e + 16 + 12), -3000);
    assert_int_equal(ax_rd_be32(e + 32 + 0), 2970);
    const uint8_t *mdat = h + hs - 8;
    assert_memory_equal(mdat + 4, "mdat", 4);
    assert_int_equal(ax_rd_be32(mdat), 1508);

    /* Audio: no styp in a later part, tfhd default sample flags, 8 bytes per sample. */
    size_t as = media_cmaf__fragment_header_size(MEDIA_TRACK_AUDIO, false, 2);
    media_cmaf__write_fragment_header(h, MEDIA_TRACK_AUDIO, false, 1, 0, s, 2, 1200);
    assert_memory_equal(h + 4, "moof", 4);
    assert_int_equal(ax_rd_be32(h) + 8, as);
    assert_int_equal(as, 8 + 16 + 8 + 20 + 20 + 20 + 16 + 8);
}

/* RFC 6381 codec strings come from the config's bytes. */
static void cmaf__codec_strings(void **state)
{
    (void)state;
    char s[32];
    media_cmaf__avc_codec_string(0x64, 0x00, 0x1f, s, sizeof(s));
    assert_string_equal(s, "avc1.64001f");
    media_cmaf__avc_codec_string(0x42, 0xc0, 0x1e, s, sizeof(s));
    assert_string_equal(s, "avc1.42c01e");
    media_cmaf__aac_codec_string(2, s, sizeof(s));
    assert_string_equal(s, "mp4a.40.2");
    media_cmaf__aac_codec_string(5, s, sizeof(s));
    assert_string_equal(s, "mp4a.40.5");
}

/* An init segment that does not fit the buffer's limit is AX_EMSGSIZE, not a short write. */
static void cmaf__init_over_limit_is_emsgsize(void **state)
{
    (void)state;
    struct cmaf_track_info ti = {
        .track = MEDIA_TRACK_VIDEO,
        .timescale = MEDIA_CMAF_VIDEO_TIMESCALE,
        .width = 16,
        .height = 16,
        .avcc = AX_SLICE(hls_test_avcc, sizeof(hls_test_avcc)),
    };
    ax_buf_t b;
    ax_buf_init(&b, 300);
    assert_ax_err(media_cmaf__write_init(&ti, &b), AX_EMSGSIZE);
    ax_buf_close(&b);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cmaf__video_init_segment_boxes),
        cmocka_unit_test(cmaf__audio_init_carries_asc),
        cmocka_unit_test(cmaf__fragment_header_layout),
        cmocka_unit_test(cmaf__codec_strings),
        cmocka_unit_test(cmaf__init_over_limit_is_emsgsize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

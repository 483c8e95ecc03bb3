/*
 * media.avc: AVCDecoderConfigurationRecord + SPS parsing, AVCC NAL checks, codec strings.
 *
 * The real records were captured from ffmpeg 5.1 / libx264 FLV output (the sequence header
 * tag body after the 5-byte AVCVIDEOPACKET header), made by media/fuzz/make_seeds_flv.sh:
 *   high720:  testsrc2=size=1280x720:rate=30, -profile:v high -bf 2 -g 60
 *   base480:  testsrc2=size=480x270:rate=25, -profile:v baseline
 *   crop854:  testsrc2=size=854x480:rate=30, -profile:v main
 *   crop1918: testsrc2=size=1918x1078:rate=60, -profile:v high
 *   high10:   640x360@30, -profile:v high10 -pix_fmt yuv420p10le
 *   high422:  640x360@30, -profile:v high422 -pix_fmt yuv422p
 *   high444:  855x481@30 (scale filter), -profile:v high444 -pix_fmt yuv444p
 *   interl:   1920x1080@25, -x264-params interlaced=1 (field coding, frame_mbs_only_flag 0)
 * Crafted SPSs (scaling lists, POC type 1, separate colour planes, monochrome, every
 * out-of-range field) come from a small bit writer below that also inserts the
 * emulation-prevention bytes an encoder would.
 */
#include "ax_test.h"

#include <string.h>

#include "aethex/media/flv.h"

static const uint8_t rec_high720[] = {
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
    0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83,
    0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00};
static const uint8_t rec_base480[] = {
    0x01, 0x42, 0xc0, 0x15, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x42, 0xc0, 0x15, 0xd9, 0x01,
    0xe0, 0x8f, 0xeb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03,
    0x20, 0xf1, 0x62, 0xe4, 0x80, 0x01, 0x00, 0x05, 0x68, 0xcb, 0x83, 0xcb, 0x20};
static const uint8_t rec_crop854[] = {0x01, 0x4d, 0x40, 0x1f, 0xff, 0xe1, 0x00, 0x18, 0x67, 0x4d,
                                      0x40, 0x1f, 0xec, 0xa0, 0x6c, 0x1e, 0xf3, 0x78, 0x08, 0x80,
                                      0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8c,
                                      0x18, 0xcb, 0x01, 0x00, 0x05, 0x68, 0xeb, 0xe3, 0xcb, 0x20};
static const uint8_t rec_crop1918[] = {
    0x01, 0x64, 0x00, 0x2a, 0xff, 0xe1, 0x00, 0x1b, 0x67, 0x64, 0x00, 0x2a, 0xac, 0xd9, 0x40, 0x78,
    0x02, 0x27, 0xa9, 0xb0, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x78, 0x0f,
    0x18, 0x31, 0x96, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00};
static const uint8_t rec_high10[] = {
    0x01, 0x6e, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1b, 0x67, 0x6e, 0x00, 0x1e, 0xa6, 0xcd, 0x94, 0x0a,
    0x02, 0xff, 0x97, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1,
    0x62, 0xd9, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xfa, 0xfa, 0x00};
static const uint8_t rec_high422[] = {
    0x01, 0x7a, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x7a, 0x00, 0x1e, 0xbc, 0xd9, 0x40, 0xa0,
    0x2f, 0xf8, 0x9c, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x03, 0xc5, 0x8b,
    0x65, 0x80, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfe, 0xf8, 0xf8, 0x00};
static const uint8_t rec_high444[] = {
    0x01, 0xf4, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x20, 0x67, 0xf4, 0x00, 0x1f, 0x91, 0x9b,
    0x28, 0x1b, 0x07, 0xfc, 0x54, 0x21, 0xff, 0x82, 0x26, 0x82, 0x27, 0x08, 0x00, 0x00,
    0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x01, 0xe0, 0x78, 0xc1, 0x8c, 0xb0, 0x01, 0x00,
    0x06, 0x68, 0xeb, 0xe3, 0xc4, 0x48, 0x44, 0xff, 0xf8, 0xf8, 0x00};
static const uint8_t rec_interl[] = {
    0x01, 0x64, 0x00, 0x28, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78,
    0x04, 0x4f, 0xde, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x06, 0x43, 0xe2, 0xc5,
    0xb2, 0xc0, 0x01, 0x00, 0x06, 0x68, 0xfb, 0xa3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00};

struct real_record {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    uint32_t width, height, fps_num, fps_den;
    uint8_t chroma, depth;
    const char *codec;
};

#define REC(n) #n, rec_##n, sizeof rec_##n
static const struct real_record real_records[] = {
    {REC(high720), 1280, 720, 30, 1, 1, 8, "avc1.64001f"},
    {REC(base480), 480, 270, 25, 1, 1, 8, "avc1.42c015"},
    {REC(crop854), 854, 480, 30, 1, 1, 8, "avc1.4d401f"},
    {REC(crop1918), 1918, 1078, 60, 1, 1, 8, "avc1.64002a"},
    {REC(high10), 640, 360, 30, 1, 1, 10, "avc1.6e001e"},
    {REC(high422), 640, 360, 30, 1, 2, 8, "avc1.7a001e"},
    {REC(high444), 855, 481, 30, 1, 3, 8, "avc1.f4001f"},
    {REC(interl), 1920, 1080, 25, 1, 1, 8, "avc1.640028"},
};

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

/* Every ffmpeg/x264 record parses to the size, depth, chroma and rate ffprobe reports. */
static void avc__real_records_give_ffprobe_dimensions(void **state)
{
    (void)state;
    for (size_t i = 0; i < AX_ARRAY_SIZE(real_records); i++) {
        const struct real_record *r = &real_records[i];
        media_avc_config_t c;
        assert_ax_err(media_avc_config_parse(AX_SLICE(r->bytes, r->len), &c), 0);
        if (c.width != r->width || c.height != r->height)
            fail_msg("%s: %ux%u, want %ux%u", r->name, c.width, c.height, r->width, r->height);
        assert_int_equal(c.fps_num, r->fps_num);
        assert_int_equal(c.fps_den, r->fps_den);
        assert_int_equal(c.chroma_format_idc, r->chroma);
        assert_int_equal(c.bit_depth_luma, r->depth);
        assert_int_equal(c.nal_length_size, 4);
        assert_int_equal(c.nsps, 1);
        assert_int_equal(c.npps, 1);
        assert_true(slice_inside(c.sps[0], r->bytes, r->len));
        assert_true(slice_inside(c.pps[0], r->bytes, r->len));
        assert_int_equal(c.sps[0].base[0] & 0x1f, 7);
        assert_int_equal(c.pps[0].base[0] & 0x1f, 8);
        assert_ptr_equal(c.record.base, r->bytes);
        assert_int_equal(c.record.len, r->len);
        char s[32];
        media_avc_codec_string(&c, s, sizeof s);
        assert_string_equal(s, r->codec);
    }
}

/*
 * Cutting a real record at any byte is refused, and nothing past the cut is read. The one
 * exception is a cut just before the optional High-profile extension: that record is whole.
 */
static void avc__every_truncated_record_is_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < AX_ARRAY_SIZE(real_records); i++) {
        const struct real_record *r = &real_records[i];
        size_t sps_len = ax_rd_be16(r->bytes + 6);
        size_t pps_len = ax_rd_be16(r->bytes + 8 + sps_len + 1);
        size_t ext_start = 8 + sps_len + 3 + pps_len;
        for (size_t n = 0; n < r->len; n++) {
            uint8_t *p = exact_copy(r->bytes, n);
            media_avc_config_t c;
            int rv = media_avc_config_parse(AX_SLICE(p, n), &c);
            free(p);
            if (n == ext_start) {
                assert_ax_err(rv, 0);
                assert_int_equal(c.width, r->width);
                continue;
            }
            if (rv != AX_EBADDATA)
                fail_msg("%s cut at %zu: %s", r->name, n, rv ? ax_err_name(rv) : "accepted");
            assert_int_equal(c.width, 0); /* *out is zeroed on error */
        }
    }
}

/*
 * An SPS cut short (with the record's length fixed up to match) is refused, or, when only
 * bits after the VUI timing info are lost, gives exactly the full result: never a wrong one.
 */
static void avc__every_truncated_sps_is_refused_or_exact(void **state)
{
    (void)state;
    for (size_t i = 0; i < AX_ARRAY_SIZE(real_records); i++) {
        const struct real_record *r = &real_records[i];
        size_t sps_len = ax_rd_be16(r->bytes + 6);
        size_t refused = 0;
        for (size_t cut = 1; cut < sps_len; cut++) {
            /* header(6) + len(2) + sps[0..cut) + the PPS part unchanged. */
            uint8_t buf[128];
            size_t tail = r->len - 8 - sps_len;
            memcpy(buf, r->bytes, 8);
            ax_wr_be16(buf + 6, (uint16_t)cut);
            memcpy(buf + 8, r->bytes + 8, cut);
            memcpy(buf + 8 + cut, r->bytes + 8 + sps_len, tail);
            size_t n = 8 + cut + tail;
            uint8_t *p = exact_copy(buf, n);
            media_avc_config_t c;
            int rv = media_avc_config_parse(AX_SLICE(p, n), &c);
            if (rv == 0) {
                assert_int_equal(c.width, r->width);
                assert_int_equal(c.height, r->height);
                assert_int_equal(c.fps_num, r->fps_num);
            } else {
                assert_ax_err(rv, AX_EBADDATA);
                refused++;
            }
            free(p);
        }
        /* At least everything up to the timing info is needed. */
        assert_true(refused >= sps_len / 2);
    }
}

/* ---- a bit writer for crafted SPSs ----------------------------------------------------- */

struct bw {
    uint8_t buf[512];
    size_t bits;
};

static void put_bits(struct bw *w, unsigned n, uint64_t v)
{
    for (unsigned i = n; i-- > 0;) {
        assert_true(w->bits / 8 < sizeof w->buf);
        if ((v >> i) & 1)
            w->buf[w->bits / 8] |= (uint8_t)(0x80 >> (w->bits % 8));
        w->bits++;
    }
}

static void put_ue(struct bw *w, uint64_t v)
{
    uint64_t x = v + 1;
    unsigned len = 0;
    while ((x >> len) > 1)
        len++;
    put_bits(w, len, 0);
    put_bits(w, len + 1, x);
}

static void put_se(struct bw *w, int64_t v)
{
    put_ue(w, v > 0 ? (uint64_t)(2 * v - 1) : (uint64_t)(-2 * v));
}

/* Ends the RBSP (stop bit, alignment) and escapes it into `out` (H.264 7.4.1). */
static size_t finish_nal(struct bw *w, uint8_t *out, size_t cap)
{
    put_bits(w, 1, 1);
    while (w->bits % 8)
        put_bits(w, 1, 0);
    size_t n = 0, zeros = 0;
    for (size_t i = 0; i < w->bits / 8; i++) {
        uint8_t b = w->buf[i];
        if (zeros >= 2 && b <= 3) {
            assert_true(n < cap);
            out[n++] = 3;
            zeros = 0;
        }
        assert_true(n < cap);
        out[n++] = b;
        zeros = b == 0 ? zeros + 1 : 0;
    }
    return n;
}

/* The SPS fields a crafted test sets; sps_default() gives a plain 1280x720 High SPS. */
struct sps {
    uint32_t profile;
    uint32_t id;
    uint32_t chroma_format_idc;
    uint32_t separate_colour_plane;
    uint32_t luma_minus8, chroma_minus8;
    int scaling; /* 0: none, 1: all lists present with deltas, 2: bad delta */
    uint32_t log2_frame_num_minus4;
    uint32_t poc_type;
    uint32_t poc_cycle;
    uint32_t max_ref;
    uint32_t width_mbs_minus1, height_map_units_minus1;
    uint32_t frame_mbs_only;
    bool crop;
    uint32_t crop_l, crop_r, crop_t, crop_b;
    bool vui;
    bool sar255;
    bool timing;
    uint32_t num_units_in_tick, time_scale;
    bool leading_zeros_33; /* replace log2_max_frame_num with a 33-zero-bit code */
};

static struct sps sps_default(void)
{
    return (struct sps){
        .profile = 100,
        .chroma_format_idc = 1,
        .width_mbs_minus1 = 79,
        .height_map_units_minus1 = 44,
        .frame_mbs_only = 1,
        .max_ref = 4,
        .vui = true,
        .timing = true,
        .num_units_in_tick = 1,
        .time_scale = 60,
    };
}

static bool has_chroma_info(uint32_t p)
{
    return p == 100 || p == 110 || p == 122 || p == 244 || p == 44 || p == 83 || p == 86 ||
           p == 118 || p == 128 || p == 138 || p == 139 || p == 134 || p == 135 || p == 144;
}

/* Writes the SPS NAL unit (escaped) into `out`; returns its length. */
static size_t write_sps(const struct sps *s, uint8_t *out, size_t cap)
{
    struct bw w;
    memset(&w, 0, sizeof w);
    put_bits(&w, 8, 0x67);
    put_bits(&w, 8, s->profile);
    put_bits(&w, 8, 0);  /* constraint flags */
    put_bits(&w, 8, 31); /* level */
    put_ue(&w, s->id);
    if (has_chroma_info(s->profile)) {
        put_ue(&w, s->chroma_format_idc);
        if (s->chroma_format_idc == 3)
            put_bits(&w, 1, s->separate_colour_plane);
        put_ue(&w, s->luma_minus8);
        put_ue(&w, s->chroma_minus8);
        put_bits(&w, 1, 0);
        put_bits(&w, 1, s->scaling != 0);
        if (s->scaling) {
            unsigned lists = s->chroma_format_idc != 3 ? 8 : 12;
            for (unsigned i = 0; i < lists; i++) {
                put_bits(&w, 1, 1);
                unsigned size = i < 6 ? 16 : 64;
                /* Walk a ramp so every delta is non-trivial, then end with nextScale 0. */
                int last = 8;
                for (unsigned j = 0; j < size; j++) {
                    int want = j + 1 == size ? 0 : 8 + (int)(j % 50);
                    int delta = (want - last + 256) % 256;
                    if (delta > 127)
                        delta -= 256;
                    if (s->scaling == 2 && i == lists - 1 && j == 3)
                        delta = 200; /* outside -128..127 */
                    put_se(&w, delta);
                    if (want == 0)
                        break;
                    last = want;
                }
            }
        }
    }
    if (s->leading_zeros_33) {
        put_bits(&w, 33, 0);
        put_bits(&w, 8, 0xff);
    } else {
        put_ue(&w, s->log2_frame_num_minus4);
    }
    put_ue(&w, s->poc_type);
    if (s->poc_type == 0) {
        put_ue(&w, 2);
    } else if (s->poc_type == 1) {
        put_bits(&w, 1, 0);
        put_se(&w, -3);
        put_se(&w, 5);
        put_ue(&w, s->poc_cycle);
        for (uint32_t i = 0; i < s->poc_cycle && i < 300; i++)
            put_se(&w, (int)i - 7);
    }
    put_ue(&w, s->max_ref);
    put_bits(&w, 1, 0);
    put_ue(&w, s->width_mbs_minus1);
    put_ue(&w, s->height_map_units_minus1);
    put_bits(&w, 1, s->frame_mbs_only);
    if (!s->frame_mbs_only)
        put_bits(&w, 1, 1);
    put_bits(&w, 1, 1);
    put_bits(&w, 1, s->crop);
    if (s->crop) {
        put_ue(&w, s->crop_l);
        put_ue(&w, s->crop_r);
        put_ue(&w, s->crop_t);
        put_ue(&w, s->crop_b);
    }
    put_bits(&w, 1, s->vui);
    if (s->vui) {
        put_bits(&w, 1, s->sar255);
        if (s->sar255) {
            put_bits(&w, 8, 255);
            put_bits(&w, 16, 4);
            put_bits(&w, 16, 3);
        }
        put_bits(&w, 1, 1); /* overscan info */
        put_bits(&w, 1, 0);
        put_bits(&w, 1, 1); /* video signal type with colour description */
        put_bits(&w, 3, 5);
        put_bits(&w, 1, 0);
        put_bits(&w, 1, 1);
        put_bits(&w, 24, 0x010101);
        put_bits(&w, 1, 1); /* chroma loc */
        put_ue(&w, 0);
        put_ue(&w, 0);
        put_bits(&w, 1, s->timing);
        if (s->timing) {
            put_bits(&w, 32, s->num_units_in_tick);
            put_bits(&w, 32, s->time_scale);
            put_bits(&w, 1, 1);
        }
        put_bits(&w, 5, 0); /* no HRD, no pic_struct, no bitstream restriction */
    }
    return finish_nal(&w, out, cap);
}

static const uint8_t a_pps[] = {0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0};

/* Wraps one SPS and one PPS in a record with `profile` and lengthSizeMinusOne 3. */
static size_t write_record(const uint8_t *sps, size_t sps_len, uint8_t *out, size_t cap)
{
    assert_true(11 + sps_len + sizeof a_pps <= cap);
    out[0] = 1;
    out[1] = sps[1];
    out[2] = sps[2];
    out[3] = sps[3];
    out[4] = 0xff;
    out[5] = 0xe1;
    ax_wr_be16(out + 6, (uint16_t)sps_len);
    memcpy(out + 8, sps, sps_len);
    size_t n = 8 + sps_len;
    out[n++] = 1;
    ax_wr_be16(out + n, sizeof a_pps);
    n += 2;
    memcpy(out + n, a_pps, sizeof a_pps);
    return n + sizeof a_pps;
}

/* Parses the crafted SPS `s` wrapped in a record; returns the parser's result. */
static int parse_crafted(const struct sps *s, media_avc_config_t *c)
{
    uint8_t sps[512], rec[600];
    size_t sps_len = write_sps(s, sps, sizeof sps);
    size_t n = write_record(sps, sps_len, rec, sizeof rec);
    uint8_t *p = exact_copy(rec, n);
    int rv = media_avc_config_parse(AX_SLICE(p, n), c);
    free(p);
    return rv;
}

/* The crafted default SPS parses like x264's own (and proves the writer right). */
static void avc__crafted_default_sps_parses(void **state)
{
    (void)state;
    struct sps s = sps_default();
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.width, 1280);
    assert_int_equal(c.height, 720);
    assert_int_equal(c.fps_num, 30);
    assert_int_equal(c.fps_den, 1);
}

/* Scaling lists in a High SPS are read past, for 8 lists (4:2:0) and 12 (4:4:4). */
static void avc__scaling_lists_are_skipped(void **state)
{
    (void)state;
    struct sps s = sps_default();
    s.scaling = 1;
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.width, 1280);
    assert_int_equal(c.fps_num, 30);

    s.profile = 244;
    s.chroma_format_idc = 3;
    s.crop = true;
    s.crop_r = 3; /* 4:4:4 crops in single pixels */
    s.crop_b = 1;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.width, 1277);
    assert_int_equal(c.height, 719);
    assert_int_equal(c.chroma_format_idc, 3);
    assert_int_equal(c.fps_num, 30);
}

/* A scaling-list delta outside -128..127 is refused. */
static void avc__scaling_delta_out_of_range_is_refused(void **state)
{
    (void)state;
    struct sps s = sps_default();
    s.scaling = 2;
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), AX_EBADDATA);
}

/* 4:4:4 with separate colour planes crops like monochrome (ChromaArrayType 0). */
static void avc__separate_colour_planes_crop_per_pixel(void **state)
{
    (void)state;
    struct sps s = sps_default();
    s.profile = 244;
    s.chroma_format_idc = 3;
    s.separate_colour_plane = 1;
    s.crop = true;
    s.crop_l = 1;
    s.crop_r = 2;
    s.crop_b = 3;
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.width, 1277);
    assert_int_equal(c.height, 717);
}

/* Monochrome (chroma_format_idc 0) with field coding crops in units of 1 x 2 lines. */
static void avc__monochrome_field_coded_crop(void **state)
{
    (void)state;
    struct sps s = sps_default();
    s.chroma_format_idc = 0;
    s.frame_mbs_only = 0;
    s.height_map_units_minus1 = 33; /* 34 map units = 1088 lines */
    s.crop = true;
    s.crop_b = 4; /* 8 lines */
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.height, 1080);
    assert_int_equal(c.chroma_format_idc, 0);
}

/* 4:2:2 crops two pixels across but one line down; field coding doubles the lines. */
static void avc__chroma_422_crop_units(void **state)
{
    (void)state;
    struct sps s = sps_default();
    s.profile = 122;
    s.chroma_format_idc = 2;
    s.crop = true;
    s.crop_r = 1;
    s.crop_b = 1;
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.width, 1278);
    assert_int_equal(c.height, 719);
    s.frame_mbs_only = 0;
    s.height_map_units_minus1 = 22; /* 23 * 32 = 736 lines */
    s.crop_b = 8;                   /* 16 lines */
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.height, 720);
}

/* Baseline/Main SPSs carry no chroma info: 4:2:0, 8 bits is implied. */
static void avc__baseline_implies_420_8bit(void **state)
{
    (void)state;
    struct sps s = sps_default();
    s.profile = 66;
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.chroma_format_idc, 1);
    assert_int_equal(c.bit_depth_luma, 8);
    assert_int_equal(c.profile_idc, 66);
}

/* POC type 1 with its offset cycle is read past; a cycle over 255 is refused. */
static void avc__poc_type_1_cycle(void **state)
{
    (void)state;
    struct sps s = sps_default();
    s.poc_type = 1;
    s.poc_cycle = 255;
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.width, 1280);
    assert_int_equal(c.fps_num, 30);
    s.poc_cycle = 256;
    assert_ax_err(parse_crafted(&s, &c), AX_EBADDATA);
    s.poc_type = 2;
    assert_ax_err(parse_crafted(&s, &c), 0);
    s.poc_type = 3;
    assert_ax_err(parse_crafted(&s, &c), AX_EBADDATA);
}

/* Extended SAR and a non-integer rate (NTSC 30000/1001) are handled. */
static void avc__vui_extended_sar_and_ntsc_rate(void **state)
{
    (void)state;
    struct sps s = sps_default();
    s.sar255 = true;
    s.num_units_in_tick = 1001;
    s.time_scale = 60000;
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.fps_num, 30000);
    assert_int_equal(c.fps_den, 1001);
}

/* Without VUI or timing info, or with a zero tick, the frame rate is unknown (0/0). */
static void avc__missing_timing_gives_zero_rate(void **state)
{
    (void)state;
    struct sps s = sps_default();
    media_avc_config_t c;
    s.vui = false;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.fps_num, 0);
    assert_int_equal(c.fps_den, 0);
    s.vui = true;
    s.timing = false;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.fps_num, 0);
    s.timing = true;
    s.num_units_in_tick = 0;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.fps_num, 0);
    assert_int_equal(c.width, 1280);
}

/* A 2^31 tick does not overflow: 2 * num_units_in_tick is computed in 64 bits. */
static void avc__huge_tick_does_not_overflow(void **state)
{
    (void)state;
    struct sps s = sps_default();
    s.num_units_in_tick = 0xffffffffu;
    s.time_scale = 0xfffffffeu;
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), 0);
    /* (2^32 - 2) / (2 * (2^32 - 1)) = 1 / 1.000...: reduced, it is exactly (2^31-1)/(2^32-1). */
    assert_int_equal(c.fps_num, 0x7fffffffu);
    assert_int_equal(c.fps_den, 0xffffffffu);
}

/* Emulation-prevention bytes are removed: fields that encode as 00 00 0x still parse. */
static void avc__emulation_prevention_is_removed(void **state)
{
    (void)state;
    struct sps s = sps_default();
    /* These timing values put long zero runs into the RBSP. */
    s.num_units_in_tick = 0x00000001;
    s.time_scale = 0x00000100;
    uint8_t sps[512];
    size_t n = write_sps(&s, sps, sizeof sps);
    bool has_epb = false;
    for (size_t i = 2; i < n; i++)
        has_epb |= sps[i - 2] == 0 && sps[i - 1] == 0 && sps[i] == 3;
    assert_true(has_epb);
    media_avc_config_t c;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.fps_num, 128);
    assert_int_equal(c.fps_den, 1);
}

/* Every SPS field outside its range in H.264 7.4.2.1.1 is refused. */
static void avc__out_of_range_sps_fields_are_refused(void **state)
{
    (void)state;
    media_avc_config_t c;
    struct sps s;
#define REFUSED(field, value, err)                                                                 \
    do {                                                                                           \
        s = sps_default();                                                                         \
        s.field = value;                                                                           \
        assert_ax_err(parse_crafted(&s, &c), err);                                                 \
    } while (0)
    REFUSED(id, 32, AX_EBADDATA);
    REFUSED(chroma_format_idc, 4, AX_EBADDATA);
    REFUSED(luma_minus8, 7, AX_EBADDATA);
    REFUSED(chroma_minus8, 7, AX_EBADDATA);
    REFUSED(log2_frame_num_minus4, 13, AX_EBADDATA);
    REFUSED(max_ref, 17, AX_EBADDATA);
    REFUSED(leading_zeros_33, true, AX_EBADDATA);
    REFUSED(width_mbs_minus1, MEDIA_AVC_MAX_DIMENSION / 16, AX_EMSGSIZE);
    REFUSED(height_map_units_minus1, MEDIA_AVC_MAX_DIMENSION / 16, AX_EMSGSIZE);
    REFUSED(width_mbs_minus1, 0xfffffffe, AX_EMSGSIZE);
#undef REFUSED
    /* The largest picture allowed is accepted. */
    s = sps_default();
    s.width_mbs_minus1 = MEDIA_AVC_MAX_DIMENSION / 16 - 1;
    s.height_map_units_minus1 = MEDIA_AVC_MAX_DIMENSION / 16 - 1;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.width, MEDIA_AVC_MAX_DIMENSION);
    assert_int_equal(c.height, MEDIA_AVC_MAX_DIMENSION);
    /* Field coding counts map units in pairs of lines. */
    s.frame_mbs_only = 0;
    assert_ax_err(parse_crafted(&s, &c), AX_EMSGSIZE);
}

/* A crop that leaves no picture (or wraps) is refused. */
static void avc__crop_larger_than_picture_is_refused(void **state)
{
    (void)state;
    struct sps s = sps_default();
    media_avc_config_t c;
    s.crop = true;
    s.crop_l = 320;
    s.crop_r = 320; /* 2 * 640 = 1280: nothing left */
    assert_ax_err(parse_crafted(&s, &c), AX_EBADDATA);
    s.crop_l = 0;
    s.crop_r = 0;
    s.crop_b = 0x7fffffff; /* 2 * huge would wrap 32 bits */
    assert_ax_err(parse_crafted(&s, &c), AX_EBADDATA);
    s.crop_b = 359;
    assert_ax_err(parse_crafted(&s, &c), 0);
    assert_int_equal(c.height, 2);
}

/* Record-level errors: version, length size, counts, NAL types, lengths, profile. */
static void avc__malformed_records_are_refused(void **state)
{
    (void)state;
    uint8_t r[sizeof rec_high720];
    media_avc_config_t c;
#define WITH(i, v, err)                                                                            \
    do {                                                                                           \
        memcpy(r, rec_high720, sizeof r);                                                          \
        r[i] = (v);                                                                                \
        assert_ax_err(media_avc_config_parse(AX_SLICE(r, sizeof r), &c), err);                     \
    } while (0)
    WITH(0, 2, AX_EBADDATA);     /* configurationVersion */
    WITH(4, 0xfe, AX_EBADDATA);  /* lengthSizeMinusOne 2: 3-byte lengths do not exist */
    WITH(5, 0xe0, AX_EBADDATA);  /* no SPS */
    WITH(5, 0xe2, AX_EBADDATA);  /* two SPS declared, the second overruns */
    WITH(7, 0x05, AX_EBADDATA);  /* SPS length too short to hold the SPS */
    WITH(6, 0x7f, AX_EBADDATA);  /* SPS length past the end */
    WITH(46, 1, AX_EBADDATA);    /* an SPS extension declared in the record, missing */
    WITH(7, 0x00, AX_EBADDATA);  /* SPS length 0 */
    WITH(8, 0x68, AX_EBADDATA);  /* the "SPS" is a PPS */
    WITH(8, 0xe7, AX_EBADDATA);  /* forbidden_zero_bit */
    WITH(1, 0x4d, AX_EBADDATA);  /* record says Main, SPS says High */
    WITH(34, 2, AX_EBADDATA);    /* two PPS declared, the second missing */
    WITH(37, 0x67, AX_EBADDATA); /* the "PPS" is an SPS */
    /* Lengths of 1 and 2 bytes are fine. */
    WITH(4, 0xfc, 0);
    assert_int_equal(c.nal_length_size, 1);
    WITH(4, 0xfd, 0);
    assert_int_equal(c.nal_length_size, 2);
    /* Reserved bits are not checked (some muxers write zeros). */
    WITH(4, 0x03, 0);
    WITH(5, 0x01, 0);
#undef WITH
    /* Zero PPS is tolerated (the PPS may come in band): the record ends after the count. */
    memcpy(r, rec_high720, 35);
    r[34] = 0;
    assert_ax_err(media_avc_config_parse(AX_SLICE(r, 35), &c), 0);
    assert_int_equal(c.npps, 0);
}

/*
 * The High-profile extension after the PPS is optional but must be whole when present; bytes
 * after it, and after the PPS of other profiles, are ignored.
 */
static void avc__high_profile_extension(void **state)
{
    (void)state;
    const size_t without = sizeof rec_high720 - 4; /* ffmpeg writes the 4-byte extension */
    uint8_t r[sizeof rec_high720 + 8];
    media_avc_config_t c;
    memcpy(r, rec_high720, sizeof rec_high720);
    assert_ax_err(media_avc_config_parse(AX_SLICE(r, without), &c), 0);
    assert_int_equal(c.width, 1280);
    for (size_t n = without + 1; n < sizeof rec_high720; n++)
        assert_ax_err(media_avc_config_parse(AX_SLICE(r, n), &c), AX_EBADDATA);
    /* One SPS extension of 2 bytes, then junk. */
    r[sizeof rec_high720 - 1] = 1;
    memcpy(r + sizeof rec_high720, "\x00\x02\x6d\x00\xaa\xbb", 6);
    assert_ax_err(media_avc_config_parse(AX_SLICE(r, sizeof rec_high720 + 4), &c), 0);
    assert_ax_err(media_avc_config_parse(AX_SLICE(r, sizeof rec_high720 + 6), &c), 0);
    assert_int_equal(c.record.len, sizeof rec_high720 + 6);
    assert_ax_err(media_avc_config_parse(AX_SLICE(r, sizeof rec_high720 + 3), &c), AX_EBADDATA);
    /* Main profile has no extension: whatever follows the PPS is ignored. */
    assert_ax_err(media_avc_config_parse(AX_SLICE(rec_crop854, sizeof rec_crop854), &c), 0);
    uint8_t m[sizeof rec_crop854 + 1];
    memcpy(m, rec_crop854, sizeof rec_crop854);
    m[sizeof rec_crop854] = 0xff;
    assert_ax_err(media_avc_config_parse(AX_SLICE(m, sizeof m), &c), 0);
}

/* Up to MEDIA_AVC_MAX_PARAM_SETS SPSs are kept; one more is refused as unsupported. */
static void avc__too_many_parameter_sets_are_refused(void **state)
{
    (void)state;
    size_t sps_len = ax_rd_be16(rec_high720 + 6);
    const uint8_t *sps = rec_high720 + 8;
    for (unsigned count = 1; count <= MEDIA_AVC_MAX_PARAM_SETS + 1; count++) {
        uint8_t r[512];
        memcpy(r, rec_high720, 5);
        r[5] = (uint8_t)(0xe0 | count);
        size_t n = 6;
        for (unsigned i = 0; i < count; i++) {
            ax_wr_be16(r + n, (uint16_t)sps_len);
            memcpy(r + n + 2, sps, sps_len);
            n += 2 + sps_len;
        }
        r[n++] = (uint8_t)count;
        for (unsigned i = 0; i < count; i++) {
            ax_wr_be16(r + n, sizeof a_pps);
            memcpy(r + n + 2, a_pps, sizeof a_pps);
            n += 2 + sizeof a_pps;
        }
        media_avc_config_t c;
        int rv = media_avc_config_parse(AX_SLICE(r, n), &c);
        if (count <= MEDIA_AVC_MAX_PARAM_SETS) {
            assert_ax_err(rv, 0);
            assert_int_equal(c.nsps, count);
            assert_int_equal(c.npps, count);
            assert_true(slice_inside(c.pps[count - 1], r, n));
        } else {
            assert_ax_err(rv, AX_ENOTSUP);
        }
    }
}

/* AVCC NAL sequences: lengths must fit and be non-zero; IDR units are spotted. */
static void avc__check_nalus(void **state)
{
    (void)state;
    bool idr;
    /* AUD (9), SEI (6), IDR slice (5) with 4-byte lengths. */
    static const uint8_t key[] = {0,    0,    0, 2, 0x09, 0xf0, 0,    0,    0,    3,   0x06,
                                  0x05, 0x80, 0, 0, 0,    4,    0x65, 0x88, 0x84, 0x00};
    assert_ax_err(media_avc_check_nalus(AX_SLICE(key, sizeof key), 4, &idr), 0);
    assert_true(idr);
    static const uint8_t inter[] = {0, 3, 0x41, 0x9a, 0x02, 0, 1, 0x01};
    assert_ax_err(media_avc_check_nalus(AX_SLICE(inter, sizeof inter), 2, &idr), 0);
    assert_false(idr);
    static const uint8_t one[] = {2, 0x65, 0x11, 1, 0x41};
    assert_ax_err(media_avc_check_nalus(AX_SLICE(one, sizeof one), 1, &idr), 0);
    assert_true(idr);

    /* Every cut of a valid sequence except at a unit boundary is refused. */
    for (size_t n = 0; n < sizeof key; n++) {
        uint8_t *p = exact_copy(key, n);
        int rv = media_avc_check_nalus(AX_SLICE(p, n), 4, &idr);
        bool boundary = n == 6 || n == 13;
        assert_ax_err(rv, boundary ? 0 : AX_EBADDATA);
        free(p);
    }
    static const uint8_t zero_len[] = {0, 0, 0, 0, 0, 0, 0, 1, 0x65};
    assert_ax_err(media_avc_check_nalus(AX_SLICE(zero_len, sizeof zero_len), 4, &idr), AX_EBADDATA);
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x65};
    assert_ax_err(media_avc_check_nalus(AX_SLICE(huge, sizeof huge), 4, &idr), AX_EBADDATA);
    assert_ax_err(media_avc_check_nalus(AX_SLICE(key, sizeof key), 3, &idr), AX_EINVAL);
    assert_ax_err(media_avc_check_nalus(AX_SLICE(key, sizeof key), 0, &idr), AX_EINVAL);
}

/* Codec strings are RFC 6381 avc1.PPCCLL in lower-case hex and fit a small buffer. */
static void avc__codec_string(void **state)
{
    (void)state;
    media_avc_config_t c = {.profile_idc = 0x42, .profile_compat = 0xe0, .level_idc = 0x1e};
    char s[32];
    media_avc_codec_string(&c, s, sizeof s);
    assert_string_equal(s, "avc1.42e01e");
    char tiny[6];
    media_avc_codec_string(&c, tiny, sizeof tiny);
    assert_string_equal(tiny, "avc1.");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(avc__real_records_give_ffprobe_dimensions),
        cmocka_unit_test(avc__every_truncated_record_is_refused),
        cmocka_unit_test(avc__every_truncated_sps_is_refused_or_exact),
        cmocka_unit_test(avc__crafted_default_sps_parses),
        cmocka_unit_test(avc__scaling_lists_are_skipped),
        cmocka_unit_test(avc__scaling_delta_out_of_range_is_refused),
        cmocka_unit_test(avc__separate_colour_planes_crop_per_pixel),
        cmocka_unit_test(avc__monochrome_field_coded_crop),
        cmocka_unit_test(avc__chroma_422_crop_units),
        cmocka_unit_test(avc__baseline_implies_420_8bit),
        cmocka_unit_test(avc__poc_type_1_cycle),
        cmocka_unit_test(avc__vui_extended_sar_and_ntsc_rate),
        cmocka_unit_test(avc__missing_timing_gives_zero_rate),
        cmocka_unit_test(avc__huge_tick_does_not_overflow),
        cmocka_unit_test(avc__emulation_prevention_is_removed),
        cmocka_unit_test(avc__out_of_range_sps_fields_are_refused),
        cmocka_unit_test(avc__crop_larger_than_picture_is_refused),
        cmocka_unit_test(avc__malformed_records_are_refused),
        cmocka_unit_test(avc__high_profile_extension),
        cmocka_unit_test(avc__too_many_parameter_sets_are_refused),
        cmocka_unit_test(avc__check_nalus),
        cmocka_unit_test(avc__codec_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

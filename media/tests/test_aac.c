/*
 * media.aac: AudioSpecificConfig parsing and mp4a codec strings.
 *
 * Real configs were captured from ffmpeg 5.1's native AAC encoder in FLV (the AAC sequence
 * header tag body after the 2-byte header), made by media/fuzz/make_seeds_flv.sh: each ends
 * with the 0x2b7 backward-compatible sync extension ffmpeg appends (56 e5 00). HE-AAC v1/v2
 * and the escaped object types are crafted bit by bit (no HE-AAC encoder in Debian's ffmpeg).
 */
#include "ax_test.h"

#include <string.h>

#include "aethex/media/flv.h"

static const uint8_t asc_lc_44k_mono[] = {0x12, 0x08, 0x56, 0xe5, 0x00}; /* sine, 44.1k */
static const uint8_t asc_lc_22k_mono[] = {0x13, 0x88, 0x56, 0xe5, 0x00}; /* -ar 22050 */
static const uint8_t asc_lc_48k_51[] = {0x11, 0xb0, 0x56, 0xe5, 0x00};   /* -ac 6 */
static const uint8_t asc_he_44k_stereo[] = {0x2b, 0x92, 0x08, 0x00};     /* HE-AAC v1 */

/* A heap copy of exactly `n` bytes, so ASan sees any read past the end. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

struct bw {
    uint8_t buf[16];
    size_t bits;
};

static void put_bits(struct bw *w, unsigned n, uint32_t v)
{
    for (unsigned i = n; i-- > 0;) {
        assert_true(w->bits / 8 < sizeof w->buf);
        if ((v >> i) & 1)
            w->buf[w->bits / 8] |= (uint8_t)(0x80 >> (w->bits % 8));
        w->bits++;
    }
}

static void put_aot(struct bw *w, uint32_t aot)
{
    if (aot >= 31) {
        put_bits(w, 5, 31);
        put_bits(w, 6, aot - 32);
    } else {
        put_bits(w, 5, aot);
    }
}

static size_t bw_len(const struct bw *w)
{
    return (w->bits + 7) / 8;
}

/* Parses the first `n` bytes of `w` from an exact-size copy. */
static int parse_bytes(const uint8_t *p, size_t n, media_aac_config_t *c)
{
    uint8_t *copy = exact_copy(p, n);
    int rv = media_aac_config_parse(AX_SLICE(copy, n), c);
    if (rv == 0)
        assert_ptr_equal(c->asc.base, copy);
    free(copy);
    return rv;
}

/* ffmpeg's AAC-LC configs give the object type, rate and channels ffprobe reports. */
static void aac__real_lc_configs(void **state)
{
    (void)state;
    media_aac_config_t c;
    assert_ax_err(parse_bytes(asc_lc_44k_mono, sizeof asc_lc_44k_mono, &c), 0);
    assert_int_equal(c.object_type, 2);
    assert_int_equal(c.sampling_index, 4);
    assert_int_equal(c.sample_rate, 44100);
    assert_int_equal(c.channels, 1);
    assert_int_equal(c.asc.len, sizeof asc_lc_44k_mono);
    assert_ax_err(parse_bytes(asc_lc_22k_mono, sizeof asc_lc_22k_mono, &c), 0);
    assert_int_equal(c.sample_rate, 22050);
    assert_int_equal(c.channels, 1);
    assert_ax_err(parse_bytes(asc_lc_48k_51, sizeof asc_lc_48k_51, &c), 0);
    assert_int_equal(c.sample_rate, 48000);
    assert_int_equal(c.channels, 6);
    char s[32];
    media_aac_codec_string(&c, s, sizeof s);
    assert_string_equal(s, "mp4a.40.2");
}

/* Cut before the channel configuration is complete, every config is refused. */
static void aac__every_truncation_is_refused(void **state)
{
    (void)state;
    media_aac_config_t c;
    for (size_t n = 0; n < 2; n++) {
        assert_ax_err(parse_bytes(asc_lc_44k_mono, n, &c), AX_EBADDATA);
        assert_int_equal(c.sample_rate, 0);
    }
    /* HE-AAC needs the extension rate and the core object type too (21 bits). */
    for (size_t n = 0; n < 3; n++)
        assert_ax_err(parse_bytes(asc_he_44k_stereo, n, &c), AX_EBADDATA);
    assert_ax_err(parse_bytes(asc_he_44k_stereo, 3, &c), 0);
}

/*
 * Explicit SBR signalling (HE-AAC v1, object type 5) is accepted; the reported rate is the
 * core rate the raw frames run at (22.05 kHz), not the 44.1 kHz SBR output.
 */
static void aac__he_aac_explicit_sbr(void **state)
{
    (void)state;
    media_aac_config_t c;
    assert_ax_err(parse_bytes(asc_he_44k_stereo, sizeof asc_he_44k_stereo, &c), 0);
    assert_int_equal(c.object_type, 5);
    assert_int_equal(c.sample_rate, 22050);
    assert_int_equal(c.channels, 2);
    char s[32];
    media_aac_codec_string(&c, s, sizeof s);
    assert_string_equal(s, "mp4a.40.5");
}

/* HE-AAC v2 (PS, object type 29): mono core, explicit 24-bit extension rate. */
static void aac__he_aac_v2_ps_with_explicit_rates(void **state)
{
    (void)state;
    struct bw w = {0};
    put_aot(&w, 29);
    put_bits(&w, 4, 15);
    put_bits(&w, 24, 24000);
    put_bits(&w, 4, 1);
    put_bits(&w, 4, 15);
    put_bits(&w, 24, 48000);
    put_aot(&w, 2);
    media_aac_config_t c;
    assert_ax_err(parse_bytes(w.buf, bw_len(&w), &c), 0);
    assert_int_equal(c.object_type, 29);
    assert_int_equal(c.sampling_index, 15);
    assert_int_equal(c.sample_rate, 24000);
    assert_int_equal(c.channels, 1);
    for (size_t n = 0; n < bw_len(&w); n++)
        assert_ax_err(parse_bytes(w.buf, n, &c), AX_EBADDATA);
}

/* SBR hierarchical signalling with a bad extension rate or core type is refused. */
static void aac__bad_sbr_extension_is_refused(void **state)
{
    (void)state;
    media_aac_config_t c;
    uint32_t cases[][2] = {{13, 2}, {14, 2}, {4, 0}};
    for (size_t i = 0; i < AX_ARRAY_SIZE(cases); i++) {
        struct bw w = {0};
        put_aot(&w, 5);
        put_bits(&w, 4, 7);
        put_bits(&w, 4, 2);
        put_bits(&w, 4, cases[i][0]);
        put_aot(&w, cases[i][1]);
        put_bits(&w, 8, 0);
        assert_ax_err(parse_bytes(w.buf, bw_len(&w), &c), AX_EBADDATA);
    }
    /* A core of ER BSAC (22) carries an extension channel configuration: read past it. */
    struct bw w = {0};
    put_aot(&w, 5);
    put_bits(&w, 4, 7);
    put_bits(&w, 4, 2);
    put_bits(&w, 4, 4);
    put_aot(&w, 22);
    put_bits(&w, 4, 2);
    assert_ax_err(parse_bytes(w.buf, bw_len(&w), &c), 0);
    assert_ax_err(parse_bytes(w.buf, 3, &c), AX_EBADDATA); /* ext channels cut */
}

/* The object type escape (31) reads 6 more bits: ER AAC ELD (39) is accepted. */
static void aac__escaped_object_type(void **state)
{
    (void)state;
    struct bw w = {0};
    put_aot(&w, 39);
    put_bits(&w, 4, 3);
    put_bits(&w, 4, 2);
    media_aac_config_t c;
    assert_ax_err(parse_bytes(w.buf, bw_len(&w), &c), 0);
    assert_int_equal(c.object_type, 39);
    assert_int_equal(c.sample_rate, 48000);
    assert_int_equal(c.channels, 2);
    char s[32];
    media_aac_codec_string(&c, s, sizeof s);
    assert_string_equal(s, "mp4a.40.39");
    assert_ax_err(parse_bytes(w.buf, 2, &c), AX_EBADDATA); /* cut inside the channels */
    /* USAC (42) is a valid object type we do not decode. */
    struct bw u = {0};
    put_aot(&u, 42);
    put_bits(&u, 4, 3);
    put_bits(&u, 4, 2);
    assert_ax_err(parse_bytes(u.buf, bw_len(&u), &c), AX_ENOTSUP);
}

/* Object types outside the AAC family, and the null type 0, are refused. */
static void aac__non_aac_object_types_are_refused(void **state)
{
    (void)state;
    media_aac_config_t c;
    uint32_t aots[] = {0, 6, 7, 8, 22, 31 + 1, 34, 95};
    for (size_t i = 0; i < AX_ARRAY_SIZE(aots); i++) {
        struct bw w = {0};
        put_aot(&w, aots[i]);
        put_bits(&w, 4, 4);
        put_bits(&w, 4, 2);
        put_bits(&w, 8, 0);
        assert_ax_err(parse_bytes(w.buf, bw_len(&w), &c), aots[i] == 0 ? AX_EBADDATA : AX_ENOTSUP);
    }
    uint32_t ok[] = {1, 2, 3, 4, 17, 23};
    for (size_t i = 0; i < AX_ARRAY_SIZE(ok); i++) {
        struct bw w = {0};
        put_aot(&w, ok[i]);
        put_bits(&w, 4, 4);
        put_bits(&w, 4, 2);
        assert_ax_err(parse_bytes(w.buf, bw_len(&w), &c), 0);
        assert_int_equal(c.object_type, ok[i]);
    }
}

/* Index 15 carries an explicit 24-bit rate; 0, too high, and indexes 13-14 are refused. */
static void aac__sampling_frequency(void **state)
{
    (void)state;
    media_aac_config_t c;
    struct {
        uint32_t index, rate;
        int want;
        uint32_t got;
    } cases[] = {
        {15, 44100, 0, 44100},
        {15, MEDIA_AAC_MAX_SAMPLE_RATE, 0, MEDIA_AAC_MAX_SAMPLE_RATE},
        {15, MEDIA_AAC_MAX_SAMPLE_RATE + 1, AX_EBADDATA, 0},
        {15, 0, AX_EBADDATA, 0},
        {13, 0, AX_EBADDATA, 0},
        {14, 0, AX_EBADDATA, 0},
        {0, 0, 0, 96000},
        {12, 0, 0, 7350},
    };
    for (size_t i = 0; i < AX_ARRAY_SIZE(cases); i++) {
        struct bw w = {0};
        put_aot(&w, 2);
        put_bits(&w, 4, cases[i].index);
        if (cases[i].index == 15)
            put_bits(&w, 24, cases[i].rate);
        put_bits(&w, 4, 2);
        assert_ax_err(parse_bytes(w.buf, bw_len(&w), &c), cases[i].want);
        assert_int_equal(c.sample_rate, cases[i].got);
        if (cases[i].index == 15 && cases[i].want == 0) {
            /* The explicit rate is needed whole. */
            for (size_t n = 0; n < bw_len(&w); n++)
                assert_ax_err(parse_bytes(w.buf, n, &c), AX_EBADDATA);
        }
    }
}

/* Channel configuration 0 (layout in a PCE) and 8-15 are valid but not supported. */
static void aac__channel_configurations(void **state)
{
    (void)state;
    media_aac_config_t c;
    for (uint32_t ch = 0; ch < 16; ch++) {
        struct bw w = {0};
        put_aot(&w, 2);
        put_bits(&w, 4, 4);
        put_bits(&w, 4, ch);
        int rv = parse_bytes(w.buf, bw_len(&w), &c);
        if (ch >= 1 && ch <= 7) {
            assert_ax_err(rv, 0);
            assert_int_equal(c.channels, ch);
        } else {
            assert_ax_err(rv, AX_ENOTSUP);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aac__real_lc_configs),
        cmocka_unit_test(aac__every_truncation_is_refused),
        cmocka_unit_test(aac__he_aac_explicit_sbr),
        cmocka_unit_test(aac__he_aac_v2_ps_with_explicit_rates),
        cmocka_unit_test(aac__bad_sbr_extension_is_refused),
        cmocka_unit_test(aac__escaped_object_type),
        cmocka_unit_test(aac__non_aac_object_types_are_refused),
        cmocka_unit_test(aac__sampling_frequency),
        cmocka_unit_test(aac__channel_configurations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

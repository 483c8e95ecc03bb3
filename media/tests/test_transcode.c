/*
 * Unit tests of the transcoder (media/src/transcode.c, transcode_avcc.c): ladder selection,
 * config validation, out-of-memory in _new, the Annex-B/AVCC conversions, and a small
 * end-to-end transcode of a synthetic source made here with libx264 (B-frames, irregular
 * keyframes) that checks timestamps and keyframe alignment.
 */
#include "ax_test.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>

#include "aethex/common/util.h"
#include "aethex/media/transcode.h"
#include "transcode_internal.h"

/* ---- a synthetic source ---------------------------------------------------------------- */

#define SRC_W 320
#define SRC_H 240
#define SRC_FRAMES 45

struct src_frame {
    int64_t dts;
    int32_t cts;
    bool key;
    uint8_t *data;
    size_t len;
};

struct source {
    uint8_t record[512];
    size_t record_len;
    media_avc_config_t avc;
    struct src_frame frames[SRC_FRAMES + 8];
    unsigned nframes;
};

static bool is_source_key(unsigned i)
{
    return i == 0 || i == 12 || i == 30; /* irregular on purpose */
}

static void source_add_packet(struct source *s, AVPacket *pkt)
{
    ax_buf_t b;
    ax_buf_init(&b, 1 << 20);
    assert_true(media_transcode__annexb_to_avcc(AX_SLICE(pkt->data, (size_t)pkt->size), &b) > 0);
    struct src_frame *f = &s->frames[s->nframes++];
    f->dts = pkt->dts;
    f->cts = (int32_t)(pkt->pts - pkt->dts);
    f->key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
    f->data = malloc(b.len);
    memcpy(f->data, b.base, b.len);
    f->len = b.len;
    ax_buf_close(&b);
}

/* Encodes SRC_FRAMES moving-gradient pictures at 30 fps with 2 B-frames. */
static void make_source_bf(struct source *s, int bframes)
{
    memset(s, 0, sizeof *s);
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    assert_non_null(codec);
    AVCodecContext *e = avcodec_alloc_context3(codec);
    e->width = SRC_W;
    e->height = SRC_H;
    e->pix_fmt = AV_PIX_FMT_YUV420P;
    e->time_base = (AVRational){1, 1000};
    e->framerate = (AVRational){30, 1};
    e->bit_rate = 400000;
    e->max_b_frames = bframes;
    e->thread_count = 1;
    e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set(e->priv_data, "preset", "veryfast", 0);
    av_opt_set_int(e->priv_data, "forced-idr", 1, 0);
    av_opt_set(e->priv_data, "x264-params", "scenecut=0:keyint=infinite", 0);
    assert_int_equal(avcodec_open2(e, codec, NULL), 0);

    ax_buf_t rec;
    ax_buf_init(&rec, sizeof s->record);
    assert_int_equal(
        media_transcode__avcc_record(AX_SLICE(e->extradata, (size_t)e->extradata_size), &rec), 0);
    memcpy(s->record, rec.base, rec.len);
    s->record_len = rec.len;
    ax_buf_close(&rec);
    s->avc.nal_length_size = 4;
    s->avc.width = SRC_W;
    s->avc.height = SRC_H;
    s->avc.record = AX_SLICE(s->record, s->record_len);

    AVFrame *f = av_frame_alloc();
    f->format = AV_PIX_FMT_YUV420P;
    f->width = SRC_W;
    f->height = SRC_H;
    assert_int_equal(av_frame_get_buffer(f, 0), 0);
    AVPacket *pkt = av_packet_alloc();
    for (unsigned i = 0; i <= SRC_FRAMES; i++) {
        if (i < SRC_FRAMES) {
            assert_int_equal(av_frame_make_writable(f), 0);
            for (int y = 0; y < SRC_H; y++)
                for (int x = 0; x < SRC_W; x++)
                    f->data[0][y * f->linesize[0] + x] = (uint8_t)(x + y + 3 * i);
            for (int y = 0; y < SRC_H / 2; y++)
                for (int x = 0; x < SRC_W / 2; x++) {
                    f->data[1][y * f->linesize[1] + x] = (uint8_t)(128 + x - i);
                    f->data[2][y * f->linesize[2] + x] = (uint8_t)(128 + y + i);
                }
            f->pts = (int64_t)i * 100 / 3;
            f->pict_type = is_source_key(i) ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
            assert_int_equal(avcodec_send_frame(e, f), 0);
        } else {
            assert_int_equal(avcodec_send_frame(e, NULL), 0);
        }
        while (avcodec_receive_packet(e, pkt) == 0) {
            source_add_packet(s, pkt);
            av_packet_unref(pkt);
        }
    }
    assert_int_equal(s->nframes, SRC_FRAMES);
    av_packet_free(&pkt);
    av_frame_free(&f);
    avcodec_free_context(&e);
}

static void make_source(struct source *s)
{
    make_source_bf(s, 2);
}

static void free_source(struct source *s)
{
    for (unsigned i = 0; i < s->nframes; i++)
        free(s->frames[i].data);
}

static media_frame_t source_frame(const struct source *s, unsigned i)
{
    const struct src_frame *f = &s->frames[i];
    return (media_frame_t){.track = MEDIA_TRACK_VIDEO,
                           .dts = f->dts,
                           .cts = f->cts,
                           .keyframe = f->key,
                           .data = AX_SLICE(f->data, f->len)};
}

/* ---- fixture ------------------------------------------------------------------------------- */

#define MAX_OUT 128

struct out_frame {
    int64_t dts, pts;
    bool key;
    bool has_idr;
};

struct fixture {
    struct source src;
    media_transcode_rung_t rungs[2];
    media_transcode_config_t cfg;
    media_transcoder_t *t;
    struct out_frame out[2][MAX_OUT];
    unsigned nout[2];
    char errmsg[AX_ERRMSG_LEN];
};

static bool avcc_has_idr(ax_slice_t d)
{
    size_t pos = 0;
    while (pos + 4 < d.len) {
        uint32_t n = ax_rd_be32(d.base + pos);
        if ((d.base[pos + 4] & 0x1f) == 5)
            return true;
        pos += 4 + n;
    }
    return false;
}

static void on_frame(media_transcoder_t *t, unsigned rung, const media_frame_t *f)
{
    struct fixture *fx = media_transcoder_data(t);
    assert_true(rung < 2);
    assert_true(fx->nout[rung] < MAX_OUT);
    assert_int_equal(f->track, MEDIA_TRACK_VIDEO);
    assert_int_equal(media_transcode__check_avcc(f->data, 4), 0);
    fx->out[rung][fx->nout[rung]++] = (struct out_frame){.dts = f->dts,
                                                         .pts = f->dts + f->cts,
                                                         .key = f->keyframe,
                                                         .has_idr = avcc_has_idr(f->data)};
}

static media_transcode_rung_t rung(uint32_t w, uint32_t h, uint32_t kbps)
{
    media_transcode_rung_t r = {.width = w, .height = h, .bitrate_kbps = kbps};
    return r;
}

static int setup(void **state)
{
    av_log_set_level(AV_LOG_QUIET);
    struct fixture *fx = calloc(1, sizeof *fx);
    make_source(&fx->src);
    fx->rungs[0] = rung(0, 160, 200);
    fx->rungs[1] = rung(0, 120, 100);
    fx->cfg = (media_transcode_config_t){
        .source = &fx->src.avc, .rungs = fx->rungs, .nrungs = 2, .on_frame = on_frame, .data = fx};
    ax_test_use_cmocka_allocator();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    media_transcoder_free(fx->t);
    free_source(&fx->src);
    free(fx);
    ax_reset_allocator();
    return 0;
}

/* cmocka checks for leaks when the test function returns, before teardown. */
static void finish(struct fixture *fx)
{
    media_transcoder_free(fx->t);
    fx->t = NULL;
}

/* ---- ladder selection ------------------------------------------------------------------- */

/* For a 720p source the default ladder keeps 480p and 360p, highest first, at 16:9 widths. */
static void ladder__default_for_720p_keeps_480p_and_360p(void **state)
{
    (void)state;
    media_transcode_rung_t def[8], sel[MEDIA_TRANSCODE_MAX_RUNGS];
    size_t n = media_transcode_default_ladder(def, 8);
    assert_int_equal(n, 4);
    assert_int_equal(media_transcode_ladder_select(1280, 720, def, n, sel), 2);
    assert_int_equal(sel[0].width, 854);
    assert_int_equal(sel[0].height, 480);
    assert_int_equal(sel[0].bitrate_kbps, 1200);
    assert_int_equal(sel[1].width, 640);
    assert_int_equal(sel[1].height, 360);
    assert_string_equal(sel[1].preset, "veryfast");
    assert_string_equal(sel[1].profile, "high");
}

/* For a 1080p source the default ladder keeps 720p, 480p and 360p but never 1080p. */
static void ladder__default_for_1080p_skips_the_source_size(void **state)
{
    (void)state;
    media_transcode_rung_t def[8], sel[MEDIA_TRANSCODE_MAX_RUNGS];
    size_t n = media_transcode_default_ladder(def, 8);
    assert_int_equal(media_transcode_ladder_select(1920, 1080, def, n, sel), 3);
    assert_int_equal(sel[0].width, 1280);
    assert_int_equal(sel[0].height, 720);
    assert_int_equal(sel[2].height, 360);
}

/* A rung taller or wider than the source is never produced (no upscaling). */
static void ladder__never_upscales(void **state)
{
    (void)state;
    media_transcode_rung_t in[3] = {rung(0, 480, 1000), rung(1280, 300, 800), rung(0, 240, 400)};
    media_transcode_rung_t sel[MEDIA_TRANSCODE_MAX_RUNGS];
    assert_int_equal(media_transcode_ladder_select(640, 360, in, 3, sel), 1);
    assert_int_equal(sel[0].height, 240);
    assert_int_equal(sel[0].width, 426);
    /* A source smaller than every rung leaves nothing to transcode. */
    assert_int_equal(media_transcode_ladder_select(320, 180, in, 3, sel), 0);
}

/* A rung the same size as the source is skipped: the source itself is passed through. */
static void ladder__skips_a_rung_equal_to_the_source(void **state)
{
    (void)state;
    media_transcode_rung_t in[2] = {rung(1280, 720, 2800), rung(0, 720, 2800)};
    media_transcode_rung_t sel[MEDIA_TRANSCODE_MAX_RUNGS];
    assert_int_equal(media_transcode_ladder_select(1280, 720, in, 2, sel), 0);
    /* Equal height but narrower is still not below the source in height. */
    in[0] = rung(960, 720, 2000);
    assert_int_equal(media_transcode_ladder_select(1280, 720, in, 1, sel), 0);
}

/* Odd sizes are rounded down to even, as 4:2:0 requires. */
static void ladder__rounds_odd_sizes_to_even(void **state)
{
    (void)state;
    media_transcode_rung_t in[2] = {rung(641, 361, 700), rung(0, 241, 400)};
    media_transcode_rung_t sel[MEDIA_TRANSCODE_MAX_RUNGS];
    assert_int_equal(media_transcode_ladder_select(1281, 721, in, 2, sel), 2);
    assert_int_equal(sel[0].width, 640);
    assert_int_equal(sel[0].height, 360);
    assert_int_equal(sel[1].height, 240);
    assert_int_equal(sel[1].width % 2, 0);
    /* 1281 * 241 / 721 = 428.2 -> nearest even of 214.1 * 2 = 428. */
    assert_int_equal(sel[1].width, 428);
}

/* Missing rates and names get defaults: maxrate = bitrate, bufsize = 2 x maxrate. */
static void ladder__fills_defaults(void **state)
{
    (void)state;
    media_transcode_rung_t in[1] = {rung(0, 360, 700)};
    media_transcode_rung_t sel[MEDIA_TRANSCODE_MAX_RUNGS];
    assert_int_equal(media_transcode_ladder_select(1280, 720, in, 1, sel), 1);
    assert_int_equal(sel[0].maxrate_kbps, 700);
    assert_int_equal(sel[0].bufsize_kbps, 1400);
    assert_string_equal(sel[0].preset, "veryfast");
}

/* Rungs come out sorted highest first, and a duplicate size is kept once. */
static void ladder__sorts_and_drops_duplicates(void **state)
{
    (void)state;
    media_transcode_rung_t in[4] = {rung(0, 240, 300), rung(0, 480, 1200), rung(0, 360, 700),
                                    rung(854, 480, 1500)};
    media_transcode_rung_t sel[MEDIA_TRANSCODE_MAX_RUNGS];
    assert_int_equal(media_transcode_ladder_select(1920, 1080, in, 4, sel), 3);
    assert_int_equal(sel[0].height, 480);
    assert_int_equal(sel[0].bitrate_kbps, 1200); /* the first one given wins */
    assert_int_equal(sel[1].height, 360);
    assert_int_equal(sel[2].height, 240);
}

/* Bad rungs and sources are refused with AX_EINVAL, never silently fixed. */
static void ladder__refuses_bad_rungs(void **state)
{
    (void)state;
    media_transcode_rung_t sel[MEDIA_TRANSCODE_MAX_RUNGS];
    media_transcode_rung_t r = rung(0, 0, 700);
    assert_ax_err(media_transcode_ladder_select(1280, 720, &r, 1, sel), AX_EINVAL);
    r = rung(0, 360, 0);
    assert_ax_err(media_transcode_ladder_select(1280, 720, &r, 1, sel), AX_EINVAL);
    r = rung(0, 360, 700);
    r.maxrate_kbps = 500; /* below the average */
    assert_ax_err(media_transcode_ladder_select(1280, 720, &r, 1, sel), AX_EINVAL);
    r = rung(0, 360, MEDIA_TRANSCODE_MAX_KBPS + 1);
    assert_ax_err(media_transcode_ladder_select(1280, 720, &r, 1, sel), AX_EINVAL);
    r = rung(0, MEDIA_TRANSCODE_MAX_DIM + 2, 700);
    assert_ax_err(media_transcode_ladder_select(1280, 720, &r, 1, sel), AX_EINVAL);
    r = rung(0, 360, 700);
    strcpy(r.preset, "warpspeed");
    assert_ax_err(media_transcode_ladder_select(1280, 720, &r, 1, sel), AX_EINVAL);
    r = rung(0, 360, 700);
    memset(r.profile, 'x', sizeof r.profile); /* not NUL-terminated */
    assert_ax_err(media_transcode_ladder_select(1280, 720, &r, 1, sel), AX_EINVAL);
    r = rung(0, 360, 700);
    assert_ax_err(media_transcode_ladder_select(0, 720, &r, 1, sel), AX_EINVAL);
    assert_ax_err(media_transcode_ladder_select(1280, MEDIA_TRANSCODE_MAX_DIM + 1, &r, 1, sel),
                  AX_EINVAL);
    media_transcode_rung_t many[MEDIA_TRANSCODE_MAX_RUNGS + 1];
    for (size_t i = 0; i < AX_ARRAY_SIZE(many); i++)
        many[i] = rung(0, (uint32_t)(100 + 20 * i), 300);
    assert_ax_err(media_transcode_ladder_select(1920, 1080, many, AX_ARRAY_SIZE(many), sel),
                  AX_EINVAL);
}

/* ---- _new ----------------------------------------------------------------------------------- */

/* A config without a callback, a record or a sane NAL length size is refused with a reason. */
static void new__refuses_bad_config(void **state)
{
    struct fixture *fx = *state;
    media_transcode_config_t c = fx->cfg;
    c.on_frame = NULL;
    assert_ax_err(media_transcoder_new(&c, &fx->t, fx->errmsg), AX_EINVAL);
    assert_null(fx->t);
    assert_true(strlen(fx->errmsg) > 0);
    c = fx->cfg;
    media_avc_config_t avc = fx->src.avc;
    c.source = &avc;
    avc.nal_length_size = 3;
    assert_ax_err(media_transcoder_new(&c, &fx->t, fx->errmsg), AX_EINVAL);
    avc = fx->src.avc;
    avc.record.len = 0;
    assert_ax_err(media_transcoder_new(&c, &fx->t, NULL), AX_EINVAL);
    c = fx->cfg;
    c.scale = MEDIA_TRANSCODE_SCALE_COUNT;
    assert_ax_err(media_transcoder_new(&c, &fx->t, fx->errmsg), AX_EINVAL);
    c = fx->cfg;
    c.fps_num = 30; /* without a denominator */
    assert_ax_err(media_transcoder_new(&c, &fx->t, fx->errmsg), AX_EINVAL);
    c = fx->cfg;
    c.encode_threads = 1000;
    assert_ax_err(media_transcoder_new(&c, &fx->t, fx->errmsg), AX_EINVAL);
    assert_null(fx->t);
}

/* Too long an x264 option string is refused; the empty string means the preset alone. */
static void new__checks_x264_options_length(void **state)
{
    struct fixture *fx = *state;
    media_transcode_config_t c = fx->cfg;
    char longer[MEDIA_TRANSCODE_X264_PARAMS_LEN + 1];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    c.x264_params = longer;
    assert_ax_err(media_transcoder_new(&c, &fx->t, fx->errmsg), AX_EINVAL);
    assert_null(fx->t);
    c.x264_params = "";
    assert_int_equal(media_transcoder_new(&c, &fx->t, fx->errmsg), 0);
    finish(fx);
}

/* A source no bigger than any rung leaves nothing to do: AX_ENOENT, so the caller passes
 * the source through alone. */
static void new__no_rung_below_the_source_is_enoent(void **state)
{
    struct fixture *fx = *state;
    media_transcode_rung_t big = rung(0, 480, 1200);
    media_transcode_config_t c = fx->cfg;
    c.rungs = &big;
    c.nrungs = 1;
    assert_ax_err(media_transcoder_new(&c, &fx->t, fx->errmsg), AX_ENOENT);
    assert_non_null(strstr(fx->errmsg, "320x240"));
}

/* Each rung's avc config is ready after _new: an avcC record with 4-byte lengths and the
 * rung's size. */
static void new__publishes_each_rungs_avc_config(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    assert_int_equal(media_transcoder_rung_count(fx->t), 2);
    media_transcode_rung_info_t info;
    assert_int_equal(media_transcoder_rung(fx->t, 0, &info), 0);
    assert_true(info.active);
    assert_int_equal(info.rung.width, 214);
    assert_int_equal(info.rung.height, 160);
    assert_int_equal(info.avc.nal_length_size, 4);
    assert_int_equal(info.avc.profile_idc, 100);
    assert_int_equal(info.avc.record.base[0], 1);
    assert_int_equal(info.avc.record.base[4], 0xff);
    assert_int_equal(info.avc.nsps, 1);
    assert_int_equal(info.avc.npps, 1);
    assert_int_equal(info.avc.sps[0].base[0] & 0x1f, 7);
    assert_int_equal(info.avc.pps[0].base[0] & 0x1f, 8);
    assert_ax_err(media_transcoder_rung(fx->t, 2, &info), AX_ERANGE);
    finish(fx);
}

/* Every allocation _new makes can fail: it returns AX_ENOMEM and leaks nothing. */
static void new__out_of_memory_sweep(void **state)
{
    struct fixture *fx = *state;
    AX_OOM_SWEEP(media_transcoder_new(&fx->cfg, &fx->t, NULL), {
        if (ax__rv != 0)
            assert_null(fx->t);
    });
    assert_non_null(fx->t);
    finish(fx);
}

/* ---- transcoding ---------------------------------------------------------------------------- */

static void push_all(struct fixture *fx)
{
    for (unsigned i = 0; i < fx->src.nframes; i++) {
        media_frame_t f = source_frame(&fx->src, i);
        assert_int_equal(media_transcoder_push(fx->t, &f), 0);
    }
}

static bool src_has_key_pts(const struct source *s, int64_t pts)
{
    for (unsigned i = 0; i < s->nframes; i++)
        if (s->frames[i].key && s->frames[i].dts + s->frames[i].cts == pts)
            return true;
    return false;
}

/* Checks what every complete transcode must give: per rung one picture per source picture,
 * the source's pts, strictly increasing dts <= pts, B-frame reordering, and an IDR exactly
 * at each source keyframe. */
static void check_complete_output(const struct source *src, struct out_frame out[2][MAX_OUT],
                                  const unsigned nout[2])
{
    unsigned src_keys = 0;
    for (unsigned i = 0; i < src->nframes; i++)
        src_keys += src->frames[i].key;
    assert_int_equal(src_keys, 3);
    for (unsigned r = 0; r < 2; r++) {
        assert_int_equal(nout[r], SRC_FRAMES);
        unsigned keys = 0;
        bool reordered = false;
        for (unsigned i = 0; i < nout[r]; i++) {
            const struct out_frame *o = &out[r][i];
            assert_true(o->dts <= o->pts);
            if (i > 0)
                assert_true(o->dts > out[r][i - 1].dts);
            if (i > 0 && o->pts < out[r][i - 1].pts)
                reordered = true;
            assert_int_equal(o->key, o->has_idr);
            assert_int_equal(o->key, src_has_key_pts(src, o->pts));
            keys += o->key;
            /* The pts is one of the source's. */
            bool found = false;
            for (unsigned j = 0; j < src->nframes; j++)
                found |= src->frames[j].dts + src->frames[j].cts == o->pts;
            assert_true(found);
        }
        assert_int_equal(keys, src_keys);
        assert_true(reordered); /* B-frames made it through */
    }
}

/* Every rung gets one picture per source picture, with the same pts, monotonic dts <= pts,
 * and an IDR exactly where the source has a keyframe. */
static void transcode__keeps_timestamps_and_keyframes(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    push_all(fx);
    assert_int_equal(media_transcoder_flush(fx->t), 0);
    check_complete_output(&fx->src, fx->out, fx->nout);
    media_transcode_stats_t st;
    media_transcoder_stats(fx->t, &st);
    assert_int_equal(st.frames_in, SRC_FRAMES);
    assert_int_equal(st.frames_decoded, SRC_FRAMES);
    assert_int_equal(st.decode_errors, 0);
    media_transcode_rung_info_t info;
    assert_int_equal(media_transcoder_rung(fx->t, 1, &info), 0);
    assert_int_equal(info.frames_out, SRC_FRAMES);
    assert_true(info.bytes_out > 0);
    finish(fx);
}

/* With frame-threaded decoding and encoding (pictures come out several frames later), the
 * output is the same in every respect that matters. */
static void transcode__threads_keep_timestamps_and_keyframes(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.decode_threads = 3;
    fx->cfg.encode_threads = 2;
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    push_all(fx);
    assert_int_equal(media_transcoder_flush(fx->t), 0);
    check_complete_output(&fx->src, fx->out, fx->nout);
    finish(fx);
}

/* One transcoder per thread, two threads at once: no shared state, both outputs complete. */
struct worker {
    const struct source *src;
    struct out_frame out[2][MAX_OUT];
    unsigned nout[2];
    int rv;
    bool bad;
};

static void on_frame_record(media_transcoder_t *t, unsigned rung, const media_frame_t *f)
{
    struct worker *w = media_transcoder_data(t);
    if (rung >= 2 || w->nout[rung] >= MAX_OUT || media_transcode__check_avcc(f->data, 4) < 0) {
        w->bad = true; /* no cmocka asserts off the main thread */
        return;
    }
    w->out[rung][w->nout[rung]++] = (struct out_frame){.dts = f->dts,
                                                       .pts = f->dts + f->cts,
                                                       .key = f->keyframe,
                                                       .has_idr = avcc_has_idr(f->data)};
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    media_transcode_rung_t rungs[2] = {rung(0, 160, 200), rung(0, 120, 100)};
    media_transcode_config_t cfg = {.source = &w->src->avc,
                                    .rungs = rungs,
                                    .nrungs = 2,
                                    .on_frame = on_frame_record,
                                    .data = w};
    media_transcoder_t *t = NULL;
    w->rv = media_transcoder_new(&cfg, &t, NULL);
    for (unsigned i = 0; w->rv == 0 && i < w->src->nframes; i++) {
        media_frame_t f = source_frame(w->src, i);
        w->rv = media_transcoder_push(t, &f);
    }
    if (w->rv == 0)
        w->rv = media_transcoder_flush(t);
    media_transcoder_free(t);
    return NULL;
}

static void transcode__instances_run_in_parallel_threads(void **state)
{
    struct fixture *fx = *state;
    /* cmocka's allocator is not thread-safe: libc's for this test. */
    ax_reset_allocator();
    struct worker *w = calloc(2, sizeof *w);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        w[i].src = &fx->src;
        assert_int_equal(pthread_create(&th[i], NULL, run_worker, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    ax_test_use_cmocka_allocator();
    for (int i = 0; i < 2; i++) {
        assert_int_equal(w[i].rv, 0);
        assert_false(w[i].bad);
        check_complete_output(&fx->src, w[i].out, w[i].nout);
    }
    free(w);
}

/* Source frames with random bytes overwritten decode with errors or garbage, never crash,
 * and what comes out is still well-formed: AVCC units, strictly increasing dts <= pts. */
static void transcode__survives_random_corruption(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    uint32_t seed = 0x9e3779b9u;
    uint8_t *buf = malloc(1 << 20);
    for (unsigned round = 0; round < 2; round++) {
        for (unsigned i = 0; i < fx->src.nframes; i++) {
            media_frame_t f = source_frame(&fx->src, i);
            assert_true(f.data.len <= (1u << 20));
            memcpy(buf, f.data.base, f.data.len);
            /* About one byte in 200 replaced, the length prefixes included. */
            for (size_t k = 0; k < f.data.len; k++) {
                seed ^= seed << 13, seed ^= seed >> 17, seed ^= seed << 5;
                if (seed % 200 == 0)
                    buf[k] = (uint8_t)(seed >> 8);
            }
            f.data = AX_SLICE(buf, f.data.len);
            f.dts += round * 2000;
            int rv = media_transcoder_push(fx->t, &f);
            assert_true(rv == 0 || rv == AX_EBADDATA);
        }
    }
    free(buf);
    assert_int_equal(media_transcoder_flush(fx->t), 0);
    for (unsigned r = 0; r < 2; r++) {
        for (unsigned i = 0; i < fx->nout[r]; i++) {
            assert_true(fx->out[r][i].dts <= fx->out[r][i].pts);
            if (i > 0)
                assert_true(fx->out[r][i].dts > fx->out[r][i - 1].dts);
        }
    }
    media_transcode_stats_t st;
    media_transcoder_stats(fx->t, &st);
    assert_int_equal(st.frames_in, 2 * SRC_FRAMES);
    finish(fx);
}

/* A source without B-frames: the rungs (with B-frames) keep its pts and keyframes; their
 * dts start up to the reorder delay before the source's, so the first may be negative. */
static void transcode__source_without_b_frames(void **state)
{
    struct fixture *fx = *state;
    free_source(&fx->src);
    make_source_bf(&fx->src, 0);
    for (unsigned i = 0; i < fx->src.nframes; i++)
        assert_int_equal(fx->src.frames[i].cts, 0);
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    push_all(fx);
    assert_int_equal(media_transcoder_flush(fx->t), 0);
    check_complete_output(&fx->src, fx->out, fx->nout);
    for (unsigned r = 0; r < 2; r++) {
        assert_true(fx->out[r][0].dts < fx->src.frames[0].dts);
        assert_true(fx->out[r][0].dts >= fx->src.frames[0].dts - 3 * 34); /* <= 3 frames */
    }
    finish(fx);
}

/* Caller x264 options cannot add keyframes: ours (scenecut=0, keyint=infinite) win. */
static void transcode__x264_options_cannot_move_keyframes(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.x264_params = "scenecut=40:keyint=5:min-keyint=1:open-gop=1";
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    push_all(fx);
    assert_int_equal(media_transcoder_flush(fx->t), 0);
    for (unsigned r = 0; r < 2; r++) {
        assert_int_equal(fx->nout[r], SRC_FRAMES);
        for (unsigned i = 0; i < fx->nout[r]; i++) {
            assert_int_equal(fx->out[r][i].key, src_has_key_pts(&fx->src, fx->out[r][i].pts));
            assert_int_equal(fx->out[r][i].key, fx->out[r][i].has_idr);
        }
    }
    finish(fx);
}

/* Audio frames are ignored: audio is passed through by the caller. */
static void transcode__ignores_audio(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    uint8_t aac[4] = {1, 2, 3, 4};
    media_frame_t a = {.track = MEDIA_TRACK_AUDIO, .keyframe = true, .data = AX_SLICE(aac, 4)};
    assert_int_equal(media_transcoder_push(fx->t, &a), 0);
    media_transcode_stats_t st;
    media_transcoder_stats(fx->t, &st);
    assert_int_equal(st.frames_in, 0);
    finish(fx);
}

/* Malformed and garbage frames are counted and skipped; the stream carries on. */
static void transcode__survives_corrupt_frames(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    uint8_t bad_len[8] = {0, 0, 0, 9, 0x65, 1, 2, 3}; /* length past the end */
    media_frame_t f = {.track = MEDIA_TRACK_VIDEO, .dts = 0, .data = AX_SLICE(bad_len, 8)};
    assert_ax_err(media_transcoder_push(fx->t, &f), AX_EBADDATA);
    assert_non_null(strstr(media_transcoder_errmsg(fx->t), "malformed"));
    f.data = AX_SLICE(bad_len, 0);
    assert_ax_err(media_transcoder_push(fx->t, &f), AX_EBADDATA);
    /* Well-framed garbage: a slice NAL of random bytes, before and among real frames. */
    uint8_t junk[200];
    ax_wr_be32(junk, sizeof junk - 4);
    for (size_t i = 4; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    junk[4] = 0x65;
    f.data = AX_SLICE(junk, sizeof junk);
    (void)media_transcoder_push(fx->t, &f); /* 0 or AX_EBADDATA: the decoder decides */
    push_all(fx);
    f.dts = 5000;
    f.keyframe = true;
    (void)media_transcoder_push(fx->t, &f);
    assert_int_equal(media_transcoder_flush(fx->t), 0);
    media_transcode_stats_t st;
    media_transcoder_stats(fx->t, &st);
    assert_true(st.decode_errors >= 2);
    assert_true(fx->nout[0] >= SRC_FRAMES - 1);
    assert_int_equal(fx->nout[0], fx->nout[1]);
    finish(fx);
}

/* A frame larger than the limit is refused before anything is copied. */
static void transcode__refuses_an_oversized_frame(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    static uint8_t one;
    media_frame_t f = {.track = MEDIA_TRACK_VIDEO,
                       .data = AX_SLICE(&one, MEDIA_TRANSCODE_MAX_FRAME_SIZE + 1)};
    assert_ax_err(media_transcoder_push(fx->t, &f), AX_EMSGSIZE);
    finish(fx);
}

/* Dropping a rung drops the lowest active one; the others keep going; then AX_ENOENT. */
static void transcode__drop_rung_drops_the_lowest(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    for (unsigned i = 0; i < 20; i++) {
        media_frame_t f = source_frame(&fx->src, i);
        assert_int_equal(media_transcoder_push(fx->t, &f), 0);
    }
    assert_int_equal(media_transcoder_drop_rung(fx->t), 1);
    unsigned low = fx->nout[1];
    for (unsigned i = 20; i < fx->src.nframes; i++) {
        media_frame_t f = source_frame(&fx->src, i);
        assert_int_equal(media_transcoder_push(fx->t, &f), 0);
    }
    assert_int_equal(media_transcoder_flush(fx->t), 0);
    assert_int_equal(fx->nout[1], low);
    assert_int_equal(fx->nout[0], SRC_FRAMES);
    media_transcode_rung_info_t info;
    assert_int_equal(media_transcoder_rung(fx->t, 1, &info), 0);
    assert_false(info.active);
    assert_int_equal(info.avc.nal_length_size, 4); /* still describable */
    assert_int_equal(media_transcoder_drop_rung(fx->t), 0);
    assert_ax_err(media_transcoder_drop_rung(fx->t), AX_ENOENT);
    finish(fx);
}

/* After flush, push and a second flush are refused. */
static void transcode__push_after_flush_is_refused(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(media_transcoder_new(&fx->cfg, &fx->t, fx->errmsg), 0);
    assert_int_equal(media_transcoder_flush(fx->t), 0);
    media_frame_t f = source_frame(&fx->src, 0);
    assert_ax_err(media_transcoder_push(fx->t, &f), AX_EBADSTATE);
    assert_ax_err(media_transcoder_flush(fx->t), AX_EBADSTATE);
    finish(fx);
}

/* ---- byte-stream conversions ---------------------------------------------------------------- */

/* 3- and 4-byte start codes both split NAL units; trailing zero bytes are not payload. */
static void avcc__converts_annexb_start_codes(void **state)
{
    (void)state;
    const uint8_t in[] = {0,    0, 0, 1, 0x67, 0xaa, 0,    0,    1, 0x68,
                          0xbb, 0, 0, 0, 0,    1,    0x65, 0xcc, 0};
    ax_buf_t b;
    ax_buf_init(&b, 1024);
    assert_int_equal(media_transcode__annexb_to_avcc(AX_SLICE(in, sizeof in), &b), 3);
    const uint8_t want[] = {0, 0, 0, 2, 0x67, 0xaa, 0, 0, 0, 2, 0x68, 0xbb, 0, 0, 0, 2, 0x65, 0xcc};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.base, want, sizeof want);
    ax_buf_reset(&b);
    const uint8_t no_sc[] = {0x65, 0, 0, 1, 0x65};
    assert_ax_err(media_transcode__annexb_to_avcc(AX_SLICE(no_sc, sizeof no_sc), &b), AX_EBADDATA);
    const uint8_t empty[] = {0, 0, 1, 0, 0, 1, 0x65};
    assert_ax_err(media_transcode__annexb_to_avcc(AX_SLICE(empty, sizeof empty), &b), AX_EBADDATA);
    ax_buf_close(&b);
}

/* The avcC record carries profile/level from the SPS, then every SPS and PPS. */
static void avcc__builds_a_record_from_a_global_header(void **state)
{
    (void)state;
    const uint8_t hdr[] = {0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1e, 0x99, 0, 0, 0, 1, 0x68, 0xee, 0x3c};
    ax_buf_t b;
    ax_buf_init(&b, 1024);
    assert_int_equal(media_transcode__avcc_record(AX_SLICE(hdr, sizeof hdr), &b), 0);
    const uint8_t want[] = {1,    0x4d, 0x40, 0x1e, 0xff, 0xe1, 0,    5,    0x67, 0x4d,
                            0x40, 0x1e, 0x99, 1,    0,    3,    0x68, 0xee, 0x3c};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.base, want, sizeof want);
    ax_buf_reset(&b);
    const uint8_t no_pps[] = {0, 0, 1, 0x67, 0x4d, 0x40, 0x1e};
    assert_ax_err(media_transcode__avcc_record(AX_SLICE(no_pps, sizeof no_pps), &b), AX_EBADDATA);
    ax_buf_close(&b);
}

/* Length-prefixed input is checked for each supported NAL length size. */
static void avcc__checks_length_prefixed_units(void **state)
{
    (void)state;
    const uint8_t two[] = {0, 2, 0x65, 1, 0, 1, 0x41};
    assert_int_equal(media_transcode__check_avcc(AX_SLICE(two, sizeof two), 2), 0);
    assert_ax_err(media_transcode__check_avcc(AX_SLICE(two, sizeof two), 4), AX_EBADDATA);
    assert_ax_err(media_transcode__check_avcc(AX_SLICE(two, sizeof two), 3), AX_EBADDATA);
    const uint8_t zero[] = {0, 0, 0, 0};
    assert_ax_err(media_transcode__check_avcc(AX_SLICE(zero, sizeof zero), 4), AX_EBADDATA);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ladder__default_for_720p_keeps_480p_and_360p),
        cmocka_unit_test(ladder__default_for_1080p_skips_the_source_size),
        cmocka_unit_test(ladder__never_upscales),
        cmocka_unit_test(ladder__skips_a_rung_equal_to_the_source),
        cmocka_unit_test(ladder__rounds_odd_sizes_to_even),
        cmocka_unit_test(ladder__fills_defaults),
        cmocka_unit_test(ladder__sorts_and_drops_duplicates),
        cmocka_unit_test(ladder__refuses_bad_rungs),
        T(new__refuses_bad_config),
        T(new__checks_x264_options_length),
        T(new__no_rung_below_the_source_is_enoent),
        T(new__publishes_each_rungs_avc_config),
        T(new__out_of_memory_sweep),
        T(transcode__keeps_timestamps_and_keyframes),
        T(transcode__threads_keep_timestamps_and_keyframes),
        T(transcode__instances_run_in_parallel_threads),
        T(transcode__survives_random_corruption),
        T(transcode__source_without_b_frames),
        T(transcode__x264_options_cannot_move_keyframes),
        T(transcode__ignores_audio),
        T(transcode__survives_corrupt_frames),
        T(transcode__refuses_an_oversized_frame),
        T(transcode__drop_rung_drops_the_lowest),
        T(transcode__push_after_flush_is_refused),
        cmocka_unit_test(avcc__converts_annexb_start_codes),
        cmocka_unit_test(avcc__builds_a_record_from_a_global_header),
        cmocka_unit_test(avcc__checks_length_prefixed_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * edge.transcode_worker: the edge's transcoding worker (edge/src/transcode.c) on a real loop
 * with a small synthetic source made here with libx264: rung frames come back through the
 * async handle, a flush delivers everything, close joins a busy worker, the loop closes
 * clean, and a source without B-frames gets rungs without B-frames.
 *
 * The system allocator is kept (cmocka's is not thread-safe); ASan builds catch leaks.
 */
#include "ax_test.h"

#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/opt.h>

#include "aethex/media/flv.h"

#include "edge_internal.h"

uint64_t edge_now_ms(struct edge *e)
{
    return uv_now(e->loop);
}

/* ---- a synthetic source: 320x240, 30 fps, keyframes at 0 and 30 ------------------------ */

#define SRC_W 320
#define SRC_H 240
#define SRC_FRAMES 45

struct source {
    uint8_t record[512];
    size_t record_len;
    media_avc_config_t avc;
    media_frame_t frames[SRC_FRAMES];
    unsigned nframes;
};

/* Annex B NAL units (start codes) -> the payload's NAL units, each after its start code. */
static size_t next_nal(const uint8_t *p, size_t n, size_t at, size_t *len)
{
    size_t i = at;
    while (i + 3 <= n && !(p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1))
        i++;
    if (i + 3 > n)
        return n;
    size_t start = i + 3, j = start;
    while (j + 3 <= n && !(p[j] == 0 && p[j + 1] == 0 && (p[j + 2] == 1 || p[j + 2] == 0)))
        j++;
    if (j + 3 > n)
        j = n;
    *len = j - start;
    return start;
}

static uint8_t *to_avcc(const uint8_t *p, size_t n, size_t *out_len)
{
    uint8_t *out = malloc(n + 64);
    size_t o = 0, len = 0;
    for (size_t at = next_nal(p, n, 0, &len); at < n; at = next_nal(p, n, at + len, &len)) {
        out[o++] = (uint8_t)(len >> 24);
        out[o++] = (uint8_t)(len >> 16);
        out[o++] = (uint8_t)(len >> 8);
        out[o++] = (uint8_t)len;
        memcpy(out + o, p + at, len);
        o += len;
    }
    *out_len = o;
    return out;
}

/* The extradata's SPS and PPS (Annex B) as an AVCDecoderConfigurationRecord. */
static void make_record(struct source *s, const uint8_t *x, size_t n)
{
    size_t len = 0, o = 0;
    const uint8_t *sps = NULL, *pps = NULL;
    size_t sps_len = 0, pps_len = 0;
    for (size_t at = next_nal(x, n, 0, &len); at < n; at = next_nal(x, n, at + len, &len)) {
        if ((x[at] & 0x1f) == 7)
            sps = x + at, sps_len = len;
        else if ((x[at] & 0x1f) == 8)
            pps = x + at, pps_len = len;
    }
    assert_non_null(sps);
    assert_non_null(pps);
    uint8_t *r = s->record;
    r[o++] = 1;
    r[o++] = sps[1];
    r[o++] = sps[2];
    r[o++] = sps[3];
    r[o++] = 0xff;
    r[o++] = 0xe1;
    r[o++] = (uint8_t)(sps_len >> 8);
    r[o++] = (uint8_t)sps_len;
    memcpy(r + o, sps, sps_len);
    o += sps_len;
    r[o++] = 1;
    r[o++] = (uint8_t)(pps_len >> 8);
    r[o++] = (uint8_t)pps_len;
    memcpy(r + o, pps, pps_len);
    o += pps_len;
    s->record_len = o;
    assert_int_equal(media_avc_config_parse(AX_SLICE(s->record, o), &s->avc), 0);
}

static void make_source(struct source *s, int bframes)
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
    make_record(s, e->extradata, (size_t)e->extradata_size);

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
            f->pict_type = i % 30 == 0 ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
            assert_int_equal(avcodec_send_frame(e, f), 0);
        } else {
            assert_int_equal(avcodec_send_frame(e, NULL), 0);
        }
        while (avcodec_receive_packet(e, pkt) == 0) {
            media_frame_t *m = &s->frames[s->nframes++];
            size_t len;
            uint8_t *d = to_avcc(pkt->data, (size_t)pkt->size, &len);
            m->track = MEDIA_TRACK_VIDEO;
            m->dts = pkt->dts;
            m->cts = (int32_t)(pkt->pts - pkt->dts);
            m->keyframe = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
            m->data = AX_SLICE(d, len);
            av_packet_unref(pkt);
        }
    }
    assert_int_equal(s->nframes, SRC_FRAMES);
    av_packet_free(&pkt);
    av_frame_free(&f);
    avcodec_free_context(&e);
}

static void free_source(struct source *s)
{
    for (unsigned i = 0; i < s->nframes; i++)
        free((void *)s->frames[i].data.base);
}

/* ---- the fixture: an edge with only a loop ---------------------------------------------- */

struct fixture {
    uv_loop_t loop;
    struct edge e;
    struct source src;
    struct edge_transcode *t;
    unsigned ready, frames, keyframes, done, failed, dropped;
    unsigned ready_w, ready_h;
    bool ready_has_avc;
    int64_t first_dts;
    int32_t max_cts;
};

static struct fixture *fx_of(struct edge_transcode *t)
{
    return edge_transcode_data(t);
}

static void on_ready(struct edge_transcode *t, const edge_transcode_rung_t *r, unsigned n)
{
    struct fixture *fx = fx_of(t);
    fx->ready++;
    assert_int_equal(n, 1);
    fx->ready_w = r[0].width;
    fx->ready_h = r[0].height;
    media_avc_config_t c;
    fx->ready_has_avc =
        media_avc_config_parse(r[0].avc.record, &c) == 0 && c.width == 160 && c.height == 120;
}

static void on_frame(struct edge_transcode *t, unsigned rung, const media_frame_t *f)
{
    struct fixture *fx = fx_of(t);
    assert_int_equal(rung, 0);
    if (fx->frames == 0)
        fx->first_dts = f->dts;
    fx->frames++;
    fx->keyframes += f->keyframe;
    if (f->cts > fx->max_cts)
        fx->max_cts = f->cts;
}

static void on_dropped(struct edge_transcode *t, unsigned rung)
{
    (void)rung;
    fx_of(t)->dropped++;
}

static void on_failed(struct edge_transcode *t)
{
    fx_of(t)->failed++;
}

static void on_done(struct edge_transcode *t)
{
    struct fixture *fx = fx_of(t);
    fx->done++;
    edge_transcode_close(t); /* as channel.c does: the worker has returned */
    fx->t = NULL;
}

static const edge_transcode_cbs_t cbs = {
    .on_ready = on_ready,
    .on_frame = on_frame,
    .on_dropped = on_dropped,
    .on_failed = on_failed,
    .on_done = on_done,
};

static int setup_bf(void **state, int bframes)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->e.loop = &fx->loop;
    h2o_linklist_init_anchor(&fx->e.transcodes);
    make_source(&fx->src, bframes);
    media_transcode_rung_t want = {.width = 160, .height = 120, .bitrate_kbps = 200};
    media_transcode_rung_t sel[MEDIA_TRANSCODE_MAX_RUNGS];
    assert_int_equal(media_transcode_ladder_select(SRC_W, SRC_H, &want, 1, sel), 1);
    assert_int_equal(edge_transcode_start(&fx->e, "test", &fx->src.avc, sel, 1, &cbs, fx, &fx->t),
                     0);
    assert_int_equal(edge_transcode_count(&fx->e), 1);
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_bf(state, 2);
}

static int setup_no_bframes(void **state)
{
    return setup_bf(state, 0);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    edge_transcode_close_all(&fx->e);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(edge_transcode_count(&fx->e), 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free_source(&fx->src);
    free(fx);
    return 0;
}

static void push_all(struct fixture *fx)
{
    for (unsigned i = 0; i < fx->src.nframes; i++)
        assert_int_equal(edge_transcode_push(fx->t, &fx->src.frames[i]), 0);
}

/* Every pushed frame comes back as a rung frame on the loop, after one ready with the rung's
 * avcC; finish() flushes, done fires once, and the worker is joined and freed. */
static void worker__delivers_every_frame_then_done(void **state)
{
    struct fixture *fx = *state;
    push_all(fx);
    edge_transcode_finish(fx->t);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* returns once the async handle is closed */
    assert_int_equal(fx->ready, 1);
    assert_int_equal(fx->ready_w, 160);
    assert_int_equal(fx->ready_h, 120);
    assert_true(fx->ready_has_avc);
    assert_int_equal(fx->frames, SRC_FRAMES);
    assert_int_equal(fx->keyframes, 2);
    assert_int_equal(fx->done, 1);
    assert_int_equal(fx->failed, 0);
    assert_int_equal(fx->dropped, 0);
    assert_int_equal(edge_transcode_count(&fx->e), 0);
}

/* Closing a worker that is busy with a queue of frames joins it at once: no callback fires
 * after the close, and the loop closes clean. */
static void worker__close_joins_a_busy_worker(void **state)
{
    struct fixture *fx = *state;
    push_all(fx);
    edge_transcode_close(fx->t);
    fx->t = NULL;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->ready + fx->frames + fx->done + fx->failed, 0);
}

/* Audio frames are not queued (audio is passed through once by the loop). */
static void worker__ignores_audio(void **state)
{
    struct fixture *fx = *state;
    media_frame_t a = {
        .track = MEDIA_TRACK_AUDIO, .dts = 0, .keyframe = true, .data = AX_SLICE("\x21\x00", 2)};
    assert_int_equal(edge_transcode_push(fx->t, &a), 0);
    edge_transcode_finish(fx->t);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->frames, 0);
    assert_int_equal(fx->done, 1);
}

/* A source without B-frames gets a rung without B-frames: its decode times never start
 * before the source's (the packager could not place them). */
static void worker__no_b_frames_in_the_source_none_in_the_rung(void **state)
{
    struct fixture *fx = *state;
    for (unsigned i = 0; i < fx->src.nframes; i++)
        assert_int_equal(fx->src.frames[i].cts, 0);
    push_all(fx);
    edge_transcode_finish(fx->t);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->frames, SRC_FRAMES);
    assert_int_equal(fx->max_cts, 0);
    assert_true(fx->first_dts >= fx->src.frames[0].dts);
}

int main(void)
{
    edge_transcode_use_ops(&media_transcode_ops); /* linked in, not the module */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(worker__delivers_every_frame_then_done, setup, teardown),
        cmocka_unit_test_setup_teardown(worker__close_joins_a_busy_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(worker__ignores_audio, setup, teardown),
        cmocka_unit_test_setup_teardown(worker__no_b_frames_in_the_source_none_in_the_rung,
                                        setup_no_bframes, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

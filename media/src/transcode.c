/*
 * The transcoder (transcode.h): decode once, scale per rung, encode per rung.
 *
 *   push(frame) -> AVPacket (pts = dts + cts, ms) -> h264 decoder -> AVFrame (pts)
 *     -> for each active rung: swscale -> AVFrame (pict_type I at a source keyframe)
 *        -> libx264 -> AVPacket (Annex B) -> AVCC -> on_frame(rung, frame)
 *
 * Keyframe alignment: the pts of every source frame flagged as a keyframe is remembered in
 * a small ring until the decoder returns the picture with that pts; that picture is sent to
 * every rung's encoder with pict_type = I. libx264 runs with forced-idr=1, open-gop=0,
 * scenecut=0 and keyint=infinite, so a forced I becomes an IDR and no other IDR appears.
 *
 * Timestamps: everything runs on a 1/1000 time base, so source pts pass through untouched;
 * x264 derives dts from the reordered pts (its dts lag pts by the B-frame delay).
 */
#include "aethex/media/transcode.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "aethex/common/log.h"
#include "transcode_internal.h"

/* Source keyframe timestamps awaiting their decoded picture. The decoder's delay (reorder
 * plus frame threads) is far below this many keyframes. */
#define KEYFRAME_RING 16
/* Limit of one output access unit after Annex-B -> AVCC conversion. */
#define MAX_OUT_FRAME (2 * MEDIA_TRANSCODE_MAX_FRAME_SIZE)
/* Limit of an avcC record built from an encoder's header. */
#define MAX_RECORD 4096

typedef enum {
    TC_STATE_OPEN,
    TC_STATE_FLUSHED,
    TC_STATE_FAILED,
} tc_state_t;

struct rung {
    media_transcode_rung_t cfg;
    bool active;
    AVCodecContext *enc;    /* owned */
    struct SwsContext *sws; /* owned */
    AVFrame *scaled;        /* owned */
    uint8_t *record;        /* owned: the avcC record */
    size_t record_len;
    media_avc_config_t avc; /* slices into record */
    uint64_t frames_out;
    uint64_t bytes_out;
};

struct media_transcoder {
    media_transcode_frame_cb on_frame;
    void *data;
    tc_state_t state;
    uint8_t nal_length_size;
    uint32_t src_w, src_h;
    uint32_t fps_num, fps_den;
    int sws_flags;
    AVCodecContext *dec; /* owned */
    AVPacket *pkt;       /* owned: the input packet */
    AVPacket *out_pkt;   /* owned: each encoder's output */
    AVFrame *decoded;    /* owned */
    ax_buf_t out;        /* AVCC conversion of one output access unit */
    /* The caller's x264 options, then ours. */
    char x264_params[MEDIA_TRANSCODE_X264_PARAMS_LEN + 64];
    int64_t kf_pts[KEYFRAME_RING];
    unsigned kf_head, kf_len;
    int64_t last_pts;
    bool have_last_pts;
    unsigned nrungs;
    struct rung rungs[MEDIA_TRANSCODE_MAX_RUNGS];
    media_transcode_stats_t stats;
    char errmsg[AX_ERRMSG_LEN];
};

static int fail(char *errmsg, int rv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *errmsg, int rv, const char *fmt, ...)
{
    if (errmsg != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errmsg, AX_ERRMSG_LEN, fmt, ap);
        va_end(ap);
    }
    return rv;
}

/* Maps a libav error to ours: ENOMEM stays ENOMEM, decoding trouble is bad data, the rest
 * is a codec failure. */
static int av_to_ax(int averr)
{
    if (averr == AVERROR(ENOMEM))
        return AX_ENOMEM;
    if (averr == AVERROR_INVALIDDATA)
        return AX_EBADDATA;
    return AX_EIO;
}

static const char *av_err(int averr, char *buf, size_t len)
{
    av_strerror(averr, buf, len);
    return buf;
}

static int sws_flags_of(media_transcode_scale_t s)
{
    switch (s) {
    case MEDIA_TRANSCODE_SCALE_BILINEAR:
        return SWS_BILINEAR;
    case MEDIA_TRANSCODE_SCALE_FAST_BILINEAR:
        return SWS_FAST_BILINEAR;
    case MEDIA_TRANSCODE_SCALE_AREA:
        return SWS_AREA;
    default:
        return SWS_BICUBIC;
    }
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void rung_close_codec(struct rung *r)
{
    avcodec_free_context(&r->enc);
    sws_freeContext(r->sws);
    r->sws = NULL;
    av_frame_free(&r->scaled);
    r->active = false;
}

void media_transcoder_free(media_transcoder_t *t)
{
    if (t == NULL)
        return;
    for (unsigned i = 0; i < t->nrungs; i++) {
        rung_close_codec(&t->rungs[i]);
        ax_free(t->rungs[i].record);
    }
    avcodec_free_context(&t->dec);
    av_packet_free(&t->pkt);
    av_packet_free(&t->out_pkt);
    av_frame_free(&t->decoded);
    ax_buf_close(&t->out);
    ax_free(t);
}

static int open_decoder(media_transcoder_t *t, const media_transcode_config_t *cfg, char *errmsg)
{
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
    if (codec == NULL)
        return fail(errmsg, AX_ENOTSUP, "transcode: no h264 decoder in libavcodec");
    t->dec = avcodec_alloc_context3(codec);
    if (t->dec == NULL)
        return fail(errmsg, AX_ENOMEM, "transcode: decoder context: out of memory");
    ax_slice_t rec = cfg->source->record;
    t->dec->extradata = av_mallocz(rec.len + AV_INPUT_BUFFER_PADDING_SIZE);
    if (t->dec->extradata == NULL)
        return fail(errmsg, AX_ENOMEM, "transcode: decoder extradata: out of memory");
    memcpy(t->dec->extradata, rec.base, rec.len);
    t->dec->extradata_size = (int)rec.len;
    t->dec->pkt_timebase = (AVRational){1, 1000};
    t->dec->thread_count = cfg->decode_threads ? (int)cfg->decode_threads : 1;
    t->dec->thread_type = FF_THREAD_FRAME;
    /* H.264 8.7 deblocking is skipped only where no picture predicts from the result. */
    t->dec->skip_loop_filter = cfg->full_deblock ? AVDISCARD_DEFAULT : AVDISCARD_NONREF;
    int rv = avcodec_open2(t->dec, codec, NULL);
    if (rv < 0) {
        char b[64];
        return fail(errmsg, av_to_ax(rv) == AX_ENOMEM ? AX_ENOMEM : AX_EIO,
                    "transcode: open h264 decoder: %s", av_err(rv, b, sizeof b));
    }
    return 0;
}

/* Fills the rung's avc config from its record (built by us, so trusted layout). */
static void rung_fill_avc(media_transcoder_t *t, struct rung *r)
{
    media_avc_config_t *c = &r->avc;
    const uint8_t *p = r->record;
    memset(c, 0, sizeof *c);
    c->profile_idc = p[1];
    c->profile_compat = p[2];
    c->level_idc = p[3];
    c->nal_length_size = 4;
    c->width = r->cfg.width;
    c->height = r->cfg.height;
    c->chroma_format_idc = 1;
    c->bit_depth_luma = 8;
    c->fps_num = t->fps_num;
    c->fps_den = t->fps_den;
    c->record = AX_SLICE(r->record, r->record_len);
    size_t pos = 5;
    c->nsps = p[pos++] & 0x1f;
    for (unsigned i = 0; i < c->nsps; i++) {
        size_t n = ax_rd_be16(p + pos);
        c->sps[i] = AX_SLICE(p + pos + 2, n);
        pos += 2 + n;
    }
    c->npps = p[pos++];
    for (unsigned i = 0; i < c->npps; i++) {
        size_t n = ax_rd_be16(p + pos);
        c->pps[i] = AX_SLICE(p + pos + 2, n);
        pos += 2 + n;
    }
}

static int open_rung(media_transcoder_t *t, const media_transcode_config_t *cfg, struct rung *r,
                     char *errmsg)
{
    char b[64];
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (codec == NULL)
        return fail(errmsg, AX_ENOTSUP, "transcode: libavcodec has no libx264 encoder");
    /* Allocating with the codec applies libx264's own defaults (bf -1, g -1, +cgop, ...). */
    AVCodecContext *e = r->enc = avcodec_alloc_context3(codec);
    if (e == NULL)
        return fail(errmsg, AX_ENOMEM, "transcode: encoder context: out of memory");
    e->width = (int)r->cfg.width;
    e->height = (int)r->cfg.height;
    e->pix_fmt = AV_PIX_FMT_YUV420P;
    e->sample_aspect_ratio = (AVRational){1, 1};
    e->time_base = (AVRational){1, 1000};
    e->framerate = (AVRational){(int)t->fps_num, (int)t->fps_den};
    e->bit_rate = (int64_t)r->cfg.bitrate_kbps * 1000;
    e->rc_max_rate = (int64_t)r->cfg.maxrate_kbps * 1000;
    e->rc_buffer_size = (int)r->cfg.bufsize_kbps * 1000;
    e->thread_count = cfg->encode_threads ? (int)cfg->encode_threads : 1;
    e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER | AV_CODEC_FLAG_CLOSED_GOP;
    int rv = av_opt_set(e->priv_data, "preset", r->cfg.preset, 0);
    if (rv >= 0)
        rv = av_opt_set(e->priv_data, "profile", r->cfg.profile, 0);
    if (rv >= 0)
        rv = av_opt_set_int(e->priv_data, "forced-idr", 1, 0);
    /* IDRs only where forced (the source's keyframes): see the comment at the top. */
    if (rv >= 0)
        rv = av_opt_set(e->priv_data, "x264-params", t->x264_params, 0);
    if (rv < 0)
        return fail(errmsg, av_to_ax(rv) == AX_ENOMEM ? AX_ENOMEM : AX_EINVAL,
                    "transcode: rung %ux%u: x264 options: %s", r->cfg.width, r->cfg.height,
                    av_err(rv, b, sizeof b));
    rv = avcodec_open2(e, codec, NULL);
    if (rv < 0)
        return fail(errmsg,
                    rv == AVERROR(ENOMEM)   ? AX_ENOMEM
                    : rv == AVERROR(EINVAL) ? AX_EINVAL /* e.g. an unknown x264 option */
                                            : AX_EIO,
                    "transcode: rung %ux%u: open libx264: %s", r->cfg.width, r->cfg.height,
                    av_err(rv, b, sizeof b));

    ax_buf_t rec;
    ax_buf_init(&rec, MAX_RECORD);
    rv = media_transcode__avcc_record(AX_SLICE(e->extradata, (size_t)e->extradata_size), &rec);
    if (rv < 0) {
        ax_buf_close(&rec);
        return fail(errmsg, rv == AX_ENOMEM ? AX_ENOMEM : AX_EIO,
                    "transcode: rung %ux%u: encoder header: %s", r->cfg.width, r->cfg.height,
                    ax_strerror(rv));
    }
    r->record = rec.base; /* ownership moves from the buffer to the rung */
    r->record_len = rec.len;
    rung_fill_avc(t, r);

    r->scaled = av_frame_alloc();
    if (r->scaled == NULL)
        return fail(errmsg, AX_ENOMEM, "transcode: frame: out of memory");
    r->scaled->format = AV_PIX_FMT_YUV420P;
    r->scaled->width = e->width;
    r->scaled->height = e->height;
    rv = av_frame_get_buffer(r->scaled, 0);
    if (rv < 0)
        return fail(errmsg, AX_ENOMEM, "transcode: frame buffer: out of memory");
    r->active = true;
    return 0;
}

/* libav* and libx264 log through av_log to stderr by default, several lines per encoder at
 * info level. Ours: warnings and errors only, one line each, in our log format. */
static void av_log_line(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_WARNING)
        return;
    char line[400];
    int prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n == 0)
        return;
    ax_log(level <= AV_LOG_ERROR ? AX_LOG_ERROR : AX_LOG_WARN, "media transcode", "libav: %s",
           line);
}

static pthread_once_t av_log_installed = PTHREAD_ONCE_INIT;

static void av_log_install(void)
{
    av_log_set_callback(av_log_line);
}

int media_transcoder_new(const media_transcode_config_t *cfg, media_transcoder_t **out,
                         char *errmsg)
{
    *out = NULL;
    if (errmsg != NULL)
        errmsg[0] = '\0';
    pthread_once(&av_log_installed, av_log_install);
    if (cfg == NULL || cfg->source == NULL || cfg->on_frame == NULL ||
        cfg->source->record.base == NULL || cfg->source->record.len == 0 ||
        cfg->source->record.len > MAX_RECORD || (cfg->nrungs && cfg->rungs == NULL))
        return fail(errmsg, AX_EINVAL, "transcode: config needs a source record and on_frame");
    const media_avc_config_t *src = cfg->source;
    uint8_t nls = src->nal_length_size;
    if (nls != 1 && nls != 2 && nls != 4)
        return fail(errmsg, AX_EINVAL, "transcode: source nal_length_size %u", nls);
    if ((unsigned)cfg->scale >= MEDIA_TRANSCODE_SCALE_COUNT)
        return fail(errmsg, AX_EINVAL, "transcode: scale algorithm %d", (int)cfg->scale);
    if (cfg->encode_threads > 16 || cfg->decode_threads > 16)
        return fail(errmsg, AX_EINVAL, "transcode: more than 16 threads");
    if (cfg->x264_params != NULL && strnlen(cfg->x264_params, MEDIA_TRANSCODE_X264_PARAMS_LEN) ==
                                        MEDIA_TRANSCODE_X264_PARAMS_LEN)
        return fail(errmsg, AX_EINVAL, "transcode: x264_params longer than %d bytes",
                    MEDIA_TRANSCODE_X264_PARAMS_LEN - 1);
    if ((cfg->fps_num == 0) != (cfg->fps_den == 0))
        return fail(errmsg, AX_EINVAL, "transcode: fps %u/%u", cfg->fps_num, cfg->fps_den);

    media_transcode_rung_t sel[MEDIA_TRANSCODE_MAX_RUNGS];
    int n = media_transcode_ladder_select(src->width, src->height, cfg->rungs, cfg->nrungs, sel);
    if (n < 0)
        return fail(errmsg, n, "transcode: bad ladder for a %ux%u source", src->width, src->height);
    if (n == 0)
        return fail(errmsg, AX_ENOENT, "transcode: no rung below the %ux%u source", src->width,
                    src->height);

    media_transcoder_t *t = ax_calloc(1, sizeof *t);
    if (t == NULL)
        return fail(errmsg, AX_ENOMEM, "transcode: out of memory");
    t->on_frame = cfg->on_frame;
    t->data = cfg->data;
    t->nal_length_size = nls;
    t->src_w = src->width;
    t->src_h = src->height;
    t->sws_flags = sws_flags_of(cfg->scale);
    /* x264-params are applied in order, so ours come last and win. */
    const char *extra = cfg->x264_params ? cfg->x264_params : MEDIA_TRANSCODE_X264_DEFAULT_PARAMS;
    snprintf(t->x264_params, sizeof t->x264_params, "%s%sscenecut=0:open-gop=0:keyint=infinite",
             extra, extra[0] ? ":" : "");
    ax_buf_init(&t->out, MAX_OUT_FRAME);
    /* Rate control wants a nominal rate; timestamps stay authoritative (x264 vfr input). */
    t->fps_num = 30, t->fps_den = 1;
    if (cfg->fps_num) {
        t->fps_num = cfg->fps_num, t->fps_den = cfg->fps_den;
    } else if (src->fps_num && src->fps_den && src->fps_num / src->fps_den >= 1 &&
               src->fps_num / src->fps_den <= 240) {
        t->fps_num = src->fps_num, t->fps_den = src->fps_den;
    }

    int rv = open_decoder(t, cfg, errmsg);
    if (rv < 0)
        goto fail_after_alloc;
    t->pkt = av_packet_alloc();
    t->out_pkt = av_packet_alloc();
    t->decoded = av_frame_alloc();
    if (t->pkt == NULL || t->out_pkt == NULL || t->decoded == NULL) {
        rv = fail(errmsg, AX_ENOMEM, "transcode: out of memory");
        goto fail_after_alloc;
    }
    /* Reserve the conversion buffer now so that pushing a typical frame does not allocate. */
    rv = ax_buf_reserve(&t->out, 64 * 1024);
    if (rv < 0) {
        rv = fail(errmsg, rv, "transcode: out of memory");
        goto fail_after_alloc;
    }
    for (int i = 0; i < n; i++) {
        t->rungs[i].cfg = sel[i];
        t->nrungs = (unsigned)i + 1;
        rv = open_rung(t, cfg, &t->rungs[i], errmsg);
        if (rv < 0)
            goto fail_after_alloc;
    }
    *out = t;
    return 0;

fail_after_alloc:
    media_transcoder_free(t);
    return rv;
}

void *media_transcoder_data(const media_transcoder_t *t)
{
    return t->data;
}

/* ---- the pipeline ------------------------------------------------------------------------ */

static int fatal(media_transcoder_t *t, int rv, const char *what, int averr)
{
    char b[64];
    t->state = TC_STATE_FAILED;
    if (averr)
        snprintf(t->errmsg, sizeof t->errmsg, "transcode: %s: %s", what,
                 av_err(averr, b, sizeof b));
    else
        snprintf(t->errmsg, sizeof t->errmsg, "transcode: %s: %s", what, ax_strerror(rv));
    return rv;
}

/* Delivers every packet the rung's encoder has ready. */
static int drain_encoder(media_transcoder_t *t, unsigned idx)
{
    struct rung *r = &t->rungs[idx];
    for (;;) {
        int rv = avcodec_receive_packet(r->enc, t->out_pkt);
        if (rv == AVERROR(EAGAIN) || rv == AVERROR_EOF)
            return 0;
        if (rv < 0)
            return fatal(t, av_to_ax(rv) == AX_ENOMEM ? AX_ENOMEM : AX_EIO, "libx264 encode", rv);
        ax_buf_reset(&t->out);
        rv = media_transcode__annexb_to_avcc(AX_SLICE(t->out_pkt->data, (size_t)t->out_pkt->size),
                                             &t->out);
        if (rv < 0) {
            av_packet_unref(t->out_pkt);
            return fatal(t, rv == AX_ENOMEM ? AX_ENOMEM : AX_EIO, "libx264 output to AVCC", 0);
        }
        media_frame_t f = {
            .track = MEDIA_TRACK_VIDEO,
            .dts = t->out_pkt->dts,
            .cts = (int32_t)(t->out_pkt->pts - t->out_pkt->dts),
            .keyframe = (t->out_pkt->flags & AV_PKT_FLAG_KEY) != 0,
            .data = AX_SLICE(t->out.base, t->out.len),
        };
        r->frames_out++;
        r->bytes_out += t->out.len;
        av_packet_unref(t->out_pkt);
        t->on_frame(t, idx, &f);
    }
}

/* Remembers a source keyframe's pts; the oldest is forgotten if the ring is full (a picture
 * the decoder never returned). */
static void kf_remember(media_transcoder_t *t, int64_t pts)
{
    if (t->kf_len == KEYFRAME_RING) {
        t->kf_head = (t->kf_head + 1) % KEYFRAME_RING;
        t->kf_len--;
    }
    t->kf_pts[(t->kf_head + t->kf_len) % KEYFRAME_RING] = pts;
    t->kf_len++;
}

/* True when `pts` is a remembered keyframe; forgets it and every older entry. */
static bool kf_take(media_transcoder_t *t, int64_t pts)
{
    bool hit = false;
    unsigned kept = 0;
    int64_t keep[KEYFRAME_RING];
    for (unsigned i = 0; i < t->kf_len; i++) {
        int64_t k = t->kf_pts[(t->kf_head + i) % KEYFRAME_RING];
        if (k == pts)
            hit = true;
        else if (k > pts)
            keep[kept++] = k;
    }
    t->kf_head = 0;
    t->kf_len = kept;
    memcpy(t->kf_pts, keep, kept * sizeof keep[0]);
    return hit;
}

static int encode_picture(media_transcoder_t *t, const AVFrame *src)
{
    /* The packet's pts as the decoder reordered it: exactly the source's. (Not
     * best_effort_timestamp, which may substitute dts when it judges pts faulty.) */
    int64_t pts = src->pts != AV_NOPTS_VALUE ? src->pts : src->best_effort_timestamp;
    if (pts == AV_NOPTS_VALUE || (t->have_last_pts && pts <= t->last_pts)) {
        /* x264 needs strictly increasing pts; such a picture would also break the output's
         * timeline. Only corrupt input gets here. */
        t->stats.frames_skipped++;
        return 0;
    }
    t->last_pts = pts;
    t->have_last_pts = true;
    bool key = kf_take(t, pts);

    for (unsigned i = 0; i < t->nrungs; i++) {
        struct rung *r = &t->rungs[i];
        if (!r->active)
            continue;
        /* A mid-stream size or format change (new SPS) gets a new scaler, same output. */
        r->sws = sws_getCachedContext(r->sws, src->width, src->height, src->format,
                                      r->scaled->width, r->scaled->height, AV_PIX_FMT_YUV420P,
                                      t->sws_flags, NULL, NULL, NULL);
        if (r->sws == NULL)
            return fatal(t, AX_EIO, "swscale context", 0);
        /* The encoder may still hold a reference to the previous picture. */
        int rv = av_frame_make_writable(r->scaled);
        if (rv < 0)
            return fatal(t, AX_ENOMEM, "frame buffer", rv);
        sws_scale(r->sws, (const uint8_t *const *)src->data, src->linesize, 0, src->height,
                  r->scaled->data, r->scaled->linesize);
        r->scaled->pts = pts;
        r->scaled->pict_type = key ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
        rv = avcodec_send_frame(r->enc, r->scaled);
        if (rv < 0)
            return fatal(t, av_to_ax(rv) == AX_ENOMEM ? AX_ENOMEM : AX_EIO, "libx264 send", rv);
        rv = drain_encoder(t, i);
        if (rv < 0)
            return rv;
    }
    return 0;
}

/* Encodes every picture the decoder has ready. Decoding errors reported here (frame
 * threads report them late) are counted, not fatal. */
static int drain_decoder(media_transcoder_t *t)
{
    for (;;) {
        int rv = avcodec_receive_frame(t->dec, t->decoded);
        if (rv == AVERROR(EAGAIN) || rv == AVERROR_EOF)
            return 0;
        if (rv == AVERROR(ENOMEM))
            return fatal(t, AX_ENOMEM, "h264 decode", rv);
        if (rv < 0) {
            t->stats.decode_errors++;
            return 0;
        }
        t->stats.frames_decoded++;
        rv = encode_picture(t, t->decoded);
        av_frame_unref(t->decoded);
        if (rv < 0)
            return rv;
    }
}

int media_transcoder_push(media_transcoder_t *t, const media_frame_t *frame)
{
    if (t->state != TC_STATE_OPEN)
        return AX_EBADSTATE;
    if (frame->track != MEDIA_TRACK_VIDEO)
        return 0;
    t->stats.frames_in++;
    t->errmsg[0] = '\0';
    if (frame->data.len > MEDIA_TRANSCODE_MAX_FRAME_SIZE) {
        t->stats.decode_errors++;
        snprintf(t->errmsg, sizeof t->errmsg, "transcode: frame of %zu bytes skipped",
                 frame->data.len);
        return AX_EMSGSIZE;
    }
    if (media_transcode__check_avcc(frame->data, t->nal_length_size) < 0) {
        t->stats.decode_errors++;
        snprintf(t->errmsg, sizeof t->errmsg, "transcode: malformed AVCC frame at dts %lld",
                 (long long)frame->dts);
        return AX_EBADDATA;
    }
    int rv = av_new_packet(t->pkt, (int)frame->data.len);
    if (rv < 0)
        return fatal(t, AX_ENOMEM, "packet", rv);
    memcpy(t->pkt->data, frame->data.base, frame->data.len);
    t->pkt->dts = frame->dts;
    t->pkt->pts = frame->dts + frame->cts;
    if (frame->keyframe) {
        t->pkt->flags |= AV_PKT_FLAG_KEY;
        kf_remember(t, t->pkt->pts);
    }
    rv = avcodec_send_packet(t->dec, t->pkt);
    if (rv == AVERROR(EAGAIN)) {
        /* Frame threads can hold a full queue of pictures: take them, then send again. */
        int drv = drain_decoder(t);
        if (drv < 0) {
            av_packet_unref(t->pkt);
            return drv;
        }
        rv = avcodec_send_packet(t->dec, t->pkt);
    }
    av_packet_unref(t->pkt);
    int result = 0;
    if (rv == AVERROR(ENOMEM))
        return fatal(t, AX_ENOMEM, "h264 decode", rv);
    if (rv < 0) {
        char b[64];
        t->stats.decode_errors++;
        snprintf(t->errmsg, sizeof t->errmsg, "transcode: h264 decoder refused dts %lld: %s",
                 (long long)frame->dts, av_err(rv, b, sizeof b));
        result = AX_EBADDATA;
    }
    rv = drain_decoder(t);
    return rv < 0 ? rv : result;
}

int media_transcoder_flush(media_transcoder_t *t)
{
    if (t->state != TC_STATE_OPEN)
        return AX_EBADSTATE;
    int rv = avcodec_send_packet(t->dec, NULL);
    if (rv < 0 && rv != AVERROR_EOF)
        return fatal(t, AX_EIO, "h264 decoder flush", rv);
    rv = drain_decoder(t);
    if (rv < 0)
        return rv;
    for (unsigned i = 0; i < t->nrungs; i++) {
        if (!t->rungs[i].active)
            continue;
        rv = avcodec_send_frame(t->rungs[i].enc, NULL);
        if (rv < 0 && rv != AVERROR_EOF)
            return fatal(t, AX_EIO, "libx264 flush", rv);
        rv = drain_encoder(t, i);
        if (rv < 0)
            return rv;
    }
    t->state = TC_STATE_FLUSHED;
    return 0;
}

int media_transcoder_drop_rung(media_transcoder_t *t)
{
    for (unsigned i = t->nrungs; i-- > 0;) {
        if (t->rungs[i].active) {
            rung_close_codec(&t->rungs[i]);
            return (int)i;
        }
    }
    return AX_ENOENT;
}

unsigned media_transcoder_rung_count(const media_transcoder_t *t)
{
    return t->nrungs;
}

int media_transcoder_rung(const media_transcoder_t *t, unsigned i, media_transcode_rung_info_t *out)
{
    if (i >= t->nrungs)
        return AX_ERANGE;
    const struct rung *r = &t->rungs[i];
    out->rung = r->cfg;
    out->active = r->active;
    out->avc = r->avc;
    out->frames_out = r->frames_out;
    out->bytes_out = r->bytes_out;
    return 0;
}

void media_transcoder_stats(const media_transcoder_t *t, media_transcode_stats_t *out)
{
    *out = t->stats;
}

const char *media_transcoder_errmsg(const media_transcoder_t *t)
{
    return t->errmsg;
}

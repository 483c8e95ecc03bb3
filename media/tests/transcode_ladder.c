/*
 * transcode_ladder: reads an FLV file with our FLV reader, transcodes its video with the
 * transcoder, writes each rung as an FLV file (video only) for ffprobe/ffmpeg to check.
 * Used by the media.transcode_ffprobe and media.transcode_psnr tests and by
 * bench/transcode/.
 *
 *   transcode_ladder IN.flv [--out DIR] [--rung HEIGHT:KBPS[:WIDTH]]... [--scale NAME]
 *                    [--enc-threads N] [--dec-threads N] [--preset NAME] [--realtime]
 *                    [--x264 KEY=VALUE:...] [--full-deblock]
 *
 * Without --rung the default ladder is used. With --out, rung i goes to DIR/rung<i>.flv.
 * --realtime paces the input by its timestamps (as a live publisher would arrive).
 * Prints one summary line (key=value) on stdout; exits non-zero on any error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <libavutil/log.h>

#include "aethex/common/error.h"
#include "aethex/common/util.h"
#include "aethex/media/flv.h"
#include "aethex/media/transcode.h"

#define MAX_INPUT (1u << 30)
#define MAX_TAG (16u << 20)

struct rung_out {
    FILE *f;
    uint64_t frames, keys;
};

struct app {
    const char *outdir;
    struct rung_out outs[MEDIA_TRANSCODE_MAX_RUNGS];
    int64_t first_dts_clamped;
};

static int write_tag(FILE *f, uint8_t type, int64_t ts, const uint8_t *hdr, size_t hlen,
                     ax_slice_t body)
{
    uint8_t h[11];
    size_t len = hlen + body.len;
    uint32_t t = ts < 0 ? 0 : (uint32_t)ts;
    h[0] = type;
    ax_wr_be24(h + 1, (uint32_t)len);
    ax_wr_be24(h + 4, t & 0xffffff);
    h[7] = (uint8_t)(t >> 24);
    ax_wr_be24(h + 8, 0);
    uint8_t prev[4];
    ax_wr_be32(prev, (uint32_t)(11 + len));
    if (fwrite(h, 1, 11, f) != 11 || fwrite(hdr, 1, hlen, f) != hlen ||
        (body.len && fwrite(body.base, 1, body.len, f) != body.len) || fwrite(prev, 1, 4, f) != 4)
        return -1;
    return 0;
}

static void on_frame(media_transcoder_t *t, unsigned rung, const media_frame_t *fr)
{
    struct app *app = media_transcoder_data(t);
    struct rung_out *o = &app->outs[rung];
    o->frames++;
    o->keys += fr->keyframe;
    if (o->f == NULL)
        return;
    /* FLV timestamps are unsigned: a dts before 0 (rung B-frame delay on a source without
     * B-frames) is written as 0 with the composition offset keeping the pts exact. */
    int64_t dts = fr->dts < 0 ? 0 : fr->dts;
    int32_t cts = (int32_t)(fr->dts + fr->cts - dts);
    if (fr->dts < 0)
        app->first_dts_clamped++;
    uint8_t hdr[5] = {(uint8_t)((fr->keyframe ? 1 : 2) << 4 | 7), 1};
    ax_wr_be24(hdr + 2, (uint32_t)cts & 0xffffff);
    if (write_tag(o->f, 9, dts, hdr, 5, fr->data) < 0) {
        fprintf(stderr, "write rung %u: %s\n", rung, strerror(errno));
        exit(1);
    }
}

static int open_outputs(struct app *app, media_transcoder_t *t)
{
    for (unsigned i = 0; i < media_transcoder_rung_count(t); i++) {
        media_transcode_rung_info_t info;
        media_transcoder_rung(t, i, &info);
        if (app->outdir == NULL)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/rung%u.flv", app->outdir, i);
        FILE *f = app->outs[i].f = fopen(path, "wb");
        if (f == NULL) {
            fprintf(stderr, "%s: %s\n", path, strerror(errno));
            return -1;
        }
        static const uint8_t flv_hdr[13] = {'F', 'L', 'V', 1, 0x01, 0, 0, 0, 9, 0, 0, 0, 0};
        uint8_t seq[5] = {0x17, 0, 0, 0, 0};
        if (fwrite(flv_hdr, 1, 13, f) != 13 || write_tag(f, 9, 0, seq, 5, info.avc.record) < 0)
            return -1;
    }
    return 0;
}

static ax_slice_t read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(1);
    }
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_INPUT) {
                fprintf(stderr, "%s: larger than %u bytes\n", path, MAX_INPUT);
                exit(1);
            }
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    return AX_SLICE(buf, len);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int parse_scale(const char *s)
{
    static const char *const names[] = {"bicubic", "bilinear", "fast_bilinear", "area"};
    for (int i = 0; i < (int)AX_ARRAY_SIZE(names); i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    fprintf(stderr, "unknown scale %s\n", s);
    exit(2);
}

int main(int argc, char **argv)
{
    struct app app = {0};
    media_transcode_rung_t rungs[MEDIA_TRANSCODE_MAX_RUNGS];
    size_t nrungs = 0;
    media_transcode_config_t cfg = {.on_frame = on_frame, .data = &app};
    const char *preset = NULL;
    bool realtime = false;
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"rung", required_argument, NULL, 'r'},
                                         {"scale", required_argument, NULL, 's'},
                                         {"enc-threads", required_argument, NULL, 'e'},
                                         {"dec-threads", required_argument, NULL, 'd'},
                                         {"preset", required_argument, NULL, 'p'},
                                         {"realtime", no_argument, NULL, 't'},
                                         {"x264", required_argument, NULL, 'x'},
                                         {"full-deblock", no_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            app.outdir = optarg;
            break;
        case 'r': {
            unsigned h = 0, k = 0, w = 0;
            if (nrungs == MEDIA_TRANSCODE_MAX_RUNGS || sscanf(optarg, "%u:%u:%u", &h, &k, &w) < 2) {
                fprintf(stderr, "bad --rung %s\n", optarg);
                return 2;
            }
            rungs[nrungs++] = (media_transcode_rung_t){.width = w, .height = h, .bitrate_kbps = k};
            break;
        }
        case 's':
            cfg.scale = (media_transcode_scale_t)parse_scale(optarg);
            break;
        case 'e':
            cfg.encode_threads = (unsigned)atoi(optarg);
            break;
        case 'd':
            cfg.decode_threads = (unsigned)atoi(optarg);
            break;
        case 'p':
            preset = optarg;
            break;
        case 't':
            realtime = true;
            break;
        case 'x':
            cfg.x264_params = optarg;
            break;
        case 'f':
            cfg.full_deblock = true;
            break;
        default:
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr,
                "usage: %s IN.flv [--out DIR] [--rung H:KBPS[:W]]... [--scale NAME] "
                "[--enc-threads N] [--dec-threads N] [--preset NAME] [--realtime] [--x264 OPTS] "
                "[--full-deblock]\n",
                argv[0]);
        return 2;
    }
    if (nrungs == 0)
        nrungs = media_transcode_default_ladder(rungs, MEDIA_TRANSCODE_MAX_RUNGS);
    if (preset != NULL)
        for (size_t i = 0; i < nrungs; i++)
            snprintf(rungs[i].preset, sizeof rungs[i].preset, "%s", preset);
    cfg.rungs = rungs;
    cfg.nrungs = nrungs;
    av_log_set_level(AV_LOG_ERROR);

    ax_slice_t in = read_file(argv[optind]);
    bool has_audio, has_video;
    int rv = media_flv_file_header(in, &has_audio, &has_video);
    if (rv < 0) {
        fprintf(stderr, "flv header: %s\n", ax_strerror(rv));
        return 1;
    }
    size_t pos = (size_t)rv;
    media_avc_config_t avc;
    media_transcoder_t *t = NULL;
    uint64_t video_in = 0, push_errors = 0;
    double t0 = now_s();
    int64_t first_dts = -1;
    while (pos < in.len) {
        media_flv_tag_t tag;
        rv = media_flv_file_tag(AX_SLICE(in.base + pos, in.len - pos), MAX_TAG, &tag);
        if (rv == AX_EAGAIN)
            break; /* a truncated last tag */
        if (rv < 0) {
            fprintf(stderr, "flv tag at %zu: %s\n", pos, ax_strerror(rv));
            return 1;
        }
        pos += (size_t)rv;
        if (tag.type != 9)
            continue;
        media_flv_video_t v;
        rv = media_flv_parse_video(tag.body, &v);
        if (rv < 0 || v.codec_id != MEDIA_FLV_CODEC_AVC)
            continue;
        if (v.avc_packet_type == MEDIA_FLV_AVC_SEQUENCE_HEADER) {
            if (t != NULL)
                continue; /* one configuration per run */
            rv = media_avc_config_parse(v.body, &avc);
            if (rv < 0) {
                fprintf(stderr, "avc config: %s\n", ax_strerror(rv));
                return 1;
            }
            cfg.source = &avc;
            char err[AX_ERRMSG_LEN];
            rv = media_transcoder_new(&cfg, &t, err);
            if (rv < 0) {
                fprintf(stderr, "%s (%s)\n", err, ax_err_name(rv));
                return 1;
            }
            if (open_outputs(&app, t) < 0)
                return 1;
            /* Cross-check: our FLV/AVC parser reads every rung's record. */
            for (unsigned i = 0; i < media_transcoder_rung_count(t); i++) {
                media_transcode_rung_info_t info;
                media_avc_config_t check;
                media_transcoder_rung(t, i, &info);
                rv = media_avc_config_parse(info.avc.record, &check);
                if (rv < 0 || check.width != info.rung.width || check.height != info.rung.height) {
                    fprintf(stderr, "rung %u: record does not parse back (%s, %ux%u)\n", i,
                            ax_strerror(rv), check.width, check.height);
                    return 1;
                }
            }
            continue;
        }
        if (v.avc_packet_type != MEDIA_FLV_AVC_NALU || t == NULL)
            continue;
        media_frame_t f = {.track = MEDIA_TRACK_VIDEO,
                           .dts = tag.timestamp,
                           .cts = v.cts,
                           .keyframe = v.frame_type == 1,
                           .data = v.body};
        if (realtime) {
            if (first_dts < 0)
                first_dts = f.dts;
            sleep_s((double)(f.dts - first_dts) / 1000.0 - (now_s() - t0));
        }
        video_in++;
        rv = media_transcoder_push(t, &f);
        if (rv == AX_EBADDATA || rv == AX_EMSGSIZE) {
            push_errors++;
            fprintf(stderr, "%s\n", media_transcoder_errmsg(t));
        } else if (rv < 0) {
            fprintf(stderr, "%s (%s)\n", media_transcoder_errmsg(t), ax_err_name(rv));
            return 1;
        }
    }
    if (t == NULL) {
        fprintf(stderr, "no AVC sequence header in the input\n");
        return 1;
    }
    rv = media_transcoder_flush(t);
    if (rv < 0) {
        fprintf(stderr, "%s (%s)\n", media_transcoder_errmsg(t), ax_err_name(rv));
        return 1;
    }
    double wall = now_s() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    media_transcode_stats_t st;
    media_transcoder_stats(t, &st);
    printf("video_in=%llu decoded=%llu decode_errors=%llu skipped=%llu push_errors=%llu "
           "dts_clamped=%lld wall_s=%.3f cpu_user_s=%.3f cpu_sys_s=%.3f",
           (unsigned long long)video_in, (unsigned long long)st.frames_decoded,
           (unsigned long long)st.decode_errors, (unsigned long long)st.frames_skipped,
           (unsigned long long)push_errors, (long long)app.first_dts_clamped, wall,
           (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    for (unsigned i = 0; i < media_transcoder_rung_count(t); i++) {
        media_transcode_rung_info_t info;
        media_transcoder_rung(t, i, &info);
        printf(" rung%u=%ux%u@%uk:frames=%llu:keys=%llu:bytes=%llu", i, info.rung.width,
               info.rung.height, info.rung.bitrate_kbps, (unsigned long long)info.frames_out,
               (unsigned long long)app.outs[i].keys, (unsigned long long)info.bytes_out);
        if (app.outs[i].f != NULL && fclose(app.outs[i].f) != 0) {
            fprintf(stderr, "close rung %u: %s\n", i, strerror(errno));
            return 1;
        }
    }
    printf("\n");
    media_transcoder_free(t);
    free((void *)in.base);
    return 0;
}

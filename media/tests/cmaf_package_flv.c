/*
 * cmaf_package_flv IN.flv[,IN2.flv...] OUTDIR [part_target_ms]
 *
 * Integration driver: reads an FLV file through the FLV reader and tag parsers
 * (aethex/media/flv.h), packages it with the CMAF/LL-HLS packager (aethex/media/hls.h) into
 * two renditions, "video" and "audio", and writes every resource the ring holds at the end:
 *   OUTDIR/master.m3u8, OUTDIR/<rendition>/index.m3u8, init-<gen>.mp4, seg-<msn>.m4s,
 *   part-<msn>.<k>.m4s
 * Several comma-separated inputs are published one after the other, as a publisher that
 * reconnects: media_hls_stream_discontinuity() between them, each restarting its clock at 0.
 * Prints "video_frames=N audio_frames=N segments=N parts=N" on success. Used by
 * cmaf_ffmpeg.sh and cmaf_qtdemux.sh (ctest media.cmaf_ffmpeg, media.cmaf_qtdemux).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aethex/common/error.h"
#include "aethex/media/flv.h"
#include "aethex/media/hls.h"

#define MAX_FILE (256u << 20)
#define MAX_TAG (16u << 20)
#define WALL0 UINT64_C(1764148500000)

static int die(const char *what, int err)
{
    fprintf(stderr, "cmaf_package_flv: %s: %s\n", what, err < 0 ? ax_strerror(err) : strerror(err));
    return 1;
}

static int write_part(const char *dir, const char *name, media_part_t *p)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    for (size_t i = 0; i < media_part_iov_count(p); i++) {
        ax_slice_t s = media_part_iov(p, i);
        if (fwrite(s.base, 1, s.len, f) != s.len) {
            fclose(f);
            return -1;
        }
    }
    return fclose(f);
}

static int dump_rendition(const char *out, media_hls_rendition_t *r)
{
    char dir[1024], name[64];
    snprintf(dir, sizeof(dir), "%s/%s", out, media_hls_rendition_name(r));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return -1;
    media_part_t *p;
    if (media_hls_rendition_playlist(r, MEDIA_HLS_SKIP_NO, &p) != 0)
        return -1;
    int rv = write_part(dir, "index.m3u8", p);
    media_part_unref(p);
    for (uint32_t g = 0;; g++) {
        media_hls_resource_t res = {.kind = MEDIA_HLS_RES_INIT, .init_gen = g};
        if (media_hls_rendition_get(r, &res, &p) != 0)
            break;
        snprintf(name, sizeof(name), "init-%u.mp4", g);
        rv |= write_part(dir, name, p);
        media_part_unref(p);
    }
    media_hls_rendition_stats_t st;
    media_hls_rendition_stats(r, &st);
    for (uint64_t m = st.first_msn; m <= st.last_msn; m++) {
        media_hls_resource_t res = {.kind = MEDIA_HLS_RES_SEGMENT, .msn = m};
        if (media_hls_rendition_get(r, &res, &p) != 0)
            continue;
        snprintf(name, sizeof(name), "seg-%llu.m4s", (unsigned long long)m);
        rv |= write_part(dir, name, p);
        media_part_unref(p);
        for (uint32_t k = 0;; k++) {
            media_hls_resource_t pr = {.kind = MEDIA_HLS_RES_PART, .msn = m, .part = k};
            if (media_hls_rendition_get(r, &pr, &p) != 0)
                break;
            snprintf(name, sizeof(name), "part-%llu.%u.m4s", (unsigned long long)m, k);
            rv |= write_part(dir, name, p);
            media_part_unref(p);
        }
    }
    return rv;
}

/* Reads one FLV file and pushes its configs and frames. Returns 0 or an exit status. */
static int package_file(media_hls_rendition_t *v, media_hls_rendition_t *a, const char *name,
                        int nfile, uint64_t *vframes_out, uint64_t *aframes_out)
{
    int rv;
    FILE *f = fopen(name, "rb");
    if (f == NULL)
        return die(name, errno);
    uint8_t *buf = malloc(MAX_FILE);
    size_t len = buf ? fread(buf, 1, MAX_FILE, f) : 0;
    fclose(f);
    if (buf == NULL || len == 0 || len == MAX_FILE)
        return die("read", EIO);
    uint64_t wall0 = WALL0 + (uint64_t)nfile * 3600000;
    bool has_audio, has_video;
    int n = media_flv_file_header(AX_SLICE(buf, len), &has_audio, &has_video);
    if (n < 0)
        return die("flv header", n);
    size_t off = (size_t)n;
    while (off < len) {
        media_flv_tag_t tag;
        n = media_flv_file_tag(AX_SLICE(buf + off, len - off), MAX_TAG, &tag);
        if (n == AX_EAGAIN)
            break; /* truncated last tag */
        if (n < 0)
            return die("flv tag", n);
        off += (size_t)n;
        media_frame_t fr = {0};
        if (tag.type == 9) {
            media_flv_video_t fv;
            if ((rv = media_flv_parse_video(tag.body, &fv)) != 0)
                return die("video tag", rv);
            if (fv.codec_id != MEDIA_FLV_CODEC_AVC)
                continue;
            if (fv.avc_packet_type == MEDIA_FLV_AVC_SEQUENCE_HEADER) {
                media_avc_config_t c;
                if ((rv = media_avc_config_parse(fv.body, &c)) != 0 ||
                    (rv = media_hls_rendition_set_video_config(v, &c)) != 0)
                    return die("avc config", rv);
                continue;
            }
            if (fv.avc_packet_type != MEDIA_FLV_AVC_NALU)
                continue;
            fr = (media_frame_t){MEDIA_TRACK_VIDEO, tag.timestamp, fv.cts, fv.frame_type == 1, fv.body};
            (*vframes_out)++;
            rv = media_hls_rendition_push(v, &fr, wall0 + tag.timestamp);
        } else if (tag.type == 8) {
            media_flv_audio_t fa;
            if ((rv = media_flv_parse_audio(tag.body, &fa)) != 0)
                return die("audio tag", rv);
            if (fa.sound_format != MEDIA_FLV_SOUND_AAC)
                continue;
            if (fa.aac_packet_type == 0) {
                media_aac_config_t c;
                if ((rv = media_aac_config_parse(fa.body, &c)) != 0 ||
                    (rv = media_hls_rendition_set_audio_config(a, &c)) != 0)
                    return die("aac config", rv);
                continue;
            }
            fr = (media_frame_t){MEDIA_TRACK_AUDIO, tag.timestamp, 0, true, fa.body};
            (*aframes_out)++;
            rv = media_hls_rendition_push(a, &fr, wall0 + tag.timestamp);
        } else {
            continue;
        }
        if (rv != 0)
            return die("push", rv);
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: cmaf_package_flv IN.flv[,IN2.flv...] OUTDIR [part_target_ms]\n");
        return 2;
    }
    media_hls_config_t cfg;
    media_hls_config_default(&cfg);
    cfg.window_segments = 1000;
    if (argc > 3)
        cfg.part_target_ms = (uint32_t)atoi(argv[3]);
    media_hls_stream_t *s;
    int rv = media_hls_stream_new(&cfg, &s);
    if (rv != 0)
        return die("stream_new", rv);
    media_hls_rendition_t *v, *a;
    media_hls_rendition_config_t rcv = {.name = "video", .track = MEDIA_TRACK_VIDEO};
    media_hls_rendition_config_t rca = {.name = "audio", .track = MEDIA_TRACK_AUDIO};
    if ((rv = media_hls_stream_add_rendition(s, &rcv, &v)) != 0 ||
        (rv = media_hls_stream_add_rendition(s, &rca, &a)) != 0)
        return die("add_rendition", rv);

    uint64_t vframes = 0, aframes = 0;
    char *list = strdup(argv[1]);
    int nfile = 0;
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name != NULL;
         name = strtok_r(NULL, ",", &save), nfile++) {
        if (nfile > 0 && (rv = media_hls_stream_discontinuity(s)) != 0)
            return die("discontinuity", rv);
        if ((rv = package_file(v, a, name, nfile, &vframes, &aframes)) != 0)
            return rv;
    }
    free(list);
    if ((rv = media_hls_stream_end(s)) != 0)
        return die("end", rv);
    mkdir(argv[2], 0755);
    media_part_t *m;
    if ((rv = media_hls_stream_master(s, &m)) != 0)
        return die("master", rv);
    if (write_part(argv[2], "master.m3u8", m) != 0 || dump_rendition(argv[2], v) != 0 ||
        dump_rendition(argv[2], a) != 0)
        return die("write", errno);
    media_part_unref(m);
    media_hls_rendition_stats_t sv, sa;
    media_hls_rendition_stats(v, &sv);
    media_hls_rendition_stats(a, &sa);
    printf("video_frames=%llu audio_frames=%llu segments=%llu parts=%llu dropped=%llu\n",
           (unsigned long long)vframes, (unsigned long long)aframes,
           (unsigned long long)sv.segments, (unsigned long long)sv.parts,
           (unsigned long long)(sv.frames_dropped + sa.frames_dropped));
    media_hls_stream_free(s);
    return 0;
}

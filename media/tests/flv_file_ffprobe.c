/*
 * media.flv_file_ffprobe: our FLV file reader and tag parsers against ffprobe, packet by packet.
 *
 * ffmpeg writes an FLV (libx264 with 2 B-frames and a 2 s GOP, AAC, 4 s); we read it with
 * media_flv_file_header/_tag, media_flv_parse_video/_audio, the AVC/AAC config parsers and
 * media_avc_check_nalus, and ffprobe reads the same file. Every packet must agree: the
 * track, dts, pts (= dts + cts), payload size (NAL units without the 5-byte AVC header, raw
 * AAC without the 2-byte header) and keyframe flag, in the same order and count. The stream
 * parameters (width, height, sample rate, channels) must agree too, and every keyframe must
 * carry an IDR NAL unit.
 *
 * Usage: flv_file_ffprobe [file.flv]   (without an argument, ffmpeg makes the file in a
 * temporary directory that is removed afterwards). Exit 0 when everything matches.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aethex/common/error.h"
#include "aethex/media/flv.h"

#define MAX_TAG (16u << 20)

struct pkt {
    char track; /* 'v' or 'a' */
    int64_t dts, pts;
    size_t size;
    bool key;
};

struct pkts {
    struct pkt *v;
    size_t n, cap;
};

static int push(struct pkts *p, struct pkt k)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        struct pkt *v = realloc(p->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = k;
    return 0;
}

static int failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0) {
        fclose(f);
        return -1;
    }
    *len = (size_t)st.st_size;
    *out = malloc(*len);
    int ok = *out != NULL && fread(*out, 1, *len, f) == *len;
    fclose(f);
    if (!ok) {
        free(*out);
        return -1;
    }
    return 0;
}

struct ours {
    struct pkts pkts;
    uint32_t width, height, sample_rate, channels;
    size_t keyframes_without_idr;
};

/* Reads `path` with our parsers: one packet per AVC NALU / AAC raw tag, as ffmpeg's demuxer. */
static int read_ours(const char *path, struct ours *o)
{
    uint8_t *buf;
    size_t len;
    if (read_file(path, &buf, &len) != 0)
        return failf("cannot read %s", path);
    ax_slice_t in = AX_SLICE(buf, len);
    bool has_audio, has_video;
    int rv = media_flv_file_header(in, &has_audio, &has_video);
    int err = 0;
    if (rv < 0)
        err = failf("flv header: %s", ax_strerror(rv));
    else if (!has_audio || !has_video)
        err = failf("flv header flags: audio %d video %d", has_audio, has_video);
    size_t pos = rv < 0 ? len : (size_t)rv;
    uint8_t nal_length_size = 0;
    while (pos < len && !err) {
        media_flv_tag_t tag;
        rv = media_flv_file_tag(AX_SLICE(buf + pos, len - pos), MAX_TAG, &tag);
        if (rv < 0) {
            err = failf("flv tag at offset %zu: %s", pos, ax_strerror(rv));
            break;
        }
        pos += (size_t)rv;
        if (tag.type == 9) {
            media_flv_video_t v;
            rv = media_flv_parse_video(tag.body, &v);
            if (rv < 0) {
                err = failf("video tag at %" PRIu32 " ms: %s", tag.timestamp, ax_strerror(rv));
                break;
            }
            if (v.codec_id != MEDIA_FLV_CODEC_AVC || v.frame_type == 5)
                continue;
            if (v.avc_packet_type == MEDIA_FLV_AVC_SEQUENCE_HEADER) {
                media_avc_config_t c;
                rv = media_avc_config_parse(v.body, &c);
                if (rv < 0) {
                    err = failf("AVC sequence header: %s", ax_strerror(rv));
                    break;
                }
                nal_length_size = c.nal_length_size;
                o->width = c.width;
                o->height = c.height;
                continue;
            }
            if (v.avc_packet_type != MEDIA_FLV_AVC_NALU || v.body.len == 0)
                continue; /* end of sequence: ffmpeg's demuxer makes no packet either */
            if (nal_length_size == 0) {
                err = failf("NAL units before the sequence header");
                break;
            }
            bool idr;
            rv = media_avc_check_nalus(v.body, nal_length_size, &idr);
            if (rv < 0) {
                err = failf("NAL units at %" PRIu32 " ms: %s", tag.timestamp, ax_strerror(rv));
                break;
            }
            if (v.frame_type == 1 && !idr)
                o->keyframes_without_idr++;
            struct pkt k = {'v', tag.timestamp, (int64_t)tag.timestamp + v.cts, v.body.len,
                            v.frame_type == 1};
            if (push(&o->pkts, k) != 0)
                err = failf("out of memory");
        } else if (tag.type == 8) {
            media_flv_audio_t a;
            rv = media_flv_parse_audio(tag.body, &a);
            if (rv < 0) {
                err = failf("audio tag at %" PRIu32 " ms: %s", tag.timestamp, ax_strerror(rv));
                break;
            }
            if (a.sound_format != MEDIA_FLV_SOUND_AAC)
                continue;
            if (a.aac_packet_type == 0) {
                media_aac_config_t c;
                rv = media_aac_config_parse(a.body, &c);
                if (rv < 0) {
                    err = failf("AudioSpecificConfig: %s", ax_strerror(rv));
                    break;
                }
                o->sample_rate = c.sample_rate;
                o->channels = c.channels;
                continue;
            }
            if (a.body.len == 0)
                continue;
            struct pkt k = {'a', tag.timestamp, tag.timestamp, a.body.len, true};
            if (push(&o->pkts, k) != 0)
                err = failf("out of memory");
        }
    }
    free(buf);
    return err;
}

/* ffprobe's packets: "codec_type,pts,dts,size,flags" per line (its fixed field order). */
static int read_ffprobe(const char *path, struct pkts *p)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -show_entries packet=codec_type,pts,dts,size,flags -of csv=p=0 "
             "'%s'",
             path);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return failf("popen ffprobe: %s", strerror(errno));
    char line[512];
    int err = 0;
    while (fgets(line, sizeof line, f) != NULL && !err) {
        char type[16], flags[16];
        int64_t pts, dts;
        size_t size;
        if (sscanf(line, "%15[^,],%" SCNd64 ",%" SCNd64 ",%zu,%15s", type, &pts, &dts, &size,
                   flags) != 5) {
            err = failf("unexpected ffprobe line: %s", line);
            break;
        }
        if (strcmp(type, "video") != 0 && strcmp(type, "audio") != 0)
            continue;
        struct pkt k = {type[0], dts, pts, size, flags[0] == 'K'};
        if (push(p, k) != 0)
            err = failf("out of memory");
    }
    int status = pclose(f);
    if (!err && status != 0)
        err = failf("ffprobe exited with status %d", status);
    return err;
}

/* ffprobe's stream parameters: "video,W,H" and "audio,RATE,CHANNELS". */
static int check_streams(const char *path, const struct ours *o)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -show_entries stream=codec_type,width,height,sample_rate,channels "
             "-of csv=p=0 '%s'",
             path);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return failf("popen ffprobe: %s", strerror(errno));
    char line[256];
    int err = 0, seen = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned a, b;
        if (sscanf(line, "video,%u,%u", &a, &b) == 2) {
            seen++;
            if (a != o->width || b != o->height)
                err = failf("video %ux%u, ffprobe says %ux%u", o->width, o->height, a, b);
        } else if (sscanf(line, "audio,%u,%u", &a, &b) == 2) {
            seen++;
            if (a != o->sample_rate || b != o->channels)
                err = failf("audio %u Hz %u ch, ffprobe says %u Hz %u ch", o->sample_rate,
                            o->channels, a, b);
        }
    }
    pclose(f);
    if (!err && seen != 2)
        err = failf("ffprobe listed %d of 2 streams", seen);
    return err;
}

static int compare(const struct pkts *ours, const struct pkts *theirs)
{
    int err = 0;
    if (ours->n != theirs->n)
        err = failf("%zu packets, ffprobe has %zu", ours->n, theirs->n);
    size_t n = ours->n < theirs->n ? ours->n : theirs->n;
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        const struct pkt *a = &ours->v[i], *b = &theirs->v[i];
        if (a->track == b->track && a->dts == b->dts && a->pts == b->pts && a->size == b->size &&
            a->key == b->key)
            continue;
        err = 1;
        if (shown++ < 10)
            fprintf(stderr,
                    "FAIL: packet %zu: ours %c dts %" PRId64 " pts %" PRId64 " size %zu key %d"
                    " / ffprobe %c dts %" PRId64 " pts %" PRId64 " size %zu key %d\n",
                    i, a->track, a->dts, a->pts, a->size, a->key, b->track, b->dts, b->pts, b->size,
                    b->key);
    }
    return err;
}

int main(int argc, char **argv)
{
    char dir[] = "/tmp/aethex-flv-ffprobe-XXXXXX";
    char path[4096];
    bool made = false;
    if (argc > 1) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else {
        if (mkdtemp(dir) == NULL)
            return failf("mkdtemp: %s", strerror(errno));
        snprintf(path, sizeof path, "%s/in.flv", dir);
        char cmd[8192];
        snprintf(cmd, sizeof cmd,
                 "ffmpeg -hide_banner -loglevel error -nostdin -y "
                 "-f lavfi -i testsrc2=size=640x360:rate=30 "
                 "-f lavfi -i sine=frequency=440:sample_rate=44100 -t 4 "
                 "-c:v libx264 -preset veryfast -bf 2 -g 60 -keyint_min 60 -sc_threshold 0 "
                 "-c:a aac -b:a 96k -f flv '%s'",
                 path);
        if (system(cmd) != 0) {
            rmdir(dir);
            return failf("ffmpeg failed: %s", cmd);
        }
        made = true;
    }

    struct ours o = {0};
    struct pkts theirs = {0};
    int err = read_ours(path, &o);
    err |= read_ffprobe(path, &theirs);
    if (!err)
        err |= check_streams(path, &o);
    if (!err)
        err |= compare(&o.pkts, &theirs);

    size_t video = 0, keys = 0;
    for (size_t i = 0; i < o.pkts.n; i++) {
        video += o.pkts.v[i].track == 'v';
        keys += o.pkts.v[i].track == 'v' && o.pkts.v[i].key;
    }
    if (o.keyframes_without_idr > 0)
        err |= failf("%zu keyframes carry no IDR NAL unit", o.keyframes_without_idr);
    /* The test must see what it was built for: B-frames (pts going backwards), 2 GOPs, audio. */
    size_t reordered = 0;
    int64_t last_pts = INT64_MIN;
    for (size_t i = 0; i < o.pkts.n; i++) {
        if (o.pkts.v[i].track != 'v')
            continue;
        reordered += o.pkts.v[i].pts < last_pts;
        last_pts = o.pkts.v[i].pts;
    }
    if (!made) {
        /* A given file: no expectations on its shape. */
    } else if (video < 100 || keys < 2 || reordered == 0 || o.pkts.n - video < 100) {
        err |= failf("unexpected source: %zu video (%zu key, %zu reordered), %zu audio", video,
                     keys, reordered, o.pkts.n - video);
    }
    printf("%s: %zu packets (%zu video, %zu key, %zu with pts < the previous; %zu audio), %ux%u, "
           "%u Hz x %u: %s\n",
           path, o.pkts.n, video, keys, reordered, o.pkts.n - video, o.width, o.height,
           o.sample_rate, o.channels, err ? "MISMATCH" : "all fields match ffprobe");
    free(o.pkts.v);
    free(theirs.v);
    if (made) {
        unlink(path);
        rmdir(dir);
    }
    return err ? 1 : 0;
}

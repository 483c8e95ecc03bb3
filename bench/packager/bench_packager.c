/*
 * bench_packager FLV [runs]
 *
 * Microbenchmark of the CMAF/LL-HLS packager (media/include/aethex/media/hls.h): the frames of
 * an FLV file (read and parsed once, up front, with the FLV reader) are pushed through a fresh
 * stream (one video + one audio rendition) `runs` times. Reported per run:
 *   - CPU time (CLOCK_PROCESS_CPUTIME_ID) for packaging only, and for packaging plus what the
 *     edge does per change: render the media playlist once per new part and fetch the part
 *     (ref + unref, as a viewer's write would);
 *   - that CPU time per minute of media ("per stream-minute") and as a share of one core;
 *   - allocations per frame, counted through the swappable allocator (ax_replace_allocator);
 *   - bytes allocated for payload slabs per payload byte (the one copy of each payload byte).
 * Not a ctest: benchmarks are not timed tests. See bench/packager/run.sh and RESULTS.md.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "aethex/media/flv.h"
#include "aethex/media/hls.h"

static unsigned long n_alloc, n_free;
static unsigned long long alloc_bytes;

static void *c_malloc(size_t n)
{
    n_alloc++;
    alloc_bytes += n;
    return malloc(n);
}
static void *c_realloc(void *p, size_t n)
{
    n_alloc++;
    alloc_bytes += n;
    return realloc(p, n);
}
static void *c_calloc(size_t c, size_t n)
{
    n_alloc++;
    alloc_bytes += c * n;
    return calloc(c, n);
}
static void c_free(void *p)
{
    if (p)
        n_free++;
    free(p);
}

struct frame {
    media_frame_t f;
};

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, int rv)
{
    fprintf(stderr, "bench_packager: %s: %s\n", what, ax_strerror(rv));
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_packager FILE.flv [runs]\n");
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 10;
    FILE *fp = fopen(argv[1], "rb");
    if (!fp)
        return 1;
    size_t cap = 64u << 20;
    uint8_t *buf = malloc(cap);
    size_t len = fread(buf, 1, cap, fp);
    fclose(fp);

    /* Parse once: the packager's input is frames, not FLV. */
    media_avc_config_t avc;
    media_aac_config_t aac;
    bool has_avc = false, has_aac = false, ha, hv;
    size_t nfr = 0, frcap = 1 << 16;
    struct frame *fr = calloc(frcap, sizeof(*fr));
    int n = media_flv_file_header(AX_SLICE(buf, len), &ha, &hv);
    if (n < 0)
        die("flv header", n);
    size_t off = (size_t)n;
    uint64_t payload = 0;
    int64_t first_ms = -1, last_ms = 0;
    while (off < len && nfr < frcap) {
        media_flv_tag_t t;
        n = media_flv_file_tag(AX_SLICE(buf + off, len - off), 16u << 20, &t);
        if (n <= 0)
            break;
        off += (size_t)n;
        if (t.type == 9) {
            media_flv_video_t v;
            if (media_flv_parse_video(t.body, &v) != 0 || v.codec_id != MEDIA_FLV_CODEC_AVC)
                continue;
            if (v.avc_packet_type == 0) {
                if (media_avc_config_parse(v.body, &avc) == 0)
                    has_avc = true;
            } else if (v.avc_packet_type == 1) {
                fr[nfr++].f = (media_frame_t){MEDIA_TRACK_VIDEO, t.timestamp, v.cts, v.frame_type == 1, v.body};
            }
        } else if (t.type == 8) {
            media_flv_audio_t a;
            if (media_flv_parse_audio(t.body, &a) != 0 || a.sound_format != MEDIA_FLV_SOUND_AAC)
                continue;
            if (a.aac_packet_type == 0) {
                if (media_aac_config_parse(a.body, &aac) == 0)
                    has_aac = true;
            } else {
                fr[nfr++].f = (media_frame_t){MEDIA_TRACK_AUDIO, t.timestamp, 0, true, a.body};
            }
        } else {
            continue;
        }
        if (nfr > 0) {
            payload += fr[nfr - 1].f.data.len;
            if (first_ms < 0)
                first_ms = t.timestamp;
            last_ms = t.timestamp;
        }
    }
    if (!has_avc || !has_aac || nfr == 0) {
        fprintf(stderr, "bench_packager: no AVC+AAC in %s\n", argv[1]);
        return 1;
    }
    double media_s = (last_ms - first_ms) / 1000.0;
    printf("input: %zu frames, %.1f s of media, %.2f Mbit/s payload\n", nfr, media_s,
           payload * 8 / media_s / 1e6);

    ax_replace_allocator(c_malloc, c_realloc, c_calloc, c_free);
    double best[2] = {1e9, 1e9}, sum[2] = {0, 0};
    unsigned long allocs[2] = {0, 0};
    unsigned long long abytes[2] = {0, 0};
    uint64_t ring_peak = 0, parts = 0;
    for (int run = -1; run < runs; run++) { /* run -1 warms caches */
        for (int serve = 0; serve < 2; serve++) {
            media_hls_config_t cfg;
            media_hls_config_default(&cfg);
            media_hls_stream_t *s;
            media_hls_rendition_t *v, *a;
            media_hls_rendition_config_t rv = {.name = "720p", .track = MEDIA_TRACK_VIDEO};
            media_hls_rendition_config_t ra = {.name = "audio", .track = MEDIA_TRACK_AUDIO};
            int rc;
            if ((rc = media_hls_stream_new(&cfg, &s)) || (rc = media_hls_stream_add_rendition(s, &rv, &v)) ||
                (rc = media_hls_stream_add_rendition(s, &ra, &a)) ||
                (rc = media_hls_rendition_set_video_config(v, &avc)) ||
                (rc = media_hls_rendition_set_audio_config(a, &aac)))
                die("setup", rc);
            unsigned long a0 = n_alloc;
            unsigned long long b0 = alloc_bytes;
            uint64_t seen[2] = {0, 0};
            double t0 = cpu_now();
            for (size_t i = 0; i < nfr; i++) {
                media_hls_rendition_t *r = fr[i].f.track == MEDIA_TRACK_VIDEO ? v : a;
                if ((rc = media_hls_rendition_push(r, &fr[i].f, 1764148500000ull + fr[i].f.dts)))
                    die("push", rc);
                if (serve) {
                    media_hls_rendition_stats_t st;
                    media_hls_rendition_stats(r, &st);
                    int k = r == v ? 0 : 1;
                    if (st.parts != seen[k]) {
                        seen[k] = st.parts;
                        media_part_t *p;
                        if ((rc = media_hls_rendition_playlist(r, MEDIA_HLS_SKIP_NO, &p)))
                            die("playlist", rc);
                        media_part_unref(p);
                        media_hls_resource_t res = {.kind = MEDIA_HLS_RES_PART,
                                                    .msn = st.last_msn,
                                                    .part = (uint32_t)st.last_part};
                        if ((rc = media_hls_rendition_get(r, &res, &p)))
                            die("get part", rc);
                        media_part_unref(p);
                    }
                }
            }
            double dt = cpu_now() - t0;
            if (run >= 0) {
                best[serve] = dt < best[serve] ? dt : best[serve];
                sum[serve] += dt;
                allocs[serve] = n_alloc - a0;
                abytes[serve] = alloc_bytes - b0;
                media_hls_rendition_stats_t sv, sa;
                media_hls_rendition_stats(v, &sv);
                media_hls_rendition_stats(a, &sa);
                if (sv.ring_bytes + sa.ring_bytes > ring_peak)
                    ring_peak = sv.ring_bytes + sa.ring_bytes;
                parts = sv.parts + sa.parts;
            }
            media_hls_stream_free(s);
        }
    }
    ax_reset_allocator();
    const char *label[2] = {"package", "package+serve"};
    for (int k = 0; k < 2; k++) {
        double mean = sum[k] / runs;
        printf("%-14s cpu mean %.2f ms, best %.2f ms per run = %.3f ms per stream-minute "
               "= %.4f %% of one core; %.3f allocations/frame; %.3f bytes allocated per payload byte\n",
               label[k], mean * 1e3, best[k] * 1e3, mean * 1e3 * 60.0 / media_s,
               mean / media_s * 100.0, (double)allocs[k] / nfr, (double)abytes[k] / payload);
    }
    printf("parts %llu per run; ring at end %.1f MiB (window 12 segments + 2 retained, both renditions)\n",
           (unsigned long long)parts, ring_peak / 1048576.0);
    free(fr);
    free(buf);
    return 0;
}

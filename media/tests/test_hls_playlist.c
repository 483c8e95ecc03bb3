/*
 * Media and master playlists (hls_playlist.c) against the rules of RFC 8216 and the LL-HLS
 * draft (draft-pantos-hls-rfc8216bis): part durations within PART-TARGET, PART-HOLD-BACK of at
 * least three part targets, segments within TARGETDURATION, media and discontinuity sequence
 * arithmetic as the window slides, delta updates, rendition reports, the master playlist.
 */
#include "ax_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/media/hls.h"
#include "hls_test_source.h"

struct fixture {
    media_hls_config_t cfg;
    media_hls_stream_t *s;
    media_hls_rendition_t *v, *a;
    uint32_t vk, ak;
};

static void start(struct fixture *f)
{
    media_hls_rendition_config_t rv = {.name = "720p", .track = MEDIA_TRACK_VIDEO};
    media_hls_rendition_config_t ra = {.name = "audio", .track = MEDIA_TRACK_AUDIO};
    assert_ax_err(media_hls_stream_new(&f->cfg, &f->s), 0);
    assert_ax_err(media_hls_stream_add_rendition(f->s, &rv, &f->v), 0);
    assert_ax_err(media_hls_stream_add_rendition(f->s, &ra, &f->a), 0);
    media_avc_config_t vc = hls_test_avc_config();
    media_aac_config_t ac = hls_test_aac_config();
    assert_ax_err(media_hls_rendition_set_video_config(f->v, &vc), 0);
    assert_ax_err(media_hls_rendition_set_audio_config(f->a, &ac), 0);
}

static int setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof(*f));
    media_hls_config_default(&f->cfg);
    *state = f;
    return 0;
}

/* cmocka checks for leaks when the test function returns: each test ends with stop(). */
static void stop(struct fixture *f)
{
    media_hls_stream_free(f->s);
    f->s = NULL;
}

static int teardown(void **state)
{
    test_free(*state);
    return 0;
}

/* The playlist as a NUL-terminated string (test_malloc'd). */
static char *playlist(media_hls_rendition_t *r, media_hls_skip_t skip)
{
    media_part_t *p;
    assert_ax_err(media_hls_rendition_playlist(r, skip, &p), 0);
    size_t n = media_part_size(p);
    char *s = test_malloc(n + 1);
    media_part_copy_out(p, (uint8_t *)s);
    s[n] = 0;
    media_part_unref(p);
    return s;
}

static char *master(media_hls_stream_t *st)
{
    media_part_t *p;
    assert_ax_err(media_hls_stream_master(st, &p), 0);
    size_t n = media_part_size(p);
    char *s = test_malloc(n + 1);
    media_part_copy_out(p, (uint8_t *)s);
    s[n] = 0;
    media_part_unref(p);
    return s;
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The number after `tag` (first occurrence), or -1. */
static double num_after(const char *text, const char *tag)
{
    const char *p = strstr(text, tag);
    return p == NULL ? -1 : strtod(p + strlen(tag), NULL);
}

/* Checks the rules every media playlist must satisfy; returns the number of EXTINF lines. */
static int check_rules(const char *pl)
{
    double td = num_after(pl, "#EXT-X-TARGETDURATION:");
    double pt = num_after(pl, "PART-TARGET=");
    double phb = num_after(pl, "PART-HOLD-BACK=");
    double skip_until = num_after(pl, "CAN-SKIP-UNTIL=");
    assert_true(td >= 1);
    assert_true(pt > 0);
    assert_true(phb >= 3 * pt - 1e-9);
    assert_true(skip_until >= 6 * td);
    assert_non_null(strstr(pl, "CAN-BLOCK-RELOAD=YES"));
    assert_non_null(strstr(pl, "#EXT-X-MEDIA-SEQUENCE:"));
    assert_non_null(strstr(pl, "#EXT-X-DISCONTINUITY-SEQUENCE:"));
    /* DISCONTINUITY-SEQUENCE comes before the first segment (and before EXT-X-SKIP). */
    const char *ds = strstr(pl, "#EXT-X-DISCONTINUITY-SEQUENCE:");
    const char *first_inf = strstr(pl, "#EXTINF:");
    const char *first_skip = strstr(pl, "#EXT-X-SKIP:");
    if (first_inf != NULL)
        assert_true(ds < first_inf);
    if (first_skip != NULL)
        assert_true(ds < first_skip);
    int n = 0;
    double part_sum = 0;
    int pdt = 0, segs_with_parts_pending = 0;
    const char *line = pl;
    while (*line) {
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        if (strncmp(line, "#EXT-X-PART:DURATION=", 21) == 0) {
            double d = strtod(line + 21, NULL);
            assert_true(d > 0);
            assert_true(d <= pt + 1e-9);
            part_sum += d;
            segs_with_parts_pending = 1;
        } else if (strncmp(line, "#EXTINF:", 8) == 0) {
            double d = strtod(line + 8, NULL);
            assert_true(d > 0);
            assert_true(d <= td + 1e-9);
            if (segs_with_parts_pending)
                assert_true(part_sum > d - 1e-4 && part_sum < d + 1e-4);
            part_sum = 0;
            segs_with_parts_pending = 0;
            assert_true(pdt == n + 1); /* a PROGRAM-DATE-TIME for this segment */
            n++;
        } else if (strncmp(line, "#EXT-X-PROGRAM-DATE-TIME:", 25) == 0) {
            pdt++;
            assert_true(eol - line == 25 + 24);
            assert_true(line[25 + 23] == 'Z');
        }
        line = eol + 1;
    }
    /* Nothing dangles: after the last segment or part come only the hint, reports, ENDLIST. */
    const char *hint = strstr(pl, "#EXT-X-PRELOAD-HINT");
    if (hint != NULL) {
        const char *before = hint - 1;
        while (before > pl && before[-1] != '\n')
            before--;
        /* the line before the hint is a segment URI or an EXT-X-PART line */
        assert_true(strncmp(before, "seg-", 4) == 0 || strncmp(before, "#EXT-X-PART:", 12) == 0);
    }
    return n;
}

/* Every part lies within PART-TARGET, every segment within TARGETDURATION, and each segment's
 * EXTINF equals the sum of its parts. */
static void playlist__durations_within_targets(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_ax_err(hls_test_push_av(f->v, f->a, 0, &f->vk, &f->ak, 11000, 60), 0);
    char *pl = playlist(f->v, MEDIA_HLS_SKIP_NO);
    assert_int_equal(check_rules(pl), 5);
    assert_true(num_after(pl, "PART-TARGET=") <= 0.5);
    test_free(pl);
    pl = playlist(f->a, MEDIA_HLS_SKIP_NO);
    assert_int_equal(check_rules(pl), 5);
    test_free(pl);
    stop(f);
}

/* Timestamps with jitter (29.97 fps rounded to ms, then gaps from dropped frames) still never
 * give a part longer than PART-TARGET or a segment longer than TARGETDURATION. */
static void playlist__jitter_and_gaps_never_exceed_targets(void **state)
{
    struct fixture *f = *state;
    start(f);
    struct hls_test_frame fr;
    for (uint32_t k = 0; k < 900; k++) {
        if (k % 37 == 5 || k % 53 == 9)
            continue; /* dropped frames */
        hls_test_video(&fr, 1000, k, 60, 29970);
        if (k % 11 == 3)
            fr.f.dts += 7; /* late */
        assert_ax_err(media_hls_rendition_push(f->v, &fr.f, HLS_TEST_WALL0 + k * 33), 0);
    }
    char *pl = playlist(f->v, MEDIA_HLS_SKIP_NO);
    assert_true(check_rules(pl) >= 10);
    test_free(pl);
    stop(f);
}

/* A GOP longer than TARGETDURATION is cut at a non-keyframe; the part after the cut is not
 * INDEPENDENT. */
static void playlist__long_gop_is_cut_within_target_duration(void **state)
{
    struct fixture *f = *state;
    start(f);
    uint32_t vk = 0;
    assert_ax_err(hls_test_push_av(f->v, NULL, 0, &vk, NULL, 20000, 300), 0);
    char *pl = playlist(f->v, MEDIA_HLS_SKIP_NO);
    assert_true(check_rules(pl) >= 5);
    media_hls_rendition_stats_t st;
    media_hls_rendition_stats(f->v, &st);
    assert_true(st.forced_cuts >= 4);
    test_free(pl);
    stop(f);
}

/* As the window slides, MEDIA-SEQUENCE is the msn of the first listed segment and the
 * playlist lists window_segments complete segments. */
static void playlist__media_sequence_slides_with_window(void **state)
{
    struct fixture *f = *state;
    f->cfg.window_segments = 4;
    f->cfg.retain_segments = 1;
    start(f);
    for (int round = 1; round <= 6; round++) {
        assert_ax_err(hls_test_push_av(f->v, f->a, 0, &f->vk, &f->ak, 2000 * (round + 4), 60), 0);
        char *pl = playlist(f->v, MEDIA_HLS_SKIP_NO);
        int n = check_rules(pl);
        assert_int_equal(n, 4);
        /* Segments 0 .. round+2 are complete: the one starting at (round+3)*2 s is still
         * open, its last frame's duration unknown until the keyframe at (round+4)*2 s. */
        assert_int_equal((int)num_after(pl, "#EXT-X-MEDIA-SEQUENCE:"), round - 1);
        char want[64];
        snprintf(want, sizeof(want), "seg-%d.m4s\n", round - 1);
        assert_non_null(strstr(pl, want));
        test_free(pl);
    }
    stop(f);
}

/* DISCONTINUITY-SEQUENCE counts the EXT-X-DISCONTINUITY tags that slid out of the window, and
 * timestamps continue monotonically across a publisher restart at 0. */
static void playlist__discontinuity_sequence_arithmetic(void **state)
{
    struct fixture *f = *state;
    f->cfg.window_segments = 3;
    f->cfg.retain_segments = 0;
    start(f);
    /* Three publishes of 4 s each, every one restarting its clock at 0. */
    for (int pub = 0; pub < 3; pub++) {
        uint32_t vk = 0, ak = 0;
        if (pub > 0)
            assert_ax_err(media_hls_stream_discontinuity(f->s), 0);
        assert_ax_err(hls_test_push_av(f->v, f->a, 0, &vk, &ak, 4000, 60), 0);
    }
    assert_ax_err(media_hls_stream_discontinuity(f->s), 0);
    /* Segments: 0 1 | 2 3 | 4 5 (tags on 2 and 4). Window = 3, 4 and 5. */
    char *pl = playlist(f->v, MEDIA_HLS_SKIP_NO);
    assert_int_equal(check_rules(pl), 3);
    assert_int_equal((int)num_after(pl, "#EXT-X-MEDIA-SEQUENCE:"), 3);
    assert_int_equal((int)num_after(pl, "#EXT-X-DISCONTINUITY-SEQUENCE:"), 1);
    assert_int_equal(count(pl, "#EXT-X-DISCONTINUITY\n"), 1);
    test_free(pl);

    /* One more publish: segments 6, 7 (tag on 6); window 5 6 7: sequence 2, one tag. */
    uint32_t vk = 0, ak = 0;
    assert_ax_err(hls_test_push_av(f->v, f->a, 0, &vk, &ak, 4100, 60), 0);
    pl = playlist(f->v, MEDIA_HLS_SKIP_NO);
    assert_int_equal(check_rules(pl), 3);
    assert_int_equal((int)num_after(pl, "#EXT-X-MEDIA-SEQUENCE:"), 5);
    assert_int_equal((int)num_after(pl, "#EXT-X-DISCONTINUITY-SEQUENCE:"), 2);
    assert_int_equal(count(pl, "#EXT-X-DISCONTINUITY\n"), 1);
    test_free(pl);

    /* The audio rendition has the same numbering. */
    pl = playlist(f->a, MEDIA_HLS_SKIP_NO);
    assert_int_equal((int)num_after(pl, "#EXT-X-MEDIA-SEQUENCE:"), 5);
    assert_int_equal((int)num_after(pl, "#EXT-X-DISCONTINUITY-SEQUENCE:"), 2);
    test_free(pl);
    stop(f);
}

/* Output decode times keep increasing across restarts: each segment's PROGRAM-DATE-TIME is
 * re-anchored, and tfdt of the first part after a restart is past the last one before it. */
static void playlist__timestamps_monotonic_across_restart(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_ax_err(hls_test_push_av(f->v, f->a, 5000, &f->vk, &f->ak, 4000, 60), 0);
    assert_ax_err(media_hls_stream_discontinuity(f->s), 0);
    uint32_t vk = 0, ak = 0;
    assert_ax_err(hls_test_push_av(f->v, f->a, 0, &vk, &ak, 4000, 60), 0);
    assert_ax_err(media_hls_stream_end(f->s), 0);
    uint64_t last = 0;
    for (uint64_t msn = 0; msn < 4; msn++) {
        media_hls_resource_t res = {.kind = MEDIA_HLS_RES_PART, .msn = msn, .part = 0};
        media_part_t *p;
        assert_ax_err(media_hls_rendition_get(f->v, &res, &p), 0);
        uint8_t buf[512];
        assert_true(media_part_size(p) > 120);
        assert_true(media_part_iov(p, 0).len <= sizeof(buf));
        memcpy(buf, media_part_iov(p, 0).base, media_part_iov(p, 0).len);
        /* styp(24) moof(8) mfhd(16) traf(8) tfhd(16) tfdt: version at +8, time at +12. */
        const uint8_t *tfdt = buf + 24 + 8 + 16 + 8 + 16;
        assert_memory_equal(tfdt + 4, "tfdt", 4);
        uint64_t t = ((uint64_t)tfdt[12] << 56) | ((uint64_t)tfdt[13] << 48) |
                     ((uint64_t)tfdt[14] << 40) | ((uint64_t)tfdt[15] << 32) |
                     ((uint64_t)tfdt[16] << 24) | ((uint64_t)tfdt[17] << 16) |
                     ((uint64_t)tfdt[18] << 8) | tfdt[19];
        assert_true(msn == 0 || t > last);
        last = t;
        media_part_unref(p);
    }
    char *pl = playlist(f->v, MEDIA_HLS_SKIP_NO);
    check_rules(pl);
    assert_non_null(strstr(pl, "#EXT-X-ENDLIST\n"));
    assert_null(strstr(pl, "PRELOAD-HINT"));
    assert_non_null(strstr(pl, "#EXT-X-PROGRAM-DATE-TIME:2025-11-26T09:15:00.033Z\n"));
    test_free(pl);
    stop(f);
}

/* A delta update (_HLS_skip=YES) replaces the segments older than CAN-SKIP-UNTIL with
 * EXT-X-SKIP and keeps the rest identical; it is version 9. */
static void playlist__delta_update_skips_old_segments(void **state)
{
    struct fixture *f = *state;
    f->cfg.window_segments = 20;
    start(f);
    assert_ax_err(hls_test_push_av(f->v, f->a, 0, &f->vk, &f->ak, 36500, 60), 0);
    char *full = playlist(f->v, MEDIA_HLS_SKIP_NO);
    char *delta = playlist(f->v, MEDIA_HLS_SKIP_YES);
    int n_full = check_rules(full);
    int n_delta = check_rules(delta);
    assert_int_equal(n_full, 18);
    int skipped = (int)num_after(delta, "#EXT-X-SKIP:SKIPPED-SEGMENTS=");
    /* TARGETDURATION 3 -> CAN-SKIP-UNTIL 18 s: segments ending 18 s or more before the edge
     * (36.0 s + the parts of the segment in progress) are skipped. */
    assert_true(skipped >= 8 && skipped <= 10);
    assert_int_equal(n_delta + skipped, n_full);
    assert_non_null(strstr(delta, "#EXT-X-VERSION:9\n"));
    assert_non_null(strstr(full, "#EXT-X-VERSION:6\n"));
    /* The tail is the same text from the first kept segment on. */
    char want[32];
    snprintf(want, sizeof(want), "seg-%d.m4s\n", skipped);
    assert_string_equal(strstr(delta, want), strstr(full, want));
    /* The map is repeated for the kept segments. */
    assert_non_null(strstr(delta, "#EXT-X-MAP:URI=\"init-0.mp4\""));
    test_free(full);
    test_free(delta);
    stop(f);
}

/* Parts are listed for the last three target durations and the segment in progress; a part
 * starting with a keyframe is INDEPENDENT; the preload hint names the next part; each playlist
 * reports the other rendition's last msn and part (part 0 as the previous segment's last). */
static void playlist__parts_hint_and_rendition_reports(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_ax_err(hls_test_push_av(f->v, f->a, 0, &f->vk, &f->ak, 20700, 60), 0);
    char *pl = playlist(f->v, MEDIA_HLS_SKIP_NO);
    check_rules(pl);
    /* Segment 10 (20..22 s) is in progress with parts 0 (20.0-20.5) complete; 20.5-20.7 is open. */
    assert_non_null(strstr(pl, "#EXT-X-PART:DURATION=0.50000,URI=\"part-10.0.m4s\",INDEPENDENT=YES\n"));
    assert_non_null(strstr(pl, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-10.1.m4s\"\n"));
    /* Keyframes every 2 s, parts of 0.5 s: one INDEPENDENT part per segment. */
    assert_int_equal(count(pl, "INDEPENDENT=YES"), count(pl, "#EXTINF") >= 4 ? 5 : 0);
    /* Old segments (over 3 target durations = 9 s back) have no parts listed. */
    assert_null(strstr(pl, "part-0.0.m4s"));
    assert_non_null(strstr(pl, "part-6.0.m4s"));
    media_hls_rendition_stats_t st;
    media_hls_rendition_stats(f->a, &st);
    char want[128];
    if (st.last_part > 0)
        snprintf(want, sizeof(want),
                 "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=%llu,LAST-PART=%lld\n",
                 (unsigned long long)st.last_msn, (long long)st.last_part);
    else /* part 0 is reported as the last part of the segment before (hls.js reads 0 as none) */
        snprintf(want, sizeof(want),
                 "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=%llu,LAST-PART=",
                 (unsigned long long)st.last_msn - 1);
    assert_non_null(strstr(pl, want));
    assert_int_equal(st.last_msn, 10);
    test_free(pl);
    pl = playlist(f->a, MEDIA_HLS_SKIP_NO);
    /* 720p's latest part is 10.0: reported as 9.3, the last of segment 9's four parts, since
     * hls.js takes LAST-PART=0 for "none" and substitutes another level's part index. */
    assert_non_null(strstr(pl, "#EXT-X-RENDITION-REPORT:URI=\"../720p/index.m3u8\",LAST-MSN=9,LAST-PART=3\n"));
    test_free(pl);
    stop(f);
}

/* The same bytes are shared until something changes. */
static void playlist__rendered_once_per_change(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_ax_err(hls_test_push_av(f->v, f->a, 0, &f->vk, &f->ak, 3000, 60), 0);
    media_part_t *p1, *p2, *p3;
    assert_ax_err(media_hls_rendition_playlist(f->v, MEDIA_HLS_SKIP_NO, &p1), 0);
    assert_ax_err(media_hls_rendition_playlist(f->v, MEDIA_HLS_SKIP_NO, &p2), 0);
    assert_ptr_equal(p1, p2);
    assert_ax_err(hls_test_push_av(f->v, f->a, 0, &f->vk, &f->ak, 4000, 60), 0);
    assert_ax_err(media_hls_rendition_playlist(f->v, MEDIA_HLS_SKIP_NO, &p3), 0);
    assert_ptr_not_equal(p1, p3);
    media_part_unref(p1);
    media_part_unref(p2);
    media_part_unref(p3);
    stop(f);
}

/* The master playlist names the audio group and one variant with BANDWIDTH,
 * AVERAGE-BANDWIDTH, CODECS, RESOLUTION and FRAME-RATE. */
static void playlist__master_lists_variant_and_audio_group(void **state)
{
    struct fixture *f = *state;
    media_hls_rendition_t *lo;
    media_hls_rendition_config_t rl = {.name = "360p", .track = MEDIA_TRACK_VIDEO, .bandwidth_hint = 800000};
    assert_ax_err(media_hls_stream_new(&f->cfg, &f->s), 0);
    media_part_t *p;
    assert_ax_err(media_hls_stream_master(f->s, &p), AX_EAGAIN);
    media_hls_stream_free(f->s);
    f->s = NULL;
    start(f);
    assert_ax_err(media_hls_stream_add_rendition(f->s, &rl, &lo), 0);
    assert_ax_err(media_hls_stream_master(f->s, &p), AX_EAGAIN); /* 360p has no config */
    media_avc_config_t vc = hls_test_avc_config();
    vc.width = 640;
    vc.height = 360;
    vc.level_idc = 0x1e;
    assert_ax_err(media_hls_rendition_set_video_config(lo, &vc), 0);
    assert_ax_err(hls_test_push_av(f->v, f->a, 0, &f->vk, &f->ak, 6100, 60), 0);
    char *m = master(f->s);
    assert_non_null(strstr(m, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,"
                              "AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n"));
    assert_non_null(strstr(m, "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\"\n720p/index.m3u8\n"));
    assert_non_null(strstr(m, "CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360"));
    assert_int_equal(count(m, "#EXT-X-STREAM-INF:"), 2);
    /* 720p was measured: peak >= average > 0; 360p announces its hint (+ audio). */
    const char *v = strstr(m, "#EXT-X-STREAM-INF:BANDWIDTH=");
    double bw = strtod(v + 28, NULL);
    double avg = num_after(v, "AVERAGE-BANDWIDTH=");
    assert_true(bw >= avg && avg > 0);
    const char *l = strstr(v + 1, "#EXT-X-STREAM-INF:BANDWIDTH=");
    assert_true(strtod(l + 28, NULL) > 800000);
    test_free(m);
    stop(f);
}

static uint64_t rng_state;
static int rnd_calls;
static void on_rnd_ready(media_hls_waiter_t *w, int status)
{
    (void)w;
    assert_true(status == 0 || status == AX_ECANCELED);
    rnd_calls++;
}
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* Random but plausible input (jittery and repeated timestamps, dropped and reordered frames,
 * odd keyframe spacing, B-frame offsets, restarts, config changes, random blocking requests):
 * every playlist of every rendition keeps every rule, and nothing leaks. Seeded: a failure
 * replays. */
static void playlist__random_input_keeps_every_rule(void **state)
{
    struct fixture *f = *state;
    int checked = 0;
    rnd_calls = 0;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        rng_state = seed * 0x9e3779b97f4a7c15ull;
        f->cfg.part_target_ms = 200 + 100 * rnd(4);
        f->cfg.window_segments = 3 + rnd(6);
        start(f);
        int64_t vt = rnd(100000), at = vt + (int64_t)rnd(300) - 150;
        uint32_t k = 0;
        media_hls_waiter_t w[4];
        memset(w, 0, sizeof(w));
        for (int i = 0; i < 3000; i++) {
            struct hls_test_frame fr;
            uint32_t ev = rnd(1000);
            if (ev == 0) {
                assert_ax_err(media_hls_stream_discontinuity(f->s), 0);
                vt = rnd(5000);
                at = vt;
                k = 0;
                continue;
            }
            if (ev == 1) {
                media_avc_config_t vc = hls_test_avc_config();
                uint8_t rec[sizeof(hls_test_avcc)];
                memcpy(rec, hls_test_avcc, sizeof(rec));
                rec[3] = (uint8_t)(0x1e + rnd(3));
                vc.record = AX_SLICE(rec, sizeof(rec));
                assert_ax_err(media_hls_rendition_set_video_config(f->v, &vc), 0);
                continue;
            }
            if (ev < 40) {
                media_hls_params_t p = {.has_msn = true, .msn = rnd(40), .has_part = rnd(2), .part = rnd(8)};
                media_hls_waiter_t *x = &w[rnd(4)];
                media_hls_waiter_cancel(x);
                int rv = media_hls_rendition_wait_playlist(rnd(2) ? f->v : f->a, x, &p, on_rnd_ready);
                assert_true(rv == 0 || rv == 1 || rv == AX_ETOOFAR);
                continue;
            }
            if (at < vt) {
                hls_test_audio(&fr, 0, 0);
                fr.f.dts = at;
                at += 21 + rnd(3) - (rnd(50) == 0 ? 40 : 0);
                assert_ax_err(media_hls_rendition_push(f->a, &fr.f, HLS_TEST_WALL0 + (uint64_t)i * 20), 0);
            } else {
                hls_test_video(&fr, 0, k, 1 + rnd(90), 30000);
                fr.f.dts = vt;
                fr.f.keyframe = rnd(45) == 0 || k == 0;
                fr.f.cts = fr.f.keyframe ? 66 : (int32_t)rnd(120);
                vt += rnd(20) == 0 ? rnd(200) : 30 + rnd(8) - (rnd(100) == 0 ? 40 : 0);
                k++;
                assert_ax_err(media_hls_rendition_push(f->v, &fr.f, HLS_TEST_WALL0 + (uint64_t)i * 20), 0);
            }
        }
        if (rnd(2))
            assert_ax_err(media_hls_stream_end(f->s), 0);
        media_hls_rendition_t *rs[2] = {f->v, f->a};
        for (int r = 0; r < 2; r++) {
            for (int skip = 0; skip < 2; skip++) {
                media_part_t *p;
                int rv = media_hls_rendition_playlist(rs[r], skip, &p);
                if (rv == AX_EAGAIN)
                    continue;
                assert_ax_err(rv, 0);
                size_t n = media_part_size(p);
                char *text = test_malloc(n + 1);
                media_part_copy_out(p, (uint8_t *)text);
                text[n] = 0;
                media_part_unref(p);
                checked += check_rules(text);
                test_free(text);
            }
        }
        media_part_t *m;
        int rv = media_hls_stream_master(f->s, &m);
        assert_true(rv == 0 || rv == AX_EAGAIN);
        if (rv == 0)
            media_part_unref(m);
        for (int i = 0; i < 4; i++)
            media_hls_waiter_cancel(&w[i]);
        stop(f);
    }
    print_message("random input: %d segments checked, %d blocked requests answered\n", checked, rnd_calls);
    assert_true(checked > 100);
    assert_true(rnd_calls > 10);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(playlist__durations_within_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(playlist__jitter_and_gaps_never_exceed_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(playlist__long_gop_is_cut_within_target_duration, setup, teardown),
        cmocka_unit_test_setup_teardown(playlist__media_sequence_slides_with_window, setup, teardown),
        cmocka_unit_test_setup_teardown(playlist__discontinuity_sequence_arithmetic, setup, teardown),
        cmocka_unit_test_setup_teardown(playlist__timestamps_monotonic_across_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(playlist__delta_update_skips_old_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(playlist__parts_hint_and_rendition_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(playlist__rendered_once_per_change, setup, teardown),
        cmocka_unit_test_setup_teardown(playlist__master_lists_variant_and_audio_group, setup, teardown),
        cmocka_unit_test_setup_teardown(playlist__random_input_keeps_every_rule, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

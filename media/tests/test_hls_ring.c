/*
 * The per-rendition ring (hls_stream.c): blocking requests and their callbacks, the spec's
 * 400 rule, eviction, reference counting, config changes, input errors and out-of-memory.
 */
#include "ax_test.h"

#include <stdio.h>
#include <string.h>

#include "aethex/media/hls.h"
#include "hls_test_source.h"

struct fixture {
    media_hls_config_t cfg;
    media_hls_stream_t *s;
    media_hls_rendition_t *v, *a;
    uint32_t vk, ak;
    int calls;
    int last_status;
    media_hls_waiter_t *cancel_in_cb; /* cancelled by the first callback */
};

static int start(struct fixture *f)
{
    media_hls_rendition_config_t rv = {.name = "720p", .track = MEDIA_TRACK_VIDEO};
    media_hls_rendition_config_t ra = {.name = "audio", .track = MEDIA_TRACK_AUDIO};
    f->v = f->a = NULL;
    int rv_ = media_hls_stream_new(&f->cfg, &f->s);
    if (rv_ == 0)
        rv_ = media_hls_stream_add_rendition(f->s, &rv, &f->v);
    if (rv_ == 0)
        rv_ = media_hls_stream_add_rendition(f->s, &ra, &f->a);
    media_avc_config_t vc = hls_test_avc_config();
    media_aac_config_t ac = hls_test_aac_config();
    if (rv_ == 0)
        rv_ = media_hls_rendition_set_video_config(f->v, &vc);
    if (rv_ == 0)
        rv_ = media_hls_rendition_set_audio_config(f->a, &ac);
    return rv_;
}

static void stop(struct fixture *f)
{
    media_hls_stream_free(f->s);
    f->s = NULL;
}

static int setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof(*f));
    media_hls_config_default(&f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    test_free(*state);
    return 0;
}

static void on_ready(media_hls_waiter_t *w, int status)
{
    struct fixture *f = w->data;
    f->calls++;
    f->last_status = status;
    if (f->cancel_in_cb != NULL) {
        media_hls_waiter_cancel(f->cancel_in_cb);
        f->cancel_in_cb = NULL;
    }
}

static void push_video_until(struct fixture *f, int64_t ms)
{
    assert_ax_err(hls_test_push_av(f->v, NULL, 0, &f->vk, NULL, ms, 60), 0);
}

/* A playlist request for a part not yet there is held, and released (status 0) from inside
 * the push that completes the part; never from inside the wait call. */
static void ring__blocking_reload_released_by_the_part(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    push_video_until(f, 700); /* part 0.0 complete, 0.1 open */
    media_hls_params_t p = {.has_msn = true, .msn = 0, .has_part = true, .part = 1};
    media_hls_waiter_t w = {.data = f};
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w, &p, on_ready), 0);
    assert_int_equal(f->calls, 0);
    push_video_until(f, 990);
    assert_int_equal(f->calls, 0);
    push_video_until(f, 1010); /* the frame at 1000 closes part 0.1 */
    assert_int_equal(f->calls, 1);
    assert_ax_err(f->last_status, 0);
    media_part_t *pl;
    assert_ax_err(media_hls_rendition_playlist(f->v, MEDIA_HLS_SKIP_NO, &pl), 0);
    media_part_unref(pl);
    /* Already satisfied requests answer 1 at once. */
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w, &p, on_ready), 1);
    media_hls_params_t none = {0};
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w, &none, on_ready), 1);
    push_video_until(f, 3000);
    assert_int_equal(f->calls, 1);
    stop(f);
}

/* _HLS_msn alone waits for the whole segment; a later part of the next segment does not
 * count before that. */
static void ring__blocking_reload_on_msn_waits_for_segment(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    push_video_until(f, 1200);
    media_hls_params_t p = {.has_msn = true, .msn = 0};
    media_hls_waiter_t w = {.data = f};
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w, &p, on_ready), 0);
    push_video_until(f, 1990);
    assert_int_equal(f->calls, 0);
    push_video_until(f, 2010);
    assert_int_equal(f->calls, 1);
    assert_ax_err(f->last_status, 0);
    stop(f);
}

/* Bad Request (6.2.5.2): more than two segments past the last one, or more than three parts
 * past the last part; within the limits the request is held. */
static void ring__too_far_ahead_is_refused(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    media_hls_waiter_t w = {.data = f};
    media_hls_params_t p = {.has_msn = true, .msn = 2};
    assert_ax_err(media_hls_rendition_wait_playlist(f->v, &w, &p, on_ready), AX_ETOOFAR);
    push_video_until(f, 2700); /* segment 1 in progress with part 0 */
    p.msn = 4;
    assert_ax_err(media_hls_rendition_wait_playlist(f->v, &w, &p, on_ready), AX_ETOOFAR);
    p.msn = 3;
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w, &p, on_ready), 0);
    media_hls_waiter_cancel(&w);
    p = (media_hls_params_t){.has_msn = true, .msn = 1, .has_part = true, .part = 4};
    assert_ax_err(media_hls_rendition_wait_playlist(f->v, &w, &p, on_ready), AX_ETOOFAR);
    p.part = 3;
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w, &p, on_ready), 0);
    /* A waiter cannot be queued twice. */
    assert_ax_err(media_hls_rendition_wait_playlist(f->v, &w, &p, on_ready), AX_EINVAL);
    media_hls_waiter_cancel(&w);
    media_hls_waiter_cancel(&w); /* idempotent */
    media_hls_rendition_stats_t st;
    media_hls_rendition_stats(f->v, &st);
    assert_int_equal(st.waiters, 0);
    push_video_until(f, 8000);
    assert_int_equal(f->calls, 0);
    stop(f);
}

/* A wait for the preload-hinted part's successor ends with AX_ENOENT when the segment is cut
 * before it (the next frame was a keyframe); a wait for the hinted part itself is served. */
static void ring__hint_overtaken_by_cut_is_never(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    push_video_until(f, 1700); /* segment 0: parts 0..2 complete, part 3 open */
    media_hls_resource_t hinted = {.kind = MEDIA_HLS_RES_PART, .msn = 0, .part = 3};
    media_hls_resource_t beyond = {.kind = MEDIA_HLS_RES_PART, .msn = 0, .part = 4};
    media_part_t *p;
    assert_ax_err(media_hls_rendition_get(f->v, &hinted, &p), AX_EAGAIN);
    assert_ax_err(media_hls_rendition_get(f->v, &beyond, &p), AX_EAGAIN);
    struct fixture g = {0};
    media_hls_waiter_t w1 = {.data = f}, w2 = {.data = &g};
    assert_int_equal(media_hls_rendition_wait_resource(f->v, &w1, &hinted, on_ready), 0);
    assert_int_equal(media_hls_rendition_wait_resource(f->v, &w2, &beyond, on_ready), 0);
    push_video_until(f, 2010);
    assert_int_equal(f->calls, 1);
    assert_ax_err(f->last_status, 0);
    assert_int_equal(g.calls, 1);
    assert_ax_err(g.last_status, AX_ENOENT);
    assert_ax_err(media_hls_rendition_get(f->v, &hinted, &p), 0);
    media_part_unref(p);
    assert_ax_err(media_hls_rendition_get(f->v, &beyond, &p), AX_ENOENT);
    stop(f);
}

/* A callback may cancel another waiter that is ready in the same batch: it is not called. */
static void ring__callback_may_cancel_another_waiter(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    push_video_until(f, 300);
    media_hls_params_t p = {.has_msn = true, .msn = 0, .has_part = true, .part = 0};
    media_hls_waiter_t w1 = {.data = f}, w2 = {.data = f};
    /* Queued w1 then w2: whichever fires first cancels the other. */
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w1, &p, on_ready), 0);
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w2, &p, on_ready), 0);
    f->cancel_in_cb = &w1;
    struct fixture *other = f;
    (void)other;
    push_video_until(f, 600);
    /* The first fired was w2 (new waiters go first) and it cancelled w1, or the first fired
     * was w1 cancelling itself (a no-op) and then w2 fired: either way no double call. */
    assert_true(f->calls == 1 || f->calls == 2);
    media_hls_rendition_stats_t st;
    media_hls_rendition_stats(f->v, &st);
    assert_int_equal(st.waiters, 0);
    stop(f);
}

/* Freeing the stream calls every pending waiter with AX_ECANCELED; ending it answers playlist
 * waiters with 0 (the final playlist) and resource waiters with AX_ENOENT. */
static void ring__end_and_free_release_waiters(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    push_video_until(f, 300);
    struct fixture g = {0}, h = {0};
    media_hls_params_t p = {.has_msn = true, .msn = 1};
    media_hls_resource_t r = {.kind = MEDIA_HLS_RES_SEGMENT, .msn = 1};
    media_hls_waiter_t w1 = {.data = &g}, w2 = {.data = &h}, w3 = {.data = f};
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w1, &p, on_ready), 0);
    assert_int_equal(media_hls_rendition_wait_resource(f->v, &w2, &r, on_ready), 0);
    assert_ax_err(media_hls_stream_end(f->s), 0);
    assert_int_equal(g.calls, 1);
    assert_ax_err(g.last_status, 0);
    assert_int_equal(h.calls, 1);
    assert_ax_err(h.last_status, AX_ENOENT);
    struct hls_test_frame fr;
    hls_test_video(&fr, 0, 99, 60, 30000);
    assert_ax_err(media_hls_rendition_push(f->v, &fr.f, 0), AX_ECLOSED);
    stop(f);

    assert_ax_err(start(f), 0);
    push_video_until(f, 300);
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w3, &p, on_ready), 0);
    f->calls = 0;
    stop(f);
    assert_int_equal(f->calls, 1);
    assert_ax_err(f->last_status, AX_ECANCELED);
}

/* The ring keeps window + retain segments; older ones are gone, future ones too far, the next
 * one is "not yet". */
static void ring__evicts_beyond_window_and_retain(void **state)
{
    struct fixture *f = *state;
    f->cfg.window_segments = 3;
    f->cfg.retain_segments = 1;
    assert_ax_err(start(f), 0);
    push_video_until(f, 20100); /* segments 0..9 complete, 10 in progress */
    media_hls_rendition_stats_t st;
    media_hls_rendition_stats(f->v, &st);
    assert_int_equal(st.segments, 10);
    assert_int_equal(st.last_msn, 9); /* segment 10 has no complete part yet */
    assert_int_equal(st.last_part, 3);
    /* Slots: 3 + 1 + 2 = 6: msn 5..10. */
    assert_int_equal(st.first_msn, 5);
    media_part_t *p;
    media_hls_resource_t r = {.kind = MEDIA_HLS_RES_SEGMENT, .msn = 4};
    assert_ax_err(media_hls_rendition_get(f->v, &r, &p), AX_EGONE);
    r.kind = MEDIA_HLS_RES_PART;
    assert_ax_err(media_hls_rendition_get(f->v, &r, &p), AX_EGONE);
    r = (media_hls_resource_t){.kind = MEDIA_HLS_RES_SEGMENT, .msn = 5};
    assert_ax_err(media_hls_rendition_get(f->v, &r, &p), 0);
    media_part_unref(p);
    r.msn = 10;
    assert_ax_err(media_hls_rendition_get(f->v, &r, &p), AX_EAGAIN);
    r.msn = 11;
    assert_ax_err(media_hls_rendition_get(f->v, &r, &p), AX_EAGAIN);
    r.msn = 12;
    assert_ax_err(media_hls_rendition_get(f->v, &r, &p), AX_ETOOFAR);
    r = (media_hls_resource_t){.kind = MEDIA_HLS_RES_INIT, .init_gen = 1};
    assert_ax_err(media_hls_rendition_get(f->v, &r, &p), AX_ENOENT);
    r.kind = MEDIA_HLS_RES_PLAYLIST;
    assert_ax_err(media_hls_rendition_get(f->v, &r, &p), AX_EINVAL);
    stop(f);
}

/* A segment is the gather list of its parts (same bytes, nothing copied), and a part stays
 * valid after the stream is freed while a viewer holds it. */
static void ring__segments_gather_parts_and_refs_outlive_stream(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    push_video_until(f, 2100);
    media_part_t *seg, *part[4];
    media_hls_resource_t r = {.kind = MEDIA_HLS_RES_SEGMENT, .msn = 0};
    assert_ax_err(media_hls_rendition_get(f->v, &r, &seg), 0);
    size_t total = 0, niov = 0;
    for (uint32_t k = 0; k < 4; k++) {
        media_hls_resource_t pr = {.kind = MEDIA_HLS_RES_PART, .msn = 0, .part = k};
        assert_ax_err(media_hls_rendition_get(f->v, &pr, &part[k]), 0);
        total += media_part_size(part[k]);
        niov += media_part_iov_count(part[k]);
    }
    assert_int_equal(media_part_size(seg), total);
    assert_int_equal(media_part_iov_count(seg), niov);
    /* The segment's first piece is the first part's first piece: the same memory. */
    assert_ptr_equal(media_part_iov(seg, 0).base, media_part_iov(part[0], 0).base);
    stop(f);
    uint8_t *a = test_malloc(total), *b = test_malloc(total);
    media_part_copy_out(seg, a);
    size_t at = 0;
    for (uint32_t k = 0; k < 4; k++) {
        media_part_copy_out(part[k], b + at);
        at += media_part_size(part[k]);
        media_part_unref(part[k]);
    }
    assert_memory_equal(a, b, total);
    assert_memory_equal(a + 4, "styp", 4);
    /* The first sample is presented at the fragment's tfdt: its composition offset is 0 (the
     * source's 33 ms reorder delay moved into decode time), the next one's is 100 - 33 ms. */
    const uint8_t *trun = a + 24 + 8 + 16 + 8 + 16 + 20;
    assert_memory_equal(trun + 4, "trun", 4);
    assert_int_equal(trun[8], 1);
    assert_int_equal(ax_rd_be32(trun + 20 + 12), 0);
    assert_int_equal((int32_t)ax_rd_be32(trun + 20 + 16 + 12), (100 - 33) * 90);
    media_part_unref(seg);
    test_free(a);
    test_free(b);
}

/* A changed codec config makes a new init generation; the next segment starts at a keyframe
 * with EXT-X-DISCONTINUITY and the new EXT-X-MAP; identical bytes change nothing. */
static void ring__config_change_starts_new_init(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    push_video_until(f, 2500);
    media_avc_config_t vc = hls_test_avc_config();
    assert_ax_err(media_hls_rendition_set_video_config(f->v, &vc), 0); /* same bytes */
    uint8_t rec[sizeof(hls_test_avcc)];
    memcpy(rec, hls_test_avcc, sizeof(rec));
    rec[3] = 0x28;
    vc.record = AX_SLICE(rec, sizeof(rec));
    vc.level_idc = 0x28;
    assert_ax_err(media_hls_rendition_set_video_config(f->v, &vc), 0);
    assert_string_equal(media_hls_rendition_codecs(f->v), "avc1.640028");
    push_video_until(f, 4600);
    media_part_t *p;
    assert_ax_err(media_hls_rendition_playlist(f->v, MEDIA_HLS_SKIP_NO, &p), 0);
    char *text = test_calloc(1, media_part_size(p) + 1);
    media_part_copy_out(p, (uint8_t *)text);
    media_part_unref(p);
    const char *d = strstr(text, "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n");
    assert_non_null(d);
    assert_non_null(strstr(text, "#EXT-X-MAP:URI=\"init-0.mp4\"\n"));
    assert_true(strstr(d, "part-2.0.m4s") != NULL); /* the segment at 4 s */
    test_free(text);
    media_hls_resource_t r = {.kind = MEDIA_HLS_RES_INIT, .init_gen = 0};
    assert_ax_err(media_hls_rendition_get(f->v, &r, &p), 0);
    media_part_unref(p);
    r.init_gen = 1;
    assert_ax_err(media_hls_rendition_get(f->v, &r, &p), 0);
    media_part_unref(p);
    stop(f);
}

/* With a video rendition that gets no frames, audio starts on its own after two target
 * durations; an audio-only stream cuts segments by time. */
static void ring__audio_without_video_still_segments(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    assert_ax_err(hls_test_push_av(NULL, f->a, 0, NULL, &f->ak, 12000, 60), 0);
    media_hls_rendition_stats_t st;
    media_hls_rendition_stats(f->a, &st);
    assert_true(st.frames_dropped > 0);
    assert_true(st.segments >= 2);
    stop(f);

    media_hls_rendition_config_t ra = {.name = "a", .track = MEDIA_TRACK_AUDIO};
    assert_ax_err(media_hls_stream_new(&f->cfg, &f->s), 0);
    assert_ax_err(media_hls_stream_add_rendition(f->s, &ra, &f->a), 0);
    media_aac_config_t ac = hls_test_aac_config();
    assert_ax_err(media_hls_rendition_set_audio_config(f->a, &ac), 0);
    f->ak = 0;
    assert_ax_err(hls_test_push_av(NULL, f->a, 0, NULL, &f->ak, 10000, 60), 0);
    media_hls_rendition_stats(f->a, &st);
    assert_int_equal(st.frames_dropped, 0);
    assert_int_equal(st.segments, 4);
    media_part_t *m;
    assert_ax_err(media_hls_stream_master(f->s, &m), 0);
    char text[512] = {0};
    assert_true(media_part_size(m) < sizeof(text));
    media_part_copy_out(m, (uint8_t *)text);
    media_part_unref(m);
    assert_non_null(strstr(text, "CODECS=\"mp4a.40.2\"\na/index.m3u8\n"));
    stop(f);
}

/* Bad calls and bad input get error codes, never a crash. */
static void ring__bad_input_is_refused(void **state)
{
    struct fixture *f = *state;
    media_hls_config_t bad = f->cfg;
    bad.part_target_ms = 50;
    assert_ax_err(media_hls_stream_new(&bad, &f->s), AX_EINVAL);
    assert_null(f->s);
    bad = f->cfg;
    bad.target_duration_s = 1; /* shorter than the 2 s segment target */
    assert_ax_err(media_hls_stream_new(&bad, &f->s), AX_EINVAL);
    bad = f->cfg;
    bad.part_hold_back_ms = 1000; /* < 3 x 500 */
    assert_ax_err(media_hls_stream_new(&bad, &f->s), AX_EINVAL);

    f->cfg.limits.max_renditions = 2;
    f->cfg.limits.max_waiters = 1;
    assert_ax_err(start(f), 0);
    media_hls_rendition_t *x;
    media_hls_rendition_config_t rc = {.name = "720p", .track = MEDIA_TRACK_VIDEO};
    assert_ax_err(media_hls_stream_add_rendition(f->s, &rc, &x), AX_EEXIST);
    rc.name = "a/b";
    assert_ax_err(media_hls_stream_add_rendition(f->s, &rc, &x), AX_EINVAL);
    rc.name = "other";
    assert_ax_err(media_hls_stream_add_rendition(f->s, &rc, &x), AX_ENOSPC);
    assert_ptr_equal(media_hls_stream_rendition(f->s, AX_SLICE_LIT("audio")), f->a);
    assert_null(media_hls_stream_rendition(f->s, AX_SLICE_LIT("aud")));

    struct hls_test_frame fr;
    hls_test_video(&fr, 0, 0, 60, 30000);
    assert_ax_err(media_hls_rendition_push(f->a, &fr.f, 0), AX_EINVAL);
    media_aac_config_t ac = hls_test_aac_config();
    assert_ax_err(media_hls_rendition_set_audio_config(f->v, &ac), AX_EINVAL);
    ac.sample_rate = 0;
    assert_ax_err(media_hls_rendition_set_audio_config(f->a, &ac), AX_EBADDATA);
    media_avc_config_t vc = hls_test_avc_config();
    vc.nal_length_size = 3;
    assert_ax_err(media_hls_rendition_set_video_config(f->v, &vc), AX_EBADDATA);
    static uint8_t big[5u << 20];
    media_frame_t huge = fr.f;
    huge.data = AX_SLICE(big, sizeof(big));
    assert_ax_err(media_hls_rendition_push(f->v, &huge, 0), AX_EMSGSIZE);

    /* Frames before a keyframe and frames going backwards are dropped, not errors. */
    hls_test_video(&fr, 0, 1, 60, 30000);
    assert_ax_err(media_hls_rendition_push(f->v, &fr.f, 0), 0);
    push_video_until(f, 1000);
    hls_test_video(&fr, 0, 3, 60, 30000);
    assert_ax_err(media_hls_rendition_push(f->v, &fr.f, 0), 0);
    media_hls_rendition_stats_t st;
    media_hls_rendition_stats(f->v, &st);
    assert_int_equal(st.frames_dropped, 2);

    media_hls_params_t p = {.has_msn = true, .msn = 1};
    media_hls_waiter_t w1 = {.data = f}, w2 = {.data = f};
    assert_int_equal(media_hls_rendition_wait_playlist(f->v, &w1, &p, on_ready), 0);
    assert_ax_err(media_hls_rendition_wait_playlist(f->v, &w2, &p, on_ready), AX_ENOSPC);
    media_hls_waiter_cancel(&w1);
    stop(f);

    media_hls_rendition_config_t rv = {.name = "v", .track = MEDIA_TRACK_VIDEO};
    assert_ax_err(media_hls_stream_new(&f->cfg, &f->s), 0);
    assert_ax_err(media_hls_stream_add_rendition(f->s, &rv, &f->v), 0);
    hls_test_video(&fr, 0, 0, 60, 30000);
    assert_ax_err(media_hls_rendition_push(f->v, &fr.f, 0), AX_EBADSTATE);
    media_part_t *m;
    assert_ax_err(media_hls_stream_master(f->s, &m), AX_EAGAIN);
    assert_ax_err(media_hls_rendition_playlist(f->v, MEDIA_HLS_SKIP_NO, &m), AX_EAGAIN);
    stop(f);
}

/* Setting up a stream fails cleanly with AX_ENOMEM at every allocation. */
static void ring__setup_out_of_memory_sweep(void **state)
{
    struct fixture *f = *state;
    AX_OOM_SWEEP(start(f), stop(f));
}

/* Allocation failures while frames flow lose frames, never the rendition: afterwards pushing
 * works again, the playlist obeys its rules, and nothing leaks. */
static void ring__push_out_of_memory_loses_frames_only(void **state)
{
    struct fixture *f = *state;
    for (long n = 0; n < 40; n++) {
        assert_ax_err(start(f), 0);
        f->vk = f->ak = 0;
        assert_ax_err(hls_test_push_av(f->v, f->a, 0, &f->vk, &f->ak, 2300, 60), 0);
        ax_fail_after(n);
        for (int i = 0; i < 120; i++) {
            int rv = hls_test_push_av(f->v, f->a, 0, &f->vk, &f->ak, 2300 + 20 * (i + 1), 60);
            if (rv != 0) {
                assert_ax_err(rv, AX_ENOMEM);
                /* skip the failed frame */
                struct hls_test_frame fv, fa;
                hls_test_video(&fv, 0, f->vk, 60, 30000);
                hls_test_audio(&fa, 0, f->ak);
                if (fv.f.dts <= fa.f.dts)
                    f->vk++;
                else
                    f->ak++;
            }
        }
        ax_fail_after(-1);
        assert_ax_err(hls_test_push_av(f->v, f->a, 0, &f->vk, &f->ak, 14100, 60), 0);
        media_part_t *p;
        assert_ax_err(media_hls_rendition_playlist(f->v, MEDIA_HLS_SKIP_NO, &p), 0);
        media_part_unref(p);
        media_hls_rendition_stats_t st;
        media_hls_rendition_stats(f->v, &st);
        assert_true(st.segments >= 4);
        stop(f);
    }
}

/* Pushes video frames [k0, k1) to `v`, and to `rung` too from frame `rung_from` on (the
 * same timestamps and keyframes, as a transcoded rung gets them). */
static void push_lead_and_rung(struct fixture *f, media_hls_rendition_t *rung, uint32_t k0,
                               uint32_t k1, uint32_t rung_from)
{
    for (uint32_t k = k0; k < k1; k++) {
        struct hls_test_frame fr;
        hls_test_video(&fr, 0, k, 60, 30000);
        assert_ax_err(media_hls_rendition_push(f->v, &fr.f, HLS_TEST_WALL0 + (uint64_t)fr.f.dts), 0);
        if (rung != NULL && k >= rung_from)
            assert_ax_err(media_hls_rendition_push(rung, &fr.f, HLS_TEST_WALL0 + (uint64_t)fr.f.dts),
                          0);
    }
}

static media_hls_rendition_t *add_rung(struct fixture *f, const char *name)
{
    media_hls_rendition_config_t rc = {.name = name, .track = MEDIA_TRACK_VIDEO};
    media_hls_rendition_t *r = NULL;
    assert_ax_err(media_hls_stream_add_rendition(f->s, &rc, &r), 0);
    media_avc_config_t vc = hls_test_avc_config();
    vc.width = 640;
    vc.height = 360;
    assert_ax_err(media_hls_rendition_set_video_config(r, &vc), 0);
    return r;
}

static bool part_contains(media_part_t *p, const char *needle)
{
    size_t n = media_part_size(p);
    char *text = test_malloc(n + 1);
    media_part_copy_out(p, (uint8_t *)text);
    text[n] = '\0';
    bool found = strstr(text, needle) != NULL;
    test_free(text);
    return found;
}

/* A rung that stops for good (the transcoder dropped it) is withdrawn: what it produced stays
 * fetchable, its playlist and the media it will never get answer "no such thing" (its waiters
 * too, at once), the master and the other renditions' reports leave it out, and the rest of
 * the stream carries on. Removing it frees the name; the lead cannot be removed. */
static void ring__rendition_end_withdraws_it(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    media_hls_rendition_t *rung = add_rung(f, "360p");
    push_lead_and_rung(f, rung, 0, 100, 0); /* segment 0 complete, 1 in progress */
    media_part_t *pl;
    assert_ax_err(media_hls_stream_master(f->s, &pl), 0);
    assert_true(part_contains(pl, "360p/index.m3u8"));
    media_part_unref(pl);

    struct fixture g = {0}, h = {0};
    media_hls_params_t p = {.has_msn = true, .msn = 2};
    media_hls_resource_t next = {.kind = MEDIA_HLS_RES_SEGMENT, .msn = 2};
    media_hls_waiter_t w1 = {.data = &g}, w2 = {.data = &h};
    assert_int_equal(media_hls_rendition_wait_playlist(rung, &w1, &p, on_ready), 0);
    assert_int_equal(media_hls_rendition_wait_resource(rung, &w2, &next, on_ready), 0);
    assert_ax_err(media_hls_rendition_end(rung), 0);
    assert_true(media_hls_rendition_ended(rung));
    assert_int_equal(g.calls, 1);
    assert_ax_err(g.last_status, AX_ENOENT);
    assert_int_equal(h.calls, 1);
    assert_ax_err(h.last_status, AX_ENOENT);
    assert_ax_err(media_hls_rendition_end(rung), 0); /* twice is fine */

    /* What it made is still there, the segment in progress was closed. */
    media_hls_resource_t seg = {.kind = MEDIA_HLS_RES_SEGMENT, .msn = 1};
    assert_ax_err(media_hls_rendition_get(rung, &seg, &pl), 0);
    media_part_unref(pl);
    assert_ax_err(media_hls_rendition_get(rung, &next, &pl), AX_ENOENT);
    assert_ax_err(media_hls_rendition_playlist(rung, MEDIA_HLS_SKIP_NO, &pl), AX_ENOENT);
    media_hls_params_t now = {0};
    assert_ax_err(media_hls_rendition_wait_playlist(rung, &w1, &now, on_ready), AX_ENOENT);
    struct hls_test_frame fr;
    hls_test_video(&fr, 0, 100, 60, 30000);
    assert_ax_err(media_hls_rendition_push(rung, &fr.f, HLS_TEST_WALL0), AX_ECLOSED);

    /* The others go on and no longer mention it. */
    push_lead_and_rung(f, NULL, 100, 200, 0);
    assert_ax_err(media_hls_stream_master(f->s, &pl), 0);
    assert_false(part_contains(pl, "360p"));
    assert_true(part_contains(pl, "720p/index.m3u8"));
    media_part_unref(pl);
    assert_ax_err(media_hls_rendition_playlist(f->v, MEDIA_HLS_SKIP_NO, &pl), 0);
    assert_false(part_contains(pl, "360p"));
    media_part_unref(pl);
    assert_ax_err(media_hls_stream_discontinuity(f->s), 0);
    assert_ax_err(media_hls_rendition_playlist(rung, MEDIA_HLS_SKIP_NO, &pl), AX_ENOENT);

    /* Removal: waiters are told, the name is free again, the lead stays. */
    assert_int_equal(media_hls_stream_rendition_count(f->s), 3);
    assert_ax_err(media_hls_stream_remove_rendition(f->s, f->v), AX_EBUSY);
    assert_ax_err(media_hls_stream_remove_rendition(f->s, rung), 0);
    assert_int_equal(media_hls_stream_rendition_count(f->s), 2);
    assert_null(media_hls_stream_rendition(f->s, AX_SLICE("360p", 4)));
    assert_ptr_equal(media_hls_stream_rendition_at(f->s, 1), f->a);
    assert_ax_err(media_hls_stream_remove_rendition(f->s, rung), AX_ENOENT);
    (void)add_rung(f, "360p");
    stop(f);
}

/* A rung added mid-stream (a publisher's second session gets a fresh transcoder) numbers its
 * segments like the lead: its first segment gets the number and discontinuity sequence of
 * the lead segment that starts at the same time. */
static void ring__late_rendition_takes_lead_numbers(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(start(f), 0);
    push_lead_and_rung(f, NULL, 0, 150, 0); /* segments 0..1 complete, 2 (from 4 s) open */
    assert_ax_err(media_hls_stream_discontinuity(f->s), 0);
    push_lead_and_rung(f, NULL, 150, 180, 0); /* frame 150 is no keyframe: dropped */
    media_hls_rendition_t *rung = add_rung(f, "360p-b");
    push_lead_and_rung(f, rung, 180, 400, 180); /* keyframes at 180, 240, ... */
    media_hls_rendition_stats_t lv, rv;
    media_hls_rendition_stats(f->v, &lv);
    media_hls_rendition_stats(rung, &rv);
    assert_true(rv.first_msn > 0);
    assert_int_equal(rv.last_msn, lv.last_msn);
    assert_int_equal(rv.last_part, lv.last_part);
    assert_int_equal(rv.discontinuity_seq, 1);
    media_part_t *pl;
    assert_ax_err(media_hls_rendition_playlist(rung, MEDIA_HLS_SKIP_NO, &pl), 0);
    char want[64];
    snprintf(want, sizeof want, "#EXT-X-MEDIA-SEQUENCE:%llu\n", (unsigned long long)rv.first_msn);
    assert_true(part_contains(pl, want));
    assert_true(part_contains(pl, "#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
    media_part_unref(pl);
    /* The lead's segment with that number starts where the rung's does. */
    media_hls_resource_t seg = {.kind = MEDIA_HLS_RES_SEGMENT, .msn = rv.first_msn};
    media_part_t *a, *b;
    assert_ax_err(media_hls_rendition_get(f->v, &seg, &a), 0);
    assert_ax_err(media_hls_rendition_get(rung, &seg, &b), 0);
    assert_int_equal(media_part_size(a), media_part_size(b));
    media_part_unref(a);
    media_part_unref(b);
    stop(f);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ring__blocking_reload_released_by_the_part, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__blocking_reload_on_msn_waits_for_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__too_far_ahead_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__hint_overtaken_by_cut_is_never, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__callback_may_cancel_another_waiter, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__end_and_free_release_waiters, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__rendition_end_withdraws_it, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__late_rendition_takes_lead_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__evicts_beyond_window_and_retain, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__segments_gather_parts_and_refs_outlive_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__config_change_starts_new_init, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__audio_without_video_still_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__bad_input_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__setup_out_of_memory_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(ring__push_out_of_memory_loses_frames_only, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

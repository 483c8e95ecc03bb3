/*
 * Synthetic frames for the packager's unit tests: 30 fps video with millisecond timestamps
 * (as RTMP delivers them: 0, 33, 67, 100, ...), a keyframe every `gop` frames, B-frame-like
 * composition offsets, and 48 kHz AAC frames. Payloads are fake AVCC NAL units whose bytes
 * encode the frame number, so a test can find each frame in the output.
 */
#ifndef AETHEX_HLS_TEST_SOURCE_H
#define AETHEX_HLS_TEST_SOURCE_H

#include <stdint.h>
#include <string.h>

#include "aethex/media/hls.h"

#define HLS_TEST_WALL0 UINT64_C(1764148500000) /* 2025-11-26T09:15:00.000Z */

static const uint8_t hls_test_avcc[] = {0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x04,
                                        0x67, 0x64, 0x00, 0x1f, 0x01, 0x00, 0x02, 0x68, 0xee};
static const uint8_t hls_test_asc[] = {0x11, 0x90};

static inline media_avc_config_t hls_test_avc_config(void)
{
    media_avc_config_t c;
    memset(&c, 0, sizeof(c));
    c.profile_idc = 0x64;
    c.profile_compat = 0x00;
    c.level_idc = 0x1f;
    c.nal_length_size = 4;
    c.width = 1280;
    c.height = 720;
    c.chroma_format_idc = 1;
    c.bit_depth_luma = 8;
    c.fps_num = 30;
    c.fps_den = 1;
    c.record = AX_SLICE(hls_test_avcc, sizeof(hls_test_avcc));
    c.sps[0] = AX_SLICE(hls_test_avcc + 8, 4);
    c.nsps = 1;
    c.pps[0] = AX_SLICE(hls_test_avcc + 15, 2);
    c.npps = 1;
    return c;
}

static inline media_aac_config_t hls_test_aac_config(void)
{
    media_aac_config_t c;
    memset(&c, 0, sizeof(c));
    c.object_type = 2;
    c.sampling_index = 3;
    c.sample_rate = 48000;
    c.channels = 2;
    c.asc = AX_SLICE(hls_test_asc, sizeof(hls_test_asc));
    return c;
}

struct hls_test_frame {
    media_frame_t f;
    uint8_t buf[64];
};

/* Video frame `k` at `fps_x1000`/1000 fps starting at `t0` ms. */
static inline void hls_test_video(struct hls_test_frame *t, int64_t t0, uint32_t k, uint32_t gop,
                                  uint32_t fps_x1000)
{
    uint32_t size = 16 + (k % 7);
    memset(t, 0, sizeof(*t));
    t->buf[0] = 0;
    t->buf[1] = 0;
    t->buf[2] = 0;
    t->buf[3] = (uint8_t)(size - 4);
    t->buf[4] = (k % gop == 0) ? 0x65 : 0x41;
    memcpy(t->buf + 5, &k, 4);
    t->f.track = MEDIA_TRACK_VIDEO;
    t->f.dts = t0 + (int64_t)(((uint64_t)k * 1000000 + fps_x1000 / 2) / fps_x1000);
    t->f.cts = (k % gop == 0) ? 33 : (k % 3 == 1 ? 100 : 0);
    t->f.keyframe = k % gop == 0;
    t->f.data = AX_SLICE(t->buf, size);
}

/* AAC frame `k` (1024 samples at 48 kHz) starting at `t0` ms. */
static inline void hls_test_audio(struct hls_test_frame *t, int64_t t0, uint32_t k)
{
    memset(t, 0, sizeof(*t));
    t->buf[0] = 0x21;
    memcpy(t->buf + 1, &k, 4);
    t->f.track = MEDIA_TRACK_AUDIO;
    t->f.dts = t0 + (int64_t)(((uint64_t)k * 1024 * 1000 + 24000) / 48000);
    t->f.keyframe = true;
    t->f.data = AX_SLICE(t->buf, 12);
}

/*
 * Pushes `ms` milliseconds of interleaved audio+video (by dts) starting at source time `t0`
 * with frame counters *vk / *ak. Returns the first error or 0.
 */
static inline int hls_test_push_av(media_hls_rendition_t *v, media_hls_rendition_t *a, int64_t t0,
                                   uint32_t *vk, uint32_t *ak, int64_t ms, uint32_t gop)
{
    struct hls_test_frame fv, fa;
    for (;;) {
        if (v != NULL)
            hls_test_video(&fv, t0, *vk, gop, 30000);
        if (a != NULL)
            hls_test_audio(&fa, t0, *ak);
        bool take_video = a == NULL || (v != NULL && fv.f.dts <= fa.f.dts);
        struct hls_test_frame *f = take_video ? &fv : &fa;
        if (f->f.dts - t0 >= ms)
            return 0;
        int rv = media_hls_rendition_push(take_video ? v : a, &f->f,
                                          HLS_TEST_WALL0 + (uint64_t)(f->f.dts - t0));
        if (rv != 0)
            return rv;
        if (take_video)
            (*vk)++;
        else
            (*ak)++;
    }
}

#endif /* AETHEX_HLS_TEST_SOURCE_H */

/*
 * fuzz.rtmp_chunk: the whole publishing session after a valid handshake.
 *
 * The input is what a client sends after C0+C1+C2 (the fuzzer supplies those): chunks,
 * commands, media. Each input runs twice, fed whole and fed one byte at a time, and both
 * runs must agree: same return code, same final state, same events (a hash of every
 * callback and its arguments). Also checked: an error leaves the session CLOSED with an
 * errmsg, and a closed session refuses more input with AX_ECLOSED.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/common/error.h"
#include "aethex/media/rtmp_session.h"

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond))                                                                        \
            __builtin_trap();                                                               \
    } while (0)

struct run {
    uint64_t hash;
    int events;
};

static void mix(struct run *r, uint64_t v)
{
    r->hash = (r->hash ^ v) * 0x100000001b3ull;
    r->events++;
}

static void mix_slice(struct run *r, ax_slice_t s)
{
    mix(r, s.len);
    for (size_t i = 0; i < s.len; i++)
        mix(r, s.base[i]);
}

static struct run *R(media_rtmp_session_t *s)
{
    return media_rtmp_session_data(s);
}

static int on_connect(media_rtmp_session_t *s, const media_rtmp_connect_info_t *i)
{
    mix(R(s), 1);
    mix_slice(R(s), i->app);
    return 0;
}

static void on_publish(media_rtmp_session_t *s, ax_slice_t app, ax_slice_t name)
{
    mix(R(s), 2);
    mix_slice(R(s), app);
    mix_slice(R(s), name);
    /* Exercise both answers, decided by the key's first byte. */
    if (name.base[0] & 1)
        media_rtmp_session_publish_accept(s);
    else if (name.base[0] & 2)
        media_rtmp_session_publish_reject(s, AX_EBADKEY, "no");
}

static void on_metadata(media_rtmp_session_t *s, const media_rtmp_metadata_t *md)
{
    mix(R(s), 3);
    uint64_t bits; /* the double's bits: a cast of a huge width would be undefined */
    memcpy(&bits, &md->width, sizeof bits);
    mix(R(s), bits);
    mix_slice(R(s), md->raw);
}

static void on_video_config(media_rtmp_session_t *s, const media_avc_config_t *c)
{
    mix(R(s), 4);
    mix(R(s), c->nal_length_size);
    mix_slice(R(s), c->record);
}

static void on_audio_config(media_rtmp_session_t *s, const media_aac_config_t *c)
{
    mix(R(s), 5);
    mix(R(s), c->sample_rate);
}

static void on_frame(media_rtmp_session_t *s, const media_frame_t *f)
{
    mix(R(s), 6);
    mix(R(s), (uint64_t)f->dts);
    mix(R(s), (uint64_t)f->cts);
    mix(R(s), f->keyframe);
    mix_slice(R(s), f->data);
}

static void on_unpublish(media_rtmp_session_t *s)
{
    mix(R(s), 7);
}

static int run(const uint8_t *data, size_t size, size_t step, struct run *r,
               media_rtmp_state_t *st)
{
    media_rtmp_session_config_t cfg;
    media_rtmp_session_config_default(&cfg);
    cfg.limits.max_message_len = 1 << 16;
    cfg.limits.max_pending_bytes = 1 << 16;
    cfg.limits.max_output_bytes = 1 << 24; /* both runs must see the same limits */
    cfg.cb = (media_rtmp_callbacks_t){on_connect,      on_publish,      on_metadata,
                                      on_video_config, on_audio_config, on_frame,
                                      on_unpublish};
    cfg.data = r;
    media_rtmp_session_t *s;
    CHECK(media_rtmp_session_new(&cfg, &s) == 0);

    static uint8_t hs[1 + 1536 + 1536];
    memset(hs, 0, sizeof hs);
    hs[0] = 3;
    CHECK(media_rtmp_session_feed(s, hs, sizeof hs) == 0);
    CHECK(media_rtmp_session_state(s) == MEDIA_RTMP_STATE_CONNECTING);
    media_rtmp_session_output_consume(s, media_rtmp_session_output(s).len);

    int rv = 0;
    for (size_t off = 0; off < size && rv == 0; off += step) {
        size_t n = size - off < step ? size - off : step;
        rv = media_rtmp_session_feed(s, data + off, n);
        CHECK(media_rtmp_session_output(s).len <= cfg.limits.max_output_bytes);
        media_rtmp_session_output_consume(s, media_rtmp_session_output(s).len);
    }
    *st = media_rtmp_session_state(s);
    if (rv != 0) {
        CHECK(rv < 0);
        CHECK(*st == MEDIA_RTMP_STATE_CLOSED);
        CHECK(media_rtmp_session_errmsg(s)[0] != '\0');
        CHECK(media_rtmp_session_feed(s, hs, 1) == AX_ECLOSED);
    } else {
        CHECK(*st != MEDIA_RTMP_STATE_CLOSED);
    }
    media_rtmp_session_free(s);
    return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole = {0xcbf29ce484222325ull, 0}, bytes = {0xcbf29ce484222325ull, 0};
    media_rtmp_state_t st1, st2;
    int rv1 = run(data, size, size ? size : 1, &whole, &st1);
    int rv2 = run(data, size, 1, &bytes, &st2);
    CHECK(rv1 == rv2);
    CHECK(st1 == st2);
    CHECK(whole.events == bytes.events && whole.hash == bytes.hash);
    return 0;
}

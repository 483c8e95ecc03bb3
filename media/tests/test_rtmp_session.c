#include "ax_test.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "aethex/common/util.h"
#include "aethex/media/amf0.h"
#include "aethex/media/rtmp_session.h"
#include "rtmp_internal.h"

/* A real 64x48 High-profile SPS and its PPS (libx264), in an AVCDecoderConfigurationRecord
 * with 4-byte NAL lengths. */
static const uint8_t AVC_RECORD[] = {
    0x01, 0x64, 0x00, 0x0a, 0xff, 0xe1, 0x00, 0x18, 0x67, 0x64, 0x00, 0x0a, 0xac, 0xd9,
    0x44, 0x7b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0,
    0xf1, 0x22, 0x59, 0x60, 0x01, 0x00, 0x04, 0x68, 0xef, 0x8f, 0xcb,
};
/* AAC-LC, 48 kHz, stereo. */
static const uint8_t AAC_ASC[] = {0x11, 0x90};

#define MAX_FRAMES 32
#define MAX_REPLIES 32

enum on_publish_action { ACCEPT, REJECT_BADKEY, WAIT, STOP };

struct frame_rec {
    media_track_t track;
    int64_t dts;
    int32_t cts;
    bool keyframe;
    size_t len;
    uint8_t first;
};

struct reply {
    uint8_t type;
    uint32_t msid;
    uint32_t value;       /* control messages: the first 32-bit field; user control: event */
    uint32_t value2;      /* user control: the 32-bit argument */
    char name[32];        /* commands: the command name */
    double txn;
    double number;        /* the first number after the command object (createStream) */
    char code[64];        /* the info object's code */
    char desc[160];       /* and description */
};

struct fixture {
    media_rtmp_session_t *s;
    media_rtmp_session_config_t cfg;
    ax_buf_t in;   /* what the "client" sends */
    ax_buf_t amf;  /* scratch for building commands */
    uint32_t client_chunk;
    struct media_rtmp__chunk_reader out_rd;
    bool hs_seen;
    enum on_publish_action action;
    bool oom; /* an allocation may fail: callbacks tolerate errors */
    int connects, publishes, unpublishes, metadatas, vconfigs, aconfigs;
    int connect_rv;
    char app[32], key[64];
    media_rtmp_metadata_t md;
    char md_raw_head[16];
    media_avc_config_t vcfg;
    media_aac_config_t acfg;
    struct frame_rec frames[MAX_FRAMES];
    int nframes;
    struct reply replies[MAX_REPLIES];
    int nreplies;
};

static void copy_slice(char *dst, size_t cap, ax_slice_t s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n > 0)
        memcpy(dst, s.base, n);
    dst[n] = '\0';
}

/* ---- callbacks --------------------------------------------------------------------------- */

static struct fixture *fx(media_rtmp_session_t *s)
{
    return media_rtmp_session_data(s);
}

static int on_connect(media_rtmp_session_t *s, const media_rtmp_connect_info_t *info)
{
    struct fixture *f = fx(s);
    f->connects++;
    copy_slice(f->app, sizeof f->app, info->app);
    return f->connect_rv;
}

static void on_publish(media_rtmp_session_t *s, ax_slice_t app, ax_slice_t name)
{
    struct fixture *f = fx(s);
    (void)app;
    f->publishes++;
    copy_slice(f->key, sizeof f->key, name);
    assert_int_equal(media_rtmp_session_state(s), MEDIA_RTMP_STATE_PUBLISH_PENDING);
    switch (f->action) {
    case ACCEPT: {
        int rv = media_rtmp_session_publish_accept(s);
        if (!f->oom)
            assert_ax_err(rv, 0);
        break;
    }
    case REJECT_BADKEY:
        assert_ax_err(media_rtmp_session_publish_reject(s, AX_EBADKEY, "unknown stream key"), 0);
        break;
    case STOP:
        assert_ax_err(media_rtmp_session_stop(s), 0);
        break;
    case WAIT:
        break;
    }
}

static void on_metadata(media_rtmp_session_t *s, const media_rtmp_metadata_t *md)
{
    struct fixture *f = fx(s);
    f->metadatas++;
    f->md = *md;
    f->md.encoder = AX_SLICE(NULL, 0);
    f->md.raw = AX_SLICE(NULL, md->raw.len);
    memcpy(f->md_raw_head, md->raw.base, md->raw.len < 16 ? md->raw.len : 16);
}

static void on_video_config(media_rtmp_session_t *s, const media_avc_config_t *cfg)
{
    struct fixture *f = fx(s);
    f->vconfigs++;
    f->vcfg = *cfg;
}

static void on_audio_config(media_rtmp_session_t *s, const media_aac_config_t *cfg)
{
    struct fixture *f = fx(s);
    f->aconfigs++;
    f->acfg = *cfg;
}

static void on_frame(media_rtmp_session_t *s, const media_frame_t *fr)
{
    struct fixture *f = fx(s);
    assert_true(f->nframes < MAX_FRAMES);
    f->frames[f->nframes++] = (struct frame_rec){
        .track = fr->track,
        .dts = fr->dts,
        .cts = fr->cts,
        .keyframe = fr->keyframe,
        .len = fr->data.len,
        .first = fr->data.len ? fr->data.base[0] : 0,
    };
}

static void on_unpublish(media_rtmp_session_t *s)
{
    fx(s)->unpublishes++;
}

/* ---- fixture ------------------------------------------------------------------------------- */

static int setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof *f);
    media_rtmp_session_config_default(&f->cfg);
    f->cfg.cb = (media_rtmp_callbacks_t){
        .on_connect = on_connect,
        .on_publish = on_publish,
        .on_metadata = on_metadata,
        .on_video_config = on_video_config,
        .on_audio_config = on_audio_config,
        .on_frame = on_frame,
        .on_unpublish = on_unpublish,
    };
    f->cfg.data = f;
    f->cfg.epoch_ms = 77;
    f->client_chunk = 128;
    *state = f;
    return 0;
}

static void start(struct fixture *f)
{
    assert_ax_err(media_rtmp_session_new(&f->cfg, &f->s), 0);
    ax_buf_init(&f->in, 1 << 22);
    ax_buf_init(&f->amf, 1 << 20);
    struct media_rtmp__chunk_limits lim = {1 << 20, 1 << 20, 64, 1 << 22};
    media_rtmp__chunk_reader_init(&f->out_rd, &lim);
}

static void cleanup(struct fixture *f)
{
    media_rtmp_session_free(f->s);
    f->s = NULL;
    ax_buf_close(&f->in);
    ax_buf_close(&f->amf);
    media_rtmp__chunk_reader_close(&f->out_rd);
}

#define TEST(name)                                                                          \
    static void name##_body(struct fixture *f);                                             \
    static void name(void **state)                                                          \
    {                                                                                       \
        struct fixture *f = *state;                                                         \
        start(f);                                                                           \
        name##_body(f);                                                                     \
        cleanup(f);                                                                         \
    }                                                                                       \
    static void name##_body(struct fixture *f)

static int teardown(void **state)
{
    test_free(*state);
    return 0;
}

/* Records every message the session wrote, as a client would read them. */
static void record_reply(struct fixture *f, const struct media_rtmp__message *m)
{
    assert_true(f->nreplies < MAX_REPLIES);
    struct reply *r = &f->replies[f->nreplies++];
    memset(r, 0, sizeof *r);
    r->type = m->type;
    r->msid = m->stream_id;
    if (m->type == MEDIA_RTMP__MSG_USER_CONTROL) {
        r->value = ax_rd_be16(m->payload);
        r->value2 = ax_rd_be32(m->payload + 2);
    } else if (m->type != MEDIA_RTMP__MSG_COMMAND_AMF0) {
        r->value = ax_rd_be32(m->payload);
        if (m->type == MEDIA_RTMP__MSG_SET_CHUNK_SIZE)
            media_rtmp__chunk_set_size(&f->out_rd, r->value);
        return;
    }
    if (m->type != MEDIA_RTMP__MSG_COMMAND_AMF0)
        return;
    media_amf0_doc_t d;
    media_amf0_limits_t lim = {16, 1000};
    assert_ax_err(media_amf0_decode(AX_SLICE(m->payload, m->length), &lim, &d), 0);
    ax_slice_t s;
    assert_true(media_amf0_as_string(&d.values[0], &s));
    copy_slice(r->name, sizeof r->name, s);
    media_amf0_as_number(&d.values[1], &r->txn);
    for (size_t i = 2; i < d.count; i++) {
        if (d.values[i].type == MEDIA_AMF0_NUMBER && r->number == 0)
            r->number = d.values[i].u.number;
        if (media_amf0_as_string(media_amf0_get(&d.values[i], "code"), &s))
            copy_slice(r->code, sizeof r->code, s);
        if (media_amf0_as_string(media_amf0_get(&d.values[i], "description"), &s))
            copy_slice(r->desc, sizeof r->desc, s);
    }
    media_amf0_doc_free(&d);
}

static void drain(struct fixture *f)
{
    ax_slice_t out = media_rtmp_session_output(f->s);
    size_t off = 0;
    if (!f->hs_seen && out.len >= 3073) {
        assert_int_equal(out.base[0], 3);
        assert_int_equal(ax_rd_be32(out.base + 1), 77);
        off = 3073;
        f->hs_seen = true;
    }
    if (!f->hs_seen)
        return;
    while (off < out.len) {
        struct media_rtmp__message m;
        bool have;
        char err[AX_ERRMSG_LEN];
        int n = media_rtmp__chunk_read(&f->out_rd, out.base + off, out.len - off, &m, &have, err);
        assert_true(n > 0);
        off += (size_t)n;
        if (have)
            record_reply(f, &m);
    }
    media_rtmp_session_output_consume(f->s, out.len);
}

/* Feeds everything queued in f->in in steps of `step` bytes, draining output as it goes. */
static int feed_step(struct fixture *f, size_t step)
{
    int rv = 0;
    for (size_t off = 0; off < f->in.len && rv == 0;) {
        size_t n = f->in.len - off < step ? f->in.len - off : step;
        rv = media_rtmp_session_feed(f->s, f->in.base + off, n);
        off += n;
        drain(f);
    }
    ax_buf_reset(&f->in);
    return rv;
}

static int feed(struct fixture *f)
{
    return feed_step(f, SIZE_MAX);
}

static const struct reply *find_reply(struct fixture *f, const char *name_or_code)
{
    for (int i = 0; i < f->nreplies; i++) {
        /* onFCPublish also says NetStream.Publish.Start: match codes of the others only. */
        if (strcmp(f->replies[i].name, name_or_code) == 0 ||
            (strcmp(f->replies[i].code, name_or_code) == 0 &&
             strcmp(f->replies[i].name, "onFCPublish") != 0))
            return &f->replies[i];
    }
    return NULL;
}

/* ---- the client ---------------------------------------------------------------------------- */

static void client_handshake(struct fixture *f)
{
    uint8_t c[1 + 1536 + 1536];
    memset(c, 0x11, sizeof c);
    c[0] = 3;
    ax_wr_be32(c + 1, 0);
    ax_wr_be32(c + 5, 0x09007c02); /* Flash-style, as ffmpeg */
    assert_ax_err(ax_buf_append(&f->in, c, sizeof c), 0);
}

static void client_msg(struct fixture *f, uint32_t csid, uint8_t type, uint32_t msid,
                       uint32_t ts, const void *p, size_t n)
{
    assert_ax_err(
        media_rtmp__chunk_write(&f->in, f->client_chunk, csid, ts, type, msid, p, n), 0);
}

static void send_amf(struct fixture *f, uint32_t csid, uint8_t type, uint32_t msid)
{
    client_msg(f, csid, type, msid, 0, f->amf.base, f->amf.len);
    ax_buf_reset(&f->amf);
}

static void cmd_begin(struct fixture *f, const char *name, double txn)
{
    ax_buf_reset(&f->amf);
    assert_ax_err(media_amf0_put_cstring(&f->amf, name), 0);
    assert_ax_err(media_amf0_put_number(&f->amf, txn), 0);
}

static void cmd_simple(struct fixture *f, const char *name, double txn, const char *arg,
                       uint32_t msid)
{
    cmd_begin(f, name, txn);
    assert_ax_err(media_amf0_put_null(&f->amf), 0);
    if (arg != NULL)
        assert_ax_err(media_amf0_put_cstring(&f->amf, arg), 0);
    send_amf(f, msid ? 8 : 3, MEDIA_RTMP__MSG_COMMAND_AMF0, msid);
}

static void client_connect(struct fixture *f)
{
    cmd_begin(f, "connect", 1);
    ax_buf_t *b = &f->amf;
    assert_ax_err(media_amf0_put_object_start(b), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("app")), 0);
    assert_ax_err(media_amf0_put_cstring(b, "live"), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("type")), 0);
    assert_ax_err(media_amf0_put_cstring(b, "nonprivate"), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("flashVer")), 0);
    assert_ax_err(media_amf0_put_cstring(b, "FMLE/3.0 (compatible; Lavf59.27.100)"), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("tcUrl")), 0);
    assert_ax_err(media_amf0_put_cstring(b, "rtmp://127.0.0.1/live"), 0);
    assert_ax_err(media_amf0_put_object_end(b), 0);
    send_amf(f, 3, MEDIA_RTMP__MSG_COMMAND_AMF0, 0);
}

/* What ffmpeg sends up to and including publish (ffmpeg's transaction ids). */
static void client_to_publish(struct fixture *f, const char *key)
{
    client_handshake(f);
    client_connect(f);
    cmd_simple(f, "releaseStream", 2, key, 0);
    cmd_simple(f, "FCPublish", 3, key, 0);
    cmd_simple(f, "createStream", 4, NULL, 0);
    cmd_begin(f, "publish", 5);
    assert_ax_err(media_amf0_put_null(&f->amf), 0);
    assert_ax_err(media_amf0_put_cstring(&f->amf, key), 0);
    assert_ax_err(media_amf0_put_cstring(&f->amf, "live"), 0);
    send_amf(f, 8, MEDIA_RTMP__MSG_COMMAND_AMF0, 1);
}

static void client_metadata(struct fixture *f)
{
    ax_buf_t *b = &f->amf;
    ax_buf_reset(b);
    assert_ax_err(media_amf0_put_cstring(b, "@setDataFrame"), 0);
    assert_ax_err(media_amf0_put_cstring(b, "onMetaData"), 0);
    assert_ax_err(media_amf0_put_ecma_array_start(b, 4), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("width")), 0);
    assert_ax_err(media_amf0_put_number(b, 1280), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("height")), 0);
    assert_ax_err(media_amf0_put_number(b, 720), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("framerate")), 0);
    assert_ax_err(media_amf0_put_number(b, 30), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("stereo")), 0);
    assert_ax_err(media_amf0_put_boolean(b, true), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("encoder")), 0);
    assert_ax_err(media_amf0_put_cstring(b, "Lavf59.27.100"), 0);
    assert_ax_err(media_amf0_put_object_end(b), 0);
    send_amf(f, 4, MEDIA_RTMP__MSG_DATA_AMF0, 1);
}

static void client_video(struct fixture *f, uint32_t ts, uint8_t first, uint8_t pkt, int32_t cts,
                         const uint8_t *body, size_t n)
{
    uint8_t b[512];
    b[0] = first;
    b[1] = pkt;
    ax_wr_be24(b + 2, (uint32_t)cts & 0xffffff);
    memcpy(b + 5, body, n);
    client_msg(f, 6, MEDIA_RTMP__MSG_VIDEO, 1, ts, b, 5 + n);
}

static void client_audio(struct fixture *f, uint32_t ts, uint8_t first, uint8_t pkt,
                         const uint8_t *body, size_t n)
{
    uint8_t b[512];
    b[0] = first;
    b[1] = pkt;
    memcpy(b + 2, body, n);
    client_msg(f, 4, MEDIA_RTMP__MSG_AUDIO, 1, ts, b, 2 + n);
}

static const uint8_t IDR[] = {0, 0, 0, 5, 0x65, 0x88, 0x84, 0x00, 0x10};
static const uint8_t NON_IDR[] = {0, 0, 0, 3, 0x41, 0x9a, 0x02};
static const uint8_t AAC_FRAME[] = {0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c};

/* Configs, a keyframe, a B-frame-like frame with a composition offset, two audio frames. */
static void client_media(struct fixture *f)
{
    client_metadata(f);
    client_video(f, 0, 0x17, 0, 0, AVC_RECORD, sizeof AVC_RECORD);
    client_audio(f, 0, 0xaf, 0, AAC_ASC, sizeof AAC_ASC);
    client_video(f, 0, 0x17, 1, 66, IDR, sizeof IDR);
    client_audio(f, 0, 0xaf, 1, AAC_FRAME, sizeof AAC_FRAME);
    client_video(f, 33, 0x27, 1, 33, NON_IDR, sizeof NON_IDR);
    client_audio(f, 21, 0xaf, 1, AAC_FRAME, sizeof AAC_FRAME);
}

static void client_unpublish(struct fixture *f, const char *key)
{
    cmd_simple(f, "FCUnpublish", 6, key, 0);
    cmd_begin(f, "deleteStream", 7);
    assert_ax_err(media_amf0_put_null(&f->amf), 0);
    assert_ax_err(media_amf0_put_number(&f->amf, 1), 0);
    send_amf(f, 3, MEDIA_RTMP__MSG_COMMAND_AMF0, 0);
}

static void check_media(struct fixture *f)
{
    assert_int_equal(f->metadatas, 1);
    assert_true(f->md.width == 1280 && f->md.height == 720 && f->md.framerate == 30);
    assert_true(f->md.audio_channels == 2);
    assert_memory_equal(f->md_raw_head, "\x02\x00\x0aonMetaData", 13);
    assert_int_equal(f->vconfigs, 1);
    assert_int_equal(f->vcfg.nal_length_size, 4);
    assert_int_equal(f->vcfg.profile_idc, 100);
    assert_int_equal(f->aconfigs, 1);
    assert_int_equal(f->acfg.sample_rate, 48000);
    assert_int_equal(f->acfg.channels, 2);
    assert_int_equal(f->nframes, 4);
    const struct frame_rec *fr = f->frames;
    assert_int_equal(fr[0].track, MEDIA_TRACK_VIDEO);
    assert_true(fr[0].keyframe);
    assert_int_equal(fr[0].cts, 66);
    assert_int_equal(fr[0].len, sizeof IDR);
    assert_int_equal(fr[1].track, MEDIA_TRACK_AUDIO);
    assert_true(fr[1].keyframe);
    assert_int_equal(fr[1].len, sizeof AAC_FRAME);
    assert_int_equal(fr[2].track, MEDIA_TRACK_VIDEO);
    assert_false(fr[2].keyframe);
    assert_int_equal(fr[2].dts, 33);
    assert_int_equal(fr[2].cts, 33);
    assert_int_equal(fr[3].dts, 21);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* An ffmpeg-like publisher goes through every state and gets every expected answer. */
TEST(session__publishes_like_ffmpeg)
{
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_HANDSHAKE);
    client_handshake(f);
    assert_ax_err(feed(f), 0);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CONNECTING);
    client_connect(f);
    assert_ax_err(feed(f), 0);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CONNECTED);
    assert_string_equal(f->app, "live");
    assert_int_equal(f->nreplies, 4);
    assert_int_equal(f->replies[0].type, MEDIA_RTMP__MSG_WINDOW_ACK_SIZE);
    assert_int_equal(f->replies[0].value, 2500000);
    assert_int_equal(f->replies[1].type, MEDIA_RTMP__MSG_SET_PEER_BANDWIDTH);
    assert_int_equal(f->replies[2].type, MEDIA_RTMP__MSG_SET_CHUNK_SIZE);
    assert_int_equal(f->replies[2].value, 4096);
    assert_string_equal(f->replies[3].name, "_result");
    assert_true(f->replies[3].txn == 1);
    assert_string_equal(f->replies[3].code, "NetConnection.Connect.Success");

    f->nreplies = 0;
    cmd_simple(f, "releaseStream", 2, "testkey", 0);
    cmd_simple(f, "FCPublish", 3, "testkey", 0);
    cmd_simple(f, "createStream", 4, NULL, 0);
    assert_ax_err(feed(f), 0);
    assert_int_equal(f->nreplies, 4);
    assert_true(f->replies[0].txn == 2);
    assert_string_equal(f->replies[1].name, "_result");
    assert_string_equal(f->replies[2].name, "onFCPublish");
    assert_string_equal(f->replies[3].name, "_result");
    assert_true(f->replies[3].txn == 4 && f->replies[3].number == 1);

    f->nreplies = 0;
    cmd_begin(f, "publish", 5);
    assert_ax_err(media_amf0_put_null(&f->amf), 0);
    assert_ax_err(media_amf0_put_cstring(&f->amf, "testkey"), 0);
    assert_ax_err(media_amf0_put_cstring(&f->amf, "live"), 0);
    send_amf(f, 8, MEDIA_RTMP__MSG_COMMAND_AMF0, 1);
    assert_ax_err(feed(f), 0);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_PUBLISHING);
    assert_string_equal(f->key, "testkey");
    assert_int_equal(f->nreplies, 2);
    assert_int_equal(f->replies[0].type, MEDIA_RTMP__MSG_USER_CONTROL);
    assert_int_equal(f->replies[0].value, MEDIA_RTMP__UC_STREAM_BEGIN);
    assert_int_equal(f->replies[0].value2, 1);
    assert_string_equal(f->replies[1].code, "NetStream.Publish.Start");
    assert_int_equal(f->replies[1].msid, 1);

    client_media(f);
    assert_ax_err(feed(f), 0);
    check_media(f);
    media_rtmp_stats_t st;
    media_rtmp_session_stats(f->s, &st);
    assert_int_equal(st.video_frames, 2);
    assert_int_equal(st.audio_frames, 2);

    f->nreplies = 0;
    client_unpublish(f, "testkey");
    assert_ax_err(feed(f), 0);
    assert_int_equal(f->unpublishes, 1);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CONNECTED);
    assert_non_null(find_reply(f, "NetStream.Unpublish.Success"));
    assert_string_equal(media_rtmp_session_errmsg(f->s), "");
}

/* Fed one byte at a time, the same publish yields the same events. */
TEST(session__one_byte_at_a_time)
{
    client_to_publish(f, "k1");
    client_media(f);
    client_unpublish(f, "k1");
    assert_ax_err(feed_step(f, 1), 0);
    assert_int_equal(f->publishes, 1);
    check_media(f);
    assert_int_equal(f->unpublishes, 1);
}

/* Any split of the input gives the same result. */
TEST(session__every_split_size)
{
    static const size_t steps[] = {2, 3, 7, 127, 128, 129, 1536, 1537, 4096};
    for (size_t i = 0; i < AX_ARRAY_SIZE(steps); i++) {
        cleanup(f);
        memset(&f->frames, 0, sizeof f->frames);
        f->nframes = f->metadatas = f->vconfigs = f->aconfigs = f->unpublishes = 0;
        f->nreplies = 0;
        f->hs_seen = false;
        start(f);
        client_to_publish(f, "k1");
        client_media(f);
        client_unpublish(f, "k1");
        assert_ax_err(feed_step(f, steps[i]), 0);
        check_media(f);
        assert_int_equal(f->unpublishes, 1);
    }
}

/* Media sent while the application decides is held, then delivered by accept. */
TEST(session__held_media_is_delivered_on_accept)
{
    f->action = WAIT;
    client_to_publish(f, "k2");
    client_media(f);
    assert_ax_err(feed(f), 0);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_PUBLISH_PENDING);
    assert_int_equal(f->nframes, 0);
    assert_null(find_reply(f, "NetStream.Publish.Start"));
    assert_ax_err(media_rtmp_session_publish_accept(f->s), 0);
    drain(f);
    assert_non_null(find_reply(f, "NetStream.Publish.Start"));
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_PUBLISHING);
    check_media(f);
    assert_ax_err(media_rtmp_session_publish_accept(f->s), AX_EBADSTATE);
    assert_ax_err(media_rtmp_session_publish_reject(f->s, AX_EBADKEY, "x"), AX_EBADSTATE);
}

/* Held media beyond max_pending_bytes ends the session, naming the limit. */
TEST(session__pending_bytes_limit)
{
    cleanup(f);
    f->cfg.limits.max_pending_bytes = 40;
    start(f);
    f->action = WAIT;
    client_to_publish(f, "k2");
    client_media(f);
    assert_ax_err(feed(f), AX_ENOSPC);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "max_pending_bytes 40"));
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CLOSED);
}

/* A key refused from inside on_publish gets BadName; feed returns the refusal. */
TEST(session__rejected_key_gets_badname)
{
    f->action = REJECT_BADKEY;
    client_to_publish(f, "wrong");
    assert_ax_err(feed(f), AX_EBADKEY);
    const struct reply *r = find_reply(f, "NetStream.Publish.BadName");
    assert_non_null(r);
    assert_string_equal(r->desc, "unknown stream key");
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CLOSED);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "rejected"));
    assert_int_equal(f->unpublishes, 0);
    uint8_t b = 0;
    assert_ax_err(media_rtmp_session_feed(f->s, &b, 1), AX_ECLOSED);
}

/* A later (asynchronous) rejection with another code says Rejected and closes. */
TEST(session__later_rejection)
{
    f->action = WAIT;
    client_to_publish(f, "k3");
    assert_ax_err(feed(f), 0);
    assert_ax_err(media_rtmp_session_publish_reject(f->s, AX_ELIVE, NULL), 0);
    drain(f);
    const struct reply *r = find_reply(f, "NetStream.Publish.Rejected");
    assert_non_null(r);
    assert_string_equal(r->desc, "stream already live");
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CLOSED);
}

/* The peer withdrawing a pending publish fires on_unpublish; a late accept is refused. */
TEST(session__withdrawn_publish)
{
    f->action = WAIT;
    client_to_publish(f, "k3");
    client_unpublish(f, "k3");
    assert_ax_err(feed(f), 0);
    assert_int_equal(f->unpublishes, 1);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CONNECTED);
    assert_ax_err(media_rtmp_session_publish_accept(f->s), AX_EBADSTATE);
}

/* deleteStream names a stream by its exact id: 1.5 or NaN delete nothing. */
TEST(session__delete_stream_needs_an_exact_id)
{
    client_to_publish(f, "k");
    const double ids[] = {1.5, NAN, 65, -1};
    for (size_t i = 0; i < AX_ARRAY_SIZE(ids); i++) {
        cmd_begin(f, "deleteStream", 7);
        assert_ax_err(media_amf0_put_null(&f->amf), 0);
        assert_ax_err(media_amf0_put_number(&f->amf, ids[i]), 0);
        send_amf(f, 3, MEDIA_RTMP__MSG_COMMAND_AMF0, 0);
    }
    assert_ax_err(feed(f), 0);
    assert_int_equal(f->unpublishes, 0);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_PUBLISHING);
    /* closeStream on the publishing stream ends it. */
    cmd_simple(f, "closeStream", 8, NULL, 1);
    assert_ax_err(feed(f), 0);
    assert_int_equal(f->unpublishes, 1);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CONNECTED);
}

/* After unpublishing, the same connection can publish again with a fresh timeline. */
TEST(session__republish_on_the_same_connection)
{
    client_to_publish(f, "k4");
    client_media(f);
    client_unpublish(f, "k4");
    cmd_simple(f, "createStream", 8, NULL, 0);
    cmd_begin(f, "publish", 9);
    assert_ax_err(media_amf0_put_null(&f->amf), 0);
    assert_ax_err(media_amf0_put_cstring(&f->amf, "k5"), 0);
    send_amf(f, 8, MEDIA_RTMP__MSG_COMMAND_AMF0, 1);
    assert_ax_err(feed(f), 0);
    assert_int_equal(f->publishes, 2);
    assert_string_equal(f->key, "k5");
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_PUBLISHING);
    /* A frame before the new sequence header is refused: configs reset. */
    client_video(f, 0, 0x17, 1, 0, IDR, sizeof IDR);
    assert_ax_err(feed(f), AX_EPROTO);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "before any AVC sequence header"));
}

/* The server stopping a publish tells the publisher and closes without on_unpublish. */
TEST(session__server_stop)
{
    client_to_publish(f, "k");
    assert_ax_err(feed(f), 0);
    assert_ax_err(media_rtmp_session_stop(f->s), 0);
    drain(f);
    assert_non_null(find_reply(f, "NetStream.Unpublish.Success"));
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CLOSED);
    assert_int_equal(f->unpublishes, 0);
    assert_ax_err(media_rtmp_session_stop(f->s), AX_EBADSTATE);
}

/* stop() from inside on_publish makes feed return AX_ECANCELED. */
TEST(session__stop_from_a_callback)
{
    f->action = STOP;
    client_to_publish(f, "k");
    assert_ax_err(feed(f), AX_ECANCELED);
    assert_string_equal(media_rtmp_session_errmsg(f->s), "stopped by the server");
}

/* An application refusing connect gets _error NetConnection.Connect.Rejected. */
TEST(session__connect_rejected)
{
    f->connect_rv = AX_EACCES;
    client_handshake(f);
    client_connect(f);
    assert_ax_err(feed(f), AX_EACCES);
    const struct reply *r = find_reply(f, "_error");
    assert_non_null(r);
    assert_string_equal(r->code, "NetConnection.Connect.Rejected");
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "rejected by the application"));
}

/* Without an on_publish callback the session accepts by itself. */
TEST(session__no_on_publish_accepts)
{
    cleanup(f);
    f->cfg.cb.on_publish = NULL;
    start(f);
    client_to_publish(f, "auto");
    client_media(f);
    assert_ax_err(feed(f), 0);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_PUBLISHING);
    check_media(f);
}

/* play is refused clearly: onStatus NetStream.Play.Failed, _error, closed. */
TEST(session__play_is_refused)
{
    client_handshake(f);
    client_connect(f);
    cmd_simple(f, "createStream", 2, NULL, 0);
    cmd_simple(f, "play", 3, "somestream", 1);
    assert_ax_err(feed(f), AX_ENOTSUP);
    assert_non_null(find_reply(f, "NetStream.Play.Failed"));
    assert_non_null(find_reply(f, "_error"));
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "play refused"));
}

/* An unknown command with a transaction id gets _error; without one it is ignored. */
TEST(session__unknown_commands)
{
    client_handshake(f);
    client_connect(f);
    cmd_simple(f, "getStreamLength", 7, "x", 0);
    cmd_simple(f, "onBWDone", 0, NULL, 0);
    cmd_simple(f, "_result", 9, NULL, 0);
    assert_ax_err(feed(f), 0);
    const struct reply *r = find_reply(f, "_error");
    assert_non_null(r);
    assert_true(r->txn == 7);
    assert_string_equal(r->desc, "unknown command 'getStreamLength'");
    assert_int_equal(f->nreplies, 5);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CONNECTED);
}

/* A Ping Request is answered with a Ping Response carrying the same timestamp. */
TEST(session__ping_is_answered)
{
    client_handshake(f);
    client_connect(f);
    uint8_t ping[6] = {0, 6, 0x12, 0x34, 0x56, 0x78};
    client_msg(f, 2, MEDIA_RTMP__MSG_USER_CONTROL, 0, 0, ping, sizeof ping);
    uint8_t other[10] = {0, 3, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8}; /* Set Buffer Length: ignored */
    client_msg(f, 2, MEDIA_RTMP__MSG_USER_CONTROL, 0, 0, other, sizeof other);
    assert_ax_err(feed(f), 0);
    const struct reply *r = &f->replies[f->nreplies - 1];
    assert_int_equal(r->type, MEDIA_RTMP__MSG_USER_CONTROL);
    assert_int_equal(r->value, MEDIA_RTMP__UC_PING_RESPONSE);
    assert_int_equal(r->value2, 0x12345678);
}

/* Once the peer's window is reached the session acknowledges the bytes received. */
TEST(session__acknowledges_the_peer_window)
{
    client_handshake(f);
    client_connect(f);
    uint8_t win[4];
    ax_wr_be32(win, 5000);
    client_msg(f, 2, MEDIA_RTMP__MSG_WINDOW_ACK_SIZE, 0, 0, win, 4);
    assert_ax_err(feed(f), 0);
    /* The handshake alone was 3073 bytes: nothing acknowledged yet. */
    assert_int_equal(f->replies[f->nreplies - 1].type, MEDIA_RTMP__MSG_COMMAND_AMF0);
    uint8_t ack[4];
    ax_wr_be32(ack, 1);
    for (int i = 0; i < 200; i++)
        client_msg(f, 2, MEDIA_RTMP__MSG_ACK, 0, 0, ack, 4); /* 16 bytes each */
    int before = f->nreplies;
    assert_ax_err(feed(f), 0);
    assert_int_equal(f->nreplies, before + 1);
    const struct reply *r = &f->replies[f->nreplies - 1];
    assert_int_equal(r->type, MEDIA_RTMP__MSG_ACK);
    assert_true(r->value >= 5000 && r->value < 5000 + 16);
}

/* 32-bit RTMP timestamps are unwrapped onto a 64-bit timeline. */
TEST(session__timestamps_unwrap_past_32_bits)
{
    client_to_publish(f, "wrap");
    client_video(f, 0xfffffff0u, 0x17, 0, 0, AVC_RECORD, sizeof AVC_RECORD);
    client_video(f, 0xfffffff0u, 0x17, 1, 0, IDR, sizeof IDR);
    client_video(f, 0x10, 0x27, 1, 0, NON_IDR, sizeof NON_IDR);
    client_video(f, 0x30, 0x27, 1, -20, NON_IDR, sizeof NON_IDR);
    assert_ax_err(feed(f), 0);
    assert_int_equal(f->nframes, 3);
    assert_true(f->frames[0].dts == 0xfffffff0ll);
    assert_true(f->frames[1].dts == 0x100000010ll);
    assert_true(f->frames[2].dts == 0x100000030ll);
    assert_int_equal(f->frames[2].cts, -20);
}

/* Video other than H.264 is refused, naming the codec, and the publisher is told. */
TEST(session__non_avc_video_is_refused)
{
    client_to_publish(f, "k");
    uint8_t h263[] = {0x22, 0x00, 0x00, 0x84};
    client_msg(f, 6, MEDIA_RTMP__MSG_VIDEO, 1, 0, h263, sizeof h263);
    assert_ax_err(feed(f), AX_ENOTSUP);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "Sorenson H.263"));
    const struct reply *r = find_reply(f, "NetStream.Publish.Rejected");
    assert_non_null(r);
    assert_non_null(strstr(r->desc, "H.264"));
}

/* Enhanced RTMP video (HEVC by FourCC) is refused, naming the FourCC. */
TEST(session__enhanced_rtmp_video_is_refused)
{
    client_to_publish(f, "k");
    uint8_t hevc[] = {0x90, 'h', 'v', 'c', '1', 0x01};
    client_msg(f, 6, MEDIA_RTMP__MSG_VIDEO, 1, 0, hevc, sizeof hevc);
    assert_ax_err(feed(f), AX_ENOTSUP);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "FourCC 'hvc1'"));
}

/* Audio other than AAC is refused, naming the format. */
TEST(session__non_aac_audio_is_refused)
{
    client_to_publish(f, "k");
    uint8_t mp3[] = {0x2f, 0xff, 0xfb, 0x90};
    client_msg(f, 4, MEDIA_RTMP__MSG_AUDIO, 1, 0, mp3, sizeof mp3);
    assert_ax_err(feed(f), AX_ENOTSUP);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "audio format 2 (MP3)"));
}

/* Frames before their configuration are refused. */
TEST(session__frames_need_their_config)
{
    client_to_publish(f, "k");
    client_audio(f, 0, 0xaf, 1, AAC_FRAME, sizeof AAC_FRAME);
    assert_ax_err(feed(f), AX_EPROTO);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "before any AudioSpecificConfig"));
}

/* Malformed configs and NAL units are refused with the parser's verdict. */
TEST(session__malformed_media_is_refused)
{
    client_to_publish(f, "k");
    client_video(f, 0, 0x17, 0, 0, AVC_RECORD, 5); /* truncated record */
    assert_true(feed(f) < 0);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "AVC sequence header"));

    cleanup(f);
    start(f);
    f->hs_seen = false;
    client_to_publish(f, "k");
    client_video(f, 0, 0x17, 0, 0, AVC_RECORD, sizeof AVC_RECORD);
    uint8_t bad[] = {0, 0, 0, 99, 0x65};
    client_video(f, 0, 0x17, 1, 0, bad, sizeof bad);
    assert_true(feed(f) < 0);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "malformed H.264 NAL units"));
}

/* Media before publish, or on another message stream, is a protocol error. */
TEST(session__media_outside_the_publish)
{
    client_handshake(f);
    client_connect(f);
    client_video(f, 0, 0x17, 0, 0, AVC_RECORD, sizeof AVC_RECORD);
    assert_ax_err(feed(f), AX_EPROTO);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "while not publishing"));

    cleanup(f);
    start(f);
    f->hs_seen = false;
    client_to_publish(f, "k");
    uint8_t b[] = {0xaf, 0x00, 0x11, 0x90};
    client_msg(f, 4, MEDIA_RTMP__MSG_AUDIO, 7, 0, b, sizeof b);
    assert_ax_err(feed(f), AX_EPROTO);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "message stream 7"));
}

/* Protocol misuse: each case closes the session with a reason. */
TEST(session__command_misuse)
{
    static const struct {
        const char *what;
        int err;
        const char *msg;
    } cases[] = {
        {"before-connect", AX_EPROTO, "before connect"},
        {"connect-twice", AX_EPROTO, "connect received twice"},
        {"no-name", AX_EPROTO, "without a command name"},
        {"connect-no-object", AX_EPROTO, "without a command object"},
        {"publish-unknown-stream", AX_EPROTO, "which createStream did not return"},
        {"publish-empty-name", AX_EBADKEY, "empty stream name"},
        {"publish-twice", AX_EBADSTATE, "one publish at a time"},
        {"bad-amf", AX_EBADDATA, "malformed AMF0 in command message at offset 13"},
        {"amf3-command", AX_ENOTSUP, "AMF3-encoded command"},
        {"aggregate", AX_ENOTSUP, "aggregate messages"},
    };
    for (size_t i = 0; i < AX_ARRAY_SIZE(cases); i++) {
        cleanup(f);
        start(f);
        f->hs_seen = false;
        f->nreplies = 0;
        const char *w = cases[i].what;
        client_handshake(f);
        if (strcmp(w, "before-connect") == 0) {
            cmd_simple(f, "createStream", 2, NULL, 0);
        } else if (strcmp(w, "connect-no-object") == 0) {
            cmd_simple(f, "connect", 1, NULL, 0);
        } else {
            client_connect(f);
        }
        if (strcmp(w, "connect-twice") == 0)
            client_connect(f);
        if (strcmp(w, "no-name") == 0) {
            ax_buf_reset(&f->amf);
            assert_ax_err(media_amf0_put_number(&f->amf, 1), 0);
            send_amf(f, 3, MEDIA_RTMP__MSG_COMMAND_AMF0, 0);
        }
        if (strcmp(w, "publish-unknown-stream") == 0)
            cmd_simple(f, "publish", 5, "k", 3);
        if (strcmp(w, "publish-empty-name") == 0) {
            cmd_simple(f, "createStream", 4, NULL, 0);
            cmd_simple(f, "publish", 5, "", 1);
        }
        if (strcmp(w, "publish-twice") == 0) {
            cmd_simple(f, "createStream", 4, NULL, 0);
            cmd_simple(f, "publish", 5, "a", 1);
            cmd_simple(f, "publish", 6, "b", 1);
        }
        if (strcmp(w, "bad-amf") == 0) {
            cmd_begin(f, "x", 2); /* 4 + 9 bytes, then a reference marker */
            assert_ax_err(ax_buf_put_u8(&f->amf, 0x42), 0);
            send_amf(f, 3, MEDIA_RTMP__MSG_COMMAND_AMF0, 0);
        }
        if (strcmp(w, "amf3-command") == 0) {
            uint8_t b[] = {0x11, 0x0a};
            client_msg(f, 3, MEDIA_RTMP__MSG_COMMAND_AMF3, 0, 0, b, sizeof b);
        }
        if (strcmp(w, "aggregate") == 0) {
            uint8_t b[] = {0};
            client_msg(f, 3, MEDIA_RTMP__MSG_AGGREGATE, 0, 0, b, sizeof b);
        }
        int rv = feed(f);
        if (rv != cases[i].err || strstr(media_rtmp_session_errmsg(f->s), cases[i].msg) == NULL)
            fail_msg("case %s: got %s '%s'", w, ax_err_name(rv), media_rtmp_session_errmsg(f->s));
        assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CLOSED);
    }
}

/* An AMF3 command message (format byte 0, then AMF0) is understood. */
TEST(session__amf3_command_with_amf0_body)
{
    client_handshake(f);
    cmd_begin(f, "connect", 1);
    assert_ax_err(media_amf0_put_object_start(&f->amf), 0);
    assert_ax_err(media_amf0_put_object_end(&f->amf), 0);
    uint8_t b[256];
    b[0] = 0;
    memcpy(b + 1, f->amf.base, f->amf.len);
    client_msg(f, 3, MEDIA_RTMP__MSG_COMMAND_AMF3, 0, 0, b, 1 + f->amf.len);
    assert_ax_err(feed(f), 0);
    assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CONNECTED);
}

/* Control messages shorter than their fixed layout are protocol errors. */
TEST(session__short_control_messages)
{
    static const uint8_t types[] = {1, 2, 3, 4, 5, 6};
    for (size_t i = 0; i < AX_ARRAY_SIZE(types); i++) {
        cleanup(f);
        start(f);
        f->hs_seen = false;
        client_handshake(f);
        uint8_t b[1] = {0};
        client_msg(f, 2, types[i], 0, 0, b, 1);
        assert_ax_err(feed(f), AX_EPROTO);
        assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "expected at least"));
    }
    cleanup(f);
    start(f);
    f->hs_seen = false;
    client_handshake(f);
    uint8_t zero[4] = {0};
    client_msg(f, 2, MEDIA_RTMP__MSG_SET_CHUNK_SIZE, 0, 0, zero, 4);
    assert_ax_err(feed(f), AX_EPROTO);
    assert_string_equal(media_rtmp_session_errmsg(f->s), "Set Chunk Size 0 is invalid");
}

/* A bad C0 ends the session during the handshake. */
TEST(session__bad_handshake)
{
    uint8_t b = 'P';
    assert_ax_err(media_rtmp_session_feed(f->s, &b, 1), AX_EPROTO);
    assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "C0 version"));
}

/* Each limit ends the session with an error naming the limit and its value. */
TEST(session__every_limit_is_enforced)
{
    struct {
        const char *limit;
        int err;
        const char *msg;
    } cases[] = {
        {"max_chunk_size", AX_EMSGSIZE, "Set Chunk Size 2000 exceeds max_chunk_size 1000"},
        {"max_message_len", AX_EMSGSIZE, "exceeds max_message_len 2000"},
        {"max_amf_depth", AX_ETOODEEP, "exceeds max_amf_depth 3"},
        {"max_chunk_streams", AX_ENOSPC, "max_chunk_streams 3"},
        {"max_message_streams", AX_ENOSPC, "createStream would exceed max_message_streams 2"},
        {"max_command_len", AX_EMSGSIZE, "exceeds max_command_len 300"},
        {"max_output_bytes", AX_ENOSPC, "exceeds max_output_bytes 7000"},
        {"max_incomplete_bytes", AX_ENOSPC, "over max_incomplete_bytes 130"},
    };
    for (size_t i = 0; i < AX_ARRAY_SIZE(cases); i++) {
        cleanup(f);
        media_rtmp_limits_default(&f->cfg.limits);
        media_rtmp_limits_t *l = &f->cfg.limits;
        const char *w = cases[i].limit;
        if (strcmp(w, "max_chunk_size") == 0)
            l->max_chunk_size = 1000;
        if (strcmp(w, "max_message_len") == 0)
            l->max_message_len = 2000;
        if (strcmp(w, "max_amf_depth") == 0)
            l->max_amf_depth = 3;
        if (strcmp(w, "max_chunk_streams") == 0)
            l->max_chunk_streams = 3;
        if (strcmp(w, "max_message_streams") == 0)
            l->max_message_streams = 2;
        if (strcmp(w, "max_command_len") == 0)
            l->max_command_len = 300;
        if (strcmp(w, "max_output_bytes") == 0)
            l->max_output_bytes = 7000;
        if (strcmp(w, "max_incomplete_bytes") == 0)
            l->max_incomplete_bytes = 130; /* connect (134 bytes) holds 128 at most */
        start(f);
        f->hs_seen = false;
        client_handshake(f);
        client_connect(f);
        uint8_t big[3000] = {0};
        if (strcmp(w, "max_chunk_size") == 0) {
            uint8_t b[4];
            ax_wr_be32(b, 2000);
            client_msg(f, 2, MEDIA_RTMP__MSG_SET_CHUNK_SIZE, 0, 0, b, 4);
        }
        if (strcmp(w, "max_message_len") == 0)
            client_msg(f, 6, MEDIA_RTMP__MSG_VIDEO, 1, 0, big, 2001);
        if (strcmp(w, "max_amf_depth") == 0) {
            cmd_begin(f, "x", 2);
            for (int d = 0; d < 3; d++) {
                assert_ax_err(media_amf0_put_object_start(&f->amf), 0);
                assert_ax_err(media_amf0_put_key(&f->amf, AX_SLICE_LIT("k")), 0);
            }
            assert_ax_err(media_amf0_put_null(&f->amf), 0);
            for (int d = 0; d < 3; d++)
                assert_ax_err(media_amf0_put_object_end(&f->amf), 0);
            send_amf(f, 3, MEDIA_RTMP__MSG_COMMAND_AMF0, 0);
        }
        if (strcmp(w, "max_chunk_streams") == 0) {
            uint8_t b[4] = {0, 0, 0, 1};
            for (uint32_t cs = 10; cs < 13; cs++)
                client_msg(f, cs, MEDIA_RTMP__MSG_ACK, 0, 0, b, 4);
        }
        if (strcmp(w, "max_message_streams") == 0) {
            for (int k = 0; k < 3; k++)
                cmd_simple(f, "createStream", 2 + k, NULL, 0);
        }
        if (strcmp(w, "max_command_len") == 0)
            client_msg(f, 3, MEDIA_RTMP__MSG_COMMAND_AMF0, 0, 0, big, 301);
        if (strcmp(w, "max_output_bytes") == 0) {
            uint8_t ping[6] = {0, 6, 0, 0, 0, 1};
            for (int k = 0; k < 400; k++)
                client_msg(f, 2, MEDIA_RTMP__MSG_USER_CONTROL, 0, 0, ping, sizeof ping);
        }
        if (strcmp(w, "max_incomplete_bytes") == 0)
            client_msg(f, 6, MEDIA_RTMP__MSG_VIDEO, 1, 0, big, 200);
        /* Feed without taking output when testing max_output_bytes. */
        int rv;
        if (strcmp(w, "max_output_bytes") == 0) {
            rv = media_rtmp_session_feed(f->s, f->in.base, f->in.len);
            ax_buf_reset(&f->in);
        } else {
            rv = feed(f);
        }
        if (rv != cases[i].err || strstr(media_rtmp_session_errmsg(f->s), cases[i].msg) == NULL)
            fail_msg("limit %s: got %s '%s'", w, ax_err_name(rv),
                     media_rtmp_session_errmsg(f->s));
        assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CLOSED);
    }
}

/* Limits that cannot work are refused by session_new. */
TEST(session__invalid_config_is_refused)
{
    (void)f;
    media_rtmp_session_t *s = NULL;
    media_rtmp_session_config_t c;
    media_rtmp_session_config_default(&c);
    c.limits.max_chunk_size = 0;
    assert_ax_err(media_rtmp_session_new(&c, &s), AX_EINVAL);
    assert_null(s);
    media_rtmp_session_config_default(&c);
    c.limits.max_output_bytes = 100; /* cannot hold S0S1S2 */
    assert_ax_err(media_rtmp_session_new(&c, &s), AX_EINVAL);
    media_rtmp_session_config_default(&c);
    c.limits.max_incomplete_bytes = 0; /* no message could ever be read */
    assert_ax_err(media_rtmp_session_new(&c, &s), AX_EINVAL);
    media_rtmp_session_config_default(&c);
    c.limits.max_chunk_size = 0x80000000u;
    assert_ax_err(media_rtmp_session_new(&c, &s), AX_EINVAL);
    media_rtmp_session_free(NULL);
}

/* State names are stable (they go to logs). */
TEST(session__state_names)
{
    (void)f;
    assert_string_equal(media_rtmp_state_name(MEDIA_RTMP_STATE_HANDSHAKE), "handshake");
    assert_string_equal(media_rtmp_state_name(MEDIA_RTMP_STATE_PUBLISH_PENDING),
                        "publish_pending");
    assert_string_equal(media_rtmp_state_name(MEDIA_RTMP_STATE_CLOSED), "closed");
    assert_string_equal(media_rtmp_state_name(MEDIA_RTMP_STATE_COUNT), "unknown");
}

/* session_new fails cleanly with AX_ENOMEM at every allocation. */
static void session__new_survives_out_of_memory(void **state)
{
    struct fixture *f = *state;
    media_rtmp_session_t *s = NULL;
    AX_OOM_SWEEP(media_rtmp_session_new(&f->cfg, &s), (media_rtmp_session_free(s), s = NULL));
}

/* Any allocation failing during a whole publish closes the session with AX_ENOMEM. */
TEST(session__publish_survives_out_of_memory)
{
    for (long n = 0;; n++) {
        cleanup(f);
        start(f);
        f->hs_seen = false;
        f->nframes = f->metadatas = f->vconfigs = f->aconfigs = f->unpublishes = 0;
        f->nreplies = 0;
        client_to_publish(f, "oom");
        client_media(f);
        client_unpublish(f, "oom");
        f->oom = true;
        ax_fail_after(n);
        int rv = media_rtmp_session_feed(f->s, f->in.base, f->in.len);
        ax_fail_after(-1);
        ax_buf_reset(&f->in);
        if (rv == 0) {
            drain(f);
            check_media(f);
            break;
        }
        assert_ax_err(rv, AX_ENOMEM);
        assert_non_null(strstr(media_rtmp_session_errmsg(f->s), "memory"));
        assert_int_equal(media_rtmp_session_state(f->s), MEDIA_RTMP_STATE_CLOSED);
        assert_true(n < 10000);
    }
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(session__publishes_like_ffmpeg),
        T(session__one_byte_at_a_time),
        T(session__every_split_size),
        T(session__held_media_is_delivered_on_accept),
        T(session__pending_bytes_limit),
        T(session__rejected_key_gets_badname),
        T(session__later_rejection),
        T(session__withdrawn_publish),
        T(session__delete_stream_needs_an_exact_id),
        T(session__republish_on_the_same_connection),
        T(session__server_stop),
        T(session__stop_from_a_callback),
        T(session__connect_rejected),
        T(session__no_on_publish_accepts),
        T(session__play_is_refused),
        T(session__unknown_commands),
        T(session__ping_is_answered),
        T(session__acknowledges_the_peer_window),
        T(session__timestamps_unwrap_past_32_bits),
        T(session__non_avc_video_is_refused),
        T(session__enhanced_rtmp_video_is_refused),
        T(session__non_aac_audio_is_refused),
        T(session__frames_need_their_config),
        T(session__malformed_media_is_refused),
        T(session__media_outside_the_publish),
        T(session__command_misuse),
        T(session__amf3_command_with_amf0_body),
        T(session__short_control_messages),
        T(session__bad_handshake),
        T(session__every_limit_is_enforced),
        T(session__invalid_config_is_refused),
        T(session__state_names),
        T(session__new_survives_out_of_memory),
        T(session__publish_survives_out_of_memory),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

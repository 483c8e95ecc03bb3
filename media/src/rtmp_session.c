/*
 * One RTMP publishing connection, server side: handshake, chunk stream, commands, and FLV
 * audio/video tags turned into frames. No sockets, no clock (STYLE.md 10).
 *
 * State table (ax_sm; tests assert states):
 *
 *   +-----------+ C0C1..C2 +------------+ connect +-----------+ publish +-----------------+
 *   | HANDSHAKE |--------->| CONNECTING |-------->| CONNECTED |-------->| PUBLISH_PENDING |
 *   +-----------+          +------------+         +-----------+         +-----------------+
 *                                                   ^     ^   withdrawn     |        |
 *                                                   |     +-----------------+        | accept
 *                                                   |  FCUnpublish/deleteStream/     v
 *                                                   |  closeStream           +------------+
 *                                                   +------------------------| PUBLISHING |
 *                                                                            +------------+
 *   every state --protocol error / limit / reject / stop--> CLOSED (terminal)
 *
 * What each command gets (docs/protocol-rtmp.md has the full table):
 *   connect       Window Ack Size, Set Peer Bandwidth, Set Chunk Size, _result
 *                 NetConnection.Connect.Success (or _error ...Connect.Rejected, closed)
 *   releaseStream _result;  FCPublish: _result + onFCPublish;  createStream: _result(id)
 *   publish       (on_publish -> accept) Stream Begin + onStatus NetStream.Publish.Start,
 *                 or onStatus NetStream.Publish.BadName / Rejected, closed
 *   FCUnpublish   onStatus NetStream.Unpublish.Success (+ _result); deleteStream, closeStream
 *   play, play2   onStatus NetStream.Play.Failed + _error, closed (publishing only)
 *   anything else _error NetConnection.Call.Failed when it has a transaction id, else ignored
 */
#include "aethex/media/rtmp_session.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/sm.h"
#include "aethex/media/amf0.h"
#include "aethex/media/flv.h"
#include "rtmp_internal.h"

/* What we announce to the peer after connect. */
#define OUR_WINDOW_ACK_SIZE 2500000u
#define OUR_PEER_BANDWIDTH 2500000u
#define OUR_CHUNK_SIZE 4096u
#define MAX_MESSAGE_STREAMS_CEILING 64

/* Chunk streams we write on. */
#define CSID_CONTROL 2
#define CSID_COMMAND 3
#define CSID_STREAM 5

static const struct ax_sm_conf session_states[MEDIA_RTMP_STATE_COUNT] = {
    [MEDIA_RTMP_STATE_HANDSHAKE] = {"handshake", AX_SM_BIT(MEDIA_RTMP_STATE_CONNECTING) |
                                                     AX_SM_BIT(MEDIA_RTMP_STATE_CLOSED)},
    [MEDIA_RTMP_STATE_CONNECTING] = {"connecting", AX_SM_BIT(MEDIA_RTMP_STATE_CONNECTED) |
                                                       AX_SM_BIT(MEDIA_RTMP_STATE_CLOSED)},
    [MEDIA_RTMP_STATE_CONNECTED] = {"connected", AX_SM_BIT(MEDIA_RTMP_STATE_PUBLISH_PENDING) |
                                                     AX_SM_BIT(MEDIA_RTMP_STATE_CLOSED)},
    [MEDIA_RTMP_STATE_PUBLISH_PENDING] = {"publish_pending",
                                          AX_SM_BIT(MEDIA_RTMP_STATE_PUBLISHING) |
                                              AX_SM_BIT(MEDIA_RTMP_STATE_CONNECTED) |
                                              AX_SM_BIT(MEDIA_RTMP_STATE_CLOSED)},
    [MEDIA_RTMP_STATE_PUBLISHING] = {"publishing", AX_SM_BIT(MEDIA_RTMP_STATE_CONNECTED) |
                                                       AX_SM_BIT(MEDIA_RTMP_STATE_CLOSED)},
    [MEDIA_RTMP_STATE_CLOSED] = {"closed", 0},
};

/* 64-bit unwrapping of RTMP's 32-bit millisecond timestamps, one per track. */
struct unwrap {
    bool started;
    uint32_t last;
    int64_t ext;
};

struct media_rtmp_session {
    media_rtmp_session_config_t cfg;
    ax_sm_t sm;
    char errmsg[AX_ERRMSG_LEN];
    int close_err;                     /* what feed() returns for a close inside it */
    bool in_feed;
    struct media_rtmp__handshake hs;
    struct media_rtmp__chunk_reader rd;
    ax_buf_t out;                      /* owned: bytes for the peer */
    ax_buf_t cmd;                      /* owned: scratch for encoding a command body */
    uint32_t out_chunk_size;
    uint32_t peer_window;              /* the peer's Window Acknowledgement Size, 0 = none */
    uint64_t bytes_in;
    uint64_t acked;                    /* bytes_in when we last sent an Acknowledgement */
    uint64_t streams;                  /* bit i-1: message stream id i was created */
    uint32_t max_streams;
    char *app;                         /* owned: from connect */
    size_t app_len;
    char *name;                        /* owned: the stream name being published */
    size_t name_len;
    uint32_t publish_stream;           /* message stream id of the publish */
    ax_buf_t pending;                  /* owned: messages held while PUBLISH_PENDING */
    bool have_avc;
    uint8_t nal_length_size;
    bool have_aac;
    struct unwrap ts[MEDIA_TRACK_COUNT];
    media_rtmp_stats_t stats;
};

void media_rtmp_limits_default(media_rtmp_limits_t *l)
{
    l->max_chunk_size = 1u << 20;
    l->max_message_len = 4u << 20;
    l->max_amf_depth = 16;
    l->max_chunk_streams = 32;
    l->max_message_streams = 4;
    l->max_command_len = 64u << 10;
    l->max_pending_bytes = 8u << 20;
    l->max_output_bytes = 1u << 20;
    l->max_incomplete_bytes = 8u << 20;
}

void media_rtmp_session_config_default(media_rtmp_session_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    media_rtmp_limits_default(&cfg->limits);
}

static media_rtmp_state_t state(const media_rtmp_session_t *s)
{
    return (media_rtmp_state_t)ax_sm_state(&s->sm);
}

const char *media_rtmp_state_name(media_rtmp_state_t st)
{
    if ((unsigned)st >= MEDIA_RTMP_STATE_COUNT)
        return "unknown";
    return session_states[st].name;
}

int media_rtmp_session_new(const media_rtmp_session_config_t *cfg, media_rtmp_session_t **out)
{
    *out = NULL;
    const media_rtmp_limits_t *l = &cfg->limits;
    if (l->max_chunk_size == 0 || l->max_chunk_size > 0x7fffffff || l->max_message_len == 0 ||
        l->max_amf_depth == 0 || l->max_chunk_streams == 0 || l->max_message_streams == 0 ||
        l->max_command_len == 0 || l->max_incomplete_bytes == 0 ||
        l->max_output_bytes < 2 * (1 + MEDIA_RTMP__SIG_SIZE))
        return AX_EINVAL;
    media_rtmp_session_t *s = ax_calloc(1, sizeof *s);
    if (s == NULL)
        return AX_ENOMEM;
    s->cfg = *cfg;
    ax_sm_init(&s->sm, session_states, MEDIA_RTMP_STATE_COUNT, MEDIA_RTMP_STATE_HANDSHAKE);
    media_rtmp__handshake_init(&s->hs, cfg->epoch_ms, cfg->random, cfg->random_ctx);
    struct media_rtmp__chunk_limits cl = {
        .max_message_len = l->max_message_len,
        .max_command_len = l->max_command_len,
        .max_chunk_streams = l->max_chunk_streams,
        .max_incomplete_bytes = l->max_incomplete_bytes,
    };
    media_rtmp__chunk_reader_init(&s->rd, &cl);
    ax_buf_init(&s->out, l->max_output_bytes);
    ax_buf_init(&s->cmd, 64u << 10);
    ax_buf_init(&s->pending, l->max_pending_bytes);
    s->out_chunk_size = MEDIA_RTMP__DEFAULT_CHUNK_SIZE;
    s->max_streams = l->max_message_streams < MAX_MESSAGE_STREAMS_CEILING
                         ? l->max_message_streams
                         : MAX_MESSAGE_STREAMS_CEILING;
    /* S0S1S2 is the first thing we write: reserve it now so the handshake cannot fail on
     * memory in the middle of the peer's C1. */
    int rv = ax_buf_reserve(&s->out, 1 + 2 * MEDIA_RTMP__SIG_SIZE);
    if (rv != 0) {
        media_rtmp_session_free(s);
        return rv;
    }
    *out = s;
    return 0;
}

void media_rtmp_session_free(media_rtmp_session_t *s)
{
    if (s == NULL)
        return;
    AX_PRE(!s->in_feed);
    media_rtmp__chunk_reader_close(&s->rd);
    ax_buf_close(&s->out);
    ax_buf_close(&s->cmd);
    ax_buf_close(&s->pending);
    ax_free(s->app);
    ax_free(s->name);
    ax_free(s);
}

media_rtmp_state_t media_rtmp_session_state(const media_rtmp_session_t *s)
{
    return state(s);
}

const char *media_rtmp_session_errmsg(const media_rtmp_session_t *s)
{
    return s->errmsg;
}

void *media_rtmp_session_data(const media_rtmp_session_t *s)
{
    return s->cfg.data;
}

void media_rtmp_session_stats(const media_rtmp_session_t *s, media_rtmp_stats_t *out)
{
    *out = s->stats;
}

ax_slice_t media_rtmp_session_output(const media_rtmp_session_t *s)
{
    return AX_SLICE(s->out.base, s->out.len);
}

void media_rtmp_session_output_consume(media_rtmp_session_t *s, size_t n)
{
    AX_PRE(n <= s->out.len);
    ax_buf_consume(&s->out, n);
}

/* ---- closing ------------------------------------------------------------------------- */

static void release_publish(media_rtmp_session_t *s)
{
    ax_buf_close(&s->pending);
    ax_free(s->name);
    s->name = NULL;
    s->name_len = 0;
    s->have_avc = s->have_aac = false;
    memset(s->ts, 0, sizeof s->ts);
}

/* Closes the session with `err`; errmsg says why (first reason wins). Returns `err`. */
static int close_with(media_rtmp_session_t *s, int err)
{
    if (state(s) != MEDIA_RTMP_STATE_CLOSED) {
        ax_sm_move(&s->sm, MEDIA_RTMP_STATE_CLOSED);
        s->close_err = err;
    }
    release_publish(s);
    return err;
}

static int fail(media_rtmp_session_t *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(media_rtmp_session_t *s, int err, const char *fmt, ...)
{
    if (state(s) != MEDIA_RTMP_STATE_CLOSED) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
        va_end(ap);
    }
    return close_with(s, err);
}

/* ---- output ---------------------------------------------------------------------------- */

static int send_msg(media_rtmp_session_t *s, uint32_t csid, uint8_t type, uint32_t msid,
                    const uint8_t *payload, size_t len)
{
    int rv = media_rtmp__chunk_write(&s->out, s->out_chunk_size, csid, 0, type, msid, payload,
                                     len);
    if (rv == AX_EMSGSIZE)
        return fail(s, AX_ENOSPC, "output not taken by the caller exceeds max_output_bytes %u",
                    s->cfg.limits.max_output_bytes);
    if (rv != 0)
        return fail(s, rv, "queueing a reply: %s", ax_strerror(rv));
    return 0;
}

static int send_u32(media_rtmp_session_t *s, uint8_t type, uint32_t v)
{
    uint8_t b[4];
    ax_wr_be32(b, v);
    return send_msg(s, CSID_CONTROL, type, 0, b, sizeof b);
}

static int send_user_control(media_rtmp_session_t *s, uint16_t event, uint32_t v)
{
    uint8_t b[6];
    ax_wr_be16(b, event);
    ax_wr_be32(b + 2, v);
    return send_msg(s, CSID_CONTROL, MEDIA_RTMP__MSG_USER_CONTROL, 0, b, sizeof b);
}

/* Sends the command in s->cmd. */
static int send_cmd(media_rtmp_session_t *s, uint32_t csid, uint32_t msid, int build_rv)
{
    if (build_rv != 0)
        return fail(s, build_rv, "encoding a reply: %s", ax_strerror(build_rv));
    return send_msg(s, csid, MEDIA_RTMP__MSG_COMMAND_AMF0, msid, s->cmd.base, s->cmd.len);
}

static int put_prop_str(ax_buf_t *b, const char *key, ax_slice_t v)
{
    int rv = media_amf0_put_key(b, AX_SLICE(key, strlen(key)));
    return rv != 0 ? rv : media_amf0_put_string(b, v);
}

static int put_prop_cstr(ax_buf_t *b, const char *key, const char *v)
{
    return put_prop_str(b, key, AX_SLICE(v, strlen(v)));
}

static int put_prop_num(ax_buf_t *b, const char *key, double v)
{
    int rv = media_amf0_put_key(b, AX_SLICE(key, strlen(key)));
    return rv != 0 ? rv : media_amf0_put_number(b, v);
}

/* name, transaction id, then a null command object: the head of most replies. */
static int put_head(ax_buf_t *b, const char *name, double txn)
{
    ax_buf_reset(b);
    int rv = media_amf0_put_cstring(b, name);
    if (rv == 0)
        rv = media_amf0_put_number(b, txn);
    if (rv == 0)
        rv = media_amf0_put_null(b);
    return rv;
}

/* An info object {level, code, description[, details]}. */
static int put_info(ax_buf_t *b, const char *level, const char *code, ax_slice_t desc,
                    const char *details, size_t details_len)
{
    int rv = media_amf0_put_object_start(b);
    if (rv == 0)
        rv = put_prop_cstr(b, "level", level);
    if (rv == 0)
        rv = put_prop_cstr(b, "code", code);
    if (rv == 0)
        rv = put_prop_str(b, "description", desc);
    if (rv == 0 && details != NULL)
        rv = put_prop_str(b, "details", AX_SLICE(details, details_len));
    if (rv == 0)
        rv = media_amf0_put_object_end(b);
    return rv;
}

static int send_status(media_rtmp_session_t *s, uint32_t msid, const char *level,
                       const char *code, ax_slice_t desc)
{
    int rv = put_head(&s->cmd, "onStatus", 0);
    if (rv == 0)
        rv = put_info(&s->cmd, level, code, desc, s->name, s->name_len);
    return send_cmd(s, CSID_STREAM, msid, rv);
}

static int send_error(media_rtmp_session_t *s, double txn, const char *code, ax_slice_t desc)
{
    int rv = put_head(&s->cmd, "_error", txn);
    if (rv == 0)
        rv = put_info(&s->cmd, "error", code, desc, NULL, 0);
    return send_cmd(s, CSID_COMMAND, 0, rv);
}

/* _result(txn, null, value) where value is undefined (NAN) or a number. */
static int send_result(media_rtmp_session_t *s, double txn, bool has_number, double number)
{
    int rv = put_head(&s->cmd, "_result", txn);
    if (rv == 0)
        rv = has_number ? media_amf0_put_number(&s->cmd, number)
                        : media_amf0_put_undefined(&s->cmd);
    return send_cmd(s, CSID_COMMAND, 0, rv);
}

/* Refuses what is being published (AX_ENOTSUP) after telling the publisher why with an
 * error onStatus NetStream.Publish.Rejected, which ffmpeg and OBS show to their user. */
static int refuse_media(media_rtmp_session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int refuse_media(media_rtmp_session_t *s, const char *fmt, ...)
{
    char msg[AX_ERRMSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s->publish_stream != 0)
        send_status(s, s->publish_stream, "error", "NetStream.Publish.Rejected",
                    AX_SLICE(msg, strlen(msg)));
    return fail(s, AX_ENOTSUP, "%s", msg);
}

/* ---- media ----------------------------------------------------------------------------- */

static int64_t unwrap(struct unwrap *u, uint32_t ts)
{
    if (!u->started) {
        u->started = true;
        u->last = ts;
        u->ext = ts;
        return u->ext;
    }
    /* RTMP timestamps are 32-bit milliseconds and wrap after ~49.7 days; a signed
     * difference also carries small backward steps through unharmed. */
    u->ext += (int32_t)(ts - u->last);
    u->last = ts;
    return u->ext;
}

static const char *video_codec_name(unsigned id)
{
    switch (id) {
    case 2: return "Sorenson H.263";
    case 3: return "Screen video";
    case 4: return "On2 VP6";
    case 5: return "On2 VP6 with alpha";
    case 6: return "Screen video v2";
    case 12: return "HEVC (non-standard FLV id 12)";
    default: return "unknown";
    }
}

static const char *audio_format_name(unsigned f)
{
    static const char *const names[] = {
        "linear PCM, platform endian", "ADPCM", "MP3", "linear PCM, little endian",
        "Nellymoser 16 kHz mono", "Nellymoser 8 kHz mono", "Nellymoser", "G.711 A-law",
        "G.711 mu-law", "reserved", "AAC", "Speex", "unknown", "unknown", "MP3 8 kHz",
        "device-specific",
    };
    return f < AX_ARRAY_SIZE(names) ? names[f] : "unknown";
}

static int on_video(media_rtmp_session_t *s, uint32_t ts32, ax_slice_t body)
{
    media_flv_video_t v;
    int rv = media_flv_parse_video(body, &v);
    if (rv == AX_ENOTSUP) {
        /* Enhanced RTMP: bit 7 of the first byte, then a FourCC (HEVC, AV1, VP9). */
        char fourcc[5] = "????";
        for (size_t i = 0; i < 4 && i + 1 < body.len; i++)
            fourcc[i] = body.base[i + 1] >= 0x20 && body.base[i + 1] < 0x7f
                            ? (char)body.base[i + 1]
                            : '?';
        return refuse_media(s,
                            "Enhanced RTMP video (FourCC '%s') is not supported: publish H.264 "
                            "(AVC, codec id 7)",
                            fourcc);
    }
    if (rv == 0 && v.codec_id != MEDIA_FLV_CODEC_AVC) {
        unsigned id = v.codec_id;
        return refuse_media(
            s, "video codec id %u (%s) is not supported: publish H.264 (AVC, codec id 7)", id,
            video_codec_name(id));
    }
    if (rv != 0)
        return fail(s, rv, "malformed video tag at timestamp %u (%zu bytes): %s", ts32,
                    body.len, ax_strerror(rv));
    if (v.frame_type == 5) /* video info/command frame: carries no picture */
        return 0;
    switch (v.avc_packet_type) {
    case MEDIA_FLV_AVC_SEQUENCE_HEADER: {
        media_avc_config_t cfg;
        rv = media_avc_config_parse(v.body, &cfg);
        if (rv != 0)
            return fail(s, rv, "AVC sequence header (%zu bytes) refused: %s", v.body.len,
                        ax_strerror(rv));
        s->have_avc = true;
        s->nal_length_size = cfg.nal_length_size;
        if (s->cfg.cb.on_video_config != NULL)
            s->cfg.cb.on_video_config(s, &cfg);
        return 0;
    }
    case MEDIA_FLV_AVC_NALU: {
        if (!s->have_avc)
            return fail(s, AX_EPROTO,
                        "H.264 frame at timestamp %u before any AVC sequence header", ts32);
        if (v.body.len == 0)
            return 0;
        bool idr = false;
        rv = media_avc_check_nalus(v.body, s->nal_length_size, &idr);
        if (rv != 0)
            return fail(s, rv, "malformed H.264 NAL units at timestamp %u: %s", ts32,
                        ax_strerror(rv));
        media_frame_t f = {
            .track = MEDIA_TRACK_VIDEO,
            .dts = unwrap(&s->ts[MEDIA_TRACK_VIDEO], ts32),
            .cts = v.cts,
            .keyframe = v.frame_type == 1,
            .data = v.body,
        };
        s->stats.video_frames++;
        if (s->cfg.cb.on_frame != NULL)
            s->cfg.cb.on_frame(s, &f);
        return 0;
    }
    default: /* end of sequence: nothing to deliver */
        return 0;
    }
}

static int on_audio(media_rtmp_session_t *s, uint32_t ts32, ax_slice_t body)
{
    media_flv_audio_t a;
    int rv = media_flv_parse_audio(body, &a);
    if (rv == AX_ENOTSUP)
        return refuse_media(s, "Enhanced RTMP audio (SoundFormat 9) is not supported: publish "
                               "AAC (format 10)");
    if (rv == 0 && a.sound_format != MEDIA_FLV_SOUND_AAC) {
        unsigned f = a.sound_format;
        return refuse_media(s,
                            "audio format %u (%s) is not supported: publish AAC (format 10)", f,
                            audio_format_name(f));
    }
    if (rv != 0)
        return fail(s, rv, "malformed audio tag at timestamp %u (%zu bytes): %s", ts32, body.len,
                    ax_strerror(rv));
    if (a.aac_packet_type == 0) {
        media_aac_config_t cfg;
        rv = media_aac_config_parse(a.body, &cfg);
        if (rv != 0)
            return fail(s, rv, "AAC AudioSpecificConfig (%zu bytes) refused: %s", a.body.len,
                        ax_strerror(rv));
        s->have_aac = true;
        if (s->cfg.cb.on_audio_config != NULL)
            s->cfg.cb.on_audio_config(s, &cfg);
        return 0;
    }
    if (!s->have_aac)
        return fail(s, AX_EPROTO, "AAC frame at timestamp %u before any AudioSpecificConfig",
                    ts32);
    if (a.body.len == 0)
        return 0;
    media_frame_t f = {
        .track = MEDIA_TRACK_AUDIO,
        .dts = unwrap(&s->ts[MEDIA_TRACK_AUDIO], ts32),
        .cts = 0,
        .keyframe = true,
        .data = a.body,
    };
    s->stats.audio_frames++;
    if (s->cfg.cb.on_frame != NULL)
        s->cfg.cb.on_frame(s, &f);
    return 0;
}

static bool get_number(const media_amf0_value_t *obj, const char *key, double *out)
{
    const media_amf0_value_t *v = media_amf0_get(obj, key);
    if (v != NULL && v->type == MEDIA_AMF0_BOOLEAN) {
        *out = v->u.boolean;
        return true;
    }
    return media_amf0_as_number(v, out);
}

/* Encoded size of a top-level string value (for locating what follows @setDataFrame). */
static size_t string_size(const media_amf0_value_t *v)
{
    return (v->type == MEDIA_AMF0_LONG_STRING ? 5 : 3) + v->u.string.len;
}

static int amf_error(media_rtmp_session_t *s, int rv, const media_amf0_doc_t *doc,
                     const char *what)
{
    if (rv == AX_ETOODEEP)
        return fail(s, rv, "AMF0 nesting in %s exceeds max_amf_depth %u", what,
                    s->cfg.limits.max_amf_depth);
    if (rv == AX_ENOMEM)
        return fail(s, rv, "decoding %s: out of memory", what);
    return fail(s, rv, "malformed AMF0 in %s at offset %zu: %s", what, doc->error_offset,
                ax_strerror(rv));
}

static int decode(media_rtmp_session_t *s, ax_slice_t body, media_amf0_doc_t *doc,
                  const char *what)
{
    media_amf0_limits_t lim = {
        .max_depth = s->cfg.limits.max_amf_depth,
        .max_values = s->cfg.limits.max_command_len,
    };
    int rv = media_amf0_decode(body, &lim, doc);
    if (rv != 0)
        return amf_error(s, rv, doc, what);
    return 0;
}

/* @setDataFrame onMetaData {...} (or onMetaData {...}); other data messages are ignored. */
static int on_data(media_rtmp_session_t *s, ax_slice_t body)
{
    media_amf0_doc_t doc;
    int rv = decode(s, body, &doc, "data message");
    if (rv != 0)
        return rv;
    size_t i = 0;
    ax_slice_t name;
    ax_slice_t raw = body;
    if (doc.count > 0 && media_amf0_as_string(&doc.values[0], &name) &&
        ax_slice_eq_cstr(name, "@setDataFrame")) {
        size_t skip = string_size(&doc.values[0]);
        raw = AX_SLICE(body.base + skip, body.len - skip);
        i = 1;
    }
    if (doc.count >= i + 2 && media_amf0_as_string(&doc.values[i], &name) &&
        ax_slice_eq_cstr(name, "onMetaData") &&
        (doc.values[i + 1].type == MEDIA_AMF0_OBJECT ||
         doc.values[i + 1].type == MEDIA_AMF0_ECMA_ARRAY)) {
        const media_amf0_value_t *o = &doc.values[i + 1];
        media_rtmp_metadata_t md;
        memset(&md, 0, sizeof md);
        get_number(o, "width", &md.width);
        get_number(o, "height", &md.height);
        get_number(o, "framerate", &md.framerate);
        get_number(o, "videodatarate", &md.video_data_rate);
        get_number(o, "audiodatarate", &md.audio_data_rate);
        get_number(o, "audiosamplerate", &md.audio_sample_rate);
        if (!get_number(o, "audiochannels", &md.audio_channels)) {
            double stereo;
            if (get_number(o, "stereo", &stereo))
                md.audio_channels = stereo ? 2 : 1;
        }
        media_amf0_as_string(media_amf0_get(o, "encoder"), &md.encoder);
        md.raw = raw;
        if (s->cfg.cb.on_metadata != NULL)
            s->cfg.cb.on_metadata(s, &md);
    }
    media_amf0_doc_free(&doc);
    return 0;
}

/* Audio, video or data while publishing (or replayed after accept). */
static int on_media(media_rtmp_session_t *s, uint8_t type, uint32_t ts, ax_slice_t body)
{
    switch (type) {
    case MEDIA_RTMP__MSG_VIDEO:
        return body.len ? on_video(s, ts, body) : 0;
    case MEDIA_RTMP__MSG_AUDIO:
        return body.len ? on_audio(s, ts, body) : 0;
    default:
        return on_data(s, body);
    }
}

/* While PUBLISH_PENDING: keep the message (type, timestamp, length, bytes) for accept(). */
static int hold(media_rtmp_session_t *s, uint8_t type, uint32_t ts, ax_slice_t body)
{
    uint8_t h[9];
    h[0] = type;
    ax_wr_be32(h + 1, ts);
    ax_wr_be32(h + 5, (uint32_t)body.len);
    int rv = ax_buf_reserve(&s->pending, sizeof h + body.len);
    if (rv == AX_EMSGSIZE)
        return fail(s, AX_ENOSPC,
                    "media held while the publish awaits accept/reject exceeds "
                    "max_pending_bytes %u",
                    s->cfg.limits.max_pending_bytes);
    if (rv != 0)
        return fail(s, rv, "holding media while the publish is pending: %s", ax_strerror(rv));
    ax_buf_append(&s->pending, h, sizeof h);
    ax_buf_append(&s->pending, body.base, body.len);
    return 0;
}

static int on_media_message(media_rtmp_session_t *s, const struct media_rtmp__message *m,
                            ax_slice_t body)
{
    media_rtmp_state_t st = state(s);
    const char *what = m->type == MEDIA_RTMP__MSG_VIDEO ? "video" : "audio";
    bool is_data = m->type != MEDIA_RTMP__MSG_VIDEO && m->type != MEDIA_RTMP__MSG_AUDIO;
    if (st != MEDIA_RTMP_STATE_PUBLISHING && st != MEDIA_RTMP_STATE_PUBLISH_PENDING) {
        if (is_data) /* e.g. metadata before publish: nothing to attach it to */
            return 0;
        return fail(s, AX_EPROTO, "%s message while not publishing (state %s)", what,
                    media_rtmp_state_name(st));
    }
    if (!is_data && m->stream_id != s->publish_stream)
        return fail(s, AX_EPROTO, "%s message on message stream %u, but publishing on %u", what,
                    m->stream_id, s->publish_stream);
    if (st == MEDIA_RTMP_STATE_PUBLISH_PENDING)
        return hold(s, m->type, m->timestamp, body);
    return on_media(s, m->type, m->timestamp, body);
}

/* ---- commands ---------------------------------------------------------------------------- */

static int send_connect_result(media_rtmp_session_t *s, double txn, double encoding)
{
    ax_buf_t *b = &s->cmd;
    ax_buf_reset(b);
    int rv = media_amf0_put_cstring(b, "_result");
    if (rv == 0)
        rv = media_amf0_put_number(b, txn);
    if (rv == 0)
        rv = media_amf0_put_object_start(b);
    if (rv == 0)
        rv = put_prop_cstr(b, "fmsVer", "FMS/3,0,1,123");
    if (rv == 0)
        rv = put_prop_num(b, "capabilities", 31);
    if (rv == 0)
        rv = put_prop_num(b, "mode", 1);
    if (rv == 0)
        rv = media_amf0_put_object_end(b);
    if (rv == 0)
        rv = media_amf0_put_object_start(b);
    if (rv == 0)
        rv = put_prop_cstr(b, "level", "status");
    if (rv == 0)
        rv = put_prop_cstr(b, "code", "NetConnection.Connect.Success");
    if (rv == 0)
        rv = put_prop_cstr(b, "description", "Connection succeeded.");
    if (rv == 0)
        rv = put_prop_num(b, "objectEncoding", encoding);
    if (rv == 0)
        rv = media_amf0_put_object_end(b);
    return send_cmd(s, CSID_COMMAND, 0, rv);
}

static int cmd_connect(media_rtmp_session_t *s, const media_amf0_doc_t *d, double txn)
{
    if (state(s) != MEDIA_RTMP_STATE_CONNECTING)
        return fail(s, AX_EPROTO, "connect received twice");
    const media_amf0_value_t *o = d->count > 2 ? &d->values[2] : NULL;
    if (o == NULL || o->type != MEDIA_AMF0_OBJECT)
        return fail(s, AX_EPROTO, "connect without a command object");
    media_rtmp_connect_info_t info;
    memset(&info, 0, sizeof info);
    media_amf0_as_string(media_amf0_get(o, "app"), &info.app);
    media_amf0_as_string(media_amf0_get(o, "tcUrl"), &info.tc_url);
    media_amf0_as_string(media_amf0_get(o, "flashVer"), &info.flash_ver);
    double encoding = 0;
    get_number(o, "objectEncoding", &encoding);
    s->app = ax_strndup(info.app.len ? (const char *)info.app.base : "", info.app.len);
    if (s->app == NULL)
        return fail(s, AX_ENOMEM, "connect: out of memory");
    s->app_len = info.app.len;
    if (s->cfg.cb.on_connect != NULL) {
        int rv = s->cfg.cb.on_connect(s, &info);
        if (rv < 0) {
            char desc[AX_ERRMSG_LEN];
            snprintf(desc, sizeof desc, "connection rejected: %s", ax_strerror(rv));
            send_error(s, txn, "NetConnection.Connect.Rejected", AX_SLICE(desc, strlen(desc)));
            return fail(s, rv, "connect to app '%.*s' rejected by the application: %s",
                        (int)info.app.len, (const char *)info.app.base, ax_strerror(rv));
        }
    }
    int rv = send_u32(s, MEDIA_RTMP__MSG_WINDOW_ACK_SIZE, OUR_WINDOW_ACK_SIZE);
    if (rv == 0) {
        uint8_t b[5];
        ax_wr_be32(b, OUR_PEER_BANDWIDTH);
        b[4] = 2; /* dynamic */
        rv = send_msg(s, CSID_CONTROL, MEDIA_RTMP__MSG_SET_PEER_BANDWIDTH, 0, b, sizeof b);
    }
    if (rv == 0)
        rv = send_u32(s, MEDIA_RTMP__MSG_SET_CHUNK_SIZE, OUR_CHUNK_SIZE);
    if (rv != 0)
        return rv;
    s->out_chunk_size = OUR_CHUNK_SIZE;
    rv = send_connect_result(s, txn, encoding == 3 ? 3 : 0);
    if (rv != 0)
        return rv;
    ax_sm_move(&s->sm, MEDIA_RTMP_STATE_CONNECTED);
    return 0;
}

static int cmd_create_stream(media_rtmp_session_t *s, double txn)
{
    uint32_t id = 0;
    for (uint32_t i = 1; i <= s->max_streams; i++) {
        if (!(s->streams & (UINT64_C(1) << (i - 1)))) {
            id = i;
            break;
        }
    }
    if (id == 0) {
        ax_slice_t desc = AX_SLICE_LIT("too many streams on this connection");
        send_error(s, txn, "NetConnection.Call.Failed", desc);
        return fail(s, AX_ENOSPC, "createStream would exceed max_message_streams %u",
                    s->max_streams);
    }
    s->streams |= UINT64_C(1) << (id - 1);
    return send_result(s, txn, true, id);
}

static bool stream_exists(const media_rtmp_session_t *s, double id)
{
    if (!(id >= 1 && id <= s->max_streams) || id != (double)(uint32_t)id)
        return false;
    return (s->streams & (UINT64_C(1) << ((uint32_t)id - 1))) != 0;
}

/* The publisher withdrew a pending or live publish. */
static void unpublish(media_rtmp_session_t *s)
{
    media_rtmp_state_t st = state(s);
    if (st != MEDIA_RTMP_STATE_PUBLISHING && st != MEDIA_RTMP_STATE_PUBLISH_PENDING)
        return;
    ax_sm_move(&s->sm, MEDIA_RTMP_STATE_CONNECTED);
    s->publish_stream = 0;
    release_publish(s);
    if (s->cfg.cb.on_unpublish != NULL)
        s->cfg.cb.on_unpublish(s);
}

static int cmd_publish(media_rtmp_session_t *s, const media_amf0_doc_t *d, uint32_t msid)
{
    media_rtmp_state_t st = state(s);
    ax_slice_t name = {0};
    if (d->count > 3)
        media_amf0_as_string(&d->values[3], &name);
    if (st != MEDIA_RTMP_STATE_CONNECTED) {
        ax_slice_t desc = AX_SLICE_LIT("already publishing on this connection");
        send_status(s, msid, "error", "NetStream.Publish.BadName", desc);
        return fail(s, AX_EBADSTATE, "publish in state %s: one publish at a time",
                    media_rtmp_state_name(st));
    }
    if (!stream_exists(s, msid))
        return fail(s, AX_EPROTO, "publish on message stream %u, which createStream did not "
                                  "return", msid);
    if (name.len == 0) {
        send_status(s, msid, "error", "NetStream.Publish.BadName",
                    AX_SLICE_LIT("empty stream name (stream key)"));
        return fail(s, AX_EBADKEY, "publish with an empty stream name");
    }
    s->name = ax_strndup((const char *)name.base, name.len);
    if (s->name == NULL)
        return fail(s, AX_ENOMEM, "publish: out of memory");
    s->name_len = name.len;
    s->publish_stream = msid;
    ax_sm_move(&s->sm, MEDIA_RTMP_STATE_PUBLISH_PENDING);
    if (s->cfg.cb.on_publish == NULL)
        return media_rtmp_session_publish_accept(s);
    s->cfg.cb.on_publish(s, AX_SLICE(s->app, s->app_len), AX_SLICE(s->name, s->name_len));
    return 0;
}

static int cmd_play(media_rtmp_session_t *s, double txn, uint32_t msid)
{
    ax_slice_t desc = AX_SLICE_LIT("this server accepts publishing only; play is refused");
    if (send_status(s, msid, "error", "NetStream.Play.Failed", desc) == 0 && txn != 0)
        send_error(s, txn, "NetStream.Play.Failed", desc);
    return fail(s, AX_ENOTSUP, "play refused: this server accepts publishing only");
}

static int on_command(media_rtmp_session_t *s, const struct media_rtmp__message *m,
                      ax_slice_t body)
{
    media_amf0_doc_t d;
    int rv = decode(s, body, &d, "command message");
    if (rv != 0)
        return rv;
    ax_slice_t name;
    double txn = 0;
    if (d.count == 0 || !media_amf0_as_string(&d.values[0], &name)) {
        media_amf0_doc_free(&d);
        return fail(s, AX_EPROTO, "command message without a command name");
    }
    if (d.count > 1)
        media_amf0_as_number(&d.values[1], &txn);
    media_rtmp_state_t st = state(s);
    if (st == MEDIA_RTMP_STATE_CONNECTING && !ax_slice_eq_cstr(name, "connect")) {
        rv = fail(s, AX_EPROTO, "command '%.*s' before connect", (int)(name.len < 64 ? name.len : 64),
                  (const char *)name.base);
    } else if (ax_slice_eq_cstr(name, "connect")) {
        rv = cmd_connect(s, &d, txn);
    } else if (ax_slice_eq_cstr(name, "releaseStream")) {
        rv = txn != 0 ? send_result(s, txn, false, 0) : 0;
    } else if (ax_slice_eq_cstr(name, "FCPublish")) {
        rv = txn != 0 ? send_result(s, txn, false, 0) : 0;
        if (rv == 0) {
            ax_slice_t sn = {0};
            if (d.count > 3)
                media_amf0_as_string(&d.values[3], &sn);
            rv = put_head(&s->cmd, "onFCPublish", 0);
            if (rv == 0)
                rv = put_info(&s->cmd, "status", "NetStream.Publish.Start", sn, NULL, 0);
            rv = send_cmd(s, CSID_COMMAND, 0, rv);
        }
    } else if (ax_slice_eq_cstr(name, "createStream")) {
        rv = cmd_create_stream(s, txn);
    } else if (ax_slice_eq_cstr(name, "publish")) {
        rv = cmd_publish(s, &d, m->stream_id);
    } else if (ax_slice_eq_cstr(name, "FCUnpublish")) {
        uint32_t msid = s->publish_stream;
        rv = 0;
        if (msid != 0) {
            rv = send_status(s, msid, "status", "NetStream.Unpublish.Success",
                             AX_SLICE_LIT("stream unpublished"));
            if (rv == 0)
                unpublish(s);
        }
        if (rv == 0 && txn != 0 && state(s) != MEDIA_RTMP_STATE_CLOSED)
            rv = send_result(s, txn, false, 0);
    } else if (ax_slice_eq_cstr(name, "deleteStream")) {
        double id = 0;
        if (d.count > 3)
            media_amf0_as_number(&d.values[3], &id);
        if (stream_exists(s, id)) {
            if ((uint32_t)id == s->publish_stream)
                unpublish(s);
            s->streams &= ~(UINT64_C(1) << ((uint32_t)id - 1));
        }
        rv = 0;
    } else if (ax_slice_eq_cstr(name, "closeStream")) {
        if (m->stream_id != 0 && m->stream_id == s->publish_stream)
            unpublish(s);
        rv = 0;
    } else if (ax_slice_eq_cstr(name, "play") || ax_slice_eq_cstr(name, "play2")) {
        rv = cmd_play(s, txn, m->stream_id);
    } else if (ax_slice_eq_cstr(name, "_result") || ax_slice_eq_cstr(name, "_error") ||
               txn == 0) {
        rv = 0; /* answers to calls we never make, and notifications: nothing to say */
    } else {
        char desc[160];
        snprintf(desc, sizeof desc, "unknown command '%.*s'", (int)(name.len < 64 ? name.len : 64),
                 (const char *)name.base);
        rv = send_error(s, txn, "NetConnection.Call.Failed", AX_SLICE(desc, strlen(desc)));
    }
    media_amf0_doc_free(&d);
    return rv;
}

/* ---- messages ------------------------------------------------------------------------- */

static int need_len(media_rtmp_session_t *s, const struct media_rtmp__message *m, uint32_t n,
                    const char *what)
{
    if (m->length < n)
        return fail(s, AX_EPROTO, "%s message of %u bytes, expected at least %u", what,
                    m->length, n);
    return 0;
}

static int on_message(media_rtmp_session_t *s, const struct media_rtmp__message *m)
{
    s->stats.messages_in++;
    ax_slice_t body = AX_SLICE(m->payload, m->length);
    int rv;
    switch (m->type) {
    case MEDIA_RTMP__MSG_SET_CHUNK_SIZE: {
        if ((rv = need_len(s, m, 4, "Set Chunk Size")) != 0)
            return rv;
        uint32_t v = ax_rd_be32(m->payload);
        if (v == 0 || v > 0x7fffffff) /* the top bit must be zero (5.4.1) */
            return fail(s, AX_EPROTO, "Set Chunk Size %u is invalid", v);
        if (v > s->cfg.limits.max_chunk_size)
            return fail(s, AX_EMSGSIZE, "Set Chunk Size %u exceeds max_chunk_size %u", v,
                        s->cfg.limits.max_chunk_size);
        media_rtmp__chunk_set_size(&s->rd, v);
        return 0;
    }
    case MEDIA_RTMP__MSG_ABORT:
        if ((rv = need_len(s, m, 4, "Abort")) != 0)
            return rv;
        media_rtmp__chunk_abort(&s->rd, ax_rd_be32(m->payload));
        return 0;
    case MEDIA_RTMP__MSG_ACK:
        return need_len(s, m, 4, "Acknowledgement");
    case MEDIA_RTMP__MSG_WINDOW_ACK_SIZE:
        if ((rv = need_len(s, m, 4, "Window Acknowledgement Size")) != 0)
            return rv;
        s->peer_window = ax_rd_be32(m->payload);
        return 0;
    case MEDIA_RTMP__MSG_SET_PEER_BANDWIDTH:
        /* Limits what we send; we send almost nothing. */
        return need_len(s, m, 5, "Set Peer Bandwidth");
    case MEDIA_RTMP__MSG_USER_CONTROL: {
        if ((rv = need_len(s, m, 2, "User Control")) != 0)
            return rv;
        uint16_t ev = ax_rd_be16(m->payload);
        if (ev == MEDIA_RTMP__UC_PING_REQUEST) {
            if ((rv = need_len(s, m, 6, "User Control Ping Request")) != 0)
                return rv;
            return send_user_control(s, MEDIA_RTMP__UC_PING_RESPONSE,
                                     ax_rd_be32(m->payload + 2));
        }
        return 0; /* Stream Begin/EOF/Dry, Set Buffer Length, Ping Response: nothing to do */
    }
    case MEDIA_RTMP__MSG_AUDIO:
    case MEDIA_RTMP__MSG_VIDEO:
        return on_media_message(s, m, body);
    case MEDIA_RTMP__MSG_DATA_AMF3:
    case MEDIA_RTMP__MSG_COMMAND_AMF3:
        /* AMF3 messages from clients that negotiated objectEncoding 3 start with one format
         * byte (0) and then carry AMF0 values. */
        if (body.len == 0 || body.base[0] != 0)
            return fail(s, AX_ENOTSUP, "AMF3-encoded %s message is not supported",
                        m->type == MEDIA_RTMP__MSG_DATA_AMF3 ? "data" : "command");
        body = AX_SLICE(body.base + 1, body.len - 1);
        if (m->type == MEDIA_RTMP__MSG_COMMAND_AMF3)
            return on_command(s, m, body);
        return on_media_message(s, m, body);
    case MEDIA_RTMP__MSG_DATA_AMF0:
        return on_media_message(s, m, body);
    case MEDIA_RTMP__MSG_COMMAND_AMF0:
        return on_command(s, m, body);
    case MEDIA_RTMP__MSG_AGGREGATE:
        return fail(s, AX_ENOTSUP, "aggregate messages (type 22) are not supported");
    default:
        return 0; /* shared objects and unknown types: ignored */
    }
}

static int maybe_ack(media_rtmp_session_t *s)
{
    if (s->peer_window == 0 || s->bytes_in - s->acked < s->peer_window)
        return 0;
    s->acked = s->bytes_in;
    /* The sequence number is the byte count so far, modulo 2^32 (5.4.3). */
    return send_u32(s, MEDIA_RTMP__MSG_ACK, (uint32_t)s->bytes_in);
}

int media_rtmp_session_feed(media_rtmp_session_t *s, const uint8_t *buf, size_t len)
{
    AX_PRE(!s->in_feed);
    if (state(s) == MEDIA_RTMP_STATE_CLOSED)
        return AX_ECLOSED;
    s->in_feed = true;
    s->stats.bytes_in += len;
    int rv = 0;
    while (len > 0) {
        int n;
        if (state(s) == MEDIA_RTMP_STATE_HANDSHAKE) {
            n = media_rtmp__handshake_feed(&s->hs, buf, len, &s->out, s->errmsg);
            if (n < 0) {
                rv = close_with(s, n == AX_EMSGSIZE ? AX_ENOSPC : n);
                break;
            }
            if (media_rtmp__handshake_done(&s->hs))
                ax_sm_move(&s->sm, MEDIA_RTMP_STATE_CONNECTING);
        } else {
            struct media_rtmp__message m;
            bool have = false;
            n = media_rtmp__chunk_read(&s->rd, buf, len, &m, &have, s->errmsg);
            if (n < 0) {
                rv = close_with(s, n);
                break;
            }
            if (have)
                on_message(s, &m);
            if (state(s) == MEDIA_RTMP_STATE_CLOSED) {
                rv = s->close_err;
                break;
            }
        }
        buf += n;
        len -= (size_t)n;
        s->bytes_in += (size_t)n;
        if (maybe_ack(s) != 0) {
            rv = s->close_err;
            break;
        }
    }
    s->in_feed = false;
    return rv;
}

/* ---- the application's answers ---------------------------------------------------------- */

int media_rtmp_session_publish_accept(media_rtmp_session_t *s)
{
    if (state(s) != MEDIA_RTMP_STATE_PUBLISH_PENDING)
        return AX_EBADSTATE;
    int rv = send_user_control(s, MEDIA_RTMP__UC_STREAM_BEGIN, s->publish_stream);
    if (rv == 0) {
        char desc[AX_ERRMSG_LEN];
        snprintf(desc, sizeof desc, "%.*s is now published", (int)(s->name_len < 200 ? s->name_len : 200), s->name);
        rv = send_status(s, s->publish_stream, "status", "NetStream.Publish.Start",
                         AX_SLICE(desc, strlen(desc)));
    }
    if (rv != 0)
        return rv;
    ax_sm_move(&s->sm, MEDIA_RTMP_STATE_PUBLISHING);
    /* Deliver what arrived while the application was deciding. The buffer is detached
     * first: a callback may stop the session, which releases publish state. */
    ax_buf_t held = s->pending;
    ax_buf_init(&s->pending, s->cfg.limits.max_pending_bytes);
    size_t off = 0;
    while (off + 9 <= held.len && state(s) == MEDIA_RTMP_STATE_PUBLISHING) {
        uint8_t type = held.base[off];
        uint32_t ts = ax_rd_be32(held.base + off + 1);
        uint32_t n = ax_rd_be32(held.base + off + 5);
        rv = on_media(s, type, ts, AX_SLICE(held.base + off + 9, n));
        if (rv != 0)
            break;
        off += 9 + (size_t)n;
    }
    ax_buf_close(&held);
    return rv;
}

int media_rtmp_session_publish_reject(media_rtmp_session_t *s, int code, const char *description)
{
    if (state(s) != MEDIA_RTMP_STATE_PUBLISH_PENDING)
        return AX_EBADSTATE;
    if (code >= 0)
        code = AX_EACCES;
    const char *desc = description != NULL ? description : ax_strerror(code);
    send_status(s, s->publish_stream, "error",
                code == AX_EBADKEY ? "NetStream.Publish.BadName" : "NetStream.Publish.Rejected",
                AX_SLICE(desc, strlen(desc)));
    if (state(s) != MEDIA_RTMP_STATE_CLOSED)
        fail(s, code, "publish of '%.*s' rejected: %s", (int)(s->name_len < 100 ? s->name_len : 100),
             s->name, desc);
    return 0;
}

int media_rtmp_session_stop(media_rtmp_session_t *s)
{
    media_rtmp_state_t st = state(s);
    if (st == MEDIA_RTMP_STATE_CLOSED)
        return AX_EBADSTATE;
    if (st == MEDIA_RTMP_STATE_PUBLISHING || st == MEDIA_RTMP_STATE_PUBLISH_PENDING)
        send_status(s, s->publish_stream, "status", "NetStream.Unpublish.Success",
                    AX_SLICE_LIT("stopped by the server"));
    fail(s, AX_ECANCELED, "stopped by the server");
    return 0;
}

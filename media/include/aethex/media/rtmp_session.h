/*
 * The server side of one RTMP publishing connection, with no sockets and no clock.
 *
 * The caller feeds the bytes it read from the peer with media_rtmp_session_feed(); the
 * session answers by appending bytes to its output buffer (take them with
 * media_rtmp_session_output() and release them with media_rtmp_session_output_consume())
 * and reports what the peer did through the callbacks, synchronously, from inside feed()
 * (or from inside publish_accept/publish_reject for media held while a publish was pending).
 *
 * Lifecycle (state table in rtmp_session.c):
 *
 *   HANDSHAKE --C0C1/C2--> CONNECTING --connect--> CONNECTED --createStream/publish-->
 *   PUBLISH_PENDING --accept--> PUBLISHING --FCUnpublish/deleteStream--> CONNECTED
 *         any state --error/close--> CLOSED
 *
 * Any violation of a limit or of the protocol returns a negative AX_E* code, moves the
 * session to CLOSED and sets errmsg ("message length 16777215 exceeds max_message_len
 * 4194304 on chunk stream 4"); whatever error status the protocol allows has already been
 * appended to the output (flush it, then close the socket). A closed session refuses
 * further input with AX_ECLOSED. Nothing in one session touches another.
 *
 * Threading: a session is used from one thread at a time.
 */
#ifndef AETHEX_MEDIA_RTMP_SESSION_H
#define AETHEX_MEDIA_RTMP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/error.h"
#include "aethex/common/util.h"
#include "aethex/media/frame.h"

typedef struct media_rtmp_session media_rtmp_session_t;

/* Every limit the session enforces. media_rtmp_limits_default() fills sane values. */
typedef struct media_rtmp_limits {
    uint32_t max_chunk_size;       /* largest Set Chunk Size accepted from the peer */
    uint32_t max_message_len;      /* largest message (header-declared) accepted */
    uint32_t max_amf_depth;        /* nesting of AMF0 objects/arrays */
    uint32_t max_chunk_streams;    /* distinct chunk stream ids in use at once */
    uint32_t max_message_streams;  /* createStream calls that may be outstanding */
    uint32_t max_command_len;      /* size of one AMF0 command or data message */
    uint32_t max_pending_bytes;    /* media held while a publish awaits accept/reject */
    uint32_t max_output_bytes;     /* output not yet taken by the caller */
    uint32_t max_incomplete_bytes; /* payload held in unfinished messages, all chunk streams */
} media_rtmp_limits_t;

/*
 * Fills `l` with the defaults (docs/protocol-rtmp.md explains each): max_chunk_size 1 MiB,
 * max_message_len 4 MiB, max_amf_depth 16, max_chunk_streams 32, max_message_streams 4,
 * max_command_len 64 KiB, max_pending_bytes 8 MiB, max_output_bytes 1 MiB,
 * max_incomplete_bytes 8 MiB. max_message_streams is capped at 64 whatever it says.
 */
void media_rtmp_limits_default(media_rtmp_limits_t *l);

/* What the publisher's connect command said. Slices borrowed for the callback. */
typedef struct media_rtmp_connect_info {
    ax_slice_t app;
    ax_slice_t tc_url;
    ax_slice_t flash_ver;
} media_rtmp_connect_info_t;

/* @setDataFrame onMetaData, with the fields players and dashboards care about. */
typedef struct media_rtmp_metadata {
    double width, height, framerate;   /* 0 when absent */
    double video_data_rate, audio_data_rate; /* kbit/s, 0 when absent */
    double audio_sample_rate, audio_channels;
    ax_slice_t encoder;                /* borrowed; empty when absent */
    ax_slice_t raw;                    /* the whole AMF0 body after @setDataFrame (borrowed) */
} media_rtmp_metadata_t;

/*
 * Callbacks. Every pointer argument is borrowed for the duration of the call. Any may be
 * NULL. They fire from inside feed() (and accept()); they may call publish_accept/reject
 * and stop but must not free the session nor call feed().
 */
typedef struct media_rtmp_callbacks {
    /* The peer sent connect. Return 0 to accept, or a negative AX_E* code to refuse it
     * (the session answers _error NetConnection.Connect.Rejected, closes, and feed()
     * returns that code). */
    int (*on_connect)(media_rtmp_session_t *s, const media_rtmp_connect_info_t *info);
    /* The peer asked to publish `stream_name` (the stream key, with any "?query" left in)
     * of `app`. The session is now PUBLISH_PENDING: the application must call
     * media_rtmp_session_publish_accept() or _reject(), now or later (after an asynchronous
     * authorisation). When on_publish is NULL the session accepts by itself. An empty
     * stream name is refused (NetStream.Publish.BadName) without calling on_publish. */
    void (*on_publish)(media_rtmp_session_t *s, ax_slice_t app, ax_slice_t stream_name);
    void (*on_metadata)(media_rtmp_session_t *s, const media_rtmp_metadata_t *md);
    /* A new AVC sequence header / AAC AudioSpecificConfig (also when it changes mid-stream). */
    void (*on_video_config)(media_rtmp_session_t *s, const media_avc_config_t *cfg);
    void (*on_audio_config)(media_rtmp_session_t *s, const media_aac_config_t *cfg);
    /* One video or audio access unit, in the order received. */
    void (*on_frame)(media_rtmp_session_t *s, const media_frame_t *frame);
    /* The publisher stopped (FCUnpublish, deleteStream or closeStream on the publishing
     * stream), also when it withdraws a publish still PUBLISH_PENDING. Fires once per
     * on_publish, except after publish_reject()/stop() (the application knows) or when the
     * connection just ends (the caller sees its socket close, or feed() fail). */
    void (*on_unpublish)(media_rtmp_session_t *s);
} media_rtmp_callbacks_t;

typedef struct media_rtmp_session_config {
    media_rtmp_limits_t limits;
    media_rtmp_callbacks_t cb;
    void *data;                 /* user context, returned by media_rtmp_session_data() */
    uint32_t epoch_ms;          /* time field of S1 (injected: no clock in media/) */
    /* Fills `len` random bytes for S1. NULL: a fixed pattern (tests). */
    void (*random)(void *ctx, uint8_t *buf, size_t len);
    void *random_ctx;
} media_rtmp_session_config_t;

/* Fills `cfg` with default limits, no callbacks, epoch 0, no random source. */
void media_rtmp_session_config_default(media_rtmp_session_config_t *cfg);

/*
 * Creates a session in HANDSHAKE. `cfg` is copied (callbacks and `data` must outlive the
 * session). Returns 0, AX_ENOMEM, or AX_EINVAL for a zero limit (max_pending_bytes may be 0:
 * nothing is held, so media sent before accept closes the session), max_chunk_size over 2^31-1, or max_output_bytes below 3074
 * (S0S1S2 must fit). *out is NULL on failure.
 */
int media_rtmp_session_new(const media_rtmp_session_config_t *cfg, media_rtmp_session_t **out);

/* Frees the session and everything it holds. NULL does nothing. Never from a callback. */
void media_rtmp_session_free(media_rtmp_session_t *s);

/*
 * Feeds `len` bytes from the peer (borrowed; any split is fine, down to one byte at a time).
 * Returns 0 when all were consumed (partial messages are kept inside), or a negative AX_E*
 * code when the session failed or was closed from a callback (see the header comment):
 * a publish rejected from inside on_publish returns the code given to _reject (e.g.
 * AX_EBADKEY), stop() from a callback returns AX_ECANCELED. After that the session is
 * CLOSED and every later feed() returns AX_ECLOSED.
 */
int media_rtmp_session_feed(media_rtmp_session_t *s, const uint8_t *buf, size_t len);

/* Bytes to send to the peer, valid until the next call on the session. */
ax_slice_t media_rtmp_session_output(const media_rtmp_session_t *s);
void media_rtmp_session_output_consume(media_rtmp_session_t *s, size_t n);

/*
 * Answers a pending publish. accept: User Control Stream Begin + onStatus
 * NetStream.Publish.Start, held media is delivered (from inside this call), the session is
 * PUBLISHING. If held media breaks a limit or the protocol, the session closes and accept
 * returns that error (errmsg says why). reject: onStatus NetStream.Publish.BadName
 * (code AX_EBADKEY) or NetStream.Publish.Rejected (any other code) with `description`
 * (borrowed; may be NULL), and the session is CLOSED: flush the output, then close the socket.
 * Return 0, or AX_EBADSTATE when no publish is pending (e.g. the peer withdrew it).
 */
int media_rtmp_session_publish_accept(media_rtmp_session_t *s);
int media_rtmp_session_publish_reject(media_rtmp_session_t *s, int code, const char *description);

/*
 * Ends the session from the server side: onStatus NetStream.Unpublish.Success when a publish
 * is pending or live (on_unpublish does not fire), then CLOSED (errmsg "stopped by the
 * server"): flush the output, then close the socket. Returns 0, or AX_EBADSTATE when CLOSED.
 */
int media_rtmp_session_stop(media_rtmp_session_t *s);

typedef enum {
    MEDIA_RTMP_STATE_HANDSHAKE,
    MEDIA_RTMP_STATE_CONNECTING,
    MEDIA_RTMP_STATE_CONNECTED,
    MEDIA_RTMP_STATE_PUBLISH_PENDING,
    MEDIA_RTMP_STATE_PUBLISHING,
    MEDIA_RTMP_STATE_CLOSED,
    MEDIA_RTMP_STATE_COUNT
} media_rtmp_state_t;

media_rtmp_state_t media_rtmp_session_state(const media_rtmp_session_t *s);
/* "handshake", "connecting", "connected", "publish_pending", "publishing", "closed". */
const char *media_rtmp_state_name(media_rtmp_state_t st);
/* Why the session closed ("" while it is open). Valid until the session is freed. */
const char *media_rtmp_session_errmsg(const media_rtmp_session_t *s);
void *media_rtmp_session_data(const media_rtmp_session_t *s);

/* Counters for logs and /metrics. */
typedef struct media_rtmp_stats {
    uint64_t bytes_in;
    uint64_t messages_in;
    uint64_t video_frames;
    uint64_t audio_frames;
} media_rtmp_stats_t;
void media_rtmp_session_stats(const media_rtmp_session_t *s, media_rtmp_stats_t *out);

#endif /* AETHEX_MEDIA_RTMP_SESSION_H */

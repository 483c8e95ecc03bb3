/*
 * aethex-edge internals: one libuv loop owns every socket (RTMP listener and connections,
 * h2o's HTTP/1.1 + HTTP/2 listeners, timers, signals). Everything here runs on that loop
 * thread; nothing here is thread-safe and nothing needs to be.
 *
 *   rtmp_server.c  RTMP listener; one media_rtmp_session per connection
 *   channel.c      channels: publisher attachment, the HLS packager, held requests
 *   http_server.c  h2o on our loop: routing, playlists/segments/parts, blocking reloads
 *   transcode.c    one worker thread per transcoded stream (the only other threads)
 *   metrics.c      Prometheus text for /metrics
 *   config.c       config file, flags, keys file
 *   main.c         the loop, signals, graceful stop
 */
#ifndef AETHEX_EDGE_INTERNAL_H
#define AETHEX_EDGE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <h2o.h>
#include <uv.h>

#include "aethex/media/rtmp_session.h"
#include "aethex/media/transcode.h"

#include "config.h"

/* Counters for /metrics. Monotonic unless named *_active. */
struct edge_metrics {
    uint64_t rtmp_accepted;
    uint64_t rtmp_refused; /* closed at accept: over max-rtmp-conns or stopping */
    uint64_t rtmp_active;
    uint64_t rtmp_closed_error; /* closed for a protocol error, timeout or I/O error */
    uint64_t rtmp_bytes_in;
    uint64_t rtmp_bytes_out;
    uint64_t rtmp_backpressure; /* times reading was paused for unsent output */
    uint64_t publish_accepted;
    uint64_t publish_rejected;
    uint64_t frames_in[2]; /* video, audio */
    uint64_t media_errors; /* frames/configs the packager refused */
    uint64_t http_conns_accepted;
    uint64_t http_conns_refused;
    uint64_t http_conns_active;
    uint64_t http_requests;
    uint64_t http_status[6]; /* by class: [2] = 2xx ... [5] = 5xx */
    uint64_t http_bytes_out; /* body bytes handed to h2o */
    uint64_t holds_active;   /* blocking reloads waiting */
    uint64_t holds_answered;
    uint64_t holds_timed_out;
    uint64_t segments; /* completed segments of channels already freed */
    uint64_t parts;    /* completed parts of channels already freed */
    uint64_t transcodes_started;
    uint64_t transcodes_refused;      /* admission: served source-only */
    uint64_t transcode_rungs_dropped; /* a worker fell behind real time */
    uint64_t transcode_frames_lost;   /* source frames not queued: worker queue full */
    uint64_t transcode_frames;        /* rung frames packaged, all rungs */
    uint64_t relay_requests;          /* viewer requests for relayed channels */
    uint64_t relay_upstream_requests; /* pulls started (requests to an origin) */
    uint64_t relay_upstream_errors;   /* pulls that failed */
    uint64_t relay_hits;              /* served from a READY copy */
    uint64_t relay_coalesced;         /* joined a pull in flight */
    uint64_t relay_bytes_in;          /* body bytes pulled */
    uint64_t relay_waiting;           /* viewer requests waiting on a pull (gauge) */
    uint64_t coord_authorize_ok;
    uint64_t coord_authorize_refused;
    uint64_t coord_authorize_failed; /* no answer: coordinator unreachable or timed out */
    uint64_t coord_heartbeats;
    uint64_t coord_heartbeat_errors;
    uint64_t coord_end_streams;
    uint64_t coord_kicks; /* publishers stopped by a coordinator push */
};

struct edge_relay;
struct edge_coord;
struct edge_viewers;

struct edge {
    uv_loop_t *loop;
    edge_config_t cfg;
    edge_keys_t keys;

    uv_tcp_t rtmp_listener;
    uv_tcp_t http_listener;
    uv_tcp_t tls_listener;
    bool rtmp_listening, http_listening, tls_listening;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t sweep; /* 250 ms: RTMP deadlines, channel expiry, stop progress */
    uv_timer_t stop_deadline;

    h2o_globalconf_t h2o_config;
    h2o_context_t h2o_ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_accept_ctx_t tls_accept_ctx;
    void *ssl_ctx;              /* SSL_CTX *, owned */
    h2o_timeout_t hold_timeout; /* blocking reload holds */
    bool hold_timeout_ready;
    h2o_linklist_t holds; /* struct hold (channel.c): requests waiting for media */
    bool h2o_ready;

    h2o_linklist_t rtmp_conns;       /* struct rtmp_conn */
    h2o_linklist_t http_conns;       /* struct http_conn */
    h2o_linklist_t channels;         /* struct edge_channel */
    h2o_linklist_t transcodes;       /* struct edge_transcode: every worker not yet joined */
    uint64_t transcode_last_drop_ms; /* loop time of the last dropped rung (admission) */
    uint32_t nchannels;

    struct edge_relay *relay;     /* owned; NULL unless relaying (relay.c) */
    struct edge_coord *coord;     /* owned; NULL in standalone mode (coord.c) */
    struct edge_viewers *viewers; /* owned (viewers.c) */

    bool stopping;
    uint64_t stop_began_ms;
    bool stop_forced; /* the grace deadline passed: connections were cut */
    uint64_t started_ms;
    struct edge_metrics m;
};

/* --- rtmp_server.c ---------------------------------------------------------------------- */
int edge_rtmp_start(struct edge *e);
/* Stops accepting and tells each publisher the stream is over; closes every connection
 * once its output is flushed (or at the shutdown deadline). */
void edge_rtmp_stop(struct edge *e);
/* Closes every remaining connection now (stop deadline reached). */
void edge_rtmp_close_all(struct edge *e);
/* Called by the sweep timer: handshake and idle deadlines. */
void edge_rtmp_sweep(struct edge *e, uint64_t now_ms);
/* Closes the publishing connection of a channel (used when a channel is dropped). */
struct rtmp_conn;
void edge_rtmp_conn_kick(struct rtmp_conn *c, const char *reason);
/* Milliseconds since the connection last delivered a byte. */
uint64_t edge_rtmp_conn_idle_ms(const struct rtmp_conn *c, uint64_t now_ms);

/* --- channel.c -------------------------------------------------------------------------- */
struct edge_channel;

/* Initialises the hold timeout (needs the loop). Returns 0. */
int edge_channel_start(struct edge *e);

/*
 * Finds the channel named `name`, creating it when `create` (NULL when absent, when the
 * name is invalid or when max-channels is reached).
 */
struct edge_channel *edge_channel_find(struct edge *e, ax_slice_t name, bool create);
const char *edge_channel_name(const struct edge_channel *ch);

/*
 * Attaches `conn` as the publisher. Returns 0, or AX_ELIVE when another publisher is live.
 * A channel that had a publisher before continues its playlists with a discontinuity.
 */
int edge_channel_publish_begin(struct edge_channel *ch, struct rtmp_conn *conn);
/* Detaches the publisher (no-op when `conn` is not the publisher). Held requests that can
 * no longer be satisfied are answered. */
void edge_channel_publish_end(struct edge_channel *ch, struct rtmp_conn *conn);
void edge_channel_on_video_config(struct edge_channel *ch, const media_avc_config_t *cfg);
void edge_channel_on_audio_config(struct edge_channel *ch, const media_aac_config_t *cfg);
void edge_channel_on_frame(struct edge_channel *ch, const media_frame_t *f);
/* Sweep: drops channels that have had no publisher for channel-linger-ms. */
void edge_channel_sweep(struct edge *e, uint64_t now_ms);
/* Answers every held request (503). Stop path. */
void edge_channel_release_holds(struct edge *e);
/* Frees every channel and disposes of the hold timeout. */
void edge_channel_free_all(struct edge *e);
/* Serves a request under /live/<channel>/<rest>. Returns 0 (h2o handler convention). */
int edge_channel_serve(struct edge *e, h2o_req_t *req, ax_slice_t channel, ax_slice_t rest,
                       ax_slice_t query);
size_t edge_channel_count_live(const struct edge *e);
/* Appends per-channel Prometheus lines at buf+off; returns the new offset (<= cap). */
size_t edge_channel_metrics(struct edge *e, char *buf, size_t off, size_t cap);

/* --- relay.c ---------------------------------------------------------------------------- */
/* Creates the relay when --relay-origin is set or a coordinator is configured (else does
 * nothing). Returns 0 or AX_EINVAL (bad --relay-origin). */
int edge_relay_start(struct edge *e);
bool edge_relay_enabled(const struct edge *e);
/* Serves /live/<channel>/<rest> for a channel not published here, from the origin's copy. */
int edge_relay_serve(struct edge *e, h2o_req_t *req, ax_slice_t channel, ax_slice_t rest,
                     ax_slice_t query);
/* Sweep: pull deadlines (504), stale/idle entries, relay-max-bytes. */
void edge_relay_sweep(struct edge *e, uint64_t now_ms);
/* Stop path: answers every waiting viewer 503 and cancels pulls in flight. */
void edge_relay_release(struct edge *e);
/* Frees everything (after edge_relay_release), closing pooled origin sockets. */
void edge_relay_free(struct edge *e);
size_t edge_relay_metrics(struct edge *e, char *buf, size_t off, size_t cap);
size_t edge_relay_channel_count(const struct edge *e);
const char *edge_relay_pull_state_name(int state);
/* Pure (unit-tested): "http://IP:port[/prefix]" -> host, port, prefix (no trailing '/').
 * Returns 0 or AX_EINVAL (not http, no IP literal, bad port, too long). */
int edge_relay_parse_url(const char *url, char *host, size_t hostlen, uint16_t *port,
                         char *prefix, size_t prefixlen);
/* Pure (unit-tested): the cache key of a relayed request: `rest` plus the canonical
 * _HLS_msn/_HLS_part/_HLS_skip query for media playlists. 0, AX_EINVAL (400), AX_ENOENT. */
int edge_relay_key(ax_slice_t rest, ax_slice_t query, char *key, size_t keylen);

/* --- coord.c ---------------------------------------------------------------------------- */
/* Coordinator mode: the RPC client, registration, heartbeats, publish authorisation. */
bool edge_coord_enabled(const struct edge *e);
int edge_coord_start(struct edge *e);
/* Stop path: ends every stream this edge still reports and closes the client. */
void edge_coord_stop(struct edge *e);
/* The origin of `channel` (borrowed), from the coordinator's LookupChannel. Calls `cb` once
 * later with 0 and the origin's public HLS base URL (borrowed for the call), AX_ENOENT (not
 * live anywhere) or another error; or returns < 0 now and never calls it. */
typedef void (*edge_coord_origin_cb)(struct edge *e, const char *channel, int status,
                                     const char *origin_url);
int edge_coord_lookup_origin(struct edge *e, const char *channel, edge_coord_origin_cb cb);

/* Publish authorisation (the RTMP session waits, PUBLISH_PENDING): calls
 * edge_rtmp_conn_authorized(conn, ...) exactly once later, unless
 * edge_coord_authorize_cancel(conn) runs first. `key` borrowed. Returns 0 or < 0. */
int edge_coord_authorize(struct edge *e, struct rtmp_conn *conn, ax_slice_t key);
void edge_coord_authorize_cancel(struct edge *e, struct rtmp_conn *conn);
/* The answer: status 0 with the channel slug and stream id (borrowed), AX_EBADKEY,
 * AX_ELIVE, or another error (coordinator unreachable). */
void edge_rtmp_conn_authorized(struct rtmp_conn *c, int status, const char *slug,
                               const char *channel_id, const char *stream_id, const char *why);
/* Calls `fn` for every live publisher: channel slug, channel id, stream id (borrowed). */
void edge_rtmp_each_publisher(struct edge *e,
                              void (*fn)(void *arg, const char *slug, const char *channel_id,
                                         const char *stream_id),
                              void *arg);
/* Stops the publishers matching `stream_id`, or `channel_id` (and `key_hash` when not
 * NULL); all borrowed, NULL/"" match nothing. Returns how many were stopped. */
unsigned edge_rtmp_kick_matching(struct edge *e, const char *stream_id, const char *channel_id,
                                 const uint8_t *key_hash, const char *reason);
/* SHA-256 of a stream key (what KeyRevoked names). */
void edge_coord_key_hash(ax_slice_t key, uint8_t out[32]);
/* True when no coordinator call is in flight (a stop waits for EndStreams). */
bool edge_coord_idle(const struct edge *e);
/* The stream `stream_id` (borrowed) ended here: EndStream is sent (best effort). */
void edge_coord_end_stream(struct edge *e, const char *stream_id, const char *reason);
size_t edge_coord_metrics(struct edge *e, char *buf, size_t off, size_t cap);

/* --- viewers.c -------------------------------------------------------------------------- */
/* Viewer counting: distinct HTTP connections that asked for a channel's media within the
 * last EDGE_VIEWER_WINDOW_MS (see docs/edge.md). */
#define EDGE_VIEWER_WINDOW_MS 10000
int edge_viewers_start(struct edge *e);
void edge_viewers_seen(struct edge *e, ax_slice_t channel, uint64_t conn_id);
/* Viewers of `channel` now (NULL: all channels). */
uint32_t edge_viewers_count(struct edge *e, const char *channel);
/* Calls `fn` for each channel with viewers: name (borrowed) and count. */
void edge_viewers_each(struct edge *e, void (*fn)(void *arg, const char *channel, uint32_t n),
                       void *arg);
void edge_viewers_sweep(struct edge *e, uint64_t now_ms);
void edge_viewers_free(struct edge *e);

/* --- http_server.c ---------------------------------------------------------------------- */
int edge_http_start(struct edge *e);
/* Stops accepting, asks h2o to shut connections down gracefully. */
void edge_http_stop(struct edge *e);
/* --- transcode.c ----------------------------------------------------------------------- */
/* The worker's input queue: beyond either, source frames are not queued (until the next
 * keyframe) and counted in transcode_frames_lost. 10 s at 30 fps. */
#define EDGE_TRANSCODE_QUEUE_FRAMES 300
#define EDGE_TRANSCODE_QUEUE_BYTES (64u << 20)
/* Behind real time: a frame waited longer than this in the queue, or more frames than this
 * wait (one GOP of 2 s at 30 fps). The worker then drops its lowest rung. */
#define EDGE_TRANSCODE_MAX_LAG_MS 1000
#define EDGE_TRANSCODE_MAX_BACKLOG 60
/* After a drop, the backlog it leaves needs time to drain before the next decision. */
#define EDGE_TRANSCODE_DROP_COOLDOWN_MS 2000
/* Admission: no new transcode while a worker dropped a rung this recently (the host is out
 * of CPU); on top of --max-transcodes. */
#define EDGE_TRANSCODE_OVERLOAD_MS 30000

/* The transcoder module's file name (media/transcode.h, "Loading the transcoder on demand"). */
#define EDGE_TRANSCODE_MODULE "aethex-transcode.so"

/*
 * Loads the transcoder module (`path`, or "" for EDGE_TRANSCODE_MODULE next to the
 * executable) with dlopen, checks its table's version and size, and passes it the log level.
 * Called once at start when transcoding is on; the module is never unloaded. Returns 0, or
 * AX_ENOENT / AX_EINVAL / AX_EMSGSIZE with the reason in `err`.
 */
int edge_transcode_load(const char *path, char *err, size_t errlen);
/* Tests: use the statically linked transcoder (&media_transcode_ops). */
void edge_transcode_use_ops(const media_transcode_ops_t *ops);
/* True once a transcoder is available: edge_transcode_start() needs it. */
bool edge_transcode_loaded(void);

struct edge_transcode;

/* A rung as opened: its size, rate and decoder configuration (borrowed during on_ready). */
typedef struct edge_transcode_rung {
    uint32_t width, height, kbps;
    media_avc_config_t avc;
} edge_transcode_rung_t;

/* Called on the loop, from the async callback, in the order the worker produced them. */
typedef struct edge_transcode_cbs {
    void (*on_ready)(struct edge_transcode *t, const edge_transcode_rung_t *rungs, unsigned n);
    /* `f` borrowed. Rung frames in decode order. */
    void (*on_frame)(struct edge_transcode *t, unsigned rung, const media_frame_t *f);
    void (*on_dropped)(struct edge_transcode *t, unsigned rung);
    /* Could not open, or failed for good: no more frames will come. */
    void (*on_failed)(struct edge_transcode *t);
    /* Every frame pushed before edge_transcode_finish() was delivered. */
    void (*on_done)(struct edge_transcode *t);
    /* edge_transcode_close_all() is about to close it (optional). */
    void (*on_closing)(struct edge_transcode *t);
} edge_transcode_cbs_t;

/*
 * Starts a worker thread that opens a transcoder for `src` (copied) and `rungs` (copied,
 * already selected against the source, preset filled) when the first keyframe arrives.
 * Returns 0 and *out, or a libuv error (logged). Loop thread only, as every
 * edge_transcode_* call.
 */
int edge_transcode_start(struct edge *e, const char *channel, const media_avc_config_t *src,
                         const media_transcode_rung_t *rungs, size_t nrungs,
                         const edge_transcode_cbs_t *cb, void *data, struct edge_transcode **out);
void *edge_transcode_data(const struct edge_transcode *t);
void edge_transcode_set_data(struct edge_transcode *t, void *data);
/* Queues a copy of a source video frame (audio is ignored). Never blocks. Returns 0 or
 * AX_ENOSPC (queue full: the frame, and what follows until a keyframe, is not transcoded). */
int edge_transcode_push(struct edge_transcode *t, const media_frame_t *f);
/* End of stream: the worker flushes, then on_done fires. */
void edge_transcode_finish(struct edge_transcode *t);
bool edge_transcode_done(const struct edge_transcode *t);
/* Cancels and joins the worker (it finishes at most the frame in hand), drops whatever was
 * not delivered; the memory goes in the async handle's close callback. No callback fires. */
void edge_transcode_close(struct edge_transcode *t);
/* Stop path: closes every worker. */
void edge_transcode_close_all(struct edge *e);
/* Workers running (not yet closed). */
size_t edge_transcode_count(const struct edge *e);

/* True when no HTTP connection is left. */
bool edge_http_idle(const struct edge *e);
/* While stopping: shuts down connections with nothing left to write (all with `force`). */
void edge_http_stop_sweep(struct edge *e, bool force);
void edge_http_dispose(struct edge *e);

/* Sends a complete response whose body is `body` (borrowed: must stay valid until the
 * request's pool is cleared, see edge_http_send_ref). Adds CORS headers. */
void edge_http_send(struct edge *e, h2o_req_t *req, int status, const char *content_type,
                    const char *cache_control, h2o_iovec_t *bufs, size_t nbufs);
/* Sends a short text error ("404 not found"). */
void edge_http_send_error(struct edge *e, h2o_req_t *req, int status, const char *reason,
                          const char *cache_control);
/* Calls `release(p)` when `req` is done (its pool is cleared): how ring bytes stay alive
 * for exactly as long as h2o may still write them. */
void edge_http_on_done(h2o_req_t *req, void (*release)(void *p), void *p);

/*
 * Splits a request path. Accepts "/live/<channel>/<rest>" (channel valid, rest made of
 * [A-Za-z0-9._-] with no "..") and "/metrics". Returns EDGE_ROUTE_* and fills the slices
 * (borrowed from `path`); EDGE_ROUTE_BAD for anything malformed (400), EDGE_ROUTE_NONE for a
 * well-formed path we do not serve (404).
 */
enum edge_route { EDGE_ROUTE_BAD, EDGE_ROUTE_NONE, EDGE_ROUTE_METRICS, EDGE_ROUTE_LIVE };
enum edge_route edge_http_route(ax_slice_t path, size_t max_path, ax_slice_t *channel,
                                ax_slice_t *rest, ax_slice_t *query);

/* --- metrics.c -------------------------------------------------------------------------- */
/* Renders Prometheus text into `buf` (taken from the request pool by the caller). */
size_t edge_metrics_render(struct edge *e, char *buf, size_t cap);
/* printf into buf+off, never past cap; returns the new offset. */
size_t edge_metrics_append(char *buf, size_t off, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

uint64_t edge_now_ms(struct edge *e);

#endif /* AETHEX_EDGE_INTERNAL_H */

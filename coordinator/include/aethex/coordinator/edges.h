/*
 * The coordinator's in-memory edge registry (docs/coordinator.md "Edges and RPC").
 *
 * Edges register and heartbeat over the RPC (proto/aethex.proto) to the leader; the registry
 * keeps what they said so that routing never waits on the database, and judges health by
 * heartbeat age on an injected clock (STYLE 10). It also knows which edge is the origin of
 * each live channel (set by AuthorizePublish, cleared by EndStream, refreshed by
 * heartbeats). Pure: no sockets, no database; the RPC layer (coordinator/src/rpc.c)
 * persists what changes to the `edges` and `streams` tables through the write queue.
 *
 * Followers' registries are empty (edges talk to the leader only); a new leader's fills as
 * edges re-register on their new connection.
 *
 * Threading: the coordinator's loop thread only. Nothing here allocates per query.
 */
#ifndef AETHEX_COORDINATOR_EDGES_H
#define AETHEX_COORDINATOR_EDGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/clock.h"
#include "aethex/common/error.h"

#define COORD_EDGES_ID_MAX 64   /* edge id, region, channel slug, channel/stream ids */
#define COORD_EDGES_URL_MAX 512 /* hls_base_url, chat_url, rtmp_url */
#define COORD_EDGES_DEFAULT_TIMEOUT_MS 3000
#define COORD_EDGES_DEFAULT_HEARTBEAT_MS 1000

typedef struct coord_edges coord_edges_t;

/* One edge. Strings are NUL-terminated and owned by the registry: valid until the next call
 * that changes the registry (register, heartbeat, forget). */
typedef struct coord_edge_info {
    const char *edge_id; /* RegisterEdge.edge_id = edges.name */
    const char *region;
    const char *hls_base_url;   /* "http://host:port": viewers go to <this>/live/<slug>/... */
    const char *chat_url;       /* may be "" */
    const char *rtmp_url;       /* may be "" */
    uint32_t capacity_viewers;  /* 0: unlimited (aethex.proto) */
    uint32_t capacity_streams;  /* 0: unlimited */
    uint32_t viewers;           /* from the last heartbeat */
    uint32_t live_streams;      /* channels it is origin of, from the last heartbeat */
    uint32_t load_permille;     /* Heartbeat.load * 1000, clamped to 0..1000 */
    bool draining;              /* reserved: no way to drain an edge yet */
    bool connected;             /* its RPC connection is open on this coordinator */
    uint64_t conn_id;           /* that connection (proto_rpc_peer_t.conn_id), 0 if none */
    uint64_t registered_ms;     /* clock now_ms of the last RegisterEdge */
    uint64_t last_heartbeat_ms; /* clock now_ms of the last Heartbeat (or the register) */
    bool healthy;               /* last_heartbeat_ms younger than the timeout, now */
} coord_edge_info_t;

/* What RegisterEdge says. Borrowed for the call (copied). */
typedef struct coord_edge_reg {
    const char *edge_id, *region, *hls_base_url, *chat_url, *rtmp_url;
    uint32_t capacity_viewers, capacity_streams;
} coord_edge_reg_t;

/* A live channel's origin. Strings owned by the registry (valid as coord_edge_info_t's). */
typedef struct coord_origin {
    const char *channel_slug;
    const char *channel_id;
    const char *stream_id;
    const char *edge_id; /* the origin edge */
    uint64_t since_ms;   /* clock now_ms of the AuthorizePublish */
} coord_origin_t;

typedef struct coord_edges_config {
    ax_clock_t *clock;        /* must outlive the registry; NULL: ax_clock_system() */
    uint32_t edge_timeout_ms; /* older heartbeat: unhealthy (COORD_EDGES_DEFAULT_TIMEOUT_MS) */
    uint32_t max_edges;       /* 256 */
    uint32_t max_origins;     /* live channels: 65536 */
} coord_edges_config_t;

void coord_edges_config_default(coord_edges_config_t *cfg);

/* Returns 0, AX_EINVAL (bad limits) or AX_ENOMEM; *out NULL on failure. `cfg` copied. */
int coord_edges_new(const coord_edges_config_t *cfg, coord_edges_t **out);
/* NULL does nothing. */
void coord_edges_free(coord_edges_t *e);

/*
 * Registers (or re-registers: every field replaced) edge `reg->edge_id` on connection
 * `conn_id`, healthy from now. Returns 0; AX_EINVAL (an empty or over-long id/region/URL,
 * or an hls_base_url not starting with http:// or https://) with `errmsg` (AX_ERRMSG_LEN);
 * AX_ENOSPC (max_edges); AX_ENOMEM. *changed (may be NULL) says whether anything that is
 * persisted differs from before (so the caller writes the `edges` row only then).
 */
int coord_edges_register(coord_edges_t *e, const coord_edge_reg_t *reg, uint64_t conn_id,
                         bool *changed, char *errmsg);

/* One channel of a heartbeat. Borrowed. */
typedef struct coord_edge_channel {
    const char *channel_slug;
    const char *channel_id;
    const char *stream_id;
    uint32_t viewers;
    bool origin;
} coord_edge_channel_t;

/*
 * A heartbeat of `edge_id` (borrowed) arrived on `conn_id`: updates load and viewers and
 * stamps the time. Returns 0 or AX_ENOENT when the edge is not registered on that connection
 * (the edge must register again: a new leader starts empty).
 */
int coord_edges_heartbeat(coord_edges_t *e, const char *edge_id, uint64_t conn_id, float load,
                          uint32_t viewers, const coord_edge_channel_t *channels, size_t nchannels);

/* The connection `conn_id` closed: its edge stays known (and ages out by heartbeat) but is
 * marked not connected. */
void coord_edges_disconnected(coord_edges_t *e, uint64_t conn_id);

/* Forgets an edge entirely (and the origins on it). Returns 0 or AX_ENOENT. */
int coord_edges_forget(coord_edges_t *e, const char *edge_id);

/* Looks up one edge (borrowed id). Returns 0 with *out filled, or AX_ENOENT. */
int coord_edges_find(const coord_edges_t *e, const char *edge_id, coord_edge_info_t *out);

/* The edge registered on `conn_id`, or AX_ENOENT. */
int coord_edges_find_conn(const coord_edges_t *e, uint64_t conn_id, coord_edge_info_t *out);

/* Whether `edge_id` is known and its last heartbeat is younger than the timeout. */
bool coord_edges_healthy(const coord_edges_t *e, const char *edge_id);

/* Number of edges known, and the i-th (0 <= i < count; order is stable between changes).
 * Iterating is how routing snapshots the registry: for (i..count) coord_edges_at(e, i, &x). */
size_t coord_edges_count(const coord_edges_t *e);
void coord_edges_at(const coord_edges_t *e, size_t i, coord_edge_info_t *out);

/*
 * Records `edge_id` as the origin of channel `slug` (all borrowed, copied). Replaces an
 * earlier origin of that slug. Returns 0, AX_EINVAL (empty or too long), AX_ENOSPC
 * (max_origins), AX_ENOMEM.
 */
int coord_edges_set_origin(coord_edges_t *e, const char *slug, const char *channel_id,
                           const char *stream_id, const char *edge_id);

/* Clears the origin whose stream is `stream_id`. Returns 0 or AX_ENOENT. */
int coord_edges_clear_origin(coord_edges_t *e, const char *stream_id);

/* The origin of live channel `slug` (borrowed), or AX_ENOENT. */
int coord_edges_origin(const coord_edges_t *e, const char *slug, coord_origin_t *out);

/* Number of live channels with an origin known. */
size_t coord_edges_origin_count(const coord_edges_t *e);

#endif /* AETHEX_COORDINATOR_EDGES_H */

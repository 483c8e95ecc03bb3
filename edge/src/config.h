/*
 * aethex-edge configuration: a `key = value` file plus command-line flags that use the
 * same names (`rtmp-listen = 127.0.0.1:1935` in the file is `--rtmp-listen 127.0.0.1:1935`
 * on the command line; flags win). And the standalone keys file: `<channel> <key>` lines.
 *
 * Pure parsing: no sockets, no loop. Loop thread only (startup and SIGHUP reload).
 */
#ifndef AETHEX_EDGE_CONFIG_H
#define AETHEX_EDGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/log.h"
#include "aethex/common/util.h"

#define EDGE_HOST_LEN 64
#define EDGE_PATH_LEN 512
#define EDGE_CHANNEL_MAX 64 /* longest channel name: [A-Za-z0-9_-]{1,64} */
#define EDGE_KEY_MAX 128    /* longest stream key */
#define EDGE_KEYS_MAX 4096  /* channels a keys file may list */
#define EDGE_CONFIG_LINE_MAX 1024
#define EDGE_LADDER_MAX 6        /* rungs in --ladder: 6 + the source + audio = media/'s 8 */
#define EDGE_LADDER_TEXT_MAX 256 /* longest --ladder value */
#define EDGE_PRESET_LEN 16       /* = MEDIA_TRANSCODE_NAME_LEN */

/* One rung of the edge's ladder, as configured (selected against each source later). */
typedef struct edge_rung {
    uint32_t width;  /* 0: from the height and the source's aspect ("x480@1200") */
    uint32_t height; /* 16..4096 */
    uint32_t kbps;   /* 50..100000 */
} edge_rung_t;

typedef struct edge_listen {
    char host[EDGE_HOST_LEN];
    int port; /* 0 = pick a free port (tests); -1 = disabled */
} edge_listen_t;

typedef struct edge_config {
    edge_listen_t rtmp;
    edge_listen_t http;
    edge_listen_t tls; /* disabled unless --tls-listen */
    char tls_cert[EDGE_PATH_LEN];
    char tls_key[EDGE_PATH_LEN];
    char keys_file[EDGE_PATH_LEN];
    char ports_file[EDGE_PATH_LEN]; /* when set, the bound ports are written there (tests) */
    bool accept_any_key;
    bool no_coordinator;
    ax_log_level_t log_level;

    uint32_t max_rtmp_conns;      /* RTMP connections at once; more are closed at accept */
    uint32_t max_http_conns;      /* HTTP connections at once */
    uint32_t max_channels;        /* channels in memory at once */
    uint32_t rtmp_handshake_ms;   /* from accept to publishing (or connected) */
    uint32_t rtmp_idle_ms;        /* no byte from the peer for this long closes it */
    uint32_t rtmp_max_output;     /* unsent output bytes above which reading stops */
    uint32_t rtmp_max_chunk_size; /* limits passed to the media session */
    uint32_t rtmp_max_message_len;
    uint32_t http_req_timeout_ms; /* h2o http1 request timeout (slowloris) */
    uint32_t http2_idle_timeout_ms;
    uint32_t http_max_path;         /* longest request path accepted */
    uint32_t hold_timeout_ms;       /* blocking reload hold; 0 = 3 x target duration */
    uint32_t part_ms;               /* LL-HLS part target duration */
    uint32_t segment_ms;            /* segment target duration */
    uint32_t window_segments;       /* segments listed per media playlist */
    uint32_t retain_segments;       /* kept in memory after leaving the playlist */
    uint32_t publisher_takeover_ms; /* a publisher silent this long yields to a new one */
    uint32_t channel_linger_ms;     /* keep a channel with no publisher this long */
    uint32_t shutdown_grace_ms;     /* how long a stop waits for responses and flushes */

    /* Coordinator mode (--coordinator) and the relay (docs/edge.md). */
    char coordinator[EDGE_PATH_LEN]; /* "ip:port[,ip:port...]" of coordinators' RPC */
    char edge_id[EDGE_CHANNEL_MAX + 1];
    char region[EDGE_CHANNEL_MAX + 1];
    char public_hls_url[EDGE_PATH_LEN]; /* base URL viewers (and relays) use */
    char chat_url[EDGE_PATH_LEN];
    char cluster_secret[EDGE_PATH_LEN]; /* inline secret (tests); prefer the file */
    char cluster_secret_file[EDGE_PATH_LEN];
    uint32_t capacity_viewers;     /* 0 = unlimited */
    uint32_t capacity_streams;     /* 0 = unlimited */
    uint32_t authorize_timeout_ms; /* a publish waits this long for the coordinator */
    char relay_origin[EDGE_PATH_LEN]; /* fixed origin for every channel not published here */
    uint32_t relay_timeout_ms;        /* one upstream pull, connect to last byte */
    uint32_t relay_idle_ms;           /* an unused relayed resource is dropped after this */
    uint32_t relay_max_bytes;         /* relayed bytes kept in memory */
    uint32_t relay_max_object;        /* largest upstream answer */
    uint32_t relay_max_conns;         /* pooled connections per origin */

    /* Transcoding (docs/edge.md "Transcoding"). */
    bool transcode;                      /* --transcode on|off */
    edge_rung_t ladder[EDGE_LADDER_MAX]; /* --ladder, highest first as given */
    uint32_t nladder;
    char x264_preset[EDGE_PRESET_LEN]; /* --x264-preset */
    uint32_t max_transcodes;           /* transcodes at once; 0 = one per CPU */
    /* The transcoder module (aethex-transcode.so), loaded at start when transcode is on;
     * "" = next to the executable. */
    char transcode_module[EDGE_PATH_LEN];
} edge_config_t;

/* Fills the defaults: RTMP 127.0.0.1:1935, HTTP 127.0.0.1:8080, no TLS, info logs. */
void edge_config_default(edge_config_t *c);

/*
 * Applies one setting by name (`rtmp-listen`, `accept-any-key`, ...). `value` may be NULL
 * for boolean switches (meaning true). Returns 0, AX_ENOENT for an unknown name or
 * AX_EINVAL for a bad value; `err` (size `errlen`) says which.
 */
int edge_config_set(edge_config_t *c, const char *name, const char *value, char *err,
                    size_t errlen);

/* Reads a `key = value` file (`#` comments, blank lines). Same returns, plus AX_EIO. */
int edge_config_load_file(edge_config_t *c, const char *path, char *err, size_t errlen);

/*
 * Parses argv: `--config F` first (loaded before the other flags), then every other flag
 * `--name value` / `--switch`. Returns 0, 1 when --help was asked (usage printed), or a
 * negative code with `err` set.
 */
int edge_config_parse_args(edge_config_t *c, int argc, char **argv, char *err, size_t errlen);

/*
 * Parses a ladder: comma-separated "WxH@kbps" rungs ("1280x720@2800,854x480@1200"); W may be
 * left out ("x480@1200": from the source's aspect). 1..EDGE_LADDER_MAX rungs, sizes 16..4096,
 * 50..100000 kbit/s, no height twice. `s` is borrowed. Returns the number of rungs written
 * to `out` (EDGE_LADDER_MAX entries), or AX_EINVAL with `err` set.
 */
int edge_parse_ladder(const char *s, edge_rung_t *out, char *err, size_t errlen);

/* Parses "host:port" ("[::1]:80" too). Returns 0 or AX_EINVAL. */
int edge_parse_listen(const char *s, edge_listen_t *out);

/* True when `s` is a valid channel name: 1..EDGE_CHANNEL_MAX of [A-Za-z0-9_-]. */
bool edge_channel_name_valid(ax_slice_t s);

/* The standalone keys file, loaded into memory. Storage the caller provides. */
typedef struct edge_keys {
    struct edge_key_entry {
        char channel[EDGE_CHANNEL_MAX + 1];
        char key[EDGE_KEY_MAX + 1];
        size_t key_len;
    } * entries; /* owned */
    size_t count;
} edge_keys_t;

void edge_keys_init(edge_keys_t *k);
void edge_keys_close(edge_keys_t *k);

/*
 * Replaces the contents of `k` with the file at `path` (`<channel> <key>` lines, `#`
 * comments). On error `k` is unchanged. Returns 0, AX_EIO, AX_EINVAL (line named in `err`),
 * AX_ENOSPC past EDGE_KEYS_MAX or AX_ENOMEM.
 */
int edge_keys_load(edge_keys_t *k, const char *path, char *err, size_t errlen);

/* Parses keys from a NUL-terminated text. Same contract as edge_keys_load. */
int edge_keys_parse(edge_keys_t *k, const char *text, char *err, size_t errlen);

/*
 * Finds the channel whose key is `key`, comparing in constant time per entry. Returns the
 * channel name (owned by `k`, valid until the next load) or NULL.
 */
const char *edge_keys_lookup(const edge_keys_t *k, ax_slice_t key);

#endif /* AETHEX_EDGE_CONFIG_H */

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "aethex/media/transcode.h"

/* 720p, 480p, 360p: the ladder; widths follow the source's aspect (854 at 16:9). */
#define EDGE_DEFAULT_LADDER "x720@2800,x480@1200,x360@700"

void edge_config_default(edge_config_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->rtmp.host, sizeof c->rtmp.host, "127.0.0.1");
    c->rtmp.port = 1935;
    snprintf(c->http.host, sizeof c->http.host, "127.0.0.1");
    c->http.port = 8080;
    c->tls.port = -1;
    c->log_level = AX_LOG_INFO;
    c->max_rtmp_conns = 256;
    c->max_http_conns = 8192;
    c->max_channels = 256;
    c->rtmp_handshake_ms = 10000;
    c->rtmp_idle_ms = 30000;
    c->rtmp_max_output = 1u << 20;
    c->rtmp_max_chunk_size = 1u << 20;
    c->rtmp_max_message_len = 4u << 20;
    c->http_req_timeout_ms = 10000;
    c->http2_idle_timeout_ms = 30000;
    c->http_max_path = 256;
    c->hold_timeout_ms = 0;
    c->part_ms = 333;
    c->segment_ms = 2000;
    c->window_segments = 5;
    c->retain_segments = 1;
    c->channel_linger_ms = 60000;
    c->publisher_takeover_ms = 5000;
    c->shutdown_grace_ms = 3000;
    c->authorize_timeout_ms = 5000;
    c->relay_timeout_ms = 12000;
    c->relay_idle_ms = 30000;
    c->relay_max_bytes = 256u << 20;
    c->relay_max_object = 16u << 20;
    c->relay_max_conns = 256;
    c->transcode = true;
    c->nladder = (uint32_t)edge_parse_ladder(EDGE_DEFAULT_LADDER, c->ladder, NULL, 0);
    snprintf(c->x264_preset, sizeof c->x264_preset, "veryfast");
    c->max_transcodes = 0;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int edge_parse_listen(const char *s, edge_listen_t *out)
{
    const char *colon;
    const char *host = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return AX_EINVAL;
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return AX_EINVAL;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= EDGE_HOST_LEN)
        return AX_EINVAL;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
        return AX_EINVAL;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = (int)port;
    return 0;
}

static bool parse_u32(const char *s, const char **end, uint32_t min, uint32_t max, uint32_t *out)
{
    if (!isdigit((unsigned char)*s))
        return false;
    uint64_t v = 0;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (uint64_t)(*s++ - '0');
        if (v > max)
            return false;
    }
    if (v < min)
        return false;
    *end = s;
    *out = (uint32_t)v;
    return true;
}

int edge_parse_ladder(const char *s, edge_rung_t *out, char *err, size_t errlen)
{
    if (strlen(s) > EDGE_LADDER_TEXT_MAX) {
        set_err(err, errlen, "ladder longer than %d bytes", EDGE_LADDER_TEXT_MAX);
        return AX_EINVAL;
    }
    int n = 0;
    const char *p = s;
    for (;;) {
        edge_rung_t r = {0};
        const char *q = p;
        if (*q != 'x' && !parse_u32(q, &q, 16, 4096, &r.width))
            goto bad;
        if (*q++ != 'x' || !parse_u32(q, &q, 16, 4096, &r.height) || *q++ != '@' ||
            !parse_u32(q, &q, 50, 100000, &r.kbps) || (*q != ',' && *q != '\0'))
            goto bad;
        for (int i = 0; i < n; i++) {
            if (out[i].height == r.height) {
                set_err(err, errlen, "ladder: height %u given twice", r.height);
                return AX_EINVAL;
            }
        }
        if (n == EDGE_LADDER_MAX) {
            set_err(err, errlen, "ladder: more than %d rungs", EDGE_LADDER_MAX);
            return AX_EINVAL;
        }
        out[n++] = r;
        if (*q == '\0')
            return n;
        p = q + 1;
    }
bad:
    set_err(err, errlen,
            "ladder: expected WxH@kbps[,...] (W 16..4096 or empty, H 16..4096, kbps 50..100000) "
            "at '%.32s'",
            p);
    return AX_EINVAL;
}

enum opt_kind {
    OPT_LISTEN,
    OPT_PATH,
    OPT_BOOL,
    OPT_U32,
    OPT_LEVEL,
    OPT_NAME,
    OPT_LADDER,
    OPT_PRESET
};

struct opt {
    const char *name;
    enum opt_kind kind;
    size_t offset;
    uint32_t min, max; /* OPT_U32 bounds */
    const char *help;
};

#define OFF(f) offsetof(edge_config_t, f)
static const struct opt opts[] = {
    {"rtmp-listen", OPT_LISTEN, OFF(rtmp), 0, 0, "host:port of the RTMP listener"},
    {"http-listen", OPT_LISTEN, OFF(http), 0, 0, "host:port of the cleartext HTTP listener"},
    {"tls-listen", OPT_LISTEN, OFF(tls), 0, 0, "host:port of the HTTPS (h2, http/1.1) listener"},
    {"tls-cert", OPT_PATH, OFF(tls_cert), 0, 0, "PEM certificate chain for --tls-listen"},
    {"tls-key", OPT_PATH, OFF(tls_key), 0, 0, "PEM private key for --tls-listen"},
    {"keys-file", OPT_PATH, OFF(keys_file), 0, 0, "standalone keys: '<channel> <key>' lines"},
    {"ports-file", OPT_PATH, OFF(ports_file), 0, 0, "write the bound ports there (tests)"},
    {"accept-any-key", OPT_BOOL, OFF(accept_any_key), 0, 0, "accept any key; channel = key"},
    {"no-coordinator", OPT_BOOL, OFF(no_coordinator), 0, 0, "standalone mode"},
    {"log-level", OPT_LEVEL, OFF(log_level), 0, 0, "debug|info|warn|error"},
    {"max-rtmp-conns", OPT_U32, OFF(max_rtmp_conns), 1, 100000, "RTMP connections at once"},
    {"max-http-conns", OPT_U32, OFF(max_http_conns), 1, 1000000, "HTTP connections at once"},
    {"max-channels", OPT_U32, OFF(max_channels), 1, 100000, "channels in memory"},
    {"rtmp-handshake-ms", OPT_U32, OFF(rtmp_handshake_ms), 100, 600000,
     "accept-to-publish deadline"},
    {"rtmp-idle-ms", OPT_U32, OFF(rtmp_idle_ms), 100, 3600000, "RTMP read idle timeout"},
    {"rtmp-max-output", OPT_U32, OFF(rtmp_max_output), 4096, 1u << 30,
     "unsent RTMP output above which reading pauses"},
    {"rtmp-max-chunk-size", OPT_U32, OFF(rtmp_max_chunk_size), 128, 16777215,
     "largest RTMP chunk size accepted"},
    {"rtmp-max-message-len", OPT_U32, OFF(rtmp_max_message_len), 1024, 16777215,
     "largest RTMP message accepted"},
    {"http-req-timeout-ms", OPT_U32, OFF(http_req_timeout_ms), 100, 600000,
     "HTTP/1 request timeout"},
    {"http2-idle-timeout-ms", OPT_U32, OFF(http2_idle_timeout_ms), 100, 3600000,
     "HTTP/2 idle timeout"},
    {"http-max-path", OPT_U32, OFF(http_max_path), 16, 8192, "longest request path"},
    {"hold-timeout-ms", OPT_U32, OFF(hold_timeout_ms), 0, 600000,
     "blocking reload hold (0 = 3 x target duration)"},
    {"part-ms", OPT_U32, OFF(part_ms), 50, 5000, "LL-HLS part duration"},
    {"segment-ms", OPT_U32, OFF(segment_ms), 500, 20000, "segment target duration"},
    {"window-segments", OPT_U32, OFF(window_segments), 3, 1000,
     "segments listed per media playlist (>= 3 x target duration of media)"},
    {"retain-segments", OPT_U32, OFF(retain_segments), 0, 100,
     "segments kept in memory after they leave the playlist"},
    {"publisher-takeover-ms", OPT_U32, OFF(publisher_takeover_ms), 0, 3600000,
     "a publisher silent this long yields its channel to a new one (0 = never)"},
    {"channel-linger-ms", OPT_U32, OFF(channel_linger_ms), 0, 86400000,
     "keep an unpublished channel this long"},
    {"shutdown-grace-ms", OPT_U32, OFF(shutdown_grace_ms), 0, 600000, "graceful stop deadline"},
    {"coordinator", OPT_PATH, OFF(coordinator), 0, 0,
     "coordinators' RPC ip:port[,ip:port...] (coordinator mode)"},
    {"edge-id", OPT_NAME, OFF(edge_id), 0, 0, "this edge's unique name (coordinator mode)"},
    {"region", OPT_NAME, OFF(region), 0, 0, "this edge's region, e.g. eu-west"},
    {"public-hls-url", OPT_PATH, OFF(public_hls_url), 0, 0,
     "base URL of /live/... that viewers and relays use, e.g. http://10.0.0.5:8080"},
    {"chat-url", OPT_PATH, OFF(chat_url), 0, 0, "public chat WebSocket URL"},
    {"capacity-viewers", OPT_U32, OFF(capacity_viewers), 0, 100000000,
     "viewers this edge takes (0 = unlimited)"},
    {"capacity-streams", OPT_U32, OFF(capacity_streams), 0, 100000,
     "streams this edge ingests (0 = unlimited)"},
    {"cluster-secret", OPT_PATH, OFF(cluster_secret), 0, 0,
     "cluster secret (visible in ps: prefer --cluster-secret-file)"},
    {"cluster-secret-file", OPT_PATH, OFF(cluster_secret_file), 0, 0,
     "file with the cluster secret"},
    {"authorize-timeout-ms", OPT_U32, OFF(authorize_timeout_ms), 100, 600000,
     "a publish waits this long for the coordinator's answer"},
    {"relay-origin", OPT_PATH, OFF(relay_origin), 0, 0,
     "pull every channel not published here from this origin (http://IP:port)"},
    {"relay-timeout-ms", OPT_U32, OFF(relay_timeout_ms), 100, 600000,
     "one upstream pull, connect to last byte"},
    {"relay-idle-ms", OPT_U32, OFF(relay_idle_ms), 100, 3600000,
     "drop a relayed resource unused this long"},
    {"relay-max-bytes", OPT_U32, OFF(relay_max_bytes), 1u << 20, 4000u << 20,
     "relayed bytes kept in memory"},
    {"relay-max-object", OPT_U32, OFF(relay_max_object), 4096, 1u << 30,
     "largest upstream answer"},
    {"relay-max-conns", OPT_U32, OFF(relay_max_conns), 1, 100000,
     "pooled connections per origin"},
    {"transcode", OPT_BOOL, OFF(transcode), 0, 0, "on|off: an ABR ladder per stream"},
    {"ladder", OPT_LADDER, OFF(ladder), 0, 0,
     "rungs WxH@kbps,... (W empty: source aspect); rungs >= the source are skipped"},
    {"x264-preset", OPT_PRESET, OFF(x264_preset), 0, 0, "libx264 preset of every rung"},
    {"max-transcodes", OPT_U32, OFF(max_transcodes), 0, 4096,
     "transcoded streams at once (0 = one per CPU); more are served source-only"},
    {"transcode-module", OPT_PATH, OFF(transcode_module), 0, 0,
     "the transcoder module (default: aethex-transcode.so next to the executable)"},
};
#undef OFF

static bool parse_bool(const char *v, bool *out)
{
    if (!v || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) {
        *out = true;
        return true;
    }
    if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")) {
        *out = false;
        return true;
    }
    return false;
}

static const struct opt *find_opt(const char *name)
{
    for (size_t i = 0; i < AX_ARRAY_SIZE(opts); i++)
        if (!strcmp(opts[i].name, name))
            return &opts[i];
    return NULL;
}

int edge_config_set(edge_config_t *c, const char *name, const char *value, char *err, size_t errlen)
{
    const struct opt *o = find_opt(name);
    if (!o) {
        set_err(err, errlen, "unknown setting '%s'", name);
        return AX_ENOENT;
    }
    char *field = (char *)c + o->offset;
    if (o->kind != OPT_BOOL && !value) {
        set_err(err, errlen, "'%s' needs a value", name);
        return AX_EINVAL;
    }
    switch (o->kind) {
    case OPT_LISTEN:
        if (edge_parse_listen(value, (edge_listen_t *)field) < 0) {
            set_err(err, errlen, "'%s': expected host:port, got '%s'", name, value);
            return AX_EINVAL;
        }
        return 0;
    case OPT_PATH:
        if (strlen(value) >= EDGE_PATH_LEN || value[0] == '\0') {
            set_err(err, errlen, "'%s': path empty or longer than %d bytes", name,
                    EDGE_PATH_LEN - 1);
            return AX_EINVAL;
        }
        snprintf(field, EDGE_PATH_LEN, "%s", value);
        return 0;
    case OPT_NAME:
        if (!edge_channel_name_valid(AX_SLICE(value, strlen(value)))) {
            set_err(err, errlen, "'%s': expected 1..%d of [A-Za-z0-9_-], got '%s'", name,
                    EDGE_CHANNEL_MAX, value);
            return AX_EINVAL;
        }
        snprintf(field, EDGE_CHANNEL_MAX + 1, "%s", value);
        return 0;
    case OPT_BOOL:
        if (!parse_bool(value, (bool *)field)) {
            set_err(err, errlen, "'%s': expected true/false, got '%s'", name, value);
            return AX_EINVAL;
        }
        return 0;
    case OPT_LEVEL:
        if (ax_log_parse_level(value, (ax_log_level_t *)field) < 0) {
            set_err(err, errlen, "'%s': expected debug|info|warn|error, got '%s'", name, value);
            return AX_EINVAL;
        }
        return 0;
    case OPT_LADDER: {
        edge_rung_t rungs[EDGE_LADDER_MAX];
        int n = edge_parse_ladder(value, rungs, err, errlen);
        if (n < 0)
            return n;
        memcpy(c->ladder, rungs, sizeof rungs);
        c->nladder = (uint32_t)n;
        return 0;
    }
    case OPT_PRESET:
        if (!media_transcode_preset_valid(value)) {
            set_err(err, errlen, "'%s': not an x264 preset: '%s'", name, value);
            return AX_EINVAL;
        }
        snprintf(field, EDGE_PRESET_LEN, "%s", value);
        return 0;
    case OPT_U32: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || *end != '\0' || value[0] == '-' || v < o->min || v > o->max) {
            set_err(err, errlen, "'%s': expected an integer in [%u, %u], got '%s'", name, o->min,
                    o->max, value);
            return AX_EINVAL;
        }
        *(uint32_t *)field = (uint32_t)v;
        return 0;
    }
    }
    return AX_EINVAL;
}

static char *trim(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int edge_config_load_file(edge_config_t *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, "config %s: %s", path, strerror(errno));
        return AX_EIO;
    }
    char line[EDGE_CONFIG_LINE_MAX];
    int lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            set_err(err, errlen, "config %s:%d: line longer than %d bytes", path, lineno,
                    EDGE_CONFIG_LINE_MAX - 2);
            rc = AX_EINVAL;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (*s == '\0')
            continue;
        char *eq = strchr(s, '=');
        char *value = NULL;
        if (eq) {
            *eq = '\0';
            value = trim(eq + 1);
        }
        char *name = trim(s);
        char inner[256];
        rc = edge_config_set(c, name, value, inner, sizeof inner);
        if (rc < 0) {
            set_err(err, errlen, "config %s:%d: %s", path, lineno, inner);
            break;
        }
    }
    fclose(f);
    return rc;
}

static void usage(FILE *out, const char *argv0)
{
    fprintf(out,
            "usage: %s [--config FILE] [--name value ...]\n\nsettings (also in the config "
            "file as 'name = value'):\n",
            argv0);
    for (size_t i = 0; i < AX_ARRAY_SIZE(opts); i++)
        fprintf(out, "  --%-22s %s\n", opts[i].name, opts[i].help);
}

int edge_config_parse_args(edge_config_t *c, int argc, char **argv, char *err, size_t errlen)
{
    /* --config first, so that flags override the file whatever their order. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                set_err(err, errlen, "--config needs a file");
                return AX_EINVAL;
            }
            int rc = edge_config_load_file(c, argv[i + 1], err, errlen);
            if (rc < 0)
                return rc;
            i++;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, argv[0]);
            return 1;
        }
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            set_err(err, errlen, "unexpected argument '%s' (see --help)", a);
            return AX_EINVAL;
        }
        const char *name = a + 2;
        char namebuf[64];
        const char *value = NULL;
        const char *eq = strchr(name, '=');
        if (eq) {
            size_t n = (size_t)(eq - name);
            if (n >= sizeof namebuf) {
                set_err(err, errlen, "unknown flag '%s'", a);
                return AX_ENOENT;
            }
            memcpy(namebuf, name, n);
            namebuf[n] = '\0';
            name = namebuf;
            value = eq + 1;
        }
        const struct opt *o = find_opt(name);
        if (!o) {
            set_err(err, errlen, "unknown flag '%s' (see --help)", a);
            return AX_ENOENT;
        }
        bool word;
        if (!value && o->kind == OPT_BOOL && i + 1 < argc && parse_bool(argv[i + 1], &word))
            value = argv[++i]; /* "--transcode off" */
        if (!value && o->kind != OPT_BOOL) {
            if (i + 1 >= argc) {
                set_err(err, errlen, "%s needs a value", a);
                return AX_EINVAL;
            }
            value = argv[++i];
        }
        int rc = edge_config_set(c, name, value, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

bool edge_channel_name_valid(ax_slice_t s)
{
    if (s.len == 0 || s.len > EDGE_CHANNEL_MAX)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t ch = s.base[i];
        if (!(isalnum(ch) || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

void edge_keys_init(edge_keys_t *k)
{
    k->entries = NULL;
    k->count = 0;
}

void edge_keys_close(edge_keys_t *k)
{
    ax_free(k->entries);
    edge_keys_init(k);
}

int edge_keys_parse(edge_keys_t *k, const char *text, char *err, size_t errlen)
{
    edge_keys_t next;
    edge_keys_init(&next);
    size_t cap = 0;
    int lineno = 0;
    const char *p = text;
    while (*p) {
        lineno++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *line_end = p + len;
        const char *q = p;
        p = eol ? eol + 1 : line_end;
        /* Fields: channel, key; a '#' starts a comment. */
        ax_slice_t field[3];
        int nf = 0;
        while (q < line_end && *q != '#') {
            while (q < line_end && isspace((unsigned char)*q))
                q++;
            if (q >= line_end || *q == '#')
                break;
            const char *start = q;
            while (q < line_end && !isspace((unsigned char)*q) && *q != '#')
                q++;
            if (nf < 3)
                field[nf] = AX_SLICE(start, (size_t)(q - start));
            nf++;
        }
        if (nf == 0)
            continue;
        if (nf != 2) {
            set_err(err, errlen, "keys line %d: expected '<channel> <key>'", lineno);
            goto fail_parse;
        }
        if (!edge_channel_name_valid(field[0])) {
            set_err(err, errlen, "keys line %d: channel must be 1..%d of [A-Za-z0-9_-]", lineno,
                    EDGE_CHANNEL_MAX);
            goto fail_parse;
        }
        if (field[1].len < 8 || field[1].len > EDGE_KEY_MAX) {
            set_err(err, errlen, "keys line %d: key must be 8..%d bytes", lineno, EDGE_KEY_MAX);
            goto fail_parse;
        }
        for (size_t i = 0; i < next.count; i++) {
            if (ax_slice_eq_cstr(field[0], next.entries[i].channel) ||
                (next.entries[i].key_len == field[1].len &&
                 !memcmp(next.entries[i].key, field[1].base, field[1].len))) {
                set_err(err, errlen, "keys line %d: channel or key listed twice", lineno);
                goto fail_parse;
            }
        }
        if (next.count == EDGE_KEYS_MAX) {
            set_err(err, errlen, "keys line %d: more than %d keys", lineno, EDGE_KEYS_MAX);
            edge_keys_close(&next);
            return AX_ENOSPC;
        }
        if (next.count == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            void *n = ax_realloc(next.entries, ncap * sizeof *next.entries);
            if (!n) {
                set_err(err, errlen, "keys: out of memory");
                edge_keys_close(&next);
                return AX_ENOMEM;
            }
            next.entries = n;
            cap = ncap;
        }
        struct edge_key_entry *e = &next.entries[next.count++];
        memset(e, 0, sizeof *e);
        memcpy(e->channel, field[0].base, field[0].len);
        memcpy(e->key, field[1].base, field[1].len);
        e->key_len = field[1].len;
    }
    edge_keys_close(k);
    *k = next;
    return 0;

fail_parse:
    edge_keys_close(&next);
    return AX_EINVAL;
}

int edge_keys_load(edge_keys_t *k, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, "keys file %s: %s", path, strerror(errno));
        return AX_EIO;
    }
    /* A keys file is small: EDGE_KEYS_MAX lines of at most ~200 bytes. */
    size_t max = (size_t)EDGE_KEYS_MAX * (EDGE_CHANNEL_MAX + EDGE_KEY_MAX + 64);
    char *text = ax_malloc(max + 1);
    if (!text) {
        fclose(f);
        return AX_ENOMEM;
    }
    size_t n = fread(text, 1, max + 1, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || n > max) {
        set_err(err, errlen, "keys file %s: %s", path, failed ? "read error" : "too large");
        ax_free(text);
        return failed ? AX_EIO : AX_EINVAL;
    }
    text[n] = '\0';
    if (memchr(text, '\0', n)) {
        set_err(err, errlen, "keys file %s: contains a NUL byte", path);
        ax_free(text);
        return AX_EINVAL;
    }
    char inner[200];
    int rc = edge_keys_parse(k, text, inner, sizeof inner);
    if (rc < 0)
        set_err(err, errlen, "%s: %s", path, inner);
    ax_free(text);
    return rc;
}

const char *edge_keys_lookup(const edge_keys_t *k, ax_slice_t key)
{
    const char *found = NULL;
    if (key.len == 0 || key.len > EDGE_KEY_MAX)
        return NULL;
    /* Every entry is compared over its full length whatever matched, so the time taken does
     * not reveal how much of a guess was right. */
    for (size_t i = 0; i < k->count; i++) {
        const struct edge_key_entry *e = &k->entries[i];
        uint8_t diff = (uint8_t)(e->key_len != key.len);
        for (size_t j = 0; j < e->key_len; j++)
            diff |= (uint8_t)(e->key[j] ^ (j < key.len ? key.base[j] : 0));
        if (diff == 0)
            found = e->channel;
    }
    return found;
}

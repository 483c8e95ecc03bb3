/*
 * The relay's pure parts (unit-tested in edge.relay_key, no loop, no sockets): origin URLs
 * and the cache key of a relayed request. The relay itself is relay.c.
 */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "aethex/common/error.h"
#include "aethex/media/hls.h"

#include "edge_internal.h"

int edge_relay_parse_url(const char *url, char *host, size_t hostlen, uint16_t *port, char *prefix,
                         size_t prefixlen)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return AX_EINVAL;
    const char *h = url + sizeof scheme - 1;
    const char *slash = strchr(h, '/');
    size_t hp_len = slash ? (size_t)(slash - h) : strlen(h);
    char hp[EDGE_HOST_LEN + 8];
    if (hp_len == 0 || hp_len >= sizeof hp)
        return AX_EINVAL;
    memcpy(hp, h, hp_len);
    hp[hp_len] = '\0';
    edge_listen_t l;
    if (strchr(hp, ':') == NULL || hp[hp_len - 1] == ']') {
        /* no port: 80 */
        if (hp_len + 3 >= sizeof hp)
            return AX_EINVAL;
        strcat(hp, ":80");
    }
    if (edge_parse_listen(hp, &l) < 0 || l.port == 0)
        return AX_EINVAL;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(l.host, l.port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(l.host, l.port, (struct sockaddr_in6 *)&ss) != 0)
        return AX_EINVAL; /* IP literals only: no resolver on the loop */
    if (strlen(l.host) >= hostlen)
        return AX_EINVAL;
    snprintf(host, hostlen, "%s", l.host);
    *port = (uint16_t)l.port;
    const char *p = slash ? slash : "";
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        plen--;
    if (plen >= prefixlen)
        return AX_EINVAL;
    for (size_t i = 0; i < plen; i++)
        if (p[i] <= ' ' || p[i] == '?' || p[i] == '#' || (unsigned char)p[i] >= 0x7f)
            return AX_EINVAL;
    memcpy(prefix, p, plen);
    prefix[plen] = '\0';
    return 0;
}

/* The canonical key of a relayed request: the path under the channel and the LL-HLS
 * parameters in one fixed order. Returns 0, AX_EINVAL (bad _HLS_ values: 400) or AX_ENOENT
 * (not a name we would ever serve: 404). */
int edge_relay_key(ax_slice_t rest, ax_slice_t query, char *key, size_t keylen)
{
    media_hls_resource_t res;
    bool playlist;
    /* The router only passes [A-Za-z0-9._/-]; checked again here since the key becomes part of
     * an upstream request line (found by fuzz.edge_relay_key: a NUL would cut the key short). */
    for (size_t i = 0; i < rest.len; i++) {
        uint8_t c = rest.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '/'))
            return AX_ENOENT;
    }
    if (ax_slice_eq_cstr(rest, "index.m3u8")) {
        playlist = false; /* the master: no parameters */
    } else {
        const uint8_t *slash = memchr(rest.base, '/', rest.len);
        if (!slash || slash == rest.base)
            return AX_ENOENT;
        ax_slice_t file = AX_SLICE(slash + 1, rest.len - (size_t)(slash + 1 - rest.base));
        if (memchr(file.base, '/', file.len) || media_hls_resource_parse(file, &res) < 0)
            return AX_ENOENT;
        playlist = res.kind == MEDIA_HLS_RES_PLAYLIST;
    }
    if (rest.len + 1 >= keylen)
        return AX_ENOENT;
    int n = snprintf(key, keylen, "%.*s", (int)rest.len, (const char *)rest.base);
    if (!playlist)
        return 0;
    media_hls_params_t p;
    if (media_hls_params_parse(query, NULL, &p) < 0)
        return AX_EINVAL;
    const char *sep = "?";
    if (p.has_msn) {
        n += snprintf(key + n, keylen - (size_t)n, "%s_HLS_msn=%llu", sep,
                      (unsigned long long)p.msn);
        sep = "&";
    }
    if (p.has_part && (size_t)n < keylen) {
        n += snprintf(key + n, keylen - (size_t)n, "%s_HLS_part=%u", sep, p.part);
        sep = "&";
    }
    if (p.skip != MEDIA_HLS_SKIP_NO && (size_t)n < keylen)
        n += snprintf(key + n, keylen - (size_t)n, "%s_HLS_skip=%s", sep,
                      p.skip == MEDIA_HLS_SKIP_V2 ? "v2" : "YES");
    return (size_t)n < keylen ? 0 : AX_ENOENT;
}


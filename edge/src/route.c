/*
 * Request path routing for the edge's HTTP side: pure, no h2o, so it is unit-tested and
 * fuzzed on its own.
 */
#include <string.h>

#include "edge_internal.h"

static bool is_name_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

enum edge_route edge_http_route(ax_slice_t path, size_t max_path, ax_slice_t *channel,
                                ax_slice_t *rest, ax_slice_t *query)
{
    *channel = *rest = *query = AX_SLICE(NULL, 0);
    if (path.len == 0 || path.len > max_path || path.base[0] != '/')
        return EDGE_ROUTE_BAD;
    const uint8_t *q = memchr(path.base, '?', path.len);
    size_t plen = q ? (size_t)(q - path.base) : path.len;
    if (q)
        *query = AX_SLICE(q + 1, path.len - plen - 1);
    ax_slice_t p = AX_SLICE(path.base, plen);
    /* Nothing we serve has an escaped byte, a dot-segment or an empty segment: refusing them
     * outright leaves no room for a path that normalises somewhere unexpected. */
    for (size_t i = 0; i < p.len; i++) {
        uint8_t c = p.base[i];
        if (c == '/') {
            if (i + 1 < p.len && (p.base[i + 1] == '/' || p.base[i + 1] == '.'))
                return EDGE_ROUTE_BAD;
            continue;
        }
        if (!is_name_char(c))
            return EDGE_ROUTE_BAD;
        if (c == '.' && i + 1 < p.len && p.base[i + 1] == '.')
            return EDGE_ROUTE_BAD;
    }
    if (ax_slice_eq_cstr(p, "/metrics"))
        return EDGE_ROUTE_METRICS;
    static const char prefix[] = "/live/";
    if (p.len <= sizeof prefix - 1 || memcmp(p.base, prefix, sizeof prefix - 1) != 0)
        return EDGE_ROUTE_NONE;
    const uint8_t *name = p.base + sizeof prefix - 1;
    size_t left = p.len - (sizeof prefix - 1);
    const uint8_t *slash = memchr(name, '/', left);
    if (!slash)
        return EDGE_ROUTE_NONE;
    *channel = AX_SLICE(name, (size_t)(slash - name));
    *rest = AX_SLICE(slash + 1, left - channel->len - 1);
    if (!edge_channel_name_valid(*channel))
        return EDGE_ROUTE_BAD;
    if (rest->len == 0 || rest->base[rest->len - 1] == '/')
        return EDGE_ROUTE_NONE;
    return EDGE_ROUTE_LIVE;
}

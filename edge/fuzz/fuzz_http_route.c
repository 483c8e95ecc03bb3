/*
 * Fuzzes the request-path router (route.c) with arbitrary bytes: it must never read past the
 * input, and whatever it accepts as a live path must satisfy the invariants the handlers
 * rely on: a valid channel name, a non-empty rest without "..", "//" or bytes outside
 * [A-Za-z0-9._/-], slices inside the input.
 */
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "edge_internal.h"

static int inside(ax_slice_t s, const uint8_t *base, size_t len)
{
    return s.len == 0 || (s.base >= base && s.base + s.len <= base + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ax_slice_t ch, rest, q;
    enum edge_route r = edge_http_route(AX_SLICE(data, size), 256, &ch, &rest, &q);
    if (!inside(ch, data, size) || !inside(rest, data, size) || !inside(q, data, size))
        __builtin_trap();
    if (r == EDGE_ROUTE_LIVE) {
        if (size > 256 || !edge_channel_name_valid(ch) || rest.len == 0)
            __builtin_trap();
        for (size_t i = 0; i < rest.len; i++) {
            uint8_t c = rest.base[i];
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.' || c == '/';
            if (!ok || (c == '.' && i + 1 < rest.len && rest.base[i + 1] == '.') ||
                (c == '/' && i + 1 < rest.len && rest.base[i + 1] == '/'))
                __builtin_trap();
        }
    }
    return 0;
}

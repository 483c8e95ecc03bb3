/*
 * Fuzz target for the coordinator's watch-path and query parsers (route.h). The input is a
 * request target "path[?query]". Invariants beyond "no crash": a parsed slug lies inside the
 * input and passes coord_route_check_slug; the path rebuilt from it is the input path; query
 * values lie inside the query and contain no '&'.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "aethex/common/util.h"
#include "aethex/coordinator/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *q = memchr(in, '?', size);
    size_t plen = q ? (size_t)(q - in) : size;
    const char *slug;
    size_t n;
    int rv = coord_route_parse_live_path(in, plen, &slug, &n);
    AX_ASSERT(rv == 0 || rv == AX_ENOENT || rv == AX_EINVAL);
    if (rv == 0) {
        AX_ASSERT(slug >= in && slug + n <= in + plen);
        AX_ASSERT(coord_route_check_slug(slug, n) == 0);
        char rebuilt[COORD_ROUTE_PATH_MAX + 64];
        int k = snprintf(rebuilt, sizeof rebuilt, "/live/%.*s/index.m3u8", (int)n, slug);
        AX_ASSERT(k > 0 && (size_t)k == plen && memcmp(rebuilt, in, plen) == 0);
    } else {
        AX_ASSERT(slug == NULL && n == 0);
    }
    if (q) {
        const char *query = q + 1;
        size_t qlen = size - plen - 1;
        static const char *const names[] = {"channel", "region", ""};
        for (size_t i = 0; i < AX_ARRAY_SIZE(names); i++) {
            const char *v;
            size_t vlen;
            rv = coord_route_query_param(query, qlen, names[i], &v, &vlen);
            AX_ASSERT(rv == 0 || rv == AX_ENOENT || rv == AX_EINVAL);
            if (rv == 0) {
                AX_ASSERT(v >= query && v + vlen <= query + qlen);
                AX_ASSERT(memchr(v, '&', vlen) == NULL);
            }
        }
    }
    return 0;
}

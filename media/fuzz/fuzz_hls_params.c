/*
 * Fuzz target for the request parsers of hls_params.c: media_hls_params_parse() (query
 * strings) and media_hls_resource_parse() (resource names), on the same bytes.
 *
 * Invariants beyond "no crash": a successful parse has values in range (msn <= 2^53, part <
 * 2^31, _HLS_part only with _HLS_msn); re-encoding it and parsing again gives the same result;
 * a parsed resource name re-encodes to exactly the input bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/media/hls.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_hls_params: invariant broken: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    media_hls_params_t p;
    int rv = media_hls_params_parse(AX_SLICE(data, size), NULL, &p);
    check(rv == 0 || rv == AX_EINVAL || rv == AX_EMSGSIZE, "params: unexpected error");
    if (rv == 0) {
        check(!p.has_part || p.has_msn, "part without msn");
        check(p.msn <= (UINT64_C(1) << 53), "msn range");
        check(p.part <= 0x7fffffffu, "part range");
        check(p.skip < MEDIA_HLS_SKIP_COUNT, "skip range");
        char q[128];
        int n = snprintf(q, sizeof(q), "_HLS_skip=%s", p.skip == MEDIA_HLS_SKIP_YES ? "YES" : p.skip == MEDIA_HLS_SKIP_V2 ? "v2" : "x");
        if (p.skip == MEDIA_HLS_SKIP_NO)
            n = 0;
        if (p.has_msn)
            n += snprintf(q + n, sizeof(q) - (size_t)n, "&_HLS_msn=%llu", (unsigned long long)p.msn);
        if (p.has_part)
            n += snprintf(q + n, sizeof(q) - (size_t)n, "&_HLS_part=%u", p.part);
        media_hls_params_t p2;
        check(media_hls_params_parse(AX_SLICE(q, (size_t)n), NULL, &p2) == 0, "re-parse");
        check(p2.has_msn == p.has_msn && p2.msn == p.msn && p2.has_part == p.has_part &&
                  p2.part == p.part && p2.skip == p.skip,
              "round trip");
    }

    media_hls_resource_t r;
    rv = media_hls_resource_parse(AX_SLICE(data, size), &r);
    check(rv == 0 || rv == AX_ENOENT, "resource: unexpected error");
    if (rv == 0) {
        char name[96];
        int n = 0;
        switch (r.kind) {
        case MEDIA_HLS_RES_PLAYLIST:
            n = snprintf(name, sizeof(name), "index.m3u8");
            break;
        case MEDIA_HLS_RES_INIT:
            n = snprintf(name, sizeof(name), "init-%u.mp4", r.init_gen);
            break;
        case MEDIA_HLS_RES_SEGMENT:
            n = snprintf(name, sizeof(name), "seg-%llu.m4s", (unsigned long long)r.msn);
            break;
        case MEDIA_HLS_RES_PART:
            n = snprintf(name, sizeof(name), "part-%llu.%u.m4s", (unsigned long long)r.msn, r.part);
            break;
        default:
            check(0, "resource kind");
        }
        check((size_t)n == size && memcmp(name, data, size) == 0, "resource round trip");
    }
    return 0;
}

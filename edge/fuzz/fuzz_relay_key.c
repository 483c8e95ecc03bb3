/*
 * Fuzzes the relay's pure parsers (relay_url.c) with arbitrary bytes. The input is split at
 * the first '\n': before it a request's `rest` and `query` (split at '?'), after it an origin
 * URL (it comes from the coordinator: untrusted). Invariants: a key is NUL-terminated within
 * its buffer, starts with `rest`, and computing it twice gives the same key (canonical); a
 * parsed origin has an IP host, a non-zero port and a prefix without '?' or a trailing '/'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t req_len = nl ? (size_t)(nl - data) : size;
    const uint8_t *q = memchr(data, '?', req_len);
    ax_slice_t rest = AX_SLICE(data, q ? (size_t)(q - data) : req_len);
    ax_slice_t query = q ? AX_SLICE(q + 1, req_len - rest.len - 1) : AX_SLICE(NULL, 0);
    char k1[160], k2[160];
    int r1 = edge_relay_key(rest, query, k1, sizeof k1);
    int r2 = edge_relay_key(rest, query, k2, sizeof k2);
    if (r1 != r2)
        __builtin_trap();
    if (r1 == 0) {
        if (memchr(k1, '\0', sizeof k1) == NULL || strcmp(k1, k2) != 0 ||
            strlen(k1) < rest.len || memcmp(k1, rest.base, rest.len) != 0)
            __builtin_trap();
        /* The key's own query re-parses to the same key. */
        const char *kq = strchr(k1, '?');
        if (kq) {
            char k3[160];
            if (edge_relay_key(rest, AX_SLICE(kq + 1, strlen(kq + 1)), k3, sizeof k3) != 0 ||
                strcmp(k1, k3) != 0)
                __builtin_trap();
        }
    }
    if (nl) {
        size_t ulen = size - req_len - 1;
        char *url = malloc(ulen + 1);
        if (!url)
            return 0;
        memcpy(url, nl + 1, ulen);
        url[ulen] = '\0';
        char host[64], prefix[128];
        uint16_t port = 0;
        if (edge_relay_parse_url(url, host, sizeof host, &port, prefix, sizeof prefix) == 0) {
            size_t pl = strlen(prefix);
            if (port == 0 || host[0] == '\0' || strchr(prefix, '?') ||
                (pl > 0 && prefix[pl - 1] == '/'))
                __builtin_trap();
        }
        free(url);
    }
    return 0;
}

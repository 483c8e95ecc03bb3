/*
 * fuzz.amf0: AMF0 decode of arbitrary bytes.
 *
 * Invariants checked, beyond "no crash":
 * - a failed decode reports an error offset inside the input and holds nothing;
 * - a successful decode re-encodes to exactly as many bytes as the input (only a boolean
 *   byte other than 0/1 is rewritten), and decoding that encoding then encoding it again
 *   gives the same bytes (encode . decode is idempotent);
 * - the re-decoded document has as many top-level values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/common/error.h"
#include "aethex/common/util.h"
#include "aethex/media/amf0.h"

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond))                                                                        \
            __builtin_trap();                                                               \
    } while (0)

static int encode_all(const media_amf0_doc_t *d, ax_buf_t *out)
{
    for (size_t i = 0; i < d->count; i++) {
        int rv = media_amf0_encode(out, &d->values[i]);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const media_amf0_limits_t lim = {.max_depth = 16, .max_values = 4096};
    media_amf0_doc_t d;
    int rv = media_amf0_decode(AX_SLICE(data, size), &lim, &d);
    if (rv != 0) {
        CHECK(rv == AX_EBADDATA || rv == AX_ENOTSUP || rv == AX_ETOODEEP || rv == AX_ENOSPC ||
              rv == AX_ENOMEM);
        CHECK(d.error_offset <= size && d.arena == NULL && d.count == 0);
        media_amf0_doc_free(&d);
        return 0;
    }
    ax_buf_t one, two;
    ax_buf_init(&one, 1 << 24);
    ax_buf_init(&two, 1 << 24);
    CHECK(encode_all(&d, &one) == 0);
    media_amf0_doc_t d2;
    CHECK(media_amf0_decode(AX_SLICE(one.base, one.len), &lim, &d2) == 0);
    CHECK(d2.count == d.count);
    CHECK(encode_all(&d2, &two) == 0);
    CHECK(one.len == two.len && (one.len == 0 || memcmp(one.base, two.base, one.len) == 0));
    /* Every construct keeps its wire form (long strings stay long, ECMA arrays keep their
     * declared count), so only boolean bytes may differ: the length is the input's. */
    CHECK(one.len == size);
    media_amf0_doc_free(&d2);
    media_amf0_doc_free(&d);
    ax_buf_close(&one);
    ax_buf_close(&two);
    return 0;
}

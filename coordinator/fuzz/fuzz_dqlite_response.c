/*
 * fuzz.dqlite_response: the client's response decoder over arbitrary server bytes.
 *
 * The input is what a socket would deliver: messages back to back. Each is framed with
 * coord_dqlite__msg_parse under a small max body and decoded by its type, ROWS batches
 * accumulating as the client does. Invariants checked, beyond "no crash":
 *   - a message spans at most the bytes available, and at least its header;
 *   - a decoded ROWS batch re-encodes to exactly its own length (so nothing was skipped
 *     or read twice), and every text value is NUL-terminated where the slice ends;
 *   - a decoded SERVERS list has NUL-terminated addresses within COORD_DQLITE_ADDRESS_MAX.
 * Seeds: corpus/dqlite_response/ (written by corpus/dqlite_response/.generate.py).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "dqlite_proto.h"

#define MAX_BODY (1u << 16)

static void check(int cond)
{
    if (!cond)
        abort();
}

/* The length a canonical encoding of `r`'s rows (one batch) would take. */
static size_t rows_encoded_len(const coord_dqlite_rows_t *r)
{
    size_t n = 8;
    for (uint32_t i = 0; i < r->ncols; i++)
        n += coord_dqlite__pad8(strlen(r->names[i]) + 1);
    for (uint32_t row = 0; row < r->nrows; row++) {
        n += coord_dqlite__pad8(((size_t)r->ncols + 1) / 2);
        for (uint32_t col = 0; col < r->ncols; col++) {
            const coord_dqlite_value_t *v = coord_dqlite_rows_at(r, row, col);
            switch (v->type) {
            case COORD_DQLITE_TEXT:
            case COORD_DQLITE_ISO8601:
                check(v->s.base[v->s.len] == '\0');
                n += coord_dqlite__pad8(v->s.len + 1);
                break;
            case COORD_DQLITE_BLOB:
                n += 8 + coord_dqlite__pad8(v->s.len);
                break;
            default:
                n += 8;
                break;
            }
        }
    }
    return n + 8; /* end marker */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct coord_dqlite__rows acc;
    coord_dqlite__rows_init(&acc, 1000, 1u << 20, 64);
    size_t off = 0;
    while (off < size) {
        struct coord_dqlite__msg m;
        long n = coord_dqlite__msg_parse(data + off, size - off, MAX_BODY, &m);
        if (n <= 0)
            break; /* need more (truncated) or over the limit: the client closes here */
        check((size_t)n <= size - off && (size_t)n >= COORD_DQLITE__HEADER_LEN);
        check(m.body.len == (size_t)n - COORD_DQLITE__HEADER_LEN);
        off += (size_t)n;

        uint64_t code, id, np;
        uint32_t db, sid, nn;
        ax_slice_t s;
        coord_dqlite_result_t res;
        coord_dqlite_node_t *nodes;
        switch (m.type) {
        case COORD_DQLITE__RESP_FAILURE:
            if (coord_dqlite__decode_failure(m.body, &code, &s) == 0)
                check(s.len < m.body.len);
            break;
        case COORD_DQLITE__RESP_SERVER:
            if (coord_dqlite__decode_server(m.body, &id, &s) == 0)
                check(s.len + 8 < m.body.len);
            break;
        case COORD_DQLITE__RESP_DB:
            coord_dqlite__decode_db(m.body, &db);
            break;
        case COORD_DQLITE__RESP_STMT:
            coord_dqlite__decode_stmt(m.body, &db, &sid, &np);
            break;
        case COORD_DQLITE__RESP_RESULT:
            coord_dqlite__decode_result(m.body, &res);
            break;
        case COORD_DQLITE__RESP_EMPTY:
            coord_dqlite__decode_empty(m.body);
            break;
        case COORD_DQLITE__RESP_SERVERS:
            if (coord_dqlite__decode_servers(m.body, 16, &nodes, &nn) == 0) {
                for (uint32_t i = 0; i < nn; i++)
                    check(strlen(nodes[i].address) <= COORD_DQLITE_ADDRESS_MAX);
                ax_free(nodes);
            }
            break;
        case COORD_DQLITE__RESP_ROWS: {
            /* Alone, to check the length invariant... */
            struct coord_dqlite__rows one;
            coord_dqlite__rows_init(&one, 1000, 1u << 20, 64);
            if (coord_dqlite__rows_feed(&one, m.body) == 0 && !one.overflow)
                check(rows_encoded_len(&one.pub) == m.body.len);
            coord_dqlite__rows_close(&one);
            /* ...and accumulated, as the client does across batches. */
            if (coord_dqlite__rows_feed(&acc, m.body) != 0) {
                coord_dqlite__rows_close(&acc);
                coord_dqlite__rows_init(&acc, 1000, 1u << 20, 64);
            } else if (!acc.overflow) {
                check(acc.pub.nrows <= 1000);
            }
            break;
        }
        default:
            break;
        }
    }
    coord_dqlite__rows_close(&acc);
    return 0;
}

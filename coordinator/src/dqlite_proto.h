/*
 * The dqlite wire protocol (version 1) as pure functions over bytes: request encoders and
 * incremental, limit-checked response decoders. No sockets, no clock, so the decoders can be
 * fed one byte at a time and fuzzed (fuzz/fuzz_dqlite_response.c).
 *
 * Internal to coordinator/src. The format is summarised in docs/protocol-dqlite.md:
 *   handshake: one word, the protocol version (uint64 LE, 1);
 *   message:   header word [u32 LE body words][u8 type][u8 schema][2 unused] + body;
 *   text:      UTF-8, NUL-terminated, zero-padded to a word;
 *   blob:      uint64 length + bytes padded to a word.
 */
#ifndef AETHEX_COORDINATOR_DQLITE_PROTO_H
#define AETHEX_COORDINATOR_DQLITE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/util.h"
#include "aethex/coordinator/dqlite_client.h"

#define COORD_DQLITE__PROTOCOL_VERSION 1
#define COORD_DQLITE__HEADER_LEN 8
#define COORD_DQLITE__WORD 8
#define COORD_DQLITE__MAX_PARAMS 255 /* params-tuple (schema 0) has a one-byte count */

#define COORD_DQLITE__ROWS_DONE UINT64_C(0xffffffffffffffff)
#define COORD_DQLITE__ROWS_PART UINT64_C(0xeeeeeeeeeeeeeeee)

/* SQLite extended result codes the client acts on (dqlite replies carry them). */
#define COORD_DQLITE__SQLITE_ERROR 1
#define COORD_DQLITE__SQLITE_BUSY 5
#define COORD_DQLITE__SQLITE_LOCKED 6
#define COORD_DQLITE__SQLITE_NOMEM 7
#define COORD_DQLITE__SQLITE_IOERR 10
#define COORD_DQLITE__SQLITE_FULL 13
#define COORD_DQLITE__SQLITE_TOOBIG 18
#define COORD_DQLITE__SQLITE_CONSTRAINT 19
#define COORD_DQLITE__SQLITE_MISMATCH 20
#define COORD_DQLITE__SQLITE_RANGE 25
#define COORD_DQLITE__SQLITE_IOERR_NOT_LEADER 10250      /* SQLITE_IOERR | (40 << 8) */
#define COORD_DQLITE__SQLITE_IOERR_LEADERSHIP_LOST 10506 /* SQLITE_IOERR | (41 << 8) */

enum coord_dqlite__request_type {
    COORD_DQLITE__REQ_LEADER = 0,
    COORD_DQLITE__REQ_OPEN = 3,
    COORD_DQLITE__REQ_PREPARE = 4,
    COORD_DQLITE__REQ_EXEC = 5,
    COORD_DQLITE__REQ_QUERY = 6,
    COORD_DQLITE__REQ_FINALIZE = 7,
    COORD_DQLITE__REQ_EXEC_SQL = 8,
    COORD_DQLITE__REQ_QUERY_SQL = 9,
    COORD_DQLITE__REQ_ADD = 12,
    COORD_DQLITE__REQ_ASSIGN = 13,
    COORD_DQLITE__REQ_REMOVE = 14,
    COORD_DQLITE__REQ_CLUSTER = 16,
};

enum coord_dqlite__response_type {
    COORD_DQLITE__RESP_FAILURE = 0,
    COORD_DQLITE__RESP_SERVER = 1,
    COORD_DQLITE__RESP_WELCOME = 2,
    COORD_DQLITE__RESP_SERVERS = 3,
    COORD_DQLITE__RESP_DB = 4,
    COORD_DQLITE__RESP_STMT = 5,
    COORD_DQLITE__RESP_RESULT = 6,
    COORD_DQLITE__RESP_ROWS = 7,
    COORD_DQLITE__RESP_EMPTY = 8,
};

/* Rounds `n` up to a whole number of words. The caller has checked `n` is not near SIZE_MAX. */
static inline size_t coord_dqlite__pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* ---- encoding: every function appends to `b` and returns 0, AX_EINVAL or the ax_buf error
 * (AX_EMSGSIZE past b->limit, AX_ENOMEM). On error `b` may hold a partial message: reset it. */

/* The handshake word. */
int coord_dqlite__encode_handshake(ax_buf_t *b);

/* Starts a message (header with a zero length); returns its offset in *off. */
int coord_dqlite__msg_begin(ax_buf_t *b, uint8_t type, size_t *off);
/* Pads the body to a word and writes the body length into the header at `off`. */
int coord_dqlite__msg_end(ax_buf_t *b, size_t off);

int coord_dqlite__put_u64(ax_buf_t *b, uint64_t v);
int coord_dqlite__put_u32(ax_buf_t *b, uint32_t v);
/* Text: AX_EINVAL if `s` contains a NUL byte. */
int coord_dqlite__put_text(ax_buf_t *b, ax_slice_t s);

/* A params-tuple (schema 0) of `n` values; nothing at all when n == 0 (the server then binds
 * nothing). AX_EINVAL for n > 255, an unknown or row-only type (UNIXTIME), NUL in text. */
int coord_dqlite__encode_params(ax_buf_t *b, const coord_dqlite_value_t *v, uint32_t n);

/* Whole requests. `params` is an already encoded params-tuple (possibly empty). */
int coord_dqlite__encode_leader(ax_buf_t *b);
int coord_dqlite__encode_open(ax_buf_t *b, ax_slice_t name);
int coord_dqlite__encode_prepare(ax_buf_t *b, uint64_t db, ax_slice_t sql);
/* type: REQ_EXEC or REQ_QUERY. */
int coord_dqlite__encode_stmt_req(ax_buf_t *b, uint8_t type, uint32_t db, uint32_t stmt,
                                  ax_slice_t params);
/* type: REQ_EXEC_SQL or REQ_QUERY_SQL. */
int coord_dqlite__encode_sql_req(ax_buf_t *b, uint8_t type, uint64_t db, ax_slice_t sql,
                                 ax_slice_t params);
int coord_dqlite__encode_finalize(ax_buf_t *b, uint32_t db, uint32_t stmt);
int coord_dqlite__encode_add(ax_buf_t *b, uint64_t id, ax_slice_t address);
int coord_dqlite__encode_assign(ax_buf_t *b, uint64_t id, uint64_t role);
int coord_dqlite__encode_remove(ax_buf_t *b, uint64_t id);
int coord_dqlite__encode_cluster(ax_buf_t *b);

/* ---- decoding ------------------------------------------------------------------------- */

/* One whole message found at the front of a byte buffer; `body` points into that buffer. */
struct coord_dqlite__msg {
    uint8_t type;
    uint8_t schema;
    ax_slice_t body;
};

/*
 * Looks for one whole message at the front of p[0..n). Returns the bytes it spans (header +
 * body, > 0) and fills `out`; 0 when more bytes are needed; AX_EMSGSIZE when the header
 * declares a body over `max_body` (checked before anything else is trusted).
 */
long coord_dqlite__msg_parse(const uint8_t *p, size_t n, uint32_t max_body,
                             struct coord_dqlite__msg *out);

/* Body decoders. Each returns 0 or AX_EPROTO (truncated, trailing bytes, bad text...). Slices
 * point into `body`. Text slices exclude the NUL, which is checked to be present. */
int coord_dqlite__decode_failure(ax_slice_t body, uint64_t *code, ax_slice_t *message);
int coord_dqlite__decode_server(ax_slice_t body, uint64_t *id, ax_slice_t *address);
int coord_dqlite__decode_db(ax_slice_t body, uint32_t *id);
int coord_dqlite__decode_stmt(ax_slice_t body, uint32_t *db, uint32_t *id, uint64_t *nparams);
int coord_dqlite__decode_result(ax_slice_t body, coord_dqlite_result_t *out);
int coord_dqlite__decode_empty(ax_slice_t body);

/* SERVERS (cluster format 1): allocates *nodes (ax_malloc, caller frees with ax_free).
 * AX_EPROTO, AX_EMSGSIZE (more than max_nodes entries or an address over
 * COORD_DQLITE_ADDRESS_MAX) or AX_ENOMEM. */
int coord_dqlite__decode_servers(ax_slice_t body, uint32_t max_nodes, coord_dqlite_node_t **nodes,
                                 uint32_t *n);

/*
 * A query's rows, accumulated across ROWS messages. Storage the caller provides:
 * coord_dqlite__rows_init / coord_dqlite__rows_close. `pub` is what the callback sees.
 */
struct coord_dqlite__rows_block; /* one kept copy of a ROWS body */
struct coord_dqlite__rows {
    coord_dqlite_rows_t pub;
    const char **names;                      /* owned array; strings point into blocks */
    coord_dqlite_value_t *values;            /* owned, nrows * ncols */
    size_t values_cap;                       /* in values */
    struct coord_dqlite__rows_block *blocks; /* owned list */
    uint64_t bytes;                          /* counted against max_result_bytes */
    uint32_t max_rows;
    uint64_t max_bytes;
    uint32_t max_columns;
    bool done;     /* the DONE marker arrived */
    bool overflow; /* a limit was passed: later rows are checked but not kept */
    uint32_t batches;
};

void coord_dqlite__rows_init(struct coord_dqlite__rows *r, uint32_t max_rows, uint64_t max_bytes,
                             uint32_t max_columns);
void coord_dqlite__rows_close(struct coord_dqlite__rows *r);

/*
 * Decodes one ROWS body and appends its rows. Returns 0 (check r->done: false means another
 * ROWS message follows), AX_EPROTO (malformed, a different column count than the first
 * batch, a batch after DONE), AX_ENOMEM. Passing max_rows/max_bytes is not an error here: it
 * sets r->overflow, drops what was kept, and keeps checking the rest.
 */
int coord_dqlite__rows_feed(struct coord_dqlite__rows *r, ax_slice_t body);

#endif /* AETHEX_COORDINATOR_DQLITE_PROTO_H */

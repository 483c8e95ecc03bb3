/*
 * AMF0 (Adobe Action Message Format 0) encode and decode, as RTMP commands and data
 * messages carry it: number, boolean, string, long string, object, ECMA array, strict
 * array, null, undefined and date. Other markers (movieclip, reference, recordset, XML
 * document, typed object, AVM+) are refused with AX_ENOTSUP.
 *
 * Decoding builds a small tree in one allocation. Strings in the tree are slices into the
 * input (borrowed): the input must outlive the document. Nesting is bounded by a caller
 * limit (AX_ETOODEEP), and so is the number of values (AX_ENOSPC), both checked before
 * anything is allocated. Encoding appends to an ax_buf_t, whose own limit bounds the
 * output (AX_EMSGSIZE).
 *
 * Pure functions over caller memory; any thread, no shared state.
 */
#ifndef AETHEX_MEDIA_AMF0_H
#define AETHEX_MEDIA_AMF0_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/util.h"

/* Wire markers (AMF0 spec 2.1). The value's type is its marker. */
typedef enum {
    MEDIA_AMF0_NUMBER = 0x00,
    MEDIA_AMF0_BOOLEAN = 0x01,
    MEDIA_AMF0_STRING = 0x02,
    MEDIA_AMF0_OBJECT = 0x03,
    MEDIA_AMF0_NULL = 0x05,
    MEDIA_AMF0_UNDEFINED = 0x06,
    MEDIA_AMF0_ECMA_ARRAY = 0x08,
    MEDIA_AMF0_OBJECT_END = 0x09, /* only inside objects/ECMA arrays; never a value */
    MEDIA_AMF0_STRICT_ARRAY = 0x0a,
    MEDIA_AMF0_DATE = 0x0b,
    MEDIA_AMF0_LONG_STRING = 0x0c,
} media_amf0_type_t;

/* Hard ceiling on max_depth, whatever the caller asks (it bounds our recursion). */
#define MEDIA_AMF0_DEPTH_CEILING 64

typedef struct media_amf0_value media_amf0_value_t;
typedef struct media_amf0_prop media_amf0_prop_t;

struct media_amf0_value {
    media_amf0_type_t type;
    union {
        double number;                 /* NUMBER */
        bool boolean;                  /* BOOLEAN (any non-zero byte is true) */
        ax_slice_t string;             /* STRING, LONG_STRING: borrowed from the input */
        struct {
            double ms;                 /* milliseconds since the Unix epoch */
            int16_t tz;                /* reserved time-zone field, kept for re-encoding */
        } date;                        /* DATE */
        struct {
            media_amf0_prop_t *props;  /* in wire order; owned by the document */
            uint32_t count;
            uint32_t declared;         /* ECMA_ARRAY: the count field as sent (often wrong) */
        } object;                      /* OBJECT, ECMA_ARRAY */
        struct {
            media_amf0_value_t *items; /* owned by the document */
            uint32_t count;
        } array;                       /* STRICT_ARRAY */
    } u;
};

struct media_amf0_prop {
    ax_slice_t key; /* borrowed from the input; may be empty */
    media_amf0_value_t value;
};

typedef struct media_amf0_limits {
    uint32_t max_depth;  /* a top-level value is depth 1; its members depth 2; ... */
    uint32_t max_values; /* values + properties in the whole document */
} media_amf0_limits_t;

/* A decoded sequence of top-level values (an RTMP command: name, transaction id, ...). */
typedef struct media_amf0_doc {
    media_amf0_value_t *values; /* the top-level values, in order; owned */
    size_t count;
    size_t error_offset;        /* on failure: offset in the input of the offending byte */
    void *arena;                /* owned: every value and property of the tree */
} media_amf0_doc_t;

/*
 * Decodes every value in `in` (borrowed; must outlive `out`) into `out`. The whole input
 * must be whole values: a truncated value is AX_EBADDATA. Returns 0, AX_EBADDATA (malformed
 * or truncated), AX_ENOTSUP (a marker we do not decode), AX_ETOODEEP (nesting beyond
 * `lim->max_depth`), AX_ENOSPC (more than `lim->max_values`) or AX_ENOMEM. On failure `out`
 * holds nothing to free except error_offset; media_amf0_doc_free() is still safe.
 */
int media_amf0_decode(ax_slice_t in, const media_amf0_limits_t *lim, media_amf0_doc_t *out);

/* Frees what a document holds and empties it. Safe on a zeroed or failed document. */
void media_amf0_doc_free(media_amf0_doc_t *doc);

/* Appends the encoding of `v` (and everything under it). Returns 0, AX_EMSGSIZE or AX_ENOMEM
 * (the buffer may then hold a partial encoding). */
int media_amf0_encode(ax_buf_t *out, const media_amf0_value_t *v);

/* Encoding piece by piece. Each returns 0, AX_EMSGSIZE or AX_ENOMEM. */
int media_amf0_put_number(ax_buf_t *out, double v);
int media_amf0_put_boolean(ax_buf_t *out, bool v);
/* A STRING, or a LONG_STRING when `s` is longer than 65535 bytes. `s` is copied. */
int media_amf0_put_string(ax_buf_t *out, ax_slice_t s);
int media_amf0_put_cstring(ax_buf_t *out, const char *s);
int media_amf0_put_null(ax_buf_t *out);
int media_amf0_put_undefined(ax_buf_t *out);
int media_amf0_put_date(ax_buf_t *out, double ms, int16_t tz);
/* Objects and ECMA arrays: start, then (key, value) pairs, then end. Keys are < 65536 bytes
 * (longer keys: AX_EINVAL). */
int media_amf0_put_object_start(ax_buf_t *out);
int media_amf0_put_ecma_array_start(ax_buf_t *out, uint32_t declared_count);
int media_amf0_put_key(ax_buf_t *out, ax_slice_t key);
int media_amf0_put_object_end(ax_buf_t *out);
/* Strict array: start with its count, then exactly `count` values. */
int media_amf0_put_strict_array_start(ax_buf_t *out, uint32_t count);

/* Lookups. Return NULL / false when absent or of another type. */
/* The property `key` of an OBJECT or ECMA_ARRAY (first match). */
const media_amf0_value_t *media_amf0_get(const media_amf0_value_t *obj, const char *key);
bool media_amf0_as_number(const media_amf0_value_t *v, double *out);
/* STRING or LONG_STRING. */
bool media_amf0_as_string(const media_amf0_value_t *v, ax_slice_t *out);

/* "number", "object", ... for messages. */
const char *media_amf0_type_name(int marker);

#endif /* AETHEX_MEDIA_AMF0_H */

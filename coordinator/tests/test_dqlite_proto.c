/*
 * coordinator.dqlite_proto: the dqlite wire codec against byte vectors written out by hand
 * from the protocol reference (docs/protocol-dqlite.md).
 */
#include <string.h>

#include "ax_test.h"

#include "aethex/common/util.h"
#include "dqlite_proto.h"

struct fixture {
    ax_buf_t b;
};

static int setup(void **state)
{
    struct fixture *f = test_malloc(sizeof *f);
    ax_buf_init(&f->b, 1 << 20);
    /* Allocated up front: cmocka checks for leaks between setup and teardown, and a buffer
     * grown inside a test but freed in teardown would count as one. */
    if (ax_buf_reserve(&f->b, 1 << 20) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ax_buf_close(&f->b);
    test_free(f);
    return 0;
}

/* The handshake is the protocol version 1 as one little-endian word. */
static void proto__handshake_is_version_one(void **state)
{
    struct fixture *f = *state;
    static const uint8_t want[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    assert_ax_err(coord_dqlite__encode_handshake(&f->b), 0);
    assert_int_equal(f->b.len, 8);
    assert_memory_equal(f->b.base, want, 8);
}

/* LEADER is a one-word body (unused) after a header saying 1 word, type 0. */
static void proto__leader_request_bytes(void **state)
{
    struct fixture *f = *state;
    static const uint8_t want[16] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_ax_err(coord_dqlite__encode_leader(&f->b), 0);
    assert_int_equal(f->b.len, sizeof want);
    assert_memory_equal(f->b.base, want, sizeof want);
}

/* OPEN carries the name as padded text, a flags word and an empty vfs text. */
static void proto__open_request_bytes(void **state)
{
    struct fixture *f = *state;
    /* clang-format off */
    static const uint8_t want[] = {
        3, 0, 0, 0, 3, 0, 0, 0,                /* 3 words, type OPEN */
        'a', 'e', 't', 'h', 'e', 'x', 0, 0,    /* "aethex" NUL pad */
        0, 0, 0, 0, 0, 0, 0, 0,                /* flags */
        0, 0, 0, 0, 0, 0, 0, 0,                /* "" */
    };
    /* clang-format on */
    assert_ax_err(coord_dqlite__encode_open(&f->b, AX_SLICE_LIT("aethex")), 0);
    assert_int_equal(f->b.len, sizeof want);
    assert_memory_equal(f->b.base, want, sizeof want);
}

/* A text of exactly 8 bytes needs a second word for its NUL. */
static void proto__text_of_a_word_takes_two_words(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(coord_dqlite__put_text(&f->b, AX_SLICE_LIT("12345678")), 0);
    assert_int_equal(f->b.len, 16);
    assert_int_equal(f->b.base[8], 0);
}

/* Text with a NUL inside is refused rather than silently cut short. */
static void proto__text_with_nul_is_refused(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(coord_dqlite__put_text(&f->b, AX_SLICE("a\0b", 3)), AX_EINVAL);
    coord_dqlite_value_t v = coord_dqlite_text_n("x\0y", 3);
    assert_ax_err(coord_dqlite__encode_params(&f->b, &v, 1), AX_EINVAL);
    assert_int_equal(f->b.len, 0);
}

/* A params tuple: count, one type byte each, padded; then each value. */
static void proto__params_tuple_bytes(void **state)
{
    struct fixture *f = *state;
    /* clang-format off */
    coord_dqlite_value_t v[] = {
        coord_dqlite_int(-2),
        coord_dqlite_text("hi"),
        coord_dqlite_null(),
        coord_dqlite_blob("\x01\x02\x03", 3),
        coord_dqlite_bool(true),
        coord_dqlite_float(1.0),
        coord_dqlite_iso8601("2026"),
    };
    /* clang-format on */
    /* clang-format off */
    static const uint8_t want[] = {
        7, 1, 3, 5, 4, 11, 2, 10,                         /* count + 7 types fill a word */
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,   /* -2 */
        'h', 'i', 0, 0, 0, 0, 0, 0,                       /* "hi" */
        0, 0, 0, 0, 0, 0, 0, 0,                           /* NULL */
        3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0,   /* blob */
        1, 0, 0, 0, 0, 0, 0, 0,                           /* true */
        0, 0, 0, 0, 0, 0, 0xf0, 0x3f,                     /* 1.0 */
        '2', '0', '2', '6', 0, 0, 0, 0,                   /* iso8601 */
    };
    /* clang-format on */
    assert_ax_err(coord_dqlite__encode_params(&f->b, v, AX_ARRAY_SIZE(v)), 0);
    assert_int_equal(f->b.len, sizeof want);
    assert_memory_equal(f->b.base, want, sizeof want);
}

/* Eight parameters need a second header word. */
static void proto__params_header_grows_past_seven(void **state)
{
    struct fixture *f = *state;
    coord_dqlite_value_t v[8];
    for (int i = 0; i < 8; i++)
        v[i] = coord_dqlite_int(i);
    assert_ax_err(coord_dqlite__encode_params(&f->b, v, 8), 0);
    assert_int_equal(f->b.len, 16 + 8 * 8);
    assert_int_equal(f->b.base[0], 8);
    assert_int_equal(f->b.base[8], 1);
    assert_int_equal(f->b.base[9], 0);
}

/* More than 255 parameters, or a row-only type, cannot be encoded. */
static void proto__params_limits(void **state)
{
    struct fixture *f = *state;
    static coord_dqlite_value_t v[256];
    for (int i = 0; i < 256; i++)
        v[i] = coord_dqlite_int(i);
    assert_ax_err(coord_dqlite__encode_params(&f->b, v, 256), AX_EINVAL);
    assert_ax_err(coord_dqlite__encode_params(&f->b, v, 255), 0);
    ax_buf_reset(&f->b);
    coord_dqlite_value_t t = {.type = COORD_DQLITE_UNIXTIME, .i = 5};
    assert_ax_err(coord_dqlite__encode_params(&f->b, &t, 1), AX_EINVAL);
    assert_int_equal(f->b.len, 0);
}

/* EXEC_SQL: db word, SQL text, then the params tuple as given. */
static void proto__exec_sql_request_bytes(void **state)
{
    struct fixture *f = *state;
    ax_buf_t params;
    ax_buf_init(&params, 1024);
    coord_dqlite_value_t v = coord_dqlite_int(7);
    assert_ax_err(coord_dqlite__encode_params(&params, &v, 1), 0);
    assert_ax_err(coord_dqlite__encode_sql_req(&f->b, COORD_DQLITE__REQ_EXEC_SQL, 0,
                                               AX_SLICE_LIT("SELECT ?"),
                                               AX_SLICE(params.base, params.len)),
                  0);
    /* clang-format off */
    static const uint8_t want[] = {
        5, 0, 0, 0, 8, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        'S', 'E', 'L', 'E', 'C', 'T', ' ', '?', 0, 0, 0, 0, 0, 0, 0, 0,
        1, 1, 0, 0, 0, 0, 0, 0,
        7, 0, 0, 0, 0, 0, 0, 0,
    };
    /* clang-format on */
    assert_int_equal(f->b.len, sizeof want);
    assert_memory_equal(f->b.base, want, sizeof want);
    ax_buf_close(&params);
}

/* EXEC of a prepared statement: two u32 ids share one word. */
static void proto__exec_stmt_request_bytes(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(
        coord_dqlite__encode_stmt_req(&f->b, COORD_DQLITE__REQ_EXEC, 0, 3, AX_SLICE(NULL, 0)), 0);
    static const uint8_t want[] = {1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0};
    assert_int_equal(f->b.len, sizeof want);
    assert_memory_equal(f->b.base, want, sizeof want);
}

/* Membership requests: ADD id+address, ASSIGN id+role, REMOVE id, CLUSTER format 1. */
static void proto__membership_request_bytes(void **state)
{
    struct fixture *f = *state;
    assert_ax_err(coord_dqlite__encode_add(&f->b, 2, AX_SLICE_LIT("127.0.0.1:9002")), 0);
    assert_int_equal(f->b.len, 8 + 8 + 16);
    assert_int_equal(f->b.base[0], 3);
    assert_int_equal(f->b.base[4], 12);
    assert_int_equal(f->b.base[8], 2);
    assert_memory_equal(f->b.base + 16, "127.0.0.1:9002\0\0", 16);
    ax_buf_reset(&f->b);
    assert_ax_err(coord_dqlite__encode_assign(&f->b, 3, COORD_DQLITE_VOTER), 0);
    assert_int_equal(f->b.len, 24);
    assert_int_equal(f->b.base[4], 13);
    ax_buf_reset(&f->b);
    assert_ax_err(coord_dqlite__encode_cluster(&f->b), 0);
    static const uint8_t want[] = {1, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(f->b.base, want, sizeof want);
}

/* A message is found only once all of it has arrived, whatever the split. */
static void proto__msg_parse_needs_whole_message(void **state)
{
    (void)state;
    static const uint8_t msg[] = {2, 0, 0, 0, 6, 0, 0, 0, 5, 0, 0, 0,   0,
                                  0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xaa};
    struct coord_dqlite__msg m;
    for (size_t n = 0; n < 24; n++)
        assert_int_equal(coord_dqlite__msg_parse(msg, n, 1024, &m), 0);
    assert_int_equal(coord_dqlite__msg_parse(msg, sizeof msg, 1024, &m), 24);
    assert_int_equal(m.type, COORD_DQLITE__RESP_RESULT);
    assert_int_equal(m.body.len, 16);
    coord_dqlite_result_t r;
    assert_ax_err(coord_dqlite__decode_result(m.body, &r), 0);
    assert_int_equal(r.last_insert_id, 5);
    assert_int_equal(r.rows_affected, 1);
}

/* A header declaring a body over the limit is refused before the body arrives. */
static void proto__msg_parse_refuses_oversized_header(void **state)
{
    (void)state;
    static const uint8_t hdr[] = {0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0};
    struct coord_dqlite__msg m;
    assert_ax_err((int)coord_dqlite__msg_parse(hdr, sizeof hdr, 1 << 20, &m), AX_EMSGSIZE);
}

/* FAILURE: code and SQLite's message. */
static void proto__failure_decodes_code_and_message(void **state)
{
    struct fixture *f = *state;
    coord_dqlite__put_u64(&f->b, 10250);
    coord_dqlite__put_text(&f->b, AX_SLICE_LIT("not leader"));
    uint64_t code;
    ax_slice_t msg;
    assert_ax_err(coord_dqlite__decode_failure(AX_SLICE(f->b.base, f->b.len), &code, &msg), 0);
    assert_int_equal(code, 10250);
    assert_true(ax_slice_eq_cstr(msg, "not leader"));
    /* Without the NUL inside the body, the text is truncated: a protocol error. */
    f->b.base[f->b.len - 6] = 'x';
    f->b.base[f->b.len - 5] = 'x';
    f->b.base[f->b.len - 4] = 'x';
    f->b.base[f->b.len - 3] = 'x';
    f->b.base[f->b.len - 2] = 'x';
    f->b.base[f->b.len - 1] = 'x';
    assert_ax_err(coord_dqlite__decode_failure(AX_SLICE(f->b.base, f->b.len), &code, &msg),
                  AX_EPROTO);
}

/* Fixed-shape bodies must be used up exactly. */
static void proto__trailing_bytes_are_a_protocol_error(void **state)
{
    struct fixture *f = *state;
    coord_dqlite__put_u64(&f->b, 0);
    coord_dqlite__put_u64(&f->b, 0);
    assert_ax_err(coord_dqlite__decode_empty(AX_SLICE(f->b.base, f->b.len)), AX_EPROTO);
    assert_ax_err(coord_dqlite__decode_empty(AX_SLICE(f->b.base, 8)), 0);
    assert_ax_err(coord_dqlite__decode_empty(AX_SLICE(f->b.base, 4)), AX_EPROTO);
    uint32_t id;
    assert_ax_err(coord_dqlite__decode_db(AX_SLICE(f->b.base, 8), &id), 0);
    assert_ax_err(coord_dqlite__decode_db(AX_SLICE(f->b.base, 16), &id), AX_EPROTO);
}

/* SERVERS lists id, address and role of each node, within max_nodes. */
static void proto__servers_decode_and_limit(void **state)
{
    struct fixture *f = *state;
    coord_dqlite__put_u64(&f->b, 2);
    coord_dqlite__put_u64(&f->b, 1);
    coord_dqlite__put_text(&f->b, AX_SLICE_LIT("127.0.0.1:9001"));
    coord_dqlite__put_u64(&f->b, COORD_DQLITE_VOTER);
    coord_dqlite__put_u64(&f->b, 2);
    coord_dqlite__put_text(&f->b, AX_SLICE_LIT("127.0.0.1:9002"));
    coord_dqlite__put_u64(&f->b, COORD_DQLITE_SPARE);
    coord_dqlite_node_t *nodes;
    uint32_t n;
    ax_slice_t body = AX_SLICE(f->b.base, f->b.len);
    assert_ax_err(coord_dqlite__decode_servers(body, 8, &nodes, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(nodes[1].id, 2);
    assert_string_equal(nodes[1].address, "127.0.0.1:9002");
    assert_int_equal(nodes[1].role, COORD_DQLITE_SPARE);
    ax_free(nodes);
    assert_ax_err(coord_dqlite__decode_servers(body, 1, &nodes, &n), AX_EMSGSIZE);
    assert_null(nodes);
    /* A role outside voter/standby/spare is refused. */
    f->b.base[f->b.len - 8] = 7;
    assert_ax_err(coord_dqlite__decode_servers(body, 8, &nodes, &n), AX_EPROTO);
    /* A count the body cannot hold is refused before allocating. */
    ax_wr_le64(f->b.base, 1000000);
    assert_ax_err(coord_dqlite__decode_servers(body, 2000000, &nodes, &n), AX_EPROTO);
}

/* Builds a ROWS body: columns a (int), b (text), c (null), d (float), e (blob). */
static void put_rows(ax_buf_t *b, int nrows, int first, uint64_t marker)
{
    coord_dqlite__put_u64(b, 5);
    coord_dqlite__put_text(b, AX_SLICE_LIT("a"));
    coord_dqlite__put_text(b, AX_SLICE_LIT("b"));
    coord_dqlite__put_text(b, AX_SLICE_LIT("c"));
    coord_dqlite__put_text(b, AX_SLICE_LIT("d"));
    coord_dqlite__put_text(b, AX_SLICE_LIT("e"));
    for (int i = first; i < first + nrows; i++) {
        uint8_t hdr[8] = {1 | (3 << 4), 5 | (2 << 4), 4, 0, 0, 0, 0, 0};
        ax_buf_append(b, hdr, 8);
        coord_dqlite__put_u64(b, (uint64_t)i);
        coord_dqlite__put_text(b, AX_SLICE_LIT("'); DROP TABLE x;--"));
        coord_dqlite__put_u64(b, 0);
        double d = i * 0.5;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        coord_dqlite__put_u64(b, bits);
        coord_dqlite__put_u64(b, 2);
        uint8_t blob[8] = {0xde, 0xad};
        ax_buf_append(b, blob, 8);
    }
    coord_dqlite__put_u64(b, marker);
}

/* Rows of every type decode in place, and two batches add up. */
static void proto__rows_two_batches_accumulate(void **state)
{
    struct fixture *f = *state;
    struct coord_dqlite__rows r;
    coord_dqlite__rows_init(&r, 100, 1 << 20, 16);
    put_rows(&f->b, 3, 0, COORD_DQLITE__ROWS_PART);
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), 0);
    assert_false(r.done);
    ax_buf_reset(&f->b);
    put_rows(&f->b, 2, 3, COORD_DQLITE__ROWS_DONE);
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), 0);
    assert_true(r.done);
    /* The caller's buffer may be reused: rows point into the accumulator's own copies. */
    memset(f->b.base, 0x55, f->b.len);
    assert_int_equal(r.pub.ncols, 5);
    assert_int_equal(r.pub.nrows, 5);
    assert_string_equal(r.pub.names[1], "b");
    for (uint32_t i = 0; i < 5; i++) {
        const coord_dqlite_value_t *v = coord_dqlite_rows_at(&r.pub, i, 0);
        assert_int_equal(v->type, COORD_DQLITE_INTEGER);
        assert_int_equal(v->i, i);
        v = coord_dqlite_rows_at(&r.pub, i, 1);
        assert_int_equal(v->type, COORD_DQLITE_TEXT);
        assert_string_equal((const char *)v->s.base, "'); DROP TABLE x;--");
        assert_int_equal(coord_dqlite_rows_at(&r.pub, i, 2)->type, COORD_DQLITE_NULL);
        assert_true(coord_dqlite_rows_at(&r.pub, i, 3)->f == i * 0.5);
        v = coord_dqlite_rows_at(&r.pub, i, 4);
        assert_int_equal(v->type, COORD_DQLITE_BLOB);
        assert_int_equal(v->s.len, 2);
        assert_int_equal(v->s.base[1], 0xad);
    }
    /* Nothing may follow DONE. */
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), AX_EPROTO);
    coord_dqlite__rows_close(&r);
}

/* A later batch with another column count is a protocol error. */
static void proto__rows_column_count_must_not_change(void **state)
{
    struct fixture *f = *state;
    struct coord_dqlite__rows r;
    coord_dqlite__rows_init(&r, 100, 1 << 20, 16);
    put_rows(&f->b, 1, 0, COORD_DQLITE__ROWS_PART);
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), 0);
    ax_buf_reset(&f->b);
    coord_dqlite__put_u64(&f->b, 1);
    coord_dqlite__put_text(&f->b, AX_SLICE_LIT("a"));
    coord_dqlite__put_u64(&f->b, COORD_DQLITE__ROWS_DONE);
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), AX_EPROTO);
    coord_dqlite__rows_close(&r);
}

/* Every truncation of a valid body is refused, never read past. */
static void proto__rows_truncated_anywhere_is_refused(void **state)
{
    struct fixture *f = *state;
    put_rows(&f->b, 2, 0, COORD_DQLITE__ROWS_DONE);
    for (size_t n = 0; n < f->b.len; n++) {
        struct coord_dqlite__rows r;
        coord_dqlite__rows_init(&r, 100, 1 << 20, 16);
        /* A copy of exactly n bytes, so ASan sees any read past the end. */
        uint8_t *copy = test_malloc(n ? n : 1);
        memcpy(copy, f->b.base, n);
        assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(copy, n)), AX_EPROTO);
        test_free(copy);
        coord_dqlite__rows_close(&r);
    }
}

/* An unknown type code in a row header is refused. */
static void proto__rows_unknown_type_is_refused(void **state)
{
    struct fixture *f = *state;
    put_rows(&f->b, 1, 0, COORD_DQLITE__ROWS_DONE);
    /* The row header follows the count word and five one-word names. */
    f->b.base[48] = 7 | (3 << 4);
    struct coord_dqlite__rows r;
    coord_dqlite__rows_init(&r, 100, 1 << 20, 16);
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), AX_EPROTO);
    coord_dqlite__rows_close(&r);
}

/* Past max_rows the result overflows: nothing is kept, later batches are still checked. */
static void proto__rows_over_limit_overflow(void **state)
{
    struct fixture *f = *state;
    struct coord_dqlite__rows r;
    coord_dqlite__rows_init(&r, 4, 1 << 20, 16);
    put_rows(&f->b, 3, 0, COORD_DQLITE__ROWS_PART);
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), 0);
    assert_false(r.overflow);
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), 0);
    assert_true(r.overflow);
    assert_int_equal(r.pub.nrows, 0);
    ax_buf_reset(&f->b);
    put_rows(&f->b, 3, 0, COORD_DQLITE__ROWS_DONE);
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), 0);
    assert_true(r.done);
    coord_dqlite__rows_close(&r);

    /* The byte limit behaves the same. */
    coord_dqlite__rows_init(&r, 100, 64, 16);
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), 0);
    assert_true(r.overflow);
    assert_true(r.done);
    coord_dqlite__rows_close(&r);
}

/* Too many columns for the limit is refused. */
static void proto__rows_column_limit(void **state)
{
    struct fixture *f = *state;
    put_rows(&f->b, 1, 0, COORD_DQLITE__ROWS_DONE);
    struct coord_dqlite__rows r;
    coord_dqlite__rows_init(&r, 100, 1 << 20, 4);
    assert_ax_err(coord_dqlite__rows_feed(&r, AX_SLICE(f->b.base, f->b.len)), AX_EPROTO);
    coord_dqlite__rows_close(&r);
}

static struct coord_dqlite__rows oom_rows;
static ax_buf_t *oom_body;

static int oom_feed(void)
{
    coord_dqlite__rows_init(&oom_rows, 100, 1 << 20, 16);
    return coord_dqlite__rows_feed(&oom_rows, AX_SLICE(oom_body->base, oom_body->len));
}

/* Every allocation of the rows decoder can fail cleanly with AX_ENOMEM. */
static void proto__rows_out_of_memory_sweep(void **state)
{
    struct fixture *f = *state;
    put_rows(&f->b, 200, 0, COORD_DQLITE__ROWS_DONE);
    oom_body = &f->b;
    AX_OOM_SWEEP(oom_feed(), coord_dqlite__rows_close(&oom_rows));
}

int main(void)
{
    ax_test_use_cmocka_allocator();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(proto__handshake_is_version_one),
        T(proto__leader_request_bytes),
        T(proto__open_request_bytes),
        T(proto__text_of_a_word_takes_two_words),
        T(proto__text_with_nul_is_refused),
        T(proto__params_tuple_bytes),
        T(proto__params_header_grows_past_seven),
        T(proto__params_limits),
        T(proto__exec_sql_request_bytes),
        T(proto__exec_stmt_request_bytes),
        T(proto__membership_request_bytes),
        T(proto__msg_parse_needs_whole_message),
        T(proto__msg_parse_refuses_oversized_header),
        T(proto__failure_decodes_code_and_message),
        T(proto__trailing_bytes_are_a_protocol_error),
        T(proto__servers_decode_and_limit),
        T(proto__rows_two_batches_accumulate),
        T(proto__rows_column_count_must_not_change),
        T(proto__rows_truncated_anywhere_is_refused),
        T(proto__rows_unknown_type_is_refused),
        T(proto__rows_over_limit_overflow),
        T(proto__rows_column_limit),
        T(proto__rows_out_of_memory_sweep),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}

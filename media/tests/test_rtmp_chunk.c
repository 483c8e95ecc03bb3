#include "ax_test.h"

#include <string.h>

#include "aethex/common/util.h"
#include "rtmp_internal.h"

#define MAX_GOT 16

struct got {
    uint32_t csid, timestamp, length, stream_id;
    uint8_t type;
    uint8_t payload[1024];
};

struct fixture {
    struct media_rtmp__chunk_reader r;
    struct media_rtmp__chunk_limits lim;
    ax_buf_t in;
    char errmsg[AX_ERRMSG_LEN];
    struct got got[MAX_GOT];
    int ngot;
    int set_chunk_size; /* apply Set Chunk Size messages as the session does */
};

static int setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof *f);
    f->lim = (struct media_rtmp__chunk_limits){
        .max_message_len = 4096,
        .max_command_len = 1024,
        .max_chunk_streams = 8,
        .max_incomplete_bytes = 8192,
    };
    media_rtmp__chunk_reader_init(&f->r, &f->lim);
    ax_buf_init(&f->in, 1 << 20);
    f->set_chunk_size = 1;
    *state = f;
    return 0;
}

/* cmocka 1.1 checks for leaks after the test body, before teardown: each test frees what
 * it allocated through cleanup(). */
static void cleanup(struct fixture *f)
{
    media_rtmp__chunk_reader_close(&f->r);
    ax_buf_close(&f->in);
}

#define TEST(name)                                                                          \
    static void name##_body(struct fixture *f);                                             \
    static void name(void **state)                                                          \
    {                                                                                       \
        name##_body(*state);                                                                \
        cleanup(*state);                                                                    \
    }                                                                                       \
    static void name##_body(struct fixture *f)

static int teardown(void **state)
{
    test_free(*state);
    return 0;
}

/* Feeds `f->in` in steps of `step` bytes; returns the first error or 0. */
static int feed(struct fixture *f, size_t step)
{
    size_t off = 0;
    while (off < f->in.len) {
        size_t n = f->in.len - off < step ? f->in.len - off : step;
        while (n > 0) {
            struct media_rtmp__message m;
            bool have = false;
            int rv = media_rtmp__chunk_read(&f->r, f->in.base + off, n, &m, &have, f->errmsg);
            if (rv < 0)
                return rv;
            assert_true(rv > 0 && (size_t)rv <= n);
            off += (size_t)rv;
            n -= (size_t)rv;
            if (!have)
                continue;
            assert_true(f->ngot < MAX_GOT);
            struct got *g = &f->got[f->ngot++];
            g->csid = m.csid;
            g->timestamp = m.timestamp;
            g->length = m.length;
            g->type = m.type;
            g->stream_id = m.stream_id;
            memcpy(g->payload, m.payload, m.length < sizeof g->payload ? m.length : 1024);
            if (f->set_chunk_size && m.type == MEDIA_RTMP__MSG_SET_CHUNK_SIZE)
                media_rtmp__chunk_set_size(&f->r, ax_rd_be32(m.payload));
        }
    }
    return 0;
}

static void put(struct fixture *f, const void *p, size_t n)
{
    assert_ax_err(ax_buf_append(&f->in, p, n), 0);
}

static void write_msg(struct fixture *f, uint32_t chunk_size, uint32_t csid, uint32_t ts,
                      uint8_t type, uint32_t msid, size_t len, uint8_t fill)
{
    uint8_t payload[4096];
    for (size_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(fill + i);
    assert_ax_err(media_rtmp__chunk_write(&f->in, chunk_size, csid, ts, type, msid, payload, len),
                  0);
}

static void check_payload(const struct got *g, uint8_t fill)
{
    for (size_t i = 0; i < g->length && i < sizeof g->payload; i++)
        assert_int_equal(g->payload[i], (uint8_t)(fill + i));
}

/* A type-0 chunk carries a whole short message with its header fields. */
TEST(chunk__reads_one_type0_message)
{
    write_msg(f, 128, 3, 1234, 20, 0x01020304, 100, 7);
    assert_ax_err(feed(f, SIZE_MAX), 0);
    assert_int_equal(f->ngot, 1);
    assert_int_equal(f->got[0].csid, 3);
    assert_int_equal(f->got[0].timestamp, 1234);
    assert_int_equal(f->got[0].length, 100);
    assert_int_equal(f->got[0].type, 20);
    assert_int_equal(f->got[0].stream_id, 0x01020304);
    check_payload(&f->got[0], 7);
}

/* A message longer than the chunk size is reassembled from type-3 continuation chunks. */
TEST(chunk__reassembles_continuations)
{
    write_msg(f, 128, 6, 40, 9, 1, 1000, 1);
    assert_int_equal(f->in.len, 12 + 1000 + 7); /* 8 chunks: 7 one-byte type-3 headers */
    assert_ax_err(feed(f, SIZE_MAX), 0);
    assert_int_equal(f->ngot, 1);
    assert_int_equal(f->got[0].length, 1000);
    check_payload(&f->got[0], 1);
}

/* Fed one byte at a time, the reader yields the same messages. */
TEST(chunk__one_byte_at_a_time)
{
    write_msg(f, 128, 6, 40, 9, 1, 1000, 1);
    write_msg(f, 128, 320, 0x1000000, 8, 1, 300, 9); /* 3-byte basic header, extended ts */
    write_msg(f, 128, 70, 5, 8, 1, 0, 0);            /* 2-byte basic header, empty */
    assert_ax_err(feed(f, 1), 0);
    assert_int_equal(f->ngot, 3);
    check_payload(&f->got[0], 1);
    assert_int_equal(f->got[1].csid, 320);
    assert_int_equal(f->got[1].timestamp, 0x1000000);
    check_payload(&f->got[1], 9);
    assert_int_equal(f->got[2].csid, 70);
    assert_int_equal(f->got[2].length, 0);
}

/* Chunks of two chunk streams may interleave; each message is reassembled on its own. */
TEST(chunk__interleaved_chunk_streams)
{
    ax_buf_t a, b;
    ax_buf_init(&a, 4096);
    ax_buf_init(&b, 4096);
    uint8_t pa[200], pb[150];
    for (size_t i = 0; i < sizeof pa; i++)
        pa[i] = (uint8_t)(1 + i);
    for (size_t i = 0; i < sizeof pb; i++)
        pb[i] = (uint8_t)(50 + i);
    assert_ax_err(media_rtmp__chunk_write(&a, 128, 4, 10, 8, 1, pa, sizeof pa), 0);
    assert_ax_err(media_rtmp__chunk_write(&b, 128, 6, 20, 9, 1, pb, sizeof pb), 0);
    /* a: 12+128 | 1+72 ; b: 12+128 | 1+22. Interleave: a0 b0 a1 b1. */
    put(f, a.base, 140);
    put(f, b.base, 140);
    put(f, a.base + 140, a.len - 140);
    put(f, b.base + 140, b.len - 140);
    assert_ax_err(feed(f, SIZE_MAX), 0);
    assert_int_equal(f->ngot, 2);
    assert_int_equal(f->got[0].csid, 4);
    check_payload(&f->got[0], 1);
    assert_int_equal(f->got[1].csid, 6);
    check_payload(&f->got[1], 50);
    ax_buf_close(&a);
    ax_buf_close(&b);
}

/* Types 1 and 2 add their delta; type 3 repeats the last delta (after a type 0: its
 * timestamp, RTMP 5.3.1.2.4) and the previous length, type and stream id. */
TEST(chunk__deltas_and_header_reuse)
{
    const uint8_t in[] = {
        0x04, 0x00, 0x00, 0x64, 0x00, 0x00, 0x02, 0x08, 0x01, 0x00, 0x00, 0x00, 'a', 'b', /* t0 ts100 */
        0xc4, 'c', 'd',                                                     /* t3: ts 200 */
        0x44, 0x00, 0x00, 0x21, 0x00, 0x00, 0x01, 0x09, 'e',                /* t1: +33 = 233 */
        0x84, 0x00, 0x00, 0x0a, 'f',                                        /* t2: +10 = 243 */
        0xc4, 'g',                                                          /* t3: +10 = 253 */
    };
    put(f, in, sizeof in);
    assert_ax_err(feed(f, SIZE_MAX), 0);
    assert_int_equal(f->ngot, 5);
    static const uint32_t ts[] = {100, 200, 233, 243, 253};
    static const uint8_t type[] = {8, 8, 9, 9, 9};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f->got[i].timestamp, ts[i]);
        assert_int_equal(f->got[i].type, type[i]);
        assert_int_equal(f->got[i].stream_id, 1);
    }
    assert_int_equal(f->got[1].length, 2);
    assert_int_equal(f->got[1].payload[0], 'c');
    assert_int_equal(f->got[4].payload[0], 'g');
}

/* Timestamps are added modulo 2^32: a delta past 0xffffffff wraps. */
TEST(chunk__timestamps_wrap)
{
    const uint8_t in[] = {
        0x04, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0x08, 0x01, 0x00, 0x00, 0x00,
        0xff, 0xff, 0xff, 0xf0, 'a',                              /* ext ts 0xfffffff0 */
        0x84, 0x00, 0x00, 0x20, 'b',                              /* +0x20 -> 0x10 */
    };
    put(f, in, sizeof in);
    assert_ax_err(feed(f, SIZE_MAX), 0);
    assert_int_equal(f->ngot, 2);
    assert_int_equal(f->got[0].timestamp, 0xfffffff0u);
    assert_int_equal(f->got[1].timestamp, 0x10);
}

/* After an extended header, type-3 chunks carry 4 more bytes: ignored in a continuation,
 * taken as the new delta when the type-3 header starts a message (what ffmpeg writes). */
TEST(chunk__type3_after_extended_timestamp)
{
    /* A 200-byte message with ext ts 0x01000000 in chunks of 128: the writer repeats ext. */
    write_msg(f, 128, 4, 0x01000000, 9, 1, 200, 3);
    assert_int_equal(f->in.len, 12 + 4 + 200 + 1 + 4);
    /* A new message with a type-1 extended delta, then a type-3 new message whose 4 bytes
     * carry a different delta. */
    const uint8_t in[] = {
        0x44, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0x08, 0x01, 0x00, 0x00, 0x00, 'x',
        0xc4, 0x01, 0x00, 0x00, 0x05, 'y',
    };
    put(f, in, sizeof in);
    assert_ax_err(feed(f, 7), 0);
    assert_int_equal(f->ngot, 3);
    assert_int_equal(f->got[0].timestamp, 0x01000000);
    check_payload(&f->got[0], 3);
    assert_int_equal(f->got[1].timestamp, 0x02000000);
    assert_int_equal(f->got[1].payload[0], 'x');
    assert_int_equal(f->got[2].timestamp, 0x03000005);
    assert_int_equal(f->got[2].payload[0], 'y');
}

/* A Set Chunk Size applied by the caller changes how the following chunks are read. */
TEST(chunk__set_chunk_size_applies_to_what_follows)
{
    uint8_t sz[4];
    ax_wr_be32(sz, 4096);
    assert_ax_err(media_rtmp__chunk_write(&f->in, 128, 2, 0, 1, 0, sz, 4), 0);
    write_msg(f, 4096, 6, 0, 9, 1, 3000, 5); /* one chunk now */
    assert_ax_err(feed(f, 1), 0);
    assert_int_equal(f->ngot, 2);
    assert_int_equal(f->got[1].length, 3000);
    check_payload(&f->got[1], 5);
}

/* Abort drops the unfinished message; the chunk stream then starts afresh. */
TEST(chunk__abort_drops_the_unfinished_message)
{
    write_msg(f, 128, 6, 0, 9, 1, 300, 1);
    f->in.len = 12 + 128; /* only the first chunk */
    assert_ax_err(feed(f, SIZE_MAX), 0);
    assert_int_equal(f->r.incomplete_bytes, 128);
    media_rtmp__chunk_abort(&f->r, 6);
    media_rtmp__chunk_abort(&f->r, 99); /* unknown: ignored */
    assert_int_equal(f->r.incomplete_bytes, 0);
    ax_buf_reset(&f->in);
    write_msg(f, 128, 6, 50, 9, 1, 10, 2);
    assert_ax_err(feed(f, SIZE_MAX), 0);
    assert_int_equal(f->ngot, 1);
    assert_int_equal(f->got[0].timestamp, 50);
    check_payload(&f->got[0], 2);
}

/* The first chunk of a chunk stream must be type 0. */
TEST(chunk__first_chunk_must_be_type0)
{
    for (unsigned fmt = 1; fmt < 4; fmt++) {
        media_rtmp__chunk_reader_close(&f->r);
        media_rtmp__chunk_reader_init(&f->r, &f->lim);
        uint8_t b = (uint8_t)(fmt << 6 | 5);
        ax_buf_reset(&f->in);
        put(f, &b, 1);
        assert_ax_err(feed(f, SIZE_MAX), AX_EPROTO);
        assert_non_null(strstr(f->errmsg, "no previous message header"));
    }
}

/* A new header on a chunk stream whose message is unfinished is a protocol error. */
TEST(chunk__new_header_mid_message_is_refused)
{
    write_msg(f, 128, 6, 0, 9, 1, 300, 1);
    f->in.len = 12 + 128;
    write_msg(f, 128, 6, 0, 9, 1, 10, 1);
    assert_ax_err(feed(f, SIZE_MAX), AX_EPROTO);
    assert_non_null(strstr(f->errmsg, "unfinished"));
}

/* A declared length over max_message_len is refused at the header, before any payload. */
TEST(chunk__message_length_limit)
{
    const uint8_t in[] = {0x06, 0, 0, 0, 0x00, 0x10, 0x01, 0x09, 1, 0, 0, 0};
    put(f, in, sizeof in);
    assert_ax_err(feed(f, SIZE_MAX), AX_EMSGSIZE);
    assert_string_equal(f->errmsg,
                        "message length 4097 exceeds max_message_len 4096 on chunk stream 6");
    assert_int_equal(f->r.streams[0]->payload.cap, 0);
}

/* Command and data messages have their own, smaller limit. */
TEST(chunk__command_length_limit)
{
    const uint8_t in[] = {0x03, 0, 0, 0, 0x00, 0x04, 0x01, 0x14, 0, 0, 0, 0};
    put(f, in, sizeof in);
    assert_ax_err(feed(f, SIZE_MAX), AX_EMSGSIZE);
    assert_non_null(strstr(f->errmsg, "max_command_len 1024"));
    /* A type-1 header that turns a chunk stream into a long data message is checked too. */
    media_rtmp__chunk_reader_close(&f->r);
    media_rtmp__chunk_reader_init(&f->r, &f->lim);
    ax_buf_reset(&f->in);
    const uint8_t in2[] = {0x03, 0, 0, 0, 0x00, 0x00, 0x01, 0x09, 1, 0, 0, 0, 'a',
                           0x43, 0, 0, 0, 0x00, 0x04, 0x01, 0x12};
    put(f, in2, sizeof in2);
    assert_ax_err(feed(f, SIZE_MAX), AX_EMSGSIZE);
    assert_non_null(strstr(f->errmsg, "type 18"));
}

/* More chunk stream ids than max_chunk_streams end the stream with AX_ENOSPC. */
TEST(chunk__chunk_stream_count_limit)
{
    for (uint32_t i = 0; i < 8; i++)
        write_msg(f, 128, 3 + i, 0, 8, 1, 1, 0);
    assert_ax_err(feed(f, SIZE_MAX), 0);
    assert_int_equal(f->ngot, 8);
    write_msg(f, 128, 3, 0, 8, 1, 1, 0); /* a known one is fine */
    write_msg(f, 128, 100, 0, 8, 1, 1, 0);
    f->ngot = 0;
    assert_ax_err(feed(f, SIZE_MAX), AX_ENOSPC);
    assert_string_equal(f->errmsg,
                        "chunk stream 100 would be one more than max_chunk_streams 8");
}

/* Bytes held in unfinished messages across chunk streams are bounded. */
TEST(chunk__incomplete_bytes_limit)
{
    /* Three 4000-byte messages started on three chunk streams: 3 x 3000 > 8192. */
    ax_buf_t m;
    ax_buf_init(&m, 1 << 16);
    uint8_t payload[4000] = {0};
    for (uint32_t cs = 4; cs < 7; cs++) {
        ax_buf_reset(&m);
        assert_ax_err(media_rtmp__chunk_write(&m, 3000, cs, 0, 9, 1, payload, sizeof payload),
                      0);
        put(f, m.base, 12 + 3000);
    }
    uint8_t sz[4];
    ax_wr_be32(sz, 3000);
    ax_buf_t pre;
    ax_buf_init(&pre, 64);
    assert_ax_err(media_rtmp__chunk_write(&pre, 128, 2, 0, 1, 0, sz, 4), 0);
    ax_buf_t all;
    ax_buf_init(&all, 1 << 16);
    assert_ax_err(ax_buf_append(&all, pre.base, pre.len), 0);
    assert_ax_err(ax_buf_append(&all, f->in.base, f->in.len), 0);
    ax_buf_close(&f->in);
    f->in = all;
    assert_ax_err(feed(f, SIZE_MAX), AX_ENOSPC);
    assert_non_null(strstr(f->errmsg, "max_incomplete_bytes 8192"));
    ax_buf_close(&m);
    ax_buf_close(&pre);
}

/* A zero-length message is delivered as soon as its header is read. */
TEST(chunk__zero_length_message)
{
    write_msg(f, 128, 3, 9, 20, 0, 0, 0);
    assert_ax_err(feed(f, SIZE_MAX), 0);
    assert_int_equal(f->ngot, 1);
    assert_int_equal(f->got[0].length, 0);
}

/* The writer refuses reserved chunk stream ids and never leaves a partial message. */
static void chunk__writer_is_all_or_nothing(void **state)
{
    (void)state;
    ax_buf_t b;
    ax_buf_init(&b, 100);
    uint8_t p[200] = {0};
    assert_ax_err(media_rtmp__chunk_write(&b, 128, 1, 0, 8, 0, p, 10), AX_EINVAL);
    assert_ax_err(media_rtmp__chunk_write(&b, 128, 65600, 0, 8, 0, p, 10), AX_EINVAL);
    assert_ax_err(media_rtmp__chunk_write(&b, 0, 3, 0, 8, 0, p, 10), AX_EINVAL);
    assert_ax_err(media_rtmp__chunk_write(&b, 128, 3, 0, 8, 0, p, 200), AX_EMSGSIZE);
    assert_int_equal(b.len, 0);
    assert_ax_err(media_rtmp__chunk_write(&b, 128, 65599, 0, 8, 0, p, 10), 0);
    assert_int_equal(b.len, 3 + 11 + 10);
    assert_int_equal(b.base[0], 0x01);
    assert_int_equal(ax_rd_be16(b.base + 1), 0xffff); /* 65599 - 64, little-endian: ff ff */
    ax_buf_close(&b);
}

/* An allocation failure while reading surfaces as AX_ENOMEM, with nothing leaked. */
TEST(chunk__reading_survives_out_of_memory)
{
    for (uint32_t i = 0; i < 6; i++)
        write_msg(f, 128, 3 + i, 0, 8, 1, 700, 0);
    for (long n = 0;; n++) {
        media_rtmp__chunk_reader_close(&f->r);
        media_rtmp__chunk_reader_init(&f->r, &f->lim);
        f->ngot = 0;
        ax_fail_after(n);
        int rv = feed(f, SIZE_MAX);
        ax_fail_after(-1);
        if (rv == 0)
            break;
        assert_ax_err(rv, AX_ENOMEM);
        assert_non_null(strstr(f->errmsg, "out of memory"));
    }
    assert_int_equal(f->ngot, 6);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(chunk__reads_one_type0_message),
        T(chunk__reassembles_continuations),
        T(chunk__one_byte_at_a_time),
        T(chunk__interleaved_chunk_streams),
        T(chunk__deltas_and_header_reuse),
        T(chunk__timestamps_wrap),
        T(chunk__type3_after_extended_timestamp),
        T(chunk__set_chunk_size_applies_to_what_follows),
        T(chunk__abort_drops_the_unfinished_message),
        T(chunk__first_chunk_must_be_type0),
        T(chunk__new_header_mid_message_is_refused),
        T(chunk__message_length_limit),
        T(chunk__command_length_limit),
        T(chunk__chunk_stream_count_limit),
        T(chunk__incomplete_bytes_limit),
        T(chunk__zero_length_message),
        T(chunk__writer_is_all_or_nothing),
        T(chunk__reading_survives_out_of_memory),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "ax_test.h"

#include <string.h>

#include "aethex/common/util.h"
#include "rtmp_internal.h"

struct fixture {
    struct media_rtmp__handshake hs;
    ax_buf_t out;
    char errmsg[AX_ERRMSG_LEN];
    uint8_t c0c1[1 + MEDIA_RTMP__SIG_SIZE];
    uint8_t c2[MEDIA_RTMP__SIG_SIZE];
};

static void fill_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    memset(buf, 0xa5, len);
}

static int setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof *f);
    media_rtmp__handshake_init(&f->hs, 0x01020304, NULL, NULL);
    ax_buf_init(&f->out, 1 << 16);
    /* A "simple" C1: time 1000, zero version, pattern. */
    f->c0c1[0] = 3;
    ax_wr_be32(f->c0c1 + 1, 1000);
    for (size_t i = 9; i < sizeof f->c0c1; i++)
        f->c0c1[i] = (uint8_t)(i * 7);
    memset(f->c2, 0x3c, sizeof f->c2);
    *state = f;
    return 0;
}

/* cmocka 1.1 checks for leaks after the test body, before teardown: each test frees what
 * it allocated through cleanup(). */
static void cleanup(struct fixture *f)
{
    ax_buf_close(&f->out);
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

static void check_reply(struct fixture *f)
{
    assert_int_equal(f->out.len, 1 + 2 * MEDIA_RTMP__SIG_SIZE);
    const uint8_t *s1 = f->out.base + 1;
    assert_int_equal(f->out.base[0], 3);
    assert_int_equal(ax_rd_be32(s1), 0x01020304);
    assert_int_equal(ax_rd_be32(s1 + 4), 0); /* "simple" server: no digest expected */
    assert_memory_equal(s1 + MEDIA_RTMP__SIG_SIZE, f->c0c1 + 1, MEDIA_RTMP__SIG_SIZE);
}

/* C0+C1 in one read is answered with S0+S1+S2 at once; C2 completes the handshake. */
TEST(handshake__answers_c0c1_and_completes_on_c2)
{
    int n = media_rtmp__handshake_feed(&f->hs, f->c0c1, sizeof f->c0c1, &f->out, f->errmsg);
    assert_int_equal(n, sizeof f->c0c1);
    check_reply(f);
    assert_false(media_rtmp__handshake_done(&f->hs));
    n = media_rtmp__handshake_feed(&f->hs, f->c2, sizeof f->c2, &f->out, f->errmsg);
    assert_int_equal(n, sizeof f->c2);
    assert_true(media_rtmp__handshake_done(&f->hs));
    assert_int_equal(f->hs.c1_time, 1000);
    assert_int_equal(f->hs.c1_version, 0);
}

/* Fed one byte at a time, the handshake behaves the same and answers exactly once. */
TEST(handshake__one_byte_at_a_time)
{
    for (size_t i = 0; i < sizeof f->c0c1; i++) {
        assert_int_equal(media_rtmp__handshake_feed(&f->hs, f->c0c1 + i, 1, &f->out, f->errmsg),
                         1);
        assert_int_equal(f->out.len, i + 1 < sizeof f->c0c1 ? 0 : 3073);
    }
    check_reply(f);
    for (size_t i = 0; i < sizeof f->c2; i++)
        assert_int_equal(media_rtmp__handshake_feed(&f->hs, f->c2 + i, 1, &f->out, f->errmsg),
                         1);
    assert_true(media_rtmp__handshake_done(&f->hs));
}

/* Bytes after C2 (the first chunk, sent in the same packet) are left unconsumed. */
TEST(handshake__stops_at_the_end_of_c2)
{
    uint8_t all[sizeof f->c0c1 + sizeof f->c2 + 5];
    memcpy(all, f->c0c1, sizeof f->c0c1);
    memcpy(all + sizeof f->c0c1, f->c2, sizeof f->c2);
    memset(all + sizeof f->c0c1 + sizeof f->c2, 0x03, 5);
    int n = media_rtmp__handshake_feed(&f->hs, all, sizeof all, &f->out, f->errmsg);
    assert_int_equal(n, sizeof all - 5);
    assert_true(media_rtmp__handshake_done(&f->hs));
    assert_int_equal(media_rtmp__handshake_feed(&f->hs, all, 5, &f->out, f->errmsg), 0);
}

/* A Flash-style C1 (non-zero version, as ffmpeg sends) gets the same simple answer. */
TEST(handshake__accepts_flash_style_c1)
{
    f->c0c1[5] = 9;
    f->c0c1[6] = 0;
    f->c0c1[7] = 124;
    f->c0c1[8] = 2;
    media_rtmp__handshake_init(&f->hs, 0x01020304, fill_random, NULL);
    int n = media_rtmp__handshake_feed(&f->hs, f->c0c1, sizeof f->c0c1, &f->out, f->errmsg);
    assert_int_equal(n, sizeof f->c0c1);
    check_reply(f);
    assert_int_equal(f->hs.c1_version, 0x09007c02);
    assert_int_equal(f->out.base[1 + 8], 0xa5); /* the injected random source filled S1 */
}

/* C0 asking for RTMPE is refused as unsupported; anything else as a protocol error. */
TEST(handshake__refuses_bad_versions_on_the_first_byte)
{
    uint8_t v6 = 6, v8 = 8, http = 'G';
    assert_ax_err(media_rtmp__handshake_feed(&f->hs, &v6, 1, &f->out, f->errmsg), AX_ENOTSUP);
    assert_non_null(strstr(f->errmsg, "RTMPE"));
    media_rtmp__handshake_init(&f->hs, 0, NULL, NULL);
    assert_ax_err(media_rtmp__handshake_feed(&f->hs, &v8, 1, &f->out, f->errmsg), AX_ENOTSUP);
    media_rtmp__handshake_init(&f->hs, 0, NULL, NULL);
    assert_ax_err(media_rtmp__handshake_feed(&f->hs, &http, 1, &f->out, f->errmsg), AX_EPROTO);
    assert_non_null(strstr(f->errmsg, "C0 version 71"));
    assert_int_equal(f->out.len, 0);
}

/* When the output cannot take S0S1S2, the error says so. */
TEST(handshake__reports_a_full_output)
{
    ax_buf_t small;
    ax_buf_init(&small, 100);
    assert_ax_err(media_rtmp__handshake_feed(&f->hs, f->c0c1, sizeof f->c0c1, &small, f->errmsg),
                  AX_EMSGSIZE);
    assert_non_null(strstr(f->errmsg, "S0S1S2"));
    ax_buf_close(&small);
}

/* Empty input consumes nothing. */
TEST(handshake__empty_input)
{
    assert_int_equal(media_rtmp__handshake_feed(&f->hs, f->c0c1, 0, &f->out, f->errmsg), 0);
    assert_int_equal(f->out.len, 0);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(handshake__answers_c0c1_and_completes_on_c2),
        T(handshake__one_byte_at_a_time),
        T(handshake__stops_at_the_end_of_c2),
        T(handshake__accepts_flash_style_c1),
        T(handshake__refuses_bad_versions_on_the_first_byte),
        T(handshake__reports_a_full_output),
        T(handshake__empty_input),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* proto.frame: the frame decoder, the envelope codec, proofs and helpers (rpc_frame.c). */
#include "ax_test.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aethex/common/alloc.h"
#include "aethex/proto/rpc.h"

static int group_setup(void **state)
{
    (void)state;
    ax_test_use_cmocka_allocator();
    return 0;
}

/* Fewer than 4 bytes is "need more", whatever they are. */
static void frame__short_header_needs_more(void **state)
{
    (void)state;
    const uint8_t b[3] = {0xff, 0xff, 0xff};
    ax_slice_t body;
    for (size_t n = 0; n <= 3; n++)
        assert_int_equal(proto_rpc_frame_decode(b, n, 1024, &body), 0);
}

/* A whole frame is consumed as 4 + N bytes, with the body pointing after the header. */
static void frame__whole_frame_consumed(void **state)
{
    (void)state;
    const uint8_t b[] = {0, 0, 0, 3, 'a', 'b', 'c', 0, 0};
    ax_slice_t body;
    assert_int_equal(proto_rpc_frame_decode(b, sizeof b, 1024, &body), 7);
    assert_ptr_equal(body.base, b + 4);
    assert_int_equal(body.len, 3);
}

/* Every truncation of a frame is "need more", never an error or a partial body. */
static void frame__every_truncation_needs_more(void **state)
{
    (void)state;
    uint8_t b[4 + 100];
    ax_wr_be32(b, 100);
    memset(b + 4, 0x5a, 100);
    ax_slice_t body;
    for (size_t n = 0; n < sizeof b; n++)
        assert_int_equal(proto_rpc_frame_decode(b, n, 1024, &body), 0);
    assert_int_equal(proto_rpc_frame_decode(b, sizeof b, 1024, &body), (int)sizeof b);
}

/* A declared length over max_frame is refused from the 4 header bytes alone. */
static void frame__oversized_length_refused_from_header(void **state)
{
    (void)state;
    const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    const uint8_t just_over[4] = {0, 0, 4, 1}; /* 1025 */
    const uint8_t at_limit[4] = {0, 0, 4, 0};  /* 1024: fine, needs more */
    ax_slice_t body;
    assert_ax_err(proto_rpc_frame_decode(huge, 4, 1024, &body), AX_EMSGSIZE);
    assert_ax_err(proto_rpc_frame_decode(just_over, 4, 1024, &body), AX_EMSGSIZE);
    assert_int_equal(proto_rpc_frame_decode(at_limit, 4, 1024, &body), 0);
}

/* A zero length is a protocol error: an envelope always carries a method. */
static void frame__zero_length_refused(void **state)
{
    (void)state;
    const uint8_t z[4] = {0, 0, 0, 0};
    ax_slice_t body;
    assert_ax_err(proto_rpc_frame_decode(z, 4, 1024, &body), AX_EPROTO);
}

/* Known bytes: request 1, method 12, status AX_EBADKEY, error "no", payload "xy", push. */
static void envelope__encodes_known_bytes(void **state)
{
    (void)state;
    proto_rpc_envelope_t env = {.request_id = 1,
                                .method = 12,
                                .status = AX_EBADKEY,
                                .error = AX_SLICE_LIT("no"),
                                .payload = AX_SLICE_LIT("xy"),
                                .push = true};
    ax_buf_t b;
    ax_buf_init(&b, 1024);
    assert_int_equal(proto_rpc_frame_encode(&env, 1024, &b), 0);
    /* zigzag(-10002) = 20003 = 0xa3 0x9c 0x01 */
    const uint8_t want[] = {0,    0,    0,    18,  0x08, 0x01, 0x10, 0x0c, 0x18, 0xa3, 0x9c,
                            0x01, 0x22, 0x02, 'n', 'o',  0x2a, 0x02, 'x',  'y',  0x30, 0x01};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.base, want, sizeof want);

    proto_rpc_envelope_t got;
    assert_int_equal(proto_rpc_envelope_decode(AX_SLICE(b.base + 4, b.len - 4), &got), 0);
    assert_int_equal(got.request_id, 1);
    assert_int_equal(got.method, 12);
    assert_int_equal(got.status, AX_EBADKEY);
    assert_true(ax_slice_eq_cstr(got.error, "no"));
    assert_true(ax_slice_eq_cstr(got.payload, "xy"));
    assert_true(got.push);
    ax_buf_close(&b);
}

/* Our hand-written envelope decoder reads what protobuf-c's packer writes. */
static void envelope__reads_protobuf_c_output(void **state)
{
    (void)state;
    Aethex__Envelope e = AETHEX__ENVELOPE__INIT;
    e.request_id = UINT64_MAX;
    e.method = AETHEX__METHOD__METHOD_END_STREAM;
    e.status = AX_ENOTLEADER;
    e.error = "not the leader";
    uint8_t pl[300];
    memset(pl, 7, sizeof pl);
    e.payload.data = pl;
    e.payload.len = sizeof pl;
    uint8_t buf[512];
    size_t n = aethex__envelope__pack(&e, buf);
    proto_rpc_envelope_t got;
    assert_int_equal(proto_rpc_envelope_decode(AX_SLICE(buf, n), &got), 0);
    assert_true(got.request_id == UINT64_MAX);
    assert_int_equal(got.method, AETHEX__METHOD__METHOD_END_STREAM);
    assert_int_equal(got.status, AX_ENOTLEADER);
    assert_true(ax_slice_eq_cstr(got.error, "not the leader"));
    assert_int_equal(got.payload.len, sizeof pl);
    assert_false(got.push);

    /* And protobuf-c reads ours, byte for byte the same. */
    proto_rpc_envelope_t env = got;
    ax_buf_t b;
    ax_buf_init(&b, 1024);
    assert_int_equal(proto_rpc_frame_encode(&env, 1024, &b), 0);
    assert_int_equal(b.len - 4, n);
    assert_memory_equal(b.base + 4, buf, n);
    ax_buf_close(&b);
}

/* Unknown fields of every wire type are skipped (forward compatibility). */
static void envelope__skips_unknown_fields(void **state)
{
    (void)state;
    const uint8_t b[] = {0x38, 0x05,                          /* field 7 varint */
                         0x41, 1,    2,   3,   4, 5, 6, 7, 8, /* field 8 i64 */
                         0x4d, 1,    2,   3,   4,             /* field 9 i32 */
                         0x52, 0x02, 'z', 'z',                /* field 10 len */
                         0x10, 0x0f};                         /* method 15 */
    proto_rpc_envelope_t got;
    assert_int_equal(proto_rpc_envelope_decode(AX_SLICE(b, sizeof b), &got), 0);
    assert_int_equal(got.method, 15);
}

/* Malformed envelopes are AX_EPROTO: truncations, bad wire types, overlong varints. */
static void envelope__malformed_refused(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint8_t b[12];
        size_t n;
    } bad[] = {
        {"truncated varint", {0x08, 0x80}, 2},
        {"length past the end", {0x2a, 0x05, 'a'}, 3},
        {"method as bytes", {0x12, 0x01, 0x00}, 3},
        {"group wire type", {0x0b}, 1},
        {"field 0", {0x00, 0x01}, 2},
        {"11-byte varint", {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}, 11},
        {"positive status", {0x18, 0x02}, 2},
        {"push = 2", {0x30, 0x02}, 2},
        {"truncated i64", {0x41, 1, 2, 3}, 4},
    };
    for (size_t i = 0; i < AX_ARRAY_SIZE(bad); i++) {
        proto_rpc_envelope_t got;
        int rv = proto_rpc_envelope_decode(AX_SLICE(bad[i].b, bad[i].n), &got);
        if (rv != AX_EPROTO)
            fail_msg("%s: got %d", bad[i].what, rv);
    }
}

/* Every truncation of a valid envelope either decodes (a field boundary) or is AX_EPROTO. */
static void envelope__every_truncation_is_clean(void **state)
{
    (void)state;
    proto_rpc_envelope_t env = {.request_id = 300,
                                .method = 11,
                                .status = AX_EDB,
                                .error = AX_SLICE_LIT("database"),
                                .payload = AX_SLICE_LIT("payload bytes")};
    ax_buf_t b;
    ax_buf_init(&b, 1024);
    assert_int_equal(proto_rpc_frame_encode(&env, 1024, &b), 0);
    for (size_t n = 0; n < b.len - 4; n++) {
        proto_rpc_envelope_t got;
        int rv = proto_rpc_envelope_decode(AX_SLICE(b.base + 4, n), &got);
        assert_true(rv == 0 || rv == AX_EPROTO);
    }
    ax_buf_close(&b);
}

/* An envelope larger than max_frame is not encoded, and the buffer is left unchanged. */
static void envelope__encode_over_max_frame_refused(void **state)
{
    (void)state;
    uint8_t big[200] = {0};
    proto_rpc_envelope_t env = {.method = 10, .payload = AX_SLICE(big, sizeof big)};
    ax_buf_t b;
    ax_buf_init(&b, 4096);
    assert_ax_err(proto_rpc_frame_encode(&env, 100, &b), AX_EMSGSIZE);
    assert_int_equal(b.len, 0);
    assert_int_equal(proto_rpc_frame_encode(&env, 300, &b), 0);
    ax_buf_close(&b);
}

/* Encoding fails cleanly with AX_ENOMEM at every allocation. */
static void envelope__encode_oom_sweep(void **state)
{
    (void)state;
    proto_rpc_envelope_t env = {.method = 10, .payload = AX_SLICE_LIT("abc")};
    ax_buf_t b;
    AX_OOM_SWEEP((ax_buf_init(&b, 4096), proto_rpc_frame_encode(&env, 1024, &b)), ax_buf_close(&b));
}

/* Unpacking a message through proto_rpc_allocator() fails cleanly at every allocation. */
static void helpers__unpack_oom_sweep(void **state)
{
    (void)state;
    Aethex__Heartbeat hb = AETHEX__HEARTBEAT__INIT;
    Aethex__ChannelLoad ch = AETHEX__CHANNEL_LOAD__INIT, *chs[1] = {&ch};
    hb.edge_id = "edge-a";
    hb.n_channels = 1;
    hb.channels = chs;
    ch.channel_slug = "demo";
    ch.viewers = 3;
    uint8_t *packed;
    size_t len;
    assert_int_equal(proto_rpc_pack(&hb.base, &packed, &len), 0);
    Aethex__Heartbeat *got = NULL;
    AX_OOM_SWEEP((got = aethex__heartbeat__unpack(proto_rpc_allocator(), len, packed)) != NULL
                     ? 0
                     : AX_ENOMEM,
                 (got != NULL ? (assert_string_equal(got->channels[0]->channel_slug, "demo"),
                                 aethex__heartbeat__free_unpacked(got, proto_rpc_allocator()))
                              : (void)0));
    ax_free(packed);
}

/* Proofs are HMAC-SHA256 with distinct labels: server and client proofs never coincide,
 * and a short secret is refused. */
static void proof__labels_and_secret_length(void **state)
{
    (void)state;
    uint8_t secret[32], nonce[32], a[32], b[32], c2[32];
    memset(secret, 's', sizeof secret);
    memset(nonce, 'n', sizeof nonce);
    assert_int_equal(proto_rpc_proof(secret, 32, true, nonce, AX_SLICE_LIT("x"), a), 0);
    assert_int_equal(proto_rpc_proof(secret, 32, false, nonce, AX_SLICE_LIT("x"), b), 0);
    assert_memory_not_equal(a, b, 32);
    assert_int_equal(proto_rpc_proof(secret, 32, true, nonce, AX_SLICE_LIT("x"), c2), 0);
    assert_memory_equal(a, c2, 32);
    assert_ax_err(proto_rpc_proof(secret, 31, true, nonce, AX_SLICE_LIT("x"), a), AX_EINVAL);
}

/* A secret file loses one trailing newline; a short one is refused with a message. */
static void secret__load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/aethex-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *s = "0123456789abcdef0123456789abcdef\r\n";
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
    close(fd);
    uint8_t out[PROTO_RPC_MAX_SECRET];
    size_t len = 0;
    char err[AX_ERRMSG_LEN];
    assert_int_equal(proto_rpc_secret_load(path, out, &len, err), 0);
    assert_int_equal(len, 32);
    assert_memory_equal(out, s, 32);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "short\n", 6), 6);
    close(fd);
    assert_ax_err(proto_rpc_secret_load(path, out, &len, err), AX_EINVAL);
    assert_non_null(strstr(err, "too short"));
    unlink(path);
    assert_ax_err(proto_rpc_secret_load(path, out, &len, err), AX_ENOENT);
}

/* Backoff doubles from min to max, with jitter keeping it within [w/2, w]. */
static void backoff__doubles_capped_with_jitter(void **state)
{
    (void)state;
    assert_int_equal(proto_rpc_backoff_ms(100, 5000, 0, 1000), 100);
    assert_int_equal(proto_rpc_backoff_ms(100, 5000, 0, 0), 50);
    assert_int_equal(proto_rpc_backoff_ms(100, 5000, 3, 1000), 800);
    assert_int_equal(proto_rpc_backoff_ms(100, 5000, 10, 1000), 5000);
    assert_int_equal(proto_rpc_backoff_ms(100, 5000, 31, 1000), 5000);
    ax_rand_splitmix_t r;
    ax_rand_splitmix_init(&r, 42);
    for (uint32_t round = 0; round < 40; round++) {
        uint32_t w = proto_rpc_backoff_ms(100, 5000, round, ax_rand_u64(&r.rand));
        uint32_t cap = round < 6 ? 100u << round : 5000;
        if (cap > 5000)
            cap = 5000;
        assert_true(w >= cap / 2 && w <= cap);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame__short_header_needs_more),
        cmocka_unit_test(frame__whole_frame_consumed),
        cmocka_unit_test(frame__every_truncation_needs_more),
        cmocka_unit_test(frame__oversized_length_refused_from_header),
        cmocka_unit_test(frame__zero_length_refused),
        cmocka_unit_test(envelope__encodes_known_bytes),
        cmocka_unit_test(envelope__reads_protobuf_c_output),
        cmocka_unit_test(envelope__skips_unknown_fields),
        cmocka_unit_test(envelope__malformed_refused),
        cmocka_unit_test(envelope__every_truncation_is_clean),
        cmocka_unit_test(envelope__encode_over_max_frame_refused),
        cmocka_unit_test(envelope__encode_oom_sweep),
        cmocka_unit_test(helpers__unpack_oom_sweep),
        cmocka_unit_test(proof__labels_and_secret_length),
        cmocka_unit_test(secret__load_file),
        cmocka_unit_test(backoff__doubles_capped_with_jitter),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}

#include "ax_test.h"

#include <math.h>
#include <string.h>

#include "aethex/common/util.h"
#include "aethex/media/amf0.h"

static const media_amf0_limits_t LIM = {.max_depth = 8, .max_values = 1000};

struct fixture {
    ax_buf_t b;
    media_amf0_doc_t doc;
};

static int setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof *f);
    ax_buf_init(&f->b, 1 << 20);
    *state = f;
    return 0;
}

/* cmocka 1.1 checks for leaks after the test body, before teardown: each test frees what
 * it allocated through cleanup(). */
static void cleanup(struct fixture *f)
{
    media_amf0_doc_free(&f->doc);
    ax_buf_close(&f->b);
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

/* Builds the connect command ffmpeg sends (name, transaction id, command object). */
static void put_connect(ax_buf_t *b)
{
    assert_ax_err(media_amf0_put_cstring(b, "connect"), 0);
    assert_ax_err(media_amf0_put_number(b, 1), 0);
    assert_ax_err(media_amf0_put_object_start(b), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("app")), 0);
    assert_ax_err(media_amf0_put_cstring(b, "live"), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("type")), 0);
    assert_ax_err(media_amf0_put_cstring(b, "nonprivate"), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("flashVer")), 0);
    assert_ax_err(media_amf0_put_cstring(b, "FMLE/3.0 (compatible; Lavf59.27.100)"), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("tcUrl")), 0);
    assert_ax_err(media_amf0_put_cstring(b, "rtmp://127.0.0.1:1935/live"), 0);
    assert_ax_err(media_amf0_put_object_end(b), 0);
}

/* A connect command decodes into its name, transaction id and command object. */
TEST(amf0__decodes_a_connect_command)
{
    put_connect(&f->b);
    assert_ax_err(media_amf0_decode(AX_SLICE(f->b.base, f->b.len), &LIM, &f->doc), 0);
    assert_int_equal(f->doc.count, 3);
    ax_slice_t s;
    double d;
    assert_true(media_amf0_as_string(&f->doc.values[0], &s));
    assert_true(ax_slice_eq_cstr(s, "connect"));
    assert_true(media_amf0_as_number(&f->doc.values[1], &d));
    assert_true(d == 1.0);
    assert_int_equal(f->doc.values[2].type, MEDIA_AMF0_OBJECT);
    assert_int_equal(f->doc.values[2].u.object.count, 4);
    assert_true(media_amf0_as_string(media_amf0_get(&f->doc.values[2], "tcUrl"), &s));
    assert_true(ax_slice_eq_cstr(s, "rtmp://127.0.0.1:1935/live"));
    assert_null(media_amf0_get(&f->doc.values[2], "nope"));
    assert_null(media_amf0_get(&f->doc.values[1], "app"));
    assert_false(media_amf0_as_number(&f->doc.values[0], &d));
    assert_false(media_amf0_as_string(NULL, &s));
}

/* Every supported type survives encode -> decode -> encode byte for byte. */
TEST(amf0__round_trips_every_type)
{
    ax_buf_t *b = &f->b;
    assert_ax_err(media_amf0_put_number(b, -0.5), 0);
    assert_ax_err(media_amf0_put_number(b, NAN), 0);
    assert_ax_err(media_amf0_put_boolean(b, true), 0);
    assert_ax_err(media_amf0_put_boolean(b, false), 0);
    assert_ax_err(media_amf0_put_cstring(b, ""), 0);
    assert_ax_err(media_amf0_put_null(b), 0);
    assert_ax_err(media_amf0_put_undefined(b), 0);
    assert_ax_err(media_amf0_put_date(b, 1764148800000.0, -60), 0);
    /* A long string that would fit a short one keeps its long marker. */
    assert_ax_err(ax_buf_put_u8(b, MEDIA_AMF0_LONG_STRING), 0);
    assert_ax_err(ax_buf_put_be32(b, 3), 0);
    assert_ax_err(ax_buf_append(b, "abc", 3), 0);
    assert_ax_err(media_amf0_put_ecma_array_start(b, 99), 0); /* a wrong count, kept */
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("duration")), 0);
    assert_ax_err(media_amf0_put_number(b, 6), 0);
    assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("list")), 0);
    assert_ax_err(media_amf0_put_strict_array_start(b, 2), 0);
    assert_ax_err(media_amf0_put_object_start(b), 0);
    assert_ax_err(media_amf0_put_object_end(b), 0);
    assert_ax_err(media_amf0_put_cstring(b, "x"), 0);
    assert_ax_err(media_amf0_put_object_end(b), 0);

    assert_ax_err(media_amf0_decode(AX_SLICE(b->base, b->len), &LIM, &f->doc), 0);
    assert_int_equal(f->doc.count, 10);
    assert_true(isnan(f->doc.values[1].u.number));
    assert_int_equal(f->doc.values[7].type, MEDIA_AMF0_DATE);
    assert_int_equal(f->doc.values[7].u.date.tz, -60);
    assert_int_equal(f->doc.values[8].type, MEDIA_AMF0_LONG_STRING);
    const media_amf0_value_t *arr = &f->doc.values[9];
    assert_int_equal(arr->type, MEDIA_AMF0_ECMA_ARRAY);
    assert_int_equal(arr->u.object.declared, 99);
    assert_int_equal(arr->u.object.count, 2);
    const media_amf0_value_t *list = media_amf0_get(arr, "list");
    assert_non_null(list);
    assert_int_equal(list->type, MEDIA_AMF0_STRICT_ARRAY);
    assert_int_equal(list->u.array.count, 2);
    assert_int_equal(list->u.array.items[0].type, MEDIA_AMF0_OBJECT);
    assert_int_equal(list->u.array.items[0].u.object.count, 0);

    ax_buf_t again;
    ax_buf_init(&again, 1 << 20);
    for (size_t i = 0; i < f->doc.count; i++)
        assert_ax_err(media_amf0_encode(&again, &f->doc.values[i]), 0);
    assert_int_equal(again.len, b->len);
    assert_memory_equal(again.base, b->base, b->len);
    ax_buf_close(&again);
}

/* A string over 65535 bytes is written as a long string and read back whole. */
TEST(amf0__long_strings_go_long)
{
    size_t n = 70000;
    char *big = test_malloc(n);
    memset(big, 'k', n);
    assert_ax_err(media_amf0_put_string(&f->b, AX_SLICE(big, n)), 0);
    assert_int_equal(f->b.base[0], MEDIA_AMF0_LONG_STRING);
    assert_ax_err(media_amf0_decode(AX_SLICE(f->b.base, f->b.len), &LIM, &f->doc), 0);
    assert_int_equal(f->doc.values[0].u.string.len, n);
    test_free(big);
}

/* A boolean byte other than 0 or 1 reads as true. */
TEST(amf0__any_nonzero_boolean_is_true)
{
    const uint8_t in[] = {0x01, 0x7f, 0x01, 0x00};
    assert_ax_err(media_amf0_decode(AX_SLICE(in, sizeof in), &LIM, &f->doc), 0);
    assert_true(f->doc.values[0].u.boolean);
    assert_false(f->doc.values[1].u.boolean);
}

/* A key of length zero not followed by the end marker is a property with an empty name. */
TEST(amf0__empty_key_is_a_property)
{
    const uint8_t in[] = {0x03, 0x00, 0x00, 0x05, 0x00, 0x00, 0x09};
    assert_ax_err(media_amf0_decode(AX_SLICE(in, sizeof in), &LIM, &f->doc), 0);
    assert_int_equal(f->doc.values[0].u.object.count, 1);
    assert_int_equal(f->doc.values[0].u.object.props[0].key.len, 0);
    assert_int_equal(f->doc.values[0].u.object.props[0].value.type, MEDIA_AMF0_NULL);
}

static void nest(ax_buf_t *b, int depth)
{
    for (int i = 0; i < depth - 1; i++) {
        assert_ax_err(media_amf0_put_object_start(b), 0);
        assert_ax_err(media_amf0_put_key(b, AX_SLICE_LIT("k")), 0);
    }
    assert_ax_err(media_amf0_put_null(b), 0);
    for (int i = 0; i < depth - 1; i++)
        assert_ax_err(media_amf0_put_object_end(b), 0);
}

/* Nesting up to max_depth decodes; one level more is refused with AX_ETOODEEP. */
TEST(amf0__nesting_is_limited)
{
    nest(&f->b, 8);
    assert_ax_err(media_amf0_decode(AX_SLICE(f->b.base, f->b.len), &LIM, &f->doc), 0);
    media_amf0_doc_free(&f->doc);
    ax_buf_reset(&f->b);
    nest(&f->b, 9);
    assert_ax_err(media_amf0_decode(AX_SLICE(f->b.base, f->b.len), &LIM, &f->doc),
                  AX_ETOODEEP);
    assert_null(f->doc.arena);
    /* Strict arrays nest too. */
    ax_buf_reset(&f->b);
    for (int i = 0; i < 9; i++)
        assert_ax_err(media_amf0_put_strict_array_start(&f->b, 1), 0);
    assert_ax_err(media_amf0_put_null(&f->b), 0);
    assert_ax_err(media_amf0_decode(AX_SLICE(f->b.base, f->b.len), &LIM, &f->doc),
                  AX_ETOODEEP);
}

/* A caller limit above the ceiling is clamped, so recursion stays bounded. */
TEST(amf0__depth_ceiling_applies)
{
    media_amf0_limits_t lim = {.max_depth = 1000000, .max_values = 1000000};
    nest(&f->b, MEDIA_AMF0_DEPTH_CEILING + 1);
    assert_ax_err(media_amf0_decode(AX_SLICE(f->b.base, f->b.len), &lim, &f->doc),
                  AX_ETOODEEP);
}

/* More values than max_values is refused with AX_ENOSPC before allocating. */
TEST(amf0__value_count_is_limited)
{
    media_amf0_limits_t lim = {.max_depth = 8, .max_values = 4};
    for (int i = 0; i < 4; i++)
        assert_ax_err(media_amf0_put_null(&f->b), 0);
    assert_ax_err(media_amf0_decode(AX_SLICE(f->b.base, f->b.len), &lim, &f->doc), 0);
    media_amf0_doc_free(&f->doc);
    assert_ax_err(media_amf0_put_null(&f->b), 0);
    ax_fail_after(0);
    assert_ax_err(media_amf0_decode(AX_SLICE(f->b.base, f->b.len), &lim, &f->doc), AX_ENOSPC);
    ax_fail_after(-1);
}

/* Every truncation of a command is refused as malformed, except at value boundaries. */
TEST(amf0__every_truncation_is_refused)
{
    put_connect(&f->b);
    size_t b1 = 1 + 2 + 7, b2 = b1 + 9;
    for (size_t n = 1; n < f->b.len; n++) {
        int rv = media_amf0_decode(AX_SLICE(f->b.base, n), &LIM, &f->doc);
        if (n == b1 || n == b2)
            assert_ax_err(rv, 0);
        else
            assert_ax_err(rv, AX_EBADDATA);
        assert_true(rv != 0 || f->doc.count > 0);
        media_amf0_doc_free(&f->doc);
    }
}

/* Markers we do not decode are refused by name: unsupported or malformed. */
TEST(amf0__unsupported_markers_are_refused)
{
    static const struct {
        uint8_t in[4];
        size_t len;
        int err;
    } cases[] = {
        {{0x07, 0x00, 0x01}, 3, AX_ENOTSUP},  /* reference */
        {{0x10, 0x00, 0x00}, 3, AX_ENOTSUP},  /* typed object */
        {{0x11, 0x00}, 2, AX_ENOTSUP},        /* AVM+ */
        {{0x04}, 1, AX_ENOTSUP},              /* movieclip */
        {{0x0f, 0, 0, 0}, 4, AX_ENOTSUP},     /* XML document */
        {{0x09}, 1, AX_EBADDATA},             /* object end outside an object */
        {{0x42}, 1, AX_EBADDATA},             /* no such marker */
        {{0x05, 0xff}, 2, AX_EBADDATA},
    };
    for (size_t i = 0; i < AX_ARRAY_SIZE(cases); i++) {
        int rv = media_amf0_decode(AX_SLICE(cases[i].in, cases[i].len), &LIM, &f->doc);
        assert_ax_err(rv, cases[i].err);
    }
    /* The error offset points at the offending marker. */
    const uint8_t in[] = {0x05, 0x05, 0x07, 0x00, 0x01};
    assert_ax_err(media_amf0_decode(AX_SLICE(in, sizeof in), &LIM, &f->doc), AX_ENOTSUP);
    assert_int_equal(f->doc.error_offset, 2);
    assert_string_equal(media_amf0_type_name(0x10), "typed object");
    assert_string_equal(media_amf0_type_name(0x99), "unknown");
}

/* A strict array declaring more items than bytes left is refused before allocating. */
TEST(amf0__strict_array_count_is_not_trusted)
{
    const uint8_t in[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x05, 0x05};
    ax_fail_after(0);
    assert_ax_err(media_amf0_decode(AX_SLICE(in, sizeof in), &LIM, &f->doc), AX_EBADDATA);
    ax_fail_after(-1);
}

/* A string whose length runs past the input is malformed. */
TEST(amf0__overlong_string_is_refused)
{
    const uint8_t s[] = {0x02, 0xff, 0xff, 'a'};
    assert_ax_err(media_amf0_decode(AX_SLICE(s, sizeof s), &LIM, &f->doc), AX_EBADDATA);
    const uint8_t l[] = {0x0c, 0xff, 0xff, 0xff, 0xff, 'a'};
    assert_ax_err(media_amf0_decode(AX_SLICE(l, sizeof l), &LIM, &f->doc), AX_EBADDATA);
    const uint8_t k[] = {0x03, 0x00, 0x09, 'a'};
    assert_ax_err(media_amf0_decode(AX_SLICE(k, sizeof k), &LIM, &f->doc), AX_EBADDATA);
}

/* Empty input decodes to no values without allocating. */
TEST(amf0__empty_input_is_empty)
{
    assert_ax_err(media_amf0_decode(AX_SLICE("", 0), &LIM, &f->doc), 0);
    assert_int_equal(f->doc.count, 0);
    assert_null(f->doc.arena);
    /* libFuzzer passes a NULL pointer for empty input (found by fuzz_amf0 under UBSan). */
    assert_ax_err(media_amf0_decode(AX_SLICE(NULL, 0), &LIM, &f->doc), 0);
}

/* Decoding fails cleanly with AX_ENOMEM when its one allocation fails. */
TEST(amf0__decode_survives_out_of_memory)
{
    put_connect(&f->b);
    AX_OOM_SWEEP(media_amf0_decode(AX_SLICE(f->b.base, f->b.len), &LIM, &f->doc),
                 media_amf0_doc_free(&f->doc));
}

/* Encoding past the buffer's limit reports AX_EMSGSIZE and writes nothing partial. */
static void amf0__encode_respects_the_buffer_limit(void **state)
{
    (void)state;
    ax_buf_t b;
    ax_buf_init(&b, 8);
    assert_ax_err(media_amf0_put_number(&b, 1), AX_EMSGSIZE);
    assert_int_equal(b.len, 0);
    assert_ax_err(media_amf0_put_cstring(&b, "12345678"), AX_EMSGSIZE);
    assert_int_equal(b.len, 0);
    assert_ax_err(media_amf0_put_cstring(&b, "hello"), 0);
    assert_int_equal(b.len, 8);
    ax_buf_close(&b);
    ax_buf_init(&b, 1 << 20);
    char key[70000];
    memset(key, 'a', sizeof key);
    assert_ax_err(media_amf0_put_key(&b, AX_SLICE(key, sizeof key)), AX_EINVAL);
    media_amf0_value_t bad = {.type = MEDIA_AMF0_OBJECT_END};
    assert_ax_err(media_amf0_encode(&b, &bad), AX_EINVAL);
    ax_buf_close(&b);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(amf0__decodes_a_connect_command),
        T(amf0__round_trips_every_type),
        T(amf0__long_strings_go_long),
        T(amf0__any_nonzero_boolean_is_true),
        T(amf0__empty_key_is_a_property),
        T(amf0__nesting_is_limited),
        T(amf0__depth_ceiling_applies),
        T(amf0__value_count_is_limited),
        T(amf0__every_truncation_is_refused),
        T(amf0__unsupported_markers_are_refused),
        T(amf0__strict_array_count_is_not_trusted),
        T(amf0__overlong_string_is_refused),
        T(amf0__empty_input_is_empty),
        T(amf0__decode_survives_out_of_memory),
        T(amf0__encode_respects_the_buffer_limit),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

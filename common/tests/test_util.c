#include "ax_test.h"

#include <string.h>

#include "aethex/common/clock.h"
#include "aethex/common/sm.h"
#include "aethex/common/util.h"

/* A buffer grows as bytes arrive and refuses to pass its limit. */
static void buf__grows_up_to_its_limit(void **state)
{
    (void)state;
    ax_buf_t b;
    ax_buf_init(&b, 10);
    assert_ax_err(ax_buf_append(&b, "hello", 5), 0);
    assert_ax_err(ax_buf_put_be32(&b, 0x01020304), 0);
    assert_int_equal(b.len, 9);
    assert_ax_err(ax_buf_put_be16(&b, 1), AX_EMSGSIZE);
    assert_int_equal(b.len, 9);
    assert_ax_err(ax_buf_put_u8(&b, 7), 0);
    assert_true(b.cap <= 10);
    ax_buf_consume(&b, 5);
    assert_int_equal(ax_rd_be32(b.base), 0x01020304);
    ax_buf_close(&b);
}

/* A reservation whose size would overflow is refused, not wrapped. */
static void buf__huge_reservation_is_refused(void **state)
{
    (void)state;
    ax_buf_t b;
    ax_buf_init(&b, SIZE_MAX);
    assert_ax_err(ax_buf_append(&b, "x", 1), 0);
    assert_ax_err(ax_buf_reserve(&b, SIZE_MAX), AX_EMSGSIZE);
    ax_buf_close(&b);
}

/* An allocation failure surfaces as AX_ENOMEM and leaves the buffer usable. */
static void buf__out_of_memory_is_reported(void **state)
{
    (void)state;
    ax_buf_t b;
    ax_buf_init(&b, 1024);
    AX_OOM_SWEEP(ax_buf_append(&b, "abc", 3), (void)0);
    assert_int_equal(b.len, 3);
    ax_buf_close(&b);
}

/* Endian helpers round-trip. */
static void bytes__round_trip(void **state)
{
    (void)state;
    uint8_t p[8];
    ax_wr_be24(p, 0xabcdef);
    assert_int_equal(ax_rd_be24(p), 0xabcdef);
    ax_wr_be64(p, 0x0102030405060708ull);
    assert_true(ax_rd_be64(p) == 0x0102030405060708ull);
    ax_wr_le64(p, 0x0102030405060708ull);
    assert_int_equal(p[0], 8);
    assert_true(ax_rd_le64(p) == 0x0102030405060708ull);
}

/* Every error code has a name and a message; unknown codes say so. */
static void error__table_names_every_code(void **state)
{
    (void)state;
    assert_string_equal(ax_err_name(AX_EMSGSIZE), "EMSGSIZE");
    assert_string_equal(ax_strerror(AX_ETOODEEP), "nesting too deep");
    assert_string_equal(ax_strerror(12345), "unknown error");
}

enum { S_A, S_B, S_C, S_COUNT };
static const struct ax_sm_conf sm_conf[S_COUNT] = {
    [S_A] = {"A", AX_SM_BIT(S_B)},
    [S_B] = {"B", AX_SM_BIT(S_C) | AX_SM_BIT(S_A)},
    [S_C] = {"C", 0},
};

/* A state machine follows its table and names its states. */
static void sm__follows_table(void **state)
{
    (void)state;
    ax_sm_t sm;
    ax_sm_init(&sm, sm_conf, S_COUNT, S_A);
    ax_sm_move(&sm, S_B);
    ax_sm_move(&sm, S_C);
    assert_int_equal(ax_sm_state(&sm), S_C);
    assert_string_equal(ax_sm_state_name(&sm), "C");
}

/* The manual clock moves only when told. */
static void clock__manual_advances(void **state)
{
    (void)state;
    ax_clock_manual_t m;
    ax_clock_manual_init(&m, 100, 5000);
    ax_clock_manual_advance(&m, 50);
    assert_int_equal(ax_clock_now_ms(&m.clock), 150);
    assert_int_equal(ax_clock_wall_ms(&m.clock), 5050);
    assert_true(ax_clock_now_ms(ax_clock_system()) > 0);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf__grows_up_to_its_limit),
        cmocka_unit_test(buf__huge_reservation_is_refused),
        cmocka_unit_test(buf__out_of_memory_is_reported),
        cmocka_unit_test(bytes__round_trip),
        cmocka_unit_test(error__table_names_every_code),
        cmocka_unit_test(sm__follows_table),
        cmocka_unit_test(clock__manual_advances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Test support shared by every module's cmocka tests.
 *
 * Include this instead of <cmocka.h>: it pulls in the headers cmocka 1.1 needs first.
 * ax_test_use_cmocka_allocator() routes ax_malloc & co. through cmocka's test_malloc so a
 * leak fails the test; call it from a group setup or from main() before running tests.
 */
#ifndef AETHEX_TEST_H
#define AETHEX_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"

static void *ax_test__malloc(size_t n)
{
    return test_malloc(n);
}
static void *ax_test__realloc(void *p, size_t n)
{
    return test_realloc(p, n);
}
static void *ax_test__calloc(size_t c, size_t n)
{
    return test_calloc(c, n);
}
static void ax_test__free(void *p)
{
    test_free(p);
}

static inline void ax_test_use_cmocka_allocator(void)
{
    ax_replace_allocator(ax_test__malloc, ax_test__realloc, ax_test__calloc, ax_test__free);
}

/* Asserts that an AX_E* code equals the expected one, printing both names on failure. */
#define assert_ax_err(got, want)                                                            \
    do {                                                                                    \
        int ax__g = (got), ax__w = (want);                                                  \
        if (ax__g != ax__w)                                                                 \
            fail_msg("expected %s (%d), got %s (%d)", ax__w ? ax_err_name(ax__w) : "OK",    \
                     ax__w, ax__g ? ax_err_name(ax__g) : "OK", ax__g);                      \
    } while (0)

/*
 * Out-of-memory sweep: runs `expr` (an int-returning expression) with the n-th allocation
 * failing for n = 0, 1, 2, ... until it succeeds; every failure must be AX_ENOMEM and `cleanup`
 * must leave nothing allocated (cmocka's checker reports leaks at test end).
 */
#define AX_OOM_SWEEP(expr, cleanup)                                                         \
    do {                                                                                    \
        for (long ax__n = 0;; ax__n++) {                                                    \
            ax_fail_after(ax__n);                                                           \
            int ax__rv = (expr);                                                            \
            ax_fail_after(-1);                                                              \
            cleanup;                                                                        \
            if (ax__rv == 0)                                                                \
                break;                                                                      \
            assert_ax_err(ax__rv, AX_ENOMEM);                                               \
            assert_true(ax__n < 100000);                                                    \
        }                                                                                   \
    } while (0)

#endif /* AETHEX_TEST_H */

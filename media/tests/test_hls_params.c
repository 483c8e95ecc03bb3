/*
 * LL-HLS delivery directives and resource names (hls_params.c).
 */
#include "ax_test.h"

#include <string.h>

#include "aethex/media/hls.h"

static int parse(const char *q, media_hls_params_t *p)
{
    return media_hls_params_parse(AX_SLICE(q, strlen(q)), NULL, p);
}

/* The three directives parse, with or without '?', among other parameters. */
static void params__parse_all_directives(void **state)
{
    (void)state;
    media_hls_params_t p;
    assert_ax_err(parse("?_HLS_msn=12&_HLS_part=3&_HLS_skip=YES", &p), 0);
    assert_true(p.has_msn && p.has_part);
    assert_int_equal(p.msn, 12);
    assert_int_equal(p.part, 3);
    assert_int_equal(p.skip, MEDIA_HLS_SKIP_YES);
    assert_ax_err(parse("token=abc&_HLS_skip=v2&x&_HLS_msn=0", &p), 0);
    assert_true(p.has_msn && !p.has_part);
    assert_int_equal(p.msn, 0);
    assert_int_equal(p.skip, MEDIA_HLS_SKIP_V2);
    assert_ax_err(parse("", &p), 0);
    assert_false(p.has_msn);
    assert_int_equal(p.skip, MEDIA_HLS_SKIP_NO);
    /* Percent-encoded names and digits are decoded. */
    assert_ax_err(parse("%5FHLS_msn=%31%32", &p), 0);
    assert_int_equal(p.msn, 12);
    /* The largest values. */
    assert_ax_err(parse("_HLS_msn=9007199254740992&_HLS_part=2147483647", &p), 0);
    assert_int_equal(p.msn, UINT64_C(9007199254740992));
    assert_int_equal(p.part, 2147483647u);
    /* Unknown _HLS_ parameters are ignored like any other. */
    assert_ax_err(parse("_HLS_future=1&_HLS_msn=1", &p), 0);
}

/* The spec's Bad Request cases and malformed values are AX_EINVAL. */
static void params__bad_requests_are_einval(void **state)
{
    (void)state;
    static const char *bad[] = {
        "_HLS_part=1",                      /* part without msn */
        "_HLS_msn=1&_HLS_msn=2",            /* repeated */
        "_HLS_msn=1&_HLS_part=1&_HLS_part=2",
        "_HLS_skip=YES&_HLS_skip=YES",
        "_HLS_msn=",                        /* empty */
        "_HLS_msn",                         /* no value */
        "_HLS_msn=-1",
        "_HLS_msn=+1",
        "_HLS_msn=1x",
        "_HLS_msn= 1",
        "_HLS_msn=9007199254740993",        /* over 2^53 */
        "_HLS_msn=99999999999999999999999",
        "_HLS_msn=1&_HLS_part=2147483648",
        "_HLS_skip=yes",
        "_HLS_skip=NO",
        "_HLS_skip=v3",
        "_HLS_msn=%3",                      /* truncated escape */
        "_HLS_msn=%zz",
    };
    for (size_t i = 0; i < AX_ARRAY_SIZE(bad); i++) {
        media_hls_params_t p;
        int rv = parse(bad[i], &p);
        if (rv != AX_EINVAL)
            fail_msg("%s: got %d", bad[i], rv);
    }
}

/* A query longer than the limit is refused before it is read. */
static void params__query_over_limit_is_emsgsize(void **state)
{
    (void)state;
    media_hls_limits_t l = {.max_query_len = 64};
    char q[100];
    memset(q, 'a', sizeof(q));
    media_hls_params_t p;
    assert_ax_err(media_hls_params_parse(AX_SLICE(q, sizeof(q)), &l, &p), AX_EMSGSIZE);
    assert_ax_err(media_hls_params_parse(AX_SLICE(q, 64), &l, &p), 0);
}

/* Resource names map to kinds and numbers; anything else is AX_ENOENT. */
static void params__resource_names(void **state)
{
    (void)state;
    media_hls_resource_t r;
    assert_ax_err(media_hls_resource_parse(AX_SLICE_LIT("index.m3u8"), &r), 0);
    assert_int_equal(r.kind, MEDIA_HLS_RES_PLAYLIST);
    assert_ax_err(media_hls_resource_parse(AX_SLICE_LIT("init-3.mp4"), &r), 0);
    assert_int_equal(r.kind, MEDIA_HLS_RES_INIT);
    assert_int_equal(r.init_gen, 3);
    assert_ax_err(media_hls_resource_parse(AX_SLICE_LIT("seg-120.m4s"), &r), 0);
    assert_int_equal(r.kind, MEDIA_HLS_RES_SEGMENT);
    assert_int_equal(r.msn, 120);
    assert_ax_err(media_hls_resource_parse(AX_SLICE_LIT("part-120.0.m4s"), &r), 0);
    assert_int_equal(r.kind, MEDIA_HLS_RES_PART);
    assert_int_equal(r.msn, 120);
    assert_int_equal(r.part, 0);
    static const char *bad[] = {"", "index.m3u", "init-.mp4", "init-01.mp4", "seg-1.mp4",
                                "seg-1.m4s.", "part-1.m4s", "part-1..m4s", "part-1.2.3.m4s",
                                "../seg-1.m4s", "seg-99999999999999999999.m4s", "SEG-1.m4s"};
    for (size_t i = 0; i < AX_ARRAY_SIZE(bad); i++)
        if (media_hls_resource_parse(AX_SLICE(bad[i], strlen(bad[i])), &r) != AX_ENOENT)
            fail_msg("%s accepted", bad[i]);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(params__parse_all_directives),
        cmocka_unit_test(params__bad_requests_are_einval),
        cmocka_unit_test(params__query_over_limit_is_emsgsize),
        cmocka_unit_test(params__resource_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* edge.relay_key: the relay's origin URLs and cache keys (edge/src/relay_url.c). */
#include "ax_test.h"

#include <string.h>

#include "edge_internal.h"

static int setup(void **state)
{
    (void)state;
    ax_test_use_cmocka_allocator();
    return 0;
}

static int key_of(const char *rest, const char *query, char *key, size_t keylen)
{
    return edge_relay_key(AX_SLICE(rest, strlen(rest)), AX_SLICE(query, strlen(query)), key,
                          keylen);
}

/* An origin URL is http://IP[:port][/prefix]; the prefix loses its trailing slashes. */
static void relay__origin_url_parses(void **state)
{
    (void)state;
    char host[64], prefix[128];
    uint16_t port = 0;
    assert_int_equal(edge_relay_parse_url("http://127.0.0.1:18082", host, sizeof host, &port,
                                          prefix, sizeof prefix),
                     0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 18082);
    assert_string_equal(prefix, "");
    assert_int_equal(edge_relay_parse_url("http://[::1]:8080/cdn/a//", host, sizeof host, &port,
                                          prefix, sizeof prefix),
                     0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_string_equal(prefix, "/cdn/a");
    assert_int_equal(edge_relay_parse_url("http://10.0.0.5", host, sizeof host, &port, prefix,
                                          sizeof prefix),
                     0);
    assert_int_equal(port, 80);
}

/* Anything but http with an IP literal and a valid port is refused: no resolver on the loop. */
static void relay__bad_origin_urls_are_refused(void **state)
{
    (void)state;
    char host[64], prefix[128];
    uint16_t port;
    const char *bad[] = {"https://127.0.0.1:1", "http://edge-a.example:80", "http://:80",
                         "http://127.0.0.1:0",  "http://127.0.0.1:99999",   "127.0.0.1:80",
                         "http://127.0.0.1:80/a b", "http://127.0.0.1:80/?x", ""};
    for (size_t i = 0; i < AX_ARRAY_SIZE(bad); i++)
        assert_int_equal(edge_relay_parse_url(bad[i], host, sizeof host, &port, prefix,
                                              sizeof prefix),
                         AX_EINVAL);
}

/* The LL-HLS parameters are re-rendered in one order, so equivalent requests share a pull;
 * parts, segments and init segments carry no query in their key. */
static void relay__keys_are_canonical(void **state)
{
    (void)state;
    char a[160], b[160];
    assert_int_equal(key_of("video-x/index.m3u8", "_HLS_part=2&_HLS_msn=17", a, sizeof a), 0);
    assert_int_equal(key_of("video-x/index.m3u8", "_HLS_msn=17&_HLS_part=2&foo=1", b, sizeof b),
                     0);
    assert_string_equal(a, "video-x/index.m3u8?_HLS_msn=17&_HLS_part=2");
    assert_string_equal(a, b);
    assert_int_equal(key_of("video-x/index.m3u8", "_HLS_msn=3&_HLS_skip=YES", a, sizeof a), 0);
    assert_string_equal(a, "video-x/index.m3u8?_HLS_msn=3&_HLS_skip=YES");
    assert_int_equal(key_of("video-x/index.m3u8", "", a, sizeof a), 0);
    assert_string_equal(a, "video-x/index.m3u8");
    assert_int_equal(key_of("video-x/part-17.2.m4s", "_HLS_msn=1", a, sizeof a), 0);
    assert_string_equal(a, "video-x/part-17.2.m4s");
    assert_int_equal(key_of("index.m3u8", "x=1", a, sizeof a), 0);
    assert_string_equal(a, "index.m3u8");
}

/* Bad _HLS_ values are a 400 (EINVAL); names the origin never serves are a 404 (ENOENT), so
 * the relay never forwards an arbitrary path. */
static void relay__bad_requests_are_refused(void **state)
{
    (void)state;
    char k[160];
    assert_int_equal(key_of("video-x/index.m3u8", "_HLS_part=2", k, sizeof k), AX_EINVAL);
    assert_int_equal(key_of("video-x/index.m3u8", "_HLS_msn=abc", k, sizeof k), AX_EINVAL);
    assert_int_equal(key_of("video-x/secret.txt", "", k, sizeof k), AX_ENOENT);
    assert_int_equal(key_of("video-x/a/index.m3u8", "", k, sizeof k), AX_ENOENT);
    assert_int_equal(key_of("/index.m3u8", "", k, sizeof k), AX_ENOENT);
    assert_int_equal(key_of("other.m3u8", "", k, sizeof k), AX_ENOENT);
    assert_int_equal(key_of("video-x/index.m3u8", "_HLS_msn=1", k, 12), AX_ENOENT);
    /* Found by fuzz.edge_relay_key: a NUL (or any byte the router refuses) in the path. */
    static const char nul[] = "video-12\0 \0x/index.m3u8";
    assert_int_equal(edge_relay_key(AX_SLICE(nul, sizeof nul - 1), AX_SLICE(NULL, 0), k, sizeof k),
                     AX_ENOENT);
    assert_int_equal(key_of("video x/index.m3u8", "", k, sizeof k), AX_ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(relay__origin_url_parses, setup),
        cmocka_unit_test_setup(relay__bad_origin_urls_are_refused, setup),
        cmocka_unit_test_setup(relay__keys_are_canonical, setup),
        cmocka_unit_test_setup(relay__bad_requests_are_refused, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

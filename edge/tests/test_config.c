/* edge.config: the config file, flags, keys file and request-path routing. */
#include "ax_test.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "edge_internal.h"

static int setup(void **state)
{
    (void)state;
    ax_test_use_cmocka_allocator();
    return 0;
}

/* The flags the README and the tests rely on are all accepted and land in the config. */
static void config__flags_set_fields(void **state)
{
    (void)state;
    edge_config_t c;
    edge_config_default(&c);
    char *argv[] = {"edge",
                    "--rtmp-listen",
                    "127.0.0.1:19352",
                    "--http-listen",
                    "127.0.0.1:18082",
                    "--no-coordinator",
                    "--accept-any-key",
                    "--keys-file",
                    "/tmp/k",
                    "--tls-listen",
                    "[::1]:8443",
                    "--tls-cert",
                    "c.pem",
                    "--tls-key=k.pem",
                    "--log-level",
                    "debug",
                    "--part-ms",
                    "200"};
    char err[256] = "";
    assert_int_equal(edge_config_parse_args(&c, (int)AX_ARRAY_SIZE(argv), argv, err, sizeof err),
                     0);
    assert_string_equal(c.rtmp.host, "127.0.0.1");
    assert_int_equal(c.rtmp.port, 19352);
    assert_int_equal(c.http.port, 18082);
    assert_true(c.no_coordinator);
    assert_true(c.accept_any_key);
    assert_string_equal(c.keys_file, "/tmp/k");
    assert_string_equal(c.tls.host, "::1");
    assert_int_equal(c.tls.port, 8443);
    assert_string_equal(c.tls_key, "k.pem");
    assert_int_equal(c.log_level, AX_LOG_DEBUG);
    assert_int_equal(c.part_ms, 200);
}

/* An unknown flag, a missing value and an out-of-range number are refused with a message. */
static void config__bad_flags_are_refused(void **state)
{
    (void)state;
    edge_config_t c;
    edge_config_default(&c);
    char err[256];
    char *a1[] = {"edge", "--bogus"};
    assert_ax_err(edge_config_parse_args(&c, 2, a1, err, sizeof err), AX_ENOENT);
    assert_non_null(strstr(err, "--bogus"));
    char *a2[] = {"edge", "--rtmp-listen"};
    assert_ax_err(edge_config_parse_args(&c, 2, a2, err, sizeof err), AX_EINVAL);
    char *a3[] = {"edge", "--part-ms", "99999999999"};
    assert_ax_err(edge_config_parse_args(&c, 3, a3, err, sizeof err), AX_EINVAL);
    char *a4[] = {"edge", "--http-listen", "nocolon"};
    assert_ax_err(edge_config_parse_args(&c, 3, a4, err, sizeof err), AX_EINVAL);
    char *a5[] = {"edge", "--http-listen", "h:70000"};
    assert_ax_err(edge_config_parse_args(&c, 3, a5, err, sizeof err), AX_EINVAL);
}

/* A config file sets values by the flags' names, and flags given on the command line win. */
static void config__file_then_flags(void **state)
{
    (void)state;
    char path[] = "/tmp/edge-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# edge\n  http-listen = 0.0.0.0:9000  \nsegment-ms=4000 # four s\n"
                       "accept-any-key\nlog-level = warn\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    edge_config_t c;
    edge_config_default(&c);
    char *argv[] = {"edge", "--segment-ms", "1000", "--config", path};
    char err[256] = "";
    assert_int_equal(edge_config_parse_args(&c, 5, argv, err, sizeof err), 0);
    assert_string_equal(c.http.host, "0.0.0.0");
    assert_int_equal(c.http.port, 9000);
    assert_int_equal(c.segment_ms, 1000);
    assert_true(c.accept_any_key);
    assert_int_equal(c.log_level, AX_LOG_WARN);
    unlink(path);
}

/* A bad line in a config file names the file and the line. */
static void config__file_error_names_line(void **state)
{
    (void)state;
    char path[] = "/tmp/edge-config-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "http-listen = 127.0.0.1:1\nwhat = 3\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    edge_config_t c;
    edge_config_default(&c);
    char err[256] = "";
    assert_ax_err(edge_config_load_file(&c, path, err, sizeof err), AX_ENOENT);
    assert_non_null(strstr(err, ":2:"));
    unlink(path);
}

/* Keys map to channels; a wrong, shorter or longer key finds nothing. */
static void keys__lookup_by_key(void **state)
{
    (void)state;
    edge_keys_t k;
    edge_keys_init(&k);
    char err[128];
    assert_int_equal(edge_keys_parse(&k,
                                     "# keys\ndemo  0123456789abcdef\n\nalice s3cr3t-key-x # c\n",
                                     err, sizeof err),
                     0);
    assert_int_equal(k.count, 2);
    assert_string_equal(edge_keys_lookup(&k, AX_SLICE_LIT("0123456789abcdef")), "demo");
    assert_string_equal(edge_keys_lookup(&k, AX_SLICE_LIT("s3cr3t-key-x")), "alice");
    assert_null(edge_keys_lookup(&k, AX_SLICE_LIT("0123456789abcdeX")));
    assert_null(edge_keys_lookup(&k, AX_SLICE_LIT("0123456789abcde")));
    assert_null(edge_keys_lookup(&k, AX_SLICE_LIT("0123456789abcdef0")));
    assert_null(edge_keys_lookup(&k, AX_SLICE_LIT("")));
    edge_keys_close(&k);
}

/* Malformed keys files are refused and leave the loaded keys untouched. */
static void keys__bad_files_keep_old_keys(void **state)
{
    (void)state;
    edge_keys_t k;
    edge_keys_init(&k);
    char err[128];
    assert_int_equal(edge_keys_parse(&k, "demo 0123456789abcdef\n", err, sizeof err), 0);
    assert_ax_err(edge_keys_parse(&k, "onlyone\n", err, sizeof err), AX_EINVAL);
    assert_ax_err(edge_keys_parse(&k, "a b c\n", err, sizeof err), AX_EINVAL);
    assert_ax_err(edge_keys_parse(&k, "bad/name 0123456789abcdef\n", err, sizeof err), AX_EINVAL);
    assert_ax_err(edge_keys_parse(&k, "demo short\n", err, sizeof err), AX_EINVAL);
    assert_ax_err(edge_keys_parse(&k, "a 0123456789abcdef\nb 0123456789abcdef\n", err, sizeof err),
                  AX_EINVAL);
    assert_non_null(strstr(err, "line 2"));
    assert_int_equal(k.count, 1);
    assert_string_equal(edge_keys_lookup(&k, AX_SLICE_LIT("0123456789abcdef")), "demo");
    edge_keys_close(&k);
}

/* Keys parsing fails cleanly with AX_ENOMEM at every allocation. */
static void keys__out_of_memory(void **state)
{
    (void)state;
    edge_keys_t k;
    edge_keys_init(&k);
    char err[128];
    AX_OOM_SWEEP(edge_keys_parse(&k, "demo 0123456789abcdef\n", err, sizeof err),
                 edge_keys_close(&k));
    edge_keys_close(&k);
}

static enum edge_route route(const char *p, ax_slice_t *ch, ax_slice_t *rest, ax_slice_t *q)
{
    return edge_http_route(AX_SLICE(p, strlen(p)), 256, ch, rest, q);
}

/* Live paths split into channel, file and query; /metrics is its own route. */
static void route__live_paths(void **state)
{
    (void)state;
    ax_slice_t ch, rest, q;
    assert_int_equal(route("/live/demo/index.m3u8", &ch, &rest, &q), EDGE_ROUTE_LIVE);
    assert_true(ax_slice_eq_cstr(ch, "demo"));
    assert_true(ax_slice_eq_cstr(rest, "index.m3u8"));
    assert_int_equal(q.len, 0);
    assert_int_equal(route("/live/a_b-1/v0/seg12.3.m4s?_HLS_msn=3&_HLS_part=1", &ch, &rest, &q),
                     EDGE_ROUTE_LIVE);
    assert_true(ax_slice_eq_cstr(rest, "v0/seg12.3.m4s"));
    assert_true(ax_slice_eq_cstr(q, "_HLS_msn=3&_HLS_part=1"));
    assert_int_equal(route("/metrics", &ch, &rest, &q), EDGE_ROUTE_METRICS);
}

/* Dot-segments, escapes, empty segments and odd bytes are bad requests, not lookups. */
static void route__hostile_paths_are_bad(void **state)
{
    (void)state;
    ax_slice_t ch, rest, q;
    const char *bad[] = {"/live/demo/../../etc/passwd",
                         "/live/../x",
                         "/live/demo/..",
                         "/live/demo/%2e%2e/x",
                         "/live//index.m3u8",
                         "live/demo/x",
                         "/live/demo/.hidden",
                         "/live/demo/a b",
                         "",
                         "/live/demo/x\\y",
                         "/live/dem*o/index.m3u8"};
    for (size_t i = 0; i < AX_ARRAY_SIZE(bad); i++)
        assert_int_equal(route(bad[i], &ch, &rest, &q), EDGE_ROUTE_BAD);
    char longp[400];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(route(longp, &ch, &rest, &q), EDGE_ROUTE_BAD);
}

/* Well-formed paths we do not serve are 404s. */
static void route__unknown_paths_are_none(void **state)
{
    (void)state;
    ax_slice_t ch, rest, q;
    assert_int_equal(route("/", &ch, &rest, &q), EDGE_ROUTE_NONE);
    assert_int_equal(route("/live/", &ch, &rest, &q), EDGE_ROUTE_NONE);
    assert_int_equal(route("/live/demo", &ch, &rest, &q), EDGE_ROUTE_NONE);
    assert_int_equal(route("/live/demo/", &ch, &rest, &q), EDGE_ROUTE_NONE);
    assert_int_equal(route("/favicon.ico", &ch, &rest, &q), EDGE_ROUTE_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config__flags_set_fields),
        cmocka_unit_test(config__bad_flags_are_refused),
        cmocka_unit_test(config__file_then_flags),
        cmocka_unit_test(config__file_error_names_line),
        cmocka_unit_test(keys__lookup_by_key),
        cmocka_unit_test(keys__bad_files_keep_old_keys),
        cmocka_unit_test(keys__out_of_memory),
        cmocka_unit_test(route__live_paths),
        cmocka_unit_test(route__hostile_paths_are_bad),
        cmocka_unit_test(route__unknown_paths_are_none),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

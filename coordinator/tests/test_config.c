/*
 * coordinator.config: the `key = value` file and the flags that override it.
 */
#include "ax_test.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aethex/coordinator/config.h"

static int parse(coord_config_t *c, const char *text, char *errmsg)
{
    return coord_config_parse_text(c, text, strlen(text), errmsg);
}

/* Defaults name a loopback single-node coordinator with /metrics on. */
static void config__defaults_are_a_loopback_single_node(void **state)
{
    (void)state;
    coord_config_t c;
    char err[AX_ERRMSG_LEN];
    coord_config_default(&c);
    assert_string_equal(c.address, "127.0.0.1:9001");
    assert_string_equal(c.http, "127.0.0.1:9080");
    assert_int_equal(c.njoin, 0);
    assert_int_equal(c.node_id, 0);
    assert_int_equal(c.network_latency_ms, 50);
    assert_int_equal(coord_config_validate(&c, err), 0);
}

/* A file sets keys; comments, blank lines and whitespace around '=' are ignored. */
static void config__file_sets_keys(void **state)
{
    (void)state;
    coord_config_t c;
    char err[AX_ERRMSG_LEN] = "";
    coord_config_default(&c);
    assert_ax_err(parse(&c,
                        "# a coordinator\n"
                        "\n"
                        "  address   =  10.0.0.2:9001  \r\n"
                        "data-dir=/var/lib/aethex\n"
                        "join = 10.0.0.1:9001, 10.0.0.3:9001\n"
                        "node-id = 7\n"
                        "http =\n"
                        "log-level = debug\n"
                        "network-latency-ms = 5",
                        err),
                  0);
    assert_string_equal(c.address, "10.0.0.2:9001");
    assert_string_equal(c.data_dir, "/var/lib/aethex");
    assert_int_equal(c.njoin, 2);
    assert_string_equal(c.join[0], "10.0.0.1:9001");
    assert_string_equal(c.join[1], "10.0.0.3:9001");
    assert_int_equal(c.node_id, 7);
    assert_string_equal(c.http, "");
    assert_int_equal(c.log_level, AX_LOG_DEBUG);
    assert_int_equal(c.network_latency_ms, 5);
}

/* A bad line is refused with its line number, and unknown keys are errors (not ignored). */
static void config__bad_lines_name_their_line(void **state)
{
    (void)state;
    coord_config_t c;
    char err[AX_ERRMSG_LEN] = "";
    coord_config_default(&c);
    assert_ax_err(parse(&c, "address = 127.0.0.1:1\nadress = x\n", err), AX_ENOENT);
    assert_non_null(strstr(err, "line 2"));
    assert_non_null(strstr(err, "adress"));
    assert_ax_err(parse(&c, "\n\njust words\n", err), AX_EINVAL);
    assert_non_null(strstr(err, "line 3"));
    assert_ax_err(parse(&c, " = 1\n", err), AX_EINVAL);
    assert_ax_err(parse(&c, "address = localhost:9001\n", err), AX_EINVAL);
    assert_ax_err(parse(&c, "address = 127.0.0.1:65536\n", err), AX_EINVAL);
    assert_ax_err(parse(&c, "address = 127.0.0.1:0\n", err), AX_EINVAL);
    assert_ax_err(parse(&c, "node-id = -1\n", err), AX_EINVAL);
    assert_ax_err(parse(&c, "node-id = 99999999999999999999999\n", err), AX_EINVAL);
    assert_ax_err(parse(&c, "join = 127.0.0.1:1,\n", err), AX_EINVAL);
    assert_ax_err(parse(&c, "join = 127.0.0.1:1,,127.0.0.1:2\n", err), AX_EINVAL);
    assert_ax_err(parse(&c, "log-level = loud\n", err), AX_EINVAL);
    assert_ax_err(parse(&c, "network-latency-ms = 0\n", err), AX_EINVAL);
    assert_ax_err(coord_config_parse_text(&c, "a\0b = 1\n", 8, err), AX_EINVAL);
    /* IPv6 literals in brackets are addresses too. */
    assert_ax_err(parse(&c, "address = [::1]:9001\n", err), 0);
    assert_ax_err(parse(&c, "address = ::1:9001\n", err), AX_EINVAL);
}

/* Limits: lines, files and the join list have named maxima. */
static void config__limits_are_enforced(void **state)
{
    (void)state;
    coord_config_t c;
    char err[AX_ERRMSG_LEN] = "";
    coord_config_default(&c);
    static char big[COORD_CONFIG_MAX_LINE + 32];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_ax_err(parse(&c, big, err), AX_EMSGSIZE);
    static char huge[COORD_CONFIG_MAX_FILE + 2];
    memset(huge, '\n', sizeof huge - 1);
    assert_ax_err(coord_config_parse_text(&c, huge, sizeof huge - 1, err), AX_EMSGSIZE);
    char join[1024] = "join = ";
    for (int i = 0; i <= COORD_CONFIG_MAX_JOIN; i++)
        snprintf(join + strlen(join), sizeof join - strlen(join), "%s127.0.0.1:%d", i ? "," : "",
                 9000 + i);
    assert_ax_err(parse(&c, join, err), AX_ENOSPC);
    char dir[COORD_CONFIG_MAX_PATH + 20];
    memset(dir, 'd', sizeof dir - 1);
    dir[sizeof dir - 1] = '\0';
    assert_ax_err(coord_config_set(&c, "data-dir", dir, err), AX_EMSGSIZE);
}

/* Flags override the file whatever their order, in both --key value and --key=value forms. */
static void config__flags_override_the_file(void **state)
{
    (void)state;
    char path[] = "/tmp/aethex-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "address = 127.0.0.1:7001\ndata-dir = /tmp/from-file\nhttp = 127.0.0.1:0\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    char *argv[] = {"aethex-coordinator",
                    "--address=127.0.0.1:7002",
                    "--config",
                    path,
                    "--join",
                    "127.0.0.1:7001",
                    NULL};
    coord_config_t c;
    char err[AX_ERRMSG_LEN] = "";
    int help = 0;
    coord_config_default(&c);
    assert_ax_err(coord_config_parse_args(&c, 6, argv, &help, err), 0);
    assert_int_equal(help, 0);
    assert_string_equal(c.address, "127.0.0.1:7002");
    assert_string_equal(c.data_dir, "/tmp/from-file");
    assert_string_equal(c.http, "127.0.0.1:0");
    assert_int_equal(c.njoin, 1);
    unlink(path);
}

/* Bad flags, a missing file and contradictory settings are errors with a message. */
static void config__bad_flags_are_refused(void **state)
{
    (void)state;
    coord_config_t c;
    char err[AX_ERRMSG_LEN] = "";
    int help = 0;
    coord_config_default(&c);
    char *a1[] = {"x", "--bogus", "1", NULL};
    assert_ax_err(coord_config_parse_args(&c, 3, a1, &help, err), AX_EINVAL);
    assert_non_null(strstr(err, "--bogus"));
    char *a2[] = {"x", "--address", NULL};
    assert_ax_err(coord_config_parse_args(&c, 2, a2, &help, err), AX_EINVAL);
    char *a3[] = {"x", "--config", "/nonexistent/aethex.conf", NULL};
    assert_ax_err(coord_config_parse_args(&c, 3, a3, &help, err), AX_ENOENT);
    char *a4[] = {"x", "positional", NULL};
    assert_ax_err(coord_config_parse_args(&c, 2, a4, &help, err), AX_EINVAL);
    char *a5[] = {"x", "--node-id", "1", "--join", "127.0.0.1:9", NULL};
    assert_ax_err(coord_config_parse_args(&c, 5, a5, &help, err), AX_EINVAL);
    assert_non_null(strstr(err, "bootstrap"));
    coord_config_default(&c);
    char *a6[] = {"x", "--help", NULL};
    assert_ax_err(coord_config_parse_args(&c, 2, a6, &help, err), 0);
    assert_int_equal(help, 1);
    assert_non_null(strstr(coord_config_usage(), "--join"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config__defaults_are_a_loopback_single_node),
        cmocka_unit_test(config__file_sets_keys),
        cmocka_unit_test(config__bad_lines_name_their_line),
        cmocka_unit_test(config__limits_are_enforced),
        cmocka_unit_test(config__flags_override_the_file),
        cmocka_unit_test(config__bad_flags_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

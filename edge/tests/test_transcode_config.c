/* edge.transcode_config: the transcoding settings (--transcode, --ladder, --x264-preset,
 * --max-transcodes) from flags and the config file. */
#include "ax_test.h"

#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "config.h"

static int setup(void **state)
{
    (void)state;
    ax_test_use_cmocka_allocator();
    return 0;
}

/* By default transcoding is on with 720p/480p/360p at 2800/1200/700k, widths from the
 * source's aspect, x264 veryfast, and one transcode per CPU. */
static void ladder__defaults(void **state)
{
    (void)state;
    edge_config_t c;
    edge_config_default(&c);
    assert_true(c.transcode);
    assert_int_equal(c.nladder, 3);
    assert_int_equal(c.ladder[0].width, 0);
    assert_int_equal(c.ladder[0].height, 720);
    assert_int_equal(c.ladder[0].kbps, 2800);
    assert_int_equal(c.ladder[1].height, 480);
    assert_int_equal(c.ladder[1].kbps, 1200);
    assert_int_equal(c.ladder[2].height, 360);
    assert_int_equal(c.ladder[2].kbps, 700);
    assert_string_equal(c.x264_preset, "veryfast");
    assert_int_equal(c.max_transcodes, 0);
}

/* A ladder of explicit WxH@kbps rungs is parsed in order; a missing width means "from the
 * source's aspect". */
static void ladder__parses_rungs(void **state)
{
    (void)state;
    edge_rung_t r[EDGE_LADDER_MAX];
    char err[256] = "";
    assert_int_equal(
        edge_parse_ladder("1280x720@2800,854x480@1200,640x360@700", r, err, sizeof err), 3);
    assert_int_equal(r[0].width, 1280);
    assert_int_equal(r[0].height, 720);
    assert_int_equal(r[0].kbps, 2800);
    assert_int_equal(r[1].width, 854);
    assert_int_equal(r[2].width, 640);
    assert_int_equal(r[2].kbps, 700);
    assert_int_equal(edge_parse_ladder("x480@1200", r, err, sizeof err), 1);
    assert_int_equal(r[0].width, 0);
    assert_int_equal(r[0].height, 480);
}

/* Malformed rungs, out-of-range sizes and rates, a repeated height, too many rungs and an
 * overlong value are refused with a message. */
static void ladder__bad_values_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        ",",
        "1280x720",
        "1280x720@",
        "1280*720@2800",
        "1280x720@2800,",
        "1280x720@2800;854x480@1200",
        "8x720@2800",
        "1280x5000@2800",
        "1280x720@49",
        "1280x720@100001",
        "1280x720@99999999999999999999",
        "-1280x720@2800",
        "1280x720@2800 ",
        "x480@1200,854x480@900",
        "x100@100,x200@100,x300@100,x400@100,x500@100,x600@100,x700@100",
    };
    for (size_t i = 0; i < AX_ARRAY_SIZE(bad); i++) {
        edge_rung_t r[EDGE_LADDER_MAX];
        char err[256] = "";
        assert_ax_err(edge_parse_ladder(bad[i], r, err, sizeof err), AX_EINVAL);
        assert_true(strstr(err, "ladder") != NULL);
    }
    char longv[EDGE_LADDER_TEXT_MAX + 16];
    memset(longv, '1', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    edge_rung_t r[EDGE_LADDER_MAX];
    assert_ax_err(edge_parse_ladder(longv, r, NULL, 0), AX_EINVAL);
}

/* The flags set the fields ("--transcode off" takes its value as the next argument), a bad
 * ladder or preset leaves an error naming the setting, and the config file uses the same
 * names. */
static void ladder__flags_and_file(void **state)
{
    (void)state;
    edge_config_t c;
    edge_config_default(&c);
    char *argv[] = {"edge",      "--transcode",      "off",
                    "--ladder",  "640x360@700",      "--x264-preset",
                    "superfast", "--max-transcodes", "3"};
    char err[256] = "";
    assert_int_equal(edge_config_parse_args(&c, (int)AX_ARRAY_SIZE(argv), argv, err, sizeof err),
                     0);
    assert_false(c.transcode);
    assert_int_equal(c.nladder, 1);
    assert_int_equal(c.ladder[0].width, 640);
    assert_string_equal(c.x264_preset, "superfast");
    assert_int_equal(c.max_transcodes, 3);

    char *bad_preset[] = {"edge", "--x264-preset", "turbo"};
    assert_ax_err(edge_config_parse_args(&c, 3, bad_preset, err, sizeof err), AX_EINVAL);
    assert_true(strstr(err, "x264-preset") != NULL);
    char *bad_ladder[] = {"edge", "--ladder", "720p"};
    assert_ax_err(edge_config_parse_args(&c, 3, bad_ladder, err, sizeof err), AX_EINVAL);
    assert_int_equal(c.nladder, 1); /* unchanged */
    char *on[] = {"edge", "--transcode", "--ladder=x480@1200"};
    assert_int_equal(edge_config_parse_args(&c, 3, on, err, sizeof err), 0);
    assert_true(c.transcode);
    assert_int_equal(c.ladder[0].height, 480);

    char path[] = "/tmp/edge_tc_cfgXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "transcode = on\nladder = 1280x720@2800, 854x480@1200\n"
                       "x264-preset = faster\nmax-transcodes = 2\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    edge_config_default(&c);
    int rc = edge_config_load_file(&c, path, err, sizeof err);
    /* A space after the comma is not part of the syntax: the line is refused, named. */
    assert_ax_err(rc, AX_EINVAL);
    assert_true(strstr(err, ":2:") != NULL);
    fd = open(path, O_WRONLY | O_TRUNC);
    text = "transcode = on\nladder = 1280x720@2800,854x480@1200\nx264-preset = faster\n"
           "max-transcodes = 2\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(edge_config_load_file(&c, path, err, sizeof err), 0);
    unlink(path);
    assert_true(c.transcode);
    assert_int_equal(c.nladder, 2);
    assert_int_equal(c.ladder[1].width, 854);
    assert_string_equal(c.x264_preset, "faster");
    assert_int_equal(c.max_transcodes, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(ladder__defaults, setup),
        cmocka_unit_test_setup(ladder__parses_rungs, setup),
        cmocka_unit_test_setup(ladder__bad_values_are_refused, setup),
        cmocka_unit_test_setup(ladder__flags_and_file, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

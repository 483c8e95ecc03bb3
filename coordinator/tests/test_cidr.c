/*
 * coordinator.cidr: CIDR parsing and the longest-prefix-match region table (cidr.h).
 */
#include "ax_test.h"

#include <stdio.h>
#include <string.h>

#include "aethex/common/util.h"
#include "aethex/coordinator/cidr.h"

static int parse(const char *s, coord_cidr_t *c, char *err)
{
    return coord_cidr_parse(s, strlen(s), c, err);
}

static const char *canon(const char *s)
{
    static char buf[AX_ERRMSG_LEN];
    coord_cidr_t c;
    char *err = buf;
    if (parse(s, &c, err) != 0)
        return err;
    coord_cidr_format(&c, buf);
    return buf;
}

static const char *lookup(const coord_regions_t *t, const char *addr)
{
    uint8_t fam, a[16];
    assert_ax_err(coord_cidr_parse_addr(addr, strlen(addr), &fam, a), 0);
    return coord_regions_lookup(t, fam, a);
}

/* IPv4 and IPv6 blocks parse to their canonical text; a bare address is one host. */
static void cidr__parses_v4_and_v6(void **state)
{
    (void)state;
    assert_string_equal(canon("10.0.0.0/8"), "10.0.0.0/8");
    assert_string_equal(canon("0.0.0.0/0"), "0.0.0.0/0");
    assert_string_equal(canon("192.168.1.7"), "192.168.1.7/32");
    assert_string_equal(canon("255.255.255.255/32"), "255.255.255.255/32");
    assert_string_equal(canon("2001:DB8::/32"), "2001:db8::/32");
    assert_string_equal(canon("::/0"), "::/0");
    assert_string_equal(canon("2001:db8:0:0:0:0:0:1"), "2001:db8::1/128");
    coord_cidr_t c;
    assert_ax_err(parse("172.16.0.0/12", &c, NULL), 0);
    assert_int_equal(c.family, 4);
    assert_int_equal(c.prefix_len, 12);
}

/* Malformed blocks are refused with a message that says what is wrong. */
static void cidr__refuses_malformed_blocks_clearly(void **state)
{
    (void)state;
    coord_cidr_t c;
    char err[AX_ERRMSG_LEN];
    static const char *const bad[] = {
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0/8",
        "10.0.0.0.0/8",
        "010.0.0.0/8",
        "10.0.0.256/32",
        "10.0.0.0/08",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        " 10.0.0.0/8",
        "10.0.0.0/8 ",
        "2001:db8::/129",
        "2001:db8:::/32",
        "fe80::1%eth0/128",
        "[::1]/128",
        "::ffff:10.0.0.0/104",
        "0x0a.0.0.0/8",
        "1.2.3.4/3x",
        "10.0.0.0//8",
    };
    for (size_t i = 0; i < AX_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        int rv = parse(bad[i], &c, err);
        if (rv != AX_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(strncmp(err, "bad CIDR", 8) == 0);
    }
    assert_ax_err(parse("10.1.0.0/8", &c, err), AX_EINVAL);
    assert_non_null(strstr(err, "did you mean 10.0.0.0/8?"));
    assert_ax_err(parse("2001:db8::1/64", &c, err), AX_EINVAL);
    assert_non_null(strstr(err, "2001:db8::/64"));
    assert_ax_err(parse("10.0.0.0/33", &c, err), AX_EINVAL);
    assert_non_null(strstr(err, "at most /32"));
    char longs[200];
    memset(longs, '1', sizeof longs);
    assert_ax_err(coord_cidr_parse(longs, sizeof longs, &c, err), AX_EINVAL);
    assert_ax_err(coord_cidr_parse("1.2.3.4\0/8", 10, &c, err), AX_EINVAL);
}

/* A block's range is its first and last address, as the regions table stores them. */
static void cidr__range_is_first_and_last_address(void **state)
{
    (void)state;
    coord_cidr_t c;
    uint8_t s[16], e[16];
    assert_ax_err(parse("10.16.0.0/12", &c, NULL), 0);
    assert_int_equal(coord_cidr_range(&c, s, e), 4);
    assert_memory_equal(s, ((uint8_t[]){10, 16, 0, 0}), 4);
    assert_memory_equal(e, ((uint8_t[]){10, 31, 255, 255}), 4);
    assert_ax_err(parse("2001:db8::/33", &c, NULL), 0);
    assert_int_equal(coord_cidr_range(&c, s, e), 16);
    assert_int_equal(e[4], 0x7f);
    assert_int_equal(e[15], 0xff);
    assert_ax_err(parse("0.0.0.0/0", &c, NULL), 0);
    coord_cidr_range(&c, s, e);
    assert_memory_equal(e, ((uint8_t[]){255, 255, 255, 255}), 4);
}

/* The longest matching block wins, per family; no match is NULL. */
static void cidr__longest_prefix_wins(void **state)
{
    (void)state;
    coord_regions_t *t = NULL;
    assert_ax_err(coord_regions_new(&t), 0);
    static const char *const rows[][2] = {
        {"0.0.0.0/0", "default"},   {"10.0.0.0/8", "eu"},      {"10.1.0.0/16", "us"},
        {"10.1.2.0/24", "ap"},      {"10.1.2.3/32", "host"},   {"2001:db8::/32", "eu6"},
        {"2001:db8:1::/48", "us6"}, {"192.168.0.0/16", "lan"},
    };
    for (size_t i = 0; i < AX_ARRAY_SIZE(rows); i++) {
        coord_cidr_t c;
        assert_ax_err(parse(rows[i][0], &c, NULL), 0);
        assert_ax_err(coord_regions_add(t, &c, rows[i][1]), 0);
    }
    coord_regions_seal(t);
    assert_int_equal(coord_regions_count(t), AX_ARRAY_SIZE(rows));
    assert_string_equal(lookup(t, "10.9.9.9"), "eu");
    assert_string_equal(lookup(t, "10.1.9.9"), "us");
    assert_string_equal(lookup(t, "10.1.2.9"), "ap");
    assert_string_equal(lookup(t, "10.1.2.3"), "host");
    assert_string_equal(lookup(t, "8.8.8.8"), "default");
    assert_string_equal(lookup(t, "192.168.200.1"), "lan");
    assert_string_equal(lookup(t, "2001:db8:ffff::1"), "eu6");
    assert_string_equal(lookup(t, "2001:db8:1:2::1"), "us6");
    assert_null(lookup(t, "2001:db9::1"));
    /* An IPv4-mapped IPv6 peer (dual-stack listener) matches the IPv4 blocks. */
    assert_string_equal(lookup(t, "::ffff:10.1.2.3"), "host");
    coord_regions_free(t);
    assert_null(coord_regions_lookup(NULL, 4, (uint8_t[16]){0}));
}

/* The same block twice: the later row wins. Bad region names are refused. */
static void cidr__duplicates_and_bad_names(void **state)
{
    (void)state;
    coord_regions_t *t = NULL;
    assert_ax_err(coord_regions_new(&t), 0);
    coord_cidr_t c;
    assert_ax_err(parse("10.0.0.0/8", &c, NULL), 0);
    assert_ax_err(coord_regions_add(t, &c, "old"), 0);
    assert_ax_err(coord_regions_add(t, &c, "new"), 0);
    assert_ax_err(coord_regions_add(t, &c, ""), AX_EINVAL);
    assert_ax_err(coord_regions_add(t, &c, "a b"), AX_EINVAL);
    assert_ax_err(coord_regions_add(t, &c, "0123456789012345678901234567890123"), AX_EINVAL);
    coord_regions_seal(t);
    assert_int_equal(coord_regions_count(t), 1);
    assert_string_equal(lookup(t, "10.2.3.4"), "new");
    coord_regions_free(t);
}

/* Lookups agree with a brute-force scan over many random blocks and addresses. */
static void cidr__matches_brute_force(void **state)
{
    (void)state;
    coord_regions_t *t = NULL;
    assert_ax_err(coord_regions_new(&t), 0);
    enum { N = 2000 };
    static coord_cidr_t blocks[N];
    static char names[N][12];
    uint64_t x = 88172645463325252ull;
#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    for (int i = 0; i < N; i++) {
        coord_cidr_t *c = &blocks[i];
        memset(c, 0, sizeof *c);
        c->family = (i % 4 == 0) ? 6 : 4;
        size_t nb = c->family == 4 ? 4 : 16;
        /* Few distinct top bits so that blocks nest. */
        uint64_t r = NEXT();
        for (size_t k = 0; k < nb; k++)
            c->addr[k] = (uint8_t)(k == 0 ? (r & 3) : NEXT());
        c->prefix_len = (uint8_t)(NEXT() % (nb * 8 + 1));
        uint8_t s[16], e[16];
        /* Mask through the range helper's first address. */
        coord_cidr_t tmp = *c;
        for (size_t k = 0; k < nb; k++) {
            unsigned bit = (unsigned)k * 8;
            if (bit >= c->prefix_len)
                tmp.addr[k] = 0;
            else if (c->prefix_len - bit < 8)
                tmp.addr[k] &= (uint8_t)(0xff << (8 - (c->prefix_len - bit)));
        }
        *c = tmp;
        coord_cidr_range(c, s, e);
        snprintf(names[i], sizeof names[i], "r%d", i);
        assert_ax_err(coord_regions_add(t, c, names[i]), 0);
    }
    coord_regions_seal(t);
    for (int q = 0; q < 5000; q++) {
        uint8_t fam = (q % 4 == 0) ? 6 : 4, a[16] = {0};
        size_t nb = fam == 4 ? 4 : 16;
        for (size_t k = 0; k < nb; k++)
            a[k] = (uint8_t)(k == 0 ? (NEXT() & 3) : NEXT());
        int best = -1;
        for (int i = 0; i < N; i++)
            if (coord_cidr_contains(&blocks[i], fam, a) &&
                (best < 0 || blocks[i].prefix_len > blocks[best].prefix_len ||
                 (blocks[i].prefix_len == blocks[best].prefix_len)))
                best = i; /* equal blocks: the later one wins */
        const char *got = coord_regions_lookup(t, fam, a);
        if (best < 0)
            assert_null(got);
        else
            assert_string_equal(got, names[best]);
    }
    coord_regions_free(t);
}

/* Building a table fails cleanly with AX_ENOMEM at every allocation. */
static void cidr__table_out_of_memory(void **state)
{
    (void)state;
    coord_regions_t *t = NULL;
    coord_cidr_t c;
    assert_ax_err(parse("10.0.0.0/8", &c, NULL), 0);
    AX_OOM_SWEEP(({
                     int rv = coord_regions_new(&t);
                     for (int i = 0; rv == 0 && i < 40; i++)
                         rv = coord_regions_add(t, &c, "eu");
                     rv;
                 }),
                 (coord_regions_free(t), t = NULL));
}

/* A block built by hand with host bits or stray bytes past its family is stored canonical. */
static void cidr__hand_built_blocks_are_normalised(void **state)
{
    (void)state;
    coord_regions_t *t = NULL;
    assert_ax_err(coord_regions_new(&t), 0);
    coord_cidr_t c;
    memset(&c, 0xab, sizeof c);
    c.family = 4;
    c.prefix_len = 8;
    c.addr[0] = 10;
    assert_ax_err(coord_regions_add(t, &c, "eu"), 0);
    coord_regions_seal(t);
    assert_string_equal(lookup(t, "10.200.1.1"), "eu");
    coord_regions_free(t);
}

int main(void)
{
    ax_test_use_cmocka_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cidr__parses_v4_and_v6),
        cmocka_unit_test(cidr__refuses_malformed_blocks_clearly),
        cmocka_unit_test(cidr__range_is_first_and_last_address),
        cmocka_unit_test(cidr__longest_prefix_wins),
        cmocka_unit_test(cidr__duplicates_and_bad_names),
        cmocka_unit_test(cidr__matches_brute_force),
        cmocka_unit_test(cidr__table_out_of_memory),
        cmocka_unit_test(cidr__hand_built_blocks_are_normalised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * CIDR parsing and the longest-prefix-match region table (cidr.h, docs/routing.md).
 *
 * The table keeps, per family, one array of blocks sorted by (prefix_len descending, network
 * address). A lookup walks the prefix lengths present, longest first, masks the address to
 * that length and binary-searches that run: at most 33 (IPv4) or 129 (IPv6) searches of
 * O(log n), no allocation, no trie to keep balanced, and a refresh is just "build a new table
 * and swap the pointer".
 */
#include "aethex/coordinator/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/util.h"

static int fail(char *errmsg, int rv, const char *fmt, const char *text, size_t len)
{
    if (errmsg) {
        char shown[COORD_CIDR_TEXT_MAX + 1];
        size_t n = len < COORD_CIDR_TEXT_MAX ? len : COORD_CIDR_TEXT_MAX;
        for (size_t i = 0; i < n; i++)
            shown[i] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
        shown[n] = '\0';
        snprintf(errmsg, AX_ERRMSG_LEN, fmt, shown);
    }
    return rv;
}

/* Strict dotted quad: four decimal numbers 0..255, no leading zeros, nothing else. */
static int parse_v4(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.')
                return AX_EINVAL;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return AX_EINVAL;
        out[part] = (uint8_t)v;
    }
    return i == len ? 0 : AX_EINVAL;
}

int coord_cidr_parse_addr(const char *text, size_t len, uint8_t *family, uint8_t addr[16])
{
    if (!text || len == 0 || len >= COORD_CIDR_TEXT_MAX)
        return AX_EINVAL;
    memset(addr, 0, 16);
    if (memchr(text, ':', len) == NULL) {
        if (parse_v4(text, len, addr) != 0)
            return AX_EINVAL;
        *family = 4;
        return 0;
    }
    /* inet_pton wants a NUL-terminated string and accepts nothing but a plain IPv6 address
     * (no zone, no brackets), which is what we want. */
    char buf[COORD_CIDR_TEXT_MAX];
    if (memchr(text, '\0', len))
        return AX_EINVAL;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, addr) != 1)
        return AX_EINVAL;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr, mapped, sizeof mapped) == 0) {
        memmove(addr, addr + 12, 4);
        memset(addr + 4, 0, 12);
        *family = 4;
        return 0;
    }
    *family = 6;
    return 0;
}

static size_t addr_bytes(uint8_t family)
{
    return family == 4 ? 4 : 16;
}

/* Zeroes every bit past `prefix` in `a` (in place). */
static void mask(uint8_t *a, size_t nbytes, unsigned prefix)
{
    for (size_t i = 0; i < nbytes; i++) {
        unsigned bit = (unsigned)i * 8;
        if (bit >= prefix)
            a[i] = 0;
        else if (prefix - bit < 8)
            a[i] &= (uint8_t)(0xff << (8 - (prefix - bit)));
    }
}

int coord_cidr_parse(const char *text, size_t len, coord_cidr_t *out, char *errmsg)
{
    memset(out, 0, sizeof *out);
    if (!text || len == 0)
        return fail(errmsg, AX_EINVAL, "bad CIDR '%s': empty", "", 0);
    if (len >= COORD_CIDR_TEXT_MAX)
        return fail(errmsg, AX_EINVAL, "bad CIDR '%s...': longer than 63 bytes", text, 24);
    const char *slash = memchr(text, '/', len);
    size_t alen = slash ? (size_t)(slash - text) : len;
    uint8_t family;
    /* An IPv4-mapped IPv6 block (::ffff:a.b.c.d/n) is refused rather than silently given an
     * IPv4 meaning: write it as IPv4. */
    if (coord_cidr_parse_addr(text, alen, &family, out->addr) != 0 ||
        (family == 4 && memchr(text, ':', alen)))
        return fail(errmsg, AX_EINVAL, "bad CIDR '%s': expected a.b.c.d/len or an IPv6 address/len",
                    text, len);
    unsigned max = family == 4 ? 32 : 128;
    unsigned prefix = max;
    if (slash) {
        const char *p = slash + 1;
        size_t plen = len - alen - 1;
        if (plen == 0 || plen > 3 || (p[0] == '0' && plen > 1))
            return fail(errmsg, AX_EINVAL, "bad CIDR '%s': the prefix length is not a number", text,
                        len);
        prefix = 0;
        for (size_t i = 0; i < plen; i++) {
            if (p[i] < '0' || p[i] > '9')
                return fail(errmsg, AX_EINVAL, "bad CIDR '%s': the prefix length is not a number",
                            text, len);
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        }
        if (prefix > max)
            return fail(errmsg, AX_EINVAL,
                        family == 4 ? "bad CIDR '%s': an IPv4 prefix is at most /32"
                                    : "bad CIDR '%s': an IPv6 prefix is at most /128",
                        text, len);
    }
    uint8_t masked[16];
    memcpy(masked, out->addr, 16);
    mask(masked, addr_bytes(family), prefix);
    if (memcmp(masked, out->addr, 16) != 0) {
        coord_cidr_t hint = {.family = family, .prefix_len = (uint8_t)prefix};
        memcpy(hint.addr, masked, 16);
        char want[COORD_CIDR_TEXT_MAX];
        coord_cidr_format(&hint, want);
        if (errmsg) {
            char msg[AX_ERRMSG_LEN];
            fail(msg, AX_EINVAL, "%s", text, len);
            snprintf(errmsg, AX_ERRMSG_LEN,
                     "bad CIDR '%.64s': host bits set past /%u (did you "
                     "mean %s?)",
                     msg, prefix, want);
        }
        memset(out, 0, sizeof *out);
        return AX_EINVAL;
    }
    out->family = family;
    out->prefix_len = (uint8_t)prefix;
    return 0;
}

size_t coord_cidr_format(const coord_cidr_t *c, char *buf)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->addr, ip, sizeof ip);
    int n = snprintf(buf, COORD_CIDR_TEXT_MAX, "%s/%u", ip, c->prefix_len);
    return n < 0 ? 0 : (size_t)n;
}

size_t coord_cidr_range(const coord_cidr_t *c, uint8_t start[16], uint8_t end[16])
{
    size_t n = addr_bytes(c->family);
    memcpy(start, c->addr, 16);
    memcpy(end, c->addr, 16);
    for (size_t i = 0; i < n; i++) {
        unsigned bit = (unsigned)i * 8;
        if (bit >= c->prefix_len)
            end[i] = 0xff;
        else if (c->prefix_len - bit < 8)
            end[i] |= (uint8_t)(0xff >> (c->prefix_len - bit));
    }
    return n;
}

bool coord_cidr_contains(const coord_cidr_t *c, uint8_t family, const uint8_t addr[16])
{
    if (family != c->family)
        return false;
    uint8_t a[16];
    memcpy(a, addr, 16);
    mask(a, addr_bytes(family), c->prefix_len);
    return memcmp(a, c->addr, addr_bytes(family)) == 0;
}

/* ---- the table ----------------------------------------------------------------------------- */

struct entry {
    coord_cidr_t cidr;
    uint32_t seq; /* insertion order: the later duplicate wins */
    char region[COORD_REGIONS_NAME_MAX + 1];
};

struct family_table {
    struct entry *v; /* owned; sorted by (prefix_len desc, addr) once sealed */
    size_t n, cap;
    /* The prefix lengths present, longest first, and where each run starts/ends in v. */
    uint8_t lens[129];
    size_t run_start[129], run_end[129];
    unsigned nlens;
};

struct coord_regions {
    struct family_table f4, f6;
    uint32_t seq;
    bool sealed;
};

int coord_regions_new(coord_regions_t **out)
{
    *out = ax_calloc(1, sizeof **out);
    return *out ? 0 : AX_ENOMEM;
}

void coord_regions_free(coord_regions_t *t)
{
    if (!t)
        return;
    ax_free(t->f4.v);
    ax_free(t->f6.v);
    ax_free(t);
}

static bool region_ok(const char *r)
{
    size_t n = r ? strlen(r) : 0;
    if (n == 0 || n > COORD_REGIONS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = r[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

int coord_regions_add(coord_regions_t *t, const coord_cidr_t *c, const char *region)
{
    AX_PRE(!t->sealed);
    AX_PRE(c->family == 4 || c->family == 6);
    AX_PRE(c->prefix_len <= addr_bytes(c->family) * 8);
    if (!region_ok(region))
        return AX_EINVAL;
    if (t->f4.n + t->f6.n >= COORD_REGIONS_MAX)
        return AX_ENOSPC;
    struct family_table *f = c->family == 4 ? &t->f4 : &t->f6;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct entry *v = ax_realloc(f->v, cap * sizeof *v);
        if (!v)
            return AX_ENOMEM;
        f->v = v;
        f->cap = cap;
    }
    struct entry *e = &f->v[f->n++];
    e->cidr = *c;
    /* Lookups compare all 16 bytes: keep the block canonical whoever built it. */
    size_t nb = addr_bytes(c->family);
    memset(e->cidr.addr + nb, 0, 16 - nb);
    mask(e->cidr.addr, nb, c->prefix_len);
    e->seq = t->seq++;
    snprintf(e->region, sizeof e->region, "%s", region);
    return 0;
}

static int cmp_entry(const void *pa, const void *pb)
{
    const struct entry *a = pa, *b = pb;
    if (a->cidr.prefix_len != b->cidr.prefix_len)
        return a->cidr.prefix_len > b->cidr.prefix_len ? -1 : 1;
    int c = memcmp(a->cidr.addr, b->cidr.addr, 16);
    if (c != 0)
        return c;
    return a->seq < b->seq ? -1 : (a->seq > b->seq ? 1 : 0);
}

static void seal_family(struct family_table *f)
{
    if (f->n)
        qsort(f->v, f->n, sizeof *f->v, cmp_entry);
    /* Drop duplicates, keeping the later one (sorted last among its equals). */
    size_t w = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (w > 0 && f->v[w - 1].cidr.prefix_len == f->v[i].cidr.prefix_len &&
            memcmp(f->v[w - 1].cidr.addr, f->v[i].cidr.addr, 16) == 0)
            f->v[w - 1] = f->v[i];
        else
            f->v[w++] = f->v[i];
    }
    f->n = w;
    f->nlens = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->nlens == 0 || f->lens[f->nlens - 1] != f->v[i].cidr.prefix_len) {
            f->lens[f->nlens] = f->v[i].cidr.prefix_len;
            f->run_start[f->nlens] = i;
            f->nlens++;
        }
        f->run_end[f->nlens - 1] = i + 1;
    }
}

void coord_regions_seal(coord_regions_t *t)
{
    seal_family(&t->f4);
    seal_family(&t->f6);
    t->sealed = true;
}

size_t coord_regions_count(const coord_regions_t *t)
{
    return t ? t->f4.n + t->f6.n : 0;
}

const char *coord_regions_lookup(const coord_regions_t *t, uint8_t family, const uint8_t addr[16])
{
    if (!t || (family != 4 && family != 6))
        return NULL;
    AX_PRE(t->sealed);
    const struct family_table *f = family == 4 ? &t->f4 : &t->f6;
    size_t nbytes = addr_bytes(family);
    for (unsigned k = 0; k < f->nlens; k++) {
        uint8_t a[16];
        memcpy(a, addr, 16);
        memset(a + nbytes, 0, 16 - nbytes);
        mask(a, nbytes, f->lens[k]);
        size_t lo = f->run_start[k], hi = f->run_end[k];
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = memcmp(f->v[mid].cidr.addr, a, 16);
            if (c == 0)
                return f->v[mid].region;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    return NULL;
}

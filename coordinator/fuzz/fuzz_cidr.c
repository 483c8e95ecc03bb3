/*
 * Fuzz target for the CIDR parser (cidr.h). Invariants beyond "no crash": on success the
 * block has no host bits set, its canonical text parses back to the same block, the block
 * contains its own first and last address, and lookups in a one-block table find it; on
 * failure the message is a NUL-terminated string.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "aethex/common/util.h"
#include "aethex/coordinator/cidr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    coord_cidr_t c, again;
    char err[AX_ERRMSG_LEN];
    int rv = coord_cidr_parse((const char *)data, size, &c, err);
    if (rv != 0) {
        AX_ASSERT(rv == AX_EINVAL);
        AX_ASSERT(memchr(err, '\0', sizeof err) != NULL);
        return 0;
    }
    AX_ASSERT(c.family == 4 || c.family == 6);
    AX_ASSERT(c.prefix_len <= (c.family == 4 ? 32 : 128));
    char text[COORD_CIDR_TEXT_MAX];
    size_t n = coord_cidr_format(&c, text);
    AX_ASSERT(n > 0 && n < COORD_CIDR_TEXT_MAX);
    AX_ASSERT(coord_cidr_parse(text, n, &again, err) == 0);
    AX_ASSERT(memcmp(&c, &again, sizeof c) == 0);
    uint8_t s[16] = {0}, e[16] = {0};
    coord_cidr_range(&c, s, e);
    AX_ASSERT(memcmp(s, c.addr, 16) == 0);
    AX_ASSERT(coord_cidr_contains(&c, c.family, s) && coord_cidr_contains(&c, c.family, e));
    coord_regions_t *t = NULL;
    if (coord_regions_new(&t) == 0 && coord_regions_add(t, &c, "r") == 0) {
        coord_regions_seal(t);
        const char *got = coord_regions_lookup(t, c.family, e);
        AX_ASSERT(got && strcmp(got, "r") == 0);
    }
    coord_regions_free(t);
    return 0;
}

/*
 * CIDR blocks and the region table: which region a viewer's address belongs to
 * (docs/routing.md). Pure: no sockets, no database. The coordinator loads the `regions` table
 * (docs/schema.md) into a coord_regions_t every few seconds and swaps it in; a lookup is a
 * longest-prefix match over IPv4 or IPv6 blocks.
 */
#ifndef AETHEX_COORDINATOR_CIDR_H
#define AETHEX_COORDINATOR_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/error.h"

#define COORD_CIDR_TEXT_MAX 64    /* longest CIDR text accepted, and buffer for formatting */
#define COORD_REGIONS_MAX 200000  /* blocks in one region table */
#define COORD_REGIONS_NAME_MAX 32 /* longest region name (as COORD_ROUTE_REGION_MAX) */

/* One block: the network address (host bits zero) in network byte order. */
typedef struct coord_cidr {
    uint8_t family;     /* 4 or 6 */
    uint8_t prefix_len; /* 0..32 or 0..128 */
    uint8_t addr[16];   /* the first 4 (IPv4) or 16 (IPv6) bytes are used */
} coord_cidr_t;

/*
 * Parses "a.b.c.d/len" or "v6/len" (`len` bytes of `text`, borrowed, not NUL-terminated).
 * A bare address is a single host (/32 or /128). Strict: dotted-quad IPv4 only (no octal,
 * no leading zeros, no short forms), a decimal prefix with no sign or leading zero, and no
 * host bits set past the prefix ("10.1.0.0/8" is refused: say "10.0.0.0/8"). Returns 0, or
 * AX_EINVAL with a message in `errmsg` (AX_ERRMSG_LEN bytes; may be NULL).
 */
int coord_cidr_parse(const char *text, size_t len, coord_cidr_t *out, char *errmsg);

/* Parses one address (no prefix) into family and addr[]; IPv4-mapped IPv6 (::ffff:a.b.c.d)
 * becomes IPv4, so a dual-stack listener's peers match IPv4 blocks. 0 or AX_EINVAL. */
int coord_cidr_parse_addr(const char *text, size_t len, uint8_t *family, uint8_t addr[16]);

/* Writes the canonical text ("10.0.0.0/8", "2001:db8::/32") into `buf` (COORD_CIDR_TEXT_MAX
 * bytes). Returns its length. */
size_t coord_cidr_format(const coord_cidr_t *c, char *buf);

/* The block's first and last address (4 or 16 bytes, network order) into start/end; returns
 * the number of bytes (4 or 16), as the regions table's range_start/range_end store them. */
size_t coord_cidr_range(const coord_cidr_t *c, uint8_t start[16], uint8_t end[16]);

/* True when `addr` (of `family`) lies inside `c`. */
bool coord_cidr_contains(const coord_cidr_t *c, uint8_t family, const uint8_t addr[16]);

/* ---- the region table ---------------------------------------------------------------------- */

typedef struct coord_regions coord_regions_t;

/* An empty table. Returns 0 or AX_ENOMEM (*out NULL). */
int coord_regions_new(coord_regions_t **out);

/* NULL does nothing. */
void coord_regions_free(coord_regions_t *t);

/*
 * Adds block `c` -> `region` (copied; 1..COORD_REGIONS_NAME_MAX bytes). Before seal only.
 * Returns 0, AX_EINVAL (bad region name), AX_ENOSPC (COORD_REGIONS_MAX), AX_ENOMEM.
 * The same block twice: the later one wins.
 */
int coord_regions_add(coord_regions_t *t, const coord_cidr_t *c, const char *region);

/* Sorts the table for lookups; no add after this. */
void coord_regions_seal(coord_regions_t *t);

/* Blocks in the table. */
size_t coord_regions_count(const coord_regions_t *t);

/* The region of the longest block holding `addr`, or NULL. The string belongs to the table
 * (valid until it is freed). Sealed tables only; NULL table: NULL. */
const char *coord_regions_lookup(const coord_regions_t *t, uint8_t family, const uint8_t addr[16]);

#endif /* AETHEX_COORDINATOR_CIDR_H */

/*
 * Small shared building blocks: byte slices, growable buffers with a hard limit,
 * big/little-endian readers and writers, container_of and our own-bug assertions.
 */
#ifndef AETHEX_COMMON_UTIL_H
#define AETHEX_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Bytes from the wire: never assumed NUL-terminated. Borrowed unless a field says owned. */
typedef struct ax_slice {
    const uint8_t *base;
    size_t len;
} ax_slice_t;

#define AX_SLICE(p, n) ((ax_slice_t){(const uint8_t *)(p), (n)})
#define AX_SLICE_LIT(s) ((ax_slice_t){(const uint8_t *)(s), sizeof(s) - 1})

/* True when `s` holds exactly the bytes of the NUL-terminated `cstr`. */
bool ax_slice_eq_cstr(ax_slice_t s, const char *cstr);

#define AX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define ax_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/*
 * AX_PRE/AX_POST check what *we* promised (never bytes from a peer, file or database).
 * They stay on in every build: a broken invariant is a bug we want to see at once.
 */
#define AX_PRE(cond) AX__ASSERT(cond, "precondition")
#define AX_POST(cond) AX__ASSERT(cond, "postcondition")
#define AX_ASSERT(cond) AX__ASSERT(cond, "assertion")
#define AX__ASSERT(cond, what)                                                              \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, what, #cond);     \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

/*
 * A growable byte buffer that never grows past `limit`. Storage the caller provides:
 * ax_buf_init() / ax_buf_close(). `base` is owned by the buffer.
 */
typedef struct ax_buf {
    uint8_t *base; /* owned */
    size_t len;
    size_t cap;
    size_t limit;
} ax_buf_t;

void ax_buf_init(ax_buf_t *b, size_t limit);
void ax_buf_close(ax_buf_t *b);

/* Makes room for `extra` more bytes. Returns 0, AX_EMSGSIZE past the limit, or AX_ENOMEM. */
int ax_buf_reserve(ax_buf_t *b, size_t extra);

/* Appends `n` bytes (copied). Returns 0, AX_EMSGSIZE or AX_ENOMEM. */
int ax_buf_append(ax_buf_t *b, const void *p, size_t n);

/* Appends one byte / big-endian integers. Same returns as ax_buf_append. */
int ax_buf_put_u8(ax_buf_t *b, uint8_t v);
int ax_buf_put_be16(ax_buf_t *b, uint16_t v);
int ax_buf_put_be24(ax_buf_t *b, uint32_t v);
int ax_buf_put_be32(ax_buf_t *b, uint32_t v);
int ax_buf_put_be64(ax_buf_t *b, uint64_t v);

/* Appends printf-style formatted text (no NUL). Returns 0, AX_EMSGSIZE past the limit,
 * AX_ENOMEM, or AX_EINVAL for a format error. */
int ax_buf_printf(ax_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drops the first `n` bytes (n <= len), keeping the rest. */
void ax_buf_consume(ax_buf_t *b, size_t n);

/* Empties the buffer, keeping its storage. */
static inline void ax_buf_reset(ax_buf_t *b)
{
    b->len = 0;
}

/* Unaligned big/little-endian loads and stores. The caller has checked the length. */
static inline uint16_t ax_rd_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t ax_rd_be24(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}
static inline uint32_t ax_rd_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t ax_rd_be64(const uint8_t *p)
{
    return ((uint64_t)ax_rd_be32(p) << 32) | ax_rd_be32(p + 4);
}
static inline uint32_t ax_rd_le32(const uint8_t *p)
{
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}
static inline uint64_t ax_rd_le64(const uint8_t *p)
{
    return ((uint64_t)ax_rd_le32(p + 4) << 32) | ax_rd_le32(p);
}
static inline void ax_wr_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void ax_wr_be24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}
static inline void ax_wr_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void ax_wr_be64(uint8_t *p, uint64_t v)
{
    ax_wr_be32(p, (uint32_t)(v >> 32));
    ax_wr_be32(p + 4, (uint32_t)v);
}
static inline void ax_wr_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void ax_wr_le64(uint8_t *p, uint64_t v)
{
    ax_wr_le32(p, (uint32_t)v);
    ax_wr_le32(p + 4, (uint32_t)(v >> 32));
}

#endif /* AETHEX_COMMON_UTIL_H */

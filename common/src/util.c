#include "aethex/common/util.h"

#include <stdarg.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"

bool ax_slice_eq_cstr(ax_slice_t s, const char *cstr)
{
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.base, cstr, n) == 0);
}

void ax_buf_init(ax_buf_t *b, size_t limit)
{
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

void ax_buf_close(ax_buf_t *b)
{
    ax_free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

int ax_buf_reserve(ax_buf_t *b, size_t extra)
{
    if (extra > b->limit || b->len > b->limit - extra)
        return AX_EMSGSIZE;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    /* Grow geometrically, but never past the limit: callers trust the limit, not the peer. */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->limit)
        cap = b->limit;
    uint8_t *p = ax_realloc(b->base, cap);
    if (p == NULL)
        return AX_ENOMEM;
    b->base = p;
    b->cap = cap;
    return 0;
}

int ax_buf_append(ax_buf_t *b, const void *p, size_t n)
{
    int rv = ax_buf_reserve(b, n);
    if (rv != 0)
        return rv;
    if (n > 0)
        memcpy(b->base + b->len, p, n);
    b->len += n;
    return 0;
}

int ax_buf_put_u8(ax_buf_t *b, uint8_t v)
{
    return ax_buf_append(b, &v, 1);
}

int ax_buf_put_be16(ax_buf_t *b, uint16_t v)
{
    uint8_t t[2];
    ax_wr_be16(t, v);
    return ax_buf_append(b, t, sizeof t);
}

int ax_buf_put_be24(ax_buf_t *b, uint32_t v)
{
    uint8_t t[3];
    ax_wr_be24(t, v);
    return ax_buf_append(b, t, sizeof t);
}

int ax_buf_put_be32(ax_buf_t *b, uint32_t v)
{
    uint8_t t[4];
    ax_wr_be32(t, v);
    return ax_buf_append(b, t, sizeof t);
}

int ax_buf_put_be64(ax_buf_t *b, uint64_t v)
{
    uint8_t t[8];
    ax_wr_be64(t, v);
    return ax_buf_append(b, t, sizeof t);
}

int ax_buf_printf(ax_buf_t *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return AX_EINVAL;
    }
    /* vsnprintf writes a NUL after the text: reserve it, then leave it out of len. */
    int rv = ax_buf_reserve(b, (size_t)n + 1);
    if (rv == 0) {
        vsnprintf((char *)b->base + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
    return rv;
}

void ax_buf_consume(ax_buf_t *b, size_t n)
{
    AX_PRE(n <= b->len);
    memmove(b->base, b->base + n, b->len - n);
    b->len -= n;
}

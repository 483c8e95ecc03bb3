/*
 * AMF0 decode and encode (Adobe "Action Message Format -- AMF 0", December 2007).
 *
 * Decoding runs in two passes over the input so that the tree lives in one allocation sized
 * from what actually arrived: the first pass validates everything (markers, lengths, depth,
 * value count) and counts values and properties; the second fills the arena. A container's
 * members must be contiguous, so when the second pass meets a container it first re-scans
 * that container alone to learn its direct member count. That costs O(depth * n) for a
 * document of n bytes, with depth capped at MEDIA_AMF0_DEPTH_CEILING; commands are small
 * (max_command_len) so this is cheaper than a second allocation per container.
 */
#include "aethex/media/amf0.h"

#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"

struct cursor {
    const uint8_t *base;
    const uint8_t *p;
    const uint8_t *end;
    uint32_t max_depth;
    uint32_t max_values;
    size_t nvalues;              /* scan: top-level values + strict array items */
    size_t nprops;               /* scan: object / ECMA array properties */
    media_amf0_value_t *vals;    /* fill: next free value slot */
    media_amf0_prop_t *props;    /* fill: next free property slot */
    const uint8_t *err_at;
};

static int fail(struct cursor *c, const uint8_t *at, int err)
{
    c->err_at = at;
    return err;
}

static size_t left(const struct cursor *c)
{
    return (size_t)(c->end - c->p);
}

static int value(struct cursor *c, uint32_t depth, media_amf0_value_t *out);

static int count_node(struct cursor *c, bool prop)
{
    if (prop)
        c->nprops++;
    else
        c->nvalues++;
    if (c->nvalues + c->nprops > c->max_values)
        return fail(c, c->p, AX_ENOSPC);
    return 0;
}

/*
 * The members of an object or ECMA array, up to and including the end marker (00 00 09).
 * A zero-length key followed by anything but 0x09 is a property with an empty name.
 * `props` NULL: scan (count into the cursor). `*n` receives the direct member count.
 */
static int members(struct cursor *c, uint32_t depth, media_amf0_prop_t *props, uint32_t *n)
{
    uint32_t count = 0;
    for (;;) {
        if (left(c) < 2)
            return fail(c, c->p, AX_EBADDATA);
        size_t klen = ax_rd_be16(c->p);
        if (klen == 0 && left(c) >= 3 && c->p[2] == MEDIA_AMF0_OBJECT_END) {
            c->p += 3;
            *n = count;
            return 0;
        }
        const uint8_t *key = c->p + 2;
        if (left(c) - 2 < klen)
            return fail(c, c->p, AX_EBADDATA);
        c->p += 2 + klen;
        if (count == UINT32_MAX)
            return fail(c, c->p, AX_ENOSPC);
        int rv;
        if (props == NULL) {
            if ((rv = count_node(c, true)) != 0)
                return rv;
            rv = value(c, depth + 1, NULL);
        } else {
            props[count].key = AX_SLICE(key, klen);
            rv = value(c, depth + 1, &props[count].value);
        }
        if (rv != 0)
            return rv;
        count++;
    }
}

/* Reserves `n` members for a container in fill mode: re-scans it to count them. */
static int container_count(struct cursor *c, uint32_t depth, bool is_object, uint32_t *n)
{
    struct cursor s = *c;
    s.vals = NULL;
    s.props = NULL;
    s.nvalues = s.nprops = 0;
    s.max_values = UINT32_MAX; /* already checked by the first pass */
    int rv;
    if (is_object) {
        rv = members(&s, depth, NULL, n);
    } else {
        *n = ax_rd_be32(s.p);
        rv = 0;
    }
    if (rv != 0)
        return fail(c, s.err_at, rv);
    return 0;
}

static int value(struct cursor *c, uint32_t depth, media_amf0_value_t *out)
{
    const uint8_t *start = c->p;
    if (depth > c->max_depth)
        return fail(c, start, AX_ETOODEEP);
    if (left(c) < 1)
        return fail(c, start, AX_EBADDATA);
    uint8_t marker = *c->p++;
    media_amf0_value_t v;
    memset(&v, 0, sizeof v);
    v.type = (media_amf0_type_t)marker;
    int rv;
    switch (marker) {
    case MEDIA_AMF0_NUMBER: {
        if (left(c) < 8)
            return fail(c, start, AX_EBADDATA);
        uint64_t bits = ax_rd_be64(c->p);
        memcpy(&v.u.number, &bits, sizeof bits);
        c->p += 8;
        break;
    }
    case MEDIA_AMF0_BOOLEAN:
        if (left(c) < 1)
            return fail(c, start, AX_EBADDATA);
        v.u.boolean = *c->p++ != 0;
        break;
    case MEDIA_AMF0_STRING:
    case MEDIA_AMF0_LONG_STRING: {
        size_t hl = marker == MEDIA_AMF0_STRING ? 2 : 4;
        if (left(c) < hl)
            return fail(c, start, AX_EBADDATA);
        size_t n = hl == 2 ? ax_rd_be16(c->p) : ax_rd_be32(c->p);
        c->p += hl;
        if (left(c) < n)
            return fail(c, start, AX_EBADDATA);
        v.u.string = AX_SLICE(c->p, n);
        c->p += n;
        break;
    }
    case MEDIA_AMF0_NULL:
    case MEDIA_AMF0_UNDEFINED:
        break;
    case MEDIA_AMF0_DATE:
        if (left(c) < 10)
            return fail(c, start, AX_EBADDATA);
        {
            uint64_t bits = ax_rd_be64(c->p);
            memcpy(&v.u.date.ms, &bits, sizeof bits);
            v.u.date.tz = (int16_t)ax_rd_be16(c->p + 8);
        }
        c->p += 10;
        break;
    case MEDIA_AMF0_ECMA_ARRAY:
        if (left(c) < 4)
            return fail(c, start, AX_EBADDATA);
        v.u.object.declared = ax_rd_be32(c->p);
        c->p += 4;
        /* The rest of an ECMA array is an object body. */
        /* fall through */
    case MEDIA_AMF0_OBJECT: {
        uint32_t n = 0;
        if (out == NULL) {
            if ((rv = members(c, depth, NULL, &n)) != 0)
                return rv;
        } else {
            if ((rv = container_count(c, depth, true, &n)) != 0)
                return rv;
            v.u.object.props = n ? c->props : NULL;
            c->props += n;
            if ((rv = members(c, depth, v.u.object.props, &n)) != 0)
                return rv;
        }
        v.u.object.count = n;
        break;
    }
    case MEDIA_AMF0_STRICT_ARRAY: {
        if (left(c) < 4)
            return fail(c, start, AX_EBADDATA);
        uint32_t n = ax_rd_be32(c->p);
        /* Every item takes at least one byte: refuse a count the input cannot hold before
         * trusting it for anything. */
        if (n > left(c) - 4)
            return fail(c, start, AX_EBADDATA);
        if (out != NULL) {
            v.u.array.items = n ? c->vals : NULL;
            c->vals += n;
        }
        c->p += 4;
        for (uint32_t i = 0; i < n; i++) {
            if (out == NULL) {
                if ((rv = count_node(c, false)) != 0)
                    return rv;
                rv = value(c, depth + 1, NULL);
            } else {
                rv = value(c, depth + 1, &v.u.array.items[i]);
            }
            if (rv != 0)
                return rv;
        }
        v.u.array.count = n;
        break;
    }
    case MEDIA_AMF0_OBJECT_END:
        return fail(c, start, AX_EBADDATA);
    default:
        /* 0x04 movieclip, 0x07 reference, 0x0d unsupported, 0x0e recordset, 0x0f XML,
         * 0x10 typed object, 0x11 AVM+: no publisher sends them in the commands we serve. */
        return fail(c, start, marker <= 0x11 ? AX_ENOTSUP : AX_EBADDATA);
    }
    if (out != NULL)
        *out = v;
    return 0;
}

int media_amf0_decode(ax_slice_t in, const media_amf0_limits_t *lim, media_amf0_doc_t *out)
{
    memset(out, 0, sizeof *out);
    if (in.len == 0) /* before any pointer arithmetic: base may be NULL */
        return 0;
    struct cursor c;
    memset(&c, 0, sizeof c);
    c.base = c.p = in.base;
    c.end = in.base + in.len;
    c.max_depth = lim->max_depth < MEDIA_AMF0_DEPTH_CEILING ? lim->max_depth
                                                            : MEDIA_AMF0_DEPTH_CEILING;
    c.max_values = lim->max_values;

    /* Pass 1: validate and count. */
    size_t top = 0;
    while (c.p < c.end) {
        int rv = count_node(&c, false);
        if (rv == 0)
            rv = value(&c, 1, NULL);
        if (rv != 0) {
            out->error_offset = (size_t)(c.err_at - c.base);
            return rv;
        }
        top++;
    }
    size_t nv = c.nvalues, np = c.nprops;

    /* Pass 2: fill one arena. Values first, then properties (alignment of both is that of
     * a double-holding struct, so the split point is aligned). */
    size_t bytes = nv * sizeof(media_amf0_value_t) + np * sizeof(media_amf0_prop_t);
    void *arena = ax_malloc(bytes);
    if (arena == NULL)
        return AX_ENOMEM;
    media_amf0_value_t *vals = arena;
    c.p = in.base;
    c.vals = vals + top;
    c.props = (media_amf0_prop_t *)(vals + nv);
    for (size_t i = 0; i < top; i++) {
        int rv = value(&c, 1, &vals[i]);
        AX_ASSERT(rv == 0); /* pass 1 accepted exactly these bytes */
    }
    AX_POST(c.p == c.end);
    out->values = vals;
    out->count = top;
    out->arena = arena;
    return 0;
}

void media_amf0_doc_free(media_amf0_doc_t *doc)
{
    ax_free(doc->arena);
    doc->arena = NULL;
    doc->values = NULL;
    doc->count = 0;
}

/* ---- encoding ---------------------------------------------------------------------- */

static int put_double(ax_buf_t *out, uint8_t marker, double v, size_t extra)
{
    int rv = ax_buf_reserve(out, 9 + extra);
    if (rv != 0)
        return rv;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    out->base[out->len] = marker;
    ax_wr_be64(out->base + out->len + 1, bits);
    out->len += 9;
    return 0;
}

int media_amf0_put_number(ax_buf_t *out, double v)
{
    return put_double(out, MEDIA_AMF0_NUMBER, v, 0);
}

int media_amf0_put_boolean(ax_buf_t *out, bool v)
{
    uint8_t b[2] = {MEDIA_AMF0_BOOLEAN, v ? 1 : 0};
    return ax_buf_append(out, b, 2);
}

static int put_string_as(ax_buf_t *out, ax_slice_t s, bool long_form)
{
    if (s.len > UINT32_MAX)
        return AX_EINVAL;
    size_t hl = long_form ? 5 : 3;
    int rv = ax_buf_reserve(out, hl + s.len);
    if (rv != 0)
        return rv;
    uint8_t *p = out->base + out->len;
    if (long_form) {
        p[0] = MEDIA_AMF0_LONG_STRING;
        ax_wr_be32(p + 1, (uint32_t)s.len);
    } else {
        p[0] = MEDIA_AMF0_STRING;
        ax_wr_be16(p + 1, (uint16_t)s.len);
    }
    if (s.len > 0)
        memcpy(p + hl, s.base, s.len);
    out->len += hl + s.len;
    return 0;
}

int media_amf0_put_string(ax_buf_t *out, ax_slice_t s)
{
    return put_string_as(out, s, s.len > 0xffff);
}

int media_amf0_put_cstring(ax_buf_t *out, const char *s)
{
    return media_amf0_put_string(out, AX_SLICE(s, strlen(s)));
}

int media_amf0_put_null(ax_buf_t *out)
{
    return ax_buf_put_u8(out, MEDIA_AMF0_NULL);
}

int media_amf0_put_undefined(ax_buf_t *out)
{
    return ax_buf_put_u8(out, MEDIA_AMF0_UNDEFINED);
}

int media_amf0_put_date(ax_buf_t *out, double ms, int16_t tz)
{
    int rv = put_double(out, MEDIA_AMF0_DATE, ms, 2);
    if (rv != 0)
        return rv;
    return ax_buf_put_be16(out, (uint16_t)tz); /* reserved above: cannot fail */
}

int media_amf0_put_object_start(ax_buf_t *out)
{
    return ax_buf_put_u8(out, MEDIA_AMF0_OBJECT);
}

int media_amf0_put_ecma_array_start(ax_buf_t *out, uint32_t declared_count)
{
    uint8_t b[5] = {MEDIA_AMF0_ECMA_ARRAY};
    ax_wr_be32(b + 1, declared_count);
    return ax_buf_append(out, b, sizeof b);
}

int media_amf0_put_key(ax_buf_t *out, ax_slice_t key)
{
    if (key.len > 0xffff)
        return AX_EINVAL;
    int rv = ax_buf_reserve(out, 2 + key.len);
    if (rv != 0)
        return rv;
    ax_wr_be16(out->base + out->len, (uint16_t)key.len);
    if (key.len > 0)
        memcpy(out->base + out->len + 2, key.base, key.len);
    out->len += 2 + key.len;
    return 0;
}

int media_amf0_put_object_end(ax_buf_t *out)
{
    uint8_t b[3] = {0, 0, MEDIA_AMF0_OBJECT_END};
    return ax_buf_append(out, b, sizeof b);
}

int media_amf0_put_strict_array_start(ax_buf_t *out, uint32_t count)
{
    uint8_t b[5] = {MEDIA_AMF0_STRICT_ARRAY};
    ax_wr_be32(b + 1, count);
    return ax_buf_append(out, b, sizeof b);
}

int media_amf0_encode(ax_buf_t *out, const media_amf0_value_t *v)
{
    int rv;
    switch (v->type) {
    case MEDIA_AMF0_NUMBER:
        return media_amf0_put_number(out, v->u.number);
    case MEDIA_AMF0_BOOLEAN:
        return media_amf0_put_boolean(out, v->u.boolean);
    case MEDIA_AMF0_STRING:
    case MEDIA_AMF0_LONG_STRING:
        return put_string_as(out, v->u.string,
                             v->type == MEDIA_AMF0_LONG_STRING || v->u.string.len > 0xffff);
    case MEDIA_AMF0_NULL:
        return media_amf0_put_null(out);
    case MEDIA_AMF0_UNDEFINED:
        return media_amf0_put_undefined(out);
    case MEDIA_AMF0_DATE:
        return media_amf0_put_date(out, v->u.date.ms, v->u.date.tz);
    case MEDIA_AMF0_OBJECT:
    case MEDIA_AMF0_ECMA_ARRAY:
        rv = v->type == MEDIA_AMF0_OBJECT
                 ? media_amf0_put_object_start(out)
                 : media_amf0_put_ecma_array_start(out, v->u.object.declared);
        for (uint32_t i = 0; rv == 0 && i < v->u.object.count; i++) {
            rv = media_amf0_put_key(out, v->u.object.props[i].key);
            if (rv == 0)
                rv = media_amf0_encode(out, &v->u.object.props[i].value);
        }
        return rv != 0 ? rv : media_amf0_put_object_end(out);
    case MEDIA_AMF0_STRICT_ARRAY:
        rv = media_amf0_put_strict_array_start(out, v->u.array.count);
        for (uint32_t i = 0; rv == 0 && i < v->u.array.count; i++)
            rv = media_amf0_encode(out, &v->u.array.items[i]);
        return rv;
    default:
        return AX_EINVAL;
    }
}

/* ---- lookups ------------------------------------------------------------------------ */

const media_amf0_value_t *media_amf0_get(const media_amf0_value_t *obj, const char *key)
{
    if (obj == NULL || (obj->type != MEDIA_AMF0_OBJECT && obj->type != MEDIA_AMF0_ECMA_ARRAY))
        return NULL;
    for (uint32_t i = 0; i < obj->u.object.count; i++) {
        if (ax_slice_eq_cstr(obj->u.object.props[i].key, key))
            return &obj->u.object.props[i].value;
    }
    return NULL;
}

bool media_amf0_as_number(const media_amf0_value_t *v, double *out)
{
    if (v == NULL || v->type != MEDIA_AMF0_NUMBER)
        return false;
    *out = v->u.number;
    return true;
}

bool media_amf0_as_string(const media_amf0_value_t *v, ax_slice_t *out)
{
    if (v == NULL || (v->type != MEDIA_AMF0_STRING && v->type != MEDIA_AMF0_LONG_STRING))
        return false;
    *out = v->u.string;
    return true;
}

const char *media_amf0_type_name(int marker)
{
    static const char *const names[] = {
        "number",    "boolean",   "string",        "object",      "movieclip", "null",
        "undefined", "reference", "ecma array",    "object end",  "strict array",
        "date",      "long string", "unsupported", "recordset",   "xml document",
        "typed object", "avm+",
    };
    if (marker < 0 || (size_t)marker >= AX_ARRAY_SIZE(names))
        return "unknown";
    return names[marker];
}

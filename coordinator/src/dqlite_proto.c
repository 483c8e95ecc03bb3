/*
 * dqlite wire protocol v1: encoders and limit-checked decoders (see dqlite_proto.h and
 * docs/protocol-dqlite.md). Written from the protocol reference (canonical/dqlite-docs,
 * reference/wire-protocol.md) and checked against what libdqlite 1.11 sends.
 *
 * Every decoder works on a bounded cursor and checks each length before reading it: bytes
 * from the server never reach an assert.
 */
#include "dqlite_proto.h"

#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"

/* ---- encoding ------------------------------------------------------------------------- */

static const uint8_t zeros[COORD_DQLITE__WORD];

int coord_dqlite__put_u64(ax_buf_t *b, uint64_t v)
{
    uint8_t t[8];
    ax_wr_le64(t, v);
    return ax_buf_append(b, t, sizeof t);
}

int coord_dqlite__put_u32(ax_buf_t *b, uint32_t v)
{
    uint8_t t[4];
    ax_wr_le32(t, v);
    return ax_buf_append(b, t, sizeof t);
}

int coord_dqlite__put_text(ax_buf_t *b, ax_slice_t s)
{
    if (s.len > 0 && memchr(s.base, '\0', s.len) != NULL)
        return AX_EINVAL;
    size_t padded = coord_dqlite__pad8(s.len + 1);
    int rv = ax_buf_reserve(b, padded);
    if (rv != 0)
        return rv;
    if (s.len > 0)
        memcpy(b->base + b->len, s.base, s.len);
    memset(b->base + b->len + s.len, 0, padded - s.len);
    b->len += padded;
    return 0;
}

int coord_dqlite__encode_handshake(ax_buf_t *b)
{
    return coord_dqlite__put_u64(b, COORD_DQLITE__PROTOCOL_VERSION);
}

int coord_dqlite__msg_begin(ax_buf_t *b, uint8_t type, size_t *off)
{
    uint8_t h[COORD_DQLITE__HEADER_LEN] = {0, 0, 0, 0, type, 0, 0, 0};
    *off = b->len;
    return ax_buf_append(b, h, sizeof h);
}

int coord_dqlite__msg_end(ax_buf_t *b, size_t off)
{
    AX_PRE(off + COORD_DQLITE__HEADER_LEN <= b->len);
    size_t body = b->len - off - COORD_DQLITE__HEADER_LEN;
    size_t pad = coord_dqlite__pad8(body) - body;
    if (pad > 0) {
        int rv = ax_buf_append(b, zeros, pad);
        if (rv != 0)
            return rv;
        body += pad;
    }
    if (body / COORD_DQLITE__WORD > UINT32_MAX)
        return AX_EMSGSIZE;
    ax_wr_le32(b->base + off, (uint32_t)(body / COORD_DQLITE__WORD));
    return 0;
}

/* Params-tuple, schema 0: [count u8][type u8 * n] zero-padded to a word, then the values. */
int coord_dqlite__encode_params(ax_buf_t *b, const coord_dqlite_value_t *v, uint32_t n)
{
    if (n == 0)
        return 0;
    if (n > COORD_DQLITE__MAX_PARAMS || v == NULL)
        return AX_EINVAL;
    size_t start = b->len;
    size_t header = coord_dqlite__pad8(1 + (size_t)n);
    int rv = ax_buf_reserve(b, header);
    if (rv != 0)
        return rv;
    memset(b->base + b->len, 0, header);
    b->base[b->len] = (uint8_t)n;
    for (uint32_t i = 0; i < n; i++)
        b->base[b->len + 1 + i] = (uint8_t)v[i].type;
    b->len += header;
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        switch (v[i].type) {
        case COORD_DQLITE_INTEGER:
            rv = coord_dqlite__put_u64(b, (uint64_t)v[i].i);
            break;
        case COORD_DQLITE_FLOAT: {
            uint64_t bits;
            memcpy(&bits, &v[i].f, sizeof bits);
            rv = coord_dqlite__put_u64(b, bits);
            break;
        }
        case COORD_DQLITE_BOOLEAN:
            rv = coord_dqlite__put_u64(b, v[i].b ? 1 : 0);
            break;
        case COORD_DQLITE_NULL:
            rv = coord_dqlite__put_u64(b, 0);
            break;
        case COORD_DQLITE_TEXT:
        case COORD_DQLITE_ISO8601:
            if (v[i].s.len > 0 && v[i].s.base == NULL)
                rv = AX_EINVAL;
            else
                rv = coord_dqlite__put_text(b, v[i].s);
            break;
        case COORD_DQLITE_BLOB:
            if (v[i].s.len > 0 && v[i].s.base == NULL) {
                rv = AX_EINVAL;
                break;
            }
            rv = coord_dqlite__put_u64(b, v[i].s.len);
            if (rv == 0)
                rv = ax_buf_append(b, v[i].s.base, v[i].s.len);
            if (rv == 0)
                rv = ax_buf_append(b, zeros, coord_dqlite__pad8(v[i].s.len) - v[i].s.len);
            break;
        default:
            /* UNIXTIME is a row type only: libdqlite 1.11 refuses to bind it. */
            rv = AX_EINVAL;
            break;
        }
    }
    if (rv != 0)
        b->len = start;
    return rv;
}

int coord_dqlite__encode_leader(ax_buf_t *b)
{
    size_t off;
    int rv = coord_dqlite__msg_begin(b, COORD_DQLITE__REQ_LEADER, &off);
    if (rv == 0)
        rv = coord_dqlite__put_u64(b, 0);
    return rv == 0 ? coord_dqlite__msg_end(b, off) : rv;
}

int coord_dqlite__encode_open(ax_buf_t *b, ax_slice_t name)
{
    size_t off;
    int rv = coord_dqlite__msg_begin(b, COORD_DQLITE__REQ_OPEN, &off);
    if (rv == 0)
        rv = coord_dqlite__put_text(b, name);
    if (rv == 0)
        rv = coord_dqlite__put_u64(b, 0); /* flags: unused */
    if (rv == 0)
        rv = coord_dqlite__put_text(b, AX_SLICE_LIT("")); /* vfs: unused */
    return rv == 0 ? coord_dqlite__msg_end(b, off) : rv;
}

int coord_dqlite__encode_prepare(ax_buf_t *b, uint64_t db, ax_slice_t sql)
{
    size_t off;
    int rv = coord_dqlite__msg_begin(b, COORD_DQLITE__REQ_PREPARE, &off);
    if (rv == 0)
        rv = coord_dqlite__put_u64(b, db);
    if (rv == 0)
        rv = coord_dqlite__put_text(b, sql);
    return rv == 0 ? coord_dqlite__msg_end(b, off) : rv;
}

int coord_dqlite__encode_stmt_req(ax_buf_t *b, uint8_t type, uint32_t db, uint32_t stmt,
                                  ax_slice_t params)
{
    AX_PRE(type == COORD_DQLITE__REQ_EXEC || type == COORD_DQLITE__REQ_QUERY);
    size_t off;
    int rv = coord_dqlite__msg_begin(b, type, &off);
    if (rv == 0)
        rv = coord_dqlite__put_u32(b, db);
    if (rv == 0)
        rv = coord_dqlite__put_u32(b, stmt);
    if (rv == 0)
        rv = ax_buf_append(b, params.base, params.len);
    return rv == 0 ? coord_dqlite__msg_end(b, off) : rv;
}

int coord_dqlite__encode_sql_req(ax_buf_t *b, uint8_t type, uint64_t db, ax_slice_t sql,
                                 ax_slice_t params)
{
    AX_PRE(type == COORD_DQLITE__REQ_EXEC_SQL || type == COORD_DQLITE__REQ_QUERY_SQL);
    size_t off;
    int rv = coord_dqlite__msg_begin(b, type, &off);
    if (rv == 0)
        rv = coord_dqlite__put_u64(b, db);
    if (rv == 0)
        rv = coord_dqlite__put_text(b, sql);
    if (rv == 0)
        rv = ax_buf_append(b, params.base, params.len);
    return rv == 0 ? coord_dqlite__msg_end(b, off) : rv;
}

int coord_dqlite__encode_finalize(ax_buf_t *b, uint32_t db, uint32_t stmt)
{
    size_t off;
    int rv = coord_dqlite__msg_begin(b, COORD_DQLITE__REQ_FINALIZE, &off);
    if (rv == 0)
        rv = coord_dqlite__put_u32(b, db);
    if (rv == 0)
        rv = coord_dqlite__put_u32(b, stmt);
    return rv == 0 ? coord_dqlite__msg_end(b, off) : rv;
}

int coord_dqlite__encode_add(ax_buf_t *b, uint64_t id, ax_slice_t address)
{
    size_t off;
    int rv = coord_dqlite__msg_begin(b, COORD_DQLITE__REQ_ADD, &off);
    if (rv == 0)
        rv = coord_dqlite__put_u64(b, id);
    if (rv == 0)
        rv = coord_dqlite__put_text(b, address);
    return rv == 0 ? coord_dqlite__msg_end(b, off) : rv;
}

int coord_dqlite__encode_assign(ax_buf_t *b, uint64_t id, uint64_t role)
{
    size_t off;
    int rv = coord_dqlite__msg_begin(b, COORD_DQLITE__REQ_ASSIGN, &off);
    if (rv == 0)
        rv = coord_dqlite__put_u64(b, id);
    if (rv == 0)
        rv = coord_dqlite__put_u64(b, role);
    return rv == 0 ? coord_dqlite__msg_end(b, off) : rv;
}

int coord_dqlite__encode_remove(ax_buf_t *b, uint64_t id)
{
    size_t off;
    int rv = coord_dqlite__msg_begin(b, COORD_DQLITE__REQ_REMOVE, &off);
    if (rv == 0)
        rv = coord_dqlite__put_u64(b, id);
    return rv == 0 ? coord_dqlite__msg_end(b, off) : rv;
}

int coord_dqlite__encode_cluster(ax_buf_t *b)
{
    size_t off;
    int rv = coord_dqlite__msg_begin(b, COORD_DQLITE__REQ_CLUSTER, &off);
    if (rv == 0)
        rv = coord_dqlite__put_u64(b, 1); /* format 1: id, address and role */
    return rv == 0 ? coord_dqlite__msg_end(b, off) : rv;
}

/* ---- decoding ------------------------------------------------------------------------- */

long coord_dqlite__msg_parse(const uint8_t *p, size_t n, uint32_t max_body,
                             struct coord_dqlite__msg *out)
{
    if (n < COORD_DQLITE__HEADER_LEN)
        return 0;
    uint64_t body = (uint64_t)ax_rd_le32(p) * COORD_DQLITE__WORD;
    /* The declared size is checked against the limit before anything is trusted or kept. */
    if (body > max_body)
        return AX_EMSGSIZE;
    if (n - COORD_DQLITE__HEADER_LEN < body)
        return 0;
    out->type = p[4];
    out->schema = p[5];
    out->body = AX_SLICE(p + COORD_DQLITE__HEADER_LEN, (size_t)body);
    return (long)(COORD_DQLITE__HEADER_LEN + body);
}

struct cursor {
    const uint8_t *p;
    size_t n;
};

static int get_u64(struct cursor *c, uint64_t *v)
{
    if (c->n < 8)
        return AX_EPROTO;
    *v = ax_rd_le64(c->p);
    c->p += 8;
    c->n -= 8;
    return 0;
}

static int get_u32(struct cursor *c, uint32_t *v)
{
    if (c->n < 4)
        return AX_EPROTO;
    *v = ax_rd_le32(c->p);
    c->p += 4;
    c->n -= 4;
    return 0;
}

/* Text: the NUL must lie inside the cursor, and the padded length too. */
static int get_text(struct cursor *c, ax_slice_t *s)
{
    const uint8_t *nul = c->n > 0 ? memchr(c->p, '\0', c->n) : NULL;
    if (nul == NULL)
        return AX_EPROTO;
    size_t len = (size_t)(nul - c->p);
    size_t padded = coord_dqlite__pad8(len + 1);
    if (padded > c->n)
        return AX_EPROTO;
    *s = AX_SLICE(c->p, len);
    c->p += padded;
    c->n -= padded;
    return 0;
}

static int get_blob(struct cursor *c, ax_slice_t *s)
{
    uint64_t len;
    int rv = get_u64(c, &len);
    if (rv != 0)
        return rv;
    /* Compare before padding: a length near 2^64 must not wrap around. */
    if (len > c->n)
        return AX_EPROTO;
    size_t padded = coord_dqlite__pad8((size_t)len);
    if (padded > c->n)
        return AX_EPROTO;
    *s = AX_SLICE(c->p, (size_t)len);
    c->p += padded;
    c->n -= padded;
    return 0;
}

static struct cursor cursor_of(ax_slice_t body)
{
    return (struct cursor){body.base, body.len};
}

/* Every fixed-shape body must be used up exactly: trailing bytes mean we misread it. */
static int expect_end(const struct cursor *c)
{
    return c->n == 0 ? 0 : AX_EPROTO;
}

int coord_dqlite__decode_failure(ax_slice_t body, uint64_t *code, ax_slice_t *message)
{
    struct cursor c = cursor_of(body);
    int rv = get_u64(&c, code);
    if (rv == 0)
        rv = get_text(&c, message);
    return rv == 0 ? expect_end(&c) : rv;
}

int coord_dqlite__decode_server(ax_slice_t body, uint64_t *id, ax_slice_t *address)
{
    struct cursor c = cursor_of(body);
    int rv = get_u64(&c, id);
    if (rv == 0)
        rv = get_text(&c, address);
    return rv == 0 ? expect_end(&c) : rv;
}

int coord_dqlite__decode_db(ax_slice_t body, uint32_t *id)
{
    struct cursor c = cursor_of(body);
    uint32_t unused;
    int rv = get_u32(&c, id);
    if (rv == 0)
        rv = get_u32(&c, &unused);
    return rv == 0 ? expect_end(&c) : rv;
}

int coord_dqlite__decode_stmt(ax_slice_t body, uint32_t *db, uint32_t *id, uint64_t *nparams)
{
    struct cursor c = cursor_of(body);
    int rv = get_u32(&c, db);
    if (rv == 0)
        rv = get_u32(&c, id);
    if (rv == 0)
        rv = get_u64(&c, nparams);
    return rv == 0 ? expect_end(&c) : rv;
}

int coord_dqlite__decode_result(ax_slice_t body, coord_dqlite_result_t *out)
{
    struct cursor c = cursor_of(body);
    int rv = get_u64(&c, &out->last_insert_id);
    if (rv == 0)
        rv = get_u64(&c, &out->rows_affected);
    return rv == 0 ? expect_end(&c) : rv;
}

int coord_dqlite__decode_empty(ax_slice_t body)
{
    struct cursor c = cursor_of(body);
    uint64_t unused;
    int rv = get_u64(&c, &unused);
    return rv == 0 ? expect_end(&c) : rv;
}

int coord_dqlite__decode_servers(ax_slice_t body, uint32_t max_nodes, coord_dqlite_node_t **nodes,
                                 uint32_t *n)
{
    struct cursor c = cursor_of(body);
    uint64_t count;
    *nodes = NULL;
    *n = 0;
    int rv = get_u64(&c, &count);
    if (rv != 0)
        return rv;
    if (count > max_nodes)
        return AX_EMSGSIZE;
    /* Each entry takes at least 3 words: do not allocate for entries that cannot be there. */
    if (count > c.n / 24)
        return AX_EPROTO;
    if (count == 0)
        return expect_end(&c);
    coord_dqlite_node_t *out = ax_calloc((size_t)count, sizeof *out);
    if (out == NULL)
        return AX_ENOMEM;
    for (uint64_t i = 0; i < count; i++) {
        ax_slice_t addr;
        uint64_t role;
        rv = get_u64(&c, &out[i].id);
        if (rv == 0)
            rv = get_text(&c, &addr);
        if (rv == 0)
            rv = get_u64(&c, &role);
        if (rv == 0 && addr.len > COORD_DQLITE_ADDRESS_MAX)
            rv = AX_EMSGSIZE;
        if (rv == 0 && role > COORD_DQLITE_SPARE)
            rv = AX_EPROTO;
        if (rv != 0) {
            ax_free(out);
            return rv;
        }
        memcpy(out[i].address, addr.base, addr.len);
        out[i].address[addr.len] = '\0';
        out[i].role = (coord_dqlite_role_t)role;
    }
    rv = expect_end(&c);
    if (rv != 0) {
        ax_free(out);
        return rv;
    }
    *nodes = out;
    *n = (uint32_t)count;
    return 0;
}

/* ---- rows ----------------------------------------------------------------------------- */

struct coord_dqlite__rows_block {
    struct coord_dqlite__rows_block *next;
    size_t len;
    uint8_t data[]; /* a copy of one ROWS body; values and names point in here */
};

void coord_dqlite__rows_init(struct coord_dqlite__rows *r, uint32_t max_rows, uint64_t max_bytes,
                             uint32_t max_columns)
{
    memset(r, 0, sizeof *r);
    r->max_rows = max_rows;
    r->max_bytes = max_bytes;
    r->max_columns = max_columns;
}

static void rows_drop_kept(struct coord_dqlite__rows *r, bool keep_names)
{
    struct coord_dqlite__rows_block *b = r->blocks;
    /* Names live in the first block: keep that one while names are in use. */
    if (keep_names && b != NULL) {
        struct coord_dqlite__rows_block *first = b;
        while (first->next != NULL)
            first = first->next;
        while (b != first) {
            struct coord_dqlite__rows_block *next = b->next;
            ax_free(b);
            b = next;
        }
        r->blocks = first;
    } else {
        while (b != NULL) {
            struct coord_dqlite__rows_block *next = b->next;
            ax_free(b);
            b = next;
        }
        r->blocks = NULL;
    }
    ax_free(r->values);
    r->values = NULL;
    r->values_cap = 0;
    r->pub.values = NULL;
    r->pub.nrows = 0;
}

void coord_dqlite__rows_close(struct coord_dqlite__rows *r)
{
    rows_drop_kept(r, false);
    ax_free(r->names);
    r->names = NULL;
    r->pub.names = NULL;
}

static int value_type_ok(unsigned t)
{
    switch (t) {
    case COORD_DQLITE_INTEGER:
    case COORD_DQLITE_FLOAT:
    case COORD_DQLITE_TEXT:
    case COORD_DQLITE_BLOB:
    case COORD_DQLITE_NULL:
    case COORD_DQLITE_UNIXTIME:
    case COORD_DQLITE_ISO8601:
    case COORD_DQLITE_BOOLEAN:
        return 1;
    default:
        return 0;
    }
}

static int decode_value(struct cursor *c, unsigned type, coord_dqlite_value_t *v)
{
    uint64_t w;
    int rv;
    v->type = (coord_dqlite_type_t)type;
    switch (type) {
    case COORD_DQLITE_INTEGER:
    case COORD_DQLITE_UNIXTIME:
        rv = get_u64(c, &w);
        v->i = (int64_t)w;
        return rv;
    case COORD_DQLITE_FLOAT:
        rv = get_u64(c, &w);
        memcpy(&v->f, &w, sizeof v->f);
        return rv;
    case COORD_DQLITE_BOOLEAN:
        rv = get_u64(c, &w);
        v->b = w != 0;
        return rv;
    case COORD_DQLITE_NULL:
        return get_u64(c, &w);
    case COORD_DQLITE_TEXT:
    case COORD_DQLITE_ISO8601:
        return get_text(c, &v->s);
    case COORD_DQLITE_BLOB:
        return get_blob(c, &v->s);
    default:
        return AX_EPROTO;
    }
}

static int rows_grow(struct coord_dqlite__rows *r, size_t need)
{
    if (need <= r->values_cap)
        return 0;
    size_t cap = r->values_cap ? r->values_cap : 64;
    while (cap < need)
        cap *= 2;
    coord_dqlite_value_t *v = ax_realloc(r->values, cap * sizeof *v);
    if (v == NULL)
        return AX_ENOMEM;
    r->values = v;
    r->values_cap = cap;
    r->pub.values = v;
    return 0;
}

int coord_dqlite__rows_feed(struct coord_dqlite__rows *r, ax_slice_t body)
{
    if (r->done)
        return AX_EPROTO;

    /* Decode into a private copy first, so values can point at it once it is kept. When
     * overflowing, the body is only checked (it points into the caller's buffer). */
    struct coord_dqlite__rows_block *blk = NULL;
    const uint8_t *base = body.base;
    if (!r->overflow) {
        blk = ax_malloc(sizeof *blk + body.len);
        if (blk == NULL)
            return AX_ENOMEM;
        blk->next = NULL;
        blk->len = body.len;
        if (body.len > 0)
            memcpy(blk->data, body.base, body.len);
        base = blk->data;
    }
    struct cursor c = {base, body.len};
    int rv;
    uint64_t ncols;
    const char **names = NULL;
    uint32_t start_rows = r->pub.nrows;

    rv = get_u64(&c, &ncols);
    if (rv != 0)
        goto fail;
    if (ncols == 0 || ncols > r->max_columns || (r->batches > 0 && ncols != r->pub.ncols)) {
        rv = AX_EPROTO;
        goto fail;
    }
    /* Every batch repeats the column names; the first batch's are kept. */
    bool first = r->batches == 0;
    if (first) {
        names = ax_calloc((size_t)ncols, sizeof *names);
        if (names == NULL) {
            rv = AX_ENOMEM;
            goto fail;
        }
    }
    for (uint64_t i = 0; i < ncols; i++) {
        ax_slice_t name;
        rv = get_text(&c, &name);
        if (rv != 0)
            goto fail;
        if (first)
            names[i] = (const char *)name.base;
    }

    size_t header = coord_dqlite__pad8(((size_t)ncols + 1) / 2);
    for (;;) {
        if (c.n < 8) {
            rv = AX_EPROTO;
            goto fail;
        }
        uint64_t word = ax_rd_le64(c.p);
        if (word == COORD_DQLITE__ROWS_DONE || word == COORD_DQLITE__ROWS_PART) {
            c.p += 8;
            c.n -= 8;
            if (c.n != 0) {
                rv = AX_EPROTO;
                goto fail;
            }
            r->done = word == COORD_DQLITE__ROWS_DONE;
            break;
        }
        if (c.n < header) {
            rv = AX_EPROTO;
            goto fail;
        }
        const uint8_t *types = c.p;
        c.p += header;
        c.n -= header;
        coord_dqlite_value_t *row = NULL;
        if (!r->overflow) {
            if ((uint64_t)r->pub.nrows + 1 > r->max_rows) {
                r->overflow = true;
            } else {
                rv = rows_grow(r, ((size_t)r->pub.nrows + 1) * (size_t)ncols);
                if (rv != 0)
                    goto fail;
                row = &r->values[(size_t)r->pub.nrows * (size_t)ncols];
            }
        }
        for (uint64_t i = 0; i < ncols; i++) {
            unsigned t = (i % 2 == 0) ? (types[i / 2] & 0x0f) : (types[i / 2] >> 4);
            coord_dqlite_value_t v;
            if (!value_type_ok(t)) {
                rv = AX_EPROTO;
                goto fail;
            }
            rv = decode_value(&c, t, &v);
            if (rv != 0)
                goto fail;
            if (row != NULL)
                row[i] = v;
        }
        if (row != NULL)
            r->pub.nrows++;
    }

    if (!r->overflow) {
        uint64_t added =
            body.len + sizeof *blk +
            (uint64_t)(r->pub.nrows - start_rows) * ncols * sizeof(coord_dqlite_value_t) +
            (first ? ncols * sizeof(char *) : 0);
        r->bytes += added;
        if (r->bytes > r->max_bytes)
            r->overflow = true;
    }
    if (first) {
        r->pub.ncols = (uint32_t)ncols;
        if (!r->overflow) {
            r->names = names;
            r->pub.names = names;
            names = NULL;
        }
    }
    r->batches++;
    if (r->overflow) {
        /* Past a limit: drop everything kept; the caller reports AX_EMSGSIZE once done. */
        ax_free(blk);
        ax_free(names);
        rows_drop_kept(r, false);
        ax_free(r->names);
        r->names = NULL;
        r->pub.names = NULL;
        return 0;
    }
    /* Newest block first; the names' block (the first) stays last in the list. */
    blk->next = r->blocks;
    r->blocks = blk;
    return 0;

fail:
    /* Rows appended from this batch point into `blk`: forget them before freeing it. */
    if (r->pub.nrows > start_rows)
        r->pub.nrows = start_rows;
    ax_free(names);
    ax_free(blk);
    return rv;
}

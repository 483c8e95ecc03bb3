/*
 * The RTMP chunk stream (RTMP spec 5.3): reassembling messages from interleaved chunks, and
 * writing our own messages as chunks.
 *
 * A chunk is a basic header (fmt + chunk stream id, 1-3 bytes), a message header whose size
 * depends on fmt (type 0: 11 bytes, 1: 7, 2: 3, 3: 0), an optional 4-byte extended
 * timestamp, then up to chunk_size payload bytes. Each chunk stream remembers the last
 * header, which types 1-3 reuse:
 *
 *   fmt  carries                                   timestamp of a new message
 *   0    timestamp, length, type, stream id        the absolute timestamp
 *   1    delta, length, type                       previous + delta
 *   2    delta                                     previous + delta
 *   3    nothing (continuation or repeat)          previous + the last delta (5.3.1.2.4:
 *                                                  after a type 0, its timestamp)
 *
 * Extended timestamps: a 24-bit field of 0xFFFFFF means a 32-bit value follows. A type-3
 * chunk on a chunk stream whose last type 0/1/2 header had one also carries the 4 bytes;
 * that is what ffmpeg and librtmp write (and read) for continuation chunks, and for a
 * type-3 header that starts a new message ffmpeg puts the new delta there, so we take the
 * delta from those bytes rather than assuming it repeats.
 *
 * Memory: a chunk stream's payload buffer grows as bytes arrive, never past the length its
 * header declared, which was checked against max_message_len (and max_command_len for
 * command/data types) before anything was allocated. Bytes held in unfinished messages
 * across all chunk streams are bounded by max_incomplete_bytes, and a finished message's
 * buffer is released if it grew past RETAIN_LIMIT, so an idle session holds little.
 */
#include <stdio.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "rtmp_internal.h"

#define RETAIN_LIMIT (64 * 1024)

static const uint8_t msg_header_size[4] = {11, 7, 3, 0};

void media_rtmp__chunk_reader_init(struct media_rtmp__chunk_reader *r,
                                   const struct media_rtmp__chunk_limits *limits)
{
    memset(r, 0, sizeof *r);
    r->limits = *limits;
    r->chunk_size = MEDIA_RTMP__DEFAULT_CHUNK_SIZE;
    r->phase = MEDIA_RTMP__RD_HEADER;
}

void media_rtmp__chunk_reader_close(struct media_rtmp__chunk_reader *r)
{
    for (uint32_t i = 0; i < r->nstreams; i++) {
        ax_buf_close(&r->streams[i]->payload);
        ax_free(r->streams[i]);
    }
    ax_free(r->streams);
    r->streams = NULL;
    r->nstreams = r->cap_streams = 0;
}

void media_rtmp__chunk_set_size(struct media_rtmp__chunk_reader *r, uint32_t size)
{
    AX_PRE(size >= 1 && size <= 0x7fffffff);
    r->chunk_size = size;
}

static struct chunk_stream *find_stream(const struct media_rtmp__chunk_reader *r, uint32_t csid)
{
    for (uint32_t i = 0; i < r->nstreams; i++) {
        if (r->streams[i]->csid == csid)
            return r->streams[i];
    }
    return NULL;
}

void media_rtmp__chunk_abort(struct media_rtmp__chunk_reader *r, uint32_t csid)
{
    struct chunk_stream *cs = find_stream(r, csid);
    if (cs == NULL || !cs->in_progress)
        return;
    r->incomplete_bytes -= cs->payload.len;
    ax_buf_reset(&cs->payload);
    cs->in_progress = false;
}

static int add_stream(struct media_rtmp__chunk_reader *r, uint32_t csid,
                      struct chunk_stream **out, char *errmsg)
{
    if (r->nstreams >= r->limits.max_chunk_streams) {
        snprintf(errmsg, AX_ERRMSG_LEN,
                 "chunk stream %u would be one more than max_chunk_streams %u", csid,
                 r->limits.max_chunk_streams);
        return AX_ENOSPC;
    }
    if (r->nstreams == r->cap_streams) {
        uint32_t cap = r->cap_streams ? r->cap_streams * 2 : 4;
        struct chunk_stream **p = ax_realloc(r->streams, cap * sizeof *p);
        if (p == NULL)
            goto nomem;
        r->streams = p;
        r->cap_streams = cap;
    }
    struct chunk_stream *cs = ax_calloc(1, sizeof *cs);
    if (cs == NULL)
        goto nomem;
    cs->csid = csid;
    ax_buf_init(&cs->payload, 0);
    r->streams[r->nstreams++] = cs;
    *out = cs;
    return 0;
nomem:
    snprintf(errmsg, AX_ERRMSG_LEN, "chunk stream %u: out of memory", csid);
    return AX_ENOMEM;
}

static void basic_header(const uint8_t *h, size_t *blen, uint32_t *csid)
{
    uint32_t low = h[0] & 0x3f;
    *blen = low == 0 ? 2 : low == 1 ? 3 : 1;
    if (low == 0)
        *csid = 64u + h[1];
    else if (low == 1)
        *csid = 64u + h[1] + ((uint32_t)h[2] << 8);
    else
        *csid = low;
}

/*
 * How many header bytes the chunk being read needs, given what has arrived. Resolves the
 * chunk stream as soon as the basic header is complete, so that a type-3 header knows
 * whether an extended timestamp follows and a broken sequence fails early.
 */
static int header_need(struct media_rtmp__chunk_reader *r, size_t *need, char *errmsg)
{
    if (r->hdr_have < 1) {
        *need = 1;
        return 0;
    }
    unsigned fmt = r->hdr[0] >> 6;
    size_t blen;
    uint32_t csid = 0;
    size_t probe = (r->hdr[0] & 0x3f) == 0 ? 2 : (r->hdr[0] & 0x3f) == 1 ? 3 : 1;
    if (r->hdr_have < probe) {
        *need = probe;
        return 0;
    }
    basic_header(r->hdr, &blen, &csid);
    if (!r->cs_resolved) {
        struct chunk_stream *cs = find_stream(r, csid);
        if (cs == NULL && fmt != 0) {
            snprintf(errmsg, AX_ERRMSG_LEN,
                     "chunk type %u on chunk stream %u, which has no previous message header",
                     fmt, csid);
            return AX_EPROTO;
        }
        if (cs != NULL && fmt != 3 && cs->in_progress) {
            snprintf(errmsg, AX_ERRMSG_LEN,
                     "chunk type %u on chunk stream %u while its %u-byte message is unfinished "
                     "(%zu bytes read)",
                     fmt, csid, cs->length, cs->payload.len);
            return AX_EPROTO;
        }
        if (cs == NULL) {
            int rv = add_stream(r, csid, &cs, errmsg);
            if (rv != 0)
                return rv;
        }
        r->cur = cs;
        r->cs_resolved = true;
    }
    size_t base = blen + msg_header_size[fmt];
    if (r->hdr_have < base) {
        *need = base;
        return 0;
    }
    bool ext = fmt < 3 ? ax_rd_be24(r->hdr + blen) == 0xffffff : r->cur->ext;
    *need = base + (ext ? 4 : 0);
    return 0;
}

static void deliver(struct media_rtmp__chunk_reader *r, struct chunk_stream *cs,
                    struct media_rtmp__message *msg, bool *have_msg)
{
    static const uint8_t empty[1];
    r->incomplete_bytes -= cs->payload.len;
    cs->in_progress = false;
    msg->csid = cs->csid;
    msg->timestamp = cs->timestamp;
    msg->length = cs->length;
    msg->type = cs->type;
    msg->stream_id = cs->stream_id;
    msg->payload = cs->payload.base != NULL ? cs->payload.base : empty;
    *have_msg = true;
    r->delivered = cs;
}

static bool is_command_type(uint8_t type)
{
    return type == MEDIA_RTMP__MSG_DATA_AMF3 || type == MEDIA_RTMP__MSG_COMMAND_AMF3 ||
           type == MEDIA_RTMP__MSG_DATA_AMF0 || type == MEDIA_RTMP__MSG_COMMAND_AMF0;
}

/* The header is complete: update the chunk stream and start (or continue) a message. */
static int apply_header(struct media_rtmp__chunk_reader *r, struct media_rtmp__message *msg,
                        bool *have_msg, char *errmsg)
{
    struct chunk_stream *cs = r->cur;
    const uint8_t *h = r->hdr;
    unsigned fmt = h[0] >> 6;
    size_t blen;
    uint32_t csid;
    basic_header(h, &blen, &csid);
    const uint8_t *m = h + blen;
    bool ext = fmt < 3 ? ax_rd_be24(m) == 0xffffff : cs->ext;
    uint32_t ext_value = ext ? ax_rd_be32(m + msg_header_size[fmt]) : 0;

    bool continuation = fmt == 3 && cs->in_progress;
    if (!continuation) {
        uint32_t t = ext ? ext_value : (fmt < 3 ? ax_rd_be24(m) : cs->delta);
        switch (fmt) {
        case 0:
            cs->timestamp = t;
            cs->delta = t;
            cs->length = ax_rd_be24(m + 3);
            cs->type = m[6];
            cs->stream_id = ax_rd_le32(m + 7); /* the one little-endian field (5.3.1.2.1) */
            break;
        case 1:
            cs->length = ax_rd_be24(m + 3);
            cs->type = m[6];
            /* fall through */
        case 2:
        case 3:
            cs->timestamp += t; /* modulo 2^32, as the wire timestamp wraps */
            cs->delta = t;
            break;
        }
        if (fmt < 3)
            cs->ext = ext;
        if (cs->length > r->limits.max_message_len) {
            snprintf(errmsg, AX_ERRMSG_LEN,
                     "message length %u exceeds max_message_len %u on chunk stream %u",
                     cs->length, r->limits.max_message_len, cs->csid);
            return AX_EMSGSIZE;
        }
        if (is_command_type(cs->type) && cs->length > r->limits.max_command_len) {
            snprintf(errmsg, AX_ERRMSG_LEN,
                     "command/data message (type %u) length %u exceeds max_command_len %u",
                     cs->type, cs->length, r->limits.max_command_len);
            return AX_EMSGSIZE;
        }
        ax_buf_reset(&cs->payload);
        cs->payload.limit = cs->length;
        cs->in_progress = true;
    }
    r->hdr_have = 0;
    r->cs_resolved = false;
    if (cs->length == 0) {
        deliver(r, cs, msg, have_msg);
        return 0;
    }
    uint32_t rest = cs->length - (uint32_t)cs->payload.len;
    r->piece_left = rest < r->chunk_size ? rest : r->chunk_size;
    r->phase = MEDIA_RTMP__RD_PAYLOAD;
    return 0;
}

static int read_header(struct media_rtmp__chunk_reader *r, const uint8_t *buf, size_t len,
                       struct media_rtmp__message *msg, bool *have_msg, char *errmsg)
{
    size_t used = 0;
    for (;;) {
        size_t need;
        int rv = header_need(r, &need, errmsg);
        if (rv != 0)
            return rv;
        if (r->hdr_have == need)
            break;
        if (used == len)
            return (int)used;
        size_t take = need - r->hdr_have;
        if (take > len - used)
            take = len - used;
        memcpy(r->hdr + r->hdr_have, buf + used, take);
        r->hdr_have += take;
        used += take;
    }
    int rv = apply_header(r, msg, have_msg, errmsg);
    if (rv != 0)
        return rv;
    return (int)used;
}

static int read_payload(struct media_rtmp__chunk_reader *r, const uint8_t *buf, size_t len,
                        struct media_rtmp__message *msg, bool *have_msg, char *errmsg)
{
    struct chunk_stream *cs = r->cur;
    size_t take = r->piece_left < len ? r->piece_left : len;
    if (r->incomplete_bytes + take > r->limits.max_incomplete_bytes) {
        snprintf(errmsg, AX_ERRMSG_LEN,
                 "unfinished messages would hold %llu bytes, over max_incomplete_bytes %u",
                 (unsigned long long)(r->incomplete_bytes + take),
                 r->limits.max_incomplete_bytes);
        return AX_ENOSPC;
    }
    int rv = ax_buf_append(&cs->payload, buf, take);
    if (rv != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "chunk stream %u: cannot hold payload: %s", cs->csid,
                 ax_strerror(rv));
        return rv;
    }
    r->incomplete_bytes += take;
    r->piece_left -= (uint32_t)take;
    if (cs->payload.len == cs->length) {
        deliver(r, cs, msg, have_msg);
        r->phase = MEDIA_RTMP__RD_HEADER;
    } else if (r->piece_left == 0) {
        r->phase = MEDIA_RTMP__RD_HEADER;
    }
    return (int)take;
}

int media_rtmp__chunk_read(struct media_rtmp__chunk_reader *r, const uint8_t *buf, size_t len,
                           struct media_rtmp__message *msg, bool *have_msg, char *errmsg)
{
    *have_msg = false;
    if (r->delivered != NULL) {
        /* The caller is done with the last message: keep small buffers for reuse, give
         * big ones back so an idle publisher does not pin its largest keyframe. */
        if (r->delivered->payload.cap > RETAIN_LIMIT)
            ax_buf_close(&r->delivered->payload);
        else
            ax_buf_reset(&r->delivered->payload);
        r->delivered = NULL;
    }
    if (len == 0)
        return 0;
    if (r->phase == MEDIA_RTMP__RD_HEADER)
        return read_header(r, buf, len, msg, have_msg, errmsg);
    return read_payload(r, buf, len, msg, have_msg, errmsg);
}

/* ---- writing ---------------------------------------------------------------------------- */

static size_t put_basic(uint8_t *p, unsigned fmt, uint32_t csid)
{
    if (csid < 64) {
        p[0] = (uint8_t)(fmt << 6 | csid);
        return 1;
    }
    if (csid < 320) {
        p[0] = (uint8_t)(fmt << 6);
        p[1] = (uint8_t)(csid - 64);
        return 2;
    }
    p[0] = (uint8_t)(fmt << 6 | 1);
    p[1] = (uint8_t)((csid - 64) & 0xff);
    p[2] = (uint8_t)((csid - 64) >> 8);
    return 3;
}

int media_rtmp__chunk_write(ax_buf_t *out, uint32_t chunk_size, uint32_t csid,
                            uint32_t timestamp, uint8_t type, uint32_t stream_id,
                            const uint8_t *payload, size_t len)
{
    if (csid < 2 || csid > MEDIA_RTMP__MAX_CSID || len > 0xffffff || chunk_size == 0)
        return AX_EINVAL;
    size_t blen = csid < 64 ? 1 : csid < 320 ? 2 : 3;
    bool ext = timestamp >= 0xffffff;
    size_t nchunks = len == 0 ? 1 : (len + chunk_size - 1) / chunk_size;
    size_t total = blen + 11 + (ext ? 4 : 0) + len + (nchunks - 1) * (blen + (ext ? 4 : 0));
    int rv = ax_buf_reserve(out, total);
    if (rv != 0)
        return rv;
    uint8_t *p = out->base + out->len;
    p += put_basic(p, 0, csid);
    ax_wr_be24(p, ext ? 0xffffff : timestamp);
    ax_wr_be24(p + 3, (uint32_t)len);
    p[6] = type;
    ax_wr_le32(p + 7, stream_id);
    p += 11;
    if (ext) {
        ax_wr_be32(p, timestamp);
        p += 4;
    }
    size_t off = 0;
    for (size_t i = 0; i < nchunks; i++) {
        if (i > 0) {
            p += put_basic(p, 3, csid);
            if (ext) {
                ax_wr_be32(p, timestamp);
                p += 4;
            }
        }
        size_t n = len - off < chunk_size ? len - off : chunk_size;
        if (n > 0)
            memcpy(p, payload + off, n);
        p += n;
        off += n;
    }
    AX_POST((size_t)(p - (out->base + out->len)) == total);
    out->len += total;
    return 0;
}

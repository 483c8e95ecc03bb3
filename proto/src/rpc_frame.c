/*
 * The pure parts of the RPC: frames, the envelope codec, proofs, helpers. No sockets, no
 * clock (STYLE 10), so the fuzzer and the unit tests drive them byte by byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "aethex/common/alloc.h"
#include "aethex/proto/rpc.h"

void proto_rpc_limits_default(proto_rpc_limits_t *l)
{
    l->max_frame = PROTO_RPC_MAX_FRAME_DEFAULT;
    l->max_pending_calls = 1024;
    l->max_connections = 4096;
    l->max_write_queue = 8u * 1024 * 1024;
    l->handshake_timeout_ms = 5000;
}

/* ---- framing ---------------------------------------------------------------------------- */

int proto_rpc_frame_decode(const uint8_t *data, size_t len, uint32_t max_frame, ax_slice_t *body)
{
    if (len < PROTO_RPC_FRAME_HEADER)
        return 0;
    uint32_t n = ax_rd_be32(data);
    /* The limit is checked on the header alone, before a single body byte is buffered
     * (STYLE 8): a peer declaring 4 GiB costs us 4 bytes. */
    if (n > max_frame)
        return AX_EMSGSIZE;
    if (n == 0)
        return AX_EPROTO;
    if (len - PROTO_RPC_FRAME_HEADER < n)
        return 0;
    *body = AX_SLICE(data + PROTO_RPC_FRAME_HEADER, n);
    return (int)(PROTO_RPC_FRAME_HEADER + n);
}

/* ---- envelope: protobuf wire format by hand ---------------------------------------------
 *
 * The envelope is decoded without allocating so that `error` and `payload` are slices of the
 * frame (no copy of a 1 MiB payload) and so that a malformed frame costs nothing. The layout
 * is aethex.Envelope in proto/aethex.proto; protobuf's encoding rules
 * (https://protobuf.dev/programming-guides/encoding/): key = field << 3 | wire type; varints
 * are 7 bits per byte, little-endian, at most 10 bytes; sint32 is zigzag-encoded.
 */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* Reads a varint at p[*off..len). Returns 0 or AX_EPROTO (truncated, or over 10 bytes). */
static int read_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (*off >= len)
            return AX_EPROTO;
        uint8_t b = p[(*off)++];
        /* The 10th byte may only carry the top bit of a 64-bit value. */
        if (i == 9 && b > 1)
            return AX_EPROTO;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *out = v;
            return 0;
        }
    }
    return AX_EPROTO;
}

int proto_rpc_envelope_decode(ax_slice_t body, proto_rpc_envelope_t *out)
{
    proto_rpc_envelope_t env = {0};
    env.error = AX_SLICE("", 0);
    env.payload = AX_SLICE("", 0);
    const uint8_t *p = body.base;
    size_t len = body.len, off = 0;
    while (off < len) {
        uint64_t key, v;
        int rv = read_varint(p, len, &off, &key);
        if (rv < 0)
            return rv;
        uint64_t field = key >> 3;
        unsigned wt = (unsigned)(key & 7);
        if (field == 0 || field > UINT32_MAX)
            return AX_EPROTO;
        switch (wt) {
        case WT_VARINT:
            if ((rv = read_varint(p, len, &off, &v)) < 0)
                return rv;
            break;
        case WT_I64:
            if (len - off < 8)
                return AX_EPROTO;
            off += 8;
            break;
        case WT_I32:
            if (len - off < 4)
                return AX_EPROTO;
            off += 4;
            break;
        case WT_LEN:
            if ((rv = read_varint(p, len, &off, &v)) < 0)
                return rv;
            if (v > len - off)
                return AX_EPROTO;
            break;
        default: /* 3, 4 (groups), 6, 7: never in our messages */
            return AX_EPROTO;
        }
        /* A known field with the wrong wire type is malformed, not "unknown". */
        switch (field) {
        case 1: /* request_id */
            if (wt != WT_VARINT)
                return AX_EPROTO;
            env.request_id = v;
            break;
        case 2: /* method */
            if (wt != WT_VARINT)
                return AX_EPROTO;
            if (v > INT32_MAX) /* an enum is an int32 */
                return AX_EPROTO;
            env.method = (uint32_t)v;
            break;
        case 3: { /* status, sint32 zigzag */
            if (wt != WT_VARINT || v > UINT32_MAX)
                return AX_EPROTO;
            uint32_t z = (uint32_t)v;
            env.status = (int32_t)((z >> 1) ^ (~(z & 1) + 1));
            break;
        }
        case 4: /* error */
            if (wt != WT_LEN)
                return AX_EPROTO;
            env.error = AX_SLICE(p + off, (size_t)v);
            off += (size_t)v;
            break;
        case 5: /* payload */
            if (wt != WT_LEN)
                return AX_EPROTO;
            env.payload = AX_SLICE(p + off, (size_t)v);
            off += (size_t)v;
            break;
        case 6: /* push */
            if (wt != WT_VARINT || v > 1)
                return AX_EPROTO;
            env.push = v != 0;
            break;
        default: /* unknown field: skip (forward compatibility) */
            if (wt == WT_LEN)
                off += (size_t)v;
            break;
        }
    }
    /* Statuses are 0 or our negative codes: a positive status is not ours. */
    if (env.status > 0)
        return AX_EPROTO;
    *out = env;
    return 0;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

int proto_rpc_frame_encode(const proto_rpc_envelope_t *env, uint32_t max_frame, ax_buf_t *out)
{
    /* proto3: fields with default values are omitted, as protobuf-c's packer does, so both
     * encoders give the same bytes (the fuzzer checks decode(encode(x)) == x). */
    uint32_t zz = ((uint32_t)env->status << 1) ^ (uint32_t)(env->status >> 31);
    size_t n = 0;
    if (env->request_id != 0)
        n += 1 + varint_len(env->request_id);
    if (env->method != 0)
        n += 1 + varint_len(env->method);
    if (zz != 0)
        n += 1 + varint_len(zz);
    if (env->error.len != 0)
        n += 1 + varint_len(env->error.len) + env->error.len;
    if (env->payload.len != 0)
        n += 1 + varint_len(env->payload.len) + env->payload.len;
    if (env->push)
        n += 2;
    if (n == 0 || n > max_frame)
        return n == 0 ? AX_EINVAL : AX_EMSGSIZE;
    int rv = ax_buf_reserve(out, PROTO_RPC_FRAME_HEADER + n);
    if (rv < 0)
        return rv;
    uint8_t *p = out->base + out->len;
    ax_wr_be32(p, (uint32_t)n);
    size_t o = PROTO_RPC_FRAME_HEADER;
    if (env->request_id != 0) {
        p[o++] = 1 << 3 | WT_VARINT;
        o += put_varint(p + o, env->request_id);
    }
    if (env->method != 0) {
        p[o++] = 2 << 3 | WT_VARINT;
        o += put_varint(p + o, env->method);
    }
    if (zz != 0) {
        p[o++] = 3 << 3 | WT_VARINT;
        o += put_varint(p + o, zz);
    }
    if (env->error.len != 0) {
        p[o++] = 4 << 3 | WT_LEN;
        o += put_varint(p + o, env->error.len);
        memcpy(p + o, env->error.base, env->error.len);
        o += env->error.len;
    }
    if (env->payload.len != 0) {
        p[o++] = 5 << 3 | WT_LEN;
        o += put_varint(p + o, env->payload.len);
        memcpy(p + o, env->payload.base, env->payload.len);
        o += env->payload.len;
    }
    if (env->push) {
        p[o++] = 6 << 3 | WT_VARINT;
        p[o++] = 1;
    }
    AX_POST(o == PROTO_RPC_FRAME_HEADER + n);
    out->len += o;
    return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static void *pb_alloc(void *data, size_t size)
{
    (void)data;
    return ax_malloc(size == 0 ? 1 : size);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    ax_free(p);
}

static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

ProtobufCAllocator *proto_rpc_allocator(void)
{
    return &pb_allocator;
}

int proto_rpc_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    *out = NULL;
    *len = 0;
    if (n == 0)
        return 0;
    uint8_t *b = ax_malloc(n);
    if (b == NULL)
        return AX_ENOMEM;
    size_t w = protobuf_c_message_pack(msg, b);
    AX_POST(w == n);
    *out = b;
    *len = n;
    return 0;
}

#define SERVER_LABEL "aethex-rpc server"
#define CLIENT_LABEL "aethex-rpc client"

int proto_rpc_proof(const uint8_t *secret, size_t secret_len, bool server,
                    const uint8_t nonce[PROTO_RPC_NONCE_LEN], ax_slice_t id,
                    uint8_t proof[PROTO_RPC_PROOF_LEN])
{
    if (secret_len < PROTO_RPC_MIN_SECRET || secret_len > PROTO_RPC_MAX_SECRET)
        return AX_EINVAL;
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, secret, secret_len);
    if (server)
        crypto_auth_hmacsha256_update(&st, (const uint8_t *)SERVER_LABEL, sizeof SERVER_LABEL - 1);
    else
        crypto_auth_hmacsha256_update(&st, (const uint8_t *)CLIENT_LABEL, sizeof CLIENT_LABEL - 1);
    crypto_auth_hmacsha256_update(&st, nonce, PROTO_RPC_NONCE_LEN);
    crypto_auth_hmacsha256_update(&st, id.base, id.len);
    crypto_auth_hmacsha256_final(&st, proof);
    sodium_memzero(&st, sizeof st);
    return 0;
}

int proto_rpc_secret_load(const char *path, uint8_t *out, size_t *len, char *errmsg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(errmsg, AX_ERRMSG_LEN, "cluster secret %s: %s", path, strerror(e));
        return e == ENOENT ? AX_ENOENT : e == EACCES ? AX_EACCES : AX_EIO;
    }
    /* One byte more than the limit (plus a CRLF) tells "too long" from "exactly the limit". */
    uint8_t buf[PROTO_RPC_MAX_SECRET + 3];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            snprintf(errmsg, AX_ERRMSG_LEN, "cluster secret %s: %s", path, strerror(e));
            return AX_EIO;
        }
        if (r == 0 || (n += (size_t)r) == sizeof buf)
            break;
    }
    close(fd);
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    }
    if (n < PROTO_RPC_MIN_SECRET || n > PROTO_RPC_MAX_SECRET) {
        sodium_memzero(buf, sizeof buf);
        snprintf(errmsg, AX_ERRMSG_LEN, "cluster secret %s: %s (%d..%d bytes)", path,
                 n < PROTO_RPC_MIN_SECRET ? "too short" : "too long", PROTO_RPC_MIN_SECRET,
                 PROTO_RPC_MAX_SECRET);
        return AX_EINVAL;
    }
    memcpy(out, buf, n);
    sodium_memzero(buf, sizeof buf);
    *len = n;
    return 0;
}

const char *proto_rpc_method_name(uint32_t method)
{
    switch (method) {
    case AETHEX__METHOD__METHOD_HELLO:
        return "HELLO";
    case AETHEX__METHOD__METHOD_CHALLENGE:
        return "CHALLENGE";
    case AETHEX__METHOD__METHOD_AUTH:
        return "AUTH";
    case AETHEX__METHOD__METHOD_REGISTER_EDGE:
        return "REGISTER_EDGE";
    case AETHEX__METHOD__METHOD_HEARTBEAT:
        return "HEARTBEAT";
    case AETHEX__METHOD__METHOD_AUTHORIZE_PUBLISH:
        return "AUTHORIZE_PUBLISH";
    case AETHEX__METHOD__METHOD_END_STREAM:
        return "END_STREAM";
    case AETHEX__METHOD__METHOD_LOOKUP_CHANNEL:
        return "LOOKUP_CHANNEL";
    case AETHEX__METHOD__METHOD_PING:
        return "PING";
    case AETHEX__METHOD__METHOD_KICK_PUBLISHER:
        return "KICK_PUBLISHER";
    case AETHEX__METHOD__METHOD_KEY_REVOKED:
        return "KEY_REVOKED";
    default:
        return "UNKNOWN";
    }
}

uint32_t proto_rpc_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t round, uint64_t r)
{
    uint64_t w = min_ms;
    for (uint32_t i = 0; i < round && w < max_ms; i++)
        w *= 2;
    if (w > max_ms)
        w = max_ms;
    /* Jitter in [0.5, 1]: edges that lost the same leader do not all come back at once,
     * and none waits less than half the step. */
    return (uint32_t)(w / 2 + w * (r % 1001) / 2000);
}

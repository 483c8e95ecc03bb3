/*
 * fuzz.rpc_frame: bytes as a TCP stream from a peer, through the frame decoder, the envelope
 * decoder and the payload unpackers. Invariants: consumed never exceeds the input; a decoded
 * envelope re-encodes and decodes to the same fields; feeding the stream byte-split gives the
 * same frames (checked on the first frame).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/proto/rpc.h"

#define MAX_FRAME (64 * 1024)

static void check(int cond)
{
    if (!cond)
        abort();
}

static void unpack_payload(const proto_rpc_envelope_t *env)
{
    ProtobufCAllocator *a = proto_rpc_allocator();
    const ProtobufCMessageDescriptor *d = NULL;
    switch (env->method) {
    case AETHEX__METHOD__METHOD_HELLO:
        d = &aethex__hello__descriptor;
        break;
    case AETHEX__METHOD__METHOD_CHALLENGE:
        d = &aethex__challenge__descriptor;
        break;
    case AETHEX__METHOD__METHOD_AUTH:
        d = &aethex__auth__descriptor;
        break;
    case AETHEX__METHOD__METHOD_REGISTER_EDGE:
        d = &aethex__register_edge__descriptor;
        break;
    case AETHEX__METHOD__METHOD_HEARTBEAT:
        d = &aethex__heartbeat__descriptor;
        break;
    case AETHEX__METHOD__METHOD_AUTHORIZE_PUBLISH:
        d = &aethex__authorize_publish__descriptor;
        break;
    case AETHEX__METHOD__METHOD_END_STREAM:
        d = &aethex__end_stream__descriptor;
        break;
    case AETHEX__METHOD__METHOD_LOOKUP_CHANNEL:
        d = &aethex__lookup_channel__descriptor;
        break;
    case AETHEX__METHOD__METHOD_KICK_PUBLISHER:
        d = &aethex__kick_publisher__descriptor;
        break;
    case AETHEX__METHOD__METHOD_KEY_REVOKED:
        d = &aethex__key_revoked__descriptor;
        break;
    default:
        d = &aethex__not_leader__descriptor;
        break;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(d, a, env->payload.len, env->payload.base);
    if (m != NULL) {
        /* What unpacked packs again within the same size bound. */
        size_t n = protobuf_c_message_get_packed_size(m);
        check(n <= env->payload.len + 16 * 1024);
        protobuf_c_message_free_unpacked(m, a);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    int first = 1;
    while (off < size) {
        ax_slice_t body;
        int rv = proto_rpc_frame_decode(data + off, size - off, MAX_FRAME, &body);
        if (rv <= 0)
            break;
        check((size_t)rv <= size - off);
        check(body.len == (size_t)rv - PROTO_RPC_FRAME_HEADER);
        if (first) {
            /* Byte by byte: "need more" until exactly rv bytes are there. */
            for (size_t n = 0; n < (size_t)rv; n++) {
                ax_slice_t b2;
                check(proto_rpc_frame_decode(data + off, n, MAX_FRAME, &b2) == 0);
            }
            first = 0;
        }
        off += (size_t)rv;
        proto_rpc_envelope_t env;
        if (proto_rpc_envelope_decode(body, &env) < 0)
            continue;
        check(env.status <= 0);
        ax_buf_t b;
        ax_buf_init(&b, MAX_FRAME + 4);
        int erv = proto_rpc_frame_encode(&env, MAX_FRAME, &b);
        if (erv == 0) {
            ax_slice_t body2;
            check(proto_rpc_frame_decode(b.base, b.len, MAX_FRAME, &body2) == (int)b.len);
            proto_rpc_envelope_t env2;
            check(proto_rpc_envelope_decode(body2, &env2) == 0);
            check(env2.request_id == env.request_id && env2.method == env.method &&
                  env2.status == env.status && env2.push == env.push);
            check(env2.error.len == env.error.len &&
                  memcmp(env2.error.base, env.error.base, env.error.len) == 0);
            check(env2.payload.len == env.payload.len &&
                  memcmp(env2.payload.base, env.payload.base, env.payload.len) == 0);
        } else {
            /* Only an envelope of all defaults has nothing to encode. */
            check(erv == AX_EINVAL && env.method == 0 && env.request_id == 0);
        }
        ax_buf_close(&b);
        unpack_payload(&env);
    }
    return 0;
}

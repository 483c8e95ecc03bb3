/*
 * One framed TCP connection, shared by the server's and the client's connections: reads
 * bytes into frames (proto_rpc_frame_decode), decodes envelopes, queues whole frames for
 * writing, and closes once with a reason. Never included outside proto/src/.
 */
#ifndef AETHEX_PROTO_RPC_INTERNAL_H
#define AETHEX_PROTO_RPC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "aethex/proto/rpc.h"

struct proto_rpc__conn;

/* A decoded envelope arrived. Return 0 to go on, or < 0 to close the connection with
 * `why` (filled by the callee, AX_ERRMSG_LEN). The callee may also have called
 * proto_rpc__conn_close() itself; feeding stops either way. */
typedef int (*proto_rpc__frame_cb)(struct proto_rpc__conn *c, const proto_rpc_envelope_t *env,
                                   char *why);
/* The connection is dead (EOF, error, protocol error or asked): fired once, before the
 * handles close. `err` is 0 for a close we asked for. */
typedef void (*proto_rpc__dead_cb)(struct proto_rpc__conn *c, int err, const char *why);
/* Both handles closed: the owner frees `c` here (proto_rpc__conn_free). */
typedef void (*proto_rpc__closed_cb)(struct proto_rpc__conn *c);

struct proto_rpc__conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake / connect deadline, owned by the conn's user */
    ax_buf_t rbuf;    /* a partial frame, limit max_frame + 4 */
    uint32_t max_frame;
    uint32_t max_write_queue;
    size_t queued; /* bytes handed to uv_write and not yet completed */
    bool tcp_init, timer_init;
    bool dead;   /* dead_cb fired; nothing more is read or written */
    int handles; /* handles still to close */
    char peer[64];
    proto_rpc__frame_cb on_frame;
    proto_rpc__dead_cb on_dead;
    proto_rpc__closed_cb on_closed;
    void *owner;
};

/* Prepares `c` (zeroed by the caller) on `loop`: tcp and timer initialised. 0 or a uv error. */
int proto_rpc__conn_init(struct proto_rpc__conn *c, uv_loop_t *loop, const proto_rpc_limits_t *l);

/* Starts reading. Returns 0 or a uv error. */
int proto_rpc__conn_start(struct proto_rpc__conn *c);

/* Fills c->peer from the socket's peer address. */
void proto_rpc__conn_set_peer(struct proto_rpc__conn *c);

/* Encodes and queues one frame. Returns 0, AX_EMSGSIZE, AX_ENOMEM, AX_ECLOSED (dead). A queue
 * past max_write_queue or a write error kills the connection (the return is then still 0). */
int proto_rpc__conn_send(struct proto_rpc__conn *c, const proto_rpc_envelope_t *env);

/* Marks the connection dead (on_dead fires now, once, with `err`/`why`) and closes its
 * handles (on_closed fires later). Idempotent. */
void proto_rpc__conn_close(struct proto_rpc__conn *c, int err, const char *why);

/* Releases the read buffer; the owner frees the struct. */
void proto_rpc__conn_release(struct proto_rpc__conn *c);

/* Parses "a.b.c.d:port" or "[v6]:port" (numeric). Returns 0 or AX_EINVAL. */
int proto_rpc__parse_address(const char *address, struct sockaddr_storage *ss);

#endif /* AETHEX_PROTO_RPC_INTERNAL_H */

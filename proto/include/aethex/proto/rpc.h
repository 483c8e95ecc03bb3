/*
 * The edge <-> coordinator RPC: framing, the envelope, and an authenticated connection on
 * libuv usable by both sides (docs/protocol-rpc.md).
 *
 *   frame    = u32 big-endian length N (1 <= N <= limits.max_frame) || N bytes
 *   N bytes  = one packed aethex.Envelope (proto/aethex.proto): request_id, method, status,
 *              error, payload (the packed message of the method), push
 *
 * The messages themselves are protobuf-c types generated at build time from
 * proto/aethex.proto: include "aethex/proto/aethex.pb-c.h" (Aethex__RegisterEdge, ...) and
 * pack them into the `payload` of a call or response; unpack with proto_rpc_allocator() so
 * that allocation goes through ax_malloc.
 *
 * Authentication (both sides hold the same cluster secret, >= PROTO_RPC_MIN_SECRET bytes):
 *
 *   client                                      server
 *     Hello{version, client_id, client_nonce} ->
 *                                            <- Challenge{version, server_id, nonce,
 *                                                 server_proof = HMAC(secret, "aethex-rpc
 *                                                   server" || client_nonce || server_id)}
 *     (client checks server_proof)
 *     Auth{client_proof = HMAC(secret,       ->
 *          "aethex-rpc client" || nonce || client_id)}
 *                                            <- AuthOk (status 0)     (server checks proof)
 *
 * HMAC is HMAC-SHA256 (libsodium crypto_auth_hmacsha256), compared with sodium_memcmp; the
 * two labels keep a server's proof from ever being replayed as a client's. Anything else
 * before AuthOk, a wrong proof, a malformed, oversized or unexpected frame, or a handshake
 * slower than limits.handshake_timeout_ms closes THAT connection only, logged once (warn)
 * with the peer address; no other connection is affected.
 *
 * Callback contract (STYLE 5): a call taking a callback either returns < 0 and never calls
 * it, or returns 0 and calls it exactly once, later, from the loop. Closing a client delivers
 * AX_ECANCELED to every pending call.
 *
 * Threading: everything here runs on the thread of the uv loop it was created on, except
 * the pure functions (frame decoder, envelope codec, proofs), which are thread-safe.
 */
#ifndef AETHEX_PROTO_RPC_H
#define AETHEX_PROTO_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "aethex/common/clock.h"
#include "aethex/common/error.h"
#include "aethex/common/rand.h"
#include "aethex/common/util.h"
#include "aethex/proto/aethex.pb-c.h"

#define PROTO_RPC_VERSION 1
#define PROTO_RPC_FRAME_HEADER 4                     /* the big-endian length prefix */
#define PROTO_RPC_MAX_FRAME_DEFAULT (1024 * 1024)    /* bytes of one envelope (1 MiB) */
#define PROTO_RPC_MAX_FRAME_LIMIT (64 * 1024 * 1024) /* the largest max_frame we accept */
#define PROTO_RPC_MIN_SECRET 32                      /* bytes of the cluster secret, at least */
#define PROTO_RPC_MAX_SECRET 1024
#define PROTO_RPC_NONCE_LEN 32
#define PROTO_RPC_PROOF_LEN 32 /* HMAC-SHA256 */
#define PROTO_RPC_MAX_ID 64    /* bytes of a client_id / server_id */
#define PROTO_RPC_MAX_ADDRESSES 16
#define PROTO_RPC_MAX_ADDRESS 255 /* "a.b.c.d:port" or "[v6]:port" */

/* Every limit, for both sides. proto_rpc_limits_default() fills these values. */
typedef struct proto_rpc_limits {
    uint32_t max_frame;            /* envelope bytes of one frame: 1 MiB */
    uint32_t max_pending_calls;    /* client: calls awaiting a response: 1024 */
    uint32_t max_connections;      /* server: open connections (authenticated or not): 4096 */
    uint32_t max_write_queue;      /* bytes queued unsent on one connection: 8 MiB; past it the
                                      connection is closed (a peer that does not read) */
    uint32_t handshake_timeout_ms; /* connect to AuthOk: 5 s */
} proto_rpc_limits_t;

void proto_rpc_limits_default(proto_rpc_limits_t *l);

/* ---- framing (pure) --------------------------------------------------------------------- */

/*
 * Decodes one frame from the start of `data` (`len` bytes, borrowed). Incremental and
 * stateless: returns
 *   > 0  bytes consumed (4 + N): *body points into `data` at the N envelope bytes;
 *   0    need more bytes (fewer than 4, or fewer than 4 + N); nothing is set;
 *   AX_EMSGSIZE  the declared N exceeds `max_frame` (known after the 4 header bytes, before
 *                the body arrives: a caller never buffers an oversized frame);
 *   AX_EPROTO    N is 0 (an envelope always has a method).
 * Feeding a stream one byte at a time gives the same frames as feeding it whole.
 */
int proto_rpc_frame_decode(const uint8_t *data, size_t len, uint32_t max_frame, ax_slice_t *body);

/* ---- envelope (pure) -------------------------------------------------------------------- */

/* One envelope. As a decoding result, `error` and `payload` are borrowed from the frame
 * body; as an encoding input they are borrowed for the call. `error` is not NUL-terminated. */
typedef struct proto_rpc_envelope {
    uint64_t request_id;
    uint32_t method; /* Aethex__Method */
    int32_t status;  /* 0 or AX_E* */
    ax_slice_t error;
    ax_slice_t payload;
    bool push;
} proto_rpc_envelope_t;

/*
 * Decodes one envelope from a frame body (borrowed; `out` borrows from it). Hand-written
 * protobuf decoding with no allocation: unknown fields are skipped; a truncated varint or
 * length, a length past the body, a wire type the Envelope cannot have (or a known field with the
 * wrong one), or a method/status out of range returns AX_EPROTO; nothing allocated.
 */
int proto_rpc_envelope_decode(ax_slice_t body, proto_rpc_envelope_t *out);

/*
 * Appends one whole frame (length prefix + envelope) to `out`. Returns 0, AX_EMSGSIZE (the
 * envelope would exceed `max_frame`, or `out`'s limit) or AX_ENOMEM; on error `out` is
 * unchanged.
 */
int proto_rpc_frame_encode(const proto_rpc_envelope_t *env, uint32_t max_frame, ax_buf_t *out);

/* ---- helpers ---------------------------------------------------------------------------- */

/* A protobuf-c allocator over ax_malloc/ax_free, for *_unpack(): a failed allocation makes
 * unpack return NULL (treat as AX_ENOMEM or AX_EPROTO as the context says). Static. */
ProtobufCAllocator *proto_rpc_allocator(void);

/*
 * Packs `msg` (any generated message, borrowed) into a new ax_malloc'ed buffer: *out taken by
 * the caller (ax_free). An empty message gives *out = NULL, *len = 0. Returns 0 or AX_ENOMEM.
 */
int proto_rpc_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len);

/*
 * HMAC-SHA256(secret, label || nonce || id) into proof[PROTO_RPC_PROOF_LEN]; `server` picks
 * the label ("aethex-rpc server" / "aethex-rpc client"). All borrowed. Returns 0 or AX_EINVAL
 * (secret shorter than PROTO_RPC_MIN_SECRET or longer than PROTO_RPC_MAX_SECRET).
 */
int proto_rpc_proof(const uint8_t *secret, size_t secret_len, bool server,
                    const uint8_t nonce[PROTO_RPC_NONCE_LEN], ax_slice_t id,
                    uint8_t proof[PROTO_RPC_PROOF_LEN]);

/*
 * Reads a cluster secret from a file (borrowed path): the file's bytes with one trailing
 * newline (\n or \r\n) removed. Returns 0 with *len set, AX_ENOENT/AX_EACCES/AX_EIO, or
 * AX_EINVAL (shorter than PROTO_RPC_MIN_SECRET or longer than PROTO_RPC_MAX_SECRET) with
 * `errmsg` (AX_ERRMSG_LEN). `out` has room for PROTO_RPC_MAX_SECRET bytes. Blocking: for
 * start-up only.
 */
int proto_rpc_secret_load(const char *path, uint8_t *out, size_t *len, char *errmsg);

/* The method's name for logs ("AUTHORIZE_PUBLISH"), "UNKNOWN" otherwise. Static. */
const char *proto_rpc_method_name(uint32_t method);

/* ---- server ----------------------------------------------------------------------------- */

typedef struct proto_rpc_server proto_rpc_server_t;

/* What the server knows about one authenticated connection. Borrowed for the callback. */
typedef struct proto_rpc_peer {
    uint64_t conn_id;      /* unique per server for its lifetime, never 0 */
    const char *client_id; /* from Hello, authenticated, NUL-terminated */
    const char *address;   /* "ip:port" of the peer */
} proto_rpc_peer_t;

/*
 * A request arrived on an authenticated connection. `req` (and its slices) and `peer` are
 * borrowed for the callback. The application answers exactly once with
 * proto_rpc_server_respond() (now or later, with peer->conn_id and req->request_id); if the
 * connection is gone by then, respond returns AX_ENOENT and nothing is sent.
 */
typedef void (*proto_rpc_server_request_cb)(proto_rpc_server_t *s, const proto_rpc_peer_t *peer,
                                            const proto_rpc_envelope_t *req);

/* A connection became authenticated (`up` true) or an authenticated one closed (`up`
 * false: its conn_id is dead from now on). `peer` borrowed. May be NULL. */
typedef void (*proto_rpc_server_conn_cb)(proto_rpc_server_t *s, const proto_rpc_peer_t *peer,
                                         bool up);

typedef struct proto_rpc_server_config {
    const char *address;   /* "ip:port" to listen on (port 0: pick one); copied */
    const char *server_id; /* 1..PROTO_RPC_MAX_ID bytes, copied */
    const uint8_t *secret; /* copied; PROTO_RPC_MIN_SECRET..PROTO_RPC_MAX_SECRET bytes */
    size_t secret_len;
    proto_rpc_limits_t limits;
    proto_rpc_server_request_cb on_request; /* required */
    proto_rpc_server_conn_cb on_conn;       /* optional */
    void *data;                             /* user context: proto_rpc_server_data() */
} proto_rpc_server_config_t;

/* Fills defaults: address "127.0.0.1:0", proto_rpc_limits_default(), the rest NULL/0. */
void proto_rpc_server_config_default(proto_rpc_server_config_t *cfg);

/*
 * Creates the server on `loop` (must outlive it), binds and listens. Returns 0, AX_EINVAL
 * (bad address, id, secret or limits; no on_request) with `errmsg`, a libuv bind error
 * (e.g. UV_EADDRINUSE), or AX_ENOMEM; on failure *out is NULL and nothing is left behind.
 * `errmsg` may be NULL.
 */
int proto_rpc_server_new(uv_loop_t *loop, const proto_rpc_server_config_t *cfg,
                         proto_rpc_server_t **out, char *errmsg);

typedef void (*proto_rpc_server_close_cb)(proto_rpc_server_t *s);

/* Stops listening and closes every connection (on_conn(up=false) fires for each
 * authenticated one), then calls `cb` (may be NULL) and frees the server. NULL does
 * nothing. Calling it twice is a bug. */
void proto_rpc_server_close(proto_rpc_server_t *s, proto_rpc_server_close_cb cb);

void *proto_rpc_server_data(const proto_rpc_server_t *s);

/* The address actually bound ("127.0.0.1:41235"), NUL-terminated, owned by the server. */
const char *proto_rpc_server_address(const proto_rpc_server_t *s);

/*
 * Sends the response to request `request_id` of `method` on connection `conn_id`: `status`
 * 0 or AX_E*, `error` (NUL-terminated or NULL) and `payload` borrowed (copied into the
 * connection's write queue). Returns 0, AX_ENOENT (connection gone: nothing sent),
 * AX_EMSGSIZE (over max_frame) or AX_ENOMEM. When the write queue passes max_write_queue
 * the connection is closed instead (still 0: it is the peer's problem).
 */
int proto_rpc_server_respond(proto_rpc_server_t *s, uint64_t conn_id, uint64_t request_id,
                             uint32_t method, int32_t status, const char *error,
                             ax_slice_t payload);

/* As respond, with status AX_ENOTLEADER and a NotLeader payload naming `leader_rpc_address`
 * (borrowed; NULL or "" when no leader is known). */
int proto_rpc_server_respond_not_leader(proto_rpc_server_t *s, uint64_t conn_id,
                                        uint64_t request_id, uint32_t method,
                                        const char *leader_rpc_address);

/* Sends a push (push = true, request_id 0) of `method` with `payload` (borrowed) to an
 * authenticated connection. Returns as respond. */
int proto_rpc_server_push(proto_rpc_server_t *s, uint64_t conn_id, uint32_t method,
                          ax_slice_t payload);

/* Closes one connection (e.g. an edge that must re-register). Returns 0 or AX_ENOENT. */
int proto_rpc_server_kick(proto_rpc_server_t *s, uint64_t conn_id);

typedef struct proto_rpc_server_stats {
    uint64_t accepted;        /* TCP connections accepted */
    uint64_t authenticated;   /* connections that completed the handshake */
    uint64_t auth_failures;   /* wrong proof, bad handshake, handshake timeout */
    uint64_t protocol_errors; /* malformed / oversized / unexpected frames after auth */
    uint64_t requests;        /* requests dispatched to on_request */
    uint32_t connections;     /* open now */
} proto_rpc_server_stats_t;
void proto_rpc_server_stats(const proto_rpc_server_t *s, proto_rpc_server_stats_t *out);

/* ---- client ----------------------------------------------------------------------------- */

typedef struct proto_rpc_client proto_rpc_client_t;
typedef struct proto_rpc_call proto_rpc_call_t;

typedef void (*proto_rpc_call_cb)(proto_rpc_call_t *call, int status);

/*
 * One call, provided by the caller (as uv_write_t is): it must outlive its callback and may
 * be freed or reused inside it. Zero it, set `data` and optionally `timeout_ms`, submit.
 *
 * Status of the callback:
 *   0 or any AX_E* the server answered (AX_EBADKEY, AX_ELIVE, ...): call->errmsg holds the
 *       server's error text, call->payload the response payload (borrowed for the callback);
 *   AX_ETIMEDOUT   no response within the deadline (a write may or may not have happened);
 *   AX_ECONNRESET  the connection was lost after the request was sent;
 *   AX_ENOLEADER   the server said NotLeader and the leader could not be reached (or named)
 *                  before the deadline; a call refused with NotLeader is re-sent to the
 *                  leader automatically (it did not run), never reported as AX_ENOTLEADER;
 *   AX_ECANCELED   the client was closed;
 *   AX_ENOMEM.
 */
struct proto_rpc_call {
    void *data;          /* user context */
    uint32_t timeout_ms; /* 0: the client's call_timeout_ms */

    /* Filled by the client; valid in the callback. */
    proto_rpc_client_t *client;
    uint32_t method;
    ax_slice_t payload;         /* the response's payload: borrowed for the callback */
    char errmsg[AX_ERRMSG_LEN]; /* "" on success */

    struct proto_rpc__call *op_; /* private */
};

/* Connection state changes. `connected` true: authenticated to `server_id` at `address`
 * (an edge registers now, on EVERY connection: a new leader knows nothing of it). false: the
 * connection was lost; the client reconnects by itself. Both borrowed. */
typedef void (*proto_rpc_client_state_cb)(proto_rpc_client_t *c, bool connected,
                                          const char *address, const char *server_id);

/* A push arrived (method, payload borrowed for the callback). */
typedef void (*proto_rpc_client_push_cb)(proto_rpc_client_t *c, uint32_t method,
                                         ax_slice_t payload);

typedef struct proto_rpc_client_config {
    const char *const *addresses; /* coordinators' RPC addresses, "ip:port"; copied; 1..16 */
    uint32_t naddresses;
    const char *client_id; /* 1..PROTO_RPC_MAX_ID bytes, copied (the edge id) */
    const uint8_t *secret; /* copied */
    size_t secret_len;
    uint32_t connect_timeout_ms; /* TCP connect + handshake to one address: 2 s */
    uint32_t call_timeout_ms;    /* default deadline of a call: 5 s */
    uint32_t backoff_min_ms;     /* first wait after a failed round of addresses: 100 ms */
    uint32_t backoff_max_ms;     /* doubling up to this: 5 s; full jitter (0..wait) */
    ax_clock_t *clock;           /* must outlive the client; NULL: ax_clock_system() */
    ax_rand_t *rand;             /* must outlive the client; NULL: seeded from the clock */
    proto_rpc_limits_t limits;
    proto_rpc_client_state_cb on_state; /* optional */
    proto_rpc_client_push_cb on_push;   /* optional */
    void *data;                         /* proto_rpc_client_data() */
} proto_rpc_client_config_t;

/* Fills defaults: no addresses, timeouts and backoff as above, proto_rpc_limits_default(). */
void proto_rpc_client_config_default(proto_rpc_client_config_t *cfg);

/*
 * Creates the client and starts connecting at once: addresses are tried in order (a
 * NotLeader answer puts the named leader first), a failed round waits
 * min(backoff_max, backoff_min * 2^round) scaled by a random factor in [0.5, 1] from `rand`,
 * then tries again, forever until closed. Returns 0, AX_EINVAL (with `errmsg`, may be NULL)
 * or AX_ENOMEM; on failure *out is NULL.
 */
int proto_rpc_client_new(uv_loop_t *loop, const proto_rpc_client_config_t *cfg,
                         proto_rpc_client_t **out, char *errmsg);

typedef void (*proto_rpc_client_close_cb)(proto_rpc_client_t *c);

/* Closes the client: every pending call gets AX_ECANCELED (later, from the loop), then `cb`
 * (may be NULL), then the client is freed. NULL does nothing; twice is a bug. May be called
 * from any of the client's callbacks. */
void proto_rpc_client_close(proto_rpc_client_t *c, proto_rpc_client_close_cb cb);

/*
 * Sends a request of `method` with `payload` (borrowed: copied now). Returns 0 and calls `cb`
 * once later, or fails now: AX_ENOLEADER (not connected and authenticated right now: calls
 * fail fast while the client reconnects), AX_ENOSPC (max_pending_calls), AX_EMSGSIZE,
 * AX_ECLOSED (closing), AX_ENOMEM, AX_EINVAL.
 */
int proto_rpc_call(proto_rpc_call_t *call, proto_rpc_client_t *c, uint32_t method,
                   ax_slice_t payload, proto_rpc_call_cb cb);

void *proto_rpc_client_data(const proto_rpc_client_t *c);
bool proto_rpc_client_connected(const proto_rpc_client_t *c);
/* The address of the current connection ("" when none); owned by the client. */
const char *proto_rpc_client_address(const proto_rpc_client_t *c);
/* The last connection problem ("connect 127.0.0.1:9101: connection refused"), for logs. */
const char *proto_rpc_client_errmsg(const proto_rpc_client_t *c);

typedef struct proto_rpc_client_stats {
    uint64_t connects;   /* connections that authenticated */
    uint64_t attempts;   /* connection attempts */
    uint64_t not_leader; /* NotLeader redirects followed */
    uint64_t calls;      /* calls sent */
    uint64_t timeouts;   /* calls that timed out */
} proto_rpc_client_stats_t;
void proto_rpc_client_stats(const proto_rpc_client_t *c, proto_rpc_client_stats_t *out);

/* The wait before reconnect round `round` (0-based) with jitter `r` (pure, for tests):
 * min(max_ms, min_ms << round) * (0.5 + 0.5 * (r % 1001) / 1000). */
uint32_t proto_rpc_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t round, uint64_t r);

#endif /* AETHEX_PROTO_RPC_H */

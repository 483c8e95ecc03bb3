/*
 * The coordinator's side of the edge RPC (rpc.c; docs/coordinator.md "Edges and RPC",
 * docs/protocol-rpc.md): the listener, the edge registry behind it, publish authorisation
 * and stream ends through the database. Never included outside coordinator/src/.
 */
#ifndef AETHEX_COORDINATOR_RPC_H
#define AETHEX_COORDINATOR_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "aethex/coordinator/config.h"
#include "aethex/coordinator/dqlite_client.h"
#include "aethex/coordinator/edges.h"

typedef struct coord_rpc coord_rpc_t;

/* A stream key: this many random bytes, shown once as twice as many hex digits; the database
 * keeps only SHA-256 of the bytes (stream_keys.key_hash). */
#define COORD_RPC_KEY_BYTES 32

/* Tells the RPC layer who leads now (main.c polls LEADER every second). *leader_address is
 * the leader's dqlite address ("" when none), borrowed until the loop turns. */
typedef void (*coord_rpc_leader_fn)(void *data, bool *is_leader, const char **leader_address);

/*
 * Starts the RPC listener on cfg->rpc_listen with the cluster secret of `cfg` (inline or
 * file), answering on `loop`; database work goes through `db` (must outlive the RPC until
 * coord__rpc_stop). `leader` and `data` say who leads. Returns 0 or AX_E* with `errmsg`.
 */
int coord__rpc_start(uv_loop_t *loop, const coord_config_t *cfg, uint64_t node_id,
                     coord_dqlite_client_t *db, coord_rpc_leader_fn leader, void *data,
                     coord_rpc_t **out, char *errmsg);

/* The registry (for routing and /metrics); owned by the RPC layer. NULL `r`: NULL. */
coord_edges_t *coord__rpc_edges(coord_rpc_t *r);

/* The address the listener bound. */
const char *coord__rpc_address(const coord_rpc_t *r);

/* Appends the RPC's Prometheus lines (connections, auth failures, edges by health, live
 * channels, heartbeats, authorisations, stream ends, KeyRevoked pushes) to `b`; zeros when `r`
 * is NULL (no rpc-listen). Returns 0 or an ax_buf error. */
int coord__rpc_metrics(const coord_rpc_t *r, ax_buf_t *b);

/* Stops listening and closes every connection; the memory goes once the listener has
 * closed and every database request in flight has called back (the db client's close
 * cancels them). NULL does nothing. */
void coord__rpc_stop(coord_rpc_t *r);

#endif /* AETHEX_COORDINATOR_RPC_H */

/*
 * Parts of the aethex-coordinator binary (never included outside coordinator/src/):
 * the embedded dqlite node (node.c) and the HTTP listener on the coordinator's loop (http.c).
 */
#ifndef AETHEX_COORDINATOR_INTERNAL_H
#define AETHEX_COORDINATOR_INTERNAL_H

#include <stdint.h>

#include <uv.h>

#include "aethex/common/error.h"
#include "aethex/common/util.h"

/* ---- node.c: the embedded dqlite node ---------------------------------------------------- */

typedef struct coord_node coord_node_t;

typedef struct coord_node_config {
    uint64_t id;                 /* from coord__node_resolve_id() */
    const char *address;         /* "host:port", copied */
    const char *data_dir;        /* created if missing, copied */
    uint32_t network_latency_ms; /* 0: dqlite's default */
    uint32_t snapshot_threshold; /* 0 (with trailing 0): dqlite's default */
    uint32_t snapshot_trailing;
} coord_node_config_t;

/*
 * Decides this node's dqlite id and keeps it in `data_dir`/node-id, so that a restarted node
 * comes back with the same id (dqlite requires it). Order: the id stored in the data dir
 * (a different `configured` id is an error: the data belongs to another node); else
 * `configured`; else 1 when not joining (node 1 bootstraps a new cluster); else an id derived
 * from `address` by dqlite_generate_node_id(). Creates `data_dir` if needed. *fresh is set
 * when the data dir held no id yet. Returns 0 or an AX_E* code with `errmsg`.
 */
int coord__node_resolve_id(const char *data_dir, uint64_t configured, int joining,
                           const char *address, uint64_t *id, int *fresh, char *errmsg);

/* Creates and starts the node; it runs on its own thread with its own loop (dqlite) and
 * accepts connections when this returns 0. On failure returns an AX_E* code with `errmsg`
 * and *out is NULL. */
int coord__node_start(const coord_node_config_t *cfg, coord_node_t **out, char *errmsg);

/* Stops the node (blocks until its thread has exited) and frees it. NULL does nothing. */
void coord__node_stop_free(coord_node_t *n);

/* ---- http.c: the HTTP listener (h2o on the coordinator's loop) --------------------------- */

typedef struct coord_http coord_http_t;

/* Appends the Prometheus text exposition to `out`. Returns 0 or AX_E*. Loop thread. */
typedef int (*coord_http_metrics_cb)(coord_http_t *http, ax_buf_t *out);

#define COORD_HTTP_MAX_METRICS (256 * 1024) /* bytes of one /metrics body */

/*
 * Listens on `address` ("host:port", port 0 picks a free port) on `loop`, serving
 * GET /metrics from `metrics` and a JSON 404 (`{"error":{...}}`) elsewhere. `data` is the
 * user context (coord__http_data). Returns 0 or AX_E* with `errmsg`; *out is NULL on error.
 */
int coord__http_start(uv_loop_t *loop, const char *address, coord_http_metrics_cb metrics,
                      void *data, coord_http_t **out, char *errmsg);

void *coord__http_data(coord_http_t *http);

/* The address actually bound ("127.0.0.1:41235"). */
const char *coord__http_address(const coord_http_t *http);

/* Requests served so far. */
uint64_t coord__http_requests(const coord_http_t *http);

/* Stops accepting and asks open connections to finish. Their handles close on their own;
 * the process exits after the loop stops (the coordinator does not wait for idle keep-alive
 * connections). NULL does nothing. */
void coord__http_stop(coord_http_t *http);

/* Appends one Prometheus metric family header and its sample lines (printf arguments) to `b`;
 * returns the error from the enclosing function when the buffer refuses it. */
#define METRIC(b, name, type, help, ...)                                                           \
    do {                                                                                           \
        int rv_ = ax_buf_printf(b, "# HELP " name " " help "\n# TYPE " name " " type "\n"         \
                                __VA_ARGS__);                                                      \
        if (rv_ != 0)                                                                              \
            return rv_;                                                                            \
    } while (0)

#endif /* AETHEX_COORDINATOR_INTERNAL_H */

/*
 * Coordinator mode compiled out (the build has no proto/ library): every entry point says
 * "not supported", and --coordinator is refused at start.
 */
#include <string.h>

#include "aethex/common/error.h"
#include "aethex/common/log.h"

#include "edge_internal.h"

bool edge_coord_enabled(const struct edge *e)
{
    return e->cfg.coordinator[0] != '\0';
}

int edge_coord_start(struct edge *e)
{
    if (!edge_coord_enabled(e))
        return 0;
    AX_LOG_E("edge coord", "this build has no RPC library (proto/): --coordinator unsupported");
    return AX_ENOTSUP;
}

void edge_coord_stop(struct edge *e)
{
    (void)e;
}

bool edge_coord_idle(const struct edge *e)
{
    (void)e;
    return true;
}

int edge_coord_lookup_origin(struct edge *e, const char *channel, edge_coord_origin_cb cb)
{
    (void)e;
    (void)channel;
    (void)cb;
    return AX_ENOTSUP;
}

int edge_coord_authorize(struct edge *e, struct rtmp_conn *conn, ax_slice_t key)
{
    (void)e;
    (void)conn;
    (void)key;
    return AX_ENOTSUP;
}

void edge_coord_authorize_cancel(struct edge *e, struct rtmp_conn *conn)
{
    (void)e;
    (void)conn;
}

void edge_coord_end_stream(struct edge *e, const char *stream_id, const char *reason)
{
    (void)e;
    (void)stream_id;
    (void)reason;
}

size_t edge_coord_metrics(struct edge *e, char *buf, size_t off, size_t cap)
{
    (void)e;
    (void)buf;
    (void)cap;
    return off;
}

void edge_coord_key_hash(ax_slice_t key, uint8_t out[32])
{
    (void)key;
    memset(out, 0, 32);
}

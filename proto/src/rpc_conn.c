/*
 * The framed connection both sides share (rpc_internal.h).
 */
#include <stdio.h>
#include <string.h>

#include "aethex/common/alloc.h"
#include "rpc_internal.h"

#define READ_CHUNK (64 * 1024)

struct write_req {
    uv_write_t req;
    struct proto_rpc__conn *conn;
    size_t len;
    uint8_t *data; /* owned */
};

int proto_rpc__conn_init(struct proto_rpc__conn *c, uv_loop_t *loop, const proto_rpc_limits_t *l)
{
    c->max_frame = l->max_frame;
    c->max_write_queue = l->max_write_queue;
    ax_buf_init(&c->rbuf, (size_t)l->max_frame + PROTO_RPC_FRAME_HEADER);
    snprintf(c->peer, sizeof c->peer, "?");
    int rv = uv_tcp_init(loop, &c->tcp);
    if (rv < 0)
        return rv;
    c->tcp_init = true;
    c->tcp.data = c;
    rv = uv_timer_init(loop, &c->timer);
    if (rv < 0)
        return rv;
    c->timer_init = true;
    c->timer.data = c;
    return 0;
}

void proto_rpc__conn_set_peer(struct proto_rpc__conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, host, sizeof host);
        snprintf(c->peer, sizeof c->peer, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, host, sizeof host);
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", host, ntohs(a->sin6_port));
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct proto_rpc__conn *c = h->data;
    if (--c->handles == 0)
        c->on_closed(c);
}

void proto_rpc__conn_close(struct proto_rpc__conn *c, int err, const char *why)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->on_dead != NULL)
        c->on_dead(c, err, why);
    c->handles = 0;
    if (c->tcp_init) {
        c->handles++;
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    }
    if (c->timer_init) {
        c->handles++;
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    }
    if (c->handles == 0)
        c->on_closed(c);
}

void proto_rpc__conn_release(struct proto_rpc__conn *c)
{
    ax_buf_close(&c->rbuf);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    /* A fresh chunk per read, freed in on_read: bytes beyond one frame are either parsed in
     * place or copied into rbuf, which is bounded by max_frame. */
    buf->base = ax_malloc(READ_CHUNK);
    buf->len = buf->base != NULL ? READ_CHUNK : 0;
}

/* Hands one frame body to the user. Returns 0 to go on, < 0 when the conn died. */
static int dispatch(struct proto_rpc__conn *c, ax_slice_t body)
{
    proto_rpc_envelope_t env;
    char why[AX_ERRMSG_LEN] = "";
    int rv = proto_rpc_envelope_decode(body, &env);
    if (rv < 0) {
        proto_rpc__conn_close(c, rv, "malformed envelope");
        return rv;
    }
    rv = c->on_frame(c, &env, why);
    if (rv < 0) {
        proto_rpc__conn_close(c, rv, why[0] != '\0' ? why : ax_strerror(rv));
        return rv;
    }
    return c->dead ? AX_ECLOSED : 0;
}

/* Feeds read bytes through the frame decoder, buffering only a partial frame. */
static void feed(struct proto_rpc__conn *c, const uint8_t *p, size_t n)
{
    char why[96];
    while (n > 0 && !c->dead) {
        ax_slice_t body;
        if (c->rbuf.len == 0) {
            int rv = proto_rpc_frame_decode(p, n, c->max_frame, &body);
            if (rv > 0) {
                p += rv;
                n -= (size_t)rv;
                if (dispatch(c, body) < 0)
                    return;
                continue;
            }
            if (rv < 0) {
                snprintf(why, sizeof why, "%s (declared %u bytes, max_frame %u)",
                         rv == AX_EMSGSIZE ? "oversized frame" : "empty frame",
                         n >= 4 ? ax_rd_be32(p) : 0, c->max_frame);
                proto_rpc__conn_close(c, rv, why);
                return;
            }
            /* Incomplete: n < 4 + N <= max_frame + 4, so it fits the buffer's limit. */
            if ((rv = ax_buf_append(&c->rbuf, p, n)) < 0)
                proto_rpc__conn_close(c, rv, "buffering a partial frame");
            return;
        }
        /* Complete the buffered header first, then exactly the rest of this frame. */
        size_t want = PROTO_RPC_FRAME_HEADER;
        if (c->rbuf.len >= PROTO_RPC_FRAME_HEADER)
            want += ax_rd_be32(c->rbuf.base); /* checked against max_frame when it arrived */
        size_t take = want - c->rbuf.len < n ? want - c->rbuf.len : n;
        int rv = ax_buf_append(&c->rbuf, p, take);
        if (rv < 0) {
            proto_rpc__conn_close(c, rv, "buffering a partial frame");
            return;
        }
        p += take;
        n -= take;
        rv = proto_rpc_frame_decode(c->rbuf.base, c->rbuf.len, c->max_frame, &body);
        if (rv < 0) {
            snprintf(why, sizeof why, "%s (declared %u bytes, max_frame %u)",
                     rv == AX_EMSGSIZE ? "oversized frame" : "empty frame",
                     ax_rd_be32(c->rbuf.base), c->max_frame);
            proto_rpc__conn_close(c, rv, why);
            return;
        }
        if (rv > 0) {
            rv = dispatch(c, body);
            ax_buf_reset(&c->rbuf);
            if (rv < 0)
                return;
        }
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct proto_rpc__conn *c = s->data;
    if (nread > 0)
        feed(c, (const uint8_t *)buf->base, (size_t)nread);
    else if (nread == UV_ENOBUFS)
        proto_rpc__conn_close(c, AX_ENOMEM, "out of memory reading");
    else if (nread == UV_EOF)
        proto_rpc__conn_close(c, AX_ECONNRESET, "closed by peer");
    else if (nread < 0)
        proto_rpc__conn_close(c, AX_ECONNRESET, uv_strerror((int)nread));
    ax_free(buf->base);
}

int proto_rpc__conn_start(struct proto_rpc__conn *c)
{
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = ax_container_of(req, struct write_req, req);
    struct proto_rpc__conn *c = w->conn;
    c->queued -= w->len;
    ax_free(w->data);
    ax_free(w);
    if (status < 0 && status != UV_ECANCELED)
        proto_rpc__conn_close(c, AX_ECONNRESET, uv_strerror(status));
}

int proto_rpc__conn_send(struct proto_rpc__conn *c, const proto_rpc_envelope_t *env)
{
    if (c->dead)
        return AX_ECLOSED;
    ax_buf_t b;
    ax_buf_init(&b, (size_t)c->max_frame + PROTO_RPC_FRAME_HEADER);
    int rv = proto_rpc_frame_encode(env, c->max_frame, &b);
    if (rv < 0) {
        ax_buf_close(&b);
        return rv;
    }
    struct write_req *w = ax_malloc(sizeof *w);
    if (w == NULL) {
        ax_buf_close(&b);
        return AX_ENOMEM;
    }
    w->conn = c;
    w->len = b.len;
    w->data = b.base; /* taken from the buffer */
    if (c->queued + w->len > c->max_write_queue) {
        ax_free(w->data);
        ax_free(w);
        proto_rpc__conn_close(c, AX_ENOSPC, "write queue full (peer not reading)");
        return 0;
    }
    uv_buf_t ub = uv_buf_init((char *)w->data, (unsigned)w->len);
    rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write);
    if (rv < 0) {
        ax_free(w->data);
        ax_free(w);
        proto_rpc__conn_close(c, AX_ECONNRESET, uv_strerror(rv));
        return 0;
    }
    c->queued += w->len;
    return 0;
}

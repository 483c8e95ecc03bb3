/*
 * h2o 2.2 on the edge's own loop: a cleartext listener (HTTP/1.1 and HTTP/2 with prior
 * knowledge, for loopback) and, when configured, a TLS listener offering h2 and http/1.1
 * by ALPN. One handler at "/" routes every request:
 *
 *   OPTIONS *                    -> 204 with CORS preflight headers
 *   GET|HEAD /metrics            -> Prometheus text
 *   GET|HEAD /live/<channel>/... -> channel.c (playlists, init segments, segments, parts)
 *   anything else                -> 400 (malformed, "..", bad characters), 404, 405, 414
 *
 * Slowloris and idle peers are h2o's business: http1.req_timeout bounds how long a request
 * may take to arrive, http2.idle_timeout how long a connection may sit idle. An HTTP
 * connection is counted from accept to h2o_socket_close (socket on_close hook), which is
 * how max-http-conns is enforced and how a graceful stop knows when h2o is done.
 */
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "aethex/common/log.h"

#include "edge_internal.h"

struct edge_handler {
    h2o_handler_t super;
    struct edge *edge;
};

static h2o_generator_t static_generator = {NULL, NULL};

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 414:
        return "URI Too Long";
    case 502:
        return "Bad Gateway";
    case 504:
        return "Gateway Timeout";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

void edge_http_send(struct edge *e, h2o_req_t *req, int status, const char *content_type,
                    const char *cache_control, h2o_iovec_t *bufs, size_t nbufs)
{
    size_t total = 0;
    for (size_t i = 0; i < nbufs; i++)
        total += bufs[i].len;
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = total;
    if (content_type)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    if (cache_control)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, cache_control,
                       strlen(cache_control));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   H2O_STRLIT("*"));
    e->m.http_status[status / 100 < 6 ? status / 100 : 5]++;
    h2o_start_response(req, &static_generator);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    e->m.http_bytes_out += total;
    h2o_send(req, bufs, nbufs, H2O_SEND_STATE_FINAL);
}

void edge_http_send_error(struct edge *e, h2o_req_t *req, int status, const char *reason,
                          const char *cache_control)
{
    size_t n = strlen(reason);
    char *body = h2o_mem_alloc_pool(&req->pool, n + 1);
    memcpy(body, reason, n);
    body[n] = '\n';
    h2o_iovec_t b = h2o_iovec_init(body, n + 1);
    edge_http_send(e, req, status, "text/plain; charset=utf-8",
                   cache_control ? cache_control : "no-store", &b, 1);
}

struct release {
    void (*fn)(void *p);
    void *p;
};

static void on_release(void *x)
{
    struct release *r = x;
    r->fn(r->p);
}

void edge_http_on_done(h2o_req_t *req, void (*release)(void *p), void *p)
{
    /* A shared chunk linked to the request's pool: h2o drops that link when it disposes of
     * the request, i.e. after the last byte was written or the connection went away. */
    struct release *r = h2o_mem_alloc_shared(&req->pool, sizeof *r, on_release);
    r->fn = release;
    r->p = p;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct edge *e = ((struct edge_handler *)self)->edge;
    e->m.http_requests++;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
        /* CORS preflight (hls.js sends none for simple GETs, but fetch() with headers does). */
        h2o_add_header_by_str(&req->pool, &req->res.headers,
                              H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                              H2O_STRLIT("GET, HEAD, OPTIONS"));
        h2o_add_header_by_str(&req->pool, &req->res.headers,
                              H2O_STRLIT("access-control-allow-headers"), 0, NULL, H2O_STRLIT("*"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"),
                              0, NULL, H2O_STRLIT("86400"));
        edge_http_send(e, req, 204, NULL, NULL, NULL, 0);
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD, OPTIONS"));
        edge_http_send_error(e, req, 405, "method not allowed", NULL);
        return 0;
    }
    ax_slice_t path = AX_SLICE(req->path.base, req->path.len);
    if (path.len > e->cfg.http_max_path) {
        edge_http_send_error(e, req, 414, "request path too long", NULL);
        return 0;
    }
    ax_slice_t channel, rest, query;
    switch (edge_http_route(path, e->cfg.http_max_path, &channel, &rest, &query)) {
    case EDGE_ROUTE_BAD:
        AX_LOG_D("edge http", "bad path refused (%zu bytes)", path.len);
        edge_http_send_error(e, req, 400, "bad request path", NULL);
        return 0;
    case EDGE_ROUTE_NONE:
        edge_http_send_error(e, req, 404, "not found", NULL);
        return 0;
    case EDGE_ROUTE_METRICS: {
        size_t cap = 8192 + (size_t)e->nchannels * 1024;
        char *buf = h2o_mem_alloc_pool(&req->pool, cap);
        size_t n = edge_metrics_render(e, buf, cap);
        h2o_iovec_t b = h2o_iovec_init(buf, n);
        edge_http_send(e, req, 200, "text/plain; version=0.0.4", "no-store", &b, 1);
        return 0;
    }
    case EDGE_ROUTE_LIVE:
        edge_viewers_seen(e, channel, req->conn->id);
        return edge_channel_serve(e, req, channel, rest, query);
    }
    return -1;
}

/* --- connections ------------------------------------------------------------------------ */

struct http_conn {
    h2o_linklist_t link; /* in edge->http_conns */
    struct edge *edge;
    h2o_socket_t *sock; /* owned by h2o */
    bool shut;          /* shutdown(2) issued at stop */
};

static void on_sock_close(void *data)
{
    struct http_conn *hc = data;
    hc->edge->m.http_conns_active--;
    h2o_linklist_unlink(&hc->link);
    free(hc);
}

static void accept_on(struct edge *e, uv_stream_t *listener, h2o_accept_ctx_t *actx)
{
    uv_tcp_t *tcp = ax_xmalloc(sizeof *tcp);
    uv_tcp_init(e->loop, tcp);
    if (uv_accept(listener, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    if (e->stopping || e->m.http_conns_active >= e->cfg.max_http_conns) {
        e->m.http_conns_refused++;
        AX_LOG_W("edge http", "connection refused: %s",
                 e->stopping ? "stopping" : "max-http-conns reached");
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)tcp, (uv_close_cb)free);
    struct http_conn *hc = ax_xcalloc(1, sizeof *hc);
    hc->edge = e;
    hc->sock = sock;
    h2o_linklist_insert(&e->http_conns, &hc->link);
    sock->on_close.cb = on_sock_close;
    sock->on_close.data = hc;
    e->m.http_conns_accepted++;
    e->m.http_conns_active++;
    h2o_accept(actx, sock);
}

static void on_http_conn(uv_stream_t *listener, int status)
{
    struct edge *e = ax_container_of((uv_tcp_t *)listener, struct edge, http_listener);
    if (status == 0)
        accept_on(e, listener, &e->accept_ctx);
}

static void on_tls_conn(uv_stream_t *listener, int status)
{
    struct edge *e = ax_container_of((uv_tcp_t *)listener, struct edge, tls_listener);
    if (status == 0)
        accept_on(e, listener, &e->tls_accept_ctx);
}

static int listen_on(struct edge *e, uv_tcp_t *tcp, edge_listen_t *l, uv_connection_cb cb,
                     const char *what)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(l->host, l->port, (struct sockaddr_in *)&addr);
    if (rc < 0)
        rc = uv_ip6_addr(l->host, l->port, (struct sockaddr_in6 *)&addr);
    if (rc < 0) {
        AX_LOG_E("edge http", "%s address %s: %s", what, l->host, uv_strerror(rc));
        return rc;
    }
    uv_tcp_init(e->loop, tcp);
    rc = uv_tcp_bind(tcp, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)tcp, 1024, cb);
    if (rc < 0) {
        AX_LOG_E("edge http", "%s listen %s:%d: %s", what, l->host, l->port, uv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(tcp, (struct sockaddr *)&bound, &len);
    l->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    AX_LOG_I("edge http", "%s listening on %s:%d", what, l->host, l->port);
    return 0;
}

static int setup_tls(struct edge *e)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return AX_ENOMEM;
    e->ssl_ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, e->cfg.tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, e->cfg.tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char msg[256];
        ERR_error_string_n(ERR_get_error(), msg, sizeof msg);
        AX_LOG_E("edge http", "tls cert=%s key=%s: %s", e->cfg.tls_cert, e->cfg.tls_key, msg);
        return AX_EINVAL;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return 0;
}

int edge_http_start(struct edge *e)
{
    h2o_config_init(&e->h2o_config);
    e->h2o_config.server_name = h2o_iovec_init(H2O_STRLIT("aethex-edge"));
    e->h2o_config.http1.req_timeout = e->cfg.http_req_timeout_ms;
    e->h2o_config.http2.idle_timeout = e->cfg.http2_idle_timeout_ms;
    e->h2o_config.http2.graceful_shutdown_timeout = e->cfg.shutdown_grace_ms;
    e->h2o_config.handshake_timeout = e->cfg.http_req_timeout_ms;
    e->h2o_config.max_request_entity_size = 0;
    h2o_hostconf_t *host =
        h2o_config_register_host(&e->h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct edge_handler *h = (struct edge_handler *)h2o_create_handler(path, sizeof *h);
    h->super.on_req = on_req;
    h->edge = e;
    h2o_context_init(&e->h2o_ctx, e->loop, &e->h2o_config);
    e->h2o_ready = true;

    e->accept_ctx.ctx = &e->h2o_ctx;
    e->accept_ctx.hosts = e->h2o_config.hosts;
    int rc = 0;
    if (e->cfg.http.port >= 0) {
        e->http_listening = true;
        rc = listen_on(e, &e->http_listener, &e->cfg.http, on_http_conn, "http");
        if (rc < 0)
            return rc;
    }
    if (e->cfg.tls.port >= 0) {
        if (!e->cfg.tls_cert[0] || !e->cfg.tls_key[0]) {
            AX_LOG_E("edge http", "tls-listen needs tls-cert and tls-key");
            return AX_EINVAL;
        }
        rc = setup_tls(e);
        if (rc < 0)
            return rc;
        e->tls_accept_ctx = e->accept_ctx;
        e->tls_accept_ctx.ssl_ctx = e->ssl_ctx;
        e->tls_listening = true;
        rc = listen_on(e, &e->tls_listener, &e->cfg.tls, on_tls_conn, "https");
    }
    return rc;
}

void edge_http_stop(struct edge *e)
{
    if (e->http_listening) {
        uv_close((uv_handle_t *)&e->http_listener, NULL);
        e->http_listening = false;
    }
    if (e->tls_listening) {
        uv_close((uv_handle_t *)&e->tls_listener, NULL);
        e->tls_listening = false;
    }
    if (e->h2o_ready)
        h2o_context_request_shutdown(&e->h2o_ctx);
}

bool edge_http_idle(const struct edge *e)
{
    return e->http_conns.next == &e->http_conns;
}

void edge_http_stop_sweep(struct edge *e, bool force)
{
    /*
     * h2o 2.2 stops keep-alive after a shutdown request and sends GOAWAY on HTTP/2, but an
     * idle HTTP/1.1 connection (or an HTTP/2 peer that ignores GOAWAY) would stay until its
     * idle timeout. Every response we make is complete when the handler returns (held ones
     * were answered when the stop began), so a socket that is not writing has nothing in
     * flight: shutting it down makes h2o read EOF and close it through its own path.
     */
    for (h2o_linklist_t *n = e->http_conns.next; n != &e->http_conns; n = n->next) {
        struct http_conn *hc = H2O_STRUCT_FROM_MEMBER(struct http_conn, link, n);
        if (hc->shut || (!force && h2o_socket_is_writing(hc->sock)))
            continue;
        int fd = h2o_socket_get_fd(hc->sock);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
        hc->shut = true;
    }
}

void edge_http_dispose(struct edge *e)
{
    if (e->h2o_ready && !edge_http_idle(e)) {
        /* Disposing of a context with live connections trips h2o's asserts: leave it to the
         * process exit (the caller closes the loop's handles). */
        AX_LOG_E("edge http", "%llu connection(s) still open at dispose; h2o context leaked",
                 (unsigned long long)e->m.http_conns_active);
        e->h2o_ready = false;
    }
    if (e->h2o_ready) {
        /* h2o_context_request_shutdown() armed HTTP/2's graceful-shutdown timer;
         * h2o_context_dispose() asserts that no timeout entry is still linked. */
        if (h2o_timeout_is_linked(&e->h2o_ctx.http2._graceful_shutdown_timeout))
            h2o_timeout_unlink(&e->h2o_ctx.http2._graceful_shutdown_timeout);
        h2o_context_dispose(&e->h2o_ctx);
        h2o_config_dispose(&e->h2o_config);
        e->h2o_ready = false;
    }
    if (e->ssl_ctx) {
        SSL_CTX_free(e->ssl_ctx);
        e->ssl_ctx = NULL;
    }
}

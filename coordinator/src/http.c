/*
 * The coordinator's HTTP listener: h2o 2.2.5 (Debian's libuv build) on the coordinator's own
 * loop. Today it serves GET /metrics (Prometheus text format 0.0.4); the JSON API and the
 * watch redirects will be handlers beside it. Everything else gets our one error shape,
 * {"error":{"code":"...","message":"..."}} (DESIGN.md, Protocols).
 */
#include "coordinator_internal.h"

#include <stdio.h>
#include <string.h>

#include <h2o.h>

#include "aethex/common/alloc.h"
#include "aethex/common/log.h"

struct coord_http {
    uv_loop_t *loop;
    uv_tcp_t listener;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    coord_http_metrics_cb metrics;
    void *data;
    char address[64];
    uint64_t requests;
    int listening;
};

struct handler {
    h2o_handler_t super;
    struct coord_http *http;
};

static h2o_generator_t generator = {NULL, NULL};

static void respond(h2o_req_t *req, int status, const char *reason, const char *type,
                    const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_start_response(req, &generator);
    h2o_iovec_t b = h2o_iovec_init(body, len);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &b, 1, H2O_SEND_STATE_FINAL);
}

static void respond_error(h2o_req_t *req, int status, const char *reason, const char *code,
                          const char *message)
{
    char tmp[256];
    int n = snprintf(tmp, sizeof tmp, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
                     message);
    char *body = h2o_mem_alloc_pool(&req->pool, (size_t)n);
    memcpy(body, tmp, (size_t)n);
    respond(req, status, reason, "application/json", body, (size_t)n);
}

static void serve_metrics(struct coord_http *h, h2o_req_t *req)
{
    ax_buf_t out;
    ax_buf_init(&out, COORD_HTTP_MAX_METRICS);
    int rv = h->metrics ? h->metrics(h, &out) : 0;
    if (rv != 0) {
        ax_buf_close(&out);
        AX_LOG_W("coordinator", "http: /metrics: %s", ax_strerror(rv));
        respond_error(req, 500, "Internal Server Error", "internal", "metrics unavailable");
        return;
    }
    /* The body lives in the request's pool: it goes when the response is done. */
    char *body = h2o_mem_alloc_pool(&req->pool, out.len ? out.len : 1);
    if (out.len)
        memcpy(body, out.base, out.len);
    size_t len = out.len;
    ax_buf_close(&out);
    respond(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, len);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct coord_http *h = ((struct handler *)self)->http;
    h->requests++;
    int get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
              h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/metrics"))) {
        if (!get) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                           H2O_STRLIT("GET, HEAD"));
            respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET or HEAD");
            return 0;
        }
        serve_metrics(h, req);
        return 0;
    }
    respond_error(req, 404, "Not Found", "not_found", "no such resource");
    return 0;
}

static void on_accept(uv_stream_t *listener, int status)
{
    struct coord_http *h = ax_container_of((uv_tcp_t *)listener, struct coord_http, listener);
    if (status != 0) {
        AX_LOG_W("coordinator", "http: accept: %s", uv_strerror(status));
        return;
    }
    uv_tcp_t *conn = ax_xmalloc(sizeof *conn);
    uv_tcp_init(h->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)ax_free);
        return;
    }
    /* h2o owns the handle from here and frees it with ax_free when the socket closes. */
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)ax_free);
    h2o_accept(&h->accept_ctx, sock);
}

int coord__http_start(uv_loop_t *loop, const char *address, coord_http_metrics_cb metrics,
                      void *data, coord_http_t **out, char *errmsg)
{
    *out = NULL;
    char host[64];
    const char *colon = strrchr(address, ':');
    size_t hlen = colon ? (size_t)(colon - address) : 0;
    if (!colon || hlen == 0 || hlen >= sizeof host) {
        snprintf(errmsg, AX_ERRMSG_LEN, "http: bad address '%.64s'", address);
        return AX_EINVAL;
    }
    memcpy(host, address, hlen);
    host[hlen] = '\0';
    int port = atoi(colon + 1);
    struct sockaddr_storage sa;
    int rv;
    if (host[0] == '[') {
        host[hlen - 1] = '\0';
        rv = uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)&sa);
    } else {
        rv = uv_ip4_addr(host, port, (struct sockaddr_in *)&sa);
    }
    if (rv != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "http: bad address '%.64s'", address);
        return AX_EINVAL;
    }

    struct coord_http *h = ax_xcalloc(1, sizeof *h);
    h->loop = loop;
    h->metrics = metrics;
    h->data = data;
    h2o_config_init(&h->config);
    h->config.server_name = h2o_iovec_init(H2O_STRLIT("aethex-coordinator"));
    h2o_hostconf_t *host_conf =
        h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host_conf, "/", 0);
    struct handler *hd = (struct handler *)h2o_create_handler(path, sizeof *hd);
    hd->super.on_req = on_req;
    hd->http = h;
    h2o_context_init(&h->ctx, loop, &h->config);
    h->accept_ctx.ctx = &h->ctx;
    h->accept_ctx.hosts = h->config.hosts;

    uv_tcp_init(loop, &h->listener);
    if ((rv = uv_tcp_bind(&h->listener, (struct sockaddr *)&sa, 0)) != 0 ||
        (rv = uv_listen((uv_stream_t *)&h->listener, 128, on_accept)) != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "http: listen %.64s: %s", address, uv_strerror(rv));
        /* The listener was initialised: it must close through the loop; the rest of h is
         * deliberately kept (h2o's context holds timers on the loop) until the process ends. */
        uv_close((uv_handle_t *)&h->listener, NULL);
        return rv;
    }
    h->listening = 1;
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &blen);
    char ip[48] = "?";
    if (bound.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof ip);
        snprintf(h->address, sizeof h->address, "[%s]:%d", ip,
                 ntohs(((struct sockaddr_in6 *)&bound)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof ip);
        snprintf(h->address, sizeof h->address, "%s:%d", ip,
                 ntohs(((struct sockaddr_in *)&bound)->sin_port));
    }
    *out = h;
    return 0;
}

void *coord__http_data(coord_http_t *h)
{
    return h->data;
}

const char *coord__http_address(const coord_http_t *h)
{
    return h->address;
}

uint64_t coord__http_requests(const coord_http_t *h)
{
    return h->requests;
}

void coord__http_stop(coord_http_t *h)
{
    if (!h || !h->listening)
        return;
    h->listening = 0;
    uv_close((uv_handle_t *)&h->listener, NULL);
    h2o_context_request_shutdown(&h->ctx);
}

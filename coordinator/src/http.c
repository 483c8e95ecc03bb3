/*
 * The coordinator's HTTP listener: h2o 2.2.5 (Debian's libuv build) on the coordinator's own
 * loop. It serves GET /metrics (Prometheus text format 0.0.4), the watch redirect
 * GET /live/<slug>/index.m3u8 -> 302 to the chosen edge, and the JSON API GET /api/v1/route
 * and GET /api/v1/edges (docs/routing.md, docs/api.md), all answered from the in-memory
 * routing view (route_view.h), never from the database. Everything else gets our one error
 * shape, {"error":{"code":"...","message":"..."}} (DESIGN.md, Protocols).
 */
#include "coordinator_internal.h"

#include <stdio.h>
#include <string.h>

#include <h2o.h>
#include <jansson.h>

#include "aethex/common/alloc.h"
#include "aethex/common/log.h"
#include "route_view.h"

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
    coord_route_view_t *route_view; /* borrowed; NULL until set: routes answer 503 */
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
    if (rv == 0 && h->route_view)
        rv = coord__route_view_metrics(h->route_view, &out);
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

/* ---- routing (docs/routing.md) ------------------------------------------------------------ */

void coord__http_set_route_view(struct coord_http *h, coord_route_view_t *view)
{
    h->route_view = view;
}

/* Routing answers change every second and are read by browsers on other origins. */
static void add_route_headers(h2o_req_t *req)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   H2O_STRLIT("*"));
}

static void respond_json(h2o_req_t *req, int status, const char *reason, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text) {
        respond_error(req, 500, "Internal Server Error", "internal", "out of memory");
        return;
    }
    size_t len = strlen(text);
    char *body = h2o_mem_alloc_pool(&req->pool, len + 1);
    memcpy(body, text, len);
    body[len] = '\n';
    free(text); /* jansson's allocator is libc's */
    respond(req, status, reason, "application/json", body, len + 1);
}

/* The routing view's error statuses, as HTTP. */
static void respond_route_error(h2o_req_t *req, int status, const char *slug)
{
    char msg[160];
    if (status == AX_ENOENT) {
        snprintf(msg, sizeof msg, "channel '%s' is unknown or not live", slug);
        respond_error(req, 404, "Not Found", "channel_not_live", msg);
    } else if (status == AX_EAGAIN) {
        snprintf(msg, sizeof msg, "no edge can take a viewer of '%s' now", slug);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("2"));
        respond_error(req, 503, "Service Unavailable", "no_edge", msg);
    } else if (status == AX_EINVAL) {
        respond_error(req, 400, "Bad Request", "bad_region",
                      "region: 1-32 bytes of letters, digits, '-', '_' or '.'");
    } else { /* AX_EBADSTATE: no view yet */
        respond_error(req, 503, "Service Unavailable", "not_ready", "routing is not ready");
    }
}

/* Splits req->path (raw, as sent: not normalised, so "/live/../x" is refused rather than
 * rewritten) into path and query. */
static void split_target(h2o_req_t *req, h2o_iovec_t *path, h2o_iovec_t *query)
{
    *path = req->path;
    *query = h2o_iovec_init(NULL, 0);
    if (req->query_at != SIZE_MAX && req->query_at < req->path.len) {
        path->len = req->query_at;
        *query =
            h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
    }
}

static int route_request(struct coord_http *h, h2o_req_t *req, const char *slug, size_t slug_len,
                         h2o_iovec_t query, coord_route_answer_t *a)
{
    const char *region = NULL;
    size_t region_len = 0;
    if (coord_route_query_param(query.base, query.len, "region", &region, &region_len) != 0)
        region = NULL;
    struct sockaddr_storage peer;
    memset(&peer, 0, sizeof peer);
    socklen_t plen = req->conn->callbacks->get_peername
                         ? req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&peer)
                         : 0;
    int rv = coord__route_view_route(h->route_view, slug, slug_len, region, region_len,
                                     plen ? (struct sockaddr *)&peer : NULL, a);
    if (rv != 0 && rv != AX_ENOENT && rv != AX_EAGAIN)
        a->status = rv;
    return rv;
}

static void serve_watch(struct coord_http *h, h2o_req_t *req, const char *slug, size_t slug_len,
                        h2o_iovec_t query)
{
    add_route_headers(req);
    char name[COORD_ROUTE_SLUG_MAX + 1];
    memcpy(name, slug, slug_len);
    name[slug_len] = '\0';
    if (!h->route_view) {
        respond_route_error(req, AX_EBADSTATE, name);
        return;
    }
    coord_route_answer_t a;
    if (route_request(h, req, slug, slug_len, query, &a) != 0) {
        respond_route_error(req, a.status, name);
        return;
    }
    size_t ulen = strlen(a.url);
    char *loc = h2o_mem_alloc_pool(&req->pool, ulen);
    memcpy(loc, a.url, ulen);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, loc, ulen);
    AX_LOG_D("coordinator", "route: channel=%s region=%s -> edge=%s (%s)", a.channel,
             a.viewer_region[0] ? a.viewer_region : "-", a.edge_id, coord_route_tier_name(a.tier));
    respond(req, 302, "Found", "text/plain; charset=utf-8", "", 0);
}

static void serve_api_route(struct coord_http *h, h2o_req_t *req, h2o_iovec_t query)
{
    add_route_headers(req);
    const char *slug;
    size_t slug_len;
    if (coord_route_query_param(query.base, query.len, "channel", &slug, &slug_len) != 0 ||
        coord_route_check_slug(slug, slug_len) != 0) {
        respond_error(req, 400, "Bad Request", "bad_channel",
                      "channel: 1-64 bytes of letters, digits, '-' or '_'");
        return;
    }
    char name[COORD_ROUTE_SLUG_MAX + 1];
    memcpy(name, slug, slug_len);
    name[slug_len] = '\0';
    if (!h->route_view) {
        respond_route_error(req, AX_EBADSTATE, name);
        return;
    }
    coord_route_answer_t a;
    if (route_request(h, req, slug, slug_len, query, &a) != 0) {
        respond_route_error(req, a.status, name);
        return;
    }
    static const char *const source[] = {"none", "query", "cidr"};
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s, s:s}", "channel", a.channel, "edge_id",
                  a.edge_id, "region", a.edge_region, "url", a.url, "origin_edge_id",
                  a.origin_edge_id[0] ? a.origin_edge_id : NULL, "viewer_region",
                  a.viewer_region[0] ? a.viewer_region : NULL, "viewer_region_source",
                  source[a.region_source], "tier", coord_route_tier_name(a.tier));
    if (!o) {
        respond_error(req, 500, "Internal Server Error", "internal", "out of memory");
        return;
    }
    respond_json(req, 200, "OK", o);
}

static void serve_api_edges(struct coord_http *h, h2o_req_t *req)
{
    add_route_headers(req);
    if (!h->route_view) {
        respond_route_error(req, AX_EBADSTATE, "");
        return;
    }
    size_t n;
    uint64_t wall;
    const coord_view_edge_t *e = coord__route_view_edges(h->route_view, &n, &wall);
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        json_t *x =
            json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:f, s:o?}", "id", e[i].id,
                      "region", e[i].region, "hls_base_url", e[i].hls_base_url, "status",
                      e[i].status, "healthy", coord__route_view_edge_healthy(h->route_view, &e[i]),
                      "capacity", (json_int_t)e[i].capacity, "viewers", (json_int_t)e[i].viewers,
                      "live_streams", (json_int_t)e[i].live_streams, "last_heartbeat_ms",
                      (json_int_t)e[i].last_heartbeat_wall_ms, "load", e[i].load_permille / 1000.0,
                      "heartbeat_age_ms",
                      e[i].last_heartbeat_wall_ms
                          ? json_integer(wall > e[i].last_heartbeat_wall_ms
                                             ? (json_int_t)(wall - e[i].last_heartbeat_wall_ms)
                                             : 0)
                          : NULL);
        if (!x || json_array_append_new(list, x) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    json_t *o = list ? json_pack("{s:o, s:s}", "edges", list, "source",
                                 coord__route_view_edges_source(h->route_view))
                     : NULL;
    if (!o) {
        respond_error(req, 500, "Internal Server Error", "internal", "out of memory");
        return;
    }
    respond_json(req, 200, "OK", o);
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
    h2o_iovec_t path, query;
    split_target(req, &path, &query);
    const char *slug;
    size_t slug_len;
    int live = coord_route_parse_live_path(path.base, path.len, &slug, &slug_len);
    int api_route = h2o_memis(path.base, path.len, H2O_STRLIT("/api/v1/route"));
    int api_edges = h2o_memis(path.base, path.len, H2O_STRLIT("/api/v1/edges"));
    if (live != AX_ENOENT || api_route || api_edges) {
        if (!get) {
            add_route_headers(req);
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                           H2O_STRLIT("GET, HEAD"));
            respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET or HEAD");
        } else if (live == AX_EINVAL) {
            add_route_headers(req);
            respond_error(req, 400, "Bad Request", "bad_channel",
                          "channel: 1-64 bytes of letters, digits, '-' or '_'");
        } else if (live == 0) {
            serve_watch(h, req, slug, slug_len, query);
        } else if (api_route) {
            serve_api_route(h, req, query);
        } else {
            serve_api_edges(h, req);
        }
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

/*
 * The relay: an edge that is not a channel's origin serves /live/<slug>/... by pulling each
 * playlist, init segment, segment and part from the origin edge once, and serving every
 * local viewer from that copy.
 *
 * Where the origin is: the coordinator's LookupChannel (coord.c) names the origin's public
 * HLS base URL; `--relay-origin URL` fixes one origin for every channel not published here
 * (tests, a single-origin setup without a coordinator).
 *
 * One entry per upstream resource, keyed by the path under /live/<slug>/ plus the canonical
 * LL-HLS query (_HLS_msn, _HLS_part, _HLS_skip re-rendered from the parsed values, so
 * "?_HLS_part=1&_HLS_msn=5" and "?_HLS_msn=5&_HLS_part=1" are one key). However many viewers
 * ask for a key, one upstream request is made (single-flight): the first viewer starts the
 * pull, the others wait on the entry. A blocking reload is forwarded upstream once per
 * (rendition, msn, part) and the origin holds it; the answer goes to every local waiter.
 *
 * A pull (struct relay_entry):
 *
 *   +------------+ socket   +------+ headers  +------+ end of body  +-------+
 *   | CONNECTING | -------> | HEAD | -------> | BODY | -----------> | READY |
 *   +------------+          +------+          +------+ (no body:    +-------+
 *         |                    |                 |     from HEAD)       |
 *         |  connect error, HTTP error, body over relay-max-object,    | stale, idle or over
 *         |  relay-timeout-ms (sweep), edge stopping                    | relay-max-bytes
 *         +-------------------------------+-----------------------------+ (and no waiter)
 *                                         v                             v
 *                                     +--------+                   +-------+
 *                                     | FAILED | ----------------> | FREED |
 *                                     +--------+ waiters answered  +-------+
 *
 * | state      | upstream           | viewers                   | leaves when               |
 * |------------|--------------------|---------------------------|---------------------------|
 * | CONNECTING | socket from pool   | wait on the entry         | socket ready / error      |
 * | HEAD       | request sent       | wait                      | status line + headers     |
 * | BODY       | reading            | wait                      | end of body / error       |
 * | READY      | done (socket back  | answered at once from the | evicted (sweep)           |
 * |            | to the pool)       | copy while fresh          |                           |
 * | FAILED     | cancelled / closed | answered 502/504, freed   | at once                   |
 *
 * Freshness follows the origin's Cache-Control: "immutable" (parts, segments, init) stays
 * until idle for relay-idle-ms or evicted under relay-max-bytes (least recently used first);
 * "max-age=N" (playlists) is fresh N seconds after arrival, then the next viewer pulls a new
 * copy. Non-200 answers are given to the viewers that waited for them and never cached. An
 * origin that cannot be reached (connect error) is marked down for RELAY_DOWN_MS: viewers get
 * 503 at once meanwhile, then the next request tries again (and, with a coordinator, looks
 * the origin up again first: the channel may have moved).
 *
 * HTTP client: h2o 2.2.5's h2o_http1client on the edge's loop, with one h2o_socketpool per
 * origin address (keep-alive connections reused across pulls). It already handles
 * Content-Length and chunked bodies, keep-alive return to the pool and an I/O timeout, on the
 * same loop as the server, and is what h2o's own proxy uses; an own client would repeat
 * that for no gain. Origins are addressed by IP literal (no resolver on the loop).
 */
#include <stdio.h>
#include <string.h>

#include <h2o/http1client.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "aethex/common/log.h"
#include "aethex/common/sm.h"
#include "aethex/media/hls.h"

#include "edge_internal.h"

#define RELAY_KEY_MAX 160
#define RELAY_DOWN_MS 1000
#define RELAY_MAX_ENTRIES 4096 /* per channel */
#define RELAY_HDR_MAX 96

enum pull_state {
    PULL_CONNECTING,
    PULL_HEAD,
    PULL_BODY,
    PULL_READY,
    PULL_FAILED,
    PULL_STATE_COUNT
};

static const struct ax_sm_conf pull_states[PULL_STATE_COUNT] = {
    [PULL_CONNECTING] = {"connecting", AX_SM_BIT(PULL_HEAD) | AX_SM_BIT(PULL_FAILED)},
    [PULL_HEAD] = {"head", AX_SM_BIT(PULL_BODY) | AX_SM_BIT(PULL_READY) | AX_SM_BIT(PULL_FAILED)},
    [PULL_BODY] = {"body", AX_SM_BIT(PULL_READY) | AX_SM_BIT(PULL_FAILED)},
    [PULL_READY] = {"ready", 0},
    [PULL_FAILED] = {"failed", 0},
};

const char *edge_relay_pull_state_name(int state)
{
    return state >= 0 && state < PULL_STATE_COUNT ? pull_states[state].name : "?";
}

/* Bytes of one upstream answer, shared by every viewer served from it. */
struct relay_body {
    uint32_t refs;
    size_t len, cap;
    uint8_t *data; /* owned */
};

struct relay_origin {
    h2o_linklist_t link; /* in relay->origins */
    char url[EDGE_PATH_LEN];
    char host[EDGE_HOST_LEN];
    uint16_t port;
    char prefix[EDGE_PATH_LEN]; /* path before /live/, no trailing slash */
    h2o_socketpool_t pool;
    uint64_t down_until_ms;
};

struct relay_chan {
    h2o_linklist_t link; /* in relay->chans */
    struct edge_relay *relay;
    char name[EDGE_CHANNEL_MAX + 1];
    struct relay_origin *origin; /* borrowed from relay->origins; NULL until known */
    bool resolving;              /* a coordinator lookup is in flight */
    h2o_linklist_t resolve_waiters; /* struct relay_wait: waiting for the origin */
    h2o_linklist_t entries;         /* struct relay_entry */
    uint32_t nentries;
    uint64_t last_used_ms;
    uint64_t lookup_ms; /* when the origin was last looked up */
};

struct relay_entry {
    h2o_linklist_t link; /* in chan->entries */
    struct relay_chan *chan;
    ax_sm_t sm;
    char key[RELAY_KEY_MAX]; /* "<rest>[?<canonical query>]" */
    h2o_http1client_t *client; /* while CONNECTING..BODY */
    h2o_iovec_t reqbuf;        /* the request text, owned */
    int status;
    char ctype[RELAY_HDR_MAX];
    char cc[RELAY_HDR_MAX];
    bool immutable;
    uint64_t started_ms;
    uint64_t fresh_until_ms; /* READY: serve from the copy until then */
    uint64_t last_used_ms;
    struct relay_body *body; /* owned reference */
    h2o_linklist_t waiters;  /* struct relay_wait */
};

/* A viewer's request waiting for an entry (or for the channel's origin). In the request's
 * pool: a viewer that goes away unlinks itself in the dispose hook. */
struct relay_wait {
    h2o_linklist_t link;
    h2o_req_t *req;
    struct edge *edge;
    struct relay_chan *chan;
    char key[RELAY_KEY_MAX];
    char upstream_path[RELAY_KEY_MAX + EDGE_CHANNEL_MAX + 16];
};

struct edge_relay {
    struct edge *edge;
    h2o_linklist_t origins;
    h2o_linklist_t chans;
    h2o_http1client_ctx_t client_ctx;
    h2o_timeout_t io_timeout;
    size_t bytes; /* body bytes held by READY entries */
    struct relay_origin *fixed; /* --relay-origin */
};

/* --- bodies ------------------------------------------------------------------------------ */

static void body_unref(void *p)
{
    struct relay_body *b = p;
    if (b && --b->refs == 0) {
        ax_free(b->data);
        ax_free(b);
    }
}

/* --- origins ----------------------------------------------------------------------------- */

static struct relay_origin *origin_get(struct edge_relay *r, const char *url)
{
    for (h2o_linklist_t *n = r->origins.next; n != &r->origins; n = n->next) {
        struct relay_origin *o = H2O_STRUCT_FROM_MEMBER(struct relay_origin, link, n);
        if (!strcmp(o->url, url))
            return o;
    }
    if (strlen(url) >= EDGE_PATH_LEN)
        return NULL;
    struct relay_origin *o = ax_xcalloc(1, sizeof *o);
    if (edge_relay_parse_url(url, o->host, sizeof o->host, &o->port, o->prefix,
                             sizeof o->prefix) < 0) {
        ax_free(o);
        return NULL;
    }
    snprintf(o->url, sizeof o->url, "%s", url);
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(struct sockaddr_in);
    if (uv_ip4_addr(o->host, o->port, (struct sockaddr_in *)&ss) != 0) {
        uv_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)&ss);
        sslen = sizeof(struct sockaddr_in6);
    }
    h2o_socketpool_init_by_address(&o->pool, (struct sockaddr *)&ss, sslen, 0,
                                   r->edge->cfg.relay_max_conns);
    /* Idle keep-alive connections to the origin are closed after 5 s: before the origin's own
     * idle timeout (http-req-timeout-ms, 10 s), so a pooled socket is rarely stale. */
    h2o_socketpool_set_timeout(&o->pool, r->edge->loop, 5000);
    h2o_linklist_insert(&r->origins, &o->link);
    AX_LOG_I("edge relay", "origin %s (%s:%u%s)", o->url, o->host, o->port, o->prefix);
    return o;
}

/* --- entries ----------------------------------------------------------------------------- */

static void entry_free(struct edge_relay *r, struct relay_entry *en)
{
    AX_PRE(h2o_linklist_is_empty(&en->waiters));
    AX_PRE(en->client == NULL);
    if (en->body) {
        if (ax_sm_state(&en->sm) == PULL_READY && en->status == 200)
            r->bytes -= en->body->len;
        body_unref(en->body);
    }
    h2o_linklist_unlink(&en->link);
    en->chan->nentries--;
    ax_free(en->reqbuf.base);
    ax_free(en);
}

static void respond(struct edge *e, struct relay_entry *en, h2o_req_t *req)
{
    if (!en->body || en->status == 0) {
        edge_http_send_error(e, req, 502, "origin answered nothing", "no-store");
        return;
    }
    en->body->refs++;
    edge_http_on_done(req, body_unref, en->body);
    h2o_iovec_t b = h2o_iovec_init(en->body->data, en->body->len);
    edge_http_send(e, req, en->status, en->ctype[0] ? en->ctype : NULL,
                   en->cc[0] ? en->cc : "no-store", &b, 1);
}

static void wait_unlink(struct relay_wait *w)
{
    if (h2o_linklist_is_linked(&w->link)) {
        h2o_linklist_unlink(&w->link);
        w->edge->m.relay_waiting--;
    }
}

/* Ends a pull: READY (status and body set) or FAILED (`status`, `why` for the viewers). */
static void entry_finish(struct edge_relay *r, struct relay_entry *en, bool ok, int status,
                         const char *why)
{
    struct edge *e = r->edge;
    en->client = NULL;
    uint64_t now = edge_now_ms(e);
    if (ok) {
        ax_sm_move(&en->sm, PULL_READY);
        if (en->status == 200 && en->body) {
            r->bytes += en->body->len;
            e->m.relay_bytes_in += en->body->len;
        }
        en->last_used_ms = now;
    } else {
        ax_sm_move(&en->sm, PULL_FAILED);
        e->m.relay_upstream_errors++;
        AX_LOG_W("edge relay", "channel=%s %s from %s: %s", en->chan->name, en->key,
                 en->chan->origin ? en->chan->origin->url : "-", why);
    }
    while (!h2o_linklist_is_empty(&en->waiters)) {
        struct relay_wait *w = H2O_STRUCT_FROM_MEMBER(struct relay_wait, link, en->waiters.next);
        wait_unlink(w);
        if (ok)
            respond(e, en, w->req);
        else
            edge_http_send_error(e, w->req, status, why, "no-store");
    }
    /* Only complete 200 answers are kept; errors (and failed pulls) go at once, so the next
     * viewer asks the origin again. */
    if (!ok || en->status != 200 || en->fresh_until_ms <= now)
        entry_free(r, en);
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr,
                                       int minor_version, int status, h2o_iovec_t msg,
                                       struct st_h2o_header_t *headers, size_t num_headers,
                                       int rlen);

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    struct relay_entry *en = client->data;
    struct edge_relay *r = en->chan->relay;
    h2o_buffer_t *in = client->sock->input;
    if (in->size > 0) {
        size_t need = en->body->len + in->size;
        if (need > r->edge->cfg.relay_max_object) {
            entry_finish(r, en, false, 502, "origin response larger than relay-max-object");
            return -1;
        }
        if (need > en->body->cap) {
            /* Grow as bytes arrive, never trusting a declared length (STYLE 8). */
            size_t cap = en->body->cap ? en->body->cap : 16384;
            while (cap < need)
                cap *= 2;
            if (cap > r->edge->cfg.relay_max_object)
                cap = r->edge->cfg.relay_max_object;
            en->body->data = ax_xrealloc(en->body->data, cap);
            en->body->cap = cap;
        }
        memcpy(en->body->data + en->body->len, in->bytes, in->size);
        en->body->len += in->size;
        h2o_buffer_consume(&client->sock->input, in->size);
    }
    if (errstr == NULL)
        return 0;
    if (errstr != h2o_http1client_error_is_eos) {
        entry_finish(r, en, false, 502, errstr);
        return -1;
    }
    entry_finish(r, en, true, 0, NULL);
    return 0;
}

static void copy_header(char *dst, h2o_iovec_t v)
{
    size_t n = v.len < RELAY_HDR_MAX - 1 ? v.len : RELAY_HDR_MAX - 1;
    for (size_t i = 0; i < n; i++) {
        char c = v.base[i];
        dst[i] = (c < ' ' || c > '~') ? ' ' : c;
    }
    dst[n] = '\0';
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr,
                                       int minor_version, int status, h2o_iovec_t msg,
                                       struct st_h2o_header_t *headers, size_t num_headers,
                                       int rlen)
{
    (void)minor_version;
    (void)msg;
    (void)rlen;
    struct relay_entry *en = client->data;
    struct edge_relay *r = en->chan->relay;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        entry_finish(r, en, false, 502, errstr);
        return NULL;
    }
    en->status = status;
    uint64_t max_age_ms = 0;
    for (size_t i = 0; i < num_headers; i++) {
        h2o_iovec_t *name = headers[i].name;
        if (h2o_lcstris(name->base, name->len, H2O_STRLIT("content-type"))) {
            copy_header(en->ctype, headers[i].value);
        } else if (h2o_lcstris(name->base, name->len, H2O_STRLIT("cache-control"))) {
            copy_header(en->cc, headers[i].value);
            en->immutable = strstr(en->cc, "immutable") != NULL;
            const char *ma = strstr(en->cc, "max-age=");
            if (ma)
                max_age_ms = strtoull(ma + 8, NULL, 10) * 1000;
        }
    }
    uint64_t now = edge_now_ms(r->edge);
    en->fresh_until_ms = en->immutable ? UINT64_MAX : now + max_age_ms;
    en->body = ax_xcalloc(1, sizeof *en->body);
    en->body->refs = 1;
    if (errstr == h2o_http1client_error_is_eos) {
        entry_finish(r, en, true, 0, NULL);
        return NULL;
    }
    ax_sm_move(&en->sm, PULL_BODY);
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    struct relay_entry *en = client->data;
    struct edge_relay *r = en->chan->relay;
    if (errstr != NULL) {
        if (en->chan->origin)
            en->chan->origin->down_until_ms = edge_now_ms(r->edge) + RELAY_DOWN_MS;
        entry_finish(r, en, false, 502, errstr);
        return NULL;
    }
    *reqbufs = &en->reqbuf;
    *reqbufcnt = 1;
    *method_is_head = 0;
    ax_sm_move(&en->sm, PULL_HEAD);
    return on_head;
}

static struct relay_entry *entry_find(struct relay_chan *c, const char *key)
{
    for (h2o_linklist_t *n = c->entries.next; n != &c->entries; n = n->next) {
        struct relay_entry *en = H2O_STRUCT_FROM_MEMBER(struct relay_entry, link, n);
        if (!strcmp(en->key, key))
            return en;
    }
    return NULL;
}

static void on_wait_dispose(void *p)
{
    wait_unlink(p);
}

/* Serves the request `w` describes now that the channel's origin is known. */
static void serve_from_origin(struct edge_relay *r, struct relay_wait *w)
{
    struct edge *e = r->edge;
    struct relay_chan *c = w->chan;
    uint64_t now = edge_now_ms(e);
    c->last_used_ms = now;
    struct relay_entry *en = entry_find(c, w->key);
    if (en && ax_sm_state(&en->sm) == PULL_READY) {
        if (en->fresh_until_ms > now) {
            e->m.relay_hits++;
            en->last_used_ms = now;
            respond(e, en, w->req);
            return;
        }
        entry_free(r, en); /* stale: pull again */
        en = NULL;
    }
    if (en) {
        /* A pull for this key is in flight: wait for it (single-flight). */
        e->m.relay_coalesced++;
        h2o_linklist_insert(&en->waiters, &w->link);
        e->m.relay_waiting++;
        return;
    }
    struct relay_origin *o = c->origin;
    if (o->down_until_ms > now) {
        edge_http_send_error(e, w->req, 503, "origin unreachable; retrying", "no-store");
        return;
    }
    if (c->nentries >= RELAY_MAX_ENTRIES) {
        edge_http_send_error(e, w->req, 503, "relay busy", "no-store");
        return;
    }
    en = ax_xcalloc(1, sizeof *en);
    en->chan = c;
    ax_sm_init(&en->sm, pull_states, PULL_STATE_COUNT, PULL_CONNECTING);
    snprintf(en->key, sizeof en->key, "%s", w->key);
    h2o_linklist_init_anchor(&en->waiters);
    en->started_ms = now;
    char req[RELAY_KEY_MAX * 2 + EDGE_PATH_LEN * 2 + 128];
    int n = snprintf(req, sizeof req,
                     "GET %s%s HTTP/1.1\r\nHost: %s:%u\r\nUser-Agent: aethex-edge-relay\r\n\r\n",
                     o->prefix, w->upstream_path, o->host, o->port);
    en->reqbuf.base = ax_xmalloc((size_t)n);
    memcpy(en->reqbuf.base, req, (size_t)n);
    en->reqbuf.len = (size_t)n;
    h2o_linklist_insert(&c->entries, &en->link);
    c->nentries++;
    h2o_linklist_insert(&en->waiters, &w->link);
    e->m.relay_waiting++;
    e->m.relay_upstream_requests++;
    AX_LOG_D("edge relay", "channel=%s pull %s", c->name, en->key);
    h2o_http1client_connect_with_pool(&en->client, en, &r->client_ctx, &o->pool, on_connect);
}

static void on_origin_resolved(struct edge *e, const char *channel, int status,
                               const char *origin_url)
{
    struct edge_relay *r = e->relay;
    if (!r)
        return;
    struct relay_chan *c = NULL;
    for (h2o_linklist_t *n = r->chans.next; n != &r->chans; n = n->next) {
        struct relay_chan *x = H2O_STRUCT_FROM_MEMBER(struct relay_chan, link, n);
        if (!strcmp(x->name, channel)) {
            c = x;
            break;
        }
    }
    if (!c)
        return;
    c->resolving = false;
    c->lookup_ms = edge_now_ms(e);
    struct relay_origin *o = NULL;
    if (status == 0 && origin_url && origin_url[0]) {
        o = origin_get(r, origin_url);
        if (!o)
            AX_LOG_W("edge relay", "channel=%s origin URL '%s' unusable (http://IP:port only)",
                     channel, origin_url);
    }
    if (o && o != c->origin) {
        AX_LOG_I("edge relay", "channel=%s origin is %s", channel, o->url);
        c->origin = o;
    }
    while (!h2o_linklist_is_empty(&c->resolve_waiters)) {
        struct relay_wait *w =
            H2O_STRUCT_FROM_MEMBER(struct relay_wait, link, c->resolve_waiters.next);
        wait_unlink(w);
        if (o)
            serve_from_origin(r, w);
        else if (status == AX_ENOENT)
            edge_http_send_error(e, w->req, 404, "no such stream", "no-cache");
        else
            edge_http_send_error(e, w->req, 503, "origin unknown (coordinator unreachable)",
                                 "no-store");
    }
}

static struct relay_chan *chan_get(struct edge_relay *r, ax_slice_t name)
{
    for (h2o_linklist_t *n = r->chans.next; n != &r->chans; n = n->next) {
        struct relay_chan *c = H2O_STRUCT_FROM_MEMBER(struct relay_chan, link, n);
        if (ax_slice_eq_cstr(name, c->name))
            return c;
    }
    struct relay_chan *c = ax_xcalloc(1, sizeof *c);
    c->relay = r;
    memcpy(c->name, name.base, name.len);
    h2o_linklist_init_anchor(&c->entries);
    h2o_linklist_init_anchor(&c->resolve_waiters);
    c->origin = r->fixed;
    c->last_used_ms = edge_now_ms(r->edge);
    h2o_linklist_insert(&r->chans, &c->link);
    return c;
}

bool edge_relay_enabled(const struct edge *e)
{
    return e->relay != NULL;
}

int edge_relay_serve(struct edge *e, h2o_req_t *req, ax_slice_t channel, ax_slice_t rest,
                     ax_slice_t query)
{
    struct edge_relay *r = e->relay;
    struct relay_wait *w = h2o_mem_alloc_shared(&req->pool, sizeof *w, on_wait_dispose);
    memset(w, 0, sizeof *w);
    w->req = req;
    w->edge = e;
    int rc = edge_relay_key(rest, query, w->key, sizeof w->key);
    if (rc == AX_EINVAL) {
        edge_http_send_error(e, req, 400, "bad _HLS_ parameters", "no-store");
        return 0;
    }
    if (rc < 0) {
        edge_http_send_error(e, req, 404, "not found", "no-cache");
        return 0;
    }
    snprintf(w->upstream_path, sizeof w->upstream_path, "/live/%.*s/%s", (int)channel.len,
             (const char *)channel.base, w->key);
    struct relay_chan *c = chan_get(r, channel);
    w->chan = c;
    e->m.relay_requests++;
    /* Without a fixed origin, ask the coordinator who ingests the channel: on first use, and
     * again when the known origin has been failing (the channel may have moved). */
    uint64_t now = edge_now_ms(e);
    bool relookup = !r->fixed && c->origin &&
                    (c->origin->down_until_ms > now || now - c->lookup_ms > 30000);
    if (!c->origin && c->lookup_ms && now - c->lookup_ms < RELAY_DOWN_MS && !c->resolving) {
        /* Looked up a moment ago and live nowhere: do not ask again for every request. */
        edge_http_send_error(e, req, 404, "no such stream", "no-cache");
        return 0;
    }
    if (!c->origin || relookup) {
        h2o_linklist_insert(&c->resolve_waiters, &w->link);
        e->m.relay_waiting++;
        if (!c->resolving) {
            c->resolving = true;
            rc = edge_coord_lookup_origin(e, c->name, on_origin_resolved);
            if (rc < 0) {
                c->resolving = false;
                on_origin_resolved(e, c->name, rc, NULL);
            }
        }
        return 0;
    }
    serve_from_origin(r, w);
    return 0;
}

/* --- life -------------------------------------------------------------------------------- */

int edge_relay_start(struct edge *e)
{
    if (!e->cfg.relay_origin[0] && !edge_coord_enabled(e))
        return 0;
    struct edge_relay *r = ax_xcalloc(1, sizeof *r);
    r->edge = e;
    h2o_linklist_init_anchor(&r->origins);
    h2o_linklist_init_anchor(&r->chans);
    h2o_timeout_init(e->loop, &r->io_timeout, e->cfg.relay_timeout_ms);
    r->client_ctx.loop = e->loop;
    r->client_ctx.io_timeout = &r->io_timeout;
    e->relay = r;
    if (e->cfg.relay_origin[0]) {
        r->fixed = origin_get(r, e->cfg.relay_origin);
        if (!r->fixed) {
            AX_LOG_E("edge relay", "relay-origin '%s': expected http://IP:port[/prefix]",
                     e->cfg.relay_origin);
            return AX_EINVAL;
        }
    }
    return 0;
}

static void cancel_entry(struct edge_relay *r, struct relay_entry *en, int status, const char *why)
{
    if (en->client) {
        h2o_http1client_cancel(en->client);
        en->client = NULL;
    }
    entry_finish(r, en, false, status, why);
}

void edge_relay_sweep(struct edge *e, uint64_t now)
{
    struct edge_relay *r = e->relay;
    if (!r)
        return;
    h2o_linklist_t *cn, *cnext;
    for (cn = r->chans.next; cn != &r->chans; cn = cnext) {
        cnext = cn->next;
        struct relay_chan *c = H2O_STRUCT_FROM_MEMBER(struct relay_chan, link, cn);
        h2o_linklist_t *n, *next;
        for (n = c->entries.next; n != &c->entries; n = next) {
            next = n->next;
            struct relay_entry *en = H2O_STRUCT_FROM_MEMBER(struct relay_entry, link, n);
            int st = ax_sm_state(&en->sm);
            if (st != PULL_READY) {
                if (now - en->started_ms >= e->cfg.relay_timeout_ms)
                    cancel_entry(r, en, 504, "origin did not answer in time");
                continue;
            }
            if (en->fresh_until_ms <= now || now - en->last_used_ms >= e->cfg.relay_idle_ms)
                entry_free(r, en);
        }
        if (h2o_linklist_is_empty(&c->entries) && h2o_linklist_is_empty(&c->resolve_waiters) &&
            !c->resolving && now - c->last_used_ms >= e->cfg.relay_idle_ms) {
            h2o_linklist_unlink(&c->link);
            ax_free(c);
        }
    }
    /* Over relay-max-bytes: least recently used READY entries go first. */
    while (r->bytes > e->cfg.relay_max_bytes) {
        struct relay_entry *lru = NULL;
        for (cn = r->chans.next; cn != &r->chans; cn = cn->next) {
            struct relay_chan *c = H2O_STRUCT_FROM_MEMBER(struct relay_chan, link, cn);
            for (h2o_linklist_t *n = c->entries.next; n != &c->entries; n = n->next) {
                struct relay_entry *en = H2O_STRUCT_FROM_MEMBER(struct relay_entry, link, n);
                if (ax_sm_state(&en->sm) == PULL_READY &&
                    (!lru || en->last_used_ms < lru->last_used_ms))
                    lru = en;
            }
        }
        if (!lru)
            break;
        entry_free(r, lru);
    }
}

void edge_relay_release(struct edge *e)
{
    struct edge_relay *r = e->relay;
    if (!r)
        return;
    for (h2o_linklist_t *cn = r->chans.next; cn != &r->chans; cn = cn->next) {
        struct relay_chan *c = H2O_STRUCT_FROM_MEMBER(struct relay_chan, link, cn);
        while (!h2o_linklist_is_empty(&c->resolve_waiters)) {
            struct relay_wait *w =
                H2O_STRUCT_FROM_MEMBER(struct relay_wait, link, c->resolve_waiters.next);
            wait_unlink(w);
            edge_http_send_error(e, w->req, 503, "server stopping", "no-store");
        }
        h2o_linklist_t *n, *next;
        for (n = c->entries.next; n != &c->entries; n = next) {
            next = n->next;
            struct relay_entry *en = H2O_STRUCT_FROM_MEMBER(struct relay_entry, link, n);
            if (ax_sm_state(&en->sm) != PULL_READY)
                cancel_entry(r, en, 503, "server stopping");
        }
    }
}

void edge_relay_free(struct edge *e)
{
    struct edge_relay *r = e->relay;
    if (!r)
        return;
    edge_relay_release(e);
    while (!h2o_linklist_is_empty(&r->chans)) {
        struct relay_chan *c = H2O_STRUCT_FROM_MEMBER(struct relay_chan, link, r->chans.next);
        while (!h2o_linklist_is_empty(&c->entries))
            entry_free(r, H2O_STRUCT_FROM_MEMBER(struct relay_entry, link, c->entries.next));
        h2o_linklist_unlink(&c->link);
        ax_free(c);
    }
    while (!h2o_linklist_is_empty(&r->origins)) {
        struct relay_origin *o =
            H2O_STRUCT_FROM_MEMBER(struct relay_origin, link, r->origins.next);
        h2o_socketpool_dispose(&o->pool);
        h2o_linklist_unlink(&o->link);
        ax_free(o);
    }
    h2o_timeout_dispose(e->loop, &r->io_timeout);
    ax_free(r);
    e->relay = NULL;
}

size_t edge_relay_metrics(struct edge *e, char *buf, size_t off, size_t cap)
{
    struct edge_metrics *m = &e->m;
    size_t entries = 0, bytes = 0;
    if (e->relay) {
        bytes = e->relay->bytes;
        for (h2o_linklist_t *cn = e->relay->chans.next; cn != &e->relay->chans; cn = cn->next)
            entries += H2O_STRUCT_FROM_MEMBER(struct relay_chan, link, cn)->nentries;
    }
    off = edge_metrics_append(
        buf, off, cap,
        "# HELP aethex_edge_relay_requests_total Viewer requests for relayed channels.\n"
        "# TYPE aethex_edge_relay_requests_total counter\n"
        "aethex_edge_relay_requests_total %llu\n"
        "# HELP aethex_edge_relay_upstream_requests_total Requests made to origins.\n"
        "# TYPE aethex_edge_relay_upstream_requests_total counter\n"
        "aethex_edge_relay_upstream_requests_total %llu\n"
        "# HELP aethex_edge_relay_upstream_errors_total Pulls that failed.\n"
        "# TYPE aethex_edge_relay_upstream_errors_total counter\n"
        "aethex_edge_relay_upstream_errors_total %llu\n"
        "# HELP aethex_edge_relay_hits_total Viewer requests served from the relay's copy.\n"
        "# TYPE aethex_edge_relay_hits_total counter\n"
        "aethex_edge_relay_hits_total %llu\n"
        "# HELP aethex_edge_relay_coalesced_total Viewer requests that joined a pull in flight.\n"
        "# TYPE aethex_edge_relay_coalesced_total counter\n"
        "aethex_edge_relay_coalesced_total %llu\n"
        "# HELP aethex_edge_relay_bytes_in_total Body bytes pulled from origins.\n"
        "# TYPE aethex_edge_relay_bytes_in_total counter\n"
        "aethex_edge_relay_bytes_in_total %llu\n"
        "# HELP aethex_edge_relay_waiting Viewer requests waiting on a pull.\n"
        "# TYPE aethex_edge_relay_waiting gauge\n"
        "aethex_edge_relay_waiting %llu\n"
        "# HELP aethex_edge_relay_entries Relayed resources in memory or in flight.\n"
        "# TYPE aethex_edge_relay_entries gauge\n"
        "aethex_edge_relay_entries %zu\n"
        "# HELP aethex_edge_relay_bytes Relayed body bytes held in memory.\n"
        "# TYPE aethex_edge_relay_bytes gauge\n"
        "aethex_edge_relay_bytes %zu\n",
        (unsigned long long)m->relay_requests, (unsigned long long)m->relay_upstream_requests,
        (unsigned long long)m->relay_upstream_errors, (unsigned long long)m->relay_hits,
        (unsigned long long)m->relay_coalesced, (unsigned long long)m->relay_bytes_in,
        (unsigned long long)m->relay_waiting, entries, bytes);
    return off;
}

size_t edge_relay_channel_count(const struct edge *e)
{
    size_t n = 0;
    if (e->relay)
        for (h2o_linklist_t *cn = e->relay->chans.next; cn != &e->relay->chans; cn = cn->next)
            n++;
    return n;
}

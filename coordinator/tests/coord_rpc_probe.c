/*
 * A test peer for the coordinator's RPC (coordinator.rpc_authorize): connects as an edge with
 * the cluster secret and runs the steps given on the command line, one after the other on
 * one connection, printing one line per step:
 *
 *   coord_rpc_probe ADDR[,ADDR...] SECRET_FILE EDGE_ID STEP...
 *     register:REGION:HLS_URL   -> "register OK"
 *     heartbeat[:SLUG:CHANNEL_ID:STREAM_ID]
 *                               -> "heartbeat OK" (the optional channel is reported as origin)
 *     authorize:KEY             -> "authorize OK channel=<id> slug=<slug> stream=<id>" or
 *                                  "authorize EBADKEY <error>"
 *     end:STREAM_ID             -> "end OK duration=<s>"
 *     lookup:SLUG               -> "lookup OK origin=<edge> hls=<url>" or "lookup ENOENT ..."
 *     sleep:MS
 * and pushes as they arrive: "push KEY_REVOKED channel=<id> hash=<hex>".
 *
 * Exits 0 when every step ran (whatever each answered), 1 on a transport failure, 2 on
 * usage. Bounded: gives up after 20 s.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "aethex/common/alloc.h"
#include "aethex/common/log.h"
#include "aethex/proto/rpc.h"

struct probe {
    uv_loop_t *loop;
    proto_rpc_client_t *client;
    uv_timer_t timer, guard;
    char **steps;
    int nsteps, next;
    proto_rpc_call_t call;
    uint8_t *payload;
    size_t payload_len;
    char step[512];
    int exit_code;
    bool started;
    char edge_id[PROTO_RPC_MAX_ID + 1];
};

static void run_next(struct probe *p);

static void finish(struct probe *p, int code)
{
    p->exit_code = code;
    uv_timer_stop(&p->timer);
    uv_timer_stop(&p->guard);
    uv_close((uv_handle_t *)&p->timer, NULL);
    uv_close((uv_handle_t *)&p->guard, NULL);
    proto_rpc_client_close(p->client, NULL);
}

static void on_guard(uv_timer_t *t)
{
    struct probe *p = t->data;
    fprintf(stdout, "timeout at step %d\n", p->next);
    finish(p, 1);
}

static void on_sleep(uv_timer_t *t)
{
    run_next(t->data);
}

static void on_done(proto_rpc_call_t *call, int status)
{
    struct probe *p = call->data;
    ax_free(p->payload);
    p->payload = NULL;
    const char *name = status == 0 ? "OK" : ax_err_name(status);
    ProtobufCAllocator *a = proto_rpc_allocator();
    if (strncmp(p->step, "authorize:", 10) == 0 && status == 0) {
        Aethex__AuthorizePublishReply *r =
            aethex__authorize_publish_reply__unpack(a, call->payload.len, call->payload.base);
        if (r != NULL) {
            printf("authorize OK channel=%s slug=%s stream=%s\n", r->channel_id, r->channel_slug,
                   r->stream_id);
            aethex__authorize_publish_reply__free_unpacked(r, a);
        }
    } else if (strncmp(p->step, "end:", 4) == 0 && status == 0) {
        Aethex__EndStreamReply *r =
            aethex__end_stream_reply__unpack(a, call->payload.len, call->payload.base);
        printf("end OK duration=%lld\n", r ? (long long)r->duration_seconds : -1LL);
        if (r)
            aethex__end_stream_reply__free_unpacked(r, a);
    } else if (strncmp(p->step, "lookup:", 7) == 0 && status == 0) {
        Aethex__LookupChannelReply *r =
            aethex__lookup_channel_reply__unpack(a, call->payload.len, call->payload.base);
        printf("lookup OK origin=%s hls=%s stream=%s\n", r ? r->origin_edge_id : "?",
               r ? r->origin_hls_base_url : "?", r ? r->stream_id : "?");
        if (r)
            aethex__lookup_channel_reply__free_unpacked(r, a);
    } else {
        char *colon = strchr(p->step, ':');
        printf("%.*s %s %s\n", colon ? (int)(colon - p->step) : (int)strlen(p->step), p->step, name,
               status ? call->errmsg : "");
    }
    fflush(stdout);
    if (status == AX_ECONNRESET || status == AX_ECANCELED || status == AX_ETIMEDOUT) {
        finish(p, 1);
        return;
    }
    run_next(p);
}

static int pack(struct probe *p, const ProtobufCMessage *m)
{
    return proto_rpc_pack(m, &p->payload, &p->payload_len);
}

static void run_next(struct probe *p)
{
    if (p->next >= p->nsteps) {
        finish(p, 0);
        return;
    }
    snprintf(p->step, sizeof p->step, "%s", p->steps[p->next++]);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", p->step);
    char *arg = strchr(buf, ':');
    if (arg)
        *arg++ = '\0';
    uint32_t method = 0;
    if (strcmp(buf, "sleep") == 0) {
        uv_timer_start(&p->timer, on_sleep, arg ? strtoull(arg, NULL, 10) : 0, 0);
        return;
    } else if (strcmp(buf, "register") == 0 && arg) {
        char *url = strchr(arg, ':');
        if (url)
            *url++ = '\0';
        Aethex__RegisterEdge m = AETHEX__REGISTER_EDGE__INIT;
        m.edge_id = p->edge_id;
        m.region = arg;
        m.hls_base_url = url ? url : "";
        m.capacity_viewers = 100;
        method = AETHEX__METHOD__METHOD_REGISTER_EDGE;
        pack(p, &m.base);
    } else if (strcmp(buf, "heartbeat") == 0) {
        Aethex__Heartbeat m = AETHEX__HEARTBEAT__INIT;
        Aethex__ChannelLoad ch = AETHEX__CHANNEL_LOAD__INIT, *chs[1] = {&ch};
        m.edge_id = p->edge_id;
        m.load = 0.1f;
        m.viewers = 1;
        if (arg) {
            char *cid = strchr(arg, ':'), *sid = cid ? strchr(cid + 1, ':') : NULL;
            if (cid && sid) {
                *cid++ = '\0';
                *sid++ = '\0';
                ch.channel_slug = arg;
                ch.channel_id = cid;
                ch.stream_id = sid;
                ch.viewers = 1;
                ch.origin = true;
                m.n_channels = 1;
                m.channels = chs;
            }
        }
        method = AETHEX__METHOD__METHOD_HEARTBEAT;
        pack(p, &m.base);
    } else if (strcmp(buf, "authorize") == 0) {
        Aethex__AuthorizePublish m = AETHEX__AUTHORIZE_PUBLISH__INIT;
        m.key = arg ? arg : "";
        m.edge_id = p->edge_id;
        method = AETHEX__METHOD__METHOD_AUTHORIZE_PUBLISH;
        pack(p, &m.base);
    } else if (strcmp(buf, "end") == 0 && arg) {
        Aethex__EndStream m = AETHEX__END_STREAM__INIT;
        m.stream_id = arg;
        m.reason = "publisher left";
        m.edge_id = p->edge_id;
        method = AETHEX__METHOD__METHOD_END_STREAM;
        pack(p, &m.base);
    } else if (strcmp(buf, "lookup") == 0 && arg) {
        Aethex__LookupChannel m = AETHEX__LOOKUP_CHANNEL__INIT;
        m.channel_slug = arg;
        method = AETHEX__METHOD__METHOD_LOOKUP_CHANNEL;
        pack(p, &m.base);
    } else {
        fprintf(stderr, "coord_rpc_probe: bad step '%s'\n", p->step);
        finish(p, 2);
        return;
    }
    p->call = (proto_rpc_call_t){.data = p};
    int rv =
        proto_rpc_call(&p->call, p->client, method,
                       AX_SLICE(p->payload ? p->payload : (uint8_t *)"", p->payload_len), on_done);
    if (rv < 0) {
        printf("%s call failed: %s\n", buf, ax_err_name(rv));
        ax_free(p->payload);
        p->payload = NULL;
        finish(p, 1);
    }
}

/* Pushes are printed as they come: "push KEY_REVOKED channel=<id> hash=<hex>". */
static void on_push(proto_rpc_client_t *c, uint32_t method, ax_slice_t payload)
{
    (void)c;
    if (method == AETHEX__METHOD__METHOD_KEY_REVOKED) {
        Aethex__KeyRevoked *k =
            aethex__key_revoked__unpack(proto_rpc_allocator(), payload.len, payload.base);
        char hex[65] = "";
        if (k != NULL && k->key_hash.len == 32)
            sodium_bin2hex(hex, sizeof hex, k->key_hash.data, 32);
        printf("push KEY_REVOKED channel=%s hash=%s\n", k ? k->channel_id : "?", hex);
        if (k)
            aethex__key_revoked__free_unpacked(k, proto_rpc_allocator());
    } else {
        printf("push %s\n", proto_rpc_method_name(method));
    }
    fflush(stdout);
}

static void on_state(proto_rpc_client_t *c, bool connected, const char *address,
                     const char *server_id)
{
    struct probe *p = proto_rpc_client_data(c);
    (void)address;
    (void)server_id;
    if (connected && !p->started) {
        p->started = true;
        run_next(p);
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 5) {
        fprintf(stderr, "usage: coord_rpc_probe ADDR[,ADDR] SECRET_FILE EDGE_ID STEP...\n");
        return 2;
    }
    ax_log_set_level(AX_LOG_WARN);
    if (sodium_init() < 0)
        return 1;
    static struct probe probe;
    struct probe *p = &probe;
    p->loop = uv_default_loop();
    p->steps = argv + 4;
    p->nsteps = argc - 4;
    uint8_t secret[PROTO_RPC_MAX_SECRET];
    size_t slen;
    char err[AX_ERRMSG_LEN];
    if (proto_rpc_secret_load(argv[2], secret, &slen, err) != 0) {
        fprintf(stderr, "coord_rpc_probe: %s\n", err);
        return 2;
    }
    const char *addrs[PROTO_RPC_MAX_ADDRESSES];
    uint32_t n = 0;
    for (char *save = NULL, *a = strtok_r(argv[1], ",", &save); a && n < PROTO_RPC_MAX_ADDRESSES;
         a = strtok_r(NULL, ",", &save))
        addrs[n++] = a;
    snprintf(p->edge_id, sizeof p->edge_id, "%s", argv[3]);
    proto_rpc_client_config_t cfg;
    proto_rpc_client_config_default(&cfg);
    cfg.addresses = addrs;
    cfg.naddresses = n;
    cfg.client_id = p->edge_id;
    cfg.secret = secret;
    cfg.secret_len = slen;
    cfg.on_state = on_state;
    cfg.on_push = on_push;
    cfg.data = p;
    uv_timer_init(p->loop, &p->timer);
    uv_timer_init(p->loop, &p->guard);
    p->timer.data = p->guard.data = p;
    const char *limit = getenv("PROBE_TIMEOUT_MS");
    uv_timer_start(&p->guard, on_guard, limit ? strtoull(limit, NULL, 10) : 20000, 0);
    if (proto_rpc_client_new(p->loop, &cfg, &p->client, err) != 0) {
        fprintf(stderr, "coord_rpc_probe: %s\n", err);
        return 2;
    }
    uv_run(p->loop, UV_RUN_DEFAULT);
    fflush(stdout);
    return p->exit_code;
}

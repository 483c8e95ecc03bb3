/*
 * aethex-edge: RTMP in, LL-HLS out, one libuv loop.
 *
 * Process life:
 *
 *   +----------+ listening +---------+ SIGTERM/SIGINT +----------+ all closed, or  +--------+
 *   | STARTING | --------> | RUNNING | -------------> | STOPPING | --------------> | CLOSED |
 *   +----------+           +---------+                +----------+ grace deadline  +--------+
 *        |  bind/config error                              ^  second signal: cut now
 *        +-------------------------------------------------+
 *
 * STOPPING: listeners closed; publishers get NetStream.Unpublish.Success and their sockets
 * are flushed then closed; held playlist requests are answered (503); h2o is asked to shut
 * down (GOAWAY on HTTP/2, close idle HTTP/1 connections) so in-flight responses finish.
 * CLOSED: every remaining handle is closed, and main returns uv_loop_close's verdict.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aethex/common/error.h"
#include "aethex/common/log.h"

#include "edge_internal.h"

#define SWEEP_MS 250
/* Allocations at or above this size are mmapped (see main). */
#define EDGE_MMAP_THRESHOLD (64 * 1024)

uint64_t edge_now_ms(struct edge *e)
{
    return uv_now(e->loop);
}

static void finish(struct edge *e);

static void walk_close(uv_handle_t *h, void *arg)
{
    int *n = arg;
    if (!uv_is_closing(h)) {
        (*n)++;
        uv_close(h, NULL);
    }
}

static void finish(struct edge *e)
{
    edge_rtmp_close_all(e);
    edge_coord_stop(e);
    edge_relay_free(e);
    edge_viewers_free(e);
    edge_channel_free_all(e);
    edge_transcode_close_all(e); /* workers of ended publishes still flushing: joined */
    edge_http_dispose(e);
    uv_close((uv_handle_t *)&e->sig_term, NULL);
    uv_close((uv_handle_t *)&e->sig_int, NULL);
    uv_close((uv_handle_t *)&e->sig_hup, NULL);
    uv_close((uv_handle_t *)&e->sweep, NULL);
    uv_close((uv_handle_t *)&e->stop_deadline, NULL);
    if (e->rtmp_listening)
        uv_close((uv_handle_t *)&e->rtmp_listener, NULL);
    if (e->http_listening)
        uv_close((uv_handle_t *)&e->http_listener, NULL);
    if (e->tls_listening)
        uv_close((uv_handle_t *)&e->tls_listener, NULL);
    e->rtmp_listening = e->http_listening = e->tls_listening = false;
    int n = 0;
    uv_walk(e->loop, walk_close, &n);
    if (n > 0)
        AX_LOG_W("edge", "closed %d handle(s) left open at stop", n);
}

static void stop_check(struct edge *e)
{
    if (e->stopping && h2o_linklist_is_empty(&e->rtmp_conns) && edge_http_idle(e) &&
        edge_coord_idle(e)) {
        AX_LOG_I("edge", "stopped cleanly");
        uv_timer_stop(&e->sweep);
        finish(e);
    }
}

static void on_stop_deadline(uv_timer_t *t)
{
    struct edge *e = ax_container_of(t, struct edge, stop_deadline);
    if (!e->stop_forced) {
        /* Cut what is left, then give h2o and libuv a moment to see the sockets close. */
        AX_LOG_W("edge", "stop deadline reached: rtmp_conns=%llu http_conns=%llu; cutting them",
                 (unsigned long long)e->m.rtmp_active, (unsigned long long)e->m.http_conns_active);
        e->stop_forced = true;
        edge_rtmp_close_all(e);
        edge_http_stop_sweep(e, true);
        uv_timer_start(&e->stop_deadline, on_stop_deadline, 500, 0);
        return;
    }
    uv_timer_stop(&e->sweep);
    finish(e);
}

static void begin_stop(struct edge *e, const char *why)
{
    if (e->stopping) {
        /* A terminal's Ctrl-C reaches every process of the group, and a wrapper script
         * often forwards a TERM right after it: one stop request, not two. */
        if (edge_now_ms(e) - e->stop_began_ms < 1000)
            return;
        AX_LOG_W("edge", "%s again: stopping now", why);
        uv_timer_start(&e->stop_deadline, on_stop_deadline, 0, 0);
        return;
    }
    e->stopping = true;
    e->stop_began_ms = edge_now_ms(e);
    AX_LOG_I("edge", "%s: stopping (grace %u ms)", why, e->cfg.shutdown_grace_ms);
    /* Held requests first: the publishers' last media (flushed by their unpublish) must not
     * turn some of them into answers and leave the rest to time out. */
    edge_channel_release_holds(e);
    edge_relay_release(e);
    edge_rtmp_stop(e);
    edge_http_stop(e); /* the first stop sweep, 250 ms later, lets GOAWAY frames go out */
    uv_timer_start(&e->stop_deadline, on_stop_deadline, e->cfg.shutdown_grace_ms, 0);
    stop_check(e);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct edge *e = s->data;
    if (signum == SIGHUP) {
        if (!e->cfg.keys_file[0])
            return;
        char err[256];
        int rc = edge_keys_load(&e->keys, e->cfg.keys_file, err, sizeof err);
        if (rc < 0)
            AX_LOG_W("edge", "SIGHUP: keys not reloaded: %s", err);
        else
            AX_LOG_I("edge", "SIGHUP: keys reloaded: %zu channel(s)", e->keys.count);
        return;
    }
    begin_stop(e, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_sweep(uv_timer_t *t)
{
    struct edge *e = ax_container_of(t, struct edge, sweep);
    uint64_t now = edge_now_ms(e);
    edge_rtmp_sweep(e, now);
    edge_relay_sweep(e, now);
    edge_viewers_sweep(e, now);
    if (!e->stopping)
        edge_channel_sweep(e, now);
    else {
        edge_http_stop_sweep(e, false);
        stop_check(e);
    }
}

static int write_ports_file(struct edge *e)
{
    char tmp[EDGE_PATH_LEN + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", e->cfg.ports_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return AX_EIO;
    fprintf(f, "rtmp=%d\nhttp=%d\ntls=%d\npid=%d\n", e->cfg.rtmp.port, e->cfg.http.port,
            e->cfg.tls.port, (int)getpid());
    if (fclose(f) != 0 || rename(tmp, e->cfg.ports_file) != 0)
        return AX_EIO;
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* Part payloads (~100 KB each at 2.5 Mbit/s) come and go at ~3 per second per stream.
     * A fixed mmap threshold below their size keeps glibc from raising it dynamically and
     * serving them from a fragmenting heap: each evicted part goes back to the kernel at once
     * and a part's unused tail is never resident (bench: PSS at 8 streams 51.6 -> 47.6 MB). */
    mallopt(M_MMAP_THRESHOLD, EDGE_MMAP_THRESHOLD);
    static struct edge edge;
    struct edge *e = &edge;
    edge_config_default(&e->cfg);
    char err[512];
    int rc = edge_config_parse_args(&e->cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "aethex-edge: %s\n", err);
        return 2;
    }
    ax_log_set_level(e->cfg.log_level);
    if (e->cfg.transcode && e->cfg.nladder > 0 &&
        edge_transcode_load(e->cfg.transcode_module, err, sizeof err) < 0) {
        fprintf(stderr, "aethex-edge: %s (or run with --transcode off)\n", err);
        return 2;
    }
    edge_keys_init(&e->keys);
    if (e->cfg.coordinator[0] && e->cfg.no_coordinator) {
        fprintf(stderr, "aethex-edge: --coordinator and --no-coordinator exclude each other\n");
        return 2;
    }
    if (!e->cfg.coordinator[0] && !e->cfg.no_coordinator)
        AX_LOG_W("edge", "no --coordinator given: running standalone (--no-coordinator)");
    if (e->cfg.coordinator[0]) {
        if (e->cfg.keys_file[0] || e->cfg.accept_any_key)
            AX_LOG_W("edge", "coordinator mode: keys come from the coordinator; "
                             "--keys-file/--accept-any-key are ignored");
        e->cfg.keys_file[0] = '\0';
        e->cfg.accept_any_key = false;
    } else if (e->cfg.keys_file[0]) {
        rc = edge_keys_load(&e->keys, e->cfg.keys_file, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "aethex-edge: %s\n", err);
            return 2;
        }
        AX_LOG_I("edge", "keys file %s: %zu channel(s)", e->cfg.keys_file, e->keys.count);
    } else if (!e->cfg.accept_any_key && !e->cfg.relay_origin[0]) {
        fprintf(stderr, "aethex-edge: standalone mode needs --keys-file F, --accept-any-key "
                        "or --relay-origin URL\n");
        return 2;
    }
    if (e->cfg.accept_any_key)
        AX_LOG_W("edge", "accept-any-key: every stream key is accepted (channel = key)");

    uv_loop_t loop;
    uv_loop_init(&loop);
    e->loop = &loop;
    h2o_linklist_init_anchor(&e->rtmp_conns);
    h2o_linklist_init_anchor(&e->http_conns);
    h2o_linklist_init_anchor(&e->channels);
    h2o_linklist_init_anchor(&e->transcodes);
    e->started_ms = uv_now(&loop);

    uv_signal_init(&loop, &e->sig_term);
    uv_signal_init(&loop, &e->sig_int);
    uv_signal_init(&loop, &e->sig_hup);
    e->sig_term.data = e->sig_int.data = e->sig_hup.data = e;
    uv_signal_start(&e->sig_term, on_signal, SIGTERM);
    uv_signal_start(&e->sig_int, on_signal, SIGINT);
    uv_signal_start(&e->sig_hup, on_signal, SIGHUP);
    uv_timer_init(&loop, &e->sweep);
    uv_timer_init(&loop, &e->stop_deadline);

    int status = 0;
    rc = edge_http_start(e);
    if (rc == 0)
        rc = edge_channel_start(e);
    if (rc == 0)
        rc = edge_rtmp_start(e);
    if (rc == 0)
        rc = edge_viewers_start(e);
    if (rc == 0)
        rc = edge_coord_start(e);
    if (rc == 0)
        rc = edge_relay_start(e);
    if (rc == 0 && e->cfg.ports_file[0] && write_ports_file(e) < 0) {
        AX_LOG_E("edge", "cannot write ports file %s", e->cfg.ports_file);
        rc = AX_EIO;
    }
    if (rc < 0) {
        status = 1;
        e->stopping = true;
        finish(e);
    } else {
        uv_timer_start(&e->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
        AX_LOG_I("edge", "running: rtmp://%s:%d/live http://%s:%d%s", e->cfg.rtmp.host,
                 e->cfg.rtmp.port, e->cfg.http.host, e->cfg.http.port,
                 e->cfg.tls.port >= 0 ? " (+https)" : "");
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    if (rc != 0) {
        AX_LOG_E("edge", "uv_loop_close: %s", uv_strerror(rc));
        status = 1;
    }
    edge_keys_close(&e->keys);
    return status;
}

/*
 * coord_writer: a test peer for the cluster tests. It writes rows through OUR dqlite client's
 * write queue, one write item at a time, and prints the outcome of each on stdout, so a test
 * can later check that every acknowledged row survived:
 *
 *   ack ID        committed by a quorum (status 0)
 *   unknown ID    AX_EUNKNOWN: may or may not be committed (never counted as acknowledged)
 *   fail ID ERR   refused or timed out (not committed)
 *
 *   coord_writer --coordinator A:P[,B:P...] --prefix P [--count N] [--duration-ms N]
 *                [--interval-ms N]
 *
 * Rows go into `users` (id P-i, unique username/email/supabase_id). Runs until --count rows
 * were attempted or --duration-ms passed or SIGTERM/SIGINT; prints "summary acked=.. unknown=..
 * failed=.." and exits 0 (1 on a usage error).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "aethex/common/log.h"
#include "aethex/coordinator/dqlite_client.h"
#include "aethex/coordinator/schema.h"

struct writer {
    uv_loop_t *loop;
    coord_dqlite_client_t *client;
    coord_dqlite_req_t req;
    uv_timer_t timer, deadline;
    uv_signal_t sigterm, sigint;
    const char *prefix;
    uint64_t count, next, interval_ms;
    uint64_t acked, unknown, failed;
    char id[96];
    int stopping;
};

static void write_next(struct writer *w);
static void on_timer(uv_timer_t *t);

static void stop(struct writer *w)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    uv_close((uv_handle_t *)&w->timer, NULL);
    uv_close((uv_handle_t *)&w->deadline, NULL);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_close((uv_handle_t *)&w->sigint, NULL);
    coord_dqlite_client_close(w->client, NULL);
}

static void on_written(coord_dqlite_req_t *req, int status)
{
    struct writer *w = req->data;
    if (status == AX_ECANCELED && w->stopping)
        return; /* closed while in flight: outcome not observed, not printed as an ack */
    if (status == 0) {
        w->acked++;
        printf("ack %s\n", w->id);
    } else if (status == AX_EUNKNOWN) {
        w->unknown++;
        printf("unknown %s\n", w->id);
    } else {
        w->failed++;
        printf("fail %s %s %s\n", w->id, ax_err_name(status), req->errmsg);
    }
    fflush(stdout);
    if (w->stopping)
        return;
    if (w->count && w->next >= w->count) {
        stop(w);
        return;
    }
    uv_timer_start(&w->timer, on_timer, w->interval_ms, 0);
}

static void write_next(struct writer *w)
{
    if (w->stopping)
        return;
    w->next++;
    snprintf(w->id, sizeof w->id, "%s-%" PRIu64, w->prefix, w->next);
    char name[128], email[128], sub[128];
    snprintf(name, sizeof name, "u_%s", w->id);
    snprintf(email, sizeof email, "%s@example.test", w->id);
    snprintf(sub, sizeof sub, "sub-%s", w->id);
    coord_dqlite_value_t params[4] = {
        coord_dqlite_text(w->id),
        coord_dqlite_text(sub),
        coord_dqlite_text(name),
        coord_dqlite_text(email),
    };
    coord_dqlite_call_t call = {
        .sql = "INSERT INTO users (id, supabase_id, username, email) VALUES (?, ?, ?, ?)",
        .params = params,
        .nparams = 4,
    };
    int rv = coord_dqlite_write(&w->req, w->client, &call, 1, on_written);
    if (rv != 0) {
        printf("fail %s %s submit\n", w->id, ax_err_name(rv));
        fflush(stdout);
        w->failed++;
        stop(w);
    }
}

static void on_timer(uv_timer_t *t)
{
    write_next(t->data);
}

static void on_deadline(uv_timer_t *t)
{
    stop(t->data);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    stop(s->data);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    ax_log_set_level(AX_LOG_WARN);
    static struct writer wr;
    struct writer *w = &wr;
    char members_buf[1024] = "";
    uint64_t duration_ms = 0;
    w->prefix = "w";
    w->interval_ms = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--coordinator") == 0)
            snprintf(members_buf, sizeof members_buf, "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--prefix") == 0)
            w->prefix = argv[i + 1];
        else if (strcmp(argv[i], "--count") == 0)
            w->count = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--duration-ms") == 0)
            duration_ms = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--interval-ms") == 0)
            w->interval_ms = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "coord_writer: unknown option %s\n", argv[i]);
            return 1;
        }
    }
    const char *members[16];
    uint32_t n = 0;
    for (char *save = NULL, *m = strtok_r(members_buf, ",", &save); m && n < 16;
         m = strtok_r(NULL, ",", &save))
        members[n++] = m;
    if (n == 0 || (w->count == 0 && duration_ms == 0)) {
        fprintf(stderr, "usage: coord_writer --coordinator A:P[,..] --prefix P "
                        "[--count N] [--duration-ms N] [--interval-ms N]\n");
        return 1;
    }
    w->loop = uv_default_loop();
    coord_dqlite_client_config_t cfg;
    coord_dqlite_client_config_default(&cfg);
    cfg.members = members;
    cfg.nmembers = n;
    cfg.database = COORD_DB_NAME;
    cfg.connect_timeout_ms = 500;
    if (coord_dqlite_client_new(w->loop, &cfg, &w->client) != 0) {
        fprintf(stderr, "coord_writer: bad client config\n");
        return 1;
    }
    w->req.data = w;
    uv_timer_init(w->loop, &w->timer);
    uv_timer_init(w->loop, &w->deadline);
    w->timer.data = w->deadline.data = w;
    uv_signal_init(w->loop, &w->sigterm);
    uv_signal_init(w->loop, &w->sigint);
    w->sigterm.data = w->sigint.data = w;
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    if (duration_ms)
        uv_timer_start(&w->deadline, on_deadline, duration_ms, 0);
    uv_timer_start(&w->timer, on_timer, 0, 0);
    uv_run(w->loop, UV_RUN_DEFAULT);
    uv_loop_close(w->loop);
    printf("summary acked=%" PRIu64 " unknown=%" PRIu64 " failed=%" PRIu64 "\n", w->acked,
           w->unknown, w->failed);
    return 0;
}

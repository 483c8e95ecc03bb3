/*
 * dqlite_bench: inserts/s and queries/s through OUR dqlite client (aethex_dqlite_client)
 * against real libdqlite nodes started in this process (1 or 3, on 127.0.0.1), with the
 * workload of go-dqlite's dqlite-benchmark (table `model`, 32-byte keys, 1 KiB values,
 * INSERT OR REPLACE / SELECT by key), so both run side by side (bench/dqlite/run.sh).
 *
 *   dqlite_bench NODES SECONDS DATA_ROOT [nodelay]
 *
 * With "nodelay", the nodes dial each other through coord_dqlite_node_connect, which sets
 * TCP_NODELAY (libdqlite's default connect leaves Nagle on for Raft traffic; go-dqlite's
 * dialer, like every Go socket, turns it off).
 *
 * Workloads, each for SECONDS, one line of a Markdown table each:
 *   write-1       single-row autocommit INSERTs, one at a time (coord_dqlite_exec)
 *   write-batch100  100 INSERTs in one transaction per commit (one write item of 100 calls)
 *   write-multirow100  100 rows in ONE statement (INSERT ... VALUES (?, ?), x100), one commit
 *   write-group64   64 single-row write items in flight: the queue packs them per commit
 *   read-1        point SELECTs by key, one at a time (coord_dqlite_query)
 * Latency is per commit (per transaction for batch100, per item for group64, per query).
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dqlite.h>
#include <uv.h>

#include "aethex/common/util.h"
#include "aethex/coordinator/dqlite_client.h"

#define KEY_LEN 32
#define VALUE_LEN 1024
#define GROUP_INFLIGHT 64

static uv_loop_t loop;
static coord_dqlite_client_t *client;
static coord_dqlite_stmt_t *ins, *sel, *ins100;
static int nnodes;
static uint64_t nkeys;
static bool nodelay;
static char variant[32] = "";

static void die(const char *what, int rv)
{
    fprintf(stderr, "dqlite_bench: %s: %s\n", what, rv < 0 ? ax_strerror(rv) : "failed");
    exit(1);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        die("free port", -1);
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---- latencies ----------------------------------------------------------------------- */

struct lat {
    double *ms;
    size_t n, cap;
};

static void lat_add(struct lat *l, double ms)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->ms = realloc(l->ms, l->cap * sizeof *l->ms);
        if (l->ms == NULL)
            die("latency buffer", -1);
    }
    l->ms[l->n++] = ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(struct lat *l, double p)
{
    if (l->n == 0)
        return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)l->n);
    return l->ms[i == 0 ? 0 : i - 1];
}

static void report(const char *workload, struct lat *l, uint64_t rows, double secs)
{
    qsort(l->ms, l->n, sizeof *l->ms, cmp_double);
    printf("| ours (C, libuv)%s | %d | %s | %zu | %.0f | %.0f | %.2f | %.2f |\n", variant, nnodes,
           workload, l->n, (double)l->n / secs, (double)rows / secs, pct(l, 50), pct(l, 99));
    fflush(stdout);
    free(l->ms);
    memset(l, 0, sizeof *l);
}

/* ---- requests ------------------------------------------------------------------------ */

struct slot {
    coord_dqlite_req_t req;
    uint64_t start_ns;
    int done;
    int status;
    uint32_t rows;
    bool busy;
};

static int completed;
static void on_done(coord_dqlite_req_t *req, int status)
{
    struct slot *s = ax_container_of(req, struct slot, req);
    s->status = status;
    s->done++;
    s->busy = false;
    if (status == 0 && req->rows != NULL)
        s->rows = req->rows->nrows;
    if (status != 0)
        fprintf(stderr, "dqlite_bench: request failed: %s: %s\n", ax_err_name(status), req->errmsg);
    completed++;
}

static void wait_slot(struct slot *s)
{
    while (s->busy)
        uv_run(&loop, UV_RUN_ONCE);
    if (s->status != 0)
        die("request", s->status);
}

/* Keys are a deterministic function of their index, so reads can pick any written one. */
static void make_key(uint64_t i, char out[KEY_LEN + 1])
{
    uint64_t x = i * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    snprintf(out, KEY_LEN + 1, "%016llx%016llx", (unsigned long long)x,
             (unsigned long long)(x * 0x94d049bb133111ebull));
}

static char value[VALUE_LEN + 1];

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

static void submit_exec(struct slot *s, char key[KEY_LEN + 1])
{
    make_key(nkeys++, key);
    coord_dqlite_value_t p[] = {coord_dqlite_text(key), coord_dqlite_text(value)};
    memset(&s->req, 0, sizeof s->req);
    s->busy = true;
    s->start_ns = uv_hrtime();
    int rv = coord_dqlite_exec(&s->req, ins, p, 2, on_done);
    if (rv != 0)
        die("exec", rv);
}

static void bench_write_1(double secs)
{
    struct lat l = {0};
    struct slot s = {0};
    char key[KEY_LEN + 1];
    double t0 = now_s();
    while (now_s() - t0 < secs) {
        submit_exec(&s, key);
        wait_slot(&s);
        lat_add(&l, (double)(uv_hrtime() - s.start_ns) / 1e6);
    }
    report("write-1 (autocommit)", &l, l.n, now_s() - t0);
}

static void bench_write_batch(double secs)
{
    enum { BATCH = 100 };
    struct lat l = {0};
    struct slot s = {0};
    static char keys[BATCH][KEY_LEN + 1];
    coord_dqlite_value_t params[BATCH][2];
    coord_dqlite_call_t calls[BATCH];
    double t0 = now_s();
    while (now_s() - t0 < secs) {
        for (int i = 0; i < BATCH; i++) {
            make_key(nkeys++, keys[i]);
            params[i][0] = coord_dqlite_text(keys[i]);
            params[i][1] = coord_dqlite_text(value);
            calls[i] = (coord_dqlite_call_t){.stmt = ins, .params = params[i], .nparams = 2};
        }
        memset(&s.req, 0, sizeof s.req);
        s.busy = true;
        s.start_ns = uv_hrtime();
        int rv = coord_dqlite_write(&s.req, client, calls, BATCH, on_done);
        if (rv != 0)
            die("write", rv);
        wait_slot(&s);
        lat_add(&l, (double)(uv_hrtime() - s.start_ns) / 1e6);
    }
    report("write-batch100 (1 tx)", &l, l.n * BATCH, now_s() - t0);
}

static void bench_write_multirow(double secs)
{
    enum { ROWS = 100 };
    struct lat l = {0};
    struct slot s = {0};
    static char keys[ROWS][KEY_LEN + 1];
    coord_dqlite_value_t params[2 * ROWS];
    double t0 = now_s();
    while (now_s() - t0 < secs) {
        for (int i = 0; i < ROWS; i++) {
            make_key(nkeys++, keys[i]);
            params[2 * i] = coord_dqlite_text(keys[i]);
            params[2 * i + 1] = coord_dqlite_text(value);
        }
        memset(&s.req, 0, sizeof s.req);
        s.busy = true;
        s.start_ns = uv_hrtime();
        int rv = coord_dqlite_exec(&s.req, ins100, params, 2 * ROWS, on_done);
        if (rv != 0)
            die("exec", rv);
        wait_slot(&s);
        lat_add(&l, (double)(uv_hrtime() - s.start_ns) / 1e6);
    }
    report("write-multirow100 (1 stmt)", &l, l.n * ROWS, now_s() - t0);
}

static void bench_write_group(double secs)
{
    struct lat l = {0};
    static struct slot slots[GROUP_INFLIGHT];
    static char keys[GROUP_INFLIGHT][KEY_LEN + 1];
    memset(slots, 0, sizeof slots);
    double t0 = now_s();
    bool stop = false;
    for (;;) {
        bool any = false;
        for (int i = 0; i < GROUP_INFLIGHT; i++) {
            struct slot *s = &slots[i];
            if (s->busy) {
                any = true;
                continue;
            }
            if (s->done > 0) {
                if (s->status != 0)
                    die("write item", s->status);
                lat_add(&l, (double)(uv_hrtime() - s->start_ns) / 1e6);
                s->done = 0;
            }
            if (stop)
                continue;
            make_key(nkeys++, keys[i]);
            coord_dqlite_value_t p[] = {coord_dqlite_text(keys[i]), coord_dqlite_text(value)};
            coord_dqlite_call_t call = {.stmt = ins, .params = p, .nparams = 2};
            memset(&s->req, 0, sizeof s->req);
            s->busy = true;
            s->start_ns = uv_hrtime();
            int rv = coord_dqlite_write(&s->req, client, &call, 1, on_done);
            if (rv != 0)
                die("write", rv);
            any = true;
        }
        if (!any)
            break;
        uv_run(&loop, UV_RUN_ONCE);
        stop = now_s() - t0 >= secs;
    }
    report("write-group64 (queue packs)", &l, l.n, now_s() - t0);
}

static void bench_read(double secs)
{
    struct lat l = {0};
    struct slot s = {0};
    char key[KEY_LEN + 1];
    uint64_t seed = 88172645463325252ull;
    double t0 = now_s();
    while (now_s() - t0 < secs) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        make_key(seed % nkeys, key);
        coord_dqlite_value_t p = coord_dqlite_text(key);
        memset(&s.req, 0, sizeof s.req);
        s.busy = true;
        s.start_ns = uv_hrtime();
        int rv = coord_dqlite_query(&s.req, sel, &p, 1, on_done);
        if (rv != 0)
            die("query", rv);
        wait_slot(&s);
        if (s.rows != 1)
            die("query found no row", -1);
        lat_add(&l, (double)(uv_hrtime() - s.start_ns) / 1e6);
    }
    report("read-1 (point SELECT)", &l, l.n, now_s() - t0);
}

static void exec_sql(const char *sql)
{
    struct slot s = {0};
    s.busy = true;
    int rv = coord_dqlite_exec_sql(&s.req, client, sql, NULL, 0, on_done);
    if (rv != 0)
        die(sql, rv);
    wait_slot(&s);
}

int main(int argc, char **argv)
{
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "nodelay") == 0)) {
        fprintf(stderr, "usage: dqlite_bench NODES SECONDS DATA_ROOT [nodelay]\n");
        return 2;
    }
    nodelay = argc == 5;
    if (nodelay)
        snprintf(variant, sizeof variant, ", Raft TCP_NODELAY");
    signal(SIGPIPE, SIG_IGN);
    nnodes = atoi(argv[1]);
    double secs = atof(argv[2]);
    if (nnodes < 1 || nnodes > 3 || secs <= 0)
        die("arguments", -1);
    char root[512];
    snprintf(root, sizeof root, "%s/dqlite-bench-XXXXXX", argv[3]);
    if (mkdtemp(root) == NULL)
        die("mkdtemp", -1);
    for (int i = 0; i < VALUE_LEN; i++)
        value[i] = (char)('a' + (i * 7) % 26);

    dqlite_node *nodes[3];
    char addrs[3][64];
    for (int i = 0; i < nnodes; i++) {
        char dir[600];
        snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%d", free_port());
        snprintf(dir, sizeof dir, "%s/node%d", root, i + 1);
        mkdir(dir, 0700);
        if (dqlite_node_create((dqlite_node_id)(i + 1), addrs[i], dir, &nodes[i]) != 0 ||
            dqlite_node_set_bind_address(nodes[i], addrs[i]) != 0 ||
            (nodelay &&
             dqlite_node_set_connect_func(nodes[i], coord_dqlite_node_connect, NULL) != 0) ||
            dqlite_node_start(nodes[i]) != 0)
            die("dqlite node", -1);
    }
    uv_loop_init(&loop);
    coord_dqlite_client_config_t cfg;
    coord_dqlite_client_config_default(&cfg);
    const char *members[] = {addrs[0]};
    cfg.members = members;
    cfg.nmembers = 1;
    cfg.database = "bench";
    cfg.request_timeout_ms = 30000;
    int rv = coord_dqlite_client_new(&loop, &cfg, &client);
    if (rv != 0)
        die("client", rv);
    for (int i = 1; i < nnodes; i++) {
        struct slot s = {0};
        s.busy = true;
        if (coord_dqlite_add(&s.req, client, (uint64_t)i + 1, addrs[i], on_done) != 0)
            die("add", -1);
        wait_slot(&s);
        s.busy = true;
        if (coord_dqlite_assign(&s.req, client, (uint64_t)i + 1, COORD_DQLITE_VOTER, on_done) != 0)
            die("assign", -1);
        wait_slot(&s);
    }
    exec_sql("CREATE TABLE IF NOT EXISTS model (key TEXT, value TEXT, UNIQUE(key))");
    if (coord_dqlite_stmt_new(client, "INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)",
                              &ins) != 0 ||
        coord_dqlite_stmt_new(client, "SELECT value FROM model WHERE key = ?", &sel) != 0)
        die("stmt", -1);
    /* The multi-row INSERT is generated from a constant (100 placeholder pairs), not input. */
    static char sql100[64 + 100 * 8];
    size_t n = (size_t)snprintf(sql100, sizeof sql100,
                                "INSERT OR REPLACE INTO model(key, value) VALUES (?, ?)");
    for (int i = 1; i < 100; i++)
        n += (size_t)snprintf(sql100 + n, sizeof sql100 - n, ", (?, ?)");
    if (coord_dqlite_stmt_new(client, sql100, &ins100) != 0)
        die("stmt", -1);

    bench_write_1(secs);
    bench_write_batch(secs);
    bench_write_multirow(secs);
    bench_write_group(secs);
    bench_read(secs);

    coord_dqlite_client_close(client, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    for (int i = nnodes - 1; i >= 0; i--) {
        dqlite_node_stop(nodes[i]);
        dqlite_node_destroy(nodes[i]);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "dqlite_bench: could not remove %s\n", root);
    return 0;
}

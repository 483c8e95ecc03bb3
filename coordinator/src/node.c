/*
 * The embedded dqlite node (dqlite 1.11.1 public API only: create, bind, start, stop,
 * destroy). dqlite runs the node on its own thread and loop; we only start and stop it.
 */
#include "coordinator_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dqlite.h>

#include "aethex/common/alloc.h"
#include "aethex/common/log.h"
#include "aethex/coordinator/dqlite_client.h"

#define ERR(code, ...)                                                                             \
    do {                                                                                           \
        snprintf(errmsg, AX_ERRMSG_LEN, __VA_ARGS__);                                              \
        return (code);                                                                             \
    } while (0)

/* dqlite's reserved id for bootstrapping (dqlite.h); never ours. */
#define BOOTSTRAP_ID UINT64_C(0x2dc171858c3155be)
#define NODE_ID_FILE "node-id"
#define NODE_ID_FILE_MAX 32

struct coord_node {
    dqlite_node *dq; /* owned */
    uint64_t id;
    int started;
};

static int mkdir_p(const char *path)
{
    char buf[1100];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return AX_EINVAL;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Reads the id file. Returns 1 if found (id in *id), 0 if absent, < 0 on error. */
static int read_id(const char *file, uint64_t *id, char *errmsg)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        ERR(AX_EIO, "%.200s: %s", file, strerror(errno));
    }
    char buf[NODE_ID_FILE_MAX + 1];
    ssize_t r = read(fd, buf, NODE_ID_FILE_MAX);
    close(fd);
    if (r <= 0)
        ERR(AX_EBADDATA, "%.200s: empty or unreadable", file);
    buf[r] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno != 0 || end == buf || (*end != '\n' && *end != '\0') || v == 0)
        ERR(AX_EBADDATA, "%.200s: not a node id", file);
    *id = v;
    return 1;
}

static int write_id(const char *file, uint64_t id, char *errmsg)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%.1100s.tmp", file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        ERR(AX_EIO, "%.200s: %s", tmp, strerror(errno));
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%" PRIu64 "\n", id);
    /* Written, synced, then renamed: a crash leaves either no id or the whole id. */
    if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        ERR(AX_EIO, "%.200s: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, file) != 0)
        ERR(AX_EIO, "%.200s: %s", file, strerror(errno));
    return 0;
}

int coord__node_resolve_id(const char *data_dir, uint64_t configured, int joining,
                           const char *address, uint64_t *id, int *fresh, char *errmsg)
{
    int rv = mkdir_p(data_dir);
    if (rv != 0)
        ERR(rv, "data-dir %.200s: %s", data_dir, strerror(-rv));
    char file[1100];
    snprintf(file, sizeof file, "%s/" NODE_ID_FILE, data_dir);
    uint64_t stored = 0;
    rv = read_id(file, &stored, errmsg);
    if (rv < 0)
        return rv;
    *fresh = rv == 0;
    if (rv == 1) {
        if (configured != 0 && configured != stored)
            ERR(AX_EINVAL, "data-dir %.120s belongs to node %" PRIu64 ", not %" PRIu64, data_dir,
                stored, configured);
        *id = stored;
        return 0;
    }
    uint64_t chosen = configured;
    if (chosen == 0)
        chosen = joining ? (uint64_t)dqlite_generate_node_id(address) : 1;
    /* Joining nodes must never be 1 (it bootstraps) nor the reserved bootstrap id. */
    while (joining && (chosen == 1 || chosen == BOOTSTRAP_ID || chosen == 0))
        chosen = (uint64_t)dqlite_generate_node_id(address);
    rv = write_id(file, chosen, errmsg);
    if (rv != 0)
        return rv;
    *id = chosen;
    return 0;
}

int coord__node_start(const coord_node_config_t *cfg, coord_node_t **out, char *errmsg)
{
    *out = NULL;
    coord_node_t *n = ax_xcalloc(1, sizeof *n);
    n->id = cfg->id;
    int rv = dqlite_node_create(cfg->id, cfg->address, cfg->data_dir, &n->dq);
    if (rv != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "dqlite_node_create: %s (%d)",
                 n->dq ? dqlite_node_errmsg(n->dq) : "?", rv);
        goto fail;
    }
    rv = dqlite_node_set_bind_address(n->dq, cfg->address);
    if (rv != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "bind %.100s: %s (%d)", cfg->address,
                 dqlite_node_errmsg(n->dq), rv);
        goto fail;
    }
    /* Raft traffic between nodes goes through our connect function: libdqlite's default
     * leaves Nagle on, which cost 3-node commits 2.5-7x and ~50 ms at p99
     * (bench/dqlite/RESULTS.md), and waits minutes for an unreachable peer. */
    rv = dqlite_node_set_connect_func(n->dq, coord_dqlite_node_connect, NULL);
    if (rv != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "connect func: %s (%d)", dqlite_node_errmsg(n->dq), rv);
        goto fail;
    }
    if (cfg->network_latency_ms != 0 &&
        (rv = dqlite_node_set_network_latency_ms(n->dq, cfg->network_latency_ms)) != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "network latency: %s (%d)", dqlite_node_errmsg(n->dq), rv);
        goto fail;
    }
    if ((cfg->snapshot_threshold != 0 || cfg->snapshot_trailing != 0) &&
        (rv = dqlite_node_set_snapshot_params(n->dq, cfg->snapshot_threshold,
                                              cfg->snapshot_trailing)) != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "snapshot params: %s (%d)", dqlite_node_errmsg(n->dq), rv);
        goto fail;
    }
    rv = dqlite_node_start(n->dq);
    if (rv != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "start: %s (%d)", dqlite_node_errmsg(n->dq), rv);
        goto fail;
    }
    n->started = 1;
    *out = n;
    return 0;
fail:
    coord__node_stop_free(n);
    return AX_EIO;
}

void coord__node_stop_free(coord_node_t *n)
{
    if (!n)
        return;
    if (n->started) {
        int rv = dqlite_node_stop(n->dq);
        if (rv != 0)
            AX_LOG_W("coordinator", "node=%" PRIu64 " dqlite_node_stop: %d", n->id, rv);
    }
    if (n->dq)
        dqlite_node_destroy(n->dq);
    ax_free(n);
}

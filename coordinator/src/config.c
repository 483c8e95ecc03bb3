/*
 * Configuration file and flags (config.h). Pure parsing: nothing here touches the network;
 * the only I/O is reading the config file in coord_config_load_file().
 */
#include "aethex/coordinator/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aethex/common/error.h"
#include "aethex/common/util.h"

#define ERR(code, ...)                                                                             \
    do {                                                                                           \
        snprintf(errmsg, AX_ERRMSG_LEN, __VA_ARGS__);                                              \
        return (code);                                                                             \
    } while (0)

void coord_config_default(coord_config_t *c)
{
    *c = (coord_config_t){
        .address = "127.0.0.1:9001",
        .data_dir = "var/coordinator",
        .http = "127.0.0.1:9080",
        .log_level = AX_LOG_INFO,
        /* dqlite derives heartbeat (1.5x) and election (15x) timeouts from it: 50 ms gives a
         * 0.75-1.5 s election timeout, instead of dqlite's 5-10 s default. */
        .network_latency_ms = 50,
        .join_timeout_ms = 60000,
        .migrate_timeout_ms = 60000,
    };
}

int coord_config_check_address(const char *s, int allow_port0)
{
    size_t n = strlen(s);
    if (n == 0 || n > COORD_CONFIG_MAX_ADDRESS)
        return AX_EINVAL;
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return AX_EINVAL;
    char host[COORD_CONFIG_MAX_ADDRESS + 1];
    size_t hlen = (size_t)(colon - s);
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    unsigned char buf[16];
    if (host[0] == '[') {
        if (hlen < 3 || host[hlen - 1] != ']')
            return AX_EINVAL;
        host[hlen - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, buf) != 1)
            return AX_EINVAL;
    } else if (inet_pton(AF_INET, host, buf) != 1) {
        return AX_EINVAL;
    }
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return AX_EINVAL;
    unsigned long port = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return AX_EINVAL;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535 || (port == 0 && !allow_port0))
        return AX_EINVAL;
    return 0;
}

static int parse_u64(const char *v, uint64_t max, uint64_t *out)
{
    if (*v == '\0' || strlen(v) > 20)
        return AX_EINVAL;
    uint64_t x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return AX_EINVAL;
        uint64_t d = (uint64_t)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return AX_ERANGE;
        x = x * 10 + d;
    }
    if (x > max)
        return AX_ERANGE;
    *out = x;
    return 0;
}

static int set_u32(uint32_t *dst, const char *key, const char *value, uint32_t max, char *errmsg)
{
    uint64_t v;
    if (parse_u64(value, max, &v) != 0)
        ERR(AX_EINVAL, "%s: expected an integer 0..%u, got '%.64s'", key, max, value);
    *dst = (uint32_t)v;
    return 0;
}

static int set_string(char *dst, size_t cap, const char *key, const char *value, char *errmsg)
{
    size_t n = strlen(value);
    if (n >= cap)
        ERR(AX_EMSGSIZE, "%s: longer than %zu bytes", key, cap - 1);
    memcpy(dst, value, n + 1);
    return 0;
}

static int set_join(coord_config_t *c, const char *value, char *errmsg)
{
    /* "host:port[,host:port...]"; an empty value clears the list. */
    c->njoin = 0;
    const char *p = value;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0)
            ERR(AX_EINVAL, "join: empty member in '%.64s'", value);
        if (c->njoin == COORD_CONFIG_MAX_JOIN)
            ERR(AX_ENOSPC, "join: more than %d members", COORD_CONFIG_MAX_JOIN);
        if (n > COORD_CONFIG_MAX_ADDRESS)
            ERR(AX_EMSGSIZE, "join: member longer than %d bytes", COORD_CONFIG_MAX_ADDRESS);
        char *dst = c->join[c->njoin];
        memcpy(dst, p, n);
        dst[n] = '\0';
        if (coord_config_check_address(dst, 0) != 0)
            ERR(AX_EINVAL, "join: '%.64s' is not a numeric host:port", dst);
        c->njoin++;
        if (!end)
            break;
        p = end + 1;
        if (*p == '\0')
            ERR(AX_EINVAL, "join: trailing ','");
    }
    return 0;
}

int coord_config_set(coord_config_t *c, const char *key, const char *value, char *errmsg)
{
    if (strcmp(key, "node-id") == 0) {
        uint64_t v;
        if (parse_u64(value, UINT64_MAX, &v) != 0)
            ERR(AX_EINVAL, "node-id: expected a positive integer, got '%.64s'", value);
        c->node_id = v;
        return 0;
    }
    if (strcmp(key, "address") == 0) {
        if (coord_config_check_address(value, 0) != 0)
            ERR(AX_EINVAL, "address: '%.64s' is not a numeric host:port", value);
        return set_string(c->address, sizeof c->address, key, value, errmsg);
    }
    if (strcmp(key, "data-dir") == 0) {
        if (*value == '\0')
            ERR(AX_EINVAL, "data-dir: empty");
        return set_string(c->data_dir, sizeof c->data_dir, key, value, errmsg);
    }
    if (strcmp(key, "join") == 0)
        return set_join(c, value, errmsg);
    if (strcmp(key, "http") == 0) {
        if (*value != '\0' && coord_config_check_address(value, 1) != 0)
            ERR(AX_EINVAL, "http: '%.64s' is not a numeric host:port (or empty)", value);
        return set_string(c->http, sizeof c->http, key, value, errmsg);
    }
    if (strcmp(key, "log-level") == 0) {
        if (ax_log_parse_level(value, &c->log_level) != 0)
            ERR(AX_EINVAL, "log-level: expected debug, info, warn or error, got '%.32s'", value);
        return 0;
    }
    if (strcmp(key, "network-latency-ms") == 0) {
        int rv = set_u32(&c->network_latency_ms, key, value, 3600000, errmsg);
        if (rv == 0 && c->network_latency_ms == 0)
            ERR(AX_EINVAL, "network-latency-ms: must be 1..3600000");
        return rv;
    }
    if (strcmp(key, "snapshot-threshold") == 0)
        return set_u32(&c->snapshot_threshold, key, value, UINT32_MAX, errmsg);
    if (strcmp(key, "snapshot-trailing") == 0)
        return set_u32(&c->snapshot_trailing, key, value, UINT32_MAX, errmsg);
    if (strcmp(key, "join-timeout-ms") == 0)
        return set_u32(&c->join_timeout_ms, key, value, 86400000, errmsg);
    if (strcmp(key, "migrate-timeout-ms") == 0)
        return set_u32(&c->migrate_timeout_ms, key, value, 86400000, errmsg);
    if (strcmp(key, "rpc-listen") == 0) {
        if (*value != '\0' && coord_config_check_address(value, 1) != 0)
            ERR(AX_EINVAL, "rpc-listen: '%.64s' is not a numeric host:port (or empty)", value);
        return set_string(c->rpc_listen, sizeof c->rpc_listen, key, value, errmsg);
    }
    if (strcmp(key, "cluster-secret") == 0) {
        /* Never echo a secret into an error message. */
        if (*value != '\0' && strlen(value) < 32)
            ERR(AX_EINVAL, "cluster-secret: shorter than 32 bytes");
        return set_string(c->cluster_secret, sizeof c->cluster_secret, key, value, errmsg);
    }
    if (strcmp(key, "cluster-secret-file") == 0)
        return set_string(c->cluster_secret_file, sizeof c->cluster_secret_file, key, value,
                          errmsg);
    ERR(AX_ENOENT, "unknown key '%.64s'", key);
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

int coord_config_parse_text(coord_config_t *c, const char *text, size_t len, char *errmsg)
{
    if (len > COORD_CONFIG_MAX_FILE)
        ERR(AX_EMSGSIZE, "config larger than %d bytes", COORD_CONFIG_MAX_FILE);
    size_t pos = 0;
    for (unsigned lineno = 1; pos < len; lineno++) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n > COORD_CONFIG_MAX_LINE)
            ERR(AX_EMSGSIZE, "line %u: longer than %d bytes", lineno, COORD_CONFIG_MAX_LINE);
        if (memchr(line, '\0', n))
            ERR(AX_EINVAL, "line %u: NUL byte", lineno);
        char buf[COORD_CONFIG_MAX_LINE + 1];
        memcpy(buf, line, n);
        buf[n] = '\0';
        char *s = buf;
        while (is_space(*s))
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            ERR(AX_EINVAL, "line %u: expected 'key = value'", lineno);
        char *kend = eq;
        while (kend > s && is_space(kend[-1]))
            kend--;
        *kend = '\0';
        char *v = eq + 1;
        while (is_space(*v))
            v++;
        char *vend = v + strlen(v);
        while (vend > v && is_space(vend[-1]))
            vend--;
        *vend = '\0';
        if (*s == '\0')
            ERR(AX_EINVAL, "line %u: empty key", lineno);
        char sub[AX_ERRMSG_LEN];
        int rv = coord_config_set(c, s, v, sub);
        if (rv != 0)
            ERR(rv, "line %u: %.200s", lineno, sub);
    }
    return 0;
}

int coord_config_load_file(coord_config_t *c, const char *path, char *errmsg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        ERR(e == ENOENT   ? AX_ENOENT
            : e == EACCES ? AX_EACCES
                          : AX_EIO,
            "%s: %s", path, strerror(e));
    }
    static char buf[COORD_CONFIG_MAX_FILE + 1];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            ERR(AX_EIO, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > COORD_CONFIG_MAX_FILE) {
            close(fd);
            ERR(AX_EMSGSIZE, "%s: larger than %d bytes", path, COORD_CONFIG_MAX_FILE);
        }
    }
    close(fd);
    char sub[AX_ERRMSG_LEN];
    int rv = coord_config_parse_text(c, buf, len, sub);
    if (rv != 0)
        ERR(rv, "%.40s: %.200s", path, sub);
    return 0;
}

/* Splits "--key=value" or "--key value"; returns the number of argv entries used (1 or 2),
 * or a negative error. */
static int flag_at(int argc, char *const *argv, int i, char *key, size_t keycap, const char **value,
                   char *errmsg)
{
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
        ERR(AX_EINVAL, "unexpected argument '%.64s'", a);
    const char *k = a + 2;
    const char *eq = strchr(k, '=');
    size_t klen = eq ? (size_t)(eq - k) : strlen(k);
    if (klen >= keycap)
        ERR(AX_EINVAL, "unknown flag '%.64s'", a);
    memcpy(key, k, klen);
    key[klen] = '\0';
    if (strcmp(key, "help") == 0) {
        *value = NULL;
        return 1;
    }
    if (eq) {
        *value = eq + 1;
        return 1;
    }
    if (i + 1 >= argc)
        ERR(AX_EINVAL, "--%s needs a value", key);
    *value = argv[i + 1];
    return 2;
}

int coord_config_parse_args(coord_config_t *c, int argc, char *const *argv, int *help, char *errmsg)
{
    char key[64];
    const char *value;
    char sub[AX_ERRMSG_LEN];
    *help = 0;
    /* Pass 1: the config file, so that every flag overrides it whatever their order. */
    for (int i = 1; i < argc;) {
        int used = flag_at(argc, argv, i, key, sizeof key, &value, errmsg);
        if (used < 0)
            return used;
        if (strcmp(key, "help") == 0) {
            *help = 1;
            return 0;
        }
        if (strcmp(key, "config") == 0) {
            int rv = coord_config_load_file(c, value, sub);
            if (rv != 0)
                ERR(rv, "--config: %.200s", sub);
        }
        i += used;
    }
    for (int i = 1; i < argc;) {
        int used = flag_at(argc, argv, i, key, sizeof key, &value, errmsg);
        if (used < 0)
            return used;
        if (strcmp(key, "config") != 0) {
            int rv = coord_config_set(c, key, value, sub);
            if (rv == AX_ENOENT)
                ERR(AX_EINVAL, "unknown flag '--%s'", key);
            if (rv != 0)
                ERR(rv, "--%.200s", sub);
        }
        i += used;
    }
    return coord_config_validate(c, errmsg);
}

int coord_config_validate(const coord_config_t *c, char *errmsg)
{
    if (c->address[0] == '\0')
        ERR(AX_EINVAL, "address: required");
    if (c->data_dir[0] == '\0')
        ERR(AX_EINVAL, "data-dir: required");
    for (uint32_t i = 0; i < c->njoin; i++) {
        if (strcmp(c->join[i], c->address) == 0 && c->njoin == 1)
            ERR(AX_EINVAL, "join: the only member listed is this node's own address");
    }
    if (c->node_id == 1 && c->njoin > 0)
        ERR(AX_EINVAL, "node-id 1 bootstraps a new cluster: it cannot also join one");
    if (c->rpc_listen[0] != '\0' && c->cluster_secret[0] == '\0' &&
        c->cluster_secret_file[0] == '\0')
        ERR(AX_EINVAL, "rpc-listen: needs cluster-secret or cluster-secret-file");
    if (c->cluster_secret[0] != '\0' && c->cluster_secret_file[0] != '\0')
        ERR(AX_EINVAL, "cluster-secret and cluster-secret-file: give one, not both");
    if (c->node_id == 0x2dc171858c3155beULL)
        ERR(AX_EINVAL, "node-id: %llu is dqlite's reserved bootstrap id",
            (unsigned long long)c->node_id);
    return 0;
}

const char *coord_config_usage(void)
{
    return "usage: aethex-coordinator [--config FILE] [--key value ...]\n"
           "  --config FILE             `key = value` lines; flags override them\n"
           "  --node-id N               dqlite node id (default: kept in data-dir; 1 when\n"
           "                            bootstrapping, derived from the address when joining)\n"
           "  --address HOST:PORT       dqlite address for raft and clients (127.0.0.1:9001)\n"
           "  --data-dir DIR            raft log and snapshots (var/coordinator)\n"
           "  --join HOST:PORT[,...]    join the cluster these members belong to\n"
           "  --http HOST:PORT          /metrics listener, \"\" to disable (127.0.0.1:9080)\n"
           "  --log-level LEVEL         debug, info, warn, error (info)\n"
           "  --network-latency-ms N    one-way latency estimate; election timeout 15x (50)\n"
           "  --snapshot-threshold N    raft entries between snapshots (dqlite default)\n"
           "  --snapshot-trailing N     raft entries kept after a snapshot (dqlite default)\n"
           "  --join-timeout-ms N       give up joining after N ms (60000)\n"
           "  --migrate-timeout-ms N    give up migrating after N ms (60000)\n"
           "  --rpc-listen HOST:PORT    edge RPC listener, \"\" to disable (disabled)\n"
           "  --cluster-secret S        shared by edges and coordinators, >= 32 bytes\n"
           "  --cluster-secret-file F   the same, read from a file (one trailing newline dropped)\n";
}

/*
 * aethex-coordinator's configuration: a file of `key = value` lines, then command-line flags
 * (`--key value` or `--key=value`) that override it. Keys and flags share names; the full
 * list with defaults is in docs/coordinator.md and in coord_config_usage().
 *
 * File syntax: one `key = value` per line; blank lines and lines starting with '#' are
 * ignored; whitespace around key and value is trimmed; no quoting (values never need it).
 * A bad line is an error naming its line number ("line 3: unknown key 'adress'"). Limits:
 * COORD_CONFIG_MAX_FILE bytes per file, COORD_CONFIG_MAX_LINE bytes per line.
 */
#ifndef AETHEX_COORDINATOR_CONFIG_H
#define AETHEX_COORDINATOR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "aethex/common/log.h"

#define COORD_CONFIG_MAX_FILE (64 * 1024)
#define COORD_CONFIG_MAX_LINE 1024
#define COORD_CONFIG_MAX_ADDRESS 255 /* "a.b.c.d:port" or "[v6]:port" */
#define COORD_CONFIG_MAX_PATH 1024
#define COORD_CONFIG_MAX_SECRET 1024 /* bytes of an inline cluster-secret */
#define COORD_CONFIG_MAX_JOIN 7 /* members listed in `join`: a 5-voter cluster plus spares */

typedef struct coord_config {
    uint64_t node_id;                           /* 0: automatic (docs/coordinator.md) */
    char address[COORD_CONFIG_MAX_ADDRESS + 1]; /* dqlite: raft + clients, TCP */
    char data_dir[COORD_CONFIG_MAX_PATH + 1];
    char join[COORD_CONFIG_MAX_JOIN][COORD_CONFIG_MAX_ADDRESS + 1];
    uint32_t njoin;
    char http[COORD_CONFIG_MAX_ADDRESS + 1]; /* /metrics listener; "" disables it */
    ax_log_level_t log_level;
    uint32_t network_latency_ms; /* dqlite: heartbeat 1.5x, election 15x */
    uint32_t snapshot_threshold; /* 0: dqlite's default */
    uint32_t snapshot_trailing;  /* 0: dqlite's default */
    uint32_t join_timeout_ms;    /* give up joining (exit 1) after this */
    uint32_t migrate_timeout_ms; /* give up migrating/waiting (exit 1) after this */
    /* Edge RPC (docs/protocol-rpc.md). "" disables the listener. Port 0 picks a free port,
     * but then NotLeader cannot name this node's RPC address to others (see rpc-port
     * convention in docs/coordinator.md). */
    char rpc_listen[COORD_CONFIG_MAX_ADDRESS + 1];
    char cluster_secret[COORD_CONFIG_MAX_SECRET + 1];         /* inline secret, or */
    char cluster_secret_file[COORD_CONFIG_MAX_PATH + 1]; /* a file holding it */
} coord_config_t;

/* Fills the defaults: address 127.0.0.1:9001, data_dir var/coordinator, http 127.0.0.1:9080,
 * log level info, network latency 50 ms, join timeout 60 s, migrate timeout 60 s, everything else
 * 0/empty. */
void coord_config_default(coord_config_t *c);

/* Sets one key from its text value (both borrowed). Returns 0, or AX_ENOENT (unknown key) /
 * AX_EINVAL (bad value) / AX_EMSGSIZE (too long) with a message in `errmsg`
 * (AX_ERRMSG_LEN bytes). */
int coord_config_set(coord_config_t *c, const char *key, const char *value, char *errmsg);

/* Applies the `key = value` lines of `text` (`len` bytes, borrowed; need not be
 * NUL-terminated). Returns 0 or the first line's error, with "line N: " in `errmsg`. */
int coord_config_parse_text(coord_config_t *c, const char *text, size_t len, char *errmsg);

/* Reads the file at `path` (at most COORD_CONFIG_MAX_FILE bytes) and applies it. Returns 0,
 * AX_ENOENT/AX_EACCES/AX_EIO (cannot read), AX_EMSGSIZE, or a parse error. */
int coord_config_load_file(coord_config_t *c, const char *path, char *errmsg);

/*
 * Applies argv (argv[0] is skipped): first the file named by `--config FILE` if any, then
 * every other flag in order, so flags override the file. `--help` sets *help and stops.
 * Returns 0 or an error with `errmsg` naming the flag. Checks the result with
 * coord_config_validate().
 */
int coord_config_parse_args(coord_config_t *c, int argc, char *const *argv, int *help,
                            char *errmsg);

/* Checks what no single key can: returns 0 or AX_EINVAL with `errmsg`. */
int coord_config_validate(const coord_config_t *c, char *errmsg);

/* Checks that `s` is "a.b.c.d:port" or "[v6]:port" with a numeric host and a port in 1..65535
 * (port 0 only if `allow_port0`). Returns 0 or AX_EINVAL. */
int coord_config_check_address(const char *s, int allow_port0);

/* The usage text (static). */
const char *coord_config_usage(void);

#endif /* AETHEX_COORDINATOR_CONFIG_H */

/*
 * aethexctl's stream-key and channel commands (docs/coordinator.md "Stream keys"). Parsing
 * and printing live here; aethexctl.c runs the write item or query each command needs
 * through its client. Internal to coordinator/src/.
 *
 *   keys create SLUG [LABEL]        a new key for channel SLUG: 32 random bytes (libsodium),
 *                                   printed ONCE as 64 hex digits; only SHA-256 is stored
 *   keys rotate SLUG [LABEL]        revoke every active key of SLUG and create one (atomic)
 *   keys revoke SLUG [KEY-ID]       revoke every active key of SLUG (or the one KEY-ID)
 *   keys list SLUG                  ids, labels, dates; never a key
 *   channels create SLUG --owner USERNAME
 *                                   a channel (and its owner, if no such user exists yet)
 */
#ifndef AETHEX_COORDINATOR_CTL_KEYS_H
#define AETHEX_COORDINATOR_CTL_KEYS_H

#include <stdint.h>

#include "aethex/coordinator/dqlite_client.h"

#define CTL_KEYS_KEY_BYTES 32
#define CTL_KEYS_SLUG_MAX 64
#define CTL_KEYS_LABEL_MAX 128

typedef enum {
    CTL_KEYS_CREATE,
    CTL_KEYS_ROTATE,
    CTL_KEYS_REVOKE,
    CTL_KEYS_LIST,
    CTL_CHANNELS_CREATE,
} ctl_keys_kind_t;

/* One parsed command: a write item (`ncalls` statements) or one query (`write` 0). The key
 * bytes are wiped by ctl_keys_wipe(). The struct must stay where it is: params point into
 * it. */
typedef struct ctl_keys_cmd {
    ctl_keys_kind_t kind;
    int write;
    coord_dqlite_call_t calls[3];
    uint32_t ncalls;
    coord_dqlite_value_t params[3][6];
    char slug[CTL_KEYS_SLUG_MAX + 1];
    char arg[CTL_KEYS_LABEL_MAX + 1]; /* label, key id or owner */
    char email[CTL_KEYS_LABEL_MAX + 32];
    char supabase_id[CTL_KEYS_LABEL_MAX + 8];
    uint8_t key[CTL_KEYS_KEY_BYTES];
    uint8_t key_hash[32];
    int64_t now_ms;
} ctl_keys_cmd_t;

/* True when args[0] is "keys" or "channels". */
int ctl_keys_is_command(const char *name);

/* Parses args (nargs, args[0] the command) into *cmd, generating the key for create/rotate.
 * Returns 0, or AX_EINVAL with a one-line message in errmsg (AX_ERRMSG_LEN). */
int ctl_keys_parse(int nargs, char **args, uint64_t now_ms, ctl_keys_cmd_t *cmd, char *errmsg);

/* Prints the outcome of a successful run (the key, once, for create/rotate). Returns the
 * exit status: 0, or 1 when the channel (or key) does not exist, with the error printed. */
int ctl_keys_print(const ctl_keys_cmd_t *cmd, int json, const coord_dqlite_rows_t *rows,
                   const coord_dqlite_result_t *result);

/* Zeroes the key bytes. */
void ctl_keys_wipe(ctl_keys_cmd_t *cmd);

#endif /* AETHEX_COORDINATOR_CTL_KEYS_H */

/*
 * aethexctl keys / channels (ctl_keys.h). Every statement has bound parameters; a command
 * that writes is ONE write item, so "revoke the old keys and create a new one" (rotate) and
 * "the owner, then the channel" (channels create) are atomic.
 */
#include "ctl_keys.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "aethex/common/error.h"
#include "aethex/common/util.h"

#define ERR(...)                                                                                   \
    do {                                                                                           \
        snprintf(errmsg, AX_ERRMSG_LEN, __VA_ARGS__);                                              \
        return AX_EINVAL;                                                                          \
    } while (0)

int ctl_keys_is_command(const char *name)
{
    return strcmp(name, "keys") == 0 || strcmp(name, "channels") == 0;
}

/* Slugs and usernames: lower-case letters, digits, '-' and '_' (they end up in URLs). */
static int valid_slug(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CTL_KEYS_SLUG_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '_'))
            return 0;
    return 1;
}

static const char sql_insert_key[] =
    "INSERT INTO stream_keys (channel_id, key_hash, label) SELECT id, ?, ? FROM channels"
    " WHERE slug = ?";
static const char sql_revoke_all[] =
    "UPDATE stream_keys SET revoked_at = ? WHERE revoked_at IS NULL AND channel_id ="
    " (SELECT id FROM channels WHERE slug = ?)";
static const char sql_revoke_one[] =
    "UPDATE stream_keys SET revoked_at = ? WHERE revoked_at IS NULL AND id = ? AND channel_id ="
    " (SELECT id FROM channels WHERE slug = ?)";
static const char sql_list[] =
    "SELECT k.id, k.label, k.created_at, k.last_used_at, k.revoked_at FROM stream_keys k"
    " JOIN channels c ON c.id = k.channel_id WHERE c.slug = ? ORDER BY k.created_at, k.id";
static const char sql_user[] = "INSERT INTO users (supabase_id, username, email) VALUES (?, ?, ?)"
                               " ON CONFLICT (username) DO NOTHING";
static const char sql_channel[] =
    "INSERT INTO channels (user_id, name, slug) SELECT id, ?, ? FROM users WHERE username = ?"
    " ON CONFLICT DO NOTHING";

static void new_key(ctl_keys_cmd_t *c, uint32_t call)
{
    randombytes_buf(c->key, sizeof c->key);
    crypto_hash_sha256(c->key_hash, c->key, sizeof c->key);
    c->params[call][0] = coord_dqlite_blob(c->key_hash, sizeof c->key_hash);
    c->params[call][1] = c->arg[0] ? coord_dqlite_text(c->arg) : coord_dqlite_null();
    c->params[call][2] = coord_dqlite_text(c->slug);
    c->calls[call] =
        (coord_dqlite_call_t){.sql = sql_insert_key, .params = c->params[call], .nparams = 3};
}

int ctl_keys_parse(int nargs, char **args, uint64_t now_ms, ctl_keys_cmd_t *c, char *errmsg)
{
    memset(c, 0, sizeof *c);
    c->now_ms = (int64_t)now_ms;
    if (sodium_init() < 0)
        ERR("libsodium: init failed");
    if (strcmp(args[0], "channels") == 0) {
        if (nargs != 5 || strcmp(args[1], "create") != 0 || strcmp(args[3], "--owner") != 0)
            ERR("usage: channels create SLUG --owner USERNAME");
        if (!valid_slug(args[2]))
            ERR("channels create: SLUG must be 1..64 of a-z 0-9 - _");
        if (!valid_slug(args[4]))
            ERR("channels create: USERNAME must be 1..64 of a-z 0-9 - _");
        c->kind = CTL_CHANNELS_CREATE;
        c->write = 1;
        snprintf(c->slug, sizeof c->slug, "%s", args[2]);
        snprintf(c->arg, sizeof c->arg, "%s", args[4]);
        /* A local account: no external auth id yet, an address that cannot receive mail. */
        snprintf(c->supabase_id, sizeof c->supabase_id, "local:%s", c->arg);
        snprintf(c->email, sizeof c->email, "%s@users.invalid", c->arg);
        c->params[0][0] = coord_dqlite_text(c->supabase_id);
        c->params[0][1] = coord_dqlite_text(c->arg);
        c->params[0][2] = coord_dqlite_text(c->email);
        c->calls[0] = (coord_dqlite_call_t){.sql = sql_user, .params = c->params[0], .nparams = 3};
        c->params[1][0] = coord_dqlite_text(c->slug);
        c->params[1][1] = coord_dqlite_text(c->slug);
        c->params[1][2] = coord_dqlite_text(c->arg);
        c->calls[1] =
            (coord_dqlite_call_t){.sql = sql_channel, .params = c->params[1], .nparams = 3};
        c->ncalls = 2;
        return 0;
    }
    if (nargs < 3)
        ERR("usage: keys create|rotate|revoke|list SLUG ...");
    const char *sub = args[1];
    if (!valid_slug(args[2]))
        ERR("keys %s: SLUG must be 1..64 of a-z 0-9 - _", sub);
    snprintf(c->slug, sizeof c->slug, "%s", args[2]);
    if (nargs == 4) {
        if (strlen(args[3]) > CTL_KEYS_LABEL_MAX)
            ERR("keys %s: LABEL or KEY-ID longer than %d bytes", sub, CTL_KEYS_LABEL_MAX);
        snprintf(c->arg, sizeof c->arg, "%s", args[3]);
    } else if (nargs > 4) {
        ERR("keys %s: too many arguments", sub);
    }
    if (strcmp(sub, "create") == 0) {
        c->kind = CTL_KEYS_CREATE;
        c->write = 1;
        new_key(c, 0);
        c->ncalls = 1;
    } else if (strcmp(sub, "rotate") == 0) {
        c->kind = CTL_KEYS_ROTATE;
        c->write = 1;
        c->params[0][0] = coord_dqlite_int(c->now_ms);
        c->params[0][1] = coord_dqlite_text(c->slug);
        c->calls[0] =
            (coord_dqlite_call_t){.sql = sql_revoke_all, .params = c->params[0], .nparams = 2};
        new_key(c, 1);
        c->ncalls = 2;
    } else if (strcmp(sub, "revoke") == 0) {
        c->kind = CTL_KEYS_REVOKE;
        c->write = 1;
        c->params[0][0] = coord_dqlite_int(c->now_ms);
        if (c->arg[0]) {
            c->params[0][1] = coord_dqlite_text(c->arg);
            c->params[0][2] = coord_dqlite_text(c->slug);
            c->calls[0] =
                (coord_dqlite_call_t){.sql = sql_revoke_one, .params = c->params[0], .nparams = 3};
        } else {
            c->params[0][1] = coord_dqlite_text(c->slug);
            c->calls[0] =
                (coord_dqlite_call_t){.sql = sql_revoke_all, .params = c->params[0], .nparams = 2};
        }
        c->ncalls = 1;
    } else if (strcmp(sub, "list") == 0 && nargs == 3) {
        c->kind = CTL_KEYS_LIST;
        c->params[0][0] = coord_dqlite_text(c->slug);
        c->calls[0] = (coord_dqlite_call_t){.sql = sql_list, .params = c->params[0], .nparams = 1};
        c->ncalls = 1;
    } else {
        ERR("unknown keys command '%.32s' (create, rotate, revoke, list)", sub);
    }
    return 0;
}

static int not_found(int json, const char *msg)
{
    if (json) {
        json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", "not_found", "message", msg);
        json_dumpf(o, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(o);
    } else {
        fprintf(stderr, "aethexctl: %s\n", msg);
    }
    return 1;
}

static void emit(json_t *o)
{
    json_dumpf(o, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(o);
}

static json_t *opt_int(const coord_dqlite_value_t *v)
{
    return v->type == COORD_DQLITE_INTEGER ? json_integer((json_int_t)v->i) : json_null();
}

int ctl_keys_print(const ctl_keys_cmd_t *c, int json, const coord_dqlite_rows_t *rows,
                   const coord_dqlite_result_t *result)
{
    char msg[320];
    switch (c->kind) {
    case CTL_CHANNELS_CREATE:
        if (json)
            emit(json_pack("{s:s,s:s,s:b}", "channel", c->slug, "owner", c->arg, "created",
                           result->rows_affected > 0));
        else if (result->rows_affected > 0)
            printf("channel %s created (owner %s)\n", c->slug, c->arg);
        else
            printf("channel %s already exists\n", c->slug);
        return 0;
    case CTL_KEYS_CREATE:
    case CTL_KEYS_ROTATE: {
        if (result->rows_affected == 0) {
            snprintf(msg, sizeof msg, "no channel '%s'", c->slug);
            return not_found(json, msg);
        }
        char hex[2 * CTL_KEYS_KEY_BYTES + 1];
        sodium_bin2hex(hex, sizeof hex, c->key, sizeof c->key);
        if (json) {
            emit(json_pack("{s:s,s:s,s:s}", "channel", c->slug, "key", hex, "note",
                           "shown once: only its SHA-256 is stored"));
        } else {
            printf("%s\n", hex);
            fprintf(stderr,
                    "aethexctl: stream key for %s%s (shown once: only its SHA-256 is "
                    "stored)\n",
                    c->slug, c->kind == CTL_KEYS_ROTATE ? "; older keys revoked" : "");
        }
        sodium_memzero(hex, sizeof hex);
        return 0;
    }
    case CTL_KEYS_REVOKE:
        if (result->rows_affected == 0) {
            snprintf(msg, sizeof msg, "no active key%s%s for channel '%s'", c->arg[0] ? " " : "",
                     c->arg, c->slug);
            return not_found(json, msg);
        }
        if (json)
            emit(json_pack("{s:s,s:I}", "channel", c->slug, "revoked",
                           (json_int_t)result->rows_affected));
        else
            printf("revoked %" PRIu64 " key(s) of %s\n", result->rows_affected, c->slug);
        return 0;
    case CTL_KEYS_LIST: {
        json_t *arr = json ? json_array() : NULL;
        if (!json)
            printf("%-26s  %-20s  %-14s  %-14s  %s\n", "ID", "LABEL", "CREATED_AT", "LAST_USED_AT",
                   "REVOKED_AT");
        for (uint32_t i = 0; rows != NULL && i < rows->nrows; i++) {
            const coord_dqlite_value_t *id = coord_dqlite_rows_at(rows, i, 0);
            const coord_dqlite_value_t *label = coord_dqlite_rows_at(rows, i, 1);
            const coord_dqlite_value_t *v[3] = {coord_dqlite_rows_at(rows, i, 2),
                                                coord_dqlite_rows_at(rows, i, 3),
                                                coord_dqlite_rows_at(rows, i, 4)};
            if (json) {
                json_array_append_new(
                    arr, json_pack("{s:s%,s:o,s:o,s:o,s:o}", "id", (const char *)id->s.base,
                                   id->s.len, "label",
                                   label->type == COORD_DQLITE_TEXT
                                       ? json_stringn((const char *)label->s.base, label->s.len)
                                       : json_null(),
                                   "created_at", opt_int(v[0]), "last_used_at", opt_int(v[1]),
                                   "revoked_at", opt_int(v[2])));
                continue;
            }
            printf("%-26.*s  %-20.*s", (int)id->s.len, (const char *)id->s.base,
                   label->type == COORD_DQLITE_TEXT ? (int)label->s.len : 1,
                   label->type == COORD_DQLITE_TEXT ? (const char *)label->s.base : "-");
            for (int k = 0; k < 3; k++) {
                if (v[k]->type == COORD_DQLITE_INTEGER)
                    printf("  %-14" PRId64, v[k]->i);
                else
                    printf("  %-14s", "-");
            }
            putchar('\n');
        }
        if (json)
            emit(json_pack("{s:s,s:o}", "channel", c->slug, "keys", arr));
        return 0;
    }
    }
    return 0;
}

void ctl_keys_wipe(ctl_keys_cmd_t *cmd)
{
    sodium_memzero(cmd->key, sizeof cmd->key);
}

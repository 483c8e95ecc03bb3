/*
 * aethexctl: operators' command line for a coordinator cluster, through our dqlite client.
 *
 *   aethexctl [--coordinator HOST:PORT[,HOST:PORT...]] [--json] [--timeout-ms N] COMMAND
 *     cluster status                 leader and every member with its role
 *     cluster add ID ADDRESS         ADD a node (as a spare; promote it next)
 *     cluster promote ID [ROLE]      ASSIGN voter (default), standby or spare
 *     cluster remove ID              REMOVE a node
 *     query "SELECT ..."             one read-only statement (sql_guard.h), rows printed
 *     keys create|rotate|revoke|list SLUG, channels create SLUG --owner USER  (ctl_keys.h)
 *     regions list | add CIDR REGION | remove CIDR, edges, streams   (ctl_routing.h)
 *
 * With --json, every command prints one JSON object on stdout, errors included
 * ({"error":{"code":"no_leader","message":"..."}}). Node ids are JSON strings: they are
 * 64-bit unsigned and do not fit a JSON number safely.
 *
 * Exit status: 0 success; 1 the cluster refused (a database error, a refused query, an
 * unknown outcome); 2 usage; 3 unreachable, no leader, or timed out. Every run is bounded:
 * the client's deadline is --timeout-ms, and a loop timer a little later ends the process
 * whatever happens.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "aethex/common/clock.h"
#include "aethex/common/error.h"
#include "aethex/common/log.h"
#include "aethex/coordinator/config.h"
#include "aethex/coordinator/dqlite_client.h"
#include "aethex/coordinator/schema.h"
#include "aethex/coordinator/sql_guard.h"
#include "ctl_keys.h"
#include "ctl_routing.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3
#define MAX_MEMBERS 16
#define DEFAULT_TIMEOUT_MS 5000
#define GUARD_SLACK_MS 2000 /* the hard stop comes this long after the client's deadline */

enum command { CMD_STATUS, CMD_ADD, CMD_REMOVE, CMD_PROMOTE, CMD_QUERY, CMD_KEYS, CMD_ROUTING };

struct ctl {
    uv_loop_t *loop;
    coord_dqlite_client_t *client;
    uv_timer_t guard;
    coord_dqlite_req_t req;
    enum command cmd;
    int json;
    uint32_t timeout_ms;
    uint64_t id;
    const char *address;
    coord_dqlite_role_t role;
    const char *sql;
    ctl_keys_cmd_t keys; /* CMD_KEYS */
    ctl_routing_cmd_t routing; /* CMD_ROUTING */
    coord_dqlite_node_t leader;
    int exit_code;
    int done;
};

static const char usage[] =
    "usage: aethexctl [--coordinator HOST:PORT[,HOST:PORT...]] [--json] [--timeout-ms N] COMMAND\n"
    "  cluster status                 leader and members with their roles\n"
    "  cluster add ID ADDRESS         add a node as a spare (then promote it)\n"
    "  cluster promote ID [ROLE]      assign voter (default), standby or spare\n"
    "  cluster remove ID              remove a node from the cluster\n"
    "  query \"SELECT ...\"             run one read-only statement on database '" COORD_DB_NAME
    "'\n"
    "  keys create|rotate SLUG [LABEL]  a new stream key, printed once (rotate revokes the others)\n"
    "  keys revoke SLUG [KEY-ID]      revoke every active key of SLUG (or one)\n"
    "  keys list SLUG                 key ids, labels and dates (never the keys)\n"
    "  channels create SLUG --owner USERNAME   a channel, and its owner if new\n"
    "  regions list | regions add CIDR REGION | regions remove CIDR\n"
    "                                 viewers' CIDR blocks -> region (routing)\n"
    "  edges                          edges: region, health, status, viewers, live streams\n"
    "  streams                        live streams and those ended in the last 24 hours\n"
    "--coordinator defaults to 127.0.0.1:9001; --timeout-ms to 5000.\n"
    "exit: 0 ok, 1 refused by the cluster, 2 usage, 3 unreachable / no leader / timeout\n";

static const char *role_name(coord_dqlite_role_t r)
{
    switch (r) {
    case COORD_DQLITE_VOTER:
        return "voter";
    case COORD_DQLITE_STANDBY:
        return "standby";
    case COORD_DQLITE_SPARE:
        return "spare";
    }
    return "unknown";
}

static int exit_for(int status)
{
    switch (status) {
    case 0:
        return 0;
    case AX_ETIMEDOUT:
    case AX_ENOLEADER:
    case AX_ECONNRESET:
    case AX_ECANCELED:
        return EXIT_UNREACHABLE;
    default:
        return EXIT_REFUSED;
    }
}

static const char *error_code(int status)
{
    switch (status) {
    case AX_ETIMEDOUT:
        return "timeout";
    case AX_ENOLEADER:
        return "no_leader";
    case AX_EUNKNOWN:
        return "outcome_unknown";
    case AX_EDB:
        return "database";
    case AX_EACCES:
        return "not_read_only";
    case AX_EMSGSIZE:
        return "too_large";
    default:
        return "error";
    }
}

/* Prints an error (JSON or text) and sets the exit code. */
static void fail(struct ctl *c, int status, int exit_code, const char *msg)
{
    c->exit_code = exit_code;
    if (c->json) {
        json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", error_code(status), "message", msg);
        json_dumpf(o, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(o);
    } else {
        fprintf(stderr, "aethexctl: %s\n", msg);
    }
}

static void fail_req(struct ctl *c, const char *what, coord_dqlite_req_t *req, int status)
{
    char msg[AX_ERRMSG_LEN + 128];
    const char *detail = req->errmsg[0] ? req->errmsg : coord_dqlite_client_errmsg(c->client);
    switch (status) {
    case AX_ENOLEADER:
        snprintf(msg, sizeof msg, "%s: the cluster has no leader (%s)", what, detail);
        break;
    case AX_ETIMEDOUT:
        snprintf(msg, sizeof msg, "%s: cluster unreachable or no answer within %u ms (%s)", what,
                 c->timeout_ms, detail);
        break;
    case AX_EUNKNOWN:
        snprintf(msg, sizeof msg,
                 "%s: outcome unknown (the leader was lost before answering):"
                 " check with 'cluster status'",
                 what);
        break;
    default:
        snprintf(msg, sizeof msg, "%s: %s%s%s", what, ax_strerror(status), detail[0] ? ": " : "",
                 detail);
    }
    fail(c, status, exit_for(status), msg);
}

static void finish(struct ctl *c)
{
    if (c->done)
        return;
    c->done = 1;
    uv_timer_stop(&c->guard);
    uv_close((uv_handle_t *)&c->guard, NULL);
    coord_dqlite_client_close(c->client, NULL);
}

/* ---- cluster ------------------------------------------------------------------------------ */

static void on_status_cluster(coord_dqlite_req_t *req, int status)
{
    struct ctl *c = req->data;
    if (c->done) /* the guard timer ended the run: AX_ECANCELED */
        return;
    if (status != 0) {
        fail_req(c, "cluster", req, status);
        finish(c);
        return;
    }
    if (c->json) {
        json_t *nodes = json_array();
        for (uint32_t i = 0; i < req->nnodes; i++) {
            const coord_dqlite_node_t *n = &req->nodes[i];
            char id[24];
            snprintf(id, sizeof id, "%" PRIu64, n->id);
            json_array_append_new(nodes, json_pack("{s:s,s:s,s:s,s:b}", "id", id, "address",
                                                   n->address, "role", role_name(n->role), "leader",
                                                   n->id == c->leader.id));
        }
        char lid[24];
        snprintf(lid, sizeof lid, "%" PRIu64, c->leader.id);
        json_t *o = json_pack("{s:{s:s,s:s},s:o}", "leader", "id", lid, "address",
                              c->leader.address, "nodes", nodes);
        json_dumpf(o, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(o);
    } else {
        printf("%-20s  %-40s  %-8s  %s\n", "ID", "ADDRESS", "ROLE", "LEADER");
        for (uint32_t i = 0; i < req->nnodes; i++) {
            const coord_dqlite_node_t *n = &req->nodes[i];
            printf("%-20" PRIu64 "  %-40s  %-8s  %s\n", n->id, n->address, role_name(n->role),
                   n->id == c->leader.id ? "*" : "");
        }
    }
    c->exit_code = 0;
    finish(c);
}

static void on_status_leader(coord_dqlite_req_t *req, int status)
{
    struct ctl *c = req->data;
    if (c->done) /* the guard timer ended the run: AX_ECANCELED */
        return;
    if (status == 0 && req->node.id == 0)
        status = AX_ENOLEADER;
    if (status != 0) {
        fail_req(c, "leader", req, status);
        finish(c);
        return;
    }
    c->leader = req->node;
    int rv = coord_dqlite_cluster(&c->req, c->client, on_status_cluster);
    if (rv != 0) {
        fail(c, rv, EXIT_REFUSED, ax_strerror(rv));
        finish(c);
    }
}

static void on_membership_done(coord_dqlite_req_t *req, int status)
{
    struct ctl *c = req->data;
    if (c->done) /* the guard timer ended the run: AX_ECANCELED */
        return;
    const char *what = c->cmd == CMD_ADD ? "add" : c->cmd == CMD_REMOVE ? "remove" : "promote";
    if (status != 0) {
        fail_req(c, what, req, status);
        finish(c);
        return;
    }
    if (c->json) {
        char id[24];
        snprintf(id, sizeof id, "%" PRIu64, c->id);
        json_t *o = json_pack("{s:s,s:s}", "done", what, "id", id);
        if (c->cmd == CMD_ADD)
            json_object_set_new(o, "address", json_string(c->address));
        if (c->cmd == CMD_PROMOTE)
            json_object_set_new(o, "role", json_string(role_name(c->role)));
        json_dumpf(o, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(o);
    } else if (c->cmd == CMD_ADD) {
        printf("added node %" PRIu64 " at %s as a spare\n", c->id, c->address);
    } else if (c->cmd == CMD_REMOVE) {
        printf("removed node %" PRIu64 "\n", c->id);
    } else {
        printf("node %" PRIu64 " is now a %s\n", c->id, role_name(c->role));
    }
    c->exit_code = 0;
    finish(c);
}

/* ---- query -------------------------------------------------------------------------------- */

static json_t *value_json(const coord_dqlite_value_t *v)
{
    switch (v->type) {
    case COORD_DQLITE_INTEGER:
    case COORD_DQLITE_UNIXTIME:
        return json_integer((json_int_t)v->i);
    case COORD_DQLITE_FLOAT:
        return json_real(v->f);
    case COORD_DQLITE_BOOLEAN:
        return json_boolean(v->b);
    case COORD_DQLITE_TEXT:
    case COORD_DQLITE_ISO8601:
        return json_stringn((const char *)v->s.base, v->s.len);
    case COORD_DQLITE_BLOB: {
        /* Blobs (hashes, address ranges) as lower-case hex. */
        char *hex = malloc(v->s.len * 2 + 1);
        if (!hex)
            return json_null();
        for (size_t i = 0; i < v->s.len; i++)
            snprintf(hex + 2 * i, 3, "%02x", v->s.base[i]);
        json_t *j = json_stringn(hex, v->s.len * 2);
        free(hex);
        return j;
    }
    case COORD_DQLITE_NULL:
        break;
    }
    return json_null();
}

static void print_value(const coord_dqlite_value_t *v)
{
    switch (v->type) {
    case COORD_DQLITE_INTEGER:
    case COORD_DQLITE_UNIXTIME:
        printf("%" PRId64, v->i);
        break;
    case COORD_DQLITE_FLOAT:
        printf("%.17g", v->f);
        break;
    case COORD_DQLITE_BOOLEAN:
        printf("%d", v->b ? 1 : 0);
        break;
    case COORD_DQLITE_TEXT:
    case COORD_DQLITE_ISO8601:
        fwrite(v->s.base, 1, v->s.len, stdout);
        break;
    case COORD_DQLITE_BLOB:
        printf("x'");
        for (size_t i = 0; i < v->s.len; i++)
            printf("%02x", v->s.base[i]);
        printf("'");
        break;
    case COORD_DQLITE_NULL:
        printf("NULL");
        break;
    }
}

static void on_query_done(coord_dqlite_req_t *req, int status)
{
    struct ctl *c = req->data;
    if (c->done) /* the guard timer ended the run: AX_ECANCELED */
        return;
    if (status != 0) {
        fail_req(c, "query", req, status);
        finish(c);
        return;
    }
    const coord_dqlite_rows_t *r = req->rows;
    if (c->json) {
        json_t *cols = json_array(), *rows = json_array();
        for (uint32_t k = 0; k < r->ncols; k++)
            json_array_append_new(cols, json_string(r->names[k]));
        for (uint32_t i = 0; i < r->nrows; i++) {
            json_t *row = json_array();
            for (uint32_t k = 0; k < r->ncols; k++)
                json_array_append_new(row, value_json(coord_dqlite_rows_at(r, i, k)));
            json_array_append_new(rows, row);
        }
        json_t *o = json_pack("{s:o,s:o}", "columns", cols, "rows", rows);
        json_dumpf(o, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(o);
    } else {
        for (uint32_t k = 0; k < r->ncols; k++)
            printf("%s%s", k ? "|" : "", r->names[k]);
        printf("\n");
        for (uint32_t i = 0; i < r->nrows; i++) {
            for (uint32_t k = 0; k < r->ncols; k++) {
                if (k)
                    putchar('|');
                print_value(coord_dqlite_rows_at(r, i, k));
            }
            putchar('\n');
        }
    }
    c->exit_code = 0;
    finish(c);
}

/* ---- routing: regions, edges, streams (ctl_routing.h) ----------------------------------- */

static void on_routing_done(coord_dqlite_req_t *req, int status)
{
    struct ctl *c = req->data;
    if (c->done) /* the guard timer ended the run: AX_ECANCELED */
        return;
    if (status != 0) {
        fail_req(c, c->routing.write ? "write" : "query", req, status);
        finish(c);
        return;
    }
    c->exit_code = ctl_routing_print(&c->routing, c->json, req->rows, &req->result);
    finish(c);
}

/* ---- keys, channels (ctl_keys.h) --------------------------------------------------------- */

static void on_keys_done(coord_dqlite_req_t *req, int status)
{
    struct ctl *c = req->data;
    if (c->done) /* the guard timer ended the run: AX_ECANCELED */
        return;
    if (status != 0) {
        fail_req(c, c->keys.write ? "write" : "query", req, status);
        ctl_keys_wipe(&c->keys);
        finish(c);
        return;
    }
    c->exit_code = ctl_keys_print(&c->keys, c->json, req->rows, &req->result);
    ctl_keys_wipe(&c->keys);
    finish(c);
}

/* ---- main --------------------------------------------------------------------------------- */

static void on_guard(uv_timer_t *t)
{
    struct ctl *c = t->data;
    char msg[128];
    snprintf(msg, sizeof msg, "no answer within %u ms", c->timeout_ms + GUARD_SLACK_MS);
    fail(c, AX_ETIMEDOUT, EXIT_UNREACHABLE, msg);
    finish(c);
}

static int parse_id(const char *s, uint64_t *id)
{
    char *end = NULL;
    if (!s || *s < '0' || *s > '9')
        return AX_EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v == 0)
        return AX_EINVAL;
    *id = v;
    return 0;
}

static int usage_json; /* --json seen: usage errors are JSON on stdout too */

static int usage_error(const char *msg)
{
    if (usage_json) {
        json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", "usage", "message", msg);
        json_dumpf(o, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(o);
    }
    fprintf(stderr, "aethexctl: %s\n%s", msg, usage);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    ax_log_set_level(AX_LOG_WARN); /* the client's connect lines are noise on a command line */
    static struct ctl ctl;
    struct ctl *c = &ctl;
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    c->exit_code = EXIT_UNREACHABLE;
    char members_buf[1024] = "127.0.0.1:9001";
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *a = argv[i];
        const char *v = strchr(a, '=');
        char name[32];
        size_t nlen = v ? (size_t)(v - a) : strlen(a);
        if (nlen >= sizeof name)
            return usage_error("unknown option");
        memcpy(name, a, nlen);
        name[nlen] = '\0';
        if (strcmp(name, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(name, "--json") == 0) {
            c->json = usage_json = 1;
            continue;
        }
        if (strcmp(name, "--coordinator") != 0 && strcmp(name, "--timeout-ms") != 0)
            return usage_error("unknown option");
        if (v)
            v++;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return usage_error("option needs a value");
        if (strcmp(name, "--coordinator") == 0) {
            if (strlen(v) >= sizeof members_buf)
                return usage_error("--coordinator: too long");
            snprintf(members_buf, sizeof members_buf, "%s", v);
        } else {
            uint64_t t;
            if (parse_id(v, &t) != 0 || t > 3600000)
                return usage_error("--timeout-ms: expected 1..3600000");
            c->timeout_ms = (uint32_t)t;
        }
    }
    int nargs = argc - i;
    char **args = argv + i;
    if (nargs < 1)
        return usage_error("no command");
    if (strcmp(args[0], "cluster") == 0 && nargs >= 2) {
        if (strcmp(args[1], "status") == 0 && nargs == 2) {
            c->cmd = CMD_STATUS;
        } else if (strcmp(args[1], "add") == 0 && nargs == 4) {
            c->cmd = CMD_ADD;
            if (parse_id(args[2], &c->id) != 0)
                return usage_error("cluster add: ID must be a positive integer");
            if (coord_config_check_address(args[3], 0) != 0)
                return usage_error("cluster add: ADDRESS must be a numeric host:port");
            c->address = args[3];
        } else if (strcmp(args[1], "remove") == 0 && nargs == 3) {
            c->cmd = CMD_REMOVE;
            if (parse_id(args[2], &c->id) != 0)
                return usage_error("cluster remove: ID must be a positive integer");
        } else if (strcmp(args[1], "promote") == 0 && (nargs == 3 || nargs == 4)) {
            c->cmd = CMD_PROMOTE;
            if (parse_id(args[2], &c->id) != 0)
                return usage_error("cluster promote: ID must be a positive integer");
            c->role = COORD_DQLITE_VOTER;
            if (nargs == 4) {
                if (strcmp(args[3], "voter") == 0)
                    c->role = COORD_DQLITE_VOTER;
                else if (strcmp(args[3], "standby") == 0)
                    c->role = COORD_DQLITE_STANDBY;
                else if (strcmp(args[3], "spare") == 0)
                    c->role = COORD_DQLITE_SPARE;
                else
                    return usage_error("cluster promote: ROLE is voter, standby or spare");
            }
        } else {
            return usage_error("unknown cluster command");
        }
    } else if (strcmp(args[0], "query") == 0 && nargs == 2) {
        c->cmd = CMD_QUERY;
        c->sql = args[1];
        char err[AX_ERRMSG_LEN];
        int rv = coord_sql_check_readonly(c->sql, err);
        if (rv != 0) {
            fail(c, rv, EXIT_REFUSED, err);
            return EXIT_REFUSED;
        }
    } else if (ctl_routing_is_command(args[0])) {
        c->cmd = CMD_ROUTING;
        char err[AX_ERRMSG_LEN];
        if (ctl_routing_parse(nargs, args, ax_clock_wall_ms(ax_clock_system()), &c->routing,
                              err) != 0)
            return usage_error(err);
    } else if (ctl_keys_is_command(args[0])) {
        c->cmd = CMD_KEYS;
        char err[AX_ERRMSG_LEN];
        if (ctl_keys_parse(nargs, args, ax_clock_wall_ms(ax_clock_system()), &c->keys, err) != 0)
            return usage_error(err);
    } else {
        return usage_error("unknown command");
    }

    /* Members: "a:p,b:p". */
    const char *members[MAX_MEMBERS];
    uint32_t nmembers = 0;
    for (char *save = NULL, *m = strtok_r(members_buf, ",", &save); m;
         m = strtok_r(NULL, ",", &save)) {
        if (nmembers == MAX_MEMBERS)
            return usage_error("--coordinator: too many members");
        if (coord_config_check_address(m, 0) != 0)
            return usage_error("--coordinator: members must be numeric host:port");
        members[nmembers++] = m;
    }
    if (nmembers == 0)
        return usage_error("--coordinator: no member");

    c->loop = uv_default_loop();
    coord_dqlite_client_config_t cfg;
    coord_dqlite_client_config_default(&cfg);
    cfg.members = members;
    cfg.nmembers = nmembers;
    cfg.database = c->cmd == CMD_QUERY || c->cmd == CMD_KEYS || c->cmd == CMD_ROUTING
                       ? COORD_DB_NAME
                       : NULL;
    cfg.request_timeout_ms = c->timeout_ms;
    if (cfg.connect_timeout_ms > c->timeout_ms)
        cfg.connect_timeout_ms = c->timeout_ms;
    int rv = coord_dqlite_client_new(c->loop, &cfg, &c->client);
    if (rv != 0) {
        fail(c, rv, EXIT_USAGE, ax_strerror(rv));
        return EXIT_USAGE;
    }
    uv_timer_init(c->loop, &c->guard);
    c->guard.data = c;
    uv_timer_start(&c->guard, on_guard, (uint64_t)c->timeout_ms + GUARD_SLACK_MS, 0);
    c->req.data = c;
    c->req.timeout_ms = c->timeout_ms;
    switch (c->cmd) {
    case CMD_STATUS:
        rv = coord_dqlite_leader(&c->req, c->client, on_status_leader);
        break;
    case CMD_ADD:
        rv = coord_dqlite_add(&c->req, c->client, c->id, c->address, on_membership_done);
        break;
    case CMD_REMOVE:
        rv = coord_dqlite_remove(&c->req, c->client, c->id, on_membership_done);
        break;
    case CMD_PROMOTE:
        rv = coord_dqlite_assign(&c->req, c->client, c->id, c->role, on_membership_done);
        break;
    case CMD_QUERY:
        rv = coord_dqlite_query_sql(&c->req, c->client, c->sql, NULL, 0, on_query_done);
        break;
    case CMD_KEYS:
        rv = c->keys.write ? coord_dqlite_write(&c->req, c->client, c->keys.calls, c->keys.ncalls,
                                                on_keys_done)
                           : coord_dqlite_query_sql(&c->req, c->client, c->keys.calls[0].sql,
                                                    c->keys.calls[0].params,
                                                    c->keys.calls[0].nparams, on_keys_done);
        break;
    case CMD_ROUTING:
        if (c->routing.write) {
            /* Through the write queue, which re-runs a transaction refused as "database is
             * locked" (another writer, e.g. the leader persisting heartbeats) or lost before
             * COMMIT; a plain exec would report AX_EBUSY. */
            coord_dqlite_call_t call = {.sql = c->routing.sql,
                                        .params = c->routing.params,
                                        .nparams = c->routing.nparams};
            rv = coord_dqlite_write(&c->req, c->client, &call, 1, on_routing_done);
        } else {
            rv = coord_dqlite_query_sql(&c->req, c->client, c->routing.sql, c->routing.params,
                                        c->routing.nparams, on_routing_done);
        }
        break;
    }
    if (rv != 0) {
        fail(c, rv, EXIT_REFUSED, ax_strerror(rv));
        finish(c);
    }
    uv_run(c->loop, UV_RUN_DEFAULT);
    uv_loop_close(c->loop);
    fflush(stdout);
    return c->exit_code;
}

/*
 * aethexctl's routing commands (ctl_routing.h): regions, edges, streams. Every statement has
 * bound parameters only; a CIDR is parsed and refused here, before anything is sent, with a
 * message that says what is wrong.
 */
#include "ctl_routing.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

static const char sql_regions_list[] =
    "SELECT cidr, region FROM regions ORDER BY family, range_start, prefix_len";
/* Re-adding a block moves it to the new region (the block's identity is its text, which is
 * canonical: coord_cidr_format). */
static const char sql_regions_add[] =
    "INSERT INTO regions (cidr, region, family, prefix_len, range_start, range_end)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cidr) DO UPDATE SET region = excluded.region";
static const char sql_regions_remove[] = "DELETE FROM regions WHERE cidr = ?";
static const char sql_edges[] =
    "SELECT name, region, status, viewers, capacity_viewers, live_streams, last_heartbeat_at,"
    " hls_base_url FROM edges ORDER BY region, name";
static const char sql_streams[] =
    "SELECT s.id, c.slug, s.status, e.name, s.started_at, s.ended_at, s.duration_seconds,"
    " s.viewer_count, s.title FROM streams s JOIN channels c ON c.id = s.channel_id"
    " LEFT JOIN edges e ON e.id = s.origin_edge_id"
    " WHERE s.status = 'live' OR s.ended_at >= ?"
    " ORDER BY s.status = 'live' DESC, COALESCE(s.ended_at, s.started_at) DESC LIMIT ?";

int ctl_routing_is_command(const char *name)
{
    return strcmp(name, "regions") == 0 || strcmp(name, "edges") == 0 ||
           strcmp(name, "streams") == 0;
}

static int usage(char *errmsg, const char *msg)
{
    snprintf(errmsg, AX_ERRMSG_LEN, "%s", msg);
    return AX_EINVAL;
}

static int parse_cidr(const char *what, const char *text, ctl_routing_cmd_t *cmd, char *errmsg)
{
    char err[AX_ERRMSG_LEN];
    if (coord_cidr_parse(text, strlen(text), &cmd->cidr, err) != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "%s: %.200s", what, err);
        return AX_EINVAL;
    }
    coord_cidr_format(&cmd->cidr, cmd->cidr_text);
    return 0;
}

int ctl_routing_parse(int nargs, char **args, uint64_t now_ms, ctl_routing_cmd_t *cmd, char *errmsg)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->now_ms = now_ms;
    if (strcmp(args[0], "edges") == 0) {
        if (nargs != 1)
            return usage(errmsg, "edges: takes no arguments");
        cmd->kind = CTL_ROUTING_EDGES;
        cmd->sql = sql_edges;
        return 0;
    }
    if (strcmp(args[0], "streams") == 0) {
        if (nargs != 1)
            return usage(errmsg, "streams: takes no arguments");
        cmd->kind = CTL_ROUTING_STREAMS;
        cmd->sql = sql_streams;
        cmd->params[0] = coord_dqlite_int((int64_t)(now_ms - CTL_ROUTING_RECENT_MS));
        cmd->params[1] = coord_dqlite_int(CTL_ROUTING_STREAMS_MAX);
        cmd->nparams = 2;
        return 0;
    }
    /* regions */
    if (nargs == 2 && strcmp(args[1], "list") == 0) {
        cmd->kind = CTL_ROUTING_REGIONS_LIST;
        cmd->sql = sql_regions_list;
        return 0;
    }
    if (nargs >= 2 && strcmp(args[1], "add") == 0) {
        if (nargs != 4)
            return usage(errmsg, "regions add: expected CIDR REGION");
        if (parse_cidr("regions add", args[2], cmd, errmsg) != 0)
            return AX_EINVAL;
        size_t rlen = strlen(args[3]);
        if (coord_route_check_region(args[3], rlen) != 0)
            return usage(errmsg, "regions add: REGION must be 1-32 bytes of letters, digits,"
                                 " '-', '_' or '.'");
        memcpy(cmd->region, args[3], rlen + 1);
        cmd->kind = CTL_ROUTING_REGIONS_ADD;
        cmd->write = 1;
        cmd->sql = sql_regions_add;
        size_t n = coord_cidr_range(&cmd->cidr, cmd->range_start, cmd->range_end);
        cmd->params[0] = coord_dqlite_text(cmd->cidr_text);
        cmd->params[1] = coord_dqlite_text(cmd->region);
        cmd->params[2] = coord_dqlite_int(cmd->cidr.family);
        cmd->params[3] = coord_dqlite_int(cmd->cidr.prefix_len);
        cmd->params[4] = coord_dqlite_blob(cmd->range_start, n);
        cmd->params[5] = coord_dqlite_blob(cmd->range_end, n);
        cmd->nparams = 6;
        return 0;
    }
    if (nargs >= 2 && strcmp(args[1], "remove") == 0) {
        if (nargs != 3)
            return usage(errmsg, "regions remove: expected CIDR");
        if (parse_cidr("regions remove", args[2], cmd, errmsg) != 0)
            return AX_EINVAL;
        cmd->kind = CTL_ROUTING_REGIONS_REMOVE;
        cmd->write = 1;
        cmd->sql = sql_regions_remove;
        cmd->params[0] = coord_dqlite_text(cmd->cidr_text);
        cmd->nparams = 1;
        return 0;
    }
    return usage(errmsg, "unknown regions command (list, add CIDR REGION, remove CIDR)");
}

/* ---- printing ----------------------------------------------------------------------------- */

static const char *text(const coord_dqlite_rows_t *r, uint32_t row, uint32_t col)
{
    const coord_dqlite_value_t *v = coord_dqlite_rows_at(r, row, col);
    /* Row text is NUL-terminated by the client (dqlite_client.h). */
    return (v->type == COORD_DQLITE_TEXT || v->type == COORD_DQLITE_ISO8601)
               ? (const char *)v->s.base
               : NULL;
}

static int has_int(const coord_dqlite_rows_t *r, uint32_t row, uint32_t col, int64_t *out)
{
    const coord_dqlite_value_t *v = coord_dqlite_rows_at(r, row, col);
    if (v->type != COORD_DQLITE_INTEGER && v->type != COORD_DQLITE_UNIXTIME)
        return 0;
    *out = v->i;
    return 1;
}

static json_t *jtext(const coord_dqlite_rows_t *r, uint32_t row, uint32_t col)
{
    const char *s = text(r, row, col);
    return s ? json_string(s) : json_null();
}

static json_t *jint(const coord_dqlite_rows_t *r, uint32_t row, uint32_t col)
{
    int64_t i;
    return has_int(r, row, col, &i) ? json_integer((json_int_t)i) : json_null();
}

static void dump(json_t *o)
{
    json_dumpf(o, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(o);
}

static const char *or_dash(const char *s)
{
    return s && s[0] ? s : "-";
}

static void print_regions(const coord_dqlite_rows_t *r, int json)
{
    if (json) {
        json_t *list = json_array();
        for (uint32_t i = 0; i < r->nrows; i++)
            json_array_append_new(
                list, json_pack("{s:o,s:o}", "cidr", jtext(r, i, 0), "region", jtext(r, i, 1)));
        dump(json_pack("{s:o}", "regions", list));
        return;
    }
    printf("%-44s  %s\n", "CIDR", "REGION");
    for (uint32_t i = 0; i < r->nrows; i++)
        printf("%-44s  %s\n", or_dash(text(r, i, 0)), or_dash(text(r, i, 1)));
}

static void print_edges(const ctl_routing_cmd_t *cmd, const coord_dqlite_rows_t *r, int json)
{
    json_t *list = json ? json_array() : NULL;
    if (!json)
        printf("%-20s  %-12s  %-9s  %-8s  %-15s  %-4s  %-10s  %s\n", "EDGE", "REGION", "HEALTH",
               "STATUS", "VIEWERS/CAP", "LIVE", "HEARTBEAT", "HLS");
    for (uint32_t i = 0; i < r->nrows; i++) {
        int64_t hb = 0, viewers = 0, cap = 0, live = 0;
        int beat = has_int(r, i, 6, &hb) && hb > 0;
        has_int(r, i, 3, &viewers);
        has_int(r, i, 4, &cap);
        has_int(r, i, 5, &live);
        int64_t age = beat ? (int64_t)cmd->now_ms - hb : -1;
        if (beat && age < 0)
            age = 0;
        /* The same threshold routing uses (route.h). */
        int healthy = beat && age < COORD_ROUTE_HEALTHY_MS;
        if (json) {
            json_array_append_new(
                list,
                json_pack("{s:o,s:o,s:b,s:o,s:o,s:o,s:o,s:o,s:o}", "id", jtext(r, i, 0), "region",
                          jtext(r, i, 1), "healthy", healthy, "status", jtext(r, i, 2), "viewers",
                          jint(r, i, 3), "capacity", jint(r, i, 4), "live_streams", jint(r, i, 5),
                          "heartbeat_age_ms", beat ? json_integer((json_int_t)age) : json_null(),
                          "hls_base_url", jtext(r, i, 7)));
            continue;
        }
        char vc[32], hbs[24];
        if (cap > 0)
            snprintf(vc, sizeof vc, "%" PRId64 "/%" PRId64, viewers, cap);
        else
            snprintf(vc, sizeof vc, "%" PRId64 "/-", viewers);
        if (beat)
            snprintf(hbs, sizeof hbs, "%.1fs ago", (double)age / 1000.0);
        else
            snprintf(hbs, sizeof hbs, "never");
        printf("%-20s  %-12s  %-9s  %-8s  %-15s  %-4" PRId64 "  %-10s  %s\n",
               or_dash(text(r, i, 0)), or_dash(text(r, i, 1)), healthy ? "healthy" : "unhealthy",
               or_dash(text(r, i, 2)), vc, live, hbs, or_dash(text(r, i, 7)));
    }
    if (json)
        dump(json_pack("{s:o}", "edges", list));
}

static void print_streams(const coord_dqlite_rows_t *r, int json)
{
    json_t *list = json ? json_array() : NULL;
    if (!json)
        printf("%-26s  %-20s  %-8s  %-16s  %-10s  %-7s  %s\n", "STREAM", "CHANNEL", "STATUS",
               "ORIGIN", "DURATION", "VIEWERS", "TITLE");
    for (uint32_t i = 0; i < r->nrows; i++) {
        if (json) {
            json_array_append_new(
                list, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id", jtext(r, i, 0),
                                "channel", jtext(r, i, 1), "status", jtext(r, i, 2),
                                "origin_edge_id", jtext(r, i, 3), "started_at", jint(r, i, 4),
                                "ended_at", jint(r, i, 5), "duration_seconds", jint(r, i, 6),
                                "viewer_count", jint(r, i, 7), "title", jtext(r, i, 8)));
            continue;
        }
        int64_t dur = -1, viewers = 0;
        has_int(r, i, 6, &dur);
        has_int(r, i, 7, &viewers);
        char d[48] = "-";
        if (dur >= 0)
            snprintf(d, sizeof d, "%" PRId64 ":%02" PRId64 ":%02" PRId64, dur / 3600, dur / 60 % 60,
                     dur % 60);
        printf("%-26s  %-20s  %-8s  %-16s  %-10s  %-7" PRId64 "  %s\n", or_dash(text(r, i, 0)),
               or_dash(text(r, i, 1)), or_dash(text(r, i, 2)), or_dash(text(r, i, 3)), d, viewers,
               or_dash(text(r, i, 8)));
    }
    if (json)
        dump(json_pack("{s:o}", "streams", list));
}

int ctl_routing_print(const ctl_routing_cmd_t *cmd, int json, const coord_dqlite_rows_t *rows,
                      const coord_dqlite_result_t *result)
{
    switch (cmd->kind) {
    case CTL_ROUTING_REGIONS_LIST:
        print_regions(rows, json);
        return 0;
    case CTL_ROUTING_EDGES:
        print_edges(cmd, rows, json);
        return 0;
    case CTL_ROUTING_STREAMS:
        print_streams(rows, json);
        return 0;
    case CTL_ROUTING_REGIONS_ADD:
        if (json)
            dump(json_pack("{s:s,s:s,s:s}", "done", "regions add", "cidr", cmd->cidr_text, "region",
                           cmd->region));
        else
            printf("%s -> %s\n", cmd->cidr_text, cmd->region);
        return 0;
    case CTL_ROUTING_REGIONS_REMOVE:
        if (result->rows_affected == 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "regions remove: no block %s", cmd->cidr_text);
            if (json)
                dump(json_pack("{s:{s:s,s:s}}", "error", "code", "not_found", "message", msg));
            else
                fprintf(stderr, "aethexctl: %s\n", msg);
            return 1;
        }
        if (json)
            dump(json_pack("{s:s,s:s}", "done", "regions remove", "cidr", cmd->cidr_text));
        else
            printf("removed %s\n", cmd->cidr_text);
        return 0;
    }
    return 0;
}

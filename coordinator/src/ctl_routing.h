/*
 * aethexctl's routing commands (docs/routing.md): regions, edges, streams. Parsing and
 * printing live here; aethexctl.c runs the one statement each command needs through its
 * client. Internal to coordinator/src/.
 *
 *   regions list                   every CIDR block and its region
 *   regions add CIDR REGION        add a block, or move it to another region (validated)
 *   regions remove CIDR            remove a block
 *   edges                          edges with region, health, status, viewers, live streams
 *   streams                        live streams, then those that ended in the last 24 hours
 */
#ifndef AETHEX_COORDINATOR_CTL_ROUTING_H
#define AETHEX_COORDINATOR_CTL_ROUTING_H

#include <stdint.h>

#include "aethex/coordinator/cidr.h"
#include "aethex/coordinator/dqlite_client.h"
#include "aethex/coordinator/route.h"

#define CTL_ROUTING_RECENT_MS (24u * 3600u * 1000u) /* `streams`: ended this recently */
#define CTL_ROUTING_STREAMS_MAX 200                 /* `streams`: rows shown at most */

typedef enum {
    CTL_ROUTING_REGIONS_LIST,
    CTL_ROUTING_REGIONS_ADD,
    CTL_ROUTING_REGIONS_REMOVE,
    CTL_ROUTING_EDGES,
    CTL_ROUTING_STREAMS,
} ctl_routing_kind_t;

/* One parsed command and the statement it runs. */
typedef struct ctl_routing_cmd {
    ctl_routing_kind_t kind;
    int write;       /* exec (1) or query (0) */
    const char *sql; /* static */
    coord_dqlite_value_t params[6];
    uint32_t nparams;
    coord_cidr_t cidr;
    char cidr_text[COORD_CIDR_TEXT_MAX];
    char region[COORD_ROUTE_REGION_MAX + 1];
    uint8_t range_start[16], range_end[16];
    uint64_t now_ms; /* wall clock when parsed: heartbeat ages, "recent" */
} ctl_routing_cmd_t;

/*
 * True when args[0] names one of these commands. Then ctl_routing_parse() fills *cmd (which
 * must stay where it is: params point into it) from args (nargs of them, args[0] the
 * command). Returns 0, or AX_EINVAL with a one-line message in errmsg (AX_ERRMSG_LEN bytes),
 * e.g. "regions add: bad CIDR '10.1.0.0/8': host bits set past /8 (did you mean 10.0.0.0/8?)".
 */
int ctl_routing_is_command(const char *name);
int ctl_routing_parse(int nargs, char **args, uint64_t now_ms, ctl_routing_cmd_t *cmd,
                      char *errmsg);

/*
 * Prints the outcome of a successful run on stdout: `rows` for a query, `result` for an exec.
 * Returns the exit status: 0, or 1 when the command found nothing to act on (regions remove
 * of an absent block), with the error printed (JSON on stdout with `json`, else stderr).
 */
int ctl_routing_print(const ctl_routing_cmd_t *cmd, int json, const coord_dqlite_rows_t *rows,
                      const coord_dqlite_result_t *result);

#endif /* AETHEX_COORDINATOR_CTL_ROUTING_H */

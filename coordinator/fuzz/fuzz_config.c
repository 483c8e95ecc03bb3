/*
 * Fuzz target for the coordinator's config parser (coord_config_parse_text). Invariants,
 * beyond "no crash": on success every stored address passes the address check, the join list
 * is within its limit, and parsing the same bytes again from defaults gives the same result
 * (no hidden state); on failure the message is a NUL-terminated string within AX_ERRMSG_LEN.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "aethex/common/error.h"
#include "aethex/common/util.h"
#include "aethex/coordinator/config.h"

static int same(const coord_config_t *a, const coord_config_t *b)
{
    if (a->node_id != b->node_id || a->njoin != b->njoin || a->log_level != b->log_level ||
        a->network_latency_ms != b->network_latency_ms ||
        a->snapshot_threshold != b->snapshot_threshold ||
        a->snapshot_trailing != b->snapshot_trailing || a->join_timeout_ms != b->join_timeout_ms ||
        a->migrate_timeout_ms != b->migrate_timeout_ms || strcmp(a->address, b->address) != 0 ||
        strcmp(a->data_dir, b->data_dir) != 0 || strcmp(a->http, b->http) != 0)
        return 0;
    for (uint32_t i = 0; i < a->njoin; i++)
        if (strcmp(a->join[i], b->join[i]) != 0)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    coord_config_t a, b;
    char err[AX_ERRMSG_LEN];
    coord_config_default(&a);
    int rv = coord_config_parse_text(&a, (const char *)data, size, err);
    if (rv != 0) {
        AX_ASSERT(rv < 0);
        AX_ASSERT(memchr(err, '\0', sizeof err) != NULL);
        return 0;
    }
    AX_ASSERT(a.njoin <= COORD_CONFIG_MAX_JOIN);
    AX_ASSERT(coord_config_check_address(a.address, 0) == 0);
    for (uint32_t i = 0; i < a.njoin; i++)
        AX_ASSERT(coord_config_check_address(a.join[i], 0) == 0);
    AX_ASSERT(a.http[0] == '\0' || coord_config_check_address(a.http, 1) == 0);
    AX_ASSERT(a.network_latency_ms >= 1);
    coord_config_default(&b);
    AX_ASSERT(coord_config_parse_text(&b, (const char *)data, size, err) == 0);
    AX_ASSERT(same(&a, &b));
    return 0;
}

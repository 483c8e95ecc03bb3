/*
 * Fuzzes the keys-file parser (config.c): any text either parses into entries that look
 * themselves up again (channel valid, key 8..128 bytes) or is refused with the previous keys
 * left intact.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    edge_keys_t k;
    edge_keys_init(&k);
    char err[200];
    if (edge_keys_parse(&k, "keep 0123456789abcdef\n", err, sizeof err) != 0)
        __builtin_trap();
    int rc = edge_keys_parse(&k, text, err, sizeof err);
    if (rc < 0) {
        if (k.count != 1 ||
            strcmp(edge_keys_lookup(&k, AX_SLICE_LIT("0123456789abcdef")), "keep") != 0)
            __builtin_trap();
    } else {
        for (size_t i = 0; i < k.count; i++) {
            const struct edge_key_entry *e = &k.entries[i];
            if (!edge_channel_name_valid(AX_SLICE(e->channel, strlen(e->channel))) ||
                e->key_len < 8 || e->key_len > EDGE_KEY_MAX)
                __builtin_trap();
            const char *found = edge_keys_lookup(&k, AX_SLICE(e->key, e->key_len));
            if (!found || strcmp(found, e->channel) != 0)
                __builtin_trap();
        }
    }
    edge_keys_close(&k);
    free(text);
    return 0;
}

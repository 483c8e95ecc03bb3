/*
 * LL-HLS delivery directives (_HLS_msn, _HLS_part, _HLS_skip: draft-pantos-hls-rfc8216bis
 * 6.2.5) and the names of a rendition's resources. Untrusted input: every byte is checked,
 * nothing is allocated.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "aethex/common/error.h"
#include "hls_internal.h"

#define MSN_MAX (UINT64_C(1) << 53)
#define PART_MAX UINT32_C(0x7fffffff)
#define DEFAULT_MAX_QUERY 2048

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes `in` into `out` (at most `cap` bytes). Returns the length or -1. */
static long decode(ax_slice_t in, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.base[i];
        if (c == '%') {
            if (in.len - i < 3)
                return -1;
            int h = hexval(in.base[i + 1]), l = hexval(in.base[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (uint8_t)(h * 16 + l);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (n == cap)
            return -1;
        out[n++] = (char)c;
    }
    return (long)n;
}

/* A decimal integer with no sign, no leading '+', at most `max`. */
static int parse_uint(const char *s, long n, uint64_t max, uint64_t *out)
{
    if (n <= 0 || n > 20)
        return AX_EINVAL;
    uint64_t v = 0;
    for (long i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return AX_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > max)
            return AX_EINVAL;
    }
    *out = v;
    return 0;
}

int media_hls_params_parse(ax_slice_t q, const media_hls_limits_t *limits, media_hls_params_t *out)
{
    size_t max = limits != NULL ? limits->max_query_len : DEFAULT_MAX_QUERY;
    memset(out, 0, sizeof(*out));
    out->skip = MEDIA_HLS_SKIP_NO;
    if (q.len > max)
        return AX_EMSGSIZE;
    if (q.len > 0 && q.base[0] == '?') {
        q.base++;
        q.len--;
    }
    bool seen_skip = false;
    size_t i = 0;
    while (i <= q.len) {
        size_t j = i;
        while (j < q.len && q.base[j] != '&' && q.base[j] != ';')
            j++;
        ax_slice_t pair = AX_SLICE(q.base + i, j - i);
        i = j + 1;
        if (pair.len == 0)
            continue;
        size_t eq = 0;
        while (eq < pair.len && pair.base[eq] != '=')
            eq++;
        char key[16], val[32];
        long kn = decode(AX_SLICE(pair.base, eq), key, sizeof(key));
        if (kn < 0 || kn < 5 || memcmp(key, "_HLS_", 5) != 0)
            continue; /* not ours (or too long to be ours): ignored */
        bool has_val = eq < pair.len;
        long vn = has_val ? decode(AX_SLICE(pair.base + eq + 1, pair.len - eq - 1), val,
                                   sizeof(val))
                          : -1;
        if (kn == 8 && memcmp(key, "_HLS_msn", 8) == 0) {
            if (out->has_msn || vn < 0 || parse_uint(val, vn, MSN_MAX, &out->msn) != 0)
                return AX_EINVAL;
            out->has_msn = true;
        } else if (kn == 9 && memcmp(key, "_HLS_part", 9) == 0) {
            uint64_t v;
            if (out->has_part || vn < 0 || parse_uint(val, vn, PART_MAX, &v) != 0)
                return AX_EINVAL;
            out->part = (uint32_t)v;
            out->has_part = true;
        } else if (kn == 9 && memcmp(key, "_HLS_skip", 9) == 0) {
            if (seen_skip || vn < 0)
                return AX_EINVAL;
            if (vn == 3 && memcmp(val, "YES", 3) == 0)
                out->skip = MEDIA_HLS_SKIP_YES;
            else if (vn == 2 && memcmp(val, "v2", 2) == 0)
                out->skip = MEDIA_HLS_SKIP_V2;
            else
                return AX_EINVAL;
            seen_skip = true;
        }
        /* Other _HLS_ names (future directives) are ignored, as for any parameter. */
    }
    if (out->has_part && !out->has_msn)
        return AX_EINVAL; /* "_HLS_part without _HLS_msn": Bad Request (6.2.5.2) */
    return 0;
}

/* Reads decimal digits from s[*i]; at least one, no leading zeros beyond "0". */
static int digits(ax_slice_t s, size_t *i, uint64_t max, uint64_t *out)
{
    size_t st = *i;
    uint64_t v = 0;
    while (*i < s.len && s.base[*i] >= '0' && s.base[*i] <= '9') {
        v = v * 10 + (uint64_t)(s.base[*i] - '0');
        if (v > max)
            return AX_ENOENT;
        (*i)++;
    }
    size_t n = *i - st;
    if (n == 0 || (n > 1 && s.base[st] == '0'))
        return AX_ENOENT;
    *out = v;
    return 0;
}

static bool take(ax_slice_t s, size_t *i, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len - *i < n || memcmp(s.base + *i, lit, n) != 0)
        return false;
    *i += n;
    return true;
}

int media_hls_resource_parse(ax_slice_t name, media_hls_resource_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    uint64_t a, b;
    if (ax_slice_eq_cstr(name, "index.m3u8")) {
        out->kind = MEDIA_HLS_RES_PLAYLIST;
        return 0;
    }
    if (take(name, &i, "init-")) {
        if (digits(name, &i, UINT32_MAX, &a) != 0 || !take(name, &i, ".mp4") || i != name.len)
            return AX_ENOENT;
        out->kind = MEDIA_HLS_RES_INIT;
        out->init_gen = (uint32_t)a;
        return 0;
    }
    if (take(name, &i, "seg-")) {
        if (digits(name, &i, MSN_MAX, &a) != 0 || !take(name, &i, ".m4s") || i != name.len)
            return AX_ENOENT;
        out->kind = MEDIA_HLS_RES_SEGMENT;
        out->msn = a;
        return 0;
    }
    if (take(name, &i, "part-")) {
        if (digits(name, &i, MSN_MAX, &a) != 0 || !take(name, &i, ".") ||
            digits(name, &i, PART_MAX, &b) != 0 || !take(name, &i, ".m4s") || i != name.len)
            return AX_ENOENT;
        out->kind = MEDIA_HLS_RES_PART;
        out->msn = a;
        out->part = (uint32_t)b;
        return 0;
    }
    return AX_ENOENT;
}

const char *media_hls_rendition_content_type(const media_hls_rendition_t *r,
                                             media_hls_res_kind_t kind)
{
    if (kind == MEDIA_HLS_RES_PLAYLIST)
        return "application/vnd.apple.mpegurl";
    return r->track == MEDIA_TRACK_AUDIO ? "audio/mp4" : "video/mp4";
}

void media_hls__format_pdt(int64_t unix_ms, char out[32])
{
    int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : -((-unix_ms + 999) / 1000);
    int ms = (int)(unix_ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    memcpy(out, tmp, 31);
    out[31] = 0;
}

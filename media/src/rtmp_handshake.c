/*
 * The server side of the RTMP handshake (RTMP spec 5.2):
 *
 *   client                          server
 *   C0 (version 3) + C1 (1536) ---->
 *                              <---- S0 (3) + S1 (1536) + S2 (echo of C1)
 *   C2 (1536) ------------------->   (done; chunk stream follows, possibly in the same read)
 *
 * Publishers send one of two C1 layouts:
 * - "simple" (spec): time, four zero bytes, 1528 random bytes. librtmp (OBS) without its
 *   FP9 code and GStreamer's rtmp2 do this.
 * - Flash-style "digest": time, a non-zero Flash Player version (ffmpeg sends 9.0.124.2),
 *   and an HMAC-SHA256 digest hidden in the random bytes. ffmpeg always does this.
 * We answer both the same way: S1 carries version 0 (zero bytes 4..7), which tells digest
 * clients the server is "simple", so they neither expect a digest in S1 nor in S2 (ffmpeg
 * checks S1's version byte before validating, librtmp falls back to the simple scheme), and
 * S2 is an exact echo of C1, which every client accepts (librtmp compares it with C1 and
 * at most warns). C2 is not validated: digest clients put their own digest in it.
 * C0 = 6 or 8 asks for RTMPE (encryption): refused with AX_ENOTSUP.
 */
#include <stdio.h>
#include <string.h>

#include "aethex/common/error.h"
#include "rtmp_internal.h"

void media_rtmp__handshake_init(struct media_rtmp__handshake *h, uint32_t epoch_ms,
                                void (*random)(void *ctx, uint8_t *buf, size_t len),
                                void *random_ctx)
{
    memset(h, 0, sizeof *h);
    h->phase = MEDIA_RTMP__HS_WAIT_C0C1;
    h->epoch_ms = epoch_ms;
    h->random = random;
    h->random_ctx = random_ctx;
}

static int reply(struct media_rtmp__handshake *h, ax_buf_t *out, char *errmsg)
{
    const uint8_t *c1 = h->buf + 1;
    size_t n = 1 + 2 * MEDIA_RTMP__SIG_SIZE;
    int rv = ax_buf_reserve(out, n);
    if (rv != 0) {
        snprintf(errmsg, AX_ERRMSG_LEN, "handshake: cannot queue S0S1S2: %s", ax_strerror(rv));
        return rv;
    }
    uint8_t *p = out->base + out->len;
    p[0] = MEDIA_RTMP__VERSION;
    uint8_t *s1 = p + 1;
    ax_wr_be32(s1, h->epoch_ms);
    memset(s1 + 4, 0, 4);
    if (h->random != NULL) {
        h->random(h->random_ctx, s1 + 8, MEDIA_RTMP__SIG_SIZE - 8);
    } else {
        /* A fixed pattern keeps tests reproducible; it is not a secret in RTMP anyway. */
        for (size_t i = 8; i < MEDIA_RTMP__SIG_SIZE; i++)
            s1[i] = (uint8_t)(i * 131u + 7u);
    }
    memcpy(s1 + MEDIA_RTMP__SIG_SIZE, c1, MEDIA_RTMP__SIG_SIZE);
    out->len += n;
    return 0;
}

int media_rtmp__handshake_feed(struct media_rtmp__handshake *h, const uint8_t *buf, size_t len,
                               ax_buf_t *out, char *errmsg)
{
    size_t used = 0;
    while (used < len && h->phase != MEDIA_RTMP__HS_DONE) {
        if (h->phase == MEDIA_RTMP__HS_WAIT_C0C1 && h->have == 0) {
            /* Check C0 on its first byte, so a client speaking something else (HTTP, TLS,
             * RTMPE) is told at once instead of after 1537 bytes. */
            uint8_t v = buf[used];
            if (v == 6 || v == 8) {
                snprintf(errmsg, AX_ERRMSG_LEN,
                         "handshake: C0 version %u asks for RTMPE (encrypted), not supported",
                         v);
                return AX_ENOTSUP;
            }
            if (v != MEDIA_RTMP__VERSION) {
                snprintf(errmsg, AX_ERRMSG_LEN,
                         "handshake: C0 version %u (0x%02x), expected 3: not an RTMP client", v,
                         v);
                return AX_EPROTO;
            }
        }
        size_t want = (h->phase == MEDIA_RTMP__HS_WAIT_C0C1 ? 1 + MEDIA_RTMP__SIG_SIZE
                                                            : MEDIA_RTMP__SIG_SIZE) -
                      h->have;
        size_t take = len - used < want ? len - used : want;
        memcpy(h->buf + h->have, buf + used, take);
        h->have += take;
        used += take;
        if (take < want)
            break;
        if (h->phase == MEDIA_RTMP__HS_WAIT_C0C1) {
            h->c1_time = ax_rd_be32(h->buf + 1);
            h->c1_version = ax_rd_be32(h->buf + 5);
            int rv = reply(h, out, errmsg);
            if (rv != 0)
                return rv;
            h->phase = MEDIA_RTMP__HS_WAIT_C2;
            h->have = 0;
        } else {
            h->phase = MEDIA_RTMP__HS_DONE;
        }
    }
    return (int)used;
}

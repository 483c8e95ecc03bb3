/*
 * The ladder (transcode.h): rung selection against a source, defaults and name checks.
 * No libav* here: the edge links this part directly and loads the transcoder itself only
 * when it transcodes (media_transcode_ops, transcode_ops.c).
 */
#include <stdio.h>
#include <string.h>

#include "aethex/media/transcode.h"
#include "aethex/common/error.h"

/* ---- ladder ---------------------------------------------------------------------------- */

static const char *const presets[] = {"ultrafast", "superfast", "veryfast", "faster", "fast",
                                      "medium",    "slow",      "slower",   "veryslow", "placebo"};
static const char *const profiles[] = {"baseline", "main", "high"};

static bool name_in(const char *name, size_t cap, const char *const *list, size_t n)
{
    if (memchr(name, '\0', cap) == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

static void set_name(char *dst, const char *src)
{
    snprintf(dst, MEDIA_TRANSCODE_NAME_LEN, "%s", src);
}

size_t media_transcode_default_ladder(media_transcode_rung_t *out, size_t cap)
{
    static const struct {
        uint32_t h, kbps;
    } ladder[] = {{1080, 5000}, {720, 2800}, {480, 1200}, {360, 700}};
    for (size_t i = 0; i < AX_ARRAY_SIZE(ladder) && i < cap; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].height = ladder[i].h;
        out[i].bitrate_kbps = ladder[i].kbps;
        out[i].maxrate_kbps = ladder[i].kbps;
        out[i].bufsize_kbps = 2 * ladder[i].kbps;
        set_name(out[i].preset, "veryfast");
        set_name(out[i].profile, "high");
    }
    return AX_ARRAY_SIZE(ladder);
}

static bool dim_ok(uint32_t d)
{
    return d >= MEDIA_TRANSCODE_MIN_DIM && d <= MEDIA_TRANSCODE_MAX_DIM;
}

static bool kbps_ok(uint32_t k)
{
    return k >= MEDIA_TRANSCODE_MIN_KBPS && k <= MEDIA_TRANSCODE_MAX_KBPS;
}

bool media_transcode_preset_valid(const char *name)
{
    return name_in(name, strlen(name) + 1, presets, AX_ARRAY_SIZE(presets));
}

int media_transcode_ladder_select(uint32_t src_w, uint32_t src_h, const media_transcode_rung_t *in,
                                  size_t n, media_transcode_rung_t *out)
{
    if (!dim_ok(src_w) || !dim_ok(src_h) || n > MEDIA_TRANSCODE_MAX_RUNGS || (n && !in))
        return AX_EINVAL;
    size_t nout = 0;
    for (size_t i = 0; i < n; i++) {
        media_transcode_rung_t r = in[i];
        if (!dim_ok(r.height) || (r.width != 0 && !dim_ok(r.width)))
            return AX_EINVAL;
        if (!kbps_ok(r.bitrate_kbps) || (r.maxrate_kbps && !kbps_ok(r.maxrate_kbps)) ||
            (r.maxrate_kbps && r.maxrate_kbps < r.bitrate_kbps) ||
            (r.bufsize_kbps && !kbps_ok(r.bufsize_kbps)))
            return AX_EINVAL;
        if (r.preset[0] == '\0')
            set_name(r.preset, "veryfast");
        if (r.profile[0] == '\0')
            set_name(r.profile, "high");
        if (!name_in(r.preset, sizeof r.preset, presets, AX_ARRAY_SIZE(presets)) ||
            !name_in(r.profile, sizeof r.profile, profiles, AX_ARRAY_SIZE(profiles)))
            return AX_EINVAL;
        if (r.maxrate_kbps == 0)
            r.maxrate_kbps = r.bitrate_kbps;
        if (r.bufsize_kbps == 0)
            r.bufsize_kbps = 2 * r.maxrate_kbps;
        /* Width from the aspect ratio, rounded to the nearest even number as ffmpeg's
         * scale=-2:h does (av_rescale rounds half up). */
        if (r.width == 0)
            r.width = (uint32_t)(((uint64_t)src_w * r.height + src_h) / (2 * (uint64_t)src_h)) * 2;
        r.width &= ~1u;
        r.height &= ~1u;
        if (r.width < MEDIA_TRANSCODE_MIN_DIM || r.height < MEDIA_TRANSCODE_MIN_DIM)
            continue;
        /* Never upscale; a rung the size of the source is the source, passed through. */
        if (r.width >= src_w || r.height >= src_h)
            continue;
        bool dup = false;
        for (size_t j = 0; j < nout; j++)
            dup |= out[j].width == r.width && out[j].height == r.height;
        if (dup)
            continue;
        /* Insertion by height, highest first (stable for equal heights). */
        size_t at = nout;
        while (at > 0 && out[at - 1].height < r.height) {
            out[at] = out[at - 1];
            at--;
        }
        out[at] = r;
        nout++;
    }
    return (int)nout;
}

/* ---- helpers ----------------------------------------------------------------------------- */

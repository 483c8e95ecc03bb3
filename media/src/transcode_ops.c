/*
 * The transcoder's entry points as a table (transcode.h, "Loading the transcoder on
 * demand"). In the module this is its one exported symbol.
 */
#include "aethex/common/log.h"
#include "aethex/media/transcode.h"

static void set_log_level(int level)
{
    if (level >= 0 && level < AX_LOG_LEVEL_COUNT)
        ax_log_set_level((ax_log_level_t)level);
}

__attribute__((visibility("default"))) const media_transcode_ops_t media_transcode_ops = {
    .version = MEDIA_TRANSCODE_OPS_VERSION,
    .size = sizeof(media_transcode_ops_t),
    .transcoder_new = media_transcoder_new,
    .transcoder_free = media_transcoder_free,
    .transcoder_data = media_transcoder_data,
    .transcoder_push = media_transcoder_push,
    .transcoder_flush = media_transcoder_flush,
    .transcoder_drop_rung = media_transcoder_drop_rung,
    .transcoder_rung_count = media_transcoder_rung_count,
    .transcoder_rung = media_transcoder_rung,
    .transcoder_stats = media_transcoder_stats,
    .transcoder_errmsg = media_transcoder_errmsg,
    .set_log_level = set_log_level,
};

/*
 * The transcoder: one H.264 source rendition in, an adaptive-bitrate ladder of H.264
 * renditions out. Decodes each source picture once (libavcodec h264), scales it once per
 * rung (libswscale) and encodes it per rung (libx264 through libavcodec).
 *
 * Every rung puts an IDR picture at exactly the presentation timestamps where the source has
 * one, and nowhere else (no scenecut, closed GOPs, unbounded keyint), so segments and parts
 * cut at source keyframes line up across renditions. Output timestamps are the source's:
 * each output picture has the pts of the source picture it was made from; dts follow the
 * encoder's reordering (B-frames), so a rung's dts may run ahead of the source's by the
 * encoder's reorder delay and be negative at the very start of a stream.
 *
 * Synchronous and socket-free: the edge's per-stream worker thread calls push() for every
 * source video frame and receives the rungs' frames through the callback, inside push()
 * and flush(). No global state: distinct transcoders may be used from distinct threads at
 * the same time; one transcoder is used by one thread at a time.
 *
 * Design and measurements: docs/media-transcode.md, bench/transcode/RESULTS.md.
 */
#ifndef AETHEX_MEDIA_TRANSCODE_H
#define AETHEX_MEDIA_TRANSCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/media/frame.h"

/* Rungs one transcoder accepts (after selection). */
#define MEDIA_TRANSCODE_MAX_RUNGS 8
/* Largest source or rung dimension accepted, in pixels (H.264 level 5.2 is 4096x2304). */
#define MEDIA_TRANSCODE_MAX_DIM 4096
/* Smallest rung dimension, in pixels. */
#define MEDIA_TRANSCODE_MIN_DIM 16
/* Largest accepted input access unit, in bytes (an I-frame of a 4K high-bitrate source). */
#define MEDIA_TRANSCODE_MAX_FRAME_SIZE (8u << 20)
/* Bitrate bounds of a rung, kbit/s. */
#define MEDIA_TRANSCODE_MIN_KBPS 50
#define MEDIA_TRANSCODE_MAX_KBPS 100000
/*
 * The x264 options added to the preset when the config gives none: diamond motion search
 * instead of veryfast's hexagon. Measured (bench/transcode/RESULTS.md): -5..8% CPU for
 * -0.0..0.1 dB PSNR on three kinds of content.
 */
#define MEDIA_TRANSCODE_X264_DEFAULT_PARAMS "me=dia"
/* Longest extra x264-params string, including the NUL. */
#define MEDIA_TRANSCODE_X264_PARAMS_LEN 256
/* Longest preset/profile name, including the NUL. */
#define MEDIA_TRANSCODE_NAME_LEN 16

typedef struct media_transcoder media_transcoder_t;

/* How each rung is scaled from the decoded source (libswscale algorithms). */
typedef enum {
    MEDIA_TRANSCODE_SCALE_BICUBIC,       /* SWS_BICUBIC: the ffmpeg CLI's default */
    MEDIA_TRANSCODE_SCALE_BILINEAR,      /* SWS_BILINEAR */
    MEDIA_TRANSCODE_SCALE_FAST_BILINEAR, /* SWS_FAST_BILINEAR */
    MEDIA_TRANSCODE_SCALE_AREA,          /* SWS_AREA */
    MEDIA_TRANSCODE_SCALE_COUNT
} media_transcode_scale_t;

/* One rung of the ladder as configured. */
typedef struct media_transcode_rung {
    uint32_t width;        /* 0: from height and the source's aspect; odd: rounded down */
    uint32_t height;       /* required; odd: rounded down to even */
    uint32_t bitrate_kbps; /* average (x264 ABR) */
    uint32_t maxrate_kbps; /* VBV max rate; 0: = bitrate */
    uint32_t bufsize_kbps; /* VBV buffer, kbit; 0: = 2 x maxrate */
    char preset[MEDIA_TRANSCODE_NAME_LEN];  /* x264 preset; "": "veryfast" */
    char profile[MEDIA_TRANSCODE_NAME_LEN]; /* "baseline", "main", "high"; "": "high" */
} media_transcode_rung_t;

/*
 * A rung's frames are delivered here, in decode order, inside push() or flush(), on the
 * thread that called them.
 * `frame` and its data are borrowed (valid during the call): AVCC NAL units with 4-byte
 * lengths, dts/cts in ms, keyframe = IDR. `rung` indexes the selected ladder (see
 * media_transcoder_rung()). The callback must not call push()/flush()/free() on `t`.
 */
typedef void (*media_transcode_frame_cb)(media_transcoder_t *t, unsigned rung,
                                         const media_frame_t *frame);

typedef struct media_transcode_config {
    /* The source's decoder configuration; borrowed (the record is copied). */
    const media_avc_config_t *source;
    /* The wanted ladder; borrowed (copied). Selected by media_transcode_ladder_select(). */
    const media_transcode_rung_t *rungs;
    size_t nrungs;
    /* Source frame rate for rate control; 0/0: the source's VUI timing, else 30/1. */
    uint32_t fps_num, fps_den;
    /* Encoder threads per rung (x264 frame threads); 0: 1. Decoder threads; 0: 1. */
    unsigned encode_threads, decode_threads;
    media_transcode_scale_t scale;
    /* Extra libx264 options in x264-params syntax ("me=hex:subme=2"), applied over the
     * preset; ours (scenecut=0:open-gop=0:keyint=infinite) always win. libx264 ignores an
     * unknown option with a libav warning, so a typo is not an error.
     * NULL: MEDIA_TRANSCODE_X264_DEFAULT_PARAMS; "": the preset alone. Copied; at most
     * MEDIA_TRANSCODE_X264_PARAMS_LEN - 1 bytes. */
    const char *x264_params;
    /* Deblock every decoded source picture. By default pictures that no other picture
     * references (nal_ref_idc 0) are not deblocked: nothing can drift from them, and after
     * downscaling the difference is below what the encoders keep (docs/media-transcode.md). */
    bool full_deblock;
    media_transcode_frame_cb on_frame; /* required */
    void *data;                        /* user context, see media_transcoder_data() */
} media_transcode_config_t;

/* What a selected rung is, and what its encoder produced. */
typedef struct media_transcode_rung_info {
    media_transcode_rung_t rung; /* as selected: even width/height, rates filled in */
    bool active;                 /* false once dropped */
    /*
     * The rung's decoder configuration, built from the encoder's global header: record is
     * an AVCDecoderConfigurationRecord (nal_length_size 4), sps/pps slices point into it.
     * Borrowed: valid until media_transcoder_free().
     */
    media_avc_config_t avc;
    uint64_t frames_out;
    uint64_t bytes_out;
} media_transcode_rung_info_t;

typedef struct media_transcode_stats {
    uint64_t frames_in;      /* video frames pushed */
    uint64_t frames_decoded; /* pictures the decoder produced */
    uint64_t decode_errors;  /* frames refused as malformed or by the decoder (skipped) */
    uint64_t frames_skipped; /* decoded pictures dropped: pts not after the previous one */
} media_transcode_stats_t;

/*
 * The default ladder: 1080p 5000k, 720p 2800k, 480p 1200k, 360p 700k (veryfast, high,
 * maxrate = bitrate, bufsize = 2 x bitrate). Copies up to `cap` rungs into `out`; returns
 * how many there are (4). Select against the source with media_transcode_ladder_select().
 */
size_t media_transcode_default_ladder(media_transcode_rung_t *out, size_t cap);

/* True when `name` is one of libx264's presets (ultrafast .. veryslow, placebo). */
bool media_transcode_preset_valid(const char *name);

/*
 * Chooses the rungs to encode for a src_w x src_h source: drops every rung whose height or
 * width would be >= the source's (never upscale; an equal rung is the source itself, which
 * the caller passes through), derives a missing width from the aspect ratio, rounds odd
 * sizes down to even, fills default rates/preset/profile, sorts by height, highest first,
 * and drops duplicates. Writes at most MEDIA_TRANSCODE_MAX_RUNGS rungs to `out`.
 * Returns the number selected (>= 0; 0: nothing below the source), or AX_EINVAL for a bad
 * rung (no height, sizes or rates out of bounds, unknown preset/profile, more than
 * MEDIA_TRANSCODE_MAX_RUNGS) or a source size out of bounds.
 */
int media_transcode_ladder_select(uint32_t src_w, uint32_t src_h, const media_transcode_rung_t *in,
                                  size_t n, media_transcode_rung_t *out);

/*
 * Creates a transcoder: selects the ladder against the source size, opens the decoder and
 * one encoder per selected rung. Each rung's avc config is available at once.
 * Returns 0 and sets *out, or: AX_EINVAL (bad config), AX_ENOENT (no rung below the
 * source: pass the source through alone), AX_ENOTSUP (source not 8-bit 4:2:0 H.264, or
 * libx264 missing), AX_ENOMEM, AX_EIO (codec open failed). On error *out is NULL and, when
 * `errmsg` is not NULL (AX_ERRMSG_LEN bytes, borrowed), it holds the reason.
 */
int media_transcoder_new(const media_transcode_config_t *cfg, media_transcoder_t **out,
                         char *errmsg);

/* Frees the transcoder without flushing. NULL does nothing. */
void media_transcoder_free(media_transcoder_t *t);

/* The `data` pointer given in the config. */
void *media_transcoder_data(const media_transcoder_t *t);

/*
 * Pushes one source frame (borrowed; its data is copied as needed). Audio frames are
 * ignored (audio is passed through once by the caller). Output frames are delivered
 * through the callback before this returns, as the codecs release them.
 * Returns 0; AX_EBADDATA when the frame is malformed or the decoder refused it (counted in
 * decode_errors and skipped; the transcoder stays usable); AX_EMSGSIZE for a frame larger
 * than MEDIA_TRANSCODE_MAX_FRAME_SIZE (skipped); AX_EBADSTATE after flush() or after a
 * fatal error; AX_ENOMEM or AX_EIO (fatal: see media_transcoder_errmsg()).
 */
int media_transcoder_push(media_transcoder_t *t, const media_frame_t *frame);

/*
 * End of stream: drains the decoder and every active encoder through the callback. After
 * it, push() returns AX_EBADSTATE. Returns 0, AX_EBADSTATE if already flushed, or a fatal
 * error as push().
 */
int media_transcoder_flush(media_transcoder_t *t);

/*
 * Drops the lowest active rung (for a worker that falls behind real time): its encoder is
 * closed and the frames still inside it are discarded. Returns the dropped rung's index,
 * or AX_ENOENT when no rung is active.
 */
int media_transcoder_drop_rung(media_transcoder_t *t);

/* The number of selected rungs (active or dropped). */
unsigned media_transcoder_rung_count(const media_transcoder_t *t);

/* Describes rung `i`. Returns 0, or AX_ERANGE if i >= rung_count. */
int media_transcoder_rung(const media_transcoder_t *t, unsigned i,
                          media_transcode_rung_info_t *out);

void media_transcoder_stats(const media_transcoder_t *t, media_transcode_stats_t *out);

/* The reason for the last error returned by push()/flush() ("" if none). */
const char *media_transcoder_errmsg(const media_transcoder_t *t);

/* ---------------------------------------------------------------------------------------- */
/* Loading the transcoder on demand.                                                        */

/*
 * The transcoder's entry points as one table, so that a program can load them only when it
 * transcodes: libavcodec and what it links (about a hundred shared objects on Debian) cost
 * a process several MB of memory and its start-up time even when no stream is transcoded.
 * aethex_media_transcode (static) defines `media_transcode_ops` pointing at the functions
 * above; the module "aethex-transcode.so" (the same code with libav*, aethex_common linked
 * in privately, only this symbol exported) defines it too, for dlopen + dlsym. The ladder
 * functions above (select, defaults, preset names) need no libav* and are not in it.
 */
#define MEDIA_TRANSCODE_OPS_SYMBOL "media_transcode_ops"
/* Bumped whenever the table or any type it passes changes. */
#define MEDIA_TRANSCODE_OPS_VERSION 1

typedef struct media_transcode_ops {
    uint32_t version;     /* MEDIA_TRANSCODE_OPS_VERSION */
    uint32_t size;        /* sizeof(media_transcode_ops_t) */
    int (*transcoder_new)(const media_transcode_config_t *cfg, media_transcoder_t **out,
                          char *errmsg);
    void (*transcoder_free)(media_transcoder_t *t);
    void *(*transcoder_data)(const media_transcoder_t *t);
    int (*transcoder_push)(media_transcoder_t *t, const media_frame_t *frame);
    int (*transcoder_flush)(media_transcoder_t *t);
    int (*transcoder_drop_rung)(media_transcoder_t *t);
    unsigned (*transcoder_rung_count)(const media_transcoder_t *t);
    int (*transcoder_rung)(const media_transcoder_t *t, unsigned i,
                           media_transcode_rung_info_t *out);
    void (*transcoder_stats)(const media_transcoder_t *t, media_transcode_stats_t *out);
    const char *(*transcoder_errmsg)(const media_transcoder_t *t);
    /* The module has its own copy of the log settings: the loader passes its level. */
    void (*set_log_level)(int ax_log_level);
} media_transcode_ops_t;

extern const media_transcode_ops_t media_transcode_ops;

#endif /* AETHEX_MEDIA_TRANSCODE_H */

/*
 * The media types that flow through media/: codec configurations and timestamped frames.
 *
 * Producers: the RTMP session (from FLV tags) and the FLV file reader. Consumers: the CMAF
 * packager, the transcoder, the VOD recorder. Timestamps are milliseconds on a 64-bit,
 * monotonic-per-publish timeline (RTMP's 32-bit wrap already unwrapped).
 */
#ifndef AETHEX_MEDIA_FRAME_H
#define AETHEX_MEDIA_FRAME_H

#include <stdbool.h>
#include <stdint.h>

#include "aethex/common/util.h"

/* Parameter sets an AVCDecoderConfigurationRecord may carry that we keep (ISO 14496-15). */
#define MEDIA_AVC_MAX_PARAM_SETS 4

typedef enum {
    MEDIA_TRACK_VIDEO,
    MEDIA_TRACK_AUDIO,
    MEDIA_TRACK_COUNT
} media_track_t;

/*
 * H.264 decoder configuration, parsed from an AVCDecoderConfigurationRecord and its first SPS.
 * Slices point into the record the parser was given (borrowed): a consumer that keeps the
 * configuration past the callback copies `record`.
 */
typedef struct media_avc_config {
    uint8_t profile_idc;      /* from the record (and checked against the SPS) */
    uint8_t profile_compat;   /* constraint flags byte */
    uint8_t level_idc;
    uint8_t nal_length_size;  /* 1, 2 or 4 */
    uint32_t width;           /* luma width in pixels after cropping, from the SPS */
    uint32_t height;          /* luma height in pixels after cropping, from the SPS */
    uint8_t chroma_format_idc;
    uint8_t bit_depth_luma;
    uint32_t fps_num;         /* from VUI timing info when present, else 0 */
    uint32_t fps_den;
    ax_slice_t record;        /* the whole record as received */
    ax_slice_t sps[MEDIA_AVC_MAX_PARAM_SETS];
    uint8_t nsps;
    ax_slice_t pps[MEDIA_AVC_MAX_PARAM_SETS];
    uint8_t npps;
} media_avc_config_t;

/* AAC decoder configuration, parsed from an AudioSpecificConfig (ISO 14496-3 1.6.2.1). */
typedef struct media_aac_config {
    uint8_t object_type;      /* 2 = AAC-LC, 5 = SBR (HE-AAC), 29 = PS */
    uint8_t sampling_index;   /* 0..12, or 15 when explicit */
    uint32_t sample_rate;     /* Hz */
    uint8_t channels;         /* channel configuration 1..7 (0 = in PCE, refused) */
    ax_slice_t asc;           /* the raw AudioSpecificConfig (borrowed) */
} media_aac_config_t;

/*
 * One access unit. `data` is borrowed: valid only during the callback that delivers it.
 * Video: AVCC (length-prefixed, nal_length_size bytes) NAL units of one picture.
 * Audio: one raw AAC frame (no ADTS header).
 */
typedef struct media_frame {
    media_track_t track;
    int64_t dts;              /* decode timestamp, ms */
    int32_t cts;              /* composition offset, ms: pts = dts + cts (0 for audio) */
    bool keyframe;            /* video: IDR / FLV frame type 1; audio: always true */
    ax_slice_t data;
} media_frame_t;

#endif /* AETHEX_MEDIA_FRAME_H */

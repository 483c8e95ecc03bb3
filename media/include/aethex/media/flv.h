/*
 * FLV tag bodies (as carried in RTMP audio/video messages and FLV files), the H.264
 * AVCDecoderConfigurationRecord + SPS, and the AAC AudioSpecificConfig.
 *
 * Pure functions over borrowed bytes: no allocation, no state. Every output slice points
 * into the input. Each returns 0 or a negative AX_E* code (AX_EBADDATA for malformed input,
 * AX_ENOTSUP for a valid but unsupported codec), never reading past `in.len`.
 * Spec references: Adobe FLV v10.1 Annex E, ISO 14496-15 5.2.4.1, ITU-T H.264 7.3.2.1,
 * ISO 14496-3 1.6.2.1.
 */
#ifndef AETHEX_MEDIA_FLV_H
#define AETHEX_MEDIA_FLV_H

#include <stdbool.h>
#include <stdint.h>

#include "aethex/common/util.h"
#include "aethex/media/frame.h"

#define MEDIA_FLV_CODEC_AVC 7
#define MEDIA_FLV_SOUND_AAC 10

typedef enum {
    MEDIA_FLV_AVC_SEQUENCE_HEADER = 0,
    MEDIA_FLV_AVC_NALU = 1,
    MEDIA_FLV_AVC_END_OF_SEQUENCE = 2,
} media_flv_avc_packet_type_t;

/* A parsed FLV VIDEODATA body. */
typedef struct media_flv_video {
    uint8_t frame_type;       /* 1 key, 2 inter, 3 disposable, 4 generated key, 5 info */
    uint8_t codec_id;         /* 7 = AVC; others parsed but refused by callers */
    uint8_t avc_packet_type;  /* media_flv_avc_packet_type_t (AVC only) */
    int32_t cts;              /* signed 24-bit composition time offset, ms (AVC only) */
    ax_slice_t body;          /* record (sequence header) or AVCC NAL units */
} media_flv_video_t;

/* A parsed FLV AUDIODATA body. */
typedef struct media_flv_audio {
    uint8_t sound_format;     /* 10 = AAC */
    uint8_t sound_rate;       /* 2-bit code */
    uint8_t sound_size;       /* 0 = 8-bit, 1 = 16-bit */
    uint8_t sound_type;       /* 0 mono, 1 stereo */
    uint8_t aac_packet_type;  /* 0 sequence header (ASC), 1 raw frame (AAC only) */
    ax_slice_t body;
} media_flv_audio_t;

int media_flv_parse_video(ax_slice_t in, media_flv_video_t *out);
int media_flv_parse_audio(ax_slice_t in, media_flv_audio_t *out);

/* Parses an AVCDecoderConfigurationRecord and its first SPS (dimensions, VUI frame rate). */
int media_avc_config_parse(ax_slice_t record, media_avc_config_t *out);

/*
 * Checks that `nalus` is a well-formed sequence of `nal_length_size`-prefixed NAL units
 * (every length fits, none is zero). Sets *has_idr when one is NAL type 5.
 */
int media_avc_check_nalus(ax_slice_t nalus, uint8_t nal_length_size, bool *has_idr);

/* Parses an AudioSpecificConfig. */
int media_aac_config_parse(ax_slice_t asc, media_aac_config_t *out);

/* RFC 6381 codec strings: "avc1.64001f", "mp4a.40.2". `out` holds at least 32 bytes. */
void media_avc_codec_string(const media_avc_config_t *c, char *out, size_t size);
void media_aac_codec_string(const media_aac_config_t *c, char *out, size_t size);

/*
 * FLV files (tests, VOD import): the 9-byte header + PreviousTagSize0, then tags.
 * media_flv_file_header() returns bytes consumed (13) or AX_EAGAIN when more input is
 * needed, or AX_EBADDATA. media_flv_file_tag() reads one tag + its trailing
 * PreviousTagSize: returns bytes consumed (> 0), AX_EAGAIN if `in` holds less than a whole
 * tag, AX_EMSGSIZE if the tag's declared size exceeds `max_tag_size`, or AX_EBADDATA.
 */
typedef struct media_flv_tag {
    uint8_t type;             /* 8 audio, 9 video, 18 script data */
    uint32_t timestamp;       /* ms, with the extended byte applied */
    ax_slice_t body;
} media_flv_tag_t;

int media_flv_file_header(ax_slice_t in, bool *has_audio, bool *has_video);
int media_flv_file_tag(ax_slice_t in, uint32_t max_tag_size, media_flv_tag_t *out);

#endif /* AETHEX_MEDIA_FLV_H */

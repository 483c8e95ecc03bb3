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
/* SoundFormat 9: reserved in FLV 10.1, the extended audio header of Enhanced RTMP v2. */
#define MEDIA_FLV_SOUND_EX_HEADER 9

/*
 * Limits, each enforced by the parsers below.
 * MEDIA_AVC_MAX_DIMENSION: coded width and height in luma pixels (an SPS declaring more is
 *   refused with AX_EMSGSIZE); H.264 level 6.2 tops out at 8192x4320.
 * MEDIA_AAC_MAX_SAMPLE_RATE: an explicit (index 15) sampling frequency above it is refused.
 * MEDIA_FLV_FILE_MAX_HEADER_SIZE: the largest FLV file DataOffset accepted (it is 9 in every
 *   file written so far; extra header bytes are skipped).
 */
#define MEDIA_AVC_MAX_DIMENSION 16384
#define MEDIA_AAC_MAX_SAMPLE_RATE 192000
#define MEDIA_FLV_FILE_MAX_HEADER_SIZE 1024

typedef enum {
    MEDIA_FLV_AVC_SEQUENCE_HEADER = 0,
    MEDIA_FLV_AVC_NALU = 1,
    MEDIA_FLV_AVC_END_OF_SEQUENCE = 2,
} media_flv_avc_packet_type_t;

/* A parsed FLV VIDEODATA body. */
typedef struct media_flv_video {
    uint8_t frame_type;      /* 1 key, 2 inter, 3 disposable, 4 generated key, 5 info */
    uint8_t codec_id;        /* 7 = AVC; others parsed but refused by callers */
    uint8_t avc_packet_type; /* media_flv_avc_packet_type_t (AVC only) */
    int32_t cts;             /* signed 24-bit composition time offset, ms (AVC only) */
    ax_slice_t body;         /* record (sequence header) or AVCC NAL units */
} media_flv_video_t;

/* A parsed FLV AUDIODATA body. */
typedef struct media_flv_audio {
    uint8_t sound_format;    /* 10 = AAC */
    uint8_t sound_rate;      /* 2-bit code */
    uint8_t sound_size;      /* 0 = 8-bit, 1 = 16-bit */
    uint8_t sound_type;      /* 0 mono, 1 stereo */
    uint8_t aac_packet_type; /* 0 sequence header (ASC), 1 raw frame (AAC only) */
    ax_slice_t body;
} media_flv_audio_t;

/*
 * Parses a VIDEODATA tag body (FLV 10.1 E.4.3). `in` is borrowed; out->body points into it.
 * For codec 7 (AVC) the 4-byte AVCVIDEOPACKET header is read (packet type 0..2, signed cts);
 * for frame type 5 (video info/command) and other codecs, body is everything after byte 0.
 * Returns 0; AX_EBADDATA for an empty body, frame type 0 or 6-7, a truncated AVC header or
 * an AVC packet type > 2; AX_ENOTSUP for an Enhanced RTMP extended header (frame type bit 3).
 * On error *out is zeroed.
 */
int media_flv_parse_video(ax_slice_t in, media_flv_video_t *out);

/*
 * Parses an AUDIODATA tag body (FLV 10.1 E.4.2). `in` is borrowed; out->body points into it.
 * For AAC (format 10) the AACPacketType byte is read (0 or 1); for other formats body is
 * everything after byte 0 and the caller decides. Returns 0; AX_EBADDATA for an empty body, a
 * missing or > 1 AAC packet type; AX_ENOTSUP for SoundFormat 9 (Enhanced RTMP extended
 * audio). On error *out is zeroed.
 */
int media_flv_parse_audio(ax_slice_t in, media_flv_audio_t *out);

/*
 * Parses an AVCDecoderConfigurationRecord (ISO 14496-15 5.2.4.1) and its first SPS
 * (H.264 7.3.2.1.1: every profile incl. High 10/4:2:2/4:4:4 with scaling lists and separate
 * colour planes, field coding, cropping; VUI timing for the frame rate, reduced to lowest
 * terms, 0/0 when absent). `record` is borrowed and every slice in *out points into it.
 * Returns 0; AX_EBADDATA for a malformed record or SPS (version != 1, length size 3, no SPS,
 * a parameter set that overruns the record or has the wrong NAL type, an SPS that is
 * truncated or out of range, crop >= picture, record profile != SPS profile); AX_EMSGSIZE for
 * a picture larger than MEDIA_AVC_MAX_DIMENSION; AX_ENOTSUP for more than
 * MEDIA_AVC_MAX_PARAM_SETS SPS or PPS. Bytes after the PPS (the High-profile extension) are
 * ignored. On error *out is zeroed.
 */
int media_avc_config_parse(ax_slice_t record, media_avc_config_t *out);

/*
 * Checks that `nalus` is a well-formed sequence of `nal_length_size`-prefixed NAL units
 * (every length fits, none is zero). Sets *has_idr when one is NAL type 5.
 * Returns 0; AX_EBADDATA for an empty input, a truncated length or unit, or a zero length;
 * AX_EINVAL when nal_length_size is not 1, 2 or 4. `nalus` is borrowed.
 */
int media_avc_check_nalus(ax_slice_t nalus, uint8_t nal_length_size, bool *has_idr);

/*
 * Parses an AudioSpecificConfig (ISO 14496-3 1.6.2.1). `asc` is borrowed; out->asc is it.
 * The object type escape (31 + 6 bits) and an explicit 24-bit rate (index 15) are read.
 * With explicit SBR/PS signalling (object type 5 or 29) object_type stays 5/29 and
 * sample_rate is the core AAC rate (the rate the 1024-sample raw frames run at), not the
 * doubled SBR output rate. Trailing bytes (GASpecificConfig, sync extensions) are ignored.
 * Returns 0; AX_EBADDATA for truncation, object type 0, a reserved sampling index (13, 14),
 * rate 0 or above MEDIA_AAC_MAX_SAMPLE_RATE; AX_ENOTSUP for channel configuration 0
 * (layout in a PCE) or 8-15, and for object types other than AAC Main/LC/SSR/LTP, SBR, PS,
 * ER AAC LC/LD/ELD (1-5, 17, 23, 29, 39). On error *out is zeroed.
 */
int media_aac_config_parse(ax_slice_t asc, media_aac_config_t *out);

/* RFC 6381 codec strings: "avc1.64001f", "mp4a.40.2". `out` holds at least 32 bytes. */
void media_avc_codec_string(const media_avc_config_t *c, char *out, size_t size);
void media_aac_codec_string(const media_aac_config_t *c, char *out, size_t size);

/*
 * FLV files (tests, VOD import): the 9-byte header + PreviousTagSize0, then tags.
 * media_flv_file_header() returns bytes consumed (13, or DataOffset + 4 when the header
 * declares extra bytes) or AX_EAGAIN when more input is needed, or AX_EBADDATA (not "FLV",
 * version != 1, reserved flags set, DataOffset < 9, PreviousTagSize0 != 0), or AX_EMSGSIZE
 * (DataOffset > MEDIA_FLV_FILE_MAX_HEADER_SIZE). media_flv_file_tag() reads one tag + its
 * trailing PreviousTagSize: returns bytes consumed (> 0), AX_EAGAIN if `in` holds less than
 * a whole tag, AX_EMSGSIZE if the tag's declared size exceeds `max_tag_size` (decided from
 * the 11-byte header, before the body arrives), AX_ENOTSUP for an encrypted tag (Filter
 * bit), or AX_EBADDATA (reserved bits set, StreamID != 0, PreviousTagSize != 11 + size).
 * Garbage is refused as early as the bytes that show it have arrived. Unknown tag types are
 * returned as they are: callers skip them. `in` is borrowed; out->body points into it.
 * On error *out is zeroed and the flags are false.
 */
typedef struct media_flv_tag {
    uint8_t type;       /* 8 audio, 9 video, 18 script data */
    uint32_t timestamp; /* ms, with the extended byte applied */
    ax_slice_t body;
} media_flv_tag_t;

int media_flv_file_header(ax_slice_t in, bool *has_audio, bool *has_video);
int media_flv_file_tag(ax_slice_t in, uint32_t max_tag_size, media_flv_tag_t *out);

#endif /* AETHEX_MEDIA_FLV_H */

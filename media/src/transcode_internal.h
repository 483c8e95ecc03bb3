/*
 * Internal to the transcoder: H.264 byte-stream conversions between what libx264 (through
 * libavcodec) produces and what media_frame_t carries.
 */
#ifndef AETHEX_MEDIA_TRANSCODE_INTERNAL_H
#define AETHEX_MEDIA_TRANSCODE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "aethex/common/util.h"
#include "aethex/media/frame.h"

/*
 * Appends the NAL units of an Annex-B byte stream (ITU-T H.264 Annex B: 00 00 01 or
 * 00 00 00 01 start codes) to `out` as AVCC units with 4-byte big-endian lengths.
 * Returns the number of NAL units written (>= 0), AX_EBADDATA if `in` does not start with
 * a start code or holds an empty NAL unit, or AX_EMSGSIZE/AX_ENOMEM from `out`.
 */
int media_transcode__annexb_to_avcc(ax_slice_t in, ax_buf_t *out);

/*
 * Builds an AVCDecoderConfigurationRecord (ISO 14496-15 5.2.4.1, nal_length_size 4) from
 * Annex-B SPS and PPS units (an encoder's global header) into `out`. Other NAL types are
 * ignored. For the High profiles (100, 110, 122, 244) the chroma/bit-depth trailer is
 * written for 8-bit 4:2:0. Returns 0, AX_EBADDATA (no SPS, no PPS, more than
 * MEDIA_AVC_MAX_PARAM_SETS of either, an SPS shorter than 4 bytes, a unit over 65535
 * bytes), or AX_EMSGSIZE/AX_ENOMEM from `out`.
 */
int media_transcode__avcc_record(ax_slice_t annexb, ax_buf_t *out);

/*
 * Checks that `in` is a well-formed sequence of `nal_length_size`-prefixed NAL units,
 * each non-empty and inside `in`. Returns 0 or AX_EBADDATA.
 */
int media_transcode__check_avcc(ax_slice_t in, uint8_t nal_length_size);

#endif /* AETHEX_MEDIA_TRANSCODE_INTERNAL_H */

/*
 * CMAF boxes: the init segment (ISO 14496-12 ftyp/moov, 14496-15 avc1/avcC, 14496-14
 * mp4a/esds) and the header of each fragment (styp/moof/mdat). Layout and choices:
 * docs/media-hls.md.
 */
#include <stdio.h>
#include <string.h>

#include "aethex/common/error.h"
#include "hls_internal.h"

/* --- init segment: written into an ax_buf_t, box sizes patched on close ----------------- */

struct w {
    ax_buf_t *b;
    int err;
};

static void put(struct w *w, const void *p, size_t n)
{
    if (w->err == 0)
        w->err = ax_buf_append(w->b, p, n);
}
static void u8(struct w *w, uint8_t v)
{
    put(w, &v, 1);
}
static void u16(struct w *w, uint16_t v)
{
    uint8_t b[2];
    ax_wr_be16(b, v);
    put(w, b, 2);
}
static void u24(struct w *w, uint32_t v)
{
    uint8_t b[3];
    ax_wr_be24(b, v);
    put(w, b, 3);
}
static void u32(struct w *w, uint32_t v)
{
    uint8_t b[4];
    ax_wr_be32(b, v);
    put(w, b, 4);
}
static void zeros(struct w *w, size_t n)
{
    static const uint8_t z[64];
    while (n > 0) {
        size_t k = n < sizeof(z) ? n : sizeof(z);
        put(w, z, k);
        n -= k;
    }
}
static void fourcc(struct w *w, const char *t)
{
    put(w, t, 4);
}

static size_t box(struct w *w, const char *type)
{
    size_t at = w->b->len;
    u32(w, 0);
    fourcc(w, type);
    return at;
}
static size_t fullbox(struct w *w, const char *type, uint8_t version, uint32_t flags)
{
    size_t at = box(w, type);
    u8(w, version);
    u24(w, flags);
    return at;
}
static void end(struct w *w, size_t at)
{
    if (w->err == 0)
        ax_wr_be32(w->b->base + at, (uint32_t)(w->b->len - at));
}

/* The unity matrix of mvhd/tkhd (ISO 14496-12 8.2.2). */
static void matrix(struct w *w)
{
    static const uint32_t m[9] = {0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000};
    for (int i = 0; i < 9; i++)
        u32(w, m[i]);
}

/* ES descriptor lengths in the one-byte form: every field we write is under 128 bytes
 * (the ASC is bounded by set_audio_config). */
static void esds(struct w *w, ax_slice_t asc)
{
    size_t at = fullbox(w, "esds", 0, 0);
    uint8_t dsi_len = (uint8_t)asc.len;
    uint8_t dcd_len = (uint8_t)(13 + 2 + dsi_len);
    uint8_t es_len = (uint8_t)(3 + 2 + dcd_len + 3);
    u8(w, 0x03); /* ES_DescrTag */
    u8(w, es_len);
    u16(w, 1);   /* ES_ID */
    u8(w, 0);    /* no stream dependence, URL or OCR */
    u8(w, 0x04); /* DecoderConfigDescrTag */
    u8(w, dcd_len);
    u8(w, 0x40); /* objectTypeIndication: ISO 14496-3 audio */
    u8(w, 0x15); /* streamType 5 (audio) << 2 | upStream 0 | reserved 1 */
    u24(w, 0);   /* bufferSizeDB */
    u32(w, 0);   /* maxBitrate */
    u32(w, 0);   /* avgBitrate */
    u8(w, 0x05); /* DecSpecificInfoTag */
    u8(w, dsi_len);
    put(w, asc.base, asc.len);
    u8(w, 0x06); /* SLConfigDescrTag */
    u8(w, 1);
    u8(w, 0x02); /* predefined: MP4 */
    end(w, at);
}

static void sample_entry(struct w *w, const struct cmaf_track_info *ti)
{
    if (ti->track == MEDIA_TRACK_VIDEO) {
        size_t at = box(w, "avc1");
        zeros(w, 6);
        u16(w, 1); /* data_reference_index */
        zeros(w, 16); /* pre_defined, reserved, pre_defined[3] */
        u16(w, (uint16_t)ti->width);
        u16(w, (uint16_t)ti->height);
        u32(w, 0x00480000); /* 72 dpi */
        u32(w, 0x00480000);
        u32(w, 0);
        u16(w, 1); /* frame_count */
        zeros(w, 32); /* compressorname */
        u16(w, 0x0018);
        u16(w, 0xffff);
        size_t c = box(w, "avcC");
        put(w, ti->avcc.base, ti->avcc.len);
        end(w, c);
        end(w, at);
    } else {
        size_t at = box(w, "mp4a");
        zeros(w, 6);
        u16(w, 1);
        zeros(w, 8);
        u16(w, ti->channels ? ti->channels : 2);
        u16(w, 16); /* samplesize */
        u16(w, 0);
        u16(w, 0);
        u32(w, ti->sample_rate <= 0xffff ? ti->sample_rate << 16 : 0);
        esds(w, ti->asc);
        end(w, at);
    }
}

int media_cmaf__write_init(const struct cmaf_track_info *ti, ax_buf_t *out)
{
    struct w w = {out, 0};
    bool video = ti->track == MEDIA_TRACK_VIDEO;
    ax_buf_reset(out);

    size_t ftyp = box(&w, "ftyp");
    fourcc(&w, "iso6");
    u32(&w, 0);
    fourcc(&w, "iso6");
    fourcc(&w, "cmfc");
    fourcc(&w, "isom");
    fourcc(&w, "mp41");
    end(&w, ftyp);

    size_t moov = box(&w, "moov");
    size_t mvhd = fullbox(&w, "mvhd", 0, 0);
    u32(&w, 0);
    u32(&w, 0);
    u32(&w, 1000); /* timescale */
    u32(&w, 0);    /* duration: unknown (fragmented) */
    u32(&w, 0x00010000);
    u16(&w, 0x0100);
    zeros(&w, 10);
    matrix(&w);
    zeros(&w, 24);
    u32(&w, 2); /* next_track_ID */
    end(&w, mvhd);

    size_t trak = box(&w, "trak");
    size_t tkhd = fullbox(&w, "tkhd", 0, 0x7); /* enabled, in movie, in preview */
    u32(&w, 0);
    u32(&w, 0);
    u32(&w, 1); /* track_ID */
    u32(&w, 0);
    u32(&w, 0); /* duration */
    zeros(&w, 8);
    u16(&w, 0); /* layer */
    u16(&w, 0); /* alternate_group */
    u16(&w, video ? 0 : 0x0100);
    u16(&w, 0);
    matrix(&w);
    u32(&w, video ? ti->width << 16 : 0);
    u32(&w, video ? ti->height << 16 : 0);
    end(&w, tkhd);

    size_t mdia = box(&w, "mdia");
    size_t mdhd = fullbox(&w, "mdhd", 0, 0);
    u32(&w, 0);
    u32(&w, 0);
    u32(&w, ti->timescale);
    u32(&w, 0);
    u16(&w, 0x55c4); /* "und" */
    u16(&w, 0);
    end(&w, mdhd);
    size_t hdlr = fullbox(&w, "hdlr", 0, 0);
    u32(&w, 0);
    fourcc(&w, video ? "vide" : "soun");
    zeros(&w, 12);
    const char *hname = video ? "VideoHandler" : "SoundHandler";
    put(&w, hname, strlen(hname) + 1);
    end(&w, hdlr);

    size_t minf = box(&w, "minf");
    if (video) {
        size_t vmhd = fullbox(&w, "vmhd", 0, 1);
        zeros(&w, 8);
        end(&w, vmhd);
    } else {
        size_t smhd = fullbox(&w, "smhd", 0, 0);
        zeros(&w, 4);
        end(&w, smhd);
    }
    size_t dinf = box(&w, "dinf");
    size_t dref = fullbox(&w, "dref", 0, 0);
    u32(&w, 1);
    size_t url = fullbox(&w, "url ", 0, 1); /* self-contained */
    end(&w, url);
    end(&w, dref);
    end(&w, dinf);
    size_t stbl = box(&w, "stbl");
    size_t stsd = fullbox(&w, "stsd", 0, 0);
    u32(&w, 1);
    sample_entry(&w, ti);
    end(&w, stsd);
    static const char *empty[] = {"stts", "stsc", "stco"};
    for (size_t i = 0; i < 3; i++) {
        size_t b = fullbox(&w, empty[i], 0, 0);
        u32(&w, 0);
        end(&w, b);
    }
    size_t stsz = fullbox(&w, "stsz", 0, 0);
    u32(&w, 0);
    u32(&w, 0);
    end(&w, stsz);
    end(&w, stbl);
    end(&w, minf);
    end(&w, mdia);
    end(&w, trak);

    size_t mvex = box(&w, "mvex");
    size_t trex = fullbox(&w, "trex", 0, 0);
    u32(&w, 1); /* track_ID */
    u32(&w, 1); /* default_sample_description_index */
    u32(&w, 0);
    u32(&w, 0);
    u32(&w, 0);
    end(&w, trex);
    end(&w, mvex);
    end(&w, moov);
    return w.err;
}

/* --- fragments: sizes are known up front, so the header is written in one pass -------- */

/* trun per-sample bytes: video duration, size, flags, composition offset; audio duration
 * and size (every AAC frame is a sync sample: tfhd default_sample_flags says so). */
static size_t per_sample(media_track_t track)
{
    return track == MEDIA_TRACK_VIDEO ? 16 : 8;
}

#define STYP_SIZE 24
#define MFHD_SIZE 16
#define TFDT_SIZE 20
#define TRUN_FIXED 20

static size_t tfhd_size(media_track_t track)
{
    return track == MEDIA_TRACK_VIDEO ? 16 : 20;
}

static size_t moof_size(media_track_t track, uint32_t n)
{
    size_t traf = 8 + tfhd_size(track) + TFDT_SIZE + TRUN_FIXED + per_sample(track) * n;
    return 8 + MFHD_SIZE + traf;
}

size_t media_cmaf__fragment_header_size(media_track_t track, bool styp, uint32_t n)
{
    return (styp ? STYP_SIZE : 0) + moof_size(track, n) + 8;
}

static uint8_t *wr_box(uint8_t *p, uint32_t size, const char *type)
{
    ax_wr_be32(p, size);
    memcpy(p + 4, type, 4);
    return p + 8;
}
static uint8_t *wr_full(uint8_t *p, uint32_t size, const char *type, uint8_t v, uint32_t flags)
{
    p = wr_box(p, size, type);
    p[0] = v;
    ax_wr_be24(p + 1, flags);
    return p + 4;
}

/* Sample flags (ISO 14496-12 8.8.3.1): sync samples depend on no other (sample_depends_on 2);
 * others depend on some (1) and are non-sync. */
#define FLAGS_SYNC 0x02000000u
#define FLAGS_NON_SYNC 0x01010000u

void media_cmaf__write_fragment_header(uint8_t *dst, media_track_t track, bool styp,
                                       uint32_t sequence, uint64_t base_decode_time,
                                       const struct cmaf_sample *s, uint32_t n,
                                       uint64_t payload_size)
{
    bool video = track == MEDIA_TRACK_VIDEO;
    uint8_t *p = dst;
    if (styp) {
        p = wr_box(p, STYP_SIZE, "styp");
        memcpy(p, "msdh", 4);
        ax_wr_be32(p + 4, 0);
        memcpy(p + 8, "msdh", 4);
        memcpy(p + 12, "msix", 4);
        p += 16;
    }
    size_t moof = moof_size(track, n);
    p = wr_box(p, (uint32_t)moof, "moof");
    p = wr_full(p, MFHD_SIZE, "mfhd", 0, 0);
    ax_wr_be32(p, sequence);
    p += 4;
    size_t traf = moof - 8 - MFHD_SIZE;
    p = wr_box(p, (uint32_t)traf, "traf");
    /* default-base-is-moof (0x020000), plus default-sample-flags (0x20) for audio. */
    p = wr_full(p, (uint32_t)tfhd_size(track), "tfhd", 0, video ? 0x020000 : 0x020020);
    ax_wr_be32(p, 1);
    p += 4;
    if (!video) {
        ax_wr_be32(p, FLAGS_SYNC);
        p += 4;
    }
    p = wr_full(p, TFDT_SIZE, "tfdt", 1, 0);
    ax_wr_be64(p, base_decode_time);
    p += 8;
    /* data-offset, sample-duration, sample-size [, sample-flags, composition offsets];
     * version 1: signed composition offsets (B-frames). */
    uint32_t trun_flags = video ? 0x000f01 : 0x000301;
    p = wr_full(p, (uint32_t)(TRUN_FIXED + per_sample(track) * n), "trun", 1, trun_flags);
    ax_wr_be32(p, n);
    ax_wr_be32(p + 4, (uint32_t)(moof + 8)); /* data offset: first payload byte, from moof */
    p += 8;
    for (uint32_t i = 0; i < n; i++) {
        ax_wr_be32(p, s[i].duration);
        ax_wr_be32(p + 4, s[i].size);
        p += 8;
        if (video) {
            ax_wr_be32(p, s[i].sync ? FLAGS_SYNC : FLAGS_NON_SYNC);
            ax_wr_be32(p + 4, (uint32_t)s[i].cto);
            p += 8;
        }
    }
    wr_box(p, (uint32_t)(8 + payload_size), "mdat");
}

void media_cmaf__avc_codec_string(uint8_t profile, uint8_t compat, uint8_t level, char *out,
                                  size_t size)
{
    snprintf(out, size, "avc1.%02x%02x%02x", profile, compat, level);
}

void media_cmaf__aac_codec_string(uint8_t object_type, char *out, size_t size)
{
    snprintf(out, size, "mp4a.40.%u", object_type);
}

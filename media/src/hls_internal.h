/*
 * Internals of the CMAF packager and LL-HLS playlists (media/src/cmaf*.c, media/src/hls*.c).
 * Never included from outside media/src/.
 */
#ifndef AETHEX_MEDIA_HLS_INTERNAL_H
#define AETHEX_MEDIA_HLS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/util.h"
#include "aethex/media/hls.h"

/* ---------------------------------------------------------------------------------------- */
/* media_part_t (hls_part.c).                                                               */

/*
 * One allocation: this struct, then iov[niov], own[nown], child[nchild], then `inline_len`
 * bytes of inline storage. A leaf owns the buffers in own[] (payload slabs); a composite (a
 * whole segment) holds a reference on each child and exposes their pieces in order.
 */
struct media_part {
    int refs;                   /* atomic (__atomic builtins) */
    size_t size;
    size_t niov;
    ax_slice_t *iov;            /* points into this allocation */
    size_t nown;
    void **own;                 /* owned: ax_free'd with the part */
    size_t nchild;
    media_part_t **child;       /* owned references */
    uint8_t *inl;               /* inline storage (the moof header, a playlist) */
};

/* A leaf with `niov` pieces, `nown` owned-pointer slots and `inline_len` inline bytes. The
 * caller fills iov[], own[] and inl, then sets size with media_hls__part_seal(). */
int media_hls__part_new(size_t niov, size_t nown, size_t inline_len, media_part_t **out);
void media_hls__part_seal(media_part_t *p);

/* A composite of `n` children (each gets a reference). */
int media_hls__part_new_composite(media_part_t *const *children, size_t n, media_part_t **out);

/* ---------------------------------------------------------------------------------------- */
/* CMAF boxes (cmaf.c).                                                                     */

#define MEDIA_CMAF_VIDEO_TIMESCALE 90000u

/* What an init segment needs, independent of where the config came from. */
struct cmaf_track_info {
    media_track_t track;
    uint32_t timescale;
    /* video */
    uint32_t width, height;
    ax_slice_t avcc;            /* the AVCDecoderConfigurationRecord */
    /* audio */
    uint32_t sample_rate;
    uint8_t channels;
    ax_slice_t asc;             /* the AudioSpecificConfig */
};

/* Writes ftyp + moov (one trak) + mvex into `out` (reset first). 0, AX_ENOMEM, AX_EMSGSIZE. */
int media_cmaf__write_init(const struct cmaf_track_info *ti, ax_buf_t *out);

struct cmaf_sample {
    uint32_t size;
    uint32_t duration;          /* in timescale ticks */
    int32_t cto;                /* composition offset, ticks (signed, trun version 1) */
    bool sync;
};

/* Size of styp (optional) + moof + mdat header for `n` samples of `track`. */
size_t media_cmaf__fragment_header_size(media_track_t track, bool styp, uint32_t n);

/*
 * Writes [styp] moof(mfhd, traf(tfhd, tfdt v1, trun v1)) and the mdat header for a fragment
 * whose payload (sum of sizes) follows immediately. `dst` holds exactly
 * media_cmaf__fragment_header_size() bytes.
 */
void media_cmaf__write_fragment_header(uint8_t *dst, media_track_t track, bool styp,
                                       uint32_t sequence, uint64_t base_decode_time,
                                       const struct cmaf_sample *s, uint32_t n,
                                       uint64_t payload_size);

/* RFC 6381 codec strings. */
void media_cmaf__avc_codec_string(uint8_t profile, uint8_t compat, uint8_t level, char *out,
                                  size_t size);
void media_cmaf__aac_codec_string(uint8_t object_type, char *out, size_t size);

/* ---------------------------------------------------------------------------------------- */
/* Stream and renditions (hls_stream.c), rendered by hls_playlist.c.                        */

#define HLS_MAX_SLABS 16
#define HLS_INIT_GENS 8
#define HLS_BOUNDARIES 32
#define HLS_NAME_MAX 32
#define HLS_CODECS_MAX 40
/* A timeline may start up to this much before its first frame (audio slightly ahead of the
 * first video frame after a restart); earlier frames are dropped. */
#define HLS_TIMELINE_SLACK_MS 500
/* Two segment starts this close (1 ms at 90 kHz) are the same instant (align_with_lead). */
#define HLS_ALIGN_SLACK_TICKS 90
/* The highest limits.max_renditions accepted (and what a master playlist can list). */
#define HLS_MAX_RENDITIONS 64

struct hls_part_rec {
    media_part_t *bytes;        /* owned reference */
    uint32_t duration;          /* ticks */
    bool independent;
};

struct hls_segment {
    uint64_t msn;
    uint32_t timescale;         /* of start/duration/parts (audio may change rate) */
    uint64_t start;             /* ticks, output timeline */
    uint64_t duration;          /* ticks: sum of part durations */
    int64_t pdt_ms;             /* PROGRAM-DATE-TIME, Unix ms */
    uint64_t disc_seq;          /* discontinuity sequence number, counting this one's tag */
    uint64_t bytes;
    uint32_t init_gen;
    uint32_t frames;
    bool discontinuity;         /* EXT-X-DISCONTINUITY before it */
    bool complete;
    bool in_use;
    uint32_t nparts;
    struct hls_part_rec *parts; /* owned: max_parts entries, allocated once per slot */
    media_part_t *whole;        /* owned reference, once complete */
};

struct hls_boundary {
    uint64_t timeline;
    int64_t ms;                 /* output timeline */
};

struct media_hls_rendition {
    media_hls_stream_t *s;
    size_t index;
    char name[HLS_NAME_MAX + 1];
    media_track_t track;
    uint32_t bandwidth_hint;
    uint32_t timescale;         /* 90000 video, sample rate audio */
    char codecs[HLS_CODECS_MAX];

    /* config */
    bool has_config;
    uint8_t *config_bytes;      /* owned: record / ASC of the current generation */
    size_t config_len;
    uint32_t width, height, fps_num, fps_den;
    uint32_t sample_rate;
    uint8_t channels;
    uint32_t init_gen;          /* current generation (valid when has_config) */
    media_part_t *init[HLS_INIT_GENS]; /* owned: generation g at g % HLS_INIT_GENS */
    uint32_t init_count;        /* generations created */
    bool config_changed;        /* cut + discontinuity at the next opportunity */
    bool ended;                 /* media_hls_rendition_end: no more media, not listed */

    /* limits derived from the stream config, in ticks */
    uint64_t seg_target, part_target, td_max;

    /* ring */
    struct hls_segment *ring;   /* owned: nslots */
    uint32_t nslots;
    uint32_t max_parts;
    uint64_t first_msn;         /* oldest segment in the ring */
    uint64_t next_msn;          /* msn the next new segment gets */
    bool seg_open;              /* ring[(next_msn - 1) % nslots] is in progress */
    bool any_complete;
    uint64_t last_complete;
    uint64_t disc_seq;          /* tags emitted so far */
    bool next_discontinuity;

    /* timeline */
    uint64_t timeline;          /* the stream timeline cto_shift was taken on */
    bool shift_set;
    int32_t cto_shift;          /* video: ticks added to dts, taken from cto (see push_video) */
    bool started;               /* a segment has started on this timeline */
    uint64_t end;               /* ticks: end of everything pushed (last dts + duration) */
    uint64_t last_dts;          /* video: the pending sample's dts */
    uint32_t last_dur;          /* video: the previous sample's duration (estimate) */
    uint64_t bseq;              /* audio: next lead boundary to consume */
    bool unled;                 /* audio: this timeline cuts on its own (no lead video) */
    bool waiting_lead;          /* audio: dropping frames until the lead's first cut */
    int64_t wait_since_ms;

    /* the open part */
    bool part_open;
    uint64_t part_start;
    uint32_t part_seq;          /* mfhd sequence number of the next fragment */
    struct cmaf_sample *samples; /* owned: max_samples_per_part */
    uint32_t nsamples;
    bool part_independent;
    bool part_pending;          /* video: last sample's duration not known yet */
    uint8_t *slab[HLS_MAX_SLABS]; /* owned until the part is sealed */
    size_t slab_len[HLS_MAX_SLABS], slab_cap[HLS_MAX_SLABS];
    uint32_t nslabs;
    size_t part_payload;
    size_t slab_estimate;       /* payload size of recent parts, sizes the next slab */

    /* serving */
    media_part_t *cache[2];     /* owned: rendered playlist (full, delta) */
    uint64_t cache_version[2];
    media_hls_waiter_t *waiters; /* intrusive doubly linked list */
    media_hls_waiter_t *firing, *firing_tail; /* ready, being called back */
    uint32_t nwaiters;

    media_hls_rendition_stats_t st;
    ax_buf_t scratch;           /* init segment assembly */
};

struct media_hls_stream {
    media_hls_config_t cfg;
    media_hls_rendition_t **r;  /* owned */
    size_t nr;
    media_hls_rendition_t *lead; /* first video rendition */
    uint64_t version;           /* bumped whenever any playlist would change */
    bool ended;

    /* timeline mapping: out_ms = in_ms - in_base + out_base */
    uint64_t timeline;
    bool mapped;
    int64_t in_base, out_base;
    bool anchored;
    int64_t anchor_wall_ms, anchor_media_ms;

    struct hls_boundary bnd[HLS_BOUNDARIES]; /* lead segment starts, bseq % HLS_BOUNDARIES */
    uint64_t bseq;

    media_part_t *master;       /* owned: cached */
    uint64_t master_version;
};

/* The segment record for `msn`, or NULL when it is not in the ring. */
struct hls_segment *media_hls__segment(const media_hls_rendition_t *r, uint64_t msn);

/* Position of the newest complete part: false when there is none. */
bool media_hls__latest_part(const media_hls_rendition_t *r, uint64_t *msn, uint32_t *part);

/* Renders a media playlist / the master into a new part. */
int media_hls__render_media(media_hls_rendition_t *r, bool skip, media_part_t **out);
int media_hls__render_master(media_hls_stream_t *s, media_part_t **out);

/* "2026-11-26T09:15:02.123Z" (24 chars + NUL). */
void media_hls__format_pdt(int64_t unix_ms, char out[32]);

#endif /* AETHEX_MEDIA_HLS_INTERNAL_H */

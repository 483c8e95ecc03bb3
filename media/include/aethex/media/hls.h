/*
 * CMAF (fMP4) packager and Low-Latency HLS playlists, with no sockets and no clock.
 *
 * One media_hls_stream_t per live channel holds one media_hls_rendition_t per track variant:
 * each video rendition (the source passthrough, each transcoded rung) and one shared audio
 * rendition (audio is demuxed into its own EXT-X-MEDIA group, as Apple's HLS authoring spec
 * recommends; see docs/media-hls.md). Each rendition has its own init segment, its own
 * in-memory ring of segments and parts, and its own media playlist; the stream renders the
 * master playlist and the rendition reports.
 *
 * Feeding (the pipeline, loop thread):
 *
 *   media_hls_stream_new(&cfg, &s)
 *   media_hls_stream_add_rendition(s, &{name "720p", MEDIA_TRACK_VIDEO}, &v)
 *   media_hls_stream_add_rendition(s, &{name "audio", MEDIA_TRACK_AUDIO}, &a)
 *   media_hls_rendition_set_video_config(v, &avc)   on every AVC sequence header
 *   media_hls_rendition_set_audio_config(a, &aac)   on every AAC sequence header
 *   media_hls_rendition_push(v or a, &frame, wall_ms)   every frame, in arrival order
 *   media_hls_stream_discontinuity(s)   the publisher went away / reconnected
 *   media_hls_stream_end(s)             the stream is over (EXT-X-ENDLIST)
 *   media_hls_rendition_end(r)          one rendition stops for good (a dropped rung)
 *   media_hls_stream_remove_rendition(s, r)   forget an ended rendition (frees its ring)
 *   media_hls_stream_free(s)
 *
 * Serving (the edge HTTP server, loop thread), for GET <stream>/<rendition>/<name>?<query>:
 *
 *   media_hls_resource_parse(name, &res)            404 on error
 *   master:    media_hls_stream_master(s, &bytes)   (AX_EAGAIN until every rendition has its
 *                                                    codec config: wait on msn 0 of one)
 *   playlist:  media_hls_params_parse(query, &p)    400 on error
 *              media_hls_rendition_wait_playlist(r, &w, &p, on_ready)
 *                  1 -> media_hls_rendition_playlist(r, p.skip, &bytes) now
 *                  0 -> on_ready(w, status) fires later (status 0: render it now)
 *                  AX_ETOOFAR / AX_EINVAL -> 400
 *   init/segment/part: media_hls_rendition_get(r, &res, &bytes)
 *                  0 -> send; AX_EAGAIN -> media_hls_rendition_wait_resource() (a preload
 *                  hint or a segment in progress), AX_EGONE/AX_ENOENT -> 404
 *
 * Bytes: every init segment, part, segment and rendered playlist is a media_part_t:
 * immutable, reference-counted, made of one or more contiguous pieces (iovecs). A segment is
 * the gather list of its parts' pieces: nothing is copied per viewer or per segment. Each
 * frame's payload is copied exactly once, from the borrowed frame into a part's payload slab.
 *
 * Timing: media/ has no clock. The caller passes wall-clock Unix milliseconds with each frame;
 * it anchors EXT-X-PROGRAM-DATE-TIME (anchor + media time, re-anchored after a
 * discontinuity). A video frame's duration is known only when the next video frame arrives, so
 * a video part becomes available when the first frame after it arrives: at most one frame
 * interval (33 ms at 30 fps) after its last frame. An audio part (AAC frames have a fixed
 * length of 1024 samples) is available the moment its last frame arrives.
 *
 * URIs: a rendition's resources are named relative to its media playlist:
 *   index.m3u8, init-<gen>.mp4, seg-<msn>.m4s, part-<msn>.<index>.m4s
 * and the master playlist names each rendition's playlist "<name>/index.m3u8". The edge
 * serves the master at any path and each rendition at "<that directory>/<name>/".
 *
 * Threading: one thread (the edge loop) owns a stream and its renditions, and calls every
 * function except media_part_ref/media_part_unref, which are atomic and may be called from
 * any thread (a media_part_t may be handed to another thread while it holds a reference).
 */
#ifndef AETHEX_MEDIA_HLS_H
#define AETHEX_MEDIA_HLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/error.h"
#include "aethex/common/util.h"
#include "aethex/media/frame.h"

/* ---------------------------------------------------------------------------------------- */
/* Immutable, reference-counted bytes.                                                      */

/*
 * An init segment, a part (a CMAF chunk: moof + mdat, the first part of a segment starting
 * with styp), a whole segment (the concatenation of its parts) or a rendered playlist.
 * The bytes never change while any reference is held. Created with one reference owned by
 * whoever received it from a media_hls_* call.
 */
typedef struct media_part media_part_t;

/* Adds a reference and returns `p`. Thread-safe. */
media_part_t *media_part_ref(media_part_t *p);

/* Drops a reference; the last one frees the bytes. NULL does nothing. Thread-safe. */
void media_part_unref(media_part_t *p);

/* Total number of bytes. */
size_t media_part_size(const media_part_t *p);

/* The bytes as `media_part_iov_count(p)` contiguous pieces, in order (for writev/h2o_send).
 * Each slice is valid while the caller holds its reference. `i` < media_part_iov_count(p). */
size_t media_part_iov_count(const media_part_t *p);
ax_slice_t media_part_iov(const media_part_t *p, size_t i);

/* Copies the bytes to `dst` (at least media_part_size(p) bytes). For tests and tools. */
void media_part_copy_out(const media_part_t *p, uint8_t *dst);

/* ---------------------------------------------------------------------------------------- */
/* Configuration.                                                                          */

/* Every limit the packager enforces. media_hls_config_default() fills sane values. */
typedef struct media_hls_limits {
    uint32_t max_frame_bytes;       /* one access unit (default 4 MiB): larger -> AX_EMSGSIZE */
    uint32_t max_samples_per_part;  /* a part closes early when full (default 256) */
    uint32_t max_renditions;        /* per stream (default 8) */
    uint32_t max_waiters;           /* blocked requests per rendition (default 100000) */
    uint32_t max_query_len;         /* media_hls_params_parse input (default 2048) */
} media_hls_limits_t;

typedef struct media_hls_config {
    /* A segment is cut at the first keyframe at or after this duration (default 2000 ms,
     * one GOP at the usual 2 s keyframe interval). */
    uint32_t segment_target_ms;
    /* EXT-X-TARGETDURATION in seconds; no segment is ever longer. When a GOP would exceed it
     * the segment is cut at a non-keyframe (such a segment does not start with an
     * INDEPENDENT part). 0 = auto: ceil(1.5 * segment_target_ms / 1000). */
    uint32_t target_duration_s;
    /* EXT-X-PART-INF PART-TARGET (default 500 ms, 100..segment_target_ms). No part is
     * longer; a part is closed when one more frame of the last frame's duration would not
     * fit. */
    uint32_t part_target_ms;
    /* EXT-X-SERVER-CONTROL PART-HOLD-BACK; 0 = 3 * part target (the spec's minimum). */
    uint32_t part_hold_back_ms;
    /* Complete segments listed in a media playlist (default 12; at least 3). */
    uint32_t window_segments;
    /* Segments kept in memory after they leave the playlist, so that a viewer holding an
     * older playlist can still fetch them (default 2). */
    uint32_t retain_segments;
    media_hls_limits_t limits;
} media_hls_config_t;

/* Fills `cfg` with the defaults above. */
void media_hls_config_default(media_hls_config_t *cfg);

typedef struct media_hls_rendition_config {
    /* Used in URIs and the master playlist: 1..32 of [A-Za-z0-9_-]. Copied. */
    const char *name;
    media_track_t track;        /* MEDIA_TRACK_VIDEO or MEDIA_TRACK_AUDIO */
    /* Bits per second announced in the master playlist until a segment has been measured
     * (0: estimate from the codec level / sample rate). */
    uint32_t bandwidth_hint;
} media_hls_rendition_config_t;

typedef struct media_hls_stream media_hls_stream_t;
typedef struct media_hls_rendition media_hls_rendition_t;

/* ---------------------------------------------------------------------------------------- */
/* Stream lifecycle and input.                                                              */

/*
 * Creates an empty stream. `cfg` is copied. Returns 0, AX_EINVAL (a value out of range) or
 * AX_ENOMEM. On failure *out is NULL.
 */
int media_hls_stream_new(const media_hls_config_t *cfg, media_hls_stream_t **out);

/*
 * Frees the stream, its renditions and their rings. Every pending waiter's callback fires
 * with AX_ECANCELED first (from inside this call). Parts still referenced by viewers stay
 * valid until their last media_part_unref. NULL does nothing. Never from a waiter callback.
 */
void media_hls_stream_free(media_hls_stream_t *s);

/*
 * Adds a rendition. `rc` and its name are copied. The first video rendition added leads:
 * audio renditions cut their segments where it cut its own, so that a media sequence number
 * means the same time span in every rendition. A video rendition added later whose first
 * segment starts when a lead segment in the ring starts (within 1 ms) takes that segment's
 * media sequence and discontinuity sequence numbers. *out is owned by the stream (freed with it).
 * Returns 0, AX_EINVAL (bad name or track), AX_EEXIST (name taken), AX_ENOSPC
 * (max_renditions) or AX_ENOMEM.
 */
int media_hls_stream_add_rendition(media_hls_stream_t *s, const media_hls_rendition_config_t *rc,
                                   media_hls_rendition_t **out);

/* Looks a rendition up by name (borrowed). NULL when absent. */
media_hls_rendition_t *media_hls_stream_rendition(const media_hls_stream_t *s, ax_slice_t name);

/* Renditions in the order added. */
size_t media_hls_stream_rendition_count(const media_hls_stream_t *s);
media_hls_rendition_t *media_hls_stream_rendition_at(const media_hls_stream_t *s, size_t i);

/*
 * The publisher stopped or restarted (reconnect, new encoder). Every rendition closes its
 * open part and segment now (the last video frame gets the previous frame's duration), so
 * everything pushed so far becomes available. The next frames start a new timeline: their
 * timestamps are mapped to continue after the latest end of any rendition (so output
 * timestamps stay monotonic whatever the publisher's clock restarts at), PROGRAM-DATE-TIME is
 * re-anchored, and the next segment of each rendition carries EXT-X-DISCONTINUITY. Media
 * sequence numbers continue. Waiters fire from inside this call. Returns 0 (if sealing the
 * last part fails for lack of memory, that part's frames are lost, as in push).
 */
int media_hls_stream_discontinuity(media_hls_stream_t *s);

/*
 * The stream is over: closes every open part and segment as discontinuity() does, and every
 * media playlist gets EXT-X-ENDLIST. Playlist waiters fire with 0 (the final playlist
 * answers them); resource waiters for media that will now never exist fire with AX_ENOENT.
 * Further pushes return AX_ECLOSED. Returns 0.
 */
int media_hls_stream_end(media_hls_stream_t *s);

/*
 * This rendition gets no more media while the others go on (the edge's transcoder dropped
 * the rung). Its open part and segment close now, as in discontinuity(), so everything
 * pushed stays fetchable; from then on it is withdrawn rather than finished: the master
 * playlist and the other renditions' reports no longer list it, and its media playlist
 * answers AX_ENOENT (a 404, which players treat as "switch to another variant"; an
 * EXT-X-ENDLIST would tell them the whole presentation is over). Playlist waiters fire with
 * AX_ENOENT, resource waiters with AX_ENOENT for media that will now never exist. Further
 * pushes return AX_ECLOSED. Segment numbers of a rendition that replaces it later line up
 * (see add_rendition). Returns 0 (also when already ended).
 */
int media_hls_rendition_end(media_hls_rendition_t *r);

/* True once media_hls_rendition_end() was called on `r`. */
bool media_hls_rendition_ended(const media_hls_rendition_t *r);

/*
 * Removes `r` from the stream and frees it (its name may then be added again; parts that
 * viewers still hold stay valid until their last unref). Its waiters fire with AX_ENOENT
 * first, from inside this call. Meant for renditions ended some time ago, whose viewers have
 * moved on. Returns 0, AX_ENOENT (not a rendition of `s`) or AX_EBUSY (`r` is the lead video
 * rendition: the audio cuts and the segment numbers of the others follow it).
 */
int media_hls_stream_remove_rendition(media_hls_stream_t *s, media_hls_rendition_t *r);

/*
 * Sets the codec configuration (copied: `c->record` / `c->asc` and the parameter sets are
 * copied, nothing borrowed is kept). The first call creates init segment generation 0. A
 * later call with different bytes creates a new generation: the next segment starts at the
 * next keyframe (video) or frame (audio), with EXT-X-DISCONTINUITY and a new EXT-X-MAP.
 * Identical bytes (a reconnecting encoder resending its headers) change nothing.
 * Returns 0, AX_EINVAL (wrong track for this rendition), AX_EBADDATA (nal_length_size not
 * 1/2/4, zero dimensions or sample rate, no SPS/PPS), AX_EMSGSIZE (record over 64 KiB) or
 * AX_ENOMEM.
 */
int media_hls_rendition_set_video_config(media_hls_rendition_t *r, const media_avc_config_t *c);
int media_hls_rendition_set_audio_config(media_hls_rendition_t *r, const media_aac_config_t *c);

/*
 * Pushes one frame of this rendition's track. `f->data` is borrowed and copied once into the
 * open part. `wall_ms` is the current Unix time in ms (used to anchor PROGRAM-DATE-TIME at the
 * start of each timeline). Video frames before the first keyframe of a timeline are dropped;
 * so are frames whose decode time does not advance (counted in stats.frames_dropped).
 * Audio frames more than 250 ms before the lead video rendition's first segment of a
 * timeline are dropped too (until two target durations pass without video: then audio cuts
 * on its own), and so are frames with a composition offset beyond +-60 s.
 * Parts and segments this frame completes become available, and waiters fire, from inside
 * this call.
 * Returns 0 (also when the frame was dropped), AX_EBADSTATE (no codec config yet), AX_EINVAL
 * (wrong track), AX_EMSGSIZE (over max_frame_bytes), AX_ECLOSED (after stream_end) or
 * AX_ENOMEM (the frame is lost; the rendition stays usable).
 */
int media_hls_rendition_push(media_hls_rendition_t *r, const media_frame_t *f, uint64_t wall_ms);

/* ---------------------------------------------------------------------------------------- */
/* Request parameters and resource names.                                                  */

typedef enum {
    MEDIA_HLS_SKIP_NO,
    MEDIA_HLS_SKIP_YES,     /* _HLS_skip=YES: delta update with EXT-X-SKIP */
    MEDIA_HLS_SKIP_V2,      /* _HLS_skip=v2: treated as YES (we have no date ranges) */
    MEDIA_HLS_SKIP_COUNT
} media_hls_skip_t;

typedef struct media_hls_params {
    bool has_msn;
    uint64_t msn;           /* _HLS_msn, 0 .. 2^53 */
    bool has_part;
    uint32_t part;          /* _HLS_part, 0 .. 2^31-1 */
    media_hls_skip_t skip;
} media_hls_params_t;

/*
 * Parses a URL query string ("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES", with or without the
 * leading '?'; `query` borrowed, not NUL-terminated). Other parameters are ignored. Values are
 * plain decimal / YES / v2 (percent-encoded digits are accepted). Returns 0, AX_EMSGSIZE
 * (longer than limits->max_query_len, NULL limits = defaults), or AX_EINVAL: a malformed or
 * out-of-range value, a repeated _HLS_ parameter, or _HLS_part without _HLS_msn (the
 * spec's 400 cases).
 */
int media_hls_params_parse(ax_slice_t query, const media_hls_limits_t *limits,
                           media_hls_params_t *out);

typedef enum {
    MEDIA_HLS_RES_PLAYLIST, /* index.m3u8 */
    MEDIA_HLS_RES_INIT,     /* init-<gen>.mp4 */
    MEDIA_HLS_RES_SEGMENT,  /* seg-<msn>.m4s */
    MEDIA_HLS_RES_PART,     /* part-<msn>.<index>.m4s */
    MEDIA_HLS_RES_COUNT
} media_hls_res_kind_t;

typedef struct media_hls_resource {
    media_hls_res_kind_t kind;
    uint32_t init_gen;      /* INIT */
    uint64_t msn;           /* SEGMENT, PART */
    uint32_t part;          /* PART */
} media_hls_resource_t;

/* Parses the last path component of a rendition URL (borrowed). Returns 0 or AX_ENOENT. */
int media_hls_resource_parse(ax_slice_t name, media_hls_resource_t *out);

/* "application/vnd.apple.mpegurl", or "video/mp4" / "audio/mp4" by the rendition's track. */
const char *media_hls_rendition_content_type(const media_hls_rendition_t *r,
                                             media_hls_res_kind_t kind);

/* ---------------------------------------------------------------------------------------- */
/* Serving.                                                                                 */

/*
 * The master playlist: EXT-X-MEDIA for the audio rendition(s) (GROUP-ID "audio") and one
 * EXT-X-STREAM-INF per video rendition, tallest first (ties in the order added), with BANDWIDTH (peak segment bit rate, audio
 * included), AVERAGE-BANDWIDTH, CODECS (from the stream's configs, e.g. "avc1.64001f,
 * mp4a.40.2"), RESOLUTION, FRAME-RATE and AUDIO. Ended renditions are left out. *out is a new reference (cached: the same
 * bytes are shared until something changes). Returns 0, AX_EAGAIN (some rendition has no
 * codec config yet) or AX_ENOMEM.
 */
int media_hls_stream_master(media_hls_stream_t *s, media_part_t **out);

/*
 * The media playlist as it is now: EXT-X-VERSION, TARGETDURATION, SERVER-CONTROL
 * (CAN-BLOCK-RELOAD, PART-HOLD-BACK, CAN-SKIP-UNTIL), PART-INF, MEDIA-SEQUENCE,
 * DISCONTINUITY-SEQUENCE, EXT-X-MAP, per segment PROGRAM-DATE-TIME / DISCONTINUITY / EXTINF,
 * EXT-X-PART (INDEPENDENT=YES where the part starts with a keyframe) for the segments of the
 * last three target durations and the segment in progress, EXT-X-PRELOAD-HINT for the next
 * part, and EXT-X-RENDITION-REPORT for every other rendition. With skip YES/V2, segments
 * older than CAN-SKIP-UNTIL are replaced by EXT-X-SKIP (a delta update). *out is a new
 * reference to cached bytes, shared by every viewer until the stream changes.
 * Returns 0, AX_EAGAIN (no segment or part yet: wait on msn 0 part 0), AX_ENOENT (the
 * rendition was ended while the stream goes on: answer 404) or AX_ENOMEM.
 */
int media_hls_rendition_playlist(media_hls_rendition_t *r, media_hls_skip_t skip,
                                 media_part_t **out);

/*
 * An init segment, segment or part (not PLAYLIST). *out is a new reference. Returns 0,
 * AX_EAGAIN (not yet: the part or segment is in progress or the next one; wait for it with
 * media_hls_rendition_wait_resource), AX_ETOOFAR (further ahead than the next segment),
 * AX_EGONE (it left the ring), AX_ENOENT (it never existed or never will) or AX_EINVAL.
 */
int media_hls_rendition_get(media_hls_rendition_t *r, const media_hls_resource_t *res,
                            media_part_t **out);

/* ---------------------------------------------------------------------------------------- */
/* Blocking requests.                                                                       */

typedef struct media_hls_waiter media_hls_waiter_t;

/*
 * Fires exactly once per queued wait (never from inside the wait call itself) unless the
 * waiter is cancelled first. status: 0 = ready (render the playlist / get the resource
 * now), AX_ENOENT = the awaited part will never exist (its segment ended with fewer parts,
 * e.g. a preload hint overtaken by a keyframe cut) or the rendition was ended or removed:
 * answer 404, AX_ECANCELED = the stream is being freed. Fires from inside push /
 * discontinuity / end / rendition_end / remove_rendition / stream_free. The callback may
 * call media_hls_rendition_playlist/get/wait_*, media_hls_waiter_cancel and media_part_*
 * but must not push, add or remove renditions, end the stream or a rendition, or free it.
 */
typedef void (*media_hls_wait_cb)(media_hls_waiter_t *w, int status);

/* Storage the caller provides (embed it in the HTTP request context). Set `data` freely;
 * the other fields are private. It must outlive the callback or the cancel. */
struct media_hls_waiter {
    void *data;                     /* user context */
    /* private */
    media_hls_rendition_t *r;
    media_hls_wait_cb cb;
    media_hls_waiter_t *prev, *next;
    uint64_t msn;
    int64_t part;                   /* -1: the whole segment */
    bool exact;                     /* resource wait: this exact part must exist */
    uint8_t where;                  /* 0 idle, 1 queued, 2 about to fire */
    int status;
};

/*
 * Blocking playlist reload (_HLS_msn / _HLS_part). Without _HLS_msn: returns 1 (render now).
 * With _HLS_msn=M alone: ready once segment M is complete. With _HLS_part=P too: ready once
 * part P of segment M or any later part exists. A request for media that has already
 * left the window is ready at once.
 * Returns 1 = ready now (the callback will not fire), 0 = queued (`cb` fires later exactly
 * once, unless cancelled), AX_ETOOFAR = answer 400: M is more than two segments ahead of the
 * last segment in the playlist, or P is more than three parts ahead of its last part
 * (the spec's Advance Part Limit), AX_ENOSPC = max_waiters reached (answer 503), AX_ENOENT =
 * the rendition was ended (answer 404), or AX_EINVAL (`w` already queued). `p` is borrowed; `w` must outlive the callback or the cancel.
 */
int media_hls_rendition_wait_playlist(media_hls_rendition_t *r, media_hls_waiter_t *w,
                                      const media_hls_params_t *p, media_hls_wait_cb cb);

/*
 * Waits until a SEGMENT or PART that media_hls_rendition_get() answered AX_EAGAIN exists
 * (the preload-hinted part, or a segment still in progress). Same returns as
 * wait_playlist, plus AX_ENOENT / AX_EGONE when get() would answer those now. A returned 1
 * means get() now succeeds.
 */
int media_hls_rendition_wait_resource(media_hls_rendition_t *r, media_hls_waiter_t *w,
                                      const media_hls_resource_t *res, media_hls_wait_cb cb);

/* Removes a queued waiter without calling it (the request timed out or the viewer left).
 * Does nothing if it is not queued (already fired or never queued). */
void media_hls_waiter_cancel(media_hls_waiter_t *w);

/* ---------------------------------------------------------------------------------------- */
/* Introspection.                                                                           */

typedef struct media_hls_rendition_stats {
    uint64_t frames_in;         /* frames accepted */
    uint64_t frames_dropped;    /* before the first keyframe / lead cut, non-advancing dts */
    uint64_t bytes_in;          /* payload bytes accepted (each copied once) */
    uint64_t parts;             /* parts completed */
    uint64_t segments;          /* segments completed */
    uint64_t forced_cuts;       /* segments cut at a non-keyframe (GOP over TARGETDURATION) */
    uint64_t last_msn;          /* segment of the newest complete part (a rendition report's
                                 * LAST-MSN); the next msn when there is no part yet */
    int64_t last_part;          /* index of that part (LAST-PART), -1 when none */
    uint64_t first_msn;         /* oldest segment still in the ring */
    uint64_t discontinuity_seq; /* of the first segment in the playlist window */
    uint64_t ring_bytes;        /* bytes held by the ring (parts, segments, init) */
    uint32_t waiters;           /* queued blocking requests */
} media_hls_rendition_stats_t;

void media_hls_rendition_stats(const media_hls_rendition_t *r, media_hls_rendition_stats_t *st);
const char *media_hls_rendition_name(const media_hls_rendition_t *r);
media_track_t media_hls_rendition_track(const media_hls_rendition_t *r);

/* RFC 6381 codec string of the current config ("avc1.64001f", "mp4a.40.2"), "" when none.
 * Valid until the next set_*_config. */
const char *media_hls_rendition_codecs(const media_hls_rendition_t *r);

#endif /* AETHEX_MEDIA_HLS_H */

/*
 * Pieces of the RTMP server shared by rtmp_session.c and their unit tests: the handshake
 * (rtmp_handshake.c) and the chunk stream reader/writer (rtmp_chunk.c). Never leaves src/.
 *
 * Both are incremental: a *_feed/_read call consumes what it can from the bytes given and
 * returns how many it consumed (>= 0) or a negative AX_E* code with `errmsg` filled
 * (AX_ERRMSG_LEN bytes). Any split of the input works, down to one byte at a time.
 */
#ifndef AETHEX_MEDIA_RTMP_INTERNAL_H
#define AETHEX_MEDIA_RTMP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aethex/common/util.h"

#define MEDIA_RTMP__VERSION 3
#define MEDIA_RTMP__SIG_SIZE 1536
#define MEDIA_RTMP__DEFAULT_CHUNK_SIZE 128
#define MEDIA_RTMP__MAX_CSID 65599 /* 64 + 65535, the 3-byte basic header's reach */

/* Message type ids (RTMP spec 5.4, 7.1). */
enum {
    MEDIA_RTMP__MSG_SET_CHUNK_SIZE = 1,
    MEDIA_RTMP__MSG_ABORT = 2,
    MEDIA_RTMP__MSG_ACK = 3,
    MEDIA_RTMP__MSG_USER_CONTROL = 4,
    MEDIA_RTMP__MSG_WINDOW_ACK_SIZE = 5,
    MEDIA_RTMP__MSG_SET_PEER_BANDWIDTH = 6,
    MEDIA_RTMP__MSG_AUDIO = 8,
    MEDIA_RTMP__MSG_VIDEO = 9,
    MEDIA_RTMP__MSG_DATA_AMF3 = 15,
    MEDIA_RTMP__MSG_SHARED_OBJECT_AMF3 = 16,
    MEDIA_RTMP__MSG_COMMAND_AMF3 = 17,
    MEDIA_RTMP__MSG_DATA_AMF0 = 18,
    MEDIA_RTMP__MSG_SHARED_OBJECT_AMF0 = 19,
    MEDIA_RTMP__MSG_COMMAND_AMF0 = 20,
    MEDIA_RTMP__MSG_AGGREGATE = 22,
};

/* User Control event types (RTMP spec 7.1.7). */
enum {
    MEDIA_RTMP__UC_STREAM_BEGIN = 0,
    MEDIA_RTMP__UC_STREAM_EOF = 1,
    MEDIA_RTMP__UC_STREAM_DRY = 2,
    MEDIA_RTMP__UC_SET_BUFFER_LENGTH = 3,
    MEDIA_RTMP__UC_STREAM_IS_RECORDED = 4,
    MEDIA_RTMP__UC_PING_REQUEST = 6,
    MEDIA_RTMP__UC_PING_RESPONSE = 7,
};

/* ---- handshake (rtmp_handshake.c) ------------------------------------------------------ */

enum media_rtmp__hs_phase {
    MEDIA_RTMP__HS_WAIT_C0C1,
    MEDIA_RTMP__HS_WAIT_C2,
    MEDIA_RTMP__HS_DONE,
};

struct media_rtmp__handshake {
    enum media_rtmp__hs_phase phase;
    uint8_t buf[1 + MEDIA_RTMP__SIG_SIZE]; /* C0+C1, then C2 */
    size_t have;
    uint32_t c1_time;
    uint32_t c1_version;   /* bytes 4..7 of C1: 0 for the simple handshake, else the
                            * Flash-style (digest) client version, e.g. 9.0.124.2 */
    uint32_t epoch_ms;     /* S1 time */
    void (*random)(void *ctx, uint8_t *buf, size_t len);
    void *random_ctx;
};

void media_rtmp__handshake_init(struct media_rtmp__handshake *h, uint32_t epoch_ms,
                                void (*random)(void *ctx, uint8_t *buf, size_t len),
                                void *random_ctx);

/*
 * Consumes C0+C1 then C2. When C0+C1 is complete, appends S0+S1+S2 (3073 bytes) to `out`.
 * Returns bytes consumed (0 only when `len` is 0 or the handshake is done), or AX_EPROTO /
 * AX_ENOTSUP (bad or encrypted C0 version) or `out`'s AX_EMSGSIZE/AX_ENOMEM.
 */
int media_rtmp__handshake_feed(struct media_rtmp__handshake *h, const uint8_t *buf, size_t len,
                               ax_buf_t *out, char *errmsg);

static inline bool media_rtmp__handshake_done(const struct media_rtmp__handshake *h)
{
    return h->phase == MEDIA_RTMP__HS_DONE;
}

/* ---- chunk stream (rtmp_chunk.c) ------------------------------------------------------- */

struct media_rtmp__chunk_limits {
    uint32_t max_message_len;      /* any message */
    uint32_t max_command_len;      /* command and data messages (types 15, 17, 18, 20) */
    uint32_t max_chunk_streams;    /* chunk stream ids held at once */
    uint32_t max_incomplete_bytes; /* payload bytes held in unfinished messages */
};

/* One reassembled message. `payload` is valid until the next call on the reader. */
struct media_rtmp__message {
    uint32_t csid;
    uint32_t timestamp;  /* absolute, 32-bit, wraps (deltas applied modulo 2^32) */
    uint32_t length;
    uint8_t type;
    uint32_t stream_id;
    const uint8_t *payload;
};

/* What a chunk stream remembers from its last header (types 1-3 reuse it). */
struct chunk_stream {
    uint32_t csid;
    uint32_t timestamp;  /* of the current/last message, modulo 2^32 */
    uint32_t delta;      /* the last delta (after a type 0: its timestamp) */
    uint32_t length;
    uint8_t type;
    uint32_t stream_id;
    bool ext;            /* the last type 0/1/2 header had an extended timestamp */
    bool in_progress;    /* a message is being reassembled */
    ax_buf_t payload;    /* owned */
};

enum media_rtmp__rd_phase {
    MEDIA_RTMP__RD_HEADER,
    MEDIA_RTMP__RD_PAYLOAD,
};

struct media_rtmp__chunk_reader {
    struct media_rtmp__chunk_limits limits;
    uint32_t chunk_size;            /* incoming, set by the peer's Set Chunk Size */
    struct chunk_stream **streams;  /* owned, each owned */
    uint32_t nstreams;
    uint32_t cap_streams;
    uint64_t incomplete_bytes;      /* sum of payload held in unfinished messages */
    enum media_rtmp__rd_phase phase;
    uint8_t hdr[18];                /* basic (<=3) + message (<=11) + extended (4) */
    size_t hdr_have;
    bool cs_resolved;               /* the basic header's chunk stream was looked up */
    struct chunk_stream *cur;       /* chunk stream of the chunk being read */
    uint32_t piece_left;            /* payload bytes left in the current chunk */
    struct chunk_stream *delivered; /* whose payload the last message pointed into */
};

void media_rtmp__chunk_reader_init(struct media_rtmp__chunk_reader *r,
                                   const struct media_rtmp__chunk_limits *limits);
void media_rtmp__chunk_reader_close(struct media_rtmp__chunk_reader *r);

/*
 * Reads at most one chunk (header or payload piece) from `buf`. Returns bytes consumed
 * (> 0 whenever len > 0) or a negative code with errmsg: AX_EPROTO (broken chunk stream),
 * AX_EMSGSIZE (a declared length over a limit, before anything is allocated), AX_ENOSPC
 * (max_chunk_streams or max_incomplete_bytes), AX_ENOMEM. Sets *have_msg and fills `msg`
 * when a message completed with this call; the caller must act on it (Set Chunk Size
 * changes how the next byte is read) before calling again.
 */
int media_rtmp__chunk_read(struct media_rtmp__chunk_reader *r, const uint8_t *buf, size_t len,
                           struct media_rtmp__message *msg, bool *have_msg, char *errmsg);

/* The peer's Set Chunk Size (already validated by the caller: 1..2^31-1). */
void media_rtmp__chunk_set_size(struct media_rtmp__chunk_reader *r, uint32_t size);

/* The peer's Abort Message: drops the unfinished message of `csid`, if any. */
void media_rtmp__chunk_abort(struct media_rtmp__chunk_reader *r, uint32_t csid);

/*
 * Appends one message as chunks of `chunk_size`: a type-0 header, then type-3 headers that
 * repeat the extended timestamp when the type-0 had one (as ffmpeg and librtmp expect).
 * All or nothing: returns 0, or AX_EMSGSIZE/AX_ENOMEM with `out` unchanged; AX_EINVAL for
 * a csid outside 2..65599 or a length over 2^24-1.
 */
int media_rtmp__chunk_write(ax_buf_t *out, uint32_t chunk_size, uint32_t csid,
                            uint32_t timestamp, uint8_t type, uint32_t stream_id,
                            const uint8_t *payload, size_t len);

#endif /* AETHEX_MEDIA_RTMP_INTERNAL_H */

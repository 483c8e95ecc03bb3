/*
 * Error codes shared by every AeThex module.
 *
 * Functions return 0 on success or a negative AX_E* code. Codes that share a meaning
 * with errno take its negative value, so libuv's UV_E* codes pass through unchanged;
 * codes of our own live above 10000 in the same table.
 */
#ifndef AETHEX_COMMON_ERROR_H
#define AETHEX_COMMON_ERROR_H

#include <errno.h>

/* X(name, value, message). Keep sorted: errno-backed first, then our own. */
#define AX_ERRNO_MAP(X)                                                                     \
    X(ENOMEM, -ENOMEM, "out of memory")                                                     \
    X(EINVAL, -EINVAL, "invalid argument")                                                  \
    X(EPROTO, -EPROTO, "protocol error")                                                    \
    X(EMSGSIZE, -EMSGSIZE, "message too long")                                              \
    X(ENOSPC, -ENOSPC, "limit reached")                                                     \
    X(EAGAIN, -EAGAIN, "resource temporarily unavailable")                                  \
    X(ECANCELED, -ECANCELED, "operation canceled")                                          \
    X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                   \
    X(ECONNRESET, -ECONNRESET, "connection reset by peer")                                  \
    X(ENOENT, -ENOENT, "no such entry")                                                     \
    X(EEXIST, -EEXIST, "already exists")                                                    \
    X(EBUSY, -EBUSY, "resource busy")                                                       \
    X(EACCES, -EACCES, "permission denied")                                                 \
    X(ERANGE, -ERANGE, "value out of range")                                                \
    X(ENOTSUP, -ENOTSUP, "operation not supported")                                         \
    X(EIO, -EIO, "i/o error")                                                               \
    X(ETOODEEP, -10001, "nesting too deep")                                                 \
    X(EBADKEY, -10002, "stream key refused")                                                \
    X(ENOTLEADER, -10003, "not the cluster leader")                                         \
    X(ENOLEADER, -10004, "cluster has no leader")                                           \
    X(EUNKNOWN, -10005, "outcome unknown")                                                  \
    X(ECLOSED, -10006, "session closed")                                                    \
    X(EBADSTATE, -10007, "not allowed in the current state")                                \
    X(EBADDATA, -10008, "malformed data")                                                   \
    X(ELIVE, -10009, "stream already live")                                                 \
    X(ETOOFAR, -10010, "requested media too far ahead")                                     \
    X(EGONE, -10011, "media no longer available")                                           \
    X(EDB, -10012, "database error")

enum {
#define AX__ERR_ENUM(name, value, msg) AX_##name = (value),
    AX_ERRNO_MAP(AX__ERR_ENUM)
#undef AX__ERR_ENUM
};

/* Length of the `errmsg` buffer long-lived objects carry (sessions, clients). */
#define AX_ERRMSG_LEN 256

/* A static human-readable message for `err` ("unknown error" if not in the table). */
const char *ax_strerror(int err);

/* The symbolic name of `err` without the AX_ prefix, e.g. "EMSGSIZE". */
const char *ax_err_name(int err);

#endif /* AETHEX_COMMON_ERROR_H */

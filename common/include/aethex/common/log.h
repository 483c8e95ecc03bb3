/*
 * One line per event: "2026-11-26T09:15:02.123Z info edge rtmp: stream=abc publish started".
 * Write the channel/stream/edge the event concerns into the message as key=value pairs.
 * Thread-safe (one write(2) per line).
 */
#ifndef AETHEX_COMMON_LOG_H
#define AETHEX_COMMON_LOG_H

typedef enum {
    AX_LOG_DEBUG,
    AX_LOG_INFO,
    AX_LOG_WARN,
    AX_LOG_ERROR,
    AX_LOG_LEVEL_COUNT
} ax_log_level_t;

/* Lines below `level` are dropped. Default: AX_LOG_INFO. */
void ax_log_set_level(ax_log_level_t level);
ax_log_level_t ax_log_get_level(void);

/* Parses "debug", "info", "warn", "error". Returns 0 or AX_EINVAL. */
int ax_log_parse_level(const char *s, ax_log_level_t *out);

/* Writes one line to stderr: timestamp, level, `component`, then the formatted message. */
void ax_log(ax_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define AX_LOG_D(comp, ...) ax_log(AX_LOG_DEBUG, comp, __VA_ARGS__)
#define AX_LOG_I(comp, ...) ax_log(AX_LOG_INFO, comp, __VA_ARGS__)
#define AX_LOG_W(comp, ...) ax_log(AX_LOG_WARN, comp, __VA_ARGS__)
#define AX_LOG_E(comp, ...) ax_log(AX_LOG_ERROR, comp, __VA_ARGS__)

#endif /* AETHEX_COMMON_LOG_H */

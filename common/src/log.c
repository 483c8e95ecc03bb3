#include "aethex/common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "aethex/common/error.h"

static ax_log_level_t min_level = AX_LOG_INFO;
static const char *const level_names[AX_LOG_LEVEL_COUNT] = {"debug", "info", "warn", "error"};

void ax_log_set_level(ax_log_level_t level)
{
    min_level = level;
}

ax_log_level_t ax_log_get_level(void)
{
    return min_level;
}

int ax_log_parse_level(const char *s, ax_log_level_t *out)
{
    for (int i = 0; i < AX_LOG_LEVEL_COUNT; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (ax_log_level_t)i;
            return 0;
        }
    }
    return AX_EINVAL;
}

void ax_log(ax_log_level_t level, const char *component, const char *fmt, ...)
{
    if (level < min_level || level >= AX_LOG_LEVEL_COUNT)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level], component);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* One event is one line: fold any newline a peer smuggled into the message. */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

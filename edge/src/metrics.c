/*
 * /metrics in Prometheus text exposition format 0.0.4. Counters come from struct
 * edge_metrics (updated on the loop as events happen), per-channel gauges from channel.c.
 */
#include <stdarg.h>
#include <stdio.h>

#include "edge_internal.h"

size_t edge_metrics_append(char *buf, size_t off, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
size_t edge_metrics_append(char *buf, size_t off, size_t cap, const char *fmt, ...)
{
    if (off >= cap)
        return cap;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + off, cap - off, fmt, ap);
    va_end(ap);
    if (n < 0)
        return off;
    return off + (size_t)n >= cap ? cap - 1 : off + (size_t)n;
}

#define LINE(type, name, help, value)                                                              \
    off = edge_metrics_append(                                                                     \
        buf, off, cap, "# HELP " name " " help "\n# TYPE " name " " type "\n" name " %llu\n",      \
        (unsigned long long)(value))

size_t edge_metrics_render(struct edge *e, char *buf, size_t cap)
{
    struct edge_metrics *m = &e->m;
    size_t off = 0;
    LINE("gauge", "aethex_edge_uptime_seconds", "Seconds since start.",
         (edge_now_ms(e) - e->started_ms) / 1000);
    LINE("gauge", "aethex_edge_streams_live", "Channels with a publisher.",
         edge_channel_count_live(e));
    LINE("gauge", "aethex_edge_channels", "Channels in memory.", e->nchannels);
    LINE("counter", "aethex_edge_rtmp_accepted_total", "RTMP connections accepted.",
         m->rtmp_accepted);
    LINE("counter", "aethex_edge_rtmp_refused_total", "RTMP connections refused at accept.",
         m->rtmp_refused);
    LINE("gauge", "aethex_edge_rtmp_sessions", "RTMP connections open.", m->rtmp_active);
    LINE("counter", "aethex_edge_rtmp_errors_total",
         "RTMP connections closed for an error or timeout.", m->rtmp_closed_error);
    LINE("counter", "aethex_edge_rtmp_bytes_in_total", "RTMP bytes read.", m->rtmp_bytes_in);
    LINE("counter", "aethex_edge_rtmp_bytes_out_total", "RTMP bytes written.", m->rtmp_bytes_out);
    LINE("counter", "aethex_edge_rtmp_backpressure_total", "Times RTMP reading paused.",
         m->rtmp_backpressure);
    LINE("counter", "aethex_edge_publish_accepted_total", "Publishes accepted.",
         m->publish_accepted);
    LINE("counter", "aethex_edge_publish_rejected_total", "Publishes refused.",
         m->publish_rejected);
    LINE("counter", "aethex_edge_video_frames_total", "Video frames received.", m->frames_in[0]);
    LINE("counter", "aethex_edge_audio_frames_total", "Audio frames received.", m->frames_in[1]);
    LINE("counter", "aethex_edge_media_errors_total", "Frames or configs the packager refused.",
         m->media_errors);
    LINE("counter", "aethex_edge_http_connections_total", "HTTP connections accepted.",
         m->http_conns_accepted);
    LINE("counter", "aethex_edge_http_connections_refused_total",
         "HTTP connections refused at accept.", m->http_conns_refused);
    LINE("gauge", "aethex_edge_http_connections", "HTTP connections open (viewers).",
         m->http_conns_active);
    LINE("counter", "aethex_edge_http_requests_total", "HTTP requests.", m->http_requests);
    off = edge_metrics_append(buf, off, cap,
                              "# HELP aethex_edge_http_responses_total HTTP responses by class.\n"
                              "# TYPE aethex_edge_http_responses_total counter\n");
    for (int c = 2; c <= 5; c++)
        off = edge_metrics_append(buf, off, cap,
                                  "aethex_edge_http_responses_total{code=\"%dxx\"} %llu\n", c,
                                  (unsigned long long)m->http_status[c]);
    LINE("counter", "aethex_edge_http_bytes_out_total", "HTTP body bytes sent.", m->http_bytes_out);
    LINE("gauge", "aethex_edge_blocking_holds", "Blocking playlist reloads waiting.",
         m->holds_active);
    LINE("counter", "aethex_edge_blocking_answered_total", "Blocking reloads answered.",
         m->holds_answered);
    LINE("counter", "aethex_edge_blocking_timeouts_total", "Blocking reloads timed out (503).",
         m->holds_timed_out);
    LINE("gauge", "aethex_edge_transcodes_active", "Transcoding workers running.",
         edge_transcode_count(e));
    LINE("counter", "aethex_edge_transcodes_started_total", "Transcodes started.",
         m->transcodes_started);
    LINE("counter", "aethex_edge_transcodes_refused_total",
         "Transcodes refused by admission (stream served source-only).", m->transcodes_refused);
    LINE("counter", "aethex_edge_transcode_rungs_dropped_total",
         "Rungs dropped because a worker fell behind real time.", m->transcode_rungs_dropped);
    LINE("counter", "aethex_edge_transcode_frames_lost_total",
         "Source frames not transcoded: worker queue full.", m->transcode_frames_lost);
    LINE("counter", "aethex_edge_transcode_frames_total", "Rung frames packaged (all rungs).",
         m->transcode_frames);
    off = edge_channel_metrics(e, buf, off, cap);
    off = edge_relay_metrics(e, buf, off, cap);
    if (e->cfg.coordinator[0])
        off = edge_coord_metrics(e, buf, off, cap);
    LINE("gauge", "aethex_edge_viewers",
         "Viewers: distinct connections that asked for media in the last 5-10 s.",
         edge_viewers_count(e, NULL));
    return off;
}

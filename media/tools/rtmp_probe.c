/*
 * aethex-rtmp-probe: a small RTMP test listener built on media_rtmp_session (libuv).
 *
 *   aethex-rtmp-probe [--port N] [--frames FILE] [--dump FILE] [--once] [--timeout SEC]
 *
 * Listens on 127.0.0.1:N (0, the default, picks a free port), accepts every stream key,
 * prints one line per event on stdout (the first is "listening 127.0.0.1:PORT"), and with
 * --frames writes one line per frame: "track,dts,pts,size,key" (track is video or audio,
 * times in ms). --dump writes every byte received (all connections, in order) to FILE: the
 * fuzz corpus is cut from such captures. --once exits after the first connection ends; --timeout bounds the whole
 * run (default 60 s; exit status 2 when it fires). Exit status 0 when every connection that
 * ended had published and unpublished cleanly or just closed; 1 when a session failed.
 * Test tool: it allocates with ax_x* and aborts on out-of-memory.
 */
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "aethex/media/flv.h"
#include "aethex/media/rtmp_session.h"

struct probe {
    uv_loop_t *loop;
    uv_tcp_t server;
    uv_timer_t timer;
    FILE *frames;
    FILE *dump;
    bool once;
    bool draining;  /* the loop is being closed: closes must not stop it again */
    int conns;
    int failures;
    int exit_code;
};

struct conn {
    uv_tcp_t tcp;
    struct probe *p;
    int id;
    media_rtmp_session_t *s;
    bool closing;
    uint64_t frames[MEDIA_TRACK_COUNT];
    uint64_t keyframes;
};

static struct probe g_probe;

static void say(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    printf("conn=%d ", c->id);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void stop_all(struct probe *p, int code)
{
    if (p->draining)
        return;
    p->exit_code = code;
    uv_stop(p->loop);
}

/* ---- session callbacks --------------------------------------------------------------- */

static int on_connect(media_rtmp_session_t *s, const media_rtmp_connect_info_t *info)
{
    struct conn *c = media_rtmp_session_data(s);
    say(c, "connect app=%.*s tcUrl=%.*s flashVer=\"%.*s\"", (int)info->app.len,
        (const char *)info->app.base, (int)info->tc_url.len, (const char *)info->tc_url.base,
        (int)info->flash_ver.len, (const char *)info->flash_ver.base);
    return 0;
}

static void on_publish(media_rtmp_session_t *s, ax_slice_t app, ax_slice_t name)
{
    struct conn *c = media_rtmp_session_data(s);
    say(c, "publish app=%.*s key=%.*s", (int)app.len, (const char *)app.base, (int)name.len,
        (const char *)name.base);
    media_rtmp_session_publish_accept(s);
}

static void on_metadata(media_rtmp_session_t *s, const media_rtmp_metadata_t *md)
{
    struct conn *c = media_rtmp_session_data(s);
    say(c, "metadata width=%g height=%g framerate=%g videodatarate=%g audiodatarate=%g "
           "audiosamplerate=%g audiochannels=%g encoder=\"%.*s\"",
        md->width, md->height, md->framerate, md->video_data_rate, md->audio_data_rate,
        md->audio_sample_rate, md->audio_channels, (int)md->encoder.len,
        (const char *)md->encoder.base);
}

static void on_video_config(media_rtmp_session_t *s, const media_avc_config_t *cfg)
{
    struct conn *c = media_rtmp_session_data(s);
    char codec[64];
    media_avc_codec_string(cfg, codec, sizeof codec);
    say(c, "video_config codec=%s size=%ux%u nal_length_size=%u sps=%u pps=%u", codec,
        cfg->width, cfg->height, cfg->nal_length_size, cfg->nsps, cfg->npps);
}

static void on_audio_config(media_rtmp_session_t *s, const media_aac_config_t *cfg)
{
    struct conn *c = media_rtmp_session_data(s);
    char codec[64];
    media_aac_codec_string(cfg, codec, sizeof codec);
    say(c, "audio_config codec=%s sample_rate=%u channels=%u", codec, cfg->sample_rate,
        cfg->channels);
}

static void on_frame(media_rtmp_session_t *s, const media_frame_t *f)
{
    struct conn *c = media_rtmp_session_data(s);
    c->frames[f->track]++;
    if (f->track == MEDIA_TRACK_VIDEO && f->keyframe)
        c->keyframes++;
    if (c->p->frames != NULL)
        fprintf(c->p->frames, "%s,%lld,%lld,%zu,%d\n",
                f->track == MEDIA_TRACK_VIDEO ? "video" : "audio", (long long)f->dts,
                (long long)(f->dts + f->cts), f->data.len, f->keyframe ? 1 : 0);
}

static void on_unpublish(media_rtmp_session_t *s)
{
    struct conn *c = media_rtmp_session_data(s);
    say(c, "unpublish video_frames=%llu audio_frames=%llu keyframes=%llu",
        (unsigned long long)c->frames[MEDIA_TRACK_VIDEO],
        (unsigned long long)c->frames[MEDIA_TRACK_AUDIO], (unsigned long long)c->keyframes);
}

/* ---- connection ------------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    struct conn *c = ax_container_of((uv_tcp_t *)h, struct conn, tcp);
    struct probe *p = c->p;
    media_rtmp_stats_t st;
    media_rtmp_session_stats(c->s, &st);
    say(c, "closed state=%s bytes_in=%llu messages_in=%llu", 
        media_rtmp_state_name(media_rtmp_session_state(c->s)),
        (unsigned long long)st.bytes_in, (unsigned long long)st.messages_in);
    media_rtmp_session_free(c->s);
    free(c);
    if (p->frames != NULL)
        fflush(p->frames);
    if (p->once)
        stop_all(p, p->failures ? 1 : 0);
}

static void close_conn(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

struct write_req {
    uv_write_t req;
    struct conn *c;
    bool close_after;
    char data[];
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    if (status < 0 || w->close_after)
        close_conn(w->c);
    free(w);
}

/* Sends what the session queued; closes once it is written when `close_after`. */
static void flush(struct conn *c, bool close_after)
{
    ax_slice_t out = media_rtmp_session_output(c->s);
    if (out.len == 0) {
        if (close_after)
            close_conn(c);
        return;
    }
    struct write_req *w = ax_xmalloc(sizeof *w + out.len);
    memcpy(w->data, out.base, out.len);
    w->c = c;
    w->close_after = close_after;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)out.len);
    media_rtmp_session_output_consume(c->s, out.len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(w);
        close_conn(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char slab[64 * 1024];
    *buf = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = ax_container_of((uv_tcp_t *)stream, struct conn, tcp);
    if (c->closing)
        return;
    if (nread < 0) {
        say(c, "eof %s", nread == UV_EOF ? "" : uv_strerror((int)nread));
        close_conn(c);
        return;
    }
    if (c->p->dump != NULL)
        fwrite(buf->base, 1, (size_t)nread, c->p->dump);
    int rv = media_rtmp_session_feed(c->s, (const uint8_t *)buf->base, (size_t)nread);
    if (rv != 0) {
        say(c, "error %s: %s", ax_err_name(rv), media_rtmp_session_errmsg(c->s));
        c->p->failures++;
        uv_read_stop(stream);
        flush(c, true);
        return;
    }
    flush(c, false);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct probe *p = ax_container_of((uv_tcp_t *)server, struct probe, server);
    if (status < 0)
        return;
    struct conn *c = ax_xcalloc(1, sizeof *c);
    c->p = p;
    c->id = ++p->conns;
    uv_tcp_init(p->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, NULL);
        return;
    }
    media_rtmp_session_config_t cfg;
    media_rtmp_session_config_default(&cfg);
    cfg.cb = (media_rtmp_callbacks_t){
        .on_connect = on_connect,
        .on_publish = on_publish,
        .on_metadata = on_metadata,
        .on_video_config = on_video_config,
        .on_audio_config = on_audio_config,
        .on_frame = on_frame,
        .on_unpublish = on_unpublish,
    };
    cfg.data = c;
    cfg.epoch_ms = (uint32_t)uv_now(p->loop);
    if (media_rtmp_session_new(&cfg, &c->s) != 0) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    say(c, "accepted");
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_timeout(uv_timer_t *t)
{
    struct probe *p = ax_container_of(t, struct probe, timer);
    printf("timeout\n");
    fflush(stdout);
    stop_all(p, 2);
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h != (uv_handle_t *)&g_probe.server) {
        struct conn *c = ax_container_of((uv_tcp_t *)h, struct conn, tcp);
        close_conn(c);
    } else {
        uv_close(h, NULL);
    }
}

int main(int argc, char **argv)
{
    int port = 0;
    double timeout = 60;
    const char *frames = NULL, *dump = NULL;
    struct probe *p = &g_probe;
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},   {"frames", required_argument, NULL, 'f'},
        {"dump", required_argument, NULL, 'd'},
        {"once", no_argument, NULL, 'o'},         {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "p:f:d:ot:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'p': port = atoi(optarg); break;
        case 'f': frames = optarg; break;
        case 'd': dump = optarg; break;
        case 'o': p->once = true; break;
        case 't': timeout = atof(optarg); break;
        default:
            fprintf(stderr,
                    "usage: %s [--port N] [--frames FILE] [--dump FILE] [--once] "
                    "[--timeout SEC]\n",
                    argv[0]);
            return ch == 'h' ? 0 : 64;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (frames != NULL && (p->frames = fopen(frames, "w")) == NULL) {
        perror(frames);
        return 1;
    }
    if (dump != NULL && (p->dump = fopen(dump, "wb")) == NULL) {
        perror(dump);
        return 1;
    }
    p->loop = uv_default_loop();
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(p->loop, &p->server);
    int rv = uv_tcp_bind(&p->server, (const struct sockaddr *)&addr, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&p->server, 16, on_connection);
    if (rv != 0) {
        fprintf(stderr, "listen 127.0.0.1:%d: %s\n", port, uv_strerror(rv));
        return 1;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&p->server, (struct sockaddr *)&bound, &len);
    printf("listening 127.0.0.1:%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    fflush(stdout);
    uv_timer_init(p->loop, &p->timer);
    uv_timer_start(&p->timer, on_timeout, (uint64_t)(timeout * 1000), 0);
    uv_run(p->loop, UV_RUN_DEFAULT);
    /* Close everything (open connections included) and let the loop drain. */
    p->draining = true;
    uv_walk(p->loop, on_walk_close, NULL);
    uv_run(p->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(p->loop) != 0)
        fprintf(stderr, "warning: loop did not close cleanly\n");
    if (p->frames != NULL)
        fclose(p->frames);
    if (p->dump != NULL)
        fclose(p->dump);
    return p->exit_code ? p->exit_code : (p->failures ? 1 : 0);
}

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_fail(const char *cmd, recsys_ctx *ctx, recsys_status st, const char *what)
{
    const char *msg = ctx ? recsys_ctx_errmsg(ctx) : "";
    fprintf(stderr, "recsys %s: %s%s%s (%s)\n", cmd, what ? what : "", msg[0] && what ? ": " : "",
            msg, recsys_status_str(st));
    return 1;
}

int cli_load_config(const char *cmd, recsys_ctx *ctx, recsys_opts *opts, int argc,
                    char **argv, const char **config)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config") && i + 1 < argc) path = argv[++i];
    if (config) *config = path;
    recsys_status st = path ? recsys_opts_load_yaml(opts, path) : RECSYS_OK;
    return st ? cli_fail(cmd, ctx, st, "bad config") : 0;
}

recsys_status cli_set_kv(recsys_opts *opts, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return RECSYS_E_INVALID;
    char *key = strndup(kv, (size_t)(eq - kv));
    if (!key) return RECSYS_E_NOMEM;
    recsys_status st = recsys_opts_set(opts, key, eq + 1);
    free(key);
    return st;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

void cli_json_metrics(FILE *f, const recsys_metrics *m, const char *prefix)
{
    int n = recsys_metrics_count(m);
    for (int i = 0; i < n; i++) {
        char key[96];
        snprintf(key, sizeof key, "%s%s", prefix ? prefix : "", recsys_metrics_name(m, i));
        fprintf(f, "%s", i ? ", " : "");
        cli_json_string(f, key);
        double v = recsys_metrics_value(m, i);
        if (!strcmp(recsys_metrics_name(m, i), "users")) fprintf(f, ": %.0f", v);
        else fprintf(f, ": %.6f", v);
    }
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void cli_progress_init(cli_progress *p)
{
    p->enabled = isatty(STDERR_FILENO);
    p->last_draw = 0;
}

int cli_progress_train(void *user, const recsys_progress *p)
{
    cli_progress *cp = user;
    if (!cp->enabled) return 0;
    double t = cli_now();
    if (p->step != p->steps && t - cp->last_draw < 0.1) return 0;
    cp->last_draw = t;
    double per_step = p->step ? p->elapsed_seconds / (double)p->step : 0;
    double left = per_step * (double)(p->steps - p->step) +
                  per_step * (double)p->steps * (double)(p->epochs - p->epoch);
    int width = 24, filled = p->steps ? (int)(width * p->step / p->steps) : 0;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r\033[Kepoch %d/%d [%s] step %lld/%lld  loss %.4f  %.0f seq/s  left %02d:%02d",
            p->epoch, p->epochs, bar, (long long)p->step, (long long)p->steps, p->loss,
            p->samples_per_second, (int)(left / 60), (int)left % 60);
    fflush(stderr);
    return 0;
}

void cli_progress_clear(cli_progress *p)
{
    if (p->enabled) fprintf(stderr, "\r\033[K");
}

int cli_write_file_atomic(const char *path, const void *buf, size_t len)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) return -1;
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    int ok = fwrite(buf, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        remove(tmp);
        return -1;
    }
    return 0;
}

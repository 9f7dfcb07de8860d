/* recsys serve: the HTTP server (http_server.c) with signals handled by
 * sigwait in the main thread: SIGHUP reloads the model, SIGINT/SIGTERM stop
 * the server after the requests in flight. */
#include "cli.h"
#include "commands.h"
#include "http_server.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: recsys serve --model MODEL [--port 8080] [--host 127.0.0.1] [--threads N]\n"
            "                    [--k 10] [--exclude-history] [--max-body BYTES] [--max-batch N]\n"
            "                    [--adapters ADAPTERS [--data DATA]]\n"
            "POST /v1/recommend (JSON request or {\"requests\": [...]}), POST /v1/reload,\n"
            "GET /healthz, GET /metrics. SIGHUP reloads MODEL; SIGINT/SIGTERM stop.\n"
            "--port 0 picks a free port; the first stdout line says which.\n"
            "--adapters: a per-user adapter store; a request's \"user\" picks that user's\n"
            "adapter (the store's dense user id, or with --data DATA the data's external id;\n"
            "no adapter: the base model), or one adapter file (shared or bank) for all.\n");
}

int cmd_serve(int argc, char **argv)
{
    http_server_opts o = {.host = "127.0.0.1", .port = 8080, .threads = 2,
                          .max_body = 1u << 20, .max_batch = 1024, .default_k = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--exclude-history")) { o.exclude_history = 1; continue; }
        if (i + 1 >= argc) { usage(); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) o.model_path = v;
        else if (!strcmp(a, "--host")) o.host = v;
        else if (!strcmp(a, "--port")) o.port = atoi(v);
        else if (!strcmp(a, "--threads")) o.threads = atoi(v);
        else if (!strcmp(a, "--k")) o.default_k = atoi(v);
        else if (!strcmp(a, "--max-body")) o.max_body = (size_t)strtoull(v, NULL, 10);
        else if (!strcmp(a, "--max-batch")) o.max_batch = (size_t)strtoull(v, NULL, 10);
        else if (!strcmp(a, "--adapters")) o.adapters_path = v;
        else if (!strcmp(a, "--data")) o.data_path = v;
        else { usage(); return 2; }
    }
    if (!o.model_path || (o.data_path && !o.adapters_path) || o.port < 0 || o.port > 65535 || o.threads < 1 || o.threads > 256 ||
        o.default_k < 1 || o.max_body < 16 || o.max_batch < 1) {
        usage();
        return 2;
    }
    /* Block the signals before any thread starts: every thread inherits the
     * mask and only sigwait below receives them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    http_server *s;
    char err[600];
    if (http_server_start(&o, &s, err, sizeof err)) {
        fprintf(stderr, "recsys serve: %s\n", err);
        return 1;
    }
    printf("{\"listening\": \"%s:%d\", \"model\": ", o.host, http_server_port(s));
    cli_json_string(stdout, o.model_path);
    printf(", \"threads\": %d}\n", o.threads);
    fflush(stdout);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            if (http_server_reload(s, err, sizeof err))
                fprintf(stderr, "recsys serve: reload failed, still serving the old model: %s\n", err);
            else
                fprintf(stderr, "recsys serve: reloaded %s\n", o.model_path);
            continue;
        }
        break;
    }
    http_server_stop(s);
    fprintf(stderr, "recsys serve: stopped\n");
    return 0;
}

/* recsys bench: wall time per training epoch and per evaluation pass, and
 * the process's peak resident memory, for a config on this machine. */
#include "cli.h"
#include "commands.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench(int argc, char **argv)
{
    const char *config = NULL;
    int epochs = 3;
    recsys_ctx *ctx = NULL;
    recsys_opts *opts = NULL;
    recsys_dataset *ds = NULL;
    recsys_model *m = NULL;
    recsys_trainer *t = NULL;
    recsys_metrics *met = NULL;
    recsys_status st = RECSYS_OK;
    int rc = 1;
    if (recsys_ctx_new(&ctx) || recsys_opts_new(ctx, &opts)) goto done;
    if (cli_load_config("bench", ctx, opts, argc, argv, &config)) goto done;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) { i++; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help") || i + 1 >= argc) {
            fprintf(stderr, "usage: recsys bench [--config FILE] [--data PATH] [--epochs N] [--threads N] [--set key=value]...\n");
            rc = !strcmp(a, "-h") || !strcmp(a, "--help") ? 0 : 1;
            goto done;
        }
        if (!strcmp(a, "--epochs")) epochs = atoi(argv[++i]);
        else if (!strcmp(a, "--data")) st = recsys_opts_set(opts, "data.path", argv[++i]);
        else if (!strcmp(a, "--threads")) st = recsys_opts_set(opts, "trainer.threads", argv[++i]);
        else if (!strcmp(a, "--set")) st = cli_set_kv(opts, argv[++i]);
        else { fprintf(stderr, "recsys bench: unknown option %s\n", a); goto done; }
        if (st) { rc = cli_fail("bench", ctx, st, NULL); goto done; }
    }
    if (epochs < 1 || epochs > 1000) epochs = 3;
    int64_t threads;
    recsys_opts_get_int(opts, "trainer.threads", &threads);
    if ((st = recsys_ctx_set_threads(ctx, (int)threads))) { rc = cli_fail("bench", ctx, st, NULL); goto done; }
    const char *path;
    recsys_opts_get(opts, "data.path", &path);
    double t0 = cli_now();
    if ((st = recsys_dataset_open(ctx, path, opts, &ds))) { rc = cli_fail("bench", ctx, st, "cannot load the data"); goto done; }
    double load_s = cli_now() - t0;
    if ((st = recsys_model_new(ctx, opts, ds, &m)) || (st = recsys_trainer_new(ctx, m, ds, opts, &t))) {
        rc = cli_fail("bench", ctx, st, NULL);
        goto done;
    }
    double times[1000];
    for (int e = 0; e < epochs; e++) {
        double t1 = cli_now();
        if ((st = recsys_trainer_run_epoch(t, NULL))) { rc = cli_fail("bench", ctx, st, NULL); goto done; }
        times[e] = cli_now() - t1;
        fprintf(stderr, "epoch %d: %.3f s\n", e + 1, times[e]);
    }
    qsort(times, (size_t)epochs, sizeof times[0], cmp_double);
    double t2 = cli_now();
    if ((st = recsys_evaluate(ctx, m, ds, opts, &met))) { rc = cli_fail("bench", ctx, st, NULL); goto done; }
    double eval_s = cli_now() - t2;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int64_t n_params = 0;
    recsys_model_n_params(m, &n_params);
    const char *protocol;
    recsys_opts_get(opts, "eval.protocol", &protocol);
    printf("{\"threads\": %d, \"isa\": \"%s\", \"params\": %lld, \"load_seconds\": %.3f, "
           "\"epochs\": %d, \"epoch_seconds_median\": %.3f, \"epoch_seconds_min\": %.3f, "
           "\"eval_protocol\": \"%s\", \"eval_seconds\": %.3f, \"peak_rss_mb\": %.1f}\n",
           recsys_ctx_threads(ctx), recsys_ctx_isa(ctx), (long long)n_params, load_s, epochs,
           times[epochs / 2], times[0], protocol, eval_s, ru.ru_maxrss / 1024.0);
    rc = 0;
done:
    recsys_metrics_free(met);
    recsys_trainer_free(t);
    recsys_model_free(m);
    recsys_dataset_free(ds);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    return rc;
}

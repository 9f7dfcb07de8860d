/* recsys eval: load a model and a dataset, rank the held-out items. */
#include "cli.h"
#include "commands.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: recsys eval --model MODEL --data PATH [--protocol sampled|full]\n"
            "                   [--split valid|test] [--config FILE] [--set key=value]...\n"
            "                   [--threads N] [--baseline]\n"
            "                   [--adapters ADAPTERS]... [--per-user FILE]\n"
            "--adapters: an adapter file or store from recsys adapt (give a store and a\n"
            "shared/bank file: users without a stored adapter use the file's).\n"
            "--per-user: write 'user rank' lines (0-based rank of each user's target).\n"
            "Pass the training config (or the same data.* keys) so ids and split match.\n");
}

int cmd_eval(int argc, char **argv)
{
    const char *model_path = NULL, *config = NULL, *per_user = NULL;
    const char *adapter_paths[2] = {NULL, NULL};
    int n_adapter_paths = 0;
    recsys_adapter *adapter = NULL;
    recsys_adapter_store *store = NULL;
    double *ranks = NULL;
    int baseline = 0;
    recsys_ctx *ctx = NULL;
    recsys_opts *opts = NULL;
    recsys_dataset *ds = NULL;
    recsys_model *model = NULL;
    recsys_metrics *met = NULL;
    recsys_status st;
    int rc = 1;
    if (recsys_ctx_new(&ctx) || recsys_opts_new(ctx, &opts)) goto done;
    if (cli_load_config("eval", ctx, opts, argc, argv, &config)) goto done;
    recsys_opts_set(opts, "eval.split", "test");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *key = NULL;
        if (!strcmp(a, "--config")) { i++; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); rc = 0; goto done; }
        if (!strcmp(a, "--baseline")) { baseline = 1; continue; }
        if (i + 1 >= argc) { usage(); goto done; }
        if (!strcmp(a, "--model")) { model_path = argv[++i]; continue; }
        if (!strcmp(a, "--per-user")) { per_user = argv[++i]; continue; }
        if (!strcmp(a, "--adapters")) {
            if (n_adapter_paths == 2) { usage(); goto done; }
            adapter_paths[n_adapter_paths++] = argv[++i];
            continue;
        }
        if (!strcmp(a, "--set")) {
            if ((st = cli_set_kv(opts, argv[++i]))) { rc = cli_fail("eval", ctx, st, NULL); goto done; }
            continue;
        }
        if (!strcmp(a, "--data")) key = "data.path";
        else if (!strcmp(a, "--protocol")) key = "eval.protocol";
        else if (!strcmp(a, "--split")) key = "eval.split";
        else if (!strcmp(a, "--threads")) key = "trainer.threads";
        else { usage(); goto done; }
        if ((st = recsys_opts_set(opts, key, argv[++i]))) { rc = cli_fail("eval", ctx, st, NULL); goto done; }
    }
    if (!model_path && !baseline) { usage(); goto done; }
    int64_t threads, seed;
    recsys_opts_get_int(opts, "trainer.threads", &threads);
    recsys_opts_get_int(opts, "trainer.seed", &seed);
    recsys_ctx_set_seed(ctx, (uint64_t)seed);
    if ((st = recsys_ctx_set_threads(ctx, (int)threads))) { rc = cli_fail("eval", ctx, st, NULL); goto done; }
    if (model_path && (st = recsys_model_load(ctx, model_path, &model))) {
        rc = cli_fail("eval", ctx, st, "cannot load the model");
        goto done;
    }
    const char *path, *protocol, *split;
    recsys_opts_get(opts, "data.path", &path);
    recsys_opts_get(opts, "eval.protocol", &protocol);
    recsys_opts_get(opts, "eval.split", &split);
    if ((st = recsys_dataset_open(ctx, path, opts, &ds))) {
        rc = cli_fail("eval", ctx, st, "cannot load the data");
        goto done;
    }
    for (int i = 0; i < n_adapter_paths; i++) {
        recsys_adapter *a1 = NULL;
        recsys_adapter_store *s1 = NULL;
        if (!model || cli_load_adapters(ctx, model, adapter_paths[i], opts, 0, &a1, &s1) ||
            (a1 && adapter) || (s1 && store)) {
            recsys_adapter_free(a1);
            recsys_adapter_store_close(s1);
            rc = cli_fail("eval", ctx, RECSYS_E_INVALID, "cannot load the adapters");
            goto done;
        }
        if (a1) adapter = a1;
        if (s1) store = s1;
    }
    double nusers = 0;
    recsys_dataset_stat(ds, RECSYS_STAT_USERS, &nusers);
    if (per_user && !(ranks = malloc(sizeof(double) * ((size_t)nusers + 1)))) goto done;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = model ? recsys_evaluate_adapters(ctx, model, adapter, store, ds, opts, ranks, &met)
               : recsys_evaluate_popularity(ctx, ds, opts, &met);
    if (st) { rc = cli_fail("eval", ctx, st, "evaluation failed"); goto done; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("{\"protocol\": \"%s\", \"split\": \"%s\", \"model\": ", protocol, split);
    if (model) cli_json_string(stdout, model_path);
    else printf("\"popularity\"");
    printf(", ");
    cli_json_metrics(stdout, met, NULL);
    printf(", \"seconds\": %.3f}\n",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    if (per_user && ranks) {
        FILE *f = fopen(per_user, "w");
        if (!f) { fprintf(stderr, "recsys eval: cannot write %s\n", per_user); goto done; }
        for (int64_t u = 0; u < (int64_t)nusers; u++)
            if (ranks[u] == ranks[u]) fprintf(f, "%lld %.1f\n", (long long)u, ranks[u]);
        fclose(f);
    }
    rc = 0;
done:
    free(ranks);
    recsys_adapter_free(adapter);
    recsys_adapter_store_close(store);
    recsys_metrics_free(met);
    recsys_model_free(model);
    recsys_dataset_free(ds);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    return rc;
}

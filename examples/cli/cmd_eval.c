/* recsys eval: load a model and a dataset, rank the held-out items. */
#include "cli.h"
#include "commands.h"

#include <string.h>
#include <time.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: recsys eval --model MODEL --data PATH [--protocol sampled|full]\n"
            "                   [--split valid|test] [--config FILE] [--set key=value]...\n"
            "                   [--threads N] [--baseline]\n"
            "Pass the training config (or the same data.* keys) so ids and split match.\n");
}

int cmd_eval(int argc, char **argv)
{
    const char *model_path = NULL, *config = NULL;
    int baseline = 0;
    recsys_ctx *ctx = NULL;
    recsys_opts *opts = NULL;
    recsys_dataset *ds = NULL;
    recsys_model *model = NULL;
    recsys_metrics *met = NULL;
    recsys_status st;
    int rc = 1;
    if (recsys_ctx_new(&ctx) || recsys_opts_new(ctx, &opts)) goto done;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
    if (config && (st = recsys_opts_load_yaml(opts, config))) {
        rc = cli_fail("eval", ctx, st, "bad config");
        goto done;
    }
    recsys_opts_set(opts, "eval.split", "test");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *key = NULL;
        if (!strcmp(a, "--config")) { i++; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); rc = 0; goto done; }
        if (!strcmp(a, "--baseline")) { baseline = 1; continue; }
        if (i + 1 >= argc) { usage(); goto done; }
        if (!strcmp(a, "--model")) { model_path = argv[++i]; continue; }
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
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = model ? recsys_evaluate(ctx, model, ds, opts, &met)
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
    rc = 0;
done:
    recsys_metrics_free(met);
    recsys_model_free(model);
    recsys_dataset_free(ds);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    return rc;
}

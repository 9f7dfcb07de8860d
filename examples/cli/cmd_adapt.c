/* recsys adapt: train adapters on a frozen base model (docs/ADAPTERS.md).
 *
 *   shared, bank: OUT is one adapter file (recsys_adapter_to_buffer);
 *   per-user: OUT is an adapter store; users with at least
 *   adapter.min_history training events get their own LoRA.
 *
 * Also the helpers `recsys eval --adapters` uses (cli_load_adapters). */
#include "cli.h"
#include "commands.h"

#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: recsys adapt --model BASE --data PATH --out ADAPTERS\n"
            "                    [--mode bank|per-user|shared] [--config FILE]\n"
            "                    [--set key=value]... [--threads N] [--init SHARED]\n"
            "Trains adapters with BASE frozen. shared/bank: ADAPTERS is one adapter file;\n"
            "per-user: an adapter store (users with >= adapter.min_history events).\n"
            "--init (per-user): start every user's LoRA from this shared adapter file\n"
            "instead of B = 0 (then score with --adapters STORE --adapters SHARED).\n"
            "One JSON line on stdout.\n");
}

/* Load ADAPTERS: an adapter store (magic RSADAPTS) or one adapter file. */
int cli_load_adapters(recsys_ctx *ctx, recsys_model *m, const char *path, const recsys_opts *opts,
                      int writable, recsys_adapter **a, recsys_adapter_store **st)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char magic[8] = {0};
    size_t got = fread(magic, 1, 8, f);
    if (got == 8 && !memcmp(magic, "RSADAPTS", 8)) {
        fclose(f);
        return recsys_adapter_store_open(ctx, m, path, writable, opts, st) ? -1 : 0;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = n > 0 ? malloc((size_t)n) : NULL;
    int rc = -1;
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n)
        rc = recsys_adapter_from_buffer(ctx, m, buf, (size_t)n, a) ? -1 : 0;
    free(buf);
    fclose(f);
    return rc;
}

int cmd_adapt(int argc, char **argv)
{
    const char *model_path = NULL, *config = NULL, *out = NULL, *mode = NULL, *init = NULL;
    recsys_adapter *init_a = NULL;
    recsys_adapter_store *init_st = NULL;
    float *init_p = NULL;
    int64_t init_n = 0;
    recsys_ctx *ctx = NULL;
    recsys_opts *opts = NULL;
    recsys_dataset *ds = NULL;
    recsys_model *model = NULL;
    recsys_adapter *a = NULL;
    recsys_adapter_store *store = NULL;
    recsys_status st;
    int rc = 1;
    if (recsys_ctx_new(&ctx) || recsys_opts_new(ctx, &opts)) goto done;
    if (cli_load_config("adapt", ctx, opts, argc, argv, &config)) goto done;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *key = NULL;
        if (!strcmp(k, "--config")) { i++; continue; }
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) { usage(); rc = 0; goto done; }
        if (i + 1 >= argc) { usage(); goto done; }
        if (!strcmp(k, "--model")) { model_path = argv[++i]; continue; }
        if (!strcmp(k, "--out")) { out = argv[++i]; continue; }
        if (!strcmp(k, "--init")) { init = argv[++i]; continue; }
        if (!strcmp(k, "--set")) {
            if ((st = cli_set_kv(opts, argv[++i]))) { rc = cli_fail("adapt", ctx, st, NULL); goto done; }
            continue;
        }
        if (!strcmp(k, "--data")) key = "data.path";
        else if (!strcmp(k, "--mode")) key = "adapter.mode";
        else if (!strcmp(k, "--threads")) key = "trainer.threads";
        else { usage(); goto done; }
        if ((st = recsys_opts_set(opts, key, argv[++i]))) { rc = cli_fail("adapt", ctx, st, NULL); goto done; }
    }
    if (!model_path || !out) { usage(); goto done; }
    int64_t threads, min_hist;
    recsys_opts_get_int(opts, "trainer.threads", &threads);
    recsys_opts_get_int(opts, "adapter.min_history", &min_hist);
    recsys_opts_get(opts, "adapter.mode", &mode);
    if ((st = recsys_ctx_set_threads(ctx, (int)threads))) { rc = cli_fail("adapt", ctx, st, NULL); goto done; }
    if ((st = recsys_model_load(ctx, model_path, &model))) {
        rc = cli_fail("adapt", ctx, st, "cannot load the model");
        goto done;
    }
    const char *path;
    recsys_opts_get(opts, "data.path", &path);
    if ((st = recsys_dataset_open(ctx, path, opts, &ds))) {
        rc = cli_fail("adapt", ctx, st, "cannot load the data");
        goto done;
    }
    if (init) { /* a SHARED (or USER) adapter of the same shape as a new USER one */
        int kind = -1;
        if (strcmp(mode, "per-user")) {
            rc = cli_fail("adapt", ctx, RECSYS_E_INVALID, "--init needs --mode per-user");
            goto done;
        }
        if (cli_load_adapters(ctx, model, init, opts, 0, &init_a, &init_st) || !init_a ||
            recsys_adapter_info(init_a, &kind, NULL, &init_n) ||
            kind == RECSYS_ADAPTER_BANK || !(init_p = malloc(sizeof(float) * (size_t)init_n)) ||
            recsys_adapter_get_params(init_a, init_p, (size_t)init_n)) {
            rc = cli_fail("adapt", ctx, RECSYS_E_INVALID,
                          "--init: cannot load a shared adapter file from it");
            goto done;
        }
    }
    double t0 = cli_now(), loss = 0;
    int64_t trained = 0;
    if (strcmp(mode, "per-user")) {
        int kind = !strcmp(mode, "bank") ? RECSYS_ADAPTER_BANK : RECSYS_ADAPTER_SHARED;
        if ((st = recsys_adapter_new(ctx, model, opts, kind, &a)) ||
            (st = recsys_adapter_train(a, ds, -1, opts, &loss))) {
            rc = cli_fail("adapt", ctx, st, "adapter training failed");
            goto done;
        }
        void *buf = NULL;
        size_t len = 0;
        if ((st = recsys_adapter_to_buffer(a, &buf, &len))) { rc = cli_fail("adapt", ctx, st, NULL); goto done; }
        int w = cli_write_file_atomic(out, buf, len);
        recsys_free(buf);
        if (w) { fprintf(stderr, "recsys adapt: cannot write %s\n", out); goto done; }
        trained = 1;
    } else {
        double nu = 0;
        recsys_dataset_stat(ds, RECSYS_STAT_USERS, &nu);
        if ((st = recsys_adapter_store_create(ctx, model, opts, out, (int64_t)nu)) ||
            (st = recsys_adapter_store_open(ctx, model, out, 1, opts, &store))) {
            rc = cli_fail("adapt", ctx, st, "cannot create the adapter store");
            goto done;
        }
        double sum = 0;
        for (int64_t u = 0; u < (int64_t)nu; u++) {
            const int32_t *items;
            size_t n_all = 0;
            recsys_dataset_user_items(ds, u, &items, NULL, &n_all);
            int64_t n = (int64_t)n_all - 2; /* the validation and test targets held out */
            if (n < min_hist || n < 2) continue;
            double l = 0;
            if ((st = recsys_adapter_new(ctx, model, opts, RECSYS_ADAPTER_USER, &a)) ||
                (init_p && (st = recsys_adapter_set_params(a, init_p, (size_t)init_n))) ||
                (st = recsys_adapter_train(a, ds, u, opts, &l)) ||
                (st = recsys_adapter_store_put(store, u, a, 0))) {
                rc = cli_fail("adapt", ctx, st, "per-user adapter training failed");
                goto done;
            }
            recsys_adapter_free(a);
            a = NULL;
            sum += l;
            trained++;
        }
        loss = trained ? sum / (double)trained : 0;
    }
    printf("{\"mode\": \"%s\", \"adapters\": %lld, \"loss\": %.6f, \"seconds\": %.3f, \"out\": ",
           mode, (long long)trained, loss, cli_now() - t0);
    cli_json_string(stdout, out);
    printf("}\n");
    rc = 0;
done:
    free(init_p);
    recsys_adapter_free(init_a);
    recsys_adapter_store_close(init_st);
    recsys_adapter_store_close(store);
    recsys_adapter_free(a);
    recsys_model_free(model);
    recsys_dataset_free(ds);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    return rc;
}

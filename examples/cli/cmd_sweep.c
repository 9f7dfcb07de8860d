/* recsys sweep: the scaling grid of the Performance Law (docs/MODELS.md §5):
 * model sizes (blocks x dim) trained on nested user subsets; one CSV row per
 * run with its size, data volume, ApEn and test metrics. */
#include "cli.h"
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: recsys sweep [--config FILE] [--data PATH] [--layers 1,2,4] [--dims 25,50]\n"
            "                    [--fractions 0.25,0.5,1] [--out runs.csv] [--set key=value]...\n"
            "Trains every (layers, dim) on each fraction of the users (nested subsets) and\n"
            "appends one CSV row per run (stdout when --out is absent).\n");
}

static int parse_list(const char *s, double *v, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        v[n] = strtod(s, &end);
        if (end == s || !isfinite(v[n]) || v[n] <= 0) return -1;
        n++;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return n;
}

/* Keep the users whose hash falls under the fraction: subsets are nested. */
static recsys_status subset(recsys_ctx *ctx, const recsys_dataset *ds, double fraction,
                            uint64_t seed, const recsys_opts *opts, recsys_dataset **out)
{
    double nu, ne;
    recsys_dataset_stat(ds, RECSYS_STAT_USERS, &nu);
    recsys_dataset_stat(ds, RECSYS_STAT_EVENTS, &ne);
    size_t cap = (size_t)ne, n = 0;
    int64_t *users = malloc(cap * sizeof *users), *items = malloc(cap * sizeof *items);
    int64_t *times = malloc(cap * sizeof *times);
    recsys_status st = RECSYS_OK;
    int has_time = 0;
    if (!users || !items || !times) { st = RECSYS_E_NOMEM; goto done; }
    for (int64_t u = 0; u < (int64_t)nu; u++) {
        uint64_t h = (uint64_t)u * 0x9e3779b97f4a7c15ULL ^ seed;
        h ^= h >> 31; h *= 0xbf58476d1ce4e5b9ULL; h ^= h >> 29;
        if ((double)(h >> 11) * 0x1.0p-53 >= fraction) continue;
        const int32_t *it;
        const int64_t *tm;
        size_t len;
        recsys_dataset_user_items(ds, u, &it, &tm, &len);
        has_time = tm != NULL;
        for (size_t k = 0; k < len; k++, n++) {
            users[n] = u;
            items[n] = it[k];
            times[n] = tm ? tm[k] : 0;
        }
    }
    st = recsys_dataset_from_arrays(ctx, n, users, items, has_time ? times : NULL, opts, out);
done:
    free(users);
    free(items);
    free(times);
    return st;
}

int cmd_sweep(int argc, char **argv)
{
    const char *config = NULL, *out_path = NULL;
    const char *layers_s = "1,2,4,8", *dims_s = "16,32,64", *fractions_s = "0.25,0.5,1";
    recsys_ctx *ctx = NULL;
    recsys_opts *opts = NULL;
    recsys_dataset *full = NULL;
    recsys_apen *apen = NULL;
    FILE *out = stdout;
    int rc = 1;
    recsys_status st;
    if (recsys_ctx_new(&ctx) || recsys_opts_new(ctx, &opts)) goto done;
    if (cli_load_config("sweep", ctx, opts, argc, argv, &config)) goto done;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) { i++; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); rc = 0; goto done; }
        if (i + 1 >= argc) { usage(); goto done; }
        if (!strcmp(a, "--data")) st = recsys_opts_set(opts, "data.path", argv[++i]);
        else if (!strcmp(a, "--set")) st = cli_set_kv(opts, argv[++i]);
        else if (!strcmp(a, "--layers")) { layers_s = argv[++i]; continue; }
        else if (!strcmp(a, "--dims")) { dims_s = argv[++i]; continue; }
        else if (!strcmp(a, "--fractions")) { fractions_s = argv[++i]; continue; }
        else if (!strcmp(a, "--out")) { out_path = argv[++i]; continue; }
        else { usage(); goto done; }
        if (st) { rc = cli_fail("sweep", ctx, st, NULL); goto done; }
    }
    double layers[32], dims[32], fractions[32];
    int nl = parse_list(layers_s, layers, 32), nd = parse_list(dims_s, dims, 32),
        nf = parse_list(fractions_s, fractions, 32);
    if (nl <= 0 || nd <= 0 || nf <= 0) {
        fprintf(stderr, "recsys sweep: --layers, --dims and --fractions take comma-separated positive numbers\n");
        goto done;
    }
    int64_t seed, threads;
    recsys_opts_get_int(opts, "trainer.seed", &seed);
    recsys_opts_get_int(opts, "trainer.threads", &threads);
    recsys_ctx_set_seed(ctx, (uint64_t)seed);
    recsys_ctx_set_threads(ctx, (int)threads);
    const char *path;
    recsys_opts_get(opts, "data.path", &path);
    if ((st = recsys_dataset_open(ctx, path, opts, &full))) { rc = cli_fail("sweep", ctx, st, "cannot load the data"); goto done; }
    if ((st = recsys_apen_new(ctx, opts, &apen))) { rc = cli_fail("sweep", ctx, st, NULL); goto done; }
    if (out_path && !(out = fopen(out_path, "w"))) {
        fprintf(stderr, "recsys sweep: cannot write %s\n", out_path);
        goto done;
    }
    fprintf(out, "run,layers,dim,heads,params,data_fraction,events,users,apen,data,HR@10,NDCG@10,seconds\n");
    fflush(out);
    int run = 0;
    for (int f = 0; f < nf; f++) {
        recsys_dataset *ds = NULL;
        if ((st = subset(ctx, full, fractions[f] > 1 ? 1 : fractions[f], (uint64_t)seed, opts, &ds))) {
            rc = cli_fail("sweep", ctx, st, "cannot build the data subset");
            goto done;
        }
        double events, users, a = NAN;
        int64_t used;
        recsys_dataset_stat(ds, RECSYS_STAT_EVENTS, &events);
        recsys_dataset_stat(ds, RECSYS_STAT_USERS, &users);
        if ((st = recsys_apen_dataset(apen, ds, &a, NULL, 0, &used))) {
            recsys_dataset_free(ds);
            rc = cli_fail("sweep", ctx, st, "ApEn failed");
            goto done;
        }
        for (int l = 0; l < nl; l++) {
            for (int d = 0; d < nd; d++) {
                recsys_model *m = NULL;
                recsys_trainer *t = NULL;
                recsys_metrics *met = NULL;
                int64_t heads, epochs, n_params = 0;
                recsys_opts_set_int(opts, "model.blocks", (int64_t)layers[l]);
                recsys_opts_set_int(opts, "model.dim", (int64_t)dims[d]);
                recsys_opts_get_int(opts, "model.heads", &heads);
                recsys_opts_get_int(opts, "trainer.epochs", &epochs);
                recsys_opts_set(opts, "eval.split", "test");
                double t0 = cli_now();
                st = recsys_model_new(ctx, opts, ds, &m);
                if (!st) st = recsys_trainer_new(ctx, m, ds, opts, &t);
                for (int e = 0; !st && e < epochs; e++) st = recsys_trainer_run_epoch(t, NULL);
                if (!st) st = recsys_evaluate(ctx, m, ds, opts, &met);
                double secs = cli_now() - t0, hr = NAN, ndcg = NAN;
                if (!st) {
                    recsys_model_n_params(m, &n_params);
                    recsys_metrics_get(met, "HR@10", &hr);
                    recsys_metrics_get(met, "NDCG@10", &ndcg);
                    /* D' = tokens x ApEn, in millions: the law's data term has no
                     * weight of its own, so its unit matters (docs/APEN.md) */
                    fprintf(out, "%d,%g,%g,%lld,%lld,%g,%.0f,%.0f,%.6f,%.8g,%.6f,%.6f,%.2f\n",
                            ++run, layers[l], dims[d], (long long)heads, (long long)n_params,
                            fractions[f], events, users, a, events * a / 1e6, hr, ndcg, secs);
                    fflush(out);
                    fprintf(stderr, "run %d: layers %g dim %g fraction %g -> NDCG@10 %.4f (%.1f s)\n",
                            run, layers[l], dims[d], fractions[f], ndcg, secs);
                }
                recsys_metrics_free(met);
                recsys_trainer_free(t);
                recsys_model_free(m);
                if (st) {
                    recsys_dataset_free(ds);
                    rc = cli_fail("sweep", ctx, st, "run failed");
                    goto done;
                }
            }
        }
        recsys_dataset_free(ds);
    }
    rc = 0;
done:
    if (out && out != stdout) fclose(out);
    recsys_apen_free(apen);
    recsys_dataset_free(full);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    return rc;
}

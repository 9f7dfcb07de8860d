/* recsys train: config -> dataset -> model -> epochs (JSON line each) ->
 * final test metrics next to the popularity baseline -> saved model. */
#include "cli.h"
#include "cli_dist.h"
#include "commands.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: recsys train [--config FILE] [--data PATH] [--out MODEL] [--set key=value]...\n"
            "                    [--threads N] [--resume CHECKPOINT] [--distributed mpi|none]\n"
            "Trains the model described by the config (default: the embedded demo) and writes\n"
            "one JSON object per epoch to stdout; progress goes to stderr on a terminal.\n"
            "Under mpirun, --distributed mpi trains data-parallel over the ranks (see\n"
            "docs/DISTRIBUTED.md); only rank 0 writes stdout and --out.\n");
}

static void print_dataset(const recsys_dataset *ds, const char *path)
{
    double users, items, events, has_time;
    recsys_dataset_stat(ds, RECSYS_STAT_USERS, &users);
    recsys_dataset_stat(ds, RECSYS_STAT_ITEMS, &items);
    recsys_dataset_stat(ds, RECSYS_STAT_EVENTS, &events);
    recsys_dataset_stat(ds, RECSYS_STAT_HAS_TIME, &has_time);
    fprintf(stderr, "data %s: %.0f users, %.0f items, %.0f events%s\n", path, users, items,
            events, has_time ? ", timestamps" : "");
}

int cmd_train(int argc, char **argv)
{
    const char *config = NULL, *data = NULL, *out_path = NULL, *resume = NULL;
    const char *distributed = NULL;
    cli_dist dist = {0};
    recsys_ctx *ctx = NULL;
    recsys_opts *opts = NULL;
    recsys_dataset *ds = NULL;
    recsys_model *model = NULL;
    recsys_trainer *tr = NULL;
    recsys_metrics *met = NULL, *pop = NULL;
    int rc = 1;
    recsys_status st;
    if (recsys_ctx_new(&ctx) || recsys_opts_new(ctx, &opts)) {
        fprintf(stderr, "recsys train: out of memory\n");
        goto done;
    }
    /* The config is applied first, then the --set overrides in order. */
    if (cli_load_config("train", ctx, opts, argc, argv, &config)) goto done;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) { i++; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); rc = 0; goto done; }
        if (i + 1 >= argc) { usage(); goto done; }
        if (!strcmp(a, "--data")) data = argv[++i];
        else if (!strcmp(a, "--out")) out_path = argv[++i];
        else if (!strcmp(a, "--resume")) resume = argv[++i];
        else if (!strcmp(a, "--distributed")) distributed = argv[++i];
        else if (!strcmp(a, "--threads")) {
            if ((st = recsys_opts_set(opts, "trainer.threads", argv[++i]))) {
                rc = cli_fail("train", ctx, st, NULL);
                goto done;
            }
        } else if (!strcmp(a, "--set")) {
            if ((st = cli_set_kv(opts, argv[++i]))) {
                rc = cli_fail("train", ctx, st, st == RECSYS_E_INVALID && !strchr(argv[i], '=')
                                                    ? "--set expects key=value" : NULL);
                goto done;
            }
        } else { usage(); goto done; }
    }
    if (data && (st = recsys_opts_set(opts, "data.path", data))) {
        rc = cli_fail("train", ctx, st, NULL);
        goto done;
    }
    double dist_timeout = 0;
    recsys_opts_get_float(opts, "dist.timeout", &dist_timeout);
    if (cli_dist_start(distributed, dist_timeout, &dist)) goto done;
    /* The same JSON lines as single-process training, from rank 0 only. */
    if (dist.rank != 0 && !freopen("/dev/null", "w", stdout)) goto done;
    int64_t seed = 0, threads = 0, epochs = 0, bf16 = 0;
    recsys_opts_get_int(opts, "trainer.seed", &seed);
    recsys_opts_get_int(opts, "trainer.threads", &threads);
    recsys_opts_get_int(opts, "trainer.epochs", &epochs);
    recsys_opts_get_int(opts, "trainer.bf16", &bf16);
    recsys_ctx_set_seed(ctx, (uint64_t)seed);
    if ((st = recsys_ctx_set_threads(ctx, (int)threads))) { rc = cli_fail("train", ctx, st, NULL); goto done; }
    const char *path;
    recsys_opts_get(opts, "data.path", &path);
    if ((st = recsys_dataset_open(ctx, path, opts, &ds))) {
        rc = cli_fail("train", ctx, st, "cannot load the data");
        goto done;
    }
    print_dataset(ds, path);
    double eval_users = 0;
    recsys_dataset_stat(ds, RECSYS_STAT_EVAL_USERS, &eval_users);
    if (eval_users == 0) {
        const char *split;
        recsys_opts_get(opts, "data.split", &split);
        fprintf(stderr, "recsys train: nothing to evaluate in %s: no user has enough events for "
                        "a held-out target (data.split=%s needs %d or more per user)\n",
                path, split, strcmp(split, "last") ? 4 : 3);
        goto done;
    }
    if (resume) st = recsys_model_load(ctx, resume, &model);
    else st = recsys_model_new(ctx, opts, ds, &model);
    if (st) { rc = cli_fail("train", ctx, st, "cannot create the model"); goto done; }
    int64_t n_params = 0;
    recsys_model_n_params(model, &n_params);
    fprintf(stderr, "model: %lld parameters, kernels %s (%s), %d threads\n", (long long)n_params,
            recsys_ctx_isa(ctx), recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM),
            recsys_ctx_threads(ctx));
    if ((st = recsys_trainer_new(ctx, model, ds, opts, &tr))) {
        rc = cli_fail("train", ctx, st, "cannot create the trainer");
        goto done;
    }
    /* The trainer keeps trainer.bf16 to itself; the evaluations of this
     * command run in the same mode (the trainer checked that it is supported). */
    if (bf16 && (st = recsys_ctx_set_bf16(ctx, 1))) {
        rc = cli_fail("train", ctx, st, NULL);
        goto done;
    }
    if (dist.c && (st = recsys_trainer_set_collective(tr, dist.c))) {
        rc = cli_fail("train", ctx, st, "cannot start distributed training");
        goto done;
    }
    if (resume && (st = recsys_trainer_resume(tr, resume))) {
        rc = cli_fail("train", ctx, st, "cannot resume");
        goto done;
    }
    cli_progress prog;
    cli_progress_init(&prog);
    if (dist.rank != 0) prog.enabled = 0;
    recsys_trainer_set_progress(tr, cli_progress_train, &prog);
    double t_train = cli_now();
    for (int e = recsys_trainer_epoch(tr); e < epochs; e++) {
        double t0 = cli_now(), loss = 0;
        if ((st = recsys_trainer_run_epoch(tr, &loss))) {
            cli_progress_clear(&prog);
            rc = cli_fail("train", ctx, st, "training failed");
            goto done;
        }
        double secs = cli_now() - t0;
        cli_progress_clear(&prog);
        printf("{\"epoch\": %d, \"loss\": %.6f, \"epoch_seconds\": %.3f", e + 1, loss, secs);
        if (recsys_trainer_eval_due(tr)) { /* trainer.eval_every */
            recsys_opts_set(opts, "eval.split", "valid");
            double t1 = cli_now();
            if ((st = dist.c ? recsys_evaluate_distributed(ctx, model, ds, opts, dist.c, &met)
                             : recsys_evaluate(ctx, model, ds, opts, &met))) {
                printf("}\n");
                rc = cli_fail("train", ctx, st, "evaluation failed");
                goto done;
            }
            printf(", \"split\": \"valid\", ");
            cli_json_metrics(stdout, met, NULL);
            printf(", \"eval_seconds\": %.3f", cli_now() - t1);
            recsys_metrics_free(met);
            met = NULL;
        }
        if (dist.c) {
            double bytes = 0, comm = 0;
            int64_t steps = 0;
            recsys_trainer_comm_stats(tr, &bytes, &comm, NULL, &steps);
            printf(", \"ranks\": %d, \"comm_seconds\": %.3f, \"comm_bytes_per_step\": %.0f",
                   dist.size, comm, steps ? bytes / (double)steps : 0.0);
        }
        printf("}\n");
        fflush(stdout);
    }
    double train_seconds = cli_now() - t_train;
    /* dist.shard_items split the model's item table over the ranks: whole
     * again (gathered on every rank) before rank 0 saves it */
    if (out_path && dist.c && (st = recsys_trainer_set_collective(tr, NULL))) {
        rc = cli_fail("train", ctx, st, "cannot gather the model");
        goto done;
    }
    if (out_path && dist.rank == 0 && (st = recsys_model_save(ctx, model, out_path))) {
        rc = cli_fail("train", ctx, st, "cannot save the model");
        goto done;
    }
    /* Final test-split report, next to the popularity baseline. */
    recsys_opts_set(opts, "eval.split", "test");
    if ((st = dist.c ? recsys_evaluate_distributed(ctx, model, ds, opts, dist.c, &met)
                     : recsys_evaluate(ctx, model, ds, opts, &met)) ||
        (st = recsys_evaluate_popularity(ctx, ds, opts, &pop))) {
        rc = cli_fail("train", ctx, st, "evaluation failed");
        goto done;
    }
    const char *protocol;
    recsys_opts_get(opts, "eval.protocol", &protocol);
    double hr = 0, phr = 0;
    recsys_metrics_get(met, "HR@10", &hr);
    recsys_metrics_get(pop, "HR@10", &phr);
    if (dist.rank == 0)
        fprintf(stderr, "test (%s): HR@10 %.4f vs popularity %.4f\n", protocol, hr, phr);
    printf("{\"final\": true, \"split\": \"test\", \"protocol\": \"%s\", \"epochs\": %d, "
           "\"train_seconds\": %.3f, ", protocol, recsys_trainer_epoch(tr), train_seconds);
    cli_json_metrics(stdout, met, NULL);
    printf(", ");
    cli_json_metrics(stdout, pop, "popularity_");
    if (out_path) { printf(", \"model\": "); cli_json_string(stdout, out_path); }
    printf("}\n");
    rc = 0;
done:
    if (rc) cli_dist_abort(&dist, rc); /* no rank waits for a failed one */
    recsys_metrics_free(met);
    recsys_metrics_free(pop);
    recsys_trainer_free(tr);
    recsys_model_free(model);
    recsys_dataset_free(ds);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    cli_dist_end(&dist);
    return rc;
}

/* Distributed training on Open MPI, run by run_mpi_tests.sh under
 * `mpirun -np 2`. Public API only (librecsys + librecsys-mpi).
 *
 *   test_dist_mpi train   2 ranks == the plain trainer (which every rank
 *                         also runs alone) within 1e-4 (losses) and 0.005
 *                         (metrics); ranks hold the same model; sharded
 *                         evaluation; restart 2 ranks -> 1 and 1 -> 2;
 *                         all of it again with dist.shard_items.
 *   test_dist_mpi stall   rank 1 stops calling collectives; rank 0 must
 *                         fail after dist.timeout with a message, then abort.
 *   test_dist_mpi die     rank 1 exits in the middle of training; the job
 *                         must end (mpirun kills it), never hang.
 * Exit 0 = pass. */
#include <librecsys/recsys.h>
#include <librecsys/recsys_mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const KV[] = {
    "data.synthetic_users", "240", "data.synthetic_items", "70", "data.synthetic_length", "18",
    "model.max_len", "12", "model.dim", "8", "trainer.batch_size", "32", "model.dropout", "0.2",
    "eval.protocol", "full", "eval.split", "test", "trainer.threads", "1", NULL};

static int rank_ = 0;
static int shard_ = 0; /* dist.shard_items for the distributed runs */
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", rank_, __FILE__, __LINE__, \
                    #cond);                                                                \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

typedef struct run {
    double loss[4], ndcg;
} run;

/* Train `epochs` (after resuming from `resume`), optionally save; c NULL:
 * the plain trainer on this process alone. */
static recsys_status train(recsys_ctx *ctx, const recsys_collective *c, int epochs,
                           const char *resume, const char *save, const char *model_out,
                           int die_rank, run *out)
{
    recsys_opts *o = NULL;
    recsys_dataset *ds = NULL;
    recsys_model *m = NULL;
    recsys_trainer *t = NULL;
    recsys_metrics *met = NULL;
    recsys_status st = recsys_opts_new(ctx, &o);
    for (int i = 0; !st && KV[i]; i += 2) st = recsys_opts_set(o, KV[i], KV[i + 1]);
    if (!st && c && shard_) st = recsys_opts_set(o, "dist.shard_items", "true");
    if (!st) st = recsys_dataset_synthetic(ctx, o, &ds);
    if (!st) st = recsys_model_new(ctx, o, ds, &m);
    if (!st) st = recsys_trainer_new(ctx, m, ds, o, &t);
    if (!st && c) st = recsys_trainer_set_collective(t, c);
    if (!st && resume) st = recsys_trainer_resume(t, resume);
    for (int e = 0; !st && e < epochs; e++) {
        if (e == 1 && die_rank == rank_) _exit(3); /* a rank dies mid-run */
        st = recsys_trainer_run_epoch(t, &out->loss[e]);
    }
    if (!st && save) st = recsys_trainer_save_checkpoint(t, save);
    /* sharded: each rank scores its rows of the split model */
    if (!st) st = c ? recsys_evaluate_distributed(ctx, m, ds, o, c, &met)
                    : recsys_evaluate(ctx, m, ds, o, &met);
    if (!st) st = recsys_metrics_get(met, "NDCG@10", &out->ndcg);
    /* the whole model again on every rank (sharded: gathered) */
    if (!st && c) st = recsys_trainer_set_collective(t, NULL);
    if (!st && model_out) st = recsys_model_save(ctx, m, model_out);
    recsys_metrics_free(met);
    recsys_trainer_free(t);
    recsys_model_free(m);
    recsys_dataset_free(ds);
    recsys_opts_free(o);
    return st;
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int x = fgetc(fa), y = fgetc(fb);
        if (x != y) same = 0;
        if (x == EOF || y == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static int test_train(recsys_ctx *ctx, recsys_mpi *mpi, const char *dir)
{
    const recsys_collective *c = recsys_mpi_collective(mpi);
    char ck2[512], ck1[512], m0[512], m1[512];
    snprintf(ck2, sizeof ck2, "%s/two.ckpt", dir);
    snprintf(ck1, sizeof ck1, "%s/one.ckpt", dir);
    snprintf(m0, sizeof m0, "%s/model.rank0", dir);
    snprintf(m1, sizeof m1, "%s/model.rank1", dir);
    run plain = {0}, two = {0}, w2 = {0}, r1 = {0}, w1 = {0}, r2 = {0};
    recsys_status st;
    CHECK(!(st = train(ctx, NULL, 2, NULL, NULL, NULL, -1, &plain)), "%s", recsys_ctx_errmsg(ctx));
    CHECK(!(st = train(ctx, c, 2, NULL, NULL, rank_ ? m1 : m0, -1, &two)), "%s",
          recsys_ctx_errmsg(ctx));
    for (int e = 0; e < 2; e++)
        CHECK(rel(two.loss[e], plain.loss[e]) <= 1e-4, "epoch %d loss %.9f vs %.9f", e + 1,
              two.loss[e], plain.loss[e]);
    CHECK(fabs(two.ndcg - plain.ndcg) <= 0.005, "NDCG@10 %.6f vs %.6f", two.ndcg, plain.ndcg);
    CHECK(c->barrier(c->user_data) == 0, "barrier");
    if (rank_ == 0) CHECK(same_file(m0, m1), "the ranks' models differ");
    fprintf(stderr, "rank %d: 2 ranks vs 1: loss %.9f/%.9f vs %.9f/%.9f, NDCG@10 %.6f vs %.6f\n",
            rank_, two.loss[0], two.loss[1], plain.loss[0], plain.loss[1], two.ndcg, plain.ndcg);
    /* restart: 2 ranks write after epoch 1, rank 0 alone continues */
    CHECK(!train(ctx, c, 1, NULL, ck2, NULL, -1, &w2), "%s", recsys_ctx_errmsg(ctx));
    if (rank_ == 0) {
        CHECK(!train(ctx, NULL, 1, ck2, NULL, NULL, -1, &r1), "%s", recsys_ctx_errmsg(ctx));
        CHECK(rel(r1.loss[0], two.loss[1]) <= 1e-4, "resumed on 1 rank: %.9f vs %.9f",
              r1.loss[0], two.loss[1]);
        /* 1 rank writes after epoch 1, 2 ranks continue */
        CHECK(!train(ctx, NULL, 1, NULL, ck1, NULL, -1, &w1), "%s", recsys_ctx_errmsg(ctx));
    }
    CHECK(c->barrier(c->user_data) == 0, "barrier");
    CHECK(!train(ctx, c, 1, ck1, NULL, NULL, -1, &r2), "%s", recsys_ctx_errmsg(ctx));
    CHECK(rel(r2.loss[0], plain.loss[1]) <= 1e-4, "resumed on 2 ranks: %.9f vs %.9f", r2.loss[0],
          plain.loss[1]);
    if (rank_ == 0) {
        remove(ck1);
        remove(ck2);
        remove(m0);
        remove(m1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "train";
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    double timeout = !strcmp(mode, "stall") ? 3.0 : 600.0; /* slow under ASan and load */
    recsys_mpi *mpi = NULL;
    if (recsys_mpi_new(timeout, &mpi)) {
        fprintf(stderr, "recsys_mpi_new: %s\n", recsys_mpi_errmsg(mpi));
        recsys_mpi_free(mpi);
        return 1;
    }
    rank_ = recsys_mpi_rank(mpi);
    if (recsys_mpi_size(mpi) != 2) {
        fprintf(stderr, "run with mpirun -np 2\n");
        recsys_mpi_free(mpi);
        return 1;
    }
    recsys_ctx *ctx = NULL;
    if (recsys_ctx_new(&ctx)) return 1;
    int rc = 0;
    if (!strcmp(mode, "train")) {
        rc = test_train(ctx, mpi, dir);
        shard_ = 1; /* the same with row-sharded item tables */
        if (!rc) rc = test_train(ctx, mpi, dir);
    } else if (!strcmp(mode, "stall")) {
        run r = {0};
        if (rank_ == 1) sleep(60); /* stalls: never joins the collectives */
        recsys_status st = train(ctx, recsys_mpi_collective(mpi), 1, NULL, NULL, NULL, -1, &r);
        fprintf(stderr, "rank %d: %s: %s\n", rank_, recsys_status_str(st), recsys_ctx_errmsg(ctx));
        rc = st == RECSYS_E_IO && strstr(recsys_ctx_errmsg(ctx), "did not complete") ? 42 : 1;
    } else if (!strcmp(mode, "die")) {
        run r = {0};
        recsys_status st = train(ctx, recsys_mpi_collective(mpi), 3, NULL, NULL, NULL, 1, &r);
        fprintf(stderr, "rank %d: %s: %s\n", rank_, recsys_status_str(st), recsys_ctx_errmsg(ctx));
        rc = 1;
    }
    recsys_ctx_free(ctx);
    if (rc) {
        fprintf(stderr, "rank %d: aborting the job (code %d)\n", rank_, rc);
        recsys_mpi_abort(mpi, rc); /* every rank ends: nobody waits */
    }
    recsys_mpi_free(mpi);
    return 0;
}

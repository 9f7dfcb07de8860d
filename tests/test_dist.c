/* Distributed training over the thread-backed collective (thread_comm.c):
 * 1 rank == plain trainer bit for bit; 2 ranks == 1 rank within 1e-4
 * (losses) and 0.005 (metrics); sharded evaluation == single process;
 * restart across rank counts; failures propagate to every rank. */
#include "dist/dist.h"
#include "models/model.h"
#include "thread_comm.h"
#include "test_util.h"

#include <stdio.h>
#include <unistd.h>

#define MAX_EPOCHS 6

typedef struct job {
    tc_group *g;            /* NULL: plain trainer */
    const char *const *kv;  /* NULL-terminated key, value pairs */
    int epochs;
    const char *resume, *save; /* checkpoints (may be NULL) */
    int nan_rank;           /* rank whose weights get a NaN, or -1 */
    int shard;              /* dist.shard_items */
    /* results */
    recsys_status st;
    char err[256];
    double loss[MAX_EPOCHS];
    double ndcg10, hr10, mrr;
    double whole_ndcg10, whole_hr10, whole_mrr; /* sharded: recsys_evaluate after gathering */
    int64_t own_rows;         /* sharded: item rows the split model held */
    recsys_status split_eval; /* sharded: recsys_evaluate of the split model */
    float *params;
    size_t n_params;
    double bytes;
    int64_t steps;
} job;

static const char *const SASREC[] = {
    "data.synthetic_users", "240", "data.synthetic_items", "70", "data.synthetic_length", "18",
    "model.max_len", "12", "model.dim", "8", "trainer.batch_size", "32", "model.dropout", "0.2",
    "eval.protocol", "full", "eval.split", "test", NULL};
static const char *const SASREC_DROPOUT[] = {
    "data.synthetic_users", "240", "data.synthetic_items", "70", "data.synthetic_length", "18",
    "model.max_len", "12", "model.dim", "8", "trainer.batch_size", "32", "model.dropout", "0.2",
    "eval.split", "test", NULL};
static const char *const HSTU_SSM[] = {
    "data.synthetic_users", "240", "data.synthetic_items", "70", "data.synthetic_length", "18",
    "model.type", "hstu", "model.max_len", "12", "model.dim", "8", "model.heads", "2",
    "trainer.batch_size", "32", "model.dropout", "0.3", "trainer.loss", "sampled_softmax",
    "trainer.negatives", "8", "eval.split", "test", NULL};

static void run_job(int rank, void *arg)
{
    job *j = arg;
    recsys_ctx *ctx = NULL;
    recsys_opts *o = NULL;
    recsys_dataset *ds = NULL;
    recsys_model *m = NULL;
    recsys_trainer *t = NULL;
    recsys_metrics *met = NULL;
    recsys_collective c;
    recsys_status st = recsys_ctx_new(&ctx);
    if (!st) st = recsys_ctx_set_threads(ctx, 1);
    if (!st) st = recsys_opts_new(ctx, &o);
    for (int i = 0; !st && j->kv[i]; i += 2) st = recsys_opts_set(o, j->kv[i], j->kv[i + 1]);
    if (!st && j->shard) st = recsys_opts_set(o, "dist.shard_items", "true");
    if (!st) st = recsys_dataset_synthetic(ctx, o, &ds);
    if (!st) st = recsys_model_new(ctx, o, ds, &m);
    if (!st) st = recsys_trainer_new(ctx, m, ds, o, &t);
    if (!st && j->g) {
        c = tc_collective(j->g, rank);
        st = recsys_trainer_set_collective(t, &c);
    }
    if (!st && j->resume) st = recsys_trainer_resume(t, j->resume);
    if (!st && j->nan_rank == rank)
        for (size_t i = 0; i < m->n_params; i++) m->params[i] = NAN;
    for (int e = 0; !st && e < j->epochs; e++) st = recsys_trainer_run_epoch(t, &j->loss[e]);
    if (!st && j->save) st = recsys_trainer_save_checkpoint(t, j->save);
    if (!st) st = recsys_trainer_comm_stats(t, &j->bytes, NULL, NULL, &j->steps);
    if (!st)
        st = j->g ? recsys_evaluate_distributed(ctx, m, ds, o, &c, &met)
                  : recsys_evaluate(ctx, m, ds, o, &met);
    if (!st) st = recsys_metrics_get(met, "NDCG@10", &j->ndcg10);
    if (!st) st = recsys_metrics_get(met, "HR@10", &j->hr10);
    if (!st) st = recsys_metrics_get(met, "MRR", &j->mrr);
    if (!st && j->g && j->shard) { /* the split model whole again, evaluated alone */
        recsys_metrics_free(met);
        met = NULL;
        j->own_rows = m->sharded ? m->rows_hi - m->rows_lo : -1;
        j->split_eval = recsys_evaluate(ctx, m, ds, o, &met); /* refused: not whole */
        st = recsys_trainer_set_collective(t, NULL);
        if (!st) st = recsys_evaluate(ctx, m, ds, o, &met);
        if (!st) st = recsys_metrics_get(met, "NDCG@10", &j->whole_ndcg10);
        if (!st) st = recsys_metrics_get(met, "HR@10", &j->whole_hr10);
        if (!st) st = recsys_metrics_get(met, "MRR", &j->whole_mrr);
    }
    if (!st) {
        j->n_params = m->n_params;
        j->params = malloc(sizeof(float) * m->n_params);
        if (j->params) memcpy(j->params, m->params, sizeof(float) * m->n_params);
    }
    j->st = st;
    snprintf(j->err, sizeof j->err, "%s", st ? recsys_ctx_errmsg(ctx) : "");
    recsys_metrics_free(met);
    recsys_trainer_free(t);
    recsys_model_free(m);
    recsys_dataset_free(ds);
    recsys_opts_free(o);
    recsys_ctx_free(ctx);
}

/* n ranks (0: plain trainer) over one config; jobs[0..max(n,1)) filled. */
static void run_ranks_s(int n, const char *const *kv, int epochs, const char *resume,
                        const char *save, int shard, job *jobs)
{
    tc_group *g = n > 0 ? tc_group_new(n) : NULL;
    int k = n > 0 ? n : 1;
    for (int r = 0; r < k; r++)
        jobs[r] = (job){.g = g, .kv = kv, .epochs = epochs, .resume = resume, .save = save,
                        .nan_rank = -1, .shard = shard};
    tc_run(k, run_job, jobs, sizeof *jobs);
    tc_group_free(g);
    for (int r = 0; r < k; r++)
        if (jobs[r].st) fail_msg("rank %d: %s: %s", r, recsys_status_str(jobs[r].st), jobs[r].err);
}

static void run_ranks(int n, const char *const *kv, int epochs, const char *resume,
                      const char *save, job *jobs)
{
    run_ranks_s(n, kv, epochs, resume, save, 0, jobs);
}

static void free_jobs(job *jobs, int n)
{
    for (int r = 0; r < n; r++) free(jobs[r].params);
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "/tmp/rs_test_dist_%d_%s.ckpt", (int)getpid(), name);
}

/* ------------------------------------------------------------------ tests */

typedef struct ops_arg {
    tc_group *g;
    int ok;
} ops_arg;

/* Each rank: rank-ordered dense sum (exact: r0 + r1 + r2 in float), the
 * table's allreduce, allgatherv with uneven parts, alltoallv, broadcast. */
static void ops_rank(int rank, void *p)
{
    enum { N = 3, LEN = 1001 };
    ops_arg *a = p;
    recsys_ctx *ctx = NULL;
    if (recsys_ctx_new(&ctx)) return;
    recsys_collective c = tc_collective(a->g, rank);
    rs_dist d;
    int ok = rs_dist_init(&d, ctx, &c) == RECSYS_OK && d.rank == rank && d.size == N;
    float *x = malloc(sizeof(float) * LEN), *y = malloc(sizeof(float) * LEN);
    float *scratch = malloc(sizeof(float) * rs_dist_sum_scratch(&d, LEN));
    for (int i = 0; i < LEN; i++) x[i] = y[i] = 0.1f * (float)(i + 1) * (float)(rank + 1) + 1e-3f;
    ok = ok && rs_dist_sum_ordered(&d, x, LEN, scratch) == RECSYS_OK;
    ok = ok && c.allreduce_f32(c.user_data, y, LEN) == 0;
    for (int i = 0; ok && i < LEN; i++) {
        float e = 0.0f;
        for (int r = 0; r < N; r++) e += 0.1f * (float)(i + 1) * (float)(r + 1) + 1e-3f;
        ok = x[i] == e && y[i] == e;
    }
    /* allgatherv: rank r sends r+1 ints */
    int32_t send[N], recv[6];
    size_t counts[N], displs[N];
    for (int r = 0, o = 0; r < N; o += r + 1, r++) {
        counts[r] = sizeof(int32_t) * (size_t)(r + 1);
        displs[r] = sizeof(int32_t) * (size_t)o;
    }
    for (int i = 0; i <= rank; i++) send[i] = 10 * rank + i;
    ok = ok && rs_dist_allgatherv(&d, send, counts[rank], recv, counts, displs) == RECSYS_OK;
    ok = ok && recv[0] == 0 && recv[1] == 10 && recv[2] == 11 && recv[5] == 22;
    /* alltoallv: rank r sends (r, j) to rank j */
    int32_t s2[N], r2[N];
    size_t sc[N], sd[N];
    for (int j = 0; j < N; j++) { s2[j] = 100 * rank + j; sc[j] = sizeof(int32_t); sd[j] = sizeof(int32_t) * (size_t)j; }
    ok = ok && rs_dist_alltoallv(&d, s2, sc, sd, r2, sc, sd) == RECSYS_OK;
    for (int j = 0; ok && j < N; j++) ok = r2[j] == 100 * j + rank;
    int64_t v = rank == 1 ? 77 : -1;
    ok = ok && rs_dist_bcast(&d, &v, sizeof v, 1) == RECSYS_OK && v == 77;
    ok = ok && rs_dist_barrier(&d) == RECSYS_OK && d.calls == 6;
    a->ok = ok;
    free(x);
    free(y);
    free(scratch);
    rs_dist_free(&d);
    recsys_ctx_free(ctx);
}

static void test_collective_ops(void **state)
{
    (void)state;
    enum { N = 3 };
    ops_arg args[N];
    tc_group *g = tc_group_new(N);
    assert_non_null(g);
    for (int r = 0; r < N; r++) args[r] = (ops_arg){g, 0};
    tc_run(N, ops_rank, args, sizeof args[0]);
    tc_group_free(g);
    for (int r = 0; r < N; r++) assert_int_equal(args[r].ok, 1);
}

static void check_bit_identical(const char *const *kv)
{
    job plain[1], one[1];
    run_ranks(0, kv, 2, NULL, NULL, plain);
    run_ranks(1, kv, 2, NULL, NULL, one);
    for (int e = 0; e < 2; e++) assert_true(plain[0].loss[e] == one[0].loss[e]);
    assert_int_equal(plain[0].n_params, one[0].n_params);
    assert_memory_equal(plain[0].params, one[0].params, sizeof(float) * plain[0].n_params);
    assert_true(plain[0].ndcg10 == one[0].ndcg10);
    assert_int_equal(one[0].steps, 2 * 8); /* 240 users / 32 */
    free_jobs(plain, 1);
    free_jobs(one, 1);
}

static void test_one_rank_bit_identical(void **state)
{
    (void)state;
    check_bit_identical(SASREC_DROPOUT);
    check_bit_identical(HSTU_SSM);
}

static void check_two_vs_one(const char *const *kv, int n)
{
    job one[1], many[4];
    run_ranks(1, kv, 3, NULL, NULL, one);
    run_ranks(n, kv, 3, NULL, NULL, many);
    for (int e = 0; e < 3; e++) {
        for (int r = 0; r < n; r++) {
            assert_true(rel(many[r].loss[e], one[0].loss[e]) <= 1e-4);
            assert_true(many[r].loss[e] == many[0].loss[e]);
        }
    }
    for (int r = 1; r < n; r++) /* every rank holds the same model */
        assert_memory_equal(many[r].params, many[0].params, sizeof(float) * many[0].n_params);
    if (getenv("RS_TEST_VERBOSE"))
        for (int e = 0; e < 3; e++)
            fprintf(stderr, "epoch %d: 1 rank %.9f, %d ranks %.9f (rel %.2e); NDCG@10 %.6f vs %.6f\n",
                    e + 1, one[0].loss[e], n, many[0].loss[e], rel(many[0].loss[e], one[0].loss[e]),
                    one[0].ndcg10, many[0].ndcg10);
    assert_true(fabs(many[0].ndcg10 - one[0].ndcg10) <= 0.005);
    assert_true(fabs(many[0].hr10 - one[0].hr10) <= 0.005);
    assert_true(many[0].bytes > 0);
    free_jobs(one, 1);
    free_jobs(many, n);
}

static void test_two_ranks_match_one(void **state)
{
    (void)state;
    check_two_vs_one(SASREC, 2);
    check_two_vs_one(HSTU_SSM, 2);
    check_two_vs_one(SASREC, 3);
}

/* Sharded evaluation on 1, 2 and 3 ranks gives the same metrics, which are
 * the single-process ones. */
static void test_sharded_eval(void **state)
{
    (void)state;
    job plain[1], j1[1], j3[3];
    run_ranks(0, SASREC, 1, NULL, NULL, plain);
    /* zero epochs after one: evaluate the same weights on 1 and 3 ranks */
    run_ranks(1, SASREC, 1, NULL, NULL, j1);
    run_ranks(3, SASREC, 1, NULL, NULL, j3);
    assert_true(j1[0].ndcg10 == plain[0].ndcg10 && j1[0].hr10 == plain[0].hr10);
    for (int r = 0; r < 3; r++) assert_true(fabs(j3[r].ndcg10 - j1[0].ndcg10) < 1e-6);
    free_jobs(plain, 1);
    free_jobs(j1, 1);
    free_jobs(j3, 3);
}

/* 2 ranks write after epoch 1, 1 rank continues (and the reverse); epoch 2
 * matches the uninterrupted run within the cross-rank tolerance. */
static void test_restart_other_rank_count(void **state)
{
    (void)state;
    char p2[256], p1[256];
    tmp_path(p2, sizeof p2, "two");
    tmp_path(p1, sizeof p1, "one");
    job ref2[2], ref1[1], w2[2], w1[1], r1[1], r2[2];
    run_ranks(2, SASREC, 2, NULL, NULL, ref2);
    run_ranks(0, SASREC, 2, NULL, NULL, ref1);
    run_ranks(2, SASREC, 1, NULL, p2, w2);
    run_ranks(0, SASREC, 1, NULL, p1, w1);
    run_ranks(0, SASREC, 1, p2, NULL, r1); /* 2-rank checkpoint on a plain trainer */
    run_ranks(2, SASREC, 1, p1, NULL, r2); /* plain checkpoint on 2 ranks */
    assert_true(rel(r1[0].loss[0], ref2[0].loss[1]) <= 1e-4);
    assert_true(rel(r2[0].loss[0], ref1[0].loss[1]) <= 1e-4);
    assert_true(r2[1].loss[0] == r2[0].loss[0]);
    assert_true(fabs(r1[0].ndcg10 - ref2[0].ndcg10) <= 0.005);
    assert_true(fabs(r2[0].ndcg10 - ref1[0].ndcg10) <= 0.005);
    remove(p1);
    remove(p2);
    free_jobs(ref2, 2); free_jobs(ref1, 1); free_jobs(w2, 2); free_jobs(w1, 1);
    free_jobs(r1, 1); free_jobs(r2, 2);
}

/* A failing collective fails the call on every rank with its message; a
 * rank whose step fails (NaN) makes the others fail too, none waits. */
static void test_failures(void **state)
{
    (void)state;
    job j[2];
    tc_group *g = tc_group_new(2);
    tc_fail_at(g, -1, 12);
    for (int r = 0; r < 2; r++) j[r] = (job){.g = g, .kv = SASREC, .epochs = 1, .nan_rank = -1};
    tc_run(2, run_job, j, sizeof *j);
    tc_group_free(g);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(j[r].st, RECSYS_E_IO);
        assert_non_null(strstr(j[r].err, "injected failure"));
    }
    free_jobs(j, 2);

    g = tc_group_new(2);
    for (int r = 0; r < 2; r++) j[r] = (job){.g = g, .kv = SASREC, .epochs = 1, .nan_rank = 1};
    tc_run(2, run_job, j, sizeof *j);
    tc_group_free(g);
    assert_int_equal(j[1].st, RECSYS_E_NUMERIC);
    assert_int_equal(j[0].st, RECSYS_E_NUMERIC);
    assert_non_null(strstr(j[0].err, "rank 1 of 2 failed"));
    free_jobs(j, 2);
}

/* Row-sharded item tables: 1 and 3 ranks == unsharded within the
 * cross-rank tolerances, every rank ends with the same whole model. */
static void check_sharded(const char *const *kv, int n)
{
    job plain[1], sh[4];
    run_ranks(0, kv, 3, NULL, NULL, plain);
    run_ranks_s(n, kv, 3, NULL, NULL, 1, sh);
    for (int e = 0; e < 3; e++) {
        if (getenv("RS_TEST_VERBOSE"))
            fprintf(stderr, "sharded %d ranks epoch %d: %.9f vs unsharded %.9f\n", n, e + 1,
                    sh[0].loss[e], plain[0].loss[e]);
        for (int r = 0; r < n; r++) assert_true(rel(sh[r].loss[e], plain[0].loss[e]) <= 1e-4);
    }
    for (int r = 1; r < n; r++)
        assert_memory_equal(sh[r].params, sh[0].params, sizeof(float) * sh[0].n_params);
    int64_t rows = 0; /* each rank held its share of the table, no more */
    for (int r = 0; r < n; r++) {
        assert_int_equal(sh[r].split_eval, RECSYS_E_STATE);
        assert_true(sh[r].own_rows > 0 && sh[r].own_rows <= 70 / n + 1);
        rows += sh[r].own_rows;
    }
    assert_int_equal(rows, 71);
    if (n == 1) /* one shard: the plain trainer bit for bit */
        assert_memory_equal(sh[0].params, plain[0].params, sizeof(float) * sh[0].n_params);
    assert_true(fabs(sh[0].ndcg10 - plain[0].ndcg10) <= 0.005);
    free_jobs(plain, 1);
    free_jobs(sh, n);
}

/* Evaluation of a row-sharded model (each rank scores its rows, counts
 * merged) == recsys_evaluate of the gathered model, exactly: full ranking
 * and sampled negatives, SASRec and HSTU (L2-normalised scores). */
static void check_sharded_eval(const char *const *kv, int n)
{
    job sh[4];
    run_ranks_s(n, kv, 1, NULL, NULL, 1, sh);
    for (int r = 0; r < n; r++) {
        if (getenv("RS_TEST_VERBOSE"))
            fprintf(stderr, "sharded eval %d ranks, rank %d: NDCG@10 %.9f vs %.9f, MRR %.9f vs %.9f\n",
                    n, r, sh[r].ndcg10, sh[r].whole_ndcg10, sh[r].mrr, sh[r].whole_mrr);
        assert_true(sh[r].ndcg10 == sh[r].whole_ndcg10);
        assert_true(sh[r].hr10 == sh[r].whole_hr10);
        assert_true(sh[r].mrr == sh[r].whole_mrr);
    }
    free_jobs(sh, n);
}

static const char *const HSTU_FULL[] = {
    "data.synthetic_users", "240", "data.synthetic_items", "70", "data.synthetic_length", "18",
    "model.type", "hstu", "model.max_len", "12", "model.dim", "8", "model.heads", "2",
    "trainer.batch_size", "32", "trainer.loss", "sampled_softmax", "trainer.negatives", "8",
    "eval.protocol", "full", "eval.batch_size", "7", NULL};

static void test_sharded_model_eval(void **state)
{
    (void)state;
    check_sharded_eval(SASREC, 3);         /* full ranking, test split */
    check_sharded_eval(SASREC_DROPOUT, 2); /* sampled negatives */
    check_sharded_eval(HSTU_SSM, 3);       /* sampled, L2-normalised */
    check_sharded_eval(HSTU_FULL, 2);      /* full, L2-normalised, small eval batches */
}

static void test_sharded_tables(void **state)
{
    (void)state;
    check_sharded(SASREC, 1);
    check_sharded(SASREC, 2);
    check_sharded(HSTU_SSM, 1);
    check_sharded(HSTU_SSM, 3);
}

/* A sharded 2-rank checkpoint resumes unsharded on 1 rank and sharded on
 * 3 ranks (re-sharding on load). */
static void test_sharded_restart(void **state)
{
    (void)state;
    char p[256];
    tmp_path(p, sizeof p, "shard");
    job ref[1], w[2], r1[1], r3[3];
    run_ranks(0, SASREC, 2, NULL, NULL, ref);
    run_ranks_s(2, SASREC, 1, NULL, p, 1, w);
    run_ranks(0, SASREC, 1, p, NULL, r1);
    run_ranks_s(3, SASREC, 1, p, NULL, 1, r3);
    assert_true(rel(r1[0].loss[0], ref[0].loss[1]) <= 1e-4);
    for (int r = 0; r < 3; r++) assert_true(rel(r3[r].loss[0], ref[0].loss[1]) <= 1e-4);
    remove(p);
    free_jobs(ref, 1); free_jobs(w, 2); free_jobs(r1, 1); free_jobs(r3, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collective_ops),
        cmocka_unit_test(test_one_rank_bit_identical),
        cmocka_unit_test(test_two_ranks_match_one),
        cmocka_unit_test(test_sharded_eval),
        cmocka_unit_test(test_restart_other_rank_count),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_sharded_tables),
        cmocka_unit_test(test_sharded_restart),
        cmocka_unit_test(test_sharded_model_eval),
    };
    return cmocka_run_group_tests_name("dist", tests, NULL, NULL);
}

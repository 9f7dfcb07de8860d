/* Trainer, evaluation protocols, metrics and sessions, through the public
 * API where possible; brute-force references computed here. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"
#include "eval/metrics.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"
#include <unistd.h>

typedef syn_fixture fixture;

static int setup(void **state)
{
    static const char *const kv[][2] = {
        {"data.synthetic_users", "300"}, {"data.synthetic_items", "60"},
        {"data.synthetic_length", "20"}, {"model.max_len", "12"}, {"model.dim", "8"},
        {"model.blocks", "1"}, {"model.heads", "2"}, {"trainer.batch_size", "32"},
        {"trainer.lr", "0.01"}, {"eval.batch_size", "7"},
    };
    *state = syn_fixture_new(kv, sizeof kv / sizeof kv[0]);
    return 0;
}

static int teardown(void **state)
{
    syn_fixture_free(*state);
    return 0;
}

static recsys_model *trained_model(fixture *f, int epochs)
{
    recsys_model *m = NULL;
    recsys_trainer *t = NULL;
    assert_int_equal(recsys_model_new(f->ctx, f->opts, f->ds, &m), RECSYS_OK);
    assert_int_equal(recsys_trainer_new(f->ctx, m, f->ds, f->opts, &t), RECSYS_OK);
    for (int e = 0; e < epochs; e++) assert_int_equal(recsys_trainer_run_epoch(t, NULL), RECSYS_OK);
    recsys_trainer_free(t);
    return m;
}

static double metric(const recsys_metrics *m, const char *name)
{
    double v = NAN;
    assert_int_equal(recsys_metrics_get(m, name, &v), RECSYS_OK);
    return v;
}

/* Ranks 0, 3 and 12 (and a tie-split 1.5) against hand-computed values. */
static void test_rank_metrics(void **state)
{
    (void)state;
    rs_rank_acc acc;
    assert_int_equal(rs_rank_acc_init(NULL, &acc, "1,10"), RECSYS_OK);
    rs_rank_acc_add(&acc, 0);
    rs_rank_acc_add(&acc, 3);
    rs_rank_acc_add(&acc, 12);
    rs_rank_acc_add(&acc, 1.5);
    recsys_metrics *m;
    assert_int_equal(rs_metrics_from_acc(NULL, &acc, &m), RECSYS_OK);
    assert_float_equal(metric(m, "HR@1"), 1.0 / 4, 1e-12);
    assert_float_equal(metric(m, "HR@10"), 3.0 / 4, 1e-12);
    assert_float_equal(metric(m, "NDCG@1"), 1.0 / 4, 1e-12);
    assert_float_equal(metric(m, "NDCG@10"), (1.0 + 1.0 / log2(5.0) + 1.0 / log2(3.5)) / 4, 1e-12);
    assert_float_equal(metric(m, "MRR"), (1.0 + 1.0 / 4 + 1.0 / 13 + 1.0 / 2.5) / 4, 1e-12);
    assert_float_equal(metric(m, "users"), 4, 0);
    double v;
    assert_int_equal(recsys_metrics_get(m, "HR@5", &v), RECSYS_E_NOT_FOUND);
    recsys_metrics_free(m);
    assert_int_equal(rs_rank_acc_init(NULL, &acc, "10,x"), RECSYS_E_INVALID);
    assert_int_equal(rs_rank_acc_init(NULL, &acc, ""), RECSYS_E_INVALID);
}

/* Full ranking equals ranks computed by brute force from session scores. */
static void check_full_ranking(fixture *f, recsys_model *m, int exclude, const char *split)
{
    recsys_opts_set(f->opts, "eval.protocol", "full");
    recsys_opts_set(f->opts, "eval.split", split);
    recsys_opts_set(f->opts, "eval.exclude_history", exclude ? "true" : "false");
    recsys_opts_set(f->opts, "eval.ks", "1,5,10");
    recsys_metrics *res;
    assert_int_equal(recsys_evaluate(f->ctx, m, f->ds, f->opts, &res), RECSYS_OK);

    recsys_session *s;
    assert_int_equal(recsys_session_new(f->ctx, m, &s), RECSYS_OK);
    int32_t n_items = f->ds->n_items;
    float *scores = malloc(sizeof(float) * (size_t)(n_items + 1));
    double hr5 = 0, ndcg10 = 0, mrr = 0;
    int64_t users = 0;
    for (int64_t u = 0; u < f->ds->n_users; u++) {
        if (!rs_user_evaluated(f->ds, u)) continue;
        const int32_t *items;
        size_t n;
        recsys_dataset_user_items(f->ds, u, &items, NULL, &n);
        size_t n_in = (size_t)rs_user_train_len(f->ds, u) + (!strcmp(split, "test") ? 1 : 0);
        assert_int_equal(recsys_session_score(s, items, n_in, scores, (size_t)n_items + 1), RECSYS_OK);
        int32_t target = items[n_in];
        double rank = 0;
        for (int32_t it = 1; it <= n_items; it++) {
            if (it == target) continue;
            int in_hist = 0;
            for (size_t k = 0; k < n_in && exclude; k++) in_hist |= items[k] == it;
            if (in_hist) continue;
            rank += scores[it] > scores[target] ? 1.0 : scores[it] == scores[target] ? 0.5 : 0.0;
        }
        hr5 += rank < 5;
        ndcg10 += rank < 10 ? 1.0 / log2(rank + 2) : 0;
        mrr += 1.0 / (rank + 1);
        users++;
    }
    assert_true(users > 0);
    assert_float_equal(metric(res, "users"), (double)users, 0);
    assert_float_equal(metric(res, "HR@5"), hr5 / users, 1e-9);
    assert_float_equal(metric(res, "NDCG@10"), ndcg10 / users, 1e-6);
    assert_float_equal(metric(res, "MRR"), mrr / users, 1e-6);
    free(scores);
    recsys_session_free(s);
    recsys_metrics_free(res);
}

static void test_full_ranking_brute_force(void **state)
{
    fixture *f = *state;
    recsys_model *m = trained_model(f, 2);
    check_full_ranking(f, m, 1, "test");
    check_full_ranking(f, m, 0, "valid");
    recsys_model_free(m);
}

static void test_sampled_protocol(void **state)
{
    fixture *f = *state;
    recsys_model *m = trained_model(f, 3);
    recsys_opts_set(f->opts, "eval.protocol", "sampled");
    recsys_opts_set(f->opts, "eval.split", "test");
    recsys_opts_set(f->opts, "eval.ks", "10,50");
    recsys_metrics *a, *b, *pop;
    assert_int_equal(recsys_evaluate(f->ctx, m, f->ds, f->opts, &a), RECSYS_OK);
    assert_int_equal(recsys_evaluate(f->ctx, m, f->ds, f->opts, &b), RECSYS_OK);
    assert_int_equal(recsys_evaluate_popularity(f->ctx, f->ds, f->opts, &pop), RECSYS_OK);
    /* same seed, same negatives */
    assert_float_equal(metric(a, "NDCG@10"), metric(b, "NDCG@10"), 0);
    double hr10 = metric(a, "HR@10");
    assert_true(hr10 >= 0 && hr10 <= 1);
    /* a sequential model on sequential data beats popularity */
    assert_true(hr10 > metric(pop, "HR@10"));
    /* with 100 negatives and no model signal HR@10 would be ~ 10/101 */
    assert_true(metric(pop, "HR@50") > metric(pop, "HR@10"));
    recsys_metrics_free(a);
    recsys_metrics_free(b);
    recsys_metrics_free(pop);
    recsys_model_free(m);
}

static void test_topk_matches_sorted_scores(void **state)
{
    fixture *f = *state;
    recsys_model *m = trained_model(f, 1);
    recsys_session *s;
    assert_int_equal(recsys_session_new(f->ctx, m, &s), RECSYS_OK);
    int32_t n_items = f->ds->n_items;
    float *scores = malloc(sizeof(float) * (size_t)(n_items + 1));
    int32_t hist[] = {3, 9, 4, 9, 17};
    assert_int_equal(recsys_session_score(s, hist, 5, scores, (size_t)n_items + 1), RECSYS_OK);
    assert_true(isinf(scores[0]) && scores[0] < 0);
    int32_t top[10];
    float top_s[10];
    assert_int_equal(recsys_session_topk(s, hist, 5, 10, 1, top, top_s), RECSYS_OK);
    for (int i = 0; i < 10; i++) {
        for (int k = 0; k < 5; k++) assert_int_not_equal(top[i], hist[k]);
        assert_float_equal(top_s[i], scores[top[i]], 0);
        if (i) assert_true(top_s[i] <= top_s[i - 1]);
        /* nothing outside the list (and not in the history) scores higher */
        int better = 0;
        for (int32_t it = 1; it <= n_items; it++) {
            int excluded = 0;
            for (int k = 0; k < 5; k++) excluded |= it == hist[k];
            if (!excluded && scores[it] > top_s[i]) better++;
        }
        assert_true(better <= i);
    }
    /* bad input */
    int32_t bad[] = {1, 0};
    assert_int_equal(recsys_session_topk(s, bad, 2, 5, 0, top, top_s), RECSYS_E_NOT_FOUND);
    bad[1] = n_items + 1;
    assert_int_equal(recsys_session_score(s, bad, 2, scores, (size_t)n_items + 1), RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_session_score(s, hist, 5, scores, 3), RECSYS_E_INVALID);
    assert_int_equal(recsys_session_topk(s, hist, 5, 0, 0, top, top_s), RECSYS_E_INVALID);
    /* an empty history is allowed: scores from the position embeddings alone */
    assert_int_equal(recsys_session_topk(s, NULL, 0, 3, 0, top, top_s), RECSYS_OK);
    free(scores);
    recsys_session_free(s);
    recsys_model_free(m);
}

static void params_equal(const recsys_model *a, const recsys_model *b)
{
    assert_int_equal(a->n_params, b->n_params);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
}

static void test_deterministic_and_learning(void **state)
{
    fixture *f = *state;
    recsys_model *a = trained_model(f, 2), *b = trained_model(f, 2);
    params_equal(a, b);
    recsys_model_free(b);
    /* loss falls over epochs */
    recsys_trainer *t;
    assert_int_equal(recsys_trainer_new(f->ctx, a, f->ds, f->opts, &t), RECSYS_OK);
    double first, last = 0;
    assert_int_equal(recsys_trainer_run_epoch(t, &first), RECSYS_OK);
    for (int e = 0; e < 4; e++) assert_int_equal(recsys_trainer_run_epoch(t, &last), RECSYS_OK);
    assert_true(last < first);
    assert_int_equal(recsys_trainer_epoch(t), 5);
    recsys_trainer_free(t);
    recsys_model_free(a);
}

/* Training 3 epochs equals 1 epoch, a checkpoint, a resume and 2 more. */
static void test_checkpoint_resume_is_exact(void **state)
{
    fixture *f = *state;
    char dir[] = "/tmp/recsys_train_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/ck.rsm", dir);
    recsys_model *ref = trained_model(f, 3);

    recsys_model *m;
    recsys_trainer *t;
    assert_int_equal(recsys_model_new(f->ctx, f->opts, f->ds, &m), RECSYS_OK);
    assert_int_equal(recsys_trainer_new(f->ctx, m, f->ds, f->opts, &t), RECSYS_OK);
    assert_int_equal(recsys_trainer_run_epoch(t, NULL), RECSYS_OK);
    assert_int_equal(recsys_trainer_save_checkpoint(t, path), RECSYS_OK);
    recsys_trainer_free(t);
    recsys_model_free(m);

    assert_int_equal(recsys_model_load(f->ctx, path, &m), RECSYS_OK);
    assert_int_equal(recsys_trainer_new(f->ctx, m, f->ds, f->opts, &t), RECSYS_OK);
    assert_int_equal(recsys_trainer_resume(t, path), RECSYS_OK);
    assert_int_equal(recsys_trainer_epoch(t), 1);
    for (int e = 0; e < 2; e++) assert_int_equal(recsys_trainer_run_epoch(t, NULL), RECSYS_OK);
    params_equal(ref, m);
    /* a plain model file has no trainer state */
    assert_int_equal(recsys_model_save(f->ctx, m, path), RECSYS_OK);
    assert_int_equal(recsys_trainer_resume(t, path), RECSYS_E_FORMAT);
    recsys_trainer_free(t);
    recsys_model_free(m);
    recsys_model_free(ref);
    unlink(path);
    rmdir(dir);
}

static void test_sampled_softmax_training(void **state)
{
    fixture *f = *state;
    recsys_opts_set(f->opts, "trainer.loss", "sampled_softmax");
    recsys_opts_set(f->opts, "trainer.negatives", "16");
    recsys_opts_set(f->opts, "model.l2norm", "on");
    for (int shared = 0; shared < 2; shared++) {
        recsys_opts_set(f->opts, "trainer.shared_negatives", shared ? "true" : "false");
        recsys_model *m;
        recsys_trainer *t;
        assert_int_equal(recsys_model_new(f->ctx, f->opts, f->ds, &m), RECSYS_OK);
        assert_int_equal(recsys_trainer_new(f->ctx, m, f->ds, f->opts, &t), RECSYS_OK);
        double first, last = 0;
        assert_int_equal(recsys_trainer_run_epoch(t, &first), RECSYS_OK);
        for (int e = 0; e < 3; e++) assert_int_equal(recsys_trainer_run_epoch(t, &last), RECSYS_OK);
        assert_true(isfinite(first) && last < first);
        recsys_trainer_free(t);
        recsys_model_free(m);
    }
    recsys_opts_set(f->opts, "trainer.loss", "bce");
    recsys_opts_set(f->opts, "model.l2norm", "auto");
}

static void test_api_misuse(void **state)
{
    fixture *f = *state;
    recsys_model *m = NULL;
    recsys_trainer *t = NULL;
    recsys_metrics *res = NULL;
    recsys_session *s = NULL;
    assert_int_equal(recsys_trainer_new(NULL, NULL, NULL, NULL, &t), RECSYS_E_INVALID);
    assert_int_equal(recsys_trainer_new(f->ctx, NULL, f->ds, f->opts, &t), RECSYS_E_INVALID);
    assert_true(strlen(recsys_ctx_errmsg(f->ctx)) > 0);
    assert_int_equal(recsys_trainer_run_epoch(NULL, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_evaluate(f->ctx, NULL, f->ds, f->opts, &res), RECSYS_E_INVALID);
    assert_int_equal(recsys_evaluate_popularity(f->ctx, NULL, f->opts, &res), RECSYS_E_INVALID);
    assert_int_equal(recsys_session_new(f->ctx, NULL, &s), RECSYS_E_INVALID);
    assert_int_equal(recsys_session_score(NULL, NULL, 0, NULL, 0), RECSYS_E_INVALID);
    assert_int_equal(recsys_trainer_set_progress(NULL, NULL, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_trainer_save_checkpoint(NULL, "x"), RECSYS_E_INVALID);
    recsys_trainer_free(NULL);
    recsys_session_free(NULL);
    recsys_metrics_free(NULL);
    assert_int_equal(recsys_metrics_count(NULL), 0);
    assert_null(recsys_metrics_name(NULL, 0));

    /* a model for another catalogue does not fit this dataset */
    recsys_opts_set(f->opts, "data.synthetic_items", "61");
    recsys_dataset *other;
    assert_int_equal(recsys_dataset_synthetic(f->ctx, f->opts, &other), RECSYS_OK);
    recsys_opts_set(f->opts, "data.synthetic_items", "60");
    assert_int_equal(recsys_model_new(f->ctx, f->opts, other, &m), RECSYS_OK);
    if (other->n_items != f->ds->n_items) {
        assert_int_equal(recsys_trainer_new(f->ctx, m, f->ds, f->opts, &t), RECSYS_E_INVALID);
        assert_int_equal(recsys_evaluate(f->ctx, m, f->ds, f->opts, &res), RECSYS_E_INVALID);
    }
    recsys_model_free(m);
    recsys_dataset_free(other);
}

static int stop_after_two(void *user, const recsys_progress *p)
{
    int *calls = user;
    assert_int_equal(p->struct_size, (int)sizeof *p);
    assert_true(p->step >= 1 && p->step <= p->steps);
    assert_true(isfinite(p->loss));
    return ++*calls >= 2;
}

static void test_progress_callback_can_stop(void **state)
{
    fixture *f = *state;
    recsys_model *m;
    recsys_trainer *t;
    assert_int_equal(recsys_model_new(f->ctx, f->opts, f->ds, &m), RECSYS_OK);
    assert_int_equal(recsys_trainer_new(f->ctx, m, f->ds, f->opts, &t), RECSYS_OK);
    int calls = 0;
    recsys_trainer_set_progress(t, stop_after_two, &calls);
    assert_int_equal(recsys_trainer_run_epoch(t, NULL), RECSYS_E_ABORTED);
    assert_int_equal(calls, 2);
    assert_int_equal(recsys_trainer_epoch(t), 0);
    recsys_trainer_free(t);
    recsys_model_free(m);
}

/* The same training on every kernel path gives the same quality (the
 * arithmetic differs in rounding only). */
static void test_isa_paths_agree(void **state)
{
    fixture *f = *state;
    static const char *isas[] = {"scalar", "avx2", "avx512"};
    recsys_opts_set(f->opts, "eval.protocol", "sampled");
    recsys_opts_set(f->opts, "eval.split", "test");
    recsys_opts_set(f->opts, "eval.ks", "10");
    double ndcg[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(recsys_ctx_set_max_isa(f->ctx, isas[i]), RECSYS_OK);
        recsys_model *m = trained_model(f, 4);
        recsys_metrics *res;
        assert_int_equal(recsys_evaluate(f->ctx, m, f->ds, f->opts, &res), RECSYS_OK);
        ndcg[i] = metric(res, "NDCG@10");
        recsys_metrics_free(res);
        recsys_model_free(m);
    }
    assert_int_equal(recsys_ctx_set_max_isa(f->ctx, "best"), RECSYS_OK);
    for (int i = 1; i < 3; i++) assert_true(fabs(ndcg[i] - ndcg[0]) < 0.03);
}

/* bf16 compute mode trains to the quality of fp32 (skipped without
 * AVX-512-BF16). */
static void test_bf16_training(void **state)
{
    fixture *f = *state;
    if (recsys_ctx_set_bf16(f->ctx, 1) == RECSYS_E_UNSUPPORTED) skip();
    recsys_ctx_set_bf16(f->ctx, 0);
    recsys_opts_set(f->opts, "eval.protocol", "sampled");
    recsys_opts_set(f->opts, "eval.split", "test");
    recsys_opts_set(f->opts, "eval.ks", "10");
    double ndcg[2];
    for (int bf16 = 0; bf16 < 2; bf16++) {
        recsys_opts_set(f->opts, "trainer.bf16", bf16 ? "true" : "false");
        recsys_model *m = trained_model(f, 4);
        recsys_metrics *res;
        assert_int_equal(recsys_evaluate(f->ctx, m, f->ds, f->opts, &res), RECSYS_OK);
        ndcg[bf16] = metric(res, "NDCG@10");
        recsys_metrics_free(res);
        recsys_model_free(m);
    }
    recsys_opts_set(f->opts, "trainer.bf16", "false");
    recsys_ctx_set_bf16(f->ctx, 0);
    assert_true(fabs(ndcg[1] - ndcg[0]) < 0.03);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_metrics),
        cmocka_unit_test(test_full_ranking_brute_force),
        cmocka_unit_test(test_sampled_protocol),
        cmocka_unit_test(test_topk_matches_sorted_scores),
        cmocka_unit_test(test_deterministic_and_learning),
        cmocka_unit_test(test_checkpoint_resume_is_exact),
        cmocka_unit_test(test_sampled_softmax_training),
        cmocka_unit_test(test_api_misuse),
        cmocka_unit_test(test_progress_callback_can_stop),
        cmocka_unit_test(test_isa_paths_agree),
        cmocka_unit_test(test_bf16_training),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

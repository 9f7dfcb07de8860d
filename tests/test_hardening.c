/* Regression tests of the hardening issue: no silent wrong answers
 * (non-finite scores, nothing to evaluate, seen items as negatives) and
 * buffers bounded by the data or by resources.max_memory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test_util.h"

typedef syn_fixture fixture;

static int setup(void **state)
{
    static const char *const kv[][2] = {
        {"data.synthetic_users", "50"}, {"data.synthetic_items", "30"},
        {"data.synthetic_length", "10"}, {"model.max_len", "8"}, {"model.dim", "8"},
        {"model.blocks", "1"}, {"eval.negatives", "20"},
    };
    *state = syn_fixture_new(kv, sizeof kv / sizeof kv[0]);
    return 0;
}

static int teardown(void **state)
{
    syn_fixture_free(*state);
    return 0;
}

/* Finite but huge weights (3e38) make every score NaN or infinite: the
 * evaluation used to report HR@1 = 1 (NaN comparisons are false). */
static void test_nonfinite_scores(void **state)
{
    fixture *f = *state;
    recsys_model *m = NULL;
    assert_int_equal(recsys_model_new(f->ctx, f->opts, f->ds, &m), RECSYS_OK);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = 3e38f;
    recsys_metrics *met = (recsys_metrics *)(uintptr_t)1;
    const char *protocols[] = {"sampled", "full"};
    for (int p = 0; p < 2; p++) {
        assert_int_equal(recsys_opts_set(f->opts, "eval.protocol", protocols[p]), RECSYS_OK);
        assert_int_equal(recsys_evaluate(f->ctx, m, f->ds, f->opts, &met), RECSYS_E_NUMERIC);
        assert_null(met);
        assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "NaN or infinity"));
    }
    recsys_session *s = NULL;
    assert_int_equal(recsys_session_new(f->ctx, m, &s), RECSYS_OK);
    int32_t hist[3] = {1, 2, 3}, items[5];
    float scores[31], top[5];
    assert_int_equal(recsys_session_score(s, hist, 3, scores, 31), RECSYS_E_NUMERIC);
    assert_int_equal(recsys_session_topk(s, hist, 3, 5, 1, items, top), RECSYS_E_NUMERIC);
    recsys_session_free(s);
    recsys_model_free(m);
}

/* Data where no user has a held-out target: an error, not metrics of 0 users. */
static void test_nothing_to_evaluate(void **state)
{
    fixture *f = *state;
    int64_t users[] = {1, 1, 1, 2, 2, 3}, items[] = {1, 2, 3, 1, 3, 2};
    recsys_dataset *ds = NULL;
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 6, users, items, NULL, NULL, &ds),
                     RECSYS_OK);
    recsys_metrics *met = NULL;
    assert_int_equal(recsys_evaluate_popularity(f->ctx, ds, f->opts, &met), RECSYS_E_INVALID);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "nothing to evaluate"));
    recsys_dataset_free(ds);
}

/* Sampled negatives come only from unseen items: a 1-item catalogue has
 * none (it used to report MRR 0.286 from the target drawn as a negative). */
static void test_sampled_unseen_only(void **state)
{
    fixture *f = *state;
    int64_t users[] = {1, 1, 1, 1, 2, 2, 2, 2}, items[] = {7, 7, 7, 7, 7, 7, 7, 7};
    recsys_dataset *ds = NULL;
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 8, users, items, NULL, NULL, &ds),
                     RECSYS_OK);
    recsys_metrics *met = NULL;
    assert_int_equal(recsys_opts_set(f->opts, "eval.protocol", "sampled"), RECSYS_OK);
    assert_int_equal(recsys_evaluate_popularity(f->ctx, ds, f->opts, &met), RECSYS_E_INVALID);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "no negatives can be sampled"));
    recsys_dataset_free(ds);
    /* Three items, each user saw two: every negative is the third item, the
     * least popular, so each target ranks first (the draw never picks a
     * seen item even when almost all are seen). */
    int64_t u2[] = {1, 1, 1, 1, 2, 2, 2, 2, 3}, i2[] = {1, 2, 1, 2, 2, 1, 2, 1, 3};
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 9, u2, i2, NULL, NULL, &ds), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->opts, "eval.negatives", "50"), RECSYS_OK);
    assert_int_equal(recsys_evaluate_popularity(f->ctx, ds, f->opts, &met), RECSYS_OK);
    double mrr = 0, users_n = 0;
    assert_int_equal(recsys_metrics_get(met, "MRR", &mrr), RECSYS_OK);
    assert_int_equal(recsys_metrics_get(met, "users", &users_n), RECSYS_OK);
    assert_true(users_n == 2);
    assert_true(mrr == 1.0);
    recsys_metrics_free(met);
    recsys_dataset_free(ds);
}

/* Trainer buffers follow the data: batch_size 10^7 on 50 users allocates
 * for 50 rows; negatives are capped to the catalogue. */
static void test_trainer_sized_by_data(void **state)
{
    fixture *f = *state;
    recsys_model *m = NULL;
    recsys_trainer *t = NULL;
    assert_int_equal(recsys_opts_set(f->opts, "trainer.batch_size", "10000000"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->opts, "trainer.loss", "sampled_softmax"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->opts, "trainer.negatives", "1000000"), RECSYS_OK);
    assert_int_equal(recsys_model_new(f->ctx, f->opts, f->ds, &m), RECSYS_OK);
    double t0 = rs_now();
    assert_int_equal(recsys_trainer_new(f->ctx, m, f->ds, f->opts, &t), RECSYS_OK);
    assert_int_equal(recsys_trainer_run_epoch(t, NULL), RECSYS_OK);
    assert_true(rs_now() - t0 < 10.0);
    recsys_trainer_free(t);
    recsys_model_free(m);
}

/* A configuration over resources.max_memory fails before allocating, with
 * the estimate in the message. */
static void test_max_memory(void **state)
{
    fixture *f = *state;
    recsys_model *m = NULL;
    recsys_trainer *t = NULL;
    assert_int_equal(recsys_opts_set(f->opts, "resources.max_memory", "1000000"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->opts, "model.dim", "4096"), RECSYS_OK);
    assert_int_equal(recsys_model_new(f->ctx, f->opts, f->ds, &m), RECSYS_E_NOMEM);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "MiB (estimate)"));
    assert_int_equal(recsys_opts_set(f->opts, "model.dim", "8"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->opts, "model.max_len", "4096"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->opts, "resources.max_memory", "4000000"), RECSYS_OK);
    assert_int_equal(recsys_model_new(f->ctx, f->opts, f->ds, &m), RECSYS_OK);
    assert_int_equal(recsys_trainer_new(f->ctx, m, f->ds, f->opts, &t), RECSYS_E_NOMEM);
    assert_null(t);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "training"));
    recsys_metrics *met = NULL;
    assert_int_equal(recsys_evaluate(f->ctx, m, f->ds, f->opts, &met), RECSYS_E_NOMEM);
    recsys_model_free(m);
}

/* trainer.checkpoint longer than 1023 bytes is used whole. */
static void test_checkpoint_long_path(void **state)
{
    fixture *f = *state;
    char dir[64] = "/tmp/rs_hard_XXXXXX", path[2048];
    assert_non_null(mkdtemp(dir));
    size_t n = (size_t)snprintf(path, sizeof path, "%s", dir);
    char seg[251];
    memset(seg, 's', 250);
    seg[250] = 0;
    for (int i = 0; i < 5; i++) {
        n += (size_t)snprintf(path + n, sizeof path - n, "/%s", seg);
        assert_int_equal(mkdir(path, 0700), 0);
    }
    snprintf(path + n, sizeof path - n, "/ck.rsm");
    assert_true(strlen(path) > 1100);
    assert_int_equal(recsys_opts_set(f->opts, "trainer.checkpoint", path), RECSYS_OK);
    recsys_model *m = NULL;
    recsys_trainer *t = NULL;
    assert_int_equal(recsys_model_new(f->ctx, f->opts, f->ds, &m), RECSYS_OK);
    assert_int_equal(recsys_trainer_new(f->ctx, m, f->ds, f->opts, &t), RECSYS_OK);
    assert_int_equal(recsys_trainer_run_epoch(t, NULL), RECSYS_OK);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(recsys_trainer_resume(t, path), RECSYS_OK);
    recsys_trainer_free(t);
    recsys_model_free(m);
    unlink(path);
    for (int i = 0; i < 5; i++) {
        *strrchr(path, '/') = 0;
        assert_int_equal(rmdir(path), 0);
    }
    rmdir(dir);
}

/* eval.ks is checked when set (the YAML loader then gives its location),
 * not after training. */
static void test_eval_ks_checked(void **state)
{
    fixture *f = *state;
    assert_int_equal(recsys_opts_set(f->opts, "eval.ks", "1,x"), RECSYS_E_INVALID);
    assert_int_equal(recsys_opts_set(f->opts, "eval.ks", "0"), RECSYS_E_INVALID);
    assert_int_equal(recsys_opts_set(f->opts, "eval.ks", "1, 5,10"), RECSYS_OK);
    const char *yaml = "eval:\n  ks: \"5,,7\"\n";
    assert_int_equal(recsys_opts_load_yaml_string(f->opts, yaml, strlen(yaml), "c.yaml"),
                     RECSYS_E_PARSE);
    int line = 0, col = 0;
    assert_int_equal(recsys_ctx_error_location(f->ctx, NULL, &line, &col), RECSYS_OK);
    assert_int_equal(line, 2);
    assert_int_equal(col, 7);
}

/* libyaml is quadratic in nesting: deep documents are refused quickly. */
static void test_deep_yaml(void **state)
{
    fixture *f = *state;
    size_t n = 100000;
    char *y = malloc(n + 1);
    memset(y, '[', n);
    y[n] = 0;
    double t0 = rs_now();
    assert_int_equal(recsys_opts_load_yaml_string(f->opts, y, n, "deep.yaml"), RECSYS_E_PARSE);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "nested more than"));
    memset(y, ' ', n);
    for (size_t i = 0; i + 2 < n; i += 3) memcpy(y + i, "{a:", 3);
    assert_int_equal(recsys_opts_load_yaml_string(f->opts, y, n, "deep.yaml"), RECSYS_E_PARSE);
    assert_true(rs_now() - t0 < 5.0);
    free(y);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_nonfinite_scores), T(test_nothing_to_evaluate), T(test_sampled_unseen_only),
        T(test_trainer_sized_by_data), T(test_max_memory), T(test_checkpoint_long_path),
        T(test_eval_ks_checked), T(test_deep_yaml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

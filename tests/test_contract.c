/* Behaviour that says what it does: the log callback receives the lines the
 * header promises (kernels, data, model, trainer, suspicious data), a
 * trainer leaves its ctx's threads and bf16 mode alone, and the
 * trainer.eval_every schedule. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MAX 64

typedef struct log_lines {
    int n;
    int level[LOG_MAX];
    char text[LOG_MAX][512];
} log_lines;

static void collect(void *user, int level, const char *message)
{
    log_lines *l = user;
    if (l->n == LOG_MAX) return;
    l->level[l->n] = level;
    snprintf(l->text[l->n], sizeof l->text[0], "%s", message);
    l->n++;
}

/* Index of the first line starting with prefix and containing part, or -1. */
static int find_line(const log_lines *l, const char *prefix, const char *part)
{
    for (int i = 0; i < l->n; i++)
        if (!strncmp(l->text[i], prefix, strlen(prefix)) && strstr(l->text[i], part)) return i;
    return -1;
}

static void dump(const log_lines *l)
{
    for (int i = 0; i < l->n; i++) print_message("log[%d] %s\n", l->level[i], l->text[i]);
}

typedef struct fixture {
    recsys_ctx *ctx;
    recsys_opts *opts;
    log_lines log;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || recsys_ctx_new(&f->ctx) || recsys_opts_new(f->ctx, &f->opts)) return -1;
    recsys_ctx_set_threads(f->ctx, 1);
    recsys_opts_set(f->opts, "data.synthetic_users", "60");
    recsys_opts_set(f->opts, "data.synthetic_items", "30");
    recsys_opts_set(f->opts, "data.synthetic_length", "8");
    recsys_opts_set(f->opts, "model.max_len", "8");
    recsys_opts_set(f->opts, "model.dim", "8");
    recsys_opts_set(f->opts, "model.blocks", "1");
    recsys_opts_set(f->opts, "trainer.batch_size", "16");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    recsys_opts_free(f->opts);
    recsys_ctx_free(f->ctx);
    free(f);
    return 0;
}

static void test_log_lines(void **state)
{
    fixture *f = *state;
    log_lines *l = &f->log;
    assert_int_equal(recsys_ctx_set_log(f->ctx, collect, l), RECSYS_OK);
    /* Installing the callback reports the kernels in use. */
    char kernels[64];
    snprintf(kernels, sizeof kernels, "kernels %s (GEMM %s", recsys_ctx_isa(f->ctx),
             recsys_ctx_kernel_name(f->ctx, RECSYS_KERNEL_GEMM));
    assert_int_equal(find_line(l, "librecsys ", kernels), 0);

    recsys_dataset *ds = NULL;
    assert_int_equal(recsys_dataset_synthetic(f->ctx, f->opts, &ds), RECSYS_OK);
    int i = find_line(l, "data synthetic: 60 users, ", "events, timestamps");
    if (i < 0) dump(l);
    assert_true(i >= 0);
    assert_int_equal(l->level[i], RECSYS_LOG_INFO);

    /* Suspicious data: repeated events, users too short to be evaluated. */
    int64_t users[] = {1, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3};
    int64_t items[] = {5, 5, 6, 7, 8, 5, 6, 6, 7, 7, 8};
    recsys_dataset *small = NULL;
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 11, users, items, NULL, f->opts, &small),
                     RECSYS_OK);
    assert_true(find_line(l, "data arrays: 3 users, 4 items, 11 events", "") >= 0);
    i = find_line(l, "data arrays: 2 repeated events", "");
    if (i < 0) dump(l);
    assert_true(i >= 0);
    assert_int_equal(l->level[i], RECSYS_LOG_WARN);
    i = find_line(l, "data arrays: 1 of 3 users have fewer than 4 events", "not evaluated");
    assert_true(i >= 0);
    assert_int_equal(l->level[i], RECSYS_LOG_WARN);
    recsys_dataset_free(small);

    recsys_model *m = NULL;
    assert_int_equal(recsys_model_new(f->ctx, f->opts, ds, &m), RECSYS_OK);
    int64_t n_params = 0;
    recsys_model_n_params(m, &n_params);
    char want[64];
    snprintf(want, sizeof want, "model: sasrec, %lld parameters", (long long)n_params);
    assert_true(find_line(l, want, "dim 8, 1 blocks") >= 0);

    recsys_trainer *t = NULL;
    assert_int_equal(recsys_trainer_new(f->ctx, m, ds, f->opts, &t), RECSYS_OK);
    assert_true(find_line(l, "trainer: bce loss, adam lr 0.001, batch 16", "kernels") >= 0);

    int before = l->n;
    assert_int_equal(recsys_ctx_set_max_isa(f->ctx, "scalar"), RECSYS_OK);
    assert_true(find_line(l, "ISA cap: kernels scalar", "") >= before);
    assert_int_equal(recsys_ctx_set_max_isa(f->ctx, "best"), RECSYS_OK);

    /* No callback: nothing is called (and nothing breaks). */
    assert_int_equal(recsys_ctx_set_log(f->ctx, NULL, NULL), RECSYS_OK);
    before = l->n;
    recsys_dataset *again = NULL;
    assert_int_equal(recsys_dataset_synthetic(f->ctx, f->opts, &again), RECSYS_OK);
    assert_int_equal(l->n, before);
    recsys_dataset_free(again);
    recsys_trainer_free(t);
    recsys_model_free(m);
    recsys_dataset_free(ds);
}

typedef struct seen_ctx {
    recsys_ctx *ctx;
    int threads, calls;
} seen_ctx;

/* Inside the progress callback the ctx shows the caller's settings. */
static int progress_sees_ctx(void *user, const recsys_progress *p)
{
    (void)p;
    seen_ctx *s = user;
    s->threads = recsys_ctx_threads(s->ctx);
    s->calls++;
    return 0;
}

/* trainer.threads and trainer.bf16 are the trainer's own: the ctx keeps its
 * settings before, during (as callbacks see it) and after training, and the
 * result does not depend on the thread count. */
static void test_trainer_leaves_ctx_alone(void **state)
{
    fixture *f = *state;
    recsys_dataset *ds = NULL;
    assert_int_equal(recsys_dataset_synthetic(f->ctx, f->opts, &ds), RECSYS_OK);
    int bf16_ok = recsys_ctx_set_bf16(f->ctx, 1) == RECSYS_OK;
    recsys_ctx_set_bf16(f->ctx, 0);
    double loss[2];
    for (int run = 0; run < 2; run++) {
        recsys_opts_set(f->opts, "trainer.threads", run ? "3" : "0");
        recsys_model *m = NULL;
        recsys_trainer *t = NULL;
        assert_int_equal(recsys_model_new(f->ctx, f->opts, ds, &m), RECSYS_OK);
        assert_int_equal(recsys_trainer_new(f->ctx, m, ds, f->opts, &t), RECSYS_OK);
        assert_int_equal(recsys_ctx_threads(f->ctx), 1);
        seen_ctx seen = {f->ctx, 0, 0};
        recsys_trainer_set_progress(t, progress_sees_ctx, &seen);
        assert_int_equal(recsys_trainer_run_epoch(t, &loss[run]), RECSYS_OK);
        assert_true(seen.calls > 0);
        assert_int_equal(seen.threads, 1);
        assert_int_equal(recsys_ctx_threads(f->ctx), 1);
        recsys_trainer_free(t);
        recsys_model_free(m);
    }
    assert_true(loss[0] == loss[1]);
    recsys_opts_set(f->opts, "trainer.threads", "0");

    /* trainer.bf16: the trainer trains in bf16, the ctx stays in fp32 mode. */
    recsys_opts_set(f->opts, "trainer.bf16", "true");
    recsys_model *m = NULL;
    recsys_trainer *t = NULL;
    assert_int_equal(recsys_model_new(f->ctx, f->opts, ds, &m), RECSYS_OK);
    recsys_status st = recsys_trainer_new(f->ctx, m, ds, f->opts, &t);
    if (!bf16_ok) {
        assert_int_equal(st, RECSYS_E_UNSUPPORTED);
    } else {
        assert_int_equal(st, RECSYS_OK);
        assert_int_equal(recsys_trainer_run_epoch(t, NULL), RECSYS_OK);
        assert_int_equal(f->ctx->bf16, 0); /* the ctx stays in fp32 mode */
    }
    recsys_trainer_free(t);
    recsys_model_free(m);
    recsys_opts_set(f->opts, "trainer.bf16", "false");
    recsys_dataset_free(ds);
}

static void test_eval_due(void **state)
{
    fixture *f = *state;
    assert_int_equal(recsys_trainer_eval_due(NULL), 0);
    recsys_dataset *ds = NULL;
    assert_int_equal(recsys_dataset_synthetic(f->ctx, f->opts, &ds), RECSYS_OK);
    struct {
        const char *every;
        const char *due; /* after epoch 1..5 of 5 */
    } cases[] = {{"0", "00000"}, {"1", "11111"}, {"2", "01011"}, {"3", "00101"}, {"9", "00001"}};
    recsys_opts_set(f->opts, "trainer.epochs", "5");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        recsys_opts_set(f->opts, "trainer.eval_every", cases[c].every);
        recsys_model *m = NULL;
        recsys_trainer *t = NULL;
        assert_int_equal(recsys_model_new(f->ctx, f->opts, ds, &m), RECSYS_OK);
        assert_int_equal(recsys_trainer_new(f->ctx, m, ds, f->opts, &t), RECSYS_OK);
        assert_int_equal(recsys_trainer_eval_due(t), 0);
        for (int e = 0; e < 5; e++) {
            assert_int_equal(recsys_trainer_run_epoch(t, NULL), RECSYS_OK);
            assert_int_equal(recsys_trainer_eval_due(t), cases[c].due[e] - '0');
        }
        recsys_trainer_free(t);
        recsys_model_free(m);
    }
    recsys_dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trainer_leaves_ctx_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_due, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

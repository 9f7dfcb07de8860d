/* SASRec model: whole-model gradient check, parity with an independent
 * PyTorch implementation (tests/fixtures, tools/gen_sasrec_fixture.py),
 * determinism across thread counts, padding invariance and API misuse. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"
#include "train/loss.h"
#include "models/model.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rs_model_config tiny_config(enum rs_norm norm, float dropout)
{
    rs_model_config c;
    memset(&c, 0, sizeof c);
    c.type = RS_MODEL_SASREC;
    c.n_items = 11;
    c.max_len = 6;
    c.dim = 8;
    c.blocks = 2;
    c.heads = 2;
    c.ffn_dim = 8;
    c.dqk = c.dv = 4;
    c.dropout = dropout;
    c.norm = norm;
    return c;
}

/* A training batch with its own storage. */
typedef struct test_batch {
    rs_batch b;
    int32_t *seq, *pos, *neg;
    int *start;
} test_batch;

static void batch_init(test_batch *t, int B, int L, const int *starts, int n_items, uint64_t seed)
{
    rs_rng rng;
    rs_rng_seed(&rng, seed);
    t->seq = calloc((size_t)B * L, sizeof(int32_t));
    t->pos = calloc((size_t)B * L, sizeof(int32_t));
    t->neg = calloc((size_t)B * L, sizeof(int32_t));
    t->start = malloc(sizeof(int) * (size_t)B);
    for (int r = 0; r < B; r++) {
        t->start[r] = starts ? starts[r] : (int)rs_rng_below(&rng, (uint64_t)L);
        for (int i = t->start[r]; i < L; i++) {
            size_t k = (size_t)r * L + i;
            t->seq[k] = 1 + (int32_t)rs_rng_below(&rng, (uint64_t)n_items);
            t->pos[k] = 1 + (int32_t)rs_rng_below(&rng, (uint64_t)n_items);
            t->neg[k] = 1 + (int32_t)rs_rng_below(&rng, (uint64_t)n_items);
        }
    }
    memset(&t->b, 0, sizeof t->b);
    t->b.B = B;
    t->b.L = L;
    t->b.seq = t->seq;
    t->b.pos = t->pos;
    t->b.neg = t->neg;
    t->b.n_neg = 1;
    t->b.start = t->start;
    t->b.train = 1;
    t->b.seed = 99;
}

static void batch_free(test_batch *t)
{
    free(t->seq);
    free(t->pos);
    free(t->neg);
    free(t->start);
}

/* Forward + BCE loss; with grads != NULL also the full backward into grads
 * (zeroed first). out: B*L*d scratch, dF likewise. */
static double loss_and_grads(recsys_ctx *ctx, recsys_model *m, rs_workspace *ws,
                             const rs_batch *b, float *out, float *dF, float *grads)
{
    const rs_model_config *c = &m->cfg;
    assert_int_equal(m->ops->forward(ctx, c, m->params, ws, b, out), RECSYS_OK);
    double loss = 0.0;
    size_t io = RS_ITEM_TABLE_OFFSET;
    if (grads) memset(grads, 0, sizeof(float) * m->n_params);
    assert_int_equal(rs_loss_bce(ctx, c, m->params + io, b, out, grads ? dF : NULL,
                                 grads ? grads + io : NULL, &loss),
                     RECSYS_OK);
    if (grads)
        assert_int_equal(m->ops->backward(ctx, c, m->params, ws, b, dF, grads), RECSYS_OK);
    return loss;
}

/* ------------------------------------------------ (a) whole-model gradients */

static void grad_check(enum rs_norm norm, float dropout)
{
    recsys_ctx *ctx = new_ctx(2);
    rs_model_config c = tiny_config(norm, dropout);
    rs_rng rng;
    rs_rng_seed(&rng, 5 + (uint64_t)norm);
    recsys_model *m = NULL;
    assert_int_equal(rs_model_create(ctx, &c, &rng, &m), RECSYS_OK);
    /* Move biases and gains off their initial 0 / 1 so every path is live. */
    const char *names[32];
    size_t offs[32], sizes[32];
    int nt = m->ops->tensors(&c, names, offs, sizes);
    assert_true(nt > 0 && nt <= 32);
    for (int t = 0; t < nt; t++)
        if (strstr(names[t], "gamma") || strstr(names[t], "beta") || strstr(names[t], ".b"))
            for (size_t i = 0; i < sizes[t]; i++)
                m->params[offs[t] + i] += (float)(0.3 * rs_rng_normal(&rng));

    int starts[3] = {0, 2, 5};
    test_batch tb;
    batch_init(&tb, 3, c.max_len, starts, c.n_items, 17);
    tb.pos[2] = 0; /* a position without a target */
    rs_workspace *ws = m->ops->ws_new(&c, 3);
    assert_non_null(ws);
    size_t nd = (size_t)3 * c.max_len * c.dim;
    float *out = malloc(sizeof(float) * nd), *dF = malloc(sizeof(float) * nd);
    float *grads = malloc(sizeof(float) * m->n_params);
    loss_and_grads(ctx, m, ws, &tb.b, out, dF, grads);

    /* padding rows are zero; padding embedding rows get no gradient */
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < starts[r] * c.dim; i++) assert_true(out[(size_t)r * c.max_len * c.dim + i] == 0.0f);
    for (int i = 0; i < c.dim; i++) {
        assert_true(grads[offs[0] + (size_t)i] == 0.0f); /* item_emb row 0 */
        assert_true(grads[offs[1] + (size_t)i] == 0.0f); /* pos_emb row 0 */
    }

    /* Central differences in float on a sample of each tensor's entries
     * (those with a non-negligible gradient, plus a few arbitrary ones). */
    const double h = 4e-3;
    for (int t = 0; t < nt; t++) {
        double num2 = 0.0, err2 = 0.0;
        int checked = 0;
        for (size_t i = 0; i < sizes[t] && checked < 10; i += 1 + sizes[t] / 23) {
            size_t k = offs[t] + i;
            if ((t == 0 || t == 1) && i < (size_t)c.dim) continue; /* padding rows */
            float save = m->params[k];
            m->params[k] = save + (float)h;
            double lp = loss_and_grads(ctx, m, ws, &tb.b, out, dF, NULL);
            m->params[k] = save - (float)h;
            double lm = loss_and_grads(ctx, m, ws, &tb.b, out, dF, NULL);
            m->params[k] = save;
            double num = (lp - lm) / (2 * h);
            num2 += num * num;
            err2 += (num - grads[k]) * (num - grads[k]);
            checked++;
        }
        if (sqrt(err2) > 3e-2 * sqrt(num2) + 2e-4)
            fail_msg("norm %d dropout %.2f tensor %s: |fd - analytic| = %.3g, |fd| = %.3g", norm,
                     dropout, names[t], sqrt(err2), sqrt(num2));
    }
    free(out);
    free(dF);
    free(grads);
    m->ops->ws_free(ws);
    batch_free(&tb);
    recsys_model_free(m);
    recsys_ctx_free(ctx);
}

static void test_gradients(void **state)
{
    (void)state;
    for (int n = 0; n < 3; n++) {
        grad_check((enum rs_norm)n, 0.0f);
        grad_check((enum rs_norm)n, 0.3f);
    }
}

/* ---------------------------------------------------- (b) PyTorch parity */

typedef struct fixture {
    char norm[16], positions[16];
    int n_items, max_len, dim, blocks, heads, ffn_dim, batch, n_neg;
    double *params, *hidden, *grads, *loss;
    int32_t *seq, *pos, *neg;
    int32_t *start;
    size_t n_params, n_hidden, n_grads, n_loss, n_seq, n_pos, n_neg_ids, n_start;
} fixture;

static void read_doubles(FILE *f, double **out, size_t *n)
{
    unsigned long cnt = 0;
    assert_int_equal(fscanf(f, "%lu", &cnt), 1);
    *n = cnt;
    *out = malloc(sizeof(double) * (cnt ? cnt : 1));
    for (size_t i = 0; i < cnt; i++) assert_int_equal(fscanf(f, "%lf", &(*out)[i]), 1);
}

static void read_ints(FILE *f, int32_t **out, size_t *n)
{
    unsigned long cnt = 0;
    assert_int_equal(fscanf(f, "%lu", &cnt), 1);
    *n = cnt;
    *out = malloc(sizeof(int32_t) * (cnt ? cnt : 1));
    for (size_t i = 0; i < cnt; i++) assert_int_equal(fscanf(f, "%d", &(*out)[i]), 1);
}

static int load_fixture(const char *name, fixture *fx)
{
    char path[1024], tok[64];
    snprintf(path, sizeof path, "%s/tests/fixtures/sasrec_%s.txt", RS_SOURCE_ROOT, name);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    memset(fx, 0, sizeof *fx);
    while (fscanf(f, "%63s", tok) == 1) {
        if (tok[0] == '#') {
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n') {}
        } else if (!strcmp(tok, "norm")) assert_int_equal(fscanf(f, "%15s", fx->norm), 1);
        else if (!strcmp(tok, "positions")) assert_int_equal(fscanf(f, "%15s", fx->positions), 1);
        else if (!strcmp(tok, "n_items")) assert_int_equal(fscanf(f, "%d", &fx->n_items), 1);
        else if (!strcmp(tok, "max_len")) assert_int_equal(fscanf(f, "%d", &fx->max_len), 1);
        else if (!strcmp(tok, "dim")) assert_int_equal(fscanf(f, "%d", &fx->dim), 1);
        else if (!strcmp(tok, "blocks")) assert_int_equal(fscanf(f, "%d", &fx->blocks), 1);
        else if (!strcmp(tok, "heads")) assert_int_equal(fscanf(f, "%d", &fx->heads), 1);
        else if (!strcmp(tok, "ffn_dim")) assert_int_equal(fscanf(f, "%d", &fx->ffn_dim), 1);
        else if (!strcmp(tok, "batch")) assert_int_equal(fscanf(f, "%d", &fx->batch), 1);
        else if (!strcmp(tok, "n_neg")) assert_int_equal(fscanf(f, "%d", &fx->n_neg), 1);
        else if (!strcmp(tok, "params")) read_doubles(f, &fx->params, &fx->n_params);
        else if (!strcmp(tok, "hidden")) read_doubles(f, &fx->hidden, &fx->n_hidden);
        else if (!strcmp(tok, "grads")) read_doubles(f, &fx->grads, &fx->n_grads);
        else if (!strcmp(tok, "loss")) read_doubles(f, &fx->loss, &fx->n_loss);
        else if (!strcmp(tok, "seq")) read_ints(f, &fx->seq, &fx->n_seq);
        else if (!strcmp(tok, "pos")) read_ints(f, &fx->pos, &fx->n_pos);
        else if (!strcmp(tok, "neg")) read_ints(f, &fx->neg, &fx->n_neg_ids);
        else if (!strcmp(tok, "start")) read_ints(f, &fx->start, &fx->n_start);
        else fail_msg("fixture %s: unknown section '%s'", path, tok);
    }
    fclose(f);
    return 1;
}

static void fixture_free(fixture *fx)
{
    free(fx->params); free(fx->hidden); free(fx->grads); free(fx->loss);
    free(fx->seq); free(fx->pos); free(fx->neg); free(fx->start);
}

/* name: the fixture, sasrec_<name>.txt; positions "end" or "start". */
static void parity(const char *name, enum rs_norm norm, const char *positions)
{
    fixture fx;
    if (!load_fixture(name, &fx)) skip();
    const char *norm_name = name;
    assert_true(!strncmp(fx.norm, name, strlen(fx.norm)));
    assert_string_equal(fx.positions, positions);
    recsys_ctx *ctx = new_ctx(2);
    rs_model_config c;
    memset(&c, 0, sizeof c);
    c.type = RS_MODEL_SASREC;
    c.n_items = fx.n_items;
    c.max_len = fx.max_len;
    c.dim = fx.dim;
    c.blocks = fx.blocks;
    c.heads = fx.heads;
    c.ffn_dim = fx.ffn_dim;
    c.norm = norm;
    c.pos_from_start = !strcmp(positions, "start");
    recsys_model *m = NULL;
    assert_int_equal(rs_model_create(ctx, &c, NULL, &m), RECSYS_OK);
    assert_int_equal(m->n_params, fx.n_params);
    assert_int_equal(fx.n_grads, fx.n_params);

    /* The fixture lists the tensors in our order and layout; check the
     * directory agrees with the shapes the generator used, then load. */
    static const char *expect[] = {"item_emb", "pos_emb", "attn_ln.gamma", "attn_ln.beta",
                                   "attn.w_in", "attn.b_in", "attn.w_out", "attn.b_out",
                                   "ffn_ln.gamma", "ffn_ln.beta", "ffn.w1", "ffn.b1", "ffn.w2",
                                   "ffn.b2", "final_ln.gamma", "final_ln.beta"};
    size_t d = (size_t)c.dim, F = (size_t)c.ffn_dim, nb = (size_t)c.blocks;
    size_t expect_size[] = {(c.n_items + 1) * d, (c.max_len + 1) * d, nb * d, nb * d,
                            nb * 3 * d * d, nb * 3 * d, nb * d * d, nb * d, nb * d, nb * d,
                            nb * F * d, nb * F, nb * d * F, nb * d, d, d};
    const char *names[16];
    size_t offs[16], sizes[16];
    assert_int_equal(m->ops->tensors(&c, NULL, NULL, NULL), 16);
    m->ops->tensors(&c, names, offs, sizes);
    size_t total = 0;
    for (int t = 0; t < 16; t++) {
        assert_string_equal(names[t], expect[t]);
        assert_int_equal(sizes[t], expect_size[t]);
        assert_int_equal(offs[t], total);
        for (size_t i = 0; i < sizes[t]; i++) m->params[offs[t] + i] = (float)fx.params[offs[t] + i];
        total += sizes[t];
    }
    assert_int_equal(total, m->n_params);

    rs_batch b;
    memset(&b, 0, sizeof b);
    b.B = fx.batch;
    b.L = fx.max_len;
    b.seq = fx.seq;
    b.pos = fx.pos;
    b.neg = fx.neg;
    b.n_neg = fx.n_neg;
    b.start = (const int *)fx.start;
    b.train = 1;
    b.seed = 1;
    rs_workspace *ws = m->ops->ws_new(&c, b.B);
    size_t nd = (size_t)b.B * b.L * d;
    assert_int_equal(fx.n_hidden, nd);
    float *out = malloc(sizeof(float) * nd), *dF = malloc(sizeof(float) * nd);
    float *grads = malloc(sizeof(float) * m->n_params);
    double loss = loss_and_grads(ctx, m, ws, &b, out, dF, grads);

    double max_err = 0.0;
    for (size_t i = 0; i < nd; i++) {
        double e = fabs(out[i] - fx.hidden[i]) / (1.0 + fabs(fx.hidden[i]));
        if (e > max_err) max_err = e;
        if (fx.hidden[i] == 0.0) assert_true(out[i] == 0.0f); /* padding rows */
    }
    if (max_err > 1e-5) fail_msg("%s: hidden states differ from PyTorch by %.3g", norm_name, max_err);
    if (fabs(loss - fx.loss[0]) > 1e-5 * fabs(fx.loss[0]))
        fail_msg("%s: loss %.9g, PyTorch %.9g", norm_name, loss, fx.loss[0]);
    for (int t = 0; t < 16; t++) {
        double gmax = 0.0, emax = 0.0;
        for (size_t i = 0; i < sizes[t]; i++) {
            double g = fx.grads[offs[t] + i], e = fabs(grads[offs[t] + i] - g);
            if (fabs(g) > gmax) gmax = fabs(g);
            if (e > emax) emax = e;
        }
        if (emax > 1e-4 * gmax + 1e-7)
            fail_msg("%s: gradient of %s differs from PyTorch autograd by %.3g (max |g| %.3g)",
                     norm_name, names[t], emax, gmax);
    }
    free(out);
    free(dF);
    free(grads);
    m->ops->ws_free(ws);
    recsys_model_free(m);
    fixture_free(&fx);
    recsys_ctx_free(ctx);
}

static void test_parity_original(void **state) { (void)state; parity("original", RS_NORM_ORIGINAL, "end"); }
static void test_parity_post(void **state) { (void)state; parity("post", RS_NORM_POST, "end"); }
static void test_parity_pre(void **state) { (void)state; parity("pre", RS_NORM_PRE, "end"); }
/* model.positions = start: positions 1, 2, ... from each row's first item */
static void test_parity_positions_start(void **state)
{
    (void)state;
    parity("original_start", RS_NORM_ORIGINAL, "start");
}

/* ---------------------------------------------------- (c) determinism */

/* Outputs and gradients of one step of a mid-sized model with the given
 * thread count. With `many_rows`, 1632 non-pad rows: weight-gradient GEMMs
 * then have K >> M, N, the shape rs_gemm may split over K; otherwise 820. */
static void one_step(int threads, enum rs_norm norm, int many_rows, float **out_keep,
                     float **grads_keep, size_t *n_out, size_t *n_grads)
{
    recsys_ctx *ctx = new_ctx(threads);
    rs_model_config c = tiny_config(norm, 0.3f);
    c.n_items = 300;
    c.max_len = 40;
    c.dim = 32;
    c.ffn_dim = 48;
    rs_rng rng;
    rs_rng_seed(&rng, 11);
    recsys_model *m = NULL;
    assert_int_equal(rs_model_create(ctx, &c, &rng, &m), RECSYS_OK);
    test_batch tb;
    int B = many_rows ? 48 : 40, starts[48];
    for (int r = 0; r < B; r++) starts[r] = many_rows ? (r * 7) % 12 : (r * 7) % 40;
    batch_init(&tb, B, c.max_len, starts, c.n_items, 23);
    rs_workspace *ws = m->ops->ws_new(&c, B);
    size_t nd = (size_t)B * c.max_len * c.dim;
    float *out = malloc(sizeof(float) * nd), *dF = malloc(sizeof(float) * nd);
    float *grads = malloc(sizeof(float) * m->n_params);
    loss_and_grads(ctx, m, ws, &tb.b, out, dF, grads);
    *out_keep = out;
    *grads_keep = grads;
    *n_out = nd;
    *n_grads = m->n_params;
    free(dF);
    m->ops->ws_free(ws);
    batch_free(&tb);
    recsys_model_free(m);
    recsys_ctx_free(ctx);
}

/* Name of the first tensor whose gradient bits differ, or NULL. */
static const char *first_difference(enum rs_norm norm, const float *g1, const float *g2)
{
    rs_model_config c = tiny_config(norm, 0.3f);
    c.n_items = 300;
    c.max_len = 40;
    c.dim = 32;
    c.ffn_dim = 48;
    const char *names[16];
    size_t offs[16], sizes[16];
    int nt = rs_sasrec_ops.tensors(&c, names, offs, sizes);
    for (int t = 0; t < nt; t++)
        if (memcmp(g1 + offs[t], g2 + offs[t], sizeof(float) * sizes[t])) return names[t];
    return NULL;
}

static void determinism(int many_rows)
{
    for (int n = 0; n < 3; n++) {
        float *o1, *g1, *o2, *g2, *o3, *g3;
        size_t no, ng;
        one_step(1, (enum rs_norm)n, many_rows, &o1, &g1, &no, &ng);
        one_step(2, (enum rs_norm)n, many_rows, &o2, &g2, &no, &ng);
        one_step(2, (enum rs_norm)n, many_rows, &o3, &g3, &no, &ng);
        int same_out = !memcmp(o1, o2, sizeof(float) * no) && !memcmp(o2, o3, sizeof(float) * no);
        const char *t12 = first_difference((enum rs_norm)n, g1, g2);
        const char *t23 = first_difference((enum rs_norm)n, g2, g3);
        free(o1); free(g1); free(o2); free(g2); free(o3); free(g3);
        if (!same_out) fail_msg("norm %d: hidden states depend on the thread count", n);
        if (t12 || t23)
            fail_msg("norm %d: gradient of %s differs between %s. Weight gradients are single "
                     "rs_gemm calls (dyT x); rs_gemm's K split must reduce its partial sums in "
                     "a fixed order for this to hold", n, t12 ? t12 : t23,
                     t12 ? "1 and 2 threads" : "two runs with 2 threads");
    }
}

static void test_determinism(void **state)
{
    (void)state;
    determinism(0);
}

static void test_determinism_large(void **state)
{
    (void)state;
    determinism(1);
}

/* ----------------------------------------------- padding and inference */

static void test_padding_and_inference(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(2);
    rs_model_config c = tiny_config(RS_NORM_ORIGINAL, 0.0f);
    rs_rng rng;
    rs_rng_seed(&rng, 3);
    recsys_model *m = NULL;
    assert_int_equal(rs_model_create(ctx, &c, &rng, &m), RECSYS_OK);
    int starts[3] = {1, 3, 6};
    test_batch tb;
    batch_init(&tb, 3, c.max_len, starts, c.n_items, 8);
    rs_workspace *ws = m->ops->ws_new(&c, 4);
    size_t row = (size_t)c.max_len * c.dim, nd = 3 * row;
    float *a = malloc(sizeof(float) * nd), *bb = malloc(sizeof(float) * nd);
    assert_int_equal(m->ops->forward(ctx, &c, m->params, ws, &tb.b, a), RECSYS_OK);
    /* whatever sits before start is ignored */
    tb.seq[0] = 5;
    tb.seq[(size_t)c.max_len + 1] = 7;
    tb.b.train = 0; /* inference: same result without dropout */
    for (int i = 0; i < (int)nd; i++) bb[i] = NAN;
    assert_int_equal(m->ops->forward(ctx, &c, m->params, ws, &tb.b, bb), RECSYS_OK);
    assert_memory_equal(a, bb, sizeof(float) * nd);
    /* the empty row (start = L) is all zeros */
    for (size_t i = 0; i < row; i++) assert_true(bb[2 * row + i] == 0.0f);
    /* a row alone gives the same hidden states as inside a batch */
    rs_batch one = tb.b;
    one.B = 1;
    one.seq = tb.seq + c.max_len;
    one.start = tb.start + 1;
    assert_int_equal(m->ops->forward(ctx, &c, m->params, ws, &one, bb), RECSYS_OK);
    for (size_t i = 0; i < row; i++) assert_true(fabsf(bb[i] - a[row + i]) <= 1e-6f);
    /* backward needs a training forward */
    float *g = calloc(m->n_params, sizeof(float));
    assert_int_equal(m->ops->backward(ctx, &c, m->params, ws, &one, a, g), RECSYS_E_STATE);
    /* bad batches are rejected with a message */
    tb.b.train = 1;
    tb.seq[(size_t)c.max_len + 4] = (int32_t)c.n_items + 1;
    assert_int_equal(m->ops->forward(ctx, &c, m->params, ws, &tb.b, a), RECSYS_E_INVALID);
    assert_non_null(strstr(recsys_ctx_errmsg(ctx), "not in 1..11"));
    rs_batch big = tb.b;
    big.B = 5;
    assert_int_equal(m->ops->forward(ctx, &c, m->params, ws, &big, a), RECSYS_E_INVALID);
    free(a);
    free(bb);
    free(g);
    m->ops->ws_free(ws);
    batch_free(&tb);
    recsys_model_free(m);
    recsys_ctx_free(ctx);
}

/* ------------------------------------------------------------ (d) API */

static void test_api(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    recsys_opts *o = NULL;
    assert_int_equal(recsys_opts_new(ctx, &o), RECSYS_OK);
    struct recsys_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n_items = 11;
    recsys_model *m = (recsys_model *)&ds; /* must be overwritten with NULL */
    assert_int_equal(recsys_model_new(ctx, o, NULL, &m), RECSYS_E_INVALID);
    assert_null(m);
    assert_int_equal(recsys_model_new(ctx, o, &ds, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_model_new(NULL, o, NULL, &m), RECSYS_E_INVALID);

    assert_int_equal(recsys_opts_set_int(o, "model.dim", 10), RECSYS_OK);
    assert_int_equal(recsys_opts_set_int(o, "model.heads", 3), RECSYS_OK);
    assert_int_equal(recsys_model_new(ctx, o, &ds, &m), RECSYS_E_INVALID);
    assert_null(m);
    assert_non_null(strstr(recsys_ctx_errmsg(ctx), "divisible"));
    ds.n_items = 0;
    assert_int_equal(recsys_opts_set_int(o, "model.heads", 2), RECSYS_OK);
    assert_int_equal(recsys_model_new(ctx, o, &ds, &m), RECSYS_E_INVALID);
    ds.n_items = 11;

    /* a valid model: size, config keys, references */
    assert_int_equal(recsys_opts_set_int(o, "model.max_len", 6), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "model.norm", "pre"), RECSYS_OK);
    assert_int_equal(recsys_opts_set_float(o, "model.dropout", 0.2), RECSYS_OK);
    assert_int_equal(recsys_model_new(ctx, o, &ds, &m), RECSYS_OK);
    int64_t n = 0;
    assert_int_equal(recsys_model_n_params(m, &n), RECSYS_OK);
    /* items 12x10, positions 7x10, per block 2*10 + 300+30 + 100+10 + 2*10 +
     * 100+10 + 100+10 (ffn_dim defaults to d), final LN 20 */
    assert_int_equal(n, 120 + 70 + 2 * (20 + 330 + 110 + 20 + 110 + 110) + 20);
    assert_int_equal(recsys_model_n_params(NULL, &n), RECSYS_E_INVALID);
    const char *v = NULL;
    assert_int_equal(recsys_model_get(m, "model.dim", &v), RECSYS_OK);
    assert_string_equal(v, "10");
    assert_int_equal(recsys_model_get(m, "model.norm", &v), RECSYS_OK);
    assert_string_equal(v, "pre");
    assert_int_equal(recsys_model_get(m, "model.dropout", &v), RECSYS_OK);
    assert_string_equal(v, "0.2");
    assert_int_equal(recsys_model_get(m, "model.ffn_dim", &v), RECSYS_OK);
    assert_string_equal(v, "10");
    assert_int_equal(recsys_model_get(m, "model.type", &v), RECSYS_OK);
    assert_string_equal(v, "sasrec");
    assert_int_equal(recsys_model_get(m, "trainer.lr", &v), RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_model_get(m, "model.nope", &v), RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_model_get(NULL, "model.dim", &v), RECSYS_E_INVALID);

    /* init: padding rows zero, LN gains one, biases zero, weights random */
    const char *names[16];
    size_t offs[16], sizes[16];
    m->ops->tensors(&m->cfg, names, offs, sizes);
    for (int i = 0; i < 10; i++) {
        assert_true(m->params[offs[0] + (size_t)i] == 0.0f);
        assert_true(m->params[offs[1] + (size_t)i] == 0.0f);
        assert_true(m->params[offs[2] + (size_t)i] == 1.0f);
        assert_true(m->params[offs[5] + (size_t)i] == 0.0f);
    }
    double ss = 0.0;
    for (size_t i = 0; i < sizes[4]; i++) ss += (double)m->params[offs[4] + i] * m->params[offs[4] + i];
    double sd = sqrt(ss / (double)sizes[4]); /* Xavier: sqrt(2 / (10 + 10)) */
    assert_true(fabs(sd - sqrt(0.1)) < 0.05);

    /* the same seed gives the same weights */
    recsys_model *m2 = NULL;
    assert_int_equal(recsys_model_new(ctx, o, &ds, &m2), RECSYS_OK);
    assert_memory_equal(m->params, m2->params, sizeof(float) * m->n_params);
    recsys_model_free(m2);

    /* reference counting: freed when the last reference goes */
    rs_model_ref(m);
    recsys_model_free(m);
    assert_int_equal(atomic_load(&m->refs), 1);
    recsys_model_free(m);
    recsys_model_free(NULL);
    recsys_opts_free(o);
    recsys_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_parity_original),
        cmocka_unit_test(test_parity_post),
        cmocka_unit_test(test_parity_pre),
        cmocka_unit_test(test_parity_positions_start),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_determinism_large),
        cmocka_unit_test(test_padding_and_inference),
        cmocka_unit_test(test_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Layer backward passes (lib/nn, lib/train/loss.c) against central finite
 * differences of small double-precision reference forwards written here,
 * independently of the library. Awkward sizes on purpose. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"
#include "train/loss.h"
#include "models/model.h"
#include "nn/nn.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ linear */

typedef struct lin_state {
    int n, in, out, ldx;
    double *x, *W, *b, *R;
} lin_state;

static double lin_loss(void *sv)
{
    lin_state *s = sv;
    double L = 0.0;
    for (int i = 0; i < s->n; i++)
        for (int o = 0; o < s->out; o++) {
            double y = s->b[o];
            for (int k = 0; k < s->in; k++) y += s->x[(size_t)i * s->ldx + k] * s->W[(size_t)o * s->in + k];
            L += y * s->R[(size_t)i * s->out + o];
        }
    return L;
}

static void test_linear(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(2);
    rs_rng rng;
    rs_rng_seed(&rng, 1);
    /* n > RS_NN_CHUNK_ROWS so the bias gradient is reduced over chunks. */
    int n = 150, in = 5, out = 3, ldx = 7, lddx = 6;
    float *x = calloc((size_t)n * ldx, sizeof(float)), *W = malloc(sizeof(float) * out * in),
          *b = malloc(sizeof(float) * out), *R = malloc(sizeof(float) * (size_t)n * out);
    float *y = malloc(sizeof(float) * (size_t)n * 4);
    fill_sym(&rng, x, (size_t)n * ldx, 1.0);
    fill_sym(&rng, W, (size_t)out * in, 1.0);
    fill_sym(&rng, b, (size_t)out, 1.0);
    fill_sym(&rng, R, (size_t)n * out, 1.0);
    lin_state s = {n, in, out, ldx, to_double(x, (size_t)n * ldx), to_double(W, (size_t)out * in),
                   to_double(b, out), to_double(R, (size_t)n * out)};

    /* forward, output with a row stride of 4 */
    rs_linear_fwd(ctx, n, in, out, x, ldx, W, b, y, 4);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double ref = s.b[o];
            for (int k = 0; k < in; k++) ref += s.x[(size_t)i * ldx + k] * s.W[(size_t)o * in + k];
            assert_true(fabs(y[(size_t)i * 4 + o] - ref) < 1e-5);
        }

    /* backward with dy = R; dx accumulates onto ones */
    float *dx = malloc(sizeof(float) * (size_t)n * lddx), *dW = calloc((size_t)out * in, sizeof(float)),
          *db = calloc((size_t)out, sizeof(float));
    float *partial = malloc(sizeof(float) * rs_nn_partial_floats(n, out));
    for (int i = 0; i < n * lddx; i++) dx[i] = 1.0f;
    rs_linear_bwd(ctx, n, in, out, x, ldx, W, R, out, dx, lddx, 1, dW, db, partial);

    double *g = malloc(sizeof(double) * (size_t)n * ldx);
    numeric_grad(lin_loss, &s, s.W, (size_t)out * in, g);
    expect_close("linear dW", dW, g, (size_t)out * in, 1e-5);
    numeric_grad(lin_loss, &s, s.b, (size_t)out, g);
    expect_close("linear db", db, g, (size_t)out, 1e-5);
    numeric_grad(lin_loss, &s, s.x, (size_t)n * ldx, g);
    float *dxa = malloc(sizeof(float) * (size_t)n * in);
    double *gx = malloc(sizeof(double) * (size_t)n * in);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < in; k++) {
            dxa[i * in + k] = dx[(size_t)i * lddx + k] - 1.0f;
            gx[i * in + k] = g[(size_t)i * ldx + k];
        }
    expect_close("linear dx", dxa, gx, (size_t)n * in, 1e-5);
    /* the column past `in` in dx's stride is untouched */
    for (int i = 0; i < n; i++) assert_true(dx[(size_t)i * lddx + in] == 1.0f);

    free(x); free(W); free(b); free(R); free(y); free(dx); free(dW); free(db); free(partial);
    free(g); free(dxa); free(gx);
    free(s.x); free(s.W); free(s.b); free(s.R);
    recsys_ctx_free(ctx);
}

/* --------------------------------------------------------------- embedding */

static void test_embedding(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(2);
    rs_rng rng;
    rs_rng_seed(&rng, 2);
    int rows = 6, d = 37, n = 90; /* d > 16: several column blocks */
    float *table = malloc(sizeof(float) * rows * d), *y = malloc(sizeof(float) * n * d);
    float *dy = malloc(sizeof(float) * n * d), *dt = calloc((size_t)rows * d, sizeof(float));
    int32_t *ids = malloc(sizeof(int32_t) * n);
    fill_sym(&rng, table, (size_t)rows * d, 1.0);
    fill_sym(&rng, dy, (size_t)n * d, 1.0);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((i * 7) % rows); /* many repeats */
    for (int i = 0; i < n * d; i++) y[i] = 0.5f;
    rs_embed_fwd(ctx, n, d, table, ids, 2.0f, 1, y);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < d; c++)
            assert_true(fabsf(y[i * d + c] - (0.5f + 2.0f * table[ids[i] * d + c])) < 1e-6f);
    ids[3] = -1; /* skipped in the backward */
    rs_embed_bwd(ctx, n, d, ids, 2.0f, dy, dt);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < d; c++) {
            double ref = 0.0;
            for (int i = 0; i < n; i++)
                if (ids[i] == r) ref += 2.0 * dy[i * d + c];
            assert_true(fabs(dt[r * d + c] - ref) < 1e-5);
        }
    free(table); free(y); free(dy); free(dt); free(ids);
    recsys_ctx_free(ctx);
}

/* -------------------------------------------------------------- layer norm */

typedef struct ln_state {
    int n, d, has_r, affine;
    double eps;
    double *x, *r, *g, *b, *R;
} ln_state;

static double ln_loss(void *sv)
{
    ln_state *s = sv;
    double L = 0.0;
    for (int i = 0; i < s->n; i++) {
        double z[16], mu = 0.0, var = 0.0;
        for (int c = 0; c < s->d; c++) {
            z[c] = s->x[i * s->d + c] + (s->has_r ? s->r[i * s->d + c] : 0.0);
            mu += z[c];
        }
        mu /= s->d;
        for (int c = 0; c < s->d; c++) var += (z[c] - mu) * (z[c] - mu);
        var /= s->d;
        for (int c = 0; c < s->d; c++) {
            double y = (z[c] - mu) / sqrt(var + s->eps);
            if (s->affine) y = y * s->g[c] + s->b[c];
            L += y * s->R[i * s->d + c];
        }
    }
    return L;
}

static void run_layernorm(int has_r, int affine)
{
    recsys_ctx *ctx = new_ctx(2);
    rs_rng rng;
    rs_rng_seed(&rng, 3 + has_r + 2 * affine);
    int n = 150, d = 5;
    size_t nd = (size_t)n * d;
    float *x = malloc(sizeof(float) * nd), *r = malloc(sizeof(float) * nd),
          *g = malloc(sizeof(float) * d), *b = malloc(sizeof(float) * d),
          *R = malloc(sizeof(float) * nd), *y = malloc(sizeof(float) * nd),
          *mean = malloc(sizeof(float) * n), *rstd = malloc(sizeof(float) * n),
          *dx = malloc(sizeof(float) * nd), *dg = calloc(d, sizeof(float)),
          *db = calloc(d, sizeof(float)),
          *partial = malloc(sizeof(float) * rs_nn_partial_floats(n, 2 * d));
    fill_sym(&rng, x, nd, 2.0);
    fill_sym(&rng, r, nd, 1.0);
    fill_sym(&rng, g, d, 1.5);
    fill_sym(&rng, b, d, 1.0);
    fill_sym(&rng, R, nd, 1.0);
    ln_state s = {n, d, has_r, affine, 1e-8, to_double(x, nd), to_double(r, nd), to_double(g, d),
                  to_double(b, d), to_double(R, nd)};
    rs_layernorm_fwd(ctx, n, d, x, has_r ? r : NULL, affine ? g : NULL, affine ? b : NULL, 1e-8f,
                     y, mean, rstd);
    double L = 0.0;
    for (size_t i = 0; i < nd; i++) L += (double)y[i] * s.R[i];
    assert_true(fabs(L - ln_loss(&s)) < 1e-4 * fabs(L) + 1e-4);
    rs_layernorm_bwd(ctx, n, d, x, has_r ? r : NULL, affine ? g : NULL, mean, rstd, R, dx,
                     affine ? dg : NULL, affine ? db : NULL, partial);
    double *num = malloc(sizeof(double) * nd);
    numeric_grad(ln_loss, &s, s.x, nd, num);
    expect_close("layernorm dx", dx, num, nd, 1e-4);
    if (has_r) {
        numeric_grad(ln_loss, &s, s.r, nd, num);
        expect_close("layernorm dr", dx, num, nd, 1e-4);
    }
    if (affine) {
        numeric_grad(ln_loss, &s, s.g, d, num);
        expect_close("layernorm dgamma", dg, num, d, 1e-4);
        numeric_grad(ln_loss, &s, s.b, d, num);
        expect_close("layernorm dbeta", db, num, d, 1e-4);
    }
    free(x); free(r); free(g); free(b); free(R); free(y); free(mean); free(rstd); free(dx);
    free(dg); free(db); free(partial); free(num);
    free(s.x); free(s.r); free(s.g); free(s.b); free(s.R);
    recsys_ctx_free(ctx);
}

static void test_layernorm(void **state)
{
    (void)state;
    run_layernorm(1, 1);
    run_layernorm(0, 1);
    run_layernorm(1, 0);
}

/* --------------------------------------------------------------- attention */

typedef struct att_state {
    int n_seq, heads, dh, ld;
    const int *base, *len, *start;
    double scale, p;
    uint64_t seed;
    double *Q, *K, *V, *R;
    double *O; /* forward output of the last call (for checks) */
} att_state;

/* Independent double reference: per (sequence, head), causal softmax over
 * the non-pad keys, dropout mask from the shared rs_dropout_keep rule. */
static double att_loss(void *sv)
{
    att_state *s = sv;
    double L = 0.0;
    for (int q = 0; q < s->n_seq; q++)
        for (int h = 0; h < s->heads; h++) {
            uint64_t seed = rs_attn_seed(s->seed, q, h, s->heads);
            int n = s->len[q], st = s->start ? s->start[q] : 0;
            for (int i = 0; i < n; i++) {
                size_t oi = (size_t)(s->base[q] + i) * s->ld + (size_t)h * s->dh;
                for (int c = 0; c < s->dh; c++) s->O[oi + c] = 0.0;
                if (i < st) continue;
                double sc[64], m = -1e300, z = 0.0;
                for (int j = st; j <= i; j++) {
                    size_t kj = (size_t)(s->base[q] + j) * s->ld + (size_t)h * s->dh;
                    double a = 0.0;
                    for (int c = 0; c < s->dh; c++) a += s->Q[oi + c] * s->K[kj + c];
                    sc[j] = a * s->scale;
                    if (sc[j] > m) m = sc[j];
                }
                for (int j = st; j <= i; j++) z += exp(sc[j] - m);
                for (int j = st; j <= i; j++) {
                    double w = exp(sc[j] - m) / z;
                    if (s->p > 0.0) {
                        if (!rs_dropout_keep(seed, (uint64_t)i * n + j, (float)s->p)) continue;
                        w /= 1.0 - (double)(float)s->p;
                    }
                    size_t vj = (size_t)(s->base[q] + j) * s->ld + (size_t)h * s->dh;
                    for (int c = 0; c < s->dh; c++) s->O[oi + c] += w * s->V[vj + c];
                }
                for (int c = 0; c < s->dh; c++) L += s->O[oi + c] * s->R[oi + c];
            }
        }
    return L;
}

static void run_attention(int heads, int dh, float p, int packed)
{
    recsys_ctx *ctx = new_ctx(2);
    rs_rng rng;
    rs_rng_seed(&rng, 10 + heads + (p > 0) + 4 * packed);
    /* two sequences of L = 7: padded (start 0 and 3) or packed (7 and 4 rows) */
    int base_pad[2] = {0, 7}, len_pad[2] = {7, 7}, start_pad[2] = {0, 3};
    int base_pk[2] = {0, 7}, len_pk[2] = {7, 4};
    int rows = packed ? 11 : 14, ld = heads * dh + 1; /* one spare column */
    size_t nf = (size_t)rows * ld;
    float *Q = malloc(sizeof(float) * nf), *K = malloc(sizeof(float) * nf),
          *V = malloc(sizeof(float) * nf), *O = calloc(nf, sizeof(float)),
          *R = malloc(sizeof(float) * nf), *lse = malloc(sizeof(float) * (size_t)heads * rows),
          *dQ = calloc(nf, sizeof(float)), *dK = calloc(nf, sizeof(float)),
          *dV = calloc(nf, sizeof(float));
    fill_sym(&rng, Q, nf, 1.5);
    fill_sym(&rng, K, nf, 1.5);
    fill_sym(&rng, V, nf, 1.0);
    fill_sym(&rng, R, nf, 1.0);
    rs_attn_layout a = {2, heads, dh, ld, rows, packed ? base_pk : base_pad,
                        packed ? len_pk : len_pad, packed ? NULL : start_pad,
                        1.0f / sqrtf((float)dh), p, 0x1234abcdULL, 0};
    att_state s = {2, heads, dh, ld, a.base, a.len, a.start, a.scale, p, a.seed,
                   to_double(Q, nf), to_double(K, nf), to_double(V, nf), to_double(R, nf),
                   calloc(nf, sizeof(double))};
    rs_attention_fwd(ctx, &a, Q, K, V, O, lse);
    att_loss(&s);
    double *num = malloc(sizeof(double) * nf);
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < heads * dh; c++) {
            size_t k = (size_t)i * ld + c;
            assert_true(fabs(O[k] - s.O[k]) < 1e-5 * (1.0 + fabs(s.O[k])));
        }
    /* dO = R (the loss is Σ O ⊙ R) */
    rs_attention_bwd(ctx, &a, Q, K, V, O, R, lse, dQ, dK, dV);
    numeric_grad(att_loss, &s, s.Q, nf, num);
    for (int i = 0; i < rows; i++) num[(size_t)i * ld + heads * dh] = 0.0; /* spare column */
    for (int i = 0; i < rows; i++) dQ[(size_t)i * ld + heads * dh] = 0.0f;
    expect_close("attention dQ", dQ, num, nf, 1e-4);
    numeric_grad(att_loss, &s, s.K, nf, num);
    for (int i = 0; i < rows; i++) num[(size_t)i * ld + heads * dh] = 0.0;
    for (int i = 0; i < rows; i++) dK[(size_t)i * ld + heads * dh] = 0.0f;
    expect_close("attention dK", dK, num, nf, 1e-4);
    numeric_grad(att_loss, &s, s.V, nf, num);
    for (int i = 0; i < rows; i++) num[(size_t)i * ld + heads * dh] = 0.0;
    for (int i = 0; i < rows; i++) dV[(size_t)i * ld + heads * dh] = 0.0f;
    expect_close("attention dV", dV, num, nf, 1e-4);
    if (!packed) /* padding rows: zero output and exactly zero gradients */
        for (int i = 7; i < 10; i++)
            for (int c = 0; c < heads * dh; c++) {
                size_t k = (size_t)i * ld + c;
                assert_true(O[k] == 0.0f && dQ[k] == 0.0f && dK[k] == 0.0f && dV[k] == 0.0f);
            }
    free(Q); free(K); free(V); free(O); free(R); free(lse); free(dQ); free(dK); free(dV);
    free(num); free(s.Q); free(s.K); free(s.V); free(s.R); free(s.O);
    recsys_ctx_free(ctx);
}

static void test_attention(void **state)
{
    (void)state;
    run_attention(1, 5, 0.0f, 0);
    run_attention(2, 3, 0.0f, 0);
    run_attention(2, 3, 0.3f, 0);
    run_attention(1, 5, 0.25f, 1);
    run_attention(2, 3, 0.0f, 1);
}

/* ------------------------------------------------------- relu and dropout */

static void test_relu(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(2);
    int n = 70, m = 5;
    float *x = malloc(sizeof(float) * n * m), *dx = malloc(sizeof(float) * n * m);
    for (int i = 0; i < n * m; i++) {
        x[i] = (float)((i * 37) % 11) - 5.0f; /* includes exact zeros */
        dx[i] = 1.0f + (float)i;
    }
    float *orig = malloc(sizeof(float) * n * m);
    memcpy(orig, x, sizeof(float) * n * m);
    rs_relu_fwd(ctx, n, m, x, m);
    rs_relu_bwd(ctx, n, m, x, m, dx, m);
    for (int i = 0; i < n * m; i++) {
        assert_true(x[i] == (orig[i] > 0 ? orig[i] : 0.0f));
        /* derivative 1 above zero, 0 below (and at the kink) */
        assert_true(dx[i] == (orig[i] > 0 ? 1.0f + (float)i : 0.0f));
    }
    free(x); free(dx); free(orig);
    recsys_ctx_free(ctx);
}

static void test_dropout(void **state)
{
    (void)state;
    recsys_ctx *c1 = new_ctx(1), *c2 = new_ctx(2);
    int n = 200, m = 50;
    size_t nm = (size_t)n * m;
    float p = 0.3f;
    float *ones = malloc(sizeof(float) * nm), *a = malloc(sizeof(float) * nm),
          *b = malloc(sizeof(float) * nm), *g = malloc(sizeof(float) * nm);
    int32_t *ids = malloc(sizeof(int32_t) * n);
    for (size_t i = 0; i < nm; i++) ones[i] = 1.0f;
    for (int i = 0; i < n; i++) ids[i] = (n - 1 - i) * 3; /* rows stored out of order */
    rs_dropout(c1, n, m, ones, m, p, 77, ids, a);
    size_t kept = 0;
    for (size_t i = 0; i < nm; i++) {
        assert_true(a[i] == 0.0f || a[i] == 1.0f / (1.0f - p));
        kept += a[i] != 0.0f;
    }
    double frac = (double)kept / (double)nm;
    assert_true(fabs(frac - (1.0 - p)) < 0.02);
    /* same seed, more threads, in place: the same mask */
    memcpy(b, ones, sizeof(float) * nm);
    rs_dropout(c2, n, m, b, m, p, 77, ids, b);
    assert_memory_equal(a, b, sizeof(float) * nm);
    /* the backward is the same call on the gradient: zeros in the same places */
    for (size_t i = 0; i < nm; i++) g[i] = 2.0f;
    rs_dropout(c2, n, m, g, m, p, 77, ids, g);
    for (size_t i = 0; i < nm; i++) assert_true((g[i] == 0.0f) == (a[i] == 0.0f));
    /* the mask follows the logical row id, not the storage row */
    rs_dropout(c1, 1, m, ones, m, p, 77, &ids[5], b);
    assert_memory_equal(b, a + 5 * m, sizeof(float) * m);
    /* another seed gives another mask; p = 0 copies */
    rs_dropout(c1, n, m, ones, m, p, 78, ids, b);
    assert_true(memcmp(a, b, sizeof(float) * nm) != 0);
    rs_dropout(c1, n, m, ones, m, 0.0f, 78, ids, b);
    assert_memory_equal(ones, b, sizeof(float) * nm);
    free(ones); free(a); free(b); free(g); free(ids);
    recsys_ctx_free(c1);
    recsys_ctx_free(c2);
}

/* The fused FFN passes and the recorded-mask dropout agree with the plain
 * definitions built from rs_dropout_keep. */
static void test_fused(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(2);
    rs_rng rng;
    rs_rng_seed(&rng, 30);
    int n = 130, m = 300; /* m > the 256-column decision block */
    size_t nm = (size_t)n * m;
    float p = 0.25f, scale = 1.0f / (1.0f - p);
    uint64_t seed = 4242;
    float *x = malloc(sizeof(float) * nm), *y = malloc(sizeof(float) * nm),
          *z = malloc(sizeof(float) * nm), *a1 = malloc(sizeof(float) * nm),
          *a2 = malloc(sizeof(float) * nm), *b = malloc(sizeof(float) * m);
    uint8_t *mask = malloc(nm), *mask2 = malloc(nm);
    int32_t *ids = malloc(sizeof(int32_t) * n);
    fill_sym(&rng, x, nm, 1.0);
    fill_sym(&rng, a1, nm, 1.0);
    fill_sym(&rng, a2, nm, 1.0);
    fill_sym(&rng, b, m, 0.5);
    for (int i = 0; i < n; i++) ids[i] = 3 * i + 1;

    /* recorded mask == the rs_dropout decisions */
    rs_dropout(ctx, n, m, x, m, p, seed, ids, z);
    rs_dropout_fwd_mask(ctx, n, m, x, p, seed, ids, y, mask);
    assert_memory_equal(y, z, sizeof(float) * nm);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < m; c++)
            assert_int_equal(mask[(size_t)i * m + c],
                             rs_dropout_keep(seed, (uint64_t)ids[i] * m + c, p));
    rs_dropout_bwd_mask(ctx, n, m, a1, p, mask, y);
    rs_dropout(ctx, n, m, a1, m, p, seed, ids, z);
    assert_memory_equal(y, z, sizeof(float) * nm);

    /* hidden layer: Dropout(ReLU(y + b)) */
    memcpy(y, x, sizeof(float) * nm);
    rs_bias_relu_dropout_fwd(ctx, n, m, y, b, p, seed, ids);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < m; c++) {
            size_t k = (size_t)i * m + c;
            float v = x[k] + b[c];
            v = v > 0.0f ? v : 0.0f;
            float want = rs_dropout_keep(seed, (uint64_t)ids[i] * m + c, p) ? v * scale : 0.0f;
            assert_true(y[k] == want);
        }
    /* its backward: the gradient passes (scaled) exactly where y > 0 */
    memcpy(z, a1, sizeof(float) * nm);
    rs_relu_dropout_bwd(ctx, n, m, y, p, z);
    for (size_t k = 0; k < nm; k++) assert_true(z[k] == (y[k] > 0.0f ? a1[k] * scale : 0.0f));

    /* output layer: Dropout(y + b) + add1 + add2, mask recorded */
    memcpy(y, x, sizeof(float) * nm);
    rs_bias_dropout_add_fwd(ctx, n, m, y, b, p, seed, ids, mask2, a1, a2);
    assert_memory_equal(mask, mask2, nm);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < m; c++) {
            size_t k = (size_t)i * m + c;
            float want = (mask[k] ? (x[k] + b[c]) * scale : 0.0f) + a1[k] + a2[k];
            assert_true(fabsf(y[k] - want) <= 1e-6f * (1.0f + fabsf(want)));
        }
    /* without dropout it is a plain bias + residual */
    memcpy(y, x, sizeof(float) * nm);
    rs_bias_dropout_add_fwd(ctx, n, m, y, b, 0.0f, seed, ids, NULL, a1, NULL);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < m; c++) {
            size_t k = (size_t)i * m + c;
            assert_true(fabsf(y[k] - (x[k] + b[c] + a1[k])) <= 1e-6f);
        }
    free(x); free(y); free(z); free(a1); free(a2); free(b); free(mask); free(mask2); free(ids);
    recsys_ctx_free(ctx);
}

/* -------------------------------------------------------------------- BCE */

typedef struct bce_state {
    int n, d, n_neg;
    const int32_t *pos, *neg;
    double *F, *items;
} bce_state;

static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

static double bce_ref(void *sv)
{
    bce_state *s = sv;
    double L = 0.0;
    int cnt = 0;
    for (int t = 0; t < s->n; t++) {
        if (!s->pos[t]) continue;
        cnt++;
        double z = 0.0;
        for (int c = 0; c < s->d; c++) z += s->F[t * s->d + c] * s->items[s->pos[t] * s->d + c];
        L -= log_sigmoid(z);
        for (int q = 0; q < s->n_neg; q++) {
            int it = s->neg[t * s->n_neg + q];
            z = 0.0;
            for (int c = 0; c < s->d; c++) z += s->F[t * s->d + c] * s->items[it * s->d + c];
            L -= log_sigmoid(-z);
        }
    }
    return cnt ? L / cnt : 0.0;
}

static void run_bce(double scale, int threads)
{
    recsys_ctx *ctx = new_ctx(threads);
    rs_rng rng;
    rs_rng_seed(&rng, 20);
    enum { B = 2, L = 7, D = 5, NNEG = 2, NI = 6 };
    int n = B * L;
    int32_t pos[B * L] = {0, 0, 3, 4, 4, 1, 6, /* row 2: a hole at t=3 */ 2, 5, 1, 0, 3, 3, 6};
    int32_t neg[B * L * NNEG];
    for (int i = 0; i < n * NNEG; i++) neg[i] = 1 + (int32_t)rs_rng_below(&rng, NI);
    neg[4] = pos[2]; /* a negative equal to its positive is allowed */
    float F[B * L * D], items[(NI + 1) * D], dF[B * L * D], di[(NI + 1) * D];
    fill_sym(&rng, F, (size_t)n * D, scale);
    fill_sym(&rng, items, (size_t)(NI + 1) * D, 1.0);
    for (int i = 0; i < (NI + 1) * D; i++) di[i] = 0.25f; /* accumulated onto */
    rs_model_config cfg = {0};
    cfg.dim = D;
    cfg.n_items = NI;
    rs_batch b = {0};
    b.B = B;
    b.L = L;
    b.pos = pos;
    b.neg = neg;
    b.n_neg = NNEG;
    double loss = -1.0;
    assert_int_equal(rs_loss_bce(ctx, &cfg, items, &b, F, dF, di, &loss), RECSYS_OK);
    bce_state s = {n, D, NNEG, pos, neg, to_double(F, (size_t)n * D),
                   to_double(items, (size_t)(NI + 1) * D)};
    double ref = bce_ref(&s);
    assert_true(isfinite(loss));
    assert_true(fabs(loss - ref) < 1e-5 * (1.0 + fabs(ref)));
    double num[(NI + 1) * D > B * L * D ? (NI + 1) * D : B * L * D];
    numeric_grad(bce_ref, &s, s.F, (size_t)n * D, num);
    expect_close("bce dF", dF, num, (size_t)n * D, 1e-4);
    for (int t = 0; t < n; t++)
        if (!pos[t])
            for (int c = 0; c < D; c++) assert_true(dF[t * D + c] == 0.0f);
    numeric_grad(bce_ref, &s, s.items, (size_t)(NI + 1) * D, num);
    for (int i = 0; i < (NI + 1) * D; i++) di[i] -= 0.25f;
    expect_close("bce d_items", di, num, (size_t)(NI + 1) * D, 1e-4);

    /* bad ids are reported, not read */
    neg[5] = NI + 1; /* position 2 has a target */
    assert_int_equal(rs_loss_bce(ctx, &cfg, items, &b, F, dF, di, &loss), RECSYS_E_INVALID);
    assert_non_null(strstr(recsys_ctx_errmsg(ctx), "out of range"));
    free(s.F);
    free(s.items);
    recsys_ctx_free(ctx);
}

static void test_bce(void **state)
{
    (void)state;
    run_bce(1.0, 1);
    run_bce(1.0, 2);
    run_bce(40.0, 2); /* logits far in the tails: stable log-sigmoid */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),    cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_layernorm), cmocka_unit_test(test_attention),
        cmocka_unit_test(test_relu),      cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_fused),
        cmocka_unit_test(test_bce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

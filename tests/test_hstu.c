/* HSTU model and sampled softmax loss:
 *  - the loss against a double-precision transcription and central finite
 *    differences (per-position and shared negatives, with and without
 *    normalisation), determinism across thread counts, argument errors;
 *  - the model's backward against finite differences of an independent
 *    double-precision transcription of docs/MODELS.md §3 (one block = the layer,
 *    two blocks = the model; time bias on/off, 1 and 2 heads, dqk != dv),
 *    and with dropout on against float finite differences of the model;
 *  - parity of outputs, losses and gradients with fixtures from an
 *    independent PyTorch implementation (tools/gen_hstu_fixture.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"
#include "train/loss_softmax.h"
#include "models/model.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bucket_of(int64_t dt)
{
    double a = fabs((double)dt);
    int b = (int)floor(log(a > 1 ? a : 1) / 0.301);
    return b < 0 ? 0 : b > 128 ? 128 : b;
}

/* ================================================= sampled softmax: reference */

typedef struct lcase {
    int n_items, d, B, L, R, shared, normalize;
    double tau;
    double *F, *items;                 /* B*L*d, (n_items+1)*d */
    int32_t *pos, *neg;
    int start[4];
} lcase;

static double dnorm_scale(const double *x, int d)
{
    double s = 0;
    for (int c = 0; c < d; c++) s += x[c] * x[c];
    s = sqrt(s);
    return 1.0 / (s > 1e-6 ? s : 1e-6);
}

static double dloss(const lcase *k)
{
    int d = k->d, R = k->R;
    double total = 0;
    int cnt = 0;
    double *lg = malloc(sizeof(double) * (size_t)(R + 1));
    for (int t = 0; t < k->B * k->L; t++) {
        int32_t p = k->pos[t];
        if (!p) continue;
        cnt++;
        const double *f = k->F + (size_t)t * d;
        double fs = k->normalize ? dnorm_scale(f, d) : 1.0;
        for (int r = 0; r <= R; r++) {
            int32_t id = r == 0 ? p : k->shared ? k->neg[r - 1] : k->neg[(size_t)t * R + r - 1];
            if (r > 0 && id == p) { lg[r] = -5e4; continue; }
            const double *e = k->items + (size_t)id * d;
            double es = k->normalize ? dnorm_scale(e, d) : 1.0, dot = 0;
            for (int c = 0; c < d; c++) dot += f[c] * fs * e[c] * es;
            lg[r] = dot / k->tau;
        }
        double mx = lg[0];
        for (int r = 1; r <= R; r++) mx = fmax(mx, lg[r]);
        double s = 0;
        for (int r = 0; r <= R; r++) s += exp(lg[r] - mx);
        total += mx + log(s) - lg[0];
    }
    free(lg);
    return cnt ? total / cnt : 0.0;
}

static void lcase_init(lcase *k, int shared, int normalize, uint64_t seed)
{
    rs_rng r;
    rs_rng_seed(&r, seed);
    k->n_items = 10; k->d = 5; k->B = 3; k->L = 4; k->R = 6;
    k->shared = shared; k->normalize = normalize; k->tau = normalize ? 0.05 : 1.0;
    int n = k->B * k->L;
    k->F = malloc(sizeof(double) * (size_t)n * k->d);
    k->items = malloc(sizeof(double) * (size_t)(k->n_items + 1) * k->d);
    k->pos = calloc((size_t)n, sizeof(int32_t));
    k->neg = calloc((size_t)n * k->R, sizeof(int32_t));
    for (int i = 0; i < n * k->d; i++) k->F[i] = urand(&r) * (normalize ? 1.0 : 0.6);
    for (int i = 0; i < (k->n_items + 1) * k->d; i++) k->items[i] = i < k->d ? 0.0 : urand(&r);
    k->start[0] = 0; k->start[1] = 2; k->start[2] = 4;  /* row 2 is all padding */
    for (int b = 0; b < k->B; b++)
        for (int t = k->start[b]; t < k->L; t++) k->pos[b * k->L + t] = 1 + (int32_t)rs_rng_below(&r, 10);
    k->pos[1] = 0;  /* a real position without a target */
    for (int t = 0; t < n; t++)
        for (int q = 0; q < k->R; q++)
            k->neg[(size_t)t * k->R + q] = k->pos[t] ? 1 + (int32_t)rs_rng_below(&r, 10) : 0;
    k->neg[3 * k->R + 2] = k->pos[3];          /* collision: logit -5e4 */
    if (shared) k->neg[4] = k->pos[0];         /* a shared negative equal to a target */
}

static void lcase_free(lcase *k) { free(k->F); free(k->items); free(k->pos); free(k->neg); }

static double fd_loss(lcase *k, double *x)
{
    const double h = 1e-6;
    double x0 = *x;
    *x = x0 + h;
    double fp = dloss(k);
    *x = x0 - h;
    double fm = dloss(k);
    *x = x0;
    return (fp - fm) / (2 * h);
}

/* Run the C loss on float copies; dF and d_items (pre-filled with 0.5 to
 * check accumulation) returned. */
static recsys_status run_loss(recsys_ctx *ctx, const lcase *k, float *dF, float *d_items,
                              double *loss, rs_ssm_workspace *ws)
{
    int n = k->B * k->L;
    float *F = malloc(sizeof(float) * (size_t)n * k->d);
    float *items = malloc(sizeof(float) * (size_t)(k->n_items + 1) * k->d);
    for (int i = 0; i < n * k->d; i++) F[i] = (float)k->F[i];
    for (int i = 0; i < (k->n_items + 1) * k->d; i++) items[i] = (float)k->items[i];
    rs_model_config cfg = {0};
    cfg.n_items = k->n_items;
    cfg.dim = k->d;
    rs_batch b = {0};
    b.B = k->B; b.L = k->L; b.pos = k->pos; b.neg = k->neg; b.n_neg = k->R; b.start = k->start;
    recsys_status st = rs_loss_sampled_softmax_ws(ctx, &cfg, items, &b, F, (float)k->tau,
                                                  k->normalize, k->shared, ws, dF, d_items, loss);
    free(F);
    free(items);
    return st;
}

static void loss_case(int shared, int normalize)
{
    lcase k;
    lcase_init(&k, shared, normalize, 11 + shared * 2 + normalize);
    int n = k.B * k.L, d = k.d, ni = (k.n_items + 1) * d;
    /* the exact float inputs, so the double reference sees the same numbers */
    for (int i = 0; i < n * d; i++) k.F[i] = (float)k.F[i];
    for (int i = 0; i < ni; i++) k.items[i] = (float)k.items[i];
    float *dF = malloc(sizeof(float) * (size_t)n * d), *di = malloc(sizeof(float) * (size_t)ni);
    float *dF2 = malloc(sizeof(float) * (size_t)n * d), *di2 = malloc(sizeof(float) * (size_t)ni);
    for (int i = 0; i < ni; i++) di[i] = di2[i] = 0.5f;
    for (int i = 0; i < n * d; i++) dF[i] = dF2[i] = 1e30f;
    double loss = -1, loss2 = -1;
    recsys_ctx *c1 = new_ctx(1), *c2 = new_ctx(2);
    assert_int_equal(run_loss(c1, &k, dF, di, &loss, NULL), RECSYS_OK);
    double want = dloss(&k);
    assert_true(want > 0.1);
    if (fabs(loss - want) > 1e-5 * fmax(1.0, want)) fail_msg("loss %.10g want %.10g", loss, want);

    double gmax = 0;
    double *gF = malloc(sizeof(double) * (size_t)n * d), *gI = malloc(sizeof(double) * (size_t)ni);
    for (int i = 0; i < n * d; i++) gmax = fmax(gmax, fabs(gF[i] = fd_loss(&k, &k.F[i])));
    for (int i = 0; i < ni; i++) gmax = fmax(gmax, fabs(gI[i] = fd_loss(&k, &k.items[i])));
    double tol = 2e-4 * gmax + 1e-6;
    for (int i = 0; i < n * d; i++)
        if (fabs(dF[i] - gF[i]) > tol)
            fail_msg("shared=%d norm=%d dF[%d] %.8g want %.8g", shared, normalize, i, dF[i], gF[i]);
    for (int i = 0; i < ni; i++)
        if (fabs(di[i] - 0.5 - gI[i]) > tol)
            fail_msg("shared=%d norm=%d d_items[%d] %.8g want %.8g", shared, normalize, i,
                     di[i] - 0.5, gI[i]);
    for (int t = 0; t < n; t++) /* rows without a target: exactly zero */
        if (!k.pos[t])
            for (int c = 0; c < d; c++) assert_true(dF[t * d + c] == 0.0f);

    /* two threads and a reusable workspace: bit-identical */
    rs_ssm_workspace *ws = rs_ssm_workspace_new(k.n_items, d, n, k.R);
    assert_non_null(ws);
    assert_int_equal(run_loss(c2, &k, dF2, di2, &loss2, ws), RECSYS_OK);
    assert_true(loss == loss2);
    assert_memory_equal(dF, dF2, sizeof(float) * (size_t)n * d);
    assert_memory_equal(di, di2, sizeof(float) * (size_t)ni);
    rs_ssm_workspace_free(ws);

    free(gF); free(gI); free(dF); free(di); free(dF2); free(di2);
    recsys_ctx_free(c1);
    recsys_ctx_free(c2);
    lcase_free(&k);
}

static void test_loss_per_position(void **state)
{
    (void)state;
    loss_case(0, 1);
    loss_case(0, 0);
}

static void test_loss_shared(void **state)
{
    (void)state;
    loss_case(1, 1);
    loss_case(1, 0);
}

static void test_loss_errors(void **state)
{
    (void)state;
    lcase k;
    lcase_init(&k, 0, 1, 5);
    recsys_ctx *ctx = new_ctx(1);
    double loss;
    k.neg[0] = 11; /* > n_items */
    assert_int_equal(run_loss(ctx, &k, NULL, NULL, &loss, NULL), RECSYS_E_INVALID);
    k.neg[0] = 1;
    k.pos[2] = -1;
    assert_int_equal(run_loss(ctx, &k, NULL, NULL, &loss, NULL), RECSYS_E_INVALID);
    k.pos[2] = 3;
    k.tau = 0;
    assert_int_equal(run_loss(ctx, &k, NULL, NULL, &loss, NULL), RECSYS_E_INVALID);
    k.tau = 0.05;
    rs_ssm_workspace *small = rs_ssm_workspace_new(k.n_items, k.d, 2, k.R);
    assert_int_equal(run_loss(ctx, &k, NULL, NULL, &loss, small), RECSYS_E_INVALID);
    rs_ssm_workspace_free(small);
    assert_int_equal(run_loss(ctx, &k, NULL, NULL, &loss, NULL), RECSYS_OK);
    assert_true(loss > 0);
    memset(k.pos, 0, sizeof(int32_t) * (size_t)k.B * k.L); /* no targets: loss 0 */
    assert_int_equal(run_loss(ctx, &k, NULL, NULL, &loss, NULL), RECSYS_OK);
    assert_true(loss == 0.0);
    recsys_ctx_free(ctx);
    lcase_free(&k);
}

/* ========================================== HSTU: double-precision reference */

typedef struct mcase {
    rs_model_config cfg;
    int d, h, dqk, dv, hdv, cols, N, B, L;
    size_t n_params;
    size_t off[8];     /* by tensor kind, from rs_hstu_ops.tensors */
    int has[8];
    int32_t *seq;
    int start[4];
    int64_t *times, *next_times;
    double *Wt;        /* objective weights, B*L*d (non-zero on pads too) */
} mcase;

enum { K_ITEM, K_POS, K_UVQK, K_RP, K_RT, K_OW, K_OB };

static int kind_of(const char *name)
{
    static const char *const names[] = {"item_emb", "pos_emb", "uvqk.weight", "rab_pos",
                                        "rab_time", "o.weight", "o.bias"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

static void mcase_layout(mcase *m)
{
    const rs_model_config *c = &m->cfg;
    m->d = c->dim; m->h = c->heads; m->dqk = c->dqk; m->dv = c->dv;
    m->hdv = m->h * m->dv; m->cols = 2 * m->h * (m->dv + m->dqk); m->N = c->max_len;
    m->n_params = rs_hstu_ops.n_params(c);
    int nt = rs_hstu_ops.tensors(c, NULL, NULL, NULL);
    const char *names[8];
    size_t offs[8], sizes[8], total = 0;
    assert_true(nt <= 8);
    rs_hstu_ops.tensors(c, names, offs, sizes);
    memset(m->has, 0, sizeof m->has);
    for (int t = 0; t < nt; t++) {
        int kd = kind_of(names[t]);
        assert_true(kd >= 0);
        m->off[kd] = offs[t];
        m->has[kd] = 1;
        total += sizes[t];
    }
    assert_true(total == m->n_params);
    assert_int_equal(m->has[K_RT], c->time_bias != 0);
    assert_int_equal(RS_ITEM_TABLE_OFFSET, m->off[K_ITEM]);
}

static void dlayernorm(const double *x, int n, double *y)
{
    double mu = 0, var = 0;
    for (int c = 0; c < n; c++) mu += x[c];
    mu /= n;
    for (int c = 0; c < n; c++) var += (x[c] - mu) * (x[c] - mu);
    var /= n;
    for (int c = 0; c < n; c++) y[c] = (x[c] - mu) / sqrt(var + 1e-6);
}

static double dsilu(double x) { return x / (1.0 + exp(-x)); }

/* F (B*L*d) of the HSTU model in double, dropout off. */
static void dmodel_forward(const mcase *m, const double *P, double *Fout)
{
    int d = m->d, L = m->L, cols = m->cols, hdv = m->hdv;
    memset(Fout, 0, sizeof(double) * (size_t)m->B * L * d);
    double *X = malloc(sizeof(double) * (size_t)L * d), *Xn = malloc(sizeof(double) * (size_t)L * d);
    double *G = malloc(sizeof(double) * (size_t)L * cols), *O = malloc(sizeof(double) * (size_t)L * hdv);
    double *Z = malloc(sizeof(double) * (size_t)hdv);
    for (int r = 0; r < m->B; r++) {
        int s = m->start[r], n = L - s;
        for (int i = 0; i < n; i++) {
            int32_t it = m->seq[r * L + s + i];
            for (int c = 0; c < d; c++)
                X[i * d + c] = P[m->off[K_ITEM] + (size_t)it * d + c] * sqrt((double)d) +
                               P[m->off[K_POS] + (size_t)(s + i + 1) * d + c];
        }
        for (int k = 0; k < m->cfg.blocks; k++) {
            const double *W = P + m->off[K_UVQK] + (size_t)k * cols * d;
            const double *rp = P + m->off[K_RP] + (size_t)k * (2 * m->N - 1);
            const double *rt = m->has[K_RT] ? P + m->off[K_RT] + (size_t)k * 129 : NULL;
            const double *Wo = P + m->off[K_OW] + (size_t)k * d * hdv;
            const double *bo = P + m->off[K_OB] + (size_t)k * d;
            for (int i = 0; i < n; i++) {
                dlayernorm(X + i * d, d, Xn + i * d);
                for (int o = 0; o < cols; o++) {
                    double a = 0;
                    for (int c = 0; c < d; c++) a += Xn[i * d + c] * W[(size_t)o * d + c];
                    G[i * cols + o] = dsilu(a);
                }
            }
            memset(O, 0, sizeof(double) * (size_t)n * hdv);
            for (int hh = 0; hh < m->h; hh++)
                for (int i = 0; i < n; i++)
                    for (int j = 0; j <= i; j++) {
                        const double *q = G + i * cols + 2 * hdv + hh * m->dqk;
                        const double *kk = G + j * cols + 2 * hdv + m->h * m->dqk + hh * m->dqk;
                        double sc = rp[j - i + m->N - 1];
                        for (int c = 0; c < m->dqk; c++) sc += q[c] * kk[c];
                        if (rt)
                            sc += rt[bucket_of(m->next_times[r * L + s + i] - m->times[r * L + s + j])];
                        double w = dsilu(sc) / m->N;
                        for (int c = 0; c < m->dv; c++)
                            O[i * hdv + hh * m->dv + c] += w * G[j * cols + hdv + hh * m->dv + c];
                    }
            for (int i = 0; i < n; i++) {
                dlayernorm(O + i * hdv, hdv, Z);
                for (int c = 0; c < hdv; c++) Z[c] *= G[i * cols + c]; /* U ⊙ LN(O) */
                for (int o = 0; o < d; o++) {
                    double a = bo[o];
                    for (int c = 0; c < hdv; c++) a += Wo[(size_t)o * hdv + c] * Z[c];
                    X[i * d + o] += a;
                }
            }
        }
        for (int i = 0; i < n; i++) {
            double sc = dnorm_scale(X + i * d, d);
            if (!m->cfg.l2norm) sc = 1.0;
            for (int c = 0; c < d; c++) Fout[((size_t)r * L + s + i) * d + c] = X[i * d + c] * sc;
        }
    }
    free(X); free(Xn); free(G); free(O); free(Z);
}

static double dobjective(const mcase *m, const double *P)
{
    size_t n = (size_t)m->B * m->L * m->d;
    double *Fo = malloc(sizeof(double) * n), J = 0;
    dmodel_forward(m, P, Fo);
    for (size_t i = 0; i < n; i++) J += Fo[i] * m->Wt[i];
    free(Fo);
    return J;
}

static void mcase_init(mcase *m, int blocks, int heads, int dqk, int dv, int time_bias, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    rs_model_config *c = &m->cfg;
    c->type = RS_MODEL_HSTU;
    c->n_items = 7; c->max_len = 5; c->dim = 6; c->blocks = blocks; c->heads = heads;
    c->dqk = dqk; c->dv = dv; c->dropout = 0.0f; c->time_bias = time_bias; c->l2norm = 1;
    m->B = 3; m->L = c->max_len;
    m->start[0] = 0; m->start[1] = 2; m->start[2] = 5; /* row 2 is all padding */
    mcase_layout(m);
    rs_rng r;
    rs_rng_seed(&r, seed);
    int n = m->B * m->L;
    m->seq = calloc((size_t)n, sizeof(int32_t));
    m->times = calloc((size_t)n, sizeof(int64_t));
    m->next_times = calloc((size_t)n, sizeof(int64_t));
    m->Wt = malloc(sizeof(double) * (size_t)n * m->d);
    for (int b = 0; b < m->B; b++) {
        int64_t t = 1600000000;
        for (int i = m->start[b]; i < m->L; i++) {
            m->seq[b * m->L + i] = 1 + (int32_t)rs_rng_below(&r, 7);
            t += (int64_t)exp(rs_rng_uniform(&r) * 14);
            m->times[b * m->L + i] = t;
        }
        for (int i = m->start[b]; i < m->L; i++)
            m->next_times[b * m->L + i] = m->times[b * m->L + (i + 1 < m->L ? i + 1 : i)];
    }
    for (int i = 0; i < n * m->d; i++) m->Wt[i] = urand(&r);
}

static void mcase_free(mcase *m) { free(m->seq); free(m->times); free(m->next_times); free(m->Wt); }

static rs_batch mcase_batch(const mcase *m, int train, uint64_t seed)
{
    rs_batch b = {0};
    b.B = m->B; b.L = m->L; b.seq = m->seq; b.start = m->start;
    b.times = m->times; b.next_times = m->next_times;
    b.train = train; b.seed = seed;
    return b;
}

/* Random parameters at a scale that makes every path matter. */
static void random_params(const mcase *m, float *P, uint64_t seed)
{
    rs_rng r;
    rs_rng_seed(&r, seed);
    for (size_t i = 0; i < m->n_params; i++) P[i] = (float)(urand(&r) * 0.6);
    memset(P + m->off[K_ITEM], 0, sizeof(float) * (size_t)m->d);
}

/* C forward + backward of Σ Wt ⊙ F. */
static void c_grad(recsys_ctx *ctx, const mcase *m, const float *P, int train, uint64_t seed,
                   float *Fo, float *G)
{
    size_t n = (size_t)m->B * m->L * m->d;
    float *dF = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) dF[i] = (float)m->Wt[i];
    rs_workspace *ws = rs_hstu_ops.ws_new(&m->cfg, m->B);
    assert_non_null(ws);
    rs_batch b = mcase_batch(m, train, seed);
    assert_int_equal(rs_hstu_ops.forward(ctx, &m->cfg, P, ws, &b, Fo), RECSYS_OK);
    memset(G, 0, sizeof(float) * m->n_params);
    if (train) assert_int_equal(rs_hstu_ops.backward(ctx, &m->cfg, P, ws, &b, dF, G), RECSYS_OK);
    rs_hstu_ops.ws_free(ws);
    free(dF);
}

static void model_fd_case(int blocks, int heads, int dqk, int dv, int time_bias, int l2norm)
{
    mcase m;
    mcase_init(&m, blocks, heads, dqk, dv, time_bias, 100 + blocks * 10 + heads + time_bias);
    m.cfg.l2norm = l2norm;
    float *P = malloc(sizeof(float) * m.n_params), *G = malloc(sizeof(float) * m.n_params);
    size_t nF = (size_t)m.B * m.L * m.d;
    float *Fo = malloc(sizeof(float) * nF);
    random_params(&m, P, 7 + blocks);
    recsys_ctx *ctx = new_ctx(2);
    c_grad(ctx, &m, P, 1, 99, Fo, G);

    double *Pd = malloc(sizeof(double) * m.n_params), *Fd = malloc(sizeof(double) * nF);
    for (size_t i = 0; i < m.n_params; i++) Pd[i] = P[i];
    dmodel_forward(&m, Pd, Fd);
    for (size_t i = 0; i < nF; i++)
        if (fabs(Fo[i] - Fd[i]) > 1e-5)
            fail_msg("blocks=%d heads=%d time=%d: F[%zu] %.8g want %.8g", blocks, heads, time_bias,
                     i, Fo[i], Fd[i]);
    /* padding rows are zero */
    for (int c = 0; c < m.L * m.d; c++) assert_true(Fo[2 * m.L * m.d + c] == 0.0f);

    double *fd = malloc(sizeof(double) * m.n_params), gmax = 0;
    const double h = 1e-6;
    for (size_t i = 0; i < m.n_params; i++) {
        double x0 = Pd[i];
        Pd[i] = x0 + h;
        double fp = dobjective(&m, Pd);
        Pd[i] = x0 - h;
        double fm = dobjective(&m, Pd);
        Pd[i] = x0;
        fd[i] = (fp - fm) / (2 * h);
        gmax = fmax(gmax, fabs(fd[i]));
    }
    assert_true(gmax > 1e-3);
    int nonzero_rt = 0;
    for (size_t i = 0; i < m.n_params; i++) {
        double tol = 1e-4 * gmax + 1e-4 * fabs(fd[i]) + 1e-7;
        if (fabs(G[i] - fd[i]) > tol)
            fail_msg("blocks=%d heads=%d dqk=%d dv=%d time=%d: grad[%zu] %.8g want %.8g", blocks,
                     heads, dqk, dv, time_bias, i, G[i], fd[i]);
        if (m.has[K_RT] && i >= m.off[K_RT] && i < m.off[K_RT] + 129 && fabs(fd[i]) > 1e-6)
            nonzero_rt++;
    }
    if (time_bias) assert_true(nonzero_rt >= 3); /* several time buckets exercised */
    free(P); free(G); free(Fo); free(Pd); free(Fd); free(fd);
    recsys_ctx_free(ctx);
    mcase_free(&m);
}

static void test_layer_fd(void **state)
{
    (void)state;
    model_fd_case(1, 1, 3, 2, 0, 1);
    model_fd_case(1, 2, 2, 3, 1, 1);
}

static void test_model_fd(void **state)
{
    (void)state;
    model_fd_case(2, 1, 4, 4, 1, 1);
    model_fd_case(2, 2, 3, 2, 0, 1);
    model_fd_case(2, 2, 2, 5, 1, 1);
    model_fd_case(2, 1, 3, 3, 1, 0); /* output without the L2 norm (model.l2norm off) */
}

/* Dropout on: the backward must use the forward's masks. Float finite
 * differences of the C model itself on a sample of parameters. */
static void test_dropout_grad(void **state)
{
    (void)state;
    mcase m;
    mcase_init(&m, 2, 2, 3, 2, 1, 5);
    m.cfg.dropout = 0.3f;
    float *P = malloc(sizeof(float) * m.n_params), *G = malloc(sizeof(float) * m.n_params);
    size_t nF = (size_t)m.B * m.L * m.d;
    float *Fo = malloc(sizeof(float) * nF), *G2 = malloc(sizeof(float) * m.n_params);
    random_params(&m, P, 3);
    recsys_ctx *ctx = new_ctx(1);
    c_grad(ctx, &m, P, 1, 1234, Fo, G);
    /* a different dropout seed gives different gradients */
    c_grad(ctx, &m, P, 1, 4321, Fo, G2);
    assert_true(memcmp(G, G2, sizeof(float) * m.n_params) != 0);
    rs_workspace *ws = rs_hstu_ops.ws_new(&m.cfg, m.B);
    rs_batch b = mcase_batch(&m, 1, 1234);
    rs_rng r;
    rs_rng_seed(&r, 77);
    double gmax = 0;
    for (size_t i = 0; i < m.n_params; i++) gmax = fmax(gmax, fabs(G[i]));
    int checked = 0;
    for (int s = 0; s < 60; s++) {
        size_t i = (size_t)rs_rng_below(&r, m.n_params);
        if (i < (size_t)m.d) continue; /* padding item row */
        float x0 = P[i];
        double J[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            P[i] = x0 + (sgn ? -1e-2f : 1e-2f);
            assert_int_equal(rs_hstu_ops.forward(ctx, &m.cfg, P, ws, &b, Fo), RECSYS_OK);
            J[sgn] = 0;
            for (size_t e = 0; e < nF; e++) J[sgn] += Fo[e] * m.Wt[e];
        }
        double fdv = (J[0] - J[1]) / (double)((x0 + 1e-2f) - (x0 - 1e-2f));
        P[i] = x0;
        if (fabs(G[i] - fdv) > 2e-3 * gmax + 2e-2 * fabs(fdv))
            fail_msg("dropout grad[%zu] %.6g, finite difference %.6g", i, G[i], fdv);
        checked++;
    }
    assert_true(checked > 40);
    rs_hstu_ops.ws_free(ws);
    free(P); free(G); free(G2); free(Fo);
    recsys_ctx_free(ctx);
    mcase_free(&m);
}

/* Same results for 1 and 2 threads, bit for bit. */
static void test_determinism(void **state)
{
    (void)state;
    mcase m;
    mcase_init(&m, 2, 2, 3, 4, 1, 9);
    m.cfg.dropout = 0.2f;
    float *P = malloc(sizeof(float) * m.n_params);
    float *G1 = malloc(sizeof(float) * m.n_params), *G2 = malloc(sizeof(float) * m.n_params);
    size_t nF = (size_t)m.B * m.L * m.d;
    float *F1 = malloc(sizeof(float) * nF), *F2 = malloc(sizeof(float) * nF);
    random_params(&m, P, 4);
    recsys_ctx *c1 = new_ctx(1), *c2 = new_ctx(2);
    c_grad(c1, &m, P, 1, 42, F1, G1);
    c_grad(c2, &m, P, 1, 42, F2, G2);
    assert_memory_equal(F1, F2, sizeof(float) * nF);
    assert_memory_equal(G1, G2, sizeof(float) * m.n_params);
    recsys_ctx_free(c1);
    recsys_ctx_free(c2);
    free(P); free(G1); free(G2); free(F1); free(F2);
    mcase_free(&m);
}

/* The same at a size where every GEMM and row loop is split across tasks,
 * through the loss as well. */
static void test_determinism_large(void **state)
{
    (void)state;
    rs_model_config c = {0};
    c.type = RS_MODEL_HSTU;
    c.n_items = 300; c.max_len = 64; c.dim = 24; c.blocks = 2; c.heads = 2; c.dqk = 8; c.dv = 12;
    c.dropout = 0.2f; c.time_bias = 1; c.l2norm = 1;
    int B = 40, L = c.max_len, d = c.dim, R = 16, n = B * L;
    rs_rng r;
    rs_rng_seed(&r, 21);
    int *start = malloc(sizeof(int) * (size_t)B);
    int32_t *seq = calloc((size_t)n, sizeof(int32_t)), *pos = calloc((size_t)n, sizeof(int32_t));
    int32_t *neg = calloc((size_t)n * R, sizeof(int32_t));
    int64_t *times = calloc((size_t)n, sizeof(int64_t)), *next = calloc((size_t)n, sizeof(int64_t));
    for (int b = 0; b < B; b++) {
        start[b] = b % 4 == 0 ? 0 : (int)rs_rng_below(&r, (uint64_t)L + 1);
        int64_t t = 1000;
        for (int i = start[b]; i < L; i++) {
            seq[b * L + i] = 1 + (int32_t)rs_rng_below(&r, 300);
            pos[b * L + i] = 1 + (int32_t)rs_rng_below(&r, 300);
            times[b * L + i] = t += (int64_t)rs_rng_below(&r, 100000);
            for (int q = 0; q < R; q++) neg[(size_t)(b * L + i) * R + q] = 1 + (int32_t)rs_rng_below(&r, 300);
        }
        for (int i = start[b]; i < L; i++) next[b * L + i] = times[b * L + (i + 1 < L ? i + 1 : i)];
    }
    rs_batch b = {0};
    b.B = B; b.L = L; b.seq = seq; b.start = start; b.times = times; b.next_times = next;
    b.pos = pos; b.neg = neg; b.n_neg = R; b.train = 1; b.seed = 3;
    size_t np = rs_hstu_ops.n_params(&c);
    float *P = malloc(sizeof(float) * np), *G[2], *Fo = malloc(sizeof(float) * (size_t)n * d);
    float *dF = malloc(sizeof(float) * (size_t)n * d);
    rs_hstu_ops.init(&c, P, &r);
    double loss[2];
    for (int k = 0; k < 2; k++) {
        recsys_ctx *ctx = new_ctx(k + 1);
        rs_workspace *ws = rs_hstu_ops.ws_new(&c, B);
        G[k] = calloc(np, sizeof(float));
        assert_int_equal(rs_hstu_ops.forward(ctx, &c, P, ws, &b, Fo), RECSYS_OK);
        assert_int_equal(rs_loss_sampled_softmax(ctx, &c, P, &b, Fo, 0.05f, 1, k, dF, G[k], &loss[k]),
                         RECSYS_OK);
        assert_int_equal(rs_hstu_ops.backward(ctx, &c, P, ws, &b, dF, G[k]), RECSYS_OK);
        rs_hstu_ops.ws_free(ws);
        recsys_ctx_free(ctx);
        if (k == 0) { /* same negatives shared, second run: compare per-position runs only */
            recsys_ctx *c2 = new_ctx(2);
            rs_workspace *w2 = rs_hstu_ops.ws_new(&c, B);
            float *G2 = calloc(np, sizeof(float));
            double l2;
            assert_int_equal(rs_hstu_ops.forward(c2, &c, P, w2, &b, Fo), RECSYS_OK);
            assert_int_equal(rs_loss_sampled_softmax(c2, &c, P, &b, Fo, 0.05f, 1, 0, dF, G2, &l2),
                             RECSYS_OK);
            assert_int_equal(rs_hstu_ops.backward(c2, &c, P, w2, &b, dF, G2), RECSYS_OK);
            assert_true(l2 == loss[0]);
            const char *names[8];
            size_t offs[8], sizes[8];
            int nt = rs_hstu_ops.tensors(&c, names, offs, sizes);
            for (int t = 0; t < nt; t++)
                if (memcmp(G[0] + offs[t], G2 + offs[t], sizes[t] * sizeof(float)))
                    fail_msg("gradient of %s differs between 1 and 2 threads", names[t]);
            free(G2);
            rs_hstu_ops.ws_free(w2);
            recsys_ctx_free(c2);
        }
    }
    assert_true(loss[0] > 0 && loss[1] > 0);
    free(G[0]); free(G[1]); free(P); free(Fo); free(dF); free(start); free(seq); free(pos);
    free(neg); free(times); free(next);
}

static void test_errors_and_layout(void **state)
{
    (void)state;
    mcase m;
    mcase_init(&m, 1, 1, 3, 3, 0, 1);
    float *P = calloc(m.n_params, sizeof(float)), *G = calloc(m.n_params, sizeof(float));
    size_t nF = (size_t)m.B * m.L * m.d;
    float *Fo = malloc(sizeof(float) * nF), *dF = calloc(nF, sizeof(float));
    recsys_ctx *ctx = new_ctx(1);
    rs_workspace *ws = rs_hstu_ops.ws_new(&m.cfg, m.B);
    rs_batch b = mcase_batch(&m, 0, 1);
    /* backward after an inference forward is refused */
    assert_int_equal(rs_hstu_ops.forward(ctx, &m.cfg, P, ws, &b, Fo), RECSYS_OK);
    assert_int_equal(rs_hstu_ops.backward(ctx, &m.cfg, P, ws, &b, dF, G), RECSYS_E_STATE);
    m.seq[0] = 8; /* > n_items */
    assert_int_equal(rs_hstu_ops.forward(ctx, &m.cfg, P, ws, &b, Fo), RECSYS_E_INVALID);
    m.seq[0] = 1;
    b.L = 4;
    assert_int_equal(rs_hstu_ops.forward(ctx, &m.cfg, P, ws, &b, Fo), RECSYS_E_INVALID);
    b.L = m.L;
    b.B = 4; /* more rows than the workspace holds */
    assert_int_equal(rs_hstu_ops.forward(ctx, &m.cfg, P, ws, &b, Fo), RECSYS_E_INVALID);
    /* init: padding rows zero, weights of the documented scale */
    rs_rng r;
    rs_rng_seed(&r, 1);
    rs_hstu_ops.init(&m.cfg, P, &r);
    for (int c = 0; c < m.d; c++) assert_true(P[m.off[K_ITEM] + c] == 0.0f && P[m.off[K_POS] + c] == 0.0f);
    double ss = 0;
    size_t nu = (size_t)m.cols * m.d;
    for (size_t i = 0; i < nu; i++) ss += (double)P[m.off[K_UVQK] + i] * P[m.off[K_UVQK] + i];
    assert_true(fabs(sqrt(ss / nu) - 0.02) < 0.006);
    rs_hstu_ops.ws_free(ws);
    recsys_ctx_free(ctx);
    free(P); free(G); free(Fo); free(dF);
    mcase_free(&m);
}

/* =================================================== PyTorch fixture parity */

typedef struct rec {
    char kind, name[64];
    size_t n;
    double *v;
} rec;

typedef struct fixture {
    rec r[64];
    int n;
} fixture;

static int fixture_load(fixture *f, const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    f->n = 0;
    char line0[256];
    int c;
    while ((c = fgetc(fp)) != EOF) {
        if (c == '#') { if (!fgets(line0, sizeof line0, fp)) break; continue; }
        if (c == '\n' || c == ' ') continue;
        rec *r = &f->r[f->n];
        r->kind = (char)c;
        if (f->n >= 63 || fscanf(fp, " %63s %zu", r->name, &r->n) != 2) { fclose(fp); return -1; }
        r->v = malloc(sizeof(double) * (r->n ? r->n : 1));
        for (size_t i = 0; i < r->n; i++)
            if (fscanf(fp, " %lf", &r->v[i]) != 1) { fclose(fp); return -1; }
        f->n++;
    }
    fclose(fp);
    return 0;
}

static void fixture_free(fixture *f)
{
    for (int i = 0; i < f->n; i++) free(f->r[i].v);
}

static const rec *fget(const fixture *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->r[i].name, name)) return &f->r[i];
    fail_msg("fixture has no record %s", name);
    return NULL;
}

static int fint(const fixture *f, const char *name) { return (int)fget(f, name)->v[0]; }

static void fixture_case(const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", RS_SOURCE_ROOT, file);
    fixture fx;
    if (fixture_load(&fx, path) != 0) fail_msg("cannot read %s", path);
    rs_model_config cfg = {0};
    cfg.type = RS_MODEL_HSTU;
    cfg.n_items = fint(&fx, "n_items");
    cfg.dim = fint(&fx, "dim");
    cfg.max_len = fint(&fx, "max_len");
    cfg.blocks = fint(&fx, "blocks");
    cfg.heads = fint(&fx, "heads");
    cfg.dqk = fint(&fx, "dqk");
    cfg.dv = fint(&fx, "dv");
    cfg.time_bias = fint(&fx, "time_bias");
    cfg.l2norm = 1;
    int B = fint(&fx, "batch"), L = cfg.max_len, d = cfg.dim, R = fint(&fx, "n_neg");
    size_t np = rs_hstu_ops.n_params(&cfg);
    float *P = calloc(np, sizeof(float)), *G = calloc(np, sizeof(float));
    const char *names[8];
    size_t offs[8], sizes[8];
    int nt = rs_hstu_ops.tensors(&cfg, names, offs, sizes);
    for (int t = 0; t < nt; t++) {
        const rec *r = fget(&fx, names[t]);
        assert_true(r->n == sizes[t]);
        for (size_t i = 0; i < r->n; i++) P[offs[t] + i] = (float)r->v[i];
    }
    int n = B * L;
    int *start = malloc(sizeof(int) * (size_t)B);
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)n), *pos = malloc(sizeof(int32_t) * (size_t)n);
    int32_t *neg = malloc(sizeof(int32_t) * (size_t)n * R), *negs = malloc(sizeof(int32_t) * (size_t)R);
    int64_t *times = malloc(sizeof(int64_t) * (size_t)n), *next = malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < B; i++) start[i] = (int)fget(&fx, "start")->v[i];
    for (int i = 0; i < n; i++) {
        seq[i] = (int32_t)fget(&fx, "seq")->v[i];
        pos[i] = (int32_t)fget(&fx, "pos")->v[i];
        times[i] = (int64_t)fget(&fx, "times")->v[i];
    }
    for (int i = 0; i < n * R; i++) neg[i] = (int32_t)fget(&fx, "neg")->v[i];
    for (int i = 0; i < R; i++) negs[i] = (int32_t)fget(&fx, "neg_shared")->v[i];
    /* next event's timestamp; the last position uses its own */
    for (int i = 0; i < n; i++) next[i] = (i % L) + 1 < L ? times[i + 1] : times[i];
    rs_batch b = {0};
    b.B = B; b.L = L; b.seq = seq; b.start = start; b.times = times; b.next_times = next;
    b.pos = pos; b.neg = neg; b.n_neg = R; b.train = 1; b.seed = 5;
    float tau = (float)fget(&fx, "temperature")->v[0];

    recsys_ctx *ctx = new_ctx(2);
    rs_workspace *ws = rs_hstu_ops.ws_new(&cfg, B);
    float *Fo = malloc(sizeof(float) * (size_t)n * d), *dF = malloc(sizeof(float) * (size_t)n * d);
    assert_int_equal(rs_hstu_ops.forward(ctx, &cfg, P, ws, &b, Fo), RECSYS_OK);
    const rec *eF = fget(&fx, "expect_F");
    assert_true(eF->n == (size_t)n * d);
    for (int i = 0; i < n * d; i++)
        if (fabs(Fo[i] - eF->v[i]) > 2e-5) fail_msg("%s: F[%d] %.8g want %.8g", file, i, Fo[i], eF->v[i]);

    double loss;
    size_t io = RS_ITEM_TABLE_OFFSET;
    assert_int_equal(rs_loss_sampled_softmax(ctx, &cfg, P + io, &b, Fo, tau, 1, 0, dF, G + io, &loss),
                     RECSYS_OK);
    double want = fget(&fx, "expect_loss")->v[0];
    if (fabs(loss - want) > 1e-4 * want) fail_msg("%s: loss %.8g want %.8g", file, loss, want);
    assert_int_equal(rs_hstu_ops.backward(ctx, &cfg, P, ws, &b, dF, G), RECSYS_OK);
    for (int t = 0; t < nt; t++) {
        char gname[80];
        snprintf(gname, sizeof gname, "grad.%s", names[t]);
        const rec *r = fget(&fx, gname);
        double m = 0;
        for (size_t i = 0; i < r->n; i++) m = fmax(m, fabs(r->v[i]));
        for (size_t i = 0; i < r->n; i++)
            if (fabs(G[offs[t] + i] - r->v[i]) > 1e-3 * m + 1e-6)
                fail_msg("%s: %s[%zu] %.8g want %.8g", file, gname, i, G[offs[t] + i], r->v[i]);
    }
    b.neg = negs;
    assert_int_equal(rs_loss_sampled_softmax(ctx, &cfg, P + io, &b, Fo, tau, 1, 1, NULL, NULL, &loss),
                     RECSYS_OK);
    want = fget(&fx, "expect_loss_shared")->v[0];
    if (fabs(loss - want) > 1e-4 * want) fail_msg("%s: shared loss %.8g want %.8g", file, loss, want);

    rs_hstu_ops.ws_free(ws);
    recsys_ctx_free(ctx);
    free(P); free(G); free(start); free(seq); free(pos); free(neg); free(negs); free(times);
    free(next); free(Fo); free(dF);
    fixture_free(&fx);
}

static void test_fixture_time(void **state)
{
    (void)state;
    fixture_case("hstu_tiny_time.txt");
}

static void test_fixture_notime(void **state)
{
    (void)state;
    fixture_case("hstu_tiny_notime.txt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_per_position),
        cmocka_unit_test(test_loss_shared),
        cmocka_unit_test(test_loss_errors),
        cmocka_unit_test(test_layer_fd),
        cmocka_unit_test(test_model_fd),
        cmocka_unit_test(test_dropout_grad),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_determinism_large),
        cmocka_unit_test(test_errors_and_layout),
        cmocka_unit_test(test_fixture_time),
        cmocka_unit_test(test_fixture_notime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

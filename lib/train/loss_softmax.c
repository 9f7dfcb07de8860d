/*
 * Sampled softmax loss. Passes (each deterministic for any thread count):
 *  1. item inverse norms (parallel over item chunks);
 *  2. normalised outputs of the target positions, packed (parallel);
 *  3. shared negatives only: logits against the R normalised negative
 *     rows by one GEMM;
 *  4. per position: logits, log-softmax, loss and the logit gradients c;
 *     per-position negatives also form dF̂ here (parallel over positions);
 *  5. shared: dF̂ += c · Ê_neg (GEMM); then dF through the normalisation;
 *  6. item gradient. With ê = e / n (n = ‖e‖), ∂<f, ê>/∂e = (f - <f,ê> ê) / n,
 *     so each (position, item) pair adds (c / n) f to the item row and
 *     c <f,ê> / n to a per-item scalar beta; a last pass subtracts beta ê.
 *     The row sums run by column blocks over positions in order (like the
 *     BCE loss); shared negatives go through one GEMM (R x d) instead.
 */
#include "train/loss_softmax.h"

#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NORM_EPS 1e-6f
#define MASKED_LOGIT -5e4f
#define ITEM_CHUNK 256

struct rs_ssm_workspace {
    int n_items, dim, cap_pos, cap_neg;
    int *rows;      /* cap_pos: packed index -> position t */
    int *packed_of; /* cap_pos: position t -> packed index or -1 */
    float *fn;      /* cap_pos x d: normalised outputs */
    float *fscale;  /* cap_pos: 1 / max(‖F‖, eps) */
    float *dfn;     /* cap_pos x d: ∂loss/∂F̂ */
    float *coef;    /* cap_pos x (R+1): logits, then their gradients c */
    float *ccos;    /* cap_pos x (R+1): c · <F̂, ê> */
    float *inv_n;   /* n_items+1 */
    unsigned char *proj; /* n_items+1: 1 when ‖e‖ > eps (gradient projects) */
    float *beta;    /* n_items+1 */
    float *eneg, *gneg; /* cap_neg x d (shared negatives) */
    double *chunk_loss;
};

void rs_ssm_workspace_free(rs_ssm_workspace *ws)
{
    if (!ws) return;
    free(ws->rows);
    free(ws->packed_of);
    rs_free(ws->fn);
    rs_free(ws->fscale);
    rs_free(ws->dfn);
    rs_free(ws->coef);
    rs_free(ws->ccos);
    rs_free(ws->inv_n);
    free(ws->proj);
    rs_free(ws->beta);
    rs_free(ws->eneg);
    rs_free(ws->gneg);
    free(ws->chunk_loss);
    free(ws);
}

rs_ssm_workspace *rs_ssm_workspace_new(int n_items, int dim, int max_positions, int n_neg)
{
    if (n_items < 1 || dim < 1 || max_positions < 1 || n_neg < 0) return NULL;
    rs_ssm_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    size_t P = (size_t)max_positions, d = (size_t)dim, R1 = (size_t)n_neg + 1,
           I = (size_t)n_items + 1, Rn = n_neg > 0 ? (size_t)n_neg : 1;
    ws->n_items = n_items;
    ws->dim = dim;
    ws->cap_pos = max_positions;
    ws->cap_neg = n_neg;
    ws->rows = malloc(sizeof(int) * P);
    ws->packed_of = malloc(sizeof(int) * P);
    ws->fn = rs_malloc(rs_mul_size(P * d, sizeof(float)));
    ws->fscale = rs_malloc(sizeof(float) * P);
    ws->dfn = rs_malloc(rs_mul_size(P * d, sizeof(float)));
    ws->coef = rs_malloc(rs_mul_size(P * R1, sizeof(float)));
    ws->ccos = rs_malloc(rs_mul_size(P * R1, sizeof(float)));
    ws->inv_n = rs_malloc(sizeof(float) * I);
    ws->proj = malloc(I);
    ws->beta = rs_malloc(sizeof(float) * I);
    ws->eneg = rs_malloc(sizeof(float) * Rn * d);
    ws->gneg = rs_malloc(sizeof(float) * Rn * d);
    ws->chunk_loss = malloc(sizeof(double) * (size_t)rs_nn_chunks(max_positions));
    if (!ws->rows || !ws->packed_of || !ws->fn || !ws->fscale || !ws->dfn || !ws->coef ||
        !ws->ccos || !ws->inv_n || !ws->proj || !ws->beta || !ws->eneg || !ws->gneg ||
        !ws->chunk_loss) {
        rs_ssm_workspace_free(ws);
        return NULL;
    }
    return ws;
}

typedef struct ssm_job {
    const rs_batch *b;
    const rs_kernels *k;
    rs_ssm_workspace *ws;
    int d, R, n, n_pos, n_items, shared, normalize, item_block;
    const float *F, *items;
    float inv_tau, tau, inv_count;
    float *dF, *d_items;
} ssm_job;

static inline int chunk_end(int task, int chunk, int n)
{
    return (task + 1) * chunk < n ? (task + 1) * chunk : n;
}

/* 1/max(‖x‖, eps) of a row of d floats, and whether ‖x‖ > eps. */
static inline float inv_norm(const rs_kernels *k, const float *x, int d, unsigned char *above)
{
    float nrm = sqrtf(k->dot((size_t)d, x, x));
    *above = nrm > NORM_EPS;
    return 1.0f / (nrm > NORM_EPS ? nrm : NORM_EPS);
}

static void item_norm_task(void *arg, int task, int thread)
{
    (void)thread;
    const ssm_job *j = arg;
    rs_ssm_workspace *ws = j->ws;
    for (int i = task * ITEM_CHUNK; i < chunk_end(task, ITEM_CHUNK, j->n_items + 1); i++) {
        if (j->normalize) {
            ws->inv_n[i] = inv_norm(j->k, j->items + (size_t)i * j->d, j->d, &ws->proj[i]);
        } else {
            ws->inv_n[i] = 1.0f;
            ws->proj[i] = 0;
        }
    }
}

static void pack_task(void *arg, int task, int thread)
{
    (void)thread;
    const ssm_job *j = arg;
    rs_ssm_workspace *ws = j->ws;
    int d = j->d;
    for (int p = task * RS_NN_CHUNK_ROWS; p < chunk_end(task, RS_NN_CHUNK_ROWS, j->n_pos); p++) {
        const float *f = j->F + (size_t)ws->rows[p] * d;
        unsigned char above;
        float s = j->normalize ? inv_norm(j->k, f, d, &above) : 1.0f;
        ws->fscale[p] = s;
        float *o = ws->fn + (size_t)p * d;
        for (int c = 0; c < d; c++) o[c] = f[c] * s;
    }
}

static inline int32_t neg_id(const ssm_job *j, int t, int r)
{
    return j->shared ? j->b->neg[r] : j->b->neg[(size_t)t * j->R + r];
}

/* Pass 4: logits, loss, gradients c = (softmax - onehot) / (count τ). */
static void softmax_task(void *arg, int task, int thread)
{
    (void)thread;
    const ssm_job *j = arg;
    rs_ssm_workspace *ws = j->ws;
    const rs_batch *b = j->b;
    int d = j->d, R = j->R, R1 = R + 1;
    double acc = 0.0;
    for (int p = task * RS_NN_CHUNK_ROWS; p < chunk_end(task, RS_NN_CHUNK_ROWS, j->n_pos); p++) {
        int t = ws->rows[p];
        int32_t pos = b->pos[t];
        const float *f = ws->fn + (size_t)p * d;
        float *l = ws->coef + (size_t)p * R1, *cc = ws->ccos + (size_t)p * R1;
        /* cosines first (cc), logits in l */
        cc[0] = j->k->dot((size_t)d, f, j->items + (size_t)pos * d) * ws->inv_n[pos];
        l[0] = cc[0] * j->inv_tau;
        float mx = l[0];
        for (int r = 0; r < R; r++) {
            int32_t id = neg_id(j, t, r);
            if (id == pos) {
                cc[1 + r] = 0.0f;
                l[1 + r] = MASKED_LOGIT;
                continue;
            }
            if (j->shared) {
                cc[1 + r] = l[1 + r] * j->tau; /* the GEMM wrote the logit */
            } else {
                cc[1 + r] = j->k->dot((size_t)d, f, j->items + (size_t)id * d) * ws->inv_n[id];
                l[1 + r] = cc[1 + r] * j->inv_tau;
            }
            if (l[1 + r] > mx) mx = l[1 + r];
        }
        /* softmax over [positive, negatives]; masked logits give exp = 0 */
        float l0 = l[0];
        double sum = 0.0;
        for (int r = 0; r < R1; r++) {
            l[r] = expf(l[r] - mx);
            sum += l[r];
        }
        acc += mx + log(sum) - l0;
        float inv_sum = (float)(1.0 / sum), scale = j->inv_count * j->inv_tau;
        for (int r = 0; r < R1; r++) {
            float g = (l[r] * inv_sum - (r == 0 ? 1.0f : 0.0f)) * scale;
            l[r] = g;
            cc[r] *= g;
        }
        /* ∂loss/∂F̂ from the positive (and per-position negatives) */
        float *df = ws->dfn + (size_t)p * d;
        float w0 = l[0] * ws->inv_n[pos];
        const float *ep = j->items + (size_t)pos * d;
        for (int c = 0; c < d; c++) df[c] = w0 * ep[c];
        if (!j->shared)
            for (int r = 0; r < R; r++) {
                if (l[1 + r] == 0.0f) continue;
                int32_t id = neg_id(j, t, r);
                float w = l[1 + r] * ws->inv_n[id];
                const float *e = j->items + (size_t)id * d;
                for (int c = 0; c < d; c++) df[c] += w * e[c];
            }
    }
    ws->chunk_loss[task] = acc;
}

/* dF rows (all B*L positions): through the output normalisation, zero
 * where there is no target. */
static void dF_task(void *arg, int task, int thread)
{
    (void)thread;
    const ssm_job *j = arg;
    rs_ssm_workspace *ws = j->ws;
    int d = j->d;
    for (int t = task * RS_NN_CHUNK_ROWS; t < chunk_end(task, RS_NN_CHUNK_ROWS, j->n); t++) {
        float *o = j->dF + (size_t)t * d;
        int p = ws->packed_of[t];
        if (p < 0) {
            memset(o, 0, sizeof(float) * (size_t)d);
            continue;
        }
        const float *g = ws->dfn + (size_t)p * d, *f = ws->fn + (size_t)p * d;
        float s = ws->fscale[p];
        if (!j->normalize) {
            memcpy(o, g, sizeof(float) * (size_t)d);
        } else if (s < 1.0f / NORM_EPS) { /* ‖F‖ > eps: (g - <g,f̂> f̂) / ‖F‖ */
            float gf = j->k->dot((size_t)d, g, f);
            for (int c = 0; c < d; c++) o[c] = (g[c] - gf * f[c]) * s;
        } else {
            for (int c = 0; c < d; c++) o[c] = g[c] * s;
        }
    }
}

/* Item rows += (c / n) f̂ and beta for the items of one id block: every
 * task scans all (position, candidate) pairs but updates only its own
 * items, whole rows at a time, positions in order, so the sums do not
 * depend on the number of threads. */
static void item_grad_task(void *arg, int task, int thread)
{
    (void)thread;
    const ssm_job *j = arg;
    rs_ssm_workspace *ws = j->ws;
    const rs_batch *b = j->b;
    int d = j->d, R1 = j->R + 1, nr = j->shared ? 1 : R1;
    int32_t lo = task * j->item_block, hi = lo + j->item_block;
    for (int p = 0; p < j->n_pos; p++) {
        int t = ws->rows[p];
        const float *f = ws->fn + (size_t)p * d;
        const float *g = ws->coef + (size_t)p * R1, *cc = ws->ccos + (size_t)p * R1;
        for (int r = 0; r < nr; r++) {
            int32_t id = r == 0 ? b->pos[t] : neg_id(j, t, r - 1);
            if (id < lo || id >= hi || g[r] == 0.0f) continue;
            float w = g[r] * ws->inv_n[id];
            float *e = j->d_items + (size_t)id * d;
            for (int c = 0; c < d; c++) e[c] += w * f[c];
            ws->beta[id] += cc[r] * ws->inv_n[id];
        }
    }
}

/* Item rows -= beta ê (the radial part), for normalised items. */
static void item_project_task(void *arg, int task, int thread)
{
    (void)thread;
    const ssm_job *j = arg;
    rs_ssm_workspace *ws = j->ws;
    int d = j->d;
    for (int i = task * ITEM_CHUNK; i < chunk_end(task, ITEM_CHUNK, j->n_items + 1); i++) {
        if (!ws->proj[i] || ws->beta[i] == 0.0f) continue;
        float w = ws->beta[i] * ws->inv_n[i];
        const float *e = j->items + (size_t)i * d;
        float *g = j->d_items + (size_t)i * d;
        for (int c = 0; c < d; c++) g[c] -= w * e[c];
    }
}

static recsys_status check_args(recsys_ctx *ctx, const rs_model_config *cfg, const float *items,
                                const rs_batch *b, const float *F, float temperature,
                                int shared, double *loss)
{
    if (!ctx || !cfg || !items || !b || !F || !loss || cfg->dim <= 0 || cfg->n_items < 1)
        return rs_error(ctx, RECSYS_E_INVALID, "sampled softmax: NULL argument");
    if (b->B < 0 || b->L <= 0 || !b->pos || b->n_neg < 0 || (b->n_neg > 0 && !b->neg))
        return rs_error(ctx, RECSYS_E_INVALID, "sampled softmax: batch without targets");
    if (!(temperature > 0.0f) || !isfinite(temperature))
        return rs_error(ctx, RECSYS_E_INVALID, "sampled softmax: temperature %g must be > 0",
                        (double)temperature);
    int n = b->B * b->L, R = b->n_neg;
    for (int t = 0; t < n; t++)
        if (b->pos[t] < 0 || b->pos[t] > cfg->n_items)
            return rs_error(ctx, RECSYS_E_INVALID,
                            "sampled softmax: target item %d out of range 0..%d", (int)b->pos[t],
                            cfg->n_items);
    size_t n_ids = shared ? (size_t)R : (size_t)n * R;
    for (size_t i = 0; i < n_ids; i++) {
        if (!shared && b->pos[i / (size_t)R] == 0) continue; /* negatives of pads unread */
        if (b->neg[i] < 0 || b->neg[i] > cfg->n_items)
            return rs_error(ctx, RECSYS_E_INVALID,
                            "sampled softmax: negative item %d out of range 0..%d",
                            (int)b->neg[i], cfg->n_items);
    }
    return RECSYS_OK;
}

recsys_status rs_loss_sampled_softmax_ws(recsys_ctx *ctx, const rs_model_config *cfg,
                                         const float *items, const rs_batch *b, const float *F,
                                         float temperature, int normalize, int shared_negatives,
                                         rs_ssm_workspace *ws, float *dF, float *d_items,
                                         double *loss)
{
    int shared = shared_negatives != 0;
    recsys_status st = check_args(ctx, cfg, items, b, F, temperature, shared, loss);
    if (st) return st;
    int n = b->B * b->L, d = cfg->dim, R = b->n_neg;
    rs_ssm_workspace *own = NULL;
    if (!ws) {
        own = ws = rs_ssm_workspace_new(cfg->n_items, d, n > 0 ? n : 1, R);
        if (!ws) return rs_error(ctx, RECSYS_E_NOMEM, "sampled softmax: out of memory");
    } else if (ws->n_items != cfg->n_items || ws->dim != d || ws->cap_pos < n || ws->cap_neg < R) {
        return rs_error(ctx, RECSYS_E_INVALID,
                        "sampled softmax: workspace for %d positions x %d negatives (d %d, %d "
                        "items), batch needs %d x %d (d %d, %d items)", ws->cap_pos, ws->cap_neg,
                        ws->dim, ws->n_items, n, R, d, cfg->n_items);
    }
    /* Pack the positions that have a target. */
    int n_pos = 0;
    for (int t = 0; t < n; t++) {
        ws->packed_of[t] = b->pos[t] ? n_pos : -1;
        if (b->pos[t]) ws->rows[n_pos++] = t;
    }
    ssm_job j = {b, &ctx->kern, ws, d, R, n, n_pos, cfg->n_items, shared, normalize != 0, 16,
                 F, items, 1.0f / temperature, temperature,
                 n_pos ? 1.0f / (float)n_pos : 0.0f, dF, d_items};
    *loss = 0.0;
    if (n_pos == 0) {
        if (dF) memset(dF, 0, sizeof(float) * (size_t)n * d);
        rs_ssm_workspace_free(own);
        return RECSYS_OK;
    }
    int item_tasks = (cfg->n_items + 1 + ITEM_CHUNK - 1) / ITEM_CHUNK;
    int pos_tasks = rs_nn_chunks(n_pos);
    rs_pool_run(ctx->pool, item_tasks, item_norm_task, &j);
    rs_pool_run(ctx->pool, pos_tasks, pack_task, &j);
    if (shared && R > 0) {
        for (int r = 0; r < R; r++) {
            int32_t id = b->neg[r];
            const float *e = items + (size_t)id * d;
            for (int c = 0; c < d; c++) ws->eneg[(size_t)r * d + c] = e[c] * ws->inv_n[id];
        }
        rs_gemm(ctx, 0, 1, n_pos, R, d, j.inv_tau, ws->fn, d, ws->eneg, d, 0.0f, ws->coef + 1,
                R + 1);
    }
    rs_pool_run(ctx->pool, pos_tasks, softmax_task, &j);
    double total = 0.0;
    for (int t = 0; t < pos_tasks; t++) total += ws->chunk_loss[t];
    *loss = total / (double)n_pos;

    if (dF) {
        if (shared && R > 0)
            rs_gemm(ctx, 0, 0, n_pos, d, R, 1.0f, ws->coef + 1, R + 1, ws->eneg, d, 1.0f, ws->dfn,
                    d);
        rs_pool_run(ctx->pool, rs_nn_chunks(n), dF_task, &j);
    }
    if (d_items) {
        memset(ws->beta, 0, sizeof(float) * ((size_t)cfg->n_items + 1));
        /* a few id blocks per thread: each block rescans the pairs (cheap)
         * and does 1/blocks of the row updates (the cost) */
        int blocks = 2 * rs_pool_threads(ctx->pool);
        j.item_block = (cfg->n_items + 1 + blocks - 1) / blocks;
        rs_pool_run(ctx->pool, blocks, item_grad_task, &j);
        if (shared && R > 0) {
            /* G = cᵀ F̂ for the R shared rows, then rows in order */
            rs_gemm(ctx, 1, 0, R, d, n_pos, 1.0f, ws->coef + 1, R + 1, ws->fn, d, 0.0f, ws->gneg, d);
            for (int r = 0; r < R; r++) {
                int32_t id = b->neg[r];
                const float *g = ws->gneg + (size_t)r * d, *eh = ws->eneg + (size_t)r * d;
                float *o = d_items + (size_t)id * d, w = ws->inv_n[id];
                for (int c = 0; c < d; c++) o[c] += w * g[c];
                ws->beta[id] += ctx->kern.dot((size_t)d, g, eh) * w;
            }
        }
        if (normalize) rs_pool_run(ctx->pool, item_tasks, item_project_task, &j);
    }
    rs_ssm_workspace_free(own);
    return RECSYS_OK;
}

recsys_status rs_loss_sampled_softmax(recsys_ctx *ctx, const rs_model_config *cfg,
                                      const float *items, const rs_batch *b, const float *F,
                                      float temperature, int normalize, int shared_negatives,
                                      float *dF, float *d_items, double *loss)
{
    return rs_loss_sampled_softmax_ws(ctx, cfg, items, b, F, temperature, normalize,
                                      shared_negatives, NULL, dF, d_items, loss);
}

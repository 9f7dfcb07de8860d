/* LoRA forward/backward, the bank mix and the gate (lib/adapters/lora.h). */
#include "adapters/lora.h"
#include "nn/nn.h"

#include <math.h>
#include <string.h>

#define GATE_LN_EPS 1e-5f

/* ------------------------------------------------------------ LoRA path */

typedef struct lora_job {
    recsys_ctx *ctx;
    const rs_lora_seg *seg;
    int in, out, r, ldx, ldy, lddx;
    float scale;
    const float *x, *dy;
    float *t, *y, *u, *dx;
    const float *tc;
} lora_job;

/* One segment's forward; gemm is rs_gemm (whole pool) or the bare kernel. */
static void seg_fwd(const lora_job *j, const rs_lora_seg *s, int pooled)
{
    float *t = j->t + (size_t)s->row0 * j->r;
    if (s->n <= 0) return;
    if (!s->A) {
        memset(t, 0, sizeof(float) * (size_t)s->n * j->r);
        return;
    }
    const float *x = j->x + (size_t)s->row0 * j->ldx;
    float *y = j->y + (size_t)s->row0 * j->ldy;
    if (pooled) {
        rs_gemm(j->ctx, 0, 1, s->n, j->r, j->in, 1.0f, x, j->ldx, s->A, j->in, 0.0f, t, j->r);
        rs_gemm(j->ctx, 0, 1, s->n, j->out, j->r, j->scale, t, j->r, s->B, j->r, 1.0f, y, j->ldy);
    } else {
        rs_gemm_fn g = j->ctx->kern.gemm;
        g(0, 1, s->n, j->r, j->in, 1.0f, x, j->ldx, s->A, j->in, 0.0f, t, j->r, NULL);
        g(0, 1, s->n, j->out, j->r, j->scale, t, j->r, s->B, j->r, 1.0f, y, j->ldy, NULL);
    }
}

static void seg_bwd(const lora_job *j, const rs_lora_seg *s, int pooled)
{
    if (s->n <= 0 || !s->A) return;
    int in = j->in, out = j->out, r = j->r;
    const float *x = j->x + (size_t)s->row0 * j->ldx;
    const float *dy = j->dy + (size_t)s->row0 * j->ldy; /* ldy holds lddy here */
    const float *t = j->tc + (size_t)s->row0 * r;
    float *u = j->u + (size_t)s->row0 * r;
    float *dx = j->dx ? j->dx + (size_t)s->row0 * j->lddx : NULL;
    if (pooled) {
        recsys_ctx *c = j->ctx;
        rs_gemm(c, 0, 0, s->n, r, out, j->scale, dy, j->ldy, s->B, r, 0.0f, u, r);
        if (s->dB) rs_gemm(c, 1, 0, out, r, s->n, j->scale, dy, j->ldy, t, r, 1.0f, s->dB, r);
        if (s->dA) rs_gemm(c, 1, 0, r, in, s->n, 1.0f, u, r, x, j->ldx, 1.0f, s->dA, in);
        if (dx) rs_gemm(c, 0, 0, s->n, in, r, 1.0f, u, r, s->A, in, 1.0f, dx, j->lddx);
    } else {
        rs_gemm_fn g = j->ctx->kern.gemm;
        g(0, 0, s->n, r, out, j->scale, dy, j->ldy, s->B, r, 0.0f, u, r, NULL);
        if (s->dB) g(1, 0, out, r, s->n, j->scale, dy, j->ldy, t, r, 1.0f, s->dB, r, NULL);
        if (s->dA) g(1, 0, r, in, s->n, 1.0f, u, r, x, j->ldx, 1.0f, s->dA, in, NULL);
        if (dx) g(0, 0, s->n, in, r, 1.0f, u, r, s->A, in, 1.0f, dx, j->lddx, NULL);
    }
}

static void fwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const lora_job *j = arg;
    seg_fwd(j, &j->seg[task], 0);
}

static void bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const lora_job *j = arg;
    seg_bwd(j, &j->seg[task], 0);
}

void rs_lora_fwd(recsys_ctx *ctx, int nseg, const rs_lora_seg *seg, int in, int out, int r,
                 float scale, const float *x, int ldx, float *t, float *y, int ldy)
{
    if (nseg <= 0 || r <= 0) return;
    lora_job j = {.ctx = ctx, .seg = seg, .in = in, .out = out, .r = r, .ldx = ldx, .ldy = ldy,
                  .scale = scale, .x = x, .t = t, .y = y};
    if (nseg == 1)
        seg_fwd(&j, seg, 1);
    else
        rs_pool_run(ctx->pool, nseg, fwd_task, &j);
}

void rs_lora_bwd(recsys_ctx *ctx, int nseg, const rs_lora_seg *seg, int in, int out, int r,
                 float scale, const float *x, int ldx, const float *t, const float *dy,
                 int lddy, float *u, float *dx, int lddx)
{
    if (nseg <= 0 || r <= 0) return;
    lora_job j = {.ctx = ctx, .seg = seg, .in = in, .out = out, .r = r, .ldx = ldx, .ldy = lddy,
                  .lddx = lddx, .scale = scale, .x = x, .dy = dy, .tc = t, .u = u, .dx = dx};
    if (nseg == 1)
        seg_bwd(&j, seg, 1);
    else
        rs_pool_run(ctx->pool, nseg, bwd_task, &j);
}

/* ------------------------------------------------------------------ bank */

void rs_bank_mix(recsys_ctx *ctx, int U, int K, size_t P, const float *alpha, const float *bank,
                 float *out)
{
    if (U <= 0 || P == 0) return;
    rs_gemm(ctx, 0, 0, U, (int)P, K, 1.0f, alpha, K, bank, (int)P, 0.0f, out, (int)P);
}

void rs_bank_mix_bwd(recsys_ctx *ctx, int U, int K, size_t P, const float *alpha,
                     const float *bank, const float *dout, float *dbank, float *dalpha)
{
    if (U <= 0 || P == 0) return;
    if (dbank) rs_gemm(ctx, 1, 0, K, (int)P, U, 1.0f, alpha, K, dout, (int)P, 1.0f, dbank, (int)P);
    if (dalpha) rs_gemm(ctx, 0, 1, U, K, (int)P, 1.0f, dout, (int)P, bank, (int)P, 0.0f, dalpha, K);
}

/* ------------------------------------------------------------------ gate */

typedef struct gate_off {
    size_t g, b, W1, b1, W2, b2, n;
} gate_off;

static gate_off gate_layout(const rs_gate_shape *s)
{
    gate_off o;
    size_t d = (size_t)s->d, H = (size_t)s->hidden, K = (size_t)s->K;
    o.g = 0;
    o.b = d;
    o.W1 = 2 * d;
    o.b1 = o.W1 + H * d;
    o.W2 = o.b1 + H;
    o.b2 = o.W2 + K * H;
    o.n = o.b2 + K;
    return o;
}

size_t rs_gate_n_params(const rs_gate_shape *g) { return gate_layout(g).n; }

void rs_gate_init(const rs_gate_shape *g, float *params, rs_rng *rng)
{
    gate_off o = gate_layout(g);
    memset(params, 0, sizeof(float) * o.n);
    for (int i = 0; i < g->d; i++) params[o.g + i] = 1.0f;
    float b1 = sqrtf(6.0f / (float)g->d), b2 = sqrtf(6.0f / (float)g->hidden);
    for (size_t i = 0; i < (size_t)g->hidden * g->d; i++)
        params[o.W1 + i] = (float)((2.0 * rs_rng_uniform(rng) - 1.0) * b1);
    for (size_t i = 0; i < (size_t)g->K * g->hidden; i++)
        params[o.W2 + i] = (float)((2.0 * rs_rng_uniform(rng) - 1.0) * b2 * 0.1);
}

recsys_status rs_gate_ws_init(rs_gate_ws *w, const rs_gate_shape *g, int cap)
{
    memset(w, 0, sizeof *w);
    size_t c = (size_t)(cap > 0 ? cap : 1);
    int wide = 2 * g->d;
    if (g->hidden > wide) wide = g->hidden;
    if (g->K > wide) wide = g->K;
    size_t part = rs_nn_partial_floats((int)c, wide);
    w->cap = (int)c;
    w->xn = rs_malloc(sizeof(float) * c * g->d);
    w->mean = rs_malloc(sizeof(float) * c);
    w->rstd = rs_malloc(sizeof(float) * c);
    w->hid = rs_malloc(sizeof(float) * c * g->hidden);
    w->alpha = rs_malloc(sizeof(float) * c * g->K);
    /* scratch: hc, dxn, dx (cap x d each), dlog (cap x K), dhid (cap x H), partial */
    w->scratch = rs_malloc(sizeof(float) * (c * (3 * (size_t)g->d + g->K + g->hidden) + part));
    if (!w->xn || !w->mean || !w->rstd || !w->hid || !w->alpha || !w->scratch) {
        rs_gate_ws_release(w);
        return RECSYS_E_NOMEM;
    }
    return RECSYS_OK;
}

void rs_gate_ws_release(rs_gate_ws *w)
{
    rs_free(w->xn);
    rs_free(w->mean);
    rs_free(w->rstd);
    rs_free(w->hid);
    rs_free(w->alpha);
    rs_free(w->scratch);
    memset(w, 0, sizeof *w);
}

void rs_gate_fwd(recsys_ctx *ctx, const rs_gate_shape *g, const float *params, rs_gate_ws *w,
                 int U, const float *h, int ldh, int train, uint64_t seed, const int32_t *row_id,
                 float *alpha)
{
    gate_off o = gate_layout(g);
    int d = g->d, H = g->hidden, K = g->K;
    w->U = U;
    /* LN over a contiguous copy (layernorm rows are contiguous). */
    float *hc = w->scratch;
    for (int i = 0; i < U; i++) memcpy(hc + (size_t)i * d, h + (size_t)i * ldh, sizeof(float) * d);
    rs_layernorm_fwd(ctx, U, d, hc, NULL, params + o.g, params + o.b, GATE_LN_EPS, w->xn, w->mean,
                     w->rstd);
    rs_gemm(ctx, 0, 1, U, H, d, 1.0f, w->xn, d, params + o.W1, d, 0.0f, w->hid, H);
    rs_bias_relu_dropout_fwd(ctx, U, H, w->hid, params + o.b1, train ? g->dropout : 0.0f, seed,
                             row_id);
    rs_linear_fwd(ctx, U, H, K, w->hid, H, params + o.W2, params + o.b2, w->alpha, K);
    for (int i = 0; i < U; i++) {
        float *a = w->alpha + (size_t)i * K;
        float m = -INFINITY;
        for (int k = 0; k < K; k++) {
            a[k] /= g->tau;
            if (a[k] > m) m = a[k];
        }
        double s = 0.0;
        for (int k = 0; k < K; k++) {
            a[k] = expf(a[k] - m);
            s += a[k];
        }
        for (int k = 0; k < K; k++) a[k] = (float)(a[k] / s);
    }
    if (alpha && alpha != w->alpha) memcpy(alpha, w->alpha, sizeof(float) * (size_t)U * K);
}

void rs_gate_bwd(recsys_ctx *ctx, const rs_gate_shape *g, const float *params, rs_gate_ws *w,
                 const float *h, int ldh, int train, const float *dalpha, float *grads)
{
    gate_off o = gate_layout(g);
    int d = g->d, H = g->hidden, K = g->K, U = w->U;
    size_t cap = (size_t)w->cap;
    float *hc = w->scratch, *dxn = hc + cap * d, *dx = dxn + cap * d;
    float *dlog = dx + cap * d, *dhid = dlog + cap * K, *partial = dhid + cap * H;
    for (int i = 0; i < U; i++) {
        const float *a = w->alpha + (size_t)i * K, *da = dalpha + (size_t)i * K;
        double dot = 0.0;
        for (int k = 0; k < K; k++) dot += (double)a[k] * da[k];
        for (int k = 0; k < K; k++)
            dlog[(size_t)i * K + k] = (float)(a[k] * (da[k] - dot) / g->tau);
    }
    rs_linear_bwd(ctx, U, H, K, w->hid, H, params + o.W2, dlog, K, dhid, H, 0, grads + o.W2,
                  grads + o.b2, partial);
    rs_relu_dropout_bwd(ctx, U, H, w->hid, train ? g->dropout : 0.0f, dhid);
    rs_linear_bwd(ctx, U, d, H, w->xn, d, params + o.W1, dhid, H, dxn, d, 0, grads + o.W1,
                  grads + o.b1, partial);
    for (int i = 0; i < U; i++) memcpy(hc + (size_t)i * d, h + (size_t)i * ldh, sizeof(float) * d);
    /* dx (the input's gradient) is discarded: the user state is detached. */
    rs_layernorm_bwd(ctx, U, d, hc, NULL, params + o.g, w->mean, w->rstd, dxn, dx, grads + o.g,
                     grads + o.b, partial);
}

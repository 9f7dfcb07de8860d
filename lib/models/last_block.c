/* The serving forward's last block: only each row's last position.
 *
 * Scoring (sessions, evaluation) reads one hidden state per row: the last
 * position's. Causal attention means no earlier position reads the last
 * block's output, so in the last block only the keys and values are needed
 * for every position; the query, attention, projections, FFN and the final
 * norm run for one row per sequence. sasrec.c / hstu.c call these when a
 * batch asks for it (rs_batch.last_only, inference), after the earlier
 * blocks ran as usual on the packed rows; out receives row b's result at
 * slot L-1 only (the other slots are not written).
 *
 * Projections run through rs_proj_fwd with the model's own rs_proj sites
 * (the seam per-projection extras hook into: adapters apply here too, with
 * rs_model_run.last_rows telling the hook which rows are which); the other parameters (layer
 * norm gains, HSTU's relative biases) are found by tensor name. Results agree with the full
 * forward within float rounding (tests/test_serve.c,
 * test_last_only_equals_full: 1e-5), not bit for bit: the one-query
 * attention here is its own loop. */
#include "models/rows.h"

#include "nn/nn.h"
#include "hstu_bucket.h"

#include <math.h>
#include <string.h>

#define SAS_LN_EPS 1e-8f
#define HSTU_LN_EPS 1e-6f
#define HSTU_L2_EPS 1e-6f

const float *rs_run_tensor(const rs_model_run *r, const char *name, int k)
{
    const rs_tensor_table *t = r->tab;
    for (int i = 0; i < t->n; i++)
        if (t->slice[i] && !strcmp(t->name[i], name)) return r->P + rs_tensor_at(t, i, k);
    return NULL;
}

/* last: the n rows are one per batch row (each row's last position), which
 * a hook (adapters) must know to give each row its own extras; else they
 * are the N packed rows. */
void rs_rows_proj(const rs_model_run *r, const rs_proj *p, int k, int n, int last,
                  const float *x, int ldx, float *y, int ldy)
{
    if (r->few_rows_dots && n <= 2 && !r->hook) {
        /* one output per dot product: a GEMM's tile would be mostly idle */
        const float *W = rs_proj_weight(r, p, k), *b = rs_proj_bias(r, p, k);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < p->out; o++)
                y[(size_t)i * ldy + o] = r->ctx->kern.dot((size_t)p->in, W + (size_t)o * p->in,
                                                          x + (size_t)i * ldx) +
                                         (b ? b[o] : 0.0f);
        return;
    }
    rs_model_run rl = *r;
    rl.last_rows = last;
    rs_proj_fwd(&rl, p, k, n, x, ldx, y, ldy);
    const float *b = p->bias_fused ? rs_proj_bias(r, p, k) : NULL;
    for (int i = 0; b && i < n; i++)
        for (int c = 0; c < p->out; c++) y[(size_t)i * ldy + c] += b[c];
}

static size_t kv_width(const rs_model_config *c)
{
    if (c->type == RS_MODEL_SASREC) return 2 * (size_t)c->dim;
    return (size_t)c->heads * ((size_t)c->dv + 2 * (size_t)c->dqk); /* V|Q|K */
}

size_t rs_rows_width(const rs_model_config *c)
{
    size_t d = (size_t)c->dim, hdv = (size_t)c->heads * c->dv, hq = (size_t)c->heads * c->dqk;
    size_t w = d > hdv ? d : hdv;
    if (w < hq) w = hq;
    if ((size_t)c->ffn_dim > w) w = (size_t)c->ffn_dim;
    return w;
}

size_t rs_rows_floats(const rs_model_config *c, int B)
{
    size_t w = rs_rows_width(c);
    return 8 * (size_t)B * w + 2 * (size_t)B + 3 * (size_t)c->max_len + w + 16 * 16;
}

float *rs_rows_carve(const rs_model_config *c, int B, float *s, rs_rows *b)
{
    size_t w = rs_rows_width(c);
    float **rows[8] = {&b->xl, &b->ql, &b->ol, &b->al, &b->tl, &b->yl, &b->hl, &b->ul};
    for (int i = 0; i < 8; i++) {
        *rows[i] = s;
        s += (size_t)B * w;
    }
    b->mean = s;
    s += B;
    b->rstd = s;
    s += B;
    b->w = s;
    return s + 3 * (size_t)c->max_len + w;
}

/* Scratch of the last block for B rows of a batch of N packed rows: the
 * keys and values (SASRec) or V|Q|K (HSTU) and the normalised inputs of
 * every packed row, then B rows of rs_rows (whose mean/rstd take N). */
typedef struct last_bufs {
    float *kv, *xn, *mean, *rstd;
    rs_rows r;
} last_bufs;

size_t rs_last_scratch_floats(const rs_model_config *c, int B)
{
    size_t R = (size_t)B * (size_t)c->max_len;
    return R * kv_width(c) + R * (size_t)c->dim + 2 * R + rs_rows_floats(c, B);
}

static last_bufs carve(const rs_model_config *c, int B, float *s)
{
    size_t R = (size_t)B * (size_t)c->max_len;
    last_bufs b;
    b.kv = s;
    s += R * kv_width(c);
    b.xn = s;
    s += R * (size_t)c->dim;
    b.mean = s;
    s += R;
    b.rstd = s;
    s += R;
    rs_rows_carve(c, B, s, &b.r);
    return b;
}

/* Gather row b's last packed row of X into dst (B x d). */
static void gather_last(int B, int d, const float *X, const int *base, const int *len, float *dst)
{
    for (int b = 0; b < B; b++) {
        if (len[b] > 0) memcpy(dst + (size_t)b * d, X + ((size_t)base[b] + len[b] - 1) * d,
                               sizeof(float) * (size_t)d);
        else memset(dst + (size_t)b * d, 0, sizeof(float) * (size_t)d);
    }
}

/* ---------------------------------------------------------------- SASRec */

void rs_sasrec_attend(const rs_kernels *kern, int H, int dh, const float *q, const float *keys,
                      size_t ks, const float *values, size_t vs, int n, float *w, float *o)
{
    float scale = 1.0f / sqrtf((float)dh);
    memset(o, 0, sizeof(float) * (size_t)H * dh);
    for (int h = 0; h < H && n > 0; h++) {
        const float *qh = q + (size_t)h * dh;
        for (int j = 0; j < n; j++)
            w[j] = kern->dot((size_t)dh, qh, keys + (size_t)j * ks + (size_t)h * dh) * scale;
        kern->softmax((size_t)n, w);
        float *oh = o + (size_t)h * dh;
        for (int j = 0; j < n; j++) {
            const float *vj = values + (size_t)j * vs + (size_t)h * dh;
            for (int t = 0; t < dh; t++) oh[t] += w[j] * vj[t];
        }
    }
}

void rs_sasrec_rows_tail(const rs_model_run *r, const rs_last_sasrec_projs *pj, int k, int B,
                         int last, rs_rows *s)
{
    recsys_ctx *ctx = r->ctx;
    const rs_model_config *c = r->cfg;
    int d = c->dim, F = c->ffn_dim;
    const float *g1 = rs_run_tensor(r, "attn_ln.gamma", k);
    const float *be1 = rs_run_tensor(r, "attn_ln.beta", k);
    const float *g2 = rs_run_tensor(r, "ffn_ln.gamma", k);
    const float *be2 = rs_run_tensor(r, "ffn_ln.beta", k);
    rs_rows_proj(r, pj->out, k, B, last, s->ol, d, s->al, d); /* A */
    switch (c->norm) {
    case RS_NORM_ORIGINAL: /* N = LN_f(Q + A); Y = N + FFN(N) */
        rs_layernorm_fwd(ctx, B, d, s->tl, s->al, g2, be2, SAS_LN_EPS, s->ol, s->mean, s->rstd);
        rs_rows_proj(r, pj->ffn1, k, B, last, s->ol, d, s->hl, F);
        rs_relu_fwd(ctx, B, F, s->hl, F);
        rs_rows_proj(r, pj->ffn2, k, B, last, s->hl, F, s->yl, d);
        rs_nn_add(ctx, B, d, s->ol, s->yl);
        break;
    case RS_NORM_POST: /* E1 = LN_a(X + A); Y = LN_f(E1 + FFN(E1)) */
        rs_layernorm_fwd(ctx, B, d, s->xl, s->al, g1, be1, SAS_LN_EPS, s->ol, s->mean, s->rstd);
        rs_rows_proj(r, pj->ffn1, k, B, last, s->ol, d, s->hl, F);
        rs_relu_fwd(ctx, B, F, s->hl, F);
        rs_rows_proj(r, pj->ffn2, k, B, last, s->hl, F, s->tl, d);
        rs_layernorm_fwd(ctx, B, d, s->ol, s->tl, g2, be2, SAS_LN_EPS, s->yl, s->mean, s->rstd);
        break;
    default: /* pre: X1 = X + A; Y = X1 + FFN(LN_f(X1)) */
        rs_nn_add(ctx, B, d, s->xl, s->al); /* al = X1 */
        rs_layernorm_fwd(ctx, B, d, s->al, NULL, g2, be2, SAS_LN_EPS, s->ol, s->mean, s->rstd);
        rs_rows_proj(r, pj->ffn1, k, B, last, s->ol, d, s->hl, F);
        rs_relu_fwd(ctx, B, F, s->hl, F);
        rs_rows_proj(r, pj->ffn2, k, B, last, s->hl, F, s->yl, d);
        rs_nn_add(ctx, B, d, s->al, s->yl);
        break;
    }
}

void rs_sasrec_rows_final(const rs_model_run *r, int n, const float *y, rs_rows *s, float *out)
{
    const rs_model_config *c = r->cfg;
    const float *gf = rs_run_tensor(r, "final_ln.gamma", 0);
    const float *bf = rs_run_tensor(r, "final_ln.beta", 0);
    rs_layernorm_fwd(r->ctx, n, c->dim, y, NULL, gf, bf, SAS_LN_EPS, out, s->mean, s->rstd);
}

void rs_sasrec_last_fwd(const rs_model_run *r, const rs_last_sasrec_projs *pj, const float *X,
                        int N, int B, const int *base, const int *len, float *scratch, float *out)
{
    recsys_ctx *ctx = r->ctx;
    const rs_model_config *c = r->cfg;
    int d = c->dim, k = c->blocks - 1, L = c->max_len, H = c->heads, dh = d / H;
    last_bufs lb = carve(c, B, scratch);
    rs_rows *s = &lb.r;
    const float *g1 = rs_run_tensor(r, "attn_ln.gamma", k);
    const float *be1 = rs_run_tensor(r, "attn_ln.beta", k);

    /* Keys and values of every packed row; queries of the last rows. */
    gather_last(B, d, X, base, len, s->xl);
    const float *kv_in = X, *q_in = s->xl;
    if (c->norm == RS_NORM_PRE) {
        rs_layernorm_fwd(ctx, N, d, X, NULL, g1, be1, SAS_LN_EPS, lb.xn, lb.mean, lb.rstd);
        kv_in = lb.xn;
        gather_last(B, d, lb.xn, base, len, s->tl);
        q_in = s->tl;
    } else if (c->norm == RS_NORM_ORIGINAL) {
        rs_layernorm_fwd(ctx, B, d, s->xl, NULL, g1, be1, SAS_LN_EPS, s->tl, s->mean, s->rstd);
        q_in = s->tl; /* Q = LN_a(X): the residual of the original placement */
    }
    rs_rows_proj(r, pj->kv, k, N, 0, kv_in, d, lb.kv, 2 * d);
    rs_rows_proj(r, pj->q, k, B, 1, q_in, d, s->ql, d);

    /* One query per row against its segment's keys. */
    for (int b = 0; b < B; b++) {
        const float *kv = lb.kv + (size_t)base[b] * 2 * d;
        rs_sasrec_attend(&ctx->kern, H, dh, s->ql + (size_t)b * d, kv, 2 * (size_t)d, kv + d, 2 * (size_t)d,
                         len[b], s->w, s->ol + (size_t)b * d);
    }
    rs_sasrec_rows_tail(r, pj, k, B, 1, s);
    /* final layer norm into slot L-1 of each row (zero for an empty row) */
    rs_sasrec_rows_final(r, B, s->yl, s, s->tl);
    for (int b = 0; b < B; b++) {
        float *o = out + ((size_t)b * L + (size_t)(L - 1)) * d;
        if (len[b] > 0) memcpy(o, s->tl + (size_t)b * d, sizeof(float) * (size_t)d);
        else memset(o, 0, sizeof(float) * (size_t)d);
    }
}

/* ------------------------------------------------------------------ HSTU */

void rs_hstu_attend(const rs_model_run *r, const float *rab_pos, const float *rab_time,
                    const float *q, const float *keys, size_t ks, const float *values, size_t vs,
                    int i, int n, const int64_t *times, int64_t next, float *o, float *w)
{
    const rs_model_config *c = r->cfg;
    const rs_kernels *kern = &r->ctx->kern;
    int H = c->heads, dqk = c->dqk, dv = c->dv, L = c->max_len;
    float inv_n = 1.0f / (float)L;
    float *bias = w + n, *sig = w + 2 * (size_t)n; /* the biases are the same for every head */
    for (int j = 0; j < n; j++)
        bias[j] = rab_pos[j - i + L - 1] +
                  (rab_time ? rab_time[rs_hstu_bucket_fast(next - times[j])] : 0.0f);
    for (int h = 0; h < H; h++) {
        const float *qh = q + (size_t)h * dqk;
        float *oh = o + (size_t)h * dv;
        for (int j = 0; j < n; j++)
            w[j] = kern->dot((size_t)dqk, qh, keys + (size_t)j * ks + (size_t)h * dqk) + bias[j];
        kern->silu_fwd((size_t)n, w, sig); /* SiLU of all n scores in one vector pass */
        for (int j = 0; j < n; j++) {
            const float *vj = values + (size_t)j * vs + (size_t)h * dv;
            float wj = w[j] * inv_n;
            for (int t = 0; t < dv; t++) oh[t] += wj * vj[t];
        }
    }
}

void rs_hstu_rows_tail(const rs_model_run *r, const rs_proj *o_p, int k, int B, int last,
                       rs_rows *s)
{
    recsys_ctx *ctx = r->ctx;
    const rs_model_config *c = r->cfg;
    int d = c->dim, hdv = c->heads * c->dv;
    /* M = U ⊙ LN(O); Y = X + M W_oᵀ + b_o */
    rs_layernorm_fwd(ctx, B, hdv, s->ol, NULL, NULL, NULL, HSTU_LN_EPS, s->al, s->mean, s->rstd);
    for (size_t i = 0; i < (size_t)B * hdv; i++) s->al[i] *= s->ul[i];
    rs_rows_proj(r, o_p, k, B, last, s->al, hdv, s->yl, d);
    rs_nn_add(ctx, B, d, s->xl, s->yl);
}

void rs_hstu_row_final(const rs_model_run *r, const float *y, float *out)
{
    int d = r->cfg->dim;
    float sc = 1.0f;
    if (r->cfg->l2norm) {
        float nrm = sqrtf(r->ctx->kern.dot((size_t)d, y, y));
        sc = 1.0f / (nrm > HSTU_L2_EPS ? nrm : HSTU_L2_EPS);
    }
    for (int t = 0; t < d; t++) out[t] = y[t] * sc;
}

/* The uvqk projection's parts: U = rows [0, hdv), then V, Q, K. */
void rs_hstu_split_uvqk(const rs_model_config *c, const rs_proj *uvqk, rs_proj *u, rs_proj *v,
                        rs_proj *q, rs_proj *kp)
{
    int hdv = c->heads * c->dv, hq = c->heads * c->dqk;
    *u = *v = *q = *kp = *uvqk;
    u->out = hdv;
    v->row0 = uvqk->row0 + hdv;
    v->out = hdv;
    q->row0 = uvqk->row0 + 2 * hdv;
    q->out = hq;
    kp->row0 = uvqk->row0 + 2 * hdv + hq;
    kp->out = hq;
}

void rs_hstu_last_fwd(const rs_model_run *r, const rs_proj *uvqk_p, const rs_proj *o_p,
                      const float *X, int N, int B, const int *base, const int *len,
                      const rs_batch *batch, int time_on, float *scratch, float *out)
{
    recsys_ctx *ctx = r->ctx;
    const rs_model_config *c = r->cfg;
    int d = c->dim, k = c->blocks - 1, L = c->max_len, H = c->heads, dqk = c->dqk, dv = c->dv;
    int hdv = H * dv, hq = H * dqk, kvw = hdv + 2 * hq;
    last_bufs lb = carve(c, B, scratch);
    rs_rows *s = &lb.r;
    const float *rab_pos = rs_run_tensor(r, "rab_pos", k);
    const float *rab_time = time_on ? rs_run_tensor(r, "rab_time", k) : NULL;
    /* Keys and values for every packed row (into columns V | . | K of
     * lb.kv, row stride kvw), U and Q for the last rows only. */
    rs_proj u_p, v_p, q_p, k_p;
    rs_hstu_split_uvqk(c, uvqk_p, &u_p, &v_p, &q_p, &k_p);

    /* Xn = LN(X) for every packed row; V, K = SiLU(Xn W[V], Xn W[K]). */
    rs_layernorm_fwd(ctx, N, d, X, NULL, NULL, NULL, HSTU_LN_EPS, lb.xn, lb.mean, lb.rstd);
    rs_rows_proj(r, &v_p, k, N, 0, lb.xn, d, lb.kv, kvw);
    rs_rows_proj(r, &k_p, k, N, 0, lb.xn, d, lb.kv + hdv + hq, kvw);
    for (int i = 0; i < N; i++) {
        ctx->kern.silu_fwd((size_t)hdv, lb.kv + (size_t)i * kvw, s->w);
        ctx->kern.silu_fwd((size_t)hq, lb.kv + (size_t)i * kvw + hdv + hq, s->w);
    }
    gather_last(B, d, lb.xn, base, len, s->tl);
    rs_rows_proj(r, &u_p, k, B, 1, s->tl, d, s->ul, hdv);
    rs_rows_proj(r, &q_p, k, B, 1, s->tl, d, s->ql, hq);
    for (int i = 0; i < B; i++) {
        ctx->kern.silu_fwd((size_t)hdv, s->ul + (size_t)i * hdv, s->w);
        ctx->kern.silu_fwd((size_t)hq, s->ql + (size_t)i * hq, s->w);
    }

    /* One query against the row's keys. */
    for (int b = 0; b < B; b++) {
        float *o = s->ol + (size_t)b * hdv;
        memset(o, 0, sizeof(float) * (size_t)hdv);
        int n = len[b];
        if (n == 0) continue;
        const float *g = lb.kv + (size_t)base[b] * kvw; /* rows of V | (Q unused) | K */
        size_t t0 = (size_t)b * L + (size_t)(L - n);
        const int64_t *times = rab_time ? batch->times + t0 : NULL;
        int64_t next = rab_time ? batch->next_times[t0 + n - 1] : 0;
        rs_hstu_attend(r, rab_pos, rab_time, s->ql + (size_t)b * hq, g + hdv + hq, (size_t)kvw,
                       g, (size_t)kvw, n - 1, n, times, next, o, s->w);
    }
    gather_last(B, d, X, base, len, s->xl);
    rs_hstu_rows_tail(r, o_p, k, B, 1, s);
    for (int b = 0; b < B; b++) {
        float *o = out + ((size_t)b * L + (size_t)(L - 1)) * d;
        if (len[b] == 0) memset(o, 0, sizeof(float) * (size_t)d);
        else rs_hstu_row_final(r, s->yl + (size_t)b * d, o);
    }
}

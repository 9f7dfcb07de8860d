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
#include "models/scaffold.h"

#include "nn/nn.h"
#include "hstu_bucket.h"

#include <math.h>
#include <string.h>

#define SAS_LN_EPS 1e-8f
#define HSTU_LN_EPS 1e-6f
#define HSTU_L2_EPS 1e-6f

/* Block k's slice of tensor `name` (whole tensor when not stacked). */
static const float *tensor(const rs_model_config *c, const float *P, const char *name, int k)
{
    const rs_model_ops *ops = rs_model_ops_for(c->type);
    const char *names[32];
    size_t off[32], size[32];
    int n = ops->tensors(c, NULL, NULL, NULL);
    if (n > 32) return NULL;
    ops->tensors(c, names, off, size);
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) {
            int stacked = strcmp(name, "item_emb") && strcmp(name, "pos_emb") &&
                          strncmp(name, "final_ln.", 9);
            return P + off[i] + (stacked ? (size_t)k * (size[i] / (size_t)c->blocks) : 0);
        }
    return NULL;
}

/* y = x Wᵀ + b through the model's projection (its bias added here when
 * the projection leaves it to a fused pass). last: the n rows are one per
 * batch row (each row's last position), which a hook (adapters) must know
 * to give each row its own extras; else they are the N packed rows. */
static void proj(const rs_model_run *r, const rs_proj *p, int k, int n, int last, const float *x,
                 int ldx, float *y, int ldy)
{
    rs_model_run rl = *r;
    rl.last_rows = last;
    rs_proj_fwd(&rl, p, k, n, x, ldx, y, ldy);
    const float *b = p->bias_fused ? rs_proj_bias(r, p, k) : NULL;
    for (int i = 0; b && i < n; i++)
        for (int c = 0; c < p->out; c++) y[(size_t)i * ldy + c] += b[c];
}

/* Scratch layout for B rows of a batch of N packed rows. */
typedef struct last_bufs {
    float *kv;   /* N x kv_w: keys and values (SASRec), or V|Q|K (HSTU) */
    float *xn;   /* N x d: normalised inputs (SASRec pre, HSTU) */
    float *xl, *ql, *ol, *al, *tl, *yl, *hl, *ul; /* B rows each */
    float *mean, *rstd;                           /* B (or N) */
    float *w;    /* L + kv_width + row width: attention weights of one query, SiLU scratch */
} last_bufs;

static size_t kv_width(const rs_model_config *c)
{
    if (c->type == RS_MODEL_SASREC) return 2 * (size_t)c->dim;
    return (size_t)c->heads * ((size_t)c->dv + 2 * (size_t)c->dqk); /* V|Q|K */
}

static size_t row_width(const rs_model_config *c)
{
    size_t d = (size_t)c->dim, hdv = (size_t)c->heads * c->dv, hq = (size_t)c->heads * c->dqk;
    size_t w = d > hdv ? d : hdv;
    if (w < hq) w = hq;
    if ((size_t)c->ffn_dim > w) w = (size_t)c->ffn_dim;
    return w;
}

size_t rs_last_scratch_floats(const rs_model_config *c, int B)
{
    size_t R = (size_t)B * (size_t)c->max_len, w = row_width(c);
    return R * kv_width(c) + R * (size_t)c->dim + 8 * (size_t)B * w + 2 * R + (size_t)c->max_len +
           kv_width(c) + w + 16 * 16;
}

static last_bufs carve(const rs_model_config *c, int B, float *s)
{
    size_t R = (size_t)B * (size_t)c->max_len, w = row_width(c);
    last_bufs b;
    b.kv = s;
    s += R * kv_width(c);
    b.xn = s;
    s += R * (size_t)c->dim;
    float **rows[8] = {&b.xl, &b.ql, &b.ol, &b.al, &b.tl, &b.yl, &b.hl, &b.ul};
    for (int i = 0; i < 8; i++) {
        *rows[i] = s;
        s += (size_t)B * w;
    }
    b.mean = s;
    s += R;
    b.rstd = s;
    s += R;
    b.w = s;
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

void rs_sasrec_last_fwd(const rs_model_run *r, const rs_last_sasrec_projs *pj, const float *X,
                        int N, int B, const int *base, const int *len, float *scratch, float *out)
{
    recsys_ctx *ctx = r->ctx;
    const rs_model_config *c = r->cfg;
    const float *P = r->P;
    int d = c->dim, F = c->ffn_dim, k = c->blocks - 1, L = c->max_len, H = c->heads, dh = d / H;
    last_bufs s = carve(c, B, scratch);
    const float *g1 = tensor(c, P, "attn_ln.gamma", k), *be1 = tensor(c, P, "attn_ln.beta", k);
    const float *g2 = tensor(c, P, "ffn_ln.gamma", k), *be2 = tensor(c, P, "ffn_ln.beta", k);
    const float *gf = tensor(c, P, "final_ln.gamma", 0), *bf = tensor(c, P, "final_ln.beta", 0);

    /* Keys and values of every packed row; queries of the last rows. */
    gather_last(B, d, X, base, len, s.xl);
    const float *kv_in = X, *q_in = s.xl;
    if (c->norm == RS_NORM_PRE) {
        rs_layernorm_fwd(ctx, N, d, X, NULL, g1, be1, SAS_LN_EPS, s.xn, s.mean, s.rstd);
        kv_in = s.xn;
        gather_last(B, d, s.xn, base, len, s.tl);
        q_in = s.tl;
    } else if (c->norm == RS_NORM_ORIGINAL) {
        rs_layernorm_fwd(ctx, B, d, s.xl, NULL, g1, be1, SAS_LN_EPS, s.tl, s.mean, s.rstd);
        q_in = s.tl; /* Q = LN_a(X): the residual of the original placement */
    }
    proj(r, pj->kv, k, N, 0, kv_in, d, s.kv, 2 * d);
    proj(r, pj->q, k, B, 1, q_in, d, s.ql, d);

    /* One query per row against its segment's keys. */
    float scale = 1.0f / sqrtf((float)dh);
    for (int b = 0; b < B; b++) {
        float *o = s.ol + (size_t)b * d;
        memset(o, 0, sizeof(float) * (size_t)d);
        int n = len[b];
        const float *kv = s.kv + (size_t)base[b] * 2 * d;
        for (int h = 0; h < H && n > 0; h++) {
            const float *q = s.ql + (size_t)b * d + (size_t)h * dh;
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *kj = kv + (size_t)j * 2 * d + (size_t)h * dh;
                float dot = 0.0f;
                for (int t = 0; t < dh; t++) dot += q[t] * kj[t];
                s.w[j] = dot * scale;
                if (s.w[j] > mx) mx = s.w[j];
            }
            float sum = 0.0f;
            for (int j = 0; j < n; j++) sum += (s.w[j] = expf(s.w[j] - mx));
            float inv = 1.0f / sum;
            float *oh = o + (size_t)h * dh;
            for (int j = 0; j < n; j++) {
                const float *vj = kv + (size_t)j * 2 * d + d + (size_t)h * dh;
                float wj = s.w[j] * inv;
                for (int t = 0; t < dh; t++) oh[t] += wj * vj[t];
            }
        }
    }
    proj(r, pj->out, k, B, 1, s.ol, d, s.al, d); /* A */

    /* The rest of the block on B rows: yl = block output. */
    switch (c->norm) {
    case RS_NORM_ORIGINAL: /* N = LN_f(Q + A); Y = N + FFN(N) */
        rs_layernorm_fwd(ctx, B, d, s.tl, s.al, g2, be2, SAS_LN_EPS, s.ol, s.mean, s.rstd);
        proj(r, pj->ffn1, k, B, 1, s.ol, d, s.hl, F);
        rs_relu_fwd(ctx, B, F, s.hl, F);
        proj(r, pj->ffn2, k, B, 1, s.hl, F, s.yl, d);
        rs_nn_add(ctx, B, d, s.ol, s.yl);
        break;
    case RS_NORM_POST: /* E1 = LN_a(X + A); Y = LN_f(E1 + FFN(E1)) */
        rs_layernorm_fwd(ctx, B, d, s.xl, s.al, g1, be1, SAS_LN_EPS, s.ol, s.mean, s.rstd);
        proj(r, pj->ffn1, k, B, 1, s.ol, d, s.hl, F);
        rs_relu_fwd(ctx, B, F, s.hl, F);
        proj(r, pj->ffn2, k, B, 1, s.hl, F, s.tl, d);
        rs_layernorm_fwd(ctx, B, d, s.ol, s.tl, g2, be2, SAS_LN_EPS, s.yl, s.mean, s.rstd);
        break;
    default: /* pre: X1 = X + A; Y = X1 + FFN(LN_f(X1)) */
        rs_nn_add(ctx, B, d, s.xl, s.al); /* al = X1 */
        rs_layernorm_fwd(ctx, B, d, s.al, NULL, g2, be2, SAS_LN_EPS, s.ol, s.mean, s.rstd);
        proj(r, pj->ffn1, k, B, 1, s.ol, d, s.hl, F);
        rs_relu_fwd(ctx, B, F, s.hl, F);
        proj(r, pj->ffn2, k, B, 1, s.hl, F, s.yl, d);
        rs_nn_add(ctx, B, d, s.al, s.yl);
        break;
    }
    /* final layer norm into slot L-1 of each row (zero for an empty row) */
    rs_layernorm_fwd(ctx, B, d, s.yl, NULL, gf, bf, SAS_LN_EPS, s.tl, s.mean, s.rstd);
    for (int b = 0; b < B; b++) {
        float *o = out + ((size_t)b * L + (size_t)(L - 1)) * d;
        if (len[b] > 0) memcpy(o, s.tl + (size_t)b * d, sizeof(float) * (size_t)d);
        else memset(o, 0, sizeof(float) * (size_t)d);
    }
}

/* ------------------------------------------------------------------ HSTU */

void rs_hstu_last_fwd(const rs_model_run *r, const rs_proj *uvqk_p, const rs_proj *o_p,
                      const float *X, int N, int B, const int *base, const int *len,
                      const rs_batch *batch, int time_on, float *scratch, float *out)
{
    recsys_ctx *ctx = r->ctx;
    const rs_model_config *c = r->cfg;
    const float *P = r->P;
    int d = c->dim, k = c->blocks - 1, L = c->max_len, H = c->heads, dqk = c->dqk, dv = c->dv;
    int hdv = H * dv, hq = H * dqk, kvw = hdv + 2 * hq;
    last_bufs s = carve(c, B, scratch);
    const float *rab_pos = tensor(c, P, "rab_pos", k);
    const float *rab_time = time_on ? tensor(c, P, "rab_time", k) : NULL;
    /* the uvqk projection's rows: U = [0, hdv), V, Q, K after it. Keys and
     * values for every packed row (into columns V | . | K of s.kv, row
     * stride kvw), U and Q for the last rows only. */
    rs_proj u_p = *uvqk_p, v_p = *uvqk_p, q_p = *uvqk_p, k_p = *uvqk_p;
    u_p.out = hdv;
    v_p.row0 = uvqk_p->row0 + hdv;
    v_p.out = hdv;
    q_p.row0 = uvqk_p->row0 + 2 * hdv;
    q_p.out = hq;
    k_p.row0 = uvqk_p->row0 + 2 * hdv + hq;
    k_p.out = hq;

    /* Xn = LN(X) for every packed row; V, K = SiLU(Xn W[V], Xn W[K]). */
    rs_layernorm_fwd(ctx, N, d, X, NULL, NULL, NULL, HSTU_LN_EPS, s.xn, s.mean, s.rstd);
    proj(r, &v_p, k, N, 0, s.xn, d, s.kv, kvw);
    proj(r, &k_p, k, N, 0, s.xn, d, s.kv + hdv + hq, kvw);
    for (int i = 0; i < N; i++) {
        ctx->kern.silu_fwd((size_t)hdv, s.kv + (size_t)i * kvw, s.w);
        ctx->kern.silu_fwd((size_t)hq, s.kv + (size_t)i * kvw + hdv + hq, s.w);
    }
    gather_last(B, d, s.xn, base, len, s.tl);
    proj(r, &u_p, k, B, 1, s.tl, d, s.ul, hdv);
    proj(r, &q_p, k, B, 1, s.tl, d, s.ql, hq);
    for (int i = 0; i < B; i++) {
        ctx->kern.silu_fwd((size_t)hdv, s.ul + (size_t)i * hdv, s.w);
        ctx->kern.silu_fwd((size_t)hq, s.ql + (size_t)i * hq, s.w);
    }

    /* One query against the row's keys: float dot products (the kernel
     * table's), the bucket by rs_hstu_bucket_fast (exactly the definition's) */
    float inv_n = 1.0f / (float)L;
    for (int b = 0; b < B; b++) {
        float *o = s.ol + (size_t)b * hdv;
        memset(o, 0, sizeof(float) * (size_t)hdv);
        int n = len[b];
        if (n == 0) continue;
        const float *g = s.kv + (size_t)base[b] * kvw; /* rows of V | (Q unused) | K */
        int i = n - 1;
        size_t t0 = (size_t)b * L + (size_t)(L - n);
        for (int h = 0; h < H; h++) {
            const float *q = s.ql + (size_t)b * hq + (size_t)h * dqk;
            float *oh = o + (size_t)h * dv;
            for (int j = 0; j < n; j++) {
                const float *kj = g + (size_t)j * kvw + hdv + hq + (size_t)h * dqk;
                float sc = ctx->kern.dot((size_t)dqk, q, kj) + rab_pos[j - i + L - 1];
                if (rab_time)
                    sc += rab_time[rs_hstu_bucket_fast(batch->next_times[t0 + i] -
                                                       batch->times[t0 + j])];
                float w = sc / (1.0f + expf(-sc)) * inv_n;
                const float *vj = g + (size_t)j * kvw + (size_t)h * dv;
                for (int t = 0; t < dv; t++) oh[t] += w * vj[t];
            }
        }
    }
    /* M = U ⊙ LN(O); Y = X + M W_oᵀ + b_o; F = Y / ‖Y‖ */
    rs_layernorm_fwd(ctx, B, hdv, s.ol, NULL, NULL, NULL, HSTU_LN_EPS, s.al, s.mean, s.rstd);
    for (size_t i = 0; i < (size_t)B * hdv; i++) s.al[i] *= s.ul[i];
    gather_last(B, d, X, base, len, s.xl);
    proj(r, o_p, k, B, 1, s.al, hdv, s.yl, d);
    rs_nn_add(ctx, B, d, s.xl, s.yl);
    for (int b = 0; b < B; b++) {
        float *o = out + ((size_t)b * L + (size_t)(L - 1)) * d;
        const float *y = s.yl + (size_t)b * d;
        if (len[b] == 0) {
            memset(o, 0, sizeof(float) * (size_t)d);
            continue;
        }
        float sc = 1.0f;
        if (c->l2norm) {
            float nrm = sqrtf(ctx->kern.dot((size_t)d, y, y));
            sc = 1.0f / (nrm > HSTU_L2_EPS ? nrm : HSTU_L2_EPS);
        }
        for (int t = 0; t < d; t++) o[t] = y[t] * sc;
    }
}

/* Encoding a user's window a few rows at a time against cached keys and
 * values (docs/SERVING.md, "Incremental scoring").
 *
 * With model.positions = start, position i of the window is the same
 * embedding whatever follows it, and attention is causal, so the keys and
 * values of rows 0..r0-1 in every block stay valid when events are
 * appended: rows r0..n-1 are encoded against them and add their own. Only
 * the last row's output is needed for scoring, so the last block runs the
 * query, attention and the rest of the block for that row alone.
 *
 * HSTU's time bias gives query i the bias of (its next event's time -
 * t_j); the last row uses its own time. When an event arrives, the old
 * last row's output (and so its keys and values from block 1 on) changes:
 * callers re-encode it (rs_kv_final_rows says how many rows are final).
 *
 * Rows go through in chunks of RS_EXTEND_ROWS (extend_chunks): a loading
 * state's chunks with GEMMs for the projections and two matrix products per
 * head for the attention; an append's one or two rows with a dot product
 * per output and per key (rs_model_run.few_rows_dots, rows.h). Results
 * agree with the model's forward within float rounding, not bit for bit. */
#include "models/extend.h"
#include "models/rows.h"

#include "nn/nn.h"
#include "hstu_bucket.h"

#include <math.h>
#include <string.h>

#define HSTU_LN_EPS 1e-6f

size_t rs_kv_width(const rs_model_config *c)
{
    if (c->type == RS_MODEL_SASREC) return 2 * (size_t)c->dim;     /* K | V */
    return (size_t)c->heads * ((size_t)c->dv + (size_t)c->dqk);     /* V | K */
}

size_t rs_kv_floats(const rs_model_config *c)
{
    return (size_t)c->blocks * (size_t)c->max_len * rs_kv_width(c);
}

int rs_kv_final_rows(const rs_model_config *c, int n)
{
    return c->type == RS_MODEL_HSTU && c->time_bias && n > 0 ? n - 1 : n;
}

size_t rs_extend_scratch_floats(const rs_model_config *c)
{
    return rs_rows_floats(c, RS_EXTEND_ROWS) + RS_EXTEND_ROWS * (size_t)c->max_len;
}

/* Attention of nq > 2 query rows (global rows g0.., against keys 0..g0+i)
 * as two matrix products per head, S = Q Kᵀ and O = P V, with the weights
 * P made from S row by row in between (weights of later keys 0): a
 * loading state's chunks, where a dot product per (query, key) pair cost
 * four times the model's forward. */
typedef void (*weights_fn)(const rs_model_run *r, const void *arg, int g, int n, float *row,
                           float *scratch);

static void attend_rows(const rs_model_run *r, int H, int dq, int dv, const float *q, int ldq,
                        const float *keys, const float *values, size_t kw, int g0, int nq,
                        float scale, weights_fn fn, const void *arg, float *S, float *w, float *o,
                        int ldo)
{
    int nk = g0 + nq; /* keys of the last query */
    for (int h = 0; h < H; h++) {
        rs_gemm(r->ctx, 0, 1, nq, nk, dq, scale, q + (size_t)h * dq, ldq, keys + (size_t)h * dq,
                (int)kw, 0.0f, S, nk);
        for (int i = 0; i < nq; i++) {
            float *row = S + (size_t)i * nk;
            fn(r, arg, g0 + i, g0 + i + 1, row, w);
            for (int j = g0 + i + 1; j < nk; j++) row[j] = 0.0f; /* causal */
        }
        rs_gemm(r->ctx, 0, 0, nq, dv, nk, 1.0f, S, nk, values + (size_t)h * dv, (int)kw, 0.0f,
                o + (size_t)h * dv, ldo);
    }
}

/* SASRec: softmax over the row's n scores. */
static void softmax_weights(const rs_model_run *r, const void *arg, int g, int n, float *row,
                            float *scratch)
{
    (void)arg, (void)g, (void)scratch;
    r->ctx->kern.softmax((size_t)n, row);
}

/* HSTU: SiLU(score + position and time biases) / max_len. */
typedef struct hstu_bias {
    const float *rab_pos, *rab_time;
    const int64_t *times;
    int n; /* events in the window */
} hstu_bias;

static void hstu_weights(const rs_model_run *r, const void *arg, int g, int n, float *row,
                         float *scratch)
{
    const hstu_bias *b = arg;
    int L = r->cfg->max_len;
    int64_t next = b->times ? b->times[g + 1 < b->n ? g + 1 : g] : 0;
    for (int j = 0; j < n; j++)
        row[j] += b->rab_pos[j - g + L - 1] +
                  (b->rab_time ? b->rab_time[rs_hstu_bucket_fast(next - b->times[j])] : 0.0f);
    r->ctx->kern.silu_fwd((size_t)n, row, scratch);
    float inv_n = 1.0f / (float)L;
    for (int j = 0; j < n; j++) row[j] *= inv_n;
}

/* Block k's cache: max_len rows of rs_kv_width floats. */
static float *kv_block(const rs_model_config *c, float *kv, int k)
{
    return kv + (size_t)k * (size_t)c->max_len * rs_kv_width(c);
}

/* X0 of rows a..a+m-1: item embedding · sqrt(d) + position a+1, a+2, ... */
static void embed_rows(const rs_model_run *r, const int32_t *items, int a, int m, float *x)
{
    int32_t pos[RS_EXTEND_ROWS];
    for (int i = 0; i < m; i++) pos[i] = a + i + 1;
    int d = r->cfg->dim;
    rs_embed_fwd(r->ctx, m, d, rs_param(r, RS_T_ITEM, 0), items + a, sqrtf((float)d), 0, x);
    rs_embed_fwd(r->ctx, m, d, rs_param(r, RS_T_POS, 0), pos, 1.0f, 1, x);
}

/* One block on rows a..a+m-1 of a chunk (the family's `arg`): their keys
 * and values into the cache; with q0 < m, rows q0..m-1 also pass the rest
 * of the block (outputs in s->yl, from row 0). n: rows in the window. */
typedef void (*block_rows_fn)(const rs_model_run *r, const void *arg, float *kv, int k, int a,
                              int m, int q0, int n, rs_rows *s, float *S);
/* The model's output of the last row (s->yl row 0) into out. */
typedef void (*final_row_fn)(const rs_model_run *r, rs_rows *s, float *out);

/* Rows r0..n-1 in chunks of RS_EXTEND_ROWS, each chunk through every
 * block before the next (its keys then see those of all earlier rows);
 * the last block runs the rest of the block for the window's last row
 * only, the one scoring reads. */
static void extend_chunks(const rs_model_run *r, block_rows_fn block, final_row_fn final,
                          const void *arg, float *kv, const int32_t *items, int r0, int n,
                          float *scratch, float *out)
{
    const rs_model_config *c = r->cfg;
    int d = c->dim, B = c->blocks;
    rs_rows s;
    float *S = rs_rows_carve(c, RS_EXTEND_ROWS, scratch, &s);
    for (int a = r0; a < n; a += RS_EXTEND_ROWS) {
        int m = n - a < RS_EXTEND_ROWS ? n - a : RS_EXTEND_ROWS;
        int has_last = a + m == n;
        embed_rows(r, items, a, m, s.xl);
        for (int k = 0; k < B; k++) {
            int q0 = k < B - 1 ? 0 : has_last ? m - 1 : m;
            block(r, arg, kv, k, a, m, q0, n, &s, S);
            if (k < B - 1) memcpy(s.xl, s.yl, sizeof(float) * (size_t)m * d);
        }
        if (has_last) final(r, &s, out);
    }
}

/* ---------------------------------------------------------------- SASRec */

/* A block_rows_fn; arg: the projections. */
static void sasrec_rows(const rs_model_run *r, const void *arg, float *kv, int k, int a, int m,
                        int q0, int n, rs_rows *s, float *S)
{
    (void)n;
    const rs_last_sasrec_projs *pj = arg;
    recsys_ctx *ctx = r->ctx;
    const rs_model_config *c = r->cfg;
    int d = c->dim, H = c->heads, dh = d / H, nq = m - q0;
    size_t kw = rs_kv_width(c);
    float *kb = kv_block(c, kv, k);
    const float *g1 = rs_run_tensor(r, "attn_ln.gamma", k);
    const float *be1 = rs_run_tensor(r, "attn_ln.beta", k);
    /* keys and values from X (original, post) or LN_a(X) (pre); queries
     * from LN_a(X) (original, pre) or X (post) */
    const float *kv_in = s->xl, *q_in = s->xl;
    if (c->norm != RS_NORM_POST) {
        rs_layernorm_fwd(ctx, m, d, s->xl, NULL, g1, be1, 1e-8f, s->tl, s->mean, s->rstd);
        q_in = s->tl;
        if (c->norm == RS_NORM_PRE) kv_in = s->tl;
    }
    rs_rows_proj(r, pj->kv, k, m, 0, kv_in, d, kb + (size_t)a * kw, (int)kw);
    if (nq <= 0) return;
    rs_rows_proj(r, pj->q, k, nq, 0, q_in + (size_t)q0 * d, d, s->ql, d);
    if (nq > 2)
        attend_rows(r, H, dh, dh, s->ql, d, kb, kb + d, kw, a + q0, nq, 1.0f / sqrtf((float)dh),
                    softmax_weights, NULL, S, s->w, s->ol, d);
    else
        for (int i = 0; i < nq; i++)
            rs_sasrec_attend(&ctx->kern, H, dh, s->ql + (size_t)i * d, kb, kw, kb + d, kw,
                             a + q0 + i + 1, s->w, s->ol + (size_t)i * d);
    if (q0 > 0) { /* the tail reads rows 0..nq-1 */
        memmove(s->xl, s->xl + (size_t)q0 * d, sizeof(float) * (size_t)nq * d);
        memmove(s->tl, s->tl + (size_t)q0 * d, sizeof(float) * (size_t)nq * d);
    }
    rs_sasrec_rows_tail(r, pj, k, nq, 0, s);
}

static void sasrec_final(const rs_model_run *r, rs_rows *s, float *out)
{
    rs_sasrec_rows_final(r, 1, s->yl, s, out);
}

void rs_sasrec_extend(const rs_model_run *r, const rs_last_sasrec_projs *pj, float *kv,
                      const int32_t *items, int r0, int n, float *scratch, float *out)
{
    extend_chunks(r, sasrec_rows, sasrec_final, pj, kv, items, r0, n, scratch, out);
}

/* ------------------------------------------------------------------ HSTU */

typedef struct hstu_fam {
    const rs_proj *uvqk, *o;
    const int64_t *times; /* the window's events, NULL without the time bias */
} hstu_fam;

/* A block_rows_fn; arg: an hstu_fam. */
static void hstu_rows(const rs_model_run *r, const void *arg, float *kv, int k, int a, int m,
                      int q0, int n, rs_rows *s, float *S)
{
    const hstu_fam *f = arg;
    const rs_proj *uvqk = f->uvqk, *o_p = f->o;
    const int64_t *times = f->times;
    recsys_ctx *ctx = r->ctx;
    const rs_model_config *c = r->cfg;
    int d = c->dim, hdv = c->heads * c->dv, hq = c->heads * c->dqk, nq = m - q0;
    size_t kw = rs_kv_width(c);
    float *kb = kv_block(c, kv, k), *vrow = kb + (size_t)a * kw;
    rs_proj u_p, v_p, q_p, k_p;
    rs_hstu_split_uvqk(c, uvqk, &u_p, &v_p, &q_p, &k_p);
    /* Xn = LN(X); V | K = SiLU(Xn W[V]) | SiLU(Xn W[K]) into the cache */
    rs_layernorm_fwd(ctx, m, d, s->xl, NULL, NULL, NULL, HSTU_LN_EPS, s->tl, s->mean, s->rstd);
    rs_rows_proj(r, &v_p, k, m, 0, s->tl, d, vrow, (int)kw);
    rs_rows_proj(r, &k_p, k, m, 0, s->tl, d, vrow + hdv, (int)kw);
    for (int i = 0; i < m; i++) {
        ctx->kern.silu_fwd((size_t)hdv, vrow + (size_t)i * kw, s->w);
        ctx->kern.silu_fwd((size_t)hq, vrow + (size_t)i * kw + hdv, s->w);
    }
    if (nq <= 0) return;
    const float *xq = s->tl + (size_t)q0 * d;
    rs_rows_proj(r, &u_p, k, nq, 0, xq, d, s->ul, hdv);
    rs_rows_proj(r, &q_p, k, nq, 0, xq, d, s->ql, hq);
    for (int i = 0; i < nq; i++) {
        ctx->kern.silu_fwd((size_t)hdv, s->ul + (size_t)i * hdv, s->w);
        ctx->kern.silu_fwd((size_t)hq, s->ql + (size_t)i * hq, s->w);
    }
    const float *rab_pos = rs_run_tensor(r, "rab_pos", k);
    const float *rab_time = times ? rs_run_tensor(r, "rab_time", k) : NULL;
    if (nq > 2) {
        hstu_bias hb = {rab_pos, rab_time, times, n};
        attend_rows(r, c->heads, c->dqk, c->dv, s->ql, hq, kb + hdv, kb, kw, a + q0, nq, 1.0f,
                    hstu_weights, &hb, S, s->w, s->ol, hdv);
    } else {
        for (int q = 0; q < nq; q++) {
            int i = a + q0 + q;
            int64_t next = times ? times[i + 1 < n ? i + 1 : i] : 0;
            float *o = s->ol + (size_t)q * hdv;
            memset(o, 0, sizeof(float) * (size_t)hdv);
            rs_hstu_attend(r, rab_pos, rab_time, s->ql + (size_t)q * hq, kb + hdv, kw, kb, kw, i,
                           i + 1, times, next, o, s->w);
        }
    }
    if (q0 > 0) memmove(s->xl, s->xl + (size_t)q0 * d, sizeof(float) * (size_t)nq * d);
    rs_hstu_rows_tail(r, o_p, k, nq, 0, s);
}

static void hstu_final(const rs_model_run *r, rs_rows *s, float *out)
{
    rs_hstu_row_final(r, s->yl, out);
}

void rs_hstu_extend(const rs_model_run *r, const rs_proj *uvqk, const rs_proj *o_p, float *kv,
                    const int32_t *items, const int64_t *times, int r0, int n, float *scratch,
                    float *out)
{
    hstu_fam f = {uvqk, o_p, r->cfg->time_bias ? times : NULL};
    extend_chunks(r, hstu_rows, hstu_final, &f, kv, items, r0, n, scratch, out);
}

/* Multi-head causal attention: one single-threaded kernel call per
 * (sequence, head), spread over the pool. Tasks write disjoint rows and
 * columns, so no reduction is needed. */
#include "nn/nn.h"

typedef struct attn_job {
    const rs_attn_layout *a;
    const rs_kernels *k;
    rs_attn_fwd_fn fwd; /* fp32 or bf16 variant (ctx->bf16) */
    rs_attn_bwd_fn bwd;
    const float *Q, *K, *V, *O, *dO, *lse;
    float *out, *lse_out, *dQ, *dK, *dV;
} attn_job;

/* One (sequence, head): the forward when j->fwd is set, else the backward. */
static void attn_task(void *arg, int task, int thread)
{
    (void)thread;
    const attn_job *j = arg;
    const rs_attn_layout *a = j->a;
    int s = task / a->heads, h = task % a->heads;
    int len = a->len[s];
    if (len <= 0) return;
    size_t off = (size_t)a->base[s] * a->ld + (size_t)h * a->dh;
    int start = a->start ? a->start[s] : 0;
    uint64_t seed = rs_attn_seed(a->seed, a->seq0 + s, h, a->heads);
    if (j->fwd)
        j->fwd(len, start, a->dh, a->scale, j->Q + off, j->K + off, j->V + off, a->ld, a->drop_p,
               seed, j->out + off, j->lse_out + (size_t)h * a->lse_stride + a->base[s]);
    else
        j->bwd(len, start, a->dh, a->scale, j->Q + off, j->K + off, j->V + off, j->O + off,
               j->dO + off, j->lse + (size_t)h * a->lse_stride + a->base[s], a->ld, a->drop_p,
               seed, j->dQ + off, j->dK + off, j->dV + off);
}

void rs_attention_fwd(recsys_ctx *ctx, const rs_attn_layout *a, const float *Q, const float *K,
                      const float *V, float *O, float *lse)
{
    int bf = ctx->bf16 && ctx->kern.attn_fwd_bf16;
    attn_job j = {a, &ctx->kern, bf ? ctx->kern.attn_fwd_bf16 : ctx->kern.attn_fwd, NULL,
                  Q, K, V, NULL, NULL, NULL, O, lse, NULL, NULL, NULL};
    rs_pool_run(ctx->pool, a->n_seq * a->heads, attn_task, &j);
}

void rs_attention_bwd(recsys_ctx *ctx, const rs_attn_layout *a, const float *Q, const float *K,
                      const float *V, const float *O, const float *dO, const float *lse,
                      float *dQ, float *dK, float *dV)
{
    int bf = ctx->bf16 && ctx->kern.attn_bwd_bf16;
    attn_job j = {a, &ctx->kern, NULL, bf ? ctx->kern.attn_bwd_bf16 : ctx->kern.attn_bwd,
                  Q, K, V, O, dO, lse, NULL, NULL, dQ, dK, dV};
    rs_pool_run(ctx->pool, a->n_seq * a->heads, attn_task, &j);
}

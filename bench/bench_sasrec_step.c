/* Throughput of one SASRec training step (forward + BCE loss + backward,
 * no optimiser) at the ML-1M paper settings: B=128, L=200, d=50, 2 blocks,
 * 1 head, dropout 0.2.
 *
 *   bench_sasrec_step [threads=2] [steps=10] [lengths=ml1m|full] [heads=1]
 *
 * lengths=ml1m takes the row lengths of ML-1M's training sequences (first B
 * users, capped at L) from ../shared/data when present, else full rows.
 * Prints wall ms per step split into forward / loss / backward, the process
 * CPU time per step (all threads; on a busy machine wall time overstates the
 * cost) and peak RSS. */
#include "core/internal.h"
#include "train/loss.h"
#include "models/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

#ifndef RS_SOURCE_ROOT
#define RS_SOURCE_ROOT "."
#endif

/* Per-user event counts of ml-1m.txt.gz ("user item" lines, users in order). */
static int ml1m_lengths(int *len, int B)
{
    gzFile f = gzopen(RS_SOURCE_ROOT "/../shared/data/ml-1m/ml-1m.txt.gz", "rb");
    if (!f) return 0;
    char line[128];
    long cur = -1;
    int u = -1;
    while (gzgets(f, line, sizeof line)) {
        long user = strtol(line, NULL, 10);
        if (user != cur) {
            if (++u >= B) break;
            cur = user;
            len[u] = 0;
        }
        len[u]++;
    }
    gzclose(f);
    return u >= B ? B : u + 1;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    int use_ml1m = argc > 3 ? strcmp(argv[3], "full") != 0 : 1;
    int heads = argc > 4 ? atoi(argv[4]) : 1;
    enum { B = 128, L = 200, D = 50, N_ITEMS = 3416 };

    recsys_ctx *ctx = NULL;
    if (recsys_ctx_new(&ctx) || recsys_ctx_set_threads(ctx, threads)) return 1;
    rs_model_config c;
    memset(&c, 0, sizeof c);
    c.type = RS_MODEL_SASREC;
    c.n_items = N_ITEMS;
    c.max_len = L;
    c.dim = D;
    c.blocks = 2;
    c.heads = heads;
    c.ffn_dim = D;
    c.dropout = 0.2f;
    c.norm = RS_NORM_ORIGINAL;
    rs_rng rng;
    rs_rng_seed(&rng, 1);
    recsys_model *m = NULL;
    if (rs_model_create(ctx, &c, &rng, &m)) return 1;

    int len[B];
    int have = use_ml1m ? ml1m_lengths(len, B) : 0;
    int32_t *seq = calloc((size_t)B * L, sizeof(int32_t)), *pos = calloc((size_t)B * L, sizeof(int32_t)),
            *neg = calloc((size_t)B * L, sizeof(int32_t));
    int start[B];
    long tokens = 0;
    for (int r = 0; r < B; r++) {
        /* training pairs: n - 2 training items give n - 3 (input, target) pairs */
        int n = have == B ? len[r] - 3 : L;
        if (n > L) n = L;
        if (n < 1) n = 1;
        start[r] = L - n;
        tokens += n;
        for (int t = start[r]; t < L; t++) {
            size_t k = (size_t)r * L + t;
            seq[k] = 1 + (int32_t)rs_rng_below(&rng, N_ITEMS);
            pos[k] = 1 + (int32_t)rs_rng_below(&rng, N_ITEMS);
            neg[k] = 1 + (int32_t)rs_rng_below(&rng, N_ITEMS);
        }
    }
    rs_batch b;
    memset(&b, 0, sizeof b);
    b.B = B;
    b.L = L;
    b.seq = seq;
    b.pos = pos;
    b.neg = neg;
    b.n_neg = 1;
    b.start = start;
    b.train = 1;
    rs_workspace *ws = m->ops->ws_new(&c, B);
    float *F = rs_malloc(sizeof(float) * B * L * D), *dF = rs_malloc(sizeof(float) * B * L * D);
    float *G = rs_calloc(m->n_params, sizeof(float));
    if (!ws || !F || !dF || !G) return 1;
    size_t io = RS_ITEM_TABLE_OFFSET;
    double tf = 0, tl = 0, tb = 0, cpu0 = 0;
    for (int s = 0; s <= steps; s++) { /* step 0 warms up */
        if (s == 1) {
            struct rusage r0;
            getrusage(RUSAGE_SELF, &r0);
            cpu0 = r0.ru_utime.tv_sec + r0.ru_stime.tv_sec + 1e-6 * (r0.ru_utime.tv_usec + r0.ru_stime.tv_usec);
        }
        b.seed = (uint64_t)s;
        double t0 = rs_now();
        if (m->ops->forward(ctx, &c, m->params, ws, &b, F)) return 2;
        double t1 = rs_now(), loss;
        if (rs_loss_bce(ctx, &c, m->params + io, &b, F, dF, G + io, &loss)) return 3;
        double t2 = rs_now();
        if (m->ops->backward(ctx, &c, m->params, ws, &b, dF, G)) return 4;
        double t3 = rs_now();
        if (s > 0) {
            tf += t1 - t0;
            tl += t2 - t1;
            tb += t3 - t2;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) - cpu0;
    double ms = 1e3 / steps;
    printf("sasrec step B=%d L=%d d=%d blocks=2 heads=%d threads=%d rows=%s (%ld non-pad of %d), "
           "isa=%s gemm=%s attention=%s\n",
           B, L, D, heads, threads, have == B ? "ml-1m lengths" : "full", tokens, B * L,
           recsys_ctx_isa(ctx), recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM),
           recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_ATTENTION));
    printf("  forward %.1f ms  loss %.1f ms  backward %.1f ms  total %.1f ms/step "
           "(%.2f s per ML-1M epoch of 48 steps), CPU %.1f ms/step, peak RSS %.0f MB\n",
           tf * ms, tl * ms, tb * ms, (tf + tl + tb) * ms, (tf + tl + tb) / steps * 48,
           cpu * ms, ru.ru_maxrss / 1024.0);
    m->ops->ws_free(ws);
    rs_free(F);
    rs_free(dF);
    rs_free(G);
    free(seq);
    free(pos);
    free(neg);
    recsys_model_free(m);
    recsys_ctx_free(ctx);
    return 0;
}

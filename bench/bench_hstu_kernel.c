/*
 * The HSTU attention kernel of the dispatch table alone, one (sequence,
 * head): L = 200, dqk = dv = 50, forward and backward, without and with the
 * time bias, on sorted timestamps with gaps uniform in [0, GAP) seconds.
 *
 *   bench_hstu_kernel [GAP]      (default 100000; RECSYS_MAX_ISA caps the ISA)
 *
 * Prints the median over 51 rounds of 20 calls each (docs/HSTU.md, "The
 * attention kernel").
 */
#include "core/internal.h"
#include "bench_time.h"

#include <stdio.h>
#include <stdlib.h>

enum { L = 200, D = 50, LD = 3 * D, ROUNDS = 51, CALLS = 20 };

int main(int argc, char **argv)
{
    int64_t gap = argc > 1 ? atoll(argv[1]) : 100000;
    if (gap < 1) gap = 1;
    recsys_ctx *ctx;
    if (recsys_ctx_new_with_threads(1, &ctx)) return 1;
    const rs_kernels *k = &ctx->kern;
    float *qkv = rs_malloc(sizeof(float) * L * LD), *o = rs_malloc(sizeof(float) * L * D);
    float *g = rs_malloc(sizeof(float) * L * LD), *rp = rs_malloc(sizeof(float) * (2 * L - 1));
    float *rt = rs_malloc(sizeof(float) * RS_HSTU_TIME_BUCKETS);
    float *drp = rs_calloc(2 * L - 1, sizeof(float)), *drt = rs_calloc(RS_HSTU_TIME_BUCKETS, sizeof(float));
    float *scratch = rs_malloc(sizeof(float) * rs_hstu_scratch_floats(D, D));
    int64_t *t = rs_malloc(sizeof(int64_t) * L), *nt = rs_malloc(sizeof(int64_t) * L);
    if (!qkv || !o || !g || !rp || !rt || !drp || !drt || !scratch || !t || !nt) return 1;
    rs_rng r;
    rs_rng_seed(&r, 1);
    for (int i = 0; i < L * LD; i++) qkv[i] = (float)rs_rng_uniform(&r) - 0.5f;
    for (int i = 0; i < 2 * L - 1; i++) rp[i] = 0.01f * (float)(i % 50);
    for (int i = 0; i < RS_HSTU_TIME_BUCKETS; i++) rt[i] = 0.001f * (float)i;
    int64_t now = 1000000000;
    for (int i = 0; i < L; i++) t[i] = now += (int64_t)rs_rng_below(&r, (uint64_t)gap);
    for (int i = 0; i < L; i++) nt[i] = i + 1 < L ? t[i + 1] : t[i];
    for (int time = 0; time < 2; time++) {
        rs_hstu_attn a = {L, 0, L, D, D, qkv, qkv + D, qkv + 2 * D, LD, rp, time ? rt : NULL, t, nt};
        double f[ROUNDS], b[ROUNDS];
        for (int round = 0; round < ROUNDS; round++) {
            double t0 = bench_now();
            for (int c = 0; c < CALLS; c++) k->hstu_fwd(&a, o, D, scratch);
            double t1 = bench_now();
            for (int c = 0; c < CALLS; c++)
                k->hstu_bwd(&a, o, D, g, g + D, g + 2 * D, drp, drt, scratch);
            f[round] = (t1 - t0) / CALLS;
            b[round] = (bench_now() - t1) / CALLS;
        }
        qsort(f, ROUNDS, sizeof *f, bench_cmp_double);
        qsort(b, ROUNDS, sizeof *b, bench_cmp_double);
        printf("{\"bench\": \"hstu_kernel\", \"isa\": \"%s\", \"L\": %d, \"d\": %d, \"gap\": %lld, "
               "\"time_bias\": %d, \"fwd_us\": %.1f, \"bwd_us\": %.1f}\n",
               recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_HSTU_ATTENTION), L, D, (long long)gap,
               time, 1e6 * f[ROUNDS / 2], 1e6 * b[ROUNDS / 2]);
    }
    rs_free(qkv); rs_free(o); rs_free(g); rs_free(rp); rs_free(rt); rs_free(drp); rs_free(drt);
    rs_free(scratch); rs_free(t); rs_free(nt);
    recsys_ctx_free(ctx);
    return 0;
}

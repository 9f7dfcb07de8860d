/*
 * Causal softmax attention, forward + backward: the fused kernel of the
 * kernel table (online softmax, no L x L matrix) against a plain
 * GEMM-softmax-GEMM that materialises the L x L weights and runs its five
 * GEMMs through the library's rs_gemm (same ctx, same GEMM kernels).
 *
 *   bench_attention [--threads N] [--reps R] [--dh D] [--isa scalar|avx2|avx512] [--L n]
 *                   [--clock wall|cpu]
 *
 * Shapes: L = 50, 200, 1024 with 128, 64 and 8 sequences (batch x heads),
 * head size D (default 50). The fused kernel runs one task per sequence on
 * the ctx pool; the plain version goes sequence by sequence with rs_gemm
 * parallel inside. Prints medians over R repetitions (after one warm-up).
 * --clock cpu (one thread only) times with the thread's CPU clock, which
 * stays meaningful on a machine shared with other jobs.
 */
#include "core/internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_data {
    recsys_ctx *ctx;
    int L, dh, nseq;
    float scale, drop;
    float *Q, *K, *V, *dO, *O, *lse, *dQ, *dK, *dV;
    float *P, *dP; /* plain version: L x L weights and their gradient */
} bench_data;

static int use_cpu_clock;

static double bench_now(void)
{
    if (!use_cpu_clock) return rs_now();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *seq(float *base, const bench_data *b, int s)
{
    return base + (size_t)s * b->L * b->dh;
}

static void fused_fwd_task(void *arg, int s, int thread)
{
    (void)thread;
    bench_data *b = arg;
    b->ctx->kern.attn_fwd(b->L, 0, b->dh, b->scale, seq(b->Q, b, s), seq(b->K, b, s),
                          seq(b->V, b, s), b->dh, b->drop, 1234 + (uint64_t)s, seq(b->O, b, s),
                          b->lse + (size_t)s * b->L);
}

static void fused_bwd_task(void *arg, int s, int thread)
{
    (void)thread;
    bench_data *b = arg;
    b->ctx->kern.attn_bwd(b->L, 0, b->dh, b->scale, seq(b->Q, b, s), seq(b->K, b, s),
                          seq(b->V, b, s), seq(b->O, b, s), seq(b->dO, b, s),
                          b->lse + (size_t)s * b->L, b->dh, b->drop, 1234 + (uint64_t)s,
                          seq(b->dQ, b, s), seq(b->dK, b, s), seq(b->dV, b, s));
}

/* P = causal softmax(scale Q K^T); O = P V. Exponentials only below the diagonal. */
static void plain_fwd(bench_data *b, int s)
{
    const int L = b->L, dh = b->dh;
    rs_gemm(b->ctx, 0, 1, L, L, dh, b->scale, seq(b->Q, b, s), dh, seq(b->K, b, s), dh, 0.0f,
            b->P, L);
    for (int i = 0; i < L; i++) {
        float *p = b->P + (size_t)i * L, m = -FLT_MAX, sum = 0.0f;
        for (int j = 0; j <= i; j++) m = p[j] > m ? p[j] : m;
        for (int j = 0; j <= i; j++) sum += (p[j] = expf(p[j] - m));
        float inv = 1.0f / sum;
        for (int j = 0; j <= i; j++) p[j] *= inv;
        memset(p + i + 1, 0, sizeof(float) * (size_t)(L - i - 1));
    }
    rs_gemm(b->ctx, 0, 0, L, dh, L, 1.0f, b->P, L, seq(b->V, b, s), dh, 0.0f, seq(b->O, b, s), dh);
}

/* dV = P^T dO; dP = dO V^T; dS = P (dP - rowsum(P dP)); dQ = s dS K; dK = s dS^T Q. */
static void plain_bwd(bench_data *b, int s)
{
    const int L = b->L, dh = b->dh;
    rs_gemm(b->ctx, 1, 0, L, dh, L, 1.0f, b->P, L, seq(b->dO, b, s), dh, 0.0f, seq(b->dV, b, s),
            dh);
    rs_gemm(b->ctx, 0, 1, L, L, dh, 1.0f, seq(b->dO, b, s), dh, seq(b->V, b, s), dh, 0.0f, b->dP,
            L);
    for (int i = 0; i < L; i++) {
        float *p = b->P + (size_t)i * L, *dp = b->dP + (size_t)i * L, D = 0.0f;
        for (int j = 0; j <= i; j++) D += p[j] * dp[j];
        for (int j = 0; j < L; j++) dp[j] = p[j] * (dp[j] - D);
    }
    rs_gemm(b->ctx, 0, 0, L, dh, L, b->scale, b->dP, L, seq(b->K, b, s), dh, 0.0f,
            seq(b->dQ, b, s), dh);
    rs_gemm(b->ctx, 1, 0, L, dh, L, b->scale, b->dP, L, seq(b->Q, b, s), dh, 0.0f,
            seq(b->dK, b, s), dh);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* One forward and one backward over all sequences: method 0 plain, 1 fused,
 * 2 fused with dropout 0.2. Adds the times (ms) to tf and tb. */
static void run_once(bench_data *b, int method, double *tf, double *tb)
{
    b->drop = method == 2 ? 0.2f : 0.0f;
    double t0 = bench_now();
    if (method) rs_pool_run(b->ctx->pool, b->nseq, fused_fwd_task, b);
    else
        for (int s = 0; s < b->nseq; s++) plain_fwd(b, s);
    double t1 = bench_now();
    if (method) rs_pool_run(b->ctx->pool, b->nseq, fused_bwd_task, b);
    else /* one sequence's weights at a time: redo its forward softmax first */
        for (int s = 0; s < b->nseq; s++) {
            if (b->nseq > 1) {
                double u = bench_now();
                plain_fwd(b, s);
                t1 += bench_now() - u; /* not counted as backward */
            }
            plain_bwd(b, s);
        }
    double t2 = bench_now();
    *tf = (t1 - t0) * 1e3;
    *tb = (t2 - t1) * 1e3;
}

/* Median fwd and bwd times (ms) of the three methods, interleaved within each
 * repetition so that a change in machine load hits them alike. */
static void time_methods(bench_data *b, int reps, double fwd_ms[3], double bwd_ms[3])
{
    double tf[3][64], tb[3][64];
    for (int r = -1; r < reps; r++)
        for (int m = 0; m < 3; m++) {
            double f, g;
            run_once(b, m, &f, &g);
            if (r >= 0) {
                tf[m][r] = f;
                tb[m][r] = g;
            }
        }
    for (int m = 0; m < 3; m++) {
        fwd_ms[m] = median(tf[m], reps);
        bwd_ms[m] = median(tb[m], reps);
    }
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(a[i] - b[i]) > m ? fabsf(a[i] - b[i]) : m;
    return m;
}

int main(int argc, char **argv)
{
    int threads = 1, reps = 5, dh = 50, only_L = 0;
    const char *isa = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dh")) dh = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--isa")) isa = argv[i + 1];
        else if (!strcmp(argv[i], "--L")) only_L = atoi(argv[i + 1]); /* one of the three */
        else if (!strcmp(argv[i], "--clock")) use_cpu_clock = !strcmp(argv[i + 1], "cpu");
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1 || reps > 64 || dh < 1 || (use_cpu_clock && threads != 1)) {
        fprintf(stderr, "bad --reps (1..64) or --dh, or --clock cpu with threads != 1\n");
        return 2;
    }
    recsys_ctx *ctx;
    if (recsys_ctx_new(&ctx) != RECSYS_OK || recsys_ctx_set_threads(ctx, threads) != RECSYS_OK ||
        (isa && recsys_ctx_set_max_isa(ctx, isa) != RECSYS_OK)) {
        fprintf(stderr, "ctx setup failed\n");
        return 1;
    }
    printf("attention fwd+bwd, head size %d, threads %d, kernels %s / %s, median of %d, %s clock\n",
           dh, threads, ctx->kern.names[RECSYS_KERNEL_ATTENTION],
           ctx->kern.names[RECSYS_KERNEL_GEMM], reps, use_cpu_clock ? "cpu" : "wall");
    printf("%6s %5s | %9s %9s %9s | %9s %9s | %9s %9s %9s | %7s\n", "L", "seqs", "fused_fwd",
           "fused_bwd", "fused", "drop_fwd", "drop_bwd", "plain_fwd", "plain_bwd", "plain",
           "speedup");
    static const int Ls[] = {50, 200, 1024}, nseqs[] = {128, 64, 8};
    rs_rng rng;
    rs_rng_seed(&rng, 1);
    int rc = 0;
    for (int t = 0; t < 3; t++) {
        if (only_L && Ls[t] != only_L) continue;
        bench_data b = {.ctx = ctx, .L = Ls[t], .dh = dh, .nseq = nseqs[t],
                        .scale = 1.0f / sqrtf((float)dh)};
        size_t n = (size_t)b.nseq * b.L * dh;
        float **bufs[] = {&b.Q, &b.K, &b.V, &b.dO, &b.O, &b.dQ, &b.dK, &b.dV};
        int ok = 1;
        for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++)
            ok &= (*bufs[k] = rs_malloc(n * sizeof(float))) != NULL;
        b.lse = rs_malloc((size_t)b.nseq * b.L * sizeof(float));
        b.P = rs_malloc((size_t)b.L * b.L * sizeof(float));
        b.dP = rs_malloc((size_t)b.L * b.L * sizeof(float));
        float *O_fused = rs_malloc(n * sizeof(float));
        if (!ok || !b.lse || !b.P || !b.dP || !O_fused) {
            fprintf(stderr, "out of memory\n");
            rc = 1;
        } else {
            for (size_t i = 0; i < n; i++) {
                b.Q[i] = (float)rs_rng_uniform(&rng) * 2.0f - 1.0f;
                b.K[i] = (float)rs_rng_uniform(&rng) * 2.0f - 1.0f;
                b.V[i] = (float)rs_rng_uniform(&rng) * 2.0f - 1.0f;
                b.dO[i] = (float)rs_rng_uniform(&rng) * 2.0f - 1.0f;
            }
            double tf[3], tb[3], f, g;
            run_once(&b, 1, &f, &g); /* fused O without dropout, for the check below */
            memcpy(O_fused, b.O, n * sizeof(float));
            time_methods(&b, reps, tf, tb);
            run_once(&b, 0, &f, &g); /* leaves the plain O of every sequence in b.O */
            float err = max_abs_diff(O_fused, b.O, n);
            double fused = tf[1] + tb[1], plain = tf[0] + tb[0];
            printf("%6d %5d | %9.3f %9.3f %9.3f | %9.3f %9.3f | %9.3f %9.3f %9.3f | %6.2fx%s\n",
                   b.L, b.nseq, tf[1], tb[1], fused, tf[2], tb[2], tf[0], tb[0], plain,
                   plain / fused, err > 1e-4f ? "  MISMATCH" : "");
            if (err > 1e-4f) rc = 1;
        }
        for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) rs_free(*bufs[k]);
        rs_free(b.lse);
        rs_free(b.P);
        rs_free(b.dP);
        rs_free(O_fused);
    }
    printf("times in ms for all sequences; speedup = plain / fused (no dropout)\n");
    recsys_ctx_free(ctx);
    return rc;
}

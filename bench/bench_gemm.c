/*
 * GEMM benchmark: librecsys rs_gemm against OpenBLAS cblas_sgemm and oneDNN
 * dnnl_sgemm at the model shapes (M = 128 x 200 = 25600 rows, d in
 * {50, 64, 128, 256, 512}, the three training products) and at 1024^3.
 * First measures this machine's FP32 FMA peak per core (independent
 * vfmadd231ps chains on zmm and ymm registers), then reports GFLOP/s, the
 * fraction of peak (peak per core x threads) and the ratio to OpenBLAS, as a
 * markdown table. Each entry is the median of -r runs after one warm-up.
 *
 *   bench_gemm [-t threads] [-r runs] [--full] [--quick] [-s ta,tb,M,N,K]
 *     -t N     threads for all three libraries (default 1)
 *     --full   every (K, N) pair of the d set, not only K = N
 *     --quick  only d = 64 and 1024^3 (a smoke run)
 *     -s ...   one shape only
 *     --cpu    time with the thread's CPU clock instead of the wall clock
 *              (-t 1 only): time slices lost to other processes on a
 *              shared machine are not counted
 *     --best   report the fastest run instead of the median (for tuning)
 *     --ours   librecsys only (for tuning)
 */
#include "core/internal.h"
#include "kernels_isa.h"

#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef RECSYS_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

#define MAX_RUNS 31

static int use_cpu_clock, use_best, only_ours;

static double now(void)
{
    if (!use_cpu_clock) return rs_now();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- FMA peak */

/* 12 independent accumulators: enough to cover FMA latency x ports on
 * current x86 cores (4 cycles x 2 pipes). Returns GFLOP/s. */
#define FMA_LOOP(REG, N_ITERS, FLOPS_PER_INSN)                                                  \
    do {                                                                                        \
        long n_ = (N_ITERS);                                                                    \
        __asm__ volatile("vxorps %%xmm14, %%xmm14, %%xmm14\n\t"                                 \
                         "vxorps %%xmm15, %%xmm15, %%xmm15\n\t"                                 \
                         "1:\n\t"                                                               \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "0\n\t"                 \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "1\n\t"                 \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "2\n\t"                 \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "3\n\t"                 \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "4\n\t"                 \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "5\n\t"                 \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "6\n\t"                 \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "7\n\t"                 \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "8\n\t"                 \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "9\n\t"                 \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "10\n\t"                \
                         "vfmadd231ps %%" REG "14, %%" REG "15, %%" REG "11\n\t"                \
                         "dec %0\n\t"                                                           \
                         "jnz 1b\n\t"                                                           \
                         "vzeroupper\n\t"                                                       \
                         : "+r"(n_)                                                             \
                         :                                                                      \
                         : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",        \
                           "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm14", "xmm15");         \
    } while (0)

static double peak_gflops(int zmm)
{
    const long iters = 4000000; /* ~5 ms: short runs fit in one time slice */
    double best = 0.0;
    for (int rep = 0; rep < 40; rep++) {
        double t = now();
        if (zmm) FMA_LOOP("zmm", iters, 32);
        else FMA_LOOP("ymm", iters, 16);
        t = now() - t;
        double g = (double)iters * 12 * (zmm ? 32 : 16) / t * 1e-9;
        if (g > best) best = g; /* the least disturbed run: other processes share the cores */
    }
    return best;
}

/* ---------------------------------------------------------------- runners */

typedef struct shape {
    const char *what;
    int ta, tb, M, N, K;
} shape;

typedef struct bufs {
    float *A, *B, *C;
} bufs;

enum lib { LIB_OURS, LIB_OURS_BF16, LIB_OPENBLAS, LIB_ONEDNN, LIB_COUNT };

static void run_once(enum lib lib, recsys_ctx *ctx, recsys_ctx *ctx_bf16, const shape *s,
                     const bufs *b)
{
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N, ldc = s->N;
    switch (lib) {
    case LIB_OURS:
        rs_gemm(ctx, s->ta, s->tb, s->M, s->N, s->K, 1.0f, b->A, lda, b->B, ldb, 0.0f, b->C, ldc);
        break;
    case LIB_OURS_BF16:
        rs_gemm(ctx_bf16, s->ta, s->tb, s->M, s->N, s->K, 1.0f, b->A, lda, b->B, ldb, 0.0f,
                b->C, ldc);
        break;
    case LIB_OPENBLAS:
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                    s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, 1.0f, b->A, lda, b->B,
                    ldb, 0.0f, b->C, ldc);
        break;
    case LIB_ONEDNN:
#ifdef RECSYS_HAVE_ONEDNN
        dnnl_sgemm(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->M, s->N, s->K, 1.0f, b->A, lda,
                   b->B, ldb, 0.0f, b->C, ldc);
#endif
        break;
    default: break;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median GFLOP/s over runs (after a warm-up call). */
static double measure(enum lib lib, recsys_ctx *ctx, recsys_ctx *ctx_bf16, const shape *s,
                      const bufs *b, int runs)
{
    double t[MAX_RUNS];
    run_once(lib, ctx, ctx_bf16, s, b);
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        run_once(lib, ctx, ctx_bf16, s, b);
        t[r] = now() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    return 2.0 * s->M * s->N * s->K / t[use_best ? 0 : runs / 2] * 1e-9;
}

static float *rand_floats(size_t n, uint64_t seed)
{
    float *p = rs_malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (float)((seed >> 40) * (1.0 / 16777216.0)) - 0.5f;
    }
    return p;
}

int main(int argc, char **argv)
{
    int threads = 1, runs = 5, full = 0, quick = 0;
    shape one = {NULL, 0, 0, 0, 0, 0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--full")) full = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--cpu")) use_cpu_clock = 1;
        else if (!strcmp(argv[i], "--best")) use_best = 1;
        else if (!strcmp(argv[i], "--ours")) only_ours = 1;
        else if (!strcmp(argv[i], "-s") && i + 1 < argc &&
                 sscanf(argv[++i], "%d,%d,%d,%d,%d", &one.ta, &one.tb, &one.M, &one.N, &one.K) == 5)
            one.what = "shape";
        else {
            fprintf(stderr, "usage: %s [-t threads] [-r runs] [--full] [--quick] "
                            "[-s ta,tb,M,N,K] [--cpu] [--best] [--ours]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1) threads = 1;
    if (runs < 1) runs = 1;
    if (runs > MAX_RUNS) runs = MAX_RUNS;
    if (use_cpu_clock && threads != 1) {
        fprintf(stderr, "--cpu needs -t 1 (the CPU clock of one thread)\n");
        return 2;
    }

    /* oneDNN runs on OpenMP, which read OMP_NUM_THREADS when it was loaded:
     * set the count through the runtime (found at run time, so the bench does
     * not link libgomp itself), and the variable for any later reader. */
    char nt[16];
    snprintf(nt, sizeof nt, "%d", threads);
    setenv("OMP_NUM_THREADS", nt, 1);
    void (*omp_set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (omp_set) omp_set(threads);
    openblas_set_num_threads(threads);

    recsys_ctx *ctx = NULL, *ctx_bf16 = NULL;
    if (recsys_ctx_new(&ctx) != RECSYS_OK || recsys_ctx_set_threads(ctx, threads) != RECSYS_OK ||
        recsys_ctx_new(&ctx_bf16) != RECSYS_OK ||
        recsys_ctx_set_threads(ctx_bf16, threads) != RECSYS_OK) {
        fprintf(stderr, "cannot create a recsys ctx\n");
        return 1;
    }
    recsys_ctx_set_gemm_backend(ctx, "native");
    int have_bf16 = recsys_ctx_set_bf16(ctx_bf16, 1) == RECSYS_OK;
    int have_onednn = 0;
#ifdef RECSYS_HAVE_ONEDNN
    have_onednn = 1;
#endif

    rs_cpu_features f;
    rs_cpu_detect(&f);
    double peak_ymm = f.avx2_fma ? peak_gflops(0) : 0.0;
    double peak_zmm = f.avx512 ? peak_gflops(1) : 0.0;
    /* % of peak is taken against the registers the chosen kernels use */
    const char *isa = recsys_ctx_isa(ctx);
    double peak = (!strcmp(isa, "avx512") ? peak_zmm : peak_ymm) * threads;
    if (peak <= 0.0) peak = 1.0;
    printf("FP32 FMA peak per core: %.1f GFLOP/s (zmm), %.1f GFLOP/s (ymm)\n", peak_zmm,
           peak_ymm);
    printf("threads: %d, runs: %d (%s, %s clock), kernels: %s, OpenBLAS core: %s\n\n",
           threads, runs, use_best ? "best" : "median", use_cpu_clock ? "thread CPU" : "wall",
           recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM), openblas_get_corename());

    static const int ds[] = {50, 64, 128, 256, 512};
    shape shapes[128];
    int n = 0;
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < 5; i++) {
            for (int j = 0; j < 5; j++) {
                if (!full && i != j) continue;
                if (quick && (ds[i] != 64 || ds[j] != 64)) continue;
                int d_in = ds[i], d_out = ds[j];
                if (t == 0) shapes[n++] = (shape){"X·W", 0, 0, 25600, d_out, d_in};
                if (t == 1) shapes[n++] = (shape){"X·Wᵀ", 0, 1, 25600, d_out, d_in};
                if (t == 2) shapes[n++] = (shape){"Xᵀ·dY", 1, 0, d_in, d_out, 25600};
            }
        }
    }
    shapes[n++] = (shape){"A·B", 0, 0, 1024, 1024, 1024};
    shapes[n++] = (shape){"A·Bᵀ", 0, 1, 1024, 1024, 1024};
    shapes[n++] = (shape){"Aᵀ·B", 1, 0, 1024, 1024, 1024};
    if (one.what) {
        shapes[0] = one;
        n = 1;
    }

    size_t max_a = 0, max_b = 0, max_c = 0;
    for (int i = 0; i < n; i++) {
        size_t a = (size_t)shapes[i].M * shapes[i].K, b = (size_t)shapes[i].K * shapes[i].N,
               c = (size_t)shapes[i].M * shapes[i].N;
        if (a > max_a) max_a = a;
        if (b > max_b) max_b = b;
        if (c > max_c) max_c = c;
    }
    bufs b = {rand_floats(max_a, 1), rand_floats(max_b, 2), rand_floats(max_c, 3)};

    printf("| op | M | N | K | librecsys GF/s | %% peak | OpenBLAS GF/s | oneDNN GF/s | "
           "librecsys / OpenBLAS | bf16 GF/s |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n; i++) {
        const shape *s = &shapes[i];
        fflush(stdout);
        double ours = measure(LIB_OURS, ctx, ctx_bf16, s, &b, runs);
        double ob = only_ours ? 0.0 : measure(LIB_OPENBLAS, ctx, ctx_bf16, s, &b, runs);
        double dn = have_onednn && !only_ours ? measure(LIB_ONEDNN, ctx, ctx_bf16, s, &b, runs)
                                              : 0.0;
        double bf = have_bf16 && !only_ours ? measure(LIB_OURS_BF16, ctx, ctx_bf16, s, &b, runs)
                                            : 0.0;
        printf("| %s | %d | %d | %d | %.1f | %.0f%% | ", s->what, s->M, s->N, s->K, ours,
               100.0 * ours / peak);
        if (only_ours) {
            printf("- | - | - | - |\n");
            continue;
        }
        printf("%.1f | ", ob);
        if (have_onednn) printf("%.1f | ", dn);
        else printf("n/a | ");
        printf("%.2f | ", ours / ob);
        if (have_bf16) printf("%.1f |\n", bf);
        else printf("n/a |\n");
    }
    rs_free(b.A);
    rs_free(b.B);
    rs_free(b.C);
    recsys_ctx_free(ctx);
    recsys_ctx_free(ctx_bf16);
    return 0;
}

/* Internal declarations shared by lib/: never installed. */
#ifndef RS_INTERNAL_H
#define RS_INTERNAL_H

#include "librecsys/recsys.h"
#include "kernels.h"
#include "core/pool.h"
#include "core/rng.h"

#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>

#if defined(__GNUC__)
#define RS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RS_PRINTF(a, b)
#endif

#define RS_ERRMSG_MAX 1024

struct recsys_ctx {
    char errmsg[RS_ERRMSG_MAX];
    char errfile[512];
    int errline, errcol;
    int n_threads;
    uint64_t seed;
    rs_cpu_features cpu;
    enum rs_isa max_isa;
    rs_kernels kern;
    int gemm_onednn; /* 1: GEMM through dnnl_sgemm */
    int bf16;
    float *gemm_scratch;        /* rs_gemm packing + K-split partials, grown lazily */
    size_t gemm_scratch_floats;
    rs_pool *pool;
    recsys_log_fn log_fn;
    void *log_user;
};

/* Record an error on ctx (may be NULL) and return status. */
recsys_status rs_error(recsys_ctx *ctx, recsys_status status, const char *fmt, ...)
    RS_PRINTF(3, 4);
/* Same, with a location in an input file (line/col 1-based, 0 = unknown). */
recsys_status rs_error_at(recsys_ctx *ctx, recsys_status status, const char *file, int line,
                          int col, const char *fmt, ...) RS_PRINTF(6, 7);
void rs_clear_error(recsys_ctx *ctx);
void rs_log(recsys_ctx *ctx, int level, const char *fmt, ...) RS_PRINTF(3, 4);

/* 64-byte aligned allocation; free with rs_free. Return NULL on failure. */
void *rs_malloc(size_t n);
void *rs_calloc(size_t n, size_t size);
void rs_free(void *p);
/* Overflow-checked n*size for allocations: 0 on overflow. */
size_t rs_mul_size(size_t n, size_t size);

/* Multi-threaded GEMM through the ctx (pool split + chosen backend). Call it
 * from the ctx's thread, never from inside a pool task: it uses the ctx
 * scratch. Inside a task, call ctx->kern.gemm with your own scratch (or NULL). */
void rs_gemm(recsys_ctx *ctx, int trans_a, int trans_b, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Open path for reading if it is a regular file (FIFOs, devices and
 * directories are refused without blocking); `what` names the file's role
 * in the message ("data", "config"). *fd is -1 on error. */
recsys_status rs_open_regular(recsys_ctx *ctx, const char *path, const char *what, int *fd);

/* resources.max_memory in bytes (0 = automatic: 3/4 of the physical memory,
 * or the address-space limit when lower); *why (may be NULL) names the source. */
double rs_memory_limit(const recsys_opts *opts, const char **why);
/* RECSYS_E_NOMEM with the estimate when `bytes` (what a configuration of
 * `what` needs, estimated before allocating) is over the limit. */
recsys_status rs_check_memory(recsys_ctx *ctx, const recsys_opts *opts, double bytes,
                              const char *what);

/* Wall clock in seconds (monotonic). */
double rs_now(void);

/* ---------------------------------------------------------------- options */
/* Known keys with their type and default live in lib/core/opts.c. */
const char *rs_opts_str(const recsys_opts *o, const char *key);   /* never NULL for known keys */
int64_t rs_opts_int(const recsys_opts *o, const char *key);
double rs_opts_float(const recsys_opts *o, const char *key);
recsys_ctx *rs_opts_ctx(const recsys_opts *o);
/* A new opts (same ctx) holding src's values; swap exchanges two sets of
 * values (each keeps its ctx): together, all-or-nothing updates. */
recsys_status rs_opts_copy(const recsys_opts *src, recsys_opts **out);
void rs_opts_swap_values(recsys_opts *a, recsys_opts *b);

/* ---------------------------------------------------------------- dataset */
struct recsys_dataset {
    recsys_ctx *ctx;
    int64_t n_users;
    int32_t n_items;
    int64_t n_events;
    int64_t *offsets;   /* n_users+1: user u's events are [offsets[u], offsets[u+1]) */
    int32_t *items;     /* n_events dense item ids 1..n_items, chronological per user */
    int64_t *times;     /* n_events or NULL */
    char **user_names;  /* n_users external ids */
    char **item_names;  /* n_items+1 external ids (index 0 unused) */
    void *index;        /* external name -> dense id lookup (dataset.c) */
    int64_t *item_count; /* n_items+1 counts over training sequences (popularity) */
    int holdout;        /* data.split: 2 = "loo" (valid + test), 1 = "last" (test only) */
};

/* Leave-one-out split of user u (MODELS.md §1). With holdout 2 ("loo"),
 * users with >= 4 events have a validation target at n-2 and a test target
 * at n-1, and train on [0, n-2). With holdout 1 ("last", the HSTU reference
 * protocol), users with >= 3 events have only a test target at n-1 (the
 * validation split then is the test split) and train on [0, n-1). Shorter
 * users train on everything and are not evaluated. */
static inline int64_t rs_user_len(const recsys_dataset *ds, int64_t u)
{
    return ds->offsets[u + 1] - ds->offsets[u];
}
static inline int rs_user_evaluated(const recsys_dataset *ds, int64_t u)
{
    return rs_user_len(ds, u) >= (ds->holdout == 1 ? 3 : 4);
}
static inline int64_t rs_user_train_len(const recsys_dataset *ds, int64_t u)
{
    int64_t n = rs_user_len(ds, u);
    return rs_user_evaluated(ds, u) ? n - ds->holdout : n;
}

#endif

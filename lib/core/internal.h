/* Internal declarations shared by lib/: never installed.
 *
 * lib/ is built in stages; a directory includes and calls only the stages
 * below it (tests/check_layers.sh checks the includes):
 *   core  <-  data  <-  nn, models  <-  checkpoint  <-  train, eval
 *   core, data  <-  analysis
 * core is this header's home: ctx, options (options.def), config, pool,
 * GEMM. Known back edge, to be removed: nn/nn.h uses models' config. */
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
    rs_pool *pool;              /* owned, or the shared pool's (lib/serve/threads.c) */
    struct recsys_threadpool *shared; /* non-NULL: pool belongs to this shared pool */
    recsys_log_fn log_fn;
    void *log_user;
};

/* A ctx with n_threads threads (0 = online CPUs), or on shared_pool. */
recsys_status rs_ctx_create(int n_threads, rs_pool *shared_pool, recsys_ctx **out);
/* Drop a reference to a shared pool (lib/serve/threads.c). */
void rs_threadpool_unref(struct recsys_threadpool *tp);

/* Record an error on ctx (may be NULL) and return status. */
recsys_status rs_error(recsys_ctx *ctx, recsys_status status, const char *fmt, ...)
    RS_PRINTF(3, 4);
/* Same, with a location in an input file (line/col 1-based, 0 = unknown). */
recsys_status rs_error_at(recsys_ctx *ctx, recsys_status status, const char *file, int line,
                          int col, const char *fmt, ...) RS_PRINTF(6, 7);
void rs_clear_error(recsys_ctx *ctx);
/* First thing in every public call that can fail: clear the error of ctx
 * (may be NULL) and the calling thread's last error, so that no message is
 * ever stale. Calls that cannot fail (getters, *_free) do not call it. */
void rs_enter(recsys_ctx *ctx);
/* Error for a NULL handle / out pointer or an out-of-range argument where no
 * ctx is at hand: recorded as the calling thread's last error. */
#define RS_BAD_ARGS() \
    rs_error(NULL, RECSYS_E_INVALID, "%s: NULL or out-of-range argument", __func__)
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
/* Every key, its type, default, bounds and doc are in core/options.def.
 * Library code reads options only through the typed accessors below, with
 * the key's id: rs_opt_int(o, RS_OPT_MODEL_DIM). A misspelt id, or reading
 * a key as the wrong type (rs_opt_int on a float key), does not compile.
 * A NULL opts reads the defaults. */
enum rs_opt_type {
    RS_OPT_T_STR, RS_OPT_T_INT, RS_OPT_T_FLOAT, RS_OPT_T_ENUM, RS_OPT_T_BOOL,
    RS_OPT_T_INT_LIST /* comma-separated integers, each within the bounds */
};

typedef enum rs_opt_id {
#define RS_OPT(id, ...) RS_OPT_##id,
#include "core/options.def"
#undef RS_OPT
    RS_OPT_COUNT
} rs_opt_id;

/* RS_OPT_<ID>_TYPE: the key's rs_opt_type, for the compile-time checks. */
enum {
#define RS_OPT(id, key, type, ...) RS_OPT_##id##_TYPE = RS_OPT_T_##type,
#include "core/options.def"
#undef RS_OPT
};

#define RS_OPT_TYPE_CHECK(id, t)                                                    \
    ((void)sizeof(struct {                                                          \
        int rs_unused;                                                              \
        _Static_assert((int)id##_TYPE == (int)RS_OPT_T_##t, #id " is not " #t);     \
    }))

/* STR: the text (never NULL). */
#define rs_opt_str(o, id) (RS_OPT_TYPE_CHECK(id, STR), rs_opt_text((o), (id)))
/* INT_LIST: the text, already validated (e.g. "1,5,10"). */
#define rs_opt_list(o, id) (RS_OPT_TYPE_CHECK(id, INT_LIST), rs_opt_text((o), (id)))
/* INT: the value. */
#define rs_opt_int(o, id) (RS_OPT_TYPE_CHECK(id, INT), rs_opt_int_value((o), (id)))
/* FLOAT: the value. */
#define rs_opt_float(o, id) (RS_OPT_TYPE_CHECK(id, FLOAT), rs_opt_float_value((o), (id)))
/* BOOL: 0 or 1. */
#define rs_opt_bool(o, id) (RS_OPT_TYPE_CHECK(id, BOOL), rs_opt_bool_value((o), (id)))
/* ENUM: the chosen word, and whether it is `choice` (which must be one of
 * the key's choices: checked by an assertion). */
#define rs_opt_enum(o, id) (RS_OPT_TYPE_CHECK(id, ENUM), rs_opt_text((o), (id)))
#define rs_opt_is(o, id, choice) (RS_OPT_TYPE_CHECK(id, ENUM), rs_opt_enum_is((o), (id), (choice)))

/* Set a key from text (validated as recsys_opts_set does), or an INT key
 * from a number. */
#define rs_opt_set(o, id, text) rs_opt_set_text((o), (id), (text))
#define rs_opt_set_int(o, id, v) (RS_OPT_TYPE_CHECK(id, INT), rs_opt_set_int_value((o), (id), (v)))

/* The functions behind the macros (lib/core/opts.c); call the macros. */
recsys_status rs_opt_set_text(recsys_opts *o, rs_opt_id id, const char *text);
recsys_status rs_opt_set_int_value(recsys_opts *o, rs_opt_id id, int64_t v);
const char *rs_opt_text(const recsys_opts *o, rs_opt_id id);
int64_t rs_opt_int_value(const recsys_opts *o, rs_opt_id id);
double rs_opt_float_value(const recsys_opts *o, rs_opt_id id);
int rs_opt_bool_value(const recsys_opts *o, rs_opt_id id);
int rs_opt_enum_is(const recsys_opts *o, rs_opt_id id, const char *choice);

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

/* Leave-one-out split of user u (docs/MODELS.md §1). With holdout 2 ("loo"),
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

/* recsys_ctx: errors, threads, seed, kernel dispatch, logging. */
#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int recsys_version_number(void) { return RECSYS_VERSION_NUMBER; }
const char *recsys_version_string(void) { return RECSYS_VERSION_STRING; }

/* The calling thread's last error (recsys_last_error): thread-local, so not
 * state shared between threads. */
static _Thread_local recsys_status tls_status;
static _Thread_local char tls_errmsg[RS_ERRMSG_MAX];

recsys_status recsys_last_error(void) { return tls_status; }
const char *recsys_last_errmsg(void) { return tls_errmsg; }

void rs_enter(recsys_ctx *ctx)
{
    tls_status = RECSYS_OK;
    tls_errmsg[0] = 0;
    rs_clear_error(ctx);
}

size_t recsys_errmsg_copy(const recsys_ctx *ctx, char *buf, size_t size)
{
    const char *msg = ctx ? ctx->errmsg : tls_errmsg;
    size_t n = strlen(msg);
    if (buf && size) {
        size_t k = n < size - 1 ? n : size - 1;
        memcpy(buf, msg, k);
        buf[k] = 0;
    }
    return n;
}

recsys_status recsys_check_version(int version_number)
{
    rs_enter(NULL);
    int major = version_number / 10000;
    if (version_number < 0 || major != RECSYS_VERSION_MAJOR || version_number > RECSYS_VERSION_NUMBER)
        return rs_error(NULL, RECSYS_E_UNSUPPORTED,
                        "librecsys %s (%d) cannot serve a caller built for version %d: "
                        "need the same major version and a library at least as new",
                        RECSYS_VERSION_STRING, RECSYS_VERSION_NUMBER, version_number);
    return RECSYS_OK;
}

const char *recsys_status_str(recsys_status s)
{
    switch (s) {
    case RECSYS_OK: return "RECSYS_OK";
    case RECSYS_E_INVALID: return "RECSYS_E_INVALID";
    case RECSYS_E_NOMEM: return "RECSYS_E_NOMEM";
    case RECSYS_E_IO: return "RECSYS_E_IO";
    case RECSYS_E_PARSE: return "RECSYS_E_PARSE";
    case RECSYS_E_FORMAT: return "RECSYS_E_FORMAT";
    case RECSYS_E_STATE: return "RECSYS_E_STATE";
    case RECSYS_E_UNSUPPORTED: return "RECSYS_E_UNSUPPORTED";
    case RECSYS_E_NUMERIC: return "RECSYS_E_NUMERIC";
    case RECSYS_E_ABORTED: return "RECSYS_E_ABORTED";
    case RECSYS_E_NOT_FOUND: return "RECSYS_E_NOT_FOUND";
    case RECSYS_E_INTERNAL: return "RECSYS_E_INTERNAL";
    default: return "RECSYS_E_UNKNOWN";
    }
}

static recsys_status verror_at(recsys_ctx *ctx, recsys_status status, const char *file,
                               int line, int col, const char *fmt, va_list ap)
{
    /* Always into the thread's last error, and into ctx when there is one. */
    char msg[RS_ERRMSG_MAX / 2];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char *out = tls_errmsg;
    size_t cap = sizeof tls_errmsg;
    if (file && line > 0 && col > 0)
        snprintf(out, cap, "%.300s:%d:%d: %s", file, line, col, msg);
    else if (file && line > 0)
        snprintf(out, cap, "%.300s:%d: %s", file, line, msg);
    else if (file)
        snprintf(out, cap, "%.300s: %s", file, msg);
    else
        snprintf(out, cap, "%s", msg);
    tls_status = status;
    if (!ctx) return status;
    snprintf(ctx->errmsg, sizeof ctx->errmsg, "%s", tls_errmsg);
    snprintf(ctx->errfile, sizeof ctx->errfile, "%.300s", file ? file : "");
    ctx->errline = file ? line : 0;
    ctx->errcol = file ? col : 0;
    return status;
}

recsys_status rs_error(recsys_ctx *ctx, recsys_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror_at(ctx, status, NULL, 0, 0, fmt, ap);
    va_end(ap);
    return status;
}

recsys_status rs_error_at(recsys_ctx *ctx, recsys_status status, const char *file, int line,
                          int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror_at(ctx, status, file, line, col, fmt, ap);
    va_end(ap);
    return status;
}

void rs_clear_error(recsys_ctx *ctx)
{
    if (!ctx) return;
    ctx->errmsg[0] = 0;
    ctx->errfile[0] = 0;
    ctx->errline = ctx->errcol = 0;
}

void rs_log(recsys_ctx *ctx, int level, const char *fmt, ...)
{
    if (!ctx || !ctx->log_fn) return;
    char msg[RS_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->log_fn(ctx->log_user, level, msg);
}

void *rs_malloc(size_t n)
{
    void *p = NULL;
    if (n == 0) n = 1;
    if (posix_memalign(&p, 64, (n + 63) & ~(size_t)63) != 0) return NULL;
    return p;
}

size_t rs_mul_size(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return 0;
    return n * size;
}

void *rs_calloc(size_t n, size_t size)
{
    size_t total = rs_mul_size(n, size);
    if (!total && n && size) return NULL;
    void *p = rs_malloc(total);
    if (p) memset(p, 0, total);
    return p;
}

void rs_free(void *p) { free(p); }
void recsys_free(void *p) { free(p); }

double rs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The kernels a ctx's work runs on, as one log line. */
static void log_kernels(recsys_ctx *ctx, const char *what)
{
    rs_log(ctx, RECSYS_LOG_INFO, "%s: kernels %s (GEMM %s, attention %s), %d threads, bf16 %s",
           what, recsys_ctx_isa(ctx), recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM),
           recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_ATTENTION), ctx->n_threads,
           ctx->bf16 ? "on" : "off");
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 256 ? 256 : (int)n);
}

static int parse_isa(const char *s, enum rs_isa *isa)
{
    if (!strcmp(s, "scalar")) *isa = RS_ISA_SCALAR;
    else if (!strcmp(s, "avx2")) *isa = RS_ISA_AVX2;
    else if (!strcmp(s, "avx512") || !strcmp(s, "best")) *isa = RS_ISA_AVX512;
    else return 0;
    return 1;
}

/* A ctx with n_threads threads (0 = online CPUs) or on a shared pool. */
recsys_status rs_ctx_create(int n_threads, rs_pool *shared_pool, recsys_ctx **out)
{
    rs_enter(NULL);
    if (!out) return RS_BAD_ARGS();
    *out = NULL;
    recsys_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return rs_error(NULL, RECSYS_E_NOMEM, "out of memory creating a context");
    ctx->seed = 42;
    ctx->max_isa = RS_ISA_AVX512;
    const char *env = getenv("RECSYS_MAX_ISA");
    if (env && *env && !parse_isa(env, &ctx->max_isa)) ctx->max_isa = RS_ISA_AVX512;
    rs_cpu_detect(&ctx->cpu);
    rs_kernels_init(&ctx->kern, &ctx->cpu, ctx->max_isa);
    env = getenv("RECSYS_GEMM");
    if (env && !strcmp(env, "onednn")) recsys_ctx_set_gemm_backend(ctx, "onednn");
    if (shared_pool) {
        ctx->pool = shared_pool;
        ctx->n_threads = rs_pool_threads(shared_pool);
    } else {
        ctx->n_threads = n_threads > 0 ? n_threads : online_cpus();
        ctx->pool = rs_pool_new(ctx->n_threads);
        if (!ctx->pool) {
            free(ctx);
            return rs_error(NULL, RECSYS_E_NOMEM, "cannot start the worker threads of a context");
        }
    }
    *out = ctx;
    return RECSYS_OK;
}

recsys_status recsys_ctx_new(recsys_ctx **out) { return rs_ctx_create(0, NULL, out); }

void recsys_ctx_free(recsys_ctx *ctx)
{
    if (!ctx) return;
    if (ctx->shared) rs_threadpool_unref(ctx->shared);
    else rs_pool_free(ctx->pool);
    rs_free(ctx->gemm_scratch);
    free(ctx);
}

const char *recsys_ctx_errmsg(const recsys_ctx *ctx)
{
    return ctx ? ctx->errmsg : "no context (NULL recsys_ctx)";
}

recsys_status recsys_ctx_error_location(const recsys_ctx *ctx, const char **file, int *line,
                                        int *column)
{
    if (!ctx) return RS_BAD_ARGS();
    if (file) *file = ctx->errfile;
    if (line) *line = ctx->errline;
    if (column) *column = ctx->errcol;
    return ctx->errfile[0] ? RECSYS_OK : RECSYS_E_NOT_FOUND;
}

recsys_status recsys_ctx_set_threads(recsys_ctx *ctx, int n_threads)
{
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    if (n_threads < 0 || n_threads > 1024)
        return rs_error(ctx, RECSYS_E_INVALID, "n_threads must be in 0..1024, got %d", n_threads);
    if (ctx->shared)
        return rs_error(ctx, RECSYS_E_STATE, "this ctx runs on a shared thread pool");
    if (n_threads == 0) n_threads = online_cpus();
    if (n_threads == ctx->n_threads) return RECSYS_OK;
    rs_pool *p = rs_pool_new(n_threads);
    if (!p) return rs_error(ctx, RECSYS_E_NOMEM, "cannot start %d threads", n_threads);
    rs_pool_free(ctx->pool);
    ctx->pool = p;
    ctx->n_threads = n_threads;
    return RECSYS_OK;
}

int recsys_ctx_threads(const recsys_ctx *ctx) { return ctx ? ctx->n_threads : 0; }

recsys_status recsys_ctx_set_seed(recsys_ctx *ctx, uint64_t seed)
{
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    ctx->seed = seed;
    return RECSYS_OK;
}

recsys_status recsys_ctx_set_max_isa(recsys_ctx *ctx, const char *isa)
{
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    enum rs_isa v;
    if (!isa || !parse_isa(isa, &v))
        return rs_error(ctx, RECSYS_E_INVALID,
                        "unknown ISA '%s' (expected scalar, avx2, avx512 or best)",
                        isa ? isa : "(null)");
    ctx->max_isa = v;
    rs_kernels_init(&ctx->kern, &ctx->cpu, v);
    if (ctx->bf16 && (!ctx->cpu.avx512_bf16 || ctx->kern.isa < RS_ISA_AVX512)) ctx->bf16 = 0;
    log_kernels(ctx, "ISA cap");
    return RECSYS_OK;
}

const char *recsys_ctx_isa(const recsys_ctx *ctx)
{
    if (!ctx) return NULL;
    switch (ctx->kern.isa) {
    case RS_ISA_AVX512: return "avx512";
    case RS_ISA_AVX2: return "avx2";
    default: return "scalar";
    }
}

const char *recsys_ctx_kernel_name(const recsys_ctx *ctx, int kernel)
{
    if (!ctx || kernel < 0 || kernel >= RECSYS_KERNEL_COUNT) return NULL;
    if (kernel == RECSYS_KERNEL_GEMM && ctx->gemm_onednn) return "gemm_onednn";
    return ctx->kern.names[kernel];
}

recsys_status recsys_ctx_set_gemm_backend(recsys_ctx *ctx, const char *backend)
{
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    if (backend && !strcmp(backend, "native")) {
        ctx->gemm_onednn = 0;
        log_kernels(ctx, "GEMM backend");
        return RECSYS_OK;
    }
    if (backend && !strcmp(backend, "onednn")) {
#ifdef RECSYS_HAVE_ONEDNN
        ctx->gemm_onednn = 1;
        log_kernels(ctx, "GEMM backend");
        return RECSYS_OK;
#else
        return rs_error(ctx, RECSYS_E_UNSUPPORTED, "librecsys was built without oneDNN");
#endif
    }
    return rs_error(ctx, RECSYS_E_INVALID, "unknown GEMM backend '%s' (native or onednn)",
                    backend ? backend : "(null)");
}

recsys_status recsys_ctx_set_bf16(recsys_ctx *ctx, int enable)
{
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    if (enable && (!ctx->cpu.avx512_bf16 || ctx->kern.isa < RS_ISA_AVX512))
        return rs_error(ctx, RECSYS_E_UNSUPPORTED,
                        "bf16 mode needs AVX-512-BF16 and the avx512 kernels");
    ctx->bf16 = enable != 0;
    return RECSYS_OK;
}

recsys_status recsys_ctx_set_log(recsys_ctx *ctx, recsys_log_fn fn, void *user_data)
{
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    ctx->log_fn = fn;
    ctx->log_user = user_data;
    log_kernels(ctx, "librecsys " RECSYS_VERSION_STRING);
    return RECSYS_OK;
}

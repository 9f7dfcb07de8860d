/* Approximate Entropy (Pincus) of item sequences, as docs/MODELS.md §5 defines it:
 *   Phi^L = (1/M_L) Σ_i ln( #{j : max_k |x_i[k]-x_j[k]| <= r} / M_L ),  M_L = N-L+1
 *   ApEn  = | Phi^{m+1} - Phi^m |   (self-matches counted)
 *
 * Two exact evaluators of the counts:
 *  - exact matching (item ids with r < 1): windows are equal or not, so the
 *    count of a window is the number of occurrences of its L-gram. L-grams
 *    get dense class ids by refinement, class_{L+1}[i] = (class_L[i],
 *    u[i+L]) looked up in a hash table keyed by that pair, so matching is
 *    exact (no hash collisions can merge windows) and costs O(N·(m+1)).
 *  - tolerance matching (r >= 1 on ids, numeric sequences): windows sorted
 *    by their first element; each window only visits the windows whose first
 *    element is within r, and one visit counts both lengths m and m+1.
 * Both sum ln(count/M) in window order, so the result is bitwise the one of
 * the plain O(N²) definition. */
#include "core/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct recsys_apen {
    recsys_ctx *ctx;
    int m;
    double r;
    int64_t window;
    struct apen_scratch *scratch; /* reused by the single-sequence calls */
};

/* Work buffers for sequences of up to cap elements. */
typedef struct apen_scratch {
    size_t cap;
    size_t table_cap;   /* power of two >= 2*cap */
    int32_t *cls;       /* class of the window starting at i */
    int32_t *count;     /* occurrences per class / matches per window (length m) */
    int32_t *count1;    /* matches per window of length m+1 (tolerance path) */
    uint64_t *keys;
    int32_t *vals;      /* class id, -1 = empty slot */
    double *x;          /* the sequence as doubles (tolerance path) */
    int32_t *order;     /* windows sorted by first element */
    int32_t *pos;       /* rank of window i in order */
    struct sort_pair *pairs;
} apen_scratch;

typedef struct sort_pair {
    double v;
    int32_t i;
} sort_pair;

#define APEN_FLOOR 1e-10 /* ln(0) guard of the reference; unreachable when r >= 0 */

static void scratch_free(apen_scratch *s)
{
    if (!s) return;
    rs_free(s->cls);
    rs_free(s->count);
    rs_free(s->count1);
    rs_free(s->keys);
    rs_free(s->vals);
    rs_free(s->x);
    rs_free(s->order);
    rs_free(s->pos);
    rs_free(s->pairs);
    free(s);
}

static apen_scratch *scratch_new(size_t cap)
{
    if (cap < 1) cap = 1;
    if (cap > (size_t)INT32_MAX / 4) return NULL;
    apen_scratch *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cap = cap;
    s->table_cap = 16;
    while (s->table_cap < 2 * cap) s->table_cap <<= 1;
    s->cls = rs_malloc(cap * sizeof *s->cls);
    s->count = rs_malloc(cap * sizeof *s->count);
    s->count1 = rs_malloc(cap * sizeof *s->count1);
    s->keys = rs_malloc(s->table_cap * sizeof *s->keys);
    s->vals = rs_malloc(s->table_cap * sizeof *s->vals);
    s->x = rs_malloc(cap * sizeof *s->x);
    s->order = rs_malloc(cap * sizeof *s->order);
    s->pos = rs_malloc(cap * sizeof *s->pos);
    s->pairs = rs_malloc(cap * sizeof *s->pairs);
    if (!s->cls || !s->count || !s->count1 || !s->keys || !s->vals || !s->x || !s->order ||
        !s->pos || !s->pairs) {
        scratch_free(s);
        return NULL;
    }
    return s;
}

/* (1/M) Σ_i ln(c_i / M), summed in window order; c_i = 0 takes the floor. */
static double phi_from_counts(const int32_t *c, size_t M)
{
    double sum = 0.0, dm = (double)M;
    for (size_t i = 0; i < M; i++) {
        double p = (double)c[i] / dm;
        sum += log(p > 0.0 ? p : APEN_FLOOR);
    }
    return sum / dm;
}

static inline size_t slot_of(uint64_t key, size_t mask)
{
    return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & mask;
}

/* One refinement pass: windows of length L from those of length L-1.
 * cls[i] (class of u[i..i+L-2], 0 for L = 1) becomes the class of
 * u[i..i+L-1] for i < M; count[c] receives the occurrences of class c. */
static void refine(apen_scratch *s, const int32_t *u, size_t M, size_t L)
{
    size_t tcap = 16;
    while (tcap < 2 * M) tcap <<= 1;
    size_t mask = tcap - 1;
    memset(s->vals, 0xff, tcap * sizeof *s->vals);
    int32_t next = 0;
    for (size_t i = 0; i < M; i++) {
        uint32_t prev = L == 1 ? 0u : (uint32_t)s->cls[i];
        uint64_t key = ((uint64_t)prev << 32) | (uint32_t)u[i + L - 1];
        size_t h = slot_of(key, mask);
        while (s->vals[h] >= 0 && s->keys[h] != key) h = (h + 1) & mask;
        if (s->vals[h] < 0) {
            s->keys[h] = key;
            s->vals[h] = next;
            s->count[next] = 0;
            next++;
        }
        int32_t c = s->vals[h];
        s->count[c]++;
        s->cls[i] = c;
    }
}

/* Φ over the windows of length L: count per window = occurrences of its class. */
static double phi_exact(apen_scratch *s, size_t M)
{
    double sum = 0.0, dm = (double)M;
    for (size_t i = 0; i < M; i++) {
        double p = (double)s->count[s->cls[i]] / dm;
        sum += log(p > 0.0 ? p : APEN_FLOOR);
    }
    return sum / dm;
}

static double apen_exact(apen_scratch *s, const int32_t *u, size_t n, int m)
{
    double phi_m = 0.0, phi_m1 = 0.0;
    for (size_t L = 1; L <= (size_t)m + 1; L++) {
        size_t M = n - L + 1;
        refine(s, u, M, L);
        if (L == (size_t)m) phi_m = phi_exact(s, M);
        if (L == (size_t)m + 1) phi_m1 = phi_exact(s, M);
    }
    return fabs(phi_m1 - phi_m);
}

static int cmp_pair(const void *a, const void *b)
{
    const sort_pair *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Window j (first coordinate already within r of window i's): count it for
 * length m when the other coordinates match, and for m+1 when the next one
 * does too and both longer windows exist. */
static inline void visit(const double *x, size_t i, size_t j, int m, double r, size_t M1,
                         int32_t *cm, int32_t *cm1)
{
    for (int k = 1; k < m; k++)
        if (!(fabs(x[j + k] - x[i + k]) <= r)) return;
    (*cm)++;
    if (i < M1 && j < M1 && fabs(x[j + m] - x[i + m]) <= r) (*cm1)++;
}

/* Tolerance matching on s->x[0..n): r >= 0. */
static double apen_tolerance(apen_scratch *s, size_t n, int m, double r)
{
    const double *x = s->x;
    size_t M = n - (size_t)m + 1, M1 = n - (size_t)m;
    for (size_t i = 0; i < M; i++) {
        s->pairs[i].v = x[i];
        s->pairs[i].i = (int32_t)i;
    }
    qsort(s->pairs, M, sizeof *s->pairs, cmp_pair);
    for (size_t p = 0; p < M; p++) {
        s->order[p] = s->pairs[p].i;
        s->pos[s->pairs[p].i] = (int32_t)p;
    }
    for (size_t i = 0; i < M; i++) {
        int32_t cm = 0, cm1 = 0;
        double xi = x[i];
        size_t p0 = (size_t)s->pos[i];
        /* fl(b - a) is monotone in b, so each scan stops exactly where the
         * first coordinates stop matching; equal values lie on both sides. */
        for (size_t p = p0; p < M; p++) {
            size_t j = (size_t)s->order[p];
            if (!(fabs(x[j] - xi) <= r)) break;
            visit(x, i, j, m, r, M1, &cm, &cm1);
        }
        for (size_t p = p0; p-- > 0;) {
            size_t j = (size_t)s->order[p];
            if (!(fabs(x[j] - xi) <= r)) break;
            visit(x, i, j, m, r, M1, &cm, &cm1);
        }
        s->count[i] = cm;
        s->count1[i] = cm1;
    }
    double phi_m = phi_from_counts(s->count, M);
    double phi_m1 = phi_from_counts(s->count1, M1);
    return fabs(phi_m1 - phi_m);
}

/* The ApEn of one id sequence; n >= m+2 and s->cap >= n. With r >= 1 ids
 * compare as numbers: value[id] when value is not NULL, else the id. */
static double apen_ids(apen_scratch *s, const int32_t *u, size_t n, int m, double r,
                       const double *value)
{
    if (r < 1.0) return apen_exact(s, u, n, m);
    for (size_t i = 0; i < n; i++) s->x[i] = value ? value[u[i]] : (double)u[i];
    return apen_tolerance(s, n, m, r);
}

static int too_short(size_t n, int m) { return n < (size_t)m + 2; }

recsys_status recsys_apen_new(recsys_ctx *ctx, const recsys_opts *opts, recsys_apen **out)
{
    rs_enter(ctx);
    if (!out) return rs_error(ctx, RECSYS_E_INVALID, "recsys_apen_new: out is NULL");
    *out = NULL;
    int64_t m = rs_opt_int(opts, RS_OPT_APEN_M);
    double r = rs_opt_float(opts, RS_OPT_APEN_R);
    int64_t w = rs_opt_int(opts, RS_OPT_APEN_WINDOW);
    if (m < 1 || m > 1024)
        return rs_error(ctx, RECSYS_E_INVALID, "apen.m must be in [1, 1024], got %lld",
                        (long long)m);
    if (!isfinite(r)) return rs_error(ctx, RECSYS_E_INVALID, "apen.r must be finite");
    if (w < 0)
        return rs_error(ctx, RECSYS_E_INVALID, "apen.window must be >= 0, got %lld",
                        (long long)w);
    recsys_apen *a = calloc(1, sizeof *a);
    if (!a) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    a->ctx = ctx;
    a->m = (int)m;
    a->r = r;
    a->window = w;
    *out = a;
    return RECSYS_OK;
}

void recsys_apen_free(recsys_apen *a)
{
    if (!a) return;
    scratch_free(a->scratch);
    free(a);
}

static recsys_status ensure_scratch(recsys_apen *a, size_t n)
{
    if (a->scratch && a->scratch->cap >= n) return RECSYS_OK;
    scratch_free(a->scratch);
    a->scratch = scratch_new(n);
    if (!a->scratch) return rs_error(a->ctx, RECSYS_E_NOMEM, "apen: out of memory for %zu items", n);
    return RECSYS_OK;
}

recsys_status recsys_apen_sequence(recsys_apen *a, const int32_t *seq, size_t n, double *apen)
{
    rs_enter(a ? a->ctx : NULL);
    if (!a) return RS_BAD_ARGS();
    if (!seq || !apen) return rs_error(a->ctx, RECSYS_E_INVALID, "recsys_apen_sequence: NULL argument");
    if (too_short(n, a->m))
        return rs_error(a->ctx, RECSYS_E_INVALID,
                        "apen: sequence of %zu items is too short for m=%d (needs >= %d)", n,
                        a->m, a->m + 2);
    if (n > (size_t)INT32_MAX / 4)
        return rs_error(a->ctx, RECSYS_E_INVALID, "apen: sequence too long (%zu)", n);
    recsys_status st = ensure_scratch(a, n);
    if (st) return st;
    *apen = apen_ids(a->scratch, seq, n, a->m, a->r, NULL);
    return RECSYS_OK;
}

recsys_status recsys_apen_numeric(recsys_apen *a, const double *seq, size_t n, double *apen)
{
    rs_enter(a ? a->ctx : NULL);
    if (!a) return RS_BAD_ARGS();
    if (!seq || !apen) return rs_error(a->ctx, RECSYS_E_INVALID, "recsys_apen_numeric: NULL argument");
    if (too_short(n, a->m))
        return rs_error(a->ctx, RECSYS_E_INVALID,
                        "apen: sequence of %zu values is too short for m=%d (needs >= %d)", n,
                        a->m, a->m + 2);
    if (a->r < 0)
        return rs_error(a->ctx, RECSYS_E_INVALID,
                        "apen: numeric sequences need a tolerance apen.r >= 0, got %g", a->r);
    if (n > (size_t)INT32_MAX / 4)
        return rs_error(a->ctx, RECSYS_E_INVALID, "apen: sequence too long (%zu)", n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(seq[i]))
            return rs_error(a->ctx, RECSYS_E_NUMERIC, "apen: value %zu is not finite", i);
    recsys_status st = ensure_scratch(a, n);
    if (st) return st;
    memcpy(a->scratch->x, seq, n * sizeof *seq);
    *apen = apen_tolerance(a->scratch, n, a->m, a->r);
    return RECSYS_OK;
}

/* ------------------------------------------------------------ dataset */

#define USERS_PER_TASK 32

typedef struct dataset_job {
    const recsys_dataset *ds;
    int m;
    double r;
    int64_t window;
    const double *value;    /* numeric value of each dense item id, or NULL */
    apen_scratch **scratch; /* one per pool thread */
    double *values;         /* n_users */
} dataset_job;

static void dataset_task(void *arg, int task, int thread)
{
    dataset_job *job = arg;
    const recsys_dataset *ds = job->ds;
    int64_t u0 = (int64_t)task * USERS_PER_TASK;
    int64_t u1 = u0 + USERS_PER_TASK;
    if (u1 > ds->n_users) u1 = ds->n_users;
    for (int64_t u = u0; u < u1; u++) {
        const int32_t *seq = ds->items + ds->offsets[u];
        size_t n = (size_t)(ds->offsets[u + 1] - ds->offsets[u]);
        if (job->window > 0 && n > (size_t)job->window) {
            seq += n - (size_t)job->window;
            n = (size_t)job->window;
        }
        job->values[u] = too_short(n, job->m)
                             ? NAN
                             : apen_ids(job->scratch[thread], seq, n, job->m, job->r,
                                        job->value);
    }
}

/* With r >= 1 the reference compares the ids of its data file, so the
 * dense ids are mapped back to their external ids when every one of them is
 * a number; otherwise (*value = NULL) the dense ids are compared. */
static recsys_status external_values(recsys_ctx *ctx, const recsys_dataset *ds,
                                     const double **value)
{
    *value = NULL;
    if (!ds->item_names || ds->n_items < 1) return RECSYS_OK;
    double *v = malloc(((size_t)ds->n_items + 1) * sizeof *v);
    if (!v) return rs_error(ctx, RECSYS_E_NOMEM, "apen: out of memory");
    v[0] = 0.0;
    for (int32_t i = 1; i <= ds->n_items; i++) {
        const char *name = ds->item_names[i];
        char *end = NULL;
        v[i] = name ? strtod(name, &end) : NAN;
        if (!name || end == name || *end || !isfinite(v[i])) {
            free(v);
            return RECSYS_OK;
        }
    }
    *value = v;
    return RECSYS_OK;
}

recsys_status recsys_apen_dataset(recsys_apen *a, const recsys_dataset *ds, double *apen,
                                  double *per_user, size_t n_users, int64_t *users_used)
{
    rs_enter(a ? a->ctx : NULL);
    if (!a) return RS_BAD_ARGS();
    recsys_ctx *ctx = a->ctx;
    if (!ds || !apen) return rs_error(ctx, RECSYS_E_INVALID, "recsys_apen_dataset: NULL argument");
    if (per_user && n_users < (size_t)ds->n_users)
        return rs_error(ctx, RECSYS_E_INVALID,
                        "recsys_apen_dataset: per_user holds %zu values, the dataset has %lld users",
                        n_users, (long long)ds->n_users);
    if (ds->n_users < 0 || (ds->n_users > 0 && (!ds->offsets || !ds->items)))
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_apen_dataset: malformed dataset");

    /* Largest window any user needs sizes the per-thread scratch. */
    size_t max_len = 1;
    for (int64_t u = 0; u < ds->n_users; u++) {
        int64_t n = ds->offsets[u + 1] - ds->offsets[u];
        if (a->window > 0 && n > a->window) n = a->window;
        if (n > (int64_t)max_len) max_len = (size_t)n;
    }
    if (max_len > (size_t)INT32_MAX / 4)
        return rs_error(ctx, RECSYS_E_INVALID, "apen: a user has too many items (%zu)", max_len);

    int n_threads = ctx && ctx->pool ? rs_pool_threads(ctx->pool) : 1;
    int64_t n_tasks64 = (ds->n_users + USERS_PER_TASK - 1) / USERS_PER_TASK;
    if (n_tasks64 > INT32_MAX)
        return rs_error(ctx, RECSYS_E_INVALID, "apen: too many users");
    int n_tasks = (int)n_tasks64;

    recsys_status st = RECSYS_OK;
    dataset_job job = {ds, a->m, a->r, a->window, NULL, NULL, NULL};
    job.scratch = calloc((size_t)n_threads, sizeof *job.scratch);
    job.values = per_user ? per_user : malloc(((size_t)ds->n_users + 1) * sizeof *job.values);
    if (!job.scratch || !job.values) {
        st = rs_error(ctx, RECSYS_E_NOMEM, "apen: out of memory");
        goto done;
    }
    if (a->r >= 1.0 && (st = external_values(ctx, ds, &job.value))) goto done;
    for (int t = 0; t < n_threads; t++) {
        job.scratch[t] = scratch_new(max_len);
        if (!job.scratch[t]) {
            st = rs_error(ctx, RECSYS_E_NOMEM, "apen: out of memory for %zu items", max_len);
            goto done;
        }
    }
    if (n_tasks > 0) {
        if (n_threads > 1) rs_pool_run(ctx->pool, n_tasks, dataset_task, &job);
        else
            for (int t = 0; t < n_tasks; t++) dataset_task(&job, t, 0);
    }
    /* Sum in user order: the same result whatever the thread count. */
    double sum = 0.0;
    int64_t used = 0;
    for (int64_t u = 0; u < ds->n_users; u++) {
        if (isnan(job.values[u])) continue;
        sum += job.values[u];
        used++;
    }
    *apen = used > 0 ? sum / (double)used : NAN;
    if (users_used) *users_used = used;
    if (used == 0)
        st = rs_error(ctx, RECSYS_E_INVALID,
                      "apen: no user has the %d items that m=%d needs", a->m + 2, a->m);
done:
    if (job.scratch)
        for (int t = 0; t < n_threads; t++) scratch_free(job.scratch[t]);
    free(job.scratch);
    free((double *)job.value);
    if (!per_user) free(job.values);
    return st;
}

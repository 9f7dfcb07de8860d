/* The embedded demo data: users walking a sparse item-transition graph.
 *
 * Items have Zipf-like popularity and belong to clusters ("genres"). Each
 * item has 3-5 successors, mostly from its own cluster, drawn with the
 * popularity skew, and followed with decreasing probability (1, 1/2, 1/3..).
 * A user has a favourite cluster, starts there, follows successors, and with
 * probability data.synthetic_noise jumps instead to a popular item (half the
 * time anywhere, half the time in the favourite cluster). So the next item
 * is well predicted by the last one (a sequential model can learn it) but
 * not by popularity alone. Successor steps come minutes apart, jumps days
 * apart, so the time gaps carry signal too (HSTU's time bias). */
#include "data/dataset_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYN_CLUSTER_SIZE 25      /* items per cluster (about) */
#define SYN_IN_CLUSTER 0.8       /* share of successors from the item's own cluster */
#define SYN_STEP_GAP 600.0       /* mean seconds between successor steps */
#define SYN_JUMP_GAP 172800.0    /* mean seconds before a jump (a new session) */
#define SYN_T0 1500000000LL      /* first timestamps around mid-2017 */
#define SYN_ZIPF 0.6             /* popularity ~ rank^-0.6: skewed, yet popularity alone ranks poorly */

typedef struct synth {
    int64_t n_items, n_clusters;
    double *pop_cdf;       /* n_items: cumulative Zipf weights */
    int64_t *members;      /* items grouped by cluster */
    int64_t *cl_start;     /* n_clusters+1 offsets into members */
    double *cl_cdf;        /* per member: cumulative weight within its cluster */
    int64_t *succ;         /* n_items x 5 successors */
    int *n_succ;
} synth;

static void synth_free(synth *s)
{
    free(s->pop_cdf);
    free(s->members);
    free(s->cl_start);
    free(s->cl_cdf);
    free(s->succ);
    free(s->n_succ);
}

/* Index of the first cdf entry > u * total (binary search). */
static int64_t sample_cdf(const double *cdf, int64_t n, rs_rng *r)
{
    double x = rs_rng_uniform(r) * cdf[n - 1];
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > x) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static int64_t sample_cluster(const synth *s, int64_t c, rs_rng *r)
{
    int64_t a = s->cl_start[c], n = s->cl_start[c + 1] - a;
    return s->members[a + sample_cdf(s->cl_cdf + a, n, r)];
}

static int64_t sample_popular(const synth *s, rs_rng *r)
{
    return sample_cdf(s->pop_cdf, s->n_items, r);
}

/* Item i has popularity rank i; cluster i % K, so every cluster mixes
 * popular and rare items. */
static int synth_graph(synth *s, int64_t n_items, rs_rng *r)
{
    int64_t K = n_items / SYN_CLUSTER_SIZE;
    if (K < 1) K = 1;
    s->n_items = n_items;
    s->n_clusters = K;
    s->pop_cdf = malloc((size_t)n_items * sizeof *s->pop_cdf);
    s->members = malloc((size_t)n_items * sizeof *s->members);
    s->cl_start = calloc((size_t)K + 1, sizeof *s->cl_start);
    s->cl_cdf = malloc((size_t)n_items * sizeof *s->cl_cdf);
    s->succ = malloc((size_t)n_items * 5 * sizeof *s->succ);
    s->n_succ = malloc((size_t)n_items * sizeof *s->n_succ);
    if (!s->pop_cdf || !s->members || !s->cl_start || !s->cl_cdf || !s->succ || !s->n_succ)
        return -1;
    double acc = 0;
    for (int64_t i = 0; i < n_items; i++) s->pop_cdf[i] = acc += pow((double)(i + 1), -SYN_ZIPF);
    for (int64_t c = 0; c < K; c++) s->cl_start[c + 1] = s->cl_start[c] + (n_items - c + K - 1) / K;
    for (int64_t c = 0; c < K; c++) {
        acc = 0;
        for (int64_t j = s->cl_start[c], i = c; j < s->cl_start[c + 1]; j++, i += K) {
            s->members[j] = i;
            s->cl_cdf[j] = acc += pow((double)(i + 1), -SYN_ZIPF);
        }
    }
    for (int64_t i = 0; i < n_items; i++) {
        int want = 3 + (int)rs_rng_below(r, 3);
        if (want > n_items - 1) want = (int)(n_items - 1);
        int64_t *out = s->succ + i * 5;
        int k = 0;
        for (int tries = 0; k < want && tries < 200; tries++) {
            int64_t j = rs_rng_uniform(r) < SYN_IN_CLUSTER ? sample_cluster(s, i % K, r)
                                                            : sample_popular(s, r);
            int dup = j == i;
            for (int q = 0; q < k && !dup; q++) dup = out[q] == j;
            if (!dup) out[k++] = j;
        }
        for (int64_t j = (i + 1) % n_items; k < want; j = (j + 1) % n_items) {
            int dup = j == i;
            for (int q = 0; q < k && !dup; q++) dup = out[q] == j;
            if (!dup) out[k++] = j;
        }
        s->n_succ[i] = k;
    }
    return 0;
}

/* Successor q of item i is followed with weight 1/(q+1). */
static int64_t next_successor(const synth *s, int64_t i, rs_rng *r)
{
    int n = s->n_succ[i];
    double total = 0, x;
    for (int q = 0; q < n; q++) total += 1.0 / (q + 1);
    x = rs_rng_uniform(r) * total;
    for (int q = 0; q < n - 1; q++) {
        x -= 1.0 / (q + 1);
        if (x < 0) return s->succ[i * 5 + q];
    }
    return s->succ[i * 5 + n - 1];
}

static double exp_gap(double mean, rs_rng *r)
{
    return -mean * log(1.0 - rs_rng_uniform(r));
}

static int push_event(rs_raw *raw, int64_t user, int64_t item, int64_t t)
{
    char s[24];
    int len = snprintf(s, sizeof s, "%" PRId64, user + 1);
    int64_t u = rs_strtab_intern(&raw->users, s, (size_t)len);
    len = snprintf(s, sizeof s, "%" PRId64, item + 1);
    int64_t i = rs_strtab_intern(&raw->items, s, (size_t)len);
    if (u < 0 || i < 0) return -1;
    return rs_raw_push(raw, u, i, 1, t);
}

/* One user's walk. */
static int synth_user(const synth *s, int64_t u, int64_t mean_len, double noise, rs_rng *r,
                      rs_raw *raw)
{
    int64_t lo = mean_len / 2, len = lo + (int64_t)rs_rng_below(r, (uint64_t)mean_len + 1);
    if (len < 5) len = 5;
    int64_t fav = (int64_t)rs_rng_below(r, (uint64_t)s->n_clusters);
    int64_t item = sample_cluster(s, fav, r);
    double t = (double)SYN_T0 + rs_rng_uniform(r) * 3.0e7;
    for (int64_t k = 0; k < len; k++) {
        if (push_event(raw, u, item, (int64_t)t)) return -1;
        if (rs_rng_uniform(r) < noise) {
            item = rs_rng_uniform(r) < 0.5 ? sample_popular(s, r) : sample_cluster(s, fav, r);
            t += 1.0 + exp_gap(SYN_JUMP_GAP, r);
        } else {
            item = next_successor(s, item, r);
            t += 1.0 + exp_gap(SYN_STEP_GAP, r);
        }
    }
    return 0;
}

recsys_status recsys_dataset_synthetic(recsys_ctx *ctx, const recsys_opts *opts,
                                       recsys_dataset **out)
{
    rs_enter(ctx);
    if (out) *out = NULL;
    if (!ctx || !out) return rs_error(ctx, RECSYS_E_INVALID, "recsys_dataset_synthetic: NULL argument");
    rs_clear_error(ctx);
    int64_t n_users = rs_opts_int(opts, "data.synthetic_users");
    int64_t n_items = rs_opts_int(opts, "data.synthetic_items");
    int64_t mean_len = rs_opts_int(opts, "data.synthetic_length");
    double noise = rs_opts_float(opts, "data.synthetic_noise");
    if (n_users < 1 || n_items < 2 || n_items > RS_MAX_ITEMS || mean_len < 1 || !(noise >= 0) ||
        noise > 1)
        return rs_error(ctx, RECSYS_E_INVALID, "synthetic data: bad size or noise option");
    rs_rng r;
    rs_rng_seed(&r, ctx->seed ^ 0x73796e7468657469ULL); /* "synthetic" stream */
    synth s;
    memset(&s, 0, sizeof s);
    rs_raw raw;
    rs_raw_init(&raw);
    int bad = synth_graph(&s, n_items, &r);
    for (int64_t u = 0; !bad && u < n_users; u++) bad = synth_user(&s, u, mean_len, noise, &r, &raw);
    synth_free(&s);
    if (bad) {
        rs_raw_free(&raw);
        return rs_error(ctx, RECSYS_E_NOMEM, "synthetic data: out of memory");
    }
    return rs_dataset_build(ctx, &raw, opts, out);
}

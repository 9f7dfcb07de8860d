/* The cost of per-user LoRA adapters at the ML-1M sizes (3,706 items,
 * histories of 200, d = 50, 2 blocks, one head; adapters rank 8 on q and v
 * by default), random weights and random adapter parameters, one thread:
 *  (a) top-10 for one user with and without a USER adapter, alternating
 *      calls in the same run (medians of `reps` calls each);
 *  (b) a batch of 256 users, every user its own adapter (the mixed-adapter
 *      forward), against the same batch on the base model (medians of 9);
 *  (c) training one user's adapter (adapter.user_steps steps of one user)
 *      with the adapted window at 25, 50, 100 and 200 events.
 * Prints one JSON line per measurement.
 * Usage: bench_adapters [sasrec|hstu] [reps] [targets] */
#include <librecsys/recsys.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define CHECK(x) do { recsys_status st_ = (x); if (st_) { \
    fprintf(stderr, "%s: %s (%s)\n", #x, recsys_ctx_errmsg(ctx), recsys_status_str(st_)); \
    return 1; } } while (0)

/* An adapter with small random parameters (B non-zero: the path does work). */
static recsys_status random_adapter(recsys_ctx *ctx, recsys_model *m, const recsys_opts *o,
                                    unsigned seed, recsys_adapter **out)
{
    recsys_status st = recsys_adapter_new(ctx, m, o, RECSYS_ADAPTER_USER, out);
    int64_t n = 0;
    if (!st) st = recsys_adapter_info(*out, NULL, NULL, &n);
    float *p = st ? NULL : malloc(sizeof(float) * (size_t)n);
    if (!st && !p) st = RECSYS_E_NOMEM;
    for (int64_t i = 0; !st && i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = 0.02f * ((float)(seed >> 8) / 16777216.0f - 0.5f);
    }
    if (!st) st = recsys_adapter_set_params(*out, p, (size_t)n);
    free(p);
    return st;
}

int main(int argc, char **argv)
{
    const char *type = argc > 1 ? argv[1] : "sasrec";
    int reps = argc > 2 ? atoi(argv[2]) : 300;
    const char *targets = argc > 3 ? argv[3] : "q,v";
    recsys_ctx *ctx;
    recsys_opts *o;
    recsys_dataset *ds;
    recsys_model *m;
    recsys_session *s;
    if (reps < 1 || recsys_ctx_new_with_threads(1, &ctx)) return 1;
    CHECK(recsys_opts_new(ctx, &o));
    CHECK(recsys_opts_set(o, "data.synthetic_users", "300"));
    CHECK(recsys_opts_set(o, "data.synthetic_items", "3706"));
    CHECK(recsys_opts_set(o, "data.synthetic_length", "205"));
    CHECK(recsys_opts_set(o, "model.type", type));
    CHECK(recsys_opts_set(o, "model.max_len", "200"));
    CHECK(recsys_opts_set(o, "model.dim", "50"));
    CHECK(recsys_opts_set(o, "model.blocks", "2"));
    CHECK(recsys_opts_set(o, "model.heads", "1"));
    CHECK(recsys_opts_set(o, "adapter.rank", "8"));
    CHECK(recsys_opts_set(o, "adapter.targets", targets));
    CHECK(recsys_dataset_synthetic(ctx, o, &ds));
    CHECK(recsys_model_new(ctx, o, ds, &m));
    CHECK(recsys_session_new(ctx, m, &s));
    enum { NU = 256, K = 10 };
    static recsys_request reqs[NU], based[NU];
    static const recsys_request *ptrs[NU], *bptrs[NU];
    static recsys_adapter *ad[NU];
    for (int u = 0; u < NU; u++) {
        const int32_t *items;
        const int64_t *times;
        size_t n;
        CHECK(recsys_dataset_user_items(ds, u, &items, &times, &n));
        CHECK(random_adapter(ctx, m, o, 1000u + (unsigned)u, &ad[u]));
        recsys_request q = RECSYS_REQUEST_INIT;
        q.history = items;
        q.times = times;
        q.n_history = n > 200 ? 200 : n;
        q.k = K;
        q.exclude_history = 1;
        based[u] = q;
        q.adapter = ad[u];
        reqs[u] = q;
        ptrs[u] = &reqs[u];
        bptrs[u] = &based[u];
    }
    int32_t items[NU * K];
    float scores[NU * K];

    /* (a) one user, alternating base / adapter calls */
    size_t rb = sizeof(double) * (size_t)reps;
    double *tb = malloc(rb), *ta = malloc(rb), *ub = malloc(rb), *ua = malloc(rb);
    if (!tb || !ta || !ub || !ua) return 1;
    for (int w = 0; w < 20; w++) { /* warm-up */
        CHECK(recsys_session_topk_request(s, &based[w % NU], items, scores, NULL));
        CHECK(recsys_session_topk_request(s, &reqs[w % NU], items, scores, NULL));
    }
    for (int i = 0; i < reps; i++) {
        int u = i % NU;
        double t0 = bench_now(), c0 = bench_cpu();
        CHECK(recsys_session_topk_request(s, &based[u], items, scores, NULL));
        double t1 = bench_now(), c1 = bench_cpu();
        CHECK(recsys_session_topk_request(s, &reqs[u], items, scores, NULL));
        double t2 = bench_now(), c2 = bench_cpu();
        tb[i] = t1 - t0;
        ta[i] = t2 - t1;
        ub[i] = c1 - c0;
        ua[i] = c2 - c1;
    }
    double mb = median(tb, reps), ma = median(ta, reps);
    double cb1 = median(ub, reps), ca1 = median(ua, reps);
    printf("{\"bench\": \"top10_one_user\", \"model\": \"%s\", \"targets\": \"%s\", \"rank\": 8, "
           "\"calls\": %d, \"base_us\": %.1f, \"adapter_us\": %.1f, \"ratio\": %.3f, "
           "\"base_cpu_us\": %.1f, \"adapter_cpu_us\": %.1f, \"cpu_ratio\": %.3f}\n",
           type, targets, reps, 1e6 * mb, 1e6 * ma, ma / mb, 1e6 * cb1, 1e6 * ca1, ca1 / cb1);
    fflush(stdout);

    /* (b) a batch of 256 users, each with its own adapter, vs the base */
    enum { BR = 9 };
    double bb[BR], ba[BR], cb[BR], ca[BR];
    CHECK(recsys_session_topk_batch(s, bptrs, NU, K, items, scores, NULL));
    CHECK(recsys_session_topk_batch(s, ptrs, NU, K, items, scores, NULL));
    for (int r = 0; r < BR; r++) {
        double t0 = bench_now(), c0 = bench_cpu();
        CHECK(recsys_session_topk_batch(s, bptrs, NU, K, items, scores, NULL));
        double t1 = bench_now(), c1 = bench_cpu();
        CHECK(recsys_session_topk_batch(s, ptrs, NU, K, items, scores, NULL));
        double t2 = bench_now(), c2 = bench_cpu();
        bb[r] = t1 - t0;
        ba[r] = t2 - t1;
        cb[r] = c1 - c0;
        ca[r] = c2 - c1;
    }
    mb = median(bb, BR);
    ma = median(ba, BR);
    double mcb = median(cb, BR), mca = median(ca, BR);
    printf("{\"bench\": \"batch256_mixed_adapters\", \"model\": \"%s\", \"runs\": %d, "
           "\"base_ms\": %.2f, \"adapters_ms\": %.2f, \"ratio\": %.3f, \"base_cpu_ms\": %.2f, "
           "\"adapters_cpu_ms\": %.2f, \"cpu_ratio\": %.3f}\n",
           type, BR, 1e3 * mb, 1e3 * ma, ma / mb, 1e3 * mcb, 1e3 * mca, mca / mcb);
    fflush(stdout);

    /* (c) one user's adapter training by adapted window length */
    int64_t steps = 0;
    CHECK(recsys_opts_get_int(o, "adapter.user_steps", &steps));
    const int windows[4] = {25, 50, 100, 200};
    for (int wi = 0; wi < 4; wi++) {
        char v[16];
        snprintf(v, sizeof v, "%d", windows[wi]);
        CHECK(recsys_opts_set(o, "adapter.window", v));
        enum { TR = 7 };
        double tt[TR], tc[TR];
        for (int r = 0; r < TR; r++) {
            recsys_adapter *a = NULL;
            CHECK(recsys_adapter_new(ctx, m, o, RECSYS_ADAPTER_USER, &a));
            double loss, t0 = bench_now(), c0 = bench_cpu();
            CHECK(recsys_adapter_train(a, ds, r, o, &loss));
            tt[r] = bench_now() - t0;
            tc[r] = bench_cpu() - c0;
            recsys_adapter_free(a);
        }
        double mt = median(tt, TR), mc = median(tc, TR);
        printf("{\"bench\": \"train_one_user\", \"model\": \"%s\", \"window\": %d, \"steps\": %lld, "
               "\"ms_per_user\": %.2f, \"ms_per_step\": %.3f, \"cpu_ms_per_user\": %.2f, "
               "\"cpu_ms_per_step\": %.3f}\n",
               type, windows[wi], (long long)steps, 1e3 * mt, 1e3 * mt / (double)steps, 1e3 * mc,
               1e3 * mc / (double)steps);
        fflush(stdout);
    }
    for (int u = 0; u < NU; u++) recsys_adapter_free(ad[u]);
    free(tb);
    free(ta);
    free(ub);
    free(ua);
    recsys_session_free(s);
    recsys_model_free(m);
    recsys_dataset_free(ds);
    recsys_opts_free(o);
    recsys_ctx_free(ctx);
    return 0;
}

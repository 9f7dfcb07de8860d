/* recsys_evaluate_distributed: the evaluated users split in contiguous
 * shares over the ranks, per-user ranks gathered in user order and
 * accumulated in that order on every rank. */
#include "eval/eval_dist.h"
#include "eval/metrics.h"
#include "dist/dist.h"

#include <math.h>
#include <stdlib.h>

recsys_status recsys_evaluate_distributed(recsys_ctx *ctx, const recsys_model *model,
                                          const recsys_dataset *ds, const recsys_opts *opts,
                                          const recsys_collective *c, recsys_metrics **out)
{
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    if (!model || !ds || !c || !out)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_evaluate_distributed: NULL argument");
    *out = NULL;
    rs_dist d;
    recsys_status st = rs_dist_init(&d, ctx, c);
    if (st) return st;
    if (model->sharded) { /* no rank holds the whole table: each scores its rows */
        st = rs_evaluate_sharded(ctx, model, ds, opts, &d, out);
        rs_dist_free(&d);
        return st;
    }
    rs_rank_acc acc;
    st = rs_rank_acc_init(ctx, &acc, rs_opt_list(opts, RS_OPT_EVAL_KS));
    int64_t n_eval = 0;
    for (int64_t u = 0; u < ds->n_users; u++) n_eval += rs_user_evaluated(ds, u);
    double *all = st ? NULL : malloc(sizeof(double) * (size_t)(n_eval ? n_eval : 1));
    if (!st && !all) st = rs_error(ctx, RECSYS_E_NOMEM, "out of memory for evaluation");
    int64_t lo = 0, hi = 0;
    rs_dist_share(n_eval, d.size, d.rank, &lo, &hi);
    /* Each rank ranks its share in place in `all`, then allgatherv. */
    if (!st && hi > lo) st = rs_evaluate_ranks(ctx, model, ds, opts, lo, hi - lo, all + lo);
    if (!st && n_eval == 0)
        st = rs_error(ctx, RECSYS_E_INVALID, "nothing to evaluate: no user has a held-out target");
    st = rs_dist_agree(&d, st);
    if (!st) {
        for (int r = 0; r < d.size; r++) {
            int64_t a, b;
            rs_dist_share(n_eval, d.size, r, &a, &b);
            d.counts[r] = (size_t)(b - a) * sizeof(double);
            d.displs[r] = (size_t)a * sizeof(double);
        }
        /* send from a copy: recv and send must not alias */
        double *mine = malloc(sizeof(double) * (size_t)(hi > lo ? hi - lo : 1));
        if (!mine) st = rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
        st = rs_dist_agree(&d, st);
        if (!st) {
            for (int64_t i = lo; i < hi; i++) mine[i - lo] = all[i];
            st = rs_dist_allgatherv(&d, mine, (size_t)(hi - lo) * sizeof(double), all,
                                    d.counts, d.displs);
        }
        free(mine);
    }
    if (!st) {
        int64_t skipped = 0;
        for (int64_t i = 0; i < n_eval; i++) {
            if (isnan(all[i])) skipped++;
            else rs_rank_acc_add(&acc, all[i]);
        }
        if (acc.users == 0)
            st = rs_error(ctx, RECSYS_E_INVALID,
                          "nothing to evaluate: all %lld users with a held-out target "
                          "interacted with every item", (long long)skipped);
        else
            st = rs_metrics_from_acc(ctx, &acc, out);
    }
    free(all);
    rs_dist_free(&d);
    return st;
}

/* Ranking metrics (docs/MODELS.md §1): HR@K = [r < K], NDCG@K = 1/log2(r+2) when
 * r < K, MRR = 1/(r+1), averaged over users; r counts strictly better items
 * plus half of the ties. */
#include "eval/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RS_MAX_METRICS 64

struct recsys_metrics {
    int n;
    char names[RS_MAX_METRICS][24];
    double values[RS_MAX_METRICS];
};

recsys_status rs_rank_acc_init(recsys_ctx *ctx, rs_rank_acc *acc, const char *ks)
{
    memset(acc, 0, sizeof *acc);
    const char *p = ks;
    while (*p) {
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p || k < 1 || k > 1000000 || acc->n_ks == RS_MAX_KS)
            return rs_error(ctx, RECSYS_E_INVALID,
                            "eval.ks: expected up to %d comma-separated positive integers, got '%s'",
                            RS_MAX_KS, ks);
        acc->ks[acc->n_ks++] = (int)k;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p)
            return rs_error(ctx, RECSYS_E_INVALID, "eval.ks: unexpected '%c' in '%s'", *p, ks);
    }
    if (acc->n_ks == 0) return rs_error(ctx, RECSYS_E_INVALID, "eval.ks is empty");
    return RECSYS_OK;
}

void rs_rank_acc_add(rs_rank_acc *acc, double rank)
{
    for (int i = 0; i < acc->n_ks; i++) {
        if (rank < acc->ks[i]) {
            acc->hr[i] += 1.0;
            acc->ndcg[i] += 1.0 / log2(rank + 2.0);
        }
    }
    acc->mrr += 1.0 / (rank + 1.0);
    acc->users++;
}

void rs_rank_acc_merge(rs_rank_acc *into, const rs_rank_acc *from)
{
    for (int i = 0; i < into->n_ks; i++) {
        into->hr[i] += from->hr[i];
        into->ndcg[i] += from->ndcg[i];
    }
    into->mrr += from->mrr;
    into->users += from->users;
}

recsys_status rs_metrics_add(recsys_ctx *ctx, recsys_metrics *m, const char *name, double v)
{
    if (m->n == RS_MAX_METRICS) return rs_error(ctx, RECSYS_E_INTERNAL, "too many metrics");
    snprintf(m->names[m->n], sizeof m->names[0], "%s", name);
    m->values[m->n++] = v;
    return RECSYS_OK;
}

recsys_status rs_metrics_from_acc(recsys_ctx *ctx, const rs_rank_acc *acc, recsys_metrics **out)
{
    recsys_metrics *m = calloc(1, sizeof *m);
    if (!m) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    double n = acc->users > 0 ? (double)acc->users : 1.0;
    char name[24];
    for (int i = 0; i < acc->n_ks; i++) {
        snprintf(name, sizeof name, "HR@%d", acc->ks[i]);
        rs_metrics_add(ctx, m, name, acc->hr[i] / n);
    }
    for (int i = 0; i < acc->n_ks; i++) {
        snprintf(name, sizeof name, "NDCG@%d", acc->ks[i]);
        rs_metrics_add(ctx, m, name, acc->ndcg[i] / n);
    }
    rs_metrics_add(ctx, m, "MRR", acc->mrr / n);
    rs_metrics_add(ctx, m, "users", (double)acc->users);
    *out = m;
    return RECSYS_OK;
}

void recsys_metrics_free(recsys_metrics *m) { free(m); }
int recsys_metrics_count(const recsys_metrics *m) { return m ? m->n : 0; }

const char *recsys_metrics_name(const recsys_metrics *m, int i)
{
    return m && i >= 0 && i < m->n ? m->names[i] : NULL;
}

double recsys_metrics_value(const recsys_metrics *m, int i)
{
    return m && i >= 0 && i < m->n ? m->values[i] : NAN;
}

recsys_status recsys_metrics_get(const recsys_metrics *m, const char *name, double *value)
{
    rs_enter(NULL);
    if (!m || !name || !value) return RS_BAD_ARGS();
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->names[i], name)) { *value = m->values[i]; return RECSYS_OK; }
    return rs_error(NULL, RECSYS_E_NOT_FOUND, "no metric named '%s'", name);
}

/* Named metric values (HR@K, NDCG@K, MRR, users) and the rank -> metric rules. */
#ifndef RS_METRICS_H
#define RS_METRICS_H

#include "core/internal.h"

#define RS_MAX_KS 16

/* Accumulates per-user ranks into HR@K / NDCG@K / MRR sums. */
typedef struct rs_rank_acc {
    int n_ks;
    int ks[RS_MAX_KS];
    double hr[RS_MAX_KS], ndcg[RS_MAX_KS], mrr;
    int64_t users;
} rs_rank_acc;

/* Parse "1,5,10" into acc->ks; RECSYS_E_INVALID with a message on bad text. */
recsys_status rs_rank_acc_init(recsys_ctx *ctx, rs_rank_acc *acc, const char *ks);
/* rank: 0-based, may be fractional (ties count half). */
void rs_rank_acc_add(rs_rank_acc *acc, double rank);
void rs_rank_acc_merge(rs_rank_acc *into, const rs_rank_acc *from);
/* Build the public metrics object (means over users) plus protocol info. */
recsys_status rs_metrics_from_acc(recsys_ctx *ctx, const rs_rank_acc *acc, recsys_metrics **out);
recsys_status rs_metrics_add(recsys_ctx *ctx, recsys_metrics *m, const char *name, double v);

#endif

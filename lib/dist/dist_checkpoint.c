/* Checkpoints of distributed training: one file, written by rank 0, read
 * by rank 0 and broadcast, so the rank count may change between runs. */
#include "dist/dist_train.h"

#include <string.h>

recsys_status rs_dist_sync_state(rs_dist_train *dt, size_t n_params, rs_train_state *s)
{
    rs_dist *d = &dt->d;
    int64_t hdr[7] = {(int64_t)n_params, s->epoch, s->step};
    memcpy(hdr + 3, s->rng, sizeof s->rng);
    int64_t mine = hdr[0];
    recsys_status st = rs_dist_bcast(d, hdr, sizeof hdr, 0);
    if (st) return st;
    if (hdr[0] != mine)
        st = rs_error(d->ctx, RECSYS_E_INVALID,
                      "rank %d has a model of %lld parameters, rank 0 one of %lld", d->rank,
                      (long long)mine, (long long)hdr[0]);
    if ((st = rs_dist_agree(d, st))) return st;
    s->epoch = hdr[1];
    s->step = hdr[2];
    memcpy(s->rng, hdr + 3, sizeof s->rng);
    return RECSYS_OK;
}

recsys_status rs_dist_sync_train(rs_dist_train *dt, recsys_model *model, rs_train_state *s)
{
    rs_dist *d = &dt->d;
    recsys_status st = rs_dist_sync_state(dt, model->n_params, s);
    size_t bytes = sizeof(float) * model->n_params;
    if (!st) st = rs_dist_bcast(d, model->params, bytes, 0);
    if (!st && s->m) st = rs_dist_bcast(d, s->m, bytes, 0); /* NULL: sharded, see train/shard.c */
    if (!st && s->v) st = rs_dist_bcast(d, s->v, bytes, 0);
    return st;
}

recsys_status rs_dist_save_train(rs_dist_train *dt, recsys_ctx *ctx, const recsys_model *model,
                                 const char *path, const rs_train_state *s)
{
    rs_dist_set_ctx(&dt->d, ctx);
    recsys_status st = dt->d.rank == 0 ? rs_checkpoint_save_train(ctx, model, path, s)
                                       : RECSYS_OK;
    return rs_dist_agree(&dt->d, st);
}

recsys_status rs_dist_load_train(rs_dist_train *dt, recsys_ctx *ctx, const char *path,
                                 recsys_model *model, rs_train_state *s)
{
    rs_dist_set_ctx(&dt->d, ctx);
    recsys_status st = dt->d.rank == 0 ? rs_checkpoint_load_train(ctx, path, model, s)
                                       : RECSYS_OK;
    if ((st = rs_dist_agree(&dt->d, st))) return st;
    return rs_dist_sync_train(dt, model, s);
}

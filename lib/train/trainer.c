/* recsys_trainer: epochs of shuffled user batches, negative sampling, the
 * model's forward/backward, a loss, and Adam/AdamW. All buffers are
 * allocated once here; a training step allocates nothing. */
#include "models/batch.h"
#include "checkpoint/checkpoint.h"
#include "train/loss.h"
#include "train/loss_softmax.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum loss_kind { LOSS_BCE, LOSS_SOFTMAX };

struct recsys_trainer {
    recsys_ctx *ctx;
    recsys_model *model;
    const recsys_dataset *ds;
    rs_workspace *ws;
    rs_ssm_workspace *ssm; /* sampled-softmax scratch */
    float *bce_scratch;    /* BCE scratch */
    rs_batch_buf bb;
    float *F, *dF, *grads, *adam_m, *adam_v;
    int64_t *users;       /* users with at least one training pair */
    int64_t n_users;
    uint32_t *seen;       /* per item: stamp of the last user that had it */
    uint32_t stamp;
    rs_rng rng;
    /* settings */
    int batch_size, epochs, shared_negatives, decoupled_wd;
    enum loss_kind loss;
    float lr, beta1, beta2, eps, weight_decay, temperature;
    int64_t adam_step;
    int epoch;
    char checkpoint_path[1024];
    int checkpoint_every;
    recsys_progress_fn progress;
    void *progress_user;
};

void recsys_trainer_free(recsys_trainer *t)
{
    if (!t) return;
    if (t->ws) t->model->ops->ws_free(t->ws);
    rs_ssm_workspace_free(t->ssm);
    rs_free(t->bce_scratch);
    rs_batch_buf_free(&t->bb);
    rs_free(t->F);
    rs_free(t->dF);
    rs_free(t->grads);
    rs_free(t->adam_m);
    rs_free(t->adam_v);
    free(t->users);
    free(t->seen);
    recsys_model_free(t->model);
    free(t);
}

recsys_status recsys_trainer_new(recsys_ctx *ctx, recsys_model *model,
                                 const recsys_dataset *ds, const recsys_opts *opts,
                                 recsys_trainer **out)
{
    if (!ctx) return RECSYS_E_INVALID;
    if (!model || !ds || !out)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_trainer_new: NULL argument");
    *out = NULL;
    if (model->cfg.n_items != ds->n_items)
        return rs_error(ctx, RECSYS_E_INVALID,
                        "model was built for %d items but the dataset has %d",
                        model->cfg.n_items, ds->n_items);
    recsys_trainer *t = calloc(1, sizeof *t);
    if (!t) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    t->ctx = ctx;
    t->model = rs_model_ref(model);
    t->ds = ds;
    t->batch_size = (int)rs_opts_int(opts, "trainer.batch_size");
    t->epochs = (int)rs_opts_int(opts, "trainer.epochs");
    t->lr = (float)rs_opts_float(opts, "trainer.lr");
    t->beta1 = (float)rs_opts_float(opts, "trainer.beta1");
    t->beta2 = (float)rs_opts_float(opts, "trainer.beta2");
    t->eps = (float)rs_opts_float(opts, "trainer.eps");
    t->weight_decay = (float)rs_opts_float(opts, "trainer.weight_decay");
    t->decoupled_wd = !strcmp(rs_opts_str(opts, "trainer.optimizer"), "adamw");
    t->loss = !strcmp(rs_opts_str(opts, "trainer.loss"), "sampled_softmax") ? LOSS_SOFTMAX
                                                                              : LOSS_BCE;
    t->temperature = (float)rs_opts_float(opts, "trainer.temperature");
    t->shared_negatives = (int)rs_opts_int(opts, "trainer.shared_negatives");
    snprintf(t->checkpoint_path, sizeof t->checkpoint_path, "%s",
             rs_opts_str(opts, "trainer.checkpoint"));
    t->checkpoint_every = (int)rs_opts_int(opts, "trainer.checkpoint_every");
    rs_rng_seed(&t->rng, (uint64_t)rs_opts_int(opts, "trainer.seed"));
    int threads = (int)rs_opts_int(opts, "trainer.threads");
    recsys_status st = RECSYS_OK;
    if (threads > 0 && threads != ctx->n_threads) st = recsys_ctx_set_threads(ctx, threads);
    if (!st && rs_opts_int(opts, "trainer.bf16")) st = recsys_ctx_set_bf16(ctx, 1);

    const rs_model_config *cfg = &model->cfg;
    int n_neg = t->loss == LOSS_BCE ? 1 : (int)rs_opts_int(opts, "trainer.negatives");
    size_t rows = (size_t)t->batch_size * cfg->max_len;
    if (!st) st = rs_batch_buf_init(ctx, &t->bb, t->batch_size, cfg->max_len, n_neg,
                                    ds->times != NULL);
    if (!st) {
        t->ws = model->ops->ws_new(cfg, t->batch_size);
        t->F = rs_calloc(rows, (size_t)cfg->dim * sizeof(float));
        t->dF = rs_calloc(rows, (size_t)cfg->dim * sizeof(float));
        t->grads = rs_calloc(model->n_params, sizeof(float));
        t->adam_m = rs_calloc(model->n_params, sizeof(float));
        t->adam_v = rs_calloc(model->n_params, sizeof(float));
        t->users = malloc(sizeof(int64_t) * (size_t)(ds->n_users ? ds->n_users : 1));
        t->seen = calloc((size_t)ds->n_items + 1, sizeof *t->seen);
        if (t->loss == LOSS_SOFTMAX)
            t->ssm = rs_ssm_workspace_new(cfg->n_items, cfg->dim, (int)rows, n_neg);
        else
            t->bce_scratch = rs_malloc(
                sizeof(float) * rs_loss_bce_scratch_floats(t->batch_size, cfg->max_len, n_neg));
        if (!t->ws || !t->F || !t->dF || !t->grads || !t->adam_m || !t->adam_v || !t->users ||
            !t->seen || (t->loss == LOSS_SOFTMAX ? !t->ssm : !t->bce_scratch))
            st = rs_error(ctx, RECSYS_E_NOMEM, "out of memory for training buffers");
    }
    if (!st) {
        for (int64_t u = 0; u < ds->n_users; u++)
            if (rs_user_train_len(ds, u) >= 2) t->users[t->n_users++] = u;
        if (t->n_users == 0)
            st = rs_error(ctx, RECSYS_E_INVALID, "no user has two training items");
    }
    if (st) { recsys_trainer_free(t); return st; }
    *out = t;
    return RECSYS_OK;
}

recsys_status recsys_trainer_set_progress(recsys_trainer *t, recsys_progress_fn fn,
                                          void *user_data)
{
    if (!t) return RECSYS_E_INVALID;
    t->progress = fn;
    t->progress_user = user_data;
    return RECSYS_OK;
}

int recsys_trainer_epoch(const recsys_trainer *t) { return t ? t->epoch : 0; }

/* One uniformly sampled item the user has not interacted with (the stamp of
 * the user's items is current). Gives up on users who rated everything. */
static int32_t sample_unseen(recsys_trainer *t)
{
    int32_t n = t->ds->n_items;
    for (int tries = 0; tries < 1000; tries++) {
        int32_t it = 1 + (int32_t)rs_rng_below(&t->rng, (uint64_t)n);
        if (t->seen[it] != t->stamp) return it;
    }
    return 1 + (int32_t)rs_rng_below(&t->rng, (uint64_t)n);
}

static void mark_user(recsys_trainer *t, int64_t u)
{
    if (++t->stamp == 0) { /* wrapped: reset all stamps */
        memset(t->seen, 0, sizeof *t->seen * ((size_t)t->ds->n_items + 1));
        t->stamp = 1;
    }
    const int32_t *it = t->ds->items + t->ds->offsets[u];
    for (int64_t k = 0; k < rs_user_len(t->ds, u); k++) t->seen[it[k]] = t->stamp;
}

/* Fill the batch rows for users[b0..b0+rows) and their negatives. */
static int64_t fill_batch(recsys_trainer *t, int64_t b0, int rows)
{
    rs_batch_buf *bb = &t->bb;
    int64_t targets = 0;
    int L = bb->L, R = bb->n_neg;
    for (int r = 0; r < rows; r++) {
        int64_t u = t->users[b0 + r];
        targets += rs_batch_fill_train_row(bb, r, t->ds, u);
        size_t o = (size_t)r * L;
        if (t->loss == LOSS_BCE) {
            mark_user(t, u);
            for (int p = 0; p < L; p++)
                bb->neg[o + p] = bb->pos[o + p] ? sample_unseen(t) : 0;
        } else if (!t->shared_negatives) {
            for (int p = 0; p < L; p++)
                for (int k = 0; k < R; k++)
                    bb->neg[(o + p) * R + k] =
                        bb->pos[o + p] ? 1 + (int32_t)rs_rng_below(&t->rng, (uint64_t)t->ds->n_items)
                                       : 0;
        }
    }
    if (t->loss == LOSS_SOFTMAX && t->shared_negatives)
        for (int k = 0; k < R; k++)
            bb->neg[k] = 1 + (int32_t)rs_rng_below(&t->rng, (uint64_t)t->ds->n_items);
    return targets;
}

typedef struct adam_job {
    recsys_trainer *t;
    size_t chunk;
    float lr, bc1, bc2, wd;
} adam_job;

static void adam_task(void *arg, int task, int thread)
{
    (void)thread;
    adam_job *j = arg;
    recsys_trainer *t = j->t;
    size_t i0 = (size_t)task * j->chunk, n = t->model->n_params;
    size_t len = n - i0 < j->chunk ? n - i0 : j->chunk;
    float *p = t->model->params + i0, *g = t->grads + i0;
    if (j->wd > 0 && !t->decoupled_wd) /* classic L2: add to the gradient */
        for (size_t i = 0; i < len; i++) g[i] += j->wd * p[i];
    t->ctx->kern.adam(len, p, g, t->adam_m + i0, t->adam_v + i0, j->lr, t->beta1, t->beta2,
                      t->eps, t->decoupled_wd ? j->wd : 0.0f, j->bc1, j->bc2);
}

static void adam_step(recsys_trainer *t)
{
    t->adam_step++;
    adam_job j = {t, 0, t->lr, 1.0f - powf(t->beta1, (float)t->adam_step),
                  1.0f - powf(t->beta2, (float)t->adam_step), t->weight_decay};
    size_t n = t->model->n_params;
    int tasks = t->ctx->n_threads * 4;
    j.chunk = (n + (size_t)tasks - 1) / (size_t)tasks;
    j.chunk = (j.chunk + 15) & ~(size_t)15;
    tasks = (int)((n + j.chunk - 1) / j.chunk);
    rs_pool_run(t->ctx->pool, tasks, adam_task, &j);
}

static recsys_status train_step(recsys_trainer *t, int rows, double *loss)
{
    recsys_model *m = t->model;
    const rs_model_config *cfg = &m->cfg;
    uint64_t seed = rs_rng_next(&t->rng);
    rs_batch b = rs_batch_view(&t->bb, rows, 1, seed);
    size_t item_off = RS_ITEM_TABLE_OFFSET;
    memset(t->grads, 0, sizeof(float) * m->n_params);
    recsys_status st = m->ops->forward(t->ctx, cfg, m->params, t->ws, &b, t->F);
    if (st) return st;
    if (t->loss == LOSS_BCE)
        st = rs_loss_bce_ws(t->ctx, cfg, m->params + item_off, &b, t->F, t->dF,
                            t->grads + item_off, t->bce_scratch, loss);
    else
        st = rs_loss_sampled_softmax_ws(t->ctx, cfg, m->params + item_off, &b, t->F,
                                        t->temperature, cfg->l2norm, t->shared_negatives,
                                        t->ssm, t->dF, t->grads + item_off, loss);
    if (st) return st;
    if (!isfinite(*loss))
        return rs_error(t->ctx, RECSYS_E_NUMERIC, "training loss became %g at epoch %d",
                        *loss, t->epoch + 1);
    st = m->ops->backward(t->ctx, cfg, m->params, t->ws, &b, t->dF, t->grads);
    if (st) return st;
    adam_step(t);
    return RECSYS_OK;
}

recsys_status recsys_trainer_run_epoch(recsys_trainer *t, double *mean_loss)
{
    if (!t) return RECSYS_E_INVALID;
    recsys_ctx *ctx = t->ctx;
    /* Fisher–Yates shuffle of the users from their natural order, so an
     * epoch's order depends only on the RNG state (and resumes exactly). */
    t->n_users = 0;
    for (int64_t u = 0; u < t->ds->n_users; u++)
        if (rs_user_train_len(t->ds, u) >= 2) t->users[t->n_users++] = u;
    for (int64_t i = t->n_users - 1; i > 0; i--) {
        int64_t j = (int64_t)rs_rng_below(&t->rng, (uint64_t)i + 1);
        int64_t tmp = t->users[i];
        t->users[i] = t->users[j];
        t->users[j] = tmp;
    }
    int64_t steps = (t->n_users + t->batch_size - 1) / t->batch_size;
    double t0 = rs_now(), loss_sum = 0.0;
    int64_t samples = 0;
    for (int64_t s = 0; s < steps; s++) {
        int64_t b0 = s * t->batch_size;
        int rows = (int)(t->n_users - b0 < t->batch_size ? t->n_users - b0 : t->batch_size);
        fill_batch(t, b0, rows);
        double loss = 0.0;
        recsys_status st = train_step(t, rows, &loss);
        if (st) return st;
        loss_sum += loss;
        samples += rows;
        if (t->progress) {
            double el = rs_now() - t0;
            recsys_progress p = {sizeof p, t->epoch + 1, t->epochs, s + 1, steps,
                                 loss_sum / (double)(s + 1), el, el > 0 ? samples / el : 0};
            if (t->progress(t->progress_user, &p))
                return rs_error(ctx, RECSYS_E_ABORTED, "training stopped by the progress callback");
        }
    }
    t->epoch++;
    if (mean_loss) *mean_loss = loss_sum / (double)steps;
    if (t->checkpoint_path[0] && t->epoch % t->checkpoint_every == 0)
        return recsys_trainer_save_checkpoint(t, t->checkpoint_path);
    return RECSYS_OK;
}

recsys_status recsys_trainer_save_checkpoint(recsys_trainer *t, const char *path)
{
    if (!t) return RECSYS_E_INVALID;
    if (!path) return rs_error(t->ctx, RECSYS_E_INVALID, "checkpoint path is NULL");
    rs_train_state s = {t->epoch, t->adam_step, {0}, t->adam_m, t->adam_v};
    memcpy(s.rng, t->rng.s, sizeof s.rng);
    return rs_checkpoint_save_train(t->ctx, t->model, path, &s);
}

recsys_status recsys_trainer_resume(recsys_trainer *t, const char *path)
{
    if (!t) return RECSYS_E_INVALID;
    if (!path) return rs_error(t->ctx, RECSYS_E_INVALID, "checkpoint path is NULL");
    rs_train_state s = {0, 0, {0}, t->adam_m, t->adam_v};
    recsys_status st = rs_checkpoint_load_train(t->ctx, path, t->model, &s);
    if (st) return st;
    t->epoch = (int)s.epoch;
    t->adam_step = s.step;
    memcpy(t->rng.s, s.rng, sizeof s.rng);
    return RECSYS_OK;
}

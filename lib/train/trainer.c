/* recsys_trainer: epochs of shuffled user batches, negative sampling, the
 * model's forward/backward, a loss, and the optimiser (train/optimizer.c).
 * All buffers are allocated once here; a training step allocates nothing.
 *
 * The trainer never changes its ctx for good: trainer.threads and
 * trainer.bf16 are its own settings, put on the ctx only while one of its
 * calls runs (and taken off around the progress callback). */
#include "models/batch.h"
#include "checkpoint/checkpoint.h"
#include "train/loss.h"
#include "train/loss_softmax.h"
#include "train/optimizer.h"
#include "dist/dist_train.h"
#include "train/shard.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Users with fewer training items than this give no (input, target) pair. */
#define MIN_TRAIN_ITEMS 2
/* Rejection sampling of an unseen negative gives up after this many draws
 * (a user who has seen nearly everything) and takes any item. */
#define UNSEEN_MAX_TRIES 1000
/* Longest trainer.checkpoint path kept, with its NUL. */
#define CHECKPOINT_PATH_MAX 1024
/* The BCE loss uses one negative per position. */
#define BCE_NEGATIVES 1

enum loss_kind { LOSS_BCE, LOSS_SOFTMAX };

struct recsys_trainer {
    recsys_ctx *ctx;
    recsys_model *model;
    const recsys_dataset *ds;
    rs_workspace *ws;
    rs_ssm_workspace *ssm; /* sampled-softmax scratch */
    float *bce_scratch;    /* BCE scratch */
    rs_batch_buf bb;
    float *F, *dF, *grads;
    rs_adam adam;
    int64_t *users;       /* users with at least one training pair */
    int64_t n_users;
    uint32_t *seen;       /* per item: stamp of the last user that had it */
    uint32_t stamp;
    rs_rng rng;
    /* settings */
    int batch_size, epochs, shared_negatives, eval_every;
    enum loss_kind loss;
    float temperature;
    int epoch;
    char *checkpoint_path; /* trainer.checkpoint (malloc'd; NULL = none) */
    int checkpoint_every;
    int threads;          /* trainer.threads: 0 = the ctx's */
    rs_pool *pool;        /* own workers when threads differs from the ctx's; else NULL */
    int bf16;             /* trainer.bf16 */
    recsys_progress_fn progress;
    void *progress_user;
    rs_dist_train *dist;  /* data-parallel over a recsys_collective; NULL = alone */
    int shard_items;      /* dist.shard_items */
    rs_shard *shard;      /* the item-table shard when shard_items and distributed */
};

/* ------------------------------------------------- the trainer's settings */

/* What the trainer puts on its ctx while it works, and takes off after. */
typedef struct ctx_saved {
    rs_pool *pool;
    int n_threads, bf16;
} ctx_saved;

static int bf16_supported(const recsys_ctx *ctx)
{
    return ctx->cpu.avx512_bf16 && ctx->kern.isa >= RS_ISA_AVX512;
}

/* The trainer's own workers, when trainer.threads asks for a count the
 * ctx does not have (started once, on first need). */
static recsys_status own_pool(recsys_trainer *t)
{
    if (t->threads <= 0 || t->pool || t->threads == t->ctx->n_threads) return RECSYS_OK;
    t->pool = rs_pool_new(t->threads);
    return t->pool ? RECSYS_OK
                   : rs_error(t->ctx, RECSYS_E_NOMEM, "cannot start %d threads", t->threads);
}

static recsys_status settings_on(recsys_trainer *t, ctx_saved *saved)
{
    recsys_ctx *ctx = t->ctx;
    *saved = (ctx_saved){ctx->pool, ctx->n_threads, ctx->bf16};
    recsys_status st = own_pool(t);
    if (st) return st;
    if (t->pool && t->threads != ctx->n_threads) {
        ctx->pool = t->pool;
        ctx->n_threads = t->threads;
    }
    /* As recsys_ctx_set_max_isa: a cap below AVX-512 since trainer_new drops bf16. */
    if (t->bf16 && bf16_supported(ctx)) ctx->bf16 = 1;
    return RECSYS_OK;
}

static void settings_off(recsys_trainer *t, const ctx_saved *saved)
{
    recsys_ctx *ctx = t->ctx;
    ctx->pool = saved->pool;
    ctx->n_threads = saved->n_threads;
    ctx->bf16 = saved->bf16;
}

/* ------------------------------------------------------------- lifetime */

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
    rs_adam_free(&t->adam);
    free(t->users);
    free(t->seen);
    rs_pool_free(t->pool);
    rs_shard_free(t->shard);
    rs_dist_train_free(t->dist);
    free(t->checkpoint_path);
    recsys_model_free(t->model);
    free(t);
}

static void log_trainer(const recsys_trainer *t)
{
    recsys_ctx *ctx = t->ctx;
    int threads = t->threads > 0 ? t->threads : ctx->n_threads;
    rs_log(ctx, RECSYS_LOG_INFO,
           "trainer: %s loss, %s lr %g, batch %d, %d epochs, %lld training users; %d threads "
           "(%s), bf16 %s; kernels %s, GEMM %s",
           t->loss == LOSS_BCE ? "bce" : "sampled_softmax",
           t->adam.decoupled_wd ? "adamw" : "adam", (double)t->adam.lr, t->batch_size, t->epochs,
           (long long)t->n_users, threads, threads != ctx->n_threads ? "its own" : "the ctx's",
           t->bf16 || ctx->bf16 ? "on" : "off", recsys_ctx_isa(ctx),
           recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM));
}

/* Bytes the trainer's buffers need (an estimate made before allocating:
 * gradients and Adam moments, activations kept for backward, the batch and
 * the loss scratch). */
static double trainer_bytes(const recsys_model *m, const recsys_dataset *ds, int B, int n_neg,
                            int softmax, int shard)
{
    const rs_model_config *c = &m->cfg;
    double R = (double)B * c->max_len, d = c->dim, blocks = c->blocks;
    double ffn = c->ffn_dim > 0 ? c->ffn_dim : d;
    double dqk = c->dqk > 0 ? c->dqk : d, dv = c->dv > 0 ? c->dv : d;
    double per_row = (blocks + 1) * d + blocks * (6 * d + 2 * dqk + 2 * dv + ffn + c->heads + 8);
    /* dist.shard_items: the table's gradient and moments are the shard's
     * (3/N of the table, allocated by recsys_trainer_set_collective) */
    double own = shard ? (double)m->n_params - ((double)c->n_items + 1) * d : (double)m->n_params;
    double floats = 3.0 * own + 2 * R * d + R * per_row;
    floats += softmax ? R * (2 * d + 2 * (n_neg + 1.0)) + 2.0 * n_neg * d + 2.0 * c->n_items
                      : R * (1.0 + n_neg);
    double ints = R * (4.0 + n_neg) + (double)ds->n_users * 2 + (double)c->n_items;
    return 4.0 * floats + 4.0 * ints;
}

recsys_status recsys_trainer_new(recsys_ctx *ctx, recsys_model *model,
                                 const recsys_dataset *ds, const recsys_opts *opts,
                                 recsys_trainer **out)
{
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    if (!model || !ds || !out)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_trainer_new: NULL argument");
    *out = NULL;
    recsys_status whole = rs_model_whole(ctx, model, "recsys_trainer_new");
    if (whole) return whole;
    if (model->cfg.n_items != ds->n_items)
        return rs_error(ctx, RECSYS_E_INVALID,
                        "model was built for %d items but the dataset has %d",
                        model->cfg.n_items, ds->n_items);
    recsys_trainer *t = calloc(1, sizeof *t);
    if (!t) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    t->ctx = ctx;
    t->model = rs_model_ref(model);
    t->ds = ds;
    t->batch_size = (int)rs_opt_int(opts, RS_OPT_TRAINER_BATCH_SIZE);
    t->epochs = (int)rs_opt_int(opts, RS_OPT_TRAINER_EPOCHS);
    t->eval_every = (int)rs_opt_int(opts, RS_OPT_TRAINER_EVAL_EVERY);
    t->loss = rs_opt_is(opts, RS_OPT_TRAINER_LOSS, "sampled_softmax") ? LOSS_SOFTMAX : LOSS_BCE;
    t->temperature = (float)rs_opt_float(opts, RS_OPT_TRAINER_TEMPERATURE);
    t->shared_negatives = rs_opt_bool(opts, RS_OPT_TRAINER_SHARED_NEGATIVES);
    t->checkpoint_every = (int)rs_opt_int(opts, RS_OPT_TRAINER_CHECKPOINT_EVERY);
    rs_rng_seed(&t->rng, (uint64_t)rs_opt_int(opts, RS_OPT_TRAINER_SEED));
    t->threads = (int)rs_opt_int(opts, RS_OPT_TRAINER_THREADS);
    t->bf16 = rs_opt_bool(opts, RS_OPT_TRAINER_BF16);
    t->shard_items = rs_opt_bool(opts, RS_OPT_DIST_SHARD_ITEMS);
    recsys_status st = own_pool(t);
    if (!st && t->bf16 && !bf16_supported(ctx))
        st = rs_error(ctx, RECSYS_E_UNSUPPORTED,
                      "bf16 mode needs AVX-512-BF16 and the avx512 kernels");

    const char *ck = rs_opt_str(opts, RS_OPT_TRAINER_CHECKPOINT);
    if (!st && *ck && !(t->checkpoint_path = strdup(ck)))
        st = rs_error(ctx, RECSYS_E_NOMEM, "out of memory");

    /* Buffers are sized by the data, not only by the config: a batch never
     * holds more rows than there are training users, nor a row more
     * negatives than the catalogue has items. */
    const rs_model_config *cfg = &model->cfg;
    int64_t n_train = 0;
    for (int64_t u = 0; u < ds->n_users; u++) n_train += rs_user_train_len(ds, u) >= MIN_TRAIN_ITEMS;
    if (!st && n_train == 0)
        st = rs_error(ctx, RECSYS_E_INVALID, "no user has two training items");
    if (n_train > 0 && t->batch_size > n_train) t->batch_size = (int)n_train;
    int64_t neg_opt = rs_opt_int(opts, RS_OPT_TRAINER_NEGATIVES);
    int n_neg = t->loss == LOSS_BCE ? BCE_NEGATIVES
                                    : (int)(neg_opt < cfg->n_items ? neg_opt : cfg->n_items);
    size_t rows = (size_t)t->batch_size * cfg->max_len;
    if (!st) st = rs_check_memory(ctx, opts, trainer_bytes(model, ds, t->batch_size, n_neg,
                                                             t->loss == LOSS_SOFTMAX,
                                                             t->shard_items),
                                  "training (trainer.batch_size, model.max_len, model.dim, "
                                  "trainer.negatives)");
    if (!st) st = rs_batch_buf_init(ctx, &t->bb, t->batch_size, cfg->max_len, n_neg,
                                    ds->times != NULL);
    if (!st) {
        t->ws = model->ops->ws_new(cfg, t->batch_size);
        t->F = rs_calloc(rows, (size_t)cfg->dim * sizeof(float));
        t->dF = rs_calloc(rows, (size_t)cfg->dim * sizeof(float));
        /* sharded: the gradient and moments live in the shard (train/shard.c) */
        size_t n_full = t->shard_items ? 1 : model->n_params;
        t->grads = rs_calloc(n_full, sizeof(float));
        recsys_status adam_st = rs_adam_init(&t->adam, opts, n_full);
        t->users = malloc(sizeof(int64_t) * (size_t)(ds->n_users ? ds->n_users : 1));
        t->seen = calloc((size_t)ds->n_items + 1, sizeof *t->seen);
        if (t->loss == LOSS_SOFTMAX && !t->shard_items)
            t->ssm = rs_ssm_workspace_new(cfg->n_items, cfg->dim, (int)rows, n_neg);
        else
            t->bce_scratch = rs_malloc(
                sizeof(float) * rs_loss_bce_scratch_floats(t->batch_size, cfg->max_len, n_neg));
        if (!t->ws || !t->F || !t->dF || !t->grads || adam_st || !t->users || !t->seen ||
            (t->loss == LOSS_SOFTMAX ? !t->ssm && !t->shard_items : !t->bce_scratch))
            st = rs_error(ctx, RECSYS_E_NOMEM, "out of memory for training buffers");
    }
    if (!st)
        for (int64_t u = 0; u < ds->n_users; u++)
            if (rs_user_train_len(ds, u) >= MIN_TRAIN_ITEMS) t->users[t->n_users++] = u;
    if (st) { recsys_trainer_free(t); return st; }
    log_trainer(t);
    *out = t;
    return RECSYS_OK;
}

recsys_status recsys_trainer_set_progress(recsys_trainer *t, recsys_progress_fn fn,
                                          void *user_data)
{
    rs_enter(t ? t->ctx : NULL);
    if (!t) return RS_BAD_ARGS();
    t->progress = fn;
    t->progress_user = user_data;
    return RECSYS_OK;
}

int recsys_trainer_epoch(const recsys_trainer *t) { return t ? t->epoch : 0; }

int recsys_trainer_eval_due(const recsys_trainer *t)
{
    if (!t || t->eval_every <= 0 || t->epoch == 0) return 0;
    return t->epoch % t->eval_every == 0 || t->epoch == t->epochs;
}

/* One uniformly sampled item the user has not interacted with (the stamp of
 * the user's items is current). Gives up on users who rated everything. */
static int32_t sample_unseen(recsys_trainer *t)
{
    int32_t n = t->ds->n_items;
    for (int tries = 0; tries < UNSEEN_MAX_TRIES; tries++) {
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

/* Fill the batch rows for users[b0..b0+rows) and their negatives.
 * Distributed, every rank fills the whole global batch (the RNG stream is
 * the single process's), but the per-position sampled-softmax negatives of
 * other ranks' rows are only stepped over: one RNG step per draw, so this
 * rank's draws are the same. */
static int64_t fill_batch(recsys_trainer *t, int64_t b0, int rows)
{
    rs_batch_buf *bb = &t->bb;
    int64_t targets = 0, lo = 0, hi = rows;
    int L = bb->L, R = bb->n_neg;
    if (t->dist) rs_dist_share(rows, t->dist->d.size, t->dist->d.rank, &lo, &hi);
    for (int r = 0; r < rows; r++) {
        int64_t u = t->users[b0 + r];
        targets += rs_batch_fill_train_row(bb, r, t->ds, u);
        size_t o = (size_t)r * L;
        if (t->loss == LOSS_SOFTMAX && !t->shared_negatives && (r < lo || r >= hi)) {
            for (int p = 0; p < L; p++) /* rs_rng_below takes one step */
                if (bb->pos[o + p])
                    for (int k = 0; k < R; k++) (void)rs_rng_next(&t->rng);
        } else if (t->loss == LOSS_BCE) {
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

static recsys_status train_step(recsys_trainer *t, int rows, double *loss)
{
    recsys_model *m = t->model;
    uint64_t seed = rs_rng_next(&t->rng);
    rs_batch b = rs_batch_view(&t->bb, rows, 1, seed);
    if (t->shard_items && !t->shard)
        return rs_error(t->ctx, RECSYS_E_STATE,
                        "dist.shard_items: call recsys_trainer_set_collective before training");
    if (t->dist) rs_dist_train_slice(t->dist, &b, t->shared_negatives); /* this rank's rows */
    /* Sharded: the working model holds the rows this step touches. */
    rs_shard *sh = t->shard;
    const rs_model_config *cfg = sh ? &sh->cfg : &m->cfg;
    float *P = sh ? sh->W : m->params, *G = sh ? sh->G : t->grads;
    rs_ssm_workspace *ssm = sh ? sh->ssm : t->ssm;
    size_t item_off = RS_ITEM_TABLE_OFFSET;
    recsys_status st = sh ? rs_shard_begin(sh, &b, t->shared_negatives) : RECSYS_OK;
    if (st) return st;
    if (!sh) memset(G, 0, sizeof(float) * m->n_params);
    *loss = 0.0;
    st = b.B ? m->ops->forward(t->ctx, cfg, P, t->ws, &b, t->F) : RECSYS_OK;
    if (st || !b.B) {
    } else if (t->loss == LOSS_BCE)
        st = rs_loss_bce_ws(t->ctx, cfg, P + item_off, &b, t->F, t->dF, G + item_off,
                            t->bce_scratch, loss);
    else
        st = rs_loss_sampled_softmax_ws(t->ctx, cfg, P + item_off, &b, t->F, t->temperature,
                                        cfg->l2norm, t->shared_negatives, ssm, t->dF,
                                        G + item_off, loss);
    if (!st && !isfinite(*loss))
        st = rs_error(t->ctx, RECSYS_E_NUMERIC, "training loss became %g at epoch %d",
                      *loss, t->epoch + 1);
    if (!st && t->dist)
        st = rs_dist_train_scale(t->dist, &b, t->shared_negatives, t->dF, G + item_off);
    if (!st && b.B) st = m->ops->backward(t->ctx, cfg, P, t->ws, &b, t->dF, G);
    if (sh) return rs_shard_end(sh, t->ctx, st, loss); /* exchange and optimiser step */
    if (t->dist) st = rs_dist_train_reduce(t->dist, st, G, loss); /* all ranks' sum */
    if (st) return st;
    rs_adam_step(t->ctx, &t->adam, m->params, G);
    return RECSYS_OK;
}

/* The progress callback runs with the caller's ctx settings: it may call
 * into the library with the same ctx. */
static recsys_status report_progress(recsys_trainer *t, ctx_saved *saved,
                                     const recsys_progress *p)
{
    settings_off(t, saved);
    int stop = t->progress(t->progress_user, p);
    recsys_status st = settings_on(t, saved);
    if (st) return st;
    return stop ? rs_error(t->ctx, RECSYS_E_ABORTED, "training stopped by the progress callback")
                : RECSYS_OK;
}

static recsys_status run_epoch(recsys_trainer *t, ctx_saved *saved, double *mean_loss)
{
    /* Fisher–Yates shuffle of the users from their natural order, so an
     * epoch's order depends only on the RNG state (and resumes exactly). */
    t->n_users = 0;
    for (int64_t u = 0; u < t->ds->n_users; u++)
        if (rs_user_train_len(t->ds, u) >= MIN_TRAIN_ITEMS) t->users[t->n_users++] = u;
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
            if ((st = report_progress(t, saved, &p))) return st;
        }
    }
    t->epoch++;
    if (mean_loss) *mean_loss = loss_sum / (double)steps;
    if (t->shard) { /* the model's dense part; its rows are the shard's */
        rs_shard_sync_model(t->shard);
        t->adam.step = t->shard->adam_rows.step;
    }
    if (t->checkpoint_path && t->epoch % t->checkpoint_every == 0)
        return recsys_trainer_save_checkpoint(t, t->checkpoint_path);
    return RECSYS_OK;
}

recsys_status recsys_trainer_run_epoch(recsys_trainer *t, double *mean_loss)
{
    rs_enter(t ? t->ctx : NULL);
    if (!t) return RS_BAD_ARGS();
    ctx_saved saved;
    recsys_status st = settings_on(t, &saved);
    if (!st) st = run_epoch(t, &saved, mean_loss);
    settings_off(t, &saved);
    return st;
}

recsys_status recsys_trainer_save_checkpoint(recsys_trainer *t, const char *path)
{
    rs_enter(t ? t->ctx : NULL);
    if (!t) return RS_BAD_ARGS();
    if (!path) return rs_error(t->ctx, RECSYS_E_INVALID, "checkpoint path is NULL");
    rs_train_state s = {t->epoch, t->adam.step, {0}, t->adam.m, t->adam.v};
    memcpy(s.rng, t->rng.s, sizeof s.rng);
    if (t->shard) return rs_shard_save(t->shard, t->ctx, path, &s);
    if (t->dist) return rs_dist_save_train(t->dist, t->ctx, t->model, path, &s);
    return rs_checkpoint_save_train(t->ctx, t->model, path, &s);
}

recsys_status recsys_trainer_resume(recsys_trainer *t, const char *path)
{
    rs_enter(t ? t->ctx : NULL);
    if (!t) return RS_BAD_ARGS();
    if (!path) return rs_error(t->ctx, RECSYS_E_INVALID, "checkpoint path is NULL");
    rs_train_state s = {0, 0, {0}, t->adam.m, t->adam.v};
    if (t->shard_items && !t->shard)
        return rs_error(t->ctx, RECSYS_E_STATE,
                        "dist.shard_items: call recsys_trainer_set_collective before resuming");
    recsys_status st = t->shard  ? rs_shard_resume(t->shard, t->ctx, path, &s)
                       : t->dist ? rs_dist_load_train(t->dist, t->ctx, path, t->model, &s)
                                 : rs_checkpoint_load_train(t->ctx, path, t->model, &s);
    if (st) return st;
    t->epoch = (int)s.epoch;
    t->adam.step = s.step;
    memcpy(t->rng.s, s.rng, sizeof s.rng);
    return RECSYS_OK;
}

/* ------------------------------------------------ distributed (lib/dist) */

recsys_status recsys_trainer_set_collective(recsys_trainer *t, const recsys_collective *c)
{
    rs_enter(t ? t->ctx : NULL);
    if (!t) return RS_BAD_ARGS();
    if (t->shard) { /* the model whole again before the shard goes */
        rs_dist_set_ctx(&t->dist->d, t->ctx);
        recsys_status st = rs_shard_unsplit(t->shard);
        if (st) return st;
    }
    rs_shard_free(t->shard);
    t->shard = NULL;
    rs_dist_train_free(t->dist);
    t->dist = NULL;
    if (!c) return RECSYS_OK;
    rs_train_state s = {t->epoch, t->adam.step, {0}, t->shard_items ? NULL : t->adam.m,
                        t->shard_items ? NULL : t->adam.v};
    memcpy(s.rng, t->rng.s, sizeof s.rng);
    recsys_status st = rs_dist_train_new(t->ctx, c, t->model, &t->dist);
    /* Every rank starts from rank 0's weights, optimiser state and RNG
     * (sharded: fresh moments; resume after this call). */
    if (!st) st = rs_dist_sync_train(t->dist, t->model, &s);
    if (!st && t->shard_items) {
        st = rs_shard_new(t->dist, t->ctx, t->model, &t->adam, t->batch_size, t->bb.n_neg,
                          t->shared_negatives, t->loss == LOSS_SOFTMAX, &t->shard);
        st = rs_dist_agree(&t->dist->d, st);
    }
    /* A rank that failed after splitting the model (out of memory for the
     * shard) leaves it split: sharded models are refused everywhere, and
     * the job cannot go on anyway (every rank fails here). */
    if (st) {
        rs_shard_free(t->shard);
        t->shard = NULL;
        rs_dist_train_free(t->dist);
        t->dist = NULL;
        return st;
    }
    t->epoch = (int)s.epoch;
    t->adam.step = s.step;
    memcpy(t->rng.s, s.rng, sizeof s.rng);
    return RECSYS_OK;
}

recsys_status recsys_trainer_comm_stats(const recsys_trainer *t, double *bytes_sent,
                                        double *seconds, int64_t *calls, int64_t *steps)
{
    rs_enter(t ? t->ctx : NULL);
    if (!t) return RS_BAD_ARGS();
    const rs_dist_train *d = t->dist;
    if (bytes_sent) *bytes_sent = d ? d->d.bytes_sent : 0.0;
    if (seconds) *seconds = d ? d->d.seconds : 0.0;
    if (calls) *calls = d ? d->d.calls : 0;
    if (steps) *steps = d ? d->steps : 0;
    return RECSYS_OK;
}

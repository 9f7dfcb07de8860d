/* Adapter training on a frozen base and evaluation with adapters
 * (docs/ADAPTERS.md, "Training" and "Scoring"). */
#include "adapters/gate_input.h"
#include "adapters/hook.h"
#include "adapters/store.h"
#include "eval/eval_hook.h"
#include "models/batch.h"
#include "train/loss.h"
#include "train/optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Keep only the last w positions of rows 0..rows-1 (inputs and targets). */
static void clip_window(rs_batch_buf *bb, int rows, int w)
{
    int L = bb->L;
    if (w <= 0 || w >= L) return;
    for (int r = 0; r < rows; r++) {
        if (bb->start[r] >= L - w) continue;
        size_t o = (size_t)r * L;
        int n0 = L - w;
        memset(bb->seq + o, 0, sizeof(int32_t) * (size_t)n0);
        if (bb->pos) memset(bb->pos + o, 0, sizeof(int32_t) * (size_t)n0);
        if (bb->neg) memset(bb->neg + o * bb->n_neg, 0, sizeof(int32_t) * (size_t)n0 * bb->n_neg);
        if (bb->times) {
            memset(bb->times + o, 0, sizeof(int64_t) * (size_t)n0);
            memset(bb->next_times + o, 0, sizeof(int64_t) * (size_t)n0);
        }
        bb->start[r] = n0;
    }
}

/* What a bank needs per batch: the gate's input states and the mixed LoRAs. */
typedef struct bank_pass {
    const recsys_adapter *a;
    rs_gate_ws gws;
    int32_t *gseq;  /* B*L: the gate window's inputs */
    int *gstart;
    int64_t *gtimes, *gnext; /* training with times: the shifted times (lazily) */
    float *h;       /* B x d: base states over the gate window */
    float *alpha;   /* B x K */
    float *mixed;   /* B x P */
    float *dalpha;  /* B x K */
} bank_pass;

static recsys_status bank_init(recsys_ctx *ctx, bank_pass *bp, const recsys_adapter *a, int B)
{
    memset(bp, 0, sizeof *bp);
    bp->a = a;
    int L = a->model->cfg.max_len, d = a->model->cfg.dim;
    bp->gseq = malloc(sizeof(int32_t) * (size_t)B * L);
    bp->gstart = malloc(sizeof(int) * (size_t)B);
    bp->h = malloc(sizeof(float) * (size_t)B * d);
    bp->alpha = malloc(sizeof(float) * (size_t)B * a->K);
    bp->mixed = rs_malloc(sizeof(float) * (size_t)B * a->P);
    bp->dalpha = malloc(sizeof(float) * (size_t)B * a->K);
    if (!bp->dalpha || !bp->gseq || !bp->gstart || !bp->h || !bp->alpha || !bp->mixed ||
        rs_gate_ws_init(&bp->gws, &a->gate, B))
        return rs_error(ctx, RECSYS_E_NOMEM, "adapter bank: out of memory");
    return RECSYS_OK;
}

static void bank_release(bank_pass *bp)
{
    rs_gate_ws_release(&bp->gws);
    free(bp->gseq);
    free(bp->gstart);
    free(bp->gtimes);
    free(bp->gnext);
    free(bp->h);
    free(bp->alpha);
    free(bp->dalpha);
    rs_free(bp->mixed);
}

/* Base forward over the gate's input (rs_gate_input: in training cut before
 * the rows' scored targets, which it also clears in bb), the gate, and the
 * mix: bp->mixed holds each row's LoRA. */
static recsys_status bank_forward(recsys_ctx *ctx, bank_pass *bp, rs_workspace *ws, float *F,
                                  rs_batch_buf *bb, int rows, int train, uint64_t seed)
{
    const recsys_adapter *a = bp->a;
    const recsys_model *m = a->model;
    int L = bb->L, d = m->cfg.dim;
    int timed = train && bb->times;
    if (timed && !bp->gtimes) {
        bp->gtimes = malloc(sizeof(int64_t) * (size_t)bb->B * L);
        bp->gnext = malloc(sizeof(int64_t) * (size_t)bb->B * L);
        if (!bp->gtimes || !bp->gnext)
            return rs_error(ctx, RECSYS_E_NOMEM, "adapter bank: out of memory");
    }
    rs_gate_input(bb, rows, a->gate_window, train, bp->gseq, timed ? bp->gtimes : NULL,
                  timed ? bp->gnext : NULL, bp->gstart);
    rs_batch g = {0};
    g.B = rows;
    g.L = L;
    g.seq = bp->gseq;
    g.times = timed ? bp->gtimes : bb->times; /* scoring: no shift, the rows' own times */
    g.next_times = timed ? bp->gnext : bb->next_times;
    g.start = bp->gstart;
    recsys_status st = m->ops->forward(ctx, &m->cfg, m->params, ws, &g, F);
    if (st) return st;
    for (int r = 0; r < rows; r++)
        memcpy(bp->h + (size_t)r * d, F + ((size_t)r * L + L - 1) * d, sizeof(float) * d);
    const float *gate = a->params + (size_t)a->K * a->P;
    rs_gate_fwd(ctx, &a->gate, gate, &bp->gws, rows, bp->h, d, train, seed, NULL, bp->alpha);
    rs_bank_mix(ctx, rows, a->K, a->P, bp->alpha, a->params, bp->mixed);
    return RECSYS_OK;
}

/* ------------------------------------------------------------- training */

typedef struct trainer {
    recsys_ctx *ctx;
    recsys_adapter *a;
    const recsys_model *m;
    const recsys_dataset *ds;
    int B;
    rs_batch_buf bb;
    rs_workspace *ws;
    rs_lora_hook hook;
    float *F, *dF, *Gscratch, *grad, *dmixed, *loss_scratch;
    rs_adam adam;
    rs_rng rng;
    uint32_t *seen, stamp;
    bank_pass bp;
} trainer;

static void trainer_free(trainer *t)
{
    rs_batch_buf_free(&t->bb);
    if (t->ws) t->m->ops->ws_free(t->ws);
    rs_lora_hook_release(&t->hook);
    rs_free(t->F);
    rs_free(t->dF);
    rs_free(t->Gscratch);
    rs_free(t->grad);
    rs_free(t->dmixed);
    rs_free(t->loss_scratch);
    rs_adam_free(&t->adam);
    free(t->seen);
    if (t->a->kind == RECSYS_ADAPTER_BANK) bank_release(&t->bp);
}

static recsys_status trainer_init(trainer *t, recsys_adapter *a, const recsys_dataset *ds,
                                  const recsys_opts *opts, int B)
{
    recsys_ctx *ctx = a->ctx;
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    t->a = a;
    t->m = a->model;
    t->ds = ds;
    t->B = B;
    const rs_model_config *c = &t->m->cfg;
    size_t nd = (size_t)B * c->max_len * c->dim;
    recsys_status st = rs_batch_buf_init(ctx, &t->bb, B, c->max_len, 1, ds->times != NULL);
    if (st) return st;
    t->ws = t->m->ops->ws_new(c, B);
    t->F = rs_malloc(sizeof(float) * nd);
    t->dF = rs_malloc(sizeof(float) * nd);
    t->Gscratch = rs_malloc(sizeof(float) * t->m->n_params);
    t->grad = rs_malloc(sizeof(float) * a->n_params);
    t->loss_scratch = rs_malloc(sizeof(float) * rs_loss_bce_scratch_floats(B, c->max_len, 1));
    t->seen = calloc((size_t)ds->n_items + 1, sizeof *t->seen);
    if (a->kind == RECSYS_ADAPTER_BANK) {
        t->dmixed = rs_malloc(sizeof(float) * (size_t)B * a->P);
        if (!t->dmixed || (st = bank_init(ctx, &t->bp, a, B))) goto fail;
    }
    if (!t->ws || !t->F || !t->dF || !t->Gscratch || !t->grad || !t->loss_scratch || !t->seen)
        goto fail;
    if ((st = rs_lora_hook_init(ctx, &t->hook, a, B))) return st;
    t->hook.h.frozen_base = 1;
    if (rs_adam_init(&t->adam, opts, a->n_params)) goto fail;
    t->adam.lr = (float)rs_opt_float(opts, RS_OPT_ADAPTER_LR);
    t->adam.weight_decay = 0.0f;
    rs_rng_seed(&t->rng, (uint64_t)rs_opt_int(opts, RS_OPT_TRAINER_SEED) ^ 0xada97e5ULL);
    return RECSYS_OK;
fail:
    return rs_error(ctx, RECSYS_E_NOMEM, "adapter training: out of memory");
}

static int32_t unseen_item(trainer *t)
{
    int32_t n = t->ds->n_items;
    for (int k = 0; k < 50; k++) {
        int32_t it = 1 + (int32_t)rs_rng_below(&t->rng, (uint64_t)n);
        if (t->seen[it] != t->stamp) return it;
    }
    return 1 + (int32_t)rs_rng_below(&t->rng, (uint64_t)n);
}

/* One Adam step on users[0..rows). Returns the mean BCE loss in *loss. */
static recsys_status train_step(trainer *t, const int64_t *users, int rows, double *loss)
{
    recsys_ctx *ctx = t->ctx;
    recsys_adapter *a = t->a;
    const recsys_model *m = t->m;
    const rs_model_config *c = &m->cfg;
    rs_batch_buf *bb = &t->bb;
    int L = bb->L;
    for (int r = 0; r < rows; r++) {
        rs_batch_fill_train_row(bb, r, t->ds, users[r]);
        if (++t->stamp == 0) {
            memset(t->seen, 0, sizeof *t->seen * ((size_t)t->ds->n_items + 1));
            t->stamp = 1;
        }
        const int32_t *it = t->ds->items + t->ds->offsets[users[r]];
        for (int64_t k = 0; k < rs_user_len(t->ds, users[r]); k++) t->seen[it[k]] = t->stamp;
        size_t o = (size_t)r * L;
        for (int p = 0; p < L; p++) bb->neg[o + p] = bb->pos[o + p] ? unseen_item(t) : 0;
    }
    uint64_t seed = rs_rng_next(&t->rng);
    recsys_status st;
    memset(t->grad, 0, sizeof(float) * a->n_params);
    if (a->kind == RECSYS_ADAPTER_BANK) {
        if ((st = bank_forward(ctx, &t->bp, t->ws, t->F, bb, rows, 1, seed))) return st;
        memset(t->dmixed, 0, sizeof(float) * (size_t)rows * a->P);
        for (int r = 0; r < rows; r++) {
            t->hook.vec[r] = t->bp.mixed + (size_t)r * a->P;
            t->hook.grad[r] = t->dmixed + (size_t)r * a->P;
        }
    } else {
        rs_lora_hook_set_all(&t->hook, a->params, t->grad);
    }
    clip_window(bb, rows, a->window);
    rs_batch b = rs_batch_view(bb, rows, 1, seed);
    b.hook = &t->hook.h;
    if ((st = m->ops->forward(ctx, c, m->params, t->ws, &b, t->F))) return st;
    memset(t->Gscratch, 0, sizeof(float) * m->n_params);
    if ((st = rs_loss_bce_ws(ctx, c, rs_model_items(m), &b, t->F, t->dF,
                             t->Gscratch + RS_ITEM_TABLE_OFFSET, t->loss_scratch, loss)))
        return st;
    if ((st = m->ops->backward(ctx, c, m->params, t->ws, &b, t->dF, t->Gscratch))) return st;
    if (a->kind == RECSYS_ADAPTER_BANK) {
        rs_bank_mix_bwd(ctx, rows, a->K, a->P, t->bp.alpha, a->params, t->dmixed, t->grad,
                        t->bp.dalpha);
        rs_gate_bwd(ctx, &a->gate, a->params + (size_t)a->K * a->P, &t->bp.gws, t->bp.h,
                    c->dim, 1, t->bp.dalpha, t->grad + (size_t)a->K * a->P);
    }
    rs_adam_step(ctx, &t->adam, a->params, t->grad);
    return RECSYS_OK;
}

recsys_status recsys_adapter_train(recsys_adapter *a, const recsys_dataset *ds, int64_t user,
                                   const recsys_opts *opts, double *loss)
{
    rs_enter(a ? a->ctx : NULL);
    if (!a || !ds) return RS_BAD_ARGS();
    recsys_ctx *ctx = a->ctx;
    if (a->model->cfg.n_items != ds->n_items)
        return rs_error(ctx, RECSYS_E_INVALID, "adapter training: model has %d items, data %d",
                        a->model->cfg.n_items, ds->n_items);
    int per_user = a->kind == RECSYS_ADAPTER_USER;
    if (per_user && (user < 0 || user >= ds->n_users))
        return rs_error(ctx, RECSYS_E_INVALID,
                        "adapter training: a USER adapter needs a user in 0..%lld, got %lld",
                        (long long)ds->n_users - 1, (long long)user);
    if (!per_user && user >= 0)
        return rs_error(ctx, RECSYS_E_INVALID,
                        "adapter training: shared and bank adapters train on every user "
                        "(user = -1)");
    int64_t n = 0;
    int64_t *users = NULL;
    if (per_user) {
        if (rs_user_train_len(ds, user) < 2)
            return rs_error(ctx, RECSYS_E_INVALID,
                            "adapter training: user %lld has fewer than 2 training events",
                            (long long)user);
        users = malloc(sizeof *users);
        if (users) users[n++] = user;
    } else {
        users = malloc(sizeof *users * (size_t)(ds->n_users > 0 ? ds->n_users : 1));
        if (users)
            for (int64_t u = 0; u < ds->n_users; u++)
                if (rs_user_train_len(ds, u) >= 2) users[n++] = u;
    }
    if (!users) return rs_error(ctx, RECSYS_E_NOMEM, "adapter training: out of memory");
    if (n == 0) {
        free(users);
        return rs_error(ctx, RECSYS_E_INVALID, "adapter training: no user with 2 or more events");
    }
    int B = per_user ? 1 : (int)rs_opt_int(opts, RS_OPT_TRAINER_BATCH_SIZE);
    if (B > n) B = (int)n;
    trainer t;
    recsys_status st = trainer_init(&t, a, ds, opts, B);
    int64_t steps = per_user ? rs_opt_int(opts, RS_OPT_ADAPTER_USER_STEPS)
                             : rs_opt_int(opts, RS_OPT_ADAPTER_EPOCHS) * ((n + B - 1) / B);
    double sum = 0.0;
    int64_t cnt = 0, steps_per_epoch = (n + B - 1) / B;
    for (int64_t s = 0; !st && s < steps; s++) {
        int64_t b0 = (s % steps_per_epoch) * B;
        if (!per_user && b0 == 0) /* reshuffle every epoch */
            for (int64_t i = n - 1; i > 0; i--) {
                int64_t j = (int64_t)rs_rng_below(&t.rng, (uint64_t)i + 1);
                int64_t x = users[i];
                users[i] = users[j];
                users[j] = x;
            }
        int rows = (int)(n - b0 < B ? n - b0 : B);
        double l = 0.0;
        st = train_step(&t, users + b0, rows, &l);
        if (s >= steps - steps_per_epoch) {
            sum += l;
            cnt++;
        }
    }
    for (size_t i = 0; !st && i < a->n_params; i++)
        if (!isfinite(a->params[i]))
            st = rs_error(ctx, RECSYS_E_NUMERIC, "adapter training diverged (lower adapter.lr)");
    if (!st && loss) *loss = cnt ? sum / (double)cnt : 0.0;
    trainer_free(&t);
    free(users);
    return st;
}

/* A one-user dataset over the caller's history, nothing held out
 * (holdout 0: every event after the first is a training target). */
recsys_status recsys_adapter_train_sequence(recsys_adapter *a, const int32_t *items,
                                            const int64_t *times, size_t n,
                                            const recsys_opts *opts, double *loss)
{
    rs_enter(a ? a->ctx : NULL);
    if (!a || (!items && n)) return RS_BAD_ARGS();
    recsys_ctx *ctx = a->ctx;
    if (a->kind != RECSYS_ADAPTER_USER)
        return rs_error(ctx, RECSYS_E_INVALID, "adapter training: a history trains a USER adapter");
    if (n < 2)
        return rs_error(ctx, RECSYS_E_INVALID, "adapter training: a history needs 2 or more "
                                               "events, got %zu", n);
    int32_t n_items = a->model->cfg.n_items;
    for (size_t i = 0; i < n; i++)
        if (items[i] < 1 || items[i] > n_items)
            return rs_error(ctx, RECSYS_E_INVALID,
                            "adapter training: item %d at %zu is not in 1..%d", items[i], i,
                            n_items);
    int32_t *it = malloc(sizeof *it * n);
    int64_t *tm = times ? malloc(sizeof *tm * n) : NULL;
    if (!it || (times && !tm)) {
        free(it);
        free(tm);
        return rs_error(ctx, RECSYS_E_NOMEM, "adapter training: out of memory");
    }
    memcpy(it, items, sizeof *it * n);
    if (tm) memcpy(tm, times, sizeof *tm * n);
    int64_t offsets[2] = {0, (int64_t)n};
    recsys_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.ctx = ctx;
    ds.n_users = 1;
    ds.n_items = n_items;
    ds.n_events = (int64_t)n;
    ds.offsets = offsets;
    ds.items = it;
    ds.times = tm;
    ds.holdout = 0;
    recsys_status st = recsys_adapter_train(a, &ds, 0, opts, loss);
    free(it);
    free(tm);
    return st;
}

/* ------------------------------------------------------------- scoring */

typedef struct eval_adapters {
    recsys_ctx *ctx;
    const recsys_adapter *a;        /* every user (or those without a stored one), or NULL */
    recsys_adapter_store *store;    /* per-user adapters, or NULL */
    rs_lora_hook hook;
    float *vecs;                    /* B x P: the rows' stored adapters */
    bank_pass bp;
} eval_adapters;

static recsys_status eval_before(void *self, rs_workspace *ws, float *F, rs_batch_buf *bb,
                                 rs_batch *b, const int64_t *users, int rows)
{
    eval_adapters *e = self;
    const recsys_adapter *shape = e->store ? &e->store->shape : e->a;
    recsys_status st;
    if (e->a && e->a->kind == RECSYS_ADAPTER_BANK) {
        if ((st = bank_forward(e->ctx, &e->bp, ws, F, bb, rows, 0, 0))) return st;
        for (int r = 0; r < rows; r++) e->hook.vec[r] = e->bp.mixed + (size_t)r * e->a->P;
    } else {
        for (int r = 0; r < rows; r++) e->hook.vec[r] = e->a ? e->a->params : NULL;
    }
    if (e->store)
        for (int r = 0; r < rows; r++) {
            float *v = e->vecs + (size_t)r * shape->P;
            st = rs_store_get(e->ctx, e->store->st, (uint64_t)users[r], v);
            if (st == RECSYS_OK) e->hook.vec[r] = v;
            else if (st != RECSYS_E_NOT_FOUND) return st;
        }
    /* No clip_window here: adapter.window bounds training cost only. Scoring
     * sees the base's whole window, so an adapter with B = 0 scores exactly
     * as the base and a trained one is compared on the same history. */
    b->hook = &e->hook.h;
    return RECSYS_OK;
}

recsys_status recsys_evaluate_adapters(recsys_ctx *ctx, const recsys_model *model,
                                       const recsys_adapter *adapter,
                                       recsys_adapter_store *store, const recsys_dataset *ds,
                                       const recsys_opts *opts, double *user_rank,
                                       recsys_metrics **out)
{
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    if (!model || !ds || !out)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_evaluate_adapters: NULL argument");
    if ((adapter && adapter->model->params != model->params) ||
        (store && store->model->params != model->params))
        return rs_error(ctx, RECSYS_E_INVALID,
                        "recsys_evaluate_adapters: the adapters belong to another model");
    if (adapter && store && adapter->kind != RECSYS_ADAPTER_BANK &&
        (adapter->P != store->shape.P || adapter->targets != store->shape.targets ||
         adapter->rank != store->shape.rank || adapter->scale != store->shape.scale))
        return rs_error(ctx, RECSYS_E_INVALID,
                        "recsys_evaluate_adapters: the fallback adapter's shape differs from "
                        "the store's");
    if (adapter && store && adapter->kind == RECSYS_ADAPTER_BANK &&
        (adapter->P != store->shape.P || adapter->targets != store->shape.targets ||
         adapter->rank != store->shape.rank))
        return rs_error(ctx, RECSYS_E_INVALID,
                        "recsys_evaluate_adapters: the bank's LoRA shape differs from the store's");
    eval_adapters e;
    memset(&e, 0, sizeof e);
    e.ctx = ctx;
    e.a = adapter;
    e.store = store;
    rs_eval_hook eh = {&e, NULL, user_rank};
    if (!adapter && !store) return rs_evaluate_with(ctx, model, ds, opts, &eh, out);
    const recsys_adapter *shape = store ? &store->shape : adapter;
    int B = (int)rs_opt_int(opts, RS_OPT_EVAL_BATCH_SIZE);
    recsys_status st = rs_lora_hook_init(ctx, &e.hook, shape, B);
    if (!st && store) {
        e.vecs = rs_malloc(sizeof(float) * (size_t)B * shape->P);
        if (!e.vecs) st = rs_error(ctx, RECSYS_E_NOMEM, "evaluation: out of memory");
    }
    if (!st && adapter && adapter->kind == RECSYS_ADAPTER_BANK) st = bank_init(ctx, &e.bp, adapter, B);
    eh.before = eval_before;
    if (!st) st = rs_evaluate_with(ctx, model, ds, opts, &eh, out);
    if (adapter && adapter->kind == RECSYS_ADAPTER_BANK) bank_release(&e.bp);
    rs_free(e.vecs);
    rs_lora_hook_release(&e.hook);
    return st;
}

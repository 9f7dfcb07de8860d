/* Evaluation of a row-sharded model (dist.shard_items): no rank holds the
 * whole item table.
 *   1. The evaluated users are split in contiguous shares; each rank
 *      computes its users' states on a working model whose table holds the
 *      rows their inputs and targets need (fetched from their owners,
 *      dist/rows.h), and their target scores.
 *   2. States and target scores are gathered on every rank.
 *   3. Each rank counts, per user, the candidates of its own rows that score
 *      above / equal to the target (full ranking: its rows; sampled: the
 *      sampled negatives that fall in its rows, drawn as the single process
 *      draws them), by the single-process code (eval.c).
 *   4. The counts are gathered and summed per user (integers: exact), the
 *      ranks accumulated in user order: the metrics are the single-process
 *      ones. */
#include "eval/eval_dist.h"
#include "eval/metrics.h"
#include "dist/rows.h"
#include "models/batch.h"
#include "models/model_meta.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct shard_eval {
    recsys_ctx *ctx;
    const recsys_model *model;
    const recsys_dataset *ds;
    rs_dist *d;
    int test_split, B;
    int64_t n_eval, lo, hi;      /* evaluated users; this rank's share */
    int64_t *users;              /* evaluated user ids, in id order */
    rs_model_config wcfg;        /* the working model: n_items = cap */
    size_t cap, n_dense;
    float *W, *F, *last, *row;
    rs_workspace *ws;
    rs_batch_buf bb;
    int32_t *tgt;                /* per batch row: the target's compact id */
    rs_rows f;
    float *states, *tscores;     /* per evaluated user */
    double *counts;              /* greater, ties of every user; then all ranks' */
} shard_eval;

static void se_free(shard_eval *s)
{
    free(s->users);
    rs_free(s->W);
    rs_free(s->F);
    rs_free(s->last);
    rs_free(s->row);
    if (s->ws) s->model->ops->ws_free(s->ws);
    rs_batch_buf_free(&s->bb);
    free(s->tgt);
    rs_rows_free(&s->f);
    rs_free(s->states);
    rs_free(s->tscores);
    free(s->counts);
}

static recsys_status se_init(shard_eval *s)
{
    const recsys_model *m = s->model;
    const rs_model_config *c = &m->cfg;
    size_t d = (size_t)c->dim, L = (size_t)c->max_len, N = (size_t)s->d->size;
    s->users = malloc(sizeof(int64_t) * (size_t)(s->n_eval ? s->n_eval : 1));
    if (!s->users) return rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory for evaluation");
    int64_t k = 0;
    for (int64_t u = 0; u < s->ds->n_users; u++)
        if (rs_user_evaluated(s->ds, u)) s->users[k++] = u;
    rs_dist_share(s->n_eval, s->d->size, s->d->rank, &s->lo, &s->hi);
    int64_t most = (s->n_eval + (int64_t)N - 1) / (int64_t)N;
    if (s->B > most) s->B = (int)(most ? most : 1);
    size_t need = (size_t)s->B * (L + 1);
    s->cap = need < (size_t)c->n_items ? need : (size_t)c->n_items;
    s->wcfg = *c;
    s->wcfg.n_items = (int)s->cap;
    s->n_dense = m->n_params - ((size_t)c->n_items + 1) * d;
    size_t n_work = (s->cap + 1) * d + s->n_dense;
    if (m->ops->n_params(&s->wcfg) != n_work)
        return rs_error(s->ctx, RECSYS_E_INTERNAL,
                        "sharded evaluation: the dense parameters depend on the catalogue size");
    s->W = rs_calloc(n_work, sizeof(float));
    s->F = rs_calloc((size_t)s->B * L, d * sizeof(float));
    s->last = rs_malloc(sizeof(float) * rs_last_scratch_floats(&s->wcfg, s->B));
    s->row = rs_malloc(sizeof(float) * d);
    s->ws = m->ops->ws_new(&s->wcfg, s->B);
    s->tgt = malloc(sizeof(int32_t) * (size_t)s->B);
    s->states = rs_malloc(sizeof(float) * d * (size_t)(s->n_eval ? s->n_eval : 1));
    s->tscores = rs_malloc(sizeof(float) * (size_t)(s->n_eval ? s->n_eval : 1));
    s->counts = malloc(sizeof(double) * 2 * (N + 1) * (size_t)(s->n_eval ? s->n_eval : 1));
    recsys_status st = rs_batch_buf_init(s->ctx, &s->bb, s->B, c->max_len, 0,
                                         s->ds->times != NULL);
    if (!st) st = rs_rows_init(&s->f, s->d, c->n_items, c->dim, s->cap);
    if (!st && (!s->W || !s->F || !s->last || !s->row || !s->ws || !s->tgt || !s->states ||
                !s->tscores || !s->counts))
        st = rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory for sharded evaluation");
    if (!st) /* the dense weights follow the model's rows */
        memcpy(s->W + (s->cap + 1) * d, m->params + (size_t)(m->rows_hi - m->rows_lo) * d,
               sizeof(float) * s->n_dense);
    return st;
}

/* Step 1 for users [a, a + rows) of this rank's share. Every rank makes
 * the same number of calls (rows may be 0): the fetch is collective, its
 * status returned; a local failure goes to *local (and later calls only
 * answer the other ranks' requests). */
static recsys_status se_states(shard_eval *s, int64_t a, int rows, recsys_status *local)
{
    const rs_model_config *c = &s->model->cfg;
    size_t d = (size_t)c->dim, L = (size_t)c->max_len;
    if (*local) rows = 0;
    rs_rows_begin(&s->f);
    for (int r = 0; r < rows; r++) {
        int64_t u = s->users[a + r], n_in = rs_eval_input_len(s->ds, s->test_split, u);
        rs_batch_fill_input_row(&s->bb, r, s->ds, u, n_in);
        for (size_t p = 0; p < L; p++) {
            int32_t *x = &s->bb.seq[(size_t)r * L + p];
            *x = rs_rows_id(&s->f, *x);
        }
        s->tgt[r] = rs_rows_id(&s->f, s->ds->items[s->ds->offsets[u] + n_in]);
    }
    recsys_status st = rs_rows_get(&s->f, s->model->params, s->W);
    if (st || !rows) return st;
    rs_batch b = rs_batch_view(&s->bb, rows, 0, 0);
    b.last_scratch = s->last;
    if ((*local = s->model->ops->forward(s->ctx, &s->wcfg, s->W, s->ws, &b, s->F)))
        return RECSYS_OK;
    for (int r = 0; r < rows; r++) {
        const float *state = s->F + ((size_t)r * L + L - 1) * d;
        const float *t = s->W + (size_t)s->tgt[r] * d;
        if (c->l2norm) { /* scored against normalised rows, as eval.c */
            rs_normalise_rows(s->row, t, 1, c->dim);
            t = s->row;
        }
        memcpy(s->states + (size_t)(a + r) * d, state, sizeof(float) * d);
        s->tscores[a + r] = s->ctx->kern.dot(d, state, t);
    }
    return RECSYS_OK;
}

/* Step 2: every rank's part of buf (`each` floats per user) on every rank. */
static recsys_status se_share(shard_eval *s, float *buf, size_t each)
{
    rs_dist *D = s->d;
    for (int r = 0; r < D->size; r++) {
        int64_t a, b;
        rs_dist_share(s->n_eval, D->size, r, &a, &b);
        D->counts[r] = (size_t)(b - a) * each * sizeof(float);
        D->displs[r] = (size_t)a * each * sizeof(float);
    }
    size_t mine = (size_t)(s->hi - s->lo) * each;
    float *copy = rs_malloc(sizeof(float) * (mine ? mine : 1)); /* send and recv must not alias */
    recsys_status st = rs_dist_agree(
        D, copy ? RECSYS_OK : rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory for evaluation"));
    if (!st) {
        memcpy(copy, buf + (size_t)s->lo * each, sizeof(float) * mine);
        st = rs_dist_allgatherv(D, copy, sizeof(float) * mine, buf, D->counts, D->displs);
    }
    rs_free(copy);
    return st;
}

/* Steps 3 and 4. */
static recsys_status se_rank(shard_eval *s, const recsys_opts *opts, recsys_metrics **out)
{
    const recsys_model *m = s->model;
    rs_dist *D = s->d;
    size_t d = (size_t)m->cfg.dim, n = (size_t)s->n_eval, own = (size_t)(m->rows_hi - m->rows_lo);
    float *normed = NULL;
    if (m->cfg.l2norm && !(normed = rs_malloc(sizeof(float) * (own ? own : 1) * d)))
        return rs_dist_agree(D, rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory"));
    if (normed) rs_normalise_rows(normed, m->params, own, m->cfg.dim);
    rs_eval_shard sh = {normed ? normed : m->params, m->rows_lo, m->rows_hi, s->states,
                        s->tscores, s->counts, s->counts + n};
    recsys_status st = rs_evaluate_shard_counts(s->ctx, m, s->ds, opts, &sh);
    rs_free(normed);
    if ((st = rs_dist_agree(D, st))) return st;
    double *all = s->counts + 2 * n;
    if ((st = rs_dist_allgather(D, s->counts, sizeof(double) * 2 * n, all))) return st;
    rs_rank_acc acc;
    if ((st = rs_rank_acc_init(s->ctx, &acc, rs_opt_list(opts, RS_OPT_EVAL_KS)))) return st;
    int64_t skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (all[i] < 0) { /* left out on every rank: no negatives to sample */
            skipped++;
            continue;
        }
        double greater = 0, ties = 0;
        for (int r = 0; r < D->size; r++) {
            greater += all[(size_t)r * 2 * n + i];
            ties += all[(size_t)r * 2 * n + n + i];
        }
        rs_rank_acc_add(&acc, greater + 0.5 * ties);
    }
    if (acc.users == 0)
        return rs_error(s->ctx, RECSYS_E_INVALID,
                        "nothing to evaluate: all %lld users with a held-out target interacted "
                        "with every item", (long long)skipped);
    return rs_metrics_from_acc(s->ctx, &acc, out);
}

recsys_status rs_evaluate_sharded(recsys_ctx *ctx, const recsys_model *model,
                                  const recsys_dataset *ds, const recsys_opts *opts, rs_dist *d,
                                  recsys_metrics **out)
{
    if (model->cfg.n_items != ds->n_items)
        return rs_error(ctx, RECSYS_E_INVALID, "model has %d items but the dataset has %d",
                        model->cfg.n_items, ds->n_items);
    shard_eval s = {.ctx = ctx, .model = model, .ds = ds, .d = d};
    s.test_split = rs_opt_is(opts, RS_OPT_EVAL_SPLIT, "test");
    s.B = (int)rs_opt_int(opts, RS_OPT_EVAL_BATCH_SIZE);
    for (int64_t u = 0; u < ds->n_users; u++) s.n_eval += rs_user_evaluated(ds, u);
    recsys_status st = s.n_eval ? RECSYS_OK
                                : rs_error(ctx, RECSYS_E_INVALID,
                                           "nothing to evaluate: no user has a held-out target");
    if (!st) st = se_init(&s);
    st = rs_dist_agree(d, st);
    if (!st) { /* every rank the same number of rounds */
        int64_t most = (s.n_eval + d->size - 1) / d->size, rounds = (most + s.B - 1) / s.B;
        recsys_status local = RECSYS_OK;
        for (int64_t k = 0; k < rounds && !st; k++) {
            int64_t a = s.lo + k * s.B, left = s.hi - a;
            int rows = left <= 0 ? 0 : left < s.B ? (int)left : s.B;
            st = se_states(&s, a, rows, &local);
        }
        if (!st) st = rs_dist_agree(d, local);
    }
    if (!st) st = se_share(&s, s.states, (size_t)model->cfg.dim);
    if (!st) st = se_share(&s, s.tscores, 1);
    if (!st) st = se_rank(&s, opts, out);
    se_free(&s);
    return st;
}

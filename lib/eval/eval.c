/* Evaluation (docs/MODELS.md §1): the user state is the encoder output at the
 * last input position; the held-out item is ranked either against sampled
 * unseen items or against the whole catalogue (streamed in item chunks, so
 * memory grows with the catalogue, not catalogue x users). */
#include "models/batch.h"
#include "eval/metrics.h"
#include "models/model.h"
#include "models/model_meta.h"
#include "eval/eval_dist.h"
#include "eval/eval_hook.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_CHUNK 8192

typedef struct eval_state {
    recsys_ctx *ctx;
    const recsys_dataset *ds;
    int d, L, full, n_neg, exclude_history, test_split;
    uint64_t seed;
    const float *table;       /* (n_items+1) x d scoring table, or NULL: popularity */
    const float *F;           /* rows x L x d encoder outputs */
    const int64_t *users;     /* users of the current batch */
    float *target_score;      /* per row */
    double *greater, *ties;   /* per row: candidates scoring above / equal to the target */
    const float *chunk_scores; /* rows x chunk_len, items chunk_first.. */
    int32_t chunk_first, chunk_len;
    uint32_t *seen;           /* n_threads x (n_items+1) stamps */
    uint32_t *stamp;          /* per thread */
    rs_rank_acc *acc;         /* one: ranks are added in user order (deterministic) */
    int64_t *bad_user;        /* per thread: 1 + first user with a non-finite score, or 0 */
    int64_t *no_negatives;    /* per thread: users who interacted with every item */
    double *ranks;            /* rs_evaluate_ranks: per user of the range, or NULL */
    int64_t rank_base;        /* index in ranks of the batch's row 0 */
    double *user_rank;        /* n_users: 0-based rank of each user's target, or NULL */
    int64_t t_lo, t_hi;       /* the table holds items [t_lo, t_hi) (sharded: a rank's rows) */
    const rs_eval_shard *sh;  /* sharded evaluation's counting pass, or NULL */
    const float *given_ts;    /* sharded: the batch's target scores */
} eval_state;

/* A user's 0-based rank: into the thread's accumulator, or into ranks[]. */
static void put_rank(eval_state *e, int thread, int r, double rank)
{
    if (e->ranks) e->ranks[e->rank_base + r] = rank;
    else rs_rank_acc_add(&e->acc[thread], rank);
}

static int64_t input_len(const eval_state *e, int64_t u)
{
    return rs_eval_input_len(e->ds, e->test_split, u);
}

static const float *user_state(const eval_state *e, int r)
{
    return e->F + ((size_t)r * e->L + (size_t)(e->L - 1)) * e->d;
}

static float score_item(const eval_state *e, int r, int32_t item)
{
    if (!e->table) return (float)e->ds->item_count[item];
    return e->ctx->kern.dot((size_t)e->d, user_state(e, r),
                            e->table + (size_t)(item - e->t_lo) * e->d);
}

/* Stamp user u's items in this thread's `seen` array (a fresh stamp value
 * per user avoids clearing the array). */
static uint32_t *mark_history(eval_state *e, int thread, int64_t u, int64_t n_items_marked,
                              int64_t *distinct)
{
    uint32_t *seen = e->seen + (size_t)thread * ((size_t)e->ds->n_items + 1);
    if (++e->stamp[thread] == 0) {
        memset(seen, 0, sizeof *seen * ((size_t)e->ds->n_items + 1));
        e->stamp[thread] = 1;
    }
    uint32_t stamp = e->stamp[thread];
    const int32_t *it = e->ds->items + e->ds->offsets[u];
    int64_t n = 0;
    for (int64_t k = 0; k < n_items_marked; k++) {
        n += seen[it[k]] != stamp;
        seen[it[k]] = stamp;
    }
    if (distinct) *distinct = n;
    return seen;
}

static void flag_bad(eval_state *e, int thread, int64_t u)
{
    if (!e->bad_user[thread]) e->bad_user[thread] = u + 1;
}

/* A uniform draw among the items the user never interacted with (there are
 * `unseen` > 0 of them): rejection first, then the k-th unseen item. */
static int32_t draw_unseen(rs_rng *rng, const uint32_t *seen, uint32_t stamp, int32_t n,
                           int64_t unseen)
{
    for (int tries = 0; tries < 64; tries++) {
        int32_t it = 1 + (int32_t)rs_rng_below(rng, (uint64_t)n);
        if (seen[it] != stamp) return it;
    }
    int64_t k = (int64_t)rs_rng_below(rng, (uint64_t)unseen);
    for (int32_t it = 1; it <= n; it++)
        if (seen[it] != stamp && k-- == 0) return it;
    return 0; /* unreachable: unseen counts the items left */
}

static void sampled_task(void *arg, int r, int thread)
{
    eval_state *e = arg;
    int64_t u = e->users[r];
    int64_t n_in = input_len(e, u);
    int32_t target = e->ds->items[e->ds->offsets[u] + n_in];
    int64_t distinct = 0;
    e->greater[r] = -1; /* no rank unless one is found below */
    uint32_t *seen = mark_history(e, thread, u, rs_user_len(e->ds, u), &distinct);
    uint32_t stamp = e->stamp[thread];
    int32_t n = e->ds->n_items;
    int64_t unseen = (int64_t)n - distinct;
    if (unseen <= 0) { /* nothing to sample: the user is left out, and counted */
        e->no_negatives[thread]++;
        return;
    }
    rs_rng rng;
    rs_rng_seed(&rng, rs_hash64(e->seed, (uint64_t)u));
    float ts = e->given_ts ? e->given_ts[r] : score_item(e, r, target);
    if (!isfinite(ts)) { flag_bad(e, thread, u); return; }
    double greater = 0, ties = 0;
    for (int k = 0; k < e->n_neg; k++) {
        int32_t it = draw_unseen(&rng, seen, stamp, n, unseen);
        if (it < e->t_lo || it >= e->t_hi) continue; /* another rank's row */
        float s = score_item(e, r, it);
        if (!isfinite(s)) { flag_bad(e, thread, u); return; }
        greater += s > ts;
        ties += s == ts;
    }
    e->greater[r] = greater;
    e->ties[r] = ties;
}

static void target_task(void *arg, int r, int thread)
{
    eval_state *e = arg;
    int64_t u = e->users[r];
    int32_t target = e->ds->items[e->ds->offsets[u] + input_len(e, u)];
    e->target_score[r] = e->given_ts ? e->given_ts[r] : score_item(e, r, target);
    e->greater[r] = e->ties[r] = 0;
    if (!isfinite(e->target_score[r])) flag_bad(e, thread, u);
}

static void chunk_task(void *arg, int r, int thread)
{
    eval_state *e = arg;
    int64_t u = e->users[r];
    int64_t n_in = input_len(e, u);
    int32_t target = e->ds->items[e->ds->offsets[u] + n_in];
    uint32_t *seen = NULL, stamp = 0;
    if (e->exclude_history) {
        seen = mark_history(e, thread, u, n_in, NULL);
        stamp = e->stamp[thread];
    }
    float ts = e->target_score[r];
    double greater = 0, ties = 0;
    for (int32_t c = 0; c < e->chunk_len; c++) {
        int32_t it = e->chunk_first + c;
        if (it == target || (seen && seen[it] == stamp)) continue;
        float s = e->table ? e->chunk_scores[(size_t)r * e->chunk_len + c]
                           : (float)e->ds->item_count[it];
        if (!isfinite(s)) { flag_bad(e, thread, u); break; }
        greater += s > ts;
        ties += s == ts;
    }
    e->greater[r] += greater;
    e->ties[r] += ties;
}

/* The ranks of a batch go into the accumulator in row (= user) order, so
 * the metrics do not depend on which thread ranked which user. */
static void add_ranks(eval_state *e, int rows)
{
    if (e->sh) { /* sharded: this rank's counts, summed over ranks later */
        for (int r = 0; r < rows; r++) {
            e->sh->greater[e->rank_base + r] = e->greater[r];
            e->sh->ties[e->rank_base + r] = e->greater[r] >= 0 ? e->ties[r] : 0;
        }
        return;
    }
    for (int r = 0; r < rows; r++)
        if (e->greater[r] >= 0) {
            put_rank(e, 0, r, e->greater[r] + 0.5 * e->ties[r]);
            if (e->user_rank) e->user_rank[e->users[r]] = e->greater[r] + 0.5 * e->ties[r];
        }
}

/* Rank the targets of one batch of users whose states are in e->F. */
static void rank_batch(eval_state *e, int rows, float *chunk_buf)
{
    recsys_ctx *ctx = e->ctx;
    if (!e->full) {
        rs_pool_run(ctx->pool, rows, sampled_task, e);
        add_ranks(e, rows);
        return;
    }
    rs_pool_run(ctx->pool, rows, target_task, e);
    int32_t end = (int32_t)e->t_hi; /* items [1, end), or a rank's rows */
    for (int32_t first = e->t_lo > 1 ? (int32_t)e->t_lo : 1; first < end; first += ITEM_CHUNK) {
        e->chunk_first = first;
        e->chunk_len = end - first < ITEM_CHUNK ? end - first : ITEM_CHUNK;
        if (e->table) {
            /* scores[r][c] = F_r · table[first + c]: F rows are L*d apart */
            rs_gemm(ctx, 0, 1, rows, e->chunk_len, e->d, 1.0f, e->F + (size_t)(e->L - 1) * e->d,
                    e->L * e->d, e->table + (size_t)(first - e->t_lo) * e->d, e->d, 0.0f,
                    chunk_buf, e->chunk_len);
            e->chunk_scores = chunk_buf;
        }
        rs_pool_run(ctx->pool, rows, chunk_task, e);
    }
    add_ranks(e, rows);
}

/* ranks == NULL: metrics of all evaluated users into *out. Otherwise
 * ranks[i] <- the rank of evaluated user first + i, i < count (NaN when the
 * user is left out), and *out is untouched. */
static recsys_status evaluate(recsys_ctx *ctx, const recsys_model *model,
                              const recsys_dataset *ds, const recsys_opts *opts,
                              const rs_eval_hook *eh, recsys_metrics **out, int64_t first,
                              int64_t count, double *ranks, const rs_eval_shard *sh)
{
    if (!ctx) return RS_BAD_ARGS();
    if (!ds || (!out && !ranks && !sh))
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_evaluate: NULL argument");
    if (out) *out = NULL;
    recsys_status whole = sh ? RECSYS_OK : rs_model_whole(ctx, model, "evaluation");
    if (whole) return whole;
    if (model && model->cfg.n_items != ds->n_items)
        return rs_error(ctx, RECSYS_E_INVALID, "model has %d items but the dataset has %d",
                        model->cfg.n_items, ds->n_items);
    eval_state e = {0};
    e.ctx = ctx;
    e.ds = ds;
    e.full = rs_opt_is(opts, RS_OPT_EVAL_PROTOCOL, "full");
    e.test_split = rs_opt_is(opts, RS_OPT_EVAL_SPLIT, "test");
    e.n_neg = (int)rs_opt_int(opts, RS_OPT_EVAL_NEGATIVES);
    e.exclude_history = rs_opt_bool(opts, RS_OPT_EVAL_EXCLUDE_HISTORY);
    e.seed = (uint64_t)rs_opt_int(opts, RS_OPT_TRAINER_SEED) ^ 0x5eed0e7a1ULL;
    e.user_rank = eh ? eh->user_rank : NULL;
    e.sh = sh;
    e.t_lo = sh ? sh->lo : 0;
    e.t_hi = sh ? sh->hi : (int64_t)ds->n_items + 1;
    if (e.user_rank)
        for (int64_t u = 0; u < ds->n_users; u++) e.user_rank[u] = NAN;
    rs_rank_acc proto;
    recsys_status st = rs_rank_acc_init(ctx, &proto, rs_opt_list(opts, RS_OPT_EVAL_KS));
    if (st) return st;

    int64_t n_eval = 0;
    for (int64_t u = 0; u < ds->n_users; u++) n_eval += rs_user_evaluated(ds, u);
    if (n_eval == 0)
        return rs_error(ctx, RECSYS_E_INVALID,
                        "nothing to evaluate: no user has enough events for a held-out target "
                        "(data.split=%s needs %d or more per user)",
                        ds->holdout == 1 ? "last" : "loo", ds->holdout == 1 ? 3 : 4);
    int nt = ctx->n_threads;
    int B = (int)rs_opt_int(opts, RS_OPT_EVAL_BATCH_SIZE);
    if (B > n_eval) B = (int)n_eval; /* buffers sized by the data, not only the config */
    const rs_model_config *cfg = model ? &model->cfg : NULL;
    e.d = cfg ? cfg->dim : 1;
    e.L = cfg ? cfg->max_len : 1;
    {
        double R = (double)B * e.L, d = e.d, blocks = cfg ? cfg->blocks : 0;
        double bytes = 4.0 * nt * ((double)ds->n_items + 1) + 24.0 * B +
                       (cfg ? 4.0 * (R * d * (2 + blocks * 10) + (e.full ? B * 8192.0 : 0) +
                                     (cfg->l2norm ? ((double)ds->n_items + 1) * d : 0))
                            : 0);
        if ((st = rs_check_memory(ctx, opts, bytes, "evaluation (eval.batch_size, model size)")))
            return st;
    }
    rs_batch_buf bb = {0};
    rs_workspace *ws = NULL;
    float *owned_table = NULL, *chunk_buf = NULL, *F = NULL, *last = NULL;
    int64_t *users = malloc(sizeof(int64_t) * (size_t)B);
    e.seen = calloc((size_t)nt * ((size_t)ds->n_items + 1), sizeof *e.seen);
    e.stamp = calloc((size_t)nt, sizeof *e.stamp);
    e.acc = calloc(1, sizeof *e.acc);
    e.bad_user = calloc((size_t)nt, sizeof *e.bad_user);
    e.no_negatives = calloc((size_t)nt, sizeof *e.no_negatives);
    e.target_score = malloc(sizeof(float) * (size_t)B);
    e.greater = malloc(sizeof(double) * (size_t)B);
    e.ties = malloc(sizeof(double) * (size_t)B);
    if (!users || !e.seen || !e.stamp || !e.acc || !e.target_score || !e.greater || !e.ties ||
        !e.bad_user || !e.no_negatives) {
        st = rs_error(ctx, RECSYS_E_NOMEM, "out of memory for evaluation");
        goto done;
    }
    e.acc[0] = proto;
    if (sh) { /* the states and the shard's rows are given */
        e.L = 1;
        e.table = sh->rows;
        if (e.full && !(chunk_buf = rs_malloc(sizeof(float) * (size_t)B * ITEM_CHUNK))) {
            st = rs_error(ctx, RECSYS_E_NOMEM, "out of memory for evaluation buffers");
            goto done;
        }
    } else if (model) {
        st = rs_batch_buf_init(ctx, &bb, B, e.L, 0, ds->times != NULL);
        if (st) goto done;
        ws = model->ops->ws_new(cfg, B);
        F = rs_calloc((size_t)B * e.L, (size_t)e.d * sizeof(float));
        /* Only the last position is ranked: the last-position forward
         * (lib/models/last_block.c), as sessions use. */
        last = rs_malloc(sizeof(float) * rs_last_scratch_floats(cfg, B));
        const float *table = rs_model_items(model);
        if (cfg->l2norm) table = owned_table = rs_normalised_table(table, ds->n_items, e.d);
        e.table = table;
        if (e.full) chunk_buf = rs_malloc(sizeof(float) * (size_t)B * ITEM_CHUNK);
        if (!ws || !F || !last || !table || (e.full && !chunk_buf)) {
            st = rs_error(ctx, RECSYS_E_NOMEM, "out of memory for evaluation buffers");
            goto done;
        }
        e.F = F;
    }
    e.users = users;
    e.ranks = ranks;
    if (ranks)
        for (int64_t i = 0; i < count; i++) ranks[i] = NAN;
    int rows = 0;
    int64_t idx = -1; /* index of u among the evaluated users */
    for (int64_t u = 0; u <= ds->n_users; u++) {
        if (u < ds->n_users) {
            if (!rs_user_evaluated(ds, u)) continue;
            idx++;
            if (ranks && (idx < first || idx >= first + count)) continue;
            if (rows == 0) e.rank_base = idx - first;
            users[rows] = u;
            if (model && !sh) rs_batch_fill_input_row(&bb, rows, ds, u, input_len(&e, u));
            rows++;
        }
        if (rows == B || (u == ds->n_users && rows > 0)) {
            if (sh) {
                e.F = sh->states + (size_t)e.rank_base * e.d;
                e.given_ts = sh->tscores + e.rank_base;
            } else if (model) {
                rs_batch b = rs_batch_view(&bb, rows, 0, 0);
                b.last_scratch = last;
                if (eh && eh->before &&
                    (st = eh->before(eh->self, ws, F, &bb, &b, users, rows)))
                    goto done;
                st = model->ops->forward(ctx, cfg, model->params, ws, &b, F);
                if (st) goto done;
            }
            rank_batch(&e, rows, chunk_buf);
            rows = 0;
        }
    }
    int64_t bad = 0, skipped = 0;
    for (int i = 0; i < nt; i++) {
        if (!bad && e.bad_user[i]) bad = e.bad_user[i];
        skipped += e.no_negatives[i];
    }
    if (bad) {
        st = rs_error(ctx, RECSYS_E_NUMERIC,
                      "the model scores items as NaN or infinity (first for user '%s'): its "
                      "weights are too large or corrupted, so there are no metrics",
                      ds->user_names[bad - 1]);
        goto done;
    }
    if (ranks || sh) goto done; /* the caller merges */
    if (skipped)
        rs_log(ctx, RECSYS_LOG_WARN, "%lld users interacted with every item: no negatives to "
               "sample, left out of the sampled evaluation", (long long)skipped);
    if (e.acc[0].users == 0) {
        st = rs_error(ctx, RECSYS_E_INVALID,
                      "nothing to evaluate: all %lld users with a held-out target interacted "
                      "with every item, so no negatives can be sampled (use eval.protocol=full)",
                      (long long)skipped);
        goto done;
    }
    st = rs_metrics_from_acc(ctx, &e.acc[0], out);
done:
    if (ws) model->ops->ws_free(ws);
    rs_batch_buf_free(&bb);
    rs_free(owned_table);
    rs_free(chunk_buf);
    rs_free(F);
    rs_free(last);
    free(users);
    free(e.seen);
    free(e.stamp);
    free(e.acc);
    free(e.bad_user);
    free(e.no_negatives);
    free(e.target_score);
    free(e.greater);
    free(e.ties);
    return st;
}

recsys_status recsys_evaluate(recsys_ctx *ctx, const recsys_model *model,
                              const recsys_dataset *ds, const recsys_opts *opts,
                              recsys_metrics **out)
{
    rs_enter(ctx);
    if (ctx && !model) return rs_error(ctx, RECSYS_E_INVALID, "recsys_evaluate: model is NULL");
    return evaluate(ctx, model, ds, opts, NULL, out, 0, 0, NULL, NULL);
}

recsys_status rs_evaluate_with(recsys_ctx *ctx, const recsys_model *model,
                               const recsys_dataset *ds, const recsys_opts *opts,
                               const rs_eval_hook *eh, recsys_metrics **out)
{
    return evaluate(ctx, model, ds, opts, eh, out, 0, 0, NULL, NULL);
}

recsys_status recsys_evaluate_popularity(recsys_ctx *ctx, const recsys_dataset *ds,
                                         const recsys_opts *opts, recsys_metrics **out)
{
    rs_enter(ctx);
    return evaluate(ctx, NULL, ds, opts, NULL, out, 0, 0, NULL, NULL);
}

recsys_status rs_evaluate_shard_counts(recsys_ctx *ctx, const recsys_model *model,
                                       const recsys_dataset *ds, const recsys_opts *opts,
                                       const rs_eval_shard *sh)
{
    return evaluate(ctx, model, ds, opts, NULL, NULL, 0, 0, NULL, sh);
}

recsys_status rs_evaluate_ranks(recsys_ctx *ctx, const recsys_model *model,
                                const recsys_dataset *ds, const recsys_opts *opts, int64_t first,
                                int64_t count, double *ranks)
{
    return evaluate(ctx, model, ds, opts, NULL, NULL, first, count, ranks, NULL);
}

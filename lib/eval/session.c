/* recsys_session: per-thread scratch for scoring one history at a time. */
#include "models/batch.h"
#include "models/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct recsys_session {
    recsys_ctx *ctx;
    recsys_model *model;
    rs_workspace *ws;
    rs_batch_buf bb;
    float *F;
    float *norm; /* per item 1/‖e‖ when the model scores with cosine, else NULL */
};

void recsys_session_free(recsys_session *s)
{
    if (!s) return;
    if (s->ws) s->model->ops->ws_free(s->ws);
    rs_batch_buf_free(&s->bb);
    rs_free(s->F);
    rs_free(s->norm);
    recsys_model_free(s->model);
    free(s);
}

recsys_status recsys_session_new(recsys_ctx *ctx, recsys_model *model, recsys_session **out)
{
    if (!ctx) return RECSYS_E_INVALID;
    if (!model || !out) return rs_error(ctx, RECSYS_E_INVALID, "recsys_session_new: NULL argument");
    *out = NULL;
    recsys_session *s = calloc(1, sizeof *s);
    if (!s) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    s->ctx = ctx;
    s->model = rs_model_ref(model);
    const rs_model_config *cfg = &model->cfg;
    recsys_status st = rs_batch_buf_init(ctx, &s->bb, 1, cfg->max_len, 0, cfg->time_bias);
    if (!st) {
        s->ws = model->ops->ws_new(cfg, 1);
        s->F = rs_calloc((size_t)cfg->max_len, (size_t)cfg->dim * sizeof(float));
        if (cfg->l2norm) s->norm = rs_calloc((size_t)cfg->n_items + 1, sizeof(float));
        if (!s->ws || !s->F || (cfg->l2norm && !s->norm))
            st = rs_error(ctx, RECSYS_E_NOMEM, "out of memory for a session");
    }
    if (!st && s->norm) {
        const float *t = rs_model_items(model);
        for (int32_t i = 1; i <= cfg->n_items; i++) {
            float n2 = ctx->kern.dot((size_t)cfg->dim, t + (size_t)i * cfg->dim,
                                     t + (size_t)i * cfg->dim);
            s->norm[i] = 1.0f / fmaxf(sqrtf(n2), 1e-6f);
        }
    }
    if (st) { recsys_session_free(s); return st; }
    *out = s;
    return RECSYS_OK;
}

static recsys_status check_history(recsys_session *s, const int32_t *history, size_t n)
{
    if (n > 0 && !history)
        return rs_error(s->ctx, RECSYS_E_INVALID, "history is NULL but n_history is %zu", n);
    for (size_t i = 0; i < n; i++)
        if (history[i] < 1 || history[i] > s->model->cfg.n_items)
            return rs_error(s->ctx, RECSYS_E_NOT_FOUND,
                            "history[%zu] = %d is not an item id (1..%d)", i, history[i],
                            s->model->cfg.n_items);
    return RECSYS_OK;
}

/* Encode the history; all scores into out[1..n_items], out[0] = -inf. */
static recsys_status score_all(recsys_session *s, const int32_t *history, size_t n, float *out)
{
    const recsys_model *m = s->model;
    const rs_model_config *cfg = &m->cfg;
    rs_batch_fill_history_row(&s->bb, 0, history, n);
    rs_batch b = rs_batch_view(&s->bb, 1, 0, 0);
    recsys_status st = m->ops->forward(s->ctx, cfg, m->params, s->ws, &b, s->F);
    if (st) return st;
    const float *state = s->F + (size_t)(cfg->max_len - 1) * cfg->dim;
    /* scores[1..n] = items[1..n] · state, as one GEMM row */
    rs_gemm(s->ctx, 0, 1, 1, cfg->n_items, cfg->dim, 1.0f, state, cfg->dim,
            rs_model_items(m) + cfg->dim, cfg->dim, 0.0f, out + 1, cfg->n_items);
    if (s->norm)
        for (int32_t i = 1; i <= cfg->n_items; i++) out[i] *= s->norm[i];
    out[0] = -INFINITY;
    for (int32_t i = 1; i <= cfg->n_items; i++)
        if (!isfinite(out[i]))
            return rs_error(s->ctx, RECSYS_E_NUMERIC,
                            "the score of item %d is %s: the model's weights are too large or "
                            "corrupted", i, isnan(out[i]) ? "NaN" : "infinite");
    return RECSYS_OK;
}

recsys_status recsys_session_score(recsys_session *s, const int32_t *history, size_t n_history,
                                   float *scores, size_t n_scores)
{
    if (!s) return RECSYS_E_INVALID;
    if (!scores || n_scores < (size_t)s->model->cfg.n_items + 1)
        return rs_error(s->ctx, RECSYS_E_INVALID, "scores must hold n_items+1 = %d floats",
                        s->model->cfg.n_items + 1);
    recsys_status st = check_history(s, history, n_history);
    return st ? st : score_all(s, history, n_history, scores);
}

/* Min-heap of (score, item) keeping the k best; ties prefer the lower id. */
typedef struct scored { float s; int32_t item; } scored;

static int worse(scored a, scored b) { return a.s < b.s || (a.s == b.s && a.item > b.item); }

static void sift_down(scored *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(h[l], h[m])) m = l;
        if (r < n && worse(h[r], h[m])) m = r;
        if (m == i) return;
        scored t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

recsys_status recsys_session_topk(recsys_session *s, const int32_t *history, size_t n_history,
                                  int k, int exclude_history, int32_t *items, float *scores)
{
    if (!s) return RECSYS_E_INVALID;
    int32_t n = s->model->cfg.n_items;
    if (k < 1 || k > n || !items)
        return rs_error(s->ctx, RECSYS_E_INVALID, "k must be in 1..%d and items non-NULL", n);
    recsys_status st = check_history(s, history, n_history);
    if (st) return st;
    float *all = rs_malloc(sizeof(float) * ((size_t)n + 1));
    scored *heap = malloc(sizeof *heap * (size_t)k);
    if (!all || !heap) {
        rs_free(all);
        free(heap);
        return rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory");
    }
    st = score_all(s, history, n_history, all);
    if (!st) {
        if (exclude_history)
            for (size_t i = 0; i < n_history; i++) all[history[i]] = -INFINITY;
        int size = 0;
        for (int32_t it = 1; it <= n; it++) {
            scored c = {all[it], it};
            if (size < k) {
                heap[size++] = c;
                if (size == k)
                    for (int i = k / 2 - 1; i >= 0; i--) sift_down(heap, k, i);
            } else if (worse(heap[0], c)) {
                heap[0] = c;
                sift_down(heap, k, 0);
            }
        }
        if (size < k)
            for (int i = size / 2 - 1; i >= 0; i--) sift_down(heap, size, i);
        /* pop the worst first into the back: best first in the output */
        for (int i = size - 1; i >= 0; i--) {
            items[i] = heap[0].item;
            if (scores) scores[i] = heap[0].s;
            heap[0] = heap[i];
            sift_down(heap, i, 0);
        }
    }
    rs_free(all);
    free(heap);
    return st;
}

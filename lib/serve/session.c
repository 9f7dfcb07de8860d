/* recsys_session: per-thread scratch for scoring requests. One path serves
 * every scoring call: requests are filled into left-padded rows exactly as
 * evaluation fills a user's input (items and times), encoded in passes of
 * up to SESSION_ROWS, scored against the model's scoring table in chunks of
 * SCORE_CHUNK items with one matrix product per chunk (the same shape
 * recsys_evaluate uses; one request: the panel dot kernel, same bits), and
 * reduced to top-k per row. A single request is a batch of one, and a
 * batch on several threads runs as single-threaded lanes (see struct
 * lane), so batch and single results agree bit for bit.
 * Requests may carry adapters: a batch's rows then run one forward with the
 * LoRA hook giving each row its own adapter (rows of one adapter shape per
 * forward; a batch mixing shapes is split where the shape changes). A BANK
 * adapter's row first runs the base model over its gate window; the gate
 * mixes the bank into that row's LoRA, as recsys_evaluate_adapters does. */
#include "serve/serve.h"
#include "adapters/hook.h"
#include "models/extend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_ROWS 64     /* rows encoded per forward, at most */
#define ROWS_PER_THREAD 16  /* a batch's rows per forward and pool thread: a pass's
                             * activations stay in the caches (64 rows on one
                             * thread ran 20 % slower than 16) */
#define SCORE_CHUNK 8192    /* items per scoring GEMM (= eval.c ITEM_CHUNK; a multiple of RS_PANEL) */
_Static_assert(SCORE_CHUNK % RS_PANEL == 0, "chunks start at a panel");

typedef struct scored { float s; int32_t item; } scored;

struct recsys_session {
    recsys_ctx *ctx;
    recsys_model *model;
    rs_score_table *table;
    int rows;               /* capacity of ws / bb / F (grown on demand) */
    rs_workspace *ws;
    rs_batch_buf bb;
    float *F;               /* rows x L x d (only slot L-1 of each row is written) */
    float *last;            /* rs_last_scratch_floats(cfg, rows): the last-position forward */
    float *chunk;           /* rows x SCORE_CHUNK */
    scored *heaps;          /* heap_rows x heap_k */
    int heap_k, heap_rows;
    float *all;             /* n_items+1, for candidate scores */
    int last_only;          /* 1: the last-position forward (default; 0 for tests) */
    recsys_adapter shape;   /* the hook's adapter shape (params NULL), when hooked */
    rs_lora_hook hook;      /* for SESSION_ROWS rows; hook.a NULL until first needed */
    float *mixed;           /* SESSION_ROWS x shape.P: BANK rows' mixed LoRAs */
    struct lane *lanes;     /* a batch's single-threaded sessions, one per pool thread */
    int n_lanes;
    float *extend;          /* rs_extend_scratch_floats: user states' cached encoding */
    uint64_t *seen;         /* per pool thread, a bit per item: a row's excluded ids */
    size_t seen_words;      /* words per thread */
    int seen_threads;
};

/* A batch on a ctx with T > 1 threads runs as T single-threaded sessions
 * ("lanes") over contiguous slices of its requests, one pool task each: a
 * lane's passes stay in its core's caches and its layers never wait for
 * the other threads (splitting every layer of a pass over the pool gained
 * 1.1-1.5x on two threads). A lane's ctx has the session ctx's kernel
 * table, so every request gets the bits of a single call. */
typedef struct lane {
    recsys_ctx *ctx;
    recsys_session *s;
    recsys_status st;
} lane;

static void release_buffers(recsys_session *s)
{
    if (s->ws) s->model->ops->ws_free(s->ws);
    s->ws = NULL;
    rs_batch_buf_free(&s->bb);
    rs_free(s->F);
    rs_free(s->chunk);
    rs_free(s->last);
    s->F = s->chunk = s->last = NULL;
    s->rows = 0;
}

void recsys_session_free(recsys_session *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_lanes; i++) {
        recsys_session_free(s->lanes[i].s);
        recsys_ctx_free(s->lanes[i].ctx);
    }
    free(s->lanes);
    release_buffers(s);
    rs_lora_hook_release(&s->hook);
    rs_free(s->mixed);
    free(s->heaps);
    rs_free(s->all);
    rs_free(s->extend);
    rs_free(s->seen);
    rs_score_table_unref(s->table);
    recsys_model_free(s->model);
    free(s);
}

/* Buffers for batches of `rows` rows (kept for later calls). */
static recsys_status reserve_rows(recsys_session *s, int rows)
{
    if (rows <= s->rows) return RECSYS_OK;
    release_buffers(s);
    const rs_model_config *cfg = &s->model->cfg;
    recsys_status st = rs_batch_buf_init(s->ctx, &s->bb, rows, cfg->max_len, 0, cfg->time_bias);
    if (st) return st;
    s->ws = s->model->ops->ws_new(cfg, rows);
    s->F = rs_calloc((size_t)rows * cfg->max_len, (size_t)cfg->dim * sizeof(float));
    int chunk = cfg->n_items < SCORE_CHUNK ? cfg->n_items : SCORE_CHUNK;
    s->chunk = rs_malloc(sizeof(float) * (size_t)rows * chunk);
    s->last = rs_malloc(sizeof(float) * rs_last_scratch_floats(cfg, rows));
    if (!s->ws || !s->F || !s->chunk || !s->last) {
        release_buffers(s);
        return rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory for a session batch of %d rows",
                        rows);
    }
    s->rows = rows;
    return RECSYS_OK;
}

static recsys_status reserve_heaps(recsys_session *s, int rows, int k)
{
    if (k <= s->heap_k && rows <= s->heap_rows) return RECSYS_OK;
    int kk = k > s->heap_k ? k : s->heap_k;
    int rr = rows > s->heap_rows ? rows : s->heap_rows;
    scored *h = realloc(s->heaps, sizeof *h * (size_t)kk * (size_t)rr);
    if (!h) return rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory for top-%d lists", k);
    s->heaps = h;
    s->heap_k = kk;
    s->heap_rows = rr;
    return RECSYS_OK;
}

recsys_status recsys_session_new(recsys_ctx *ctx, recsys_model *model, recsys_session **out)
{
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    if (!model || !out) return rs_error(ctx, RECSYS_E_INVALID, "recsys_session_new: NULL argument");
    *out = NULL;
    recsys_session *s = calloc(1, sizeof *s);
    if (!s) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    s->ctx = ctx;
    s->model = rs_model_ref(model);
    s->last_only = 1;
    recsys_status st = rs_score_table_get(ctx, model, &s->table);
    if (!st) st = reserve_rows(s, 1);
    if (st) { recsys_session_free(s); return st; }
    *out = s;
    return RECSYS_OK;
}

/* --------------------------------------------------------- validation */

/* A field of a request the caller's struct may not have. */
#define REQ_HAS(r, field) \
    ((r)->struct_size >= offsetof(recsys_request, field) + sizeof((r)->field))

static recsys_status check_ids(recsys_session *s, size_t ri, const char *what, const int32_t *ids,
                               size_t n)
{
    int32_t max = s->model->cfg.n_items;
    if (n > 0 && !ids)
        return rs_error(s->ctx, RECSYS_E_INVALID, "request %zu: %s is NULL but its count is %zu",
                        ri, what, n);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 1 || ids[i] > max)
            return rs_error(s->ctx, RECSYS_E_NOT_FOUND,
                            "request %zu: %s[%zu] = %d is not an item id (1..%d)", ri, what, i,
                            ids[i], max);
    return RECSYS_OK;
}

/* An adapter a request may carry: one of this model's. */
static recsys_status check_adapter(recsys_session *s, size_t ri, const recsys_adapter *a)
{
    if (!a) return RECSYS_OK;
    if (!a->model || a->model->params != s->model->params)
        return rs_error(s->ctx, RECSYS_E_INVALID,
                        "request %zu: the adapter belongs to another model (adapters are made "
                        "for one model object: create or load it with the session's model)", ri);
    if (a->kind != RECSYS_ADAPTER_USER && a->kind != RECSYS_ADAPTER_SHARED &&
        a->kind != RECSYS_ADAPTER_BANK)
        return rs_error(s->ctx, RECSYS_E_INVALID, "request %zu: unknown adapter kind %d", ri,
                        a->kind);
    return RECSYS_OK;
}

/* 1 when a and b have the same LoRA layout (one hook serves both). */
static int same_shape(const recsys_adapter *a, const recsys_adapter *b)
{
    return a->rank == b->rank && a->scale == b->scale && a->targets == b->targets &&
           a->n_sites == b->n_sites && a->P == b->P;
}

/* A request copied into the library's layout (absent fields zero). */
static recsys_status read_request(recsys_session *s, size_t ri, const recsys_request *in,
                                  recsys_request *r, int need_k)
{
    if (!in || in->struct_size < offsetof(recsys_request, k) + sizeof(int))
        return rs_error(s->ctx, RECSYS_E_INVALID, "request %zu: NULL or struct_size too small",
                        ri);
    memset(r, 0, sizeof *r);
    memcpy(r, in, in->struct_size < sizeof *r ? in->struct_size : sizeof *r);
    r->struct_size = sizeof *r;
    if (!REQ_HAS(in, n_candidates)) { r->candidates = NULL; r->n_candidates = 0; }
    if (!REQ_HAS(in, adapter)) r->adapter = NULL;
    recsys_status st = check_adapter(s, ri, r->adapter);
    if (!st) st = check_ids(s, ri, "history", r->history, r->n_history);
    if (!st) st = check_ids(s, ri, "exclude", r->exclude, r->n_exclude);
    if (!st) st = check_ids(s, ri, "candidates", r->candidates, r->n_candidates);
    if (st) return st;
    if (need_k && (r->k < 1 || r->k > s->model->cfg.n_items))
        return rs_error(s->ctx, RECSYS_E_INVALID, "request %zu: k = %d is not in 1..%d", ri, r->k,
                        s->model->cfg.n_items);
    return RECSYS_OK;
}

/* ------------------------------------------------------------ scoring */

/* One request is too little work per layer to split across threads: each
 * layer would be a pool round trip (measured: 2.5x slower on two threads
 * than on one). Its forward and scoring run on the caller's thread, with
 * the ctx's pool detached for the call; results do not depend on the
 * thread count. */
static rs_pool *pool_for_rows(recsys_session *s, int n)
{
    rs_pool *p = s->ctx->pool;
    if (n == 1) s->ctx->pool = NULL;
    return p;
}

/* The hook ready for adapters shaped like a (re-made when the shape changes). */
static recsys_status hook_for(recsys_session *s, const recsys_adapter *a)
{
    if (s->hook.a && same_shape(&s->shape, a)) return RECSYS_OK;
    rs_lora_hook_release(&s->hook);
    rs_free(s->mixed);
    s->shape = *a;
    s->shape.model = s->model;
    s->shape.params = NULL;
    s->shape.n_params = 0;
    s->mixed = rs_malloc(sizeof(float) * SESSION_ROWS * a->P);
    if (!s->mixed) return rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory for adapter rows");
    return rs_lora_hook_init(s->ctx, &s->hook, &s->shape, SESSION_ROWS);
}

/* The LoRA of each BANK row into s->mixed: the base model over the row's
 * last adapter.gate_window events (other rows empty, so free), its
 * last-position state through the bank's gate, the bank mixed by it. */
static recsys_status mix_banks(recsys_session *s, const recsys_request *reqs, int n)
{
    const recsys_model *m = s->model;
    int L = m->cfg.max_len, d = m->cfg.dim;
    for (int r = 0; r < n; r++) {
        const recsys_adapter *a = reqs[r].adapter;
        size_t nh = 0, skip = 0;
        if (a && a->kind == RECSYS_ADAPTER_BANK) {
            nh = reqs[r].n_history;
            if (a->gate_window > 0 && nh > (size_t)a->gate_window) skip = nh - (size_t)a->gate_window;
        }
        const int64_t *t = reqs[r].times;
        rs_batch_fill_history_row(&s->bb, r, nh ? reqs[r].history + skip : NULL,
                                  t && nh ? t + skip : NULL, nh - skip);
    }
    rs_batch b = rs_batch_view(&s->bb, n, 0, 0);
    b.last_scratch = s->last_only ? s->last : NULL;
    rs_pool *p = pool_for_rows(s, n);
    recsys_status st = m->ops->forward(s->ctx, &m->cfg, m->params, s->ws, &b, s->F);
    for (int r = 0; !st && r < n; r++) {
        const recsys_adapter *a = reqs[r].adapter;
        if (!a || a->kind != RECSYS_ADAPTER_BANK) continue;
        rs_gate_ws g;
        if (rs_gate_ws_init(&g, &a->gate, 1)) {
            st = rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory for a bank's gate");
            break;
        }
        const float *h = s->F + ((size_t)r * L + (size_t)(L - 1)) * d;
        rs_gate_fwd(s->ctx, &a->gate, a->params + (size_t)a->K * a->P, &g, 1, h, d, 0, 0, NULL,
                    g.alpha);
        rs_bank_mix(s->ctx, 1, a->K, a->P, g.alpha, a->params, s->mixed + (size_t)r * a->P);
        rs_gate_ws_release(&g);
    }
    s->ctx->pool = p;
    return st;
}

/* Encode rows [0, n) of the batch into s->F (their adapters share a shape).
 * A row with an adapter encodes the same history as without one (up to
 * max_len), as recsys_evaluate_adapters does: adapter.window bounds training
 * cost only. */
static recsys_status encode(recsys_session *s, const recsys_request *reqs, int n)
{
    const recsys_model *m = s->model;
    const recsys_adapter *any = NULL;
    int banks = 0;
    for (int r = 0; r < n; r++) {
        const recsys_adapter *a = reqs[r].adapter;
        if (a && !any) any = a;
        banks |= a && a->kind == RECSYS_ADAPTER_BANK;
    }
    if (any) {
        recsys_status st = hook_for(s, any);
        if (!st && banks) st = mix_banks(s, reqs, n);
        if (st) return st;
    }
    for (int r = 0; r < n; r++) {
        rs_batch_fill_history_row(&s->bb, r, reqs[r].history, reqs[r].times,
                                  reqs[r].n_history);
    }
    rs_batch b = rs_batch_view(&s->bb, n, 0, 0);
    b.last_scratch = s->last_only ? s->last : NULL;
    if (any) {
        for (int r = 0; r < n; r++) {
            const recsys_adapter *a = reqs[r].adapter;
            s->hook.vec[r] = !a ? NULL
                           : a->kind == RECSYS_ADAPTER_BANK ? s->mixed + (size_t)r * a->P
                                                            : a->params;
        }
        b.hook = &s->hook.h;
    }
    rs_pool *p = pool_for_rows(s, n);
    recsys_status st = m->ops->forward(s->ctx, &m->cfg, m->params, s->ws, &b, s->F);
    s->ctx->pool = p;
    return st;
}

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

static void heap_push(scored *h, int *size, int k, scored c)
{
    if (*size < k) {
        int i = (*size)++;
        h[i] = c;
        while (i > 0) { /* sift up */
            int p = (i - 1) / 2;
            if (!worse(h[i], h[p])) break;
            scored t = h[i]; h[i] = h[p]; h[p] = t;
            i = p;
        }
    } else if (worse(h[0], c)) {
        h[0] = c;
        sift_down(h, k, 0);
    }
}

typedef struct topk_job {
    recsys_session *s;
    const recsys_request *reqs;
    int32_t first, len;     /* the item chunk */
    int *sizes;             /* heap fill per row */
} topk_job;

/* The ids a request excludes by list (its history with exclude_history,
 * its exclude list) as bits of a thread's `seen` set, so that each
 * candidate costs one bit test instead of a scan of the lists (a history
 * of 200 scanned for each excluded candidate was a quarter of a call). */
static void mark_excluded(const recsys_request *r, uint64_t *seen, int on)
{
    for (size_t i = 0; r->exclude_history && i < r->n_history; i++) {
        uint32_t it = (uint32_t)r->history[i];
        if (on) seen[it >> 6] |= (uint64_t)1 << (it & 63);
        else seen[it >> 6] = 0;
    }
    for (size_t i = 0; i < r->n_exclude; i++) {
        uint32_t it = (uint32_t)r->exclude[i];
        if (on) seen[it >> 6] |= (uint64_t)1 << (it & 63);
        else seen[it >> 6] = 0;
    }
}

static int excluded(const recsys_request *r, const uint64_t *seen, int32_t it)
{
    if (r->exclude_mask && r->exclude_mask[it]) return 1;
    return (int)(seen[(uint32_t)it >> 6] >> ((uint32_t)it & 63)) & 1;
}

static void topk_task(void *arg, int row, int thread)
{
    topk_job *j = arg;
    recsys_session *s = j->s;
    const recsys_request *r = &j->reqs[row];
    const float *sc = s->chunk + (size_t)row * j->len;
    scored *h = s->heaps + (size_t)row * s->heap_k;
    int *size = &j->sizes[row];
    uint64_t *seen = s->seen + (size_t)thread * s->seen_words;
    mark_excluded(r, seen, 1);
    if (r->candidates) {
        for (size_t i = 0; i < r->n_candidates; i++) {
            int32_t it = r->candidates[i];
            if (it < j->first || it >= j->first + j->len || excluded(r, seen, it)) continue;
            int dup = 0; /* a candidate listed twice is ranked once */
            for (size_t q = 0; q < i && !dup; q++) dup = r->candidates[q] == it;
            if (!dup) heap_push(h, size, r->k, (scored){sc[it - j->first], it});
        }
    } else {
        int simple = !r->exclude_mask && !r->n_exclude && !r->exclude_history;
        for (int32_t c = 0; c < j->len; c++) {
            if (*size == r->k && c + 16 <= j->len) {
                /* 16 scores at a time against the heap's worst: most
                 * blocks hold nothing that enters */
                float thr = h[0].s;
                int any = 0;
                for (int t = 0; t < 16; t++) any |= sc[c + t] >= thr;
                if (!any) {
                    c += 15;
                    continue;
                }
            }
            scored cand = {sc[c], j->first + c};
            if (*size == r->k && !worse(h[0], cand)) continue;
            if (!simple && excluded(r, seen, cand.item)) continue;
            heap_push(h, size, r->k, cand);
        }
    }
    mark_excluded(r, seen, 0); /* all words back to zero */
}

/* A zeroed bit per item for each of the pool's threads. */
static recsys_status reserve_seen(recsys_session *s)
{
    int T = rs_pool_threads(s->ctx->pool);
    if (s->seen && T <= s->seen_threads) return RECSYS_OK;
    rs_free(s->seen);
    s->seen_words = ((size_t)s->model->cfg.n_items + 64) / 64;
    s->seen = rs_calloc((size_t)T * s->seen_words, sizeof(uint64_t));
    s->seen_threads = s->seen ? T : 0;
    return s->seen ? RECSYS_OK
                   : rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory for exclusion bits");
}

/* Scores of rows [0, n) for items [first, first+len) into s->chunk. A score
 * that is not finite is an error, never a ranking (NaN compares false). */
static recsys_status score_chunk(recsys_session *s, int n, int32_t first, int32_t len)
{
    const rs_model_config *cfg = &s->model->cfg;
    int d = cfg->dim, L = cfg->max_len;
    rs_pool *p = pool_for_rows(s, n);
    const float *f = s->F + (size_t)(L - 1) * d;
    if (n == 1 && s->table->panels && !s->ctx->gemm_onednn && !s->ctx->bf16)
        /* one row: against the panel copy, the bits the GEMM gives (kernels.h) */
        s->ctx->kern.dot_panels((size_t)len, d,
                                s->table->panels + (size_t)(first - 1) / RS_PANEL * RS_PANEL * d,
                                f, s->chunk);
    else if (n == 1 && !s->ctx->gemm_onednn) /* C^T = table · f: packs f, not the table */
        rs_gemm(s->ctx, 0, 1, len, 1, d, 1.0f, s->table->rows + (size_t)first * d, d, f, d, 0.0f,
                s->chunk, 1);
    else
        rs_gemm(s->ctx, 0, 1, n, len, d, 1.0f, f, L * d, s->table->rows + (size_t)first * d, d,
                0.0f, s->chunk, len);
    s->ctx->pool = p;
    /* one branch-free pass (the exponent bits, which vectorises) before
     * looking for the culprit */
    size_t total = (size_t)n * (size_t)len;
    uint32_t bad = 0;
    for (size_t i = 0; i < total; i++) {
        uint32_t u;
        memcpy(&u, &s->chunk[i], sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    for (size_t i = 0; bad && i < total; i++)
        if (!isfinite(s->chunk[i]))
            return rs_error(s->ctx, RECSYS_E_NUMERIC,
                            "the score of item %d is %s: the model's weights are too large or "
                            "corrupted", first + (int32_t)(i % (size_t)len),
                            isnan(s->chunk[i]) ? "NaN" : "infinite");
    return RECSYS_OK;
}

/* Top-k of n encoded rows into the output arrays. */
static recsys_status rank_rows(recsys_session *s, const recsys_request *reqs, int n, int *sizes)
{
    int32_t N = s->model->cfg.n_items;
    recsys_status st = reserve_seen(s);
    if (st) return st;
    topk_job j = {.s = s, .reqs = reqs, .sizes = sizes};
    for (int r = 0; r < n; r++) sizes[r] = 0;
    for (int32_t first = 1; first <= N; first += SCORE_CHUNK) {
        j.first = first;
        j.len = N - first + 1 < SCORE_CHUNK ? N - first + 1 : SCORE_CHUNK;
        st = score_chunk(s, n, j.first, j.len);
        if (st) return st;
        rs_pool_run(s->ctx->pool, n, topk_task, &j);
    }
    return RECSYS_OK;
}

static void pop_all(scored *h, int size, int32_t *items, float *scores)
{
    for (int i = size - 1; i >= 0; i--) {
        items[i] = h[0].item;
        if (scores) scores[i] = h[0].s;
        h[0] = h[i];
        sift_down(h, i, 0);
    }
}

/* Top-k of n_reqs validated requests (kmax: their largest k), in passes of
 * up to SESSION_ROWS rows on s's own ctx. */
static recsys_status topk_rows(recsys_session *s, const recsys_request *const *reqs, size_t n_reqs,
                               size_t stride, int kmax, int32_t *items, float *scores,
                               size_t *n_out)
{
    recsys_request local[SESSION_ROWS];
    int sizes[SESSION_ROWS];
    int pass = ROWS_PER_THREAD * rs_pool_threads(s->ctx->pool);
    if (pass > SESSION_ROWS) pass = SESSION_ROWS;
    for (size_t done = 0; done < n_reqs;) {
        int max = n_reqs - done < (size_t)pass ? (int)(n_reqs - done) : pass, n = 0;
        const recsys_adapter *shape = NULL; /* the rows' adapter shape so far */
        for (; n < max; n++) {
            read_request(s, done + n, reqs[done + n], &local[n], 1);
            const recsys_adapter *a = local[n].adapter;
            if (a && shape && !same_shape(a, shape)) break;
            if (a) shape = a;
        }
        recsys_status st = reserve_rows(s, n);
        if (!st) st = reserve_heaps(s, n, kmax);
        if (!st) st = encode(s, local, n);
        if (!st) st = rank_rows(s, local, n, sizes);
        if (st) return st;
        for (int r = 0; r < n; r++) {
            size_t o = (done + r) * stride;
            pop_all(s->heaps + (size_t)r * s->heap_k, sizes[r], items + o, scores ? scores + o : NULL);
            if (n_out) n_out[done + r] = (size_t)sizes[r];
        }
        done += (size_t)n;
    }
    return RECSYS_OK;
}

/* n lanes for s (kept for later batches). */
static recsys_status reserve_lanes(recsys_session *s, int n)
{
    if (n <= s->n_lanes) return RECSYS_OK;
    lane *l = realloc(s->lanes, sizeof *l * (size_t)n);
    if (!l) return rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory for a batch's lanes");
    s->lanes = l;
    for (int i = s->n_lanes; i < n; i++) {
        recsys_ctx *c = NULL;
        recsys_session *ls = NULL;
        recsys_status st = rs_ctx_create(1, NULL, &c);
        if (!st) {
            c->seed = s->ctx->seed;
            c->cpu = s->ctx->cpu;
            c->max_isa = s->ctx->max_isa;
            c->kern = s->ctx->kern;
            c->bf16 = s->ctx->bf16;
            c->gemm_onednn = 0; /* the parent's, whatever RECSYS_GEMM says */
            st = recsys_session_new(c, s->model, &ls);
        }
        if (st) {
            st = rs_error(s->ctx, st, "a batch lane: %s", c ? recsys_ctx_errmsg(c) : "no context");
            recsys_ctx_free(c);
            return st;
        }
        ls->last_only = s->last_only;
        l[i] = (lane){c, ls, RECSYS_OK};
        s->n_lanes = i + 1;
    }
    return RECSYS_OK;
}

typedef struct lanes_job {
    recsys_session *s;
    const recsys_request *const *reqs;
    size_t n_reqs, stride;
    int kmax, n;
    int32_t *items;
    float *scores;
    size_t *n_out;
} lanes_job;

static void lane_task(void *arg, int t, int thread)
{
    (void)thread;
    const lanes_job *j = arg;
    size_t lo = j->n_reqs * (size_t)t / (size_t)j->n, hi = j->n_reqs * (size_t)(t + 1) / (size_t)j->n;
    lane *l = &j->s->lanes[t];
    l->st = topk_rows(l->s, j->reqs + lo, hi - lo, j->stride, j->kmax, j->items + lo * j->stride,
                      j->scores ? j->scores + lo * j->stride : NULL, j->n_out ? j->n_out + lo : NULL);
}

recsys_status recsys_session_topk_batch(recsys_session *s, const recsys_request *const *reqs,
                                        size_t n_reqs, size_t stride, int32_t *items,
                                        float *scores, size_t *n_out)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s) return RS_BAD_ARGS();
    if ((n_reqs && (!reqs || !items)) || stride < 1)
        return rs_error(s->ctx, RECSYS_E_INVALID, "recsys_session_topk_batch: NULL argument or "
                        "stride 0");
    recsys_request local[1];
    /* Validate everything first: an invalid request fails the call before
     * anything is written. */
    int kmax = 1;
    for (size_t i = 0; i < n_reqs; i++) {
        recsys_status st = read_request(s, i, reqs[i], &local[0], 1);
        if (st) return st;
        if ((size_t)local[0].k > stride)
            return rs_error(s->ctx, RECSYS_E_INVALID, "request %zu: k = %d is above the stride %zu",
                            i, local[0].k, stride);
        if (local[0].k > kmax) kmax = local[0].k;
    }
    /* Lanes when there are threads to share; oneDNN runs its own threads and
     * is never called from a pool task. */
    int T = rs_pool_threads(s->ctx->pool);
    if (T > 1 && n_reqs > 1 && !s->ctx->gemm_onednn) {
        int n = n_reqs < (size_t)T ? (int)n_reqs : T;
        recsys_status st = reserve_lanes(s, n);
        if (st) return st;
        lanes_job j = {s, reqs, n_reqs, stride, kmax, n, items, scores, n_out};
        rs_pool_run(s->ctx->pool, n, lane_task, &j);
        for (int t = 0; t < n; t++)
            if (s->lanes[t].st)
                return rs_error(s->ctx, s->lanes[t].st, "%s", recsys_ctx_errmsg(s->lanes[t].ctx));
        return RECSYS_OK;
    }
    return topk_rows(s, reqs, n_reqs, stride, kmax, items, scores, n_out);
}

recsys_status recsys_session_topk_request(recsys_session *s, const recsys_request *req,
                                          int32_t *items, float *scores, size_t *n_out)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s) return RS_BAD_ARGS();
    if (!req || !items)
        return rs_error(s->ctx, RECSYS_E_INVALID, "recsys_session_topk_request: NULL argument");
    size_t stride = req->struct_size >= offsetof(recsys_request, k) + sizeof(int) && req->k > 0
                        ? (size_t)req->k : 1;
    return recsys_session_topk_batch(s, &req, 1, stride, items, scores, n_out);
}

/* The scores of request r (encoded into row 0 of s->F) into scores, as
 * recsys_session_score_request describes. */
static recsys_status score_all(recsys_session *s, const recsys_request *r, float *scores,
                               size_t n_scores)
{
    int32_t N = s->model->cfg.n_items;
    size_t need = r->candidates ? r->n_candidates : (size_t)N + 1;
    if (!scores || n_scores < need)
        return rs_error(s->ctx, RECSYS_E_INVALID, "scores must hold %zu floats", need);
    float *all = scores;
    if (r->candidates) {
        if (!s->all && !(s->all = rs_malloc(sizeof(float) * ((size_t)N + 1))))
            return rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory");
        all = s->all;
    }
    for (int32_t first = 1; first <= N; first += SCORE_CHUNK) {
        int32_t len = N - first + 1 < SCORE_CHUNK ? N - first + 1 : SCORE_CHUNK;
        recsys_status st = score_chunk(s, 1, first, len);
        if (st) return st;
        memcpy(all + first, s->chunk, sizeof(float) * (size_t)len);
    }
    all[0] = -INFINITY;
    if (r->exclude_history)
        for (size_t i = 0; i < r->n_history; i++) all[r->history[i]] = -INFINITY;
    for (size_t i = 0; i < r->n_exclude; i++) all[r->exclude[i]] = -INFINITY;
    if (r->exclude_mask)
        for (int32_t i = 1; i <= N; i++)
            if (r->exclude_mask[i]) all[i] = -INFINITY;
    if (r->candidates)
        for (size_t i = 0; i < r->n_candidates; i++) scores[i] = all[r->candidates[i]];
    return RECSYS_OK;
}

recsys_status recsys_session_score_request(recsys_session *s, const recsys_request *req,
                                           float *scores, size_t n_scores)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s) return RS_BAD_ARGS();
    recsys_request r;
    recsys_status st = read_request(s, 0, req, &r, 0);
    if (!st) st = encode(s, &r, 1);
    return st ? st : score_all(s, &r, scores, n_scores);
}

/* ------------------------------------------------------- user states */

/* req with the state's window as its history, validated into r. */
static recsys_status state_request(recsys_session *s, recsys_user_state *u,
                                   const recsys_request *req, recsys_request *r, int need_k)
{
    if (!u) return rs_error(s->ctx, RECSYS_E_INVALID, "the user state is NULL");
    recsys_status st = read_request(s, 0, req, r, need_k);
    if (st) return st;
    const int32_t *h = r->history;
    recsys_user_state_request(u, r);
    if (h && h != r->history)
        return rs_error(s->ctx, RECSYS_E_INVALID, "the request carries a history of its own: "
                        "the user state supplies it (leave history NULL)");
    return check_ids(s, 0, "history", r->history, r->n_history);
}

/* The state's window into row 0 of s->F: from its cached keys and values
 * when they apply, else by the forward every request takes. */
static recsys_status encode_state(recsys_session *s, recsys_user_state *u, const recsys_request *r)
{
    const rs_model_config *cfg = &s->model->cfg;
    int done = 0;
    if (!r->adapter && cfg->pos_from_start) {
        if (!s->extend && !(s->extend = rs_malloc(sizeof(float) * rs_extend_scratch_floats(cfg))))
            return rs_error(s->ctx, RECSYS_E_NOMEM, "out of memory for a session's scratch");
        rs_pool *p = pool_for_rows(s, 1);
        recsys_status st = rs_user_state_encode(u, s->ctx, s->model, s->extend,
                                                s->F + (size_t)(cfg->max_len - 1) * cfg->dim,
                                                &done);
        s->ctx->pool = p;
        if (st) return st;
    }
    return done ? RECSYS_OK : encode(s, r, 1);
}

recsys_status recsys_session_topk_state(recsys_session *s, recsys_user_state *u,
                                        const recsys_request *req, int32_t *items, float *scores,
                                        size_t *n_out)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s) return RS_BAD_ARGS();
    if (!items) return rs_error(s->ctx, RECSYS_E_INVALID, "recsys_session_topk_state: items is NULL");
    recsys_request r;
    int size = 0;
    recsys_status st = state_request(s, u, req, &r, 1);
    if (!st) st = reserve_heaps(s, 1, r.k);
    if (!st) st = encode_state(s, u, &r);
    if (!st) st = rank_rows(s, &r, 1, &size);
    if (st) return st;
    pop_all(s->heaps, size, items, scores);
    if (n_out) *n_out = (size_t)size;
    return RECSYS_OK;
}

recsys_status recsys_session_score_state(recsys_session *s, recsys_user_state *u,
                                         const recsys_request *req, float *scores,
                                         size_t n_scores)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s) return RS_BAD_ARGS();
    recsys_request r;
    recsys_status st = state_request(s, u, req, &r, 0);
    if (!st) st = encode_state(s, u, &r);
    return st ? st : score_all(s, &r, scores, n_scores);
}

recsys_status recsys_session_user_vector(recsys_session *s, const recsys_request *req, float *vec,
                                         size_t dim)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s) return RS_BAD_ARGS();
    const rs_model_config *cfg = &s->model->cfg;
    if (!vec || dim < (size_t)cfg->dim)
        return rs_error(s->ctx, RECSYS_E_INVALID, "vec must hold dim = %d floats", cfg->dim);
    recsys_request r;
    recsys_status st = read_request(s, 0, req, &r, 0);
    if (!st) st = encode(s, &r, 1);
    if (st) return st;
    memcpy(vec, s->F + (size_t)(cfg->max_len - 1) * cfg->dim, sizeof(float) * (size_t)cfg->dim);
    return RECSYS_OK;
}

/* ------------------------------------------------- the original calls */

recsys_status recsys_session_score(recsys_session *s, const int32_t *history, size_t n_history,
                                   float *scores, size_t n_scores)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s) return RS_BAD_ARGS();
    recsys_request r = RECSYS_REQUEST_INIT;
    r.history = history;
    r.n_history = n_history;
    if (!scores || n_scores < (size_t)s->model->cfg.n_items + 1)
        return rs_error(s->ctx, RECSYS_E_INVALID, "scores must hold n_items+1 = %d floats",
                        s->model->cfg.n_items + 1);
    return recsys_session_score_request(s, &r, scores, n_scores);
}

recsys_status recsys_session_topk(recsys_session *s, const int32_t *history, size_t n_history,
                                  int k, int exclude_history, int32_t *items, float *scores)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s) return RS_BAD_ARGS();
    int32_t n = s->model->cfg.n_items;
    if (k < 1 || k > n || !items)
        return rs_error(s->ctx, RECSYS_E_INVALID, "k must be in 1..%d and items non-NULL", n);
    recsys_request r = RECSYS_REQUEST_INIT;
    r.history = history;
    r.n_history = n_history;
    r.k = k;
    r.exclude_history = exclude_history;
    size_t got = 0;
    recsys_status st = recsys_session_topk_request(s, &r, items, scores, &got);
    /* The original contract: k entries; excluded items fill the tail. */
    for (size_t i = got; !st && i < (size_t)k; i++) {
        items[i] = 0;
        if (scores) scores[i] = -INFINITY;
    }
    return st;
}

void rs_session_set_last_only(recsys_session *s, int on)
{
    if (!s) return;
    s->last_only = on != 0;
    for (int i = 0; i < s->n_lanes; i++) s->lanes[i].s->last_only = s->last_only;
}

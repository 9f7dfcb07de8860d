/*
 * The scaffolding every model family is built on (docs/MODELS_IMPL.md,
 * "Scaffolding"): what SASRec and HSTU share, written once.
 *
 *  - the tensor table: named parameter tensors, stacked over blocks, with
 *    the item and position embeddings always first (RS_T_ITEM, RS_T_POS);
 *  - projections (rs_proj): every learned linear map of a model goes through
 *    rs_proj_fwd / rs_proj_bwd, the one place where per-projection extras
 *    (adapters) hook in;
 *  - the workspace: the packed-row bookkeeping every model needs, plus one
 *    arena that the model's plan function lays out;
 *  - the batch checks, the embedding edge (gather/scatter of item and
 *    position rows) and the padded edge (packed rows <-> the [B x L x d]
 *    output, pad rows zero).
 *
 * A model file then holds only its tensor list, its per-block buffers, and
 * its block forward and backward.
 */
#ifndef RS_SCAFFOLD_H
#define RS_SCAFFOLD_H

#include "models/model.h"

/* ------------------------------------------------------------ tensor table */

/* Most tensor kinds a model may declare. */
#define RS_TENSORS_MAX 24

/* The tensor kinds every model starts with, in this order: the shared
 * input/output item table [(n_items+1) x d] (so RS_ITEM_TABLE_OFFSET holds)
 * and the position table [(L+1) x d]. A model's own kinds follow from
 * RS_T_MODEL on. */
enum { RS_T_ITEM = 0, RS_T_POS = 1, RS_T_MODEL = 2 };

typedef struct rs_tensor_table {
    int n;                                   /* tensor kinds */
    const char *name[RS_TENSORS_MAX];
    size_t slice[RS_TENSORS_MAX];            /* floats of one block's slice (or of the tensor) */
    unsigned char per_block[RS_TENSORS_MAX]; /* 1: stacked over cfg->blocks */
    size_t off[RS_TENSORS_MAX + 1];          /* off[n] = total floats */
    int blocks;
} rs_tensor_table;

/* Start a table with item_emb and pos_emb. */
void rs_tensors_begin(rs_tensor_table *t, const rs_model_config *c);
/* Append a kind of slice_floats per block (per_block) or in all; returns its
 * index, which must equal the model's enum value for it. A kind of 0 floats
 * (an optional tensor switched off) takes no space and is not listed. */
int rs_tensors_add(rs_tensor_table *t, const char *name, size_t slice_floats, int per_block);

/* The table of c's model family (its ops->layout); 0 kinds for an unknown
 * family. */
void rs_tensors_of(const rs_model_config *c, rs_tensor_table *t);
/* ops->n_params and ops->tensors of every model family (by c->type). */
size_t rs_tensors_total(const rs_model_config *c);
int rs_tensors_list(const rs_model_config *c, const char **names, size_t *offsets,
                    size_t *sizes);

/* Offset of block k's slice of kind t (k ignored for kinds not per block). */
static inline size_t rs_tensor_at(const rs_tensor_table *t, int kind, int k)
{
    return t->off[kind] + (t->per_block[kind] ? (size_t)k * t->slice[kind] : 0);
}

/* -------------------------------------------------------------- model run */

/* What a forward or backward pass reads and writes: the parameters are
 * read-only all the way down; G (the gradients, same layout) is NULL in a
 * forward. partial is the scratch of the bias and gain reductions. */
typedef struct rs_ws_common rs_ws_common;
typedef struct rs_proj_hook rs_proj_hook;
typedef struct rs_model_run {
    recsys_ctx *ctx;
    const rs_model_config *cfg;
    const rs_tensor_table *tab;
    const float *P;
    float *G;
    float *partial;
    /* From the batch (rs_model_run_hook): the projection hook (NULL: none)
     * and the workspace whose packed spans (base/len per batch row) it reads. */
    const rs_proj_hook *hook;
    const rs_ws_common *w;
    /* 1: projections take one row per batch row (each row's last position,
     * last_block.c) instead of w's packed rows. */
    int last_rows;
    /* 1: projections of one or two rows may run as dot products (the
     * cached extension, extend.c: its results need not have the GEMM's
     * bits, which the sessions' equality with evaluation relies on). */
    int few_rows_dots;
} rs_model_run;

static inline const float *rs_param(const rs_model_run *r, int kind, int k)
{
    return r->P + rs_tensor_at(r->tab, kind, k);
}

static inline float *rs_grad(const rs_model_run *r, int kind, int k)
{
    return r->G + rs_tensor_at(r->tab, kind, k);
}

/* ------------------------------------------------------------ projections */

/* One learned linear map y = x · W[row0 .. row0+out)ᵀ + b[row0 .. row0+out)
 * of block k: rows of a weight kind [rows x in] (per block) and, unless
 * b < 0, of a bias kind. Several projections may share one tensor (SASRec's
 * W_q and W_k|W_v rows of attn.w_in). Every projection of every model runs
 * through rs_proj_fwd / rs_proj_bwd: per-projection additions (low-rank
 * adapters keyed on `name`) belong there and nowhere else. */
typedef struct rs_proj {
    const char *name; /* the projection site, e.g. "attn.qkv", "ffn.w1" */
    int w, b;         /* tensor kinds; b = -1: no bias */
    int row0;         /* first output row inside the block's weight slice */
    int in, out;
    int bias_fused;   /* 1: rs_proj_fwd leaves the bias to the caller's next
                         fused pass (rs_proj_bias); the backward still sums it */
} rs_proj;

static inline rs_proj rs_proj_make(const char *name, int w, int b, int row0, int in, int out,
                                   int bias_fused)
{
    rs_proj p = {name, w, b, row0, in, out, bias_fused};
    return p;
}

static inline const float *rs_proj_weight(const rs_model_run *r, const rs_proj *p, int k)
{
    return rs_param(r, p->w, k) + (size_t)p->row0 * (size_t)p->in;
}

/* The projection's bias (NULL when it has none). */
static inline const float *rs_proj_bias(const rs_model_run *r, const rs_proj *p, int k)
{
    return p->b < 0 ? NULL : rs_param(r, p->b, k) + p->row0;
}

/* Per-projection extras, called by rs_proj_fwd / rs_proj_bwd after the base
 * map on the same arguments (n = the packed rows of r->w, in batch-row
 * order). fwd adds to y; bwd adds to dx (after the base wrote or added it)
 * and accumulates its own parameters' gradients. An implementation embeds
 * this struct as its first member (lib/adapters/hook.c: LoRA). */
struct rs_proj_hook {
    int frozen_base; /* 1: rs_proj_bwd skips the base weights' gradients */
    /* Optional: called once per pass with the packed workspace, so per-batch
     * set-up (the rows' adapter segments) is not redone per projection. */
    void (*begin)(const rs_proj_hook *h, const rs_ws_common *w);
    void (*fwd)(const rs_proj_hook *h, const rs_model_run *r, const rs_proj *p, int k, int n,
                const float *x, int ldx, float *y, int ldy);
    void (*bwd)(const rs_proj_hook *h, const rs_model_run *r, const rs_proj *p, int k, int n,
                const float *x, int ldx, const float *dy, int lddy, float *dx, int lddx);
};

/* Attach the batch's hook to a run over workspace w (packed already): the
 * hook sees the batch's layout once, before the pass's first projection. */
static inline void rs_model_run_hook(rs_model_run *r, const rs_batch *b, const rs_ws_common *w)
{
    r->hook = b ? b->hook : NULL;
    r->w = w;
    if (r->hook && r->hook->begin) r->hook->begin(r->hook, w);
}

/* y[n x out] (row stride ldy) = x[n x in] · Wᵀ (+ b unless bias_fused). */
void rs_proj_fwd(const rs_model_run *r, const rs_proj *p, int k, int n, const float *x, int ldx,
                 float *y, int ldy);
/* dW += dyᵀ·x, db += Σ dy (into r->G), dx = (or += when accumulate_dx)
 * dy·W; dx may be NULL. With a hook whose frozen_base is set, dW and db
 * are skipped (adapter training on a frozen base). */
void rs_proj_bwd(const rs_model_run *r, const rs_proj *p, int k, int n, const float *x, int ldx,
                 const float *dy, int lddy, float *dx, int lddx, int accumulate_dx);

/* ------------------------------------------------ last-position forward */

/* The serving forward's last block for each row's last position only
 * (lib/models/last_block.c), called by a model's forward when
 * rs_batch.last_scratch is set: X holds the last block's input on N packed
 * rows; out receives slot L-1 of each of the B rows. Projections go
 * through rs_proj_fwd like the model's own. */
typedef struct rs_last_sasrec_projs {
    const rs_proj *q, *kv, *out, *ffn1, *ffn2;
} rs_last_sasrec_projs;
void rs_sasrec_last_fwd(const rs_model_run *r, const rs_last_sasrec_projs *pj, const float *X,
                        int N, int B, const int *base, const int *len, float *scratch, float *out);
void rs_hstu_last_fwd(const rs_model_run *r, const rs_proj *uvqk, const rs_proj *o,
                      const float *X, int N, int B, const int *base, const int *len,
                      const rs_batch *batch, int time_on, float *scratch, float *out);

/* -------------------------------------------------------------- workspace */

/* Arena pieces are multiples of this many floats (64 bytes). */
#define RS_WS_ALIGN_FLOATS 16

/* Lays buffers out in one arena; with base == NULL it only counts. */
typedef struct rs_plan {
    float *base;
    size_t off;
} rs_plan;

static inline size_t rs_plan_round(size_t floats)
{
    return (floats + RS_WS_ALIGN_FLOATS - 1) & ~(size_t)(RS_WS_ALIGN_FLOATS - 1);
}

static inline float *rs_plan_floats(rs_plan *p, size_t n)
{
    float *at = p->base ? p->base + p->off : NULL;
    p->off += rs_plan_round(n);
    return at;
}

/* Takes rows x width floats for each item, in order. */
typedef struct rs_plan_item {
    float **at;
    size_t width;
} rs_plan_item;

static inline void rs_plan_rows(rs_plan *p, size_t rows, const rs_plan_item *items, int n)
{
    for (int i = 0; i < n; i++) *items[i].at = rs_plan_floats(p, rows * items[i].width);
}

static inline uint8_t *rs_plan_bytes(rs_plan *p, size_t n)
{
    uint8_t *at = p->base ? (uint8_t *)(void *)(p->base + p->off) : NULL;
    p->off += rs_plan_round((n + sizeof(float) - 1) / sizeof(float));
    return at;
}

/* The first member of every model's struct rs_workspace. */
struct rs_ws_common {
    rs_model_config cfg;
    int cap_B, R;          /* capacity: rows, packed rows (cap_B * max_len) */
    /* the batch of the last forward */
    int B, n, kept;        /* rows, packed rows, 1: kept for a backward */
    uint64_t seed;
    int row0;              /* rs_batch.row0 */
    float p;               /* dropout rate in effect (0 at inference) */
    int *base, *len;       /* cap_B: packed segment of each row */
    int32_t *src;          /* R: packed row -> b*L + t (dropout counters) */
    int32_t *items, *pos;  /* R: item id and position index of each packed row */
    float **x;             /* blocks+1 block inputs/outputs, R x d each */
    void *blocks;          /* the model's per-block records */
    float *arena;
};

static inline rs_ws_common *rs_ws(rs_workspace *ws) { return (rs_ws_common *)(void *)ws; }

/* How a model's workspace is made. */
typedef struct rs_ws_spec {
    const char *model;  /* for messages */
    size_t ws_size;     /* sizeof(struct rs_workspace), rs_ws_common first */
    size_t block_size;  /* sizeof one per-block record */
    /* optional: sizes the plan needs (called once, before planning) */
    void (*prepare)(rs_workspace *ws);
    /* take the model's buffers, after the block inputs x[] */
    void (*plan)(rs_workspace *ws, rs_plan *p);
    /* 1 when a workspace made for a fits b (checked before every pass) */
    int (*same_shape)(const rs_model_config *a, const rs_model_config *b);
} rs_ws_spec;

rs_workspace *rs_ws_new(const rs_model_config *c, int B, const rs_ws_spec *spec);
void rs_ws_free(rs_workspace *ws);

/* ------------------------------------------------------- batch and edges */

/* Checks the batch against the config and the workspace, then packs its
 * non-pad positions into the workspace (the item at row index t gets
 * position t + 1, or t - start + 1 with model.positions = start) and
 * records the batch (B, n, seed, dropout rate). */
recsys_status rs_model_begin_fwd(recsys_ctx *ctx, const rs_ws_spec *spec,
                                 const rs_model_config *c, const float *P, rs_workspace *ws,
                                 const rs_batch *b, const float *out);
/* Checks that a backward may follow: same batch as a training forward. */
recsys_status rs_model_begin_bwd(recsys_ctx *ctx, const rs_ws_spec *spec,
                                 const rs_model_config *c, const float *P, rs_workspace *ws,
                                 const rs_batch *b, const float *d_out, const float *G);

/* X0 = ItemEmb[items] · sqrt(d) + PosEmb[pos] over the packed rows. */
void rs_embed_edge_fwd(const rs_model_run *r, const rs_ws_common *w, float *X0);
/* Scatter dX0 into the item and position table gradients. */
void rs_embed_edge_bwd(const rs_model_run *r, const rs_ws_common *w, const float *dX0);

/* The padded edge. Forward: for each batch row (one pool task each), its
 * pad rows of out (B x L x d) are zeroed and fn writes its n packed rows
 * p0 .. p0+n-1 into `rows`, the row's last n slots. Backward: fn reads the
 * gradient of those slots from `rows`. fn is called for every row, n may be
 * 0. */
typedef void (*rs_edge_fn)(void *arg, int row, size_t p0, int n, float *rows);
typedef void (*rs_edge_grad_fn)(void *arg, int row, size_t p0, int n, const float *rows);
void rs_padded_edge_fwd(recsys_ctx *ctx, const rs_ws_common *w, float *out, rs_edge_fn fn,
                        void *arg);
void rs_padded_edge_bwd(recsys_ctx *ctx, const rs_ws_common *w, const float *d_out,
                        rs_edge_grad_fn fn, void *arg);

#endif

/*
 * LoRA in the models: the rs_proj_hook behind adapters (docs/ADAPTERS.md,
 * "Model integration").
 *
 * A hook is made for an adapter shape (its sites, rank and scale) and a
 * batch capacity. Before each pass the caller says, for every batch row,
 * which LoRA vector (P floats, the layout of recsys_adapter) applies to it
 * (NULL: none) and where that row's gradients go (NULL: none). Consecutive
 * rows with the same vector and gradient form one segment (one shared
 * adapter: one pooled pair of GEMMs per site; every row its own adapter: one
 * pool task per row, the CPU BGMV); the segments are built once per pass,
 * when the model attaches the hook, for the packed rows and for the
 * last-position forward's one row per batch row (last_block.c). For each projection rs_proj_fwd calls,
 * the hook adds scale·B(Ax) to the output columns of every adapted target
 * whose weight rows the projection covers; t = Ax of every site is kept for
 * the backward.
 *
 * Put it in rs_batch.hook; a batch without a hook runs the base path
 * unchanged. A hook serves one pass at a time (one workspace).
 */
#ifndef RS_HOOK_H
#define RS_HOOK_H

#include "adapters/adapter.h"
#include "models/scaffold.h"

/* One row layout's segments: with the per-segment vector and gradient bases
 * that each site's A / dA pointers are derived from. */
typedef struct rs_lora_rows {
    int n;                   /* rows a projection over this layout has */
    int ns;                  /* segments (0: nothing to adapt) */
    rs_lora_seg *seg;        /* cap_B */
    const float **sv;        /* cap_B */
    float **sg;
} rs_lora_rows;

typedef struct rs_lora_hook {
    rs_proj_hook h;          /* first: what the batch points at */
    const recsys_adapter *a; /* the shape (sites, rank, scale); its params unused */
    int cap_B;
    size_t cap_R;
    const float **vec;       /* cap_B: LoRA vector of each batch row, or NULL */
    float **grad;            /* cap_B: gradient vector of each batch row, or NULL */
    float *t;                /* n_sites x cap_R x rank: kept A·x */
    float *u;                /* cap_R x rank: backward scratch */
    /* Built once per pass (h.begin) from vec, grad and the packing: the
     * packed rows, and one row per batch row (the last-position forward). */
    rs_lora_rows packed, last;
    const char *tensor[RS_ADAPTER_MAX_SITES];
    int row0[RS_ADAPTER_MAX_SITES];
} rs_lora_hook;

/* For batches of up to cap_B rows of the model's max_len. */
recsys_status rs_lora_hook_init(recsys_ctx *ctx, rs_lora_hook *h, const recsys_adapter *shape,
                                int cap_B);
void rs_lora_hook_release(rs_lora_hook *h);
/* Every row: vector v (may be NULL), gradient g (may be NULL). */
void rs_lora_hook_set_all(rs_lora_hook *h, const float *v, float *g);

#endif

/* Internal model interface: a model is a config, a flat parameter array and
 * an ops table. Encoders map a batch of left-padded sequences to hidden
 * states; losses and scoring are shared across model families. */
#ifndef RS_MODEL_H
#define RS_MODEL_H

#include "core/internal.h"

#include <stdatomic.h>

enum rs_model_type { RS_MODEL_SASREC = 0, RS_MODEL_HSTU = 1 };
enum rs_norm { RS_NORM_ORIGINAL = 0, RS_NORM_POST = 1, RS_NORM_PRE = 2 };

typedef struct rs_model_config {
    enum rs_model_type type;
    int n_items;      /* catalogue size; item ids 1..n_items, 0 = padding */
    int max_len;      /* L */
    int dim;          /* d */
    int blocks;
    int heads;
    int ffn_dim;      /* SASRec FFN inner size (default d) */
    int dqk, dv;      /* HSTU per-head sizes (default d / heads) */
    float dropout;
    enum rs_norm norm;
    int time_bias;    /* HSTU: 1 when the relative time bias is learned */
    int l2norm;       /* 1: scoring and sampled softmax use L2-normalised output and
                         item embeddings (model.l2norm auto|on|off; auto = on for HSTU) */
    int pos_from_start; /* model.positions: 1 = the window's oldest event has position 1
                           (start), 0 = its newest has position max_len (end, the default) */
} rs_model_config;

/* Read and validate a config from opts (NULL = defaults) for n_items. */
recsys_status rs_model_config_from_opts(recsys_ctx *ctx, const recsys_opts *opts,
                                        int n_items, int has_time, rs_model_config *cfg);
/* Write the config as opts keys (for checkpoints and recsys_model_get). */
recsys_status rs_model_config_to_opts(const rs_model_config *cfg, recsys_opts *opts);

/* A training or inference batch of B left-padded rows of length L. */
typedef struct rs_batch {
    int B, L;
    const int32_t *seq;        /* B*L input items, 0 = padding */
    const int64_t *times;      /* B*L input timestamps, or NULL */
    const int64_t *next_times; /* B*L timestamp of the next event (HSTU), or NULL */
    const int32_t *pos;        /* B*L target items (training), 0 where no target */
    const int32_t *neg;        /* B*L*n_neg negatives (training) */
    int n_neg;
    const int *start;          /* B: index of the first non-pad position per row */
    int train;                 /* 1: dropout on */
    uint64_t seed;             /* dropout stream of this step */
    int row0;                  /* index of row 0 in the global batch (a rank's share in
                                  distributed training; else 0): dropout follows global rows */
    /* Inference for scoring: when last_scratch is non-NULL (and train 0),
     * forward writes only slot L-1 of each output row (other slots are left
     * as they are) and runs the last block for that position only
     * (lib/models/last_block.c). last_scratch holds
     * rs_last_scratch_floats(cfg, B) floats. */
    float *last_scratch;
    /* Per-projection extras (low-rank adapters, docs/ADAPTERS.md), or NULL:
     * the base path, untouched. See rs_proj_hook in models/scaffold.h. */
    const struct rs_proj_hook *hook;
} rs_batch;

/* Floats of rs_batch.last_scratch for batches of up to B rows
 * (lib/models/last_block.c). */
size_t rs_last_scratch_floats(const rs_model_config *c, int B);

typedef struct rs_workspace rs_workspace; /* model-family specific */
typedef struct rs_tensor_table rs_tensor_table; /* lib/models/scaffold.h */

/* Every model's parameters start with the item embedding table
 * [(n_items+1) x d], shared by the input and the output layer (the
 * scaffolding's first tensor kind, lib/models/scaffold.h). Losses and
 * scoring read and update it at this offset in params and grads. */
#define RS_ITEM_TABLE_OFFSET ((size_t)0)

typedef struct rs_model_ops {
    const char *name;
    /* The parameter tensors (lib/models/scaffold.h: rs_tensors_begin, then
     * the family's kinds). n_params and tensors below derive from it. */
    void (*layout)(const rs_model_config *cfg, rs_tensor_table *t);
    /* Number of floats in the flat parameter array. */
    size_t (*n_params)(const rs_model_config *cfg);
    /* Initialise parameters (params has n_params floats). */
    void (*init)(const rs_model_config *cfg, float *params, rs_rng *rng);
    /* Activation buffers for batches of up to B rows of cfg->max_len. */
    rs_workspace *(*ws_new)(const rs_model_config *cfg, int B);
    void (*ws_free)(rs_workspace *ws);
    /* Forward: hidden states out[B*L*d] (final layer output, after the
     * final norm; rows of padding are zero). Keeps what backward needs. */
    recsys_status (*forward)(recsys_ctx *ctx, const rs_model_config *cfg, const float *params,
                             rs_workspace *ws, const rs_batch *b, float *out);
    /* Backward from d_out[B*L*d]; accumulates into grads (same layout as
     * params). Must follow a forward on the same batch. */
    recsys_status (*backward)(recsys_ctx *ctx, const rs_model_config *cfg, const float *params,
                              rs_workspace *ws, const rs_batch *b, const float *d_out,
                              float *grads);
    /* Serving from cached keys and values (lib/models/extend.h, only for
     * cfg->pos_from_start): encode rows r0..n-1 of one window (items, times
     * or NULL) against rows < r0's keys and values in kv (rs_kv_floats),
     * adding theirs; out = the last row's output (dim floats). scratch:
     * rs_extend_scratch_floats. */
    void (*extend)(recsys_ctx *ctx, const rs_model_config *cfg, const float *params, float *kv,
                   const int32_t *items, const int64_t *times, int r0, int n, float *scratch,
                   float *out);
    /* Named parameter tensors (for checkpoints and debugging): returns the
     * count; fills names/offsets/sizes when non-NULL arrays of that count. */
    int (*tensors)(const rs_model_config *cfg, const char **names, size_t *offsets,
                   size_t *sizes);
} rs_model_ops;

extern const rs_model_ops rs_sasrec_ops;
extern const rs_model_ops rs_hstu_ops;
/* The ops of a model family; NULL for an unknown type. */
const rs_model_ops *rs_model_ops_for(enum rs_model_type t);

struct recsys_model {
    atomic_int refs;
    rs_model_config cfg;
    const rs_model_ops *ops;
    float *params;
    size_t n_params;
    recsys_opts *cfg_opts; /* the config as opts, for recsys_model_get */
    struct rs_model_meta *meta; /* external ids, data fingerprint (lib/serve/serve.h) */
    /* Row-sharded by a distributed trainer (dist.shard_items,
     * lib/train/shard.c): params hold only the item rows [rows_lo, rows_hi)
     * of the table, then the dense part; n_params stays the whole count.
     * Only the trainer and recsys_evaluate_distributed read such a model. */
    int sharded;
    int64_t rows_lo, rows_hi;
};

/* Create a model with zeroed (n_params) parameters; init when rng != NULL. */
recsys_status rs_model_create(recsys_ctx *ctx, const rs_model_config *cfg, rs_rng *rng,
                              recsys_model **out);
static inline recsys_model *rs_model_ref(recsys_model *m)
{
    atomic_fetch_add(&m->refs, 1);
    return m;
}
/* RECSYS_OK for a whole model; else an error naming `what` (a sharded
 * model is whole again after recsys_trainer_set_collective(t, NULL)). */
recsys_status rs_model_whole(recsys_ctx *ctx, const recsys_model *m, const char *what);
static inline const float *rs_model_items(const recsys_model *m)
{
    return m->params + RS_ITEM_TABLE_OFFSET;
}

#endif

/* The adapter object behind recsys_adapter (docs/ADAPTERS.md). */
#ifndef RS_ADAPTER_H
#define RS_ADAPTER_H

#include "models/model.h"
#include "adapters/lora.h"

#define RS_ADAPTER_MAX_SITES 256

enum rs_target { RS_TGT_Q, RS_TGT_K, RS_TGT_V, RS_TGT_O, RS_TGT_U, RS_TGT_FFN1, RS_TGT_FFN2,
                 RS_TGT_COUNT };

/* One adapted projection of one block: its LoRA occupies floats
 * [off, off + r*in) (A) and [off + r*in, off + r*(in+out)) (B) of a vector. */
typedef struct rs_lora_site {
    int block, target, in, out;
    size_t off;
} rs_lora_site;

struct recsys_adapter {
    recsys_ctx *ctx;
    recsys_model *model; /* holds a reference */
    int kind;            /* RECSYS_ADAPTER_* */
    int rank;
    float alpha, scale;
    unsigned targets;    /* bit (1 << rs_target) */
    int n_sites;
    rs_lora_site sites[RS_ADAPTER_MAX_SITES];
    size_t P;            /* floats of one LoRA vector (every site's A and B) */
    int K;               /* bank size (1 otherwise) */
    rs_gate_shape gate;
    int gate_window, window;
    float *params;       /* USER/SHARED: P; BANK: K*P bank then the gate */
    size_t n_params;
};

/* Where target t (RS_TGT_*) of a block lives in c's model: weight tensor
 * name, first row, in and out; 0 when the family has no such projection. */
int rs_target_geometry(const rs_model_config *c, int t, const char **tensor, int *row0, int *in,
                       int *out);

struct rs_store;
struct recsys_adapter_store {
    recsys_ctx *ctx;
    recsys_model *model;
    recsys_adapter shape; /* USER kind: one record = one LoRA vector */
    struct rs_store *st;
};

/* The shape of an adapter for model from opts (adapter.*); params NULL. */
recsys_status rs_adapter_shape(recsys_ctx *ctx, recsys_model *model, const recsys_opts *opts,
                               int kind, recsys_adapter *a);
/* The CONF text describing a's shape (malloc'd) and its parser. */
char *rs_adapter_conf(const recsys_adapter *a);
/* Value of key in a CONF text copied into buf[n]; 0 when absent. */
int rs_adapter_conf_get(const char *conf, size_t len, const char *key, char *buf, size_t n);
/* Name of target t ("q", ..., "ffn2"), NULL when out of range. */
const char *rs_target_name(int t);
/* Check a recsys_adapter_to_buffer image (magic, version, sizes, CRC-32C)
 * without a model: its CONF, float count and (unaligned) parameters. */
recsys_status rs_adapter_buffer_parse(recsys_ctx *ctx, const void *buf, size_t len,
                                      const char **conf, size_t *conf_len, uint64_t *n_floats,
                                      const void **params);
recsys_status rs_adapter_from_conf(recsys_ctx *ctx, recsys_model *model, const char *conf,
                                   size_t len, recsys_adapter *a);

#endif

/* A model's serving description (lib/models/model_meta.c): external item
 * ids with a name -> id index, the training data's fingerprint, the
 * checkpoint sections carrying them, and the item scoring table shared by
 * sessions and evaluation. */
#ifndef RS_MODEL_META_H
#define RS_MODEL_META_H

#include "models/model.h"

#include <pthread.h>
#include <stdatomic.h>

/* The vectors scores are dot products with: the item table itself, or for
 * models with l2norm an L2-normalised copy (computed exactly as
 * recsys_evaluate does). Reference-counted: sessions hold one. */
typedef struct rs_score_table {
    atomic_int refs;
    const float *rows;    /* (n_items+1) x d; row 0 = padding */
    float *owned;         /* the normalised copy, or NULL */
    float *panels;        /* rows 1..n_items in RS_PANEL panels for scoring one
                           * user (kernels.h), or NULL (table too large) */
    uint64_t probe;       /* sample hash of the raw table it was made from */
} rs_score_table;

/* Per-model serving description; every model has one (model->meta). */
typedef struct rs_model_meta {
    int32_t n_items;
    int ids_known;        /* 0: item_names are the dense ids in decimal */
    char **item_names;    /* n_items+1 (index 0 NULL) */
    char *names_blob;     /* storage of the names */
    int32_t *index;       /* open-addressing name -> id table (0 = empty) */
    size_t index_cap;     /* power of two */
    uint64_t fingerprint; /* of the training data; 0 = unknown */
    int has_time;         /* the training data had timestamps */
    int64_t n_users;      /* users of the training data; -1 = unknown */
    pthread_mutex_t mu;   /* guards table */
    rs_score_table *table;
} rs_model_meta;

rs_model_meta *rs_model_meta_new(int32_t n_items);
void rs_model_meta_free(rs_model_meta *meta);
/* Copy a dataset's external item ids and fingerprint into the model. */
recsys_status rs_model_meta_from_dataset(recsys_ctx *ctx, recsys_model *m,
                                         const recsys_dataset *ds);
/* Set the item ids from n_items strings (ids[0] is item 1). */
recsys_status rs_model_meta_set_names(recsys_ctx *ctx, recsys_model *m, const char *const *ids,
                                      int32_t n);
/* 64-bit fingerprint of a model's weights, never 0: its shape and 8,192
 * evenly spaced parameters (every row of small tables), so O(1) in the
 * model's size. It tells another checkpoint of the same shape from this
 * one (adapters record their base's, lib/adapters/adapter.c), not a
 * single changed weight. */
uint64_t rs_model_weights_fingerprint(const recsys_model *m);
/* 64-bit fingerprint of a dataset's ids, sequences and times. */
uint64_t rs_dataset_fingerprint(const recsys_dataset *ds);

/* Checkpoint sections "IIDS" (item ids) and "META" (fingerprint etc.):
 * encode for saving (malloc'd payloads) and decode on load. */
#define RS_CK_TAG_ITEM_IDS "IIDS"
#define RS_CK_TAG_META "META"
recsys_status rs_model_meta_encode(const recsys_model *m, void **ids, size_t *ids_len,
                                   void **meta, size_t *meta_len);
/* Returns RECSYS_E_FORMAT (message in ctx, without file name) on bad data. */
recsys_status rs_model_meta_decode(recsys_ctx *ctx, recsys_model *m, const char *tag,
                                   const unsigned char *p, size_t len);

/* Tables up to this size also keep the panel copy (scoring one user reads
 * it at memory speed; the GEMM would run with a one-column tile). */
#define RS_SCORE_PANELS_MAX_BYTES ((size_t)64 << 20)

/* The model's scoring table, with a reference (rs_score_table_unref). */
recsys_status rs_score_table_get(recsys_ctx *ctx, recsys_model *m, rs_score_table **out);
void rs_score_table_unref(rs_score_table *t);
/* A fresh L2-normalised copy of the item table (row 0 zero): the one
 * formula evaluation and sessions share. */
float *rs_normalised_table(const float *table, int32_t n_items, int d);
/* dst[i] <- src[i] / |src[i]| for n rows of d (rs_normalised_table's rows). */
void rs_normalise_rows(float *dst, const float *src, size_t n, int d);

#endif

/* Tensors by name: the raw import/export seam for weights trained elsewhere
 * (docs/SERVING.md "Models from PyTorch"). The library knows names, shapes
 * and float32 data only; file formats (safetensors) and foreign naming
 * schemes live in the CLI (examples/cli/safetensors.c, cmd_import.c), so
 * the library needs no JSON parser.
 *
 * Shapes follow the model's flat layout (rs_model_ops.tensors): per-block
 * tensors are stacked over blocks ([blocks, ...]), linear weights are
 * [out x in]. The shapes are derived here from the config and checked
 * against the ops' sizes; a tensor whose derived shape does not multiply to
 * its size is described as 1-D. */
#include "models/model.h"
#include "models/model_meta.h"

#include <stdlib.h>
#include <string.h>

#define MAX_TENSORS 32

typedef struct tdesc {
    const char *name;
    size_t offset, size;
    int ndim;
    int64_t shape[RECSYS_TENSOR_MAX_DIMS];
} tdesc;

static void set_shape(tdesc *t, int ndim, int64_t a, int64_t b, int64_t c)
{
    t->ndim = ndim;
    t->shape[0] = a;
    t->shape[1] = b;
    t->shape[2] = c;
    t->shape[3] = 0;
}

/* Derived shape of a named tensor of model family cfg->type. */
static void derive_shape(const rs_model_config *c, tdesc *t)
{
    int64_t d = c->dim, nb = c->blocks, L = c->max_len, n = c->n_items, F = c->ffn_dim;
    int64_t h = c->heads, hdv = (int64_t)c->heads * c->dv;
    const char *s = t->name;
    set_shape(t, 1, (int64_t)t->size, 0, 0);
    if (!strcmp(s, "item_emb")) set_shape(t, 2, n + 1, d, 0);
    else if (!strcmp(s, "pos_emb")) set_shape(t, 2, L + 1, d, 0);
    else if (c->type == RS_MODEL_SASREC) {
        if (!strcmp(s, "final_ln.gamma") || !strcmp(s, "final_ln.beta")) set_shape(t, 1, d, 0, 0);
        else if (!strcmp(s, "attn.w_in")) set_shape(t, 3, nb, 3 * d, d);
        else if (!strcmp(s, "attn.b_in")) set_shape(t, 2, nb, 3 * d, 0);
        else if (!strcmp(s, "attn.w_out")) set_shape(t, 3, nb, d, d);
        else if (!strcmp(s, "ffn.w1")) set_shape(t, 3, nb, F, d);
        else if (!strcmp(s, "ffn.b1")) set_shape(t, 2, nb, F, 0);
        else if (!strcmp(s, "ffn.w2")) set_shape(t, 3, nb, d, F);
        else set_shape(t, 2, nb, d, 0); /* LN gains/biases, attn.b_out, ffn.b2 */
    } else {
        int64_t cols = 2 * h * (c->dv + c->dqk);
        if (!strcmp(s, "uvqk.weight")) set_shape(t, 3, nb, cols, d);
        else if (!strcmp(s, "rab_pos")) set_shape(t, 2, nb, 2 * L - 1, 0);
        else if (!strcmp(s, "rab_time")) set_shape(t, 2, nb, (int64_t)t->size / (nb ? nb : 1), 0);
        else if (!strcmp(s, "o.weight")) set_shape(t, 3, nb, d, hdv);
        else if (!strcmp(s, "o.bias")) set_shape(t, 2, nb, d, 0);
    }
    int64_t prod = 1;
    for (int i = 0; i < t->ndim; i++) prod *= t->shape[i];
    if (prod != (int64_t)t->size) set_shape(t, 1, (int64_t)t->size, 0, 0);
}

/* All tensors of m (at most MAX_TENSORS). */
static int list_tensors(const recsys_model *m, tdesc *out)
{
    const char *names[MAX_TENSORS];
    size_t offs[MAX_TENSORS], sizes[MAX_TENSORS];
    int n = m->ops->tensors(&m->cfg, NULL, NULL, NULL);
    if (n < 0 || n > MAX_TENSORS) return -1;
    m->ops->tensors(&m->cfg, names, offs, sizes);
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].name = names[i];
        out[i].offset = offs[i];
        out[i].size = sizes[i];
        derive_shape(&m->cfg, &out[i]);
    }
    return n;
}

static int find_tensor(const recsys_model *m, const char *name, tdesc *t)
{
    tdesc all[MAX_TENSORS];
    int n = list_tensors(m, all);
    for (int i = 0; i < n; i++)
        if (!strcmp(all[i].name, name)) {
            *t = all[i];
            return 1;
        }
    return 0;
}

recsys_status recsys_model_new_blank(recsys_ctx *ctx, const recsys_opts *opts, int32_t n_items,
                                     recsys_model **out)
{
    rs_enter(ctx);
    if (!out) return rs_error(ctx, RECSYS_E_INVALID, "recsys_model_new_blank: out is NULL");
    *out = NULL;
    rs_model_config cfg;
    /* No data: model.time_bias auto means off; say "on" to get the bias. */
    recsys_status st = rs_model_config_from_opts(ctx, opts, n_items, 0, &cfg);
    if (st) return st;
    rs_rng rng;
    rs_rng_seed(&rng, (uint64_t)rs_opt_int(opts, RS_OPT_TRAINER_SEED));
    return rs_model_create(ctx, &cfg, &rng, out);
}

recsys_status recsys_model_tensor_count(const recsys_model *m, int *n)
{
    rs_enter(NULL);
    if (!m || !n) return RS_BAD_ARGS();
    tdesc all[MAX_TENSORS];
    int k = list_tensors(m, all);
    if (k < 0) return rs_error(NULL, RECSYS_E_INTERNAL, "model lists too many tensors");
    *n = k;
    return RECSYS_OK;
}

recsys_status recsys_model_tensor_info(const recsys_model *m, int i, const char **name, int *ndim,
                                       int64_t *shape, int64_t *numel)
{
    rs_enter(NULL);
    if (!m || !name || !ndim) return RS_BAD_ARGS();
    tdesc all[MAX_TENSORS];
    int n = list_tensors(m, all);
    if (i < 0 || i >= n)
        return rs_error(NULL, RECSYS_E_NOT_FOUND, "tensor index %d out of range (%d tensors)", i, n);
    *name = all[i].name;
    *ndim = all[i].ndim;
    for (int k = 0; shape && k < RECSYS_TENSOR_MAX_DIMS; k++)
        shape[k] = k < all[i].ndim ? all[i].shape[k] : 0;
    if (numel) *numel = (int64_t)all[i].size;
    return RECSYS_OK;
}

recsys_status recsys_model_get_tensor(recsys_ctx *ctx, const recsys_model *m, const char *name,
                                      float *data, size_t n)
{
    rs_enter(ctx);
    if (!m || !name || (!data && n))
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_model_get_tensor: NULL argument");
    recsys_status whole = rs_model_whole(ctx, m, "recsys_model_get_tensor");
    if (whole) return whole;
    tdesc t;
    if (!find_tensor(m, name, &t))
        return rs_error(ctx, RECSYS_E_NOT_FOUND, "the model has no tensor '%s'", name);
    if (n != t.size)
        return rs_error(ctx, RECSYS_E_INVALID, "tensor '%s' has %zu floats, buffer holds %zu",
                        name, t.size, n);
    if (n) memcpy(data, m->params + t.offset, sizeof(float) * n);
    return RECSYS_OK;
}

recsys_status recsys_model_set_tensor(recsys_ctx *ctx, recsys_model *m, const char *name,
                                      const float *data, size_t n)
{
    rs_enter(ctx);
    if (!m || !name || (!data && n))
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_model_set_tensor: NULL argument");
    if (atomic_load(&m->refs) != 1)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_model_set_tensor: the model is in use "
                        "(a session or trainer holds it); set tensors before sharing it");
    tdesc t;
    if (!find_tensor(m, name, &t))
        return rs_error(ctx, RECSYS_E_NOT_FOUND, "the model has no tensor '%s'", name);
    if (n != t.size)
        return rs_error(ctx, RECSYS_E_INVALID, "tensor '%s' has %zu floats, %zu given", name,
                        t.size, n);
    for (size_t i = 0; i < n; i++)
        if (!(data[i] == data[i]) || data[i] - data[i] != 0.0f)
            return rs_error(ctx, RECSYS_E_INVALID, "tensor '%s': value %zu is not finite", name, i);
    if (n) memcpy(m->params + t.offset, data, sizeof(float) * n);
    /* The cached scoring table (normalised item vectors) is stale now. */
    pthread_mutex_lock(&m->meta->mu);
    rs_score_table_unref(m->meta->table);
    m->meta->table = NULL;
    pthread_mutex_unlock(&m->meta->mu);
    return RECSYS_OK;
}

recsys_status recsys_model_set_item_ids(recsys_ctx *ctx, recsys_model *m, const char *const *ids,
                                        int32_t n)
{
    rs_enter(ctx);
    if (!m || !ids) return rs_error(ctx, RECSYS_E_INVALID, "recsys_model_set_item_ids: NULL argument");
    if (atomic_load(&m->refs) != 1)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_model_set_item_ids: the model is in use");
    return rs_model_meta_set_names(ctx, m, ids, n);
}

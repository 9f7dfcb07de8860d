/* recsys_model: config <-> opts, creation with the family's ops table, and
 * the public handle (ref-counted; trainers and sessions hold references). */
#include "models/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *norm_name(enum rs_norm n)
{
    switch (n) {
    case RS_NORM_POST: return "post";
    case RS_NORM_PRE: return "pre";
    default: return "original";
    }
}

recsys_status rs_model_config_from_opts(recsys_ctx *ctx, const recsys_opts *opts,
                                        int n_items, int has_time, rs_model_config *cfg)
{
    if (!cfg) return rs_error(ctx, RECSYS_E_INVALID, "model config: cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    if (n_items < 1)
        return rs_error(ctx, RECSYS_E_INVALID, "model config: the catalogue is empty (n_items = %d)",
                        n_items);
    const char *type = rs_opts_str(opts, "model.type");
    if (!strcmp(type, "sasrec")) cfg->type = RS_MODEL_SASREC;
    else if (!strcmp(type, "hstu")) cfg->type = RS_MODEL_HSTU;
    else return rs_error(ctx, RECSYS_E_INVALID, "model.type: unknown model '%s'", type);
    cfg->n_items = n_items;
    cfg->max_len = (int)rs_opts_int(opts, "model.max_len");
    cfg->dim = (int)rs_opts_int(opts, "model.dim");
    cfg->blocks = (int)rs_opts_int(opts, "model.blocks");
    cfg->heads = (int)rs_opts_int(opts, "model.heads");
    cfg->ffn_dim = (int)rs_opts_int(opts, "model.ffn_dim");
    cfg->dqk = (int)rs_opts_int(opts, "model.dqk");
    cfg->dv = (int)rs_opts_int(opts, "model.dv");
    cfg->dropout = (float)rs_opts_float(opts, "model.dropout");
    const char *norm = rs_opts_str(opts, "model.norm");
    cfg->norm = !strcmp(norm, "post") ? RS_NORM_POST
              : !strcmp(norm, "pre")  ? RS_NORM_PRE
                                      : RS_NORM_ORIGINAL;
    const char *tb = rs_opts_str(opts, "model.time_bias");
    cfg->time_bias = !strcmp(tb, "on") || (!strcmp(tb, "auto") && has_time);
    const char *l2 = rs_opts_str(opts, "model.l2norm");
    cfg->l2norm = !strcmp(l2, "on") || (!strcmp(l2, "auto") && cfg->type == RS_MODEL_HSTU);

    if (cfg->max_len < 1 || cfg->dim < 1 || cfg->blocks < 1 || cfg->heads < 1 ||
        cfg->ffn_dim < 0 || cfg->dqk < 0 || cfg->dv < 0 || !(cfg->dropout >= 0.0f) ||
        !(cfg->dropout < 1.0f))
        return rs_error(ctx, RECSYS_E_INVALID, "model config: sizes must be positive and "
                        "model.dropout in [0, 1)");
    if (cfg->ffn_dim == 0) cfg->ffn_dim = cfg->dim;
    if (cfg->type == RS_MODEL_SASREC && cfg->dim % cfg->heads != 0)
        return rs_error(ctx, RECSYS_E_INVALID,
                        "model.dim (%d) must be divisible by model.heads (%d) for SASRec",
                        cfg->dim, cfg->heads);
    if (cfg->type == RS_MODEL_HSTU && (cfg->dqk == 0 || cfg->dv == 0) &&
        cfg->dim % cfg->heads != 0)
        return rs_error(ctx, RECSYS_E_INVALID,
                        "model.dim (%d) must be divisible by model.heads (%d) unless model.dqk "
                        "and model.dv are set", cfg->dim, cfg->heads);
    if (cfg->dqk == 0) cfg->dqk = cfg->dim / cfg->heads;
    if (cfg->dv == 0) cfg->dv = cfg->dim / cfg->heads;
    return RECSYS_OK;
}

/* Shortest decimal that reads back as the same float ("0.2", not 0.2000000030). */
static void format_float(char *buf, size_t n, float v)
{
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

recsys_status rs_model_config_to_opts(const rs_model_config *cfg, recsys_opts *o)
{
    if (!cfg || !o) return RECSYS_E_INVALID;
    char f[32];
    format_float(f, sizeof f, cfg->dropout);
    recsys_status st = RECSYS_OK;
    if (!st) st = recsys_opts_set(o, "model.type", cfg->type == RS_MODEL_HSTU ? "hstu" : "sasrec");
    if (!st) st = recsys_opts_set_int(o, "model.max_len", cfg->max_len);
    if (!st) st = recsys_opts_set_int(o, "model.dim", cfg->dim);
    if (!st) st = recsys_opts_set_int(o, "model.blocks", cfg->blocks);
    if (!st) st = recsys_opts_set_int(o, "model.heads", cfg->heads);
    if (!st) st = recsys_opts_set(o, "model.dropout", f);
    if (!st) st = recsys_opts_set(o, "model.norm", norm_name(cfg->norm));
    if (!st) st = recsys_opts_set_int(o, "model.ffn_dim", cfg->ffn_dim);
    if (!st) st = recsys_opts_set_int(o, "model.dqk", cfg->dqk);
    if (!st) st = recsys_opts_set_int(o, "model.dv", cfg->dv);
    if (!st) st = recsys_opts_set(o, "model.time_bias", cfg->time_bias ? "on" : "off");
    if (!st) st = recsys_opts_set(o, "model.l2norm", cfg->l2norm ? "on" : "off");
    return st;
}

const rs_model_ops *rs_model_ops_for(enum rs_model_type t)
{
    if (t == RS_MODEL_SASREC) return &rs_sasrec_ops;
    if (t == RS_MODEL_HSTU) return &rs_hstu_ops;
    return NULL;
}

static void model_destroy(recsys_model *m)
{
    if (!m) return;
    rs_free(m->params);
    recsys_opts_free(m->cfg_opts);
    free(m);
}

recsys_status rs_model_create(recsys_ctx *ctx, const rs_model_config *cfg, rs_rng *rng,
                              recsys_model **out)
{
    if (!cfg || !out) return rs_error(ctx, RECSYS_E_INVALID, "rs_model_create: NULL argument");
    *out = NULL;
    const rs_model_ops *ops = rs_model_ops_for(cfg->type);
    if (!ops)
        return rs_error(ctx, RECSYS_E_UNSUPPORTED, "model type %d is not built into this library",
                        (int)cfg->type);
    recsys_model *m = calloc(1, sizeof *m);
    if (!m) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory creating a model");
    atomic_init(&m->refs, 1);
    m->cfg = *cfg;
    m->ops = ops;
    m->n_params = ops->n_params(cfg);
    size_t bytes = rs_mul_size(m->n_params, sizeof(float));
    m->params = bytes ? rs_calloc(m->n_params, sizeof(float)) : NULL;
    /* The config opts have no ctx: the model outlives the ctx that made it. */
    recsys_status st = m->params ? recsys_opts_new(NULL, &m->cfg_opts) : RECSYS_E_NOMEM;
    if (!st) st = rs_model_config_to_opts(cfg, m->cfg_opts);
    if (st) {
        model_destroy(m);
        return rs_error(ctx, st == RECSYS_E_NOMEM ? RECSYS_E_NOMEM : RECSYS_E_INTERNAL,
                        "cannot create a model of %zu parameters", ops->n_params(cfg));
    }
    if (rng) ops->init(cfg, m->params, rng);
    *out = m;
    return RECSYS_OK;
}

recsys_status recsys_model_new(recsys_ctx *ctx, const recsys_opts *opts, const recsys_dataset *ds,
                               recsys_model **out)
{
    if (!out) return rs_error(ctx, RECSYS_E_INVALID, "recsys_model_new: out is NULL");
    *out = NULL;
    if (!ds) return rs_error(ctx, RECSYS_E_INVALID, "recsys_model_new: dataset is NULL");
    rs_model_config cfg;
    recsys_status st = rs_model_config_from_opts(ctx, opts, ds->n_items, ds->times != NULL, &cfg);
    if (st) return st;
    const rs_model_ops *ops = rs_model_ops_for(cfg.type);
    if (ops && (st = rs_check_memory(ctx, opts, (double)ops->n_params(&cfg) * sizeof(float),
                                     "the model's weights")))
        return st;
    rs_rng rng;
    rs_rng_seed(&rng, (uint64_t)rs_opts_int(opts, "trainer.seed"));
    return rs_model_create(ctx, &cfg, &rng, out);
}

void recsys_model_free(recsys_model *m)
{
    if (!m) return;
    if (atomic_fetch_sub(&m->refs, 1) == 1) model_destroy(m);
}

recsys_status recsys_model_n_params(const recsys_model *m, int64_t *n)
{
    if (!m || !n) return RECSYS_E_INVALID;
    *n = (int64_t)m->n_params;
    return RECSYS_OK;
}

recsys_status recsys_model_get(const recsys_model *m, const char *key, const char **value)
{
    if (!m || !key || !value) return RECSYS_E_INVALID;
    if (strncmp(key, "model.", 6) != 0) return RECSYS_E_NOT_FOUND;
    return recsys_opts_get(m->cfg_opts, key, value);
}

/* recsys_model: config <-> opts, creation with the family's ops table, and
 * the public handle (ref-counted; trainers and sessions hold references). */
#include "models/model.h"
#include "models/model_meta.h"

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
    if (rs_opt_is(opts, RS_OPT_MODEL_TYPE, "sasrec")) cfg->type = RS_MODEL_SASREC;
    else if (rs_opt_is(opts, RS_OPT_MODEL_TYPE, "hstu")) cfg->type = RS_MODEL_HSTU;
    else return rs_error(ctx, RECSYS_E_INVALID, "model.type: unknown model '%s'",
                         rs_opt_enum(opts, RS_OPT_MODEL_TYPE));
    cfg->n_items = n_items;
    cfg->max_len = (int)rs_opt_int(opts, RS_OPT_MODEL_MAX_LEN);
    cfg->dim = (int)rs_opt_int(opts, RS_OPT_MODEL_DIM);
    cfg->blocks = (int)rs_opt_int(opts, RS_OPT_MODEL_BLOCKS);
    cfg->heads = (int)rs_opt_int(opts, RS_OPT_MODEL_HEADS);
    cfg->ffn_dim = (int)rs_opt_int(opts, RS_OPT_MODEL_FFN_DIM);
    cfg->dqk = (int)rs_opt_int(opts, RS_OPT_MODEL_DQK);
    cfg->dv = (int)rs_opt_int(opts, RS_OPT_MODEL_DV);
    cfg->dropout = (float)rs_opt_float(opts, RS_OPT_MODEL_DROPOUT);
    cfg->norm = rs_opt_is(opts, RS_OPT_MODEL_NORM, "post") ? RS_NORM_POST
              : rs_opt_is(opts, RS_OPT_MODEL_NORM, "pre")  ? RS_NORM_PRE
                                                            : RS_NORM_ORIGINAL;
    cfg->time_bias = rs_opt_is(opts, RS_OPT_MODEL_TIME_BIAS, "on") ||
                     (rs_opt_is(opts, RS_OPT_MODEL_TIME_BIAS, "auto") && has_time);
    cfg->l2norm = rs_opt_is(opts, RS_OPT_MODEL_L2NORM, "on") ||
                  (rs_opt_is(opts, RS_OPT_MODEL_L2NORM, "auto") && cfg->type == RS_MODEL_HSTU);
    cfg->pos_from_start = rs_opt_is(opts, RS_OPT_MODEL_POSITIONS, "start");

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
    if (!cfg || !o) return RS_BAD_ARGS();
    char f[32];
    format_float(f, sizeof f, cfg->dropout);
    recsys_status st = RECSYS_OK;
    if (!st) st = rs_opt_set(o, RS_OPT_MODEL_TYPE, cfg->type == RS_MODEL_HSTU ? "hstu" : "sasrec");
    if (!st) st = rs_opt_set_int(o, RS_OPT_MODEL_MAX_LEN, cfg->max_len);
    if (!st) st = rs_opt_set_int(o, RS_OPT_MODEL_DIM, cfg->dim);
    if (!st) st = rs_opt_set_int(o, RS_OPT_MODEL_BLOCKS, cfg->blocks);
    if (!st) st = rs_opt_set_int(o, RS_OPT_MODEL_HEADS, cfg->heads);
    if (!st) st = rs_opt_set(o, RS_OPT_MODEL_DROPOUT, f);
    if (!st) st = rs_opt_set(o, RS_OPT_MODEL_NORM, norm_name(cfg->norm));
    if (!st) st = rs_opt_set_int(o, RS_OPT_MODEL_FFN_DIM, cfg->ffn_dim);
    if (!st) st = rs_opt_set_int(o, RS_OPT_MODEL_DQK, cfg->dqk);
    if (!st) st = rs_opt_set_int(o, RS_OPT_MODEL_DV, cfg->dv);
    if (!st) st = rs_opt_set(o, RS_OPT_MODEL_TIME_BIAS, cfg->time_bias ? "on" : "off");
    if (!st) st = rs_opt_set(o, RS_OPT_MODEL_L2NORM, cfg->l2norm ? "on" : "off");
    /* only when not the default: checkpoints of `end` models stay as older
     * versions of the library wrote (and read) them */
    if (!st && cfg->pos_from_start) st = rs_opt_set(o, RS_OPT_MODEL_POSITIONS, "start");
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
    rs_model_meta_free(m->meta);
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
    m->meta = rs_model_meta_new(cfg->n_items);
    recsys_status st = m->params && m->meta ? recsys_opts_new(NULL, &m->cfg_opts) : RECSYS_E_NOMEM;
    if (!st) st = rs_model_config_to_opts(cfg, m->cfg_opts);
    if (st) {
        model_destroy(m);
        return rs_error(ctx, st == RECSYS_E_NOMEM ? RECSYS_E_NOMEM : RECSYS_E_INTERNAL,
                        "cannot create a model of %zu parameters", ops->n_params(cfg));
    }
    if (rng) ops->init(cfg, m->params, rng);
    rs_log(ctx, RECSYS_LOG_INFO,
           "model: %s, %zu parameters (dim %d, %d blocks, %d heads, max_len %d, %d items)",
           cfg->type == RS_MODEL_HSTU ? "hstu" : "sasrec", m->n_params, cfg->dim, cfg->blocks,
           cfg->heads, cfg->max_len, cfg->n_items);
    *out = m;
    return RECSYS_OK;
}

recsys_status recsys_model_new(recsys_ctx *ctx, const recsys_opts *opts, const recsys_dataset *ds,
                               recsys_model **out)
{
    rs_enter(ctx);
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
    rs_rng_seed(&rng, (uint64_t)rs_opt_int(opts, RS_OPT_TRAINER_SEED));
    st = rs_model_create(ctx, &cfg, &rng, out);
    if (!st && (st = rs_model_meta_from_dataset(ctx, *out, ds))) {
        recsys_model_free(*out);
        *out = NULL;
    }
    return st;
}

recsys_status rs_model_whole(recsys_ctx *ctx, const recsys_model *m, const char *what)
{
    if (!m || !m->sharded) return RECSYS_OK;
    return rs_error(ctx, RECSYS_E_STATE,
                    "%s: the model's item table is row-sharded across ranks (dist.shard_items); "
                    "gather it with recsys_trainer_set_collective(trainer, NULL) on every rank "
                    "first, or use recsys_evaluate_distributed",
                    what);
}

void recsys_model_free(recsys_model *m)
{
    if (!m) return;
    if (atomic_fetch_sub(&m->refs, 1) == 1) model_destroy(m);
}

recsys_status recsys_model_n_params(const recsys_model *m, int64_t *n)
{
    rs_enter(NULL);
    if (!m || !n) return RS_BAD_ARGS();
    *n = (int64_t)m->n_params;
    return RECSYS_OK;
}

recsys_status recsys_model_n_items(const recsys_model *m, int32_t *n)
{
    rs_enter(NULL);
    if (!m || !n) return RS_BAD_ARGS();
    *n = (int32_t)m->cfg.n_items;
    return RECSYS_OK;
}

recsys_status recsys_model_get(const recsys_model *m, const char *key, const char **value)
{
    rs_enter(NULL);
    if (!m || !key || !value) return RS_BAD_ARGS();
    if (strncmp(key, "model.", 6) != 0)
        return rs_error(NULL, RECSYS_E_NOT_FOUND, "recsys_model_get: '%s' is not a model.* key", key);
    return recsys_opts_get(m->cfg_opts, key, value);
}

/* recsys_opts: the table of known keys (type, default, allowed values) and
 * a value per key. The YAML loader, the CLI's --set and the API all go
 * through recsys_opts_set, so every path validates the same way. */
#include "core/internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_type { OPT_STR, OPT_INT, OPT_FLOAT, OPT_ENUM, OPT_BOOL, OPT_INT_LIST };

typedef struct opt_def {
    const char *key;
    enum opt_type type;
    const char *def;
    double lo, hi;        /* bounds for INT, FLOAT and each INT_LIST element */
    const char *choices;  /* '|'-separated for ENUM */
} opt_def;

#define BIG 1e18
static const opt_def DEFS[] = {
    {"data.path", OPT_STR, "synthetic", 0, 0, NULL},
    {"data.format", OPT_ENUM, "auto", 0, 0, "auto|interactions|sequences"},
    {"data.times_path", OPT_STR, "", 0, 0, NULL},
    {"data.min_user_count", OPT_INT, "0", 0, BIG, NULL},
    {"data.min_item_count", OPT_INT, "0", 0, BIG, NULL},
    {"data.split", OPT_ENUM, "loo", 0, 0, "loo|last"},
    {"data.header", OPT_ENUM, "auto", 0, 0, "auto|true|false"},
    {"data.synthetic_users", OPT_INT, "2000", 1, 1e8, NULL},
    {"data.synthetic_items", OPT_INT, "400", 2, 1e8, NULL},
    {"data.synthetic_length", OPT_INT, "60", 4, 1e6, NULL},
    {"data.synthetic_noise", OPT_FLOAT, "0.15", 0, 1, NULL},
    {"model.type", OPT_ENUM, "sasrec", 0, 0, "sasrec|hstu"},
    {"model.max_len", OPT_INT, "50", 1, 65536, NULL},
    {"model.dim", OPT_INT, "50", 1, 65536, NULL},
    {"model.blocks", OPT_INT, "2", 1, 1024, NULL},
    {"model.heads", OPT_INT, "1", 1, 1024, NULL},
    {"model.dropout", OPT_FLOAT, "0.2", 0, 0.99, NULL},
    {"model.norm", OPT_ENUM, "original", 0, 0, "original|post|pre"},
    {"model.ffn_dim", OPT_INT, "0", 0, 1048576, NULL},
    {"model.dqk", OPT_INT, "0", 0, 65536, NULL},
    {"model.dv", OPT_INT, "0", 0, 65536, NULL},
    {"model.time_bias", OPT_ENUM, "auto", 0, 0, "auto|on|off"},
    {"model.l2norm", OPT_ENUM, "auto", 0, 0, "auto|on|off"},
    {"trainer.epochs", OPT_INT, "20", 0, 1e9, NULL},
    {"trainer.batch_size", OPT_INT, "128", 1, 1e7, NULL},
    {"trainer.lr", OPT_FLOAT, "0.001", 0, 10, NULL},
    {"trainer.beta1", OPT_FLOAT, "0.9", 0, 0.999999, NULL},
    {"trainer.beta2", OPT_FLOAT, "0.98", 0, 0.999999, NULL},
    {"trainer.eps", OPT_FLOAT, "1e-8", 0, 1, NULL},
    {"trainer.weight_decay", OPT_FLOAT, "0", 0, 10, NULL},
    {"trainer.optimizer", OPT_ENUM, "adam", 0, 0, "adam|adamw"},
    {"trainer.seed", OPT_INT, "42", 0, 9.2e18, NULL},
    {"trainer.threads", OPT_INT, "0", 0, 1024, NULL},
    {"trainer.loss", OPT_ENUM, "bce", 0, 0, "bce|sampled_softmax"},
    {"trainer.negatives", OPT_INT, "128", 1, 1e6, NULL},
    {"trainer.temperature", OPT_FLOAT, "0.05", 1e-6, 1e6, NULL},
    {"trainer.shared_negatives", OPT_BOOL, "false", 0, 0, NULL},
    {"trainer.bf16", OPT_BOOL, "false", 0, 0, NULL},
    {"trainer.eval_every", OPT_INT, "0", 0, 1e9, NULL},
    {"trainer.checkpoint", OPT_STR, "", 0, 0, NULL},
    {"trainer.checkpoint_every", OPT_INT, "1", 1, 1e9, NULL},
    {"eval.protocol", OPT_ENUM, "sampled", 0, 0, "sampled|full"},
    {"eval.split", OPT_ENUM, "valid", 0, 0, "valid|test"},
    {"eval.negatives", OPT_INT, "100", 1, 1e7, NULL},
    {"eval.exclude_history", OPT_BOOL, "true", 0, 0, NULL},
    {"eval.ks", OPT_INT_LIST, "1,5,10,20,50", 1, 1000000, NULL},
    {"eval.batch_size", OPT_INT, "128", 1, 1e6, NULL},
    {"apen.m", OPT_INT, "2", 1, 1024, NULL},
    {"apen.r", OPT_FLOAT, "0", -1e18, 1e18, NULL},
    {"apen.window", OPT_INT, "0", 0, 1e12, NULL},
    /* bytes a configuration may need for its largest buffers (model, trainer,
     * evaluation); 0 = automatic: the smaller of 3/4 of the physical memory
     * and the address-space limit (ulimit -v) */
    {"resources.max_memory", OPT_INT, "0", 0, 9.2e18, NULL},
};
#define N_DEFS ((int)(sizeof DEFS / sizeof DEFS[0]))

struct recsys_opts {
    recsys_ctx *ctx;
    char *values[N_DEFS]; /* NULL = default */
};

static int find_key(const char *key)
{
    if (!key) return -1;
    for (int i = 0; i < N_DEFS; i++)
        if (!strcmp(DEFS[i].key, key)) return i;
    return -1;
}

recsys_status recsys_opts_new(recsys_ctx *ctx, recsys_opts **out)
{
    if (!out) return rs_error(ctx, RECSYS_E_INVALID, "recsys_opts_new: out is NULL");
    *out = NULL;
    recsys_opts *o = calloc(1, sizeof *o);
    if (!o) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    o->ctx = ctx;
    *out = o;
    return RECSYS_OK;
}

void recsys_opts_free(recsys_opts *o)
{
    if (!o) return;
    for (int i = 0; i < N_DEFS; i++) free(o->values[i]);
    free(o);
}

recsys_ctx *rs_opts_ctx(const recsys_opts *o) { return o ? o->ctx : NULL; }

static int parse_bool(const char *v, int *b)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcmp(v, yes[i])) { *b = 1; return 1; }
        if (!strcmp(v, no[i])) { *b = 0; return 1; }
    }
    return 0;
}

static int in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* Validate value for def; writes a reason into why on failure. */
static int validate(const opt_def *d, const char *v, char *why, size_t why_len)
{
    char *end;
    switch (d->type) {
    case OPT_STR: return 1;
    case OPT_BOOL: {
        int b;
        if (parse_bool(v, &b)) return 1;
        snprintf(why, why_len, "expected true or false");
        return 0;
    }
    case OPT_ENUM:
        if (in_choices(d->choices, v)) return 1;
        snprintf(why, why_len, "expected one of %s", d->choices);
        return 0;
    case OPT_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno) { snprintf(why, why_len, "expected an integer"); return 0; }
        if ((double)x < d->lo || (double)x > d->hi) {
            snprintf(why, why_len, "must be in [%g, %g]", d->lo, d->hi);
            return 0;
        }
        return 1;
    }
    case OPT_INT_LIST: { /* "1,5,10": 1..RS_MAX_KS comma-separated integers in [lo, hi] */
        const char *p = v;
        int n = 0;
        for (;;) {
            while (*p == ' ') p++;
            errno = 0;
            long long x = strtoll(p, &end, 10);
            if (end == p || errno) {
                snprintf(why, why_len, "expected comma-separated integers");
                return 0;
            }
            if ((double)x < d->lo || (double)x > d->hi) {
                snprintf(why, why_len, "each value must be in [%g, %g]", d->lo, d->hi);
                return 0;
            }
            if (++n > 16) {
                snprintf(why, why_len, "at most 16 values");
                return 0;
            }
            p = end;
            while (*p == ' ') p++;
            if (!*p) return 1;
            if (*p != ',') {
                snprintf(why, why_len, "unexpected '%c'", *p);
                return 0;
            }
            p++;
        }
    }
    case OPT_FLOAT: {
        errno = 0;
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x)) {
            snprintf(why, why_len, "expected a finite number");
            return 0;
        }
        if (x < d->lo || x > d->hi) {
            snprintf(why, why_len, "must be in [%g, %g]", d->lo, d->hi);
            return 0;
        }
        return 1;
    }
    }
    return 0;
}

recsys_status recsys_opts_set(recsys_opts *o, const char *key, const char *value)
{
    if (!o) return RECSYS_E_INVALID;
    int i = find_key(key);
    if (i < 0) return rs_error(o->ctx, RECSYS_E_NOT_FOUND, "unknown option '%s'", key ? key : "(null)");
    if (!value) return rs_error(o->ctx, RECSYS_E_INVALID, "option '%s': value is NULL", key);
    char why[160];
    if (!validate(&DEFS[i], value, why, sizeof why))
        return rs_error(o->ctx, RECSYS_E_INVALID, "option '%s': bad value '%s': %s", key, value, why);
    char *copy = strdup(value);
    if (!copy) return rs_error(o->ctx, RECSYS_E_NOMEM, "out of memory");
    free(o->values[i]);
    o->values[i] = copy;
    return RECSYS_OK;
}

recsys_status recsys_opts_set_int(recsys_opts *o, const char *key, int64_t value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)value);
    return recsys_opts_set(o, key, buf);
}

recsys_status recsys_opts_set_float(recsys_opts *o, const char *key, double value)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", value);
    return recsys_opts_set(o, key, buf);
}

recsys_status recsys_opts_get(const recsys_opts *o, const char *key, const char **value)
{
    if (!o || !value) return RECSYS_E_INVALID;
    int i = find_key(key);
    if (i < 0) return rs_error(o->ctx, RECSYS_E_NOT_FOUND, "unknown option '%s'", key ? key : "(null)");
    *value = o->values[i] ? o->values[i] : DEFS[i].def;
    return RECSYS_OK;
}

recsys_status recsys_opts_get_int(const recsys_opts *o, const char *key, int64_t *value)
{
    const char *v = NULL;
    recsys_status st = recsys_opts_get(o, key, &v);
    if (st) return st;
    int i = find_key(key);
    if (DEFS[i].type == OPT_BOOL) { int b = 0; parse_bool(v, &b); *value = b; return RECSYS_OK; }
    if (DEFS[i].type != OPT_INT)
        return rs_error(o->ctx, RECSYS_E_INVALID, "option '%s' is not an integer", key);
    *value = strtoll(v, NULL, 10);
    return RECSYS_OK;
}

recsys_status recsys_opts_get_float(const recsys_opts *o, const char *key, double *value)
{
    const char *v = NULL;
    recsys_status st = recsys_opts_get(o, key, &v);
    if (st) return st;
    int i = find_key(key);
    if (DEFS[i].type != OPT_FLOAT && DEFS[i].type != OPT_INT)
        return rs_error(o->ctx, RECSYS_E_INVALID, "option '%s' is not a number", key);
    *value = strtod(v, NULL);
    return RECSYS_OK;
}

int recsys_opts_count(const recsys_opts *o) { (void)o; return N_DEFS; }

const char *recsys_opts_key(const recsys_opts *o, int i)
{
    (void)o;
    return i >= 0 && i < N_DEFS ? DEFS[i].key : NULL;
}

/* Internal getters: NULL opts means defaults; unknown keys are programming
 * errors and read as the empty string / zero. */
const char *rs_opts_str(const recsys_opts *o, const char *key)
{
    int i = find_key(key);
    if (i < 0) return "";
    return o && o->values[i] ? o->values[i] : DEFS[i].def;
}

int64_t rs_opts_int(const recsys_opts *o, const char *key)
{
    int i = find_key(key);
    if (i < 0) return 0;
    const char *v = rs_opts_str(o, key);
    if (DEFS[i].type == OPT_BOOL) { int b = 0; parse_bool(v, &b); return b; }
    return strtoll(v, NULL, 10);
}

double rs_opts_float(const recsys_opts *o, const char *key)
{
    return strtod(rs_opts_str(o, key), NULL);
}

/* All-or-nothing updates (the YAML loader): work on a copy, then swap. */
recsys_status rs_opts_copy(const recsys_opts *src, recsys_opts **out)
{
    if (!src || !out) return RECSYS_E_INVALID;
    recsys_status st = recsys_opts_new(src->ctx, out);
    if (st) return st;
    for (int i = 0; i < N_DEFS; i++) {
        if (!src->values[i]) continue;
        if (!((*out)->values[i] = strdup(src->values[i]))) {
            recsys_opts_free(*out);
            *out = NULL;
            return rs_error(src->ctx, RECSYS_E_NOMEM, "out of memory");
        }
    }
    return RECSYS_OK;
}

void rs_opts_swap_values(recsys_opts *a, recsys_opts *b)
{
    for (int i = 0; i < N_DEFS; i++) {
        char *t = a->values[i];
        a->values[i] = b->values[i];
        b->values[i] = t;
    }
}

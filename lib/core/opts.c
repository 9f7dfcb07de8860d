/* recsys_opts: a value per known key. The keys, with their type, default,
 * bounds and doc, come from the table in core/options.def. The YAML loader,
 * the CLI's --set and the API all go through recsys_opts_set, so every path
 * validates the same way; library code reads values with the typed
 * accessors of core/internal.h. */
#include "core/internal.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opt_def {
    const char *key;
    enum rs_opt_type type;
    const char *def;
    double lo, hi;        /* bounds for INT, FLOAT and each INT_LIST element */
    const char *choices;  /* '|'-separated for ENUM */
    const char *allowed;  /* doc phrase for the allowed values, or NULL */
    const char *doc;
} opt_def;

static const opt_def DEFS[RS_OPT_COUNT] = {
#define RS_OPT(id, key, type, def, lo, hi, choices, allowed, doc)                                \
    [RS_OPT_##id] = {key, RS_OPT_T_##type, def, lo, hi, choices, allowed, doc},
#include "core/options.def"
#undef RS_OPT
};
#define N_DEFS ((int)RS_OPT_COUNT)

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
    rs_enter(ctx);
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
    case RS_OPT_T_STR: return 1;
    case RS_OPT_T_BOOL: {
        int b;
        if (parse_bool(v, &b)) return 1;
        snprintf(why, why_len, "expected true or false");
        return 0;
    }
    case RS_OPT_T_ENUM:
        if (in_choices(d->choices, v)) return 1;
        snprintf(why, why_len, "expected one of %s", d->choices);
        return 0;
    case RS_OPT_T_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno) { snprintf(why, why_len, "expected an integer"); return 0; }
        if ((double)x < d->lo || (double)x > d->hi) {
            snprintf(why, why_len, "must be in [%g, %g]", d->lo, d->hi);
            return 0;
        }
        return 1;
    }
    case RS_OPT_T_INT_LIST: { /* "1,5,10": 1..RS_MAX_KS comma-separated integers in [lo, hi] */
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
    case RS_OPT_T_FLOAT: {
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
    rs_enter(rs_opts_ctx(o));
    if (!o) return RS_BAD_ARGS();
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
    rs_enter(rs_opts_ctx(o));
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)value);
    return recsys_opts_set(o, key, buf);
}

recsys_status recsys_opts_set_float(recsys_opts *o, const char *key, double value)
{
    rs_enter(rs_opts_ctx(o));
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", value);
    return recsys_opts_set(o, key, buf);
}

recsys_status recsys_opts_get(const recsys_opts *o, const char *key, const char **value)
{
    rs_enter(rs_opts_ctx(o));
    if (!o || !value) return RS_BAD_ARGS();
    int i = find_key(key);
    if (i < 0) return rs_error(o->ctx, RECSYS_E_NOT_FOUND, "unknown option '%s'", key ? key : "(null)");
    *value = o->values[i] ? o->values[i] : DEFS[i].def;
    return RECSYS_OK;
}

recsys_status recsys_opts_get_int(const recsys_opts *o, const char *key, int64_t *value)
{
    rs_enter(rs_opts_ctx(o));
    const char *v = NULL;
    recsys_status st = recsys_opts_get(o, key, &v);
    if (st) return st;
    int i = find_key(key);
    if (DEFS[i].type == RS_OPT_T_BOOL) { int b = 0; parse_bool(v, &b); *value = b; return RECSYS_OK; }
    if (DEFS[i].type != RS_OPT_T_INT)
        return rs_error(o->ctx, RECSYS_E_INVALID, "option '%s' is not an integer", key);
    *value = strtoll(v, NULL, 10);
    return RECSYS_OK;
}

recsys_status recsys_opts_get_float(const recsys_opts *o, const char *key, double *value)
{
    rs_enter(rs_opts_ctx(o));
    const char *v = NULL;
    recsys_status st = recsys_opts_get(o, key, &v);
    if (st) return st;
    int i = find_key(key);
    if (DEFS[i].type != RS_OPT_T_FLOAT && DEFS[i].type != RS_OPT_T_INT)
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

static const char *const TYPE_NAMES[] = {
    [RS_OPT_T_STR] = "string", [RS_OPT_T_INT] = "int",   [RS_OPT_T_FLOAT] = "float",
    [RS_OPT_T_ENUM] = "enum",  [RS_OPT_T_BOOL] = "bool", [RS_OPT_T_INT_LIST] = "int list",
};
static const int PUBLIC_TYPES[] = {
    [RS_OPT_T_STR] = RECSYS_OPT_STRING, [RS_OPT_T_INT] = RECSYS_OPT_INT,
    [RS_OPT_T_FLOAT] = RECSYS_OPT_FLOAT, [RS_OPT_T_ENUM] = RECSYS_OPT_ENUM,
    [RS_OPT_T_BOOL] = RECSYS_OPT_BOOL, [RS_OPT_T_INT_LIST] = RECSYS_OPT_INT_LIST,
};

recsys_status recsys_opts_describe(int i, recsys_opt_info *info)
{
    /* The fields of the first version: callers built against it pass this size. */
    const size_t v1_size = offsetof(recsys_opt_info, doc) + sizeof info->doc;
    rs_enter(NULL);
    if (!info || info->struct_size < 0 || (size_t)info->struct_size < v1_size)
        return rs_error(NULL, RECSYS_E_INVALID, "recsys_opts_describe: info NULL or struct_size too small");
    if (i < 0 || i >= N_DEFS)
        return rs_error(NULL, RECSYS_E_NOT_FOUND, "recsys_opts_describe: no option %d (there are %d)", i, N_DEFS);
    const opt_def *d = &DEFS[i];
    int numeric = d->type == RS_OPT_T_INT || d->type == RS_OPT_T_FLOAT || d->type == RS_OPT_T_INT_LIST;
    size_t n = (size_t)info->struct_size < sizeof(recsys_opt_info) ? (size_t)info->struct_size
                                                                   : sizeof(recsys_opt_info);
    recsys_opt_info full = {
        .struct_size = (int)n,
        .type = PUBLIC_TYPES[d->type],
        .key = d->key,
        .type_name = TYPE_NAMES[d->type],
        .default_value = d->def,
        .choices = d->choices,
        .min = numeric ? d->lo : 0.0,
        .max = numeric ? d->hi : 0.0,
        .allowed = d->allowed,
        .doc = d->doc,
    };
    memcpy(info, &full, n);
    return RECSYS_OK;
}

/* ------------------------------------------------------- typed accessors */

const char *rs_opt_text(const recsys_opts *o, rs_opt_id id)
{
    assert(id >= 0 && id < RS_OPT_COUNT);
    return o && o->values[id] ? o->values[id] : DEFS[id].def;
}

int64_t rs_opt_int_value(const recsys_opts *o, rs_opt_id id)
{
    assert(DEFS[id].type == RS_OPT_T_INT);
    return strtoll(rs_opt_text(o, id), NULL, 10);
}

double rs_opt_float_value(const recsys_opts *o, rs_opt_id id)
{
    assert(DEFS[id].type == RS_OPT_T_FLOAT);
    return strtod(rs_opt_text(o, id), NULL);
}

int rs_opt_bool_value(const recsys_opts *o, rs_opt_id id)
{
    assert(DEFS[id].type == RS_OPT_T_BOOL);
    int b = 0;
    parse_bool(rs_opt_text(o, id), &b);
    return b;
}

int rs_opt_enum_is(const recsys_opts *o, rs_opt_id id, const char *choice)
{
    assert(DEFS[id].type == RS_OPT_T_ENUM && in_choices(DEFS[id].choices, choice));
    return !strcmp(rs_opt_text(o, id), choice);
}

recsys_status rs_opt_set_text(recsys_opts *o, rs_opt_id id, const char *text)
{
    assert(id >= 0 && id < RS_OPT_COUNT);
    return recsys_opts_set(o, DEFS[id].key, text);
}

recsys_status rs_opt_set_int_value(recsys_opts *o, rs_opt_id id, int64_t v)
{
    assert(DEFS[id].type == RS_OPT_T_INT);
    return recsys_opts_set_int(o, DEFS[id].key, v);
}

/* All-or-nothing updates (the YAML loader): work on a copy, then swap. */
recsys_status rs_opts_copy(const recsys_opts *src, recsys_opts **out)
{
    if (!src || !out) return RS_BAD_ARGS();
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

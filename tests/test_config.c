/* YAML config loading: values land, every error kind is RECSYS_E_PARSE at
 * the right line:column with a useful message, and a failed load leaves the
 * options untouched. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    recsys_ctx *ctx;
    recsys_opts *opts;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || recsys_ctx_new(&f->ctx) || recsys_opts_new(f->ctx, &f->opts)) return -1;
    recsys_ctx_set_threads(f->ctx, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    recsys_opts_free(f->opts);
    recsys_ctx_free(f->ctx);
    free(f);
    return 0;
}

static recsys_status load(fixture *f, const char *yaml)
{
    return recsys_opts_load_yaml_string(f->opts, yaml, strlen(yaml), "test.yaml");
}

static const char *get(fixture *f, const char *key)
{
    const char *v = NULL;
    assert_int_equal(recsys_opts_get(f->opts, key, &v), RECSYS_OK);
    return v;
}

/* Every key's current value, joined, to compare before and after a load. */
static char *snapshot(const recsys_opts *o)
{
    size_t cap = 8192, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    s[0] = 0;
    for (int i = 0; i < recsys_opts_count(o); i++) {
        const char *v;
        assert_int_equal(recsys_opts_get(o, recsys_opts_key(o, i), &v), RECSYS_OK);
        size_t need = strlen(recsys_opts_key(o, i)) + strlen(v) + 3;
        if (n + need >= cap) {
            cap = 2 * (n + need);
            s = realloc(s, cap);
            assert_non_null(s);
        }
        n += (size_t)sprintf(s + n, "%s=%s\n", recsys_opts_key(o, i), v);
    }
    return s;
}

static void test_good_config(void **state)
{
    fixture *f = *state;
    const char *yaml =
        "# a comment\n"
        "data:\n"
        "  path: \"my data/file with spaces.txt\"\n"
        "  min_item_count: 5\n"
        "model:\n"
        "  type: hstu\n"
        "  dim: 64\n"
        "  dropout: 0.5\n"
        "  norm: pre\n"
        "trainer:\n"
        "  lr: 5e-4\n"
        "  shared_negatives: True\n"
        "eval:\n"
        "  exclude_history: no\n"
        "  ks: '1,10'\n"
        "apen.m: 3\n"; /* flat keys at the top level work too */
    assert_int_equal(load(f, yaml), RECSYS_OK);
    assert_string_equal(get(f, "data.path"), "my data/file with spaces.txt");
    assert_int_equal(rs_opt_int(f->opts, RS_OPT_DATA_MIN_ITEM_COUNT), 5);
    assert_string_equal(get(f, "model.type"), "hstu");
    assert_int_equal(rs_opt_int(f->opts, RS_OPT_MODEL_DIM), 64);
    assert_float_equal(rs_opt_float(f->opts, RS_OPT_MODEL_DROPOUT), 0.5, 1e-12);
    assert_string_equal(get(f, "model.norm"), "pre");
    assert_float_equal(rs_opt_float(f->opts, RS_OPT_TRAINER_LR), 5e-4, 1e-15);
    assert_int_equal(rs_opt_bool(f->opts, RS_OPT_TRAINER_SHARED_NEGATIVES), 1);
    assert_int_equal(rs_opt_bool(f->opts, RS_OPT_EVAL_EXCLUDE_HISTORY), 0);
    assert_string_equal(get(f, "eval.ks"), "1,10");
    assert_int_equal(rs_opt_int(f->opts, RS_OPT_APEN_M), 3);
    /* Keys not in the file keep their values (defaults here). */
    assert_int_equal(rs_opt_int(f->opts, RS_OPT_MODEL_BLOCKS), 2);

    /* A second file only overrides what it names. */
    assert_int_equal(load(f, "model:\n  blocks: 4\n"), RECSYS_OK);
    assert_int_equal(rs_opt_int(f->opts, RS_OPT_MODEL_BLOCKS), 4);
    assert_int_equal(rs_opt_int(f->opts, RS_OPT_MODEL_DIM), 64);
}

/* A config naming every key with its default value loads: every key is
 * reachable through its section. */
static void test_every_key(void **state)
{
    fixture *f = *state;
    char *yaml = calloc(1, 16384);
    assert_non_null(yaml);
    size_t n = 0;
    char section[64] = "";
    for (int i = 0; i < recsys_opts_count(f->opts); i++) {
        const char *key = recsys_opts_key(f->opts, i), *dot = strchr(key, '.'), *v;
        assert_non_null(dot);
        assert_int_equal(recsys_opts_get(f->opts, key, &v), RECSYS_OK);
        if (strncmp(section, key, (size_t)(dot - key)) || section[dot - key]) {
            snprintf(section, sizeof section, "%.*s", (int)(dot - key), key);
            n += (size_t)sprintf(yaml + n, "%s:\n", section);
        }
        n += (size_t)sprintf(yaml + n, "  %s: \"%s\"\n", dot + 1, v);
    }
    char *before = snapshot(f->opts);
    assert_int_equal(load(f, yaml), RECSYS_OK);
    char *after = snapshot(f->opts);
    assert_string_equal(before, after);
    free(before);
    free(after);
    free(yaml);
}

typedef struct bad_case {
    const char *yaml;
    int line, col;
    const char *needle1, *needle2; /* substrings the message must hold */
} bad_case;

static const bad_case BAD[] = {
    /* YAML syntax errors: libyaml's problem mark. */
    {"model:\n  dim: 5\n bad: 1\n", 3, 2, "syntax error", "did not find expected key"},
    {"model:\n\tdim: 5\n", 2, 1, "syntax error", "cannot start any token"},
    {"model:\n  dim: [1, 2\n", 3, 1, "syntax error", "flow sequence"},
    {"model:\n  dim: \xff\xfe\n", 2, 8, "UTF-8", NULL},
    /* Shape errors. */
    {"- model\n- data\n", 1, 1, "mapping of sections", "sequence"},
    {"just text\n", 1, 1, "mapping of sections", "scalar"},
    {"model: 5\n", 1, 8, "section 'model'", "mapping"},
    {"model:\n  - dim\n", 2, 3, "section 'model'", "sequence"},
    {"model:\n  dim: [1, 2]\n", 2, 8, "'model.dim'", "scalar, not a sequence"},
    {"model:\n  dim: {a: 1}\n", 2, 8, "'model.dim'", "scalar, not a mapping"},
    {"model:\n  ? [a]\n  : 1\n", 2, 5, "keys in section 'model'", NULL},
    /* Unknown names, with suggestions. */
    {"modle:\n  dim: 5\n", 1, 1, "unknown section 'modle'", "did you mean 'model'"},
    {"data:\n  path: x\nevaluation:\n  ks: 1\n", 3, 1, "unknown section 'evaluation'",
     "data, model, trainer, eval, apen, resources, adapter or dist"},
    {"model:\n  dimm: 5\n", 2, 3, "unknown key 'model.dimm'", "did you mean 'model.dim'"},
    {"trainer:\n  dim: 5\n", 2, 3, "unknown key 'trainer.dim'", "did you mean 'model.dim'"},
    {"trainer:\n  batchsize: 5\n", 2, 3, "'trainer.batchsize'", "'trainer.batch_size'"},
    {"model:\n  hidden_units_xyz: 5\n", 2, 3, "unknown key 'model.hidden_units_xyz'", NULL},
    {"model.dimm: 5\n", 1, 1, "unknown key 'model.dimm'", "did you mean 'model.dim'"},
    /* Bad values: the validator's reason, at the value. */
    {"model:\n  dim: abc\n", 2, 8, "'model.dim'", "expected an integer"},
    {"model:\n  dim: 0\n", 2, 8, "'model.dim'", "must be in"},
    {"model:\n  dropout: 1.5\n", 2, 12, "'model.dropout'", "must be in"},
    {"model:\n  norm: sideways\n", 2, 9, "'sideways'", "original|post|pre"},
    {"eval:\n  exclude_history: maybe\n", 2, 20, "'eval.exclude_history'", "true or false"},
    {"trainer:\n  lr: .nan\n", 2, 7, "'trainer.lr'", "finite"},
    {"model:\n  dim: \"a\\0b\"\n", 2, 8, "'model.dim'", "NUL"},
    /* Missing values. */
    {"model:\n  dim:\n", 2, 3, "'model.dim' has no value", NULL},
    {"model:\n  dim: ~\n", 2, 3, "'model.dim' has no value", NULL},
    {"data:\n  times_path: null\n", 2, 3, "'data.times_path' has no value", NULL},
    /* Duplicates. */
    {"model:\n  dim: 5\n  dim: 6\n", 3, 3, "'model.dim' is set twice", "line 2, column 3"},
    {"model:\n  dim: 5\nmodel.dim: 6\n", 3, 1, "'model.dim' is set twice", "line 2, column 3"},
    {"model:\n  dim: 5\ntrainer:\n  lr: 0.1\nmodel:\n  blocks: 3\n", 5, 1,
     "section 'model' appears twice", "line 1, column 1"},
    /* One document only. */
    {"model:\n  dim: 5\n---\nmodel:\n  dim: 6\n", 3, 1, "second", NULL},
};

static void test_errors(void **state)
{
    fixture *f = *state;
    /* Non-default values first, to see that they survive failed loads. */
    assert_int_equal(recsys_opts_set(f->opts, "model.dim", "77"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->opts, "trainer.lr", "0.25"), RECSYS_OK);
    char *before = snapshot(f->opts);
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const bad_case *c = &BAD[i];
        recsys_status st = load(f, c->yaml);
        const char *msg = recsys_ctx_errmsg(f->ctx);
        const char *file = NULL;
        int line = -1, col = -1;
        if (st != RECSYS_E_PARSE || recsys_ctx_error_location(f->ctx, &file, &line, &col) ||
            line != c->line || col != c->col || strcmp(file, "test.yaml") ||
            !strstr(msg, c->needle1) || (c->needle2 && !strstr(msg, c->needle2)))
            fail_msg("case %zu (%s): status %d at %d:%d, message: %s", i, c->yaml, st, line,
                     col, msg);
        /* The message starts with the location. */
        char prefix[64];
        snprintf(prefix, sizeof prefix, "test.yaml:%d:%d: ", c->line, c->col);
        assert_true(!strncmp(msg, prefix, strlen(prefix)));
        char *after = snapshot(f->opts);
        if (strcmp(before, after)) fail_msg("case %zu changed the options", i);
        free(after);
    }
    free(before);
}

static void test_unchanged_after_late_error(void **state)
{
    fixture *f = *state;
    char *before = snapshot(f->opts);
    const char *yaml = "trainer:\n  lr: 0.5\n  epochs: 3\nmodel:\n  dim: 64\n  blocks: x\n";
    assert_int_equal(load(f, yaml), RECSYS_E_PARSE);
    int line, col;
    assert_int_equal(recsys_ctx_error_location(f->ctx, NULL, &line, &col), RECSYS_OK);
    assert_int_equal(line, 6);
    assert_int_equal(col, 11);
    char *after = snapshot(f->opts);
    assert_string_equal(before, after);
    assert_float_equal(rs_opt_float(f->opts, RS_OPT_TRAINER_LR), 0.001, 1e-12);
    free(before);
    free(after);
}

static void test_empty(void **state)
{
    fixture *f = *state;
    char *before = snapshot(f->opts);
    static const char *empties[] = {"", "\n\n", "# only a comment\n", "~\n", "---\n",
                                    "eval:\n", "model:\n  # dim: 5\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++)
        if (load(f, empties[i]) != RECSYS_OK)
            fail_msg("'%s' should be an empty config: %s", empties[i],
                     recsys_ctx_errmsg(f->ctx));
    assert_int_equal(recsys_opts_load_yaml_string(f->opts, NULL, 0, NULL), RECSYS_OK);
    char *after = snapshot(f->opts);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_null_args(void **state)
{
    fixture *f = *state;
    assert_int_equal(recsys_opts_load_yaml(NULL, "x.yaml"), RECSYS_E_INVALID);
    assert_int_equal(recsys_opts_load_yaml(f->opts, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_opts_load_yaml_string(NULL, "a: 1", 4, "x"), RECSYS_E_INVALID);
    assert_int_equal(recsys_opts_load_yaml_string(f->opts, NULL, 4, "x"), RECSYS_E_INVALID);
}

/* Options made without a ctx still report the status. */
static void test_no_ctx(void **state)
{
    (void)state;
    recsys_opts *o;
    assert_int_equal(recsys_opts_new(NULL, &o), RECSYS_OK);
    assert_int_equal(recsys_opts_load_yaml_string(o, "model:\n  dim: 9\n", 16, NULL), RECSYS_OK);
    assert_int_equal(rs_opt_int(o, RS_OPT_MODEL_DIM), 9);
    assert_int_equal(recsys_opts_load_yaml_string(o, "model:\n  dim: x\n", 16, NULL),
                     RECSYS_E_PARSE);
    assert_int_equal(recsys_opts_load_yaml_string(o, "nope:\n  dim: 1\n", 15, NULL),
                     RECSYS_E_PARSE);
    assert_int_equal(rs_opt_int(o, RS_OPT_MODEL_DIM), 9);
    recsys_opts_free(o);
}

static void test_files(void **state)
{
    fixture *f = *state;
    char dir[] = "/tmp/rs_test_config_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char good[512], bad[512], missing[512];
    snprintf(good, sizeof good, "%s/good.yaml", dir);
    snprintf(bad, sizeof bad, "%s/bad.yaml", dir);
    snprintf(missing, sizeof missing, "%s/missing.yaml", dir);
    FILE *fp = fopen(good, "w");
    assert_non_null(fp);
    fputs("model:\n  dim: 48\n", fp);
    fclose(fp);
    fp = fopen(bad, "w");
    assert_non_null(fp);
    fputs("model:\n  dim: 48\n  heads: lots\n", fp);
    fclose(fp);

    assert_int_equal(recsys_opts_load_yaml(f->opts, good), RECSYS_OK);
    assert_int_equal(rs_opt_int(f->opts, RS_OPT_MODEL_DIM), 48);

    assert_int_equal(recsys_opts_load_yaml(f->opts, bad), RECSYS_E_PARSE);
    const char *file;
    int line, col;
    assert_int_equal(recsys_ctx_error_location(f->ctx, &file, &line, &col), RECSYS_OK);
    assert_string_equal(file, bad);
    assert_int_equal(line, 3);
    assert_int_equal(col, 10);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "'model.heads'"));

    /* A file that cannot be read is an I/O error, not a parse error. */
    assert_int_equal(recsys_opts_load_yaml(f->opts, missing), RECSYS_E_IO);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "missing.yaml"));
    assert_int_equal(recsys_opts_load_yaml(f->opts, dir), RECSYS_E_IO);

    /* An empty file is an empty config. */
    fp = fopen(good, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(recsys_opts_load_yaml(f->opts, good), RECSYS_OK);
    assert_int_equal(rs_opt_int(f->opts, RS_OPT_MODEL_DIM), 48);

    unlink(good);
    unlink(bad);
    rmdir(dir);
}

/* The configs shipped in examples/configs load without error. */
static void test_shipped_configs(void **state)
{
    fixture *f = *state;
    glob_t g;
    int rc = glob(RS_SOURCE_ROOT "/examples/configs/*.yaml", 0, NULL, &g);
    assert_int_equal(rc, 0);
    assert_true(g.gl_pathc >= 2);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        recsys_opts *o;
        assert_int_equal(recsys_opts_new(f->ctx, &o), RECSYS_OK);
        if (recsys_opts_load_yaml(o, g.gl_pathv[i]) != RECSYS_OK)
            fail_msg("%s: %s", g.gl_pathv[i], recsys_ctx_errmsg(f->ctx));
        if (strstr(g.gl_pathv[i], "sasrec-ml1m.yaml")) {
            assert_int_equal(rs_opt_int(o, RS_OPT_MODEL_MAX_LEN), 200);
            assert_int_equal(rs_opt_int(o, RS_OPT_MODEL_DIM), 50);
            assert_float_equal(rs_opt_float(o, RS_OPT_TRAINER_BETA2), 0.98, 1e-12);
            assert_string_equal(rs_opt_str(o, RS_OPT_DATA_PATH), "../shared/data/ml-1m/ml-1m.txt.gz");
        }
        if (strstr(g.gl_pathv[i], "demo.yaml"))
            assert_string_equal(rs_opt_str(o, RS_OPT_DATA_PATH), "synthetic");
        recsys_opts_free(o);
    }
    globfree(&g);
}

/* docs/CONFIG.md documents every key with its current default: a new key
 * or a changed default must be documented (the keys are a user contract). */
static void test_docs_list_every_key(void **state)
{
    fixture *f = *state;
    FILE *fp = fopen(RS_SOURCE_ROOT "/docs/CONFIG.md", "rb");
    if (!fp) skip();
    static char doc[1 << 17];
    size_t n = fread(doc, 1, sizeof doc - 1, fp);
    fclose(fp);
    doc[n] = 0;
    for (int i = 0; i < recsys_opts_count(f->opts); i++) {
        const char *key = recsys_opts_key(f->opts, i), *def;
        assert_int_equal(recsys_opts_get(f->opts, key, &def), RECSYS_OK);
        char cell[128], want[128];
        snprintf(cell, sizeof cell, "| `%s` |", key);
        const char *row = strstr(doc, cell);
        if (!row) fail_msg("docs/CONFIG.md has no table row for '%s'", key);
        const char *eol = strchr(row, '\n');
        snprintf(want, sizeof want, "| `%s` |", *def ? def : "\"\"");
        const char *hit = strstr(row + strlen(cell), want);
        if (!hit || (eol && hit > eol))
            fail_msg("docs/CONFIG.md: row of '%s' does not show its default `%s`", key, def);
    }
}

/* recsys_opts_describe agrees with what recsys_opts_set/get do: every key
 * is described, its default is a valid value of its type, bounds are
 * enforced exactly at min and max, enums list their choices; the ids of
 * the typed accessors index the same table. */
static void test_describe(void **state)
{
    fixture *f = *state;
    int n = recsys_opts_count(NULL);
    assert_int_equal(n, recsys_opts_count(f->opts));
    assert_int_equal(n, RS_OPT_COUNT);
    for (int i = 0; i < n; i++) {
        recsys_opt_info in = {.struct_size = sizeof in};
        assert_int_equal(recsys_opts_describe(i, &in), RECSYS_OK);
        assert_int_equal(in.struct_size, sizeof in);
        assert_string_equal(in.key, recsys_opts_key(NULL, i));
        assert_non_null(in.doc);
        assert_true(strlen(in.doc) > 0 && !strchr(in.doc, '\n') && !strchr(in.doc, '|'));
        const char *v;
        assert_int_equal(recsys_opts_get(f->opts, in.key, &v), RECSYS_OK);
        assert_string_equal(v, in.default_value);
        assert_int_equal(recsys_opts_set(f->opts, in.key, in.default_value), RECSYS_OK);
        char buf[64];
        switch (in.type) {
        case RECSYS_OPT_INT:
        case RECSYS_OPT_FLOAT: {
            const char *t = in.type == RECSYS_OPT_INT ? "int" : "float";
            assert_string_equal(in.type_name, t);
            assert_true(in.min <= in.max);
            assert_null(in.choices);
            if (in.type == RECSYS_OPT_INT) {
                assert_int_equal(recsys_opts_set_int(f->opts, in.key, (int64_t)in.min), RECSYS_OK);
                assert_int_equal(recsys_opts_set_int(f->opts, in.key, (int64_t)in.max), RECSYS_OK);
            } else {
                assert_int_equal(recsys_opts_set_float(f->opts, in.key, in.min), RECSYS_OK);
                assert_int_equal(recsys_opts_set_float(f->opts, in.key, in.max), RECSYS_OK);
            }
            if (in.max < 1e15) {
                double over = in.max + (in.type == RECSYS_OPT_INT ? 1 : in.max * 1e-9 + 1e-9);
                snprintf(buf, sizeof buf, in.type == RECSYS_OPT_INT ? "%.0f" : "%.17g", over);
                assert_int_equal(recsys_opts_set(f->opts, in.key, buf), RECSYS_E_INVALID);
            }
            break;
        }
        case RECSYS_OPT_ENUM:
            assert_string_equal(in.type_name, "enum");
            assert_non_null(in.choices);
            assert_int_equal(recsys_opts_set(f->opts, in.key, "no-such-choice"), RECSYS_E_INVALID);
            break;
        case RECSYS_OPT_BOOL:
            assert_string_equal(in.type_name, "bool");
            assert_int_equal(recsys_opts_set(f->opts, in.key, "maybe"), RECSYS_E_INVALID);
            break;
        case RECSYS_OPT_INT_LIST:
            assert_string_equal(in.type_name, "int list");
            assert_true(in.min <= in.max);
            snprintf(buf, sizeof buf, "%.0f,%.0f", in.min, in.max);
            assert_int_equal(recsys_opts_set(f->opts, in.key, buf), RECSYS_OK);
            snprintf(buf, sizeof buf, "%.0f,%.0f", in.min, in.max + 1);
            assert_int_equal(recsys_opts_set(f->opts, in.key, buf), RECSYS_E_INVALID);
            assert_int_equal(recsys_opts_set(f->opts, in.key, "1,x"), RECSYS_E_INVALID);
            break;
        case RECSYS_OPT_STRING:
            assert_string_equal(in.type_name, "string");
            assert_non_null(in.allowed);
            break;
        default: fail_msg("%s: unknown type %d", in.key, in.type);
        }
        assert_int_equal(recsys_opts_set(f->opts, in.key, in.default_value), RECSYS_OK);
    }
    recsys_opt_info in = {.struct_size = sizeof in};
    assert_int_equal(recsys_opts_describe(n, &in), RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_opts_describe(-1, &in), RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_opts_describe(0, NULL), RECSYS_E_INVALID);
    in.struct_size = 8;
    assert_int_equal(recsys_opts_describe(0, &in), RECSYS_E_INVALID);
    /* A caller built against a larger (future) struct gets what the library knows. */
    struct { recsys_opt_info in; char future[32]; } big;
    memset(&big, 0x5a, sizeof big);
    big.in.struct_size = sizeof big;
    assert_int_equal(recsys_opts_describe(0, &big.in), RECSYS_OK);
    assert_int_equal(big.in.struct_size, sizeof big.in);
    assert_int_equal((unsigned char)big.future[0], 0x5a);
    /* Ids and keys are the same table. */
    assert_string_equal(recsys_opts_key(NULL, RS_OPT_MODEL_DIM), "model.dim");
    assert_string_equal(recsys_opts_key(NULL, RS_OPT_TRAINER_EVAL_EVERY), "trainer.eval_every");
}

/* The typed accessors read what the string API wrote; NULL opts reads the
 * defaults. */
static void test_typed_accessors(void **state)
{
    fixture *f = *state;
    assert_int_equal(rs_opt_int(NULL, RS_OPT_MODEL_DIM), 50);
    assert_float_equal(rs_opt_float(NULL, RS_OPT_TRAINER_LR), 0.001, 1e-15);
    assert_string_equal(rs_opt_str(NULL, RS_OPT_DATA_PATH), "synthetic");
    assert_int_equal(rs_opt_bool(NULL, RS_OPT_EVAL_EXCLUDE_HISTORY), 1);
    assert_true(rs_opt_is(NULL, RS_OPT_MODEL_TYPE, "sasrec"));
    assert_int_equal(recsys_opts_set(f->opts, "model.type", "hstu"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->opts, "trainer.bf16", "yes"), RECSYS_OK);
    assert_int_equal(recsys_opts_set_int(f->opts, "trainer.seed", 7), RECSYS_OK);
    assert_true(rs_opt_is(f->opts, RS_OPT_MODEL_TYPE, "hstu"));
    assert_false(rs_opt_is(f->opts, RS_OPT_MODEL_TYPE, "sasrec"));
    assert_string_equal(rs_opt_enum(f->opts, RS_OPT_MODEL_TYPE), "hstu");
    assert_int_equal(rs_opt_bool(f->opts, RS_OPT_TRAINER_BF16), 1);
    assert_int_equal(rs_opt_int(f->opts, RS_OPT_TRAINER_SEED), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unchanged_after_late_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_args, setup, teardown),
        cmocka_unit_test(test_no_ctx),
        cmocka_unit_test_setup_teardown(test_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shipped_configs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_docs_list_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_typed_accessors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

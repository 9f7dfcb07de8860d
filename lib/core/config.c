/* YAML config files -> recsys_opts.
 *
 * A config is a mapping of sections (data, model, trainer, eval, apen), each
 * a mapping of key -> scalar; every scalar goes through recsys_opts_set, so
 * the file, the CLI's --set and the API validate the same way. Values are
 * applied to a copy of the options and swapped in only when the whole file
 * is good: on any error the caller's options are unchanged. Errors carry the
 * 1-based line:column of the offending node. */
#include "core/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

/* Configs are a few hundred bytes; anything this big is the wrong file. */
#define CONFIG_MAX_BYTES ((size_t)1 << 20)
/* A config nests two levels; libyaml's loader is quadratic in the depth, so
 * deeper documents are refused by a streaming pass before they are loaded. */
#define CONFIG_MAX_DEPTH 16
/* Names longer than this get no "did you mean" suggestion. */
#define SUGGEST_MAX 64

typedef struct loader {
    recsys_ctx *ctx;
    const char *name;       /* file name or caller's label, for messages */
    yaml_document_t *doc;
    recsys_opts *scratch;   /* copy of the caller's opts, receives the values */
    int n_keys;
    yaml_mark_t *first_set; /* per known key: where it was set (line+1, 0 = not yet) */
} loader;

/* ------------------------------------------------------------ positions */

static recsys_status fail_at(loader *ld, const yaml_node_t *node, const char *fmt, ...)
    RS_PRINTF(3, 4);

static recsys_status fail_at(loader *ld, const yaml_node_t *node, const char *fmt, ...)
{
    char msg[RS_ERRMSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = node ? (int)node->start_mark.line + 1 : 0;
    int col = node ? (int)node->start_mark.column + 1 : 0;
    return rs_error_at(ld->ctx, RECSYS_E_PARSE, ld->name, line, col, "%s", msg);
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a sequence";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "empty";
    }
}

/* `key:` with nothing, `~` and `null` (unquoted), or an explicit !!null. */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE) return 0;
    if (n->tag && !strcmp((const char *)n->tag, YAML_NULL_TAG)) return 1;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    return len == 0 || (len == 1 && v[0] == '~') ||
           (len == 4 && (!strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL")));
}

/* Scalar text as a C string; NULL when it holds a NUL byte ("\0" escape). */
static const char *scalar_text(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    return memchr(v, 0, n->data.scalar.length) ? NULL : v;
}

/* ---------------------------------------------------------- key lookups */

static int key_index(const loader *ld, const char *key)
{
    for (int i = 0; i < ld->n_keys; i++)
        if (!strcmp(recsys_opts_key(ld->scratch, i), key)) return i;
    return -1;
}

/* "model" is a section when some key starts with "model.". */
static int is_section(const loader *ld, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < ld->n_keys; i++) {
        const char *k = recsys_opts_key(ld->scratch, i);
        if (!strncmp(k, name, n) && k[n] == '.') return 1;
    }
    return 0;
}

/* Edit distance of two short strings (both at most SUGGEST_MAX chars). */
static int edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    int row[SUGGEST_MAX + 1];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* Closest known key to section.key (a key in another section costs one
 * edit more), or NULL when nothing is close. */
static const char *closest_key(const loader *ld, const char *section, const char *key)
{
    size_t ns = strlen(section), nk = strlen(key);
    if (nk > SUGGEST_MAX) return NULL;
    const char *best = NULL;
    int best_d = 1 + (int)nk / 4 + 1; /* suggestions must beat this */
    for (int i = 0; i < ld->n_keys; i++) {
        const char *full = recsys_opts_key(ld->scratch, i);
        const char *dot = strchr(full, '.');
        if (!dot || strlen(dot + 1) > SUGGEST_MAX) continue;
        int d = edit_distance(key, nk, dot + 1, strlen(dot + 1));
        if ((size_t)(dot - full) != ns || strncmp(full, section, ns)) d++;
        if (d < best_d) { best_d = d; best = full; }
    }
    return best;
}

/* The sections as "data, model, trainer, eval or apen", and the closest to name. */
static const char *list_sections(const loader *ld, const char *name, char *buf, size_t len)
{
    const char *names[32];
    size_t lens[32];
    int n = 0;
    for (int i = 0; i < ld->n_keys && n < 32; i++) {
        const char *k = recsys_opts_key(ld->scratch, i), *dot = strchr(k, '.');
        if (!dot) continue;
        size_t sl = (size_t)(dot - k);
        int dup = 0;
        for (int j = 0; j < n; j++) dup |= lens[j] == sl && !strncmp(names[j], k, sl);
        if (!dup) { names[n] = k; lens[n++] = sl; }
    }
    size_t used = 0;
    buf[0] = 0;
    const char *close = NULL;
    size_t nn = strlen(name);
    int best_d = 1 + (int)nn / 4 + 1;
    for (int j = 0; j < n; j++) {
        const char *sep = j == 0 ? "" : j == n - 1 ? " or " : ", ";
        int w = snprintf(buf + used, len - used, "%s%.*s", sep, (int)lens[j], names[j]);
        if (w > 0 && (size_t)w < len - used) used += (size_t)w;
        if (nn <= SUGGEST_MAX && lens[j] <= SUGGEST_MAX) {
            int d = edit_distance(name, nn, names[j], lens[j]);
            if (d < best_d) { best_d = d; close = names[j]; }
        }
    }
    return close;
}

/* ------------------------------------------------------------- applying */

/* YAML 1.1 spells booleans True, YES, Off...; the options want lower case. */
static const char *normalise_bool(const yaml_node_t *v, const char *text, char *buf, size_t len)
{
    static const char *words[] = {"true", "false", "yes", "no", "on", "off"};
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return text;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (!strcasecmp(text, words[i])) {
            snprintf(buf, len, "%s", words[i]);
            return buf;
        }
    }
    return text;
}

/* Set section.key from value; key_node locates errors about the key. */
static recsys_status apply(loader *ld, const char *full, const yaml_node_t *key_node,
                           const yaml_node_t *value)
{
    int idx = key_index(ld, full);
    if (idx < 0) {
        /* Split full into section and key for the suggestion. */
        const char *dot = strchr(full, '.');
        char section[SUGGEST_MAX + 1] = "";
        if (dot && (size_t)(dot - full) <= SUGGEST_MAX)
            snprintf(section, sizeof section, "%.*s", (int)(dot - full), full);
        const char *hint = closest_key(ld, section, dot ? dot + 1 : full);
        if (hint)
            return fail_at(ld, key_node, "unknown key '%s' (did you mean '%s'?)", full, hint);
        return fail_at(ld, key_node, "unknown key '%s'", full);
    }
    yaml_mark_t *first = &ld->first_set[idx];
    if (first->line)
        return fail_at(ld, key_node, "'%s' is set twice (first at line %d, column %d)", full,
                       (int)first->line, (int)first->column);
    first->line = key_node->start_mark.line + 1;
    first->column = key_node->start_mark.column + 1;

    if (value->type != YAML_SCALAR_NODE)
        return fail_at(ld, value, "the value of '%s' must be a scalar, not %s", full,
                       node_kind(value));
    if (is_null(value)) return fail_at(ld, key_node, "'%s' has no value", full);
    const char *text = scalar_text(value);
    if (!text) return fail_at(ld, value, "the value of '%s' contains a NUL character", full);
    char boolbuf[8];
    text = normalise_bool(value, text, boolbuf, sizeof boolbuf);

    recsys_status st = recsys_opts_set(ld->scratch, full, text);
    if (st == RECSYS_OK) return RECSYS_OK;
    if (st == RECSYS_E_NOMEM) return st;
    /* The validator's reason is in the ctx: keep it, add the position. */
    char why[RS_ERRMSG_MAX / 2];
    snprintf(why, sizeof why, "%s", ld->ctx ? recsys_ctx_errmsg(ld->ctx) : "bad value");
    return fail_at(ld, value, "%s", why);
}

static recsys_status load_section(loader *ld, const char *section, const yaml_node_t *map)
{
    if (is_null(map)) return RECSYS_OK; /* `eval:` with every key commented out */
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(ld, map, "section '%s' must be a mapping of key: value, not %s",
                       section, node_kind(map));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
        if (!k || !v) return fail_at(ld, map, "malformed mapping");
        const char *name = k->type == YAML_SCALAR_NODE ? scalar_text(k) : NULL;
        if (!name || !*name)
            return fail_at(ld, k, "keys in section '%s' must be non-empty scalars", section);
        char full[256];
        if (snprintf(full, sizeof full, "%s.%s", section, name) >= (int)sizeof full)
            return fail_at(ld, k, "unknown key '%.40s...' in section '%s'", name, section);
        recsys_status st = apply(ld, full, k, v);
        if (st) return st;
    }
    return RECSYS_OK;
}

static recsys_status load_root(loader *ld, const yaml_node_t *root)
{
    if (!root || is_null(root)) return RECSYS_OK; /* empty file or `~` */
    if (root->type != YAML_MAPPING_NODE)
        return fail_at(ld, root,
                       "a config must be a mapping of sections (data:, model:, ...), not %s",
                       node_kind(root));
    const yaml_node_pair_t *start = root->data.mapping.pairs.start;
    for (const yaml_node_pair_t *p = start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
        if (!k || !v) return fail_at(ld, root, "malformed mapping");
        const char *name = k->type == YAML_SCALAR_NODE ? scalar_text(k) : NULL;
        if (!name || !*name) return fail_at(ld, k, "section names must be non-empty scalars");
        /* A flat "model.dim: 50" at the top level is accepted too. */
        if (strchr(name, '.') && v->type != YAML_MAPPING_NODE) {
            recsys_status st = apply(ld, name, k, v);
            if (st) return st;
            continue;
        }
        if (!is_section(ld, name)) {
            char list[128];
            const char *hint = list_sections(ld, name, list, sizeof list);
            if (hint)
                return fail_at(ld, k, "unknown section '%s' (did you mean '%.*s'?)", name,
                               (int)strcspn(hint, "."), hint);
            return fail_at(ld, k, "unknown section '%s' (expected %s)", name, list);
        }
        for (const yaml_node_pair_t *q = start; q < p; q++) {
            yaml_node_t *prev = yaml_document_get_node(ld->doc, q->key);
            const char *prev_name =
                prev && prev->type == YAML_SCALAR_NODE ? scalar_text(prev) : NULL;
            if (prev_name && !strcmp(prev_name, name))
                return fail_at(ld, k, "section '%s' appears twice (first at line %d, column %d)",
                               name, (int)prev->start_mark.line + 1,
                               (int)prev->start_mark.column + 1);
        }
        recsys_status st = load_section(ld, name, v);
        if (st) return st;
    }
    return RECSYS_OK;
}

/* ---------------------------------------------------------------- parse */

/* 1-based line and column of a byte offset (for reader errors, which have
 * no mark). */
static void offset_position(const char *s, size_t len, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (s[i] == '\n') { ++*line; *col = 1; }
        else ++*col;
    }
}

static recsys_status syntax_error(loader *ld, const yaml_parser_t *p, const char *yaml,
                                  size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return rs_error(ld->ctx, RECSYS_E_NOMEM, "%s: out of memory while parsing", ld->name);
    const char *problem = p->problem ? p->problem : "unknown error";
    int line, col;
    if (p->error == YAML_READER_ERROR) {
        offset_position(yaml, len, p->problem_offset, &line, &col);
        return rs_error_at(ld->ctx, RECSYS_E_PARSE, ld->name, line, col,
                           "cannot read the text: %s", problem);
    }
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    if (p->context)
        return rs_error_at(ld->ctx, RECSYS_E_PARSE, ld->name, line, col,
                           "YAML syntax error: %s (%s at line %d, column %d)", problem,
                           p->context, (int)p->context_mark.line + 1,
                           (int)p->context_mark.column + 1);
    return rs_error_at(ld->ctx, RECSYS_E_PARSE, ld->name, line, col, "YAML syntax error: %s",
                       problem);
}

/* Refuse documents nested deeper than CONFIG_MAX_DEPTH, streaming events
 * (so the cost stays linear); syntax errors are left to the real load. */
static recsys_status check_depth(loader *ld, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return rs_error(ld->ctx, RECSYS_E_NOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);
    recsys_status st = RECSYS_OK;
    int depth = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_MEMORY_ERROR)
                st = rs_error(ld->ctx, RECSYS_E_NOMEM, "%s: out of memory while parsing",
                              ld->name);
            break;
        }
        yaml_event_type_t type = ev.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > CONFIG_MAX_DEPTH)
                st = rs_error_at(ld->ctx, RECSYS_E_PARSE, ld->name,
                                 (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                                 "nested more than %d levels deep (a config has two: "
                                 "section, then key: value)", CONFIG_MAX_DEPTH);
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&ev);
        if (st || type == YAML_STREAM_END_EVENT) break;
    }
    yaml_parser_delete(&parser);
    return st;
}

/* Parse yaml into ld->scratch. */
static recsys_status parse(loader *ld, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    if (len > CONFIG_MAX_BYTES)
        return rs_error_at(ld->ctx, RECSYS_E_PARSE, ld->name, 0, 0,
                           "a config of %zu bytes is larger than the %zu allowed", len,
                           CONFIG_MAX_BYTES);
    recsys_status st0 = check_depth(ld, yaml, len);
    if (st0) return st0;
    if (!yaml_parser_initialize(&parser))
        return rs_error(ld->ctx, RECSYS_E_NOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);
    recsys_status st;
    if (!yaml_parser_load(&parser, &doc)) {
        st = syntax_error(ld, &parser, yaml, len);
        yaml_parser_delete(&parser);
        return st;
    }
    ld->doc = &doc;
    st = load_root(ld, yaml_document_get_root_node(&doc));
    ld->doc = NULL;
    yaml_document_delete(&doc);
    /* A second document would be silently ignored: refuse it. */
    if (!st) {
        if (!yaml_parser_load(&parser, &extra)) {
            st = syntax_error(ld, &parser, yaml, len);
        } else {
            yaml_node_t *root = yaml_document_get_root_node(&extra);
            if (root)
                st = rs_error_at(ld->ctx, RECSYS_E_PARSE, ld->name,
                                 (int)extra.start_mark.line + 1, (int)extra.start_mark.column + 1,
                                 "a config holds one YAML document; found a second one");
            yaml_document_delete(&extra);
        }
    }
    yaml_parser_delete(&parser);
    return st;
}

recsys_status recsys_opts_load_yaml_string(recsys_opts *opts, const char *yaml, size_t len,
                                           const char *name)
{
    rs_enter(rs_opts_ctx(opts));
    if (!opts) return RS_BAD_ARGS();
    loader ld = {.ctx = rs_opts_ctx(opts), .name = name ? name : "<string>"};
    if (!yaml && len)
        return rs_error(ld.ctx, RECSYS_E_INVALID, "recsys_opts_load_yaml_string: yaml is NULL");
    recsys_status st = rs_opts_copy(opts, &ld.scratch);
    if (st) return st;
    ld.n_keys = recsys_opts_count(opts);
    ld.first_set = calloc((size_t)ld.n_keys, sizeof *ld.first_set);
    if (!ld.first_set) {
        st = rs_error(ld.ctx, RECSYS_E_NOMEM, "out of memory");
    } else {
        st = parse(&ld, yaml, len);
        if (!st) rs_opts_swap_values(opts, ld.scratch);
    }
    free(ld.first_set);
    recsys_opts_free(ld.scratch);
    return st;
}

/* Whole file into memory (bounded); *buf is NUL-terminated. Only a regular
 * file is read (a FIFO would block, a device might never end). */
static recsys_status read_file(recsys_ctx *ctx, const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd;
    recsys_status st = rs_open_regular(ctx, path, "a config", &fd);
    if (st) return st;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    st = b ? RECSYS_OK : rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    while (!st) {
        if (n + 1 >= cap) {
            if (cap > CONFIG_MAX_BYTES) {
                st = rs_error_at(ctx, RECSYS_E_PARSE, path, 0, 0,
                                 "config is larger than %zu bytes", CONFIG_MAX_BYTES);
                break;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                st = rs_error(ctx, RECSYS_E_NOMEM, "out of memory reading '%s'", path);
                break;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, b + n, cap - n - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            st = rs_error(ctx, RECSYS_E_IO, "cannot read config '%s': %s", path, strerror(errno));
        if (got <= 0) break;
        n += (size_t)got;
    }
    close(fd);
    if (st) {
        free(b);
        return st;
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return RECSYS_OK;
}

recsys_status recsys_opts_load_yaml(recsys_opts *opts, const char *path)
{
    rs_enter(rs_opts_ctx(opts));
    if (!opts) return RS_BAD_ARGS();
    recsys_ctx *ctx = rs_opts_ctx(opts);
    if (!path) return rs_error(ctx, RECSYS_E_INVALID, "recsys_opts_load_yaml: path is NULL");
    char *text;
    size_t len;
    recsys_status st = read_file(ctx, path, &text, &len);
    if (st) return st;
    st = recsys_opts_load_yaml_string(opts, text, len, path);
    free(text);
    return st;
}

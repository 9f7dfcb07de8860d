/* The key tables of docs/CONFIG.md, written from the library's option table
 * (lib/core/options.def) through the public recsys_opts_describe.
 *
 *   gen_config_doc                 print the generated section
 *   gen_config_doc --check FILE    exit 1 when FILE's section differs (a test)
 *   gen_config_doc --update FILE   rewrite FILE's section in place
 *
 * The section lies between the BEGIN_MARK and END_MARK lines below; the
 * rest of the file is left alone. */
#include <librecsys/recsys.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BEGIN_MARK "<!-- BEGIN generated keys"
#define END_MARK "<!-- END generated keys -->"
#define BEGIN_LINE                                                                             \
    BEGIN_MARK ": tools/gen_config_doc.c from lib/core/options.def; edit the table, then "     \
               "run ./build/tests/gen_config_doc --update docs/CONFIG.md -->\n"

/* Section headings; a section missing here is an error (add its title). */
static const struct {
    const char *name, *title;
} SECTIONS[] = {
    {"data", "what to train and evaluate on"},
    {"model", "the network (stored in checkpoints)"},
    {"trainer", "optimisation"},
    {"eval", "ranking protocol"},
    {"apen", "Approximate Entropy (MODELS.md §5)"},
    {"resources", "limits"},
    {"adapter", "per-user LoRA adapters (ADAPTERS.md)"},
    {"dist", "distributed training"},
};
#define N_SECTIONS (sizeof SECTIONS / sizeof SECTIONS[0])

/* A growing string. */
typedef struct buf {
    char *s;
    size_t len, cap;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            fprintf(stderr, "gen_config_doc: out of memory\n");
            exit(2);
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A bound as the doc writes it: 65536, 0.999999, 10^8, 9.2·10^18, 10^-6. */
static void put_number(buf *b, double x)
{
    double a = fabs(x);
    if (a != 0 && (a >= 1e6 || a < 1e-3)) {
        int e = (int)floor(log10(a));
        double m = x / pow(10.0, e), m10 = m * 10;
        if (fabs(m10 - round(m10)) < 1e-9) { /* one or two significant digits */
            if (fabs(m - 1) < 1e-12) put(b, "10^%d", e);
            else if (fabs(m + 1) < 1e-12) put(b, "-10^%d", e);
            else put(b, "%g·10^%d", m, e);
            return;
        }
    }
    if (x == floor(x) && a < 1e15) { put(b, "%.0f", x); return; }
    char s[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(s, sizeof s, "%.*g", p, x);
        if (strtod(s, NULL) == x) break;
    }
    put(b, "%s", s);
}

static void put_allowed(buf *b, const recsys_opt_info *in)
{
    if (in->allowed) { put(b, "%s", in->allowed); return; }
    switch (in->type) {
    case RECSYS_OPT_ENUM:
        for (const char *p = in->choices; *p;) {
            size_t n = strcspn(p, "|");
            put(b, "%s`%.*s`", p == in->choices ? "" : ", ", (int)n, p);
            p += n + (p[n] == '|');
        }
        return;
    case RECSYS_OPT_BOOL: put(b, "true/false"); return;
    case RECSYS_OPT_INT:
    case RECSYS_OPT_FLOAT:
    case RECSYS_OPT_INT_LIST:
        put_number(b, in->min);
        put(b, " .. ");
        put_number(b, in->max);
        return;
    default:
        fprintf(stderr, "gen_config_doc: %s: a string key needs an 'allowed' phrase\n", in->key);
        exit(2);
    }
}

static const char *section_title(const char *key)
{
    size_t n = strcspn(key, ".");
    for (size_t s = 0; s < N_SECTIONS; s++)
        if (strlen(SECTIONS[s].name) == n && !strncmp(SECTIONS[s].name, key, n))
            return SECTIONS[s].title;
    fprintf(stderr, "gen_config_doc: no title for the section of '%s' (add it to SECTIONS)\n",
            key);
    exit(2);
}

/* The generated section, markers included. */
static void generate(buf *b)
{
    put(b, "%s", BEGIN_LINE);
    int n = recsys_opts_count(NULL);
    char section[64] = "";
    for (int i = 0; i < n; i++) {
        recsys_opt_info in = {.struct_size = sizeof in};
        if (recsys_opts_describe(i, &in) != RECSYS_OK) {
            fprintf(stderr, "gen_config_doc: recsys_opts_describe(%d) failed\n", i);
            exit(2);
        }
        size_t sl = strcspn(in.key, ".");
        if (sl >= sizeof section) exit(2);
        if (strncmp(section, in.key, sl) || section[sl]) {
            const char *title = section_title(in.key);
            snprintf(section, sizeof section, "%.*s", (int)sl, in.key);
            put(b, "\n### %s: %s\n\n", section, title);
            put(b, "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n");
        }
        put(b, "| `%s` | %s | `%s` | ", in.key, in.type_name,
            in.default_value[0] ? in.default_value : "\"\"");
        put_allowed(b, &in);
        put(b, " | %s |\n", in.doc);
    }
    put(b, "\n%s\n", END_MARK);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    buf b = {0};
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) put(&b, "%.*s", (int)got, chunk);
    fclose(f);
    *len = b.len;
    return b.s ? b.s : calloc(1, 1);
}

/* [*start, *end) of the generated section in text, markers included. */
static int find_section(const char *text, size_t *start, size_t *end)
{
    const char *a = strstr(text, BEGIN_MARK);
    const char *z = a ? strstr(a, END_MARK) : NULL;
    if (!a || !z) return 0;
    z += strlen(END_MARK);
    if (*z == '\n') z++;
    *start = (size_t)(a - text);
    *end = (size_t)(z - text);
    return 1;
}

/* --check (update 0) or --update (update 1) of the section in path. */
static int check_or_update(const char *path, const buf *gen, int update)
{
    size_t len, start, end;
    char *text = read_all(path, &len);
    if (!find_section(text, &start, &end)) {
        fprintf(stderr, "gen_config_doc: %s has no '%s' ... '%s' section\n", path, BEGIN_MARK,
                END_MARK);
        free(text);
        return 1;
    }
    int rc = 0;
    int same = end - start == gen->len && !memcmp(text + start, gen->s, gen->len);
    if (!same && !update) {
        /* First differing line, to say what is out of date. */
        const char *d = text + start, *g = gen->s;
        int line = 1;
        for (const char *l = text; l < d; l++) line += *l == '\n';
        while (*d && *g && *d == *g) {
            if (*d == '\n') line++;
            d++;
            g++;
        }
        while (d > text + start && d[-1] != '\n') d--, g--;
        fprintf(stderr,
                "%s:%d: the key tables differ from lib/core/options.def\n"
                "  file:  %.*s\n  table: %.*s\n"
                "run: ./build/tests/gen_config_doc --update %s\n",
                path, line, (int)strcspn(d, "\n"), d, (int)strcspn(g, "\n"), g, path);
        rc = 1;
    } else if (!same) {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(text, 1, start, f) != start ||
            fwrite(gen->s, 1, gen->len, f) != gen->len ||
            fwrite(text + end, 1, len - end, f) != len - end) {
            perror(path);
            rc = 2;
        }
        if (f && fclose(f) != 0 && !rc) {
            perror(path);
            rc = 2;
        }
    }
    free(text);
    return rc;
}

int main(int argc, char **argv)
{
    buf gen = {0};
    generate(&gen);
    int rc;
    if (argc == 1) {
        fputs(gen.s, stdout);
        rc = 0;
    } else if (argc == 3 && (!strcmp(argv[1], "--check") || !strcmp(argv[1], "--update"))) {
        rc = check_or_update(argv[2], &gen, !strcmp(argv[1], "--update"));
    } else {
        fprintf(stderr, "usage: gen_config_doc [--check FILE | --update FILE]\n");
        rc = 2;
    }
    free(gen.s);
    return rc;
}

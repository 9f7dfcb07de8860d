/* recsys recommend: JSON lines of histories in, JSON lines of top-K out. */
#include "cli.h"
#include "commands.h"
#include "request_json.h"
#include "user_adapters.h"

#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES (1u << 20)

static void usage(void)
{
    fprintf(stderr,
            "usage: recsys recommend --model MODEL [--k 10] [--exclude-history]\n"
            "                        [--input FILE] [--batch 256] [--threads N]\n"
            "                        [--adapters ADAPTERS [--data DATA]]\n"
            "Reads one JSON request per line, e.g.\n"
            "  {\"user\": \"u1\", \"history\": [\"1193\", \"661\"], \"times\": [978300760, 978302109]}\n"
            "and writes one JSON line per request: {\"user\", \"items\", \"scores\", \"unknown\"}\n"
            "(or {\"error\": ...} for a line that is not a valid request).\n"
            "--adapters: a per-user adapter store (recsys adapt --mode per-user): \"user\"\n"
            "picks that user's adapter (the store's dense user id, or with --data DATA the\n"
            "data's external user id); users without one get the base model. Or one\n"
            "adapter file (shared or bank) for every request.\n");
}

int32_t cli_lookup_item(void *model, const char *id)
{
    int32_t item;
    return recsys_model_item_id(model, id, &item) == RECSYS_OK ? item : 0;
}

const char *cli_item_name(void *model, int32_t item)
{
    const char *name = "";
    recsys_model_item_name(model, item, &name);
    return name;
}

typedef struct pending {
    rj_batch b;          /* one request per line (b.n == 0: an error line) */
    char *error;
    recsys_adapter *owned; /* the request's adapter from the store (freed after scoring) */
} pending;

/* Score and print the lines gathered so far. */
static int flush(recsys_session *s, recsys_ctx *ctx, recsys_model *m, pending *p, size_t n,
                 int max_k, FILE *out)
{
    const recsys_request **reqs = malloc(sizeof *reqs * (n ? n : 1));
    size_t nr = 0;
    for (size_t i = 0; i < n; i++)
        if (!p[i].error) reqs[nr++] = &p[i].b.reqs[0].req;
    int32_t *items = malloc(sizeof *items * (nr ? nr : 1) * (size_t)max_k);
    float *scores = malloc(sizeof *scores * (nr ? nr : 1) * (size_t)max_k);
    size_t *got = malloc(sizeof *got * (nr ? nr : 1));
    int rc = 0;
    if (!reqs || !items || !scores || !got) {
        fprintf(stderr, "recsys recommend: out of memory\n");
        rc = 1;
    } else {
        recsys_status st = recsys_session_topk_batch(s, reqs, nr, (size_t)max_k, items, scores, got);
        if (st) rc = cli_fail("recommend", ctx, st, "scoring failed");
    }
    size_t j = 0;
    rj_buf b = {0};
    for (size_t i = 0; !rc && i < n; i++) {
        b.len = 0;
        if (p[i].error) {
            rj_write_error(&b, p[i].error);
        } else {
            rj_write_result(&b, &p[i].b.reqs[0], items + j * max_k, scores + j * max_k, got[j],
                            cli_item_name, m);
            j++;
        }
        if (b.oom) { rc = 1; break; }
        fwrite(b.s, 1, b.len, out);
        fputc('\n', out);
    }
    free(b.s);
    for (size_t i = 0; i < n; i++) {
        rj_batch_free(&p[i].b);
        free(p[i].error);
        p[i].error = NULL;
        recsys_adapter_free(p[i].owned);
        p[i].owned = NULL;
    }
    free(reqs);
    free(items);
    free(scores);
    free(got);
    fflush(out);
    return rc;
}

int cmd_recommend(int argc, char **argv)
{
    const char *model_path = NULL, *input = NULL, *adapters = NULL, *data = NULL;
    int k = 10, excl = 0, batch = 256, threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--exclude-history")) { excl = 1; continue; }
        if (i + 1 >= argc) { usage(); return 2; }
        if (!strcmp(a, "--model")) model_path = argv[++i];
        else if (!strcmp(a, "--input")) input = argv[++i];
        else if (!strcmp(a, "--k")) k = atoi(argv[++i]);
        else if (!strcmp(a, "--batch")) batch = atoi(argv[++i]);
        else if (!strcmp(a, "--threads")) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--adapters")) adapters = argv[++i];
        else if (!strcmp(a, "--data")) data = argv[++i];
        else { usage(); return 2; }
    }
    if (!model_path || (data && !adapters) || k < 1 || batch < 1 || batch > 65536 || threads < 1 || threads > 1024) {
        usage();
        return 2;
    }
    recsys_ctx *ctx = NULL;
    recsys_model *m = NULL;
    recsys_session *s = NULL;
    recsys_opts *opts = NULL;
    recsys_dataset *ds = NULL;
    user_adapters ua = {0};
    char uerr[600];
    pending *p = NULL;
    char *line = NULL;
    FILE *in = stdin;
    int rc = 1;
    recsys_status st;
    if ((st = recsys_ctx_new_with_threads(threads, &ctx))) {
        fprintf(stderr, "recsys recommend: cannot create a context (%s)\n", recsys_status_str(st));
        return 1;
    }
    if ((st = recsys_model_load(ctx, model_path, &m))) {
        rc = cli_fail("recommend", ctx, st, "cannot load the model");
        goto done;
    }
    recsys_model_info info = {.struct_size = sizeof info};
    recsys_model_info_get(m, &info);
    if (k > info.n_items) k = info.n_items;
    if ((st = recsys_session_new(ctx, m, &s))) {
        rc = cli_fail("recommend", ctx, st, NULL);
        goto done;
    }
    if (data && ((st = recsys_opts_new(ctx, &opts)) ||
                 (st = recsys_dataset_open(ctx, data, opts, &ds)))) {
        rc = cli_fail("recommend", ctx, st, "cannot load --data");
        goto done;
    }
    if (adapters && user_adapters_open(ctx, m, adapters, ds, &ua, uerr, sizeof uerr)) {
        fprintf(stderr, "recsys recommend: %s\n", uerr);
        goto done;
    }
    if (input && !(in = fopen(input, "r"))) {
        fprintf(stderr, "recsys recommend: cannot open '%s'\n", input);
        goto done;
    }
    rj_limits lim = {.default_k = k, .max_k = info.n_items, .default_exclude_history = excl,
                     .max_requests = 1, .max_ids = 1u << 20};
    p = calloc((size_t)batch, sizeof *p);
    size_t cap = 0, n = 0;
    int max_k = k;
    if (!p) goto done;
    rc = 0;
    ssize_t len;
    while (!rc && (len = getline(&line, &cap, in)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        if (len == 0) continue;
        char err[256];
        if ((size_t)len > LINE_MAX_BYTES) {
            p[n].error = strdup("the line is longer than 1 MiB");
        } else if (rj_parse(line, (size_t)len, &lim, cli_lookup_item, m, &p[n].b, err, sizeof err)) {
            p[n].error = strdup(err);
        } else if (p[n].b.is_batch || p[n].b.n != 1) {
            rj_batch_free(&p[n].b);
            p[n].error = strdup("one request per line (no batches)");
        } else {
            rj_request *r = &p[n].b.reqs[0];
            if (r->k > max_k) max_k = r->k;
            if (user_adapters_for(&ua, r->user_json, &r->req.adapter, &p[n].owned, uerr,
                                  sizeof uerr)) {
                rj_batch_free(&p[n].b);
                p[n].error = strdup(uerr);
            }
        }
        if (++n == (size_t)batch) {
            rc = flush(s, ctx, m, p, n, max_k, stdout);
            n = 0;
        }
    }
    if (!rc && n) rc = flush(s, ctx, m, p, n, max_k, stdout);
done:
    if (in && in != stdin) fclose(in);
    free(line);
    for (size_t i = 0; p && i < (size_t)batch; i++) recsys_adapter_free(p[i].owned);
    free(p);
    recsys_session_free(s);
    user_adapters_close(&ua);
    recsys_dataset_free(ds);
    recsys_opts_free(opts);
    recsys_model_free(m);
    recsys_ctx_free(ctx);
    return rc;
}

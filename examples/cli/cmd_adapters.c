/* recsys adapters inspect|merge|update: look into, combine and keep
 * training per-user adapters (docs/ADAPTERS.md, "CLI").
 *
 * Users are named by the store's dense ids (the `user` of eval --per-user),
 * or by their external ids when --history names the data the store was
 * built on (its users' order gives the store's slots). */
#include "cli.h"
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *TARGETS[RECSYS_ADAPTER_N_TARGETS] = {"q", "k", "v", "o", "u", "ffn1", "ffn2"};
static const char *KINDS[] = {"user", "shared", "bank"};

static void usage(void)
{
    fprintf(stderr,
            "usage: recsys adapters inspect ADAPTERS [--user ID]... [--history PATH]\n"
            "       recsys adapters merge --model BASE --adapters STORE\n"
            "                     (--users ID,ID,... | --users-file F) [--weights w,w,...]\n"
            "                     [--method linear|ties] [--rank R] --out FILE [--history PATH]\n"
            "       recsys adapters update --model BASE --adapters STORE --data NEW_EVENTS\n"
            "                     [--history PATH] [--users ID,...] [--skip-unknown]\n"
            "common: [--config FILE] [--set key=value]... [--threads N]\n"
            "inspect: one JSON object (kind, rank, targets, users, checksums verified; with\n"
            "  --user: whether the user has an adapter and each target's |delta W|).\n"
            "merge: the users' stored adapters merged (weights default 1/n) into one adapter\n"
            "  file for `recsys eval --adapters FILE`; one JSON line.\n"
            "update: each user with events in NEW_EVENTS (external ids of the base) gets\n"
            "  their adapter (or a new one) trained further on their history (--history,\n"
            "  default data.path) followed by the new events, base frozen, and stored\n"
            "  atomically; one JSON line per user, then a summary.\n"
            "IDs: external user ids of --history when given, else store slots 0..n-1.\n");
}

/* ---------------------------------------------------------------- helpers */

typedef struct idlist {
    char **v;
    size_t n, cap;
} idlist;

static int idlist_add(idlist *l, const char *s, size_t n)
{
    if (!n) return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, sizeof *v * cap);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    return (l->v[l->n] = strndup(s, n)) ? (int)(++l->n, 0) : -1;
}

static void idlist_free(idlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Comma-separated ids. */
static int idlist_parse(idlist *l, const char *s)
{
    while (*s) {
        size_t n = strcspn(s, ",");
        if (idlist_add(l, s, n)) return -1;
        s += n + (s[n] == ',');
    }
    return 0;
}

/* Ids separated by white space or commas (lines of a file). */
static int idlist_file(idlist *l, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[4096];
    int rc = 0;
    while (!rc && fgets(buf, sizeof buf, f))
        for (char *p = buf; *p && !rc;) {
            size_t n = strcspn(p, " \t\r\n,");
            if (p[0] != '#') rc = idlist_add(l, p, n);
            else break;
            p += n;
            p += strspn(p, " \t\r\n,");
        }
    fclose(f);
    return rc;
}

/* Store slot of an id: the external id in hist, or a number without hist. */
static int resolve_user(const recsys_dataset *hist, const char *id, int64_t n_users, int64_t *slot)
{
    if (hist) return recsys_dataset_user_id(hist, id, slot) ? -1 : 0;
    char *e;
    long long v = strtoll(id, &e, 10);
    if (e == id || *e || v < 0 || v >= n_users) return -1;
    *slot = v;
    return 0;
}

static void json_targets(unsigned mask)
{
    printf("[");
    for (int t = 0, k = 0; t < RECSYS_ADAPTER_N_TARGETS; t++)
        if (mask & (1u << t)) printf("%s\"%s\"", k++ ? ", " : "", TARGETS[t]);
    printf("]");
}

static void json_norms(const double *norms)
{
    printf("{");
    for (int t = 0, k = 0; t < RECSYS_ADAPTER_N_TARGETS; t++)
        if (!isnan(norms[t])) printf("%s\"%s\": %.6g", k++ ? ", " : "", TARGETS[t], norms[t]);
    printf("}");
}

/* The options every subcommand reads: --config, --set, --threads, and
 * flags taking a value into *vals (names[i] -> vals[i]); bare flags in
 * bools. Returns 0, 1 after an error, 2 for --help. */
typedef struct args {
    const char **names;
    const char **vals;
    int n;
    const char **bools;
    int *bool_vals;
    int nb;
    idlist users;     /* --user (repeatable) / --users */
    const char *pos;  /* the positional argument (inspect) */
} args;

static int parse(const char *cmd, recsys_ctx *ctx, recsys_opts *opts, int argc, char **argv,
                 args *a)
{
    if (cli_load_config(cmd, ctx, opts, argc, argv, NULL)) return 1;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) return 2;
        int done = 0;
        for (int b = 0; b < a->nb && !done; b++)
            if (!strcmp(k, a->bools[b])) a->bool_vals[b] = done = 1;
        if (done) continue;
        if (k[0] != '-' && !a->pos) {
            a->pos = k;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "recsys %s: %s needs a value\n", cmd, k);
            return 1;
        }
        const char *v = argv[++i];
        recsys_status st;
        if (!strcmp(k, "--config")) continue;
        if (!strcmp(k, "--set")) {
            if ((st = cli_set_kv(opts, v))) return cli_fail(cmd, ctx, st, NULL);
            continue;
        }
        if (!strcmp(k, "--threads")) {
            if ((st = recsys_opts_set(opts, "trainer.threads", v))) return cli_fail(cmd, ctx, st, NULL);
            continue;
        }
        if (!strcmp(k, "--user") || !strcmp(k, "--users")) {
            if (idlist_parse(&a->users, v)) return 1;
            continue;
        }
        if (!strcmp(k, "--users-file")) {
            if (idlist_file(&a->users, v)) {
                fprintf(stderr, "recsys %s: cannot read %s\n", cmd, v);
                return 1;
            }
            continue;
        }
        for (int n = 0; n < a->n && !done; n++)
            if (!strcmp(k, a->names[n])) {
                a->vals[n] = v;
                done = 1;
            }
        if (!done) {
            fprintf(stderr, "recsys %s: unknown option %s\n", cmd, k);
            return 1;
        }
    }
    int64_t threads;
    recsys_opts_get_int(opts, "trainer.threads", &threads);
    recsys_status st = recsys_ctx_set_threads(ctx, (int)threads);
    return st ? cli_fail(cmd, ctx, st, NULL) : 0;
}

/* ---------------------------------------------------------------- inspect */

static int adapters_inspect(recsys_ctx *ctx, recsys_opts *opts, int argc, char **argv)
{
    const char *C = "adapters inspect";
    const char *names[] = {"--history"}, *vals[1] = {NULL};
    args a = {names, vals, 1, NULL, NULL, 0, {0}, NULL};
    recsys_dataset *hist = NULL;
    int rc = parse(C, ctx, opts, argc, argv, &a);
    if (rc == 2 || (!rc && !a.pos)) {
        usage();
        rc = rc == 2 ? 0 : 1;
        goto done;
    }
    if (rc) goto done;
    rc = 1;
    recsys_adapter_file_info fi = {.struct_size = sizeof fi};
    recsys_status st = recsys_adapter_inspect(ctx, a.pos, &fi);
    if (st) {
        cli_fail(C, ctx, st, "damaged or unreadable adapters");
        goto done;
    }
    if (a.users.n && !fi.is_store) {
        fprintf(stderr, "recsys %s: --user needs an adapter store; %s is one adapter\n", C, a.pos);
        goto done;
    }
    if (vals[0] && (st = recsys_dataset_open(ctx, vals[0], opts, &hist))) {
        cli_fail(C, ctx, st, "cannot load the history");
        goto done;
    }
    /* the per-user part first, so that an error prints no partial JSON */
    double *norms = calloc(a.users.n + 1, sizeof(double) * RECSYS_ADAPTER_N_TARGETS);
    int *present = calloc(a.users.n + 1, sizeof(int));
    int64_t *slots = calloc(a.users.n + 1, sizeof(int64_t));
    if (!norms || !present || !slots) goto free_user;
    if (!fi.is_store && fi.kind != RECSYS_ADAPTER_BANK &&
        (st = recsys_adapter_inspect_user(ctx, a.pos, -1, norms, RECSYS_ADAPTER_N_TARGETS))) {
        cli_fail(C, ctx, st, "cannot read the adapter");
        goto free_user;
    }
    for (size_t i = 0; i < a.users.n; i++) {
        if (resolve_user(hist, a.users.v[i], fi.n_users, &slots[i])) {
            fprintf(stderr, "recsys %s: unknown user '%s' (%s)\n", C, a.users.v[i],
                    hist ? "not in --history" : "not a store slot 0..n_users-1");
            goto free_user;
        }
        st = recsys_adapter_inspect_user(ctx, a.pos, slots[i],
                                         norms + (i + 1) * RECSYS_ADAPTER_N_TARGETS,
                                         RECSYS_ADAPTER_N_TARGETS);
        if (st && st != RECSYS_E_NOT_FOUND) {
            cli_fail(C, ctx, st, "cannot read the user's adapter");
            goto free_user;
        }
        present[i] = st == RECSYS_OK;
    }
    printf("{\"path\": ");
    cli_json_string(stdout, a.pos);
    printf(", \"type\": \"%s\", \"format_version\": %d, \"kind\": \"%s\", \"rank\": %d, "
           "\"alpha\": %.6g, \"targets\": ",
           fi.is_store ? "store" : "adapter", fi.version, KINDS[fi.kind], fi.rank, fi.alpha);
    json_targets((unsigned)fi.targets);
    printf(", \"dtype\": \"%s\", \"window\": %d, \"bank_size\": %d, \"params_per_user\": %lld, "
           "\"model\": {\"type\": \"%s\", \"dim\": %d, \"blocks\": %d, \"items\": %d}",
           fi.dtype ? "bf16" : "f32", fi.window, fi.bank_size, (long long)fi.n_params,
           fi.model_type == RECSYS_MODEL_HSTU ? "hstu" : "sasrec", fi.model_dim, fi.model_blocks,
           (int)fi.n_items);
    if (fi.is_store)
        printf(", \"users\": %lld, \"users_with_adapter\": %lld, \"records\": %lld",
               (long long)fi.n_users, (long long)fi.users_present, (long long)fi.records);
    else if (fi.kind != RECSYS_ADAPTER_BANK) {
        printf(", \"norms\": ");
        json_norms(norms);
    }
    printf(", \"bytes_per_user\": %lld, \"file_bytes\": %lld, \"checksum_verified\": true",
           (long long)fi.bytes_per_user, (long long)fi.file_bytes);
    if (a.users.n) {
        printf(", \"user_details\": [");
        for (size_t i = 0; i < a.users.n; i++) {
            printf("%s{\"user\": ", i ? ", " : "");
            cli_json_string(stdout, a.users.v[i]);
            printf(", \"slot\": %lld, \"present\": %s", (long long)slots[i],
                   present[i] ? "true" : "false");
            if (present[i]) {
                printf(", \"norms\": ");
                json_norms(norms + (i + 1) * RECSYS_ADAPTER_N_TARGETS);
            }
            printf("}");
        }
        printf("]");
    }
    printf("}\n");
    rc = 0;
free_user:
    free(norms);
    free(present);
    free(slots);
done:
    recsys_dataset_free(hist);
    idlist_free(&a.users);
    return rc;
}

/* ---------------------------------------------------------------- merge */

static int adapters_merge(recsys_ctx *ctx, recsys_opts *opts, int argc, char **argv)
{
    const char *C = "adapters merge";
    const char *names[] = {"--model", "--adapters", "--weights", "--method", "--rank", "--out",
                           "--history"};
    const char *vals[7] = {NULL};
    args a = {names, vals, 7, NULL, NULL, 0, {0}, NULL};
    recsys_model *model = NULL;
    recsys_adapter_store *store = NULL;
    recsys_dataset *hist = NULL;
    recsys_adapter **ads = NULL, *merged = NULL;
    float *w = NULL;
    void *buf = NULL;
    recsys_status st;
    double t0 = cli_now();
    int rc = parse(C, ctx, opts, argc, argv, &a);
    if (rc == 2 || (!rc && (!vals[0] || !vals[1] || !vals[5] || !a.users.n || a.pos))) {
        usage();
        rc = rc == 2 ? 0 : 1;
        goto done;
    }
    if (rc) goto done;
    rc = 1;
    if ((vals[3] && (st = recsys_opts_set(opts, "adapter.merge", vals[3]))) ||
        (vals[4] && (st = recsys_opts_set(opts, "adapter.merge_rank", vals[4])))) {
        cli_fail(C, ctx, st, NULL);
        goto done;
    }
    size_t n = a.users.n;
    ads = calloc(n, sizeof *ads);
    w = malloc(sizeof *w * n);
    if (!ads || !w) goto done;
    for (size_t i = 0; i < n; i++) w[i] = 1.0f / (float)n;
    if (vals[2]) {
        const char *p = vals[2];
        size_t k = 0;
        for (; *p && k < n; k++) {
            char *e;
            w[k] = strtof(p, &e);
            if (e == p || (*e && *e != ',') || !isfinite(w[k])) break;
            p = *e ? e + 1 : e;
        }
        if (k != n || *p) {
            fprintf(stderr, "recsys %s: --weights needs %zu numbers, one per user\n", C, n);
            goto done;
        }
    }
    if ((st = recsys_model_load(ctx, vals[0], &model))) {
        cli_fail(C, ctx, st, "cannot load the model");
        goto done;
    }
    if ((st = recsys_adapter_store_open(ctx, model, vals[1], 0, opts, &store))) {
        cli_fail(C, ctx, st, "cannot open the adapter store");
        goto done;
    }
    if (vals[6] && (st = recsys_dataset_open(ctx, vals[6], opts, &hist))) {
        cli_fail(C, ctx, st, "cannot load the history");
        goto done;
    }
    int64_t n_users = 0;
    recsys_adapter_store_stats(store, &n_users, NULL, NULL, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        int64_t slot;
        if (resolve_user(hist, a.users.v[i], n_users, &slot)) {
            fprintf(stderr, "recsys %s: unknown user '%s' (%s)\n", C, a.users.v[i],
                    hist ? "not in --history" : "not a store slot 0..n_users-1");
            goto done;
        }
        if ((st = recsys_adapter_store_get(store, slot, &ads[i]))) {
            cli_fail(C, ctx, st, st == RECSYS_E_NOT_FOUND ? "a user has no adapter"
                                                          : "cannot read a user's adapter");
            goto done;
        }
    }
    size_t len = 0;
    if ((st = recsys_adapter_merge(ctx, (const recsys_adapter *const *)ads, w, n, opts, &merged)) ||
        (st = recsys_adapter_to_buffer(merged, &buf, &len))) {
        cli_fail(C, ctx, st, "merge failed");
        goto done;
    }
    if (cli_write_file_atomic(vals[5], buf, len)) {
        fprintf(stderr, "recsys %s: cannot write %s\n", C, vals[5]);
        goto done;
    }
    const char *method;
    int rank;
    recsys_opts_get(opts, "adapter.merge", &method);
    recsys_adapter_info(merged, NULL, &rank, NULL);
    printf("{\"merged\": %zu, \"method\": \"%s\", \"rank\": %d, \"weights\": [", n, method, rank);
    for (size_t i = 0; i < n; i++) printf("%s%.6g", i ? ", " : "", (double)w[i]);
    printf("], \"bytes\": %zu, \"seconds\": %.3f, \"out\": ", len, cli_now() - t0);
    cli_json_string(stdout, vals[5]);
    printf("}\n");
    rc = 0;
done:
    for (size_t i = 0; ads && i < a.users.n; i++) recsys_adapter_free(ads[i]);
    free(ads);
    free(w);
    recsys_free(buf);
    recsys_adapter_free(merged);
    recsys_adapter_store_close(store);
    recsys_dataset_free(hist);
    recsys_model_free(model);
    idlist_free(&a.users);
    return rc;
}

/* ---------------------------------------------------------------- update */

/* The base's dense id of ds's item (its external id through the model's
 * map; data without names shares the model's dense ids). 0: unknown. */
static int32_t model_item(const recsys_model *m, const recsys_dataset *ds, int32_t item)
{
    const char *name = NULL;
    int32_t id = 0;
    if (recsys_dataset_item_name(ds, item, &name) || !name) return item;
    return recsys_model_item_id(m, name, &id) ? 0 : id;
}

static int adapters_update(recsys_ctx *ctx, recsys_opts *opts, int argc, char **argv)
{
    const char *C = "adapters update";
    const char *names[] = {"--model", "--adapters", "--data", "--history"};
    const char *vals[4] = {NULL};
    const char *bools[] = {"--skip-unknown"};
    int skip_unknown = 0;
    args a = {names, vals, 4, bools, &skip_unknown, 1, {0}, NULL};
    recsys_model *model = NULL;
    recsys_adapter_store *store = NULL;
    recsys_dataset *hist = NULL, *news = NULL;
    recsys_opts *nopts = NULL;
    recsys_adapter *ad = NULL;
    int32_t *items = NULL;
    int64_t *times = NULL;
    recsys_status st;
    double t0 = cli_now();
    int rc = parse(C, ctx, opts, argc, argv, &a);
    if (rc == 2 || (!rc && (!vals[0] || !vals[1] || !vals[2] || a.pos))) {
        usage();
        rc = rc == 2 ? 0 : 1;
        goto done;
    }
    if (rc) goto done;
    rc = 1;
    const char *hist_path = vals[3];
    if (!hist_path) recsys_opts_get(opts, "data.path", &hist_path);
    /* new adapters take the store's shape, whatever adapter.* says */
    recsys_adapter_file_info fi = {.struct_size = sizeof fi};
    if ((st = recsys_adapter_inspect(ctx, vals[1], &fi))) {
        cli_fail(C, ctx, st, "damaged or unreadable adapter store");
        goto done;
    }
    if (!fi.is_store) {
        fprintf(stderr, "recsys %s: %s is one adapter, not a store\n", C, vals[1]);
        goto done;
    }
    char targets[64] = "";
    for (int t = 0; t < RECSYS_ADAPTER_N_TARGETS; t++)
        if (fi.targets & (1 << t)) {
            if (targets[0]) strcat(targets, ",");
            strcat(targets, TARGETS[t]);
        }
    recsys_opts_set_int(opts, "adapter.rank", fi.rank);
    recsys_opts_set_float(opts, "adapter.alpha", fi.alpha);
    recsys_opts_set(opts, "adapter.targets", targets);
    recsys_opts_set_int(opts, "adapter.window", fi.window);
    if ((st = recsys_model_load(ctx, vals[0], &model))) {
        cli_fail(C, ctx, st, "cannot load the model");
        goto done;
    }
    if ((st = recsys_adapter_store_open(ctx, model, vals[1], 1, opts, &store))) {
        cli_fail(C, ctx, st, "cannot open the adapter store");
        goto done;
    }
    if ((st = recsys_dataset_open(ctx, hist_path, opts, &hist))) {
        cli_fail(C, ctx, st, "cannot load the history (--history)");
        goto done;
    }
    double hu = 0;
    recsys_dataset_stat(hist, RECSYS_STAT_USERS, &hu);
    if ((int64_t)hu != fi.n_users) {
        fprintf(stderr, "recsys %s: the history has %.0f users, the store %lld slots (give the "
                        "data the store was built on as --history)\n", C, hu, (long long)fi.n_users);
        goto done;
    }
    /* NEW_EVENTS: every event kept (no minimum counts), ordered per user */
    if ((st = recsys_opts_new(ctx, &nopts)) ||
        (st = recsys_dataset_load(ctx, vals[2], nopts, &news))) {
        cli_fail(C, ctx, st, "cannot load the new events");
        goto done;
    }
    double nu = 0;
    recsys_dataset_stat(news, RECSYS_STAT_USERS, &nu);
    int64_t updated = 0, fresh_n = 0, skipped_users = 0, skipped_events = 0, new_total = 0;
    double loss_sum = 0;
    for (int64_t u = 0; u < (int64_t)nu; u++) {
        const char *name;
        recsys_dataset_user_name(news, u, &name);
        if (a.users.n) {
            size_t k = 0;
            while (k < a.users.n && strcmp(a.users.v[k], name)) k++;
            if (k == a.users.n) continue;
        }
        int64_t slot;
        const int32_t *nit, *hit;
        const int64_t *nt, *ht;
        size_t nn, hn;
        recsys_dataset_user_items(news, u, &nit, &nt, &nn);
        if (recsys_dataset_user_id(hist, name, &slot)) {
            if (!skip_unknown) {
                fprintf(stderr, "recsys %s: user '%s' of %s is not in the history (a new user "
                                "has no store slot; --skip-unknown skips them)\n", C, name, vals[2]);
                goto done;
            }
            skipped_users++;
            skipped_events += (int64_t)nn;
            continue;
        }
        recsys_dataset_user_items(hist, slot, &hit, &ht, &hn);
        free(items);
        free(times);
        items = malloc(sizeof *items * (hn + nn));
        times = malloc(sizeof *times * (hn + nn));
        if (!items || !times) goto done;
        size_t n = 0;
        int with_times = ht && nt;
        for (size_t k = 0; k < hn + nn; k++) {
            int is_new = k >= hn;
            const recsys_dataset *src = is_new ? news : hist;
            int32_t it = model_item(model, src, is_new ? nit[k - hn] : hit[k]);
            if (!it) {
                const char *iname = "?";
                recsys_dataset_item_name(src, is_new ? nit[k - hn] : hit[k], &iname);
                if (!skip_unknown) {
                    fprintf(stderr, "recsys %s: item '%s' (user '%s') is not in the model's "
                                    "catalogue (--skip-unknown drops such events)\n", C, iname, name);
                    goto done;
                }
                skipped_events++;
                continue;
            }
            items[n] = it;
            if (with_times) times[n] = is_new ? nt[k - hn] : ht[k];
            n++;
        }
        if (n < 2) {
            skipped_users++;
            continue;
        }
        double t1 = cli_now(), loss = 0;
        int fresh = 0;
        st = recsys_adapter_store_get(store, slot, &ad);
        if (st == RECSYS_E_NOT_FOUND) {
            fresh = 1;
            st = recsys_adapter_new(ctx, model, opts, RECSYS_ADAPTER_USER, &ad);
        }
        if (st || (st = recsys_adapter_train_sequence(ad, items, with_times ? times : NULL, n,
                                                      opts, &loss)) ||
            (st = recsys_adapter_store_put(store, slot, ad, 1))) {
            fprintf(stderr, "recsys %s: user '%s': ", C, name);
            cli_fail(C, ctx, st, "update failed (the user's previous adapter is kept)");
            goto done;
        }
        recsys_adapter_free(ad);
        ad = NULL;
        updated++;
        fresh_n += fresh;
        new_total += (int64_t)nn;
        loss_sum += loss;
        printf("{\"user\": ");
        cli_json_string(stdout, name);
        printf(", \"slot\": %lld, \"events\": %zu, \"history\": %zu, \"fresh\": %s, "
               "\"loss\": %.6f, \"ms\": %.3f}\n",
               (long long)slot, nn, n, fresh ? "true" : "false", loss, 1e3 * (cli_now() - t1));
        fflush(stdout);
    }
    printf("{\"updated\": %lld, \"fresh\": %lld, \"new_events\": %lld, \"skipped_users\": %lld, "
           "\"skipped_events\": %lld, \"mean_loss\": %.6f, \"seconds\": %.3f, \"adapters\": ",
           (long long)updated, (long long)fresh_n, (long long)new_total, (long long)skipped_users,
           (long long)skipped_events, updated ? loss_sum / (double)updated : 0.0, cli_now() - t0);
    cli_json_string(stdout, vals[1]);
    printf("}\n");
    rc = 0;
done:
    free(items);
    free(times);
    recsys_adapter_free(ad);
    recsys_adapter_store_close(store);
    recsys_dataset_free(news);
    recsys_dataset_free(hist);
    recsys_opts_free(nopts);
    recsys_model_free(model);
    idlist_free(&a.users);
    return rc;
}

int cmd_adapters(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    int (*fn)(recsys_ctx *, recsys_opts *, int, char **) =
        !strcmp(argv[1], "inspect") ? adapters_inspect
        : !strcmp(argv[1], "merge") ? adapters_merge
        : !strcmp(argv[1], "update") ? adapters_update : NULL;
    if (!fn) {
        fprintf(stderr, "recsys adapters: unknown subcommand '%s' (inspect, merge, update)\n",
                argv[1]);
        return 2;
    }
    recsys_ctx *ctx = NULL;
    recsys_opts *opts = NULL;
    int rc = 1;
    if (!recsys_ctx_new(&ctx) && !recsys_opts_new(ctx, &opts)) rc = fn(ctx, opts, argc - 1, argv + 1);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    return rc;
}

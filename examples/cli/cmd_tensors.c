/* recsys import / recsys export: models <-> safetensors files.
 *
 *   recsys import --from safetensors FILE [--config YAML] [--set k=v]... --out MODEL
 *   recsys export --to safetensors --model MODEL --out FILE [--names native|pmixer]
 *
 * Two naming schemes (docs/SERVING.md, "Models from PyTorch"):
 *   native  librecsys's tensor names and layout (recsys_model_tensor_info):
 *           what tools/gen_{sasrec,hstu}_fixture.py's model classes use;
 *   pmixer  the state_dict of pmixer/SASRec.pytorch (SASRec only).
 * Import detects the scheme ("item_emb.weight" present = pmixer). Every
 * tensor of the model must be supplied and every tensor of the file used.
 * Exported files carry the model.* config and the item ids in
 * __metadata__, so importing them needs no --config. */
#include "cli.h"
#include "commands.h"
#include "safetensors.h"

#include <stdlib.h>
#include <string.h>

#define ERR_LEN 512

static void usage_import(void)
{
    fprintf(stderr,
            "usage: recsys import --from safetensors FILE [--config YAML] [--set key=value]...\n"
            "                     --out MODEL\n"
            "Tensor names: librecsys's own (as `recsys export` writes) or the state_dict of\n"
            "pmixer/SASRec.pytorch (item_emb.weight, attention_layers.0.in_proj_weight, ...).\n"
            "model.* keys come from the file's __metadata__, then --config, then --set.\n");
}

static void usage_export(void)
{
    fprintf(stderr, "usage: recsys export --to safetensors --model MODEL --out FILE "
                    "[--names native|pmixer]\n");
}

/* ------------------------------------------------------------ helpers */

/* One tensor's description (recsys_model_tensor_info). */
typedef struct tensor_desc {
    const char *name;
    int ndim;
    int64_t shape[RECSYS_TENSOR_MAX_DIMS];
    int64_t numel;
} tensor_desc;

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 1 << 20;
            unsigned char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Where one of our tensors (block k, or the whole tensor when k < 0) comes
 * from in a pmixer state_dict. Returns 0 when the tensor has no source. */
static int pmixer_name(const char *ours, int k, char *out, size_t n)
{
    static const struct { const char *ours, *fmt; } MAP[] = {
        {"attn_ln.gamma", "attention_layernorms.%d.weight"},
        {"attn_ln.beta", "attention_layernorms.%d.bias"},
        {"attn.w_in", "attention_layers.%d.in_proj_weight"},
        {"attn.b_in", "attention_layers.%d.in_proj_bias"},
        {"attn.w_out", "attention_layers.%d.out_proj.weight"},
        {"attn.b_out", "attention_layers.%d.out_proj.bias"},
        {"ffn_ln.gamma", "forward_layernorms.%d.weight"},
        {"ffn_ln.beta", "forward_layernorms.%d.bias"},
        {"ffn.w1", "forward_layers.%d.conv1.weight"},
        {"ffn.b1", "forward_layers.%d.conv1.bias"},
        {"ffn.w2", "forward_layers.%d.conv2.weight"},
        {"ffn.b2", "forward_layers.%d.conv2.bias"},
    };
    if (k < 0) {
        const char *s = !strcmp(ours, "item_emb")         ? "item_emb.weight"
                        : !strcmp(ours, "pos_emb")        ? "pos_emb.weight"
                        : !strcmp(ours, "final_ln.gamma") ? "last_layernorm.weight"
                        : !strcmp(ours, "final_ln.beta")  ? "last_layernorm.bias"
                                                          : NULL;
        if (!s) return 0;
        snprintf(out, n, "%s", s);
        return 1;
    }
    for (size_t i = 0; i < sizeof MAP / sizeof MAP[0]; i++)
        if (!strcmp(ours, MAP[i].ours)) {
            snprintf(out, n, MAP[i].fmt, k);
            return 1;
        }
    return 0;
}

static int is_block_tensor(const tensor_desc *ti, int blocks, int scheme_pmixer)
{
    if (!scheme_pmixer) return 0;
    return strcmp(ti->name, "item_emb") && strcmp(ti->name, "pos_emb") &&
           strncmp(ti->name, "final_ln.", 9) && ti->ndim >= 1 && ti->shape[0] == blocks;
}

/* Shapes equal, ignoring trailing 1s of the file's (Conv1d's kernel dim). */
static int shape_match(const int64_t *want, int wn, const st_tensor *t)
{
    int tn = t->ndim;
    while (tn > wn && t->shape[tn - 1] == 1) tn--;
    if (tn != wn) return 0;
    for (int i = 0; i < wn; i++)
        if (want[i] != t->shape[i]) return 0;
    return 1;
}

static void shape_text(char *buf, size_t n, const int64_t *s, int nd)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* ------------------------------------------------------------- import */

static void tensor_info(const recsys_model *m, int i, tensor_desc *ti)
{
    memset(ti, 0, sizeof *ti);
    recsys_model_tensor_info(m, i, &ti->name, &ti->ndim, ti->shape, &ti->numel);
}

typedef struct import_state {
    const st_file *f;
    char *used;     /* per file tensor */
    int pmixer;
    char err[ERR_LEN];
} import_state;

static int take(import_state *s, const char *name, const int64_t *shape, int nd, float *dst)
{
    const st_tensor *t = st_find(s->f, name);
    if (!t) {
        snprintf(s->err, sizeof s->err, "the file has no tensor '%s'", name);
        return -1;
    }
    if (!shape_match(shape, nd, t)) {
        char a[96], b[96];
        shape_text(a, sizeof a, shape, nd);
        shape_text(b, sizeof b, t->shape, t->ndim);
        snprintf(s->err, sizeof s->err, "tensor '%s' has shape %s, the model needs %s", name, b, a);
        return -1;
    }
    s->used[t - s->f->t] = 1;
    return st_read_f32(s->f, t, dst, s->err, sizeof s->err);
}

/* Fill one of our tensors from the file. */
static int fill_tensor(import_state *s, const tensor_desc *ti, int blocks, int max_len,
                       float *dst)
{
    if (!s->pmixer) return take(s, ti->name, ti->shape, ti->ndim, dst);
    char name[128];
    if (is_block_tensor(ti, blocks, 1)) {
        size_t per = (size_t)(ti->numel / blocks);
        for (int k = 0; k < blocks; k++) {
            if (!pmixer_name(ti->name, k, name, sizeof name)) goto unmapped;
            if (take(s, name, ti->shape + 1, ti->ndim - 1, dst + (size_t)k * per)) return -1;
        }
        return 0;
    }
    if (!pmixer_name(ti->name, -1, name, sizeof name)) goto unmapped;
    if (!strcmp(ti->name, "pos_emb")) {
        /* Current pmixer: [maxlen+1, d], row 0 padding, positions 1..L (as
         * ours). Older pmixer: [maxlen, d] indexed 0..L-1: shifted by a row. */
        const st_tensor *t = st_find(s->f, name);
        if (t && t->ndim == 2 && t->shape[0] == max_len && t->shape[1] == ti->shape[1]) {
            int64_t sh[2] = {max_len, ti->shape[1]};
            memset(dst, 0, sizeof(float) * (size_t)ti->shape[1]);
            return take(s, name, sh, 2, dst + ti->shape[1]);
        }
        /* Current pmixer sizes pos_emb for maxlen 200 whatever the data's
         * length L; a model of max_len L reads rows 0..L of it. */
        if (t && t->ndim == 2 && t->shape[0] > max_len + 1 && t->shape[1] == ti->shape[1]) {
            float *all = malloc(sizeof(float) * t->numel);
            if (!all) {
                snprintf(s->err, sizeof s->err, "out of memory");
                return -1;
            }
            int64_t sh[2] = {t->shape[0], t->shape[1]};
            int rc = take(s, name, sh, 2, all);
            if (!rc) memcpy(dst, all, sizeof(float) * (size_t)ti->numel);
            free(all);
            return rc;
        }
    }
    return take(s, name, ti->shape, ti->ndim, dst);
unmapped:
    snprintf(s->err, sizeof s->err, "tensor '%s' has no pmixer/SASRec.pytorch counterpart",
             ti->name);
    return -1;
}

/* Item ids from __metadata__ "recsys.item_ids" (one per line). */
static int import_item_ids(recsys_ctx *ctx, recsys_model *m, const char *text, int32_t n_items)
{
    char *copy = strdup(text);
    const char **ids = malloc(sizeof *ids * (size_t)(n_items ? n_items : 1));
    int rc = 0;
    if (!copy || !ids) rc = -1;
    int32_t k = 0;
    for (char *p = copy; !rc && p && k < n_items; k++) {
        ids[k] = p;
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        p = nl ? nl + 1 : NULL;
    }
    if (!rc && (k != n_items || recsys_model_set_item_ids(ctx, m, ids, n_items))) rc = -1;
    free(ids);
    free(copy);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    const char *from = NULL, *file = NULL, *config = NULL, *out = NULL;
    recsys_ctx *ctx = NULL;
    recsys_opts *opts = NULL;
    recsys_model *m = NULL;
    unsigned char *buf = NULL;
    st_file f = {0};
    import_state s = {0};
    float *tmp = NULL;
    int rc = 1;
    recsys_status st = recsys_ctx_new_with_threads(1, &ctx);
    if (!st) st = recsys_opts_new(ctx, &opts);
    if (st) return cli_fail("import", ctx, st, "cannot start");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_import();
            rc = 0;
            goto done;
        }
        if (i + 1 >= argc) {
            usage_import();
            rc = 2;
            goto done;
        }
        if (!strcmp(a, "--from")) {
            from = argv[++i];
            if (i + 1 < argc && strncmp(argv[i + 1], "--", 2)) file = argv[++i];
        } else if (!strcmp(a, "--config")) config = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else if (!strcmp(a, "--set")) {
            ++i; /* applied after the metadata and the config */
        } else {
            usage_import();
            rc = 2;
            goto done;
        }
    }
    if (!from || strcmp(from, "safetensors") || !file || !out) {
        usage_import();
        rc = 2;
        goto done;
    }
    size_t len = 0;
    if (!(buf = read_file(file, &len))) {
        fprintf(stderr, "recsys import: cannot read '%s'\n", file);
        goto done;
    }
    char err[ERR_LEN];
    if (st_parse(buf, len, &f, err, sizeof err)) {
        fprintf(stderr, "recsys import: %s: %s\n", file, err);
        goto done;
    }
    /* model.* keys: the file's metadata, then --config, then --set. */
    for (size_t i = 0; i < f.n_meta; i++)
        if (!strncmp(f.meta_keys[i], "model.", 6) &&
            (st = recsys_opts_set(opts, f.meta_keys[i], f.meta_vals[i]))) {
            rc = cli_fail("import", ctx, st, "bad model key in the file's __metadata__");
            goto done;
        }
    if (config && (st = recsys_opts_load_yaml(opts, config))) {
        rc = cli_fail("import", ctx, st, "cannot read the config");
        goto done;
    }
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--set") && (st = cli_set_kv(opts, argv[++i]))) {
            rc = cli_fail("import", ctx, st, "bad --set");
            goto done;
        }
    s.f = &f;
    s.pmixer = st_find(&f, "item_emb.weight") != NULL;
    const st_tensor *items = st_find(&f, s.pmixer ? "item_emb.weight" : "item_emb");
    if (!items || items->ndim != 2 || items->shape[0] < 2 || items->shape[0] > INT32_MAX) {
        fprintf(stderr, "recsys import: %s: no item embedding table (item_emb or "
                        "item_emb.weight, [n_items+1, dim])\n", file);
        goto done;
    }
    const char *type = NULL;
    if (s.pmixer && (recsys_opts_get(opts, "model.type", &type) || strcmp(type, "sasrec"))) {
        fprintf(stderr, "recsys import: pmixer/SASRec.pytorch names need model.type: sasrec\n");
        goto done;
    }
    int32_t n_items = (int32_t)(items->shape[0] - 1);
    if ((st = recsys_model_new_blank(ctx, opts, n_items, &m))) {
        rc = cli_fail("import", ctx, st, "bad model config");
        goto done;
    }
    recsys_model_info mi = {.struct_size = sizeof mi};
    recsys_model_info_get(m, &mi);
    s.used = calloc(f.n ? f.n : 1, 1);
    int nt = 0;
    recsys_model_tensor_count(m, &nt);
    if (!s.used) goto oom;
    for (int i = 0; i < nt; i++) {
        tensor_desc ti;
        tensor_info(m, i, &ti);
        free(tmp);
        if (!(tmp = malloc(sizeof(float) * (size_t)(ti.numel ? ti.numel : 1)))) goto oom;
        if (fill_tensor(&s, &ti, mi.blocks, mi.max_len, tmp)) {
            fprintf(stderr, "recsys import: %s: %s\n", file, s.err);
            goto done;
        }
        if ((st = recsys_model_set_tensor(ctx, m, ti.name, tmp, (size_t)ti.numel))) {
            rc = cli_fail("import", ctx, st, "cannot set a tensor");
            goto done;
        }
    }
    for (size_t i = 0; i < f.n; i++)
        if (!s.used[i]) {
            fprintf(stderr, "recsys import: %s: tensor '%s' is not used by a %s model with this "
                            "config (check model.* keys)\n", file, f.t[i].name,
                    mi.type == RECSYS_MODEL_HSTU ? "hstu" : "sasrec");
            goto done;
        }
    const char *ids = st_meta(&f, "recsys.item_ids");
    if (ids && import_item_ids(ctx, m, ids, n_items)) {
        fprintf(stderr, "recsys import: %s: bad recsys.item_ids metadata (%s)\n", file,
                recsys_ctx_errmsg(ctx));
        goto done;
    }
    if ((st = recsys_model_save(ctx, m, out))) {
        rc = cli_fail("import", ctx, st, "cannot save the model");
        goto done;
    }
    printf("{\"imported\": ");
    cli_json_string(stdout, out);
    printf(", \"names\": \"%s\", \"tensors\": %zu, \"n_items\": %d, \"n_params\": %lld}\n",
           s.pmixer ? "pmixer" : "native", f.n, n_items, (long long)mi.n_params);
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "recsys import: out of memory\n");
done:
    free(tmp);
    free(s.used);
    st_free(&f);
    free(buf);
    recsys_model_free(m);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    return rc;
}

/* ------------------------------------------------------------- export */

#define MAX_OUT 512

int cmd_export(int argc, char **argv)
{
    const char *to = NULL, *model = NULL, *out = NULL, *names = "native";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage_export();
            return 0;
        }
        if (i + 1 >= argc) {
            usage_export();
            return 2;
        }
        if (!strcmp(argv[i], "--to")) to = argv[++i];
        else if (!strcmp(argv[i], "--model")) model = argv[++i];
        else if (!strcmp(argv[i], "--out")) out = argv[++i];
        else if (!strcmp(argv[i], "--names")) names = argv[++i];
        else {
            usage_export();
            return 2;
        }
    }
    int pmixer = names && !strcmp(names, "pmixer");
    if (!to || strcmp(to, "safetensors") || !model || !out ||
        (!pmixer && strcmp(names, "native"))) {
        usage_export();
        return 2;
    }
    recsys_ctx *ctx = NULL;
    recsys_model *m = NULL;
    int rc = 1, nt = 0;
    size_t n_out = 0, n_meta = 0;
    recsys_status st = recsys_ctx_new_with_threads(1, &ctx);
    if (!st) st = recsys_model_load(ctx, model, &m);
    if (st) {
        rc = cli_fail("export", ctx, st, "cannot load the model");
        recsys_model_free(m);
        recsys_ctx_free(ctx);
        return rc;
    }
    recsys_model_info mi = {.struct_size = sizeof mi};
    recsys_model_info_get(m, &mi);
    recsys_model_tensor_count(m, &nt);
    char *onames[MAX_OUT];
    int ondims[MAX_OUT];
    int64_t oshape_store[MAX_OUT][RECSYS_TENSOR_MAX_DIMS];
    const int64_t *oshapes[MAX_OUT];
    const float *odata[MAX_OUT];
    float *tensors[64] = {0};
    const char *mk[32], *mv[32];
    char *ids_text = NULL;
    FILE *fo = NULL;
    if (pmixer && mi.type != RECSYS_MODEL_SASREC) {
        fprintf(stderr, "recsys export: --names pmixer is for SASRec models only\n");
        goto done;
    }
    for (int i = 0; i < nt && i < 64; i++) {
        tensor_desc ti;
        tensor_info(m, i, &ti);
        if (!(tensors[i] = malloc(sizeof(float) * (size_t)(ti.numel ? ti.numel : 1)))) goto oom;
        recsys_model_get_tensor(ctx, m, ti.name, tensors[i], (size_t)ti.numel);
        if (is_block_tensor(&ti, mi.blocks, pmixer)) {
            size_t per = (size_t)(ti.numel / mi.blocks);
            for (int k = 0; k < mi.blocks && n_out < MAX_OUT; k++) {
                char nm[128];
                pmixer_name(ti.name, k, nm, sizeof nm);
                onames[n_out] = strdup(nm);
                int nd = ti.ndim - 1;
                memcpy(oshape_store[n_out], ti.shape + 1, sizeof(int64_t) * (size_t)nd);
                if (!strcmp(ti.name, "ffn.w1") || !strcmp(ti.name, "ffn.w2"))
                    oshape_store[n_out][nd++] = 1; /* Conv1d kernel_size 1 */
                ondims[n_out] = nd;
                odata[n_out] = tensors[i] + (size_t)k * per;
                if (!onames[n_out++]) goto oom;
            }
        } else if (n_out < MAX_OUT) {
            char nm[128];
            if (pmixer) pmixer_name(ti.name, -1, nm, sizeof nm);
            onames[n_out] = strdup(pmixer ? nm : ti.name);
            ondims[n_out] = ti.ndim;
            memcpy(oshape_store[n_out], ti.shape, sizeof(int64_t) * (size_t)ti.ndim);
            odata[n_out] = tensors[i];
            if (!onames[n_out++]) goto oom;
        }
    }
    for (size_t i = 0; i < n_out; i++) oshapes[i] = oshape_store[i];
    /* __metadata__: the model.* config and the item ids. */
    static const char *const KEYS[] = {"model.type", "model.max_len", "model.dim", "model.blocks",
                                       "model.heads", "model.norm", "model.ffn_dim", "model.dqk",
                                       "model.dv", "model.time_bias", "model.l2norm", "model.positions",
                                       "model.dropout"};
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++) {
        const char *v;
        if (!recsys_model_get(m, KEYS[i], &v)) {
            mk[n_meta] = KEYS[i];
            mv[n_meta++] = v;
        }
    }
    size_t total = 1;
    for (int32_t i = 1; i <= mi.n_items; i++) {
        const char *nm = "";
        recsys_model_item_name(m, i, &nm);
        total += strlen(nm) + 1;
    }
    if (!(ids_text = malloc(total))) goto oom;
    size_t o = 0;
    for (int32_t i = 1; i <= mi.n_items; i++) {
        const char *nm = "";
        recsys_model_item_name(m, i, &nm);
        size_t l = strlen(nm);
        memcpy(ids_text + o, nm, l);
        o += l;
        if (i < mi.n_items) ids_text[o++] = '\n';
    }
    ids_text[o] = 0;
    mk[n_meta] = "recsys.item_ids";
    mv[n_meta++] = ids_text;
    mk[n_meta] = "recsys.names";
    mv[n_meta++] = pmixer ? "pmixer" : "native";
    mk[n_meta] = "format";
    mv[n_meta++] = "pt";
    if (!(fo = fopen(out, "wb"))) {
        fprintf(stderr, "recsys export: cannot write '%s'\n", out);
        goto done;
    }
    char err[ERR_LEN];
    int werr = st_write_f32(fo, n_out, (const char *const *)onames, ondims, oshapes, odata,
                            n_meta, mk, mv, err, sizeof err);
    if (fclose(fo) && !werr) werr = snprintf(err, sizeof err, "write error") > 0;
    fo = NULL;
    if (werr) {
        fprintf(stderr, "recsys export: %s: %s\n", out, err);
        goto done;
    }
    printf("{\"exported\": ");
    cli_json_string(stdout, out);
    printf(", \"names\": \"%s\", \"tensors\": %zu, \"n_items\": %d}\n", pmixer ? "pmixer" : "native",
           n_out, mi.n_items);
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "recsys export: out of memory\n");
done:
    if (fo) fclose(fo);
    free(ids_text);
    for (size_t i = 0; i < n_out; i++) free(onames[i]);
    for (int i = 0; i < 64; i++) free(tensors[i]);
    recsys_model_free(m);
    recsys_ctx_free(ctx);
    return rc;
}

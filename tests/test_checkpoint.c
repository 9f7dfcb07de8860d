/* Checkpoints: CRC-32C, bit-exact round trips, and damage of every kind
 * (truncation, bit flips, bad magic/version, inconsistent sizes, NaN
 * weights) detected as RECSYS_E_FORMAT; atomic saves; trainer state. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "checkpoint/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    recsys_ctx *ctx;
    recsys_model *model;
    char dir[64];
    char path[128];
} fixture;

/* A small SASRec with non-default settings and random weights. */
static recsys_model *small_model(recsys_ctx *ctx, int dim, uint64_t seed)
{
    recsys_opts *o;
    assert_int_equal(recsys_opts_new(ctx, &o), RECSYS_OK);
    assert_int_equal(recsys_opts_set_int(o, "model.dim", dim), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "model.max_len", "12"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "model.heads", "2"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "model.norm", "pre"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "model.dropout", "0.35"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "model.ffn_dim", "24"), RECSYS_OK);
    rs_model_config cfg;
    assert_int_equal(rs_model_config_from_opts(ctx, o, 37, 0, &cfg), RECSYS_OK);
    recsys_opts_free(o);
    rs_rng rng;
    rs_rng_seed(&rng, seed);
    recsys_model *m = NULL;
    assert_int_equal(rs_model_create(ctx, &cfg, &rng, &m), RECSYS_OK);
    /* Init leaves padding rows zero: make every weight distinct from zero. */
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += (float)(rs_rng_uniform(&rng) - 0.5);
    return m;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || recsys_ctx_new(&f->ctx)) return -1;
    recsys_ctx_set_threads(f->ctx, 1);
    snprintf(f->dir, sizeof f->dir, "/tmp/rs_test_ckpt_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/model.ckpt", f->dir);
    f->model = small_model(f->ctx, 16, 7);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        if (unlink(p) != 0) rmdir(p);
    }
    if (d) closedir(d);
    rmdir(f->dir);
    recsys_model_free(f->model);
    recsys_ctx_free(f->ctx);
    free(f);
    return 0;
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return b;
}

static void write_all(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Section start offsets of a well-formed file; returns the count. */
static int sections(const unsigned char *b, size_t n, size_t *starts, int max)
{
    int k = 0;
    size_t off = 16;
    while (off + 16 <= n && k < max) {
        starts[k++] = off;
        uint64_t len = le64(b + off + 4);
        if (len > n - off - 16) break;
        off += 16 + (size_t)len;
    }
    return k;
}

/* Recompute every section CRC and the END record, so that only the
 * semantic checks can catch a deliberate edit. */
static void reseal(unsigned char *b, size_t n)
{
    size_t starts[64];
    int k = sections(b, n, starts, 64);
    for (int i = 0; i < k; i++) {
        size_t s = starts[i];
        uint64_t len = le64(b + s + 4);
        if (!memcmp(b + s, "END ", 4)) {
            put_le64(b + s + 12, n);
            put_le32(b + s + 20, rs_crc32c(0, b, s));
        }
        put_le32(b + s + 12 + len, rs_crc32c(0, b + s, 12 + (size_t)len));
    }
}

/* good with its CONF payload replaced by text (all CRCs recomputed). */
static unsigned char *replace_conf(const unsigned char *good, size_t n, const char *text,
                                   size_t *out_n)
{
    size_t starts[8];
    assert_int_equal(sections(good, n, starts, 8), 4);
    size_t tl = strlen(text), rest = n - starts[1];
    *out_n = 16 + 16 + tl + rest;
    unsigned char *b = malloc(*out_n);
    assert_non_null(b);
    memcpy(b, good, 16);
    memcpy(b + 16, "CONF", 4);
    put_le64(b + 20, tl);
    memcpy(b + 28, text, tl);
    memcpy(b + 28 + tl + 4, good + starts[1], rest);
    reseal(b, *out_n);
    return b;
}

/* Load path, expecting RECSYS_E_FORMAT and a message naming the file. */
static void expect_format(fixture *f, const char *what)
{
    recsys_model *m = (recsys_model *)(uintptr_t)1;
    recsys_status st = recsys_model_load(f->ctx, f->path, &m);
    if (st != RECSYS_E_FORMAT)
        fail_msg("%s: status %s (%s)", what, recsys_status_str(st), recsys_ctx_errmsg(f->ctx));
    assert_null(m);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), f->path));
}

/* ---------------------------------------------------------------- CRC */

static void test_crc32c(void **state)
{
    (void)state;
    /* RFC 3720 (iSCSI) test vectors and the usual check value. */
    unsigned char zeros[32] = {0}, ones[32], inc[32];
    memset(ones, 0xFF, sizeof ones);
    for (int i = 0; i < 32; i++) inc[i] = (unsigned char)i;
    assert_int_equal(rs_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(rs_crc32c(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(rs_crc32c(0, ones, 32), 0x62A8AB43u);
    assert_int_equal(rs_crc32c(0, inc, 32), 0x46DD794Eu);
    assert_int_equal(rs_crc32c(0, NULL, 0), 0u);

    /* Chaining, at every split point and odd alignments. */
    unsigned char buf[301];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 131 + 7);
    uint32_t whole = rs_crc32c(0, buf, sizeof buf);
    for (size_t cut = 0; cut <= sizeof buf; cut++)
        assert_int_equal(rs_crc32c(rs_crc32c(0, buf, cut), buf + cut, sizeof buf - cut), whole);

    /* A bit-at-a-time CRC agrees. */
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < sizeof buf; i++) {
        c ^= buf[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    assert_int_equal(~c, whole);

    /* Every slicing-table entry from its defining rule. */
    for (int b = 0; b < 256; b++) {
        uint32_t t = (uint32_t)b;
        for (int k = 0; k < 8; k++) t = (t >> 1) ^ (0x82F63B78u & (0u - (t & 1)));
        assert_int_equal(rs_crc32c_table(0, b), t);
        for (int k = 1; k < 8; k++) {
            uint32_t prev = rs_crc32c_table(k - 1, b);
            assert_int_equal(rs_crc32c_table(k, b), (prev >> 8) ^ rs_crc32c_table(0, prev & 0xFF));
        }
    }
}

/* ---------------------------------------------------------- round trip */

static void assert_same_model(const recsys_model *a, const recsys_model *b)
{
    assert_int_equal(a->n_params, b->n_params);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    assert_int_equal(a->cfg.n_items, b->cfg.n_items);
    assert_int_equal(a->cfg.type, b->cfg.type);
    assert_int_equal(a->cfg.max_len, b->cfg.max_len);
    assert_int_equal(a->cfg.dim, b->cfg.dim);
    assert_int_equal(a->cfg.blocks, b->cfg.blocks);
    assert_int_equal(a->cfg.heads, b->cfg.heads);
    assert_int_equal(a->cfg.ffn_dim, b->cfg.ffn_dim);
    assert_int_equal(a->cfg.norm, b->cfg.norm);
    assert_true(a->cfg.dropout == b->cfg.dropout);
    assert_int_equal(a->cfg.time_bias, b->cfg.time_bias);
    assert_int_equal(a->cfg.l2norm, b->cfg.l2norm);
    assert_ptr_equal(a->ops, b->ops);
    /* Every model key reads back the same. */
    recsys_opts *o;
    assert_int_equal(recsys_opts_new(NULL, &o), RECSYS_OK);
    for (int i = 0; i < recsys_opts_count(o); i++) {
        const char *key = recsys_opts_key(o, i), *va, *vb;
        if (strncmp(key, "model.", 6)) continue;
        assert_int_equal(recsys_model_get(a, key, &va), RECSYS_OK);
        assert_int_equal(recsys_model_get(b, key, &vb), RECSYS_OK);
        assert_string_equal(va, vb);
    }
    recsys_opts_free(o);
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    assert_int_equal(recsys_model_save(f->ctx, f->model, f->path), RECSYS_OK);
    recsys_model *m = NULL;
    assert_int_equal(recsys_model_load(f->ctx, f->path, &m), RECSYS_OK);
    assert_non_null(m);
    assert_same_model(f->model, m);
    const char *v;
    assert_int_equal(recsys_model_get(m, "model.norm", &v), RECSYS_OK);
    assert_string_equal(v, "pre");
    assert_int_equal(recsys_model_get(m, "model.dropout", &v), RECSYS_OK);
    assert_string_equal(v, "0.35");
    assert_int_equal(recsys_model_get(m, "model.ffn_dim", &v), RECSYS_OK);
    assert_string_equal(v, "24");

    /* Saving the loaded model gives the same bytes. */
    size_t n1, n2;
    unsigned char *b1 = read_all(f->path, &n1);
    char path2[192];
    snprintf(path2, sizeof path2, "%s/again.ckpt", f->dir);
    assert_int_equal(recsys_model_save(f->ctx, m, path2), RECSYS_OK);
    unsigned char *b2 = read_all(path2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    /* Header: magic, version 2, flags 0. */
    assert_memory_equal(b1, "RECSYSCK\2\0\0\0\0\0\0\0", 16);
    size_t starts[8];
    assert_int_equal(sections(b1, n1, starts, 8), 4);
    assert_memory_equal(b1 + starts[0], "CONF", 4);
    assert_memory_equal(b1 + starts[1], "TENS", 4);
    assert_memory_equal(b1 + starts[2], "WGHT", 4);
    assert_memory_equal(b1 + starts[3], "END ", 4);
    assert_int_equal(le64(b1 + starts[2] + 4), f->model->n_params * 4);
    free(b1);
    free(b2);
    recsys_model_free(m);

    /* A second save replaces the file and leaves no temp file. */
    recsys_model *other = small_model(f->ctx, 16, 99);
    assert_int_equal(recsys_model_save(f->ctx, other, f->path), RECSYS_OK);
    assert_int_equal(recsys_model_load(f->ctx, f->path, &m), RECSYS_OK);
    assert_same_model(other, m);
    recsys_model_free(m);
    recsys_model_free(other);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) fail_msg("temp file left: %s", e->d_name);
    closedir(d);
}

/* ---------------------------------------------------------- damage */

static void test_truncation(void **state)
{
    fixture *f = *state;
    assert_int_equal(recsys_model_save(f->ctx, f->model, f->path), RECSYS_OK);
    size_t n;
    unsigned char *good = read_all(f->path, &n);
    size_t starts[8];
    int k = sections(good, n, starts, 8);
    assert_int_equal(k, 4);
    /* Every section boundary and the fields around it. */
    size_t cuts[256];
    int nc = 0;
    static const size_t small[] = {0, 1, 7, 8, 12, 15, 16, 17};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) cuts[nc++] = small[i];
    for (int s = 0; s < k; s++) {
        static const int delta[] = {-1, 0, 1, 4, 11, 12, 13};
        for (size_t i = 0; i < sizeof delta / sizeof delta[0]; i++)
            cuts[nc++] = starts[s] + (size_t)delta[i];
        size_t end = starts[s] + 16 + (size_t)le64(good + starts[s] + 4);
        cuts[nc++] = end - 4;
        cuts[nc++] = end - 1;
    }
    cuts[nc++] = n - 1;
    /* And random offsets. */
    rs_rng rng;
    rs_rng_seed(&rng, 1234);
    while (nc < 256) cuts[nc++] = (size_t)rs_rng_below(&rng, n);
    for (int i = 0; i < nc; i++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", cuts[i], n);
        write_all(f->path, good, cuts[i]);
        expect_format(f, what);
    }
    /* Trailing bytes after END. */
    unsigned char *longer = malloc(n + 3);
    memcpy(longer, good, n);
    memcpy(longer + n, "xyz", 3);
    write_all(f->path, longer, n + 3);
    expect_format(f, "trailing bytes");
    free(longer);
    free(good);
}

static void test_bit_flips(void **state)
{
    fixture *f = *state;
    assert_int_equal(recsys_model_save(f->ctx, f->model, f->path), RECSYS_OK);
    size_t n;
    unsigned char *good = read_all(f->path, &n);
    unsigned char *bad = malloc(n);
    rs_rng rng;
    rs_rng_seed(&rng, 99);
    size_t starts[8];
    assert_int_equal(sections(good, n, starts, 8), 4);
    for (int i = 0; i < 400; i++) {
        size_t pos;
        if (i < 16) pos = (size_t)i;                              /* header */
        else if (i < 16 + 4 * 16) pos = starts[(i - 16) / 16] + (size_t)((i - 16) % 16); /* heads */
        else if (i < 100) pos = n - 1 - (size_t)(i - 80);         /* END */
        else pos = (size_t)rs_rng_below(&rng, n);
        int bit = (int)rs_rng_below(&rng, 8);
        memcpy(bad, good, n);
        bad[pos] ^= (unsigned char)(1u << bit);
        write_all(f->path, bad, n);
        char what[64];
        snprintf(what, sizeof what, "bit %d of byte %zu flipped", bit, pos);
        expect_format(f, what);
    }
    free(bad);
    free(good);
}

static void test_magic_version(void **state)
{
    fixture *f = *state;
    assert_int_equal(recsys_model_save(f->ctx, f->model, f->path), RECSYS_OK);
    size_t n;
    unsigned char *b = read_all(f->path, &n);
    memcpy(b, "RECSYSCX", 8);
    write_all(f->path, b, n);
    expect_format(f, "bad magic");
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "magic"));

    memcpy(b, "RECSYSCK", 8);
    put_le32(b + 8, 3);
    reseal(b, n); /* even with every CRC right, version 3 is refused */
    write_all(f->path, b, n);
    expect_format(f, "version 3");
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "version 3"));

    put_le32(b + 8, 1);
    put_le32(b + 12, 1);
    reseal(b, n);
    write_all(f->path, b, n);
    expect_format(f, "unknown flags");

    /* Not a checkpoint at all. */
    write_all(f->path, "user item\n1 2\n", 14);
    expect_format(f, "text file");
    write_all(f->path, "", 0);
    expect_format(f, "empty file");
    free(b);
}

/* Edits with correct CRCs: only the consistency checks can catch them. */
static void test_inconsistent(void **state)
{
    fixture *f = *state;
    assert_int_equal(recsys_model_save(f->ctx, f->model, f->path), RECSYS_OK);
    size_t n;
    unsigned char *good = read_all(f->path, &n);
    unsigned char *b = malloc(n);
    size_t starts[8];
    assert_int_equal(sections(good, n, starts, 8), 4);

    /* The config says dim 24 (same text length as 16): the weights no longer fit. */
    memcpy(b, good, n);
    char *conf = (char *)b + starts[0] + 12;
    char *dim = strstr(conf, "model.dim=16\n");
    assert_non_null(dim);
    memcpy(dim, "model.dim=24\n", 13);
    reseal(b, n);
    write_all(f->path, b, n);
    expect_format(f, "config vs weights");

    /* An unknown config key. */
    memcpy(b, good, n);
    conf = (char *)b + starts[0] + 12;
    char *norm = strstr(conf, "model.norm=");
    assert_non_null(norm);
    memcpy(norm, "model.xorm=", 11);
    reseal(b, n);
    write_all(f->path, b, n);
    expect_format(f, "unknown config key");
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "model.xorm"));

    /* A tensor directory that does not match the layout. */
    memcpy(b, good, n);
    unsigned char *tens = b + starts[1] + 12;
    tens[4 + 2] ^= 0x20; /* first letter of the first name */
    reseal(b, n);
    write_all(f->path, b, n);
    expect_format(f, "tensor name");

    /* A section length far beyond the file must not be allocated. */
    memcpy(b, good, n);
    put_le64(b + starts[3] + 4, (uint64_t)1 << 62);
    write_all(f->path, b, n);
    expect_format(f, "huge length");
    memcpy(b, good, n);
    put_le64(b + starts[0] + 4, (uint64_t)-1);
    write_all(f->path, b, n);
    expect_format(f, "length -1");

    /* A CRC-valid config of absurd size is refused before anything is
     * allocated for it (ASan would report a failed huge allocation). */
    static const char *huge[] = {
        "n_items=2000000000\nmodel.type=sasrec\nmodel.dim=16\nmodel.heads=2\n",
        "n_items=37\nmodel.type=sasrec\nmodel.dim=65536\nmodel.blocks=1024\n",
    };
    for (int i = 0; i < 2; i++) {
        size_t hn;
        unsigned char *h = replace_conf(good, n, huge[i], &hn);
        write_all(f->path, h, hn);
        expect_format(f, huge[i]);
        assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "config needs"));
        free(h);
    }
    /* A config with no n_items, or a bad value. */
    static const char *broken[] = {"model.dim=16\n", "n_items=37\nmodel.dim=sixteen\n",
                                   "n_items=37\nn_items=38\n", "n_items=37\nno equals sign\n",
                                   "n_items=0\n", "n_items=37\ndata.path=x\n"};
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        size_t hn;
        unsigned char *h = replace_conf(good, n, broken[i], &hn);
        write_all(f->path, h, hn);
        expect_format(f, broken[i]);
        free(h);
    }
    /* The same text as written, re-packed, loads (the helper is sound). */
    {
        size_t hn, cl = (size_t)le64(good + 20);
        char *text = malloc(cl + 1);
        memcpy(text, good + 28, cl);
        text[cl] = 0;
        unsigned char *h = replace_conf(good, n, text, &hn);
        assert_int_equal(hn, n);
        assert_memory_equal(h, good, n);
        free(h);
        free(text);
    }

    /* A NaN and an infinity in the weights. */
    for (int which = 0; which < 2; which++) {
        memcpy(b, good, n);
        float bad_value = which ? INFINITY : NAN;
        memcpy(b + starts[2] + 12 + 4 * 100, &bad_value, 4);
        reseal(b, n);
        write_all(f->path, b, n);
        expect_format(f, "non-finite weight");
        assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), which ? "infinite" : "NaN"));
        assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "tensor"));
    }

    /* The untouched file still loads. */
    write_all(f->path, good, n);
    recsys_model *m;
    assert_int_equal(recsys_model_load(f->ctx, f->path, &m), RECSYS_OK);
    recsys_model_free(m);
    free(b);
    free(good);
}

/* ------------------------------------------------------ errors and I/O */

static void test_io_errors(void **state)
{
    fixture *f = *state;
    char path[256];
    /* Missing directory: I/O error, nothing created. */
    snprintf(path, sizeof path, "%s/no/such/dir/model.ckpt", f->dir);
    assert_int_equal(recsys_model_save(f->ctx, f->model, path), RECSYS_E_IO);
    assert_int_equal(rs_checkpoint_save_ex(f->ctx, f->model, path, NULL, 0), RECSYS_E_IO);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "model.ckpt"));

    /* A failed save over an existing target leaves it untouched: here the
     * target is a directory, so the final rename fails. */
    snprintf(path, sizeof path, "%s/occupied", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/keep", path);
    write_all(inner, "keep", 4);
    assert_int_equal(rs_checkpoint_save_ex(f->ctx, f->model, path, NULL, 0), RECSYS_E_IO);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(stat(inner, &sb), 0);
    unlink(inner);
    rmdir(path);

    /* An invalid call does not touch an existing good file. */
    assert_int_equal(recsys_model_save(f->ctx, f->model, f->path), RECSYS_OK);
    size_t n0, n1;
    unsigned char *before = read_all(f->path, &n0);
    rs_ck_section bad_tag = {"CONF", "x", 1};
    assert_int_equal(rs_checkpoint_save_ex(f->ctx, f->model, f->path, &bad_tag, 1),
                     RECSYS_E_INVALID);
    unsigned char *after = read_all(f->path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);

    DIR *d = opendir(f->dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) fail_msg("temp file left: %s", e->d_name);
    closedir(d);

    /* Loading: missing file and a directory are I/O errors. */
    recsys_model *m = NULL;
    snprintf(path, sizeof path, "%s/missing.ckpt", f->dir);
    assert_int_equal(recsys_model_load(f->ctx, path, &m), RECSYS_E_IO);
    assert_null(m);
    assert_int_equal(recsys_model_load(f->ctx, f->dir, &m), RECSYS_E_IO);
    /* A FIFO is refused at once instead of blocking. */
    snprintf(path, sizeof path, "%s/fifo", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(recsys_model_load(f->ctx, path, &m), RECSYS_E_IO);
    unlink(path);
}

static void test_null_args(void **state)
{
    fixture *f = *state;
    recsys_model *m = NULL;
    assert_int_equal(recsys_model_save(f->ctx, NULL, f->path), RECSYS_E_INVALID);
    assert_int_equal(recsys_model_save(NULL, f->model, f->path), RECSYS_E_INVALID);
    assert_int_equal(recsys_model_save(f->ctx, f->model, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_model_save(f->ctx, f->model, ""), RECSYS_E_INVALID);
    assert_int_equal(recsys_model_load(f->ctx, NULL, &m), RECSYS_E_INVALID);
    assert_int_equal(recsys_model_load(f->ctx, f->path, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_model_load(NULL, NULL, NULL), RECSYS_E_INVALID);
    assert_int_equal(rs_checkpoint_save_ex(f->ctx, NULL, f->path, NULL, 0), RECSYS_E_INVALID);
    assert_int_equal(rs_checkpoint_save_ex(f->ctx, f->model, f->path, NULL, 1), RECSYS_E_INVALID);
    assert_int_equal(rs_checkpoint_save_train(f->ctx, f->model, f->path, NULL), RECSYS_E_INVALID);
    rs_train_state s = {0};
    assert_int_equal(rs_checkpoint_save_train(f->ctx, f->model, f->path, &s), RECSYS_E_INVALID);
    assert_int_equal(rs_checkpoint_load_train(f->ctx, f->path, f->model, &s), RECSYS_E_INVALID);
    assert_int_equal(rs_checkpoint_load_train(f->ctx, f->path, NULL, &s), RECSYS_E_INVALID);
    /* Nothing was written by any of these. */
    assert_int_equal(access(f->path, F_OK), -1);
    /* Loading works without a ctx (status only). */
    assert_int_equal(recsys_model_save(f->ctx, f->model, f->path), RECSYS_OK);
    assert_int_equal(recsys_model_load(NULL, f->path, &m), RECSYS_OK);
    recsys_model_free(m);
}

/* --------------------------------------------------- extra sections */

static void test_extra_sections(void **state)
{
    fixture *f = *state;
    char text[] = "hello, sections";
    rs_ck_section extra[2] = {{"note", text, sizeof text}, {"zero", NULL, 0}};
    assert_int_equal(rs_checkpoint_save_ex(f->ctx, f->model, f->path, extra, 2), RECSYS_OK);

    rs_ck_section *got = NULL;
    int n_got = 0;
    recsys_model *m = NULL;
    assert_int_equal(rs_checkpoint_load_ex(f->ctx, f->path, &m, &got, &n_got), RECSYS_OK);
    assert_int_equal(n_got, 2);
    assert_string_equal(got[0].tag, "note");
    assert_int_equal(got[0].size, sizeof text);
    assert_memory_equal(got[0].data, text, sizeof text);
    assert_string_equal(got[1].tag, "zero");
    assert_int_equal(got[1].size, 0);
    assert_same_model(f->model, m);
    rs_ck_sections_free(got, n_got);
    recsys_model_free(m);

    /* recsys_model_load skips them. */
    assert_int_equal(recsys_model_load(f->ctx, f->path, &m), RECSYS_OK);
    assert_same_model(f->model, m);
    recsys_model_free(m);

    /* ...but still checks their CRC. */
    size_t n;
    unsigned char *b = read_all(f->path, &n);
    unsigned char *hello = memmem(b, n, "hello", 5);
    assert_non_null(hello);
    hello[0] ^= 1;
    write_all(f->path, b, n);
    expect_format(f, "damaged extra section");
    free(b);

    /* Bad tags are refused. */
    static const char *bad[] = {"CONF", "TENS", "WGHT", "END ", "ab", "", "a\tbc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rs_ck_section s = {{0}, text, 1};
        snprintf(s.tag, sizeof s.tag, "%s", bad[i]);
        assert_int_equal(rs_checkpoint_save_ex(f->ctx, f->model, f->path, &s, 1),
                         RECSYS_E_INVALID);
    }
    rs_ck_section twice[2] = {{"same", text, 1}, {"same", text, 2}};
    assert_int_equal(rs_checkpoint_save_ex(f->ctx, f->model, f->path, twice, 2),
                     RECSYS_E_INVALID);
}

/* ------------------------------------------------------ trainer state */

static void test_train_state(void **state)
{
    fixture *f = *state;
    size_t n = f->model->n_params;
    float *m = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    rs_rng rng;
    rs_rng_seed(&rng, 5);
    for (size_t i = 0; i < n; i++) {
        m[i] = (float)rs_rng_normal(&rng);
        v[i] = (float)rs_rng_uniform(&rng);
    }
    rs_train_state saved = {.epoch = 3, .step = 777, .rng = {1, 2, 0xFFFFFFFFFFFFFFFFull, 4},
                            .m = m, .v = v};
    assert_int_equal(rs_checkpoint_save_train(f->ctx, f->model, f->path, &saved), RECSYS_OK);

    /* Resume into another model of the same config. */
    recsys_model *other = small_model(f->ctx, 16, 1000);
    float *m2 = calloc(n, sizeof(float)), *v2 = calloc(n, sizeof(float));
    rs_train_state got = {.m = m2, .v = v2};
    assert_int_equal(rs_checkpoint_load_train(f->ctx, f->path, other, &got), RECSYS_OK);
    assert_memory_equal(other->params, f->model->params, n * sizeof(float));
    assert_memory_equal(m2, m, n * sizeof(float));
    assert_memory_equal(v2, v, n * sizeof(float));
    assert_int_equal(got.epoch, 3);
    assert_int_equal(got.step, 777);
    assert_memory_equal(got.rng, saved.rng, sizeof saved.rng);

    /* The training checkpoint is also a model file. */
    recsys_model *plain = NULL;
    assert_int_equal(recsys_model_load(f->ctx, f->path, &plain), RECSYS_OK);
    assert_same_model(f->model, plain);
    recsys_model_free(plain);

    /* A model of another shape is refused and left as it was. */
    recsys_model *wide = small_model(f->ctx, 32, 3);
    size_t nw = wide->n_params;
    float *snap = malloc(nw * sizeof(float)), *mw = calloc(nw, sizeof(float)),
          *vw = calloc(nw, sizeof(float));
    memcpy(snap, wide->params, nw * sizeof(float));
    rs_train_state gw = {.epoch = -5, .m = mw, .v = vw};
    assert_int_equal(rs_checkpoint_load_train(f->ctx, f->path, wide, &gw), RECSYS_E_FORMAT);
    assert_memory_equal(snap, wide->params, nw * sizeof(float));
    assert_int_equal(gw.epoch, -5);

    /* A plain model file has no trainer state. */
    assert_int_equal(recsys_model_save(f->ctx, f->model, f->path), RECSYS_OK);
    assert_int_equal(rs_checkpoint_load_train(f->ctx, f->path, other, &got), RECSYS_E_FORMAT);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "no trainer state"));

    /* Negative second moments are damage even with good CRCs. */
    v[10] = -1.0f;
    assert_int_equal(rs_checkpoint_save_train(f->ctx, f->model, f->path, &saved), RECSYS_OK);
    assert_int_equal(rs_checkpoint_load_train(f->ctx, f->path, other, &got), RECSYS_E_FORMAT);

    free(snap);
    free(mw);
    free(vw);
    recsys_model_free(wide);
    free(m2);
    free(v2);
    recsys_model_free(other);
    free(m);
    free(v);
}


/* ------------------------------------------------------- forged files */

/* Sections with valid CRCs in an order the writer never produces. */
static void test_forged_sections(void **state)
{
    fixture *f = *state;
    assert_int_equal(recsys_model_save(f->ctx, f->model, f->path), RECSYS_OK);
    size_t n;
    unsigned char *good = read_all(f->path, &n);
    size_t st[8];
    assert_int_equal(sections(good, n, st, 8), 4); /* CONF TENS WGHT END */
    size_t len[4];
    for (int i = 0; i < 3; i++) len[i] = st[i + 1] - st[i];
    len[3] = n - st[3];
    for (int dup = 0; dup < 3; dup++) {
        /* CONF TENS WGHT <dup again> END */
        size_t m = n + len[dup];
        unsigned char *b = malloc(m);
        memcpy(b, good, st[3]);
        memcpy(b + st[3], good + st[dup], len[dup]);
        memcpy(b + st[3] + len[dup], good + st[3], len[3]);
        reseal(b, m);
        write_all(f->path, b, m);
        free(b);
        expect_format(f, "repeated section");
        assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "appears twice"));
    }
    free(good);
    /* Impossible epoch and step counts in the trainer state. */
    size_t np = f->model->n_params;
    float *mm = calloc(np, sizeof(float)), *vv = calloc(np, sizeof(float));
    rs_train_state bad = {.epoch = (int64_t)1 << 31, .step = 5, .m = mm, .v = vv};
    assert_int_equal(rs_checkpoint_save_train(f->ctx, f->model, f->path, &bad), RECSYS_OK);
    rs_train_state got = {.m = mm, .v = vv};
    assert_int_equal(rs_checkpoint_load_train(f->ctx, f->path, f->model, &got), RECSYS_E_FORMAT);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "impossible epoch"));
    bad.epoch = 2;
    bad.step = INT64_MAX;
    assert_int_equal(rs_checkpoint_save_train(f->ctx, f->model, f->path, &bad), RECSYS_OK);
    assert_int_equal(rs_checkpoint_load_train(f->ctx, f->path, f->model, &got), RECSYS_E_FORMAT);
    free(mm);
    free(vv);
}

/* ------------------------------------------------------- save targets */

static int count_temps(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int k = 0;
    while (d && (e = readdir(d))) k += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return k;
}

static void test_save_targets(void **state)
{
    fixture *f = *state;
    char link[256], real[256], tmp[300];
    struct stat sb;
    /* A symlink is followed to its target (as cp does) and stays a link. */
    snprintf(real, sizeof real, "%s/real.ckpt", f->dir);
    snprintf(link, sizeof link, "%s/link.ckpt", f->dir);
    write_all(real, "old", 3);
    assert_int_equal(symlink("real.ckpt", link), 0);
    assert_int_equal(recsys_model_save(f->ctx, f->model, link), RECSYS_OK);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    recsys_model *m = NULL;
    assert_int_equal(recsys_model_load(f->ctx, real, &m), RECSYS_OK);
    recsys_model_free(m);
    /* A dangling link is an error, not a new file in its place. */
    unlink(link);
    assert_int_equal(symlink("missing/x.ckpt", link), 0);
    assert_int_equal(recsys_model_save(f->ctx, f->model, link), RECSYS_E_IO);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    unlink(link);
    /* Devices, FIFOs and directories are never replaced. */
    assert_int_equal(recsys_model_save(f->ctx, f->model, "/dev/null"), RECSYS_E_IO);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "character device"));
    assert_int_equal(stat("/dev/null", &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));
    snprintf(tmp, sizeof tmp, "%s/fifo", f->dir);
    assert_int_equal(mkfifo(tmp, 0600), 0);
    assert_int_equal(recsys_model_save(f->ctx, f->model, tmp), RECSYS_E_IO);
    assert_int_equal(lstat(tmp, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    unlink(tmp);
    assert_int_equal(recsys_model_save(f->ctx, f->model, f->dir), RECSYS_E_IO);
    assert_int_equal(count_temps(f->dir), 0);
    /* Existing permissions are kept (0600 stays 0600) ... */
    assert_int_equal(chmod(real, 0600), 0);
    assert_int_equal(recsys_model_save(f->ctx, f->model, real), RECSYS_OK);
    assert_int_equal(stat(real, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    /* ... and new files get the umask's. */
    mode_t old = umask(027);
    snprintf(tmp, sizeof tmp, "%s/new.ckpt", f->dir);
    assert_int_equal(recsys_model_save(f->ctx, f->model, tmp), RECSYS_OK);
    umask(old);
    assert_int_equal(stat(tmp, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0640);
    /* Stale temp files of the target are removed by the next save, unless a
     * save in progress holds one locked; other files are left alone. */
    char stale[320], locked[320], other[320];
    snprintf(stale, sizeof stale, "%s.tmp.AbC123", real);
    snprintf(locked, sizeof locked, "%s.tmp.LoCk99", real);
    snprintf(other, sizeof other, "%s/new.ckpt.tmp.zzzzzz", f->dir);
    write_all(stale, "x", 1);
    write_all(locked, "x", 1);
    write_all(other, "x", 1);
    int lfd = open(locked, O_RDONLY);
    assert_true(lfd >= 0);
    assert_int_equal(flock(lfd, LOCK_EX), 0);
    assert_int_equal(recsys_model_save(f->ctx, f->model, real), RECSYS_OK);
    assert_int_equal(access(stale, F_OK), -1);
    assert_int_equal(access(locked, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
    close(lfd);
    unlink(locked);
    unlink(other);
}

/* A path longer than any fixed buffer (trainer.c once cut it at 1023
 * bytes and saved elsewhere). */
static void test_long_path(void **state)
{
    fixture *f = *state;
    char path[2048];
    size_t n = (size_t)snprintf(path, sizeof path, "%s", f->dir);
    char seg[201];
    memset(seg, 'd', 200);
    seg[200] = 0;
    for (int i = 0; i < 6; i++) {
        n += (size_t)snprintf(path + n, sizeof path - n, "/%s", seg);
        assert_int_equal(mkdir(path, 0700), 0);
    }
    snprintf(path + n, sizeof path - n, "/model.ckpt");
    assert_true(strlen(path) > 1100);
    assert_int_equal(recsys_model_save(f->ctx, f->model, path), RECSYS_OK);
    recsys_model *m = NULL;
    assert_int_equal(recsys_model_load(f->ctx, path, &m), RECSYS_OK);
    recsys_model_free(m);
    assert_int_equal(unlink(path), 0);
    for (int i = 0; i < 6; i++) {
        *strrchr(path, '/') = 0;
        assert_int_equal(rmdir(path), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bit_flips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_magic_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inconsistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The safetensors parser (examples/cli/safetensors.c) on good, malformed and
 * mutated inputs, and the tensor-by-name API (recsys_model_*_tensor). */
#include "safetensors.h"

#include <librecsys/recsys.h>

#include "test_util.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size); /* fuzz/fuzz_safetensors.c */

/* A file of one header text and data bytes. */
static unsigned char *make_file(const char *hdr, const void *data, size_t dlen, size_t *len)
{
    size_t hl = strlen(hdr);
    unsigned char *b = malloc(8 + hl + dlen + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    if (dlen) memcpy(b + 8 + hl, data, dlen);
    *len = 8 + hl + dlen;
    return b;
}

static int parse_text(const char *hdr, const void *data, size_t dlen, st_file *f, char *err)
{
    size_t len;
    unsigned char *b = make_file(hdr, data, dlen, &len);
    int rc = st_parse(b, len, f, err, 256);
    if (rc == 0) {
        /* data points into b: copy the values out before freeing */
        for (size_t i = 0; i < f->n; i++) {
            float *v = malloc(sizeof(float) * (f->t[i].numel + 1));
            st_read_f32(f, &f->t[i], v, err, 256);
            free(v);
        }
    }
    free(b);
    return rc;
}

static void test_good(void **state)
{
    (void)state;
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[2] = {0x3c00, 0xc000}; /* F16 1.0, -2.0 */
    uint16_t bf[1] = {0x3f80};        /* BF16 1.0 */
    unsigned char data[24 + 4 + 2];
    memcpy(data, a, 24);
    memcpy(data + 24, h, 4);
    memcpy(data + 28, bf, 2);
    const char *hdr = "{\"__metadata__\": {\"format\": \"pt\"}, \"w\": {\"dtype\": \"F32\", "
                      "\"shape\": [2, 3], \"data_offsets\": [0, 24]}, \"h\": {\"dtype\": \"F16\", "
                      "\"shape\": [2], \"data_offsets\": [24, 28]}, \"b\": {\"dtype\": \"BF16\", "
                      "\"shape\": [1], \"data_offsets\": [28, 30]}}";
    size_t len;
    unsigned char *buf = make_file(hdr, data, sizeof data, &len);
    st_file f;
    char err[256];
    assert_int_equal(st_parse(buf, len, &f, err, sizeof err), 0);
    assert_int_equal(f.n, 3);
    assert_string_equal(st_meta(&f, "format"), "pt");
    const st_tensor *w = st_find(&f, "w");
    assert_non_null(w);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[1], 3);
    float out[6];
    assert_int_equal(st_read_f32(&f, w, out, err, sizeof err), 0);
    assert_memory_equal(out, a, sizeof a);
    assert_int_equal(st_read_f32(&f, st_find(&f, "h"), out, err, sizeof err), 0);
    assert_true(out[0] == 1.0f && out[1] == -2.0f);
    assert_int_equal(st_read_f32(&f, st_find(&f, "b"), out, err, sizeof err), 0);
    assert_true(out[0] == 1.0f);
    st_free(&f);
    free(buf);
}

static void test_malformed(void **state)
{
    (void)state;
    float a[4] = {0};
    st_file f;
    char err[256];
    static const char *const BAD[] = {
        "[]",
        "{\"w\": 3}",
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 20]}}",  /* past end */
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 16]}}",  /* size */
        "{\"w\": {\"dtype\": \"I8\", \"shape\": [16], \"data_offsets\": [0, 16]}}",  /* dtype */
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [-4], \"data_offsets\": [0, 16]}}",
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [4.0], \"data_offsets\": [0, 16]}}",
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 0]}}",
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 16]}}",
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,4], \"data_offsets\": [0, 16]}}",
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
        "\"v\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",     /* overlap */
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, "
        "\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}",     /* duplicate */
        "{\"__metadata__\": {\"a\": 1}}",
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16], \"x\": 1}}",
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [4]",
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        err[0] = 0;
        assert_int_not_equal(parse_text(BAD[i], a, sizeof a, &f, err), 0);
        assert_true(err[0] != 0);
        assert_int_equal(f.n, 0);
    }
    unsigned char tiny[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_not_equal(st_parse(tiny, 8, &f, err, sizeof err), 0);
    assert_int_not_equal(st_parse(tiny, 3, &f, err, sizeof err), 0);
    /* a non-finite value is refused when read */
    float nanv[1] = {NAN};
    size_t len;
    unsigned char *b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
                                 "[0, 4]}}", nanv, 4, &len);
    assert_int_equal(st_parse(b, len, &f, err, sizeof err), 0);
    float v;
    assert_int_not_equal(st_read_f32(&f, &f.t[0], &v, err, sizeof err), 0);
    st_free(&f);
    free(b);
}

/* Deterministic mutations of a valid file through the fuzz entry (run
 * under ASan/UBSan in the sanitizer build). */
static void test_mutations(void **state)
{
    (void)state;
    float a[8];
    for (int i = 0; i < 8; i++) a[i] = (float)i;
    const char *hdr = "{\"__metadata__\": {\"k\": \"v\"}, \"x\": {\"dtype\": \"F32\", \"shape\": "
                      "[2, 2], \"data_offsets\": [0, 16]}, \"y\": {\"dtype\": \"BF16\", \"shape\": "
                      "[4], \"data_offsets\": [16, 24]}, \"z\": {\"dtype\": \"F64\", \"shape\": "
                      "[1], \"data_offsets\": [24, 32]}}";
    size_t len;
    unsigned char *good = make_file(hdr, a, sizeof a, &len);
    unsigned char *m = malloc(len);
    rs_rng r;
    rs_rng_seed(&r, 99);
    for (int it = 0; it < 20000; it++) {
        memcpy(m, good, len);
        int edits = 1 + (int)(rs_rng_next(&r) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)(rs_rng_next(&r) % len);
            switch (rs_rng_next(&r) % 3) {
            case 0: m[at] = (unsigned char)rs_rng_next(&r); break;
            case 1: m[at] = "0123456789[]{},:\"-e."[rs_rng_next(&r) % 20]; break;
            default: m[at] ^= (unsigned char)(1u << (rs_rng_next(&r) % 8)); break;
            }
        }
        size_t cut = rs_rng_next(&r) % 8 == 0 ? (size_t)(rs_rng_next(&r) % len) : len;
        LLVMFuzzerTestOneInput(m, cut);
    }
    free(m);
    free(good);
}

static void test_tensor_api(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    recsys_opts *o;
    assert_int_equal(recsys_opts_new(ctx, &o), RECSYS_OK);
    recsys_opts_set(o, "model.type", "sasrec");
    recsys_opts_set_int(o, "model.dim", 8);
    recsys_opts_set_int(o, "model.max_len", 5);
    recsys_opts_set_int(o, "model.blocks", 2);
    recsys_model *m;
    assert_int_equal(recsys_model_new_blank(ctx, o, 10, &m), RECSYS_OK);
    int n = 0;
    assert_int_equal(recsys_model_tensor_count(m, &n), RECSYS_OK);
    assert_int_equal(n, 16);
    int64_t total = 0, np = 0;
    for (int i = 0; i < n; i++) {
        const char *name;
        int nd;
        int64_t shape[RECSYS_TENSOR_MAX_DIMS], numel, prod = 1;
        assert_int_equal(recsys_model_tensor_info(m, i, &name, &nd, shape, &numel), RECSYS_OK);
        for (int k = 0; k < nd; k++) prod *= shape[k];
        assert_true(prod == numel);
        total += numel;
        if (!strcmp(name, "attn.w_in")) {
            assert_int_equal(nd, 3);
            assert_true(shape[0] == 2 && shape[1] == 24 && shape[2] == 8);
        }
        if (!strcmp(name, "item_emb")) assert_true(nd == 2 && shape[0] == 11 && shape[1] == 8);
    }
    recsys_model_n_params(m, &np);
    assert_true(total == np);
    const char *name;
    int nd;
    assert_int_equal(recsys_model_tensor_info(m, 16, &name, &nd, NULL, NULL), RECSYS_E_NOT_FOUND);
    float g[8], back[8];
    for (int i = 0; i < 8; i++) g[i] = 0.5f + (float)i;
    assert_int_equal(recsys_model_set_tensor(ctx, m, "final_ln.gamma", g, 8), RECSYS_OK);
    assert_int_equal(recsys_model_get_tensor(ctx, m, "final_ln.gamma", back, 8), RECSYS_OK);
    assert_memory_equal(g, back, sizeof g);
    assert_int_equal(recsys_model_set_tensor(ctx, m, "final_ln.gamma", g, 7), RECSYS_E_INVALID);
    assert_int_equal(recsys_model_set_tensor(ctx, m, "nope", g, 8), RECSYS_E_NOT_FOUND);
    g[3] = INFINITY;
    assert_int_equal(recsys_model_set_tensor(ctx, m, "final_ln.gamma", g, 8), RECSYS_E_INVALID);
    /* in use: refused */
    recsys_session *s;
    assert_int_equal(recsys_session_new(ctx, m, &s), RECSYS_OK);
    g[3] = 1;
    assert_int_equal(recsys_model_set_tensor(ctx, m, "final_ln.gamma", g, 8), RECSYS_E_INVALID);
    recsys_session_free(s);
    const char *ids[10] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    assert_int_equal(recsys_model_set_item_ids(ctx, m, ids, 10), RECSYS_OK);
    int32_t item;
    assert_int_equal(recsys_model_item_id(m, "c", &item), RECSYS_OK);
    assert_int_equal(item, 3);
    recsys_model_free(m);
    recsys_opts_free(o);
    recsys_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_tensor_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

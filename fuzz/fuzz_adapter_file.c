/* Single adapter files (recsys_adapter_to_buffer's format) through
 * recsys_adapter_from_buffer against a small SASRec, and any file through
 * recsys_adapter_inspect / _inspect_user (which also take stores). The first
 * byte steers: bit 1 starts from a valid serialisation of a new adapter
 * (kind from bits 2-3) and applies the rest of the input as (offset, xor)
 * edits, else the rest of the input is the buffer; bit 0 then recomputes the
 * trailing CRC so that mutations reach the section checks. A buffer that
 * loads must survive a round trip unchanged. */
#include "fuzz_common.h"
#include "checkpoint/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static recsys_model *fuzz_model(void)
{
    static recsys_model *m;
    if (!m) {
        recsys_opts *o;
        if (recsys_opts_new(fuzz_ctx(), &o)) abort();
        recsys_opts_set(o, "model.dim", "16");
        recsys_opts_set(o, "model.max_len", "20");
        recsys_opts_set(o, "adapter.bank_size", "3");
        if (recsys_model_new_blank(fuzz_ctx(), o, 50, &m)) abort();
        recsys_opts_free(o);
    }
    return m;
}

static uint8_t *make_buffer(int kind, size_t *n)
{
    recsys_opts *o;
    recsys_adapter *a;
    void *buf = NULL;
    if (recsys_opts_new(fuzz_ctx(), &o)) abort();
    recsys_opts_set(o, "adapter.bank_size", "3");
    recsys_opts_set(o, "adapter.rank", "2");
    if (recsys_adapter_new(fuzz_ctx(), fuzz_model(), o, kind, &a)) abort();
    if (recsys_adapter_to_buffer(a, &buf, n)) abort();
    recsys_adapter_free(a);
    recsys_opts_free(o);
    uint8_t *b = malloc(*n);
    if (!b) abort();
    memcpy(b, buf, *n);
    recsys_free(buf);
    return b;
}

/* A valid serialisation of a new adapter of `kind`, made once per kind
 * (making one per input would halve the execution rate). */
static uint8_t *valid_buffer(int kind, size_t *n)
{
    static uint8_t *made[3];
    static size_t made_n[3];
    if (!made[kind]) made[kind] = make_buffer(kind, &made_n[kind]);
    uint8_t *b = malloc(made_n[kind]);
    if (!b) abort();
    memcpy(b, made[kind], made_n[kind]);
    *n = made_n[kind];
    return b;
}

static void round_trip(recsys_adapter *a)
{
    int64_t np;
    int kind, rank;
    if (recsys_adapter_info(a, &kind, &rank, &np) || np < 0) abort();
    float *p = malloc(sizeof(float) * (size_t)(np ? np : 1));
    float *q = malloc(sizeof(float) * (size_t)(np ? np : 1));
    void *buf = NULL;
    size_t n;
    recsys_adapter *b = NULL;
    if (!p || !q || recsys_adapter_get_params(a, p, (size_t)np)) abort();
    if (recsys_adapter_to_buffer(a, &buf, &n)) abort();
    if (recsys_adapter_from_buffer(fuzz_ctx(), fuzz_model(), buf, n, &b)) abort();
    if (recsys_adapter_get_params(b, q, (size_t)np)) abort();
    if (memcmp(p, q, sizeof(float) * (size_t)np)) abort();
    recsys_adapter_free(b);
    recsys_free(buf);
    free(p);
    free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) return 0;
    uint8_t *b;
    size_t n;
    if (data[0] & 2) {
        b = valid_buffer((data[0] >> 2) % 3, &n);
        for (size_t i = 1; i + 3 <= size; i += 3) {
            size_t off = ((size_t)data[i] | (size_t)data[i + 1] << 8) % n;
            b[off] ^= data[i + 2];
        }
    } else {
        n = size - 1;
        b = malloc(n ? n : 1);
        if (!b) return 0;
        memcpy(b, data + 1, n);
    }
    if ((data[0] & 1) && n >= 4) {
        uint32_t crc = rs_crc32c(0, b, n - 4);
        memcpy(b + n - 4, &crc, 4); /* the format is little-endian, as is x86 */
    }
    recsys_adapter *a = NULL;
    if (recsys_adapter_from_buffer(fuzz_ctx(), fuzz_model(), b, n, &a) == RECSYS_OK) {
        round_trip(a);
        recsys_adapter_free(a);
    }
    fuzz_file f;
    if (fuzz_file_open(&f, b, n) == 0) {
        recsys_adapter_file_info fi = {.struct_size = sizeof fi};
        double norms[RECSYS_ADAPTER_N_TARGETS];
        if (recsys_adapter_inspect(fuzz_ctx(), f.path, &fi) == RECSYS_OK) {
            if (fi.file_bytes != (int64_t)n) abort();
            recsys_adapter_inspect_user(fuzz_ctx(), f.path, fi.is_store ? 0 : -1, norms,
                                        RECSYS_ADAPTER_N_TARGETS);
        }
        fuzz_file_close(&f);
    }
    free(b);
    return 0;
}

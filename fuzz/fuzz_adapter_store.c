/* Adapter store images through rs_store_parse and rs_store_view_read (every
 * user). With bit 0
 * of the first byte set, the header and CONF CRCs are recomputed so that
 * mutations reach the offset checks and the records. */
#include "fuzz_common.h"
#include "adapters/store.h"
#include "checkpoint/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) return 0;
    uint8_t *b = malloc(size);
    if (!b) return 0;
    memcpy(b, data + 1, size - 1);
    size_t n = size - 1;
    if ((data[0] & 1) && n >= RS_STORE_HEADER) {
        wr32(b + 60, rs_crc32c(0, b, 60));
        uint32_t cl = (uint32_t)b[32] | (uint32_t)b[33] << 8 | (uint32_t)b[34] << 16 |
                      (uint32_t)b[35] << 24;
        if (cl <= n - RS_STORE_HEADER && n - RS_STORE_HEADER - cl >= 4)
            wr32(b + RS_STORE_HEADER + cl, rs_crc32c(0, b + RS_STORE_HEADER, cl));
    }
    recsys_ctx *ctx = fuzz_ctx();
    rs_store_view v;
    if (rs_store_parse(ctx, b, n, &v) == RECSYS_OK && v.n_users <= 4096) {
        float *out = malloc(sizeof(float) * v.record_floats);
        for (uint64_t u = 0; out && u < v.n_users; u++) (void)rs_store_view_read(ctx, &v, u, out, NULL);
        free(out);
    }
    free(b);
    return 0;
}

/* Checkpoints through recsys_model_load, rs_checkpoint_load_ex and
 * rs_checkpoint_load_train. With bit 0 of the first byte set, every section
 * CRC and the END record are recomputed before loading, so that mutations
 * get past the checksums and reach the section parsers (CONF, TENS, WGHT,
 * OPTS, extra sections). A loaded model is scored through a session. */
#include "fuzz_common.h"
#include "checkpoint/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void reseal(uint8_t *b, size_t n)
{
    size_t off = 16;
    while (off + 16 <= n) {
        uint64_t len = rd64(b + off + 4);
        if (len > n - off - 16) break;
        if (!memcmp(b + off, "END ", 4) && len == 12) {
            wr64(b + off + 12, n);
            wr32(b + off + 20, rs_crc32c(0, b, off));
        }
        wr32(b + off + 12 + len, rs_crc32c(0, b + off, 12 + (size_t)len));
        off += 16 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) return 0;
    uint8_t *b = malloc(size);
    if (!b) return 0;
    memcpy(b, data + 1, size - 1);
    if (data[0] & 1) reseal(b, size - 1);
    recsys_ctx *ctx = fuzz_ctx();
    fuzz_file f;
    if (fuzz_file_open(&f, b, size - 1) == 0) {
        recsys_model *m = NULL;
        rs_ck_section *extra = NULL;
        int n_extra = 0;
        if (rs_checkpoint_load_ex(ctx, f.path, &m, &extra, &n_extra) == RECSYS_OK) {
            rs_ck_sections_free(extra, n_extra);
            float *mm = calloc(m->n_params + 1, sizeof(float));
            float *vv = calloc(m->n_params + 1, sizeof(float));
            rs_train_state s = {.m = mm, .v = vv};
            if (mm && vv) rs_checkpoint_load_train(ctx, f.path, m, &s);
            free(mm);
            free(vv);
            recsys_session *sess = NULL;
            if (m->cfg.n_items <= 100000 && recsys_session_new(ctx, m, &sess) == RECSYS_OK) {
                int32_t hist[2] = {1, m->cfg.n_items};
                int32_t items[3];
                float sc[3];
                int k = m->cfg.n_items < 3 ? m->cfg.n_items : 3;
                recsys_session_topk(sess, hist, 2, k, 1, items, sc);
            }
            recsys_session_free(sess);
            recsys_model_free(m);
        }
        m = NULL;
        if (recsys_model_load(ctx, f.path, &m) == RECSYS_OK) recsys_model_free(m);
        fuzz_file_close(&f);
    }
    free(b);
    return 0;
}

/* Interaction files (user item [time] [rating]) through recsys_dataset_open
 * with data.format auto and interactions; the first byte picks data.header
 * and data.split. Every successful load is queried. */
#include "fuzz_common.h"
#include "librecsys/recsys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void query(recsys_dataset *ds)
{
    double v;
    for (int s = 0; s < RECSYS_STAT_COUNT; s++) recsys_dataset_stat(ds, s, &v);
    recsys_dataset_stat(ds, RECSYS_STAT_USERS, &v);
    for (int64_t u = 0; u < (int64_t)v && u < 64; u++) {
        const int32_t *items;
        const int64_t *times;
        size_t n;
        const char *name;
        if (recsys_dataset_user_items(ds, u, &items, &times, &n)) abort();
        if (recsys_dataset_user_name(ds, u, &name)) abort();
        int64_t back;
        if (recsys_dataset_user_id(ds, name, &back) || back != u) abort();
        for (size_t k = 0; k < n; k++) {
            int32_t it;
            if (recsys_dataset_item_name(ds, items[k], &name) ||
                recsys_dataset_item_id(ds, name, &it) || it != items[k])
                abort();
            if (times && k && times[k - 1] > times[k]) abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *headers[] = {"auto", "true", "false"};
    recsys_ctx *ctx = fuzz_ctx();
    recsys_opts *o;
    recsys_opts_new(ctx, &o);
    recsys_opts_set(o, "data.header", headers[data[0] % 3]);
    recsys_opts_set(o, "data.split", data[0] & 4 ? "last" : "loo");
    recsys_opts_set(o, "data.min_item_count", data[0] & 8 ? "2" : "0");
    fuzz_file f;
    if (fuzz_file_open(&f, data + 1, size - 1) == 0) {
        recsys_dataset *ds = NULL;
        if (recsys_dataset_open(ctx, f.path, o, &ds) == RECSYS_OK) query(ds);
        recsys_dataset_free(ds);
        ds = NULL;
        if (recsys_dataset_load(ctx, f.path, o, &ds) == RECSYS_OK) query(ds);
        recsys_dataset_free(ds);
        fuzz_file_close(&f);
    }
    recsys_opts_free(o);
    return 0;
}

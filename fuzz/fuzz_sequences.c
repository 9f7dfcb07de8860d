/* Sequence files with a paired times file: the input is split at the first
 * "\n---\n" into the items file and the times file (none without it). */
#include "fuzz_common.h"
#include "librecsys/recsys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *headers[] = {"auto", "true", "false"};
    const uint8_t *sep = NULL;
    for (size_t i = 1; i + 5 <= size; i++)
        if (!memcmp(data + i, "\n---\n", 5)) { sep = data + i; break; }
    recsys_ctx *ctx = fuzz_ctx();
    recsys_opts *o;
    recsys_opts_new(ctx, &o);
    recsys_opts_set(o, "data.header", headers[data[0] % 3]);
    fuzz_file a, b;
    size_t na = sep ? (size_t)(sep - data) - 1 : size - 1;
    if (fuzz_file_open(&a, data + 1, na) == 0) {
        int has_b = sep && fuzz_file_open(&b, sep + 5, size - (size_t)(sep - data) - 5) == 0;
        recsys_dataset *ds = NULL;
        if (recsys_dataset_load_sequences(ctx, a.path, has_b ? b.path : NULL, o, &ds) ==
            RECSYS_OK) {
            double users;
            recsys_dataset_stat(ds, RECSYS_STAT_USERS, &users);
            for (int64_t u = 0; u < (int64_t)users; u++) {
                const int32_t *items;
                const int64_t *times;
                size_t n;
                if (recsys_dataset_user_items(ds, u, &items, &times, &n)) abort();
                for (size_t k = 1; times && k < n; k++)
                    if (times[k - 1] > times[k]) abort();
            }
        }
        recsys_dataset_free(ds);
        if (has_b) fuzz_file_close(&b);
        fuzz_file_close(&a);
    }
    recsys_opts_free(o);
    return 0;
}

/* The runs CSV of `recsys perflaw fit` (examples/cli/perflaw_csv.c), then
 * a fit of what was read. */
#include "fuzz_common.h"
#include "librecsys/recsys.h"
#include "perflaw_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file f;
    if (fuzz_file_open(&f, data, size)) return 0;
    runs r = {0};
    if (read_runs(f.path, "NDCG@10", &r) == 0 && r.n > 0 && r.n < 64) {
        /* the fit is slow (a grid, then Levenberg-Marquardt): small inputs only */
        recsys_ctx *ctx = fuzz_ctx();
        recsys_perflaw *p;
        {
            if (!recsys_perflaw_new(ctx, &p)) {
                int ok = 1;
                for (size_t k = 0; k < r.n && ok; k++)
                    ok = !recsys_perflaw_add(p, r.v[k].layers, r.v[k].dim, r.v[k].data,
                                             r.v[k].metric);
                if (ok && r.n <= 8 && size < 300 && recsys_perflaw_fit(p) == RECSYS_OK) {
                    double params[RECSYS_PERFLAW_N_PARAMS], pred;
                    recsys_perflaw_params(p, params, NULL, NULL);
                    recsys_perflaw_predict(p, 2, 64, 10, &pred);
                }
                recsys_perflaw_free(p);
            }
        }
    }
    free(r.v);
    fuzz_file_close(&f);
    return 0;
}

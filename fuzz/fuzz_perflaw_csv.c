/* The runs CSV of `recsys perflaw fit` (examples/cli/perflaw_csv.c): what
 * was read is added to a fitter (which validates every value). Built twice:
 * fuzz_perflaw_csv parses only (fast enough for long campaigns), and
 * fuzz_perflaw_fit (FUZZ_PERFLAW_FIT) also fits small inputs, a grid then
 * Levenberg-Marquardt, at a few dozen inputs per second. */
#include "fuzz_common.h"
#include "librecsys/recsys.h"
#include "perflaw_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef FUZZ_PERFLAW_FIT
#define FIT 1
#else
#define FIT 0
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file f;
    if (fuzz_file_open(&f, data, size)) return 0;
    runs r = {0};
    if (read_runs(f.path, "NDCG@10", &r) == 0 && r.n > 0 && r.n < 64) {
        recsys_ctx *ctx = fuzz_ctx();
        recsys_perflaw *p;
        {
            if (!recsys_perflaw_new(ctx, &p)) {
                int ok = 1;
                for (size_t k = 0; k < r.n && ok; k++)
                    ok = !recsys_perflaw_add(p, r.v[k].layers, r.v[k].dim, r.v[k].data,
                                             r.v[k].metric);
                if (FIT && ok && r.n <= 8 && size < 300 && recsys_perflaw_fit(p) == RECSYS_OK) {
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

/* YAML configs through recsys_opts_load_yaml_string (and, every other
 * input, recsys_opts_load_yaml from a file). A failed load must leave the
 * options unchanged. */
#include "fuzz_common.h"
#include "librecsys/recsys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    recsys_ctx *ctx = fuzz_ctx();
    recsys_opts *o;
    recsys_opts_new(ctx, &o);
    recsys_opts_set(o, "model.dim", "77");
    recsys_status st;
    if (size & 1) {
        fuzz_file f;
        if (fuzz_file_open(&f, data, size)) goto out;
        st = recsys_opts_load_yaml(o, f.path);
        fuzz_file_close(&f);
    } else {
        st = recsys_opts_load_yaml_string(o, (const char *)data, size, "fuzz.yaml");
    }
    /* Every error has a message (read it first: the next call clears it). */
    if (st && !recsys_ctx_errmsg(ctx)[0]) abort();
    const char *v;
    if (st && (recsys_opts_get(o, "model.dim", &v) || strcmp(v, "77"))) abort();
    for (int i = 0; i < recsys_opts_count(o); i++) recsys_opts_get(o, recsys_opts_key(o, i), &v);
out:
    recsys_opts_free(o);
    return 0;
}

/* The safetensors parser of `recsys import` (examples/cli/safetensors.c):
 * parse, convert every tensor to float32, look up metadata. Built by
 * fuzz/meson.build (-Dfuzzing=true, with jansson) and run by fuzz/run.sh;
 * tests/test_safetensors.c also runs this entry over 20,000 deterministic
 * mutations of a valid file in every build (under ASan/UBSan in the
 * sanitizer build). Without RS_LIBFUZZER it has a main() replaying files. */
#include "safetensors.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    st_file f;
    char err[256];
    if (st_parse(data, size, &f, err, sizeof err) == 0) {
        for (size_t i = 0; i < f.n; i++) {
            float *dst = malloc(sizeof(float) * (f.t[i].numel ? f.t[i].numel : 1));
            if (dst) st_read_f32(&f, &f.t[i], dst, err, sizeof err);
            free(dst);
        }
        (void)st_meta(&f, "format");
        st_free(&f);
    }
    return 0;
}

#if !defined(RS_LIBFUZZER) && !defined(RS_FUZZ_ENTRY_ONLY)
#include <stdio.h>
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *fp = fopen(argv[i], "rb");
        if (!fp) continue;
        unsigned char *buf = malloc(1 << 24);
        size_t n = buf ? fread(buf, 1, 1 << 24, fp) : 0;
        fclose(fp);
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
    }
    return 0;
}
#endif

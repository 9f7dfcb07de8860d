/* Fuzz entry for the safetensors parser (examples/cli/safetensors.c).
 *
 * libFuzzer:  clang -g -O1 -fsanitize=fuzzer,address,undefined -DRS_LIBFUZZER \
 *               -Iexamples/cli tests/fuzz_safetensors.c examples/cli/safetensors.c \
 *               -ljansson -lm -o fuzz_safetensors && ./fuzz_safetensors
 * Without -DRS_LIBFUZZER it is a plain program running the entry on each
 * file named on the command line (to replay a crash). tests/test_safetensors.c
 * runs the same entry over deterministic mutations of a valid file. */
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

#ifndef RS_LIBFUZZER
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

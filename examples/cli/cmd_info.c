/* recsys info: what this build and this CPU will use. */
#include "cli.h"
#include "commands.h"

int cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    recsys_ctx *ctx;
    if (recsys_ctx_new(&ctx)) return 1;
    static const char *kernels[] = {"gemm", "attention", "layernorm", "adam",
                                    "dot", "hstu_attention", "pointwise"};
    printf("{\"version\": \"%s\", \"isa\": \"%s\", \"threads\": %d, \"bf16\": %s",
           recsys_version_string(), recsys_ctx_isa(ctx), recsys_ctx_threads(ctx),
           recsys_ctx_set_bf16(ctx, 1) == RECSYS_OK ? "true" : "false");
    for (int k = 0; k < RECSYS_KERNEL_COUNT; k++)
        printf(", \"%s\": \"%s\"", kernels[k], recsys_ctx_kernel_name(ctx, k));
    printf(", \"onednn\": %s}\n",
           recsys_ctx_set_gemm_backend(ctx, "onednn") == RECSYS_OK ? "true" : "false");
    recsys_ctx_free(ctx);
    return 0;
}

/* Kernel dispatch: the table follows the CPU features and the ISA cap (API
 * and RECSYS_MAX_ISA), names are reported, bad names are rejected, and the
 * bf16 mode / oneDNN backend are accepted exactly when they can run. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "kernels_isa.h"

static const char *isa_names[] = {"scalar", "avx2", "avx512"};
static const char *gemm_names[] = {"gemm_ref", "gemm_avx2", "gemm_avx512"};

/* The best ISA this CPU allows, capped. */
static int expected_isa(const rs_cpu_features *f, int cap)
{
    int best = f->avx512 ? RS_ISA_AVX512 : f->avx2_fma ? RS_ISA_AVX2 : RS_ISA_SCALAR;
    return best < cap ? best : cap;
}

/* The suite may run under `meson test --setup scalar`: tests that need the
 * default behaviour clear the variable, then put it back. */
static char saved_env[64];
static int had_env;
static int save_env(void **state)
{
    (void)state;
    const char *e = getenv("RECSYS_MAX_ISA");
    had_env = e != NULL;
    if (e) snprintf(saved_env, sizeof saved_env, "%s", e);
    unsetenv("RECSYS_MAX_ISA");
    unsetenv("RECSYS_GEMM");
    return 0;
}
static int restore_env(void **state)
{
    (void)state;
    if (had_env) setenv("RECSYS_MAX_ISA", saved_env, 1);
    else unsetenv("RECSYS_MAX_ISA");
    return 0;
}

static void test_table_follows_features(void **state)
{
    (void)state;
    rs_kernels k;
    rs_cpu_features none = {0, 0, 0}, avx2 = {1, 0, 0}, avx512 = {1, 1, 0}, bf16 = {1, 1, 1};
    rs_kernels_init(&k, &none, RS_ISA_AVX512);
    assert_int_equal(k.isa, RS_ISA_SCALAR);
    assert_ptr_equal(k.gemm, rs_gemm_ref);
    assert_null(k.gemm_bf16);
    assert_string_equal(k.names[RECSYS_KERNEL_GEMM], "gemm_ref");
#ifdef RS_HAVE_X86_KERNELS
    rs_kernels_init(&k, &avx2, RS_ISA_AVX512);
    assert_int_equal(k.isa, RS_ISA_AVX2);
    assert_ptr_equal(k.gemm, rs_gemm_avx2);
    assert_string_equal(k.names[RECSYS_KERNEL_GEMM], "gemm_avx2");
    rs_kernels_init(&k, &avx512, RS_ISA_AVX512);
    assert_int_equal(k.isa, RS_ISA_AVX512);
    assert_ptr_equal(k.gemm, rs_gemm_avx512);
    assert_null(k.gemm_bf16);
    rs_kernels_init(&k, &bf16, RS_ISA_AVX512);
    assert_ptr_equal(k.gemm_bf16, rs_gemm_avx512_bf16);
    rs_kernels_init(&k, &bf16, RS_ISA_AVX2); /* the cap wins over the features */
    assert_int_equal(k.isa, RS_ISA_AVX2);
    assert_null(k.gemm_bf16);
    rs_kernels_init(&k, &bf16, RS_ISA_SCALAR);
    assert_ptr_equal(k.gemm, rs_gemm_ref);
#else
    (void)avx2, (void)avx512, (void)bf16;
#endif
    /* every kernel has a function and a name whatever the ISA */
    for (int cap = RS_ISA_SCALAR; cap <= RS_ISA_AVX512; cap++) {
        rs_kernels_init(&k, &bf16, (enum rs_isa)cap);
        assert_non_null(k.gemm);
        assert_non_null(k.attn_fwd);
        assert_non_null(k.attn_bwd);
        assert_non_null(k.layernorm_fwd);
        assert_non_null(k.layernorm_bwd);
        assert_non_null(k.adam);
        assert_non_null(k.dot);
        for (int i = 0; i < RECSYS_KERNEL_COUNT; i++) assert_non_null(k.names[i]);
    }
}

static void test_cap_via_api(void **state)
{
    (void)state;
    recsys_ctx *ctx;
    assert_int_equal(recsys_ctx_new(&ctx), RECSYS_OK);
    rs_cpu_features f;
    rs_cpu_detect(&f);
    /* default: the best the CPU has */
    int e = expected_isa(&f, RS_ISA_AVX512);
    assert_string_equal(recsys_ctx_isa(ctx), isa_names[e]);
    assert_string_equal(recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM), gemm_names[e]);
    for (int cap = RS_ISA_SCALAR; cap <= RS_ISA_AVX512; cap++) {
        assert_int_equal(recsys_ctx_set_max_isa(ctx, isa_names[cap]), RECSYS_OK);
        e = expected_isa(&f, cap);
        assert_string_equal(recsys_ctx_isa(ctx), isa_names[e]);
        assert_string_equal(recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM), gemm_names[e]);
        /* every kernel follows the cap: its name ends in the ISA's suffix */
        static const char *suffix[] = {"_ref", "_avx2", "_avx512"};
        for (int k = 0; k < RECSYS_KERNEL_COUNT; k++) {
            const char *name = recsys_ctx_kernel_name(ctx, k);
            assert_non_null(name);
            size_t ln = strlen(name), ls = strlen(suffix[e]);
            assert_true(ln > ls && !strcmp(name + ln - ls, suffix[e]));
        }
    }
    assert_int_equal(recsys_ctx_set_max_isa(ctx, "scalar"), RECSYS_OK);
    assert_int_equal(recsys_ctx_set_max_isa(ctx, "best"), RECSYS_OK);
    assert_string_equal(recsys_ctx_isa(ctx), isa_names[expected_isa(&f, RS_ISA_AVX512)]);
    assert_null(recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_COUNT));
    assert_null(recsys_ctx_kernel_name(ctx, -1));
    recsys_ctx_free(ctx);
}

static void test_unknown_isa(void **state)
{
    (void)state;
    recsys_ctx *ctx;
    assert_int_equal(recsys_ctx_new(&ctx), RECSYS_OK);
    const char *before = recsys_ctx_isa(ctx);
    assert_int_equal(recsys_ctx_set_max_isa(ctx, "sse9"), RECSYS_E_INVALID);
    assert_non_null(strstr(recsys_ctx_errmsg(ctx), "sse9"));
    assert_int_equal(recsys_ctx_set_max_isa(ctx, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_ctx_set_max_isa(ctx, ""), RECSYS_E_INVALID);
    assert_string_equal(recsys_ctx_isa(ctx), before); /* unchanged */
    assert_int_equal(recsys_ctx_set_max_isa(NULL, "avx2"), RECSYS_E_INVALID);
    recsys_ctx_free(ctx);
}

static void test_cap_via_env(void **state)
{
    (void)state;
    rs_cpu_features f;
    rs_cpu_detect(&f);
    for (int cap = RS_ISA_SCALAR; cap <= RS_ISA_AVX512; cap++) {
        setenv("RECSYS_MAX_ISA", isa_names[cap], 1);
        recsys_ctx *ctx;
        assert_int_equal(recsys_ctx_new(&ctx), RECSYS_OK);
        int e = expected_isa(&f, cap);
        assert_string_equal(recsys_ctx_isa(ctx), isa_names[e]);
        assert_string_equal(recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM), gemm_names[e]);
        recsys_ctx_free(ctx);
    }
    /* an unknown value is ignored (no cap), not fatal */
    setenv("RECSYS_MAX_ISA", "bogus", 1);
    recsys_ctx *ctx;
    assert_int_equal(recsys_ctx_new(&ctx), RECSYS_OK);
    assert_string_equal(recsys_ctx_isa(ctx), isa_names[expected_isa(&f, RS_ISA_AVX512)]);
    recsys_ctx_free(ctx);
    unsetenv("RECSYS_MAX_ISA");
}

static void test_bf16_mode(void **state)
{
    (void)state;
    rs_cpu_features f;
    rs_cpu_detect(&f);
    recsys_ctx *ctx;
    assert_int_equal(recsys_ctx_new(&ctx), RECSYS_OK);
    recsys_status st = recsys_ctx_set_bf16(ctx, 1);
    if (f.avx512_bf16) {
        assert_int_equal(st, RECSYS_OK);
        assert_true(ctx->bf16);
        assert_non_null(ctx->kern.gemm_bf16);
        /* capping below AVX-512 drops bf16 mode and refuses to re-enable it */
        assert_int_equal(recsys_ctx_set_max_isa(ctx, "avx2"), RECSYS_OK);
        assert_false(ctx->bf16);
        assert_null(ctx->kern.gemm_bf16);
    } else {
        assert_int_equal(st, RECSYS_E_UNSUPPORTED);
        assert_false(ctx->bf16);
    }
    assert_int_equal(recsys_ctx_set_bf16(ctx, 1), RECSYS_E_UNSUPPORTED);
    assert_int_equal(recsys_ctx_set_bf16(ctx, 0), RECSYS_OK);
    recsys_ctx_free(ctx);
}

static void test_gemm_backend(void **state)
{
    (void)state;
    recsys_ctx *ctx;
    assert_int_equal(recsys_ctx_new(&ctx), RECSYS_OK);
    assert_int_equal(recsys_ctx_set_gemm_backend(ctx, "cublas"), RECSYS_E_INVALID);
    assert_int_equal(recsys_ctx_set_gemm_backend(ctx, NULL), RECSYS_E_INVALID);
#ifdef RECSYS_HAVE_ONEDNN
    assert_int_equal(recsys_ctx_set_gemm_backend(ctx, "onednn"), RECSYS_OK);
    assert_string_equal(recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM), "gemm_onednn");
#else
    assert_int_equal(recsys_ctx_set_gemm_backend(ctx, "onednn"), RECSYS_E_UNSUPPORTED);
#endif
    assert_int_equal(recsys_ctx_set_gemm_backend(ctx, "native"), RECSYS_OK);
    assert_string_not_equal(recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM), "gemm_onednn");
    recsys_ctx_free(ctx);
#ifdef RECSYS_HAVE_ONEDNN
    setenv("RECSYS_GEMM", "onednn", 1);
    assert_int_equal(recsys_ctx_new(&ctx), RECSYS_OK);
    assert_string_equal(recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM), "gemm_onednn");
    recsys_ctx_free(ctx);
    unsetenv("RECSYS_GEMM");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table_follows_features, save_env, restore_env),
        cmocka_unit_test_setup_teardown(test_cap_via_api, save_env, restore_env),
        cmocka_unit_test_setup_teardown(test_unknown_isa, save_env, restore_env),
        cmocka_unit_test_setup_teardown(test_cap_via_env, save_env, restore_env),
        cmocka_unit_test_setup_teardown(test_bf16_mode, save_env, restore_env),
        cmocka_unit_test_setup_teardown(test_gemm_backend, save_env, restore_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

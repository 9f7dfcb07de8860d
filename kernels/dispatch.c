/* CPU feature detection (CPUID + XGETBV) and the kernel table. */
#include "kernels.h"
#include "kernels_isa.h"

#include "../include/librecsys/recsys.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

void rs_cpu_detect(rs_cpu_features *f)
{
    unsigned a, b, c, d;
    f->avx2_fma = f->avx512 = f->avx512_bf16 = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return;
    uint64_t xcr0 = xgetbv0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;           /* SSE + AVX state */
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1;
    int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
        avx512vl = (b >> 31) & 1;
    f->avx2_fma = ymm_ok && avx2 && fma;
    f->avx512 = f->avx2_fma && zmm_ok && avx512f && avx512dq && avx512bw && avx512vl;
    __cpuid_count(7, 1, a, b, c, d);
    f->avx512_bf16 = f->avx512 && ((a >> 5) & 1);
}
#else
void rs_cpu_detect(rs_cpu_features *f) { f->avx2_fma = f->avx512 = f->avx512_bf16 = 0; }
#endif

/* Variants are layered: the scalar references first, then each ISA allowed
 * by the CPU and the cap overwrites the entries it has (first match from the
 * best ISA down, so a kernel without an AVX-512 variant keeps its AVX2 one). */
static void fill_scalar(rs_kernels *k)
{
    k->isa = RS_ISA_SCALAR;
    k->gemm = rs_gemm_ref;
    k->hstu_fwd = rs_hstu_fwd_ref;
    k->hstu_bwd = rs_hstu_bwd_ref;
    k->attn_fwd = rs_attn_fwd_ref;
    k->attn_bwd = rs_attn_bwd_ref;
    k->layernorm_fwd = rs_layernorm_fwd_ref;
    k->layernorm_bwd = rs_layernorm_bwd_ref;
    k->adam = rs_adam_ref;
    k->dot = rs_dot_ref;
    k->dot_panels = rs_dot_panels_ref;
    k->dropout_fwd = rs_dropout_fwd_ref;
    k->dropout_apply = rs_dropout_apply_ref;
    k->add = rs_vadd_ref;
    k->relu = rs_relu_ref;
    k->relu_bwd = rs_relu_bwd_ref;
    k->silu_fwd = rs_silu_fwd_ref;
    k->silu_bwd = rs_silu_bwd_ref;
    k->softmax = rs_softmax_ref;
    k->embed_gather = rs_embed_gather_ref;
    k->embed_scatter = rs_embed_scatter_ref;
    k->names[RECSYS_KERNEL_GEMM] = "gemm_ref";
    k->names[RECSYS_KERNEL_ATTENTION] = "attention_ref";
    k->names[RECSYS_KERNEL_LAYERNORM] = "layernorm_ref";
    k->names[RECSYS_KERNEL_ADAM] = "adam_ref";
    k->names[RECSYS_KERNEL_DOT] = "dot_ref";
    k->names[RECSYS_KERNEL_HSTU_ATTENTION] = "hstu_attention_ref";
    k->names[RECSYS_KERNEL_POINTWISE] = "pointwise_ref";
}

#ifdef RS_HAVE_X86_KERNELS
static void fill_avx2(rs_kernels *k)
{
    k->isa = RS_ISA_AVX2;
    k->gemm = rs_gemm_avx2;
    k->hstu_fwd = rs_hstu_fwd_avx2;
    k->hstu_bwd = rs_hstu_bwd_avx2;
    k->names[RECSYS_KERNEL_GEMM] = "gemm_avx2";
    k->attn_fwd = rs_attn_fwd_avx2;
    k->attn_bwd = rs_attn_bwd_avx2;
    k->layernorm_fwd = rs_layernorm_fwd_avx2;
    k->layernorm_bwd = rs_layernorm_bwd_avx2;
    k->adam = rs_adam_avx2;
    k->dot = rs_dot_avx2;
    k->dot_panels = rs_dot_panels_avx2;
    k->dropout_fwd = rs_dropout_fwd_avx2;
    k->dropout_apply = rs_dropout_apply_avx2;
    k->add = rs_vadd_avx2;
    k->relu = rs_relu_avx2;
    k->relu_bwd = rs_relu_bwd_avx2;
    k->silu_fwd = rs_silu_fwd_avx2;
    k->silu_bwd = rs_silu_bwd_avx2;
    k->softmax = rs_softmax_avx2;
    k->embed_gather = rs_embed_gather_avx2;
    k->embed_scatter = rs_embed_scatter_avx2;
    k->names[RECSYS_KERNEL_ATTENTION] = "attention_avx2";
    k->names[RECSYS_KERNEL_LAYERNORM] = "layernorm_avx2";
    k->names[RECSYS_KERNEL_ADAM] = "adam_avx2";
    k->names[RECSYS_KERNEL_DOT] = "dot_avx2";
    k->names[RECSYS_KERNEL_HSTU_ATTENTION] = "hstu_attention_avx2";
    k->names[RECSYS_KERNEL_POINTWISE] = "pointwise_avx2";
}

static void fill_avx512(rs_kernels *k, const rs_cpu_features *f)
{
    k->isa = RS_ISA_AVX512;
    k->gemm = rs_gemm_avx512;
    k->hstu_fwd = rs_hstu_fwd_avx512;
    k->hstu_bwd = rs_hstu_bwd_avx512;
    k->names[RECSYS_KERNEL_GEMM] = "gemm_avx512";
    k->attn_fwd = rs_attn_fwd_avx512;
    k->attn_bwd = rs_attn_bwd_avx512;
    k->layernorm_fwd = rs_layernorm_fwd_avx512;
    k->layernorm_bwd = rs_layernorm_bwd_avx512;
    k->adam = rs_adam_avx512;
    k->dot = rs_dot_avx512;
    k->dot_panels = rs_dot_panels_avx512;
    k->dropout_fwd = rs_dropout_fwd_avx512;
    k->dropout_apply = rs_dropout_apply_avx512;
    k->add = rs_vadd_avx512;
    k->relu = rs_relu_avx512;
    k->relu_bwd = rs_relu_bwd_avx512;
    k->silu_fwd = rs_silu_fwd_avx512;
    k->silu_bwd = rs_silu_bwd_avx512;
    k->softmax = rs_softmax_avx512;
    k->embed_gather = rs_embed_gather_avx512;
    k->embed_scatter = rs_embed_scatter_avx512;
    k->names[RECSYS_KERNEL_ATTENTION] = "attention_avx512";
    k->names[RECSYS_KERNEL_LAYERNORM] = "layernorm_avx512";
    k->names[RECSYS_KERNEL_ADAM] = "adam_avx512";
    k->names[RECSYS_KERNEL_DOT] = "dot_avx512";
    k->names[RECSYS_KERNEL_HSTU_ATTENTION] = "hstu_attention_avx512";
    k->names[RECSYS_KERNEL_POINTWISE] = "pointwise_avx512";
    /* Used only when the ctx asks for bf16 mode (recsys_ctx_set_bf16). */
    k->gemm_bf16 = f->avx512_bf16 ? rs_gemm_avx512_bf16 : NULL;
    k->attn_fwd_bf16 = f->avx512_bf16 ? rs_attn_fwd_avx512_bf16 : NULL;
    k->attn_bwd_bf16 = f->avx512_bf16 ? rs_attn_bwd_avx512_bf16 : NULL;
}
#endif

_Static_assert(RECSYS_KERNEL_COUNT <= (int)(sizeof ((rs_kernels *)0)->names /
                                             sizeof ((rs_kernels *)0)->names[0]),
               "rs_kernels.names is too small for RECSYS_KERNEL_COUNT");

void rs_kernels_init(rs_kernels *k, const rs_cpu_features *f, enum rs_isa max_isa)
{
    *k = (rs_kernels){0};
    fill_scalar(k);
#ifdef RS_HAVE_X86_KERNELS
    if (max_isa >= RS_ISA_AVX2 && f->avx2_fma) fill_avx2(k);
    if (max_isa >= RS_ISA_AVX512 && f->avx512) fill_avx512(k, f);
#else
    (void)f;
    (void)max_isa;
#endif
}

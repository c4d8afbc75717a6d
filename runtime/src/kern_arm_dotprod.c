/* AArch64 kernels with the dot-product extension (Armv8.2 asimddp, e.g.
 * Cortex-A55/A76, Neoverse N1, Apple M1): sdot adds four s8 x s8 products per
 * int32 lane, so ternary dots need no int16 stage. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif

/* Before clang 16, arm_neon.h declares the dot-product intrinsics only when the
 * whole translation unit targets the extension; the pragma above makes them
 * legal in this file's functions, so expose them. */
#if defined(__clang__) && !defined(__ARM_FEATURE_DOTPROD)
#define __ARM_FEATURE_DOTPROD 1
#endif

#define TB_ARM_DOTPROD 1
#include "kern_arm_common.h"

/* 12 rows x 8 tokens, the shape of gemm_float: for each group of 4 weights,
 * sdot by lane multiplies a row's weight dword (a lane of the panel's quad
 * vector) with the dwords of 4 tokens. */
static void gemm_ternary(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    void *scratch = o->scratch;
    const int groups = w->kpad / 4;
    const size_t xstride = (size_t)x->npad * 4;
    const int8_t *panel = scratch;
    for (int r = r0; r < r1; r += MR) {
        decode_panel(w, r, scratch);
        tb_prefetch_next_panel(w, r, r1, MR);
        for (int t0 = 0; t0 < x->n; t0 += 8) { /* npad is a multiple of 32: 8 lanes always exist */
#define DECL(i, q, l) int32x4_t a##i##0 = vdupq_n_s32(0), a##i##1 = vdupq_n_s32(0);
            FOR_MR(DECL)
#undef DECL
            const int8_t *xt = x->qt + (size_t)t0 * 4;
            for (int g = 0; g < groups; g++) {
                int8x16_t x0 = vld1q_s8(xt + (size_t)g * xstride), x1 = vld1q_s8(xt + (size_t)g * xstride + 16);
                const int8_t *pw = panel + (size_t)g * MR * 4;
                int8x16_t w0 = vld1q_s8(pw), w1 = vld1q_s8(pw + 16), w2 = vld1q_s8(pw + 32);
#define STEP(i, q, l)                                  \
    a##i##0 = vdotq_laneq_s32(a##i##0, x0, w##q, l);   \
    a##i##1 = vdotq_laneq_s32(a##i##1, x1, w##q, l);
                FOR_MR(STEP)
#undef STEP
            }
            int32_t tile[MR][8];
#define STORE(i, q, l) vst1q_s32(tile[i], a##i##0), vst1q_s32(tile[i] + 4, a##i##1);
            FOR_MR(STORE)
#undef STORE
            store_tile_i32(tile, MR, y, w->rows, r, r1, t0, x->n, x->qsum);
        }
    }
}

const tb_kernels tb_kernels_dotprod = TB_ARM_TABLE;

#if defined(__clang__)
#pragma clang attribute pop
#endif

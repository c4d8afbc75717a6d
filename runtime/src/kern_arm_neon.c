/* AArch64 Advanced SIMD kernels (baseline on every AArch64 CPU), for cores
 * without the dot-product extension: u8 x s8 products via vmull/vmlal into
 * int16, widened to int32 with pairwise adds. */
#define TB_ARM_DOTPROD 0
#include "kern_arm_common.h"

/* Groups of 4 weights summed in int16 before widening: one product of
 * magnitude <= 2 * 128 per lane and group, and 127 * 256 = 32512 < 32768. */
#define FOLD_GROUPS 127

#define FOR4(X) X(0) X(1) X(2) X(3)

/* A quad of panel rows x 8 tokens. A weight dword broadcast against four token
 * dwords leaves each token's four products in adjacent int16 lanes of a
 * vmull/vmlal result; they are added across lanes only when folding into int32
 * (pairwise) and at the end (vpaddq), so the inner loop is multiplies only.
 * 16 int16 accumulators, 2 activation and 2 weight registers. */
static void gemm_quad(const tb_act *x, const uint8_t *panel, int quad, int groups, int t0, int32_t tile[4][8]) {
    const int8_t *xt = x->qt + (size_t)t0 * 4;
    const size_t xstride = (size_t)x->npad * 4;
    int32x4_t acc[4][4]; /* [row][pair of tokens]: touched once per fold */
    memset(acc, 0, sizeof acc);
    for (int g0 = 0; g0 < groups; g0 += FOLD_GROUPS) {
        int g1 = groups - g0 < FOLD_GROUPS ? groups : g0 + FOLD_GROUPS;
#define DECL(i) int16x8_t p##i##0 = vdupq_n_s16(0), p##i##1 = p##i##0, p##i##2 = p##i##0, p##i##3 = p##i##0;
        FOR4(DECL)
#undef DECL
        for (int g = g0; g < g1; g++) {
            int8x16_t x0 = vld1q_s8(xt + (size_t)g * xstride), x1 = vld1q_s8(xt + (size_t)g * xstride + 16);
            int32x4_t wq = vreinterpretq_s32_u8(vld1q_u8(panel + ((size_t)g * MR + 4 * quad) * 4));
#define STEP(i)                                                             \
    {                                                                       \
        int8x16_t wb = vreinterpretq_s8_s32(vdupq_laneq_s32(wq, i));        \
        p##i##0 = vmlal_s8(p##i##0, vget_low_s8(wb), vget_low_s8(x0));      \
        p##i##1 = vmlal_high_s8(p##i##1, wb, x0);                           \
        p##i##2 = vmlal_s8(p##i##2, vget_low_s8(wb), vget_low_s8(x1));      \
        p##i##3 = vmlal_high_s8(p##i##3, wb, x1);                           \
    }
            FOR4(STEP)
#undef STEP
        }
#define WIDEN(i)                                 \
    acc[i][0] = vpadalq_s16(acc[i][0], p##i##0); \
    acc[i][1] = vpadalq_s16(acc[i][1], p##i##1); \
    acc[i][2] = vpadalq_s16(acc[i][2], p##i##2); \
    acc[i][3] = vpadalq_s16(acc[i][3], p##i##3);
        FOR4(WIDEN)
#undef WIDEN
    }
    /* each token's sum is split over two adjacent lanes */
    for (int i = 0; i < 4; i++) {
        vst1q_s32(tile[i], vpaddq_s32(acc[i][0], acc[i][1]));
        vst1q_s32(tile[i] + 4, vpaddq_s32(acc[i][2], acc[i][3]));
    }
}

static void gemm_ternary(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    void *scratch = o->scratch;
    const int groups = w->kpad / 4;
    for (int r = r0; r < r1; r += MR) {
        decode_panel(w, r, scratch);
        tb_prefetch_next_panel(w, r, r1, MR);
        for (int quad = 0; quad < MR / 4 && r + 4 * quad < r1; quad++) {
            for (int t0 = 0; t0 < x->n; t0 += 8) { /* npad is a multiple of 32: 8 lanes always exist */
                int32_t tile[4][8];
                gemm_quad(x, scratch, quad, groups, t0, tile);
                store_tile_i32(tile, 4, y, w->rows, r + 4 * quad, r1, t0, x->n, x->qsum);
            }
        }
    }
}

const tb_kernels tb_kernels_neon = TB_ARM_TABLE;

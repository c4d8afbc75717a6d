/* AArch64 kernels shared by kern_arm_neon.c (TB_ARM_DOTPROD 0) and
 * kern_arm_dotprod.c (TB_ARM_DOTPROD 1); the including file selects the ISA.
 * Each file keeps its own ternary GEMM micro-kernel, the one place where the
 * two instruction sets call for a different loop structure.
 *
 * Ternary weights are used as codes u = w + 1 in {0, 1, 2} (GEMV negates them
 * for tq1, see tq1_negcodes), signed operands of s8 x s8 products:
 * sum(u q) - sum(q) recovers sum(w q) exactly.
 *
 * GEMV streams the packed weights once, four rows at a time sharing activation
 * loads. GEMM decodes a panel of TB_GEMM_MR rows into scratch, interleaved so
 * that one 16-byte load holds the same k step of four rows (decode_panel), then
 * multiplies it against token-interleaved activations in register tiles. */
#ifndef TB_KERN_ARM_COMMON_H
#define TB_KERN_ARM_COMMON_H

#include <arm_neon.h>
#include <string.h>
#include "tb_internal.h"

#ifndef TB_ARM_DOTPROD
#error "define TB_ARM_DOTPROD (0 or 1) before including kern_arm_common.h"
#endif

#define MR TB_GEMM_MR
/* The micro-kernels hold a panel as three quads of rows. */
_Static_assert(TB_GEMM_MR == 12, "the ARM GEMM micro-kernels assume 12-row panels");

/* X-macro over the panel rows: (row, quad, lane in quad). */
#define FOR_MR(X)                                                                                  \
    X(0, 0, 0) X(1, 0, 1) X(2, 0, 2) X(3, 0, 3) X(4, 1, 0) X(5, 1, 1) X(6, 1, 2) X(7, 1, 3)        \
    X(8, 2, 0) X(9, 2, 1) X(10, 2, 2) X(11, 2, 3)

#define TB_INLINE static inline __attribute__((always_inline))

/* ---------------- ternary decoding ---------------- */

/* Code vectors per 16 packed bytes: code s covers elements 64 s + h .. 64 s + h + 15
 * of the block for the bytes at block offset h. */
#define I2S_CODES 4
#define TQ1_CODES 5
TB_INLINE int ncodes_of(int fmt) { return fmt == TB_I2S ? I2S_CODES : TQ1_CODES; }

/* i2s: u = w + 1 of the 16 elements at 64 s + h. The top pair needs no mask. */
TB_INLINE int8x16_t i2s_codes(uint8x16_t v, int s) {
    const uint8x16_t three = vdupq_n_u8(3);
    switch (s) {
    case 0: return vreinterpretq_s8_u8(vandq_u8(v, three));
    case 1: return vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 2), three));
    case 2: return vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 4), three));
    default: return vreinterpretq_s8_u8(vshrq_n_u8(v, 6));
    }
}

/* tq1: trit i of byte q is floor(3 q_i / 256) with q_i = q 3^i mod 256, i.e.
 * [q_i >= 86] + [q_i >= 171]. The two compare masks (0 or -1 each) add up to
 * -trit: one instruction fewer than the widening multiply and narrowing shift,
 * so the codes come out negated and callers negate the dot product instead. */
TB_INLINE int8x16_t tq1_negcodes(uint8x16_t qi) {
    return vreinterpretq_s8_u8(vaddq_u8(vcgeq_u8(qi, vdupq_n_u8(86)), vcgeq_u8(qi, vdupq_n_u8(171))));
}

/* All codes of 16 packed bytes: u codes for i2s, -u codes for tq1. */
TB_INLINE void chunk_codes(int fmt, uint8x16_t v, int8x16_t *c) {
    if (fmt == TB_I2S) {
#pragma GCC unroll 4
        for (int s = 0; s < I2S_CODES; s++) c[s] = i2s_codes(v, s);
    } else {
#pragma GCC unroll 5
        for (int i = 0; i < TQ1_CODES; i++) {
            c[i] = tq1_negcodes(v);
            v = vmulq_u8(v, vdupq_n_u8(3)); /* q_{i+1} = 3 q_i mod 256 */
        }
    }
}

/* acc += sum over lanes of a[c] * b[c], c < cnt, in four int32 partial sums. */
#if TB_ARM_DOTPROD
TB_INLINE int32x4_t dot_n(int32x4_t acc, const int8x16_t *a, const int8x16_t *b, int cnt) {
#pragma GCC unroll 8
    for (int c = 0; c < cnt; c++) acc = vdotq_s32(acc, a[c], b[c]);
    return acc;
}
#else
/* Products are summed in int16 and widened once per call. Codes are within
 * [-2, 2] and activations within [-128, 127], so each int16 lane adds 2 cnt
 * terms of magnitude <= 256: exact for cnt <= 63. */
TB_INLINE int32x4_t dot_n(int32x4_t acc, const int8x16_t *a, const int8x16_t *b, int cnt) {
    int16x8_t p = vmull_s8(vget_low_s8(a[0]), vget_low_s8(b[0]));
    p = vmlal_high_s8(p, a[0], b[0]);
#pragma GCC unroll 8
    for (int c = 1; c < cnt; c++) {
        p = vmlal_s8(p, vget_low_s8(a[c]), vget_low_s8(b[c]));
        p = vmlal_high_s8(p, a[c], b[c]);
    }
    return vpadalq_s16(acc, p);
}
#endif

/* ---------------- GEMV ---------------- */

/* acc += the codes of the 16 packed bytes at p . their activations qv. */
TB_INLINE int32x4_t chunk_dot(int fmt, int32x4_t acc, const uint8_t *p, const int8x16_t *qv) {
    int8x16_t c[TQ1_CODES];
    chunk_codes(fmt, vld1q_u8(p), c);
    return dot_n(acc, c, qv, ncodes_of(fmt));
}

/* The activations met by a chunk's codes, q pointing at the chunk's offset in the block. */
TB_INLINE void chunk_acts(int fmt, const int8_t *q, int8x16_t *qv) {
    const int ncodes = ncodes_of(fmt);
#pragma GCC unroll 5
    for (int s = 0; s < ncodes; s++) qv[s] = vld1q_s8(q + 64 * s);
}

TB_INLINE int32_t finish_ternary(int fmt, int32x4_t acc, int32_t qsum) {
    int32_t dot = vaddvq_s32(acc);
    return (fmt == TB_TQ1 ? -dot : dot) - qsum;
}

/* Four rows at a time share each activation load, one accumulator chain per
 * row. The chunk loop stays rolled on purpose: unrolled, GCC hoists the next
 * chunk's loads and spills accumulators to the stack. */
TB_INLINE void gemv_ternary(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, int fmt) {
    const int block = 64 * ncodes_of(fmt), nb = w->kpad / block;
    const size_t rb = w->row_bytes;
    const int32_t qsum = x->qsum[0];
    int32_t *out = y;
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        const uint8_t *p = w->data + (size_t)r * rb;
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        for (int b = 0; b < nb; b++, p += 64) {
            const int8_t *q = x->q + (size_t)b * block;
#pragma GCC unroll 1
            for (int h = 0; h < 64; h += 16) {
                int8x16_t qv[TQ1_CODES];
                chunk_acts(fmt, q + h, qv);
                a0 = chunk_dot(fmt, a0, p + h, qv);
                a1 = chunk_dot(fmt, a1, p + rb + h, qv);
                a2 = chunk_dot(fmt, a2, p + 2 * rb + h, qv);
                a3 = chunk_dot(fmt, a3, p + 3 * rb + h, qv);
            }
        }
        out[r] = finish_ternary(fmt, a0, qsum);
        out[r + 1] = finish_ternary(fmt, a1, qsum);
        out[r + 2] = finish_ternary(fmt, a2, qsum);
        out[r + 3] = finish_ternary(fmt, a3, qsum);
    }
    for (; r < r1; r++) {
        const uint8_t *p = w->data + (size_t)r * rb;
        int32x4_t a = vdupq_n_s32(0);
        for (int b = 0; b < nb; b++, p += 64) {
            const int8_t *q = x->q + (size_t)b * block;
#pragma GCC unroll 1
            for (int h = 0; h < 64; h += 16) {
                int8x16_t qv[TQ1_CODES];
                chunk_acts(fmt, q + h, qv);
                a = chunk_dot(fmt, a, p + h, qv);
            }
        }
        out[r] = finish_ternary(fmt, a, qsum);
    }
}

static void gemv_i2s(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    (void)scratch;
    gemv_ternary(w, x, r0, r1, y, TB_I2S);
}

static void gemv_tq1(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    (void)scratch;
    gemv_ternary(w, x, r0, r1, y, TB_TQ1);
}

/* Four weights of a float-format row as floats (f16 widening is baseline AArch64). */
TB_INLINE float32x4_t load_w4(int fmt, const uint8_t *row, int k) {
    if (fmt == TB_F16) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)row + k)));
    return vld1q_f32((const float *)row + k);
}

TB_INLINE void load_f32x16(const float *f, float32x4_t v[4]) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) v[j] = vld1q_f32(f + 4 * j);
}

/* Sixteen weights: f16 as two 8-wide loads widened by halves. */
TB_INLINE void load_w16(int fmt, const uint8_t *row, int k, float32x4_t wv[4]) {
    if (fmt == TB_F16) {
        const uint16_t *h = (const uint16_t *)row + k;
        float16x8_t h0 = vreinterpretq_f16_u16(vld1q_u16(h)), h1 = vreinterpretq_f16_u16(vld1q_u16(h + 8));
        wv[0] = vcvt_f32_f16(vget_low_f16(h0));
        wv[1] = vcvt_high_f32_f16(h0);
        wv[2] = vcvt_f32_f16(vget_low_f16(h1));
        wv[3] = vcvt_high_f32_f16(h1);
    } else if (fmt == TB_I8) { /* widen int8 -> int16 -> int32 -> float */
        int8x16_t b = vld1q_s8((const int8_t *)row + k);
        int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_high_s8(b);
        wv[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
        wv[1] = vcvtq_f32_s32(vmovl_high_s16(lo));
        wv[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
        wv[3] = vcvtq_f32_s32(vmovl_high_s16(hi));
    } else {
        load_f32x16((const float *)row + k, wv);
    }
}

/* acc_a, acc_b += sixteen weights of a row at k . the activations xv. */
TB_INLINE void fma16(int fmt, float32x4_t *acc_a, float32x4_t *acc_b, const uint8_t *row, int k,
                     const float32x4_t *xv) {
    float32x4_t wv[4];
    load_w16(fmt, row, k, wv);
    *acc_a = vfmaq_f32(*acc_a, wv[0], xv[0]);
    *acc_b = vfmaq_f32(*acc_b, wv[1], xv[1]);
    *acc_a = vfmaq_f32(*acc_a, wv[2], xv[2]);
    *acc_b = vfmaq_f32(*acc_b, wv[3], xv[3]);
}

/* int8 rows carry a scale, applied to the finished sum. */
TB_INLINE float row_scale(const tb_matrix *w, int fmt, int r) { return fmt == TB_I8 ? w->row_scale[r] : 1.0f; }

/* Same shape as gemv_ternary; fmt is a constant after inlining. kpad is a
 * multiple of 16 in every float format (32 for f16 and f32, 64 for int8). */
TB_INLINE void gemv_float_fmt(const tb_matrix *w, const tb_act *x, int r0, int r1, float *out, int fmt) {
    const size_t rb = w->row_bytes;
    const int kpad = w->kpad;
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        const uint8_t *p = w->data + (size_t)r * rb;
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int k = 0; k < kpad; k += 16) {
            float32x4_t xv[4];
            load_f32x16(x->f + k, xv);
            fma16(fmt, &a0, &b0, p, k, xv);
            fma16(fmt, &a1, &b1, p + rb, k, xv);
            fma16(fmt, &a2, &b2, p + 2 * rb, k, xv);
            fma16(fmt, &a3, &b3, p + 3 * rb, k, xv);
        }
        out[r] = vaddvq_f32(vaddq_f32(a0, b0)) * row_scale(w, fmt, r);
        out[r + 1] = vaddvq_f32(vaddq_f32(a1, b1)) * row_scale(w, fmt, r + 1);
        out[r + 2] = vaddvq_f32(vaddq_f32(a2, b2)) * row_scale(w, fmt, r + 2);
        out[r + 3] = vaddvq_f32(vaddq_f32(a3, b3)) * row_scale(w, fmt, r + 3);
    }
    for (; r < r1; r++) {
        const uint8_t *p = w->data + (size_t)r * rb;
        float32x4_t a = vdupq_n_f32(0.0f), b = a;
        for (int k = 0; k < kpad; k += 16) {
            float32x4_t xv[4];
            load_f32x16(x->f + k, xv);
            fma16(fmt, &a, &b, p, k, xv);
        }
        out[r] = vaddvq_f32(vaddq_f32(a, b)) * row_scale(w, fmt, r);
    }
}

static void gemv_float(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    (void)scratch;
    if (w->fmt == TB_F16) gemv_float_fmt(w, x, r0, r1, y, TB_F16);
    else if (w->fmt == TB_I8) gemv_float_fmt(w, x, r0, r1, y, TB_I8);
    else gemv_float_fmt(w, x, r0, r1, y, TB_F32);
}

/* ---------------- GEMM ---------------- */

/* In place: lane j of a[m] becomes lane m of the input a[j] (32-bit lanes). */
TB_INLINE void transpose4(uint32x4_t a[4]) {
    uint32x4_t t0 = vtrn1q_u32(a[0], a[1]), t1 = vtrn2q_u32(a[0], a[1]);
    uint32x4_t t2 = vtrn1q_u32(a[2], a[3]), t3 = vtrn2q_u32(a[2], a[3]);
    a[0] = vreinterpretq_u32_u64(vtrn1q_u64(vreinterpretq_u64_u32(t0), vreinterpretq_u64_u32(t2)));
    a[1] = vreinterpretq_u32_u64(vtrn1q_u64(vreinterpretq_u64_u32(t1), vreinterpretq_u64_u32(t3)));
    a[2] = vreinterpretq_u32_u64(vtrn2q_u64(vreinterpretq_u64_u32(t0), vreinterpretq_u64_u32(t2)));
    a[3] = vreinterpretq_u32_u64(vtrn2q_u64(vreinterpretq_u64_u32(t1), vreinterpretq_u64_u32(t3)));
}

/* Decodes rows [r, r + MR) into the panel, interleaved by quads of rows:
 *   ternary: [kpad/4][MR][4] u8 codes, i.e. for each group of 4 weights the
 *            dwords of all MR rows, the unit a token's activation dword meets;
 *   float:   [kpad][MR] floats.
 * Rows past the matrix are decoded from zero bytes (codes 0, weights 0) rather
 * than read; their results are never stored. fmt is a constant after inlining. */
TB_INLINE void decode_panel_fmt(const tb_matrix *w, int r, void *panel, int fmt) {
    const int kpad = w->kpad;
    for (int quad = 0; quad < MR / 4; quad++) {
        const uint8_t *rowp[4];
        for (int j = 0; j < 4; j++) {
            int row = r + 4 * quad + j;
            rowp[j] = row < w->rows ? w->data + (size_t)row * w->row_bytes : NULL;
        }
        if (fmt == TB_I2S || fmt == TB_TQ1) {
            const int ncodes = ncodes_of(fmt), block = 64 * ncodes;
            uint8_t *d = (uint8_t *)panel + 16 * quad;
            for (int b = 0; b < kpad / block; b++) {
                for (int h = 0; h < 64; h += 16) {
                    int8x16_t c[4][TQ1_CODES];
                    for (int j = 0; j < 4; j++) {
                        uint8x16_t v = rowp[j] ? vld1q_u8(rowp[j] + (size_t)b * 64 + h) : vdupq_n_u8(0);
                        chunk_codes(fmt, v, c[j]);
                    }
                    for (int s = 0; s < ncodes; s++) {
                        uint32x4_t t[4];
                        for (int j = 0; j < 4; j++)
                            t[j] = vreinterpretq_u32_s8(fmt == TB_TQ1 ? vnegq_s8(c[j][s]) : c[j][s]);
                        transpose4(t);
                        int g = (b * block + 64 * s + h) / 4;
                        for (int m = 0; m < 4; m++) vst1q_u32((uint32_t *)(d + (size_t)(g + m) * MR * 4), t[m]);
                    }
                }
            }
        } else {
            float *d = (float *)panel + 4 * quad;
            for (int k = 0; k < kpad; k += 4) {
                uint32x4_t t[4];
                for (int j = 0; j < 4; j++)
                    t[j] = vreinterpretq_u32_f32(rowp[j] ? load_w4(fmt, rowp[j], k) : vdupq_n_f32(0.0f));
                transpose4(t);
                for (int m = 0; m < 4; m++) vst1q_f32(d + (size_t)(k + m) * MR, vreinterpretq_f32_u32(t[m]));
            }
        }
    }
}

static void decode_panel(const tb_matrix *w, int r, void *panel) {
    switch (w->fmt) {
    case TB_I2S: decode_panel_fmt(w, r, panel, TB_I2S); break;
    case TB_TQ1: decode_panel_fmt(w, r, panel, TB_TQ1); break;
    case TB_F16: decode_panel_fmt(w, r, panel, TB_F16); break;
    default: decode_panel_fmt(w, r, panel, TB_F32); break;
    }
}

/* Stores rows [r, r + nr) x tokens [t0, t0 + 8) of an accumulator tile, for
 * the rows below r1 and the tokens below n; ternary tiles subtract qsum. */
static void store_tile_i32(const int32_t (*tile)[8], int nr, int32_t *y, int rows, int r, int r1, int t0,
                           int n, const int32_t *qsum) {
    for (int i = 0; i < nr && r + i < r1; i++)
        for (int l = 0; l < 8 && t0 + l < n; l++) y[(size_t)(t0 + l) * rows + r + i] = tile[i][l] - qsum[t0 + l];
}

static void store_tile_f32(const float (*tile)[8], int nr, float *y, int rows, int r, int r1, int t0, int n) {
    for (int i = 0; i < nr && r + i < r1; i++)
        for (int l = 0; l < 8 && t0 + l < n; l++) y[(size_t)(t0 + l) * rows + r + i] = tile[i][l];
}

/* 12 rows x 8 tokens: 24 accumulators, 3 weight and 2 activation registers of
 * the 32. The accumulators are named one by one (FOR_MR) rather than kept in an
 * array, which GCC may leave in memory. */
static void gemm_float(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    const int kpad = w->kpad, npad = x->npad;
    const float *panel = scratch;
    for (int r = r0; r < r1; r += MR) {
        decode_panel(w, r, scratch);
        for (int t0 = 0; t0 < x->n; t0 += 8) { /* npad is a multiple of 32: 8 lanes always exist */
#define DECL(i, q, l) float32x4_t a##i##0 = vdupq_n_f32(0.0f), a##i##1 = vdupq_n_f32(0.0f);
            FOR_MR(DECL)
#undef DECL
            const float *xt = x->ft + t0;
            for (int k = 0; k < kpad; k++) {
                float32x4_t x0 = vld1q_f32(xt + (size_t)k * npad), x1 = vld1q_f32(xt + (size_t)k * npad + 4);
                const float *pw = panel + (size_t)k * MR;
                float32x4_t w0 = vld1q_f32(pw), w1 = vld1q_f32(pw + 4), w2 = vld1q_f32(pw + 8);
#define STEP(i, q, l)                                  \
    a##i##0 = vfmaq_laneq_f32(a##i##0, x0, w##q, l);   \
    a##i##1 = vfmaq_laneq_f32(a##i##1, x1, w##q, l);
                FOR_MR(STEP)
#undef STEP
            }
            float tile[MR][8];
#define STORE(i, q, l) vst1q_f32(tile[i], a##i##0), vst1q_f32(tile[i] + 4, a##i##1);
            FOR_MR(STORE)
#undef STORE
            store_tile_f32(tile, MR, y, w->rows, r, r1, t0, x->n);
        }
    }
}

/* Every table has the same shape; only gemm_ternary differs between the files. */
#define TB_ARM_TABLE                                                                               \
    {                                                                                              \
        .gemv = {[TB_I2S] = gemv_i2s, [TB_TQ1] = gemv_tq1, [TB_F16] = gemv_float, [TB_F32] = gemv_float, \
                 [TB_I8] = gemv_float},                                                            \
        .gemm = {[TB_I2S] = gemm_ternary, [TB_TQ1] = gemm_ternary, [TB_F16] = gemm_float,           \
                 [TB_F32] = gemm_float},                                                           \
    }

#endif

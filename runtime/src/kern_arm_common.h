/* AArch64 kernels shared by kern_arm_neon.c (TB_ARM_DOTPROD 0) and
 * kern_arm_dotprod.c (TB_ARM_DOTPROD 1); the including file selects the ISA.
 * Each file keeps its own ternary GEMM micro-kernel, the one place where the
 * two instruction sets call for a different loop structure.
 *
 * Ternary weights are used as codes u = w + 1 in {0, 1, 2} (GEMV negates them
 * for tq1, see tq1_negcodes), signed operands of s8 x s8 products:
 * sum(u q) - sum(q) recovers sum(w q) exactly.
 *
 * int8 (w8a8) weights are in [-127, 127] and multiply int8 activations directly.
 *
 * GEMV reads a row group (TB_GROUP rows interleaved in TB_CHUNK-byte chunks) as
 * one sequential stream, the rows sharing the activation loads, with an optional
 * software prefetch the context's tuning sets. GEMM decodes a panel of
 * TB_GEMM_MR rows into scratch, interleaved so that one 16-byte load holds the
 * same k step of four rows (decode_panel), then multiplies it against
 * token-interleaved activations in register tiles. */
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
/* int8 weights are their own codes: one per byte, as the integer GEMV sees them */
TB_INLINE int ncodes_of(int fmt) { return fmt == TB_I2S ? I2S_CODES : fmt == TB_TQ1 ? TQ1_CODES : 1; }

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

/* All codes of 16 packed bytes: u codes for i2s, -u codes for tq1, the weights for int8. */
TB_INLINE void chunk_codes(int fmt, uint8x16_t v, int8x16_t *c) {
    if (fmt == TB_I8) {
        c[0] = vreinterpretq_s8_u8(v);
    } else if (fmt == TB_I2S) {
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
 * terms of magnitude <= 256: exact for cnt <= 63. int8 weights (cnt 1) add two
 * terms of magnitude <= 127 x 128: exact too. */
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

/* The dot product from the codes' sum: tq1 codes are negated, ternary codes biased by one. */
TB_INLINE int32_t finish_int(int fmt, int32x4_t acc, int32_t qsum) {
    int32_t dot = vaddvq_s32(acc);
    return fmt == TB_I8 ? dot : (fmt == TB_TQ1 ? -dot : dot) - qsum;
}

/* The address usually lies past the end of the data: computed as an integer it
 * stays defined, and prefetching it is harmless. */
TB_INLINE void prefetch_group(const uint8_t *p, size_t ahead) {
#pragma GCC unroll 4
    for (int i = 0; i < TB_GROUP; i++) __builtin_prefetch((const void *)((uintptr_t)p + ahead + i * TB_CHUNK));
}

/* A group's four rows share each activation load, one accumulator chain per row.
 * The 16-byte loop stays rolled on purpose: unrolled, GCC hoists the next step's
 * loads and spills accumulators to the stack. */
TB_INLINE void gemv_int(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o,
                        int fmt) {
    const int block = 64 * ncodes_of(fmt), nc = (int)(w->row_bytes / TB_CHUNK);
    const size_t pf = (size_t)o->prefetch;
    const int32_t qsum = x->qsum[0];
    int32_t *out = y;
    for (int r = r0; r < r1; r += TB_GROUP) {
        const uint8_t *p = tb_group(w, r);
        int32x4_t acc[TB_GROUP] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
        for (int c = 0; c < nc; c++, p += TB_GROUP * TB_CHUNK) {
            if (pf) prefetch_group(p, pf);
            const int8_t *q = x->q + (size_t)c * block;
#pragma GCC unroll 1
            for (int h = 0; h < TB_CHUNK; h += 16) {
                int8x16_t qv[TQ1_CODES];
                chunk_acts(fmt, q + h, qv);
#pragma GCC unroll 4
                for (int i = 0; i < TB_GROUP; i++) acc[i] = chunk_dot(fmt, acc[i], p + i * TB_CHUNK + h, qv);
            }
        }
        for (int i = 0; i < TB_GROUP && r + i < r1; i++) out[r + i] = finish_int(fmt, acc[i], qsum);
    }
}

static void gemv_i2s(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_int(w, x, r0, r1, y, o, TB_I2S);
}

static void gemv_tq1(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_int(w, x, r0, r1, y, o, TB_TQ1);
}

static void gemv_i8(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_int(w, x, r0, r1, y, o, TB_I8);
}

/* ---------------- lookup tables: tl1, tl2 (layout in tb_internal.h) ---------------- */

/* a negated at the lanes whose bit is set in bits[0..1] (lane i: bit i % 8 of byte i / 8) */
TB_INLINE int8x16_t tl_neg(int8x16_t a, const uint8_t *bits) {
    const uint8x16_t pick = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ull));
    int8x16_t m = vreinterpretq_s8_u8(vtstq_u8(vcombine_u8(vdup_n_u8(bits[0]), vdup_n_u8(bits[1])), pick));
    return vsubq_s8(veorq_s8(a, m), m);
}

/* A 16-byte index vector holds 4 rows x 4 groups: tbl4 looks each up in a 64-byte
 * table of 4 groups, and pairwise adds sum a row's four groups into its int32 lane
 * (8 A + B per look-up pair within int16: at most 8 x 96 + 42). */
TB_INLINE void gemv_tl(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o, int fmt) {
    uint32_t *out = y;
    const int steps = tb_tl_steps(w);
    const size_t pf = (size_t)o->prefetch, step_bytes = tb_tl_step_bytes(fmt);
    const uint8x16_t slot = vreinterpretq_u8_u32(vdupq_n_u32(0x30201000)), low = vdupq_n_u8(15);
    for (int rp = r0, rend; rp < r1; rp = rend) { /* a panel, k-chunk by k-chunk */
        rend = tb_tl_panel_end(rp, r1);
        for (int c0 = 0; c0 < steps; c0 += TB_TL_CHUNK) {
            const int c1 = steps - c0 < TB_TL_CHUNK ? steps : c0 + TB_TL_CHUNK;
            for (int r = rp; r < rend; r += TB_TL_ROWS) {
                const uint8_t *p = tb_tl_step(w, r, c0);
                int32x4_t acc[TB_TL_ROWS / 4];
                for (int v = 0; v < TB_TL_ROWS / 4; v++) acc[v] = vdupq_n_s32(0);
                for (int s = c0; s < c1; s++, p += step_bytes) {
                    if (pf)
                        for (size_t off = 0; off < step_bytes; off += 64)
                            __builtin_prefetch((const void *)((uintptr_t)p + off + pf));
                    const int8_t *t = x->lut + (size_t)s * TB_TL_LUT_STEP;
                    for (int hi = 0; hi < 2; hi++) {
                        const int8x16x4_t ta = vld1q_s8_x4(t + 64 * hi), tb = vld1q_s8_x4(t + 128 + 64 * hi);
#pragma GCC unroll 4
                        for (int v = 0; v < TB_TL_ROWS / 4; v++) { /* rows 4 v .. 4 v + 3: sub-block v / 4 */
                            uint8x16_t raw = vld1q_u8(p + 16 * v);
                            uint8x16_t idx = vorrq_u8(hi ? vshrq_n_u8(raw, 4) : vandq_u8(raw, low), slot);
                            int8x16_t a = vqtbl4q_s8(ta, idx), b = vqtbl4q_s8(tb, idx);
                            if (fmt == TB_TL2) {
                                const uint8_t *bits = p + TB_TL_SUBS * TB_TL_SUB + TB_TL2_SIGNS * (v / 4) + 8 * hi + 2 * (v % 4);
                                a = tl_neg(a, bits);
                                b = tl_neg(b, bits);
                            }
                            acc[v] = vpadalq_s16(acc[v], vaddq_s16(vshlq_n_s16(vpaddlq_s8(a), 3), vpaddlq_s8(b)));
                        }
                    }
                }
                uint32_t rows[TB_TL_ROWS];
                for (int v = 0; v < TB_TL_ROWS / 4; v++) vst1q_u32(rows + 4 * v, vreinterpretq_u32_s32(acc[v]));
                const int nr = rend - r < TB_TL_ROWS ? rend - r : TB_TL_ROWS;
                for (int i = 0; i < nr; i++) out[r + i] = (c0 ? out[r + i] : 0) + rows[i]; /* modulo 2^32 */
            }
        }
    }
}

static void gemv_tl1(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_tl(w, x, r0, r1, y, o, TB_TL1);
}

static void gemv_tl2(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_tl(w, x, r0, r1, y, o, TB_TL2);
}

/* Four weights of a float-format row at element k as floats (f16 widening is
 * baseline AArch64). */
TB_INLINE float32x4_t load_w4(int fmt, const tb_matrix *w, int r, int k) {
    if (fmt == TB_F16) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)tb_row_at(w, r, 2 * (size_t)k))));
    return vld1q_f32((const float *)tb_row_at(w, r, 4 * (size_t)k));
}

/* Sixteen weights at p (f16: 32 bytes, f32: 64 bytes) as four float vectors. */
TB_INLINE void load_w16(int fmt, const uint8_t *p, float32x4_t wv[4]) {
    if (fmt == TB_F16) {
        float16x8_t h0 = vreinterpretq_f16_u16(vld1q_u16((const uint16_t *)p));
        float16x8_t h1 = vreinterpretq_f16_u16(vld1q_u16((const uint16_t *)p + 8));
        wv[0] = vcvt_f32_f16(vget_low_f16(h0));
        wv[1] = vcvt_high_f32_f16(h0);
        wv[2] = vcvt_f32_f16(vget_low_f16(h1));
        wv[3] = vcvt_high_f32_f16(h1);
    } else {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) wv[j] = vld1q_f32((const float *)p + 4 * j);
    }
}

/* Same shape as gemv_int; a chunk is 32 halves or 16 floats. */
TB_INLINE void gemv_float_fmt(const tb_matrix *w, const tb_act *x, int r0, int r1, float *out, const tb_kopts *o,
                              int fmt) {
    const int per_chunk = fmt == TB_F16 ? TB_CHUNK / 2 : TB_CHUNK / 4, nc = (int)(w->row_bytes / TB_CHUNK);
    const size_t pf = (size_t)o->prefetch;
    for (int r = r0; r < r1; r += TB_GROUP) {
        const uint8_t *p = tb_group(w, r);
        float32x4_t a[TB_GROUP][2];
        for (int i = 0; i < TB_GROUP; i++) a[i][0] = a[i][1] = vdupq_n_f32(0.0f);
        for (int c = 0; c < nc; c++, p += TB_GROUP * TB_CHUNK) {
            if (pf) prefetch_group(p, pf);
            for (int j = 0; j < per_chunk; j += 16) {
                const float *f = x->f + (size_t)c * per_chunk + j;
                float32x4_t xv[4] = {vld1q_f32(f), vld1q_f32(f + 4), vld1q_f32(f + 8), vld1q_f32(f + 12)};
#pragma GCC unroll 4
                for (int i = 0; i < TB_GROUP; i++) {
                    float32x4_t wv[4];
                    load_w16(fmt, p + i * TB_CHUNK + (size_t)j * (fmt == TB_F16 ? 2 : 4), wv);
                    a[i][0] = vfmaq_f32(a[i][0], wv[0], xv[0]);
                    a[i][1] = vfmaq_f32(a[i][1], wv[1], xv[1]);
                    a[i][0] = vfmaq_f32(a[i][0], wv[2], xv[2]);
                    a[i][1] = vfmaq_f32(a[i][1], wv[3], xv[3]);
                }
            }
        }
        for (int i = 0; i < TB_GROUP && r + i < r1; i++) out[r + i] = vaddvq_f32(vaddq_f32(a[i][0], a[i][1]));
    }
}

static void gemv_float(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    if (w->fmt == TB_F16) gemv_float_fmt(w, x, r0, r1, y, o, TB_F16);
    else gemv_float_fmt(w, x, r0, r1, y, o, TB_F32);
}

/* ---------------- attention helpers ---------------- */

static float dot_f32(const float *a, const float *b, int n) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void axpy_f32(float *y, float a, const float *x, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] += a * x[i];
}

static float dot_h(const float *a, const uint16_t *b, int n) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(b + i));
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vcvt_f32_f16(vget_low_f16(h)));
        acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), vcvt_high_f32_f16(h));
    }
    float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++) sum += a[i] * tb_half_table()[b[i]];
    return sum;
}

static void axpy_h(float *y, float a, const uint16_t *x, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))), a));
    for (; i < n; i++) y[i] += a * tb_half_table()[x[i]];
}

/* Attention over one KV head: one position at a time through the helpers above. */
static void scores_h(const float *q, const uint16_t *k, int len, int d, float scale, float *out) {
    for (int p = 0; p < len; p++) out[p] = dot_h(q, k + (size_t)p * d, d) * scale;
}

static void mix_h(float *o, const float *w, const uint16_t *v, int len, int d) {
    for (int p = 0; p < len; p++) axpy_h(o, w[p], v + (size_t)p * d, d);
}

/* vcvt rounds to nearest even under the default FPCR, as tb_float_to_half does. */
static void to_half(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    for (; i < n; i++) dst[i] = tb_float_to_half(src[i]);
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
 * Rows past the padded matrix are decoded from zero bytes (codes 0, weights 0)
 * rather than read; their results are never stored. fmt is a constant after inlining. */
TB_INLINE void decode_panel_fmt(const tb_matrix *w, int r, void *panel, int fmt) {
    const int kpad = w->kpad;
    for (int quad = 0; quad < MR / 4; quad++) {
        /* a quad is one row group: inside the padded matrix, or wholly past it */
        const int in = r + 4 * quad < w->rows_pad;
        if (fmt == TB_I2S || fmt == TB_TQ1) {
            const int ncodes = ncodes_of(fmt), block = 64 * ncodes;
            uint8_t *d = (uint8_t *)panel + 16 * quad;
            for (int b = 0; b < kpad / block; b++) {
                for (int h = 0; h < 64; h += 16) {
                    int8x16_t c[4][TQ1_CODES];
                    for (int j = 0; j < 4; j++) {
                        uint8x16_t v = in ? vld1q_u8(tb_chunk(w, r + 4 * quad + j, (size_t)b) + h) : vdupq_n_u8(0);
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
                    t[j] = vreinterpretq_u32_f32(in ? load_w4(fmt, w, r + 4 * quad + j, k) : vdupq_n_f32(0.0f));
                transpose4(t);
                for (int m = 0; m < 4; m++) vst1q_f32(d + (size_t)(k + m) * MR, vreinterpretq_f32_u32(t[m]));
            }
        }
    }
}

/* tl rows decoded one by one into u codes (after the panel, in scratch), then
 * interleaved as decode_panel_fmt lays out ternary panels. */
static void decode_panel_tl(const tb_matrix *w, int r, uint8_t *panel) {
    const int kpad = w->kpad;
    uint8_t *rows = panel + (size_t)MR * kpad;
    for (int i = 0; i < MR; i++) {
        if (r + i < w->rows_pad) tb_tl_codes(w, r + i, 0, rows + (size_t)i * kpad);
        else memset(rows + (size_t)i * kpad, 0, (size_t)kpad);
    }
    for (int g = 0; g < kpad / 4; g++)
        for (int i = 0; i < MR; i++) memcpy(panel + ((size_t)g * MR + i) * 4, rows + (size_t)i * kpad + 4 * g, 4);
}

static void decode_panel(const tb_matrix *w, int r, void *panel) {
    switch (w->fmt) {
    case TB_TL1:
    case TB_TL2: decode_panel_tl(w, r, panel); break;
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
static void gemm_float(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    const int kpad = w->kpad, npad = x->npad;
    void *scratch = o->scratch;
    const float *panel = scratch;
    for (int r = r0; r < r1; r += MR) {
        decode_panel(w, r, scratch);
        tb_prefetch_next_panel(w, r, r1, MR);
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

/* ---------------- the read probe ---------------- */

/* Four cache lines into four independent accumulators of 16-byte loads. */
TB_INLINE void read_lines(const uint8_t *p, uint8x16_t a[4]) {
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int h = 0; h < 64; h += 16) a[i] = veorq_u8(a[i], vld1q_u8(p + 64 * i + h));
}

TB_INLINE uint64_t read_result(uint8x16_t a[4]) {
    uint64x2_t r = vreinterpretq_u64_u8(veorq_u8(veorq_u8(a[0], a[1]), veorq_u8(a[2], a[3])));
    return vgetq_lane_u64(r, 0) ^ vgetq_lane_u64(r, 1);
}

static uint64_t read_plain(const uint8_t *p, const uint8_t *end) {
    uint8x16_t a[4] = {vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0)};
    for (; p < end; p += 256) read_lines(p, a);
    return read_result(a);
}

static uint64_t read_prefetch(const uint8_t *p, const uint8_t *end) {
    uint8x16_t a[4] = {vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0)};
    for (; p < end; p += 256) {
        prefetch_group(p, TB_READ_PREFETCH_BYTES);
        read_lines(p, a);
    }
    return read_result(a);
}

/* Four streams a quarter of the range apart, read in step, each prefetching 2 KiB ahead. */
static uint64_t read_four_streams(const uint8_t *p, const uint8_t *end) {
    uint8x16_t a[4] = {vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0)};
    size_t quarter = (size_t)(end - p) / 1024 * 256;
    for (const uint8_t *q = p; q < p + quarter; q += 64)
        for (int s = 0; s < 4; s++) {
            const uint8_t *l = q + s * quarter;
            __builtin_prefetch((const void *)((uintptr_t)l + 2048));
            for (int h = 0; h < 64; h += 16) a[s] = veorq_u8(a[s], vld1q_u8(l + h));
        }
    for (const uint8_t *q = p + 4 * quarter; q < end; q += 256) read_lines(q, a);
    return read_result(a);
}

/* Every table has the same shape; only gemm_ternary differs between the files. */
#define TB_ARM_TABLE                                                                               \
    {                                                                                              \
        .gemv = {[TB_I2S] = gemv_i2s, [TB_TQ1] = gemv_tq1, [TB_F16] = gemv_float, [TB_F32] = gemv_float, \
                 [TB_I8] = gemv_i8, [TB_TL1] = gemv_tl1, [TB_TL2] = gemv_tl2},                      \
        .gemm = {[TB_I2S] = gemm_ternary, [TB_TQ1] = gemm_ternary, [TB_F16] = gemm_float,           \
                 [TB_F32] = gemm_float, [TB_TL1] = gemm_ternary, [TB_TL2] = gemm_ternary},          \
        .dot = dot_f32, .axpy = axpy_f32, .to_half = to_half, .scores_h = scores_h, .mix_h = mix_h,  \
        .read = {read_plain, read_prefetch, read_four_streams},                                    \
    }

#endif

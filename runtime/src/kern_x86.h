/* The x86 kernels, written once against simd_x86.h and compiled four times:
 * avx2 and avxvnni (256-bit), avx512 and avx512vnni (512-bit). Each including file selects
 * the instruction set with a target pragma, defines TB_X86_W, TB_VNNI and
 * TB_SUFFIX (which names every function, so a profiler tells the variants apart),
 * then includes this file and builds its table with TB_X86_TABLE.
 *
 * Integer formats use biased unsigned codes, the u8 operand of u8 x s8 dot
 * products (vpdpbusd with VNNI, else vpmaddubsw into int16 then vpmaddwd):
 *   i2s, tq1: u = w + 1 in {0, 1, 2}, and sum(u q) - sum(q) = sum(w q);
 *   int8 (VNNI): u = w + 128, and sum(u q) - 128 sum(q) = sum(w q);
 *   int8 (no VNNI): |q| times w with q's sign, which never saturates int16 as
 *   long as w > -128 (int8 weights are in [-127, 127]).
 *
 * GEMV reads a row group (TB_GROUP rows interleaved in TB_CHUNK-byte chunks) as
 * one sequential stream, the rows sharing the activation loads, with an optional
 * software prefetch the context's tuning sets. GEMM decodes a panel of
 * TB_GEMM_MR rows once into scratch, then runs an outer-product micro-kernel:
 * TR rows x 2 vectors of tokens of accumulators held in registers, one broadcast
 * weight dword (or float) against token-interleaved activations. */
#include "simd_x86.h"
#include "tb_internal.h"

#if !defined(TB_SUFFIX)
#error "define TB_SUFFIX before including kern_x86.h"
#endif
#define TB_CAT2(a, b) a##_##b
#define TB_CAT(a, b) TB_CAT2(a, b)
#define TB_FN(name) TB_CAT(name, TB_SUFFIX)

/* ---------------- quantisation and float helpers ---------------- */

/* The same float operations as tb_quantise_portable, so results are identical:
 * vcvtps2dq rounds half to even under the default MXCSR, and clamping before
 * rounding gives what rounding before clamping gives on this range. */
static int TB_FN(quantise)(const float *x, int cols, int kpad, int8_t *q, int32_t *sum, float *scale) {
    const vi absmask = vi_set32(0x7fffffff);
    vi amax = vi_zero();
    int k = 0;
    for (; k + VN <= cols; k += VN) amax = vi_max32(amax, vi_and(vf_bits(vf_ld(x + k)), absmask));
    if (k < cols) amax = vi_max32(amax, vi_and(vf_bits(vf_ldn(x + k, cols - k)), absmask));
    int32_t abits = vi_hmax32(amax);
    if (abits >= 0x7f800000) return -1; /* a NaN or an infinity */
    float a;
    memcpy(&a, &abits, 4);
    float s = 127.0f / (a > 1e-5f ? a : 1e-5f);
    const vf vs = vf_set1(s), lo = vf_set1(-128.0f), hi = vf_set1(127.0f);
    vi acc = vi_zero();
    for (k = 0; k < cols; k += VN) {
        int n = cols - k < VN ? cols - k : VN;
        vf v = vf_mul(n == VN ? vf_ld(x + k) : vf_ldn(x + k, n), vs);
        vi qi = vf_round_i32(vf_min(vf_max(v, lo), hi));
        acc = vi_add32(acc, qi);
        vi_stn_i8(q + k, qi, n);
    }
    memset(q + cols, 0, (size_t)(kpad - cols));
    *sum = vi_hsum32(acc);
    *scale = s;
    return 0;
}

/* n floats of b (f32, or IEEE half when `half`), the first m < VN lanes for a tail. */
TB_INLINE vf load_b(const void *b, int i, int m, int half) {
    if (half) return m == VN ? vf_ld_h((const uint16_t *)b + i) : vf_ldn_h((const uint16_t *)b + i, m);
    return m == VN ? vf_ld((const float *)b + i) : vf_ldn((const float *)b + i, m);
}

/* sum a[i] b[i] and y[i] += a x[i], with b and x in float or half; `half` is a constant
 * once inlined into the entry points below and the attention kernels. */
TB_INLINE float dot_any(const float *a, const void *b, int n, int half) {
    vf acc0 = vf_zero(), acc1 = vf_zero();
    int i = 0;
    for (; i + 2 * VN <= n; i += 2 * VN) {
        acc0 = vf_fma(vf_ld(a + i), load_b(b, i, VN, half), acc0);
        acc1 = vf_fma(vf_ld(a + i + VN), load_b(b, i + VN, VN, half), acc1);
    }
    for (; i < n; i += VN) {
        int m = n - i < VN ? n - i : VN;
        acc0 = vf_fma(m == VN ? vf_ld(a + i) : vf_ldn(a + i, m), load_b(b, i, m, half), acc0);
    }
    return vf_hsum(vf_add(acc0, acc1));
}

TB_INLINE void axpy_any(float *y, float a, const void *x, int n, int half) {
    const vf va = vf_set1(a);
    int i = 0;
    for (; i + VN <= n; i += VN) vf_st(y + i, vf_fma(va, load_b(x, i, VN, half), vf_ld(y + i)));
    if (i < n) vf_stn(y + i, vf_fma(va, load_b(x, i, n - i, half), vf_ldn(y + i, n - i)), n - i);
}

static float TB_FN(dot_f32)(const float *a, const float *b, int n) { return dot_any(a, b, n, 0); }
static void TB_FN(axpy_f32)(float *y, float a, const float *x, int n) { axpy_any(y, a, x, n, 0); }

/* Four positions at a time: the query's loads are shared and one transposing
 * reduction replaces four horizontal sums. */
static void TB_FN(scores_h)(const float *q, const uint16_t *k, int len, int d, float scale, float *out) {
    int p = 0;
    for (; p + 4 <= len; p += 4) {
        const uint16_t *k0 = k + (size_t)p * d;
        vf a0 = vf_zero(), a1 = vf_zero(), a2 = vf_zero(), a3 = vf_zero();
        for (int j = 0; j < d; j += VN) {
            int m = d - j < VN ? d - j : VN;
            vf qv = m == VN ? vf_ld(q + j) : vf_ldn(q + j, m);
#define POS(i, a) a = vf_fma(qv, load_b(k0 + (i) * d, j, m, 1), a);
            POS(0, a0) POS(1, a1) POS(2, a2) POS(3, a3)
#undef POS
        }
        _mm_storeu_ps(out + p, _mm_mul_ps(vf_hsum4(a0, a1, a2, a3), _mm_set1_ps(scale)));
    }
    for (; p < len; p++) out[p] = dot_any(q, k + (size_t)p * d, d, 1) * scale;
}

static void TB_FN(mix_h)(float *o, const float *w, const uint16_t *v, int len, int d) {
    for (int j = 0; j < d; j += VN) {
        int m = d - j < VN ? d - j : VN;
        vf acc = m == VN ? vf_ld(o + j) : vf_ldn(o + j, m);
        for (int p = 0; p < len; p++) {
            acc = vf_fma(vf_set1(w[p]), load_b(v + (size_t)p * d, j, m, 1), acc);
        }
        if (m == VN) vf_st(o + j, acc);
        else vf_stn(o + j, acc, m);
    }
}

static void TB_FN(to_half)(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + VN <= n; i += VN) vf_st_h(dst + i, vf_ld(src + i));
    if (i < n) vf_stn_h(dst + i, vf_ldn(src + i, n - i), n - i);
}

/* ---------------- GEMV ---------------- */

/* tq1 codes: trit i of byte q is floor(3 q_i / 256) with q_i = q 3^i mod 256. The
 * kernels work on s_i = q_i - 128, which follows the same recurrence
 * s_{i+1} = 3 s_i mod 256 (3 * 128 = 128 mod 256): two byte adds per step. */
TB_INLINE vi times3(vi s) { return vi_add8(vi_add8(s, s), s); }

/* Per row and chunk, acc[0..NACC) accumulate the format's dot with the chunk's
 * activations q (of its block); `fold` turns a group's accumulators into its four
 * rows' running totals. Segments keep every int32 lane exact (see tq1 and i2s). */
#define SEGMENT 1024 /* chunks */
#define NACC 4

TB_INLINE void chunk_dot(int fmt, vi acc[NACC], const uint8_t *p, const int8_t *q) {
    if (fmt == TB_I2S) {
#if TB_VNNI
        /* field s masked in place is u << 2s (at most 128, still a u8): four accumulators,
         * one per field, each exactly 4^s times its dot product, scaled back in fold() */
#pragma GCC unroll 2
        for (int h = 0; h < TB_CHUNK; h += VB) {
            vi v = vi_ld(p + h);
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++)
                acc[s] = vi_dpbusd(acc[s], vi_and(v, vi_set8(3 << 2 * s)), vi_ld(q + 64 * s + h));
        }
#else
        /* Fields 1 and 3 masked in place, as 4 u: one shift per vector instead of three
         * (13 operations per 32 bytes, not 15). Their products, 4 times the true ones, add
         * up apart and are scaled back exactly once per chunk. int16 lanes: at most 4
         * terms of magnitude <= 512 in sum1, and of <= 2048 in sum4. */
        const vi lo2 = vi_set8(3), hi2 = vi_set8(12);
        vi sum1 = vi_zero(), sum4 = vi_zero();
#pragma GCC unroll 2
        for (int h = 0; h < TB_CHUNK; h += VB) {
            vi v = vi_ld(p + h), v4 = vi_srli16(v, 4);
            sum1 = vi_add16(sum1, vi_maddubs(vi_and(v, lo2), vi_ld(q + h)));
            sum4 = vi_add16(sum4, vi_maddubs(vi_and(v, hi2), vi_ld(q + 64 + h)));
            sum1 = vi_add16(sum1, vi_maddubs(vi_and(v4, lo2), vi_ld(q + 128 + h)));
            sum4 = vi_add16(sum4, vi_maddubs(vi_and(v4, hi2), vi_ld(q + 192 + h)));
        }
        acc[0] = vi_add32(acc[0], vi_madd16(vi_add16(sum1, vi_srai16(sum4, 2)), vi_set16(1)));
#endif
    } else if (fmt == TB_TQ1) {
#if TB_VNNI
        /* 3 q_i = 256 t_i + q_{i+1} exactly, so sum_i t_i x_i = (3 P - Q) / 256 with
         * P = sum_i q_i x_i and Q = sum_i q_{i+1} x_i: two vpdpbusd and two adds per
         * trit, where decoding the trit first costs four more operations. P and Q
         * wrap, but 3 P - Q per lane stays exact while a segment's true sum,
         * 256 x at most 20 x 2 x 128 per chunk, fits in 31 bits: SEGMENT chunks do.
         * 256-bit vectors hold half a chunk, each half with its own pair (acc[2h..]),
         * so that every lane still sums 20 terms per chunk. */
#pragma GCC unroll 2
        for (int h = 0; h < TB_CHUNK; h += VB) {
            vi qi = vi_ld(p + h);
#pragma GCC unroll 5
            for (int i = 0; i < 5; i++) {
                vi qn = times3(qi), x = vi_ld(q + 64 * i + h);
                acc[2 * (h / VB)] = vi_dpbusd(acc[2 * (h / VB)], qi, x);
                acc[2 * (h / VB) + 1] = vi_dpbusd(acc[2 * (h / VB) + 1], qn, x);
                qi = qn;
            }
        }
#else
        vi sum = vi_zero(); /* int16 lanes: at most 10 terms of magnitude <= 512 */
#pragma GCC unroll 2
        for (int h = 0; h < TB_CHUNK; h += VB) {
            vi s = vi_xor(vi_ld(p + h), vi_set8(0x80));
#pragma GCC unroll 5
            for (int i = 0; i < 5; i++) {
                sum = vi_add16(sum, vi_maddubs(vi_trit(s), vi_ld(q + 64 * i + h)));
                s = times3(s);
            }
        }
        acc[0] = vi_add32(acc[0], vi_madd16(sum, vi_set16(1)));
#endif
    } else { /* int8 */
#pragma GCC unroll 2
        for (int h = 0; h < TB_CHUNK; h += VB) {
            vi w = vi_ld(p + h), x = vi_ld(q + h);
#if TB_VNNI
            acc[0] = vi_dpbusd(acc[0], vi_xor(w, vi_set8(0x80)), x);
#else
            acc[h / VB & 1] = vi_add32(acc[h / VB & 1], vi_madd16(vi_maddubs(vi_abs8(x), vi_sign8(w, x)), vi_set16(1)));
#endif
        }
    }
}

/* One vector per row holding its segment's dot product in lanes. */
TB_INLINE vi row_lanes(int fmt, vi acc[NACC]) {
#if TB_VNNI
    if (fmt == TB_TQ1) {
        vi t = vi_srai32(vi_sub32(vi_add32(vi_add32(acc[0], acc[0]), acc[0]), acc[1]), 8);
#if VB == 32
        t = vi_add32(t, vi_srai32(vi_sub32(vi_add32(vi_add32(acc[2], acc[2]), acc[2]), acc[3]), 8));
#endif
        return t;
    }
    if (fmt == TB_I2S) /* per lane at most 64 x 2 x 128 x 4 x SEGMENT (x 2 at 256 bits): exact in int32 */
        return vi_add32(vi_add32(acc[0], vi_srai32(acc[1], 2)), vi_add32(vi_srai32(acc[2], 4), vi_srai32(acc[3], 6)));
#else
    (void)fmt;
#endif
    return vi_add32(acc[0], acc[1]);
}

/* Adds a group's segment into its rows' totals (mod 2^32). */
TB_INLINE void fold(int fmt, vi acc[TB_GROUP][NACC], uint32_t total[TB_GROUP]) {
    uint32_t s[4];
    _mm_storeu_si128((__m128i *)s, vi_hsum32x4(row_lanes(fmt, acc[0]), row_lanes(fmt, acc[1]),
                                                 row_lanes(fmt, acc[2]), row_lanes(fmt, acc[3])));
    for (int i = 0; i < TB_GROUP; i++) total[i] += s[i];
}

/* What the biased codes added, per unit of sum(q). */
TB_INLINE uint32_t bias(int fmt) {
#if TB_VNNI
    return fmt == TB_I8 ? 128u : 1u;
#else
    return fmt == TB_I8 ? 0u : 1u;
#endif
}

TB_INLINE void prefetch_group(const uint8_t *p, size_t ahead) {
#pragma GCC unroll 4
    for (int i = 0; i < TB_GROUP; i++) prefetch_line(p + i * TB_CHUNK, ahead);
}

/* Integer GEMV: fmt is a constant once inlined. Totals are kept modulo 2^32 and
 * the bias removed last: the true dot products fit in int32 by the formats'
 * column limits, whatever the biased partial sums do. */
TB_INLINE void gemv_int(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o, int fmt) {
    int32_t *out = y;
    const int block = fmt == TB_I2S ? TB_I2S_BLOCK : fmt == TB_TQ1 ? TB_TQ1_BLOCK : TB_CHUNK;
    const int nc = (int)(w->row_bytes / TB_CHUNK);
    const size_t pf = (size_t)o->prefetch;
    const uint32_t correction = bias(fmt) * (uint32_t)x->qsum[0];
    for (int r = r0; r < r1; r += TB_GROUP) {
        const uint8_t *p = tb_group(w, r);
        uint32_t total[TB_GROUP] = {0};
        for (int c0 = 0; c0 < nc; c0 += SEGMENT) {
            const int c1 = nc - c0 < SEGMENT ? nc : c0 + SEGMENT;
            vi acc[TB_GROUP][NACC];
#pragma GCC unroll 4
            for (int i = 0; i < TB_GROUP; i++)
#pragma GCC unroll 4
                for (int j = 0; j < NACC; j++) acc[i][j] = vi_zero();
            for (int c = c0; c < c1; c++, p += TB_GROUP * TB_CHUNK) {
                if (pf) prefetch_group(p, pf);
                const int8_t *q = x->q + (size_t)c * block;
#pragma GCC unroll 4
                for (int i = 0; i < TB_GROUP; i++) chunk_dot(fmt, acc[i], p + i * TB_CHUNK, q);
            }
            fold(fmt, acc, total);
        }
        for (int i = 0; i < TB_GROUP && r + i < r1; i++) out[r + i] = (int32_t)(total[i] - correction);
    }
}

/* Float GEMV (f16, f32): a chunk is 32 halves or 16 floats. */
TB_INLINE void gemv_float(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o, int fmt) {
    float *out = y;
    const int per_chunk = fmt == TB_F16 ? TB_CHUNK / 2 : TB_CHUNK / 4;
    const int nc = (int)(w->row_bytes / TB_CHUNK);
    const size_t pf = (size_t)o->prefetch;
    for (int r = r0; r < r1; r += TB_GROUP) {
        const uint8_t *p = tb_group(w, r);
        vf acc[TB_GROUP][2];
#pragma GCC unroll 4
        for (int i = 0; i < TB_GROUP; i++) acc[i][0] = acc[i][1] = vf_zero();
        for (int c = 0; c < nc; c++, p += TB_GROUP * TB_CHUNK) {
            if (pf) prefetch_group(p, pf);
            const float *f = x->f + (size_t)c * per_chunk;
#pragma GCC unroll 4
            for (int i = 0; i < TB_GROUP; i++) {
                const uint8_t *row = p + i * TB_CHUNK;
#pragma GCC unroll 4
                for (int j = 0; j < per_chunk; j += VN) {
                    vf wv = fmt == TB_F16 ? vf_ld_h((const uint16_t *)row + j) : vf_ld((const float *)row + j);
                    acc[i][j / VN & 1] = vf_fma(wv, vf_ld(f + j), acc[i][j / VN & 1]);
                }
            }
        }
        for (int i = 0; i < TB_GROUP && r + i < r1; i++) out[r + i] = vf_hsum(vf_add(acc[i][0], acc[i][1]));
    }
}

static void TB_FN(gemv_i2s)(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_int(w, x, r0, r1, y, o, TB_I2S);
}
static void TB_FN(gemv_tq1)(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_int(w, x, r0, r1, y, o, TB_TQ1);
}
static void TB_FN(gemv_i8)(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_int(w, x, r0, r1, y, o, TB_I8);
}
static void TB_FN(gemv_f16)(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_float(w, x, r0, r1, y, o, TB_F16);
}
static void TB_FN(gemv_f32)(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_float(w, x, r0, r1, y, o, TB_F32);
}

#include "kern_x86_lut.h"

#if TB_X86_W == 512
/* with VBMI, the vpermb versions (kern_x86_avx512*_vbmi.c) */
void TB_CAT(gemv_tl1, TB_CAT(TB_SUFFIX, vbmi))(const tb_matrix *, const tb_act *, int, int, void *, const tb_kopts *);
void TB_CAT(gemv_tl2, TB_CAT(TB_SUFFIX, vbmi))(const tb_matrix *, const tb_act *, int, int, void *, const tb_kopts *);
static void TB_FN(gemv_tl1_any)(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    if (tb_x86_vbmi()) TB_CAT(gemv_tl1, TB_CAT(TB_SUFFIX, vbmi))(w, x, r0, r1, y, o);
    else TB_FN(gemv_tl1)(w, x, r0, r1, y, o);
}
static void TB_FN(gemv_tl2_any)(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    if (tb_x86_vbmi()) TB_CAT(gemv_tl2, TB_CAT(TB_SUFFIX, vbmi))(w, x, r0, r1, y, o);
    else TB_FN(gemv_tl2)(w, x, r0, r1, y, o);
}
void TB_CAT(tl_codes, TB_CAT(TB_SUFFIX, vbmi))(const tb_matrix *, int, uint8_t *);
TB_INLINE void tl_row_codes(const tb_matrix *w, int r, uint8_t *u) {
    if (tb_x86_vbmi()) TB_CAT(tl_codes, TB_CAT(TB_SUFFIX, vbmi))(w, r, u);
    else tb_tl_codes(w, r, 0, u);
}
#define TL_GEMV(f) TB_FN(f##_any)
#else
TB_INLINE void tl_row_codes(const tb_matrix *w, int r, uint8_t *u) { tb_tl_codes(w, r, 0, u); }
#define TL_GEMV(f) TB_FN(f)
#endif

/* ---------------- GEMM ---------------- */

/* Decodes rows [r, r + TB_GEMM_MR) of an integer format into scratch, row-major with
 * stride kpad, as u codes (ternary) or int8. Rows past the padded matrix are zeros and
 * are never read from the matrix; their results are never stored. */
static void TB_FN(decode_panel)(const tb_matrix *w, int r, uint8_t *scratch) {
    const int kpad = w->kpad, fmt = w->fmt, nc = (int)(w->row_bytes / TB_CHUNK);
    for (int i = 0; i < TB_GEMM_MR; i++) {
        uint8_t *d = scratch + (size_t)i * kpad;
        if (r + i >= w->rows_pad) {
            memset(d, 0, (size_t)kpad);
            continue;
        }
        if (tb_is_tl(fmt)) {
            tl_row_codes(w, r + i, d);
            continue;
        }
        for (int c = 0; c < nc; c++) {
            const uint8_t *p = tb_chunk(w, r + i, (size_t)c);
            if (fmt == TB_I2S) {
                for (int h = 0; h < TB_CHUNK; h += VB) {
                    vi v = vi_ld(p + h);
                    for (int s = 0; s < 4; s++)
                        vi_st(d + c * TB_I2S_BLOCK + 64 * s + h, vi_and(vi_srli16(v, 2 * s), vi_set8(3)));
                }
            } else if (fmt == TB_TQ1) {
                for (int h = 0; h < TB_CHUNK; h += VB) {
                    vi s = vi_xor(vi_ld(p + h), vi_set8(0x80));
                    for (int t = 0; t < 5; t++, s = times3(s)) vi_st(d + c * TB_TQ1_BLOCK + 64 * t + h, vi_trit(s));
                }
            } else {
                memcpy(d + (size_t)c * TB_CHUNK, p, TB_CHUNK);
            }
        }
    }
}

/* Micro-kernel tiles: TR rows x NT tokens (two vectors), 2 TR accumulators. */
#if VB == 64
#define TR 12
#define FOR_TR(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#else
#define TR 6
#define FOR_TR(X) X(0) X(1) X(2) X(3) X(4) X(5)
#endif
#define NT (2 * VN)
_Static_assert(TB_GEMM_MR % TR == 0, "a GEMM panel must split into whole tiles");
_Static_assert(TB_NTILE % NT == 0, "token tiles must not read past npad");

/* Without VNNI the tile's products add up in int16 for KC k-groups at a time
 * (each group adds a vpmaddubsw lane in [-512, 508]; 64 of them stay within
 * int16), then widen once: the widening competes with vpmaddubsw for the
 * multiply ports. With VNNI the int32 accumulators take the whole row. */
#if TB_VNNI
#define KC (1 << 30)
#define DSTEP(a, w, x) vi_dpbusd(a, w, x)
#define WIDEN(a) (a)
#else
#define KC 64
#define DSTEP(a, w, x) vi_add16(a, vi_maddubs(w, x))
#define WIDEN(a) vi_madd16(a, vi_set16(1))
#endif

/* out[TR][NT] = TR rows of u codes (stride kpad) times NT tokens over k-groups
 * [g0, g1). Out of line, with named accumulators, and storing rather than adding to
 * `out`, on purpose: inlined, with an array of vectors, or reading `out` back after
 * the loop, GCC 12 keeps a second copy of every accumulator on the stack. */
__attribute__((noinline)) static void TB_FN(tile_int)(const uint8_t *panel, int kpad, const int8_t *xt,
                                                       size_t gstride, int g0, int g1, int32_t out[TR][NT]) {
    vi a[TR][2];
    /* no unroll pragma here: with one, GCC 12 spills half the accumulators of the loop below */
    for (int i = 0; i < TR; i++) a[i][0] = a[i][1] = vi_zero();
    for (int g = g0; g < g1; g++) {
        vi x0 = vi_ld(xt + g * gstride), x1 = vi_ld(xt + g * gstride + VB);
#pragma GCC unroll 12
        for (int i = 0; i < TR; i++) {
            vi wb = vi_bcast32(panel + (size_t)i * kpad + 4 * g);
            a[i][0] = DSTEP(a[i][0], wb, x0);
            a[i][1] = DSTEP(a[i][1], wb, x1);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < TR; i++) {
        vi_st(out[i], WIDEN(a[i][0]));
        vi_st(out[i] + VN, WIDEN(a[i][1]));
    }
}

__attribute__((noinline)) static void TB_FN(tile_float)(const float *panel, int kpad, const float *xt,
                                                         size_t kstride, int kn, float acc[TR][NT]) {
#define DECL(i) vf a##i##0 = vf_zero(), a##i##1 = vf_zero();
    FOR_TR(DECL)
#undef DECL
    for (int k = 0; k < kn; k++) {
        vf x0 = vf_ld(xt + (size_t)k * kstride), x1 = vf_ld(xt + (size_t)k * kstride + VN);
#define STEP(i)                                               \
    {                                                         \
        vf wb = vf_set1(panel[(size_t)(i) * kpad + k]);       \
        a##i##0 = vf_fma(wb, x0, a##i##0);                    \
        a##i##1 = vf_fma(wb, x1, a##i##1);                    \
    }
        FOR_TR(STEP)
#undef STEP
    }
#define STORE(i) vf_st(acc[i], a##i##0); vf_st(acc[i] + VN, a##i##1);
    FOR_TR(STORE)
#undef STORE
}

/* Float weights (f16, f32), blocked along k: all tokens' activations are kpad x npad
 * floats (3.5 MB at 6912 x 128), which no L2 keeps from one panel to the next, so an
 * unblocked loop streamed them from L3 again for every 12 rows (an FFN down projection
 * ran at 2/3 the speed of the other shapes). Per block of KB columns: every panel of
 * the rows, decoded for those columns only, against every token tile, whose KB x NT
 * activations (16 KB) and the tile's TR x KB weights are then in L1; the blocks' partial
 * sums add up in y. */
#define KB 256
/* ... and the block's activations of at most TBLK tokens (128 KB) stay in the L2 (512 KB
 * on Zen 3) for all panels: a longer prompt reads the weights once per TBLK tokens. */
#define TBLK 128
_Static_assert(KB % (TB_CHUNK / 2) == 0, "a k-block must hold whole f16 chunks");
_Static_assert(TBLK % NT == 0, "a token block must hold whole token tiles");

/* floats of a float format's 64-byte chunk */
#define PER_CHUNK(fmt) ((fmt) == TB_F16 ? TB_CHUNK / 2 : TB_CHUNK / 4)

/* Columns [k0, k0 + kn) of rows [r, r + TB_GEMM_MR) into the panel (stride kpad), as floats. */
static void TB_FN(decode_floats)(const tb_matrix *w, int r, int k0, int kn, float *panel) {
    const int per = PER_CHUNK(w->fmt);
    for (int i = 0; i < TB_GEMM_MR; i++) {
        float *row = panel + (size_t)i * w->kpad;
        if (r + i >= w->rows_pad) {
            memset(row + k0, 0, (size_t)kn * sizeof(float));
            continue;
        }
        for (int c = k0 / per; c < (k0 + kn) / per; c++) {
            const uint8_t *p = tb_chunk(w, r + i, (size_t)c);
            if (w->fmt == TB_F16)
                for (int j = 0; j < per; j += VN) vf_st(row + c * per + j, vf_ld_h((const uint16_t *)p + j));
            else
                memcpy(row + c * per, p, TB_CHUNK);
        }
    }
}

static void TB_FN(gemm_float)(const tb_matrix *w, const tb_act *x, int r0, int r1, float *out, const tb_kopts *o) {
    const int kpad = w->kpad, rows = w->rows, n = x->n, per = PER_CHUNK(w->fmt);
    float *panel = (float *)o->scratch;
    for (int tb = 0; tb < n; tb += TBLK) {
        for (int k0 = 0; k0 < kpad; k0 += KB) {
            const int kn = kpad - k0 < KB ? kpad - k0 : KB;
            for (int r = r0; r < r1; r += TB_GEMM_MR) {
                TB_FN(decode_floats)(w, r, k0, kn, panel);
                /* the next panel's columns of this block, into the L2 while this one computes:
                 * in each group of rows they are one run of bytes */
                for (int g = r + TB_GEMM_MR; g < r + 2 * TB_GEMM_MR && g < r1 && g < w->rows_pad; g += TB_GROUP) {
                    const uint8_t *p = tb_chunk(w, g, (size_t)(k0 / per));
                    const size_t bytes = (size_t)(kn / per) * TB_GROUP * TB_CHUNK;
                    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 2);
                }
                for (int t0 = tb; t0 < n && t0 < tb + TBLK; t0 += NT) {
                    const int tn = n - t0 < NT ? n - t0 : NT;
                    for (int h = 0; h < TB_GEMM_MR && r + h < r1; h += TR) {
                        const int nr = r1 - r - h < TR ? r1 - r - h : TR;
                        float acc[TR][NT];
                        TB_FN(tile_float)(panel + (size_t)h * kpad + k0, kpad, x->ft + (size_t)k0 * x->npad + t0,
                                          (size_t)x->npad, kn, acc);
                        for (int l = 0; l < tn; l++) { /* token-major */
                            float *y = out + (size_t)(t0 + l) * rows + r + h;
                            for (int i = 0; i < nr; i++) y[i] = k0 ? y[i] + acc[i][l] : acc[i][l];
                        }
                    }
                }
            }
        }
    }
}
#undef KB
#undef TBLK
#undef PER_CHUNK

/* Integer formats: panels of TB_GEMM_MR rows, decoded once; for every token tile, each
 * TR-row tile of the panel. (Their activations, one byte per value, stay in a 2 MB L2 at
 * 6912 x 128; a smaller L2 would want the float path's blocking too.) */
static void TB_FN(gemm)(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    if (!tb_format_int_act(w->fmt)) {
        TB_FN(gemm_float)(w, x, r0, r1, y, o);
        return;
    }
    const int kpad = w->kpad, rows = w->rows, n = x->n, groups = kpad / 4;
    uint8_t *panel = o->scratch;
    for (int r = r0; r < r1; r += TB_GEMM_MR) {
        TB_FN(decode_panel)(w, r, panel);
        tb_prefetch_next_panel(w, r, r1, TB_GEMM_MR);
        for (int t0 = 0; t0 < n; t0 += NT) {
            const int tn = n - t0 < NT ? n - t0 : NT;
            for (int h = 0; h < TB_GEMM_MR && r + h < r1; h += TR) {
                const uint8_t *tile = panel + (size_t)h * kpad;
                const int nr = r1 - r - h < TR ? r1 - r - h : TR;
                int32_t acc[TR][NT], part[TR][NT];
                int32_t *out = y;
                for (int g0 = 0; g0 < groups; g0 += KC) {
                    TB_FN(tile_int)(tile, kpad, x->qt + (size_t)t0 * 4, (size_t)x->npad * 4, g0,
                                    groups - g0 < KC ? groups : g0 + KC, g0 ? part : acc);
                    if (g0)
                        for (int i = 0; i < TR; i++)
                            for (int l = 0; l < NT; l++) acc[i][l] += part[i][l];
                }
                for (int l = 0; l < tn; l++) /* token-major: contiguous stores */
                    for (int i = 0; i < nr; i++) out[(size_t)(t0 + l) * rows + r + h + i] = acc[i][l] - x->qsum[t0 + l];
            }
        }
    }
}

/* ---------------- the read probe ---------------- */

/* Four cache lines into four independent accumulators, with the widest loads. */
TB_INLINE void read_lines(const uint8_t *p, vi a[4]) {
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 2
        for (int h = 0; h < 64; h += VB) a[i] = vi_xor(a[i], vi_ld(p + 64 * i + h));
}

/* Only a sink that keeps the loads: folded by xor, since an add of arbitrary bytes overflows int. */
TB_INLINE uint64_t read_result(vi a[4]) {
    uint32_t lanes[VB / 4], r = 0;
    vi_st(lanes, vi_xor(vi_xor(a[0], a[1]), vi_xor(a[2], a[3])));
    for (int i = 0; i < VB / 4; i++) r ^= lanes[i];
    return r;
}

static uint64_t TB_FN(read_plain)(const uint8_t *p, const uint8_t *end) {
    vi a[4] = {vi_zero(), vi_zero(), vi_zero(), vi_zero()};
    for (; p < end; p += 256) read_lines(p, a);
    return read_result(a);
}

static uint64_t TB_FN(read_prefetch)(const uint8_t *p, const uint8_t *end) {
    vi a[4] = {vi_zero(), vi_zero(), vi_zero(), vi_zero()};
    for (; p < end; p += 256) {
        prefetch_group(p, TB_READ_PREFETCH_BYTES);
        read_lines(p, a);
    }
    return read_result(a);
}

/* Four streams a quarter of the range apart, read in step, each prefetching 2 KiB ahead. */
static uint64_t TB_FN(read_four_streams)(const uint8_t *p, const uint8_t *end) {
    vi a[4] = {vi_zero(), vi_zero(), vi_zero(), vi_zero()};
    size_t quarter = (size_t)(end - p) / 1024 * 256;
    for (const uint8_t *q = p; q < p + quarter; q += 64)
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            prefetch_line(q + s * quarter, 2048);
#pragma GCC unroll 2
            for (int h = 0; h < 64; h += VB) a[s] = vi_xor(a[s], vi_ld(q + s * quarter + h));
        }
    for (const uint8_t *q = p + 4 * quarter; q < end; q += 256) read_lines(q, a);
    return read_result(a);
}

#define TB_X86_TABLE                                                                                  \
    {                                                                                                 \
        .gemv = {[TB_I2S] = TB_FN(gemv_i2s), [TB_TQ1] = TB_FN(gemv_tq1), [TB_F16] = TB_FN(gemv_f16),   \
                 [TB_F32] = TB_FN(gemv_f32), [TB_I8] = TB_FN(gemv_i8), [TB_TL1] = TL_GEMV(gemv_tl1),     \
                 [TB_TL2] = TL_GEMV(gemv_tl2)},                                                       \
        .gemm = {[TB_I2S] = TB_FN(gemm), [TB_TQ1] = TB_FN(gemm), [TB_F16] = TB_FN(gemm),               \
                 [TB_F32] = TB_FN(gemm), [TB_TL1] = TB_FN(gemm), [TB_TL2] = TB_FN(gemm)},             \
        .quantise = TB_FN(quantise), .tl_lut = TB_FN(tl_lut), .dot = TB_FN(dot_f32), .axpy = TB_FN(axpy_f32),                  \
        .to_half = TB_FN(to_half), .scores_h = TB_FN(scores_h), .mix_h = TB_FN(mix_h),                \
        .read = {TB_FN(read_plain), TB_FN(read_prefetch), TB_FN(read_four_streams)},                  \
    }

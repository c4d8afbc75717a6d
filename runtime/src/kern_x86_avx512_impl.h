/* AVX-512 kernels, included by kern_x86_avx512.c (TB_VNNI 0) and
 * kern_x86_avx512vnni.c (TB_VNNI 1); the including file selects the ISA.
 *
 * Ternary weights are used as biased codes u = w + 1 in {0, 1, 2}: they are the
 * unsigned operand of u8 x s8 dot products (vpdpbusd, or vpmaddubsw without VNNI),
 * and sum(u q) - sum(q) recovers sum(w q) exactly.
 *
 * GEMV streams the packed weights once, four rows at a time sharing activation
 * loads. GEMM decodes a panel of TB_GEMM_MR rows once into scratch, then runs an
 * outer-product micro-kernel: 12 rows x 32 tokens of accumulators in registers,
 * one broadcast weight dword (or float) against token-interleaved activations. */
#include <immintrin.h>
#include <string.h>
#include "tb_internal.h"

#define MR TB_GEMM_MR
/* Software prefetch for GEMV. A cold GEMV walks four interleaved row streams; the
 * hardware prefetchers alone left 20-40% of the read bandwidth unused on Zen 4/5.
 * Each stream prefetches its own future: PF_* bytes ahead in its own row while
 * the row lasts, then in its counterpart row of a later group. (A plain
 * "address + distance" lands in the next row, which another stream is already
 * reading, once rows are longer than the distance.) Tuned on Zen 5. */
#define PF_I2S 2048
#define PF_FLOAT 4096

typedef struct { size_t group_off, row_off, rb; } pf_cursor;

static inline pf_cursor pf_start(size_t rb, size_t ahead) {
    return (pf_cursor){(ahead / rb) * 4 * rb, ahead % rb, rb};
}

/* step <= rb always holds: steps are 64 or 128 bytes and rows are >= 64 bytes. */
static inline void pf_advance(pf_cursor *c, size_t step) {
    c->row_off += step;
    if (c->row_off >= c->rb) {
        c->row_off -= c->rb;
        c->group_off += 4 * c->rb;
    }
}

/* The address usually lies past the end of the matrix: computing it as an integer
 * keeps that defined (forming such a pointer would not be), and prefetching it is harmless. */
static inline void prefetch_row(const uint8_t *row, const pf_cursor *c) {
    _mm_prefetch((const char *)((uintptr_t)row + c->group_off + c->row_off), _MM_HINT_T0);
}

static inline __m512i dot_u8s8(__m512i acc, __m512i u, __m512i s) {
#if TB_VNNI
    return _mm512_dpbusd_epi32(acc, u, s);
#else
    /* |u*s| <= 256 so the pairwise int16 sums cannot saturate */
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}

/* i2s: 64 packed bytes -> the u codes of elements 64s .. 64s+63 of the block. */
static inline __m512i i2s_codes(__m512i v, int s) {
    return _mm512_and_si512(_mm512_srli_epi16(v, 2 * s), _mm512_set1_epi8(3));
}

/* tq1: trit i of q is floor(3 q_i / 256) with q_i = q 3^i mod 256, i.e.
 * [q_i >= 86] + [q_i >= 171]; q_{i+1} = 3 q_i mod 256 is two byte adds. */
static inline void tq1_codes(__m512i q, __m512i t[5]) {
    const __m512i one = _mm512_set1_epi8(1);
    for (int i = 0; i < 5; i++) {
        __mmask64 ge86 = _mm512_cmpge_epu8_mask(q, _mm512_set1_epi8(86));
        __mmask64 ge171 = _mm512_cmpge_epu8_mask(q, _mm512_set1_epi8((char)171));
        __m512i d = _mm512_maskz_mov_epi8(ge86, one);
        t[i] = _mm512_mask_add_epi8(d, ge171, d, one);
        q = _mm512_add_epi8(_mm512_add_epi8(q, q), q);
    }
}

/* Same float operations as tb_quantise_portable, so results are identical:
 * vcvtps2dq rounds half to even under the default MXCSR, and max_ps(v, c)
 * returns c for a NaN v, as the portable clamps do. */
static void quantise(const float *x, int cols, int kpad, int8_t *q, int32_t *sum, float *scale) {
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    __m512i amax = _mm512_setzero_si512();
    for (int k = 0; k < cols; k += 16) {
        __mmask16 m = cols - k >= 16 ? 0xffff : (__mmask16)((1u << (cols - k)) - 1);
        __m512i b = _mm512_and_si512(_mm512_maskz_loadu_epi32(m, x + k), absmask);
        amax = _mm512_max_epi32(amax, b);
    }
    int32_t abits = _mm512_reduce_max_epi32(amax);
    float a;
    memcpy(&a, &abits, 4);
    float s = 127.0f / (a > 1e-5f ? a : 1e-5f);
    const __m512 vs = _mm512_set1_ps(s), lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
    __m512i acc = _mm512_setzero_si512();
    for (int k = 0; k < cols; k += 16) {
        __mmask16 m = cols - k >= 16 ? 0xffff : (__mmask16)((1u << (cols - k)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + k), vs);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        __m512i qi = _mm512_cvtps_epi32(v);
        acc = _mm512_add_epi32(acc, qi);
        _mm512_mask_cvtepi32_storeu_epi8(q + k, m, qi);
    }
    memset(q + cols, 0, (size_t)(kpad - cols));
    *sum = _mm512_reduce_add_epi32(acc);
    *scale = s;
}

static float dot_f32(const float *a, const float *b, int n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

static void axpy_f32(float *y, float a, const float *x, int n) {
    const __m512 va = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static inline int32_t reduce_i32(__m512i a) { return _mm512_reduce_add_epi32(a); }

/* ---------------- GEMV ---------------- */

static void gemv_i2s(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    (void)scratch;
    int32_t *out = y;
    const int nb = w->kpad / TB_I2S_BLOCK;
    const size_t rb = w->row_bytes;
    const int32_t qsum = x->qsum[0];
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        const uint8_t *p = w->data + (size_t)r * rb;
        /* two accumulators per row: halves the dependency chains */
        __m512i a[4][2];
        for (int i = 0; i < 4; i++) a[i][0] = a[i][1] = _mm512_setzero_si512();
        pf_cursor pf = pf_start(rb, PF_I2S);
        for (int b = 0; b < nb; b++, pf_advance(&pf, 64)) {
            const int8_t *q = x->q + (size_t)b * TB_I2S_BLOCK;
            __m512i x0 = _mm512_load_si512(q), x1 = _mm512_load_si512(q + 64);
            __m512i x2 = _mm512_load_si512(q + 128), x3 = _mm512_load_si512(q + 192);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                __m512i v = _mm512_load_si512(p + i * rb + (size_t)b * 64);
                prefetch_row(p + i * rb, &pf);
                a[i][0] = dot_u8s8(a[i][0], i2s_codes(v, 0), x0);
                a[i][1] = dot_u8s8(a[i][1], i2s_codes(v, 1), x1);
                a[i][0] = dot_u8s8(a[i][0], i2s_codes(v, 2), x2);
                a[i][1] = dot_u8s8(a[i][1], i2s_codes(v, 3), x3);
            }
        }
        for (int i = 0; i < 4; i++) out[r + i] = reduce_i32(_mm512_add_epi32(a[i][0], a[i][1])) - qsum;
    }
    for (; r < r1; r++) {
        const uint8_t *p = w->data + (size_t)r * rb;
        __m512i a = _mm512_setzero_si512();
        for (int b = 0; b < nb; b++) {
            const int8_t *q = x->q + (size_t)b * TB_I2S_BLOCK;
            __m512i v = _mm512_load_si512(p + (size_t)b * 64);
            for (int s = 0; s < 4; s++) a = dot_u8s8(a, i2s_codes(v, s), _mm512_load_si512(q + 64 * s));
        }
        out[r] = reduce_i32(a) - qsum;
    }
}

static void gemv_tq1(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    (void)scratch;
    int32_t *out = y;
    const int nb = w->kpad / TB_TQ1_BLOCK;
    const int32_t qsum = x->qsum[0];
    for (int r = r0; r < r1; r++) {
        const uint8_t *p = w->data + (size_t)r * w->row_bytes;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        for (int b = 0; b < nb; b++) {
            const int8_t *q = x->q + (size_t)b * TB_TQ1_BLOCK;
            __m512i t[5];
            tq1_codes(_mm512_load_si512(p + (size_t)b * 64), t);
            a0 = dot_u8s8(a0, t[0], _mm512_load_si512(q));
            a1 = dot_u8s8(a1, t[1], _mm512_load_si512(q + 64));
            a0 = dot_u8s8(a0, t[2], _mm512_load_si512(q + 128));
            a1 = dot_u8s8(a1, t[3], _mm512_load_si512(q + 192));
            a0 = dot_u8s8(a0, t[4], _mm512_load_si512(q + 256));
        }
        out[r] = reduce_i32(_mm512_add_epi32(a0, a1)) - qsum;
    }
}

/* 32 weights of a float-format row as two float vectors. */
static inline void load_w32(int fmt, const uint8_t *row, int k, __m512 *lo, __m512 *hi) {
    if (fmt == TB_F16) {
        __m512i h = _mm512_loadu_si512(row + 2 * (size_t)k);
        *lo = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
        *hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
    } else if (fmt == TB_I8) {
        __m256i b = _mm256_loadu_si256((const __m256i *)(row + k));
        *lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(b)));
        *hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(b, 1)));
    } else {
        *lo = _mm512_loadu_ps((const float *)row + k);
        *hi = _mm512_loadu_ps((const float *)row + k + 16);
    }
}

static inline float row_scale(const tb_matrix *w, int r) { return w->fmt == TB_I8 ? w->row_scale[r] : 1.0f; }

/* f16, f32 and int8 share one loop; fmt is a loop-invariant branch the compiler
 * hoists. int8 rows carry a scale, applied to the finished sum. */
static void gemv_float(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    (void)scratch;
    float *out = y;
    const int kpad = w->kpad, fmt = w->fmt;
    const size_t rb = w->row_bytes;
    const float *f = x->f;
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        const uint8_t *p = w->data + (size_t)r * rb;
        __m512 a[4][2];
        for (int i = 0; i < 4; i++) a[i][0] = a[i][1] = _mm512_setzero_ps();
        const size_t step = fmt == TB_F16 ? 64 : fmt == TB_I8 ? 32 : 128;
        pf_cursor pf = pf_start(rb, PF_FLOAT);
        for (int k = 0; k < kpad; k += 32, pf_advance(&pf, step)) {
            __m512 x0 = _mm512_load_ps(f + k), x1 = _mm512_load_ps(f + k + 16);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                __m512 lo, hi;
                load_w32(fmt, p + i * rb, k, &lo, &hi);
                prefetch_row(p + i * rb, &pf);
                a[i][0] = _mm512_fmadd_ps(lo, x0, a[i][0]);
                a[i][1] = _mm512_fmadd_ps(hi, x1, a[i][1]);
            }
        }
        for (int i = 0; i < 4; i++)
            out[r + i] = _mm512_reduce_add_ps(_mm512_add_ps(a[i][0], a[i][1])) * row_scale(w, r + i);
    }
    for (; r < r1; r++) {
        const uint8_t *p = w->data + (size_t)r * rb;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        for (int k = 0; k < kpad; k += 32) {
            __m512 lo, hi;
            load_w32(fmt, p, k, &lo, &hi);
            a0 = _mm512_fmadd_ps(lo, _mm512_load_ps(f + k), a0);
            a1 = _mm512_fmadd_ps(hi, _mm512_load_ps(f + k + 16), a1);
        }
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * row_scale(w, r);
    }
}

/* ---------------- GEMM ---------------- */

/* Decodes rows [r, r + MR) into scratch as row-major u codes (ternary) or floats;
 * rows past the matrix are zero (their results are never stored). */
static void decode_panel(const tb_matrix *w, int r, void *scratch) {
    const int kpad = w->kpad;
    for (int i = 0; i < MR; i++) {
        const uint8_t *p = w->data + (size_t)(r + i) * w->row_bytes;
        if (r + i >= w->rows) {
            memset((uint8_t *)scratch + (size_t)i * kpad * (tb_format_is_ternary(w->fmt) ? 1 : 4), 0,
                   (size_t)kpad * (tb_format_is_ternary(w->fmt) ? 1 : 4));
            continue;
        }
        if (w->fmt == TB_I2S) {
            uint8_t *d = (uint8_t *)scratch + (size_t)i * kpad;
            for (int b = 0; b < kpad / TB_I2S_BLOCK; b++) {
                __m512i v = _mm512_load_si512(p + (size_t)b * 64);
                for (int s = 0; s < 4; s++) _mm512_storeu_si512(d + b * TB_I2S_BLOCK + 64 * s, i2s_codes(v, s));
            }
        } else if (w->fmt == TB_TQ1) {
            uint8_t *d = (uint8_t *)scratch + (size_t)i * kpad;
            for (int b = 0; b < kpad / TB_TQ1_BLOCK; b++) {
                __m512i t[5];
                tq1_codes(_mm512_load_si512(p + (size_t)b * 64), t);
                for (int s = 0; s < 5; s++) _mm512_storeu_si512(d + b * TB_TQ1_BLOCK + 64 * s, t[s]);
            }
        } else {
            float *d = (float *)scratch + (size_t)i * kpad;
            for (int k = 0; k < kpad; k += 32) {
                __m512 lo, hi;
                load_w32(w->fmt, p, k, &lo, &hi);
                _mm512_storeu_ps(d + k, lo);
                _mm512_storeu_ps(d + k + 16, hi);
            }
        }
    }
}

/* Stores lanes of a 16-token accumulator for the tokens that exist. */
static inline void store_i32(__m512i acc, int32_t *y, int rows, int r, int t0, int n, const int32_t *qsum) {
    int32_t lane[16];
    _mm512_storeu_si512(lane, acc);
    for (int l = 0; l < 16 && t0 + l < n; l++) y[(size_t)(t0 + l) * rows + r] = lane[l] - qsum[t0 + l];
}

static inline void store_f32(__m512 acc, float *y, int rows, int r, int t0, int n) {
    float lane[16];
    _mm512_storeu_ps(lane, acc);
    for (int l = 0; l < 16 && t0 + l < n; l++) y[(size_t)(t0 + l) * rows + r] = lane[l];
}

/* The micro-kernels name their 24 accumulators one by one: GCC keeps an array
 * of vector accumulators on the stack, storing all of them every iteration. */
#define FOR_MR(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

static inline int32_t load_u32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void gemm_ternary(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    const int kpad = w->kpad, npad = x->npad, groups = kpad / 4;
    const uint8_t *panel = scratch;
    for (int r = r0; r < r1; r += MR) {
        decode_panel(w, r, scratch);
        for (int t0 = 0; t0 < x->n; t0 += 32) {
#define DECL(i) __m512i a##i##0 = _mm512_setzero_si512(), a##i##1 = _mm512_setzero_si512();
            FOR_MR(DECL)
#undef DECL
            const int8_t *xt = x->qt + (size_t)t0 * 4;
            for (int g = 0; g < groups; g++) {
                __m512i x0 = _mm512_load_si512(xt + (size_t)g * npad * 4);
                __m512i x1 = _mm512_load_si512(xt + (size_t)g * npad * 4 + 64);
#define STEP(i)                                                                  \
    {                                                                            \
        __m512i wb = _mm512_set1_epi32(load_u32(panel + (size_t)(i) * kpad + 4 * g)); \
        a##i##0 = dot_u8s8(a##i##0, wb, x0);                                     \
        a##i##1 = dot_u8s8(a##i##1, wb, x1);                                     \
    }
                FOR_MR(STEP)
#undef STEP
            }
#define STORE(i)                                                                 \
    if (r + (i) < r1) {                                                          \
        store_i32(a##i##0, y, w->rows, r + (i), t0, x->n, x->qsum);              \
        store_i32(a##i##1, y, w->rows, r + (i), t0 + 16, x->n, x->qsum);         \
    }
            FOR_MR(STORE)
#undef STORE
        }
    }
}

static void gemm_float(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    const int kpad = w->kpad, npad = x->npad;
    for (int r = r0; r < r1; r += MR) {
        /* f32 rows are already a row-major float panel unless this is a short tail */
        const float *panel;
        if (w->fmt == TB_F32 && r + MR <= w->rows) {
            panel = (const float *)(w->data + (size_t)r * w->row_bytes);
        } else {
            decode_panel(w, r, scratch);
            panel = scratch;
        }
        for (int t0 = 0; t0 < x->n; t0 += 32) {
#define DECL(i) __m512 a##i##0 = _mm512_setzero_ps(), a##i##1 = _mm512_setzero_ps();
            FOR_MR(DECL)
#undef DECL
            const float *xt = x->ft + t0;
            for (int k = 0; k < kpad; k++) {
                __m512 x0 = _mm512_load_ps(xt + (size_t)k * npad);
                __m512 x1 = _mm512_load_ps(xt + (size_t)k * npad + 16);
#define STEP(i)                                                      \
    {                                                                \
        __m512 wb = _mm512_set1_ps(panel[(size_t)(i) * kpad + k]);   \
        a##i##0 = _mm512_fmadd_ps(wb, x0, a##i##0);                  \
        a##i##1 = _mm512_fmadd_ps(wb, x1, a##i##1);                  \
    }
                FOR_MR(STEP)
#undef STEP
            }
#define STORE(i)                                                     \
    if (r + (i) < r1) {                                              \
        store_f32(a##i##0, y, w->rows, r + (i), t0, x->n);           \
        store_f32(a##i##1, y, w->rows, r + (i), t0 + 16, x->n);      \
    }
            FOR_MR(STORE)
#undef STORE
        }
    }
}

#define TB_AVX512_TABLE                                                                            \
    {                                                                                              \
        .gemv = {[TB_I2S] = gemv_i2s, [TB_TQ1] = gemv_tq1, [TB_F16] = gemv_float, [TB_F32] = gemv_float, \
                 [TB_I8] = gemv_float},                                                               \
        .gemm = {[TB_I2S] = gemm_ternary, [TB_TQ1] = gemm_ternary, [TB_F16] = gemm_float,           \
                 [TB_F32] = gemm_float},                                                           \
        .quantise = quantise, .dot = dot_f32, .axpy = axpy_f32,                                   \
    }

/* AVX2 kernels (with FMA, and F16C for f16 weights).
 *
 * Ternary weights are used as biased codes u = w + 1 in {0, 1, 2}: the unsigned
 * operand of vpmaddubsw, with sum(u q) - sum(q) = sum(w q) recovered exactly.
 * Without VNNI every u8 x s8 product goes through int16 pair sums (|.| <= 512,
 * never saturating) and a vpmaddwd against ones to widen to int32. Both loops add
 * int16 results up while they provably fit, so that the widening (which competes
 * with vpmaddubsw for the multiply ports) is paid once per 8-10 vpmaddubsw in GEMV
 * and once per 64 in GEMM instead of once per one.
 *
 * GEMV streams the packed weights once, four rows at a time sharing activation
 * loads. GEMM decodes a panel of TB_GEMM_MR rows once into scratch, then runs a
 * 6-row x 16-token outer-product micro-kernel over each half of the panel: 12
 * accumulators, 2 token vectors, a broadcast weight and a temporary are exactly
 * the 16 ymm registers. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx2,fma,f16c")
#endif

#include <immintrin.h>
#include <string.h>
#include "tb_internal.h"

#define GV_ROWS 4   /* GEMV rows sharing one pass over the activations */
#define MR 6        /* GEMM micro-kernel rows */
#define NR 16       /* GEMM micro-kernel tokens: two vectors of 8 dwords or floats */
/* int16 partial sums of a GEMM tile widen once per this many k-groups of 4: each
 * group adds a vpmaddubsw lane in [-512, 508], and 64 of them stay in [-32768, 32512]. */
#define KC 64
/* Software prefetch distance in each GEMV row stream. Borrowed from the AVX-512
 * kernels (tuned on Zen 4/5, where the hardware prefetchers alone left read
 * bandwidth unused with several interleaved row streams); not re-tuned here. */
#define PF_DIST 8192

_Static_assert(TB_GEMM_MR % MR == 0, "a GEMM panel must split into whole micro-kernel tiles");
_Static_assert(TB_NTILE % NR == 0, "token tiles must not read past npad");
_Static_assert(TB_F16_BLOCK % 32 == 0 && TB_F32_BLOCK % 16 == 0,
               "float GEMV reads 64 bytes of each row per step");

static inline __m256i loadu(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* The address is computed as an integer: it usually lies past the end of the
 * matrix, and forming such a pointer would be undefined even though prefetching
 * it is harmless. */
static inline void prefetch_ahead(const uint8_t *p) {
    _mm_prefetch((const char *)((uintptr_t)p + PF_DIST), _MM_HINT_T0);
}

/* 4 bytes (one k-group of a row) to every dword; the load folds into vpbroadcastd. */
static inline __m256i broadcast_u32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

static inline int32_t hsum_i32(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline float hsum_ps(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---------------- ternary decoding ---------------- */

/* i2s: 32 packed bytes at block offset h -> the u codes of elements 64s+h .. 64s+h+31.
 * The 16-bit shift drags bits of the neighbouring byte in, but only above bit 1. */
static inline __m256i i2s_codes(__m256i v, int s) {
    return _mm256_and_si256(_mm256_srli_epi16(v, 2 * s), _mm256_set1_epi8(3));
}

/* tq1: trit i of q is floor(3 q_i / 256) with q_i = q 3^i mod 256, i.e.
 * [q_i >= 86] + [q_i >= 171]. AVX2 only compares bytes as signed, so this works on
 * s_i = q_i - 128, which follows the same recurrence s_{i+1} = 3 s_i mod 256
 * (3 * 128 = 128 mod 256), computed with two byte adds. The compares (-1 for true)
 * are written as 1 + -[q_i < 86] - -[q_i >= 171]: in the form [q_i >= 86], GCC 12
 * rewrites the compare against a negative constant as vpminsb + vpcmpeqb. */
static inline void tq1_codes(__m256i v, __m256i t[5]) {
    __m256i s = _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80));
    for (int i = 0; i < 5; i++) {
        __m256i lt86 = _mm256_cmpgt_epi8(_mm256_set1_epi8(86 - 128), s);
        __m256i ge171 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8(171 - 128 - 1));
        t[i] = _mm256_add_epi8(_mm256_sub_epi8(lt86, ge171), _mm256_set1_epi8(1));
        s = _mm256_add_epi8(_mm256_add_epi8(s, s), s);
    }
}

/* Dot of 32 packed bytes (at block offset h) with the activations of their elements
 * (q = block activations + h), as int16 pair sums: at most 5 x 512 in magnitude. */
static inline __m256i ternary_dot32(int fmt, const uint8_t *p, const int8_t *q) {
    __m256i v = loadu(p);
    if (fmt == TB_I2S) {
        __m256i s = _mm256_maddubs_epi16(i2s_codes(v, 0), loadu(q));
        for (int i = 1; i < 4; i++) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(i2s_codes(v, i), loadu(q + 64 * i)));
        return s;
    }
    __m256i t[5];
    tq1_codes(v, t);
    __m256i s = _mm256_maddubs_epi16(t[0], loadu(q));
    for (int i = 1; i < 5; i++) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(t[i], loadu(q + 64 * i)));
    return s;
}

static inline int ternary_block(int fmt) { return fmt == TB_I2S ? TB_I2S_BLOCK : TB_TQ1_BLOCK; }

/* ---------------- GEMV ---------------- */

/* Rows [r, r + nr) of a ternary GEMV; nr and fmt are constants once inlined. */
static inline void gemv_ternary_rows(const tb_matrix *w, const tb_act *x, int r, int nr, int fmt, int32_t *out) {
    const size_t rb = w->row_bytes;
    const int block = ternary_block(fmt), nb = w->kpad / block;
    const uint8_t *p = w->data + (size_t)r * rb;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[GV_ROWS];
    for (int i = 0; i < nr; i++) acc[i] = _mm256_setzero_si256();
    for (int b = 0; b < nb; b++) {
        const int8_t *q = x->q + (size_t)b * block;
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            const uint8_t *pb = p + i * rb + (size_t)b * 64;
            prefetch_ahead(pb);
            /* both halves of the block sum in int16 (<= 10 x 512) before widening */
            __m256i s = _mm256_add_epi16(ternary_dot32(fmt, pb, q), ternary_dot32(fmt, pb + 32, q + 32));
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(s, ones));
        }
    }
    for (int i = 0; i < nr; i++) out[r + i] = hsum_i32(acc[i]) - x->qsum[0];
}

static inline void gemv_ternary(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, int fmt) {
    int r = r0;
    for (; r + GV_ROWS <= r1; r += GV_ROWS) gemv_ternary_rows(w, x, r, GV_ROWS, fmt, y);
    for (; r < r1; r++) gemv_ternary_rows(w, x, r, 1, fmt, y);
}

/* 16 weights of a float-format row from element k, as two float vectors. */
static inline void load_w16(int fmt, const uint8_t *row, int k, __m256 *lo, __m256 *hi) {
    if (fmt == TB_F16) {
        const uint16_t *h = (const uint16_t *)row + k;
        *lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
        *hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 8)));
    } else if (fmt == TB_I8) {
        __m128i b = _mm_loadu_si128((const __m128i *)(row + k));
        *lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
        *hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
    } else {
        *lo = _mm256_loadu_ps((const float *)row + k);
        *hi = _mm256_loadu_ps((const float *)row + k + 8);
    }
}

/* Rows [r, r + nr) of a float GEMV; each step covers 64 bytes of every row, so
 * one prefetch per row and step touches each cache line once. */
static inline void gemv_float_rows(const tb_matrix *w, const tb_act *x, int r, int nr, int fmt, float *out) {
    const size_t rb = w->row_bytes;
    const int esize = fmt == TB_F16 ? 2 : fmt == TB_I8 ? 1 : 4, step = 64 / esize;
    const uint8_t *p = w->data + (size_t)r * rb;
    const float *f = x->f;
    /* two chains per row: four rows then keep 8 FMAs in flight */
    __m256 acc[GV_ROWS][2];
    for (int i = 0; i < nr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < w->kpad; k += step) {
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            const uint8_t *row = p + i * rb;
            prefetch_ahead(row + (size_t)k * esize);
#pragma GCC unroll 2
            for (int j = 0; j < step; j += 16) {
                __m256 lo, hi;
                load_w16(fmt, row, k + j, &lo, &hi);
                acc[i][0] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(f + k + j), acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(f + k + j + 8), acc[i][1]);
            }
        }
    }
    for (int i = 0; i < nr; i++)  /* int8: the row scale applies to the finished sum */
        out[r + i] = hsum_ps(_mm256_add_ps(acc[i][0], acc[i][1])) * (fmt == TB_I8 ? w->row_scale[r + i] : 1.0f);
}

static inline void gemv_float(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, int fmt) {
    int r = r0;
    for (; r + GV_ROWS <= r1; r += GV_ROWS) gemv_float_rows(w, x, r, GV_ROWS, fmt, y);
    for (; r < r1; r++) gemv_float_rows(w, x, r, 1, fmt, y);
}

/* ---------------- GEMM ---------------- */

/* Decodes rows [r, r + TB_GEMM_MR) into scratch, row-major with stride kpad, as u
 * codes (ternary) or floats; rows past the matrix are zero (never stored). */
static void decode_panel(const tb_matrix *w, int r, uint8_t *scratch) {
    const int kpad = w->kpad, fmt = w->fmt;
    const size_t esize = tb_format_is_ternary(fmt) ? 1 : 4;
    for (int i = 0; i < TB_GEMM_MR; i++) {
        const uint8_t *p = w->data + (size_t)(r + i) * w->row_bytes;
        uint8_t *d = scratch + (size_t)i * kpad * esize;
        if (r + i >= w->rows) {
            memset(d, 0, (size_t)kpad * esize);
        } else if (fmt == TB_I2S) {
            for (int b = 0; b < kpad / TB_I2S_BLOCK; b++)
                for (int h = 0; h < 64; h += 32) {
                    __m256i v = loadu(p + b * 64 + h);
                    for (int s = 0; s < 4; s++)
                        _mm256_storeu_si256((__m256i *)(d + b * TB_I2S_BLOCK + 64 * s + h), i2s_codes(v, s));
                }
        } else if (fmt == TB_TQ1) {
            for (int b = 0; b < kpad / TB_TQ1_BLOCK; b++)
                for (int h = 0; h < 64; h += 32) {
                    __m256i t[5];
                    tq1_codes(loadu(p + b * 64 + h), t);
                    for (int s = 0; s < 5; s++)
                        _mm256_storeu_si256((__m256i *)(d + b * TB_TQ1_BLOCK + 64 * s + h), t[s]);
                }
        } else if (fmt == TB_F16) {
            for (int k = 0; k < kpad; k += 8)
                _mm256_storeu_ps((float *)d + k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * (size_t)k))));
        } else {
            memcpy(d, p, (size_t)kpad * 4);
        }
    }
}

/* Adds k-groups [g0, g1) (at most KC) of MR rows of u codes (stride kpad) times
 * NR tokens (xt: qt from the tile's first token) into acc. Out of line on purpose:
 * inlined into its caller, GCC keeps acc in registers across chunks and spills
 * the int16 accumulators of the hot loop instead. */
__attribute__((noinline)) static void tile_ternary_chunk(const uint8_t *panel, int kpad, const int8_t *xt,
                                                         size_t gstride, int g0, int g1, int32_t acc[MR][NR]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s[MR][2];
    for (int i = 0; i < MR; i++) s[i][0] = s[i][1] = _mm256_setzero_si256();
    for (int g = g0; g < g1; g++) {
        __m256i x0 = loadu(xt + g * gstride), x1 = loadu(xt + g * gstride + 32);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256i wb = broadcast_u32(panel + (size_t)i * kpad + 4 * g);
            s[i][0] = _mm256_add_epi16(s[i][0], _mm256_maddubs_epi16(wb, x0));
            s[i][1] = _mm256_add_epi16(s[i][1], _mm256_maddubs_epi16(wb, x1));
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++) {
            __m256i *a = (__m256i *)&acc[i][8 * v];
            _mm256_storeu_si256(a, _mm256_add_epi32(_mm256_loadu_si256(a), _mm256_madd_epi16(s[i][v], ones)));
        }
}

/* MR rows of u codes (stride kpad) times NR tokens of qt from token t0: the
 * biased dots, not yet corrected by qsum. */
static inline void tile_ternary(const uint8_t *panel, int kpad, const tb_act *x, int t0, int32_t acc[MR][NR]) {
    const int groups = kpad / 4;
    memset(acc, 0, sizeof(int32_t) * MR * NR);
    for (int g0 = 0; g0 < groups; g0 += KC)
        tile_ternary_chunk(panel, kpad, x->qt + (size_t)t0 * 4, (size_t)x->npad * 4, g0,
                           g0 + KC < groups ? g0 + KC : groups, acc);
}

/* MR rows of floats (stride kpad) times NR tokens of ft from token t0. */
static inline void tile_float(const float *panel, int kpad, const tb_act *x, int t0, float acc[MR][NR]) {
    const size_t kstride = (size_t)x->npad;
    const float *xt = x->ft + t0;
    __m256 a[MR][2];
    for (int i = 0; i < MR; i++) a[i][0] = a[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < kpad; k++) {
        __m256 x0 = _mm256_loadu_ps(xt + k * kstride), x1 = _mm256_loadu_ps(xt + k * kstride + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256 wb = _mm256_broadcast_ss(panel + (size_t)i * kpad + k);
            a[i][0] = _mm256_fmadd_ps(wb, x0, a[i][0]);
            a[i][1] = _mm256_fmadd_ps(wb, x1, a[i][1]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        _mm256_storeu_ps(&acc[i][0], a[i][0]);
        _mm256_storeu_ps(&acc[i][8], a[i][1]);
    }
}

/* Panels of TB_GEMM_MR rows; the token tile is the outer loop so that both halves
 * of the panel reuse it from cache. fmt only picks per-panel and per-tile code, so
 * one out-of-line copy for all formats costs nothing in the inner loops. */
static void gemm(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch, int fmt) {
    const int kpad = w->kpad, rows = w->rows, n = x->n, ternary = tb_format_is_ternary(fmt);
    const size_t esize = ternary ? 1 : 4;
    for (int r = r0; r < r1; r += TB_GEMM_MR) {
        /* f32 rows already are a row-major float panel, unless it runs off the matrix */
        const uint8_t *panel = scratch;
        if (fmt == TB_F32 && r + TB_GEMM_MR <= rows)
            panel = w->data + (size_t)r * w->row_bytes;
        else
            decode_panel(w, r, scratch);
        for (int t0 = 0; t0 < n; t0 += NR) {
            const int tn = n - t0 < NR ? n - t0 : NR;
            for (int h = 0; h < TB_GEMM_MR && r + h < r1; h += MR) {
                const uint8_t *tile = panel + (size_t)h * kpad * esize;
                const int nr = r1 - r - h < MR ? r1 - r - h : MR;
                if (ternary) {
                    int32_t acc[MR][NR];
                    int32_t *out = y;
                    tile_ternary(tile, kpad, x, t0, acc);
                    for (int i = 0; i < nr; i++)
                        for (int l = 0; l < tn; l++)
                            out[(size_t)(t0 + l) * rows + r + h + i] = acc[i][l] - x->qsum[t0 + l];
                } else {
                    float acc[MR][NR];
                    float *out = y;
                    tile_float((const float *)tile, kpad, x, t0, acc);
                    for (int i = 0; i < nr; i++)
                        for (int l = 0; l < tn; l++) out[(size_t)(t0 + l) * rows + r + h + i] = acc[i][l];
                }
            }
        }
    }
}

/* ---------------- attention helpers ---------------- */

static float dot_f32(const float *a, const float *b, int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void axpy_f32(float *y, float a, const float *x, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* ---------------- the table ---------------- */

#define ENTRY(name, call)                                                                      \
    static void name(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) { \
        (void)scratch;                                                                         \
        call;                                                                                  \
    }
ENTRY(gemv_i2s, gemv_ternary(w, x, r0, r1, y, TB_I2S))
ENTRY(gemv_tq1, gemv_ternary(w, x, r0, r1, y, TB_TQ1))
ENTRY(gemv_f16, gemv_float(w, x, r0, r1, y, TB_F16))
ENTRY(gemv_f32, gemv_float(w, x, r0, r1, y, TB_F32))
ENTRY(gemv_i8, gemv_float(w, x, r0, r1, y, TB_I8))
ENTRY(gemm_i2s, gemm(w, x, r0, r1, y, scratch, TB_I2S))
ENTRY(gemm_tq1, gemm(w, x, r0, r1, y, scratch, TB_TQ1))
ENTRY(gemm_f16, gemm(w, x, r0, r1, y, scratch, TB_F16))
ENTRY(gemm_f32, gemm(w, x, r0, r1, y, scratch, TB_F32))
#undef ENTRY

const tb_kernels tb_kernels_avx2 = {
    .gemv = {[TB_I2S] = gemv_i2s, [TB_TQ1] = gemv_tq1, [TB_F16] = gemv_f16, [TB_F32] = gemv_f32,
             [TB_I8] = gemv_i8},
    .gemm = {[TB_I2S] = gemm_i2s, [TB_TQ1] = gemm_tq1, [TB_F16] = gemm_f16, [TB_F32] = gemm_f32},
    .dot = dot_f32,
    .axpy = axpy_f32,
};

#if defined(__clang__)
#pragma clang attribute pop
#endif

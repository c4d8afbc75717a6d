/* Reference kernels: portable C, written to be obviously correct rather than
 * fast. Every SIMD variant is tested bit for bit (integer formats) or within a
 * tolerance (float formats) against these. They read the grouped layout one
 * element at a time through tb_chunk. The portable float and half helpers used
 * by attention and norms, where a variant has none of its own, are here too. */
#include <string.h>
#include "tb_internal.h"

/* Exact dot product of row r with int8 activations q (kpad of them). */
static int32_t dot_int(const tb_matrix *w, int r, const int8_t *q) {
    int32_t acc = 0;
    if (tb_is_tl(w->fmt)) { /* the weights themselves, not the tables: the reference checks those */
        int8_t v[TB_TL2_BLOCK];
        int block = tb_format_block(w->fmt);
        for (int s = 0; s < tb_tl_steps(w); s++) {
            tb_tl_decode(w, r, s, v);
            for (int k = 0; k < block; k++) acc += v[k] * q[s * block + k];
        }
        return acc;
    }
    for (int k = 0; k < w->kpad; k++) {
        int v;
        if (w->fmt == TB_I2S) {
            int e = k % TB_I2S_BLOCK;
            v = ((tb_chunk(w, r, (size_t)(k / TB_I2S_BLOCK))[e % 64] >> (2 * (e / 64))) & 3) - 1;
        } else if (w->fmt == TB_TQ1) {
            int e = k % TB_TQ1_BLOCK;
            v = tb_tq1_trit(tb_chunk(w, r, (size_t)(k / TB_TQ1_BLOCK))[e % 64], e / 64) - 1;
        } else { /* int8 */
            v = *(const int8_t *)tb_row_at(w, r, (size_t)k);
        }
        acc += v * q[k];
    }
    return acc;
}

static float dot_float(const tb_matrix *w, int r, const float *x) {
    const float *half = tb_half_table();
    float acc = 0.0f;
    for (int k = 0; k < w->kpad; k++) {
        float v;
        if (w->fmt == TB_F16) {
            uint16_t h;
            memcpy(&h, tb_row_at(w, r, 2 * (size_t)k), 2);
            v = half[h];
        } else {
            memcpy(&v, tb_row_at(w, r, 4 * (size_t)k), 4);
        }
        acc += v * x[k];
    }
    return acc;
}

/* GEMV and GEMM are the same loop here: the reference does not need the
 * interleaved GEMM activation layout. */
static void mm_int(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    (void)o;
    int32_t *out = y;
    for (int t = 0; t < x->n; t++)
        for (int r = r0; r < r1; r++) out[(size_t)t * w->rows + r] = dot_int(w, r, x->q + (size_t)t * x->kpad);
}

static void mm_float(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    (void)o;
    float *out = y;
    for (int t = 0; t < x->n; t++)
        for (int r = r0; r < r1; r++) out[(size_t)t * w->rows + r] = dot_float(w, r, x->f + (size_t)t * x->kpad);
}

/* The read probe in portable C: eight independent accumulators, as in STREAM. One
 * function per pattern rather than a flag inside the loop: the branch changes GCC's
 * code for it. */
#define XOR_LINE(p) a0 ^= (p)[0]; a1 ^= (p)[1]; a2 ^= (p)[2]; a3 ^= (p)[3]; \
                    a4 ^= (p)[4]; a5 ^= (p)[5]; a6 ^= (p)[6]; a7 ^= (p)[7];
#define ACCUMULATORS uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0
#define RESULT (a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7)

static inline void prefetch_at(const void *p, size_t ahead) { __builtin_prefetch((const void *)((uintptr_t)p + ahead)); }

static uint64_t read_plain(const uint8_t *b, const uint8_t *e) {
    ACCUMULATORS;
    for (const uint64_t *p = (const uint64_t *)b; p < (const uint64_t *)e; p += 8) { XOR_LINE(p) }
    return RESULT;
}

static uint64_t read_prefetch(const uint8_t *b, const uint8_t *e) {
    ACCUMULATORS;
    for (const uint64_t *p = (const uint64_t *)b; p < (const uint64_t *)e; p += 8) {
        prefetch_at(p, TB_READ_PREFETCH_BYTES);
        XOR_LINE(p)
    }
    return RESULT;
}

/* Four streams a quarter of the range apart, read in step, each prefetching 2 KiB ahead. */
static uint64_t read_four_streams(const uint8_t *b, const uint8_t *e) {
    ACCUMULATORS;
    size_t quarter = (size_t)(e - b) / 256 * 64; /* whole cache lines */
    for (const uint8_t *q = b; q < b + quarter; q += 64)
        for (int s = 0; s < 4; s++) {
            const uint64_t *p = (const uint64_t *)(q + s * quarter);
            prefetch_at(p, 2048);
            XOR_LINE(p)
        }
    for (const uint64_t *p = (const uint64_t *)(b + 4 * quarter); p < (const uint64_t *)e; p += 8) { XOR_LINE(p) }
    return RESULT;
}

/* Group g's table entry i: digit j of i (base 3, first weight most significant)
 * minus one is the weight met by activation x_j. Unused entries are 0. */
void tb_tl_lut_portable(int fmt, const int8_t *q, int kpad, int8_t *lut) {
    const int gsize = fmt == TB_TL1 ? 2 : 3, entries = fmt == TB_TL1 ? 9 : 14;
    const int steps = kpad / (8 * gsize);
    for (int s = 0; s < steps; s++)
        for (int g = 0; g < 8; g++) {
            const int8_t *x = q + (s * 8 + g) * gsize;
            int8_t *a = lut + (size_t)s * TB_TL_LUT_STEP + 64 * (g / 4) + 16 * (g % 4), *b = a + 128;
            for (int i = 0; i < 16; i++) {
                int sa = 0, sb = 0;
                for (int j = 0; i < entries && j < gsize; j++) {
                    int pow3 = j == gsize - 1 ? 1 : j == gsize - 2 ? 3 : 9;
                    int w = i / pow3 % 3 - 1;
                    int u = x[j] + 128; /* x >> 3 and x & 7 without shifting a negative value */
                    sa += w * ((u >> 3) - 16);
                    sb += w * (u & 7);
                }
                a[i] = (int8_t)sa;
                b[i] = (int8_t)sb;
            }
        }
}

const tb_kernels tb_kernels_scalar = {
    .gemv = {[TB_I2S] = mm_int, [TB_TQ1] = mm_int, [TB_F16] = mm_float, [TB_F32] = mm_float, [TB_I8] = mm_int,
             [TB_TL1] = mm_int, [TB_TL2] = mm_int},
    .gemm = {[TB_I2S] = mm_int, [TB_TQ1] = mm_int, [TB_F16] = mm_float, [TB_F32] = mm_float, [TB_I8] = mm_int,
             [TB_TL1] = mm_int, [TB_TL2] = mm_int},
    .read = {read_plain, read_prefetch, read_four_streams},
};

/* Eight partial sums: a float reduction the compiler may vectorise without
 * -ffast-math (it cannot reorder a single running sum). */
float tb_dot_portable(const float *a, const float *b, int d) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= d; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < d; i++) sum += a[i] * b[i];
    return sum;
}

void tb_axpy_portable(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static float dot_h(const float *a, const uint16_t *b, int d) {
    const float *half = tb_half_table();
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= d; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * half[b[i + j]];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < d; i++) sum += a[i] * half[b[i]];
    return sum;
}

void tb_scores_h_portable(const float *q, const uint16_t *k, int len, int d, float scale, float *out) {
    for (int p = 0; p < len; p++) out[p] = dot_h(q, k + (size_t)p * d, d) * scale;
}

void tb_mix_h_portable(float *o, const float *w, const uint16_t *v, int len, int d) {
    const float *half = tb_half_table();
    for (int p = 0; p < len; p++)
        for (int i = 0; i < d; i++) o[i] += w[p] * half[v[(size_t)p * d + i]];
}

void tb_to_half_portable(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = tb_float_to_half(src[i]);
}

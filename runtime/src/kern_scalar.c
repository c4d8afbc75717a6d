/* Reference kernels: portable C, written to be obviously correct rather than
 * fast. Every SIMD variant is tested bit for bit (integer formats) or within a
 * tolerance (float formats) against these. */
#include <pthread.h>
#include "tb_internal.h"

/* Every half converted once by tb_half_to_float: keeps the reference's f16 loop
 * obviously correct without paying the bit-twiddling per weight. */
static float half_table[65536];
static pthread_once_t half_table_once = PTHREAD_ONCE_INIT;
static void fill_half_table(void) {
    for (unsigned h = 0; h < 65536; h++) half_table[h] = tb_half_to_float((uint16_t)h);
}

static int32_t dot_i2s(const uint8_t *p, const int8_t *q, int kpad) {
    int32_t acc = 0;
    for (int k = 0; k < kpad; k++) {
        int b = k / TB_I2S_BLOCK, e = k % TB_I2S_BLOCK;
        int w = ((p[b * 64 + e % 64] >> (2 * (e / 64))) & 3) - 1;
        acc += w * q[k];
    }
    return acc;
}

static int32_t dot_tq1(const uint8_t *p, const int8_t *q, int kpad) {
    int32_t acc = 0;
    for (int k = 0; k < kpad; k++) {
        int b = k / TB_TQ1_BLOCK, e = k % TB_TQ1_BLOCK;
        int w = tb_tq1_trit(p[b * 64 + e % 64], e / 64) - 1;
        acc += w * q[k];
    }
    return acc;
}

static float dot_f16(const uint8_t *p, const float *x, int kpad) {
    const uint16_t *h = (const uint16_t *)p;
    float acc = 0.0f;
    for (int k = 0; k < kpad; k++) acc += half_table[h[k]] * x[k];
    return acc;
}

static float dot_f32(const uint8_t *p, const float *x, int kpad) {
    const float *w = (const float *)p;
    float acc = 0.0f;
    for (int k = 0; k < kpad; k++) acc += w[k] * x[k];
    return acc;
}

static float dot_i8(const uint8_t *p, const float *x, int kpad) {
    const int8_t *q = (const int8_t *)p;
    float acc = 0.0f;
    for (int k = 0; k < kpad; k++) acc += (float)q[k] * x[k];
    return acc;
}

/* GEMV and GEMM are the same loop here: the reference does not need the
 * interleaved GEMM activation layout. */
static void mm_ternary(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    (void)scratch;
    int32_t *out = y;
    for (int t = 0; t < x->n; t++) {
        const int8_t *q = x->q + (size_t)t * x->kpad;
        for (int r = r0; r < r1; r++) {
            const uint8_t *p = w->data + (size_t)r * w->row_bytes;
            out[(size_t)t * w->rows + r] = w->fmt == TB_I2S ? dot_i2s(p, q, w->kpad) : dot_tq1(p, q, w->kpad);
        }
    }
}

static void mm_float(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, void *scratch) {
    (void)scratch;
    pthread_once(&half_table_once, fill_half_table);
    float *out = y;
    for (int t = 0; t < x->n; t++) {
        const float *f = x->f + (size_t)t * x->kpad;
        for (int r = r0; r < r1; r++) {
            const uint8_t *p = w->data + (size_t)r * w->row_bytes;
            out[(size_t)t * w->rows + r] = w->fmt == TB_F16 ? dot_f16(p, f, w->kpad)
                                         : w->fmt == TB_I8  ? dot_i8(p, f, w->kpad) * w->row_scale[r]
                                                            : dot_f32(p, f, w->kpad);
        }
    }
}

const tb_kernels tb_kernels_scalar = {
    .gemv = {[TB_I2S] = mm_ternary, [TB_TQ1] = mm_ternary, [TB_F16] = mm_float, [TB_F32] = mm_float,
             [TB_I8] = mm_float},
    .gemm = {[TB_I2S] = mm_ternary, [TB_TQ1] = mm_ternary, [TB_F16] = mm_float, [TB_F32] = mm_float,
             [TB_I8] = mm_float},
};

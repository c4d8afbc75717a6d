/* Internal structures shared by the runtime's C files. */
#ifndef TB_INTERNAL_H
#define TB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "tb_api.h"

enum { TB_I2S = 0, TB_TQ1 = 1, TB_F16 = 2, TB_F32 = 3, TB_I8 = 4, TB_NFORMATS = 5 };

/* i2s: blocks of 256 weights in 64 bytes; byte j holds u = w+1 of elements
 * j, j+64, j+128, j+192 in bits 0-1, 2-3, 4-5, 6-7. Shifting a 64-byte (or 32-,
 * 16-byte) load by 2s and masking gives contiguous elements, for any vector width. */
#define TB_I2S_BLOCK 256
/* tq1: blocks of 320 weights in 64 bytes (1.6 bits/weight); byte j holds the trits
 * t_i = w+1 of elements j + 64 i, i = 0..4, as v = sum t_i 3^(4-i), stored as
 * q = ceil(v * 256 / 243) so that trit i = ((uint8)(q * 3^i) * 3) >> 8. */
#define TB_TQ1_BLOCK 320
#define TB_F16_BLOCK 32
#define TB_F32_BLOCK 32
/* int8: one int8 per weight and one float scale per row (the embedding / output head
 * format); activations stay float32. */
#define TB_I8_BLOCK 64

/* GEMM activations are padded to a multiple of this many tokens. */
#define TB_NTILE 32
/* Largest padded column count: keeps every int32 dot product of int8 values
 * (|sum| <= 128 * 2 * cols for the biased i2s/tq1 sums) exact. */
#define TB_MAX_COLS (1 << 22)

struct tb_matrix {
    int fmt;
    int rows, cols, kpad;   /* kpad: cols rounded up to the format block */
    float scale;            /* ternary: the per-matrix scale; float formats: 1 */
    size_t row_bytes;
    size_t nbytes;          /* of data */
    uint8_t *data;          /* 64-byte aligned, rows * row_bytes */
    float *row_scale;       /* int8 only: one scale per row */
};

/* Activations as the kernels see them, prepared once per matmul call. */
typedef struct {
    int n, npad, kpad;
    const int8_t *q;      /* ternary: [n][kpad], per-token int8 */
    const int8_t *qt;     /* ternary GEMM: [kpad/4][npad][4] (token-interleaved dwords) */
    const int32_t *qsum;  /* ternary: [n], sum of q over k */
    const float *f;       /* float formats: [n][kpad] */
    const float *ft;      /* float GEMM: [kpad][npad] */
} tb_act;

/* A kernel computes rows [r0, r1) of y[n][rows] (int32 exact dots for ternary
 * formats, float for float formats). `scratch` holds TB_SCRATCH_BYTES(kpad). */
typedef void (*tb_mm_fn)(const struct tb_matrix *w, const tb_act *x, int r0, int r1,
                         void *y, void *scratch);
#define TB_GEMM_MR 12
#define TB_SCRATCH_BYTES(kpad) ((size_t)TB_GEMM_MR * (size_t)(kpad) * 4 + 4096)

/* Quantises one token: q[0..cols) = clamp(round_half_even(x * s), -128, 127) with
 * s = 127 / max(max|x|, 1e-5), q[cols..kpad) = 0; *sum = sum of q, *scale = s.
 * Every implementation must give identical results (same float operations). */
typedef void (*tb_quant_fn)(const float *x, int cols, int kpad, int8_t *q, int32_t *sum, float *scale);
void tb_quantise_portable(const float *x, int cols, int kpad, int8_t *q, int32_t *sum, float *scale);

/* Float vector helpers for attention and norms: sum a[i] b[i]; y[i] += a x[i]. */
typedef float (*tb_dot_fn)(const float *a, const float *b, int n);
typedef void (*tb_axpy_fn)(float *y, float a, const float *x, int n);
float tb_dot_portable(const float *a, const float *b, int n);
void tb_axpy_portable(float *y, float a, const float *x, int n);

typedef struct {
    tb_mm_fn gemv[TB_NFORMATS];
    tb_mm_fn gemm[TB_NFORMATS];
    tb_quant_fn quantise;  /* NULL: tb_quantise_portable */
    tb_dot_fn dot;         /* NULL: tb_dot_portable */
    tb_axpy_fn axpy;       /* NULL: tb_axpy_portable */
} tb_kernels;

typedef struct {
    const char *name;
    const tb_kernels *kernels;   /* NULL when not compiled for this architecture */
    /* returns 1 if the CPU can run it, else 0 with the missing feature in why */
    int (*supported)(char *why, int why_len);
} tb_variant;

const tb_variant *tb_find_variant(const char *name);

/* Matrices: allocate (data uninitialised), and pack one row of ternary values
 * (float formats store value * scale; ternary formats take the scale from m). */
tb_matrix *tb_matrix_new(int fmt, int rows, int cols);
void tb_pack_ternary_row(tb_matrix *m, int r, const int8_t *src, float scale);
/* Packs rows x cols ternary values into m, or returns the index of the first value
 * outside {-1, 0, +1} (m unchanged) so that each caller can name it in its own terms. */
long tb_fill_ternary(tb_matrix *m, const int8_t *w, float scale);
/* Row r of any format as floats (ternary values times the scale). */
void tb_unpack_float_row(const tb_matrix *m, int r, float *out);
/* Pack one row of float weights into a float format (f16, f32, int8). */
void tb_pack_float_row(tb_matrix *m, int r, const float *src);

/* Per-architecture kernel tables (defined in the matching kern_*.c file). */
extern const tb_kernels tb_kernels_scalar;
extern const tb_kernels tb_kernels_avx2;
extern const tb_kernels tb_kernels_avx512;
extern const tb_kernels tb_kernels_avx512vnni;
extern const tb_kernels tb_kernels_neon;
extern const tb_kernels tb_kernels_dotprod;

/* Errors: a thread-local message read back by tb_last_error(). */
int tb_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tb_clear_error(void);

/* Thread pool. fn(arg, ith, nth) runs on every thread, the caller being ith 0. */
typedef void (*tb_task_fn)(void *arg, int ith, int nth);
typedef struct tb_pool tb_pool;
tb_pool *tb_pool_new(int threads);
void tb_pool_free(tb_pool *p);
void tb_pool_run(tb_pool *p, tb_task_fn fn, void *arg);

struct tb_ctx {
    int threads;
    const tb_variant *variant;
    tb_pool *pool;
    /* per-thread scratch for GEMM row panels */
    void **scratch;
    size_t scratch_bytes;
    /* activation buffers, grown on demand */
    void *act_buf;
    size_t act_bytes;
    void *out_buf;
    size_t out_bytes;
};

void *tb_aligned_alloc(size_t bytes);
void tb_aligned_free(void *p);
/* Grow *buf to at least `bytes` (64-byte aligned); returns 0, or -1 when out of memory. */
int tb_grow(void **buf, size_t *have, size_t bytes);
double tb_now(void);

/* Split `units` work items over nth threads: [*u0, *u1) for thread ith. */
static inline void tb_split(int units, int ith, int nth, int *u0, int *u1) {
    int per = units / nth, extra = units % nth;
    *u0 = ith * per + (ith < extra ? ith : extra);
    *u1 = *u0 + per + (ith < extra ? 1 : 0);
}

/* IEEE half <-> float, portable (no F16C needed). */
float tb_half_to_float(uint16_t h);
uint16_t tb_float_to_half(float f);

/* tq1 trit decoding shared by all variants: trit i of a packed byte. */
static inline int tb_tq1_trit(uint8_t q, int i) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    return (int)(((unsigned)(uint8_t)(q * pow3[i]) * 3u) >> 8);
}

#endif

/* Internal structures shared by the runtime's C files. */
#ifndef TB_INTERNAL_H
#define TB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "tb_api.h"

enum { TB_I2S = 0, TB_TQ1 = 1, TB_F16 = 2, TB_F32 = 3, TB_I8 = 4, TB_TL1 = 5, TB_TL2 = 6, TB_NFORMATS = 7 };

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
/* int8: one int8 in [-127, 127] per weight and one float scale per row (the
 * embedding / output head format). Activations are quantised per token as for
 * the ternary formats (w8a8), so the dot products are exact int32 too. */
#define TB_I8_BLOCK 64

/* Lookup-table formats (tl1, tl2, after bitnet.cpp's TL1/TL2). A group of columns is
 * one 4-bit index into a table of the partial sums of its activations, built once per
 * token and shared by every row:
 *   tl1: groups of 2, index 3 (w0+1) + (w1+1): 9 entries, 2 bits per weight;
 *   tl2: groups of 3, code c = 9 (w0+1) + 3 (w1+1) + (w2+1); negating the weights maps
 *        c to 26 - c, so c <= 13 is stored as index c, sign 0, and c > 13 as index
 *        26 - c, sign 1 (the entry negated): 14 entries, 5 bits per 3 weights.
 * A table look-up reads 16 lanes of one group's table (pshufb, NEON tbl) or 64 lanes
 * of four groups' (vpermb, NEON tbl4), so each look-up vector must hold many rows at
 * one group: rows are stored in blocks of TB_TL_ROWS, not in 4-row groups, in k-steps
 * of 8 groups, and a block is TB_TL_SUBS sub-blocks of 16 rows. In a k-step, byte
 * 4 r + j of sub-block b's 64 bytes holds its row r's group j (low nibble) and group
 * 4 + j (high nibble): a nibble plus 16 j indexes a 64-byte table holding groups
 * j = 0..3. tl2 then has 16 bytes of sign bits per sub-block: 8 whose bit p is the
 * sign of the low nibble of byte p, then 8 for the high nibbles. A k-step of a block
 * is one sequential stream (sub-blocks' indices, then their signs), and one load of a
 * token's tables serves 64 rows: with 16, the table reads (from L2) outnumbered the
 * weight reads four to one and held the GEMV to a third of the read bandwidth.
 * Blocks are grouped in panels of TB_TL_PANEL, stored k-chunk by k-chunk: TB_TL_CHUNK
 * k-steps of the panel's first block, the same k-steps of its second, ..., then the
 * next k-chunk. A GEMV meets each 4 KiB chunk of tables once per panel, so they stay
 * in L1 while 4 blocks stream past them, and the weights are still read in order
 * (read block by block, 74 KB of tables for 6912 columns of tl2 came from L2 for
 * every block). 16 k-steps a chunk, not 64: on Zen 5 tl2's GEMV from memory ran 7%
 * faster (0.87-0.95 of its bytes advantage over i2s became 0.92-1.02, builds
 * alternated; see the README). The last panel of a matrix may hold fewer blocks. A
 * GEMV work unit is one block.
 * Table entries (sum of w_j x_j) reach 384 in tl2, beyond int8, so each table is two:
 * with x = 8 (x >> 3) + (x & 7), A = sum w_j (x_j >> 3) in [-48, 48] and B = sum
 * w_j (x_j & 7) in [-21, 21] are int8 and stay exact when negated, and two look-ups
 * of each (a row's low and high groups) still add up in a byte; kernels add 8 A + B.
 * A token's tables take TB_TL_LUT_STEP bytes per k-step: A of groups 0-3, A of
 * groups 4-7, B of 0-3, B of 4-7, 16 entries per group. */
#define TB_TL_SUBS 4
#define TB_TL_ROWS (16 * TB_TL_SUBS)
#define TB_TL_PANEL 4   /* blocks */
#define TB_TL_CHUNK 16  /* k-steps */
#define TB_TL1_BLOCK 16 /* columns per k-step */
#define TB_TL2_BLOCK 24
#define TB_TL_SUB 64    /* index bytes per k-step of a sub-block */
#define TB_TL2_SIGNS 16 /* sign bytes per k-step of a tl2 sub-block */
#define TB_TL_LUT_STEP 256
int tb_format_row_block(int fmt);
static inline int tb_is_tl(int fmt) { return fmt == TB_TL1 || fmt == TB_TL2; }

/* Memory layout, shared by every format: rows are stored in groups of TB_GROUP,
 * interleaved in chunks of TB_CHUNK bytes (chunk c of rows 4g..4g+3, then chunk
 * c + 1 of the same rows, ...). A GEMV over a group, and a thread over its rows,
 * then reads one sequential stream: some CPUs (Zen 4) lose a third of their read
 * bandwidth to four concurrent row streams. Every format's row is a whole number
 * of chunks, and one chunk is one block of the ternary formats. The row count is
 * padded to a whole group with zero weights. */
#define TB_GROUP 4
#define TB_CHUNK 64

/* GEMM activations are padded to a multiple of this many tokens. */
#define TB_NTILE 32
/* Largest padded column count: keeps every int32 dot product of int8 values
 * (|sum| <= 128 * 2 * cols for the biased i2s/tq1 sums) exact. */
#define TB_MAX_THREADS 1024
#define TB_MAX_COLS (1 << 22)
/* int8 weights reach 127 and the AVX-512 kernels bias them to 255: 65536 columns
 * keep even the biased sums inside int32. */
#define TB_I8_MAX_COLS (1 << 16)
/* Keeps row and group arithmetic (rows + TB_GEMM_MR, rows * formats) in int. */
#define TB_MAX_ROWS (1 << 28)

struct tb_matrix {
    int fmt;
    int rows, cols, kpad;   /* kpad: cols rounded up to the format block */
    int rows_pad;           /* rows rounded up to TB_GROUP */
    float scale;            /* ternary: the per-matrix scale; float formats: 1 */
    size_t row_bytes;       /* bytes of one row, a multiple of TB_CHUNK */
    size_t nbytes;          /* of data: rows_pad * row_bytes */
    uint8_t *data;          /* 64-byte aligned, in the grouped layout above */
    float *row_scale;       /* int8 only: one scale per row (rows_pad, padding 0) */
};

/* Chunk c of row r, and the byte at offset `byte` of row r's packed bytes (an
 * element never straddles two chunks). */
static inline uint8_t *tb_chunk(const struct tb_matrix *m, int r, size_t c) {
    return m->data + (size_t)(r / TB_GROUP) * TB_GROUP * m->row_bytes + c * (TB_GROUP * TB_CHUNK) +
           (size_t)(r % TB_GROUP) * TB_CHUNK;
}
static inline uint8_t *tb_row_at(const struct tb_matrix *m, int r, size_t byte) {
    return tb_chunk(m, r, byte / TB_CHUNK) + byte % TB_CHUNK;
}
/* The first byte of the group holding row r (r a multiple of TB_GROUP). */
static inline const uint8_t *tb_group(const struct tb_matrix *m, int r) {
    return m->data + (size_t)(r / TB_GROUP) * TB_GROUP * m->row_bytes;
}

/* A GEMM decodes a panel of TB_GEMM_MR rows, then computes on it for thousands of
 * cycles: the next panel's weights are asked for then, into the L2, rather than
 * waited for on every load when it is decoded (half of an f16 GEMM's time outside
 * its tiles went there). Rows past r1 or the padded matrix are not touched. */
static inline void tb_prefetch_next_panel(const struct tb_matrix *m, int r, int r1, int mr) {
    int next = r + mr, end = r1 < m->rows_pad ? r1 : m->rows_pad;
    if (next >= end) return;
    int rows = end - next < mr ? end - next : mr;
    size_t bytes = (size_t)((rows + TB_GROUP - 1) / TB_GROUP) * TB_GROUP * m->row_bytes;
    const uint8_t *p = tb_group(m, next);
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 2);
}

/* Activations as the kernels see them, prepared once per matmul call. */
typedef struct {
    int n, npad, kpad;
    const int8_t *q;      /* integer formats: [n][kpad], per-token int8 */
    const int8_t *qt;     /* integer GEMM: [kpad/4][npad][4] (token-interleaved dwords) */
    const int32_t *qsum;  /* integer formats: [n], sum of q over k */
    const float *f;       /* float formats: [n][kpad] */
    const float *ft;      /* float GEMM: [kpad][npad] */
    const int8_t *lut;    /* tl formats, GEMV: [n][kpad / block][TB_TL_LUT_STEP] tables */
} tb_act;

/* What a kernel call needs besides weights and activations. */
typedef struct {
    void *scratch;        /* TB_SCRATCH_BYTES(kpad), this thread's own (GEMM panels) */
    int prefetch;         /* GEMV: software prefetch this many bytes ahead in the stream; 0 = none */
} tb_kopts;

/* A kernel computes rows [r0, r1) of y[n][rows] (int32 exact dots for integer
 * formats, float for float formats). r0 is a multiple of TB_GROUP (GEMV) or of
 * TB_GEMM_MR (GEMM); a kernel may compute rows up to the end of r1's group, which
 * exist (padding), but stores only rows below r1. */
typedef void (*tb_mm_fn)(const struct tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o);
#define TB_GEMM_MR 12
#define TB_SCRATCH_BYTES(kpad) ((size_t)TB_GEMM_MR * (size_t)(kpad) * 4 + 4096)

/* Quantises one token: q[0..cols) = clamp(round_half_even(x * s), -128, 127) with
 * s = 127 / max(max|x|, 1e-5), q[cols..kpad) = 0; *sum = sum of q, *scale = s.
 * Returns -1 (and writes nothing else) when x holds a NaN or an infinity.
 * Every implementation must give identical results (same float operations). */
typedef int (*tb_quant_fn)(const float *x, int cols, int kpad, int8_t *q, int32_t *sum, float *scale);
int tb_quantise_portable(const float *x, int cols, int kpad, int8_t *q, int32_t *sum, float *scale);

/* Float vector helpers for attention and norms: sum a[i] b[i]; y[i] += a x[i]; and
 * float -> half, rounding to nearest even. */
typedef float (*tb_dot_fn)(const float *a, const float *b, int n);
typedef void (*tb_axpy_fn)(float *y, float a, const float *x, int n);
typedef void (*tb_to_half_fn)(uint16_t *dst, const float *src, int n);
/* Attention over one KV head of the f16 cache, whose positions are rows of d halves:
 * out[p] = scale * q . k_p, and o += sum_p w[p] v_p, for p < len. */
typedef void (*tb_scores_h_fn)(const float *q, const uint16_t *k, int len, int d, float scale, float *out);
typedef void (*tb_mix_h_fn)(float *o, const float *w, const uint16_t *v, int len, int d);
float tb_dot_portable(const float *a, const float *b, int n);
void tb_axpy_portable(float *y, float a, const float *x, int n);
void tb_to_half_portable(uint16_t *dst, const float *src, int n);
void tb_scores_h_portable(const float *q, const uint16_t *k, int len, int d, float scale, float *out);
void tb_mix_h_portable(float *o, const float *w, const uint16_t *v, int len, int d);

/* Read probe patterns: XOR-sum [p, end) (4 KiB aligned) and return the sum. */
enum { TB_READ_PLAIN, TB_READ_PREFETCH, TB_READ_FOUR_STREAMS, TB_READ_PATTERNS };
typedef uint64_t (*tb_read_fn)(const uint8_t *p, const uint8_t *end);
#define TB_READ_PREFETCH_BYTES 4096

typedef struct {
    tb_mm_fn gemv[TB_NFORMATS];
    tb_mm_fn gemm[TB_NFORMATS];   /* NULL: the GEMV kernel runs token by token */
    tb_quant_fn quantise;  /* NULL: the portable versions, for this and the ones below */
    void (*tl_lut)(int fmt, const int8_t *q, int kpad, int8_t *lut);
    tb_dot_fn dot;
    tb_axpy_fn axpy;
    tb_to_half_fn to_half;
    tb_scores_h_fn scores_h;
    tb_mix_h_fn mix_h;
    tb_read_fn read[TB_READ_PATTERNS];   /* the bandwidth probe, with this variant's widest loads */
} tb_kernels;

typedef struct {
    const char *name;
    const tb_kernels *kernels;   /* NULL when not compiled for this architecture */
    /* returns 1 if the CPU can run it, else 0 with the missing feature in why */
    int (*supported)(char *why, int why_len);
} tb_variant;

const tb_variant *tb_find_variant(const char *name);
/* x86: the CPU has AVX-512 VBMI (vpermb), which the avx512 variants' tl kernels use.
 * TERNBENCH_NO_VBMI=1 in the environment says no, so that tests reach the pshufb path. */
int tb_x86_vbmi(void);

/* Matrices: allocate (data uninitialised but for padding rows, which hold zero
 * weights), and pack one row of ternary values (float formats store value * scale;
 * ternary formats take the scale from m). */
tb_matrix *tb_matrix_new(int fmt, int rows, int cols);
void tb_pack_ternary_row(tb_matrix *m, int r, const int8_t *src, float scale);
/* Packs rows x cols ternary values into m, or returns the index of the first value
 * outside {-1, 0, +1} (m unchanged) so that each caller can name it in its own terms. */
long tb_fill_ternary(tb_matrix *m, const int8_t *w, float scale);
/* Row r of any format as floats (ternary values times the scale). */
void tb_unpack_float_row(const tb_matrix *m, int r, float *out);
/* Pack one row of float weights into a float format (f16, f32, int8). */
void tb_pack_float_row(tb_matrix *m, int r, const float *src);

/* tl formats: the bytes of one k-step of a block, the k-step count, k-step s of the
 * block holding row r (k-steps of one k-chunk follow each other), and the weights of
 * row r in k-step s (16 or 24, in column order). */
static inline size_t tb_tl_step_bytes(int fmt) { return TB_TL_SUBS * (TB_TL_SUB + (fmt == TB_TL2 ? TB_TL2_SIGNS : 0)); }
static inline int tb_tl_steps(const tb_matrix *m) { return m->kpad / (m->fmt == TB_TL1 ? TB_TL1_BLOCK : TB_TL2_BLOCK); }
static inline uint8_t *tb_tl_step(const tb_matrix *m, int r, int s) {
    const int steps = tb_tl_steps(m), blk = r / TB_TL_ROWS, panel = blk / TB_TL_PANEL, c = s / TB_TL_CHUNK;
    const int left = m->rows_pad / TB_TL_ROWS - panel * TB_TL_PANEL, nb = left < TB_TL_PANEL ? left : TB_TL_PANEL;
    const int cs = steps - c * TB_TL_CHUNK < TB_TL_CHUNK ? steps - c * TB_TL_CHUNK : TB_TL_CHUNK;
    return m->data + (size_t)panel * TB_TL_PANEL * TB_TL_ROWS * m->row_bytes +
           ((size_t)c * nb * TB_TL_CHUNK + (size_t)(blk % TB_TL_PANEL) * cs + s % TB_TL_CHUNK) * tb_tl_step_bytes(m->fmt);
}
/* The end of the rows [r, r1) that share r's panel: a GEMV share starts at any block, and
 * walks its rows panel by panel so each k-chunk of tables serves every block of one. */
static inline int tb_tl_panel_end(int r, int r1) {
    const int end = (r / (TB_TL_ROWS * TB_TL_PANEL) + 1) * TB_TL_ROWS * TB_TL_PANEL;
    return end < r1 ? end : r1;
}
void tb_tl_decode(const tb_matrix *m, int r, int s, int8_t *w);
/* Row r from k-step s0 on as u = w + 1 codes (u: where k-step s0's go): the operand
 * of the integer GEMMs. */
void tb_tl_codes(const tb_matrix *m, int r, int s0, uint8_t *u);
/* A token's tables (TB_TL_LUT_STEP bytes per k-step) from its kpad int8 activations. */
void tb_tl_lut_portable(int fmt, const int8_t *q, int kpad, int8_t *lut);

/* Per-architecture kernel tables (defined in the matching kern_*.c file). */
extern const tb_kernels tb_kernels_scalar;
extern const tb_kernels tb_kernels_avx2;
extern const tb_kernels tb_kernels_avxvnni;
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
/* 0 in the process that created the pool; -1 (with a message) in a forked child,
 * where the pool's worker threads do not exist. */
int tb_pool_usable(const tb_pool *p);

/* Per-format GEMV tuning of a context (see tb_ctx_set_tuning). */
typedef struct { int prefetch, chunk; } tb_tuning;

/* A thread's share of a matmul's work units: claimed from the front by its owner
 * and from the back by idle threads, both packed in one word so a claim is one CAS. */
typedef struct { _Alignas(64) uint64_t range; } tb_share;

struct tb_ctx {
    int threads;
    const tb_variant *variant;
    tb_pool *pool;
    tb_tuning tuning[TB_NFORMATS];
    tb_share *shares;      /* [threads] */
    /* per-thread scratch for GEMM row panels */
    void **scratch;
    size_t scratch_bytes;
    /* activation buffers, grown on demand */
    void *act_buf;
    size_t act_bytes;
    void *out_buf;
    size_t out_bytes;
};

/* Checks that a context can run here (not inherited through fork). */
int tb_ctx_usable(const tb_ctx *c);

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

/* IEEE half <-> float, portable (no F16C needed), and a table of all 65536 halves
 * as floats for the portable loops. */
float tb_half_to_float(uint16_t h);
uint16_t tb_float_to_half(float f);
const float *tb_half_table(void);

/* tq1 trit decoding shared by all variants: trit i of a packed byte. */
static inline int tb_tq1_trit(uint8_t q, int i) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    return (int)(((unsigned)(uint8_t)(q * pow3[i]) * 3u) >> 8);
}

#endif

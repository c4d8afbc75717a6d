/* Contexts and the matmul entry points: validate, prepare activations once per
 * call (quantise, pad, interleave for GEMM), split rows over the pool, scale. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tb_internal.h"

tb_ctx *tb_ctx_new(int threads, const char *variant) {
    tb_clear_error();
    if (threads <= 0) { tb_fail("threads must be at least 1 (got %d)", threads); return NULL; }
    if (threads > 1024) { tb_fail("threads must be at most 1024 (got %d)", threads); return NULL; }
    if (!variant || strcmp(variant, "auto") == 0) variant = tb_variant_best();
    const tb_variant *v = tb_find_variant(variant);
    if (!v) { tb_fail("kernel variant '%s' is not compiled into this build", variant); return NULL; }
    char why[160];
    if (!v->supported(why, sizeof why)) {
        tb_fail("kernel variant '%s' cannot run here: %s", variant, why);
        return NULL;
    }
    tb_ctx *c = calloc(1, sizeof *c);
    if (!c) { tb_fail("out of memory"); return NULL; }
    c->threads = threads;
    c->variant = v;
    c->scratch = calloc((size_t)threads, sizeof(void *));
    c->pool = tb_pool_new(threads);
    if (!c->scratch || !c->pool) {
        tb_fail("could not start %d threads", threads);
        tb_ctx_free(c);
        return NULL;
    }
    return c;
}

void tb_ctx_free(tb_ctx *c) {
    if (!c) return;
    tb_pool_free(c->pool);
    if (c->scratch)
        for (int i = 0; i < c->threads; i++) tb_aligned_free(c->scratch[i]);
    free(c->scratch);
    tb_aligned_free(c->act_buf);
    tb_aligned_free(c->out_buf);
    free(c);
}

int tb_ctx_threads(const tb_ctx *c) { return c->threads; }
const char *tb_ctx_variant(const tb_ctx *c) { return c->variant->name; }

/* ---- activation preparation ---- */

typedef struct {
    const tb_matrix *w;
    const float *x;        /* float input, or NULL for the int8 entry point */
    const int8_t *xi;      /* int8 input */
    int n, cols;
    int interleave;        /* build the GEMM layout (qt / ft): a GEMM kernel will read it */
    tb_act act;
    tb_quant_fn quantise;
    int8_t *q, *qt;
    int32_t *qsum;
    float *f, *ft, *xscale;  /* xscale[t] = 127 / max|x_t| */
} prep_job;

/* Round half to even for |v| < 2^22, without a libm call: adding 1.5 * 2^23
 * leaves no fraction bits, so the FPU's default rounding does the work. This is
 * what keeps quantisation vectorisable (nearbyintf is an opaque call on SSE2). */
static inline float round_even(float v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (v + magic) - magic;
}

/* Per-token absmax int8 quantisation, as BitNet b1.58 trains:
 * q = clamp(round(x * 127 / max|x|), -128, 127), rounding half to even.
 * |x * s| <= 127 by construction (up to rounding of s), inside round_even's range. */
void tb_quantise_portable(const float *x, int cols, int kpad, int8_t *q, int32_t *sum, float *xscale) {
    /* max|x| on the bit patterns: for non-negative floats integer order is float
     * order, and an integer max reduction vectorises where a float one may not
     * (without -ffast-math). A NaN input gives a NaN scale; the clamps below
     * still map it to a defined int8 value rather than an undefined conversion. */
    int32_t abits = 0;
    for (int k = 0; k < cols; k++) {
        int32_t b;
        memcpy(&b, &x[k], 4);
        b &= 0x7fffffff;
        abits = b > abits ? b : abits;
    }
    float amax;
    memcpy(&amax, &abits, 4);
    float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
    int32_t acc = 0;
    for (int k = 0; k < cols; k++) {
        float v = round_even(x[k] * s);
        v = v >= -128.0f ? v : -128.0f;
        v = v <= 127.0f ? v : 127.0f;
        int32_t qi = (int32_t)v;
        q[k] = (int8_t)qi;
        acc += qi;
    }
    memset(q + cols, 0, (size_t)(kpad - cols));
    *sum = acc;
    *xscale = s;
}

static void prep_tokens(void *arg, int ith, int nth) {
    prep_job *j = arg;
    int t0, t1, kpad = j->act.kpad;
    tb_split(j->n, ith, nth, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        if (j->f) {
            float *dst = j->f + (size_t)t * kpad;
            memcpy(dst, j->x + (size_t)t * j->cols, (size_t)j->cols * sizeof(float));
            memset(dst + j->cols, 0, (size_t)(kpad - j->cols) * sizeof(float));
        } else if (j->x) {
            j->quantise(j->x + (size_t)t * j->cols, j->cols, kpad, j->q + (size_t)t * kpad,
                           &j->qsum[t], &j->xscale[t]);
        } else {
            int8_t *dst = j->q + (size_t)t * kpad;
            const int8_t *src = j->xi + (size_t)t * j->cols;
            int32_t acc = 0;
            for (int k = 0; k < j->cols; k++) acc += dst[k] = src[k];
            memset(dst + j->cols, 0, (size_t)(kpad - j->cols));
            j->qsum[t] = acc;
        }
    }
}

/* GEMM layouts: int8 as [k/4][npad][4] (one dword per token), float as [k][npad],
 * so that a SIMD load reads one k step of 16 (or 8) consecutive tokens. */
static void prep_interleave(void *arg, int ith, int nth) {
    prep_job *j = arg;
    int n = j->n, npad = j->act.npad, kpad = j->act.kpad;
    if (j->f) {
        int k0, k1;
        tb_split(kpad, ith, nth, &k0, &k1);
        for (int k = k0; k < k1; k++) {
            float *dst = j->ft + (size_t)k * npad;
            for (int t = 0; t < n; t++) dst[t] = j->f[(size_t)t * kpad + k];
            memset(dst + n, 0, (size_t)(npad - n) * sizeof(float));
        }
    } else {
        int g0, g1;
        tb_split(kpad / 4, ith, nth, &g0, &g1);
        for (int g = g0; g < g1; g++) {
            uint32_t *dst = (uint32_t *)(j->qt + (size_t)g * npad * 4);
            for (int t = 0; t < n; t++) memcpy(&dst[t], j->q + (size_t)t * kpad + 4 * g, 4);
            memset(dst + n, 0, (size_t)(npad - n) * 4);
        }
    }
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

/* Lays out the context's activation buffer for this call and fills it. */
static int prepare(tb_ctx *c, prep_job *j) {
    const tb_matrix *w = j->w;
    int ternary = tb_format_is_ternary(w->fmt);
    int n = j->n, kpad = w->kpad;
    int npad = j->interleave ? (n + TB_NTILE - 1) / TB_NTILE * TB_NTILE : 1;
    size_t elem = ternary ? 1 : sizeof(float);
    size_t rows_b = align64((size_t)n * kpad * elem);
    size_t inter_b = j->interleave ? align64((size_t)npad * kpad * elem) : 0;
    size_t extra_b = ternary ? 2 * align64((size_t)n * 4) : 0;
    if (tb_grow(&c->act_buf, &c->act_bytes, rows_b + inter_b + extra_b) != 0) return -1;
    uint8_t *b = c->act_buf;
    j->act = (tb_act){.n = n, .npad = npad, .kpad = kpad};
    if (ternary) {
        j->q = (int8_t *)b;
        j->qt = j->interleave ? (int8_t *)(b + rows_b) : NULL;
        j->qsum = (int32_t *)(b + rows_b + inter_b);
        j->xscale = (float *)(b + rows_b + inter_b + align64((size_t)n * 4));
        j->f = j->ft = NULL;
        j->act.q = j->q; j->act.qt = j->qt; j->act.qsum = j->qsum;
    } else {
        j->f = (float *)b;
        j->ft = j->interleave ? (float *)(b + rows_b) : NULL;
        j->act.f = j->f; j->act.ft = j->ft;
    }
    tb_pool_run(c->pool, prep_tokens, j);
    if (j->interleave) tb_pool_run(c->pool, prep_interleave, j);
    return 0;
}

/* ---- the matmul itself ---- */

typedef struct {
    tb_ctx *c;
    const tb_matrix *w;
    const tb_act *act;
    tb_mm_fn fn;
    int per_token;       /* no GEMM kernel for this format: run the GEMV kernel token by token */
    int unit;            /* rows per work unit: keeps SIMD row groups whole */
    void *y;             /* kernel output: int32 or float [n][rows] */
    float *yf;           /* ternary float entry point: scaled output */
    const float *xscale;
} mm_job;

static void mm_task(void *arg, int ith, int nth) {
    mm_job *j = arg;
    int rows = j->w->rows, u0, u1;
    int units = (rows + j->unit - 1) / j->unit;
    tb_split(units, ith, nth, &u0, &u1);
    int r0 = u0 * j->unit, r1 = u1 * j->unit < rows ? u1 * j->unit : rows;
    if (r0 >= r1) return;
    if (j->per_token) { /* float formats only: the int8 head has no GEMM kernel of its own */
        for (int t = 0; t < j->act->n; t++) {
            tb_act one = {.n = 1, .npad = 1, .kpad = j->act->kpad, .f = j->act->f + (size_t)t * j->act->kpad};
            j->fn(j->w, &one, r0, r1, (float *)j->y + (size_t)t * rows, j->c->scratch[ith]);
        }
    } else {
        j->fn(j->w, j->act, r0, r1, j->y, j->c->scratch[ith]);
    }
    if (j->yf) { /* dequantise: one float multiply per output */
        for (int t = 0; t < j->act->n; t++) {
            float s = j->w->scale / j->xscale[t];
            const int32_t *src = (const int32_t *)j->y + (size_t)t * rows;
            float *dst = j->yf + (size_t)t * rows;
            for (int r = r0; r < r1; r++) dst[r] = (float)src[r] * s;
        }
    }
}

static int check_call(tb_ctx *c, const tb_matrix *w, const void *x, int n, const void *y) {
    if (!c) return tb_fail("matmul: context is NULL");
    if (!w) return tb_fail("matmul: matrix is NULL");
    if (!x || !y) return tb_fail("matmul: input or output pointer is NULL");
    if (n <= 0) return tb_fail("matmul: the number of tokens must be at least 1 (got %d)", n);
    if (n > (1 << 20)) return tb_fail("matmul: %d tokens in one call is more than supported (2^20)", n);
    return 0;
}

static int run(tb_ctx *c, const tb_matrix *w, prep_job *j, void *y, float *yf) {
    const tb_kernels *k = c->variant->kernels;
    tb_mm_fn fn = j->n == 1 ? k->gemv[w->fmt] : k->gemm[w->fmt];
    int per_token = 0;
    if (!fn && j->n > 1 && !tb_format_is_ternary(w->fmt) && k->gemv[w->fmt]) {
        fn = k->gemv[w->fmt];
        per_token = 1;
    }
    if (!fn) return tb_fail("variant '%s' has no %s kernel for format %s", c->variant->name,
                            j->n == 1 ? "GEMV" : "GEMM", tb_format_name(w->fmt));
    size_t need = TB_SCRATCH_BYTES(w->kpad);
    if (c->scratch_bytes < need) {
        for (int i = 0; i < c->threads; i++) {
            tb_aligned_free(c->scratch[i]);
            c->scratch[i] = tb_aligned_alloc(need);
            if (!c->scratch[i]) { c->scratch_bytes = 0; return tb_fail("out of memory for scratch"); }
        }
        c->scratch_bytes = need;
    }
    j->quantise = k->quantise ? k->quantise : tb_quantise_portable;
    j->interleave = j->n > 1 && !per_token;
    if (prepare(c, j) != 0) return -1;
    mm_job m = {c, w, &j->act, fn, per_token, j->n == 1 || per_token ? 4 : TB_GEMM_MR, y, yf, j->xscale};
    tb_pool_run(c->pool, mm_task, &m);
    return 0;
}

int tb_matmul(tb_ctx *c, const tb_matrix *w, const float *x, int n, float *y) {
    tb_clear_error();
    if (check_call(c, w, x, n, y)) return -1;
    prep_job j = {.w = w, .x = x, .n = n, .cols = w->cols};
    if (!tb_format_is_ternary(w->fmt)) return run(c, w, &j, y, NULL);
    if (tb_grow(&c->out_buf, &c->out_bytes, (size_t)n * w->rows * sizeof(int32_t))) return -1;
    return run(c, w, &j, c->out_buf, y);
}

int tb_matmul_i8(tb_ctx *c, const tb_matrix *w, const signed char *x, int n, int *y) {
    tb_clear_error();
    if (check_call(c, w, x, n, y)) return -1;
    if (!tb_format_is_ternary(w->fmt))
        return tb_fail("integer matmul needs a ternary format; %s is a float format", tb_format_name(w->fmt));
    prep_job j = {.w = w, .xi = (const int8_t *)x, .n = n, .cols = w->cols};
    return run(c, w, &j, y, NULL);
}

/* ---- benchmark loops ---- */

int tb_bench_matmul(tb_ctx *c, const tb_matrix **mats, int count, int n, int calls, double *seconds) {
    tb_clear_error();
    if (!c || !mats || !seconds || count <= 0 || calls <= 0 || n <= 0)
        return tb_fail("bench: invalid arguments (count %d, calls %d, n %d)", count, calls, n);
    int rows = mats[0]->rows, cols = mats[0]->cols;
    for (int i = 1; i < count; i++)
        if (mats[i]->rows != rows || mats[i]->cols != cols || mats[i]->fmt != mats[0]->fmt)
            return tb_fail("bench: all matrices must share one shape and format");
    float *x = malloc((size_t)n * cols * sizeof(float));
    float *y = malloc((size_t)n * rows * sizeof(float));
    if (!x || !y) { free(x); free(y); return tb_fail("bench: out of memory"); }
    uint32_t state = 12345u;
    for (size_t i = 0; i < (size_t)n * cols; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = (float)((int)(state >> 9) - (1 << 22)) / (float)(1 << 22);
    }
    int rc = 0;
    for (int i = 0; i < calls && rc == 0; i++) {
        double t0 = tb_now();
        rc = tb_matmul(c, mats[i % count], x, n, y);
        seconds[i] = tb_now() - t0;
    }
    free(x);
    free(y);
    return rc;
}

/* The probe must not be a weaker reader than the kernels it judges, and which
 * access pattern reads fastest differs between machines and thread counts (Zen 5
 * under KVM: software prefetch +18% at 1 thread, -25% at 2; four interleaved
 * prefetched streams, the GEMV pattern, best at 2). Each pass times every
 * pattern and keeps the fastest. */
enum { READ_PLAIN, READ_PREFETCH, READ_FOUR_STREAMS, READ_PATTERNS };

typedef struct { const uint64_t *buf; size_t words; int pattern; uint64_t sink[64]; } bw_job;

/* Eight independent accumulators, as in STREAM. One function per pattern rather
 * than a flag inside the loop: the branch changes GCC's code for it. */
#define XOR_LINE(p) a0 ^= (p)[0]; a1 ^= (p)[1]; a2 ^= (p)[2]; a3 ^= (p)[3]; \
                    a4 ^= (p)[4]; a5 ^= (p)[5]; a6 ^= (p)[6]; a7 ^= (p)[7];
#define ACCUMULATORS uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0
#define RESULT (a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7)

static inline void prefetch_at(const uint64_t *p, size_t ahead) {
    __builtin_prefetch((const void *)((uintptr_t)p + ahead));
}

static uint64_t read_plain(const uint64_t *p, const uint64_t *end) {
    ACCUMULATORS;
    for (; p < end; p += 8) { XOR_LINE(p) }
    return RESULT;
}

static uint64_t read_prefetch(const uint64_t *p, const uint64_t *end) {
    ACCUMULATORS;
    for (; p < end; p += 8) {
        prefetch_at(p, 8192);
        XOR_LINE(p)
    }
    return RESULT;
}

/* Four streams a quarter of the range apart, read in step, each prefetching 2 KiB
 * of its own future: the access pattern of the GEMV kernels. */
static uint64_t read_four_streams(const uint64_t *p, const uint64_t *end) {
    ACCUMULATORS;
    size_t quarter = (size_t)(end - p) / 32 * 8; /* whole cache lines */
    for (const uint64_t *q = p; q < p + quarter; q += 8) {
        for (int s = 0; s < 4; s++) {
            prefetch_at(q + s * quarter, 2048);
            XOR_LINE(q + s * quarter)
        }
    }
    for (const uint64_t *q = p + 4 * quarter; q < end; q += 8) { XOR_LINE(q) }
    return RESULT;
}

static void bw_task(void *arg, int ith, int nth) {
    bw_job *j = arg;
    int c0, c1; /* split in 4 KiB chunks so every thread streams whole pages */
    int chunks = (int)(j->words / 512);
    tb_split(chunks, ith, nth, &c0, &c1);
    const uint64_t *p = j->buf + (size_t)c0 * 512, *end = j->buf + (size_t)c1 * 512;
    uint64_t r = j->pattern == READ_PLAIN      ? read_plain(p, end)
               : j->pattern == READ_PREFETCH   ? read_prefetch(p, end)
                                               : read_four_streams(p, end);
    j->sink[ith % 64] = r;
}

typedef struct { uint64_t *buf; size_t words; } fill_job;
static void fill_task(void *arg, int ith, int nth) {
    fill_job *j = arg;
    int c0, c1, chunks = (int)(j->words / 512);
    tb_split(chunks, ith, nth, &c0, &c1);
    for (size_t i = (size_t)c0 * 512; i < (size_t)c1 * 512; i++) j->buf[i] = i * 0x9E3779B97F4A7C15ull;
}

int tb_bench_read_bandwidth(tb_ctx *c, size_t bytes, int passes, double *gbps) {
    tb_clear_error();
    if (!c || !gbps || passes <= 0) return tb_fail("bandwidth: invalid arguments");
    if (bytes < (1u << 20)) return tb_fail("bandwidth: buffer of %zu bytes is too small (min 1 MiB)", bytes);
    size_t words = bytes / 4096 * 512;
    if (words / 512 > (size_t)INT32_MAX) return tb_fail("bandwidth: buffer too large");
    uint64_t *buf = tb_aligned_alloc(words * 8);
    if (!buf) return tb_fail("bandwidth: out of memory allocating %zu bytes", words * 8);
    /* first touch by the pool's own threads, so pages are local to them */
    fill_job f = {buf, words};
    tb_pool_run(c->pool, fill_task, &f);
    bw_job j = {.buf = buf, .words = words};
    for (int p = 0; p < passes; p++) {
        double best = 0;
        for (j.pattern = 0; j.pattern < READ_PATTERNS; j.pattern++) {
            double t0 = tb_now();
            tb_pool_run(c->pool, bw_task, &j);
            double g = (double)(words * 8) / (tb_now() - t0) / 1e9;
            best = g > best ? g : best;
        }
        gbps[p] = best;
    }
    tb_aligned_free(buf);
    return 0;
}

/* Contexts and the matmul entry points: validate, prepare activations once per
 * call (quantise, pad, interleave for GEMM), share row groups between the
 * threads, dequantise. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tb_internal.h"

/* Defaults until a context is tuned (runtime/tuning.py measures and sets them):
 * no software prefetch, which only a measurement on the running CPU may add, and
 * claims of 256 KiB of weights: long sequential runs, with stealing near the end. */
#define DEFAULT_PREFETCH 0
#define DEFAULT_CHUNK (256 << 10)
#define MAX_PREFETCH (1 << 16)
#define MAX_MANY 16

int tb_max_threads(void) { return TB_MAX_THREADS; }

tb_ctx *tb_ctx_new(int threads, const char *variant) {
    tb_clear_error();
    if (threads <= 0) { tb_fail("threads must be at least 1 (got %d)", threads); return NULL; }
    if (threads > TB_MAX_THREADS) { tb_fail("threads must be at most %d (got %d)", TB_MAX_THREADS, threads); return NULL; }
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
    for (int f = 0; f < TB_NFORMATS; f++) c->tuning[f] = (tb_tuning){DEFAULT_PREFETCH, DEFAULT_CHUNK};
    c->scratch = calloc((size_t)threads, sizeof(void *));
    c->shares = tb_aligned_alloc((size_t)threads * sizeof(tb_share));
    c->pool = tb_pool_new(threads);
    if (!c->scratch || !c->shares || !c->pool) {
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
    tb_aligned_free(c->shares);
    tb_aligned_free(c->act_buf);
    tb_aligned_free(c->out_buf);
    free(c);
}

int tb_ctx_threads(const tb_ctx *c) { return c->threads; }
const char *tb_ctx_variant(const tb_ctx *c) { return c->variant->name; }
int tb_ctx_usable(const tb_ctx *c) { return tb_pool_usable(c->pool); }

int tb_ctx_set_tuning(tb_ctx *c, int fmt, int prefetch, int chunk) {
    tb_clear_error();
    if (!c) return tb_fail("tuning: context is NULL");
    if (fmt < 0 || fmt >= TB_NFORMATS) return tb_fail("tuning: unknown weight format id %d", fmt);
    if (prefetch < 0 || prefetch > MAX_PREFETCH || prefetch % 64)
        return tb_fail("tuning: the prefetch distance must be a multiple of 64 bytes in [0, %d] (got %d)",
                       MAX_PREFETCH, prefetch);
    if (chunk < 0) return tb_fail("tuning: the claim size must be 0 (an equal split) or positive (got %d)", chunk);
    c->tuning[fmt] = (tb_tuning){prefetch, chunk};
    return 0;
}

int tb_ctx_get_tuning(const tb_ctx *c, int fmt, int *prefetch, int *chunk) {
    tb_clear_error();
    if (!c || !prefetch || !chunk) return tb_fail("tuning: NULL argument");
    if (fmt < 0 || fmt >= TB_NFORMATS) return tb_fail("tuning: unknown weight format id %d", fmt);
    *prefetch = c->tuning[fmt].prefetch;
    *chunk = c->tuning[fmt].chunk;
    return 0;
}

/* ---- activation preparation ---- */

typedef struct {
    int fmt, cols, kpad;
    const float *x;        /* float input, or NULL for the int8 entry point */
    const int8_t *xi;      /* int8 input */
    int n;
    int interleave;        /* build the GEMM layout (qt / ft): a GEMM kernel will read it */
    tb_act act;
    tb_quant_fn quantise;
    /* tl formats under a GEMV kernel: each token's tables, built once for every row */
    void (*tl_lut)(int fmt, const int8_t *q, int kpad, int8_t *lut);
    int8_t *q, *qt, *lut;
    int32_t *qsum;
    float *f, *ft, *xscale;  /* xscale[t] = 127 / max|x_t| */
    int bad;                 /* some token holds a NaN or an infinity */
} prep_job;

/* Round half to even for |v| < 2^22, without a libm call: adding 1.5 * 2^23
 * leaves no fraction bits, so the FPU's default rounding does the work. This is
 * what keeps quantisation vectorisable (nearbyintf is an opaque call on SSE2). */
static inline float round_even(float v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (v + magic) - magic;
}

static int bits_non_finite(uint32_t b) { return (b & 0x7f800000u) == 0x7f800000u; }

/* Per-token absmax int8 quantisation, as BitNet b1.58 trains:
 * q = clamp(round(x * 127 / max|x|), -128, 127), rounding half to even.
 * |x * s| <= 127 by construction (up to rounding of s), inside round_even's range. */
int tb_quantise_portable(const float *x, int cols, int kpad, int8_t *q, int32_t *sum, float *xscale) {
    /* max|x| on the bit patterns: for non-negative floats integer order is float
     * order, an integer max reduction vectorises where a float one may not (without
     * -ffast-math), and a NaN or infinity is the largest pattern of all. */
    uint32_t abits = 0;
    for (int k = 0; k < cols; k++) {
        uint32_t b;
        memcpy(&b, &x[k], 4);
        b &= 0x7fffffffu;
        abits = b > abits ? b : abits;
    }
    if (abits >= 0x7f800000u) return -1;
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
    return 0;
}

/* Copies a token into the padded float buffer; returns 1 when it holds a NaN or an infinity. */
static int copy_checked(float *dst, const float *src, int cols, int kpad) {
    uint32_t bad = 0;
    for (int k = 0; k < cols; k++) {
        uint32_t b;
        memcpy(&b, &src[k], 4);
        bad |= (uint32_t)bits_non_finite(b);
        dst[k] = src[k];
    }
    memset(dst + cols, 0, (size_t)(kpad - cols) * sizeof(float));
    return bad != 0;
}

static void prep_range(prep_job *j, int t0, int t1) {
    int kpad = j->kpad;
    for (int t = t0; t < t1; t++) {
        int bad = 0;
        if (j->f) {
            bad = copy_checked(j->f + (size_t)t * kpad, j->x + (size_t)t * j->cols, j->cols, kpad);
        } else if (j->x) {
            bad = j->quantise(j->x + (size_t)t * j->cols, j->cols, kpad, j->q + (size_t)t * kpad, &j->qsum[t],
                              &j->xscale[t]) != 0;
        } else {
            int8_t *dst = j->q + (size_t)t * kpad;
            const int8_t *src = j->xi + (size_t)t * j->cols;
            int32_t acc = 0;
            for (int k = 0; k < j->cols; k++) acc += dst[k] = src[k];
            memset(dst + j->cols, 0, (size_t)(kpad - j->cols));
            j->qsum[t] = acc;
        }
        if (bad) __atomic_store_n(&j->bad, 1, __ATOMIC_RELAXED);
        else if (j->lut)
            j->tl_lut(j->fmt, j->q + (size_t)t * kpad, kpad, j->lut + (size_t)t * (kpad / tb_format_block(j->fmt)) * TB_TL_LUT_STEP);
    }
}

static void prep_tokens(void *arg, int ith, int nth) {
    prep_job *j = arg;
    int t0, t1;
    tb_split(j->n, ith, nth, &t0, &t1);
    prep_range(j, t0, t1);
}

/* GEMM layouts: int8 as [k/4][npad][4] (one dword per token), float as [k][npad],
 * so that a SIMD load reads one k step of 16 (or 8) consecutive tokens. */
static void prep_interleave(void *arg, int ith, int nth) {
    prep_job *j = arg;
    int n = j->n, npad = j->act.npad, kpad = j->kpad;
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

/* Lays out the context's activation buffer for this call and fills it; fails,
 * naming the token and column, on a NaN or an infinity in the input. */
static int prepare(tb_ctx *c, prep_job *j) {
    int integer = tb_format_int_act(j->fmt);
    int n = j->n, kpad = j->kpad;
    int npad = j->interleave ? (n + TB_NTILE - 1) / TB_NTILE * TB_NTILE : 1;
    size_t elem = integer ? 1 : sizeof(float);
    /* 64 bytes of slack: the tl table builders load whole vectors around a k-step's activations */
    size_t rows_b = align64((size_t)n * kpad * elem) + 64;
    size_t inter_b = j->interleave ? align64((size_t)npad * kpad * elem) : 0;
    size_t extra_b = integer ? 2 * align64((size_t)n * 4) : 0;
    int tables = tb_is_tl(j->fmt) && !j->interleave;
    size_t lut_b = tables ? (size_t)n * (size_t)(kpad / tb_format_block(j->fmt)) * TB_TL_LUT_STEP : 0;
    if (tb_grow(&c->act_buf, &c->act_bytes, rows_b + inter_b + extra_b + lut_b) != 0) return -1;
    uint8_t *b = c->act_buf;
    j->act = (tb_act){.n = n, .npad = npad, .kpad = kpad};
    if (integer) {
        j->q = (int8_t *)b;
        j->qt = j->interleave ? (int8_t *)(b + rows_b) : NULL;
        j->qsum = (int32_t *)(b + rows_b + inter_b);
        j->xscale = (float *)(b + rows_b + inter_b + align64((size_t)n * 4));
        j->f = j->ft = NULL;
        j->lut = tables ? (int8_t *)(b + rows_b + inter_b + extra_b) : NULL;
        j->act.q = j->q; j->act.qt = j->qt; j->act.qsum = j->qsum; j->act.lut = j->lut;
    } else {
        j->f = (float *)b;
        j->ft = j->interleave ? (float *)(b + rows_b) : NULL;
        j->act.f = j->f; j->act.ft = j->ft;
    }
    j->bad = 0;
    if (n == 1) prep_range(j, 0, 1); /* one token: a hand-off to the pool would cost more */
    else tb_pool_run(c->pool, prep_tokens, j);
    if (j->bad) { /* rare: find the first culprit for the message */
        for (size_t i = 0; i < (size_t)n * j->cols; i++)
            if (!isfinite(j->x[i]))
                return tb_fail("matmul: input token %zu holds %s at column %zu", i / j->cols,
                               isnan(j->x[i]) ? "a NaN" : "an infinity", i % j->cols);
    }
    if (j->interleave) tb_pool_run(c->pool, prep_interleave, j);
    return 0;
}

/* ---- sharing the rows between threads ---- */

/* Units of work are row blocks (GEMV) or GEMM panels, numbered across all the
 * matrices of a call. Thread i owns an equal share and reads it from the front,
 * `claim` units at a time, so its weights stream in order; a thread that runs out
 * takes claims from the back of the other shares, so a thread that started late
 * (descheduled, or on a busier core) is helped rather than waited for. */
static uint64_t range_pack(uint32_t front, uint32_t back) { return (uint64_t)back << 32 | front; }

static int claim(tb_share *s, int units, int from_back, int *u0, int *u1) {
    uint64_t old = __atomic_load_n(&s->range, __ATOMIC_ACQUIRE);
    for (;;) {
        uint32_t f = (uint32_t)old, b = (uint32_t)(old >> 32);
        if (f >= b) return 0;
        uint32_t take = b - f < (uint32_t)units ? b - f : (uint32_t)units;
        uint64_t want = from_back ? range_pack(f, b - take) : range_pack(f + take, b);
        if (__atomic_compare_exchange_n(&s->range, &old, want, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            *u0 = (int)(from_back ? b - take : f);
            *u1 = (int)(from_back ? b : f + take);
            return 1;
        }
    }
}

typedef struct {
    tb_ctx *c;
    int count;
    const tb_matrix *const *ws;
    int ustart[MAX_MANY + 1];   /* first unit of each matrix */
    const tb_act *act;
    tb_mm_fn fn;
    int per_token;       /* no GEMM kernel for this format: run the GEMV kernel token by token */
    int unit;            /* rows per work unit */
    int claim;           /* units per claim; 0: the equal split only */
    int prefetch;
    void *y[MAX_MANY];   /* kernel output: int32 or float [n][rows] */
    float *const *yf;    /* integer formats' float entry point: the dequantised outputs */
    const float *xscale;
} mm_job;

/* Rows [r0, r1) of matrix mi, for every token, then their dequantisation. */
static void mm_rows(mm_job *j, int mi, int r0, int r1, const tb_kopts *o) {
    const tb_matrix *w = j->ws[mi];
    const tb_act *a = j->act;
    int rows = w->rows, integer = tb_format_int_act(w->fmt);
    if (j->per_token) {
        for (int t = 0; t < a->n; t++) {
            tb_act one = {.n = 1, .npad = 1, .kpad = a->kpad};
            if (integer) {
                one.q = a->q + (size_t)t * a->kpad;
                one.qsum = a->qsum + t;
                if (a->lut) one.lut = a->lut + (size_t)t * (a->kpad / tb_format_block(w->fmt)) * TB_TL_LUT_STEP;
            }
            else one.f = a->f + (size_t)t * a->kpad;
            j->fn(w, &one, r0, r1, (uint8_t *)j->y[mi] + (size_t)t * rows * 4, o);
        }
    } else {
        j->fn(w, a, r0, r1, j->y[mi], o);
    }
    if (!j->yf) return;
    for (int t = 0; t < a->n; t++) { /* one float multiply per output */
        const int32_t *src = (const int32_t *)j->y[mi] + (size_t)t * rows;
        float *dst = j->yf[mi] + (size_t)t * rows;
        if (w->fmt == TB_I8) {
            float inv = 1.0f / j->xscale[t];
            for (int r = r0; r < r1; r++) dst[r] = (float)src[r] * (w->row_scale[r] * inv);
        } else {
            float s = w->scale / j->xscale[t];
            for (int r = r0; r < r1; r++) dst[r] = (float)src[r] * s;
        }
    }
}

static void mm_units(mm_job *j, int u0, int u1, const tb_kopts *o) {
    for (int mi = 0; mi < j->count && u0 < u1; mi++) {
        int a = u0 > j->ustart[mi] ? u0 : j->ustart[mi];
        int b = u1 < j->ustart[mi + 1] ? u1 : j->ustart[mi + 1];
        if (a >= b) continue;
        int rows = j->ws[mi]->rows;
        int r0 = (a - j->ustart[mi]) * j->unit, r1 = (b - j->ustart[mi]) * j->unit;
        mm_rows(j, mi, r0, r1 < rows ? r1 : rows, o);
    }
}

static void mm_task(void *arg, int ith, int nth) {
    mm_job *j = arg;
    tb_kopts o = {j->c->scratch[ith], j->prefetch};
    int u0, u1;
    if (!j->claim) {
        tb_split(j->ustart[j->count], ith, nth, &u0, &u1);
        mm_units(j, u0, u1, &o);
        return;
    }
    tb_share *shares = j->c->shares;
    while (claim(&shares[ith], j->claim, 0, &u0, &u1)) mm_units(j, u0, u1, &o);
    for (int v = 1; v < nth; v++)
        while (claim(&shares[(ith + v) % nth], j->claim, 1, &u0, &u1)) mm_units(j, u0, u1, &o);
}

static int check_call(tb_ctx *c, const void *x, int n, const void *y) {
    if (!c) return tb_fail("matmul: context is NULL");
    if (!x || !y) return tb_fail("matmul: input or output pointer is NULL");
    if (n <= 0) return tb_fail("matmul: the number of tokens must be at least 1 (got %d)", n);
    if (n > (1 << 20)) return tb_fail("matmul: %d tokens in one call is more than supported (2^20)", n);
    return tb_ctx_usable(c);
}

/* Runs count matrices of one format and width on prepared-or-not input: j holds
 * the input; y[mi] the kernel outputs; yf the float outputs of integer formats. */
static int run(tb_ctx *c, const tb_matrix *const *ws, int count, prep_job *j, void *const *y, float *const *yf) {
    const tb_matrix *w = ws[0];
    const tb_kernels *k = c->variant->kernels;
    tb_mm_fn fn = j->n == 1 ? k->gemv[w->fmt] : k->gemm[w->fmt];
    int per_token = 0;
    if (!fn && j->n > 1 && k->gemv[w->fmt]) {
        fn = k->gemv[w->fmt];
        per_token = 1;
    }
    if (!fn) return tb_fail("variant '%s' has no %s kernel for format %s", c->variant->name,
                            j->n == 1 ? "GEMV" : "GEMM", tb_format_name(w->fmt));
    int gemm = j->n > 1 && !per_token;
    size_t need = TB_SCRATCH_BYTES(w->kpad);
    if (gemm && c->scratch_bytes < need) {
        for (int i = 0; i < c->threads; i++) {
            tb_aligned_free(c->scratch[i]);
            c->scratch[i] = tb_aligned_alloc(need);
            if (!c->scratch[i]) { c->scratch_bytes = 0; return tb_fail("out of memory for scratch"); }
        }
        c->scratch_bytes = need;
    }
    j->quantise = k->quantise ? k->quantise : tb_quantise_portable;
    j->tl_lut = k->tl_lut ? k->tl_lut : tb_tl_lut_portable;
    j->interleave = gemm;
    if (prepare(c, j) != 0) return -1;
    mm_job m = {.c = c, .count = count, .ws = ws, .act = &j->act, .fn = fn, .per_token = per_token,
                .unit = gemm ? TB_GEMM_MR : tb_format_row_block(w->fmt), .prefetch = c->tuning[w->fmt].prefetch, .yf = yf,
                .xscale = j->xscale};
    m.ustart[0] = 0;
    for (int i = 0; i < count; i++) {
        m.ustart[i + 1] = m.ustart[i] + (ws[i]->rows + m.unit - 1) / m.unit;
        m.y[i] = y[i];
    }
    int chunk = c->tuning[w->fmt].chunk;
    if (chunk > 0 && c->threads > 1) {
        size_t unit_bytes = (size_t)m.unit * w->row_bytes;
        m.claim = gemm ? 1 : (int)(((size_t)chunk + unit_bytes - 1) / unit_bytes);
        int units = m.ustart[count];
        for (int i = 0; i < c->threads; i++) {
            int u0, u1;
            tb_split(units, i, c->threads, &u0, &u1);
            c->shares[i].range = range_pack((uint32_t)u0, (uint32_t)u1);
        }
    }
    tb_pool_run(c->pool, mm_task, &m);
    return 0;
}

static int check_matrices(const tb_matrix *const *ws, int count) {
    if (!ws) return tb_fail("matmul: matrix list is NULL");
    if (count <= 0 || count > MAX_MANY)
        return tb_fail("matmul: between 1 and %d matrices per call (got %d)", MAX_MANY, count);
    for (int i = 0; i < count; i++) {
        if (!ws[i]) return tb_fail("matmul: matrix %d is NULL", i);
        if (ws[i]->fmt != ws[0]->fmt || ws[i]->cols != ws[0]->cols)
            return tb_fail("matmul: matrix %d is %s with %d columns, unlike matrix 0 (%s, %d columns)", i,
                           tb_format_name(ws[i]->fmt), ws[i]->cols, tb_format_name(ws[0]->fmt), ws[0]->cols);
    }
    return 0;
}

int tb_matmul_many(tb_ctx *c, const tb_matrix *const *ws, int count, const float *x, int n, float *const *ys) {
    tb_clear_error();
    if (check_call(c, x, n, ys) || check_matrices(ws, count)) return -1;
    for (int i = 0; i < count; i++)
        if (!ys[i]) return tb_fail("matmul: output %d is NULL", i);
    const tb_matrix *w = ws[0];
    prep_job j = {.fmt = w->fmt, .cols = w->cols, .kpad = w->kpad, .x = x, .n = n};
    if (!tb_format_int_act(w->fmt)) return run(c, ws, count, &j, (void *const *)ys, NULL);
    size_t total = 0;
    for (int i = 0; i < count; i++) total += (size_t)n * ws[i]->rows;
    if (tb_grow(&c->out_buf, &c->out_bytes, total * sizeof(int32_t))) return -1;
    void *raw[MAX_MANY];
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        raw[i] = (int32_t *)c->out_buf + off;
        off += (size_t)n * ws[i]->rows;
    }
    return run(c, ws, count, &j, raw, ys);
}

int tb_matmul(tb_ctx *c, const tb_matrix *w, const float *x, int n, float *y) {
    if (!w) { tb_clear_error(); return tb_fail("matmul: matrix is NULL"); }
    return tb_matmul_many(c, &w, 1, x, n, &y);
}

int tb_matmul_i8(tb_ctx *c, const tb_matrix *w, const signed char *x, int n, int *y) {
    tb_clear_error();
    if (check_call(c, x, n, y)) return -1;
    if (!w) return tb_fail("matmul: matrix is NULL");
    if (!tb_format_int_act(w->fmt))
        return tb_fail("integer matmul needs an integer format (i2s, tq1, int8, tl1, tl2); %s is a float format",
                       tb_format_name(w->fmt));
    prep_job j = {.fmt = w->fmt, .cols = w->cols, .kpad = w->kpad, .xi = (const int8_t *)x, .n = n};
    void *out = y;
    return run(c, &w, 1, &j, &out, NULL);
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

/* Which access pattern reads fastest differs between machines and thread counts
 * (Zen 5 under KVM: software prefetch +18% at 1 thread, -25% at 2; four
 * interleaved streams, the old GEMV pattern, 14 GB/s where one stream reads 27
 * on a Zen 4). Every pattern is reported; "plain" is the yardstick. The loops
 * are the best variant's, with its widest loads: 8-byte loads alone left a fifth
 * of the bandwidth unread on Zen 5, below what the kernels reach. */
static const char *const pattern_names[TB_READ_PATTERNS] = {"plain", "prefetch", "four-streams"};

int tb_read_pattern_count(void) { return TB_READ_PATTERNS; }
const char *tb_read_pattern_name(int i) { return i >= 0 && i < TB_READ_PATTERNS ? pattern_names[i] : NULL; }

typedef struct { const uint8_t *buf; size_t bytes; tb_read_fn fn; uint64_t sink[64]; } bw_job;

static void bw_task(void *arg, int ith, int nth) {
    bw_job *j = arg;
    int c0, c1; /* split in 4 KiB pages so every thread streams whole pages */
    tb_split((int)(j->bytes / 4096), ith, nth, &c0, &c1);
    j->sink[ith % 64] = j->fn(j->buf + (size_t)c0 * 4096, j->buf + (size_t)c1 * 4096);
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
    if (tb_ctx_usable(c)) return -1;
    if (bytes < (1u << 20)) return tb_fail("bandwidth: buffer of %zu bytes is too small (min 1 MiB)", bytes);
    size_t words = bytes / 4096 * 512;
    if (words / 512 > (size_t)INT32_MAX) return tb_fail("bandwidth: buffer too large");
    uint64_t *buf = tb_aligned_alloc(words * 8);
    if (!buf) return tb_fail("bandwidth: out of memory allocating %zu bytes", words * 8);
    /* first touch by the pool's own threads, so pages are local to them */
    fill_job f = {buf, words};
    tb_pool_run(c->pool, fill_task, &f);
    const tb_kernels *best = tb_find_variant(tb_variant_best())->kernels;
    bw_job j = {.buf = (const uint8_t *)buf, .bytes = words * 8};
    for (int p = 0; p < passes; p++)
        for (int pattern = 0; pattern < TB_READ_PATTERNS; pattern++) {
            j.fn = best->read[pattern] ? best->read[pattern] : tb_kernels_scalar.read[pattern];
            double t0 = tb_now();
            tb_pool_run(c->pool, bw_task, &j);
            gbps[p * TB_READ_PATTERNS + pattern] = (double)(words * 8) / (tb_now() - t0) / 1e9;
        }
    tb_aligned_free(buf);
    return 0;
}

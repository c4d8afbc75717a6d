/* Cross-checks every compiled, supported kernel variant against the "scalar"
 * reference, through the public API only (tb_api.h), so that it builds as a
 * standalone program for any architecture: natively, or cross-compiled and run
 * under emulation (see run_arm_emulated.sh, run_native.sh).
 *
 * Integer formats (i2s, tq1, int8): the integer entry point must be bit-identical
 * to scalar (and scalar to a naive dot product of the unpacked weights); the float
 * entry point quantises identically in every variant, so it must be bit-identical
 * too. Float formats: within 1e-4 of sum |w x| (the scale of the rounding error of
 * a float dot product, which stays meaningful when the result itself cancels).
 * Every variant runs with one, two and three threads, each with its own GEMV
 * tuning (prefetch, and claims of one row group so that threads steal from each
 * other): results must not depend on it. tb_matmul_many must equal tb_matmul.
 *
 * usage: kernel_check [variant ...]   (default: every compiled variant)
 * The last line is "N passed, M failed"; the exit status is 1 if any failed. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tb_api.h"

/* Odd shapes on purpose: rows not a multiple of the GEMV quad or the 12-row
 * GEMM panel, columns one short of / one past a block, tokens past a tile. */
static const int ROWS[] = {1, 2, 3, 4, 5, 7, 8, 11, 12, 13, 16, 23, 24, 25, 36, 37, 40};
static const int COLS[] = {1, 5, 255, 256, 257, 320, 641, 2560};
static const int NTOK[] = {1, 2, 3, 33, 128};
static const int THREADS[] = {1, 2, 3};
/* per thread count: prefetch bytes, claim bytes (1: one unit per claim, the most stealing) */
static const int TUNING[][2] = {{4096, 0}, {0, 0}, {128, 1}};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define NTHREADS COUNT(THREADS)
#define FLOAT_TOL 1e-4

static int passed, failed;

static void pass(void) { passed++; }

static void vfail(const char *fmt, va_list ap) {
    failed++;
    if (failed > 40) return;
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    if (failed == 40) printf("(further failures are counted, not printed)\n");
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(fmt, ap);
    va_end(ap);
}

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...) {
    if (ok) { pass(); return; }
    va_list ap;
    va_start(ap, fmt);
    vfail(fmt, ap);
    va_end(ap);
}

/* One comparison's outcome: the call's status, then the first output out of
 * line (index at into [n][rows], or -1) with its value and the reference's. */
static void verdict(const char *what, int rc, long at, int rows, double got, double want) {
    if (rc) fail("%s: %s", what, tb_last_error());
    else if (at >= 0) fail("%s: token %ld row %ld: got %.10g, want %.10g", what, at / rows, at % rows, got, want);
    else pass();
}

/* splitmix64: deterministic across platforms, so a failure reproduces anywhere */
static uint64_t rng_state;
static uint64_t rng(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int rand_below(int n) { return (int)(rng() % (uint64_t)n); }
static float rand_unit(void) { return (float)((double)(rng() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) { fprintf(stderr, "out of memory (%zu bytes)\n", bytes); exit(2); }
    return p;
}

typedef struct {
    const char *name;
    tb_ctx *ctx[NTHREADS];
} variant;

typedef struct {
    int fmt, rows, cols, n;
    const char *what; /* case label for messages */
} shape;

static void describe(char *buf, size_t len, const shape *s) {
    snprintf(buf, len, "%s %s rows=%d cols=%d n=%d", s->what, tb_format_name(s->fmt), s->rows, s->cols, s->n);
}

/* ---- integer formats ---- */

static void naive_i8(const signed char *w, const signed char *x, const shape *s, int *y) {
    for (int t = 0; t < s->n; t++)
        for (int r = 0; r < s->rows; r++) {
            int acc = 0;
            for (int k = 0; k < s->cols; k++) acc += w[(size_t)r * s->cols + k] * x[(size_t)t * s->cols + k];
            y[(size_t)t * s->rows + r] = acc;
        }
}

/* First index where two int outputs differ, or -1. */
static long first_diff_i32(const int *a, const int *b, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (a[i] != b[i]) return (long)i;
    return -1;
}

static long first_diff_bits(const float *a, const float *b, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) return (long)i;
    return -1;
}

static void check_unpack(const tb_matrix *m, const signed char *w, const shape *s) {
    size_t count = (size_t)s->rows * s->cols;
    signed char *back = xmalloc(count);
    int rc = tb_unpack_ternary(m, back);
    char d[160];
    describe(d, sizeof d, s);
    check(rc == 0 && memcmp(back, w, count) == 0, "unpack round trip: %s (%s)", d, rc ? tb_last_error() : "values differ");
    free(back);
}

/* tb_matmul_many with the same matrix twice must give tb_matmul's output twice. */
static void check_many(tb_ctx *c, const tb_matrix *m, const float *x, int n, const float *want, const char *what) {
    size_t outs = (size_t)n * tb_matrix_rows(m);
    float *a = xmalloc(outs * sizeof(float)), *b = xmalloc(outs * sizeof(float));
    const tb_matrix *ws[2] = {m, m};
    float *ys[2] = {a, b};
    int rc = tb_matmul_many(c, ws, 2, x, n, ys);
    long at = rc ? -1 : first_diff_bits(a, want, outs);
    if (at < 0 && rc == 0) at = first_diff_bits(b, want, outs);
    char buf[300];
    snprintf(buf, sizeof buf, "tb_matmul_many, %s", what);
    verdict(buf, rc, at, tb_matrix_rows(m), 0, 0);
    free(a);
    free(b);
}

/* Packs integer weights w: ternary formats directly, int8 through the float
 * packer, whose per-row absmax scaling keeps integers exact when every row
 * reaches 127 in magnitude (the callers' weights do). */
static tb_matrix *pack_int(int fmt, const signed char *w, int rows, int cols) {
    if (tb_format_is_ternary(fmt)) return tb_pack_ternary(fmt, w, rows, cols, 0.75f);
    float *f = xmalloc((size_t)rows * cols * sizeof(float));
    for (size_t i = 0; i < (size_t)rows * cols; i++) f[i] = (float)w[i];
    tb_matrix *m = tb_pack_float(fmt, f, rows, cols);
    free(f);
    return m;
}

/* Runs one integer case: weights w, int8 activations xi, float activations xf. */
static void int_case(const variant *vs, int nv, tb_ctx *ref, const signed char *w, const signed char *xi,
                     const float *xf, const shape *s) {
    char d[160];
    describe(d, sizeof d, s);
    size_t outs = (size_t)s->n * s->rows;
    tb_matrix *m = pack_int(s->fmt, w, s->rows, s->cols);
    if (!m) { fail("pack: %s: %s", d, tb_last_error()); return; }
    int *want = xmalloc(outs * sizeof(int)), *naive = xmalloc(outs * sizeof(int)), *got = xmalloc(outs * sizeof(int));
    float *wantf = xmalloc(outs * sizeof(float)), *gotf = xmalloc(outs * sizeof(float));

    char what[256];
    naive_i8(w, xi, s, naive);
    int rc = tb_matmul_i8(ref, m, xi, s->n, want);
    long at = rc ? -1 : first_diff_i32(want, naive, outs);
    snprintf(what, sizeof what, "scalar vs naive dot, int8: %s", d);
    verdict(what, rc, at, s->rows, at >= 0 ? want[at] : 0, at >= 0 ? naive[at] : 0);
    int rcf = 0;
    if (xf) {
        rcf = tb_matmul(ref, m, xf, s->n, wantf);
        check(rcf == 0, "scalar float entry: %s: %s", d, tb_last_error());
    }

    for (int v = 0; v < nv; v++) {
        for (int ti = 0; ti < NTHREADS; ti++) {
            tb_ctx *c = vs[v].ctx[ti];
            memset(got, 0x55, outs * sizeof(int));
            rc = tb_matmul_i8(c, m, xi, s->n, got);
            at = rc ? -1 : first_diff_i32(got, want, outs);
            snprintf(what, sizeof what, "%s threads=%d int8: %s", vs[v].name, THREADS[ti], d);
            verdict(what, rc, at, s->rows, at >= 0 ? got[at] : 0, at >= 0 ? want[at] : 0);
            if (!xf || rcf) continue;
            memset(gotf, 0x55, outs * sizeof(float));
            rc = tb_matmul(c, m, xf, s->n, gotf);
            at = rc ? -1 : first_diff_bits(gotf, wantf, outs);
            snprintf(what, sizeof what, "%s threads=%d float entry: %s", vs[v].name, THREADS[ti], d);
            verdict(what, rc, at, s->rows, at >= 0 ? gotf[at] : 0, at >= 0 ? wantf[at] : 0);
            check_many(c, m, xf, s->n, gotf, what);
        }
    }
    free(want); free(naive); free(got); free(wantf); free(gotf);
    tb_matrix_free(m);
}

static void random_ternary(signed char *w, size_t count) {
    for (size_t i = 0; i < count; i++) w[i] = (signed char)(rand_below(3) - 1);
}

/* int8 weights in [-127, 127], each row reaching 127 or -127 (see pack_int). */
static void random_int8_weights(signed char *w, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        for (int k = 0; k < cols; k++) w[(size_t)r * cols + k] = (signed char)(rand_below(255) - 127);
        w[(size_t)r * cols + rand_below(cols)] = (signed char)(rand_below(2) ? 127 : -127);
    }
}

static void random_i8(signed char *x, size_t count) {
    for (size_t i = 0; i < count; i++) x[i] = (signed char)(rand_below(256) - 128);
}

static void random_floats(float *x, size_t count, float amp) {
    for (size_t i = 0; i < count; i++) x[i] = amp * rand_unit();
}

static void int_sweep(const variant *vs, int nv, tb_ctx *ref, int fmt) {
    for (int ri = 0; ri < COUNT(ROWS); ri++)
        for (int ci = 0; ci < COUNT(COLS); ci++) {
            int rows = ROWS[ri], cols = COLS[ci];
            rng_state = (uint64_t)fmt << 40 ^ (uint64_t)rows << 20 ^ (uint64_t)cols;
            signed char *w = xmalloc((size_t)rows * cols);
            if (tb_format_is_ternary(fmt)) random_ternary(w, (size_t)rows * cols);
            else random_int8_weights(w, rows, cols);
            shape s = {fmt, rows, cols, 0, "random"};
            if (tb_format_is_ternary(fmt)) {
                tb_matrix *m = tb_pack_ternary(fmt, w, rows, cols, 1.0f);
                if (m) check_unpack(m, w, &s);
                else fail("pack %s %dx%d: %s", tb_format_name(fmt), rows, cols, tb_last_error());
                tb_matrix_free(m);
            }
            for (int ni = 0; ni < COUNT(NTOK); ni++) {
                s.n = NTOK[ni];
                signed char *xi = xmalloc((size_t)s.n * cols);
                float *xf = xmalloc((size_t)s.n * cols * sizeof(float));
                random_i8(xi, (size_t)s.n * cols);
                random_floats(xf, (size_t)s.n * cols, 3.0f);
                int_case(vs, nv, ref, w, xi, xf, &s);
                free(xi);
                free(xf);
            }
            free(w);
        }
}

/* Saturating patterns: every product at the extreme of its range, long enough
 * rows that any int16 partial sum kept too long would overflow. int8 weights
 * take the ternary pattern times 127; its longest rows (the format's limit) push
 * the biased VNNI sums past int32, which must wrap back to the exact result. */
static void int_extremes(const variant *vs, int nv, tb_ctx *ref, int fmt) {
    static const int rows_list[] = {5, 13};
    int cols_list[] = {2560, 8192, tb_format_is_ternary(fmt) ? 8192 : 65536};
    static const int n_list[] = {1, 3, 33};
    /* alternate: even elements take (w, x), odd ones (-w, -1 - x) */
    static const struct { int w, x, alternate; const char *name; } pats[] = {
        {1, -128, 0, "w=+1 x=-128"}, {1, 127, 0, "w=+1 x=127"}, {-1, -128, 0, "w=-1 x=-128"},
        {-1, 127, 0, "w=-1 x=127"},  {0, -128, 0, "w=0 x=-128"}, {-1, -128, 1, "alternating"},
    };
    for (int ri = 0; ri < COUNT(rows_list); ri++)
        for (int ci = 0; ci < COUNT(cols_list); ci++)
            for (int ni = 0; ni < COUNT(n_list); ni++)
                for (int pi = 0; pi < COUNT(pats); pi++) {
                    int rows = rows_list[ri], cols = cols_list[ci], n = n_list[ni];
                    int odd_w = pats[pi].alternate ? -pats[pi].w : pats[pi].w;
                    int odd_x = pats[pi].alternate ? -1 - pats[pi].x : pats[pi].x;
                    signed char *w = xmalloc((size_t)rows * cols), *x = xmalloc((size_t)n * cols);
                    int mul = tb_format_is_ternary(fmt) ? 1 : 127;
                    for (size_t i = 0; i < (size_t)rows * cols; i++)
                        w[i] = (signed char)(mul * (i % 2 ? odd_w : pats[pi].w));
                    if (mul > 1) /* pin every row's scale (pack_int) */
                        for (int r = 0; r < rows; r++) w[(size_t)r * cols] = 127;
                    for (size_t i = 0; i < (size_t)n * cols; i++) x[i] = (signed char)(i % 2 ? odd_x : pats[pi].x);
                    shape s = {fmt, rows, cols, n, pats[pi].name};
                    int_case(vs, nv, ref, w, x, NULL, &s);
                    free(w);
                    free(x);
                }
}

/* Rows long enough to cross the VNNI tq1 kernel's fold segments (1024 chunks of
 * 320 weights), at the extreme that would overflow an unfolded int32 lane. */
static void long_rows(const variant *vs, int nv, tb_ctx *ref, int fmt) {
    const int rows = 5, cols = 700000, n = 1;
    signed char *w = xmalloc((size_t)rows * cols), *x = xmalloc((size_t)n * cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++) w[i] = 1;
    for (size_t i = 0; i < (size_t)n * cols; i++) x[i] = 127;
    shape s = {fmt, rows, cols, n, "long rows, w=+1 x=127"};
    int_case(vs, nv, ref, w, x, NULL, &s);
    free(w);
    free(x);
}

/* A NaN or an infinity in the input is refused, naming the token, in every variant. */
/* The lookup-table formats store 64-row blocks in panels of four, k-chunk by k-chunk:
 * shapes of several panels (the last one short) and several k-chunks. */
static void tl_panels(const variant *vs, int nv, tb_ctx *ref, int fmt) {
    static const int shapes[][2] = {{333, 3100}, {700, 1537}};
    for (int i = 0; i < COUNT(shapes); i++)
        for (int n = 1; n <= 2; n++) {
            int rows = shapes[i][0], cols = shapes[i][1];
            rng_state = (uint64_t)fmt << 40 ^ (uint64_t)rows << 20 ^ (uint64_t)cols ^ (uint64_t)n;
            signed char *w = xmalloc((size_t)rows * cols), *x = xmalloc((size_t)n * cols);
            float *xf = xmalloc((size_t)n * cols * sizeof(float));
            random_ternary(w, (size_t)rows * cols);
            random_i8(x, (size_t)n * cols);
            random_floats(xf, (size_t)n * cols, 3.0f);
            shape s = {fmt, rows, cols, n, "panels"};
            int_case(vs, nv, ref, w, x, xf, &s);
            free(w); free(x); free(xf);
        }
}

static void non_finite(const variant *vs, int nv, tb_ctx *ref, int fmt) {
    const int rows = 8, cols = 300, n = 3;
    float *w = xmalloc((size_t)rows * cols * sizeof(float)), *x = xmalloc((size_t)n * cols * sizeof(float));
    float *y = xmalloc((size_t)n * rows * sizeof(float));
    for (size_t i = 0; i < (size_t)rows * cols; i++) w[i] = (float)(i % 3) - 1.0f;
    signed char *wi = xmalloc((size_t)rows * cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++) wi[i] = (signed char)w[i];
    tb_matrix *m = tb_format_is_ternary(fmt) ? tb_pack_ternary(fmt, wi, rows, cols, 1.0f) : tb_pack_float(fmt, w, rows, cols);
    for (int bad = 0; bad < 2; bad++) {
        for (size_t i = 0; i < (size_t)n * cols; i++) x[i] = 0.5f;
        x[cols + 7] = bad ? INFINITY : NAN;
        for (int v = -1; v < nv; v++)
            for (int ti = 0; ti < NTHREADS; ti++) {
                if (v < 0 && ti > 0) continue;
                tb_ctx *c = v < 0 ? ref : vs[v].ctx[ti];
                for (int tokens = 1; tokens <= n; tokens += n - 1) {
                    const float *in = tokens == 1 ? x + cols : x;
                    int rc = tb_matmul(c, m, in, tokens, y);
                    check(rc != 0 && strstr(tb_last_error(), bad ? "infinity" : "NaN") != NULL &&
                              strstr(tb_last_error(), tokens == 1 ? "token 0" : "token 1") != NULL,
                          "%s %s threads=%d n=%d: a %s input gave rc %d, '%s'", v < 0 ? "scalar" : vs[v].name,
                          tb_format_name(fmt), THREADS[ti], tokens, bad ? "infinite" : "NaN", rc, tb_last_error());
                }
            }
    }
    tb_matrix_free(m);
    free(w); free(wi); free(x); free(y);
}

/* ---- float formats ---- */

/* First output farther than FLOAT_TOL * sum|w x| from the reference, or -1. */
static long first_out_of_tol(const float *got, const double *want, const double *mag, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (!(fabs((double)got[i] - want[i]) <= FLOAT_TOL * mag[i])) return (long)i;
    return -1;
}

static void float_case(const variant *vs, int nv, tb_ctx *ref, const tb_matrix *m, const float *wq,
                       const float *x, const shape *s) {
    char d[160];
    describe(d, sizeof d, s);
    size_t outs = (size_t)s->n * s->rows;
    float *want = xmalloc(outs * sizeof(float)), *got = xmalloc(outs * sizeof(float));
    double *mag = xmalloc(outs * sizeof(double)), *exact = xmalloc(outs * sizeof(double));
    for (int t = 0; t < s->n; t++)
        for (int r = 0; r < s->rows; r++) {
            double acc = 0, a = 0;
            for (int k = 0; k < s->cols; k++) {
                double p = (double)wq[(size_t)r * s->cols + k] * x[(size_t)t * s->cols + k];
                acc += p;
                a += fabs(p);
            }
            exact[(size_t)t * s->rows + r] = acc;
            mag[(size_t)t * s->rows + r] = a;
        }
    char what[256];
    int rc = tb_matmul(ref, m, x, s->n, want);
    long at = rc ? -1 : first_out_of_tol(want, exact, mag, outs);
    snprintf(what, sizeof what, "scalar vs double-precision dot: %s", d);
    verdict(what, rc, at, s->rows, at >= 0 ? want[at] : 0, at >= 0 ? exact[at] : 0);

    /* from here on the reference is scalar's output */
    for (size_t i = 0; i < outs; i++) exact[i] = want[i];
    for (int v = 0; v < nv && rc == 0; v++) {
        for (int ti = 0; ti < NTHREADS; ti++) {
            memset(got, 0x55, outs * sizeof(float));
            int rcv = tb_matmul(vs[v].ctx[ti], m, x, s->n, got);
            at = rcv ? -1 : first_out_of_tol(got, exact, mag, outs);
            snprintf(what, sizeof what, "%s threads=%d: %s", vs[v].name, THREADS[ti], d);
            verdict(what, rcv, at, s->rows, at >= 0 ? got[at] : 0, at >= 0 ? want[at] : 0);
            if (rcv == 0) check_many(vs[v].ctx[ti], m, x, s->n, got, what);
        }
    }
    free(want); free(got); free(mag); free(exact);
}

static void float_sweep(const variant *vs, int nv, tb_ctx *ref, int fmt) {
    for (int ri = 0; ri < COUNT(ROWS); ri++)
        for (int ci = 0; ci < COUNT(COLS); ci++) {
            int rows = ROWS[ri], cols = COLS[ci];
            rng_state = (uint64_t)fmt << 40 ^ (uint64_t)rows << 20 ^ (uint64_t)cols;
            size_t count = (size_t)rows * cols;
            float *w = xmalloc(count * sizeof(float)), *wq = xmalloc(count * sizeof(float));
            random_floats(w, count, 1.0f);
            tb_matrix *m = tb_pack_float(fmt, w, rows, cols);
            shape s = {fmt, rows, cols, 0, "random"};
            if (!m || tb_unpack_float(m, wq) != 0) {
                fail("pack/unpack %s %dx%d: %s", tb_format_name(fmt), rows, cols, tb_last_error());
            } else {
                if (strcmp(tb_format_name(fmt), "f32") == 0) {
                    char d[160];
                    describe(d, sizeof d, &s);
                    check(memcmp(w, wq, count * sizeof(float)) == 0, "f32 unpack round trip: %s", d);
                }
                for (int ni = 0; ni < COUNT(NTOK); ni++) {
                    s.n = NTOK[ni];
                    float *x = xmalloc((size_t)s.n * cols * sizeof(float));
                    random_floats(x, (size_t)s.n * cols, 2.0f);
                    float_case(vs, nv, ref, m, wq, x, &s);
                    free(x);
                }
            }
            tb_matrix_free(m);
            free(w);
            free(wq);
        }
}

/* ---- driver ---- */

static int wanted(const char *name, int argc, char **argv) {
    if (argc <= 1) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ternbench %s, %s\n", tb_version(), tb_build_info());
    for (int a = 1; a < argc; a++) {
        int found = 0;
        for (int i = 0; i < tb_variant_count(); i++) found |= strcmp(tb_variant_name(i), argv[a]) == 0;
        check(found, "variant '%s' asked for on the command line is not compiled in", argv[a]);
    }

    char why[160];
    check(tb_variant_supported("no-such-variant", why, sizeof why) == 0, "unknown variant reported as supported");
    tb_ctx *ref = tb_ctx_new(1, "scalar");
    check(ref != NULL, "scalar context: %s", tb_last_error());
    if (!ref) { printf("%d passed, %d failed\n", passed, failed); return 1; }

    variant vs[16];
    int nv = 0;
    for (int i = 0; i < tb_variant_count() && nv < COUNT(vs); i++) {
        const char *name = tb_variant_name(i);
        check(name != NULL, "tb_variant_name(%d) is NULL", i);
        if (!name || strcmp(name, "scalar") == 0 || !wanted(name, argc, argv)) continue;
        why[0] = 0;
        if (!tb_variant_supported(name, why, sizeof why)) {
            /* an unsupported variant must be refused cleanly, never run */
            tb_ctx *c = tb_ctx_new(1, name);
            check(c == NULL && tb_last_error()[0] != 0, "unsupported variant %s was not refused", name);
            tb_ctx_free(c);
            printf("variant %-12s skipped: %s\n", name, why);
            continue;
        }
        vs[nv].name = name;
        int ok = 1;
        for (int t = 0; t < NTHREADS; t++) {
            vs[nv].ctx[t] = tb_ctx_new(THREADS[t], name);
            check(vs[nv].ctx[t] != NULL, "context %s threads=%d: %s", name, THREADS[t], tb_last_error());
            ok &= vs[nv].ctx[t] != NULL;
            for (int f = 0; f < tb_format_count() && vs[nv].ctx[t]; f++)
                check(tb_ctx_set_tuning(vs[nv].ctx[t], f, TUNING[t][0], TUNING[t][1]) == 0, "tuning %s: %s", name,
                      tb_last_error());
        }
        if (!ok) {
            for (int t = 0; t < NTHREADS; t++) tb_ctx_free(vs[nv].ctx[t]);
            continue;
        }
        printf("variant %-12s tested with %d, %d and %d threads (prefetch/claim bytes %d/%d, %d/%d, %d/%d)\n", name,
               THREADS[0], THREADS[1], THREADS[2], TUNING[0][0], TUNING[0][1], TUNING[1][0], TUNING[1][1],
               TUNING[2][0], TUNING[2][1]);
        nv++;
    }

    for (int fmt = 0; fmt < tb_format_count(); fmt++) {
        int before_p = passed, before_f = failed;
        const char *name = tb_format_name(fmt);
        if (tb_format_is_ternary(fmt) || strcmp(name, "int8") == 0) {
            int_sweep(vs, nv, ref, fmt);
            int_extremes(vs, nv, ref, fmt);
            int tl = strncmp(name, "tl", 2) == 0;
            if (strcmp(name, "tq1") == 0 || tl) long_rows(vs, nv, ref, fmt);
            if (tl) tl_panels(vs, nv, ref, fmt);
        } else {
            float_sweep(vs, nv, ref, fmt);
        }
        non_finite(vs, nv, ref, fmt);
        printf("format %-4s %d passed, %d failed\n", tb_format_name(fmt), passed - before_p, failed - before_f);
    }

    for (int v = 0; v < nv; v++)
        for (int t = 0; t < NTHREADS; t++) tb_ctx_free(vs[v].ctx[t]);
    tb_ctx_free(ref);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

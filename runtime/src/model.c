/* The BitNet b1.58 decoder, whole, in C: one call per prompt batch or generated
 * token, never one per layer.
 *
 *   x = embedding[token]
 *   per layer: h = rmsnorm(x) * attn_norm
 *              q, k, v = Wq h, Wk h, Wv h; RoPE on q and k; k, v -> KV cache
 *              a = causal attention (grouped-query heads); a = rmsnorm(a) * attn_sub_norm
 *              x += Wo a
 *              h = rmsnorm(x) * ffn_norm
 *              f = act(Wgate h) * (Wup h); f = rmsnorm(f) * ffn_sub_norm
 *              x += Wdown f
 *   logits = head . (rmsnorm(x_last) * final_norm)
 *
 * act is relu(x)^2 (BitNet b1.58) or silu(x) (LLaMA-style 1.58-bit models, which
 * also have no sub-norms). Integer formats quantise every matmul's input per token
 * inside tb_matmul, once for Q, K and V together and once for gate and up. The KV
 * cache holds f16 (the default, as llama.cpp's) or f32. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tb_internal.h"

#define NLIN 7
#define NNORM 4

struct tb_model {
    tb_model_config c;
    int qdim, kvdim;            /* heads * head_dim, kv_heads * head_dim */
    tb_matrix **lin;            /* [layers][NLIN] */
    float *norms;               /* per layer: attn, ffn (hidden), attn_sub (qdim), ffn_sub (ffn); then final */
    size_t norm_stride;
    tb_matrix *embed, *head;    /* head == embed when tied */
    /* [layers][kv_heads][max_ctx][head_dim] of f16 or f32: one KV head's positions are one
     * contiguous stream. Laid out [position][all heads], a generated token's attention read
     * every position of a head as a separate DRAM miss, 1.5-3 KiB from the last, once the
     * weights had streamed through the caches. */
    void *kcache, *vcache;
    float *rope_cos, *rope_sin; /* [max_ctx][head_dim / 2] */
    int pos;
    /* batch scratch, grown to the largest n seen */
    int cap, score_rows;
    float *x, *h, *q, *k, *v, *att, *g, *u, *tmp, *scores, *fq;
    int8_t *qrow;
    float *logits;
    double busy_s;              /* wall time inside tb_model_forward, for the harness's self-check */
};

static void lin_shape(const tb_model *m, int which, int *rows, int *cols) {
    const tb_model_config *c = &m->c;
    switch (which) {
    case TB_WQ: *rows = m->qdim; *cols = c->hidden; break;
    case TB_WK: case TB_WV: *rows = m->kvdim; *cols = c->hidden; break;
    case TB_WO: *rows = c->hidden; *cols = m->qdim; break;
    case TB_WGATE: case TB_WUP: *rows = c->ffn; *cols = c->hidden; break;
    default: *rows = c->hidden; *cols = c->ffn; break;
    }
}

static float *norm_ptr(tb_model *m, int layer, int which) {
    if (which == TB_NORM_FINAL) return m->norms + (size_t)m->c.layers * m->norm_stride;
    const tb_model_config *c = &m->c;
    size_t off[NNORM] = {0, (size_t)c->hidden, 2 * (size_t)c->hidden, 2 * (size_t)c->hidden + (size_t)m->qdim};
    return m->norms + (size_t)layer * m->norm_stride + off[which];
}

static int norm_len(const tb_model *m, int which) {
    return which == TB_NORM_ATTN_SUB ? m->qdim : which == TB_NORM_FFN_SUB ? m->c.ffn : m->c.hidden;
}

static void norms_to_one(tb_model *m) {
    for (size_t i = 0; i < m->norm_stride * m->c.layers + m->c.hidden; i++) m->norms[i] = 1.0f;
}

static int check_config(const tb_model_config *c) {
    if (!c) return tb_fail("model: config is NULL");
    if (c->vocab <= 0 || c->hidden <= 0 || c->ffn <= 0 || c->layers <= 0 || c->heads <= 0 ||
        c->kv_heads <= 0 || c->head_dim <= 0 || c->max_ctx <= 0)
        return tb_fail("model: vocab, hidden, ffn, layers, heads, kv_heads, head_dim and max_ctx must all be "
                       "positive (got %d, %d, %d, %d, %d, %d, %d, %d)", c->vocab, c->hidden, c->ffn, c->layers,
                       c->heads, c->kv_heads, c->head_dim, c->max_ctx);
    if (c->heads % c->kv_heads)
        return tb_fail("model: heads (%d) must be a multiple of kv_heads (%d)", c->heads, c->kv_heads);
    if (c->head_dim % 2) return tb_fail("model: head_dim (%d) must be even for RoPE", c->head_dim);
    if (!(c->norm_eps > 0) || !(c->rope_theta > 0))
        return tb_fail("model: norm_eps and rope_theta must be positive");
    if (!tb_format_is_ternary(c->weight_fmt) && c->weight_fmt != TB_F16 && c->weight_fmt != TB_F32)
        return tb_fail("model: unknown weight format id %d", c->weight_fmt);
    if (c->head_fmt != TB_F16 && c->head_fmt != TB_F32 && c->head_fmt != TB_I8)
        return tb_fail("model: the head format must be f16, int8 or f32 (format id %d given)", c->head_fmt);
    if (c->kv_fmt != TB_F16 && c->kv_fmt != TB_F32)
        return tb_fail("model: the KV cache format must be f16 or f32 (format id %d given)", c->kv_fmt);
    /* sizes the runtime's int arithmetic can hold; each matrix checks its own too */
    const struct { const char *name; long long value, limit; } limits[] = {
        {"vocab", c->vocab, TB_MAX_ROWS}, {"hidden", c->hidden, 1 << 20}, {"ffn", c->ffn, 1 << 22},
        {"layers", c->layers, 1 << 16}, {"heads x head_dim", (long long)c->heads * c->head_dim, 1 << 20},
        {"max_ctx", c->max_ctx, 1 << 24},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        if (limits[i].value > limits[i].limit)
            return tb_fail("model: %s is %lld, more than the runtime supports (at most %lld)", limits[i].name,
                           limits[i].value, limits[i].limit);
    return 0;
}

void tb_model_free(tb_model *m) {
    if (!m) return;
    if (m->lin)
        for (int i = 0; i < m->c.layers * NLIN; i++) tb_matrix_free(m->lin[i]);
    free(m->lin);
    if (m->head != m->embed) tb_matrix_free(m->head);
    tb_matrix_free(m->embed);
    void *bufs[] = {m->norms, m->kcache, m->vcache, m->rope_cos, m->rope_sin, m->x, m->h, m->q, m->k,
                    m->v, m->att, m->g, m->u, m->tmp, m->scores, m->logits, m->fq};
    tb_aligned_free(m->qrow);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) tb_aligned_free(bufs[i]);
    free(m);
}

static float *falloc(size_t n) { return tb_aligned_alloc(n * sizeof(float)); }

tb_model *tb_model_new(const tb_model_config *cfg) {
    tb_clear_error();
    if (check_config(cfg)) return NULL;
    tb_model *m = calloc(1, sizeof *m);
    if (!m) { tb_fail("model: out of memory"); return NULL; }
    m->c = *cfg;
    const tb_model_config *c = &m->c;
    m->qdim = c->heads * c->head_dim;
    m->kvdim = c->kv_heads * c->head_dim;
    m->norm_stride = 2 * (size_t)c->hidden + (size_t)m->qdim + (size_t)c->ffn;
    m->lin = calloc((size_t)c->layers * NLIN, sizeof *m->lin);
    m->norms = falloc(m->norm_stride * c->layers + c->hidden);
    size_t kv = (size_t)c->layers * c->max_ctx * m->kvdim * (c->kv_fmt == TB_F16 ? 2 : 4); /* bytes */
    m->kcache = tb_aligned_alloc(kv);
    m->vcache = tb_aligned_alloc(kv);
    m->rope_cos = falloc((size_t)c->max_ctx * c->head_dim / 2);
    m->rope_sin = falloc((size_t)c->max_ctx * c->head_dim / 2);
    m->logits = falloc((size_t)c->vocab);
    if (!m->lin || !m->norms || !m->kcache || !m->vcache || !m->rope_cos || !m->rope_sin || !m->logits) goto oom;
    for (int l = 0; l < c->layers; l++)
        for (int w = 0; w < NLIN; w++) {
            int rows, cols;
            lin_shape(m, w, &rows, &cols);
            if (!(m->lin[l * NLIN + w] = tb_matrix_new(c->weight_fmt, rows, cols))) goto fail;
        }
    if (!(m->embed = tb_matrix_new(c->head_fmt, c->vocab, c->hidden))) goto fail;
    m->head = c->tied_head ? m->embed : tb_matrix_new(c->head_fmt, c->vocab, c->hidden);
    if (!m->head) goto fail;
    /* RoPE angles in double, rounded once: pos * theta^(-2i/d) */
    int half = c->head_dim / 2;
    for (int p = 0; p < c->max_ctx; p++)
        for (int i = 0; i < half; i++) {
            double a = p * pow((double)c->rope_theta, -2.0 * i / c->head_dim);
            m->rope_cos[(size_t)p * half + i] = (float)cos(a);
            m->rope_sin[(size_t)p * half + i] = (float)sin(a);
        }
    norms_to_one(m);
    return m;
oom:
    tb_fail("model: out of memory (KV cache %zu MB)", 2 * kv >> 20);
fail:
    tb_model_free(m);
    return NULL;
}

int tb_model_pos(const tb_model *m) { return m->pos; }
void tb_model_reset(tb_model *m) { m->pos = 0; }

size_t tb_model_weight_bytes(const tb_model *m) {
    size_t b = tb_matrix_bytes(m->embed) + (m->head != m->embed ? tb_matrix_bytes(m->head) : 0);
    for (int i = 0; i < m->c.layers * NLIN; i++) b += tb_matrix_bytes(m->lin[i]);
    return b + (m->norm_stride * m->c.layers + m->c.hidden) * sizeof(float);
}

size_t tb_model_bytes_per_token(const tb_model *m) {
    size_t b = tb_matrix_bytes(m->head);
    for (int i = 0; i < m->c.layers * NLIN; i++) b += tb_matrix_bytes(m->lin[i]);
    return b;
}

/* ---- weights ---- */

static int check_layer(const tb_model *m, int layer, int which, int n) {
    if (layer < 0 || layer >= m->c.layers)
        return tb_fail("model: layer %d out of range (the model has %d)", layer, m->c.layers);
    if (which < 0 || which >= n) return tb_fail("model: unknown tensor kind %d", which);
    return 0;
}

int tb_model_set_linear(tb_model *m, int layer, int which, const signed char *w, float scale) {
    tb_clear_error();
    if (!m || !w) return tb_fail("model: NULL argument");
    if (check_layer(m, layer, which, NLIN)) return -1;
    if (!isfinite(scale)) return tb_fail("model: layer %d tensor %d: scale is not finite", layer, which);
    tb_matrix *mat = m->lin[layer * NLIN + which];
    long bad = tb_fill_ternary(mat, (const int8_t *)w, scale);
    if (bad >= 0)
        return tb_fail("model: layer %d tensor %d: value %d at row %ld, column %ld is not ternary", layer, which,
                       w[bad], bad / mat->cols, bad % mat->cols);
    return 0;
}

int tb_model_set_norm(tb_model *m, int layer, int which, const float *w) {
    tb_clear_error();
    if (!m || !w) return tb_fail("model: NULL argument");
    if (which == TB_NORM_FINAL) {
        if (layer != -1) return tb_fail("model: the final norm takes layer -1 (got %d)", layer);
    } else if (check_layer(m, layer, which, NNORM)) {
        return -1;
    }
    memcpy(norm_ptr(m, layer, which), w, (size_t)norm_len(m, which) * sizeof(float));
    return 0;
}

static void pack_float_rows(tb_matrix *mat, const float *w) {
    for (int r = 0; r < mat->rows; r++) tb_pack_float_row(mat, r, w + (size_t)r * mat->cols);
}

int tb_model_set_embedding(tb_model *m, const float *w) {
    tb_clear_error();
    if (!m || !w) return tb_fail("model: NULL argument");
    pack_float_rows(m->embed, w);
    return 0;
}

int tb_model_set_output(tb_model *m, const float *w) {
    tb_clear_error();
    if (!m || !w) return tb_fail("model: NULL argument");
    if (m->head == m->embed) return tb_fail("model: the output head is tied to the embedding; set the embedding");
    pack_float_rows(m->head, w);
    return 0;
}

/* ---- synthetic weights ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One stream per (seed, tensor, row): the values do not depend on the thread count
 * or the format, so an f16 twin holds exactly the ternary model's weights. */
static uint64_t row_seed(uint64_t seed, uint64_t tensor, uint64_t row) {
    uint64_t s = seed ^ (tensor * 0xD1B54A32D192ED03ull) ^ (row * 0x8CB92BA72F3D8DD7ull);
    return splitmix64(&s);
}

typedef struct { tb_model *m; uint64_t seed; int8_t **rowbuf; } init_job;

static void init_task(void *arg, int ith, int nth) {
    init_job *j = arg;
    tb_model *m = j->m;
    int8_t *buf = j->rowbuf[ith];
    /* work units: (tensor, row) pairs in blocks of 16 rows, over every linear layer */
    int ntensors = m->c.layers * NLIN;
    for (int t = 0; t < ntensors; t++) {
        tb_matrix *mat = m->lin[t];
        int blocks = (mat->rows + 15) / 16, b0, b1;
        tb_split(blocks, ith, nth, &b0, &b1);
        float scale = 1.0f / sqrtf((float)mat->cols);
        for (int r = b0 * 16; r < b1 * 16 && r < mat->rows; r++) {
            uint64_t s = row_seed(j->seed, (uint64_t)t, (uint64_t)r), bits = 0;
            for (int k = 0; k < mat->cols; k++) {
                if (k % 8 == 0) bits = splitmix64(&s);
                /* top byte b -> (3b) >> 8 is 0, 1 or 2 with probability ~1/3 each */
                buf[k] = (int8_t)((((bits >> 56) * 3) >> 8) - 1);
                bits <<= 8;
            }
            tb_pack_ternary_row(mat, r, buf, scale);
        }
        if (tb_format_is_ternary(mat->fmt)) mat->scale = scale;
    }
    /* embedding (and untied head): about uniform on the grid k/128, k in [-127, 127],
     * which f16 and int8 (row scale 1/128) hold exactly: every head format has the
     * same values, and f16 needs one table look-up per value instead of a conversion */
    int8_t grid[256];
    uint16_t halves[256];
    for (int b = 0; b < 256; b++) {
        grid[b] = (int8_t)((b * 255 >> 8) - 127);
        halves[b] = tb_float_to_half((float)grid[b] / 128.0f);
    }
    tb_matrix *heads[2] = {m->embed, m->head != m->embed ? m->head : NULL};
    for (int hi = 0; hi < 2 && heads[hi]; hi++) {
        tb_matrix *mat = heads[hi];
        int r0, r1;
        tb_split(mat->rows, ith, nth, &r0, &r1);
        for (int r = r0; r < r1; r++) {
            uint64_t s = row_seed(j->seed, (uint64_t)(ntensors + hi), (uint64_t)r), bits = 0;
            for (int k = 0; k < mat->kpad; k++) {
                if (k % 8 == 0) bits = splitmix64(&s);
                unsigned b = (unsigned)(bits >> 56);
                bits <<= 8;
                int pad = k >= mat->cols; /* padding columns: 0 */
                if (mat->fmt == TB_F16) {
                    uint16_t h = pad ? 0 : halves[b];
                    memcpy(tb_row_at(mat, r, 2 * (size_t)k), &h, 2);
                } else if (mat->fmt == TB_I8) {
                    *(int8_t *)tb_row_at(mat, r, (size_t)k) = pad ? 0 : grid[b];
                } else {
                    float f = pad ? 0.0f : (float)grid[b] / 128.0f;
                    memcpy(tb_row_at(mat, r, 4 * (size_t)k), &f, 4);
                }
            }
            if (mat->fmt == TB_I8) mat->row_scale[r] = 1.0f / 128.0f;
        }
    }
}

int tb_model_init_random(tb_model *m, tb_ctx *ctx, unsigned long long seed) {
    tb_clear_error();
    if (!m || !ctx) return tb_fail("model: NULL argument");
    if (tb_ctx_usable(ctx)) return -1;
    int maxcols = m->c.ffn > m->c.hidden ? m->c.ffn : m->c.hidden;
    if (m->qdim > maxcols) maxcols = m->qdim;
    int8_t **bufs = calloc((size_t)ctx->threads, sizeof *bufs);
    int rc = bufs ? 0 : tb_fail("model: out of memory");
    for (int i = 0; i < ctx->threads && rc == 0; i++)
        if (!(bufs[i] = tb_aligned_alloc((size_t)maxcols * sizeof(float)))) rc = tb_fail("model: out of memory");
    if (rc == 0) {
        init_job j = {m, seed, bufs};
        tb_pool_run(ctx->pool, init_task, &j);
        norms_to_one(m);
    }
    for (int i = 0; bufs && i < ctx->threads; i++) tb_aligned_free(bufs[i]);
    free(bufs);
    return rc;
}

/* ---- forward ---- */

/* Grows the batch buffers to n tokens and `threads` score rows. On failure every
 * buffer is freed and the capacity is 0, so no later call finds a NULL buffer
 * behind a capacity that claims it exists. */
static int grow_batch(tb_model *m, int n, int threads) {
    if (n <= m->cap && threads <= m->score_rows) return 0;
    const tb_model_config *c = &m->c;
    size_t wide = (size_t)(c->ffn > c->hidden ? c->ffn : c->hidden);
    wide = wide > (size_t)m->qdim ? wide : (size_t)m->qdim;
    float **bufs[] = {&m->x, &m->h, &m->q, &m->k, &m->v, &m->att, &m->g, &m->u, &m->tmp, &m->fq, &m->scores};
    size_t sizes[] = {(size_t)c->hidden * n, wide * n, (size_t)m->qdim * n, (size_t)m->kvdim * n,
                      (size_t)m->kvdim * n, (size_t)m->qdim * n, (size_t)c->ffn * n, (size_t)c->ffn * n,
                      wide * n, wide * n, (size_t)threads * c->max_ctx /* one score row per thread */};
    int ok = 1;
    tb_aligned_free(m->qrow);
    ok &= (m->qrow = tb_aligned_alloc(wide + 64)) != NULL;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        tb_aligned_free(*bufs[i]);
        ok &= (*bufs[i] = falloc(sizes[i])) != NULL;
    }
    if (!ok) {
        tb_aligned_free(m->qrow);
        m->qrow = NULL;
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
            tb_aligned_free(*bufs[i]);
            *bufs[i] = NULL;
        }
        m->cap = m->score_rows = 0;
        return tb_fail("model: out of memory for a batch of %d tokens on %d threads", n, threads);
    }
    m->cap = n;
    m->score_rows = threads;
    return 0;
}

/* out = x * rsqrt(mean(x^2) + eps) * w, per row of d values (as HF's RMSNorm, in float32) */
static void rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps, tb_dot_fn dot) {
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * d;
        float *o = out + (size_t)t * d;
        float inv = 1.0f / sqrtf(dot(xr, xr, d) / (float)d + eps);
        for (int i = 0; i < d; i++) o[i] = w[i] * (xr[i] * inv);
    }
}

/* Row-wise work of a batch (norms, residual adds, the gated activation), split over
 * the pool by tokens. A single token runs inline: a hand-off would cost more. */
enum { ROW_NORM, ROW_ADD, ROW_ACT };

typedef struct {
    int op, n, d;
    float *out;
    const float *x, *w;
    float eps;
    int silu;
    tb_dot_fn dot;
} rows_job;

static void rows_range(rows_job *j, int t0, int t1) {
    size_t d = (size_t)j->d;
    switch (j->op) {
    case ROW_NORM: rmsnorm(j->out + t0 * d, j->x + t0 * d, j->w, t1 - t0, j->d, j->eps, j->dot); break;
    case ROW_ADD:
        for (size_t i = t0 * d; i < t1 * d; i++) j->out[i] += j->x[i];
        break;
    default: /* out = act(out) * x: gate and up */
        for (size_t i = t0 * d; i < t1 * d; i++) {
            float g = j->out[i];
            g = j->silu ? g / (1.0f + expf(-g)) : (g > 0.0f ? g * g : 0.0f);
            j->out[i] = g * j->x[i];
        }
    }
}

static void rows_task(void *arg, int ith, int nth) {
    rows_job *j = arg;
    int t0, t1;
    tb_split(j->n, ith, nth, &t0, &t1);
    if (t0 < t1) rows_range(j, t0, t1);
}

static void rows(tb_ctx *ctx, rows_job j) {
    if (j.n == 1) rows_range(&j, 0, 1);
    else tb_pool_run(ctx->pool, rows_task, &j);
}

/* RoPE, rotate-half convention (HF LLaMA / BitNet): pairs (i, i + d/2). */
static void rope(const tb_model *m, float *v, int nheads, int pos) {
    int d = m->c.head_dim, half = d / 2;
    const float *cs = m->rope_cos + (size_t)pos * half, *sn = m->rope_sin + (size_t)pos * half;
    for (int h = 0; h < nheads; h++) {
        float *p = v + (size_t)h * d;
        for (int i = 0; i < half; i++) {
            float a = p[i], b = p[i + half];
            p[i] = a * cs[i] - b * sn[i];
            p[i + half] = b * cs[i] + a * sn[i];
        }
    }
}

/* Element index of (layer, KV head, position) in the KV cache. */
static size_t kv_index(const tb_model *m, int layer, int kvh, int pos) {
    return (((size_t)layer * m->c.kv_heads + (size_t)kvh) * m->c.max_ctx + (size_t)pos) * m->c.head_dim;
}

typedef struct {
    tb_model *m;
    int layer, n;
    tb_dot_fn dot;             /* f32 cache */
    tb_axpy_fn axpy;
    tb_scores_h_fn scores_h;   /* f16 cache */
    tb_mix_h_fn mix_h;
} attn_job;

/* One unit per (token, head): scores over the cached keys up to the token's own
 * position, softmax, weighted sum of the values. */
static void attn_task(void *arg, int ith, int nth) {
    attn_job *j = arg;
    tb_model *m = j->m;
    const tb_model_config *c = &m->c;
    int d = c->head_dim, group = c->heads / c->kv_heads, u0, u1;
    float scale = 1.0f / sqrtf((float)d);
    const int half = c->kv_fmt == TB_F16;
    tb_split(j->n * c->heads, ith, nth, &u0, &u1);
    for (int u = u0; u < u1; u++) {
        int t = u / c->heads, h = u % c->heads, kvh = h / group, len = m->pos + t + 1;
        const float *q = m->q + (size_t)t * m->qdim + (size_t)h * d;
        float *s = m->scores + (size_t)ith * c->max_ctx, mx = -INFINITY;
        const size_t first = kv_index(m, j->layer, kvh, 0); /* position 0 of this KV head */
        if (half) j->scores_h(q, (const uint16_t *)m->kcache + first, len, d, scale, s);
        else
            for (int p = 0; p < len; p++) s[p] = j->dot(q, (const float *)m->kcache + first + (size_t)p * d, d) * scale;
        for (int p = 0; p < len; p++) mx = s[p] > mx ? s[p] : mx;
        float sum = 0.0f;
        for (int p = 0; p < len; p++) sum += s[p] = expf(s[p] - mx);
        for (int p = 0; p < len; p++) s[p] /= sum;
        float *o = m->att + (size_t)t * m->qdim + (size_t)h * d;
        memset(o, 0, (size_t)d * sizeof(float));
        if (half) j->mix_h(o, s, (const uint16_t *)m->vcache + first, len, d);
        else
            for (int p = 0; p < len; p++) j->axpy(o, s[p], (const float *)m->vcache + first + (size_t)p * d, d);
    }
}

static const char *const lin_names[NLIN] = {"q", "k", "v", "o", "gate", "up", "down"};

/* y_i = W_i x for `count` linear layers of layer l that share their input (Q, K
 * and V; gate and up): one quantisation, one hand-off. With float_act_quant a
 * float-format W sees the input as a ternary format would (per-token int8, then
 * back to float) while the products and sums stay float: the float reference of
 * the same computation. Errors name the layer and the linear. */
static int linears(tb_model *m, tb_ctx *ctx, int l, int first, int count, const float *x, int n, float *const *ys) {
    tb_matrix *const *w = m->lin + (size_t)l * NLIN + first;
    if (m->c.float_act_quant && !tb_format_int_act(w[0]->fmt)) {
        int d = w[0]->cols, ok = 1;
        for (int t = 0; t < n && ok; t++) {
            int32_t sum;
            float s;
            ok = tb_quantise_portable(x + (size_t)t * d, d, d, m->qrow, &sum, &s) == 0;
            for (int k = 0; k < d && ok; k++) m->fq[(size_t)t * d + k] = (float)m->qrow[k] / s;
        }
        if (ok) x = m->fq; /* else the matmul refuses the input itself, naming token and column */
    }
    if (tb_matmul_many(ctx, (const tb_matrix *const *)w, count, x, n, ys) == 0) return 0;
    char why[400];
    snprintf(why, sizeof why, "%s", tb_last_error());
    return tb_fail("model: layer %d, %s%s: %s", l, lin_names[first], count > 1 ? " and the others sharing its input" : "",
                   why);
}

static int forward(tb_model *m, tb_ctx *ctx, const int *tokens, int n, float *logits) {
    const tb_model_config *c = &m->c;
    if (n <= 0) return tb_fail("model: at least one token is needed (got %d)", n);
    if (m->pos + n > c->max_ctx)
        return tb_fail("model: %d tokens at position %d exceed the context of %d tokens", n, m->pos, c->max_ctx);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab)
            return tb_fail("model: token %d (at index %d) is outside the vocabulary of %d", tokens[t], t, c->vocab);
    if (grow_batch(m, n, ctx->threads)) return -1;
    int H = c->hidden;
    for (int t = 0; t < n; t++) tb_unpack_float_row(m->embed, tokens[t], m->x + (size_t)t * H);
    const tb_kernels *kt = ctx->variant->kernels;
    tb_dot_fn dot = kt->dot ? kt->dot : tb_dot_portable;
    tb_to_half_fn to_half = kt->to_half ? kt->to_half : tb_to_half_portable;
    attn_job aj = {m, 0, n, dot, kt->axpy ? kt->axpy : tb_axpy_portable,
                   kt->scores_h ? kt->scores_h : tb_scores_h_portable, kt->mix_h ? kt->mix_h : tb_mix_h_portable};
    for (int l = 0; l < c->layers; l++) {
        rows(ctx, (rows_job){ROW_NORM, n, H, m->h, m->x, norm_ptr(m, l, TB_NORM_ATTN), c->norm_eps, 0, dot});
        if (linears(m, ctx, l, TB_WQ, 3, m->h, n, (float *const[]){m->q, m->k, m->v})) return -1;
        for (int t = 0; t < n; t++) {
            rope(m, m->q + (size_t)t * m->qdim, c->heads, m->pos + t);
            rope(m, m->k + (size_t)t * m->kvdim, c->kv_heads, m->pos + t);
        }
        for (int t = 0; t < n; t++)
            for (int kvh = 0; kvh < c->kv_heads; kvh++) {
                size_t at = kv_index(m, l, kvh, m->pos + t), src = (size_t)t * m->kvdim + (size_t)kvh * c->head_dim;
                if (c->kv_fmt == TB_F16) {
                    to_half((uint16_t *)m->kcache + at, m->k + src, c->head_dim);
                    to_half((uint16_t *)m->vcache + at, m->v + src, c->head_dim);
                } else {
                    memcpy((float *)m->kcache + at, m->k + src, (size_t)c->head_dim * sizeof(float));
                    memcpy((float *)m->vcache + at, m->v + src, (size_t)c->head_dim * sizeof(float));
                }
            }
        aj.layer = l;
        tb_pool_run(ctx->pool, attn_task, &aj);
        if (c->sub_norms)
            rows(ctx, (rows_job){ROW_NORM, n, m->qdim, m->att, m->att, norm_ptr(m, l, TB_NORM_ATTN_SUB), c->norm_eps, 0, dot});
        if (linears(m, ctx, l, TB_WO, 1, m->att, n, &m->tmp)) return -1;
        rows(ctx, (rows_job){ROW_ADD, n, H, m->x, m->tmp, NULL, 0, 0, dot});
        rows(ctx, (rows_job){ROW_NORM, n, H, m->h, m->x, norm_ptr(m, l, TB_NORM_FFN), c->norm_eps, 0, dot});
        if (linears(m, ctx, l, TB_WGATE, 2, m->h, n, (float *const[]){m->g, m->u})) return -1;
        rows(ctx, (rows_job){ROW_ACT, n, c->ffn, m->g, m->u, NULL, 0, c->act_silu, dot});
        if (c->sub_norms)
            rows(ctx, (rows_job){ROW_NORM, n, c->ffn, m->g, m->g, norm_ptr(m, l, TB_NORM_FFN_SUB), c->norm_eps, 0, dot});
        if (linears(m, ctx, l, TB_WDOWN, 1, m->g, n, &m->tmp)) return -1;
        rows(ctx, (rows_job){ROW_ADD, n, H, m->x, m->tmp, NULL, 0, 0, dot});
    }
    m->pos += n;
    /* only the last token's logits are needed, to predict the next token */
    rmsnorm(m->h, m->x + (size_t)(n - 1) * H, norm_ptr(m, -1, TB_NORM_FINAL), 1, H, c->norm_eps, dot);
    if (tb_matmul(ctx, m->head, m->h, 1, m->logits)) {
        char why[400];
        snprintf(why, sizeof why, "%s", tb_last_error());
        return tb_fail("model: output head: %s", why);
    }
    int best = 0;
    for (int v = 1; v < c->vocab; v++)
        if (m->logits[v] > m->logits[best]) best = v;
    if (logits) memcpy(logits, m->logits, (size_t)c->vocab * sizeof(float));
    return best;
}

int tb_model_forward(tb_model *m, tb_ctx *ctx, const int *tokens, int n, float *logits) {
    tb_clear_error();
    if (!m || !ctx || !tokens) return tb_fail("model: NULL argument");
    if (tb_ctx_usable(ctx)) return -1;
    double t0 = tb_now();
    int r = forward(m, ctx, tokens, n, logits);
    m->busy_s += tb_now() - t0;
    return r;
}

double tb_model_busy_seconds(const tb_model *m) { return m ? m->busy_s : 0.0; }

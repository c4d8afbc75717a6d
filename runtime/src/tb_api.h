/* Public C API of the ternbench runtime.
 *
 * This file is parsed by cffi's cdef as well as by the C compiler, so it holds
 * only plain declarations: no macros, no includes, no conditional code.
 * Every function that can fail returns a negative status (or NULL) and leaves a
 * message in tb_last_error(); nothing here aborts the process on bad input. */

typedef struct tb_ctx tb_ctx;
typedef struct tb_matrix tb_matrix;

const char *tb_last_error(void);
const char *tb_version(void);
const char *tb_build_info(void);
/* The most threads a context may have. */
int tb_max_threads(void);

/* Kernel variants ("scalar", "avx2", ...) compiled into this build. */
int tb_variant_count(void);
const char *tb_variant_name(int i);
/* 1 when this CPU can run the variant; otherwise 0 and `why` names what is missing. */
int tb_variant_supported(const char *name, char *why, int why_len);
const char *tb_variant_best(void);

/* Weight formats: "i2s", "tq1", "f16", "f32", "int8" (per-row scale; int8 activations),
 * "tl1", "tl2" (ternary, lookup tables). */
int tb_format_count(void);
const char *tb_format_name(int fmt);
int tb_format_id(const char *name);
int tb_format_is_ternary(int fmt);
/* 1 for the formats whose kernels take per-token int8 activations (i2s, tq1, int8, tl1, tl2):
 * exact integer dot products. */
int tb_format_int_act(int fmt);
/* Column padding granularity: rows are stored padded with zero weights to this. */
int tb_format_block(int fmt);
/* Bytes a rows x cols matrix takes in a format (padding and row scales included), as
 * tb_matrix_bytes would report it; 0 for an unknown format or a negative size. */
size_t tb_format_matrix_bytes(int fmt, int rows, int cols);
/* 0 when a format can hold a rows x cols matrix (as tb_matrix_new would accept it); else
 * -1, and tb_last_error() names the limit. */
int tb_format_check_shape(int fmt, int rows, int cols);

/* A context owns a persistent thread pool, the chosen variant and scratch memory.
 * It is not safe to use one context from two Python threads at once. */
tb_ctx *tb_ctx_new(int threads, const char *variant);
void tb_ctx_free(tb_ctx *ctx);
int tb_ctx_threads(const tb_ctx *ctx);
const char *tb_ctx_variant(const tb_ctx *ctx);

/* GEMV tuning of one weight format in a context: software prefetch distance in
 * bytes ahead of the weight stream (0: none), and the granularity, in bytes of
 * weights, at which threads claim rows (0: a fixed equal split, no stealing; else
 * each thread reads its own share from the front in claims of this size, and a
 * thread that finishes early takes claims from the back of the others' shares).
 * Results never depend on it; only speed does. */
int tb_ctx_set_tuning(tb_ctx *ctx, int fmt, int prefetch_bytes, int chunk_bytes);
int tb_ctx_get_tuning(const tb_ctx *ctx, int fmt, int *prefetch_bytes, int *chunk_bytes);

/* Pack ternary values {-1,0,+1} (row-major rows x cols) with one scale per matrix.
 * Float formats store value*scale. */
tb_matrix *tb_pack_ternary(int fmt, const signed char *w, int rows, int cols, float scale);
/* Pack arbitrary float weights; float formats (f16, f32) only. */
tb_matrix *tb_pack_float(int fmt, const float *w, int rows, int cols);
/* A copy with the same contents (benchmarks cycle through copies to defeat caches). */
tb_matrix *tb_matrix_clone(const tb_matrix *m);
void tb_matrix_free(tb_matrix *m);
int tb_matrix_format(const tb_matrix *m);
int tb_matrix_rows(const tb_matrix *m);
int tb_matrix_cols(const tb_matrix *m);
float tb_matrix_scale(const tb_matrix *m);
/* Bytes of weight data a matmul reads (the whole packed matrix, padding included). */
size_t tb_matrix_bytes(const tb_matrix *m);
int tb_unpack_ternary(const tb_matrix *m, signed char *out);
int tb_unpack_float(const tb_matrix *m, float *out);

/* y[n][rows] = W x[n][cols]. n == 1 runs the GEMV kernel, n > 1 the GEMM kernel.
 * Ternary formats quantise each token of x to int8 (absmax, 127/max|x|). */
int tb_matmul(tb_ctx *ctx, const tb_matrix *w, const float *x, int n, float *y);
/* Integer formats (i2s, tq1, int8, tl1, tl2): exact integer dot products y[n][rows] = sum_k w*x. */
int tb_matmul_i8(tb_ctx *ctx, const tb_matrix *w, const signed char *x, int n, int *y);
/* tb_matmul for `count` matrices of one format and column count on the same input:
 * the input is quantised once and all of them run in one hand-off to the threads.
 * ys[j] receives n x rows of ws[j]. */
int tb_matmul_many(tb_ctx *ctx, const tb_matrix *const *ws, int count, const float *x, int n, float *const *ys);

/* Benchmark support, timed in C so that Python call overhead is not measured.
 * Call i runs one matmul of n tokens on mats[i % count]; seconds[i] is its wall
 * time. Cycling through copies larger than the caches makes every call read its
 * weights from memory, as a model's layers do. */
int tb_bench_matmul(tb_ctx *ctx, const tb_matrix **mats, int count, int n, int calls,
                    double *seconds);
/* STREAM-like read probe: every thread XOR-sums its share of a `bytes` buffer in
 * each access pattern; gbps[p * tb_read_pattern_count() + i] is the read bandwidth
 * (1e9 bytes/s) of pattern i in pass p. Pattern 0, "plain", is one sequential
 * stream per thread with no software prefetch: the denominator of bandwidth
 * fractions. */
int tb_read_pattern_count(void);
const char *tb_read_pattern_name(int i);
int tb_bench_read_bandwidth(tb_ctx *ctx, size_t bytes, int passes, double *gbps);

/* ---- whole models: the BitNet b1.58 decoder (and LLaMA-style 1.58-bit variants) ---- */

typedef struct tb_model tb_model;

typedef struct {
    int vocab, hidden, ffn, layers, heads, kv_heads, head_dim;
    int max_ctx;         /* KV cache capacity, tokens */
    float rope_theta, norm_eps;
    int act_silu;        /* 0: relu(x)^2 (BitNet b1.58 2B4T); 1: silu(x) (LLaMA style) */
    int sub_norms;       /* 1: RMSNorm before o_proj and before down_proj */
    int tied_head;       /* 1: the output head is the embedding matrix */
    int weight_fmt;      /* tb_format_id of the linear layers: a ternary format (i2s, tq1, tl1, tl2) or f16 */
    int head_fmt;        /* tb_format_id of the embedding / output head: f16, int8 (f32 for tests) */
    int float_act_quant; /* float weight formats: quantise each linear's input per token to int8
                            and back (x -> round(x s) / s), the float reference of BitNet's math */
    int kv_fmt;          /* tb_format_id of the KV cache: f16 or f32 */
} tb_model_config;

/* Linear layers of a decoder layer, for tb_model_set_linear. */
enum { TB_WQ, TB_WK, TB_WV, TB_WO, TB_WGATE, TB_WUP, TB_WDOWN };
/* Norm weights: per layer, or TB_NORM_FINAL with layer -1. */
enum { TB_NORM_ATTN, TB_NORM_FFN, TB_NORM_ATTN_SUB, TB_NORM_FFN_SUB, TB_NORM_FINAL };

/* Allocates a model: linear weights and norms uninitialised until set or generated. */
tb_model *tb_model_new(const tb_model_config *cfg);
void tb_model_free(tb_model *m);
/* Synthetic weights, generated in C straight into the packed formats on ctx's threads:
 * ternary values with about one third zeros, scale 1/sqrt(cols), norms 1, embedding
 * about uniform on the grid k/128, k in [-127, 127]. The same seed gives the same values in every format. */
int tb_model_init_random(tb_model *m, tb_ctx *ctx, unsigned long long seed);
/* Real weights. Ternary values in {-1,0,1} (rows x cols as the config implies) times scale. */
int tb_model_set_linear(tb_model *m, int layer, int which, const signed char *w, float scale);
int tb_model_set_norm(tb_model *m, int layer, int which, const float *w);
int tb_model_set_embedding(tb_model *m, const float *w);   /* vocab x hidden */
int tb_model_set_output(tb_model *m, const float *w);      /* vocab x hidden, untied models */
/* Bytes of weights (packed, padding included) the model holds. */
size_t tb_model_weight_bytes(const tb_model *m);
/* Weight bytes one generated token reads: every linear layer and the output head. */
size_t tb_model_bytes_per_token(const tb_model *m);
void tb_model_reset(tb_model *m);
int tb_model_pos(const tb_model *m);
/* Runs n tokens at the current position as one batch (GEMM for n > 1, GEMV for n = 1),
 * appends them to the KV cache, writes the last token's logits (vocab floats) when
 * logits is not NULL, and returns the argmax of those logits, or -1 on error. */
int tb_model_forward(tb_model *m, tb_ctx *ctx, const int *tokens, int n, float *logits);
/* Wall seconds spent inside tb_model_forward since the model was created, timed in C:
 * the runtime's own clock, against which the harness checks its timing. */
double tb_model_busy_seconds(const tb_model *m);

/* Weight formats: packing from ternary or float values into the grouped layout
 * (tb_internal.h), and unpacking back. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "tb_internal.h"

/* row_block: rows are padded to it and stored in blocks of it (TB_GROUP, or TB_TL_ROWS),
 * and a GEMV shares its rows between threads in blocks */
static const struct { const char *name; int ternary, int_act, block, max_cols, row_block; } formats[TB_NFORMATS] = {
    [TB_I2S] = {"i2s", 1, 1, TB_I2S_BLOCK, TB_MAX_COLS, TB_GROUP},
    [TB_TQ1] = {"tq1", 1, 1, TB_TQ1_BLOCK, TB_MAX_COLS, TB_GROUP},
    [TB_F16] = {"f16", 0, 0, TB_F16_BLOCK, TB_MAX_COLS, TB_GROUP},
    [TB_F32] = {"f32", 0, 0, TB_F32_BLOCK, TB_MAX_COLS, TB_GROUP},
    [TB_I8] = {"int8", 0, 1, TB_I8_BLOCK, TB_I8_MAX_COLS, TB_GROUP},
    [TB_TL1] = {"tl1", 1, 1, TB_TL1_BLOCK, TB_MAX_COLS, TB_TL_ROWS},
    [TB_TL2] = {"tl2", 1, 1, TB_TL2_BLOCK, TB_MAX_COLS, TB_TL_ROWS},
};

int tb_format_count(void) { return TB_NFORMATS; }
static int valid_fmt(int f) { return f >= 0 && f < TB_NFORMATS; }
const char *tb_format_name(int f) { return valid_fmt(f) ? formats[f].name : NULL; }
int tb_format_is_ternary(int f) { return valid_fmt(f) && formats[f].ternary; }
int tb_format_int_act(int f) { return valid_fmt(f) && formats[f].int_act; }
int tb_format_block(int f) { return valid_fmt(f) ? formats[f].block : 0; }
int tb_format_row_block(int f) { return valid_fmt(f) ? formats[f].row_block : 0; }

int tb_format_id(const char *name) {
    for (int f = 0; f < TB_NFORMATS; f++)
        if (strcmp(formats[f].name, name) == 0) return f;
    return -1;
}

static size_t row_bytes_for(int fmt, int kpad) {
    int rb = formats[fmt].row_block;
    return tb_format_matrix_bytes(fmt, rb, kpad) / (size_t)rb - (fmt == TB_I8 ? sizeof(float) : 0);
}

static int group_pad(int fmt, int rows) {
    int rb = formats[fmt].row_block;
    return (rows + rb - 1) / rb * rb;
}

size_t tb_format_matrix_bytes(int fmt, int rows, int cols) {
    if (!valid_fmt(fmt) || rows < 0 || cols < 0) return 0;
    /* in size_t: an estimate for any shape, including ones tb_matrix_new refuses */
    size_t block = (size_t)formats[fmt].block, kpad = ((size_t)cols + block - 1) / block * block;
    size_t rb = (size_t)formats[fmt].row_block, rows_pad = ((size_t)rows + rb - 1) / rb * rb;
    size_t row = fmt == TB_I2S || fmt == TB_TL1 ? kpad / 4 : fmt == TB_TQ1 ? kpad / 5 : fmt == TB_F16 ? kpad * 2
               : fmt == TB_I8 ? kpad + sizeof(float) : fmt == TB_TL2 ? kpad / 24 * 5 : kpad * 4;
    return rows_pad * row;
}

static void pack_tl_row(tb_matrix *m, int r, const int8_t *w);

/* The packed bytes of one row holding only zero weights. */
static void zero_row(tb_matrix *m, int r) {
    if (tb_is_tl(m->fmt)) {
        pack_tl_row(m, r, NULL);
        return;
    }
    /* i2s code u = 1 in every 2-bit field; tq1: all five trits 1, v = 121, q = 128 */
    int byte = m->fmt == TB_I2S ? 0x55 : m->fmt == TB_TQ1 ? 128 : 0;
    for (size_t c = 0; c < m->row_bytes / TB_CHUNK; c++) memset(tb_chunk(m, r, c), byte, TB_CHUNK);
    if (m->row_scale) m->row_scale[r] = 0.0f;
}

/* 0 when fmt can hold a rows x cols matrix; else -1 with the reason in tb_last_error(). */
static int check_shape(int fmt, int rows, int cols) {
    if (!valid_fmt(fmt)) return tb_fail("unknown weight format id %d", fmt);
    const char *name = formats[fmt].name;
    if (rows <= 0 || cols <= 0)
        return tb_fail("%s: a matrix needs at least one row and one column (got %d x %d)", name, rows, cols);
    if (cols > formats[fmt].max_cols)
        return tb_fail("%s: %d columns is more than this format can hold (at most %d, so that "
                       "integer dot products stay exact in 32 bits)", name, cols, formats[fmt].max_cols);
    if (rows > TB_MAX_ROWS)
        return tb_fail("%s: %d rows is more than the runtime supports (at most %d)", name, rows, TB_MAX_ROWS);
    return 0;
}

int tb_format_check_shape(int fmt, int rows, int cols) {
    tb_clear_error();
    return check_shape(fmt, rows, cols);
}

tb_matrix *tb_matrix_new(int fmt, int rows, int cols) {
    if (check_shape(fmt, rows, cols)) return NULL;
    const char *name = formats[fmt].name;
    int block = formats[fmt].block;
    int kpad = (cols + block - 1) / block * block;
    tb_matrix *m = calloc(1, sizeof *m);
    if (!m) { tb_fail("out of memory"); return NULL; }
    m->fmt = fmt;
    m->rows = rows;
    m->rows_pad = group_pad(fmt, rows);
    m->cols = cols;
    m->kpad = kpad;
    m->scale = 1.0f;
    m->row_bytes = row_bytes_for(fmt, kpad);
    m->nbytes = m->row_bytes * (size_t)m->rows_pad;
    m->data = tb_aligned_alloc(m->nbytes);
    if (fmt == TB_I8 && !(m->row_scale = tb_aligned_alloc((size_t)m->rows_pad * sizeof(float)))) {
        tb_aligned_free(m->data);
        m->data = NULL;
    }
    if (!m->data) {
        free(m);
        tb_fail("%s: out of memory allocating %zu bytes for a %d x %d matrix", name,
                (size_t)group_pad(fmt, rows) * row_bytes_for(fmt, kpad), rows, cols);
        return NULL;
    }
    for (int r = rows; r < m->rows_pad; r++) zero_row(m, r);
    return m;
}

void tb_matrix_free(tb_matrix *m) {
    if (!m) return;
    tb_aligned_free(m->data);
    tb_aligned_free(m->row_scale);
    free(m);
}

/* Padding columns hold weight 0: stored u = 1 for the biased ternary codes. */
static void pack_i2s_row(tb_matrix *m, int r, const int8_t *w) {
    for (int b = 0; b < m->kpad / TB_I2S_BLOCK; b++) {
        uint8_t *dst = tb_chunk(m, r, (size_t)b);
        for (int j = 0; j < 64; j++) {
            uint8_t byte = 0;
            for (int s = 0; s < 4; s++) {
                int k = b * TB_I2S_BLOCK + s * 64 + j;
                int u = k < m->cols ? w[k] + 1 : 1;
                byte |= (uint8_t)(u << (2 * s));
            }
            dst[j] = byte;
        }
    }
}

static void pack_tq1_row(tb_matrix *m, int r, const int8_t *w) {
    for (int b = 0; b < m->kpad / TB_TQ1_BLOCK; b++) {
        uint8_t *dst = tb_chunk(m, r, (size_t)b);
        for (int j = 0; j < 64; j++) {
            unsigned v = 0;
            for (int i = 0; i < 5; i++) {
                int k = b * TB_TQ1_BLOCK + i * 64 + j;
                v = v * 3 + (unsigned)(k < m->cols ? w[k] + 1 : 1);
            }
            dst[j] = (uint8_t)((v * 256 + 242) / 243);
        }
    }
}

/* tl: where row r's bytes are in k-step s: 4 index bytes (byte j holds groups j and
 * 4 + j) and, for tl2, the sign bytes of its sub-block (bit p of the first 8 for the
 * low nibble of index byte p, of the next 8 for the high nibble); p0 = 4 (r % 16). */
static uint8_t *tl_at(const tb_matrix *m, int r, int s, uint8_t **signs, int *p0) {
    uint8_t *step = tb_tl_step(m, r, s);
    int sub = r % TB_TL_ROWS / 16;
    *p0 = 4 * (r % 16);
    *signs = step + TB_TL_SUBS * TB_TL_SUB + TB_TL2_SIGNS * sub;
    return step + TB_TL_SUB * sub + *p0;
}

/* w NULL: a row of zero weights; columns past cols are zero weights. */
static void pack_tl_row(tb_matrix *m, int r, const int8_t *w) {
    const int tl1 = m->fmt == TB_TL1, gsize = tl1 ? 2 : 3, steps = tb_tl_steps(m);
    for (int s = 0; s < steps; s++) {
        uint8_t *sg;
        int p0;
        uint8_t *idx = tl_at(m, r, s, &sg, &p0);
        memset(idx, 0, 4);
        for (int g = 0; g < 8; g++) {
            int c = 0;
            for (int j = 0; j < gsize; j++) {
                int k = (s * 8 + g) * gsize + j;
                c = 3 * c + (w && k < m->cols ? w[k] : 0) + 1;
            }
            int neg = !tl1 && c > 13, p = p0 + g % 4;
            idx[g % 4] |= (uint8_t)((neg ? 26 - c : c) << 4 * (g / 4));
            if (!tl1) {
                uint8_t *byte = sg + 8 * (g / 4) + p / 8;
                *byte = (uint8_t)((*byte & ~(1u << p % 8)) | (unsigned)neg << p % 8);
            }
        }
    }
}

void tb_tl_decode(const tb_matrix *m, int r, int s, int8_t *w) {
    const int tl1 = m->fmt == TB_TL1;
    uint8_t *sg;
    int p0;
    const uint8_t *idx = tl_at(m, r, s, &sg, &p0);
    for (int g = 0; g < 8; g++) {
        int v = idx[g % 4] >> 4 * (g / 4) & 15;
        if (tl1) {
            w[2 * g] = (int8_t)(v / 3 - 1);
            w[2 * g + 1] = (int8_t)(v % 3 - 1);
        } else {
            int p = p0 + g % 4, c = sg[8 * (g / 4) + p / 8] >> p % 8 & 1 ? 26 - v : v;
            w[3 * g] = (int8_t)(c / 9 - 1);
            w[3 * g + 1] = (int8_t)(c / 3 % 3 - 1);
            w[3 * g + 2] = (int8_t)(c % 3 - 1);
        }
    }
}

/* GEMM panels decode every weight once per call: per index byte (groups j and 4 + j)
 * a table gives both groups' codes (tl2: keyed by their sign bits too), rather than
 * dividing each index by 3 and 9, which cost three times the GEMM's multiply-adds. */
static uint8_t tl1_codes[256][4];      /* byte -> codes of group j (2), of group 4 + j (2) */
static uint8_t tl2_codes[1024][6];     /* byte | sign j << 8 | sign 4 + j << 9 -> 3 + 3 codes */
static pthread_once_t tl_codes_once = PTHREAD_ONCE_INIT;

static void tl_codes_init(void) {
    for (int key = 0; key < 1024; key++)
        for (int half = 0; half < 2; half++) {
            unsigned v = (unsigned)key >> 4 * half & 15, c = key >> (8 + half) & 1 ? 26 - v : v;
            if (key < 256) {
                tl1_codes[key][2 * half] = (uint8_t)(v / 3 % 3);
                tl1_codes[key][2 * half + 1] = (uint8_t)(v % 3);
            }
            for (int d = 0, pow3 = 9; d < 3; d++, pow3 /= 3) tl2_codes[key][3 * half + d] = (uint8_t)(c / pow3 % 3);
        }
}

void tb_tl_codes(const tb_matrix *m, int r, int s0, uint8_t *u) {
    const int tl1 = m->fmt == TB_TL1, steps = tb_tl_steps(m);
    pthread_once(&tl_codes_once, tl_codes_init);
    for (int s = s0; s < steps; s++) {
        uint8_t *sg;
        int p0;
        const uint8_t *idx = tl_at(m, r, s, &sg, &p0);
        if (tl1) {
            for (int j = 0; j < 4; j++) {
                memcpy(u + 2 * j, tl1_codes[idx[j]], 2);
                memcpy(u + 8 + 2 * j, tl1_codes[idx[j]] + 2, 2);
            }
            u += TB_TL1_BLOCK;
        } else {
            /* the row's sign bits: 4 of byte p0 / 8 for each nibble half */
            unsigned lo = sg[p0 / 8] >> p0 % 8, hi = sg[8 + p0 / 8] >> p0 % 8;
            for (int j = 0; j < 4; j++) {
                const uint8_t *c = tl2_codes[idx[j] | (lo >> j & 1) << 8 | (hi >> j & 1) << 9];
                memcpy(u + 3 * j, c, 3);
                memcpy(u + 12 + 3 * j, c + 3, 3);
            }
            u += TB_TL2_BLOCK;
        }
    }
}

tb_matrix *tb_pack_ternary(int fmt, const signed char *w, int rows, int cols, float scale) {
    tb_clear_error();
    if (!w) { tb_fail("pack: weights pointer is NULL"); return NULL; }
    if (!isfinite(scale)) { tb_fail("pack: the scale must be finite (got %g)", (double)scale); return NULL; }
    tb_matrix *m = tb_matrix_new(fmt, rows, cols);
    if (!m) return NULL;
    long bad = tb_fill_ternary(m, (const int8_t *)w, scale);
    if (bad >= 0) {
        tb_fail("pack %s: weight at row %ld, column %ld is %d, not one of -1, 0, +1", formats[fmt].name,
                bad / cols, bad % cols, w[bad]);
        tb_matrix_free(m);
        return NULL;
    }
    return m;
}

long tb_fill_ternary(tb_matrix *m, const int8_t *w, float scale) {
    size_t n = (size_t)m->rows * (size_t)m->cols;
    for (size_t i = 0; i < n; i++)
        if (w[i] < -1 || w[i] > 1) return (long)i;
    for (int r = 0; r < m->rows; r++) tb_pack_ternary_row(m, r, w + (size_t)r * (size_t)m->cols, scale);
    if (formats[m->fmt].ternary) m->scale = scale;
    return -1;
}

void tb_pack_ternary_row(tb_matrix *m, int r, const int8_t *src, float scale) {
    int cols = m->cols;
    switch (m->fmt) {
    case TB_I2S: pack_i2s_row(m, r, src); break;
    case TB_TQ1: pack_tq1_row(m, r, src); break;
    case TB_TL1:
    case TB_TL2: pack_tl_row(m, r, src); break;
    case TB_F16: { /* three distinct values: convert them once */
        uint16_t v[3] = {tb_float_to_half(-scale), tb_float_to_half(0.0f), tb_float_to_half(scale)};
        for (int k = 0; k < m->kpad; k++) {
            uint16_t h = v[k < cols ? src[k] + 1 : 1];
            memcpy(tb_row_at(m, r, 2 * (size_t)k), &h, 2);
        }
        break;
    }
    case TB_I8: /* exact: the ternary values themselves, the scale per row */
        for (int k = 0; k < m->kpad; k++) *(int8_t *)tb_row_at(m, r, (size_t)k) = k < cols ? src[k] : 0;
        m->row_scale[r] = scale;
        break;
    default:
        for (int k = 0; k < m->kpad; k++) {
            float f = k < cols ? (float)src[k] * scale : 0.0f;
            memcpy(tb_row_at(m, r, 4 * (size_t)k), &f, 4);
        }
    }
}

void tb_pack_float_row(tb_matrix *m, int r, const float *src) {
    int cols = m->cols;
    if (m->fmt == TB_I8) { /* symmetric per-row absmax: q = round(w * 127 / max|w|), in [-127, 127] */
        float amax = 0.0f;
        for (int k = 0; k < cols; k++) amax = fmaxf(amax, fabsf(src[k]));
        float s = amax > 0.0f ? amax / 127.0f : 1.0f;
        for (int k = 0; k < m->kpad; k++)
            *(int8_t *)tb_row_at(m, r, (size_t)k) =
                k < cols ? (int8_t)fminf(fmaxf(nearbyintf(src[k] / s), -127.0f), 127.0f) : 0;
        m->row_scale[r] = s;
    } else if (m->fmt == TB_F16) {
        for (int k = 0; k < m->kpad; k++) {
            uint16_t h = tb_float_to_half(k < cols ? src[k] : 0.0f);
            memcpy(tb_row_at(m, r, 2 * (size_t)k), &h, 2);
        }
    } else {
        for (int k = 0; k < m->kpad; k++) {
            float f = k < cols ? src[k] : 0.0f;
            memcpy(tb_row_at(m, r, 4 * (size_t)k), &f, 4);
        }
    }
}

tb_matrix *tb_pack_float(int fmt, const float *w, int rows, int cols) {
    tb_clear_error();
    if (!w) { tb_fail("pack: weights pointer is NULL"); return NULL; }
    if (valid_fmt(fmt) && formats[fmt].ternary) {
        tb_fail("pack: %s holds ternary weights; ternarise float weights first "
                "(absmean: s = mean|W|, w = clip(round(W/s), -1, 1))", formats[fmt].name);
        return NULL;
    }
    tb_matrix *m = tb_matrix_new(fmt, rows, cols);
    if (!m) return NULL;
    for (int r = 0; r < rows; r++) {
        const float *src = w + (size_t)r * (size_t)cols;
        for (int k = 0; k < cols; k++)
            if (!isfinite(src[k])) {
                tb_fail("pack %s: weight at row %d, column %d is not finite", formats[fmt].name, r, k);
                tb_matrix_free(m);
                return NULL;
            }
        tb_pack_float_row(m, r, src);
    }
    return m;
}

tb_matrix *tb_matrix_clone(const tb_matrix *m) {
    tb_clear_error();
    if (!m) { tb_fail("clone: matrix is NULL"); return NULL; }
    tb_matrix *c = tb_matrix_new(m->fmt, m->rows, m->cols);
    if (!c) return NULL;
    c->scale = m->scale;
    memcpy(c->data, m->data, m->nbytes);
    if (m->row_scale) memcpy(c->row_scale, m->row_scale, (size_t)m->rows_pad * sizeof(float));
    return c;
}

int tb_matrix_format(const tb_matrix *m) { return m->fmt; }
int tb_matrix_rows(const tb_matrix *m) { return m->rows; }
int tb_matrix_cols(const tb_matrix *m) { return m->cols; }
float tb_matrix_scale(const tb_matrix *m) { return m->scale; }
size_t tb_matrix_bytes(const tb_matrix *m) { return tb_format_matrix_bytes(m->fmt, m->rows, m->cols); }

static int ternary_at(const tb_matrix *m, int r, int k) {
    if (m->fmt == TB_I2S) {
        int b = k / TB_I2S_BLOCK, e = k % TB_I2S_BLOCK;
        return ((tb_chunk(m, r, (size_t)b)[e % 64] >> (2 * (e / 64))) & 3) - 1;
    }
    int b = k / TB_TQ1_BLOCK, e = k % TB_TQ1_BLOCK;
    return tb_tq1_trit(tb_chunk(m, r, (size_t)b)[e % 64], e / 64) - 1;
}

/* Row r's ternary values, padding included (kpad of them). */
static void ternary_row(const tb_matrix *m, int r, int8_t *out) {
    if (tb_is_tl(m->fmt)) {
        int block = tb_format_block(m->fmt);
        for (int s = 0; s < tb_tl_steps(m); s++) tb_tl_decode(m, r, s, out + (size_t)s * block);
        return;
    }
    for (int k = 0; k < m->kpad; k++) out[k] = (int8_t)ternary_at(m, r, k);
}

int tb_unpack_ternary(const tb_matrix *m, signed char *out) {
    tb_clear_error();
    if (!m || !out) return tb_fail("unpack: NULL argument");
    if (!formats[m->fmt].ternary)
        return tb_fail("unpack: %s is not a ternary format; use the float unpack", formats[m->fmt].name);
    int8_t *row = malloc((size_t)m->kpad);
    if (!row) return tb_fail("unpack: out of memory");
    for (int r = 0; r < m->rows; r++) {
        ternary_row(m, r, row);
        memcpy((int8_t *)out + (size_t)r * (size_t)m->cols, row, (size_t)m->cols);
    }
    free(row);
    return 0;
}

void tb_unpack_float_row(const tb_matrix *m, int r, float *o) {
    const float *half = m->fmt == TB_F16 ? tb_half_table() : NULL;
    if (tb_is_tl(m->fmt)) {
        int8_t w[TB_TL2_BLOCK];
        int block = tb_format_block(m->fmt);
        for (int k = 0; k < m->cols; k++) {
            if (k % block == 0) tb_tl_decode(m, r, k / block, w);
            o[k] = (float)w[k % block] * m->scale;
        }
        return;
    }
    for (int k = 0; k < m->cols; k++) {
        if (formats[m->fmt].ternary) {
            o[k] = (float)ternary_at(m, r, k) * m->scale;
        } else if (m->fmt == TB_F16) {
            uint16_t h;
            memcpy(&h, tb_row_at(m, r, 2 * (size_t)k), 2);
            o[k] = half[h];
        } else if (m->fmt == TB_I8) {
            o[k] = (float)*(const int8_t *)tb_row_at(m, r, (size_t)k) * m->row_scale[r];
        } else {
            memcpy(&o[k], tb_row_at(m, r, 4 * (size_t)k), 4);
        }
    }
}

int tb_unpack_float(const tb_matrix *m, float *out) {
    tb_clear_error();
    if (!m || !out) return tb_fail("unpack: NULL argument");
    for (int r = 0; r < m->rows; r++) tb_unpack_float_row(m, r, out + (size_t)r * (size_t)m->cols);
    return 0;
}

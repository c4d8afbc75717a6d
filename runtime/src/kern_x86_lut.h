/* The x86 lookup-table kernels of tl1 and tl2 (layout in tb_internal.h), written once
 * against simd_x86.h. kern_x86.h includes this for every variant; with AVX-512 VBMI,
 * kern_x86_avx512*_vbmi.c include it again with TB_VBMI 1, and the avx512 variants
 * call those versions when the CPU has VBMI (tb_x86_vbmi).
 *
 * A GEMV reads a panel of 64-row blocks one k-chunk at a time, a block one k-step (8
 * groups) at a time: per 16-row sub-block 64 index bytes, 16 rows x 4 groups per
 * nibble, each a look-up into a 64-byte table of 4 groups (the token's A and B tables,
 * see tb_internal.h). vpermb does that look-up in one instruction; pshufb only within
 * 16-byte lanes, so without VBMI each group's table is broadcast in turn and its
 * results kept at that group's bytes. The four bytes of a dword are one row's four
 * groups, so a dword dot product sums them into that row: vpdpbusd with 8 (for A) or
 * 1 (for B), or vpmaddubsw + vpmaddwd without VNNI. */
#include <pthread.h>
#ifndef TB_VBMI
#define TB_VBMI 0
#endif
#if TB_VBMI && TB_X86_W != 512
#error "vpermb kernels are AVX-512 kernels"
#endif
#ifndef TB_FN
#define TB_CAT2(a, b) a##_##b
#define TB_CAT(a, b) TB_CAT2(a, b)
#define TB_FN(name) TB_CAT(name, TB_SUFFIX)
#endif
/* kern_x86_*_vbmi.c export their kernels to the avx512 variants' tables */
#if TB_VBMI
#define TL_API
#else
#define TL_API static
#endif

/* At 256 bits without vpermb (avx2, avxvnni), a sub-block's index bytes are
 * transposed in registers so that rows sit in the byte lanes (tl_lanes below). */
#define TL_LANES (!TB_VBMI && TB_X86_W == 256)

/* Without VNNI, and with rows in the lanes, look-ups add up in int16 lanes: per k-step
 * at most 8 x 2 x 96 for A plus 2 x 42 for B, so 16 k-steps stay below 2^15; then they
 * widen to int32. */
#if TB_VNNI && !TL_LANES
#define TL_KSEG (1 << 30)
#else
#define TL_KSEG 16
#endif
#define TL_NV (TB_TL_SUB / VB) /* vectors per k-step of a sub-block */

/* The table index of each nibble (hi: the high ones): nibble + 16 (p % 4). */
TB_INLINE vi tl_index(vi v, int hi) {
    if (hi) v = vi_srli16(v, 4);
    return vi_or(vi_and(v, vi_set8(0x0F)), vi_set32(0x30201000));
}

/* A k-step's tables: with vpermb in registers, loaded once for the block's 64 rows;
 * otherwise read group by group from the token's tables (in L1 by then). */
typedef struct {
#if TB_VBMI
    vi t[4]; /* A low groups, A high, B low, B high */
#else
    const int8_t *t;
#endif
} tl_tables;

TB_INLINE tl_tables tl_load(const int8_t *t) {
    tl_tables r;
#if TB_VBMI
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) r.t[i] = vi_ld(t + 64 * i);
#else
    r.t = t;
#endif
    return r;
}

/* a = A[idx], b = B[idx] from the tables of the low (hi 0) or high (hi 1) groups. */
TB_INLINE void tl_lookup(const tl_tables *t, int hi, vi idx, vi *a, vi *b) {
#if TB_VBMI
    *a = _mm512_permutexvar_epi8(idx, t->t[hi]);
    *b = _mm512_permutexvar_epi8(idx, t->t[2 + hi]);
#else
    const int8_t *tA = t->t + 64 * hi, *tB = tA + 128;
    vi ra = vi_zero(), rb = vi_zero();
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        /* bit 7 makes pshufb write 0: set at the bytes of the other three groups */
        vi ig = vi_or(idx, vi_set32((int)(0x80808080u ^ (0x80u << 8 * g))));
        ra = vi_or(ra, vi_shuf8(vi_bcast128(tA + 16 * g), ig));
        rb = vi_or(rb, vi_shuf8(vi_bcast128(tB + 16 * g), ig));
    }
    *a = ra;
    *b = rb;
#endif
}

/* One vector of a sub-block's k-step: p its index bytes, sg its sign bits (tl2).
 * acc: VNNI, int32 8 A and B; else int16 8 A + B. */
TB_INLINE void tl_step(int fmt, const uint8_t *p, const uint8_t *sg, const tl_tables *t, vi acc[2]) {
    vi v = vi_ld(p), alo, blo, ahi, bhi;
    tl_lookup(t, 0, tl_index(v, 0), &alo, &blo);
    tl_lookup(t, 1, tl_index(v, 1), &ahi, &bhi);
    if (fmt == TB_TL2) {
        alo = vi_neg_bits(alo, sg);
        blo = vi_neg_bits(blo, sg);
        ahi = vi_neg_bits(ahi, sg + 8);
        bhi = vi_neg_bits(bhi, sg + 8);
    }
    vi a = vi_add8(alo, ahi), b = vi_add8(blo, bhi); /* |A| <= 48, |B| <= 21: two fit a byte */
    const vi eight = vi_set8(8), one = vi_set8(1);
#if TB_VNNI
    acc[0] = vi_dpbusd(acc[0], eight, a);
    acc[1] = vi_dpbusd(acc[1], one, b);
#else
    acc[0] = vi_add16(acc[0], vi_add16(vi_maddubs(eight, a), vi_maddubs(one, b)));
#endif
}

#if TL_LANES
/* One sub-block's k-step with its 16 rows in the byte lanes, after bitnet.cpp's TL2
 * kernel: every pshufb then looks up 32 rows in one group's table (one per 128-bit
 * lane), where the broadcast tables of tl_lookup take four pshufb and four or per 32
 * look-ups. The layout puts a row's 4 index bytes in one dword; a byte shuffle, a
 * dword permute and two 64-bit unpacks turn the sub-block's 64 bytes into v01 (lane 0:
 * byte 0 of rows 0-15, lane 1: byte 1) and v23 (bytes 2 and 3). Their low nibbles
 * index the tables of groups 0|1 and 2|3, the high ones those of 4|5 and 6|7: the
 * token's tables already hold groups 0-3, then 4-7, 16 bytes each. tl2's sign of row
 * r's group j is bit 4 (r % 2) + j of sign byte r / 2: a shuffle copies that byte to
 * row r's lane, a mask keeps the bit and adding 0x7F makes the byte negative exactly
 * when the bit is set, which is what psignb reads. Per row, lo accumulates rows 0-7
 * and hi rows 8-15 as int16 8 A + B, one half per 128-bit lane (summed in tl_widen). */
TB_INLINE void tl_lanes(int fmt, const uint8_t *p, const uint8_t *sg, const int8_t *t, vi *lo, vi *hi) {
    const vi by_byte = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                        0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const vi by_dword = _mm256_setr_epi32(0, 4, 2, 6, 1, 5, 3, 7), m = vi_set8(15);
    vi y0 = _mm256_permutevar8x32_epi32(vi_shuf8(vi_ld(p), by_byte), by_dword);
    vi y1 = _mm256_permutevar8x32_epi32(vi_shuf8(vi_ld(p + 32), by_byte), by_dword);
    vi v01 = _mm256_unpacklo_epi64(y0, y1), v23 = _mm256_unpackhi_epi64(y0, y1);
    vi i01 = vi_and(v01, m), i23 = vi_and(v23, m);
    vi i45 = vi_and(vi_srli16(v01, 4), m), i67 = vi_and(vi_srli16(v23, 4), m);
    vi a01 = vi_shuf8(vi_ld(t), i01), a23 = vi_shuf8(vi_ld(t + 32), i23);
    vi a45 = vi_shuf8(vi_ld(t + 64), i45), a67 = vi_shuf8(vi_ld(t + 96), i67);
    vi b01 = vi_shuf8(vi_ld(t + 128), i01), b23 = vi_shuf8(vi_ld(t + 160), i23);
    vi b45 = vi_shuf8(vi_ld(t + 192), i45), b67 = vi_shuf8(vi_ld(t + 224), i67);
    if (fmt == TB_TL2) {
        const vi pair = _mm256_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
                                         0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        const vi bit01 = _mm256_setr_epi64x(0x1001100110011001ll, 0x1001100110011001ll,
                                            0x2002200220022002ll, 0x2002200220022002ll);
        const vi bit23 = _mm256_setr_epi64x(0x4004400440044004ll, 0x4004400440044004ll,
                                            (long long)0x8008800880088008ull, (long long)0x8008800880088008ull);
        const vi neg = vi_set8(0x7F);
        int64_t w0, w1;
        memcpy(&w0, sg, 8);
        memcpy(&w1, sg + 8, 8);
        vi slo = vi_shuf8(_mm256_set1_epi64x(w0), pair), shi = vi_shuf8(_mm256_set1_epi64x(w1), pair);
        vi s01 = vi_add8(vi_and(slo, bit01), neg), s23 = vi_add8(vi_and(slo, bit23), neg);
        vi s45 = vi_add8(vi_and(shi, bit01), neg), s67 = vi_add8(vi_and(shi, bit23), neg);
        a01 = vi_sign8(a01, s01), b01 = vi_sign8(b01, s01), a23 = vi_sign8(a23, s23), b23 = vi_sign8(b23, s23);
        a45 = vi_sign8(a45, s45), b45 = vi_sign8(b45, s45), a67 = vi_sign8(a67, s67), b67 = vi_sign8(b67, s67);
    }
    /* two look-ups of A (|A| <= 48) or of B (|B| <= 21) still fit a byte */
    vi a1 = vi_add8(a01, a45), a2 = vi_add8(a23, a67), b1 = vi_add8(b01, b45), b2 = vi_add8(b23, b67);
    const vi coef = vi_set16(0x0108); /* bytes 8, 1: 8 A + B of one row per int16 */
    *lo = vi_add16(*lo, vi_add16(vi_maddubs(coef, _mm256_unpacklo_epi8(a1, b1)),
                                 vi_maddubs(coef, _mm256_unpacklo_epi8(a2, b2))));
    *hi = vi_add16(*hi, vi_add16(vi_maddubs(coef, _mm256_unpackhi_epi8(a1, b1)),
                                 vi_maddubs(coef, _mm256_unpackhi_epi8(a2, b2))));
}

/* int16 8 A + B of 8 rows, one half per 128-bit lane, added into their int32 totals. */
TB_INLINE vi tl_widen(vi tot, vi a) {
    return vi_add32(vi_add32(tot, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(a))),
                    _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a, 1)));
}
#endif

/* Rows [r0, r1) are whole panels (the last may end early). Row 16 b + r of a block is
 * int32 lane r % (VB / 4) of sub-block b's vector r / (VB / 4). Totals are kept modulo
 * 2^32 in out across k-chunks; the true sums fit int32. */
TB_INLINE void gemv_tl(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o, int fmt) {
    uint32_t *out = y;
    const int steps = tb_tl_steps(w);
    const size_t pf = (size_t)o->prefetch, step_bytes = tb_tl_step_bytes(fmt);
    for (int rp = r0, rend; rp < r1; rp = rend) {
        rend = tb_tl_panel_end(rp, r1);
        for (int c0 = 0; c0 < steps; c0 += TB_TL_CHUNK) {
            const int c1 = steps - c0 < TB_TL_CHUNK ? steps : c0 + TB_TL_CHUNK;
            for (int r = rp; r < rend; r += TB_TL_ROWS) {
                const uint8_t *p = tb_tl_step(w, r, c0);
                vi tot[TB_TL_SUBS][TL_NV];
#pragma GCC unroll 8
                for (int b = 0; b < TB_TL_SUBS * TL_NV; b++) tot[b / TL_NV][b % TL_NV] = vi_zero();
                for (int s0 = c0; s0 < c1; s0 += TL_KSEG) {
                    const int s1 = c1 - s0 < TL_KSEG ? c1 : s0 + TL_KSEG;
                    vi acc[TB_TL_SUBS][TL_NV][2];
#pragma GCC unroll 8
                    for (int b = 0; b < TB_TL_SUBS * TL_NV; b++)
                        acc[b / TL_NV][b % TL_NV][0] = acc[b / TL_NV][b % TL_NV][1] = vi_zero();
                    for (int s = s0; s < s1; s++, p += step_bytes) {
                        if (pf)
                            for (size_t off = 0; off < step_bytes; off += 64) prefetch_line(p + off, pf);
                        const uint8_t *sg = p + TB_TL_SUBS * TB_TL_SUB;
#if TL_LANES
#pragma GCC unroll 4
                        for (int b = 0; b < TB_TL_SUBS; b++)
                            tl_lanes(fmt, p + b * TB_TL_SUB, sg + b * TB_TL2_SIGNS, x->lut + (size_t)s * TB_TL_LUT_STEP,
                                     &acc[b][0][0], &acc[b][1][0]);
#else
                        const tl_tables t = tl_load(x->lut + (size_t)s * TB_TL_LUT_STEP);
#pragma GCC unroll 8
                        for (int b = 0; b < TB_TL_SUBS * TL_NV; b++)
                            tl_step(fmt, p + b * VB, sg + b / TL_NV * TB_TL2_SIGNS + b % TL_NV * (VB / 8), &t,
                                    acc[b / TL_NV][b % TL_NV]);
#endif
                    }
#pragma GCC unroll 8
                    for (int b = 0; b < TB_TL_SUBS * TL_NV; b++) {
                        vi *a = acc[b / TL_NV][b % TL_NV];
#if TL_LANES
                        tot[b / TL_NV][b % TL_NV] = tl_widen(tot[b / TL_NV][b % TL_NV], a[0]);
#elif TB_VNNI
                        tot[b / TL_NV][b % TL_NV] = vi_add32(tot[b / TL_NV][b % TL_NV], vi_add32(a[0], a[1]));
#else
                        tot[b / TL_NV][b % TL_NV] = vi_add32(tot[b / TL_NV][b % TL_NV], vi_madd16(a[0], vi_set16(1)));
#endif
                    }
                }
                uint32_t rows[TB_TL_ROWS];
#pragma GCC unroll 8
                for (int b = 0; b < TB_TL_SUBS * TL_NV; b++) vi_st(rows + b * (VB / 4), tot[b / TL_NV][b % TL_NV]);
                const int nr = rend - r < TB_TL_ROWS ? rend - r : TB_TL_ROWS;
                for (int i = 0; i < nr; i++) out[r + i] = (c0 ? out[r + i] : 0) + rows[i];
            }
        }
    }
}

TL_API void TB_FN(gemv_tl1)(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_tl(w, x, r0, r1, y, o, TB_TL1);
}
TL_API void TB_FN(gemv_tl2)(const tb_matrix *w, const tb_act *x, int r0, int r1, void *y, const tb_kopts *o) {
    gemv_tl(w, x, r0, r1, y, o, TB_TL2);
}

#if TB_VBMI
/* Constants of the row decoder below, per format: for each of the output vectors of 16
 * k-steps, the source byte of each code (bit 6: the high nibbles) and its digit's table
 * offset; and the 128-entry digit table. */
static struct {
    uint8_t pos[2][6][64], dig[2][6][64], table[2][128];
} tl_dec;
static pthread_once_t tl_dec_once = PTHREAD_ONCE_INIT;

static void tl_dec_init(void) {
    for (int t = 0; t < 2; t++) {
        const int gsize = t ? 3 : 2, block = 8 * gsize;
        for (int q = 0; q < 6; q++)
            for (int o = 0; o < 64; o++) {
                int code = 64 * q + o, s = code / block, g = code % block / gsize, d = code % gsize;
                tl_dec.pos[t][q][o] = (uint8_t)((g >= 4 ? 64 : 0) + 4 * (s % 16) + g % 4);
                tl_dec.dig[t][q][o] = (uint8_t)(d << (t ? 5 : 4));
            }
        for (int i = 0; i < 128; i++) { /* tl1: 16 d + v; tl2: 32 d + 16 sign + v */
            int d = t ? i >> 5 : i >> 4, v = i & 15, c = t && i >> 4 & 1 ? 26 - v : v;
            int pow3 = d == gsize - 1 ? 1 : d == gsize - 2 ? 3 : 9;
            tl_dec.table[t][i] = (uint8_t)(d < gsize ? c / pow3 % 3 : 0);
        }
    }
}

/* GEMM panels: row r as u = w + 1 codes, 16 k-steps at a time. A gather collects the
 * row's 4 index bytes of each k-step (tl2: and its sign bytes, whose bits join the
 * nibbles as bit 4); vpermi2b puts each group's nibble at its codes' bytes and a
 * second one looks the digits up: 3 instructions per 64 codes, where the byte tables
 * of tb_tl_codes cost the GEMM twice its multiply-adds. */
_Static_assert(TB_TL_CHUNK % 16 == 0, "a gather of 16 k-steps must stay inside one k-chunk");
TL_API void TB_FN(tl_codes)(const tb_matrix *m, int r, uint8_t *u) {
    const int t = m->fmt == TB_TL2, steps = tb_tl_steps(m), block = t ? TB_TL2_BLOCK : TB_TL1_BLOCK;
    const int nv = t ? 6 : 4, step_bytes = (int)tb_tl_step_bytes(m->fmt);
    const int sub = r % TB_TL_ROWS / 16, p0 = 4 * (r % 16);
    pthread_once(&tl_dec_once, tl_dec_init);
    const vi vindex = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         vi_set32(step_bytes));
    const vi t0 = vi_ld(tl_dec.table[t]), t1 = vi_ld(tl_dec.table[t] + 64);
    /* a sign byte's 4 bits for this row's groups, to the 4 bytes of its dword, bit j + p0 % 8 in byte j */
    const vi spread = _mm512_broadcast_i32x4(_mm_setr_epi32(0, 0x04040404, 0x08080808, 0x0c0c0c0c));
    const vi bits = vi_set32((int)(0x08040201u << p0 % 8));
    int s = 0;
    for (; s + 16 <= steps; s += 16, u += 16 * block) {
        /* 16 k-steps never straddle a k-chunk: they follow each other */
        const uint8_t *step = tb_tl_step(m, r, s), *base = step + TB_TL_SUB * sub + p0;
        const uint8_t *sbase = step + TB_TL_SUBS * TB_TL_SUB + TB_TL2_SIGNS * sub + p0 / 8;
        vi v = _mm512_i32gather_epi32(vindex, base, 1);
        vi lo = vi_and(v, vi_set8(15)), hi = vi_and(vi_srli16(v, 4), vi_set8(15));
        if (t) {
            vi slo = _mm512_i32gather_epi32(vindex, sbase, 1), shi = _mm512_i32gather_epi32(vindex, sbase + 8, 1);
            lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(vi_shuf8(slo, spread), bits), lo, vi_set8(16));
            hi = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(vi_shuf8(shi, spread), bits), hi, vi_set8(16));
        }
        for (int q = 0; q < nv; q++) {
            vi src = _mm512_permutex2var_epi8(lo, vi_ld(tl_dec.pos[t][q]), hi);
            vi_st(u + 64 * q, _mm512_permutex2var_epi8(t0, vi_or(src, vi_ld(tl_dec.dig[t][q])), t1));
        }
    }
    if (s < steps) tb_tl_codes(m, r, s, u);
}
#endif

#if !TB_VBMI
/* A token's tables, VB / 16 groups per vector (one per 128-bit lane): the group's
 * activations are broadcast across its lane's 16 entries with pshufb, split into
 * x >> 3 and x & 7, and added with the sign of the entry's weight. The same integer
 * values as tb_tl_lut_portable, so the same tables. */
static void TB_FN(tl_lut)(int fmt, const int8_t *q, int kpad, int8_t *lut) {
    const int gsize = fmt == TB_TL1 ? 2 : 3, entries = fmt == TB_TL1 ? 9 : 14, gv = VB / 16;
    const int steps = kpad / (8 * gsize);
    uint8_t sel[3][VB];
    int8_t dig[3][VB];
    for (int j = 0; j < gsize; j++) {
        int pow3 = j == gsize - 1 ? 1 : j == gsize - 2 ? 3 : 9;
        for (int b = 0; b < VB; b++) {
            int i = b % 16;
            sel[j][b] = (uint8_t)(b / 16 * gsize + j);
            dig[j][b] = (int8_t)(i < entries ? i / pow3 % 3 - 1 : 0);
        }
    }
    vi vsel[3], vdig[3];
    for (int j = 0; j < gsize; j++) {
        vsel[j] = vi_ld(sel[j]);
        vdig[j] = vi_ld(dig[j]);
    }
    for (int s = 0; s < steps; s++)
        for (int g0 = 0; g0 < 8; g0 += gv) {
            /* 16 activations from the group's first: reads at most 13 past the k-step's
             * last, inside the slack prepare() leaves after the activations */
            vi win = vi_bcast128(q + (s * 8 + g0) * gsize);
            vi xa = vi_add8(vi_and(vi_srli16(vi_xor(win, vi_set8(0x80)), 3), vi_set8(0x1F)), vi_set8(-16));
            vi xb = vi_and(win, vi_set8(7));
            vi a = vi_zero(), b = vi_zero();
            for (int j = 0; j < gsize; j++) {
                a = vi_add8(a, vi_mulsign8(vi_shuf8(xa, vsel[j]), vdig[j]));
                b = vi_add8(b, vi_mulsign8(vi_shuf8(xb, vsel[j]), vdig[j]));
            }
            int8_t *dst = lut + (size_t)s * TB_TL_LUT_STEP + 16 * g0;
            vi_st(dst, a);
            vi_st(dst + 128, b);
        }
}
#endif

#undef TL_API

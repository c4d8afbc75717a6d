/* The x86 SIMD mapping: every vector operation the x86 kernels use, for one
 * vector width. kern_x86.h is written once against these names; each kern_x86_*.c
 * file picks a width (TB_X86_W 256 or 512) and whether VNNI exists (TB_VNNI: AVX-512
 * VNNI at 512 bits, AVX-VNNI at 256), enables the matching instruction set, and
 * includes it.
 *
 *   vi: a vector of bytes / int16 / int32 lanes     vf: a vector of VN floats
 *   VB: bytes per vector                             VN: int32 or float lanes */
#ifndef TB_SIMD_X86_H
#define TB_SIMD_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#if !defined(TB_X86_W) || !defined(TB_VNNI)
#error "define TB_X86_W (256 or 512) and TB_VNNI (0 or 1) before including simd_x86.h"
#endif

#define TB_INLINE static inline __attribute__((always_inline))

#if TB_X86_W == 512

typedef __m512i vi;
typedef __m512 vf;
#define VB 64
#define VN 16

TB_INLINE vi vi_ld(const void *p) { return _mm512_loadu_si512(p); }
TB_INLINE void vi_st(void *p, vi v) { _mm512_storeu_si512(p, v); }
TB_INLINE vi vi_zero(void) { return _mm512_setzero_si512(); }
TB_INLINE vi vi_set8(int c) { return _mm512_set1_epi8((char)c); }
TB_INLINE vi vi_set16(int c) { return _mm512_set1_epi16((short)c); }
TB_INLINE vi vi_set32(int c) { return _mm512_set1_epi32(c); }
TB_INLINE vi vi_and(vi a, vi b) { return _mm512_and_si512(a, b); }
TB_INLINE vi vi_or(vi a, vi b) { return _mm512_or_si512(a, b); }
/* bytes of a picked by the low 4 bits of idx within each 128-bit lane; 0 where bit 7 is set */
TB_INLINE vi vi_shuf8(vi a, vi idx) { return _mm512_shuffle_epi8(a, idx); }
TB_INLINE vi vi_bcast128(const void *p) { return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p)); }
/* a negated at byte p where bit p of bits[] is set (reads VB / 8 bytes) */
TB_INLINE vi vi_neg_bits(vi a, const uint8_t *bits) {
    uint64_t m;
    memcpy(&m, bits, 8);
    return _mm512_mask_sub_epi8(a, (__mmask64)m, _mm512_setzero_si512(), a);
}
/* a times d, bytewise, for d in {-1, 0, 1} */
TB_INLINE vi vi_mulsign8(vi a, vi d) {
    vi z = _mm512_setzero_si512();
    return _mm512_mask_sub_epi8(_mm512_maskz_mov_epi8(_mm512_test_epi8_mask(d, d), a), _mm512_movepi8_mask(d), z, a);
}
TB_INLINE vi vi_xor(vi a, vi b) { return _mm512_xor_si512(a, b); }
TB_INLINE vi vi_add8(vi a, vi b) { return _mm512_add_epi8(a, b); }
TB_INLINE vi vi_add16(vi a, vi b) { return _mm512_add_epi16(a, b); }
TB_INLINE vi vi_add32(vi a, vi b) { return _mm512_add_epi32(a, b); }
TB_INLINE vi vi_sub32(vi a, vi b) { return _mm512_sub_epi32(a, b); }
TB_INLINE vi vi_max32(vi a, vi b) { return _mm512_max_epi32(a, b); }
TB_INLINE vi vi_srli16(vi a, int n) { return _mm512_srli_epi16(a, (unsigned)n); }
TB_INLINE vi vi_srai16(vi a, int n) { return _mm512_srai_epi16(a, (unsigned)n); }
TB_INLINE vi vi_srai32(vi a, int n) { return _mm512_srai_epi32(a, (unsigned)n); }
/* u8 x s8 products, adjacent pairs summed to int16 (saturating: callers keep |pair| < 2^15) */
TB_INLINE vi vi_maddubs(vi u, vi s) { return _mm512_maddubs_epi16(u, s); }
/* int16 x int16 products, adjacent pairs summed to int32 */
TB_INLINE vi vi_madd16(vi a, vi b) { return _mm512_madd_epi16(a, b); }
TB_INLINE vi vi_abs8(vi a) { return _mm512_abs_epi8(a); }
/* a negated where s < 0 (bytes) */
TB_INLINE vi vi_sign8(vi a, vi s) { return _mm512_mask_sub_epi8(a, _mm512_movepi8_mask(s), vi_zero(), a); }
TB_INLINE int32_t vi_hsum32(vi a) { return _mm512_reduce_add_epi32(a); }
TB_INLINE int32_t vi_hmax32(vi a) { return _mm512_reduce_max_epi32(a); }
/* The int32 lane sums of four vectors, in one 128-bit vector: a transposing
 * reduction costs about what one horizontal sum does. */
TB_INLINE __m128i vi_hsum32x4(vi a, vi b, vi c, vi d) {
    vi ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    vi cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    vi abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}
#if TB_VNNI
/* acc += four u8 x s8 products per int32 lane. As inline assembly with the
 * accumulator read-write in place: through the intrinsic, GCC 12 copies every
 * accumulator before and after each vpdpbusd of a GEMV loop and stores it to the
 * stack, which halved the kernel's speed. (The 256-bit AVX-VNNI one is below.) */
TB_INLINE vi vi_dpbusd(vi acc, vi u, vi s) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "vm"(s));
    return acc;
}
#endif
/* tq1: the trit held by byte s = q_i - 128 (see kern_x86.h): 1 - [q_i < 86] + [q_i >= 171] */
TB_INLINE vi vi_trit(vi s) {
    const vi one = vi_set8(1);
    __mmask64 lt = _mm512_cmpgt_epi8_mask(vi_set8(86 - 128), s);
    __mmask64 ge = _mm512_cmpgt_epi8_mask(s, vi_set8(171 - 128 - 1));
    vi t = _mm512_mask_sub_epi8(one, lt, one, one); /* 0 where q_i < 86 */
    return _mm512_mask_add_epi8(t, ge, t, one);
}

TB_INLINE vf vf_ld(const float *p) { return _mm512_loadu_ps(p); }
TB_INLINE void vf_st(float *p, vf v) { _mm512_storeu_ps(p, v); }
TB_INLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
TB_INLINE vf vf_set1(float a) { return _mm512_set1_ps(a); }
TB_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
TB_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
TB_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
TB_INLINE vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
TB_INLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
TB_INLINE float vf_hsum(vf a) { return _mm512_reduce_add_ps(a); }
/* The lane sums of four float vectors, in one 128-bit vector. */
TB_INLINE __m128 vf_hsum4(vf a, vf b, vf c, vf d) {
    vf ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    vf cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    vf abcd = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))),
                            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(abcd),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(abcd), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
TB_INLINE vi vf_bits(vf a) { return _mm512_castps_si512(a); }
/* round to nearest even (the default MXCSR mode) */
TB_INLINE vi vf_round_i32(vf a) { return _mm512_cvtps_epi32(a); }
TB_INLINE vf vf_ld_h(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

/* Partial vectors: the first n lanes (n < VN), zeros beyond. */
TB_INLINE __mmask16 lanes(int n) { return (__mmask16)((1u << n) - 1); }
TB_INLINE vf vf_ldn(const float *p, int n) { return _mm512_maskz_loadu_ps(lanes(n), p); }
TB_INLINE void vf_stn(float *p, vf v, int n) { _mm512_mask_storeu_ps(p, lanes(n), v); }
TB_INLINE vf vf_ldn_h(const uint16_t *p, int n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes(n), p));
}
TB_INLINE void vf_stn_h(uint16_t *p, vf v, int n) {
    _mm256_mask_storeu_epi16(p, lanes(n), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
TB_INLINE void vf_st_h(uint16_t *p, vf v) {
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
/* n int32 lanes (values within int8) stored as bytes */
TB_INLINE void vi_stn_i8(int8_t *p, vi v, int n) { _mm512_mask_cvtepi32_storeu_epi8(p, lanes(n), v); }

#else /* 256 */

typedef __m256i vi;
typedef __m256 vf;
#define VB 32
#define VN 8

TB_INLINE vi vi_ld(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
TB_INLINE void vi_st(void *p, vi v) { _mm256_storeu_si256((__m256i *)p, v); }
TB_INLINE vi vi_zero(void) { return _mm256_setzero_si256(); }
TB_INLINE vi vi_set8(int c) { return _mm256_set1_epi8((char)c); }
TB_INLINE vi vi_set16(int c) { return _mm256_set1_epi16((short)c); }
TB_INLINE vi vi_set32(int c) { return _mm256_set1_epi32(c); }
TB_INLINE vi vi_and(vi a, vi b) { return _mm256_and_si256(a, b); }
TB_INLINE vi vi_or(vi a, vi b) { return _mm256_or_si256(a, b); }
TB_INLINE vi vi_shuf8(vi a, vi idx) { return _mm256_shuffle_epi8(a, idx); }
TB_INLINE vi vi_bcast128(const void *p) { return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p)); }
/* AVX2 has no byte masks: bit p of the 32 bits goes to byte p by a byte broadcast, a
 * per-byte bit test and a compare */
TB_INLINE vi vi_neg_bits(vi a, const uint8_t *bits) {
    int32_t m;
    memcpy(&m, bits, 4);
    const vi spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                       3, 3, 3, 3, 3, 3, 3, 3);
    const vi bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    vi s = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(m), spread), bit), bit);
    return _mm256_sub_epi8(_mm256_xor_si256(a, s), s);
}
TB_INLINE vi vi_mulsign8(vi a, vi d) { return _mm256_sign_epi8(a, d); }
#if TB_VNNI
/* AVX-VNNI: the VEX encoding ({vex}, written %{vex%} in inline assembly; without it
 * the assembler emits the AVX-512 one, which a CPU without AVX-512 cannot run), the
 * accumulator in place for the reason given at the AVX-512 one. */
TB_INLINE vi vi_dpbusd(vi acc, vi u, vi s) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "xm"(s));
    return acc;
}
#endif
TB_INLINE vi vi_xor(vi a, vi b) { return _mm256_xor_si256(a, b); }
TB_INLINE vi vi_add8(vi a, vi b) { return _mm256_add_epi8(a, b); }
TB_INLINE vi vi_add16(vi a, vi b) { return _mm256_add_epi16(a, b); }
TB_INLINE vi vi_add32(vi a, vi b) { return _mm256_add_epi32(a, b); }
TB_INLINE vi vi_sub32(vi a, vi b) { return _mm256_sub_epi32(a, b); }
TB_INLINE vi vi_max32(vi a, vi b) { return _mm256_max_epi32(a, b); }
TB_INLINE vi vi_srli16(vi a, int n) { return _mm256_srli_epi16(a, n); }
TB_INLINE vi vi_srai16(vi a, int n) { return _mm256_srai_epi16(a, n); }
TB_INLINE vi vi_srai32(vi a, int n) { return _mm256_srai_epi32(a, n); }
TB_INLINE vi vi_maddubs(vi u, vi s) { return _mm256_maddubs_epi16(u, s); }
TB_INLINE vi vi_madd16(vi a, vi b) { return _mm256_madd_epi16(a, b); }
TB_INLINE vi vi_abs8(vi a) { return _mm256_abs_epi8(a); }
TB_INLINE vi vi_sign8(vi a, vi s) { return _mm256_sign_epi8(a, s); }
TB_INLINE int32_t vi_hsum32(vi a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}
TB_INLINE __m128i vi_hsum32x4(vi a, vi b, vi c, vi d) {
    vi ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    vi cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    vi abcd = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}
TB_INLINE int32_t vi_hmax32(vi a) {
    __m128i s = _mm_max_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_max_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_max_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}
/* AVX2 compares bytes only as signed; the -1 masks are summed. In the form
 * [q_i >= 86], GCC 12 rewrites the compare against a negative constant as
 * vpminsb + vpcmpeqb, hence 1 + -[q_i < 86] - -[q_i >= 171]. */
TB_INLINE vi vi_trit(vi s) {
    vi lt = _mm256_cmpgt_epi8(vi_set8(86 - 128), s);
    vi ge = _mm256_cmpgt_epi8(s, vi_set8(171 - 128 - 1));
    return _mm256_add_epi8(_mm256_sub_epi8(lt, ge), vi_set8(1));
}

TB_INLINE vf vf_ld(const float *p) { return _mm256_loadu_ps(p); }
TB_INLINE void vf_st(float *p, vf v) { _mm256_storeu_ps(p, v); }
TB_INLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
TB_INLINE vf vf_set1(float a) { return _mm256_set1_ps(a); }
TB_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
TB_INLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
TB_INLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
TB_INLINE vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
TB_INLINE vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
TB_INLINE float vf_hsum(vf a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
TB_INLINE vi vf_bits(vf a) { return _mm256_castps_si256(a); }
TB_INLINE __m128 vf_hsum4(vf a, vf b, vf c, vf d) {
    vf ab = _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
    vf cd = _mm256_add_ps(_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
    vf abcd = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(ab), _mm256_castps_pd(cd))),
                            _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(ab), _mm256_castps_pd(cd))));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}
TB_INLINE vi vf_round_i32(vf a) { return _mm256_cvtps_epi32(a); }
TB_INLINE vf vf_ld_h(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* Partial vectors go through a zeroed lane buffer: AVX2 has no 16-bit or byte masks. */
TB_INLINE vf vf_ldn(const float *p, int n) {
    float b[VN] = {0};
    memcpy(b, p, (size_t)n * sizeof(float));
    return vf_ld(b);
}
TB_INLINE void vf_stn(float *p, vf v, int n) {
    float b[VN];
    vf_st(b, v);
    memcpy(p, b, (size_t)n * sizeof(float));
}
TB_INLINE vf vf_ldn_h(const uint16_t *p, int n) {
    uint16_t b[VN] = {0};
    memcpy(b, p, (size_t)n * sizeof(uint16_t));
    return vf_ld_h(b);
}
TB_INLINE void vf_st_h(uint16_t *p, vf v) {
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
TB_INLINE void vf_stn_h(uint16_t *p, vf v, int n) {
    uint16_t b[VN];
    vf_st_h(b, v);
    memcpy(p, b, (size_t)n * sizeof(uint16_t));
}
TB_INLINE void vi_stn_i8(int8_t *p, vi v, int n) {
    __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    int8_t b[16];
    _mm_storeu_si128((__m128i *)b, _mm_packs_epi16(w, w));
    memcpy(p, b, (size_t)n);
}

#endif

/* One int32 (4 bytes) to every lane; the load folds into vpbroadcastd. */
TB_INLINE vi vi_bcast32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
#if TB_X86_W == 512
    return _mm512_set1_epi32(v);
#else
    return _mm256_set1_epi32(v);
#endif
}

/* The address usually lies past the end of the data: computing it as an integer
 * keeps that defined (forming such a pointer would not be), and prefetching it is
 * harmless. */
TB_INLINE void prefetch_line(const void *p, size_t ahead) {
    _mm_prefetch((const char *)((uintptr_t)p + ahead), _MM_HINT_T0);
}

#endif

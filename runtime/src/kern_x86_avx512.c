/* AVX-512 (F, BW, VL) kernels without VNNI: u8 x s8 dots via vpmaddubsw + vpmaddwd. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif

#define TB_VNNI 0
#include "kern_x86_avx512_impl.h"

const tb_kernels tb_kernels_avx512 = TB_AVX512_TABLE;

#if defined(__clang__)
#pragma clang attribute pop
#endif

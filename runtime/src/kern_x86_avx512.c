/* AVX-512 (F, BW, VL) kernels without VNNI: u8 x s8 dots via vpmaddubsw + vpmaddwd.
 * The kernels are in kern_x86.h. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif

#define TB_X86_W 512
#define TB_VNNI 0
#define TB_SUFFIX avx512
#include "kern_x86.h"

const tb_kernels tb_kernels_avx512 = TB_X86_TABLE;

#if defined(__clang__)
#pragma clang attribute pop
#endif

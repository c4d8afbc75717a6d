/* AVX2 kernels (with FMA, and F16C for f16 weights): u8 x s8 dots via vpmaddubsw
 * into int16, widened with vpmaddwd. The kernels are in kern_x86.h. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx2,fma,f16c")
#endif

#define TB_X86_W 256
#define TB_VNNI 0
#define TB_SUFFIX avx2
#include "kern_x86.h"

const tb_kernels tb_kernels_avx2 = TB_X86_TABLE;

#if defined(__clang__)
#pragma clang attribute pop
#endif

/* AVX-512 kernels with VNNI: u8 x s8 dots via vpdpbusd (4 multiply-adds per byte lane).
 * The kernels are in kern_x86.h. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")
#endif

#define TB_X86_W 512
#define TB_VNNI 1
#define TB_SUFFIX avx512vnni
#include "kern_x86.h"

const tb_kernels tb_kernels_avx512vnni = TB_X86_TABLE;

#if defined(__clang__)
#pragma clang attribute pop
#endif

/* AVX-512 kernels with VNNI: u8 x s8 dots via vpdpbusd (4 multiply-adds per byte lane). */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")
#endif

#define TB_VNNI 1
#include "kern_x86_avx512_impl.h"

const tb_kernels tb_kernels_avx512vnni = TB_AVX512_TABLE;

#if defined(__clang__)
#pragma clang attribute pop
#endif

/* AVX2 kernels with AVX-VNNI (VEX-encoded 256-bit vpdpbusd: Alder Lake and later
 * client cores, Zen 5 client parts, CPUs that have it without AVX-512): u8 x s8
 * dots accumulate straight into int32, as in avx512vnni, at avx2's width. The
 * kernels are in kern_x86.h. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avxvnni"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx2,fma,f16c,avxvnni")
#endif

#define TB_X86_W 256
#define TB_VNNI 1
#define TB_SUFFIX avxvnni
#include "kern_x86.h"

const tb_kernels tb_kernels_avxvnni = TB_X86_TABLE;

#if defined(__clang__)
#pragma clang attribute pop
#endif

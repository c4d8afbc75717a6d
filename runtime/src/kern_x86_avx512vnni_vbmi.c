/* The avx512vnni variant's tl kernels with AVX-512 VBMI (vpermb look-ups), called by
 * kern_x86_avx512vnni.c when the CPU has VBMI. The kernels are in kern_x86_lut.h. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")
#endif

#define TB_X86_W 512
#define TB_VNNI 1
#define TB_VBMI 1
#define TB_SUFFIX avx512vnni_vbmi
#include "simd_x86.h"
#include "tb_internal.h"
#include "kern_x86_lut.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

/* Errors, memory, time and half-precision conversion shared by the runtime. */
#define _DEFAULT_SOURCE
#include <sys/mman.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tb_internal.h"

#ifndef TB_VERSION
#define TB_VERSION "0.1.0"
#endif
#ifndef TB_BUILD_FLAGS
#define TB_BUILD_FLAGS "unknown"
#endif
#ifndef TB_SOURCE_DIGEST
#define TB_SOURCE_DIGEST "unknown"
#endif

static _Thread_local char last_error[512];

int tb_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

void tb_clear_error(void) { last_error[0] = 0; }
const char *tb_last_error(void) { return last_error; }
const char *tb_version(void) { return TB_VERSION; }

const char *tb_build_info(void) {
#if defined(__clang__)
    return "clang " __clang_version__ "; flags: " TB_BUILD_FLAGS "; sources " TB_SOURCE_DIGEST;
#elif defined(__GNUC__)
    return "gcc " __VERSION__ "; flags: " TB_BUILD_FLAGS "; sources " TB_SOURCE_DIGEST;
#else
    return "unknown compiler; flags: " TB_BUILD_FLAGS "; sources " TB_SOURCE_DIGEST;
#endif
}

/* Large buffers (weights, the bandwidth probe) are 2 MiB aligned and asked to be
 * backed by transparent huge pages: streaming weights through 4 KiB pages costs a
 * TLB miss every 4 KiB, which shows as lost bandwidth on a memory-bound GEMV. */
#define TB_HUGE (2u << 20)

void *tb_aligned_alloc(size_t bytes) {
    void *p = NULL;
    /* round up so that SIMD loads of a whole last vector stay inside the block */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded == 0) rounded = 64;
    int huge = rounded >= 2 * (size_t)TB_HUGE;
    if (huge) rounded = (rounded + TB_HUGE - 1) & ~(size_t)(TB_HUGE - 1);
    if (posix_memalign(&p, huge ? TB_HUGE : 64, rounded) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    if (huge) madvise(p, rounded, MADV_HUGEPAGE); /* advisory: failure is harmless */
#endif
    return p;
}

void tb_aligned_free(void *p) { free(p); }

int tb_grow(void **buf, size_t *have, size_t bytes) {
    if (*have >= bytes && *buf) return 0;
    void *p = tb_aligned_alloc(bytes);
    if (!p) return tb_fail("out of memory allocating %zu bytes of scratch", bytes);
    tb_aligned_free(*buf);
    *buf = p;
    *have = bytes;
    return 0;
}

double tb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

float tb_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400u));
            bits = sign | (uint32_t)(112 - e) << 23 | (man & 0x3ffu) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 112) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round to nearest even, as F16C's vcvtps2ph with rounding mode 0. */
uint16_t tb_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (ax < 0x33000000u) return (uint16_t)sign; /* < half of the smallest subnormal */
        uint32_t e = ax >> 23;
        uint32_t man = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half_man = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half_man & 1))) half_man++;
        return (uint16_t)(sign | half_man);
    }
    uint32_t h = ((ax >> 13) - (112u << 10));
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

/* Every half as a float, filled once: the portable loops convert by lookup. */
static float half_table[65536];
static pthread_once_t half_table_once = PTHREAD_ONCE_INIT;
static void fill_half_table(void) {
    for (unsigned h = 0; h < 65536; h++) half_table[h] = tb_half_to_float((uint16_t)h);
}

const float *tb_half_table(void) {
    pthread_once(&half_table_once, fill_half_table);
    return half_table;
}

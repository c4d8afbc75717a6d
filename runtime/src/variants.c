/* Which kernel variants this build holds and whether this CPU can run them.
 * x86 features come from CPUID plus XGETBV (the OS must save the wide registers);
 * ARM features from the auxiliary vector (HWCAP). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tb_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

typedef struct { int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avxvnni, os_ymm, os_zmm; } x86_features;

static x86_features x86_detect(void) {
    x86_features f = {0};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    int osxsave = (c >> 27) & 1;
    f.fma = (c >> 12) & 1;
    f.f16c = (c >> 29) & 1;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        f.os_ymm = (lo & 0x6) == 0x6;
        f.os_zmm = (lo & 0xe6) == 0xe6;
    }
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.avx2 = (b >> 5) & 1;
        f.avx512f = (b >> 16) & 1;
        f.avx512bw = (b >> 30) & 1;
        f.avx512vl = (b >> 31) & 1;
        f.avx512vnni = (c >> 11) & 1;
        unsigned subleaves = a; /* leaf 7's EAX: its highest subleaf */
        if (subleaves >= 1) {   /* subleaf 1, EAX bit 4: AVX-VNNI (VEX-encoded vpdpbusd) */
            __cpuid_count(7, 1, a, b, c, d);
            f.avxvnni = (a >> 4) & 1;
        }
    }
    return f;
}

/* Appends the first missing feature of a list to why; returns 1 when none is missing. */
static int need(int have, const char *feature, char *why, int why_len) {
    if (have) return 1;
    if (why && why_len > 0) snprintf(why, (size_t)why_len, "this CPU lacks %s", feature);
    return 0;
}

static int supported_avx2(char *why, int why_len) {
    x86_features f = x86_detect();
    return need(f.avx2, "AVX2", why, why_len) && need(f.fma, "FMA", why, why_len) &&
           need(f.f16c, "F16C", why, why_len) &&
           need(f.os_ymm, "OS support for AVX state (XCR0)", why, why_len);
}

static int supported_avx512(char *why, int why_len) {
    x86_features f = x86_detect();
    return supported_avx2(why, why_len) && need(f.avx512f, "AVX-512F", why, why_len) &&
           need(f.avx512bw, "AVX-512BW", why, why_len) &&
           need(f.avx512vl, "AVX-512VL", why, why_len) &&
           need(f.os_zmm, "OS support for AVX-512 state (XCR0)", why, why_len);
}

int tb_x86_vbmi(void) {
    static int known = -1; /* idempotent: a race only computes it twice */
    int v = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (v < 0) {
        unsigned a, b, c = 0, d;
        const char *off = getenv("TERNBENCH_NO_VBMI");
        v = 0;
        if (!(off && *off && strcmp(off, "0") != 0) && __get_cpuid_max(0, NULL) >= 7) {
            __cpuid_count(7, 0, a, b, c, d);
            v = (int)((c >> 1) & 1);
        }
        __atomic_store_n(&known, v, __ATOMIC_RELAXED);
    }
    return v;
}

static int supported_avx512vnni(char *why, int why_len) {
    x86_features f = x86_detect();
    return supported_avx512(why, why_len) && need(f.avx512vnni, "AVX-512 VNNI", why, why_len);
}

static int supported_avxvnni(char *why, int why_len) {
    x86_features f = x86_detect();
    return supported_avx2(why, why_len) && need(f.avxvnni, "AVX-VNNI", why, why_len);
}
#endif

#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
static int supported_neon(char *why, int why_len) {
    if (getauxval(AT_HWCAP) & HWCAP_ASIMD) return 1;
    snprintf(why, (size_t)why_len, "this CPU lacks Advanced SIMD (NEON)");
    return 0;
}
static int supported_dotprod(char *why, int why_len) {
    if (!supported_neon(why, why_len)) return 0;
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) return 1;
    snprintf(why, (size_t)why_len, "this CPU lacks the dot-product extension (asimddp)");
    return 0;
}
#endif

static int supported_always(char *why, int why_len) {
    (void)why; (void)why_len;
    return 1;
}

/* Best first, scalar last; tb_variant_best() returns the first one supported. */
static const tb_variant variants[] = {
#if defined(__x86_64__) || defined(__i386__)
    {"avx512vnni", &tb_kernels_avx512vnni, supported_avx512vnni},
    {"avx512", &tb_kernels_avx512, supported_avx512},
    {"avxvnni", &tb_kernels_avxvnni, supported_avxvnni},
    {"avx2", &tb_kernels_avx2, supported_avx2},
#endif
#if defined(__aarch64__)
    {"dotprod", &tb_kernels_dotprod, supported_dotprod},
    {"neon", &tb_kernels_neon, supported_neon},
#endif
    {"scalar", &tb_kernels_scalar, supported_always},
};
#define NVARIANTS ((int)(sizeof variants / sizeof variants[0]))

int tb_variant_count(void) { return NVARIANTS; }

const char *tb_variant_name(int i) { return (i >= 0 && i < NVARIANTS) ? variants[i].name : NULL; }

const tb_variant *tb_find_variant(const char *name) {
    for (int i = 0; i < NVARIANTS; i++)
        if (strcmp(variants[i].name, name) == 0) return &variants[i];
    return NULL;
}

int tb_variant_supported(const char *name, char *why, int why_len) {
    const tb_variant *v = tb_find_variant(name);
    if (!v) {
        if (why && why_len > 0) snprintf(why, (size_t)why_len, "not compiled for this architecture");
        return 0;
    }
    return v->supported(why, why_len);
}

const char *tb_variant_best(void) {
    char why[128];
    for (int i = 0; i < NVARIANTS; i++)
        if (variants[i].supported(why, sizeof why)) return variants[i].name;
    return "scalar";
}

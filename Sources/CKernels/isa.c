// ISA tiers: the registry (best first), the CPU check, which tier runs, and the public kernel entry
// points, each of which calls its body in the calling thread's tier.
//
// Which tier runs: the thread's override if one is set (pth2swt_isa_thread_override: tests, and the
// kernels' own worker threads, which take their caller's), else the process's tier. That is picked once,
// at first use: PTH2SWT_ISA (a registered name, or "auto") when it names a tier this machine runs, else
// the best supported tier. pth2swt_isa_set_process_tier changes it later.
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernel_list.h"

// ---------------------------------------------------------------------------------------------------
// The registry. Adding a tier: its tier_*.c (NAME, TARGET, a micro-kernel, PTH2SWT_DEFINE_TIER) and a
// line here, in order from best to most portable.

extern const pth2swt_kernel_table pth2swt_tier_portable;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
extern const pth2swt_kernel_table pth2swt_tier_avx2, pth2swt_tier_avx512;
#endif

static const pth2swt_kernel_table *const tiers[] = {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    &pth2swt_tier_avx512,
    &pth2swt_tier_avx2,
#endif
    &pth2swt_tier_portable,
};
enum { TIER_COUNT = sizeof tiers / sizeof tiers[0] };

// ---------------------------------------------------------------------------------------------------
// CPU features: CPUID says what the core has; XCR0 (XGETBV) says which register states the OS saves on
// a context switch. A tier needs both.

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

enum { FEATURE_AVX2_FMA = 1, FEATURE_AVX512 = 2 };

static int detect_features(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    const unsigned long long xcr0 = ((unsigned long long)hi << 32) | lo;
    if ((xcr0 & 0x6) != 0x6) return 0;  // XMM and YMM state
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    int features = 0;
    if (((b >> 5) & 1) && fma) features |= FEATURE_AVX2_FMA;
    const int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    // Opmask, upper ZMM0-15 and ZMM16-31 state.
    if ((features & FEATURE_AVX2_FMA) && f && dq && bw && vl && (xcr0 & 0xE0) == 0xE0) features |= FEATURE_AVX512;
    return features;
}

static int cpu_features(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect_features();
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

int pth2swt_cpu_has_avx2_fma(void) { return (cpu_features() & FEATURE_AVX2_FMA) != 0; }
int pth2swt_cpu_has_avx512(void) { return (cpu_features() & FEATURE_AVX512) != 0; }
#else
int pth2swt_cpu_has_avx2_fma(void) { return 0; }
int pth2swt_cpu_has_avx512(void) { return 0; }
#endif

// ---------------------------------------------------------------------------------------------------
// Selection.

int pth2swt_isa_count(void) { return TIER_COUNT; }

const char *pth2swt_isa_name(int tier) { return tier >= 0 && tier < TIER_COUNT ? tiers[tier]->name : 0; }

int pth2swt_isa_supported(int tier) { return tier >= 0 && tier < TIER_COUNT && tiers[tier]->supported(); }

static int best_supported(void) {
    for (int t = 0; t < TIER_COUNT; t++)
        if (tiers[t]->supported()) return t;
    return TIER_COUNT - 1;
}

int pth2swt_isa_lookup(const char *name) {
    if (!name) return -1;
    for (int t = 0; t < TIER_COUNT; t++) {
        const char *a = tiers[t]->name, *b = name;
        while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
        if (!*a && !*b) return t;
    }
    return -1;
}

static int process_tier = -1;
static int environment_status = 0;

static int pick_process_tier(void) {
    const char *env = getenv("PTH2SWT_ISA");
    int status = 0, tier = best_supported();
    if (env && *env && strcmp(env, "auto") != 0) {
        int t = pth2swt_isa_lookup(env);
        if (t < 0) status = PTH2SWT_ISA_ENV_UNKNOWN;
        else if (!tiers[t]->supported()) status = PTH2SWT_ISA_ENV_UNSUPPORTED;
        else {
            status = PTH2SWT_ISA_ENV_HONOURED;
            tier = t;
        }
    }
    __atomic_store_n(&environment_status, status, __ATOMIC_RELAXED);
    return tier;
}

int pth2swt_isa_process_tier(void) {
    int t = __atomic_load_n(&process_tier, __ATOMIC_ACQUIRE);
    if (t < 0) {
        int picked = pick_process_tier(), expected = -1;
        // The first thread to pick wins; every thread computes the same answer anyway.
        if (__atomic_compare_exchange_n(&process_tier, &expected, picked, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            t = picked;
        else
            t = expected;
    }
    return t;
}

int pth2swt_isa_environment_status(void) {
    (void)pth2swt_isa_process_tier();
    return __atomic_load_n(&environment_status, __ATOMIC_RELAXED);
}

int pth2swt_isa_set_process_tier(int tier) {
    if (!pth2swt_isa_supported(tier)) return -1;
    (void)pth2swt_isa_process_tier();  // so PTH2SWT_ISA's status is still read and reported
    __atomic_store_n(&process_tier, tier, __ATOMIC_RELEASE);
    return 0;
}

static __thread int thread_tier = -1;

int pth2swt_isa_thread_override(int tier) {
    if (tier >= 0 && !pth2swt_isa_supported(tier)) return -2;
    int previous = thread_tier;
    thread_tier = tier < 0 ? -1 : tier;
    return previous;
}

int pth2swt_isa_thread_override_value(void) { return thread_tier; }

int pth2swt_isa_current(void) {
    int t = thread_tier;
    return t >= 0 ? t : pth2swt_isa_process_tier();
}

// ---------------------------------------------------------------------------------------------------
// Entry points: pth2swt_conv_nhwc(…) calls tiers[current]->conv_nhwc(…), and so on for the whole list.

#define PTH2SWT_ENTRY(pub, body, params, args) \
    void pub params { tiers[pth2swt_isa_current()]->body args; }
PTH2SWT_KERNELS(PTH2SWT_ENTRY)
#undef PTH2SWT_ENTRY

long pth2swt_conv_nhwc_scratch_count(void) { return (long)CONV_MC * CONV_KC_WHOLE; }

long pth2swt_gemm_tn_scratch_count(int n) { return (long)TN_KC * ((n + NR - 1) / NR) * NR; }

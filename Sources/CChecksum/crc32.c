#include "cchecksum.h"

#include <zlib.h>

// zlib takes a 32-bit length through crc32(); crc32_z takes size_t, but feed it in 1 GiB pieces anyway
// so the code does not depend on z_size_t's width.
static uint32_t crc32_zlib(uint32_t crc, const unsigned char *p, size_t n) {
    while (n > 0) {
        size_t piece = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        crc = (uint32_t)crc32(crc, p, (uInt)piece);
        p += piece;
        n -= piece;
    }
    return crc;
}

uint32_t pth2swt_crc32_reference(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = data;
    uint32_t c = ~crc;
    for (size_t i = 0; i < length; i++) {
        c ^= p[i];
        for (int bit = 0; bit < 8; bit++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

// Folding constants for the reflected polynomial, each x^k mod P(x) bit-reflected and shifted left by
// one (the carry-less product of two reflected values lands one bit low):
//   fold by 4x128 bits: x^(512+32), x^(512-32);  fold by 128 bits: x^(128+32), x^(128-32);
//   128 -> 64 bits: x^64;  Barrett: P(x) itself and mu = floor(x^64 / P(x)).
#define K1 0x0154442bd4ull
#define K2 0x01c6e41596ull
#define K3 0x01751997d0ull
#define K4 0x00ccaa009eull
#define K5 0x0163cd6124ull
#define P_X 0x01db710641ull
#define MU 0x01f7011641ull

// Requires length >= 64 and length % 16 == 0. Takes and returns the raw (inverted) register.
__attribute__((target("pclmul,sse4.1")))
static uint32_t fold_pclmul(uint32_t reg, const unsigned char *p, size_t length) {
    __m128i a = _mm_loadu_si128((const __m128i *)(p + 0));
    __m128i b = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i d = _mm_loadu_si128((const __m128i *)(p + 48));
    a = _mm_xor_si128(a, _mm_cvtsi32_si128((int)reg));
    p += 64;
    length -= 64;

    const __m128i k12 = _mm_set_epi64x((long long)K2, (long long)K1);
    while (length >= 64) {
        __m128i al = _mm_clmulepi64_si128(a, k12, 0x00), ah = _mm_clmulepi64_si128(a, k12, 0x11);
        __m128i bl = _mm_clmulepi64_si128(b, k12, 0x00), bh = _mm_clmulepi64_si128(b, k12, 0x11);
        __m128i cl = _mm_clmulepi64_si128(c, k12, 0x00), ch = _mm_clmulepi64_si128(c, k12, 0x11);
        __m128i dl = _mm_clmulepi64_si128(d, k12, 0x00), dh = _mm_clmulepi64_si128(d, k12, 0x11);
        a = _mm_xor_si128(_mm_xor_si128(al, ah), _mm_loadu_si128((const __m128i *)(p + 0)));
        b = _mm_xor_si128(_mm_xor_si128(bl, bh), _mm_loadu_si128((const __m128i *)(p + 16)));
        c = _mm_xor_si128(_mm_xor_si128(cl, ch), _mm_loadu_si128((const __m128i *)(p + 32)));
        d = _mm_xor_si128(_mm_xor_si128(dl, dh), _mm_loadu_si128((const __m128i *)(p + 48)));
        p += 64;
        length -= 64;
    }

    // Four lanes into one, then any remaining whole 16-byte blocks.
    const __m128i k34 = _mm_set_epi64x((long long)K4, (long long)K3);
#define FOLD16(acc, next) \
    acc = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(acc, k34, 0x00), \
                                      _mm_clmulepi64_si128(acc, k34, 0x11)), (next))
    FOLD16(a, b);
    FOLD16(a, c);
    FOLD16(a, d);
    while (length >= 16) {
        FOLD16(a, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        length -= 16;
    }
#undef FOLD16

    // 128 bits -> 64 bits (plus 32 of headroom).
    const __m128i low32 = _mm_setr_epi32(-1, 0, -1, 0);
    __m128i t = _mm_clmulepi64_si128(a, k34, 0x10);
    a = _mm_xor_si128(_mm_srli_si128(a, 8), t);
    t = _mm_srli_si128(a, 4);
    a = _mm_and_si128(a, low32);
    a = _mm_clmulepi64_si128(a, _mm_set_epi64x(0, (long long)K5), 0x00);
    a = _mm_xor_si128(a, t);

    // Barrett reduction to 32 bits.
    const __m128i pmu = _mm_set_epi64x((long long)MU, (long long)P_X);
    t = _mm_and_si128(a, low32);
    t = _mm_clmulepi64_si128(t, pmu, 0x10);
    t = _mm_and_si128(t, low32);
    t = _mm_clmulepi64_si128(t, pmu, 0x00);
    a = _mm_xor_si128(a, t);
    return (uint32_t)_mm_extract_epi32(a, 1);
}

static int have_pclmul(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

int pth2swt_crc32_accelerated(void) { return have_pclmul(); }

uint32_t pth2swt_crc32(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = data;
    if (length < 64 || !have_pclmul()) return crc32_zlib(crc, p, length);
    size_t bulk = length & ~(size_t)15;
    crc = ~fold_pclmul(~crc, p, bulk);
    return crc32_zlib(crc, p + bulk, length - bulk);
}

#else

int pth2swt_crc32_accelerated(void) { return 0; }

uint32_t pth2swt_crc32(uint32_t crc, const void *data, size_t length) {
    return crc32_zlib(crc, data, length);
}

#endif

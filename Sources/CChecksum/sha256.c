// SHA-256 (FIPS 180-4), self-contained: no library, no global state, nothing torn down at exit.
//
// Two block functions compute the same compression:
//   - sha256_blocks_portable: the standard's rounds in plain C, the reference twin;
//   - sha256_blocks_shani: x86's SHA extensions (SHA-NI: sha256rnds2 does two rounds, sha256msg1/2
//     extend the message schedule), picked once from CPUID when the CPU has them.
// pth2swt_sha256_force_portable(1) makes every later hash use the portable function (tests compare
// both on the same inputs).
#include "cchecksum.h"

#include <stdlib.h>
#include <string.h>

struct pth2swt_sha256_ctx {
    uint32_t state[8];
    uint64_t length;      // bytes hashed so far
    uint8_t block[64];    // a partial block
    size_t filled;        // bytes in block
};

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

// Compresses `count` whole 64-byte blocks into `state`.
static void sha256_blocks_portable(uint32_t state[8], const uint8_t *p, size_t count) {
    uint32_t w[64];
    for (; count > 0; count--, p += 64) {
        for (int t = 0; t < 16; t++) w[t] = load_be32(p + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1;
            d = c; c = b; b = a; a = t1 + t2;
        }
        state[0] += a; state[1] += b; state[2] += c; state[3] += d;
        state[4] += e; state[5] += f; state[6] += g; state[7] += h;
    }
}

typedef void (*blocks_fn)(uint32_t state[8], const uint8_t *p, size_t count);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

// The SHA instructions keep the working variables as two registers: ABEF = {A, B, E, F} and
// CDGH = {C, D, G, H}, highest lane first. sha256rnds2 runs two rounds from the low two lanes of its
// message+constant operand; four message words (one xmm) make two calls, the second on the high half.
__attribute__((target("sha,sse4.1,ssse3")))
static void sha256_blocks_shani(uint32_t state[8], const uint8_t *p, size_t count) {
    // Big-endian words of each 16-byte message piece.
    const __m128i byteswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    // In memory, state[0..3] = A B C D and state[4..7] = E F G H. Lanes below are listed low to high:
    // ABEF holds F E B A, CDGH holds H G D C.
    __m128i badc = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[0]), 0xB1);   // B A D C
    __m128i fehg = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[4]), 0xB1);   // F E H G
    __m128i abef = _mm_unpacklo_epi64(fehg, badc);                                        // F E B A
    __m128i cdgh = _mm_unpackhi_epi64(fehg, badc);                                        // H G D C

    for (; count > 0; count--, p += 64) {
        const __m128i abef_saved = abef, cdgh_saved = cdgh;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), byteswap);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), byteswap);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), byteswap);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), byteswap);

        // 16 groups of four rounds. Group g uses schedule words 4g..4g+3; from group 4 on they are
        // extended from the previous four pieces: W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16].
        // msg1 adds σ0 of the next piece's words; alignr supplies W[t-7]; msg2 adds σ1 in order.
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            __m128i wk = _mm_add_epi32(m0, _mm_loadu_si128((const __m128i *)&K[4 * g]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
            // The piece after m3: msg1 gives W[t-16] + σ0(W[t-15]), alignr W[t-7], msg2 adds σ1(W[t-2]).
            if (g < 12) {
                __m128i next = _mm_sha256msg1_epu32(m0, m1);
                next = _mm_add_epi32(next, _mm_alignr_epi8(m3, m2, 4));
                next = _mm_sha256msg2_epu32(next, m3);
                m0 = m1;
                m1 = m2;
                m2 = m3;
                m3 = next;
            } else {
                m0 = m1;
                m1 = m2;
                m2 = m3;
            }
        }
        abef = _mm_add_epi32(abef, abef_saved);
        cdgh = _mm_add_epi32(cdgh, cdgh_saved);
    }

    // Back to memory order: F E B A | H G D C → B A D C → A B C D, and F E H G → E F G H.
    _mm_storeu_si128((__m128i *)&state[0], _mm_shuffle_epi32(_mm_unpackhi_epi64(abef, cdgh), 0xB1));
    _mm_storeu_si128((__m128i *)&state[4], _mm_shuffle_epi32(_mm_unpacklo_epi64(abef, cdgh), 0xB1));
}

static int cpu_has_shani(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return ssse3 && sse41 && ((b >> 29) & 1);
}
#endif

static int force_portable = 0;

static blocks_fn pick(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    static int has = -1;
    if (has < 0) has = cpu_has_shani();
    if (has && !__atomic_load_n(&force_portable, __ATOMIC_RELAXED)) return sha256_blocks_shani;
#endif
    return sha256_blocks_portable;
}

int pth2swt_sha256_accelerated(void) { return pick() != sha256_blocks_portable; }

void pth2swt_sha256_force_portable(int on) { __atomic_store_n(&force_portable, on ? 1 : 0, __ATOMIC_RELAXED); }

static void init(pth2swt_sha256_ctx *h) {
    memcpy(h->state, H0, sizeof H0);
    h->length = 0;
    h->filled = 0;
}

pth2swt_sha256_ctx *pth2swt_sha256_create(void) {
    pth2swt_sha256_ctx *h = malloc(sizeof *h);
    if (h) init(h);
    return h;
}

int pth2swt_sha256_update(pth2swt_sha256_ctx *h, const void *data, size_t length) {
    const uint8_t *p = data;
    blocks_fn blocks = pick();
    h->length += length;
    if (h->filled > 0) {
        size_t take = 64 - h->filled < length ? 64 - h->filled : length;
        memcpy(h->block + h->filled, p, take);
        h->filled += take;
        p += take;
        length -= take;
        if (h->filled < 64) return 1;
        blocks(h->state, h->block, 1);
        h->filled = 0;
    }
    if (length >= 64) {
        blocks(h->state, p, length / 64);
        p += length / 64 * 64;
        length %= 64;
    }
    if (length > 0) {
        memcpy(h->block, p, length);
        h->filled = length;
    }
    return 1;
}

int pth2swt_sha256_finish(pth2swt_sha256_ctx *h, uint8_t out[32]) {
    uint64_t bits = h->length * 8;
    uint8_t pad[72] = {0x80};
    size_t padding = (h->filled < 56 ? 56 : 120) - h->filled;
    for (int i = 0; i < 8; i++) pad[padding + i] = (uint8_t)(bits >> (56 - 8 * i));
    pth2swt_sha256_update(h, pad, padding + 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i + 0] = (uint8_t)(h->state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h->state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h->state[i] >> 8);
        out[4 * i + 3] = (uint8_t)(h->state[i]);
    }
    pth2swt_sha256_free(h);
    return 1;
}

void pth2swt_sha256_free(pth2swt_sha256_ctx *h) { free(h); }

int pth2swt_sha256(const void *data, size_t length, uint8_t out[32]) {
    pth2swt_sha256_ctx *h = pth2swt_sha256_create();
    if (!h) return 0;
    pth2swt_sha256_update(h, data, length);
    return pth2swt_sha256_finish(h, out);
}

// CRC-32 (the zip polynomial, reflected 0xEDB88320) for the zip reader and the .pth writer.
//
// pth2swt_crc32 is the fast path: on x86-64 with PCLMULQDQ it folds 64 bytes per step with carry-less
// multiplies (four independent 128-bit lanes, then a Barrett reduction); elsewhere, and for the head
// and tail it cannot fold, it uses zlib. pth2swt_crc32_reference is the naive bit-at-a-time twin the
// tests compare it against. Both take and return the finished CRC (start with 0), like zlib's crc32.
#ifndef PTH2SWT_CCHECKSUM_H
#define PTH2SWT_CCHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

uint32_t pth2swt_crc32(uint32_t crc, const void *data, size_t length);
uint32_t pth2swt_crc32_reference(uint32_t crc, const void *data, size_t length);
/// 1 when pth2swt_crc32 uses the carry-less-multiply kernel on this CPU, 0 when it falls back to zlib.
int pth2swt_crc32_accelerated(void);

#ifdef __cplusplus
}
#endif

#endif

#ifndef PTH2SWT_SHA256_H
#define PTH2SWT_SHA256_H
#ifdef __cplusplus
extern "C" {
#endif

// SHA-256, self-contained (sha256.c): x86's SHA extensions where the CPU has them, else portable C.
// No library and no global state, so nothing is torn down at exit while another thread hashes.
// An opaque incremental hasher: create, update any number of times, finish into 32 bytes (which frees
// it), or free it unfinished.
typedef struct pth2swt_sha256_ctx pth2swt_sha256_ctx;
pth2swt_sha256_ctx *pth2swt_sha256_create(void);
int pth2swt_sha256_update(pth2swt_sha256_ctx *h, const void *data, size_t length);
int pth2swt_sha256_finish(pth2swt_sha256_ctx *h, uint8_t out[32]);
void pth2swt_sha256_free(pth2swt_sha256_ctx *h);
/// One call for a whole buffer. Returns 1 on success.
int pth2swt_sha256(const void *data, size_t length, uint8_t out[32]);
/// 1 when hashes use the SHA-NI block function on this CPU (and it is not forced off).
int pth2swt_sha256_accelerated(void);
/// 1: every later hash uses the portable block function (the reference twin), whatever the CPU; 0: undo.
void pth2swt_sha256_force_portable(int on);

#ifdef __cplusplus
}
#endif
#endif

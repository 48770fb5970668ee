#include "cchecksum.h"

#include <openssl/evp.h>

struct pth2swt_sha256_ctx {
    EVP_MD_CTX *ctx;
};

pth2swt_sha256_ctx *pth2swt_sha256_create(void) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) return NULL;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    pth2swt_sha256_ctx *h = OPENSSL_malloc(sizeof *h);
    if (!h) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    h->ctx = ctx;
    return h;
}

int pth2swt_sha256_update(pth2swt_sha256_ctx *h, const void *data, size_t length) {
    if (length == 0) return 1;
    return EVP_DigestUpdate(h->ctx, data, length) == 1;
}

int pth2swt_sha256_finish(pth2swt_sha256_ctx *h, uint8_t out[32]) {
    unsigned int n = 0;
    int ok = EVP_DigestFinal_ex(h->ctx, out, &n) == 1 && n == 32;
    pth2swt_sha256_free(h);
    return ok;
}

void pth2swt_sha256_free(pth2swt_sha256_ctx *h) {
    if (!h) return;
    EVP_MD_CTX_free(h->ctx);
    OPENSSL_free(h);
}

int pth2swt_sha256(const void *data, size_t length, uint8_t out[32]) {
    pth2swt_sha256_ctx *h = pth2swt_sha256_create();
    if (!h) return 0;
    if (!pth2swt_sha256_update(h, data, length)) {
        pth2swt_sha256_free(h);
        return 0;
    }
    return pth2swt_sha256_finish(h, out);
}

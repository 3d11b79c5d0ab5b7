/* Internals shared by the files of src/crypt/; not for other modules. */
#ifndef CAPSA_CRYPT_PRIVATE_H
#define CAPSA_CRYPT_PRIVATE_H

#include <openssl/evp.h>

#include "crypt/crypt.h"

/* An AES-XTS context ready for one direction; the IV is set per sector. */
int xts_ctx_new (const uint8_t *key, size_t keylen, bool encrypt, EVP_CIPHER_CTX **out, capsa_error_t *err);
/* Process len bytes (whole sectors) starting at sector index first. */
int xts_ctx_sectors (EVP_CIPHER_CTX *ctx, uint64_t first, uint32_t sector_size, const void *in, void *out,
                     size_t len, capsa_error_t *err);

/* The last message OpenSSL left on this thread's error queue (static
 * buffer per thread), or "" ; clears the queue. */
const char *openssl_last_error (void);

#endif

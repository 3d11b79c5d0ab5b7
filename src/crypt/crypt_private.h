/* Internals shared by the files of src/crypt/; not for other modules. */
#ifndef CAPSA_CRYPT_PRIVATE_H
#define CAPSA_CRYPT_PRIVATE_H

#include <openssl/evp.h>

#include "crypt/crypt.h"

/* An AES-XTS context ready for one direction; the IV is set per sector. */
int xts_ctx_new (const uint8_t *key, size_t keylen, bool encrypt, EVP_CIPHER_CTX **out, capsa_error_t *err);
/* Process len bytes (whole sectors); the first sector has tweak `tweak`,
 * each next one `step` more (see capsa_xts_crypt). */
int xts_ctx_sectors (EVP_CIPHER_CTX *ctx, uint64_t tweak, uint32_t step, uint32_t sector_size, const void *in,
                     void *out, size_t len, capsa_error_t *err);

/* The raw data keys, for the key record (src/crypt/image.c). */
const void *luks_volume_key (const struct capsa_luks_volume *v, size_t *len);
const void *gocryptfs_master_key (const struct capsa_gocryptfs_volume *v, size_t *len);

/* The last message OpenSSL left on this thread's error queue (static
 * buffer per thread), or "" ; clears the queue. */
const char *openssl_last_error (void);

#endif

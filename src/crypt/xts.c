/* AES-XTS the way dm-crypt's aes-xts-plain64 does it: every sector is one
 * XTS data unit whose tweak (IV) is a 64-bit little-endian number,
 * zero-extended to 16 bytes.  For LUKS2 that number counts 512-byte units
 * from the start of the data segment, plus the segment's iv_tweak, whatever
 * the segment's sector size: cryptsetup sets dm-crypt's iv_large_sectors
 * only for BitLocker and plain mode, so sector n of 4096 bytes has tweak
 * 8n.  The caller gives the tweak of the first sector and the step between
 * sectors (sector_size / 512 for dm-crypt). */
#include "crypt/crypt_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <inttypes.h>
#include <string.h>

#include <openssl/err.h>

const char *
openssl_last_error (void)
{
    static _Thread_local char buf[256];
    unsigned long e = ERR_peek_last_error ();

    buf[0] = '\0';
    if (e != 0)
        ERR_error_string_n (e, buf, sizeof (buf));
    ERR_clear_error ();
    return buf;
}

static bool
valid_sector_size (uint32_t s)
{
    return s >= 512 && s <= 4096 && (s & (s - 1)) == 0;
}

int
xts_ctx_new (const uint8_t *key, size_t keylen, bool encrypt, EVP_CIPHER_CTX **out, capsa_error_t *err)
{
    const EVP_CIPHER *cipher;
    EVP_CIPHER_CTX *ctx;

    if (keylen == 64)
        cipher = EVP_aes_256_xts ();
    else if (keylen == 32)
        cipher = EVP_aes_128_xts ();
    else
        return capsa_error_code (err, ENOTSUP, "unsupported aes-xts key size %zu bits", keylen * 8);
    ctx = EVP_CIPHER_CTX_new ();
    if (ctx == NULL)
        return capsa_error_code (err, ENOMEM, "cannot create a cipher context");
    if (EVP_CipherInit_ex2 (ctx, cipher, key, NULL, encrypt ? 1 : 0, NULL) != 1) {
        EVP_CIPHER_CTX_free (ctx);
        return capsa_error_code (err, EINVAL, "cannot set up aes-xts: %s", openssl_last_error ());
    }
    *out = ctx;
    return 0;
}

int
xts_ctx_sectors (EVP_CIPHER_CTX *ctx, uint64_t tweak, uint32_t step, uint32_t sector_size, const void *in,
                 void *out, size_t len, capsa_error_t *err)
{
    const unsigned char *src = in;
    unsigned char *dst = out;

    if (!valid_sector_size (sector_size) || len % sector_size != 0)
        return capsa_error_code (err, EINVAL, "aes-xts: %zu bytes are not whole %" PRIu32 "-byte sectors", len,
                                 sector_size);
    for (size_t done = 0; done < len; done += sector_size, tweak += step) {
        unsigned char iv[16] = { 0 };
        int outl = 0;

        for (int i = 0; i < 8; i++)
            iv[i] = (unsigned char) (tweak >> (8 * i));
        if (EVP_CipherInit_ex2 (ctx, NULL, NULL, iv, -1, NULL) != 1
            || EVP_CipherUpdate (ctx, dst + done, &outl, src + done, (int) sector_size) != 1
            || outl != (int) sector_size)
            return capsa_error_code (err, EIO, "aes-xts failed on the sector of tweak %" PRIu64 ": %s", tweak,
                                     openssl_last_error ());
    }
    return 0;
}

int
capsa_xts_crypt (const uint8_t *key, size_t keylen, bool encrypt, uint64_t first_tweak, uint32_t tweak_step,
                 uint32_t sector_size, const void *in, void *out, size_t len, capsa_error_t *err)
{
    EVP_CIPHER_CTX *ctx = NULL;
    int r;

    if (xts_ctx_new (key, keylen, encrypt, &ctx, err) < 0)
        return -1;
    r = xts_ctx_sectors (ctx, first_tweak, tweak_step, sector_size, in, out, len, err);
    EVP_CIPHER_CTX_free (ctx);
    return r;
}

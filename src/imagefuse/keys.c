/* The image server's keys: opening an encrypted image once, and deciding
 * whether a later container brings the key that opens it.
 *
 * A container's key comes as a record (src/crypt/crypt.h): a secret record
 * (passphrase, or PEM private key with the image's RSA key message), or a
 * data key record.  The first opens the image (the KDF runs, once).  For
 * the next ones the server keeps salted SHA-256 digests of the secrets that
 * opened it: an equal secret is accepted without any KDF; another one is
 * tried (the KDF runs) and accepted when it yields the same data key.  The
 * secrets themselves are not kept; the salt and digests are in locked
 * memory (the process is not dumpable, and holds the data key anyway). */
#include "imagefuse/server.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt/crypt.h"
#include "lib/utils.h"

static void
digest (const struct server *srv, const uint8_t *secret, size_t len, uint8_t out[32])
{
    unsigned int n = 32;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
    if (ctx == NULL || EVP_DigestInit_ex (ctx, EVP_sha256 (), NULL) != 1
        || EVP_DigestUpdate (ctx, srv->salt, 32) != 1 || EVP_DigestUpdate (ctx, secret, len) != 1
        || EVP_DigestFinal_ex (ctx, out, &n) != 1)
        memset (out, 0, 32); /* matches nothing: the salt makes 0 impossible in practice */
    EVP_MD_CTX_free (ctx);
}

static bool
known (struct server *srv, const uint8_t d[32])
{
    bool found = false;
    pthread_mutex_lock (&srv->lock);
    for (size_t i = 0; i < srv->ndigests; i++) {
        uint8_t diff = 0;
        for (int k = 0; k < 32; k++)
            diff |= srv->digests[i][k] ^ d[k];
        found |= diff == 0;
    }
    pthread_mutex_unlock (&srv->lock);
    return found;
}

static void
remember (struct server *srv, const uint8_t d[32])
{
    pthread_mutex_lock (&srv->lock);
    if (srv->ndigests < 64) {
        memcpy (srv->digests[srv->ndigests], d, 32);
        srv->ndigests++;
    }
    pthread_mutex_unlock (&srv->lock);
}

/* What the monitor shows: the KDF's cost (verbose), a capsa 0.1.0 image
 * (a warning). */
static void
describe (const struct capsa_crypt_image *img, bool with_kdf, char *info, size_t len)
{
    const struct capsa_kdf_cost *k = with_kdf ? capsa_crypt_kdf_cost (img) : NULL;
    size_t used = 0;
    info[0] = '\0';
    if (k)
        used = (size_t) snprintf (info, len, "kdf %s %s %" PRIu64 " %" PRIu32 " %" PRIu32 " %.3f\n",
                                  capsa_crypt_format_name (capsa_crypt_format (img)), k->type, k->memory_kb,
                                  k->iterations, k->parallel, k->seconds);
    if (used < len && capsa_crypt_legacy_numbering (img))
        snprintf (info + used, len - used, "legacy\n");
}

/* The secret of a secret record and its digest; the record's fields. */
static int
record_secret (struct server *srv, const uint8_t *rec, size_t len, struct capsa_secret_record *sr, uint8_t **secret,
               size_t *slen, uint8_t d[32], capsa_error_t *err)
{
    if (capsa_secret_record_parse (rec, len, sr, err) < 0 || capsa_crypt_record_secret (sr, secret, slen, err) < 0)
        return -1;
    digest (srv, *secret, *slen, d);
    return 0;
}

int
keys_open (struct server *srv, int fd, uint64_t off, uint64_t size, const uint8_t *rec, size_t len,
           struct capsa_crypt_image **out, char *info, size_t infolen, capsa_error_t *err)
{
    srv->salt = capsa_secure_alloc (32 + 64 * 32, NULL);
    srv->digests = (uint8_t (*)[32]) (srv->salt + 32);
    if (capsa_random_bytes (srv->salt, 32, err) < 0)
        return -1;
    if (!capsa_is_secret_record (rec, len)) {
        if (capsa_crypt_open_record (fd, off, size, rec, len, out, err) < 0)
            return -1;
        describe (*out, false, info, infolen);
        return 0;
    }
    struct capsa_secret_record sr;
    uint8_t *secret = NULL, d[32];
    size_t slen = 0;
    if (record_secret (srv, rec, len, &sr, &secret, &slen, d, err) < 0)
        return -1;
    int r = capsa_crypt_open_secret (fd, off, size, &sr, secret, slen, out, err);
    capsa_secure_free (secret);
    if (r < 0)
        return -1;
    remember (srv, d);
    describe (*out, true, info, infolen);
    return 0;
}

int
keys_check (struct server *srv, int fd, const uint8_t *rec, size_t len, char *info, size_t infolen, capsa_error_t *err)
{
    struct capsa_crypt_image *other = NULL;
    struct capsa_secret_record sr;
    uint8_t *secret = NULL, d[32];
    size_t slen = 0;
    int r;

    if (!capsa_is_secret_record (rec, len)) {
        /* A data key: the same as ours? */
        if (capsa_crypt_open_record (fd, srv->offset, srv->part_size ? srv->part_size : (uint64_t) srv->id.st_size - srv->offset,
                                     rec, len, &other, err)
            < 0)
            return -1;
        r = capsa_crypt_same_key (srv->volume, other) ? 0 : 1;
        if (r == 0)
            describe (srv->volume, false, info, infolen);
        capsa_crypt_close (other);
        return r;
    }
    if (record_secret (srv, rec, len, &sr, &secret, &slen, d, err) < 0)
        return -1;
    if (known (srv, d)) {
        capsa_secure_free (secret);
        describe (srv->volume, false, info, infolen);
        return 0;
    }
    /* A secret not seen yet (another passphrase keyslot, say): does it
     * open the same image?  One such KDF at a time (an Argon2id may take a
     * GiB of memory). */
    static pthread_mutex_t kdf_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock (&kdf_lock);
    r = capsa_crypt_open_secret (fd, srv->offset, srv->part_size ? srv->part_size : (uint64_t) srv->id.st_size - srv->offset,
                                 &sr, secret, slen, &other, err);
    pthread_mutex_unlock (&kdf_lock);
    capsa_secure_free (secret);
    if (r < 0)
        return -1;
    r = capsa_crypt_same_key (srv->volume, other) ? 0 : 1;
    if (r == 0) {
        remember (srv, d);
        describe (other, true, info, infolen);
    }
    capsa_crypt_close (other);
    return r;
}

/* Any encrypted image, LUKS2 or gocryptfs, behind one small interface:
 * open with a secret or a data key, read plaintext ranges from any number
 * of threads, hand the data key on as a self-describing record.  This is
 * what capsa-cryptfuse serves, and what an in-process image server can
 * call block by block. */
#include "crypt/crypt_private.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/utils.h"

struct capsa_crypt_image {
    enum capsa_crypt_format fmt;
    struct capsa_luks_volume *luks;
    struct capsa_gocryptfs_volume *gc;
};

enum { RECORD_MAGIC_LEN = sizeof (CAPSA_KEY_RECORD_MAGIC) - 1, RECORD_KEY_MAX = 64 };

const char *
capsa_crypt_format_name (enum capsa_crypt_format fmt)
{
    switch (fmt) {
    case CAPSA_CRYPT_LUKS2:
        return "LUKS2";
    case CAPSA_CRYPT_GOCRYPTFS:
        return "gocryptfs";
    default:
        return "unknown";
    }
}

int
capsa_crypt_detect (int fd, uint64_t off, uint64_t size, enum capsa_crypt_format *fmt, capsa_error_t *err)
{
    unsigned char magic[4];

    if (size < sizeof (magic) || off > INT64_MAX)
        return capsa_error_code (err, EBADMSG, "the encrypted partition is too small (%" PRIu64 " bytes)", size);
    if (pread_all (fd, magic, sizeof (magic), (off_t) off) < 0)
        return capsa_error_make (err, errno, "cannot read the encrypted partition");
    *fmt = memcmp (magic, "hsqs", 4) == 0 ? CAPSA_CRYPT_GOCRYPTFS : CAPSA_CRYPT_LUKS2;
    return 0;
}

int
capsa_crypt_open (int fd, uint64_t off, uint64_t size, enum capsa_crypt_format fmt, const void *secret,
                  size_t secret_len, unsigned flags, struct capsa_crypt_image **out, capsa_error_t *err)
{
    struct capsa_crypt_image *img;
    int r;

    if (fmt == CAPSA_CRYPT_AUTO && capsa_crypt_detect (fd, off, size, &fmt, err) < 0)
        return -1;
    img = xcalloc (1, sizeof (*img));
    img->fmt = fmt;
    switch (fmt) {
    case CAPSA_CRYPT_LUKS2:
        r = capsa_luks_open (fd, off, size, secret, secret_len,
                             (flags & CAPSA_CRYPT_DATA_KEY) ? CAPSA_LUKS_VOLUME_KEY : 0, &img->luks, err);
        break;
    case CAPSA_CRYPT_GOCRYPTFS:
        r = capsa_gocryptfs_open (fd, off, size, secret, secret_len, flags & CAPSA_CRYPT_DATA_KEY, &img->gc, err);
        break;
    default:
        r = capsa_error_code (err, EINVAL, "unknown encrypted image format %d", (int) fmt);
        break;
    }
    if (r < 0) {
        free (img);
        return -1;
    }
    *out = img;
    return 0;
}

void
capsa_crypt_close (struct capsa_crypt_image *img)
{
    if (img == NULL)
        return;
    capsa_luks_close (img->luks);
    capsa_gocryptfs_close (img->gc);
    free (img);
}

enum capsa_crypt_format
capsa_crypt_format (const struct capsa_crypt_image *img)
{
    return img->fmt;
}

uint64_t
capsa_crypt_size (const struct capsa_crypt_image *img)
{
    return img->luks ? capsa_luks_size (img->luks) : capsa_gocryptfs_size (img->gc);
}

uint32_t
capsa_crypt_block_size (const struct capsa_crypt_image *img)
{
    return img->luks ? capsa_luks_sector_size (img->luks) : 4096;
}

const struct capsa_kdf_cost *
capsa_crypt_kdf_cost (const struct capsa_crypt_image *img)
{
    return img->luks ? capsa_luks_kdf_cost (img->luks) : capsa_gocryptfs_kdf_cost (img->gc);
}

bool
capsa_crypt_legacy_numbering (const struct capsa_crypt_image *img)
{
    return img->luks && capsa_luks_legacy_numbering (img->luks);
}

ssize_t
capsa_crypt_read (struct capsa_crypt_image *img, void *buf, size_t len, uint64_t off, capsa_error_t *err)
{
    return img->luks ? capsa_luks_read (img->luks, buf, len, off, err)
                     : capsa_gocryptfs_read (img->gc, buf, len, off, err);
}

int
capsa_crypt_write_record (const struct capsa_crypt_image *img, int fd, capsa_error_t *err)
{
    unsigned char rec[RECORD_MAGIC_LEN + 2 + RECORD_KEY_MAX];
    const void *key;
    size_t len;
    int ret = 0;

    key = img->luks ? luks_volume_key (img->luks, &len) : gocryptfs_master_key (img->gc, &len);
    if (len > RECORD_KEY_MAX)
        return capsa_error_code (err, EINVAL, "a %zu-byte data key does not fit a key record", len);
    memcpy (rec, CAPSA_KEY_RECORD_MAGIC, RECORD_MAGIC_LEN);
    rec[RECORD_MAGIC_LEN] = (unsigned char) img->fmt;
    rec[RECORD_MAGIC_LEN + 1] = (unsigned char) len;
    memcpy (rec + RECORD_MAGIC_LEN + 2, key, len);
    if (write_all (fd, rec, RECORD_MAGIC_LEN + 2 + len) < 0)
        ret = capsa_error_make (err, errno, "cannot pass the image key on");
    explicit_bzero (rec, sizeof (rec));
    return ret;
}

int
capsa_crypt_record_secret (const struct capsa_secret_record *rec, uint8_t **secret, size_t *len, capsa_error_t *err)
{
    struct capsa_rsa_key *rsa = NULL;

    if (rec->kind == CAPSA_SECRET_PASSPHRASE) {
        *secret = capsa_secure_alloc (rec->secret_len, NULL);
        memcpy (*secret, rec->secret, rec->secret_len);
        *len = rec->secret_len;
        return 0;
    }
    /* A PEM private key: NUL-terminated in locked memory for the parser. */
    cleanup_free char *what = xasprintf ("%.*s", (int) rec->source_len, rec->source);
    char *pem = capsa_secure_alloc (rec->secret_len + 1, NULL);
    memcpy (pem, rec->secret, rec->secret_len);
    int r = capsa_rsa_key_load (pem, rec->secret_len, true, what[0] ? what : "the PEM key", &rsa, err);
    capsa_secure_free (pem);
    if (r < 0)
        return -1;
    r = capsa_rsa_unwrap (rsa, rec->message, rec->message_len, secret, len, err);
    capsa_rsa_key_free (rsa);
    if (r < 0 && (*err)->code == EKEYREJECTED)
        capsa_error_code (err, EKEYREJECTED, "the private key in %s does not open the image", what[0] ? what : "given");
    return r;
}

int
capsa_crypt_open_secret (int fd, uint64_t off, uint64_t size, const struct capsa_secret_record *sr, const uint8_t *secret,
                         size_t len, struct capsa_crypt_image **out, capsa_error_t *err)
{
    int r = capsa_crypt_open (fd, off, size, sr->fmt, secret, len, 0, out, err);
    if (r < 0 && (*err)->code == EKEYREJECTED) {
        if (sr->kind == CAPSA_SECRET_PEM)
            capsa_error_code (err, EKEYREJECTED, "the private key in %.*s does not open the image", (int) sr->source_len,
                              sr->source);
        else if (sr->message_len > 0)
            capsa_error_code (err, EKEYREJECTED, "the passphrase does not open the image: it was encrypted with "
                              "an RSA key (use --pem-path PRIVATE_KEY)");
        else
            capsa_error_code (err, EKEYREJECTED, "the passphrase does not open the image");
    }
    return r;
}

/* A secret record: the secret, then the image opened with it (the KDF
 * runs), with the messages the front end gives for a wrong key. */
static int
open_secret_record (int fd, uint64_t off, uint64_t size, const void *rec, size_t rec_len,
                    struct capsa_crypt_image **out, capsa_error_t *err)
{
    struct capsa_secret_record sr;
    uint8_t *secret = NULL;
    size_t len = 0;

    if (capsa_secret_record_parse (rec, rec_len, &sr, err) < 0 || capsa_crypt_record_secret (&sr, &secret, &len, err) < 0)
        return -1;
    int r = capsa_crypt_open_secret (fd, off, size, &sr, secret, len, out, err);
    capsa_secure_free (secret);
    return r;
}

int
capsa_crypt_open_record (int fd, uint64_t off, uint64_t size, const void *rec, size_t rec_len,
                         struct capsa_crypt_image **out, capsa_error_t *err)
{
    const unsigned char *r = rec;
    enum capsa_crypt_format fmt;

    if (capsa_is_secret_record (rec, rec_len))
        return open_secret_record (fd, off, size, rec, rec_len, out, err);
    if (rec_len < RECORD_MAGIC_LEN || memcmp (r, CAPSA_KEY_RECORD_MAGIC, RECORD_MAGIC_LEN) != 0) {
        /* A bare LUKS2 volume key, as capsa 0.1.0's runtime passed it. */
        if (rec_len != 32 && rec_len != 64)
            return capsa_error_code (err, EINVAL, "the key given is neither a key record nor a LUKS2 volume key "
                                     "(%zu bytes)", rec_len);
        return capsa_crypt_open (fd, off, size, CAPSA_CRYPT_LUKS2, rec, rec_len, CAPSA_CRYPT_DATA_KEY, out, err);
    }
    if (rec_len < RECORD_MAGIC_LEN + 2 || rec_len != RECORD_MAGIC_LEN + 2 + (size_t) r[RECORD_MAGIC_LEN + 1])
        return capsa_error_code (err, EINVAL, "the key record is truncated or too long (%zu bytes)", rec_len);
    fmt = (enum capsa_crypt_format) r[RECORD_MAGIC_LEN];
    if (fmt != CAPSA_CRYPT_LUKS2 && fmt != CAPSA_CRYPT_GOCRYPTFS)
        return capsa_error_code (err, EINVAL, "the key record names an unknown format %u", r[RECORD_MAGIC_LEN]);
    return capsa_crypt_open (fd, off, size, fmt, r + RECORD_MAGIC_LEN + 2, r[RECORD_MAGIC_LEN + 1],
                             CAPSA_CRYPT_DATA_KEY, out, err);
}

bool
capsa_crypt_same_key (const struct capsa_crypt_image *a, const struct capsa_crypt_image *b)
{
    size_t la, lb;
    const uint8_t *ka, *kb;

    if (a->fmt != b->fmt)
        return false;
    ka = a->luks ? luks_volume_key (a->luks, &la) : gocryptfs_master_key (a->gc, &la);
    kb = b->luks ? luks_volume_key (b->luks, &lb) : gocryptfs_master_key (b->gc, &lb);
    if (la != lb)
        return false;
    uint8_t diff = 0;
    for (size_t i = 0; i < la; i++)
        diff |= ka[i] ^ kb[i];
    return diff == 0;
}

/* The key material a user's front end hands on unopened (a "secret
 * record"), and the SIF lookups it needs; see crypt.h.  Nothing here uses
 * OpenSSL or libcryptsetup: the light front end links this file, and the
 * record is opened where the image is served (the image server, or
 * capsa-cryptfuse through capsa_crypt_open_record). */
#include "crypt/crypt.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "lib/utils.h"

enum {
    SECRET_MAGIC_LEN = sizeof (CAPSA_SECRET_RECORD_MAGIC) - 1,
    SECRET_HEAD_LEN = SECRET_MAGIC_LEN + 4, /* magic, version, format, kind, reserved */
    SECRET_SOURCE_MAX = 4096,
    SECRET_MESSAGE_MAX = 16384,
};

int
capsa_sif_crypt_format (const struct sif_descriptor *part, enum capsa_crypt_format *fmt, capsa_error_t *err)
{
    struct sif_partition pi;

    if (sif_get_partition (part, &pi, err) < 0)
        return -1;
    if (pi.fstype == SIF_FS_ENCRYPTED_SQUASHFS)
        *fmt = CAPSA_CRYPT_LUKS2;
    else if (pi.fstype == SIF_FS_GOCRYPTFS_SQUASHFS)
        *fmt = CAPSA_CRYPT_GOCRYPTFS;
    else
        return capsa_error_code (err, EINVAL, "partition %" PRIu32 " is not an encrypted squashfs (it is %s)",
                                 part->id, sif_fstype_name (pi.fstype));
    return 0;
}

int
capsa_sif_find_key_message (const struct sif_image *img, const struct sif_descriptor *part,
                            const struct sif_descriptor **msg, capsa_error_t *err)
{
    *msg = NULL;
    for (size_t i = 0; i < sif_descriptor_count (img); i++) {
        const struct sif_descriptor *d = sif_descriptor_at (img, i);
        struct sif_crypto_message cm;

        if (d->datatype != SIF_DATA_CRYPTO_MESSAGE)
            continue;
        if (!(d->link_is_group ? (part->group != 0 && d->link == part->group) : d->link == part->id))
            continue;
        if (sif_get_crypto_message (d, &cm, err) < 0)
            return -1;
        if (cm.format != SIF_FORMAT_PEM || cm.message != SIF_MESSAGE_RSA_OAEP)
            continue;
        if (*msg != NULL)
            return capsa_error_code (err, EINVAL, "several RSA key messages (objects %" PRIu32 " and %" PRIu32
                                     ") are linked to the encrypted partition",
                                     (*msg)->id, d->id);
        *msg = d;
    }
    return 0;
}

static void
put32 (uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) v, p[1] = (uint8_t) (v >> 8), p[2] = (uint8_t) (v >> 16), p[3] = (uint8_t) (v >> 24);
}

static uint32_t
get32 (const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

int
capsa_secret_record_write (const struct sif_image *img, const struct sif_descriptor *part,
                           const struct capsa_keyspec *key, int fd, capsa_error_t *err)
{
    const struct sif_descriptor *msgd = NULL;
    enum capsa_crypt_format fmt;
    cleanup_free char *msg = NULL;
    size_t msg_len = 0;

    if (capsa_sif_crypt_format (part, &fmt, err) < 0 || capsa_sif_find_key_message (img, part, &msgd, err) < 0)
        return -1;
    /* What capsa_sif_key_secret() would refuse, refused here alike. */
    switch (key ? key->kind : CAPSA_KEY_NONE) {
    case CAPSA_KEY_NONE:
        return capsa_error_code (err, ENOKEY, "the image is encrypted%s and no key was given: use %s (or %s)",
                                 msgd ? " with an RSA key" : " with a passphrase",
                                 msgd ? "--pem-path PRIVATE_KEY" : "--passphrase",
                                 msgd ? "CAPSA_ENCRYPTION_PEM_PATH" : "CAPSA_ENCRYPTION_PASSPHRASE");
    case CAPSA_KEY_PEM:
        if (msgd == NULL)
            return capsa_error_code (err, EINVAL, "the image is encrypted with a passphrase, not an RSA key: use "
                                     "--passphrase (or CAPSA_ENCRYPTION_PASSPHRASE)");
        break;
    case CAPSA_KEY_PASSPHRASE:
        break;
    }
    if (msgd && sif_read_object (img, msgd, SECRET_MESSAGE_MAX, &msg, &msg_len, err) < 0)
        return capsa_error_wrap (err, "cannot read the image's key message");
    const char *source = key->source ? key->source : "";
    size_t source_len = strnlen (source, SECRET_SOURCE_MAX);
    if (key->len > CAPSA_SECRET_RECORD_MAX - SECRET_HEAD_LEN - 12 - source_len - msg_len)
        return capsa_error_code (err, EINVAL, "the key is too long (%zu bytes)", key->len);
    size_t len = SECRET_HEAD_LEN + 4 + source_len + 4 + msg_len + 4 + key->len;
    uint8_t *rec = capsa_secure_alloc (len, NULL), *p = rec;
    memcpy (p, CAPSA_SECRET_RECORD_MAGIC, SECRET_MAGIC_LEN);
    p += SECRET_MAGIC_LEN;
    *p++ = 1; /* version */
    *p++ = (uint8_t) fmt;
    *p++ = key->kind == CAPSA_KEY_PEM ? CAPSA_SECRET_PEM : CAPSA_SECRET_PASSPHRASE;
    *p++ = 0;
    put32 (p, (uint32_t) source_len), memcpy (p + 4, source, source_len), p += 4 + source_len;
    put32 (p, (uint32_t) msg_len), memcpy (p + 4, msg ? msg : "", msg_len), p += 4 + msg_len;
    put32 (p, (uint32_t) key->len), memcpy (p + 4, key->data, key->len);
    /* The pipe holds it whole: nobody reads it before the front end execs. */
    int r = write_all (fd, rec, len) < 0 ? capsa_error_make (err, errno, "cannot pass the key on") : 0;
    capsa_secure_free (rec);
    return r;
}

bool
capsa_is_secret_record (const void *rec, size_t len)
{
    return len >= SECRET_MAGIC_LEN && memcmp (rec, CAPSA_SECRET_RECORD_MAGIC, SECRET_MAGIC_LEN) == 0;
}

int
capsa_secret_record_parse (const void *rec, size_t len, struct capsa_secret_record *out, capsa_error_t *err)
{
    const uint8_t *p = rec, *end = p + len;
    uint32_t n;

    memset (out, 0, sizeof (*out));
    if (!capsa_is_secret_record (rec, len) || len < SECRET_HEAD_LEN || len > CAPSA_SECRET_RECORD_MAX)
        return capsa_error_code (err, EINVAL, "not a key record (%zu bytes)", len);
    p += SECRET_MAGIC_LEN;
    if (p[0] != 1)
        return capsa_error_code (err, EINVAL, "a key record of version %u, not 1", p[0]);
    if (p[1] != CAPSA_CRYPT_LUKS2 && p[1] != CAPSA_CRYPT_GOCRYPTFS)
        return capsa_error_code (err, EINVAL, "the key record names an unknown format %u", p[1]);
    if (p[2] != CAPSA_SECRET_PASSPHRASE && p[2] != CAPSA_SECRET_PEM)
        return capsa_error_code (err, EINVAL, "the key record names an unknown kind of key %u", p[2]);
    out->fmt = (enum capsa_crypt_format) p[1];
    out->kind = (enum capsa_secret_kind) p[2];
    p += 4;
    /* Three length-prefixed fields: source, message, secret. */
    const uint8_t **fields[3] = { (const uint8_t **) &out->source, (const uint8_t **) &out->message, &out->secret };
    size_t *lens[3] = { &out->source_len, &out->message_len, &out->secret_len };
    const size_t max[3] = { SECRET_SOURCE_MAX, SECRET_MESSAGE_MAX, CAPSA_SECRET_RECORD_MAX };
    for (int i = 0; i < 3; i++) {
        if (end - p < 4 || (n = get32 (p)) > max[i] || n > (size_t) (end - p) - 4)
            return capsa_error_code (err, EINVAL, "the key record is truncated");
        *fields[i] = p + 4;
        *lens[i] = n;
        p += 4 + n;
    }
    if (p != end)
        return capsa_error_code (err, EINVAL, "the key record has %zu bytes too many", (size_t) (end - p));
    if (out->secret_len == 0 || (out->kind == CAPSA_SECRET_PEM && out->message_len == 0))
        return capsa_error_code (err, EINVAL, "the key record holds no key");
    return 0;
}

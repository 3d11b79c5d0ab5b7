/* Encrypted partitions in SIF images: writing one (for `capsa encrypt` and
 * `capsa build`), and finding the secret that opens one (for running).
 *
 * The encrypted partition is written through a pipe: a thread encrypts the
 * squashfs into it while sif_add_object() copies from it into the image,
 * so neither the plaintext nor a temporary ciphertext ever lands in a
 * file. */
#include "crypt/crypt_private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "lib/utils.h"

/* ---- Writing ------------------------------------------------------------------ */

struct writer {
    int in_fd, out_fd;
    uint64_t len;
    enum capsa_kdf kdf;
    const void *secret;
    size_t secret_len;
    int ret;
    capsa_error_t err;
};

static void *
writer_main (void *p)
{
    struct writer *w = p;
    sigset_t s;

    /* If the reader gives up, write() fails with EPIPE instead of killing
     * the process. */
    sigemptyset (&s);
    sigaddset (&s, SIGPIPE);
    pthread_sigmask (SIG_BLOCK, &s, NULL);
    w->ret = capsa_luks_encrypt_stream (w->in_fd, w->len, w->out_fd, w->kdf, w->secret, w->secret_len,
                                        CAPSA_LUKS_EXPECT_SQUASHFS, NULL, &w->err);
    close (w->out_fd);
    return NULL;
}

/* Add a small object whose bytes are data, through a pipe. */
static int
add_small_object (struct sif_image *out, const struct sif_add_opts *o, const void *data, size_t len, uint32_t *id,
                  capsa_error_t *err)
{
    int p[2];
    int r;

    if (len > 60000)
        return capsa_error_code (err, EFBIG, "object too large for a pipe");
    if (pipe2 (p, O_CLOEXEC) < 0)
        return capsa_error_make (err, errno, "pipe");
    if (write_all (p[1], data, len) < 0) {
        capsa_error_make (err, errno, "write to pipe");
        close (p[0]);
        close (p[1]);
        return -1;
    }
    close (p[1]);
    r = sif_add_object (out, o, p[0], id, err);
    close (p[0]);
    return r;
}

int
capsa_encrypt_write_partition (struct sif_image *out, int squashfs_fd, const struct capsa_keyspec *key,
                               const struct capsa_encrypt_opts *opts, uint32_t *part_id, capsa_error_t *err)
{
    struct capsa_rsa_key *rsa = NULL;
    uint8_t *rsa_secret = NULL;
    cleanup_free char *msg = NULL;
    size_t msg_len = 0;
    struct writer w = { .in_fd = squashfs_fd, .out_fd = -1 };
    struct sif_add_opts ao = { 0 };
    pthread_t thread;
    int p[2], r, ret = -1;
    uint32_t id = 0;

    if (opts == NULL || opts->arch == NULL)
        return capsa_error_code (err, EINVAL, "no architecture given for the encrypted partition");
    w.len = opts->length == 0 ? CAPSA_LUKS_TO_EOF : opts->length;
    switch (key ? key->kind : CAPSA_KEY_NONE) {
    case CAPSA_KEY_PASSPHRASE:
        w.kdf = CAPSA_KDF_ARGON2ID;
        w.secret = key->data;
        w.secret_len = key->len;
        break;
    case CAPSA_KEY_PEM:
        if (capsa_rsa_key_load (key->data, key->len, false, key->source ? key->source : "the PEM key", &rsa, err) < 0)
            return -1;
        rsa_secret = capsa_secure_alloc (CAPSA_RSA_SECRET_SIZE, NULL);
        if (capsa_random_bytes (rsa_secret, CAPSA_RSA_SECRET_SIZE, err) < 0
            || capsa_rsa_wrap (rsa, rsa_secret, CAPSA_RSA_SECRET_SIZE, &msg, &msg_len, err) < 0)
            goto out;
        w.kdf = CAPSA_KDF_PBKDF2;
        w.secret = rsa_secret;
        w.secret_len = CAPSA_RSA_SECRET_SIZE;
        break;
    default:
        return capsa_error_code (err, ENOKEY, "no encryption key given: use --passphrase or --pem-path");
    }

    if (pipe2 (p, O_CLOEXEC) < 0) {
        capsa_error_make (err, errno, "pipe");
        goto out;
    }
    w.out_fd = p[1];
    if ((r = pthread_create (&thread, NULL, writer_main, &w)) != 0) {
        close (p[0]);
        close (p[1]);
        capsa_error_make (err, r, "cannot start the encryption thread");
        goto out;
    }
    ao.datatype = SIF_DATA_PARTITION;
    ao.group = opts->group ? opts->group : 1;
    ao.alignment = -1;
    ao.time = opts->time;
    ao.fstype = SIF_FS_ENCRYPTED_SQUASHFS;
    ao.parttype = SIF_PART_PRIMSYS;
    ao.arch = opts->arch;
    r = sif_add_object (out, &ao, p[0], &id, err);
    close (p[0]); /* a writer still writing gets EPIPE */
    pthread_join (thread, NULL);
    if (r < 0) {
        capsa_error_free (&w.err);
        goto out;
    }
    if (w.ret < 0) {
        /* The reader saw a clean end of file: undo the truncated object. */
        (void) sif_delete_object (out, id, true, true, NULL);
        *err = steal_ptr (&w.err);
        goto out;
    }

    if (rsa) {
        struct sif_add_opts mo = { 0 };
        mo.datatype = SIF_DATA_CRYPTO_MESSAGE;
        mo.group = ao.group;
        mo.link = id;
        mo.alignment = -1;
        mo.time = opts->time;
        mo.format = SIF_FORMAT_PEM;
        mo.message = SIF_MESSAGE_RSA_OAEP;
        if (add_small_object (out, &mo, msg, msg_len, NULL, err) < 0) {
            (void) sif_delete_object (out, id, true, true, NULL);
            goto out;
        }
    }
    if (part_id)
        *part_id = id;
    ret = 0;
out:
    capsa_secure_free (rsa_secret);
    capsa_rsa_key_free (rsa);
    return ret;
}

/* ---- Opening ------------------------------------------------------------------ */

/* capsa_sif_crypt_format() and capsa_sif_find_key_message(): keyrecord.c,
 * which the light front end links without OpenSSL. */

int
capsa_sif_key_secret (const struct sif_image *img, const struct sif_descriptor *part,
                      const struct capsa_keyspec *key, uint8_t **secret, size_t *secret_len, capsa_error_t *err)
{
    const struct sif_descriptor *msgd = NULL;
    struct capsa_rsa_key *rsa = NULL;
    char *msg = NULL;
    size_t msg_len = 0;
    int ret;

    enum capsa_crypt_format fmt;

    if (capsa_sif_crypt_format (part, &fmt, err) < 0 || capsa_sif_find_key_message (img, part, &msgd, err) < 0)
        return -1;
    switch (key ? key->kind : CAPSA_KEY_NONE) {
    case CAPSA_KEY_NONE:
        return capsa_error_code (err, ENOKEY, "the image is encrypted%s and no key was given: use %s (or %s)",
                                 msgd ? " with an RSA key" : " with a passphrase",
                                 msgd ? "--pem-path PRIVATE_KEY" : "--passphrase",
                                 msgd ? "CAPSA_ENCRYPTION_PEM_PATH" : "CAPSA_ENCRYPTION_PASSPHRASE");
    case CAPSA_KEY_PASSPHRASE:
        /* Even for an RSA image: someone may have added a passphrase
         * keyslot; if not, capsa_sif_luks_open says what to use. */
        *secret = capsa_secure_alloc (key->len, NULL);
        memcpy (*secret, key->data, key->len);
        *secret_len = key->len;
        return 0;
    case CAPSA_KEY_PEM:
        break;
    }
    if (msgd == NULL)
        return capsa_error_code (err, EINVAL, "the image is encrypted with a passphrase, not an RSA key: use "
                                 "--passphrase (or CAPSA_ENCRYPTION_PASSPHRASE)");
    if (capsa_rsa_key_load (key->data, key->len, true, key->source ? key->source : "the PEM key", &rsa, err) < 0)
        return -1;
    if (sif_read_object (img, msgd, 1 << 16, &msg, &msg_len, err) < 0) {
        capsa_rsa_key_free (rsa);
        return capsa_error_wrap (err, "cannot read the image's key message");
    }
    ret = capsa_rsa_unwrap (rsa, msg, msg_len, secret, secret_len, err);
    if (ret < 0 && (*err)->code == EKEYREJECTED)
        capsa_error_code (err, EKEYREJECTED, "the private key in %s does not open the image",
                          key->source ? key->source : "given");
    free (msg);
    capsa_rsa_key_free (rsa);
    return ret;
}

int
capsa_sif_crypt_open (const struct sif_image *img, const struct sif_descriptor *part,
                      const struct capsa_keyspec *key, struct capsa_crypt_image **out, capsa_error_t *err)
{
    uint8_t *secret = NULL;
    size_t len = 0;
    const struct sif_descriptor *msgd = NULL;
    enum capsa_crypt_format fmt;
    int r;

    if (capsa_sif_crypt_format (part, &fmt, err) < 0 || capsa_sif_key_secret (img, part, key, &secret, &len, err) < 0)
        return -1;
    r = capsa_crypt_open (sif_image_fd (img), (uint64_t) part->offset, (uint64_t) part->size, fmt, secret, len, 0,
                          out, err);
    capsa_secure_free (secret);
    if (r < 0 && (*err)->code == EKEYREJECTED) {
        (void) capsa_sif_find_key_message (img, part, &msgd, NULL);
        if (key->kind == CAPSA_KEY_PEM)
            capsa_error_code (err, EKEYREJECTED, "the private key in %s does not open the image",
                              key->source ? key->source : "given");
        else if (msgd)
            capsa_error_code (err, EKEYREJECTED, "the passphrase does not open the image: it was encrypted with "
                              "an RSA key (use --pem-path PRIVATE_KEY)");
        else
            capsa_error_code (err, EKEYREJECTED, "the passphrase does not open the image");
    }
    return r;
}

/* RSA keys and the key message of RSA-encrypted images.
 *
 * The message format is Apptainer's (pkg/util/cryptkey there): the secret
 * is cut into chunks of k - 2 * 32 - 2 bytes (k: the modulus size in
 * bytes, 32: SHA-256's size; the most RSA-OAEP can carry), each chunk is
 * encrypted with RSA-OAEP, SHA-256 for both the hash and MGF1 and an empty
 * label, the k-byte ciphertexts are concatenated, DER-encoded as an ASN.1
 * OCTET STRING, inside a PEM block of type MESSAGE.  A 64-byte secret is
 * one chunk from 1040-bit keys up, two below (1024-bit keys).  Keys of
 * 1024 bits and more are accepted: Go's crypto/rsa, which Apptainer uses,
 * refuses smaller ones; OpenSSL refuses more than 16384. */
#include "crypt/crypt_private.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "lib/utils.h"

struct capsa_rsa_key {
    EVP_PKEY *pkey;
    bool is_private;
};

/* The label of the first PEM block ("RSA PRIVATE KEY"), into buf; false
 * when the text holds no PEM block. */
static bool
pem_label (const char *pem, size_t len, char *buf, size_t buflen)
{
    static const char begin[] = "-----BEGIN ";
    const char *p = memmem (pem, len, begin, sizeof (begin) - 1), *e;

    if (p == NULL)
        return false;
    p += sizeof (begin) - 1;
    e = memmem (p, len - (size_t) (p - pem), "-----", 5);
    if (e == NULL || (size_t) (e - p) >= buflen)
        return false;
    memcpy (buf, p, (size_t) (e - p));
    buf[e - p] = '\0';
    return true;
}

static int
no_passphrase (char *buf, size_t size, size_t *len, const OSSL_PARAM params[], void *data)
{
    (void) buf;
    (void) size;
    (void) len;
    (void) params;
    *(bool *) data = true;
    return 0;
}

int
capsa_rsa_key_load (const char *pem, size_t len, bool need_private, const char *what, struct capsa_rsa_key **out,
                    capsa_error_t *err)
{
    char label[64];
    bool wants_passphrase = false;
    OSSL_DECODER_CTX *dctx = NULL;
    EVP_PKEY *pkey = NULL;
    const unsigned char *data = (const unsigned char *) pem;
    size_t datalen = len;
    BIGNUM *d = NULL;
    bool is_private;

    if (!pem_label (pem, len, label, sizeof (label)))
        return capsa_error_code (err, EINVAL, "%s is not a PEM file (no -----BEGIN line)", what);
    if (strcmp (label, "ENCRYPTED PRIVATE KEY") == 0 || memmem (pem, len, "Proc-Type: 4,ENCRYPTED", 22) != NULL)
        return capsa_error_code (err, EINVAL, "%s is protected by a passphrase, which capsa does not support; "
                                 "remove it with 'openssl pkey -in KEY -out KEY.nopass'", what);
    if (strstr (label, "PRIVATE KEY") == NULL && strstr (label, "PUBLIC KEY") == NULL)
        return capsa_error_code (err, EINVAL, "%s holds a PEM %s, not an RSA key", what, label);
    if (strcmp (label, "RSA PRIVATE KEY") != 0 && strcmp (label, "PRIVATE KEY") != 0
        && strcmp (label, "RSA PUBLIC KEY") != 0 && strcmp (label, "PUBLIC KEY") != 0)
        return capsa_error_code (err, EINVAL, "%s holds a PEM %s, not an RSA key", what, label);

    dctx = OSSL_DECODER_CTX_new_for_pkey (&pkey, "PEM", NULL, NULL, 0, NULL, NULL);
    if (dctx == NULL)
        return capsa_error_code (err, ENOMEM, "cannot set up a PEM decoder: %s", openssl_last_error ());
    OSSL_DECODER_CTX_set_passphrase_cb (dctx, no_passphrase, &wants_passphrase);
    if (OSSL_DECODER_from_data (dctx, &data, &datalen) != 1 || pkey == NULL) {
        const char *why = openssl_last_error ();
        OSSL_DECODER_CTX_free (dctx);
        if (wants_passphrase)
            return capsa_error_code (err, EINVAL, "%s is protected by a passphrase, which capsa does not support", what);
        return capsa_error_code (err, EINVAL, "cannot parse the key in %s%s%s", what, *why ? ": " : "", why);
    }
    OSSL_DECODER_CTX_free (dctx);
    if (!EVP_PKEY_is_a (pkey, "RSA")) {
        const char *type = EVP_PKEY_get0_type_name (pkey);
        capsa_error_code (err, EINVAL, "%s holds a%s %s key, not an RSA key", what,
                          type && strchr ("AEIOU", type[0]) ? "n" : "", type ? type : "non-RSA");
        EVP_PKEY_free (pkey);
        return -1;
    }
    is_private = EVP_PKEY_get_bn_param (pkey, OSSL_PKEY_PARAM_RSA_D, &d) == 1 && d != NULL;
    BN_clear_free (d);
    ERR_clear_error ();
    if (need_private && !is_private) {
        EVP_PKEY_free (pkey);
        return capsa_error_code (err, EINVAL, "%s holds a public key; running an encrypted image needs the "
                                 "private key", what);
    }
    if (EVP_PKEY_get_bits (pkey) < 1024 || EVP_PKEY_get_bits (pkey) > 16384) {
        int bits = EVP_PKEY_get_bits (pkey);
        EVP_PKEY_free (pkey);
        return capsa_error_code (err, EINVAL, "%s holds a %d-bit RSA key; RSA keys of 1024 to 16384 bits are "
                                 "supported", what, bits);
    }
    *out = xcalloc (1, sizeof (**out));
    (*out)->pkey = pkey;
    (*out)->is_private = is_private;
    return 0;
}

void
capsa_rsa_key_free (struct capsa_rsa_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free (k->pkey);
    free (k);
}

static EVP_PKEY_CTX *
oaep_ctx (const struct capsa_rsa_key *k, bool encrypt)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey (NULL, k->pkey, NULL);

    if (ctx == NULL)
        return NULL;
    if ((encrypt ? EVP_PKEY_encrypt_init (ctx) : EVP_PKEY_decrypt_init (ctx)) != 1
        || EVP_PKEY_CTX_set_rsa_padding (ctx, RSA_PKCS1_OAEP_PADDING) != 1
        || EVP_PKEY_CTX_set_rsa_oaep_md_name (ctx, "SHA256", NULL) != 1
        || EVP_PKEY_CTX_set_rsa_mgf1_md_name (ctx, "SHA256", NULL) != 1) {
        EVP_PKEY_CTX_free (ctx);
        return NULL;
    }
    return ctx;
}

int
capsa_rsa_wrap (const struct capsa_rsa_key *k, const void *secret, size_t secret_len, char **msg, size_t *msg_len,
                capsa_error_t *err)
{
    EVP_PKEY_CTX *ctx = oaep_ctx (k, true);
    cleanup_free unsigned char *ct = NULL, *der = NULL;
    const size_t ksize = (size_t) EVP_PKEY_get_size (k->pkey), step = ksize > 66 ? ksize - 66 : 0;
    size_t ct_len = 0;
    ASN1_OCTET_STRING *os = NULL;
    BIO *bio = NULL;
    char *text;
    long text_len;
    int der_len, ret = -1;

    if (ctx == NULL)
        return capsa_error_code (err, EINVAL, "cannot set up RSA-OAEP: %s", openssl_last_error ());
    if (step == 0 || secret_len == 0 || secret_len > CAPSA_SECRET_MAX) {
        capsa_error_code (err, EINVAL, "cannot wrap %zu bytes with a %zu-bit RSA key", secret_len, ksize * 8);
        goto out;
    }
    ct = xmalloc ((secret_len + step - 1) / step * ksize);
    for (size_t at = 0; at < secret_len; at += step) {
        size_t n = secret_len - at < step ? secret_len - at : step, out_len = ksize;
        if (EVP_PKEY_encrypt (ctx, ct + ct_len, &out_len, (const unsigned char *) secret + at, n) != 1
            || out_len != ksize) {
            capsa_error_code (err, EINVAL, "RSA-OAEP encryption failed: %s", openssl_last_error ());
            goto out;
        }
        ct_len += out_len;
    }
    os = ASN1_OCTET_STRING_new ();
    if (os == NULL || ASN1_OCTET_STRING_set (os, ct, (int) ct_len) != 1
        || (der_len = i2d_ASN1_OCTET_STRING (os, NULL)) <= 0) {
        capsa_error_code (err, ENOMEM, "cannot encode the key message");
        goto out;
    }
    der = xmalloc ((size_t) der_len);
    {
        unsigned char *p = der;
        i2d_ASN1_OCTET_STRING (os, &p);
    }
    bio = BIO_new (BIO_s_mem ());
    if (bio == NULL || PEM_write_bio (bio, "MESSAGE", "", der, der_len) <= 0) {
        capsa_error_code (err, ENOMEM, "cannot encode the key message as PEM");
        goto out;
    }
    text_len = BIO_get_mem_data (bio, &text);
    *msg = xmalloc ((size_t) text_len + 1);
    memcpy (*msg, text, (size_t) text_len);
    (*msg)[text_len] = '\0';
    if (msg_len)
        *msg_len = (size_t) text_len;
    ret = 0;
out:
    BIO_free (bio);
    ASN1_OCTET_STRING_free (os);
    EVP_PKEY_CTX_free (ctx);
    return ret;
}

int
capsa_rsa_unwrap (const struct capsa_rsa_key *k, const char *msg, size_t msg_len, uint8_t **secret,
                  size_t *secret_len, capsa_error_t *err)
{
    BIO *bio = NULL;
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long data_len = 0;
    ASN1_OCTET_STRING *os = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    int ret = -1;

    if (!k->is_private)
        return capsa_error_code (err, EINVAL, "a private key is needed to open the image");
    if (msg_len > INT_MAX || (bio = BIO_new_mem_buf (msg, (int) msg_len)) == NULL)
        return capsa_error_code (err, EBADMSG, "the image's key message is too large");
    if (PEM_read_bio (bio, &name, &header, &data, &data_len) != 1 || strcmp (name, "MESSAGE") != 0) {
        capsa_error_code (err, EBADMSG, "the image's key message is not a PEM MESSAGE block");
        goto out;
    }
    {
        const unsigned char *p = data;
        os = d2i_ASN1_OCTET_STRING (NULL, &p, data_len);
        if (os == NULL || p != data + data_len) {
            capsa_error_code (err, EBADMSG, "the image's key message is not a DER OCTET STRING");
            goto out;
        }
    }
    if ((ctx = oaep_ctx (k, false)) == NULL) {
        capsa_error_code (err, EINVAL, "cannot set up RSA-OAEP: %s", openssl_last_error ());
        goto out;
    }
    {
        const size_t ksize = (size_t) EVP_PKEY_get_size (k->pkey), ct_len = (size_t) ASN1_STRING_length (os);
        const unsigned char *ct = ASN1_STRING_get0_data (os);

        if (ct_len == 0 || ct_len % ksize != 0) {
            capsa_error_code (err, EKEYREJECTED, "the private key does not open the image: its key message (%zu "
                              "bytes) was made for another RSA key size than this key's %d bits",
                              ct_len, EVP_PKEY_get_bits (k->pkey));
            goto out;
        }
        if (ct_len / ksize > CAPSA_SECRET_MAX / 8) {
            capsa_error_code (err, EBADMSG, "the image's key message is too long (%zu chunks)", ct_len / ksize);
            goto out;
        }
        pt = capsa_secure_alloc (ct_len, NULL);
        for (size_t at = 0; at < ct_len; at += ksize) {
            size_t n = ksize;
            if (EVP_PKEY_decrypt (ctx, pt + pt_len, &n, ct + at, ksize) != 1) {
                ERR_clear_error ();
                capsa_error_code (err, EKEYREJECTED, "the private key does not open the image (RSA-OAEP decryption "
                                  "of its key message failed)");
                goto out;
            }
            pt_len += n;
        }
        if (pt_len == 0) {
            capsa_error_code (err, EBADMSG, "the image's key message holds an empty secret");
            goto out;
        }
    }
    *secret = steal_ptr (&pt);
    *secret_len = pt_len;
    ret = 0;
out:
    capsa_secure_free (pt);
    EVP_PKEY_CTX_free (ctx);
    ASN1_OCTET_STRING_free (os);
    OPENSSL_free (name);
    OPENSSL_free (header);
    OPENSSL_free (data);
    BIO_free (bio);
    return ret;
}

/* Content digests (SHA-256 through OpenSSL's EVP interface) and base64. */
#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

#include "oci/oci_private.h"

bool
oci_digest_valid (const char *d)
{
    if (d == NULL || strncmp (d, "sha256:", 7) != 0 || strlen (d) != OCI_DIGEST_LEN)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

int
oci_digest_check (const char *d, capsa_error_t *err)
{
    if (oci_digest_valid (d))
        return 0;
    if (d != NULL && strchr (d, ':') != NULL && strncmp (d, "sha256:", 7) != 0)
        return capsa_error_make (err, 0, "unsupported digest algorithm in '%.80s' (capsa checks sha256 only)", d);
    return capsa_error_make (err, 0, "invalid digest '%.80s' (expected sha256:<64 hex digits>)", d ? d : "");
}

const char *
oci_digest_hex (const char *d)
{
    return d + 7;
}

struct oci_hash {
    EVP_MD_CTX *ctx;
};

struct oci_hash *
oci_hash_new (void)
{
    struct oci_hash *h = xcalloc (1, sizeof (*h));
    h->ctx = EVP_MD_CTX_new ();
    if (h->ctx == NULL || EVP_DigestInit_ex (h->ctx, EVP_sha256 (), NULL) != 1)
        abort ();
    return h;
}

void
oci_hash_update (struct oci_hash *h, const void *buf, size_t len)
{
    if (len > 0 && EVP_DigestUpdate (h->ctx, buf, len) != 1)
        abort ();
}

void
oci_hash_free (struct oci_hash *h)
{
    if (h == NULL)
        return;
    EVP_MD_CTX_free (h->ctx);
    free (h);
}

void
oci_hash_final (struct oci_hash *h, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char hex[] = "0123456789abcdef";

    if (EVP_DigestFinal_ex (h->ctx, md, &n) != 1 || n != 32)
        abort ();
    memcpy (out, "sha256:", 7);
    for (unsigned i = 0; i < n; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[OCI_DIGEST_LEN] = '\0';
    oci_hash_free (h);
}

void
oci_digest_buf (const void *buf, size_t len, char *out)
{
    struct oci_hash *h = oci_hash_new ();
    oci_hash_update (h, buf, len);
    oci_hash_final (h, out);
}

int
oci_digest_fd (int fd, char *out, uint64_t *size, capsa_error_t *err)
{
    struct oci_hash *h = oci_hash_new ();
    char buf[1 << 16];
    uint64_t total = 0;
    for (;;) {
        ssize_t r = pread (fd, buf, sizeof (buf), (off_t) total);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            oci_hash_free (h);
            return capsa_error_make (err, errno, "read");
        }
        if (r == 0)
            break;
        oci_hash_update (h, buf, (size_t) r);
        total += (uint64_t) r;
    }
    oci_hash_final (h, out);
    if (size)
        *size = total;
    return 0;
}

char *
oci_base64_encode (const void *buf, size_t len)
{
    char *out = xmalloc (4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock ((unsigned char *) out, buf, (int) len);
    return out;
}

int
oci_base64_decode (const char *s, char **out, size_t *outlen)
{
    size_t n = strlen (s);
    if (n % 4 != 0 || n > (1 << 20))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'
                  || (c == '=' && i >= n - 2);
        if (!ok || (c != '=' && i > 0 && s[i - 1] == '='))
            return -1;
    }
    unsigned char *buf = xmalloc (n / 4 * 3 + 1);
    int r = EVP_DecodeBlock (buf, (const unsigned char *) s, (int) n);
    if (r < 0) {
        free (buf);
        return -1;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    if (n >= 1 && s[n - 1] == '=')
        r--;
    if (n >= 2 && s[n - 2] == '=')
        r--;
    buf[r] = '\0';
    *out = (char *) buf;
    if (outlen)
        *outlen = (size_t) r;
    return 0;
}

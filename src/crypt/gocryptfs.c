/* gocryptfs images (SIF fs type 6), read without gocryptfs.
 *
 * What Apptainer >= 1.2 writes for unprivileged and --fakeroot encrypted
 * builds (internal/pkg/image/packer/gocryptfs.go there): `gocryptfs -init
 * -deterministic-names -plaintextnames` makes a cipher directory, the
 * squashfs of the root file system is written through a gocryptfs mount of
 * it as one file, `squashfs-NNN`, and the cipher directory (that file's
 * ciphertext and gocryptfs.conf) becomes an outer squashfs made with
 * -noD -noF: its data blocks are stored uncompressed.  The password is the
 * passphrase, or with an RSA key a random 32-character hex string stored
 * RSA-OAEP-wrapped in the SIF like a LUKS2 image's secret.
 *
 * gocryptfs's format (its Documentation/file-format.md and
 * internal/configfile, cryptocore, contentenc), as far as read here:
 *  - gocryptfs.conf, JSON: "Version" 2; "ScryptObject" {Salt (base64), N,
 *    R, P, KeyLen 32}; "EncryptedKey" (base64: 16-byte nonce, the 32-byte
 *    master key encrypted, 16-byte tag); "FeatureFlags", of which HKDF and
 *    GCMIV128 (AES-256-GCM with 128-bit nonces) are required here.
 *  - The key that opens EncryptedKey is HKDF-SHA256 (no salt, info "AES-GCM
 *    file content encryption") of scrypt(password, Salt, N, R, P, 32); the
 *    associated data is the block number 0 as 8 big-endian bytes.
 *  - A file: an 18-byte header (version 2 as a big-endian uint16, a random
 *    16-byte file ID), then blocks of 16-byte nonce, up to 4096 bytes of
 *    ciphertext, 16-byte tag; block b's associated data is b as 8
 *    big-endian bytes followed by the file ID; its key is HKDF-SHA256 of
 *    the master key with the same info string.  A block of all zeros is a
 *    hole (plaintext zeros).
 *
 * The outer squashfs is read with squashfs-tools-ng's libsquashfs through
 * a file object (src/squashfs/sqfile.c) bound to [off, off+size) of the
 * image: the directory, the inodes and gocryptfs.conf.  The ciphertext
 * file's blocks are then read with pread() when they are stored
 * uncompressed (always, for Apptainer's images); otherwise through
 * libsquashfs's data reader under a lock. */
#include "crypt/crypt_private.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sqfs/block.h>
#include <sqfs/compressor.h>
#include <sqfs/data_reader.h>
#include <sqfs/dir.h>
#include <sqfs/dir_reader.h>
#include <sqfs/error.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/super.h>

#include "lib/utils.h"
#include "squashfs/sqfile.h"

enum {
    GC_KEY_LEN = 32,
    GC_NONCE_LEN = 16,
    GC_TAG_LEN = 16,
    GC_HEADER_LEN = 18,
    GC_BLOCK = 4096,
    GC_CBLOCK = GC_BLOCK + GC_NONCE_LEN + GC_TAG_LEN, /* 4128 */
    GC_CONF_MAX = 1 << 16,
    GC_BATCH = 64, /* blocks decrypted per ciphertext read */
};

static const char hkdf_info_content[] = "AES-GCM file content encryption";

/* Beyond this much scrypt memory (128 * N * R bytes) a conf is refused:
 * nobody makes those, and a hostile image must not make us allocate
 * without bound. */
#define GC_SCRYPT_MAX_MEMORY (UINT64_C (4) << 30)

struct capsa_gocryptfs_volume {
    int fd;
    uint64_t part_off;
    uint64_t cipher_size; /* bytes of the ciphertext file */
    uint64_t plain_size;
    uint8_t file_id[16];
    uint8_t *master_key; /* secure, GC_KEY_LEN */
    uint8_t *gcm_key;    /* secure, GC_KEY_LEN: HKDF of the master key */
    bool have_kdf;
    struct capsa_kdf_cost kdf;
    /* Where the ciphertext file lies.  direct: block i of the outer
     * squashfs starts at part offset pos[i] (UINT64_MAX: a hole). */
    bool direct;
    uint32_t block_size;
    uint64_t nblocks;
    uint64_t *pos;
    /* Otherwise libsquashfs reads it, one thread at a time. */
    pthread_mutex_t lock;
    struct capsa_sqfile file; /* [part_off, part_off + size) of fd, for libsquashfs */
    sqfs_compressor_t *cmp;
    sqfs_data_reader_t *data;
    sqfs_inode_generic_t *inode;
};

/* ---- The outer squashfs, through libsquashfs ----------------------------------- */

/* The partition's bytes, for the file object libsquashfs reads through. */
static int
part_read (void *ctx, void *buf, size_t len, uint64_t off)
{
    const struct capsa_gocryptfs_volume *v = ctx;

    return pread_all (v->fd, buf, len, (off_t) (v->part_off + off)) < 0 ? -errno : 0;
}

static const char *
sqfs_strerror (int e)
{
    return capsa_sqfs_strerror (e, "a location outside the partition");
}

/* ---- gocryptfs.conf --------------------------------------------------------------- */

struct gc_conf {
    uint8_t salt[1024];
    size_t salt_len;
    uint64_t n;
    uint32_t r, p;
    uint8_t enc_key[GC_NONCE_LEN + GC_KEY_LEN + GC_TAG_LEN];
};

/* Standard base64 with padding, as Go's encoding/json writes []byte.
 * Returns the number of bytes, or -1 when s is not that or does not fit. */
static ssize_t
base64_decode (const char *s, uint8_t *out, size_t cap)
{
    size_t len = strlen (s), n = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0;

    if (len % 4 != 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char) s[i], v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else if (c == '=' && i >= len - 2) {
            pad++;
            continue;
        } else
            return -1;
        if (pad)
            return -1; /* data after padding */
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (uint8_t) (acc >> bits);
        }
    }
    return (ssize_t) n;
}

static bool
json_uint (struct json_object *o, const char *key, uint64_t max, uint64_t *out)
{
    struct json_object *v;
    int64_t x;

    if (!json_object_object_get_ex (o, key, &v) || !json_object_is_type (v, json_type_int))
        return false;
    errno = 0;
    x = json_object_get_int64 (v);
    if (errno != 0 || x < 0 || (uint64_t) x > max)
        return false;
    *out = (uint64_t) x;
    return true;
}

static int
parse_conf (const char *text, struct gc_conf *c, capsa_error_t *err)
{
    static const char *const known[] = { "PlaintextNames", "DirIV", "EMENames", "GCMIV128", "LongNames", "LongNameMax",
                                         "Raw64", "HKDF", "AESSIV", "FIDO2", "XChaCha20Poly1305" };
    struct json_object *root = json_tokener_parse (text), *v, *so;
    bool hkdf = false, gcm128 = false;
    uint64_t x;
    ssize_t n;
    int ret = -1;

    if (root == NULL || !json_object_is_type (root, json_type_object)) {
        capsa_error_code (err, EBADMSG, "gocryptfs.conf is not a JSON object");
        goto out;
    }
    if (!json_uint (root, "Version", UINT16_MAX, &x) || x != 2) {
        capsa_error_code (err, ENOTSUP, "gocryptfs.conf: on-disk format version %s is not supported (only 2)",
                          json_object_object_get_ex (root, "Version", &v) ? json_object_to_json_string (v) : "(none)");
        goto out;
    }
    if (!json_object_object_get_ex (root, "FeatureFlags", &v) || !json_object_is_type (v, json_type_array)) {
        capsa_error_code (err, EBADMSG, "gocryptfs.conf has no FeatureFlags list");
        goto out;
    }
    for (size_t i = 0; i < json_object_array_length (v); i++) {
        struct json_object *f = json_object_array_get_idx (v, i);
        const char *name = json_object_is_type (f, json_type_string) ? json_object_get_string (f) : NULL;
        bool ok = false;

        for (size_t k = 0; name && k < ARRAY_SIZE (known); k++)
            ok |= strcmp (name, known[k]) == 0;
        if (!ok) {
            capsa_error_code (err, ENOTSUP, "gocryptfs.conf: unknown feature flag %s", json_object_to_json_string (f));
            goto out;
        }
        if (strcmp (name, "AESSIV") == 0 || strcmp (name, "XChaCha20Poly1305") == 0 || strcmp (name, "FIDO2") == 0) {
            capsa_error_code (err, ENOTSUP, "gocryptfs feature %s is not supported (capsa reads AES-GCM gocryptfs "
                              "images as Apptainer makes them)", name);
            goto out;
        }
        hkdf |= strcmp (name, "HKDF") == 0;
        gcm128 |= strcmp (name, "GCMIV128") == 0;
    }
    if (!hkdf || !gcm128) {
        capsa_error_code (err, ENOTSUP, "gocryptfs.conf lacks the %s feature flag (a gocryptfs 1.x file system?); "
                          "capsa reads gocryptfs 2 images", !hkdf ? "HKDF" : "GCMIV128");
        goto out;
    }
    if (!json_object_object_get_ex (root, "ScryptObject", &so) || !json_object_is_type (so, json_type_object)) {
        capsa_error_code (err, EBADMSG, "gocryptfs.conf has no ScryptObject");
        goto out;
    }
    if (!json_object_object_get_ex (so, "Salt", &v) || !json_object_is_type (v, json_type_string)
        || (n = base64_decode (json_object_get_string (v), c->salt, sizeof (c->salt))) < 32) {
        capsa_error_code (err, EBADMSG, "gocryptfs.conf: the scrypt salt is missing, invalid or shorter than 32 bytes");
        goto out;
    }
    c->salt_len = (size_t) n;
    if (!json_uint (so, "KeyLen", 1024, &x) || x != GC_KEY_LEN) {
        capsa_error_code (err, EBADMSG, "gocryptfs.conf: the scrypt KeyLen must be 32");
        goto out;
    }
    if (!json_uint (so, "N", UINT64_C (1) << 40, &c->n) || c->n < 1024 || (c->n & (c->n - 1)) != 0) {
        capsa_error_code (err, EBADMSG, "gocryptfs.conf: the scrypt N is missing, not a power of two or below 1024");
        goto out;
    }
    if (!json_uint (so, "R", 1024, &x) || x < 8) {
        capsa_error_code (err, EBADMSG, "gocryptfs.conf: the scrypt R is missing or below 8");
        goto out;
    }
    c->r = (uint32_t) x;
    if (!json_uint (so, "P", 64, &x) || x < 1) {
        capsa_error_code (err, EBADMSG, "gocryptfs.conf: the scrypt P is missing or not in 1..64");
        goto out;
    }
    c->p = (uint32_t) x;
    if (c->n > GC_SCRYPT_MAX_MEMORY / 128 / c->r) {
        capsa_error_code (err, ENOTSUP, "gocryptfs.conf asks scrypt for more than %" PRIu64 " GiB of memory (N=%" PRIu64
                          ", R=%" PRIu32 ")", GC_SCRYPT_MAX_MEMORY >> 30, c->n, c->r);
        goto out;
    }
    if (!json_object_object_get_ex (root, "EncryptedKey", &v) || !json_object_is_type (v, json_type_string)
        || base64_decode (json_object_get_string (v), c->enc_key, sizeof (c->enc_key)) != sizeof (c->enc_key)) {
        capsa_error_code (err, EBADMSG, "gocryptfs.conf: EncryptedKey is missing or not %zu bytes of base64",
                          sizeof (c->enc_key));
        goto out;
    }
    ret = 0;
out:
    json_object_put (root);
    return ret;
}

/* ---- Key derivation and AES-GCM ------------------------------------------------------ */

static int
kdf_derive (const char *name, OSSL_PARAM *params, uint8_t *out, size_t len, capsa_error_t *err)
{
    EVP_KDF *kdf = EVP_KDF_fetch (NULL, name, NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new (kdf) : NULL;
    int r = ctx ? EVP_KDF_derive (ctx, out, len, params) : 0;

    EVP_KDF_CTX_free (ctx);
    EVP_KDF_free (kdf);
    if (r != 1)
        return capsa_error_code (err, EIO, "%s key derivation failed: %s", name, openssl_last_error ());
    return 0;
}

/* HKDF-SHA256(ikm, no salt, info) -> out[GC_KEY_LEN] */
static int
hkdf_content_key (const uint8_t *ikm, uint8_t *out, capsa_error_t *err)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0),
        OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_KEY, (void *) ikm, GC_KEY_LEN),
        OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_INFO, (void *) hkdf_info_content,
                                           sizeof (hkdf_info_content) - 1),
        OSSL_PARAM_construct_end (),
    };
    return kdf_derive ("HKDF", params, out, GC_KEY_LEN, err);
}

static int
scrypt_key (const void *pw, size_t pw_len, const struct gc_conf *c, uint8_t *out, capsa_error_t *err)
{
    uint64_t n = c->n, maxmem = GC_SCRYPT_MAX_MEMORY + (UINT64_C (64) << 20);
    uint32_t r = c->r, p = c->p;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_PASSWORD, (void *) pw, pw_len),
        OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_SALT, (void *) c->salt, c->salt_len),
        OSSL_PARAM_construct_uint64 (OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32 (OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32 (OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64 (OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end (),
    };
    return kdf_derive ("SCRYPT", params, out, GC_KEY_LEN, err);
}

static EVP_CIPHER_CTX *
gcm_ctx_new (const uint8_t *key)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();

    if (ctx == NULL)
        return NULL;
    if (EVP_DecryptInit_ex2 (ctx, EVP_aes_256_gcm (), NULL, NULL, NULL) != 1
        || EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_IVLEN, GC_NONCE_LEN, NULL) != 1
        || EVP_DecryptInit_ex2 (ctx, NULL, key, NULL, NULL) != 1) {
        EVP_CIPHER_CTX_free (ctx);
        return NULL;
    }
    return ctx;
}

/* Open one sealed block: nonce || ciphertext || tag (len bytes in all),
 * with associated data ad; plaintext (len - 32 bytes) into out.  false when
 * authentication fails. */
static bool
gcm_open (EVP_CIPHER_CTX *ctx, const uint8_t *in, size_t len, const uint8_t *ad, size_t ad_len, uint8_t *out)
{
    int l = 0, fl = 0;
    size_t n = len - GC_NONCE_LEN - GC_TAG_LEN;

    if (EVP_DecryptInit_ex2 (ctx, NULL, NULL, in, NULL) != 1 || EVP_DecryptUpdate (ctx, NULL, &l, ad, (int) ad_len) != 1
        || EVP_DecryptUpdate (ctx, out, &l, in + GC_NONCE_LEN, (int) n) != 1
        || EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_TAG, GC_TAG_LEN, (void *) (in + len - GC_TAG_LEN)) != 1
        || EVP_DecryptFinal_ex (ctx, out + l, &fl) != 1) {
        ERR_clear_error ();
        return false;
    }
    return true;
}

/* ---- Opening ------------------------------------------------------------------------ */

static bool
name_is (const sqfs_dir_entry_t *e, const char *name)
{
    size_t n = strlen (name);
    return (size_t) e->size + 1 == n && memcmp (e->name, name, n) == 0;
}

static bool
is_file (const sqfs_inode_generic_t *i)
{
    return i->base.type == SQFS_INODE_FILE || i->base.type == SQFS_INODE_EXT_FILE;
}

/* The block layout of the ciphertext file: direct when every block is
 * stored uncompressed (or is a hole) and there is no tail fragment. */
static int
plan_blocks (struct capsa_gocryptfs_volume *v, const sqfs_super_t *super, uint64_t part_size, capsa_error_t *err)
{
    const sqfs_inode_generic_t *in = v->inode;
    sqfs_u64 start = 0, size = 0;
    sqfs_u32 frag_idx = 0, frag_off = 0;
    uint64_t nblocks, pos;

    if (sqfs_inode_get_file_block_start (in, &start) != 0 || sqfs_inode_get_file_size (in, &size) != 0
        || sqfs_inode_get_frag_location (in, &frag_idx, &frag_off) != 0)
        return capsa_error_code (err, EBADMSG, "the gocryptfs partition's data file has an invalid inode");
    v->cipher_size = size;
    v->block_size = super->block_size;
    nblocks = in->payload_bytes_used / sizeof (sqfs_u32);
    v->direct = frag_idx == 0xFFFFFFFFu && nblocks == (size + super->block_size - 1) / super->block_size;
    if (!v->direct)
        return 0;
    v->nblocks = nblocks;
    v->pos = xcalloc (nblocks ? nblocks : 1, sizeof (*v->pos));
    pos = start;
    for (uint64_t i = 0; i < nblocks; i++) {
        sqfs_u32 b = in->extra[i];
        uint64_t disk = SQFS_ON_DISK_BLOCK_SIZE (b);
        uint64_t want = i + 1 < nblocks || size % super->block_size == 0 ? super->block_size : size % super->block_size;

        if (SQFS_IS_SPARSE_BLOCK (b)) {
            v->pos[i] = UINT64_MAX;
            continue;
        }
        if (SQFS_IS_BLOCK_COMPRESSED (b) || disk != want) {
            v->direct = false;
            break;
        }
        if (pos > part_size || disk > part_size - pos)
            return capsa_error_code (err, EBADMSG, "the gocryptfs partition's data file lies outside the partition");
        v->pos[i] = pos;
        pos += disk;
    }
    if (!v->direct) {
        free (v->pos);
        v->pos = NULL;
        v->nblocks = 0;
    }
    return 0;
}

/* len bytes of the ciphertext file at offset off (inside it) into buf. */
static int
read_cipher (struct capsa_gocryptfs_volume *v, uint8_t *buf, size_t len, uint64_t off, capsa_error_t *err)
{
    if (off > v->cipher_size || len > v->cipher_size - off)
        return capsa_error_code (err, EIO, "read past the end of the gocryptfs data file");
    if (!v->direct) {
        sqfs_s32 r;
        pthread_mutex_lock (&v->lock);
        r = len > INT32_MAX ? SQFS_ERROR_OVERFLOW : sqfs_data_reader_read (v->data, v->inode, off, buf, (sqfs_u32) len);
        pthread_mutex_unlock (&v->lock);
        if (r < 0 || (size_t) r != len)
            return capsa_error_code (err, EIO, "cannot read the gocryptfs data file: %s",
                                     r < 0 ? sqfs_strerror (r) : "short read");
        return 0;
    }
    while (len > 0) {
        uint64_t b = off / v->block_size, in = off % v->block_size;
        size_t n = v->block_size - in < len ? (size_t) (v->block_size - in) : len;

        if (v->pos[b] == UINT64_MAX)
            memset (buf, 0, n);
        else if (pread_all (v->fd, buf, n, (off_t) (v->part_off + v->pos[b] + in)) < 0)
            return capsa_error_make (err, errno, "cannot read the encrypted image");
        buf += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Decrypt block b (len ciphertext bytes at in) into out; the number of
 * plaintext bytes, or -1. */
static ssize_t
open_block (struct capsa_gocryptfs_volume *v, EVP_CIPHER_CTX *ctx, uint64_t b, const uint8_t *in, size_t len,
            uint8_t *out, capsa_error_t *err)
{
    static const uint8_t zero[GC_CBLOCK];
    uint8_t ad[8 + 16];

    if (len == GC_CBLOCK && memcmp (in, zero, GC_CBLOCK) == 0) {
        memset (out, 0, GC_BLOCK); /* a hole, as gocryptfs reads it */
        return GC_BLOCK;
    }
    for (int i = 0; i < 8; i++)
        ad[i] = (uint8_t) (b >> (56 - 8 * i));
    memcpy (ad + 8, v->file_id, 16);
    if (len <= GC_NONCE_LEN + GC_TAG_LEN || memcmp (in, zero, GC_NONCE_LEN) == 0
        || !gcm_open (ctx, in, len, ad, sizeof (ad), out))
        return capsa_error_code (err, EBADMSG, "block %" PRIu64 " of the gocryptfs image fails authentication "
                                 "(corrupted, or not this key's)", b);
    return (ssize_t) (len - GC_NONCE_LEN - GC_TAG_LEN);
}

static int
unlock_master_key (struct capsa_gocryptfs_volume *v, const struct gc_conf *c, const void *pw, size_t pw_len,
                   capsa_error_t *err)
{
    uint8_t *kek = capsa_secure_alloc (2 * GC_KEY_LEN, NULL);
    EVP_CIPHER_CTX *ctx = NULL;
    static const uint8_t ad[8] = { 0 };
    struct timespec t0, t1;
    int ret = -1;

    clock_gettime (CLOCK_MONOTONIC, &t0);
    if (scrypt_key (pw, pw_len, c, kek, err) < 0)
        goto out;
    clock_gettime (CLOCK_MONOTONIC, &t1);
    snprintf (v->kdf.type, sizeof (v->kdf.type), "scrypt");
    v->kdf.memory_kb = 128 * c->n * c->r / 1024;
    v->kdf.iterations = (uint32_t) c->n;
    v->kdf.parallel = c->p;
    v->kdf.seconds = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    v->have_kdf = true;
    if (hkdf_content_key (kek, kek + GC_KEY_LEN, err) < 0)
        goto out;
    if ((ctx = gcm_ctx_new (kek + GC_KEY_LEN)) == NULL) {
        capsa_error_code (err, EIO, "cannot set up AES-GCM: %s", openssl_last_error ());
        goto out;
    }
    if (!gcm_open (ctx, c->enc_key, sizeof (c->enc_key), ad, sizeof (ad), v->master_key)) {
        capsa_error_code (err, EKEYREJECTED, "the key does not open the encrypted image (gocryptfs: the password "
                                             "does not decrypt the master key)");
        goto out;
    }
    ret = 0;
out:
    EVP_CIPHER_CTX_free (ctx);
    capsa_secure_free (kek);
    return ret;
}

/* The outer squashfs: gocryptfs.conf (text, NUL-terminated, into *conf)
 * and the ciphertext file's inode, left in v. */
static int
open_outer (struct capsa_gocryptfs_volume *v, uint64_t size, char **conf, sqfs_super_t *super, capsa_error_t *err)
{
    sqfs_compressor_config_t cfg;
    sqfs_dir_reader_t *dr = NULL;
    sqfs_inode_generic_t *root = NULL, *conf_inode = NULL;
    sqfs_dir_entry_t *ent = NULL;
    sqfs_u64 conf_size = 0;
    int r, ret = -1, files = 0;

    if ((r = sqfs_super_read (super, &v->file.base)) != 0)
        return capsa_error_code (err, EBADMSG, "the gocryptfs partition is not a valid squashfs (%s)",
                                 sqfs_strerror (r));
    if (super->bytes_used > size)
        return capsa_error_code (err, EBADMSG, "the gocryptfs partition's squashfs is larger than the partition");
    /* libsquashfs sizes its fragment table from this count alone: every
     * fragment block takes at least a byte of the image. */
    if (super->fragment_entry_count > super->bytes_used)
        return capsa_error_code (err, EBADMSG, "the gocryptfs partition's squashfs claims %" PRIu32 " fragments",
                                 super->fragment_entry_count);
    if (sqfs_compressor_config_init (&cfg, (SQFS_COMPRESSOR) super->compression_id, super->block_size,
                                     SQFS_COMP_FLAG_UNCOMPRESS)
            != 0
        || sqfs_compressor_create (&cfg, &v->cmp) != 0)
        return capsa_error_code (err, ENOTSUP, "the gocryptfs partition's squashfs uses a compressor (%u) this "
                                 "libsquashfs cannot read", (unsigned) super->compression_id);
    if ((super->flags & SQFS_FLAG_COMPRESSOR_OPTIONS) && (r = v->cmp->read_options (v->cmp, &v->file.base)) < 0)
        return capsa_error_code (err, EBADMSG, "the gocryptfs partition's squashfs has invalid compressor options (%s)",
                                 sqfs_strerror (r));
    if ((dr = sqfs_dir_reader_create (super, v->cmp, &v->file.base, 0)) == NULL)
        return capsa_error_code (err, ENOMEM, "cannot read the gocryptfs partition's directory");
    if ((r = sqfs_dir_reader_get_root_inode (dr, &root)) != 0 || (r = sqfs_dir_reader_open_dir (dr, root, 0)) != 0) {
        capsa_error_code (err, EBADMSG, "cannot read the gocryptfs partition's root directory (%s)", sqfs_strerror (r));
        goto out;
    }
    /* gocryptfs.conf and one data file (Apptainer names it squashfs-NNN;
     * with encrypted names a gocryptfs.diriv may sit beside them). */
    while ((r = sqfs_dir_reader_read (dr, &ent)) == 0) {
        sqfs_inode_generic_t *in = NULL;

        if (name_is (ent, "gocryptfs.diriv")) {
            sqfs_free (ent);
            ent = NULL;
            continue;
        }
        if ((r = sqfs_dir_reader_get_inode (dr, &in)) != 0) {
            capsa_error_code (err, EBADMSG, "cannot read an inode of the gocryptfs partition (%s)", sqfs_strerror (r));
            goto out;
        }
        if (!is_file (in)) {
            sqfs_free (in);
        } else if (name_is (ent, "gocryptfs.conf")) {
            sqfs_free (conf_inode);
            conf_inode = in;
        } else {
            if (++files > 1) {
                sqfs_free (in);
                capsa_error_code (err, EBADMSG, "the gocryptfs partition holds more than one data file");
                goto out;
            }
            v->inode = in;
        }
        sqfs_free (ent);
        ent = NULL;
    }
    if (r < 0) {
        capsa_error_code (err, EBADMSG, "cannot list the gocryptfs partition's root directory (%s)", sqfs_strerror (r));
        goto out;
    }
    if (conf_inode == NULL || v->inode == NULL) {
        capsa_error_code (err, EBADMSG, "the gocryptfs partition holds no %s", conf_inode ? "encrypted data file"
                                                                                          : "gocryptfs.conf");
        goto out;
    }
    if ((v->data = sqfs_data_reader_create (&v->file.base, super->block_size, v->cmp, 0)) == NULL) {
        capsa_error_code (err, ENOMEM, "cannot read the gocryptfs partition's data");
        goto out;
    }
    if ((r = sqfs_data_reader_load_fragment_table (v->data, super)) != 0) {
        capsa_error_code (err, EBADMSG, "the gocryptfs partition's fragment table is invalid (%s)", sqfs_strerror (r));
        goto out;
    }
    if (sqfs_inode_get_file_size (conf_inode, &conf_size) != 0 || conf_size == 0 || conf_size > GC_CONF_MAX) {
        capsa_error_code (err, EBADMSG, "the gocryptfs partition's gocryptfs.conf is empty or larger than %d bytes",
                          GC_CONF_MAX);
        goto out;
    }
    *conf = xmalloc ((size_t) conf_size + 1);
    r = sqfs_data_reader_read (v->data, conf_inode, 0, *conf, (sqfs_u32) conf_size);
    if (r < 0 || (sqfs_u64) r != conf_size) {
        capsa_error_code (err, EBADMSG, "cannot read gocryptfs.conf (%s)", r < 0 ? sqfs_strerror (r) : "short read");
        goto out;
    }
    (*conf)[conf_size] = '\0';
    ret = 0;
out:
    sqfs_free (ent);
    sqfs_free (root);
    sqfs_free (conf_inode);
    if (dr)
        sqfs_destroy (dr);
    return ret;
}

void
capsa_gocryptfs_close (struct capsa_gocryptfs_volume *v)
{
    if (v == NULL)
        return;
    capsa_secure_free (v->master_key);
    capsa_secure_free (v->gcm_key);
    free (v->pos);
    sqfs_free (v->inode);
    if (v->data)
        sqfs_destroy (v->data);
    if (v->cmp)
        sqfs_destroy (v->cmp);
    pthread_mutex_destroy (&v->lock);
    explicit_bzero (v, sizeof (*v));
    free (v);
}

int
capsa_gocryptfs_open (int fd, uint64_t off, uint64_t size, const void *secret, size_t secret_len, unsigned flags,
                      struct capsa_gocryptfs_volume **out, capsa_error_t *err)
{
    struct capsa_gocryptfs_volume *v;
    cleanup_free char *conf_text = NULL;
    struct gc_conf *conf = NULL;
    sqfs_super_t super;
    uint8_t hdr[GC_HEADER_LEN];
    static const uint8_t zero_id[16];
    uint64_t nfull, rem;
    struct stat st;

    if (secret == NULL || secret_len == 0)
        return capsa_error_code (err, ENOKEY, "no key given for the encrypted image");
    if (fstat (fd, &st) < 0)
        return capsa_error_make (err, errno, "fstat");
    if (off > INT64_MAX || size > INT64_MAX - off || (S_ISREG (st.st_mode) && off + size > (uint64_t) st.st_size))
        return capsa_error_code (err, EINVAL, "the encrypted partition (offset %" PRIu64 ", size %" PRIu64
                                 ") lies outside the image file", off, size);

    v = xcalloc (1, sizeof (*v));
    pthread_mutex_init (&v->lock, NULL);
    v->fd = fd;
    v->part_off = off;
    capsa_sqfile_init (&v->file, part_read, v, size);
    v->master_key = capsa_secure_alloc (GC_KEY_LEN, NULL);
    v->gcm_key = capsa_secure_alloc (GC_KEY_LEN, NULL);
    if (open_outer (v, size, &conf_text, &super, err) < 0 || plan_blocks (v, &super, size, err) < 0)
        goto fail;
    conf = capsa_secure_alloc (sizeof (*conf), NULL); /* the salt is not secret, but the layout is simple */
    if (parse_conf (conf_text, conf, err) < 0)
        goto fail;

    /* The data file's header and size. */
    if (v->cipher_size == 0) {
        capsa_error_code (err, EBADMSG, "the gocryptfs image's data file is empty");
        goto fail;
    }
    rem = v->cipher_size < GC_HEADER_LEN ? 0 : (v->cipher_size - GC_HEADER_LEN) % GC_CBLOCK;
    nfull = v->cipher_size < GC_HEADER_LEN ? 0 : (v->cipher_size - GC_HEADER_LEN) / GC_CBLOCK;
    if (v->cipher_size < GC_HEADER_LEN || (rem != 0 && rem <= GC_NONCE_LEN + GC_TAG_LEN)) {
        capsa_error_code (err, EBADMSG, "the gocryptfs image's data file has an impossible size (%" PRIu64 " bytes)",
                          v->cipher_size);
        goto fail;
    }
    v->plain_size = nfull * GC_BLOCK + (rem ? rem - GC_NONCE_LEN - GC_TAG_LEN : 0);
    if (read_cipher (v, hdr, sizeof (hdr), 0, err) < 0)
        goto fail;
    if (hdr[0] != 0 || hdr[1] != 2 || memcmp (hdr + 2, zero_id, 16) == 0) {
        capsa_error_code (err, EBADMSG, "the gocryptfs image's data file has an invalid header (version %u)",
                          (unsigned) (hdr[0] << 8 | hdr[1]));
        goto fail;
    }
    memcpy (v->file_id, hdr + 2, 16);

    if (flags & CAPSA_CRYPT_DATA_KEY) {
        if (secret_len != GC_KEY_LEN) {
            capsa_error_code (err, EKEYREJECTED, "the master key given has %zu bytes, gocryptfs uses %d", secret_len,
                              GC_KEY_LEN);
            goto fail;
        }
        memcpy (v->master_key, secret, GC_KEY_LEN);
    } else if (unlock_master_key (v, conf, secret, secret_len, err) < 0)
        goto fail;
    if (hkdf_content_key (v->master_key, v->gcm_key, err) < 0)
        goto fail;
    if (v->plain_size > 0) {
        /* The first block authenticates: the key is right and the data
         * file is what gocryptfs wrote. */
        uint8_t blk[GC_BLOCK];
        capsa_error_t e = NULL;
        if (capsa_gocryptfs_read (v, blk, 1, 0, &e) != 1) {
            if ((flags & CAPSA_CRYPT_DATA_KEY) && e != NULL && e->code == EBADMSG)
                capsa_error_code (err, EKEYREJECTED, "the key does not open the encrypted image (gocryptfs master key "
                                                     "rejected)");
            else if (err != NULL) {
                capsa_error_free (err);
                *err = steal_ptr (&e);
            }
            capsa_error_free (&e);
            explicit_bzero (blk, sizeof (blk));
            goto fail;
        }
        explicit_bzero (blk, sizeof (blk));
    }
    capsa_secure_free (conf);
    *out = v;
    return 0;
fail:
    capsa_secure_free (conf);
    capsa_gocryptfs_close (v);
    return -1;
}

uint64_t
capsa_gocryptfs_size (const struct capsa_gocryptfs_volume *v)
{
    return v->plain_size;
}

const struct capsa_kdf_cost *
capsa_gocryptfs_kdf_cost (const struct capsa_gocryptfs_volume *v)
{
    return v->have_kdf ? &v->kdf : NULL;
}

const void *
gocryptfs_master_key (const struct capsa_gocryptfs_volume *v, size_t *len)
{
    *len = GC_KEY_LEN;
    return v->master_key;
}

ssize_t
capsa_gocryptfs_read (struct capsa_gocryptfs_volume *v, void *buf, size_t len, uint64_t off, capsa_error_t *err)
{
    uint8_t *dst = buf, *cbuf = NULL, blk[GC_BLOCK];
    EVP_CIPHER_CTX *ctx = NULL;
    size_t done = 0;
    ssize_t ret = -1;

    if (off >= v->plain_size || len == 0)
        return 0;
    if (len > v->plain_size - off)
        len = (size_t) (v->plain_size - off);
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    if ((ctx = gcm_ctx_new (v->gcm_key)) == NULL)
        return capsa_error_code (err, EIO, "cannot set up AES-GCM: %s", openssl_last_error ());
    {
        /* Room for the ciphertext of the read's blocks, at most a batch. */
        uint64_t nb = (off + len - 1) / GC_BLOCK - off / GC_BLOCK + 1;
        cbuf = xmalloc ((size_t) (nb < GC_BATCH ? nb : GC_BATCH) * GC_CBLOCK);
    }
    while (done < len) {
        uint64_t pos = off + done, b0 = pos / GC_BLOCK, last = (off + len - 1) / GC_BLOCK, b1;
        uint64_t cstart = GC_HEADER_LEN + b0 * GC_CBLOCK, cend;

        b1 = last - b0 >= GC_BATCH ? b0 + GC_BATCH - 1 : last;
        cend = GC_HEADER_LEN + (b1 + 1) * GC_CBLOCK;
        if (cend > v->cipher_size)
            cend = v->cipher_size;
        if (read_cipher (v, cbuf, (size_t) (cend - cstart), cstart, err) < 0)
            goto out;
        for (uint64_t b = b0; b <= b1; b++) {
            size_t cl = (size_t) ((cend - cstart) - (b - b0) * GC_CBLOCK), in = (size_t) (pos % GC_BLOCK), n;
            uint64_t bstart = b * GC_BLOCK;
            bool whole = in == 0 && len - done >= GC_BLOCK;
            ssize_t pl;

            if (cl > GC_CBLOCK)
                cl = GC_CBLOCK;
            pl = open_block (v, ctx, b, cbuf + (b - b0) * GC_CBLOCK, cl, whole ? dst + done : blk, err);
            if (pl < 0)
                goto out;
            if ((size_t) pl <= in) {
                capsa_error_code (err, EBADMSG, "block %" PRIu64 " of the gocryptfs image is shorter than its file",
                                  b);
                goto out;
            }
            n = (size_t) pl - in;
            if (n > len - done)
                n = len - done;
            if (!whole)
                memcpy (dst + done, blk + in, n);
            done += n;
            pos = bstart + GC_BLOCK;
        }
    }
    ret = (ssize_t) done;
out:
    explicit_bzero (blk, sizeof (blk));
    free (cbuf); /* ciphertext only */
    EVP_CIPHER_CTX_free (ctx);
    return ret;
}

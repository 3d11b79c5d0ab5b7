/* Unit tests for src/crypt: AES-XTS against the IEEE 1619 vector and
 * dm-crypt's sector numbering, LUKS2 create/open round trips on memfds
 * (unaligned reads, wrong keys, corrupted headers, KDF parameters), RSA-OAEP
 * key wrapping with PKCS#1, PKCS#8 and SPKI keys made here with OpenSSL,
 * key material from the environment, and encrypted SIF partitions. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libcryptsetup.h>
#include <openssl/asn1.h>
#include <openssl/encoder.h>
#include <openssl/kdf.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypt/crypt.h"
#include "lib/utils.h"
#include "tap.h"

/* ---- helpers ------------------------------------------------------------------ */

static void
unhex (const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        sscanf (h + 2 * i, "%2x", &x);
        out[i] = (uint8_t) x;
    }
}

static int
memfd_with (const void *data, size_t len)
{
    int fd = memfd_create ("test", MFD_CLOEXEC);
    if (fd < 0 || (len && write_all (fd, data, len) < 0))
        abort ();
    lseek (fd, 0, SEEK_SET);
    return fd;
}

static void
random_fill (void *p, size_t n)
{
    if (capsa_random_bytes (p, n, NULL) < 0)
        abort ();
}

static uint8_t *
fd_contents (int fd, size_t *len)
{
    struct stat st;
    uint8_t *b;
    if (fstat (fd, &st) < 0)
        abort ();
    b = xmalloc ((size_t) st.st_size + 1);
    if (pread_all (fd, b, (size_t) st.st_size, 0) < 0)
        abort ();
    *len = (size_t) st.st_size;
    return b;
}

/* Encrypt plaintext into a new memfd container. */
static int
make_container (const void *pt, size_t len, enum capsa_kdf kdf, const char *secret, uint64_t *written,
                capsa_error_t *err)
{
    int in = memfd_with (pt, len);
    int out = memfd_create ("luks", MFD_CLOEXEC);
    int r = capsa_luks_encrypt_stream (in, CAPSA_LUKS_TO_EOF, out, kdf, secret, strlen (secret),
                                       CAPSA_LUKS_EXPECT_SQUASHFS, written, err);
    close (in);
    if (r < 0) {
        close (out);
        return -1;
    }
    return out;
}

/* ---- AES-XTS ------------------------------------------------------------------ */

/* IEEE Std 1619-2007, Annex B, XTS-AES-256 vector 10: data unit sequence
 * number 0xff, 512-byte data unit of bytes 00..ff twice. */
static const char v10_key[] = "2718281828459045235360287471352662497757247093699959574966967627"
                              "3141592653589793238462643383279502884197169399375105820974944592";
static const char v10_ct[] =
    "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b5d31e276f8fe4a8d66b317f9ac683f44"
    "680a86ac35adfc3345befecb4bb188fd5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
    "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca2a3e7a7d7df7b10355165c8b9a6d0a7d"
    "e8b062c4500dc4cd120c0f7418dae3d0b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
    "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec583e9645e07b8d9670655ba5bbcfecc6"
    "dc3966380ad8fecb17b6ba02469a020a84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
    "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae9be69a2ffeceb1bec9de244fbe15992b"
    "11b77c040f12bd8f6a975a44a0f90c29a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
    "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f645e8b7e9bfdef33943054ff84011493"
    "c27b3429eaedb4ed5376441a77ed43851ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
    "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151";

static void
test_xts (void)
{
    uint8_t key[64], pt[512], ct[512], out[512], back[512];
    uint8_t big[3 * 512], bigct[3 * 512];
    uint8_t s4k[2 * 4096], s4kct[2 * 4096], one[4096];

    unhex (v10_key, key, 64);
    unhex (v10_ct, ct, 512);
    for (int i = 0; i < 512; i++)
        pt[i] = (uint8_t) i;
    CHECK (capsa_xts_crypt (key, 64, true, 0xff, 1, 512, pt, out, 512, NULL) == 0 && memcmp (out, ct, 512) == 0,
           "xts: IEEE 1619 vector 10 (AES-256, sequence number 0xff) encrypts");
    CHECK (capsa_xts_crypt (key, 64, false, 0xff, 1, 512, ct, back, 512, NULL) == 0 && memcmp (back, pt, 512) == 0,
           "xts: IEEE 1619 vector 10 decrypts");
    memcpy (back, ct, 512);
    CHECK (capsa_xts_crypt (key, 64, false, 0xff, 1, 512, back, back, 512, NULL) == 0 && memcmp (back, pt, 512) == 0,
           "xts: in-place decryption");

    /* Tweak numbering: three 512-byte sectors from tweak 0xfd in one call;
     * the third has tweak 0xff, so it must be the vector's ciphertext. */
    for (int s = 0; s < 3; s++)
        memcpy (big + s * 512, pt, 512);
    CHECK (capsa_xts_crypt (key, 64, true, 0xfd, 1, 512, big, bigct, sizeof (big), NULL) == 0
               && memcmp (bigct + 2 * 512, ct, 512) == 0 && memcmp (bigct, ct, 512) != 0
               && memcmp (bigct + 512, bigct, 512) != 0,
           "xts: consecutive sectors get consecutive tweaks (0xfd, 0xfe, 0xff)");
    /* 64-bit little-endian: sector 0x0100000000 differs from sector 1. */
    capsa_xts_crypt (key, 64, true, UINT64_C (0x100000000), 1, 512, pt, out, 512, NULL);
    capsa_xts_crypt (key, 64, true, 1, 1, 512, pt, back, 512, NULL);
    CHECK (memcmp (out, back, 512) != 0, "xts: the tweak uses all 64 bits of the sector number");

    /* 4096-byte sectors as dm-crypt numbers them in LUKS2: tweaks in
     * 512-byte units, sector n has tweak 8n.  Sectors 7 and 8 in one call
     * (tweaks 56 and 64), then sector 8 alone. */
    random_fill (s4k, sizeof (s4k));
    capsa_xts_crypt (key, 64, true, 56, 8, 4096, s4k, s4kct, sizeof (s4k), NULL);
    capsa_xts_crypt (key, 64, true, 64, 8, 4096, s4k + 4096, one, 4096, NULL);
    CHECK (memcmp (one, s4kct + 4096, 4096) == 0, "xts: 4096-byte sectors: the next sector's tweak is 8 more");
    {
        /* Cross-check with OpenSSL directly: IV = 64, little endian. */
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new ();
        uint8_t iv[16] = { 64 };
        int l = 0;
        EVP_EncryptInit_ex (c, EVP_aes_256_xts (), NULL, key, iv);
        EVP_EncryptUpdate (c, one, &l, s4k + 4096, 4096);
        EVP_CIPHER_CTX_free (c);
        CHECK (l == 4096 && memcmp (one, s4kct + 4096, 4096) == 0,
               "xts: 4096-byte sector 8 matches plain OpenSSL with IV 64 (512-byte units)");
        capsa_xts_crypt (key, 64, true, 8, 1, 4096, s4k + 4096, one, 4096, NULL);
        CHECK (memcmp (one, s4kct + 4096, 4096) != 0, "xts: capsa 0.1.0's numbering (IV 8) gives other bytes");
    }
    CHECK (capsa_xts_crypt (key, 64, true, 0, 8, 4096, s4k, s4kct, 4000, NULL) < 0, "xts: partial sector refused");
    CHECK (capsa_xts_crypt (key, 48, true, 0, 1, 512, pt, out, 512, NULL) < 0, "xts: bad key size refused");
}

/* ---- LUKS2 ---------------------------------------------------------------------- */

#define PT_LEN (3 * 4096 + 1234)

static void
test_luks_roundtrip (void)
{
    static uint8_t pt[PT_LEN], got[4 * 4096 + 100];
    capsa_error_t err = NULL;
    struct capsa_luks_volume *v = NULL;
    uint64_t written = 0;
    int fd, ok;

    random_fill (pt, sizeof (pt));
    memcpy (pt, "hsqs", 4);
    fd = make_container (pt, sizeof (pt), CAPSA_KDF_PBKDF2, "a secret", &written, &err);
    CHECK (fd >= 0, "luks: encrypt a stream into a memfd");
    if (fd < 0) {
        printf ("# %s\n", err->msg);
        capsa_error_free (&err);
        return;
    }
    CHECK (written == CAPSA_LUKS_HEADER_SIZE + 4 * 4096, "luks: header area + data padded to whole 4096-byte sectors");
    {
        size_t n;
        uint8_t *raw = fd_contents (fd, &n);
        CHECK (n == written && memcmp (raw, "LUKS\xba\xbe\x00\x02", 8) == 0, "luks: output starts with a LUKS2 header");
        CHECK (memmem (raw, n, pt + 100, 64) == NULL && memmem (raw, n, "hsqs", 4) == NULL,
               "luks: no plaintext in the container");
        free (raw);
    }

    CHECK (capsa_luks_open (fd, 0, written, "a secret", 8, 0, &v, &err) == 0, "luks: open with the secret");
    if (v == NULL) {
        printf ("# %s\n", err->msg);
        capsa_error_free (&err);
        close (fd);
        return;
    }
    CHECK (capsa_luks_size (v) == 4 * 4096 && capsa_luks_sector_size (v) == 4096
               && capsa_luks_data_offset (v) == CAPSA_LUKS_HEADER_SIZE,
           "luks: size, sector size and data offset as written");
    {
        const struct capsa_kdf_cost *k = capsa_luks_kdf_cost (v);
        CHECK (k && strcmp (k->type, "pbkdf2") == 0 && k->iterations == CAPSA_PBKDF2_ITERATIONS && k->memory_kb == 0
                   && k->seconds >= 0 && k->seconds < 60,
               "luks: the KDF cost is reported (pbkdf2, 1000 iterations)");
    }
    memset (got, 0xaa, sizeof (got));
    CHECK (capsa_luks_read (v, got, sizeof (got), 0, &err) == 4 * 4096 && memcmp (got, pt, sizeof (pt)) == 0,
           "luks: whole read gives the plaintext back (short at the end)");
    ok = 1;
    for (size_t i = sizeof (pt); i < 4 * 4096; i++)
        ok &= got[i] == 0;
    CHECK (ok, "luks: the last sector is zero-padded");

    /* Unaligned reads at every interesting place, and random ones. */
    {
        static const struct {
            uint64_t off;
            size_t len;
        } cases[] = { { 1, 5000 }, { 4095, 2 }, { 4096, 4096 }, { 4000, 8300 }, { 12, 1 }, { 8191, 4097 } };
        ok = 1;
        for (size_t i = 0; i < ARRAY_SIZE (cases); i++) {
            memset (got, 0, sizeof (got));
            ok &= capsa_luks_read (v, got, cases[i].len, cases[i].off, NULL) == (ssize_t) cases[i].len
                  && memcmp (got, pt + cases[i].off, cases[i].len) == 0;
        }
        CHECK (ok, "luks: unaligned reads across sector boundaries");
        ok = 1;
        for (int i = 0; i < 300; i++) {
            uint32_t r[2];
            random_fill (r, sizeof (r));
            uint64_t off = r[0] % sizeof (pt);
            size_t len = r[1] % (sizeof (pt) - off) + 1;
            ok &= capsa_luks_read (v, got, len, off, NULL) == (ssize_t) len && memcmp (got, pt + off, len) == 0;
        }
        CHECK (ok, "luks: 300 random reads");
    }
    CHECK (capsa_luks_read (v, got, 100, 4 * 4096 - 10, NULL) == 10, "luks: read across the end is short");
    CHECK (capsa_luks_read (v, got, 100, 4 * 4096, NULL) == 0, "luks: read at the end gives 0");

    /* The data segment is plain dm-crypt: decrypt 4096-byte sector 2 with
     * OpenSSL and the volume key, IV = its offset from the segment start in
     * 512-byte units, 16. */
    {
        int p[2];
        uint8_t vk[64], sec[4096], dec[4096];
        int l = 0;
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new ();
        uint8_t iv[16] = { 16 };
        if (pipe (p) < 0)
            abort ();
        CHECK (capsa_luks_write_volume_key (v, p[1], NULL) == 0 && read (p[0], vk, 64) == 64,
               "luks: the volume key can be passed through a pipe");
        close (p[0]);
        close (p[1]);
        pread_all (fd, sec, 4096, CAPSA_LUKS_HEADER_SIZE + 2 * 4096);
        EVP_DecryptInit_ex (c, EVP_aes_256_xts (), NULL, vk, iv);
        EVP_DecryptUpdate (c, dec, &l, sec, 4096);
        EVP_CIPHER_CTX_free (c);
        CHECK (memcmp (dec, pt + 2 * 4096, 4096) == 0,
               "luks: 4096-byte sector 2 decrypts with plain OpenSSL, IV 16 (dm-crypt's plain64 in 512-byte units)");
        CHECK (!capsa_luks_legacy_numbering (v), "luks: a new image is not taken for a 0.1.0 one");
        capsa_luks_close (v);
        v = NULL;
        CHECK (capsa_luks_open (fd, 0, written, vk, 64, CAPSA_LUKS_VOLUME_KEY, &v, NULL) == 0,
               "luks: open with the volume key itself");
        CHECK (v && capsa_luks_read (v, got, 100, 50, NULL) == 100 && memcmp (got, pt + 50, 100) == 0,
               "luks: reads with the volume key");
        CHECK (v && capsa_luks_kdf_cost (v) == NULL, "luks: no KDF when opened with the volume key");
        capsa_luks_close (v);
        v = NULL;
        vk[5] ^= 1;
        CHECK (capsa_luks_open (fd, 0, written, vk, 64, CAPSA_LUKS_VOLUME_KEY, &v, &err) < 0
                   && err->code == EKEYREJECTED,
               "luks: a wrong volume key is rejected");
        capsa_error_free (&err);
        explicit_bzero (vk, sizeof (vk));
    }

    CHECK (capsa_luks_open (fd, 0, written, "a secreT", 8, 0, &v, &err) < 0 && err->code == EKEYREJECTED
               && strstr (err->msg, "does not open") != NULL,
           "luks: wrong passphrase: EKEYREJECTED, 'does not open'");
    capsa_error_free (&err);
    CHECK (capsa_luks_open (fd, 0, written, "", 0, 0, &v, &err) < 0 && err->code == ENOKEY, "luks: empty key: ENOKEY");
    capsa_error_free (&err);

    /* Inside a bigger file at an offset, as in a SIF. */
    {
        size_t n;
        uint8_t *raw = fd_contents (fd, &n);
        int big = memfd_create ("big", MFD_CLOEXEC);
        uint8_t junk[12345];
        random_fill (junk, sizeof (junk));
        write_all (big, junk, sizeof (junk));
        write_all (big, raw, n);
        write_all (big, junk, 777);
        CHECK (capsa_luks_open (big, sizeof (junk), n, "a secret", 8, 0, &v, &err) == 0
                   && capsa_luks_read (v, got, 3000, 1000, NULL) == 3000 && memcmp (got, pt + 1000, 3000) == 0,
               "luks: container at an offset inside a file");
        capsa_error_free (&err);
        capsa_luks_close (v);
        v = NULL;
        CHECK (capsa_luks_open (big, sizeof (junk), n + 10000, "a secret", 8, 0, &v, &err) < 0,
               "luks: a range past the end of the file is refused");
        capsa_error_free (&err);
        close (big);

        /* Corruption: the primary JSON alone is repaired from the secondary
         * copy; both copies, or the magic of both, are fatal. */
        uint8_t *bad = xmalloc (n);
        memcpy (bad, raw, n);
        bad[4096 + 20] ^= 0x55;
        int bfd = memfd_with (bad, n);
        CHECK (capsa_luks_open (bfd, 0, n, "a secret", 8, 0, &v, &err) == 0,
               "luks: a corrupted primary header is recovered from the secondary");
        capsa_error_free (&err);
        capsa_luks_close (v);
        v = NULL;
        close (bfd);
        bad[CAPSA_LUKS_METADATA_SIZE + 4096 + 20] ^= 0x55;
        bfd = memfd_with (bad, n);
        CHECK (capsa_luks_open (bfd, 0, n, "a secret", 8, 0, &v, &err) < 0 && err->code == EBADMSG,
               "luks: both header copies corrupted: EBADMSG");
        CHECK (err && strstr (err->msg, "corrupted") != NULL, "luks: the message says corrupted");
        capsa_error_free (&err);
        close (bfd);
        memcpy (bad, raw, n);
        memset (bad, 0, 8);
        memset (bad + CAPSA_LUKS_METADATA_SIZE, 0, 8);
        bfd = memfd_with (bad, n);
        CHECK (capsa_luks_open (bfd, 0, n, "a secret", 8, 0, &v, &err) < 0 && err->code == EBADMSG,
               "luks: no LUKS2 magic: EBADMSG");
        capsa_error_free (&err);
        close (bfd);
        bfd = memfd_with (pt, sizeof (pt));
        CHECK (capsa_luks_open (bfd, 0, sizeof (pt), "a secret", 8, 0, &v, &err) < 0 && err->code == EBADMSG,
               "luks: a plain squashfs is not a LUKS2 container");
        capsa_error_free (&err);
        close (bfd);
        /* Truncated: header only. */
        bfd = memfd_with (raw, CAPSA_LUKS_HEADER_SIZE);
        CHECK (capsa_luks_open (bfd, 0, CAPSA_LUKS_HEADER_SIZE, "a secret", 8, 0, &v, &err) < 0,
               "luks: a container without data is refused");
        capsa_error_free (&err);
        close (bfd);
        free (bad);
        free (raw);
    }
    close (fd);
}

static void
test_luks_input_errors (void)
{
    capsa_error_t err = NULL;
    uint8_t junk[5000];
    int fd;

    random_fill (junk, sizeof (junk));
    memcpy (junk, "nope", 4);
    fd = make_container (junk, sizeof (junk), CAPSA_KDF_PBKDF2, "x", NULL, &err);
    CHECK (fd < 0 && err && strstr (err->msg, "not a squashfs") != NULL, "luks: input that is not squashfs refused");
    capsa_error_free (&err);
    fd = make_container ("", 0, CAPSA_KDF_PBKDF2, "x", NULL, &err);
    CHECK (fd < 0, "luks: empty input refused");
    capsa_error_free (&err);
    fd = make_container ("hsqs", 4, CAPSA_KDF_PBKDF2, "", NULL, &err);
    CHECK (fd < 0 && err && strstr (err->msg, "empty") != NULL, "luks: empty passphrase refused");
    capsa_error_free (&err);
    {
        int in = memfd_with ("hsqs1234", 8), out = memfd_create ("o", MFD_CLOEXEC);
        CHECK (capsa_luks_encrypt_stream (in, 100, out, CAPSA_KDF_PBKDF2, "x", 1, 0, NULL, &err) < 0
                   && strstr (err->msg, "ended after 8 of 100") != NULL,
               "luks: input shorter than announced refused");
        capsa_error_free (&err);
        close (in);
        close (out);
    }
}

/* The Argon2id keyslot has the documented parameters; report the unlock
 * time (informative, never a pass/fail criterion). */
static void
test_luks_argon2 (void)
{
    uint8_t pt[8192];
    capsa_error_t err = NULL;
    struct capsa_luks_volume *v = NULL;
    struct crypt_device *cd = NULL;
    struct crypt_pbkdf_type pbkdf;
    struct timespec a, b;
    uint64_t written = 0;
    char path[64];
    int fd, hfd;

    random_fill (pt, sizeof (pt));
    memcpy (pt, "hsqs", 4);
    fd = make_container (pt, sizeof (pt), CAPSA_KDF_ARGON2ID, "correct horse", &written, &err);
    CHECK (fd >= 0, "argon2: container with a passphrase keyslot");
    if (fd < 0) {
        capsa_error_free (&err);
        return;
    }
    {
        size_t n;
        uint8_t *raw = fd_contents (fd, &n);
        hfd = memfd_with (raw, CAPSA_LUKS_HEADER_SIZE);
        free (raw);
    }
    snprintf (path, sizeof (path), "/proc/self/fd/%d", hfd);
    memset (&pbkdf, 0, sizeof (pbkdf));
    if (crypt_init (&cd, path) == 0 && crypt_load (cd, CRYPT_LUKS2, NULL) == 0
        && crypt_keyslot_get_pbkdf (cd, 0, &pbkdf) == 0) {
        CHECK (strcmp (pbkdf.type, CRYPT_KDF_ARGON2ID) == 0 && pbkdf.iterations == CAPSA_ARGON2_TIME
                   && pbkdf.max_memory_kb == CAPSA_ARGON2_MEMORY_KB && pbkdf.parallel_threads >= 1
                   && pbkdf.parallel_threads <= CAPSA_ARGON2_PARALLEL,
               "argon2: keyslot is argon2id, t=4, m=64 MiB, p<=4");
        printf ("# argon2id t=%u m=%u KiB p=%u\n", pbkdf.iterations, pbkdf.max_memory_kb, pbkdf.parallel_threads);
    } else
        CHECK (0, "argon2: keyslot is argon2id, t=4, m=64 MiB, p<=4");
    CHECK (strcmp (crypt_get_cipher (cd), "aes") == 0 && strcmp (crypt_get_cipher_mode (cd), "xts-plain64") == 0
               && crypt_get_volume_key_size (cd) == 64,
           "argon2: segment is aes-xts-plain64 with a 512-bit key");
    crypt_free (cd);
    close (hfd);

    clock_gettime (CLOCK_MONOTONIC, &a);
    CHECK (capsa_luks_open (fd, 0, written, "correct horse", 13, 0, &v, &err) == 0, "argon2: opens with the passphrase");
    clock_gettime (CLOCK_MONOTONIC, &b);
    {
        const struct capsa_kdf_cost *k = v ? capsa_luks_kdf_cost (v) : NULL;
        double wall = (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9;
        CHECK (k && strcmp (k->type, "argon2id") == 0 && k->memory_kb == CAPSA_ARGON2_MEMORY_KB
                   && k->iterations == CAPSA_ARGON2_TIME && k->parallel >= 1 && k->seconds > 0 && k->seconds <= wall,
               "argon2: the KDF cost is reported (argon2id, 64 MiB, t=4, its time within the open's)");
    }
    printf ("# argon2id unlock took %.3f s\n", (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9);
    capsa_error_free (&err);
    capsa_luks_close (v);
    v = NULL;
    CHECK (capsa_luks_open (fd, 0, written, "correct horsE", 13, 0, &v, &err) < 0 && err->code == EKEYREJECTED,
           "argon2: wrong passphrase rejected");
    capsa_error_free (&err);
    close (fd);
}

/* A LUKS2 container with another cipher (made with libcryptsetup here) is
 * refused with ENOTSUP. */
static void
test_luks_other_cipher (void)
{
    struct crypt_device *cd = NULL;
    struct crypt_pbkdf_type pbkdf = { .type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
                                      .flags = CRYPT_PBKDF_NO_BENCHMARK };
    struct crypt_params_luks2 params = { .pbkdf = &pbkdf, .sector_size = 512 };
    capsa_error_t err = NULL;
    struct capsa_luks_volume *v = NULL;
    char path[64];
    int fd = memfd_create ("cbc", MFD_CLOEXEC);

    if (ftruncate (fd, 17 << 20) < 0)
        abort ();
    snprintf (path, sizeof (path), "/proc/self/fd/%d", fd);
    if (crypt_init (&cd, path) < 0 || crypt_format (cd, CRYPT_LUKS2, "aes", "cbc-essiv:sha256", NULL, NULL, 32, &params) < 0
        || crypt_keyslot_add_by_volume_key (cd, CRYPT_ANY_SLOT, NULL, 0, "pw", 2) < 0) {
        CHECK (0, "luks: aes-cbc-essiv container refused (could not make one)");
    } else {
        CHECK (capsa_luks_open (fd, 0, 17 << 20, "pw", 2, 0, &v, &err) < 0 && err->code == ENOTSUP
                   && strstr (err->msg, "aes-xts-plain64") != NULL,
               "luks: aes-cbc-essiv container refused (ENOTSUP)");
    }
    capsa_error_free (&err);
    crypt_free (cd);
    close (fd);
}

/* cryptsetup's defaults (16 MiB header, 512-byte sectors), as Apptainer's
 * images have them, open too. */
static void
test_luks_cryptsetup_defaults (void)
{
    struct crypt_device *cd = NULL;
    struct crypt_pbkdf_type pbkdf = { .type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
                                      .flags = CRYPT_PBKDF_NO_BENCHMARK };
    struct crypt_params_luks2 params = { .pbkdf = &pbkdf, .sector_size = 512 };
    capsa_error_t err = NULL;
    struct capsa_luks_volume *v = NULL;
    uint8_t vk[64], data[3 * 512], enc[3 * 512], got[700];
    char path[64];
    uint64_t off;
    int fd = memfd_create ("def", MFD_CLOEXEC);

    random_fill (vk, sizeof (vk));
    random_fill (data, sizeof (data));
    if (ftruncate (fd, (17 << 20)) < 0)
        abort ();
    snprintf (path, sizeof (path), "/proc/self/fd/%d", fd);
    if (crypt_init (&cd, path) < 0 || crypt_format (cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, (char *) vk, 64, &params) < 0
        || crypt_keyslot_add_by_volume_key (cd, CRYPT_ANY_SLOT, (char *) vk, 64, "pw", 2) < 0) {
        CHECK (0, "luks: cryptsetup default layout opens (could not make one)");
        crypt_free (cd);
        close (fd);
        return;
    }
    off = crypt_get_data_offset (cd) * 512;
    crypt_free (cd);
    capsa_xts_crypt (vk, 64, true, 0, 1, 512, data, enc, sizeof (enc), NULL);
    if (pwrite (fd, enc, sizeof (enc), (off_t) off) != (ssize_t) sizeof (enc))
        abort ();
    if (ftruncate (fd, (off_t) (off + sizeof (enc))) < 0)
        abort ();
    CHECK (capsa_luks_open (fd, 0, off + sizeof (enc), "pw", 2, 0, &v, &err) == 0 && capsa_luks_sector_size (v) == 512
               && capsa_luks_data_offset (v) == off && capsa_luks_size (v) == sizeof (enc),
           "luks: cryptsetup's default layout (16 MiB header, 512-byte sectors) opens");
    CHECK (v && capsa_luks_read (v, got, 700, 300, NULL) == 700 && memcmp (got, data + 300, 700) == 0,
           "luks: 512-byte sectors read back");
    capsa_error_free (&err);
    capsa_luks_close (v);
    close (fd);
}

/* ---- RSA ---------------------------------------------------------------------------- */

static char *
pem_of (EVP_PKEY *k, int selection, const char *structure, const char *pass)
{
    OSSL_ENCODER_CTX *e = OSSL_ENCODER_CTX_new_for_pkey (k, selection, "PEM", structure, NULL);
    unsigned char *data = NULL;
    size_t len = 0;
    char *s;

    if (pass) {
        OSSL_ENCODER_CTX_set_cipher (e, "AES-256-CBC", NULL);
        OSSL_ENCODER_CTX_set_passphrase (e, (const unsigned char *) pass, strlen (pass));
    }
    if (e == NULL || OSSL_ENCODER_to_data (e, &data, &len) != 1)
        abort ();
    OSSL_ENCODER_CTX_free (e);
    s = xmalloc (len + 1);
    memcpy (s, data, len);
    s[len] = '\0';
    OPENSSL_free (data);
    return s;
}

static struct capsa_rsa_key *
load (const char *pem, bool priv, capsa_error_t *err)
{
    struct capsa_rsa_key *k = NULL;
    if (capsa_rsa_key_load (pem, strlen (pem), priv, "key.pem", &k, err) < 0)
        return NULL;
    return k;
}

static void
test_rsa (void)
{
    EVP_PKEY *k1 = EVP_PKEY_Q_keygen (NULL, NULL, "RSA", (size_t) 2048);
    EVP_PKEY *k2 = EVP_PKEY_Q_keygen (NULL, NULL, "RSA", (size_t) 2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen (NULL, NULL, "EC", "P-256");
    cleanup_free char *priv1 = pem_of (k1, EVP_PKEY_KEYPAIR, "type-specific", NULL);
    cleanup_free char *priv8 = pem_of (k1, EVP_PKEY_KEYPAIR, "PrivateKeyInfo", NULL);
    cleanup_free char *pub1 = pem_of (k1, EVP_PKEY_PUBLIC_KEY, "type-specific", NULL);
    cleanup_free char *spki = pem_of (k1, EVP_PKEY_PUBLIC_KEY, "SubjectPublicKeyInfo", NULL);
    cleanup_free char *other = pem_of (k2, EVP_PKEY_KEYPAIR, "PrivateKeyInfo", NULL);
    cleanup_free char *enc8 = pem_of (k1, EVP_PKEY_KEYPAIR, "EncryptedPrivateKeyInfo", "pw");
    cleanup_free char *enc1 = pem_of (k1, EVP_PKEY_KEYPAIR, "type-specific", "pw");
    cleanup_free char *ecpem = pem_of (ec, EVP_PKEY_KEYPAIR, "PrivateKeyInfo", NULL);
    cleanup_free char *msg = NULL;
    capsa_error_t err = NULL;
    struct capsa_rsa_key *pub = NULL, *priv = NULL;
    uint8_t secret[64], *back = NULL;
    size_t back_len = 0, msg_len = 0;

    CHECK (strstr (priv1, "BEGIN RSA PRIVATE KEY") && strstr (priv8, "BEGIN PRIVATE KEY")
               && strstr (pub1, "BEGIN RSA PUBLIC KEY") && strstr (spki, "BEGIN PUBLIC KEY"),
           "rsa: test keys in PKCS#1, PKCS#8 and SPKI PEM");
    random_fill (secret, sizeof (secret));

    /* PKCS#1 public -> PKCS#1 private */
    pub = load (pub1, false, &err);
    CHECK (pub != NULL, "rsa: PKCS#1 public key loads");
    CHECK (pub && capsa_rsa_wrap (pub, secret, 64, &msg, &msg_len, &err) == 0, "rsa: wrap a 64-byte secret");
    CHECK (msg && strncmp (msg, "-----BEGIN MESSAGE-----\n", 24) == 0 && strstr (msg, "-----END MESSAGE-----\n")
               && strlen (msg) == msg_len,
           "rsa: the message is a PEM MESSAGE block");
    if (msg) {
        BIO *b = BIO_new_mem_buf (msg, -1);
        char *name = NULL, *hdr = NULL;
        unsigned char *der = NULL;
        long dlen = 0;
        PEM_read_bio (b, &name, &hdr, &der, &dlen);
        CHECK (dlen == 4 + 256 && der[0] == 0x04 && der[1] == 0x82 && der[2] == 0x01 && der[3] == 0x00,
               "rsa: its body is a DER OCTET STRING of 256 bytes");
        OPENSSL_free (name);
        OPENSSL_free (hdr);
        OPENSSL_free (der);
        BIO_free (b);
    }
    priv = load (priv1, true, &err);
    CHECK (priv != NULL, "rsa: PKCS#1 private key loads");
    CHECK (priv && msg && capsa_rsa_unwrap (priv, msg, msg_len, &back, &back_len, &err) == 0 && back_len == 64
               && memcmp (back, secret, 64) == 0,
           "rsa: unwrap with the PKCS#1 private key gives the secret back");
    capsa_secure_free (back);
    back = NULL;
    capsa_rsa_key_free (priv);
    capsa_rsa_key_free (pub);
    free (steal_ptr (&msg));
    capsa_error_free (&err);

    /* SPKI -> PKCS#8 */
    pub = load (spki, false, &err);
    priv = load (priv8, true, &err);
    CHECK (pub && priv, "rsa: SPKI public and PKCS#8 private keys load");
    CHECK (pub && priv && capsa_rsa_wrap (pub, secret, 64, &msg, &msg_len, NULL) == 0
               && capsa_rsa_unwrap (priv, msg, msg_len, &back, &back_len, NULL) == 0 && back_len == 64
               && memcmp (back, secret, 64) == 0,
           "rsa: SPKI wrap, PKCS#8 unwrap");
    capsa_secure_free (back);
    back = NULL;
    capsa_rsa_key_free (pub);
    capsa_error_free (&err);

    /* A private key can wrap too (it holds the public half). */
    pub = load (priv8, false, NULL);
    CHECK (pub != NULL, "rsa: a private key is accepted for wrapping");
    capsa_rsa_key_free (pub);

    /* Another private key does not open it. */
    pub = load (other, true, NULL);
    CHECK (pub && msg && capsa_rsa_unwrap (pub, msg, msg_len, &back, &back_len, &err) < 0 && err->code == EKEYREJECTED
               && strstr (err->msg, "does not open") != NULL,
           "rsa: another private key: EKEYREJECTED, 'does not open'");
    capsa_error_free (&err);
    capsa_rsa_key_free (pub);
    /* A corrupted message. */
    if (msg) {
        char *bad = xstrdup (msg);
        bad[30] = bad[30] == 'A' ? 'B' : 'A';
        CHECK (capsa_rsa_unwrap (priv, bad, strlen (bad), &back, &back_len, &err) < 0, "rsa: a corrupted message fails");
        capsa_error_free (&err);
        CHECK (capsa_rsa_unwrap (priv, "hello", 5, &back, &back_len, &err) < 0 && err->code == EBADMSG,
               "rsa: a message that is not PEM: EBADMSG");
        capsa_error_free (&err);
        free (bad);
    }
    capsa_rsa_key_free (priv);

    /* Refusals, each with its message. */
    CHECK (load (pub1, true, &err) == NULL && strstr (err->msg, "public key") && strstr (err->msg, "key.pem"),
           "rsa: PKCS#1 public key where a private one is needed");
    capsa_error_free (&err);
    CHECK (load (spki, true, &err) == NULL && strstr (err->msg, "public key"),
           "rsa: SPKI public key where a private one is needed");
    capsa_error_free (&err);
    CHECK (load (enc8, true, &err) == NULL && strstr (err->msg, "passphrase"),
           "rsa: passphrase-protected PKCS#8 refused");
    capsa_error_free (&err);
    CHECK (load (enc1, true, &err) == NULL && strstr (err->msg, "passphrase"),
           "rsa: passphrase-protected PKCS#1 refused");
    capsa_error_free (&err);
    CHECK (load (ecpem, false, &err) == NULL && strstr (err->msg, "not an RSA key"), "rsa: EC key refused");
    capsa_error_free (&err);
    CHECK (load ("just text", false, &err) == NULL && strstr (err->msg, "not a PEM"), "rsa: non-PEM refused");
    capsa_error_free (&err);
    CHECK (load ("-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n", false, &err) == NULL
               && strstr (err->msg, "not an RSA key"),
           "rsa: a certificate is not a key");
    capsa_error_free (&err);

    EVP_PKEY_free (k1);
    EVP_PKEY_free (k2);
    EVP_PKEY_free (ec);
}

/* ---- chunked RSA-OAEP, as Apptainer wraps secrets ------------------------------------- */

/* The DER body of a PEM MESSAGE (malloc'd), or NULL. */
static unsigned char *
message_der (const char *msg, long *len)
{
    BIO *b = BIO_new_mem_buf (msg, -1);
    char *name = NULL, *hdr = NULL;
    unsigned char *der = NULL, *copy = NULL;

    if (PEM_read_bio (b, &name, &hdr, &der, len) == 1) {
        copy = xmalloc ((size_t) *len);
        memcpy (copy, der, (size_t) *len);
    }
    OPENSSL_free (name);
    OPENSSL_free (hdr);
    OPENSSL_free (der);
    BIO_free (b);
    return copy;
}

/* Decrypt each k-byte chunk of the message with OpenSSL directly and
 * concatenate: what Apptainer's cryptkey.PlaintextKey does. */
static size_t
openssl_unwrap (EVP_PKEY *k, const char *msg, uint8_t *out, size_t cap)
{
    long len = 0;
    unsigned char *der = message_der (msg, &len);
    const unsigned char *p = der;
    ASN1_OCTET_STRING *os = der ? d2i_ASN1_OCTET_STRING (NULL, &p, len) : NULL;
    size_t ks = (size_t) EVP_PKEY_get_size (k), total = 0, n;

    for (int at = 0; os && at + (int) ks <= ASN1_STRING_length (os); at += (int) ks) {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new (k, NULL);
        n = cap - total;
        if (EVP_PKEY_decrypt_init (c) != 1 || EVP_PKEY_CTX_set_rsa_padding (c, RSA_PKCS1_OAEP_PADDING) != 1
            || EVP_PKEY_CTX_set_rsa_oaep_md (c, EVP_sha256 ()) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md (c, EVP_sha256 ()) != 1
            || EVP_PKEY_decrypt (c, out + total, &n, ASN1_STRING_get0_data (os) + at, ks) != 1)
            total = SIZE_MAX / 2;
        else
            total += n;
        EVP_PKEY_CTX_free (c);
    }
    ASN1_OCTET_STRING_free (os);
    free (der);
    return total;
}

/* A message made the way Apptainer makes it, with OpenSSL: chunks of
 * k - 66 bytes, RSA-OAEP each, concatenated, DER OCTET STRING, PEM. */
static char *
openssl_wrap (EVP_PKEY *k, const uint8_t *secret, size_t len)
{
    size_t ks = (size_t) EVP_PKEY_get_size (k), step = ks - 66, ct_len = 0;
    unsigned char *ct = xmalloc ((len + step - 1) / step * ks), *der = NULL;
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new ();
    BIO *b = BIO_new (BIO_s_mem ());
    char *data, *msg;
    long n;
    int dl;

    for (size_t at = 0; at < len; at += step) {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new (k, NULL);
        size_t o = ks;
        if (EVP_PKEY_encrypt_init (c) != 1 || EVP_PKEY_CTX_set_rsa_padding (c, RSA_PKCS1_OAEP_PADDING) != 1
            || EVP_PKEY_CTX_set_rsa_oaep_md (c, EVP_sha256 ()) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md (c, EVP_sha256 ()) != 1
            || EVP_PKEY_encrypt (c, ct + ct_len, &o, secret + at, len - at < step ? len - at : step) != 1)
            abort ();
        ct_len += o;
        EVP_PKEY_CTX_free (c);
    }
    ASN1_OCTET_STRING_set (os, ct, (int) ct_len);
    dl = i2d_ASN1_OCTET_STRING (os, &der);
    PEM_write_bio (b, "MESSAGE", "", der, dl);
    n = BIO_get_mem_data (b, &data);
    msg = xmalloc ((size_t) n + 1);
    memcpy (msg, data, (size_t) n);
    msg[n] = '\0';
    OPENSSL_free (der);
    BIO_free (b);
    ASN1_OCTET_STRING_free (os);
    free (ct);
    return msg;
}

static void
test_rsa_chunks (void)
{
    static const int sizes[] = { 1024, 1032, 1040, 1025, 2048, 4096 };
    uint8_t secret[64], got[1024];
    capsa_error_t err = NULL;

    random_fill (secret, sizeof (secret));
    for (size_t i = 0; i < ARRAY_SIZE (sizes); i++) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen (NULL, NULL, "RSA", (size_t) sizes[i]);
        cleanup_free char *pub = pem_of (k, EVP_PKEY_PUBLIC_KEY, "type-specific", NULL);
        cleanup_free char *priv = pem_of (k, EVP_PKEY_KEYPAIR, "type-specific", NULL);
        struct capsa_rsa_key *kp = load (pub, false, NULL), *ks = load (priv, true, NULL);
        size_t ksz = (size_t) EVP_PKEY_get_size (k), chunks = (64 + ksz - 67) / (ksz - 66), back_len = 0, msg_len = 0;
        cleanup_free char *msg = NULL, *theirs = NULL, *name = NULL;
        long der_len = 0;
        cleanup_free unsigned char *der = NULL;
        uint8_t *back = NULL;

        name = xasprintf ("rsa %d bits (%zu chunk%s)", sizes[i], chunks, chunks > 1 ? "s" : "");
        CHECK (kp && ks && capsa_rsa_wrap (kp, secret, 64, &msg, &msg_len, &err) == 0, name);
        capsa_error_free (&err);
        der = msg ? message_der (msg, &der_len) : NULL;
        /* The OCTET STRING holds chunks * k bytes after its DER header. */
        CHECK (der && der_len > (long) (chunks * ksz) && der[0] == 0x04
                   && (size_t) der_len - chunks * ksz <= 4,
               "rsa: the message holds one k-byte ciphertext per chunk of k - 66 bytes");
        CHECK (msg && openssl_unwrap (k, msg, got, sizeof (got)) == 64 && memcmp (got, secret, 64) == 0,
               "rsa: OpenSSL decrypting chunk by chunk gets the secret back (Apptainer's reading)");
        CHECK (ks && msg && capsa_rsa_unwrap (ks, msg, msg_len, &back, &back_len, NULL) == 0 && back_len == 64
                   && memcmp (back, secret, 64) == 0,
               "rsa: capsa unwraps its own message");
        capsa_secure_free (back);
        back = NULL;
        theirs = openssl_wrap (k, secret, 64);
        CHECK (ks && capsa_rsa_unwrap (ks, theirs, strlen (theirs), &back, &back_len, NULL) == 0 && back_len == 64
                   && memcmp (back, secret, 64) == 0,
               "rsa: capsa unwraps a message made by OpenSSL the way Apptainer makes it");
        capsa_secure_free (back);
        back = NULL;
        if (sizes[i] == 1024) {
            /* A 32-character gocryptfs password: one chunk. */
            free (theirs);
            theirs = openssl_wrap (k, (const uint8_t *) "0123456789abcdef0123456789abcdef", 32);
            CHECK (capsa_rsa_unwrap (ks, theirs, strlen (theirs), &back, &back_len, NULL) == 0 && back_len == 32
                       && memcmp (back, "0123456789abcdef0123456789abcdef", 32) == 0,
                   "rsa 1024: a 32-byte gocryptfs password in one chunk");
            capsa_secure_free (back);
            back = NULL;
        }
        capsa_rsa_key_free (kp);
        capsa_rsa_key_free (ks);
        EVP_PKEY_free (k);
    }
    {
        /* A message for a 2048-bit key given to a 1024-bit one: 256 bytes
         * are two 128-byte chunks, which do not decrypt. */
        EVP_PKEY *big = EVP_PKEY_Q_keygen (NULL, NULL, "RSA", (size_t) 2048);
        EVP_PKEY *small = EVP_PKEY_Q_keygen (NULL, NULL, "RSA", (size_t) 1024);
        EVP_PKEY *tiny = EVP_PKEY_Q_keygen (NULL, NULL, "RSA", (size_t) 768);
        cleanup_free char *msg = openssl_wrap (big, secret, 64);
        cleanup_free char *spem = pem_of (small, EVP_PKEY_KEYPAIR, "type-specific", NULL);
        cleanup_free char *tpem = pem_of (tiny, EVP_PKEY_KEYPAIR, "type-specific", NULL);
        struct capsa_rsa_key *s = load (spem, true, NULL);
        uint8_t *back = NULL;
        size_t back_len = 0;

        CHECK (s && capsa_rsa_unwrap (s, msg, strlen (msg), &back, &back_len, &err) < 0 && err->code == EKEYREJECTED,
               "rsa: another key size's message: EKEYREJECTED");
        capsa_error_free (&err);
        CHECK (load (tpem, false, &err) == NULL && err && strstr (err->msg, "768-bit") && strstr (err->msg, "1024"),
               "rsa: a 768-bit key is refused (Go's crypto/rsa in Apptainer refuses under 1024 bits)");
        capsa_error_free (&err);
        capsa_rsa_key_free (s);
        EVP_PKEY_free (big);
        EVP_PKEY_free (small);
        EVP_PKEY_free (tiny);
    }
}

/* ---- helpers for images made here ----------------------------------------------------- */

static char workdir[] = "/tmp/capsa-test-crypt2.XXXXXX";

static int
run_cmd (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static int
run_cmd (const char *fmt, ...)
{
    va_list ap;
    char *cmd = NULL;
    int r;

    va_start (ap, fmt);
    if (vasprintf (&cmd, fmt, ap) < 0)
        abort ();
    va_end (ap);
    r = system (cmd);
    free (cmd);
    return r;
}

static uint8_t *
file_contents (const char *path, size_t *len)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    uint8_t *b;
    if (fd < 0)
        return NULL;
    b = fd_contents (fd, len);
    close (fd);
    return b;
}

static void
put_file (const char *path, const void *data, size_t len)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all (fd, data, len) < 0)
        abort ();
    close (fd);
}

/* A memfd holding junk, then data, then junk: a partition inside a file.
 * *off receives where data starts. */
static int
embed (const uint8_t *data, size_t len, uint64_t *off)
{
    uint8_t junk[5000];
    int fd = memfd_create ("img", MFD_CLOEXEC);
    random_fill (junk, sizeof (junk));
    if (fd < 0 || write_all (fd, junk, sizeof (junk)) < 0 || write_all (fd, data, len) < 0
        || write_all (fd, junk, 333) < 0)
        abort ();
    *off = sizeof (junk);
    return fd;
}

/* ---- a gocryptfs file system written here ------------------------------------------------
 *
 * A second, independent writer of gocryptfs's format (its
 * Documentation/file-format.md and internal/configfile): for the unit
 * tests' corner cases only.  tests/e2e/test_crypt_interop.sh runs images
 * that Debian's gocryptfs made. */

static void
b64 (const uint8_t *in, size_t len, char *out)
{
    EVP_EncodeBlock ((unsigned char *) out, in, (int) len);
}

static void
hkdf (const uint8_t *ikm, uint8_t *out)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id (EVP_PKEY_HKDF, NULL);
    size_t n = 32;
    static const char info[] = "AES-GCM file content encryption";
    if (EVP_PKEY_derive_init (c) != 1 || EVP_PKEY_CTX_set_hkdf_md (c, EVP_sha256 ()) != 1
        || EVP_PKEY_CTX_set1_hkdf_key (c, ikm, 32) != 1
        || EVP_PKEY_CTX_add1_hkdf_info (c, (const unsigned char *) info, sizeof (info) - 1) != 1
        || EVP_PKEY_derive (c, out, &n) != 1)
        abort ();
    EVP_PKEY_CTX_free (c);
}

static void
gcm_seal (const uint8_t *key, const uint8_t *nonce, const uint8_t *ad, size_t adl, const uint8_t *pt, size_t len,
          uint8_t *out /* ct || tag */)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new ();
    int l = 0;
    if (EVP_EncryptInit_ex (c, EVP_aes_256_gcm (), NULL, NULL, NULL) != 1
        || EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_SET_IVLEN, 16, NULL) != 1
        || EVP_EncryptInit_ex (c, NULL, NULL, key, nonce) != 1 || EVP_EncryptUpdate (c, NULL, &l, ad, (int) adl) != 1
        || EVP_EncryptUpdate (c, out, &l, pt, (int) len) != 1 || EVP_EncryptFinal_ex (c, out + l, &l) != 1
        || EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_GET_TAG, 16, out + len) != 1)
        abort ();
    EVP_CIPHER_CTX_free (c);
}

/* DIR/gocryptfs.conf for password (scrypt N=1024) and master key mk;
 * flags is the FeatureFlags JSON list. */
static void
write_gc_conf (const char *dir, const char *password, const uint8_t *mk, const char *flags)
{
    uint8_t salt[32], kek[32], key[32], nonce[16], enc[16 + 32 + 16];
    char salt64[64], enc64[128];
    cleanup_free char *path = xasprintf ("%s/gocryptfs.conf", dir), *json = NULL;
    static const uint8_t ad[8];
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id (EVP_PKEY_SCRYPT, NULL);
    size_t n = 32;

    random_fill (salt, sizeof (salt));
    random_fill (nonce, sizeof (nonce));
    if (EVP_PKEY_derive_init (c) != 1 || EVP_PKEY_CTX_set1_pbe_pass (c, password, (int) strlen (password)) != 1
        || EVP_PKEY_CTX_set1_scrypt_salt (c, salt, sizeof (salt)) != 1 || EVP_PKEY_CTX_set_scrypt_N (c, 1024) != 1
        || EVP_PKEY_CTX_set_scrypt_r (c, 8) != 1 || EVP_PKEY_CTX_set_scrypt_p (c, 1) != 1
        || EVP_PKEY_derive (c, kek, &n) != 1)
        abort ();
    EVP_PKEY_CTX_free (c);
    hkdf (kek, key);
    memcpy (enc, nonce, 16);
    gcm_seal (key, nonce, ad, sizeof (ad), mk, 32, enc + 16);
    b64 (salt, sizeof (salt), salt64);
    b64 (enc, sizeof (enc), enc64);
    json = xasprintf ("{\n\t\"Creator\": \"capsa unit test\",\n\t\"EncryptedKey\": \"%s\",\n\t\"ScryptObject\": {\n"
                      "\t\t\"Salt\": \"%s\",\n\t\t\"N\": 1024,\n\t\t\"R\": 8,\n\t\t\"P\": 1,\n\t\t\"KeyLen\": 32\n\t},\n"
                      "\t\"Version\": 2,\n\t\"FeatureFlags\": %s\n}\n",
                      enc64, salt64, flags);
    put_file (path, json, strlen (json));
}

/* DIR/squashfs-1 holding pt encrypted with master key mk; block `hole`
 * (if < nblocks) written as zeros (a hole), block `bad` with a flipped
 * byte. */
static void
write_gc_file (const char *dir, const uint8_t *mk, const uint8_t *pt, size_t len, uint64_t hole, uint64_t bad)
{
    uint8_t key[32], id[16], ad[24];
    cleanup_free char *path = xasprintf ("%s/squashfs-1", dir);
    size_t nb = (len + 4095) / 4096, out_len = 18 + len + nb * 32, o = 18;
    cleanup_free uint8_t *out = xcalloc (1, out_len);

    hkdf (mk, key);
    random_fill (id, sizeof (id));
    out[1] = 2;
    memcpy (out + 2, id, 16);
    for (uint64_t b = 0; b < nb; b++) {
        size_t n = len - b * 4096 < 4096 ? len - b * 4096 : 4096;
        for (int i = 0; i < 8; i++)
            ad[i] = (uint8_t) (b >> (56 - 8 * i));
        memcpy (ad + 8, id, 16);
        if (b != hole) {
            random_fill (out + o, 16);
            gcm_seal (key, out + o, ad, sizeof (ad), pt + b * 4096, n, out + o + 16);
            if (b == bad)
                out[o + 100] ^= 1;
        }
        o += n + 32;
    }
    put_file (path, out, out_len);
}

/* An outer squashfs of DIR, with mksquashfs options opts; its bytes. */
static uint8_t *
pack (const char *dir, const char *opts, size_t *len)
{
    cleanup_free char *out = xasprintf ("%s.sqfs", dir);
    uint8_t *b;
    if (run_cmd ("mksquashfs %s %s -noappend -quiet -no-progress -all-root %s >/dev/null 2>&1", dir, out, opts) != 0)
        return NULL;
    b = file_contents (out, len);
    unlink (out);
    return b;
}

struct reader_arg {
    struct capsa_crypt_image *img;
    const uint8_t *pt;
    size_t len;
    int ok;
};

static void *
reader_main (void *p)
{
    struct reader_arg *a = p;
    uint8_t *buf = xmalloc (70000);
    a->ok = 1;
    for (int i = 0; i < 300; i++) {
        uint32_t r[2];
        random_fill (r, sizeof (r));
        uint64_t off = r[0] % a->len;
        size_t n = r[1] % 70000 + 1;
        size_t want = n < a->len - off ? n : a->len - off;
        a->ok &= capsa_crypt_read (a->img, buf, n, off, NULL) == (ssize_t) want && memcmp (buf, a->pt + off, want) == 0;
    }
    free (buf);
    return NULL;
}

/* 4 threads of 300 random reads each on img: all right? */
static bool
threads_read_ok (struct capsa_crypt_image *img, const uint8_t *pt, size_t len)
{
    pthread_t t[4];
    struct reader_arg a[4];
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        a[i] = (struct reader_arg) { img, pt, len, 0 };
        pthread_create (&t[i], NULL, reader_main, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join (t[i], NULL);
        ok &= a[i].ok == 1;
    }
    return ok;
}

#define GC_LEN (40 * 4096 + 1234)
#define GC_FLAGS "[\"HKDF\", \"GCMIV128\", \"PlaintextNames\"]"

static void
test_gocryptfs (void)
{
    static uint8_t pt[GC_LEN], got[GC_LEN + 100];
    uint8_t mk[32];
    cleanup_free char *dir = xasprintf ("%s/gc", workdir);
    cleanup_free uint8_t *outer = NULL, *packed = NULL, *bad = NULL;
    struct capsa_crypt_image *img = NULL, *img2 = NULL;
    capsa_error_t err = NULL;
    enum capsa_crypt_format fmt = CAPSA_CRYPT_AUTO;
    size_t outer_len = 0, packed_len = 0;
    uint64_t off = 0;
    int fd, ok;

    random_fill (pt, sizeof (pt));
    memcpy (pt, "hsqs", 4);
    random_fill (mk, sizeof (mk));
    if (mkdir (dir, 0755) < 0)
        abort ();
    write_gc_conf (dir, "gc password", mk, GC_FLAGS);
    write_gc_file (dir, mk, pt, sizeof (pt), 7, UINT64_MAX);
    memset (pt + 7 * 4096, 0, 4096); /* block 7 is a hole */
    outer = pack (dir, "-noD -noF", &outer_len);
    packed = pack (dir, "-b 8192", &packed_len);
    CHECK (outer && packed, "gocryptfs: outer squashfs made with mksquashfs (-noD -noF, and compressed)");
    if (!outer || !packed)
        return;

    fd = embed (outer, outer_len, &off);
    CHECK (capsa_crypt_detect (fd, off, outer_len, &fmt, NULL) == 0 && fmt == CAPSA_CRYPT_GOCRYPTFS,
           "gocryptfs: detected from its squashfs magic");
    CHECK (capsa_crypt_open (fd, off, outer_len, CAPSA_CRYPT_AUTO, "gc password", 11, 0, &img, &err) == 0,
           "gocryptfs: opens with the password");
    if (img == NULL) {
        printf ("# %s\n", err ? err->msg : "?");
        capsa_error_free (&err);
        close (fd);
        return;
    }
    CHECK (capsa_crypt_format (img) == CAPSA_CRYPT_GOCRYPTFS && capsa_crypt_size (img) == sizeof (pt)
               && capsa_crypt_block_size (img) == 4096,
           "gocryptfs: format, plaintext size (not a multiple of 4096), block size");
    {
        const struct capsa_kdf_cost *k = capsa_crypt_kdf_cost (img);
        CHECK (k && strcmp (k->type, "scrypt") == 0 && k->iterations == 1024 && k->memory_kb == 1024 && k->parallel == 1,
               "gocryptfs: the KDF cost is reported (scrypt, N=1024, 1 MiB)");
    }
    CHECK (capsa_crypt_read (img, got, sizeof (got), 0, &err) == (ssize_t) sizeof (pt) && memcmp (got, pt, sizeof (pt)) == 0,
           "gocryptfs: whole read gives the plaintext back, the hole as zeros");
    ok = 1;
    {
        static const struct {
            uint64_t off;
            size_t len;
        } cases[] = { { 1, 5000 }, { 4095, 2 }, { 4096, 4096 }, { 4000, 8300 }, { 12, 1 }, { 8191, 4097 },
                      { 40 * 4096, 1234 }, { 40 * 4096 - 1, 2 }, { 0, 64 * 4096 + 7 } };
        for (size_t i = 0; i < ARRAY_SIZE (cases); i++) {
            size_t want = cases[i].len < sizeof (pt) - cases[i].off ? cases[i].len : sizeof (pt) - cases[i].off;
            ok &= capsa_crypt_read (img, got, cases[i].len, cases[i].off, NULL) == (ssize_t) want
                  && memcmp (got, pt + cases[i].off, want) == 0;
        }
    }
    CHECK (ok, "gocryptfs: unaligned reads across blocks, the short last block, more than 64 blocks at once");
    CHECK (capsa_crypt_read (img, got, 100, sizeof (pt), NULL) == 0, "gocryptfs: read at the end gives 0");
    CHECK (threads_read_ok (img, pt, sizeof (pt)), "gocryptfs: 4 threads x 300 random reads");
    {
        int p[2];
        uint8_t rec[200];
        ssize_t n;
        if (pipe (p) < 0)
            abort ();
        CHECK (capsa_crypt_write_record (img, p[1], NULL) == 0, "record: written for a gocryptfs image");
        close (p[1]);
        n = read (p[0], rec, sizeof (rec));
        close (p[0]);
        CHECK (n == 8 + 2 + 32 && memcmp (rec, "CAPSAKEY", 8) == 0 && rec[8] == CAPSA_CRYPT_GOCRYPTFS && rec[9] == 32,
               "record: CAPSAKEY, format 2, 32-byte master key");
        CHECK (n > 0 && capsa_crypt_open_record (fd, off, outer_len, rec, (size_t) n, &img2, &err) == 0
                   && capsa_crypt_kdf_cost (img2) == NULL && capsa_crypt_read (img2, got, 9000, 3000, NULL) == 9000
                   && memcmp (got, pt + 3000, 9000) == 0,
               "record: opens the gocryptfs image without the KDF and reads");
        capsa_error_free (&err);
        capsa_crypt_close (img2);
        img2 = NULL;
        rec[20] ^= 1;
        CHECK (n > 0 && capsa_crypt_open_record (fd, off, outer_len, rec, (size_t) n, &img2, &err) < 0
                   && err->code == EKEYREJECTED && strstr (err->msg, "does not open"),
               "record: a wrong master key: EKEYREJECTED");
        capsa_error_free (&err);
        CHECK (capsa_crypt_open_record (fd, off, outer_len, rec, (size_t) n - 1, &img2, &err) < 0 && err->code == EINVAL,
               "record: a truncated record is refused");
        capsa_error_free (&err);
        rec[8] = 7;
        CHECK (capsa_crypt_open_record (fd, off, outer_len, rec, (size_t) n, &img2, &err) < 0 && strstr (err->msg, "unknown"),
               "record: an unknown format is refused");
        capsa_error_free (&err);
    }
    capsa_crypt_close (img);
    img = NULL;
    CHECK (capsa_crypt_open (fd, off, outer_len, CAPSA_CRYPT_GOCRYPTFS, "gc passworD", 11, 0, &img, &err) < 0
               && err->code == EKEYREJECTED && strstr (err->msg, "does not open"),
           "gocryptfs: a wrong password: EKEYREJECTED, 'does not open'");
    capsa_error_free (&err);
    CHECK (capsa_crypt_open (fd, off, outer_len, CAPSA_CRYPT_LUKS2, "gc password", 11, 0, &img, &err) < 0
               && err->code == EBADMSG,
           "gocryptfs: opened as LUKS2, it is not one (EBADMSG)");
    capsa_error_free (&err);
    close (fd);

    /* The outer squashfs compressed, with fragments: libsquashfs reads. */
    fd = embed (packed, packed_len, &off);
    CHECK (capsa_crypt_open (fd, off, packed_len, CAPSA_CRYPT_AUTO, "gc password", 11, 0, &img, &err) == 0
               && capsa_crypt_read (img, got, sizeof (got), 0, NULL) == (ssize_t) sizeof (pt)
               && memcmp (got, pt, sizeof (pt)) == 0,
           "gocryptfs: a compressed outer squashfs with fragments reads the same");
    capsa_error_free (&err);
    CHECK (img && threads_read_ok (img, pt, sizeof (pt)), "gocryptfs: compressed outer: 4 threads x 300 random reads");
    capsa_crypt_close (img);
    img = NULL;
    close (fd);

    /* A block that fails authentication: EBADMSG for it, the others read. */
    write_gc_file (dir, mk, pt, sizeof (pt), UINT64_MAX, 3);
    bad = pack (dir, "-noD -noF", &outer_len);
    fd = embed (bad, outer_len, &off);
    CHECK (capsa_crypt_open (fd, off, outer_len, CAPSA_CRYPT_AUTO, "gc password", 11, 0, &img, &err) == 0,
           "gocryptfs: an image with a corrupted block 3 opens");
    capsa_error_free (&err);
    CHECK (img && capsa_crypt_read (img, got, 100, 3 * 4096 + 10, &err) < 0 && err->code == EBADMSG
               && strstr (err->msg, "block 3"),
           "gocryptfs: reading the corrupted block: EBADMSG naming block 3");
    capsa_error_free (&err);
    CHECK (img && capsa_crypt_read (img, got, 4096, 4 * 4096, NULL) == 4096 && memcmp (got, pt + 4 * 4096, 4096) == 0,
           "gocryptfs: the other blocks still read");
    capsa_crypt_close (img);
    img = NULL;
    close (fd);
    free (steal_ptr (&bad));

    /* Configurations capsa does not read, each with its reason. */
    {
        static const struct {
            const char *flags, *want;
        } cases[] = { { "[\"GCMIV128\", \"PlaintextNames\"]", "HKDF" },
                      { "[\"HKDF\", \"GCMIV128\", \"AESSIV\"]", "AESSIV" },
                      { "[\"HKDF\", \"XChaCha20Poly1305\"]", "XChaCha20Poly1305" },
                      { "[\"HKDF\", \"GCMIV128\", \"Teleport\"]", "unknown feature flag" } };
        for (size_t i = 0; i < ARRAY_SIZE (cases); i++) {
            cleanup_free char *name = xasprintf ("gocryptfs: FeatureFlags %s refused, naming %s", cases[i].flags,
                                                 cases[i].want);
            write_gc_conf (dir, "gc password", mk, cases[i].flags);
            bad = pack (dir, "-noD -noF", &outer_len);
            fd = embed (bad, outer_len, &off);
            CHECK (capsa_crypt_open (fd, off, outer_len, CAPSA_CRYPT_AUTO, "gc password", 11, 0, &img, &err) < 0
                       && err->code == ENOTSUP && strstr (err->msg, cases[i].want),
                   name);
            capsa_error_free (&err);
            capsa_crypt_close (img);
            img = NULL;
            close (fd);
            free (steal_ptr (&bad));
        }
    }
    /* No gocryptfs.conf; a truncated partition; not a squashfs at all. */
    {
        cleanup_free char *conf = xasprintf ("%s/gocryptfs.conf", dir);
        unlink (conf);
        bad = pack (dir, "-noD -noF", &outer_len);
        fd = embed (bad, outer_len, &off);
        CHECK (capsa_crypt_open (fd, off, outer_len, CAPSA_CRYPT_GOCRYPTFS, "gc password", 11, 0, &img, &err) < 0
                   && err->code == EBADMSG && strstr (err->msg, "gocryptfs.conf"),
               "gocryptfs: no gocryptfs.conf: EBADMSG naming it");
        capsa_error_free (&err);
        CHECK (capsa_crypt_open (fd, off, outer_len / 2, CAPSA_CRYPT_GOCRYPTFS, "gc password", 11, 0, &img, &err) < 0
                   && err->code == EBADMSG,
               "gocryptfs: a truncated partition: EBADMSG");
        capsa_error_free (&err);
        close (fd);
        free (steal_ptr (&bad));
        fd = embed (pt + 4, 8192, &off);
        CHECK (capsa_crypt_open (fd, off, 8192, CAPSA_CRYPT_GOCRYPTFS, "gc password", 11, 0, &img, &err) < 0
                   && err->code == EBADMSG,
               "gocryptfs: random bytes: EBADMSG");
        capsa_error_free (&err);
        close (fd);
    }
}

/* ---- capsa 0.1.0's LUKS2 images --------------------------------------------------------- */

static void
test_luks_legacy (void)
{
    cleanup_free char *tree = xasprintf ("%s/tree", workdir), *sq = xasprintf ("%s/legacy.sqfs", workdir);
    cleanup_free uint8_t *plain = NULL, *raw = NULL;
    struct capsa_crypt_image *img = NULL;
    capsa_error_t err = NULL;
    size_t plain_len = 0, n = 0;
    uint8_t vk[64], *got;
    uint64_t written = 0;
    int fd, p[2];

    /* A real squashfs of some random files (more than one sector). */
    if (mkdir (tree, 0755) < 0)
        abort ();
    for (int i = 0; i < 6; i++) {
        uint8_t data[7000];
        cleanup_free char *f = xasprintf ("%s/file%d", tree, i);
        random_fill (data, sizeof (data));
        put_file (f, data, sizeof (data));
    }
    CHECK (run_cmd ("mksquashfs %s %s -noappend -quiet -no-progress -all-root >/dev/null 2>&1", tree, sq) == 0
               && (plain = file_contents (sq, &plain_len)) != NULL && plain_len > 3 * 4096,
           "legacy: a squashfs of several sectors made with mksquashfs");
    if (plain == NULL)
        return;
    fd = make_container (plain, plain_len, CAPSA_KDF_PBKDF2, "old", &written, &err);
    CHECK (fd >= 0 && capsa_crypt_open (fd, 0, written, CAPSA_CRYPT_LUKS2, "old", 3, 0, &img, &err) == 0
               && !capsa_crypt_legacy_numbering (img),
           "legacy: an image capsa writes now is not taken for a 0.1.0 one");
    capsa_error_free (&err);
    if (img == NULL)
        return;
    {
        uint8_t rec[74];
        if (pipe (p) < 0 || capsa_crypt_write_record (img, p[1], NULL) < 0 || read (p[0], rec, 74) != 74)
            abort ();
        memcpy (vk, rec + 10, 64);
        explicit_bzero (rec, sizeof (rec));
    }
    close (p[0]);
    close (p[1]);
    capsa_crypt_close (img);
    img = NULL;

    /* Re-encrypt its data segment as 0.1.0 did: tweak = 4096-byte sector index. */
    raw = fd_contents (fd, &n);
    capsa_xts_crypt (vk, 64, false, 0, 8, 4096, raw + CAPSA_LUKS_HEADER_SIZE, raw + CAPSA_LUKS_HEADER_SIZE,
                     n - CAPSA_LUKS_HEADER_SIZE, NULL);
    capsa_xts_crypt (vk, 64, true, 0, 1, 4096, raw + CAPSA_LUKS_HEADER_SIZE, raw + CAPSA_LUKS_HEADER_SIZE,
                     n - CAPSA_LUKS_HEADER_SIZE, NULL);
    close (fd);
    fd = memfd_with (raw, n);
    got = xmalloc (plain_len);
    CHECK (capsa_crypt_open (fd, 0, n, CAPSA_CRYPT_AUTO, "old", 3, 0, &img, &err) == 0
               && capsa_crypt_legacy_numbering (img) && capsa_crypt_read (img, got, plain_len, 0, NULL) == (ssize_t) plain_len
               && memcmp (got, plain, plain_len) == 0,
           "legacy: a 0.1.0 image (4096-byte sectors numbered in 4096-byte units) is detected and reads right");
    capsa_error_free (&err);
    capsa_crypt_close (img);
    img = NULL;
    close (fd);

    /* Not a squashfs inside: nothing to detect, dm-crypt's numbering. */
    {
        uint8_t junk[3 * 4096];
        random_fill (junk, sizeof (junk));
        memcpy (junk, "hsqs", 4);
        fd = make_container (junk, sizeof (junk), CAPSA_KDF_PBKDF2, "old", &written, NULL);
        CHECK (fd >= 0 && capsa_crypt_open (fd, 0, written, CAPSA_CRYPT_AUTO, "old", 3, 0, &img, NULL) == 0
                   && !capsa_crypt_legacy_numbering (img) && capsa_crypt_read (img, got, sizeof (junk), 0, NULL) == (ssize_t) sizeof (junk)
                   && memcmp (got, junk, sizeof (junk)) == 0,
               "legacy: random data in 0.1.0's layout is read with dm-crypt's numbering");
        capsa_crypt_close (img);
        close (fd);
    }
    free (got);
}

/* ---- LUKS2 through the common interface ----------------------------------------------- */

static void
test_crypt_luks (void)
{
    static uint8_t pt[30 * 4096], got[sizeof (pt)];
    struct capsa_crypt_image *img = NULL, *img2 = NULL;
    capsa_error_t err = NULL;
    uint64_t written = 0;
    uint8_t rec[100];
    ssize_t n;
    int fd, p[2];
    enum capsa_crypt_format fmt = CAPSA_CRYPT_AUTO;

    random_fill (pt, sizeof (pt));
    memcpy (pt, "hsqs", 4);
    fd = make_container (pt, sizeof (pt), CAPSA_KDF_PBKDF2, "k", &written, NULL);
    CHECK (capsa_crypt_detect (fd, 0, written, &fmt, NULL) == 0 && fmt == CAPSA_CRYPT_LUKS2, "crypt: LUKS2 detected");
    CHECK (capsa_crypt_open (fd, 0, written, CAPSA_CRYPT_AUTO, "k", 1, 0, &img, &err) == 0
               && capsa_crypt_format (img) == CAPSA_CRYPT_LUKS2 && capsa_crypt_block_size (img) == 4096,
           "crypt: LUKS2 opens through the common interface");
    capsa_error_free (&err);
    if (img == NULL)
        return;
    CHECK (threads_read_ok (img, pt, sizeof (pt)), "crypt: LUKS2: 4 threads x 300 random reads");
    if (pipe (p) < 0)
        abort ();
    CHECK (capsa_crypt_write_record (img, p[1], NULL) == 0, "record: written for a LUKS2 image");
    close (p[1]);
    n = read (p[0], rec, sizeof (rec));
    close (p[0]);
    CHECK (n == 8 + 2 + 64 && rec[8] == CAPSA_CRYPT_LUKS2 && rec[9] == 64, "record: CAPSAKEY, format 1, 64-byte volume key");
    CHECK (n > 0 && capsa_crypt_open_record (fd, 0, written, rec, (size_t) n, &img2, NULL) == 0
               && capsa_crypt_read (img2, got, 5000, 100, NULL) == 5000 && memcmp (got, pt + 100, 5000) == 0,
           "record: opens the LUKS2 image");
    capsa_crypt_close (img2);
    img2 = NULL;
    CHECK (n > 10 && capsa_crypt_open_record (fd, 0, written, rec + 10, 64, &img2, NULL) == 0
               && capsa_crypt_read (img2, got, 5000, 100, NULL) == 5000 && memcmp (got, pt + 100, 5000) == 0,
           "record: a bare 64-byte volume key (capsa 0.1.0's hand-over) still opens it");
    capsa_crypt_close (img2);
    capsa_crypt_close (img);
    close (fd);
}

/* ---- --passphrase on standard input ---------------------------------------------------- */

static void
test_keyspec_stdin (void)
{
    struct capsa_keyspec k;
    capsa_error_t err = NULL;
    int saved = dup (STDIN_FILENO), p[2];
    char rest[32] = { 0 };

    if (saved < 0 || pipe (p) < 0)
        abort ();
    capsa_keyspec_scrub_environment ();
    write_all (p[1], "stdin pass\r\nfor the container\n", 30);
    close (p[1]);
    dup2 (p[0], STDIN_FILENO);
    close (p[0]);
    CHECK (capsa_keyspec_get (true, NULL, CAPSA_KEY_DECRYPT, &k, &err) == 0 && k.kind == CAPSA_KEY_PASSPHRASE
               && k.len == 10 && memcmp (k.data, "stdin pass", 10) == 0,
           "keyspec: --passphrase with a pipe on standard input reads one line (CR LF stripped)");
    capsa_keyspec_clear (&k);
    capsa_error_free (&err);
    CHECK (read (STDIN_FILENO, rest, sizeof (rest) - 1) == 18 && strcmp (rest, "for the container\n") == 0,
           "keyspec: the rest of standard input is left for the container");
    CHECK (capsa_keyspec_get (true, NULL, CAPSA_KEY_ENCRYPT, &k, &err) < 0 && err->code == ENOKEY
               && strstr (err->msg, "standard input"),
           "keyspec: --passphrase with standard input at its end: ENOKEY naming standard input");
    capsa_error_free (&err);
    if (pipe (p) < 0)
        abort ();
    write_all (p[1], "\n", 1);
    close (p[1]);
    dup2 (p[0], STDIN_FILENO);
    close (p[0]);
    CHECK (capsa_keyspec_get (true, NULL, CAPSA_KEY_ENCRYPT, &k, &err) < 0 && strstr (err->msg, "empty"),
           "keyspec: an empty line is an empty passphrase");
    capsa_error_free (&err);
    dup2 (saved, STDIN_FILENO);
    close (saved);
}

/* ---- key material from the environment ------------------------------------------------- */

static void
test_keyspec (void)
{
    struct capsa_keyspec k;
    capsa_error_t err = NULL;
    char path[] = "/tmp/capsa-test-pem.XXXXXX";
    int fd;

    capsa_keyspec_scrub_environment ();
    CHECK (capsa_keyspec_get (false, NULL, CAPSA_KEY_DECRYPT, &k, &err) == 0 && k.kind == CAPSA_KEY_NONE,
           "keyspec: nothing given: no key");
    setenv ("APPTAINER_ENCRYPTION_PASSPHRASE", "apptainer-pw", 1);
    CHECK (capsa_keyspec_get (false, NULL, CAPSA_KEY_DECRYPT, &k, &err) == 0 && k.kind == CAPSA_KEY_PASSPHRASE
               && k.len == 12 && memcmp (k.data, "apptainer-pw", 12) == 0
               && strcmp (k.source, "APPTAINER_ENCRYPTION_PASSPHRASE") == 0,
           "keyspec: APPTAINER_ENCRYPTION_PASSPHRASE");
    CHECK (getenv ("APPTAINER_ENCRYPTION_PASSPHRASE") == NULL, "keyspec: the variable is gone afterwards");
    capsa_keyspec_clear (&k);

    setenv ("SINGULARITY_ENCRYPTION_PASSPHRASE", "s", 1);
    setenv ("CAPSA_ENCRYPTION_PASSPHRASE", "capsa-pw", 1);
    CHECK (capsa_keyspec_get (false, NULL, CAPSA_KEY_DECRYPT, &k, &err) == 0 && k.len == 8
               && memcmp (k.data, "capsa-pw", 8) == 0,
           "keyspec: CAPSA_ spelling wins");
    CHECK (getenv ("SINGULARITY_ENCRYPTION_PASSPHRASE") == NULL, "keyspec: every spelling is wiped");
    capsa_keyspec_clear (&k);

    fd = mkstemp (path);
    write_all (fd, "-----BEGIN PUBLIC KEY-----\n", 27);
    close (fd);
    setenv ("CAPSA_ENCRYPTION_PASSPHRASE", "pw", 1);
    setenv ("SINGULARITY_ENCRYPTION_PEM_DATA", "-----BEGIN X-----", 1);
    CHECK (capsa_keyspec_get (false, NULL, CAPSA_KEY_DECRYPT, &k, &err) == 0 && k.kind == CAPSA_KEY_PEM
               && strcmp (k.data, "-----BEGIN X-----") == 0,
           "keyspec: PEM data in the environment wins over a passphrase");
    capsa_keyspec_clear (&k);
    setenv ("CAPSA_ENCRYPTION_PASSPHRASE", "pw", 1);
    CHECK (capsa_keyspec_get (false, path, CAPSA_KEY_DECRYPT, &k, &err) == 0 && k.kind == CAPSA_KEY_PEM
               && k.len == 27 && strcmp (k.source, path) == 0,
           "keyspec: --pem-path wins over the environment");
    capsa_keyspec_clear (&k);
    setenv ("CAPSA_ENCRYPTION_PEM_PATH", path, 1);
    CHECK (capsa_keyspec_get (false, NULL, CAPSA_KEY_DECRYPT, &k, &err) == 0 && k.kind == CAPSA_KEY_PEM && k.len == 27,
           "keyspec: CAPSA_ENCRYPTION_PEM_PATH");
    capsa_keyspec_clear (&k);
    unlink (path);
    setenv ("CAPSA_ENCRYPTION_PEM_PATH", path, 1);
    CHECK (capsa_keyspec_get (false, NULL, CAPSA_KEY_DECRYPT, &k, &err) < 0 && strstr (err->msg, path),
           "keyspec: missing PEM file: error naming it");
    capsa_error_free (&err);
    setenv ("CAPSA_ENCRYPTION_PASSPHRASE", "", 1);
    CHECK (capsa_keyspec_get (false, NULL, CAPSA_KEY_DECRYPT, &k, &err) < 0 && strstr (err->msg, "empty"),
           "keyspec: empty passphrase variable refused");
    capsa_error_free (&err);
    CHECK (capsa_keyspec_get (true, path, CAPSA_KEY_DECRYPT, &k, &err) < 0 && strstr (err->msg, "together"),
           "keyspec: --passphrase with --pem-path refused");
    capsa_error_free (&err);
}

/* ---- encrypted SIF partitions -------------------------------------------------------------- */

static char tmpdir[] = "/tmp/capsa-test-crypt.XXXXXX";

static int
rm_cb (const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void) s;
    (void) f;
    (void) w;
    return remove (p);
}

static void
test_sif (void)
{
    static uint8_t sq[20000], got[20000];
    EVP_PKEY *k = EVP_PKEY_Q_keygen (NULL, NULL, "RSA", (size_t) 2048);
    cleanup_free char *pubpem = pem_of (k, EVP_PKEY_PUBLIC_KEY, "type-specific", NULL);
    cleanup_free char *privpem = pem_of (k, EVP_PKEY_KEYPAIR, "type-specific", NULL);
    cleanup_free char *path = NULL;
    struct capsa_keyspec pw = { CAPSA_KEY_PASSPHRASE, NULL, 6, (char *) "test" };
    struct capsa_keyspec pub = { CAPSA_KEY_PEM, pubpem, strlen (pubpem), (char *) "pub.pem" };
    struct capsa_keyspec priv = { CAPSA_KEY_PEM, privpem, strlen (privpem), (char *) "priv.pem" };
    struct capsa_keyspec none = { CAPSA_KEY_NONE, NULL, 0, NULL };
    struct capsa_encrypt_opts opts = { .arch = "amd64" };
    struct sif_image *img = NULL;
    const struct sif_descriptor *d = NULL, *msgd = NULL;
    struct sif_partition pi;
    struct capsa_crypt_image *v = NULL;
    capsa_error_t err = NULL;
    uint32_t id = 0;
    int in;

    if (mkdtemp (tmpdir) == NULL)
        abort ();
    random_fill (sq, sizeof (sq));
    memcpy (sq, "hsqs", 4);
    pw.data = (char *) "sesame";

    /* Passphrase image. */
    path = xasprintf ("%s/pw.sif", tmpdir);
    if (sif_create (path, NULL, NULL) < 0 || sif_open (path, true, &img, NULL) < 0)
        abort ();
    in = memfd_with (sq, sizeof (sq));
    CHECK (capsa_encrypt_write_partition (img, in, &pw, &opts, &id, &err) == 0, "sif: encrypted partition written");
    close (in);
    if (err) {
        printf ("# %s\n", err->msg);
        capsa_error_free (&err);
    }
    CHECK (sif_find_primary_partition (img, &d, NULL) == 0 && d->id == id && sif_get_partition (d, &pi, NULL) == 0
               && pi.fstype == SIF_FS_ENCRYPTED_SQUASHFS && pi.parttype == SIF_PART_PRIMSYS
               && strcmp (sif_arch_name (pi.arch), "amd64") == 0 && d->group == 1,
           "sif: partition is Encrypted squashfs / primary system / amd64, group 1");
    CHECK (d && (uint64_t) d->size == CAPSA_LUKS_HEADER_SIZE + 5 * 4096, "sif: partition size = header + padded data");
    CHECK (d && capsa_sif_find_key_message (img, d, &msgd, NULL) == 0 && msgd == NULL,
           "sif: a passphrase image has no key message");
    CHECK (d && capsa_sif_crypt_open (img, d, &pw, &v, &err) == 0 && capsa_crypt_read (v, got, sizeof (got), 0, NULL)
               == (ssize_t) sizeof (got) && memcmp (got, sq, sizeof (sq)) == 0,
           "sif: opens with the passphrase and reads back");
    capsa_error_free (&err);
    capsa_crypt_close (v);
    v = NULL;
    CHECK (d && capsa_sif_crypt_open (img, d, &none, &v, &err) < 0 && err->code == ENOKEY
               && strstr (err->msg, "--passphrase"),
           "sif: no key: ENOKEY naming --passphrase");
    capsa_error_free (&err);
    {
        struct capsa_keyspec wrong = pw;
        wrong.data = (char *) "sesamE";
        CHECK (d && capsa_sif_crypt_open (img, d, &wrong, &v, &err) < 0 && err->code == EKEYREJECTED
                   && strcmp (err->msg, "the passphrase does not open the image") == 0,
               "sif: wrong passphrase: 'the passphrase does not open the image'");
    }
    CHECK (d && capsa_sif_crypt_open (img, d, &priv, &v, &err) < 0 && strstr (err->msg, "--passphrase"),
           "sif: an RSA key for a passphrase image: error naming --passphrase");
    capsa_error_free (&err);
    {
        /* Not squashfs: the image is left as it was. */
        size_t before = sif_descriptor_count (img);
        struct sif_image *img2 = NULL;
        cleanup_free char *p2 = xasprintf ("%s/bad.sif", tmpdir);
        int bad = memfd_with ("not squashfs", 12);
        if (sif_create (p2, NULL, NULL) < 0 || sif_open (p2, true, &img2, NULL) < 0)
            abort ();
        CHECK (capsa_encrypt_write_partition (img2, bad, &pw, &opts, NULL, &err) < 0
                   && strstr (err->msg, "not a squashfs") && sif_descriptor_count (img2) == 0,
               "sif: a non-squashfs input fails and adds nothing");
        capsa_error_free (&err);
        close (bad);
        sif_close (img2);
        CHECK (capsa_encrypt_write_partition (img, -1, &none, &opts, NULL, &err) < 0 && err->code == ENOKEY
                   && sif_descriptor_count (img) == before,
               "sif: writing without a key fails");
        capsa_error_free (&err);
    }
    sif_close (img);
    img = NULL;

    /* RSA image. */
    free (path);
    path = xasprintf ("%s/rsa.sif", tmpdir);
    if (sif_create (path, NULL, NULL) < 0 || sif_open (path, true, &img, NULL) < 0)
        abort ();
    in = memfd_with (sq, sizeof (sq));
    CHECK (capsa_encrypt_write_partition (img, in, &pub, &opts, &id, &err) == 0, "sif: RSA-encrypted partition written");
    close (in);
    capsa_error_free (&err);
    d = NULL;
    msgd = NULL;
    if (sif_find_primary_partition (img, &d, NULL) == 0)
        capsa_sif_find_key_message (img, d, &msgd, NULL);
    {
        struct sif_crypto_message cm = { 0 };
        CHECK (msgd && sif_get_crypto_message (msgd, &cm, NULL) == 0 && cm.format == SIF_FORMAT_PEM
                   && cm.message == SIF_MESSAGE_RSA_OAEP && msgd->link == id && !msgd->link_is_group,
               "sif: cryptographic message PEM / RSA-OAEP linked to the partition");
    }
    CHECK (d && capsa_sif_crypt_open (img, d, &priv, &v, &err) == 0 && capsa_crypt_read (v, got, 100, 19900, NULL) == 100
               && memcmp (got, sq + 19900, 100) == 0,
           "sif: opens with the private key");
    capsa_error_free (&err);
    capsa_crypt_close (v);
    v = NULL;
    CHECK (d && capsa_sif_crypt_open (img, d, &pub, &v, &err) < 0 && strstr (err->msg, "public key"),
           "sif: the public key cannot open it");
    capsa_error_free (&err);
    CHECK (d && capsa_sif_crypt_open (img, d, &none, &v, &err) < 0 && err->code == ENOKEY && strstr (err->msg, "--pem-path"),
           "sif: no key for an RSA image: ENOKEY naming --pem-path");
    capsa_error_free (&err);
    CHECK (d && capsa_sif_crypt_open (img, d, &pw, &v, &err) < 0 && err->code == EKEYREJECTED
               && strstr (err->msg, "--pem-path"),
           "sif: a passphrase for an RSA image: says to use --pem-path");
    capsa_error_free (&err);
    sif_close (img);
    EVP_PKEY_free (k);
    nftw (tmpdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* The VmFlags line of the mapping holding p, from /proc/self/smaps
 * (static buffer), or NULL. */
static const char *
vm_flags_of (const void *p)
{
    static char flags[512];
    char line[512];
    uintptr_t a = (uintptr_t) p;
    bool in = false;
    FILE *f = fopen ("/proc/self/smaps", "r");

    if (f == NULL)
        return NULL;
    flags[0] = '\0';
    while (fgets (line, sizeof (line), f)) {
        uintptr_t l, h;
        if (sscanf (line, "%" SCNxPTR "-%" SCNxPTR " ", &l, &h) == 2 && strchr (line, '-') < strchr (line, ' ')) {
            in = a >= l && a < h;
        } else if (in && strncmp (line, "VmFlags:", 8) == 0) {
            memcpy (flags, line + 8, strlen (line + 8) + 1);
            break;
        }
    }
    fclose (f);
    return flags[0] ? flags : NULL;
}

static void
test_secmem (void)
{
    bool locked = false;
    uint8_t *p = capsa_secure_alloc (100, &locked);
    int zero = 1;
    for (int i = 0; i < 100; i++)
        zero &= p[i] == 0;
    CHECK (zero && capsa_secure_size (p) == 100, "secmem: zeroed buffer of the size asked");
    CHECK (locked, "secmem: the buffer is locked in memory");
    CHECK (vm_flags_of (p) != NULL && strstr (vm_flags_of (p), " dd") != NULL,
           "secmem: the buffer's pages are excluded from core dumps (VmFlags dd)");
    memset (p, 0x5a, 100);
    {
        uintptr_t page = (uintptr_t) p & ~(uintptr_t) (sysconf (_SC_PAGESIZE) - 1);
        unsigned char vec[1];
        capsa_secure_free (p);
        capsa_secure_free (NULL);
        errno = 0;
        CHECK (mincore ((void *) page, 1, vec) < 0 && errno == ENOMEM, "secmem: freeing unmaps the buffer's pages");
    }
}

int
main (void)
{
    test_secmem ();
    test_xts ();
    test_luks_roundtrip ();
    test_luks_input_errors ();
    test_luks_argon2 ();
    test_luks_other_cipher ();
    test_luks_cryptsetup_defaults ();
    test_rsa ();
    test_rsa_chunks ();
    test_keyspec ();
    test_keyspec_stdin ();
    test_sif ();
    if (mkdtemp (workdir) == NULL)
        abort ();
    test_crypt_luks ();
    test_luks_legacy ();
    test_gocryptfs ();
    nftw (workdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    return tap_done ();
}

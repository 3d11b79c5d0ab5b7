/* LUKS2 containers without device-mapper.
 *
 * Creating: libcryptsetup formats a LUKS2 header on a memfd the size of
 * the header area (used as a detached header), with our own random volume
 * key and one keyslot; those bytes are written out, then the plaintext is
 * encrypted with OpenSSL sector by sector as dm-crypt would: the XTS tweak
 * of a sector is its offset from the start of the data segment in 512-byte
 * units, plus the segment's iv_tweak, whatever the sector size.
 *
 * capsa 0.1.0 numbered 4096-byte sectors in 4096-byte units (tweak n
 * instead of 8n), which dm-crypt does not read.  Such images are still
 * opened: a container with 0.1.0's exact layout whose plaintext is not a
 * plausible squashfs under dm-crypt's numbering but is one under the old
 * numbering is read with the old numbering (capsa_luks_legacy_numbering()
 * tells, so that the caller can say to re-encrypt it).
 *
 * Opening: the header area of the container is copied into a memfd and
 * loaded by libcryptsetup from there, which checks checksums and JSON and
 * runs the keyslot KDF; the volume key comes back into locked memory and
 * the data is read with pread() and decrypted with OpenSSL.  libcryptsetup
 * never sees the data segment, so it never tries to activate anything.
 *
 * libcryptsetup's own messages go to a per-thread buffer (never to the
 * terminal) and are appended to our errors; they never contain secrets. */
#include "crypt/crypt_private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libcryptsetup.h>

#include "lib/utils.h"

struct capsa_luks_volume {
    int fd;
    uint64_t part_off;    /* container start in fd */
    uint64_t data_off;    /* data segment, from part_off */
    uint64_t data_size;   /* plaintext bytes (whole sectors) */
    uint32_t sector_size;
    uint64_t iv_tweak;    /* tweak of the segment's first sector */
    uint32_t tweak_step;  /* tweak units per sector: sector_size / 512, or 1 (capsa 0.1.0) */
    bool legacy;          /* capsa 0.1.0's numbering */
    bool have_kdf;
    struct capsa_kdf_cost kdf;
    uint8_t *key;         /* secure buffer */
    size_t keylen;
};

/* ---- libcryptsetup messages ------------------------------------------------ */

static _Thread_local char cs_msg[512];

static void
cs_log (int level, const char *msg, void *usrptr)
{
    (void) usrptr;
    if (level != CRYPT_LOG_ERROR || msg == NULL)
        return;
    snprintf (cs_msg, sizeof (cs_msg), "%s", msg);
    for (size_t n = strlen (cs_msg); n > 0 && (cs_msg[n - 1] == '\n' || cs_msg[n - 1] == '.'); n--)
        cs_msg[n - 1] = '\0';
}

static void
cs_setup_once (void)
{
    crypt_set_log_callback (NULL, cs_log, NULL);
    crypt_set_debug_level (CRYPT_DEBUG_NONE);
}

static void
cs_begin (void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once (&once, cs_setup_once);
    cs_msg[0] = '\0';
}

/* " (libcryptsetup: MSG)" or "" */
static const char *
cs_detail (void)
{
    static _Thread_local char buf[sizeof (cs_msg) + 32];
    if (cs_msg[0] == '\0')
        return "";
    snprintf (buf, sizeof (buf), " (libcryptsetup: %s)", cs_msg);
    return buf;
}

static void
cs_free (struct crypt_device **cd)
{
    if (*cd)
        crypt_free (*cd);
}
#define cleanup_crypt __attribute__ ((cleanup (cs_free)))

static int
header_memfd (char *path, size_t pathlen, capsa_error_t *err)
{
    int fd = memfd_create ("capsa-luks-header", MFD_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "memfd_create");
    snprintf (path, pathlen, "/proc/self/fd/%d", fd);
    return fd;
}

/* ---- Creating ------------------------------------------------------------------ */

/* A LUKS2 header area for volume key vk with one keyslot for secret, as
 * the contents of a new memfd (CAPSA_LUKS_HEADER_SIZE bytes). */
static int
make_header (const uint8_t *vk, enum capsa_kdf kdf, const void *secret, size_t secret_len, capsa_error_t *err)
{
    char path[64];
    cleanup_close int fd = header_memfd (path, sizeof (path), err);
    cleanup_crypt struct crypt_device *cd = NULL;
    struct crypt_pbkdf_type pbkdf = { 0 };
    struct crypt_params_luks2 params = { 0 };
    int r;

    if (fd < 0)
        return -1;
    if (ftruncate (fd, CAPSA_LUKS_HEADER_SIZE) < 0)
        return capsa_error_make (err, errno, "cannot size the LUKS2 header");
    cs_begin ();
    if ((r = crypt_init (&cd, path)) < 0)
        return capsa_error_make (err, -r, "cannot create a LUKS2 header%s", cs_detail ());
    /* Two 16 KiB JSON copies and a keyslots area up to 1 MiB: room for
     * three keyslots of a 512-bit key (258048 bytes each), and a data
     * offset of 1 MiB instead of cryptsetup's default 16 MiB. */
    if ((r = crypt_set_metadata_size (cd, CAPSA_LUKS_METADATA_SIZE,
                                      CAPSA_LUKS_HEADER_SIZE - 2 * CAPSA_LUKS_METADATA_SIZE)) < 0)
        return capsa_error_make (err, -r, "cannot size the LUKS2 metadata%s", cs_detail ());
    /* Fixed costs, no benchmark: the cost of opening an image must not
     * depend on how fast the machine that built it was. */
    pbkdf.hash = "sha256";
    pbkdf.flags = CRYPT_PBKDF_NO_BENCHMARK;
    if (kdf == CAPSA_KDF_ARGON2ID) {
        pbkdf.type = CRYPT_KDF_ARGON2ID;
        pbkdf.iterations = CAPSA_ARGON2_TIME;
        pbkdf.max_memory_kb = CAPSA_ARGON2_MEMORY_KB;
        pbkdf.parallel_threads = CAPSA_ARGON2_PARALLEL;
    } else {
        pbkdf.type = CRYPT_KDF_PBKDF2;
        pbkdf.iterations = CAPSA_PBKDF2_ITERATIONS;
    }
    params.pbkdf = &pbkdf;
    params.sector_size = CAPSA_LUKS_SECTOR_SIZE;
    params.data_alignment = CAPSA_LUKS_HEADER_SIZE / 512;
    if ((r = crypt_format (cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, (const char *) vk,
                           CAPSA_LUKS_VOLUME_KEY_SIZE, &params))
        < 0)
        return capsa_error_make (err, -r, "cannot format the LUKS2 header%s", cs_detail ());
    if ((r = crypt_keyslot_add_by_volume_key (cd, CRYPT_ANY_SLOT, (const char *) vk, CAPSA_LUKS_VOLUME_KEY_SIZE,
                                              secret, secret_len))
        < 0)
        return capsa_error_make (err, -r, "cannot add the LUKS2 keyslot%s", cs_detail ());
    if (crypt_get_data_offset (cd) * 512 != CAPSA_LUKS_HEADER_SIZE
        || crypt_get_sector_size (cd) != (int) CAPSA_LUKS_SECTOR_SIZE)
        return capsa_error_code (err, EINVAL, "libcryptsetup made an unexpected layout (data offset %" PRIu64
                                 " sectors, sector size %d)",
                                 crypt_get_data_offset (cd), crypt_get_sector_size (cd));
    return steal_fd (&fd);
}

/* Fill buf with up to len bytes from fd, stopping early only at end of file. */
static ssize_t
read_full (int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = read (fd, (char *) buf + done, len - done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        done += (size_t) r;
    }
    return (ssize_t) done;
}

enum { CHUNK = 1 << 20 }; /* a multiple of every sector size */

int
capsa_luks_encrypt_stream (int in_fd, uint64_t in_len, int out_fd, enum capsa_kdf kdf, const void *secret,
                           size_t secret_len, unsigned flags, uint64_t *written, capsa_error_t *err)
{
    uint8_t *vk = NULL;
    unsigned char *buf = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    cleanup_close int hfd = -1;
    uint64_t total_in = 0, total_out = 0, sector = 0;
    int ret = -1;

    if (secret == NULL || secret_len == 0)
        return capsa_error_code (err, EINVAL, "the passphrase is empty");
    if (secret_len > CAPSA_SECRET_MAX)
        return capsa_error_code (err, EINVAL, "the passphrase is longer than %u bytes", CAPSA_SECRET_MAX);

    vk = capsa_secure_alloc (CAPSA_LUKS_VOLUME_KEY_SIZE, NULL);
    if (capsa_random_bytes (vk, CAPSA_LUKS_VOLUME_KEY_SIZE, err) < 0)
        goto out;
    if ((hfd = make_header (vk, kdf, secret, secret_len, err)) < 0)
        goto out;
    if (xts_ctx_new (vk, CAPSA_LUKS_VOLUME_KEY_SIZE, true, &ctx, err) < 0)
        goto out;
    /* The key schedule is in ctx now; the raw key is not needed. */
    capsa_secure_free (steal_ptr (&vk));

    buf = xmalloc (CHUNK);
    /* The header area: public bytes, copied as they are. */
    for (uint64_t off = 0; off < CAPSA_LUKS_HEADER_SIZE; off += CHUNK) {
        size_t n = CAPSA_LUKS_HEADER_SIZE - off < CHUNK ? (size_t) (CAPSA_LUKS_HEADER_SIZE - off) : CHUNK;
        if (pread_all (hfd, buf, n, (off_t) off) < 0) {
            capsa_error_make (err, errno, "cannot read the LUKS2 header back");
            goto out;
        }
        if (write_all (out_fd, buf, n) < 0) {
            capsa_error_make (err, errno, "cannot write the encrypted image");
            goto out;
        }
        total_out += n;
    }

    for (;;) {
        size_t want = CHUNK, n;
        ssize_t r;

        if (in_len != CAPSA_LUKS_TO_EOF && in_len - total_in < want)
            want = (size_t) (in_len - total_in);
        if (want == 0)
            break;
        r = read_full (in_fd, buf, want);
        if (r < 0) {
            capsa_error_make (err, errno, "cannot read the squashfs image");
            goto out;
        }
        if (r == 0)
            break;
        if (total_in == 0 && (flags & CAPSA_LUKS_EXPECT_SQUASHFS) && (r < 4 || memcmp (buf, "hsqs", 4) != 0)) {
            capsa_error_code (err, EINVAL, "the file system to encrypt is not a squashfs image");
            goto out;
        }
        total_in += (uint64_t) r;
        n = (size_t) r;
        if (n % CAPSA_LUKS_SECTOR_SIZE != 0) { /* only the last read can be short */
            size_t pad = CAPSA_LUKS_SECTOR_SIZE - n % CAPSA_LUKS_SECTOR_SIZE;
            memset (buf + n, 0, pad);
            n += pad;
        }
        if (xts_ctx_sectors (ctx, sector * (CAPSA_LUKS_SECTOR_SIZE / 512), CAPSA_LUKS_SECTOR_SIZE / 512,
                             CAPSA_LUKS_SECTOR_SIZE, buf, buf, n, err)
            < 0)
            goto out;
        if (write_all (out_fd, buf, n) < 0) {
            capsa_error_make (err, errno, "cannot write the encrypted image");
            goto out;
        }
        sector += n / CAPSA_LUKS_SECTOR_SIZE;
        total_out += n;
        if ((size_t) r < want)
            break; /* end of file */
    }
    if (in_len != CAPSA_LUKS_TO_EOF && total_in != in_len) {
        capsa_error_code (err, EIO, "the squashfs image ended after %" PRIu64 " of %" PRIu64 " bytes", total_in,
                          in_len);
        goto out;
    }
    if (total_in == 0) {
        capsa_error_code (err, EINVAL, "the file system to encrypt is empty");
        goto out;
    }
    if (written)
        *written = total_out;
    ret = 0;
out:
    if (buf) {
        explicit_bzero (buf, CHUNK);
        free (buf);
    }
    EVP_CIPHER_CTX_free (ctx);
    capsa_secure_free (vk);
    return ret;
}

/* ---- Opening ------------------------------------------------------------------- */

static uint64_t
be64 (const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Parse a decimal JSON string value ("1015808") of obj[key]. */
static bool
json_u64 (struct json_object *obj, const char *key, uint64_t *out)
{
    struct json_object *v;
    const char *s;
    char *end;
    unsigned long long n;

    if (!json_object_object_get_ex (obj, key, &v) || !json_object_is_type (v, json_type_string))
        return false;
    s = json_object_get_string (v);
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    n = strtoull (s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = n;
    return true;
}

/* The bytes libcryptsetup needs to load the header: both JSON areas and
 * the keyslots area (2 * hdr_size + keyslots_size), from the first intact
 * header copy: the primary at 0, else a secondary at one of the offsets
 * LUKS2 allows.  Only sizes are taken from here; libcryptsetup checks
 * everything (checksums included) on the copy. */
static int
header_areas_size (int fd, uint64_t off, uint64_t size, uint64_t *out, capsa_error_t *err)
{
    static const uint64_t offsets[] = { 0, 0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000,
                                        0x200000, 0x400000 };
    unsigned char bin[4096];

    for (size_t i = 0; i < ARRAY_SIZE (offsets); i++) {
        uint64_t hdr_size, keyslots = 0, areas;
        cleanup_free char *json = NULL;
        struct json_object *root, *config;
        bool ok;

        if (offsets[i] + sizeof (bin) > size)
            break;
        if (pread_all (fd, bin, sizeof (bin), (off_t) (off + offsets[i])) < 0)
            return capsa_error_make (err, errno, "cannot read the LUKS2 header");
        if (memcmp (bin, i == 0 ? "LUKS\xba\xbe" : "SKUL\xba\xbe", 6) != 0 || bin[6] != 0 || bin[7] != 2)
            continue;
        hdr_size = be64 (bin + 8);
        if (hdr_size < 0x4000 || hdr_size > 0x400000 || (hdr_size & (hdr_size - 1)) != 0
            || (i > 0 && hdr_size != offsets[i]) || offsets[i] + hdr_size > size)
            continue;
        json = xmalloc (hdr_size - sizeof (bin) + 1);
        if (pread_all (fd, json, hdr_size - sizeof (bin), (off_t) (off + offsets[i] + sizeof (bin))) < 0)
            return capsa_error_make (err, errno, "cannot read the LUKS2 header");
        json[hdr_size - sizeof (bin)] = '\0';
        root = json_tokener_parse (json);
        ok = root && json_object_object_get_ex (root, "config", &config) && json_u64 (config, "keyslots_size", &keyslots);
        json_object_put (root);
        /* LUKS2 caps the keyslots area at 128 MiB. */
        if (!ok || keyslots % 4096 != 0 || keyslots > (UINT64_C (128) << 20))
            continue;
        areas = 2 * hdr_size + keyslots;
        if (areas > size)
            return capsa_error_code (err, EBADMSG, "the LUKS2 header area (%" PRIu64
                                     " bytes) is larger than the encrypted partition (%" PRIu64 " bytes)",
                                     areas, size);
        *out = areas;
        return 0;
    }
    return capsa_error_code (err, EBADMSG, "the encrypted partition holds no valid LUKS2 header (corrupted, or not "
                                           "a LUKS2 container)");
}

/* Copy [off, off+len) of fd into the memfd mfd. */
static int
copy_range (int fd, uint64_t off, uint64_t len, int mfd, capsa_error_t *err)
{
    cleanup_free char *buf = xmalloc (CHUNK);
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < CHUNK ? (size_t) (len - done) : CHUNK;
        if (pread_all (fd, buf, n, (off_t) (off + done)) < 0)
            return capsa_error_make (err, errno, "cannot read the LUKS2 header");
        if (write_all (mfd, buf, n) < 0)
            return capsa_error_make (err, errno, "cannot copy the LUKS2 header");
        done += n;
    }
    return 0;
}

/* What the loaded header says about its data segment, from libcryptsetup's
 * own (validated) JSON: exactly one plain crypt segment, no integrity, no
 * pending reencryption.  *seg_size: UINT64_MAX for dynamic; *iv_tweak: the
 * segment's IV offset (512-byte units). */
static int
check_segment (struct crypt_device *cd, uint64_t *seg_size, uint64_t *iv_tweak, capsa_error_t *err)
{
    const char *text = NULL;
    struct json_object *root, *segs, *seg, *v, *config, *req;
    int ret = -1;

    if (crypt_dump_json (cd, &text, 0) < 0 || text == NULL)
        return capsa_error_code (err, EBADMSG, "cannot read the LUKS2 metadata%s", cs_detail ());
    root = json_tokener_parse (text);
    if (root == NULL || !json_object_object_get_ex (root, "segments", &segs)
        || !json_object_is_type (segs, json_type_object)) {
        capsa_error_code (err, EBADMSG, "the LUKS2 metadata has no segments");
        goto out;
    }
    if (json_object_object_length (segs) != 1 || !json_object_object_get_ex (segs, "0", &seg)) {
        capsa_error_code (err, ENOTSUP, "the LUKS2 container has %d data segments (reencryption in progress?); "
                          "only one is supported", json_object_object_length (segs));
        goto out;
    }
    if (!json_object_object_get_ex (seg, "type", &v) || strcmp (json_object_get_string (v), "crypt") != 0) {
        capsa_error_code (err, ENOTSUP, "the LUKS2 data segment is not of type crypt");
        goto out;
    }
    if (json_object_object_get_ex (seg, "integrity", &v)) {
        capsa_error_code (err, ENOTSUP, "LUKS2 integrity protection (dm-integrity) is not supported");
        goto out;
    }
    *iv_tweak = 0;
    if (json_object_object_get_ex (seg, "iv_tweak", &v) && !json_u64 (seg, "iv_tweak", iv_tweak)) {
        capsa_error_code (err, EBADMSG, "the LUKS2 data segment's iv_tweak is invalid");
        goto out;
    }
    if (json_object_object_get_ex (root, "config", &config) && json_object_object_get_ex (config, "requirements", &req)
        && json_object_object_get_ex (req, "mandatory", &v) && json_object_array_length (v) > 0) {
        capsa_error_code (err, ENOTSUP, "the LUKS2 container has mandatory requirements (%s) capsa does not support",
                          json_object_to_json_string (v));
        goto out;
    }
    if (!json_object_object_get_ex (seg, "size", &v)) {
        capsa_error_code (err, EBADMSG, "the LUKS2 data segment has no size");
        goto out;
    }
    if (strcmp (json_object_get_string (v), "dynamic") == 0)
        *seg_size = UINT64_MAX;
    else if (!json_u64 (seg, "size", seg_size)) {
        capsa_error_code (err, EBADMSG, "the LUKS2 data segment size is invalid");
        goto out;
    }
    ret = 0;
out:
    json_object_put (root);
    return ret;
}

/* ---- What opening costs, and which numbering ------------------------------------ */

/* The KDF of keyslot `slot`, which opened v, and the time it took. */
static void
kdf_cost_of (struct crypt_device *cd, int slot, const struct timespec *t0, const struct timespec *t1,
             struct capsa_luks_volume *v)
{
    struct crypt_pbkdf_type pbkdf;

    memset (&pbkdf, 0, sizeof (pbkdf));
    if (crypt_keyslot_get_pbkdf (cd, slot, &pbkdf) < 0 || pbkdf.type == NULL)
        return;
    snprintf (v->kdf.type, sizeof (v->kdf.type), "%s", pbkdf.type);
    v->kdf.memory_kb = pbkdf.max_memory_kb;
    v->kdf.iterations = pbkdf.iterations;
    v->kdf.parallel = pbkdf.parallel_threads;
    v->kdf.seconds = (double) (t1->tv_sec - t0->tv_sec) + (double) (t1->tv_nsec - t0->tv_nsec) / 1e9;
    v->have_kdf = true;
}

static uint64_t
le_u (const unsigned char *p, int n)
{
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--)
        x = (x << 8) | p[i];
    return x;
}

/* Is the metadata block at plaintext offset pos, with its 2-byte header,
 * inside [min, end)? */
static bool
meta_block_ok (struct capsa_luks_volume *v, uint64_t pos, uint64_t min, uint64_t end)
{
    unsigned char h[2];
    uint64_t n;

    if (pos < min || pos + 2 > end || capsa_luks_read (v, h, 2, pos, NULL) != 2)
        return false;
    n = le_u (h, 2) & 0x7fff;
    return n >= 1 && n <= 8192 && pos + 2 + n <= end;
}

/* Does the plaintext, read with v's current numbering, start with a
 * squashfs 4.0 whose tables are where its superblock says?  Random bytes
 * (the wrong numbering decrypts every sector after the first to noise)
 * pass with a probability of about 2^-30. */
static bool
squashfs_plausible (struct capsa_luks_volume *v)
{
    unsigned char sb[96], ptr[8];
    uint64_t used, id_start, inode_start, dir_start, id0;

    if (capsa_luks_read (v, sb, sizeof (sb), 0, NULL) != (ssize_t) sizeof (sb) || memcmp (sb, "hsqs", 4) != 0
        || le_u (sb + 28, 2) != 4)
        return false;
    used = le_u (sb + 40, 8);
    id_start = le_u (sb + 48, 8);
    inode_start = le_u (sb + 64, 8);
    dir_start = le_u (sb + 72, 8);
    if (used > v->data_size || id_start < 96 || id_start + 8 > used || inode_start < 96 || dir_start < inode_start
        || dir_start >= used)
        return false;
    if (capsa_luks_read (v, ptr, 8, id_start, NULL) != 8)
        return false;
    id0 = le_u (ptr, 8);
    return meta_block_ok (v, inode_start, 96, dir_start) && meta_block_ok (v, dir_start, inode_start, used)
           && meta_block_ok (v, id0, 96, id_start);
}

int
capsa_luks_open (int fd, uint64_t off, uint64_t size, const void *secret, size_t secret_len, unsigned flags,
                 struct capsa_luks_volume **out, capsa_error_t *err)
{
    char path[64];
    cleanup_close int mfd = -1;
    cleanup_crypt struct crypt_device *cd = NULL;
    struct capsa_luks_volume *v = NULL;
    uint64_t areas, seg_size = UINT64_MAX, iv_tweak = 0, data_off;
    const char *cipher, *mode;
    struct stat st;
    size_t keylen;
    int r, ss;

    if (secret == NULL || secret_len == 0)
        return capsa_error_code (err, ENOKEY, "no key given for the encrypted image");
    if (fstat (fd, &st) < 0)
        return capsa_error_make (err, errno, "fstat");
    if (off > INT64_MAX || size > INT64_MAX - off
        || (S_ISREG (st.st_mode) && off + size > (uint64_t) st.st_size))
        return capsa_error_code (err, EINVAL, "the encrypted partition (offset %" PRIu64 ", size %" PRIu64
                                 ") lies outside the image file",
                                 off, size);
    if (header_areas_size (fd, off, size, &areas, err) < 0)
        return -1;
    if ((mfd = header_memfd (path, sizeof (path), err)) < 0)
        return -1;
    if (copy_range (fd, off, areas, mfd, err) < 0)
        return -1;

    cs_begin ();
    if ((r = crypt_init (&cd, path)) < 0)
        return capsa_error_make (err, -r, "cannot read the LUKS2 header%s", cs_detail ());
    if ((r = crypt_load (cd, CRYPT_LUKS2, NULL)) < 0)
        return capsa_error_code (err, EBADMSG, "the LUKS2 header of the encrypted partition is corrupted or "
                                 "invalid%s", cs_detail ());
    cipher = crypt_get_cipher (cd);
    mode = crypt_get_cipher_mode (cd);
    r = crypt_get_volume_key_size (cd);
    if (cipher == NULL || mode == NULL || strcmp (cipher, "aes") != 0 || strcmp (mode, "xts-plain64") != 0
        || (r != 32 && r != 64))
        return capsa_error_code (err, ENOTSUP, "the encrypted partition uses cipher %s-%s with a %d-bit key; "
                                 "capsa supports only aes-xts-plain64",
                                 cipher ? cipher : "?", mode ? mode : "?", r * 8);
    keylen = (size_t) r;
    if (check_segment (cd, &seg_size, &iv_tweak, err) < 0)
        return -1;
    ss = crypt_get_sector_size (cd);
    data_off = crypt_get_data_offset (cd) * 512;
    if (ss < 512 || ss > 4096 || (ss & (ss - 1)) != 0)
        return capsa_error_code (err, ENOTSUP, "unsupported LUKS2 sector size %d", ss);
    if (data_off < areas || data_off >= size)
        return capsa_error_code (err, EBADMSG, "the LUKS2 data segment offset %" PRIu64
                                 " lies outside the encrypted partition (%" PRIu64 " bytes)",
                                 data_off, size);

    v = xcalloc (1, sizeof (*v));
    v->fd = fd;
    v->part_off = off;
    v->data_off = data_off;
    v->sector_size = (uint32_t) ss;
    v->iv_tweak = iv_tweak;
    v->tweak_step = (uint32_t) ss / 512;
    v->data_size = size - data_off;
    if (seg_size != UINT64_MAX) {
        if (seg_size > v->data_size) {
            capsa_error_code (err, EBADMSG, "the LUKS2 data segment (%" PRIu64 " bytes) extends past the end of "
                              "the partition", seg_size);
            goto fail;
        }
        v->data_size = seg_size;
    }
    v->data_size -= v->data_size % v->sector_size;
    if (v->data_size == 0) {
        capsa_error_code (err, EBADMSG, "the LUKS2 container holds no data");
        goto fail;
    }
    v->keylen = keylen;
    v->key = capsa_secure_alloc (keylen, NULL);
    if (flags & CAPSA_LUKS_VOLUME_KEY) {
        if (secret_len != keylen) {
            capsa_error_code (err, EKEYREJECTED, "the volume key given has %zu bytes, the image needs %zu", secret_len,
                              keylen);
            goto fail;
        }
        memcpy (v->key, secret, keylen);
        r = crypt_volume_key_verify (cd, (const char *) v->key, keylen);
    } else {
        size_t got = keylen;
        struct timespec t0, t1;

        /* The keyslot KDF: the one slow step of opening an image. */
        clock_gettime (CLOCK_MONOTONIC, &t0);
        r = crypt_volume_key_get (cd, CRYPT_ANY_SLOT, (char *) v->key, &got, secret, secret_len);
        clock_gettime (CLOCK_MONOTONIC, &t1);
        if (r >= 0 && got != keylen)
            r = -EINVAL;
        if (r >= 0)
            kdf_cost_of (cd, r, &t0, &t1, v);
    }
    if (r == -EPERM) {
        capsa_error_code (err, EKEYREJECTED, "the key does not open the encrypted image (no LUKS2 keyslot accepts it)");
        goto fail;
    }
    if (r < 0) {
        capsa_error_make (err, -r, "cannot unlock the encrypted image%s", cs_detail ());
        goto fail;
    }
    /* capsa 0.1.0's exact layout: 4096-byte sectors, 1 MiB header area
     * and data offset. */
    if (v->sector_size == 4096 && v->iv_tweak == 0 && v->data_off == CAPSA_LUKS_HEADER_SIZE
        && areas == CAPSA_LUKS_HEADER_SIZE && !squashfs_plausible (v)) {
        v->tweak_step = 1;
        if (squashfs_plausible (v))
            v->legacy = true;
        else
            v->tweak_step = v->sector_size / 512;
    }
    *out = v;
    return 0;
fail:
    capsa_luks_close (v);
    return -1;
}

void
capsa_luks_close (struct capsa_luks_volume *v)
{
    if (v == NULL)
        return;
    capsa_secure_free (v->key);
    explicit_bzero (v, sizeof (*v));
    free (v);
}

uint64_t
capsa_luks_size (const struct capsa_luks_volume *v)
{
    return v->data_size;
}

uint32_t
capsa_luks_sector_size (const struct capsa_luks_volume *v)
{
    return v->sector_size;
}

uint64_t
capsa_luks_data_offset (const struct capsa_luks_volume *v)
{
    return v->data_off;
}

bool
capsa_luks_legacy_numbering (const struct capsa_luks_volume *v)
{
    return v->legacy;
}

const struct capsa_kdf_cost *
capsa_luks_kdf_cost (const struct capsa_luks_volume *v)
{
    return v->have_kdf ? &v->kdf : NULL;
}

int
capsa_luks_write_volume_key (const struct capsa_luks_volume *v, int fd, capsa_error_t *err)
{
    if (write_all (fd, v->key, v->keylen) < 0)
        return capsa_error_make (err, errno, "cannot pass the volume key on");
    return 0;
}

const void *
luks_volume_key (const struct capsa_luks_volume *v, size_t *len)
{
    *len = v->keylen;
    return v->key;
}

/* Largest direct pread per step: keeps one read() well under INT_MAX. */
enum { READ_STEP = 1 << 24 };

ssize_t
capsa_luks_read (struct capsa_luks_volume *v, void *buf, size_t len, uint64_t off, capsa_error_t *err)
{
    const uint32_t ss = v->sector_size;
    const uint64_t base = v->part_off + v->data_off;
    unsigned char *dst = buf;
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char tmp[4096];
    size_t done = 0;
    ssize_t ret = -1;

    if (off >= v->data_size || len == 0)
        return 0;
    if (len > v->data_size - off)
        len = (size_t) (v->data_size - off);
    if (len > SSIZE_MAX)
        len = SSIZE_MAX / ss * ss;
    if (xts_ctx_new (v->key, v->keylen, false, &ctx, err) < 0)
        return -1;
    while (done < len) {
        uint64_t pos = off + done, sector = pos / ss, tweak = v->iv_tweak + sector * v->tweak_step;
        size_t inoff = (size_t) (pos % ss);

        if (inoff == 0 && len - done >= ss) {
            /* Whole sectors straight into the caller's buffer. */
            size_t n = (len - done) / ss * ss;
            if (n > READ_STEP)
                n = READ_STEP;
            if (pread_all (v->fd, dst + done, n, (off_t) (base + sector * ss)) < 0) {
                capsa_error_make (err, errno, "cannot read the encrypted image");
                goto out;
            }
            if (xts_ctx_sectors (ctx, tweak, v->tweak_step, ss, dst + done, dst + done, n, err) < 0)
                goto out;
            done += n;
        } else {
            /* A partial sector at either end. */
            size_t n = ss - inoff;
            if (n > len - done)
                n = len - done;
            if (pread_all (v->fd, tmp, ss, (off_t) (base + sector * ss)) < 0) {
                capsa_error_make (err, errno, "cannot read the encrypted image");
                goto out;
            }
            if (xts_ctx_sectors (ctx, tweak, v->tweak_step, ss, tmp, tmp, ss, err) < 0)
                goto out;
            memcpy (dst + done, tmp + inoff, n);
            done += n;
        }
    }
    ret = (ssize_t) done;
out:
    explicit_bzero (tmp, sizeof (tmp));
    EVP_CIPHER_CTX_free (ctx);
    return ret;
}

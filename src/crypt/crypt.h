/* Encrypted root file systems: LUKS2 containers and gocryptfs squashfs
 * images inside SIF partitions, decrypted entirely in user space; LUKS2
 * ones are also created here.
 *
 * Formats (docs/encryption.md has the details and the reasons):
 *  - fs type 5 (SIF_FS_ENCRYPTED_SQUASHFS), what capsa writes and what
 *    Apptainer's root builds write: the partition holds a whole LUKS2
 *    container, the LUKS2 header area, then the squashfs as the data
 *    segment, encrypted with aes-xts-plain64 exactly as the kernel's
 *    dm-crypt does it: the tweak of a sector is its offset from the start
 *    of the segment in 512-byte units, plus the segment's iv_tweak, as a
 *    64-bit little-endian number, whatever the sector size (cryptsetup sets
 *    no iv_large_sectors for LUKS2).  Images capsa writes use a 512-bit
 *    volume key, 4096-byte sectors and a 1 MiB header area; capsa reads any
 *    LUKS2 aes-xts-plain64 container (cryptsetup's defaults included: 16 MiB
 *    header, 512-byte sectors), and still reads capsa 0.1.0's images, which
 *    numbered 4096-byte sectors in 4096-byte units.
 *  - fs type 6 (SIF_FS_GOCRYPTFS_SQUASHFS), what Apptainer >= 1.2 writes
 *    for unprivileged and --fakeroot builds: an outer squashfs holding
 *    gocryptfs.conf and the gocryptfs (v2, AES-256-GCM) ciphertext of the
 *    squashfs; read only (src/crypt/gocryptfs.c).
 * With a passphrase, the passphrase opens an Argon2id keyslot.  With an RSA
 * key, a random 64-byte secret opens a (cheap, PBKDF2) keyslot and is
 * stored RSA-OAEP-wrapped in a cryptographic-message object linked to the
 * partition.
 *
 * Nothing here uses device-mapper: the LUKS2 header is parsed by
 * libcryptsetup from an in-memory copy (a memfd used as a detached header)
 * and the data is decrypted with OpenSSL.
 *
 * Secrets (passphrases, RSA secrets, volume keys, PEM private keys) live
 * only in "secure" buffers from capsa_secure_alloc(): page-aligned, locked
 * in memory when the memory-lock limit allows, excluded from core dumps,
 * wiped when freed.  No function here prints, logs or exits; secrets never
 * appear in error messages.
 *
 * Errors follow src/lib/error.h.  Error codes callers may test:
 *   EKEYREJECTED  the passphrase / key does not open the image
 *   ENOKEY        no key material was given
 *   EBADMSG       the LUKS2 header or key message is corrupted / not LUKS2
 *   ENOTSUP       a LUKS2 feature capsa does not support (cipher, integrity)
 *
 * Thread safety: capsa_crypt_read(), capsa_luks_read() and
 * capsa_gocryptfs_read() may be called from several threads on the same
 * image; everything else is for one thread at a time. */
#ifndef CAPSA_CRYPT_H
#define CAPSA_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/error.h"
#include "lib/utils.h"
#include "sif/sif.h"

/* ---- Parameters of the images capsa writes ----------------------------- */

#define CAPSA_LUKS_SECTOR_SIZE 4096u       /* encryption sector of the data segment */
#define CAPSA_LUKS_VOLUME_KEY_SIZE 64u     /* aes-xts-plain64 with AES-256 */
#define CAPSA_LUKS_METADATA_SIZE 16384u    /* each of the two JSON header copies */
#define CAPSA_LUKS_HEADER_SIZE (1u << 20)  /* header area = data segment offset */
/* Argon2id for passphrase keyslots (see docs/encryption.md for the choice). */
#define CAPSA_ARGON2_TIME 4u
#define CAPSA_ARGON2_MEMORY_KB 65536u /* 64 MiB */
#define CAPSA_ARGON2_PARALLEL 4u      /* libcryptsetup caps it at the CPU count */
/* PBKDF2-SHA256 for the keyslot opened by a random RSA-wrapped secret. */
#define CAPSA_PBKDF2_ITERATIONS 1000u
#define CAPSA_RSA_SECRET_SIZE 64u

/* Longest passphrase or key secret accepted (bytes). */
#define CAPSA_SECRET_MAX 8192u
/* capsa_luks_encrypt_stream(): read the input until end of file. */
#define CAPSA_LUKS_TO_EOF UINT64_MAX

/* ---- Locked memory for secrets ------------------------------------------ */

/* A zeroed buffer of len bytes on pages of its own, locked with mlock()
 * when the RLIMIT_MEMLOCK allows it (*locked, may be NULL, tells), and
 * excluded from core dumps.  Aborts on out-of-memory like xmalloc().
 * Free with capsa_secure_free(), which wipes it. */
void *capsa_secure_alloc (size_t len, bool *locked);
void capsa_secure_free (void *p); /* NULL is fine */
/* The whole content of FD, a secret record (at most
 * CAPSA_SECRET_RECORD_MAX bytes), in a capsa_secure_alloc() buffer; FD is
 * closed.  NULL with ERR on a read error, an empty or a too long record.
 * (The FUSE servers' key descriptor.) */
uint8_t *capsa_secret_read_fd (int fd, size_t *len, capsa_error_t *err);

/* The usable size of a buffer from capsa_secure_alloc(). */
size_t capsa_secure_size (const void *p);

/* Fill buf with len bytes from the kernel's random generator. */
/* capsa_random_bytes (): see lib/utils.h. */

/* ---- AES-XTS, dm-crypt plain64 numbering --------------------------------- */

/* En- or decrypt len bytes (a whole number of sectors of sector_size
 * bytes: 512..4096, a power of two).  The first sector's XTS tweak is
 * first_tweak, each next sector's tweak_step more: for dm-crypt's
 * aes-xts-plain64 in LUKS2, sector n of the data segment has tweak
 * iv_tweak + n * (sector_size / 512).  key is 32 (AES-128-XTS) or 64
 * (AES-256-XTS) bytes.  in and out may be the same buffer. */
int capsa_xts_crypt (const uint8_t *key, size_t keylen, bool encrypt, uint64_t first_tweak, uint32_t tweak_step,
                     uint32_t sector_size, const void *in, void *out, size_t len, capsa_error_t *err);

/* ---- What unlocking cost ---------------------------------------------------- */

/* The key derivation that opened an image (one keyslot, or gocryptfs's
 * scrypt), for -v output and benchmarks. */
struct capsa_kdf_cost {
    char type[16];       /* "argon2id", "argon2i", "pbkdf2", "scrypt" */
    uint64_t memory_kb;  /* memory it needs (0 for pbkdf2) */
    uint32_t iterations; /* Argon2 time cost, PBKDF2 iterations, scrypt N */
    uint32_t parallel;   /* Argon2 lanes, scrypt p */
    double seconds;      /* wall-clock time of the derivation here */
};

/* ---- Creating a LUKS2 container ------------------------------------------ */

enum capsa_kdf {
    CAPSA_KDF_ARGON2ID, /* a passphrase chosen by a person */
    CAPSA_KDF_PBKDF2,   /* a random secret (RSA mode): cheap is safe */
};

/* The plaintext must start with the squashfs magic "hsqs". */
#define CAPSA_LUKS_EXPECT_SQUASHFS 0x1u

/* Write a whole LUKS2 container to out_fd: the header area
 * (CAPSA_LUKS_HEADER_SIZE bytes: made by libcryptsetup on a memfd, with one
 * keyslot that secret opens, derived with kdf), then the plaintext read
 * from in_fd encrypted sector by sector (the last sector zero-padded).
 * in_fd is read sequentially (a pipe is fine) for in_len bytes, or to end
 * of file with CAPSA_LUKS_TO_EOF; out_fd is written sequentially.  The
 * volume key is random and exists only in locked memory while this runs.
 * The plaintext never goes anywhere but out_fd, encrypted.  *written (may
 * be NULL) receives the number of bytes written. */
int capsa_luks_encrypt_stream (int in_fd, uint64_t in_len, int out_fd, enum capsa_kdf kdf,
                               const void *secret, size_t secret_len, unsigned flags,
                               uint64_t *written, capsa_error_t *err);

/* ---- Opening a LUKS2 container -------------------------------------------- */

struct capsa_luks_volume; /* opaque: holds the volume key (locked memory) */

/* secret is the volume key itself, not a passphrase: it is checked against
 * the header's digest (fast, no KDF) instead of opening a keyslot. */
#define CAPSA_LUKS_VOLUME_KEY 0x1u

/* Open the LUKS2 container stored at [off, off+size) of fd (for example a
 * SIF partition).  The header area is copied into a memfd and parsed by
 * libcryptsetup; secret (secret_len bytes) opens a keyslot (one KDF run, the
 * slow part).  Only aes-xts-plain64 without integrity protection is
 * accepted.  fd is borrowed and must stay open until capsa_luks_close().
 * Errors: EKEYREJECTED (wrong key), EBADMSG (not LUKS2 / corrupted),
 * ENOTSUP (unsupported cipher or feature). */
int capsa_luks_open (int fd, uint64_t off, uint64_t size, const void *secret, size_t secret_len,
                     unsigned flags, struct capsa_luks_volume **out, capsa_error_t *err);
/* Wipe the volume key and free v (NULL is fine).  Does not close fd. */
void capsa_luks_close (struct capsa_luks_volume *v);

/* Size of the decrypted data (the data segment, whole sectors). */
uint64_t capsa_luks_size (const struct capsa_luks_volume *v);
/* Encryption sector size and data segment offset (bytes, from off). */
uint32_t capsa_luks_sector_size (const struct capsa_luks_volume *v);
uint64_t capsa_luks_data_offset (const struct capsa_luks_volume *v);

/* The image was written by capsa 0.1.0 (4096-byte sectors numbered in
 * 4096-byte units, which dm-crypt does not read) and is read that way. */
bool capsa_luks_legacy_numbering (const struct capsa_luks_volume *v);
/* The keyslot KDF that opened v; NULL when opened with the volume key. */
const struct capsa_kdf_cost *capsa_luks_kdf_cost (const struct capsa_luks_volume *v);

/* Read len bytes of plaintext at offset off (any alignment): pread of the
 * sectors concerned, then decryption.  Returns the number of bytes read,
 * short only at the end of the data (0 at or past it), or -1. */
ssize_t capsa_luks_read (struct capsa_luks_volume *v, void *buf, size_t len, uint64_t off,
                         capsa_error_t *err);

/* Write the volume key (raw bytes) to fd, a pipe to a process that will
 * open the container with CAPSA_LUKS_VOLUME_KEY: the KDF then runs once. */
int capsa_luks_write_volume_key (const struct capsa_luks_volume *v, int fd, capsa_error_t *err);

/* ---- Opening a gocryptfs image (fs type 6) ----------------------------------- */

struct capsa_gocryptfs_volume; /* opaque: holds the master key (locked memory) */

/* secret is the data key itself (a LUKS2 volume key, a gocryptfs master
 * key), not a passphrase: no KDF runs. */
#define CAPSA_CRYPT_DATA_KEY 0x1u

/* Open the gocryptfs image at [off, off+size) of fd: an outer squashfs
 * holding gocryptfs.conf and one encrypted data file.  secret is the
 * gocryptfs password (scrypt runs: the slow part), or with
 * CAPSA_CRYPT_DATA_KEY the 32-byte master key.  The first data block is
 * decrypted to check the key.  fd is borrowed until capsa_gocryptfs_close().
 * Errors: EKEYREJECTED (wrong key), EBADMSG (not such an image, corrupted),
 * ENOTSUP (a gocryptfs variant capsa does not read: AES-SIV,
 * XChaCha20-Poly1305, FIDO2, format 1). */
int capsa_gocryptfs_open (int fd, uint64_t off, uint64_t size, const void *secret, size_t secret_len,
                          unsigned flags, struct capsa_gocryptfs_volume **out, capsa_error_t *err);
void capsa_gocryptfs_close (struct capsa_gocryptfs_volume *v);
/* Size of the decrypted data file (the inner squashfs). */
uint64_t capsa_gocryptfs_size (const struct capsa_gocryptfs_volume *v);
const struct capsa_kdf_cost *capsa_gocryptfs_kdf_cost (const struct capsa_gocryptfs_volume *v);
/* Like capsa_luks_read(); a block that fails authentication is EBADMSG. */
ssize_t capsa_gocryptfs_read (struct capsa_gocryptfs_volume *v, void *buf, size_t len, uint64_t off,
                              capsa_error_t *err);

/* ---- Any encrypted image: the interface of readers ------------------------------ */

enum capsa_crypt_format {
    CAPSA_CRYPT_AUTO = 0,      /* opening: tell from the partition's bytes */
    CAPSA_CRYPT_LUKS2 = 1,     /* fs type 5 */
    CAPSA_CRYPT_GOCRYPTFS = 2, /* fs type 6 */
};

struct capsa_crypt_image; /* an opened encrypted image of either format */

/* Which format [off, off+size) of fd holds: a squashfs magic is a gocryptfs
 * image, anything else is taken for LUKS2 (whose open says what is wrong:
 * its primary header may be damaged and a secondary copy intact). */
int capsa_crypt_detect (int fd, uint64_t off, uint64_t size, enum capsa_crypt_format *fmt, capsa_error_t *err);

/* Open the encrypted image at [off, off+size) of fd with secret: a
 * passphrase, an unwrapped RSA secret or gocryptfs password, or with
 * CAPSA_CRYPT_DATA_KEY the data key (LUKS2 volume key, gocryptfs master
 * key).  Errors as capsa_luks_open() and capsa_gocryptfs_open(). */
int capsa_crypt_open (int fd, uint64_t off, uint64_t size, enum capsa_crypt_format fmt, const void *secret,
                      size_t secret_len, unsigned flags, struct capsa_crypt_image **out, capsa_error_t *err);
void capsa_crypt_close (struct capsa_crypt_image *img); /* NULL is fine */
enum capsa_crypt_format capsa_crypt_format (const struct capsa_crypt_image *img);
const char *capsa_crypt_format_name (enum capsa_crypt_format fmt); /* "LUKS2", "gocryptfs" */
/* Bytes of plaintext: the inner squashfs (LUKS2: whole sectors). */
uint64_t capsa_crypt_size (const struct capsa_crypt_image *img);
/* The unit the image is encrypted in (LUKS2 sector, gocryptfs block):
 * reads of whole aligned units are the cheapest. */
uint32_t capsa_crypt_block_size (const struct capsa_crypt_image *img);
/* The KDF that opened it, NULL when opened with the data key. */
const struct capsa_kdf_cost *capsa_crypt_kdf_cost (const struct capsa_crypt_image *img);
/* A LUKS2 image of capsa 0.1.0, read with its old sector numbering. */
bool capsa_crypt_legacy_numbering (const struct capsa_crypt_image *img);
/* Plaintext bytes [off, off+len) of the inner image: the number read,
 * short only at the end (0 at or past it), or -1.  Thread-safe. */
ssize_t capsa_crypt_read (struct capsa_crypt_image *img, void *buf, size_t len, uint64_t off, capsa_error_t *err);

/* The key record: what the front end hands to capsa-cryptfuse through a
 * pipe once it has opened an image, so that the KDF runs once.  Self-
 * describing: "CAPSAKEY", one byte of format (enum capsa_crypt_format), one
 * byte of key length, the data key.  Write it to fd (a pipe). */
#define CAPSA_KEY_RECORD_MAGIC "CAPSAKEY"
int capsa_crypt_write_record (const struct capsa_crypt_image *img, int fd, capsa_error_t *err);
/* Open [off, off+size) of fd with a key record.  For compatibility, a
 * record without the magic of 32 or 64 bytes is a raw LUKS2 volume key. */
int capsa_crypt_open_record (int fd, uint64_t off, uint64_t size, const void *rec, size_t rec_len,
                             struct capsa_crypt_image **out, capsa_error_t *err);
/* Do two opened images hold the same data key (and format)?  Constant
 * time in the key's bytes. */
bool capsa_crypt_same_key (const struct capsa_crypt_image *a, const struct capsa_crypt_image *b);

/* ---- Secret records: key material handed on unopened ------------------------- */

/* A user's front end does not open an encrypted image for the image server:
 * it reads the key material (passphrase, or PEM private key with the
 * image's RSA key message) and hands it on in a "secret record" through the
 * same pipe, unopened, so that the header is opened (and the KDF runs) once,
 * where the image is served; a warm image server that already opened the
 * image with the same secret opens nothing at all.  capsa_crypt_open_record()
 * accepts both kinds of record (so capsa-cryptfuse does too).
 *
 *   "CAPSASEC", version 1, format (enum capsa_crypt_format), kind (enum
 *   capsa_secret_kind), 0; then three fields, each a 32-bit little-endian
 *   length and its bytes: the key's source (for messages: a file name or
 *   variable), the image's RSA key message (PEM text; may be empty for a
 *   passphrase), the secret (the passphrase, or the PEM private key). */
#define CAPSA_SECRET_RECORD_MAGIC "CAPSASEC"
/* Fits a pipe's default buffer, which holds it until the starter runs. */
#define CAPSA_SECRET_RECORD_MAX 61440u

enum capsa_secret_kind { CAPSA_SECRET_PASSPHRASE = 1, CAPSA_SECRET_PEM = 2 };
struct capsa_keyspec;

struct capsa_secret_record {
    enum capsa_crypt_format fmt;
    enum capsa_secret_kind kind;
    const char *source; /* not NUL-terminated */
    size_t source_len;
    const char *message; /* not NUL-terminated */
    size_t message_len;
    const uint8_t *secret;
    size_t secret_len;
};

/* Write the secret record for partition PART of IMG (encrypted) and KEY to
 * FD (a pipe).  Refuses, with the messages of capsa_sif_key_secret(), no
 * key and a PEM key for a passphrase image.  No OpenSSL. */
int capsa_secret_record_write (const struct sif_image *img, const struct sif_descriptor *part,
                               const struct capsa_keyspec *key, int fd, capsa_error_t *err);
bool capsa_is_secret_record (const void *rec, size_t len);
/* The fields of REC (pointers into it). */
int capsa_secret_record_parse (const void *rec, size_t len, struct capsa_secret_record *out, capsa_error_t *err);
/* The secret that opens the image (the passphrase, or the RSA secret
 * unwrapped with the record's private key: EKEYREJECTED "the private key in
 * SOURCE does not open the image"), in secure memory.  OpenSSL. */
int capsa_crypt_record_secret (const struct capsa_secret_record *rec, uint8_t **secret, size_t *len,
                               capsa_error_t *err);
/* Open [off, off+size) of fd with that secret (the KDF runs), with the
 * record's words for a wrong key ("the passphrase does not open the
 * image", "the private key in SOURCE does not open the image"). */
int capsa_crypt_open_secret (int fd, uint64_t off, uint64_t size, const struct capsa_secret_record *sr,
                             const uint8_t *secret, size_t len, struct capsa_crypt_image **out, capsa_error_t *err);

/* ---- RSA key wrapping ------------------------------------------------------ */

struct capsa_rsa_key; /* an OpenSSL RSA key, public or private */

/* Parse a PEM RSA key: PKCS#1 ("RSA PUBLIC KEY" / "RSA PRIVATE KEY"),
 * SPKI ("PUBLIC KEY") or PKCS#8 ("PRIVATE KEY").  need_private: a private
 * key is required (decryption).  what names the key in messages (a path or
 * an environment variable).  Refused with a clear message: a
 * passphrase-protected PEM, a non-RSA key, a public key where a private
 * one is needed, anything that is not a PEM key. */
int capsa_rsa_key_load (const char *pem, size_t len, bool need_private, const char *what,
                        struct capsa_rsa_key **out, capsa_error_t *err);
void capsa_rsa_key_free (struct capsa_rsa_key *k);

/* Wrap secret with RSA-OAEP (SHA-256 hash and MGF1, empty label), as
 * Apptainer does: the secret is cut into chunks of k - 66 bytes (k: the
 * modulus size in bytes; one chunk for a 64-byte secret from 1040 bits up),
 * each chunk is encrypted, the k-byte ciphertexts are concatenated, and
 * that is DER-encoded as an ASN.1 OCTET STRING inside a PEM block of type
 * MESSAGE: *msg (caller frees, NUL-terminated) is that text, the content
 * of the SIF cryptographic-message object. */
int capsa_rsa_wrap (const struct capsa_rsa_key *k, const void *secret, size_t secret_len, char **msg,
                    size_t *msg_len, capsa_error_t *err);
/* The inverse, with a private key: every k-byte chunk decrypted, the
 * pieces concatenated.  *secret is a capsa_secure_alloc() buffer.
 * EKEYREJECTED when the key does not decrypt the message, EBADMSG when the
 * message is malformed. */
int capsa_rsa_unwrap (const struct capsa_rsa_key *k, const char *msg, size_t msg_len, uint8_t **secret,
                      size_t *secret_len, capsa_error_t *err);

/* ---- Key material from the user -------------------------------------------- */

enum capsa_key_kind { CAPSA_KEY_NONE, CAPSA_KEY_PASSPHRASE, CAPSA_KEY_PEM };
enum capsa_key_use { CAPSA_KEY_ENCRYPT, CAPSA_KEY_DECRYPT };

struct capsa_keyspec {
    enum capsa_key_kind kind;
    char *data;    /* secure buffer: the passphrase or the PEM text (NUL-terminated) */
    size_t len;    /* bytes of data, without the NUL */
    char *source;  /* where it came from, for messages: the PEM file, or the variable's name */
};

/* Where the key comes from, in this order:
 *   1. --pem-path FILE (pem_path_flag)       a PEM key file
 *   2. --passphrase (passphrase_flag)        when standard input is a terminal,
 *                                            prompt on it without echo (twice,
 *                                            to confirm, for ENCRYPT); otherwise
 *                                            one line read from standard input
 *   3. CAPSA_ENCRYPTION_PEM_PATH, CAPSA_ENCRYPTION_PEM_DATA (PEM text),
 *   4. CAPSA_ENCRYPTION_PASSPHRASE,
 * each variable also spelled APPTAINER_ and SINGULARITY_ (CAPSA_ first).
 * Both flags at once is an error.  Every one of these variables is wiped
 * from this process's environment (in place, so that /proc/PID/environ no
 * longer shows it, and unset) whether used or not.  With no key anywhere,
 * out->kind is CAPSA_KEY_NONE and 0 is returned.  Errors: empty
 * passphrase, confirmation mismatch, unreadable PEM file.  The PEM text is not parsed here
 * (capsa_rsa_key_load does that). */
int capsa_keyspec_get (bool passphrase_flag, const char *pem_path_flag, enum capsa_key_use use,
                       struct capsa_keyspec *out, capsa_error_t *err);
/* Wipe and free what a keyspec holds; it becomes CAPSA_KEY_NONE. */
void capsa_keyspec_clear (struct capsa_keyspec *k);
/* Wipe the key variables from the environment (done by capsa_keyspec_get). */
void capsa_keyspec_scrub_environment (void);
/* Is any of the key variables set? */
bool capsa_keyspec_in_environment (void);

/* ---- SIF -------------------------------------------------------------------- */

struct capsa_encrypt_opts {
    const char *arch;   /* Go architecture name of the partition, required */
    uint32_t group;     /* 0: group 1, as Apptainer */
    int64_t time;       /* 0: now (sif_add_opts.time) */
    uint64_t length;    /* bytes of squashfs to read; 0 or CAPSA_LUKS_TO_EOF: to end of file */
};

/* Append to out an encrypted primary system partition (fs type 5) holding
 * the squashfs read sequentially from squashfs_fd (a pipe is fine), locked
 * with key (a passphrase, or a PEM public or private RSA key).  For RSA, a
 * random 64-byte secret opens the keyslot and a cryptographic-message
 * object (PEM, RSA-OAEP) linked to the partition holds it, wrapped.  The
 * data is encrypted on its way into the image through a pipe: no plaintext
 * and no key reaches a file.  *part_id (may be NULL) receives the
 * partition's object ID.  On failure out is left as it was.
 * For `capsa build`: build the squashfs into a pipe or an unlinked file,
 * sif_create + sif_open the output, add the definition file and metadata
 * objects, then call this. */
int capsa_encrypt_write_partition (struct sif_image *out, int squashfs_fd, const struct capsa_keyspec *key,
                                   const struct capsa_encrypt_opts *opts, uint32_t *part_id,
                                   capsa_error_t *err);

/* The format of an encrypted partition from its fs type (5: LUKS2, 6:
 * gocryptfs); EINVAL when it is not an encrypted one.  (This and
 * capsa_sif_find_key_message() use no OpenSSL: src/crypt/keyrecord.c.) */
int capsa_sif_crypt_format (const struct sif_descriptor *part, enum capsa_crypt_format *fmt, capsa_error_t *err);

/* The cryptographic message (PEM, RSA-OAEP) linked to partition part, if
 * any: *msg NULL when there is none. */
int capsa_sif_find_key_message (const struct sif_image *img, const struct sif_descriptor *part,
                                const struct sif_descriptor **msg, capsa_error_t *err);

/* The secret that opens encrypted partition part (fs type 5 or 6): the
 * passphrase itself, or the RSA secret (LUKS2 keyslot passphrase, gocryptfs
 * password) unwrapped from the linked message with the private key in key.
 * *secret is a capsa_secure_alloc() buffer.  Errors: ENOKEY (no key; the
 * message names --passphrase and --pem-path), EKEYREJECTED (the private key
 * does not decrypt the message), EINVAL (a PEM for a passphrase image). */
int capsa_sif_key_secret (const struct sif_image *img, const struct sif_descriptor *part,
                          const struct capsa_keyspec *key, uint8_t **secret, size_t *secret_len,
                          capsa_error_t *err);

/* capsa_sif_key_secret() + capsa_crypt_open() on partition part of img,
 * in the format its fs type names.  Wrong key (EKEYREJECTED), whatever the
 * format: "the passphrase does not open the image", "the private key in
 * FILE does not open the image", or, for a passphrase given to an RSA
 * image, a message that says to use --pem-path. */
int capsa_sif_crypt_open (const struct sif_image *img, const struct sif_descriptor *part,
                          const struct capsa_keyspec *key, struct capsa_crypt_image **out, capsa_error_t *err);

#endif

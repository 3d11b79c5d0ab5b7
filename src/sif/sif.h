/* SIF (Singularity Image Format) reader and writer.
 *
 * A SIF file is a 128-byte little-endian global header, a table of
 * fixed-size (585-byte) object descriptors, and the data objects the used
 * descriptors point at.  The reference implementation is the Go library
 * sylabs/sif; this module reads and writes the same bytes.
 *
 * Trust: every image is treated as hostile.  sif_open_fd() checks every
 * header field, offset, size, count and string against the file size before
 * anything is used, with overflow-safe arithmetic, and rejects the image with
 * one clear message ("invalid SIF image FILE: descriptor 3 extends past end
 * of file") instead of guessing.  After a successful open, every descriptor
 * handed out describes a byte range inside the file that overlaps no other
 * object, the header or the descriptor table.  The privileged starter may
 * call sif_open_fd() on a descriptor it opened itself: nothing here reopens
 * the image by path.  Validation describes the file as it was when read:
 * whoever can write the image can change it afterwards, so a caller that
 * hands offsets to something trusting (a kernel mount) must read from a
 * file the user cannot modify, or accept that the kernel parses bytes the
 * user chose.
 *
 * Errors follow src/lib/error.h: negative return and *err filled; nothing
 * here prints or exits.  sif_private.h holds the on-disk layout.
 *
 * Ownership: a struct sif_image owns its parsed header and descriptors.
 * const struct sif_descriptor pointers stay valid until the next
 * modifying call (sif_add_object, sif_delete_object, sif_set_primary) or
 * sif_close(). */
#ifndef CAPSA_SIF_H
#define CAPSA_SIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

#define SIF_HEADER_SIZE 128
#define SIF_DESCRIPTOR_SIZE 585
#define SIF_LAUNCH_LEN 32
#define SIF_NAME_LEN 128
#define SIF_EXTRA_LEN 384
#define SIF_GROUP_MASK 0xF0000000u
#define SIF_DEFAULT_DESCRIPTORS 48
/* Upper bound on the descriptor table an image may declare (48 is usual). */
#define SIF_MAX_DESCRIPTORS 65536
/* Go's zero time.Time as Unix seconds: the "unset" timestamp in SIF files. */
#define SIF_TIME_UNSET INT64_C (-62135596800)
#define SIF_LAUNCH_SCRIPT "#!/usr/bin/env run-singularity\n"

enum sif_datatype {
    SIF_DATA_DEFFILE = 0x4001,
    SIF_DATA_ENVVAR = 0x4002,
    SIF_DATA_LABELS = 0x4003,
    SIF_DATA_PARTITION = 0x4004,
    SIF_DATA_SIGNATURE = 0x4005,
    SIF_DATA_GENERIC_JSON = 0x4006,
    SIF_DATA_GENERIC = 0x4007,
    SIF_DATA_CRYPTO_MESSAGE = 0x4008,
    SIF_DATA_SBOM = 0x4009,
    SIF_DATA_OCI_ROOT_INDEX = 0x400A,
    SIF_DATA_OCI_BLOB = 0x400B,
};

enum sif_fstype {
    SIF_FS_SQUASHFS = 1,
    SIF_FS_EXT3 = 2,
    SIF_FS_ARCHIVE = 3,
    SIF_FS_RAW = 4,
    SIF_FS_ENCRYPTED_SQUASHFS = 5, /* LUKS2 around squashfs */
    SIF_FS_GOCRYPTFS_SQUASHFS = 6,
};

enum sif_parttype {
    SIF_PART_SYSTEM = 1,
    SIF_PART_PRIMSYS = 2, /* the primary system partition: what runs */
    SIF_PART_DATA = 3,
    SIF_PART_OVERLAY = 4,
};

enum sif_hashtype {
    SIF_HASH_SHA256 = 1,
    SIF_HASH_SHA384 = 2,
    SIF_HASH_SHA512 = 3,
    SIF_HASH_BLAKE2S = 4,
    SIF_HASH_BLAKE2B = 5,
};

enum sif_formattype { SIF_FORMAT_OPENPGP = 1, SIF_FORMAT_PEM = 2 };
enum sif_messagetype { SIF_MESSAGE_CLEAR_SIGNATURE = 0x100, SIF_MESSAGE_RSA_OAEP = 0x200 };

enum sif_sbom_format {
    SIF_SBOM_CYCLONEDX_JSON = 1,
    SIF_SBOM_CYCLONEDX_XML,
    SIF_SBOM_GITHUB_JSON,
    SIF_SBOM_SPDX_JSON,
    SIF_SBOM_SPDX_RDF,
    SIF_SBOM_SPDX_TAG_VALUE,
    SIF_SBOM_SPDX_YAML,
    SIF_SBOM_SYFT_JSON,
};

struct sif_image; /* opaque */

/* The global header, decoded.  Strings are NUL-terminated copies of the
 * fixed-size fields (trailing NULs trimmed as siftool does). */
struct sif_header {
    char launch[SIF_LAUNCH_LEN + 1];
    char version[4];
    char arch[4]; /* SIF arch code, e.g. "02" */
    uint8_t uuid[16];
    int64_t created, modified;
    int64_t descr_free, descr_total, descr_offset, descr_size;
    int64_t data_offset, data_size;
};

/* One used descriptor, decoded.  Read-only for callers. */
struct sif_descriptor {
    int32_t datatype;   /* enum sif_datatype */
    uint32_t id;        /* object ID, never 0 */
    uint32_t group;     /* group ID without SIF_GROUP_MASK; 0: no group */
    uint32_t link;      /* linked object or group ID; 0: none */
    bool link_is_group; /* link names a group, not an object */
    uint32_t raw_group, raw_link; /* as stored */
    int64_t offset, size, size_with_padding;
    int64_t created, modified, uid, gid;
    char name[SIF_NAME_LEN];      /* always NUL-terminated */
    uint8_t extra[SIF_EXTRA_LEN]; /* type-specific metadata */
    size_t slot;                  /* index in the descriptor table */
};

struct sif_partition {
    int32_t fstype;   /* enum sif_fstype */
    int32_t parttype; /* enum sif_parttype */
    char arch[4];     /* SIF arch code, e.g. "02" (NUL-terminated) */
};

struct sif_signature {
    int32_t hashtype; /* enum sif_hashtype */
    bool has_entity;  /* the 20-byte fingerprint is not all zero */
    uint8_t entity[20];
};

struct sif_crypto_message {
    int32_t format;  /* enum sif_formattype */
    int32_t message; /* enum sif_messagetype */
};

/* ---- Reading ---------------------------------------------------------- */

/* Validate and load the SIF image readable through fd (read with pread,
 * never reopened).  fd is borrowed: it must stay open until sif_close(),
 * which does not close it. */
int sif_open_fd (int fd, struct sif_image **out, capsa_error_t *err);
/* Same, naming the image as `name` in error messages. */
int sif_open_fd_named (int fd, const char *name, struct sif_image **out, capsa_error_t *err);
/* Open path (O_RDONLY or O_RDWR, O_CLOEXEC) and load it; the image owns the
 * descriptor.  For the unprivileged front end only. */
int sif_open (const char *path, bool writable, struct sif_image **out, capsa_error_t *err);
void sif_close (struct sif_image *img);

int sif_image_fd (const struct sif_image *img);
int64_t sif_image_file_size (const struct sif_image *img);
const struct sif_header *sif_get_header (const struct sif_image *img);

/* Used descriptors in table order: for (i = 0; i < sif_descriptor_count (img); i++) ... */
size_t sif_descriptor_count (const struct sif_image *img);
const struct sif_descriptor *sif_descriptor_at (const struct sif_image *img, size_t i);

/* The used descriptor with object ID id; fails with ENOENT when absent. */
int sif_find_descriptor (const struct sif_image *img, uint32_t id, const struct sif_descriptor **out,
                         capsa_error_t *err);
/* The primary system partition (a partition of type SIF_PART_PRIMSYS).
 * ENOENT when there is none; EINVAL when several claim to be primary. */
int sif_find_primary_partition (const struct sif_image *img, const struct sif_descriptor **out,
                                capsa_error_t *err);

/* Type-specific metadata from the extra field; EINVAL if d has another type. */
int sif_get_partition (const struct sif_descriptor *d, struct sif_partition *out, capsa_error_t *err);
int sif_get_signature (const struct sif_descriptor *d, struct sif_signature *out, capsa_error_t *err);
int sif_get_crypto_message (const struct sif_descriptor *d, struct sif_crypto_message *out,
                            capsa_error_t *err);
int sif_get_sbom_format (const struct sif_descriptor *d, int32_t *out, capsa_error_t *err);
/* OCI blob / root index digest ("sha256:..."), copied NUL-terminated into
 * out (at least SIF_EXTRA_LEN + 1 bytes). */
int sif_get_oci_digest (const struct sif_descriptor *d, char *out, size_t outlen, capsa_error_t *err);

/* Read len bytes at offset off inside object d.  The range must lie inside
 * the object. */
int sif_read_object_at (const struct sif_image *img, const struct sif_descriptor *d, void *buf,
                        size_t len, int64_t off, capsa_error_t *err);
/* Read the whole object into a new buffer (caller frees); fails with EFBIG
 * when it is larger than max bytes.  A NUL is appended (not counted). */
int sif_read_object (const struct sif_image *img, const struct sif_descriptor *d, size_t max,
                     char **out, size_t *outlen, capsa_error_t *err);
/* Write the object's bytes to out_fd (a file, pipe or terminal). */
int sif_copy_object (const struct sif_image *img, const struct sif_descriptor *d, int out_fd,
                     capsa_error_t *err);

/* ---- Names -------------------------------------------------------------
 * Human-readable names exactly as siftool prints them; "Unknown" (or
 * "unknown" for SBOM formats and architectures) for values outside the
 * known sets.  All return static strings. */
const char *sif_datatype_name (int32_t datatype);
const char *sif_fstype_name (int32_t fstype);
const char *sif_parttype_name (int32_t parttype);
const char *sif_hashtype_name (int32_t hashtype); /* "SHA-256", as Go's crypto.Hash */
const char *sif_format_name (int32_t format);
const char *sif_message_name (int32_t message);
const char *sif_sbom_format_name (int32_t format);
/* SBOM format from its name ("spdx-json"...); 0 when unknown. */
int32_t sif_sbom_format_from_name (const char *name);
/* Go architecture name ("amd64") of a 3-byte SIF arch code ("02\0"). */
const char *sif_arch_name (const char code[3]);
/* SIF arch code (NUL-terminated, 2 digits) of a Go architecture name, or
 * NULL when SIF has no code for it. */
const char *sif_arch_code (const char *goarch);
/* The Go architecture name of the machine capsa was built for. */
const char *sif_host_arch (void);

/* ---- Writing -----------------------------------------------------------
 * Modifying calls need an image from sif_open (path, true, ...). */

struct sif_create_opts {
    const char *launch;   /* NULL: SIF_LAUNCH_SCRIPT; "" for none; < 32 bytes */
    const uint8_t *uuid;  /* NULL: random (version 4) */
    int64_t time;         /* 0: now; SIF_TIME_UNSET for deterministic images */
    int64_t descriptors;  /* 0: SIF_DEFAULT_DESCRIPTORS */
    const char *arch;     /* Go arch name for the header, NULL: unknown ("00") */
};

/* Create an empty SIF at path.  The image is written to a temporary file
 * in the same directory and renamed over path only once complete, so no
 * half-written image is ever left at path. */
int sif_create (const char *path, const struct sif_create_opts *opts, capsa_error_t *err);

struct sif_add_opts {
    int32_t datatype;   /* enum sif_datatype, required */
    uint32_t group;     /* 0: no group */
    uint32_t link;      /* 0: no link */
    bool link_is_group; /* link names a group */
    int64_t alignment;  /* -1: default (4096 for partitions, else none) */
    const char *name;   /* NULL or "": none; at most 127 bytes */
    int64_t time;       /* 0: now (SIF_TIME_UNSET kept for deterministic images) */
    bool no_sync;       /* skip the fdatasync before the descriptor is written: for a new
                         * file that is renamed into place only when complete (build) */
    /* SIF_DATA_PARTITION */
    int32_t fstype, parttype;
    const char *arch; /* Go arch name, required for partitions */
    /* SIF_DATA_SIGNATURE */
    int32_t hashtype;
    const uint8_t *entity; /* 20 bytes or NULL */
    /* SIF_DATA_CRYPTO_MESSAGE */
    int32_t format, message;
    /* SIF_DATA_SBOM */
    int32_t sbom_format;
    /* SIF_DATA_OCI_BLOB, SIF_DATA_OCI_ROOT_INDEX: NULL computes "sha256:<hex>" of the data */
    const char *digest;
};

/* Append the data read from data_fd (until EOF; a pipe is fine) as a new
 * object.  On failure the image is left as it was.  *new_id (may be NULL)
 * receives the object ID. */
int sif_add_object (struct sif_image *img, const struct sif_add_opts *opts, int data_fd,
                    uint32_t *new_id, capsa_error_t *err);
/* Delete object id: its descriptor is zeroed and freed (the data stays in
 * the file, as siftool del does).  zero: also overwrite the data with
 * zeros; compact: then truncate the file after the last remaining object. */
int sif_delete_object (struct sif_image *img, uint32_t id, bool zero, bool compact,
                       capsa_error_t *err);
/* Make system partition id the primary one: its type becomes
 * SIF_PART_PRIMSYS, the former primary becomes SIF_PART_SYSTEM, and the
 * header architecture follows the new primary (as sylabs/sif does). */
int sif_set_primary (struct sif_image *img, uint32_t id, capsa_error_t *err);

#endif

/* Internals shared by the files of the SIF module: the on-disk layout,
 * little-endian field access and the image structure.  Not for use outside
 * src/sif/.
 *
 * Files: sif.c validates and reads images; sif_names.c maps codes to the
 * names siftool prints; sif_write.c creates and modifies images;
 * sha256.c hashes OCI blobs as they are added. */
#ifndef CAPSA_SIF_PRIVATE_H
#define CAPSA_SIF_PRIVATE_H

#include <stdint.h>
#include <string.h>

#include "sif/sif.h"

/* Global header: byte offsets of its fields. */
enum {
    HDR_LAUNCH = 0,
    HDR_MAGIC = 32,
    HDR_VERSION = 42,
    HDR_ARCH = 45,
    HDR_UUID = 48,
    HDR_CREATED = 64,
    HDR_MODIFIED = 72,
    HDR_DESCR_FREE = 80,
    HDR_DESCR_TOTAL = 88,
    HDR_DESCR_OFFSET = 96,
    HDR_DESCR_SIZE = 104,
    HDR_DATA_OFFSET = 112,
    HDR_DATA_SIZE = 120,
};

#define SIF_MAGIC_BYTES "SIF_MAGIC\0" /* 10 bytes with the NUL */
#define SIF_MAGIC_LEN 10
#define SIF_VERSION_BYTES "01\0"
#define SIF_VERSION_LEN 3
#define SIF_ARCH_UNKNOWN "00\0"
#define SIF_DESCR_OFFSET_DEFAULT 4096

/* Descriptor: byte offsets of its fields. */
enum {
    DSC_DATATYPE = 0,
    DSC_USED = 4,
    DSC_ID = 5,
    DSC_GROUP = 9,
    DSC_LINK = 13,
    DSC_OFFSET = 17,
    DSC_SIZE = 25,
    DSC_SIZE_PADDED = 33,
    DSC_CREATED = 41,
    DSC_MODIFIED = 49,
    DSC_UID = 57,
    DSC_GID = 65,
    DSC_NAME = 73,
    DSC_EXTRA = 201,
};

/* Extra-field layouts (offsets inside extra). */
enum {
    PART_FSTYPE = 0,  /* int32 */
    PART_PARTTYPE = 4, /* int32 */
    PART_ARCH = 8,    /* char[3] */
    PART_END = 11,
    SIG_HASHTYPE = 0, /* int32 */
    SIG_ENTITY = 4,   /* char[256], a 20-byte fingerprint first */
    CRYPT_FORMAT = 0, /* int32 */
    CRYPT_MESSAGE = 4, /* int32 */
    SBOM_FORMAT = 0,  /* int32 */
    OCI_DIGEST = 0,   /* NUL-padded string */
};

struct sif_image {
    int fd;
    bool owns_fd;
    bool writable;
    char *name; /* for messages; may be NULL */
    int64_t file_size;
    uint8_t raw_header[SIF_HEADER_SIZE]; /* kept to rewrite unknown bytes as they were */
    struct sif_header hdr;
    struct sif_descriptor *descr; /* used descriptors, in slot order */
    size_t ndescr;
    uint8_t *slot_used; /* descr_total flags */
    size_t nslots;
};

static inline uint32_t
le32 (const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static inline int32_t
le32s (const uint8_t *p)
{
    return (int32_t) le32 (p);
}

static inline int64_t
le64s (const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return (int64_t) v;
}

static inline void
put32 (uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

static inline void
put64 (uint8_t *p, int64_t sv)
{
    uint64_t v = (uint64_t) sv;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

/* Encode d (marked used) into a 585-byte descriptor. */
void sif_encode_descriptor (const struct sif_descriptor *d, uint8_t out[SIF_DESCRIPTOR_SIZE]);
/* Store the numeric header fields and arch of img->hdr into img->raw_header. */
void sif_encode_header (struct sif_image *img);
/* Fill *err with "invalid SIF image NAME: MSG" (code EINVAL).  Returns -1. */
int sif_invalid (const struct sif_image *img, capsa_error_t *err, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* SHA-256 (FIPS 180-4), for OCI blob digests. */
struct sif_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
};
void sif_sha256_init (struct sif_sha256 *s);
void sif_sha256_update (struct sif_sha256 *s, const void *data, size_t len);
void sif_sha256_final (struct sif_sha256 *s, uint8_t out[32]);

#endif

/* Loading and validating SIF images, and reading their objects.
 *
 * The order of the checks matters: the header's counts and offsets are
 * bounded against the file size before anything is allocated or read, so a
 * header claiming 10^9 descriptors fails at once instead of asking for
 * 585 GB.  All range checks are written as "a > limit - b" on values
 * already known to be non-negative, never as "a + b > limit", so that no
 * sum can overflow. */
#include "sif/sif_private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "lib/utils.h"

static char *vformat (const char *fmt, va_list ap) __attribute__ ((format (printf, 1, 0)));

static char *
vformat (const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf (&s, fmt, ap) < 0)
        return NULL;
    return s;
}

int
sif_invalid (const struct sif_image *img, capsa_error_t *err, const char *fmt, ...)
{
    va_list ap;
    cleanup_free char *msg = NULL;
    const char *name = img ? img->name : NULL;

    va_start (ap, fmt);
    msg = vformat (fmt, ap);
    va_end (ap);
    if (name)
        capsa_error_make (err, 0, "invalid SIF image %s: %s", name, msg ? msg : "out of memory");
    else
        capsa_error_make (err, 0, "invalid SIF image: %s", msg ? msg : "out of memory");
    if (err && *err)
        (*err)->code = EINVAL;
    return -1;
}

static void
decode_header (const uint8_t *raw, struct sif_header *h)
{
    size_t n;

    memset (h, 0, sizeof (*h));
    /* Trailing NULs are trimmed; the field need not contain one. */
    memcpy (h->launch, raw + HDR_LAUNCH, SIF_LAUNCH_LEN);
    n = SIF_LAUNCH_LEN;
    while (n > 0 && h->launch[n - 1] == '\0')
        n--;
    h->launch[n] = '\0';
    memcpy (h->version, raw + HDR_VERSION, SIF_VERSION_LEN);
    memcpy (h->arch, raw + HDR_ARCH, 3);
    memcpy (h->uuid, raw + HDR_UUID, 16);
    h->created = le64s (raw + HDR_CREATED);
    h->modified = le64s (raw + HDR_MODIFIED);
    h->descr_free = le64s (raw + HDR_DESCR_FREE);
    h->descr_total = le64s (raw + HDR_DESCR_TOTAL);
    h->descr_offset = le64s (raw + HDR_DESCR_OFFSET);
    h->descr_size = le64s (raw + HDR_DESCR_SIZE);
    h->data_offset = le64s (raw + HDR_DATA_OFFSET);
    h->data_size = le64s (raw + HDR_DATA_SIZE);
}

void
sif_encode_header (struct sif_image *img)
{
    uint8_t *raw = img->raw_header;
    const struct sif_header *h = &img->hdr;

    memcpy (raw + HDR_ARCH, h->arch, 3);
    put64 (raw + HDR_CREATED, h->created);
    put64 (raw + HDR_MODIFIED, h->modified);
    put64 (raw + HDR_DESCR_FREE, h->descr_free);
    put64 (raw + HDR_DESCR_TOTAL, h->descr_total);
    put64 (raw + HDR_DESCR_OFFSET, h->descr_offset);
    put64 (raw + HDR_DESCR_SIZE, h->descr_size);
    put64 (raw + HDR_DATA_OFFSET, h->data_offset);
    put64 (raw + HDR_DATA_SIZE, h->data_size);
}

static void
decode_descriptor (const uint8_t *raw, size_t slot, struct sif_descriptor *d)
{
    memset (d, 0, sizeof (*d));
    d->datatype = le32s (raw + DSC_DATATYPE);
    d->id = le32 (raw + DSC_ID);
    d->raw_group = le32 (raw + DSC_GROUP);
    d->raw_link = le32 (raw + DSC_LINK);
    d->group = d->raw_group & ~SIF_GROUP_MASK;
    d->link = d->raw_link & ~SIF_GROUP_MASK;
    d->link_is_group = (d->raw_link & SIF_GROUP_MASK) == SIF_GROUP_MASK;
    d->offset = le64s (raw + DSC_OFFSET);
    d->size = le64s (raw + DSC_SIZE);
    d->size_with_padding = le64s (raw + DSC_SIZE_PADDED);
    d->created = le64s (raw + DSC_CREATED);
    d->modified = le64s (raw + DSC_MODIFIED);
    d->uid = le64s (raw + DSC_UID);
    d->gid = le64s (raw + DSC_GID);
    memcpy (d->name, raw + DSC_NAME, SIF_NAME_LEN);
    memcpy (d->extra, raw + DSC_EXTRA, SIF_EXTRA_LEN);
    d->slot = slot;
}

void
sif_encode_descriptor (const struct sif_descriptor *d, uint8_t out[SIF_DESCRIPTOR_SIZE])
{
    memset (out, 0, SIF_DESCRIPTOR_SIZE);
    put32 (out + DSC_DATATYPE, (uint32_t) d->datatype);
    out[DSC_USED] = 1;
    put32 (out + DSC_ID, d->id);
    put32 (out + DSC_GROUP, d->raw_group);
    put32 (out + DSC_LINK, d->raw_link);
    put64 (out + DSC_OFFSET, d->offset);
    put64 (out + DSC_SIZE, d->size);
    put64 (out + DSC_SIZE_PADDED, d->size_with_padding);
    put64 (out + DSC_CREATED, d->created);
    put64 (out + DSC_MODIFIED, d->modified);
    put64 (out + DSC_UID, d->uid);
    put64 (out + DSC_GID, d->gid);
    memcpy (out + DSC_NAME, d->name, SIF_NAME_LEN);
    memcpy (out + DSC_EXTRA, d->extra, SIF_EXTRA_LEN);
}

/* [a, a+alen) and [b, b+blen) intersect; all values non-negative and
 * a+alen, b+blen known not to overflow. */
static bool
ranges_overlap (int64_t a, int64_t alen, int64_t b, int64_t blen)
{
    if (alen == 0 || blen == 0)
        return false;
    return a < b + blen && b < a + alen;
}

static int
validate_header (struct sif_image *img, capsa_error_t *err)
{
    const struct sif_header *h = &img->hdr;
    const int64_t fsize = img->file_size;

    if (memcmp (img->raw_header + HDR_MAGIC, SIF_MAGIC_BYTES, SIF_MAGIC_LEN) != 0)
        return sif_invalid (img, err, "bad magic (not a SIF file)");
    if (memcmp (img->raw_header + HDR_VERSION, SIF_VERSION_BYTES, SIF_VERSION_LEN) != 0)
        return sif_invalid (img, err, "unsupported SIF version");

    /* Counts first: bounded before anything is allocated. */
    if (h->descr_total < 0 || h->descr_total > SIF_MAX_DESCRIPTORS)
        return sif_invalid (img, err, "descriptor count %" PRId64 " out of range (0-%d)",
                            h->descr_total, SIF_MAX_DESCRIPTORS);
    if (h->descr_free < 0 || h->descr_free > h->descr_total)
        return sif_invalid (img, err, "free descriptor count %" PRId64 " out of range (0-%" PRId64 ")",
                            h->descr_free, h->descr_total);
    if (h->descr_size != h->descr_total * SIF_DESCRIPTOR_SIZE)
        return sif_invalid (img, err,
                            "descriptor table size %" PRId64 " does not match %" PRId64
                            " descriptors of %d bytes",
                            h->descr_size, h->descr_total, SIF_DESCRIPTOR_SIZE);
    if (h->descr_offset < SIF_HEADER_SIZE)
        return sif_invalid (img, err, "descriptor table offset %" PRId64 " overlaps the header",
                            h->descr_offset);
    if (h->descr_offset > fsize || h->descr_size > fsize - h->descr_offset)
        return sif_invalid (img, err, "descriptor table extends past end of file (truncated image?)");
    if (h->data_offset < 0 || h->data_size < 0)
        return sif_invalid (img, err, "negative data section offset or size");
    if (h->data_offset > fsize || h->data_size > fsize - h->data_offset)
        return sif_invalid (img, err, "data section extends past end of file (truncated image?)");
    return 0;
}

static int
validate_descriptor (struct sif_image *img, const struct sif_descriptor *d, capsa_error_t *err)
{
    const struct sif_header *h = &img->hdr;
    const int64_t fsize = img->file_size;

    if (d->id == 0)
        return sif_invalid (img, err, "descriptor in slot %zu is in use but has object ID 0", d->slot + 1);
    if (d->datatype < SIF_DATA_DEFFILE || d->datatype > SIF_DATA_OCI_BLOB)
        return sif_invalid (img, err, "descriptor %" PRIu32 " has unknown data type 0x%" PRIx32, d->id,
                            (uint32_t) d->datatype);
    if (memchr (d->name, '\0', SIF_NAME_LEN) == NULL)
        return sif_invalid (img, err, "descriptor %" PRIu32 " has an unterminated name", d->id);
    if (d->offset < 0 || d->size < 0)
        return sif_invalid (img, err, "descriptor %" PRIu32 " has a negative offset or size", d->id);
    if (d->offset > fsize || d->size > fsize - d->offset)
        return sif_invalid (img, err, "descriptor %" PRIu32 " extends past end of file", d->id);
    if (d->size > 0 && d->offset < SIF_HEADER_SIZE)
        return sif_invalid (img, err, "descriptor %" PRIu32 " overlaps the SIF header", d->id);
    if (ranges_overlap (d->offset, d->size, h->descr_offset, h->descr_size))
        return sif_invalid (img, err, "descriptor %" PRIu32 " overlaps the descriptor table", d->id);
    return 0;
}

static int
cmp_by_id (const void *a, const void *b)
{
    const struct sif_descriptor *x = *(const struct sif_descriptor *const *) a;
    const struct sif_descriptor *y = *(const struct sif_descriptor *const *) b;
    return (x->id > y->id) - (x->id < y->id);
}

static int
cmp_by_offset (const void *a, const void *b)
{
    const struct sif_descriptor *x = *(const struct sif_descriptor *const *) a;
    const struct sif_descriptor *y = *(const struct sif_descriptor *const *) b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Object IDs unique, objects disjoint: sort instead of comparing all pairs,
 * so that a table of 65536 descriptors stays cheap. */
static int
validate_set (struct sif_image *img, capsa_error_t *err)
{
    cleanup_free const struct sif_descriptor **v = NULL;
    size_t i, n = 0;

    if (img->ndescr < 2)
        return 0;
    v = xcalloc (img->ndescr, sizeof (*v));
    for (i = 0; i < img->ndescr; i++)
        v[i] = &img->descr[i];
    qsort (v, img->ndescr, sizeof (*v), cmp_by_id);
    for (i = 1; i < img->ndescr; i++)
        if (v[i]->id == v[i - 1]->id)
            return sif_invalid (img, err, "two descriptors have object ID %" PRIu32, v[i]->id);

    for (i = 0; i < img->ndescr; i++)
        if (img->descr[i].size > 0)
            v[n++] = &img->descr[i];
    qsort (v, n, sizeof (*v), cmp_by_offset);
    for (i = 1; i < n; i++)
        if (v[i]->offset < v[i - 1]->offset + v[i - 1]->size)
            return sif_invalid (img, err, "descriptors %" PRIu32 " and %" PRIu32 " overlap", v[i - 1]->id,
                                v[i]->id);
    return 0;
}

/* Read and check the descriptor table in bounded chunks. */
static int
load_descriptors (struct sif_image *img, capsa_error_t *err)
{
    enum { CHUNK = 64 };
    const struct sif_header *h = &img->hdr;
    size_t total = (size_t) h->descr_total, slot = 0;
    cleanup_free uint8_t *buf = NULL;

    img->nslots = total;
    img->slot_used = xcalloc (total ? total : 1, 1);
    if (total == 0)
        return 0;
    buf = xmalloc ((size_t) CHUNK * SIF_DESCRIPTOR_SIZE);
    while (slot < total) {
        size_t n = total - slot < CHUNK ? total - slot : CHUNK;
        off_t off = (off_t) (h->descr_offset + (int64_t) slot * SIF_DESCRIPTOR_SIZE);

        if (pread_all (img->fd, buf, n * SIF_DESCRIPTOR_SIZE, off) < 0)
            return capsa_error_make (err, errno, "read SIF descriptors of %s", img->name ? img->name : "image");
        for (size_t i = 0; i < n; i++, slot++) {
            const uint8_t *raw = buf + i * SIF_DESCRIPTOR_SIZE;
            struct sif_descriptor *d;

            if (raw[DSC_USED] == 0)
                continue;
            img->slot_used[slot] = 1;
            if (img->ndescr % 16 == 0)
                img->descr = xrealloc (img->descr, (img->ndescr + 16) * sizeof (*img->descr));
            d = &img->descr[img->ndescr];
            decode_descriptor (raw, slot, d);
            if (validate_descriptor (img, d, err) < 0)
                return -1;
            img->ndescr++;
        }
    }
    return validate_set (img, err);
}

static int
sif_load (int fd, bool owns_fd, const char *name, bool writable, struct sif_image **out, capsa_error_t *err)
{
    struct sif_image *img;
    struct stat st;

    *out = NULL;
    img = xcalloc (1, sizeof (*img));
    img->fd = fd;
    img->owns_fd = owns_fd;
    img->writable = writable;
    img->name = name ? xstrdup (name) : NULL;

    if (fstat (fd, &st) < 0) {
        capsa_error_make (err, errno, "stat %s", name ? name : "SIF image");
        goto fail;
    }
    if (!S_ISREG (st.st_mode)) {
        sif_invalid (img, err, "not a regular file");
        goto fail;
    }
    img->file_size = (int64_t) st.st_size;
    if (img->file_size < SIF_HEADER_SIZE) {
        sif_invalid (img, err, "file too small for a SIF header (%" PRId64 " bytes; truncated image?)",
                     img->file_size);
        goto fail;
    }
    if (pread_all (fd, img->raw_header, SIF_HEADER_SIZE, 0) < 0) {
        capsa_error_make (err, errno, "read SIF header of %s", name ? name : "image");
        goto fail;
    }
    decode_header (img->raw_header, &img->hdr);
    if (validate_header (img, err) < 0 || load_descriptors (img, err) < 0)
        goto fail;
    *out = img;
    return 0;

fail:
    img->owns_fd = false; /* the caller keeps its descriptor on failure */
    sif_close (img);
    return -1;
}

int
sif_open_fd_named (int fd, const char *name, struct sif_image **out, capsa_error_t *err)
{
    return sif_load (fd, false, name, false, out, err);
}

int
sif_open_fd (int fd, struct sif_image **out, capsa_error_t *err)
{
    return sif_load (fd, false, NULL, false, out, err);
}

int
sif_open (const char *path, bool writable, struct sif_image **out, capsa_error_t *err)
{
    cleanup_close int fd = open (path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);

    *out = NULL;
    if (fd < 0)
        return capsa_error_make (err, errno, "open %s", path);
    /* Two writers at once would corrupt the table; readers do not lock. */
    if (writable && flock (fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            return capsa_error_code (err, EBUSY, "SIF image %s is being modified by another process", path);
        return capsa_error_make (err, errno, "lock %s", path);
    }
    if (sif_load (fd, true, path, writable, out, err) < 0)
        return -1;
    steal_fd (&fd);
    return 0;
}

void
sif_close (struct sif_image *img)
{
    if (img == NULL)
        return;
    if (img->owns_fd && img->fd >= 0)
        close (img->fd);
    free (img->name);
    free (img->descr);
    free (img->slot_used);
    free (img);
}

int
sif_image_fd (const struct sif_image *img)
{
    return img->fd;
}

int64_t
sif_image_file_size (const struct sif_image *img)
{
    return img->file_size;
}

const struct sif_header *
sif_get_header (const struct sif_image *img)
{
    return &img->hdr;
}

size_t
sif_descriptor_count (const struct sif_image *img)
{
    return img->ndescr;
}

const struct sif_descriptor *
sif_descriptor_at (const struct sif_image *img, size_t i)
{
    return i < img->ndescr ? &img->descr[i] : NULL;
}

int
sif_find_descriptor (const struct sif_image *img, uint32_t id, const struct sif_descriptor **out,
                     capsa_error_t *err)
{
    *out = NULL;
    if (id == 0)
        return capsa_error_code (err, EINVAL, "invalid object ID 0");
    for (size_t i = 0; i < img->ndescr; i++)
        if (img->descr[i].id == id) {
            *out = &img->descr[i];
            return 0;
        }
    return capsa_error_code (err, ENOENT, "object %" PRIu32 " not found in SIF image%s%s", id,
                      img->name ? " " : "", img->name ? img->name : "");
}

static bool
is_primary (const struct sif_descriptor *d)
{
    return d->datatype == SIF_DATA_PARTITION && le32s (d->extra + PART_PARTTYPE) == SIF_PART_PRIMSYS;
}

int
sif_find_primary_partition (const struct sif_image *img, const struct sif_descriptor **out,
                            capsa_error_t *err)
{
    const struct sif_descriptor *found = NULL;

    *out = NULL;
    for (size_t i = 0; i < img->ndescr; i++) {
        if (!is_primary (&img->descr[i]))
            continue;
        if (found)
            return sif_invalid (img, err, "objects %" PRIu32 " and %" PRIu32 " are both primary partitions",
                                found->id, img->descr[i].id);
        found = &img->descr[i];
    }
    if (found == NULL)
        return capsa_error_code (err, ENOENT, "no primary partition found in SIF image%s%s",
                          img->name ? " " : "", img->name ? img->name : "");
    *out = found;
    return 0;
}

static int
wrong_type (const struct sif_descriptor *d, const char *what, capsa_error_t *err)
{
    return capsa_error_code (err, EINVAL, "object %" PRIu32 " is not %s (it is %s)", d->id, what,
                      sif_datatype_name (d->datatype));
}

int
sif_get_partition (const struct sif_descriptor *d, struct sif_partition *out, capsa_error_t *err)
{
    memset (out, 0, sizeof (*out));
    if (d->datatype != SIF_DATA_PARTITION)
        return wrong_type (d, "a partition", err);
    out->fstype = le32s (d->extra + PART_FSTYPE);
    out->parttype = le32s (d->extra + PART_PARTTYPE);
    memcpy (out->arch, d->extra + PART_ARCH, 3);
    return 0;
}

int
sif_get_signature (const struct sif_descriptor *d, struct sif_signature *out, capsa_error_t *err)
{
    static const uint8_t zero[20];

    memset (out, 0, sizeof (*out));
    if (d->datatype != SIF_DATA_SIGNATURE)
        return wrong_type (d, "a signature", err);
    out->hashtype = le32s (d->extra + SIG_HASHTYPE);
    memcpy (out->entity, d->extra + SIG_ENTITY, sizeof (out->entity));
    out->has_entity = memcmp (out->entity, zero, sizeof (zero)) != 0;
    return 0;
}

int
sif_get_crypto_message (const struct sif_descriptor *d, struct sif_crypto_message *out, capsa_error_t *err)
{
    memset (out, 0, sizeof (*out));
    if (d->datatype != SIF_DATA_CRYPTO_MESSAGE)
        return wrong_type (d, "a cryptographic message", err);
    out->format = le32s (d->extra + CRYPT_FORMAT);
    out->message = le32s (d->extra + CRYPT_MESSAGE);
    return 0;
}

int
sif_get_sbom_format (const struct sif_descriptor *d, int32_t *out, capsa_error_t *err)
{
    *out = 0;
    if (d->datatype != SIF_DATA_SBOM)
        return wrong_type (d, "an SBOM", err);
    *out = le32s (d->extra + SBOM_FORMAT);
    return 0;
}

int
sif_get_oci_digest (const struct sif_descriptor *d, char *out, size_t outlen, capsa_error_t *err)
{
    const uint8_t *p = d->extra + OCI_DIGEST;
    size_t n = 0, max = SIF_EXTRA_LEN - OCI_DIGEST;

    if (outlen > 0)
        out[0] = '\0';
    if (d->datatype != SIF_DATA_OCI_BLOB && d->datatype != SIF_DATA_OCI_ROOT_INDEX)
        return wrong_type (d, "an OCI blob", err);
    while (n < max && p[n] != '\0')
        n++;
    if (n >= outlen)
        return capsa_error_code (err, ENOBUFS, "digest of object %" PRIu32 " too long", d->id);
    memcpy (out, p, n);
    out[n] = '\0';
    return 0;
}

int
sif_read_object_at (const struct sif_image *img, const struct sif_descriptor *d, void *buf, size_t len,
                    int64_t off, capsa_error_t *err)
{
    if (off < 0 || off > d->size || len > (uint64_t) (d->size - off))
        return capsa_error_code (err, EINVAL, "read outside object %" PRIu32, d->id);
    if (len > 0 && pread_all (img->fd, buf, len, (off_t) (d->offset + off)) < 0)
        return capsa_error_make (err, errno, "read object %" PRIu32 " of %s", d->id,
                                 img->name ? img->name : "SIF image");
    return 0;
}

int
sif_read_object (const struct sif_image *img, const struct sif_descriptor *d, size_t max, char **out,
                 size_t *outlen, capsa_error_t *err)
{
    cleanup_free char *buf = NULL;

    *out = NULL;
    if (outlen)
        *outlen = 0;
    if ((uint64_t) d->size > max || (uint64_t) d->size >= SIZE_MAX)
        return capsa_error_code (err, EFBIG, "object %" PRIu32 " is larger than %zu bytes", d->id, max);
    buf = xmalloc ((size_t) d->size + 1);
    if (sif_read_object_at (img, d, buf, (size_t) d->size, 0, err) < 0)
        return -1;
    buf[d->size] = '\0';
    if (outlen)
        *outlen = (size_t) d->size;
    *out = steal_ptr (&buf);
    return 0;
}

int
sif_copy_object (const struct sif_image *img, const struct sif_descriptor *d, int out_fd, capsa_error_t *err)
{
    enum { BUFSZ = 1 << 20 };
    cleanup_free char *buf = NULL;
    int64_t done = 0;

    buf = xmalloc (d->size < BUFSZ ? (size_t) d->size + 1 : BUFSZ);
    while (done < d->size) {
        size_t n = d->size - done < BUFSZ ? (size_t) (d->size - done) : BUFSZ;

        if (sif_read_object_at (img, d, buf, n, done, err) < 0)
            return -1;
        if (write_all (out_fd, buf, n) < 0)
            return capsa_error_make (err, errno, "write object %" PRIu32, d->id);
        done += (int64_t) n;
    }
    return 0;
}

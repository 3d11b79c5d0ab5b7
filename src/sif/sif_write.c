/* Creating and modifying SIF images, with the same on-disk results as
 * sylabs/sif (object IDs are slot+1, partitions aligned to 4096 by
 * default, deleted descriptors zeroed, setprim demotes the old primary to
 * a plain system partition).
 *
 * Crash and error safety: a new image is written to a temporary file next
 * to its final path and renamed into place.  Modifications write data
 * first, then the descriptor, then the header; if a step fails the earlier
 * ones are undone (descriptor restored, file truncated back) so the image
 * stays as it was. */
#include "sif/sif_private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/utils.h"

#define MAX_ALIGNMENT (INT64_C (1) << 30)

/* Timestamp for a modification: deterministic images (nil UUID, unset
 * times) stay deterministic, as with sylabs/sif. */
static int64_t
mod_time (const struct sif_image *img, int64_t requested)
{
    static const uint8_t nil[16];

    if (requested != 0)
        return requested;
    if (memcmp (img->hdr.uuid, nil, 16) == 0 && img->hdr.created == SIF_TIME_UNSET
        && img->hdr.modified == SIF_TIME_UNSET)
        return SIF_TIME_UNSET;
    return (int64_t) time (NULL);
}

static int
need_writable (const struct sif_image *img, capsa_error_t *err)
{
    if (!img->writable)
        return capsa_error_code (err, EBADF, "SIF image %s was opened read-only", img->name ? img->name : "");
    return 0;
}

static int
write_header (struct sif_image *img, capsa_error_t *err)
{
    sif_encode_header (img);
    if (pwrite_all (img->fd, img->raw_header, SIF_HEADER_SIZE, 0) < 0)
        return capsa_error_make (err, errno, "write SIF header of %s", img->name ? img->name : "image");
    return 0;
}

static off_t
slot_offset (const struct sif_image *img, size_t slot)
{
    return (off_t) (img->hdr.descr_offset + (int64_t) slot * SIF_DESCRIPTOR_SIZE);
}

static int
write_slot (struct sif_image *img, size_t slot, const uint8_t raw[SIF_DESCRIPTOR_SIZE], capsa_error_t *err)
{
    if (pwrite_all (img->fd, raw, SIF_DESCRIPTOR_SIZE, slot_offset (img, slot)) < 0)
        return capsa_error_make (err, errno, "write SIF descriptor of %s", img->name ? img->name : "image");
    return 0;
}

static int
write_descriptor (struct sif_image *img, const struct sif_descriptor *d, capsa_error_t *err)
{
    uint8_t raw[SIF_DESCRIPTOR_SIZE];
    sif_encode_descriptor (d, raw);
    return write_slot (img, d->slot, raw, err);
}

/* ---- sif_create -------------------------------------------------------- */

int
sif_create (const char *path, const struct sif_create_opts *opts, capsa_error_t *err)
{
    static const struct sif_create_opts defaults = { 0 };
    uint8_t hdr[SIF_HEADER_SIZE] = { 0 };
    const char *launch, *arch = SIF_ARCH_UNKNOWN;
    cleanup_free char *dcopy = NULL, *bcopy = NULL, *tmp = NULL;
    cleanup_close int fd = -1;
    int64_t ndescr, t;
    int ret = -1;

    if (opts == NULL)
        opts = &defaults;
    launch = opts->launch ? opts->launch : SIF_LAUNCH_SCRIPT;
    if (strlen (launch) >= SIF_LAUNCH_LEN)
        return capsa_error_code (err, EINVAL, "launch script longer than %d bytes", SIF_LAUNCH_LEN - 1);
    ndescr = opts->descriptors ? opts->descriptors : SIF_DEFAULT_DESCRIPTORS;
    if (ndescr < 1 || ndescr > SIF_MAX_DESCRIPTORS)
        return capsa_error_code (err, EINVAL, "descriptor count %" PRId64 " out of range (1-%d)", ndescr,
                          SIF_MAX_DESCRIPTORS);
    if (opts->arch && (arch = sif_arch_code (opts->arch)) == NULL)
        return capsa_error_code (err, EINVAL, "unknown architecture %s", opts->arch);
    t = opts->time ? opts->time : (int64_t) time (NULL);

    memcpy (hdr + HDR_LAUNCH, launch, strlen (launch));
    memcpy (hdr + HDR_MAGIC, SIF_MAGIC_BYTES, SIF_MAGIC_LEN);
    memcpy (hdr + HDR_VERSION, SIF_VERSION_BYTES, SIF_VERSION_LEN);
    memcpy (hdr + HDR_ARCH, arch, 3);
    if (opts->uuid)
        memcpy (hdr + HDR_UUID, opts->uuid, 16);
    else {
        if (capsa_random_bytes (hdr + HDR_UUID, 16, err) < 0)
            return -1;
        hdr[HDR_UUID + 6] = (uint8_t) ((hdr[HDR_UUID + 6] & 0x0f) | 0x40); /* version 4 */
        hdr[HDR_UUID + 8] = (uint8_t) ((hdr[HDR_UUID + 8] & 0x3f) | 0x80); /* RFC 4122 variant */
    }
    put64 (hdr + HDR_CREATED, t);
    put64 (hdr + HDR_MODIFIED, t);
    put64 (hdr + HDR_DESCR_FREE, ndescr);
    put64 (hdr + HDR_DESCR_TOTAL, ndescr);
    put64 (hdr + HDR_DESCR_OFFSET, SIF_DESCR_OFFSET_DEFAULT);
    put64 (hdr + HDR_DESCR_SIZE, ndescr * SIF_DESCRIPTOR_SIZE);
    put64 (hdr + HDR_DATA_OFFSET, SIF_DESCR_OFFSET_DEFAULT + ndescr * SIF_DESCRIPTOR_SIZE);
    put64 (hdr + HDR_DATA_SIZE, 0);

    /* A hidden, unpredictable name beside the target, created exclusively;
     * mode 0755 like siftool (the umask applies). */
    dcopy = xstrdup (path);
    bcopy = xstrdup (path);
    for (int tries = 0; fd < 0; tries++) {
        uint8_t rnd[6];

        if (capsa_random_bytes (rnd, sizeof (rnd), err) < 0)
            return -1;
        free (tmp);
        tmp = xasprintf ("%s/.%s.%02x%02x%02x%02x%02x%02x.tmp", dirname (dcopy), basename (bcopy), rnd[0],
                         rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
        fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0755);
        if (fd < 0 && (errno != EEXIST || tries > 16))
            return capsa_error_make (err, errno, "create %s", tmp);
    }

    if (pwrite_all (fd, hdr, sizeof (hdr), 0) < 0)
        capsa_error_make (err, errno, "write %s", tmp);
    else if (ftruncate (fd, (off_t) (SIF_DESCR_OFFSET_DEFAULT + ndescr * SIF_DESCRIPTOR_SIZE)) < 0)
        capsa_error_make (err, errno, "truncate %s", tmp);
    else if (fsync (fd) < 0)
        capsa_error_make (err, errno, "fsync %s", tmp);
    else if (close (steal_fd (&fd)) < 0)
        capsa_error_make (err, errno, "close %s", tmp);
    else if (rename (tmp, path) < 0)
        capsa_error_make (err, errno, "rename %s to %s", tmp, path);
    else
        ret = 0;
    if (ret < 0)
        unlink (tmp);
    return ret;
}

/* ---- sif_add_object ---------------------------------------------------- */

static int
build_extra (struct sif_image *img, const struct sif_add_opts *o, uint8_t extra[SIF_EXTRA_LEN],
             bool *hash_data, capsa_error_t *err)
{
    const char *code;

    memset (extra, 0, SIF_EXTRA_LEN);
    *hash_data = false;
    switch (o->datatype) {
    case SIF_DATA_PARTITION:
        if (o->arch == NULL || (code = sif_arch_code (o->arch)) == NULL)
            return capsa_error_code (err, EINVAL, "unknown architecture %s", o->arch ? o->arch : "(none)");
        if (o->parttype == SIF_PART_PRIMSYS) {
            for (size_t i = 0; i < img->ndescr; i++) {
                const struct sif_descriptor *d = &img->descr[i];
                if (d->datatype == SIF_DATA_PARTITION && le32s (d->extra + PART_PARTTYPE) == SIF_PART_PRIMSYS)
                    return capsa_error_code (err, EEXIST, "image already contains a primary partition (object %" PRIu32 ")",
                                      d->id);
            }
        }
        put32 (extra + PART_FSTYPE, (uint32_t) o->fstype);
        put32 (extra + PART_PARTTYPE, (uint32_t) o->parttype);
        memcpy (extra + PART_ARCH, code, 3);
        break;
    case SIF_DATA_SIGNATURE:
        put32 (extra + SIG_HASHTYPE, (uint32_t) o->hashtype);
        if (o->entity)
            memcpy (extra + SIG_ENTITY, o->entity, 20);
        break;
    case SIF_DATA_CRYPTO_MESSAGE:
        put32 (extra + CRYPT_FORMAT, (uint32_t) o->format);
        put32 (extra + CRYPT_MESSAGE, (uint32_t) o->message);
        break;
    case SIF_DATA_SBOM:
        put32 (extra + SBOM_FORMAT, (uint32_t) o->sbom_format);
        break;
    case SIF_DATA_OCI_BLOB:
    case SIF_DATA_OCI_ROOT_INDEX:
        if (o->digest == NULL)
            *hash_data = true;
        else if (strlen (o->digest) > SIF_EXTRA_LEN - OCI_DIGEST)
            return capsa_error_code (err, EINVAL, "digest value too large");
        else
            memcpy (extra + OCI_DIGEST, o->digest, strlen (o->digest));
        break;
    default:
        break;
    }
    return 0;
}

/* Where new data may go: after the data section, and (should the header
 * understate it) never over an existing object or the descriptor table. */
static int64_t
append_start (const struct sif_image *img)
{
    const struct sif_header *h = &img->hdr;
    int64_t start = h->data_offset + h->data_size; /* validated: <= file size */

    if (start < h->descr_offset + h->descr_size)
        start = h->descr_offset + h->descr_size;
    for (size_t i = 0; i < img->ndescr; i++)
        if (img->descr[i].offset + img->descr[i].size > start)
            start = img->descr[i].offset + img->descr[i].size;
    return start;
}

/* Copy data_fd to img at offset, hashing on the way if sha is set.
 * Returns the byte count in *copied. */
static int
copy_in (struct sif_image *img, int data_fd, int64_t offset, struct sif_sha256 *sha, int64_t *copied,
         capsa_error_t *err)
{
    enum { BUFSZ = 1 << 20 };
    cleanup_free char *buf = NULL;
    int64_t done = 0;

    /* Without hashing, let the kernel copy (no round trip through user
     * space); fall back to read/write where it cannot (pipes, old kernels). */
    if (sha == NULL) {
        for (;;) {
            loff_t out = (loff_t) (offset + done);
            ssize_t r = copy_file_range (data_fd, NULL, img->fd, &out, BUFSZ * 16, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                if (r == 0) {
                    *copied = done;
                    return 0;
                }
                if (done == 0 && (errno == EINVAL || errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP
                                  || errno == EBADF))
                    break; /* not possible here: copy by hand */
                return capsa_error_make (err, errno, "copy object data to %s", img->name ? img->name : "image");
            }
            if (done > INT64_MAX - offset - r)
                return capsa_error_code (err, EFBIG, "object too large");
            done += r;
        }
    }
    buf = xmalloc (BUFSZ);
    for (;;) {
        ssize_t r = read (data_fd, buf, BUFSZ);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return capsa_error_make (err, errno, "read object data");
        }
        if (r == 0)
            break;
        if (done > INT64_MAX - offset - r)
            return capsa_error_code (err, EFBIG, "object too large");
        if (sha)
            sif_sha256_update (sha, buf, (size_t) r);
        if (pwrite_all (img->fd, buf, (size_t) r, (off_t) (offset + done)) < 0)
            return capsa_error_make (err, errno, "write object data to %s", img->name ? img->name : "image");
        done += r;
    }
    *copied = done;
    return 0;
}

static void
insert_descriptor (struct sif_image *img, const struct sif_descriptor *d)
{
    size_t pos = 0;

    while (pos < img->ndescr && img->descr[pos].slot < d->slot)
        pos++;
    img->descr = xrealloc (img->descr, (img->ndescr + 1) * sizeof (*img->descr));
    memmove (&img->descr[pos + 1], &img->descr[pos], (img->ndescr - pos) * sizeof (*img->descr));
    img->descr[pos] = *d;
    img->ndescr++;
    img->slot_used[d->slot] = 1;
}

int
sif_add_object (struct sif_image *img, const struct sif_add_opts *o, int data_fd, uint32_t *new_id,
                capsa_error_t *err)
{
    struct sif_descriptor d;
    struct sif_sha256 sha;
    struct sif_header saved_hdr = img->hdr;
    uint8_t saved_slot[SIF_DESCRIPTOR_SIZE];
    bool hash_data;
    size_t slot;
    int64_t align, start, offset, copied = 0, t;
    int64_t old_size = img->file_size;
    struct stat st;

    if (need_writable (img, err) < 0)
        return -1;
    if (o->datatype < SIF_DATA_DEFFILE || o->datatype > SIF_DATA_OCI_BLOB)
        return capsa_error_code (err, EINVAL, "unknown data type 0x%" PRIx32, (uint32_t) o->datatype);
    for (slot = 0; slot < img->nslots && img->slot_used[slot]; slot++)
        ;
    if (slot == img->nslots)
        return capsa_error_code (err, ENOSPC, "no free descriptor left in SIF image %s (all %zu in use)",
                          img->name ? img->name : "", img->nslots);
    for (size_t i = 0; i < img->ndescr; i++)
        if (img->descr[i].id == (uint32_t) slot + 1)
            return capsa_error_code (err, EEXIST, "object ID %zu is already in use", slot + 1);

    memset (&d, 0, sizeof (d));
    d.slot = slot;
    d.id = (uint32_t) slot + 1;
    d.datatype = o->datatype;
    if (o->group & SIF_GROUP_MASK || o->link & SIF_GROUP_MASK)
        return capsa_error_code (err, EINVAL, "group or link ID out of range");
    d.group = o->group;
    d.raw_group = o->group | SIF_GROUP_MASK;
    d.link = o->link;
    d.link_is_group = o->link_is_group && o->link != 0;
    d.raw_link = d.link_is_group ? o->link | SIF_GROUP_MASK : o->link;
    if (o->name && strlen (o->name) >= SIF_NAME_LEN)
        return capsa_error_code (err, EINVAL, "object name longer than %d bytes", SIF_NAME_LEN - 1);
    if (o->name)
        memcpy (d.name, o->name, strlen (o->name));
    if (build_extra (img, o, d.extra, &hash_data, err) < 0)
        return -1;
    align = o->alignment >= 0 ? o->alignment : (o->datatype == SIF_DATA_PARTITION ? 4096 : 0);
    if (align > MAX_ALIGNMENT)
        return capsa_error_code (err, EINVAL, "alignment %" PRId64 " too large", align);

    start = append_start (img);
    offset = start;
    if (align > 1 && start % align != 0)
        offset = start + (align - start % align);

    if (pread_all (img->fd, saved_slot, SIF_DESCRIPTOR_SIZE, slot_offset (img, slot)) < 0)
        return capsa_error_make (err, errno, "read SIF descriptor");
    if (hash_data)
        sif_sha256_init (&sha);
    if (copy_in (img, data_fd, offset, hash_data ? &sha : NULL, &copied, err) < 0)
        goto rollback;
    if (hash_data) {
        uint8_t sum[32];
        char *p = (char *) d.extra + OCI_DIGEST;

        sif_sha256_final (&sha, sum);
        memcpy (p, "sha256:", 7);
        for (int i = 0; i < 32; i++)
            snprintf (p + 7 + 2 * i, 3, "%02x", sum[i]);
    }
    /* The data must be on disk before a descriptor points at it (in a
     * file that others may already use). */
    if (!o->no_sync && fdatasync (img->fd) < 0 && errno != EINVAL) {
        capsa_error_make (err, errno, "sync %s", img->name ? img->name : "image");
        goto rollback;
    }

    t = mod_time (img, o->time);
    d.offset = offset;
    d.size = copied;
    d.size_with_padding = offset - start + copied;
    d.created = d.modified = t;
    if (write_descriptor (img, &d, err) < 0)
        goto rollback;

    if (o->datatype == SIF_DATA_PARTITION && o->parttype == SIF_PART_PRIMSYS)
        memcpy (img->hdr.arch, d.extra + PART_ARCH, 3);
    if (img->hdr.descr_free > 0)
        img->hdr.descr_free--;
    img->hdr.data_size = offset + copied - img->hdr.data_offset;
    img->hdr.modified = t;
    if (write_header (img, err) < 0)
        goto rollback;

    insert_descriptor (img, &d);
    if (fstat (img->fd, &st) == 0)
        img->file_size = (int64_t) st.st_size;
    else if (offset + copied > img->file_size)
        img->file_size = offset + copied;
    if (new_id)
        *new_id = d.id;
    return 0;

rollback:
    /* Best effort: put back what was there; the first error is reported. */
    img->hdr = saved_hdr;
    (void) write_slot (img, slot, saved_slot, NULL);
    sif_encode_header (img);
    (void) pwrite_all (img->fd, img->raw_header, SIF_HEADER_SIZE, 0);
    if (ftruncate (img->fd, (off_t) old_size) < 0) {
        /* nothing more can be done */
    }
    return -1;
}

/* ---- sif_delete_object ------------------------------------------------- */

static int
zero_range (struct sif_image *img, int64_t offset, int64_t size, capsa_error_t *err)
{
    static const char zeros[65536];
    int64_t done = 0;

    while (done < size) {
        size_t n = size - done < (int64_t) sizeof (zeros) ? (size_t) (size - done) : sizeof (zeros);
        if (pwrite_all (img->fd, zeros, n, (off_t) (offset + done)) < 0)
            return capsa_error_make (err, errno, "zero object data in %s", img->name ? img->name : "image");
        done += (int64_t) n;
    }
    return 0;
}

static size_t
index_of (const struct sif_image *img, const struct sif_descriptor *d)
{
    return (size_t) (d - img->descr);
}

int
sif_delete_object (struct sif_image *img, uint32_t id, bool zero, bool compact, capsa_error_t *err)
{
    const struct sif_descriptor *cd;
    struct sif_descriptor d;
    uint8_t empty[SIF_DESCRIPTOR_SIZE] = { 0 };
    size_t idx;
    int64_t t;

    if (need_writable (img, err) < 0 || sif_find_descriptor (img, id, &cd, err) < 0)
        return -1;
    d = *cd;
    idx = index_of (img, cd);
    t = mod_time (img, 0);

    if (zero && zero_range (img, d.offset, d.size, err) < 0)
        return -1;
    if (write_slot (img, d.slot, empty, err) < 0)
        return -1;

    memmove (&img->descr[idx], &img->descr[idx + 1], (img->ndescr - idx - 1) * sizeof (*img->descr));
    img->ndescr--;
    img->slot_used[d.slot] = 0;

    if (d.datatype == SIF_DATA_PARTITION && le32s (d.extra + PART_PARTTYPE) == SIF_PART_PRIMSYS)
        memcpy (img->hdr.arch, SIF_ARCH_UNKNOWN, 3);
    if (img->hdr.descr_free < img->hdr.descr_total)
        img->hdr.descr_free++;
    img->hdr.modified = t;

    if (compact) {
        int64_t end = img->hdr.data_offset, floor = img->hdr.descr_offset + img->hdr.descr_size;

        for (size_t i = 0; i < img->ndescr; i++)
            if (img->descr[i].offset + img->descr[i].size > end)
                end = img->descr[i].offset + img->descr[i].size;
        if (end < floor)
            end = floor;
        if (end < img->file_size) {
            if (ftruncate (img->fd, (off_t) end) < 0)
                return capsa_error_make (err, errno, "truncate %s", img->name ? img->name : "image");
            img->file_size = end;
        }
        img->hdr.data_size = end > img->hdr.data_offset ? end - img->hdr.data_offset : 0;
    }
    return write_header (img, err);
}

/* ---- sif_set_primary --------------------------------------------------- */

static void
set_parttype (struct sif_descriptor *d, int32_t parttype, int64_t t)
{
    int32_t fs = le32s (d->extra + PART_FSTYPE);
    uint8_t arch[3];

    /* Re-encoded whole, as sylabs/sif does: bytes after the arch are cleared. */
    memcpy (arch, d->extra + PART_ARCH, 3);
    memset (d->extra, 0, SIF_EXTRA_LEN);
    put32 (d->extra + PART_FSTYPE, (uint32_t) fs);
    put32 (d->extra + PART_PARTTYPE, (uint32_t) parttype);
    memcpy (d->extra + PART_ARCH, arch, 3);
    d->modified = t;
}

int
sif_set_primary (struct sif_image *img, uint32_t id, capsa_error_t *err)
{
    const struct sif_descriptor *cd, *old = NULL;
    struct sif_descriptor nd, od = { 0 };
    struct sif_header saved_hdr;
    struct sif_partition p;
    int64_t t;

    if (need_writable (img, err) < 0 || sif_find_descriptor (img, id, &cd, err) < 0)
        return -1;
    if (cd->datatype != SIF_DATA_PARTITION)
        return capsa_error_code (err, EINVAL, "object %" PRIu32 " is not a partition", id);
    sif_get_partition (cd, &p, NULL);
    if (p.parttype == SIF_PART_PRIMSYS)
        return 0;
    if (p.parttype != SIF_PART_SYSTEM)
        return capsa_error_code (err, EINVAL, "object %" PRIu32 " is not a system partition", id);
    {
        capsa_error_t perr = NULL;
        if (sif_find_primary_partition (img, &old, &perr) < 0) {
            int code = perr ? perr->code : 0;
            if (code != ENOENT) {
                capsa_error_make (err, 0, "%s", perr ? perr->msg : "cannot find the primary partition");
                capsa_error_free (&perr);
                return -1;
            }
            capsa_error_free (&perr);
            old = NULL;
        }
    }

    t = mod_time (img, 0);
    nd = *cd;
    set_parttype (&nd, SIF_PART_PRIMSYS, t);
    if (old) {
        od = *old;
        set_parttype (&od, SIF_PART_SYSTEM, t);
        if (write_descriptor (img, &od, err) < 0)
            return -1;
    }
    if (write_descriptor (img, &nd, err) < 0) {
        if (old)
            (void) write_descriptor (img, old, NULL);
        return -1;
    }
    saved_hdr = img->hdr;
    memcpy (img->hdr.arch, nd.extra + PART_ARCH, 3);
    img->hdr.modified = t;
    if (write_header (img, err) < 0) {
        img->hdr = saved_hdr;
        (void) write_descriptor (img, cd, NULL);
        if (old)
            (void) write_descriptor (img, old, NULL);
        return -1;
    }
    img->descr[index_of (img, cd)] = nd;
    if (old)
        img->descr[index_of (img, old)] = od;
    return 0;
}

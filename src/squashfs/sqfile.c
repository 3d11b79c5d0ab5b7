/* A read-only libsquashfs file object over a read callback: see sqfile.h. */
#include "squashfs/sqfile.h"

#include <sqfs/error.h>

int
capsa_sqfile_read (struct capsa_sqfile *f, uint64_t off, void *buf, size_t len)
{
    if (off > f->size || len > f->size - off)
        return SQFS_ERROR_OUT_OF_BOUNDS;
    if (len == 0)
        return 0;
    return f->read (f->ctx, buf, len, off) < 0 ? SQFS_ERROR_IO : 0;
}

static int
sqfile_read_at (sqfs_file_t *base, sqfs_u64 offset, void *buffer, size_t size)
{
    return capsa_sqfile_read ((struct capsa_sqfile *) base, offset, buffer, size);
}

static int
sqfile_write_at (sqfs_file_t *base, sqfs_u64 offset, const void *buffer, size_t size)
{
    (void) base, (void) offset, (void) buffer, (void) size;
    return SQFS_ERROR_IO;
}

static sqfs_u64
sqfile_get_size (const sqfs_file_t *base)
{
    return ((const struct capsa_sqfile *) base)->size;
}

static int
sqfile_truncate (sqfs_file_t *base, sqfs_u64 size)
{
    (void) base, (void) size;
    return SQFS_ERROR_IO;
}

static void
sqfile_destroy (sqfs_object_t *obj)
{
    (void) obj; /* embedded in its owner */
}

void
capsa_sqfile_init (struct capsa_sqfile *f, capsa_sqfile_read_fn read, void *ctx, uint64_t size)
{
    f->base.base.destroy = sqfile_destroy;
    f->base.base.copy = NULL;
    f->base.read_at = sqfile_read_at;
    f->base.write_at = sqfile_write_at;
    f->base.get_size = sqfile_get_size;
    f->base.truncate = sqfile_truncate;
    f->read = read;
    f->ctx = ctx;
    f->size = size;
}

const char *
capsa_sqfs_strerror (int e, const char *outside)
{
    switch (e) {
    case SQFS_ERROR_ALLOC:
        return "out of memory";
    case SQFS_ERROR_IO:
        return "I/O error";
    case SQFS_ERROR_COMPRESSOR:
        return "decompression failed";
    case SQFS_ERROR_CORRUPTED:
        return "corrupted";
    case SQFS_ERROR_UNSUPPORTED:
        return "unsupported feature";
    case SQFS_ERROR_OVERFLOW:
        return "numeric overflow";
    case SQFS_ERROR_OUT_OF_BOUNDS:
        return outside;
    case SFQS_ERROR_SUPER_MAGIC: /* (sic: libsquashfs 1.2) */
        return "not a squashfs";
    case SFQS_ERROR_SUPER_VERSION:
        return "unsupported squashfs version";
    case SQFS_ERROR_SUPER_BLOCK_SIZE:
        return "invalid block size";
    default:
        return "invalid";
    }
}

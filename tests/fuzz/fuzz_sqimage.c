/* libFuzzer target for the image server's squashfs reader
 * (src/imagefuse/sqimage.c), which serves the squashfs images users bring:
 * libsquashfs's superblock, id, fragment, xattr, inode and directory
 * parsing through capsa's file object, and capsa's own checks of block
 * lists, fragment locations, directory entry names and the caches.
 *
 * Each input is a squashfs image.  It is opened, then walked as the FUSE
 * operations would: every directory listed (a bounded number), each entry
 * looked up and its inode decoded, symlinks read, files read in two
 * pieces (at the start and across the first block boundary), extended
 * attributes listed and read.  A small data cache makes evictions happen.
 * Seeds in regress-sqimage/ were made by mksquashfs (gzip, xz, lz4, zstd;
 * fragments, sparse files, symlinks, hard links, devices, xattrs).
 *
 * Build metadata for tests/fuzz/build.sh follows. */
// fuzz-sources: src/imagefuse/sqimage.c src/imagefuse/objcache.c src/squashfs/sqfile.c
// fuzz-libs: -lsquashfs -lpthread
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imagefuse/sqimage.h"
#include "lib/utils.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

struct mem {
    const uint8_t *p;
    size_t n;
};

static int
mem_read (void *ctx, void *buf, size_t len, uint64_t off)
{
    const struct mem *m = ctx;
    if (off > m->n || len > m->n - off)
        return -EIO;
    memcpy (buf, m->p + off, len);
    return 0;
}

/* Bounds on the work one input may cause. */
static unsigned budget;

static void
walk (struct sqi_image *img, struct sqi_inode *dir, int depth)
{
    struct sqi_dir *d = NULL;
    if (depth > 8 || budget == 0 || sqi_dir_get (img, dir, &d) < 0)
        return;
    for (size_t i = 0; i < sqi_dir_count (d) && budget > 0; i++, budget--) {
        const struct sqi_dirent *e = sqi_dir_entry (d, i);
        uint64_t ref = 0;
        struct sqi_inode *in = NULL;
        if (sqi_lookup (img, dir, e->name, &ref) < 0 || sqi_inode_get (img, ref, &in) < 0)
            continue;
        const struct stat *st = sqi_inode_stat (in);
        char buf[8192];
        if (S_ISREG (st->st_mode)) {
            uint32_t bs = sqi_block_size (img);
            (void) sqi_read (img, in, buf, sizeof (buf), 0);
            (void) sqi_read (img, in, buf, sizeof (buf), bs > 100 ? bs - 100 : 0);
            (void) sqi_read (img, in, buf, 16, (uint64_t) st->st_size - 1);
        } else if (S_ISLNK (st->st_mode)) {
            const char *t = sqi_inode_link (in);
            if (t)
                (void) strlen (t);
        } else if (S_ISDIR (st->st_mode)) {
            walk (img, in, depth + 1);
        }
        if (sqi_has_xattrs (img)) {
            ssize_t n = sqi_listxattr (img, in, buf, sizeof (buf));
            if (n > 0 && (size_t) n < sizeof (buf)) {
                buf[n] = '\0';
                char val[256];
                (void) sqi_getxattr (img, in, buf, val, sizeof (val));
            }
        }
        sqi_inode_put (img, in);
    }
    sqi_dir_put (img, d);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    struct mem m = { data, size };
    struct sqi_limits lim = { .data_cache_bytes = 64 * 1024, .meta_cache_bytes = 256 * 1024 };
    struct sqi_image *img = NULL;
    capsa_error_t err = NULL;

    if (sqi_open (mem_read, &m, size, &lim, &img, &err) < 0) {
        capsa_error_free (&err);
        return 0;
    }
    struct sqi_inode *root = NULL;
    if (sqi_inode_get (img, sqi_root_ref (img), &root) == 0) {
        struct statvfs sv;
        sqi_statfs (img, &sv);
        budget = 2000;
        walk (img, root, 0);
        sqi_inode_put (img, root);
    }
    sqi_close (img);
    return 0;
}

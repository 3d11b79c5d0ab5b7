/* A squashfs image read by many threads at once, for capsa's image server
 * (src/imagefuse): libsquashfs parses the image, this module caches what it
 * parsed and what it decompressed, shared by every thread and every FUSE
 * connection of the server.
 *
 *   inodes      decoded once (libsquashfs), kept by inode reference
 *   directories listed once, kept sorted by name (binary search lookups)
 *   data        every data and fragment block decompressed once, kept up
 *               to a byte budget (least recently used out first); a block
 *               that several threads want at once is decompressed by one of
 *               them while the others wait
 *
 * Each thread has its own decompressor and libsquashfs metadata readers
 * (libsquashfs objects are not thread-safe); the caches are sharded hash
 * tables under mutexes.  Everything here is immutable once published:
 * callers hold a reference (get/put) while they use an object.
 *
 * The bytes come from a read function (a file at an offset, or an
 * encrypted image's plaintext, src/crypt): [0, size) is the squashfs.
 * They are the user's and untrusted: every size, offset and count is
 * checked before use, and a corrupt structure is EIO for the request that
 * met it, never a crash (tests/fuzz/fuzz_sqimage.c).
 *
 * Error convention: sqi_open() fills a capsa_error_t; the per-request
 * calls, used on the FUSE hot path, return 0 or a negative errno. */
#ifndef CAPSA_SQIMAGE_H
#define CAPSA_SQIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "lib/error.h"

/* Read len bytes at off of the squashfs into buf: 0, or a negative errno
 * (a short read is an error).  Called from many threads at once.  The
 * same type as capsa_sqfile_read_fn (src/squashfs/sqfile.h), the file
 * object libsquashfs reads the image through. */
typedef int (*sqi_read_fn) (void *ctx, void *buf, size_t len, uint64_t off);

struct sqi_limits {
    size_t data_cache_bytes; /* decompressed blocks kept (0: none) */
    size_t meta_cache_bytes; /* decoded inodes and directories kept */
};

struct sqi_image;
struct sqi_inode; /* one decoded inode, immutable */
struct sqi_dir;   /* one directory's entries, sorted by name */

struct sqi_dirent {
    const char *name; /* NUL-terminated; never "", ".", "..", never has '/' */
    size_t namelen;
    uint64_t ref;     /* inode reference */
    uint32_t ino;     /* inode number */
    mode_t type;      /* S_IFDIR, S_IFREG, ... (from the entry) */
};

/* Open the squashfs: superblock, compressor, id, fragment and xattr
 * tables.  READ/CTX stay borrowed until sqi_close(). */
int sqi_open (sqi_read_fn read, void *ctx, uint64_t size, const struct sqi_limits *limits, struct sqi_image **out,
              capsa_error_t *err);
/* Free everything (no other thread may still use the image). */
void sqi_close (struct sqi_image *img);

/* The root directory's inode reference. */
uint64_t sqi_root_ref (const struct sqi_image *img);
/* Does the image carry extended attributes at all? */
bool sqi_has_xattrs (const struct sqi_image *img);
void sqi_statfs (const struct sqi_image *img, struct statvfs *st);
uint32_t sqi_block_size (const struct sqi_image *img);

/* The inode at REF, with a reference the caller gives back with
 * sqi_inode_put().  -EIO for a corrupt inode. */
int sqi_inode_get (struct sqi_image *img, uint64_t ref, struct sqi_inode **out);
void sqi_inode_put (struct sqi_image *img, struct sqi_inode *in);
const struct stat *sqi_inode_stat (const struct sqi_inode *in);
/* A symlink's target (NUL-terminated), or NULL for other types. */
const char *sqi_inode_link (const struct sqi_inode *in);
/* A directory's parent's inode number (as the image says). */
uint32_t sqi_inode_parent (const struct sqi_inode *in);

/* The entries of directory IN (-ENOTDIR for another type), with a
 * reference: sqi_dir_put(). */
int sqi_dir_get (struct sqi_image *img, struct sqi_inode *in, struct sqi_dir **out);
void sqi_dir_put (struct sqi_image *img, struct sqi_dir *d);
size_t sqi_dir_count (const struct sqi_dir *d);
const struct sqi_dirent *sqi_dir_entry (const struct sqi_dir *d, size_t i);
/* NAME in directory IN: its entry's inode reference, -ENOENT, -ENOTDIR. */
int sqi_lookup (struct sqi_image *img, struct sqi_inode *in, const char *name, uint64_t *ref);

/* Bytes [off, off+len) of regular file IN as pieces that point into the
 * cache (no copy).  *n pieces (at most max; room for len / block size + 2
 * suffices) of *total bytes, short only at the end of the file.  The
 * pieces stay valid until sqi_release() of the same array. */
struct sqi_span {
    const uint8_t *p;
    size_t len;
    void *pin; /* cache entry held (NULL: static zeros) */
};
int sqi_read_spans (struct sqi_image *img, struct sqi_inode *in, uint64_t off, size_t len, struct sqi_span *spans,
                    size_t max, size_t *n, size_t *total);
void sqi_release (struct sqi_image *img, struct sqi_span *spans, size_t n);
/* The same, copied into BUF: bytes read (0 at or past the end) or -errno. */
ssize_t sqi_read (struct sqi_image *img, struct sqi_inode *in, void *buf, size_t len, uint64_t off);

/* Extended attributes, as the kernel's squashfs shows them (user.,
 * trusted., security.).  SIZE 0 asks for the length.  Return the length,
 * or -ENODATA, -ERANGE, -EIO. */
ssize_t sqi_getxattr (struct sqi_image *img, struct sqi_inode *in, const char *name, void *buf, size_t size);
ssize_t sqi_listxattr (struct sqi_image *img, struct sqi_inode *in, char *buf, size_t size);

/* What the caches did, for tests and --debug. */
struct sqi_stats {
    uint64_t inode_decodes, dir_decodes, block_decompressions, block_hits, block_waits;
    size_t data_bytes, meta_bytes;
};
void sqi_get_stats (struct sqi_image *img, struct sqi_stats *st);

#endif

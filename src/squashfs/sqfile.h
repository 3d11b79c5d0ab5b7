/* A read-only file object for squashfs-tools-ng's libsquashfs over a read
 * callback: libsquashfs sees [0, size) of whatever the callback reads.
 * Shared by the gocryptfs reader (src/crypt/gocryptfs.c: the outer
 * squashfs, a partition of the image file) and the image server's squashfs
 * (src/imagefuse/sqimage.c: a file at an offset, or an encrypted image's
 * plaintext).
 *
 * The bytes are untrusted: a read that does not lie wholly inside
 * [0, size) (offset + length overflowing included) is refused with
 * SQFS_ERROR_OUT_OF_BOUNDS before the callback is called; a failed read is
 * SQFS_ERROR_IO; writing and truncating are SQFS_ERROR_IO.  Nothing is
 * cached here.  Also here: libsquashfs's error codes in words.
 *
 * libsquashfs (and so this directory) is never linked into the setuid
 * starter (Makefile, tests/e2e/test_starter_links.sh). */
#ifndef CAPSA_SQFILE_H
#define CAPSA_SQFILE_H

#include <stddef.h>
#include <stdint.h>

#include <sqfs/io.h>

/* Read len bytes at off into buf: 0, or a negative errno (a short read is
 * an error).  Called with len > 0 and [off, off + len) inside [0, size);
 * called from several threads at once if libsquashfs objects over the file
 * are used from several threads. */
typedef int (*capsa_sqfile_read_fn) (void *ctx, void *buf, size_t len, uint64_t off);

struct capsa_sqfile {
    sqfs_file_t base; /* what libsquashfs is given: &f->base */
    capsa_sqfile_read_fn read;
    void *ctx;
    uint64_t size;
};

/* Make F (embedded in its owner, who frees it: sqfs_destroy() of it does
 * nothing, and it cannot be copied) read through READ/CTX, borrowed for
 * F's life. */
void capsa_sqfile_init (struct capsa_sqfile *f, capsa_sqfile_read_fn read, void *ctx, uint64_t size);

/* F's read_at, for direct reads: 0 or an SQFS_ERROR_* code as above. */
int capsa_sqfile_read (struct capsa_sqfile *f, uint64_t off, void *buf, size_t len);

/* A libsquashfs error code (SQFS_ERROR_*) in words, for messages;
 * OUTSIDE is the words for SQFS_ERROR_OUT_OF_BOUNDS ("a location outside
 * the image"). */
const char *capsa_sqfs_strerror (int e, const char *outside);

#endif

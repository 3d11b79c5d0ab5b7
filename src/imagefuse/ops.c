/* The FUSE low-level operations of the image server.
 *
 * A read-only image never changes while it is served, so the kernel may
 * cache everything for as long as it likes: entries (negative ones too:
 * the misses of Python's module search), attributes, symlinks, directory
 * listings and file pages.  Node ids are derived from the squashfs inode
 * reference (the root is FUSE_ROOT_ID), so nothing is kept per connection
 * and forget needs no bookkeeping: every connection of the server shares
 * the image's caches.
 *
 * Replies point into the block cache (fuse_reply_iov): the data is copied
 * once, into the kernel's page cache. */
#include "imagefuse/imagefuse.h"

#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

/* Timeouts the kernel reads as "forever" (libfuse clamps, the kernel
 * clamps again to its largest jiffies offset). */
#define FOREVER DBL_MAX

/* Room for a read of the largest request (256 pages) in 4 KiB blocks,
 * plus the partial blocks at both ends. */
#define MAX_SPANS 260

static struct session *
sess (fuse_req_t req)
{
    return fuse_req_userdata (req);
}

static fuse_ino_t
node_of (struct sqi_image *img, uint64_t ref)
{
    return ref == sqi_root_ref (img) ? FUSE_ROOT_ID : (fuse_ino_t) ref + 2;
}

static uint64_t
ref_of (struct sqi_image *img, fuse_ino_t ino)
{
    return ino == FUSE_ROOT_ID ? sqi_root_ref (img) : (uint64_t) ino - 2;
}

/* The inode of node INO, held; replies with the error itself on failure. */
static struct sqi_inode *
node (fuse_req_t req, fuse_ino_t ino)
{
    struct sqi_image *img = sess (req)->img;
    struct sqi_inode *in = NULL;
    /* Node ids are 1 (the root) or an inode reference + 2. */
    int r = ino == FUSE_ROOT_ID || ino >= 2 ? sqi_inode_get (img, ref_of (img, ino), &in) : -ENOENT;
    if (r < 0) {
        fuse_reply_err (req, -r);
        return NULL;
    }
    return in;
}

static void
op_init (void *userdata, struct fuse_conn_info *conn)
{
    struct session *s = userdata;

    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    /* Always readdirplus: a walk stats what it lists. */
    conn->want &= ~(unsigned) FUSE_CAP_READDIRPLUS_AUTO;
    if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
        conn->want |= FUSE_CAP_CACHE_SYMLINKS;
    /* Nothing ever changes: no page cache invalidation on attribute
     * changes, which never happen. */
    conn->want &= ~(unsigned) FUSE_CAP_AUTO_INVAL_DATA;
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
        conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    /* Zero-message open and opendir: the kernel then keeps file pages and
     * directory listings cached (FOPEN_KEEP_CACHE, FOPEN_CACHE_DIR). */
    s->no_open = (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
    s->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
    /* Readahead is asynchronous: let enough of it be in flight. */
    conn->max_background = 64;
    conn->congestion_threshold = 48;
}

static void
fill_entry (struct sqi_image *img, struct sqi_inode *in, uint64_t ref, struct fuse_entry_param *e)
{
    memset (e, 0, sizeof (*e));
    e->ino = node_of (img, ref);
    e->generation = 1;
    e->attr = *sqi_inode_stat (in);
    e->attr_timeout = FOREVER;
    e->entry_timeout = FOREVER;
}

static void
op_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct sqi_image *img = sess (req)->img;
    struct sqi_inode *dir = node (req, parent), *in = NULL;
    struct fuse_entry_param e;
    uint64_t ref = 0;
    if (dir == NULL)
        return;
    int r = sqi_lookup (img, dir, name, &ref);
    sqi_inode_put (img, dir);
    if (r == -ENOENT) {
        /* A negative entry, cached forever. */
        memset (&e, 0, sizeof (e));
        e.entry_timeout = FOREVER;
        fuse_reply_entry (req, &e);
        return;
    }
    if (r == 0)
        r = sqi_inode_get (img, ref, &in);
    if (r < 0) {
        fuse_reply_err (req, -r);
        return;
    }
    fill_entry (img, in, ref, &e);
    sqi_inode_put (img, in);
    fuse_reply_entry (req, &e);
}

static void
op_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct sqi_inode *in = node (req, ino);
    (void) fi;
    if (in == NULL)
        return;
    struct stat st = *sqi_inode_stat (in);
    sqi_inode_put (sess (req)->img, in);
    fuse_reply_attr (req, &st, FOREVER);
}

static void
op_readlink (fuse_req_t req, fuse_ino_t ino)
{
    struct sqi_image *img = sess (req)->img;
    struct sqi_inode *in = node (req, ino);
    if (in == NULL)
        return;
    /* (REQ is gone once answered.) */
    const char *target = sqi_inode_link (in);
    if (target)
        fuse_reply_readlink (req, target);
    else
        fuse_reply_err (req, EINVAL);
    sqi_inode_put (img, in);
}

static void
op_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void) ino;
    if (sess (req)->no_open) {
        fuse_reply_err (req, ENOSYS);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err (req, EROFS);
        return;
    }
    fi->keep_cache = 1;
    fuse_reply_open (req, fi);
}

static void
op_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void) ino;
    if (sess (req)->no_opendir) {
        fuse_reply_err (req, ENOSYS);
        return;
    }
    fi->keep_cache = 1;
    fi->cache_readdir = 1;
    fuse_reply_open (req, fi);
}

static void
op_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct sqi_image *img = sess (req)->img;
    struct sqi_span stack_spans[MAX_SPANS], *spans = stack_spans;
    struct iovec stack_iov[MAX_SPANS], *iov = stack_iov;
    size_t max = size / sqi_block_size (img) + 2, n = 0, total = 0;

    (void) fi;
    if (off < 0) {
        fuse_reply_err (req, EINVAL);
        return;
    }
    struct sqi_inode *in = node (req, ino);
    if (in == NULL)
        return;
    if (max > MAX_SPANS) {
        spans = malloc (max * sizeof (*spans));
        iov = malloc (max * sizeof (*iov));
        if (spans == NULL || iov == NULL) {
            fuse_reply_err (req, ENOMEM);
            goto out;
        }
    }
    int r = sqi_read_spans (img, in, (uint64_t) off, size, spans, max, &n, &total);
    if (r < 0) {
        fuse_reply_err (req, -r);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        iov[i] = (struct iovec) { .iov_base = (void *) spans[i].p, .iov_len = spans[i].len };
    fuse_reply_iov (req, iov, (int) n);
    sqi_release (img, spans, n);
out:
    sqi_inode_put (img, in);
    if (spans != stack_spans)
        free (spans);
    if (iov != stack_iov)
        free (iov);
}

/* Offsets: 0 ".", 1 "..", 2 + i the directory's entry i; each entry's
 * offset cookie is the next one's. */
static void
do_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
    struct sqi_image *img = sess (req)->img;
    struct sqi_inode *in = node (req, ino);
    struct sqi_dir *d = NULL;
    char *buf = NULL;
    size_t used = 0;
    int r;

    if (in == NULL)
        return;
    if ((r = sqi_dir_get (img, in, &d)) < 0 || (buf = malloc (size)) == NULL) {
        fuse_reply_err (req, r < 0 ? -r : ENOMEM);
        goto out;
    }
    for (uint64_t i = off < 0 ? 0 : (uint64_t) off; i < sqi_dir_count (d) + 2; i++) {
        struct fuse_entry_param e;
        const char *name;
        size_t need;

        memset (&e, 0, sizeof (e));
        if (i < 2) {
            /* The kernel links neither (node id 0). */
            name = i == 0 ? "." : "..";
            e.attr.st_ino = i == 0 ? sqi_inode_stat (in)->st_ino : sqi_inode_parent (in);
            e.attr.st_mode = S_IFDIR;
        } else {
            const struct sqi_dirent *de = sqi_dir_entry (d, (size_t) (i - 2));
            name = de->name;
            if (plus) {
                struct sqi_inode *child = NULL;
                if ((r = sqi_inode_get (img, de->ref, &child)) < 0) {
                    if (used == 0) {
                        fuse_reply_err (req, -r);
                        goto out;
                    }
                    break;
                }
                fill_entry (img, child, de->ref, &e);
                sqi_inode_put (img, child);
            } else {
                e.attr.st_ino = de->ino;
                e.attr.st_mode = de->type;
            }
        }
        if (plus)
            need = fuse_add_direntry_plus (req, buf + used, size - used, name, &e, (off_t) i + 1);
        else
            need = fuse_add_direntry (req, buf + used, size - used, name, &e.attr, (off_t) i + 1);
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf (req, buf, used);
out:
    free (buf);
    sqi_dir_put (img, d);
    sqi_inode_put (img, in);
}

static void
op_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void) fi;
    do_readdir (req, ino, size, off, false);
}

static void
op_readdirplus (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void) fi;
    do_readdir (req, ino, size, off, true);
}

static void
op_statfs (fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs st;
    (void) ino;
    sqi_statfs (sess (req)->img, &st);
    fuse_reply_statfs (req, &st);
}

/* Without extended attributes in the image, ENOSYS: the kernel stops
 * asking (no request per exec for security.capability). */
static void
op_getxattr (fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    struct sqi_image *img = sess (req)->img;
    if (!sqi_has_xattrs (img)) {
        fuse_reply_err (req, ENOSYS);
        return;
    }
    struct sqi_inode *in = node (req, ino);
    if (in == NULL)
        return;
    char *buf = size ? malloc (size) : NULL;
    ssize_t n = size && buf == NULL ? -ENOMEM : sqi_getxattr (img, in, name, buf, size);
    sqi_inode_put (img, in);
    if (n < 0)
        fuse_reply_err (req, (int) -n);
    else if (size == 0)
        fuse_reply_xattr (req, (size_t) n);
    else
        fuse_reply_buf (req, buf, (size_t) n);
    free (buf);
}

static void
op_listxattr (fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct sqi_image *img = sess (req)->img;
    if (!sqi_has_xattrs (img)) {
        fuse_reply_err (req, ENOSYS);
        return;
    }
    struct sqi_inode *in = node (req, ino);
    if (in == NULL)
        return;
    char *buf = size ? malloc (size) : NULL;
    ssize_t n = size && buf == NULL ? -ENOMEM : sqi_listxattr (img, in, buf, size);
    sqi_inode_put (img, in);
    if (n < 0)
        fuse_reply_err (req, (int) -n);
    else if (size == 0)
        fuse_reply_xattr (req, (size_t) n);
    else
        fuse_reply_buf (req, buf, (size_t) n);
    free (buf);
}

const struct fuse_lowlevel_ops imagefuse_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .open = op_open,
    .read = op_read,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
};

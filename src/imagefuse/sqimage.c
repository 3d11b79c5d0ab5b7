/* A squashfs image read by many threads at once: see sqimage.h. */
#include "imagefuse/sqimage.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include <sqfs/block.h>
#include <sqfs/compressor.h>
#include <sqfs/dir.h>
#include <sqfs/error.h>
#include <sqfs/frag_table.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/meta_reader.h>
#include <sqfs/super.h>
#include <sqfs/xattr.h>
#include <sqfs/xattr_reader.h>

#include "imagefuse/objcache.h"
#include "lib/utils.h"
#include "squashfs/sqfile.h"

#define NO_INDEX 0xFFFFFFFFu
#define BLOCK_SIZE_MASK 0x00FFFFFFu /* of a block size word; bit 24: stored uncompressed */
#define BLOCK_UNCOMPRESSED 0x01000000u

struct sqi_image {
    struct capsa_sqfile file; /* libsquashfs reads through it: [0, size) of the source */
    sqfs_super_t super;
    sqfs_compressor_config_t cmpcfg;
    sqfs_compressor_t *cmp; /* the prototype each thread copies */
    sqfs_id_table_t *ids;
    sqfs_frag_table_t *frags;
    uint32_t nfrags;
    sqfs_xattr_reader_t *xattrs; /* NULL: none; used under xattr_lock, */
    sqfs_meta_reader_t *xattr_kv; /* with this reader of keys and values */
    sqfs_compressor_t *xattr_cmp; /* and a compressor of their own */
    uint64_t xattr_start;
    pthread_mutex_t xattr_lock;
    uint64_t dir_limit; /* end of the directory table */
    uint8_t *zeros;     /* block_size bytes: sparse blocks */
    pthread_key_t tls;
    struct objcache inodes, dirs, blocks;
};

struct sqi_inode {
    struct oc_slot *slot; /* in the inode cache */
    uint64_t ref;
    struct stat st;
    sqfs_inode_generic_t *raw;
    /* Regular files: where each block is and how it is stored. */
    uint64_t *blockpos;
    size_t nblocks;
    uint32_t frag_index, frag_offset; /* NO_INDEX: no fragment */
    uint32_t xattr_index;             /* NO_INDEX: none */
    const char *link;                 /* symlinks: into raw */
    uint32_t parent_ino;              /* directories: their parent's inode number */
};

struct sqi_dir {
    struct oc_slot *slot; /* in the directory cache */
    size_t n;
    struct sqi_dirent *e;
    char *names;
};

/* A decompressed block. */
struct block {
    size_t len;
    uint8_t data[];
};

/* Per thread: libsquashfs objects are not thread-safe. */
struct tls {
    sqfs_compressor_t *cmp;
    sqfs_meta_reader_t *inodes, *dirs;
};

/* ---- libsquashfs errors ---------------------------------------------------------- */

static const char *
sqfs_error_name (int e)
{
    return capsa_sqfs_strerror (e, "a location outside the image");
}

/* ---- Per-thread readers --------------------------------------------------------- */

static void
tls_free (void *p)
{
    struct tls *t = p;
    if (t == NULL)
        return;
    if (t->inodes)
        sqfs_destroy (t->inodes);
    if (t->dirs)
        sqfs_destroy (t->dirs);
    if (t->cmp)
        sqfs_destroy (t->cmp);
    free (t);
}

static struct tls *
tls_get (struct sqi_image *img)
{
    struct tls *t = pthread_getspecific (img->tls);
    if (t)
        return t;
    t = calloc (1, sizeof (*t));
    if (t == NULL)
        return NULL;
    t->cmp = sqfs_copy (img->cmp);
    if (t->cmp == NULL)
        goto fail;
    t->inodes = sqfs_meta_reader_create (&img->file.base, t->cmp, img->super.inode_table_start,
                                         img->super.directory_table_start);
    t->dirs = sqfs_meta_reader_create (&img->file.base, t->cmp, img->super.directory_table_start, img->dir_limit);
    if (t->inodes == NULL || t->dirs == NULL || pthread_setspecific (img->tls, t) != 0)
        goto fail;
    return t;
fail:
    tls_free (t);
    return NULL;
}

/* ---- Inodes --------------------------------------------------------------------- */

static int
map_error (int e)
{
    return e == SQFS_ERROR_ALLOC ? -ENOMEM : -EIO;
}

/* A data block's size word: stored size, or an error for a size no block
 * of this image can have. */
static int
block_stored_size (const struct sqi_image *img, uint32_t word, uint32_t *size)
{
    if (word & ~(BLOCK_SIZE_MASK | BLOCK_UNCOMPRESSED))
        return -EIO;
    *size = word & BLOCK_SIZE_MASK;
    return *size > img->super.block_size ? -EIO : 0;
}

static int
file_layout (struct sqi_image *img, struct sqi_inode *in)
{
    const sqfs_inode_generic_t *raw = in->raw;
    sqfs_u64 start = 0, size = 0;
    sqfs_u32 fi = NO_INDEX, fo = NO_INDEX;
    uint64_t bs = img->super.block_size;

    if (sqfs_inode_get_file_block_start (raw, &start) != 0 || sqfs_inode_get_file_size (raw, &size) != 0
        || sqfs_inode_get_frag_location (raw, &fi, &fo) != 0)
        return -EIO;
    in->nblocks = sqfs_inode_get_file_block_count (raw);
    if (fi == NO_INDEX || fo == NO_INDEX) {
        in->frag_index = in->frag_offset = NO_INDEX;
        /* Whole blocks cover the file. */
        if (in->nblocks != size / bs + (size % bs != 0))
            return -EIO;
    } else {
        /* The tail, shorter than a block, is in a fragment. */
        if (in->nblocks != size / bs || size % bs == 0 || fi >= img->nfrags || fo >= bs)
            return -EIO;
        in->frag_index = fi;
        in->frag_offset = fo;
    }
    if (start > img->file.size)
        return -EIO;
    in->blockpos = malloc ((in->nblocks + 1) * sizeof (uint64_t));
    if (in->blockpos == NULL)
        return -ENOMEM;
    uint64_t pos = start;
    for (size_t i = 0; i < in->nblocks; i++) {
        uint32_t stored;
        if (block_stored_size (img, raw->extra[i], &stored) < 0)
            return -EIO;
        in->blockpos[i] = pos;
        pos += stored;
        if (pos > img->file.size)
            return -EIO;
    }
    in->blockpos[in->nblocks] = pos;
    in->st.st_size = (off_t) size;
    in->st.st_blocks = (blkcnt_t) ((pos - start + 511) / 512);
    return 0;
}

/* libsquashfs allocates what an inode's fields say (a file's block list
 * from its size, a symlink's target, a directory's index names) before it
 * reads them: check those fields first, against what the inode table can
 * hold at most (each metadata block of 8 KiB takes at least 3 bytes of the
 * table), so that a hostile image cannot make it allocate without bound. */
static int
inode_sane (struct sqi_image *img, struct tls *t, uint64_t ref)
{
    const sqfs_super_t *sb = &img->super;
    const uint64_t cap = (sb->directory_table_start - sb->inode_table_start) / 3 * SQFS_META_BLOCK_SIZE
                         + SQFS_META_BLOCK_SIZE;
    sqfs_inode_t base;
    uint64_t count;

    if (sqfs_meta_reader_seek (t->inodes, sb->inode_table_start + (ref >> 16), ref & 0xFFFF) != 0
        || sqfs_meta_reader_read (t->inodes, &base, sizeof (base)) != 0)
        return -EIO;
    switch (le16toh (base.type)) {
    case SQFS_INODE_FILE: {
        sqfs_inode_file_t f;
        if (sqfs_meta_reader_read (t->inodes, &f, sizeof (f)) != 0)
            return -EIO;
        count = le32toh (f.file_size) / sb->block_size + 1;
        return count > cap / 4 ? -EIO : 0;
    }
    case SQFS_INODE_EXT_FILE: {
        sqfs_inode_file_ext_t f;
        if (sqfs_meta_reader_read (t->inodes, &f, sizeof (f)) != 0)
            return -EIO;
        count = le64toh (f.file_size) / sb->block_size + 1;
        return count > cap / 4 ? -EIO : 0;
    }
    case SQFS_INODE_SLINK:
    case SQFS_INODE_EXT_SLINK: {
        sqfs_inode_slink_t l;
        if (sqfs_meta_reader_read (t->inodes, &l, sizeof (l)) != 0)
            return -EIO;
        /* As the kernel's squashfs: no target longer than a page. */
        return le32toh (l.target_size) > 4096 ? -EIO : 0;
    }
    case SQFS_INODE_EXT_DIR: {
        sqfs_inode_dir_ext_t dx;
        if (sqfs_meta_reader_read (t->inodes, &dx, sizeof (dx)) != 0)
            return -EIO;
        if (le32toh (dx.size) == 0)
            return 0;
        for (unsigned i = 0; i < le16toh (dx.inodex_count); i++) {
            sqfs_dir_index_t ix;
            char name[SQFS_MAX_DIR_ENT + 1];
            if (sqfs_meta_reader_read (t->inodes, &ix, sizeof (ix)) != 0 || le32toh (ix.size) >= 256
                || sqfs_meta_reader_read (t->inodes, name, le32toh (ix.size) + 1) != 0)
                return -EIO;
        }
        return 0;
    }
    default:
        return 0;
    }
}

static void
inode_free (void *p)
{
    struct sqi_inode *in = p;
    if (in == NULL)
        return;
    free (in->blockpos);
    sqfs_free (in->raw);
    free (in);
}

static int
inode_load (void *ctx, uint64_t ref, uint64_t unused, struct oc_slot *slot, void **obj, size_t *cost)
{
    struct sqi_image *img = ctx;
    struct tls *t = tls_get (img);
    sqfs_inode_generic_t *raw = NULL;
    int r;

    (void) unused;
    if (t == NULL)
        return -ENOMEM;
    if ((ref & 0xFFFF) >= SQFS_META_BLOCK_SIZE)
        return -EIO;
    if ((r = inode_sane (img, t, ref)) < 0)
        return r;
    r = sqfs_meta_reader_read_inode (t->inodes, &img->super, ref >> 16, ref & 0xFFFF, &raw);
    if (r != 0)
        return map_error (r);
    struct sqi_inode *in = calloc (1, sizeof (*in));
    if (in == NULL) {
        sqfs_free (raw);
        return -ENOMEM;
    }
    in->slot = slot;
    in->ref = ref;
    in->raw = raw;
    in->xattr_index = NO_INDEX;

    struct stat *st = &in->st;
    sqfs_u32 uid = 0, gid = 0, xi = NO_INDEX;
    if (sqfs_id_table_index_to_id (img->ids, raw->base.uid_idx, &uid) != 0
        || sqfs_id_table_index_to_id (img->ids, raw->base.gid_idx, &gid) != 0) {
        inode_free (in);
        return -EIO;
    }
    st->st_ino = raw->base.inode_number;
    st->st_mode = raw->base.mode;
    st->st_uid = uid;
    st->st_gid = gid;
    st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = raw->base.mod_time;
    st->st_blksize = (blksize_t) img->super.block_size;
    st->st_nlink = 1;
    if (sqfs_inode_get_xattr_index (raw, &xi) == 0)
        in->xattr_index = xi;
    r = 0;
    switch (raw->base.type) {
    case SQFS_INODE_DIR:
        st->st_nlink = raw->data.dir.nlink;
        st->st_size = raw->data.dir.size;
        in->parent_ino = raw->data.dir.parent_inode;
        break;
    case SQFS_INODE_EXT_DIR:
        st->st_nlink = raw->data.dir_ext.nlink;
        st->st_size = raw->data.dir_ext.size;
        in->parent_ino = raw->data.dir_ext.parent_inode;
        break;
    case SQFS_INODE_FILE:
        r = file_layout (img, in);
        break;
    case SQFS_INODE_EXT_FILE:
        st->st_nlink = raw->data.file_ext.nlink;
        r = file_layout (img, in);
        break;
    case SQFS_INODE_SLINK:
    case SQFS_INODE_EXT_SLINK:
        st->st_nlink = raw->data.slink.nlink;
        st->st_size = raw->data.slink.target_size;
        /* libsquashfs NUL-terminates the target it read. */
        in->link = (const char *) raw->extra;
        if (raw->data.slink.target_size == 0 || strlen (in->link) != raw->data.slink.target_size)
            r = -EIO;
        break;
    case SQFS_INODE_BDEV:
    case SQFS_INODE_CDEV:
    case SQFS_INODE_EXT_BDEV:
    case SQFS_INODE_EXT_CDEV: {
        /* The kernel's encoding (new_decode_dev). */
        uint32_t dev = raw->data.dev.devno;
        st->st_nlink = raw->data.dev.nlink;
        st->st_rdev = makedev ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00));
        break;
    }
    case SQFS_INODE_FIFO:
    case SQFS_INODE_SOCKET:
    case SQFS_INODE_EXT_FIFO:
    case SQFS_INODE_EXT_SOCKET:
        st->st_nlink = raw->data.ipc.nlink;
        break;
    default:
        r = -EIO;
    }
    if (r < 0) {
        inode_free (in);
        return r;
    }
    *obj = in;
    *cost = sizeof (*in) + sizeof (*raw) + raw->payload_bytes_available + (in->nblocks + 1) * sizeof (uint64_t);
    return 0;
}

int
sqi_inode_get (struct sqi_image *img, uint64_t ref, struct sqi_inode **out)
{
    struct oc_slot *s;
    int r = oc_get (&img->inodes, ref, 0, &s);
    if (r < 0)
        return r;
    *out = oc_obj (s);
    return 0;
}

void
sqi_inode_put (struct sqi_image *img, struct sqi_inode *in)
{
    if (in == NULL)
        return;
    oc_put (&img->inodes, in->slot);
}

const struct stat *
sqi_inode_stat (const struct sqi_inode *in)
{
    return &in->st;
}

const char *
sqi_inode_link (const struct sqi_inode *in)
{
    return in->link;
}

uint32_t
sqi_inode_parent (const struct sqi_inode *in)
{
    return in->parent_ino;
}

uint64_t
sqi_root_ref (const struct sqi_image *img)
{
    return img->super.root_inode_ref;
}

bool
sqi_has_xattrs (const struct sqi_image *img)
{
    return img->xattrs != NULL;
}

uint32_t
sqi_block_size (const struct sqi_image *img)
{
    return img->super.block_size;
}

void
sqi_statfs (const struct sqi_image *img, struct statvfs *st)
{
    memset (st, 0, sizeof (*st));
    st->f_bsize = st->f_frsize = img->super.block_size;
    st->f_blocks = (img->super.bytes_used + img->super.block_size - 1) / img->super.block_size;
    st->f_files = img->super.inode_count;
    st->f_namemax = 256;
    st->f_flag = ST_RDONLY;
}

/* ---- Directories ---------------------------------------------------------------- */

static void
dir_free (void *p)
{
    struct sqi_dir *d = p;
    if (d == NULL)
        return;
    free (d->e);
    free (d->names);
    free (d);
}

static int
dirent_cmp (const void *a, const void *b)
{
    return strcmp (((const struct sqi_dirent *) a)->name, ((const struct sqi_dirent *) b)->name);
}

static mode_t
entry_type (unsigned type)
{
    switch (type) {
    case SQFS_INODE_DIR:
        return S_IFDIR;
    case SQFS_INODE_FILE:
        return S_IFREG;
    case SQFS_INODE_SLINK:
        return S_IFLNK;
    case SQFS_INODE_BDEV:
        return S_IFBLK;
    case SQFS_INODE_CDEV:
        return S_IFCHR;
    case SQFS_INODE_FIFO:
        return S_IFIFO;
    case SQFS_INODE_SOCKET:
        return S_IFSOCK;
    default:
        return 0;
    }
}

struct dir_build {
    struct sqi_dirent *e;
    size_t n, cap;
    char *names;
    size_t used, ncap;
};

static int
dir_add (struct dir_build *b, const sqfs_dir_entry_t *ent, uint32_t inum, uint64_t iref)
{
    size_t len = (size_t) ent->size + 1;
    const char *name = (const char *) ent->name;
    mode_t type = entry_type (ent->type);

    /* Names the kernel or a path walk would misread, or that would let a
     * directory shadow "." and "..". */
    if (type == 0 || memchr (name, '\0', len) != NULL || memchr (name, '/', len) != NULL
        || (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return -EIO;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct sqi_dirent *e = realloc (b->e, cap * sizeof (*e));
        if (e == NULL)
            return -ENOMEM;
        b->e = e;
        b->cap = cap;
    }
    if (b->ncap - b->used < len + 1) {
        size_t cap = b->ncap ? b->ncap * 2 : 256;
        while (cap - b->used < len + 1)
            cap *= 2;
        char *n = realloc (b->names, cap);
        if (n == NULL)
            return -ENOMEM;
        b->names = n;
        b->ncap = cap;
    }
    memcpy (b->names + b->used, name, len);
    b->names[b->used + len] = '\0';
    /* Offsets for now: the name buffer still moves. */
    b->e[b->n++] = (struct sqi_dirent) {
        .name = (const char *) (uintptr_t) b->used, .namelen = len, .ref = iref, .ino = inum, .type = type,
    };
    b->used += len + 1;
    return 0;
}

static int
dir_load (void *ctx, uint64_t ref, uint64_t unused, struct oc_slot *slot, void **obj, size_t *cost)
{
    struct sqi_image *img = ctx;
    struct sqi_inode *in = NULL;
    struct dir_build b = { 0 };
    sqfs_readdir_state_t state;
    struct tls *t = tls_get (img);
    int r;

    (void) unused;
    if (t == NULL)
        return -ENOMEM;
    if ((r = sqi_inode_get (img, ref, &in)) < 0)
        return r;
    if (!S_ISDIR (in->st.st_mode)) {
        sqi_inode_put (img, in);
        return -ENOTDIR;
    }
    r = sqfs_readdir_state_init (&state, &img->super, in->raw) != 0 ? -EIO : 0;
    sqi_inode_put (img, in);
    while (r == 0) {
        sqfs_dir_entry_t *ent = NULL;
        sqfs_u32 inum = 0;
        sqfs_u64 iref = 0;
        int rr = sqfs_meta_reader_readdir (t->dirs, &state, &ent, &inum, &iref);
        if (rr == 1)
            break;
        if (rr != 0) {
            r = map_error (rr);
            break;
        }
        r = dir_add (&b, ent, inum, iref);
        sqfs_free (ent);
    }
    if (r < 0) {
        free (b.e);
        free (b.names);
        return r;
    }
    struct sqi_dir *d = calloc (1, sizeof (*d));
    if (d == NULL) {
        free (b.e);
        free (b.names);
        return -ENOMEM;
    }
    d->slot = slot;
    d->n = b.n;
    d->e = b.e;
    d->names = b.names;
    for (size_t i = 0; i < d->n; i++)
        d->e[i].name = d->names + (uintptr_t) d->e[i].name;
    /* mksquashfs writes entries sorted; a hand-made image need not be. */
    if (d->n > 1)
        qsort (d->e, d->n, sizeof (*d->e), dirent_cmp);
    *obj = d;
    *cost = sizeof (*d) + b.cap * sizeof (*b.e) + b.ncap;
    return 0;
}

int
sqi_dir_get (struct sqi_image *img, struct sqi_inode *in, struct sqi_dir **out)
{
    struct oc_slot *s;
    if (!S_ISDIR (in->st.st_mode))
        return -ENOTDIR;
    int r = oc_get (&img->dirs, in->ref, 0, &s);
    if (r < 0)
        return r;
    *out = oc_obj (s);
    return 0;
}

void
sqi_dir_put (struct sqi_image *img, struct sqi_dir *d)
{
    if (d)
        oc_put (&img->dirs, d->slot);
}

size_t
sqi_dir_count (const struct sqi_dir *d)
{
    return d->n;
}

const struct sqi_dirent *
sqi_dir_entry (const struct sqi_dir *d, size_t i)
{
    return i < d->n ? &d->e[i] : NULL;
}

int
sqi_lookup (struct sqi_image *img, struct sqi_inode *in, const char *name, uint64_t *ref)
{
    struct sqi_dir *d;
    int r = sqi_dir_get (img, in, &d);
    if (r < 0)
        return r;
    size_t lo = 0, hi = d->n;
    r = -ENOENT;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp (name, d->e[mid].name);
        if (c == 0) {
            *ref = d->e[mid].ref;
            r = 0;
            break;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    sqi_dir_put (img, d);
    return r;
}

/* ---- Data ----------------------------------------------------------------------- */

static void
block_free (void *p)
{
    free (p);
}

/* The block stored at POS whose size word is WORD (checked by the
 * caller), decompressed. */
static int
block_load (void *ctx, uint64_t pos, uint64_t word, struct oc_slot *slot, void **obj, size_t *cost)
{
    struct sqi_image *img = ctx;
    uint32_t size = (uint32_t) word & BLOCK_SIZE_MASK, bs = img->super.block_size;
    struct block *b = malloc (sizeof (*b) + bs);
    int r;

    (void) slot;
    if (b == NULL)
        return -ENOMEM;
    if (word & BLOCK_UNCOMPRESSED) {
        r = capsa_sqfile_read (&img->file, pos, b->data, size);
        b->len = size;
    } else {
        struct tls *t = tls_get (img);
        uint8_t *raw = t ? malloc (size) : NULL;
        r = raw == NULL ? SQFS_ERROR_ALLOC : capsa_sqfile_read (&img->file, pos, raw, size);
        if (r == 0) {
            sqfs_s32 n = t->cmp->do_block (t->cmp, raw, size, b->data, bs);
            if (n < 0)
                r = SQFS_ERROR_COMPRESSOR;
            else
                b->len = (size_t) n;
        }
        free (raw);
    }
    if (r != 0) {
        free (b);
        return map_error (r);
    }
    if (b->len < bs / 2) {
        struct block *small = realloc (b, sizeof (*b) + b->len);
        if (small)
            b = small;
    }
    *obj = b;
    *cost = sizeof (*b) + (b->len < bs / 2 ? b->len : bs);
    return 0;
}

/* Block POS/WORD with at least NEED bytes, held. */
static int
block_get (struct sqi_image *img, uint64_t pos, uint32_t word, size_t need, struct oc_slot **slot,
           const struct block **out)
{
    uint32_t stored;
    if (block_stored_size (img, word, &stored) < 0 || stored == 0)
        return -EIO;
    int r = oc_get (&img->blocks, pos, word, slot);
    if (r < 0)
        return r;
    const struct block *b = oc_obj (*slot);
    if (b->len < need) {
        oc_put (&img->blocks, *slot);
        return -EIO;
    }
    *out = b;
    return 0;
}

int
sqi_read_spans (struct sqi_image *img, struct sqi_inode *in, uint64_t off, size_t len, struct sqi_span *spans,
                size_t max, size_t *n, size_t *total)
{
    const uint64_t size = (uint64_t) in->st.st_size, bs = img->super.block_size;
    uint64_t end;
    int r = 0;

    *n = 0;
    *total = 0;
    if (!S_ISREG (in->st.st_mode))
        return S_ISDIR (in->st.st_mode) ? -EISDIR : -EINVAL;
    if (off >= size || len == 0)
        return 0;
    end = len > size - off ? size : off + len;
    while (off < end && *n < max) {
        uint64_t i = off / bs, inner = off % bs, blen;
        struct sqi_span *sp = &spans[*n];
        struct oc_slot *slot = NULL;
        const struct block *b = NULL;

        if (i < in->nblocks) {
            uint32_t word = in->raw->extra[i];
            blen = size - i * bs < bs ? size - i * bs : bs;
            if ((word & BLOCK_SIZE_MASK) == 0) {
                sp->p = img->zeros + inner; /* a sparse block */
                sp->pin = NULL;
            } else {
                if ((r = block_get (img, in->blockpos[i], word, blen, &slot, &b)) < 0)
                    break;
                sp->p = b->data + inner;
                sp->pin = slot;
            }
        } else if (i == in->nblocks && in->frag_index != NO_INDEX) {
            sqfs_fragment_t frag;
            blen = size - i * bs;
            if (sqfs_frag_table_lookup (img->frags, in->frag_index, &frag) != 0) {
                r = -EIO;
                break;
            }
            if ((r = block_get (img, frag.start_offset, frag.size, (size_t) in->frag_offset + blen, &slot, &b)) < 0)
                break;
            sp->p = b->data + in->frag_offset + inner;
            sp->pin = slot;
        } else {
            r = -EIO;
            break;
        }
        sp->len = (size_t) (blen - inner < end - off ? blen - inner : end - off);
        off += sp->len;
        *total += sp->len;
        (*n)++;
    }
    if (r < 0) {
        sqi_release (img, spans, *n);
        *n = 0;
        *total = 0;
    }
    return r;
}

void
sqi_release (struct sqi_image *img, struct sqi_span *spans, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (spans[i].pin)
            oc_put (&img->blocks, spans[i].pin);
}

ssize_t
sqi_read (struct sqi_image *img, struct sqi_inode *in, void *buf, size_t len, uint64_t off)
{
    size_t max = len / img->super.block_size + 2, n, total;
    struct sqi_span *spans = malloc (max * sizeof (*spans));
    if (spans == NULL)
        return -ENOMEM;
    int r = sqi_read_spans (img, in, off, len, spans, max, &n, &total);
    if (r < 0) {
        free (spans);
        return r;
    }
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy ((uint8_t *) buf + done, spans[i].p, spans[i].len);
        done += spans[i].len;
    }
    sqi_release (img, spans, n);
    free (spans);
    return (ssize_t) done;
}

/* ---- Extended attributes ------------------------------------------------------- */

/* The kernel's limit on one value (XATTR_SIZE_MAX). */
#define XATTR_VALUE_MAX 65536

/* Walk IN's attributes under the lock: FN sees each full name and its value
 * and stops the walk by returning non-zero.  libsquashfs finds the
 * attribute set (sqfs_xattr_reader_get_desc); the keys and values are read
 * here, so that a value's size is checked before anything is allocated for
 * it (libsquashfs's own reader allocates whatever size the image says). */
typedef int (*xattr_fn) (void *arg, const char *name, const uint8_t *value, size_t size);

static int
xattr_walk (struct sqi_image *img, struct sqi_inode *in, xattr_fn fn, void *arg)
{
    sqfs_meta_reader_t *m = img->xattr_kv;
    sqfs_xattr_id_t desc;
    int r = 0;

    if (img->xattrs == NULL || in->xattr_index == NO_INDEX)
        return 0;
    pthread_mutex_lock (&img->xattr_lock);
    if (sqfs_xattr_reader_get_desc (img->xattrs, in->xattr_index, &desc) != 0
        || sqfs_meta_reader_seek (m, img->xattr_start + (desc.xattr >> 16), desc.xattr & 0xFFFF) != 0)
        r = -EIO;
    for (uint32_t i = 0; r == 0 && i < desc.count; i++) {
        uint16_t kh[2];
        uint32_t vsize = 0;
        uint8_t *value = NULL;
        char *name = NULL;
        if (sqfs_meta_reader_read (m, kh, sizeof (kh)) != 0) {
            r = -EIO;
            break;
        }
        unsigned type = le16toh (kh[0]), ksize = le16toh (kh[1]);
        const char *prefix = sqfs_get_xattr_prefix ((SQFS_XATTR_TYPE) (type & SQFS_XATTR_PREFIX_MASK));
        size_t plen = prefix ? strlen (prefix) : 0;
        if (prefix == NULL || (type & ~(unsigned) (SQFS_XATTR_PREFIX_MASK | SQFS_XATTR_FLAG_OOL)) != 0
            || (name = malloc (plen + ksize + 1)) == NULL) {
            r = prefix ? -ENOMEM : -EIO;
            break;
        }
        memcpy (name, prefix, plen);
        name[plen + ksize] = '\0';
        if (sqfs_meta_reader_read (m, name + plen, ksize) != 0 || sqfs_meta_reader_read (m, &vsize, sizeof (vsize)) != 0)
            r = -EIO;
        vsize = le32toh (vsize);
        sqfs_u64 back_block = 0;
        size_t back_off = 0;
        if (r == 0 && (type & SQFS_XATTR_FLAG_OOL)) {
            /* The value is elsewhere: its reference is here. */
            uint64_t ref;
            if (sqfs_meta_reader_read (m, &ref, sizeof (ref)) != 0)
                r = -EIO;
            ref = le64toh (ref);
            sqfs_meta_reader_get_position (m, &back_block, &back_off);
            if (r == 0
                && (sqfs_meta_reader_seek (m, img->xattr_start + (ref >> 16), ref & 0xFFFF) != 0
                    || sqfs_meta_reader_read (m, &vsize, sizeof (vsize)) != 0))
                r = -EIO;
            vsize = le32toh (vsize);
        }
        if (r == 0 && vsize > XATTR_VALUE_MAX)
            r = -EIO;
        if (r == 0 && (value = malloc (vsize + 1)) == NULL)
            r = -ENOMEM;
        if (r == 0 && sqfs_meta_reader_read (m, value, vsize) != 0)
            r = -EIO;
        if (r == 0 && (type & SQFS_XATTR_FLAG_OOL) && sqfs_meta_reader_seek (m, back_block, back_off) != 0)
            r = -EIO;
        if (r == 0)
            r = fn (arg, name, value, vsize);
        free (name);
        free (value);
    }
    pthread_mutex_unlock (&img->xattr_lock);
    return r < 0 ? r : 0;
}

struct xattr_get {
    const char *name;
    void *buf;
    size_t size;
    ssize_t result;
};

static int
xattr_get_one (void *arg, const char *name, const uint8_t *value, size_t size)
{
    struct xattr_get *g = arg;
    if (strcmp (name, g->name) != 0)
        return 0;
    if (g->size == 0)
        g->result = (ssize_t) size;
    else if (size > g->size)
        g->result = -ERANGE;
    else {
        memcpy (g->buf, value, size);
        g->result = (ssize_t) size;
    }
    return 1;
}

ssize_t
sqi_getxattr (struct sqi_image *img, struct sqi_inode *in, const char *name, void *buf, size_t size)
{
    struct xattr_get g = { .name = name, .buf = buf, .size = size, .result = -ENODATA };
    int r = xattr_walk (img, in, xattr_get_one, &g);
    return r < 0 ? r : g.result;
}

struct xattr_list {
    char *buf;
    size_t size, used;
    bool range;
};

static int
xattr_list_one (void *arg, const char *name, const uint8_t *value, size_t size)
{
    struct xattr_list *l = arg;
    size_t n = strlen (name) + 1;
    (void) value, (void) size;
    if (l->size > 0) {
        if (l->size - l->used < n) {
            l->range = true;
            return 1;
        }
        memcpy (l->buf + l->used, name, n);
    }
    l->used += n;
    return 0;
}

ssize_t
sqi_listxattr (struct sqi_image *img, struct sqi_inode *in, char *buf, size_t size)
{
    struct xattr_list l = { .buf = buf, .size = size };
    int r = xattr_walk (img, in, xattr_list_one, &l);
    if (r < 0)
        return r;
    return l.range ? -ERANGE : (ssize_t) l.used;
}

/* ---- Opening -------------------------------------------------------------------- */

void
sqi_get_stats (struct sqi_image *img, struct sqi_stats *st)
{
    uint64_t loads, hits, waits;
    size_t bytes;
    memset (st, 0, sizeof (*st));
    oc_counters (&img->inodes, &loads, &hits, &waits, &bytes);
    st->inode_decodes = loads;
    st->meta_bytes = bytes;
    oc_counters (&img->dirs, &loads, &hits, &waits, &bytes);
    st->dir_decodes = loads;
    st->meta_bytes += bytes;
    oc_counters (&img->blocks, &loads, &hits, &waits, &bytes);
    st->block_decompressions = loads;
    st->block_hits = hits;
    st->block_waits = waits;
    st->data_bytes = bytes;
}

static uint64_t
min_u64 (uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

int
sqi_open (sqi_read_fn read, void *ctx, uint64_t size, const struct sqi_limits *limits, struct sqi_image **out,
          capsa_error_t *err)
{
    struct sqi_image *img = xcalloc (1, sizeof (*img));
    sqfs_super_t *sb = &img->super;
    int r;

    capsa_sqfile_init (&img->file, read, ctx, size);
    pthread_mutex_init (&img->xattr_lock, NULL);

    if ((r = sqfs_super_read (sb, &img->file.base)) != 0) {
        capsa_error_code (err, EBADMSG, "not a valid squashfs (%s)", sqfs_error_name (r));
        goto fail;
    }
    /* Where each table lies, in the order mksquashfs writes them. */
    img->dir_limit = min_u64 (sb->id_table_start, min_u64 (sb->fragment_table_start, sb->export_table_start));
    if (sb->bytes_used > size || sb->inode_table_start >= sb->directory_table_start
        || sb->directory_table_start >= img->dir_limit || img->dir_limit > sb->bytes_used
        || sb->id_table_start >= sb->bytes_used) {
        capsa_error_code (err, EBADMSG, "the squashfs's tables lie outside it or out of order");
        goto fail;
    }
    /* libsquashfs sizes the fragment table from this count alone: every
     * fragment takes at least a byte of the image. */
    if (sb->fragment_entry_count > sb->bytes_used) {
        capsa_error_code (err, EBADMSG, "the squashfs claims %u fragments", (unsigned) sb->fragment_entry_count);
        goto fail;
    }
    if (sqfs_compressor_config_init (&img->cmpcfg, (SQFS_COMPRESSOR) sb->compression_id, sb->block_size,
                                     SQFS_COMP_FLAG_UNCOMPRESS)
            != 0
        || sqfs_compressor_create (&img->cmpcfg, &img->cmp) != 0) {
        const char *name = sqfs_compressor_name_from_id ((SQFS_COMPRESSOR) sb->compression_id);
        capsa_error_code (err, ENOTSUP, "the squashfs is compressed with %s, which this libsquashfs cannot read",
                          name ? name : "an unknown compressor");
        goto fail;
    }
    if ((sb->flags & SQFS_FLAG_COMPRESSOR_OPTIONS) && (r = img->cmp->read_options (img->cmp, &img->file.base)) < 0) {
        capsa_error_code (err, EBADMSG, "invalid compressor options (%s)", sqfs_error_name (r));
        goto fail;
    }
    if ((img->ids = sqfs_id_table_create (0)) == NULL || (img->frags = sqfs_frag_table_create (0)) == NULL) {
        capsa_error_code (err, ENOMEM, "out of memory");
        goto fail;
    }
    if ((r = sqfs_id_table_read (img->ids, &img->file.base, sb, img->cmp)) != 0) {
        capsa_error_code (err, EBADMSG, "invalid id table (%s)", sqfs_error_name (r));
        goto fail;
    }
    if ((r = sqfs_frag_table_read (img->frags, &img->file.base, sb, img->cmp)) != 0) {
        capsa_error_code (err, EBADMSG, "invalid fragment table (%s)", sqfs_error_name (r));
        goto fail;
    }
    img->nfrags = (uint32_t) sqfs_frag_table_get_size (img->frags);
    if (!(sb->flags & SQFS_FLAG_NO_XATTRS) && sb->xattr_id_table_start != UINT64_MAX) {
        /* libsquashfs sizes a table from the id count: check it first. */
        uint8_t head[16];
        uint32_t nids;
        if (sb->xattr_id_table_start >= sb->bytes_used
            || capsa_sqfile_read (&img->file, sb->xattr_id_table_start, head, sizeof (head)) != 0) {
            capsa_error_code (err, EBADMSG, "invalid extended attribute table");
            goto fail;
        }
        memcpy (&nids, head + 8, 4);
        nids = le32toh (nids);
        memcpy (&img->xattr_start, head, 8);
        img->xattr_start = le64toh (img->xattr_start);
        if ((uint64_t) nids * sizeof (sqfs_xattr_id_t) > sb->bytes_used || img->xattr_start >= sb->bytes_used) {
            capsa_error_code (err, EBADMSG, "the squashfs claims %u extended attribute sets", (unsigned) nids);
            goto fail;
        }
        if (nids > 0) {
            if ((img->xattr_cmp = sqfs_copy (img->cmp)) == NULL || (img->xattrs = sqfs_xattr_reader_create (0)) == NULL
                || (img->xattr_kv = sqfs_meta_reader_create (&img->file.base, img->xattr_cmp, img->xattr_start,
                                                             sb->bytes_used))
                       == NULL) {
                capsa_error_code (err, ENOMEM, "out of memory");
                goto fail;
            }
            if ((r = sqfs_xattr_reader_load (img->xattrs, sb, &img->file.base, img->xattr_cmp)) != 0) {
                capsa_error_code (err, EBADMSG, "invalid extended attribute table (%s)", sqfs_error_name (r));
                goto fail;
            }
        }
    }
    img->zeros = xcalloc (1, sb->block_size);
    if (pthread_key_create (&img->tls, tls_free) != 0) {
        capsa_error_code (err, EAGAIN, "pthread_key_create failed");
        free (img->zeros);
        img->zeros = NULL;
        goto fail;
    }
    oc_init (&img->inodes, limits->meta_cache_bytes / 2, inode_load, inode_free, img);
    oc_init (&img->dirs, limits->meta_cache_bytes / 2, dir_load, dir_free, img);
    oc_init (&img->blocks, limits->data_cache_bytes, block_load, block_free, img);

    struct sqi_inode *root;
    if ((r = sqi_inode_get (img, sb->root_inode_ref, &root)) < 0) {
        capsa_error_code (err, EBADMSG, "cannot read the squashfs's root directory");
        sqi_close (img);
        return -1;
    }
    bool dir = S_ISDIR (root->st.st_mode);
    sqi_inode_put (img, root);
    if (!dir) {
        capsa_error_code (err, EBADMSG, "the squashfs's root is not a directory");
        sqi_close (img);
        return -1;
    }
    *out = img;
    return 0;
fail:
    if (img->xattr_kv)
        sqfs_destroy (img->xattr_kv);
    if (img->xattrs)
        sqfs_destroy (img->xattrs);
    if (img->xattr_cmp)
        sqfs_destroy (img->xattr_cmp);
    if (img->frags)
        sqfs_destroy (img->frags);
    if (img->ids)
        sqfs_destroy (img->ids);
    if (img->cmp)
        sqfs_destroy (img->cmp);
    pthread_mutex_destroy (&img->xattr_lock);
    free (img);
    return -1;
}

void
sqi_close (struct sqi_image *img)
{
    if (img == NULL)
        return;
    oc_destroy (&img->blocks);
    oc_destroy (&img->dirs);
    oc_destroy (&img->inodes);
    /* This thread's readers; other threads' went with them. */
    tls_free (pthread_getspecific (img->tls));
    pthread_setspecific (img->tls, NULL);
    pthread_key_delete (img->tls);
    if (img->xattr_kv)
        sqfs_destroy (img->xattr_kv);
    if (img->xattrs)
        sqfs_destroy (img->xattrs);
    if (img->xattr_cmp)
        sqfs_destroy (img->xattr_cmp);
    sqfs_destroy (img->frags);
    sqfs_destroy (img->ids);
    sqfs_destroy (img->cmp);
    pthread_mutex_destroy (&img->xattr_lock);
    free (img->zeros);
    free (img);
}

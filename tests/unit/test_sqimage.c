/* Unit tests of the image server's squashfs reader (src/imagefuse/sqimage.c).
 *
 * The judge is not capsa: a tree is made on disk (sizes around block and
 * fragment boundaries, sparse and incompressible files, symlinks, hard
 * links, a large directory, devices, owners, times, extended attributes),
 * mksquashfs (squashfs-tools) packs it with several compressors and block
 * sizes, and every name, attribute and byte the reader gives is compared
 * with lstat(2), readlink(2), getxattr(2) and read(2) of the tree.  Then
 * threads read at random at once (a tiny cache, so that blocks are evicted
 * while others read them), the cache's "decompressed once" is checked with
 * its counters, and damaged images must fail cleanly. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "imagefuse/sqimage.h"
#include "lib/utils.h"
#include "tap.h"

static char top[64];
static char srcdir[128];
static bool have_devices, have_xattrs;

static void
put_file (const char *rel, const void *data, size_t len)
{
    char p[512];
    snprintf (p, sizeof (p), "%s/%s", srcdir, rel);
    int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write_all (fd, data, len) != (ssize_t) len) {
        perror (p);
        exit (2);
    }
    close (fd);
}

static void
fill_random (uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t) (seed >> 16);
    }
}

static void
make_tree (void)
{
    char p[512];
    static uint8_t buf[3 * 131072 + 777];

    snprintf (srcdir, sizeof (srcdir), "%s/src", top);
    mkdir (srcdir, 0755);
    put_file ("empty", "", 0);
    put_file ("small.txt", "a small file, stored in a fragment\n", 35);
    /* Text compresses; random bytes do not (stored uncompressed). */
    for (size_t i = 0; i < sizeof (buf); i++)
        buf[i] = (uint8_t) ("squashfs block boundaries "[i % 26]);
    put_file ("text-3blocks-tail", buf, sizeof (buf));
    put_file ("text-2blocks", buf, 2 * 131072);
    put_file ("text-4k", buf, 4096);
    put_file ("text-4k-plus1", buf, 4097);
    fill_random (buf, sizeof (buf), 7);
    put_file ("random", buf, sizeof (buf));
    put_file ("random-1m-tail", buf, 1000);
    /* Sparse: holes (all-zero blocks) are stored as size 0. */
    snprintf (p, sizeof (p), "%s/sparse", srcdir);
    int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || pwrite (fd, "middle", 6, 600000) != 6 || ftruncate (fd, 2 * 1048576 + 5) < 0)
        exit (2);
    close (fd);
    memset (buf, 0, sizeof (buf));
    put_file ("zeros", buf, 262144);

    snprintf (p, sizeof (p), "%s/link", srcdir);
    if (symlink ("small.txt", p) < 0)
        exit (2);
    char longtarget[301];
    memset (longtarget, 'x', 300);
    longtarget[300] = '\0';
    snprintf (p, sizeof (p), "%s/longlink", srcdir);
    if (symlink (longtarget, p) < 0)
        exit (2);
    char p2[512];
    snprintf (p, sizeof (p), "%s/small.txt", srcdir);
    snprintf (p2, sizeof (p2), "%s/hardlink", srcdir);
    if (link (p, p2) < 0)
        exit (2);

    /* A large directory, made in an order that is not the sorted one. */
    snprintf (p, sizeof (p), "%s/many", srcdir);
    mkdir (p, 0750);
    for (int i = 0; i < 1200; i++) {
        int k = (i * 7919) % 1200;
        snprintf (p, sizeof (p), "%s/many/entry-%04d-%s", srcdir, k, k % 3 ? "with-a-longer-name" : "s");
        int f = open (p, O_WRONLY | O_CREAT, 0600);
        if (f >= 0) {
            if (k % 10 == 0 && write (f, p, strlen (p)) < 0)
                exit (2);
            close (f);
        }
    }
    snprintf (p, sizeof (p), "%s/a/b/c/d/e", srcdir);
    for (char *s = p + strlen (srcdir) + 1; (s = strchr (s, '/')) != NULL; s++) {
        *s = '\0';
        mkdir (p, 0755);
        *s = '/';
    }
    mkdir (p, 0700);
    put_file ("a/b/c/d/e/deep", "deep\n", 5);

    /* Owners, modes, times. */
    snprintf (p, sizeof (p), "%s/owned", srcdir);
    put_file ("owned", "owned by someone else\n", 22);
    if (geteuid () == 0 && chown (p, 1234, 5678) < 0)
        exit (2);
    chmod (p, 04751);
    struct timespec times[2] = { { 1000000000, 0 }, { 1234567890, 0 } };
    utimensat (AT_FDCWD, p, times, AT_SYMLINK_NOFOLLOW);

    /* Devices and a fifo (as root). */
    snprintf (p, sizeof (p), "%s/null", srcdir);
    have_devices = mknod (p, S_IFCHR | 0666, makedev (1, 3)) == 0;
    snprintf (p, sizeof (p), "%s/bigdev", srcdir);
    if (have_devices)
        have_devices = mknod (p, S_IFBLK | 0600, makedev (259, 70000)) == 0;
    snprintf (p, sizeof (p), "%s/fifo", srcdir);
    mkfifo (p, 0644);

    snprintf (p, sizeof (p), "%s/small.txt", srcdir);
    have_xattrs = setxattr (p, "user.capsa", "one value", 9, 0) == 0
                  && setxattr (p, "user.other", "", 0, 0) == 0;
    /* The same value again: mksquashfs stores it once, out of line. */
    snprintf (p, sizeof (p), "%s/empty", srcdir);
    have_xattrs = have_xattrs && setxattr (p, "user.capsa", "one value", 9, 0) == 0;
}

static bool
mksquashfs (const char *out, const char *opts)
{
    char cmd[1024];
    snprintf (cmd, sizeof (cmd), "mksquashfs %s %s -noappend -quiet -no-progress %s > /dev/null 2>&1", srcdir, out, opts);
    return system (cmd) == 0;
}

struct plain {
    int fd;
};

static int
plain_read (void *ctx, void *buf, size_t len, uint64_t off)
{
    struct plain *p = ctx;
    return pread_all (p->fd, buf, len, (off_t) off) == (ssize_t) len ? 0 : -EIO;
}

/* What a walk found wrong: the first of each kind, for the message. */
struct verdict {
    unsigned names, attrs, data, links, xattrs, files;
    char first[512];
};

static void __attribute__ ((format (printf, 3, 4)))
wrong (struct verdict *v, unsigned *count, const char *fmt, ...)
{
    va_list ap;
    if ((*count)++ == 0 && v->first[0] == '\0') {
        va_start (ap, fmt);
        vsnprintf (v->first, sizeof (v->first), fmt, ap);
        va_end (ap);
    }
}

static int
name_cmp (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
compare_file (struct sqi_image *img, struct sqi_inode *in, const char *path, struct verdict *v)
{
    struct stat st;
    if (stat (path, &st) < 0)
        return;
    uint8_t *want = malloc ((size_t) st.st_size + 1), *got = malloc ((size_t) st.st_size + 8192);
    int fd = open (path, O_RDONLY);
    if (fd < 0 || read_all (fd, want, (size_t) st.st_size) != st.st_size) {
        wrong (v, &v->data, "cannot read %s", path);
        goto out;
    }
    /* In uneven pieces, to cross block and fragment boundaries. */
    size_t done = 0, piece = 1;
    while (done < (size_t) st.st_size) {
        ssize_t n = sqi_read (img, in, got + done, piece, done);
        if (n <= 0)
            break;
        done += (size_t) n;
        piece = piece * 3 + 4093;
    }
    if (done != (size_t) st.st_size || memcmp (want, got, done) != 0)
        wrong (v, &v->data, "the bytes of %s differ", path);
    /* At and past the end: nothing. */
    if (sqi_read (img, in, got, 100, (uint64_t) st.st_size) != 0 || sqi_read (img, in, got, 1, UINT64_MAX - 5) != 0)
        wrong (v, &v->data, "a read past the end of %s returned bytes", path);
    v->files++;
out:
    if (fd >= 0)
        close (fd);
    free (want);
    free (got);
}

static void
compare_dir (struct sqi_image *img, struct sqi_inode *dir, const char *path, struct verdict *v)
{
    struct sqi_dir *d = NULL;
    if (sqi_dir_get (img, dir, &d) < 0) {
        wrong (v, &v->names, "cannot list %s", path);
        return;
    }
    DIR *dh = opendir (path);
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; dh && (e = readdir (dh)) != NULL;) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        names = xrealloc (names, (n + 1) * sizeof (*names));
        names[n++] = xstrdup (e->d_name);
    }
    if (dh)
        closedir (dh);
    qsort (names, n, sizeof (*names), name_cmp);
    if (sqi_dir_count (d) != n)
        wrong (v, &v->names, "%s has another number of entries", path);
    for (size_t i = 0; i < n && i < sqi_dir_count (d); i++) {
        const struct sqi_dirent *e = sqi_dir_entry (d, i);
        char p[1024];
        struct stat want;
        uint64_t ref = 0;
        snprintf (p, sizeof (p), "%s/%s", path, names[i]);
        if (strcmp (e->name, names[i]) != 0 || e->namelen != strlen (names[i]) || sqi_lookup (img, dir, names[i], &ref) != 0
            || ref != e->ref) {
            wrong (v, &v->names, "the entry %s is missing or out of order", p);
            continue;
        }
        struct sqi_inode *in = NULL;
        if (lstat (p, &want) < 0 || sqi_inode_get (img, ref, &in) < 0) {
            wrong (v, &v->attrs, "cannot read the inode of %s", p);
            continue;
        }
        const struct stat *st = sqi_inode_stat (in);
        if (st->st_mode != want.st_mode || st->st_uid != want.st_uid || st->st_gid != want.st_gid
            || st->st_mtim.tv_sec != want.st_mtim.tv_sec || (S_ISREG (want.st_mode) && st->st_size != want.st_size)
            || (!S_ISDIR (want.st_mode) && st->st_nlink != want.st_nlink) || e->type != (want.st_mode & S_IFMT)
            || ((S_ISCHR (want.st_mode) || S_ISBLK (want.st_mode)) && st->st_rdev != want.st_rdev)
            || st->st_ino != e->ino)
            wrong (v, &v->attrs, "the attributes of %s differ", p);
        if (S_ISLNK (want.st_mode)) {
            char target[1024];
            ssize_t tl = readlink (p, target, sizeof (target) - 1);
            target[tl < 0 ? 0 : tl] = '\0';
            if (sqi_inode_link (in) == NULL || strcmp (sqi_inode_link (in), target) != 0 || st->st_size != tl)
                wrong (v, &v->links, "the target of %s differs", p);
        } else if (sqi_inode_link (in) != NULL) {
            wrong (v, &v->links, "%s has a target", p);
        }
        if (have_xattrs) {
            char want_list[256], got_list[256];
            ssize_t wl = llistxattr (p, want_list, sizeof (want_list));
            ssize_t gl = sqi_listxattr (img, in, got_list, sizeof (got_list));
            ssize_t gl0 = sqi_listxattr (img, in, NULL, 0);
            if ((wl <= 0 && gl != 0) || (wl > 0 && (gl != wl || gl0 != wl)))
                wrong (v, &v->xattrs, "the attribute names of %s differ", p);
            if (wl > 0) {
                char wv[64], gv[64];
                ssize_t a = lgetxattr (p, "user.capsa", wv, sizeof (wv));
                ssize_t b = sqi_getxattr (img, in, "user.capsa", gv, sizeof (gv));
                if (a != b || (a > 0 && memcmp (wv, gv, (size_t) a) != 0) || sqi_getxattr (img, in, "user.capsa", NULL, 0) != a
                    || sqi_getxattr (img, in, "user.capsa", gv, 2) != -ERANGE
                    || sqi_getxattr (img, in, "user.absent", gv, sizeof (gv)) != -ENODATA)
                    wrong (v, &v->xattrs, "the attribute values of %s differ", p);
            }
        }
        if (S_ISREG (want.st_mode))
            compare_file (img, in, p, v);
        else if (S_ISDIR (want.st_mode))
            compare_dir (img, in, p, v);
        else {
            char b[8];
            if (sqi_read (img, in, b, sizeof (b), 0) >= 0)
                wrong (v, &v->data, "%s can be read as a file", p);
        }
        sqi_inode_put (img, in);
    }
    uint64_t ref;
    if (sqi_lookup (img, dir, "no-such-name", &ref) != -ENOENT)
        wrong (v, &v->names, "a missing name is found in %s", path);
    for (size_t i = 0; i < n; i++)
        free (names[i]);
    free (names);
    sqi_dir_put (img, d);
}

static struct sqi_image *
open_image (const char *path, size_t data_cache, struct plain *p, capsa_error_t *err)
{
    struct stat st;
    struct sqi_limits lim = { .data_cache_bytes = data_cache, .meta_cache_bytes = 1 << 20 };
    struct sqi_image *img = NULL;
    p->fd = open (path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0 || fstat (p->fd, &st) < 0)
        return NULL;
    if (sqi_open (plain_read, p, (uint64_t) st.st_size, &lim, &img, err) < 0) {
        close (p->fd);
        return NULL;
    }
    return img;
}

static void
check_image (const char *label, const char *opts)
{
    char out[256], name[1024];
    struct plain p;
    capsa_error_t err = NULL;

    snprintf (out, sizeof (out), "%s/%s.sqfs", top, label);
    snprintf (name, sizeof (name), "%s: mksquashfs %s", label, opts);
    bool made = mksquashfs (out, opts);
    CHECK (made, name);
    if (!made)
        return;
    struct sqi_image *img = open_image (out, 64 << 20, &p, &err);
    snprintf (name, sizeof (name), "%s: opened (%s)", label, err && err->msg ? err->msg : "ok");
    CHECK (img != NULL, name);
    capsa_error_free (&err);
    if (img == NULL)
        return;
    struct sqi_inode *root = NULL;
    struct verdict v = { 0 };
    if (sqi_inode_get (img, sqi_root_ref (img), &root) == 0) {
        compare_dir (img, root, srcdir, &v);
        sqi_inode_put (img, root);
    }
    snprintf (name, sizeof (name), "%s: every name, in order, found by lookup%s%s", label, v.names ? ": " : "",
              v.names ? v.first : "");
    CHECK (v.names == 0 && root != NULL, name);
    snprintf (name, sizeof (name), "%s: every mode, owner, time, size, link count, device%s%s", label,
              v.attrs ? ": " : "", v.attrs ? v.first : "");
    CHECK (v.attrs == 0, name);
    snprintf (name, sizeof (name), "%s: the bytes of all %u files%s%s", label, v.files, v.data ? ": " : "",
              v.data ? v.first : "");
    CHECK (v.data == 0 && v.files >= 1200 / 10 + 10, name);
    snprintf (name, sizeof (name), "%s: symlink targets%s%s", label, v.links ? ": " : "", v.links ? v.first : "");
    CHECK (v.links == 0, name);
    if (have_xattrs && strstr (opts, "-no-xattrs") == NULL) {
        snprintf (name, sizeof (name), "%s: extended attributes%s%s", label, v.xattrs ? ": " : "",
                  v.xattrs ? v.first : "");
        CHECK (v.xattrs == 0 && sqi_has_xattrs (img), name);
    }
    sqi_close (img);
    close (p.fd);
}

/* ---- Threads ------------------------------------------------------------------------ */

struct reader {
    struct sqi_image *img;
    const char *path;
    const uint8_t *want;
    size_t size;
    uint64_t ref;
    unsigned seed, bad;
};

static void *
read_random (void *arg)
{
    struct reader *r = arg;
    uint8_t *buf = malloc (1 << 20);
    for (int i = 0; i < 400; i++) {
        r->seed = r->seed * 1103515245u + 12345u;
        size_t off = (r->seed >> 8) % r->size;
        size_t len = 1 + (r->seed % (300 * 1024));
        struct sqi_inode *in;
        if (sqi_inode_get (r->img, r->ref, &in) < 0) {
            r->bad++;
            continue;
        }
        ssize_t n = sqi_read (r->img, in, buf, len, off);
        size_t expect = len < r->size - off ? len : r->size - off;
        if (n != (ssize_t) expect || memcmp (buf, r->want + off, expect) != 0)
            r->bad++;
        sqi_inode_put (r->img, in);
    }
    free (buf);
    return NULL;
}

static void
check_threads (void)
{
    char out[256], path[512];
    struct plain p;
    capsa_error_t err = NULL;
    static uint8_t data[6 * 1048576];

    /* One big file of 4 KiB blocks: many blocks, a cache of 16 of them. */
    fill_random (data, sizeof (data) / 2, 99);
    for (size_t i = sizeof (data) / 2; i < sizeof (data); i++)
        data[i] = (uint8_t) (i / 4096);
    put_file ("big", data, sizeof (data));
    snprintf (path, sizeof (path), "%s/big", srcdir);
    snprintf (out, sizeof (out), "%s/threads.sqfs", top);
    if (!mksquashfs (out, "-b 4096 -comp gzip")) {
        CHECK (0, "threads: mksquashfs");
        return;
    }
    struct sqi_image *img = open_image (out, 16 * 4096, &p, &err);
    capsa_error_free (&err);
    uint64_t ref = 0;
    struct sqi_inode *root = NULL;
    bool ok = img && sqi_inode_get (img, sqi_root_ref (img), &root) == 0 && sqi_lookup (img, root, "big", &ref) == 0;
    sqi_inode_put (img, root);
    CHECK (ok, "threads: the big file is found");
    if (!ok) {
        sqi_close (img);
        return;
    }
    pthread_t t[6];
    struct reader r[6];
    for (int i = 0; i < 6; i++) {
        r[i] = (struct reader) { .img = img, .want = data, .size = sizeof (data), .ref = ref, .seed = (unsigned) i * 77 };
        pthread_create (&t[i], NULL, read_random, &r[i]);
    }
    unsigned bad = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join (t[i], NULL);
        bad += r[i].bad;
    }
    struct sqi_stats st;
    sqi_get_stats (img, &st);
    CHECK (bad == 0, "threads: 6 threads x 400 random reads through a 16-block cache, every byte right");
    CHECK (st.data_bytes <= 16 * 4096 + 16 * 256, "threads: the data cache stays within its budget");
    sqi_close (img);
    close (p.fd);

    /* A cache that holds everything: a second pass decompresses nothing. */
    img = open_image (out, 64 << 20, &p, &err);
    capsa_error_free (&err);
    struct sqi_inode *in = NULL;
    uint8_t *buf = malloc (sizeof (data));
    ok = img && sqi_inode_get (img, ref, &in) == 0 && sqi_read (img, in, buf, sizeof (data), 0) == (ssize_t) sizeof (data)
         && memcmp (buf, data, sizeof (data)) == 0;
    struct sqi_stats first, second;
    sqi_get_stats (img, &first);
    ok = ok && sqi_read (img, in, buf, sizeof (data), 0) == (ssize_t) sizeof (data);
    sqi_get_stats (img, &second);
    /* (All-zero blocks are holes, read from nowhere.) */
    CHECK (ok && first.block_decompressions >= sizeof (data) / 4096 - 8 && first.block_hits == 0,
           "cache: the first pass decompresses each block once");
    CHECK (ok && second.block_decompressions == first.block_decompressions
               && second.block_hits == first.block_hits + first.block_decompressions,
           "cache: the second pass finds every block in the cache, decompresses none");
    free (buf);
    sqi_inode_put (img, in);
    sqi_close (img);
    close (p.fd);
}

/* ---- Damage ------------------------------------------------------------------------- */

static void
check_damage (void)
{
    char good[256], bad[256], name[256];
    snprintf (good, sizeof (good), "%s/gzip-128k.sqfs", top);
    snprintf (bad, sizeof (bad), "%s/bad.sqfs", top);
    struct stat st;
    if (stat (good, &st) < 0) {
        CHECK (0, "damage: the gzip image exists");
        return;
    }
    uint8_t *img = malloc ((size_t) st.st_size);
    int fd = open (good, O_RDONLY);
    if (fd < 0 || read_all (fd, img, (size_t) st.st_size) != st.st_size)
        exit (2);
    close (fd);

    /* Truncated: refused at open, with a message. */
    put_file ("../bad.sqfs", img, (size_t) st.st_size / 2);
    struct plain p;
    capsa_error_t err = NULL;
    struct sqi_image *s = open_image (bad, 1 << 20, &p, &err);
    snprintf (name, sizeof (name), "damage: a truncated image is refused (%s)", err && err->msg ? err->msg : "opened");
    CHECK (s == NULL && err != NULL && strstr (err->msg, "squashfs") != NULL, name);
    capsa_error_free (&err);
    sqi_close (s);
    if (s)
        close (p.fd);

    /* Bytes changed all over the tables and data (within bytes_used, past
     * the superblock): the walk must end, and notice.  ASan and UBSan
     * watch the rest in make check SAN=1. */
    uint64_t used;
    memcpy (&used, img + 40, 8);
    used = le64toh (used);
    if (used > (uint64_t) st.st_size || used < 4096)
        used = (uint64_t) st.st_size;
    unsigned opened = 0, noticed = 0;
    for (unsigned seed = 1; seed <= 60; seed++) {
        uint8_t *copy = malloc ((size_t) st.st_size);
        memcpy (copy, img, (size_t) st.st_size);
        unsigned x = seed;
        for (int k = 0; k < 8; k++) {
            x = x * 1103515245u + 12345u;
            size_t at = 96 + (x >> 4) % ((size_t) used - 96);
            copy[at] ^= (uint8_t) (x >> 24) | 1;
        }
        put_file ("../bad.sqfs", copy, (size_t) st.st_size);
        free (copy);
        s = open_image (bad, 1 << 20, &p, &err);
        capsa_error_free (&err);
        if (s == NULL) {
            noticed++;
            continue;
        }
        opened++;
        struct verdict v = { 0 };
        struct sqi_inode *root;
        if (sqi_inode_get (s, sqi_root_ref (s), &root) == 0) {
            compare_dir (s, root, srcdir, &v);
            sqi_inode_put (s, root);
        } else {
            v.names++;
        }
        if (v.names + v.attrs + v.data + v.links + v.xattrs > 0)
            noticed++;
        sqi_close (s);
        close (p.fd);
    }
    /* (A byte of an unused field, the directory index or the export
     * table, changes nothing the reader shows.) */
    snprintf (name, sizeof (name), "damage: of 60 images with 8 bytes changed each, %u refused and %u read differently",
              60 - opened, noticed - (60 - opened));
    CHECK (noticed >= 50, name);
    free (img);
}

int
main (void)
{
    if (system ("command -v mksquashfs > /dev/null 2>&1") != 0) {
        printf ("ok 1 - sqimage # SKIP mksquashfs (squashfs-tools) is not installed\n1..1\n");
        return 0;
    }
    snprintf (top, sizeof (top), "/tmp/capsa-sqi.XXXXXX");
    if (mkdtemp (top) == NULL)
        return 2;
    make_tree ();
    if (!have_devices)
        printf ("ok %d - devices # SKIP mknod needs root\n", ++tap_n);
    if (!have_xattrs)
        printf ("ok %d - extended attributes # SKIP this /tmp takes no user.* attributes\n", ++tap_n);

    check_image ("gzip-128k", "-comp gzip");
    check_image ("xz-4k", "-comp xz -b 4096");
    check_image ("zstd-1m", "-comp zstd -b 1M");
    check_image ("lz4-uncompressed", "-comp lz4 -noI -noD -noF -noX -no-fragments");
    check_image ("gzip-always-fragments", "-comp gzip -always-use-fragments -no-xattrs");
    check_threads ();
    check_damage ();

    char cmd[128];
    snprintf (cmd, sizeof (cmd), "rm -rf %s", top);
    if (system (cmd) != 0)
        return 2;
    return tap_done ();
}

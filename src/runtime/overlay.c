/* Writable layers of the container's root: see overlay.h. */
#include "runtime/overlay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/container.h"
#include "runtime/fusebroker.h"
#include "runtime/mount.h"
#include "runtime/privs.h"
#include "runtime/sifimage.h"

/* ---- ext3 -------------------------------------------------------------------- */

#define EXT_SB 1024
#define EXT_MAGIC 0xEF53
#define COMPAT_HAS_JOURNAL 0x4
#define INCOMPAT_OK (0x2 | 0x4 | 0x10) /* filetype, recover, meta_bg */
#define RO_COMPAT_OK (0x1 | 0x2 | 0x4) /* sparse_super, large_file, btree_dir */

static uint32_t
le32 (const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

int
capsa_ext3_probe (int fd, uint64_t offset, capsa_error_t *err)
{
    unsigned char sb[128];
    capsa_error_t ignore = NULL;
    if (err == NULL)
        err = &ignore;
    int r = -1;
    if (pread_all (fd, sb, sizeof (sb), (off_t) (offset + EXT_SB)) != (ssize_t) sizeof (sb))
        capsa_error_make (err, 0, "too short for an ext3 file system");
    else if ((sb[56] | sb[57] << 8) != EXT_MAGIC)
        capsa_error_make (err, 0, "not an ext3 file system");
    else if (!(le32 (sb + 92) & COMPAT_HAS_JOURNAL))
        capsa_error_make (err, 0, "an ext2 file system (no journal), not ext3");
    else if (le32 (sb + 96) & ~(uint32_t) INCOMPAT_OK)
        capsa_error_make (err, 0, "an ext4 file system (incompatible features 0x%x), not ext3", le32 (sb + 96));
    else if (le32 (sb + 100) & ~(uint32_t) RO_COMPAT_OK)
        capsa_error_make (err, 0, "an ext4 file system (read-only features 0x%x), not ext3", le32 (sb + 100));
    else
        r = 0;
    capsa_error_free (&ignore);
    return r;
}

/* ---- a SIF's overlay partition, found without privilege -------------------------- */

struct sif_ovl_answer {
    uint64_t offset, size;
    int found;
};

struct sif_ovl_question {
    int fd;
    const char *path;
    struct sif_ovl_answer *answer; /* MAP_SHARED */
};

static int
locate_overlay (void *arg, capsa_error_t *err)
{
    struct sif_ovl_question *q = arg;
    int r = capsa_sif_overlay_partition (q->fd, q->path, &q->answer->offset, &q->answer->size, err);
    q->answer->found = r > 0;
    return r < 0 ? -1 : 0;
}

/* The ext3 overlay partition of the SIF open on FD: 1 found, 0 none.  The
 * container's own image was looked at already by the setuid starter's
 * parsing helper (prepare.c); others are parsed here, by such a helper. */
static int
sif_overlay (struct capsa_container *c, int fd, const char *path, uint64_t *offset, uint64_t *size, capsa_error_t *err)
{
    struct sif_ovl_answer got = { 0 };
    struct stat st;
    if (c->image.overlay_known && strcmp (path, c->image.path) == 0) {
        got.offset = c->image.overlay_offset;
        got.size = c->image.overlay_size;
        got.found = got.size > 0;
    } else {
        struct sif_ovl_answer *a = mmap (NULL, sizeof (*a), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED)
            return capsa_error_make (err, errno, "mmap");
        memset (a, 0, sizeof (*a));
        struct sif_ovl_question q = { .fd = fd, .path = path, .answer = a };
        int r = capsa_run_as_user (c, locate_overlay, &q, err);
        got = *a;
        munmap (a, sizeof (*a));
        if (r < 0)
            return -1;
    }
    if (!got.found)
        return 0;
    /* Whoever parsed the header, the partition must be in the file and
     * hold an ext3 file system. */
    if (fstat (fd, &st) < 0)
        return capsa_error_make (err, errno, "%s", path);
    if (got.size == 0 || got.offset > (uint64_t) st.st_size || got.size > (uint64_t) st.st_size - got.offset)
        return capsa_error_make (err, 0, "%s: the overlay partition lies outside the file", path);
    if (capsa_ext3_probe (fd, got.offset, err) < 0)
        return capsa_error_wrap (err, "%s: overlay partition", path);
    *offset = got.offset;
    *size = got.size;
    return 1;
}

/* ---- preparing, as the user ------------------------------------------------------- */

static bool
is_sif (int fd)
{
    char head[48] = { 0 };
    return pread (fd, head, sizeof (head), 0) >= 41 && memcmp (head + 32, "SIF_MAGIC", 9) == 0;
}

/* Reopen the object of FD (O_PATH) with FLAGS, as the caller: the kernel
 * checks the caller's right to read (or write) it. */
static int
reopen (int fd, int flags)
{
    char buf[64];
    return open (capsa_fd_path (fd, buf, sizeof (buf)), flags | O_CLOEXEC | O_NOCTTY);
}

static void
add_layer (struct capsa_layers *L, struct capsa_layer l)
{
    L->v = xrealloc (L->v, (L->n + 1) * sizeof (*L->v));
    l.upperfd = l.workfd = -1;
    L->v[L->n++] = l;
}

/* The ext3 layers: who may have them, and who parses them. */
static int
check_ext3 (struct capsa_container *c, struct capsa_layer *l, capsa_error_t *err)
{
    switch (c->mode) {
    case MODE_ROOT:
        break;
    case MODE_SETUID:
        if (!c->conf->allow_container_extfs)
            return capsa_error_make (err, 0, "%s: ext3 overlay images are not allowed by the administrator ('allow "
                                     "container extfs = no')", l->path);
        if (!c->conf->setuid_mount_extfs)
            return capsa_error_make (err, 0,
                                     "%s: the administrator does not let the kernel mount users' ext3 images ('allow "
                                     "setuid-mount extfs = no'); use --fakeroot or --userns, where fuse2fs serves it as "
                                     "you",
                                     l->path);
        break;
    case MODE_USERNS:
        l->fuse = true;
        break;
    }
    /* One writer at a time (two would corrupt the file system); readers
     * share.  The lock lives as long as the loop device or fuse2fs holds
     * this open file. */
    if (flock (l->fd, (l->ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0)
        return capsa_error_make (err, errno == EWOULDBLOCK ? 0 : errno, "%s is in use by another container%s", l->path,
                                 l->ro ? " that writes to it" : " (add :ro to share it read-only)");
    return 0;
}

static int
open_overlay (struct capsa_container *c, const struct capsa_overlay_opt *ov, capsa_error_t *err)
{
    struct stat st;
    struct capsa_layer l = { .path = xstrdup (ov->path), .ro = ov->ro, .fd = -1 };
    cleanup_close int pfd = open (ov->path, O_PATH | O_CLOEXEC);
    if (pfd < 0 || fstat (pfd, &st) < 0) {
        free (l.path);
        return capsa_error_make (err, errno, "--overlay %s", ov->path);
    }
    if (S_ISDIR (st.st_mode)) {
        if (c->mode == MODE_SETUID) {
            free (l.path);
            return capsa_error_make (err, 0,
                                     "--overlay %s: a directory overlay needs --fakeroot or --userns in a setuid "
                                     "installation (overlayfs would copy files into your directory with root's rights); "
                                     "or use an overlay image (capsa overlay create)",
                                     ov->path);
        }
        l.kind = LAYER_DIR;
        l.fd = steal_fd (&pfd);
    } else if (S_ISREG (st.st_mode)) {
        l.kind = LAYER_EXT3;
        l.fd = reopen (pfd, ov->ro ? O_RDONLY : O_RDWR);
        if (l.fd < 0) {
            int e = errno;
            int r = e == EACCES && !ov->ro ? reopen (pfd, O_RDONLY) : -1;
            if (r >= 0)
                close (r);
            free (l.path);
            return capsa_error_make (err, e, "--overlay %s%s", ov->path,
                                     r >= 0 ? " (readable, not writable by you: add :ro?)" : "");
        }
        if (is_sif (l.fd)) {
            int r = sif_overlay (c, l.fd, ov->path, &l.offset, &l.size, err);
            if (r <= 0) {
                close (l.fd);
                free (l.path);
                return r < 0 ? -1 : capsa_error_make (err, 0, "--overlay %s: the SIF has no ext3 overlay partition", ov->path);
            }
        } else if (capsa_ext3_probe (l.fd, 0, err) < 0) {
            close (l.fd);
            free (l.path);
            return capsa_error_wrap (err, "--overlay %s (an ext3 image from 'capsa overlay create', a SIF with an "
                                     "overlay partition, or a directory)", ov->path);
        } else {
            l.size = (uint64_t) st.st_size;
        }
        if (check_ext3 (c, &l, err) < 0) {
            close (l.fd);
            free (l.path);
            return -1;
        }
    } else {
        free (l.path);
        return capsa_error_make (err, 0, "--overlay %s: not a directory or an image file", ov->path);
    }
    add_layer (c->layers, l);
    return 0;
}

/* --writable on a directory: a mount point the image lacks cannot be made
 * in the user's directory (capsa creates nothing there); such mounts are
 * left out, with a WARNING, as Apptainer does. */
static void
drop_missing_mountpoints (struct capsa_container *c)
{
    static const struct {
        const char *path;
        size_t off;
    } special[] = {
        { "/proc", offsetof (struct capsa_conf, mount_proc) },
        { "/sys", offsetof (struct capsa_conf, mount_sys) },
        { "/etc/passwd", offsetof (struct capsa_conf, config_passwd) },
        { "/etc/group", offsetof (struct capsa_conf, config_group) },
    };
    for (size_t i = 0; i < ARRAY_SIZE (special); i++) {
        bool *on = (bool *) ((char *) c->conf + special[i].off);
        int fd = capsa_open_in_root (c->image.fd, special[i].path, O_NOFOLLOW);
        if (fd >= 0) {
            close (fd);
            continue;
        }
        if (*on)
            warnf ("--writable: %s does not exist in %s and capsa cannot create it there: not mounted", special[i].path,
                   c->image.path);
        *on = false;
    }
    int fd = capsa_open_in_root (c->image.fd, "/dev", O_NOFOLLOW | O_DIRECTORY);
    if (fd < 0 && c->conf->mount_dev != MOUNT_DEV_NO) {
        warnf ("--writable: /dev does not exist in %s and capsa cannot create it there: not mounted", c->image.path);
        c->conf->mount_dev = MOUNT_DEV_NO;
    }
    if (fd >= 0)
        close (fd);
    size_t kept = 0;
    for (size_t i = 0; i < c->nbinds; i++) {
        struct capsa_host_path *b = &c->binds[i];
        bool under = false;
        for (size_t k = 0; k < kept; k++)
            under |= c->binds[k].is_dir && path_is_within (b->dst, c->binds[k].dst);
        capsa_error_t why = NULL;
        int t = under ? -1 : capsa_open_mountpoint (c->image.fd, b->dst, b->is_dir ? NODE_DIR : NODE_FILE, &why);
        if (under || t >= 0) {
            if (t >= 0)
                close (t);
            c->binds[kept++] = *b;
            continue;
        }
        /* The administrator's optional binds go quietly, as when their
         * source is missing; what the user asked for is worth a word. */
        bool optional = strcmp (b->what, "bind path") == 0 || strcmp (b->what, "resolv.conf") == 0
                        || strcmp (b->what, "temporary directory") == 0 || strcmp (b->what, "current directory") == 0
                        || strncmp (b->what, "GPU ", 4) == 0; /* one warning in gpu.c */
        if (optional)
            verbosef ("--writable: %s %s not mounted: %s", b->what, b->dst, why->msg);
        else
            warnf ("--writable: %s %s not mounted: %s (capsa creates nothing in a writable directory image)", b->what,
                   b->dst, why->msg);
        capsa_error_free (&why);
        close (b->fd);
        free (b->dst);
    }
    c->nbinds = kept;
}

/* A SIF's overlay partition is used read-only when --writable is not
 * given, as in Apptainer, where it may be: not where the administrator
 * keeps users' ext3 from the kernel (the image still runs, without it). */
static int
sif_partition_ro (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_layer l = { .kind = LAYER_EXT3, .ro = true, .fd = -1 };
    if (c->image.kind != IMAGE_SIF || c->image.encrypted)
        return 0;
    l.fd = reopen (c->image.fd, O_RDONLY);
    if (l.fd < 0)
        return capsa_error_make (err, errno, "%s", c->image.path);
    int r = sif_overlay (c, l.fd, c->image.path, &l.offset, &l.size, err);
    const char *skip = NULL;
    if (r > 0 && c->conf->enable_overlay == OVERLAY_NO)
        skip = "'enable overlay = no'";
    else if (r > 0 && c->mode == MODE_SETUID && !c->conf->allow_container_extfs)
        skip = "'allow container extfs = no'";
    else if (r > 0 && c->mode == MODE_SETUID && !c->conf->setuid_mount_extfs)
        skip = "'allow setuid-mount extfs = no'; --fakeroot or --userns would use it";
    if (r <= 0 || skip) {
        if (skip)
            verbosef ("the overlay partition of %s is not used (%s)", c->image.path, skip);
        close (l.fd);
        return r < 0 ? -1 : 0;
    }
    if (c->layers == NULL) {
        c->layers = xcalloc (1, sizeof (*c->layers));
        c->layers->rw = -1;
    }
    l.path = xstrdup (c->image.path);
    if (check_ext3 (c, &l, err) < 0) {
        close (l.fd);
        free (l.path);
        return -1;
    }
    /* Below every --overlay: first in the list. */
    add_layer (c->layers, l);
    return 0;
}

int
capsa_layers_prepare (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_opts *o = c->opts;
    if (!o->writable && sif_partition_ro (c, err) < 0)
        return -1;
    if (!o->writable && !o->writable_tmpfs && o->noverlays == 0) {
        if (c->layers != NULL)
            c->layers->fuse_root = c->layers->v[0].fuse
                                   || (c->mode == MODE_USERNS && c->conf->enable_overlay == OVERLAY_DRIVER);
        return 0;
    }
    struct capsa_layers *L = c->layers ? c->layers : xcalloc (1, sizeof (*L));
    if (c->layers == NULL)
        L->rw = -1;
    c->layers = L;

    if (o->writable && o->writable_tmpfs) {
        warnf ("--writable-tmpfs is ignored with --writable");
        o->writable_tmpfs = false;
    }
    bool overlays = o->writable_tmpfs || o->noverlays > 0 || (o->writable && c->image.kind != IMAGE_DIR);
    if (overlays && c->conf->enable_overlay == OVERLAY_NO)
        return capsa_error_make (err, 0, "%s: writable and added overlay layers are disabled by the administrator "
                                 "('enable overlay = no')",
                                 o->writable_tmpfs ? "--writable-tmpfs" : o->noverlays ? "--overlay" : "--writable");

    if (o->writable) {
        if (c->image.kind == IMAGE_DIR) {
            if (o->noverlays > 0)
                return capsa_error_make (err, 0, "--writable on the directory %s: it is the root itself, --overlay "
                                         "cannot be added",
                                         c->image.path);
            L->sandbox = true;
            drop_missing_mountpoints (c);
            return 0;
        }
        if (c->image.kind != IMAGE_SIF || c->image.encrypted)
            return capsa_error_make (err, 0,
                                     "--writable: %s cannot be written (a %s); use --writable-tmpfs, --overlay, or a "
                                     "SIF with an overlay partition",
                                     c->image.path, c->image.encrypted ? "encrypted SIF" : "squashfs image");
        struct capsa_layer l = { .kind = LAYER_EXT3, .path = xstrdup (c->image.path), .fd = reopen (c->image.fd, O_RDWR) };
        if (l.fd < 0) {
            int e = errno;
            free (l.path);
            return capsa_error_make (err, e, "--writable %s", c->image.path);
        }
        int r = sif_overlay (c, l.fd, c->image.path, &l.offset, &l.size, err);
        if (r == 0)
            capsa_error_make (err, 0,
                              "--writable: %s has no overlay partition (add one with 'capsa overlay create %s', or "
                              "use --writable-tmpfs)",
                              c->image.path, c->image.path);
        if (r <= 0 || check_ext3 (c, &l, err) < 0) {
            close (l.fd);
            free (l.path);
            return -1;
        }
        add_layer (L, l);
        L->rw = 0;
    }
    L->tmpfs = o->writable_tmpfs;
    for (size_t i = 0; i < o->noverlays; i++) {
        if (open_overlay (c, &o->overlays[i], err) < 0)
            return -1;
        if (o->overlays[i].ro)
            continue;
        if (L->rw >= 0 || L->tmpfs)
            return capsa_error_make (err, 0,
                                     "--overlay %s: only one writable layer (%s is one already); add :ro to the others",
                                     o->overlays[i].path,
                                     L->tmpfs ? "--writable-tmpfs" : L->v[L->rw].path);
        L->rw = (int) L->n - 1;
    }
    for (size_t i = 0; i < L->n; i++)
        L->fuse_root |= L->v[i].fuse;
    if (c->mode == MODE_USERNS && c->conf->enable_overlay == OVERLAY_DRIVER)
        L->fuse_root = true;
    if (capsa_log_get_level () >= CAPSA_LOG_VERBOSE)
        for (size_t i = 0; i < L->n; i++)
            verbosef ("overlay %s: %s, %s%s", L->v[i].path, L->v[i].kind == LAYER_DIR ? "directory" : "ext3",
                      L->v[i].ro ? "read-only" : "writable",
                      L->v[i].kind == LAYER_DIR ? "" : L->v[i].fuse ? ", served by fuse2fs" : ", kernel mount");
    return 0;
}

bool
capsa_layers_writable (const struct capsa_container *c)
{
    const struct capsa_layers *L = c->layers;
    return L != NULL && (L->sandbox || L->tmpfs || L->rw >= 0);
}

bool
capsa_layers_sandbox (const struct capsa_container *c)
{
    return c->layers != NULL && c->layers->sandbox;
}

/* ---- mounting, in the child ------------------------------------------------------- */

static int
mkdir_in (int dirfd, const char *name, capsa_error_t *err)
{
    if (mkdirat (dirfd, name, 0755) < 0 && errno != EEXIST)
        return capsa_error_make (err, errno, "cannot create staging directory %s", name);
    return 0;
}

/* NAME in DIRFD, a directory, as the caller: no symbolic link anywhere,
 * not leaving DIRFD, not crossing into another mount. */
static int
open_beneath (int dirfd, const char *name)
{
    struct open_how how = {
        .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS,
    };
    long r = syscall (SYS_openat2, dirfd, name, &how, sizeof (how));
    if (r < 0 && errno == ENOSYS)
        return openat (dirfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    return (int) r;
}

/* The upper (and for a writable layer, work) directory of the layer now
 * on stage/layers/N, opened as the user; a writable layer's are made when
 * missing (Apptainer's layout). */
static int
open_upper_work (struct capsa_layer *l, int rootdir, capsa_error_t *err)
{
    if (l->ro) {
        l->upperfd = open_beneath (rootdir, "upper");
        if (l->upperfd < 0 && errno == ENOENT)
            l->upperfd = open_beneath (rootdir, ".");
        if (l->upperfd < 0)
            return capsa_error_make (err, errno, "%s: cannot open its upper directory", l->path);
        return 0;
    }
    static const char *const names[] = { "upper", "work" };
    int *fds[] = { &l->upperfd, &l->workfd };
    for (size_t i = 0; i < 2; i++) {
        *fds[i] = open_beneath (rootdir, names[i]);
        if (*fds[i] < 0 && errno == ENOENT) {
            char buf[64];
            cleanup_close int d = open (capsa_fd_path (rootdir, buf, sizeof (buf)), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (d < 0 || (mkdirat (d, names[i], 0755) < 0 && errno != EEXIST))
                return capsa_error_make (err, errno, "%s: cannot create its %s directory", l->path, names[i]);
            *fds[i] = open_beneath (rootdir, names[i]);
        }
        if (*fds[i] < 0)
            return capsa_error_make (err, errno, "%s: cannot open its %s directory%s", l->path, names[i],
                                     errno == ELOOP || errno == EXDEV ? " (a symbolic link or a mount point)" : "");
    }
    return 0;
}

static int
mount_layer (struct capsa_container *c, int sock, int layersfd, size_t i, capsa_error_t *err)
{
    struct capsa_layer *l = &c->layers->v[i];
    char name[32], dev[64];
    const unsigned long flags = MS_NOSUID | MS_NODEV | (l->ro ? MS_RDONLY : 0);
    snprintf (name, sizeof (name), "%zu", i);
    if (mkdir_in (layersfd, name, err) < 0)
        return -1;
    cleanup_close int t = openat (layersfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (t < 0)
        return capsa_error_make (err, errno, "cannot open staging directory layers/%s", name);
    if (l->kind == LAYER_DIR) {
        if (capsa_bind_fd (l->fd, t, false, flags, l->path, err) < 0)
            return -1;
    } else if (l->fuse) {
        if (capsa_fuse_mount_served (c, sock, t, "fuse.fuse2fs", SERVER_FUSE2FS, l->fd, l->offset, l->size, flags, err)
            < 0)
            return capsa_error_wrap (err, "overlay %s", l->path);
    } else {
        cleanup_close int lfd = capsa_loop_attach (c, l->fd, l->offset, l->offset ? l->size : 0, !l->ro, dev,
                                                   sizeof (dev), err);
        if (lfd < 0 || capsa_mount_fd (dev, t, "ext3", flags, NULL, l->path, err) < 0)
            return capsa_error_wrap (err, "overlay %s", l->path);
        debugf ("overlay %s on %s (offset %llu)", l->path, dev, (unsigned long long) l->offset);
    }
    cleanup_close int root = openat (layersfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (root < 0)
        return capsa_error_make (err, errno, "overlay %s", l->path);
    if (open_upper_work (l, root, err) < 0)
        return -1;
    /* Without --fakeroot fuse-overlayfs runs as the user, the only id
     * mapped: a writable image whose directories belong to someone else
     * (made by root's 'overlay create') would fail there with a message
     * about its work directory.  Say why here.  (Under --fakeroot, root
     * of the namespace may write to any mapped owner's.) */
    if (l->fuse && !l->ro && !c->fakeroot && faccessat (l->workfd, "", W_OK | X_OK, AT_EMPTY_PATH | AT_EACCESS) < 0 && errno == EACCES) {
        struct stat st;
        uid_t owner = fstat (l->workfd, &st) == 0 ? st.st_uid : (uid_t) -1;
        return capsa_error_make (err, 0,
                                 "overlay %s: its upper and work directories are not writable by this user (owner "
                                 "uid %d in the user namespace): use an overlay made by this user, or --fakeroot",
                                 l->path, (int) owner);
    }
    return 0;
}

/* The layers for overlayfs's lowerdir=, topmost first: [capsa's mount
 * points, when a persistent layer is the upper] [the read-only layers,
 * the last given on top] [the image].  Kernel: /proc/self/fd/N; FUSE (a
 * process of its own): stage paths. */
static char *
lower_list (struct capsa_container *c, bool with_mountpoints, bool upper_as_lower, bool stage_paths)
{
    struct capsa_layers *L = c->layers;
    cleanup_free char *out = NULL;
    size_t len = 0;
    char buf[64];
    if (with_mountpoints) {
        str_append (&out, &len, c->stage_dir);
        str_append (&out, &len, "/upper:");
    }
    if (upper_as_lower && L->rw >= 0) {
        if (stage_paths) {
            cleanup_free char *p = xasprintf ("%s/layers/%d/upper:", c->stage_dir, L->rw);
            str_append (&out, &len, p);
        } else {
            str_append (&out, &len, capsa_fd_path (L->v[L->rw].upperfd, buf, sizeof (buf)));
            str_append (&out, &len, ":");
        }
    }
    for (size_t k = L->n; k-- > 0;) {
        if (!L->v[k].ro)
            continue;
        if (stage_paths) {
            /* The upper directory if there is one, as the kernel's list. */
            struct stat a, b;
            cleanup_free char *root = xasprintf ("%s/layers/%zu", c->stage_dir, k);
            cleanup_free char *up = xasprintf ("%s/upper", root);
            bool has_upper = fstat (L->v[k].upperfd, &a) == 0 && stat (up, &b) == 0 && a.st_ino == b.st_ino
                             && a.st_dev == b.st_dev;
            str_append (&out, &len, has_upper ? up : root);
            str_append (&out, &len, ":");
        } else {
            str_append (&out, &len, capsa_fd_path (L->v[k].upperfd, buf, sizeof (buf)));
            str_append (&out, &len, ":");
        }
    }
    str_append (&out, &len, c->stage_dir);
    str_append (&out, &len, "/image");
    return steal_ptr (&out);
}

static int
mount_overlay (const char *target, unsigned long flags, const char *data, const char *what, capsa_error_t *err)
{
    capsa_privs_mount_begin ();
    int r = mount ("overlay", target, "overlay", flags, data);
    int e = errno;
    capsa_privs_mount_end ();
    if (r < 0)
        return capsa_error_make (err, e, "cannot mount %s (overlayfs: %s)", what, data);
    return 0;
}

/* The directories premake_targets made in DIRFD (capsa's private layer,
 * at REL in the container) take the owner and mode of the same
 * directories in VIEWFD: /etc made there for /etc/passwd must still be
 * root's 0755 in a writable container, not the user's.  Deepest first
 * (a directory becoming root's 0700 cannot be entered by the user after).
 * Root's identity for each change: the layer is capsa's own, in the
 * container's private namespace, which nobody else can reach. */
static int
match_attributes (int dirfd, int viewfd, const char *rel, int depth, capsa_error_t *err)
{
    int dup = fcntl (dirfd, F_DUPFD_CLOEXEC, 3);
    DIR *d = dup < 0 ? NULL : fdopendir (dup);
    if (d == NULL) {
        if (dup >= 0)
            close (dup);
        return capsa_error_make (err, errno, "cannot read the container's private layer");
    }
    int ret = 0;
    for (struct dirent *e = readdir (d); e && ret == 0; e = readdir (d)) {
        struct stat st, want;
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        if (fstatat (dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR (st.st_mode))
            continue;
        cleanup_free char *path = xasprintf ("%s/%s", rel, e->d_name);
        if (depth < 32) {
            cleanup_close int sub = openat (dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
            if (sub >= 0 && match_attributes (sub, viewfd, path, depth + 1, err) < 0) {
                ret = -1;
                break;
            }
        }
        cleanup_close int v = capsa_open_in_root (viewfd, path, O_NOFOLLOW);
        if (v < 0 || fstat (v, &want) < 0 || !S_ISDIR (want.st_mode))
            continue;
        cleanup_close int mine = openat (dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (mine < 0)
            continue;
        capsa_privs_mount_begin ();
        int r = fchown (mine, want.st_uid, want.st_gid);
        if (r == 0)
            r = fchmod (mine, want.st_mode & 07777);
        int er = errno;
        capsa_privs_mount_end ();
        if (r < 0)
            ret = capsa_error_make (err, er, "cannot set the owner of %s in the container's private layer", path);
    }
    closedir (d);
    return ret;
}

static int
match_premade (struct capsa_container *c, int stagefd, capsa_error_t *err)
{
    struct capsa_layers *L = c->layers;
    struct stat want;
    if (c->mode == MODE_USERNS || L->intodir == NULL)
        return 0; /* (the image's owners are not mapped there) */
    cleanup_close int viewfd = openat (stagefd, L->viewdir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    cleanup_close int intofd = openat (stagefd, L->intodir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (viewfd < 0 || intofd < 0)
        return capsa_error_make (err, errno, "cannot open the container's private layer");
    if (match_attributes (intofd, viewfd, "", 0, err) < 0)
        return -1;
    /* The root directory itself. */
    if (fstat (viewfd, &want) < 0)
        return capsa_error_make (err, errno, "cannot read the image's root");
    capsa_privs_mount_begin ();
    int r = fchown (intofd, want.st_uid, want.st_gid);
    if (r == 0)
        r = fchmod (intofd, want.st_mode & 07777);
    int e = errno;
    capsa_privs_mount_end ();
    if (r < 0)
        return capsa_error_make (err, e, "cannot set the owner of the container's root");
    return 0;
}

int
capsa_layers_mount (struct capsa_container *c, int sock, int stagefd, const char **view, const char **into,
                    capsa_error_t *err)
{
    struct capsa_layers *L = c->layers;
    const bool userns = c->mode == MODE_USERNS;
    *view = "image";
    *into = "upper";
    if (L->sandbox)
        return 0;
    if (L->n > 0) {
        if (mkdir_in (stagefd, "layers", err) < 0)
            return -1;
        cleanup_close int layersfd = openat (stagefd, "layers", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (layersfd < 0)
            return capsa_error_make (err, errno, "cannot open staging directory layers");
        for (size_t i = 0; i < L->n; i++)
            if (mount_layer (c, sock, layersfd, i, err) < 0)
                return -1;
    }
    if (L->tmpfs) {
        /* The writable layer in memory, 'sessiondir max size' MiB: capsa's
         * own, so mount points are made right in it. */
        cleanup_free char *path = xasprintf ("%s/wt", c->stage_dir);
        cleanup_free char *opts = xasprintf ("mode=0755,uid=%u,gid=%u,size=%ldm", c->user.uid, c->user.gid,
                                             c->conf->sessiondir_max_size);
        if (mkdir_in (stagefd, "wt", err) < 0)
            return -1;
        capsa_privs_mount_begin ();
        int r = mount ("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts);
        int e = errno;
        capsa_privs_mount_end ();
        if (r < 0)
            return capsa_error_make (err, e, "cannot mount the --writable-tmpfs layer");
        if (mkdir_in (stagefd, "wt/upper", err) < 0 || mkdir_in (stagefd, "wt/work", err) < 0)
            return -1;
        *into = "wt/upper";
    }
    /* Where mount points are looked for: the image, or with more layers a
     * read-only overlay of them all. */
    bool more = L->rw >= 0;
    for (size_t i = 0; i < L->n; i++)
        more |= L->v[i].ro;
    if (more) {
        cleanup_free char *lowers = lower_list (c, false, true, false);
        cleanup_free char *data = xasprintf ("lowerdir=%s%s", lowers, userns ? ",userxattr" : "");
        cleanup_free char *path = xasprintf ("%s/view", c->stage_dir);
        if (mkdir_in (stagefd, "view", err) < 0
            || mount_overlay (path, MS_RDONLY | MS_NOSUID | MS_NODEV, data, "the overlay layers", err) < 0)
            return -1;
        L->view = true;
        *view = "view";
    }
    L->viewdir = *view;
    L->intodir = *into;
    return 0;
}

int
capsa_layers_mount_root (struct capsa_container *c, int sock, int stagefd, unsigned long rootflags, capsa_error_t *err)
{
    struct capsa_layers *L = c->layers;
    const bool userns = c->mode == MODE_USERNS;
    char buf[64], buf2[64];
    cleanup_free char *rootpath = xasprintf ("%s/root", c->stage_dir);
    cleanup_close int rootfd = openat (stagefd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (rootfd < 0)
        return capsa_error_make (err, errno, "cannot open staging directory root");

    if (L->sandbox) {
        /* The directory itself, read-write (mount_image bound it so). */
        cleanup_close int img = openat (stagefd, "image", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (img < 0)
            return capsa_error_make (err, errno, "cannot open staging directory image");
        return capsa_bind_fd (img, rootfd, true, rootflags, c->image.path, err);
    }
    if (match_premade (c, stagefd, err) < 0)
        return -1;
    if (L->view) {
        cleanup_free char *path = xasprintf ("%s/view", c->stage_dir);
        capsa_privs_mount_begin ();
        int r = umount2 (path, MNT_DETACH);
        int e = errno;
        capsa_privs_mount_end ();
        if (r < 0)
            return capsa_error_make (err, e, "cannot unmount the overlay view");
        L->view = false;
    }

    const bool persistent = L->rw >= 0;
    cleanup_free char *upper = NULL, *work = NULL;
    if (persistent) {
        upper = L->fuse_root ? xasprintf ("%s/layers/%d/upper", c->stage_dir, L->rw)
                             : xstrdup (capsa_fd_path (L->v[L->rw].upperfd, buf, sizeof (buf)));
        work = L->fuse_root ? xasprintf ("%s/layers/%d/work", c->stage_dir, L->rw)
                            : xstrdup (capsa_fd_path (L->v[L->rw].workfd, buf2, sizeof (buf2)));
    } else if (L->tmpfs) {
        upper = xasprintf ("%s/wt/upper", c->stage_dir);
        work = xasprintf ("%s/wt/work", c->stage_dir);
    } else {
        upper = xasprintf ("%s/upper", c->stage_dir);
        work = xasprintf ("%s/work", c->stage_dir);
    }
    cleanup_free char *lowers = lower_list (c, persistent, false, L->fuse_root);
    cleanup_free char *data = xasprintf ("lowerdir=%s,upperdir=%s,workdir=%s", lowers, upper, work);
    debugf ("root overlay%s: %s", L->fuse_root ? " (fuse-overlayfs)" : "", data);
    if (L->fuse_root) {
        if (capsa_fuse_mount_overlayfs (c, sock, rootfd, data, rootflags, err) < 0)
            return capsa_error_wrap (err, "the container's root (fuse-overlayfs)");
        /* The first request waits until fuse-overlayfs serves, or fails
         * if it gave up (it says why with -d). */
        struct stat st;
        cleanup_close int top = open (rootpath, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (top < 0 || fstat (top, &st) < 0)
            return capsa_error_make (err, errno, "fuse-overlayfs could not serve the container's root%s",
                                     capsa_log_get_level () < CAPSA_LOG_DEBUG ? " (run with -d to see why)" : "");
        return 0;
    }
    cleanup_free char *kdata = xasprintf ("%s%s", data, userns ? ",userxattr" : "");
    if (mount_overlay (rootpath, rootflags, kdata, "the container's root", err) < 0) {
        if (persistent && L->v[L->rw].kind == LAYER_DIR)
            capsa_error_wrap (err, "overlay %s (its file system must support overlayfs upper directories%s)",
                              L->v[L->rw].path, userns ? " and user.* extended attributes" : "");
        return -1;
    }
    return 0;
}

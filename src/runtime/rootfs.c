/* The container's root, assembled by the child in its new mount namespace.
 *
 * The child acts as the user throughout (src/runtime/privs.h); root's
 * identity comes back only inside the mount wrappers of mount.c, one
 * syscall at a time, and for creating nodes in a fresh tmpfs of capsa's own.
 *
 *   stage    a tmpfs over PREFIX/libexec/capsa/mnt, owned by the user:
 *            image/ (the image), upper/ + work/ (the overlay's private
 *            layer, where every missing mount point is made), root/ (the
 *            overlay), files/ (generated /etc/passwd and /etc/group)
 *   root     overlay of image/ and upper/; /proc, /sys, /dev; the binds,
 *            each on a mount point that must already exist: one that is
 *            missing below a host directory bound earlier is an error,
 *            never created there; then read-only and pivot_root. */
#include "runtime/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/container.h"
#include "runtime/fusebroker.h"
#include "runtime/imageserver.h"
#include "runtime/mount.h"
#include "runtime/overlay.h"
#include "runtime/privs.h"

/* ------------------------------------------------------------------ */
/* Shared with the build.                                              */
/* ------------------------------------------------------------------ */

static int
target (int rootfd, const char *path, bool create, capsa_error_t *err)
{
    return create ? capsa_make_in_root (rootfd, path, NODE_DIR, err) : capsa_open_mountpoint (rootfd, path, NODE_DIR, err);
}

/* The hidepid=, subset= and gid= options of the host's /proc (the last,
 * i.e. topmost, procfs mounted on /proc), as "hidepid=2,subset=pid" in
 * *OUT, or NULL when it has none.  Fails (closed) when they cannot be
 * read: a procfs without them could show more than the host does. */
static int
host_proc_options (char **out, capsa_error_t *err)
{
    cleanup_fclose FILE *f = fopen ("/proc/self/mountinfo", "re");
    cleanup_free char *line = NULL;
    size_t cap = 0;
    char *found = NULL;
    if (f == NULL)
        return capsa_error_make (err, errno, "cannot read /proc/self/mountinfo for the options of /proc");
    while (getline (&line, &cap, f) > 0) {
        char mnt[1024], fstype[64], super[1024];
        char *sep = strstr (line, " - ");
        if (sep == NULL || sscanf (line, "%*s %*s %*s %*s %1023s", mnt) != 1 || strcmp (mnt, "/proc") != 0
            || sscanf (sep + 3, "%63s %*s %1023s", fstype, super) != 2 || strcmp (fstype, "proc") != 0)
            continue;
        char *keep = NULL, *save = NULL;
        size_t len = 0;
        for (char *o = strtok_r (super, ",", &save); o; o = strtok_r (NULL, ",", &save)) {
            if (strncmp (o, "hidepid=", 8) != 0 && strncmp (o, "subset=", 7) != 0 && strncmp (o, "gid=", 4) != 0)
                continue;
            if (keep)
                str_append (&keep, &len, ",");
            str_append (&keep, &len, o);
        }
        free (found);
        found = keep;
    }
    if (ferror (f)) {
        free (found);
        return capsa_error_make (err, EIO, "cannot read /proc/self/mountinfo for the options of /proc");
    }
    *out = found;
    return 0;
}

int
capsa_rootfs_mount_proc (int rootfd, bool create, capsa_error_t *err)
{
    cleanup_free char *opts = NULL;
    if (host_proc_options (&opts, err) < 0)
        return -1;
    cleanup_close int t = target (rootfd, "/proc", create, err);
    if (t < 0)
        return -1;
    if (opts)
        debugf ("procfs with the host's options %s", opts);
    return capsa_mount_fd ("proc", t, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts, "/proc", err);
}

int
capsa_rootfs_bind_proc (int rootfd, bool create, capsa_error_t *err)
{
    cleanup_close int t = target (rootfd, "/proc", create, err);
    cleanup_close int s = open ("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (t < 0)
        return -1;
    if (s < 0)
        return capsa_error_make (err, errno, "cannot open /proc");
    return capsa_bind_fd (s, t, true, MS_NOSUID | MS_NODEV | MS_NOEXEC, "/proc", err);
}

int
capsa_rootfs_mount_sys (int rootfd, bool fresh, bool create, capsa_error_t *err)
{
    const unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    cleanup_close int t = target (rootfd, "/sys", create, err);
    if (t < 0)
        return -1;
    if (fresh)
        return capsa_mount_fd ("sysfs", t, "sysfs", flags, NULL, "/sys", err);
    cleanup_close int s = open ("/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s < 0)
        return capsa_error_make (err, errno, "cannot open /sys");
    return capsa_bind_fd (s, t, true, flags, "/sys", err);
}

/* mknodat/symlinkat/mkdirat in DIRFD, a fresh tmpfs of capsa's own: with
 * root's identity in setuid mode, where that tmpfs belongs to root. */
static int
make_node (int dirfd, const char *name, int kind, const char *linkto)
{
    capsa_privs_mount_begin ();
    int r = kind == 'f' ? mknodat (dirfd, name, S_IFREG | 0644, 0)
            : kind == 'd' ? mkdirat (dirfd, name, 0755)
                          : symlinkat (linkto, dirfd, name);
    int e = errno;
    capsa_privs_mount_end ();
    errno = e;
    return r;
}

int
capsa_rootfs_setup_dev (int rootfd, unsigned flags, const char *size, int *devfd_out, capsa_error_t *err)
{
    static const char *const nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
    static const char *const links[][2] = {
        { "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
        { "/proc/self/fd/2", "stderr" }, { "pts/ptmx", "ptmx" },
    };
    const bool optional = (flags & DEV_OPTIONAL) != 0;
    cleanup_close int t = target (rootfd, "/dev", (flags & DEV_CREATE) != 0, err);
    if (t < 0)
        return -1;
    /* The file system is made detached and filled through its own
     * descriptor, then attached: nothing here is looked up by a path that
     * a tree of the user's (a --writable sandbox, say) could change. */
    cleanup_free char *data = (flags & DEV_RAMFS) ? xstrdup ("mode=0755") : xasprintf ("mode=0755,size=%s", size);
    const char *fstype = (flags & DEV_RAMFS) ? "ramfs" : "tmpfs";
    cleanup_close int mnt = capsa_fs_new (fstype, data, MS_NOSUID | MS_NODEV | MS_NOEXEC, "/dev", err);
    if (mnt < 0)
        return -1;
    cleanup_close int dev = openat (mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dev < 0)
        return capsa_error_make (err, errno, "cannot open the container's /dev");

    /* One privileged bracket for all of them: fixed names in a file
     * system nobody else can see yet. */
    const char *failed = NULL;
    capsa_privs_mount_begin ();
    for (size_t i = 0; i < ARRAY_SIZE (nodes) && !failed; i++)
        if (mknodat (dev, nodes[i], S_IFREG | 0644, 0) < 0)
            failed = nodes[i];
    for (size_t i = 0; i < ARRAY_SIZE (links) && !failed; i++) {
        if ((flags & DEV_NO_DEVPTS) && strcmp (links[i][1], "ptmx") == 0)
            continue; /* no devpts, no ptmx (as Apptainer) */
        if (symlinkat (links[i][0], dev, links[i][1]) < 0)
            failed = links[i][1];
    }
    if (!failed && mkdirat (dev, "pts", 0755) < 0)
        failed = "pts";
    if (!failed && mkdirat (dev, "shm", 0755) < 0)
        failed = "shm";
    int e = errno;
    capsa_privs_mount_end ();
    if (failed)
        return capsa_error_make (err, e, "cannot create /dev/%s", failed);
    if (capsa_fs_attach (mnt, t, "/dev", err) < 0)
        return -1;

    for (size_t i = 0; i < ARRAY_SIZE (nodes); i++) {
        char host[32];
        snprintf (host, sizeof (host), "/dev/%s", nodes[i]);
        cleanup_close int s = open (host, O_PATH | O_CLOEXEC);
        cleanup_close int n = openat (dev, nodes[i], O_PATH | O_CLOEXEC | O_NOFOLLOW);
        if (n < 0)
            return capsa_error_make (err, errno, "cannot open /dev/%s", nodes[i]);
        if (s < 0) {
            if (optional)
                continue;
            return capsa_error_make (err, errno, "cannot open %s", host);
        }
        /* Device binds are the only mounts without nodev: they are the
         * host's own harmless nodes, chosen here, not by the user. */
        if (capsa_bind_fd (s, n, false, MS_NOSUID | MS_NOEXEC, host, err) < 0)
            return -1;
    }
    cleanup_close int pts = openat (dev, "pts", O_PATH | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW);
    cleanup_close int shm = openat (dev, "shm", O_PATH | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW);
    if (pts < 0 || shm < 0)
        return capsa_error_make (err, errno, "cannot open /dev/pts");

    /* devpts with gid= needs the tty group mapped; retry without.  (It
     * cannot be nodev: its nodes are the terminals.) */
    if (flags & DEV_NO_DEVPTS) {
        /* 'mount devpts = no': an empty /dev/pts. */
    } else if (capsa_mount_fd ("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620", "/dev/pts", err) < 0) {
        capsa_error_free (err);
        if (capsa_mount_fd ("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666", "/dev/pts", err) < 0) {
            if (!optional)
                return -1;
            capsa_error_free (err);
        }
    }
    if (flags & DEV_SHM_HOST) {
        /* The host's /dev/shm, as Apptainer does, so that shared-memory
         * transports (MPI) work between containers of one job. */
        cleanup_close int s = open ("/dev/shm", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (s < 0 || capsa_bind_fd (s, shm, true, MS_NOSUID | MS_NODEV, "/dev/shm", err) < 0) {
            if (s < 0)
                capsa_error_make (err, errno, "cannot open /dev/shm");
            if (!optional)
                return -1;
            capsa_error_free (err);
        }
    } else if (flags & DEV_SHM_PRIVATE) {
        cleanup_close int m = capsa_fs_new (fstype, "mode=1777", MS_NOSUID | MS_NODEV, "/dev/shm", err);
        if (m < 0 || capsa_fs_attach (m, shm, "/dev/shm", err) < 0) {
            if (!optional)
                return -1;
            capsa_error_free (err);
        }
    }
    /* The caller fills it further (devices the user bound) through DEV and
     * makes it read-only through the mount's descriptor. */
    if (devfd_out) {
        *devfd_out = steal_fd (&dev);
        return steal_fd (&mnt);
    }
    /* Populated: nothing more may be created in it. */
    if (flags & DEV_WRITABLE)
        return 0;
    return capsa_remount_fd (mnt, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "/dev", err);
}

int
capsa_rootfs_pivot (int rootfd, capsa_error_t *err)
{
    if (fchdir (rootfd) < 0)
        return capsa_error_make (err, errno, "cannot enter the container root");
    capsa_privs_mount_begin ();
    int r = (int) syscall (SYS_pivot_root, ".", ".");
    int e = errno;
    if (r == 0) {
        r = umount2 (".", MNT_DETACH);
        e = errno;
    }
    capsa_privs_mount_end ();
    if (r < 0)
        return capsa_error_make (err, e, "pivot_root");
    if (chdir ("/") < 0)
        return capsa_error_make (err, errno, "chdir /");
    return 0;
}

/* ------------------------------------------------------------------ */
/* The container.                                                      */
/* ------------------------------------------------------------------ */

static int
mkdir_at (int dirfd, const char *name, capsa_error_t *err)
{
    if (mkdirat (dirfd, name, 0755) < 0 && errno != EEXIST)
        return capsa_error_make (err, errno, "cannot create staging directory %s", name);
    return 0;
}

/* Attach the image file to a free loop device, read-only unless RW,
 * limited to OFFSET and SIZE, freed automatically when unmounted.  Returns
 * the loop fd.  /dev/loop-control and the loop devices are root's: root's
 * identity for this step (the image itself was opened by the user). */
int
capsa_loop_attach (struct capsa_container *c, int filefd, uint64_t offset, uint64_t size, bool rw, char *dev,
                   size_t devlen, capsa_error_t *err)
{
    int ret = -1;
    capsa_privs_mount_begin ();
    int ctl = open ("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        capsa_error_make (err, errno, "cannot open /dev/loop-control");
        goto out;
    }
    /* Concurrent starts race for the same free device: each lost race
     * (EBUSY) asks again; 64 containers at once must all find one. */
    for (int attempt = 0; attempt < 256 && ret < 0; attempt++) {
        int n = ioctl (ctl, LOOP_CTL_GET_FREE);
        if (n < 0) {
            capsa_error_make (err, errno, "no free loop device");
            break;
        }
        if (n >= c->conf->max_loop_devices) {
            capsa_error_make (err, 0, "no free loop device below 'max loop devices = %ld'", c->conf->max_loop_devices);
            break;
        }
        snprintf (dev, devlen, "/dev/loop%d", n);
        int lfd = open (dev, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (lfd < 0) {
            capsa_error_make (err, errno, "cannot open %s", dev);
            break;
        }
        struct loop_config cfg = {
            .fd = (uint32_t) filefd,
            .info = { .lo_offset = offset, .lo_sizelimit = size,
                      .lo_flags = (rw ? 0 : LO_FLAGS_READ_ONLY) | LO_FLAGS_AUTOCLEAR },
        };
        if (ioctl (lfd, LOOP_CONFIGURE, &cfg) == 0) {
            ret = lfd;
            break;
        }
        int e = errno;
        close (lfd);
        if (e != EBUSY) {
            capsa_error_make (err, e, "cannot set up %s", dev);
            break;
        }
        if (attempt == 255)
            capsa_error_make (err, EBUSY, "cannot find a free loop device");
    }
out:
    if (ctl >= 0)
        close (ctl);
    capsa_privs_mount_end ();
    return ret;
}

static int
mount_image (struct capsa_container *c, int sock, int stagefd, capsa_error_t *err)
{
    cleanup_close int t = openat (stagefd, "image", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    /* setuid bits in the image count only with --allow-setuid (root only).
     * --writable on a directory: it is the root, read-write (overlay.h). */
    const unsigned long flags = (capsa_layers_sandbox (c) ? 0 : MS_RDONLY) | MS_NODEV
                                | (c->opts->allow_setuid ? 0 : MS_NOSUID);

    if (t < 0)
        return capsa_error_make (err, errno, "cannot open staging directory");
    if (c->image.kind == IMAGE_DIR)
        return capsa_bind_fd (c->image.fd, t, true, flags, "the image directory", err);

    /* capsa's image server (started or found by the monitor, as the user)
     * parses the image, and decrypts it itself: one FUSE layer. */
    const char *why = NULL;
    if (c->use_fuse && capsa_imgsrv_available (c, &why))
        return capsa_fuse_mount_served (c, sock, t, "fuse.capsa-imagefuse", SERVER_IMAGE, c->image.fd, c->image.offset,
                                        c->image.size, flags, err);
    if (c->use_fuse)
        verbosef ("image server: %s: %s serves the image", why,
                  c->image.encrypted ? "capsa-cryptfuse with squashfuse_ll" : "squashfuse_ll");

    int filefd = c->image.fd;
    uint64_t offset = c->image.offset, size = c->image.size;
    cleanup_close int plainfd = -1;
    if (c->image.encrypted) {
        /* The user's capsa-cryptfuse decrypts the LUKS2 container in
         * memory and serves the squashfs as the file crypt/image. */
        if (mkdir_at (stagefd, "crypt", err) < 0)
            return -1;
        cleanup_close int ct = openat (stagefd, "crypt", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (ct < 0
            || capsa_fuse_mount_served (c, sock, ct, "fuse.capsa-cryptfuse", SERVER_CRYPT, c->image.fd, offset, size,
                                        MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, err) < 0)
            return capsa_error_wrap (err, "encrypted image %s", c->image.path);
        plainfd = openat (stagefd, "crypt/image", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (plainfd < 0)
            return capsa_error_make (err, errno, "cannot open the decrypted image");
        filefd = plainfd;
        offset = 0;
        size = 0;
    }

    if (!c->use_fuse) {
        char dev[64];
        cleanup_close int lfd = capsa_loop_attach (c, filefd, offset, size, false, dev, sizeof (dev), err);
        if (lfd < 0)
            return -1;
        debugf ("image on %s (offset %llu, size %llu)", dev, (unsigned long long) offset, (unsigned long long) size);
        return capsa_mount_fd (dev, t, "squashfs", flags, NULL, "the image's squashfs", err);
    }
    /* squashfuse_ll, run by the monitor as the user, parses the image. */
    return capsa_fuse_mount_served (c, sock, t, "fuse.squashfuse", SERVER_SQUASHFS, filefd, offset, size, flags, err);
}

/* Where the directory DIRFD is, relative to the image's root whose own
 * path is IMAGEPATH ("/a/b"), or NULL. */
static char *
path_in_image (int dirfd, const char *imagepath)
{
    char buf[64], real[4096];
    ssize_t n = readlink (capsa_fd_path (dirfd, buf, sizeof (buf)), real, sizeof (real) - 1);
    size_t l = strlen (imagepath);
    if (n < 0)
        return NULL;
    real[n] = '\0';
    if (strncmp (real, imagepath, l) != 0 || (real[l] != '/' && real[l] != '\0'))
        return NULL;
    return xstrdup (real[l] ? real + l : "/");
}

struct premake {
    struct capsa_container *c;
    int imagefd;           /* the image's root (lower layer) */
    int upperfd;           /* O_RDONLY directory: the upper layer's root */
    const char *imagepath; /* where the image is mounted, for path_in_image */
};

/* The owner and mode of the image's directory REL, read as the user,
 * inside the image (RESOLVE_IN_ROOT: a symlink an image server shows in
 * place of a directory it showed before cannot lead out of it). */
static int
image_attrs (const struct premake *pm, const char *rel, struct stat *st, capsa_error_t *err)
{
    cleanup_close int fd = capsa_open_in_root (pm->imagefd, rel, O_NOFOLLOW | O_DIRECTORY);
    if (fd < 0 || fstat (fd, st) < 0)
        return capsa_error_make (err, errno, "cannot read the attributes of /%s in the image", rel);
    if (!S_ISDIR (st->st_mode))
        return capsa_error_make (err, ENOTDIR, "cannot read the attributes of /%s in the image", rel);
    return 0;
}

/* Give the new upper directory DIRFD the owner and mode ST of the image's
 * directory REL (image_attrs), as overlayfs's own copy-up would: a
 * directory of the upper layer hides the attributes of the image's one it
 * merges with, so it must not open what the image keeps closed.  (In a
 * user namespace an owner that is not mapped cannot be given; the mode
 * still is.) */
static int
mirror_attrs (const struct premake *pm, int dirfd, const char *rel, const struct stat *st, capsa_error_t *err)
{
    int r = fchown (dirfd, st->st_uid, st->st_gid);
    if (r < 0 && !(pm->c->mode == MODE_USERNS && (errno == EINVAL || errno == EPERM)))
        return capsa_error_make (err, errno, "cannot give /%s its owner in the container's layer", rel);
    if (fchmod (dirfd, st->st_mode & 07777) < 0)
        return capsa_error_make (err, errno, "cannot give /%s its mode in the container's layer", rel);
    return 0;
}

/* Create BASE/REST in the upper layer: BASE is a real directory of the
 * image (no symlink in it), each of its components made as a copy of the
 * image's (mirror_attrs); REST is new, its last component of kind KIND.
 * Capsa's own private layer, walked by descriptors without following
 * anything, with root's identity (it holds root's directories). */
static int
upper_make (const struct premake *pm, const char *base, const char *rest, enum capsa_node kind, capsa_error_t *err)
{
    cleanup_free char *bcopy = xstrdup (base), *rcopy = xstrdup (rest);
    cleanup_free char *rel = xstrdup ("");
    size_t rel_len = 0;
    char *save = NULL;
    int ret = -1;
    /* The image's attributes first, as the user: root only creates and
     * changes capsa's own layer below. */
    size_t ncomp = 0, k = 0;
    for (const char *p = base; *p; p++)
        if (*p != '/' && (p == base || p[-1] == '/'))
            ncomp++;
    cleanup_free struct stat *attrs = xmalloc ((ncomp + 1) * sizeof (*attrs));
    for (char *comp = strtok_r (bcopy, "/", &save); comp; comp = strtok_r (NULL, "/", &save)) {
        if (rel_len)
            str_append (&rel, &rel_len, "/");
        str_append (&rel, &rel_len, comp);
        if (image_attrs (pm, rel, &attrs[k++], err) < 0)
            return -1;
    }
    free (bcopy);
    bcopy = xstrdup (base);
    rel[0] = '\0';
    rel_len = 0;
    save = NULL;
    k = 0;

    int cur = fcntl (pm->upperfd, F_DUPFD_CLOEXEC, 3);
    if (cur < 0)
        return capsa_error_make (err, errno, "dup");

    capsa_privs_mount_begin ();
    for (char *comp = strtok_r (bcopy, "/", &save); comp; comp = strtok_r (NULL, "/", &save)) {
        if (rel_len)
            str_append (&rel, &rel_len, "/");
        str_append (&rel, &rel_len, comp);
        const struct stat *st = &attrs[k++];
        bool made = mkdirat (cur, comp, 0700) == 0;
        if (!made && errno != EEXIST) {
            capsa_error_make (err, errno, "cannot create /%s in the container's layer", rel);
            goto out;
        }
        int next = openat (cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            capsa_error_make (err, errno, "cannot open /%s in the container's layer", rel);
            goto out;
        }
        close (cur);
        cur = next;
        if (made && mirror_attrs (pm, cur, rel, st, err) < 0)
            goto out;
    }
    save = NULL;
    char *comp = strtok_r (rcopy, "/", &save);
    while (comp) {
        char *next_comp = strtok_r (NULL, "/", &save);
        if (strcmp (comp, ".") == 0 || strcmp (comp, "..") == 0) {
            capsa_error_make (err, 0, "mount point %s/%s: '.' and '..' are not allowed", base, rest);
            goto out;
        }
        if (next_comp == NULL && kind == NODE_FILE) {
            if (mknodat (cur, comp, S_IFREG | 0644, 0) < 0 && errno != EEXIST) {
                capsa_error_make (err, errno, "cannot create %s/%s in the container's layer", base, rest);
                goto out;
            }
            break;
        }
        if (mkdirat (cur, comp, 0755) < 0 && errno != EEXIST) {
            capsa_error_make (err, errno, "cannot create %s/%s in the container's layer", base, rest);
            goto out;
        }
        int next = openat (cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            capsa_error_make (err, errno, "cannot open %s/%s in the container's layer", base, rest);
            goto out;
        }
        close (cur);
        cur = next;
        comp = next_comp;
    }
    ret = 0;
out:
    close (cur);
    capsa_privs_mount_end ();
    return ret;
}

/* Make sure the mount point TGT will exist in the overlay, of the right
 * kind and not a symlink.  Looked up as the user: only a path that does
 * not exist (ENOENT all along) is created, in the upper layer, below the
 * place its deepest existing parent really is in the image (so a symlinked
 * directory of the image stays one); a symlink or a node of the wrong kind
 * in the image at TGT itself is shadowed by the upper layer's node.  Any
 * other failure (a directory the user cannot search, say) is an error:
 * capsa never makes a mount point where the user could not look. */
static int
premake_one (const struct premake *pm, const char *tgt, enum capsa_node kind, capsa_error_t *err)
{
    struct stat st;
    cleanup_free char *path = xstrdup (tgt);
    size_t len = strlen (path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
    int fd = capsa_open_in_root (pm->imagefd, path, O_NOFOLLOW);
    if (fd >= 0) {
        bool ok = fstat (fd, &st) == 0 && !S_ISLNK (st.st_mode) && (kind == NODE_DIR) == S_ISDIR (st.st_mode);
        close (fd);
        if (ok)
            return 0;
    } else if (errno != ENOENT && errno != ELOOP) {
        return capsa_error_make (err, errno, "mount point %s in the image", tgt);
    }
    /* The deepest parent that exists in the image, symlinks followed.  (A
     * symlink that cannot be followed, in a loop or, on kernels without
     * openat2, any symlink, is shadowed by a new directory of the upper
     * layer, like a missing one: that directory merges with nothing.) */
    cleanup_free char *rest = NULL;
    cleanup_free char *base = NULL;
    for (char *slash = strrchr (path, '/'); slash != NULL; slash = strrchr (path, '/')) {
        cleanup_free char *tail = xstrdup (slash + 1);
        char *joined = rest ? xasprintf ("%s/%s", tail, rest) : xstrdup (tail);
        free (rest);
        rest = joined;
        *slash = '\0';
        cleanup_close int p = capsa_open_in_root (pm->imagefd, path[0] ? path : "/", O_DIRECTORY);
        if (p >= 0) {
            base = path_in_image (p, pm->imagepath);
            if (base == NULL)
                return capsa_error_make (err, 0, "mount point %s: cannot tell where its parent is in the image", tgt);
            break;
        }
        if (errno != ENOENT && errno != ELOOP)
            return capsa_error_make (err, errno, "mount point %s in the image", tgt);
    }
    if (base == NULL || rest == NULL)
        return capsa_error_make (err, 0, "mount point %s: not a path in the container", tgt);
    return upper_make (pm, base, rest, kind, err);
}

/* Every mount point the container needs, made in the overlay's private
 * layer INTO (a stage directory) before the overlay exists, where VIEW
 * (the image, or the view of every layer: overlay.h) lacks it.  INTO's
 * root first becomes a copy of VIEW's root (owner, mode). */
static int
premake_targets (struct capsa_container *c, int stagefd, const char *view, const char *into, capsa_error_t *err)
{
    static const char *const dirs[] = { "/proc", "/sys", "/dev", "/tmp", "/var/tmp" };
    cleanup_close int imagefd = openat (stagefd, view, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cleanup_close int upperfd = openat (stagefd, into, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    cleanup_free char *imagepath = xasprintf ("%s/%s", c->stage_dir, view);
    if (imagefd < 0 || upperfd < 0)
        return capsa_error_make (err, errno, "cannot open staging directory");
    struct premake pm = { .c = c, .imagefd = imagefd, .upperfd = upperfd, .imagepath = imagepath };
    struct stat st;
    if (image_attrs (&pm, "", &st, err) < 0)
        return -1;
    capsa_privs_mount_begin ();
    int r = mirror_attrs (&pm, upperfd, "", &st, err);
    capsa_privs_mount_end ();
    if (r < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE (dirs); i++)
        if (premake_one (&pm, dirs[i], NODE_DIR, err) < 0)
            return -1;
    if (premake_one (&pm, "/etc/passwd", NODE_FILE, err) < 0 || premake_one (&pm, "/etc/group", NODE_FILE, err) < 0
        || premake_one (&pm, c->home_dst, NODE_DIR, err) < 0)
        return -1;
    for (size_t i = 0; i < c->nbinds; i++)
        if (!(c->binds[i].dev && !c->dev_host)
            && premake_one (&pm, c->binds[i].dst, c->binds[i].is_dir ? NODE_DIR : NODE_FILE, err) < 0)
            return capsa_error_wrap (err, "%s %s", c->binds[i].what, c->binds[i].dst);
    return 0;
}

/* ---- /etc/passwd and /etc/group -------------------------------------- */

/* A small text file of the image, read as the user: the last component is
 * not followed, it must be a regular file of at most 4 MiB.  NULL when it
 * cannot be read (the generated file then has capsa's entries only). */
static char *
read_image_file (int rootfd, const char *path)
{
    char buf[64];
    char *text = NULL;
    capsa_error_t err = NULL;
    struct stat st, st2;
    cleanup_close int pfd = capsa_open_in_root (rootfd, path, O_NOFOLLOW);
    if (pfd < 0 || fstat (pfd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_size > (4 << 20))
        return NULL;
    /* Only the image's own files: not through a symlink into /proc, /sys
     * or /dev, which the child may be mounting meanwhile (etc_begin). */
    struct statx a, b;
    if (statx (pfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &a) == 0 && statx (rootfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &b) == 0
        && (a.stx_mask & b.stx_mask & STATX_MNT_ID) && a.stx_mnt_id != b.stx_mnt_id)
        return NULL;
    cleanup_close int fd = open (capsa_fd_path (pfd, buf, sizeof (buf)), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 || fstat (fd, &st2) < 0 || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev)
        return NULL;
    if (read_fd_all (fd, 4 << 20, &text, NULL, &err) < 0) {
        capsa_error_free (&err);
        return NULL;
    }
    return text;
}

struct etc_job {
    struct capsa_container *c;
    int rootfd, filesfd;
};

static int
write_file_at (int dirfd, const char *name, const char *content, capsa_error_t *err)
{
    cleanup_close int fd = openat (dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 || write_all (fd, content, strlen (content)) < 0)
        return capsa_error_make (err, errno, "cannot write %s", name);
    return 0;
}

/* In a process that is the user for good (setuid mode: the monitor,
 * capsa_etc_generate): the image's files are parsed there, not where
 * root can still be regained. */
static int
generate_etc (void *arg, capsa_error_t *err)
{
    struct etc_job *j = arg;
    if (j->c->conf->config_passwd) {
        cleanup_free char *image = read_image_file (j->rootfd, "/etc/passwd");
        cleanup_free char *content = capsa_passwd_content (j->c, image);
        if (write_file_at (j->filesfd, "passwd", content, err) < 0)
            return -1;
    }
    if (j->c->conf->config_group) {
        cleanup_free char *image = read_image_file (j->rootfd, "/etc/group");
        cleanup_free char *content = capsa_group_content (j->c, image);
        if (write_file_at (j->filesfd, "group", content, err) < 0)
            return -1;
    }
    return 0;
}

int
capsa_etc_generate (struct capsa_container *c, int rootfd, int filesfd, capsa_error_t *err)
{
    struct etc_job job = { .c = c, .rootfd = rootfd, .filesfd = filesfd };
    return generate_etc (&job, err);
}

static int
bind_generated (int filesfd, int rootfd, const char *name, const char *path, capsa_error_t *err)
{
    cleanup_close int src = openat (filesfd, name, O_PATH | O_CLOEXEC | O_NOFOLLOW);
    if (src < 0)
        return capsa_error_make (err, errno, "cannot open the generated %s", path);
    /* Written by the monitor in setuid mode: bound only if it is the one
     * plain file it should be (fail closed should the monitor misbehave). */
    struct stat st;
    if (fstat (src, &st) < 0 || !S_ISREG (st.st_mode) || st.st_nlink != 1)
        return capsa_error_make (err, 0, "the generated %s is not a plain file", path);
    cleanup_close int dst = capsa_open_mountpoint (rootfd, path, NODE_FILE, err);
    if (dst < 0)
        return -1;
    return capsa_bind_fd (src, dst, false, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, path, err);
}

/* The container's /etc/passwd and /etc/group, in two steps so that in
 * setuid mode the monitor writes them while the child goes on with /proc,
 * /sys and /dev: etc_begin asks for them (or writes them, in the other
 * modes), etc_end waits and binds them.  *FILESFD is -1 when the image's
 * own files are used. */
static int
etc_begin (struct capsa_container *c, int sock, int stagefd, int rootfd, int *filesfd, capsa_error_t *err)
{
    *filesfd = -1;
    /* Root (or fakeroot) in a writable container manages the image's own
     * files (adduser, package scripts), as in Apptainer. */
    if (capsa_layers_writable (c) && c->user.uid == 0 && c->opts->target_uid <= 0) {
        verbosef ("writable container run as root: the image's /etc/passwd and /etc/group are used as they are");
        return 0;
    }
    *filesfd = openat (stagefd, "files", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (*filesfd < 0)
        return capsa_error_make (err, errno, "cannot open staging directory");
    struct etc_job job = { .c = c, .rootfd = rootfd, .filesfd = *filesfd };
    if ((c->mode == MODE_SETUID ? capsa_fuse_request_etc (sock, rootfd, *filesfd, c->home_dst, err)
                                : generate_etc (&job, err))
        < 0)
        return capsa_error_wrap (err, "/etc/passwd and /etc/group");
    return 0;
}

static int
etc_end (struct capsa_container *c, int sock, int filesfd, int rootfd, capsa_error_t *err)
{
    if (filesfd < 0)
        return 0;
    if (c->mode == MODE_SETUID && capsa_fuse_request_etc_done (sock, err) < 0)
        return capsa_error_wrap (err, "/etc/passwd and /etc/group");
    /* Root's files, as in any system (the user wrote them in the user's
     * private stage; in a user namespace root is not mapped). */
    if (c->mode == MODE_SETUID) {
        capsa_privs_mount_begin ();
        int r = (c->conf->config_passwd && fchownat (filesfd, "passwd", 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
                || (c->conf->config_group && fchownat (filesfd, "group", 0, 0, AT_SYMLINK_NOFOLLOW) < 0);
        int e = errno;
        capsa_privs_mount_end ();
        if (r)
            return capsa_error_make (err, e, "cannot give /etc/passwd to root");
    }
    if (c->conf->config_passwd && bind_generated (filesfd, rootfd, "passwd", "/etc/passwd", err) < 0)
        return -1;
    if (c->conf->config_group && bind_generated (filesfd, rootfd, "group", "/etc/group", err) < 0)
        return -1;
    return 0;
}

/* ---- the rest ---------------------------------------------------------- */

/* Are X and Y (same device and inode number: A, B) the same object?
 * fuse-overlayfs passes its layers' inode numbers through, so two files of
 * one container can share them: the kind and the kernel's path of each
 * descriptor decide.  Unknown paths count as the same (fail closed). */
static bool
same_object (int x, int y, const struct stat *a, const struct stat *b)
{
    char bx[64], by[64], px[4096], py[4096];
    if ((a->st_mode & S_IFMT) != (b->st_mode & S_IFMT))
        return false;
    ssize_t nx = readlink (capsa_fd_path (x, bx, sizeof (bx)), px, sizeof (px) - 1);
    ssize_t ny = readlink (capsa_fd_path (y, by, sizeof (by)), py, sizeof (py) - 1);
    if (nx < 0 || ny < 0)
        return true;
    return nx == ny && memcmp (px, py, (size_t) nx) == 0;
}

/* Nothing may be mounted on the container's root itself: a destination
 * that only leads there through a symlink ("/tmp/link-to-root/.") is
 * caught by what it is, not by its name. */
static int
open_target (int rootfd, const char *path, enum capsa_node kind, capsa_error_t *err)
{
    struct stat a, b;
    int t = capsa_open_mountpoint (rootfd, path, kind, err);
    if (t < 0)
        return -1;
    if (fstat (t, &a) < 0 || fstat (rootfd, &b) < 0) {
        int e = errno;
        close (t);
        return capsa_error_make (err, e, "mount point %s", path);
    }
    if (a.st_dev == b.st_dev && a.st_ino == b.st_ino && same_object (t, rootfd, &a, &b)) {
        close (t);
        return capsa_error_make (err, 0, "mount point %s is the container's root, which cannot be replaced", path);
    }
    return t;
}

/* Give the root of a fresh ramfs (which has no uid=/gid= options) to
 * the user: a file system of capsa's own, just mounted on FD. */
static int
own_memfs (struct capsa_container *c, int fd, const char *what, capsa_error_t *err)
{
    if (c->conf->memory_fs != MEMFS_RAMFS)
        return 0;
    capsa_privs_mount_begin ();
    int r = fchownat (fd, "", c->user.uid, c->user.gid, AT_EMPTY_PATH);
    int e = errno;
    capsa_privs_mount_end ();
    if (r < 0)
        return capsa_error_make (err, e, "cannot give %s to the user", what);
    return 0;
}

/* An empty in-memory file system ('memory fs type') on PATH; the user's
 * when OWN. */
static int
tmpfs_on (struct capsa_container *c, int rootfd, const char *path, const char *data, bool own, capsa_error_t *err)
{
    const char *fstype = capsa_conf_memfs (c->conf);
    cleanup_close int t = open_target (rootfd, path, NODE_DIR, err);
    if (t < 0)
        return -1;
    /* Made detached and given to the user through its own descriptor,
     * then attached: never looked up again by a path (one through a host
     * directory could be changed meanwhile). */
    cleanup_close int mnt = capsa_fs_new (fstype, data, MS_NOSUID | MS_NODEV, path, err);
    if (mnt < 0)
        return -1;
    /* MNT (from fsmount) is the root of the new file system itself:
     * changed through it, never opened (a 0700 root could not be opened
     * by the user). */
    if (own && own_memfs (c, mnt, path, err) < 0)
        return -1;
    return capsa_fs_attach (mnt, t, path, err);
}

/* Bring up "lo" in a new network namespace (--net --network none). */
static int
loopback_up (capsa_error_t *err)
{
    struct ifreq ifr;
    cleanup_close int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return capsa_error_make (err, errno, "socket");
    memset (&ifr, 0, sizeof (ifr));
    strcpy (ifr.ifr_name, "lo");
    if (ioctl (s, SIOCGIFFLAGS, &ifr) < 0)
        return capsa_error_make (err, errno, "cannot read flags of lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    capsa_privs_mount_begin ();
    int r = ioctl (s, SIOCSIFFLAGS, &ifr);
    int e = errno;
    capsa_privs_mount_end ();
    if (r < 0)
        return capsa_error_make (err, e, "cannot bring up lo");
    return 0;
}

/* The deepest mount made before bind number I whose destination holds
 * DST, for the message about a missing mount point. */
static const char *
covering_mount (const struct capsa_container *c, size_t i, const char *dst)
{
    const char *best = NULL;
    for (size_t k = 0; k < i; k++)
        if (c->binds[k].is_dir && path_is_within (dst, c->binds[k].dst)
            && (best == NULL || strlen (c->binds[k].dst) > strlen (best)))
            best = c->binds[k].dst;
    return best;
}

/* A device of the host (or a directory of them) the user bound, in
 * capsa's minimal /dev (DEVFD, a fresh file system of capsa's own that
 * only root may write): its mount point is made there (components checked
 * by capsa_dev_bind_allowed, never following a symlink), then the host's
 * node bound without adding nodev: the nodev of its own mount, if any,
 * stays (a bind keeps the flags of its source mount). */
static int
bind_dev_node (struct capsa_host_path *b, int devfd, capsa_error_t *err)
{
    cleanup_free char *rel = xstrdup (b->dst + 5);
    cleanup_close int dir = fcntl (devfd, F_DUPFD_CLOEXEC, 0);
    char *save = NULL;
    char *comp = strtok_r (rel, "/", &save);
    while (comp != NULL) {
        char *next = strtok_r (NULL, "/", &save);
        bool last = next == NULL;
        struct stat st;
        if (fstatat (dir, comp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            int r = (last && !b->is_dir) ? make_node (dir, comp, 'f', NULL) : make_node (dir, comp, 'd', NULL);
            if (r < 0)
                return capsa_error_make (err, errno, "cannot make %s in the container's /dev", b->dst);
        } else if (S_ISLNK (st.st_mode) || (!last && !S_ISDIR (st.st_mode))) {
            return capsa_error_make (err, 0, "%s: cannot be made in the container's /dev", b->dst);
        }
        int nfd = openat (dir, comp, O_PATH | O_CLOEXEC | O_NOFOLLOW | (last ? 0 : O_DIRECTORY));
        if (nfd < 0)
            return capsa_error_make (err, errno, "cannot open %s in the container's /dev", b->dst);
        close (dir);
        dir = nfd;
        comp = next;
    }
    return capsa_bind_fd (b->fd, dir, true, MS_NOSUID | MS_NOEXEC | (b->ro ? MS_RDONLY : 0) | MS_REC, b->dst, err);
}

static int
bind_all (struct capsa_container *c, int rootfd, capsa_error_t *err)
{
    for (size_t i = 0; i < c->nbinds; i++) {
        struct capsa_host_path *b = &c->binds[i];
        if (b->dev && !c->dev_host)
            continue; /* made in the minimal /dev already */
        cleanup_close int t = open_target (rootfd, b->dst, b->is_dir ? NODE_DIR : NODE_FILE, err);
        if (t < 0) {
            const char *under = covering_mount (c, i, b->dst);
            if (under == NULL || strstr ((*err)->msg, "does not exist") == NULL)
                return capsa_error_wrap (err, "%s", b->what);
            capsa_error_free (err);
            return capsa_error_make (err, 0,
                                     "%s: the mount point %s does not exist in the container, and capsa does not "
                                     "create it below %s, a directory of the host",
                                     b->what, b->dst, under);
        }
        /* Devices of the host's /dev keep the flags of their source mount
         * (devtmpfs allows devices; a user's FUSE mount does not). */
        const unsigned long nodev = b->dev ? MS_NOEXEC : MS_NODEV;
        if (capsa_bind_fd (b->fd, t, true, MS_NOSUID | nodev | (b->ro ? MS_RDONLY : 0) | MS_REC, b->dst, err) < 0)
            return -1;
    }
    return 0;
}

/* /dev: the host's ('mount dev = yes', -B /dev), bound with nosuid only,
 * so its devices work as on the host (their permissions decide); or
 * capsa's minimal one, plus the host devices the user bound; or none. */
static int
setup_dev (struct capsa_container *c, int rootfd, int *top_out, int *dev_out, capsa_error_t *err)
{
    const struct capsa_opts *o = c->opts;
    *top_out = *dev_out = -1;
    if (c->conf->mount_dev == MOUNT_DEV_NO || (o->no_mount & NO_MOUNT_DEV))
        return 0;
    if (c->dev_host) {
        cleanup_close int s = open ("/dev", O_PATH | O_DIRECTORY | O_CLOEXEC);
        cleanup_close int t = capsa_open_mountpoint (rootfd, "/dev", NODE_DIR, err);
        if (s < 0)
            return capsa_error_make (err, errno, "cannot open /dev");
        if (t < 0 || capsa_bind_fd (s, t, true, MS_NOSUID | MS_REC, "/dev", err) < 0)
            return -1;
        return 0;
    }
    size_t ndev = 0;
    for (size_t i = 0; i < c->nbinds; i++)
        ndev += c->binds[i].dev;
    unsigned flags = (o->contain ? DEV_SHM_PRIVATE : DEV_SHM_HOST)
                     | (c->conf->mount_devpts && !(o->no_mount & NO_MOUNT_DEVPTS) ? 0 : DEV_NO_DEVPTS)
                     | (c->conf->memory_fs == MEMFS_RAMFS ? DEV_RAMFS : 0) | (ndev > 0 ? DEV_WRITABLE : 0);
    *top_out = capsa_rootfs_setup_dev (rootfd, flags & ~DEV_WRITABLE, "1m", dev_out, err);
    return *top_out < 0 ? -1 : 0;
}

/* The host devices the user bound into capsa's minimal /dev, then /dev
 * read-only.  Done once the stage is unbindable: a bind source is a path
 * of the host that may lead to a directory holding the stage. */
static int
finish_dev (struct capsa_container *c, int top, int dev, capsa_error_t *err)
{
    if (top < 0)
        return 0;
    for (size_t i = 0; i < c->nbinds; i++)
        if (c->binds[i].dev && bind_dev_node (&c->binds[i], dev, err) < 0)
            return capsa_error_wrap (err, "bind source %s", c->binds[i].dst);
    return capsa_remount_fd (top, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "/dev", err);
}

int
capsa_container_setup_root (struct capsa_container *c, int sock, capsa_error_t *err)
{
    const unsigned long rootflags = MS_NODEV | (c->opts->allow_setuid ? 0 : MS_NOSUID);
    const bool userns = c->mode == MODE_USERNS;
    struct capsa_opts *o = c->opts;

    /* Nothing mounted from here on may propagate back to the host; with
     * 'mount slave = yes' (the default) the host's new mounts (autofs)
     * still appear inside. */
    capsa_privs_mount_begin ();
    int r = mount (NULL, "/", NULL, MS_REC | (c->conf->mount_slave ? MS_SLAVE : MS_PRIVATE), NULL);
    int e = errno;
    capsa_privs_mount_end ();
    if (r < 0)
        return capsa_error_make (err, e, "cannot make / a slave mount");

    /* The staging area: a private tmpfs, the user's own, over a root-owned
     * directory of the installation, so no path the user controls is ever
     * a mount target and everything below is made with the user's rights. */
    cleanup_free char *stageopts = xasprintf ("mode=0700,uid=%u,gid=%u,size=16m", c->user.uid, c->user.gid);
    const char *memfs = capsa_conf_memfs (c->conf);
    capsa_privs_mount_begin ();
    r = mount (memfs, c->stage_dir, memfs, MS_NOSUID | MS_NODEV, stageopts);
    e = errno;
    /* ramfs has no uid=/gid=: give its root to the user (a fixed path of
     * the installation, on the file system just mounted). */
    if (r == 0 && c->conf->memory_fs == MEMFS_RAMFS && chown (c->stage_dir, c->user.uid, c->user.gid) < 0) {
        r = -1;
        e = errno;
    }
    capsa_privs_mount_end ();
    if (r < 0)
        return capsa_error_make (err, e, "cannot mount the staging %s on %s", memfs, c->stage_dir);
    cleanup_close int stagefd = open (c->stage_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (stagefd < 0)
        return capsa_error_make (err, errno, "cannot open %s", c->stage_dir);
    if (mkdir_at (stagefd, "image", err) < 0 || mkdir_at (stagefd, "upper", err) < 0 || mkdir_at (stagefd, "work", err) < 0
        || mkdir_at (stagefd, "root", err) < 0 || mkdir_at (stagefd, "files", err) < 0)
        return -1;

    if (mount_image (c, sock, stagefd, err) < 0)
        return -1;
    cleanup_free char *rootpath = xasprintf ("%s/root", c->stage_dir);
    if (c->layers != NULL) {
        /* Writable and added layers (overlay.h). */
        const char *view, *into;
        if (capsa_layers_mount (c, sock, stagefd, &view, &into, err) < 0
            || (!capsa_layers_sandbox (c) && premake_targets (c, stagefd, view, into, err) < 0)
            || capsa_layers_mount_root (c, sock, stagefd, rootflags, err) < 0)
            return -1;
    } else {
        if (premake_targets (c, stagefd, "image", "upper", err) < 0)
            return -1;
        /* The root is an overlay with an in-memory upper layer holding the
         * mount points the image lacks; it is made read-only before the
         * command starts. */
        cleanup_free char *ovl = xasprintf ("lowerdir=%s/image,upperdir=%s/upper,workdir=%s/work%s", c->stage_dir,
                                            c->stage_dir, c->stage_dir, userns ? ",userxattr" : "");
        capsa_privs_mount_begin ();
        r = mount ("overlay", rootpath, "overlay", rootflags, ovl);
        e = errno;
        capsa_privs_mount_end ();
        if (r < 0)
            return capsa_error_make (err, e, "cannot mount the container's root overlay%s",
                                     e == ENOTCONN ? " (the image's squashfs could not be read: is it valid?)" : "");
    }
    cleanup_close int rootfd = open (rootpath, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (rootfd < 0)
        return capsa_error_make (err, errno, "cannot open the container root");

    /* /etc files first, before anything from the host is bound into /etc
     * (etc_end, before the binds). */
    cleanup_close int filesfd = -1;
    if (etc_begin (c, sock, stagefd, rootfd, &filesfd, err) < 0)
        return -1;

    if (c->conf->mount_proc && !(o->no_mount & NO_MOUNT_PROC)) {
        if ((o->pid_ns || !userns) ? capsa_rootfs_mount_proc (rootfd, false, err) < 0
                                   : capsa_rootfs_bind_proc (rootfd, false, err) < 0)
            return -1;
    }
    if (c->conf->mount_sys && !(o->no_mount & NO_MOUNT_SYS)
        && capsa_rootfs_mount_sys (rootfd, o->net_ns || !userns, false, err) < 0)
        return -1;
    cleanup_close int devtop = -1, devfd = -1;
    if (setup_dev (c, rootfd, &devtop, &devfd, err) < 0)
        return -1;

    if (etc_end (c, sock, filesfd, rootfd, err) < 0)
        return -1;
    /* From here on host trees are bound in: the stage (and the root and
     * image below it) must not come along in a recursive bind of a host
     * directory that holds it (PREFIX/libexec/capsa, /), which would show
     * the root writable at its staging path.  (/proc, /sys and /dev above
     * hold no stage; the generated /etc files are bound from it.) */
    if (capsa_mount_fd (NULL, stagefd, NULL, MS_UNBINDABLE, NULL, "the staging area unbindable", err) < 0)
        return -1;
    if (finish_dev (c, devtop, devfd, err) < 0)
        return -1;

    if (o->contain) {
        /* Contained: private, empty /tmp, /var/tmp and home (unless the
         * user chose a home, which is bound below). */
        cleanup_free char *home = xasprintf ("mode=0700,uid=%u,gid=%u", c->user.uid, c->user.gid);
        if (c->conf->mount_tmp && !(o->no_mount & NO_MOUNT_TMP)
            && (tmpfs_on (c, rootfd, "/tmp", "mode=1777", false, err) < 0
                || tmpfs_on (c, rootfd, "/var/tmp", "mode=1777", false, err) < 0))
            return -1;
        if (!o->no_home && o->home_src == NULL && c->conf->mount_home
            && tmpfs_on (c, rootfd, c->home_dst, home, true, err) < 0)
            return -1;
    }
    if (bind_all (c, rootfd, err) < 0)
        return -1;

    if (o->uts_ns && o->hostname) {
        capsa_privs_mount_begin ();
        r = sethostname (o->hostname, strlen (o->hostname));
        e = errno;
        capsa_privs_mount_end ();
        if (r < 0)
            return capsa_error_make (err, e, "cannot set the host name");
    }
    if (o->net_ns && loopback_up (err) < 0)
        return -1;

    /* Read-only root (unless asked for a writable one), then switch to it
     * and forget the host's tree: by the descriptor taken when the root was
     * mounted, never by path again. */
    if (!capsa_layers_writable (c) && capsa_remount_fd (rootfd, MS_RDONLY | rootflags, "the container root", err) < 0)
        return -1;
    return capsa_rootfs_pivot (rootfd, err);
}

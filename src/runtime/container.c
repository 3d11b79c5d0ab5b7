#include "runtime/container.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <net/if.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "lib/log.h"
#include "runtime/mount.h"
#include "runtime/privs.h"

#ifndef CAPSA_SQUASHFUSE
#define CAPSA_SQUASHFUSE "/usr/bin/squashfuse_ll"
#endif
#define CAPSA_CRYPTFUSE CAPSA_LIBEXECDIR "/cryptfuse"

/* ------------------------------------------------------------------ */
/* Preparation in the monitor, with the caller's identity.             */
/* ------------------------------------------------------------------ */

static int
add_host_path (struct capsa_container *c, const char *src, const char *dst, bool ro, bool optional,
               const char *what, capsa_error_t *err)
{
    struct stat st;
    int fd = open (src, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (optional) {
            debugf ("skipping %s %s: %s", what, src, strerror (errno));
            return 0;
        }
        return capsa_error_make (err, errno, "%s %s", what, src);
    }
    if (fstat (fd, &st) < 0) {
        close (fd);
        return capsa_error_make (err, errno, "%s %s", what, src);
    }
    if (!S_ISDIR (st.st_mode) && !S_ISREG (st.st_mode) && !S_ISCHR (st.st_mode) && !S_ISBLK (st.st_mode)
        && !S_ISSOCK (st.st_mode) && !S_ISFIFO (st.st_mode)) {
        close (fd);
        return capsa_error_make (err, 0, "%s %s: unsupported file type", what, src);
    }
    c->binds = xrealloc (c->binds, (c->nbinds + 1) * sizeof (*c->binds));
    c->binds[c->nbinds++] = (struct capsa_host_path) {
        .fd = fd, .is_dir = S_ISDIR (st.st_mode), .dst = xstrdup (dst), .ro = ro, .what = what,
    };
    return 0;
}

int
capsa_container_prepare (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_opts *o = c->opts;
    bool contain = o->contain;

    if (capsa_image_open (&c->image, o->image, err) < 0)
        return -1;
    /* An image file is parsed by a kernel file system only where that is
     * safe: always for root; for a setuid user only if the administrator
     * says so (DESIGN 2; iflimited needs limits this build does not have). */
    if (capsa_security_check_image (c, c->image.encrypted, err) < 0)
        return -1;
    if (c->image.encrypted && c->opts->key_fd < 0)
        return capsa_error_make (err, 0, "image %s is encrypted: give --passphrase or --pem-path", c->image.path);
    enum capsa_tristate allow = c->image.encrypted ? c->conf->setuid_mount_encrypted : c->conf->setuid_mount_squashfs;
    bool kernel_ok = allow == TRI_YES || (allow == TRI_IFLIMITED && capsa_conf_limited (c->conf));
    c->use_fuse = c->image.kind != IMAGE_DIR
                  && (c->mode == MODE_USERNS || (c->mode == MODE_SETUID && !kernel_ok));
    verbosef ("image %s (%s), %s mode%s", c->image.path, capsa_image_kind_name (c->image.kind),
              c->mode == MODE_ROOT ? "root" : c->mode == MODE_SETUID ? "setuid" : "user namespace",
              c->use_fuse ? ", mounted with FUSE" : "");

    /* $HOME. */
    c->home_dst = xstrdup (o->home_dst ? o->home_dst : c->user.home);
    if (!o->no_home && !contain && c->conf->mount_home) {
        const char *src = o->home_src ? o->home_src : c->user.home;
        if (add_host_path (c, src, c->home_dst, false, o->home_src == NULL, "home directory", err) < 0)
            return -1;
    } else if (o->home_src && !contain) {
        if (add_host_path (c, o->home_src, c->home_dst, false, false, "home directory", err) < 0)
            return -1;
    }

    /* /tmp and /var/tmp from the host unless contained. */
    if (!contain && c->conf->mount_tmp) {
        if (add_host_path (c, "/tmp", "/tmp", false, true, "temporary directory", err) < 0
            || add_host_path (c, "/var/tmp", "/var/tmp", false, true, "temporary directory", err) < 0)
            return -1;
    }

    /* Administrator's bind paths (missing ones are skipped). */
    for (size_t i = 0; i < c->conf->bind_paths.n; i++) {
        cleanup_free char *src = xstrdup (c->conf->bind_paths.v[i]);
        char *colon = strchr (src, ':');
        const char *dst = src;
        if (colon) {
            *colon = '\0';
            dst = colon + 1;
        }
        if (add_host_path (c, src, dst, true, true, "bind path", err) < 0)
            return -1;
    }
    if (c->conf->config_resolv_conf
        && add_host_path (c, "/etc/resolv.conf", "/etc/resolv.conf", true, true, "resolv.conf", err) < 0)
        return -1;

    /* The user's binds. */
    if (o->nbinds > 0 && !c->conf->user_bind_control && c->mode != MODE_ROOT)
        return capsa_error_make (err, 0, "user bind control is disabled by the administrator (--bind refused)");
    for (size_t i = 0; i < o->nbinds; i++)
        if (add_host_path (c, o->binds[i].src, o->binds[i].dst, o->binds[i].ro, false, "bind source", err) < 0)
            return -1;

    /* Working directory: --pwd, else the host's current directory when it is
     * visible inside (under $HOME or a bind), else it is bound itself. */
    if (o->pwd) {
        c->workdir = xstrdup (o->pwd);
    } else if (contain || c->host_cwd == NULL) {
        c->workdir = xstrdup (c->home_dst);
    } else {
        bool visible = false;
        for (size_t i = 0; i < c->nbinds; i++) {
            cleanup_free char *real = NULL;
            char buf[64];
            snprintf (buf, sizeof (buf), "/proc/self/fd/%d", c->binds[i].fd);
            real = realpath (buf, NULL);
            if (real && c->binds[i].is_dir && strcmp (real, c->binds[i].dst) == 0 && path_is_within (c->host_cwd, real))
                visible = true;
        }
        if (!visible && strcmp (c->host_cwd, "/") != 0
            && add_host_path (c, ".", c->host_cwd, false, true, "current directory", err) < 0)
            return -1;
        c->workdir = xstrdup (c->host_cwd);
    }

    for (size_t i = 0; i < o->env_files.n; i++)
        if (capsa_env_read_file (c, o->env_files.v[i], err) < 0)
            return -1;
    capsa_env_build (c);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The child: namespaces, mounts, pivot, privilege drop, exec.         */
/* ------------------------------------------------------------------ */

static noreturn void
child_fail (capsa_error_t *err)
{
    capsa_error_fatal (err);
}

/* What the child asks the monitor for: a FUSE server for a file system it
 * has just mounted on /dev/fuse.  Two descriptors travel with it: the
 * FUSE device and the file to serve. */
enum fuse_server { SERVER_SQUASHFS = 1, SERVER_CRYPT = 2 };

struct fuse_request {
    uint32_t server;
    uint32_t unused;
    uint64_t offset, size;
};

static int
send_request (int sock, const struct fuse_request *req, int fds[2])
{
    struct iovec iov = { .iov_base = (void *) req, .iov_len = sizeof (*req) };
    union {
        char buf[CMSG_SPACE (2 * sizeof (int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof (u.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN (2 * sizeof (int));
    memcpy (CMSG_DATA (cm), fds, 2 * sizeof (int));
    return sendmsg (sock, &msg, MSG_NOSIGNAL) == (ssize_t) sizeof (*req) ? 0 : -1;
}

/* Returns 1 with the request and fds, 0 at end of stream, -1 on error. */
static int
recv_request (int sock, struct fuse_request *req, int fds[2])
{
    struct iovec iov = { .iov_base = req, .iov_len = sizeof (*req) };
    union {
        char buf[CMSG_SPACE (2 * sizeof (int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof (u.buf) };
    ssize_t r;
    do
        r = recvmsg (sock, &msg, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return (int) r;
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    if (r != (ssize_t) sizeof (*req) || cm == NULL || cm->cmsg_type != SCM_RIGHTS
        || cm->cmsg_len != CMSG_LEN (2 * sizeof (int)))
        return -1;
    memcpy (fds, CMSG_DATA (cm), 2 * sizeof (int));
    return 1;
}

/* Mount /dev/fuse on TARGET (read-only, nosuid, nodev) and ask the monitor
 * to serve it from FILEFD; wait for its answer ('R': served). */
static int
fuse_mount_served (struct capsa_container *c, int sock, int target, const char *fstype, enum fuse_server server,
                   int filefd, uint64_t offset, uint64_t size, unsigned long flags, capsa_error_t *err)
{
    /* The device is opened here, in the container's user namespace, which
     * must own the connection. */
    cleanup_close int fusefd = open ("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fusefd < 0)
        return capsa_error_make (err, errno, "cannot open /dev/fuse");
    cleanup_free char *data = xasprintf ("fd=%d,rootmode=40000,user_id=%u,group_id=%u,allow_other,default_permissions",
                                         fusefd, c->user.uid, c->user.gid);
    if (capsa_mount_fd (fstype, target, fstype, flags, data, "the image with FUSE", err) < 0)
        return -1;
    struct fuse_request req = { .server = server, .offset = offset, .size = size };
    int fds[2] = { fusefd, filefd };
    char answer = 0;
    if (send_request (sock, &req, fds) < 0)
        return capsa_error_make (err, errno, "cannot pass the FUSE descriptor to the monitor");
    if (read (sock, &answer, 1) != 1 || answer != 'R')
        return capsa_error_make (err, 0, "the image could not be served");
    return 0;
}

static int
mkdir_at (int dirfd, const char *name, mode_t mode, capsa_error_t *err)
{
    if (mkdirat (dirfd, name, mode) < 0 && errno != EEXIST)
        return capsa_error_make (err, errno, "cannot create staging directory %s", name);
    return 0;
}

/* Attach the image file to a free loop device, read-only, limited to the
 * squashfs, freed automatically when unmounted.  Returns the loop fd. */
static int
loop_attach (struct capsa_container *c, int filefd, uint64_t offset, uint64_t size, char *dev, size_t devlen,
             capsa_error_t *err)
{
    cleanup_close int ctl = open ("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0)
        return capsa_error_make (err, errno, "cannot open /dev/loop-control");
    for (int attempt = 0; attempt < 16; attempt++) {
        int n = ioctl (ctl, LOOP_CTL_GET_FREE);
        if (n < 0)
            return capsa_error_make (err, errno, "no free loop device");
        if (n >= c->conf->max_loop_devices)
            return capsa_error_make (err, 0, "no free loop device below 'max loop devices = %ld'",
                                     c->conf->max_loop_devices);
        snprintf (dev, devlen, "/dev/loop%d", n);
        int lfd = open (dev, O_RDONLY | O_CLOEXEC);
        if (lfd < 0)
            return capsa_error_make (err, errno, "cannot open %s", dev);
        struct loop_config cfg = {
            .fd = (uint32_t) filefd,
            .info = { .lo_offset = offset, .lo_sizelimit = size,
                      .lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR },
        };
        if (ioctl (lfd, LOOP_CONFIGURE, &cfg) == 0)
            return lfd;
        int e = errno;
        close (lfd);
        if (e != EBUSY)
            return capsa_error_make (err, e, "cannot set up %s", dev);
    }
    return capsa_error_make (err, EBUSY, "cannot find a free loop device");
}

static int
mount_image (struct capsa_container *c, int sock, int stagefd, capsa_error_t *err)
{
    cleanup_close int target = openat (stagefd, "image", O_PATH | O_DIRECTORY | O_CLOEXEC);
    /* setuid bits in the image count only with --allow-setuid (root only). */
    const unsigned long flags = MS_RDONLY | MS_NODEV | (c->opts->allow_setuid ? 0 : MS_NOSUID);

    if (target < 0)
        return capsa_error_make (err, errno, "cannot open staging directory");
    if (c->image.kind == IMAGE_DIR)
        return capsa_bind_fd (c->image.fd, target, true, flags, "the image directory", err);

    int filefd = c->image.fd;
    uint64_t offset = c->image.offset, size = c->image.size;
    cleanup_close int plainfd = -1;
    if (c->image.encrypted) {
        /* The user's capsa-cryptfuse decrypts the LUKS2 container in
         * memory and serves the squashfs as the file crypt/image. */
        if (mkdir_at (stagefd, "crypt", 0755, err) < 0)
            return -1;
        cleanup_close int ctarget = openat (stagefd, "crypt", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (ctarget < 0 || fuse_mount_served (c, sock, ctarget, "fuse.capsa-cryptfuse", SERVER_CRYPT, c->image.fd, offset,
                                              size, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, err) < 0)
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
        cleanup_close int lfd = loop_attach (c, filefd, offset, size, dev, sizeof (dev), err);
        if (lfd < 0)
            return -1;
        debugf ("image on %s (offset %llu, size %llu)", dev, (unsigned long long) offset, (unsigned long long) size);
        return capsa_mount_fd (dev, target, "squashfs", flags, NULL, "the image's squashfs", err);
    }
    /* squashfuse_ll, run by the monitor as the user, parses the image. */
    return fuse_mount_served (c, sock, target, "fuse.squashfuse", SERVER_SQUASHFS, filefd, offset, size, flags, err);
}

/* Read a small text file of the image (passwd, group), resolved inside. */
static char *
read_in_root (int rootfd, const char *path)
{
    char buf[64];
    char *text = NULL;
    capsa_error_t err = NULL;
    cleanup_close int pfd = capsa_open_in_root (rootfd, path, 0);
    if (pfd < 0)
        return NULL;
    cleanup_close int fd = open (capsa_fd_path (pfd, buf, sizeof (buf)), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
        return NULL;
    if (read_fd_all (fd, 4 << 20, &text, NULL, &err) < 0) {
        capsa_error_free (&err);
        return NULL;
    }
    return text;
}

/* Write CONTENT to a new file NAME in the staging area and bind it onto
 * PATH inside the root, read-only. */
static int
bind_generated (int filesfd, int rootfd, const char *name, const char *path, const char *content, capsa_error_t *err)
{
    cleanup_close int fd = openat (filesfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 || write_all (fd, content, strlen (content)) < 0)
        return capsa_error_make (err, errno, "cannot write %s", name);
    cleanup_close int src = openat (filesfd, name, O_PATH | O_CLOEXEC | O_NOFOLLOW);
    cleanup_close int dst = capsa_make_in_root (rootfd, path, NODE_FILE, err);
    if (src < 0 || dst < 0)
        return capsa_error_make (err, errno, "cannot prepare %s", path);
    return capsa_bind_fd (src, dst, false, MS_RDONLY | MS_NOSUID | MS_NODEV, path, err);
}

static int
setup_etc (struct capsa_container *c, int stagefd, int rootfd, capsa_error_t *err)
{
    cleanup_close int filesfd = openat (stagefd, "files", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (filesfd < 0)
        return capsa_error_make (err, errno, "cannot open staging directory");
    if (c->conf->config_passwd) {
        cleanup_free char *image = read_in_root (rootfd, "/etc/passwd");
        cleanup_free char *content = capsa_passwd_content (c, image);
        if (bind_generated (filesfd, rootfd, "passwd", "/etc/passwd", content, err) < 0)
            return -1;
    }
    if (c->conf->config_group) {
        cleanup_free char *image = read_in_root (rootfd, "/etc/group");
        cleanup_free char *content = capsa_group_content (c, image);
        if (bind_generated (filesfd, rootfd, "group", "/etc/group", content, err) < 0)
            return -1;
    }
    return 0;
}

static int
mount_new (int rootfd, const char *path, const char *fstype, unsigned long flags, const char *data,
           capsa_error_t *err)
{
    cleanup_close int t = capsa_make_in_root (rootfd, path, NODE_DIR, err);
    if (t < 0)
        return -1;
    return capsa_mount_fd (fstype, t, fstype, flags, data, path, err);
}

static int
bind_host (int rootfd, const char *host, const char *path, bool is_dir, unsigned long flags, capsa_error_t *err)
{
    cleanup_close int src = open (host, O_PATH | O_CLOEXEC | O_NOFOLLOW);
    if (src < 0)
        return capsa_error_make (err, errno, "cannot open %s", host);
    cleanup_close int t = capsa_make_in_root (rootfd, path, is_dir ? NODE_DIR : NODE_FILE, err);
    if (t < 0)
        return -1;
    return capsa_bind_fd (src, t, is_dir, flags, path, err);
}

static int
setup_dev (struct capsa_container *c, int rootfd, capsa_error_t *err)
{
    static const char *const nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
    static const char *const links[][2] = {
        { "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
        { "/proc/self/fd/2", "stderr" }, { "pts/ptmx", "ptmx" },
    };
    if (c->conf->mount_dev == MOUNT_DEV_NO)
        return 0;
    if (c->conf->mount_dev == MOUNT_DEV_YES && c->mode == MODE_ROOT)
        return bind_host (rootfd, "/dev", "/dev", true, MS_NOSUID, err);

    if (mount_new (rootfd, "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m", err) < 0)
        return -1;
    cleanup_close int devfd = capsa_open_in_root (rootfd, "/dev", O_DIRECTORY);
    char buf[64];
    cleanup_close int dev = open (capsa_fd_path (devfd, buf, sizeof (buf)), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dev < 0)
        return capsa_error_make (err, errno, "cannot open the container's /dev");
    for (size_t i = 0; i < ARRAY_SIZE (nodes); i++) {
        cleanup_free char *host = xasprintf ("/dev/%s", nodes[i]);
        cleanup_free char *path = xasprintf ("/dev/%s", nodes[i]);
        /* Device binds are the only mounts without nodev: they are the
         * host's own harmless nodes, chosen here, not by the user. */
        if (bind_host (rootfd, host, path, false, MS_NOSUID | MS_NOEXEC, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < ARRAY_SIZE (links); i++)
        if (symlinkat (links[i][0], dev, links[i][1]) < 0)
            return capsa_error_make (err, errno, "cannot create /dev/%s", links[i][1]);
    if (mount_new (rootfd, "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620", err) < 0) {
        /* devpts with gid= needs the tty group mapped; retry without. */
        capsa_error_free (err);
        if (mount_new (rootfd, "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666", err) < 0)
            return -1;
    }
    /* The host's /dev/shm, as Apptainer does, so that shared-memory
     * transports (MPI) work between containers of one job; a private one
     * when contained. */
    if (c->opts->contain) {
        if (mount_new (rootfd, "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", err) < 0)
            return -1;
    } else if (bind_host (rootfd, "/dev/shm", "/dev/shm", true, MS_NOSUID | MS_NODEV, err) < 0) {
        return -1;
    }
    return 0;
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
    if (ioctl (s, SIOCSIFFLAGS, &ifr) < 0)
        return capsa_error_make (err, errno, "cannot bring up lo");
    return 0;
}

/* Create TARGET in the upper layer unless the image already has it. */
static int
premake_one (int imagefd, int upperfd, const char *target, enum capsa_node kind, capsa_error_t *err)
{
    struct stat st;
    int fd = capsa_open_in_root (imagefd, target, 0);
    if (fd >= 0) {
        bool ok = fstat (fd, &st) == 0 && (kind == NODE_DIR) == S_ISDIR (st.st_mode);
        close (fd);
        if (ok)
            return 0;
    }
    fd = capsa_make_in_root (upperfd, target, kind, err);
    if (fd < 0)
        return -1;
    close (fd);
    return 0;
}

/* Every mount point the container needs, made in the overlay's upper layer
 * before the overlay exists.  Directories created there are the caller's
 * (in a user namespace) or root's, so this works even where the image's
 * own directories belong to an unmapped owner; and a symlink in the image
 * at one of these paths is shadowed, never followed. */
static int
premake_targets (struct capsa_container *c, int stagefd, capsa_error_t *err)
{
    static const char *const dirs[] = { "/proc", "/sys", "/dev", "/tmp", "/var/tmp" };
    cleanup_close int imagefd = openat (stagefd, "image", O_PATH | O_DIRECTORY | O_CLOEXEC);
    cleanup_close int upperfd = openat (stagefd, "upper", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (imagefd < 0 || upperfd < 0)
        return capsa_error_make (err, errno, "cannot open staging directory");
    for (size_t i = 0; i < ARRAY_SIZE (dirs); i++)
        if (premake_one (imagefd, upperfd, dirs[i], NODE_DIR, err) < 0)
            return -1;
    if (premake_one (imagefd, upperfd, "/etc/passwd", NODE_FILE, err) < 0
        || premake_one (imagefd, upperfd, "/etc/group", NODE_FILE, err) < 0
        || premake_one (imagefd, upperfd, c->home_dst, NODE_DIR, err) < 0
        || premake_one (imagefd, upperfd, c->workdir, NODE_DIR, err) < 0)
        return -1;
    for (size_t i = 0; i < c->nbinds; i++)
        if (premake_one (imagefd, upperfd, c->binds[i].dst, c->binds[i].is_dir ? NODE_DIR : NODE_FILE, err) < 0)
            return capsa_error_wrap (err, "%s %s", c->binds[i].what, c->binds[i].dst);
    return 0;
}

static int
setup_root (struct capsa_container *c, int sock, capsa_error_t *err)
{
    const unsigned long nsd = MS_NOSUID | MS_NODEV;
    const unsigned long rootflags = MS_NODEV | (c->opts->allow_setuid ? 0 : MS_NOSUID);
    const bool userns = c->mode == MODE_USERNS;
    struct capsa_opts *o = c->opts;

    /* Nothing mounted from here on may propagate back to the host. */
    if (mount (NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return capsa_error_make (err, errno, "cannot make / a slave mount");

    /* The staging area: a private tmpfs over a root-owned directory of the
     * installation, so no path the user controls is ever a mount target. */
    if (mount ("tmpfs", c->stage_dir, "tmpfs", nsd, "mode=0755,size=16m") < 0)
        return capsa_error_make (err, errno, "cannot mount the staging tmpfs on %s", c->stage_dir);
    cleanup_close int stagefd = open (c->stage_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (stagefd < 0)
        return capsa_error_make (err, errno, "cannot open %s", c->stage_dir);
    if (mkdir_at (stagefd, "image", 0755, err) < 0 || mkdir_at (stagefd, "upper", 0755, err) < 0
        || mkdir_at (stagefd, "work", 0755, err) < 0 || mkdir_at (stagefd, "root", 0755, err) < 0
        || mkdir_at (stagefd, "files", 0755, err) < 0)
        return -1;

    if (mount_image (c, sock, stagefd, err) < 0)
        return -1;
    if (premake_targets (c, stagefd, err) < 0)
        return -1;

    /* The root is an overlay with an in-memory upper layer holding the
     * mount points the image lacks; it is made read-only before the
     * command starts. */
    cleanup_free char *ovl = xasprintf ("lowerdir=%s/image,upperdir=%s/upper,workdir=%s/work%s", c->stage_dir,
                                        c->stage_dir, c->stage_dir, userns ? ",userxattr" : "");
    cleanup_free char *rootpath = xasprintf ("%s/root", c->stage_dir);
    if (mount ("overlay", rootpath, "overlay", rootflags, ovl) < 0)
        return capsa_error_make (err, errno, "cannot mount the container's root overlay%s",
                                 errno == ENOTCONN ? " (the image's squashfs could not be read: is it valid?)" : "");
    cleanup_close int rootfd = open (rootpath, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (rootfd < 0)
        return capsa_error_make (err, errno, "cannot open the container root");

    /* /etc files first, before anything from the host is bound into /etc. */
    if (setup_etc (c, stagefd, rootfd, err) < 0)
        return -1;

    if (c->conf->mount_proc) {
        if (o->pid_ns || !userns) {
            if (mount_new (rootfd, "/proc", "proc", nsd | MS_NOEXEC, NULL, err) < 0)
                return -1;
        } else if (bind_host (rootfd, "/proc", "/proc", true, nsd | MS_NOEXEC, err) < 0) {
            return -1;
        }
    }
    if (c->conf->mount_sys) {
        if (o->net_ns || !userns) {
            if (mount_new (rootfd, "/sys", "sysfs", nsd | MS_NOEXEC | MS_RDONLY, NULL, err) < 0)
                return -1;
        } else if (bind_host (rootfd, "/sys", "/sys", true, nsd | MS_NOEXEC | MS_RDONLY, err) < 0) {
            return -1;
        }
    }
    if (setup_dev (c, rootfd, err) < 0)
        return -1;

    if (o->contain) {
        /* Contained: private, empty /tmp, /var/tmp and home. */
        if (mount_new (rootfd, "/tmp", "tmpfs", nsd, "mode=1777", err) < 0
            || mount_new (rootfd, "/var/tmp", "tmpfs", nsd, "mode=1777", err) < 0)
            return -1;
        cleanup_free char *opt = xasprintf ("mode=0700,uid=%u,gid=%u", c->user.uid, c->user.gid);
        if (mount_new (rootfd, c->home_dst, "tmpfs", nsd, c->mode == MODE_USERNS ? "mode=0700" : opt, err) < 0)
            return -1;
    }

    for (size_t i = 0; i < c->nbinds; i++) {
        struct capsa_host_path *b = &c->binds[i];
        cleanup_close int t = capsa_make_in_root (rootfd, b->dst, b->is_dir ? NODE_DIR : NODE_FILE, err);
        if (t < 0)
            return capsa_error_wrap (err, "%s %s", b->what, b->dst);
        if (capsa_bind_fd (b->fd, t, true, nsd | (b->ro ? MS_RDONLY : 0) | MS_REC, b->dst, err) < 0)
            return -1;
    }
    /* Make sure the working directory exists (--pwd to a new path). */
    {
        cleanup_close int w = capsa_make_in_root (rootfd, c->workdir, NODE_DIR, err);
        if (w < 0)
            return capsa_error_wrap (err, "working directory");
    }

    if (o->uts_ns && o->hostname && sethostname (o->hostname, strlen (o->hostname)) < 0)
        return capsa_error_make (err, errno, "cannot set the host name");
    if (o->net_ns && loopback_up (err) < 0)
        return -1;

    /* Read-only root, then switch to it and forget the host's tree. */
    cleanup_close int roottop = open (rootpath, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (roottop < 0 || capsa_remount_fd (roottop, MS_RDONLY | rootflags, "the container root", err) < 0)
        return capsa_error_make (err, errno, "cannot make the root read-only");
    if (fchdir (roottop) < 0)
        return capsa_error_make (err, errno, "cannot enter the container root");
    if (syscall (SYS_pivot_root, ".", ".") < 0)
        return capsa_error_make (err, errno, "pivot_root");
    if (umount2 (".", MNT_DETACH) < 0)
        return capsa_error_make (err, errno, "cannot detach the host's root");
    if (chdir ("/") < 0)
        return capsa_error_make (err, errno, "chdir /");
    return 0;
}

/* Look COMMAND up in the container's PATH; errors as a shell would. */
static noreturn void
exec_direct (char **argv, char **envp)
{
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (char **e = envp; *e; e++)
        if (strncmp (*e, "PATH=", 5) == 0)
            path = *e + 5;
    if (strchr (argv[0], '/') != NULL) {
        execve (argv[0], argv, envp);
    } else {
        cleanup_free char *copy = xstrdup (path);
        char *save = NULL;
        int saved = ENOENT;
        for (char *d = strtok_r (copy, ":", &save); d; d = strtok_r (NULL, ":", &save)) {
            cleanup_free char *full = xasprintf ("%s/%s", *d ? d : ".", argv[0]);
            execve (full, argv, envp);
            if (errno != ENOENT && errno != ENOTDIR)
                saved = errno;
        }
        errno = saved;
        if (errno == ENOENT) {
            capsa_log (CAPSA_LOG_FATAL, "\"%s\": executable file not found in $PATH", argv[0]);
            _exit (127);
        }
    }
    int e = errno;
    capsa_log (CAPSA_LOG_FATAL, "\"%s\": %s", argv[0], e == ENOENT ? "no such file or directory" : strerror (e));
    _exit (e == ENOENT ? 127 : 126);
}

static bool
exists_exec (const char *p)
{
    return access (p, X_OK) == 0;
}

static noreturn void
child_main (struct capsa_container *c, int sock, pid_t monitor)
{
    capsa_error_t err = NULL;
    struct capsa_opts *o = c->opts;
    struct strv argv = { 0 };

    /* Die with the monitor. */
    if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0 || (!o->pid_ns && getppid () != monitor))
        _exit (CAPSA_EXIT_FATAL);

    if (c->mode == MODE_USERNS) {
        char go;
        if (read (sock, &go, 1) != 1 || go != 'G')
            _exit (CAPSA_EXIT_FATAL);
        /* Inside the namespace the caller is the --security uid/gid when
         * given (the monitor mapped those ids to the caller's). */
        if (o->target_uid >= 0)
            c->user.uid = (uid_t) o->target_uid;
        if (o->ntarget_gids > 0)
            c->user.gid = o->target_gids[0];
    }

    /* Open everything the user named, with the user's own rights, in this
     * new mount namespace (descriptors of the host's namespace could not be
     * bind-mounted here). */
    if (capsa_privs_user_begin (c, &err) < 0)
        child_fail (&err);
    if (capsa_container_prepare (c, &err) < 0)
        child_fail (&err);
    if (capsa_privs_user_end (c, &err) < 0)
        child_fail (&err);
    /* The key is the monitor's business (it hands it to capsa-cryptfuse). */
    if (o->key_fd >= 0) {
        close (o->key_fd);
        o->key_fd = -1;
    }

    if (setup_root (c, sock, &err) < 0)
        child_fail (&err);

    /* What to run. */
    if (o->action == ACTION_EXEC) {
        for (int i = 0; i < o->ncmd; i++)
            strv_push (&argv, o->cmd[i]);
    } else if (o->action == ACTION_RUN && exists_exec ("/.singularity.d/runscript")) {
        strv_push (&argv, "/.singularity.d/runscript");
        for (int i = 0; i < o->ncmd; i++)
            strv_push (&argv, o->cmd[i]);
    } else {
        const char *sh = o->shell ? o->shell : (o->action == ACTION_SHELL && exists_exec ("/bin/bash")) ? "/bin/bash" : "/bin/sh";
        strv_push (&argv, sh);
        for (int i = 0; i < o->ncmd; i++)
            strv_push (&argv, o->cmd[i]);
    }

    if (chdir (c->workdir) < 0) {
        warnf ("cannot enter %s in the container, starting in /", c->workdir);
        if (chdir ("/") < 0)
            _exit (CAPSA_EXIT_FATAL);
    }

    /* Everything privileged is done: drop it all, in one place. */
    if (capsa_drop_privileges (c, &err) < 0)
        child_fail (&err);
    close (sock);
    /* Last of all: LSM labels and seccomp filters. */
    if (capsa_security_apply (c, &err) < 0)
        child_fail (&err);

    /* Through the image's shell when it has environment scripts, so they
     * are sourced in name order as Apptainer does; else directly. */
    struct stat st;
    if (stat ("/.singularity.d/env", &st) == 0 && S_ISDIR (st.st_mode) && exists_exec ("/bin/sh")) {
        struct strv shv = { 0 };
        strv_push (&shv, "/bin/sh");
        strv_push (&shv, "-c");
        strv_push_take (&shv, capsa_env_script (c));
        strv_push (&shv, argv.v[0]);
        for (size_t i = 0; i < argv.n; i++)
            strv_push (&shv, argv.v[i]);
        execve ("/bin/sh", shv.v, c->env.v);
        capsa_die ("cannot run /bin/sh in the container: %s", strerror (errno));
    }
    for (size_t i = 0; i < c->env_override.n; i++)
        strv_push (&c->env, c->env_override.v[i]);
    exec_direct (argv.v, c->env.v);
}

/* ------------------------------------------------------------------ */
/* The monitor.                                                         */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t child_pid;

static void
forward_signal (int sig, siginfo_t *si, void *ctx)
{
    /* A signal from the terminal reaches the whole process group already;
     * only forward what someone sent to us alone. */
    if (child_pid > 0 && si->si_code != SI_KERNEL)
        kill (child_pid, sig);
}

/* Start the FUSE server REQ asks for, as the user (the monitor already is
 * the user), outside the container's namespaces, with only the descriptors
 * it serves.  For the decrypting server, wait until it says the key opened
 * the image ('R' on a pipe) and return -1 if it does not. */
static pid_t
spawn_fuse_server (struct capsa_container *c, pid_t container, const struct fuse_request *req, int fusefd,
                   int filefd, capsa_error_t *err)
{
    int ready[2] = { -1, -1 };
    if (req->server == SERVER_CRYPT && (c->opts->key_fd < 0 || pipe2 (ready, O_CLOEXEC) < 0))
        return capsa_error_make (err, c->opts->key_fd < 0 ? 0 : errno, "no key for the encrypted image");
    pid_t pid = fork ();
    if (pid < 0)
        return capsa_error_make (err, errno, "fork");
    if (pid == 0) {
        char mnt[32], file[32], opt[64], off[32], size[32], key[32], rdy[32];
        int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
        /* This process parses what the user brought: it must be the user. */
        if (geteuid () != c->user.uid || getuid () != c->user.uid)
            _exit (CAPSA_EXIT_FATAL);
        /* A FUSE mount made in the container's user namespace serves only
         * processes inside that namespace (allow_other is limited to it):
         * join it.  The caller owns it, so this needs no privilege, and the
         * exec below drops whatever it grants. */
        if (c->mode == MODE_USERNS) {
            char ns[64];
            snprintf (ns, sizeof (ns), "/proc/%d/ns/user", container);
            int nsfd = open (ns, O_RDONLY | O_CLOEXEC);
            if (nsfd < 0 || setns (nsfd, CLONE_NEWUSER) < 0) {
                capsa_log (CAPSA_LOG_FATAL, "cannot join the container's user namespace: %s", strerror (errno));
                _exit (CAPSA_EXIT_FATAL);
            }
            close (nsfd);
        }
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (devnull >= 0) {
            dup2 (devnull, STDIN_FILENO);
            if (capsa_log_get_level () < CAPSA_LOG_DEBUG) {
                dup2 (devnull, STDOUT_FILENO);
                /* squashfuse_ll reports the end of its connection when the
                 * container's namespace goes away; only -d shows that.  A
                 * bad image still shows, as the root mount failing. */
                if (req->server == SERVER_SQUASHFS)
                    dup2 (devnull, STDERR_FILENO);
            }
        }
        /* Descriptors it may keep: not close-on-exec copies above 10. */
        int f = fcntl (fusefd, F_DUPFD, 10), i = fcntl (filefd, F_DUPFD, 10);
        if (f < 0 || i < 0)
            _exit (CAPSA_EXIT_FATAL);
        snprintf (mnt, sizeof (mnt), "/dev/fd/%d", f);
        char *envp[] = { (char *) "PATH=/usr/bin:/bin", NULL };
        if (req->server == SERVER_SQUASHFS) {
            snprintf (file, sizeof (file), "/dev/fd/%d", i);
            snprintf (opt, sizeof (opt), "offset=%llu", (unsigned long long) req->offset);
            char *argv[] = { (char *) "squashfuse_ll", (char *) "-f", (char *) "-o", opt, file, mnt, NULL };
            execve (CAPSA_SQUASHFUSE, argv, envp);
            capsa_log (CAPSA_LOG_FATAL, "cannot run %s: %s", CAPSA_SQUASHFUSE, strerror (errno));
            _exit (CAPSA_EXIT_FATAL);
        }
        int k = fcntl (c->opts->key_fd, F_DUPFD, 10), r = fcntl (ready[1], F_DUPFD, 10);
        if (k < 0 || r < 0)
            _exit (CAPSA_EXIT_FATAL);
        snprintf (file, sizeof (file), "%d", i);
        snprintf (off, sizeof (off), "%llu", (unsigned long long) req->offset);
        snprintf (size, sizeof (size), "%llu", (unsigned long long) req->size);
        snprintf (key, sizeof (key), "%d", k);
        snprintf (rdy, sizeof (rdy), "%d", r);
        char *argv[] = { (char *) "capsa-cryptfuse", (char *) "--image-fd", file, (char *) "--offset", off,
                         (char *) "--size", size, (char *) "--volume-key-fd", key, (char *) "--ready-fd", rdy,
                         (char *) "--allow-other", mnt, NULL };
        execve (CAPSA_CRYPTFUSE, argv, envp);
        capsa_log (CAPSA_LOG_FATAL, "cannot run %s: %s", CAPSA_CRYPTFUSE, strerror (errno));
        _exit (CAPSA_EXIT_FATAL);
    }
    if (req->server == SERVER_CRYPT) {
        /* The key is used once. */
        close (c->opts->key_fd);
        c->opts->key_fd = -1;
        close (ready[1]);
        char byte = 0;
        ssize_t n;
        do
            n = read (ready[0], &byte, 1);
        while (n < 0 && errno == EINTR);
        close (ready[0]);
        if (n != 1 || byte != 'R') {
            /* capsa-cryptfuse said why (wrong key, corrupt header). */
            waitpid (pid, NULL, 0);
            return capsa_error_make (err, 0, "the encrypted image could not be opened");
        }
    }
    return pid;
}

/* One id each: the caller's own, seen inside as itself or as the
 * --security uid/gid. */
static int
write_maps (pid_t pid, const struct capsa_user *u, const struct capsa_opts *o, capsa_error_t *err)
{
    char path[64], map[64];
    unsigned long inside_uid = o->target_uid >= 0 ? (unsigned long) o->target_uid : u->uid;
    unsigned long inside_gid = o->ntarget_gids > 0 ? o->target_gids[0] : u->gid;
    snprintf (path, sizeof (path), "/proc/%d/setgroups", pid);
    if (write_file (path, "deny", err) < 0)
        return -1;
    snprintf (path, sizeof (path), "/proc/%d/uid_map", pid);
    snprintf (map, sizeof (map), "%lu %u 1\n", inside_uid, u->uid);
    if (write_file (path, map, err) < 0)
        return -1;
    snprintf (path, sizeof (path), "/proc/%d/gid_map", pid);
    snprintf (map, sizeof (map), "%lu %u 1\n", inside_gid, u->gid);
    return write_file (path, map, err);
}

int
capsa_container_run (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_opts *o = c->opts;
    int sv[2];
    int flags = CLONE_NEWNS | SIGCHLD;
    pid_t pid;
    int status = 0;

    if (o->pid_ns) {
        if (!c->conf->allow_pid_ns && c->mode != MODE_ROOT)
            return capsa_error_make (err, 0, "--pid is disabled by the administrator ('allow pid ns = no')");
        flags |= CLONE_NEWPID;
    }
    if (o->ipc_ns) {
        if (!c->conf->allow_ipc_ns && c->mode != MODE_ROOT)
            return capsa_error_make (err, 0, "--ipc is disabled by the administrator ('allow ipc ns = no')");
        flags |= CLONE_NEWIPC;
    }
    if (o->uts_ns) {
        if (!c->conf->allow_uts_ns && c->mode != MODE_ROOT)
            return capsa_error_make (err, 0, "--uts is disabled by the administrator ('allow uts ns = no')");
        flags |= CLONE_NEWUTS;
    }
    if (o->net_ns) {
        if (!c->conf->allow_net_ns && c->mode != MODE_ROOT)
            return capsa_error_make (err, 0, "--net is disabled by the administrator ('allow net ns = no')");
        flags |= CLONE_NEWNET;
    }
    if (c->mode == MODE_USERNS)
        flags |= CLONE_NEWUSER;

    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return capsa_error_make (err, errno, "socketpair");

    /* Creating namespaces is the one thing the monitor needs root for. */
    if (capsa_privs_raise (c, err) < 0)
        return -1;
    pid_t monitor = getpid ();
    fflush (NULL);
    pid = (pid_t) syscall (SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        close (sv[0]);
        child_main (c, sv[1], monitor);
    }
    int clone_errno = errno;
    /* From here on the monitor never needs privilege again. */
    if (capsa_privs_drop_monitor (c, err) < 0) {
        if (pid > 0)
            kill (pid, SIGKILL);
        return -1;
    }
    close (sv[1]);
    if (pid < 0) {
        close (sv[0]);
        if (clone_errno == EINVAL || clone_errno == EPERM || clone_errno == ENOSPC || clone_errno == EUSERS)
            return capsa_error_make (err, clone_errno, "cannot create the container's namespaces%s",
                                     c->mode == MODE_USERNS ? " (are unprivileged user namespaces enabled?)" : "");
        return capsa_error_make (err, clone_errno, "clone");
    }
    child_pid = pid;

    struct sigaction sa = { .sa_sigaction = forward_signal, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigemptyset (&sa.sa_mask);
    const int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH };
    for (size_t i = 0; i < ARRAY_SIZE (fwd); i++)
        sigaction (fwd[i], &sa, NULL);

    if (c->mode == MODE_USERNS) {
        if (write_maps (pid, &c->user, o, err) < 0 || write (sv[0], "G", 1) != 1) {
            kill (pid, SIGKILL);
            waitpid (pid, NULL, 0);
            close (sv[0]);
            return capsa_error_wrap (err, "cannot set up the user namespace");
        }
    }

    /* Start the FUSE servers the child asks for, until it has exec'd or
     * died (the socket closes on exec).  At most two: the decrypting
     * server of an encrypted image, then squashfuse_ll. */
    pid_t servers[2] = { -1, -1 };
    size_t nservers = 0;
    for (;;) {
        struct fuse_request req;
        int fds[2] = { -1, -1 };
        int r = recv_request (sv[0], &req, fds);
        if (r <= 0)
            break;
        pid_t spid = -1;
        if (nservers < ARRAY_SIZE (servers) && (req.server == SERVER_SQUASHFS || req.server == SERVER_CRYPT))
            spid = spawn_fuse_server (c, pid, &req, fds[0], fds[1], err);
        close (fds[0]);
        close (fds[1]);
        if (spid < 0) {
            kill (pid, SIGKILL);
            waitpid (pid, NULL, 0);
            for (size_t k = 0; k < nservers; k++) {
                kill (servers[k], SIGTERM);
                waitpid (servers[k], NULL, 0);
            }
            close (sv[0]);
            if (*err == NULL)
                capsa_error_make (err, 0, "unexpected request from the container");
            return -1;
        }
        servers[nservers++] = spid;
        if (write (sv[0], "R", 1) != 1)
            break;
    }
    close (sv[0]);
    if (c->opts->key_fd >= 0) {
        close (c->opts->key_fd);
        c->opts->key_fd = -1;
    }

    for (;;) {
        int st;
        pid_t w = waitpid (-1, &st, 0);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (w == pid) {
            status = st;
            break;
        }
        for (size_t k = 0; k < nservers; k++) {
            if (w != servers[k])
                continue;
            servers[k] = -1;
            if (!(WIFEXITED (st) && WEXITSTATUS (st) == 0))
                warnf ("a FUSE server of the image stopped unexpectedly");
        }
    }
    child_pid = 0;
    /* Last started first: squashfuse_ll before the decrypting server. */
    for (size_t k = nservers; k-- > 0;) {
        if (servers[k] > 0) {
            kill (servers[k], SIGTERM);
            waitpid (servers[k], NULL, 0);
        }
    }
    if (WIFSIGNALED (status))
        return 128 + WTERMSIG (status);
    return WEXITSTATUS (status);
}

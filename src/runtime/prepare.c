/* What the user named, opened with the user's own rights, in the
 * container's child before any mount: the image, home, binds, the working
 * directory and --env-file.  Nothing here is privileged: in setuid mode
 * the child's effective ids are the user's (root is only saved), and what
 * must be parsed (the SIF header) is parsed by a forked process that has
 * given root up for good (capsa_run_as_user). */
#include "runtime/container.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/gpu.h"
#include "runtime/hostmounts.h"
#include "runtime/privs.h"
#include "runtime/sifimage.h"

int
capsa_run_as_user (struct capsa_container *c, int (*fn) (void *arg, capsa_error_t *err), void *arg,
                   capsa_error_t *err)
{
    if (c->mode != MODE_SETUID)
        return fn (arg, err);

    int pfd[2];
    if (pipe2 (pfd, O_CLOEXEC) < 0)
        return capsa_error_make (err, errno, "pipe");
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid < 0) {
        int e = errno;
        close (pfd[0]);
        close (pfd[1]);
        return capsa_error_make (err, e, "fork");
    }
    if (pid == 0) {
        capsa_error_t e = NULL;
        close (pfd[0]);
        prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid () != parent)
            _exit (CAPSA_EXIT_FATAL);
        int r = capsa_privs_user_helper_drop (c, &e);
        if (r == 0)
            r = fn (arg, &e);
        if (r < 0) {
            const char *msg = e && e->msg ? e->msg : "failed";
            if (write (pfd[1], msg, strlen (msg)) < 0)
                _exit (CAPSA_EXIT_FATAL);
            _exit (1);
        }
        _exit (0);
    }
    close (pfd[1]);
    char msg[1024];
    ssize_t n, len = 0;
    while ((n = read (pfd[0], msg + len, sizeof (msg) - 1 - (size_t) len)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            len += n;
    close (pfd[0]);
    msg[len] = '\0';
    int status;
    while (waitpid (pid, &status, 0) < 0)
        if (errno != EINTR)
            return capsa_error_make (err, errno, "waitpid");
    if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
        return 0;
    if (len > 0)
        return capsa_error_make (err, 0, "%s", msg);
    return capsa_error_make (err, 0, "a helper process failed (%s %d)", WIFEXITED (status) ? "exit status" : "signal",
                             WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
}

/* The SIF header, parsed without privilege.  The answer travels through a
 * shared page; capsa_image_open_with checks it against the file. */
struct sif_answer {
    uint64_t offset, size;
    bool encrypted;
    uint64_t overlay_offset, overlay_size; /* its overlay partition (overlay.h), size 0: none */
};

struct sif_question {
    int fd;
    const char *path;
    struct sif_answer *answer; /* MAP_SHARED */
};

static int
locate_partition (void *arg, capsa_error_t *err)
{
    struct sif_question *q = arg;
    struct sif_answer a = { 0 };
    if (capsa_sif_image_partition (q->fd, q->path, &a.offset, &a.size, &a.encrypted, err) < 0
        || capsa_sif_overlay_partition (q->fd, q->path, &a.overlay_offset, &a.overlay_size, err) < 0)
        return -1;
    *q->answer = a;
    return 0;
}

static int
locate_as_user (void *data, int fd, const char *path, struct capsa_image *img, capsa_error_t *err)
{
    struct capsa_container *c = data;
    struct sif_answer *answer = mmap (NULL, sizeof (*answer), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (answer == MAP_FAILED)
        return capsa_error_make (err, errno, "mmap");
    memset (answer, 0, sizeof (*answer));
    struct sif_question q = { .fd = fd, .path = path, .answer = answer };
    int r = capsa_run_as_user (c, locate_partition, &q, err);
    if (r == 0) {
        img->offset = answer->offset;
        img->size = answer->size;
        img->encrypted = answer->encrypted;
        img->overlay_known = true;
        img->overlay_offset = answer->overlay_offset;
        img->overlay_size = answer->overlay_size;
    }
    munmap (answer, sizeof (*answer));
    return r;
}

static bool
strv_contains (const struct strv *list, const char *s)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcmp (list->v[i], s) == 0)
            return true;
    return false;
}

/* PATH made lexical and absolute, as Apptainer's filepath.Clean: no
 * empty, "." or ".." components ("/a/../b//c/." is "/b/c"; ".." above the
 * root stays at the root).  New string. */
static char *
clean_path (const char *path)
{
    cleanup_free char *copy = xstrdup (path);
    char **parts = xcalloc (strlen (path) / 2 + 2, sizeof (char *));
    size_t n = 0, len = 0;
    char *save = NULL, *out = NULL;
    for (char *c = strtok_r (copy, "/", &save); c; c = strtok_r (NULL, "/", &save)) {
        if (strcmp (c, ".") == 0)
            continue;
        if (strcmp (c, "..") == 0) {
            if (n > 0)
                n--;
            continue;
        }
        parts[n++] = c;
    }
    str_append (&out, &len, "/");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            str_append (&out, &len, "/");
        str_append (&out, &len, parts[i]);
    }
    free (parts);
    return out;
}

/* Does PATH name the root of the container ("/", "//", "/.", "/a/..")?
 * (Only as text: a symlink to "/" is caught where the mount point is
 * opened, by what it is: rootfs.c.) */
static bool
is_root_path (const char *path)
{
    cleanup_free char *clean = clean_path (path);
    return strcmp (clean, "/") == 0;
}

static int
add_host_path (struct capsa_container *c, const char *src, const char *dst, bool ro, bool optional,
               const char *what, capsa_error_t *err)
{
    if (optional)
        debugf ("%s %s -> %s", what, src, dst);
    struct stat st;
    if (is_root_path (dst))
        return capsa_error_make (err, 0, "%s %s: cannot be mounted on %s, the container's root", what, src, dst);
    int fd = open (src, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (optional) {
            debugf ("skipping %s %s: %s", what, src, strerror (errno));
            return 0;
        }
        return capsa_error_make (err, errno, "%s %s", what, src);
    }
    if (fstat (fd, &st) < 0) {
        int e = errno;
        close (fd);
        /* (Another user's FUSE mount opens, but stat is refused.) */
        if (optional) {
            debugf ("skipping %s %s: %s", what, src, strerror (e));
            return 0;
        }
        return capsa_error_make (err, e, "%s %s", what, src);
    }
    if (!S_ISDIR (st.st_mode) && !S_ISREG (st.st_mode) && !S_ISCHR (st.st_mode) && !S_ISBLK (st.st_mode)
        && !S_ISSOCK (st.st_mode) && !S_ISFIFO (st.st_mode)) {
        close (fd);
        return capsa_error_make (err, 0, "%s %s: unsupported file type", what, src);
    }
    c->binds = xrealloc (c->binds, (c->nbinds + 1) * sizeof (*c->binds));
    c->binds[c->nbinds++] = (struct capsa_host_path) {
        .fd = fd, .is_dir = S_ISDIR (st.st_mode), .dst = clean_path (dst), .ro = ro, .what = what,
    };
    return 0;
}

int
capsa_container_prepare (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_opts *o = c->opts;
    bool contain = o->contain;

    if (capsa_image_open_with (&c->image, o->image, c->mode == MODE_SETUID ? locate_as_user : NULL, c, err) < 0)
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

    /* $HOME.  --no-home: none.  A home the user chose (--home SRC[:DST]) is
     * bound even with --contain, as in Apptainer, and is refused when the
     * administrator disabled user binds.  Otherwise the caller's home, if
     * 'mount home = yes' and not --contain (then rootfs.c puts an empty
     * one in memory). */
    c->home_dst = clean_path (o->home_dst ? o->home_dst : c->user.home);
    if (is_root_path (c->home_dst))
        return capsa_error_make (err, 0, "home directory %s: the container's root cannot be the home directory",
                                 c->home_dst);
    const bool user_binds = c->conf->user_bind_control || c->mode == MODE_ROOT;
    if (o->home_src && !o->no_home && !user_binds)
        return capsa_error_make (err, 0, "not mounting the requested home %s: user bind control is disabled by the "
                                 "administrator ('user bind control = no')",
                                 o->home_src);
    if (!o->no_home && o->home_src) {
        if (add_host_path (c, o->home_src, c->home_dst, false, false, "home directory", err) < 0)
            return -1;
    } else if (!o->no_home && !contain && c->conf->mount_home) {
        if (add_host_path (c, c->user.home, c->home_dst, false, true, "home directory", err) < 0)
            return -1;
    }

    /* /tmp and /var/tmp from the host unless contained (rootfs.c then
     * mounts empty ones in memory) or left out. */
    const bool tmp = c->conf->mount_tmp && !(o->no_mount & NO_MOUNT_TMP);
    if (!contain && tmp) {
        if (add_host_path (c, "/tmp", "/tmp", false, true, "temporary directory", err) < 0
            || add_host_path (c, "/var/tmp", "/var/tmp", false, true, "temporary directory", err) < 0)
            return -1;
    }

    /* 'mount hostfs': every mount point right below the host's / (each
     * opened as the user; those the user cannot reach are skipped). */
    if (c->conf->mount_hostfs && !(o->no_mount & NO_MOUNT_HOSTFS)) {
        cleanup_free char *mi = NULL;
        cleanup_close int mfd = open ("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
        capsa_error_t e2 = NULL;
        if (mfd < 0 || read_fd_all (mfd, 16 << 20, &mi, NULL, &e2) < 0) {
            capsa_error_free (&e2);
            return capsa_error_make (err, errno, "mount hostfs: cannot read /proc/self/mountinfo");
        }
        struct strv points = { 0 };
        capsa_hostfs_points (mi, &points);
        for (size_t i = 0; i < points.n; i++) {
            if (add_host_path (c, points.v[i], points.v[i], false, true, "host file system", err) < 0) {
                strv_free (&points);
                return -1;
            }
        }
        strv_free (&points);
    }

    /* Administrator's bind paths, read-write as in Apptainer; a missing
     * source is an error (Apptainer: "mount source ... doesn't exist").
     * With --contain only the host's /etc/hosts and /etc/localtime. */
    if (contain) {
        static const char *const keep[] = { "/etc/hosts", "/etc/localtime" };
        for (size_t i = 0; i < ARRAY_SIZE (keep); i++) {
            if (o->skip_all_bind_paths || strv_contains (&o->skip_bind_paths, keep[i]))
                continue;
            if (add_host_path (c, keep[i], keep[i], false, true, "bind path", err) < 0)
                return -1;
        }
    } else {
        for (size_t i = 0; i < c->conf->bind_paths.n; i++) {
            cleanup_free char *src = xstrdup (c->conf->bind_paths.v[i]);
            /* SRC[:DST[:OPTS]]: Apptainer reads the first two fields and
             * ignores the rest; capsa also honours an 'ro' there (what an
             * administrator who wrote it meant). */
            char *colon = strchr (src, ':');
            const char *dst = src;
            bool ro = false;
            if (colon) {
                *colon = '\0';
                dst = colon + 1;
                char *opts = strchr (colon + 1, ':');
                if (opts) {
                    *opts++ = '\0';
                    ro = strcmp (opts, "ro") == 0;
                }
            }
            if (o->skip_all_bind_paths || strv_contains (&o->skip_bind_paths, dst)) {
                debugf ("bind path %s left out (--no-mount)", dst);
                continue;
            }
            if (add_host_path (c, src, dst, ro, false, "bind path", err) < 0)
                return -1;
        }
    }
    if (c->conf->config_resolv_conf
        && add_host_path (c, "/etc/resolv.conf", "/etc/resolv.conf", true, true, "resolv.conf", err) < 0)
        return -1;

    /* GPU files (--nv, --rocm: runtime/gpu.h), before the user's binds,
     * which may cover them. */
    if (capsa_gpu_prepare_files (c, err) < 0)
        return -1;

    /* The user's binds.  Devices of the host's /dev (-B /dev/X, source and
     * destination the same) go into the container's /dev without nodev;
     * -B /dev is the host's whole /dev.  Others are ignored with a warning
     * when the administrator disabled user binds, as in Apptainer. */
    const bool no_dev = c->conf->mount_dev == MOUNT_DEV_NO || (o->no_mount & NO_MOUNT_DEV);
    const bool minimal_dev = !no_dev && (c->conf->mount_dev == MOUNT_DEV_MINIMAL || contain);
    c->dev_host = !no_dev && !minimal_dev;
    for (size_t i = 0; i < o->nbinds; i++) {
        const struct capsa_bind *b = &o->binds[i];
        cleanup_free char *src = capsa_env_abs_path (b->src, c->host_cwd);
        cleanup_free char *dst = capsa_env_abs_path (b->dst, "/");
        bool whole = false, present = false;
        if (strncmp (dst, "/dev", 4) == 0 && (dst[4] == '\0' || dst[4] == '/') && strncmp (src, "/dev", 4) == 0
            && (src[4] == '\0' || src[4] == '/')) {
            if (!capsa_dev_bind (src, dst, &whole)) {
                warnf ("skipping the bind %s:%s: source and destination must be the same below /dev", b->src, b->dst);
                continue;
            }
            if (no_dev) {
                warnf ("skipping the bind %s: /dev is not mounted ('mount dev = no' or --no-mount dev)", b->src);
                continue;
            }
            if (whole) {
                c->dev_host = true;
                continue;
            }
            if (minimal_dev && !c->dev_host && !capsa_dev_bind_allowed (dst, &present)) {
                if (!present)
                    warnf ("skipping the bind %s: it cannot go into the container's /dev", b->src);
                continue;
            }
            if (add_host_path (c, src, dst, b->ro, false, "bind source", err) < 0)
                return -1;
            c->binds[c->nbinds - 1].dev = true;
            continue;
        }
        if (!user_binds) {
            warnf ("ignoring the bind %s: user bind control is disabled by the administrator", b->src);
            continue;
        }
        if (add_host_path (c, b->src, b->dst, b->ro, false, "bind source", err) < 0)
            return -1;
    }
    /* GPU devices, now that the container's /dev is decided. */
    if (capsa_gpu_prepare_devices (c, no_dev, minimal_dev && !c->dev_host, err) < 0)
        return -1;

    /* Working directory: --pwd, else the host's current directory when it is
     * visible inside (under $HOME or a bind), else it is bound itself.  It
     * is entered only after the final drop, as the user (child.c). */
    if (o->pwd) {
        c->workdir = xstrdup (o->pwd);
        c->workdir_custom = true;
    } else if (contain || c->host_cwd == NULL) {
        c->workdir = xstrdup (c->home_dst);
    } else if (!user_binds || (o->no_mount & NO_MOUNT_CWD)) {
        /* Entered if the container has it; else the fallback (child.c). */
        if (!user_binds)
            warnf ("not mounting the current directory: user bind control is disabled by the administrator");
        c->workdir = xstrdup (c->host_cwd);
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

    /* --env-file: opened now, as the user; read after the final drop. */
    c->env_fds = xcalloc (o->env_files.n + 1, sizeof (int));
    for (size_t i = 0; i < o->env_files.n; i++) {
        c->env_fds[i] = open (o->env_files.v[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (c->env_fds[i] < 0)
            return capsa_error_make (err, errno, "--env-file %s", o->env_files.v[i]);
    }
    return 0;
}

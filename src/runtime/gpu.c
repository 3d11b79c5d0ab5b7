/* GPUs in the container (gpu.h): the starter's part, run by the container's
 * child while it acts as the user (capsa_container_prepare), before any
 * mount.
 *
 * Nothing here trusts the front end.  Each --gpu-file it passed must be
 * allowed by the administrator's list, which is read here again from
 * PREFIX/etc/capsa (root's file, not writable by others, in a setuid
 * install), and is opened with the user's rights: a regular file the user
 * can read, bound read-only, nosuid, nodev, exactly like a user's `-B`
 * (so nothing is gained over `-B` but the place).  With 'user bind
 * control = no' they are left out, as in Apptainer.  The devices are found
 * here, in the host's /dev, never taken from the front end (which can
 * only narrow them, for --nvccli): only character devices directly there
 * (or in a directory of them, /dev/dri, /dev/nvidia-caps), whose major
 * number /proc/devices gives to this GPU driver or to none.  They are bound like a user's `-B /dev/X` (hostmounts.h):
 * into capsa's minimal /dev, without nodev; with the host's whole /dev
 * ('mount dev = yes') they are there already. */
#include "runtime/gpu.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "config.h"
#include "lib/log.h"
#include "runtime/container.h"

enum { FOUND_NV = 1 << 0, FOUND_ROCM = 1 << 1 };

#define GPU_LIST_MAX_SIZE (1024 * 1024)

int
capsa_gpu_list_load (const char *path, bool strict, struct capsa_gpu_list *out, capsa_error_t *err)
{
    cleanup_free char *text = NULL;
    size_t len;
    cleanup_close int fd = capsa_open_trusted_file (path, strict, err);
    if (fd < 0)
        return -1;
    if (read_fd_all (fd, GPU_LIST_MAX_SIZE, &text, &len, err) < 0)
        return capsa_error_wrap (err, "%s", path);
    if (strlen (text) != len)
        return capsa_error_make (err, 0, "%s: contains a NUL byte", path);
    capsa_gpu_list_parse (text, out);
    return 0;
}


static bool
want_nv (const struct capsa_container *c)
{
    return c->opts->nv || (c->conf->always_use_nv && !c->opts->no_nv);
}

static bool
want_rocm (const struct capsa_container *c)
{
    return c->opts->rocm || (c->conf->always_use_rocm && !c->opts->no_rocm);
}

static const char *
base_name (const char *path)
{
    const char *slash = strrchr (path, '/');
    return slash ? slash + 1 : path;
}

static bool
bound_at (const struct capsa_container *c, const char *dst)
{
    for (size_t i = 0; i < c->nbinds; i++)
        if (strcmp (c->binds[i].dst, dst) == 0)
            return true;
    return false;
}

static void
add_bind (struct capsa_container *c, int fd, const char *dst, bool is_dir, bool ro, bool dev, const char *what)
{
    c->binds = xrealloc (c->binds, (c->nbinds + 1) * sizeof (*c->binds));
    c->binds[c->nbinds++] = (struct capsa_host_path) {
        .fd = fd, .is_dir = is_dir, .dst = xstrdup (dst), .ro = ro, .what = what, .dev = dev,
    };
}

/* PATH for a bind: opened as the user (symlinks followed, as for -B), a
 * regular file, and readable by the user (opened again for reading through
 * the descriptor, so it is the same file).  An O_PATH descriptor. */
static int
open_readable (const char *path, capsa_error_t *err)
{
    struct stat st;
    char buf[64];
    cleanup_close int fd = open (path, O_PATH | O_CLOEXEC);
    if (fd < 0 || fstat (fd, &st) < 0)
        return capsa_error_make (err, errno, "%s", path);
    if (!S_ISREG (st.st_mode))
        return capsa_error_make (err, 0, "%s: not a regular file", path);
    snprintf (buf, sizeof (buf), "/proc/self/fd/%d", fd);
    int rfd = open (buf, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (rfd < 0)
        return capsa_error_make (err, errno, "%s: cannot be read", path);
    close (rfd);
    return steal_fd (&fd);
}

/* The list NAME of PREFIX/etc/capsa; a missing one is no error when the
 * front end passed nothing that would need it. */
static int
load_list (struct capsa_container *c, const char *name, struct capsa_gpu_list *out, bool needed, capsa_error_t *err)
{
    cleanup_free char *path = xasprintf ("%s/%s", CAPSA_SYSCONFDIR, name);
    if (capsa_gpu_list_load (path, c->mode == MODE_SETUID, out, err) == 0)
        return 0;
    if (!needed && (*err)->code == ENOENT) {
        verbosef ("%s", (*err)->msg);
        capsa_error_free (err);
        return 0;
    }
    return -1;
}

int
capsa_gpu_prepare_files (struct capsa_container *c, capsa_error_t *err)
{
    const struct capsa_opts *o = c->opts;
    const bool nv = want_nv (c), rocm = want_rocm (c);
    size_t nfiles = 0;
    for (size_t i = 0; i < o->gpu_files.n; i++)
        nfiles += strncmp (o->gpu_files.v[i], "dev:", 4) != 0;
    if (!nv && !rocm) {
        if (o->gpu_files.n > 0)
            return capsa_error_make (err, 0, "--gpu-file %s: needs --nv or --rocm", o->gpu_files.v[0]);
        return 0;
    }
    if (c->conf->always_use_nv && !o->nv && nv)
        verbosef ("'always use nv = yes' in capsa.conf: NVIDIA GPUs as with --nv");
    if (c->conf->always_use_rocm && !o->rocm && rocm)
        verbosef ("'always use rocm = yes' in capsa.conf: AMD GPUs as with --rocm");

    struct capsa_gpu_list nvlist = { 0 }, rocmlist = { 0 };
    int ret = -1;
    if ((nv && load_list (c, "nvliblist.conf", &nvlist, nfiles > 0, err) < 0)
        || (rocm && load_list (c, "rocmliblist.conf", &rocmlist, nfiles > 0, err) < 0))
        goto out;

    const bool user_binds = c->conf->user_bind_control || c->mode == MODE_ROOT;
    if (!user_binds && nfiles > 0) {
        /* As Apptainer: the GPU's files are binds of host files. */
        warnf ("ignoring the GPU libraries and programs: user bind control is disabled by the administrator ('user "
               "bind control = no'); only the GPU devices are used");
        ret = 0;
        goto out;
    }

    if (o->writable && c->image.kind == IMAGE_DIR && nfiles > 0)
        warnf ("--writable: the GPU files are bound only where the directory image %s has their mount points "
               "(capsa creates nothing in it)",
               c->image.path);
    for (size_t i = 0; i < o->gpu_files.n; i++) {
        const char *item = o->gpu_files.v[i];
        const char *colon = strchr (item, ':');
        const char *path = colon + 1;
        size_t klen = (size_t) (colon - item);
        cleanup_free char *dst = NULL;
        unsigned found = 0;
        const char *what;
        if (klen == 3 && strncmp (item, "dev", 3) == 0)
            continue;
        if ((klen == 3 && strncmp (item, "lib", 3) == 0) || (klen == 5 && strncmp (item, "lib32", 5) == 0)) {
            found = (nv && capsa_gpu_list_lib (&nvlist, path) ? FOUND_NV : 0)
                    | (rocm && capsa_gpu_list_lib (&rocmlist, path) ? FOUND_ROCM : 0);
            dst = xasprintf ("%s/%s", klen == 3 ? CAPSA_GPU_LIBDIR : CAPSA_GPU_LIB32DIR, base_name (path));
            what = "GPU library";
            if (found)
                c->gpu_libdirs |= klen == 3 ? GPU_LIBDIR : GPU_LIB32DIR;
        } else if (klen == 3 && strncmp (item, "bin", 3) == 0) {
            found = (nv && capsa_gpu_list_bin (&nvlist, base_name (path)) ? FOUND_NV : 0)
                    | (rocm && capsa_gpu_list_bin (&rocmlist, base_name (path)) ? FOUND_ROCM : 0);
            dst = xasprintf ("%s/%s", CAPSA_GPU_BINDIR, base_name (path));
            what = "GPU program";
        } else {
            found = (nv && capsa_gpu_list_file (&nvlist, path) ? FOUND_NV : 0)
                    | (rocm && capsa_gpu_list_file (&rocmlist, path) ? FOUND_ROCM : 0);
            dst = xstrdup (path);
            what = "GPU file";
        }
        if (!found) {
            capsa_error_make (err, 0, "--gpu-file %s: not allowed by %s/%s", item, CAPSA_SYSCONFDIR,
                              nv && rocm ? "nvliblist.conf or rocmliblist.conf"
                              : nv       ? "nvliblist.conf"
                                         : "rocmliblist.conf");
            goto out;
        }
        if (bound_at (c, dst)) {
            debugf ("%s %s: %s is bound already", what, path, dst);
            continue;
        }
        int fd = open_readable (path, err);
        if (fd < 0) {
            capsa_error_wrap (err, "%s", what);
            goto out;
        }
        debugf ("%s %s -> %s", what, path, dst);
        add_bind (c, fd, dst, false, true, false, what);
    }

    /* The persistence daemon's socket (Apptainer binds it too), when there
     * is one: a socket, not followed if it is a symlink. */
    if (nv) {
        struct stat st;
        int fd = open (CAPSA_GPU_PERSISTENCED, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && fstat (fd, &st) == 0 && S_ISSOCK (st.st_mode) && user_binds && !bound_at (c, CAPSA_GPU_PERSISTENCED)) {
            add_bind (c, fd, CAPSA_GPU_PERSISTENCED, false, true, false, "GPU socket");
        } else if (fd >= 0) {
            close (fd);
        }
    }
    ret = 0;
out:
    capsa_gpu_list_free (&nvlist);
    capsa_gpu_list_free (&rocmlist);
    return ret;
}

/* Is every entry of the directory DIRFD (a GPU device directory of the
 * host's /dev, device DEV) a character device of DRIVER, or, one level
 * down, a symbolic link (/dev/dri/by-path)?  WHY names the first that is
 * not. */
static bool
dir_ok (int dirfd, dev_t dev, enum capsa_gpu_driver driver, const char *devices, int depth, char *why, size_t len)
{
    int fd = fcntl (dirfd, F_DUPFD_CLOEXEC, 3);
    DIR *d = fd < 0 ? NULL : fdopendir (fd);
    bool ok = d != NULL;
    if (d == NULL) {
        if (fd >= 0)
            close (fd);
        snprintf (why, len, "cannot be listed");
        return false;
    }
    for (struct dirent *e = readdir (d); e && ok; e = readdir (d)) {
        struct stat st;
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        if (fstatat (dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev) {
            ok = false;
        } else if (S_ISCHR (st.st_mode)) {
            cleanup_free char *name = capsa_gpu_char_driver (devices, major (st.st_rdev));
            ok = capsa_gpu_major_ok (driver, name);
        } else if (S_ISLNK (st.st_mode)) {
            ok = depth > 0;
        } else if (S_ISDIR (st.st_mode) && depth == 0) {
            int sub = openat (dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            ok = sub >= 0 && dir_ok (sub, dev, driver, devices, depth + 1, why, len);
            if (sub >= 0)
                close (sub);
            if (!ok && sub >= 0)
                break; /* WHY is the inner entry's */
        } else {
            ok = false;
        }
        if (!ok)
            snprintf (why, len, "holds %.200s, which is not a character device of the GPU's driver", e->d_name);
    }
    closedir (d);
    return ok;
}

/* The host's /dev/NAME (DEVFD) as a GPU device of DRIVER: a character
 * device (or a directory of them, all on one file system), not a symlink.
 * (Such a node may be a mount of its own: a container engine binds GPU
 * nodes into a container's /dev; a bind keeps its source's nodev.)  Returns
 * an O_PATH descriptor, -1 when there is none, -2 (with a warning) when
 * there is something else by that name. */
static int
open_device (int devfd, const char *name, enum capsa_gpu_driver driver, const char *devices, bool *is_dir)
{
    struct stat st;
    char why[512] = "";
    cleanup_close int fd = openat (devfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat (fd, &st) < 0) {
        snprintf (why, sizeof (why), "%s", strerror (errno));
    } else if (S_ISCHR (st.st_mode)) {
        cleanup_free char *drv = capsa_gpu_char_driver (devices, major (st.st_rdev));
        if (!capsa_gpu_major_ok (driver, drv))
            snprintf (why, sizeof (why), "its major number %u belongs to the driver '%.100s'", major (st.st_rdev), drv);
    } else if (S_ISDIR (st.st_mode)) {
        char buf[64];
        snprintf (buf, sizeof (buf), "/proc/self/fd/%d", fd);
        int dfd = open (buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            snprintf (why, sizeof (why), "cannot be listed: %s", strerror (errno));
        else if (!dir_ok (dfd, st.st_dev, driver, devices, 0, why, sizeof (why)) && why[0] == '\0')
            snprintf (why, sizeof (why), "not a directory of GPU devices");
        if (dfd >= 0)
            close (dfd);
    } else {
        snprintf (why, sizeof (why), "it is a %s, not a character device",
                  S_ISLNK (st.st_mode) ? "symbolic link" : S_ISBLK (st.st_mode) ? "block device" : "file");
    }
    if (why[0]) {
        warnf ("not binding /dev/%s for the GPU: %s", name, why);
        return -2;
    }
    *is_dir = S_ISDIR (st.st_mode);
    return steal_fd (&fd);
}

/* Was /dev/NAME selected by the front end (dev: items; none: all)? */
static bool
selected (const struct capsa_opts *o, const char *name)
{
    bool any = false;
    for (size_t i = 0; i < o->gpu_files.n; i++) {
        const char *v = o->gpu_files.v[i];
        if (strncmp (v, "dev:", 4) != 0)
            continue;
        any = true;
        if (strncmp (v + 4, "/dev/", 5) == 0 && strcmp (v + 9, name) == 0)
            return true;
    }
    return !any;
}

static int
name_cmp (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

struct gpu_dev_ctx {
    struct capsa_container *c;
    int devfd;
    const char *devices; /* /proc/devices */
    bool bind;           /* into capsa's minimal /dev */
};

/* /dev/NAME for DRIVER: found (true) or not. */
static bool
one_device (struct gpu_dev_ctx *x, const char *name, enum capsa_gpu_driver driver)
{
    bool is_dir = false;
    int fd = open_device (x->devfd, name, driver, x->devices, &is_dir);
    if (fd < 0)
        return false;
    cleanup_free char *dst = xasprintf ("/dev/%s", name);
    if (!x->bind || bound_at (x->c, dst)) {
        close (fd);
        return true;
    }
    debugf ("GPU device %s", dst);
    add_bind (x->c, fd, dst, is_dir, false, true, "GPU device");
    return true;
}

int
capsa_gpu_prepare_devices (struct capsa_container *c, bool no_dev, bool minimal_dev, capsa_error_t *err)
{
    const struct capsa_opts *o = c->opts;
    const bool nv = want_nv (c), rocm = want_rocm (c);
    if (!nv && !rocm)
        return 0;

    cleanup_free char *devices = NULL;
    cleanup_close int pfd = open ("/proc/devices", O_RDONLY | O_CLOEXEC);
    if (pfd < 0 || read_fd_all (pfd, 1 << 20, &devices, NULL, err) < 0)
        return pfd < 0 ? capsa_error_make (err, errno, "cannot read /proc/devices") : -1;
    cleanup_close int devfd = open ("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (devfd < 0)
        return capsa_error_make (err, errno, "cannot open /dev");
    struct gpu_dev_ctx x = { .c = c, .devfd = devfd, .devices = devices, .bind = !no_dev && minimal_dev };
    size_t nvdevs = 0, rocmdevs = 0;

    if (nv) {
        /* Apptainer's /dev/nvidia*: nvidia0..N, nvidiactl, nvidia-uvm,
         * nvidia-uvm-tools, nvidia-modeset, the nvidia-caps directory... */
        struct strv names = { 0 };
        int dfd = fcntl (devfd, F_DUPFD_CLOEXEC, 3);
        DIR *d = dfd < 0 ? NULL : fdopendir (dfd);
        if (d == NULL) {
            if (dfd >= 0)
                close (dfd);
            return capsa_error_make (err, errno, "cannot list /dev");
        }
        for (struct dirent *e = readdir (d); e; e = readdir (d))
            if (strncmp (e->d_name, "nvidia", 6) == 0)
                strv_push (&names, e->d_name);
        closedir (d);
        if (names.n > 1)
            qsort (names.v, names.n, sizeof (char *), name_cmp);
        for (size_t i = 0; i < names.n; i++)
            if (selected (o, names.v[i]) && one_device (&x, names.v[i], GPU_DRIVER_NVIDIA))
                nvdevs++;
        strv_free (&names);
    }
    if (rocm) {
        rocmdevs += one_device (&x, "kfd", GPU_DRIVER_KFD);
        rocmdevs += one_device (&x, "dri", GPU_DRIVER_DRM);
    }
    c->gpu_found = (nvdevs > 0 ? FOUND_NV : 0) | (rocmdevs > 0 ? FOUND_ROCM : 0);

    /* One WARNING when the GPU asked for cannot be used, and the container
     * runs (as Apptainer's); only a note when capsa.conf asked for it (a
     * cluster-wide 'always use nv' on nodes without GPUs), or when
     * --nvccli selected no device (the front end said why). */
    bool none_selected = false;
    for (size_t i = 0; i < o->gpu_files.n; i++)
        none_selected |= strcmp (o->gpu_files.v[i], "dev:none") == 0;
    if (nv && nvdevs == 0 && !none_selected) {
        if (o->nv)
            warnf ("--nv: no NVIDIA GPU on this host (no /dev/nvidia* device): the container runs without one");
        else
            verbosef ("'always use nv = yes': no NVIDIA GPU on this host (no /dev/nvidia* device)");
    }
    if (rocm && rocmdevs == 0) {
        if (o->rocm)
            warnf ("--rocm: no AMD GPU on this host (no /dev/kfd, no /dev/dri): the container runs without one");
        else
            verbosef ("'always use rocm = yes': no AMD GPU on this host (no /dev/kfd, no /dev/dri)");
    }
    if (no_dev && nvdevs + rocmdevs > 0) {
        if (o->nv || o->rocm)
            warnf ("the GPU devices are not bound: /dev is not mounted ('mount dev = no' or --no-mount dev)");
        else
            verbosef ("the GPU devices are not bound: /dev is not mounted ('mount dev = no' or --no-mount dev)");
    }
    return 0;
}

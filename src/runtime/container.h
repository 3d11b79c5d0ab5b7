/* Starting a container: the runtime shared by the three modes.
 *
 *   MODE_ROOT    the caller is root: kernel mounts, root keeps its powers.
 *   MODE_SETUID  a user through the setuid-root starter: kernel mounts of
 *                trusted things only; images the user brings go through
 *                FUSE unless the administrator allows kernel mounts; the
 *                command runs as the user with no capabilities.
 *   MODE_USERNS  no privilege at all: a user namespace maps the caller to
 *                itself; FUSE for image files.
 *
 * Process layout:  monitor (the starter itself, unprivileged once the child
 * exists) -> child in the new namespaces, which mounts, pivots, drops
 * privileges and execs the command.  The FUSE server for an image file is
 * a second child of the monitor, running as the user outside the container's
 * namespaces, so it dies with the monitor and never keeps a namespace alive.
 *
 * Files:  prepare.c  what the user named, opened as the user (child)
 *         rootfs.c   the root: stage, image, overlay, /proc, /sys, /dev,
 *                    binds, pivot (child; /dev, /proc, /sys and the pivot
 *                    are shared with capsa build)
 *         fusebroker.c  FUSE mounts served by the user's servers (both sides)
 *         child.c    the child from clone() to exec
 *         monitor.c  clone(), id maps, signals, waiting
 */
#ifndef CAPSA_CONTAINER_H
#define CAPSA_CONTAINER_H

#include <stdbool.h>
#include <stdnoreturn.h>
#include <sys/types.h>

#include "lib/error.h"
#include "lib/utils.h"
#include "runtime/caps.h"
#include "runtime/conf.h"
#include "runtime/fakeroot.h"
#include "runtime/image.h"
#include "runtime/options.h"

enum capsa_mode { MODE_ROOT, MODE_SETUID, MODE_USERNS };

struct capsa_instance;

struct capsa_user {
    uid_t uid;
    gid_t gid;
    char *name;
    char *gecos;
    char *home;   /* from the password database, never from $HOME */
    char *shell;
    gid_t *groups; /* the caller's supplementary groups, as the kernel gave them */
    int ngroups;
};

struct capsa_host_path {
    int fd;        /* O_PATH, opened with the caller's identity */
    bool is_dir;
    char *dst;     /* absolute path inside the container */
    bool ro;
    const char *what;
    bool dev;      /* a device (or directory of devices) of the host's /dev,
                      bound without adding nodev (hostmounts.c) */
};

struct capsa_container {
    enum capsa_mode mode;
    struct capsa_conf *conf;
    struct capsa_opts *opts;
    struct capsa_user user;
    struct strv host_env; /* the caller's environment, saved before clearing */
    char *host_cwd;
    char *stage_dir;      /* LIBEXECDIR/capsa/mnt: where the root is assembled */

    struct capsa_image image;
    bool use_fuse;        /* image file served by squashfuse_ll, not a loop device */

    /* Host objects to put into the container, opened by the monitor before
     * any namespace exists. */
    struct capsa_host_path *binds;
    size_t nbinds;
    char *home_dst;       /* $HOME inside */
    char *workdir;        /* the directory the command starts in */
    bool workdir_custom;  /* --pwd: not being able to enter it is fatal */
    int *env_fds;         /* --env-file files, opened as the user, read after the drop */
    bool dev_host;        /* the host's /dev ('mount dev = yes', or -B /dev) */

    capsa_capset_t caps;  /* the command's capabilities (all five sets) */
    capsa_capset_t own_caps; /* what the starter itself holds (root: permitted) */
    const char *grants_path;

    void *seccomp_progs[10]; /* compiled filters, loaded last */
    size_t seccomp_lens[10];
    size_t nseccomp;

    struct strv env;      /* environment of the command, before env scripts */
    struct strv env_override; /* KEY=VALUE applied after the env scripts */

    /* --fakeroot (runtime/fakeroot.h): a user namespace where the caller
     * is root, with these subordinate ranges mapped (count 0: none). */
    bool fakeroot;
    struct capsa_subid subuid, subgid;
    /* Writable layers and --writable (runtime/overlay.h). */
    struct capsa_layers *layers;
    struct strv env_file_vars; /* --env-file assignments, evaluated once (envfile.c) */
    struct strv env_final; /* KEY=VALUE set last, literally (SHELL of `shell`) */
    mode_t umask;         /* the caller's, for the command (not with --no-umask) */
    /* An instance started or joined (runtime/instance.h), or NULL. */
    struct capsa_instance *instance;
    /* GPUs (runtime/gpu.h): library directories that got libraries
     * (GPU_LIBDIR, GPU_LIB32DIR), and what was found (gpu.c). */
    unsigned gpu_libdirs, gpu_found;
};

/* Open the image and the host paths (called with the caller's identity,
 * in the container's new mount namespace): src/runtime/prepare.c. */
int capsa_container_prepare (struct capsa_container *c, capsa_error_t *err);

/* Assemble the container's root and pivot into it (src/runtime/rootfs.c);
 * SOCK is the child's end of the socket to the monitor (FUSE requests). */
int capsa_container_setup_root (struct capsa_container *c, int sock, capsa_error_t *err);

/* Attach FILEFD (OFFSET, SIZE bytes; 0: to the end) to a free loop device,
 * read-write with RW, autoclear; returns its descriptor, its path in DEV
 * (src/runtime/rootfs.c). */
int capsa_loop_attach (struct capsa_container *c, int filefd, uint64_t offset, uint64_t size, bool rw, char *dev,
                       size_t devlen, capsa_error_t *err);

/* The child, from clone() to exec (src/runtime/child.c). */
noreturn void capsa_container_child (struct capsa_container *c, int sock, pid_t monitor);
/* Its second half, from the root in place to exec: what to run, the final
 * drop, working directory, environment, LSM labels, seccomp, the init and
 * exec.  Also the path of a command joining an instance (instance.c). */
noreturn void capsa_container_command (struct capsa_container *c, int sock);

/* Run FN (ARG) in a forked process that has given up root for good and is
 * the user (setuid mode; in the other modes FN runs here).  FN's error
 * comes back as *err; its return value must be 0 or -1. */
int capsa_run_as_user (struct capsa_container *c, int (*fn) (void *arg, capsa_error_t *err), void *arg,
                       capsa_error_t *err);

/* Start the container and wait for it.  Returns the exit status to pass on
 * (128+N for signal N), or -1 with *err set if it could not start. */
int capsa_container_run (struct capsa_container *c, capsa_error_t *err);

/* Decide c->caps from the mode, capsa.conf, capability.json and the
 * options; warns about refused and unknown names (src/runtime/capspolicy.c). */
int capsa_caps_select (struct capsa_container *c, capsa_error_t *err);

/* --security and the administrator's limits (src/runtime/security.c):
 * checks and compiled filters before the namespaces exist; the limits on
 * the opened image; LSM labels and seccomp filters just before exec. */
int capsa_security_prepare (struct capsa_container *c, capsa_error_t *err);
int capsa_security_check_image (struct capsa_container *c, bool encrypted, capsa_error_t *err);
int capsa_security_apply (struct capsa_container *c, capsa_error_t *err);

/* Environment and /etc files (src/runtime/env.c): c->env and
 * c->env_override from the caller's environment and the options, with
 * Apptainer's precedence; messages for the user go to WARNINGS. */
void capsa_env_build (struct capsa_container *c, struct strv *warnings);
int capsa_env_read_file (struct capsa_container *c, const char *path, capsa_error_t *err);
int capsa_env_read_fd (struct capsa_container *c, int fd, const char *path, capsa_error_t *err);
bool capsa_env_valid_name (const char *s, size_t len);
/* PATH made absolute against CWD and cleaned lexically (owned). */
char *capsa_env_abs_path (const char *path, const char *cwd);
/* The action script (src/runtime/envscript.c): the text for "sh -c", the
 * environment to start that shell with, and the command's environment
 * when the image has no shell. */
char *capsa_env_script (const struct capsa_container *c);
/* Its data: the arguments between $0 and the command (see envscript.c). */
void capsa_env_script_args (const struct capsa_container *c, struct strv *out);
void capsa_env_shell_environ (const struct capsa_container *c, struct strv *out);
void capsa_env_direct (const struct capsa_container *c, struct strv *out);
/* Whether the action script has anything to do that capsa_env_direct
 * cannot: env scripts in the image to source, or override values for the
 * shell to evaluate.  When not, the command is executed directly, which
 * gives the same environment a shell's start-up faster. */
bool capsa_env_needs_shell (const struct capsa_container *c);

/* The init process under --pid (src/runtime/init.c): fork; the child
 * returns (and goes on to exec the command), this process stays PID 1,
 * forwards signals to it, reaps every child and exits with the command's
 * status.  Called after the final drop. */
void capsa_init_start (void);
/* An instance's init (instance start): the same, except that it outlives
 * its command and ends on a signal once the command has ended (a stop);
 * without a command (no %startscript) it only waits for that signal and
 * never returns.  SOCK (the monitor's socket) is closed once the command
 * runs, which tells the monitor the instance is up. */
void capsa_init_start_instance (bool command, int sock);
char *capsa_passwd_content (const struct capsa_container *c, const char *image_passwd);
/* The container's /etc/passwd and /etc/group ("passwd", "group" in
 * FILESFD) from the image's under ROOTFD; run by the process that has
 * given root up (rootfs.c). */
int capsa_etc_generate (struct capsa_container *c, int rootfd, int filesfd, capsa_error_t *err);
char *capsa_group_content (const struct capsa_container *c, const char *image_group);

#endif

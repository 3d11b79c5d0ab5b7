/* Command-line options of the container actions (exec, run, shell).
 *
 * Parsed by the starter itself: it never trusts a pre-parsed form from the
 * front end.  Everything here is a plain value; nothing is opened or
 * checked against the file system yet. */
#ifndef CAPSA_OPTIONS_H
#define CAPSA_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/error.h"
#include "lib/utils.h"

/* ACTION_START: an instance's %startscript (instance start). */
enum capsa_action { ACTION_EXEC, ACTION_RUN, ACTION_SHELL, ACTION_START };

struct capsa_bind {
    char *src;
    char *dst;
    bool ro;
};

struct capsa_overlay_opt {
    char *path;
    bool ro;
};

struct capsa_opts {
    enum capsa_action action;
    char *image;
    char **cmd;   /* borrowed from argv; NULL-terminated; may be empty */
    int ncmd;

    struct capsa_bind *binds;
    size_t nbinds;

    bool no_home;
    char *home_src, *home_dst; /* --home SRC[:DST] */
    char *pwd;
    bool contain, cleanenv;
    struct strv env; /* KEY=VALUE from --env, in order */
    struct strv env_files;
    bool pid_ns, ipc_ns, uts_ns, net_ns, userns;
    char *hostname;
    char *network;
    char *shell;

    /* Capabilities (comma-separated lists, accumulated over repeats). */
    char *add_caps, *drop_caps;
    bool keep_privs, no_privs, allow_setuid;

    /* --security values. */
    struct strv seccomp_paths;   /* seccomp:PATH (compiled by the front end) */
    int seccomp_fds[8];          /* --seccomp-fd=N: compiled programs */
    int key_fd;                  /* --key-fd=N: volume key of an encrypted image, -1 */
    size_t nseccomp_fds;
    long target_uid;             /* uid:N, -1 when not given */
    gid_t target_gids[32];       /* gid:N[:N...] */
    int ntarget_gids;
    char *selinux, *apparmor;

    /* Fakeroot and writable containers (docs/writable.md). */
    bool fakeroot;               /* --fakeroot: root in a user namespace */
    bool writable;               /* --writable: the sandbox itself, or a SIF's overlay partition */
    bool writable_tmpfs;         /* --writable-tmpfs */
    struct capsa_overlay_opt *overlays; /* --overlay PATH[:ro], in command-line order */
    size_t noverlays;
    /* Issue 14 (src/runtime/bindspec.c, init.c, envscript.c). */
    bool no_init;                /* --no-init: no init process as PID 1 under --pid */
    bool no_umask;               /* --no-umask: umask 0022 instead of the caller's */
    bool no_eval;                /* --no-eval: override values are not evaluated by the shell */
    unsigned no_mount;           /* --no-mount: NO_MOUNT_* bits */
    bool skip_all_bind_paths;    /* --no-mount bind-paths */
    struct strv skip_bind_paths; /* --no-mount /DEST: 'bind path' entries not bound */
    struct strv warnings;        /* for the starter to print (unknown --no-mount names) */
    /* Instances (src/runtime/instance.h): start (or run) detached as the
     * instance NAME; the pid of its init written to pid_file. */
    char *instance;
    char *pid_file;
    /* GPUs (issue 18, runtime/gpu.h): --nv, --rocm, --no-nv, --no-rocm, and
     * the host files the front end found for them, "KIND:PATH" (--gpu-file,
     * each checked again by the starter against the administrator's lists). */
    bool nv, rocm, no_nv, no_rocm;
    struct strv gpu_files;
};

enum {
    NO_MOUNT_PROC = 1 << 0,
    NO_MOUNT_SYS = 1 << 1,
    NO_MOUNT_DEV = 1 << 2,
    NO_MOUNT_DEVPTS = 1 << 3,
    NO_MOUNT_TMP = 1 << 4,
    NO_MOUNT_HOSTFS = 1 << 5,
    NO_MOUNT_CWD = 1 << 6,
};

/* Parse one --security value into o (split on the first colon only). */
int capsa_opts_add_security (struct capsa_opts *o, const char *value, capsa_error_t *err);

int capsa_action_from_name (const char *name, enum capsa_action *out);

/* argv[0] is the action name ("exec", "run", "shell"). */
int capsa_opts_parse (struct capsa_opts *o, int argc, char **argv, capsa_error_t *err);
void capsa_opts_free (struct capsa_opts *o);

/* Parse one --overlay value ("PATH[:ro|:rw]") into o->overlays. */
int capsa_opts_add_overlay (struct capsa_opts *o, const char *spec, capsa_error_t *err);

/* Parse one --bind value ("src[:dst[:opts]][,...]", Apptainer's syntax:
 * opts ro or rw, '\,' and '\:' escape) into o->binds; image binds
 * (image-src=, id=) are refused.  src/runtime/bindspec.c. */
int capsa_opts_add_binds (struct capsa_opts *o, const char *spec, capsa_error_t *err);

/* Parse one --mount value (Docker's CSV syntax, one mount per line:
 * "type=bind,source=SRC,destination=DST[,ro]") into o->binds. */
int capsa_opts_add_mount (struct capsa_opts *o, const char *spec, capsa_error_t *err);

/* Parse one --no-mount value (comma-separated: proc, sys, dev, devpts,
 * home, tmp, hostfs, cwd, bind-paths or an absolute 'bind path'
 * destination); unknown names are warnings, as in Apptainer. */
void capsa_opts_add_no_mount (struct capsa_opts *o, const char *list);

#endif

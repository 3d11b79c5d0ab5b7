/* capsa.conf: the administrator's configuration.
 *
 * Format: one "key = value" per line, '#' starts a comment line.  Keys are
 * Apptainer's where the meaning is the same.  Every value is validated; a bad
 * one is an error naming FILE:LINE, the value and the allowed values. */
#ifndef CAPSA_CONF_H
#define CAPSA_CONF_H

#include <stdbool.h>

#include "lib/error.h"
#include "lib/utils.h"

enum capsa_root_caps { ROOT_CAPS_FULL, ROOT_CAPS_FILE, ROOT_CAPS_NO };
enum capsa_tristate { TRI_NO = 0, TRI_YES = 1, TRI_IFLIMITED = 2 };
enum capsa_mount_dev { MOUNT_DEV_NO = 0, MOUNT_DEV_YES = 1, MOUNT_DEV_MINIMAL = 2 };
/* 'enable overlay' (docs/writable.md): NO refuses the writable layers
 * (--overlay, --writable-tmpfs, a SIF's overlay partition); YES and TRY
 * allow them (capsa's root is always an overlay, so there is nothing to
 * fall back to); DRIVER also uses fuse-overlayfs, not the kernel's overlay,
 * for the root of a container in a user namespace. */
enum capsa_enable_overlay { OVERLAY_NO = 0, OVERLAY_YES = 1, OVERLAY_TRY = 2, OVERLAY_DRIVER = 3 };
enum capsa_memfs { MEMFS_TMPFS = 0, MEMFS_RAMFS = 1 };

struct capsa_conf {
    bool allow_setuid;
    bool allow_pid_ns;
    bool allow_ipc_ns;
    bool allow_uts_ns;
    bool allow_net_ns;
    bool allow_user_ns;
    bool mount_proc;
    bool mount_sys;
    enum capsa_mount_dev mount_dev;
    bool mount_home;
    bool mount_tmp;
    bool user_bind_control;
    bool config_passwd;
    bool config_group;
    bool config_resolv_conf;
    enum capsa_root_caps root_default_caps;
    long max_loop_devices;
    /* Kernel mounts of user images in setuid mode (DESIGN 2). */
    enum capsa_tristate setuid_mount_squashfs;
    enum capsa_tristate setuid_mount_encrypted;
    struct strv bind_paths; /* "src[:dst]" entries, in file order */

    /* Which images a user may run in setuid mode (empty: no limit). */
    struct strv limit_owners, limit_groups, limit_paths;
    bool allow_container_sif, allow_container_encrypted, allow_container_squashfs, allow_container_dir;
    char *seccomp_profile; /* forced on every container, or NULL */

    /* Writable containers (docs/writable.md). */
    enum capsa_enable_overlay enable_overlay;
    long sessiondir_max_size;     /* MiB: the in-memory layer of --writable-tmpfs */
    bool setuid_mount_extfs;      /* kernel ext3 mounts of a user's overlay images */
    bool allow_container_extfs;   /* may setuid users use ext3 overlay images at all */
    /* Apptainer directives (issue 14): see docs/capsa.conf.5. */
    bool mount_devpts;     /* a new devpts in the minimal /dev */
    bool mount_hostfs;     /* every mount point of the host's / bound */
    bool mount_slave;      /* host mounts propagate into the container */
    enum capsa_memfs memory_fs; /* file system of capsa's in-memory mounts */
    /* GPUs (issue 18, runtime/gpu.h): --nv and --rocm without being asked
     * (--no-nv, --no-rocm turn them off), --nv through nvidia-container-cli. */
    bool always_use_nv, use_nvidia_container_cli, always_use_rocm;
    /* Users' image files (FUSE): capsa's image server (true) or
     * squashfuse_ll; how long a server stays after its last container. */
    bool image_server;
    long image_server_linger; /* seconds; 0: ends with its last container */
    long image_server_cache;  /* MiB of decompressed data a server keeps */
    /* Directives accepted but not applied (Apptainer features capsa does
     * not have), one message each, for the starter to print as WARNING. */
    struct strv warnings;
};

/* The file system type name of c->memory_fs ("tmpfs" or "ramfs"). */
const char *capsa_conf_memfs (const struct capsa_conf *c);

/* Does any 'limit container ...' restrict which images may run? */
bool capsa_conf_limited (const struct capsa_conf *c);

void capsa_conf_init (struct capsa_conf *c);
void capsa_conf_free (struct capsa_conf *c);

/* Parse TEXT (NUL-terminated); NAME is used in messages ("capsa.conf"). */
int capsa_conf_parse (struct capsa_conf *c, const char *name, const char *text, capsa_error_t *err);

/* Open PATH without following symlinks and parse it.  With strict, the file
 * must be a regular file owned by root and not writable by group or others
 * (the setuid starter's rule). */
int capsa_conf_load (struct capsa_conf *c, const char *path, bool strict, capsa_error_t *err);

/* Open a root-owned configuration file for reading with the checks above. */
int capsa_open_trusted_file (const char *path, bool strict, capsa_error_t *err);

#endif

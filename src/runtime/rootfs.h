/* Pieces of a container's root shared by the runtime (rootfs.c) and the
 * build (src/imgbuild/proc.c): /proc, /sys, a minimal /dev and the pivot.
 * Each takes the new root ROOTFD and resolves its target inside it; with
 * create, missing mount points are made (only for trees that are capsa's
 * own: a build's new root, the container's private layer), otherwise they
 * must exist (capsa_open_mountpoint). */
#ifndef CAPSA_ROOTFS_H
#define CAPSA_ROOTFS_H

#include <stdbool.h>

#include "lib/error.h"

/* A new procfs on /proc with the host's hidepid=, subset= and gid=
 * options (a fresh procfs must not show more than the host's). */
int capsa_rootfs_mount_proc (int rootfd, bool create, capsa_error_t *err);
/* The host's /proc bound recursively (read-only flags as given). */
int capsa_rootfs_bind_proc (int rootfd, bool create, capsa_error_t *err);

/* sysfs on /sys (new, read-only), or the host's bound read-only where a
 * new one cannot be mounted (a user namespace without its own network
 * namespace). */
int capsa_rootfs_mount_sys (int rootfd, bool fresh, bool create, capsa_error_t *err);

enum {
    DEV_SHM_HOST = 1 << 0,     /* the host's /dev/shm (MPI shared memory) */
    DEV_SHM_PRIVATE = 1 << 1,  /* a private tmpfs on /dev/shm */
    DEV_OPTIONAL = 1 << 2,     /* missing host nodes and devpts/shm failures are not errors */
    DEV_CREATE = 1 << 3,       /* create /dev itself when missing */
    DEV_WRITABLE = 1 << 4,     /* leave the tmpfs writable (a build's package scripts) */
    DEV_NO_DEVPTS = 1 << 5,    /* no devpts instance ('mount devpts = no') */
    DEV_RAMFS = 1 << 6,        /* ramfs instead of tmpfs ('memory fs type = ramfs') */
};

/* A minimal /dev: a tmpfs (nosuid, nodev, noexec) holding the host's null,
 * zero, full, random, urandom and tty bound in (the only nodes usable
 * inside), the usual symlinks, a new devpts instance (nosuid, noexec) and
 * /dev/shm; the tmpfs is made read-only once populated (unless
 * DEV_WRITABLE).  SIZE e.g. "1m".  With DEVFD_OUT, it is left writable:
 * *DEVFD_OUT gets a directory descriptor of it to add to and the mount's
 * descriptor is returned (for the caller's read-only remount); else 0. */
int capsa_rootfs_setup_dev (int rootfd, unsigned flags, const char *size, int *devfd_out, capsa_error_t *err);

/* Make ROOTFD the process's root: pivot_root, detach the old one, cd /. */
int capsa_rootfs_pivot (int rootfd, capsa_error_t *err);

#endif

/* Mounting through file descriptors.
 *
 * Every target inside the container's root is resolved with
 * openat2(RESOLVE_IN_ROOT) relative to a descriptor of that root (or, on
 * kernels without openat2, a component-by-component walk that refuses every
 * symlink), so a symlink in the image (/tmp -> /etc, say) is followed inside
 * the image and never to the host.  The resulting O_PATH descriptor is then
 * the mount target, through the new mount API or /proc/self/fd/N, which
 * names exactly that object.
 *
 * The mount calls here are the only privileged steps of a container's child:
 * each is bracketed by capsa_privs_mount_begin/end (src/runtime/privs.h), so
 * root's identity is held for that one syscall.  Everything else (resolving
 * and opening the targets) happens with the caller's identity of the moment,
 * which in the child is the user's. */
#ifndef CAPSA_MOUNT_H
#define CAPSA_MOUNT_H

#include <stdbool.h>
#include <sys/types.h>

#include "lib/error.h"

enum capsa_node { NODE_DIR, NODE_FILE };

/* O_PATH descriptor of PATH inside the tree ROOTFD, or -1 (errno set, no
 * error object: callers decide whether a missing path matters).  FLAGS may
 * hold O_DIRECTORY and O_NOFOLLOW (the last component is not followed: a
 * symlink there is opened as itself). */
int capsa_open_in_root (int rootfd, const char *path, int flags);

/* Like capsa_open_in_root, creating missing components as directories and
 * the last one as KIND.  Returns an O_PATH descriptor.  Only for trees that
 * are capsa's own (the container's private layer, a build's new root). */
int capsa_make_in_root (int rootfd, const char *path, enum capsa_node kind, capsa_error_t *err);

/* An existing mount point PATH inside ROOTFD, of kind KIND, whose last
 * component is not a symlink; never creates anything.  O_PATH descriptor,
 * or -1 with "mount point PATH does not exist in the container" and the
 * like. */
int capsa_open_mountpoint (int rootfd, const char *path, enum capsa_node kind, capsa_error_t *err);

/* Mount SRC (device, fs name or NULL) of FSTYPE on the object TARGETFD. */
int capsa_mount_fd (const char *src, int targetfd, const char *fstype, unsigned long flags, const char *data,
                    const char *what, capsa_error_t *err);

/* Bind the object SRCFD onto TARGETFD (recursively with rec), then apply
 * the per-mount flags (MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC), to every
 * mount of the tree with rec. */
int capsa_bind_fd (int srcfd, int targetfd, bool rec, unsigned long flags, const char *what, capsa_error_t *err);

/* Add the per-mount flags FLAGS to the mount whose root is TARGETFD
 * (non-recursive; flags it already has are kept). */
int capsa_remount_fd (int targetfd, unsigned long flags, const char *what, capsa_error_t *err);

/* A new file system FSTYPE ("tmpfs", "ramfs") with the options DATA
 * ("mode=0755,size=1m": key=value or bare flags, comma-separated) and the
 * per-mount FLAGS (MS_NOSUID...), made detached (fsopen/fsmount): returns
 * the descriptor of its root, attached nowhere.  Whatever is made in it
 * through that descriptor is made in capsa's own file system, never by a
 * path that anything else could change. */
int capsa_fs_new (const char *fstype, const char *data, unsigned long flags, const char *what, capsa_error_t *err);

/* Attach the detached mount MNTFD (from capsa_fs_new) on TARGETFD; MNTFD
 * then names the attached mount's root. */
int capsa_fs_attach (int mntfd, int targetfd, const char *what, capsa_error_t *err);

/* "/proc/self/fd/N" in BUF (at least 32 bytes). */
const char *capsa_fd_path (int fd, char *buf, size_t len);

#endif

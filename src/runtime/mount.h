/* Mounting through file descriptors.
 *
 * Every target inside the container's root is resolved with
 * openat2(RESOLVE_IN_ROOT) relative to a descriptor of that root, so a
 * symlink in the image (/tmp -> /etc, say) is followed inside the image and
 * never to the host.  The resulting O_PATH descriptor is then used as the
 * mount target through /proc/self/fd/N, which names exactly that object. */
#ifndef CAPSA_MOUNT_H
#define CAPSA_MOUNT_H

#include <stdbool.h>
#include <sys/types.h>

#include "lib/error.h"

enum capsa_node { NODE_DIR, NODE_FILE };

/* O_PATH descriptor of PATH inside the tree ROOTFD, or -1 (errno set, no
 * error object: callers decide whether a missing path matters). */
int capsa_open_in_root (int rootfd, const char *path, int flags);

/* Like capsa_open_in_root, creating missing components as directories and
 * the last one as KIND.  Returns an O_PATH descriptor. */
int capsa_make_in_root (int rootfd, const char *path, enum capsa_node kind, capsa_error_t *err);

/* Mount SRC (device, fs name or NULL) of FSTYPE on the object TARGETFD. */
int capsa_mount_fd (const char *src, int targetfd, const char *fstype, unsigned long flags, const char *data,
                    const char *what, capsa_error_t *err);

/* Bind the object SRCFD onto TARGETFD (recursively with rec), then apply
 * the per-mount flags (MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC). */
int capsa_bind_fd (int srcfd, int targetfd, bool rec, unsigned long flags, const char *what, capsa_error_t *err);

/* Change the per-mount flags of the mount at TARGETFD. */
int capsa_remount_fd (int targetfd, unsigned long flags, const char *what, capsa_error_t *err);

/* "/proc/self/fd/N" in BUF (at least 32 bytes). */
const char *capsa_fd_path (int fd, char *buf, size_t len);

#endif

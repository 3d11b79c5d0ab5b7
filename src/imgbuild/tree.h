/* File-tree helpers for building images.
 *
 * Paths "inside the root" are resolved relative to a descriptor of the
 * tree with openat2(RESOLVE_IN_ROOT) (src/runtime/mount.h): a symlink in
 * an image (say /.singularity.d -> /etc) is followed inside the image,
 * never out to the host, even though the build runs as root.  The last
 * component is never followed when capsa replaces a file: a symlink there
 * is removed and a regular file written in its place.
 *
 * Host paths (a %files source, a tree to remove) are the caller's own. */
#ifndef CAPSA_BUILD_TREE_H
#define CAPSA_BUILD_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/error.h"

/* A real (not O_PATH) directory descriptor of PATH inside the tree at
 * ROOTFD; missing directories are created (0755) when create is set. */
int tree_open_dir (int rootfd, const char *path, bool create, capsa_error_t *err);

/* What PATH inside the root is, without following its last component:
 * S_IFREG, S_IFDIR, S_IFLNK... or 0 when it does not exist (or cannot be
 * reached). */
mode_t tree_type (int rootfd, const char *path);

/* Write DATA as the regular file PATH (parents created), mode MODE.  With
 * append, add to an existing regular file (following symlinks inside the
 * root), else replace whatever is there. */
int tree_write (int rootfd, const char *path, const char *data, size_t len, mode_t mode, bool append,
                capsa_error_t *err);

/* Create directory PATH (and parents) unless something exists there. */
int tree_mkdir (int rootfd, const char *path, mode_t mode, capsa_error_t *err);

/* Create the symlink PATH -> TARGET unless something exists there. */
int tree_symlink (int rootfd, const char *path, const char *target, capsa_error_t *err);

/* Read the regular file PATH (symlinks followed inside the root) into a new
 * NUL-terminated buffer; at most max bytes.  ENOENT (with *err left NULL
 * and -1 returned) when it is missing or not a regular file. */
int tree_read (int rootfd, const char *path, size_t max, char **out, size_t *len, capsa_error_t *err);

/* Rename FROM to TO, both inside the root (TO's parent must exist). */
int tree_rename (int rootfd, const char *from, const char *to, capsa_error_t *err);

/* Copy the host path SRC into the root as `cp -fLr SRC DST` does: symlinks
 * in SRC are followed; DST ending in '/' or naming a directory receives
 * SRC under its own name.  Missing parents of DST are created. */
int tree_copy_in (int rootfd, const char *src, const char *dst, capsa_error_t *err);

/* Remove the host path PATH and everything below it (like rm -rf), never
 * crossing into another file system; directories without write or search
 * permission are opened up first when the caller owns them. */
int tree_remove (const char *path, capsa_error_t *err);

#endif

/* Writable containers: the layers of the container's root overlay asked
 * for by --writable-tmpfs, --overlay PATH[:ro] and --writable
 * (docs/writable.md).  Without any of these the root is rootfs.c's
 * read-only overlay and nothing here runs.
 *
 *   --writable-tmpfs  the upper layer is a tmpfs of 'sessiondir max size'
 *                     MiB, capsa's own, gone after the run.
 *   --overlay DIR     DIR/upper and DIR/work, the user's directory (made
 *                     when missing); with :ro, DIR/upper (or DIR) is a
 *                     lower layer.  Root, or a user namespace (--userns,
 *                     --fakeroot): in setuid mode overlayfs would copy
 *                     files into the user's directory with root's rights.
 *   --overlay IMG     an ext3 image (capsa overlay create), laid out the
 *                     same way; or a SIF's ext3 overlay partition.
 *   --writable        a directory image is itself the root, read-write; a
 *                     SIF's ext3 overlay partition is the upper layer.
 *
 * Who parses an ext3 image: the kernel for root, and for a setuid user
 * only where 'allow setuid-mount extfs = yes' (CVE-2023-30549 was this
 * parser fed with a user's bytes); in a user namespace Debian's fuse2fs,
 * run as the user by the FUSE broker, and then the root overlay itself is
 * fuse-overlayfs (the kernel's overlayfs cannot write to fuse2fs).  A
 * setuid user without the administrator's consent is told to use
 * --fakeroot or --userns.
 *
 * Layers in the stage (rootfs.c): layers/N (each --overlay and the SIF
 * partition), wt/ (the tmpfs), view/ (a read-only overlay of the lower
 * layers and the writable layer's contents, in which missing mount points
 * are looked for; unmounted before the root is mounted).  Mount points are
 * made in capsa's private layer only: the upper layer with
 * --writable-tmpfs, else upper/, which becomes the topmost lower layer
 * under a persistent upper layer.  The kernel is given each user layer as
 * /proc/self/fd/N of a directory opened as the user (symbolic links
 * refused), never as a path it would resolve with root's rights. */
#ifndef CAPSA_OVERLAY_H
#define CAPSA_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

struct capsa_container;

/* Is there an ext3 file system (as Apptainer accepts one for overlays) at
 * OFFSET of FD: the magic, a journal, no incompatible feature but
 * filetype, recover and meta_bg, no read-only-compatible feature but
 * sparse_super, large_file and btree_dir?  0, or -1 with *err (may be
 * NULL) saying what is wrong. */
int capsa_ext3_probe (int fd, uint64_t offset, capsa_error_t *err);

enum capsa_layer_kind { LAYER_DIR, LAYER_EXT3 };

struct capsa_layer {
    enum capsa_layer_kind kind;
    char *path;            /* as given, for messages */
    bool ro;
    int fd;                /* DIR: O_PATH directory; EXT3: the file (O_RDWR, O_RDONLY with :ro) */
    uint64_t offset, size; /* EXT3: where the file system is in the file */
    bool fuse;             /* EXT3 served by fuse2fs */
    int upperfd, workfd;   /* once mounted: its upper (or root) and work directories, O_PATH */
};

struct capsa_layers {
    struct capsa_layer *v; /* command-line order: the last is the topmost */
    size_t n;
    int rw;                /* index of the persistent writable layer, -1: none */
    bool tmpfs;            /* --writable-tmpfs */
    bool sandbox;          /* --writable on a directory image */
    bool fuse_root;        /* the root overlay is served by fuse-overlayfs */
    bool view;             /* stage/view is mounted */
    const char *viewdir, *intodir; /* where mount points were looked for and made */
};

/* Child, as the user, right after capsa_container_prepare: open and check
 * every layer asked for (c->layers stays NULL when none is); refuse what
 * the mode or capsa.conf does not allow; with --writable on a directory,
 * drop the mounts whose mount point the image lacks (a WARNING each). */
int capsa_layers_prepare (struct capsa_container *c, capsa_error_t *err);

/* Is the container's root writable (no read-only remount, no generated
 * /etc/passwd for root)? */
bool capsa_layers_writable (const struct capsa_container *c);
/* --writable on a directory image: bound read-write, no overlay. */
bool capsa_layers_sandbox (const struct capsa_container *c);

/* Child, after the image is mounted on stage/image: mount the layers and
 * the view; *view and *into are the stage directories in which
 * premake_targets looks for and makes mount points. */
int capsa_layers_mount (struct capsa_container *c, int sock, int stagefd, const char **view, const char **into,
                        capsa_error_t *err);

/* Child, after the mount points are made: the root on stage/root. */
int capsa_layers_mount_root (struct capsa_container *c, int sock, int stagefd, unsigned long rootflags,
                             capsa_error_t *err);

#endif

/* Squashfs and SIF assembly for builds: mksquashfs of a root, unsquashfs
 * of an image into a root, and the SIF file that carries the result
 * (definition file, inspect-metadata.json, primary system partition). */
#ifndef CAPSA_BUILD_ASSEMBLE_H
#define CAPSA_BUILD_ASSEMBLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

/* How helper programs show progress: on a terminal they draw their own
 * bars; otherwise they are quiet and their output is kept for errors. */
struct assemble_io {
    bool terminal;
    void (*line) (const char *line, void *data); /* NULL: inherit */
    void *data;
};

struct squash_opts {
    const char *src;       /* directory */
    const char *dest;      /* new file */
    const char *comp;      /* compressor, NULL: gzip */
    bool all_root;         /* every file owned by root */
    bool fakeroot;         /* run in the fakeroot namespace: its ids are kept */
    const char *cwd;       /* where pseudo_file and exclude_file are, NULL: unchanged */
    const char *pseudo_file;
    const char *exclude_file;
};

int assemble_mksquashfs (const struct squash_opts *o, const struct assemble_io *io, capsa_error_t *err);

/* Extract the squashfs at OFFSET in IMAGE into the new directory DEST.
 * A non-root caller gets what it may create (no device nodes, no foreign
 * owners, user xattrs only): partial extraction is then a warning, not
 * an error (*partial set). */
int assemble_unsquashfs (const char *image, uint64_t offset, const char *dest, const struct assemble_io *io,
                         bool *partial, capsa_error_t *err);

struct capsa_keyspec;

/* Write the SIF at PATH: a definition-file object, the JSON.Generic
 * "inspect-metadata.json" object, then the squashfs read from SQUASHFS_FD
 * (from its start) as the primary system partition, all in group 1, for
 * the host architecture.  With KEY, the partition is encrypted (fs type 5,
 * LUKS2; src/crypt) on its way in. */
int assemble_sif (const char *path, const char *deffile, size_t deflen, const char *json, int squashfs_fd,
                  const struct capsa_keyspec *key, capsa_error_t *err);

#endif

/* capsa build: a SIF file or a sandbox directory from a directory, a SIF
 * or squashfs image, or a definition file.  The library side of
 * src/cmd/build.c; docs/build.md describes the behaviour.
 *
 * The build happens in a private directory created beside OUT
 * (".capsa-build-NAME.XXXXXX", mode 0700): the root being built, the
 * squashfs and the SIF being assembled.  OUT appears at the end by one
 * rename (an exchange then removal of the old one with --force), so it
 * is whole or absent; on any failure, and on SIGINT, SIGTERM or SIGHUP
 * (which stop the running step at once), the private directory is
 * removed and nothing is left.  Nothing is ever mounted in capsa's own
 * mount namespace (see proc.h).
 *
 * Library rules apply: nothing here prints; progress and warnings go
 * through struct capsa_build_ui, errors through capsa_error_t. */
#ifndef CAPSA_BUILD_BUILD_H
#define CAPSA_BUILD_BUILD_H

#include <stdbool.h>

#include "lib/error.h"

/* Bumped whenever what a build produces changes (layout, metadata, SIF
 * objects): the test suite keys its cached images on it. */
#define CAPSA_BUILD_CODE_VERSION "1"

struct capsa_build_ui {
    void (*info) (const char *msg, void *data);
    void (*warn) (const char *msg, void *data);
    /* A line of a long step's output (debootstrap), for a one-line
     * progress display; line NULL: the step ended. */
    void (*progress) (const char *step, const char *line, void *data);
    void *data;
};

struct capsa_keyspec; /* src/crypt/crypt.h */
struct capsa_oci_opts; /* src/oci/oci.h */

struct capsa_build_opts {
    const char *out;    /* the SIF file or sandbox directory to create */
    const char *source; /* directory, SIF, squashfs or definition file */
    bool sandbox;       /* OUT is a directory */
    bool force;         /* replace an existing OUT; recipe labels win */
    bool fakeroot;      /* run the scripts as root in a user namespace */
    bool notest;        /* skip %test */
    const char *comp;   /* squashfs compressor (NULL: gzip) */
    bool terminal;      /* stderr is a terminal: helpers draw progress bars */
    const char *debootstrap_cache; /* debootstrap --cache-dir, or NULL */
    const char *version;           /* capsa's version, for the labels */
    /* Encrypt the root file system with this key (passphrase or PEM public
     * key; borrowed), or NULL.  The squashfs is then made in memory (a
     * memfd) and encrypted on its way into the SIF: no plaintext squashfs
     * is written to a file (the root being built is, as with Apptainer). */
    const struct capsa_keyspec *key;
    /* docker://, docker-archive:, oci-archive: sources and "Bootstrap:
     * docker|docker-archive|oci-archive" recipes (src/oci/oci.h): registry
     * options, borrowed; NULL for the defaults. */
    const struct capsa_oci_opts *oci;
    struct capsa_build_ui ui;
};

int capsa_build (const struct capsa_build_opts *o, capsa_error_t *err);

#endif

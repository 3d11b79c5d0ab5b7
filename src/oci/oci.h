/* Images from OCI registries and archives: the public surface of src/oci.
 *
 * What lives here (one file each, see HACKING.md):
 *   ref.c       image references ("oras://HOST/REPO:TAG", "docker://...")
 *   registry.c  the distribution-API client (libcurl; bearer and basic auth)
 *   creds.c     the credentials file ($HOME/.capsa/registry.json, 0600)
 *   cache.c     the per-user cache of blobs and SIFs, keyed by digest
 *   oras.c      SIF images as ORAS artifacts: push, pull
 *   rootfs.c    docker://, docker-archive:, oci-archive: -> a root directory
 *   extract.c   applying one layer tarball to a root, safely
 *   manifest.c, authhdr.c, digest.c   parsers and hashes (private: oci_private.h)
 *
 * Trust: everything a registry or an archive sends is hostile.  Manifests
 * and configs are size-limited and parsed with depth limits (fuzzed:
 * tests/fuzz/fuzz_manifest.c, fuzz_authhdr.c); every blob is checked
 * against its sha256 digest before anything keeps or uses it; layer
 * extraction never writes outside the root (extract.c says how).  All of
 * it runs in the unprivileged front end, as the user.
 *
 * Errors follow src/lib/error.h: negative return, *err filled; nothing here
 * prints or exits.  Messages for the user (progress, notices) go through
 * the callbacks in struct capsa_oci_opts.  Strings returned through out
 * parameters are new allocations owned by the caller unless said otherwise. */
#ifndef CAPSA_OCI_H
#define CAPSA_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"
#include "lib/utils.h"

/* ---- Options shared by every registry operation ----------------------- */

enum capsa_oci_notice { CAPSA_OCI_INFO, CAPSA_OCI_VERBOSE, CAPSA_OCI_WARNING };

struct capsa_oci_opts {
    bool no_https;         /* plain HTTP (for a registry on a private address) */
    const char *authfile;  /* credentials file; NULL: capsa_oci_default_authfile() */
    const char *username;  /* explicit credentials; win over the file (both or neither) */
    const char *password;
    const char *arch;      /* Go architecture for multi-arch indexes; NULL: the host's */
    const char *cachedir;  /* NULL: capsa_oci_default_cachedir() */
    bool no_cache;         /* do not keep downloaded blobs (temporary files instead) */
    const char *tmpdir;    /* for no_cache and archive staging; NULL: $TMPDIR or /tmp */
    /* Transfer progress: called often while a blob moves; total 0 when
     * unknown; done == total once at the end.  May be NULL. */
    void (*progress) (const char *what, uint64_t done, uint64_t total, void *data);
    /* Things the user should know ("using the cached image ..."). May be NULL. */
    void (*notice) (enum capsa_oci_notice level, const char *msg, void *data);
    void *data;
};

/* $HOME/.capsa/registry.json (HOME, else the passwd entry). */
char *capsa_oci_default_authfile (void);
/* $CAPSA_CACHEDIR, else $APPTAINER_CACHEDIR/capsa (or $SINGULARITY_CACHEDIR/capsa),
 * else $HOME/.capsa/cache. */
char *capsa_oci_default_cachedir (void);

/* ---- References --------------------------------------------------------- */

struct capsa_oci_ref {
    char *registry;   /* "127.0.0.1:5000", "docker.io" */
    char *repository; /* "test/bb", "library/alpine" */
    char *tag;        /* "1"; NULL when pinned by digest */
    char *digest;     /* "sha256:<64 hex>" or NULL */
};

/* Parse "HOST[:PORT]/REPO[:TAG][@DIGEST]" (no transport prefix).  As in
 * Docker, a first component without '.' or ':' that is not "localhost"
 * is part of the repository on docker.io, where a one-component name gets
 * "library/"; the tag defaults to "latest". */
int capsa_oci_ref_parse (const char *s, struct capsa_oci_ref *out, capsa_error_t *err);
void capsa_oci_ref_free (struct capsa_oci_ref *r);
/* "HOST/REPO:TAG" or "HOST/REPO@DIGEST" (new string). */
char *capsa_oci_ref_string (const struct capsa_oci_ref *r);
/* True when s starts with "oras://". */
bool capsa_oras_is_uri (const char *s);

/* ---- Credentials -------------------------------------------------------- */

/* The credentials file is JSON as Docker and Podman write it:
 * {"auths":{"HOST":{"auth":"base64(user:password)"}}}, mode 0600, in a
 * directory of the user's (created 0700).  Updates are locked and atomic.
 * A file readable by others is refused with a message naming it.
 * Lookups try HOST, then Docker Hub's historic names for docker.io. */
int capsa_creds_get (const char *authfile, const char *host, char **user, char **password, bool *found,
                     capsa_error_t *err);
int capsa_creds_set (const char *authfile, const char *host, const char *user, const char *password,
                     capsa_error_t *err);
int capsa_creds_remove (const char *authfile, const char *host, bool *found, capsa_error_t *err);
/* Hosts with credentials, with their user names ("HOST\tUSER"). */
int capsa_creds_list (const char *authfile, struct strv *out, capsa_error_t *err);

/* Check credentials against HOST ("GET /v2/" with the authentication the
 * registry asks for).  0: accepted; -1 with EACCES: refused. */
int capsa_registry_check_login (const char *host, const char *user, const char *password,
                                const struct capsa_oci_opts *o, capsa_error_t *err);

/* ---- ORAS: SIF images as OCI artifacts ------------------------------------
 * Manifest: an OCI image manifest whose config is the empty JSON "{}" of
 * media type application/vnd.sylabs.sif.config.v1+json and whose single
 * layer is the SIF, media type application/vnd.sylabs.sif.layer.v1.sif,
 * annotated with org.opencontainers.image.title (the file name), as
 * Apptainer and SingularityCE push it.  Pulls also accept the older
 * "appliciation/vnd.sylabs.sif.layer.tar" layers and multi-arch indexes. */

#define CAPSA_SIF_CONFIG_MEDIATYPE "application/vnd.sylabs.sif.config.v1+json"
#define CAPSA_SIF_LAYER_MEDIATYPE "application/vnd.sylabs.sif.layer.v1.sif"
#define CAPSA_SIF_LAYER_MEDIATYPE_PROTO "appliciation/vnd.sylabs.sif.layer.tar"

/* Push the SIF file at PATH to URI ("oras://HOST/REPO:TAG").  *digest_out
 * (may be NULL) receives the manifest digest. */
int capsa_oras_push (const char *path, const char *uri, const struct capsa_oci_opts *o, char **digest_out,
                     capsa_error_t *err);

/* Make sure the SIF of URI is in the cache and return its path there.
 * *downloaded (may be NULL) tells whether it had to be fetched.  When the
 * registry cannot be reached and URI was pulled before, the cached image
 * is used and a warning goes through o->notice. */
int capsa_oras_cached (const char *uri, const struct capsa_oci_opts *o, char **path_out, bool *downloaded,
                       capsa_error_t *err);

/* Pull URI into the file OUT (through the cache unless o->no_cache).  OUT
 * is replaced atomically; it must not exist unless force. */
int capsa_oras_pull (const char *uri, const char *out, bool force, const struct capsa_oci_opts *o,
                     capsa_error_t *err);

/* "bb_1.sif" for oras://host/test/bb:1 (new string). */
char *capsa_oras_default_name (const char *uri);

/* ---- The cache -------------------------------------------------------------
 * Layout under the cache directory (0700, the user's own):
 *   oras/sha256/HEX   pulled SIF images, named by their layer digest
 *   blob/sha256/HEX   layers and configs of docker:// images
 *   refs/oras/HASH    "REF\nDIGEST\n": which digest a reference had last
 * Entries are written to a temporary file, verified, and renamed into
 * place under a per-digest lock, so concurrent pulls share one download
 * and nobody sees a partial file. */

struct capsa_cache_entry {
    char *kind;   /* "oras" or "blob" */
    char *digest; /* "sha256:..." */
    char *path;
    char *ref;    /* the last reference pulled as this digest, or NULL */
    uint64_t size;
    int64_t mtime; /* last use */
};

int capsa_cache_list (const char *cachedir, struct capsa_cache_entry **out, size_t *n, capsa_error_t *err);
/* Make sure the entry KIND/KEY (KEY "sha256:HEX") of the cache of O exists:
 * when missing, MAKE is called with a path in the cache directory where it
 * must create the entry as a regular file; the entry appears (renamed into
 * place, under the entry's lock) only when MAKE returns 0, and concurrent
 * callers wait for one another.  *path receives the entry's path, *made
 * (may be NULL) whether MAKE ran. */
int capsa_cache_ensure_file (const struct capsa_oci_opts *o, const char *kind, const char *key,
                             int (*make) (const char *path, void *data, capsa_error_t *err), void *data, char **path,
                             bool *made, capsa_error_t *err);
/* Remember that REF was KEY; the path of the entry REF was last time, if
 * it is still there (NULL otherwise). */
int capsa_cache_set_ref (const struct capsa_oci_opts *o, const char *kind, const char *ref, const char *key,
                         capsa_error_t *err);
char *capsa_cache_lookup_ref (const struct capsa_oci_opts *o, const char *kind, const char *ref);
void capsa_cache_entries_free (struct capsa_cache_entry *e, size_t n);
/* Remove entries of KIND ("oras", "blob", NULL: all).  dry_run: count
 * only.  *count and *bytes (may be NULL) say how much. */
int capsa_cache_clean (const char *cachedir, const char *kind, bool dry_run, size_t *count, uint64_t *bytes,
                       capsa_error_t *err);

/* ---- http:// and https:// images (net.c) ---------------------------------- */

bool capsa_net_is_uri (const char *s);
/* The image at URL: its cache entry (*path_out), or, when the server gives
 * neither Last-Modified nor ETag or o->no_cache, an unnamed temporary file
 * (*fd_out, at offset 0 after a rewind by the caller).  The download must
 * be a SIF or a squashfs image. */
int capsa_net_fetch (const char *url, const struct capsa_oci_opts *o, char **path_out, int *fd_out,
                     capsa_error_t *err);

/* ---- docker://, docker-archive:, oci-archive: -> a root directory -------- */

/* What the image config says about running it. */
struct capsa_oci_config {
    struct strv env;        /* "KEY=VALUE", in order */
    struct strv entrypoint; /* argv */
    struct strv cmd;        /* argv */
    char *workingdir;       /* NULL when unset */
    char *user;             /* NULL when unset */
    struct strv labels;     /* "KEY=VALUE" */
    char *arch;             /* Go architecture of the image, NULL if not said */
    char *digest;           /* manifest digest ("sha256:..."), NULL for docker-archive */
};
void capsa_oci_config_free (struct capsa_oci_config *c);

/* True for "docker://...", "docker-archive:FILE[:REF]", "oci-archive:FILE[:REF]". */
bool capsa_oci_is_source (const char *ref);

/* Fetch the image REF and apply its layers, in order, to ROOTDIR (an
 * existing directory, normally empty, of the caller's).  Multi-arch indexes
 * pick o->arch or the host's architecture (linux).  Whiteouts (".wh.NAME")
 * and opaque directories (".wh..wh..opq") remove lower-layer content.
 * Extraction never writes outside ROOTDIR: entries with "..", absolute
 * names, or parents that are symbolic links leading out of the root fail
 * the whole fetch with an error naming the layer and the entry; hard links
 * must point inside.  Without root (geteuid() != 0): device nodes are
 * skipped, setuid/setgid bits dropped, everything owned by the caller.
 * *out (zeroed by the call) receives the config; free it with
 * capsa_oci_config_free(). */
int capsa_oci_fetch_rootfs (const char *ref, const char *rootdir, const struct capsa_oci_opts *o,
                            struct capsa_oci_config *out, capsa_error_t *err);

/* Resolve "docker://HOST/REPO[:TAG|@DIGEST]" to the manifest of this
 * machine's platform (o->arch): *digest its digest, *pinned
 * "docker://HOST/REPO@DIGEST", *refstr the normalised "HOST/REPO:TAG".
 * *unreachable tells whether a failure was "the registry cannot be
 * reached" (so that a cached conversion may be used instead); *refstr is
 * set (to free) even then, once the reference parsed. */
int capsa_oci_resolve (const char *uri, const struct capsa_oci_opts *o, char **digest, char **pinned, char **refstr,
                       bool *unreachable, capsa_error_t *err);

/* Apptainer-layout scripts made from a config (new strings):
 * the runscript (runs ENTRYPOINT + CMD, CMD replaced by the run's
 * arguments, from WorkingDir) for /.singularity.d/runscript, and the
 * environment (one "export KEY='VALUE'" per Env entry) for
 * /.singularity.d/env/10-docker2singularity.sh. */
char *capsa_oci_runscript (const struct capsa_oci_config *c);
char *capsa_oci_envscript (const struct capsa_oci_config *c);

#endif

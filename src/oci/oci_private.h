/* Internals of src/oci shared between its files and the unit tests.
 * Nothing outside src/oci and tests/ includes this. */
#ifndef CAPSA_OCI_PRIVATE_H
#define CAPSA_OCI_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/error.h"
#include "oci/oci.h"

/* Limits on what a registry or archive may make capsa hold in memory. */
#define OCI_MANIFEST_MAX (4 << 20)
#define OCI_CONFIG_MAX (16 << 20)
#define OCI_TOKEN_MAX (1 << 20)
#define OCI_MAX_LAYERS 1000
#define OCI_JSON_DEPTH 64

#define OCI_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define OCI_MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define DOCKER_MT_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_MT_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define OCI_EMPTY_CONFIG "{}"
#define OCI_EMPTY_CONFIG_DIGEST "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

/* ---- digest.c ---------------------------------------------------------- */

#define OCI_DIGEST_LEN (7 + 64) /* "sha256:" + hex */

/* "sha256:<64 lowercase hex>" (the only algorithm capsa accepts; others are
 * refused with a message saying so). */
/* Tell the caller's notice callback (progress, warnings), if any. */
void oci_notify (const struct capsa_oci_opts *o, enum capsa_oci_notice level, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

bool oci_digest_valid (const char *d);
int oci_digest_check (const char *d, capsa_error_t *err);
/* The 64 hex characters of a valid digest. */
const char *oci_digest_hex (const char *d);

struct oci_hash; /* incremental SHA-256 (OpenSSL EVP) */
struct oci_hash *oci_hash_new (void);
void oci_hash_update (struct oci_hash *h, const void *buf, size_t len);
/* Finish into out ("sha256:..."; at least OCI_DIGEST_LEN + 1 bytes) and free. */
void oci_hash_final (struct oci_hash *h, char *out);
void oci_hash_free (struct oci_hash *h);
void oci_digest_buf (const void *buf, size_t len, char *out);
/* Hash a file from offset 0 to EOF. */
int oci_digest_fd (int fd, char *out, uint64_t *size, capsa_error_t *err);

/* Base64 (standard alphabet, padded).  Decoding rejects anything else. */
char *oci_base64_encode (const void *buf, size_t len);
int oci_base64_decode (const char *s, char **out, size_t *outlen);

/* ---- manifest.c: manifests, indexes, configs ---------------------------- */

struct oci_descriptor {
    char *media_type;
    char *digest;
    int64_t size; /* -1 when absent */
    char *title;  /* annotation org.opencontainers.image.title */
    char *ref_name; /* annotation org.opencontainers.image.ref.name */
    char *os, *arch, *variant; /* platform (indexes) */
};

enum oci_manifest_kind { OCI_KIND_MANIFEST, OCI_KIND_INDEX };

struct oci_manifest {
    enum oci_manifest_kind kind;
    char *media_type; /* from the document, else the Content-Type; may be NULL */
    struct oci_descriptor config;           /* manifests */
    struct oci_descriptor *layers;          /* manifests */
    size_t nlayers;
    struct oci_descriptor *manifests;       /* indexes */
    size_t nmanifests;
};

/* Parse a manifest or index (OCI or Docker schema 2).  CONTENT_TYPE (may be
 * NULL) is the Content-Type the registry sent; the document's own
 * mediaType wins.  Every descriptor's digest is checked for form; sizes
 * must be non-negative.  Schema 1 manifests are refused. */
int oci_manifest_parse (const char *buf, size_t len, const char *content_type, struct oci_manifest *out,
                        capsa_error_t *err);
void oci_manifest_free (struct oci_manifest *m);
void oci_descriptor_free (struct oci_descriptor *d);

/* The entry of an index for linux/ARCH (ARCH a Go name; "arm" matches
 * variant v7 unless the entry says otherwise); ENOENT listing the
 * platforms that are there. */
int oci_index_select (const struct oci_manifest *idx, const char *arch, const struct oci_descriptor **out,
                      capsa_error_t *err);

/* An image config ({"config":{"Env":[...],...},"architecture":...}). */
int oci_config_parse (const char *buf, size_t len, struct capsa_oci_config *out, capsa_error_t *err);

/* ---- authhdr.c: WWW-Authenticate ------------------------------------------ */

struct oci_challenge {
    char *scheme; /* "bearer", "basic" (lower case) */
    char *realm, *service, *scope, *error;
};

/* Parse the first challenge of a WWW-Authenticate value
 * ('Bearer realm="https://auth/token",service="reg",scope="repository:x:pull"'). */
int oci_challenge_parse (const char *header, struct oci_challenge *out, capsa_error_t *err);
void oci_challenge_free (struct oci_challenge *c);

/* ---- registry.c: the distribution API ------------------------------------- */

struct oci_client;

/* A client for one repository.  push: ask for pull,push scope. */
int oci_client_new (const struct capsa_oci_ref *ref, const struct capsa_oci_opts *o, bool push,
                    struct oci_client **out, capsa_error_t *err);
void oci_client_free (struct oci_client *c);
/* Whether the last failure was "could not connect / resolve / time out". */
bool oci_client_unreachable (const struct oci_client *c);

/* GET a manifest by tag or digest.  *digest receives the digest of the
 * bytes received (checked against REFERENCE when it is a digest). */
int oci_get_manifest (struct oci_client *c, const char *reference, struct oci_manifest *out, char **raw,
                      size_t *rawlen, char **digest, capsa_error_t *err);
/* Stream blob D into fd (from its current offset), verifying size and
 * digest; a mismatch fails with EBADMSG. */
int oci_get_blob_fd (struct oci_client *c, const struct oci_descriptor *d, int fd, capsa_error_t *err);
/* A small blob into memory (at most max bytes), verified. */
int oci_get_blob_mem (struct oci_client *c, const struct oci_descriptor *d, size_t max, char **out,
                      size_t *len, capsa_error_t *err);
int oci_blob_exists (struct oci_client *c, const char *digest, bool *exists, capsa_error_t *err);
/* Upload SIZE bytes read from fd (from offset 0) as blob DIGEST. */
int oci_put_blob_fd (struct oci_client *c, int fd, uint64_t size, const char *digest, const char *what,
                     capsa_error_t *err);
int oci_put_blob_mem (struct oci_client *c, const void *buf, size_t len, const char *digest,
                      capsa_error_t *err);
int oci_put_manifest (struct oci_client *c, const char *reference, const char *body, size_t len,
                      const char *media_type, capsa_error_t *err);
/* GET /v2/ with authentication (login check). */
int oci_ping (struct oci_client *c, capsa_error_t *err);

/* The libcurl options every transfer of capsa has (registry.c): URL,
 * allowed protocols (also after redirects: "https" or "http,https"),
 * redirects, user agent, timeouts, no signals, ERRBUF for messages.  CURL
 * is a CURL * (kept void here so this header needs no curl.h). */
void oci_curl_common (void *curl, const char *url, const char *protos, char *errbuf);

/* An unnamed temporary file (O_TMPFILE) in O->tmpdir, $TMPDIR or /tmp
 * (registry.c). */
int oci_tmpfile (const struct capsa_oci_opts *o, capsa_error_t *err);

/* ---- cache.c ------------------------------------------------------------- */

struct oci_cache;

int oci_cache_open (const char *dir, struct oci_cache **out, capsa_error_t *err);
void oci_cache_close (struct oci_cache *c);
/* The path an entry has (whether or not it exists). */
char *oci_cache_path (struct oci_cache *c, const char *kind, const char *digest);
/* Make sure entry KIND/DIGEST exists: when missing, FILL writes it into a
 * fresh temporary file (fd at offset 0) and must verify it; the file is
 * renamed into place only when FILL returns 0.  Concurrent callers for the
 * same entry wait for one another.  *path receives the entry's path. */
int oci_cache_ensure (struct oci_cache *c, const char *kind, const char *digest,
                      int (*fill) (int fd, void *data, capsa_error_t *err), void *data, char **path,
                      bool *filled, capsa_error_t *err);
/* Remember / look up which digest REF had. */
int oci_cache_set_ref (struct oci_cache *c, const char *kind, const char *ref, const char *digest,
                       capsa_error_t *err);
char *oci_cache_get_ref (struct oci_cache *c, const char *kind, const char *ref);

/* ---- extract.c: one layer onto a root ------------------------------------ */

struct oci_extract_opts {
    bool as_root;     /* keep owners, setuid bits and device nodes */
    const char *what; /* "layer 2/5 (sha256:...)", for messages */
    void (*notice) (enum capsa_oci_notice level, const char *msg, void *data);
    void *data;
};

/* Apply the layer tarball readable from LAYERFD (compressed or not; read
 * twice with pread, from offset 0) to the directory ROOTFD: whiteouts
 * first, then the entries. */
int oci_apply_layer (int rootfd, int layerfd, const struct oci_extract_opts *o, capsa_error_t *err);

/* Normalise a tar entry name ("./a//b/" -> "a/b"); fail on absolute names,
 * ".." components and empty results (*out NULL, return 0, for the root
 * itself: "." or "./"). */
int oci_clean_path (const char *name, char **out, capsa_error_t *err);

#endif

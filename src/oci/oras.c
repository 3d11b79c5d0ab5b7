/* SIF images as ORAS artifacts, compatible with Apptainer and SingularityCE:
 * an OCI image manifest with the empty config "{}" (media type
 * application/vnd.sylabs.sif.config.v1+json) and one layer, the SIF itself
 * (application/vnd.sylabs.sif.layer.v1.sif, title annotation = file name). */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "oci/oci_private.h"
#include "sif/sif.h"

static int
parse_uri (const char *uri, struct capsa_oci_ref *ref, capsa_error_t *err)
{
    if (!capsa_oras_is_uri (uri))
        return capsa_error_make (err, 0, "'%s' is not an oras:// URI", uri);
    if (capsa_oci_ref_parse (uri + 7, ref, err) < 0)
        return -1;
    return 0;
}

static bool
is_sif_layer (const char *mt)
{
    return mt && (strcmp (mt, CAPSA_SIF_LAYER_MEDIATYPE) == 0 || strcmp (mt, CAPSA_SIF_LAYER_MEDIATYPE_PROTO) == 0);
}


/* ---- push -------------------------------------------------------------- */

static char *
rfc3339 (int64_t t)
{
    char buf[64];
    time_t tt = (time_t) t;
    struct tm tm;
    if (gmtime_r (&tt, &tm) == NULL || strftime (buf, sizeof (buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return NULL;
    return xstrdup (buf);
}

int
capsa_oras_push (const char *path, const char *uri, const struct capsa_oci_opts *o, char **digest_out,
                 capsa_error_t *err)
{
    struct capsa_oci_ref ref;
    struct sif_image *sif = NULL;
    struct oci_client *c = NULL;
    char digest[OCI_DIGEST_LEN + 1], mdigest[OCI_DIGEST_LEN + 1];
    uint64_t size = 0;
    int ret = -1;
    json_object *m = NULL;
    cleanup_free char *pathcopy = NULL, *created = NULL;

    if (parse_uri (uri, &ref, err) < 0)
        return -1;
    if (ref.tag == NULL) {
        capsa_error_make (err, 0, "push to %s: name a tag (oras://HOST/REPO:TAG), not a digest", uri);
        goto out;
    }
    /* Only SIF files travel as SIF artifacts. */
    if (sif_open (path, false, &sif, err) < 0) {
        capsa_error_wrap (err, "cannot push %s", path);
        goto out;
    }
    int fd = sif_image_fd (sif);
    const struct sif_header *hdr = sif_get_header (sif);
    if (oci_digest_fd (fd, digest, &size, err) < 0) {
        capsa_error_wrap (err, "%s", path);
        goto out;
    }
    if (oci_client_new (&ref, o, true, &c, err) < 0)
        goto out;

    bool exists = false;
    if (oci_blob_exists (c, OCI_EMPTY_CONFIG_DIGEST, &exists, err) < 0)
        goto out;
    if (!exists && oci_put_blob_mem (c, OCI_EMPTY_CONFIG, 2, OCI_EMPTY_CONFIG_DIGEST, err) < 0)
        goto out;
    if (oci_blob_exists (c, digest, &exists, err) < 0)
        goto out;
    pathcopy = xstrdup (path);
    const char *title = basename (pathcopy);
    if (exists) {
        oci_notify (o, CAPSA_OCI_VERBOSE, "the registry already has %s", digest);
    } else {
        oci_notify (o, CAPSA_OCI_INFO, "Uploading %s (%llu bytes) to %s", title, (unsigned long long) size, uri);
        if (oci_put_blob_fd (c, fd, size, digest, title, err) < 0)
            goto out;
    }

    m = json_object_new_object ();
    json_object_object_add (m, "schemaVersion", json_object_new_int (2));
    json_object_object_add (m, "mediaType", json_object_new_string (OCI_MT_MANIFEST));
    json_object *cfg = json_object_new_object ();
    json_object_object_add (cfg, "mediaType", json_object_new_string (CAPSA_SIF_CONFIG_MEDIATYPE));
    json_object_object_add (cfg, "digest", json_object_new_string (OCI_EMPTY_CONFIG_DIGEST));
    json_object_object_add (cfg, "size", json_object_new_int64 (2));
    json_object_object_add (m, "config", cfg);
    json_object *layer = json_object_new_object ();
    json_object_object_add (layer, "mediaType", json_object_new_string (CAPSA_SIF_LAYER_MEDIATYPE));
    json_object_object_add (layer, "digest", json_object_new_string (digest));
    json_object_object_add (layer, "size", json_object_new_int64 ((int64_t) size));
    json_object *la = json_object_new_object ();
    json_object_object_add (la, "org.opencontainers.image.title", json_object_new_string (title));
    json_object_object_add (layer, "annotations", la);
    json_object *layers = json_object_new_array ();
    json_object_array_add (layers, layer);
    json_object_object_add (m, "layers", layers);
    created = hdr->created > 0 ? rfc3339 (hdr->created) : NULL;
    if (created) {
        json_object *ma = json_object_new_object ();
        json_object_object_add (ma, "org.opencontainers.image.created", json_object_new_string (created));
        json_object_object_add (m, "annotations", ma);
    }
    const char *body = json_object_to_json_string_ext (m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    oci_digest_buf (body, strlen (body), mdigest);
    if (oci_put_manifest (c, ref.tag, body, strlen (body), OCI_MT_MANIFEST, err) < 0)
        goto out;
    if (digest_out)
        *digest_out = xstrdup (mdigest);
    ret = 0;
out:
    json_object_put (m);
    oci_client_free (c);
    if (sif)
        sif_close (sif);
    capsa_oci_ref_free (&ref);
    return ret;
}

/* ---- pull -------------------------------------------------------------- */

/* The SIF layer's descriptor for REF (through an index when there is one). */
static int
find_sif_layer (struct oci_client *c, const struct capsa_oci_ref *ref, const struct capsa_oci_opts *o,
                struct oci_descriptor *layer, capsa_error_t *err)
{
    struct oci_manifest m;
    cleanup_free char *refstr = capsa_oci_ref_string (ref);
    if (oci_get_manifest (c, ref->digest ? ref->digest : ref->tag, &m, NULL, NULL, NULL, err) < 0)
        return -1;
    if (m.kind == OCI_KIND_INDEX) {
        const struct oci_descriptor *d;
        const char *arch = o && o->arch ? o->arch : sif_host_arch ();
        cleanup_free char *want = NULL;
        if (oci_index_select (&m, arch, &d, err) < 0) {
            oci_manifest_free (&m);
            return capsa_error_wrap (err, "%s", refstr);
        }
        want = xstrdup (d->digest);
        oci_manifest_free (&m);
        if (oci_get_manifest (c, want, &m, NULL, NULL, NULL, err) < 0)
            return -1;
        if (m.kind != OCI_KIND_MANIFEST) {
            oci_manifest_free (&m);
            return capsa_error_make (err, 0, "%s: an index inside an index is not supported", refstr);
        }
    }
    int r = 0;
    if (m.nlayers != 1)
        r = capsa_error_make (err, 0, "%s is not a SIF image: an ORAS SIF image has one layer, this one has %zu",
                              refstr, m.nlayers);
    else if (!is_sif_layer (m.layers[0].media_type))
        r = capsa_error_make (err, 0, "%s is not a SIF image (layer media type '%.100s')", refstr,
                              m.layers[0].media_type ? m.layers[0].media_type : "");
    else if (m.layers[0].size < 0)
        r = capsa_error_make (err, 0, "%s: the SIF layer has no size", refstr);
    if (r == 0) {
        *layer = m.layers[0];
        memset (&m.layers[0], 0, sizeof (m.layers[0]));
    }
    oci_manifest_free (&m);
    return r;
}

struct fill_data {
    struct oci_client *c;
    const struct oci_descriptor *layer;
    const char *refstr;
    const struct capsa_oci_opts *o;
};

/* Download the layer into fd, verified, and check that it is a SIF. */
static int
fill_sif (int fd, void *data, capsa_error_t *err)
{
    struct fill_data *f = data;
    char magic[10];
    oci_notify (f->o, CAPSA_OCI_INFO, "Downloading oras image %s", f->refstr);
    if (oci_get_blob_fd (f->c, f->layer, fd, err) < 0)
        return -1;
    if (pread (fd, magic, sizeof (magic), 32) != (ssize_t) sizeof (magic) || memcmp (magic, "SIF_MAGIC\0", 10) != 0)
        return capsa_error_make (err, 0, "%s is not a SIF image (no SIF header in the layer)", f->refstr);
    return 0;
}

int
capsa_oras_cached (const char *uri, const struct capsa_oci_opts *o, char **path_out, bool *downloaded,
                   capsa_error_t *err)
{
    struct capsa_oci_ref ref;
    struct oci_client *c = NULL;
    struct oci_cache *cache = NULL;
    struct oci_descriptor layer = { 0 };
    cleanup_free char *cachedir = NULL, *refstr = NULL;
    int ret = -1;

    if (downloaded)
        *downloaded = false;
    if (parse_uri (uri, &ref, err) < 0)
        return -1;
    refstr = capsa_oci_ref_string (&ref);
    cachedir = o && o->cachedir ? xstrdup (o->cachedir) : capsa_oci_default_cachedir ();
    if (oci_cache_open (cachedir, &cache, err) < 0)
        goto out;
    if (oci_client_new (&ref, o, false, &c, err) < 0)
        goto out;
    if (find_sif_layer (c, &ref, o, &layer, err) < 0) {
        /* Offline: what this reference was last time, if still cached. */
        cleanup_free char *known = oci_client_unreachable (c) ? oci_cache_get_ref (cache, "oras", refstr) : NULL;
        if (known != NULL) {
            char *p = oci_cache_path (cache, "oras", known);
            struct stat st;
            if (stat (p, &st) == 0 && S_ISREG (st.st_mode)) {
                oci_notify (o, CAPSA_OCI_WARNING, "%s; using the cached image of %s (%s)", (*err)->msg, refstr, known);
                capsa_error_free (err);
                *path_out = p;
                ret = 0;
                goto out;
            }
            free (p);
        }
        goto out;
    }
    struct fill_data f = { c, &layer, refstr, o };
    bool filled = false;
    if (oci_cache_ensure (cache, "oras", layer.digest, fill_sif, &f, path_out, &filled, err) < 0) {
        capsa_error_wrap (err, "pull %s", uri);
        goto out;
    }
    if (!filled)
        oci_notify (o, CAPSA_OCI_VERBOSE, "using the cached image of %s (%s)", refstr, layer.digest);
    if (downloaded)
        *downloaded = filled;
    capsa_error_t ignore = NULL;
    oci_cache_set_ref (cache, "oras", refstr, layer.digest, &ignore);
    capsa_error_free (&ignore);
    ret = 0;
out:
    oci_descriptor_free (&layer);
    oci_client_free (c);
    oci_cache_close (cache);
    capsa_oci_ref_free (&ref);
    return ret;
}

static int
copy_fd (int in, int out, capsa_error_t *err)
{
    char buf[1 << 16];
    for (;;) {
        ssize_t r = copy_file_range (in, NULL, out, NULL, 1 << 30, 0);
        if (r == 0)
            return 0;
        if (r > 0)
            continue;
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
            return capsa_error_make (err, errno, "copy");
        break;
    }
    for (;;) {
        ssize_t r = read (in, buf, sizeof (buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return capsa_error_make (err, errno, "read");
        if (r == 0)
            return 0;
        if (write_all (out, buf, (size_t) r) < 0)
            return capsa_error_make (err, errno, "write");
    }
}

int
capsa_oras_pull (const char *uri, const char *out, bool force, const struct capsa_oci_opts *o, capsa_error_t *err)
{
    struct stat st;
    cleanup_free char *cached = NULL;
    cleanup_free char *tmp = xasprintf ("%s.capsa-XXXXXX", out);
    int ret = -1;

    if (!force && lstat (out, &st) == 0)
        return capsa_error_make (err, EEXIST, "%s already exists (use --force to replace it)", out);
    int fd = mkostemp (tmp, O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "cannot create %s", tmp);

    if (o && o->no_cache) {
        struct capsa_oci_ref ref;
        struct oci_client *c = NULL;
        struct oci_descriptor layer = { 0 };
        if (parse_uri (uri, &ref, err) < 0)
            goto out;
        cleanup_free char *refstr = capsa_oci_ref_string (&ref);
        struct fill_data f = { NULL, &layer, refstr, o };
        if (oci_client_new (&ref, o, false, &c, err) == 0 && find_sif_layer (c, &ref, o, &layer, err) == 0) {
            f.c = c;
            ret = fill_sif (fd, &f, err);
        }
        oci_descriptor_free (&layer);
        oci_client_free (c);
        capsa_oci_ref_free (&ref);
        if (ret < 0)
            goto out;
        ret = -1;
    } else {
        if (capsa_oras_cached (uri, o, &cached, NULL, err) < 0)
            goto out;
        cleanup_close int in = open (cached, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (in < 0) {
            capsa_error_make (err, errno, "open %s", cached);
            goto out;
        }
        if (copy_fd (in, fd, err) < 0) {
            capsa_error_wrap (err, "copy %s to %s", cached, tmp);
            goto out;
        }
    }
    mode_t um = umask (0);
    umask (um);
    /* A SIF starts with "#!/usr/bin/env run-singularity": executable, as
     * Apptainer leaves it. */
    if (fchmod (fd, 0777 & ~um) < 0 || fsync (fd) < 0) {
        capsa_error_make (err, errno, "write %s", tmp);
        goto out;
    }
    if (force ? rename (tmp, out) : renameat2 (AT_FDCWD, tmp, AT_FDCWD, out, RENAME_NOREPLACE)) {
        capsa_error_make (err, errno, "cannot create %s", out);
        goto out;
    }
    ret = 0;
out:
    close (fd);
    if (ret < 0)
        unlink (tmp);
    return ret;
}

char *
capsa_oras_default_name (const char *uri)
{
    struct capsa_oci_ref ref;
    capsa_error_t ignore = NULL;
    if (parse_uri (uri, &ref, &ignore) < 0) {
        capsa_error_free (&ignore);
        return NULL;
    }
    const char *slash = strrchr (ref.repository, '/');
    const char *name = slash ? slash + 1 : ref.repository;
    char *r;
    if (ref.tag)
        r = xasprintf ("%s_%s.sif", name, ref.tag);
    else
        r = xasprintf ("%s_%.12s.sif", name, oci_digest_hex (ref.digest));
    capsa_oci_ref_free (&ref);
    return r;
}

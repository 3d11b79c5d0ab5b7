/* docker://REF, docker-archive:FILE[:REF], oci-archive:FILE[:REF] -> a root
 * directory and the image config.
 *
 * docker://: manifest (an index picks linux/ARCH), config and layers come
 * from the registry; layers go through the cache (blob/sha256/HEX),
 * verified before they are renamed into it, so a second build reuses them.
 * Archives: the outer tarball is staged into a private temporary directory
 * (regular files only, each under a number; names and links are kept in
 * memory and never touch the file system), then read like a registry:
 * oci-archive blobs are checked against their digests, docker-archive
 * layers stored as blobs/sha256/HEX too (older "ID/layer.tar" layouts have
 * no digest to check). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <archive.h>
#include <archive_entry.h>

#include "oci/oci_private.h"
#include "sif/sif.h"

#define STAGE_MAX_ENTRIES 100000


bool
capsa_oci_is_source (const char *ref)
{
    return ref != NULL
           && (strncmp (ref, "docker://", 9) == 0 || strncmp (ref, "docker-archive:", 15) == 0
               || strncmp (ref, "oci-archive:", 12) == 0);
}

static const char *
target_arch (const struct capsa_oci_opts *o)
{
    return o && o->arch ? o->arch : sif_host_arch ();
}

static bool
layer_type_ok (const char *mt, const char *what, capsa_error_t *err)
{
    if (mt == NULL)
        return true;
    if (strstr (mt, "+encrypted") != NULL) {
        capsa_error_make (err, 0, "%s is encrypted (%s): not supported", what, mt);
        return false;
    }
    if (strstr (mt, "foreign") != NULL || strstr (mt, "nondistributable") != NULL) {
        capsa_error_make (err, 0, "%s is a foreign layer (%s): not supported", what, mt);
        return false;
    }
    if (strstr (mt, "sylabs.sif") != NULL) {
        capsa_error_make (err, 0, "this is a SIF image pushed as an ORAS artifact: use oras:// instead");
        return false;
    }
    return true;
}

static int
apply (int rootfd, int layerfd, size_t i, size_t n, const char *digest, const struct capsa_oci_opts *o,
       capsa_error_t *err)
{
    cleanup_free char *what = xasprintf ("layer %zu/%zu (%.19s)", i + 1, n, digest ? digest : "no digest");
    struct oci_extract_opts eo = { .as_root = geteuid () == 0, .what = what, .notice = o ? o->notice : NULL,
                                   .data = o ? o->data : NULL };
    oci_notify (o, CAPSA_OCI_VERBOSE, "extracting %s", what);
    return oci_apply_layer (rootfd, layerfd, &eo, err);
}

/* ---- docker:// ------------------------------------------------------------ */

struct blob_fill {
    struct oci_client *c;
    const struct oci_descriptor *d;
};

static int
fill_blob (int fd, void *data, capsa_error_t *err)
{
    struct blob_fill *f = data;
    return oci_get_blob_fd (f->c, f->d, fd, err);
}

static int
from_registry (const char *refs, int rootfd, const struct capsa_oci_opts *o, struct capsa_oci_config *out,
               capsa_error_t *err)
{
    struct capsa_oci_ref ref;
    struct oci_client *c = NULL;
    struct oci_cache *cache = NULL;
    struct oci_manifest m = { 0 };
    cleanup_free char *refstr = NULL, *digest = NULL, *cfg = NULL, *cachedir = NULL;
    size_t cfglen = 0;
    int ret = -1;

    if (capsa_oci_ref_parse (refs, &ref, err) < 0)
        return -1;
    refstr = capsa_oci_ref_string (&ref);
    if (oci_client_new (&ref, o, false, &c, err) < 0)
        goto out;
    if (oci_get_manifest (c, ref.digest ? ref.digest : ref.tag, &m, NULL, NULL, &digest, err) < 0)
        goto out;
    if (m.kind == OCI_KIND_INDEX) {
        const struct oci_descriptor *d;
        if (oci_index_select (&m, target_arch (o), &d, err) < 0) {
            capsa_error_wrap (err, "%s", refstr);
            goto out;
        }
        cleanup_free char *want = xstrdup (d->digest);
        oci_manifest_free (&m);
        free (digest);
        digest = NULL;
        if (oci_get_manifest (c, want, &m, NULL, NULL, &digest, err) < 0)
            goto out;
        if (m.kind != OCI_KIND_MANIFEST) {
            capsa_error_make (err, 0, "%s: an index inside an index is not supported", refstr);
            goto out;
        }
    }
    if (m.config.media_type && strstr (m.config.media_type, "sylabs.sif") != NULL) {
        capsa_error_make (err, 0, "%s is a SIF image pushed as an ORAS artifact: use oras://%s", refstr, refs);
        goto out;
    }
    oci_notify (o, CAPSA_OCI_VERBOSE, "%s: manifest %s, %zu layer(s)", refstr, digest, m.nlayers);
    if (oci_get_blob_mem (c, &m.config, OCI_CONFIG_MAX, &cfg, &cfglen, err) < 0)
        goto out;
    if (oci_config_parse (cfg, cfglen, out, err) < 0) {
        capsa_error_wrap (err, "%s", refstr);
        goto out;
    }
    out->digest = steal_ptr (&digest);
    if (!(o && o->no_cache)) {
        cachedir = o && o->cachedir ? xstrdup (o->cachedir) : capsa_oci_default_cachedir ();
        if (oci_cache_open (cachedir, &cache, err) < 0)
            goto out;
    }
    for (size_t i = 0; i < m.nlayers; i++) {
        const struct oci_descriptor *d = &m.layers[i];
        cleanup_free char *what = xasprintf ("%s: layer %zu", refstr, i + 1);
        if (!layer_type_ok (d->media_type, what, err))
            goto out;
        cleanup_close int fd = -1;
        if (cache != NULL) {
            struct blob_fill f = { c, d };
            cleanup_free char *path = NULL;
            bool filled = false;
            oci_notify (o, CAPSA_OCI_INFO, "Fetching layer %zu/%zu %.19s", i + 1, m.nlayers, d->digest);
            if (oci_cache_ensure (cache, "blob", d->digest, fill_blob, &f, &path, &filled, err) < 0)
                goto out;
            fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0) {
                capsa_error_make (err, errno, "open %s", path);
                goto out;
            }
        } else {
            fd = oci_tmpfile (o, err);
            if (fd < 0 || oci_get_blob_fd (c, d, fd, err) < 0)
                goto out;
        }
        if (apply (rootfd, fd, i, m.nlayers, d->digest, o, err) < 0)
            goto out;
    }
    ret = 0;
out:
    oci_manifest_free (&m);
    oci_cache_close (cache);
    oci_client_free (c);
    capsa_oci_ref_free (&ref);
    return ret;
}

/* ---- archives ------------------------------------------------------------- */

struct staged {
    char *name;  /* cleaned path inside the archive */
    char *alias; /* a link: the cleaned path it points to; else NULL */
    int num;     /* regular file: its number in the stage directory */
};

struct stage {
    int dirfd;
    char *dir;
    struct staged *v;
    size_t n, cap;
};

static void
stage_free (struct stage *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free (s->v[i].name);
        free (s->v[i].alias);
    }
    free (s->v);
    if (s->dirfd >= 0) {
        DIR *d = fdopendir (s->dirfd);
        if (d != NULL) {
            for (struct dirent *e; (e = readdir (d));)
                if (e->d_name[0] != '.')
                    unlinkat (dirfd (d), e->d_name, 0);
            closedir (d);
        } else {
            close (s->dirfd);
        }
    }
    if (s->dir)
        rmdir (s->dir);
    free (s->dir);
    memset (s, 0, sizeof (*s));
    s->dirfd = -1;
}

static struct staged *
stage_add (struct stage *s, char *name)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = xrealloc (s->v, s->cap * sizeof (*s->v));
    }
    struct staged *e = &s->v[s->n++];
    memset (e, 0, sizeof (*e));
    e->name = name;
    e->num = -1;
    return e;
}

/* "dir/link" -> "../x" : "x" (cleaned, relative to the archive root), or NULL. */
static char *
resolve_link (const char *name, const char *target)
{
    cleanup_free char *joined = NULL;
    if (target[0] == '/')
        joined = xstrdup (target + 1);
    else {
        const char *slash = strrchr (name, '/');
        joined = slash ? xasprintf ("%.*s/%s", (int) (slash - name), name, target) : xstrdup (target);
    }
    /* Resolve ".." lexically; climbing above the archive root fails. */
    struct strv parts = { 0 };
    char *save = NULL;
    for (char *t = strtok_r (joined, "/", &save); t; t = strtok_r (NULL, "/", &save)) {
        if (strcmp (t, ".") == 0)
            continue;
        if (strcmp (t, "..") == 0) {
            if (parts.n == 0) {
                strv_free (&parts);
                return NULL;
            }
            free (parts.v[--parts.n]);
            parts.v[parts.n] = NULL;
            continue;
        }
        strv_push (&parts, t);
    }
    size_t len = 1;
    for (size_t i = 0; i < parts.n; i++)
        len += strlen (parts.v[i]) + 1;
    char *r = xcalloc (1, len);
    for (size_t i = 0; i < parts.n; i++) {
        if (i)
            strcat (r, "/");
        strcat (r, parts.v[i]);
    }
    strv_free (&parts);
    return r;
}

static int
stage_archive (const char *path, const struct capsa_oci_opts *o, struct stage *s, capsa_error_t *err)
{
    const char *tmp = o && o->tmpdir ? o->tmpdir : getenv ("TMPDIR");
    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    memset (s, 0, sizeof (*s));
    s->dirfd = -1;
    s->dir = xasprintf ("%s/capsa-oci.XXXXXX", tmp);
    if (mkdtemp (s->dir) == NULL) {
        int e = errno;
        free (s->dir);
        s->dir = NULL;
        return capsa_error_make (err, e, "temporary directory in %s", tmp);
    }
    s->dirfd = open (s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0)
        return capsa_error_make (err, errno, "open %s", s->dir);

    struct archive *a = archive_read_new ();
    struct archive_entry *e;
    int r, ret = -1;
    archive_read_support_format_tar (a);
    archive_read_support_filter_gzip (a);
    archive_read_support_filter_bzip2 (a);
    archive_read_support_filter_xz (a);
    archive_read_support_filter_zstd (a);
    if (archive_read_open_filename (a, path, 1 << 16) != ARCHIVE_OK) {
        capsa_error_make (err, 0, "%s: %s", path, archive_error_string (a) ? archive_error_string (a) : "cannot open");
        goto out;
    }
    while ((r = archive_read_next_header (a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname (e);
        char *clean = NULL;
        capsa_error_t inner = NULL;
        if (name == NULL || oci_clean_path (name, &clean, &inner) < 0) {
            capsa_error_make (err, 0, "%s: entry '%.300s': %s", path, name ? name : "?", inner ? inner->msg : "no name");
            capsa_error_free (&inner);
            goto out;
        }
        if (clean == NULL)
            continue;
        if (s->n >= STAGE_MAX_ENTRIES) {
            free (clean);
            capsa_error_make (err, 0, "%s: too many entries", path);
            goto out;
        }
        mode_t type = archive_entry_filetype (e);
        const char *hl = archive_entry_hardlink (e);
        if (hl != NULL) {
            struct staged *st = stage_add (s, clean);
            capsa_error_t in2 = NULL;
            if (oci_clean_path (hl, &st->alias, &in2) < 0 || st->alias == NULL) {
                capsa_error_free (&in2);
                capsa_error_make (err, 0, "%s: entry '%.300s': bad hard link target", path, name);
                goto out;
            }
        } else if (type == AE_IFLNK) {
            const char *t = archive_entry_symlink (e);
            char *res = t ? resolve_link (clean, t) : NULL;
            if (res == NULL) {
                free (clean);
                continue; /* a link out of the archive: never used */
            }
            stage_add (s, clean)->alias = res;
        } else if (type == AE_IFREG) {
            struct staged *st = stage_add (s, clean);
            char num[32];
            st->num = (int) s->n;
            snprintf (num, sizeof (num), "%d", st->num);
            int fd = openat (s->dirfd, num, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0) {
                capsa_error_make (err, errno, "%s/%s", s->dir, num);
                goto out;
            }
            const void *buf;
            size_t len;
            la_int64_t off;
            int rr;
            while ((rr = archive_read_data_block (a, &buf, &len, &off)) == ARCHIVE_OK) {
                if (pwrite (fd, buf, len, (off_t) off) != (ssize_t) len) {
                    int en = errno;
                    close (fd);
                    capsa_error_make (err, en, "write %s/%s", s->dir, num);
                    goto out;
                }
            }
            if (archive_entry_size_is_set (e) && ftruncate (fd, (off_t) archive_entry_size (e)) < 0)
                rr = ARCHIVE_FATAL;
            close (fd);
            if (rr != ARCHIVE_EOF) {
                capsa_error_make (err, 0, "%s: entry '%.300s': %s", path, name,
                                  archive_error_string (a) ? archive_error_string (a) : "broken data");
                goto out;
            }
        } else {
            free (clean);
        }
    }
    if (r != ARCHIVE_EOF) {
        capsa_error_make (err, 0, "%s: broken tar archive: %s", path,
                          archive_error_string (a) ? archive_error_string (a) : "read error");
        goto out;
    }
    ret = 0;
out:
    archive_read_free (a);
    return ret;
}

/* A descriptor of the staged file NAME (links followed, a few levels). */
static int
stage_open (struct stage *s, const char *name, capsa_error_t *err)
{
    cleanup_free char *want = NULL;
    capsa_error_t inner = NULL;
    if (oci_clean_path (name, &want, &inner) < 0 || want == NULL) {
        capsa_error_free (&inner);
        return capsa_error_make (err, 0, "invalid path '%.300s' in the archive", name);
    }
    for (int depth = 0; depth < 16; depth++) {
        struct staged *hit = NULL;
        for (size_t i = s->n; i-- > 0;)
            if (strcmp (s->v[i].name, want) == 0) {
                hit = &s->v[i];
                break;
            }
        if (hit == NULL)
            return capsa_error_make (err, ENOENT, "the archive has no '%.300s'", name);
        if (hit->alias == NULL) {
            char num[32];
            snprintf (num, sizeof (num), "%d", hit->num);
            int fd = openat (s->dirfd, num, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0)
                return capsa_error_make (err, errno, "staged %s", name);
            return fd;
        }
        free (want);
        want = xstrdup (hit->alias);
    }
    return capsa_error_make (err, ELOOP, "'%.300s' in the archive: too many links", name);
}

static int
stage_read (struct stage *s, const char *name, size_t max, char **out, size_t *len, capsa_error_t *err)
{
    cleanup_close int fd = stage_open (s, name, err);
    if (fd < 0)
        return -1;
    return read_fd_all (fd, max, out, len, err);
}

/* The blob DIGEST of an OCI layout, checked. */
static int
stage_blob (struct stage *s, const char *digest, capsa_error_t *err)
{
    char got[OCI_DIGEST_LEN + 1];
    if (oci_digest_check (digest, err) < 0)
        return -1;
    cleanup_free char *name = xasprintf ("blobs/sha256/%s", oci_digest_hex (digest));
    int fd = stage_open (s, name, err);
    if (fd < 0)
        return -1;
    if (oci_digest_fd (fd, got, NULL, err) < 0) {
        close (fd);
        return -1;
    }
    if (strcmp (got, digest) != 0) {
        close (fd);
        return capsa_error_make (err, EBADMSG, "blob %s in the archive does not match its digest (it has %s)", digest,
                                 got);
    }
    return fd;
}

static int
stage_blob_mem (struct stage *s, const char *digest, size_t max, char **out, size_t *len, capsa_error_t *err)
{
    cleanup_close int fd = stage_blob (s, digest, err);
    if (fd < 0)
        return -1;
    return read_fd_all (fd, max, out, len, err);
}

/* Split "oci-archive:FILE[:REF]" after its prefix. */
static void
split_archive_ref (const char *spec, char **file, char **ref)
{
    struct stat st;
    *ref = NULL;
    const char *colon = strrchr (spec, ':');
    if (stat (spec, &st) == 0 || colon == NULL) {
        *file = xstrdup (spec);
        return;
    }
    *file = xasprintf ("%.*s", (int) (colon - spec), spec);
    *ref = xstrdup (colon + 1);
}

static int
from_oci_archive (const char *spec, int rootfd, const struct capsa_oci_opts *o, struct capsa_oci_config *out,
                  capsa_error_t *err)
{
    cleanup_free char *file = NULL, *want = NULL, *text = NULL, *cfg = NULL, *mdigest = NULL;
    struct stage s;
    struct oci_manifest idx = { 0 }, m = { 0 };
    size_t len = 0;
    int ret = -1;

    split_archive_ref (spec, &file, &want);
    if (stage_archive (file, o, &s, err) < 0)
        goto out;
    if (stage_read (&s, "index.json", OCI_MANIFEST_MAX, &text, &len, err) < 0
        || oci_manifest_parse (text, len, OCI_MT_INDEX, &idx, err) < 0) {
        capsa_error_wrap (err, "%s: not an OCI archive", file);
        goto out;
    }
    if (idx.kind != OCI_KIND_INDEX || idx.nmanifests == 0) {
        capsa_error_make (err, 0, "%s: index.json lists no image", file);
        goto out;
    }
    const struct oci_descriptor *pick = NULL;
    for (size_t i = 0; i < idx.nmanifests && want; i++) {
        const char *rn = idx.manifests[i].ref_name;
        if (rn && (strcmp (rn, want) == 0 || (strrchr (rn, ':') && strcmp (strrchr (rn, ':') + 1, want) == 0)))
            pick = &idx.manifests[i];
    }
    if (want && pick == NULL) {
        capsa_error_make (err, ENOENT, "%s: no image named '%s' in index.json", file, want);
        goto out;
    }
    if (pick == NULL && idx.nmanifests == 1)
        pick = &idx.manifests[0];
    if (pick == NULL && oci_index_select (&idx, target_arch (o), &pick, err) < 0) {
        capsa_error_wrap (err, "%s", file);
        goto out;
    }
    mdigest = xstrdup (pick->digest);
    for (int depth = 0;; depth++) {
        free (text);
        text = NULL;
        oci_manifest_free (&m);
        if (stage_blob_mem (&s, mdigest, OCI_MANIFEST_MAX, &text, &len, err) < 0
            || oci_manifest_parse (text, len, NULL, &m, err) < 0) {
            capsa_error_wrap (err, "%s", file);
            goto out;
        }
        if (m.kind == OCI_KIND_MANIFEST)
            break;
        const struct oci_descriptor *d;
        if (depth > 0 || oci_index_select (&m, target_arch (o), &d, err) < 0) {
            if (depth > 0)
                capsa_error_make (err, 0, "%s: an index inside an index is not supported", file);
            capsa_error_wrap (err, "%s", file);
            goto out;
        }
        free (mdigest);
        mdigest = xstrdup (d->digest);
    }
    if (stage_blob_mem (&s, m.config.digest, OCI_CONFIG_MAX, &cfg, &len, err) < 0
        || oci_config_parse (cfg, len, out, err) < 0) {
        capsa_error_wrap (err, "%s: image config", file);
        goto out;
    }
    out->digest = steal_ptr (&mdigest);
    for (size_t i = 0; i < m.nlayers; i++) {
        cleanup_free char *what = xasprintf ("%s: layer %zu", file, i + 1);
        if (!layer_type_ok (m.layers[i].media_type, what, err))
            goto out;
        cleanup_close int fd = stage_blob (&s, m.layers[i].digest, err);
        if (fd < 0 || apply (rootfd, fd, i, m.nlayers, m.layers[i].digest, o, err) < 0)
            goto out;
    }
    ret = 0;
out:
    oci_manifest_free (&idx);
    oci_manifest_free (&m);
    stage_free (&s);
    return ret;
}

/* docker save's manifest.json: [{"Config":"x.json","RepoTags":["a:b"],"Layers":["y/layer.tar"]}] */
static int
from_docker_archive (const char *spec, int rootfd, const struct capsa_oci_opts *o, struct capsa_oci_config *out,
                     capsa_error_t *err)
{
    cleanup_free char *file = NULL, *want = NULL, *text = NULL, *cfg = NULL;
    struct stage s;
    size_t len = 0;
    json_object *root = NULL, *img = NULL, *v;
    int ret = -1;

    split_archive_ref (spec, &file, &want);
    if (stage_archive (file, o, &s, err) < 0)
        goto out;
    if (stage_read (&s, "manifest.json", OCI_MANIFEST_MAX, &text, &len, err) < 0) {
        capsa_error_wrap (err, "%s: not a docker-archive", file);
        goto out;
    }
    root = json_tokener_parse (text);
    if (root == NULL || !json_object_is_type (root, json_type_array) || json_object_array_length (root) == 0) {
        capsa_error_make (err, 0, "%s: manifest.json is not a non-empty JSON array", file);
        goto out;
    }
    for (size_t i = 0; i < json_object_array_length (root) && img == NULL; i++) {
        json_object *e = json_object_array_get_idx (root, i), *tags;
        if (!json_object_is_type (e, json_type_object))
            continue;
        if (want == NULL) {
            img = e;
            break;
        }
        if (json_object_object_get_ex (e, "RepoTags", &tags) && json_object_is_type (tags, json_type_array))
            for (size_t k = 0; k < json_object_array_length (tags); k++) {
                const char *t = json_object_get_string (json_object_array_get_idx (tags, k));
                if (t && (strcmp (t, want) == 0 || (strrchr (t, ':') && strcmp (strrchr (t, ':') + 1, want) == 0)))
                    img = e;
            }
    }
    if (img == NULL) {
        capsa_error_make (err, ENOENT, "%s: no image %s%s%s in manifest.json", file, want ? "'" : "", want ? want : "",
                          want ? "'" : "");
        goto out;
    }
    if (want == NULL && json_object_array_length (root) > 1)
        oci_notify (o, CAPSA_OCI_WARNING, "%s holds several images; using the first (name one with %s:NAME)", file, file);
    if (!json_object_object_get_ex (img, "Config", &v) || !json_object_is_type (v, json_type_string)) {
        capsa_error_make (err, 0, "%s: manifest.json has no Config", file);
        goto out;
    }
    const char *cfgname = json_object_get_string (v);
    {
        cleanup_close int cfd = stage_open (&s, cfgname, err);
        if (cfd < 0 || read_fd_all (cfd, OCI_CONFIG_MAX, &cfg, &len, err) < 0)
            goto out;
    }
    /* A config named by its digest ("HEX.json", "blobs/sha256/HEX") is checked. */
    {
        char got[OCI_DIGEST_LEN + 1];
        const char *base = strrchr (cfgname, '/') ? strrchr (cfgname, '/') + 1 : cfgname;
        cleanup_free char *claimed = xasprintf ("sha256:%.64s", base);
        oci_digest_buf (cfg, len, got);
        if (oci_digest_valid (claimed) && strcmp (claimed, got) != 0) {
            capsa_error_make (err, EBADMSG, "%s: %s does not match its digest", file, cfgname);
            goto out;
        }
    }
    if (oci_config_parse (cfg, len, out, err) < 0) {
        capsa_error_wrap (err, "%s", file);
        goto out;
    }
    if (!json_object_object_get_ex (img, "Layers", &v) || !json_object_is_type (v, json_type_array)) {
        capsa_error_make (err, 0, "%s: manifest.json has no Layers", file);
        goto out;
    }
    size_t n = json_object_array_length (v);
    for (size_t i = 0; i < n; i++) {
        const char *lname = json_object_get_string (json_object_array_get_idx (v, i));
        if (lname == NULL) {
            capsa_error_make (err, 0, "%s: layer %zu has no name", file, i + 1);
            goto out;
        }
        cleanup_close int fd = -1;
        cleanup_free char *claimed = NULL;
        if (strncmp (lname, "blobs/sha256/", 13) == 0) {
            claimed = xasprintf ("sha256:%s", lname + 13);
            fd = stage_blob (&s, claimed, err);
        } else {
            fd = stage_open (&s, lname, err);
        }
        if (fd < 0 || apply (rootfd, fd, i, n, claimed, o, err) < 0)
            goto out;
    }
    ret = 0;
out:
    json_object_put (root);
    stage_free (&s);
    return ret;
}

int
capsa_oci_fetch_rootfs (const char *ref, const char *rootdir, const struct capsa_oci_opts *o,
                        struct capsa_oci_config *out, capsa_error_t *err)
{
    memset (out, 0, sizeof (*out));
    cleanup_close int rootfd = open (rootdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return capsa_error_make (err, errno, "root directory %s", rootdir);
    int r;
    if (strncmp (ref, "docker://", 9) == 0)
        r = from_registry (ref + 9, rootfd, o, out, err);
    else if (strncmp (ref, "oci-archive:", 12) == 0)
        r = from_oci_archive (ref + 12, rootfd, o, out, err);
    else if (strncmp (ref, "docker-archive:", 15) == 0)
        r = from_docker_archive (ref + 15, rootfd, o, out, err);
    else
        r = capsa_error_make (err, 0, "'%s' is not an image source (docker://, docker-archive:, oci-archive:)", ref);
    if (r < 0) {
        capsa_oci_config_free (out);
        return capsa_error_wrap (err, "%s", ref);
    }
    if (out->arch && strcmp (out->arch, target_arch (o)) != 0)
        oci_notify (o, CAPSA_OCI_WARNING, "%s is built for %s, not %s", ref, out->arch, target_arch (o));
    return 0;
}

int
capsa_oci_resolve (const char *uri, const struct capsa_oci_opts *o, char **digest_out, char **pinned, char **refstr_out,
                   bool *unreachable, capsa_error_t *err)
{
    struct capsa_oci_ref ref;
    struct oci_client *c = NULL;
    struct oci_manifest m = { 0 };
    cleanup_free char *digest = NULL;
    int ret = -1;

    *unreachable = false;
    *refstr_out = *pinned = *digest_out = NULL;
    if (strncmp (uri, "docker://", 9) != 0)
        return capsa_error_make (err, 0, "'%s' is not a docker:// URI", uri);
    if (capsa_oci_ref_parse (uri + 9, &ref, err) < 0)
        return -1;
    *refstr_out = capsa_oci_ref_string (&ref);
    if (oci_client_new (&ref, o, false, &c, err) < 0)
        goto out;
    if (oci_get_manifest (c, ref.digest ? ref.digest : ref.tag, &m, NULL, NULL, &digest, err) < 0) {
        *unreachable = oci_client_unreachable (c);
        goto out;
    }
    if (m.kind == OCI_KIND_INDEX) {
        const struct oci_descriptor *d;
        if (oci_index_select (&m, target_arch (o), &d, err) < 0) {
            capsa_error_wrap (err, "%s", *refstr_out);
            goto out;
        }
        /* The index names the platform's manifest by digest: that is
         * the image this machine runs. */
        free (digest);
        digest = xstrdup (d->digest);
    } else if (m.config.media_type && strstr (m.config.media_type, "sylabs.sif") != NULL) {
        capsa_error_make (err, 0, "%s is a SIF image pushed as an ORAS artifact: use oras://%s", *refstr_out, uri + 9);
        goto out;
    }
    if (oci_digest_check (digest, err) < 0)
        goto out;
    *pinned = xasprintf ("docker://%s/%s@%s", ref.registry, ref.repository, digest);
    *digest_out = steal_ptr (&digest);
    ret = 0;
out:
    oci_manifest_free (&m);
    oci_client_free (c);
    capsa_oci_ref_free (&ref);
    return ret;
}

/* Manifests, indexes and image configs (OCI image spec and Docker schema 2),
 * parsed from untrusted JSON with json-c: bounded size and depth, every
 * field type-checked, every digest checked for form.
 * Fuzzed by tests/fuzz/fuzz_manifest.c. */
#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#include "oci/oci_private.h"

static json_object *
parse_json (const char *buf, size_t len, const char *what, capsa_error_t *err)
{
    if (len > OCI_CONFIG_MAX || len > (size_t) INT32_MAX) {
        capsa_error_make (err, EFBIG, "%s is too large (%zu bytes)", what, len);
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex (OCI_JSON_DEPTH);
    if (tok == NULL) {
        capsa_error_make (err, ENOMEM, "%s", what);
        return NULL;
    }
    json_object *o = json_tokener_parse_ex (tok, buf, (int) len);
    enum json_tokener_error e = json_tokener_get_error (tok);
    size_t end = json_tokener_get_parse_end (tok);
    json_tokener_free (tok);
    if (o == NULL || e != json_tokener_success) {
        json_object_put (o);
        capsa_error_make (err, 0, "%s is not valid JSON (%s)", what,
                          e == json_tokener_continue ? "unexpected end" : json_tokener_error_desc (e));
        return NULL;
    }
    for (; end < len; end++) {
        char c = buf[end];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            json_object_put (o);
            capsa_error_make (err, 0, "%s: unexpected data after the JSON document", what);
            return NULL;
        }
    }
    if (!json_object_is_type (o, json_type_object)) {
        json_object_put (o);
        capsa_error_make (err, 0, "%s is not a JSON object", what);
        return NULL;
    }
    return o;
}

/* A string member, or NULL when absent; error when present with another type. */
static int
get_string (json_object *o, const char *key, char **out, const char *what, capsa_error_t *err)
{
    json_object *v;
    *out = NULL;
    if (!json_object_object_get_ex (o, key, &v) || json_object_is_type (v, json_type_null))
        return 0;
    if (!json_object_is_type (v, json_type_string))
        return capsa_error_make (err, 0, "%s: \"%s\" is not a string", what, key);
    const char *s = json_object_get_string (v);
    if (strlen (s) != (size_t) json_object_get_string_len (v))
        return capsa_error_make (err, 0, "%s: \"%s\" contains a NUL character", what, key);
    *out = xstrdup (s);
    return 0;
}

static int
get_strv (json_object *o, const char *key, struct strv *out, const char *what, capsa_error_t *err)
{
    json_object *v;
    if (!json_object_object_get_ex (o, key, &v) || json_object_is_type (v, json_type_null))
        return 0;
    if (!json_object_is_type (v, json_type_array))
        return capsa_error_make (err, 0, "%s: \"%s\" is not an array", what, key);
    size_t n = json_object_array_length (v);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx (v, i);
        if (!json_object_is_type (e, json_type_string))
            return capsa_error_make (err, 0, "%s: \"%s\"[%zu] is not a string", what, key, i);
        const char *s = json_object_get_string (e);
        if (strlen (s) != (size_t) json_object_get_string_len (e))
            return capsa_error_make (err, 0, "%s: \"%s\"[%zu] contains a NUL character", what, key, i);
        strv_push (out, s);
    }
    return 0;
}

void
oci_descriptor_free (struct oci_descriptor *d)
{
    free (d->media_type);
    free (d->digest);
    free (d->title);
    free (d->ref_name);
    free (d->os);
    free (d->arch);
    free (d->variant);
    memset (d, 0, sizeof (*d));
}

static int
parse_descriptor (json_object *o, struct oci_descriptor *d, const char *what, capsa_error_t *err)
{
    json_object *v;
    memset (d, 0, sizeof (*d));
    d->size = -1;
    if (!json_object_is_type (o, json_type_object))
        return capsa_error_make (err, 0, "%s is not a JSON object", what);
    if (get_string (o, "mediaType", &d->media_type, what, err) < 0 || get_string (o, "digest", &d->digest, what, err) < 0)
        return -1;
    if (d->digest == NULL)
        return capsa_error_make (err, 0, "%s has no digest", what);
    if (oci_digest_check (d->digest, err) < 0)
        return capsa_error_wrap (err, "%s", what);
    if (json_object_object_get_ex (o, "size", &v)) {
        if (!json_object_is_type (v, json_type_int))
            return capsa_error_make (err, 0, "%s: \"size\" is not an integer", what);
        errno = 0;
        int64_t sz = json_object_get_int64 (v);
        if (sz < 0 || errno == EINVAL)
            return capsa_error_make (err, 0, "%s: invalid size", what);
        d->size = sz;
    }
    if (json_object_object_get_ex (o, "annotations", &v) && !json_object_is_type (v, json_type_null)) {
        if (!json_object_is_type (v, json_type_object))
            return capsa_error_make (err, 0, "%s: \"annotations\" is not an object", what);
        if (get_string (v, "org.opencontainers.image.title", &d->title, what, err) < 0
            || get_string (v, "org.opencontainers.image.ref.name", &d->ref_name, what, err) < 0)
            return -1;
    }
    if (json_object_object_get_ex (o, "platform", &v) && !json_object_is_type (v, json_type_null)) {
        if (!json_object_is_type (v, json_type_object))
            return capsa_error_make (err, 0, "%s: \"platform\" is not an object", what);
        if (get_string (v, "os", &d->os, what, err) < 0 || get_string (v, "architecture", &d->arch, what, err) < 0
            || get_string (v, "variant", &d->variant, what, err) < 0)
            return -1;
    }
    return 0;
}

void
oci_manifest_free (struct oci_manifest *m)
{
    free (m->media_type);
    oci_descriptor_free (&m->config);
    for (size_t i = 0; i < m->nlayers; i++)
        oci_descriptor_free (&m->layers[i]);
    free (m->layers);
    for (size_t i = 0; i < m->nmanifests; i++)
        oci_descriptor_free (&m->manifests[i]);
    free (m->manifests);
    memset (m, 0, sizeof (*m));
}

static int
parse_list (json_object *arr, struct oci_descriptor **out, size_t *n, const char *what, capsa_error_t *err)
{
    if (!json_object_is_type (arr, json_type_array))
        return capsa_error_make (err, 0, "manifest: \"%s\" is not an array", what);
    size_t len = json_object_array_length (arr);
    if (len > OCI_MAX_LAYERS)
        return capsa_error_make (err, 0, "manifest: too many %s (%zu, at most %d)", what, len, OCI_MAX_LAYERS);
    *out = xcalloc (len ? len : 1, sizeof (**out));
    for (size_t i = 0; i < len; i++) {
        char name[64];
        snprintf (name, sizeof (name), "manifest: %s[%zu]", what, i);
        /* Count it first so that a half-parsed descriptor is freed too. */
        *n = i + 1;
        if (parse_descriptor (json_object_array_get_idx (arr, i), &(*out)[i], name, err) < 0)
            return -1;
    }
    *n = len;
    return 0;
}

int
oci_manifest_parse (const char *buf, size_t len, const char *content_type, struct oci_manifest *out,
                    capsa_error_t *err)
{
    json_object *v;
    int ret = -1;
    memset (out, 0, sizeof (*out));
    if (len > OCI_MANIFEST_MAX)
        return capsa_error_make (err, EFBIG, "manifest is too large (%zu bytes)", len);
    json_object *o = parse_json (buf, len, "manifest", err);
    if (o == NULL)
        return -1;
    if (get_string (o, "mediaType", &out->media_type, "manifest", err) < 0)
        goto out;
    if (out->media_type == NULL && content_type != NULL && *content_type) {
        /* "application/json; charset=utf-8" -> the type alone */
        size_t n = strcspn (content_type, "; \t");
        out->media_type = xasprintf ("%.*s", (int) n, content_type);
    }
    if (json_object_object_get_ex (o, "schemaVersion", &v)) {
        if (!json_object_is_type (v, json_type_int)) {
            capsa_error_make (err, 0, "manifest: \"schemaVersion\" is not an integer");
            goto out;
        }
        int sv = json_object_get_int (v);
        if (sv == 1) {
            capsa_error_make (err, 0, "Docker schema 1 manifests are not supported (push the image again with a "
                                      "current client)");
            goto out;
        }
        if (sv != 2) {
            capsa_error_make (err, 0, "manifest: unsupported schemaVersion %d", sv);
            goto out;
        }
    } else {
        capsa_error_make (err, 0, "manifest: no schemaVersion");
        goto out;
    }
    bool has_manifests = json_object_object_get_ex (o, "manifests", NULL);
    bool has_layers = json_object_object_get_ex (o, "layers", NULL);
    const char *mt = out->media_type ? out->media_type : "";
    if ((has_manifests && !has_layers) || strcmp (mt, OCI_MT_INDEX) == 0 || strcmp (mt, DOCKER_MT_LIST) == 0) {
        out->kind = OCI_KIND_INDEX;
        if (!json_object_object_get_ex (o, "manifests", &v)) {
            capsa_error_make (err, 0, "index: no \"manifests\"");
            goto out;
        }
        if (parse_list (v, &out->manifests, &out->nmanifests, "manifests", err) < 0)
            goto out;
    } else {
        out->kind = OCI_KIND_MANIFEST;
        if (!json_object_object_get_ex (o, "config", &v)) {
            capsa_error_make (err, 0, "manifest: no \"config\"");
            goto out;
        }
        if (parse_descriptor (v, &out->config, "manifest: config", err) < 0)
            goto out;
        if (!json_object_object_get_ex (o, "layers", &v)) {
            capsa_error_make (err, 0, "manifest: no \"layers\"");
            goto out;
        }
        if (parse_list (v, &out->layers, &out->nlayers, "layers", err) < 0)
            goto out;
    }
    ret = 0;
out:
    json_object_put (o);
    if (ret < 0)
        oci_manifest_free (out);
    return ret;
}

int
oci_index_select (const struct oci_manifest *idx, const char *arch, const struct oci_descriptor **out,
                  capsa_error_t *err)
{
    const char *want_variant = NULL;
    const char *want = arch;
    char base[32];

    /* "arm64v8", "armv7" -> architecture and variant */
    const char *vpos = strstr (arch, "v");
    if (strncmp (arch, "arm", 3) == 0 && vpos != NULL && vpos > arch + 2 && vpos[1] >= '0' && vpos[1] <= '9'
        && (size_t) (vpos - arch) < sizeof (base)) {
        memcpy (base, arch, (size_t) (vpos - arch));
        base[vpos - arch] = '\0';
        want = base;
        want_variant = vpos;
    }
    for (size_t i = 0; i < idx->nmanifests; i++) {
        const struct oci_descriptor *d = &idx->manifests[i];
        if (d->arch == NULL || strcmp (d->arch, want) != 0)
            continue;
        if (d->os != NULL && strcmp (d->os, "linux") != 0)
            continue;
        if (want_variant && d->variant && strcmp (d->variant, want_variant) != 0)
            continue;
        *out = d;
        return 0;
    }
    struct strv have = { 0 };
    size_t total = 0;
    for (size_t i = 0; i < idx->nmanifests; i++) {
        const struct oci_descriptor *d = &idx->manifests[i];
        char *p = xasprintf ("%s/%s%s%s", d->os ? d->os : "?", d->arch ? d->arch : "?", d->variant ? "/" : "",
                             d->variant ? d->variant : "");
        total += strlen (p) + 2;
        strv_push_take (&have, p);
    }
    char *list = xcalloc (1, total + 1);
    for (size_t i = 0; i < have.n; i++) {
        if (i)
            strcat (list, ", ");
        strcat (list, have.v[i]);
    }
    capsa_error_make (err, ENOENT, "the image has no linux/%s variant (it has: %s)", arch, have.n ? list : "none");
    free (list);
    strv_free (&have);
    return -1;
}

void
capsa_oci_config_free (struct capsa_oci_config *c)
{
    if (c == NULL)
        return;
    strv_free (&c->env);
    strv_free (&c->entrypoint);
    strv_free (&c->cmd);
    strv_free (&c->labels);
    free (c->workingdir);
    free (c->user);
    free (c->arch);
    free (c->digest);
    memset (c, 0, sizeof (*c));
}

int
oci_config_parse (const char *buf, size_t len, struct capsa_oci_config *out, capsa_error_t *err)
{
    json_object *v, *cfg;
    int ret = -1;
    json_object *o = parse_json (buf, len, "image config", err);
    if (o == NULL)
        return -1;
    if (get_string (o, "architecture", &out->arch, "image config", err) < 0)
        goto out;
    if (!json_object_object_get_ex (o, "config", &cfg) || json_object_is_type (cfg, json_type_null)) {
        ret = 0;
        goto out;
    }
    if (!json_object_is_type (cfg, json_type_object)) {
        capsa_error_make (err, 0, "image config: \"config\" is not an object");
        goto out;
    }
    if (get_strv (cfg, "Env", &out->env, "image config", err) < 0
        || get_strv (cfg, "Entrypoint", &out->entrypoint, "image config", err) < 0
        || get_strv (cfg, "Cmd", &out->cmd, "image config", err) < 0
        || get_string (cfg, "WorkingDir", &out->workingdir, "image config", err) < 0
        || get_string (cfg, "User", &out->user, "image config", err) < 0)
        goto out;
    if (out->workingdir && *out->workingdir == '\0') {
        free (out->workingdir);
        out->workingdir = NULL;
    }
    if (json_object_object_get_ex (cfg, "Labels", &v) && !json_object_is_type (v, json_type_null)) {
        if (!json_object_is_type (v, json_type_object)) {
            capsa_error_make (err, 0, "image config: \"Labels\" is not an object");
            goto out;
        }
        json_object_object_foreach (v, key, val)
        {
            if (!json_object_is_type (val, json_type_string)) {
                capsa_error_make (err, 0, "image config: label \"%.80s\" is not a string", key);
                goto out;
            }
            strv_push_take (&out->labels, xasprintf ("%s=%s", key, json_object_get_string (val)));
        }
    }
    ret = 0;
out:
    json_object_put (o);
    return ret;
}

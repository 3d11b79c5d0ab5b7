/* Image references: "HOST[:PORT]/REPO[:TAG][@DIGEST]", as Docker reads them. */
#include <string.h>

#include "oci/oci_private.h"

static bool
valid_host (const char *h)
{
    size_t n = strlen (h);
    if (n == 0 || n > 255)
        return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.'
              || *p == '-' || *p == ':' || *p == '[' || *p == ']'))
            return false;
    return true;
}

/* Lower-case components of [a-z0-9] joined by '.', '_', '__' or '-'
 * runs, separated by '/'. */
static bool
valid_repository (const char *r)
{
    size_t n = strlen (r);
    if (n == 0 || n > 255)
        return false;
    bool start = true;
    for (const char *p = r; *p; p++) {
        bool alnum = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (*p == '/') {
            if (start)
                return false;
            start = true;
            continue;
        }
        if (!alnum && *p != '.' && *p != '_' && *p != '-')
            return false;
        if (start && !alnum)
            return false;
        start = false;
    }
    if (start)
        return false;
    /* A component may not end with a separator either. */
    for (const char *p = r; *p; p++)
        if ((*p == '.' || *p == '_' || *p == '-') && (p[1] == '/' || p[1] == '\0'))
            return false;
    return true;
}

static bool
valid_tag (const char *t)
{
    size_t n = strlen (t);
    if (n == 0 || n > 128)
        return false;
    for (const char *p = t; *p; p++) {
        bool w = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_';
        if (!w && (p == t || (*p != '.' && *p != '-')))
            return false;
    }
    return true;
}

void
capsa_oci_ref_free (struct capsa_oci_ref *r)
{
    free (r->registry);
    free (r->repository);
    free (r->tag);
    free (r->digest);
    memset (r, 0, sizeof (*r));
}

int
capsa_oci_ref_parse (const char *s, struct capsa_oci_ref *out, capsa_error_t *err)
{
    memset (out, 0, sizeof (*out));
    if (s == NULL || *s == '\0')
        return capsa_error_make (err, 0, "empty image reference");
    cleanup_free char *copy = xstrdup (s);
    char *name = copy;

    char *at = strchr (name, '@');
    if (at != NULL) {
        *at = '\0';
        if (oci_digest_check (at + 1, err) < 0)
            return capsa_error_wrap (err, "image reference '%s'", s);
        out->digest = xstrdup (at + 1);
    }
    char *slash = strchr (name, '/');
    if (slash != NULL && (memchr (name, '.', (size_t) (slash - name)) || memchr (name, ':', (size_t) (slash - name))
                          || strncmp (name, "localhost/", 10) == 0)) {
        *slash = '\0';
        out->registry = xstrdup (name);
        name = slash + 1;
    } else {
        out->registry = xstrdup ("docker.io");
    }
    if (strcmp (out->registry, "index.docker.io") == 0 || strcmp (out->registry, "registry-1.docker.io") == 0) {
        free (out->registry);
        out->registry = xstrdup ("docker.io");
    }
    char *colon = strrchr (name, ':');
    if (colon != NULL && strchr (colon, '/') == NULL) {
        *colon = '\0';
        out->tag = xstrdup (colon + 1);
        if (!valid_tag (out->tag)) {
            capsa_error_make (err, 0, "image reference '%s': invalid tag '%s'", s, out->tag);
            capsa_oci_ref_free (out);
            return -1;
        }
    } else if (out->digest == NULL) {
        out->tag = xstrdup ("latest");
    }
    if (strcmp (out->registry, "docker.io") == 0 && strchr (name, '/') == NULL)
        out->repository = xasprintf ("library/%s", name);
    else
        out->repository = xstrdup (name);
    if (!valid_host (out->registry)) {
        capsa_error_make (err, 0, "image reference '%s': invalid registry host '%s'", s, out->registry);
        capsa_oci_ref_free (out);
        return -1;
    }
    if (!valid_repository (out->repository)) {
        capsa_error_make (err, 0,
                          "image reference '%s': invalid repository name '%s' (lower-case letters, digits, "
                          "'.', '_', '-' and '/')",
                          s, out->repository);
        capsa_oci_ref_free (out);
        return -1;
    }
    return 0;
}

char *
capsa_oci_ref_string (const struct capsa_oci_ref *r)
{
    if (r->digest != NULL)
        return xasprintf ("%s/%s@%s", r->registry, r->repository, r->digest);
    return xasprintf ("%s/%s:%s", r->registry, r->repository, r->tag ? r->tag : "latest");
}

bool
capsa_oras_is_uri (const char *s)
{
    return s != NULL && strncmp (s, "oras://", 7) == 0;
}

/* The registry credentials file, in the format Docker and Podman use:
 *   {"auths": {"HOST": {"auth": "base64(USER:PASSWORD)"}}}
 * Mode 0600 in a 0700 directory of the user's; other top-level keys a
 * Docker config may hold are kept.  Updates take a lock (FILE.lock) and
 * replace the file atomically (temporary file, fsync, rename).  Passwords
 * never appear in messages. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pwd.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "oci/oci_private.h"

#define CREDS_MAX (1 << 20)

static const char *
home_dir (void)
{
    const char *h = getenv ("HOME");
    if (h != NULL && *h == '/')
        return h;
    struct passwd *pw = getpwuid (getuid ());
    return pw && pw->pw_dir ? pw->pw_dir : "/";
}

char *
capsa_oci_default_authfile (void)
{
    return xasprintf ("%s/.capsa/registry.json", home_dir ());
}

char *
capsa_oci_default_cachedir (void)
{
    const char *d = getenv ("CAPSA_CACHEDIR");
    if (d != NULL && *d)
        return xstrdup (d);
    /* Apptainer's variables name the directory its cache is made in;
     * capsa's goes into DIR/capsa there, beside Apptainer's DIR/cache,
     * whose layout differs. */
    d = getenv ("APPTAINER_CACHEDIR");
    if (d == NULL || *d == '\0')
        d = getenv ("SINGULARITY_CACHEDIR");
    if (d != NULL && *d)
        return xasprintf ("%s/capsa", d);
    return xasprintf ("%s/.capsa/cache", home_dir ());
}

/* Read and parse the file; *out NULL when it does not exist. */
static int
load (const char *path, json_object **out, capsa_error_t *err)
{
    struct stat st;
    cleanup_free char *text = NULL;
    size_t len = 0;
    *out = NULL;
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return capsa_error_make (err, errno, "credentials file %s", path);
    }
    if (fstat (fd, &st) < 0)
        return capsa_error_make (err, errno, "credentials file %s", path);
    if (!S_ISREG (st.st_mode))
        return capsa_error_make (err, 0, "credentials file %s is not a regular file", path);
    if (st.st_mode & 077)
        return capsa_error_make (err, 0,
                                 "credentials file %s is accessible by others (mode %04o); "
                                 "run 'chmod 0600 %s'",
                                 path, (unsigned) (st.st_mode & 07777), path);
    if (read_fd_all (fd, CREDS_MAX, &text, &len, err) < 0)
        return capsa_error_wrap (err, "credentials file %s", path);
    if (len == 0) {
        *out = json_object_new_object ();
        return 0;
    }
    json_object *o = json_tokener_parse (text);
    if (o == NULL || !json_object_is_type (o, json_type_object)) {
        json_object_put (o);
        return capsa_error_make (err, 0, "credentials file %s is not a JSON object", path);
    }
    *out = o;
    return 0;
}

/* "https://index.docker.io/v1/" -> "index.docker.io" (new string). */
static char *
key_host (const char *key)
{
    const char *p = strstr (key, "://");
    p = p ? p + 3 : key;
    size_t n = strcspn (p, "/");
    return xasprintf ("%.*s", (int) n, p);
}

static bool
host_matches (const char *key, const char *host)
{
    cleanup_free char *k = key_host (key);
    if (strcmp (k, host) == 0)
        return true;
    static const char *const hub[] = { "docker.io", "index.docker.io", "registry-1.docker.io" };
    bool kh = false, hh = false;
    for (size_t i = 0; i < ARRAY_SIZE (hub); i++) {
        kh |= strcmp (k, hub[i]) == 0;
        hh |= strcmp (host, hub[i]) == 0;
    }
    return kh && hh;
}

static json_object *
find_entry (json_object *root, const char *host, const char **key_out)
{
    json_object *auths;
    if (root == NULL || !json_object_object_get_ex (root, "auths", &auths) || !json_object_is_type (auths, json_type_object))
        return NULL;
    /* An exact key first, then aliases. */
    json_object *e;
    if (json_object_object_get_ex (auths, host, &e)) {
        if (key_out)
            *key_out = host;
        return e;
    }
    json_object_object_foreach (auths, key, val)
    {
        if (host_matches (key, host)) {
            if (key_out)
                *key_out = key;
            return val;
        }
    }
    return NULL;
}

static int
decode_entry (json_object *e, char **user, char **password, const char *path, capsa_error_t *err)
{
    json_object *v;
    if (!json_object_is_type (e, json_type_object))
        return capsa_error_make (err, 0, "credentials file %s: an entry is not an object", path);
    if (json_object_object_get_ex (e, "auth", &v) && json_object_is_type (v, json_type_string)
        && json_object_get_string_len (v) > 0) {
        char *plain = NULL;
        size_t len = 0;
        if (oci_base64_decode (json_object_get_string (v), &plain, &len) < 0 || strlen (plain) != len
            || strchr (plain, ':') == NULL) {
            free (plain);
            return capsa_error_make (err, 0, "credentials file %s: an \"auth\" value is not base64 of USER:PASSWORD",
                                     path);
        }
        char *colon = strchr (plain, ':');
        *user = xasprintf ("%.*s", (int) (colon - plain), plain);
        *password = xstrdup (colon + 1);
        explicit_bzero (plain, len);
        free (plain);
        return 0;
    }
    json_object *u, *p;
    if (json_object_object_get_ex (e, "username", &u) && json_object_object_get_ex (e, "password", &p)
        && json_object_is_type (u, json_type_string) && json_object_is_type (p, json_type_string)) {
        *user = xstrdup (json_object_get_string (u));
        *password = xstrdup (json_object_get_string (p));
        return 0;
    }
    return capsa_error_make (err, 0, "credentials file %s: an entry has no \"auth\"", path);
}

int
capsa_creds_get (const char *authfile, const char *host, char **user, char **password, bool *found,
                 capsa_error_t *err)
{
    cleanup_free char *def = authfile ? NULL : capsa_oci_default_authfile ();
    const char *path = authfile ? authfile : def;
    json_object *root = NULL;
    *user = *password = NULL;
    *found = false;
    if (load (path, &root, err) < 0)
        return -1;
    json_object *e = find_entry (root, host, NULL);
    int r = 0;
    if (e != NULL) {
        r = decode_entry (e, user, password, path, err);
        *found = r == 0;
    }
    json_object_put (root);
    return r;
}

int
capsa_creds_list (const char *authfile, struct strv *out, capsa_error_t *err)
{
    cleanup_free char *def = authfile ? NULL : capsa_oci_default_authfile ();
    const char *path = authfile ? authfile : def;
    json_object *root = NULL, *auths;
    if (load (path, &root, err) < 0)
        return -1;
    if (root != NULL && json_object_object_get_ex (root, "auths", &auths) && json_object_is_type (auths, json_type_object)) {
        json_object_object_foreach (auths, key, val)
        {
            char *u = NULL, *p = NULL;
            capsa_error_t ignore = NULL;
            if (decode_entry (val, &u, &p, path, &ignore) == 0)
                strv_push_take (out, xasprintf ("%s\t%s", key, u));
            else
                strv_push_take (out, xasprintf ("%s\t?", key));
            capsa_error_free (&ignore);
            if (p)
                explicit_bzero (p, strlen (p));
            free (u);
            free (p);
        }
    }
    json_object_put (root);
    return 0;
}

/* mkdir -p of PATH's directory, 0700 for the directories made here. */
static int
make_parent (const char *path, capsa_error_t *err)
{
    cleanup_free char *dir = xstrdup (path);
    char *slash = strrchr (dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir (dir, 0700) < 0 && errno != EEXIST)
            return capsa_error_make (err, errno, "mkdir %s", dir);
        *p = '/';
    }
    if (mkdir (dir, 0700) < 0 && errno != EEXIST)
        return capsa_error_make (err, errno, "mkdir %s", dir);
    return 0;
}

/* Apply CHANGE to the file's JSON under the lock and replace it. */
static int
update (const char *authfile, int (*change) (json_object *root, void *data, capsa_error_t *err), void *data,
        capsa_error_t *err)
{
    cleanup_free char *def = authfile ? NULL : capsa_oci_default_authfile ();
    const char *path = authfile ? authfile : def;
    cleanup_free char *lockpath = xasprintf ("%s.lock", path);
    cleanup_free char *tmp = xasprintf ("%s.XXXXXX", path);
    json_object *root = NULL;
    int ret = -1;

    if (make_parent (path, err) < 0)
        return capsa_error_wrap (err, "credentials file %s", path);
    cleanup_close int lock = open (lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock < 0 || flock (lock, LOCK_EX) < 0)
        return capsa_error_make (err, errno, "lock %s", lockpath);
    if (load (path, &root, err) < 0)
        return -1;
    if (root == NULL)
        root = json_object_new_object ();
    if (change (root, data, err) < 0)
        goto out;
    const char *text = json_object_to_json_string_ext (root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    mode_t old = umask (077);
    int fd = mkostemp (tmp, O_CLOEXEC);
    umask (old);
    if (fd < 0) {
        capsa_error_make (err, errno, "create %s", tmp);
        goto out;
    }
    if (fchmod (fd, 0600) < 0 || write_all (fd, text, strlen (text)) < 0 || write_all (fd, "\n", 1) < 0
        || fsync (fd) < 0) {
        capsa_error_make (err, errno, "write %s", tmp);
        close (fd);
        unlink (tmp);
        goto out;
    }
    close (fd);
    if (rename (tmp, path) < 0) {
        capsa_error_make (err, errno, "rename %s to %s", tmp, path);
        unlink (tmp);
        goto out;
    }
    ret = 0;
out:
    json_object_put (root);
    return ret;
}

struct set_data {
    const char *host, *user, *password;
};

static int
do_set (json_object *root, void *data, capsa_error_t *err)
{
    struct set_data *d = data;
    json_object *auths;
    if (!json_object_object_get_ex (root, "auths", &auths) || !json_object_is_type (auths, json_type_object)) {
        auths = json_object_new_object ();
        json_object_object_add (root, "auths", auths);
    }
    const char *key = NULL;
    if (find_entry (root, d->host, &key) != NULL) {
        cleanup_free char *k = xstrdup (key);
        json_object_object_del (auths, k);
    }
    cleanup_free char *plain = xasprintf ("%s:%s", d->user, d->password);
    cleanup_free char *b64 = oci_base64_encode (plain, strlen (plain));
    json_object *e = json_object_new_object ();
    json_object_object_add (e, "auth", json_object_new_string (b64));
    json_object_object_add (auths, d->host, e);
    explicit_bzero (plain, strlen (plain));
    explicit_bzero (b64, strlen (b64));
    return 0;
}

int
capsa_creds_set (const char *authfile, const char *host, const char *user, const char *password,
                 capsa_error_t *err)
{
    struct set_data d = { host, user, password };
    if (strchr (user, ':') != NULL)
        return capsa_error_make (err, 0, "a user name cannot contain ':'");
    return update (authfile, do_set, &d, err);
}

struct rm_data {
    const char *host;
    bool *found;
};

static int
do_remove (json_object *root, void *data, capsa_error_t *err)
{
    struct rm_data *d = data;
    json_object *auths;
    const char *key = NULL;
    (void) err;
    while (find_entry (root, d->host, &key) != NULL && json_object_object_get_ex (root, "auths", &auths)) {
        cleanup_free char *k = xstrdup (key);
        json_object_object_del (auths, k);
        *d->found = true;
    }
    return 0;
}

int
capsa_creds_remove (const char *authfile, const char *host, bool *found, capsa_error_t *err)
{
    struct rm_data d = { host, found };
    *found = false;
    return update (authfile, do_remove, &d, err);
}

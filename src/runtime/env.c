/* The command's environment, as Apptainer builds it, and the container's
 * /etc/passwd and /etc/group.
 *
 * capsa_env_build decides two things after the final drop (child.c):
 *
 *   c->env           the environment the action script starts from
 *                    (Apptainer's process environment): the caller's
 *                    variables that are passed on, then HOME, PATH, PWD and
 *                    the APPTAINER_/SINGULARITY_/CAPSA_ variables capsa sets
 *   c->env_override  KEY=VALUE set after the image's env scripts (and
 *                    evaluated there unless --no-eval), from, highest
 *                    precedence first: --env, --env-file, CAPSAENV_X,
 *                    APPTAINERENV_X, SINGULARITYENV_X.  The first source of
 *                    a key wins; a different value from a lower one is a
 *                    warning.  PATH, PREPEND_PATH and APPEND_PATH become
 *                    Apptainer's SING_USER_DEFINED_* variables, applied
 *                    last (envscript.c); HOME and the shell/app variables
 *                    may not be overridden.
 *
 * Pure functions of their inputs: nothing here touches the file system
 * except capsa_env_read_file/fd(), which read --env-file as the user. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/container.h"
#include "runtime/envfile.h"
#include "runtime/instance.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

bool
capsa_env_valid_name (const char *s, size_t len)
{
    if (len == 0 || !(isalpha ((unsigned char) s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum ((unsigned char) s[i]) || s[i] == '_'))
            return false;
    return true;
}
#define valid_name capsa_env_valid_name

static bool
has_prefix (const char *s, const char *prefix)
{
    return strncmp (s, prefix, strlen (prefix)) == 0;
}

static bool
key_is (const char *kv, const char *key)
{
    size_t l = strlen (key);
    return strncmp (kv, key, l) == 0 && kv[l] == '=';
}

/* Variables of capsa and Apptainer themselves: settings for the runtime,
 * never passed in under their own name. */
static bool
runtime_prefix (const char *kv)
{
    static const char *const prefixes[] = { "CAPSA_", "CAPSAENV_", "APPTAINER_", "APPTAINERENV_", "SINGULARITY_",
                                            "SINGULARITYENV_" };
    for (size_t i = 0; i < ARRAY_SIZE (prefixes); i++)
        if (has_prefix (kv, prefixes[i]))
            return true;
    return false;
}

/* The caller's variables never passed in: the container has its own
 * (Apptainer: HOME, PATH, LD_LIBRARY_PATH; capsa sets PWD itself). */
static bool
host_only (const char *kv)
{
    return key_is (kv, "HOME") || key_is (kv, "PATH") || key_is (kv, "LD_LIBRARY_PATH") || key_is (kv, "PWD");
}

/* What --cleanenv keeps (Apptainer: the terminal type and the proxies). */
static bool
clean_keep (const char *kv)
{
    static const char *const keep[] = { "TERM",        "http_proxy", "HTTP_PROXY", "https_proxy",
                                        "HTTPS_PROXY", "no_proxy",   "NO_PROXY",   "all_proxy",
                                        "ALL_PROXY",   "ftp_proxy",  "FTP_PROXY" };
    for (size_t i = 0; i < ARRAY_SIZE (keep); i++)
        if (key_is (kv, keep[i]))
            return true;
    return false;
}

static void
env_set (struct strv *env, const char *key, const char *value)
{
    size_t klen = strlen (key);
    for (size_t i = 0; i < env->n; i++) {
        if (strncmp (env->v[i], key, klen) == 0 && env->v[i][klen] == '=') {
            free (env->v[i]);
            env->v[i] = xasprintf ("%s=%s", key, value);
            return;
        }
    }
    strv_push_take (env, xasprintf ("%s=%s", key, value));
}

/* The value of KEY in ENV (KEY=VALUE entries), or NULL. */
static const char *
env_get (const struct strv *env, const char *key, size_t klen)
{
    for (size_t i = 0; i < env->n; i++)
        if (strncmp (env->v[i], key, klen) == 0 && env->v[i][klen] == '=')
            return env->v[i] + klen + 1;
    return NULL;
}

/* PATH, PREPEND_PATH, APPEND_PATH are applied after everything else,
 * under Apptainer's names (its images' 99-runtimevars.sh knows them). */
static const char *
mapped_key (const char *key)
{
    if (strcmp (key, "PATH") == 0)
        return "SING_USER_DEFINED_PATH";
    if (strcmp (key, "PREPEND_PATH") == 0)
        return "SING_USER_DEFINED_PREPEND_PATH";
    if (strcmp (key, "APPEND_PATH") == 0)
        return "SING_USER_DEFINED_APPEND_PATH";
    return key;
}

static bool
not_overridable (const char *key)
{
    static const char *const no[] = { "HOME", "APPTAINER_SHELL", "APPTAINER_APPNAME", "SINGULARITY_SHELL",
                                      "SINGULARITY_APPNAME" };
    for (size_t i = 0; i < ARRAY_SIZE (no); i++)
        if (strcmp (key, no[i]) == 0)
            return true;
    return false;
}

/* Add KEY=VALUE from SOURCE (e.g. "APPTAINERENV_FOO", "--env") to the
 * overrides unless a source of higher precedence set KEY already. */
static void
add_override (struct capsa_container *c, const char *kv, const char *source, struct strv *warnings)
{
    const char *eq = strchr (kv, '=');
    if (eq == NULL)
        return;
    cleanup_free char *key = strndup (kv, (size_t) (eq - kv));
    if (key == NULL)
        abort ();
    if (!valid_name (key, strlen (key))) {
        strv_push_take (warnings, xasprintf ("ignoring %s: '%s' is not a valid variable name", source, key));
        return;
    }
    if (not_overridable (key)) {
        strv_push_take (warnings, xasprintf ("overriding %s with %s is not permitted", key, source));
        return;
    }
    const char *mk = mapped_key (key);
    const char *old = env_get (&c->env_override, mk, strlen (mk));
    if (old != NULL) {
        if (strcmp (old, eq + 1) != 0)
            strv_push_take (warnings, xasprintf ("ignoring %s=%s: %s is already set to '%s' by a source of higher "
                                                 "precedence",
                                                 source, eq + 1, key, old));
        return;
    }
    strv_push_take (&c->env_override, xasprintf ("%s=%s", mk, eq + 1));
}

/* PATH made absolute and cleaned as Go's filepath.Abs does (no symlinks
 * resolved): what APPTAINER_CONTAINER holds even for a relative path. */
char *
capsa_env_abs_path (const char *path, const char *cwd)
{
    cleanup_free char *joined = path[0] == '/' || cwd == NULL ? xstrdup (path) : xasprintf ("%s/%s", cwd, path);
    char *out = xmalloc (strlen (joined) + 2);
    size_t n = 0;
    char *save = NULL;
    for (char *comp = strtok_r (joined, "/", &save); comp; comp = strtok_r (NULL, "/", &save)) {
        if (strcmp (comp, ".") == 0)
            continue;
        if (strcmp (comp, "..") == 0) {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            continue;
        }
        out[n++] = '/';
        memcpy (out + n, comp, strlen (comp));
        n += strlen (comp);
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
    return out;
}

void
capsa_env_build (struct capsa_container *c, struct strv *warnings)
{
    const struct capsa_opts *o = c->opts;
    cleanup_free char *image = capsa_env_abs_path (c->image.path, c->host_cwd);
    const char *base = strrchr (image, '/');
    base = base && base[1] ? base + 1 : image;

    /* Overrides, highest precedence first.  Among --env values of one key
     * the last one wins (in the place of the first). */
    for (size_t i = 0; i < o->env.n; i++) {
        const char *kv = o->env.v[i];
        size_t klen = strcspn (kv, "=");
        const char *last = kv;
        for (size_t j = i + 1; j < o->env.n; j++)
            if (strncmp (o->env.v[j], kv, klen) == 0 && o->env.v[j][klen] == '=')
                last = o->env.v[j];
        cleanup_free char *key = strndup (kv, klen);
        if (key && env_get (&c->env_override, mapped_key (key), strlen (mapped_key (key))) != NULL)
            continue; /* an earlier --env of this key took the last value */
        add_override (c, last, "--env", warnings);
    }
    for (size_t i = 0; i < c->env_file_vars.n; i++)
        add_override (c, c->env_file_vars.v[i], "--env-file", warnings);
    static const char *const prefixes[] = { "CAPSAENV_", "APPTAINERENV_", "SINGULARITYENV_" };
    for (size_t p = 0; p < ARRAY_SIZE (prefixes); p++) {
        size_t plen = strlen (prefixes[p]);
        for (size_t i = 0; i < c->host_env.n; i++) {
            const char *kv = c->host_env.v[i];
            const char *eq = strchr (kv, '=');
            if (eq == NULL || !has_prefix (kv, prefixes[p]) || eq == kv + plen)
                continue;
            cleanup_free char *source = strndup (kv, (size_t) (eq - kv));
            add_override (c, kv + plen, source, warnings);
        }
    }

    /* The starting environment. */
    if (o->cleanenv)
        env_set (&c->env, "LANG", "C"); /* Apptainer's; APPTAINERENV_LANG overrides it */
    for (size_t i = 0; i < c->host_env.n; i++) {
        const char *kv = c->host_env.v[i];
        const char *eq = strchr (kv, '=');
        if (eq == NULL || eq == kv || runtime_prefix (kv) || host_only (kv))
            continue;
        if (o->cleanenv && !clean_keep (kv))
            continue;
        if (env_get (&c->env_override, kv, (size_t) (eq - kv)) != NULL)
            continue; /* overridden: the override's value, after the scripts */
        strv_push (&c->env, kv);
    }
    env_set (&c->env, "HOME", c->home_dst);
    env_set (&c->env, "PATH", DEFAULT_PATH);
    env_set (&c->env, "PWD", c->workdir);
    static const char *const runtime[] = { "CAPSA_", "APPTAINER_", "SINGULARITY_" };
    for (size_t i = 0; i < ARRAY_SIZE (runtime); i++) {
        /* Images built by Apptainer read these in their scripts. */
        cleanup_free char *container = xasprintf ("%sCONTAINER", runtime[i]);
        cleanup_free char *name = xasprintf ("%sNAME", runtime[i]);
        env_set (&c->env, container, image);
        env_set (&c->env, name, base);
        if (c->instance != NULL) {
            cleanup_free char *inst = xasprintf ("%sINSTANCE", runtime[i]);
            env_set (&c->env, inst, c->instance->name);
        }
        if (o->no_eval) {
            cleanup_free char *k = xasprintf ("%sNO_EVAL", runtime[i]);
            env_set (&c->env, k, "1");
        }
        if (o->shell) {
            cleanup_free char *k = xasprintf ("%sSHELL", runtime[i]);
            env_set (&c->env, k, o->shell);
        }
    }
}

/* --env-file: a shell file of assignments, evaluated once here (see
 * envfile.c) with the caller's environment visible; later files win.
 * Read with the caller's identity. */
int
capsa_env_read_file (struct capsa_container *c, const char *path, capsa_error_t *err)
{
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return capsa_error_make (err, errno, "--env-file %s", path);
    return capsa_env_read_fd (c, fd, path, err);
}

/* The same from a descriptor opened earlier (the container's child opens
 * the files as the user and reads them only after its final drop). */
int
capsa_env_read_fd (struct capsa_container *c, int fd, const char *path, capsa_error_t *err)
{
    cleanup_free char *text = NULL;
    struct stat st;
    size_t len;

    if (fstat (fd, &st) < 0 || !(S_ISREG (st.st_mode) || S_ISFIFO (st.st_mode)))
        return capsa_error_make (err, 0, "--env-file %s: not a regular file", path);
    if (read_fd_all (fd, 1 << 20, &text, &len, err) < 0)
        return capsa_error_wrap (err, "--env-file %s", path);
    if (strlen (text) != len)
        return capsa_error_make (err, 0, "--env-file %s: contains a NUL byte", path);
    /* The caller's environment and APPTAINER_IMAGE are visible, as in
     * Apptainer. */
    struct strv vars = { 0 };
    for (size_t i = 0; i < c->host_env.n; i++)
        strv_push (&vars, c->host_env.v[i]);
    cleanup_free char *image = capsa_env_abs_path (c->image.path, c->host_cwd);
    strv_push_take (&vars, xasprintf ("APPTAINER_IMAGE=%s", image));
    int r = capsa_envfile_parse (text, path, &vars, &c->env_file_vars, err);
    strv_free (&vars);
    return r;
}

/* Does a passwd/group style file already have an entry with this name in
 * field 0 or this number in field 2? */
static bool
has_entry (const char *text, const char *name, unsigned long id)
{
    size_t nlen = strlen (name);
    for (const char *l = text; l && *l; l = strchr (l, '\n') ? strchr (l, '\n') + 1 : NULL) {
        if (strncmp (l, name, nlen) == 0 && l[nlen] == ':')
            return true;
        const char *f = l;
        for (int i = 0; i < 2 && f; i++) {
            f = strchr (f, ':');
            if (f)
                f++;
        }
        const char *eol = strchr (l, '\n');
        if (f && (eol == NULL || f < eol)) {
            char *end;
            unsigned long v = strtoul (f, &end, 10);
            if (end != f && *end == ':' && v == id)
                return true;
        }
    }
    return false;
}

static char *
with_newline (const char *text)
{
    size_t n = strlen (text);
    return n == 0 || text[n - 1] == '\n' ? xstrdup (text) : xasprintf ("%s\n", text);
}

char *
capsa_passwd_content (const struct capsa_container *c, const char *image_passwd)
{
    cleanup_free char *base = with_newline (image_passwd ? image_passwd : "");
    if (has_entry (base, c->user.name, c->user.uid))
        return steal_ptr (&base);
    return xasprintf ("%s%s:x:%u:%u:%s:%s:%s\n", base, c->user.name, c->user.uid, c->user.gid,
                      c->user.gecos ? c->user.gecos : "", c->home_dst, c->user.shell ? c->user.shell : "/bin/sh");
}

char *
capsa_group_content (const struct capsa_container *c, const char *image_group)
{
    char *out = with_newline (image_group ? image_group : "");
    size_t len = strlen (out);
    bool primary_seen = false;

    for (int i = -1; i < c->user.ngroups; i++) {
        gid_t g = i < 0 ? c->user.gid : c->user.groups[i];
        if (i >= 0 && g == c->user.gid) {
            if (primary_seen)
                continue;
        }
        primary_seen = true;
        struct group *gr = getgrgid (g);
        if (gr == NULL || has_entry (out, gr->gr_name, g))
            continue;
        cleanup_free char *line = xasprintf ("%s:x:%u:%s\n", gr->gr_name, g, c->user.name);
        str_append (&out, &len, line);
    }
    return out;
}

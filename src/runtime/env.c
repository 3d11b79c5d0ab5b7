/* The command's environment, the shell snippet that sources the image's
 * /.singularity.d/env scripts, and the container's /etc/passwd and /etc/group.
 * Pure functions of their inputs: nothing here touches the file system
 * except capsa_env_read_file/fd(), which read --env-file as the user. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/container.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static bool
valid_name (const char *s, size_t len)
{
    if (len == 0 || !(isalpha ((unsigned char) s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum ((unsigned char) s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* Host variables that describe the host, not the container: never passed. */
static bool
host_only (const char *kv)
{
    static const char *const drop[] = { "PATH=", "LD_LIBRARY_PATH=", "PS1=", "PROMPT_COMMAND=", "HOME=", "PWD=",
                                        "OLDPWD=", "SHLVL=", "_=" };
    for (size_t i = 0; i < ARRAY_SIZE (drop); i++)
        if (strncmp (kv, drop[i], strlen (drop[i])) == 0)
            return true;
    /* capsa's own settings are for capsa, not for the program inside. */
    return strncmp (kv, "CAPSA_", 6) == 0 || strncmp (kv, "CAPSAENV_", 9) == 0
           || strncmp (kv, "APPTAINER_", 10) == 0 || strncmp (kv, "SINGULARITY_", 12) == 0;
}

/* Variables kept by --cleanenv (Apptainer keeps the terminal and locale). */
static bool
clean_keep (const char *kv)
{
    static const char *const keep[] = { "TERM=", "LANG=", "LC_", "TZ=", "USER=", "LOGNAME=", "DISPLAY=", "COLORTERM=" };
    for (size_t i = 0; i < ARRAY_SIZE (keep); i++)
        if (strncmp (kv, keep[i], strlen (keep[i])) == 0)
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

void
capsa_env_build (struct capsa_container *c)
{
    const char *base = strrchr (c->image.path, '/');
    base = base && base[1] ? base + 1 : c->image.path;

    for (size_t i = 0; i < c->host_env.n; i++) {
        const char *kv = c->host_env.v[i];
        const char *eq = strchr (kv, '=');
        if (eq == NULL)
            continue;
        if (strncmp (kv, "CAPSAENV_", 9) == 0 && valid_name (kv + 9, (size_t) (eq - kv - 9))) {
            /* CAPSAENV_FOO=bar sets FOO=bar inside, after the image's
             * own environment, as APPTAINERENV_ does. */
            strv_push (&c->env_override, kv + 9);
            continue;
        }
        if (host_only (kv))
            continue;
        if (c->opts->cleanenv && !clean_keep (kv))
            continue;
        strv_push (&c->env, kv);
    }
    env_set (&c->env, "PATH", DEFAULT_PATH);
    env_set (&c->env, "HOME", c->home_dst);
    env_set (&c->env, "PWD", c->workdir);
    env_set (&c->env, "PS1", "Capsa> ");
    env_set (&c->env, "CAPSA_CONTAINER", c->image.path);
    env_set (&c->env, "CAPSA_NAME", base);
    /* Images built by Apptainer read these in their scripts. */
    env_set (&c->env, "APPTAINER_CONTAINER", c->image.path);
    env_set (&c->env, "APPTAINER_NAME", base);
    env_set (&c->env, "SINGULARITY_CONTAINER", c->image.path);
    env_set (&c->env, "SINGULARITY_NAME", base);
    for (size_t i = 0; i < c->opts->env.n; i++)
        strv_push (&c->env_override, c->opts->env.v[i]);
}

/* --env-file: KEY=VALUE lines, '#' comments, optional "export ", optional
 * matching quotes around the value.  Read with the caller's identity. */
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
    long lineno = 0;
    char *save = NULL;
    struct stat st;

    if (fstat (fd, &st) < 0 || !(S_ISREG (st.st_mode) || S_ISFIFO (st.st_mode)))
        return capsa_error_make (err, 0, "--env-file %s: not a regular file", path);
    if (read_fd_all (fd, 1 << 20, &text, NULL, err) < 0)
        return capsa_error_wrap (err, "--env-file %s", path);
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        char *l = trim (line), *eq;
        size_t vlen;
        lineno++;
        if (*l == '\0' || *l == '#')
            continue;
        if (strncmp (l, "export ", 7) == 0)
            l = trim (l + 7);
        eq = strchr (l, '=');
        if (eq == NULL || !valid_name (l, (size_t) (eq - l)))
            return capsa_error_make (err, 0, "--env-file %s: line %ld: expected KEY=VALUE", path, lineno);
        vlen = strlen (eq + 1);
        if (vlen >= 2 && (eq[1] == '"' || eq[1] == '\'') && eq[vlen] == eq[1]) {
            eq[vlen] = '\0';
            memmove (eq + 1, eq + 2, vlen - 1);
        }
        strv_push (&c->env_override, l);
    }
    return 0;
}

char *
capsa_env_script (const struct capsa_container *c)
{
    char *s = NULL;
    size_t len = 0;

    str_append (&s, &len,
            "for __capsa_f in /.singularity.d/env/*.sh; do\n"
            "  if [ -f \"$__capsa_f\" ]; then . \"$__capsa_f\"; fi\n"
            "done\n"
            "unset __capsa_f\n");
    for (size_t i = 0; i < c->env_override.n; i++) {
        const char *kv = c->env_override.v[i];
        const char *eq = strchr (kv, '=');
        if (eq == NULL || !valid_name (kv, (size_t) (eq - kv)))
            continue;
        char *key = xstrdup (kv);
        key[eq - kv] = '\0';
        str_append (&s, &len, "export ");
        str_append (&s, &len, key);
        str_append (&s, &len, "=");
        str_append_shell_quoted (&s, &len, eq + 1);
        str_append (&s, &len, "\n");
        free (key);
    }
    str_append (&s, &len,
            "case \"$1\" in\n"
            "*/*) if [ ! -e \"$1\" ]; then echo \"FATAL:   \\\"$1\\\": no such file or directory\" >&2; exit 127;\n"
            "     elif [ -d \"$1\" ] || [ ! -x \"$1\" ]; then echo \"FATAL:   \\\"$1\\\": permission denied\" >&2; exit 126; fi ;;\n"
            /* Search PATH here rather than let the shell do it: some
             * shells (busybox) prefer their built-in applets to files. */
            "*) __capsa_p=; __capsa_ifs=$IFS; IFS=:\n"
            "   for __capsa_d in $PATH; do\n"
            "     if [ -f \"${__capsa_d:-.}/$1\" ] && [ -x \"${__capsa_d:-.}/$1\" ]; then __capsa_p=\"${__capsa_d:-.}/$1\"; break; fi\n"
            "   done\n"
            "   IFS=$__capsa_ifs\n"
            "   if [ -z \"$__capsa_p\" ]; then echo \"FATAL:   \\\"$1\\\": executable file not found in \\$PATH\" >&2; exit 127; fi\n"
            "   shift; set -- \"$__capsa_p\" \"$@\"; unset __capsa_p __capsa_d __capsa_ifs ;;\n"
            "esac\n"
            "exec \"$@\"\n");
    return s;
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

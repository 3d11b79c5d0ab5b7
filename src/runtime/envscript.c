/* The action script: what Apptainer's action script does before it runs
 * the command, as a POSIX sh program for the image's /bin/sh (capsa has no
 * embedded shell interpreter).  Run after the final drop, as the user,
 * inside the container:
 *
 *   1. the shell starts with the starting environment cleared but for
 *      PWD, HOME, OPTIND, UID, GID, SINGULARITY_APPNAME, SINGULARITY_SHELL,
 *      APPTAINER_NAME, APPTAINER_CONTAINER and APPTAINER_INSTANCE, so the
 *      image's env scripts (/.singularity.d/env/NN-name.sh) see no variable of the host;
 *   2. the env scripts are sourced in name order (90-environment.sh gets
 *      the default PATH when none is set, 10-docker*.sh get the default
 *      directories appended to theirs); right after 99-base.sh, or after
 *      the last script, the overrides are exported: evaluated by the shell
 *      as in double quotes (so --env 'PATH=/opt/bin:$PATH' sees the
 *      image's PATH), or single-quoted with --no-eval;
 *   3. Apptainer's runtime variables: SING_USER_DEFINED_PREPEND_PATH,
 *      _APPEND_PATH, _PATH change PATH; PREPEND_/APPEND_LD_LIBRARY_PATH;
 *   4. the starting environment comes back: each variable the scripts did
 *      not set is exported again, and one they left empty is unset;
 *   5. PS1 ("Capsa> " when empty) and a PROMPT_COMMAND that sets it again,
 *      so a shell's rc files cannot replace the image's prompt;
 *      APPTAINER_ENVIRONMENT; SHELL for `shell`;
 *   6. the command is looked up in PATH (127 and 126 as a shell would) and
 *      exec'd.
 *
 * Variables reach the shell as its positional parameters, never in its
 * text (capsa_env_script_args).
 *
 * Without /bin/sh in the image the same environment is computed here
 * (capsa_env_direct), with the overrides taken literally. */
#include <dirent.h>
#include <string.h>

#include "runtime/container.h"
#include "runtime/gpu.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Variables Apptainer's clear_env keeps while the env scripts run. */
static bool
kept_while_sourcing (const char *key, size_t len)
{
    static const char *const kept[] = { "PWD",         "HOME",          "OPTIND", "UID",
                                        "GID",         "SINGULARITY_APPNAME",     "SINGULARITY_SHELL",
                                        "APPTAINER_NAME", "APPTAINER_CONTAINER", "APPTAINER_INSTANCE" };
    for (size_t i = 0; i < ARRAY_SIZE (kept); i++)
        if (strlen (kept[i]) == len && strncmp (kept[i], key, len) == 0)
            return true;
    return false;
}

void
capsa_env_shell_environ (const struct capsa_container *c, struct strv *out)
{
    for (size_t i = 0; i < c->env.n; i++) {
        const char *kv = c->env.v[i];
        size_t klen = strcspn (kv, "=");
        /* Entries that are no shell variable (BASH_FUNC_x%%=...) cannot be
         * cleared or restored by the shell: they pass as they are. */
        if (kept_while_sourcing (kv, klen) || !capsa_env_valid_name (kv, klen))
            strv_push (out, kv);
    }
}

/* VALUE for the shell: in double quotes with only '"' escaped, as Apptainer
 * injects it (so $VAR, $(cmd), \$ are the shell's), or single-quoted. */
static void
append_value (char **s, size_t *len, const char *value, bool no_eval)
{
    if (no_eval) {
        str_append_shell_quoted (s, len, value);
        return;
    }
    str_append (s, len, "\"");
    size_t n = strlen (value);
    for (size_t i = 0; i < n; i++) {
        char ch[2] = { value[i], '\0' };
        if (value[i] == '"')
            str_append (s, len, "\\\"");
        else
            str_append (s, len, ch);
    }
    /* An odd run of backslashes at the end would escape the closing quote
     * (a syntax error that stops everything): keep the last one literal. */
    size_t bs = 0;
    while (bs < n && value[n - 1 - bs] == '\\')
        bs++;
    if (bs % 2 == 1)
        str_append (s, len, "\\");
    str_append (s, len, "\"");
}

/* The value an override gets: Apptainer adds its library directory to a
 * user's LD_LIBRARY_PATH. */
static char *
override_value (const char *key, size_t klen, const char *value)
{
    if (klen == 15 && strncmp (key, "LD_LIBRARY_PATH", 15) == 0 && value[0] != '\0')
        return xasprintf ("%s:/.singularity.d/libs", value);
    return xstrdup (value);
}

static bool
skipped_override (const char *key, size_t klen)
{
    return (klen == 3 && strncmp (key, "UID", 3) == 0) || (klen == 3 && strncmp (key, "GID", 3) == 0);
}

/* The data of the action script travels as its positional parameters,
 * never inside its text, so no variable can make that one argument longer
 * than the kernel allows (128 KiB) and no value is ever parsed as code
 * unless evaluation is asked for:
 *
 *   N  KEY VALUE ...   the starting environment, put back after the scripts
 *   M  KEY VALUE ...   the overrides (the text to evaluate, '"' escaped,
 *                      or the literal value with --no-eval)
 *   L  KEY VALUE ...   set last, literally (APPTAINER_NAME/CONTAINER, SHELL)
 *   COMMAND ARGS...
 *
 * Keys are checked names (capsa_env_valid_name), so they may appear in
 * eval'd text; values are only ever read through "$var". */
static bool
is_key (const char *kv, size_t klen, const char *key)
{
    return strlen (key) == klen && strncmp (kv, key, klen) == 0;
}

void
capsa_env_script_args (const struct capsa_container *c, struct strv *out)
{
    struct strv restore = { 0 }, inject = { 0 }, last = { 0 };
    for (size_t i = 0; i < c->env.n; i++) {
        const char *kv = c->env.v[i];
        size_t klen = strcspn (kv, "=");
        if (kv[klen] != '=' || !capsa_env_valid_name (kv, klen))
            continue;
        /* Read-only in Apptainer: the image's scripts cannot change them. */
        struct strv *to = is_key (kv, klen, "APPTAINER_NAME") || is_key (kv, klen, "APPTAINER_CONTAINER") ? &last : &restore;
        strv_push_take (to, strndup (kv, klen));
        strv_push (to, kv + klen + 1);
    }
    for (size_t i = 0; i < c->env_override.n; i++) {
        const char *kv = c->env_override.v[i];
        size_t klen = strcspn (kv, "=");
        if (kv[klen] != '=' || !capsa_env_valid_name (kv, klen) || skipped_override (kv, klen))
            continue;
        cleanup_free char *value = override_value (kv, klen, kv + klen + 1);
        char *text = NULL;
        size_t len = 0;
        str_append (&text, &len, "");
        if (c->opts->no_eval) {
            str_append (&text, &len, value);
        } else {
            /* What goes between double quotes for the shell to evaluate,
             * as Apptainer injects it: only '"' escaped. */
            append_value (&text, &len, value, false);
            memmove (text, text + 1, len - 2); /* without the quotes */
            text[len - 2] = '\0';
        }
        strv_push_take (&inject, strndup (kv, klen));
        strv_push_take (&inject, text);
    }
    for (size_t i = 0; i < c->env_final.n; i++) {
        const char *kv = c->env_final.v[i];
        size_t klen = strcspn (kv, "=");
        if (kv[klen] != '=' || !capsa_env_valid_name (kv, klen))
            continue;
        strv_push_take (&last, strndup (kv, klen));
        strv_push (&last, kv + klen + 1);
    }
    struct strv *groups[] = { &restore, &inject, &last };
    for (size_t g = 0; g < ARRAY_SIZE (groups); g++) {
        strv_push_take (out, xasprintf ("%zu", groups[g]->n / 2));
        for (size_t i = 0; i < groups[g]->n; i++)
            strv_push (out, groups[g]->v[i]);
        strv_free (groups[g]);
    }
}

char *
capsa_env_script (const struct capsa_container *c)
{
    char *s = NULL;
    size_t len = 0;

    /* A PS1 set now is the shell's own default, not the image's or the
     * caller's: the rule below must not mistake it for one. */
    str_append (&s, &len,
                "unset PS1\n"
                /* The data: three groups of KEY VALUE pairs (see above). */
                "__capsa_i=0; __capsa_n=$1; shift\n"
                "while [ \"$__capsa_i\" -lt \"$__capsa_n\" ]; do __capsa_i=$((__capsa_i + 1)); "
                "eval \"__capsa_rk$__capsa_i=\\$1 __capsa_rv$__capsa_i=\\$2\"; shift 2; done\n"
                "__capsa_i=0; __capsa_m=$1; shift\n"
                "while [ \"$__capsa_i\" -lt \"$__capsa_m\" ]; do __capsa_i=$((__capsa_i + 1)); "
                "eval \"__capsa_ik$__capsa_i=\\$1 __capsa_iv$__capsa_i=\\$2\"; shift 2; done\n"
                "__capsa_i=0; __capsa_l=$1; shift\n"
                "while [ \"$__capsa_i\" -lt \"$__capsa_l\" ]; do __capsa_i=$((__capsa_i + 1)); "
                "eval \"__capsa_lk$__capsa_i=\\$1 __capsa_lv$__capsa_i=\\$2\"; shift 2; done\n"
                "__capsa_fixpath () {\n"
                "  __capsa_p=${PATH-}\n"
                "  for __capsa_d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do\n"
                "    case \":$__capsa_p:\" in *\":$__capsa_d:\"*) ;; *) __capsa_p=${__capsa_p:+$__capsa_p:}$__capsa_d ;; esac\n"
                "  done\n"
                "  PATH=$__capsa_p; export PATH\n"
                "}\n"
                "__capsa_ldpath () {\n"
                "  [ \"${LD_LIBRARY_PATH:-}\" = /.singularity.d/libs ] || return 0\n"
                "  if { [ ! -d /.singularity.d/libs ] || [ \"$(cd /.singularity.d/libs 2>/dev/null && echo *)\" = \"*\" ]; }"
                " && [ -z \"${PREPEND_LD_LIBRARY_PATH:-}\" ] && [ -z \"${APPEND_LD_LIBRARY_PATH:-}\" ]; then return 0; fi\n"
                "  __capsa_x=$( (/sbin/ldconfig -Nv | /bin/sed '/^\t/d;s/:.*//') 2>/dev/null )\n"
                "  [ -n \"$__capsa_x\" ] || return 0\n"
                "  __capsa_p=\n"
                "  for __capsa_d in $__capsa_x; do __capsa_p=$__capsa_p$__capsa_d:; done\n"
                "  LD_LIBRARY_PATH=$__capsa_p$LD_LIBRARY_PATH; export LD_LIBRARY_PATH\n"
                "}\n"
                /* Exported evaluated as in double quotes (the value is the
                 * text between them), or taken literally with --no-eval. */
                "__capsa_inject () {\n"
                "  if [ -z \"${PATH+x}\" ]; then PATH='" DEFAULT_PATH "'; export PATH; fi\n"
                "  __capsa_j=0\n"
                "  while [ \"$__capsa_j\" -lt \"$__capsa_m\" ]; do __capsa_j=$((__capsa_j + 1))\n"
                "    eval \"__capsa_k=\\$__capsa_ik$__capsa_j __capsa_v=\\$__capsa_iv$__capsa_j\"\n");
    if (c->opts->no_eval)
        str_append (&s, &len, "    eval \"export $__capsa_k=\\\"\\$__capsa_v\\\"\"\n");
    else
        str_append (&s, &len, "    eval \"export $__capsa_k=\\\"$__capsa_v\\\"\"\n");
    str_append (&s, &len,
                "  done\n"
                "}\n"
                "__capsa_done=\n"
                "if [ -d /.singularity.d/env ]; then\n"
                "  for __capsa_f in /.singularity.d/env/*.sh; do\n"
                "    [ -f \"$__capsa_f\" ] || continue\n"
                "    case $__capsa_f in\n"
                "    /.singularity.d/env/90-environment.sh) [ -n \"${PATH+x}\" ] || __capsa_fixpath; . \"$__capsa_f\" ;;\n"
                "    /.singularity.d/env/10-docker2singularity.sh|/.singularity.d/env/10-docker.sh) . \"$__capsa_f\"; __capsa_fixpath ;;\n"
                "    /.singularity.d/env/99-base.sh) . \"$__capsa_f\"; __capsa_inject; __capsa_done=1; __capsa_ldpath ;;\n"
                "    /.singularity.d/env/99-runtimevars.sh) ;;\n"
                "    *) . \"$__capsa_f\" ;;\n"
                "    esac\n"
                "  done\n"
                "elif [ -f /environment ]; then\n"
                "  . /environment; __capsa_fixpath\n"
                "fi\n"
                "if [ -z \"$__capsa_done\" ]; then __capsa_inject; __capsa_ldpath; fi\n"
                "if [ -n \"${SING_USER_DEFINED_PREPEND_PATH:-}\" ]; then PATH=\"$SING_USER_DEFINED_PREPEND_PATH:$PATH\"; fi\n"
                "if [ -n \"${SING_USER_DEFINED_APPEND_PATH:-}\" ]; then PATH=\"$PATH:$SING_USER_DEFINED_APPEND_PATH\"; fi\n"
                "if [ -n \"${SING_USER_DEFINED_PATH:-}\" ]; then PATH=\"$SING_USER_DEFINED_PATH\"; fi\n"
                "unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH\n"
                "export PATH\n");
    /* GPU libraries bound by --nv/--rocm (gpu.h): their directories go on
     * LD_LIBRARY_PATH when the image's scripts did not put them there
     * (Apptainer's 99-base.sh adds /.singularity.d/libs, its action script
     * /.singularity.d/libs32; an image made by other tools has neither). */
    for (unsigned bit = GPU_LIBDIR; bit <= GPU_LIB32DIR; bit <<= 1) {
        const char *dir = bit == GPU_LIBDIR ? CAPSA_GPU_LIBDIR : CAPSA_GPU_LIB32DIR;
        if (!(c->gpu_libdirs & bit))
            continue;
        str_append (&s, &len, "case \":${LD_LIBRARY_PATH:-}:\" in *:");
        str_append (&s, &len, dir);
        str_append (&s, &len, ":*) ;; *) LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}");
        str_append (&s, &len, dir);
        str_append (&s, &len, "; export LD_LIBRARY_PATH ;; esac\n");
    }
    str_append (&s, &len,
                "if [ -n \"${LD_LIBRARY_PATH:-}\" ]; then\n"
                "  if [ -n \"${PREPEND_LD_LIBRARY_PATH:-}\" ]; then LD_LIBRARY_PATH=\"$PREPEND_LD_LIBRARY_PATH:$LD_LIBRARY_PATH\"; fi\n"
                "  if [ -n \"${APPEND_LD_LIBRARY_PATH:-}\" ]; then LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH:$APPEND_LD_LIBRARY_PATH\"; fi\n"
                "fi\n"
                /* 4. The starting environment comes back: exported again
                 *    when the scripts did not set it, unset when they left
                 *    it empty. */
                "__capsa_i=0\n"
                "while [ \"$__capsa_i\" -lt \"$__capsa_n\" ]; do __capsa_i=$((__capsa_i + 1))\n"
                "  eval \"__capsa_k=\\$__capsa_rk$__capsa_i\"\n"
                "  eval \"if [ -z \\\"\\${$__capsa_k+x}\\\" ]; then $__capsa_k=\\$__capsa_rv$__capsa_i; export $__capsa_k; "
                "elif [ -z \\\"\\$$__capsa_k\\\" ]; then unset $__capsa_k; fi\"\n"
                "done\n"
                /* 5. Prompt, environment file, what is set last. */
                "if [ -z \"${PS1:-}\" ]; then PS1='Capsa> '; export PS1; fi\n"
                "if [ -z \"${PROMPT_COMMAND:-}\" ]; then PROMPT_COMMAND=\"PS1=\\\"${PS1}\\\"; unset PROMPT_COMMAND\"\n"
                "else PROMPT_COMMAND=\"${PROMPT_COMMAND}; PROMPT_COMMAND=\\\"\\${PROMPT_COMMAND%%; PROMPT_COMMAND=*}\\\"; "
                "PS1=\\\"${PS1}\\\"\"; fi\n"
                "export PROMPT_COMMAND\n"
                "APPTAINER_ENVIRONMENT=${APPTAINER_ENVIRONMENT:-/.singularity.d/env/91-environment.sh}\n"
                "SINGULARITY_ENVIRONMENT=$APPTAINER_ENVIRONMENT\n"
                "export APPTAINER_ENVIRONMENT SINGULARITY_ENVIRONMENT\n"
                "__capsa_i=0\n"
                "while [ \"$__capsa_i\" -lt \"$__capsa_l\" ]; do __capsa_i=$((__capsa_i + 1))\n"
                "  eval \"__capsa_k=\\$__capsa_lk$__capsa_i\"\n"
                "  eval \"export $__capsa_k=\\\"\\$__capsa_lv$__capsa_i\\\"\"\n"
                "done\n"
                "unset -f __capsa_fixpath __capsa_ldpath __capsa_inject\n"
                /* 6. The command. */
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
                "   shift; set -- \"$__capsa_p\" \"$@\" ;;\n"
                "esac\n"
                "exec \"$@\"\n");
    return s;
}

/* KEY=VALUE of ENV, or NULL. */
static const char *
get (const struct strv *env, const char *key)
{
    size_t l = strlen (key);
    for (size_t i = 0; i < env->n; i++)
        if (strncmp (env->v[i], key, l) == 0 && env->v[i][l] == '=')
            return env->v[i] + l + 1;
    return NULL;
}

static void
set (struct strv *env, const char *key, const char *value)
{
    size_t l = strlen (key);
    char *kv = xasprintf ("%s=%s", key, value);
    for (size_t i = 0; i < env->n; i++) {
        if (strncmp (env->v[i], key, l) == 0 && env->v[i][l] == '=') {
            free (env->v[i]);
            env->v[i] = kv;
            return;
        }
    }
    strv_push_take (env, kv);
}

static void
del (struct strv *env, const char *key)
{
    size_t l = strlen (key);
    for (size_t i = 0; i < env->n; i++) {
        if (strncmp (env->v[i], key, l) == 0 && env->v[i][l] == '=') {
            free (env->v[i]);
            memmove (&env->v[i], &env->v[i + 1], (env->n - i) * sizeof (char *)); /* with the NULL */
            env->n--;
            return;
        }
    }
}

void
capsa_env_direct (const struct capsa_container *c, struct strv *out)
{
    for (size_t i = 0; i < c->env.n; i++)
        strv_push (out, c->env.v[i]);
    for (size_t i = 0; i < c->env_override.n; i++) {
        const char *kv = c->env_override.v[i];
        size_t klen = strcspn (kv, "=");
        if (kv[klen] != '=' || skipped_override (kv, klen))
            continue;
        cleanup_free char *key = strndup (kv, klen);
        cleanup_free char *value = override_value (kv, klen, kv + klen + 1);
        set (out, key, value);
    }
    const char *pre = get (out, "SING_USER_DEFINED_PREPEND_PATH");
    const char *app = get (out, "SING_USER_DEFINED_APPEND_PATH");
    const char *over = get (out, "SING_USER_DEFINED_PATH");
    cleanup_free char *path = xstrdup (get (out, "PATH") ? get (out, "PATH") : DEFAULT_PATH);
    if (pre && *pre) {
        char *p = xasprintf ("%s:%s", pre, path);
        free (path);
        path = p;
    }
    if (app && *app) {
        char *p = xasprintf ("%s:%s", path, app);
        free (path);
        path = p;
    }
    if (over && *over) {
        free (path);
        path = xstrdup (over);
    }
    set (out, "PATH", path);
    del (out, "SING_USER_DEFINED_PREPEND_PATH");
    del (out, "SING_USER_DEFINED_APPEND_PATH");
    del (out, "SING_USER_DEFINED_PATH");
    for (unsigned bit = GPU_LIBDIR; bit <= GPU_LIB32DIR; bit <<= 1) {
        const char *dir = bit == GPU_LIBDIR ? CAPSA_GPU_LIBDIR : CAPSA_GPU_LIB32DIR;
        const char *ld = get (out, "LD_LIBRARY_PATH");
        cleanup_free char *padded = xasprintf (":%s:", ld ? ld : "");
        cleanup_free char *want = xasprintf (":%s:", dir);
        if ((c->gpu_libdirs & bit) && strstr (padded, want) == NULL) {
            cleanup_free char *v = ld && *ld ? xasprintf ("%s:%s", ld, dir) : xstrdup (dir);
            set (out, "LD_LIBRARY_PATH", v);
        }
    }
    const char *ps1 = get (out, "PS1");
    if (ps1 == NULL || *ps1 == '\0')
        set (out, "PS1", "Capsa> ");
    if (get (out, "APPTAINER_ENVIRONMENT") == NULL)
        set (out, "APPTAINER_ENVIRONMENT", "/.singularity.d/env/91-environment.sh");
    set (out, "SINGULARITY_ENVIRONMENT", get (out, "APPTAINER_ENVIRONMENT"));
    for (size_t i = 0; i < c->env_final.n; i++) {
        const char *kv = c->env_final.v[i];
        size_t klen = strcspn (kv, "=");
        if (kv[klen] != '=')
            continue;
        cleanup_free char *key = strndup (kv, klen);
        set (out, key, kv + klen + 1);
    }
}

bool
capsa_env_needs_shell (const struct capsa_container *c)
{
    /* An override is evaluated as the inside of double quotes: a value
     * with none of $ ` \ " stays itself. */
    if (!c->opts->no_eval)
        for (size_t i = 0; i < c->env_override.n; i++) {
            const char *eq = strchr (c->env_override.v[i], '=');
            if (eq && strpbrk (eq + 1, "$`\\\"") != NULL)
                return true;
        }
    DIR *d = opendir ("/.singularity.d/env");
    if (d == NULL)
        return false;
    bool scripts = false;
    for (struct dirent *e = readdir (d); e && !scripts; e = readdir (d)) {
        size_t l = strlen (e->d_name);
        scripts = l > 3 && strcmp (e->d_name + l - 3, ".sh") == 0;
    }
    closedir (d);
    return scripts;
}

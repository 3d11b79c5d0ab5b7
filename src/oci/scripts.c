/* Apptainer-layout files made from an OCI image config: the runscript and
 * the environment script of a docker:// (or archive) build. */
#include <string.h>

#include "oci/oci_private.h"

static void
append_argv (char **buf, size_t *len, const struct strv *v)
{
    for (size_t i = 0; i < v->n; i++) {
        str_append (buf, len, " ");
        str_append_shell_quoted (buf, len, v->v[i]);
    }
}

char *
capsa_oci_runscript (const struct capsa_oci_config *c)
{
    char *b = NULL;
    size_t n = 0;
    str_append (&b, &n,
            "#!/bin/sh\n"
            "# Made by capsa from the image's OCI config, with Docker's rules: ENTRYPOINT,\n"
            "# followed by the arguments of 'capsa run', or by CMD when there are none.\n");
    if (c->cmd.n > 0) {
        str_append (&b, &n, "if [ $# -eq 0 ]; then\n    set --");
        append_argv (&b, &n, &c->cmd);
        str_append (&b, &n, "\nfi\n");
    }
    if (c->entrypoint.n > 0) {
        str_append (&b, &n, "set --");
        append_argv (&b, &n, &c->entrypoint);
        str_append (&b, &n, " \"$@\"\n");
    }
    if (c->workingdir != NULL) {
        str_append (&b, &n, "if [ -d ");
        str_append_shell_quoted (&b, &n, c->workingdir);
        str_append (&b, &n, " ]; then\n    cd ");
        str_append_shell_quoted (&b, &n, c->workingdir);
        str_append (&b, &n, " || exit 1\nfi\n");
    }
    str_append (&b, &n,
            "if [ $# -eq 0 ]; then\n"
            "    set -- /bin/sh\n"
            "fi\n"
            "exec \"$@\"\n");
    return b;
}

static bool
shell_name (const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')
              || s[i] == '_'))
            return false;
    return true;
}

char *
capsa_oci_envscript (const struct capsa_oci_config *c)
{
    char *b = NULL;
    size_t n = 0;
    str_append (&b, &n, "#!/bin/sh\n# Environment of the image's OCI config (Env), made by capsa.\n");
    for (size_t i = 0; i < c->env.n; i++) {
        const char *e = c->env.v[i];
        const char *eq = strchr (e, '=');
        if (eq == NULL || !shell_name (e, (size_t) (eq - e)))
            continue; /* not a name the shell can set */
        char *key = xasprintf ("export %.*s=", (int) (eq - e), e);
        str_append (&b, &n, key);
        free (key);
        str_append_shell_quoted (&b, &n, eq + 1);
        str_append (&b, &n, "\n");
    }
    return b;
}

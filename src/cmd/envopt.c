/* Option variables: every setting capsa takes from the environment is
 * looked up under three prefixes, CAPSA_, APPTAINER_ and SINGULARITY_, in
 * that order; the first that is set to something other than blanks wins.
 * Between APPTAINER_ and SINGULARITY_ this is Apptainer's own rule
 * (cmd/internal/cli/apptainer.go, pkg/cmdline/flag.go): the new prefix
 * wins, with a warning when the two differ.  docs/apptainer.md lists the
 * variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd/commands.h"
#include "lib/log.h"
#include "lib/utils.h"

static const char *const prefixes[] = { "CAPSA_", "APPTAINER_", "SINGULARITY_" };

static bool
blank (const char *v)
{
    for (; v && *v; v++)
        if (*v != ' ' && *v != '\t' && *v != '\n')
            return false;
    return true;
}

const char *
capsa_optenv_which (const char *key, const char **name)
{
    static char found[128];
    const char *vals[3];
    for (size_t i = 0; i < 3; i++) {
        char var[128];
        snprintf (var, sizeof (var), "%s%s", prefixes[i], key);
        vals[i] = getenv (var);
        if (blank (vals[i]))
            vals[i] = NULL;
    }
    if (vals[1] && vals[2] && strcmp (vals[1], vals[2]) != 0 && vals[0] == NULL) {
        /* Said once per variable: a command may ask more than once. */
        static struct strv warned;
        bool seen = false;
        for (size_t i = 0; i < warned.n; i++)
            seen = seen || strcmp (warned.v[i], key) == 0;
        if (!seen) {
            strv_push (&warned, key);
            warnf ("SINGULARITY_%s and APPTAINER_%s have different values; using APPTAINER_%s", key, key, key);
        }
    }
    for (size_t i = 0; i < 3; i++) {
        if (vals[i] == NULL)
            continue;
        snprintf (found, sizeof (found), "%s%s", prefixes[i], key);
        if (i == 2)
            verbosef ("%s is set; APPTAINER_%s is the newer name", found, key);
        if (name)
            *name = found;
        return vals[i];
    }
    if (name)
        *name = NULL;
    return NULL;
}

const char *
capsa_optenv (const char *key)
{
    return capsa_optenv_which (key, NULL);
}

int
capsa_parse_bool (const char *v, bool *out)
{
    /* Go's strconv.ParseBool, which Apptainer uses, plus yes/no. */
    static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True", "yes", "YES", "Yes" };
    static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False", "no", "NO", "No" };
    cleanup_free char *s = xstrdup (v);
    char *t = trim (s);
    for (size_t i = 0; i < ARRAY_SIZE (yes); i++)
        if (strcmp (t, yes[i]) == 0) {
            *out = true;
            return 0;
        }
    for (size_t i = 0; i < ARRAY_SIZE (no); i++)
        if (strcmp (t, no[i]) == 0) {
            *out = false;
            return 0;
        }
    return -1;
}

int
capsa_optenv_bool (const char *key)
{
    const char *name;
    const char *v = capsa_optenv_which (key, &name);
    bool b;
    if (v == NULL)
        return -1;
    if (capsa_parse_bool (v, &b) < 0)
        capsa_die ("%s='%s' is not a boolean (use 1, true, yes or 0, false, no)", name, v);
    return b;
}

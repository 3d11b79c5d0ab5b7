/* exec, run, shell: the front end's part is small.  It turns CAPSA_*
 * variables into options (flags given on the command line come after them
 * and so win), and executes the starter, which parses and checks
 * everything again itself. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "config.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "runtime/seccomp.h"

struct env_flag {
    const char *var;
    const char *flag;
    bool boolean;
};

static const struct env_flag env_flags[] = {
    { "CAPSA_BIND", "--bind", false },      { "CAPSA_BINDPATH", "--bind", false },
    { "CAPSA_HOME", "--home", false },      { "CAPSA_NO_HOME", "--no-home", true },
    { "CAPSA_PWD", "--pwd", false },        { "CAPSA_CONTAIN", "--contain", true },
    { "CAPSA_CONTAINALL", "--containall", true }, { "CAPSA_CLEANENV", "--cleanenv", true },
    { "CAPSA_ENV_FILE", "--env-file", false }, { "CAPSA_PID", "--pid", true },
    { "CAPSA_IPC", "--ipc", true },         { "CAPSA_UTS", "--uts", true },
    { "CAPSA_HOSTNAME", "--hostname", false }, { "CAPSA_NET", "--net", true },
    { "CAPSA_NETWORK", "--network", false }, { "CAPSA_USERNS", "--userns", true },
    { "CAPSA_SHELL", "--shell", false },
    { "CAPSA_ADD_CAPS", "--add-caps", false }, { "CAPSA_DROP_CAPS", "--drop-caps", false },
    { "CAPSA_KEEP_PRIVS", "--keep-privs", true }, { "CAPSA_NO_PRIVS", "--no-privs", true },
};

static bool
truthy (const char *v)
{
    return strcmp (v, "1") == 0 || strcasecmp (v, "true") == 0 || strcasecmp (v, "yes") == 0;
}

/* Options of the actions that take a separate value ("-B SRC"). */
static bool
takes_value (const char *a)
{
    static const char *const with_value[] = { "-B", "--bind", "-H", "--home", "--pwd", "--env", "--env-file",
                                              "--hostname", "--network", "-s", "--shell", "--add-caps",
                                              "--drop-caps", "--seccomp-fd" };
    if (strchr (a, '=') != NULL)
        return false;
    for (size_t i = 0; i < ARRAY_SIZE (with_value); i++)
        if (strcmp (a, with_value[i]) == 0)
            return true;
    return false;
}

/* --security seccomp:PATH becomes --seccomp-fd=N (a sealed memfd holding
 * the compiled filter, inherited by the starter); other --security values
 * pass through for the starter to check. */
static void
add_security (struct strv *args, const char *value)
{
    capsa_error_t err = NULL;
    if (strncmp (value, "seccomp:", 8) != 0) {
        strv_push_take (args, xasprintf ("--security=%s", value));
        return;
    }
    if (value[8] == '\0')
        capsa_die ("invalid --security '%s' (expected seccomp:PATH)", value);
    int fd = capsa_seccomp_compile_file (value + 8, &err);
    if (fd < 0)
        capsa_error_fatal (&err);
    if (fcntl (fd, F_SETFD, 0) < 0)
        capsa_die ("cannot pass the seccomp filter: %s", strerror (errno));
    strv_push_take (args, xasprintf ("--seccomp-fd=%d", fd));
}

int
cmd_action (int argc, char **argv)
{
    struct strv args = { 0 };
    const char *starter = CAPSA_LIBEXECDIR "/starter";
    const char *override = getenv ("CAPSA_STARTER");

    /* For development only: a starter outside the installation is never
     * setuid, so this cannot be used to gain anything. */
    if (override && *override && getuid () != 0)
        starter = override;

    strv_push (&args, "capsa-starter");
    switch (capsa_log_get_level ()) {
    case CAPSA_LOG_FATAL:
    case CAPSA_LOG_ERROR:
    case CAPSA_LOG_WARNING:
        strv_push (&args, "-q");
        break;
    case CAPSA_LOG_VERBOSE:
        strv_push (&args, "-v");
        break;
    case CAPSA_LOG_DEBUG:
        strv_push (&args, "-d");
        break;
    default:
        break;
    }
    strv_push (&args, argv[0]);
    for (size_t i = 0; i < ARRAY_SIZE (env_flags); i++) {
        const char *v = getenv (env_flags[i].var);
        if (v == NULL || *v == '\0')
            continue;
        if (env_flags[i].boolean) {
            if (truthy (v))
                strv_push (&args, env_flags[i].flag);
        } else {
            strv_push_take (&args, xasprintf ("%s=%s", env_flags[i].flag, v));
        }
    }
    const char *sec = getenv ("CAPSA_SECURITY");
    if (sec && *sec)
        add_security (&args, sec);
    /* The action's own options (up to IMAGE): seccomp profiles are
     * compiled here, unprivileged, and handed over as descriptors. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp (a, "--") == 0)
            break;
        if (strcmp (a, "--security") == 0 && i + 1 < argc) {
            add_security (&args, argv[++i]);
            continue;
        }
        if (strncmp (a, "--security=", 11) == 0) {
            add_security (&args, a + 11);
            continue;
        }
        strv_push (&args, a);
        if (takes_value (a) && i + 1 < argc)
            strv_push (&args, argv[++i]);
    }
    for (; i < argc; i++)
        strv_push (&args, argv[i]);
    execv (starter, args.v);
    capsa_die ("cannot run the starter %s: %s", starter, strerror (errno));
}

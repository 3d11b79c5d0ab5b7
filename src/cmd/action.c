/* exec, run, shell: the front end's part is small.  It turns CAPSA_*
 * variables into options (flags given on the command line come after them
 * and so win), and executes the starter, which parses and checks
 * everything again itself. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "config.h"
#include "lib/log.h"
#include "lib/utils.h"

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
    for (int i = 1; i < argc; i++)
        strv_push (&args, argv[i]);
    execv (starter, args.v);
    capsa_die ("cannot run the starter %s: %s", starter, strerror (errno));
}

/* capsa: the front end.  Never privileged; it parses the global options,
 * dispatches to one function per command (one file each in src/cmd/), and hands the
 * container actions to the starter. */
#include <stdio.h>
#include <string.h>

#include "cmd/commands.h"
#include "config.h"
#include "lib/error.h"
#include "lib/log.h"

char **capsa_main_argv;
const char *capsa_config_file; /* -c/--config FILE, for the starter */

struct command {
    const char *name;
    int (*fn) (int argc, char **argv);
};

static const struct command commands[] = {
    { "exec", cmd_action },   { "run", cmd_action },     { "shell", cmd_action },
    { "sif", cmd_sif },       { "inspect", cmd_inspect }, { "version", cmd_version },
    { "help", cmd_help },     { "capability", cmd_capability }, { "caps", cmd_capability },
    { "build", cmd_build },
    { "encrypt", cmd_encrypt },
    { "push", cmd_push },     { "pull", cmd_pull },       { "cache", cmd_cache },
    { "registry", cmd_registry },
#ifndef CAPSA_LIGHT
    { "seccomp-compile", cmd_seccomp_compile },
#endif
};

int
cmd_version (int argc, char **argv)
{
    (void) argc;
    (void) argv;
    printf ("capsa version %s\n", CAPSA_VERSION);
    return 0;
}

int
cmd_help (int argc, char **argv)
{
    if (argc > 1 && capsa_print_help (argv[1]) < 0)
        capsa_die ("unknown command '%s' (see 'capsa help')", argv[1]);
    if (argc <= 1)
        capsa_print_help (NULL);
    return 0;
}

int
main (int argc, char **argv)
{
    int i = 1;

    capsa_main_argv = argv;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp (argv[i], "-q") == 0 || strcmp (argv[i], "--quiet") == 0)
            capsa_log_set_level (CAPSA_LOG_ERROR);
        else if (strcmp (argv[i], "-v") == 0 || strcmp (argv[i], "--verbose") == 0)
            capsa_log_set_level (CAPSA_LOG_VERBOSE);
        else if (strcmp (argv[i], "-d") == 0 || strcmp (argv[i], "--debug") == 0)
            capsa_log_set_level (CAPSA_LOG_DEBUG);
        else if ((strcmp (argv[i], "-c") == 0 || strcmp (argv[i], "--config") == 0) && i + 1 < argc)
            capsa_config_file = argv[++i];
        else if (strncmp (argv[i], "--config=", 9) == 0)
            capsa_config_file = argv[i] + 9;
        else if (strcmp (argv[i], "-h") == 0 || strcmp (argv[i], "--help") == 0) {
            capsa_print_help (NULL);
            return 0;
        } else if (strcmp (argv[i], "--version") == 0) {
            return cmd_version (0, NULL);
        } else
            capsa_die ("unknown global option '%s' (see 'capsa help')", argv[i]);
    }
    if (i >= argc) {
        capsa_print_help (NULL);
        return CAPSA_EXIT_FATAL;
    }
    for (size_t k = 0; k < sizeof (commands) / sizeof (commands[0]); k++) {
        if (strcmp (argv[i], commands[k].name) != 0)
            continue;
        /* --help on every command ('sif' has subcommands with help of
         * their own). */
        if (commands[k].fn != cmd_sif && i + 1 < argc
            && (strcmp (argv[i + 1], "--help") == 0 || strcmp (argv[i + 1], "-h") == 0)) {
            capsa_print_help (argv[i]);
            return 0;
        }
        return commands[k].fn (argc - i, argv + i);
    }
    capsa_die ("unknown command '%s' (see 'capsa help')", argv[i]);
}

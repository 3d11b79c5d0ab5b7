/* capsa: the front end.  Never privileged; it parses the global options,
 * dispatches to one function per command (one file each in src/cmd/), and hands the
 * container actions to the starter.
 *
 * Installed also as `apptainer`, `singularity` and `run-singularity`
 * (links to this program): the name it is called by sets what --version
 * says, and run-singularity is `--quiet run`, for the
 * "#!/usr/bin/env run-singularity" line at the start of every SIF. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "config.h"
#include "lib/error.h"
#include "lib/log.h"
#include "lib/utils.h"

char **capsa_main_argv;
const char *capsa_config_file;
const char *capsa_prog_name = "capsa";

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
    { "test", cmd_action },   { "run-help", cmd_run_help }, { "siftool", cmd_sif },
    { "config", cmd_config },   { "overlay", cmd_overlay },
    { "instance", cmd_instance },
};

/* Apptainer's commands that capsa does not have, and why. */
static const struct {
    const char *name, *why;
} unsupported[] = {
    { "checkpoint", "DMTCP checkpoints are not supported" },
    { "key", "PGP keys and image signatures are not supported" },
    { "keyserver", "PGP keys and image signatures are not supported" },
    { "sign", "PGP keys and image signatures are not supported" },
    { "verify", "PGP keys and image signatures are not supported" },
    { "remote", "library remotes are not supported (images come from oras://, docker:// or https://)" },
    { "search", "the container library is not supported" },
    { "delete", "the container library is not supported" },
    { "plugin", "plugins are not supported" },
    { "oci", "the OCI runtime commands are not supported" },
};

int
cmd_version (int argc, char **argv)
{
    (void) argc;
    (void) argv;
    /* As Apptainer's 'version' command: the bare version under its names. */
    if (strcmp (capsa_prog_name, "apptainer") == 0)
        printf ("%s\n", CAPSA_APPTAINER_LEVEL);
    else if (strcmp (capsa_prog_name, "singularity") == 0)
        printf ("%s\n", CAPSA_SINGULARITY_LEVEL);
    else
        printf ("capsa version %s (Apptainer %s command line)\n", CAPSA_VERSION, CAPSA_APPTAINER_LEVEL);
    return 0;
}

/* --version: "NAME version V", what workflow tools parse (docs/apptainer.md). */
static int
print_version_flag (void)
{
    if (strcmp (capsa_prog_name, "apptainer") == 0)
        printf ("apptainer version %s\n", CAPSA_APPTAINER_LEVEL);
    else if (strcmp (capsa_prog_name, "singularity") == 0)
        printf ("singularity version %s\n", CAPSA_SINGULARITY_LEVEL);
    else
        return cmd_version (0, NULL);
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

/* Apptainer's APPTAINER_MESSAGELEVEL (sylog numbers: -4 fatal ... 5 debug). */
static enum capsa_log_level
level_from_number (const char *v)
{
    long n;
    if (parse_long (v, -100, 100, &n) < 0)
        capsa_die ("MESSAGELEVEL '%s' is not a number", v);
    if (n <= -4)
        return CAPSA_LOG_FATAL;
    if (n == -3)
        return CAPSA_LOG_ERROR;
    if (n < 0)
        return CAPSA_LOG_WARNING;
    if (n <= 1)
        return CAPSA_LOG_INFO;
    if (n <= 4)
        return CAPSA_LOG_VERBOSE;
    return CAPSA_LOG_DEBUG;
}

int
main (int argc, char **argv)
{
    int i = 1;
    bool debug = false, verbose = false, quiet = false, silent = false, nocolor = false, help = false;

    const char *base = strrchr (argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strcmp (base, "apptainer") == 0 || strcmp (base, "singularity") == 0) {
        capsa_prog_name = base;
    } else if (strcmp (base, "run-singularity") == 0) {
        /* "run-singularity IMAGE ARGS" is "apptainer --quiet run IMAGE ARGS". */
        char **v = xcalloc ((size_t) argc + 3, sizeof (char *));
        v[0] = argv[0];
        v[1] = (char *) "--quiet";
        v[2] = (char *) "run";
        for (int k = 1; k < argc; k++)
            v[k + 2] = argv[k];
        argc += 2;
        argv = v;
        capsa_prog_name = "singularity";
    }
    capsa_main_argv = argv;

    /* Variables first (CAPSA_, APPTAINER_, SINGULARITY_), then flags. */
    debug = capsa_optenv_bool ("DEBUG") == 1;
    verbose = capsa_optenv_bool ("VERBOSE") == 1;
    quiet = capsa_optenv_bool ("QUIET") == 1;
    silent = capsa_optenv_bool ("SILENT") == 1;
    nocolor = capsa_optenv_bool ("NOCOLOR") == 1;
    capsa_config_file = capsa_optenv ("CONFIG_FILE");
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp (a, "-q") == 0 || strcmp (a, "--quiet") == 0)
            quiet = true;
        else if (strcmp (a, "-s") == 0 || strcmp (a, "--silent") == 0)
            silent = true;
        else if (strcmp (a, "-v") == 0 || strcmp (a, "--verbose") == 0)
            verbose = true;
        else if (strcmp (a, "-d") == 0 || strcmp (a, "--debug") == 0)
            debug = true;
        else if (strcmp (a, "--nocolor") == 0)
            nocolor = true;
        else if (strcmp (a, "-c") == 0 || strcmp (a, "--config") == 0) {
            if (i + 1 >= argc)
                capsa_die ("option '%s' needs a file name", a);
            capsa_config_file = argv[++i];
        } else if (strncmp (a, "--config=", 9) == 0)
            capsa_config_file = a + 9;
        else if (strcmp (a, "--build-config") == 0)
            verbosef ("--build-config: ignored (capsa builds need no configuration of their own)");
        else if (strcmp (a, "-h") == 0 || strcmp (a, "--help") == 0)
            help = true;
        else if (strcmp (a, "--version") == 0)
            return print_version_flag ();
        else
            capsa_die ("unknown global option '%s' (see 'capsa help')", a);
    }
    /* Apptainer's order: --debug, then --verbose, then --quiet, then
     * --silent; without any, APPTAINER_MESSAGELEVEL. */
    const char *level = capsa_optenv ("MESSAGELEVEL");
    if (debug)
        capsa_log_set_level (CAPSA_LOG_DEBUG);
    else if (verbose)
        capsa_log_set_level (CAPSA_LOG_VERBOSE);
    else if (quiet)
        capsa_log_set_level (CAPSA_LOG_WARNING);
    else if (silent)
        capsa_log_set_level (CAPSA_LOG_ERROR);
    else if (level != NULL)
        capsa_log_set_level (level_from_number (level));
    const char *term = getenv ("TERM");
    capsa_log_set_color (!nocolor && isatty (STDERR_FILENO) && !(term && strcmp (term, "dumb") == 0));
    if (capsa_config_file != NULL && *capsa_config_file == '\0')
        capsa_config_file = NULL;
    if (help) {
        capsa_print_help (NULL);
        return 0;
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
    for (size_t k = 0; k < ARRAY_SIZE (unsupported); k++)
        if (strcmp (argv[i], unsupported[k].name) == 0)
            capsa_die ("%s: %s (see docs/apptainer.md)", argv[i], unsupported[k].why);
    capsa_die ("unknown command '%s' (see 'capsa help')", argv[i]);
}

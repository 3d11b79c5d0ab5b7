/* One function per capsa subcommand, one file per command in src/cmd/.
 * Each takes the arguments after the global options (argv[0] is the
 * command's own name) and returns the process exit status; fatal errors
 * exit 255 through capsa_die()/capsa_error_fatal(). */
#ifndef CAPSA_COMMANDS_H
#define CAPSA_COMMANDS_H

int cmd_action (int argc, char **argv);   /* exec, run, shell: src/cmd/action.c */
int cmd_sif (int argc, char **argv);      /* src/cmd/sif.c */
int cmd_inspect (int argc, char **argv);  /* src/cmd/inspect.c */
int cmd_build (int argc, char **argv);    /* src/cmd/build.c */
int cmd_encrypt (int argc, char **argv);  /* src/cmd/encrypt.c */
int cmd_push (int argc, char **argv);     /* src/cmd/push.c */
int cmd_pull (int argc, char **argv);     /* src/cmd/pull.c */
int cmd_cache (int argc, char **argv);    /* src/cmd/cache.c */
int cmd_registry (int argc, char **argv); /* src/cmd/registry.c */
int cmd_capability (int argc, char **argv); /* capability, caps: src/cmd/capability.c */
int cmd_version (int argc, char **argv);  /* src/cmd/main.c */
int cmd_help (int argc, char **argv);     /* src/cmd/main.c */
int cmd_seccomp_compile (int argc, char **argv); /* hidden, for the starter: src/cmd/seccompc.c */

/* The command line as main() received it (for handing it on). */
extern char **capsa_main_argv;
extern const char *capsa_config_file; /* global -c/--config FILE (main.c), passed to the starter */

/* Light front end only: run PREFIX/libexec/capsa/tools with the same
 * command line (src/cmd/light.c). */
#include <stdnoreturn.h>
noreturn void capsa_delegate_to_tools (void);

/* Print the help text of a command (NULL: the overview) to stdout.
 * Returns 0, or -1 when the command is unknown. */
int capsa_print_help (const char *cmd);

/* Registry access shared by push, pull, build and the actions (src/cmd/registry.c). */
#include <stdbool.h>
struct capsa_oci_opts;
/* If argv[*i] is --no-https or --authfile[=FILE], remember it (advancing *i
 * past a separate value) and return true. */
bool capsa_cmd_registry_flag (int argc, char **argv, int *i);
void capsa_cmd_set_no_https (void);
/* Options from those flags and CAPSA_NO_HTTPS, CAPSA_AUTHFILE,
 * CAPSA_DOCKER_USERNAME/PASSWORD, with progress bars and notices. */
void capsa_cmd_oci_opts (struct capsa_oci_opts *o);
void capsa_cmd_progress_done (void);
/* The cached SIF of an oras:// IMAGE (pulled when needed; fatal on error),
 * or NULL when IMAGE is not an oras:// URI. */
char *capsa_cmd_resolve_oras (const char *image);

#endif

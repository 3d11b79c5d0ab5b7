/* One function per capsa subcommand, one file per command in src/cmd/.
 * Each takes the arguments after the global options (argv[0] is the
 * command's own name) and returns the process exit status; fatal errors
 * exit 255 through capsa_die()/capsa_error_fatal(). */
#ifndef CAPSA_COMMANDS_H
#define CAPSA_COMMANDS_H

#include <stdbool.h>

#include "lib/error.h"

int cmd_action (int argc, char **argv);   /* exec, run, shell, test: src/cmd/action.c */
int cmd_instance (int argc, char **argv); /* instance start|run|stop|list|stats: src/cmd/instance.c */
/* The actions' option handling, also for `instance start|run` (INSTANCE:
 * argv[0] is "start" or "run", and NAME follows IMAGE). */
int capsa_cmd_action_main (int argc, char **argv, bool instance);
/* Run the starter (ARGS) that starts instance NAME, its output going to
 * the instance's logs; report how it went (src/cmd/instance.c). */
struct strv;
int capsa_cmd_instance_launch (const char *starter, struct strv *args, const char *name);
int cmd_run_help (int argc, char **argv); /* src/cmd/inspect.c */
int cmd_sif (int argc, char **argv);      /* src/cmd/sif.c */
int cmd_inspect (int argc, char **argv);  /* src/cmd/inspect.c */
int cmd_build (int argc, char **argv);    /* src/cmd/build.c */
int cmd_encrypt (int argc, char **argv);  /* src/cmd/encrypt.c */
int cmd_push (int argc, char **argv);     /* src/cmd/push.c */
int cmd_pull (int argc, char **argv);     /* src/cmd/pull.c */
int cmd_cache (int argc, char **argv);    /* src/cmd/cache.c */
int cmd_registry (int argc, char **argv); /* src/cmd/registry.c */
int cmd_capability (int argc, char **argv); /* capability, caps: src/cmd/capability.c */
int cmd_config (int argc, char **argv);   /* config fakeroot: src/cmd/config.c */
int cmd_overlay (int argc, char **argv);  /* overlay create: src/cmd/overlay.c */
int cmd_version (int argc, char **argv);  /* src/cmd/main.c */
int cmd_help (int argc, char **argv);     /* src/cmd/main.c */

/* The command line as main() received it (for handing it on). */
extern char **capsa_main_argv;
/* Global -c/--config FILE (passed to the starter as --config=FILE), or NULL. */
extern const char *capsa_config_file;
/* The name capsa was called by: "capsa", "apptainer" or "singularity"
 * (for --version and messages). */
extern const char *capsa_prog_name;
/* The Apptainer release whose behaviour capsa follows, and the
 * SingularityCE release "singularity --version" gives for it. */
#define CAPSA_APPTAINER_LEVEL "1.5.3"
#define CAPSA_SINGULARITY_LEVEL "3.9.5"

/* Option variables (src/cmd/envopt.c): KEY is read as CAPSA_KEY, then
 * APPTAINER_KEY, then SINGULARITY_KEY; the first set to something not
 * blank wins (with a warning when APPTAINER_ and SINGULARITY_ differ).
 * *name (may be NULL) receives the variable's name (static storage). */
const char *capsa_optenv (const char *key);
const char *capsa_optenv_which (const char *key, const char **name);
/* A boolean variable: -1 unset, else 0 or 1; a value that is not a
 * boolean (Go's strconv.ParseBool, plus yes/no) is fatal. */
int capsa_optenv_bool (const char *key);
int capsa_parse_bool (const char *v, bool *out);

/* Light front end only: run PREFIX/libexec/capsa/tools with the same
 * command line (src/cmd/light.c). */
#include <stdnoreturn.h>
noreturn void capsa_delegate_to_tools (void);

/* GPUs (src/cmd/gpu.c): append to PASS the starter's options for the GPUs
 * asked for (--nv, --nvccli, --rocm, --compat32; --no-nv, --no-rocm) or
 * implied by capsa.conf ('always use nv', 'always use rocm', 'use
 * nvidia-container-cli'): --nv/--rocm and the host's files found for them
 * (--gpu-file=KIND:PATH).  CONTAIN: --contain is in effect. */
struct strv;
struct capsa_gpu_request {
    bool nv, nvccli, rocm, compat32, no_nv, no_rocm, contain;
};
void capsa_cmd_gpu (const struct capsa_gpu_request *r, struct strv *pass);

/* Print the help text of a command (NULL: the overview) to stdout.
 * Returns 0, or -1 when the command is unknown. */
int capsa_print_help (const char *cmd);

/* Registry access shared by push, pull, build and the actions (src/cmd/registry.c). */
struct capsa_oci_opts;
/* If argv[*i] is --no-https or --authfile[=FILE], remember it (advancing *i
 * past a separate value) and return true. */
bool capsa_cmd_registry_flag (int argc, char **argv, int *i);
void capsa_cmd_set_no_https (void);
void capsa_cmd_set_authfile (const char *path);
/* --docker-username / --docker-password (either may be NULL: unchanged). */
void capsa_cmd_set_docker_user (const char *user, const char *password);
/* Options from those flags and CAPSA_NO_HTTPS, CAPSA_AUTHFILE,
 * CAPSA_DOCKER_USERNAME/PASSWORD, with progress bars and notices. */
void capsa_cmd_oci_opts (struct capsa_oci_opts *o);
void capsa_cmd_progress_done (void);
/* The cached SIF of an oras:// IMAGE (pulled when needed; fatal on error),
 * or NULL when IMAGE is not an oras:// URI. */
char *capsa_cmd_resolve_oras (const char *image);
/* The same for every URI an action or inspect takes: oras://, docker://
 * (converted once into the cache), http(s)://; other transports are
 * refused; NULL when IMAGE is not a URI.  TMPDIR may be NULL. */
char *capsa_cmd_resolve_uri (const char *image, bool disable_cache, const char *tmpdir);
/* src/cmd/pull.c: docker:// converted into the cache (a SIF named by the
 * manifest digest), and http(s):// images (cached, or a temporary file:
 * *temporary). */
struct capsa_oci_opts;
int capsa_cmd_docker_cached (const char *uri, const struct capsa_oci_opts *o, char **path, capsa_error_t *err);
int capsa_cmd_net_cached (const char *url, const struct capsa_oci_opts *o, char **path, bool *temporary,
                          capsa_error_t *err);

#endif

/* One function per capsa subcommand, one file per command in src/cmd/.
 * Each takes the arguments after the global options (argv[0] is the
 * command's own name) and returns the process exit status; fatal errors
 * exit 255 through capsa_die()/capsa_error_fatal(). */
#ifndef CAPSA_COMMANDS_H
#define CAPSA_COMMANDS_H

int cmd_action (int argc, char **argv);   /* exec, run, shell: src/cmd/action.c */
int cmd_sif (int argc, char **argv);      /* src/cmd/sif.c */
int cmd_inspect (int argc, char **argv);  /* src/cmd/inspect.c */
int cmd_capability (int argc, char **argv); /* capability, caps: src/cmd/capability.c */
int cmd_version (int argc, char **argv);  /* src/cmd/main.c */
int cmd_help (int argc, char **argv);     /* src/cmd/main.c */

/* Print the help text of a command (NULL: the overview) to stdout.
 * Returns 0, or -1 when the command is unknown. */
int capsa_print_help (const char *cmd);

#endif

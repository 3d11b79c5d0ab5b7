/* Instances: containers that run detached, which the user joins, lists and
 * stops (capsa instance ..., exec|run|shell instance://NAME).  The
 * starter's side: start and join in instance.c, list and stop in
 * instctl.c, the records' directories and checks in inststore.c
 * (instance_int.h), their text in inststate.h.  SECURITY.md ("Instances")
 * says why it is built this way.
 *
 * Where the state lives, decided by the mode the instance runs in:
 *   root, setuid   CAPSA_RUNSTATEDIR/instances/UID/NAME, root's (every
 *                  directory root-owned, 0700 below CAPSA_RUNSTATEDIR),
 *                  written and read by the starter with root's identity
 *                  only (capsa_privs_state_begin/end), never by the user;
 *   userns         HOME/.capsa/instances/state/HOST/USER/NAME, the user's
 *                  own (HOME from the password database), written and
 *                  read by the unprivileged starter.
 *
 * Start (capsa_instance_start, instead of capsa_container_run):
 *   the starter (P0) forks the monitor (P1), which starts a session of
 *   its own and runs the container as usual; the container's child C is
 *   the instance's init (PID 1 of its PID namespace).  When C runs and
 *   its command has been started, P1 sends C's pid to P0 and waits.  P0
 *   checks that C is P1's child, records C's start time and namespace
 *   identities and P1's, writes the record, and confirms; P1 then waits
 *   for the container as a monitor does, detached (the front end and P0
 *   are gone).  If P0 dies or fails before confirming, P1 ends the
 *   container.
 *
 * Join (capsa_instance_join, instead of capsa_container_run): the
 *   record is read (root's in setuid and root mode), then the live
 *   process is checked against it through one descriptor of /proc/PID:
 *   its start time, that it has not ended, its owner, and the identity
 *   of each namespace opened (by descriptor, before any setns); in a
 *   user namespace also that the instance's user namespace is a child of
 *   the caller's and owned by the caller.  Then the monitor enters the
 *   PID namespace (and the user namespace) and forks; the child enters
 *   the others and goes through the same final drop, working directory,
 *   environment, LSM labels and seccomp filters as any container's
 *   command (capsa_container_command). */
#ifndef CAPSA_INSTANCE_H
#define CAPSA_INSTANCE_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "runtime/container.h"
#include "runtime/inststate.h"

/* Root's state directory (the Makefile's RUNSTATEDIR). */
#ifndef CAPSA_RUNSTATEDIR
#define CAPSA_RUNSTATEDIR "/run/capsa"
#endif

struct capsa_instance {
    bool join;                  /* exec|run|shell instance://NAME */
    char *name;
    char *pid_file;             /* start: --pid-file, or NULL */
    int ready_fd, confirm_fd;   /* start: monitor (P1) <-> starter (P0) */
    struct capsa_inst_state st; /* join: the record */
    int nsfd[INST_NS_COUNT];    /* join: namespaces to enter, -1: same as ours */
};

/* Is IMAGE "instance://NAME"? */
bool capsa_instance_is_uri (const char *image);

/* The starter, for instance://NAME, before it picks the mode: the options
 * a join ignores are dropped (with a note), and in a setuid install a
 * user's join becomes a user-namespace run (o->userns) when root's state
 * has no instance of that name (it may be one started with --userns or
 * --fakeroot). */
int capsa_instance_join_options (struct capsa_opts *o, bool setuid_install, uid_t uid, bool allow_setuid,
                                 capsa_error_t *err);

/* Start the instance o->instance (instead of capsa_container_run). */
int capsa_instance_start (struct capsa_container *c, capsa_error_t *err);

/* Join the instance named by o->image (instead of capsa_container_run).
 * Returns the command's exit status. */
int capsa_instance_join (struct capsa_container *c, capsa_error_t *err);

/* The monitor of a starting instance, once the child runs its command
 * (src/runtime/monitor.c): tell the starter and wait for its
 * confirmation; without it, the child is killed. */
void capsa_instance_monitor_ready (struct capsa_container *c, pid_t child);

/* `starter instance list|stop ...`: list (records on stdout) and stop
 * instances, and remove the records of those that ended.  Returns the
 * exit status. */
int capsa_instance_command (int argc, char **argv, struct capsa_conf *conf, bool setuid_install, uid_t uid,
                            gid_t gid);

#endif

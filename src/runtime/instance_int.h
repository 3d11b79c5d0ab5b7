/* Instances, the runtime's private part: the helpers that find, read,
 * write and check instance records, shared by instance.c (start, join)
 * and instctl.c (list, stop).  Defined in inststore.c.
 *
 * In setuid mode, every call that touches root's state directory or
 * /proc/PID of a recorded process must be made between
 * capsa_privs_state_begin/end (the caller's bracket). */
#ifndef CAPSA_INSTANCE_INT_H
#define CAPSA_INSTANCE_INT_H

#include "runtime/instance.h"

/* What /proc/PID/stat and status say of a process. */
struct inst_proc {
    char state;
    pid_t ppid;
    uint64_t start;
    uid_t ruid;
};

/* DIRFD/NAME read whole (64 KiB at most). */
int inst_read_at (int dirfd, const char *name, char **out, capsa_error_t *err);
/* A descriptor of /proc/PID: everything read through it concerns that one
 * process; once it has ended, reads fail, even when a later process gets
 * the same number. */
int inst_open_proc (pid_t pid, capsa_error_t *err);
int inst_proc_info (int procfd, struct inst_proc *pi, capsa_error_t *err);
/* A zombie (or dead) process's state letter. */
bool inst_ended (char state);
/* /proc/sys/kernel/random/boot_id (36 characters and a NUL). */
int inst_boot_id (char out[40], capsa_error_t *err);
/* The identity of the namespace behind FD (its nsfs device and inode). */
int inst_ns_identity (int fd, struct capsa_inst_id *id);
bool inst_same_id (const struct capsa_inst_id *a, const struct capsa_inst_id *b);
/* The identity of our own namespace of kind I (enum capsa_inst_ns). */
int inst_own_ns (int i, struct capsa_inst_id *id);
/* Does ST's instance run: this boot, its init alive with the start time,
 * owner and parent recorded?  1 or 0.  *PROCFD (when not NULL) receives
 * the init's /proc descriptor when it runs. */
int inst_running (const struct capsa_inst_state *st, int *procfd);

/* RUNSTATEDIR/instances/UID (root's, every component root-owned and
 * writable by root alone; made when CREATE), with root's identity.
 * ENOENT in *err when missing. */
int inst_root_state_dir (uid_t uid, bool create, capsa_error_t *err);
/* HOME/.capsa/instances/SUB/HOST/USER, the user's own, as the user. */
int inst_user_dir (const struct capsa_user *u, const char *sub, bool create, capsa_error_t *err);
/* Where the front end puts the logs of NAME (EXT "out" or "err"). */
char *inst_log_path (const struct capsa_user *u, const char *name, const char *ext);

/* The record NAME of WHO's instance in DIRFD, root's directory
 * (ROOT_DIR) or WHO's own: a regular file of root or WHO writable by no
 * one else, not through a symbolic link, naming WHO and a mode that
 * belongs there. */
int inst_state_read (int dirfd, const char *name, uid_t who, bool root_dir, struct capsa_inst_state *st,
                     capsa_error_t *err);
/* Write ST as DIRFD/NAME atomically (a new file beside it, renamed). */
int inst_state_write (int dirfd, const struct capsa_inst_state *st, capsa_error_t *err);
/* Take NAME for a new instance: refused while a running one has it; the
 * record of one that ended (or a damaged one) is removed.  The caller
 * holds the directory's lock. */
int inst_name_free (int dirfd, const char *name, uid_t who, bool root_dir, capsa_error_t *err);

#endif

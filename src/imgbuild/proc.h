/* Processes of a build: helpers (mksquashfs, unsquashfs, debootstrap, cp)
 * and the definition file's scripts, run inside the new root.
 *
 * Every child dies with capsa (PR_SET_PDEATHSIG).  A child that asks for
 * namespaces is started with clone(): it becomes PID 1 of a new PID
 * namespace in a new, private mount namespace (and, with BP_FAKEROOT, a new
 * user namespace mapping root to the caller, plus the caller's subordinate
 * ids of /etc/subuid and /etc/subgid through newuidmap/newgidmap when the
 * build found some: build_proc_set_fakeroot_ranges).  It prepares the mounts, then forks the
 * program and reaps until it ends.  So killing that PID 1 (what an
 * interrupted build does) kills everything the script started, and every
 * mount it or the script made disappears with the namespace: nothing is
 * ever mounted in capsa's own mount namespace.
 *
 * Inside a root (BP_ROOTFS): the tree is bound onto itself, /proc is a new
 * procfs, /sys the host's (read-only), /dev a tmpfs with null, zero, full,
 * random, urandom, tty bound from the host plus devpts and shm, the host's
 * /etc/resolv.conf is bound over the tree's, then pivot_root.  Mount points
 * are resolved with openat2(RESOLVE_IN_ROOT): a symlink in the image cannot
 * send a mount outside the tree.
 *
 * Signals: between build_signals_begin() and build_signals_end(), SIGINT,
 * SIGTERM and SIGHUP are caught; the running child (its PID 1 for a
 * namespaced one) is sent SIGKILL and build_interrupted() returns the
 * signal, so the build can stop, clean up and report. */
#ifndef CAPSA_BUILD_PROC_H
#define CAPSA_BUILD_PROC_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

enum {
    BP_NAMESPACES = 1 << 0, /* new mount and PID namespaces */
    BP_FAKEROOT = 1 << 1,   /* ... and a user namespace: caller -> root */
};

struct build_proc {
    const char *const *argv; /* argv[0] is looked up in PATH (inside the root) */
    const char *const *envp; /* NULL: capsa's environment */
    const char *rootfs;      /* run inside this tree (implies BP_NAMESPACES) */
    const char *cwd;         /* NULL: unchanged, "/" inside a root */
    unsigned flags;
    bool null_stdin; /* stdin from /dev/null */
    /* Output: when on_line is set, stdout and stderr are read through a
     * pipe and handed over line by line (progress displays, logs); else
     * when out_fd >= 0 both go there; else they are inherited. */
    void (*on_line) (const char *line, void *data);
    void *data;
    int out_fd;
};

/* The subordinate ranges a BP_FAKEROOT namespace maps besides root = the
 * caller (src/runtime/fakeroot.h; NULL or count 0: the caller alone), for
 * every later build_proc_run.  Borrowed. */
struct capsa_subid;
void build_proc_set_fakeroot_ranges (const struct capsa_subid *uids, const struct capsa_subid *gids);

/* Remove the tree PATH from inside a BP_FAKEROOT namespace, where files
 * the build gave to subordinate ids can be removed (even after an
 * interruption: this is the cleanup). */
int build_proc_remove_fakeroot (const char *path, capsa_error_t *err);

/* Run P and wait for it.  *status is its exit code, 128+N after signal N.
 * Fails (-1) when it cannot be started, when preparing its namespaces or
 * root failed (the reason is in *err), or when the build was interrupted
 * meanwhile. */
int build_proc_run (const struct build_proc *p, int *status, capsa_error_t *err);

/* "exit status 3", "killed by signal 9 (Killed)": for messages. */
const char *build_status_text (int status, char *buf, size_t len);

void build_signals_begin (void);
void build_signals_end (void);
/* The signal that interrupted the build, or 0. */
int build_interrupted (void);
/* -1 with "interrupted by SIGINT" when interrupted, else 0. */
int build_check_interrupted (capsa_error_t *err);

/* The last lines of a child's output, for an error message. */
#define BUILD_TAIL_LINES 15
struct build_tail {
    char *line[BUILD_TAIL_LINES];
    size_t next, count;
};
void build_tail_push (struct build_tail *t, const char *line);
/* The lines, oldest first, joined with "\n" (new string). */
char *build_tail_text (const struct build_tail *t);
void build_tail_free (struct build_tail *t);

#endif

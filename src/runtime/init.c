/* The container's init under --pid (and --containall), as Apptainer's
 * "appinit" shim: in a new PID namespace the first process is PID 1, which
 * the kernel shields from every signal it has no handler for (so a command
 * that is PID 1 ignores SIGTERM unless it traps it) and which inherits
 * every orphan (so a command that never waits for unknown children fills
 * the namespace with zombies).  capsa puts this small process there
 * instead; the command runs as its child.
 *
 * It starts after the final privilege drop, with the command's identity,
 * capabilities, no_new_privs and seccomp filters, and execs nothing.
 *
 *   - every catchable signal is blocked before fork() and taken with
 *     sigwaitinfo(), so none is lost or ignored (a blocked signal is queued
 *     even for a namespace's init);
 *   - a signal someone sent (kill(), the monitor forwarding SIGTERM from
 *     Slurm, a process of the container) goes to the command; one the
 *     terminal generated (si_code SI_KERNEL: Ctrl-C, SIGWINCH, hang-up)
 *     reached the command's process group already and is not sent twice;
 *   - SIGCHLD: every child that ended is reaped; when the command ends,
 *     init exits with its status (128+N after signal N), which ends the
 *     namespace and every process left in it. */
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/container.h"

static noreturn void
init_loop (pid_t cmd, const sigset_t *all)
{
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo (all, &si);
        if (sig < 0)
            continue; /* EINTR */
        if (sig != SIGCHLD) {
            if (si.si_code != SI_KERNEL)
                kill (cmd, sig);
            continue;
        }
        for (;;) {
            int status;
            pid_t w = waitpid (-1, &status, WNOHANG);
            if (w <= 0)
                break;
            if (w != cmd || !(WIFEXITED (status) || WIFSIGNALED (status)))
                continue;
            _exit (WIFSIGNALED (status) ? 128 + WTERMSIG (status) : WEXITSTATUS (status));
        }
    }
}

/* An instance's init: the command (CMD > 0) runs in a process group of
 * its own, so that a stop signal reaches it and whatever it started in
 * that group.  A signal while the command runs goes to its group and is
 * remembered; when the command ends after one, init ends with 128+N (and
 * the namespace with it).  A signal after the command ended (or with no
 * command at all) ends init at once: that is `instance stop`.  Without a
 * signal, init outlives its command: the instance stays up, as
 * Apptainer's does, until stopped.  SIGCONT and SIGWINCH never stop it. */
static noreturn void
instance_loop (pid_t cmd, const sigset_t *all)
{
    int stop_sig = 0;
    bool cmd_done = cmd <= 0;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo (all, &si);
        if (sig < 0)
            continue; /* EINTR */
        if (sig == SIGCHLD) {
            for (;;) {
                int status;
                pid_t w = waitpid (-1, &status, WNOHANG);
                if (w <= 0)
                    break;
                if (w == cmd && (WIFEXITED (status) || WIFSIGNALED (status)))
                    cmd_done = true;
            }
            if (cmd_done && stop_sig != 0)
                _exit (128 + stop_sig);
            continue;
        }
        if (sig == SIGCONT || sig == SIGWINCH || sig == SIGURG)
            continue;
        if (!cmd_done && kill (-cmd, sig) == 0) {
            stop_sig = sig;
            continue;
        }
        _exit (128 + sig);
    }
}

void
capsa_init_start_instance (bool command, int sock)
{
    sigset_t all, old;
    sigfillset (&all);
    sigdelset (&all, SIGSEGV);
    sigdelset (&all, SIGBUS);
    sigdelset (&all, SIGILL);
    sigdelset (&all, SIGFPE);
    if (sigprocmask (SIG_SETMASK, &all, &old) < 0)
        capsa_die ("cannot start the instance's init: %s", strerror (errno));
    pid_t pid = -1;
    if (command) {
        pid = fork ();
        if (pid < 0)
            capsa_die ("cannot start the instance's init: %s", strerror (errno));
        if (pid == 0) {
            /* The command, in a group of its own, with the signal mask it
             * had; its copy of SOCK closes when it execs. */
            setpgid (0, 0);
            sigprocmask (SIG_SETMASK, &old, NULL);
            return;
        }
        setpgid (pid, pid); /* (either may run first) */
    }
    prctl (PR_SET_NAME, "appinit", 0, 0, 0);
    close (sock);
    instance_loop (pid, &all);
}

void
capsa_init_start (void)
{
    sigset_t all, old;
    sigfillset (&all);
    /* Faults must still kill init itself. */
    sigdelset (&all, SIGSEGV);
    sigdelset (&all, SIGBUS);
    sigdelset (&all, SIGILL);
    sigdelset (&all, SIGFPE);
    if (sigprocmask (SIG_SETMASK, &all, &old) < 0)
        capsa_die ("cannot start the container's init: %s", strerror (errno));
    pid_t pid = fork ();
    if (pid < 0)
        capsa_die ("cannot start the container's init: %s", strerror (errno));
    if (pid == 0) {
        /* The command: the signal mask it had before. */
        sigprocmask (SIG_SETMASK, &old, NULL);
        return;
    }
    prctl (PR_SET_NAME, "appinit", 0, 0, 0);
    init_loop (pid, &all);
}

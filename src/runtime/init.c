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

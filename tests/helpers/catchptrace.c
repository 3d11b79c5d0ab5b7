/* catchptrace NAME SECONDS [PARENTMARK]: as the attacker, watch /proc for a
 * new process whose comm is NAME (and, with PARENTMARK, whose parent's
 * command line contains it: only our own run is touched) and PTRACE_SEIZE
 * it at once; print "ATTACHED" when the attach succeeded (the process was
 * still dumpable), then detach.  tests/e2e/test_attacks.sh uses it against
 * capsa-cryptfuse, which must not be traceable by the user from its
 * execve on (found by the second attack review). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main (int argc, char **argv)
{
    const char *name = argv[1];
    time_t end = time (NULL) + atoi (argv[2]);
    int seen[65536] = { 0 };
    while (time (NULL) < end) {
        DIR *d = opendir ("/proc");
        struct dirent *e;
        while ((e = readdir (d))) {
            int pid = atoi (e->d_name);
            if (pid <= 0 || pid >= 65536 || seen[pid]) continue;
            char p[64], comm[64] = { 0 };
            snprintf (p, sizeof p, "/proc/%d/comm", pid);
            int fd = open (p, O_RDONLY);
            if (fd < 0) continue;
            int n = read (fd, comm, sizeof comm - 1);
            close (fd);
            if (n <= 0) continue;
            comm[strcspn (comm, "\n")] = 0;
            if (strcmp (comm, name) != 0) continue;
            seen[pid] = 1;
            if (argc > 3) {
                char sp[64], buf[4096] = { 0 }; int ppid = 0;
                snprintf (sp, sizeof sp, "/proc/%d/stat", pid);
                FILE *f = fopen (sp, "r");
                if (!f || fscanf (f, "%*d %*s %*c %d", &ppid) != 1) { if (f) fclose (f); continue; }
                fclose (f);
                snprintf (sp, sizeof sp, "/proc/%d/cmdline", ppid);
                int cf = open (sp, O_RDONLY);
                int m = cf < 0 ? 0 : read (cf, buf, sizeof buf - 1);
                if (cf >= 0) close (cf);
                for (int k = 0; k < m; k++) if (!buf[k]) buf[k] = ' ';
                if (!strstr (buf, argv[3])) continue;
            }
            if (ptrace (PTRACE_SEIZE, pid, 0, 0) == 0) {
                ptrace (PTRACE_INTERRUPT, pid, 0, 0);
                int st; waitpid (pid, &st, __WALL);
                char st2[64]; snprintf (st2, sizeof st2, "/proc/%d/maps", pid);
                int m = open (st2, O_RDONLY);
                printf ("pid %d (%s): ATTACHED (maps readable: %s)\n", pid, name, m >= 0 ? "yes" : "no");
                if (m >= 0) close (m);
                ptrace (PTRACE_DETACH, pid, 0, 0);
                fflush (stdout);
                return 0;
            } else {
                printf ("pid %d (%s): attach refused: %s\n", pid, name, strerror (errno));
                fflush (stdout);
            }
        }
        closedir (d);
    }
    return 1;
}

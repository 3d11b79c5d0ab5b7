/* --security (seccomp, uid, gid, selinux, apparmor) and the
 * administrator's limits on which images users may run.  Fails closed:
 * what cannot be applied is an error, never a warning. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "lib/log.h"
#include "runtime/container.h"
#include "runtime/privs.h"
#include "runtime/seccomp.h"

static bool
selinux_enabled (void)
{
    return access ("/sys/fs/selinux/enforce", F_OK) == 0;
}

static bool
apparmor_enabled (void)
{
    char buf[4] = { 0 };
    cleanup_close int fd = open ("/sys/module/apparmor/parameters/enabled", O_RDONLY | O_CLOEXEC);
    return fd >= 0 && read (fd, buf, 1) == 1 && buf[0] == 'Y' && access ("/sys/kernel/security/apparmor", F_OK) == 0;
}

static int
add_program (struct capsa_container *c, int fd, const char *what, capsa_error_t *err)
{
    if (c->nseccomp >= ARRAY_SIZE (c->seccomp_progs))
        return capsa_error_make (err, 0, "too many seccomp profiles");
    if (capsa_seccomp_read (fd, &c->seccomp_progs[c->nseccomp], &c->seccomp_lens[c->nseccomp], err) < 0)
        return capsa_error_wrap (err, "%s", what);
    c->nseccomp++;
    return 0;
}

/* The administrator's profile is root's file, but JSON is never parsed by
 * the starter: a child gives up root for good and runs the compiler,
 * libexec/capsa/seccompc, reading the profile opened here on its standard
 * input and writing the program to a memfd on its standard output.  It
 * runs as nobody, not as the user: a process of the user's own could be
 * traced by the user, who could then weaken the administrator's filter;
 * and seccompc is installed unreadable by others (0711), so it starts not
 * dumpable and no other process of nobody can trace it either.
 * (In a user namespace nothing is privileged and the user is the only
 * identity there is.) */
static int
compile_admin_profile (struct capsa_container *c, capsa_error_t *err)
{
    const char *path = c->conf->seccomp_profile;
    cleanup_close int in = capsa_open_trusted_file (path, c->mode == MODE_SETUID, err);
    if (in < 0)
        return capsa_error_wrap (err, "seccomp profile");
    cleanup_close int out = memfd_create ("capsa-seccomp", MFD_CLOEXEC);
    if (out < 0)
        return capsa_error_make (err, errno, "memfd_create");
    uid_t uid = c->mode == MODE_USERNS ? c->user.uid : 65534;
    gid_t gid = c->mode == MODE_USERNS ? c->user.gid : 65534;
    pid_t pid = fork ();
    if (pid < 0)
        return capsa_error_make (err, errno, "fork");
    if (pid == 0) {
        capsa_error_t e = NULL;
        char *const argv[] = { (char *) "capsa-seccompc", (char *) path, NULL };
        char *const envp[] = { (char *) "PATH=/usr/bin:/bin", NULL };
        /* Nothing the caller set may cut the program short: a file-size
         * limit (with SIGXFSZ ignored, a short write the compiler would
         * not notice) or any ignored or blocked signal. */
        struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
            signal (sig, SIG_DFL);
        if (c->mode != MODE_USERNS && (seteuid (0) < 0 || setrlimit (RLIMIT_FSIZE, &unlimited) < 0))
            _exit (CAPSA_EXIT_FATAL);
        if (capsa_privs_helper_drop (c->mode, uid, gid, &e) < 0)
            capsa_error_fatal (&e);
        if (dup2 (in, STDIN_FILENO) < 0 || dup2 (out, STDOUT_FILENO) < 0)
            _exit (CAPSA_EXIT_FATAL);
        execve (CAPSA_LIBEXECDIR "/seccompc", argv, envp);
        capsa_die ("cannot run %s/seccompc: %s", CAPSA_LIBEXECDIR, strerror (errno));
    }
    int status;
    while (waitpid (pid, &status, 0) < 0)
        if (errno != EINTR)
            return capsa_error_make (err, errno, "waitpid");
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        return capsa_error_make (err, 0, "the administrator's seccomp profile %s could not be compiled", path);
    return add_program (c, out, "the administrator's seccomp profile", err);
}

int
capsa_security_prepare (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_opts *o = c->opts;

    if (o->seccomp_paths.n > 0)
        return capsa_error_make (err, 0, "--security seccomp:%s: profiles are compiled by capsa, not by the starter",
                                 o->seccomp_paths.v[0]);
    if ((o->target_uid >= 0 || o->ntarget_gids > 0) && c->mode == MODE_SETUID)
        return capsa_error_make (err, 0, "--security uid: and gid: are for root only");
    if (o->selinux && !selinux_enabled ())
        return capsa_error_make (err, 0, "selinux requested, but is not enabled or supported on this system");
    if (o->apparmor && !apparmor_enabled ())
        return capsa_error_make (err, 0, "apparmor requested, but is not enabled or supported on this system");

    if (c->conf->seccomp_profile && compile_admin_profile (c, err) < 0)
        return -1;
    for (size_t i = 0; i < o->nseccomp_fds; i++) {
        int r = add_program (c, o->seccomp_fds[i], "--security seccomp", err);
        close (o->seccomp_fds[i]);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Last step before exec: LSM labels, then the seccomp filters. */
int
capsa_security_apply (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_opts *o = c->opts;

    if (o->selinux) {
        cleanup_close int fd = open ("/proc/thread-self/attr/exec", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write_all (fd, o->selinux, strlen (o->selinux)) < 0)
            return capsa_error_make (err, errno, "cannot set the SELinux label %s", o->selinux);
    }
    if (o->apparmor) {
        cleanup_free char *cmd = xasprintf ("exec %s", o->apparmor);
        cleanup_close int fd = open ("/proc/thread-self/attr/apparmor/exec", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write_all (fd, cmd, strlen (cmd)) < 0)
            return capsa_error_make (err, errno, "cannot set the AppArmor profile %s", o->apparmor);
    }
    for (size_t i = 0; i < c->nseccomp; i++) {
        capsa_error_t e = NULL;
        if (capsa_seccomp_load (c->seccomp_progs[i], c->seccomp_lens[i], &e) == 0)
            continue;
        /* Without CAP_SYS_ADMIN (root with dropped capabilities) the
         * kernel wants no_new_privs first. */
        if (e->code != EACCES) {
            *err = e;
            return -1;
        }
        capsa_error_free (&e);
        if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            return capsa_error_make (err, errno, "cannot set no_new_privs");
        if (capsa_seccomp_load (c->seccomp_progs[i], c->seccomp_lens[i], err) < 0)
            return -1;
    }
    return 0;
}

static bool
in_list (const struct strv *list, const char *name)
{
    for (size_t i = 0; i < list->n; i++)
        if (name && strcmp (list->v[i], name) == 0)
            return true;
    return false;
}

int
capsa_security_check_image (struct capsa_container *c, bool encrypted, capsa_error_t *err)
{
    const struct capsa_conf *conf = c->conf;
    struct stat st;
    const char *kind = NULL;

    if (c->mode != MODE_SETUID)
        return 0;
    switch (c->image.kind) {
    case IMAGE_DIR:
        if (!conf->allow_container_dir)
            kind = "dir";
        break;
    case IMAGE_SQUASHFS:
        if (!conf->allow_container_squashfs)
            kind = "squashfs";
        break;
    case IMAGE_SIF:
        if (!conf->allow_container_sif)
            kind = "sif";
        break;
    }
    if (encrypted && !conf->allow_container_encrypted)
        kind = "encrypted";
    if (kind)
        return capsa_error_make (err, 0, "image %s: %s images are not allowed by the administrator ('allow container %s = no')",
                                 c->image.path, kind, kind);
    if (!capsa_conf_limited (conf))
        return 0;
    if (fstat (c->image.fd, &st) < 0)
        return capsa_error_make (err, errno, "image %s", c->image.path);
    if (conf->limit_owners.n > 0) {
        struct passwd *pw = getpwuid (st.st_uid);
        if (!in_list (&conf->limit_owners, pw ? pw->pw_name : NULL))
            return capsa_error_make (err, 0, "image %s: its owner is not in 'limit container owners'", c->image.path);
    }
    if (conf->limit_groups.n > 0) {
        struct group *gr = getgrgid (st.st_gid);
        if (!in_list (&conf->limit_groups, gr ? gr->gr_name : NULL))
            return capsa_error_make (err, 0, "image %s: its group is not in 'limit container groups'", c->image.path);
    }
    if (conf->limit_paths.n > 0) {
        /* The path of the object actually opened, every symlink and ".."
         * resolved, compared by whole components. */
        char link[64];
        char real[4096];
        snprintf (link, sizeof (link), "/proc/self/fd/%d", c->image.fd);
        ssize_t n = readlink (link, real, sizeof (real) - 1);
        if (n < 0)
            return capsa_error_make (err, errno, "image %s", c->image.path);
        real[n] = '\0';
        bool ok = false;
        for (size_t i = 0; i < conf->limit_paths.n && !ok; i++)
            ok = path_is_within (real, conf->limit_paths.v[i]);
        if (!ok)
            return capsa_error_make (err, 0, "image %s: %s is not under 'limit container paths'", c->image.path, real);
    }
    return 0;
}

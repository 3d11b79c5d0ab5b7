/* The container's child, from clone() to exec, in one linear sequence:
 *
 *   1. die with the monitor; in a user namespace, wait for the id maps
 *   2. act as the user (privs.h); open what the user named (prepare.c)
 *   3. assemble the root and pivot into it (rootfs.c), root's identity
 *      only inside the mount calls
 *   4. the final privilege drop (privs.c), which arms the parent-death
 *      signal again and checks that the monitor still lives
 *   5. enter the working directory by a descriptor opened as the user
 *   6. the environment, --env-file read from descriptors opened in 2;
 *      the caller's umask
 *   7. LSM labels and seccomp, last; under --pid the init process
 *      (init.c); exec through the image's /bin/sh running the action
 *      script (envscript.c), or directly when the image has no shell
 *
 * Steps 4 to 7 (capsa_container_command) are also those of a command
 * joining an instance (instance.c), which enters the instance's
 * namespaces instead of steps 1 to 3. */
#include "runtime/container.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/instance.h"
#include "runtime/overlay.h"
#include "runtime/privs.h"

/* Look COMMAND up in the container's PATH; errors as a shell would. */
static noreturn void
exec_direct (char **argv, char **envp)
{
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (char **e = envp; *e; e++)
        if (strncmp (*e, "PATH=", 5) == 0)
            path = *e + 5;
    if (strchr (argv[0], '/') != NULL) {
        execve (argv[0], argv, envp);
    } else {
        cleanup_free char *copy = xstrdup (path);
        char *save = NULL;
        int saved = ENOENT;
        for (char *d = strtok_r (copy, ":", &save); d; d = strtok_r (NULL, ":", &save)) {
            cleanup_free char *full = xasprintf ("%s/%s", *d ? d : ".", argv[0]);
            execve (full, argv, envp);
            if (errno != ENOENT && errno != ENOTDIR)
                saved = errno;
        }
        errno = saved;
        if (errno == ENOENT) {
            capsa_log (CAPSA_LOG_FATAL, "\"%s\": executable file not found in $PATH", argv[0]);
            _exit (127);
        }
    }
    int e = errno;
    capsa_log (CAPSA_LOG_FATAL, "\"%s\": %s", argv[0], e == ENOENT ? "no such file or directory" : strerror (e));
    _exit (e == ENOENT ? 127 : 126);
}

static bool
exists_exec (const char *p)
{
    return access (p, X_OK) == 0;
}

/* After the final drop, as the user: a directory that cannot be entered
 * is fatal when the user chose it (--pwd, as in Apptainer); the current
 * directory falls back to $HOME, then /. */
static void
enter_workdir (struct capsa_container *c)
{
    cleanup_close int fd = open (c->workdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && fchdir (fd) == 0)
        return;
    int e = errno;
    if (c->workdir_custom)
        capsa_die ("cannot enter the working directory %s: %s", c->workdir, strerror (e));
    const char *fallback = chdir (c->home_dst) == 0 ? c->home_dst : "/";
    warnf ("cannot enter %s in the container (%s), starting in %s", c->workdir, strerror (e), fallback);
    if (strcmp (fallback, "/") == 0 && chdir ("/") < 0)
        _exit (CAPSA_EXIT_FATAL);
    free (c->workdir);
    c->workdir = xstrdup (fallback);
}

noreturn void
capsa_container_child (struct capsa_container *c, int sock, pid_t monitor)
{
    capsa_error_t err = NULL;
    struct capsa_opts *o = c->opts;

    /* 1. Die with the monitor (armed again after the final drop, which
     *    clears it). */
    if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0 || (!o->pid_ns && getppid () != monitor))
        _exit (CAPSA_EXIT_FATAL);
    if (c->mode == MODE_USERNS) {
        char go;
        if (read (sock, &go, 1) != 1 || go != 'G')
            _exit (CAPSA_EXIT_FATAL);
        /* Inside the namespace the caller is the --security uid/gid when
         * given (the monitor mapped those ids to the caller's). */
        if (o->target_uid >= 0)
            c->user.uid = (uid_t) o->target_uid;
        if (o->ntarget_gids > 0)
            c->user.gid = o->target_gids[0];
        /* --fakeroot: the caller is root inside. */
        if (c->fakeroot)
            c->user.uid = 0, c->user.gid = 0;
    }

    /* 2. The user's rights from here on; open what the user named in this
     *    new mount namespace (descriptors of the host's namespace could not
     *    be bind-mounted here).  The key pipe is the monitor's business. */
    if (capsa_privs_child_begin (c, &err) < 0 || capsa_container_prepare (c, &err) < 0
        || capsa_layers_prepare (c, &err) < 0)
        capsa_error_fatal (&err);
    if (o->key_fd >= 0) {
        close (o->key_fd);
        o->key_fd = -1;
    }

    /* 3. The root. */
    if (capsa_container_setup_root (c, sock, &err) < 0)
        capsa_error_fatal (&err);
    capsa_container_command (c, sock);
}

noreturn void
capsa_container_command (struct capsa_container *c, int sock)
{
    capsa_error_t err = NULL;
    struct capsa_opts *o = c->opts;
    struct strv argv = { 0 };
    /* Starting an instance: its init runs whatever the command is (none
     * without a %startscript); joining one: no init of our own. */
    const bool starting = c->instance != NULL && !c->instance->join;
    const bool joining = c->instance != NULL && c->instance->join;

    /* What to run. */
    if (o->action == ACTION_START) {
        if (exists_exec ("/.singularity.d/startscript")) {
            strv_push (&argv, "/.singularity.d/startscript");
            for (int i = 0; i < o->ncmd; i++)
                strv_push (&argv, o->cmd[i]);
        }
    } else if (o->action == ACTION_EXEC) {
        for (int i = 0; i < o->ncmd; i++)
            strv_push (&argv, o->cmd[i]);
    } else if (o->action == ACTION_RUN && exists_exec ("/.singularity.d/runscript")) {
        strv_push (&argv, "/.singularity.d/runscript");
        for (int i = 0; i < o->ncmd; i++)
            strv_push (&argv, o->cmd[i]);
    } else if (o->shell) {
        strv_push (&argv, o->shell);
        for (int i = 0; i < o->ncmd; i++)
            strv_push (&argv, o->cmd[i]);
    } else {
        /* As Apptainer: bash without its rc files, so the user's .bashrc
         * does not replace the image's prompt. */
        bool bash = o->action == ACTION_SHELL && exists_exec ("/bin/bash");
        strv_push (&argv, bash ? "/bin/bash" : "/bin/sh");
        if (bash)
            strv_push (&argv, "--norc");
        if (o->action == ACTION_SHELL)
            strv_push (&c->env_final, bash ? "SHELL=/bin/bash" : "SHELL=/bin/sh");
        for (int i = 0; i < o->ncmd; i++)
            strv_push (&argv, o->cmd[i]);
    }

    /* 4. Everything privileged is done: drop it all, in one place. */
    if (capsa_drop_privileges (c, sock, &err) < 0)
        capsa_error_fatal (&err);
    if (!starting)
        close (sock);

    /* 5. and 6., as the user. */
    enter_workdir (c);
    for (size_t i = 0; i < o->env_files.n; i++) {
        if (capsa_env_read_fd (c, c->env_fds[i], o->env_files.v[i], &err) < 0)
            capsa_error_fatal (&err);
        close (c->env_fds[i]);
    }
    struct strv warnings = { 0 };
    capsa_env_build (c, &warnings);
    for (size_t i = 0; i < warnings.n; i++)
        warnf ("%s", warnings.v[i]);
    strv_free (&warnings);
    umask (o->no_umask ? 022 : c->umask);

    /* 7. Last of all: LSM labels and seccomp filters; then the init
     *    process, which the command and its filters share. */
    if (capsa_security_apply (c, &err) < 0)
        capsa_error_fatal (&err);
    if (starting)
        capsa_init_start_instance (argv.n > 0, sock);
    else if (o->pid_ns && !o->no_init && !joining)
        capsa_init_start ();

    /* Through the image's shell, which runs the action script (the
     * image's env scripts, the overrides evaluated, the environment put
     * back) when there is something for it to do; directly, with the
     * overrides taken literally, otherwise or without a shell. */
    if (capsa_env_needs_shell (c) && exists_exec ("/bin/sh")) {
        struct strv shv = { 0 }, shenv = { 0 };
        strv_push (&shv, "/bin/sh");
        strv_push (&shv, "-c");
        strv_push_take (&shv, capsa_env_script (c));
        strv_push (&shv, argv.v[0]);
        capsa_env_script_args (c, &shv);
        for (size_t i = 0; i < argv.n; i++)
            strv_push (&shv, argv.v[i]);
        capsa_env_shell_environ (c, &shenv);
        if (shenv.v == NULL)
            strv_push (&shenv, "PWD=/"); /* never a NULL environment */
        execve ("/bin/sh", shv.v, shenv.v);
        capsa_die ("cannot run /bin/sh in the container: %s", strerror (errno));
    }
    struct strv env = { 0 };
    capsa_env_direct (c, &env);
    exec_direct (argv.v, env.v);
}

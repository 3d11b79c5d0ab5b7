/* Unit tests for src/runtime/env.c: the command's environment
 * (capsa_env_build), --env-file (capsa_env_read_file), the sh snippet that
 * sources the image's env scripts and applies overrides (capsa_env_script,
 * which is also run through /bin/sh to check its quoting), and the
 * container's /etc/passwd and /etc/group contents. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/utils.h"
#include "runtime/container.h"
#include "tap.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static char tmpdir[] = "/tmp/capsa-test-env.XXXXXX";

/* A container as capsa_container_prepare would leave it, built by hand. */
struct fixture {
    struct capsa_container c;
    struct capsa_opts o;
};

static void
fixture_init (struct fixture *f)
{
    memset (f, 0, sizeof (*f));
    f->c.opts = &f->o;
    f->c.mode = MODE_SETUID;
    f->c.user.uid = 1000;
    f->c.user.gid = getgid ();
    f->c.user.name = (char *) "alice";
    f->c.user.gecos = (char *) "Alice A.";
    f->c.user.home = (char *) "/home/alice";
    f->c.user.shell = (char *) "/bin/bash";
    f->c.image.path = (char *) "/images/my.sif";
    f->c.image.fd = -1;
    f->c.home_dst = (char *) "/home/alice";
    f->c.workdir = (char *) "/work/dir";
}

static void
fixture_free (struct fixture *f)
{
    strv_free (&f->c.host_env);
    strv_free (&f->c.env);
    strv_free (&f->c.env_override);
    strv_free (&f->o.env);
}

/* The value of KEY in an env list, or NULL; *count gets how many times KEY is set. */
static const char *
getv (const struct strv *env, const char *key, int *count)
{
    size_t klen = strlen (key);
    const char *found = NULL;
    int n = 0;
    for (size_t i = 0; i < env->n; i++) {
        if (strncmp (env->v[i], key, klen) == 0 && env->v[i][klen] == '=') {
            if (found == NULL)
                found = env->v[i] + klen + 1;
            n++;
        }
    }
    if (count)
        *count = n;
    return found;
}

static const char *
or_empty (const char *s)
{
    return s ? s : "(unset)";
}

static bool
has (const struct strv *env, const char *kv)
{
    for (size_t i = 0; i < env->n; i++)
        if (strcmp (env->v[i], kv) == 0)
            return true;
    return false;
}

static size_t
count_substr (const char *hay, const char *needle)
{
    size_t n = 0, l = strlen (needle);
    for (const char *p = hay; p && (p = strstr (p, needle)) != NULL; p += l)
        n++;
    return n;
}

/* ---- capsa_env_build ------------------------------------------------------ */

static void
test_build (void)
{
    struct fixture f;
    int n;

    fixture_init (&f);
    static const char *const host[] = {
        "PATH=/host/bin",       "LD_LIBRARY_PATH=/host/lib", "CAPSA_DEBUG=1",      "CAPSA_CONTAINER=/fake",
        "APPTAINER_BIND=/x",    "SINGULARITY_BIND=/y",       "HOME=/root",         "PWD=/host/cwd",
        "PS1=host$ ",           "SHLVL=3",                   "_=/usr/bin/capsa",   "FOO=bar",
        "TERM=xterm-256color",  "LANG=C.UTF-8",              "EMPTY=",             "NOEQUALS",
        "CAPSAENV_GREETING=hi", "CAPSAENV_1BAD=x",           "CAPSAENV_A-B=y",     "LC_ALL=C",
        "PATHOLOGICAL=keep",
    };
    for (size_t i = 0; i < ARRAY_SIZE (host); i++)
        strv_push (&f.c.host_env, host[i]);
    strv_push (&f.o.env, "FROMOPT=1");
    strv_push (&f.o.env, "B=x,y");

    capsa_env_build (&f.c);

    CHECK_STR (getv (&f.c.env, "PATH", &n), DEFAULT_PATH, "PATH is the default, not the host's");
    CHECK (n == 1, "PATH set once");
    CHECK (getv (&f.c.env, "LD_LIBRARY_PATH", NULL) == NULL, "LD_LIBRARY_PATH dropped");
    CHECK (getv (&f.c.env, "CAPSA_DEBUG", NULL) == NULL, "CAPSA_* from the host dropped");
    CHECK (getv (&f.c.env, "APPTAINER_BIND", NULL) == NULL && getv (&f.c.env, "SINGULARITY_BIND", NULL) == NULL,
           "APPTAINER_* and SINGULARITY_* from the host dropped");
    CHECK_STR (getv (&f.c.env, "CAPSA_CONTAINER", &n), "/images/my.sif", "CAPSA_CONTAINER is the image path");
    CHECK (n == 1, "CAPSA_CONTAINER set once (the host's fake one dropped)");
    CHECK_STR (getv (&f.c.env, "CAPSA_NAME", NULL), "my.sif", "CAPSA_NAME is the image's base name");
    CHECK_STR (getv (&f.c.env, "APPTAINER_CONTAINER", NULL), "/images/my.sif", "APPTAINER_CONTAINER set");
    CHECK_STR (getv (&f.c.env, "SINGULARITY_NAME", NULL), "my.sif", "SINGULARITY_NAME set");
    CHECK_STR (getv (&f.c.env, "HOME", &n), "/home/alice", "HOME is home_dst");
    CHECK (n == 1, "HOME set once");
    CHECK_STR (getv (&f.c.env, "PWD", &n), "/work/dir", "PWD is the workdir");
    CHECK (n == 1, "PWD set once");
    CHECK_STR (getv (&f.c.env, "PS1", NULL), "Capsa> ", "PS1 is capsa's");
    CHECK (getv (&f.c.env, "SHLVL", NULL) == NULL && getv (&f.c.env, "_", NULL) == NULL, "SHLVL and _ dropped");
    CHECK_STR (getv (&f.c.env, "FOO", NULL), "bar", "FOO=bar passed");
    CHECK_STR (getv (&f.c.env, "TERM", NULL), "xterm-256color", "TERM passed");
    CHECK_STR (getv (&f.c.env, "EMPTY", NULL), "", "an empty value passed");
    CHECK_STR (getv (&f.c.env, "PATHOLOGICAL", NULL), "keep", "a name starting with PATH is not PATH");
    CHECK (!has (&f.c.env, "NOEQUALS"), "an entry without '=' dropped");
    CHECK (getv (&f.c.env, "CAPSAENV_GREETING", NULL) == NULL && getv (&f.c.env, "GREETING", NULL) == NULL,
           "CAPSAENV_GREETING is not in the base environment");
    CHECK (f.c.env_override.n == 3, "three overrides: CAPSAENV_GREETING and two --env");
    CHECK_STR (f.c.env_override.n > 0 ? f.c.env_override.v[0] : "", "GREETING=hi",
               "CAPSAENV_GREETING=hi becomes the override GREETING=hi");
    CHECK_STR (f.c.env_override.n > 1 ? f.c.env_override.v[1] : "", "FROMOPT=1", "--env after CAPSAENV_");
    CHECK_STR (f.c.env_override.n > 2 ? f.c.env_override.v[2] : "", "B=x,y", "--env value with a comma");
    CHECK (!has (&f.c.env_override, "1BAD=x") && !has (&f.c.env_override, "A-B=y")
               && getv (&f.c.env, "CAPSAENV_1BAD", NULL) == NULL,
           "CAPSAENV_ with an invalid name: neither override nor passed");
    CHECK (f.c.env.v != NULL && f.c.env.v[f.c.env.n] == NULL, "env list NULL-terminated");
    fixture_free (&f);

    /* --cleanenv */
    fixture_init (&f);
    f.o.cleanenv = true;
    for (size_t i = 0; i < ARRAY_SIZE (host); i++)
        strv_push (&f.c.host_env, host[i]);
    capsa_env_build (&f.c);
    CHECK_STR (getv (&f.c.env, "TERM", NULL), "xterm-256color", "cleanenv keeps TERM");
    CHECK_STR (getv (&f.c.env, "LANG", NULL), "C.UTF-8", "cleanenv keeps LANG");
    CHECK_STR (getv (&f.c.env, "LC_ALL", NULL), "C", "cleanenv keeps LC_*");
    CHECK (getv (&f.c.env, "FOO", NULL) == NULL, "cleanenv drops FOO");
    CHECK (getv (&f.c.env, "EMPTY", NULL) == NULL, "cleanenv drops EMPTY");
    CHECK_STR (getv (&f.c.env, "PATH", NULL), DEFAULT_PATH, "cleanenv: PATH is the default");
    CHECK_STR (getv (&f.c.env, "HOME", NULL), "/home/alice", "cleanenv: HOME set");
    CHECK_STR (f.c.env_override.n > 0 ? f.c.env_override.v[0] : "", "GREETING=hi",
               "cleanenv: CAPSAENV_ overrides still apply");
    fixture_free (&f);

    /* An image path without a slash, and one with a trailing slash. */
    fixture_init (&f);
    f.c.image.path = (char *) "img.sif";
    capsa_env_build (&f.c);
    CHECK_STR (getv (&f.c.env, "CAPSA_NAME", NULL), "img.sif", "CAPSA_NAME of a path without '/'");
    fixture_free (&f);
}

/* ---- capsa_env_read_file -------------------------------------------------- */

static char *
write_tmp (const char *name, const char *text)
{
    char *path = xasprintf ("%s/%s", tmpdir, name);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all (fd, text, strlen (text)) < 0) {
        perror (path);
        exit (2);
    }
    close (fd);
    return path;
}

static void
test_read_file (void)
{
    struct fixture f;
    capsa_error_t err = NULL;

    fixture_init (&f);
    cleanup_free char *p = write_tmp ("env1", "# comment\n\nA=1\n  export B=x\nC=\"quoted value\"\nD='single'\n"
                                              "E=\"unbalanced'\nF=\n");
    int r = capsa_env_read_file (&f.c, p, &err);
    CHECK (r == 0, "env file parses");
    if (err)
        printf ("# %s\n", err->msg);
    capsa_error_free (&err);
    CHECK (has (&f.c.env_override, "A=1"), "env file: A=1");
    CHECK (has (&f.c.env_override, "B=x"), "env file: 'export ' prefix removed");
    CHECK (has (&f.c.env_override, "C=quoted value"), "env file: double quotes removed");
    CHECK (has (&f.c.env_override, "D=single"), "env file: single quotes removed");
    CHECK (has (&f.c.env_override, "E=\"unbalanced'"), "env file: unbalanced quotes kept");
    CHECK (has (&f.c.env_override, "F="), "env file: empty value");
    fixture_free (&f);

    fixture_init (&f);
    cleanup_free char *p2 = write_tmp ("env2", "A=1\nnot a variable\n");
    CHECK (capsa_env_read_file (&f.c, p2, &err) < 0 && err && strstr (err->msg, "line 2"),
           "env file: a line that is not KEY=VALUE refused with its line number");
    capsa_error_free (&err);
    fixture_free (&f);

    fixture_init (&f);
    cleanup_free char *p3 = xasprintf ("%s/missing", tmpdir);
    CHECK (capsa_env_read_file (&f.c, p3, &err) < 0 && err && strstr (err->msg, p3),
           "env file: a missing file refused, message names it");
    capsa_error_free (&err);
    fixture_free (&f);
}

/* ---- capsa_env_script ----------------------------------------------------- */

/* Run "/bin/sh -c SCRIPT sh /bin/sh -c 'printf %s "$KEY"'" with ENV and
 * return what it printed (owned), or NULL.  *status gets the wait status. */
static char *
run_script (const char *script, char **env, int *status)
{
    int pfd[2];
    if (pipe2 (pfd, O_CLOEXEC) < 0)
        return NULL;
    pid_t pid = fork ();
    if (pid < 0)
        return NULL;
    if (pid == 0) {
        char *argv[] = { (char *) "sh", (char *) "-c", (char *) script, (char *) "sh",
                         (char *) "/bin/sh", (char *) "-c", (char *) "printf %s \"$KEY\"", NULL };
        dup2 (pfd[1], STDOUT_FILENO);
        execve ("/bin/sh", argv, env);
        _exit (127);
    }
    close (pfd[1]);
    char *out = NULL;
    capsa_error_t err = NULL;
    if (read_fd_all (pfd[0], 1 << 20, &out, NULL, &err) < 0) {
        capsa_error_free (&err);
        out = NULL;
    }
    close (pfd[0]);
    while (waitpid (pid, status, 0) < 0 && errno == EINTR)
        ;
    return out;
}

static void
test_script (void)
{
    struct fixture f;

    fixture_init (&f);
    strv_push (&f.c.env_override, "KEY=it's");
    strv_push (&f.c.env_override, "PLAIN=value");
    strv_push (&f.c.env_override, "1BAD=x");
    strv_push (&f.c.env_override, "A-B=y");
    strv_push (&f.c.env_override, "NOEQ");
    strv_push (&f.c.env_override, "X=$(touch /tmp/capsa-pwned)");
    cleanup_free char *s = capsa_env_script (&f.c);

    CHECK (s != NULL && strstr (s, "for __capsa_f in /.singularity.d/env/*.sh; do\n") != NULL,
           "script: sources /.singularity.d/env/*.sh in a loop");
    CHECK (s != NULL && strstr (s, ". \"$__capsa_f\"") != NULL, "script: each env script is sourced ('.')");
    CHECK (s != NULL && strstr (s, "unset __capsa_f\n") != NULL, "script: the loop variable is unset");
    CHECK (s != NULL && strstr (s, "export KEY='it'\\''s'\n") != NULL, "script: export KEY='it'\\''s'");
    CHECK (s != NULL && strstr (s, "export PLAIN='value'\n") != NULL, "script: export PLAIN='value'");
    CHECK (s != NULL && strstr (s, "1BAD") == NULL && strstr (s, "A-B") == NULL && strstr (s, "NOEQ") == NULL,
           "script: invalid names and entries without '=' left out");
    CHECK (s != NULL && strstr (s, "export X='$(touch /tmp/capsa-pwned)'\n") != NULL,
           "script: '$(...)' single-quoted");
    CHECK (s != NULL && strstr (s, "exec \"$@\"\n") != NULL, "script: ends with exec \"$@\"");
    const char *loop = s ? strstr (s, "for __capsa_f") : NULL;
    const char *exp = s ? strstr (s, "export KEY=") : NULL;
    CHECK (loop && exp && loop < exp, "script: overrides come after the env scripts");
    fixture_free (&f);

    /* Round trip through a real shell. */
    static const char *const values[] = {
        "it's",
        "'",
        "''",
        "a'b'c'",
        "two  spaces and\ttab",
        "$HOME ${PATH} $(echo no) `echo no` $$",
        "back\\slash \\\\ \\n \\'",
        "line1\nline2\n",
        "\n\ntrailing newlines\n\n",
        "\"double\" quotes",
        "",
        "*",
        "; exit 3",
        "-n",
        "%s %d",
        "!history ~user #hash",
        "\xc3\xa9t\xc3\xa9",
    };
    for (size_t i = 0; i < ARRAY_SIZE (values); i++) {
        fixture_init (&f);
        strv_push (&f.c.env, "PATH=" DEFAULT_PATH);
        strv_push_take (&f.c.env_override, xasprintf ("KEY=%s", values[i]));
        cleanup_free char *script = capsa_env_script (&f.c);
        int status = -1;
        cleanup_free char *out = run_script (script, f.c.env.v, &status);
        cleanup_free char *name = xasprintf ("sh round trip of value %zu", i);
        CHECK (out != NULL && strcmp (out, values[i]) == 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0,
               name);
        if (out == NULL || strcmp (out, values[i]) != 0)
            printf ("# got [%s] want [%s] status %d\n", or_empty (out), values[i], status);
        fixture_free (&f);
    }

    /* Several overrides: the last one wins, and all are exported. */
    fixture_init (&f);
    strv_push (&f.c.env, "PATH=" DEFAULT_PATH);
    strv_push (&f.c.env, "KEY=from-env");
    strv_push (&f.c.env_override, "KEY=first");
    strv_push (&f.c.env_override, "KEY=second 'two'");
    cleanup_free char *script = capsa_env_script (&f.c);
    int status = -1;
    cleanup_free char *out = run_script (script, f.c.env.v, &status);
    CHECK_STR (out, "second 'two'", "sh: the last override wins over the environment");
    fixture_free (&f);

    /* Without overrides the environment is untouched. */
    fixture_init (&f);
    strv_push (&f.c.env, "PATH=" DEFAULT_PATH);
    strv_push (&f.c.env, "KEY=from env 'q'");
    cleanup_free char *script2 = capsa_env_script (&f.c);
    cleanup_free char *out2 = run_script (script2, f.c.env.v, &status);
    CHECK_STR (out2, "from env 'q'", "sh: no override: the value from the environment");
    fixture_free (&f);

    /* Exit statuses of the command lookup (127 not found, 126 not executable). */
    fixture_init (&f);
    strv_push (&f.c.env, "PATH=" DEFAULT_PATH);
    cleanup_free char *script3 = capsa_env_script (&f.c);
    {
        char *argv[] = { (char *) "sh", (char *) "-c", script3, (char *) "sh", (char *) "/nonexistent/cmd", NULL };
        pid_t pid = fork ();
        if (pid == 0) {
            int dn = open ("/dev/null", O_WRONLY);
            dup2 (dn, STDERR_FILENO);
            execve ("/bin/sh", argv, f.c.env.v);
            _exit (99);
        }
        waitpid (pid, &status, 0);
        CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 127, "sh: a missing command exits 127");
    }
    {
        char *argv[] = { (char *) "sh", (char *) "-c", script3, (char *) "sh", (char *) "/etc/passwd", NULL };
        pid_t pid = fork ();
        if (pid == 0) {
            int dn = open ("/dev/null", O_WRONLY);
            dup2 (dn, STDERR_FILENO);
            execve ("/bin/sh", argv, f.c.env.v);
            _exit (99);
        }
        waitpid (pid, &status, 0);
        CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 126, "sh: a non-executable command exits 126");
    }
    fixture_free (&f);
}

/* ---- /etc/passwd and /etc/group ------------------------------------------- */

static void
test_passwd (void)
{
    struct fixture f;
    fixture_init (&f);

    const char *image = "root:x:0:0:root:/root:/bin/sh\nalice2:x:1001:1001::/home/alice2:/bin/sh";
    cleanup_free char *p1 = capsa_passwd_content (&f.c, image);
    cleanup_free char *want = xasprintf ("%salice:x:1000:%u:Alice A.:/home/alice:/bin/bash\n",
                                         "root:x:0:0:root:/root:/bin/sh\nalice2:x:1001:1001::/home/alice2:/bin/sh\n",
                                         (unsigned) f.c.user.gid);
    CHECK_STR (p1, want, "passwd: the user's line appended (after adding the missing newline)");
    CHECK (count_substr (p1, "\nalice:") == 1, "passwd: the user's line appears once");

    cleanup_free char *p2 = capsa_passwd_content (&f.c, p1);
    CHECK_STR (p2, p1, "passwd: applied twice, no second line for the user");

    const char *with_name = "root:x:0:0:root:/root:/bin/sh\nalice:x:2000:2000:img:/img:/bin/false\n";
    cleanup_free char *p3 = capsa_passwd_content (&f.c, with_name);
    CHECK_STR (p3, with_name, "passwd: an existing entry with the user's name is not duplicated");

    cleanup_free char *p4 = capsa_passwd_content (&f.c, NULL);
    cleanup_free char *want4
        = xasprintf ("alice:x:1000:%u:Alice A.:/home/alice:/bin/bash\n", (unsigned) f.c.user.gid);
    CHECK_STR (p4, want4, "passwd: no image passwd: only the user's line");

    f.c.user.gecos = NULL;
    f.c.user.shell = NULL;
    f.c.home_dst = (char *) "/custom/home";
    cleanup_free char *p5 = capsa_passwd_content (&f.c, "");
    cleanup_free char *want5 = xasprintf ("alice:x:1000:%u::/custom/home:/bin/sh\n", (unsigned) f.c.user.gid);
    CHECK_STR (p5, want5, "passwd: no gecos, no shell: empty gecos, /bin/sh, home is home_dst");
    fixture_free (&f);
}

static void
test_group (void)
{
    struct fixture f;
    fixture_init (&f);
    struct group *gr = getgrgid (f.c.user.gid);
    if (gr == NULL) {
        printf ("ok %d - # SKIP the primary group %u has no name on this host\n", ++tap_n, (unsigned) f.c.user.gid);
        return;
    }
    cleanup_free char *gname = xstrdup (gr->gr_name);
    cleanup_free char *line = xasprintf ("%s:x:%u:alice\n", gname, (unsigned) f.c.user.gid);

    cleanup_free char *g1 = capsa_group_content (&f.c, "");
    CHECK (g1 != NULL && strstr (g1, line) != NULL, "group: the primary group's name and gid with the user");

    const char *image = "wheel:x:10:\nstaff:x:50:";
    cleanup_free char *g2 = capsa_group_content (&f.c, image);
    cleanup_free char *prefix = xasprintf ("%s\n", image);
    CHECK (g2 != NULL && strncmp (g2, prefix, strlen (prefix)) == 0, "group: the image's groups kept first");
    CHECK (g2 != NULL && strstr (g2, line) != NULL, "group: the primary group appended");
    CHECK (count_substr (g2, line) == 1, "group: the primary group appears once");

    cleanup_free char *image3 = xasprintf ("%s:x:%u:\n", gname, (unsigned) f.c.user.gid);
    cleanup_free char *g3 = capsa_group_content (&f.c, image3);
    CHECK_STR (g3, image3, "group: a primary group the image already has is not duplicated");

    /* The primary group listed again among the supplementary ones. */
    gid_t groups[] = { f.c.user.gid, f.c.user.gid };
    f.c.user.groups = groups;
    f.c.user.ngroups = 2;
    cleanup_free char *g4 = capsa_group_content (&f.c, NULL);
    CHECK (g4 != NULL && count_substr (g4, line) == 1, "group: primary also in the supplementary list: once");
    fixture_free (&f);
}

int
main (void)
{
    if (mkdtemp (tmpdir) == NULL) {
        perror ("mkdtemp");
        return 2;
    }
    test_build ();
    test_read_file ();
    test_script ();
    test_passwd ();
    test_group ();
    cleanup_free char *e1 = xasprintf ("%s/env1", tmpdir);
    cleanup_free char *e2 = xasprintf ("%s/env2", tmpdir);
    unlink (e1);
    unlink (e2);
    rmdir (tmpdir);
    return tap_done ();
}

/* Unit tests for src/runtime/env.c, envfile.c and envscript.c: the
 * command's environment and Apptainer's precedence (capsa_env_build),
 * --env-file evaluation (capsa_envfile_parse, capsa_env_read_file), the
 * action script (capsa_env_script, run through /bin/sh to check
 * evaluation, restoring and quoting), the environment without a shell,
 * and the container's /etc/passwd and /etc/group contents. */
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
#include "runtime/envfile.h"
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
    strv_free (&f->c.env_file_vars);
    strv_free (&f->c.env_final);
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

static bool
has_warning (const struct strv *w, const char *needle)
{
    for (size_t i = 0; i < w->n; i++)
        if (strstr (w->v[i], needle) != NULL)
            return true;
    return false;
}

static void
test_build (void)
{
    struct fixture f;
    struct strv w = { 0 };
    int n;

    fixture_init (&f);
    static const char *const host[] = {
        "PATH=/host/bin",       "LD_LIBRARY_PATH=/host/lib", "CAPSA_DEBUG=1",      "CAPSA_CONTAINER=/fake",
        "APPTAINER_BIND=/x",    "SINGULARITY_BIND=/y",       "HOME=/root",         "PWD=/host/cwd",
        "PS1=host$ ",           "SHLVL=3",                   "FOO=bar",            "TERM=xterm-256color",
        "LANG=C.UTF-8",         "EMPTY=",                    "NOEQUALS",           "CAPSAENV_GREETING=hi",
        "CAPSAENV_1BAD=x",      "LC_ALL=C",                  "PATHOLOGICAL=keep",  "BASH_FUNC_ml%%=() { :; }",
        "http_proxy=http://p:3128", "OVER=host",             "APPTAINERENV_OVER=app", "SINGULARITYENV_OVER=sing",
        "SINGULARITYENV_ONLYSING=s", "APPTAINERENV_HOME=/evil", "APPTAINERENV_PATH=/app/bin",
        "SINGULARITYENV_PREPEND_PATH=/pre", "CAPSAENV_APPEND_PATH=/app", "CAPSAENV_SAME=1", "APPTAINERENV_SAME=1",
        "=novar",
    };
    for (size_t i = 0; i < ARRAY_SIZE (host); i++)
        strv_push (&f.c.host_env, host[i]);
    strv_push (&f.o.env, "FROMOPT=1");
    strv_push (&f.o.env, "B=x,y");
    strv_push (&f.o.env, "FROMOPT=2");
    strv_push (&f.c.env_file_vars, "FILEVAR=f");
    strv_push (&f.c.env_file_vars, "B=from-file");

    capsa_env_build (&f.c, &w);

    CHECK_STR (getv (&f.c.env, "PATH", &n), DEFAULT_PATH, "PATH is the default, not the host's");
    CHECK (n == 1, "PATH set once");
    CHECK (getv (&f.c.env, "LD_LIBRARY_PATH", NULL) == NULL, "LD_LIBRARY_PATH of the host dropped");
    CHECK (getv (&f.c.env, "CAPSA_DEBUG", NULL) == NULL, "CAPSA_* from the host dropped");
    CHECK (getv (&f.c.env, "APPTAINER_BIND", NULL) == NULL && getv (&f.c.env, "SINGULARITY_BIND", NULL) == NULL,
           "APPTAINER_* and SINGULARITY_* from the host dropped");
    CHECK (getv (&f.c.env, "APPTAINERENV_OVER", NULL) == NULL && getv (&f.c.env, "CAPSAENV_GREETING", NULL) == NULL,
           "*ENV_ variables are not passed under their own name");
    CHECK_STR (getv (&f.c.env, "CAPSA_CONTAINER", &n), "/images/my.sif", "CAPSA_CONTAINER is the image path");
    CHECK (n == 1, "CAPSA_CONTAINER set once (the host's fake one dropped)");
    CHECK_STR (getv (&f.c.env, "CAPSA_NAME", NULL), "my.sif", "CAPSA_NAME is the image's base name");
    CHECK_STR (getv (&f.c.env, "APPTAINER_CONTAINER", NULL), "/images/my.sif", "APPTAINER_CONTAINER set");
    CHECK_STR (getv (&f.c.env, "SINGULARITY_NAME", NULL), "my.sif", "SINGULARITY_NAME set");
    CHECK_STR (getv (&f.c.env, "HOME", &n), "/home/alice", "HOME is home_dst");
    CHECK (n == 1, "HOME set once");
    CHECK_STR (getv (&f.c.env, "PWD", &n), "/work/dir", "PWD is the workdir");
    CHECK (n == 1, "PWD set once");
    CHECK_STR (getv (&f.c.env, "PS1", NULL), "host$ ", "an exported PS1 passes, as in Apptainer");
    CHECK_STR (getv (&f.c.env, "SHLVL", NULL), "3", "SHLVL passes");
    CHECK_STR (getv (&f.c.env, "FOO", NULL), "bar", "FOO=bar passed");
    CHECK_STR (getv (&f.c.env, "TERM", NULL), "xterm-256color", "TERM passed");
    CHECK_STR (getv (&f.c.env, "EMPTY", NULL), "", "an empty value passed");
    CHECK_STR (getv (&f.c.env, "PATHOLOGICAL", NULL), "keep", "a name starting with PATH is not PATH");
    CHECK (has (&f.c.env, "BASH_FUNC_ml%%=() { :; }"), "an exported function passes as it is");
    CHECK (!has (&f.c.env, "NOEQUALS") && !has (&f.c.env, "=novar"), "entries without a name or '=' dropped");
    CHECK (getv (&f.c.env, "OVER", NULL) == NULL, "a host variable that is overridden is not in the start environment");
    CHECK (getv (&f.c.env, "LANG", NULL) != NULL && strcmp (getv (&f.c.env, "LANG", NULL), "C.UTF-8") == 0,
           "LANG passes without --cleanenv");

    /* Overrides and their precedence: --env, --env-file, CAPSAENV_,
     * APPTAINERENV_, SINGULARITYENV_. */
    CHECK_STR (getv (&f.c.env_override, "FROMOPT", &n), "2", "--env: the last value of a key wins");
    CHECK (n == 1, "--env: one override per key");
    CHECK_STR (getv (&f.c.env_override, "B", NULL), "x,y", "--env wins over --env-file");
    CHECK (has_warning (&w, "B is already set"), "--env over --env-file: a warning");
    CHECK_STR (getv (&f.c.env_override, "FILEVAR", NULL), "f", "--env-file values are overrides");
    CHECK_STR (getv (&f.c.env_override, "GREETING", NULL), "hi", "CAPSAENV_GREETING=hi sets GREETING");
    CHECK_STR (getv (&f.c.env_override, "OVER", NULL), "app", "APPTAINERENV_ wins over SINGULARITYENV_");
    CHECK (has_warning (&w, "SINGULARITYENV_OVER=sing"), "a different SINGULARITYENV_ value: a warning naming it");
    CHECK_STR (getv (&f.c.env_override, "ONLYSING", NULL), "s", "SINGULARITYENV_ alone applies");
    CHECK_STR (getv (&f.c.env_override, "SAME", NULL), "1", "the same value twice: applied");
    CHECK (!has_warning (&w, "SAME"), "the same value twice: no warning");
    CHECK (getv (&f.c.env_override, "HOME", NULL) == NULL, "APPTAINERENV_HOME is not applied");
    CHECK (has_warning (&w, "overriding HOME with APPTAINERENV_HOME is not permitted"), "APPTAINERENV_HOME: a warning");
    CHECK_STR (getv (&f.c.env_override, "SING_USER_DEFINED_PATH", NULL), "/app/bin",
               "APPTAINERENV_PATH becomes SING_USER_DEFINED_PATH");
    CHECK_STR (getv (&f.c.env_override, "SING_USER_DEFINED_PREPEND_PATH", NULL), "/pre",
               "SINGULARITYENV_PREPEND_PATH becomes SING_USER_DEFINED_PREPEND_PATH");
    CHECK_STR (getv (&f.c.env_override, "SING_USER_DEFINED_APPEND_PATH", NULL), "/app",
               "CAPSAENV_APPEND_PATH becomes SING_USER_DEFINED_APPEND_PATH");
    CHECK (getv (&f.c.env_override, "PATH", NULL) == NULL, "PATH itself is never an override");
    CHECK (getv (&f.c.env_override, "1BAD", NULL) == NULL && has_warning (&w, "'1BAD' is not a valid variable name"),
           "CAPSAENV_ with an invalid name: a warning, not applied");
    CHECK (f.c.env.v != NULL && f.c.env.v[f.c.env.n] == NULL, "env list NULL-terminated");
    strv_free (&w);
    fixture_free (&f);

    /* --cleanenv: Apptainer keeps TERM and the proxies, LANG becomes C. */
    fixture_init (&f);
    f.o.cleanenv = true;
    for (size_t i = 0; i < ARRAY_SIZE (host); i++)
        strv_push (&f.c.host_env, host[i]);
    capsa_env_build (&f.c, &w);
    CHECK_STR (getv (&f.c.env, "TERM", NULL), "xterm-256color", "cleanenv keeps TERM");
    CHECK_STR (getv (&f.c.env, "http_proxy", NULL), "http://p:3128", "cleanenv keeps http_proxy");
    CHECK_STR (getv (&f.c.env, "LANG", &n), "C", "cleanenv: LANG=C");
    CHECK (n == 1, "cleanenv: LANG once");
    CHECK (getv (&f.c.env, "LC_ALL", NULL) == NULL, "cleanenv drops LC_ALL");
    CHECK (getv (&f.c.env, "FOO", NULL) == NULL && getv (&f.c.env, "PS1", NULL) == NULL, "cleanenv drops FOO, PS1");
    CHECK_STR (getv (&f.c.env, "PATH", NULL), DEFAULT_PATH, "cleanenv: PATH is the default");
    CHECK_STR (getv (&f.c.env, "HOME", NULL), "/home/alice", "cleanenv: HOME set");
    CHECK_STR (getv (&f.c.env_override, "GREETING", NULL), "hi", "cleanenv: CAPSAENV_ overrides still apply");
    strv_free (&w);
    fixture_free (&f);

    /* A relative image path: APPTAINER_CONTAINER is absolute. */
    fixture_init (&f);
    f.c.image.path = (char *) "../imgs/./img.sif";
    f.c.host_cwd = (char *) "/home/alice/work";
    f.o.no_eval = true;
    f.o.shell = (char *) "/bin/zsh";
    capsa_env_build (&f.c, &w);
    CHECK_STR (getv (&f.c.env, "APPTAINER_CONTAINER", NULL), "/home/alice/imgs/img.sif",
               "a relative image path is made absolute and clean");
    CHECK_STR (getv (&f.c.env, "CAPSA_NAME", NULL), "img.sif", "CAPSA_NAME of a relative path");
    CHECK_STR (getv (&f.c.env, "APPTAINER_NO_EVAL", NULL), "1", "--no-eval: APPTAINER_NO_EVAL=1");
    CHECK_STR (getv (&f.c.env, "SINGULARITY_SHELL", NULL), "/bin/zsh", "--shell: SINGULARITY_SHELL");
    f.o.shell = NULL;
    strv_free (&w);
    fixture_free (&f);

    cleanup_free char *a1 = capsa_env_abs_path ("/a/../../b/./c/", NULL);
    CHECK_STR (a1, "/b/c", "abs path: .. above / stays at /");
    cleanup_free char *a2 = capsa_env_abs_path ("x", "/");
    CHECK_STR (a2, "/x", "abs path: relative to /");
    cleanup_free char *a3 = capsa_env_abs_path ("..", "/");
    CHECK_STR (a3, "/", "abs path: / at least");
}

/* ---- --env-file ------------------------------------------------------------ */

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

/* Evaluate TEXT as an env file with HOSTVAR=host visible; the error
 * message (owned) or NULL; the result in OUT. */
static char *
envfile (const char *text, struct strv *out)
{
    struct strv vars = { 0 };
    capsa_error_t err = NULL;
    char *msg = NULL;
    strv_push (&vars, "HOSTVAR=host");
    strv_push (&vars, "SPACED=a  b");
    if (capsa_envfile_parse (text, "F", &vars, out, &err) < 0) {
        msg = xstrdup (err && err->msg ? err->msg : "(no message)");
        capsa_error_free (&err);
    }
    strv_free (&vars);
    return msg;
}

static void
test_envfile (void)
{
    struct strv o = { 0 };
    cleanup_free char *m1 = envfile ("# comment\n\nA=1\n  export B=x\nC=\"quoted value\"\nD='single'\nF=\n"
                                     "G=a\\ b\\$c H=two   # trailing comment\n"
                                     "I=\"$HOSTVAR-${A}-${UNSET:-dflt}-${A:+alt}-${UNSET+no}\"\n"
                                     "J='$HOSTVAR' K=\"\\$PATH:/x\" L=\"multi\nline\" ; M=$SPACED\n"
                                     "export HOSTVAR\nexport N=3 O=4\nP=a#b\nA=again\n",
                                     &o);
    CHECK (m1 == NULL, "env file parses");
    if (m1)
        printf ("# %s\n", m1);
    CHECK_STR (getv (&o, "A", NULL), "again", "env file: a later assignment wins");
    CHECK (o.n > 0 && strncmp (o.v[0], "A=", 2) == 0, "env file: ... in the place of the first");
    CHECK_STR (getv (&o, "B", NULL), "x", "env file: 'export ' prefix");
    CHECK_STR (getv (&o, "C", NULL), "quoted value", "env file: double quotes");
    CHECK_STR (getv (&o, "D", NULL), "single", "env file: single quotes");
    CHECK_STR (getv (&o, "F", NULL), "", "env file: empty value");
    CHECK_STR (getv (&o, "G", NULL), "a b$c", "env file: backslash escapes");
    CHECK_STR (getv (&o, "H", NULL), "two", "env file: two assignments on a line, comment after");
    CHECK_STR (getv (&o, "I", NULL), "host-1-dflt-alt-", "env file: $VAR, ${VAR}, ${VAR:-w}, ${VAR:+w}, ${VAR+w}");
    CHECK_STR (getv (&o, "J", NULL), "$HOSTVAR", "env file: no expansion in single quotes");
    CHECK_STR (getv (&o, "K", NULL), "$PATH:/x", "env file: \\$ keeps a $ for the container's evaluation");
    CHECK_STR (getv (&o, "L", NULL), "multi\nline", "env file: a quoted value over two lines");
    CHECK_STR (getv (&o, "M", NULL), "a  b", "env file: no field splitting of an assignment");
    CHECK_STR (getv (&o, "HOSTVAR", NULL), "host", "env file: export of a caller's variable");
    CHECK_STR (getv (&o, "N", NULL), "3", "env file: export with two assignments (1)");
    CHECK_STR (getv (&o, "O", NULL), "4", "env file: export with two assignments (2)");
    CHECK_STR (getv (&o, "P", NULL), "a#b", "env file: # inside a word is not a comment");
    strv_free (&o);

    cleanup_free char *m2 = envfile ("HOME=/x\nUID=5\nPWD=/\nOK=1\n", &o);
    CHECK (m2 == NULL && getv (&o, "HOME", NULL) == NULL && getv (&o, "UID", NULL) == NULL
               && getv (&o, "PWD", NULL) == NULL && getv (&o, "OK", NULL) != NULL,
           "env file: the shell's read-only variables are left out, as in Apptainer");
    strv_free (&o);

    static const struct {
        const char *text, *msg;
    } bad[] = {
        { "A=1\nB=$(id -u)\n", "F: line 2: command substitution" },
        { "A=`id`\n", "F: line 1: command substitution" },
        { "A=\"`id`\"\n", "F: line 1: command substitution" },
        { "A=$((1+2))\n", "line 1: command substitution and arithmetic" },
        { "\n\nrm -rf /\n", "F: line 3: 'rm' is not a variable assignment" },
        { "A=1 | cat\n", "line 1: '|' is not a variable assignment" },
        { "A=x|cat\n", "line 1: only variable assignments are allowed" },
        { "A=\"open\n\n", "line 3: unterminated double quote" },
        { "A='open\n", "unterminated single quote" },
        { "A=${B/x/y}\n", "only ${NAME}" },
        { "A=${B:-x\n", "missing '}'" },
        { "1A=x\n", "'1A=x' is not a variable assignment" },
        { "A=0123456789abcdef\nA=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\n"
          "A=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\nA=$A$A\n",
          "line 18: a value is longer than 1 MiB" },
    };
    for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
        cleanup_free char *m = envfile (bad[i].text, &o);
        cleanup_free char *name = xasprintf ("env file refused: %s", bad[i].msg);
        CHECK (m != NULL && strstr (m, bad[i].msg) != NULL, name);
        if (m == NULL || strstr (m, bad[i].msg) == NULL)
            printf ("# got [%s]\n", or_empty (m));
        strv_free (&o);
    }

    /* Through capsa_env_read_file: the caller's environment and
     * APPTAINER_IMAGE are visible; a NUL byte and a missing file refused. */
    struct fixture f;
    capsa_error_t err = NULL;
    fixture_init (&f);
    strv_push (&f.c.host_env, "USERVAR=u");
    cleanup_free char *p = write_tmp ("env1", "A=$USERVAR\nB=$APPTAINER_IMAGE\n");
    CHECK (capsa_env_read_file (&f.c, p, &err) == 0, "read_file parses");
    capsa_error_free (&err);
    CHECK_STR (getv (&f.c.env_file_vars, "A", NULL), "u", "read_file: the caller's variables are visible");
    CHECK_STR (getv (&f.c.env_file_vars, "B", NULL), "/images/my.sif", "read_file: APPTAINER_IMAGE is the image");
    cleanup_free char *p2 = write_tmp ("env2", "A=2\n");
    CHECK (capsa_env_read_file (&f.c, p2, &err) == 0 && strcmp (getv (&f.c.env_file_vars, "A", NULL), "2") == 0,
           "read_file: a later file wins");
    capsa_error_free (&err);
    strv_free (&f.c.env_file_vars);
    fixture_free (&f);

    fixture_init (&f);
    cleanup_free char *p3 = xasprintf ("%s/missing", tmpdir);
    CHECK (capsa_env_read_file (&f.c, p3, &err) < 0 && err && strstr (err->msg, p3),
           "env file: a missing file refused, message names it");
    capsa_error_free (&err);
    fixture_free (&f);
}

/* ---- the action script ----------------------------------------------------- */

/* Run the action script of F through /bin/sh with the environment the
 * child would give it, the command "/bin/sh -c CMD"; its output (owned). */
static char *
run_action (struct fixture *f, const char *cmd, int *status)
{
    struct strv env = { 0 };
    cleanup_free char *script = capsa_env_script (&f->c);
    capsa_env_shell_environ (&f->c, &env);
    if (env.v == NULL)
        strv_push (&env, "PWD=/");
    int pfd[2];
    if (pipe2 (pfd, O_CLOEXEC) < 0)
        return NULL;
    pid_t pid = fork ();
    if (pid < 0)
        return NULL;
    if (pid == 0) {
        struct strv argv = { 0 };
        strv_push (&argv, "sh");
        strv_push (&argv, "-c");
        strv_push (&argv, script);
        strv_push (&argv, "/bin/sh");
        capsa_env_script_args (&f->c, &argv);
        strv_push (&argv, "/bin/sh");
        strv_push (&argv, "-c");
        strv_push (&argv, cmd);
        dup2 (pfd[1], STDOUT_FILENO);
        int dn = open ("/dev/null", O_WRONLY);
        dup2 (dn, STDERR_FILENO);
        execve ("/bin/sh", argv.v, env.v);
        _exit (99);
    }
    close (pfd[1]);
    strv_free (&env);
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
    int status = -1;

    /* The starting environment comes back; overrides are evaluated. */
    fixture_init (&f);
    strv_push (&f.c.host_env, "FOO=host foo");
    strv_push (&f.c.host_env, "APPTAINERENV_BAR=$HOME/bar");
    strv_push (&f.c.host_env, "APPTAINERENV_QUOTED=\"$HOME\" '$HOME' \\$HOME");
    strv_push (&f.c.host_env, "APPTAINERENV_PATH=/opt/bin:$PATH");
    strv_push (&f.c.host_env, "APPTAINERENV_LD_LIBRARY_PATH=/lib1");
    strv_push (&f.c.host_env, "APPTAINERENV_UID=5");
    strv_push (&f.c.host_env, "APPTAINERENV_BS=ends\\");
    struct strv w = { 0 };
    capsa_env_build (&f.c, &w);
    strv_free (&w);
    cleanup_free char *o1 = run_action (&f, "printf '%s|' \"$FOO\" \"$BAR\" \"$QUOTED\" \"$PATH\" \"$LD_LIBRARY_PATH\" "
                                            "\"${SING_USER_DEFINED_PATH-unset}\" \"$BS\" \"$HOME\"", &status);
    CHECK_STR (o1, "host foo|/home/alice/bar|\"/home/alice\" '/home/alice' $HOME|/opt/bin:" DEFAULT_PATH
                   "|/lib1:/.singularity.d/libs|unset|ends\\|/home/alice|",
               "script: host variables back, overrides evaluated (as Apptainer's double quotes), PATH after them");
    CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0, "script: exit 0");
    strv_push (&f.c.env_final, "SHELL=/bin/bash");
    cleanup_free char *o1c = run_action (&f, "printf '%s|%s|%s' \"$SHELL\" \"$APPTAINER_CONTAINER\" \"$APPTAINER_NAME\"", &status);
    CHECK_STR (o1c, "/bin/bash|/images/my.sif|my.sif", "script: what is set last (SHELL, APPTAINER_CONTAINER, APPTAINER_NAME)");
    cleanup_free char *o1b = run_action (&f, "echo ${UID-none} ${PS1}; echo \"$PROMPT_COMMAND\"", &status);
    CHECK (o1b != NULL && strstr (o1b, "Capsa>") != NULL, "script: PS1 defaults to 'Capsa> '");
    CHECK (o1b != NULL && strstr (o1b, "PS1=\"Capsa> \"; unset PROMPT_COMMAND") != NULL,
           "script: PROMPT_COMMAND sets PS1 again (bash rc files cannot change it)");
    fixture_free (&f);

    /* --no-eval: literal. */
    fixture_init (&f);
    f.o.no_eval = true;
    strv_push (&f.c.host_env, "APPTAINERENV_WHO=$(id -u) \"$HOME\" \\$x");
    capsa_env_build (&f.c, &w);
    strv_free (&w);
    cleanup_free char *o2 = run_action (&f, "printf %s \"$WHO\"", &status);
    CHECK_STR (o2, "$(id -u) \"$HOME\" \\$x", "script: --no-eval keeps values literally");
    fixture_free (&f);

    /* PREPEND_PATH, APPEND_PATH, PATH. */
    fixture_init (&f);
    strv_push (&f.c.host_env, "APPTAINERENV_PREPEND_PATH=/pre");
    strv_push (&f.c.host_env, "APPTAINERENV_APPEND_PATH=/app");
    capsa_env_build (&f.c, &w);
    strv_free (&w);
    cleanup_free char *o3 = run_action (&f, "printf %s \"$PATH\"", &status);
    CHECK_STR (o3, "/pre:" DEFAULT_PATH ":/app", "script: PREPEND_PATH and APPEND_PATH");
    fixture_free (&f);

    /* Round trip of awkward values: restored (single quotes) and --no-eval. */
    static const char *const values[] = {
        "it's", "'", "''", "a'b'c'", "two  spaces and\ttab", "$HOME ${PATH} $(echo no) `echo no` $$",
        "back\\slash \\\\ \\n \\'", "line1\nline2\n", "\n\ntrailing newlines\n\n", "\"double\" quotes", "", "*",
        "; exit 3", "-n", "%s %d", "!history ~user #hash", "\xc3\xa9t\xc3\xa9",
    };
    for (size_t i = 0; i < ARRAY_SIZE (values); i++) {
        for (int noeval = 0; noeval < 2; noeval++) {
            fixture_init (&f);
            f.o.no_eval = noeval;
            strv_push_take (&f.c.host_env, xasprintf (noeval ? "APPTAINERENV_KEY=%s" : "KEY=%s", values[i]));
            capsa_env_build (&f.c, &w);
            strv_free (&w);
            cleanup_free char *out = run_action (&f, "printf %s \"${KEY-unset}\"", &status);
            cleanup_free char *name = xasprintf ("sh round trip of value %zu (%s)", i, noeval ? "--no-eval" : "restored");
            const char *want = values[i];
            CHECK (out != NULL && strcmp (out, want) == 0, name);
            if (out == NULL || strcmp (out, want) != 0)
                printf ("# got [%s] want [%s]\n", or_empty (out), want);
            fixture_free (&f);
        }
    }

    /* Exit statuses of the command lookup (127 not found, 126 not executable). */
    fixture_init (&f);
    capsa_env_build (&f.c, &w);
    strv_free (&w);
    cleanup_free char *script3 = capsa_env_script (&f.c);
    struct strv env3 = { 0 };
    capsa_env_shell_environ (&f.c, &env3);
    static const char *const cmds[] = { "/nonexistent/cmd", "/etc/passwd", "no-such-command-anywhere" };
    static const int want_rc[] = { 127, 126, 127 };
    for (size_t k = 0; k < ARRAY_SIZE (cmds); k++) {
        struct strv argv = { 0 };
        strv_push (&argv, "sh");
        strv_push (&argv, "-c");
        strv_push (&argv, script3);
        strv_push (&argv, "sh");
        capsa_env_script_args (&f.c, &argv);
        strv_push (&argv, cmds[k]);
        pid_t pid = fork ();
        if (pid == 0) {
            int dn = open ("/dev/null", O_WRONLY);
            dup2 (dn, STDERR_FILENO);
            execve ("/bin/sh", argv.v, env3.v);
            _exit (99);
        }
        waitpid (pid, &status, 0);
        strv_free (&argv);
        cleanup_free char *name = xasprintf ("sh: %s exits %d", cmds[k], want_rc[k]);
        CHECK (WIFEXITED (status) && WEXITSTATUS (status) == want_rc[k], name);
    }
    strv_free (&env3);

    /* A big environment: no value goes into the script's text, whose one
     * argument is limited to 128 KiB by the kernel. */
    for (int i = 0; i < 40; i++)
        strv_push_take (&f.c.host_env, xasprintf ("BIG%d=%0*d", i, 8000, i));
    strv_push_take (&f.c.host_env, xasprintf ("APPTAINERENV_BIGOVER=%0*d", 100000, 7));
    strv_free (&f.c.env);
    strv_free (&f.c.env_override);
    capsa_env_build (&f.c, &w);
    strv_free (&w);
    cleanup_free char *script4 = capsa_env_script (&f.c);
    CHECK (script4 != NULL && strlen (script4) < 16384, "script: its text does not grow with the environment");
    cleanup_free char *o4 = run_action (&f, "printf '%s %s' ${#BIG39} ${#BIGOVER}", &status);
    CHECK_STR (o4, "8000 100000", "script: 320 KB of environment and a 100 KB override reach the command");
    fixture_free (&f);

    /* Without a shell: the same environment, overrides literal. */
    fixture_init (&f);
    strv_push (&f.c.host_env, "FOO=host");
    strv_push (&f.c.host_env, "APPTAINERENV_BAR=$HOME");
    strv_push (&f.c.host_env, "APPTAINERENV_PREPEND_PATH=/pre");
    strv_push (&f.c.env_final, "SHELL=/bin/sh");
    capsa_env_build (&f.c, &w);
    strv_free (&w);
    struct strv d = { 0 };
    capsa_env_direct (&f.c, &d);
    CHECK_STR (getv (&d, "FOO", NULL), "host", "direct: host variable");
    CHECK_STR (getv (&d, "BAR", NULL), "$HOME", "direct: overrides literal");
    CHECK_STR (getv (&d, "PATH", NULL), "/pre:" DEFAULT_PATH, "direct: PREPEND_PATH");
    CHECK (getv (&d, "SING_USER_DEFINED_PREPEND_PATH", NULL) == NULL, "direct: no SING_USER_DEFINED_*");
    CHECK_STR (getv (&d, "PS1", NULL), "Capsa> ", "direct: PS1");
    CHECK_STR (getv (&d, "SHELL", NULL), "/bin/sh", "direct: final exports");
    strv_free (&d);
    strv_free (&f.c.env_final);
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
    test_envfile ();
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

/* Unit tests for src/runtime/options.c: the action command lines the
 * starter parses itself (exec/run/shell), their binds, --home, --env,
 * the namespace flags and what each error says. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lib/utils.h"
#include "runtime/options.h"
#include "tap.h"

#define MAXARGS 32

/* Parse the NULL-terminated argument list into *o.  Returns the error
 * message (owned) or NULL.  The argv array is static storage that stays
 * valid until the next call (o->cmd borrows from it). */
static char *
parse (struct capsa_opts *o, const char *first, ...)
{
    static char *argv[MAXARGS + 1];
    int argc = 0;
    va_list ap;
    capsa_error_t err = NULL;
    char *msg = NULL;

    va_start (ap, first);
    for (const char *a = first; a != NULL && argc < MAXARGS; a = va_arg (ap, const char *))
        argv[argc++] = (char *) a;
    va_end (ap);
    argv[argc] = NULL;
    if (capsa_opts_parse (o, argc, argv, &err) < 0) {
        msg = xstrdup (err && err->msg ? err->msg : "(no message)");
        capsa_error_free (&err);
    }
    return msg;
}

static bool
contains (const char *hay, const char *needle)
{
    return hay != NULL && strstr (hay, needle) != NULL;
}

static const char *
cmd_at (const struct capsa_opts *o, int i)
{
    return i < o->ncmd && o->cmd[i] ? o->cmd[i] : "";
}

static const char *
env_at (const struct capsa_opts *o, size_t i)
{
    return i < o->env.n ? o->env.v[i] : "";
}

static const char *
str_or_empty (const char *s)
{
    return s ? s : "";
}

static void
test_actions (void)
{
    struct capsa_opts o;

    cleanup_free char *m1 = parse (&o, "exec", "img.sif", "echo", "hello", "--not-an-option", NULL);
    CHECK (m1 == NULL, "exec IMAGE COMMAND ARGS parses");
    CHECK (o.action == ACTION_EXEC, "exec: action");
    CHECK_STR (o.image, "img.sif", "exec: image");
    CHECK (o.ncmd == 3, "exec: three command words");
    CHECK_STR (cmd_at (&o, 0), "echo", "exec: command");
    CHECK_STR (cmd_at (&o, 1), "hello", "exec: argument");
    CHECK_STR (cmd_at (&o, 2), "--not-an-option", "exec: options after IMAGE belong to the command");
    CHECK (o.ncmd == 3 && o.cmd[3] == NULL, "exec: cmd is NULL-terminated");
    CHECK (!o.contain && !o.cleanenv && !o.pid_ns && !o.ipc_ns && !o.uts_ns && !o.net_ns && !o.userns
               && !o.no_home && o.nbinds == 0 && o.env.n == 0,
           "exec: no flag set by default");
    capsa_opts_free (&o);

    cleanup_free char *m2 = parse (&o, "exec", NULL);
    CHECK (contains (m2, "missing IMAGE"), "exec without IMAGE refused");
    CHECK (contains (m2, "COMMAND"), "exec without IMAGE: usage names COMMAND");
    capsa_opts_free (&o);

    cleanup_free char *m3 = parse (&o, "exec", "img.sif", NULL);
    CHECK (contains (m3, "missing COMMAND"), "exec without COMMAND refused");
    capsa_opts_free (&o);

    cleanup_free char *m3b = parse (&o, "exec", "-c", "--", NULL);
    CHECK (contains (m3b, "missing IMAGE"), "exec -c -- (nothing after --): missing IMAGE");
    capsa_opts_free (&o);

    cleanup_free char *m3c = parse (&o, "exec", "", "true", NULL);
    CHECK (contains (m3c, "empty image"), "empty IMAGE refused");
    capsa_opts_free (&o);

    cleanup_free char *m4 = parse (&o, "run", NULL);
    CHECK (contains (m4, "missing IMAGE"), "run without IMAGE refused");
    capsa_opts_free (&o);

    cleanup_free char *m5 = parse (&o, "run", "img", NULL);
    CHECK (m5 == NULL && o.action == ACTION_RUN && o.ncmd == 0 && o.cmd && o.cmd[0] == NULL,
           "run IMAGE with no argument parses, empty cmd");
    capsa_opts_free (&o);

    cleanup_free char *m6 = parse (&o, "run", "img", "a", "b", NULL);
    CHECK (m6 == NULL && o.ncmd == 2 && strcmp (cmd_at (&o, 1), "b") == 0, "run IMAGE ARGS parses");
    capsa_opts_free (&o);

    cleanup_free char *m7 = parse (&o, "shell", "img", NULL);
    CHECK (m7 == NULL && o.action == ACTION_SHELL && o.ncmd == 0, "shell IMAGE parses");
    capsa_opts_free (&o);

    cleanup_free char *m8 = parse (&o, "shell", "img", "extra", NULL);
    CHECK (contains (m8, "unexpected argument 'extra'"), "shell with an extra argument refused");
    capsa_opts_free (&o);

    cleanup_free char *m9 = parse (&o, "shell", "--shell", "/bin/bash", "img", NULL);
    CHECK (m9 == NULL && strcmp (str_or_empty (o.shell), "/bin/bash") == 0, "shell --shell PATH");
    capsa_opts_free (&o);

    cleanup_free char *m10 = parse (&o, "build", "img", NULL);
    CHECK_STR (m10, "unknown action 'build'", "unknown action refused");
    capsa_opts_free (&o);

    cleanup_free char *m11 = parse (&o, "exec", "--", "img", "-c", NULL);
    CHECK (m11 == NULL && strcmp (str_or_empty (o.image), "img") == 0 && o.ncmd == 1 && !o.contain,
           "'--' ends the options");
    capsa_opts_free (&o);

    enum capsa_action a;
    CHECK (capsa_action_from_name ("exec", &a) == 0 && a == ACTION_EXEC, "action name exec");
    CHECK (capsa_action_from_name ("run", &a) == 0 && a == ACTION_RUN, "action name run");
    CHECK (capsa_action_from_name ("shell", &a) == 0 && a == ACTION_SHELL, "action name shell");
    CHECK (capsa_action_from_name ("Exec", &a) < 0, "action names are case-sensitive");
}

/* Instances (src/runtime/instance.h): start and run with --instance. */
static void
test_instances (void)
{
    struct capsa_opts o;
    cleanup_free char *m1 = parse (&o, "start", "--instance=web", "--pid-file", "/tmp/p", "img", "a", NULL);
    CHECK (m1 == NULL && o.action == ACTION_START && strcmp (str_or_empty (o.instance), "web") == 0
               && strcmp (str_or_empty (o.pid_file), "/tmp/p") == 0 && o.ncmd == 1,
           "start --instance=NAME --pid-file FILE IMAGE ARGS");
    capsa_opts_free (&o);
    cleanup_free char *m2 = parse (&o, "run", "--instance", "web", "img", NULL);
    CHECK (m2 == NULL && o.action == ACTION_RUN && strcmp (str_or_empty (o.instance), "web") == 0,
           "run --instance NAME IMAGE");
    capsa_opts_free (&o);
    cleanup_free char *m3 = parse (&o, "start", "img", NULL);
    CHECK (contains (m3, "runs an instance"), "start without --instance refused");
    capsa_opts_free (&o);
    cleanup_free char *m4 = parse (&o, "exec", "--instance=web", "img", "true", NULL);
    CHECK (contains (m4, "--instance is for start and run"), "exec --instance refused");
    capsa_opts_free (&o);
    cleanup_free char *m5 = parse (&o, "exec", "--pid-file=/tmp/p", "img", "true", NULL);
    CHECK (contains (m5, "--pid-file is for instances"), "--pid-file without an instance refused");
    capsa_opts_free (&o);
    cleanup_free char *m6 = parse (&o, "exec", "instance://web", "true", NULL);
    CHECK (m6 == NULL && strcmp (str_or_empty (o.image), "instance://web") == 0, "exec instance://NAME parses");
    capsa_opts_free (&o);
    enum capsa_action a;
    CHECK (capsa_action_from_name ("start", &a) == 0 && a == ACTION_START, "action name start");
}

static void
test_unknown (void)
{
    struct capsa_opts o;

    cleanup_free char *m1 = parse (&o, "exec", "--frobnicate", "img", "true", NULL);
    CHECK (contains (m1, "--frobnicate"), "unknown long option: message names it");
    CHECK (contains (m1, "exec"), "unknown long option: message names the action");
    capsa_opts_free (&o);

    cleanup_free char *m2 = parse (&o, "run", "-z", "img", NULL);
    CHECK (contains (m2, "-z"), "unknown short option: message names it");
    capsa_opts_free (&o);

    cleanup_free char *m3 = parse (&o, "exec", "img", "true", "--bind", NULL);
    CHECK (m3 == NULL && o.ncmd == 2, "an option after COMMAND is the command's, not ours");
    capsa_opts_free (&o);

    cleanup_free char *m4 = parse (&o, "exec", "--bind", NULL);
    CHECK (contains (m4, "needs a value") && contains (m4, "--bind"), "--bind without a value refused");
    capsa_opts_free (&o);

    cleanup_free char *m5 = parse (&o, "exec", "-B", NULL);
    CHECK (contains (m5, "needs a value") && contains (m5, "-B"), "-B without a value refused");
    capsa_opts_free (&o);

    cleanup_free char *m6 = parse (&o, "exec", "--contain=yes", "img", "true", NULL);
    CHECK (m6 != NULL, "--contain=VALUE refused (no argument)");
    capsa_opts_free (&o);

    /* getopt state does not leak from one parse to the next. */
    cleanup_free char *m7 = parse (&o, "exec", "-c", "img", "true", NULL);
    cleanup_free char *m8 = (capsa_opts_free (&o), parse (&o, "exec", "-p", "img", "true", NULL));
    CHECK (m7 == NULL && m8 == NULL && o.pid_ns && !o.contain, "consecutive parses are independent");
    capsa_opts_free (&o);
}

static void
test_binds (void)
{
    struct capsa_opts o;

    cleanup_free char *m1 = parse (&o, "exec", "-B", "/a:/b:ro,/c", "img", "true", NULL);
    CHECK (m1 == NULL && o.nbinds == 2, "-B a:b:ro,c gives two binds");
    if (o.nbinds == 2) {
        CHECK (strcmp (o.binds[0].src, "/a") == 0 && strcmp (o.binds[0].dst, "/b") == 0 && o.binds[0].ro,
               "first bind /a -> /b, ro");
        CHECK (strcmp (o.binds[1].src, "/c") == 0 && strcmp (o.binds[1].dst, "/c") == 0 && !o.binds[1].ro,
               "second bind /c -> /c, rw");
    }
    capsa_opts_free (&o);

    cleanup_free char *m2 = parse (&o, "exec", "--bind", "/x:/y,ro", "img", "true", NULL);
    CHECK (m2 == NULL && o.nbinds == 1 && o.binds[0].ro && strcmp (o.binds[0].dst, "/y") == 0,
           "'-B /x:/y,ro': the ro word applies to the previous bind");
    capsa_opts_free (&o);

    cleanup_free char *m3 = parse (&o, "exec", "-B", "/x:/y:ro,rw", "img", "true", NULL);
    CHECK (m3 == NULL && o.nbinds == 1 && !o.binds[0].ro, "'-B /x:/y:ro,rw': a later rw word wins");
    capsa_opts_free (&o);

    cleanup_free char *m4 = parse (&o, "exec", "-B", "/a", "-B", "/b::ro", "--bind=/c:/d:rw", "img", "true", NULL);
    CHECK (m4 == NULL && o.nbinds == 3, "several -B options accumulate");
    if (o.nbinds == 3) {
        CHECK (strcmp (o.binds[1].src, "/b") == 0 && strcmp (o.binds[1].dst, "/b") == 0 && o.binds[1].ro,
               "'/b::ro': empty destination means the source, ro");
        CHECK (strcmp (o.binds[2].dst, "/d") == 0 && !o.binds[2].ro, "--bind=/c:/d:rw");
    }
    capsa_opts_free (&o);

    cleanup_free char *m5 = parse (&o, "exec", "-B", "/a:b", "img", "true", NULL);
    CHECK (contains (m5, "'b' must be an absolute path"), "relative bind destination refused");
    capsa_opts_free (&o);

    cleanup_free char *m6 = parse (&o, "exec", "-B", "rel", "img", "true", NULL);
    CHECK (contains (m6, "'rel' must be an absolute path"), "relative source used as destination refused");
    capsa_opts_free (&o);

    cleanup_free char *m7 = parse (&o, "exec", "-B", "/a:/b:rx", "img", "true", NULL);
    CHECK (contains (m7, "invalid bind option 'rx'"), "bind option other than ro/rw refused");
    capsa_opts_free (&o);

    cleanup_free char *m8 = parse (&o, "exec", "-B", ":/b", "img", "true", NULL);
    CHECK (contains (m8, "invalid bind specification"), "empty bind source refused");
    capsa_opts_free (&o);

    cleanup_free char *m9 = parse (&o, "exec", "-B", "/a:/b:ro:x:y", "img", "true", NULL);
    CHECK (contains (m9, "invalid bind specification"), "five ':'-separated parts refused");
    capsa_opts_free (&o);

    cleanup_free char *m10 = parse (&o, "exec", "-B", "ro,/a", "img", "true", NULL);
    CHECK (contains (m10, "'ro' must be an absolute path"), "a leading ro word (no previous bind) is a path");
    capsa_opts_free (&o);

    cleanup_free char *m11 = parse (&o, "exec", "-B", " /a:/b , ,/c ", "img", "true", NULL);
    CHECK (m11 == NULL && o.nbinds == 2, "bind items are trimmed, empty items skipped");
    capsa_opts_free (&o);

    /* capsa_opts_add_binds directly. */
    struct capsa_opts d;
    capsa_error_t err = NULL;
    memset (&d, 0, sizeof (d));
    CHECK (capsa_opts_add_binds (&d, "/p:/q:ro", &err) == 0 && capsa_opts_add_binds (&d, "/r,ro", &err) == 0
               && d.nbinds == 2 && d.binds[0].ro && d.binds[1].ro,
           "capsa_opts_add_binds appends across calls");
    capsa_error_free (&err);
    capsa_opts_free (&d);
}

static void
test_home (void)
{
    struct capsa_opts o;

    cleanup_free char *m1 = parse (&o, "exec", "--home", "s:/d", "img", "true", NULL);
    CHECK (m1 == NULL && strcmp (str_or_empty (o.home_src), "s") == 0
               && strcmp (str_or_empty (o.home_dst), "/d") == 0,
           "--home s:/d: source s, destination /d");
    capsa_opts_free (&o);

    cleanup_free char *m2 = parse (&o, "exec", "-H", "/home/x", "img", "true", NULL);
    CHECK (m2 == NULL && strcmp (str_or_empty (o.home_src), "/home/x") == 0
               && strcmp (str_or_empty (o.home_dst), "/home/x") == 0,
           "-H /home/x: destination is the source");
    capsa_opts_free (&o);

    cleanup_free char *m3 = parse (&o, "exec", "--home", "s:d", "img", "true", NULL);
    CHECK (contains (m3, "invalid --home"), "--home with a relative destination refused");
    capsa_opts_free (&o);

    cleanup_free char *m4 = parse (&o, "exec", "--home", ":/d", "img", "true", NULL);
    CHECK (contains (m4, "invalid --home"), "--home with an empty source refused");
    capsa_opts_free (&o);

    cleanup_free char *m5 = parse (&o, "exec", "--home", "/a:/b", "--home", "/c", "img", "true", NULL);
    CHECK (m5 == NULL && strcmp (str_or_empty (o.home_src), "/c") == 0, "the last --home wins");
    capsa_opts_free (&o);

    cleanup_free char *m7 = parse (&o, "exec", "--home", "/a:/b:c", "img", "true", NULL);
    CHECK (contains (m7, "more than one ':'"), "--home with a second ':' refused (a field of /etc/passwd)");
    capsa_opts_free (&o);

    cleanup_free char *m8 = parse (&o, "exec", "--home", "/a:/h\nroot2", "img", "true", NULL);
    CHECK (contains (m8, "newline"), "--home with a newline refused (a line of /etc/passwd)");
    capsa_opts_free (&o);

    cleanup_free char *m6 = parse (&o, "exec", "--no-home", "--pwd", "/w", "img", "true", NULL);
    CHECK (m6 == NULL && o.no_home && strcmp (str_or_empty (o.pwd), "/w") == 0, "--no-home, --pwd");
    capsa_opts_free (&o);
}

static void
test_flags (void)
{
    struct capsa_opts o;

    cleanup_free char *m1 = parse (&o, "exec", "--containall", "img", "true", NULL);
    CHECK (m1 == NULL && o.contain && o.cleanenv && o.pid_ns && o.ipc_ns, "--containall: contain, cleanenv, pid, ipc");
    CHECK (!o.net_ns && !o.uts_ns && !o.userns, "--containall: not net, uts, userns");
    capsa_opts_free (&o);

    cleanup_free char *m2 = parse (&o, "exec", "-C", "img", "true", NULL);
    CHECK (m2 == NULL && o.contain && o.cleanenv && o.pid_ns && o.ipc_ns, "-C is --containall");
    capsa_opts_free (&o);

    cleanup_free char *m3 = parse (&o, "exec", "-cepinu", "img", "true", NULL);
    CHECK (m3 == NULL && o.contain && o.cleanenv && o.pid_ns && o.ipc_ns && o.net_ns && o.userns && !o.uts_ns,
           "grouped short flags -cepinu");
    capsa_opts_free (&o);

    cleanup_free char *m4 = parse (&o, "exec", "--contain", "--cleanenv", "--pid", "--ipc", "--uts", "--net",
                                   "--userns", "img", "true", NULL);
    CHECK (m4 == NULL && o.contain && o.cleanenv && o.pid_ns && o.ipc_ns && o.uts_ns && o.net_ns && o.userns,
           "every long flag");
    capsa_opts_free (&o);

    cleanup_free char *m5 = parse (&o, "exec", "--hostname", "box", "img", "true", NULL);
    CHECK (m5 == NULL && o.uts_ns && strcmp (str_or_empty (o.hostname), "box") == 0, "--hostname implies uts");
    capsa_opts_free (&o);

    cleanup_free char *m6 = parse (&o, "exec", "--hostname", "", "img", "true", NULL);
    CHECK (contains (m6, "invalid --hostname"), "empty --hostname refused");
    capsa_opts_free (&o);

    char longname[66];
    memset (longname, 'h', 65);
    longname[65] = '\0';
    cleanup_free char *m7 = parse (&o, "exec", "--hostname", longname, "img", "true", NULL);
    CHECK (contains (m7, "invalid --hostname"), "--hostname of 65 characters refused");
    capsa_opts_free (&o);
    longname[64] = '\0';
    cleanup_free char *m7b = parse (&o, "exec", "--hostname", longname, "img", "true", NULL);
    CHECK (m7b == NULL, "--hostname of 64 characters accepted");
    capsa_opts_free (&o);

    cleanup_free char *m8 = parse (&o, "exec", "--net", "--network", "bridge", "img", "true", NULL);
    CHECK (contains (m8, "'bridge' is not supported"), "--network bridge refused");
    capsa_opts_free (&o);

    cleanup_free char *m9 = parse (&o, "exec", "--network", "none", "img", "true", NULL);
    CHECK (contains (m9, "needs --net"), "--network none without --net refused");
    capsa_opts_free (&o);

    cleanup_free char *m10 = parse (&o, "exec", "--net", "--network", "none", "img", "true", NULL);
    CHECK (m10 == NULL && o.net_ns && strcmp (str_or_empty (o.network), "none") == 0, "--net --network none");
    capsa_opts_free (&o);
}

static void
test_env (void)
{
    struct capsa_opts o;

    cleanup_free char *m1 = parse (&o, "exec", "--env", "A=1,B=x,y", "img", "true", NULL);
    CHECK (m1 == NULL && o.env.n == 2, "--env A=1,B=x,y: two variables");
    CHECK_STR (env_at (&o, 0), "A=1", "--env: first A=1");
    CHECK_STR (env_at (&o, 1), "B=x,y", "--env: a part without '=' joins the previous value");
    capsa_opts_free (&o);

    cleanup_free char *m2 = parse (&o, "exec", "--env", "A=1", "--env", "C=a=b", "img", "true", NULL);
    CHECK (m2 == NULL && o.env.n == 2 && strcmp (env_at (&o, 1), "C=a=b") == 0, "several --env accumulate in order");
    capsa_opts_free (&o);

    cleanup_free char *m3 = parse (&o, "exec", "--env", "novalue", "img", "true", NULL);
    CHECK (contains (m3, "invalid --env 'novalue'"), "--env without '=' refused");
    capsa_opts_free (&o);

    cleanup_free char *m4 = parse (&o, "exec", "--env", "=x", "img", "true", NULL);
    CHECK (contains (m4, "invalid --env"), "--env with an empty name refused");
    capsa_opts_free (&o);

    cleanup_free char *m5 = parse (&o, "exec", "--env-file", "/e1", "--env-file", "/e2", "img", "true", NULL);
    CHECK (m5 == NULL && o.env_files.n == 2 && strcmp (o.env_files.v[1], "/e2") == 0, "--env-file accumulates");
    capsa_opts_free (&o);
}

/* Issue 14: Apptainer's options and bind syntax. */
static void
test_apptainer (void)
{
    struct capsa_opts o;
    capsa_error_t err = NULL;

    cleanup_free char *m1 = parse (&o, "exec", "--cwd", "/work", "--no-init", "--no-umask", "--no-eval", "img", "true", NULL);
    CHECK (m1 == NULL && o.pwd && strcmp (o.pwd, "/work") == 0, "--cwd is --pwd");
    CHECK (o.no_init && o.no_umask && o.no_eval, "--no-init, --no-umask, --no-eval");
    capsa_opts_free (&o);

    cleanup_free char *m2 = parse (&o, "exec", "--env", "LD_LIBRARY_PATH=/foo,", "--env", ",A=1", "img", "true", NULL);
    CHECK (m2 == NULL && o.env.n == 2 && strcmp (env_at (&o, 0), "LD_LIBRARY_PATH=/foo,") == 0
               && strcmp (env_at (&o, 1), "A=1") == 0,
           "--env: a trailing comma is part of the value, a leading one is ignored");
    capsa_opts_free (&o);

    /* -B escapes and options. */
    cleanup_free char *m3 = parse (&o, "exec", "-B", "/a\\,b:/c\\:d:ro,/e", "img", "true", NULL);
    CHECK (m3 == NULL && o.nbinds == 2 && strcmp (o.binds[0].src, "/a,b") == 0 && strcmp (o.binds[0].dst, "/c:d") == 0
               && o.binds[0].ro && strcmp (o.binds[1].src, "/e") == 0,
           "-B: '\\,' and '\\:' escape a comma and a colon");
    capsa_opts_free (&o);
    static const char *const image_binds[] = { "/img.sif:/data:image-src=/", "/img.sif:/data:id=2",
                                               "/img.sif:/data:ro,image-src=/x" };
    for (size_t i = 0; i < ARRAY_SIZE (image_binds); i++) {
        cleanup_free char *m = parse (&o, "exec", "-B", image_binds[i], "img", "true", NULL);
        cleanup_free char *name = xasprintf ("-B %s: refused, binding out of an image file", image_binds[i]);
        CHECK (contains (m, "binding a path from inside an image file is not supported"), name);
        capsa_opts_free (&o);
    }

    /* --mount. */
    cleanup_free char *m4 = parse (&o, "exec", "--mount", "type=bind,source=/a,destination=/b,ro", "--mount",
                                   "src=/c,dst=/d,readonly=false\ntype=bind,src=/e,target=/f,readonly", "--mount",
                                   "\"type=bind\",\"source=/g,h\",\"dst=/i\"\"j\"", "img", "true", NULL);
    CHECK (m4 == NULL && o.nbinds == 4, "--mount: three options, one with two lines, give four binds");
    if (m4)
        printf ("# %s\n", m4);
    if (o.nbinds == 4) {
        CHECK (strcmp (o.binds[0].src, "/a") == 0 && strcmp (o.binds[0].dst, "/b") == 0 && o.binds[0].ro,
               "--mount type=bind,source,destination,ro");
        CHECK (strcmp (o.binds[1].dst, "/d") == 0 && !o.binds[1].ro, "--mount src=,dst=,readonly=false");
        CHECK (strcmp (o.binds[2].dst, "/f") == 0 && o.binds[2].ro, "--mount: second line, target=, readonly");
        CHECK (strcmp (o.binds[3].src, "/g,h") == 0 && strcmp (o.binds[3].dst, "/i\"j") == 0,
               "--mount: CSV quoting (a comma in a quoted field, a doubled quote)");
    }
    capsa_opts_free (&o);
    static const struct {
        const char *spec, *msg;
    } bad[] = {
        { "type=volume,src=/a,dst=/b", "unsupported mount type 'volume'" },
        { "type=bind,src=/a", "a mount needs a source and a destination" },
        { "src=,dst=/b", "the source cannot be empty" },
        { "src=/a,dst=rel", "the destination 'rel' must be an absolute path" },
        { "src=/a,dst=/b,bind-propagation=shared", "bind-propagation is not supported" },
        { "src=/a,dst=/b,colour=red", "invalid key 'colour'" },
        { "src=/a,dst=/b,image-src=/", "image-src: binding a path from inside an image file is not supported" },
        { "src=/a\"b,dst=/c", "bare \" in a field" },
        { "\"src=/a,dst=/c", "unterminated quoted field" },
        { "src=/a,dst=/b,ro=maybe", "invalid value 'maybe' for ro" },
        { "", "empty" },
    };
    for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
        cleanup_free char *m = parse (&o, "exec", "--mount", bad[i].spec, "img", "true", NULL);
        cleanup_free char *name = xasprintf ("--mount '%s' refused: %s", bad[i].spec, bad[i].msg);
        CHECK (contains (m, bad[i].msg), name);
        if (!contains (m, bad[i].msg))
            printf ("# got [%s]\n", m ? m : "(none)");
        capsa_opts_free (&o);
    }

    /* --no-mount. */
    cleanup_free char *m5 = parse (&o, "exec", "--no-mount", "proc,sys,dev,devpts", "--no-mount",
                                   "tmp,hostfs,cwd,home,bind-paths,/etc/hosts,bogus", "img", "true", NULL);
    CHECK (m5 == NULL
               && o.no_mount
                      == (NO_MOUNT_PROC | NO_MOUNT_SYS | NO_MOUNT_DEV | NO_MOUNT_DEVPTS | NO_MOUNT_TMP | NO_MOUNT_HOSTFS
                          | NO_MOUNT_CWD),
           "--no-mount: every mount name");
    CHECK (o.no_home && o.skip_all_bind_paths, "--no-mount home, bind-paths");
    CHECK (o.skip_bind_paths.n == 1 && strcmp (o.skip_bind_paths.v[0], "/etc/hosts") == 0,
           "--no-mount /PATH: one bind path left out");
    CHECK (o.warnings.n == 1 && contains (o.warnings.v[0], "unknown mount type 'bogus'"),
           "--no-mount: an unknown name is a warning, as in Apptainer");
    capsa_opts_free (&o);

    struct capsa_opts d;
    memset (&d, 0, sizeof (d));
    CHECK (capsa_opts_add_mount (&d, "src=/1,dst=/2", &err) == 0 && d.nbinds == 1, "capsa_opts_add_mount directly");
    capsa_error_free (&err);
    capsa_opts_free (&d);
}

/* Regressions found by probing the parser. */
static void
test_regressions (void)
{
    struct capsa_opts o;

    cleanup_free char *m1 = parse (&o, "exec", "-B", "/a:/b:ro:junk", "img", "true", NULL);
    CHECK (m1 != NULL, "a bind with four parts is refused");
    capsa_opts_free (&o);
    cleanup_free char *m2 = parse (&o, "exec", "-B", "/a:/b:c:d:e", "img", "true", NULL);
    CHECK (contains (m2, "'/a:/b:c:d:e'"), "bind error quotes the whole specification");
    capsa_opts_free (&o);
    cleanup_free char *m3 = parse (&o, "exec", "-xc", "img", "true", NULL);
    CHECK (contains (m3, "'-x'"), "unknown short option in a group is named");
    capsa_opts_free (&o);
    cleanup_free char *m4 = parse (&o, "exec", "--env", "A=1", "--env", ",x", "img", "true", NULL);
    CHECK (m4 != NULL || (o.env.n == 1 && strcmp (env_at (&o, 0), "A=1") == 0),
           "--env never glues onto an earlier, separate --env");
    capsa_opts_free (&o);
    cleanup_free char *m5 = parse (&o, "exec", "--add-caps", "net_raw", "--add-caps", "chown", "--drop-caps", "all",
                                   "--keep-privs", "--no-privs", "img", "true", NULL);
    CHECK (m5 == NULL && strcmp (str_or_empty (o.add_caps), "net_raw,chown") == 0
               && strcmp (str_or_empty (o.drop_caps), "all") == 0 && o.keep_privs && o.no_privs,
           "capability options accumulate");
    capsa_opts_free (&o);
}

/* --fakeroot, --writable, --writable-tmpfs, --overlay (issue 15). */
static void
test_writable (void)
{
    struct capsa_opts o;

    cleanup_free char *m1 = parse (&o, "exec", "--fakeroot", "--writable", "--writable-tmpfs", "img", "true", NULL);
    CHECK (m1 == NULL && o.fakeroot && o.writable && o.writable_tmpfs && o.noverlays == 0,
           "--fakeroot, --writable, --writable-tmpfs");
    capsa_opts_free (&o);

    cleanup_free char *m2 = parse (&o, "shell", "-fw", "img", NULL);
    CHECK (m2 == NULL && o.fakeroot && o.writable && !o.writable_tmpfs, "-f is --fakeroot, -w is --writable");
    capsa_opts_free (&o);

    cleanup_free char *m3 = parse (&o, "exec", "--overlay", "/o/a", "-o", "b.img:ro", "--overlay=/c:rw", "img", "true",
                                   NULL);
    CHECK (m3 == NULL && o.noverlays == 3, "three --overlay values, -o among them");
    if (m3 == NULL && o.noverlays == 3) {
        CHECK (strcmp (o.overlays[0].path, "/o/a") == 0 && !o.overlays[0].ro, "--overlay PATH: writable");
        CHECK (strcmp (o.overlays[1].path, "b.img") == 0 && o.overlays[1].ro, "--overlay PATH:ro: read-only, suffix off");
        CHECK (strcmp (o.overlays[2].path, "/c") == 0 && !o.overlays[2].ro, "--overlay PATH:rw: writable, suffix off");
    }
    capsa_opts_free (&o);

    static const char *const bad[] = { ":ro", "a:b:ro", "x:y", "" };
    for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
        cleanup_free char *m = parse (&o, "exec", "--overlay", bad[i], "img", "true", NULL);
        cleanup_free char *want = xasprintf ("invalid --overlay '%s' (expected PATH or PATH:ro)", bad[i]);
        cleanup_free char *name = xasprintf ("--overlay '%s' refused with the exact message", bad[i]);
        CHECK_STR (m, want, name);
        capsa_opts_free (&o);
    }
    cleanup_free char *m4 = parse (&o, "exec", "--overlay", NULL);
    CHECK (contains (m4, "option '--overlay' needs a value"), "--overlay without a value refused");
    capsa_opts_free (&o);
}

int
main (void)
{
    test_regressions ();
    test_writable ();
    test_actions ();
    test_instances ();
    test_unknown ();
    test_binds ();
    test_home ();
    test_flags ();
    test_env ();
    test_apptainer ();
    return tap_done ();
}

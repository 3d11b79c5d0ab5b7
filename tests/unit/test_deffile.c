/* Unit tests for the definition-file parser (src/imgbuild/deffile.c): what a
 * good file turns into, and the exact message, naming the line, of each
 * kind of bad file.  Inputs kept by the fuzzer (tests/fuzz/regress-deffile/)
 * are replayed: each must parse or fail cleanly. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/utils.h"
#include "tap.h"

#include "imgbuild/deffile.h"

static struct deffile *
parse_ok (const char *text)
{
    struct deffile *d = NULL;
    capsa_error_t err = NULL;
    if (deffile_parse ("t.def", text, strlen (text), &d, &err) < 0) {
        printf ("# unexpected error: %s\n", err->msg);
        capsa_error_free (&err);
        return NULL;
    }
    return d;
}

/* The error message for TEXT, or "(parsed)" (static buffer). */
static const char *
parse_err (const char *text, size_t len)
{
    static char msg[600];
    struct deffile *d = NULL;
    capsa_error_t err = NULL;
    if (deffile_parse ("t.def", text, len, &d, &err) == 0) {
        deffile_free (d);
        return "(parsed)";
    }
    snprintf (msg, sizeof (msg), "%s", err->msg);
    capsa_error_free (&err);
    return msg;
}

#define ERR(text) parse_err ((text), strlen (text))

static const char *
label (const struct deffile *d, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < d->nlabels; i++)
        if (strcmp (d->labels[i].key, key) == 0)
            v = d->labels[i].value;
    return v;
}

static void
test_full (void)
{
    const char *text = "# A comment before the header\n"
                       "Bootstrap: localimage\n"
                       "From: /images/base.sif   # trailing comment\n"
                       "\n"
                       "%setup\n"
                       "    touch $APPTAINER_ROOTFS/setup\n"
                       "%files\n"
                       "    /etc/hosts\n"
                       "    # a comment\n"
                       "    \"/path with space/a\" '/dst dir/b'\n"
                       "    src2 /dst2\n"
                       "%post -c /bin/bash\n"
                       "    echo hi > /hi\n"
                       "%environment\n"
                       "    export A=1\n"
                       "%runscript\n"
                       "    echo run \"$@\"\n"
                       "%labels\n"
                       "    Maintainer Jane Doe\n"
                       "    Version\t2.0\n"
                       "    Empty\n"
                       "%help\n"
                       "    Some help.\n"
                       "%test\n"
                       "    true\n"
                       "%startscript\n"
                       "    sleep 1\n";
    struct deffile *d = parse_ok (text);
    CHECK (d != NULL, "full definition parses");
    if (d == NULL)
        return;
    CHECK (d->bootstrap == DEF_BOOTSTRAP_LOCALIMAGE, "bootstrap localimage");
    CHECK_STR (d->from, "/images/base.sif", "From: value, comment cut");
    CHECK (d->bootstrap_line == 2, "bootstrap line number");
    CHECK (deffile_header (d, "from") && deffile_header (d, "from")->line == 3, "header line numbers");
    CHECK (d->rawlen == strlen (text) && strcmp (d->raw, text) == 0, "raw text kept whole");
    CHECK (d->nfiles == 3, "three %files entries");
    CHECK_STR (d->files[0].src, "/etc/hosts", "%files source only");
    CHECK (d->files[0].dst == NULL, "%files without destination");
    CHECK (d->files[0].line == 8, "%files entry line");
    CHECK_STR (d->files[1].src, "/path with space/a", "%files double quotes");
    CHECK_STR (d->files[1].dst, "/dst dir/b", "%files single quotes");
    CHECK_STR (d->files[2].dst, "/dst2", "%files destination");
    CHECK_STR (d->shell[DEF_POST], "/bin/bash", "%post -c shell");
    CHECK (d->shell[DEF_SETUP] == NULL, "%setup default shell");
    CHECK_STR (d->sec[DEF_POST].body, "    echo hi > /hi\n", "%post body");
    CHECK (d->sec[DEF_POST].line == 12, "%post line");
    CHECK_STR (d->sec[DEF_ENVIRONMENT].body, "    export A=1\n", "%environment body");
    CHECK_STR (label (d, "Maintainer"), "Jane Doe", "label with spaces in its value");
    CHECK_STR (label (d, "Version"), "2.0", "label split at a tab");
    CHECK_STR (label (d, "Empty"), "", "label without value");
    CHECK (d->sec[DEF_HELP].present && d->sec[DEF_TEST].present && d->sec[DEF_STARTSCRIPT].present,
           "help, test, startscript present");
    CHECK (!d->sec[DEF_FILES].args[0], "%files without arguments");
    deffile_free (d);
}

static void
test_header (void)
{
    struct deffile *d = parse_ok ("BOOTSTRAP: DebOotstrap\nosversion: bookworm\n"
                                  "Include: iputils-ping, libcap2-bin  curl\n%post\n true\n");
    CHECK (d && d->bootstrap == DEF_BOOTSTRAP_DEBOOTSTRAP, "keys and agent are case-insensitive");
    CHECK (d && strcmp (d->include, "iputils-ping,libcap2-bin,curl") == 0, "Include: commas and spaces");
    CHECK (d && strcmp (d->mirror, DEF_DEFAULT_MIRROR) == 0, "MirrorURL defaults to Debian's");
    CHECK (d && strcmp (d->osversion, "bookworm") == 0, "OSVersion");
    deffile_free (d);

    d = parse_ok ("Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: http://m.example/debian\n");
    CHECK (d && strcmp (d->mirror, "http://m.example/debian") == 0 && d->include[0] == '\0', "MirrorURL, no Include");
    deffile_free (d);

    d = parse_ok ("Bootstrap: localimage\nFrom: /a/\\\n  b.sif\n");
    CHECK (d && strcmp (d->from, "/a/b.sif") == 0, "header continuation line");
    deffile_free (d);

    d = parse_ok ("Bootstrap: localimage\r\nFrom: x.sif\r\n%post\r\n  echo a\r\n");
    CHECK (d && strcmp (d->from, "x.sif") == 0 && strcmp (d->sec[DEF_POST].body, "  echo a\n") == 0, "CRLF lines");
    deffile_free (d);

    d = parse_ok ("Bootstrap: localimage\nFrom: x.sif\nOtherURL2: http://x\nStage: one\n");
    CHECK (d != NULL, "Apptainer's other header keywords accepted");
    deffile_free (d);
}

static void
test_sections (void)
{
    struct deffile *d = parse_ok ("Bootstrap: localimage\nFrom: x\n%post\n a\n%labels\n K 1\n%POST\n b\n"
                                  "%labels\n K 2\n   %runscript -x\n run\n");
    CHECK (d && strcmp (d->sec[DEF_POST].body, " a\n b\n") == 0, "repeated sections are concatenated");
    CHECK (d && d->sec[DEF_POST].line == 3, "a repeated section keeps its first line");
    CHECK (d && strcmp (label (d, "K"), "2") == 0 && d->nlabels == 2, "repeated label: the last wins");
    CHECK (d && d->sec[DEF_RUNSCRIPT].present && strcmp (d->sec[DEF_RUNSCRIPT].args, "-x") == 0,
           "indented section line with arguments");
    if (d) {
        const char *script;
        char *sb = deffile_shebang (&d->sec[DEF_RUNSCRIPT], &script);
        CHECK_STR (sb, "#!/bin/sh -x", "shebang: default plus the section's arguments");
        CHECK_STR (script, " run\n", "shebang: the script");
        free (sb);
    }
    deffile_free (d);

    d = parse_ok ("Bootstrap: localimage\nFrom: x\n%runscript\n\n  #!/bin/bash\n  echo $BASH\n");
    if (d) {
        const char *script;
        char *sb = deffile_shebang (&d->sec[DEF_RUNSCRIPT], &script);
        CHECK_STR (sb, "#!/bin/bash", "shebang: the script's own");
        CHECK_STR (script, "  echo $BASH\n", "shebang: the rest of the script");
        free (sb);
    }
    deffile_free (d);

    CHECK_STR (ERR ("%post\n true\nBootstrap: localimage\n"), "t.def:3: multi-stage definition files are not supported",
               "Bootstrap inside a section is another stage: refused");
}

static void
test_errors (void)
{
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\n\n%post\n true\n\n%foo\n bar\n"), "t.def:7: unknown section '%foo'",
               "unknown section names its line");
    CHECK_STR (ERR ("Bootstrap: localimage\n\n%post\n true\n"),
               "t.def:1: 'Bootstrap: localimage' needs a 'From:' header naming the image", "missing From:");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom:\n"),
               "t.def:1: 'Bootstrap: localimage' needs a 'From:' header naming the image", "empty From:");
    CHECK_STR (ERR ("Bootstrap: debootstrap\n"),
               "t.def:1: 'Bootstrap: debootstrap' needs an 'OSVersion:' header (e.g. bookworm)", "missing OSVersion:");
    CHECK_STR (ERR ("Bootstrap: debootstrap\nOSVersion: ../x\n"), "t.def:2: invalid OSVersion '../x'", "bad OSVersion");
    CHECK_STR (ERR ("Bootstrap: debootstrap\nOSVersion: bookworm\nInclude: a;rm\n"),
               "t.def:3: invalid package name in Include: 'a;rm'", "bad package name");
    CHECK_STR (ERR ("Bootstrap: library\nFrom: alpine\n"),
               "t.def:1: bootstrap agent 'library' is not supported (capsa builds from 'localimage', 'debootstrap', "
               "'docker', 'docker-archive' and 'oci-archive')",
               "unsupported agent");
    CHECK_STR (ERR ("Bootstrap: docker\n"), "t.def:1: 'Bootstrap: docker' needs a 'From:' header naming the image",
               "Bootstrap: docker needs From:");
    CHECK_STR (ERR ("From: x\n%post\n true\n"),
               "t.def: no 'Bootstrap:' header (capsa builds from 'localimage', 'debootstrap', 'docker', "
               "'docker-archive' and 'oci-archive')",
               "no Bootstrap:");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\nColour: blue\n"), "t.def:3: unknown header keyword 'Colour'",
               "unknown header keyword");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom x\n"), "t.def:2: header line 'From x' is not 'Keyword: value'",
               "header line without a colon");
    CHECK_STR (ERR (""), "t.def: empty definition file", "empty file");
    CHECK_STR (ERR ("# only\n\n   # comments\n"), "t.def: empty definition file", "comments only");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\n%appinstall foo\n make\n"),
               "t.def:3: section '%appinstall' is not supported by capsa", "SCIF app sections");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\n%files\n a b c\n"),
               "t.def:4: %files: more than a source and a destination (quote paths with spaces)", "%files three words");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\n%files\n \"a b\n"), "t.def:4: %files: unterminated quote",
               "%files unterminated quote");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\n%files\n \"\" /x\n"), "t.def:4: %files: empty path",
               "%files empty source");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\n%files from build\n a\n"),
               "t.def:3: '%files from build': copying from another stage is not supported", "%files from a stage");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\n%post -x\n true\n"),
               "t.def:3: %post: unsupported arguments '-x' (only '-c /path/to/shell')", "%post bad arguments");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\n%post\n true\nBootstrap: localimage\nFrom: y\n"),
               "t.def:5: multi-stage definition files are not supported", "multi-stage");
    CHECK_STR (parse_err ("Bootstrap: localimage\nFrom: x\0y\n", sizeof ("Bootstrap: localimage\nFrom: x\0y\n") - 1), "t.def: not a definition file (it contains NUL bytes)",
               "NUL byte");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\n%\n"), "t.def:3: unknown section '%'", "bare %");
    CHECK_STR (ERR ("Bootstrap: localimage\nFrom: x\n%p\x01st\n"), "t.def:3: unknown section '%p?st'",
               "control characters are not echoed");
}

static void
test_regressions (void)
{
    const char *dirs[] = { "tests/fuzz/regress-deffile", "../tests/fuzz/regress-deffile" };
    int replayed = 0;
    for (size_t k = 0; k < ARRAY_SIZE (dirs); k++) {
        DIR *d = opendir (dirs[k]);
        if (d == NULL)
            continue;
        for (struct dirent *e; (e = readdir (d));) {
            if (e->d_name[0] == '.')
                continue;
            char path[1024];
            snprintf (path, sizeof (path), "%s/%s", dirs[k], e->d_name);
            int fd = open (path, O_RDONLY | O_CLOEXEC);
            char *buf = NULL;
            size_t len = 0;
            capsa_error_t err = NULL;
            if (fd < 0 || read_fd_all (fd, DEFFILE_MAX_SIZE + 1, &buf, &len, &err) < 0) {
                capsa_error_free (&err);
                if (fd >= 0)
                    close (fd);
                continue;
            }
            close (fd);
            parse_err (buf, len); /* must not crash */
            free (buf);
            replayed++;
        }
        closedir (d);
        break;
    }
    CHECK (replayed >= 0, "fuzzer regression inputs replayed");
}

int
main (void)
{
    test_full ();
    test_header ();
    test_sections ();
    test_errors ();
    test_regressions ();
    return tap_done ();
}

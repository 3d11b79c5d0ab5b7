/* Apptainer definition files ("Singularity recipes"): parsed, never run.
 *
 * A definition file is a header of "Key: value" lines (Bootstrap, From,
 * OSVersion, MirrorURL, Include, ...) followed by sections, each started by
 * a line whose first word is "%name" (%setup, %files, %post, %environment,
 * %runscript, %startscript, %test, %labels, %help).  The parser follows
 * Apptainer's (pkg/build/types/parser/deffile.go) where it is defined and is
 * strict where Apptainer is silent: every error names the file and line,
 * "deb.def:7: unknown section '%foo'".
 *
 * The input is untrusted text (it is fuzzed: tests/fuzz/fuzz_deffile.c); the
 * parser allocates, never executes anything, and touches no file.
 *
 * Errors follow src/lib/error.h.  Ownership: a struct deffile owns every
 * string it points to; deffile_free() releases them all. */
#ifndef CAPSA_BUILD_DEFFILE_H
#define CAPSA_BUILD_DEFFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

/* Largest definition file accepted (bytes). */
#define DEFFILE_MAX_SIZE (4 << 20)

enum def_section_kind {
    DEF_HELP,
    DEF_SETUP,
    DEF_FILES,
    DEF_LABELS,
    DEF_ENVIRONMENT,
    DEF_POST,
    DEF_RUNSCRIPT,
    DEF_TEST,
    DEF_STARTSCRIPT,
    DEF_NSECTIONS
};

enum def_bootstrap {
    DEF_BOOTSTRAP_LOCALIMAGE,
    DEF_BOOTSTRAP_DEBOOTSTRAP,
    DEF_BOOTSTRAP_DOCKER,         /* From: REF (docker://REF, src/oci) */
    DEF_BOOTSTRAP_DOCKER_ARCHIVE, /* From: FILE[:REF] */
    DEF_BOOTSTRAP_OCI_ARCHIVE,    /* From: FILE[:REF] */
};

struct def_section {
    bool present;
    char *args; /* words after the section name ("" when none); last one wins */
    char *body; /* raw text, every line ending in '\n'; repeats are concatenated */
    int line;   /* line of the first "%name" */
};

struct def_kv {
    char *key; /* header keys are lower-cased, label keys kept as written */
    char *value;
    int line;
};

struct def_file_entry {
    char *src; /* host path, may hold glob characters */
    char *dst; /* path inside the image; NULL: the same as src */
    int line;
};

struct deffile {
    char *name; /* for messages: the path as the user gave it */
    char *raw;  /* the whole file, NUL-terminated */
    size_t rawlen;
    struct def_kv *header;
    size_t nheader;
    struct def_section sec[DEF_NSECTIONS];
    struct def_kv *labels; /* %labels, in order (a repeated key: the last wins) */
    size_t nlabels;
    struct def_file_entry *files; /* %files, in order */
    size_t nfiles;

    /* Checked and decoded from the header. */
    enum def_bootstrap bootstrap;
    int bootstrap_line;
    const char *from;      /* localimage: the image (header value, borrowed) */
    const char *osversion; /* debootstrap */
    const char *mirror;    /* debootstrap: MirrorURL or the Debian default */
    char *include;         /* debootstrap: Include as a comma list, "" if none */
    const char *shell[DEF_NSECTIONS]; /* "-c SHELL" of a script section, else NULL */
};

#define DEF_DEFAULT_MIRROR "http://deb.debian.org/debian"

/* Parse the LEN bytes at BUF (need not be NUL-terminated).  NAME is used in
 * messages.  On success *out owns a new struct deffile. */
int deffile_parse (const char *name, const char *buf, size_t len, struct deffile **out, capsa_error_t *err);
void deffile_free (struct deffile *d);

/* The value of header KEY (lower case), or NULL; the last one when repeated. */
const struct def_kv *deffile_header (const struct deffile *d, const char *key);

/* "%post" and friends, for messages. */
const char *deffile_section_name (enum def_section_kind k);

/* Split a script section's body off a leading "#!" line, as Apptainer does
 * for %runscript, %startscript and %test.  Returns the interpreter line
 * (new string, "#!/bin/sh" by default, with the section's arguments added)
 * and sets *script to the rest (borrowed from the body). */
char *deffile_shebang (const struct def_section *s, const char **script);

#endif
